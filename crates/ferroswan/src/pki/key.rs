//! Private keys: loading (PEM or DER; RSA PKCS#1, ECDSA SEC1, any PKCS#8) and signing.
//!
//! aws-lc-rs does every signature except one: it has no PKCS#1 v1.5 signing with SHA-1, which
//! the classic IKEv2 RSA method (AUTH method 1, RFC 7296 §3.8) needs for peers that did not send
//! `SIGNATURE_HASH_ALGORITHMS`. That one is the RSA private operation `EM^d mod n` done with
//! crypto-bigint's constant-time Montgomery exponentiation (the workspace's MODP code uses the
//! same), and the result is verified with aws-lc-rs before it leaves, so a bug cannot send a
//! wrong or key-leaking signature.

use core::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair, RsaKeyPair,
};
use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Odd};
use x509_cert::der::asn1::UintRef;
use x509_cert::der::{Decode, Reader, SliceReader};
use zeroize::{Zeroize, Zeroizing};

use super::alg::{self, Curve, Hash, PublicKey, Scheme};

/// A private key that can sign IKE AUTH payloads. Key material is never printed; aws-lc-rs
/// frees (and clears) its copies, ours are zeroized on drop.
pub struct PrivateKey {
    inner: Inner,
    public: PublicKey,
}

enum Inner {
    Ecdsa { curve: Curve, der: EcdsaKeyPair, fixed: EcdsaKeyPair },
    Ed25519(Ed25519KeyPair),
    Rsa { pair: RsaKeyPair, raw: RsaRaw },
}

/// `n` and `d` of an RSA key, for the SHA-1 signatures aws-lc-rs does not make.
struct RsaRaw {
    n: Vec<u8>,
    d: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({})", self.public.kind())
    }
}

const EC_ALGS: &[(Curve, &EcdsaSigningAlgorithm, &EcdsaSigningAlgorithm)] = &[
    (
        Curve::P256,
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
    ),
    (
        Curve::P384,
        &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
    ),
];

