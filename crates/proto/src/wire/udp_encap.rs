//! UDP header (RFC 768) and UDP encapsulation of ESP (RFC 3948).
//!
//! [`Packet`] and [`Repr`] cover the 8-byte UDP header; the checksum is computed over the
//! pseudo-header of either IP version ([`Packet::fill_checksum`], [`Packet::verify_checksum`]).
//! [`classify`] splits what arrives on the NAT-T port 4500 into NAT-keepalives, IKE messages
//! (behind the non-ESP marker) and ESP packets (RFC 3948 §2.2, RFC 7296 §2.23).

use core::net::IpAddr;

use super::ip::{combine, pseudo_header, sum};
use super::{Error, IpProtocol, Result, ensure_len, read_u16, write_u16};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// The UDP port for IKE (RFC 7296 §2).
pub const IKE_PORT: u16 = 500;

/// The UDP port for IKE and ESP after NAT detection (RFC 3948 §2, RFC 7296 §2.23).
pub const NAT_T_PORT: u16 = 4500;

/// The four zero bytes in front of an IKE message on port 4500, where an ESP SPI would be
/// (RFC 3948 §2.2).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// The whole payload of a NAT-keepalive packet (RFC 3948 §2.3).
pub const NAT_KEEPALIVE: [u8; 1] = [0xff];

/// Byte ranges of the header fields.
mod field {
    use core::ops::Range;

    pub(super) const SRC_PORT: Range<usize> = 0..2;
    pub(super) const DST_PORT: Range<usize> = 2..4;
    pub(super) const LENGTH: Range<usize> = 4..6;
    pub(super) const CHECKSUM: Range<usize> = 6..8;
}

crate::wire::packet_view! {
    /// A zero-copy view of a UDP datagram.
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the header and the datagram length it announces, which
    /// must cover the header. Bytes past that length are ignored.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        ensure_len("UDP header", HEADER_LEN, len)?;
        let datagram_len = usize::from(self.len());
        if datagram_len < HEADER_LEN {
            return Err(Error::Malformed { what: "UDP length" });
        }
        ensure_len("UDP datagram", datagram_len, len)
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::SRC_PORT])
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::DST_PORT])
    }

    /// Length of the datagram in bytes, header included.
    pub fn len(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// Whether the datagram has no payload (length 8).
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// The checksum field (0: no checksum, allowed over IPv4 only).
    pub fn checksum(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// The payload, bounded by the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// The datagram as the length field delimits it.
    fn datagram(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.len())]
    }

    /// Whether the checksum is right for a datagram from `src` to `dst`.
    ///
    /// A zero checksum means "none" over IPv4 and is accepted (RFC 768; RFC 3948 §2.1 says
    /// senders of ESP-in-UDP should send it). Over IPv6 it is rejected (RFC 8200 §8.1; the
    /// RFC 6936 exception for tunnels is not supported). Mixed address families are rejected.
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        if self.checksum() == 0 {
            return src.is_ipv4() && dst.is_ipv4();
        }
        let datagram = self.datagram();
        match pseudo_header(src, dst, IpProtocol::UDP, datagram.len()) {
            Ok(pseudo) => !combine(&[pseudo, sum(datagram)]) == 0,
            Err(_) => false,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::SRC_PORT], value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::DST_PORT], value);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::LENGTH], value);
    }

    /// Sets the checksum field (see [`Self::fill_checksum`] to compute it).
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::CHECKSUM], value);
    }

    /// Computes the checksum for a datagram from `src` to `dst` (the length field and the
    /// payload must be in place) and stores it; a computed 0 is sent as 0xffff (RFC 768).
    ///
    /// Fails, leaving the field unchanged, if the address families differ.
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) -> Result<()> {
        let len = usize::from(self.len());
        let pseudo = pseudo_header(src, dst, IpProtocol::UDP, len)?;
        self.set_checksum(0);
        let checksum = match !combine(&[pseudo, sum(self.datagram())]) {
            0 => 0xffff,
            checksum => checksum,
        };
        self.set_checksum(checksum);
        Ok(())
    }

    /// The payload, writable (bounded by the length field).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..len]
    }
}

/// A parsed UDP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length in bytes. [`Repr::emit`] saturates the length field at 65,535.
    pub payload_len: usize,
}

impl Repr {
    /// Parses the header of `packet`. The checksum is not checked here: it needs the IP
    /// addresses, see [`Packet::verify_checksum`].
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self> {
        Ok(Self {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: usize::from(packet.len()) - HEADER_LEN,
        })
    }

    /// The length of the emitted header (always 8).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into `packet` (at least [`Self::buffer_len`] bytes) with a zero
    /// checksum, which is what RFC 3948 §2.1 asks of ESP-in-UDP over IPv4. Over IPv6, or to
    /// send a checksum anyway, call [`Packet::fill_checksum`] once the payload is in place.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        let len = HEADER_LEN.saturating_add(self.payload_len);
        packet.set_len(u16::try_from(len).unwrap_or(u16::MAX));
        packet.set_checksum(0);
    }
}

/// What a UDP datagram received on port 4500 carries (RFC 3948 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// A NAT-keepalive (the single byte 0xff), to be dropped (RFC 3948 §2.3).
    NatKeepalive,
    /// An IKE message: the payload after the non-ESP marker.
    Ike(&'a [u8]),
    /// An ESP packet, starting at its SPI.
    Esp(&'a [u8]),
}

/// Classifies the payload of a UDP datagram received on port 4500 (RFC 3948 §2.2, §2.3).
///
/// The single byte 0xff is a NAT-keepalive; four zero bytes are the non-ESP marker, followed
/// by an IKE message; anything else is ESP and must hold at least the 8-byte ESP header (its
/// SPI is then non-zero, since zero is the marker).
pub fn classify(payload: &[u8]) -> Result<Datagram<'_>> {
    if payload == NAT_KEEPALIVE {
        return Ok(Datagram::NatKeepalive);
    }
    match payload.split_first_chunk::<4>() {
        Some((marker, ike)) if *marker == NON_ESP_MARKER => Ok(Datagram::Ike(ike)),
        _ => {
            ensure_len("ESP header", super::esp::HEADER_LEN, payload.len())?;
            Ok(Datagram::Esp(payload))
        }
    }
}

