//! PLACEHOLDER until the wire branch lands: ESP trailer helpers only.

use super::{Error, IpProtocol, Result};

/// The ESP trailer fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    /// Pad length.
    pub pad_len: u8,
    /// Next header.
    pub next_header: IpProtocol,
}

/// Minimal padding so `payload_len + pad + 2` is a multiple of `max(block_len, 4)`.
pub fn pad_len_for(payload_len: usize, block_len: usize) -> usize {
    let align = block_len.max(4);
    (align - (payload_len + 2) % align) % align
}

/// Writes padding, pad length and next header after `payload_len` bytes of `buf`.
pub fn write_trailer(buf: &mut [u8], payload_len: usize, pad_len: usize, next_header: IpProtocol) {
    for i in 0..pad_len {
        buf[payload_len + i] = (i + 1) as u8;
    }
    buf[payload_len + pad_len] = pad_len as u8;
    buf[payload_len + pad_len + 1] = next_header.0;
}

/// Parses and checks the trailer of a decrypted ESP payload.
pub fn parse_trailer(plaintext: &[u8]) -> Result<(usize, Trailer)> {
    let n = plaintext.len();
    if n < 2 {
        return Err(Error::Truncated { what: "ESP trailer", needed: 2, have: n });
    }
    let pad_len = plaintext[n - 2];
    let next_header = IpProtocol(plaintext[n - 1]);
    let payload_len =
        n.checked_sub(2 + usize::from(pad_len)).ok_or(Error::Malformed { what: "ESP padding" })?;
    for (i, b) in plaintext[payload_len..n - 2].iter().enumerate() {
        if usize::from(*b) != i + 1 {
            return Err(Error::Malformed { what: "ESP padding" });
        }
    }
    Ok((payload_len, Trailer { pad_len, next_header }))
}
