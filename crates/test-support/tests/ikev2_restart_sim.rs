//! A peer that restarts (its daemon killed and started again with the same configuration), on
//! the two-peer simulator: INITIAL_CONTACT clears the stale SAs of the other side (RFC 7296
//! §2.4), swanctl's `unique = no|never|keep|replace`, and how quickly `dpd_action = restart`
//! finds a peer that comes back.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ferroswan_awslc::DEFAULT_PROVIDER;
use ferroswan_proto::ikev2::config::{ChildLifetime, EndpointConfig, IkeConfig, UniquePolicy};
use ferroswan_proto::ikev2::identity::Identity;
use ferroswan_proto::ikev2::proposal::ProposalSpec;
use ferroswan_proto::ikev2::session::{CloseReason, Event, FailureKind, SupersedeCause};
use ferroswan_proto::ikev2::{Endpoint, SessionId};
use ferroswan_proto::wire::ikev2::{ExchangeType, HeaderPacket, ProtocolId};
use ferroswan_proto::wire::{EncrId, KeId, PrfId};
use ferroswan_test::ikesim::{Pair, START_UNIX_TIME, Side, psk_config};

fn proposal(protocol: ProtocolId, prf: bool) -> ProposalSpec {
    ProposalSpec {
        protocol,
        encr: vec![(EncrId::ENCR_AES_GCM_16, 128)],
        prf: if prf { vec![PrfId::PRF_HMAC_SHA2_256] } else { Vec::new() },
        integ: Vec::new(),
        ke: if prf { vec![KeId::CURVE25519] } else { Vec::new() },
        esn: if prf { Vec::new() } else { vec![false] },
    }
}

/// Connection `gw` of `side`; B accepts A from any address (`remote_addrs` empty), so A can
/// come from a second address.
fn config(side: Side, unique: UniquePolicy) -> IkeConfig {
    let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
    let (local, remote, lts, rts) = match side {
        Side::A => (a, b, "10.1.0.0/16", "10.2.0.0/16"),
        Side::B => (b, a, "10.2.0.0/16", "10.1.0.0/16"),
    };
    let mut c = psk_config(
        "gw",
        local,
        remote,
        vec![proposal(ProtocolId::IKE, true)],
        vec![proposal(ProtocolId::ESP, false)],
        lts,
        rts,
        b"secret",
    );
    c.children[0].lifetime = ChildLifetime::NONE;
    c.unique = unique;
    // Identities that do not depend on the address A initiates from.
    c.local_id = Some(Identity::fqdn(if side == Side::A { "a.test" } else { "b.test" }));
    if side == Side::B {
        c.remote_addrs.clear();
    }
    c
}

/// A pair with the tunnel up, A the initiator.
fn up_pair(a: IkeConfig, b: IkeConfig) -> Pair {
    let mut pair = Pair::new(DEFAULT_PROVIDER, vec![a], vec![b]);
    pair.initiate(Side::A, "gw", Some("net"));
    assert!(pair.drive());
    assert_eq!(established(&pair, Side::A).len(), 1, "{:?}", pair.a.failures());
    pair
}

/// A fresh endpoint with `config`, as a restarted daemon has: no SAs at all.
fn fresh_endpoint(pair: &Pair, config: IkeConfig) -> Endpoint {
    let mut e = Endpoint::new(
        EndpointConfig { connections: vec![Arc::new(config)], ..Default::default() },
        DEFAULT_PROVIDER,
    );
    e.set_unix_time(pair.now, START_UNIX_TIME);
    e
}

/// `side`'s established IKE SAs: (our SPI, [(inbound, outbound) CHILD_SA SPIs]).
fn established(pair: &Pair, side: Side) -> Vec<(SessionId, Vec<(u32, u32)>)> {
    let peer = if side == Side::A { &pair.a } else { &pair.b };
    peer.endpoint
        .sessions()
        .filter(|(_, s)| s.info().is_some())
        .map(|(id, s)| (id, s.children().iter().map(|c| (c.inbound_spi, c.outbound_spi)).collect()))
        .collect()
}

