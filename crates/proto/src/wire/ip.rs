//! Version-independent IP helpers: the flow key that policy lookups match on, the internet
//! checksum (RFC 1071) with the UDP pseudo-headers, and where transport-mode ESP goes.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Error, IpProtocol, Result, ensure_len, ipv4, ipv6, read_u16};

/// The selector-relevant fields of an IP packet (RFC 4301 §4.4.1.1): addresses, the upper-layer
/// protocol and its ports.
///
/// Ports are meaningful for TCP, UDP and SCTP. For ICMP and ICMPv6 both `src_port` and
/// `dst_port` hold `type << 8 | code` (the 16-bit form RFC 4301 §4.4.1.1 defines for the port
/// selectors). For other protocols, and for non-initial fragments whose ports are not in the
/// packet (`ports_opaque`), both are 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Upper-layer protocol (after walking IPv6 extension headers).
    pub protocol: IpProtocol,
    /// Source port (or ICMP type/code, see above).
    pub src_port: u16,
    /// Destination port (or ICMP type/code, see above).
    pub dst_port: u16,
    /// The packet is a non-initial fragment: its ports are not available (RFC 4301 "OPAQUE").
    pub ports_opaque: bool,
}

/// Where transport-mode ESP is inserted into an IP packet (RFC 4303 §3.1.1).
///
/// To insert ESP, the caller copies the bytes from `offset` on to make room for the ESP header
/// (and IV), writes the ESP header at `offset`, sets the byte at `next_header_offset` to
/// [`IpProtocol::ESP`] and puts `next_header` in the ESP trailer. For IPv4 `offset` is the
/// header length and `next_header_offset` is 9 (the Protocol field); for IPv6 see
/// [`ipv6::esp_insertion_point`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InsertionPoint {
    /// Where the ESP header goes: the first byte that ESP protects.
    pub offset: usize,
    /// The byte holding the protocol of what follows, to be overwritten with 50 (ESP).
    pub next_header_offset: usize,
    /// The value that byte had: it becomes the Next Header of the ESP trailer.
    pub next_header: IpProtocol,
}

/// The IP version of `packet` (the high nibble of its first byte), or `None` if it is empty.
pub fn version(packet: &[u8]) -> Option<u8> {
    packet.first().map(|b| b >> 4)
}

/// Where transport-mode ESP goes in an IPv4 or IPv6 packet, chosen by the version nibble.
///
/// See [`ipv4::esp_insertion_point`] and [`ipv6::esp_insertion_point`].
pub fn esp_insertion_point(packet: &[u8]) -> Result<InsertionPoint> {
    match version(packet) {
        Some(4) => ipv4::esp_insertion_point(packet),
        Some(6) => ipv6::esp_insertion_point(packet),
        Some(_) => Err(Error::Malformed { what: "IP version" }),
        None => Err(Error::Truncated { what: "IP packet", needed: 1, have: 0 }),
    }
}

/// Extracts the [`FlowKey`] of an IPv4 or IPv6 packet (chosen by the version nibble).
///
/// IPv6 extension headers are walked ([`ipv6::upper_layer`]). Ports are read for TCP, UDP and
/// SCTP; ICMP (in IPv4) and ICMPv6 (in IPv6) give `type << 8 | code` in both port fields; other
/// protocols give 0. A non-initial fragment has `ports_opaque` set and ports 0. An upper-layer
/// header that is cut short (shorter than its fixed part: TCP 20, UDP 8, SCTP 12, ICMP 8,
/// ICMPv6 4 bytes) is [`Error::Truncated`]: a first fragment too small to hold the ports is
/// rejected rather than matched without them (the "tiny fragment" attack, RFC 1858).
pub fn flow_key(packet: &[u8]) -> Result<FlowKey> {
    match version(packet) {
        Some(4) => flow_key_v4(packet),
        Some(6) => flow_key_v6(packet),
        Some(_) => Err(Error::Malformed { what: "IP version" }),
        None => Err(Error::Truncated { what: "IP packet", needed: 1, have: 0 }),
    }
}

