//! The IKEv2 key schedule (RFC 7296 §2.13, §2.14, §2.17, §2.18), built on the [`Prf`] trait
//! only.
//!
//! ```text
//! SKEYSEED = prf(Ni | Nr, g^ir)                                       (§2.14)
//! {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
//!          = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)
//! SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)                     (§2.18, IKE SA rekey)
//! KEYMAT   = prf+(SK_d, [g^ir (new)] | Ni | Nr)                        (§2.17, CHILD_SA)
//! ```

use core::fmt;

use super::ike::Prf;
use super::{CryptoError, EspSuite, SecretBytes};

/// The largest number of output blocks `prf+` can produce: its counter is one octet that starts
/// at 0x01 (RFC 7296 §2.13).
pub const PRF_PLUS_MAX_BLOCKS: usize = 255;

/// `prf+(K, S)` (RFC 7296 §2.13): `T1 | T2 | …` truncated to `len` bytes, where
/// `T1 = prf(K, S | 0x01)` and `Tn = prf(K, Tn-1 | S | n)`.
///
/// Fails with [`CryptoError::TooLong`] when `len` needs more than 255 blocks.
pub fn prf_plus(
    prf: &dyn Prf,
    key: &[u8],
    seed: &[u8],
    len: usize,
) -> Result<SecretBytes, CryptoError> {
    let block = prf.output_len();
    if block == 0 {
        return Err(CryptoError::Internal);
    }
    let blocks = len.div_ceil(block);
    if blocks > PRF_PLUS_MAX_BLOCKS {
        return Err(CryptoError::TooLong);
    }
    let mut out = Vec::with_capacity(blocks * block);
    // The input of the next round: Tn-1 | S | n. Held in a SecretBytes so it is zeroized.
    let mut input = SecretBytes::new(Vec::with_capacity(block + seed.len() + 1));
    let mut previous = SecretBytes::default();
    for counter in 1..=blocks {
        let counter = u8::try_from(counter).map_err(|_| CryptoError::TooLong)?;
        input.clear();
        input.extend(previous.expose());
        input.extend(seed);
        input.extend(&[counter]);
        previous = prf.prf(key, input.expose())?;
        if previous.len() != block {
            return Err(CryptoError::Internal);
        }
        out.extend_from_slice(previous.expose());
    }
    out.truncate(len);
    Ok(SecretBytes::new(out))
}

/// `SKEYSEED = prf(Ni | Nr, g^ir)` (RFC 7296 §2.14).
///
/// For a PRF with a fixed key length of `n` bytes ([`Prf::fixed_key_len`]) whose nonces do
/// not add up to `n`, the key is the first `n/2` bytes of `Ni` followed by the first `n/2`
/// bytes of `Nr` (RFC 7296 §2.14: "half the bits must come from Ni and half from Nr, taking
/// the first bits of each").
pub fn skeyseed(
    prf: &dyn Prf,
    ni: &[u8],
    nr: &[u8],
    g_ir: &[u8],
) -> Result<SecretBytes, CryptoError> {
    let mut key = SecretBytes::new(Vec::with_capacity(ni.len() + nr.len()));
    match prf.fixed_key_len() {
        Some(n) if ni.len() + nr.len() != n => {
            let half = n / 2;
            let (Some(ni_half), Some(nr_half)) = (ni.get(..half), nr.get(..n - half)) else {
                return Err(CryptoError::BadKeyLength);
            };
            key.extend(ni_half);
            key.extend(nr_half);
        }
        _ => {
            key.extend(ni);
            key.extend(nr);
        }
    }
    prf.prf(key.expose(), g_ir)
}

/// `SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)` for the new IKE SA when rekeying
/// (RFC 7296 §2.18). `ni` and `nr` are the nonces of the CREATE_CHILD_SA exchange.
pub fn rekey_skeyseed(
    prf: &dyn Prf,
    old_sk_d: &[u8],
    g_ir_new: &[u8],
    ni: &[u8],
    nr: &[u8],
) -> Result<SecretBytes, CryptoError> {
    let mut data = SecretBytes::new(Vec::with_capacity(g_ir_new.len() + ni.len() + nr.len()));
    data.extend(g_ir_new);
    data.extend(ni);
    data.extend(nr);
    prf.prf(old_sk_d, data.expose())
}