#[cfg(test)]
mod tests {
    use core::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    /// 4500 → 4500, length 20, carrying an 8-byte ESP header (SPI 0x01020304, seq 1) and 4
    /// bytes; checksum for 192.0.2.1 → 192.0.2.2.
    static PACKET_BYTES: [u8; 20] = [
        0x11, 0x94, 0x11, 0x94, 0x00, 0x14, 0xb6, 0xf5, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00,
        0x01, 0xde, 0xad, 0xbe, 0xef,
    ];

    static PAYLOAD_BYTES: [u8; 12] =
        [0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef];

    const V4_SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const V4_DST: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    const V6_SRC: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    const V6_DST: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));

    const REPR: Repr = Repr { src_port: NAT_T_PORT, dst_port: NAT_T_PORT, payload_len: 12 };

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.src_port(), 4500);
        assert_eq!(packet.dst_port(), 4500);
        assert_eq!(packet.len(), 20);
        assert!(!packet.is_empty());
        assert_eq!(packet.checksum(), 0xb6f5);
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
        assert!(packet.verify_checksum(&V4_SRC, &V4_DST));
        assert!(!packet.verify_checksum(&V4_DST, &V4_DST));
        assert!(!packet.verify_checksum(&V4_SRC, &V6_DST));
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 20];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_src_port(4500);
        packet.set_dst_port(4500);
        packet.set_len(20);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        packet.fill_checksum(&V4_SRC, &V4_DST).unwrap();
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn check_len() {
        for len in 0..PACKET_BYTES.len() {
            assert!(Packet::new_checked(&PACKET_BYTES[..len]).is_err(), "len {len}");
        }
        let mut bytes = PACKET_BYTES;
        bytes[5] = 7;
        assert_eq!(Packet::new_checked(&bytes[..]), Err(Error::Malformed { what: "UDP length" }));
        // Trailing bytes beyond the length field are ignored.
        bytes[5] = 8;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.is_empty() && packet.payload().is_empty());
    }

    #[test]
    fn parse() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Ok(REPR));
    }

    #[test]
    fn emit() {
        let mut bytes = [0xa5u8; 20];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        REPR.emit(&mut packet);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(packet.checksum(), 0);
        assert!(packet.verify_checksum(&V4_SRC, &V4_DST));
        assert!(!packet.verify_checksum(&V6_SRC, &V6_DST));
        packet.fill_checksum(&V4_SRC, &V4_DST).unwrap();
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn buffer_len() {
        assert_eq!(REPR.buffer_len(), 8);
    }

    #[test]
    fn checksum_v6() {
        let mut bytes = PACKET_BYTES;
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.fill_checksum(&V6_SRC, &V6_DST).unwrap();
        assert_eq!(packet.checksum(), 0xdf84);
        assert!(packet.verify_checksum(&V6_SRC, &V6_DST));
        assert!(!packet.verify_checksum(&V6_SRC, &V6_SRC));
        assert!(packet.fill_checksum(&V6_SRC, &V4_DST).is_err());
        assert_eq!(packet.checksum(), 0xdf84);
    }

    #[test]
    fn computed_zero_checksum_is_sent_as_ffff() {
        // Choose a checksum-field-sized payload word so that the sum comes out at 0xffff.
        let mut bytes = [0x11, 0x94, 0x11, 0x94, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00];
        let pseudo = pseudo_header(&V4_SRC, &V4_DST, IpProtocol::UDP, 10).unwrap();
        let partial = combine(&[pseudo, sum(&bytes)]);
        bytes[8..10].copy_from_slice(&(!partial).to_be_bytes());
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.fill_checksum(&V4_SRC, &V4_DST).unwrap();
        assert_eq!(packet.checksum(), 0xffff);
        assert!(packet.verify_checksum(&V4_SRC, &V4_DST));
    }

    #[test]
    fn classify_cases() {
        assert_eq!(classify(&[0xff]), Ok(Datagram::NatKeepalive));
        assert_eq!(classify(&NAT_KEEPALIVE), Ok(Datagram::NatKeepalive));
        let ike = [0, 0, 0, 0, 0x11, 0x22, 0x33];
        assert_eq!(classify(&ike), Ok(Datagram::Ike(&ike[4..])));
        assert_eq!(classify(&[0, 0, 0, 0]), Ok(Datagram::Ike(&[])));
        assert_eq!(classify(&PAYLOAD_BYTES), Ok(Datagram::Esp(&PAYLOAD_BYTES[..])));
        assert_eq!(classify(&PAYLOAD_BYTES[..8]), Ok(Datagram::Esp(&PAYLOAD_BYTES[..8])));
        // Too short for ESP, not a marker, not a keepalive.
        assert_eq!(
            classify(&PAYLOAD_BYTES[..7]),
            Err(Error::Truncated { what: "ESP header", needed: 8, have: 7 })
        );
        assert!(classify(&[]).is_err());
        assert!(classify(&[0xff, 0xff]).is_err());
        assert!(classify(&[0, 0, 0]).is_err());
        assert!(classify(&[0]).is_err());
    }
}
