//! Known-answer tests for the IKEv2 PRFs, key exchange methods and key schedule, from public
//! vectors in `crates/proto/testdata/vectors/*.json`.
//!
//! Key exchange KATs build the private key from the published scalar with the hidden
//! `primitives::ke_from_private`; everything else goes through the public provider API
//! ([`PrfProvider`], [`KeProvider`]) and `ferroswan_proto::crypto::keys`.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use ferroswan_awslc::{DEFAULT_PROVIDER, primitives};
use ferroswan_proto::crypto::keys::{
    ChildKeys, IkeKeyLengths, IkeKeys, prf_plus, rekey_skeyseed, skeyseed,
};
use ferroswan_proto::crypto::{CryptoError, EspSuite, KeSecret, Prf, ke_public_len};
use ferroswan_proto::wire::{EncrId, IntegId, KeId, PrfId};
use serde_json::Value;

mod common;
use common::{hex, load, name, opt_hex};

fn prf_of(case: &Value) -> &'static dyn Prf {
    let id = match case.get("prf").and_then(Value::as_str).unwrap() {
        "PRF_HMAC_SHA1" => PrfId::PRF_HMAC_SHA1,
        "PRF_HMAC_SHA2_256" => PrfId::PRF_HMAC_SHA2_256,
        "PRF_HMAC_SHA2_384" => PrfId::PRF_HMAC_SHA2_384,
        "PRF_HMAC_SHA2_512" => PrfId::PRF_HMAC_SHA2_512,
        other => panic!("unknown prf {other}"),
    };
    let prf = DEFAULT_PROVIDER.prf.prf(id).unwrap();
    assert_eq!(prf.id(), id);
    prf
}

fn group_of(case: &Value) -> KeId {
    match case.get("group").and_then(Value::as_str).unwrap() {
        "ECP_256" => KeId::ECP_256,
        "ECP_384" => KeId::ECP_384,
        "ECP_521" => KeId::ECP_521,
        other => panic!("unknown group {other}"),
    }
}

#[test]
fn rfc4868_prf_vectors() {
    let cases = load("rfc4868-prf.json");
    for case in &cases {
        let prf = prf_of(case);
        let out = prf.prf(&hex(case, "key"), &hex(case, "data")).unwrap();
        assert_eq!(hex::encode(out.expose()), hex::encode(hex(case, "output")), "{}", name(case));
        assert_eq!(out.len(), prf.output_len());
    }
    assert_eq!(cases.len(), 18);
}

