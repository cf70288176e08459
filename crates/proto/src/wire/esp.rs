//! ESP header and trailer (RFC 4303 §2).
//!
//! On the wire an ESP packet is `SPI ‖ Sequence Number ‖ IV ‖ ciphertext ‖ ICV`. [`Packet`]
//! reads the two header fields and hands out the rest as [`Packet::payload`]; how long the IV
//! and ICV are depends on the SA's algorithms, so splitting it is the SA's job.
//!
//! The plaintext ends in a trailer: `payload ‖ padding ‖ Pad Length ‖ Next Header`.
//! [`write_trailer`] writes it with the default monotonic padding 1, 2, 3, … (RFC 4303 §2.4),
//! [`parse_trailer`] checks and strips it, and [`pad_len_for`] computes how much padding an
//! algorithm's block size requires.
//!
//! ```
//! use ferroswan_proto::wire::{esp, EspPacket, EspRepr, IpProtocol};
//!
//! let repr = EspRepr { spi: 0x1234_5678, seq: 7 };
//! let mut bytes = [0u8; 8];
//! repr.emit(&mut EspPacket::new_unchecked(&mut bytes[..]));
//! assert_eq!(EspRepr::parse(&EspPacket::new_checked(&bytes[..])?)?, repr);
//!
//! // A 5-byte payload for AES-CBC: 9 bytes of padding make 16.
//! let mut plaintext = *b"hello\0\0\0\0\0\0\0\0\0\0\0";
//! let pad_len = esp::pad_len_for(5, 16) as u8;
//! let len = esp::write_trailer(&mut plaintext, 5, pad_len, IpProtocol::UDP)?;
//! let (payload_len, trailer) = esp::parse_trailer(&plaintext[..len])?;
//! assert_eq!((payload_len, trailer.next_header), (5, IpProtocol::UDP));
//! # Ok::<(), ferroswan_proto::wire::Error>(())
//! ```

use super::{Error, IpProtocol, Result, ensure_len, read_u32, write_u32};

/// Length of the ESP header: SPI and sequence number.
pub const HEADER_LEN: usize = 8;

/// Length of the fixed part of the trailer: Pad Length and Next Header.
pub const TRAILER_LEN: usize = 2;

/// Byte ranges of the header fields.
mod field {
    use core::ops::Range;

    pub(super) const SPI: Range<usize> = 0..4;
    pub(super) const SEQUENCE_NUMBER: Range<usize> = 4..8;
}

crate::wire::packet_view! {
    /// A zero-copy view of an ESP packet.
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the 8-byte header.
    pub fn check_len(&self) -> Result<()> {
        ensure_len("ESP header", HEADER_LEN, self.buffer.as_ref().len())
    }

    /// Security Parameters Index.
    pub fn spi(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::SPI])
    }

    /// Sequence number (the low 32 bits when ESN is in use).
    pub fn seq_number(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::SEQUENCE_NUMBER])
    }

    /// Everything after the header: IV, ciphertext and ICV.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the SPI.
    pub fn set_spi(&mut self, value: u32) {
        write_u32(&mut self.buffer.as_mut()[field::SPI], value);
    }

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, value: u32) {
        write_u32(&mut self.buffer.as_mut()[field::SEQUENCE_NUMBER], value);
    }

    /// Everything after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// A parsed ESP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Security Parameters Index.
    pub spi: u32,
    /// Sequence number (low 32 bits).
    pub seq: u32,
}

impl Repr {
    /// Parses the header of `packet`.
    ///
    /// Fails on SPI 0, which is reserved for local use and never sent (RFC 4303 §2.1).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self> {
        if packet.spi() == 0 {
            return Err(Error::Malformed { what: "ESP SPI" });
        }
        Ok(Self { spi: packet.spi(), seq: packet.seq_number() })
    }

    /// The length of the emitted header (always 8).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into `packet` (at least [`Self::buffer_len`] bytes).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_spi(self.spi);
        packet.set_seq_number(self.seq);
    }
}

/// The fixed fields at the end of the ESP plaintext (RFC 4303 §2.4, §2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Trailer {
    /// Number of padding bytes before the Pad Length byte.
    pub pad_len: u8,
    /// Type of the protected payload (for example [`IpProtocol::IPV4`] in tunnel mode, or
    /// [`IpProtocol::IPV6_NONXT`] for a dummy packet).
    pub next_header: IpProtocol,
}

