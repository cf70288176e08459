//! strongSwan's rekey exchange tests, scenario by scenario, on the two-peer simulator.
//!
//! strongSwan's `src/libcharon/tests/suites/test_child_rekey.c` (30 tests) and
//! `test_ike_rekey.c` (18 tests) drive two charon IKE SAs message by message and check which
//! SAs survive. Here the same message orders are played between two ferroswan endpoints with
//! manual delivery ([`Pair::set_manual`]: every IKE datagram is held until the test delivers
//! it, late, or never) and scripted nonces (the first byte of every 32-byte random draw, as
//! strongSwan's `nonce_first_byte`). Each test asserts strongSwan's outcome, translated: the
//! SPIs that survive agree on both sides and belong to the SA strongSwan keeps, the redundant
//! and old SAs are gone once their linger is over, every SA is reported down once, nothing
//! failed, and where make-before-break promises it no packet of a concurrent flow is lost.
//!
//! Two ferroswan peers cannot catch a decision rule inverted on both sides (which SA is
//! redundant): the rows below pin the winner strongSwan's tables name for each nonce order.
//!
//! # Coverage
//!
//! Loop variants in brackets. "lifecycle" = `tests/ikev2_lifecycle_sim.rs`. Multiple key
//! exchanges (RFC 9370, `*_multi_ke`, `*_mixed`) are not implemented by ferroswan: N/A.
//!
//! ## test_child_rekey.c
//!
//! | strongSwan test | scenario, expected outcome | ours |
//! |---|---|---|
//! | test_regular [2] | either IKE role rekeys; old deleted by the initiator, new kept | lifecycle `rekey_initiated_by_either_side_keeps_traffic_flowing` |
//! | test_regular_multi_ke [2] | IKE_FOLLOWUP_KE | N/A (no RFC 9370) |
//! | test_regular_ke_invalid [2] | INVALID_KE_PAYLOAD, retry; the next rekey reuses the group in one exchange | `child_rekey_after_invalid_ke_reuses_the_group` |
//! | test_regular_ke_invalid_multi_ke [2] | same with ADDKE | N/A (no RFC 9370) |
//! | test_regular_responder_ignore_soft_expire | responder's rekey of the replaced SA sends nothing | `child_responder_ignores_a_rekey_of_the_sa_it_replaced` |
//! | test_regular_responder_handle_hard_expire | replaced SA expires at the responder before the DELETE: no DELETE of its own, new SA sends | `child_responder_hard_expire_before_the_delete_sends_no_delete` |
//! | test_regular_responder_delete | responder deletes the new SA before the old one's DELETE: all gone | `child_responder_deletes_the_new_sa_before_the_old_one_is_deleted` |
//! | test_regular_responder_lost_sa | responder lost the SA: CHILD_SA_NOT_FOUND, a fresh CHILD_SA | `child_rekey_of_an_sa_the_responder_lost_creates_a_new_one` |
//! | test_regular_responder_incorrect_delete | responder DELETEs the old SA before its response arrives: new SA kept | `child_incorrect_delete_of_the_old_sa_before_the_response_keeps_the_new_one` |
//! | test_regular_delete_timeout | DELETE of the old SA times out: IKE SA gone, each SA down once | `child_delete_timeout_after_a_rekey_reports_each_sa_down_once` |
//! | test_collision [4] | crossing rekeys, lowest of 4 nonces loses | `child_collision_the_lowest_nonce_loses` (+ lifecycle `simultaneous_rekey_deletes_the_sa_of_the_lowest_nonce`) |
//! | test_collision_multi_ke [4] | | N/A (no RFC 9370) |
//! | test_collision_mixed [4] | | N/A (no RFC 9370) |
//! | test_collision_delayed_response [4] | one response arrives after the DELETE | `child_collision_with_a_delayed_response` |
//! | test_collision_delayed_response_delete [4] | ... and the surviving SA is deleted too: all gone | `child_collision_with_a_delayed_response_and_the_new_sa_deleted` |
//! | test_collision_delayed_response_multi_ke [4] | | N/A (no RFC 9370) |
//! | test_collision_delayed_request [6] | one request late: TEMPORARY_FAILURE before/after the DELETE, the peer's SA kept | `child_collision_with_a_delayed_request` |
//! | test_collision_delayed_request_more [3] | request after the DELETE exchange: CHILD_SA_NOT_FOUND, no fresh SA | `child_collision_with_a_request_delayed_past_the_delete` |
//! | test_collision_delayed_request_more_delete [3] | ... and the new SA deleted: all gone | `child_collision_with_a_request_delayed_past_the_delete_of_both` |
//! | test_collision_delayed_request_multi_ke [6] | | N/A (no RFC 9370) |
//! | test_collision_ke_invalid [4] | both refuse INVALID_KE, retries collide, lowest nonce loses | `child_collision_after_invalid_ke_the_lowest_nonce_loses` |
//! | test_collision_ke_invalid_delayed_retry [3] | one retry late: TEMPORARY_FAILURE, the peer's SA kept | `child_collision_after_invalid_ke_with_a_delayed_retry` |
//! | test_collision_responder_incorrect_delete | the loser also DELETEs the old SA before the winner's response | `child_collision_loser_deleting_the_old_sa_early_keeps_the_winners_sa` |
//! | test_collision_delete [2] | rekey vs DELETE: TEMPORARY_FAILURE, all gone, no retry | `child_rekey_colliding_with_a_delete` (+ lifecycle `rekey_colliding_with_delete_leaves_no_sa_behind`) |
//! | test_collision_delete_multi_ke [2] | | N/A (no RFC 9370) |
//! | test_collision_delete_drop_delete [2] | DELETE late: TEMPORARY_FAILURE first, retry finds nothing | `child_rekey_colliding_with_a_delayed_delete` |
//! | test_collision_delete_drop_rekey [2] | rekey late: CHILD_SA_NOT_FOUND, nothing re-created | `child_delayed_rekey_of_a_deleted_sa_creates_nothing` |
//! | test_collision_delete_delayed_response [2] | peer deletes the new SA before our response arrives: all gone | `child_new_sa_deleted_before_the_rekey_response_arrives` |
//! | test_collision_ike_rekey [2] | CHILD rekey vs IKE rekey: both TEMPORARY_FAILURE, retried | lifecycle `ike_rekey_colliding_with_a_child_rekey_is_retried_and_both_complete` |
//! | test_collision_ike_delete [2] | CHILD rekey vs IKE DELETE: TEMPORARY_FAILURE, IKE SA gone | `child_rekey_colliding_with_an_ike_delete` |
//!
//! ## test_ike_rekey.c
//!
//! | strongSwan test | scenario, expected outcome | ours |
//! |---|---|---|
//! | test_regular [2] | either IKE role rekeys; children move, old IKE SA deleted | lifecycle `ike_sa_rekey_by_either_side_moves_the_child_sas_and_deletes_the_old_ike_sa` |
//! | test_regular_multi_ke [2] | | N/A (no RFC 9370) |
//! | test_regular_ke_invalid [2] | INVALID_KE_PAYLOAD then success | `ike_rekey_after_invalid_ke_completes` |
//! | test_regular_ke_invalid_multi_ke [2] | | N/A (no RFC 9370) |
//! | test_collision [4] | crossing IKE rekeys, lowest of 4 nonces loses | lifecycle `simultaneous_ike_rekey_keeps_the_ike_sa_without_the_lowest_nonce`, `ike_collision_the_lowest_nonce_loses` |
//! | test_collision_multi_ke [4] | | N/A (no RFC 9370) |
//! | test_collision_mixed [4] | | N/A (no RFC 9370) |
//! | test_collision_ke_invalid [4] | both refuse INVALID_KE first | N/A: needs `prefer_previous_dh_group = no`; ferroswan always rekeys with the IKE SA's group, so two peers cannot both refuse (the one-sided refusal is `ike_rekey_after_invalid_ke_completes`) |
//! | test_collision_ke_invalid_delayed_retry [3] | | N/A, as above |
//! | test_collision_delayed_response [4] | one response arrives after the DELETE | `ike_collision_with_a_delayed_response` (+ lifecycle `ike_rekey_collision_with_a_lost_response_converges_either_way`) |
//! | test_collision_delayed_response_multi_ke [4] | | N/A (no RFC 9370) |
//! | test_collision_dropped_request [3] | one request lost: the other side's IKE SA kept | lifecycle `ike_rekey_collision_with_a_lost_request_keeps_the_other_sides_ike_sa` |
//! | test_collision_delayed_request [3] | one request late: TEMPORARY_FAILURE after the DELETE | `ike_collision_with_a_delayed_request` |
//! | test_collision_delayed_request_and_delete [3] | TEMPORARY_FAILURE before the DELETE | `ike_collision_with_a_delayed_request_and_delete` |
//! | test_collision_delayed_request_multi_ke [6] | | N/A (no RFC 9370) |
//! | test_collision_delete [2] | IKE rekey vs IKE DELETE: all gone | lifecycle `ike_rekey_colliding_with_a_delete_of_the_ike_sa_closes_it` |
//! | test_collision_delete_multi_ke [2] | | N/A (no RFC 9370) |
//! | test_collision_delete_drop_delete [2] | DELETE late: TEMPORARY_FAILURE first, then the DELETE | `ike_rekey_colliding_with_a_delayed_ike_delete` |
//!
//! Count: of strongSwan's 48 tests, 32 are covered (23 of 30 CHILD, 9 of 18 IKE); 16 are
//! N/A: 14 need multiple key exchanges, 2 an IKE rekey that changes the group.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use ferroswan_awslc::DEFAULT_PROVIDER;
use ferroswan_proto::crypto::{CryptoError, CryptoProvider, SecureRandom};
use ferroswan_proto::ikev2::SessionId;
use ferroswan_proto::ikev2::config::{ChildLifetime, IkeConfig};
use ferroswan_proto::ikev2::proposal::ProposalSpec;
use ferroswan_proto::ikev2::session::{ChildState, CloseReason, Event, Role, Session};
use ferroswan_proto::wire::ikev2::{ExchangeType, HeaderPacket, ProtocolId};
use ferroswan_proto::wire::{EncrId, KeId, PrfId};
use ferroswan_test::SeededRandom;
use ferroswan_test::ikesim::{Pair, Side, psk_config};

