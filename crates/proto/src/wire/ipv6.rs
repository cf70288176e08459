//! IPv6 fixed header (RFC 8200 §3) and the extension-header chain (RFC 8200 §4).
//!
//! [`Packet`] and [`Repr`] cover the 40-byte fixed header. [`ExtHeaders`] walks the extension
//! headers that follow it (Hop-by-Hop, Routing, Fragment, Destination Options and AH), at most
//! [`MAX_EXT_HEADERS`] of them, never reading past the payload length. [`upper_layer`] returns
//! where the walk ends, and [`esp_insertion_point`] where transport-mode ESP goes.

use core::net::Ipv6Addr;

use super::ip::InsertionPoint;
use super::{Error, IpProtocol, Result, ensure_len, read_u16, read_u32, write_u16, write_u32};

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

/// The most extension headers [`ExtHeaders`] walks before giving up.
///
/// RFC 8200 §4.1 recommends at most one of each kind (Destination Options twice), i.e. about
/// seven; 16 leaves room for nesting without letting a crafted packet cost much.
pub const MAX_EXT_HEADERS: usize = 16;

/// Byte ranges and offsets of the fixed header fields.
mod field {
    use core::ops::Range;

    pub(super) const VER_TC_FLOW: Range<usize> = 0..4;
    pub(super) const LENGTH: Range<usize> = 4..6;
    pub(super) const NXT_HDR: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SRC_ADDR: Range<usize> = 8..24;
    pub(super) const DST_ADDR: Range<usize> = 24..40;
}

crate::wire::packet_view! {
    /// A zero-copy view of an IPv6 packet.
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the fixed header and the payload length it announces.
    ///
    /// Bytes past the payload (link-layer padding) are allowed and ignored.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        ensure_len("IPv6 header", HEADER_LEN, len)?;
        ensure_len("IPv6 packet", HEADER_LEN + usize::from(self.payload_len()), len)
    }

    /// The first 32-bit word: version, traffic class and flow label.
    fn ver_tc_flow(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::VER_TC_FLOW])
    }

    /// The version field (6 for IPv6).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW.start] >> 4
    }

    /// Traffic class: DSCP (high six bits) and ECN (low two bits).
    pub fn traffic_class(&self) -> u8 {
        ((self.ver_tc_flow() >> 20) & 0xff) as u8
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    /// Payload length in bytes: everything after the fixed header, extension headers included.
    pub fn payload_len(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// The type of the header after the fixed header.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::DST_ADDR])
    }

    /// The payload (extension headers included), bounded by the payload length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

/// Reads a 16-byte address field.
fn addr(bytes: &[u8]) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&bytes[..16]);
    Ipv6Addr::from(octets)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Updates the first 32-bit word through `f`.
    fn update_ver_tc_flow(&mut self, f: impl FnOnce(u32) -> u32) {
        let data = self.buffer.as_mut();
        let raw = read_u32(&data[field::VER_TC_FLOW]);
        write_u32(&mut data[field::VER_TC_FLOW], f(raw));
    }

    /// Sets the version field.
    pub fn set_version(&mut self, value: u8) {
        self.update_ver_tc_flow(|raw| (raw & 0x0fff_ffff) | (u32::from(value & 0x0f) << 28));
    }

    /// Sets the traffic class.
    pub fn set_traffic_class(&mut self, value: u8) {
        self.update_ver_tc_flow(|raw| (raw & 0xf00f_ffff) | (u32::from(value) << 20));
    }

    /// Sets the flow label (the low 20 bits of `value`).
    pub fn set_flow_label(&mut self, value: u32) {
        self.update_ver_tc_flow(|raw| (raw & 0xfff0_0000) | (value & 0x000f_ffff));
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::LENGTH], value);
    }

    /// Sets the next header.
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = value.0;
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// The payload, writable (bounded by the payload length).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// A parsed IPv6 fixed header. Extension headers are part of the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Type of the header after the fixed header.
    pub next_header: IpProtocol,
    /// Payload length in bytes. [`Repr::emit`] saturates it at 65,535 (no jumbograms).
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class (DSCP and ECN).
    pub traffic_class: u8,
    /// Flow label (20 bits; higher bits are dropped on emit).
    pub flow_label: u32,
}

