//! CHILD_SA lifecycle on the two-peer simulator: rekeying as make-before-break over a virtual
//! day of traffic, rekey collisions (§2.8.1) and their races with DELETE, lost messages in the
//! middle of a rekey, hard expiry, and dead peer detection.
//!
//! Traffic is modelled by [`ferroswan_test::ikesim::SimSas`]: a packet is lost when the
//! receiver does not hold the SPI it was sent to (or holds it with other keys), which is
//! exactly what a rekey done in the wrong order loses.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::time::Duration;

use ferroswan_awslc::DEFAULT_PROVIDER;
use ferroswan_proto::crypto::{CryptoError, CryptoProvider, SecureRandom};
use ferroswan_proto::ikev2::SessionId;
use ferroswan_proto::ikev2::config::{ChildLifetime, IkeConfig};
use ferroswan_proto::ikev2::proposal::ProposalSpec;
use ferroswan_proto::ikev2::session::{CloseReason, DownReason, Event, IkeRekeyCollision, Session};
use ferroswan_proto::wire::ikev2::{ExchangeType, HeaderPacket, ProtocolId};
use ferroswan_proto::wire::{EncrId, KeId, PrfId};
use ferroswan_test::ikesim::{Pair, Side, Traffic, psk_config};

fn proposal(protocol: ProtocolId, prf: bool, ke: &[KeId]) -> ProposalSpec {
    ProposalSpec {
        protocol,
        encr: vec![(EncrId::ENCR_AES_GCM_16, 128)],
        prf: if prf { vec![PrfId::PRF_HMAC_SHA2_256] } else { Vec::new() },
        integ: Vec::new(),
        ke: ke.to_vec(),
        esn: if prf { Vec::new() } else { vec![false] },
    }
}

/// `gw` on `side` with CHILD_SA lifetimes `rekey`/`life`/`rand` (seconds) and optional PFS.
fn config(side: Side, lifetime: ChildLifetime, pfs: bool) -> IkeConfig {
    let (a, b) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
    let (local, remote, lts, rts) = match side {
        Side::A => (a, b, "10.1.0.0/16", "10.2.0.0/16"),
        Side::B => (b, a, "10.2.0.0/16", "10.1.0.0/16"),
    };
    let ke: &[KeId] = if pfs { &[KeId::CURVE25519] } else { &[] };
    let mut c = psk_config(
        "gw",
        local,
        remote,
        vec![proposal(ProtocolId::IKE, true, &[KeId::CURVE25519])],
        vec![proposal(ProtocolId::ESP, false, ke)],
        lts,
        rts,
        b"secret",
    );
    c.children[0].lifetime = lifetime;
    c
}

fn lifetime(rekey: u64, life: u64, rand: u64) -> ChildLifetime {
    ChildLifetime {
        rekey_time: Duration::from_secs(rekey),
        life_time: Duration::from_secs(life),
        rand_time: Duration::from_secs(rand),
        ..ChildLifetime::default()
    }
}

/// A pair with the tunnel up (A initiated).
fn up_pair(a: ChildLifetime, b: ChildLifetime, pfs: bool) -> Pair {
    up_pair_with(config(Side::A, a, pfs), config(Side::B, b, pfs))
}

fn up_pair_with(a: IkeConfig, b: IkeConfig) -> Pair {
    let mut pair = Pair::new(DEFAULT_PROVIDER, vec![a], vec![b]);
    pair.initiate(Side::A, "gw", Some("net"));
    assert!(pair.drive());
    assert_eq!(installed(&pair, Side::A).len(), 1, "{:?}", pair.a.failures());
    pair
}

fn session(pair: &Pair, side: Side) -> (SessionId, &Session) {
    let peer = if side == Side::A { &pair.a } else { &pair.b };
    let mut it = peer.endpoint.sessions();
    let s = it.next().expect("an IKE SA");
    assert!(it.next().is_none(), "one IKE SA");
    s
}

/// `(inbound, outbound)` SPIs of the CHILD_SAs the session holds.
fn installed(pair: &Pair, side: Side) -> Vec<(u32, u32)> {
    session(pair, side).1.children().iter().map(|c| (c.inbound_spi, c.outbound_spi)).collect()
}

/// Both sides hold the same single CHILD_SA, in the session and in the data plane.
fn assert_one_matching_child(pair: &Pair) {
    let (a, b) = (installed(pair, Side::A), installed(pair, Side::B));
    assert_eq!(a.len(), 1, "A holds {a:x?}, B holds {b:x?}");
    assert_eq!(b.len(), 1, "A holds {a:x?}, B holds {b:x?}");
    assert_eq!((a[0].0, a[0].1), (b[0].1, b[0].0), "SPIs agree");
    for (side, peer) in [(Side::A, &pair.a), (Side::B, &pair.b)] {
        assert_eq!(peer.sas.inbound.len(), 1, "{side:?} data plane inbound SAs leaked");
        assert_eq!(peer.sas.outbound.len(), 1, "{side:?} data plane outbound SAs leaked");
        assert!(peer.sas.sending().is_some(), "{side:?} has an active outbound SA");
    }
}

fn assert_no_loss(t: Traffic) {
    assert_eq!(t.unknown_spi + t.wrong_keys + t.no_sa, 0, "packets lost: {t:?}");
    assert!(t.sent > 0 && t.delivered == t.sent, "{t:?}");
}

fn count(pair: &Pair, side: Side, f: impl Fn(&Event) -> bool) -> usize {
    let peer = if side == Side::A { &pair.a } else { &pair.b };
    peer.events.iter().filter(|(_, e)| f(e)).count()
}

/// The IKE rekey collision steps `side` reported, in order.
fn collision_steps(pair: &Pair, side: Side) -> Vec<IkeRekeyCollision> {
    let peer = if side == Side::A { &pair.a } else { &pair.b };
    peer.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::IkeRekeyCollision(step) => Some(*step),
            _ => None,
        })
        .collect()
}