// ---- scripted nonces ----

/// Randomness whose 32-byte draws (nonces, and Curve25519 scalars, which clamping makes
/// indifferent to it) start with a chosen byte, like strongSwan's `nonce_first_byte`.
struct Nonces {
    /// The first byte, or above 0xff for none.
    first: AtomicU16,
    rng: Mutex<SeededRandom>,
}

impl SecureRandom for Nonces {
    fn fill(&self, dest: &mut [u8]) -> Result<(), CryptoError> {
        self.rng.lock().map_err(|_| CryptoError::Rng)?.fill_bytes(dest);
        if let (32, Ok(b)) = (dest.len(), u8::try_from(self.first.load(Ordering::SeqCst))) {
            dest[0] = b;
        }
        Ok(())
    }
}

impl Nonces {
    fn set(&self, first: u8) {
        self.first.store(first.into(), Ordering::SeqCst);
    }

    fn off(&self) {
        self.first.store(0x100, Ordering::SeqCst);
    }
}

/// A provider of its own (one per test, so tests run in parallel) with scripted nonces.
fn scripted() -> (&'static Nonces, CryptoProvider) {
    let nonces: &'static Nonces = Box::leak(Box::new(Nonces {
        first: AtomicU16::new(0x100),
        rng: Mutex::new(SeededRandom::new(0x7296)),
    }));
    let p = CryptoProvider::new(
        DEFAULT_PROVIDER.esp,
        DEFAULT_PROVIDER.prf,
        DEFAULT_PROVIDER.ke,
        nonces,
    );
    (nonces, p)
}

// ---- setup ----

fn proposal(protocol: ProtocolId, ike: bool, ke: &[KeId]) -> ProposalSpec {
    ProposalSpec {
        protocol,
        encr: vec![(EncrId::ENCR_AES_GCM_16, 128)],
        prf: if ike { vec![PrfId::PRF_HMAC_SHA2_256] } else { Vec::new() },
        integ: Vec::new(),
        ke: ke.to_vec(),
        esn: if ike { Vec::new() } else { vec![false] },
    }
}

/// `side`'s connection: no automatic rekeying; `ike_ke` for the IKE SA, `esp_ke` for PFS
/// (in order of preference; the responder picks by its own order).
fn config(side: Side, ike_ke: &[KeId], esp_ke: &[KeId]) -> IkeConfig {
    let (a, b) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
    let (local, remote, lts, rts) = match side {
        Side::A => (a, b, "10.1.0.0/16", "10.2.0.0/16"),
        Side::B => (b, a, "10.2.0.0/16", "10.1.0.0/16"),
    };
    let mut c = psk_config(
        "gw",
        local,
        remote,
        vec![proposal(ProtocolId::IKE, true, ike_ke)],
        vec![proposal(ProtocolId::ESP, false, esp_ke)],
        lts,
        rts,
        b"secret",
    );
    c.children[0].lifetime = ChildLifetime::NONE;
    c.lifetime.rekey_time = Duration::ZERO;
    c
}

const C25519: &[KeId] = &[KeId::CURVE25519];