/// Both sides hold exactly one IKE SA with the same SPIs and one CHILD_SA pair, in the sessions
/// and in the data plane.
fn assert_one_pair(pair: &Pair) {
    let (a, b) = (established(pair, Side::A), established(pair, Side::B));
    assert_eq!((a.len(), b.len()), (1, 1), "IKE SAs: A {a:x?}, B {b:x?}");
    let spis = |side| {
        let peer = if side == Side::A { &pair.a } else { &pair.b };
        peer.endpoint.sessions().find(|(_, s)| s.info().is_some()).map(|(_, s)| s.spis())
    };
    assert_eq!(spis(Side::A), spis(Side::B), "IKE SPIs agree");
    let (ca, cb) = (&a[0].1, &b[0].1);
    assert_eq!((ca.len(), cb.len()), (1, 1), "CHILD_SAs: A {ca:x?}, B {cb:x?}");
    assert_eq!((ca[0].0, ca[0].1), (cb[0].1, cb[0].0), "CHILD_SA SPIs agree");
    for (side, peer) in [(Side::A, &pair.a), (Side::B, &pair.b)] {
        assert_eq!(peer.sas.inbound.len(), 1, "{side:?}: data plane inbound SAs {:x?}", peer.sas);
        assert_eq!(peer.sas.outbound.len(), 1, "{side:?}: data plane outbound SAs");
        assert!(peer.sas.inbound.contains_key(&if side == Side::A { ca[0].0 } else { cb[0].0 }));
    }
}

/// Requests of exchange `ty` `from` put on the wire from datagram index `since` on.
fn requests(pair: &Pair, from: Side, ty: ExchangeType, since: usize) -> usize {
    pair.wire
        .iter()
        .skip(since)
        .filter(|(s, t)| {
            *s == from
                && HeaderPacket::new_checked(&t.payload[..])
                    .is_ok_and(|h| h.exchange_type() == ty && !h.flags().response())
        })
        .count()
}

fn count(pair: &Pair, side: Side, f: impl Fn(&Event) -> bool) -> usize {
    let peer = if side == Side::A { &pair.a } else { &pair.b };
    peer.events.iter().filter(|(_, e)| f(e)).count()
}

/// A restarts: a fresh endpoint with the same configuration initiates again.
fn restart_a(pair: &mut Pair, a: IkeConfig) {
    pair.a.endpoint = fresh_endpoint(pair, a);
    pair.a.sas = Default::default();
    pair.a.events.clear();
    pair.initiate(Side::A, "gw", Some("net"));
}

#[test]
fn a_restarted_initiator_clears_the_stale_sas_with_initial_contact() {
    let a = config(Side::A, UniquePolicy::No);
    let mut pair = up_pair(a.clone(), config(Side::B, UniquePolicy::No));
    let (old_ike, old_child) = established(&pair, Side::B).remove(0);
    let since = pair.wire.len();
    restart_a(&mut pair, a);
    assert!(pair.drive());
    assert_one_pair(&pair);
    let (new_ike, new_child) = established(&pair, Side::B).remove(0);
    assert_ne!(new_ike, old_ike);
    assert_ne!(new_child, old_child);
    // B dropped the stale IKE SA and its CHILD_SA silently: the peer has neither.
    assert_eq!(requests(&pair, Side::B, ExchangeType::INFORMATIONAL, since), 0, "B sent DELETE");
    let superseded: Vec<_> = pair
        .b
        .events
        .iter()
        .filter_map(|(id, e)| match e {
            Event::Superseded { by, cause } => Some((*id, *by, *cause)),
            _ => None,
        })
        .collect();
    assert_eq!(superseded, [(old_ike, new_ike.0, SupersedeCause::InitialContact)]);
    assert_eq!(count(&pair, Side::B, |e| matches!(e, Event::Closed(CloseReason::Superseded))), 1);
    assert!(
        pair.b.events.iter().any(|(id, e)| *id == old_ike
            && matches!(e, Event::ChildSaDown { inbound_spi, .. } if *inbound_spi == old_child[0].0)),
        "the stale CHILD_SA was taken out of B's data plane"
    );
    // Traffic flows on the new pair without loss.
    pair.traffic = Default::default();
    pair.run_traffic(Duration::from_secs(5), Duration::from_millis(100));
    let t = pair.traffic;
    assert!(t.sent > 0 && t.delivered == t.sent, "{t:?}");
}

#[test]
fn unique_never_neither_sends_nor_honours_initial_contact() {
    // B with `never` ignores A's INITIAL_CONTACT: the stale SA stays until B notices it.
    let a = config(Side::A, UniquePolicy::No);
    let mut pair = up_pair(a.clone(), config(Side::B, UniquePolicy::Never));
    restart_a(&mut pair, a);
    assert!(pair.drive());
    assert_eq!(established(&pair, Side::B).len(), 2);
    assert_eq!(count(&pair, Side::B, |e| matches!(e, Event::Superseded { .. })), 0);

    // A with `never` does not send it, so B (`no`) keeps the stale SA too.
    let a = config(Side::A, UniquePolicy::Never);
    let mut pair = up_pair(a.clone(), config(Side::B, UniquePolicy::No));
    restart_a(&mut pair, a);
    let id = pair.a.endpoint.sessions().next().unwrap().0;
    assert!(!pair.a.endpoint.session(id).unwrap().sends_initial_contact());
    assert!(pair.drive());
    assert_eq!(established(&pair, Side::B).len(), 2);
}

