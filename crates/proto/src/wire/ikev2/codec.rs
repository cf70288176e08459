//! Bounds-checked reading of payload bodies and length-checked writing of them.

use crate::wire::{Error, Result};

/// A cursor over a borrowed body. Every read checks the remaining length first, so a short
/// body is an `Err(Truncated)`, never a panic.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) const fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Takes the next `n` bytes.
    pub(crate) fn take(&mut self, what: &'static str, n: usize) -> Result<&'a [u8]> {
        let Some((head, tail)) = self.bytes.split_at_checked(n) else {
            return Err(Error::Truncated { what, needed: n, have: self.bytes.len() });
        };
        self.bytes = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.take(what, 1)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16> {
        let b = self.take(what, 2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Takes `n` bytes that the format reserves: they must be zero (see the module doc of
    /// [`super`] for why reserved fields are checked rather than ignored).
    pub(crate) fn reserved(&mut self, what: &'static str, n: usize) -> Result<()> {
        if self.take(what, n)?.iter().any(|&b| b != 0) {
            return Err(Error::Malformed { what });
        }
        Ok(())
    }

    /// Everything not read yet.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.bytes)
    }

    pub(crate) const fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(crate) const fn len(&self) -> usize {
        self.bytes.len()
    }
}

/// `len` as a `u8` length field, or `Err` naming the field.
pub(crate) fn len_u8(what: &'static str, len: usize) -> Result<u8> {
    u8::try_from(len).map_err(|_| Error::Malformed { what })
}

/// `len` as a `u16` length field, or `Err` naming the field.
pub(crate) fn len_u16(what: &'static str, len: usize) -> Result<u16> {
    u16::try_from(len).map_err(|_| Error::Malformed { what })
}

/// Appends a big-endian `u16`.
pub(crate) fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// Appends a two-byte length placeholder and returns its position, for [`patch_len16`].
pub(crate) fn placeholder16(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    at
}

/// Writes `out.len() - start` into the placeholder at `at`.
pub(crate) fn patch_len16(
    what: &'static str,
    out: &mut [u8],
    at: usize,
    start: usize,
) -> Result<()> {
    let len = len_u16(what, out.len().saturating_sub(start))?;
    if let Some(slot) = out.get_mut(at..at.saturating_add(2)) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}