/// The tunnel up (`initiator` started it), then manual delivery.
fn up_with(provider: CryptoProvider, a: IkeConfig, b: IkeConfig, initiator: Side) -> Pair {
    let mut pair = Pair::new(provider, vec![a], vec![b]);
    pair.initiate(initiator, "gw", Some("net"));
    assert!(pair.drive());
    assert_eq!(children(&pair, Side::A).len(), 1, "{:?}", pair.a.failures());
    pair.set_manual(true);
    pair
}

fn up(provider: CryptoProvider) -> Pair {
    up_with(provider, config(Side::A, C25519, &[]), config(Side::B, C25519, &[]), Side::A)
}

fn peer(pair: &Pair, side: Side) -> &ferroswan_test::ikesim::Peer {
    if side == Side::A { &pair.a } else { &pair.b }
}

/// The one live IKE SA of `side`.
fn session(pair: &Pair, side: Side) -> (SessionId, &Session) {
    let mut it = peer(pair, side).endpoint.sessions().filter(|(_, s)| !s.is_closed());
    let s = it.next().expect("an IKE SA");
    assert!(it.next().is_none(), "{side:?} holds one IKE SA");
    s
}

fn sessions(pair: &Pair, side: Side) -> usize {
    peer(pair, side).endpoint.sessions().filter(|(_, s)| !s.is_closed()).count()
}

/// `(inbound, outbound, state)` of `side`'s CHILD_SAs.
fn children(pair: &Pair, side: Side) -> Vec<(u32, u32, ChildState)> {
    peer(pair, side)
        .endpoint
        .sessions()
        .flat_map(|(_, s)| s.children().iter().map(|c| (c.inbound_spi, c.outbound_spi, c.state)))
        .collect()
}

/// `side`'s inbound SPI of its single CHILD_SA.
fn the_child(pair: &Pair, side: Side) -> u32 {
    let c = children(pair, side);
    assert_eq!(c.len(), 1, "{side:?} holds {c:x?}");
    c[0].0
}

fn rekey(pair: &mut Pair, side: Side, spi: u32) {
    let now = pair.now;
    let (sid, _) = session(pair, side);
    pair.peer(side).endpoint.session_mut(sid).unwrap().rekey_child(now, spi);
}

fn delete(pair: &mut Pair, side: Side, spi: u32) {
    let now = pair.now;
    let (sid, _) = session(pair, side);
    pair.peer(side).endpoint.session_mut(sid).unwrap().delete_child(now, spi);
}

fn rekey_ike(pair: &mut Pair, side: Side) {
    let now = pair.now;
    let (sid, _) = session(pair, side);
    pair.peer(side).endpoint.session_mut(sid).unwrap().rekey_ike(now);
}

/// Both sides send a data packet, and it arrives (held IKE datagrams stay held).
fn pump(pair: &mut Pair) {
    pair.send_data(Side::A);
    pair.send_data(Side::B);
    pair.advance(pair.latency + Duration::from_millis(1));
}

/// The next held datagram to `to` arrives, with traffic flowing around it.
fn step(pair: &mut Pair, to: Side) {
    pump(pair);
    pair.deliver_next(to);
    pump(pair);
}

/// Delivery back to normal; traffic for `secs` (past every linger), then quiet.
fn finish(pair: &mut Pair, secs: u64) {
    pump(pair);
    pair.set_manual(false);
    pair.run_traffic(Duration::from_secs(secs), Duration::from_millis(50));
    assert!(pair.drive());
}

fn count(pair: &Pair, side: Side, f: impl Fn(&Event) -> bool) -> usize {
    peer(pair, side).events.iter().filter(|(_, e)| f(e)).count()
}

fn requests(pair: &Pair, from: Side, ty: ExchangeType) -> usize {
    pair.wire
        .iter()
        .filter(|(s, t)| {
            *s == from
                && HeaderPacket::new_checked(&t.payload[..])
                    .is_ok_and(|h| h.exchange_type() == ty && !h.flags().response())
        })
        .count()
}

/// The inbound SPIs of the CHILD_SAs `side` installed as a rekey's initiator (`own`) or
/// responder.
fn rekeyed_ups(pair: &Pair, side: Side, own: bool) -> Vec<u32> {
    peer(pair, side)
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::ChildSaUp(up) if up.replaces.is_some() && up.activate_outbound == own => {
                Some(up.child.inbound_spi)
            }
            _ => None,
        })
        .collect()
}

/// Every SA that came up and is no longer held was reported down exactly once, the ones held
/// are the data plane's, and nothing failed.
fn assert_clean(pair: &Pair) {
    for side in [Side::A, Side::B] {
        let p = peer(pair, side);
        let held: Vec<u32> = children(pair, side).iter().map(|c| c.0).collect();
        for (_, e) in &p.events {
            let Event::ChildSaUp(up) = e else { continue };
            let spi = up.child.inbound_spi;
            let downs = count(
                pair,
                side,
                |e| matches!(e, Event::ChildSaDown { inbound_spi, .. } if *inbound_spi == spi),
            );
            let expected = usize::from(!held.contains(&spi));
            assert_eq!(downs, expected, "{side:?}: SA {spi:08x} reported down {downs} times");
        }
        let mut plane: Vec<u32> = p.sas.inbound.keys().copied().collect();
        let mut held = held;
        plane.sort_unstable();
        held.sort_unstable();
        assert_eq!(plane, held, "{side:?}: data plane and session agree");
        assert!(p.failures().is_empty(), "{side:?}: {:?}", p.failures());
    }
}

/// Both sides hold one CHILD_SA, the same one, and it is `a_inbound` on A.
fn assert_survivor(pair: &Pair, a_inbound: u32) {
    let (a, b) = (children(pair, Side::A), children(pair, Side::B));
    assert_eq!((a.len(), b.len()), (1, 1), "A holds {a:x?}, B holds {b:x?}");
    assert_eq!((a[0].0, a[0].1), (b[0].1, b[0].0), "SPIs agree");
    assert_eq!(a[0].0, a_inbound, "the SA strongSwan keeps survived");
    for side in [Side::A, Side::B] {
        assert!(peer(pair, side).sas.sending().is_some(), "{side:?} sends");
    }
    assert_clean(pair);
}

/// Nothing left: no CHILD_SA on either side, in the sessions or the data plane.
fn assert_no_child(pair: &Pair) {
    for side in [Side::A, Side::B] {
        assert!(children(pair, side).is_empty(), "{side:?} holds {:x?}", children(pair, side));
        assert!(peer(pair, side).sas.inbound.is_empty(), "{side:?} data plane");
    }
    assert_clean(pair);
}

fn assert_no_loss(pair: &Pair) {
    let t = pair.traffic;
    assert_eq!(t.unknown_spi + t.wrong_keys + t.no_sa, 0, "packets lost: {t:?}");
    assert!(t.sent > 0 && t.delivered == t.sent, "{t:?}");
}