#[test]
fn a_second_ike_sa_of_a_running_initiator_carries_no_initial_contact() {
    // A still holds its IKE SA: its second one must not make B drop the first (`unique = no`).
    let mut pair = up_pair(config(Side::A, UniquePolicy::No), config(Side::B, UniquePolicy::No));
    let second = pair.initiate(Side::A, "gw", Some("net"));
    assert!(pair.drive());
    assert!(!pair.a.endpoint.session(second).unwrap().sends_initial_contact());
    assert_eq!(established(&pair, Side::A).len(), 2);
    assert_eq!(established(&pair, Side::B).len(), 2);
    assert_eq!(count(&pair, Side::B, |e| matches!(e, Event::Superseded { .. })), 0);
}

/// A initiates a second IKE SA of `gw` from another address (192.0.2.3).
fn initiate_from_elsewhere(pair: &mut Pair) -> SessionId {
    let now = pair.now;
    pair.a
        .endpoint
        .initiate(
            now,
            "gw",
            Some("net"),
            SocketAddr::new("192.0.2.3".parse().unwrap(), 500),
            SocketAddr::new(pair.b.addr, 500),
        )
        .unwrap()
}

#[test]
fn unique_replace_deletes_the_old_ike_sa() {
    // From another address: B deletes the old IKE SA at once, with a DELETE A answers.
    let mut pair =
        up_pair(config(Side::A, UniquePolicy::No), config(Side::B, UniquePolicy::Replace));
    let (old, _) = established(&pair, Side::A).remove(0);
    let since = pair.wire.len();
    let new = initiate_from_elsewhere(&mut pair);
    assert!(pair.drive());
    assert_one_pair(&pair);
    assert_eq!(established(&pair, Side::A)[0].0, new);
    assert_eq!(requests(&pair, Side::B, ExchangeType::INFORMATIONAL, since), 1, "one DELETE");
    assert!(
        pair.a
            .events
            .iter()
            .any(|(id, e)| *id == old && matches!(e, Event::Closed(CloseReason::PeerDelete)))
    );
    assert!(pair.b.events.iter().any(|(_, e)| matches!(
        e,
        Event::Superseded { cause: SupersedeCause::Replace { delay }, .. } if delay.is_zero()
    )));

    // From the same address (a reauthentication, perhaps): after the grace period.
    let mut pair =
        up_pair(config(Side::A, UniquePolicy::No), config(Side::B, UniquePolicy::Replace));
    let start = pair.now;
    pair.initiate(Side::A, "gw", Some("net"));
    pair.advance(Duration::from_secs(5));
    assert_eq!(established(&pair, Side::B).len(), 2, "not before the grace period");
    assert!(pair.drive());
    assert_one_pair(&pair);
    assert!(pair.now - start >= Duration::from_secs(10));
    assert!(pair.b.events.iter().any(|(_, e)| matches!(
        e,
        Event::Superseded { cause: SupersedeCause::Replace { delay }, .. }
            if *delay == Duration::from_secs(10)
    )));
}

#[test]
fn unique_keep_refuses_a_second_ike_sa_unless_initial_contact() {
    let mut pair = up_pair(config(Side::A, UniquePolicy::No), config(Side::B, UniquePolicy::Keep));
    let (first, _) = established(&pair, Side::B).remove(0);
    let second = initiate_from_elsewhere(&mut pair);
    assert!(pair.drive());
    assert!(pair.a.endpoint.session(second).is_none(), "the second IKE SA was refused");
    assert!(
        pair.a.events.iter().any(|(id, e)| *id == second
            && matches!(e, Event::Failed(f) if f.kind == FailureKind::Authentication)),
        "{:?}",
        pair.a.failures()
    );
    assert!(
        pair.b.failures().iter().any(|f| f.contains("unique = keep")),
        "{:?}",
        pair.b.failures()
    );
    assert_eq!(established(&pair, Side::B).iter().map(|s| s.0).collect::<Vec<_>>(), [first]);

    // From the same address it may be a reauthentication: allowed.
    pair.initiate(Side::A, "gw", Some("net"));
    assert!(pair.drive());
    assert_eq!(established(&pair, Side::B).len(), 2);

    // A restarted peer (INITIAL_CONTACT) replaces the stale ones even with `keep`.
    let mut pair = up_pair(config(Side::A, UniquePolicy::No), config(Side::B, UniquePolicy::Keep));
    pair.a.endpoint = fresh_endpoint(&pair, config(Side::A, UniquePolicy::No));
    pair.a.sas = Default::default();
    initiate_from_elsewhere(&mut pair);
    assert!(pair.drive());
    assert_one_pair(&pair);
}

