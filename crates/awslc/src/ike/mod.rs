//! IKEv2 PRFs and key exchange methods: the [`PrfProvider`] and [`KeProvider`] of this crate.
//!
//! - PRFs: HMAC-SHA1, HMAC-SHA-256/384/512 (RFC 2104, RFC 4868) from aws-lc-rs `hmac`.
//! - ECP groups 19/20/21 (RFC 5903) and Curve25519 (RFC 8031) from aws-lc-rs `agreement`.
//! - MODP groups 14/15/16 (RFC 3526) with `crypto-bigint` constant-time Montgomery
//!   exponentiation, because AWS-LC's aws-lc-rs bindings have no finite-field Diffie-Hellman.

use ferroswan_proto::crypto::{CryptoError, KeGroup, KeProvider, KeSecret, Prf, PrfProvider};
use ferroswan_proto::wire::{KeId, PrfId};

mod ecdh;
mod modp;
mod prf;
mod primes;

/// The aws-lc-rs [`PrfProvider`].
#[derive(Debug)]
pub(crate) struct AwsLcPrf;

impl PrfProvider for AwsLcPrf {
    fn prf(&self, id: PrfId) -> Option<&'static dyn Prf> {
        match id {
            PrfId::PRF_HMAC_SHA1 => Some(&prf::HMAC_SHA1),
            PrfId::PRF_HMAC_SHA2_256 => Some(&prf::HMAC_SHA2_256),
            PrfId::PRF_HMAC_SHA2_384 => Some(&prf::HMAC_SHA2_384),
            PrfId::PRF_HMAC_SHA2_512 => Some(&prf::HMAC_SHA2_512),
            _ => None,
        }
    }

    fn sha1(&self, data: &[u8]) -> Result<[u8; 20], CryptoError> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data);
        digest.as_ref().try_into().map_err(|_| CryptoError::Internal)
    }
}

/// The [`KeProvider`] of this crate.
#[derive(Debug)]
pub(crate) struct AwsLcKe;

impl KeProvider for AwsLcKe {
    fn group(&self, id: KeId) -> Option<&'static dyn KeGroup> {
        match id {
            KeId::MODP_2048 => Some(&modp::MODP_2048),
            KeId::MODP_3072 => Some(&modp::MODP_3072),
            KeId::MODP_4096 => Some(&modp::MODP_4096),
            KeId::ECP_256 => Some(&ecdh::ECP_256),
            KeId::ECP_384 => Some(&ecdh::ECP_384),
            KeId::ECP_521 => Some(&ecdh::ECP_521),
            KeId::CURVE25519 => Some(&ecdh::CURVE25519),
            _ => None,
        }
    }
}

/// A key exchange secret from a known private value, for known-answer tests.
pub(crate) fn from_private(id: KeId, private: &[u8]) -> Result<Box<dyn KeSecret>, CryptoError> {
    let secret: Box<dyn KeSecret> = match id {
        KeId::MODP_2048 => Box::new(modp::MODP_2048.secret_from_exponent(private)?),
        KeId::MODP_3072 => Box::new(modp::MODP_3072.secret_from_exponent(private)?),
        KeId::MODP_4096 => Box::new(modp::MODP_4096.secret_from_exponent(private)?),
        KeId::ECP_256 => Box::new(ecdh::ECP_256.secret_from_scalar(private)?),
        KeId::ECP_384 => Box::new(ecdh::ECP_384.secret_from_scalar(private)?),
        KeId::ECP_521 => Box::new(ecdh::ECP_521.secret_from_scalar(private)?),
        KeId::CURVE25519 => Box::new(ecdh::CURVE25519.secret_from_scalar(private)?),
        _ => return Err(CryptoError::Unsupported),
    };
    Ok(secret)
}

/// The prime of a MODP group of this crate.
pub(crate) fn modp_prime(id: KeId) -> Option<&'static [u8]> {
    match id {
        KeId::MODP_2048 => Some(&primes::MODP_2048),
        KeId::MODP_3072 => Some(&primes::MODP_3072),
        KeId::MODP_4096 => Some(&primes::MODP_4096),
        _ => None,
    }
}
