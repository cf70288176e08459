//! Traffic selectors (RFC 7296 §3.13.1, RFC 4301 §4.4.1.1) and their swanctl.conf syntax.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::str::FromStr;

use crate::wire::IpProtocol;

/// Why a traffic selector could not be built or parsed.
///
/// Every message names the offending input and says what would have been valid, so a config
/// loader can print it as is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TsError {
    /// The two ends of an address range are of different families.
    #[error(
        "address range {start}-{end} mixes IPv4 and IPv6: both ends must be of the same family"
    )]
    AddressFamilyMismatch {
        /// First address.
        start: IpAddr,
        /// Last address.
        end: IpAddr,
    },
    /// The first address of a range is above the last one.
    #[error("address range {start}-{end} is reversed: write it as {end}-{start}")]
    AddressRangeReversed {
        /// First address as written.
        start: IpAddr,
        /// Last address as written.
        end: IpAddr,
    },
    /// The address is swanctl's `dynamic`: not a selector by itself, but a placeholder for the
    /// tunnel's outer address or the virtual IP, which IKE resolves when the CHILD_SA is
    /// negotiated. Carries the protocol and ports that were written with it (`dynamic[tcp/80]`)
    /// so the caller can build the selector once the address is known.
    #[error(
        "`dynamic` is resolved to the tunnel or virtual IP address when the CHILD_SA is \
         negotiated; it is not a fixed traffic selector"
    )]
    Dynamic {
        /// Protocol given with `dynamic` (0 = any).
        protocol: IpProtocol,
        /// Start of the port range given with `dynamic`.
        start_port: u16,
        /// End of the port range given with `dynamic`.
        end_port: u16,
    },
    /// The address part is not a subnet, host, range or `dynamic`.
    #[error(
        "invalid address `{0}`: expected a subnet (10.1.0.0/16, fec1::/16), a host \
         (10.1.0.5), a range (10.1.0.1-10.1.0.9) or `dynamic`"
    )]
    InvalidAddress(String),
    /// A port (or ICMP type/code) is not a number in range or one of the keywords.
    #[error(
        "invalid port `{0}`: expected a number 0-65535, a range like 1024-2048, `any`, `%any` \
         or `opaque` (for ICMP: a type 0-255, `type(code)`, or type << 8 | code)"
    )]
    InvalidPort(String),
    /// A port range whose start is above its end (other than 65535-0, which is OPAQUE).
    #[error(
        "port range {start}-{end} is reversed: write it as {end}-{start} (or `opaque` for \
         packets without available ports)"
    )]
    InvalidPortRange {
        /// Start as written.
        start: u16,
        /// End as written.
        end: u16,
    },
    /// The prefix length after `/` is not a number up to the family's address length.
    #[error("invalid prefix length `/{prefix}`: expected 0-{max}")]
    InvalidPrefix {
        /// The prefix length as written.
        prefix: String,
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
    /// The protocol is not a known name or a number 0-255.
    #[error(
        "unknown protocol `{0}`: expected a name (tcp, udp, icmp, ipv6-icmp, sctp, gre, esp, \
         ...), a number 0-255, or `any`"
    )]
    InvalidProtocol(String),
    /// The selector's structure is broken (for example a `[` without `]`).
    #[error("malformed traffic selector `{input}`: {reason}")]
    Malformed {
        /// The whole input.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A service name (`http`) was given as a port: the sans-IO core has no services database
    /// (strongSwan uses getservbyname(3)).
    #[error("service name `{0}` is not supported as a port: write the port number (e.g. tcp/80)")]
    ServiceName(String),
}

/// An IKEv2 traffic selector (RFC 7296 §3.13.1): an inclusive address range, an IP protocol
/// and an inclusive port range.
///
/// - **Addresses:** `start..=end`, both of the same family (enforced by the constructors).
/// - **Protocol:** 0 means any protocol.
/// - **Ports:** `0..=65535` means any port, including packets whose ports are not available
///   (RFC 4301 §4.4.1.1: ANY matches OPAQUE). `start_port > end_port` means OPAQUE: only
///   packets whose ports are *not* available (non-initial fragments) match; it is always stored
///   as 65535-0, the encoding RFC 4301 §4.4.1.1 gives for IKEv2. Any other range matches only
///   packets that carry ports in it.
/// - **ICMP and ICMPv6:** the port range applies to `type << 8 | code` (RFC 7296 §3.13.1,
///   RFC 4301 §4.4.1.1), the value [`FlowKey`](crate::wire::ip::FlowKey) puts in both of its
///   port fields. RFC 4301 has one type/code selector per policy rather than a local/remote
///   pair, so [`SaSelectors`](super::SaSelectors) requires the type/code to be in both the
///   local and the remote selector; see there for how strongSwan places it.
///
/// As a set, the port dimension is {OPAQUE} ∪ {0, …, 65535}: "any" is the whole set, OPAQUE
/// the single extra element, and a range a subset of the numbers. [`is_subset_of`] and
/// [`intersect`] follow that model (as strongSwan's `get_subset` does).
///
/// [`is_subset_of`]: Self::is_subset_of
/// [`intersect`]: Self::intersect
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    start: IpAddr,
    end: IpAddr,
    protocol: IpProtocol,
    start_port: u16,
    end_port: u16,
}

impl TrafficSelector {
    /// All addresses of `start..=end`, any protocol, any port.
    ///
    /// Errors when the two addresses are of different families or `start > end`.
    pub fn new(start: IpAddr, end: IpAddr) -> Result<Self, TsError> {
        if start.is_ipv4() != end.is_ipv4() {
            return Err(TsError::AddressFamilyMismatch { start, end });
        }
        if bits(start) > bits(end) {
            return Err(TsError::AddressRangeReversed { start, end });
        }
        Ok(Self { start, end, protocol: IpProtocol(0), start_port: 0, end_port: u16::MAX })
    }

