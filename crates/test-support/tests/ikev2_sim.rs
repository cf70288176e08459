//! Two IKEv2 endpoints on a virtual clock (crate `ferroswan_test::ikesim`): every exchange,
//! both roles, proposal combinations, INVALID_KE retry, cookies, loss of each message in turn,
//! duplication and reordering, and failures that must explain themselves.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::time::Duration;

use ferroswan_awslc::DEFAULT_PROVIDER;
use ferroswan_proto::crypto::CryptoProvider;
use ferroswan_proto::ikev2::config::{EndpointConfig, IkeConfig};
use ferroswan_proto::ikev2::identity::{IdMatcher, Identity};
use ferroswan_proto::ikev2::proposal::ProposalSpec;
use ferroswan_proto::ikev2::session::{CloseReason, Event};
use ferroswan_proto::wire::ikev2::{ExchangeType, HeaderPacket, ProtocolId};
use ferroswan_proto::wire::{EncrId, IntegId, KeId, PrfId};
use ferroswan_test::ikesim::{Pair, Side, psk_config};

fn ike(encr: (EncrId, u16), prf: PrfId, integ: Option<IntegId>, ke: &[KeId]) -> ProposalSpec {
    ProposalSpec {
        protocol: ProtocolId::IKE,
        encr: vec![encr],
        prf: vec![prf],
        integ: integ.into_iter().collect(),
        ke: ke.to_vec(),
        esn: Vec::new(),
    }
}

fn esp(encr: (EncrId, u16), integ: Option<IntegId>, ke: &[KeId], esn: bool) -> ProposalSpec {
    ProposalSpec {
        protocol: ProtocolId::ESP,
        encr: vec![encr],
        prf: Vec::new(),
        integ: integ.into_iter().collect(),
        ke: ke.to_vec(),
        esn: vec![esn],
    }
}

const GCM128: (EncrId, u16) = (EncrId::ENCR_AES_GCM_16, 128);
const GCM256: (EncrId, u16) = (EncrId::ENCR_AES_GCM_16, 256);
const CHACHA: (EncrId, u16) = (EncrId::ENCR_CHACHA20_POLY1305, 0);
const CBC128: (EncrId, u16) = (EncrId::ENCR_AES_CBC, 128);
const CBC256: (EncrId, u16) = (EncrId::ENCR_AES_CBC, 256);

fn default_ike() -> Vec<ProposalSpec> {
    vec![ike(GCM128, PrfId::PRF_HMAC_SHA2_256, None, &[KeId::CURVE25519])]
}

fn default_esp() -> Vec<ProposalSpec> {
    vec![esp(GCM128, None, &[], false)]
}

/// Connection `gw` of `side` (A is 192.0.2.1, B is 192.0.2.2) toward the other side.
fn gw_config(
    side: Side,
    ike: Vec<ProposalSpec>,
    esp: Vec<ProposalSpec>,
    local_ts: &str,
    remote_ts: &str,
    psk: &[u8],
) -> IkeConfig {
    let (a, b) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
    let (local, remote) = if side == Side::A { (a, b) } else { (b, a) };
    psk_config("gw", local, remote, ike, esp, local_ts, remote_ts, psk)
}

/// A (initiator side) and B with mirrored PSK configs.
fn pair_with(
    provider: CryptoProvider,
    ike_a: Vec<ProposalSpec>,
    ike_b: Vec<ProposalSpec>,
    esp_a: Vec<ProposalSpec>,
    esp_b: Vec<ProposalSpec>,
) -> Pair {
    let a = gw_config(Side::A, ike_a, esp_a, "10.1.0.0/16", "10.2.0.0/16", b"secret");
    let b = gw_config(Side::B, ike_b, esp_b, "10.2.0.0/16", "10.1.0.0/16", b"secret");
    Pair::new(provider, vec![a], vec![b])
}

fn default_pair() -> Pair {
    pair_with(DEFAULT_PROVIDER, default_ike(), default_ike(), default_esp(), default_esp())
}

