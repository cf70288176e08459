//! Authentication of IKE peers (RFC 7296 §2.15): what gets signed, PSK MACs, and the traits a
//! certificate store implements for signature methods.
//!
//! Both sides sign their own first message plus the other side's nonce and a MAC of their
//! identity (`InitiatorSignedOctets = RealMessage1 | NonceRData | MACedIDForI`, with
//! `MACedIDForI = prf(SK_pi, RestOfInitIDPayload)`), built by [`signed_octets`].
//!
//! - Shared keys: `AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>)`
//!   ([`psk_auth`]), compared in constant time.
//! - Signatures (RFC 7427 `DIGITAL_SIGNATURE`, RFC 4754 ECDSA, classic RSA): the core does not
//!   parse certificates. It hands the peer's CERT payloads and the octets to a
//!   [`PeerVerifier`], and asks a [`LocalSigner`] for its own certificates and signature. The
//!   daemon implements both over its X.509 store.
//!
//! [`AuthVerified`] is the proof that the peer's AUTH payload verified: only
//! [`verify_psk`] and [`verify_signature`] make one, and a CHILD_SA cannot be reported
//! up without it.

use core::fmt;

use subtle::ConstantTimeEq;

use super::identity::Identity;
use crate::crypto::{CryptoError, Prf, SecretBytes};
use crate::wire::ikev2::{AuthMethod, IdType};

/// The key pad of RFC 7296 §2.15.
pub const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// Hash algorithms of RFC 7427 §4 (`SIGNATURE_HASH_ALGORITHMS` notify data, 16-bit each).
pub mod hash_algorithm {
    /// SHA-1 (not offered by us).
    pub const SHA1: u16 = 1;
    /// SHA2-256.
    pub const SHA2_256: u16 = 2;
    /// SHA2-384.
    pub const SHA2_384: u16 = 3;
    /// SHA2-512.
    pub const SHA2_512: u16 = 4;
    /// Identity (the signature scheme hashes itself: Ed25519, RFC 8420).
    pub const IDENTITY: u16 = 5;
}

/// `<SignedOctets>`: the sender's first message, the peer's nonce and `prf(SK_p, IDx')`, where
/// `id_body` is the sender's ID payload body (type octet, three reserved octets, data).
pub fn signed_octets(
    prf: &dyn Prf,
    first_message: &[u8],
    peer_nonce: &[u8],
    sk_p: &[u8],
    id_body: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let maced_id = prf.prf(sk_p, id_body)?;
    let mut out =
        Vec::with_capacity(first_message.len() + peer_nonce.len() + maced_id.expose().len());
    out.extend_from_slice(first_message);
    out.extend_from_slice(peer_nonce);
    out.extend_from_slice(maced_id.expose());
    Ok(out)
}

/// The body of an ID payload, as MACed into the signed octets: `type ‖ 0 0 0 ‖ data`.
pub fn id_body(id: &Identity) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + id.data.len());
    out.extend_from_slice(&[id.ty.0, 0, 0, 0]);
    out.extend_from_slice(&id.data);
    out
}

/// The AUTH data for a pre-shared key.
pub fn psk_auth(prf: &dyn Prf, secret: &[u8], octets: &[u8]) -> Result<SecretBytes, CryptoError> {
    let key = prf.prf(secret, KEY_PAD)?;
    prf.prf(key.expose(), octets)
}

/// Proof that the peer's AUTH payload verified. Made only by [`verify_psk`] and
/// [`verify_signature`].
#[derive(Debug)]
#[allow(clippy::manual_non_exhaustive)] // the private field is the point: no construction outside
pub struct AuthVerified {
    /// The identity the peer authenticated as.
    pub peer_id: Identity,
    /// How it authenticated.
    pub method: AuthMethod,
    _private: (),
}

impl AuthVerified {
    /// The same proof for the IKE SA that replaces this one by rekeying (RFC 7296 §2.18: a
    /// rekeyed IKE SA is not authenticated again; its keys derive from this one's SK_d).
    pub(crate) fn carry_over(&self) -> Self {
        Self { peer_id: self.peer_id.clone(), method: self.method, _private: () }
    }
}

/// Why the peer's authentication failed, in words for the log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The peer used a method our config does not allow.
    #[error("peer authenticated with {got}, but {expected} is configured (remote.auth)")]
    WrongMethod {
        /// Configured.
        expected: String,
        /// Received.
        got: AuthMethod,
    },
    /// The PSK MAC did not verify.
    #[error(
        "pre-shared key MAC does not verify: the two sides have different secrets for this identity pair"
    )]
    PskMismatch,
    /// No pre-shared key for the identities.
    #[error(
        "no pre-shared key found for {local} - {remote} (secrets.ike: add one whose id matches)"
    )]
    NoPsk {
        /// Our identity.
        local: String,
        /// The peer's identity.
        remote: String,
    },
    /// The peer's identity is not the configured one.
    #[error("peer identity '{got}' does not match remote.id '{expected}'")]
    IdMismatch {
        /// Configured `remote.id`.
        expected: String,
        /// Received IDx.
        got: String,
    },
    /// Something about the certificate or signature, explained by the verifier.
    #[error("{0}")]
    Certificate(String),
    /// The signature did not verify.
    #[error("signature does not verify: {0}")]
    BadSignature(String),
    /// Our own signing failed.
    #[error("could not sign our AUTH payload: {0}")]
    Sign(String),
    /// A crypto provider error.
    #[error("crypto error: {0}")]
    Crypto(#[from] CryptoError),
}