    /// The subnet `addr/prefix_len`, any protocol, any port.
    ///
    /// Host bits set in `addr` are cleared (`10.1.2.3/16` is `10.1.0.0/16`), as strongSwan
    /// does. Errors when `prefix_len` exceeds 32 (IPv4) or 128 (IPv6).
    pub fn from_cidr(addr: IpAddr, prefix_len: u8) -> Result<Self, TsError> {
        let width = width(addr);
        if u32::from(prefix_len) > width {
            return Err(TsError::InvalidPrefix {
                prefix: prefix_len.to_string(),
                max: width as u8,
            });
        }
        // The host part: the low (width - prefix_len) bits.
        let host_bits = width - u32::from(prefix_len);
        let host_mask = u128::MAX.checked_shr(128 - host_bits).unwrap_or(0);
        let start = from_bits(addr, bits(addr) & !host_mask);
        let end = from_bits(addr, bits(addr) | host_mask);
        Self::new(start, end)
    }

    /// The single address `addr` (a /32 or /128), any protocol, any port.
    pub fn host(addr: IpAddr) -> Self {
        Self { start: addr, end: addr, protocol: IpProtocol(0), start_port: 0, end_port: u16::MAX }
    }

    /// Every IPv4 address (`0.0.0.0/0`), any protocol, any port.
    pub fn any_ipv4() -> Self {
        Self {
            start: Ipv4Addr::UNSPECIFIED.into(),
            end: Ipv4Addr::BROADCAST.into(),
            protocol: IpProtocol(0),
            start_port: 0,
            end_port: u16::MAX,
        }
    }

    /// Every IPv6 address (`::/0`), any protocol, any port.
    pub fn any_ipv6() -> Self {
        Self {
            start: Ipv6Addr::UNSPECIFIED.into(),
            end: Ipv6Addr::from(u128::MAX).into(),
            protocol: IpProtocol(0),
            start_port: 0,
            end_port: u16::MAX,
        }
    }

    /// This selector restricted to `protocol` (0 = any).
    #[must_use]
    pub fn with_protocol(self, protocol: IpProtocol) -> Self {
        Self { protocol, ..self }
    }

    /// This selector restricted to ports `start_port..=end_port` (for ICMP: to the
    /// `type << 8 | code` values in that range). `0, 65535` is any port; a range with
    /// `start_port > end_port` is OPAQUE and is stored as 65535-0.
    #[must_use]
    pub fn with_ports(self, start_port: u16, end_port: u16) -> Self {
        let (start_port, end_port) =
            if start_port > end_port { (u16::MAX, 0) } else { (start_port, end_port) };
        Self { start_port, end_port, ..self }
    }

    /// First address of the range.
    pub fn start(&self) -> IpAddr {
        self.start
    }

    /// Last address of the range (inclusive).
    pub fn end(&self) -> IpAddr {
        self.end
    }

    /// IP protocol; 0 means any.
    pub fn protocol(&self) -> IpProtocol {
        self.protocol
    }

    /// First port (or ICMP `type << 8 | code`); 65535 for OPAQUE.
    pub fn start_port(&self) -> u16 {
        self.start_port
    }

    /// Last port, inclusive; 0 for OPAQUE.
    pub fn end_port(&self) -> u16 {
        self.end_port
    }

    /// Whether this is an IPv6 selector (`TS_IPV6_ADDR_RANGE`).
    pub fn is_ipv6(&self) -> bool {
        self.start.is_ipv6()
    }

    /// Whether the ports are unrestricted (0-65535), which also admits OPAQUE.
    pub fn is_any_port(&self) -> bool {
        self.start_port == 0 && self.end_port == u16::MAX
    }

    /// Whether the ports are OPAQUE: only packets whose ports are unavailable match.
    pub fn is_opaque(&self) -> bool {
        self.start_port > self.end_port
    }

    /// The prefix length when the address range is exactly one CIDR subnet.
    pub fn prefix_len(&self) -> Option<u8> {
        let span = bits(self.end) - bits(self.start);
        // A subnet spans 2^k - 1 (all-ones low bits) and starts on a multiple of 2^k.
        let aligned = span & span.wrapping_add(1) == 0 && bits(self.start) & span == 0;
        aligned.then(|| (width(self.start) - span.count_ones()) as u8)
    }

    /// Whether `addr` is inside the address range (always false for the other family).
    pub fn contains_addr(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.start.is_ipv4()
            && bits(self.start) <= bits(addr)
            && bits(addr) <= bits(self.end)
    }

    /// Whether a packet with this address, protocol and port (or ICMP `type << 8 | code`)
    /// matches. `ports_opaque` says the packet's ports are unavailable (a non-initial
    /// fragment, RFC 4301 §4.4.1.1); `port` is then ignored.
    pub fn matches(
        &self,
        addr: IpAddr,
        protocol: IpProtocol,
        port: u16,
        ports_opaque: bool,
    ) -> bool {
        self.contains_addr(addr)
            && (self.protocol.0 == 0 || self.protocol == protocol)
            && self.matches_port(port, ports_opaque)
    }

    /// Whether a packet's port (or its absence) is in the port set; see the type docs.
    fn matches_port(&self, port: u16, ports_opaque: bool) -> bool {
        if self.is_any_port() {
            true
        } else if self.is_opaque() {
            ports_opaque
        } else {
            !ports_opaque && self.start_port <= port && port <= self.end_port
        }
    }

    /// Whether every packet this selector matches is also matched by `other`.
    pub fn is_subset_of(&self, other: &Self) -> bool {
        let ports = if other.is_any_port() {
            true
        } else if other.is_opaque() || self.is_any_port() {
            // `other` admits only OPAQUE, or only numbers while `self` admits everything.
            self.is_opaque() && other.is_opaque()
        } else {
            !self.is_opaque()
                && other.start_port <= self.start_port
                && self.end_port <= other.end_port
        };
        self.start.is_ipv4() == other.start.is_ipv4()
            && bits(other.start) <= bits(self.start)
            && bits(self.end) <= bits(other.end)
            && (other.protocol.0 == 0 || other.protocol == self.protocol)
            && ports
    }

