//! Traffic selector negotiation (RFC 7296 §2.9): configured selectors (with swanctl's
//! `dynamic`), conversion to and from TSi/TSr payloads, and the responder's narrowing.
//!
//! Narrowing follows strongSwan's `select_ts`: every offered selector is intersected with
//! every configured one, in the configured order, keeping the non-empty results; a result
//! inside another one is dropped (strongSwan's `remove_duplicate_ts`), so an initiator's
//! first "packet" selector ([`TriggerFlow`]) does not survive next to the range that holds
//! it. The initiator accepts a response only if every returned selector is inside one it
//! proposed.

use core::fmt;
use core::net::IpAddr;

use crate::policy::{TrafficSelector, TsError};
use crate::wire::ikev2::{self, Ts};
use crate::wire::{FlowKey, IpProtocol};

/// A configured selector: fixed, or `dynamic` (the tunnel's own address, resolved when the
/// CHILD_SA is negotiated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TsSpec {
    /// A fixed selector.
    Fixed(TrafficSelector),
    /// `dynamic`, with the protocol and ports written with it (`dynamic[tcp/80]`).
    Dynamic {
        /// IP protocol, 0 for any.
        protocol: IpProtocol,
        /// First port.
        start_port: u16,
        /// Last port.
        end_port: u16,
    },
}

impl TsSpec {
    /// Reads one swanctl.conf selector (`10.1.0.0/16`, `dynamic`, `0.0.0.0/0[tcp/443]`).
    pub fn parse(s: &str) -> Result<Self, TsError> {
        match s.parse::<TrafficSelector>() {
            Ok(ts) => Ok(Self::Fixed(ts)),
            Err(TsError::Dynamic { protocol, start_port, end_port }) => {
                Ok(Self::Dynamic { protocol, start_port, end_port })
            }
            Err(e) => Err(e),
        }
    }

    /// The selector, with `dynamic` replaced by `addr`.
    pub fn resolve(&self, addr: IpAddr) -> TrafficSelector {
        match *self {
            Self::Fixed(ts) => ts,
            Self::Dynamic { protocol, start_port, end_port } => {
                let ts = TrafficSelector::host(addr).with_protocol(protocol);
                if start_port == 0 && end_port == u16::MAX {
                    ts
                } else {
                    ts.with_ports(start_port, end_port)
                }
            }
        }
    }
}

impl fmt::Display for TsSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(ts) => ts.fmt(f),
            Self::Dynamic { protocol, start_port, end_port } => {
                f.write_str("dynamic")?;
                if protocol.0 != 0 || *start_port != 0 || *end_port != u16::MAX {
                    write!(f, "[{}/{start_port}-{end_port}]", protocol.0)?;
                }
                Ok(())
            }
        }
    }
}

/// Resolves a configured list against `addr`.
pub fn resolve(specs: &[TsSpec], addr: IpAddr) -> Vec<TrafficSelector> {
    let mut out: Vec<TrafficSelector> = Vec::with_capacity(specs.len());
    for ts in specs.iter().map(|s| s.resolve(addr)) {
        if !out.contains(&ts) {
            out.push(ts);
        }
    }
    out
}

/// A wire selector as a policy selector; `None` for unknown types (skipped, RFC 7296 §3.13.1).
pub fn from_wire(ts: &ikev2::TrafficSelector) -> Option<TrafficSelector> {
    let (start, end, protocol, sp, ep) = match *ts {
        ikev2::TrafficSelector::Ipv4 { ip_protocol, start_port, end_port, start, end } => {
            (IpAddr::V4(start), IpAddr::V4(end), ip_protocol, start_port, end_port)
        }
        ikev2::TrafficSelector::Ipv6 { ip_protocol, start_port, end_port, start, end } => {
            (IpAddr::V6(start), IpAddr::V6(end), ip_protocol, start_port, end_port)
        }
        _ => return None,
    };
    let sel = TrafficSelector::new(start, end).ok()?.with_protocol(protocol);
    Some(sel.with_ports(sp, ep))
}

/// A policy selector as a wire selector.
pub fn to_wire(ts: &TrafficSelector) -> ikev2::TrafficSelector {
    let (start_port, end_port) = (ts.start_port(), ts.end_port());
    // The constructors keep both ends in one family.
    match ts.start() {
        IpAddr::V4(start) => ikev2::TrafficSelector::Ipv4 {
            ip_protocol: ts.protocol(),
            start_port,
            end_port,
            start,
            end: match ts.end() {
                IpAddr::V4(end) => end,
                IpAddr::V6(_) => start,
            },
        },
        IpAddr::V6(start) => ikev2::TrafficSelector::Ipv6 {
            ip_protocol: ts.protocol(),
            start_port,
            end_port,
            start,
            end: match ts.end() {
                IpAddr::V6(end) => end,
                IpAddr::V4(_) => start,
            },
        },
    }
}

