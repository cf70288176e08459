//! IPv4 header (RFC 791).
//!
//! [`Packet`] reads and writes every header field; options are kept as opaque bytes
//! ([`Packet::options`]). [`Repr`] has no options: parsing a packet with options skips them,
//! and [`Repr::emit`] writes a 20-byte header. Fragments can be viewed with [`Packet`] but not
//! parsed into a [`Repr`], which describes whole datagrams.

use core::net::Ipv4Addr;

use super::ip::{self, InsertionPoint};
use super::{Error, IpProtocol, Result, ensure_len, read_u16, write_u16};

/// Length of the IPv4 header without options.
pub const HEADER_LEN: usize = 20;

/// Byte ranges and offsets of the header fields.
mod field {
    use core::ops::Range;

    pub(super) const VER_IHL: usize = 0;
    pub(super) const DSCP_ECN: usize = 1;
    pub(super) const LENGTH: Range<usize> = 2..4;
    pub(super) const IDENT: Range<usize> = 4..6;
    pub(super) const FLG_OFF: Range<usize> = 6..8;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: Range<usize> = 10..12;
    pub(super) const SRC_ADDR: Range<usize> = 12..16;
    pub(super) const DST_ADDR: Range<usize> = 16..20;
}

/// Flag bits in the flags/fragment-offset word.
const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