    /// The selector matching exactly the packets both selectors match, or `None` when no
    /// packet matches both (RFC 7296 §2.9 narrowing).
    pub fn intersect(&self, other: &Self) -> Option<Self> {
        if self.start.is_ipv4() != other.start.is_ipv4() {
            return None;
        }
        let start = if bits(self.start) >= bits(other.start) { self.start } else { other.start };
        let end = if bits(self.end) <= bits(other.end) { self.end } else { other.end };
        if bits(start) > bits(end) {
            return None;
        }
        let protocol = match (self.protocol.0, other.protocol.0) {
            (0, _) => other.protocol,
            (_, 0) => self.protocol,
            (a, b) if a == b => self.protocol,
            _ => return None,
        };
        let (start_port, end_port) = if self.is_any_port() {
            (other.start_port, other.end_port)
        } else if other.is_any_port() {
            (self.start_port, self.end_port)
        } else if self.is_opaque() || other.is_opaque() {
            if self.is_opaque() && other.is_opaque() {
                (u16::MAX, 0)
            } else {
                return None;
            }
        } else {
            let from = self.start_port.max(other.start_port);
            let to = self.end_port.min(other.end_port);
            if from > to {
                return None;
            }
            (from, to)
        };
        Some(Self { start, end, protocol, start_port, end_port })
    }
}

/// Formats in strongSwan's notation: `10.1.0.0/16`, `10.1.0.1..10.1.0.9` for a range that is
/// not a subnet, then `[proto/ports]` when either is restricted (`[tcp/80]`, `[udp/1024-2048]`,
/// `[tcp/OPAQUE]`, `[any/80]`).
///
/// ICMP type/code ranges print as a type (`[icmp/8]`: type 8, any code), `type(code)` for one
/// exact value (`[icmp/3(4)]`), or a range of those. strongSwan's log output prints an exact
/// value with code 0 as a bare type; we don't, because the swanctl.conf reading of a bare type
/// below 256 is "any code" and the output must parse back to the same selector.
impl fmt::Display for TrafficSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix_len() {
            Some(len) => write!(f, "{}/{len}", self.start)?,
            None => write!(f, "{}..{}", self.start, self.end)?,
        }
        let has_protocol = self.protocol.0 != 0;
        let has_ports = !self.is_any_port();
        if !has_protocol && !has_ports {
            return Ok(());
        }
        f.write_str("[")?;
        match protocol_name(self.protocol) {
            _ if !has_protocol => f.write_str("any")?,
            Some(name) => f.write_str(name)?,
            None => write!(f, "{}", self.protocol.0)?,
        }
        if has_ports {
            f.write_str("/")?;
            if self.is_opaque() {
                f.write_str("OPAQUE")?;
            } else if is_icmp(self.protocol) {
                let (from, to) = (self.start_port, self.end_port);
                let whole_types = from & 0xff == 0 && to & 0xff == 0xff;
                if whole_types && from >> 8 == to >> 8 {
                    write!(f, "{}", from >> 8)?;
                } else if from == to {
                    write!(f, "{}({})", from >> 8, from & 0xff)?;
                } else {
                    // Start: a bare type means code 0; end: a bare type means code 255.
                    match from & 0xff {
                        0 => write!(f, "{}-", from >> 8)?,
                        code => write!(f, "{}({code})-", from >> 8)?,
                    }
                    match to & 0xff {
                        0xff => write!(f, "{}", to >> 8)?,
                        code => write!(f, "{}({code})", to >> 8)?,
                    }
                }
            } else if self.start_port == self.end_port {
                write!(f, "{}", self.start_port)?;
            } else {
                write!(f, "{}-{}", self.start_port, self.end_port)?;
            }
        }
        f.write_str("]")
    }
}

/// Parses one swanctl.conf `local_ts`/`remote_ts` entry (strongSwan `vici_config.c`
/// `parse_ts`):
///
/// - address: `10.1.0.0/16`, `fec1::/16`, `0.0.0.0/0`, `::/0` (subnet; host bits are
///   cleared), `10.1.0.5` (host), `10.1.0.1-10.1.0.9` (range; `..` as in strongSwan's output
///   is accepted too), or `dynamic`, which yields [`TsError::Dynamic`];
/// - optionally `[proto]` or `[proto/port]`: proto is a name (`tcp`, `udp`, `icmp`,
///   `ipv6-icmp`/`icmpv6`, `sctp`, …, case-insensitive), a number 0-255, `any`/`%any` or
///   empty; port is a number, a range `1024-2048`, `any`/`%any`/empty (all ports), or
///   `opaque` (RFC 4301 OPAQUE; `65535-0` also means OPAQUE).
///
/// For `icmp` and `ipv6-icmp`, as documented for swanctl.conf, a port value below 256 is an
/// ICMP type with any code (as a range start: code 0; as a range end: code 255) and a value of
/// 256 or more is `type << 8 | code`; `type(code)` (strongSwan's log notation) is accepted too.
///
/// Service names (`[tcp/http]`) are rejected with [`TsError::ServiceName`].
impl FromStr for TrafficSelector {
    type Err = TsError;

