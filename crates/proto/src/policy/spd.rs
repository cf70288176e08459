//! The selectors of one Child SA and the security policy database (RFC 4301 §4.4.1).

use super::ts::{TrafficSelector, host_bits};
use crate::wire::ip::FlowKey;

/// The traffic selectors negotiated for one Child SA (RFC 7296 §2.9): TSi/TSr seen from our
/// side, as `local` and `remote`.
///
/// IKEv2 selector lists are not paired: a packet is covered when its local side matches *any*
/// local selector and its remote side matches *any* remote selector (RFC 7296 §2.9: TSi and
/// TSr each list what is allowed on one side, in every combination). Empty lists match
/// nothing.
///
/// Protocol and ports are checked per selector: the local selector against the packet's local
/// port, the remote selector against its remote port.
///
/// For ICMP and ICMPv6, [`FlowKey`] carries `type << 8 | code` in *both* port fields, so the
/// type/code must lie in the range of both the local and the remote selector. RFC 4301
/// §4.4.1.1 has a single ICMP type/code selector per policy, and a packet must satisfy both of
/// IKEv2's port ranges. strongSwan's kernel interface installs one value for the pair (the
/// larger of the two selectors' ports, `max(sport, dport)` in `kernel_netlink_ipsec.c`) and
/// applies it in both directions, which agrees with this rule whenever at most one side
/// restricts type/code, the usual configuration (`remote_ts = 10.2.0.0/16[icmp/8]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SaSelectors {
    /// Our side: source addresses of outbound packets, destinations of inbound ones.
    pub local: Vec<TrafficSelector>,
    /// The peer's side: destinations of outbound packets, sources of inbound ones.
    pub remote: Vec<TrafficSelector>,
}

impl SaSelectors {
    /// Selectors from the two lists.
    pub fn new(local: Vec<TrafficSelector>, remote: Vec<TrafficSelector>) -> Self {
        Self { local, remote }
    }

    /// Whether an outbound packet (before encryption) belongs to this SA: source in a local
    /// selector and destination in a remote one, with protocol and ports as described on the
    /// type.
    pub fn matches_outbound(&self, flow: &FlowKey) -> bool {
        self.local.iter().any(|ts| matches_source(ts, flow))
            && self.remote.iter().any(|ts| matches_destination(ts, flow))
    }

    /// Whether a decrypted inbound packet was allowed on this SA (RFC 4301 §5.2 step 4: the
    /// inner header must match the SA's selectors, otherwise drop it): source in a remote
    /// selector (with the remote selector's ports for the source port) and destination in a
    /// local one (with the local selector's ports for the destination port).
    pub fn allows_inbound(&self, flow: &FlowKey) -> bool {
        self.remote.iter().any(|ts| matches_source(ts, flow))
            && self.local.iter().any(|ts| matches_destination(ts, flow))
    }
}

/// Whether `ts` admits the packet's source side: address, protocol, source port (or ICMP
/// type/code).
fn matches_source(ts: &TrafficSelector, flow: &FlowKey) -> bool {
    ts.matches(flow.src, flow.protocol, flow.src_port, flow.ports_opaque)
}

/// Whether `ts` admits the packet's destination side: address, protocol, destination port (or
/// ICMP type/code).
fn matches_destination(ts: &TrafficSelector, flow: &FlowKey) -> bool {
    ts.matches(flow.dst, flow.protocol, flow.dst_port, flow.ports_opaque)
}

/// What the SPD says to do with a packet (RFC 4301 §4.4.1: PROTECT, BYPASS, DISCARD, plus
/// the trap of on-demand tunnels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action<T> {
    /// Send it in the clear.
    Bypass,
    /// Drop it.
    Discard,
    /// Send it through the SA identified by the caller's handle `T`.
    Protect(T),
    /// No SA yet: hold the packet and have the control plane negotiate one for the trap
    /// identified by the caller's handle `T` (strongSwan's `start_action = trap`, the
    /// kernel's ACQUIRE). A trap loses to any other entry of the same specificity (see
    /// [`Spd`]), so an installed SA for the same selectors carries the traffic and the trap
    /// catches it again once that SA is gone.
    Trap(T),
}