/// Both sides report the CHILD_SA, with matching SPIs and keys.
fn assert_tunnel_up(pair: &Pair) {
    assert!(pair.a.established(), "A not established: {:?}", pair.a.failures());
    assert!(pair.b.established(), "B not established: {:?}", pair.b.failures());
    let (a, b) = (pair.a.children_up(), pair.b.children_up());
    assert_eq!(
        (a.len(), b.len()),
        (1, 1),
        "A failures {:?} B failures {:?}",
        pair.a.failures(),
        pair.b.failures()
    );
    let (a, b) = (a[0], b[0]);
    assert_eq!(a.inbound.spi, b.outbound.spi);
    assert_eq!(a.outbound.spi, b.inbound.spi);
    assert_eq!(a.inbound.keymat, b.outbound.keymat);
    assert_eq!(a.outbound.keymat, b.inbound.keymat);
    assert_ne!(a.inbound.keymat, a.outbound.keymat);
    assert_eq!(a.encap, b.encap, "both sides must agree on UDP encapsulation");
    assert_eq!(a.child.local_ts, b.child.remote_ts);
    assert_eq!(a.child.remote_ts, b.child.local_ts);
    assert_eq!(a.child.local_ts[0].to_string(), "10.1.0.0/16");
}

fn exchange_of(bytes: &[u8]) -> (ExchangeType, bool) {
    let p = HeaderPacket::new_checked(bytes).unwrap();
    (p.exchange_type(), p.flags().response())
}

#[test]
fn psk_tunnel_comes_up_in_four_messages() {
    let mut pair = default_pair();
    pair.initiate(Side::A, "gw", Some("net"));
    assert!(pair.drive());
    assert_tunnel_up(&pair);
    let exchanges: Vec<_> = pair.wire.iter().map(|(s, t)| (*s, exchange_of(&t.payload))).collect();
    assert_eq!(
        exchanges,
        [
            (Side::A, (ExchangeType::IKE_SA_INIT, false)),
            (Side::B, (ExchangeType::IKE_SA_INIT, true)),
            (Side::A, (ExchangeType::IKE_AUTH, false)),
            (Side::B, (ExchangeType::IKE_AUTH, true)),
        ]
    );
    // No NAT, no encap: IKE stays on port 500.
    assert!(pair.wire.iter().all(|(_, t)| t.local.port() == 500 && !t.non_esp_marker));
    assert!(pair.elapsed() < Duration::from_secs(1));
}

#[test]
fn either_side_can_initiate() {
    let mut pair = default_pair();
    pair.initiate(Side::B, "gw", Some("net"));
    assert!(pair.drive());
    assert_tunnel_up(&pair);
}

#[test]
fn every_transform_negotiates() {
    use IntegId as I;
    use KeId as K;
    use PrfId as P;
    let cases: Vec<(ProposalSpec, ProposalSpec)> = vec![
        (ike(GCM128, P::PRF_HMAC_SHA2_256, None, &[K::CURVE25519]), esp(GCM128, None, &[], false)),
        (ike(GCM256, P::PRF_HMAC_SHA2_384, None, &[K::ECP_384]), esp(GCM256, None, &[], true)),
        (ike(CHACHA, P::PRF_HMAC_SHA2_256, None, &[K::CURVE25519]), esp(CHACHA, None, &[], false)),
        (
            ike(CBC128, P::PRF_HMAC_SHA2_256, Some(I::AUTH_HMAC_SHA2_256_128), &[K::MODP_2048]),
            esp(CBC128, Some(I::AUTH_HMAC_SHA2_256_128), &[], false),
        ),
        (
            ike(CBC256, P::PRF_HMAC_SHA2_384, Some(I::AUTH_HMAC_SHA2_384_192), &[K::ECP_256]),
            esp(CBC256, Some(I::AUTH_HMAC_SHA2_512_256), &[], true),
        ),
        (
            ike(CBC128, P::PRF_HMAC_SHA1, Some(I::AUTH_HMAC_SHA1_96), &[K::MODP_3072]),
            esp(CBC128, Some(I::AUTH_HMAC_SHA1_96), &[], false),
        ),
        (ike(GCM256, P::PRF_HMAC_SHA2_512, None, &[K::ECP_521]), esp(GCM256, None, &[], false)),
        (ike(GCM128, P::PRF_HMAC_SHA2_256, None, &[K::MODP_4096]), esp(GCM128, None, &[], false)),
    ];
    for (i, (ike_p, esp_p)) in cases.into_iter().enumerate() {
        let mut pair = pair_with(
            DEFAULT_PROVIDER,
            vec![ike_p.clone()],
            vec![ike_p.clone()],
            vec![esp_p.clone()],
            vec![esp_p.clone()],
        );
        pair.initiate(if i % 2 == 0 { Side::A } else { Side::B }, "gw", Some("net"));
        pair.drive();
        assert_tunnel_up(&pair);
        let up = pair.a.children_up()[0];
        assert_eq!(up.child.suite.esp.encr, esp_p.encr[0].0, "case {i}: {ike_p} / {esp_p}");
        assert_eq!(up.child.suite.esn, esp_p.esn[0], "case {i}");
    }
}

