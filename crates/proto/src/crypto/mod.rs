//! Crypto provider traits: what the protocol core needs from a cryptographic library.
//!
//! The core never calls a crypto library directly. It asks a [`CryptoProvider`] (a plain struct
//! of `&'static dyn` trait objects, as in rustls) for per-SA cipher objects. The default
//! provider lives in the `ferroswan-awslc` crate; tests and fuzzers use a no-security provider
//! from `ferroswan-test`, so the core builds with no C dependency.
//!
//! # ESP
//!
//! An ESP SA uses one [`EspCipher`] per direction, built by [`EspProvider::new_cipher`] from an
//! [`EspSuite`] (which encryption and integrity transforms) and the SA's key material. The
//! cipher hides whether the suite is an AEAD (AES-GCM, ChaCha20-Poly1305: RFC 4106, RFC 7634)
//! or encryption plus a separate integrity transform (AES-CBC + HMAC: RFC 3602, RFC 4868;
//! NULL + HMAC: RFC 2410). The ESP engine in [`crate::esp`] lays out the packet; the cipher only
//! fills the IV, transforms the payload in place and writes or checks the ICV.
//!
//! Key material is split the way RFC 7296 §2.17 takes KEYMAT: the encryption key first (for the
//! AEADs including the 4-byte salt, RFC 4106 §8.1 and RFC 7634 §4), then the integrity key.
//!
//! # IKE
//!
//! The IKE SA needs a pseudorandom function ([`PrfProvider`], [`Prf`]) and key exchange methods
//! ([`KeProvider`], [`KeGroup`], [`KeSecret`]). The key schedule on top of them (SKEYSEED,
//! `prf+`, the `SK_*` split, CHILD_SA KEYMAT) is pure code in [`keys`].

mod ike;
pub mod keys;
#[cfg(test)]
pub(crate) mod test_provider;

pub use ike::{KeGroup, KeProvider, KeSecret, Prf, PrfProvider, ke_public_len};

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::wire::{EncrId, IntegId};

/// A set of cryptographic implementations used by the protocol core.
///
/// Build one with struct syntax, or take a provider crate's `DEFAULT_PROVIDER` and replace one
/// field with struct-update syntax.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct CryptoProvider {
    /// ESP ciphers (encryption + integrity, or AEAD).
    pub esp: &'static dyn EspProvider,
    /// IKEv2 pseudorandom functions (Transform Type 2).
    pub prf: &'static dyn PrfProvider,
    /// IKEv2 key exchange methods (Transform Type 4).
    pub ke: &'static dyn KeProvider,
    /// The source of randomness for IVs, SPIs, nonces and keys.
    pub secure_random: &'static dyn SecureRandom,
}

impl CryptoProvider {
    /// Builds a provider from its parts (for provider crates outside this one).
    pub const fn new(
        esp: &'static dyn EspProvider,
        prf: &'static dyn PrfProvider,
        ke: &'static dyn KeProvider,
        secure_random: &'static dyn SecureRandom,
    ) -> Self {
        Self { esp, prf, ke, secure_random }
    }
}

impl fmt::Debug for CryptoProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptoProvider").finish_non_exhaustive()
    }
}

/// A cryptographically secure random number generator.
pub trait SecureRandom: Send + Sync {
    /// Fills `dest` with random bytes.
    fn fill(&self, dest: &mut [u8]) -> Result<(), CryptoError>;
}

/// Why a cryptographic operation failed.
///
/// Deliberately coarse: a failed ICV check must not tell an attacker anything beyond "no".
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The integrity check value (or AEAD tag) did not verify.
    #[error("integrity check failed")]
    BadIcv,
    /// A key had the wrong length for its algorithm.
    #[error("key has the wrong length")]
    BadKeyLength,
    /// The ciphertext is not a whole number of cipher blocks.
    #[error("ciphertext is not a multiple of the block size")]
    BadLength,
    /// The provider does not implement the requested algorithm.
    #[error("algorithm not supported by this crypto provider")]
    Unsupported,
    /// The random number generator failed.
    #[error("random number generator failed")]
    Rng,
    /// The library reported an internal failure.
    #[error("crypto library failure")]
    Internal,
    /// The peer's key exchange public value is invalid (wrong length, not on the curve, out
    /// of range) or yields a degenerate shared secret.
    #[error("invalid key exchange public value")]
    InvalidPublicValue,
    /// More output was requested than the function can produce (`prf+` stops at 255 blocks,
    /// RFC 7296 §2.13).
    #[error("requested output is too long")]
    TooLong,
}