impl Repr {
    /// Parses the fixed header of `packet`. Fails on a version other than 6.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self> {
        if packet.version() != 6 {
            return Err(Error::Malformed { what: "IPv6 version" });
        }
        Ok(Self {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// The length of the emitted header (always 40).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header into `packet` (at least [`Self::buffer_len`] bytes). The payload
    /// is not touched.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_version(6);
        packet.set_traffic_class(self.traffic_class);
        packet.set_flow_label(self.flow_label);
        packet.set_payload_len(u16::try_from(self.payload_len).unwrap_or(u16::MAX));
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

/// The Fragment header fields (RFC 8200 §4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentInfo {
    /// Offset of this fragment's data in the original packet, in bytes.
    pub offset: u16,
    /// The M flag: more fragments follow.
    pub more: bool,
    /// Identification.
    pub ident: u32,
}

/// One extension header found by [`ExtHeaders`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtHeader {
    /// Which header this is (Hop-by-Hop, Routing, Fragment, Destination Options or AH).
    pub kind: IpProtocol,
    /// Its offset from the start of the IPv6 packet. Its first byte is its Next Header field.
    pub offset: usize,
    /// Its length in bytes.
    pub len: usize,
    /// The type of the header after it.
    pub next_header: IpProtocol,
    /// For a Fragment header, its fields.
    pub fragment: Option<FragmentInfo>,
}

/// Whether `protocol` is an extension header that [`ExtHeaders`] walks through.
pub fn is_ext_header(protocol: IpProtocol) -> bool {
    matches!(
        protocol,
        IpProtocol::HOPOPT
            | IpProtocol::IPV6_ROUTE
            | IpProtocol::IPV6_FRAG
            | IpProtocol::AH
            | IpProtocol::IPV6_OPTS
    )
}

/// An iterator over the extension headers of an IPv6 packet.
///
/// Yields one [`ExtHeader`] per Hop-by-Hop, Routing, Fragment, Destination Options or AH
/// header, and stops at the first other type (the upper layer, ESP, or No Next Header), after
/// the Fragment header of a non-initial fragment (what follows it is the middle of the
/// original packet, not a header), or after the first error. It never reads past the payload
/// length and yields at most [`MAX_EXT_HEADERS`] headers; more is an error. After the last
/// item, [`Self::next_header`] and [`Self::offset`] describe the upper layer.
#[derive(Clone, Debug)]
pub struct ExtHeaders<'a> {
    /// The packet, cut at the end of its payload.
    data: &'a [u8],
    /// Type of the header at `offset`.
    next: IpProtocol,
    /// Offset of the next header to read.
    offset: usize,
    /// Headers yielded so far.
    count: usize,
    /// Set after a non-initial fragment or an error.
    done: bool,
}

impl<'a> ExtHeaders<'a> {
    /// Starts a walk over `packet`, a whole IPv6 packet (fixed header first).
    pub fn new(packet: &'a [u8]) -> Result<Self> {
        let ip = Packet::new_checked(packet)?;
        if ip.version() != 6 {
            return Err(Error::Malformed { what: "IPv6 version" });
        }
        let end = HEADER_LEN + usize::from(ip.payload_len());
        Ok(Self {
            data: &packet[..end],
            next: ip.next_header(),
            offset: HEADER_LEN,
            count: 0,
            done: false,
        })
    }

    /// The type of the header the walk stopped at (or will read next).
    pub fn next_header(&self) -> IpProtocol {
        self.next
    }

    /// The offset of the header the walk stopped at (or will read next).
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Reads the header at `self.offset`, of type `self.next`.
    fn read(&self) -> Result<ExtHeader> {
        let kind = self.next;
        if kind == IpProtocol::HOPOPT && self.offset != HEADER_LEN {
            // RFC 8200 §4.3: Hop-by-Hop only immediately after the fixed header.
            return Err(Error::Malformed { what: "IPv6 Hop-by-Hop header not first" });
        }
        if self.count >= MAX_EXT_HEADERS {
            return Err(Error::Unsupported { what: "IPv6 extension header chain too long" });
        }
        let rest = &self.data[self.offset..];
        ensure_len("IPv6 extension header", 2, rest.len())?;
        let len = match kind {
            IpProtocol::IPV6_FRAG => 8,
            IpProtocol::AH => (usize::from(rest[1]) + 2) * 4,
            _ => (usize::from(rest[1]) + 1) * 8,
        };
        ensure_len("IPv6 extension header", len, rest.len())?;
        let fragment = (kind == IpProtocol::IPV6_FRAG).then(|| {
            let raw = read_u16(&rest[2..4]);
            FragmentInfo { offset: raw & 0xfff8, more: raw & 1 != 0, ident: read_u32(&rest[4..8]) }
        });
        Ok(ExtHeader { kind, offset: self.offset, len, next_header: IpProtocol(rest[0]), fragment })
    }
}

