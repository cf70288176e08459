//! Encryption followed by a separate HMAC integrity transform: AES-CBC (RFC 3602), AES-CTR
//! (RFC 3686), NULL (RFC 2410) and, in the legacy provider, 3DES-CBC (RFC 2451).

use core::fmt;

use aws_lc_rs::cipher::{
    self, DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey,
};
use aws_lc_rs::iv::FixedLength;
use ferroswan_proto::crypto::{CryptoError, EspAad, EspCipher, EspSuite};
use ferroswan_proto::wire::EncrId;
use zeroize::Zeroizing;

use super::integ::Integ;

/// AES block and CBC IV length (RFC 3602 §2.1, §3).
const AES_BLOCK: usize = 16;
/// 3DES block and CBC IV length (RFC 2451 §2.3).
const DES_BLOCK: usize = 8;
/// AES-CTR explicit IV length (RFC 3686 §3.1).
const CTR_IV_LEN: usize = 8;
/// AES-CTR nonce length at the end of the key material (RFC 3686 §5.1).
const CTR_NONCE_LEN: usize = 4;
/// Padding alignment of the stream-like transforms (RFC 4303 §2.4).
const STREAM_BLOCK: usize = 4;

/// The encryption half of a [`SplitCipher`].
// One per SA, already behind the `Box<dyn EspCipher>`; boxing a variant would only add a
// pointer chase per packet.
#[allow(clippy::large_enum_variant)]
enum Encr {
    /// No encryption (RFC 2410).
    Null,
    /// CBC mode with the block size `block` (AES: 16, 3DES: 8), explicit random IV of the
    /// same size, no padding (the ESP engine pads).
    Cbc { enc: EncryptingKey, dec: DecryptingKey, block: usize },
    /// AES counter mode: counter block = nonce ‖ IV ‖ 32-bit block counter starting at 1
    /// (RFC 3686 §4).
    Ctr { enc: EncryptingKey, nonce: Zeroizing<[u8; CTR_NONCE_LEN]> },
}

/// An ESP cipher made of an encryption transform and an HMAC integrity transform.
pub(crate) struct SplitCipher {
    suite: EspSuite,
    encr: Encr,
    integ: Integ,
}

fn aes_algorithm(key_len: usize) -> Result<&'static cipher::Algorithm, CryptoError> {
    match key_len {
        16 => Ok(&cipher::AES_128),
        24 => Ok(&cipher::AES_192),
        32 => Ok(&cipher::AES_256),
        _ => Err(CryptoError::BadKeyLength),
    }
}

fn unbound(
    algorithm: &'static cipher::Algorithm,
    key: &[u8],
) -> Result<UnboundCipherKey, CryptoError> {
    // Fails only on a wrong length.
    UnboundCipherKey::new(algorithm, key).map_err(|_| CryptoError::BadKeyLength)
}

