//! Security Association payload (RFC 7296 §3.3): proposals, transforms, attributes.
//!
//! ```text
//! SA body       = Proposal+
//! Proposal      = Last Substruc (0 last, 2 more) ‖ RESERVED ‖ Proposal Length (2) ‖
//!                 Proposal Num ‖ Protocol ID ‖ SPI Size ‖ Num Transforms ‖ SPI ‖ Transform+
//! Transform     = Last Substruc (0 last, 3 more) ‖ RESERVED ‖ Transform Length (2) ‖
//!                 Transform Type ‖ RESERVED ‖ Transform ID (2) ‖ Attribute*
//! Attribute     = AF ‖ Attribute Type (15 bits) ‖ (AF=1: Value (2) | AF=0: Length (2) ‖ Value)
//! ```
//!
//! Unknown transform types, transform IDs and attribute types are kept. The Last Substruc,
//! length and count fields are derived from the structure on emit, so on parse they must agree
//! with it (otherwise `Malformed`).

use super::codec::{Reader, len_u8, patch_len16, placeholder16, put_u16};
use super::registry::{AttributeType, ProtocolId, TransformType};
use crate::wire::{EncrId, Error, IntegId, KeId, PrfId, Result};

/// Last Substruc value of a proposal that is followed by another.
const MORE_PROPOSALS: u8 = 2;
/// Last Substruc value of a transform that is followed by another.
const MORE_TRANSFORMS: u8 = 3;
/// The Attribute Format bit: set for the 2-byte TV form.
const AF_TV: u16 = 0x8000;

/// Security Association payload: a list of proposals in preference order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sa {
    /// The proposals (at least one).
    pub proposals: Vec<Proposal>,
}

/// One proposal substructure (§3.3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Proposal number: 1 for the first, then consecutive (§3.3.1); kept as received.
    pub number: u8,
    /// IKE, AH or ESP.
    pub protocol: ProtocolId,
    /// The sender's SPI: empty for the initial IKE SA, 8 bytes when rekeying it, 4 for AH/ESP.
    pub spi: Vec<u8>,
    /// The transforms (at most 255).
    pub transforms: Vec<Transform>,
}

/// One transform substructure (§3.3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transform {
    /// Transform type.
    pub ty: TransformType,
    /// Transform ID, to be read according to `ty` (see [`Self::encr`] and friends).
    pub id: u16,
    /// Attributes, in order.
    pub attributes: Vec<Attribute>,
}

/// A transform attribute (§3.3.5).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attribute {
    /// Type/Length/Value form (AF = 0).
    Tlv {
        /// Attribute type (15 bits).
        ty: AttributeType,
        /// Value.
        value: Vec<u8>,
    },
    /// Type/Value form (AF = 1), such as Key Length.
    Tv {
        /// Attribute type (15 bits).
        ty: AttributeType,
        /// Value.
        value: u16,
    },
}

impl Attribute {
    /// The attribute's type.
    pub fn ty(&self) -> AttributeType {
        match self {
            Self::Tlv { ty, .. } | Self::Tv { ty, .. } => *ty,
        }
    }

    fn buffer_len(&self) -> usize {
        match self {
            Self::Tlv { value, .. } => 4usize.saturating_add(value.len()),
            Self::Tv { .. } => 4,
        }
    }

    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let raw = r.u16("transform attribute")?;
        let ty = AttributeType(raw & !AF_TV);
        if raw & AF_TV != 0 {
            Ok(Self::Tv { ty, value: r.u16("transform attribute")? })
        } else {
            let len = r.u16("transform attribute")?;
            let value = r.take("transform attribute value", usize::from(len))?.to_vec();
            Ok(Self::Tlv { ty, value })
        }
    }

    fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        if self.ty().0 & AF_TV != 0 {
            return Err(Error::Malformed { what: "transform attribute type" });
        }
        match self {
            Self::Tv { ty, value } => {
                put_u16(out, ty.0 | AF_TV);
                put_u16(out, *value);
            }
            Self::Tlv { ty, value } => {
                put_u16(out, ty.0);
                let at = placeholder16(out);
                let start = out.len();
                out.extend_from_slice(value);
                patch_len16("transform attribute length", out, at, start)?;
            }
        }
        Ok(())
    }
}

impl Transform {
    /// An encryption transform, with a Key Length attribute if `key_bits` is given (required
    /// for variable-length ciphers such as AES, §3.3.5).
    pub fn encr(id: EncrId, key_bits: Option<u16>) -> Self {
        let attributes = key_bits
            .map(|bits| Attribute::Tv { ty: AttributeType::KEY_LENGTH, value: bits })
            .into_iter()
            .collect();
        Self { ty: TransformType::ENCR, id: id.0, attributes }
    }

    /// A pseudorandom function transform.
    pub fn prf(id: PrfId) -> Self {
        Self { ty: TransformType::PRF, id: id.0, attributes: Vec::new() }
    }

    /// An integrity transform.
    pub fn integ(id: IntegId) -> Self {
        Self { ty: TransformType::INTEG, id: id.0, attributes: Vec::new() }
    }

