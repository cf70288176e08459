//! X.509 certificate authentication for IKEv2 (RFC 7296 §2.15, RFC 7427, RFC 4754, RFC 8420).
//!
//! The IKE core asks two traits of `ferroswan_proto::ikev2::auth`; this module implements them
//! over swanctl's credentials:
//!
//! - [`CredentialStore`]: loads `x509/`, `x509ca/`, `private/`, `rsa/`, `ecdsa/`, `pkcs8/` of a
//!   swanctl configuration directory (PEM or DER) and the `secrets` key files, then builds a
//!   [`CertSigner`] for a `local` round ([`CredentialStore::signer_for`]) and a
//!   [`CertVerifier`] for a `remote` round ([`CredentialStore::verifier_for`]).
//! - [`CertSigner`] (`LocalSigner`): RSA, ECDSA P-256/P-384 and Ed25519 keys; RFC 7427
//!   `DIGITAL_SIGNATURE` when the peer sent `SIGNATURE_HASH_ALGORITHMS`, else the classic
//!   methods, choosing as strongSwan 5.9.8 does.
//! - [`CertVerifier`] (`PeerVerifier`): chain to a trusted CA, validity, basicConstraints,
//!   identity binding, then the AUTH signature (RSA PKCS#1 v1.5 and PSS, ECDSA, Ed25519).
//!
//! Every error is one line naming the certificate, file or identity, and what to change.
//!
//! Not supported yet: encrypted private keys (PEM `ENCRYPTED`, PKCS#8 `ENCRYPTED PRIVATE KEY`,
//! so `secrets.*.secret` passphrases are unused), PKCS#12, smartcards, ECDSA P-521 keys of our
//! own (peers' P-521 signatures verify), CRL/OCSP revocation checks, name constraints, policies.
//!
//! # Why `x509-cert`
//!
//! Certificates are parsed with RustCrypto's `x509-cert` (with `der` and `spki`): strict DER
//! (an ambiguous encoding is refused rather than guessed), no unsafe code, no C, typed
//! extensions (basicConstraints, subjectAltName), and a small dependency tree that shares
//! `zeroize` and `subtle` with the rest of the workspace. `x509-parser` is BER-lenient and pulls
//! in `nom`, `asn1-rs`, `der-parser` and `time`. All signature checks use aws-lc-rs, which the
//! workspace already uses for IKE and ESP.

mod alg;
mod cert;
mod key;
mod signer;
mod store;
mod verifier;

use std::path::PathBuf;

pub use cert::{AltName, Certificate};
pub use key::PrivateKey;
pub use signer::CertSigner;
pub use store::CredentialStore;
pub use verifier::CertVerifier;

/// Why credentials could not be loaded or a signer or verifier not built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A configuration round that cannot work as written.
    #[error("{place}: {reason}")]
    Config {
        /// `file:line (section)` of the round.
        place: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A file that cannot be read or parsed.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate whose private key was not found among the loaded keys.
    #[error(
        "no private key for certificate {} (\"{subject}\"): put its key into private/, rsa/, \
         ecdsa/ or pkcs8/ (PEM or DER, unencrypted) or name it in secrets.private<suffix>.file",
        path.display()
    )]
    NoPrivateKey {
        /// The certificate file.
        path: PathBuf,
        /// Its subject DN.
        subject: String,
    },
}

mod util {
    use aws_lc_rs::digest;

    /// Lowercase hex, for messages.
    pub(crate) fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// SHA-1, for CERTREQ (RFC 7296 §3.7 names it).
    pub(crate) fn sha1(data: &[u8]) -> Vec<u8> {
        digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, data).as_ref().to_vec()
    }
}

#[cfg(test)]
mod tests;