/// Checks and strips the trailer of a decrypted ESP plaintext (`payload ‖ padding ‖ Pad Length
/// ‖ Next Header`, IV and ICV already removed).
///
/// Returns the payload length and the trailer. The padding must be the default monotonic
/// sequence 1, 2, …, `pad_len` (RFC 4303 §2.4: a receiver may check it); anything else is
/// `Malformed { what: "ESP padding" }`.
pub fn parse_trailer(plaintext: &[u8]) -> Result<(usize, Trailer)> {
    let Some(body_len) = plaintext.len().checked_sub(TRAILER_LEN) else {
        return Err(Error::Truncated {
            what: "ESP trailer",
            needed: TRAILER_LEN,
            have: plaintext.len(),
        });
    };
    let pad_len = plaintext[body_len];
    let next_header = IpProtocol(plaintext[body_len + 1]);
    let Some(payload_len) = body_len.checked_sub(usize::from(pad_len)) else {
        return Err(Error::Malformed { what: "ESP pad length" });
    };
    let padding = &plaintext[payload_len..body_len];
    if !padding.iter().zip(1..=pad_len).all(|(&byte, expected)| byte == expected) {
        return Err(Error::Malformed { what: "ESP padding" });
    }
    Ok((payload_len, Trailer { pad_len, next_header }))
}

/// Writes the trailer after `payload_len` bytes of payload in `buf`: monotonic padding 1, 2, …,
/// `pad_len`, then Pad Length and Next Header.
///
/// Returns the plaintext length, `payload_len + pad_len + 2`. Fails if `buf` is shorter.
pub fn write_trailer(
    buf: &mut [u8],
    payload_len: usize,
    pad_len: u8,
    next_header: IpProtocol,
) -> Result<usize> {
    let body_len = payload_len.saturating_add(usize::from(pad_len));
    let total = body_len.saturating_add(TRAILER_LEN);
    ensure_len("ESP trailer buffer", total, buf.len())?;
    for (byte, value) in buf[payload_len..body_len].iter_mut().zip(1..=pad_len) {
        *byte = value;
    }
    buf[body_len] = pad_len;
    buf[body_len + 1] = next_header.0;
    Ok(total)
}

/// The least padding that makes `payload_len + padding + 2` a multiple of both `block_len`
/// and 4 (RFC 4303 §2.4: the ciphertext ends on a block boundary and on a 4-byte boundary).
///
/// `block_len` is the cipher's block size, or 1 for stream ciphers and AEADs such as AES-GCM
/// (0 is treated as 1). The result can exceed 255 only for block sizes above 256; callers
/// store it in a `u8`, so check. TFC padding (RFC 4303 §2.7) goes in the payload, not here.
pub fn pad_len_for(payload_len: usize, block_len: usize) -> usize {
    let align = lcm(block_len.max(1), 4);
    let rem = (payload_len % align + TRAILER_LEN % align) % align;
    (align - rem) % align
}

