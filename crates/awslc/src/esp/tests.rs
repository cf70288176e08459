//! Unit tests: round trips for every suite, tamper detection, IVs, key and length checks.

use ferroswan_proto::crypto::{
    CryptoError, EspAad, EspCipher, EspKeys, EspProvider, EspSuite, SecureRandom,
};
use ferroswan_proto::wire::{EncrId, IntegId};

use crate::{AwsLcRng, DEFAULT_PROVIDER, LEGACY_PROVIDER};

const MODERN_INTEG: [IntegId; 4] = [
    IntegId::AUTH_HMAC_SHA1_96,
    IntegId::AUTH_HMAC_SHA2_256_128,
    IntegId::AUTH_HMAC_SHA2_384_192,
    IntegId::AUTH_HMAC_SHA2_512_256,
];

fn suite(encr: EncrId, encr_key_bits: u16, integ: IntegId) -> EspSuite {
    EspSuite { encr, encr_key_bits, integ }
}

/// Every suite the default provider must support.
fn modern_suites() -> Vec<EspSuite> {
    let mut out = Vec::new();
    for bits in [128, 192, 256] {
        out.push(suite(EncrId::ENCR_AES_GCM_16, bits, IntegId::NONE));
    }
    out.push(suite(EncrId::ENCR_CHACHA20_POLY1305, 0, IntegId::NONE));
    out.push(suite(EncrId::ENCR_CHACHA20_POLY1305, 256, IntegId::NONE));
    for integ in MODERN_INTEG {
        for bits in [128, 192, 256] {
            out.push(suite(EncrId::ENCR_AES_CBC, bits, integ));
            out.push(suite(EncrId::ENCR_AES_CTR, bits, integ));
        }
        out.push(suite(EncrId::ENCR_NULL, 0, integ));
    }
    out
}

/// The suites only the legacy provider supports.
fn legacy_only_suites() -> Vec<EspSuite> {
    let mut out = Vec::new();
    for integ in MODERN_INTEG.into_iter().chain([IntegId::AUTH_HMAC_MD5_96]) {
        out.push(suite(EncrId::ENCR_3DES, 0, integ));
    }
    for bits in [128, 192, 256] {
        out.push(suite(EncrId::ENCR_AES_CBC, bits, IntegId::AUTH_HMAC_MD5_96));
    }
    out.push(suite(EncrId::ENCR_NULL, 0, IntegId::AUTH_HMAC_MD5_96));
    out
}

fn random_keys(s: &EspSuite) -> (Vec<u8>, Vec<u8>) {
    let mut encr = vec![0u8; s.encr_keymat_len().unwrap()];
    let mut integ = vec![0u8; s.integ_keymat_len().unwrap()];
    AwsLcRng.fill(&mut encr).unwrap();
    AwsLcRng.fill(&mut integ).unwrap();
    (encr, integ)
}

fn cipher(provider: &dyn EspProvider, s: &EspSuite) -> Box<dyn EspCipher> {
    let (encr, integ) = random_keys(s);
    provider.new_cipher(s, &EspKeys { encr: &encr, integ: &integ }).unwrap()
}

/// A padded payload of `blocks` cipher blocks with recognisable content.
fn payload(c: &dyn EspCipher, blocks: usize) -> Vec<u8> {
    (0..c.block_len() * blocks).map(|i| (i * 7 + 3) as u8).collect()
}

/// Seals one packet; returns (iv, ciphertext, icv).
fn seal(c: &dyn EspCipher, aad: &EspAad, plain: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut iv = vec![0u8; c.iv_len()];
    c.generate_iv(aad.seq, &mut iv).unwrap();
    let mut ct = plain.to_vec();
    let mut icv = vec![0u8; c.icv_len()];
    c.seal(aad, &iv, &mut ct, &mut icv).unwrap();
    (iv, ct, icv)
}

#[test]
fn providers_support_what_they_should() {
    for s in modern_suites() {
        assert!(DEFAULT_PROVIDER.esp.supports(&s), "default must support {s}");
        assert!(LEGACY_PROVIDER.esp.supports(&s), "legacy must support {s}");
    }
    for s in legacy_only_suites() {
        assert!(!DEFAULT_PROVIDER.esp.supports(&s), "default must not support {s}");
        assert!(LEGACY_PROVIDER.esp.supports(&s), "legacy must support {s}");
    }
}