impl SplitCipher {
    /// Builds the cipher (key lengths already checked against the suite).
    pub(crate) fn new(
        suite: EspSuite,
        encr_key: &[u8],
        integ_key: &[u8],
    ) -> Result<Self, CryptoError> {
        let encr = match suite.encr {
            EncrId::ENCR_NULL if encr_key.is_empty() => Encr::Null,
            EncrId::ENCR_NULL => return Err(CryptoError::BadKeyLength),
            EncrId::ENCR_AES_CBC => {
                let algorithm = aes_algorithm(encr_key.len())?;
                Encr::Cbc {
                    enc: EncryptingKey::cbc(unbound(algorithm, encr_key)?)
                        .map_err(|_| CryptoError::Internal)?,
                    dec: DecryptingKey::cbc(unbound(algorithm, encr_key)?)
                        .map_err(|_| CryptoError::Internal)?,
                    block: AES_BLOCK,
                }
            }
            EncrId::ENCR_3DES => {
                #[allow(deprecated)] // 3DES is deprecated, and offered only by LEGACY_PROVIDER.
                let algorithm = &cipher::DES_EDE3_FOR_LEGACY_USE_ONLY;
                // AWS-LC rejects weak DES keys and key parts that are not pairwise distinct
                // (SP 800-67) when it builds the key schedule; a key from a PRF never is one.
                Encr::Cbc {
                    enc: EncryptingKey::cbc(unbound(algorithm, encr_key)?)
                        .map_err(|_| CryptoError::BadKeyLength)?,
                    dec: DecryptingKey::cbc(unbound(algorithm, encr_key)?)
                        .map_err(|_| CryptoError::BadKeyLength)?,
                    block: DES_BLOCK,
                }
            }
            EncrId::ENCR_AES_CTR => {
                let key_len =
                    encr_key.len().checked_sub(CTR_NONCE_LEN).ok_or(CryptoError::BadKeyLength)?;
                let (key, nonce) = encr_key.split_at(key_len);
                let nonce: [u8; CTR_NONCE_LEN] =
                    nonce.try_into().map_err(|_| CryptoError::BadKeyLength)?;
                Encr::Ctr {
                    enc: EncryptingKey::ctr(unbound(aes_algorithm(key_len)?, key)?)
                        .map_err(|_| CryptoError::Internal)?,
                    nonce: Zeroizing::new(nonce),
                }
            }
            _ => return Err(CryptoError::Unsupported),
        };
        Ok(Self { suite, encr, integ: Integ::new(suite.integ, integ_key)? })
    }

    /// The initial counter block of AES-CTR: nonce ‖ IV ‖ 00000001 (RFC 3686 §4).
    fn ctr_block(
        nonce: &[u8; CTR_NONCE_LEN],
        iv: &[u8],
    ) -> Result<FixedLength<AES_BLOCK>, CryptoError> {
        let iv: &[u8; CTR_IV_LEN] = iv.try_into().map_err(|_| CryptoError::BadLength)?;
        let [n0, n1, n2, n3] = *nonce;
        let [i0, i1, i2, i3, i4, i5, i6, i7] = *iv;
        Ok(FixedLength::from([n0, n1, n2, n3, i0, i1, i2, i3, i4, i5, i6, i7, 0, 0, 0, 1]))
    }

    /// Checks the IV and payload lengths for this cipher.
    fn check_lengths(&self, iv: &[u8], payload: &[u8]) -> Result<(), CryptoError> {
        let ok = match &self.encr {
            Encr::Null => iv.is_empty(),
            Encr::Cbc { block, .. } => iv.len() == *block && payload.len().is_multiple_of(*block),
            Encr::Ctr { .. } => iv.len() == CTR_IV_LEN,
        };
        if ok { Ok(()) } else { Err(CryptoError::BadLength) }
    }
}

/// The CBC IV as the context aws-lc-rs wants (16 bytes for AES, 8 for 3DES).
fn encryption_context(iv: &[u8]) -> Result<EncryptionContext, CryptoError> {
    match iv.len() {
        AES_BLOCK => FixedLength::try_from(iv).map(EncryptionContext::Iv128),
        DES_BLOCK => FixedLength::try_from(iv).map(EncryptionContext::Iv64),
        _ => return Err(CryptoError::BadLength),
    }
    .map_err(|_| CryptoError::BadLength)
}

fn decryption_context(iv: &[u8]) -> Result<DecryptionContext, CryptoError> {
    match iv.len() {
        AES_BLOCK => FixedLength::try_from(iv).map(DecryptionContext::Iv128),
        DES_BLOCK => FixedLength::try_from(iv).map(DecryptionContext::Iv64),
        _ => return Err(CryptoError::BadLength),
    }
    .map_err(|_| CryptoError::BadLength)
}

impl fmt::Debug for SplitCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplitCipher")
            .field("suite", &self.suite)
            .field("integ", &self.integ)
            .finish_non_exhaustive()
    }
}

impl EspCipher for SplitCipher {
    fn iv_len(&self) -> usize {
        match &self.encr {
            Encr::Null => 0,
            Encr::Cbc { block, .. } => *block,
            Encr::Ctr { .. } => CTR_IV_LEN,
        }
    }

