//! The IKE SA's keys and the Encrypted payload (RFC 7296 §3.14; RFC 5282 for AES-GCM,
//! RFC 7634 for ChaCha20-Poly1305).
//!
//! ```text
//! message = IKE header ‖ [unencrypted payloads] ‖ SK generic header ‖ IV ‖ E(inner ‖ pad ‖ pad length) ‖ ICV
//! ```
//!
//! The associated data (AEAD) or the MAC input prefix (CBC + HMAC) is everything before the
//! IV. [`SaCrypto::decrypt`] is where the type decides whether we may answer:
//! [`Decoded::Unprotected`] (integrity failed or not an SK message: drop silently) versus a
//! message whose contents can be trusted.

use core::fmt;

use super::proposal::IkeSuite;
use crate::crypto::keys::{IkeKeyLengths, IkeKeys, skeyseed};
use crate::crypto::{CryptoError, CryptoProvider, EspCipher, EspKeys, EspSuite, Prf, SecretBytes};
use crate::wire::ikev2::{HeaderRepr, Message, Payload, Sk, emit_chain, parse_chain};

/// The keys of an established (or half-established) IKE SA, from one side's point of view.
pub struct SaCrypto {
    /// The negotiated algorithms.
    pub suite: IkeSuite,
    /// The PRF.
    pub prf: &'static dyn Prf,
    /// SK_d, for CHILD_SA keys and rekeying.
    pub sk_d: SecretBytes,
    /// SK_p of our side (SK_pi if we are the original initiator).
    pub sk_p_ours: SecretBytes,
    /// SK_p of the peer.
    pub sk_p_peer: SecretBytes,
    outbound: Box<dyn EspCipher>,
    inbound: Box<dyn EspCipher>,
    /// Counter for unique IVs (the AEADs need uniqueness, not unpredictability).
    iv_counter: u64,
    rng: &'static dyn crate::crypto::SecureRandom,
}

impl fmt::Debug for SaCrypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaCrypto").field("suite", &self.suite).finish_non_exhaustive()
    }
}

/// Why protecting or unprotecting failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtectError {
    /// The suite is not implemented by the provider.
    #[error("the crypto provider does not implement the negotiated IKE algorithms")]
    Unsupported,
    /// A provider error.
    #[error("crypto error: {0}")]
    Crypto(#[from] CryptoError),
    /// The message could not be built.
    #[error("message too large")]
    Encode,
}

/// A received message after integrity checking.
#[derive(Debug)]
pub enum Decoded {
    /// Authentic: the header and the decrypted inner payloads (the unencrypted payloads
    /// before SK, if any, are included first).
    Ok {
        /// The header.
        header: HeaderRepr,
        /// The payloads.
        payloads: Vec<Payload>,
    },
    /// Authentic, but the inner payloads do not parse: answer with INVALID_SYNTAX.
    Protected {
        /// The header.
        header: HeaderRepr,
    },
    /// Not authentic, not an SK message, or malformed outside the protection: drop silently
    /// (RFC 7296 §2.21.2).
    Unprotected(&'static str),
}

impl SaCrypto {
    /// Derives the IKE SA keys (RFC 7296 §2.14) and builds both directions' ciphers.
    /// `we_are_initiator` is the role in the IKE_SA_INIT that created this SA.
    #[allow(clippy::too_many_arguments)]
    pub fn derive(
        provider: &CryptoProvider,
        suite: IkeSuite,
        shared: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
        we_are_initiator: bool,
    ) -> Result<Self, ProtectError> {
        let prf = provider.prf.prf(suite.prf).ok_or(ProtectError::Unsupported)?;
        let seed = skeyseed(prf, ni, nr, shared)?;
        Self::from_skeyseed(provider, suite, prf, &seed, ni, nr, spi_i, spi_r, we_are_initiator)
    }

