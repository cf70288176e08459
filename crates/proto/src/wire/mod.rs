//! Wire formats: zero-copy packet views and their parsed representations.
//!
//! Each fixed-layout format has the shape smoltcp's `wire` module uses:
//!
//! - `Packet<T: AsRef<[u8]>>`, a view over a buffer with one getter per field (and, for
//!   `T: AsMut<[u8]>`, one setter per field). Byte ranges are named once in a private `field`
//!   module.
//! - `Repr`, the parsed, validated content: `Repr::parse(&Packet) -> Result<Repr>`,
//!   `Repr::buffer_len()`, `Repr::emit(&self, &mut Packet)`.
//!
//! # Guarantees
//!
//! - **Input from the network goes through `Packet::new_checked`**, which calls `check_len`.
//!   Once `check_len` has succeeded, no getter panics, whatever the bytes are.
//! - `Repr::parse` never panics on a packet built with `new_checked`.
//! - `Repr::emit` never panics when the buffer is exactly `Repr::buffer_len()` bytes long (or
//!   longer, for formats whose length lives in the header). Emitting uses `new_unchecked`:
//!   a recycled buffer holds stale bytes, so a length check on it would be meaningless.
//! - A `Repr` that can be constructed can be emitted.
//! - Registry values (protocol numbers, transform IDs) are newtypes that keep unknown values
//!   (see [`registry`]), so nothing is lost on a round trip.
//!
//! Because of the `check_len` invariant, slice indexing is allowed in this module (and only
//! here); everywhere else in the crate `clippy::indexing_slicing` is denied.

#![allow(clippy::indexing_slicing)]

pub mod ah;
pub mod esp;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod registry;
pub mod udp_encap;

pub use ah::{Packet as AhPacket, Repr as AhRepr};
pub use esp::{Packet as EspPacket, Repr as EspRepr, Trailer as EspTrailer};
pub use ip::{FlowKey, InsertionPoint};
pub use ipv4::{Packet as Ipv4Packet, Repr as Ipv4Repr};
pub use ipv6::{Packet as Ipv6Packet, Repr as Ipv6Repr, UpperLayer};
pub use registry::{EncrId, IntegId, IpProtocol, KeId, PrfId};
pub use udp_encap::{Datagram, Packet as UdpPacket, Repr as UdpRepr};

/// Why a buffer could not be read as the expected wire format.
///
/// Carries *what* was wrong, so logs and counters can say it in plain words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The buffer is shorter than the format's fixed header or than a length field says.
    #[error("truncated: {what} needs {needed} bytes, have {have}")]
    Truncated {
        /// Which structure was cut short.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        have: usize,
    },
    /// A field has a value the format does not allow.
    #[error("malformed {what}")]
    Malformed {
        /// Which field or structure.
        what: &'static str,
    },
    /// The format is valid but this implementation does not handle it.
    #[error("unsupported {what}")]
    Unsupported {
        /// What is not supported.
        what: &'static str,
    },
}

/// Result of wire parsing.
pub type Result<T> = core::result::Result<T, Error>;

/// Returns `Err(Truncated)` unless `have >= needed`.
pub(crate) fn ensure_len(what: &'static str, needed: usize, have: usize) -> Result<()> {
    if have < needed { Err(Error::Truncated { what, needed, have }) } else { Ok(()) }
}

/// Reads a big-endian `u16` from the first two bytes of `bytes` (a `field` range, already
/// length-checked).
pub(crate) fn read_u16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

/// Reads a big-endian `u32` from the first four bytes of `bytes` (a `field` range, already
/// length-checked).
pub(crate) fn read_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Writes `value` big-endian into the first two bytes of `bytes`.
pub(crate) fn write_u16(bytes: &mut [u8], value: u16) {
    bytes[..2].copy_from_slice(&value.to_be_bytes());
}

/// Writes `value` big-endian into the first four bytes of `bytes`.
pub(crate) fn write_u32(bytes: &mut [u8], value: u32) {
    bytes[..4].copy_from_slice(&value.to_be_bytes());
}