/// Distinct IKE SAs A started from datagram `since` on.
fn initiations(pair: &Pair, since: usize) -> Vec<u64> {
    let mut spis: Vec<u64> = pair
        .wire
        .iter()
        .skip(since)
        .filter(|(s, _)| *s == Side::A)
        .filter_map(|(_, t)| {
            let h = HeaderPacket::new_checked(&t.payload[..]).ok()?;
            (h.exchange_type() == ExchangeType::IKE_SA_INIT && !h.flags().response())
                .then(|| h.spi_i())
        })
        .collect();
    spis.dedup();
    spis
}

/// A with `dpd_action = restart` (DPD 5 s / 10 s), B gone for `outage`, then back as a fresh
/// daemon: returns how long after B's return A's CHILD_SA is up again.
fn dpd_restart_after(outage: Duration, keyingtries: u32) -> (Duration, Pair) {
    let mut a = config(Side::A, UniquePolicy::No);
    a.lifetime.dpd_delay = Duration::from_secs(5);
    a.lifetime.dpd_timeout = Duration::from_secs(10);
    a.children[0].dpd_restart = true;
    a.keyingtries = keyingtries;
    let b = config(Side::B, UniquePolicy::No);
    let mut pair = up_pair(a, b.clone());
    pair.drop = Some(Box::new(|_, side, _| side == Side::B));
    pair.advance(outage);
    pair.b.endpoint = fresh_endpoint(&pair, b);
    pair.b.sas = Default::default();
    pair.drop = None;
    let mut waited = Duration::ZERO;
    while established(&pair, Side::A).iter().all(|s| s.1.is_empty()) {
        pair.advance(Duration::from_millis(100));
        waited += Duration::from_millis(100);
        assert!(waited <= Duration::from_secs(60), "tunnel not back after {waited:?}");
    }
    assert!(pair.drive());
    assert_one_pair(&pair);
    (waited, pair)
}

#[test]
fn dpd_restart_finds_a_returning_peer_within_seconds() {
    // Short and long outages: the first try probes every 5 s, later tries less often (10,
    // 15 … 30 s), so the wait after the return stays below the current probe interval.
    for (outage, bound) in [(20, 6), (45, 6), (200, 11), (600, 31)] {
        let (waited, pair) = dpd_restart_after(Duration::from_secs(outage), 0);
        eprintln!(
            "outage {outage} s: tunnel back {:.1} s after the peer returned",
            waited.as_secs_f64()
        );
        assert!(waited <= Duration::from_secs(bound), "outage {outage} s: {waited:?}");
        let scheduled: Vec<(u32, Duration)> = pair
            .a
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::RestartScheduled { attempt, retransmit_cap, .. } => {
                    Some((*attempt, *retransmit_cap))
                }
                _ => None,
            })
            .collect();
        assert_eq!(scheduled.first(), Some(&(1, Duration::from_secs(5))), "{scheduled:?}");
        // Bounded: no more IKE_SA_INIT datagrams than one per probe interval.
        let probes = requests(&pair, Side::A, ExchangeType::IKE_SA_INIT, 0);
        assert!(probes as u64 <= outage / 5 + 3, "{probes} IKE_SA_INIT requests in {outage} s");
    }
}

#[test]
fn a_restart_try_lasts_as_long_as_the_normal_schedule_and_keyingtries_bounds_them() {
    let mut a = config(Side::A, UniquePolicy::No);
    a.lifetime.dpd_delay = Duration::from_secs(5);
    a.lifetime.dpd_timeout = Duration::from_secs(10);
    a.children[0].dpd_restart = true;
    a.keyingtries = 2;
    let mut pair = up_pair(a, config(Side::B, UniquePolicy::No));
    let since = pair.wire.len();
    pair.drop = Some(Box::new(|_, side, _| side == Side::B));
    pair.advance(Duration::from_secs(1000));
    assert!(pair.drive());
    // Two tries (keyingtries = 2), each probing for the 165 s of the 4 s × 1.8ⁿ schedule.
    assert_eq!(initiations(&pair, since).len(), 2, "{:?}", pair.a.failures());
    assert!(!pair.a.endpoint.restart_pending("gw"));
    let failures = pair.a.failures();
    let timeouts: Vec<_> = failures.iter().filter(|f| f.contains("IKE_SA_INIT")).collect();
    assert_eq!(timeouts.len(), 2, "{failures:?}");
    assert!(timeouts[0].contains("over 165 s"), "{timeouts:?}");
    // First try every 5 s (34 transmissions over 165 s), the second every 10 s.
    let probes = requests(&pair, Side::A, ExchangeType::IKE_SA_INIT, since);
    assert!((45..=55).contains(&probes), "{probes} IKE_SA_INIT requests");
}