impl Iterator for ExtHeaders<'_> {
    type Item = Result<ExtHeader>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || !is_ext_header(self.next) {
            return None;
        }
        match self.read() {
            Ok(header) => {
                self.count += 1;
                self.offset += header.len;
                self.next = header.next_header;
                if header.fragment.is_some_and(|f| f.offset != 0) {
                    self.done = true;
                }
                Some(Ok(header))
            }
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }
}

/// Where the extension-header chain of an IPv6 packet ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpperLayer {
    /// The upper-layer protocol (possibly ESP or No Next Header).
    pub protocol: IpProtocol,
    /// Offset of the upper-layer header from the start of the packet.
    pub offset: usize,
    /// The packet has a Fragment header.
    pub fragment: bool,
    /// The packet is a fragment with a non-zero offset: the data at `offset` is the middle of
    /// the original payload, and `protocol` only says what the first fragment starts with.
    pub non_initial_fragment: bool,
}

/// Walks the extension headers of `packet` (a whole IPv6 packet) to the upper layer.
pub fn upper_layer(packet: &[u8]) -> Result<UpperLayer> {
    let mut walk = ExtHeaders::new(packet)?;
    let mut fragment = false;
    let mut non_initial_fragment = false;
    for header in walk.by_ref() {
        if let Some(frag) = header?.fragment {
            fragment = true;
            non_initial_fragment |= frag.offset != 0;
        }
    }
    Ok(UpperLayer {
        protocol: walk.next_header(),
        offset: walk.offset(),
        fragment,
        non_initial_fragment,
    })
}

