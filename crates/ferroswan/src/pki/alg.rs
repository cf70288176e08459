//! Signature algorithms: the DER `AlgorithmIdentifier`s of RFC 7427 (in the AUTH payload and in
//! certificates), public keys from a `SubjectPublicKeyInfo`, and verification with aws-lc-rs.
//!
//! Our own identifiers are written exactly as strongSwan 5.9.8 writes them
//! (`asn1_algorithmIdentifier()`): the RSA ones carry explicit NULL parameters, the ECDSA and
//! EdDSA ones none (RFC 7427 Appendix A lists the same bytes).

use aws_lc_rs::signature::{self, RsaParameters, RsaPssSaltLength, VerificationAlgorithm};
use x509_cert::der::asn1::{AnyRef, ObjectIdentifier};
use x509_cert::der::{Decode, Encode, Reader, SliceReader};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use crate::pki::util::hex;

/// `rsaEncryption` (SPKI of an RSA key).
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// `id-RSASSA-PSS` (RFC 4055).
const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const SHA1_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
/// `id-ecPublicKey`.
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const ECDSA_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.1");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
/// `id-Ed25519` (RFC 8410), both the key and the signature algorithm.
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// `sha256WithRSAEncryption` with NULL parameters.
pub(crate) const ALG_RSA_SHA256: &[u8] =
    &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00];
/// `sha384WithRSAEncryption` with NULL parameters.
pub(crate) const ALG_RSA_SHA384: &[u8] =
    &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05, 0x00];
/// `sha512WithRSAEncryption` with NULL parameters.
pub(crate) const ALG_RSA_SHA512: &[u8] =
    &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05, 0x00];
/// `ecdsa-with-SHA256`, no parameters.
pub(crate) const ALG_ECDSA_SHA256: &[u8] =
    &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
/// `ecdsa-with-SHA384`, no parameters.
pub(crate) const ALG_ECDSA_SHA384: &[u8] =
    &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
/// `id-Ed25519`, no parameters.
pub(crate) const ALG_ED25519: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

/// A hash function of a signature scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Some(match *oid {
            SHA1 => Self::Sha1,
            SHA256 => Self::Sha256,
            SHA384 => Self::Sha384,
            SHA512 => Self::Sha512,
            _ => return None,
        })
    }

    fn len(self) -> u16 {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA-1",
            Self::Sha256 => "SHA-256",
            Self::Sha384 => "SHA-384",
            Self::Sha512 => "SHA-512",
        }
    }
}

/// A signature scheme, from an `AlgorithmIdentifier` or a classic AUTH method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// ECDSA with a DER `Ecdsa-Sig-Value` (RFC 7427, certificates).
    EcdsaDer(Hash),
    /// ECDSA with fixed-size `r ‖ s` (RFC 4754 AUTH methods 9, 10, 11).
    EcdsaFixed(Curve),
    /// Ed25519 (RFC 8410, RFC 8420).
    Ed25519,
    /// RSASSA-PKCS1-v1_5.
    RsaPkcs1(Hash),
    /// RSASSA-PSS with MGF1 over the same hash.
    RsaPss { hash: Hash, salt_len: u16 },
}

impl Scheme {
    /// Reads a DER `AlgorithmIdentifier`.
    pub(crate) fn from_der(der: &[u8]) -> Result<Self, String> {
        let alg = AlgorithmIdentifierOwned::from_der(der)
            .map_err(|e| format!("unparsable signature AlgorithmIdentifier ({e})"))?;
        Self::from_alg(&alg)
    }

    fn from_alg(alg: &AlgorithmIdentifierOwned) -> Result<Self, String> {
        Ok(match alg.oid {
            SHA1_WITH_RSA => Self::RsaPkcs1(Hash::Sha1),
            SHA256_WITH_RSA => Self::RsaPkcs1(Hash::Sha256),
            SHA384_WITH_RSA => Self::RsaPkcs1(Hash::Sha384),
            SHA512_WITH_RSA => Self::RsaPkcs1(Hash::Sha512),
            ECDSA_SHA1 => Self::EcdsaDer(Hash::Sha1),
            ECDSA_SHA256 => Self::EcdsaDer(Hash::Sha256),
            ECDSA_SHA384 => Self::EcdsaDer(Hash::Sha384),
            ECDSA_SHA512 => Self::EcdsaDer(Hash::Sha512),
            ED25519 => Self::Ed25519,
            RSASSA_PSS => {
                let params = alg
                    .parameters
                    .as_ref()
                    .ok_or("RSA-PSS AlgorithmIdentifier without parameters")?;
                pss_params(&params.to_der().map_err(|e| e.to_string())?)
                    .map_err(|e| format!("RSA-PSS parameters: {e}"))?
            }
            other => return Err(format!("unsupported signature algorithm (OID {other})")),
        })
    }