    fn from_str(input: &str) -> Result<Self, TsError> {
        let input = input.trim();
        let malformed = |reason| TsError::Malformed { input: input.to_owned(), reason };
        let (addr, proto_ports) = match input.split_once('[') {
            None if input.contains(']') => return Err(malformed("`]` without `[`")),
            None => (input, None),
            Some((addr, rest)) => {
                let inner = rest.strip_suffix(']').ok_or_else(|| {
                    malformed("the protocol/port part must end the selector with `]`")
                })?;
                if inner.contains(['[', ']']) {
                    return Err(malformed("only one [protocol/port] part is allowed"));
                }
                (addr.trim_end(), Some(inner))
            }
        };
        let (protocol, start_port, end_port) = match proto_ports {
            None => (IpProtocol(0), 0, u16::MAX),
            Some(inner) => {
                let (proto, ports) = match inner.split_once('/') {
                    Some((proto, ports)) => (proto.trim(), ports.trim()),
                    None => (inner.trim(), ""),
                };
                let protocol = parse_protocol(proto)?;
                let (start, end) = parse_ports(ports, is_icmp(protocol))?;
                (protocol, start, end)
            }
        };
        let selector = if addr.eq_ignore_ascii_case("dynamic") {
            return Err(TsError::Dynamic { protocol, start_port, end_port });
        } else if let Some((net, len)) = addr.split_once('/') {
            let net = parse_addr(net)?;
            let max = width(net) as u8;
            let invalid = || TsError::InvalidPrefix { prefix: len.to_owned(), max };
            let len = parse_decimal::<u8>(len).ok_or_else(invalid)?;
            if len > max {
                return Err(invalid());
            }
            Self::from_cidr(net, len)?
        } else if let Some((start, end)) = addr.split_once("..").or_else(|| addr.split_once('-')) {
            Self::new(parse_addr(start)?, parse_addr(end)?)?
        } else {
            Self::host(parse_addr(addr)?)
        };
        Ok(selector.with_protocol(protocol).with_ports(start_port, end_port))
    }
}

/// Whether `protocol` carries ICMP type/code in the port selectors.
fn is_icmp(protocol: IpProtocol) -> bool {
    protocol == IpProtocol::ICMP || protocol == IpProtocol::ICMPV6
}

/// Names as in `/etc/protocols` (what strongSwan prints via getprotobynumber(3)).
const PROTOCOL_NAMES: &[(&str, u8)] = &[
    ("icmp", 1),
    ("igmp", 2),
    ("ipencap", 4),
    ("tcp", 6),
    ("udp", 17),
    ("ipv6", 41),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("ipv6-icmp", 58),
    ("sctp", 132),
    ("mobility-header", 135),
    ("udplite", 136),
];

/// Extra names accepted when parsing.
const PROTOCOL_ALIASES: &[(&str, u8)] = &[("icmpv6", 58), ("icmp6", 58), ("ipv4", 4)];

/// The `/etc/protocols` name of a protocol, if we know one.
fn protocol_name(protocol: IpProtocol) -> Option<&'static str> {
    PROTOCOL_NAMES.iter().find(|&&(_, number)| number == protocol.0).map(|&(name, _)| name)
}

fn parse_protocol(text: &str) -> Result<IpProtocol, TsError> {
    if text.is_empty() || text.eq_ignore_ascii_case("any") || text.eq_ignore_ascii_case("%any") {
        return Ok(IpProtocol(0));
    }
    if let Some(number) = parse_decimal::<u8>(text) {
        return Ok(IpProtocol(number));
    }
    PROTOCOL_NAMES
        .iter()
        .chain(PROTOCOL_ALIASES)
        .find(|(name, _)| name.eq_ignore_ascii_case(text))
        .map(|&(_, number)| IpProtocol(number))
        .ok_or_else(|| TsError::InvalidProtocol(text.to_owned()))
}

/// Parses the port part (after `/`), returning the stored (start, end) pair.
fn parse_ports(text: &str, icmp: bool) -> Result<(u16, u16), TsError> {
    if text.is_empty() || text.eq_ignore_ascii_case("any") || text.eq_ignore_ascii_case("%any") {
        return Ok((0, u16::MAX));
    }
    if text.eq_ignore_ascii_case("opaque") {
        return Ok((u16::MAX, 0));
    }
    if text.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(TsError::ServiceName(text.to_owned()));
    }
    let (from, to) = text.split_once('-').unwrap_or((text, text));
    let (from, to) = (from.trim(), to.trim());
    if (from, to) == ("65535", "0") {
        return Ok((u16::MAX, 0)); // the RFC 4301 OPAQUE encoding written out
    }
    let start = parse_port(from, icmp, false)?;
    let end = parse_port(to, icmp, true)?;
    if start > end {
        return Err(TsError::InvalidPortRange { start, end });
    }
    Ok((start, end))
}

/// One port value; for ICMP, a bare type is widened to code 0 (`is_end == false`) or code 255.
fn parse_port(text: &str, icmp: bool, is_end: bool) -> Result<u16, TsError> {
    if icmp && let Some((ty, code)) = text.strip_suffix(')').and_then(|t| t.split_once('(')) {
        let (Some(ty), Some(code)) = (parse_decimal::<u8>(ty), parse_decimal::<u8>(code)) else {
            return Err(TsError::InvalidPort(text.to_owned()));
        };
        return Ok(u16::from(ty) << 8 | u16::from(code));
    }
    match parse_decimal::<u16>(text) {
        Some(ty) if icmp && ty < 256 => Ok(ty << 8 | if is_end { 0xff } else { 0 }),
        Some(port) => Ok(port),
        None => Err(TsError::InvalidPort(text.to_owned())),
    }
}

fn parse_addr(text: &str) -> Result<IpAddr, TsError> {
    text.trim().parse().map_err(|_| TsError::InvalidAddress(text.trim().to_owned()))
}

/// Decimal digits only (no sign, no whitespace), unlike `str::parse`, which accepts `+5`.
fn parse_decimal<N: FromStr>(text: &str) -> Option<N> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The address as an unsigned integer (IPv4 in the low 32 bits).
fn bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v4) => u32::from(v4).into(),
        IpAddr::V6(v6) => v6.into(),
    }
}

/// The address of `family`'s family whose integer value is `value` (truncated for IPv4).
fn from_bits(family: IpAddr, value: u128) -> IpAddr {
    match family {
        IpAddr::V4(_) => Ipv4Addr::from(value as u32).into(),
        IpAddr::V6(_) => Ipv6Addr::from(value).into(),
    }
}