/// Least common multiple of `a` and `b` (both non-zero).
fn lcm(a: usize, b: usize) -> usize {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    a / x * b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPI 0x12345678, sequence number 1, then 16 bytes of IV ‖ ciphertext ‖ ICV.
    static PACKET_BYTES: [u8; 24] = [
        0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x01, 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6,
        0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
    ];

    static PAYLOAD_BYTES: [u8; 16] = [
        0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae,
        0xaf,
    ];

    const REPR: Repr = Repr { spi: 0x1234_5678, seq: 1 };

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.spi(), 0x1234_5678);
        assert_eq!(packet.seq_number(), 1);
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
    }

    #[test]
    fn construct() {
        let mut bytes = [0u8; 24];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_spi(0x1234_5678);
        packet.set_seq_number(1);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn check_len() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&PACKET_BYTES[..len]),
                Err(Error::Truncated { what: "ESP header", needed: 8, have: len })
            );
        }
        assert!(Packet::new_checked(&PACKET_BYTES[..8]).unwrap().payload().is_empty());
    }

    #[test]
    fn parse() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Ok(REPR));
        let zero_spi = [0, 0, 0, 0, 0, 0, 0, 1];
        let packet = Packet::new_checked(&zero_spi[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Err(Error::Malformed { what: "ESP SPI" }));
    }

    #[test]
    fn emit() {
        let mut bytes = [0xffu8; 8];
        REPR.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, PACKET_BYTES[..8]);
    }

    #[test]
    fn buffer_len() {
        assert_eq!(REPR.buffer_len(), 8);
    }

    #[test]
    fn trailer_round_trip() {
        // 5 bytes of payload, AES-CBC (16): 5 + 9 + 2 = 16.
        let mut buf = [0xeeu8; 32];
        buf[..5].copy_from_slice(b"hello");
        let pad_len = pad_len_for(5, 16);
        assert_eq!(pad_len, 9);
        let len = write_trailer(&mut buf, 5, 9, IpProtocol::UDP).unwrap();
        assert_eq!(len, 16);
        assert_eq!(&buf[..16], b"hello\x01\x02\x03\x04\x05\x06\x07\x08\x09\x09\x11");
        assert_eq!(
            parse_trailer(&buf[..16]),
            Ok((5, Trailer { pad_len: 9, next_header: IpProtocol::UDP }))
        );
        // No padding and no payload: a bare trailer (a dummy packet, RFC 4303 §2.6).
        assert_eq!(write_trailer(&mut buf, 0, 0, IpProtocol::IPV6_NONXT), Ok(2));
        assert_eq!(
            parse_trailer(&buf[..2]),
            Ok((0, Trailer { pad_len: 0, next_header: IpProtocol::IPV6_NONXT }))
        );
        // 255 bytes of padding.
        let mut big = [0u8; 300];
        assert_eq!(write_trailer(&mut big, 10, 255, IpProtocol::IPV4), Ok(267));
        assert_eq!(
            parse_trailer(&big[..267]),
            Ok((10, Trailer { pad_len: 255, next_header: IpProtocol::IPV4 }))
        );
        // Too small a buffer.
        assert!(matches!(
            write_trailer(&mut buf[..15], 5, 9, IpProtocol::UDP),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn trailer_rejects_bad_padding() {
        let good = *b"hi\x01\x02\x03\x04\x04\x04";
        assert_eq!(parse_trailer(&good).unwrap().0, 2);
        for i in 2..6 {
            let mut bad = good;
            bad[i] ^= 0x80;
            assert_eq!(parse_trailer(&bad), Err(Error::Malformed { what: "ESP padding" }));
        }
        // All-zero padding (what some old implementations sent) is not the default.
        assert_eq!(
            parse_trailer(b"hi\x00\x00\x02\x04"),
            Err(Error::Malformed { what: "ESP padding" })
        );
        // Pad length larger than what precedes it.
        assert_eq!(
            parse_trailer(b"\x01\x02\x03\x04"),
            Err(Error::Malformed { what: "ESP pad length" })
        );
        assert_eq!(
            parse_trailer(b"\x00\x04"),
            Ok((0, Trailer { pad_len: 0, next_header: IpProtocol::IPV4 }))
        );
        assert_eq!(
            parse_trailer(b"\x00"),
            Err(Error::Truncated { what: "ESP trailer", needed: 2, have: 1 })
        );
        assert!(parse_trailer(&[]).is_err());
    }

    #[test]
    fn pad_len_cases() {
        // AEADs (block 1): 4-byte alignment only.
        assert_eq!(pad_len_for(0, 1), 2);
        assert_eq!(pad_len_for(2, 1), 0);
        assert_eq!(pad_len_for(3, 0), 3);
        // 3DES (8) and AES-CBC (16).
        assert_eq!(pad_len_for(6, 8), 0);
        assert_eq!(pad_len_for(7, 8), 7);
        assert_eq!(pad_len_for(14, 16), 0);
        assert_eq!(pad_len_for(15, 16), 15);
        assert_eq!(pad_len_for(1400, 16), 6);
        // A block length that is not a multiple of 4 still ends on a 4-byte boundary.
        assert_eq!(pad_len_for(1, 6), 9);
        for payload_len in 0..100 {
            for block_len in [0, 1, 2, 4, 8, 16, 6, 12] {
                let pad = pad_len_for(payload_len, block_len);
                let total = payload_len + pad + 2;
                assert_eq!(total % 4, 0);
                assert_eq!(total % block_len.max(1), 0);
                assert!(pad < 4 * block_len.max(1));
            }
        }
    }
}