/// Checks the peer's PSK AUTH data in constant time.
pub fn verify_psk(
    prf: &dyn Prf,
    secret: &[u8],
    octets: &[u8],
    received: &[u8],
    peer_id: Identity,
) -> Result<AuthVerified, AuthError> {
    let expected = psk_auth(prf, secret, octets)?;
    if bool::from(expected.expose().ct_eq(received)) {
        Ok(AuthVerified {
            peer_id,
            method: AuthMethod::SHARED_KEY_MESSAGE_INTEGRITY_CODE,
            _private: (),
        })
    } else {
        Err(AuthError::PskMismatch)
    }
}

/// What the peer sent to prove who it is, for a [`PeerVerifier`].
#[derive(Clone, Copy, Debug)]
pub struct PeerAuth<'a> {
    /// The peer's ID payload.
    pub id: &'a Identity,
    /// The peer's CERT payloads (encoding and data), end-entity first as sent.
    pub certs: &'a [(u8, Vec<u8>)],
    /// The AUTH method.
    pub method: AuthMethod,
    /// The AUTH data (for `DIGITAL_SIGNATURE`: the AlgorithmIdentifier prefix and signature).
    pub auth_data: &'a [u8],
    /// The octets the peer signed.
    pub signed_octets: &'a [u8],
    /// Wall-clock time, seconds since the Unix epoch, for certificate validity.
    pub now_unix: u64,
}

/// Verifies peers that authenticate with signatures: chain validation against the configured
/// CAs, validity dates, identity binding (the ID must be the certificate's subject DN or one
/// of its subjectAltNames), and the signature itself.
pub trait PeerVerifier: Send + Sync + fmt::Debug {
    /// Checks `auth` and returns `Ok(())` only when every check passed.
    fn verify(&self, auth: &PeerAuth<'_>) -> Result<(), AuthError>;

    /// CERTREQ data to send: concatenated SHA-1 hashes of the trusted CAs' SubjectPublicKeyInfo
    /// (RFC 7296 §3.7). Empty sends no CERTREQ.
    fn certreq(&self) -> Vec<u8> {
        Vec::new()
    }
}

/// Produces our signature AUTH payload and the certificates to send with it.
pub trait LocalSigner: Send + Sync + fmt::Debug {
    /// The identity to use when `local.id` is not configured (the certificate's subject DN).
    fn default_identity(&self) -> Option<Identity>;

    /// Our certificates (X.509 DER), end-entity first, to send as CERT payloads.
    fn certificates(&self) -> Vec<Vec<u8>>;

    /// Signs `octets`. `peer_hashes` is the peer's `SIGNATURE_HASH_ALGORITHMS` list (empty if
    /// it sent none, then a classic method is used). Returns the AUTH method and data.
    fn sign(&self, octets: &[u8], peer_hashes: &[u16]) -> Result<(AuthMethod, Vec<u8>), AuthError>;
}

/// Runs a [`PeerVerifier`] and turns success into the proof.
pub fn verify_signature(
    verifier: &dyn PeerVerifier,
    auth: &PeerAuth<'_>,
) -> Result<AuthVerified, AuthError> {
    verifier.verify(auth)?;
    Ok(AuthVerified { peer_id: auth.id.clone(), method: auth.method, _private: () })
}

/// Whether `method` is one of the signature methods.
pub fn is_signature(method: AuthMethod) -> bool {
    matches!(
        method,
        AuthMethod::RSA_DIGITAL_SIGNATURE
            | AuthMethod::ECDSA_SHA256_P256
            | AuthMethod::ECDSA_SHA384_P384
            | AuthMethod::ECDSA_SHA512_P521
            | AuthMethod::DIGITAL_SIGNATURE
    )
}

/// An identity type a PSK lookup can fall back on: addresses are also tried as text.
pub fn is_address(ty: IdType) -> bool {
    matches!(ty, IdType::ID_IPV4_ADDR | IdType::ID_IPV6_ADDR)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::crypto::test_provider::TEST_PRF;

    #[test]
    fn psk_auth_verifies_only_with_the_same_secret() {
        let octets =
            signed_octets(&TEST_PRF, b"msg1", b"nonce", b"skp", &id_body(&Identity::fqdn("moon")))
                .unwrap();
        let auth = psk_auth(&TEST_PRF, b"secret", &octets).unwrap();
        assert!(
            verify_psk(&TEST_PRF, b"secret", &octets, auth.expose(), Identity::fqdn("moon"))
                .is_ok()
        );
        assert_eq!(
            verify_psk(&TEST_PRF, b"secreT", &octets, auth.expose(), Identity::fqdn("moon"))
                .unwrap_err(),
            AuthError::PskMismatch
        );
        assert!(verify_psk(&TEST_PRF, b"secret", &octets, &[], Identity::fqdn("moon")).is_err());
    }

    #[test]
    fn signed_octets_follow_rfc7296_2_15() {
        let id = Identity::fqdn("a");
        let body = id_body(&id);
        assert_eq!(body, [2, 0, 0, 0, b'a']);
        let octets = signed_octets(&TEST_PRF, b"M", b"N", b"K", &body).unwrap();
        let mac = TEST_PRF.prf(b"K", &body).unwrap();
        assert_eq!(&octets[..2], b"MN");
        assert_eq!(&octets[2..], mac.expose());
    }
}
