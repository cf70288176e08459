//! Two IKEv2 endpoints on a virtual clock (`ferroswan_test::ikesim`) authenticating with real
//! X.509 certificates: swanctl.conf text → `ike::config::ike_configs` → `pki::CredentialStore`
//! signer and verifier → the sans-IO `Session`, with the fixtures of `testdata/pki`
//! (made by strongSwan's `pki`, see `generate.sh`).
//!
//! Every failure is checked on both sides (RFC 7296 §2.21.2, as strongSwan's `ike_auth.c`
//! does it):
//! - the responder refusing the initiator answers IKE_AUTH with AUTHENTICATION_FAILED;
//! - the initiator refusing the responder sends AUTHENTICATION_FAILED in an INFORMATIONAL
//!   request, and the responder, which already installed the CHILD_SA, tears everything down.
//!
//! Certificate validity is checked against the simulation's wall clock
//! ([`Pair::set_unix_time`]), which advances with the virtual clock, never the machine's date.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferroswan::config::Config;
use ferroswan::ike::config::ike_configs;
use ferroswan::ike::signature_auth;
use ferroswan::pki::Certificate;
use ferroswan_awslc::DEFAULT_PROVIDER;
use ferroswan_proto::ikev2::config::IkeConfig;
use ferroswan_proto::ikev2::identity::Identity;
use ferroswan_proto::ikev2::session::{CloseReason, DownReason, Event, FailureKind};
use ferroswan_proto::wire::ikev2::{ExchangeType, HeaderPacket, IdType};
use ferroswan_test::ikesim::{Pair, Peer, Side};

const ROOT_CA: &str = "C=CH, O=ferroswan test, CN=Root CA";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/pki")
}

fn cert(file: &str) -> Certificate {
    Certificate::from_pem_or_der(&std::fs::read(fixtures().join(file)).unwrap()).unwrap().remove(0)
}

fn host_cert(name: &str) -> Certificate {
    cert(&format!("x509/{name}Cert.pem"))
}

/// A year after the fixtures were made: inside their 20-year validity whenever `generate.sh`
/// last ran (the expired and not-yet-valid certificates have fixed dates).
fn fixture_time() -> u64 {
    cert("x509ca/rootCert.pem").not_before_unix() + 365 * 86_400
}

/// Connection `gw` of `side` (A is 192.0.2.1, B is 192.0.2.2) as swanctl.conf, with
/// `local { auth = pubkey; certs = <cert>Cert.pem; id }` and `remote { auth = pubkey; id }`,
/// built the way the daemon builds it.
fn try_gw(
    side: Side,
    cert: &str,
    id: Option<&str>,
    remote_id: Option<&str>,
) -> Result<IkeConfig, String> {
    let (local, remote, local_ts, remote_ts) = match side {
        Side::A => ("192.0.2.1", "192.0.2.2", "10.1.0.0/16", "10.2.0.0/16"),
        Side::B => ("192.0.2.2", "192.0.2.1", "10.2.0.0/16", "10.1.0.0/16"),
    };
    let line = |key: &str, value: Option<&str>| {
        value.map(|v| format!("            {key} = {v}\n")).unwrap_or_default()
    };
    let text = format!(
        "connections {{
    gw {{
        local_addrs = {local}
        remote_addrs = {remote}
        proposals = aes128gcm16-prfsha256-x25519
        local {{
            auth = pubkey
            certs = {cert}Cert.pem
{}        }}
        remote {{
            auth = pubkey
{}        }}
        children {{
            net {{
                local_ts = {local_ts}
                remote_ts = {remote_ts}
                esp_proposals = aes128gcm16
            }}
        }}
    }}
}}
",
        line("id", id),
        line("id", remote_id),
    );
    let path = fixtures().join("swanctl.conf");
    let config = Config::parse_str(&text, &path).map_err(|e| e.to_string())?;
    let mut ike =
        ike_configs(&config, &|c| signature_auth(&path, &config, c)).map_err(|e| e.to_string())?;
    assert_eq!(ike.len(), 1);
    Ok(ike.remove(0))
}

fn gw(side: Side, cert: &str, id: Option<&str>, remote_id: Option<&str>) -> IkeConfig {
    try_gw(side, cert, id, remote_id).unwrap()
}

/// `gw` with `id = <cert>.example` and any remote identity.
fn gw_named(side: Side, cert: &str) -> IkeConfig {
    gw(side, cert, Some(&format!("{cert}.example")), None)
}

/// A pair at [`fixture_time`].
fn sim(a: IkeConfig, b: IkeConfig) -> Pair {
    let mut pair = Pair::new(DEFAULT_PROVIDER, vec![a], vec![b]);
    pair.set_unix_time(fixture_time());
    pair
}

