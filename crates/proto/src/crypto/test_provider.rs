//! A provider for the core's own unit tests, built on pure-Rust dev-dependencies
//! (RustCrypto ChaCha20-Poly1305, HMAC-SHA-256), so `ferroswan-proto` never depends on a
//! provider crate.
//!
//! NOT a real ESP implementation: every suite is ChaCha20-Poly1305 underneath, with the IV and
//! block sizes of the suite it stands in for, so the engine's layout, padding and alignment
//! logic can be exercised for block ciphers too. The IV is authenticated as AAD.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::atomic::{AtomicU64, Ordering};

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::*;
use crate::wire::{KeId, PrfId};

pub(crate) static TEST_ESP: TestEsp = TestEsp;
pub(crate) static TEST_RANDOM: CounterRandom = CounterRandom(AtomicU64::new(1));
pub(crate) static TEST_PRF: TestPrf = TestPrf;
pub(crate) static TEST_PROVIDER: CryptoProvider = CryptoProvider {
    esp: &TEST_ESP,
    prf: &TestPrfProvider,
    ke: &NoKe,
    secure_random: &TEST_RANDOM,
};

/// PRF_HMAC_SHA2_256 only, from RustCrypto `hmac` + `sha2`.
pub(crate) struct TestPrfProvider;

impl PrfProvider for TestPrfProvider {
    fn prf(&self, id: PrfId) -> Option<&'static dyn Prf> {
        (id == PrfId::PRF_HMAC_SHA2_256).then_some(&TEST_PRF as &'static dyn Prf)
    }
    fn sha1(&self, data: &[u8]) -> Result<[u8; 20], CryptoError> {
        use sha1::Digest;
        Ok(sha1::Sha1::digest(data).into())
    }
}

pub(crate) struct TestPrf;

impl Prf for TestPrf {
    fn id(&self) -> PrfId {
        PrfId::PRF_HMAC_SHA2_256
    }
    fn output_len(&self) -> usize {
        32
    }
    fn prf(&self, key: &[u8], data: &[u8]) -> Result<SecretBytes, CryptoError> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
        mac.update(data);
        Ok(SecretBytes::new(mac.finalize().into_bytes().to_vec()))
    }
}

/// No key exchange methods.
pub(crate) struct NoKe;

impl KeProvider for NoKe {
    fn group(&self, _: KeId) -> Option<&'static dyn KeGroup> {
        None
    }
}

pub(crate) struct CounterRandom(AtomicU64);

impl SecureRandom for CounterRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), CryptoError> {
        for chunk in dest.chunks_mut(8) {
            let v = self.0.fetch_add(1, Ordering::Relaxed).to_be_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}

pub(crate) struct TestEsp;

impl EspProvider for TestEsp {
    fn supports(&self, suite: &EspSuite) -> bool {
        suite.validate().is_ok()
    }