impl PrivateKey {
    /// Reads a key file's content: PEM (`RSA PRIVATE KEY`, `EC PRIVATE KEY`, `PRIVATE KEY`) or
    /// DER. Encrypted keys are refused with a hint to decrypt them: passphrases are not
    /// supported yet.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Self, String> {
        let Some(text) = bytes.windows(11).position(|w| w == b"-----BEGIN ") else {
            return Self::from_der(bytes);
        };
        // `ENCRYPTED PRIVATE KEY` (PKCS#8) or `Proc-Type: 4,ENCRYPTED` (OpenSSL's PEM).
        if bytes.windows(9).any(|w| w == b"ENCRYPTED") {
            return Err("encrypted private keys are not supported yet; decrypt it with \
                        `openssl pkey -in KEY -out KEY.plain` and protect the file by permissions"
                .to_owned());
        }
        let text = bytes.get(text..).unwrap_or_default();
        let (label, der) =
            x509_cert::der::pem::decode_vec(text).map_err(|e| format!("bad PEM ({e})"))?;
        let der = Zeroizing::new(der);
        match label {
            "RSA PRIVATE KEY" => Self::rsa_pkcs1(&der),
            "EC PRIVATE KEY" | "PRIVATE KEY" => Self::from_der(&der),
            other => Err(format!("PEM block '{other}' is not a private key")),
        }
    }

    /// Reads a DER key: PKCS#8 (RSA, ECDSA, Ed25519), RSA PKCS#1 or ECDSA SEC1.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        if let Ok(pair) = RsaKeyPair::from_pkcs8(der) {
            let pkcs1 = pkcs8_private_key(der).ok_or("RSA PKCS#8 without a private key")?;
            return Self::rsa(pair, &pkcs1);
        }
        if let Ok(pair) = RsaKeyPair::from_der(der) {
            return Self::rsa(pair, der);
        }
        if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            let public = PublicKey::Ed25519(pair.public_key().as_ref().to_vec());
            return Ok(Self { inner: Inner::Ed25519(pair), public });
        }
        for (curve, asn1, fixed) in EC_ALGS {
            if let (Ok(der_pair), Ok(fixed_pair)) = (
                EcdsaKeyPair::from_private_key_der(asn1, der),
                EcdsaKeyPair::from_private_key_der(fixed, der),
            ) {
                let public = PublicKey::Ecdsa {
                    curve: *curve,
                    point: der_pair.public_key().as_ref().to_vec(),
                };
                return Ok(Self {
                    inner: Inner::Ecdsa { curve: *curve, der: der_pair, fixed: fixed_pair },
                    public,
                });
            }
        }
        Err("not an unencrypted RSA (2048 bits or more), ECDSA P-256/P-384 or Ed25519 private \
             key in PKCS#1, SEC1 or PKCS#8"
            .to_owned())
    }

    fn rsa_pkcs1(der: &[u8]) -> Result<Self, String> {
        let pair = RsaKeyPair::from_der(der)
            .map_err(|e| format!("not a usable RSA PKCS#1 private key ({e})"))?;
        Self::rsa(pair, der)
    }

    fn rsa(pair: RsaKeyPair, pkcs1: &[u8]) -> Result<Self, String> {
        let raw = rsa_raw(pkcs1).ok_or("unparsable RSA private key")?;
        let public = PublicKey::Rsa(pair.public_key().as_ref().to_vec());
        Ok(Self { inner: Inner::Rsa { pair, raw }, public })
    }

    pub(crate) fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The RFC 7427 schemes this key can sign with, in strongSwan's order of preference
    /// (`signature_schemes_for_key()`: SHA-256 for RSA up to 3072 bits, then larger hashes),
    /// with the hash algorithm number of RFC 7427 §4 and the AlgorithmIdentifier DER.
    pub(crate) fn rfc7427_schemes(&self) -> Vec<(u16, Scheme, &'static [u8])> {
        use ferroswan_proto::ikev2::auth::hash_algorithm as h;
        match &self.inner {
            Inner::Ecdsa { curve: Curve::P256, .. } => {
                vec![(h::SHA2_256, Scheme::EcdsaDer(Hash::Sha256), alg::ALG_ECDSA_SHA256)]
            }
            Inner::Ecdsa { .. } => {
                vec![(h::SHA2_384, Scheme::EcdsaDer(Hash::Sha384), alg::ALG_ECDSA_SHA384)]
            }
            Inner::Ed25519(_) => vec![(h::IDENTITY, Scheme::Ed25519, alg::ALG_ED25519)],
            Inner::Rsa { pair, .. } => {
                let all = [
                    (h::SHA2_256, Scheme::RsaPkcs1(Hash::Sha256), alg::ALG_RSA_SHA256),
                    (h::SHA2_384, Scheme::RsaPkcs1(Hash::Sha384), alg::ALG_RSA_SHA384),
                    (h::SHA2_512, Scheme::RsaPkcs1(Hash::Sha512), alg::ALG_RSA_SHA512),
                ];
                // strongSwan skips the hashes weaker than the key for very large keys.
                let skip = match pair.public_modulus_len() * 8 {
                    0..=3072 => 0,
                    3073..=7680 => 1,
                    _ => 2,
                };
                all.into_iter().skip(skip).collect()
            }
        }
    }

    /// Signs `message` with `scheme`; `Err` when the key cannot make that scheme.
    pub(crate) fn sign(&self, scheme: Scheme, message: &[u8]) -> Result<Vec<u8>, String> {
        let rng = SystemRandom::new();
        let failed = |_| format!("{} signing failed", scheme.name());
        match (&self.inner, scheme) {
            (Inner::Ecdsa { curve, der, .. }, Scheme::EcdsaDer(h))
                if (*curve, h) == (Curve::P256, Hash::Sha256)
                    || (*curve, h) == (Curve::P384, Hash::Sha384) =>
            {
                Ok(der.sign(&rng, message).map_err(failed)?.as_ref().to_vec())
            }
            (Inner::Ecdsa { curve, fixed, .. }, Scheme::EcdsaFixed(c)) if *curve == c => {
                Ok(fixed.sign(&rng, message).map_err(failed)?.as_ref().to_vec())
            }
            (Inner::Ed25519(pair), Scheme::Ed25519) => Ok(pair.sign(message).as_ref().to_vec()),
            (Inner::Rsa { pair, raw }, Scheme::RsaPkcs1(Hash::Sha1)) => {
                rsa_sha1_sign(pair, raw, message)
            }
            (Inner::Rsa { pair, .. }, Scheme::RsaPkcs1(h) | Scheme::RsaPss { hash: h, .. }) => {
                let pss = matches!(scheme, Scheme::RsaPss { .. });
                let encoding: &'static dyn signature::RsaEncoding = match (h, pss) {
                    (Hash::Sha256, false) => &signature::RSA_PKCS1_SHA256,
                    (Hash::Sha384, false) => &signature::RSA_PKCS1_SHA384,
                    (Hash::Sha512, false) => &signature::RSA_PKCS1_SHA512,
                    (Hash::Sha256, true) => &signature::RSA_PSS_SHA256,
                    (Hash::Sha384, true) => &signature::RSA_PSS_SHA384,
                    (Hash::Sha512, true) => &signature::RSA_PSS_SHA512,
                    (Hash::Sha1, _) => return Err("RSA-PSS with SHA-1 is not supported".into()),
                };
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(encoding, &rng, message, &mut sig).map_err(failed)?;
                Ok(sig)
            }
            _ => Err(format!("a {} key cannot sign {}", self.public.kind(), scheme.name())),
        }
    }
}