fn rekeyed_downs(pair: &Pair, side: Side) -> usize {
    count(pair, side, |e| matches!(e, Event::ChildSaDown { reason: DownReason::Rekeyed, .. }))
}

fn exchanges(pair: &Pair, from: Side, ty: ExchangeType, response: bool) -> usize {
    pair.wire
        .iter()
        .filter(|(s, t)| {
            *s == from
                && HeaderPacket::new_checked(&t.payload[..])
                    .is_ok_and(|h| h.exchange_type() == ty && h.flags().response() == response)
        })
        .count()
}

#[test]
fn a_day_of_traffic_with_rekeys_every_few_minutes_loses_nothing_and_leaks_nothing() {
    // Both ends rekey (with jitter), so they race now and then, as real peers do.
    let (mut a, mut b) = (
        config(Side::A, lifetime(240, 300, 60), true),
        config(Side::B, lifetime(300, 360, 60), true),
    );
    // The IKE SA is rekeyed too, every 17 minutes or so, by either end.
    for c in [&mut a, &mut b] {
        c.lifetime.rekey_time = Duration::from_secs(1020);
        c.lifetime.rand_time = Duration::from_secs(120);
        c.lifetime.over_time = Duration::from_secs(100);
    }
    let mut pair = up_pair_with(a, b);
    pair.jitter = Duration::from_millis(30);
    pair.run_traffic(Duration::from_secs(24 * 3600), Duration::from_secs(2));
    assert!(pair.drive());
    assert_no_loss(pair.traffic);
    assert_one_matching_child(&pair);
    let rekeys = rekeyed_downs(&pair, Side::A);
    assert!(rekeys >= 24 * 3600 / 300, "only {rekeys} rekeys in a day");
    assert_eq!(rekeys, rekeyed_downs(&pair, Side::B), "both ends retired the same SAs");
    assert!(pair.a.failures().is_empty() && pair.b.failures().is_empty());
    // Make-before-break holds two SAs for a moment, never more than a collision's three.
    assert!(pair.a.sas.max_inbound <= 3 && pair.b.sas.max_inbound <= 3);
    let child = &session(&pair, Side::A).1.children()[0];
    assert!(child.rekeys as usize >= rekeys, "rekey count {} < {rekeys}", child.rekeys);
    let ike_rekeys = count(&pair, Side::A, |e| matches!(e, Event::IkeSaRekeyed(_)));
    assert!(ike_rekeys >= 24 * 60 / 17, "only {ike_rekeys} IKE rekeys");
    assert_eq!(ike_rekeys, count(&pair, Side::B, |e| matches!(e, Event::IkeSaRekeyed(_))));
    // Every old IKE SA was deleted (and the redundant ones of crossing rekeys, §2.8.2).
    assert!(
        count(&pair, Side::A, |e| matches!(e, Event::Closed(CloseReason::Rekeyed))) >= ike_rekeys,
        "every old IKE SA was deleted"
    );
}

#[test]
fn ike_sa_rekey_by_either_side_moves_the_child_sas_and_deletes_the_old_ike_sa() {
    for side in [Side::A, Side::B] {
        let off = lifetime(0, 0, 0);
        let mut pair = up_pair(off, off, false);
        let child = installed(&pair, Side::A)[0];
        let (old_a, _) = session(&pair, Side::A);
        let (sid, _) = session(&pair, side);
        let now = pair.now;
        pair.peer(side).endpoint.session_mut(sid).unwrap().rekey_ike(now);
        pair.run_traffic(Duration::from_secs(5), Duration::from_millis(20));
        assert!(pair.drive());
        assert_no_loss(pair.traffic);
        // One IKE SA on each side, a new one, holding the same CHILD_SA.
        let (new_a, sa) = session(&pair, Side::A);
        assert_ne!(new_a, old_a);
        assert_eq!(installed(&pair, Side::A), vec![child]);
        assert_eq!(installed(&pair, Side::B), vec![(child.1, child.0)]);
        let (spi_i, spi_r) = sa.spis();
        assert_eq!(session(&pair, Side::B).1.spis(), (spi_i, spi_r), "both agree on the new SPIs");
        assert_eq!(
            sa.role() == ferroswan_proto::ikev2::session::Role::Initiator,
            side == Side::A,
            "the rekey's initiator is the new SA's initiator"
        );
        for s in [Side::A, Side::B] {
            assert_eq!(count(&pair, s, |e| matches!(e, Event::IkeSaRekeyed(_))), 1);
            assert_eq!(count(&pair, s, |e| matches!(e, Event::Closed(CloseReason::Rekeyed))), 1);
            assert_eq!(count(&pair, s, |e| matches!(e, Event::ChildSaDown { .. })), 0);
        }
        // The new IKE SA works: its keys protect a CHILD_SA rekey and a liveness check.
        let now = pair.now;
        let (sid, _) = session(&pair, Side::B);
        let spi = installed(&pair, Side::B)[0].0;
        let s = pair.b.endpoint.session_mut(sid).unwrap();
        s.rekey_child(now, spi);
        s.liveness_check(now);
        pair.run_traffic(Duration::from_secs(5), Duration::from_millis(20));
        assert!(pair.drive());
        assert_no_loss(pair.traffic);
        assert_one_matching_child(&pair);
        assert!(pair.a.failures().is_empty() && pair.b.failures().is_empty());
    }
}

