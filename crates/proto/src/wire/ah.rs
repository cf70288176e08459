//! Authentication Header (RFC 4302 §2).
//!
//! `Next Header ‖ Payload Len ‖ Reserved ‖ SPI ‖ Sequence Number ‖ ICV`. The Payload Len field
//! counts 32-bit words minus 2, so the header is `(payload_len + 2) * 4` bytes and the ICV is
//! what follows the 12 fixed bytes. RFC 4302 §2.2 also requires the header to be a multiple of
//! 8 bytes over IPv6; that depends on the IP version, so it is checked by the caller.

use super::{Error, IpProtocol, Result, ensure_len, read_u16, read_u32, write_u16, write_u32};

/// Length of the fixed part of the header (without ICV).
pub const HEADER_LEN: usize = 12;

/// The longest ICV the Payload Len field can describe: (255 + 2) × 4 − 12 bytes.
pub const MAX_ICV_LEN: usize = (u8::MAX as usize + 2) * 4 - HEADER_LEN;

/// Byte ranges and offsets of the header fields.
mod field {
    use core::ops::Range;

    pub(super) const NXT_HDR: usize = 0;
    pub(super) const PAYLOAD_LEN: usize = 1;
    pub(super) const RESERVED: Range<usize> = 2..4;
    pub(super) const SPI: Range<usize> = 4..8;
    pub(super) const SEQUENCE_NUMBER: Range<usize> = 8..12;
}

crate::wire::packet_view! {
    /// A zero-copy view of an AH header and what follows it.
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the fixed header and that the Payload Len field describes
    /// a header of at least 12 bytes that fits in the buffer. (The ICV length is then a
    /// multiple of 4 by construction.)
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        ensure_len("AH header", HEADER_LEN, len)?;
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::Malformed { what: "AH payload length" });
        }
        ensure_len("AH ICV", header_len, len)
    }

    /// The type of the header after AH.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// The raw Payload Len field: the header length in 32-bit words, minus 2.
    pub fn payload_len(&self) -> u8 {
        self.buffer.as_ref()[field::PAYLOAD_LEN]
    }

    /// The header length in bytes, ICV included: `(payload_len + 2) * 4`.
    pub fn header_len(&self) -> usize {
        (usize::from(self.payload_len()) + 2) * 4
    }

    /// The Reserved field (sent as zero, ignored on receipt but covered by the ICV).
    pub fn reserved(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::RESERVED])
    }

    /// Security Parameters Index.
    pub fn spi(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::SPI])
    }

    /// Sequence number (low 32 bits).
    pub fn seq_number(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::SEQUENCE_NUMBER])
    }

    /// The Integrity Check Value.
    pub fn icv(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// Everything after the header (the protected payload).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the next header.
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = value.0;
    }

    /// Sets the raw Payload Len field.
    pub fn set_payload_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PAYLOAD_LEN] = value;
    }

    /// Sets the Reserved field.
    pub fn set_reserved(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::RESERVED], value);
    }

    /// Sets the SPI.
    pub fn set_spi(&mut self, value: u32) {
        write_u32(&mut self.buffer.as_mut()[field::SPI], value);
    }

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, value: u32) {
        write_u32(&mut self.buffer.as_mut()[field::SEQUENCE_NUMBER], value);
    }

    /// The ICV, writable.
    pub fn icv_mut(&mut self) -> &mut [u8] {
        let header_len = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..header_len]
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let header_len = self.header_len();
        &mut self.buffer.as_mut()[header_len..]
    }
}

/// A parsed AH header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// The type of the header after AH.
    pub next_header: IpProtocol,
    /// Security Parameters Index.
    pub spi: u32,
    /// Sequence number (low 32 bits).
    pub seq: u32,
    /// ICV length in bytes: a multiple of 4, at most [`MAX_ICV_LEN`] (12 for HMAC-SHA1-96,
    /// 16 for HMAC-SHA2-256-128). [`Repr::emit`] rounds the Payload Len field down and
    /// saturates it, so other values do not describe the emitted header.
    pub icv_len: usize,
}

