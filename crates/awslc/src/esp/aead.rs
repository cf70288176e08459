//! Combined-mode ciphers: AES-GCM with a 16-byte ICV (RFC 4106) and ChaCha20-Poly1305
//! (RFC 7634).

use core::fmt;

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ferroswan_proto::crypto::{CryptoError, EspAad, EspCipher, EspSuite};
use ferroswan_proto::wire::EncrId;
use zeroize::Zeroizing;

/// Length of the salt at the end of the AEAD key material (RFC 4106 §8.1, RFC 7634 §4).
const SALT_LEN: usize = 4;
/// Length of the explicit IV in each packet (RFC 4106 §3.1, RFC 7634 §2).
const IV_LEN: usize = 8;
/// ICV length; AWS-LC's AEAD tags are always 16 bytes.
const TAG_LEN: usize = 16;
/// Padding alignment for the stream-like AEADs (RFC 4106 §3.2, RFC 7634 §3).
const BLOCK_LEN: usize = 4;

/// An AEAD ESP cipher: nonce = salt ‖ explicit IV, AAD = SPI ‖ (ESN high) ‖ sequence number.
pub(crate) struct AeadCipher {
    suite: EspSuite,
    key: LessSafeKey,
    salt: Zeroizing<[u8; SALT_LEN]>,
}

impl AeadCipher {
    /// Builds the cipher from `keymat` = key ‖ 4-byte salt (length already checked).
    pub(crate) fn new(suite: EspSuite, keymat: &[u8]) -> Result<Self, CryptoError> {
        let key_len = keymat.len().checked_sub(SALT_LEN).ok_or(CryptoError::BadKeyLength)?;
        let (key, salt) = keymat.split_at(key_len);
        let algorithm = match (suite.encr, key_len) {
            (EncrId::ENCR_AES_GCM_16, 16) => &aead::AES_128_GCM,
            (EncrId::ENCR_AES_GCM_16, 24) => &aead::AES_192_GCM,
            (EncrId::ENCR_AES_GCM_16, 32) => &aead::AES_256_GCM,
            (EncrId::ENCR_CHACHA20_POLY1305, 32) => &aead::CHACHA20_POLY1305,
            (EncrId::ENCR_AES_GCM_16 | EncrId::ENCR_CHACHA20_POLY1305, _) => {
                return Err(CryptoError::BadKeyLength);
            }
            _ => return Err(CryptoError::Unsupported),
        };
        let key = UnboundKey::new(algorithm, key).map_err(|_| CryptoError::BadKeyLength)?;
        let salt: [u8; SALT_LEN] = salt.try_into().map_err(|_| CryptoError::BadKeyLength)?;
        Ok(Self { suite, key: LessSafeKey::new(key), salt: Zeroizing::new(salt) })
    }

    /// The 12-byte nonce: salt ‖ explicit IV.
    fn nonce(&self, iv: &[u8]) -> Result<Nonce, CryptoError> {
        let iv: &[u8; IV_LEN] = iv.try_into().map_err(|_| CryptoError::BadLength)?;
        let [s0, s1, s2, s3] = *self.salt;
        let [i0, i1, i2, i3, i4, i5, i6, i7] = *iv;
        Ok(Nonce::assume_unique_for_key([s0, s1, s2, s3, i0, i1, i2, i3, i4, i5, i6, i7]))
    }
}

impl fmt::Debug for AeadCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AeadCipher").field("suite", &self.suite).finish_non_exhaustive()
    }
}

impl EspCipher for AeadCipher {
    fn iv_len(&self) -> usize {
        IV_LEN
    }

    fn block_len(&self) -> usize {
        BLOCK_LEN
    }

    fn icv_len(&self) -> usize {
        TAG_LEN
    }

    fn generate_iv(&self, seq: u64, iv: &mut [u8]) -> Result<(), CryptoError> {
        // The 64-bit sequence number never repeats under one key (RFC 4106 §3.1, RFC 7634 §2).
        let iv: &mut [u8; IV_LEN] = iv.try_into().map_err(|_| CryptoError::BadLength)?;
        *iv = seq.to_be_bytes();
        Ok(())
    }

    fn seal(
        &self,
        aad: &EspAad,
        iv: &[u8],
        payload: &mut [u8],
        icv: &mut [u8],
    ) -> Result<(), CryptoError> {
        let mut aad_buf = [0u8; 12];
        let aad_len = aad.write_aead_aad(&mut aad_buf);
        let aad_bytes = aad_buf.get(..aad_len).ok_or(CryptoError::Internal)?;
        self.seal_ike(aad_bytes, iv, payload, icv)
    }

    fn open(
        &self,
        aad: &EspAad,
        iv: &[u8],
        payload: &mut [u8],
        icv: &[u8],
    ) -> Result<(), CryptoError> {
        let mut aad_buf = [0u8; 12];
        let aad_len = aad.write_aead_aad(&mut aad_buf);
        let aad_bytes = aad_buf.get(..aad_len).ok_or(CryptoError::Internal)?;
        self.open_ike(aad_bytes, iv, payload, icv)
    }

    fn seal_ike(
        &self,
        aad: &[u8],
        iv: &[u8],
        payload: &mut [u8],
        icv: &mut [u8],
    ) -> Result<(), CryptoError> {
        let nonce = self.nonce(iv)?;
        let icv: &mut [u8; TAG_LEN] = icv.try_into().map_err(|_| CryptoError::BadLength)?;
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(aad), payload)
            .map_err(|_| CryptoError::Internal)?;
        let tag: &[u8; TAG_LEN] = tag.as_ref().try_into().map_err(|_| CryptoError::Internal)?;
        *icv = *tag;
        Ok(())
    }

    fn open_ike(
        &self,
        aad: &[u8],
        iv: &[u8],
        payload: &mut [u8],
        icv: &[u8],
    ) -> Result<(), CryptoError> {
        let nonce = self.nonce(iv)?;
        if icv.len() != TAG_LEN {
            return Err(CryptoError::BadLength);
        }
        // AWS-LC verifies the tag in constant time; on failure it clears `payload` rather than
        // leaving unauthenticated plaintext in it.
        self.key
            .open_in_place_separate_tag(nonce, Aad::from(aad), icv, payload)
            .map(|_| ())
            .map_err(|_| CryptoError::BadIcv)
    }
}