#[test]
fn invalid_ke_payload_makes_the_initiator_retry_with_the_asked_group() {
    let a_ike =
        vec![ike(GCM128, PrfId::PRF_HMAC_SHA2_256, None, &[KeId::CURVE25519, KeId::ECP_256])];
    let b_ike = vec![ike(GCM128, PrfId::PRF_HMAC_SHA2_256, None, &[KeId::ECP_256])];
    let mut pair = pair_with(DEFAULT_PROVIDER, a_ike, b_ike, default_esp(), default_esp());
    pair.initiate(Side::A, "gw", Some("net"));
    pair.drive();
    assert_tunnel_up(&pair);
    assert_eq!(pair.wire.len(), 6, "INIT, INVALID_KE, INIT again, INIT resp, AUTH, AUTH resp");
    let info = pair.a.endpoint.sessions().next().unwrap().1.info().unwrap().clone();
    assert_eq!(info.suite.ke, KeId::ECP_256);
}

#[test]
fn cookie_round_trip_when_too_many_half_open() {
    let a =
        gw_config(Side::A, default_ike(), default_esp(), "10.1.0.0/16", "10.2.0.0/16", b"secret");
    let b =
        gw_config(Side::B, default_ike(), default_esp(), "10.2.0.0/16", "10.1.0.0/16", b"secret");
    let eb = EndpointConfig { cookie_threshold: 0, ..EndpointConfig::default() };
    let mut pair = Pair::with_endpoint_config(
        DEFAULT_PROVIDER,
        vec![a],
        vec![b],
        EndpointConfig::default(),
        eb,
    );
    pair.initiate(Side::A, "gw", Some("net"));
    pair.drive();
    assert_tunnel_up(&pair);
    assert_eq!(pair.b.endpoint.stats().cookies_sent, 1);
    assert_eq!(pair.wire.len(), 6, "INIT, COOKIE, INIT+cookie, INIT resp, AUTH, AUTH resp");
}

#[test]
fn loss_of_each_message_is_repaired_by_retransmission() {
    for lost in 0..4u64 {
        let mut pair = default_pair();
        pair.drop = Some(Box::new(move |i, _, _| i == lost));
        pair.initiate(Side::A, "gw", Some("net"));
        pair.drive();
        assert_tunnel_up(&pair);
        assert_eq!(pair.dropped, 1);
        // One retransmission after the 4 s timeout.
        assert!(
            pair.elapsed() >= Duration::from_secs(4) && pair.elapsed() < Duration::from_secs(5),
            "lost #{lost}: {:?}",
            pair.elapsed()
        );
    }
}

#[test]
fn duplicated_and_reordered_messages_change_nothing() {
    for seed_jitter in [0u64, 30, 200] {
        let mut pair = default_pair();
        pair.duplicate = 0.7;
        pair.jitter = Duration::from_millis(seed_jitter);
        pair.initiate(Side::A, "gw", Some("net"));
        pair.initiate(Side::B, "gw", Some("net"));
        pair.drive();
        assert!(pair.a.failures().is_empty(), "{:?}", pair.a.failures());
        assert!(pair.b.failures().is_empty(), "{:?}", pair.b.failures());
        // Two IKE SAs (one per initiator), each with its CHILD_SA on both sides.
        assert_eq!(pair.a.children_up().len(), 2);
        assert_eq!(pair.b.children_up().len(), 2);
    }
}

