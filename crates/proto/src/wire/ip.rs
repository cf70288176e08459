//! Version-independent IP helpers: the flow key that policy lookups match on.

use core::net::IpAddr;

use super::IpProtocol;

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
