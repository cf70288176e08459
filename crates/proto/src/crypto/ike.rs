//! IKEv2 provider traits: pseudorandom functions (Transform Type 2) and key exchange methods
//! (Transform Type 4).
//!
//! A [`PrfProvider`] hands out a [`Prf`] per [`PrfId`]; the key schedule in
//! [`crate::crypto::keys`] is built on that trait alone. A [`KeProvider`] hands out a
//! [`KeGroup`] per [`KeId`]; [`KeGroup::generate`] makes an ephemeral [`KeSecret`] whose
//! [`KeSecret::public_value`] goes into the KE payload and whose [`KeSecret::agree`] turns the
//! peer's KE payload into the shared secret `g^ir`.

use crate::wire::{KeId, PrfId};

use super::{CryptoError, SecretBytes, SecureRandom};

/// Makes [`Prf`]s.
pub trait PrfProvider: Send + Sync {
    /// The PRF for `id`, or `None` if this provider does not implement it.
    fn prf(&self, id: PrfId) -> Option<&'static dyn Prf>;

    /// SHA-1 of `data`, for the NAT_DETECTION_*_IP notifications (RFC 7296 §2.23) and
    /// CERTREQ authority hashes (§3.7), where the RFC fixes the hash. Never used for
    /// anything that needs collision resistance.
    fn sha1(&self, data: &[u8]) -> Result<[u8; 20], CryptoError>;

    /// Whether this provider implements `id`.
    fn supports(&self, id: PrfId) -> bool {
        self.prf(id).is_some()
    }
}

/// An IKEv2 pseudorandom function (RFC 7296 §2.13), such as HMAC-SHA-256 (RFC 4868).
pub trait Prf: Send + Sync {
    /// Which transform this is.
    fn id(&self) -> PrfId;

    /// Length of one output block in bytes (the hash length for the HMAC PRFs).
    fn output_len(&self) -> usize;

    /// The preferred key length in bytes: the length of `SK_d`, `SK_pi` and `SK_pr`
    /// (RFC 7296 §2.14). For the HMAC PRFs this is the output length (RFC 4868 §2.1.2).
    fn key_len(&self) -> usize {
        self.output_len()
    }

    /// `Some(n)` for a PRF whose key has a fixed length of `n` bytes (AES-XCBC-PRF-128,
    /// AES-CMAC-PRF-128: 16), `None` for a PRF that takes a key of any length (the HMAC PRFs).
    /// [`crate::crypto::keys::skeyseed`] uses it to build the key from the nonces
    /// (RFC 7296 §2.14).
    fn fixed_key_len(&self) -> Option<usize> {
        None
    }

    /// `prf(key, data)`: one output block of [`Prf::output_len`] bytes.
    fn prf(&self, key: &[u8], data: &[u8]) -> Result<SecretBytes, CryptoError>;
}

/// Makes [`KeGroup`]s.
pub trait KeProvider: Send + Sync {
    /// The key exchange method `id`, or `None` if this provider does not implement it.
    fn group(&self, id: KeId) -> Option<&'static dyn KeGroup>;

    /// Whether this provider implements `id`.
    fn supports(&self, id: KeId) -> bool {
        self.group(id).is_some()
    }
}

/// A key exchange method (Diffie-Hellman group) as IKEv2 negotiates it.
pub trait KeGroup: Send + Sync {
    /// Which transform this is.
    fn id(&self) -> KeId;

    /// Length of the public value in the KE payload ([`ke_public_len`]).
    fn public_len(&self) -> usize;

    /// Makes a fresh ephemeral private key, drawing its randomness from `rng`.
    fn generate(&self, rng: &dyn SecureRandom) -> Result<Box<dyn KeSecret>, CryptoError>;
}

/// An ephemeral key exchange private key. Implementations zeroize it on drop.
pub trait KeSecret: Send + Sync {
    /// Which key exchange method this key belongs to.
    fn id(&self) -> KeId;

    /// The public value as carried in the KE payload's Key Exchange Data:
    ///
    /// - MODP groups: `g^x mod p`, big-endian, left-padded with zeros to the length of the prime
    ///   (RFC 7296 §3.4, RFC 3526).
    /// - ECP groups: `x ‖ y`, each coordinate big-endian and padded to the field size, with no
    ///   point-format octet (RFC 5903 §7).
    /// - Curve25519: the 32-byte u-coordinate (RFC 8031 §3.1).
    fn public_value(&self) -> &[u8];

    /// Computes the shared secret `g^ir` from the peer's public value (RFC 7296 §2.14):
    ///
    /// - MODP: `g^xy mod p`, big-endian, padded to the length of the prime (RFC 7296 §2.14).
    /// - ECP: the x coordinate of the shared point only (RFC 5903 §7).
    /// - Curve25519: the 32-byte X25519 output (RFC 8031 §3.1).
    ///
    /// Fails with [`CryptoError::InvalidPublicValue`] for a peer value of the wrong length, an
    /// ECP point not on the curve, a MODP value `≤ 1` or `≥ p − 1` (RFC 7296 §5, RFC 6989), or
    /// an X25519 result of all zeros (RFC 8031 §2.3).
    fn agree(&self, peer_public: &[u8]) -> Result<SecretBytes, CryptoError>;
}

/// Length in bytes of the Key Exchange Data for `id` (the public value, also the length of
/// the shared secret for MODP groups), or `None` for an unknown method or [`KeId::NONE`].
pub fn ke_public_len(id: KeId) -> Option<usize> {
    match id {
        KeId::MODP_1024 => Some(128),
        KeId::MODP_1536 => Some(192),
        KeId::MODP_2048 => Some(256),
        KeId::MODP_3072 => Some(384),
        KeId::MODP_4096 => Some(512),
        KeId::MODP_6144 => Some(768),
        KeId::MODP_8192 => Some(1024),
        KeId::ECP_256 => Some(64),
        KeId::ECP_384 => Some(96),
        KeId::ECP_521 => Some(132),
        KeId::CURVE25519 => Some(32),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_value_lengths_follow_the_rfcs() {
        assert_eq!(ke_public_len(KeId::MODP_2048), Some(256));
        assert_eq!(ke_public_len(KeId::ECP_521), Some(132));
        assert_eq!(ke_public_len(KeId::CURVE25519), Some(32));
        assert_eq!(ke_public_len(KeId::NONE), None);
    }
}