#[test]
fn silent_peer_times_out_after_strongswans_schedule() {
    let mut pair = default_pair();
    pair.drop = Some(Box::new(|_, side, _| side == Side::A));
    pair.initiate(Side::A, "gw", Some("net"));
    pair.drive();
    // 1 + 5 retransmissions: 4 + 7.2 + 12.96 + 23.33 + 41.99 + 75.58 ≈ 165 s.
    let secs = pair.elapsed().as_secs_f64();
    assert!((165.0..166.5).contains(&secs), "{secs}");
    assert_eq!(pair.wire.len(), 6);
    let closed = pair
        .a
        .events
        .iter()
        .find_map(|(_, e)| if let Event::Closed(r) = e { Some(r.clone()) } else { None });
    assert_eq!(closed, Some(CloseReason::Timeout));
    assert!(
        pair.a.failures()[0].contains("did not answer our IKE_SA_INIT"),
        "{:?}",
        pair.a.failures()
    );
}

#[test]
fn wrong_psk_fails_on_both_sides_with_a_reason() {
    let mut pair = default_pair();
    pair.b.endpoint.set_connections(vec![std::sync::Arc::new(gw_config(
        Side::B,
        default_ike(),
        default_esp(),
        "10.2.0.0/16",
        "10.1.0.0/16",
        b"other",
    ))]);
    pair.initiate(Side::A, "gw", Some("net"));
    pair.drive();
    assert!(
        pair.b.failures()[0].contains("pre-shared key MAC does not verify"),
        "{:?}",
        pair.b.failures()
    );
    assert!(pair.a.failures()[0].contains("AUTHENTICATION_FAILED"), "{:?}", pair.a.failures());
    assert!(pair.a.children_up().is_empty() && pair.b.children_up().is_empty());
    assert!(pair.a.endpoint.sessions().next().is_none(), "closed sessions are removed");
}

#[test]
fn wrong_identity_is_refused() {
    let mut b =
        gw_config(Side::B, default_ike(), default_esp(), "10.2.0.0/16", "10.1.0.0/16", b"secret");
    b.remote_id = IdMatcher::Exact(Identity::fqdn("carol.example"));
    let mut pair = default_pair();
    pair.b.endpoint.set_connections(vec![std::sync::Arc::new(b)]);
    pair.initiate(Side::A, "gw", Some("net"));
    pair.drive();
    let f = &pair.b.failures()[0];
    assert!(
        f.contains("no connection accepts peer identity '192.0.2.1'")
            && f.contains("remote.id=carol.example"),
        "{f}"
    );
    assert!(pair.a.failures()[0].contains("AUTHENTICATION_FAILED"));
}

#[test]
fn proposal_mismatch_names_both_lists() {
    let a_ike = vec![ike(GCM256, PrfId::PRF_HMAC_SHA2_384, None, &[KeId::ECP_384])];
    let b_ike = vec![ike(
        CBC128,
        PrfId::PRF_HMAC_SHA2_256,
        Some(IntegId::AUTH_HMAC_SHA2_256_128),
        &[KeId::MODP_2048],
    )];
    let mut pair = pair_with(DEFAULT_PROVIDER, a_ike, b_ike, default_esp(), default_esp());
    pair.initiate(Side::A, "gw", Some("net"));
    pair.drive();
    let b = &pair.b.failures()[0];
    assert!(
        b.contains("aes256gcm16-prfsha384-ecp384")
            && b.contains("aes128-sha256-prfsha256-modp2048"),
        "{b}"
    );
    let a = &pair.a.failures()[0];
    assert!(a.contains("NO_PROPOSAL_CHOSEN") && a.contains("aes256gcm16-prfsha384-ecp384"), "{a}");
}

#[test]
fn esp_mismatch_keeps_the_ike_sa_and_names_the_child() {
    let mut pair = pair_with(
        DEFAULT_PROVIDER,
        default_ike(),
        default_ike(),
        vec![esp(CHACHA, None, &[], false)],
        vec![esp(GCM256, None, &[], false)],
    );
    pair.initiate(Side::A, "gw", Some("net"));
    pair.drive();
    assert!(pair.a.established() && pair.b.established());
    assert!(
        pair.b.failures()[0].starts_with("gw/net: ESP no proposal chosen"),
        "{:?}",
        pair.b.failures()
    );
    assert!(pair.a.failures()[0].contains("NO_PROPOSAL_CHOSEN"), "{:?}", pair.a.failures());
}

