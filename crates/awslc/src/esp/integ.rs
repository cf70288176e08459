//! HMAC integrity transforms for the non-AEAD suites (RFC 2403, RFC 2404, RFC 4868).

use core::fmt;

use aws_lc_rs::hmac as lc_hmac;
use ferroswan_proto::crypto::{CryptoError, EspAad};
use ferroswan_proto::wire::IntegId;
use hmac::{Hmac, Mac};
use md5::Md5;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The longest truncated ICV we produce (HMAC-SHA-512-256).
const MAX_ICV_LEN: usize = 32;
/// HMAC-MD5-96 key length (RFC 2403 §3).
const MD5_KEY_LEN: usize = 16;

/// A keyed integrity transform.
// One per SA, already behind the `Box<dyn EspCipher>`; boxing a variant would only add a
// pointer chase per packet.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Integ {
    /// HMAC-SHA-1/-256/-384/-512, truncated to `icv_len` bytes.
    AwsLc {
        /// The HMAC key (AWS-LC cleanses its key schedule on drop).
        key: lc_hmac::Key,
        /// Truncated ICV length.
        icv_len: usize,
    },
    /// HMAC-MD5-96 (legacy), computed with RustCrypto because AWS-LC has no MD5.
    Md5 {
        /// The raw key, zeroized on drop.
        key: Zeroizing<[u8; MD5_KEY_LEN]>,
    },
}

impl Integ {
    /// Keys the integrity transform `id` (key length already checked by the caller; checked
    /// again here).
    pub(crate) fn new(id: IntegId, key: &[u8]) -> Result<Self, CryptoError> {
        let (algorithm, icv_len) = match id {
            IntegId::AUTH_HMAC_SHA1_96 => (lc_hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, 12),
            IntegId::AUTH_HMAC_SHA2_256_128 => (lc_hmac::HMAC_SHA256, 16),
            IntegId::AUTH_HMAC_SHA2_384_192 => (lc_hmac::HMAC_SHA384, 24),
            IntegId::AUTH_HMAC_SHA2_512_256 => (lc_hmac::HMAC_SHA512, 32),
            IntegId::AUTH_HMAC_MD5_96 => {
                let key: [u8; MD5_KEY_LEN] =
                    key.try_into().map_err(|_| CryptoError::BadKeyLength)?;
                return Ok(Self::Md5 { key: Zeroizing::new(key) });
            }
            _ => return Err(CryptoError::Unsupported),
        };
        // RFC 2404 §3 and RFC 4868 §2.1.1: the key is exactly the hash output length.
        if key.len() != algorithm.digest_algorithm().output_len {
            return Err(CryptoError::BadKeyLength);
        }
        Ok(Self::AwsLc { key: lc_hmac::Key::new(algorithm, key), icv_len })
    }

    /// Length of the (truncated) ICV.
    pub(crate) fn icv_len(&self) -> usize {
        match self {
            Self::AwsLc { icv_len, .. } => *icv_len,
            Self::Md5 { .. } => 12,
        }
    }

    /// Computes the truncated ICV over ESP header ‖ IV ‖ ciphertext ‖ (ESN high bits)
    /// (RFC 4303 §2.2.1, §3.3.2.1) into `out`, which must be exactly [`Integ::icv_len`] bytes.
    pub(crate) fn compute(
        &self,
        aad: &EspAad,
        iv: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<(), CryptoError> {
        let header = aad.header();
        let seq_hi = aad.seq_hi();
        let seq_hi = seq_hi.as_ref().map_or(&[][..], |hi| &hi[..]);
        self.compute_parts(&header, iv, ciphertext, seq_hi, out)
    }

    /// Computes the truncated ICV over `header ‖ iv ‖ ciphertext ‖ trailer` into `out`. IKE's
    /// Encrypted payload uses it with the message up to the IV as `header` and no trailer
    /// (RFC 7296 §3.14).
    pub(crate) fn compute_parts(
        &self,
        header: &[u8],
        iv: &[u8],
        ciphertext: &[u8],
        seq_hi: &[u8],
        out: &mut [u8],
    ) -> Result<(), CryptoError> {
        if out.len() != self.icv_len() {
            return Err(CryptoError::BadLength);
        }
        match self {
            Self::AwsLc { key, .. } => {
                let mut ctx = lc_hmac::Context::with_key(key);
                ctx.update(header);
                ctx.update(iv);
                ctx.update(ciphertext);
                ctx.update(seq_hi);
                let tag = ctx.sign();
                let full = tag.as_ref().get(..out.len()).ok_or(CryptoError::Internal)?;
                out.copy_from_slice(full);
            }
            Self::Md5 { key } => {
                let mut mac =
                    Hmac::<Md5>::new_from_slice(&key[..]).map_err(|_| CryptoError::BadKeyLength)?;
                mac.update(header);
                mac.update(iv);
                mac.update(ciphertext);
                mac.update(seq_hi);
                let full = mac.finalize().into_bytes();
                let full = full.get(..out.len()).ok_or(CryptoError::Internal)?;
                out.copy_from_slice(full);
            }
        }
        Ok(())
    }

    /// Checks `icv` against the ICV computed over the packet, in constant time.
    pub(crate) fn verify(
        &self,
        aad: &EspAad,
        iv: &[u8],
        ciphertext: &[u8],
        icv: &[u8],
    ) -> Result<(), CryptoError> {
        if icv.len() != self.icv_len() {
            return Err(CryptoError::BadLength);
        }
        let mut buf = [0u8; MAX_ICV_LEN];
        let expected = buf.get_mut(..icv.len()).ok_or(CryptoError::Internal)?;
        self.compute(aad, iv, ciphertext, expected)?;
        if bool::from(expected.ct_eq(icv)) { Ok(()) } else { Err(CryptoError::BadIcv) }
    }

    /// Checks an IKE Encrypted payload's `icv` over `aad ‖ iv ‖ ciphertext`, in constant time.
    pub(crate) fn verify_ike(
        &self,
        aad: &[u8],
        iv: &[u8],
        ciphertext: &[u8],
        icv: &[u8],
    ) -> Result<(), CryptoError> {
        if icv.len() != self.icv_len() {
            return Err(CryptoError::BadLength);
        }
        let mut buf = [0u8; MAX_ICV_LEN];
        let expected = buf.get_mut(..icv.len()).ok_or(CryptoError::Internal)?;
        self.compute_parts(aad, iv, ciphertext, &[], expected)?;
        if bool::from(expected.ct_eq(icv)) { Ok(()) } else { Err(CryptoError::BadIcv) }
    }
}

impl fmt::Debug for Integ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AwsLc { key, icv_len } => f
                .debug_struct("Integ")
                .field("algorithm", &key.algorithm().digest_algorithm())
                .field("icv_len", icv_len)
                .finish_non_exhaustive(),
            Self::Md5 { .. } => {
                f.debug_struct("Integ").field("algorithm", &"HMAC-MD5-96").finish_non_exhaustive()
            }
        }
    }
}