#[test]
fn a_day_where_every_rekey_collides_still_loses_nothing() {
    // No jitter and the same schedule: both ends start every rekey within one round trip.
    let same = lifetime(300, 360, 0);
    let mut pair = up_pair(same, same, false);
    pair.run_traffic(Duration::from_secs(24 * 3600), Duration::from_secs(2));
    assert!(pair.drive());
    assert_no_loss(pair.traffic);
    assert_one_matching_child(&pair);
    let crossed = exchanges(&pair, Side::A, ExchangeType::CREATE_CHILD_SA, false).min(exchanges(
        &pair,
        Side::B,
        ExchangeType::CREATE_CHILD_SA,
        false,
    ));
    assert!(crossed >= 50, "only {crossed} collisions");
    assert!(pair.a.failures().is_empty() && pair.b.failures().is_empty());
    assert!(pair.a.sas.max_inbound <= 3 && pair.b.sas.max_inbound <= 3);
}

#[test]
fn rekey_initiated_by_either_side_keeps_traffic_flowing() {
    for side in [Side::A, Side::B] {
        let off = lifetime(0, 0, 0);
        let mut pair = up_pair(off, off, false);
        let before = installed(&pair, Side::A)[0];
        let (sid, _) = session(&pair, side);
        let spi = installed(&pair, side)[0].0;
        let now = pair.now;
        pair.peer(side).endpoint.session_mut(sid).unwrap().rekey_child(now, spi);
        pair.run_traffic(Duration::from_secs(5), Duration::from_millis(20));
        assert!(pair.drive());
        assert_no_loss(pair.traffic);
        assert_one_matching_child(&pair);
        assert_ne!(installed(&pair, Side::A)[0], before, "rekeyed by {side:?}");
        assert_eq!((rekeyed_downs(&pair, Side::A), rekeyed_downs(&pair, Side::B)), (1, 1));
        // The responder switched its outbound traffic only after the DELETE.
        let other = if side == Side::A { Side::B } else { Side::A };
        assert_eq!(count(&pair, other, |e| matches!(e, Event::ChildSaActivated { .. })), 1);
    }
}

#[test]
fn simultaneous_rekey_keeps_exactly_one_new_sa() {
    // Run it several times: the nonces decide who wins, both outcomes must converge.
    for _ in 0..8 {
        let off = lifetime(0, 0, 0);
        let mut pair = up_pair(off, off, true);
        let old = installed(&pair, Side::A)[0];
        let now = pair.now;
        for side in [Side::A, Side::B] {
            let (sid, _) = session(&pair, side);
            let spi = installed(&pair, side)[0].0;
            pair.peer(side).endpoint.session_mut(sid).unwrap().rekey_child(now, spi);
        }
        pair.run_traffic(Duration::from_secs(5), Duration::from_millis(20));
        assert!(pair.drive());
        assert_no_loss(pair.traffic);
        assert_one_matching_child(&pair);
        let new = installed(&pair, Side::A)[0];
        assert!(new.0 != old.0 && new.1 != old.1, "the old SA is gone");
        // Two CREATE_CHILD_SA requests crossed; one redundant SA was deleted by its maker.
        assert_eq!(exchanges(&pair, Side::A, ExchangeType::CREATE_CHILD_SA, false), 1);
        assert_eq!(exchanges(&pair, Side::B, ExchangeType::CREATE_CHILD_SA, false), 1);
        assert!(pair.a.failures().is_empty() && pair.b.failures().is_empty());
    }
}

/// Randomness whose 32-byte draws (nonces; no PFS, so no key exchange draws them) start with
/// the next byte of [`NONCE_FIRST_BYTES`] while it has any: a test decides which rekey holds
/// the lowest nonce. Only [`simultaneous_rekey_deletes_the_sa_of_the_lowest_nonce`] uses it.
struct ScriptedNonces;

static NONCE_FIRST_BYTES: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());
/// Held by every test that scripts nonces (tests run in parallel, the script is global).
static SCRIPT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
static SCRIPTED_RNG: std::sync::Mutex<ferroswan_test::SeededRandom> =
    std::sync::Mutex::new(ferroswan_test::SeededRandom::new(0x2801));

impl SecureRandom for ScriptedNonces {
    fn fill(&self, dest: &mut [u8]) -> Result<(), CryptoError> {
        SCRIPTED_RNG.lock().map_err(|_| CryptoError::Rng)?.fill_bytes(dest);
        let mut script = NONCE_FIRST_BYTES.lock().map_err(|_| CryptoError::Rng)?;
        if dest.len() == 32 && !script.is_empty() {
            dest[0] = script.remove(0);
        }
        Ok(())
    }
}

fn scripted_provider() -> CryptoProvider {
    static SCRIPTED: ScriptedNonces = ScriptedNonces;
    CryptoProvider::new(DEFAULT_PROVIDER.esp, DEFAULT_PROVIDER.prf, DEFAULT_PROVIDER.ke, &SCRIPTED)
}