/// The TS payload for a list of selectors.
pub fn payload(list: &[TrafficSelector]) -> Ts {
    Ts { selectors: list.iter().map(to_wire).collect() }
}

/// The known selectors of a TS payload.
pub fn from_payload(ts: &Ts) -> Vec<TrafficSelector> {
    ts.selectors.iter().filter_map(from_wire).collect()
}

/// The packet that made us ask for a CHILD_SA (a trap policy's acquire), as the selectors an
/// initiator proposes first in TSi and TSr (RFC 7296 §2.9): a responder that must narrow
/// can then keep the part that carries this packet.
///
/// As strongSwan builds them from the kernel's acquire (`kernel_netlink`'s `selector2ts`):
/// each side's single address, the packet's protocol, and its port on that side (for ICMP
/// the `type << 8 | code` value, on both sides); a port of 0, or ports not in the packet
/// (non-initial fragments), stand for any port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TriggerFlow {
    /// Our side of the packet: its source (goes first in TSi).
    pub local: TrafficSelector,
    /// The peer's side: its destination (goes first in TSr).
    pub remote: TrafficSelector,
}

impl TriggerFlow {
    /// The selectors of an outbound packet's flow key.
    pub fn from_flow(flow: &FlowKey) -> Self {
        let side = |addr, port: u16| {
            let ts = TrafficSelector::host(addr).with_protocol(flow.protocol);
            if port == 0 || flow.ports_opaque { ts } else { ts.with_ports(port, port) }
        };
        Self { local: side(flow.src, flow.src_port), remote: side(flow.dst, flow.dst_port) }
    }

    /// `tsi` and `tsr` with the packet's selectors in front, if the packet lies inside them
    /// (else it could not have come from this child's policy, and is not proposed).
    pub fn prepend(
        &self,
        tsi: &[TrafficSelector],
        tsr: &[TrafficSelector],
    ) -> Option<(Vec<TrafficSelector>, Vec<TrafficSelector>)> {
        let inside = |ts: &TrafficSelector, list: &[TrafficSelector]| {
            list.iter().any(|l| ts.is_subset_of(l))
        };
        if !inside(&self.local, tsi) || !inside(&self.remote, tsr) {
            return None;
        }
        let with = |first: TrafficSelector, list: &[TrafficSelector]| {
            core::iter::once(first).chain(list.iter().copied()).collect()
        };
        Some((with(self.local, tsi), with(self.remote, tsr)))
    }
}

/// The responder's narrowing: `offered` intersected with `configured`, configured order
/// first, without results that lie inside another result. Empty means nothing fits
/// (TS_UNACCEPTABLE).
pub fn narrow(offered: &[TrafficSelector], configured: &[TrafficSelector]) -> Vec<TrafficSelector> {
    let mut out: Vec<TrafficSelector> = Vec::new();
    for ours in configured {
        for theirs in offered {
            let Some(common) = ours.intersect(theirs) else { continue };
            if out.iter().any(|o| common.is_subset_of(o)) {
                continue;
            }
            out.retain(|o| !o.is_subset_of(&common));
            out.push(common);
        }
    }
    out
}

/// The initiator's check: every selector of the response lies inside one we proposed.
pub fn is_narrowing_of(response: &[TrafficSelector], proposed: &[TrafficSelector]) -> bool {
    !response.is_empty() && response.iter().all(|r| proposed.iter().any(|p| r.is_subset_of(p)))
}

