//! HMAC PRFs (RFC 2104 with SHA-1, RFC 4868 with SHA-2) over aws-lc-rs `hmac`.

use aws_lc_rs::hmac;
use ferroswan_proto::crypto::{CryptoError, Prf, SecretBytes};
use ferroswan_proto::wire::PrfId;

/// An HMAC PRF. The key may have any length (RFC 2104 §2 hashes longer keys and pads shorter
/// ones), so IKEv2's `Ni | Nr` SKEYSEED key works as is.
#[derive(Debug)]
pub(super) struct HmacPrf {
    id: PrfId,
    algorithm: hmac::Algorithm,
    len: usize,
}

pub(super) static HMAC_SHA1: HmacPrf =
    HmacPrf { id: PrfId::PRF_HMAC_SHA1, algorithm: hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, len: 20 };
pub(super) static HMAC_SHA2_256: HmacPrf =
    HmacPrf { id: PrfId::PRF_HMAC_SHA2_256, algorithm: hmac::HMAC_SHA256, len: 32 };
pub(super) static HMAC_SHA2_384: HmacPrf =
    HmacPrf { id: PrfId::PRF_HMAC_SHA2_384, algorithm: hmac::HMAC_SHA384, len: 48 };
pub(super) static HMAC_SHA2_512: HmacPrf =
    HmacPrf { id: PrfId::PRF_HMAC_SHA2_512, algorithm: hmac::HMAC_SHA512, len: 64 };

impl Prf for HmacPrf {
    fn id(&self) -> PrfId {
        self.id
    }

    fn output_len(&self) -> usize {
        self.len
    }

    fn prf(&self, key: &[u8], data: &[u8]) -> Result<SecretBytes, CryptoError> {
        let tag = hmac::sign(&hmac::Key::new(self.algorithm, key), data);
        if tag.as_ref().len() != self.len {
            return Err(CryptoError::Internal);
        }
        Ok(SecretBytes::from(tag.as_ref()))
    }
}