#[test]
fn simultaneous_rekey_deletes_the_sa_of_the_lowest_nonce() {
    // RFC 7296 §2.8.1: of two crossing rekeys of one SA, the SA made by the exchange holding
    // the lowest of the four nonces is redundant and deleted by its initiator; the other stays.
    // strongSwan decides so (child_rekey.c); a peer deciding the opposite way makes both ends
    // delete their own new SA, and the tunnel dies when the old one expires.
    let _script = SCRIPT_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let provider = scripted_provider();
    // (A's request nonce, B's request nonce): the lower one's exchange loses.
    for (a_nonce, b_nonce, winner) in [(0x10, 0x20, Side::B), (0x20, 0x10, Side::A)] {
        let off = lifetime(0, 0, 0);
        let mut pair = Pair::new(
            provider,
            vec![config(Side::A, off, false)],
            vec![config(Side::B, off, false)],
        );
        pair.initiate(Side::A, "gw", Some("net"));
        assert!(pair.drive());
        let now = pair.now;
        // Nonces are drawn in this order: A's request, B's request, then each response
        // (0xf0…: above both requests', whichever answers first).
        *NONCE_FIRST_BYTES.lock().unwrap() = vec![a_nonce, b_nonce, 0xf0, 0xf0];
        for side in [Side::A, Side::B] {
            let (sid, _) = session(&pair, side);
            let spi = installed(&pair, side)[0].0;
            pair.peer(side).endpoint.session_mut(sid).unwrap().rekey_child(now, spi);
        }
        pair.run_traffic(Duration::from_secs(5), Duration::from_millis(20));
        assert!(pair.drive());
        assert!(NONCE_FIRST_BYTES.lock().unwrap().is_empty(), "every scripted nonce drawn");
        assert_no_loss(pair.traffic);
        assert_one_matching_child(&pair);
        // The survivor is the SA the winner's own request made: on the winner's side, the
        // ChildSaUp it installed as the rekey's initiator (sending at once).
        let made_by_winner: Vec<u32> = pair
            .peer(winner)
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::ChildSaUp(up) if up.replaces.is_some() && up.activate_outbound => {
                    Some(up.child.inbound_spi)
                }
                _ => None,
            })
            .collect();
        let kept = installed(&pair, winner)[0].0;
        assert_eq!(made_by_winner, vec![kept], "{winner:?} won: its own new SA stays");
        assert!(pair.a.failures().is_empty() && pair.b.failures().is_empty());
    }
}

#[test]
fn rekey_colliding_with_delete_leaves_no_sa_behind() {
    let off = lifetime(0, 0, 0);
    let mut pair = up_pair(off, off, false);
    let now = pair.now;
    let (sa, _) = session(&pair, Side::A);
    let (sb, _) = session(&pair, Side::B);
    let spi_a = installed(&pair, Side::A)[0].0;
    let spi_b = installed(&pair, Side::B)[0].0;
    pair.a.endpoint.session_mut(sa).unwrap().rekey_child(now, spi_a);
    pair.b.endpoint.session_mut(sb).unwrap().delete_child(now, spi_b);
    assert!(pair.drive());
    assert!(installed(&pair, Side::A).is_empty(), "A: {:x?}", installed(&pair, Side::A));
    assert!(installed(&pair, Side::B).is_empty(), "B: {:x?}", installed(&pair, Side::B));
    assert!(pair.a.sas.inbound.is_empty() && pair.b.sas.inbound.is_empty());
}

#[test]
fn lost_rekey_response_and_lost_delete_are_repaired() {
    for lose in [
        (Side::B, ExchangeType::CREATE_CHILD_SA, true),
        (Side::A, ExchangeType::INFORMATIONAL, false),
    ] {
        let off = lifetime(0, 0, 0);
        let mut pair = up_pair(off, off, false);
        let (from, ty, response) = lose;
        let mut dropped = false;
        pair.drop = Some(Box::new(move |_, side, t| {
            let hit = !dropped
                && side == from
                && HeaderPacket::new_checked(&t.payload[..])
                    .is_ok_and(|h| h.exchange_type() == ty && h.flags().response() == response);
            dropped |= hit;
            hit
        }));
        let (sid, _) = session(&pair, Side::A);
        let spi = installed(&pair, Side::A)[0].0;
        let now = pair.now;
        pair.a.endpoint.session_mut(sid).unwrap().rekey_child(now, spi);
        pair.run_traffic(Duration::from_secs(10), Duration::from_millis(50));
        assert!(pair.drive());
        assert_eq!(pair.dropped, 1);
        assert_no_loss(pair.traffic);
        assert_one_matching_child(&pair);
        // The retransmitted request was answered from the cache: still one SA per rekey.
        assert_eq!(count(&pair, Side::B, |e| matches!(e, Event::ChildSaUp(_))), 2);
    }
}

#[test]
fn a_child_sa_without_rekey_expires_on_both_sides() {
    let mut pair = up_pair(lifetime(0, 60, 0), lifetime(0, 0, 0), false);
    pair.advance(Duration::from_secs(59));
    assert_eq!(installed(&pair, Side::A).len(), 1);
    pair.advance(Duration::from_secs(2));
    assert!(pair.drive());
    assert!(installed(&pair, Side::A).is_empty() && installed(&pair, Side::B).is_empty());
    assert_eq!(
        count(&pair, Side::A, |e| matches!(
            e,
            Event::ChildSaDown { reason: DownReason::Expired, .. }
        )),
        1
    );
    assert_eq!(
        count(&pair, Side::B, |e| matches!(
            e,
            Event::ChildSaDown { reason: DownReason::PeerDelete, .. }
        )),
        1
    );
}

#[test]
fn dead_peer_is_detected_after_dpd_delay_plus_dpd_timeout() {
    let off = lifetime(0, 0, 0);
    let mut a = config(Side::A, off, false);
    a.lifetime.dpd_delay = Duration::from_secs(30);
    a.lifetime.dpd_timeout = Duration::from_secs(20);
    let mut pair = Pair::new(DEFAULT_PROVIDER, vec![a], vec![config(Side::B, off, false)]);
    pair.initiate(Side::A, "gw", Some("net"));
    assert!(pair.drive());
    // Quiet but alive: a liveness check every 30 s, answered.
    pair.advance(Duration::from_secs(95));
    assert_eq!(exchanges(&pair, Side::A, ExchangeType::INFORMATIONAL, false), 3);
    assert!(count(&pair, Side::A, |e| matches!(e, Event::Closed(_))) == 0);
    // B dies.
    pair.drop = Some(Box::new(|_, side, _| side == Side::B));
    let mut waited = 0;
    while count(&pair, Side::A, |e| matches!(e, Event::Closed(CloseReason::Timeout))) == 0 {
        pair.advance(Duration::from_secs(1));
        waited += 1;
        assert!(waited <= 51, "not noticed within dpd_delay + dpd_timeout");
    }
    assert!(
        pair.a.failures().iter().any(|f| f.contains("dpd_timeout 20 s")),
        "{:?}",
        pair.a.failures()
    );
    assert_eq!(count(&pair, Side::A, |e| matches!(e, Event::ChildSaDown { .. })), 1);
}