crate::wire::packet_view! {
    /// A zero-copy view of an IPv4 packet.
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the fixed header, the options the IHL announces and the
    /// whole datagram the total length announces (which must cover the header).
    ///
    /// Bytes past the total length (link-layer padding) are allowed and ignored.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        ensure_len("IPv4 header", HEADER_LEN, len)?;
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN {
            return Err(Error::Malformed { what: "IPv4 header length (IHL)" });
        }
        ensure_len("IPv4 options", header_len, len)?;
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(Error::Malformed { what: "IPv4 total length" });
        }
        ensure_len("IPv4 packet", total_len, len)
    }

    /// The version field (4 for IPv4).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL × 4), options included.
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The whole second byte: DSCP and ECN (formerly Type of Service).
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Differentiated Services Code Point (RFC 2474): the high six bits of the second byte.
    pub fn dscp(&self) -> u8 {
        self.dscp_ecn() >> 2
    }

    /// Explicit Congestion Notification (RFC 3168): the low two bits of the second byte.
    pub fn ecn(&self) -> u8 {
        self.dscp_ecn() & 0x03
    }

    /// Total length of the datagram in bytes, header included.
    pub fn total_len(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// Identification (used to reassemble fragments).
    pub fn ident(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::IDENT])
    }

    /// The Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        read_u16(&self.buffer.as_ref()[field::FLG_OFF]) & FLAG_DF != 0
    }

    /// The More Fragments flag.
    pub fn more_frags(&self) -> bool {
        read_u16(&self.buffer.as_ref()[field::FLG_OFF]) & FLAG_MF != 0
    }

    /// The fragment offset in bytes (the field is in units of 8 bytes).
    pub fn frag_offset(&self) -> u16 {
        (read_u16(&self.buffer.as_ref()[field::FLG_OFF]) & FRAG_OFFSET_MASK) << 3
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The protocol of the payload.
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::SRC_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::DST_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Whether the header checksum is correct (options included).
    pub fn verify_checksum(&self) -> bool {
        ip::checksum(&self.buffer.as_ref()[..usize::from(self.header_len())]) == 0
    }

    /// The options, as opaque bytes (empty for a 20-byte header).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// The payload: from the end of the header to the total length (padding excluded).
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[usize::from(self.header_len())..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version field.
    pub fn set_version(&mut self, value: u8) {
        let data = self.buffer.as_mut();
        data[field::VER_IHL] = (data[field::VER_IHL] & 0x0f) | (value << 4);
    }

    /// Sets the header length in bytes (a multiple of 4, at most 60).
    pub fn set_header_len(&mut self, value: u8) {
        let data = self.buffer.as_mut();
        data[field::VER_IHL] = (data[field::VER_IHL] & 0xf0) | ((value / 4) & 0x0f);
    }

    /// Sets the whole DSCP/ECN byte.
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets the DSCP (six bits), keeping the ECN bits.
    pub fn set_dscp(&mut self, value: u8) {
        let data = self.buffer.as_mut();
        data[field::DSCP_ECN] = (data[field::DSCP_ECN] & 0x03) | (value << 2);
    }

    /// Sets the ECN (two bits), keeping the DSCP bits.
    pub fn set_ecn(&mut self, value: u8) {
        let data = self.buffer.as_mut();
        data[field::DSCP_ECN] = (data[field::DSCP_ECN] & 0xfc) | (value & 0x03);
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::LENGTH], value);
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::IDENT], value);
    }

    /// Updates the flags/fragment-offset word through `f`.
    fn update_flg_off(&mut self, f: impl FnOnce(u16) -> u16) {
        let data = self.buffer.as_mut();
        let raw = read_u16(&data[field::FLG_OFF]);
        write_u16(&mut data[field::FLG_OFF], f(raw));
    }

    /// Sets the Don't Fragment flag.
    pub fn set_dont_frag(&mut self, value: bool) {
        self.update_flg_off(|raw| if value { raw | FLAG_DF } else { raw & !FLAG_DF });
    }

    /// Sets the More Fragments flag.
    pub fn set_more_frags(&mut self, value: bool) {
        self.update_flg_off(|raw| if value { raw | FLAG_MF } else { raw & !FLAG_MF });
    }

    /// Sets the fragment offset in bytes (a multiple of 8), keeping the flags.
    pub fn set_frag_offset(&mut self, value: u16) {
        self.update_flg_off(|raw| (raw & !FRAG_OFFSET_MASK) | ((value >> 3) & FRAG_OFFSET_MASK));
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Sets the protocol.
    pub fn set_protocol(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.0;
    }

    /// Sets the checksum field (see [`Self::fill_checksum`] to compute it).
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::CHECKSUM], value);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// Computes the header checksum (over the header length, options included) and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header_len = usize::from(self.header_len());
        let checksum = ip::checksum(&self.buffer.as_ref()[..header_len]);
        self.set_checksum(checksum);
    }

    /// The options, writable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let header_len = usize::from(self.header_len());
        &mut self.buffer.as_mut()[HEADER_LEN..header_len]
    }

    /// The payload, writable (bounded by the total length).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = usize::from(self.header_len())..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

/// A parsed IPv4 header of a whole (unfragmented) datagram, options dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: IpProtocol,
    /// Payload length in bytes. [`Repr::emit`] saturates the total length at 65,535, so keep
    /// this at most [`Repr::MAX_PAYLOAD_LEN`].
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// DSCP and ECN byte (copied between inner and outer headers in tunnel mode, RFC 6040).
    pub dscp_ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't Fragment flag (RFC 4301 §8.1 decides how tunnel mode sets it).
    pub dont_frag: bool,
}

impl Repr {
    /// The largest payload a 20-byte header can announce.
    pub const MAX_PAYLOAD_LEN: usize = u16::MAX as usize - HEADER_LEN;