/// The SA `winner`'s exchange made, as A's inbound SPI: A's own rekey's SA when A won, the
/// one A answered B's rekey with when B won.
fn made_by(pair: &Pair, winner: Side) -> u32 {
    let ups = rekeyed_ups(pair, Side::A, winner == Side::A);
    assert_eq!(ups.len(), 1, "A installed {ups:x?} for {winner:?}'s rekey");
    ups[0]
}

/// strongSwan's four-nonce table (N1 A's request, N2 B's request, N3 B's answer to A, N4 A's
/// answer to B) and who wins: the exchange without the lowest nonce.
const TABLE: [([u8; 4], Side); 4] = [
    ([0x00, 0xff, 0xff, 0xff], Side::B),
    ([0xff, 0x00, 0xff, 0xff], Side::A),
    ([0xff, 0xff, 0x00, 0xff], Side::B),
    ([0xff, 0xff, 0xff, 0x00], Side::A),
];

/// Both start rekeying the CHILD_SA (nonces N1, N2), both requests arrive (answered with N3,
/// N4): the common start of strongSwan's collision tests.
fn crossing_rekeys(pair: &mut Pair, nonces: &Nonces, n: [u8; 4]) {
    let (a, b) = (the_child(pair, Side::A), the_child(pair, Side::B));
    nonces.set(n[0]);
    rekey(pair, Side::A, a);
    nonces.set(n[1]);
    rekey(pair, Side::B, b);
    nonces.set(n[2]);
    step(pair, Side::B); // A's request
    nonces.set(n[3]);
    step(pair, Side::A); // B's request
    nonces.off();
}

// ==== test_child_rekey.c: regular ====

#[test]
fn child_rekey_after_invalid_ke_reuses_the_group() {
    // The rekeying side prefers Curve25519, the other MODP-2048: the first rekey is refused
    // INVALID_KE_PAYLOAD and retried; the next one starts with the group that worked.
    for (rekeying, initiator) in [(Side::A, Side::A), (Side::A, Side::B)] {
        let (_, provider) = scripted();
        let other = rekeying.other();
        let cfg = |s: Side| {
            let ke = if s == rekeying {
                [KeId::CURVE25519, KeId::MODP_2048]
            } else {
                [KeId::MODP_2048, KeId::CURVE25519]
            };
            config(s, C25519, &ke)
        };
        let (a, b) = (cfg(Side::A), cfg(Side::B));
        let mut pair = up_with(provider, a, b, initiator);
        for round in 0..2 {
            let spi = the_child(&pair, rekeying);
            rekey(&mut pair, rekeying, spi);
            if round == 0 {
                step(&mut pair, other); // request, KE Curve25519
                step(&mut pair, rekeying); // INVALID_KE_PAYLOAD(MODP-2048)
                assert_eq!(children(&pair, rekeying)[0].2, ChildState::Rekeying);
            }
            step(&mut pair, other); // request, KE MODP-2048
            step(&mut pair, rekeying); // the new SA
            finish(&mut pair, 5);
            pair.set_manual(true);
            let (_, s) = session(&pair, Side::A);
            assert_eq!(s.children()[0].suite.ke, Some(KeId::MODP_2048));
            assert_survivor(&pair, children(&pair, Side::A)[0].0);
        }
        // 2 + 1 requests: the second rekey needed no INVALID_KE round.
        assert_eq!(requests(&pair, rekeying, ExchangeType::CREATE_CHILD_SA), 3);
        assert_no_loss(&pair);
    }
}

#[test]
fn child_responder_ignores_a_rekey_of_the_sa_it_replaced() {
    let (_, provider) = scripted();
    let mut pair = up(provider);
    let (a, b) = (the_child(&pair, Side::A), the_child(&pair, Side::B));
    rekey(&mut pair, Side::A, a);
    step(&mut pair, Side::B); // request
    step(&mut pair, Side::A); // response; A's DELETE of the old SA is held
    // B's soft expiry of the SA it already replaced: no request.
    rekey(&mut pair, Side::B, b);
    assert!(pair.held(Side::A).is_empty(), "B sent nothing");
    finish(&mut pair, 5);
    assert_survivor(&pair, rekeyed_ups(&pair, Side::A, true)[0]);
    assert_eq!(requests(&pair, Side::B, ExchangeType::CREATE_CHILD_SA), 0);
    assert_no_loss(&pair);
}

#[test]
fn child_responder_hard_expire_before_the_delete_sends_no_delete() {
    // B's SA lives 60 s; A rekeys at 55 s and its DELETE of the old SA is late: B's old SA
    // expires meanwhile. B switches to the new SA and does not DELETE the old one itself (a
    // DELETE could overtake a late CREATE_CHILD_SA response; the peer deletes it anyway).
    let (_, provider) = scripted();
    let mut b = config(Side::B, C25519, &[]);
    b.children[0].lifetime.life_time = Duration::from_secs(60);
    let mut pair = up_with(provider, config(Side::A, C25519, &[]), b, Side::A);
    pair.advance(Duration::from_secs(55));
    let a = the_child(&pair, Side::A);
    rekey(&mut pair, Side::A, a);
    step(&mut pair, Side::B);
    step(&mut pair, Side::A);
    let late_delete = pair.take(Side::B);
    pair.run_traffic(Duration::from_secs(10), Duration::from_millis(50));
    assert!(pair.held(Side::A).is_empty(), "B sent no DELETE of its own");
    let new_b = rekeyed_ups(&pair, Side::B, false)[0];
    assert_eq!(children(&pair, Side::B).iter().map(|c| c.0).collect::<Vec<_>>(), [new_b]);
    assert_eq!(peer(&pair, Side::B).sas.sending().map(|o| o.inbound_spi), Some(new_b));
    pair.deliver(late_delete);
    finish(&mut pair, 3);
    assert_survivor(&pair, rekeyed_ups(&pair, Side::A, true)[0]);
    assert_eq!(requests(&pair, Side::B, ExchangeType::INFORMATIONAL), 0);
}

#[test]
fn child_responder_deletes_the_new_sa_before_the_old_one_is_deleted() {
    let (_, provider) = scripted();
    let mut pair = up(provider);
    let a = the_child(&pair, Side::A);
    rekey(&mut pair, Side::A, a);
    step(&mut pair, Side::B);
    step(&mut pair, Side::A); // A's DELETE of the old SA is held
    let new_b = rekeyed_ups(&pair, Side::B, false)[0];
    delete(&mut pair, Side::B, new_b);
    step(&mut pair, Side::B); // A's DELETE (old)
    step(&mut pair, Side::A); // B's DELETE (new)
    step(&mut pair, Side::A); // B's answer (old)
    step(&mut pair, Side::B); // A's answer (new)
    finish(&mut pair, 5);
    assert_no_child(&pair);
}

