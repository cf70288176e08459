//! Test support for ferroswan: shared by integration tests, benchmarks and fuzz targets.
//!
//! - [`null_provider`]: a crypto provider with **no security**, so fuzzers and simulations reach
//!   the states behind ICV checks.
//! - [`SeededRandom`]: deterministic randomness for reproducible tests.
//! - [`fuzzing`]: the bodies of the fuzz targets, also replayed over the committed corpus by a
//!   normal test, so CI covers them without a nightly toolchain.
//! - [`packets`]: builders for well-formed inner IPv4/IPv6 packets.

pub mod fuzzing;
pub mod packets;

use std::sync::Mutex;

use ferroswan_proto::crypto::{
    CryptoError, CryptoProvider, EspAad, EspCipher, EspKeys, EspProvider, EspSuite, SecureRandom,
};

/// A crypto provider that provides NO SECURITY: every ESP suite "encrypts" with the identity
/// function and carries an all-zero ICV that always verifies. For fuzzing and simulations only.
pub fn null_provider() -> CryptoProvider {
    static ESP: NullEsp = NullEsp;
    static RANDOM: Mutex<SeededRandom> = Mutex::new(SeededRandom::new(0x5eed));
    static SHARED: SharedRandom = SharedRandom(&RANDOM);
    CryptoProvider::new(&ESP, &SHARED)
}

struct SharedRandom(&'static Mutex<SeededRandom>);

impl SecureRandom for SharedRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), CryptoError> {
        let mut rng = self.0.lock().map_err(|_| CryptoError::Rng)?;
        rng.fill_bytes(dest);
        Ok(())
    }
}

struct NullEsp;

impl EspProvider for NullEsp {
    fn supports(&self, suite: &EspSuite) -> bool {
        suite.validate().is_ok()
    }

    fn new_cipher(
        &self,
        suite: &EspSuite,
        _keys: &EspKeys<'_>,
    ) -> Result<Box<dyn EspCipher>, CryptoError> {
        suite.validate().map_err(|_| CryptoError::Unsupported)?;
        let iv_len = if suite.is_aead() { 8 } else { 16 };
        Ok(Box::new(NullCipher { iv_len, icv_len: 16 }))
    }
}

struct NullCipher {
    iv_len: usize,
    icv_len: usize,
}

impl EspCipher for NullCipher {
    fn iv_len(&self) -> usize {
        self.iv_len
    }
    fn block_len(&self) -> usize {
        4
    }
    fn icv_len(&self) -> usize {
        self.icv_len
    }
    fn generate_iv(&self, seq: u64, iv: &mut [u8]) -> Result<(), CryptoError> {
        for (d, s) in iv.iter_mut().zip(seq.to_be_bytes().iter().cycle()) {
            *d = *s;
        }
        Ok(())
    }
    fn seal(&self, _: &EspAad, _: &[u8], _: &mut [u8], icv: &mut [u8]) -> Result<(), CryptoError> {
        icv.fill(0);
        Ok(())
    }
    fn open(&self, _: &EspAad, _: &[u8], _: &mut [u8], _: &[u8]) -> Result<(), CryptoError> {
        Ok(())
    }
}

/// A deterministic random source (SplitMix64), for reproducible tests. Not secure.
#[derive(Clone, Debug)]
pub struct SeededRandom {
    state: u64,
}

impl SeededRandom {
    /// A generator starting from `seed`.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fills `dest` with random bytes.
    pub fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            for (d, s) in chunk.iter_mut().zip(v) {
                *d = s;
            }
        }
    }
}