/// Which transforms an ESP SA uses: an encryption transform with its key size and, unless the
/// encryption transform is an AEAD, an integrity transform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EspSuite {
    /// Encryption transform (IKEv2 Transform Type 1).
    pub encr: EncrId,
    /// Encryption key size in bits, for transforms with a variable key size (AES);
    /// `0` for transforms with a fixed key (NULL, 3DES, ChaCha20-Poly1305).
    pub encr_key_bits: u16,
    /// Integrity transform (IKEv2 Transform Type 3); [`IntegId::NONE`] with an AEAD.
    pub integ: IntegId,
}

impl EspSuite {
    /// Whether the encryption transform is a combined-mode (AEAD) cipher.
    pub fn is_aead(&self) -> bool {
        encr_is_aead(self.encr)
    }

    /// Bytes of encryption key material taken from KEYMAT (RFC 7296 §2.17), including the
    /// 4-byte salt of the AEADs (RFC 4106 §8.1, RFC 7634 §4). `None` for an unknown transform
    /// or a key size the transform does not have.
    pub fn encr_keymat_len(&self) -> Option<usize> {
        let bits = self.encr_key_bits;
        match self.encr {
            EncrId::ENCR_NULL if bits == 0 => Some(0),
            EncrId::ENCR_3DES if bits == 0 || bits == 192 => Some(24),
            EncrId::ENCR_AES_CBC if matches!(bits, 128 | 192 | 256) => Some(usize::from(bits / 8)),
            EncrId::ENCR_AES_CTR if matches!(bits, 128 | 192 | 256) => {
                Some(usize::from(bits / 8) + 4)
            }
            EncrId::ENCR_AES_GCM_8 | EncrId::ENCR_AES_GCM_12 | EncrId::ENCR_AES_GCM_16
                if matches!(bits, 128 | 192 | 256) =>
            {
                Some(usize::from(bits / 8) + 4)
            }
            EncrId::ENCR_CHACHA20_POLY1305 if bits == 0 || bits == 256 => Some(36),
            _ => None,
        }
    }

    /// Bytes of integrity key material taken from KEYMAT. `None` for an unknown transform.
    pub fn integ_keymat_len(&self) -> Option<usize> {
        integ_key_len(self.integ)
    }

    /// Total KEYMAT bytes for one direction of this suite.
    pub fn keymat_len(&self) -> Option<usize> {
        Some(self.encr_keymat_len()? + self.integ_keymat_len()?)
    }

    /// Checks that the suite is well formed: a known encryption transform with a valid key
    /// size, an integrity transform exactly when the cipher is not an AEAD, and not NULL
    /// encryption without integrity (RFC 4303 §3.2: ESP must not offer neither).
    pub fn validate(&self) -> Result<(), SuiteError> {
        if self.encr_keymat_len().is_none() {
            return Err(SuiteError::BadEncr { encr: self.encr, key_bits: self.encr_key_bits });
        }
        if self.integ_keymat_len().is_none() {
            return Err(SuiteError::BadInteg(self.integ));
        }
        match (self.is_aead(), self.integ == IntegId::NONE) {
            (true, false) => Err(SuiteError::IntegWithAead),
            (false, true) => Err(SuiteError::MissingInteg),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for EspSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.encr)?;
        if self.encr_key_bits != 0 {
            write!(f, "-{}", self.encr_key_bits)?;
        }
        if self.integ != IntegId::NONE {
            write!(f, "/{:?}", self.integ)?;
        }
        Ok(())
    }
}