    /// Builds the SA from SKEYSEED (also used by IKE SA rekeying, RFC 7296 §2.18).
    #[allow(clippy::too_many_arguments)]
    pub fn from_skeyseed(
        provider: &CryptoProvider,
        suite: IkeSuite,
        prf: &'static dyn Prf,
        seed: &SecretBytes,
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
        we_are_initiator: bool,
    ) -> Result<Self, ProtectError> {
        let esp =
            EspSuite { encr: suite.encr, encr_key_bits: suite.encr_key_bits, integ: suite.integ };
        let lengths = IkeKeyLengths {
            integ: esp.integ_keymat_len().ok_or(ProtectError::Unsupported)?,
            encr: esp.encr_keymat_len().ok_or(ProtectError::Unsupported)?,
        };
        let keys = IkeKeys::derive(
            prf,
            seed.expose(),
            ni,
            nr,
            &spi_i.to_be_bytes(),
            &spi_r.to_be_bytes(),
            lengths,
        )?;
        let cipher = |e: &SecretBytes, a: &SecretBytes| {
            provider
                .esp
                .new_cipher(&esp, &EspKeys { encr: e.expose(), integ: a.expose() })
                .map_err(|_| ProtectError::Unsupported)
        };
        let to_responder = cipher(&keys.sk_ei, &keys.sk_ai)?;
        let to_initiator = cipher(&keys.sk_er, &keys.sk_ar)?;
        let IkeKeys { sk_d, sk_pi, sk_pr, .. } = keys;
        let (outbound, inbound, sk_p_ours, sk_p_peer) = if we_are_initiator {
            (to_responder, to_initiator, sk_pi, sk_pr)
        } else {
            (to_initiator, to_responder, sk_pr, sk_pi)
        };
        Ok(Self {
            suite,
            prf,
            sk_d,
            sk_p_ours,
            sk_p_peer,
            outbound,
            inbound,
            iv_counter: 0,
            rng: provider.secure_random,
        })
    }

    /// Builds a protected message: `header` with `payloads` inside an SK payload.
    pub fn encrypt(
        &mut self,
        header: HeaderRepr,
        payloads: &[Payload],
    ) -> Result<Vec<u8>, ProtectError> {
        let mut inner = Vec::new();
        let first = emit_chain(payloads, &mut inner).map_err(|_| ProtectError::Encode)?;
        let block = self.outbound.block_len().max(1);
        // inner ‖ padding ‖ pad length, a multiple of the block size (RFC 7296 §3.14).
        let pad = (block - (inner.len() + 1) % block) % block;
        let mut padding = [0u8; 255];
        if let Some(p) = padding.get_mut(..pad) {
            self.rng.fill(p)?;
        }
        inner.extend_from_slice(padding.get(..pad).unwrap_or_default());
        inner.push(u8::try_from(pad).map_err(|_| ProtectError::Encode)?);
        let iv_len = self.outbound.iv_len();
        let icv_len = self.outbound.icv_len();
        let body_len = iv_len + inner.len() + icv_len;
        let msg = Message {
            header,
            payloads: vec![Payload::Sk(Sk { first_payload: first, body: vec![0; body_len] })],
        };
        let mut out = msg.emit().map_err(|_| ProtectError::Encode)?;
        let aad_len = out.len().checked_sub(body_len).ok_or(ProtectError::Encode)?;
        let (aad, body) = out.split_at_mut(aad_len);
        let (iv, rest) = body.split_at_mut(iv_len);
        let (ct, icv) = rest.split_at_mut(inner.len());
        self.iv_counter = self.iv_counter.wrapping_add(1);
        self.outbound.generate_iv(self.iv_counter, iv)?;
        ct.copy_from_slice(&inner);
        self.outbound.seal_ike(aad, iv, ct, icv)?;
        Ok(out)
    }