/// Writes a selector list the way swanctl prints it: `10.1.0.0/16 10.2.0.0/16`.
pub struct List<'a>(pub &'a [TrafficSelector]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(none)");
        }
        for (i, ts) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            ts.fmt(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ts(s: &str) -> TrafficSelector {
        s.parse().unwrap()
    }

    #[test]
    fn narrowing_intersects_in_configured_order() {
        let offered = [ts("10.0.0.0/8"), ts("192.168.0.0/16")];
        let configured = [ts("192.168.1.0/24"), ts("10.1.0.0/16"), ts("172.16.0.0/12")];
        assert_eq!(narrow(&offered, &configured), vec![ts("192.168.1.0/24"), ts("10.1.0.0/16")]);
        assert!(narrow(&[ts("172.31.0.0/16")], &[ts("10.0.0.0/8")]).is_empty());
        let ports = narrow(&[ts("10.0.0.0/8[tcp]")], &[ts("10.1.0.0/16[tcp/443]")]);
        assert_eq!(ports, vec![ts("10.1.0.0/16[tcp/443]")]);
    }

    #[test]
    fn narrowing_drops_results_inside_others() {
        // An initiator's packet selector first, then its range: the range is kept, alone.
        let offered = [ts("10.2.0.7/32[icmp/8]"), ts("10.2.0.0/16")];
        assert_eq!(narrow(&offered, &[ts("10.2.0.0/16")]), vec![ts("10.2.0.0/16")]);
        // A responder configured for less keeps its part of the range.
        assert_eq!(narrow(&offered, &[ts("10.2.0.0/24")]), vec![ts("10.2.0.0/24")]);
        // ... and no more than the configuration allows, however the packet is proposed.
        assert_eq!(narrow(&offered, &[ts("10.2.0.7/32[icmp]")]), vec![ts("10.2.0.7/32[icmp]")]);
        let tcp = [ts("10.2.0.7/32[tcp/443]"), ts("10.2.0.0/16")];
        assert_eq!(narrow(&tcp, &[ts("10.2.0.0/30[tcp]")]), vec![ts("10.2.0.0/30[tcp]")]);
        // Disjoint results all stay, in configured order; a later, larger one replaces an
        // earlier one inside it.
        let configured = [ts("10.2.1.0/24"), ts("10.3.0.0/16"), ts("10.2.0.0/16")];
        assert_eq!(
            narrow(&[ts("10.0.0.0/8")], &configured),
            vec![ts("10.3.0.0/16"), ts("10.2.0.0/16")]
        );
    }

    #[test]
    fn trigger_flow_selectors() {
        let flow = |protocol, src_port, dst_port, ports_opaque| FlowKey {
            src: "10.1.0.5".parse().unwrap(),
            dst: "10.2.0.7".parse().unwrap(),
            protocol: IpProtocol(protocol),
            src_port,
            dst_port,
            ports_opaque,
        };
        let tcp = TriggerFlow::from_flow(&flow(6, 40000, 443, false));
        assert_eq!(tcp.local, ts("10.1.0.5/32[tcp/40000]"));
        assert_eq!(tcp.remote, ts("10.2.0.7/32[tcp/443]"));
        // ICMP echo request: type 8 code 0 on both sides, as strongSwan's acquire has it.
        let ping = TriggerFlow::from_flow(&flow(1, 0x0800, 0x0800, false));
        assert_eq!(ping.local, ts("10.1.0.5/32[icmp/8(0)]"));
        assert_eq!(ping.remote, ts("10.2.0.7/32[icmp/8(0)]"));
        // No ports (GRE), or a non-initial fragment: any port.
        assert_eq!(TriggerFlow::from_flow(&flow(47, 0, 0, false)).remote, ts("10.2.0.7/32[47]"));
        assert_eq!(TriggerFlow::from_flow(&flow(17, 0, 0, true)).local, ts("10.1.0.5/32[udp]"));
        // Prepended only when inside the configured selectors.
        let (tsi, tsr) = tcp.prepend(&[ts("10.1.0.0/16")], &[ts("10.2.0.0/16")]).unwrap();
        assert_eq!(tsi, vec![ts("10.1.0.5/32[tcp/40000]"), ts("10.1.0.0/16")]);
        assert_eq!(tsr, vec![ts("10.2.0.7/32[tcp/443]"), ts("10.2.0.0/16")]);
        assert!(tcp.prepend(&[ts("10.1.0.0/16")], &[ts("10.3.0.0/16")]).is_none());
    }

    #[test]
    fn initiator_accepts_only_subsets() {
        let proposed = [ts("10.1.0.0/16")];
        assert!(is_narrowing_of(&[ts("10.1.2.0/24")], &proposed));
        assert!(!is_narrowing_of(&[ts("10.0.0.0/8")], &proposed));
        assert!(!is_narrowing_of(&[], &proposed));
    }

    #[test]
    fn dynamic_resolves_to_the_host() {
        let spec = TsSpec::parse("dynamic[udp/500]").unwrap();
        let addr: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(spec.resolve(addr), ts("192.0.2.1/32[udp/500]"));
        assert_eq!(TsSpec::parse("dynamic").unwrap().resolve(addr), ts("192.0.2.1/32"));
        assert_eq!(TsSpec::parse("10.0.0.0/8").unwrap(), TsSpec::Fixed(ts("10.0.0.0/8")));
    }

    #[test]
    fn wire_round_trip() {
        for s in ["10.0.0.0/8", "2001:db8::/32[tcp/80]", "0.0.0.0/0", "10.1.2.3/32[icmp/8]"] {
            let t = ts(s);
            assert_eq!(from_wire(&to_wire(&t)), Some(t), "{s}");
        }
    }
}