#[test]
fn unsupported_suites_are_refused() {
    let unsupported = [
        suite(EncrId::ENCR_AES_GCM_8, 128, IntegId::NONE),
        suite(EncrId::ENCR_AES_GCM_12, 256, IntegId::NONE),
        suite(EncrId::ENCR_AES_CCM_8, 128, IntegId::NONE),
        suite(EncrId::ENCR_AES_CCM_12, 128, IntegId::NONE),
        suite(EncrId::ENCR_AES_CCM_16, 256, IntegId::NONE),
        suite(EncrId::ENCR_NULL_AUTH_AES_GMAC, 128, IntegId::NONE),
        // Malformed: AEAD with integrity, CBC or NULL without, bad key sizes.
        suite(EncrId::ENCR_AES_GCM_16, 128, IntegId::AUTH_HMAC_SHA2_256_128),
        suite(EncrId::ENCR_AES_CBC, 128, IntegId::NONE),
        suite(EncrId::ENCR_NULL, 0, IntegId::NONE),
        suite(EncrId::ENCR_AES_CBC, 64, IntegId::AUTH_HMAC_SHA2_256_128),
        suite(EncrId::ENCR_CHACHA20_POLY1305, 128, IntegId::NONE),
        suite(EncrId::ENCR_AES_CBC, 128, IntegId::AUTH_AES_XCBC_96),
        suite(EncrId(0xfff0), 0, IntegId::AUTH_HMAC_SHA2_256_128),
    ];
    for provider in [DEFAULT_PROVIDER, LEGACY_PROVIDER] {
        for s in unsupported {
            assert!(!provider.esp.supports(&s), "{s} must be unsupported");
            let keys = EspKeys { encr: &[0u8; 36], integ: &[] };
            assert_eq!(provider.esp.new_cipher(&s, &keys).err(), Some(CryptoError::Unsupported));
        }
    }
    // The default provider refuses legacy suites the same way.
    for s in legacy_only_suites() {
        let (encr, integ) = random_keys(&s);
        let keys = EspKeys { encr: &encr, integ: &integ };
        assert_eq!(
            DEFAULT_PROVIDER.esp.new_cipher(&s, &keys).err(),
            Some(CryptoError::Unsupported)
        );
    }
}

#[test]
fn wrong_key_lengths_are_refused() {
    for s in modern_suites().into_iter().chain(legacy_only_suites()) {
        let (encr, integ) = random_keys(&s);
        let mut longer = encr.clone();
        longer.push(0);
        let shorter = encr.get(..encr.len().saturating_sub(1)).unwrap();
        for bad in [&longer[..], shorter] {
            if bad.len() == encr.len() {
                continue; // NULL has an empty key: there is no shorter one.
            }
            let keys = EspKeys { encr: bad, integ: &integ };
            assert_eq!(
                LEGACY_PROVIDER.esp.new_cipher(&s, &keys).err(),
                Some(CryptoError::BadKeyLength),
                "{s} encr {}",
                bad.len()
            );
        }
        let mut integ_longer = integ.clone();
        integ_longer.push(0);
        let keys = EspKeys { encr: &encr, integ: &integ_longer };
        assert_eq!(
            LEGACY_PROVIDER.esp.new_cipher(&s, &keys).err(),
            Some(CryptoError::BadKeyLength),
            "{s} integ"
        );
    }
}

#[test]
fn cipher_geometry() {
    let p = LEGACY_PROVIDER.esp;
    let check = |s: EspSuite, iv: usize, block: usize, icv: usize| {
        let c = cipher(p, &s);
        assert_eq!((c.iv_len(), c.block_len(), c.icv_len()), (iv, block, icv), "{s}");
    };
    check(suite(EncrId::ENCR_AES_GCM_16, 256, IntegId::NONE), 8, 4, 16);
    check(suite(EncrId::ENCR_CHACHA20_POLY1305, 0, IntegId::NONE), 8, 4, 16);
    check(suite(EncrId::ENCR_AES_CBC, 128, IntegId::AUTH_HMAC_SHA1_96), 16, 16, 12);
    check(suite(EncrId::ENCR_AES_CBC, 256, IntegId::AUTH_HMAC_SHA2_256_128), 16, 16, 16);
    check(suite(EncrId::ENCR_AES_CTR, 192, IntegId::AUTH_HMAC_SHA2_384_192), 8, 4, 24);
    check(suite(EncrId::ENCR_NULL, 0, IntegId::AUTH_HMAC_SHA2_512_256), 0, 4, 32);
    check(suite(EncrId::ENCR_3DES, 0, IntegId::AUTH_HMAC_MD5_96), 8, 8, 12);
}