/// The key lengths of the IKE SA's encryption and integrity transforms, in bytes.
///
/// `SK_d`, `SK_pi` and `SK_pr` take the PRF's preferred key length ([`Prf::key_len`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IkeKeyLengths {
    /// Integrity key length (`SK_ai`, `SK_ar`); 0 with an AEAD.
    pub integ: usize,
    /// Encryption key length (`SK_ei`, `SK_er`), including the salt of the AEADs
    /// (RFC 5282 §7.1: 4 bytes for AES-GCM; RFC 7634 §4 for ChaCha20-Poly1305).
    pub encr: usize,
}

/// The keys of an IKE SA (RFC 7296 §2.14). Zeroized on drop, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct IkeKeys {
    /// Derives CHILD_SA keys and the SKEYSEED of a rekeyed IKE SA.
    pub sk_d: SecretBytes,
    /// Integrity key for messages from the original initiator.
    pub sk_ai: SecretBytes,
    /// Integrity key for messages from the original responder.
    pub sk_ar: SecretBytes,
    /// Encryption key for messages from the original initiator.
    pub sk_ei: SecretBytes,
    /// Encryption key for messages from the original responder.
    pub sk_er: SecretBytes,
    /// Key for the initiator's AUTH payload.
    pub sk_pi: SecretBytes,
    /// Key for the responder's AUTH payload.
    pub sk_pr: SecretBytes,
}

impl fmt::Debug for IkeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IkeKeys")
            .field("sk_d", &self.sk_d)
            .field("sk_ai", &self.sk_ai)
            .field("sk_ar", &self.sk_ar)
            .field("sk_ei", &self.sk_ei)
            .field("sk_er", &self.sk_er)
            .field("sk_pi", &self.sk_pi)
            .field("sk_pr", &self.sk_pr)
            .finish()
    }
}

impl IkeKeys {
    /// Derives the IKE SA keys: `prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)` split in the order
    /// `SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr` (RFC 7296 §2.14). `spi_i` and
    /// `spi_r` are the IKE SPIs as on the wire (8 bytes each).
    pub fn derive(
        prf: &dyn Prf,
        skeyseed: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
        lengths: IkeKeyLengths,
    ) -> Result<Self, CryptoError> {
        let prf_key = prf.key_len();
        let total = 3 * prf_key + 2 * lengths.integ + 2 * lengths.encr;
        let mut seed = SecretBytes::new(Vec::with_capacity(ni.len() + nr.len() + 16));
        seed.extend(ni);
        seed.extend(nr);
        seed.extend(spi_i);
        seed.extend(spi_r);
        let keymat = prf_plus(prf, skeyseed, seed.expose(), total)?;
        let mut rest = keymat.expose();
        let mut take = |n: usize| -> Result<SecretBytes, CryptoError> {
            let (head, tail) = rest.split_at_checked(n).ok_or(CryptoError::Internal)?;
            rest = tail;
            Ok(SecretBytes::from(head))
        };
        Ok(Self {
            sk_d: take(prf_key)?,
            sk_ai: take(lengths.integ)?,
            sk_ar: take(lengths.integ)?,
            sk_ei: take(lengths.encr)?,
            sk_er: take(lengths.encr)?,
            sk_pi: take(prf_key)?,
            sk_pr: take(prf_key)?,
        })
    }
}

/// The KEYMAT of one CHILD_SA (RFC 7296 §2.17), split per direction. Zeroized on drop,
/// redacted in `Debug`.
///
/// Each direction holds the encryption key (with the AEAD salt) followed by the integrity key,
/// the layout [`crate::esp::SaParams::keymat`] takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildKeys {
    /// Keys for traffic from the initiator of the exchange to its responder.
    pub initiator_to_responder: SecretBytes,
    /// Keys for traffic from the responder of the exchange to its initiator.
    pub responder_to_initiator: SecretBytes,
}