    /// Parses the header of `packet`, skipping options.
    ///
    /// Fails on a version other than 4, a wrong header checksum, or a fragment
    /// ([`Error::Unsupported`]: reassemble first).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self> {
        if packet.version() != 4 {
            return Err(Error::Malformed { what: "IPv4 version" });
        }
        if !packet.verify_checksum() {
            return Err(Error::Malformed { what: "IPv4 header checksum" });
        }
        if packet.more_frags() || packet.frag_offset() != 0 {
            return Err(Error::Unsupported { what: "IPv4 fragment" });
        }
        Ok(Self {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - usize::from(packet.header_len()),
            ttl: packet.ttl(),
            dscp_ecn: packet.dscp_ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// The length of the emitted header (always 20: no options).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header with its checksum into `packet` (which must hold at least
    /// [`Self::buffer_len`] bytes). The payload is not touched.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_version(4);
        packet.set_header_len(20);
        packet.set_dscp_ecn(self.dscp_ecn);
        let total_len = HEADER_LEN.saturating_add(self.payload_len);
        packet.set_total_len(u16::try_from(total_len).unwrap_or(u16::MAX));
        packet.set_ident(self.ident);
        write_u16(&mut packet.buffer.as_mut()[field::FLG_OFF], 0);
        packet.set_dont_frag(self.dont_frag);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

/// Where transport-mode ESP goes in an IPv4 packet: right after the header (options included),
/// replacing the Protocol field (offset 9) with ESP (RFC 4303 §3.1.1).
pub fn esp_insertion_point(packet: &[u8]) -> Result<InsertionPoint> {
    let ip = Packet::new_checked(packet)?;
    if ip.version() != 4 {
        return Err(Error::Malformed { what: "IPv4 version" });
    }
    Ok(InsertionPoint {
        offset: usize::from(ip.header_len()),
        next_header_offset: field::PROTOCOL,
        next_header: ip.protocol(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10.0.0.1 → 10.0.0.2, DSCP EF + ECT(1), ident 0x1234, DF, TTL 64, UDP, 10 payload bytes.
    static PACKET_BYTES: [u8; 30] = [
        0x45, 0xb9, 0x00, 0x1e, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x13, 0xe0, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11, 0x22, 0x33,
    ];

    static PAYLOAD_BYTES: [u8; 10] = [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11, 0x22, 0x33];

    /// IHL 6 with a 4-byte option (NOP NOP NOP EOL), TCP, 4 payload bytes.
    static OPTIONS_BYTES: [u8; 28] = [
        0x46, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x00, 0x40, 0x06, 0x63, 0xd9, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x02, 0x01, 0x01, 0x01, 0x00, 0x01, 0x02, 0x03, 0x04,
    ];

    fn repr() -> Repr {
        Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1),
            dst_addr: Ipv4Addr::new(10, 0, 0, 2),
            protocol: IpProtocol::UDP,
            payload_len: 10,
            ttl: 64,
            dscp_ecn: 0xb9,
            ident: 0x1234,
            dont_frag: true,
        }
    }

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.dscp(), 46);
        assert_eq!(packet.ecn(), 1);
        assert_eq!(packet.total_len(), 30);
        assert_eq!(packet.ident(), 0x1234);
        assert!(packet.dont_frag());
        assert!(!packet.more_frags());
        assert_eq!(packet.frag_offset(), 0);
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.protocol(), IpProtocol::UDP);
        assert_eq!(packet.checksum(), 0x13e0);
        assert_eq!(packet.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert!(packet.verify_checksum());
        assert!(packet.options().is_empty());
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 30];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_version(4);
        packet.set_header_len(20);
        packet.set_dscp(46);
        packet.set_ecn(1);
        packet.set_total_len(30);
        packet.set_ident(0x1234);
        packet.set_frag_offset(0);
        packet.set_dont_frag(true);
        packet.set_more_frags(false);
        // The reserved flag bit of the 0xa5 filler must go too.
        write_u16(&mut packet.buffer[field::FLG_OFF], FLAG_DF);
        packet.set_ttl(64);
        packet.set_protocol(IpProtocol::UDP);
        packet.set_src_addr(Ipv4Addr::new(10, 0, 0, 1));
        packet.set_dst_addr(Ipv4Addr::new(10, 0, 0, 2));
        packet.fill_checksum();
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn fragment_fields() {
        let mut bytes = PACKET_BYTES;
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_more_frags(true);
        packet.set_frag_offset(1480);
        assert!(packet.more_frags() && packet.dont_frag());
        assert_eq!(packet.frag_offset(), 1480);
        packet.set_dont_frag(false);
        assert!(!packet.dont_frag() && packet.more_frags());
        assert_eq!(packet.frag_offset(), 1480);
        packet.fill_checksum();
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()),
            Err(Error::Unsupported { what: "IPv4 fragment" })
        );
    }