    /// A name for messages.
    pub(crate) fn name(self) -> String {
        match self {
            Self::EcdsaDer(h) => format!("ECDSA with {}", h.name()),
            Self::EcdsaFixed(c) => format!("ECDSA {} (RFC 4754)", c.name()),
            Self::Ed25519 => "Ed25519".to_owned(),
            Self::RsaPkcs1(h) => format!("RSA PKCS#1 with {}", h.name()),
            Self::RsaPss { hash, .. } => format!("RSA-PSS with {}", hash.name()),
        }
    }
}

/// `RSASSA-PSS-params` (RFC 4055 §3.1): the hash, MGF1 over the same hash, the salt length, and
/// the trailer field 1. SHA-1 defaults are refused (strongSwan never sends them either).
fn pss_params(der: &[u8]) -> Result<Scheme, String> {
    let mut reader = SliceReader::new(der).map_err(|e| e.to_string())?;
    let mut hash = None;
    let mut mgf_hash = None;
    let mut salt_len: u16 = 20;
    reader
        .sequence(|r| {
            while !r.is_finished() {
                let any: AnyRef<'_> = r.decode()?;
                let number = x509_cert::der::Tagged::tag(&any).octet() & 0x1f;
                let inner = any.value();
                match number {
                    0 => hash = Some(AlgorithmIdentifierOwned::from_der(inner)?),
                    1 => {
                        let mgf = AlgorithmIdentifierOwned::from_der(inner)?;
                        if mgf.oid == MGF1 {
                            if let Some(p) = mgf.parameters {
                                mgf_hash = Some(AlgorithmIdentifierOwned::from_der(&p.to_der()?)?);
                            }
                        } else {
                            mgf_hash = None;
                        }
                    }
                    2 => {
                        let v = x509_cert::der::asn1::Int::from_der(inner)?;
                        salt_len = v
                            .as_bytes()
                            .iter()
                            .try_fold(0u16, |acc, b| {
                                acc.checked_mul(256).and_then(|a| a.checked_add(u16::from(*b)))
                            })
                            .ok_or(x509_cert::der::ErrorKind::Overflow)?;
                    }
                    _ => {}
                }
            }
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    let hash = hash.as_ref().and_then(|h| Hash::from_oid(&h.oid)).ok_or("hash is not SHA-2")?;
    let mgf = mgf_hash.as_ref().and_then(|h| Hash::from_oid(&h.oid));
    if mgf != Some(hash) || hash == Hash::Sha1 {
        return Err("only MGF1 with the signature's SHA-2 hash is supported".to_owned());
    }
    Ok(Scheme::RsaPss { hash, salt_len })
}

/// An elliptic curve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        }
    }
}

/// A public key, in the form aws-lc-rs verifies with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PublicKey {
    /// The uncompressed point.
    Ecdsa { curve: Curve, point: Vec<u8> },
    /// The 32-byte key.
    Ed25519(Vec<u8>),
    /// The PKCS#1 `RSAPublicKey` DER.
    Rsa(Vec<u8>),
}