#[test]
fn ts_unacceptable_names_both_selector_sets() {
    let a =
        gw_config(Side::A, default_ike(), default_esp(), "10.1.0.0/16", "10.9.0.0/16", b"secret");
    let b =
        gw_config(Side::B, default_ike(), default_esp(), "10.2.0.0/16", "10.1.0.0/16", b"secret");
    let mut pair = Pair::new(DEFAULT_PROVIDER, vec![a], vec![b]);
    pair.initiate(Side::A, "gw", Some("net"));
    pair.drive();
    let f = &pair.b.failures()[0];
    assert!(
        f.contains("TSi 10.1.0.0/16 TSr 10.9.0.0/16")
            && f.contains("local_ts 10.2.0.0/16 remote_ts 10.1.0.0/16"),
        "{f}"
    );
    assert!(pair.a.failures()[0].contains("TS_UNACCEPTABLE"));
}

#[test]
fn narrowing_gives_the_intersection() {
    let a =
        gw_config(Side::A, default_ike(), default_esp(), "10.1.0.0/16", "10.0.0.0/8", b"secret");
    let b =
        gw_config(Side::B, default_ike(), default_esp(), "10.2.0.0/16", "10.1.0.0/16", b"secret");
    let mut pair = Pair::new(DEFAULT_PROVIDER, vec![a], vec![b]);
    pair.initiate(Side::A, "gw", Some("net"));
    pair.drive();
    let up = pair.a.children_up()[0];
    assert_eq!(up.child.remote_ts[0].to_string(), "10.2.0.0/16");
}

#[test]
fn create_child_with_pfs_delete_child_and_close() {
    let esp_pfs = vec![esp(GCM128, None, &[KeId::CURVE25519], false)];
    let mut pair =
        pair_with(DEFAULT_PROVIDER, default_ike(), default_ike(), esp_pfs.clone(), esp_pfs);
    let sid = pair.initiate(Side::A, "gw", Some("net"));
    pair.drive();
    assert_tunnel_up(&pair);
    let now = pair.now;
    pair.a.endpoint.session_mut(sid).unwrap().create_child(now, "net");
    pair.drive();
    assert_eq!(pair.a.children_up().len(), 2);
    assert_eq!(pair.b.children_up().len(), 2);
    let (a2, b2) = (pair.a.children_up()[1], pair.b.children_up()[1]);
    assert_eq!(a2.inbound.keymat, b2.outbound.keymat);
    assert_eq!(a2.child.suite.ke, Some(KeId::CURVE25519));
    let spi = a2.inbound.spi;
    let now = pair.now;
    pair.a.endpoint.session_mut(sid).unwrap().delete_child(now, spi);
    pair.drive();
    let downs = |p: &ferroswan_test::ikesim::Peer| {
        p.events.iter().filter(|(_, e)| matches!(e, Event::ChildSaDown { .. })).count()
    };
    assert_eq!((downs(&pair.a), downs(&pair.b)), (1, 1));
    assert_eq!(pair.a.endpoint.session(sid).unwrap().children().len(), 1);
    let now = pair.now;
    pair.a.endpoint.session_mut(sid).unwrap().close(now);
    pair.drive();
    assert_eq!((downs(&pair.a), downs(&pair.b)), (2, 2));
    assert!(
        pair.a.events.iter().any(|(_, e)| matches!(e, Event::Closed(CloseReason::LocalDelete)))
    );
    assert!(pair.b.events.iter().any(|(_, e)| matches!(e, Event::Closed(CloseReason::PeerDelete))));
    assert_eq!(pair.a.endpoint.sessions().count() + pair.b.endpoint.sessions().count(), 0);
}

#[test]
fn liveness_check_is_answered() {
    let mut pair = default_pair();
    let sid = pair.initiate(Side::A, "gw", Some("net"));
    pair.drive();
    let before = pair.wire.len();
    let now = pair.now;
    pair.a.endpoint.session_mut(sid).unwrap().liveness_check(now);
    pair.drive();
    assert_eq!(pair.wire.len(), before + 2);
    assert!(pair.a.failures().is_empty());
}

