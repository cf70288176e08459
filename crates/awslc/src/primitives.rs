//! Raw primitives for known-answer tests. Not a supported API: hidden from the docs and free to
//! change.
//!
//! It exists because the RFC 2202 and RFC 4231 HMAC vectors use key lengths (4, 20, 25, 80, 131
//! bytes) that an ESP integrity transform never takes (its key is exactly the hash length,
//! RFC 2404 §3, RFC 4868 §2.1.1), so they cannot run through [`EspProvider`]; the cases whose
//! keys fit are tested through the ESP API as well.
//!
//! [`EspProvider`]: ferroswan_proto::crypto::EspProvider

use aws_lc_rs::hmac as lc_hmac;
use ferroswan_proto::crypto::{CryptoError, KeSecret};
use ferroswan_proto::wire::{IntegId, KeId};
use hmac::{Hmac, Mac};
use md5::Md5;

/// The full, untruncated HMAC of `data` under `key` (any length), with the hash that the
/// integrity transform `integ` is built on (MD5, SHA-1, SHA-256, SHA-384 or SHA-512).
pub fn hmac(integ: IntegId, key: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let algorithm = match integ {
        IntegId::AUTH_HMAC_MD5_96 => {
            let mut mac =
                Hmac::<Md5>::new_from_slice(key).map_err(|_| CryptoError::BadKeyLength)?;
            mac.update(data);
            return Ok(mac.finalize().into_bytes().to_vec());
        }
        IntegId::AUTH_HMAC_SHA1_96 => lc_hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        IntegId::AUTH_HMAC_SHA2_256_128 => lc_hmac::HMAC_SHA256,
        IntegId::AUTH_HMAC_SHA2_384_192 => lc_hmac::HMAC_SHA384,
        IntegId::AUTH_HMAC_SHA2_512_256 => lc_hmac::HMAC_SHA512,
        _ => return Err(CryptoError::Unsupported),
    };
    Ok(lc_hmac::sign(&lc_hmac::Key::new(algorithm, key), data).as_ref().to_vec())
}

/// A key exchange secret built from a known private value instead of fresh randomness: the
/// big-endian scalar for the ECP groups (RFC 5903 §8), the RFC 7748 scalar bytes for
/// Curve25519, the big-endian exponent (as long as the prime) for the MODP groups.
pub fn ke_from_private(id: KeId, private: &[u8]) -> Result<Box<dyn KeSecret>, CryptoError> {
    crate::ike::from_private(id, private)
}

/// The RFC 3526 prime of a MODP group this crate implements, big-endian.
pub fn modp_prime(id: KeId) -> Option<&'static [u8]> {
    crate::ike::modp_prime(id)
}
