#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferroswan_proto::ikev2::auth::{
    AuthError, LocalSigner, PeerAuth, PeerVerifier, hash_algorithm,
};
use ferroswan_proto::ikev2::identity::{IdMatcher, Identity};
use ferroswan_proto::wire::ikev2::{AuthMethod, IdType};

use super::alg::{self, Hash, Scheme};
use super::*;

/// 2030-01-01 00:00:00 UTC: inside the fixtures' 20-year validity.
const NOW: u64 = 1_893_456_000;
const OCTETS: &[u8] = b"RealMessage1 | NonceRData | MACedIDForI";
const ALL_HASHES: &[u16] = &[
    hash_algorithm::SHA2_256,
    hash_algorithm::SHA2_384,
    hash_algorithm::SHA2_512,
    hash_algorithm::IDENTITY,
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/pki")
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(dir().join(path)).unwrap()
}

fn cert(path: &str) -> Certificate {
    Certificate::from_pem_or_der(&read(path)).unwrap().remove(0)
}

fn host(name: &str) -> Certificate {
    cert(&format!("x509/{name}Cert.pem"))
}

fn root() -> Certificate {
    cert("x509ca/rootCert.pem")
}

fn signer(name: &str, key: &str) -> CertSigner {
    let key = PrivateKey::from_pem_or_der(&read(key)).unwrap();
    CertSigner::new(Arc::new(key), vec![host(name)]).unwrap()
}

fn dn_id(c: &Certificate) -> Identity {
    Identity { ty: IdType::ID_DER_ASN1_DN, data: c.subject_der().to_vec() }
}

fn verifier() -> CertVerifier {
    CertVerifier::new(vec![root()], vec![], IdMatcher::Any)
}

/// Runs `verifier` on what `certs` + (`method`, `data`) claim for `id`.
fn check(
    verifier: &dyn PeerVerifier,
    id: &Identity,
    certs: &[Vec<u8>],
    method: AuthMethod,
    data: &[u8],
    octets: &[u8],
    now: u64,
) -> Result<(), AuthError> {
    let certs: Vec<(u8, Vec<u8>)> = certs.iter().map(|c| (4, c.clone())).collect();
    verifier.verify(&PeerAuth {
        id,
        certs: &certs,
        method,
        auth_data: data,
        signed_octets: octets,
        now_unix: now,
    })
}

fn sign_and_verify(s: &CertSigner, hashes: &[u16], id: &Identity) -> (AuthMethod, Vec<u8>) {
    let (method, data) = s.sign(OCTETS, hashes).unwrap();
    check(&verifier(), id, &s.certificates(), method, &data, OCTETS, NOW).unwrap();
    (method, data)
}

