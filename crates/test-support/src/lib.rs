//! Test support for ferroswan: shared by integration tests, benchmarks and fuzz targets.
//!
//! - [`null_provider`]: a crypto provider with **no security**, so fuzzers and simulations reach
//!   the states behind ICV checks.
//! - [`SeededRandom`]: deterministic randomness for reproducible tests.
//! - [`fuzzing`]: the bodies of the fuzz targets, also replayed over the committed corpus by a
//!   normal test, so CI covers them without a nightly toolchain.
//! - [`packets`]: builders for well-formed inner IPv4/IPv6 packets.
//! - [`ikesim`]: two IKEv2 endpoints on a virtual clock and a faulty network.

pub mod fuzzing;
pub mod ikesim;
pub mod packets;

use std::sync::Mutex;

use ferroswan_proto::crypto::{
    CryptoError, CryptoProvider, EspAad, EspCipher, EspKeys, EspProvider, EspSuite, KeGroup,
    KeProvider, KeSecret, Prf, PrfProvider, SecretBytes, SecureRandom, ke_public_len,
};
use ferroswan_proto::wire::{KeId, PrfId};

/// A crypto provider that provides NO SECURITY: every ESP suite "encrypts" with the identity
/// function and carries an all-zero ICV that always verifies; the PRFs are a keyed FNV-style
/// mix; every key exchange method's "public value" is the private value itself and the shared
/// secret is their XOR. For fuzzing and simulations only.
pub fn null_provider() -> CryptoProvider {
    static ESP: NullEsp = NullEsp;
    static RANDOM: Mutex<SeededRandom> = Mutex::new(SeededRandom::new(0x5eed));
    static SHARED: SharedRandom = SharedRandom(&RANDOM);
    CryptoProvider::new(&ESP, &NullPrfs, &NullKe, &SHARED)
}

struct NullPrfs;

static NULL_PRFS: [NullPrf; 4] = [
    NullPrf(PrfId::PRF_HMAC_SHA1, 20),
    NullPrf(PrfId::PRF_HMAC_SHA2_256, 32),
    NullPrf(PrfId::PRF_HMAC_SHA2_384, 48),
    NullPrf(PrfId::PRF_HMAC_SHA2_512, 64),
];

impl PrfProvider for NullPrfs {
    fn prf(&self, id: PrfId) -> Option<&'static dyn Prf> {
        NULL_PRFS.iter().find(|p| p.0 == id).map(|p| p as &'static dyn Prf)
    }
    fn sha1(&self, data: &[u8]) -> Result<[u8; 20], CryptoError> {
        // NO SECURITY: a deterministic 160-bit FNV-style fold, enough for NAT detection and
        // CERTREQ hashes to agree between two null-provider peers.
        let mut out = [0u8; 20];
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (i, b) in data.iter().enumerate() {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
            if let Some(o) = out.get_mut(i % 20) {
                *o ^= h.to_le_bytes()[0];
            }
        }
        for (o, b) in out.iter_mut().zip(h.to_le_bytes().iter().cycle()) {
            *o ^= *b;
        }
        Ok(out)
    }
}

/// Deterministic, insecure stand-in for a PRF with the output length of the real one.
struct NullPrf(PrfId, usize);

impl Prf for NullPrf {
    fn id(&self) -> PrfId {
        self.0
    }
    fn output_len(&self) -> usize {
        self.1
    }
    fn prf(&self, key: &[u8], data: &[u8]) -> Result<SecretBytes, CryptoError> {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.iter().chain([0xffu8].iter()).chain(data) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        let mut out = Vec::with_capacity(self.1);
        while out.len() < self.1 {
            h = (h ^ 0x5a).wrapping_mul(0x0100_0000_01b3);
            out.extend_from_slice(&h.to_be_bytes());
        }
        out.truncate(self.1);
        Ok(SecretBytes::new(out))
    }
}

struct NullKe;

static NULL_GROUPS: [NullGroup; 8] = [
    NullGroup(KeId::MODP_2048),
    NullGroup(KeId::MODP_3072),
    NullGroup(KeId::MODP_4096),
    NullGroup(KeId::ECP_256),
    NullGroup(KeId::ECP_384),
    NullGroup(KeId::ECP_521),
    NullGroup(KeId::CURVE25519),
    NullGroup(KeId::MODP_1536),
];

impl KeProvider for NullKe {
    fn group(&self, id: KeId) -> Option<&'static dyn KeGroup> {
        NULL_GROUPS.iter().find(|g| g.0 == id).map(|g| g as &'static dyn KeGroup)
    }
}

/// Insecure stand-in for a key exchange method with the public value length of the real one.
struct NullGroup(KeId);

impl KeGroup for NullGroup {
    fn id(&self) -> KeId {
        self.0
    }
    fn public_len(&self) -> usize {
        ke_public_len(self.0).unwrap_or(32)
    }
    fn generate(&self, rng: &dyn SecureRandom) -> Result<Box<dyn KeSecret>, CryptoError> {
        let mut value = vec![0u8; self.public_len()];
        rng.fill(&mut value)?;
        Ok(Box::new(NullSecret { id: self.0, value }))
    }
}

struct NullSecret {
    id: KeId,
    value: Vec<u8>,
}

impl KeSecret for NullSecret {
    fn id(&self) -> KeId {
        self.id
    }
    fn public_value(&self) -> &[u8] {
        &self.value
    }
    fn agree(&self, peer_public: &[u8]) -> Result<SecretBytes, CryptoError> {
        if peer_public.len() != self.value.len() {
            return Err(CryptoError::InvalidPublicValue);
        }
        Ok(SecretBytes::new(self.value.iter().zip(peer_public).map(|(a, b)| a ^ b).collect()))
    }
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
    fn seal_ike(
        &self,
        _: &[u8],
        _: &[u8],
        _: &mut [u8],
        icv: &mut [u8],
    ) -> Result<(), CryptoError> {
        icv.fill(0);
        Ok(())
    }
    fn open_ike(&self, _: &[u8], _: &[u8], _: &mut [u8], _: &[u8]) -> Result<(), CryptoError> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn null_key_exchange_agrees() {
        let provider = null_provider();
        let group = provider.ke.group(KeId::ECP_256).unwrap();
        let a = group.generate(provider.secure_random).unwrap();
        let b = group.generate(provider.secure_random).unwrap();
        assert_eq!(a.public_value().len(), 64);
        assert_eq!(a.agree(b.public_value()).unwrap(), b.agree(a.public_value()).unwrap());
        let prf = provider.prf.prf(PrfId::PRF_HMAC_SHA2_256).unwrap();
        assert_eq!(prf.prf(b"k", b"d").unwrap().len(), 32);
    }
}
