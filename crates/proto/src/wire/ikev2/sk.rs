//! Encrypted (SK, RFC 7296 §3.14) and Encrypted Fragment (SKF, RFC 7383 §2.5) payloads.
//!
//! At the wire layer the encrypted contents are opaque: `IV ‖ ciphertext ‖ ICV`, split by the
//! SA's algorithms. The first inner payload's type travels in the generic header's Next
//! Payload field, and is kept here as `first_payload`.

use super::codec::{Reader, put_u16};
use super::registry::PayloadType;
use crate::wire::{Error, Result};

/// Encrypted and Authenticated payload (RFC 7296 §3.14).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sk {
    /// Type of the first payload inside the encrypted contents.
    pub first_payload: PayloadType,
    /// `IV ‖ ciphertext ‖ ICV`.
    pub body: Vec<u8>,
}

impl Sk {
    /// Wraps an SK body; `first_payload` comes from the generic header's Next Payload.
    pub fn parse(first_payload: PayloadType, body: &[u8]) -> Result<Self> {
        Ok(Self { first_payload, body: body.to_vec() })
    }

    /// Length of the emitted body.
    pub fn buffer_len(&self) -> usize {
        self.body.len()
    }

    /// Appends the body to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.body);
        Ok(())
    }
}

/// Encrypted and Authenticated Fragment payload (RFC 7383 §2.5):
/// `Fragment Number (2) ‖ Total Fragments (2) ‖ IV ‖ ciphertext ‖ ICV`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skf {
    /// Type of the first inner payload in fragment 1; zero in the other fragments.
    pub first_payload: PayloadType,
    /// Fragment number, from 1.
    pub fragment_number: u16,
    /// Number of fragments.
    pub total_fragments: u16,
    /// `IV ‖ ciphertext ‖ ICV` of this fragment.
    pub body: Vec<u8>,
}

impl Skf {
    /// Parses an SKF body. Fragment number 0, total 0, or a number above the total is
    /// `Malformed` (RFC 7383 §2.6: such a fragment is discarded).
    pub fn parse(first_payload: PayloadType, body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let fragment_number = r.u16("SKF payload")?;
        let total_fragments = r.u16("SKF payload")?;
        if fragment_number == 0 || fragment_number > total_fragments {
            return Err(Error::Malformed { what: "SKF fragment number" });
        }
        Ok(Self { first_payload, fragment_number, total_fragments, body: r.rest().to_vec() })
    }

    /// Length of the emitted body.
    pub fn buffer_len(&self) -> usize {
        4 + self.body.len()
    }

    /// Appends the body to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        if self.fragment_number == 0 || self.fragment_number > self.total_fragments {
            return Err(Error::Malformed { what: "SKF fragment number" });
        }
        put_u16(out, self.fragment_number);
        put_u16(out, self.total_fragments);
        out.extend_from_slice(&self.body);
        Ok(())
    }
}