/// Where transport-mode ESP goes in an IPv6 packet (RFC 4303 §3.1.1, RFC 4302 §3.1).
///
/// ESP follows the headers that intermediate nodes read: Hop-by-Hop, Routing and Fragment
/// headers, and a Destination Options header directly followed by a Routing header (options
/// for the routing hops). It precedes everything else: a final Destination Options header, an
/// AH header, and the upper layer, all of which ESP then protects.
pub fn esp_insertion_point(packet: &[u8]) -> Result<InsertionPoint> {
    let ip = Packet::new_checked(packet)?;
    let mut point = InsertionPoint {
        offset: HEADER_LEN,
        next_header_offset: field::NXT_HDR,
        next_header: ip.next_header(),
    };
    for header in ExtHeaders::new(packet)? {
        let header = header?;
        let before_esp = match header.kind {
            IpProtocol::HOPOPT | IpProtocol::IPV6_ROUTE | IpProtocol::IPV6_FRAG => true,
            IpProtocol::IPV6_OPTS => header.next_header == IpProtocol::IPV6_ROUTE,
            _ => false,
        };
        if !before_esp {
            break;
        }
        point = InsertionPoint {
            offset: header.offset + header.len,
            next_header_offset: header.offset,
            next_header: header.next_header,
        };
    }
    Ok(point)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2001:db8::1 → 2001:db8::2, traffic class 0xb8, flow label 0x12345, UDP, hop limit 64,
    /// 12 payload bytes.
    static PACKET_BYTES: [u8; 52] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x0c, 0x11, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x02, 0x03, 0x04,
        0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,
    ];

    static PAYLOAD_BYTES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

    fn repr() -> Repr {
        Repr {
            src_addr: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            dst_addr: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
            next_header: IpProtocol::UDP,
            payload_len: 12,
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0x12345,
        }
    }

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.version(), 6);
        assert_eq!(packet.traffic_class(), 0xb8);
        assert_eq!(packet.flow_label(), 0x12345);
        assert_eq!(packet.payload_len(), 12);
        assert_eq!(packet.next_header(), IpProtocol::UDP);
        assert_eq!(packet.hop_limit(), 64);
        assert_eq!(packet.src_addr(), repr().src_addr);
        assert_eq!(packet.dst_addr(), repr().dst_addr);
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 52];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_version(6);
        packet.set_traffic_class(0xb8);
        packet.set_flow_label(0x12345);
        packet.set_payload_len(12);
        packet.set_next_header(IpProtocol::UDP);
        packet.set_hop_limit(64);
        packet.set_src_addr(repr().src_addr);
        packet.set_dst_addr(repr().dst_addr);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn check_len() {
        for len in 0..PACKET_BYTES.len() {
            assert!(Packet::new_checked(&PACKET_BYTES[..len]).is_err(), "len {len}");
        }
        assert_eq!(
            Packet::new_checked(&PACKET_BYTES[..51]),
            Err(Error::Truncated { what: "IPv6 packet", needed: 52, have: 51 })
        );
    }

    #[test]
    fn parse() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Ok(repr()));
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x4b;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Err(Error::Malformed { what: "IPv6 version" }));
    }

    #[test]
    fn emit() {
        let mut bytes = [0xa5u8; 52];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        repr().emit(&mut packet);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn buffer_len() {
        assert_eq!(repr().buffer_len(), 40);
    }

    // Extension headers for chain tests; the first byte is the Next Header field.

    /// Hop-by-Hop or Destination Options, 8 bytes (one PadN option).
    fn opts(next: IpProtocol) -> Vec<u8> {
        vec![next.0, 0, 0x01, 0x04, 0, 0, 0, 0]
    }

    /// Routing header (type 4, segment routing), 24 bytes: one segment.
    fn routing(next: IpProtocol) -> Vec<u8> {
        let mut h = vec![next.0, 2, 4, 0, 0, 0, 0, 0];
        h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
        h
    }

    /// Fragment header with `offset` in bytes.
    fn fragment(next: IpProtocol, offset: u16, more: bool) -> Vec<u8> {
        let raw = offset | u16::from(more);
        let [hi, lo] = raw.to_be_bytes();
        vec![next.0, 0, hi, lo, 0xde, 0xad, 0xbe, 0xef]
    }

    /// AH with a 12-byte ICV: 24 bytes, payload length 4.
    fn ah(next: IpProtocol) -> Vec<u8> {
        let mut h = vec![next.0, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
        h.extend_from_slice(&[0x55; 12]);
        h
    }

    /// A UDP header, ports 500 → 4500, length 8.
    fn udp() -> Vec<u8> {
        vec![0x01, 0xf4, 0x11, 0x94, 0, 8, 0, 0]
    }

    /// An IPv6 packet whose payload is the concatenation of `parts`.
    fn packet(first: IpProtocol, parts: &[Vec<u8>]) -> Vec<u8> {
        let payload = parts.concat();
        let mut bytes = PACKET_BYTES[..40].to_vec();
        bytes[4..6].copy_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
        bytes[6] = first.0;
        bytes.extend_from_slice(&payload);
        bytes
    }

    use IpProtocol as P;

    #[test]
    fn walk_full_chain() {
        // HbH, DstOpts (for the routing hops), Routing, Fragment, AH, DstOpts (final), UDP.
        let bytes = packet(
            P::HOPOPT,
            &[
                opts(P::IPV6_OPTS),
                opts(P::IPV6_ROUTE),
                routing(P::IPV6_FRAG),
                fragment(P::AH, 0, true),
                ah(P::IPV6_OPTS),
                opts(P::UDP),
                udp(),
            ],
        );
        let headers: Vec<_> = ExtHeaders::new(&bytes).unwrap().map(Result::unwrap).collect();
        let kinds: Vec<_> = headers.iter().map(|h| (h.kind, h.offset, h.len)).collect();
        assert_eq!(
            kinds,
            [
                (P::HOPOPT, 40, 8),
                (P::IPV6_OPTS, 48, 8),
                (P::IPV6_ROUTE, 56, 24),
                (P::IPV6_FRAG, 80, 8),
                (P::AH, 88, 24),
                (P::IPV6_OPTS, 112, 8),
            ]
        );
        assert_eq!(
            headers[3].fragment,
            Some(FragmentInfo { offset: 0, more: true, ident: 0xdead_beef })
        );
        assert_eq!(
            upper_layer(&bytes).unwrap(),
            UpperLayer {
                protocol: P::UDP,
                offset: 120,
                fragment: true,
                non_initial_fragment: false
            }
        );
        // ESP goes after the Fragment header, before AH.
        assert_eq!(
            esp_insertion_point(&bytes).unwrap(),
            InsertionPoint { offset: 88, next_header_offset: 80, next_header: P::AH }
        );
    }

    #[test]
    fn insertion_point_cases() {
        let no_ext = packet(P::TCP, &[vec![0; 20]]);
        assert_eq!(
            esp_insertion_point(&no_ext).unwrap(),
            InsertionPoint { offset: 40, next_header_offset: 6, next_header: P::TCP }
        );
        // A final Destination Options header goes inside ESP.
        let bytes = packet(P::HOPOPT, &[opts(P::IPV6_OPTS), opts(P::UDP), udp()]);
        assert_eq!(
            esp_insertion_point(&bytes).unwrap(),
            InsertionPoint { offset: 48, next_header_offset: 40, next_header: P::IPV6_OPTS }
        );
        // Only a final Destination Options header: ESP right after the fixed header.
        let bytes = packet(P::IPV6_OPTS, &[opts(P::UDP), udp()]);
        assert_eq!(
            esp_insertion_point(&bytes).unwrap(),
            InsertionPoint { offset: 40, next_header_offset: 6, next_header: P::IPV6_OPTS }
        );
        // Destination Options before Routing stay outside, the final one goes inside.
        let bytes = packet(
            P::IPV6_OPTS,
            &[opts(P::IPV6_ROUTE), routing(P::IPV6_OPTS), opts(P::TCP), vec![0; 20]],
        );
        assert_eq!(
            esp_insertion_point(&bytes).unwrap(),
            InsertionPoint { offset: 72, next_header_offset: 48, next_header: P::IPV6_OPTS }
        );
        // HbH, Routing, Fragment: after the Fragment header.
        let bytes = packet(
            P::HOPOPT,
            &[opts(P::IPV6_ROUTE), routing(P::IPV6_FRAG), fragment(P::UDP, 0, false), udp()],
        );
        assert_eq!(
            esp_insertion_point(&bytes).unwrap(),
            InsertionPoint { offset: 80, next_header_offset: 72, next_header: P::UDP }
        );
        // An existing ESP header: the new one goes before it.
        let bytes = packet(P::HOPOPT, &[opts(P::ESP), vec![0, 0, 0, 1, 0, 0, 0, 1]]);
        assert_eq!(
            esp_insertion_point(&bytes).unwrap(),
            InsertionPoint { offset: 48, next_header_offset: 40, next_header: P::ESP }
        );
        assert_eq!(super::super::ip::esp_insertion_point(&bytes), esp_insertion_point(&bytes));
    }

    #[test]
    fn non_initial_fragment_stops_the_walk() {
        // The bytes after the Fragment header look like a Hop-by-Hop header but are data.
        let bytes = packet(P::IPV6_FRAG, &[fragment(P::IPV6_OPTS, 1448, false), vec![0xff; 3]]);
        assert_eq!(
            upper_layer(&bytes).unwrap(),
            UpperLayer {
                protocol: P::IPV6_OPTS,
                offset: 48,
                fragment: true,
                non_initial_fragment: true
            }
        );
    }

    #[test]
    fn walk_errors() {
        // Truncated: the Routing header says 24 bytes, the payload ends before.
        let mut routing_cut = routing(P::UDP);
        routing_cut.truncate(16);
        let bytes = packet(P::IPV6_ROUTE, &[routing_cut]);
        assert_eq!(
            upper_layer(&bytes),
            Err(Error::Truncated { what: "IPv6 extension header", needed: 24, have: 16 })
        );
        assert!(esp_insertion_point(&bytes).is_err());
        // One byte of header.
        let bytes = packet(P::IPV6_OPTS, &[vec![17]]);
        assert!(matches!(upper_layer(&bytes), Err(Error::Truncated { .. })));
        // Payload length shorter than the buffer: the walk stops at the payload length.
        let mut bytes = packet(P::IPV6_OPTS, &[opts(P::UDP), udp()]);
        bytes[5] = 4;
        assert!(matches!(upper_layer(&bytes), Err(Error::Truncated { .. })));
        // Hop-by-Hop not first.
        let bytes = packet(P::IPV6_OPTS, &[opts(P::HOPOPT), opts(P::UDP), udp()]);
        assert_eq!(
            upper_layer(&bytes),
            Err(Error::Malformed { what: "IPv6 Hop-by-Hop header not first" })
        );
        // A chain longer than MAX_EXT_HEADERS.
        let mut parts: Vec<_> = (0..MAX_EXT_HEADERS).map(|_| opts(P::IPV6_OPTS)).collect();
        parts.push(opts(P::UDP));
        parts.push(udp());
        let bytes = packet(P::IPV6_OPTS, &parts);
        assert_eq!(
            upper_layer(&bytes),
            Err(Error::Unsupported { what: "IPv6 extension header chain too long" })
        );
        parts.remove(0);
        let bytes = packet(P::IPV6_OPTS, &parts);
        assert_eq!(upper_layer(&bytes).unwrap().protocol, P::UDP);
        // Not IPv6.
        let mut bytes = packet(P::UDP, &[udp()]);
        bytes[0] = 0x45;
        assert_eq!(upper_layer(&bytes), Err(Error::Malformed { what: "IPv6 version" }));
    }
}