#[test]
fn child_rekey_of_an_sa_the_responder_lost_creates_a_new_one() {
    // B's SA expires after 60 s and its DELETE is lost: B lost the SA, A does not know.
    let (_, provider) = scripted();
    let mut b = config(Side::B, C25519, &[]);
    b.children[0].lifetime.life_time = Duration::from_secs(60);
    let mut pair = up_with(provider, config(Side::A, C25519, &[]), b, Side::A);
    pair.advance(Duration::from_secs(61));
    assert!(children(&pair, Side::B).is_empty());
    let lost = pair.take(Side::A);
    assert_eq!(lost.kind(), Some((ExchangeType::INFORMATIONAL, false)));
    let a = the_child(&pair, Side::A);
    rekey(&mut pair, Side::A, a);
    step(&mut pair, Side::B); // CHILD_SA_NOT_FOUND
    step(&mut pair, Side::A); // A drops the SA and asks for a fresh one (no REKEY_SA)
    assert!(children(&pair, Side::A).is_empty());
    step(&mut pair, Side::B);
    step(&mut pair, Side::A);
    finish(&mut pair, 3);
    let fresh = the_child(&pair, Side::A);
    assert_ne!(fresh, a);
    assert!(rekeyed_ups(&pair, Side::A, true).is_empty(), "a new SA, not a rekeyed one");
    assert_survivor(&pair, fresh);
}

#[test]
fn child_incorrect_delete_of_the_old_sa_before_the_response_keeps_the_new_one() {
    // Some responders DELETE the old SA themselves after answering a rekey; if that DELETE
    // overtakes the response, the new SA still stands (strongSwan keeps it).
    let (_, provider) = scripted();
    let mut pair = up(provider);
    let (a, b) = (the_child(&pair, Side::A), the_child(&pair, Side::B));
    rekey(&mut pair, Side::A, a);
    step(&mut pair, Side::B);
    let response = pair.take(Side::A);
    delete(&mut pair, Side::B, b);
    step(&mut pair, Side::A); // B's DELETE of the old SA
    pair.deliver(response);
    finish(&mut pair, 5);
    assert_survivor(&pair, rekeyed_ups(&pair, Side::A, true)[0]);
}

#[test]
fn child_delete_timeout_after_a_rekey_reports_each_sa_down_once() {
    let (_, provider) = scripted();
    let mut pair = up(provider);
    let a = the_child(&pair, Side::A);
    rekey(&mut pair, Side::A, a);
    step(&mut pair, Side::B);
    step(&mut pair, Side::A);
    // B never hears from A again: the DELETE is retransmitted until A gives up.
    while !pair.held(Side::B).is_empty() || sessions(&pair, Side::A) > 0 {
        while !pair.held(Side::B).is_empty() {
            drop(pair.take(Side::B));
        }
        pair.advance(Duration::from_secs(10));
        assert!(pair.elapsed() < Duration::from_secs(1000), "A never gave up");
    }
    assert_eq!(count(&pair, Side::A, |e| matches!(e, Event::Closed(CloseReason::Timeout))), 1);
    assert!(children(&pair, Side::A).is_empty() && pair.a.sas.inbound.is_empty());
    for (_, e) in &pair.a.events {
        let Event::ChildSaUp(up) = e else { continue };
        let spi = up.child.inbound_spi;
        let downs = count(
            &pair,
            Side::A,
            |e| matches!(e, Event::ChildSaDown { inbound_spi, .. } if *inbound_spi == spi),
        );
        assert_eq!(downs, 1, "SA {spi:08x} down {downs} times");
    }
}

// ==== test_child_rekey.c: collisions ====

#[test]
fn child_collision_the_lowest_nonce_loses() {
    for (n, winner) in TABLE {
        let (nonces, provider) = scripted();
        let mut pair = up(provider);
        crossing_rekeys(&mut pair, nonces, n);
        step(&mut pair, Side::A); // B's answer to A
        step(&mut pair, Side::B); // A's answer to B
        finish(&mut pair, 5);
        assert_survivor(&pair, made_by(&pair, winner));
        assert_no_loss(&pair);
        // Each side deleted one SA: the winner the old one, the loser its redundant one.
        for s in [Side::A, Side::B] {
            assert_eq!(requests(&pair, s, ExchangeType::INFORMATIONAL), 1, "{n:x?} {s:?}");
        }
    }
}

#[test]
fn child_collision_with_a_delayed_response() {
    for (n, winner) in TABLE {
        let (nonces, provider) = scripted();
        let mut pair = up(provider);
        crossing_rekeys(&mut pair, nonces, n);
        let late = pair.take(Side::A); // B's answer to A
        step(&mut pair, Side::B); // A's answer: B concludes, DELETEs old or redundant
        step(&mut pair, Side::A);
        step(&mut pair, Side::B);
        pair.deliver(late);
        finish(&mut pair, 5);
        assert_survivor(&pair, made_by(&pair, winner));
        assert_no_loss(&pair);
    }
}

#[test]
fn child_collision_with_a_delayed_response_and_the_new_sa_deleted() {
    // As above, and B then deletes the surviving SA before A has B's answer: nothing stays.
    for (n, winner) in TABLE {
        let (nonces, provider) = scripted();
        let mut pair = up(provider);
        crossing_rekeys(&mut pair, nonces, n);
        let late = pair.take(Side::A);
        step(&mut pair, Side::B);
        step(&mut pair, Side::A);
        step(&mut pair, Side::B);
        // B's copy of the surviving SA: its own if it won, else the one it answered A with.
        let survivor_b = rekeyed_ups(&pair, Side::B, winner == Side::B)[0];
        delete(&mut pair, Side::B, survivor_b);
        step(&mut pair, Side::A);
        step(&mut pair, Side::B);
        pair.deliver(late);
        finish(&mut pair, 5);
        assert_no_child(&pair);
    }
}