    #[test]
    fn check_len() {
        for len in 0..PACKET_BYTES.len() {
            assert!(Packet::new_checked(&PACKET_BYTES[..len]).is_err(), "len {len}");
        }
        for len in 0..OPTIONS_BYTES.len() {
            assert!(Packet::new_checked(&OPTIONS_BYTES[..len]).is_err(), "len {len}");
        }
        // Trailing link-layer padding is fine.
        let mut padded = [0u8; 40];
        padded[..30].copy_from_slice(&PACKET_BYTES);
        assert_eq!(Packet::new_checked(&padded[..]).unwrap().payload(), &PAYLOAD_BYTES[..]);

        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x44; // IHL 4
        assert_eq!(
            Packet::new_checked(&bytes[..]),
            Err(Error::Malformed { what: "IPv4 header length (IHL)" })
        );
        let mut bytes = PACKET_BYTES;
        bytes[3] = 19; // total length below the header length
        assert_eq!(
            Packet::new_checked(&bytes[..]),
            Err(Error::Malformed { what: "IPv4 total length" })
        );
    }

    #[test]
    fn parse() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Ok(repr()));
    }

    #[test]
    fn parse_rejects_bad_checksum_and_version() {
        let mut bytes = PACKET_BYTES;
        bytes[11] ^= 1;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(!packet.verify_checksum());
        assert_eq!(Repr::parse(&packet), Err(Error::Malformed { what: "IPv4 header checksum" }));
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x65;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Err(Error::Malformed { what: "IPv4 version" }));
    }

    #[test]
    fn parse_skips_options() {
        let packet = Packet::new_checked(&OPTIONS_BYTES[..]).unwrap();
        assert_eq!(packet.header_len(), 24);
        assert_eq!(packet.options(), &[1, 1, 1, 0]);
        assert_eq!(packet.payload(), &[1, 2, 3, 4]);
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(repr.payload_len, 4);
        assert_eq!(repr.protocol, IpProtocol::TCP);
        assert_eq!(
            esp_insertion_point(&OPTIONS_BYTES).unwrap(),
            InsertionPoint { offset: 24, next_header_offset: 9, next_header: IpProtocol::TCP }
        );
    }

    #[test]
    fn emit() {
        let repr = repr();
        let mut bytes = [0xa5u8; 30];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        repr.emit(&mut packet);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn buffer_len() {
        assert_eq!(repr().buffer_len(), 20);
    }

    #[test]
    fn checksum_known_answers() {
        // The example header from the Wikipedia "IPv4 header checksum" article.
        let header = hex::decode("450000730000400040110000c0a80001c0a800c7").unwrap();
        assert_eq!(ip::checksum(&header), 0xb861);
        // RFC 1071 §3: the sum of 00 01 f2 03 f4 f5 f6 f7 is ddf2.
        assert_eq!(ip::sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0xddf2);
        assert_eq!(ip::checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0x220d);
        // Odd length: the last byte is padded with zero.
        assert_eq!(ip::sum(&[0x12, 0x34, 0x56]), 0x6834);
        assert_eq!(ip::checksum(&PACKET_BYTES[..20]), 0);
    }

    #[test]
    fn insertion_point() {
        assert_eq!(
            esp_insertion_point(&PACKET_BYTES).unwrap(),
            InsertionPoint { offset: 20, next_header_offset: 9, next_header: IpProtocol::UDP }
        );
        assert_eq!(ip::esp_insertion_point(&PACKET_BYTES), esp_insertion_point(&PACKET_BYTES));
    }
}