#[test]
fn sp800_135_ikev2_kdf_vectors() {
    let cases = load("sp800-135-ikev2-kdf.json");
    for case in &cases {
        let what = name(case);
        let prf = prf_of(case);
        let (ni, nr) = (hex(case, "ni"), hex(case, "nr"));
        let gir_new = hex(case, "gir_new");

        let seed = skeyseed(prf, &ni, &nr, &hex(case, "gir")).unwrap();
        assert_eq!(hex::encode(seed.expose()), hex::encode(hex(case, "skeyseed")), "{what}");

        let dkm_want = hex(case, "dkm");
        let mut s = ni.clone();
        s.extend(&nr);
        s.extend(hex(case, "spii"));
        s.extend(hex(case, "spir"));
        let dkm = prf_plus(prf, seed.expose(), &s, dkm_want.len()).unwrap();
        assert_eq!(hex::encode(dkm.expose()), hex::encode(&dkm_want), "{what}: DKM");

        // The same DKM through the SK_* split: SK_d first, SK_pr last.
        let k = prf.key_len();
        let integ = (dkm_want.len() - 3 * k) / 4;
        let encr = (dkm_want.len() - 3 * k - 2 * integ) / 2;
        let spi = |f| <[u8; 8]>::try_from(hex(case, f)).unwrap();
        let keys = IkeKeys::derive(
            prf,
            seed.expose(),
            &ni,
            &nr,
            &spi("spii"),
            &spi("spir"),
            IkeKeyLengths { integ, encr },
        )
        .unwrap();
        let sk_d = &dkm_want[..k];
        assert_eq!(keys.sk_d.expose(), sk_d, "{what}: SK_d");
        assert_eq!(keys.sk_ai.expose(), &dkm_want[k..k + integ], "{what}: SK_ai");
        let used = 3 * k + 2 * integ + 2 * encr;
        assert_eq!(keys.sk_pr.expose(), &dkm_want[used - k..used], "{what}: SK_pr");

        if let Some(want) = opt_hex(case, "dkm_child") {
            let mut s = ni.clone();
            s.extend(&nr);
            let out = prf_plus(prf, sk_d, &s, want.len()).unwrap();
            assert_eq!(hex::encode(out.expose()), hex::encode(want), "{what}: DKM(Child SA)");
        }
        if let Some(want) = opt_hex(case, "dkm_child_dh") {
            let mut s = gir_new.clone();
            s.extend(&ni);
            s.extend(&nr);
            let out = prf_plus(prf, sk_d, &s, want.len()).unwrap();
            assert_eq!(hex::encode(out.expose()), hex::encode(&want), "{what}: DKM(Child SA D-H)");
            // ChildKeys::derive takes the same KEYMAT, initiator-to-responder first.
            let suite = EspSuite {
                encr: EncrId::ENCR_AES_CBC,
                encr_key_bits: 256,
                integ: IntegId::AUTH_HMAC_SHA1_96,
            };
            let child = ChildKeys::derive(prf, sk_d, Some(&gir_new), &ni, &nr, &suite).unwrap();
            assert_eq!(child.initiator_to_responder.expose(), &want[..52], "{what}");
            assert_eq!(child.responder_to_initiator.expose(), &want[52..104], "{what}");
        }

        let rekey = rekey_skeyseed(prf, sk_d, &gir_new, &ni, &nr).unwrap();
        assert_eq!(
            hex::encode(rekey.expose()),
            hex::encode(hex(case, "skeyseed_rekey")),
            "{what}: SKEYSEED(Rekey)"
        );
    }
}

fn check_public(secret: &dyn KeSecret, want: &[u8], what: &str) {
    assert_eq!(hex::encode(secret.public_value()), hex::encode(want), "{what}: public value");
}

#[test]
fn rfc5903_ecp_vectors() {
    let cases = load("rfc5903-ecp.json");
    for case in &cases {
        let what = name(case);
        let id = group_of(case);
        let i = primitives::ke_from_private(id, &hex(case, "i")).unwrap();
        let r = primitives::ke_from_private(id, &hex(case, "r")).unwrap();
        check_public(&*i, &hex(case, "gi"), what);
        check_public(&*r, &hex(case, "gr"), what);
        assert_eq!(i.public_value().len(), ke_public_len(id).unwrap());
        let gir = hex(case, "gir_x");
        assert_eq!(hex::encode(i.agree(r.public_value()).unwrap().expose()), hex::encode(&gir));
        assert_eq!(hex::encode(r.agree(i.public_value()).unwrap().expose()), hex::encode(&gir));

        // A point off the curve: flip the last bit of y.
        let mut bad = hex(case, "gr");
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(i.agree(&bad).err(), Some(CryptoError::InvalidPublicValue), "{what}");
        // Wrong length, and the point at infinity's all-zero encoding.
        assert_eq!(i.agree(&bad[1..]).err(), Some(CryptoError::InvalidPublicValue), "{what}");
        let zero = vec![0u8; bad.len()];
        assert_eq!(i.agree(&zero).err(), Some(CryptoError::InvalidPublicValue), "{what}");
    }
    assert_eq!(cases.len(), 3);
}

#[test]
fn x25519_vectors() {
    let cases = load("rfc7748-rfc8031-x25519.json");
    for case in &cases {
        let what = name(case);
        let a = primitives::ke_from_private(KeId::CURVE25519, &hex(case, "a")).unwrap();
        let b = primitives::ke_from_private(KeId::CURVE25519, &hex(case, "b")).unwrap();
        check_public(&*a, &hex(case, "a_public"), what);
        check_public(&*b, &hex(case, "b_public"), what);
        let shared = hex::encode(hex(case, "shared"));
        assert_eq!(hex::encode(a.agree(b.public_value()).unwrap().expose()), shared, "{what}");
        assert_eq!(hex::encode(b.agree(a.public_value()).unwrap().expose()), shared, "{what}");
        // A small-order point (u = 0, and u = 1) gives an all-zero result: rejected
        // (RFC 8031 §2.3, RFC 7748 §6.1).
        for u in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            assert_eq!(a.agree(&u).err(), Some(CryptoError::InvalidPublicValue), "{what}");
        }
        assert_eq!(a.agree(&[9u8; 31]).err(), Some(CryptoError::InvalidPublicValue), "{what}");
    }
    assert_eq!(cases.len(), 2);
}

