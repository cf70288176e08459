//! IKEv2 messages (RFC 7296 §3): the fixed header, the payload chain and each payload's body.
//!
//! - [`header`] is the 28-byte IKE header and [`payload`] the 4-byte generic payload header,
//!   both in the `Packet`/`Repr` shape of the rest of [`crate::wire`].
//! - [`payload::Chain`] walks a payload chain from a borrowed slice, bounding every length;
//!   unknown payload types come out with their critical bit, so the caller can answer
//!   `UNSUPPORTED_CRITICAL_PAYLOAD` (RFC 7296 §2.5) — see [`Message::unsupported_critical`].
//! - [`Payload`] is a parsed payload; each body type (`Sa`, `Ke`, `Notify`, …) has
//!   `parse(&[u8])`, `buffer_len()` and `emit(&mut Vec<u8>)`.
//! - [`Message`] is header plus payloads: `Message::parse(&[u8])` and `Message::emit()`.
//!
//! # Round trips are exact
//!
//! For anything [`Message::parse`] accepts, [`Message::emit`] returns the same bytes. To keep
//! that true with a typed representation, fields the RFC derives from the structure (lengths,
//! counts, Last Substruc) must agree with it, and fields that RFC 7296 says to send as zero
//! and ignore on receipt (RESERVED octets, reserved bits of the generic header, the critical
//! bit of payload types defined in RFC 7296) are **checked**: a nonzero value is
//! `Malformed`. Known implementations send zeros; if one is found that does not, these
//! checks are the place to relax (by keeping the raw values). The IKE header's flags octet
//! and minor version are kept raw, since they cost nothing to keep.
//!
//! ```
//! use ferroswan_proto::wire::ikev2::{self, ExchangeType, Flags, Message, Nonce, Payload};
//!
//! let msg = Message {
//!     header: ikev2::HeaderRepr {
//!         spi_i: 1, spi_r: 0, next_payload: ikev2::PayloadType::NONE, minor_version: 0,
//!         exchange_type: ExchangeType::INFORMATIONAL, flags: Flags::INITIATOR,
//!         message_id: 2, payload_len: 0,
//!     },
//!     payloads: vec![Payload::Nonce(Nonce { data: vec![7; 16] })],
//! };
//! let bytes = msg.emit()?;
//! assert_eq!(bytes.len(), 28 + 4 + 16);
//! let parsed = Message::parse(&bytes)?;
//! assert_eq!(parsed.payloads, msg.payloads);
//! assert_eq!(parsed.emit()?, bytes);
//! # Ok::<(), ferroswan_proto::wire::Error>(())
//! ```

mod codec;
mod data;
pub mod header;
mod notify;
pub mod payload;
pub mod registry;
mod sa;
mod sk;
mod ts;

pub use data::{Auth, Cert, CfgAttribute, Cp, Id, Ke, Nonce, VendorId};
pub use header::{Flags, Packet as HeaderPacket, Repr as HeaderRepr};
pub use notify::{Delete, Notify};
pub use payload::{Chain, Payload, RawPayload, emit_chain, parse_chain};
pub use registry::{
    AttributeType, AuthMethod, CertEncoding, CfgAttributeType, CfgType, ExchangeType, IdType,
    NotifyType, PayloadType, ProtocolId, TransformType, TsType,
};
pub use sa::{Attribute, Proposal, Sa, Transform};
pub use sk::{Sk, Skf};
pub use ts::{TrafficSelector, Ts};

use super::{Error, Result};

/// A whole IKE message: header and payloads in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The header. On emit, `next_payload` and `payload_len` are computed from `payloads`
    /// and the stored values are ignored; on parse they hold what was received.
    pub header: HeaderRepr,
    /// The payloads, in wire order. An SK or SKF payload, if any, is last.
    pub payloads: Vec<Payload>,
}

impl Message {
    /// Parses a datagram (or the IKE part of one, after the non-ESP marker) as an IKE message.
    ///
    /// The Length field must equal `bytes.len()`, the major version must be 2
    /// (`Unsupported { what: "IKE major version" }` otherwise), and the payload chain must be
    /// well formed. Unknown payloads, critical or not, are kept as [`Payload::Unknown`].
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let packet = HeaderPacket::new_checked(bytes)?;
        if usize::try_from(packet.length()).ok() != Some(bytes.len()) {
            return Err(Error::Malformed { what: "IKE length" });
        }
        let header = HeaderRepr::parse(&packet)?;
        let payloads = parse_chain(header.next_payload, packet.payload())?;
        Ok(Self { header, payloads })
    }

    /// Length of the emitted message.
    pub fn buffer_len(&self) -> usize {
        header::HEADER_LEN.saturating_add(payload::chain_len(&self.payloads))
    }

    /// Appends the message to `out`. Fails if a payload does not fit its length fields (see
    /// each body's `emit`), or the message is longer than `u32::MAX`.
    pub fn emit_into(&self, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        out.resize(start.saturating_add(header::HEADER_LEN), 0);
        let first = emit_chain(&self.payloads, out)?;
        let payload_len = out.len() - start - header::HEADER_LEN;
        if u32::try_from(payload_len + header::HEADER_LEN).is_err() {
            return Err(Error::Malformed { what: "IKE length" });
        }
        let header = HeaderRepr { next_payload: first, payload_len, ..self.header };
        if let Some(slot) = out.get_mut(start..) {
            header.emit(&mut HeaderPacket::new_unchecked(slot));
        }
        Ok(())
    }

    /// Emits the message into a new buffer.
    pub fn emit(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.buffer_len());
        self.emit_into(&mut out)?;
        Ok(out)
    }

    /// The type of the first unknown payload with the critical bit set, if any: the message
    /// must then be rejected, answering `UNSUPPORTED_CRITICAL_PAYLOAD` with this type as data
    /// (RFC 7296 §2.5, §3.10.1).
    pub fn unsupported_critical(&self) -> Option<PayloadType> {
        self.payloads.iter().find_map(|p| match p {
            Payload::Unknown { ty, critical: true, .. } => Some(*ty),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests;