    fn new_cipher(
        &self,
        suite: &EspSuite,
        keys: &EspKeys<'_>,
    ) -> Result<Box<dyn EspCipher>, CryptoError> {
        if suite.validate().is_err() {
            return Err(CryptoError::Unsupported);
        }
        if Some(keys.encr.len()) != suite.encr_keymat_len()
            || Some(keys.integ.len()) != suite.integ_keymat_len()
        {
            return Err(CryptoError::BadKeyLength);
        }
        let (iv_len, block_len, icv_len) = match suite.encr {
            EncrId::ENCR_AES_CBC => (16, 16, 16),
            EncrId::ENCR_3DES => (8, 8, 12),
            EncrId::ENCR_NULL => (0, 4, 12),
            _ => (8, 4, 16),
        };
        let mut key = [0u8; 32];
        for (i, b) in keys.encr.iter().chain(keys.integ).enumerate() {
            key[i % 32] ^= *b;
        }
        Ok(Box::new(TestCipher {
            aead: ChaCha20Poly1305::new(&key.into()),
            iv_len,
            block_len,
            icv_len,
            counter_iv: suite.is_aead(),
        }))
    }
}

struct TestCipher {
    aead: ChaCha20Poly1305,
    iv_len: usize,
    block_len: usize,
    icv_len: usize,
    counter_iv: bool,
}

impl TestCipher {
    fn nonce_and_aad(&self, aad: &EspAad, iv: &[u8]) -> (Nonce, Vec<u8>) {
        let mut nonce = [0u8; 12];
        let mut a = aad.header().to_vec();
        a.extend(aad.seq_hi().unwrap_or_default());
        a.extend_from_slice(iv);
        nonce[4..].copy_from_slice(&aad.seq.to_be_bytes());
        (nonce.into(), a)
    }
}

impl EspCipher for TestCipher {
    fn iv_len(&self) -> usize {
        self.iv_len
    }
    fn block_len(&self) -> usize {
        self.block_len
    }
    fn icv_len(&self) -> usize {
        self.icv_len
    }
    fn generate_iv(&self, seq: u64, iv: &mut [u8]) -> Result<(), CryptoError> {
        if self.counter_iv {
            iv.copy_from_slice(&seq.to_be_bytes());
            Ok(())
        } else {
            TEST_RANDOM.fill(iv)
        }
    }
    fn seal(
        &self,
        aad: &EspAad,
        iv: &[u8],
        payload: &mut [u8],
        icv: &mut [u8],
    ) -> Result<(), CryptoError> {
        if !payload.len().is_multiple_of(self.block_len) || iv.len() != self.iv_len {
            return Err(CryptoError::BadLength);
        }
        let (nonce, a) = self.nonce_and_aad(aad, iv);
        let tag = self.aead.encrypt_in_place_detached(&nonce, &a, payload).unwrap();
        icv.copy_from_slice(&tag[..self.icv_len]);
        Ok(())
    }
    fn open(
        &self,
        aad: &EspAad,
        iv: &[u8],
        payload: &mut [u8],
        icv: &[u8],
    ) -> Result<(), CryptoError> {
        if !payload.len().is_multiple_of(self.block_len) || iv.len() != self.iv_len {
            return Err(CryptoError::BadLength);
        }
        let (nonce, a) = self.nonce_and_aad(aad, iv);
        // ChaCha20 is a stream cipher, so "encrypting" the ciphertext yields the plaintext, and
        // encrypting that plaintext again recomputes the tag over the ciphertext. This lets the
        // test cipher check truncated ICVs, which the AEAD API cannot.
        let mut plain = payload.to_vec();
        let _ = self.aead.encrypt_in_place_detached(&nonce, &a, &mut plain);
        let tag = self.aead.encrypt_in_place_detached(&nonce, &a, &mut plain.clone()).unwrap();
        if tag[..self.icv_len] != *icv {
            return Err(CryptoError::BadIcv);
        }
        payload.copy_from_slice(&plain);
        Ok(())
    }
    fn seal_ike(
        &self,
        aad: &[u8],
        iv: &[u8],
        payload: &mut [u8],
        icv: &mut [u8],
    ) -> Result<(), CryptoError> {
        let (nonce, a) = ike_nonce_and_aad(aad, iv);
        let tag = self.aead.encrypt_in_place_detached(&nonce, &a, payload).unwrap();
        icv.copy_from_slice(&tag[..self.icv_len]);
        Ok(())
    }
    fn open_ike(
        &self,
        aad: &[u8],
        iv: &[u8],
        payload: &mut [u8],
        icv: &[u8],
    ) -> Result<(), CryptoError> {
        let (nonce, a) = ike_nonce_and_aad(aad, iv);
        let mut plain = payload.to_vec();
        let _ = self.aead.encrypt_in_place_detached(&nonce, &a, &mut plain);
        let tag = self.aead.encrypt_in_place_detached(&nonce, &a, &mut plain.clone()).unwrap();
        if tag[..self.icv_len] != *icv {
            return Err(CryptoError::BadIcv);
        }
        payload.copy_from_slice(&plain);
        Ok(())
    }
}

fn ike_nonce_and_aad(aad: &[u8], iv: &[u8]) -> (Nonce, Vec<u8>) {
    let mut nonce = [0u8; 12];
    for (i, b) in iv.iter().enumerate() {
        nonce[i % 12] ^= *b;
    }
    let mut a = aad.to_vec();
    a.extend_from_slice(iv);
    (nonce.into(), a)
}