#[test]
fn traffic_from_the_peer_suppresses_liveness_checks() {
    let off = lifetime(0, 0, 0);
    let mut a = config(Side::A, off, false);
    a.lifetime.dpd_delay = Duration::from_secs(30);
    let mut pair = Pair::new(DEFAULT_PROVIDER, vec![a], vec![config(Side::B, off, false)]);
    pair.initiate(Side::A, "gw", Some("net"));
    assert!(pair.drive());
    for _ in 0..20 {
        pair.advance(Duration::from_secs(10));
        let now = pair.now;
        let (sid, _) = session(&pair, Side::A);
        pair.a.endpoint.session_mut(sid).unwrap().traffic_received(now);
    }
    assert_eq!(exchanges(&pair, Side::A, ExchangeType::INFORMATIONAL, false), 0);
}

/// Distinct IKE SAs A started (IKE_SA_INIT requests with distinct initiator SPIs).
fn initiations(pair: &Pair) -> usize {
    let mut spis: Vec<u64> = pair
        .wire
        .iter()
        .filter(|(s, _)| *s == Side::A)
        .filter_map(|(_, t)| {
            let h = HeaderPacket::new_checked(&t.payload[..]).ok()?;
            (h.exchange_type() == ExchangeType::IKE_SA_INIT && !h.flags().response())
                .then(|| h.spi_i())
        })
        .collect();
    spis.sort_unstable();
    spis.dedup();
    spis.len()
}

#[test]
fn dpd_action_restart_brings_the_tunnel_back_when_the_peer_returns() {
    let off = lifetime(0, 0, 0);
    let mut a = config(Side::A, off, false);
    a.lifetime.dpd_delay = Duration::from_secs(10);
    a.lifetime.dpd_timeout = Duration::from_secs(10);
    a.children[0].dpd_restart = true;
    a.keyingtries = 0;
    let b = config(Side::B, off, false);
    let mut pair = up_pair_with(a, b.clone());
    // B's host goes away for two minutes.
    pair.drop = Some(Box::new(|_, side, _| side == Side::B));
    pair.advance(Duration::from_secs(120));
    assert_eq!(count(&pair, Side::A, |e| matches!(e, Event::Closed(CloseReason::Timeout))), 1);
    assert!(initiations(&pair) >= 2, "A keeps trying");
    // B comes back as a freshly started daemon (no SAs).
    pair.b.endpoint = ferroswan_proto::ikev2::Endpoint::new(
        ferroswan_proto::ikev2::config::EndpointConfig {
            connections: vec![std::sync::Arc::new(b)],
            ..Default::default()
        },
        DEFAULT_PROVIDER,
    );
    pair.b.sas = Default::default();
    pair.drop = None;
    let back = pair.elapsed();
    let mut waited = Duration::ZERO;
    while installed_if_any(&pair, Side::A).is_empty() {
        pair.advance(Duration::from_secs(1));
        waited += Duration::from_secs(1);
        assert!(waited <= Duration::from_secs(90), "tunnel not back after {waited:?}");
    }
    assert!(pair.drive());
    assert_one_matching_child(&pair);
    assert!(pair.elapsed() > back);
}

/// Like `installed`, but zero or one IKE SA.
fn installed_if_any(pair: &Pair, side: Side) -> Vec<(u32, u32)> {
    let peer = if side == Side::A { &pair.a } else { &pair.b };
    peer.endpoint
        .sessions()
        .filter(|(_, s)| s.info().is_some())
        .flat_map(|(_, s)| s.children().iter().map(|c| (c.inbound_spi, c.outbound_spi)))
        .collect()
}

#[test]
fn keyingtries_limits_how_often_a_failed_initiation_is_repeated() {
    let off = lifetime(0, 0, 0);
    let mut a = config(Side::A, off, false);
    a.keyingtries = 3;
    let mut pair = Pair::new(DEFAULT_PROVIDER, vec![a], vec![config(Side::B, off, false)]);
    pair.drop = Some(Box::new(|_, side, _| side == Side::B));
    pair.initiate(Side::A, "gw", Some("net"));
    pair.advance(Duration::from_secs(3 * 170));
    assert!(pair.drive());
    assert_eq!(initiations(&pair), 3);
    assert_eq!(count(&pair, Side::A, |e| matches!(e, Event::Closed(CloseReason::Timeout))), 3);
    assert!(!pair.a.endpoint.restart_pending("gw"));
}

// ---- IKE SA rekey collisions (RFC 7296 §2.8.2), after strongSwan's test_ike_rekey.c ----

/// A pair with the tunnel up, no automatic rekeying, on `provider`.
fn quiet_pair(provider: CryptoProvider) -> Pair {
    let off = lifetime(0, 0, 0);
    let (mut a, mut b) = (config(Side::A, off, false), config(Side::B, off, false));
    for c in [&mut a, &mut b] {
        c.lifetime.rekey_time = Duration::ZERO;
    }
    let mut pair = Pair::new(provider, vec![a], vec![b]);
    pair.initiate(Side::A, "gw", Some("net"));
    assert!(pair.drive());
    assert_eq!(installed(&pair, Side::A).len(), 1, "{:?}", pair.a.failures());
    pair
}

fn rekey_ike(pair: &mut Pair, side: Side) {
    let now = pair.now;
    let (sid, _) = session(pair, side);
    pair.peer(side).endpoint.session_mut(sid).unwrap().rekey_ike(now);
}