    /// Checks and decrypts a received message.
    pub fn decrypt(&self, bytes: &[u8]) -> Decoded {
        let Ok(msg) = Message::parse(bytes) else {
            return Decoded::Unprotected("malformed message");
        };
        let header = msg.header;
        let mut payloads = msg.payloads;
        let Some(Payload::Sk(sk)) = payloads.pop() else {
            return Decoded::Unprotected("no Encrypted payload");
        };
        let iv_len = self.inbound.iv_len();
        let icv_len = self.inbound.icv_len();
        let Some(aad_len) = bytes.len().checked_sub(sk.body.len()) else {
            return Decoded::Unprotected("malformed message");
        };
        let Some(ct_len) = sk.body.len().checked_sub(iv_len + icv_len) else {
            return Decoded::Unprotected("Encrypted payload too short");
        };
        let aad = bytes.get(..aad_len).unwrap_or_default();
        let (iv, rest) = sk.body.split_at(iv_len.min(sk.body.len()));
        let (ct, icv) = rest.split_at(ct_len.min(rest.len()));
        let mut plain = ct.to_vec();
        if self.inbound.open_ike(aad, iv, &mut plain, icv).is_err() {
            return Decoded::Unprotected("integrity check failed");
        }
        let Some((&pad_len, rest)) = plain.split_last() else {
            return Decoded::Protected { header };
        };
        let Some(inner_len) = rest.len().checked_sub(usize::from(pad_len)) else {
            return Decoded::Protected { header };
        };
        match parse_chain(sk.first_payload, rest.get(..inner_len).unwrap_or_default()) {
            Ok(inner) => {
                payloads.extend(inner);
                Decoded::Ok { header, payloads }
            }
            Err(_) => Decoded::Protected { header },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::crypto::test_provider::TEST_PROVIDER;
    use crate::wire::ikev2::{ExchangeType, Flags, Nonce, PayloadType};
    use crate::wire::{EncrId, IntegId, KeId, PrfId};

    fn pair() -> (SaCrypto, SaCrypto) {
        let suite = IkeSuite {
            encr: EncrId::ENCR_AES_CBC,
            encr_key_bits: 128,
            prf: PrfId::PRF_HMAC_SHA2_256,
            integ: IntegId::AUTH_HMAC_SHA2_256_128,
            ke: KeId::MODP_2048,
        };
        let i =
            SaCrypto::derive(&TEST_PROVIDER, suite, b"shared", b"ni", b"nr", 1, 2, true).unwrap();
        let r =
            SaCrypto::derive(&TEST_PROVIDER, suite, b"shared", b"ni", b"nr", 1, 2, false).unwrap();
        (i, r)
    }

    fn header() -> HeaderRepr {
        HeaderRepr {
            spi_i: 1,
            spi_r: 2,
            next_payload: PayloadType::NONE,
            minor_version: 0,
            exchange_type: ExchangeType::INFORMATIONAL,
            flags: Flags::INITIATOR,
            message_id: 7,
            payload_len: 0,
        }
    }

    #[test]
    fn round_trip_and_tamper() {
        let (mut i, r) = pair();
        let payloads = vec![Payload::Nonce(Nonce { data: vec![1, 2, 3] })];
        let bytes = i.encrypt(header(), &payloads).unwrap();
        match r.decrypt(&bytes) {
            Decoded::Ok { header: h, payloads: p } => {
                assert_eq!(h.message_id, 7);
                assert_eq!(p, payloads);
            }
            other => panic!("{other:?}"),
        }
        // The initiator cannot read its own message (other direction's keys).
        assert!(matches!(i.decrypt(&bytes), Decoded::Unprotected(_)));
        for pos in [0, 20, 30, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[pos] ^= 1;
            assert!(matches!(r.decrypt(&bad), Decoded::Unprotected(_)), "flip at {pos}");
        }
        // Empty message (liveness check).
        let bytes = i.encrypt(header(), &[]).unwrap();
        assert!(matches!(r.decrypt(&bytes), Decoded::Ok { payloads, .. } if payloads.is_empty()));
    }
}