fn flow_key_v4(packet: &[u8]) -> Result<FlowKey> {
    let ip = ipv4::Packet::new_checked(packet)?;
    let protocol = ip.protocol();
    let ports_opaque = ip.frag_offset() != 0;
    let (src_port, dst_port) =
        if ports_opaque { (0, 0) } else { ports(protocol, IpProtocol::ICMP, ip.payload())? };
    Ok(FlowKey {
        src: IpAddr::V4(ip.src_addr()),
        dst: IpAddr::V4(ip.dst_addr()),
        protocol,
        src_port,
        dst_port,
        ports_opaque,
    })
}

fn flow_key_v6(packet: &[u8]) -> Result<FlowKey> {
    let ip = ipv6::Packet::new_checked(packet)?;
    let upper = ipv6::upper_layer(packet)?;
    let ports_opaque = upper.non_initial_fragment;
    let (src_port, dst_port) = if ports_opaque {
        (0, 0)
    } else {
        let end = ipv6::HEADER_LEN + usize::from(ip.payload_len());
        let payload = packet.get(upper.offset..end).unwrap_or_default();
        ports(upper.protocol, IpProtocol::ICMPV6, payload)?
    };
    Ok(FlowKey {
        src: IpAddr::V6(ip.src_addr()),
        dst: IpAddr::V6(ip.dst_addr()),
        protocol: upper.protocol,
        src_port,
        dst_port,
        ports_opaque,
    })
}

/// Reads the port selectors of `upper` (the upper-layer header and what follows).
fn ports(protocol: IpProtocol, icmp: IpProtocol, upper: &[u8]) -> Result<(u16, u16)> {
    let (what, needed) = match protocol {
        IpProtocol::TCP => ("TCP header", 20),
        IpProtocol::UDP => ("UDP header", 8),
        IpProtocol::SCTP => ("SCTP common header", 12),
        IpProtocol::ICMP if protocol == icmp => ("ICMP header", 8),
        IpProtocol::ICMPV6 if protocol == icmp => ("ICMPv6 header", 4),
        _ => return Ok((0, 0)),
    };
    ensure_len(what, needed, upper.len())?;
    if protocol == icmp {
        let type_code = read_u16(&upper[0..2]);
        Ok((type_code, type_code))
    } else {
        Ok((read_u16(&upper[0..2]), read_u16(&upper[2..4])))
    }
}

/// The folded ones'-complement sum of `data` as big-endian 16-bit words (RFC 1071), an odd last
/// byte padded with zero. Not complemented: combine partial sums with [`combine`], then
/// complement.
pub fn sum(data: &[u8]) -> u16 {
    let mut chunks = data.chunks_exact(2);
    let mut acc: u64 = 0;
    for word in chunks.by_ref() {
        acc += u64::from(read_u16(word));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    fold(acc)
}

/// Adds ones'-complement partial sums (from [`sum`] or the pseudo-header helpers).
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// The internet checksum of `data` (RFC 1071): the complement of [`sum`].
///
/// Computing it over a header whose checksum field is correct gives 0.
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// Folds a 64-bit accumulator of 16-bit words into a ones'-complement 16-bit sum.
fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    // The loop leaves `acc <= 0xffff`.
    u16::try_from(acc).unwrap_or(u16::MAX)
}

/// The partial sum of the IPv4 pseudo-header (RFC 768): source, destination, zero, protocol,
/// and the upper-layer length.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, len: u16) -> u16 {
    let mut header = [0u8; 12];
    header[0..4].copy_from_slice(&src.octets());
    header[4..8].copy_from_slice(&dst.octets());
    header[9] = protocol.0;
    header[10..12].copy_from_slice(&len.to_be_bytes());
    sum(&header)
}