/// Why an [`EspSuite`] is not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SuiteError {
    /// Unknown encryption transform, or a key size it does not have.
    #[error("encryption transform {encr:?} with a {key_bits}-bit key is not supported")]
    BadEncr {
        /// The transform.
        encr: EncrId,
        /// The requested key size in bits.
        key_bits: u16,
    },
    /// Unknown integrity transform.
    #[error("integrity transform {0:?} is not supported")]
    BadInteg(IntegId),
    /// An AEAD cipher was combined with a separate integrity transform.
    #[error("an AEAD cipher takes no separate integrity transform")]
    IntegWithAead,
    /// A non-AEAD cipher was given no integrity transform; ESP without integrity is not offered.
    #[error("ESP without integrity protection is not supported (add an integrity algorithm)")]
    MissingInteg,
}

/// Whether an encryption transform is a combined-mode (AEAD) cipher.
pub fn encr_is_aead(encr: EncrId) -> bool {
    matches!(
        encr,
        EncrId::ENCR_AES_GCM_8
            | EncrId::ENCR_AES_GCM_12
            | EncrId::ENCR_AES_GCM_16
            | EncrId::ENCR_AES_CCM_8
            | EncrId::ENCR_AES_CCM_12
            | EncrId::ENCR_AES_CCM_16
            | EncrId::ENCR_NULL_AUTH_AES_GMAC
            | EncrId::ENCR_CHACHA20_POLY1305
    )
}

/// Integrity key length in bytes (RFC 2403, 2404, 4868), `None` for an unknown transform.
pub fn integ_key_len(integ: IntegId) -> Option<usize> {
    match integ {
        IntegId::NONE => Some(0),
        IntegId::AUTH_HMAC_MD5_96 => Some(16),
        IntegId::AUTH_HMAC_SHA1_96 => Some(20),
        IntegId::AUTH_HMAC_SHA2_256_128 => Some(32),
        IntegId::AUTH_HMAC_SHA2_384_192 => Some(48),
        IntegId::AUTH_HMAC_SHA2_512_256 => Some(64),
        _ => None,
    }
}

/// The ESP header fields that are authenticated but not encrypted.
///
/// For an AEAD this is the AAD: SPI ‖ sequence number (32-bit), or SPI ‖ high 32 bits ‖ low 32
/// bits with ESN (RFC 4106 §5, RFC 7634 §3). For encryption + integrity the ICV covers the ESP
/// header, the IV and the ciphertext, followed by the high 32 bits of the ESN when ESN is on
/// (RFC 4303 §2.2.1; those bits are never sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EspAad {
    /// Security Parameters Index, as on the wire.
    pub spi: u32,
    /// The full 64-bit sequence number (only the low 32 bits are sent).
    pub seq: u64,
    /// Whether Extended Sequence Numbers are in use on this SA.
    pub esn: bool,
}

impl EspAad {
    /// Writes the AEAD additional authenticated data into `out` and returns its length
    /// (8, or 12 with ESN).
    pub fn write_aead_aad(&self, out: &mut [u8; 12]) -> usize {
        let [s0, s1, s2, s3] = self.spi.to_be_bytes();
        let [h0, h1, h2, h3, l0, l1, l2, l3] = self.seq.to_be_bytes();
        if self.esn {
            *out = [s0, s1, s2, s3, h0, h1, h2, h3, l0, l1, l2, l3];
            12
        } else {
            *out = [s0, s1, s2, s3, l0, l1, l2, l3, 0, 0, 0, 0];
            8
        }
    }

    /// The ESP header as sent: SPI ‖ low 32 bits of the sequence number.
    pub fn header(&self) -> [u8; 8] {
        let [s0, s1, s2, s3] = self.spi.to_be_bytes();
        let [_, _, _, _, l0, l1, l2, l3] = self.seq.to_be_bytes();
        [s0, s1, s2, s3, l0, l1, l2, l3]
    }