impl<T> Action<T> {
    /// Whether this is [`Action::Trap`].
    pub fn is_trap(&self) -> bool {
        matches!(self, Self::Trap(_))
    }
}

/// One SPD entry: which traffic, and what to do with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpdEntry<T> {
    /// The traffic the entry covers.
    pub selectors: SaSelectors,
    /// What to do with it.
    pub action: Action<T>,
}

/// Names an entry in one [`Spd`], for [`Spd::remove`] and [`Spd::get`]. Never reused within
/// that SPD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpdEntryId(u64);

/// How specific a (local, remote) selector pair is; smaller sorts first. Compared field by
/// field, like strongSwan's policy priorities: address ranges first, then ports, then protocol,
/// then traps after everything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Specificity {
    /// Host bits of both address ranges together (0 for two hosts).
    host_bits: u32,
    /// How many of the two selectors allow any port.
    any_ports: u8,
    /// How many of the two selectors allow any protocol.
    any_protocol: u8,
    /// A trap: loses to every other action of the same specificity.
    trap: bool,
}

impl Specificity {
    fn of(local: &TrafficSelector, remote: &TrafficSelector, trap: bool) -> Self {
        Self {
            host_bits: host_bits(local) + host_bits(remote),
            any_ports: u8::from(local.is_any_port()) + u8::from(remote.is_any_port()),
            any_protocol: u8::from(local.protocol().0 == 0) + u8::from(remote.protocol().0 == 0),
            trap,
        }
    }
}

/// One (local, remote) selector pair of an entry, in lookup order.
#[derive(Clone, Debug)]
struct Row {
    specificity: Specificity,
    id: SpdEntryId,
    local: TrafficSelector,
    remote: TrafficSelector,
}

/// The security policy database (RFC 4301 §4.4.1): an ordered list of entries; the first one
/// whose selectors match an outbound packet decides its fate.
///
/// # Order
///
/// RFC 4301 leaves the order to the administrator; we derive it, as strongSwan derives policy
/// priorities: every entry is expanded into its (local, remote) selector pairs, and pairs are
/// sorted **more specific first**, comparing
///
/// 1. the size of the two address ranges together (fewer host bits first: a /32 before a /24;
///    a range that is not a subnet counts as the smallest subnet size that could hold it),
/// 2. then restricted ports before "any port" (counting both selectors),
/// 3. then a specific protocol before "any protocol",
/// 4. then [`Action::Trap`] after every other action (an installed SA beats the trap that
///    brought it up, like strongSwan's routed policies that yield to installed ones),
/// 5. then insertion order (earlier first).
///
/// So a `Bypass` for `10.1.0.0/24` shadows a `Protect` for `10.0.0.0/8`, whatever the order
/// they were added in, and two equally specific entries keep the order they were inserted.
/// A trap narrower than a `Protect` still wins for its traffic: specificity comes first.
///
/// # Cost
///
/// Lookups scan the pairs linearly and never allocate. That is fine for site-to-site setups
/// (tens of pairs). Index once there are hundreds or more (a gateway with one SA per road
/// warrior): e.g. bucket the pairs by the remote selector's prefix in a per-family trie, and
/// keep the order above within each bucket.
#[derive(Clone, Debug)]
pub struct Spd<T> {
    /// Sorted by id, which is increasing in insertion order.
    entries: Vec<(SpdEntryId, SpdEntry<T>)>,
    /// Every selector pair of every entry, in lookup order.
    rows: Vec<Row>,
    next_id: u64,
}

impl<T> Default for Spd<T> {
    fn default() -> Self {
        Self { entries: Vec::new(), rows: Vec::new(), next_id: 0 }
    }
}