    /// A key exchange transform.
    pub fn ke(id: KeId) -> Self {
        Self { ty: TransformType::KE, id: id.0, attributes: Vec::new() }
    }

    /// An ESN transform: 1 for extended sequence numbers, 0 for none.
    pub fn esn(enabled: bool) -> Self {
        Self { ty: TransformType::ESN, id: u16::from(enabled), attributes: Vec::new() }
    }

    /// The value of the Key Length attribute (TV form), if there is one.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Tv { ty: AttributeType::KEY_LENGTH, value } => Some(*value),
            _ => None,
        })
    }

    fn buffer_len(&self) -> usize {
        self.attributes.iter().fold(8usize, |acc, a| acc.saturating_add(a.buffer_len()))
    }

    fn parse(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let ty = TransformType(r.u8("transform")?);
        r.reserved("transform reserved", 1)?;
        let id = r.u16("transform")?;
        let mut attributes = Vec::new();
        while !r.is_empty() {
            attributes.push(Attribute::parse(&mut r)?);
        }
        Ok(Self { ty, id, attributes })
    }

    fn emit(&self, last: bool, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        out.extend_from_slice(&[if last { 0 } else { MORE_TRANSFORMS }, 0]);
        let at = placeholder16(out);
        out.extend_from_slice(&[self.ty.0, 0]);
        put_u16(out, self.id);
        for a in &self.attributes {
            a.emit(out)?;
        }
        patch_len16("transform length", out, at, start)
    }
}

/// Reads the `last ‖ reserved ‖ length` prefix shared by proposals and transforms and returns
/// whether this is the last substructure and the rest of it (after the 4-byte prefix).
fn substructure<'a>(r: &mut Reader<'a>, what: &'static str, more: u8) -> Result<(bool, &'a [u8])> {
    let have = r.len();
    let mut head = Reader::new(r.take(what, 4)?);
    let last = match head.u8(what)? {
        0 => true,
        v if v == more => false,
        _ => return Err(Error::Malformed { what: "Last Substruc" }),
    };
    head.reserved("substructure reserved", 1)?;
    let len = usize::from(head.u16(what)?);
    let Some(body_len) = len.checked_sub(4) else {
        return Err(Error::Malformed { what });
    };
    if body_len > r.len() {
        return Err(Error::Truncated { what, needed: len, have });
    }
    Ok((last, r.take(what, body_len)?))
}

impl Proposal {
    fn buffer_len(&self) -> usize {
        self.transforms.iter().fold(8usize.saturating_add(self.spi.len()), |acc, t| {
            acc.saturating_add(t.buffer_len())
        })
    }

    fn parse(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let number = r.u8("proposal")?;
        let protocol = ProtocolId(r.u8("proposal")?);
        let spi_size = r.u8("proposal")?;
        let count = r.u8("proposal")?;
        let spi = r.take("proposal SPI", usize::from(spi_size))?.to_vec();
        let mut transforms = Vec::new();
        let mut last = r.is_empty();
        while !last {
            let (is_last, body) = substructure(&mut r, "transform", MORE_TRANSFORMS)?;
            transforms.push(Transform::parse(body)?);
            last = is_last;
        }
        if !r.is_empty() {
            return Err(Error::Malformed { what: "bytes after the last transform" });
        }
        if transforms.len() != usize::from(count) {
            return Err(Error::Malformed { what: "proposal transform count" });
        }
        Ok(Self { number, protocol, spi, transforms })
    }

    fn emit(&self, last: bool, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        out.extend_from_slice(&[if last { 0 } else { MORE_PROPOSALS }, 0]);
        let at = placeholder16(out);
        let spi_size = len_u8("proposal SPI size", self.spi.len())?;
        let count = len_u8("proposal transform count", self.transforms.len())?;
        out.extend_from_slice(&[self.number, self.protocol.0, spi_size, count]);
        out.extend_from_slice(&self.spi);
        let n = self.transforms.len();
        for (i, t) in self.transforms.iter().enumerate() {
            t.emit(i + 1 == n, out)?;
        }
        patch_len16("proposal length", out, at, start)
    }
}

impl Sa {
    /// Parses an SA body. An SA with no proposal is `Malformed`.
    pub fn parse(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let mut proposals = Vec::new();
        let mut last = false;
        while !last {
            let (is_last, body) = substructure(&mut r, "proposal", MORE_PROPOSALS)?;
            proposals.push(Proposal::parse(body)?);
            last = is_last;
        }
        if !r.is_empty() {
            return Err(Error::Malformed { what: "bytes after the last proposal" });
        }
        Ok(Self { proposals })
    }

    /// Length of the emitted body.
    pub fn buffer_len(&self) -> usize {
        self.proposals.iter().fold(0usize, |acc, p| acc.saturating_add(p.buffer_len()))
    }

    /// Appends the body to `out`. Fails with no proposals, more than 255 transforms or SPI
    /// bytes in a proposal, or a length that overflows its field.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        if self.proposals.is_empty() {
            return Err(Error::Malformed { what: "SA without proposals" });
        }
        let n = self.proposals.len();
        for (i, p) in self.proposals.iter().enumerate() {
            p.emit(i + 1 == n, out)?;
        }
        Ok(())
    }
}