/// Drops the first IKE message `from` sends of exchange `ty` (request or response).
fn drop_first(pair: &mut Pair, from: Side, ty: ExchangeType, response: bool) {
    let mut dropped = false;
    pair.drop = Some(Box::new(move |_, side, t| {
        let hit = !dropped
            && side == from
            && HeaderPacket::new_checked(&t.payload[..])
                .is_ok_and(|h| h.exchange_type() == ty && h.flags().response() == response);
        dropped |= hit;
        hit
    }));
}

/// After an IKE rekey: one IKE SA each side, the same SPIs, `initiator` its initiator, the
/// CHILD_SA moved to it unchanged, no CHILD_SA went down and nothing failed.
fn assert_ike_rekeyed(pair: &Pair, child: (u32, u32), initiator: Side) {
    let (_, sa) = session(pair, Side::A);
    assert_eq!(session(pair, Side::B).1.spis(), sa.spis(), "both agree on the new SPIs");
    assert_eq!(
        sa.role() == ferroswan_proto::ikev2::session::Role::Initiator,
        initiator == Side::A,
        "the surviving IKE SA is the one {initiator:?}'s rekey made"
    );
    assert_eq!(installed(pair, Side::A), vec![child]);
    assert_eq!(installed(pair, Side::B), vec![(child.1, child.0)]);
    for s in [Side::A, Side::B] {
        assert_eq!(count(pair, s, |e| matches!(e, Event::IkeSaRekeyed(_))), 1, "{s:?}");
        assert_eq!(count(pair, s, |e| matches!(e, Event::ChildSaDown { .. })), 0, "{s:?}");
    }
    assert!(pair.a.failures().is_empty() && pair.b.failures().is_empty());
}

/// Sets the first bytes of the next 32-byte draws: each rekey exchange draws a Curve25519
/// scalar, then its nonce, so `nonces` are interleaved with filler for the scalars.
fn script_nonces(nonces: &[u8]) {
    *NONCE_FIRST_BYTES.lock().unwrap() = nonces.iter().flat_map(|n| [0x55, *n]).collect();
}

#[test]
fn simultaneous_ike_rekey_keeps_the_ike_sa_without_the_lowest_nonce() {
    // strongSwan's test_collision: both ends rekey the IKE SA at once; the four nonces are
    // A's request, B's request, B's response to A, A's response to B; each row puts the
    // lowest one elsewhere. The IKE SA whose exchange holds it is deleted by its initiator,
    // the winner's initiator deletes the old one, the CHILD_SA lands on the survivor.
    let _script = SCRIPT_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for (nonces, winner) in [
        ([0x00, 0xff, 0xff, 0xff], Side::B),
        ([0xff, 0x00, 0xff, 0xff], Side::A),
        ([0xff, 0xff, 0x00, 0xff], Side::B),
        ([0xff, 0xff, 0xff, 0x00], Side::A),
    ] {
        let mut pair = quiet_pair(scripted_provider());
        let child = installed(&pair, Side::A)[0];
        script_nonces(&nonces);
        rekey_ike(&mut pair, Side::A);
        rekey_ike(&mut pair, Side::B);
        pair.run_traffic(Duration::from_secs(5), Duration::from_millis(20));
        assert!(pair.drive());
        assert!(NONCE_FIRST_BYTES.lock().unwrap().is_empty(), "every scripted nonce drawn");
        assert_no_loss(pair.traffic);
        assert_ike_rekeyed(&pair, child, winner);
        // Each end deleted one IKE SA: the winner the old one, the loser its redundant one;
        // each saw two go (old and redundant).
        for s in [Side::A, Side::B] {
            assert_eq!(exchanges(&pair, s, ExchangeType::CREATE_CHILD_SA, false), 1);
            assert_eq!(exchanges(&pair, s, ExchangeType::INFORMATIONAL, false), 1, "{s:?}");
            assert_eq!(count(&pair, s, |e| matches!(e, Event::Closed(CloseReason::Rekeyed))), 2);
            // Both noticed the crossing and decided by the nonces, with opposite results.
            let outcome =
                if s == winner { IkeRekeyCollision::Won } else { IkeRekeyCollision::Lost };
            assert_eq!(collision_steps(&pair, s), [IkeRekeyCollision::Detected, outcome]);
        }
    }
}

#[test]
fn ike_rekey_collision_with_a_lost_request_keeps_the_other_sides_ike_sa() {
    // strongSwan's test_collision_dropped_request: one request never arrives, so only the
    // other side sees a collision; the side that did not notice wins whatever the nonces.
    for lost in [Side::A, Side::B] {
        let mut pair = quiet_pair(DEFAULT_PROVIDER);
        let child = installed(&pair, Side::A)[0];
        drop_first(&mut pair, lost, ExchangeType::CREATE_CHILD_SA, false);
        rekey_ike(&mut pair, Side::A);
        rekey_ike(&mut pair, Side::B);
        pair.run_traffic(Duration::from_secs(20), Duration::from_millis(20));
        assert!(pair.drive());
        assert_eq!(pair.dropped, 1);
        assert_no_loss(pair.traffic);
        let other = if lost == Side::A { Side::B } else { Side::A };
        assert_ike_rekeyed(&pair, child, other);
        // Only the side whose request was lost saw a crossing, concluded by the other's DELETE.
        let noticed = [IkeRekeyCollision::Detected, IkeRekeyCollision::PeerDidNotNotice];
        assert_eq!(collision_steps(&pair, lost), noticed);
        assert_eq!(collision_steps(&pair, other), []);
    }
}