    /// The high 32 bits of the sequence number when ESN is in use (appended to the ICV input
    /// of non-AEAD suites, RFC 4303 §2.2.1).
    pub fn seq_hi(&self) -> Option<[u8; 4]> {
        self.esn.then(|| ((self.seq >> 32) as u32).to_be_bytes())
    }
}

/// Key material for one direction of an ESP SA. Zeroized on drop, redacted in `Debug`.
pub struct EspKeys<'a> {
    /// Encryption key, including the trailing 4-byte salt for the AEADs.
    pub encr: &'a [u8],
    /// Integrity key; empty with an AEAD.
    pub integ: &'a [u8],
}

impl fmt::Debug for EspKeys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EspKeys")
            .field("encr", &format_args!("<{} bytes redacted>", self.encr.len()))
            .field("integ", &format_args!("<{} bytes redacted>", self.integ.len()))
            .finish()
    }
}

/// Makes [`EspCipher`]s.
pub trait EspProvider: Send + Sync {
    /// Whether this provider implements `suite`.
    fn supports(&self, suite: &EspSuite) -> bool;

    /// Builds the cipher for one direction of an SA. `keys` must have the lengths
    /// [`EspSuite::encr_keymat_len`] and [`EspSuite::integ_keymat_len`] give.
    fn new_cipher(
        &self,
        suite: &EspSuite,
        keys: &EspKeys<'_>,
    ) -> Result<Box<dyn EspCipher>, CryptoError>;
}

/// The cryptographic transform of one direction of an ESP SA, or of an IKE SA's Encrypted
/// payloads ([`EspCipher::seal_ike`]).
///
/// The ESP engine lays out `ESP header ‖ IV ‖ payload ‖ padding ‖ pad length ‖ next header ‖ ICV`;
/// `payload` below is everything from the first payload byte through the next-header byte
/// (what RFC 4303 encrypts), already padded to [`EspCipher::block_len`].
pub trait EspCipher: Send + Sync {
    /// Length of the explicit IV carried in each packet (8 for GCM/ChaCha20, 16 for AES-CBC,
    /// 8 for 3DES, 0 for NULL).
    fn iv_len(&self) -> usize;

    /// The length the encrypted part must be a multiple of (the cipher block size; 4 for
    /// stream-like ciphers and NULL, RFC 4303 §2.4).
    fn block_len(&self) -> usize;

    /// Length of the Integrity Check Value appended to each packet.
    fn icv_len(&self) -> usize;

    /// Fills `iv` (exactly [`EspCipher::iv_len`] bytes) with the IV for the packet with
    /// sequence number `seq`. Counter-mode AEADs use the 64-bit sequence number, which never
    /// repeats under one key (RFC 4106 §3.1); CBC ciphers draw an unpredictable IV from the
    /// provider's random source (RFC 3602 §2.3).
    fn generate_iv(&self, seq: u64, iv: &mut [u8]) -> Result<(), CryptoError>;

    /// Encrypts `payload` in place with `iv` and writes the ICV into `icv` (exactly
    /// [`EspCipher::icv_len`] bytes).
    fn seal(
        &self,
        aad: &EspAad,
        iv: &[u8],
        payload: &mut [u8],
        icv: &mut [u8],
    ) -> Result<(), CryptoError>;

    /// Verifies `icv` (in constant time) and, only if it verifies, decrypts `payload` in place.
    fn open(
        &self,
        aad: &EspAad,
        iv: &[u8],
        payload: &mut [u8],
        icv: &[u8],
    ) -> Result<(), CryptoError>;

    /// Encrypts the contents of an IKE Encrypted payload (RFC 7296 §3.14) in place and writes
    /// the ICV. `aad` is the message from the IKE header through the SK payload's generic
    /// header: AEADs authenticate it as associated data (RFC 5282 §5.1, RFC 7634 §3); the
    /// other ciphers MAC `aad ‖ iv ‖ ciphertext` with the integrity transform. The IKE SA's
    /// keys are built with [`EspProvider::new_cipher`] as for ESP (SK_e with the salt as the
    /// encryption key, SK_a as the integrity key); the IV comes from [`EspCipher::generate_iv`]
    /// with a per-SA message counter.
    fn seal_ike(
        &self,
        aad: &[u8],
        iv: &[u8],
        payload: &mut [u8],
        icv: &mut [u8],
    ) -> Result<(), CryptoError>;