#[test]
fn forced_encapsulation_floats_to_4500() {
    let mut pair = default_pair();
    let mut a =
        gw_config(Side::A, default_ike(), default_esp(), "10.1.0.0/16", "10.2.0.0/16", b"secret");
    a.encap = true;
    pair.a.endpoint.set_connections(vec![std::sync::Arc::new(a)]);
    pair.initiate(Side::A, "gw", Some("net"));
    pair.drive();
    assert_tunnel_up(&pair);
    let ports: Vec<_> = pair
        .wire
        .iter()
        .map(|(_, t)| (t.local.port(), t.remote.port(), t.non_esp_marker))
        .collect();
    assert_eq!(
        ports,
        [(500, 500, false), (500, 500, false), (4500, 4500, true), (4500, 4500, true)]
    );
    assert!(pair.a.children_up()[0].encap && pair.b.children_up()[0].encap);
    let info = pair.b.endpoint.sessions().next().unwrap().1.info().unwrap().clone();
    assert!(info.nat_remote, "B sees A's faked NAT");
}

#[test]
fn half_open_sa_expires() {
    let mut pair = default_pair();
    // Drop IKE_AUTH requests: the responder is left half open.
    pair.drop = Some(Box::new(|i, _, _| i >= 2));
    pair.initiate(Side::A, "gw", Some("net"));
    pair.drive_for(Duration::from_secs(31));
    assert_eq!(pair.b.endpoint.sessions().count(), 0);
    assert!(
        pair.b.events.iter().any(|(_, e)| matches!(e, Event::Closed(CloseReason::HalfOpenTimeout)))
    );
}

#[test]
fn unknown_critical_payload_is_answered_with_unsupported_critical_payload() {
    use ferroswan_proto::wire::ikev2::{Message, NotifyType, Payload, PayloadType};
    let mut pair = default_pair();
    // Capture A's IKE_SA_INIT request without delivering it.
    pair.drop = Some(Box::new(|_, _, _| true));
    pair.initiate(Side::A, "gw", Some("net"));
    pair.drive_for(Duration::from_millis(1));
    let mut request = Message::parse(&pair.wire[0].1.payload).unwrap();
    request.payloads.push(Payload::Unknown {
        ty: PayloadType(200),
        critical: true,
        body: vec![1, 2, 3],
    });
    let bytes = request.emit().unwrap();
    let (local, remote) = ("192.0.2.2:500".parse().unwrap(), "192.0.2.1:500".parse().unwrap());
    pair.b.endpoint.handle(pair.now, local, remote, &bytes);
    let reply = pair.b.endpoint.poll_transmit().expect("an error reply");
    let reply = Message::parse(&reply.payload).unwrap();
    assert!(reply.header.flags.response());
    assert!(
        matches!(
            reply.payloads.as_slice(),
            [Payload::Notify(n)] if n.ty == NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD && n.data == [200]
        ),
        "{reply:?}"
    );
    // The same payload without the critical bit is skipped and the exchange goes on.
    let mut request = Message::parse(&pair.wire[0].1.payload).unwrap();
    request.payloads.push(Payload::Unknown {
        ty: PayloadType(200),
        critical: false,
        body: vec![1, 2, 3],
    });
    pair.b.endpoint.handle(pair.now, local, remote, &request.emit().unwrap());
    let reply = Message::parse(&pair.b.endpoint.poll_transmit().unwrap().payload).unwrap();
    assert!(reply.payloads.iter().any(|p| matches!(p, Payload::Sa(_))), "{reply:?}");
}

/// The packet that hit a trap on A: 10.1.0.5:40000 -> 10.2.3.4:443 (TCP).
fn trigger() -> ferroswan_proto::ikev2::ts::TriggerFlow {
    ferroswan_proto::ikev2::ts::TriggerFlow::from_flow(&ferroswan_proto::wire::FlowKey {
        src: "10.1.0.5".parse().unwrap(),
        dst: "10.2.3.4".parse().unwrap(),
        protocol: ferroswan_proto::wire::IpProtocol(6),
        src_port: 40000,
        dst_port: 443,
        ports_opaque: false,
    })
}