#[test]
fn ike_rekey_collision_with_a_lost_response_converges_either_way() {
    // strongSwan's test_collision_delayed_response: B's answer to A's rekey is lost. If B
    // wins it deletes the old IKE SA before A learns about B's answer (A takes B's new SA,
    // B drops the redundant one it kept for A after a while); if B loses it deletes its
    // redundant SA, which A only knows once the retransmitted request is answered.
    let _script = SCRIPT_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for (nonces, winner) in
        [([0x10, 0x20, 0xf0, 0xf0], Side::B), ([0x20, 0x10, 0xf0, 0xf0], Side::A)]
    {
        let mut pair = quiet_pair(scripted_provider());
        let child = installed(&pair, Side::A)[0];
        script_nonces(&nonces);
        drop_first(&mut pair, Side::B, ExchangeType::CREATE_CHILD_SA, true);
        rekey_ike(&mut pair, Side::A);
        rekey_ike(&mut pair, Side::B);
        pair.run_traffic(Duration::from_secs(120), Duration::from_millis(100));
        assert!(pair.drive());
        assert_eq!(pair.dropped, 1);
        assert_no_loss(pair.traffic);
        assert_ike_rekeyed(&pair, child, winner);
    }
}

#[test]
fn ike_rekey_colliding_with_a_delete_of_the_ike_sa_closes_it() {
    // strongSwan's test_collision_delete: A rekeys while B deletes the IKE SA. B answers the
    // rekey TEMPORARY_FAILURE (§2.25.2), A answers the DELETE and forgets its rekey.
    for rekeying in [Side::A, Side::B] {
        let mut pair = quiet_pair(DEFAULT_PROVIDER);
        let deleting = if rekeying == Side::A { Side::B } else { Side::A };
        rekey_ike(&mut pair, rekeying);
        let now = pair.now;
        let (sid, _) = session(&pair, deleting);
        pair.peer(deleting).endpoint.session_mut(sid).unwrap().close(now);
        assert!(pair.drive());
        for s in [Side::A, Side::B] {
            let peer = if s == Side::A { &pair.a } else { &pair.b };
            assert_eq!(peer.endpoint.sessions().count(), 0, "{s:?} has no IKE SA left");
            assert!(peer.sas.inbound.is_empty(), "{s:?} has no CHILD_SA left");
            assert_eq!(count(&pair, s, |e| matches!(e, Event::IkeSaRekeyed(_))), 0);
        }
        assert_eq!(
            count(&pair, rekeying, |e| matches!(e, Event::Closed(CloseReason::PeerDelete))),
            1
        );
    }
}

#[test]
fn ike_rekey_colliding_with_a_child_rekey_is_retried_and_both_complete() {
    // Each end refuses the other's exchange with TEMPORARY_FAILURE while its own runs (a
    // CHILD_SA exchange and an IKE rekey must not cross, §2.25.2) and retries later.
    for ike_side in [Side::A, Side::B] {
        let mut pair = quiet_pair(DEFAULT_PROVIDER);
        let child = installed(&pair, Side::A)[0];
        let (old_ike, _) = session(&pair, Side::A);
        let child_side = if ike_side == Side::A { Side::B } else { Side::A };
        rekey_ike(&mut pair, ike_side);
        let now = pair.now;
        let (sid, _) = session(&pair, child_side);
        let spi = installed(&pair, child_side)[0].0;
        pair.peer(child_side).endpoint.session_mut(sid).unwrap().rekey_child(now, spi);
        pair.run_traffic(Duration::from_secs(40), Duration::from_millis(50));
        assert!(pair.drive());
        assert_no_loss(pair.traffic);
        assert_one_matching_child(&pair);
        assert_ne!(session(&pair, Side::A).0, old_ike, "the IKE SA was rekeyed");
        assert_ne!(installed(&pair, Side::A)[0], child, "the CHILD_SA was rekeyed");
        for s in [Side::A, Side::B] {
            assert_eq!(count(&pair, s, |e| matches!(e, Event::IkeSaRekeyed(_))), 1);
        }
        assert!(pair.a.failures().is_empty() && pair.b.failures().is_empty());
    }
}

#[test]
fn a_day_where_every_ike_rekey_collides_keeps_one_ike_sa_and_loses_nothing() {
    // Both ends rekey the IKE SA every 10 minutes without jitter, and CHILD_SAs every 7; the
    // network's jitter decides whether the next rekeys cross (about half of them do).
    let (mut a, mut b) = (
        config(Side::A, lifetime(420, 480, 0), false),
        config(Side::B, lifetime(420, 480, 0), false),
    );
    for c in [&mut a, &mut b] {
        c.lifetime.rekey_time = Duration::from_secs(600);
        c.lifetime.rand_time = Duration::ZERO;
        c.lifetime.over_time = Duration::from_secs(120);
    }
    let mut pair = up_pair_with(a, b);
    pair.jitter = Duration::from_millis(40);
    pair.run_traffic(Duration::from_secs(24 * 3600), Duration::from_secs(2));
    assert!(pair.drive());
    assert_no_loss(pair.traffic);
    assert_one_matching_child(&pair);
    assert!(pair.a.failures().is_empty() && pair.b.failures().is_empty());
    let ike_rekeys = count(&pair, Side::A, |e| matches!(e, Event::IkeSaRekeyed(_)));
    assert!(ike_rekeys >= 24 * 6 - 2, "only {ike_rekeys} IKE rekeys");
    assert_eq!(ike_rekeys, count(&pair, Side::B, |e| matches!(e, Event::IkeSaRekeyed(_))));
    // Collisions: more CREATE_CHILD_SA requests with an IKE proposal than rekeys.
    let redundant =
        count(&pair, Side::A, |e| matches!(e, Event::Closed(CloseReason::Rekeyed))) - ike_rekeys;
    assert!(redundant >= 24 * 6 / 4, "only {redundant} IKE rekey collisions");
    eprintln!("{ike_rekeys} IKE rekeys, {redundant} of them colliding");
}

// ---- Reauthentication (reauth_time), make-before-break ----