#[test]
fn child_collision_with_a_delayed_request() {
    // A's request arrives at B only after B completed its own rekey (B saw no collision): B
    // answers TEMPORARY_FAILURE and its SA stays, whatever the nonces; the answer arrives
    // before or after B's DELETE of the old SA.
    for temp_fail_first in [false, true] {
        for n in [[0x00, 0xff, 0xff], [0xff, 0x00, 0xff], [0xff, 0xff, 0x00]] {
            let (nonces, provider) = scripted();
            let mut pair = up(provider);
            let (a, b) = (the_child(&pair, Side::A), the_child(&pair, Side::B));
            nonces.set(n[0]);
            rekey(&mut pair, Side::A, a);
            nonces.set(n[1]);
            rekey(&mut pair, Side::B, b);
            let late = pair.take(Side::B);
            nonces.set(n[2]);
            step(&mut pair, Side::A); // B's request: A answers, notes the collision
            nonces.off();
            step(&mut pair, Side::B); // B completes, DELETEs the old SA
            pair.deliver(late); // TEMPORARY_FAILURE
            if temp_fail_first {
                let del = pair.take(Side::A);
                step(&mut pair, Side::A);
                pair.deliver(del);
            } else {
                step(&mut pair, Side::A);
                step(&mut pair, Side::A);
            }
            finish(&mut pair, 5);
            assert_survivor(&pair, made_by(&pair, Side::B));
            assert_no_loss(&pair);
            assert_eq!(requests(&pair, Side::A, ExchangeType::CREATE_CHILD_SA), 1, "no retry");
        }
    }
}

/// The start of strongSwan's `test_collision_delayed_request_more*`: A's request is held
/// while B rekeys and deletes the old SA; returns it.
fn request_delayed_past_the_delete(
    pair: &mut Pair,
    nonces: &Nonces,
    n: [u8; 3],
) -> ferroswan_test::ikesim::Held {
    let (a, b) = (the_child(pair, Side::A), the_child(pair, Side::B));
    nonces.set(n[0]);
    rekey(pair, Side::A, a);
    nonces.set(n[1]);
    rekey(pair, Side::B, b);
    let late = pair.take(Side::B);
    nonces.set(n[2]);
    step(pair, Side::A);
    nonces.off();
    step(pair, Side::B); // B completes, DELETEs the old SA
    step(pair, Side::A);
    step(pair, Side::B); // the old SA is gone on both sides
    late
}

#[test]
fn child_collision_with_a_request_delayed_past_the_delete() {
    for n in [[0x00, 0xff, 0xff], [0xff, 0x00, 0xff], [0xff, 0xff, 0x00]] {
        let (nonces, provider) = scripted();
        let mut pair = up(provider);
        let late = request_delayed_past_the_delete(&mut pair, nonces, n);
        pair.deliver(late); // CHILD_SA_NOT_FOUND
        step(&mut pair, Side::A); // A aborts its rekey: nothing new
        finish(&mut pair, 5);
        assert_survivor(&pair, made_by(&pair, Side::B));
        assert_no_loss(&pair);
        assert_eq!(requests(&pair, Side::A, ExchangeType::CREATE_CHILD_SA), 1);
    }
}

#[test]
fn child_collision_with_a_request_delayed_past_the_delete_of_both() {
    for n in [[0x00, 0xff, 0xff], [0xff, 0x00, 0xff], [0xff, 0xff, 0x00]] {
        let (nonces, provider) = scripted();
        let mut pair = up(provider);
        let late = request_delayed_past_the_delete(&mut pair, nonces, n);
        let new_b = the_child(&pair, Side::B);
        delete(&mut pair, Side::B, new_b);
        step(&mut pair, Side::A);
        step(&mut pair, Side::B);
        pair.deliver(late); // CHILD_SA_NOT_FOUND
        step(&mut pair, Side::A);
        finish(&mut pair, 5);
        assert_no_child(&pair);
        assert_eq!(
            requests(&pair, Side::A, ExchangeType::CREATE_CHILD_SA),
            1,
            "nothing re-created"
        );
    }
}

/// A prefers Curve25519 then MODP-2048 for PFS, B the other way round.
fn ke_invalid_pair(provider: CryptoProvider) -> Pair {
    up_with(
        provider,
        config(Side::A, C25519, &[KeId::CURVE25519, KeId::MODP_2048]),
        config(Side::B, C25519, &[KeId::MODP_2048, KeId::CURVE25519]),
        Side::A,
    )
}

/// Both rekey with their own group first and refuse the other's (INVALID_KE_PAYLOAD); both
/// retry. ferroswan keeps a request's nonce for its retry, so `n[0]`/`n[1]` are the nonces of
/// the retries, as in strongSwan's table.
fn crossing_invalid_ke(pair: &mut Pair, nonces: &Nonces, n0: u8, n1: u8) {
    let (a, b) = (the_child(pair, Side::A), the_child(pair, Side::B));
    nonces.set(n0);
    rekey(pair, Side::A, a);
    nonces.set(n1);
    rekey(pair, Side::B, b);
    nonces.off();
    step(pair, Side::B); // A's request: INVALID_KE
    step(pair, Side::A); // B's request: INVALID_KE
    step(pair, Side::A); // A retries
    step(pair, Side::B); // B retries
}

#[test]
fn child_collision_after_invalid_ke_the_lowest_nonce_loses() {
    for (n, winner) in TABLE {
        let (nonces, provider) = scripted();
        let mut pair = ke_invalid_pair(provider);
        crossing_invalid_ke(&mut pair, nonces, n[0], n[1]);
        nonces.set(n[2]);
        step(&mut pair, Side::B); // A's retry
        nonces.set(n[3]);
        step(&mut pair, Side::A); // B's retry
        nonces.off();
        step(&mut pair, Side::A);
        step(&mut pair, Side::B);
        finish(&mut pair, 5);
        assert_survivor(&pair, made_by(&pair, winner));
        assert_no_loss(&pair);
    }
}

#[test]
fn child_collision_after_invalid_ke_with_a_delayed_retry() {
    for n in [[0x00, 0xff, 0xff], [0xff, 0x00, 0xff], [0xff, 0xff, 0x00]] {
        let (nonces, provider) = scripted();
        let mut pair = ke_invalid_pair(provider);
        crossing_invalid_ke(&mut pair, nonces, n[0], n[1]);
        let late = pair.take(Side::B); // A's retry
        nonces.set(n[2]);
        step(&mut pair, Side::A); // B's retry: A answers
        nonces.off();
        step(&mut pair, Side::B); // B completes, DELETEs the old SA
        pair.deliver(late); // TEMPORARY_FAILURE
        step(&mut pair, Side::A); // DELETE
        step(&mut pair, Side::A); // TEMPORARY_FAILURE
        finish(&mut pair, 5);
        assert_survivor(&pair, made_by(&pair, Side::B));
        assert_no_loss(&pair);
    }
}