#[test]
fn round_trip_every_suite_with_and_without_esn() {
    for s in modern_suites().into_iter().chain(legacy_only_suites()) {
        let tx = {
            let (encr, integ) = random_keys(&s);
            let keys = EspKeys { encr: &encr, integ: &integ };
            let tx = LEGACY_PROVIDER.esp.new_cipher(&s, &keys).unwrap();
            let rx = LEGACY_PROVIDER.esp.new_cipher(&s, &keys).unwrap();
            (tx, rx)
        };
        let (tx, rx) = tx;
        for esn in [false, true] {
            for blocks in [0, 1, 5] {
                let aad = EspAad { spi: 0xc0ff_ee01, seq: 0x0000_0002_0000_0007, esn };
                let plain = payload(tx.as_ref(), blocks);
                let (iv, mut ct, icv) = seal(tx.as_ref(), &aad, &plain);
                if s.encr != EncrId::ENCR_NULL && !plain.is_empty() {
                    assert_ne!(ct, plain, "{s}: payload must be encrypted");
                }
                rx.open(&aad, &iv, &mut ct, &icv).unwrap_or_else(|e| panic!("{s} esn={esn}: {e}"));
                assert_eq!(ct, plain, "{s} esn={esn}");
            }
        }
    }
}

#[test]
fn esn_high_bits_are_authenticated() {
    for s in modern_suites() {
        let c = cipher(DEFAULT_PROVIDER.esp, &s);
        let aad = EspAad { spi: 1, seq: 0x0000_0001_0000_0005, esn: true };
        let plain = payload(c.as_ref(), 2);
        let (iv, mut ct, icv) = seal(c.as_ref(), &aad, &plain);
        // Same low 32 bits on the wire, other high bits: must not verify.
        let other = EspAad { seq: 0x0000_0002_0000_0005, ..aad };
        assert_eq!(c.open(&other, &iv, &mut ct, &icv), Err(CryptoError::BadIcv), "{s}");
        // Without ESN the high bits are not covered, so the ICV differs too.
        let (_, _, icv_no_esn) = {
            let mut ct2 = plain.clone();
            let mut icv2 = vec![0u8; c.icv_len()];
            c.seal(&EspAad { esn: false, ..aad }, &iv, &mut ct2, &mut icv2).unwrap();
            ((), ct2, icv2)
        };
        assert_ne!(icv, icv_no_esn, "{s}");
    }
}

#[test]
fn any_flipped_bit_is_rejected() {
    for s in modern_suites().into_iter().chain(legacy_only_suites()) {
        let c = cipher(LEGACY_PROVIDER.esp, &s);
        let aad = EspAad { spi: 0x1234_5678, seq: 42, esn: false };
        let plain = payload(c.as_ref(), 2);
        let (iv, ct, icv) = seal(c.as_ref(), &aad, &plain);
        let flip = |v: &[u8], bit: usize| {
            let mut v = v.to_vec();
            let byte = v.get_mut(bit / 8).unwrap();
            *byte ^= 1 << (bit % 8);
            v
        };
        for bit in 0..iv.len() * 8 {
            let mut ct2 = ct.clone();
            let r = c.open(&aad, &flip(&iv, bit), &mut ct2, &icv);
            assert_eq!(r, Err(CryptoError::BadIcv), "{s}: iv bit {bit}");
        }
        for bit in 0..ct.len() * 8 {
            let mut ct2 = flip(&ct, bit);
            let r = c.open(&aad, &iv, &mut ct2, &icv);
            assert_eq!(r, Err(CryptoError::BadIcv), "{s}: ciphertext bit {bit}");
        }
        for bit in 0..icv.len() * 8 {
            let mut ct2 = ct.clone();
            let r = c.open(&aad, &iv, &mut ct2, &flip(&icv, bit));
            assert_eq!(r, Err(CryptoError::BadIcv), "{s}: icv bit {bit}");
        }
        for (field, other) in [
            ("spi", EspAad { spi: aad.spi ^ 1, ..aad }),
            ("seq", EspAad { seq: aad.seq ^ 1, ..aad }),
        ] {
            let mut ct2 = ct.clone();
            assert_eq!(
                c.open(&other, &iv, &mut ct2, &icv),
                Err(CryptoError::BadIcv),
                "{s} {field}"
            );
        }
        // The HMAC suites leave the payload untouched when the ICV fails.
        if !s.is_aead() {
            let mut ct2 = ct.clone();
            let _ = c.open(&aad, &iv, &mut ct2, &flip(&icv, 0));
            assert_eq!(ct2, ct, "{s}");
        }
    }
}

#[test]
fn counter_mode_ivs_are_the_sequence_number() {
    for s in [
        suite(EncrId::ENCR_AES_GCM_16, 128, IntegId::NONE),
        suite(EncrId::ENCR_CHACHA20_POLY1305, 0, IntegId::NONE),
        suite(EncrId::ENCR_AES_CTR, 256, IntegId::AUTH_HMAC_SHA2_256_128),
    ] {
        let c = cipher(DEFAULT_PROVIDER.esp, &s);
        let mut iv = [0u8; 8];
        c.generate_iv(0x0102_0304_0506_0708, &mut iv).unwrap();
        assert_eq!(iv, [1, 2, 3, 4, 5, 6, 7, 8], "{s}");
        c.generate_iv(1, &mut iv).unwrap();
        assert_eq!(iv, [0, 0, 0, 0, 0, 0, 0, 1], "{s}");
        assert_eq!(c.generate_iv(1, &mut [0u8; 7]), Err(CryptoError::BadLength), "{s}");
    }
}

