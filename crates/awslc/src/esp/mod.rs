//! ESP ciphers: the [`EspProvider`] of this crate and the suite dispatch.
//!
//! Two cipher shapes cover every supported suite: [`aead::AeadCipher`] (AES-GCM-16,
//! ChaCha20-Poly1305) and [`split::SplitCipher`] (an encryption transform followed by a separate
//! HMAC integrity transform, "encrypt then MAC" as RFC 4303 §3.3.2 orders it).

use ferroswan_proto::crypto::{CryptoError, EspCipher, EspKeys, EspProvider, EspSuite};
use ferroswan_proto::wire::{EncrId, IntegId};

mod aead;
mod integ;
mod split;

/// The aws-lc-rs [`EspProvider`]; `legacy` adds 3DES-CBC and HMAC-MD5-96.
#[derive(Debug)]
pub(crate) struct AwsLcEsp {
    /// Whether the legacy transforms are offered.
    pub(crate) legacy: bool,
}

impl AwsLcEsp {
    fn encr_supported(&self, encr: EncrId) -> bool {
        match encr {
            EncrId::ENCR_AES_GCM_16
            | EncrId::ENCR_CHACHA20_POLY1305
            | EncrId::ENCR_AES_CBC
            | EncrId::ENCR_AES_CTR
            | EncrId::ENCR_NULL => true,
            EncrId::ENCR_3DES => self.legacy,
            _ => false,
        }
    }

    fn integ_supported(&self, integ: IntegId) -> bool {
        match integ {
            IntegId::NONE
            | IntegId::AUTH_HMAC_SHA1_96
            | IntegId::AUTH_HMAC_SHA2_256_128
            | IntegId::AUTH_HMAC_SHA2_384_192
            | IntegId::AUTH_HMAC_SHA2_512_256 => true,
            IntegId::AUTH_HMAC_MD5_96 => self.legacy,
            _ => false,
        }
    }
}

impl EspProvider for AwsLcEsp {
    fn supports(&self, suite: &EspSuite) -> bool {
        // `validate` checks key sizes and that exactly the non-AEADs carry an integrity
        // transform (and that NULL never goes without one).
        suite.validate().is_ok()
            && self.encr_supported(suite.encr)
            && self.integ_supported(suite.integ)
    }

    fn new_cipher(
        &self,
        suite: &EspSuite,
        keys: &EspKeys<'_>,
    ) -> Result<Box<dyn EspCipher>, CryptoError> {
        if !self.supports(suite) {
            return Err(CryptoError::Unsupported);
        }
        if Some(keys.encr.len()) != suite.encr_keymat_len()
            || Some(keys.integ.len()) != suite.integ_keymat_len()
        {
            return Err(CryptoError::BadKeyLength);
        }
        if suite.is_aead() {
            Ok(Box::new(aead::AeadCipher::new(*suite, keys.encr)?))
        } else {
            Ok(Box::new(split::SplitCipher::new(*suite, keys.encr, keys.integ)?))
        }
    }
}

#[cfg(test)]
mod tests;
