//! MODP groups 14/15/16 (RFC 3526) with `crypto-bigint`.
//!
//! The private exponent and the shared secret only ever go through `BoxedMontyForm::pow`, a
//! constant-time Montgomery exponentiation over the full exponent width. Range checks are
//! variable-time, but they only look at the peer's public value.

use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Odd};
use ferroswan_proto::crypto::{CryptoError, KeGroup, KeSecret, SecretBytes, SecureRandom};
use ferroswan_proto::wire::KeId;
use zeroize::{Zeroize, Zeroizing};

use super::primes;

/// A MODP group with generator 2 (RFC 3526).
#[derive(Clone, Copy, Debug)]
pub(super) struct ModpGroup {
    id: KeId,
    prime: &'static [u8],
}

pub(super) static MODP_2048: ModpGroup =
    ModpGroup { id: KeId::MODP_2048, prime: &primes::MODP_2048 };
pub(super) static MODP_3072: ModpGroup =
    ModpGroup { id: KeId::MODP_3072, prime: &primes::MODP_3072 };
pub(super) static MODP_4096: ModpGroup =
    ModpGroup { id: KeId::MODP_4096, prime: &primes::MODP_4096 };

impl ModpGroup {
    fn bits(&self) -> u32 {
        // The primes are 256, 384 and 512 bytes: the product always fits.
        u32::try_from(self.prime.len() * 8).unwrap_or(u32::MAX)
    }

    fn uint(&self, be: &[u8]) -> Result<BoxedUint, CryptoError> {
        BoxedUint::from_be_slice(be, self.bits()).map_err(|_| CryptoError::InvalidPublicValue)
    }

    fn params(&self) -> Result<BoxedMontyParams, CryptoError> {
        let p = self.uint(self.prime).map_err(|_| CryptoError::Internal)?;
        let p = Odd::new(p).into_option().ok_or(CryptoError::Internal)?;
        Ok(BoxedMontyParams::new(p))
    }

    /// `base^exponent mod p` as a big-endian byte string of the prime's length.
    fn pow(
        &self,
        params: &BoxedMontyParams,
        base: BoxedUint,
        exponent: &BoxedUint,
    ) -> Zeroizing<Vec<u8>> {
        let mut base = BoxedMontyForm::new(base, params);
        let mut result = base.pow(exponent);
        let mut value = result.retrieve();
        let bytes = Zeroizing::new(value.to_be_bytes().into_vec());
        base.zeroize();
        result.zeroize();
        value.zeroize();
        bytes
    }

    /// Builds the secret from a big-endian private exponent of the prime's length.
    pub(super) fn secret_from_exponent(&self, exponent: &[u8]) -> Result<ModpSecret, CryptoError> {
        if exponent.len() != self.prime.len() {
            return Err(CryptoError::BadKeyLength);
        }
        let params = self.params()?;
        let exponent = self.uint(exponent).map_err(|_| CryptoError::BadKeyLength)?;
        let generator =
            BoxedUint::from_be_slice(&[2], self.bits()).map_err(|_| CryptoError::Internal)?;
        let public = self.pow(&params, generator, &exponent);
        if public.len() != self.prime.len() {
            return Err(CryptoError::Internal);
        }
        Ok(ModpSecret { group: *self, params, exponent, public: public.to_vec() })
    }
}

impl KeGroup for ModpGroup {
    fn id(&self) -> KeId {
        self.id
    }

    fn public_len(&self) -> usize {
        self.prime.len()
    }

    fn generate(&self, rng: &dyn SecureRandom) -> Result<Box<dyn KeSecret>, CryptoError> {
        let mut exponent = Zeroizing::new(vec![0u8; self.prime.len()]);
        rng.fill(&mut exponent)?;
        // Clear the top byte so the exponent is below p (whose top 64 bits are all ones); the
        // remaining 8 bits fewer than the prime are far above the 2x-strength exponent that
        // RFC 3526 §8 calls sufficient.
        if let Some(top) = exponent.first_mut() {
            *top = 0;
        }
        Ok(Box::new(self.secret_from_exponent(&exponent)?))
    }
}

/// An ephemeral MODP private exponent, zeroized on drop.
pub(super) struct ModpSecret {
    group: ModpGroup,
    params: BoxedMontyParams,
    exponent: BoxedUint,
    public: Vec<u8>,
}

impl Drop for ModpSecret {
    fn drop(&mut self) {
        self.exponent.zeroize();
    }
}

impl KeSecret for ModpSecret {
    fn id(&self) -> KeId {
        self.group.id
    }

    fn public_value(&self) -> &[u8] {
        &self.public
    }

    fn agree(&self, peer_public: &[u8]) -> Result<SecretBytes, CryptoError> {
        if peer_public.len() != self.group.prime.len() {
            return Err(CryptoError::InvalidPublicValue);
        }
        let peer = self.group.uint(peer_public)?;
        let p = self.group.uint(self.group.prime).map_err(|_| CryptoError::Internal)?;
        let one = BoxedUint::one_with_precision(self.group.bits());
        let p_minus_1 = p.wrapping_sub(&one);
        // 1 < y < p - 1 (RFC 6989 §2.1): 0, 1 and p - 1 force the shared secret into a
        // subgroup of order at most 2; values ≥ p are not residues at all.
        if peer <= one || peer >= p_minus_1 {
            return Err(CryptoError::InvalidPublicValue);
        }
        let shared = self.group.pow(&self.params, peer, &self.exponent);
        Ok(SecretBytes::from(shared.as_slice()))
    }
}