/// The partial sum of the IPv6 pseudo-header (RFC 8200 §8.1): source, destination, the 32-bit
/// upper-layer length, three zero bytes and the next header.
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, protocol: IpProtocol, len: u32) -> u16 {
    let mut header = [0u8; 40];
    header[0..16].copy_from_slice(&src.octets());
    header[16..32].copy_from_slice(&dst.octets());
    header[32..36].copy_from_slice(&len.to_be_bytes());
    header[39] = protocol.0;
    sum(&header)
}

/// The partial sum of the pseudo-header for `src` and `dst` of either version.
///
/// Fails with [`Error::Malformed`] if the addresses are of different versions, or if `len`
/// does not fit the IPv4 16-bit length.
pub fn pseudo_header(src: &IpAddr, dst: &IpAddr, protocol: IpProtocol, len: usize) -> Result<u16> {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let len = u16::try_from(len).map_err(|_| Error::Malformed { what: "IPv4 length" })?;
            Ok(pseudo_header_v4(*src, *dst, protocol, len))
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let len = u32::try_from(len).map_err(|_| Error::Malformed { what: "IPv6 length" })?;
            Ok(pseudo_header_v6(src, dst, protocol, len))
        }
        _ => Err(Error::Malformed { what: "pseudo-header address families" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10.0.0.1 → 10.0.0.2, TCP 1234 → 80 (a 20-byte TCP header, SYN).
    static TCP_V4: [u8; 40] = [
        0x45, 0x00, 0x00, 0x28, 0x00, 0x01, 0x40, 0x00, 0x40, 0x06, 0x26, 0xcd, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x02, 0x04, 0xd2, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x50, 0x02, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    const V4_SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const V4_DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const V6_SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const V6_DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

    /// An IPv4 packet with `payload`, built with [`ipv4::Repr`].
    fn v4(protocol: IpProtocol, payload: &[u8]) -> Vec<u8> {
        let repr = ipv4::Repr {
            src_addr: V4_SRC,
            dst_addr: V4_DST,
            protocol,
            payload_len: payload.len(),
            ttl: 64,
            dscp_ecn: 0,
            ident: 1,
            dont_frag: true,
        };
        let mut bytes = vec![0; repr.buffer_len() + payload.len()];
        let mut packet = ipv4::Packet::new_unchecked(&mut bytes[..]);
        repr.emit(&mut packet);
        packet.payload_mut().copy_from_slice(payload);
        bytes
    }

    /// An IPv6 packet with `payload` (extension headers included), built with [`ipv6::Repr`].
    fn v6(next_header: IpProtocol, payload: &[u8]) -> Vec<u8> {
        let repr = ipv6::Repr {
            src_addr: V6_SRC,
            dst_addr: V6_DST,
            next_header,
            payload_len: payload.len(),
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        };
        let mut bytes = vec![0; repr.buffer_len() + payload.len()];
        let mut packet = ipv6::Packet::new_unchecked(&mut bytes[..]);
        repr.emit(&mut packet);
        packet.payload_mut().copy_from_slice(payload);
        bytes
    }

    fn key(src: IpAddr, dst: IpAddr, protocol: IpProtocol, ports: (u16, u16)) -> FlowKey {
        FlowKey { src, dst, protocol, src_port: ports.0, dst_port: ports.1, ports_opaque: false }
    }

    const TCP_HEADER: [u8; 20] =
        [0x04, 0xd2, 0x00, 0x50, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0x20, 0x00, 0, 0, 0, 0];
    const UDP_HEADER: [u8; 8] = [0x01, 0xf4, 0x11, 0x94, 0x00, 0x08, 0x00, 0x00];
    const SCTP_HEADER: [u8; 12] = [0x0b, 0x59, 0x0b, 0x5a, 0, 0, 0, 1, 0, 0, 0, 0];
    /// Echo request (type 8) / ICMPv6 echo request (type 128), code 0.
    const ICMP_ECHO: [u8; 8] = [8, 0, 0xf7, 0xff, 0, 0, 0, 0];
    const ICMPV6_DEST_UNREACH: [u8; 8] = [1, 4, 0, 0, 0, 0, 0, 0];

    #[test]
    fn version_nibble() {
        assert_eq!(version(&[]), None);
        assert_eq!(version(&[0x45]), Some(4));
        assert_eq!(version(&[0x60, 0]), Some(6));
    }

    #[test]
    fn flow_key_v4() {
        let (s, d) = (IpAddr::V4(V4_SRC), IpAddr::V4(V4_DST));
        assert_eq!(flow_key(&TCP_V4), Ok(key(s, d, IpProtocol::TCP, (1234, 80))));
        assert_eq!(v4(IpProtocol::TCP, &TCP_HEADER), TCP_V4);
        let udp = v4(IpProtocol::UDP, &UDP_HEADER);
        assert_eq!(flow_key(&udp), Ok(key(s, d, IpProtocol::UDP, (500, 4500))));
        let sctp = v4(IpProtocol::SCTP, &SCTP_HEADER);
        assert_eq!(flow_key(&sctp), Ok(key(s, d, IpProtocol::SCTP, (2905, 2906))));
        let icmp = v4(IpProtocol::ICMP, &ICMP_ECHO);
        assert_eq!(flow_key(&icmp), Ok(key(s, d, IpProtocol::ICMP, (0x0800, 0x0800))));
        let esp = v4(IpProtocol::ESP, &[0, 0, 1, 0, 0, 0, 0, 1]);
        assert_eq!(flow_key(&esp), Ok(key(s, d, IpProtocol::ESP, (0, 0))));
        // ICMPv6 inside IPv4 is just another protocol.
        let odd = v4(IpProtocol::ICMPV6, &ICMP_ECHO);
        assert_eq!(flow_key(&odd), Ok(key(s, d, IpProtocol::ICMPV6, (0, 0))));
    }

    #[test]
    fn flow_key_v6() {
        let (s, d) = (IpAddr::V6(V6_SRC), IpAddr::V6(V6_DST));
        let tcp = v6(IpProtocol::TCP, &TCP_HEADER);
        assert_eq!(flow_key(&tcp), Ok(key(s, d, IpProtocol::TCP, (1234, 80))));
        let udp = v6(IpProtocol::UDP, &UDP_HEADER);
        assert_eq!(flow_key(&udp), Ok(key(s, d, IpProtocol::UDP, (500, 4500))));
        let sctp = v6(IpProtocol::SCTP, &SCTP_HEADER);
        assert_eq!(flow_key(&sctp), Ok(key(s, d, IpProtocol::SCTP, (2905, 2906))));
        let icmp = v6(IpProtocol::ICMPV6, &ICMPV6_DEST_UNREACH);
        assert_eq!(flow_key(&icmp), Ok(key(s, d, IpProtocol::ICMPV6, (0x0104, 0x0104))));
        // Behind Hop-by-Hop and Destination Options headers.
        let mut chain = vec![60, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0];
        chain.extend_from_slice(&UDP_HEADER);
        let udp = v6(IpProtocol::HOPOPT, &chain);
        assert_eq!(flow_key(&udp), Ok(key(s, d, IpProtocol::UDP, (500, 4500))));
        // Behind an initial fragment (offset 0, M set).
        let mut chain = vec![6, 0, 0x00, 0x01, 0, 0, 0, 7];
        chain.extend_from_slice(&TCP_HEADER);
        let tcp = v6(IpProtocol::IPV6_FRAG, &chain);
        assert_eq!(flow_key(&tcp), Ok(key(s, d, IpProtocol::TCP, (1234, 80))));
        // No next header.
        let none = v6(IpProtocol::IPV6_NONXT, &[]);
        assert_eq!(flow_key(&none), Ok(key(s, d, IpProtocol::IPV6_NONXT, (0, 0))));
    }

    #[test]
    fn non_initial_fragments_are_opaque() {
        // IPv4: fragment offset 1480 (185 × 8), the "TCP header" here is mid-stream data.
        let mut bytes = TCP_V4;
        let mut packet = ipv4::Packet::new_unchecked(&mut bytes[..]);
        packet.set_frag_offset(1480);
        packet.fill_checksum();
        let key = flow_key(&bytes).unwrap();
        assert!(key.ports_opaque);
        assert_eq!((key.protocol, key.src_port, key.dst_port), (IpProtocol::TCP, 0, 0));
        // Even when fewer bytes follow than a TCP header.
        let short = v4(IpProtocol::TCP, &[1, 2, 3]);
        let mut short = short;
        let mut packet = ipv4::Packet::new_unchecked(&mut short[..]);
        packet.set_frag_offset(8);
        assert!(flow_key(&short).unwrap().ports_opaque);

        // IPv6: Fragment header with offset 1232 and then 3 bytes.
        let frag = v6(IpProtocol::IPV6_FRAG, &[17, 0, 0x04, 0xd0, 0, 0, 0, 7, 1, 2, 3]);
        let key = flow_key(&frag).unwrap();
        assert!(key.ports_opaque);
        assert_eq!((key.protocol, key.src_port, key.dst_port), (IpProtocol::UDP, 0, 0));
    }

    #[test]
    fn truncated_upper_layer() {
        let tcp = v4(IpProtocol::TCP, &TCP_HEADER[..19]);
        assert_eq!(
            flow_key(&tcp),
            Err(Error::Truncated { what: "TCP header", needed: 20, have: 19 })
        );
        let udp = v6(IpProtocol::UDP, &UDP_HEADER[..7]);
        assert_eq!(
            flow_key(&udp),
            Err(Error::Truncated { what: "UDP header", needed: 8, have: 7 })
        );
        assert!(matches!(flow_key(&v4(IpProtocol::SCTP, &[0; 11])), Err(Error::Truncated { .. })));
        assert!(matches!(
            flow_key(&v4(IpProtocol::ICMP, &[8, 0, 0])),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(flow_key(&v6(IpProtocol::ICMPV6, &[1, 4])), Err(Error::Truncated { .. })));
        // Bytes past the IP length do not count.
        let mut padded = v4(IpProtocol::UDP, &UDP_HEADER[..4]);
        padded.extend_from_slice(&[0; 16]);
        assert!(matches!(flow_key(&padded), Err(Error::Truncated { .. })));
        for len in 0..TCP_V4.len() {
            assert!(flow_key(&TCP_V4[..len]).is_err(), "len {len}");
        }
        assert_eq!(flow_key(&[0x50; 40]), Err(Error::Malformed { what: "IP version" }));
    }

    #[test]
    fn pseudo_headers() {
        let v4_sum = pseudo_header_v4(V4_SRC, V4_DST, IpProtocol::UDP, 8);
        let ip4 = (IpAddr::V4(V4_SRC), IpAddr::V4(V4_DST));
        assert_eq!(pseudo_header(&ip4.0, &ip4.1, IpProtocol::UDP, 8), Ok(v4_sum));
        // 0a00 + 0001 + 0a00 + 0002 + 0011 + 0008
        assert_eq!(v4_sum, 0x141c);
        let v6_sum = pseudo_header_v6(&V6_SRC, &V6_DST, IpProtocol::UDP, 8);
        // 2 × (2001 + 0db8) + 0001 + 0002 + 0008 + 0011
        assert_eq!(v6_sum, 0x5b72 + 0x1c);
        assert!(pseudo_header(&ip4.0, &IpAddr::V6(V6_DST), IpProtocol::UDP, 8).is_err());
        assert!(pseudo_header(&ip4.0, &ip4.1, IpProtocol::UDP, 70_000).is_err());
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
        assert_eq!(combine(&[]), 0);
    }
}