#[test]
fn child_collision_loser_deleting_the_old_sa_early_keeps_the_winners_sa() {
    // B loses (its request nonce is the lowest) and, besides its redundant SA, wrongly
    // DELETEs the old one too, before A has B's answer: A's SA (the winner's) still stands.
    let (nonces, provider) = scripted();
    let mut pair = up(provider);
    crossing_rekeys(&mut pair, nonces, [0xff, 0x00, 0xff, 0xff]);
    let late = pair.take(Side::A);
    step(&mut pair, Side::B); // A's answer: B lost, DELETEs its redundant SA
    step(&mut pair, Side::A);
    step(&mut pair, Side::B);
    let old_b = children(&pair, Side::B)
        .iter()
        .find(|c| c.2 == ChildState::Rekeyed)
        .map(|c| c.0)
        .expect("B still holds the old SA");
    delete(&mut pair, Side::B, old_b);
    step(&mut pair, Side::A); // the incorrect DELETE
    pair.deliver(late);
    finish(&mut pair, 5);
    assert_survivor(&pair, made_by(&pair, Side::A));
}

// ==== test_child_rekey.c: collisions with DELETE ====

/// `(rekeying side, deleting side)`, each variant once as the IKE SA's initiator.
const ROLES: [(Side, Side); 2] = [(Side::A, Side::B), (Side::B, Side::A)];

#[test]
fn child_rekey_colliding_with_a_delete() {
    for (r, d) in ROLES {
        let (_, provider) = scripted();
        let mut pair = up(provider);
        let (sr, sd) = (the_child(&pair, r), the_child(&pair, d));
        rekey(&mut pair, r, sr);
        delete(&mut pair, d, sd);
        step(&mut pair, d); // rekey: TEMPORARY_FAILURE (§2.25.1)
        step(&mut pair, r); // DELETE: answered as usual
        step(&mut pair, r); // TEMPORARY_FAILURE: no retry, the SA is gone
        step(&mut pair, d);
        pair.advance(Duration::from_secs(30));
        finish(&mut pair, 1);
        assert_no_child(&pair);
        assert_eq!(requests(&pair, r, ExchangeType::CREATE_CHILD_SA), 1, "no retry");
    }
}

#[test]
fn child_rekey_colliding_with_a_delayed_delete() {
    for (r, d) in ROLES {
        let (_, provider) = scripted();
        let mut pair = up(provider);
        let (sr, sd) = (the_child(&pair, r), the_child(&pair, d));
        rekey(&mut pair, r, sr);
        delete(&mut pair, d, sd);
        step(&mut pair, d); // TEMPORARY_FAILURE
        let late = pair.take(r);
        step(&mut pair, r); // a retry is scheduled
        pair.deliver(late); // the DELETE
        step(&mut pair, d);
        pair.advance(Duration::from_secs(30));
        finish(&mut pair, 1);
        assert_no_child(&pair);
        assert_eq!(requests(&pair, r, ExchangeType::CREATE_CHILD_SA), 1, "the retry found nothing");
    }
}

#[test]
fn child_delayed_rekey_of_a_deleted_sa_creates_nothing() {
    for (r, d) in ROLES {
        let (_, provider) = scripted();
        let mut pair = up(provider);
        let (sr, sd) = (the_child(&pair, r), the_child(&pair, d));
        rekey(&mut pair, r, sr);
        delete(&mut pair, d, sd);
        let late = pair.take(d);
        step(&mut pair, r); // DELETE
        step(&mut pair, d);
        pair.deliver(late); // CHILD_SA_NOT_FOUND
        step(&mut pair, r); // the rekey ends: the peer deleted the SA on purpose
        pair.advance(Duration::from_secs(30));
        finish(&mut pair, 1);
        assert_no_child(&pair);
        assert_eq!(requests(&pair, r, ExchangeType::CREATE_CHILD_SA), 1, "nothing re-created");
    }
}

#[test]
fn child_new_sa_deleted_before_the_rekey_response_arrives() {
    // The responder deletes the new SA right after answering; its DELETE names an SPI the
    // initiator does not know yet. When the answer comes, that SA is not installed and the
    // old one goes too.
    for (r, d) in ROLES {
        let (_, provider) = scripted();
        let mut pair = up(provider);
        let sr = the_child(&pair, r);
        rekey(&mut pair, r, sr);
        step(&mut pair, d);
        let late = pair.take(r);
        let new_d = rekeyed_ups(&pair, d, false)[0];
        delete(&mut pair, d, new_d);
        step(&mut pair, r); // DELETE of an unknown SA: empty answer
        step(&mut pair, d);
        pair.deliver(late);
        finish(&mut pair, 5);
        assert_no_child(&pair);
    }
}

#[test]
fn child_rekey_colliding_with_an_ike_delete() {
    for (r, d) in ROLES {
        let (_, provider) = scripted();
        let mut pair = up(provider);
        let sr = the_child(&pair, r);
        rekey(&mut pair, r, sr);
        let now = pair.now;
        let (sid, _) = session(&pair, d);
        pair.peer(d).endpoint.session_mut(sid).unwrap().close(now);
        step(&mut pair, d); // the rekey: TEMPORARY_FAILURE, no new SA on a closing IKE SA
        assert_eq!(count(&pair, d, |e| matches!(e, Event::ChildSaUp(_))), 1);
        step(&mut pair, r); // the IKE DELETE: r closes
        drop(pair.take(r)); // TEMPORARY_FAILURE for an IKE SA that is gone
        step(&mut pair, d);
        finish(&mut pair, 1);
        for s in [Side::A, Side::B] {
            assert_eq!(sessions(&pair, s), 0, "{s:?}");
        }
        assert_no_child(&pair);
    }
}

// ==== test_ike_rekey.c ====

#[test]
fn ike_rekey_after_invalid_ke_completes() {
    // A initiated with Curve25519 first, B prefers MODP-2048: the IKE SA runs MODP-2048. B's
    // rekey proposes it, A wants Curve25519: INVALID_KE_PAYLOAD, then B retries.
    for rekeying in [Side::A, Side::B] {
        let (_, provider) = scripted();
        let mut pair = up_with(
            provider,
            config(Side::A, &[KeId::CURVE25519, KeId::MODP_2048], &[]),
            config(Side::B, &[KeId::MODP_2048, KeId::CURVE25519], &[]),
            Side::A,
        );
        let child = the_child(&pair, Side::A);
        rekey_ike(&mut pair, rekeying);
        finish(&mut pair, 5);
        let (_, sa) = session(&pair, Side::A);
        assert_eq!(session(&pair, Side::B).1.spis(), sa.spis());
        assert_eq!(sa.role() == Role::Initiator, rekeying == Side::A);
        assert_survivor(&pair, child);
        let expected = if rekeying == Side::B { 2 } else { 1 };
        assert_eq!(requests(&pair, rekeying, ExchangeType::CREATE_CHILD_SA), expected);
        for s in [Side::A, Side::B] {
            assert_eq!(count(&pair, s, |e| matches!(e, Event::IkeSaRekeyed(_))), 1);
        }
        assert_no_loss(&pair);
    }
}