/// Address length in bits.
fn width(addr: IpAddr) -> u32 {
    if addr.is_ipv4() { 32 } else { 128 }
}

/// Number of host bits of the smallest power-of-two block that could hold the range: 0 for a
/// host, 8 for a /24, 32 for 0.0.0.0/0. Used to order SPD entries by specificity.
pub(crate) fn host_bits(ts: &TrafficSelector) -> u32 {
    let span = bits(ts.end) - bits(ts.start);
    u128::BITS - span.leading_zeros()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ts(s: &str) -> TrafficSelector {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_valid_selectors() {
        const ANY: (u16, u16) = (0, 65535);
        const OPAQUE: (u16, u16) = (65535, 0);
        #[rustfmt::skip]
        type Row = (&'static str, &'static str, &'static str, u8, (u16, u16));
        let table: &[Row] = &[
            // input, start, end, protocol, ports
            ("10.1.0.0/16", "10.1.0.0", "10.1.255.255", 0, ANY),
            ("10.1.2.3/16", "10.1.0.0", "10.1.255.255", 0, ANY), // host bits cleared
            ("10.1.0.5", "10.1.0.5", "10.1.0.5", 0, ANY),
            ("10.1.0.5/32", "10.1.0.5", "10.1.0.5", 0, ANY),
            ("10.1.0.1-10.1.0.9", "10.1.0.1", "10.1.0.9", 0, ANY),
            ("10.1.0.1..10.1.0.9", "10.1.0.1", "10.1.0.9", 0, ANY),
            ("10.1.0.9-10.1.0.9", "10.1.0.9", "10.1.0.9", 0, ANY),
            ("fec1::/16", "fec1::", "fec1:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0, ANY),
            ("fec1::1-fec1::9", "fec1::1", "fec1::9", 0, ANY),
            ("0.0.0.0/0", "0.0.0.0", "255.255.255.255", 0, ANY),
            ("::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0, ANY),
            ("  10.0.0.0/8  ", "10.0.0.0", "10.255.255.255", 0, ANY),
            ("10.0.0.0/8[tcp]", "10.0.0.0", "10.255.255.255", 6, ANY),
            ("10.0.0.0/8[TCP/80]", "10.0.0.0", "10.255.255.255", 6, (80, 80)),
            ("10.0.0.0/8[udp/1024-2048]", "10.0.0.0", "10.255.255.255", 17, (1024, 2048)),
            ("10.0.0.0/8[udp/%any]", "10.0.0.0", "10.255.255.255", 17, ANY),
            ("10.0.0.0/8[udp/any]", "10.0.0.0", "10.255.255.255", 17, ANY),
            ("10.0.0.0/8[udp/]", "10.0.0.0", "10.255.255.255", 17, ANY),
            ("10.0.0.0/8[tcp/opaque]", "10.0.0.0", "10.255.255.255", 6, OPAQUE),
            ("10.0.0.0/8[tcp/OPAQUE]", "10.0.0.0", "10.255.255.255", 6, OPAQUE),
            ("10.0.0.0/8[tcp/65535-0]", "10.0.0.0", "10.255.255.255", 6, OPAQUE),
            ("10.0.0.0/8[any/53]", "10.0.0.0", "10.255.255.255", 0, (53, 53)),
            ("10.0.0.0/8[%any/53]", "10.0.0.0", "10.255.255.255", 0, (53, 53)),
            ("10.0.0.0/8[/53]", "10.0.0.0", "10.255.255.255", 0, (53, 53)),
            ("10.0.0.0/8[47]", "10.0.0.0", "10.255.255.255", 47, ANY),
            ("10.0.0.0/8[gre]", "10.0.0.0", "10.255.255.255", 47, ANY),
            ("10.0.0.0/8[sctp/9899]", "10.0.0.0", "10.255.255.255", 132, (9899, 9899)),
            ("10.0.0.0/8[icmp]", "10.0.0.0", "10.255.255.255", 1, ANY),
            ("10.0.0.0/8[icmp/8]", "10.0.0.0", "10.255.255.255", 1, (0x0800, 0x08ff)),
            ("10.0.0.0/8[icmp/2048]", "10.0.0.0", "10.255.255.255", 1, (0x0800, 0x0800)),
            ("10.0.0.0/8[icmp/3(4)]", "10.0.0.0", "10.255.255.255", 1, (0x0304, 0x0304)),
            ("10.0.0.0/8[icmp/65535-0]", "10.0.0.0", "10.255.255.255", 1, OPAQUE),
            ("10.0.0.0/8[icmp/opaque]", "10.0.0.0", "10.255.255.255", 1, OPAQUE),
            ("10.0.0.0/8[icmp/3-4]", "10.0.0.0", "10.255.255.255", 1, (0x0300, 0x04ff)),
            ("10.0.0.0/8[icmp/0(0)]", "10.0.0.0", "10.255.255.255", 1, (0, 0)),
            (
                "fec1::/16[ipv6-icmp/128]",
                "fec1::",
                "fec1:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                58,
                (0x8000, 0x80ff),
            ),
            (
                "fec1::/16[icmpv6/135]",
                "fec1::",
                "fec1:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                58,
                (0x8700, 0x87ff),
            ),
            (
                "::/0[58/1(4)]",
                "::",
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                58,
                (0x0104, 0x0104),
            ),
        ];
        for &(input, start, end, protocol, (start_port, end_port)) in table {
            let got = ts(input);
            assert_eq!(got.start(), ip(start), "{input}");
            assert_eq!(got.end(), ip(end), "{input}");
            assert_eq!(got.protocol(), IpProtocol(protocol), "{input}");
            assert_eq!((got.start_port(), got.end_port()), (start_port, end_port), "{input}");
        }
    }

    #[test]
    fn rejects_invalid_selectors() {
        use TsError::*;
        let s = |s: &str| s.to_owned();
        let v4 = |s: &str| ip(s);
        #[rustfmt::skip]
        let table: Vec<(&str, TsError)> = vec![
            ("", InvalidAddress(s(""))),
            ("10.1.0.0/33", InvalidPrefix { prefix: s("33"), max: 32 }),
            ("fec1::/129", InvalidPrefix { prefix: s("129"), max: 128 }),
            ("10.1.0.0/", InvalidPrefix { prefix: s(""), max: 32 }),
            ("10.1.0.0/+8", InvalidPrefix { prefix: s("+8"), max: 32 }),
            ("10.1.0.0/255.255.0.0", InvalidPrefix { prefix: s("255.255.0.0"), max: 32 }),
            ("10.1.0.256", InvalidAddress(s("10.1.0.256"))),
            ("example.com", InvalidAddress(s("example.com"))),
            ("%any", InvalidAddress(s("%any"))),
            ("10.1.0.9-10.1.0.1", AddressRangeReversed { start: v4("10.1.0.9"), end: v4("10.1.0.1") }),
            ("10.1.0.1-fec1::1", AddressFamilyMismatch { start: v4("10.1.0.1"), end: v4("fec1::1") }),
            ("10.0.0.0/8[tcp/http]", ServiceName(s("http"))),
            ("10.0.0.0/8[tcp/http-alt]", ServiceName(s("http-alt"))),
            ("10.0.0.0/8[tcp/65536]", InvalidPort(s("65536"))),
            ("10.0.0.0/8[tcp/-5]", InvalidPort(s(""))),
            ("10.0.0.0/8[tcp/80x]", InvalidPort(s("80x"))),
            ("10.0.0.0/8[tcp/2048-1024]", InvalidPortRange { start: 2048, end: 1024 }),
            ("10.0.0.0/8[icmp/256(1)]", InvalidPort(s("256(1)"))),
            ("10.0.0.0/8[icmp/4-3]", InvalidPortRange { start: 0x0400, end: 0x03ff }),
            ("10.0.0.0/8[tcpx/80]", InvalidProtocol(s("tcpx"))),
            ("10.0.0.0/8[256]", InvalidProtocol(s("256"))),
            ("10.0.0.0/8[tcp/80", Malformed { input: s("10.0.0.0/8[tcp/80"), reason: "the protocol/port part must end the selector with `]`" }),
            ("10.0.0.0/8[tcp]x", Malformed { input: s("10.0.0.0/8[tcp]x"), reason: "the protocol/port part must end the selector with `]`" }),
            ("10.0.0.0/8]", Malformed { input: s("10.0.0.0/8]"), reason: "`]` without `[`" }),
            ("10.0.0.0/8[tcp][udp]", Malformed { input: s("10.0.0.0/8[tcp][udp]"), reason: "only one [protocol/port] part is allowed" }),
            ("dynamic", Dynamic { protocol: IpProtocol(0), start_port: 0, end_port: 65535 }),
            ("dynamic[tcp/80]", Dynamic { protocol: IpProtocol::TCP, start_port: 80, end_port: 80 }),
            ("dynamic[tcp/http]", ServiceName(s("http"))),
        ];
        for (input, expected) in table {
            assert_eq!(input.parse::<TrafficSelector>(), Err(expected), "{input}");
        }
    }

    #[test]
    fn error_messages_say_what_is_valid() {
        let err = "10.0.0.0/8[tcp/http]".parse::<TrafficSelector>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "service name `http` is not supported as a port: write the port number (e.g. tcp/80)"
        );
        let err = "10.0.0.0/8[tcp/2048-1024]".parse::<TrafficSelector>().unwrap_err();
        assert!(err.to_string().contains("1024-2048"), "{err}");
        let err = "dynamic".parse::<TrafficSelector>().unwrap_err();
        assert!(err.to_string().contains("negotiated"), "{err}");
    }

    #[test]
    fn display_uses_strongswan_notation_and_round_trips() {
        #[rustfmt::skip]
        let table = [
            ("10.1.0.0/16", "10.1.0.0/16"),
            ("10.1.0.5", "10.1.0.5/32"),
            ("10.1.0.1-10.1.0.9", "10.1.0.1..10.1.0.9"),
            ("10.1.0.0-10.1.0.255", "10.1.0.0/24"),
            ("fec1::/16", "fec1::/16"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("::/0", "::/0"),
            ("10.0.0.0/8[tcp]", "10.0.0.0/8[tcp]"),
            ("10.0.0.0/8[6/80]", "10.0.0.0/8[tcp/80]"),
            ("10.0.0.0/8[udp/1024-2048]", "10.0.0.0/8[udp/1024-2048]"),
            ("10.0.0.0/8[tcp/opaque]", "10.0.0.0/8[tcp/OPAQUE]"),
            ("10.0.0.0/8[any/53]", "10.0.0.0/8[any/53]"),
            ("10.0.0.0/8[253]", "10.0.0.0/8[253]"),
            ("10.0.0.0/8[icmp/8]", "10.0.0.0/8[icmp/8]"),
            ("10.0.0.0/8[icmp/2048]", "10.0.0.0/8[icmp/8(0)]"),
            ("10.0.0.0/8[icmp/0(0)]", "10.0.0.0/8[icmp/0(0)]"),
            ("10.0.0.0/8[icmp/3-4]", "10.0.0.0/8[icmp/3-4]"),
            ("10.0.0.0/8[icmp/772-1279]", "10.0.0.0/8[icmp/3(4)-4]"),
            ("10.0.0.0/8[icmp/768-1025]", "10.0.0.0/8[icmp/3-4(1)]"),
            ("fec1::/16[icmpv6/135]", "fec1::/16[ipv6-icmp/135]"),
        ];
        for (input, shown) in table {
            let parsed = ts(input);
            assert_eq!(parsed.to_string(), shown, "{input}");
            assert_eq!(ts(shown), parsed, "{shown} must parse back to the same selector");
        }
    }

    #[test]
    fn constructors_validate() {
        assert!(TrafficSelector::new(ip("10.0.0.1"), ip("::1")).is_err());
        assert!(TrafficSelector::new(ip("10.0.0.2"), ip("10.0.0.1")).is_err());
        assert_eq!(TrafficSelector::from_cidr(ip("0.0.0.0"), 0), Ok(TrafficSelector::any_ipv4()));
        assert_eq!(TrafficSelector::from_cidr(ip("::"), 0), Ok(TrafficSelector::any_ipv6()));
        assert_eq!(TrafficSelector::from_cidr(ip("fec1::1"), 128).unwrap().prefix_len(), Some(128));
        assert!(TrafficSelector::from_cidr(ip("10.0.0.0"), 33).is_err());
        let opaque = TrafficSelector::any_ipv4().with_ports(9, 3);
        assert!(opaque.is_opaque());
        assert_eq!((opaque.start_port(), opaque.end_port()), (65535, 0));
        assert_eq!(ts("10.1.0.1-10.1.0.9").prefix_len(), None);
        assert_eq!(ts("10.1.0.0-10.1.1.255").prefix_len(), Some(23));
        assert_eq!(ts("10.1.1.0-10.1.2.255").prefix_len(), None);
    }

    #[test]
    fn matching() {
        let tcp = IpProtocol::TCP;
        let udp = IpProtocol::UDP;
        let icmp = IpProtocol::ICMP;
        #[rustfmt::skip]
        let table: &[(&str, &str, IpProtocol, u16, bool, bool)] = &[
            // selector, address, protocol, port, ports_opaque, expected
            ("10.1.0.0/16", "10.1.200.7", tcp, 80, false, true),
            ("10.1.0.0/16", "10.1.0.0", udp, 0, false, true),           // first address
            ("10.1.0.0/16", "10.1.255.255", udp, 0, false, true),       // last address
            ("10.1.0.0/16", "10.2.0.0", tcp, 80, false, false),
            ("10.1.0.0/16", "10.0.255.255", tcp, 80, false, false),
            ("10.1.0.0/16", "::ffff:10.1.0.1", tcp, 80, false, false),  // other family
            ("10.1.0.0/16", "10.1.0.1", tcp, 0, true, true),            // ANY matches OPAQUE
            ("::/0", "10.1.0.1", tcp, 80, false, false),
            ("::/0", "fec1::1", tcp, 80, false, true),
            ("fec1::/16", "fec2::1", tcp, 80, false, false),
            ("10.1.0.1-10.1.0.9", "10.1.0.9", tcp, 80, false, true),
            ("10.1.0.1-10.1.0.9", "10.1.0.10", tcp, 80, false, false),
            ("10.0.0.0/8[tcp]", "10.0.0.1", tcp, 22, false, true),
            ("10.0.0.0/8[tcp]", "10.0.0.1", udp, 22, false, false),
            ("10.0.0.0/8[tcp/80]", "10.0.0.1", tcp, 80, false, true),
            ("10.0.0.0/8[tcp/80]", "10.0.0.1", tcp, 81, false, false),
            ("10.0.0.0/8[tcp/80]", "10.0.0.1", tcp, 0, true, false),    // fragment: ports unknown
            ("10.0.0.0/8[udp/1024-2048]", "10.0.0.1", udp, 1024, false, true),
            ("10.0.0.0/8[udp/1024-2048]", "10.0.0.1", udp, 2048, false, true),
            ("10.0.0.0/8[udp/1024-2048]", "10.0.0.1", udp, 2049, false, false),
            ("10.0.0.0/8[udp/1024-2048]", "10.0.0.1", udp, 1023, false, false),
            ("10.0.0.0/8[any/53]", "10.0.0.1", udp, 53, false, true),
            ("10.0.0.0/8[any/53]", "10.0.0.1", tcp, 53, false, true),
            ("10.0.0.0/8[tcp/opaque]", "10.0.0.1", tcp, 0, true, true),
            ("10.0.0.0/8[tcp/opaque]", "10.0.0.1", tcp, 80, false, false),
            ("10.0.0.0/8[icmp/8]", "10.0.0.1", icmp, 0x0800, false, true),  // echo request
            ("10.0.0.0/8[icmp/8]", "10.0.0.1", icmp, 0x0801, false, true),  // any code
            ("10.0.0.0/8[icmp/8]", "10.0.0.1", icmp, 0x0000, false, false), // echo reply
            ("10.0.0.0/8[icmp/3(4)]", "10.0.0.1", icmp, 0x0304, false, true), // frag needed
            ("10.0.0.0/8[icmp/3(4)]", "10.0.0.1", icmp, 0x0303, false, false),
            ("10.0.0.0/8[icmp/8]", "10.0.0.1", tcp, 0x0800, false, false),
            ("fec1::/16[ipv6-icmp/135]", "fec1::1", IpProtocol::ICMPV6, 0x8700, false, true),
            ("fec1::/16[ipv6-icmp/135]", "fec1::1", IpProtocol::ICMPV6, 0x8800, false, false),
        ];
        for &(selector, addr, protocol, port, opaque, expected) in table {
            assert_eq!(
                ts(selector).matches(ip(addr), protocol, port, opaque),
                expected,
                "{selector} vs {addr} {protocol:?} port {port:#x} opaque {opaque}"
            );
        }
    }

    #[test]
    fn subset_and_intersection() {
        #[rustfmt::skip]
        let table: &[(&str, &str, bool, Option<&str>)] = &[
            // a, b, a ⊆ b, a ∩ b
            ("10.1.0.0/16", "10.0.0.0/8", true, Some("10.1.0.0/16")),
            ("10.0.0.0/8", "10.1.0.0/16", false, Some("10.1.0.0/16")),
            ("10.0.0.0/8", "10.0.0.0/8", true, Some("10.0.0.0/8")),
            ("10.0.0.0/8", "11.0.0.0/8", false, None),
            ("10.0.0.0/8", "::/0", false, None),
            ("10.0.0.5-10.0.0.20", "10.0.0.10-10.0.0.30", false, Some("10.0.0.10-10.0.0.20")),
            ("10.0.0.20-10.0.0.30", "10.0.0.10-10.0.0.20", false, Some("10.0.0.20")),
            ("10.0.0.0/8[tcp]", "10.0.0.0/8", true, Some("10.0.0.0/8[tcp]")),
            ("10.0.0.0/8", "10.0.0.0/8[tcp]", false, Some("10.0.0.0/8[tcp]")),
            ("10.0.0.0/8[tcp]", "10.0.0.0/8[udp]", false, None),
            ("10.0.0.0/8[tcp/80]", "10.0.0.0/8[tcp]", true, Some("10.0.0.0/8[tcp/80]")),
            ("10.0.0.0/8[any/80]", "10.0.0.0/8[tcp]", false, Some("10.0.0.0/8[tcp/80]")),
            ("10.0.0.0/8[tcp/80-90]", "10.0.0.0/8[tcp/85-100]", false, Some("10.0.0.0/8[tcp/85-90]")),
            ("10.0.0.0/8[tcp/80-90]", "10.0.0.0/8[tcp/91-100]", false, None),
            ("10.0.0.0/8[tcp/opaque]", "10.0.0.0/8[tcp]", true, Some("10.0.0.0/8[tcp/opaque]")),
            ("10.0.0.0/8[tcp/opaque]", "10.0.0.0/8[tcp/opaque]", true, Some("10.0.0.0/8[tcp/opaque]")),
            ("10.0.0.0/8[tcp/opaque]", "10.0.0.0/8[tcp/0-65534]", false, None),
            ("10.0.0.0/8[tcp/0-65534]", "10.0.0.0/8[tcp/opaque]", false, None),
            ("10.0.0.0/8[tcp]", "10.0.0.0/8[tcp/opaque]", false, Some("10.0.0.0/8[tcp/opaque]")),
            ("10.0.0.0/8[icmp/8]", "10.0.0.0/8[icmp/8-9]", true, Some("10.0.0.0/8[icmp/8]")),
            ("10.0.0.0/8[icmp/2048]", "10.0.0.0/8[icmp/8]", true, Some("10.0.0.0/8[icmp/2048]")),
        ];
        for &(a, b, subset, intersection) in table {
            let (a_ts, b_ts) = (ts(a), ts(b));
            assert_eq!(a_ts.is_subset_of(&b_ts), subset, "{a} ⊆ {b}");
            assert_eq!(a_ts.intersect(&b_ts), intersection.map(ts), "{a} ∩ {b}");
            assert_eq!(b_ts.intersect(&a_ts), intersection.map(ts), "{b} ∩ {a} (commutes)");
        }
    }

    fn selector() -> impl Strategy<Value = TrafficSelector> {
        // A small universe so that random selectors overlap often.
        let addr = (0u8..32, any::<bool>()).prop_map(|(low, v6)| -> IpAddr {
            if v6 {
                Ipv6Addr::new(0xfec1, 0, 0, 0, 0, 0, 0, low.into()).into()
            } else {
                Ipv4Addr::new(10, 0, 0, low).into()
            }
        });
        let protocol = prop_oneof![Just(0u8), Just(1), Just(6), Just(17)].prop_map(IpProtocol);
        let ports = prop_oneof![
            Just((0u16, u16::MAX)),
            Just((u16::MAX, 0)),
            (0u16..12, 0u16..12).prop_map(|(a, b)| (a.min(b), a.max(b))),
        ];
        (addr.clone(), addr, protocol, ports).prop_filter_map(
            "same family",
            |(a, b, protocol, (sp, ep))| {
                let (start, end) = if bits(a) <= bits(b) { (a, b) } else { (b, a) };
                let ts = TrafficSelector::new(start, end).ok()?;
                Some(ts.with_protocol(protocol).with_ports(sp, ep))
            },
        )
    }

    fn point() -> impl Strategy<Value = (IpAddr, IpProtocol, u16, bool)> {
        (
            (0u8..32, any::<bool>()).prop_map(|(low, v6)| -> IpAddr {
                if v6 {
                    Ipv6Addr::new(0xfec1, 0, 0, 0, 0, 0, 0, low.into()).into()
                } else {
                    Ipv4Addr::new(10, 0, 0, low).into()
                }
            }),
            prop_oneof![Just(1u8), Just(6), Just(17), Just(47)].prop_map(IpProtocol),
            0u16..14,
            any::<bool>(),
        )
    }

    proptest! {
        #[test]
        fn intersection_is_a_subset_of_both(a in selector(), b in selector()) {
            if let Some(both) = a.intersect(&b) {
                prop_assert!(both.is_subset_of(&a), "{both} ⊄ {a}");
                prop_assert!(both.is_subset_of(&b), "{both} ⊄ {b}");
                prop_assert_eq!(Some(both), b.intersect(&a));
            }
            if a.is_subset_of(&b) {
                prop_assert_eq!(a.intersect(&b), Some(a));
            }
        }

        #[test]
        fn a_point_in_both_is_in_the_intersection(
            a in selector(),
            b in selector(),
            (addr, protocol, port, opaque) in point(),
        ) {
            let in_a = a.matches(addr, protocol, port, opaque);
            let in_b = b.matches(addr, protocol, port, opaque);
            let in_both = a.intersect(&b).is_some_and(|i| i.matches(addr, protocol, port, opaque));
            prop_assert_eq!(in_a && in_b, in_both);
            // A subset never matches more than its superset.
            if a.is_subset_of(&b) && in_a {
                prop_assert!(in_b);
            }
        }

        #[test]
        fn display_round_trips(a in selector()) {
            prop_assert_eq!(a.to_string().parse::<TrafficSelector>(), Ok(a));
        }
    }
}