impl ChildKeys {
    /// Derives `KEYMAT = prf+(SK_d, [g^ir (new)] | Ni | Nr)` for `suite` (RFC 7296 §2.17):
    /// the initiator-to-responder keys are taken first, each direction encryption key first,
    /// then integrity key.
    ///
    /// `ni` and `nr` are the nonces of the exchange that creates the CHILD_SA (IKE_SA_INIT for
    /// the first one, CREATE_CHILD_SA otherwise); `g_ir_new` is the shared secret of the
    /// exchange's optional KE payloads (PFS).
    pub fn derive(
        prf: &dyn Prf,
        sk_d: &[u8],
        g_ir_new: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
        suite: &EspSuite,
    ) -> Result<Self, CryptoError> {
        let one = suite.keymat_len().ok_or(CryptoError::Unsupported)?;
        let g = g_ir_new.unwrap_or_default();
        let mut seed = SecretBytes::new(Vec::with_capacity(g.len() + ni.len() + nr.len()));
        seed.extend(g);
        seed.extend(ni);
        seed.extend(nr);
        let keymat = prf_plus(prf, sk_d, seed.expose(), 2 * one)?;
        let (i_to_r, r_to_i) =
            keymat.expose().split_at_checked(one).ok_or(CryptoError::Internal)?;
        Ok(Self {
            initiator_to_responder: SecretBytes::from(i_to_r),
            responder_to_initiator: SecretBytes::from(r_to_i),
        })
    }

    /// The keys for the SA this side sends on.
    pub fn outbound(&self, we_are_initiator: bool) -> &SecretBytes {
        if we_are_initiator { &self.initiator_to_responder } else { &self.responder_to_initiator }
    }

    /// The keys for the SA this side receives on.
    pub fn inbound(&self, we_are_initiator: bool) -> &SecretBytes {
        if we_are_initiator { &self.responder_to_initiator } else { &self.initiator_to_responder }
    }