impl Repr {
    /// Parses the header of `packet`. Fails on SPI 0 (reserved, RFC 4302 §2.4).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self> {
        if packet.spi() == 0 {
            return Err(Error::Malformed { what: "AH SPI" });
        }
        Ok(Self {
            next_header: packet.next_header(),
            spi: packet.spi(),
            seq: packet.seq_number(),
            icv_len: packet.header_len() - HEADER_LEN,
        })
    }

    /// The length of the emitted header, ICV included.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN.saturating_add(self.icv_len)
    }

    /// Writes the header into `packet` (at least [`Self::buffer_len`] bytes) with Reserved and
    /// the ICV zeroed, as the ICV computation needs them (RFC 4302 §3.3.3.1).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let words = self.buffer_len() / 4;
        packet.set_next_header(self.next_header);
        packet.set_payload_len(u8::try_from(words.saturating_sub(2)).unwrap_or(u8::MAX));
        packet.set_reserved(0);
        packet.set_spi(self.spi);
        packet.set_seq_number(self.seq);
        packet.buffer.as_mut()[HEADER_LEN..self.buffer_len()].fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Next header TCP, Payload Len 4 (24-byte header), SPI 0x1000, seq 5, a 12-byte ICV, then
    /// 4 payload bytes.
    static PACKET_BYTES: [u8; 28] = [
        0x06, 0x04, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x05, 0xc0, 0xc1, 0xc2,
        0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb, 0xde, 0xad, 0xbe, 0xef,
    ];

    static ICV_BYTES: [u8; 12] =
        [0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb];

    const REPR: Repr = Repr { next_header: IpProtocol::TCP, spi: 0x1000, seq: 5, icv_len: 12 };

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.next_header(), IpProtocol::TCP);
        assert_eq!(packet.payload_len(), 4);
        assert_eq!(packet.header_len(), 24);
        assert_eq!(packet.reserved(), 0);
        assert_eq!(packet.spi(), 0x1000);
        assert_eq!(packet.seq_number(), 5);
        assert_eq!(packet.icv(), &ICV_BYTES[..]);
        assert_eq!(packet.payload(), &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 28];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_next_header(IpProtocol::TCP);
        packet.set_payload_len(4);
        packet.set_reserved(0);
        packet.set_spi(0x1000);
        packet.set_seq_number(5);
        packet.icv_mut().copy_from_slice(&ICV_BYTES);
        packet.payload_mut().copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn check_len() {
        for len in 0..24 {
            assert!(Packet::new_checked(&PACKET_BYTES[..len]).is_err(), "len {len}");
        }
        assert_eq!(
            Packet::new_checked(&PACKET_BYTES[..23]),
            Err(Error::Truncated { what: "AH ICV", needed: 24, have: 23 })
        );
        assert!(Packet::new_checked(&PACKET_BYTES[..24]).unwrap().payload().is_empty());
        // Payload Len 0 would make an 8-byte header, shorter than the fixed fields.
        let mut bytes = PACKET_BYTES;
        bytes[1] = 0;
        assert_eq!(
            Packet::new_checked(&bytes[..]),
            Err(Error::Malformed { what: "AH payload length" })
        );
        // Payload Len 1: a 12-byte header with no ICV.
        bytes[1] = 1;
        assert!(Packet::new_checked(&bytes[..]).unwrap().icv().is_empty());
        // Payload Len 255 needs 1028 bytes.
        bytes[1] = 255;
        assert_eq!(
            Packet::new_checked(&bytes[..]),
            Err(Error::Truncated { what: "AH ICV", needed: 1028, have: 28 })
        );
    }

    #[test]
    fn parse() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Ok(REPR));
        let mut bytes = PACKET_BYTES;
        bytes[4..8].fill(0);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Err(Error::Malformed { what: "AH SPI" }));
    }

    #[test]
    fn emit() {
        let mut bytes = [0xa5u8; 24];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        REPR.emit(&mut packet);
        assert_eq!(packet.icv(), &[0; 12]);
        packet.icv_mut().copy_from_slice(&ICV_BYTES);
        assert_eq!(bytes, PACKET_BYTES[..24]);
        // The longest ICV.
        let repr = Repr { icv_len: MAX_ICV_LEN, ..REPR };
        let mut bytes = vec![0xa5u8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.payload_len(), 255);
        assert_eq!(Repr::parse(&packet), Ok(repr));
    }

    #[test]
    fn buffer_len() {
        assert_eq!(REPR.buffer_len(), 24);
    }
}