#[test]
fn every_group_agrees_with_itself() {
    let rng = DEFAULT_PROVIDER.secure_random;
    for id in [
        KeId::MODP_2048,
        KeId::MODP_3072,
        KeId::MODP_4096,
        KeId::ECP_256,
        KeId::ECP_384,
        KeId::ECP_521,
        KeId::CURVE25519,
    ] {
        let group = DEFAULT_PROVIDER.ke.group(id).unwrap();
        assert_eq!(group.id(), id);
        let a = group.generate(rng).unwrap();
        let b = group.generate(rng).unwrap();
        assert_eq!(a.id(), id);
        assert_eq!(a.public_value().len(), ke_public_len(id).unwrap(), "{id:?}");
        assert_eq!(group.public_len(), ke_public_len(id).unwrap(), "{id:?}");
        assert_ne!(a.public_value(), b.public_value(), "{id:?}");
        let ab = a.agree(b.public_value()).unwrap();
        let ba = b.agree(a.public_value()).unwrap();
        assert_eq!(ab, ba, "{id:?}");
        let want_len = match id {
            KeId::ECP_256 => 32,
            KeId::ECP_384 => 48,
            KeId::ECP_521 => 66,
            _ => ke_public_len(id).unwrap(),
        };
        assert_eq!(ab.len(), want_len, "{id:?}");
    }
    assert!(DEFAULT_PROVIDER.ke.group(KeId::MODP_1024).is_none());
    assert!(!DEFAULT_PROVIDER.prf.supports(PrfId::PRF_AES128_XCBC));
}

#[test]
fn modp_rejects_invalid_public_values() {
    let rng = DEFAULT_PROVIDER.secure_random;
    for id in [KeId::MODP_2048, KeId::MODP_3072, KeId::MODP_4096] {
        let a = DEFAULT_PROVIDER.ke.group(id).unwrap().generate(rng).unwrap();
        let len = a.public_value().len();
        let be = |v: u8| {
            let mut x = vec![0u8; len];
            x[len - 1] = v;
            x
        };
        let prime = primitives::modp_prime(id).unwrap();
        let mut pm1 = prime.to_vec();
        pm1[len - 1] -= 1;
        for (bad, what) in [
            (be(0), "0"),
            (be(1), "1"),
            (pm1.clone(), "p - 1"),
            (prime.to_vec(), "p"),
            (vec![0xff; len], "2^n - 1"),
            (be(2)[1..].to_vec(), "short"),
        ] {
            assert_eq!(a.agree(&bad).err(), Some(CryptoError::InvalidPublicValue), "{id:?} {what}");
        }
        // 2 and p - 2 are accepted.
        assert!(a.agree(&be(2)).is_ok());
        let mut pm2 = pm1;
        pm2[len - 1] -= 1;
        assert!(a.agree(&pm2).is_ok());
    }
}

#[test]
fn modp_public_value_is_two_to_the_exponent() {
    // With exponent 10, g^x = 1024 (no reduction): checks the encoding is big-endian and
    // left-padded to the prime length (RFC 7296 §3.4).
    let mut x = vec![0u8; 256];
    x[255] = 10;
    let s = primitives::ke_from_private(KeId::MODP_2048, &x).unwrap();
    let mut want = vec![0u8; 256];
    want[254] = 0x04;
    assert_eq!(s.public_value(), &want[..]);
    // (2^10)^10 = 2^100 against a peer that sent 2^10.
    let shared = s.agree(&want).unwrap();
    let mut want = vec![0u8; 256];
    want[256 - 13] = 0x10;
    assert_eq!(shared.expose(), &want[..]);
}