impl<T> Spd<T> {
    /// An empty SPD: every lookup returns `None` (the caller decides the default, usually
    /// BYPASS for a gateway's own traffic or DISCARD).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry at the position the ordering rule (see [`Spd`]) gives it. An entry with
    /// an empty local or remote list never matches.
    pub fn insert(&mut self, selectors: SaSelectors, action: Action<T>) -> SpdEntryId {
        let id = SpdEntryId(self.next_id);
        self.next_id += 1;
        let trap = action.is_trap();
        for local in &selectors.local {
            for remote in &selectors.remote {
                let specificity = Specificity::of(local, remote, trap);
                // After every row at least as specific: equal ones keep insertion order.
                let at = self.rows.partition_point(|row| row.specificity <= specificity);
                self.rows.insert(at, Row { specificity, id, local: *local, remote: *remote });
            }
        }
        self.entries.push((id, SpdEntry { selectors, action }));
        id
    }

    /// Removes an entry, returning it; `None` if there is no entry `id`.
    pub fn remove(&mut self, id: SpdEntryId) -> Option<SpdEntry<T>> {
        let index = self.entries.binary_search_by_key(&id, |&(id, _)| id).ok()?;
        self.rows.retain(|row| row.id != id);
        Some(self.entries.remove(index).1)
    }

    /// The entry `id`, if present.
    pub fn get(&self, id: SpdEntryId) -> Option<&SpdEntry<T>> {
        let index = self.entries.binary_search_by_key(&id, |&(id, _)| id).ok()?;
        self.entries.get(index).map(|(_, entry)| entry)
    }

    /// What to do with an outbound packet: the action of the first matching selector pair in
    /// the order described on [`Spd`], or `None` when no entry matches.
    pub fn lookup_outbound(&self, flow: &FlowKey) -> Option<&Action<T>> {
        self.lookup_outbound_entry(flow).map(|(_, entry)| &entry.action)
    }

    /// Like [`lookup_outbound`](Self::lookup_outbound), returning the whole entry and its id.
    pub fn lookup_outbound_entry(&self, flow: &FlowKey) -> Option<(SpdEntryId, &SpdEntry<T>)> {
        let row = self.rows.iter().find(|row| {
            matches_source(&row.local, flow) && matches_destination(&row.remote, flow)
        })?;
        self.get(row.id).map(|entry| (row.id, entry))
    }

    /// The entry that covers a packet which arrived *without* IPsec protection, with the roles
    /// of the selectors swapped (source in a remote selector, destination in a local one, as
    /// in [`SaSelectors::allows_inbound`]). RFC 4301 §5.2: pass such a packet only when this is
    /// [`Action::Bypass`]; drop it when it is `Discard`, and also when it is `Protect` or
    /// `Trap`, because that traffic must arrive through an SA.
    pub fn lookup_inbound(&self, flow: &FlowKey) -> Option<&Action<T>> {
        let row = self.rows.iter().find(|row| {
            matches_source(&row.remote, flow) && matches_destination(&row.local, flow)
        })?;
        self.get(row.id).map(|entry| &entry.action)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in insertion order (not lookup order).
    pub fn iter(&self) -> impl Iterator<Item = (SpdEntryId, &SpdEntry<T>)> {
        self.entries.iter().map(|(id, entry)| (*id, entry))
    }
}

#[cfg(test)]
mod tests {
    use core::net::IpAddr;

    use super::*;
    use crate::wire::IpProtocol;

