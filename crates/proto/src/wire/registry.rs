//! IANA registries as newtypes over the wire integer.
//!
//! Every registry is a `struct Name(pub u8|u16)` with one associated constant per known value
//! (named as in the IANA registry), a `Debug` that prints the known name or the unknown value in
//! hex, and `From` conversions both ways. Unknown values are never rejected here: they survive a
//! parse/emit round trip, so a caller can decide what "unknown" means (skip, or
//! `UNSUPPORTED_CRITICAL_PAYLOAD`) instead of losing it (rustls `enum_builder!`, smoltcp
//! `enum_with_unknown!`).

/// Defines a registry newtype; see the module documentation.
macro_rules! registry {
    (
        $(#[$meta:meta])*
        pub struct $name:ident($ty:ty) {
            $( $(#[$cmeta:meta])* $konst:ident = $value:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $ty);

        impl $name {
            $( $(#[$cmeta])* pub const $konst: Self = Self($value); )*

            /// The registry name of this value, or `None` when the value is not known to us.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some(stringify!($konst)), )*
                    _ => None,
                }
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "Unknown({:#x})", self.0),
                }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::Debug::fmt(self, f)
            }
        }

        impl From<$ty> for $name {
            fn from(value: $ty) -> Self {
                Self(value)
            }
        }

        impl From<$name> for $ty {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}
#[allow(unused_imports, reason = "exported for registries defined outside this module")]
pub(crate) use registry;

registry! {
    /// IP protocol numbers ("Assigned Internet Protocol Numbers"), also used as IPv6 Next Header
    /// and as the ESP/AH Next Header field.
    pub struct IpProtocol(u8) {
        /// IPv6 Hop-by-Hop Options (RFC 8200 §4.3).
        HOPOPT = 0,
        /// ICMP for IPv4.
        ICMP = 1,
        /// IPv4 encapsulation (tunnel mode with an IPv4 inner packet).
        IPV4 = 4,
        /// TCP.
        TCP = 6,
        /// UDP.
        UDP = 17,
        /// IPv6 encapsulation (tunnel mode with an IPv6 inner packet).
        IPV6 = 41,
        /// IPv6 Routing header.
        IPV6_ROUTE = 43,
        /// IPv6 Fragment header.
        IPV6_FRAG = 44,
        /// Encapsulating Security Payload (RFC 4303).
        ESP = 50,
        /// Authentication Header (RFC 4302).
        AH = 51,
        /// ICMP for IPv6.
        ICMPV6 = 58,
        /// No next header: an ESP dummy packet (RFC 4303 §2.6) or an empty IPv6 payload.
        IPV6_NONXT = 59,
        /// IPv6 Destination Options.
        IPV6_OPTS = 60,
        /// SCTP.
        SCTP = 132,
        /// Mobility header (RFC 6275).
        MOBILITY = 135,
    }
}

registry! {
    /// IKEv2 Transform Type 1: encryption algorithm (RFC 7296 §3.3.2, IANA "Transform Type 1").
    pub struct EncrId(u16) {
        /// Triple DES in CBC mode (RFC 2451). Legacy: only when named in the config.
        ENCR_3DES = 3,
        /// NULL encryption (RFC 2410): integrity only.
        ENCR_NULL = 11,
        /// AES in CBC mode (RFC 3602).
        ENCR_AES_CBC = 12,
        /// AES in counter mode (RFC 3686).
        ENCR_AES_CTR = 13,
        /// AES-CCM with an 8-octet ICV (RFC 4309).
        ENCR_AES_CCM_8 = 14,
        /// AES-CCM with a 12-octet ICV (RFC 4309).
        ENCR_AES_CCM_12 = 15,
        /// AES-CCM with a 16-octet ICV (RFC 4309).
        ENCR_AES_CCM_16 = 16,
        /// AES-GCM with an 8-octet ICV (RFC 4106).
        ENCR_AES_GCM_8 = 18,
        /// AES-GCM with a 12-octet ICV (RFC 4106).
        ENCR_AES_GCM_12 = 19,
        /// AES-GCM with a 16-octet ICV (RFC 4106).
        ENCR_AES_GCM_16 = 20,
        /// AES-GMAC: integrity only, no confidentiality (RFC 4543).
        ENCR_NULL_AUTH_AES_GMAC = 21,
        /// ChaCha20-Poly1305 (RFC 7634).
        ENCR_CHACHA20_POLY1305 = 28,
    }
}

registry! {
    /// IKEv2 Transform Type 2: pseudorandom function (RFC 7296 §3.3.2).
    pub struct PrfId(u16) {
        /// HMAC-MD5 (RFC 2104). Legacy.
        PRF_HMAC_MD5 = 1,
        /// HMAC-SHA1 (RFC 2104).
        PRF_HMAC_SHA1 = 2,
        /// AES-XCBC-PRF-128 (RFC 4434).
        PRF_AES128_XCBC = 4,
        /// HMAC-SHA-256 (RFC 4868).
        PRF_HMAC_SHA2_256 = 5,
        /// HMAC-SHA-384 (RFC 4868).
        PRF_HMAC_SHA2_384 = 6,
        /// HMAC-SHA-512 (RFC 4868).
        PRF_HMAC_SHA2_512 = 7,
        /// AES-CMAC-PRF-128 (RFC 4615).
        PRF_AES128_CMAC = 8,
    }
}

registry! {
    /// IKEv2 Transform Type 3: integrity algorithm (RFC 7296 §3.3.2).
    pub struct IntegId(u16) {
        /// No integrity transform (with an AEAD cipher).
        NONE = 0,
        /// HMAC-MD5-96 (RFC 2403). Legacy.
        AUTH_HMAC_MD5_96 = 1,
        /// HMAC-SHA1-96 (RFC 2404).
        AUTH_HMAC_SHA1_96 = 2,
        /// AES-XCBC-MAC-96 (RFC 3566).
        AUTH_AES_XCBC_96 = 5,
        /// AES-CMAC-96 (RFC 4494).
        AUTH_AES_CMAC_96 = 8,
        /// HMAC-SHA-256-128 (RFC 4868).
        AUTH_HMAC_SHA2_256_128 = 12,
        /// HMAC-SHA-384-192 (RFC 4868).
        AUTH_HMAC_SHA2_384_192 = 13,
        /// HMAC-SHA-512-256 (RFC 4868).
        AUTH_HMAC_SHA2_512_256 = 14,
    }
}

registry! {
    /// IKEv2 Transform Type 4: key exchange method (RFC 7296 §3.3.2, RFC 9370).
    pub struct KeId(u16) {
        /// No key exchange (CHILD SA without PFS).
        NONE = 0,
        /// 1024-bit MODP group (RFC 2409). Legacy.
        MODP_1024 = 2,
        /// 1536-bit MODP group (RFC 3526).
        MODP_1536 = 5,
        /// 2048-bit MODP group (RFC 3526).
        MODP_2048 = 14,
        /// 3072-bit MODP group (RFC 3526).
        MODP_3072 = 15,
        /// 4096-bit MODP group (RFC 3526).
        MODP_4096 = 16,
        /// 6144-bit MODP group (RFC 3526).
        MODP_6144 = 17,
        /// 8192-bit MODP group (RFC 3526).
        MODP_8192 = 18,
        /// 256-bit random ECP group (RFC 5903).
        ECP_256 = 19,
        /// 384-bit random ECP group (RFC 5903).
        ECP_384 = 20,
        /// 521-bit random ECP group (RFC 5903).
        ECP_521 = 21,
        /// Curve25519 (RFC 8031).
        CURVE25519 = 31,
        /// Curve448 (RFC 8031).
        CURVE448 = 32,
        /// ML-KEM-512 (draft-ietf-ipsecme-ikev2-mlkem).
        ML_KEM_512 = 35,
        /// ML-KEM-768 (draft-ietf-ipsecme-ikev2-mlkem).
        ML_KEM_768 = 36,
        /// ML-KEM-1024 (draft-ietf-ipsecme-ikev2-mlkem).
        ML_KEM_1024 = 37,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_print_their_names() {
        assert_eq!(format!("{:?}", EncrId::ENCR_AES_GCM_16), "ENCR_AES_GCM_16");
        assert_eq!(format!("{}", IpProtocol::ESP), "ESP");
    }

    #[test]
    fn unknown_values_survive_and_print_in_hex() {
        let v = EncrId::from(0x4242);
        assert_eq!(v.name(), None);
        assert_eq!(format!("{v:?}"), "Unknown(0x4242)");
        assert_eq!(u16::from(v), 0x4242);
        assert_eq!(IpProtocol::from(253).0, 253);
    }
}