impl PublicKey {
    /// Reads a `SubjectPublicKeyInfo`.
    pub(crate) fn from_spki(spki: &SubjectPublicKeyInfoOwned) -> Result<Self, String> {
        let bits = spki.subject_public_key.as_bytes().ok_or("public key has unused bits")?;
        match spki.algorithm.oid {
            RSA_ENCRYPTION => Ok(Self::Rsa(bits.to_vec())),
            EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                    .ok_or("EC public key without a named curve")?;
                let curve = match curve {
                    P256 => Curve::P256,
                    P384 => Curve::P384,
                    P521 => Curve::P521,
                    other => return Err(format!("unsupported elliptic curve (OID {other})")),
                };
                Ok(Self::Ecdsa { curve, point: bits.to_vec() })
            }
            ED25519 => Ok(Self::Ed25519(bits.to_vec())),
            RSASSA_PSS => Err("RSA-PSS-only public keys (id-RSASSA-PSS) are not supported; \
                               use an rsaEncryption key"
                .to_owned()),
            other => Err(format!("unsupported public key algorithm (OID {other})")),
        }
    }

    /// The key type in words.
    pub(crate) fn kind(&self) -> String {
        match self {
            Self::Ecdsa { curve, .. } => format!("ECDSA {}", curve.name()),
            Self::Ed25519(_) => "Ed25519".to_owned(),
            Self::Rsa(_) => "RSA".to_owned(),
        }
    }

    /// Verifies `signature` over `message` with `scheme`, refusing a scheme of another key type.
    pub(crate) fn verify(
        &self,
        scheme: Scheme,
        message: &[u8],
        sig: &[u8],
    ) -> Result<(), VerifyError> {
        let (alg, key): (&'static dyn VerificationAlgorithm, &[u8]) = match (self, scheme) {
            (Self::Rsa(k), Scheme::RsaPkcs1(h)) => (rsa_pkcs1(h), k),
            (Self::Rsa(k), Scheme::RsaPss { hash, salt_len }) => {
                let alg = rsa_pss(hash, salt_len, k).ok_or_else(|| {
                    VerifyError::Unsupported(format!(
                        "RSA-PSS salt length {salt_len} is not supported (only the hash length {} \
                         or the maximum)",
                        hash.len()
                    ))
                })?;
                (alg, k)
            }
            (Self::Ecdsa { curve, point }, Scheme::EcdsaDer(h)) => (ecdsa_der(*curve, h)?, point),
            (Self::Ecdsa { curve, point }, Scheme::EcdsaFixed(c)) if *curve == c => {
                (ecdsa_fixed(c), point)
            }
            (Self::Ed25519(k), Scheme::Ed25519) => (&signature::ED25519, k),
            _ => {
                return Err(VerifyError::WrongKey(format!(
                    "{} signature does not fit the {} key",
                    scheme.name(),
                    self.kind()
                )));
            }
        };
        signature::UnparsedPublicKey::new(alg, key)
            .verify(message, sig)
            .map_err(|_| VerifyError::Invalid(scheme.name()))
    }
}

/// Why a signature did not verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum VerifyError {
    /// The signature is wrong.
    Invalid(String),
    /// An algorithm we do not implement.
    Unsupported(String),
    /// The scheme does not fit the key.
    WrongKey(String),
}

fn rsa_pkcs1(h: Hash) -> &'static RsaParameters {
    match h {
        Hash::Sha1 => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        Hash::Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Hash::Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Hash::Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
    }
}

static RSA_PSS_SHA256_MAX: RsaParameters =
    signature::RSA_PSS_2048_8192_SHA256.with_pss_salt_length(RsaPssSaltLength::Max);
static RSA_PSS_SHA384_MAX: RsaParameters =
    signature::RSA_PSS_2048_8192_SHA384.with_pss_salt_length(RsaPssSaltLength::Max);
static RSA_PSS_SHA512_MAX: RsaParameters =
    signature::RSA_PSS_2048_8192_SHA512.with_pss_salt_length(RsaPssSaltLength::Max);

/// RSA-PSS with the salt as long as the hash (strongSwan's default) or the maximum for the key
/// (what some other implementations use).
fn rsa_pss(h: Hash, salt_len: u16, key: &[u8]) -> Option<&'static RsaParameters> {
    if salt_len == h.len() {
        return match h {
            Hash::Sha1 => None,
            Hash::Sha256 => Some(&signature::RSA_PSS_2048_8192_SHA256),
            Hash::Sha384 => Some(&signature::RSA_PSS_2048_8192_SHA384),
            Hash::Sha512 => Some(&signature::RSA_PSS_2048_8192_SHA512),
        };
    }
    let bits = rsa_modulus_bits(key)?;
    let em_len = bits.checked_add(6)? / 8;
    let max = em_len.checked_sub(usize::from(h.len()))?.checked_sub(2)?;
    if usize::from(salt_len) != max {
        return None;
    }
    match h {
        Hash::Sha1 => None,
        Hash::Sha256 => Some(&RSA_PSS_SHA256_MAX),
        Hash::Sha384 => Some(&RSA_PSS_SHA384_MAX),
        Hash::Sha512 => Some(&RSA_PSS_SHA512_MAX),
    }
}