/// The `privateKey` OCTET STRING content of a PKCS#8 `PrivateKeyInfo`.
fn pkcs8_private_key(der: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let mut reader = SliceReader::new(der).ok()?;
    reader
        .sequence(|r| {
            let _version = UintRef::decode(r)?;
            let _alg = r.tlv_bytes()?;
            let key = x509_cert::der::asn1::OctetStringRef::decode(r)?;
            // Optional attributes and public key follow.
            while !r.is_finished() {
                r.tlv_bytes()?;
            }
            Ok(Zeroizing::new(key.as_bytes().to_vec()))
        })
        .ok()
}

/// `n` and `d` of a PKCS#1 `RSAPrivateKey`.
fn rsa_raw(der: &[u8]) -> Option<RsaRaw> {
    let mut reader = SliceReader::new(der).ok()?;
    reader
        .sequence(|r| {
            let _version = UintRef::decode(r)?;
            let n = UintRef::decode(r)?.as_bytes().to_vec();
            let _e = UintRef::decode(r)?;
            let d = Zeroizing::new(UintRef::decode(r)?.as_bytes().to_vec());
            while !r.is_finished() {
                r.tlv_bytes()?;
            }
            Ok(RsaRaw { n, d })
        })
        .ok()
}

/// `DigestInfo` prefix of SHA-1 (RFC 8017 §9.2 note 1).
const SHA1_DIGEST_INFO: &[u8] =
    &[0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14];

/// RSASSA-PKCS1-v1_5 with SHA-1 (RFC 8017 §8.2.1): `EM = 00 01 FF… 00 ‖ DigestInfo ‖ H`,
/// `s = EM^d mod n`, checked with aws-lc-rs before it is returned.
fn rsa_sha1_sign(pair: &RsaKeyPair, raw: &RsaRaw, message: &[u8]) -> Result<Vec<u8>, String> {
    let k = pair.public_modulus_len();
    let hash = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, message);
    let t_len = SHA1_DIGEST_INFO.len() + hash.as_ref().len();
    let pad = k.checked_sub(t_len + 3).filter(|p| *p >= 8).ok_or("RSA key too small")?;
    let mut em = Zeroizing::new(Vec::with_capacity(k));
    em.extend_from_slice(&[0x00, 0x01]);
    em.resize(2 + pad, 0xff);
    em.push(0x00);
    em.extend_from_slice(SHA1_DIGEST_INFO);
    em.extend_from_slice(hash.as_ref());

    let bits = u32::try_from(k * 8).map_err(|_| "RSA key too large")?;
    let err = |_| "RSA private key does not fit its modulus".to_owned();
    let n = BoxedUint::from_be_slice(&raw.n, bits).map_err(err)?;
    let n = Odd::new(n).into_option().ok_or("RSA modulus is even")?;
    let params = BoxedMontyParams::new(n);
    let mut d = BoxedUint::from_be_slice(&raw.d, bits).map_err(err)?;
    let base = BoxedUint::from_be_slice(&em, bits).map_err(err)?;
    let mut base = BoxedMontyForm::new(base, &params);
    let mut power = base.pow(&d);
    let mut value = power.retrieve();
    let sig = value.to_be_bytes().into_vec();
    d.zeroize();
    base.zeroize();
    power.zeroize();
    value.zeroize();
    let sig = sig.get(sig.len().saturating_sub(k)..).unwrap_or_default().to_vec();

    // Never send a signature that does not verify (a fault or a bug could leak the key).
    signature::UnparsedPublicKey::new(
        &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        pair.public_key().as_ref(),
    )
    .verify(message, &sig)
    .map_err(|_| "RSA SHA-1 signature failed its self-check".to_owned())?;
    Ok(sig)
}