fn message(r: Result<(), AuthError>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn every_key_type_round_trips_with_and_without_peer_hashes() {
    // (cert, key file, classic method, RFC 7427 AlgorithmIdentifier)
    let cases: &[(&str, &str, AuthMethod, &[u8])] = &[
        ("moon", "private/moonKey.pem", AuthMethod::RSA_DIGITAL_SIGNATURE, alg::ALG_RSA_SHA256),
        ("moon", "pkcs8/moonKey.pem", AuthMethod::RSA_DIGITAL_SIGNATURE, alg::ALG_RSA_SHA256),
        ("moon", "der/moonKey.der", AuthMethod::RSA_DIGITAL_SIGNATURE, alg::ALG_RSA_SHA256),
        ("sun", "private/sunKey.pem", AuthMethod::RSA_DIGITAL_SIGNATURE, alg::ALG_RSA_SHA256),
        ("carol", "private/carolKey.pem", AuthMethod::ECDSA_SHA256_P256, alg::ALG_ECDSA_SHA256),
        ("carol", "pkcs8/carolKey.pem", AuthMethod::ECDSA_SHA256_P256, alg::ALG_ECDSA_SHA256),
        ("dave", "private/daveKey.pem", AuthMethod::ECDSA_SHA384_P384, alg::ALG_ECDSA_SHA384),
        ("dave", "pkcs8/daveKey.pem", AuthMethod::ECDSA_SHA384_P384, alg::ALG_ECDSA_SHA384),
        ("ed", "private/edKey.pem", AuthMethod::DIGITAL_SIGNATURE, alg::ALG_ED25519),
    ];
    for (name, key, classic, alg_id) in cases {
        let s = signer(name, key);
        let cert = host(name);
        let fqdn = Identity::fqdn(&format!("{name}.example"));
        let (method, _) = sign_and_verify(&s, &[], &dn_id(&cert));
        assert_eq!(method, *classic, "{key} classic");
        let (method, data) = sign_and_verify(&s, ALL_HASHES, &fqdn);
        assert_eq!(method, AuthMethod::DIGITAL_SIGNATURE, "{key}");
        assert_eq!(usize::from(data[0]), alg_id.len(), "{key}");
        assert_eq!(&data[1..=alg_id.len()], *alg_id, "{key}");
        assert_eq!(s.default_identity(), Some(dn_id(&cert)));
    }
}

#[test]
fn fixed_size_ecdsa_and_rsa_sha1_have_the_classic_lengths() {
    let (_, p256) = signer("carol", "private/carolKey.pem").sign(OCTETS, &[]).unwrap();
    assert_eq!(p256.len(), 64, "r ‖ s, 32 bytes each (RFC 4754 §7)");
    let (_, p384) = signer("dave", "private/daveKey.pem").sign(OCTETS, &[]).unwrap();
    assert_eq!(p384.len(), 96);
    let (_, rsa) = signer("moon", "private/moonKey.pem").sign(OCTETS, &[]).unwrap();
    assert_eq!(rsa.len(), 256);
}

#[test]
fn rsa_hash_follows_the_peer() {
    let s = signer("moon", "private/moonKey.pem");
    let (_, data) =
        sign_and_verify(&s, &[hash_algorithm::SHA2_512], &Identity::fqdn("moon.example"));
    assert_eq!(&data[1..=alg::ALG_RSA_SHA512.len()], alg::ALG_RSA_SHA512);
    let e = s.sign(OCTETS, &[hash_algorithm::SHA1]).unwrap_err().to_string();
    assert!(e.contains("accepts the hash algorithms [SHA-1] but our RSA key signs with"), "{e}");
    let e = signer("ed", "private/edKey.pem").sign(OCTETS, &[2]).unwrap_err().to_string();
    assert!(e.contains("[SHA-256] but our Ed25519 key signs with [identity]"), "{e}");
}

#[test]
fn auth_algorithm_identifiers_are_strongswans_bytes() {
    // pki --issue writes the certificate's signatureAlgorithm with the same function strongSwan
    // uses for RFC 7427 AUTH data (signature_params_build → asn1_algorithmIdentifier).
    assert_eq!(host("moon").signature_alg_der(), alg::ALG_RSA_SHA256, "RSA CA, sha256");
    assert_eq!(host("venus").signature_alg_der(), alg::ALG_ECDSA_SHA384, "P-384 CA");
    assert_eq!(host("mars").signature_alg_der(), alg::ALG_ED25519, "Ed25519 CA");
    let pss = Scheme::from_der(host("sun").signature_alg_der()).unwrap();
    assert_eq!(pss, Scheme::RsaPss { hash: Hash::Sha256, salt_len: 32 });
}

#[test]
fn strongswan_certificates_parse() {
    let moon = host("moon");
    assert_eq!(moon.subject(), "C=CH, O=ferroswan test, CN=moon.example");
    assert_eq!(moon.issuer(), "C=CH, O=ferroswan test, CN=Root CA");
    let sans: Vec<String> = moon.alt_names().iter().map(ToString::to_string).collect();
    assert_eq!(sans, ["moon.example", "moon@example.org", "192.0.2.1", "2001:db8::1"]);
    assert!(!moon.is_ca());
    assert!(root().is_ca() && root().is_self_issued());
    assert!(cert("intermediate/intermediateCert.pem").is_ca());
    assert_eq!(host("expired").not_after(), "2021-01-01 00:00:00 UTC");
    let der = Certificate::from_pem_or_der(&read("der/carolCert.der")).unwrap();
    assert_eq!(der[0].der(), host("carol").der());
    // Every certificate's signature verifies against its issuer (RSA PKCS#1, RSA-PSS for sun,
    // ECDSA for venus, Ed25519 for mars).
    for name in ["moon", "sun", "carol", "dave", "ed", "expired", "future"] {
        host(name).verify_signed_by(&root()).unwrap();
    }
    host("venus").verify_signed_by(&cert("intermediate/intermediateCert.pem")).unwrap();
    host("mars").verify_signed_by(&cert("other/otherCert.pem")).unwrap();
    assert!(host("mars").verify_signed_by(&root()).is_err());
    assert!(Certificate::from_pem_or_der(b"garbage").is_err());
    assert!(Certificate::from_der(&host("moon").der()[..100]).is_err());
}

#[test]
fn identities_bind_by_dn_and_every_alt_name_type() {
    let s = signer("moon", "private/moonKey.pem");
    for id in ["moon.example", "MOON.example", "moon@example.org", "192.0.2.1", "2001:db8::1"] {
        sign_and_verify(&s, ALL_HASHES, &Identity::from_swanctl(id).unwrap());
    }
    sign_and_verify(
        &s,
        ALL_HASHES,
        &Identity::from_swanctl("c=ch, o=FERROSWAN test, cn=moon.example").unwrap(),
    );
}

#[test]
fn chain_through_an_intermediate_sent_by_the_peer() {
    let key = PrivateKey::from_pem_or_der(&read("private/venusKey.pem")).unwrap();
    let inter = cert("intermediate/intermediateCert.pem");
    let s = CertSigner::new(Arc::new(key), vec![host("venus"), inter]).unwrap();
    sign_and_verify(&s, ALL_HASHES, &Identity::fqdn("venus.example"));

    let (method, data) = s.sign(OCTETS, ALL_HASHES).unwrap();
    let id = Identity::fqdn("venus.example");
    let alone = [host("venus").der().to_vec()];
    let e = message(check(&verifier(), &id, &alone, method, &data, OCTETS, NOW));
    assert_eq!(
        e,
        "no trusted CA for \"C=CH, O=ferroswan test, CN=venus.example\" issued by \
         \"C=CH, O=ferroswan test, CN=Intermediate CA\" (configured CAs: \
         \"C=CH, O=ferroswan test, CN=Root CA\")"
    );
    // An end-entity certificate posing as the intermediate is refused.
    let fake = [host("venus").der().to_vec(), host("moon").der().to_vec()];
    assert!(check(&verifier(), &id, &fake, method, &data, OCTETS, NOW).is_err());
}

#[test]
fn each_failure_says_what_is_wrong() {
    let id = |n: &str| Identity::fqdn(&format!("{n}.example"));
    let run = |name: &str, key: &str, id: &Identity, now: u64| {
        let s = signer(name, key);
        let (method, data) = s.sign(OCTETS, ALL_HASHES).unwrap();
        message(check(&verifier(), id, &s.certificates(), method, &data, OCTETS, now))
    };
    assert_eq!(
        run("expired", "private/expiredKey.pem", &id("expired"), NOW),
        "certificate \"C=CH, O=ferroswan test, CN=expired.example\" expired on \
         2021-01-01 00:00:00 UTC"
    );
    assert_eq!(
        run("future", "private/futureKey.pem", &id("future"), NOW),
        "certificate \"C=CH, O=ferroswan test, CN=future.example\" is not valid before \
         2090-01-01 00:00:00 UTC (check the clocks)"
    );
    assert_eq!(
        run("mars", "private/marsKey.pem", &id("mars"), NOW),
        "no trusted CA for \"C=CH, O=ferroswan test, CN=mars.example\" issued by \
         \"C=CH, O=Other CA\" (configured CAs: \"C=CH, O=ferroswan test, CN=Root CA\")"
    );
    assert_eq!(
        run("moon", "private/moonKey.pem", &Identity::fqdn("sun.example"), NOW),
        "identity \"sun.example\" is not in certificate \"C=CH, O=ferroswan test, \
         CN=moon.example\" (subjectAltNames: moon.example, moon@example.org, 192.0.2.1, \
         2001:db8::1)"
    );
    // The root CA itself is checked for validity, too.
    assert!(run("moon", "private/moonKey.pem", &id("moon"), 4_000_000_000).contains("expired"));

    // A signature over other octets.
    let s = signer("carol", "private/carolKey.pem");
    let (method, data) = s.sign(OCTETS, ALL_HASHES).unwrap();
    let e = message(check(&verifier(), &id("carol"), &s.certificates(), method, &data, b"x", NOW));
    assert_eq!(
        e,
        "signature does not verify: ECDSA with SHA-256 AUTH signature of \"carol.example\" does \
         not match the key of certificate \"C=CH, O=ferroswan test, CN=carol.example\" (the peer \
         signed with another key, or the IKE_SA_INIT messages were altered)"
    );
    // Someone else's key.
    let (method, data) = signer("moon", "private/moonKey.pem").sign(OCTETS, &[]).unwrap();
    let sun = [host("sun").der().to_vec()];
    let e = message(check(&verifier(), &id("sun"), &sun, method, &data, OCTETS, NOW));
    assert!(
        e.starts_with("signature does not verify: RSA PKCS#1 with SHA-1 AUTH signature"),
        "{e}"
    );

    // A method that does not fit the key: classic RSA and RFC 7427 RSA with an ECDSA cert.
    let carol = s.certificates();
    let e = message(check(&verifier(), &id("carol"), &carol, method, &data, OCTETS, NOW));
    assert_eq!(
        e,
        "signature does not verify: RSA PKCS#1 with SHA-1 signature does not fit the ECDSA \
         P-256 key (certificate \"C=CH, O=ferroswan test, CN=carol.example\")"
    );
    let (_, rsa7427) = signer("moon", "private/moonKey.pem").sign(OCTETS, ALL_HASHES).unwrap();
    let e = message(check(
        &verifier(),
        &id("carol"),
        &carol,
        AuthMethod::DIGITAL_SIGNATURE,
        &rsa7427,
        OCTETS,
        NOW,
    ));
    assert!(e.contains("RSA PKCS#1 with SHA-256 signature does not fit the ECDSA P-256"), "{e}");
    let e = message(check(&verifier(), &id("carol"), &carol, AuthMethod(2), &data, OCTETS, NOW));
    assert!(e.contains("not a signature method"), "{e}");
    let e = message(check(&verifier(), &id("carol"), &[], method, &data, OCTETS, NOW));
    assert!(e.contains("sent no X.509 certificate"), "{e}");
    let e =
        message(check(&verifier(), &id("carol"), &[vec![0x30, 1, 0]], method, &data, OCTETS, NOW));
    assert!(e.starts_with("certificate #1 from peer \"carol.example\" does not parse"), "{e}");
    let e = message(check(
        &verifier(),
        &id("carol"),
        &carol,
        AuthMethod::DIGITAL_SIGNATURE,
        &[200, 1, 2],
        OCTETS,
        NOW,
    ));
    assert!(e.contains("shorter than its AlgorithmIdentifier length 200"), "{e}");
}

#[test]
fn remote_id_is_enforced() {
    let s = signer("carol", "private/carolKey.pem");
    let (method, data) = s.sign(OCTETS, ALL_HASHES).unwrap();
    let only_dave = IdMatcher::from_swanctl("dave.example").unwrap();
    let v = CertVerifier::new(vec![root()], vec![], only_dave);
    let id = Identity::fqdn("carol.example");
    let e = check(&v, &id, &s.certificates(), method, &data, OCTETS, NOW).unwrap_err();
    assert_eq!(
        e,
        AuthError::IdMismatch { expected: "dave.example".into(), got: "carol.example".into() }
    );
    let dn = IdMatcher::from_swanctl("C=CH, O=ferroswan test, CN=carol.example").unwrap();
    let v = CertVerifier::new(vec![root()], vec![], dn);
    check(&v, &dn_id(&host("carol")), &s.certificates(), method, &data, OCTETS, NOW).unwrap();
}

#[test]
fn rsa_pss_auth_verifies_with_strongswans_identifier() {
    let key = PrivateKey::from_pem_or_der(&read("private/sunKey.pem")).unwrap();
    let scheme = Scheme::RsaPss { hash: Hash::Sha256, salt_len: 32 };
    let sig = key.sign(scheme, OCTETS).unwrap();
    let alg_id = host("sun").signature_alg_der().to_vec();
    let mut data = vec![u8::try_from(alg_id.len()).unwrap()];
    data.extend_from_slice(&alg_id);
    data.extend_from_slice(&sig);
    let certs = [host("sun").der().to_vec()];
    let id = Identity::fqdn("sun.example");
    let m = AuthMethod::DIGITAL_SIGNATURE;
    check(&verifier(), &id, &certs, m, &data, OCTETS, NOW).unwrap();
    assert!(check(&verifier(), &id, &certs, m, &data, b"other", NOW).is_err());
}

#[test]
fn openssl_signatures_verify() {
    let msg = read("expected/message.bin");
    for (name, alg_id) in [("moon", alg::ALG_RSA_SHA256), ("carol", alg::ALG_ECDSA_SHA256)] {
        let sig = read(&format!("expected/openssl-{name}.sig"));
        let mut data = vec![u8::try_from(alg_id.len()).unwrap()];
        data.extend_from_slice(alg_id);
        data.extend_from_slice(&sig);
        let certs = [host(name).der().to_vec()];
        let id = Identity::fqdn(&format!("{name}.example"));
        check(&verifier(), &id, &certs, AuthMethod::DIGITAL_SIGNATURE, &data, &msg, NOW).unwrap();
    }
}

#[test]
fn certreq_is_the_sha1_of_the_ca_public_key_info() {
    let expected = String::from_utf8(read("expected/root.certreq.hex")).unwrap();
    assert_eq!(hex::encode(verifier().certreq()), expected.trim());
    let two = CertVerifier::new(vec![root(), cert("other/otherCert.pem")], vec![], IdMatcher::Any);
    assert_eq!(two.certreq().len(), 40);
}

#[test]
fn keys_load_in_every_format_and_encrypted_ones_are_refused() {
    for f in ["private/moonKey.pem", "pkcs8/moonKey.pem", "der/moonKey.der"] {
        let k = PrivateKey::from_pem_or_der(&read(f)).unwrap();
        assert_eq!(k.public_key(), host("moon").public_key().unwrap(), "{f}");
        assert_eq!(format!("{k:?}"), "PrivateKey(RSA)");
    }
    let e = PrivateKey::from_pem_or_der(
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap_err();
    assert!(e.contains("encrypted private keys are not supported"), "{e}");
    assert!(PrivateKey::from_pem_or_der(&read("x509/moonCert.pem")).is_err());
    assert!(PrivateKey::from_der(b"\x30\x03\x02\x01\x00").is_err());
    // A key that is not the certificate's.
    let carol = PrivateKey::from_pem_or_der(&read("private/carolKey.pem")).unwrap();
    let e = CertSigner::new(Arc::new(carol), vec![host("moon")]).unwrap_err();
    assert!(e.contains("does not belong to certificate"), "{e}");
}

fn config(text: &str) -> crate::config::Config {
    crate::config::Config::parse_str(text, dir().join("swanctl.conf")).unwrap()
}

fn conn(local: &str, remote: &str) -> crate::config::Config {
    config(&format!(
        "connections {{ c {{ remote_addrs = 192.0.2.2\n local {{ auth = pubkey\n {local} }}\n \
         remote {{ auth = pubkey\n {remote} }} }} }}"
    ))
}

#[test]
fn store_loads_the_swanctl_layout_and_builds_signers_and_verifiers() {
    let store = CredentialStore::load(&dir()).unwrap();
    assert_eq!(store.certificates().count(), 9);
    assert_eq!(store.ca_certificates().count(), 1);

    let cfg = conn("certs = moonCert.pem\n id = moon.example", "id = %any");
    let c = &cfg.connections[0];
    let s = store.signer_for(&c.local[0]).unwrap();
    let v = store.verifier_for(&c.remote[0], &IdMatcher::Any).unwrap();
    assert_eq!(
        hex::encode(v.certreq()),
        String::from_utf8(read("expected/root.certreq.hex")).unwrap().trim()
    );
    let (method, data) = s.sign(OCTETS, ALL_HASHES).unwrap();
    let id = Identity::fqdn("moon.example");
    check(v.as_ref(), &id, &s.certificates(), method, &data, OCTETS, NOW).unwrap();

    // Intermediates found in x509ca/ are sent along, the root is not.
    let tmp = tempfile::tempdir().unwrap();
    for (from, to) in [
        ("x509ca/rootCert.pem", "x509ca/rootCert.pem"),
        ("intermediate/intermediateCert.pem", "x509ca/intermediateCert.pem"),
        ("x509/venusCert.pem", "x509/venusCert.pem"),
        ("private/venusKey.pem", "ecdsa/venusKey.pem"),
    ] {
        let to = tmp.path().join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(dir().join(from), to).unwrap();
    }
    let venus_store = CredentialStore::load(tmp.path()).unwrap();
    let cfg = conn("certs = venusCert.pem", "cacerts = rootCert.pem");
    let c = &cfg.connections[0];
    let s = venus_store.signer_for(&c.local[0]).unwrap();
    let inter = cert("intermediate/intermediateCert.pem");
    assert_eq!(s.certificates(), [host("venus").der().to_vec(), inter.der().to_vec()]);
    let v = venus_store.verifier_for(&c.remote[0], &IdMatcher::Any).unwrap();
    let (method, data) = s.sign(OCTETS, &[]).unwrap();
    assert_eq!(method, AuthMethod::ECDSA_SHA256_P256);
    let id = s.default_identity().unwrap();
    check(v.as_ref(), &id, &s.certificates(), method, &data, OCTETS, NOW).unwrap();

    // Without certs: the first certificate with a key that binds the id.
    let cfg = conn("id = carol@example.org", "cacerts = rootCert.pem");
    let c = &cfg.connections[0];
    let s = store.signer_for(&c.local[0]).unwrap();
    assert_eq!(s.default_identity(), Some(dn_id(&host("carol"))));
    store.verifier_for(&c.remote[0], &IdMatcher::Any).unwrap();
}

#[test]
fn store_errors_name_the_file_and_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("x509")).unwrap();
    std::fs::copy(dir().join("x509/carolCert.pem"), tmp.path().join("x509/carolCert.pem")).unwrap();
    let store = CredentialStore::load(tmp.path()).unwrap();
    let cfg = conn("certs = carolCert.pem", "id = %any");
    let c = &cfg.connections[0];
    let e = store.signer_for(&c.local[0]).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "no private key for certificate {}",
            tmp.path().join("x509/carolCert.pem").display()
        )),
        "{e}"
    );
    assert!(e.contains("put its key into private/"), "{e}");
    let e = store.verifier_for(&c.remote[0], &IdMatcher::Any).unwrap_err().to_string();
    assert!(e.contains("no trusted CA: cacerts is not set and"), "{e}");

    let cfg = conn("certs = missing.pem", "cacerts = nothere.pem");
    let c = &cfg.connections[0];
    let e = store.signer_for(&c.local[0]).unwrap_err().to_string();
    assert!(e.contains("x509/missing.pem: cannot read"), "{e}");
    let e = store.verifier_for(&c.remote[0], &IdMatcher::Any).unwrap_err().to_string();
    assert!(e.contains("x509ca/nothere.pem: cannot read"), "{e}");

    // The configured id must be in the certificate.
    let full = CredentialStore::load(&dir()).unwrap();
    let cfg = conn("certs = moonCert.pem\n id = sun.example", "id = %any");
    let e = full.signer_for(&cfg.connections[0].local[0]).unwrap_err().to_string();
    assert!(
        e.contains(
            "id \"sun.example\" is not in certificate \"C=CH, O=ferroswan test, CN=moon.example\""
        ),
        "{e}"
    );

    // An unparsable file in a credential directory.
    std::fs::create_dir(tmp.path().join("x509ca")).unwrap();
    std::fs::write(tmp.path().join("x509ca/bad.pem"), b"not a cert").unwrap();
    let e = CredentialStore::load(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("x509ca/bad.pem: not an X.509 certificate in PEM or DER"), "{e}");
}