fn other(side: Side) -> Side {
    match side {
        Side::A => Side::B,
        Side::B => Side::A,
    }
}

fn peer(pair: &Pair, side: Side) -> &Peer {
    match side {
        Side::A => &pair.a,
        Side::B => &pair.b,
    }
}

/// The wire as (sender, exchange, response?).
fn exchanges(pair: &Pair) -> Vec<(Side, ExchangeType, bool)> {
    pair.wire
        .iter()
        .map(|(side, t)| {
            let p = HeaderPacket::new_checked(&t.payload[..]).unwrap();
            (*side, p.exchange_type(), p.flags().response())
        })
        .collect()
}

/// The one failure of `side`, checked to be of `kind` and to have closed its IKE SA.
fn the_failure(pair: &Pair, side: Side, kind: FailureKind) -> String {
    let p = peer(pair, side);
    let failures: Vec<_> = p
        .events
        .iter()
        .filter_map(|(_, e)| if let Event::Failed(f) = e { Some(f) } else { None })
        .collect();
    assert_eq!(failures.len(), 1, "{side:?}: {failures:?}");
    let f = failures[0];
    assert_eq!(f.kind, kind, "{side:?}: {f}");
    let closed: Vec<_> = p
        .events
        .iter()
        .filter_map(|(_, e)| if let Event::Closed(r) = e { Some(r) } else { None })
        .collect();
    assert_eq!(closed, [&CloseReason::Failed(f.clone())], "{side:?}");
    assert!(matches!(p.events.last(), Some((_, Event::Closed(_)))), "Closed is the last event");
    f.to_string()
}