#[test]
fn cbc_ivs_are_random() {
    for s in [
        suite(EncrId::ENCR_AES_CBC, 128, IntegId::AUTH_HMAC_SHA2_256_128),
        suite(EncrId::ENCR_3DES, 0, IntegId::AUTH_HMAC_SHA1_96),
    ] {
        let c = cipher(LEGACY_PROVIDER.esp, &s);
        let mut a = vec![0u8; c.iv_len()];
        let mut b = vec![0u8; c.iv_len()];
        c.generate_iv(1, &mut a).unwrap();
        c.generate_iv(1, &mut b).unwrap();
        assert_ne!(a, b, "{s}");
        assert_ne!(a, vec![0u8; c.iv_len()], "{s}");
    }
    let null =
        cipher(DEFAULT_PROVIDER.esp, &suite(EncrId::ENCR_NULL, 0, IntegId::AUTH_HMAC_SHA1_96));
    assert_eq!(null.generate_iv(5, &mut []), Ok(()));
    assert_eq!(null.generate_iv(5, &mut [0u8; 1]), Err(CryptoError::BadLength));
}

#[test]
fn wrong_lengths_are_errors_not_panics() {
    for s in modern_suites().into_iter().chain(legacy_only_suites()) {
        let c = cipher(LEGACY_PROVIDER.esp, &s);
        let aad = EspAad { spi: 9, seq: 9, esn: false };
        let plain = payload(c.as_ref(), 2);
        let (iv, ct, icv) = seal(c.as_ref(), &aad, &plain);
        let longer = |v: &[u8]| {
            let mut v = v.to_vec();
            v.push(0);
            v
        };
        // IV one byte too long.
        let mut buf = plain.clone();
        let mut out = vec![0u8; c.icv_len()];
        assert_eq!(c.seal(&aad, &longer(&iv), &mut buf, &mut out), Err(CryptoError::BadLength));
        let mut buf = ct.clone();
        assert_eq!(c.open(&aad, &longer(&iv), &mut buf, &icv), Err(CryptoError::BadLength));
        // ICV one byte too long or short.
        let mut buf = plain.clone();
        let mut out = vec![0u8; c.icv_len() + 1];
        assert_eq!(c.seal(&aad, &iv, &mut buf, &mut out), Err(CryptoError::BadLength), "{s}");
        let mut buf = ct.clone();
        assert_eq!(c.open(&aad, &iv, &mut buf, &longer(&icv)), Err(CryptoError::BadLength));
        let mut buf = ct.clone();
        let short = icv.get(..icv.len() - 1).unwrap();
        assert_eq!(c.open(&aad, &iv, &mut buf, short), Err(CryptoError::BadLength), "{s}");
        // A CBC payload that is not whole blocks.
        if c.block_len() > 4 {
            let mut buf = longer(&plain);
            let mut out = vec![0u8; c.icv_len()];
            assert_eq!(c.seal(&aad, &iv, &mut buf, &mut out), Err(CryptoError::BadLength), "{s}");
            let mut buf = longer(&ct);
            assert_eq!(c.open(&aad, &iv, &mut buf, &icv), Err(CryptoError::BadLength), "{s}");
        }
    }
}

#[test]
fn ciphers_and_providers_hide_keys_in_debug() {
    let s = suite(EncrId::ENCR_AES_CBC, 128, IntegId::AUTH_HMAC_SHA2_256_128);
    let keys = EspKeys { encr: &[0x5a; 16], integ: &[0xa5; 32] };
    let c = super::split::SplitCipher::new(s, keys.encr, keys.integ).unwrap();
    let text = format!("{c:?} {:?} {DEFAULT_PROVIDER:?}", super::AwsLcEsp { legacy: true });
    assert!(!text.contains("5a") && !text.contains("90") && !text.contains("165"), "{text}");
    let s = suite(EncrId::ENCR_AES_GCM_16, 128, IntegId::NONE);
    let c = super::aead::AeadCipher::new(s, &[0x5a; 20]).unwrap();
    let text = format!("{c:?}");
    assert!(!text.contains("5a") && !text.contains("90"), "{text}");
}

#[test]
fn weak_3des_keys_are_refused() {
    let s = suite(EncrId::ENCR_3DES, 0, IntegId::AUTH_HMAC_SHA1_96);
    // K1 = K2 = K3 degenerates to single DES.
    let keys = EspKeys { encr: &[0x13; 24], integ: &[0; 20] };
    assert_eq!(LEGACY_PROVIDER.esp.new_cipher(&s, &keys).err(), Some(CryptoError::BadKeyLength));
}