    fn block_len(&self) -> usize {
        match &self.encr {
            Encr::Null | Encr::Ctr { .. } => STREAM_BLOCK,
            Encr::Cbc { block, .. } => *block,
        }
    }

    fn icv_len(&self) -> usize {
        self.integ.icv_len()
    }

    fn generate_iv(&self, seq: u64, iv: &mut [u8]) -> Result<(), CryptoError> {
        if iv.len() != self.iv_len() {
            return Err(CryptoError::BadLength);
        }
        match &self.encr {
            Encr::Null => Ok(()),
            // CBC needs an unpredictable IV (RFC 3602 §2.3).
            Encr::Cbc { .. } => aws_lc_rs::rand::fill(iv).map_err(|_| CryptoError::Rng),
            // CTR needs a unique IV; the sequence number is one (RFC 3686 §3.1).
            Encr::Ctr { .. } => {
                iv.copy_from_slice(&seq.to_be_bytes());
                Ok(())
            }
        }
    }

    fn seal(
        &self,
        aad: &EspAad,
        iv: &[u8],
        payload: &mut [u8],
        icv: &mut [u8],
    ) -> Result<(), CryptoError> {
        self.check_lengths(iv, payload)?;
        if icv.len() != self.integ.icv_len() {
            return Err(CryptoError::BadLength);
        }
        self.encrypt(iv, payload)?;
        self.integ.compute(aad, iv, payload, icv)
    }

    fn open(
        &self,
        aad: &EspAad,
        iv: &[u8],
        payload: &mut [u8],
        icv: &[u8],
    ) -> Result<(), CryptoError> {
        self.check_lengths(iv, payload)?;
        // Verify first, decrypt only an authentic packet (RFC 4303 §3.4.4).
        self.integ.verify(aad, iv, payload, icv)?;
        self.decrypt(iv, payload)
    }

    fn seal_ike(
        &self,
        aad: &[u8],
        iv: &[u8],
        payload: &mut [u8],
        icv: &mut [u8],
    ) -> Result<(), CryptoError> {
        self.check_lengths(iv, payload)?;
        self.encrypt(iv, payload)?;
        self.integ.compute_parts(aad, iv, payload, &[], icv)
    }

    fn open_ike(
        &self,
        aad: &[u8],
        iv: &[u8],
        payload: &mut [u8],
        icv: &[u8],
    ) -> Result<(), CryptoError> {
        self.check_lengths(iv, payload)?;
        self.integ.verify_ike(aad, iv, payload, icv)?;
        self.decrypt(iv, payload)
    }
}

impl SplitCipher {
    fn encrypt(&self, iv: &[u8], payload: &mut [u8]) -> Result<(), CryptoError> {
        if payload.is_empty() {
            return Ok(());
        }
        match &self.encr {
            Encr::Null => {}
            Encr::Cbc { enc, .. } => {
                enc.less_safe_encrypt(payload, encryption_context(iv)?)
                    .map_err(|_| CryptoError::Internal)?;
            }
            Encr::Ctr { enc, nonce } => {
                let block = Self::ctr_block(nonce, iv)?;
                enc.less_safe_encrypt(payload, EncryptionContext::Iv128(block))
                    .map_err(|_| CryptoError::Internal)?;
            }
        }
        Ok(())
    }

    fn decrypt(&self, iv: &[u8], payload: &mut [u8]) -> Result<(), CryptoError> {
        if payload.is_empty() {
            return Ok(());
        }
        match &self.encr {
            Encr::Null => {}
            Encr::Cbc { dec, .. } => {
                dec.decrypt(payload, decryption_context(iv)?).map_err(|_| CryptoError::Internal)?;
            }
            Encr::Ctr { enc, nonce } => {
                // Counter mode decrypts by encrypting (XOR with the same key stream).
                let block = Self::ctr_block(nonce, iv)?;
                enc.less_safe_encrypt(payload, EncryptionContext::Iv128(block))
                    .map_err(|_| CryptoError::Internal)?;
            }
        }
        Ok(())
    }
}