#[test]
fn secrets_key_files_are_loaded_relative_to_their_directory() {
    let tmp = tempfile::tempdir().unwrap();
    for (from, to) in [
        ("x509ca/rootCert.pem", "x509ca/rootCert.pem"),
        ("x509/daveCert.pem", "x509/daveCert.pem"),
        ("pkcs8/daveKey.pem", "pkcs8/sub/dave.key"),
    ] {
        let to = tmp.path().join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(dir().join(from), to).unwrap();
    }
    let cfg = crate::config::Config::parse_str(
        "connections { c { remote_addrs = 192.0.2.2\n local { auth = pubkey\n certs = daveCert.pem }\n \
         remote { auth = pubkey } } }\n secrets { pkcs8-dave { file = sub/dave.key } }",
        tmp.path().join("swanctl.conf"),
    )
    .unwrap();
    let local = &cfg.connections[0].local[0];
    let without = CredentialStore::load(tmp.path()).unwrap();
    assert!(matches!(without.signer_for(local), Err(PkiError::NoPrivateKey { .. })));
    let store = CredentialStore::load_with_secrets(tmp.path(), &cfg.secrets).unwrap();
    let s = store.signer_for(local).unwrap();
    let (method, data) = s.sign(OCTETS, &[]).unwrap();
    assert_eq!(method, AuthMethod::ECDSA_SHA384_P384);
    let v = store.verifier_for(&cfg.connections[0].remote[0], &IdMatcher::Any).unwrap();
    let id = Identity::fqdn("dave.example");
    check(v.as_ref(), &id, &s.certificates(), method, &data, OCTETS, NOW).unwrap();
}