/// After an IKE rekey collision: one IKE SA each side, made by `winner`'s rekey, holding the
/// unchanged CHILD_SA; each side saw the old and the redundant IKE SA go.
fn assert_ike_survivor(pair: &Pair, child: u32, winner: Side) {
    let (_, sa) = session(pair, Side::A);
    assert_eq!(session(pair, Side::B).1.spis(), sa.spis(), "both agree on the new SPIs");
    assert_eq!(sa.role() == Role::Initiator, winner == Side::A, "{winner:?}'s IKE SA survived");
    assert_survivor(pair, child);
    for s in [Side::A, Side::B] {
        assert_eq!(count(pair, s, |e| matches!(e, Event::IkeSaRekeyed(_))), 1, "{s:?}");
        let closed = count(pair, s, |e| matches!(e, Event::Closed(_)));
        let rekeyed = count(pair, s, |e| matches!(e, Event::Closed(CloseReason::Rekeyed)));
        assert_eq!(closed, rekeyed, "{s:?}: only replaced IKE SAs closed");
        assert!(rekeyed >= 1, "{s:?}: the old IKE SA closed");
    }
}

#[test]
fn ike_collision_the_lowest_nonce_loses() {
    for (n, winner) in TABLE {
        let (nonces, provider) = scripted();
        let mut pair = up(provider);
        let child = the_child(&pair, Side::A);
        nonces.set(n[0]);
        rekey_ike(&mut pair, Side::A);
        nonces.set(n[1]);
        rekey_ike(&mut pair, Side::B);
        nonces.set(n[2]);
        step(&mut pair, Side::B);
        nonces.set(n[3]);
        step(&mut pair, Side::A);
        nonces.off();
        step(&mut pair, Side::A);
        step(&mut pair, Side::B);
        finish(&mut pair, 5);
        assert_ike_survivor(&pair, child, winner);
        for s in [Side::A, Side::B] {
            let rekeyed = count(&pair, s, |e| matches!(e, Event::Closed(CloseReason::Rekeyed)));
            assert_eq!(rekeyed, 2, "{s:?}: the old and the redundant IKE SA");
        }
        assert_no_loss(&pair);
    }
}

#[test]
fn ike_collision_with_a_delayed_response() {
    // B's answer to A's rekey arrives after B concluded the collision and deleted an IKE SA
    // (the old one if B won: A then takes B's SA, the late answer finds no SA; its redundant
    // one if B lost: A ignores the DELETE for an SA it does not know yet, and B retransmits).
    for (n, winner) in TABLE {
        let (nonces, provider) = scripted();
        let mut pair = up(provider);
        let child = the_child(&pair, Side::A);
        nonces.set(n[0]);
        rekey_ike(&mut pair, Side::A);
        nonces.set(n[1]);
        rekey_ike(&mut pair, Side::B);
        nonces.set(n[2]);
        step(&mut pair, Side::B);
        nonces.set(n[3]);
        step(&mut pair, Side::A);
        nonces.off();
        let late = pair.take(Side::A);
        step(&mut pair, Side::B); // A's answer: B concludes and DELETEs
        step(&mut pair, Side::A);
        pair.deliver(late);
        finish(&mut pair, 120);
        assert_ike_survivor(&pair, child, winner);
        assert_no_loss(&pair);
    }
}

/// A's IKE rekey request is held while B's rekey completes; returns it.
fn ike_request_delayed(
    pair: &mut Pair,
    nonces: &Nonces,
    n: [u8; 3],
) -> ferroswan_test::ikesim::Held {
    nonces.set(n[0]);
    rekey_ike(pair, Side::A);
    nonces.set(n[1]);
    rekey_ike(pair, Side::B);
    let late = pair.take(Side::B);
    nonces.set(n[2]);
    step(pair, Side::A); // B's request: A answers, notes the collision
    nonces.off();
    step(pair, Side::B); // B completes, DELETEs the old IKE SA
    late
}

#[test]
fn ike_collision_with_a_delayed_request() {
    for n in [[0x00, 0xff, 0xff], [0xff, 0x00, 0xff], [0xff, 0xff, 0x00]] {
        let (nonces, provider) = scripted();
        let mut pair = up(provider);
        let child = the_child(&pair, Side::A);
        let late = ike_request_delayed(&mut pair, nonces, n);
        pair.deliver(late); // TEMPORARY_FAILURE (retiring)
        step(&mut pair, Side::A); // the DELETE: A takes B's IKE SA
        pair.deliver_next(Side::A); // TEMPORARY_FAILURE for an IKE SA that is gone
        finish(&mut pair, 5);
        assert_ike_survivor(&pair, child, Side::B);
        assert_no_loss(&pair);
    }
}

#[test]
fn ike_collision_with_a_delayed_request_and_delete() {
    for n in [[0x00, 0xff, 0xff], [0xff, 0x00, 0xff], [0xff, 0xff, 0x00]] {
        let (nonces, provider) = scripted();
        let mut pair = up(provider);
        let child = the_child(&pair, Side::A);
        let late = ike_request_delayed(&mut pair, nonces, n);
        pair.deliver(late); // TEMPORARY_FAILURE
        let del = pair.take(Side::A);
        step(&mut pair, Side::A); // TEMPORARY_FAILURE first: A takes B's IKE SA, no retry
        // The old IKE SA waits for B's DELETE; the CHILD_SA is on B's new one already.
        let holder = pair.a.endpoint.sessions().find(|(_, s)| !s.children().is_empty());
        assert_eq!(holder.map(|(_, s)| s.role()), Some(Role::Responder), "on B's new IKE SA");
        pair.deliver(del);
        finish(&mut pair, 30);
        assert_ike_survivor(&pair, child, Side::B);
        assert_eq!(requests(&pair, Side::A, ExchangeType::CREATE_CHILD_SA), 1, "no retry");
        assert_no_loss(&pair);
    }
}

#[test]
fn ike_rekey_colliding_with_a_delayed_ike_delete() {
    for (r, d) in ROLES {
        let (_, provider) = scripted();
        let mut pair = up(provider);
        rekey_ike(&mut pair, r);
        let now = pair.now;
        let (sid, _) = session(&pair, d);
        pair.peer(d).endpoint.session_mut(sid).unwrap().close(now);
        step(&mut pair, d); // the rekey: TEMPORARY_FAILURE (§2.25.2)
        let late = pair.take(r);
        step(&mut pair, r); // a retry is scheduled
        assert_eq!(sessions(&pair, r), 1);
        pair.deliver(late); // the DELETE
        step(&mut pair, d);
        finish(&mut pair, 30);
        for s in [Side::A, Side::B] {
            assert_eq!(sessions(&pair, s), 0, "{s:?}");
            assert_eq!(count(&pair, s, |e| matches!(e, Event::IkeSaRekeyed(_))), 0);
        }
        assert_no_child(&pair);
    }
}