/// The modulus size in bits of a PKCS#1 `RSAPublicKey`.
fn rsa_modulus_bits(der: &[u8]) -> Option<usize> {
    let mut reader = SliceReader::new(der).ok()?;
    let n = reader
        .sequence(|r| {
            let n = x509_cert::der::asn1::UintRef::decode(r)?;
            let _e = x509_cert::der::asn1::UintRef::decode(r)?;
            Ok(n.as_bytes().to_vec())
        })
        .ok()?;
    let first = *n.first()?;
    Some((n.len() - 1) * 8 + (8 - first.leading_zeros() as usize))
}

fn ecdsa_der(curve: Curve, h: Hash) -> Result<&'static dyn VerificationAlgorithm, VerifyError> {
    Ok(match (curve, h) {
        (Curve::P256, Hash::Sha1) => &signature::ECDSA_P256_SHA1_ASN1,
        (Curve::P256, Hash::Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
        (Curve::P256, Hash::Sha384) => &signature::ECDSA_P256_SHA384_ASN1,
        (Curve::P256, Hash::Sha512) => &signature::ECDSA_P256_SHA512_ASN1,
        (Curve::P384, Hash::Sha256) => &signature::ECDSA_P384_SHA256_ASN1,
        (Curve::P384, Hash::Sha384) => &signature::ECDSA_P384_SHA384_ASN1,
        (Curve::P384, Hash::Sha512) => &signature::ECDSA_P384_SHA512_ASN1,
        (Curve::P521, Hash::Sha1) => &signature::ECDSA_P521_SHA1_ASN1,
        (Curve::P521, Hash::Sha256) => &signature::ECDSA_P521_SHA256_ASN1,
        (Curve::P521, Hash::Sha384) => &signature::ECDSA_P521_SHA384_ASN1,
        (Curve::P521, Hash::Sha512) => &signature::ECDSA_P521_SHA512_ASN1,
        (Curve::P384, Hash::Sha1) => {
            return Err(VerifyError::Unsupported("ECDSA P-384 with SHA-1".to_owned()));
        }
    })
}

fn ecdsa_fixed(curve: Curve) -> &'static dyn VerificationAlgorithm {
    match curve {
        Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
        Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
        Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED,
    }
}

/// Splits RFC 7427 AUTH data into the scheme and the signature:
/// `length (1 octet) ‖ AlgorithmIdentifier ‖ signature`.
pub(crate) fn split_auth_data(data: &[u8]) -> Result<(Scheme, &[u8]), String> {
    let (&len, rest) = data.split_first().ok_or("empty AUTH data")?;
    let (alg, sig) = rest
        .split_at_checked(usize::from(len))
        .ok_or_else(|| format!("AUTH data shorter than its AlgorithmIdentifier length {len}"))?;
    let scheme = Scheme::from_der(alg).map_err(|e| format!("{e} (bytes {})", hex(alg)))?;
    Ok((scheme, sig))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn our_identifiers_parse_to_their_schemes() {
        let cases: &[(&[u8], Scheme)] = &[
            (ALG_RSA_SHA256, Scheme::RsaPkcs1(Hash::Sha256)),
            (ALG_RSA_SHA384, Scheme::RsaPkcs1(Hash::Sha384)),
            (ALG_RSA_SHA512, Scheme::RsaPkcs1(Hash::Sha512)),
            (ALG_ECDSA_SHA256, Scheme::EcdsaDer(Hash::Sha256)),
            (ALG_ECDSA_SHA384, Scheme::EcdsaDer(Hash::Sha384)),
            (ALG_ED25519, Scheme::Ed25519),
        ];
        for (der, scheme) in cases {
            assert_eq!(Scheme::from_der(der).unwrap(), *scheme);
        }
    }

    #[test]
    fn auth_data_splits_and_rejects_garbage() {
        let mut data = vec![ALG_ED25519.len() as u8];
        data.extend_from_slice(ALG_ED25519);
        data.extend_from_slice(b"sig");
        assert_eq!(split_auth_data(&data).unwrap(), (Scheme::Ed25519, &b"sig"[..]));
        assert!(split_auth_data(&[]).is_err());
        assert!(split_auth_data(&[40, 0x30]).is_err());
        assert!(split_auth_data(&[2, 0x30, 0x00]).is_err());
        // md5WithRSAEncryption.
        let mut md5 = vec![15];
        md5.extend_from_slice(&ALG_RSA_SHA256[..14]);
        md5[13] = 0x04;
        md5.push(0x00);
        let err = split_auth_data(&md5).unwrap_err();
        assert!(err.contains("unsupported signature algorithm"), "{err}");
    }
}