/// Both sides installed exactly the configured ranges (the packet's selectors, proposed
/// first, were folded into them by the responder's narrowing).
fn assert_configured_selectors(
    up_a: &ferroswan_proto::ikev2::session::ChildSaUp,
    up_b: &ferroswan_proto::ikev2::session::ChildSaUp,
) {
    let list = |l: &[ferroswan_proto::policy::TrafficSelector]| {
        l.iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    assert_eq!(list(&up_a.child.local_ts), ["10.1.0.0/16"]);
    assert_eq!(list(&up_a.child.remote_ts), ["10.2.0.0/16"]);
    assert_eq!(list(&up_b.child.local_ts), ["10.2.0.0/16"]);
    assert_eq!(list(&up_b.child.remote_ts), ["10.1.0.0/16"]);
    assert_eq!(up_a.inbound.spi, up_b.outbound.spi);
}

#[test]
fn trap_triggered_initiation_proposes_the_packet_and_installs_the_configured_ranges() {
    let mut pair = default_pair();
    let (a, b) = (pair.a.addr, pair.b.addr);
    let now = pair.now;
    let sid = pair
        .a
        .endpoint
        .initiate_triggered(
            now,
            "gw",
            Some("net"),
            Some(trigger()),
            std::net::SocketAddr::new(a, 500),
            std::net::SocketAddr::new(b, 500),
        )
        .unwrap();
    assert_eq!(pair.a.endpoint.session(sid).unwrap().initial_trigger(), Some(&trigger()));
    pair.drive();
    assert_tunnel_up(&pair);
    assert_configured_selectors(pair.a.children_up()[0], pair.b.children_up()[0]);
    // A second child on the established IKE SA (CREATE_CHILD_SA), triggered the same way.
    let now = pair.now;
    pair.a.endpoint.session_mut(sid).unwrap().create_child_triggered(now, "net", Some(trigger()));
    pair.drive();
    assert_eq!((pair.a.children_up().len(), pair.b.children_up().len()), (2, 2));
    assert_configured_selectors(pair.a.children_up()[1], pair.b.children_up()[1]);
}

#[test]
fn a_child_asked_for_during_ike_sa_setup_rides_on_that_ike_sa() {
    let second = |mut c: IkeConfig, local: &str, remote: &str| {
        let mut child = c.children[0].clone();
        child.name = "net2".into();
        child.local_ts = vec![ferroswan_proto::ikev2::ts::TsSpec::parse(local).unwrap()];
        child.remote_ts = vec![ferroswan_proto::ikev2::ts::TsSpec::parse(remote).unwrap()];
        c.children.push(child);
        c
    };
    let a = gw_config(Side::A, default_ike(), default_esp(), "10.1.0.0/16", "10.2.0.0/16", b"s");
    let b = gw_config(Side::B, default_ike(), default_esp(), "10.2.0.0/16", "10.1.0.0/16", b"s");
    let a = second(a, "10.11.0.0/16", "10.12.0.0/16");
    let b = second(b, "10.12.0.0/16", "10.11.0.0/16");
    let mut pair = Pair::new(DEFAULT_PROVIDER, vec![a], vec![b]);
    let sid = pair.initiate(Side::A, "gw", Some("net"));
    // IKE_SA_INIT is in flight: the second child waits for the IKE SA instead of a new one.
    let now = pair.now;
    let session = pair.a.endpoint.session_mut(sid).unwrap();
    session.create_child(now, "net2");
    assert_eq!(session.pending_children(), ["net", "net2"]);
    pair.drive();
    assert_eq!(pair.a.endpoint.sessions().count(), 1);
    assert_eq!(pair.b.endpoint.sessions().count(), 1);
    let names = |p: &ferroswan_test::ikesim::Peer| {
        let mut n: Vec<String> = p.children_up().iter().map(|u| u.child.name.clone()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&pair.a), ["net", "net2"], "A failures {:?}", pair.a.failures());
    assert_eq!(names(&pair.b), ["net", "net2"], "B failures {:?}", pair.b.failures());
    assert_eq!(pair.a.endpoint.session(sid).unwrap().children().len(), 2);
    assert!(pair.a.endpoint.session(sid).unwrap().pending_children().is_empty());
    // IKE_SA_INIT, IKE_AUTH, one CREATE_CHILD_SA: three exchanges, six messages.
    assert_eq!(pair.wire.len(), 6);
}
