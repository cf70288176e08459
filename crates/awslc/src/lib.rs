//! The ferroswan crypto provider built on [aws-lc-rs](https://docs.rs/aws-lc-rs).
//!
//! The protocol core (`ferroswan-proto`) never calls a crypto library itself; it is handed a
//! [`CryptoProvider`]. This crate exports two:
//!
//! - [`DEFAULT_PROVIDER`] (also [`default_provider`]): modern algorithms only.
//! - [`LEGACY_PROVIDER`] (also [`legacy_provider`]): the same plus 3DES-CBC (RFC 2451) and
//!   HMAC-MD5-96 (RFC 2403). Legacy is an explicit opt-in: pick it only when a configuration
//!   names a legacy algorithm.
//!
//! # IKEv2 transforms
//!
//! | Kind | Transforms | RFC | Implementation |
//! |---|---|---|---|
//! | PRF | `PRF_HMAC_SHA1`, `PRF_HMAC_SHA2_256/384/512` | 2104, 4868 | aws-lc-rs `hmac` |
//! | KE | `ECP_256`, `ECP_384`, `ECP_521` | 5903 | aws-lc-rs `agreement` |
//! | KE | `CURVE25519` | 8031 | aws-lc-rs `agreement` |
//! | KE | `MODP_2048`, `MODP_3072`, `MODP_4096` | 3526 | `crypto-bigint` (constant-time modexp) |
//!
//! The key schedule on top of them is `ferroswan_proto::crypto::keys`.
//!
//! Randomness comes from [`AwsLcRng`] (AWS-LC's `RAND_bytes`, the source behind
//! `aws_lc_rs::rand::SystemRandom`).
//!
//! ```
//! use ferroswan_awslc::DEFAULT_PROVIDER;
//! use ferroswan_proto::crypto::{EspAad, EspKeys, EspSuite};
//! use ferroswan_proto::wire::{EncrId, IntegId};
//!
//! let suite = EspSuite { encr: EncrId::ENCR_AES_GCM_16, encr_key_bits: 256, integ: IntegId::NONE };
//! let keymat = [7u8; 36]; // 32-byte key ‖ 4-byte salt, from the IKE SA's KEYMAT
//! let cipher = DEFAULT_PROVIDER.esp.new_cipher(&suite, &EspKeys { encr: &keymat, integ: &[] })?;
//!
//! let aad = EspAad { spi: 0x1234_5678, seq: 1, esn: false };
//! let mut iv = [0u8; 8];
//! cipher.generate_iv(aad.seq, &mut iv)?;
//! let mut payload = *b"padded payload\x00\x04"; // already padded by the ESP engine
//! let mut icv = [0u8; 16];
//! cipher.seal(&aad, &iv, &mut payload, &mut icv)?;
//! cipher.open(&aad, &iv, &mut payload, &icv)?;
//! assert_eq!(&payload, b"padded payload\x00\x04");
//! # Ok::<(), ferroswan_proto::crypto::CryptoError>(())
//! ```
//!
//! # ESP transforms
//!
//! | Transform | RFC | Keys (KEYMAT bytes) | IV | Block | ICV |
//! |---|---|---|---|---|---|
//! | `ENCR_AES_GCM_16` 128/192/256 | 4106 | key ‖ 4-byte salt | 8 (the sequence number) | 4 | 16 |
//! | `ENCR_CHACHA20_POLY1305` | 7634 | 32 ‖ 4-byte salt | 8 (the sequence number) | 4 | 16 |
//! | `ENCR_AES_CBC` 128/192/256 | 3602 | 16/24/32 | 16 random | 16 | of the integrity transform |
//! | `ENCR_AES_CTR` 128/192/256 | 3686 | key ‖ 4-byte nonce | 8 (the sequence number) | 4 | of the integrity transform |
//! | `ENCR_NULL` | 2410 | 0 | 0 | 4 | of the integrity transform |
//! | `ENCR_3DES` (legacy) | 2451 | 24 | 8 random | 8 | of the integrity transform |
//!
//! Integrity transforms for the non-AEAD ciphers: `AUTH_HMAC_SHA1_96` (RFC 2404),
//! `AUTH_HMAC_SHA2_256_128`, `AUTH_HMAC_SHA2_384_192`, `AUTH_HMAC_SHA2_512_256` (RFC 4868),
//! and in the legacy provider `AUTH_HMAC_MD5_96` (RFC 2403, computed with RustCrypto `hmac` +
//! `md-5`, because AWS-LC has no MD5). The ICV covers ESP header ‖ IV ‖ ciphertext ‖ (high 32
//! bits of the ESN), RFC 4303 §2.2.1, and is checked in constant time before anything is
//! decrypted.
//!
//! Not supported (→ [`CryptoError::Unsupported`]): AES-GCM with 8- or 12-byte ICVs and AES-CCM
//! (AWS-LC's AEAD tags are fixed at 16 bytes), GMAC, AES-XCBC and all other transforms.
//!
//! # Per-packet cost
//!
//! [`EspCipher::seal`](ferroswan_proto::crypto::EspCipher::seal) and
//! [`EspCipher::open`](ferroswan_proto::crypto::EspCipher::open) work in place on the
//! caller's buffers and allocate nothing. When an AEAD tag does not verify, AWS-LC clears the
//! payload buffer (it never hands back unauthenticated plaintext); for the HMAC suites the
//! payload is left untouched.

#![forbid(unsafe_code)]

use ferroswan_proto::crypto::{CryptoError, CryptoProvider, SecureRandom};

mod esp;
mod ike;

#[doc(hidden)]
pub mod primitives;

/// The provider with modern algorithms only (no 3DES, no HMAC-MD5).
pub const DEFAULT_PROVIDER: CryptoProvider =
    CryptoProvider::new(&esp::AwsLcEsp { legacy: false }, &ike::AwsLcPrf, &ike::AwsLcKe, &AwsLcRng);

/// [`DEFAULT_PROVIDER`] plus the legacy transforms 3DES-CBC and HMAC-MD5-96.
///
/// Use it only when a configuration explicitly names a legacy algorithm.
pub const LEGACY_PROVIDER: CryptoProvider =
    CryptoProvider::new(&esp::AwsLcEsp { legacy: true }, &ike::AwsLcPrf, &ike::AwsLcKe, &AwsLcRng);

/// Returns [`DEFAULT_PROVIDER`].
pub fn default_provider() -> CryptoProvider {
    DEFAULT_PROVIDER
}

/// Returns [`LEGACY_PROVIDER`].
pub fn legacy_provider() -> CryptoProvider {
    LEGACY_PROVIDER
}

/// The operating system backed random source of AWS-LC (`RAND_bytes`, as used by
/// `aws_lc_rs::rand::SystemRandom`).
#[derive(Clone, Copy, Debug, Default)]
pub struct AwsLcRng;

impl SecureRandom for AwsLcRng {
    fn fill(&self, dest: &mut [u8]) -> Result<(), CryptoError> {
        aws_lc_rs::rand::fill(dest).map_err(|_| CryptoError::Rng)
    }
}