fn reauth_pair(reauth: u64, b_psk: &[u8]) -> Pair {
    let off = lifetime(0, 0, 0);
    let mut a = config(Side::A, off, false);
    a.lifetime.rekey_time = Duration::ZERO;
    a.lifetime.reauth_time = Duration::from_secs(reauth);
    a.lifetime.rand_time = Duration::from_secs(reauth / 10);
    a.lifetime.over_time = Duration::from_secs(reauth / 5);
    let mut b = config(Side::B, off, false);
    b.lifetime.rekey_time = Duration::ZERO;
    let mut pair = up_pair_with(a, b);
    if b_psk != b"secret" {
        let mut b = config(Side::B, off, false);
        b.lifetime.rekey_time = Duration::ZERO;
        b.psks = Some(std::sync::Arc::new(ferroswan_test::ikesim::StaticPsk(b_psk.to_vec())));
        pair.b.endpoint.set_connections(vec![std::sync::Arc::new(b)]);
    }
    pair
}

fn reauths(pair: &Pair) -> usize {
    count(pair, Side::A, |e| matches!(e, Event::Closed(CloseReason::Reauthenticated)))
}

#[test]
fn reauthentication_under_traffic_is_make_before_break() {
    let mut pair = reauth_pair(300, b"secret");
    let (first, _) = session(&pair, Side::A);
    pair.run_traffic(Duration::from_secs(3600), Duration::from_millis(500));
    assert!(pair.drive());
    assert_no_loss(pair.traffic);
    assert_one_matching_child(&pair);
    let n = reauths(&pair);
    assert!(n >= 11, "only {n} reauthentications in an hour");
    assert_ne!(session(&pair, Side::A).0, first);
    // Each one a full IKE_SA_INIT + IKE_AUTH, without INITIAL_CONTACT, and no IKE rekey.
    assert_eq!(initiations(&pair), n + 1);
    assert_eq!(count(&pair, Side::A, |e| matches!(e, Event::Established(_))), n + 1);
    assert_eq!(count(&pair, Side::B, |e| matches!(e, Event::Established(_))), n + 1);
    assert_eq!(count(&pair, Side::B, |e| matches!(e, Event::Closed(CloseReason::PeerDelete))), n);
    assert_eq!(count(&pair, Side::A, |e| matches!(e, Event::IkeSaRekeyed(_))), 0);
    assert!(pair.a.failures().is_empty() && pair.b.failures().is_empty());
    // Old and new SAs overlap, nothing more.
    assert!(pair.a.sas.max_inbound <= 2 && pair.b.sas.max_inbound <= 2);
}

#[test]
fn reauthentication_creates_every_child_sa_again() {
    let mut pair = reauth_pair(0, b"secret");
    // A second child on the IKE SA.
    let mut a = config(Side::A, lifetime(0, 0, 0), false);
    let mut b = config(Side::B, lifetime(0, 0, 0), false);
    for (c, ts) in
        [(&mut a, ("10.3.0.0/16", "10.4.0.0/16")), (&mut b, ("10.4.0.0/16", "10.3.0.0/16"))]
    {
        let mut second = c.children[0].clone();
        second.name = "net2".into();
        second.local_ts = vec![ferroswan_proto::ikev2::ts::TsSpec::parse(ts.0).unwrap()];
        second.remote_ts = vec![ferroswan_proto::ikev2::ts::TsSpec::parse(ts.1).unwrap()];
        c.children.push(second);
        c.lifetime.rekey_time = Duration::ZERO;
    }
    let mut pair2 = up_pair_with(a, b);
    std::mem::swap(&mut pair, &mut pair2);
    let now = pair.now;
    let (sid, _) = session(&pair, Side::A);
    pair.a.endpoint.session_mut(sid).unwrap().create_child(now, "net2");
    assert!(pair.drive());
    assert_eq!(installed(&pair, Side::A).len(), 2);
    let old = installed(&pair, Side::A);
    let now = pair.now;
    pair.a.endpoint.reauthenticate(now, sid).unwrap();
    pair.run_traffic(Duration::from_secs(5), Duration::from_millis(20));
    assert!(pair.drive());
    assert_no_loss(pair.traffic);
    let (new, sa) = session(&pair, Side::A);
    assert_ne!(new, sid);
    let mut names: Vec<_> = sa.children().iter().map(|c| c.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["net", "net2"]);
    assert!(installed(&pair, Side::A).iter().all(|c| !old.contains(c)), "all new CHILD_SAs");
    assert_eq!(installed(&pair, Side::B).len(), 2);
    assert_eq!(pair.a.sas.inbound.len(), 2);
    assert_eq!(pair.b.sas.inbound.len(), 2);
    assert_eq!(reauths(&pair), 1);
}

#[test]
fn a_failed_reauthentication_keeps_the_old_ike_sa_until_its_hard_end() {
    // B no longer accepts A's key: the new IKE_AUTH fails, the old IKE SA carries the
    // traffic until reauth_time + over_time (300 + 60 s), then closes.
    let mut pair = reauth_pair(300, b"another secret");
    let (first, _) = session(&pair, Side::A);
    pair.run_traffic(Duration::from_secs(350), Duration::from_millis(500));
    assert_no_loss(pair.traffic);
    assert!(
        pair.a.failures().iter().any(|f| f.contains("reauthentication failed")),
        "{:?}",
        pair.a.failures()
    );
    let (sid, sa) = pair
        .a
        .endpoint
        .sessions()
        .find(|(_, s)| s.info().is_some())
        .expect("the old IKE SA is still there");
    assert_eq!((sid, sa.children().len()), (first, 1));
    pair.advance(Duration::from_secs(15));
    assert!(pair.drive());
    assert!(pair.a.endpoint.sessions().all(|(_, s)| s.info().is_none()), "closed at its hard end");
    assert_eq!(count(&pair, Side::A, |e| matches!(e, Event::Closed(CloseReason::Timeout))), 1);
    assert!(
        pair.a.failures().iter().any(|f| f.contains("without a successful reauthentication")),
        "{:?}",
        pair.a.failures()
    );
}