/// `initiator` started the exchange and `verifier` refused the other side's AUTH. Checks the
/// notify each side sent and saw, that no CHILD_SA outlived it, and returns the verifier's
/// failure line.
fn assert_refused(pair: &Pair, initiator: Side, verifier: Side, kind: FailureKind) -> String {
    use ExchangeType as X;
    let responder = other(initiator);
    let refused = other(verifier);
    let why = the_failure(pair, verifier, kind);
    let told = the_failure(pair, refused, FailureKind::Authentication);
    assert!(!peer(pair, verifier).established(), "{verifier:?} must not establish");
    assert!(peer(pair, verifier).children_up().is_empty(), "{verifier:?} reported a CHILD_SA");
    let mut wire = vec![
        (initiator, X::IKE_SA_INIT, false),
        (responder, X::IKE_SA_INIT, true),
        (initiator, X::IKE_AUTH, false),
        (responder, X::IKE_AUTH, true),
    ];
    if verifier == responder {
        // AUTHENTICATION_FAILED is the IKE_AUTH response; the initiator reads it there.
        assert!(
            told.starts_with("gw: peer rejected our authentication (AUTHENTICATION_FAILED): check"),
            "{told}"
        );
        assert!(peer(pair, initiator).children_up().is_empty());
    } else {
        // The responder answered IKE_AUTH, so it installed the CHILD_SA; the INFORMATIONAL
        // with AUTHENTICATION_FAILED takes it down with the IKE SA.
        wire.push((initiator, X::INFORMATIONAL, false));
        wire.push((responder, X::INFORMATIONAL, true));
        assert!(
            told.starts_with(
                "gw: peer rejected our authentication (AUTHENTICATION_FAILED in an INFORMATIONAL \
                 after IKE_AUTH): check that it trusts the CA of our certificate"
            ),
            "{told}"
        );
        let p = peer(pair, responder);
        assert!(p.established());
        assert_eq!(p.children_up().len(), 1);
        let downs: Vec<_> = p
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::ChildSaDown { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect();
        assert_eq!(downs, [DownReason::IkeClosed]);
    }
    assert_eq!(exchanges(pair), wire);
    for side in [Side::A, Side::B] {
        assert_eq!(peer(pair, side).endpoint.sessions().count(), 0, "{side:?} left a session");
    }
    why
}

#[test]
fn certificates_of_every_key_type_authenticate_both_ways() {
    // RSA, RSA with an RSA-PSS-signed certificate, ECDSA P-256, ECDSA P-384, Ed25519: in a
    // ring, so each one signs once as initiator and once as responder, and verifies the other.
    let certs = ["moon", "sun", "carol", "dave", "ed"];
    for (i, a_cert) in certs.into_iter().enumerate() {
        let b_cert = certs[(i + 1) % certs.len()];
        let (a_id, b_id) = (format!("{a_cert}.example"), format!("{b_cert}.example"));
        let a = gw(Side::A, a_cert, Some(&a_id), Some(&b_id));
        let b = gw(Side::B, b_cert, Some(&b_id), Some(&a_id));
        let mut pair = sim(a, b);
        pair.initiate(Side::A, "gw", Some("net"));
        assert!(pair.drive());
        let case = format!("{a_cert} initiating to {b_cert}");
        for (side, me, them) in [(Side::A, &a_id, &b_id), (Side::B, &b_id, &a_id)] {
            let p = peer(&pair, side);
            assert!(p.failures().is_empty(), "{case}: {:?}", p.failures());
            assert_eq!(p.children_up().len(), 1, "{case}");
            let info = p.endpoint.sessions().next().unwrap().1.info().unwrap().clone();
            assert_eq!(info.local_id, Identity::fqdn(me), "{case}");
            assert_eq!(info.remote_id, Identity::fqdn(them), "{case}");
        }
        let (a_up, b_up) = (pair.a.children_up()[0], pair.b.children_up()[0]);
        assert_eq!(a_up.inbound.keymat, b_up.outbound.keymat, "{case}");
        assert_eq!(exchanges(&pair).len(), 4, "{case}");
        // Each IKE_AUTH message is larger than the certificate it carries.
        assert!(pair.wire[2].1.payload.len() > host_cert(a_cert).der().len(), "{case}");
        assert!(pair.wire[3].1.payload.len() > host_cert(b_cert).der().len(), "{case}");
    }
}

#[test]
fn subject_dn_is_the_default_identity_and_remote_id_matches_it() {
    // No `id`: each side is its certificate's subject DN, which the other's remote.id names.
    let a = gw(Side::A, "carol", None, Some("C=CH, O=ferroswan test, CN=moon.example"));
    let b = gw(Side::B, "moon", None, Some("C=CH, O=ferroswan test, CN=carol.example"));
    let mut pair = sim(a, b);
    pair.initiate(Side::A, "gw", Some("net"));
    assert!(pair.drive());
    assert!(pair.a.failures().is_empty(), "{:?}", pair.a.failures());
    assert!(pair.b.failures().is_empty(), "{:?}", pair.b.failures());
    let info = pair.b.endpoint.sessions().next().unwrap().1.info().unwrap().clone();
    assert_eq!(info.remote_id.ty, IdType::ID_DER_ASN1_DN);
    assert_eq!(info.remote_id.data, host_cert("carol").subject_der());
    assert_eq!(info.local_id.data, host_cert("moon").subject_der());
    assert_eq!(pair.b.children_up().len(), 1);
}

#[test]
fn expired_initiator_certificate_is_refused_by_the_responder() {
    let mut pair = sim(gw_named(Side::A, "expired"), gw_named(Side::B, "moon"));
    pair.initiate(Side::A, "gw", Some("net"));
    pair.drive();
    let why = assert_refused(&pair, Side::A, Side::B, FailureKind::Authentication);
    assert_eq!(
        why,
        "gw: authentication of peer 'expired.example' failed: certificate \
         \"C=CH, O=ferroswan test, CN=expired.example\" expired on 2021-01-01 00:00:00 UTC"
    );
}

#[test]
fn expired_responder_certificate_is_refused_by_the_initiator() {
    let mut pair = sim(gw_named(Side::A, "moon"), gw_named(Side::B, "expired"));
    pair.initiate(Side::A, "gw", Some("net"));
    pair.drive();
    let why = assert_refused(&pair, Side::A, Side::A, FailureKind::Authentication);
    assert_eq!(
        why,
        "gw: authentication of peer 'expired.example' failed: certificate \
         \"C=CH, O=ferroswan test, CN=expired.example\" expired on 2021-01-01 00:00:00 UTC"
    );
}

#[test]
fn not_yet_valid_certificate_is_refused_in_either_role() {
    let expected = "gw: authentication of peer 'future.example' failed: certificate \
                    \"C=CH, O=ferroswan test, CN=future.example\" is not valid before \
                    2090-01-01 00:00:00 UTC (check the clocks)";
    for initiator in [Side::A, Side::B] {
        let mut pair = sim(gw_named(Side::A, "future"), gw_named(Side::B, "ed"));
        pair.initiate(initiator, "gw", Some("net"));
        pair.drive();
        let why = assert_refused(&pair, initiator, Side::B, FailureKind::Authentication);
        assert_eq!(why, expected, "{initiator:?} initiating");
    }
}

#[test]
fn validity_follows_the_virtual_clock() {
    // Two minutes before the first of moon's chain expires (the root CA was made first).
    let moon = host_cert("moon");
    let root = cert("x509ca/rootCert.pem");
    let end = moon.not_after_unix().min(root.not_after_unix());
    let mut pair = sim(gw_named(Side::A, "moon"), gw_named(Side::B, "carol"));
    pair.set_unix_time(end - 120);
    pair.initiate(Side::A, "gw", Some("net"));
    assert!(pair.drive());
    assert!(pair.a.established() && pair.b.established(), "{:?}", pair.b.failures());
    // Three virtual minutes later the same certificate no longer authenticates.
    pair.advance(Duration::from_secs(180));
    let t = end + 60;
    pair.initiate(Side::A, "gw", Some("net"));
    pair.drive();
    let first_expired = if moon.not_after_unix() < t { &moon } else { &root };
    let b = pair.b.failures();
    assert_eq!(b.len(), 1, "{b:?}");
    assert!(
        b[0].ends_with(&format!(
            "certificate \"{}\" expired on {}",
            first_expired.subject(),
            first_expired.not_after()
        )),
        "{b:?}"
    );
    assert!(pair.a.failures()[0].contains("AUTHENTICATION_FAILED"), "{:?}", pair.a.failures());
    // The IKE SA authenticated before stays up: certificates are checked at IKE_AUTH.
    assert_eq!(pair.a.endpoint.sessions().count(), 1);
    assert_eq!(pair.a.children_up().len(), 1);
}

#[test]
fn unknown_ca_is_refused_naming_the_issuer() {
    let expected = format!(
        "gw: authentication of peer 'mars.example' failed: no trusted CA for \
         \"C=CH, O=ferroswan test, CN=mars.example\" issued by \"C=CH, O=Other CA\" \
         (configured CAs: \"{ROOT_CA}\")"
    );
    // mars as initiator (the responder refuses), then as responder (the initiator refuses).
    let mut pair = sim(gw_named(Side::A, "mars"), gw_named(Side::B, "dave"));
    pair.initiate(Side::A, "gw", Some("net"));
    pair.drive();
    assert_eq!(assert_refused(&pair, Side::A, Side::B, FailureKind::Authentication), expected);

    let mut pair = sim(gw_named(Side::A, "dave"), gw_named(Side::B, "mars"));
    pair.initiate(Side::A, "gw", Some("net"));
    pair.drive();
    assert_eq!(assert_refused(&pair, Side::A, Side::A, FailureKind::Authentication), expected);
}

#[test]
fn identity_not_in_the_certificate_is_refused() {
    // The daemon refuses to load such a connection ...
    let e = try_gw(Side::A, "moon", Some("sun.example"), None).unwrap_err();
    assert!(
        e.contains(
            "id \"sun.example\" is not in certificate \"C=CH, O=ferroswan test, CN=moon.example\""
        ),
        "{e}"
    );
    // ... so a peer claiming another identity than its certificate's is simulated by
    // changing the identity after the signer was built.
    let lying = |side: Side| {
        let mut c = gw_named(side, "moon");
        c.local_id = Some(Identity::fqdn("sun.example"));
        c
    };
    let expected = "gw: authentication of peer 'sun.example' failed: identity \"sun.example\" is \
                    not in certificate \"C=CH, O=ferroswan test, CN=moon.example\" \
                    (subjectAltNames: moon.example, moon@example.org, 192.0.2.1, 2001:db8::1)";
    let mut pair = sim(lying(Side::A), gw_named(Side::B, "carol"));
    pair.initiate(Side::A, "gw", Some("net"));
    pair.drive();
    assert_eq!(assert_refused(&pair, Side::A, Side::B, FailureKind::Authentication), expected);

    let mut pair = sim(gw_named(Side::A, "carol"), lying(Side::B));
    pair.initiate(Side::A, "gw", Some("net"));
    pair.drive();
    assert_eq!(assert_refused(&pair, Side::A, Side::A, FailureKind::Authentication), expected);
}

#[test]
fn remote_id_mismatch_names_expected_and_received() {
    // B only accepts dave; carol's certificate is fine, but carol is not dave.
    let mut pair = sim(
        gw_named(Side::A, "carol"),
        gw(Side::B, "moon", Some("moon.example"), Some("dave.example")),
    );
    pair.initiate(Side::A, "gw", Some("net"));
    pair.drive();
    assert_eq!(
        assert_refused(&pair, Side::A, Side::B, FailureKind::Identity),
        "gw: no connection accepts peer identity 'carol.example' (configured: gw: \
         remote.id=dave.example local.id=moon.example)"
    );

    // A asks for sun (IDr), but B is moon.
    let mut pair = sim(
        gw(Side::A, "carol", Some("carol.example"), Some("sun.example")),
        gw_named(Side::B, "moon"),
    );
    pair.initiate(Side::A, "gw", Some("net"));
    pair.drive();
    assert_eq!(
        assert_refused(&pair, Side::A, Side::B, FailureKind::Identity),
        "gw: no connection accepts peer identity 'carol.example' asking for our identity \
         'sun.example' (configured: gw: remote.id=%any local.id=moon.example)"
    );
}
