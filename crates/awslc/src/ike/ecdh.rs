//! ECP groups 19/20/21 (RFC 5903) and Curve25519 (RFC 8031) over aws-lc-rs `agreement`.

use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey};
use ferroswan_proto::crypto::{CryptoError, KeGroup, KeSecret, SecretBytes, SecureRandom};
use ferroswan_proto::wire::KeId;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// An elliptic-curve key exchange method.
#[derive(Clone, Copy, Debug)]
pub(super) struct EcGroup {
    id: KeId,
    algorithm: &'static agreement::Algorithm,
    /// Length of the private scalar in bytes.
    scalar_len: usize,
    /// Length of the KE payload's public value: `x ‖ y` for ECP, `u` for Curve25519.
    public_len: usize,
}

pub(super) static ECP_256: EcGroup =
    EcGroup { id: KeId::ECP_256, algorithm: &agreement::ECDH_P256, scalar_len: 32, public_len: 64 };
pub(super) static ECP_384: EcGroup =
    EcGroup { id: KeId::ECP_384, algorithm: &agreement::ECDH_P384, scalar_len: 48, public_len: 96 };
pub(super) static ECP_521: EcGroup = EcGroup {
    id: KeId::ECP_521,
    algorithm: &agreement::ECDH_P521,
    scalar_len: 66,
    public_len: 132,
};
pub(super) static CURVE25519: EcGroup =
    EcGroup { id: KeId::CURVE25519, algorithm: &agreement::X25519, scalar_len: 32, public_len: 32 };

/// How many random scalars to try before giving up: each try fails only when the scalar is
/// zero or not below the group order (for P-256 with probability < 2^-32).
const MAX_TRIES: usize = 64;

impl EcGroup {
    fn is_x25519(&self) -> bool {
        self.id == KeId::CURVE25519
    }

    /// Builds the secret from a private scalar (big-endian for ECP, RFC 7748 bytes for X25519).
    pub(super) fn secret_from_scalar(&self, scalar: &[u8]) -> Result<EcSecret, CryptoError> {
        let key = PrivateKey::from_private_key(self.algorithm, scalar)
            .map_err(|_| CryptoError::BadKeyLength)?;
        let public = key.compute_public_key().map_err(|_| CryptoError::Internal)?;
        let public = public.as_ref();
        // aws-lc-rs gives ECP public keys in the uncompressed SEC1 form 0x04 ‖ x ‖ y; IKEv2
        // carries x ‖ y only (RFC 5903 §7).
        let public = if self.is_x25519() {
            public
        } else {
            match public.split_first() {
                Some((0x04, xy)) => xy,
                _ => return Err(CryptoError::Internal),
            }
        };
        if public.len() != self.public_len {
            return Err(CryptoError::Internal);
        }
        Ok(EcSecret { group: *self, key, public: public.to_vec() })
    }
}

impl KeGroup for EcGroup {
    fn id(&self) -> KeId {
        self.id
    }

    fn public_len(&self) -> usize {
        self.public_len
    }

    fn generate(&self, rng: &dyn SecureRandom) -> Result<Box<dyn KeSecret>, CryptoError> {
        let mut scalar = Zeroizing::new(vec![0u8; self.scalar_len]);
        for _ in 0..MAX_TRIES {
            rng.fill(&mut scalar)?;
            if self.id == KeId::ECP_521 {
                // The P-521 order has 521 bits: keep the top byte to its one significant bit.
                if let Some(top) = scalar.first_mut() {
                    *top &= 0x01;
                }
            }
            match self.secret_from_scalar(&scalar) {
                Ok(secret) => return Ok(Box::new(secret)),
                Err(CryptoError::BadKeyLength) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(CryptoError::Rng)
    }
}

/// An ephemeral EC private key (AWS-LC clears it when it is freed).
pub(super) struct EcSecret {
    group: EcGroup,
    key: PrivateKey,
    public: Vec<u8>,
}

impl KeSecret for EcSecret {
    fn id(&self) -> KeId {
        self.group.id
    }

    fn public_value(&self) -> &[u8] {
        &self.public
    }

    fn agree(&self, peer_public: &[u8]) -> Result<SecretBytes, CryptoError> {
        if peer_public.len() != self.group.public_len {
            return Err(CryptoError::InvalidPublicValue);
        }
        let mut encoded = Vec::with_capacity(peer_public.len() + 1);
        if !self.group.is_x25519() {
            encoded.push(0x04);
        }
        encoded.extend_from_slice(peer_public);
        // AWS-LC checks that an ECP point is on the curve, and rejects an all-zero X25519
        // output; the check below makes the latter independent of the library (RFC 8031 §2.3).
        let shared = agreement::agree(
            &self.key,
            UnparsedPublicKey::new(self.group.algorithm, &encoded),
            CryptoError::InvalidPublicValue,
            |secret| Ok(SecretBytes::from(secret)),
        )?;
        let zero = vec![0u8; shared.len()];
        if bool::from(shared.expose().ct_eq(&zero)) {
            return Err(CryptoError::InvalidPublicValue);
        }
        Ok(shared)
    }
}
