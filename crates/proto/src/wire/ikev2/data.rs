//! Payloads whose body is a small fixed part and opaque data: KE (§3.4), ID (§3.5), CERT and
//! CERTREQ (§3.6, §3.7), AUTH (§3.8), Nonce (§3.9), Vendor ID (§3.12) and CP (§3.15).

use super::codec::{Reader, patch_len16, placeholder16, put_u16};
use super::registry::{AuthMethod, CertEncoding, CfgAttributeType, CfgType, IdType};
use crate::wire::{Error, KeId, Result};

/// Key Exchange payload (RFC 7296 §3.4): `Group Num (2) ‖ RESERVED (2) ‖ Key Exchange Data`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ke {
    /// Key exchange method (Diffie-Hellman group).
    pub group: KeId,
    /// The public value.
    pub data: Vec<u8>,
}

impl Ke {
    /// Parses a KE body.
    pub fn parse(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let group = KeId(r.u16("KE payload")?);
        r.reserved("KE reserved", 2)?;
        Ok(Self { group, data: r.rest().to_vec() })
    }

    /// Length of the emitted body.
    pub fn buffer_len(&self) -> usize {
        4 + self.data.len()
    }

    /// Appends the body to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        put_u16(out, self.group.0);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Defines a payload whose body is `type octet ‖ RESERVED (3) ‖ data`.
macro_rules! typed_data {
    ($(#[$meta:meta])* $name:ident, $field:ident: $ty:ident, $what:literal, $reserved:literal) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name {
            #[doc = concat!("The ", $what, " type octet.")]
            pub $field: $ty,
            /// The data after the fixed part.
            pub data: Vec<u8>,
        }

        impl $name {
            #[doc = concat!("Parses a ", $what, " body.")]
            pub fn parse(body: &[u8]) -> Result<Self> {
                let mut r = Reader::new(body);
                let $field = $ty(r.u8(concat!($what, " payload"))?);
                r.reserved($reserved, 3)?;
                Ok(Self { $field, data: r.rest().to_vec() })
            }

            /// Length of the emitted body.
            pub fn buffer_len(&self) -> usize {
                4 + self.data.len()
            }

            /// Appends the body to `out`.
            pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
                out.extend_from_slice(&[self.$field.0, 0, 0, 0]);
                out.extend_from_slice(&self.data);
                Ok(())
            }
        }
    };
}

typed_data!(
    /// Identification payload, IDi or IDr (RFC 7296 §3.5): `ID Type ‖ RESERVED (3) ‖ data`.
    Id, id_type: IdType, "ID", "ID reserved"
);

typed_data!(
    /// Authentication payload (RFC 7296 §3.8): `Auth Method ‖ RESERVED (3) ‖ data`.
    Auth, method: AuthMethod, "AUTH", "AUTH reserved"
);

/// Certificate or Certificate Request payload (RFC 7296 §3.6, §3.7):
/// `Cert Encoding ‖ data` (certificate data, or concatenated CA key hashes for CERTREQ).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cert {
    /// Certificate encoding.
    pub encoding: CertEncoding,
    /// Certificate data or certification authority hashes.
    pub data: Vec<u8>,
}

impl Cert {
    /// Parses a CERT or CERTREQ body.
    pub fn parse(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let encoding = CertEncoding(r.u8("CERT payload")?);
        Ok(Self { encoding, data: r.rest().to_vec() })
    }

    /// Length of the emitted body.
    pub fn buffer_len(&self) -> usize {
        1 + self.data.len()
    }

    /// Appends the body to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.push(self.encoding.0);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Defines a payload whose body is opaque data.
macro_rules! opaque {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name {
            /// The body.
            pub data: Vec<u8>,
        }

        impl $name {
            #[doc = concat!("Parses a ", $what, " body (any length).")]
            pub fn parse(body: &[u8]) -> Result<Self> {
                Ok(Self { data: body.to_vec() })
            }

            /// Length of the emitted body.
            pub fn buffer_len(&self) -> usize {
                self.data.len()
            }

            /// Appends the body to `out`.
            pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
                out.extend_from_slice(&self.data);
                Ok(())
            }
        }
    };
}

opaque!(
    /// Nonce payload (RFC 7296 §3.9). The 16–256 byte bound of §2.10 is the protocol layer's
    /// check, not the wire format's.
    Nonce, "Nonce"
);

opaque!(
    /// Vendor ID payload (RFC 7296 §3.12).
    VendorId, "Vendor ID"
);

/// One configuration attribute (RFC 7296 §3.15.1):
/// `R (1 bit) ‖ Attribute Type (15 bits) ‖ Length (2) ‖ Value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CfgAttribute {
    /// Attribute type (15 bits).
    pub ty: CfgAttributeType,
    /// Value (empty in a CFG_REQUEST that asks for any value).
    pub value: Vec<u8>,
}

/// Configuration payload (RFC 7296 §3.15): `CFG Type ‖ RESERVED (3) ‖ attributes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cp {
    /// Request, reply, set or ack.
    pub cfg_type: CfgType,
    /// The attributes, in order.
    pub attributes: Vec<CfgAttribute>,
}

impl Cp {
    /// Parses a CP body. The R bit of each attribute is reserved and must be zero.
    pub fn parse(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let cfg_type = CfgType(r.u8("CP payload")?);
        r.reserved("CP reserved", 3)?;
        let mut attributes = Vec::new();
        while !r.is_empty() {
            let ty = r.u16("CP attribute")?;
            if ty & 0x8000 != 0 {
                return Err(Error::Malformed { what: "CP attribute reserved bit" });
            }
            let len = r.u16("CP attribute")?;
            let value = r.take("CP attribute value", usize::from(len))?.to_vec();
            attributes.push(CfgAttribute { ty: CfgAttributeType(ty), value });
        }
        Ok(Self { cfg_type, attributes })
    }

    /// Length of the emitted body.
    pub fn buffer_len(&self) -> usize {
        self.attributes.iter().fold(4usize, |acc, a| acc.saturating_add(4 + a.value.len()))
    }

    /// Appends the body to `out`. Fails on an attribute type above 0x7fff or a value longer
    /// than 65535 bytes.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&[self.cfg_type.0, 0, 0, 0]);
        for a in &self.attributes {
            if a.ty.0 & 0x8000 != 0 {
                return Err(Error::Malformed { what: "CP attribute type" });
            }
            put_u16(out, a.ty.0);
            let at = placeholder16(out);
            let start = out.len();
            out.extend_from_slice(&a.value);
            patch_len16("CP attribute length", out, at, start)?;
        }
        Ok(())
    }
}