    fn ts(s: &str) -> TrafficSelector {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn sel(local: &[&str], remote: &[&str]) -> SaSelectors {
        SaSelectors::new(
            local.iter().map(|s| ts(s)).collect(),
            remote.iter().map(|s| ts(s)).collect(),
        )
    }

    fn flow(src: &str, dst: &str, protocol: IpProtocol, src_port: u16, dst_port: u16) -> FlowKey {
        FlowKey {
            src: src.parse::<IpAddr>().unwrap(),
            dst: dst.parse::<IpAddr>().unwrap(),
            protocol,
            src_port,
            dst_port,
            ports_opaque: false,
        }
    }

    fn icmp(src: &str, dst: &str, ty: u8, code: u8) -> FlowKey {
        let tc = u16::from(ty) << 8 | u16::from(code);
        let protocol = if src.contains(':') { IpProtocol::ICMPV6 } else { IpProtocol::ICMP };
        flow(src, dst, protocol, tc, tc)
    }

    const TCP: IpProtocol = IpProtocol::TCP;
    const UDP: IpProtocol = IpProtocol::UDP;

    #[test]
    fn outbound_and_inbound_matching() {
        let sa = sel(&["10.1.0.0/16", "fec1::/16"], &["10.2.0.0/16", "10.3.0.5", "fec2::/16"]);
        // Any local × any remote.
        assert!(sa.matches_outbound(&flow("10.1.0.1", "10.2.0.1", TCP, 1234, 80)));
        assert!(sa.matches_outbound(&flow("10.1.0.1", "10.3.0.5", UDP, 1234, 53)));
        assert!(sa.matches_outbound(&flow("fec1::1", "fec2::1", TCP, 1234, 80)));
        assert!(!sa.matches_outbound(&flow("10.1.0.1", "10.3.0.6", TCP, 1234, 80)));
        assert!(!sa.matches_outbound(&flow("10.9.0.1", "10.2.0.1", TCP, 1234, 80)));
        // Outbound direction reversed is not outbound.
        assert!(!sa.matches_outbound(&flow("10.2.0.1", "10.1.0.1", TCP, 80, 1234)));
        // Inbound: source in remote, destination in local.
        assert!(sa.allows_inbound(&flow("10.2.0.1", "10.1.0.1", TCP, 80, 1234)));
        assert!(sa.allows_inbound(&flow("fec2::1", "fec1::1", TCP, 80, 1234)));
        assert!(!sa.allows_inbound(&flow("10.1.0.1", "10.2.0.1", TCP, 1234, 80)));
        // A spoofed inner source outside the remote selectors is rejected.
        assert!(!sa.allows_inbound(&flow("192.168.0.1", "10.1.0.1", TCP, 80, 1234)));
        assert!(!sa.allows_inbound(&flow("10.2.0.1", "10.9.0.1", TCP, 80, 1234)));
        // Empty lists match nothing.
        let empty = sel(&["10.1.0.0/16"], &[]);
        assert!(!empty.matches_outbound(&flow("10.1.0.1", "10.2.0.1", TCP, 1, 2)));
        assert!(!SaSelectors::default().allows_inbound(&flow("10.1.0.1", "10.2.0.1", TCP, 1, 2)));
    }

    #[test]
    fn ports_follow_the_direction() {
        // We are a web server: local port 443, any remote port.
        let sa = sel(&["10.1.0.0/16[tcp/443]"], &["10.2.0.0/16[tcp]"]);
        assert!(sa.matches_outbound(&flow("10.1.0.1", "10.2.0.1", TCP, 443, 50000)));
        assert!(!sa.matches_outbound(&flow("10.1.0.1", "10.2.0.1", TCP, 50000, 443)));
        assert!(!sa.matches_outbound(&flow("10.1.0.1", "10.2.0.1", UDP, 443, 50000)));
        // Inbound: the source port is the remote selector's, the destination port the local's.
        assert!(sa.allows_inbound(&flow("10.2.0.1", "10.1.0.1", TCP, 50000, 443)));
        assert!(!sa.allows_inbound(&flow("10.2.0.1", "10.1.0.1", TCP, 443, 50000)));
        // Non-initial fragments: ports unknown, so a port-restricted selector does not match,
        // unless it is OPAQUE or any.
        let mut fragment = flow("10.2.0.1", "10.1.0.1", TCP, 0, 0);
        fragment.ports_opaque = true;
        assert!(!sa.allows_inbound(&fragment));
        let opaque = sel(&["10.1.0.0/16[tcp/opaque]"], &["10.2.0.0/16[tcp]"]);
        assert!(opaque.allows_inbound(&fragment));
        assert!(!opaque.allows_inbound(&flow("10.2.0.1", "10.1.0.1", TCP, 50000, 443)));
    }

    #[test]
    fn icmp_type_code_must_be_in_both_selectors() {
        // Only pings to the peer's network (echo request out, echo request in: type/code is
        // one selector for both directions, as in strongSwan).
        let sa = sel(&["10.1.0.0/16[icmp]"], &["10.2.0.0/16[icmp/8]"]);
        assert!(sa.matches_outbound(&icmp("10.1.0.1", "10.2.0.1", 8, 0)));
        assert!(!sa.matches_outbound(&icmp("10.1.0.1", "10.2.0.1", 0, 0)));
        assert!(sa.allows_inbound(&icmp("10.2.0.1", "10.1.0.1", 8, 0)));
        assert!(!sa.allows_inbound(&icmp("10.2.0.1", "10.1.0.1", 0, 0)));
        // Conflicting restrictions leave nothing.
        let conflict = sel(&["10.1.0.0/16[icmp/8]"], &["10.2.0.0/16[icmp/0]"]);
        assert!(!conflict.matches_outbound(&icmp("10.1.0.1", "10.2.0.1", 8, 0)));
        assert!(!conflict.allows_inbound(&icmp("10.2.0.1", "10.1.0.1", 0, 0)));
        // Code-level selection: only "fragmentation needed" (3/4) comes in.
        let pmtu = sel(&["10.1.0.0/16[icmp]"], &["0.0.0.0/0[icmp/3(4)]"]);
        assert!(pmtu.allows_inbound(&icmp("192.0.2.1", "10.1.0.1", 3, 4)));
        assert!(!pmtu.allows_inbound(&icmp("192.0.2.1", "10.1.0.1", 3, 3)));
        // A port-restricted selector for any protocol does not admit ICMP (type/code 0/0 is
        // not port 53).
        let dns = sel(&["10.1.0.0/16"], &["10.2.0.53[any/53]"]);
        assert!(!dns.matches_outbound(&icmp("10.1.0.1", "10.2.0.53", 0, 0)));
        assert!(dns.matches_outbound(&flow("10.1.0.1", "10.2.0.53", UDP, 40000, 53)));
        // ICMPv6.
        let v6 = sel(&["fec1::/16[ipv6-icmp/128-129]"], &["fec2::/16[ipv6-icmp]"]);
        assert!(v6.matches_outbound(&icmp("fec1::1", "fec2::1", 128, 0)));
        assert!(v6.allows_inbound(&icmp("fec2::1", "fec1::1", 129, 0)));
        assert!(!v6.allows_inbound(&icmp("fec2::1", "fec1::1", 135, 0)));
        // ICMP selectors do not match ICMPv6 packets and vice versa.
        let wrong = sel(&["fec1::/16[icmp]"], &["fec2::/16[icmp]"]);
        assert!(!wrong.matches_outbound(&icmp("fec1::1", "fec2::1", 128, 0)));
    }

    #[test]
    fn lookup_prefers_more_specific_entries() {
        let mut spd = Spd::new();
        let wide = spd.insert(sel(&["10.1.0.0/16"], &["0.0.0.0/0"]), Action::Protect("wide"));
        let lan = spd.insert(sel(&["10.1.0.0/16"], &["10.2.0.0/16"]), Action::Protect("lan"));
        let dns = spd.insert(sel(&["10.1.0.0/16[udp]"], &["10.2.0.53[udp/53]"]), Action::Bypass);
        let mgmt = spd.insert(sel(&["10.1.0.0/16"], &["10.2.0.0/24"]), Action::Discard);
        // Equal specificity to `lan`, inserted later: loses to `lan`.
        let twin = spd.insert(sel(&["10.1.0.0/16"], &["10.2.0.0/16"]), Action::Protect("twin"));
        assert_eq!(spd.len(), 5);

        fn out(spd: &Spd<&str>, dst: &str, protocol: IpProtocol, port: u16) -> Option<SpdEntryId> {
            spd.lookup_outbound_entry(&flow("10.1.0.1", dst, protocol, 40000, port))
                .map(|(id, _)| id)
        }
        assert_eq!(out(&spd, "192.0.2.1", TCP, 443), Some(wide));
        assert_eq!(out(&spd, "10.2.1.1", TCP, 443), Some(lan));
        assert_eq!(out(&spd, "10.2.0.53", UDP, 53), Some(dns));
        assert_eq!(out(&spd, "10.2.0.53", TCP, 53), Some(mgmt)); // dns is udp only
        assert_eq!(out(&spd, "10.2.0.7", TCP, 22), Some(mgmt));
        assert_eq!(out(&spd, "10.9.0.1", TCP, 22), Some(wide));
        assert_eq!(spd.lookup_outbound(&flow("10.3.0.1", "10.2.0.1", TCP, 1, 2)), None);
        assert_eq!(
            spd.lookup_outbound(&flow("10.1.0.1", "10.2.0.53", UDP, 40000, 53)),
            Some(&Action::Bypass)
        );

        // Removing an entry exposes the next one.
        assert_eq!(spd.remove(lan).map(|e| e.action), Some(Action::Protect("lan")));
        assert_eq!(out(&spd, "10.2.1.1", TCP, 443), Some(twin));
        assert_eq!(spd.remove(lan), None);
        assert!(spd.get(lan).is_none());
        assert_eq!(spd.remove(mgmt).map(|e| e.action), Some(Action::Discard));
        assert_eq!(out(&spd, "10.2.0.7", TCP, 22), Some(twin));
        assert_eq!(spd.iter().map(|(id, _)| id).collect::<Vec<_>>(), [wide, dns, twin]);
    }

    #[test]
    fn inbound_cleartext_lookup_swaps_the_roles() {
        let mut spd = Spd::new();
        spd.insert(sel(&["10.1.0.0/16"], &["10.2.0.0/16"]), Action::Protect(7));
        spd.insert(sel(&["10.1.0.0/16[udp/500]"], &["0.0.0.0/0[udp]"]), Action::Bypass);
        // IKE from anywhere to our port 500 may come in the clear.
        let ike = flow("192.0.2.1", "10.1.0.1", UDP, 500, 500);
        assert_eq!(spd.lookup_inbound(&ike), Some(&Action::Bypass));
        // Traffic that must be protected, arriving in the clear: the caller drops it.
        let leak = flow("10.2.0.1", "10.1.0.1", TCP, 80, 40000);
        assert_eq!(spd.lookup_inbound(&leak), Some(&Action::Protect(7)));
        // Outbound direction is not inbound.
        assert_eq!(spd.lookup_inbound(&flow("10.1.0.1", "10.2.0.1", TCP, 1, 2)), None);
    }

    #[test]
    fn lookup_orders_pairs_not_entries() {
        // One entry has a broad and a narrow remote selector; the narrow pair beats another
        // entry's medium selector, the broad pair does not.
        let mut spd = Spd::new();
        let mixed =
            spd.insert(sel(&["10.1.0.0/16"], &["10.0.0.0/8", "10.2.0.9"]), Action::Protect(1));
        let medium = spd.insert(sel(&["10.1.0.0/16"], &["10.2.0.0/16"]), Action::Protect(2));
        let out = |dst: &str| {
            spd.lookup_outbound_entry(&flow("10.1.0.1", dst, TCP, 1, 2)).map(|(id, _)| id)
        };
        assert_eq!(out("10.2.0.9"), Some(mixed));
        assert_eq!(out("10.2.0.10"), Some(medium));
        assert_eq!(out("10.3.0.1"), Some(mixed));
    }

    #[test]
    fn traps_yield_to_equally_specific_entries() {
        let mut spd = Spd::new();
        // The trap first: insertion order alone would let it win.
        let trap = spd.insert(
            sel(&["10.1.0.0/16", "fec1::/16"], &["10.2.0.0/16", "fec2::/16"]),
            Action::Trap(9),
        );
        let out = |spd: &Spd<u32>, dst: &str| {
            let src = if dst.contains(':') { "fec1::1" } else { "10.1.0.1" };
            spd.lookup_outbound(&flow(src, dst, TCP, 1, 2)).copied()
        };
        assert_eq!(out(&spd, "10.2.0.1"), Some(Action::Trap(9)));
        assert_eq!(out(&spd, "fec2::1"), Some(Action::Trap(9)));
        assert!(spd.get(trap).is_some_and(|e| e.action.is_trap()));
        // The SA comes up with the same selectors: it carries the traffic.
        let sa = spd.insert(sel(&["10.1.0.0/16"], &["10.2.0.0/16"]), Action::Protect(1));
        assert_eq!(out(&spd, "10.2.0.1"), Some(Action::Protect(1)));
        // The other family has no SA yet: still trapped.
        assert_eq!(out(&spd, "fec2::1"), Some(Action::Trap(9)));
        // A narrower SA (the responder narrowed): the rest of the range stays trapped.
        spd.remove(sa);
        spd.insert(sel(&["10.1.0.0/16"], &["10.2.1.0/24"]), Action::Protect(2));
        assert_eq!(out(&spd, "10.2.1.1"), Some(Action::Protect(2)));
        assert_eq!(out(&spd, "10.2.0.1"), Some(Action::Trap(9)));
        // A narrower trap beats a broader SA: specificity first.
        let narrow = spd.insert(sel(&["10.1.0.0/16"], &["10.2.1.128/25"]), Action::Trap(3));
        assert_eq!(out(&spd, "10.2.1.200"), Some(Action::Trap(3)));
        spd.remove(narrow);
        // Gone SA: the trap catches the traffic again.
        let ids: Vec<_> =
            spd.iter().filter(|(_, e)| !e.action.is_trap()).map(|(id, _)| id).collect();
        for id in ids {
            spd.remove(id);
        }
        assert_eq!(out(&spd, "10.2.1.1"), Some(Action::Trap(9)));
        // Cleartext arriving for trapped traffic is not a bypass.
        assert_eq!(
            spd.lookup_inbound(&flow("10.2.0.1", "10.1.0.1", TCP, 2, 1)),
            Some(&Action::Trap(9))
        );
    }

    #[test]
    fn ports_and_protocol_break_ties_after_addresses() {
        let mut spd = Spd::new();
        let any = spd.insert(sel(&["10.1.0.0/16"], &["10.2.0.0/16"]), Action::Protect(0));
        let proto = spd.insert(sel(&["10.1.0.0/16[tcp]"], &["10.2.0.0/16"]), Action::Protect(1));
        let port = spd.insert(sel(&["10.1.0.0/16"], &["10.2.0.0/16[any/22]"]), Action::Discard);
        let out = |protocol, port| {
            spd.lookup_outbound_entry(&flow("10.1.0.1", "10.2.0.1", protocol, 40000, port))
                .map(|(id, _)| id)
        };
        assert_eq!(out(TCP, 22), Some(port));
        assert_eq!(out(UDP, 22), Some(port));
        assert_eq!(out(TCP, 80), Some(proto));
        assert_eq!(out(UDP, 80), Some(any));
    }
}
