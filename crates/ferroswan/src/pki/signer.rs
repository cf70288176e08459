//! [`CertSigner`]: our certificate and private key, as the IKE core's [`LocalSigner`].

use std::sync::Arc;

use ferroswan_proto::ikev2::auth::{AuthError, LocalSigner, hash_algorithm};
use ferroswan_proto::ikev2::identity::Identity;
use ferroswan_proto::wire::ikev2::{AuthMethod, IdType};

use super::alg::{Curve, Hash, PublicKey, Scheme};
use super::cert::Certificate;
use super::key::PrivateKey;

/// Signs AUTH payloads with a private key and presents its certificate chain.
///
/// With the peer's `SIGNATURE_HASH_ALGORITHMS` (RFC 7427 §4) it signs with
/// `DIGITAL_SIGNATURE` (method 14), choosing the scheme as strongSwan does: RSA PKCS#1 v1.5
/// with SHA-256 (then SHA-384, SHA-512), ECDSA with the curve's hash, Ed25519 (RFC 8420).
/// Without them it uses the classic methods: RSA with SHA-1 (1), ECDSA P-256 (9) or P-384
/// (10); Ed25519 has no classic method and uses 14 anyway.
#[derive(Debug)]
pub struct CertSigner {
    key: Arc<PrivateKey>,
    chain: Vec<Certificate>,
}

impl CertSigner {
    /// A signer for `chain` (end-entity first, then intermediates to send) and the private key
    /// of the end-entity certificate. Fails when the key does not belong to the certificate.
    pub fn new(key: Arc<PrivateKey>, chain: Vec<Certificate>) -> Result<Self, String> {
        let ee = chain.first().ok_or("no certificate")?;
        if ee.public_key()? != key.public_key() {
            return Err(format!(
                "the private key does not belong to certificate \"{}\"",
                ee.subject()
            ));
        }
        Ok(Self { key, chain })
    }

    fn sign_rfc7427(&self, octets: &[u8], peer_hashes: &[u16]) -> Result<Vec<u8>, AuthError> {
        let schemes = self.key.rfc7427_schemes();
        let (_, scheme, alg) =
            schemes.iter().find(|(hash, _, _)| peer_hashes.contains(hash)).ok_or_else(|| {
                let ours: Vec<&str> = schemes.iter().map(|(h, _, _)| hash_name(*h)).collect();
                let theirs: Vec<&str> = peer_hashes.iter().map(|h| hash_name(*h)).collect();
                AuthError::Sign(format!(
                    "the peer accepts the hash algorithms [{}] but our {} key signs with [{}]",
                    theirs.join(", "),
                    self.key.public_key().kind(),
                    ours.join(", ")
                ))
            })?;
        let sig = self.key.sign(*scheme, octets).map_err(AuthError::Sign)?;
        let len = u8::try_from(alg.len()).map_err(|_| AuthError::Sign("long algorithm".into()))?;
        let mut out = Vec::with_capacity(1 + alg.len() + sig.len());
        out.push(len);
        out.extend_from_slice(alg);
        out.extend_from_slice(&sig);
        Ok(out)
    }
}

fn hash_name(h: u16) -> &'static str {
    match h {
        hash_algorithm::SHA1 => "SHA-1",
        hash_algorithm::SHA2_256 => "SHA-256",
        hash_algorithm::SHA2_384 => "SHA-384",
        hash_algorithm::SHA2_512 => "SHA-512",
        hash_algorithm::IDENTITY => "identity",
        _ => "unknown",
    }
}

impl LocalSigner for CertSigner {
    fn default_identity(&self) -> Option<Identity> {
        self.chain
            .first()
            .map(|c| Identity { ty: IdType::ID_DER_ASN1_DN, data: c.subject_der().to_vec() })
    }

    fn certificates(&self) -> Vec<Vec<u8>> {
        self.chain.iter().map(|c| c.der().to_vec()).collect()
    }

    fn sign(&self, octets: &[u8], peer_hashes: &[u16]) -> Result<(AuthMethod, Vec<u8>), AuthError> {
        let classic = match self.key.public_key() {
            _ if !peer_hashes.is_empty() => None,
            PublicKey::Rsa(_) => {
                Some((AuthMethod::RSA_DIGITAL_SIGNATURE, Scheme::RsaPkcs1(Hash::Sha1)))
            }
            PublicKey::Ecdsa { curve: Curve::P256, .. } => {
                Some((AuthMethod::ECDSA_SHA256_P256, Scheme::EcdsaFixed(Curve::P256)))
            }
            PublicKey::Ecdsa { curve: Curve::P384, .. } => {
                Some((AuthMethod::ECDSA_SHA384_P384, Scheme::EcdsaFixed(Curve::P384)))
            }
            PublicKey::Ecdsa { curve: Curve::P521, .. } => {
                return Err(AuthError::Sign("ECDSA P-521 keys are not supported".into()));
            }
            PublicKey::Ed25519(_) => None,
        };
        match classic {
            Some((method, scheme)) => {
                Ok((method, self.key.sign(scheme, octets).map_err(AuthError::Sign)?))
            }
            None => {
                // Ed25519 without peer hashes: RFC 8420 has no classic method; strongSwan
                // accepts method 14 from any peer that can verify Ed25519.
                let hashes: &[u16] =
                    if peer_hashes.is_empty() { &[hash_algorithm::IDENTITY] } else { peer_hashes };
                Ok((AuthMethod::DIGITAL_SIGNATURE, self.sign_rfc7427(octets, hashes)?))
            }
        }
    }
}