/// Regenerates the fixtures with strongSwan's `pki` into a temporary directory and runs a
/// round trip on them, so `generate.sh` keeps working (needs the Debian package strongswan-pki).
#[test]
#[ignore = "needs strongSwan's pki tool (Debian package strongswan-pki)"]
fn generator_script_makes_fixtures_that_work() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(dir().join("generate.sh"), tmp.path().join("generate.sh")).unwrap();
    let status = std::process::Command::new("bash")
        .arg(tmp.path().join("generate.sh"))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let store = CredentialStore::load(tmp.path()).unwrap();
    assert_eq!(store.certificates().count(), 9);
    let cfg = conn("certs = moonCert.pem", "id = %any");
    let c = &cfg.connections[0];
    let s = store.signer_for(&c.local[0]).unwrap();
    let v = store.verifier_for(&c.remote[0], &IdMatcher::Any).unwrap();
    let id = s.default_identity().unwrap();
    // The fixtures are valid from now on for 20 years.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    for hashes in [&[][..], ALL_HASHES] {
        let (method, data) = s.sign(OCTETS, hashes).unwrap();
        check(v.as_ref(), &id, &s.certificates(), method, &data, OCTETS, now).unwrap();
    }
    let expected = std::fs::read_to_string(tmp.path().join("expected/root.certreq.hex")).unwrap();
    assert_eq!(hex::encode(v.certreq()), expected.trim());
}