    /// Splits into `(inbound, outbound)` key material for this side, ready for
    /// [`crate::esp::SaParams::keymat`] of the inbound and outbound SA.
    pub fn into_inbound_outbound(self, we_are_initiator: bool) -> (SecretBytes, SecretBytes) {
        let Self { initiator_to_responder, responder_to_initiator } = self;
        if we_are_initiator {
            (responder_to_initiator, initiator_to_responder)
        } else {
            (initiator_to_responder, responder_to_initiator)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::crypto::test_provider::TEST_PRF;
    use crate::wire::{EncrId, IntegId};

    #[test]
    fn prf_plus_lengths() {
        for len in [0, 1, 31, 32, 33, 64, 100, 255 * 32] {
            let out = prf_plus(&TEST_PRF, b"key", b"seed", len).unwrap();
            assert_eq!(out.len(), len);
        }
        assert_eq!(prf_plus(&TEST_PRF, b"key", b"seed", 255 * 32 + 1), Err(CryptoError::TooLong));
    }

    #[test]
    fn prf_plus_is_a_prefix_of_longer_output() {
        let long = prf_plus(&TEST_PRF, b"key", b"seed", 100).unwrap();
        let short = prf_plus(&TEST_PRF, b"key", b"seed", 40).unwrap();
        assert_eq!(&long.expose()[..40], short.expose());
    }

    #[test]
    fn prf_plus_follows_rfc7296_2_13() {
        let t1 = TEST_PRF.prf(b"k", b"s\x01").unwrap();
        let mut input = t1.expose().to_vec();
        input.extend(b"s\x02");
        let t2 = TEST_PRF.prf(b"k", &input).unwrap();
        let out = prf_plus(&TEST_PRF, b"k", b"s", 50).unwrap();
        assert_eq!(&out.expose()[..32], t1.expose());
        assert_eq!(&out.expose()[32..], &t2.expose()[..18]);
    }

    #[test]
    fn ike_keys_split_in_rfc_order() {
        let lengths = IkeKeyLengths { integ: 20, encr: 36 };
        let seed_key = skeyseed(&TEST_PRF, b"Ni", b"Nr", b"g^ir").unwrap();
        assert_eq!(seed_key, TEST_PRF.prf(b"NiNr", b"g^ir").unwrap());
        let keys =
            IkeKeys::derive(&TEST_PRF, seed_key.expose(), b"Ni", b"Nr", &[1; 8], &[2; 8], lengths)
                .unwrap();
        let all = prf_plus(
            &TEST_PRF,
            seed_key.expose(),
            b"NiNr\x01\x01\x01\x01\x01\x01\x01\x01\x02\x02\x02\x02\x02\x02\x02\x02",
            3 * 32 + 40 + 72,
        )
        .unwrap();
        let all = all.expose();
        assert_eq!(keys.sk_d.expose(), &all[..32]);
        assert_eq!(keys.sk_ai.expose(), &all[32..52]);
        assert_eq!(keys.sk_ar.expose(), &all[52..72]);
        assert_eq!(keys.sk_ei.expose(), &all[72..108]);
        assert_eq!(keys.sk_er.expose(), &all[108..144]);
        assert_eq!(keys.sk_pi.expose(), &all[144..176]);
        assert_eq!(keys.sk_pr.expose(), &all[176..208]);
        let debug = format!("{keys:?}");
        assert!(debug.contains("redacted"));
        assert!(!debug.contains(&format!("{:?}", &all[..4])));
    }

    /// A PRF with a fixed 16-byte key that just returns its key, to see what SKEYSEED keys it.
    struct FixedKeyPrf;

    impl Prf for FixedKeyPrf {
        fn id(&self) -> crate::wire::PrfId {
            crate::wire::PrfId::PRF_AES128_XCBC
        }
        fn output_len(&self) -> usize {
            16
        }
        fn fixed_key_len(&self) -> Option<usize> {
            Some(16)
        }
        fn prf(&self, key: &[u8], _: &[u8]) -> Result<SecretBytes, CryptoError> {
            Ok(SecretBytes::from(key))
        }
    }

    #[test]
    fn skeyseed_splits_nonces_for_fixed_key_prfs() {
        let ni = [1u8; 32];
        let nr = [2u8; 32];
        let key = skeyseed(&FixedKeyPrf, &ni, &nr, b"g^ir").unwrap();
        assert_eq!(key.expose(), [[1u8; 8], [2u8; 8]].concat());
        // Nonces that add up to the key length are used as they are.
        let key = skeyseed(&FixedKeyPrf, &ni[..10], &nr[..6], b"g^ir").unwrap();
        assert_eq!(key.expose(), [&ni[..10], &nr[..6]].concat());
        assert_eq!(
            skeyseed(&FixedKeyPrf, &ni[..4], &nr[..4], b"g^ir"),
            Err(CryptoError::BadKeyLength)
        );
    }

    #[test]
    fn rekey_skeyseed_uses_old_sk_d() {
        let s = rekey_skeyseed(&TEST_PRF, b"skd", b"gir", b"ni", b"nr").unwrap();
        assert_eq!(s, TEST_PRF.prf(b"skd", b"girninr").unwrap());
    }

    #[test]
    fn child_keys_take_initiator_to_responder_first() {
        let suite = EspSuite {
            encr: EncrId::ENCR_AES_CBC,
            encr_key_bits: 128,
            integ: IntegId::AUTH_HMAC_SHA2_256_128,
        };
        let keys = ChildKeys::derive(&TEST_PRF, b"skd", None, b"ni", b"nr", &suite).unwrap();
        let all = prf_plus(&TEST_PRF, b"skd", b"ninr", 2 * 48).unwrap();
        assert_eq!(keys.initiator_to_responder.expose(), &all.expose()[..48]);
        assert_eq!(keys.responder_to_initiator.expose(), &all.expose()[48..]);
        assert_eq!(keys.outbound(true), &keys.initiator_to_responder);
        assert_eq!(keys.inbound(true), &keys.responder_to_initiator);
        assert_eq!(keys.outbound(false), keys.inbound(true));
        let (inbound, outbound) = keys.clone().into_inbound_outbound(false);
        assert_eq!(&inbound, keys.outbound(true));
        assert_eq!(&outbound, keys.inbound(true));

        let pfs = ChildKeys::derive(&TEST_PRF, b"skd", Some(b"gir"), b"ni", b"nr", &suite).unwrap();
        let all = prf_plus(&TEST_PRF, b"skd", b"girninr", 2 * 48).unwrap();
        assert_eq!(pfs.initiator_to_responder.expose(), &all.expose()[..48]);
    }

    #[test]
    fn child_keys_reject_unknown_suites() {
        let suite =
            EspSuite { encr: EncrId::ENCR_AES_CBC, encr_key_bits: 100, integ: IntegId::NONE };
        assert_eq!(
            ChildKeys::derive(&TEST_PRF, b"skd", None, b"ni", b"nr", &suite),
            Err(CryptoError::Unsupported)
        );
    }
}