    /// Verifies (in constant time) and, only if that succeeds, decrypts the contents of an
    /// IKE Encrypted payload; see [`EspCipher::seal_ike`].
    fn open_ike(
        &self,
        aad: &[u8],
        iv: &[u8],
        payload: &mut [u8],
        icv: &[u8],
    ) -> Result<(), CryptoError>;
}

/// Secret bytes: zeroized on drop, redacted in `Debug`, compared in constant time.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Wraps `bytes` (which are moved, not copied).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Zeroizes the bytes and empties the buffer (the allocation is kept).
    pub(crate) fn clear(&mut self) {
        self.0.zeroize();
    }

    /// Appends `bytes`. Callers reserve the capacity up front, so no reallocation leaves a
    /// copy of the secret behind.
    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

impl From<&[u8]> for SecretBytes {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.0.len() == other.0.len() && bool::from(self.0.ct_eq(&other.0))
    }
}

impl Eq for SecretBytes {}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn keymat_lengths_follow_the_rfcs() {
        let gcm =
            EspSuite { encr: EncrId::ENCR_AES_GCM_16, encr_key_bits: 128, integ: IntegId::NONE };
        assert_eq!(gcm.keymat_len(), Some(20));
        let cbc = EspSuite {
            encr: EncrId::ENCR_AES_CBC,
            encr_key_bits: 256,
            integ: IntegId::AUTH_HMAC_SHA2_512_256,
        };
        assert_eq!(cbc.keymat_len(), Some(32 + 64));
        let chacha = EspSuite {
            encr: EncrId::ENCR_CHACHA20_POLY1305,
            encr_key_bits: 0,
            integ: IntegId::NONE,
        };
        assert_eq!(chacha.keymat_len(), Some(36));
    }

    #[test]
    fn suites_are_validated() {
        let s = |encr, bits, integ| EspSuite { encr, encr_key_bits: bits, integ };
        assert!(s(EncrId::ENCR_AES_GCM_16, 256, IntegId::NONE).validate().is_ok());
        assert_eq!(
            s(EncrId::ENCR_AES_GCM_16, 256, IntegId::AUTH_HMAC_SHA1_96).validate(),
            Err(SuiteError::IntegWithAead)
        );
        assert_eq!(
            s(EncrId::ENCR_NULL, 0, IntegId::NONE).validate(),
            Err(SuiteError::MissingInteg)
        );
        assert!(matches!(
            s(EncrId::ENCR_AES_CBC, 100, IntegId::AUTH_HMAC_SHA1_96).validate(),
            Err(SuiteError::BadEncr { .. })
        ));
    }

    #[test]
    fn aad_layout_with_and_without_esn() {
        let aad = EspAad { spi: 0x0102_0304, seq: 0x0000_0005_0000_0006, esn: false };
        let mut out = [0u8; 12];
        assert_eq!(aad.write_aead_aad(&mut out), 8);
        assert_eq!(&out[..8], &[1, 2, 3, 4, 0, 0, 0, 6]);
        let aad = EspAad { esn: true, ..aad };
        assert_eq!(aad.write_aead_aad(&mut out), 12);
        assert_eq!(out, [1, 2, 3, 4, 0, 0, 0, 5, 0, 0, 0, 6]);
        assert_eq!(aad.seq_hi(), Some([0, 0, 0, 5]));
        assert_eq!(aad.header(), [1, 2, 3, 4, 0, 0, 0, 6]);
    }

    #[test]
    fn secrets_are_redacted() {
        let s = SecretBytes::new(vec![0xaa; 16]);
        assert_eq!(format!("{s:?}"), "SecretBytes(<16 bytes redacted>)");
        assert_eq!(s, SecretBytes::new(vec![0xaa; 16]));
        assert_ne!(s, SecretBytes::new(vec![0xab; 16]));
    }
}
