//! The generic payload header (RFC 7296 §3.2), the payload chain, and [`Payload`].
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! [`Chain`] walks a chain of payloads: every step consumes at least the 4-byte header, so it
//! always ends, and every Payload Length is checked against what is left before it is used.

use super::codec::{patch_len16, placeholder16};
use super::registry::PayloadType;
use super::{Auth, Cert, Cp, Delete, Id, Ke, Nonce, Notify, Sa, Sk, Skf, Ts, VendorId};
use crate::wire::{Error, Result, ensure_len, read_u16, write_u16};

/// Length of the generic payload header.
pub const HEADER_LEN: usize = 4;

/// The critical bit in the second octet.
const CRITICAL: u8 = 0x80;

/// Byte ranges of the header fields.
mod field {
    use core::ops::Range;

    pub(super) const NEXT_PAYLOAD: usize = 0;
    pub(super) const FLAGS: usize = 1;
    pub(super) const LENGTH: Range<usize> = 2..4;
}

crate::wire::packet_view! {
    /// A zero-copy view of one payload: generic header and body.
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the 4-byte header and that Payload Length covers at least
    /// the header and at most the buffer.
    pub fn check_len(&self) -> Result<()> {
        let have = self.buffer.as_ref().len();
        ensure_len("payload header", HEADER_LEN, have)?;
        let length = usize::from(self.payload_length());
        if length < HEADER_LEN {
            return Err(Error::Malformed { what: "payload length" });
        }
        ensure_len("payload", length, have)
    }

    /// Type of the payload that follows this one.
    pub fn next_payload(&self) -> PayloadType {
        PayloadType(self.buffer.as_ref()[field::NEXT_PAYLOAD])
    }

    /// The critical bit: a recipient that does not understand this payload's type must reject
    /// the message with `UNSUPPORTED_CRITICAL_PAYLOAD` (RFC 7296 §2.5).
    pub fn critical(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & CRITICAL != 0
    }

    /// The seven reserved bits after the critical bit.
    pub fn reserved(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS] & !CRITICAL
    }

    /// Payload Length, header included.
    pub fn payload_length(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// The body: the bytes after the header, up to Payload Length (needs `check_len`).
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.payload_length())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the next payload type.
    pub fn set_next_payload(&mut self, value: PayloadType) {
        self.buffer.as_mut()[field::NEXT_PAYLOAD] = value.0;
    }

    /// Sets the critical bit and the reserved bits (masked to 7 bits).
    pub fn set_flags(&mut self, critical: bool, reserved: u8) {
        let c = if critical { CRITICAL } else { 0 };
        self.buffer.as_mut()[field::FLAGS] = c | (reserved & !CRITICAL);
    }

    /// Sets Payload Length.
    pub fn set_payload_length(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::LENGTH], value);
    }

    /// Everything after the header, writable.
    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// A parsed generic payload header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Type of the payload that follows.
    pub next_payload: PayloadType,
    /// The critical bit.
    pub critical: bool,
    /// Length of the body after the 4-byte header.
    pub body_len: usize,
}

impl Repr {
    /// Parses the header of `packet`. Nonzero reserved bits are `Malformed` (see
    /// [`super`]'s module doc).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self> {
        if packet.reserved() != 0 {
            return Err(Error::Malformed { what: "payload header reserved bits" });
        }
        Ok(Self {
            next_payload: packet.next_payload(),
            critical: packet.critical(),
            body_len: packet.body().len(),
        })
    }

    /// The length of the emitted header (always 4).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into `packet` (at least 4 bytes). Payload Length is `4 + body_len`,
    /// saturated at `u16::MAX`; [`Payload::emit`] checks the length before it gets here.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_next_payload(self.next_payload);
        packet.set_flags(self.critical, 0);
        let length = u16::try_from(HEADER_LEN.saturating_add(self.body_len)).unwrap_or(u16::MAX);
        packet.set_payload_length(length);
    }
}

/// One payload of a chain, not yet interpreted: its type (from the previous header), its
/// generic header fields and its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawPayload<'a> {
    /// This payload's type, as named by the previous Next Payload field.
    pub ty: PayloadType,
    /// This payload's Next Payload field. For SK and SKF it is the type of the first payload
    /// inside the encrypted body (RFC 7296 §3.14).
    pub next_payload: PayloadType,
    /// The critical bit.
    pub critical: bool,
    /// The body after the generic header.
    pub body: &'a [u8],
}

/// An iterator over a payload chain (RFC 7296 §3.2).
///
/// Yields each payload or, once, the error that stopped the walk. The chain ends at Next
/// Payload `NONE`, or after an SK or SKF payload, which must be last (RFC 7296 §3.14,
/// RFC 7383 §2.5); bytes left over after the end are `Malformed { what: "trailing bytes" }`.
/// Unknown payload types are yielded like any other, with their critical bit.
#[derive(Clone, Debug)]
pub struct Chain<'a> {
    next: PayloadType,
    rest: &'a [u8],
    done: bool,
}

impl<'a> Chain<'a> {
    /// Walks `bytes`, whose first payload has type `first` (from the IKE header or, for
    /// decrypted SK contents, from the SK payload's Next Payload).
    pub const fn new(first: PayloadType, bytes: &'a [u8]) -> Self {
        Self { next: first, rest: bytes, done: false }
    }

    fn step(&mut self) -> Result<Option<RawPayload<'a>>> {
        if self.next == PayloadType::NONE {
            self.done = true;
            return if self.rest.is_empty() {
                Ok(None)
            } else {
                Err(Error::Malformed { what: "trailing bytes" })
            };
        }
        let packet = Packet::new_checked(self.rest)?;
        let header = Repr::parse(&packet)?;
        let length = HEADER_LEN + header.body_len;
        let raw = RawPayload {
            ty: self.next,
            next_payload: header.next_payload,
            critical: header.critical,
            body: &self.rest[HEADER_LEN..length],
        };
        self.rest = &self.rest[length..];
        if raw.ty == PayloadType::SK || raw.ty == PayloadType::SKF {
            self.done = true;
            if !self.rest.is_empty() {
                return Err(Error::Malformed { what: "payload after SK" });
            }
        } else {
            self.next = header.next_payload;
        }
        Ok(Some(raw))
    }
}

impl<'a> Iterator for Chain<'a> {
    type Item = Result<RawPayload<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(raw)) => Some(Ok(raw)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// A parsed payload.
///
/// The critical bit of known payload types is not stored: RFC 7296 payloads are sent with it
/// clear, and a set one is `Malformed` (see [`super`]'s module doc). Unknown types keep it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Payload {
    /// Security Association (§3.3).
    Sa(Sa),
    /// Key Exchange (§3.4).
    Ke(Ke),
    /// Identification - Initiator (§3.5).
    IdI(Id),
    /// Identification - Responder (§3.5).
    IdR(Id),
    /// Certificate (§3.6).
    Cert(Cert),
    /// Certificate Request (§3.7).
    CertReq(Cert),
    /// Authentication (§3.8).
    Auth(Auth),
    /// Nonce (§3.9).
    Nonce(Nonce),
    /// Notify (§3.10).
    Notify(Notify),
    /// Delete (§3.11).
    Delete(Delete),
    /// Vendor ID (§3.12).
    VendorId(VendorId),
    /// Traffic Selector - Initiator (§3.13).
    TsI(Ts),
    /// Traffic Selector - Responder (§3.13).
    TsR(Ts),
    /// Encrypted and Authenticated (§3.14); must be last.
    Sk(Sk),
    /// Configuration (§3.15).
    Cp(Cp),
    /// Extensible Authentication (§3.16): the EAP message, opaque here.
    Eap(Vec<u8>),
    /// Encrypted and Authenticated Fragment (RFC 7383 §2.5); must be last.
    Skf(Skf),
    /// A payload type this implementation does not know. If `critical` is set, the message must
    /// be rejected with `UNSUPPORTED_CRITICAL_PAYLOAD` carrying `ty` (RFC 7296 §2.5);
    /// otherwise it is skipped, and kept here so a round trip loses nothing.
    Unknown {
        /// The payload type.
        ty: PayloadType,
        /// The critical bit.
        critical: bool,
        /// The body.
        body: Vec<u8>,
    },
}

impl Payload {
    /// Parses one payload of a chain.
    pub fn parse(raw: &RawPayload<'_>) -> Result<Self> {
        if raw.ty == PayloadType::NONE {
            return Err(Error::Malformed { what: "payload type NONE" });
        }
        if raw.ty.name().is_none() {
            return Ok(Self::Unknown {
                ty: raw.ty,
                critical: raw.critical,
                body: raw.body.to_vec(),
            });
        }
        if raw.critical {
            return Err(Error::Malformed { what: "critical bit on a known payload" });
        }
        let body = raw.body;
        Ok(match raw.ty {
            PayloadType::SA => Self::Sa(Sa::parse(body)?),
            PayloadType::KE => Self::Ke(Ke::parse(body)?),
            PayloadType::IDI => Self::IdI(Id::parse(body)?),
            PayloadType::IDR => Self::IdR(Id::parse(body)?),
            PayloadType::CERT => Self::Cert(Cert::parse(body)?),
            PayloadType::CERTREQ => Self::CertReq(Cert::parse(body)?),
            PayloadType::AUTH => Self::Auth(Auth::parse(body)?),
            PayloadType::NONCE => Self::Nonce(Nonce::parse(body)?),
            PayloadType::NOTIFY => Self::Notify(Notify::parse(body)?),
            PayloadType::DELETE => Self::Delete(Delete::parse(body)?),
            PayloadType::VENDOR_ID => Self::VendorId(VendorId::parse(body)?),
            PayloadType::TSI => Self::TsI(Ts::parse(body)?),
            PayloadType::TSR => Self::TsR(Ts::parse(body)?),
            PayloadType::SK => Self::Sk(Sk::parse(raw.next_payload, body)?),
            PayloadType::CP => Self::Cp(Cp::parse(body)?),
            PayloadType::EAP => Self::Eap(body.to_vec()),
            PayloadType::SKF => Self::Skf(Skf::parse(raw.next_payload, body)?),
            _ => Self::Unknown { ty: raw.ty, critical: raw.critical, body: body.to_vec() },
        })
    }

    /// This payload's type.
    pub fn ty(&self) -> PayloadType {
        match self {
            Self::Sa(_) => PayloadType::SA,
            Self::Ke(_) => PayloadType::KE,
            Self::IdI(_) => PayloadType::IDI,
            Self::IdR(_) => PayloadType::IDR,
            Self::Cert(_) => PayloadType::CERT,
            Self::CertReq(_) => PayloadType::CERTREQ,
            Self::Auth(_) => PayloadType::AUTH,
            Self::Nonce(_) => PayloadType::NONCE,
            Self::Notify(_) => PayloadType::NOTIFY,
            Self::Delete(_) => PayloadType::DELETE,
            Self::VendorId(_) => PayloadType::VENDOR_ID,
            Self::TsI(_) => PayloadType::TSI,
            Self::TsR(_) => PayloadType::TSR,
            Self::Sk(_) => PayloadType::SK,
            Self::Cp(_) => PayloadType::CP,
            Self::Eap(_) => PayloadType::EAP,
            Self::Skf(_) => PayloadType::SKF,
            Self::Unknown { ty, .. } => *ty,
        }
    }

    /// The critical bit this payload is emitted with.
    pub fn critical(&self) -> bool {
        matches!(self, Self::Unknown { critical: true, .. })
    }

    /// For SK and SKF, the type of the first inner payload, which goes in this payload's Next
    /// Payload field instead of the next outer payload's type.
    fn inner_first(&self) -> Option<PayloadType> {
        match self {
            Self::Sk(sk) => Some(sk.first_payload),
            Self::Skf(skf) => Some(skf.first_payload),
            _ => None,
        }
    }

    /// Length of the body, without the generic header.
    pub fn body_len(&self) -> usize {
        match self {
            Self::Sa(p) => p.buffer_len(),
            Self::Ke(p) => p.buffer_len(),
            Self::IdI(p) | Self::IdR(p) => p.buffer_len(),
            Self::Cert(p) | Self::CertReq(p) => p.buffer_len(),
            Self::Auth(p) => p.buffer_len(),
            Self::Nonce(p) => p.buffer_len(),
            Self::Notify(p) => p.buffer_len(),
            Self::Delete(p) => p.buffer_len(),
            Self::VendorId(p) => p.buffer_len(),
            Self::TsI(p) | Self::TsR(p) => p.buffer_len(),
            Self::Sk(p) => p.buffer_len(),
            Self::Cp(p) => p.buffer_len(),
            Self::Eap(body) | Self::Unknown { body, .. } => body.len(),
            Self::Skf(p) => p.buffer_len(),
        }
    }

    /// Length of the emitted payload, generic header included.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN.saturating_add(self.body_len())
    }

    /// Appends the body (without the generic header) to `out`.
    pub fn emit_body(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Self::Sa(p) => p.emit(out),
            Self::Ke(p) => p.emit(out),
            Self::IdI(p) | Self::IdR(p) => p.emit(out),
            Self::Cert(p) | Self::CertReq(p) => p.emit(out),
            Self::Auth(p) => p.emit(out),
            Self::Nonce(p) => p.emit(out),
            Self::Notify(p) => p.emit(out),
            Self::Delete(p) => p.emit(out),
            Self::VendorId(p) => p.emit(out),
            Self::TsI(p) | Self::TsR(p) => p.emit(out),
            Self::Sk(p) => p.emit(out),
            Self::Cp(p) => p.emit(out),
            Self::Eap(body) | Self::Unknown { body, .. } => {
                out.extend_from_slice(body);
                Ok(())
            }
            Self::Skf(p) => p.emit(out),
        }
    }

    /// Appends the payload (generic header and body) to `out`. `next` is the type of the
    /// payload that follows (`NONE` for the last one); SK and SKF ignore it and write their
    /// first inner payload's type. Fails if the payload is longer than 65535 bytes or one of
    /// its length fields overflows.
    pub fn emit(&self, next: PayloadType, out: &mut Vec<u8>) -> Result<()> {
        if let Self::Unknown { ty, .. } = self
            && ty.name().is_some()
        {
            // It would parse back as the typed payload, or end the chain (NONE).
            return Err(Error::Malformed { what: "unknown payload with a known type" });
        }
        let start = out.len();
        out.push(self.inner_first().unwrap_or(next).0);
        out.push(if self.critical() { CRITICAL } else { 0 });
        let at = placeholder16(out);
        self.emit_body(out)?;
        patch_len16("payload length", out, at, start)
    }
}

/// Parses a whole payload chain that starts with type `first`: the IKE message body, or the
/// decrypted contents of an SK payload.
pub fn parse_chain(first: PayloadType, bytes: &[u8]) -> Result<Vec<Payload>> {
    Chain::new(first, bytes).map(|raw| Payload::parse(&raw?)).collect()
}

/// Appends `payloads` as a chain to `out` and returns the type of the first one (`NONE` if
/// there are none), for the IKE header or an SK payload's Next Payload. Fails if an SK or SKF
/// payload is not last, or a payload fails to emit.
pub fn emit_chain(payloads: &[Payload], out: &mut Vec<u8>) -> Result<PayloadType> {
    let mut iter = payloads.iter().peekable();
    while let Some(payload) = iter.next() {
        if payload.inner_first().is_some() && iter.peek().is_some() {
            return Err(Error::Malformed { what: "payload after SK" });
        }
        let next = iter.peek().map_or(PayloadType::NONE, |p| p.ty());
        payload.emit(next, out)?;
    }
    Ok(payloads.first().map_or(PayloadType::NONE, Payload::ty))
}

/// Length of `payloads` emitted as a chain.
pub fn chain_len(payloads: &[Payload]) -> usize {
    payloads.iter().fold(0usize, |acc, p| acc.saturating_add(p.buffer_len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Nonce payload (next payload Notify) with a 4-byte body, then a trailing byte.
    static PACKET_BYTES: [u8; 9] = [0x29, 0x00, 0x00, 0x08, 0x01, 0x02, 0x03, 0x04, 0xee];

    const REPR: Repr = Repr { next_payload: PayloadType::NOTIFY, critical: false, body_len: 4 };

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.next_payload(), PayloadType::NOTIFY);
        assert!(!packet.critical());
        assert_eq!(packet.reserved(), 0);
        assert_eq!(packet.payload_length(), 8);
        assert_eq!(packet.body(), &[1, 2, 3, 4]);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xffu8; 8];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_next_payload(PayloadType::NOTIFY);
        packet.set_flags(false, 0);
        packet.set_payload_length(8);
        packet.body_mut().copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(bytes, PACKET_BYTES[..8]);
    }

    #[test]
    fn check_len() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&PACKET_BYTES[..len]),
                Err(Error::Truncated { what: "payload header", needed: 4, have: len })
            );
        }
        for len in HEADER_LEN..8 {
            assert_eq!(
                Packet::new_checked(&PACKET_BYTES[..len]),
                Err(Error::Truncated { what: "payload", needed: 8, have: len })
            );
        }
        for short in 0..4u8 {
            let bytes = [0, 0, 0, short];
            assert_eq!(
                Packet::new_checked(&bytes[..]),
                Err(Error::Malformed { what: "payload length" })
            );
        }
        assert!(Packet::new_checked(&[0u8, 0, 0, 4][..]).unwrap().body().is_empty());
    }

    #[test]
    fn parse() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Ok(REPR));
        let critical = [0x00, 0x80, 0x00, 0x04];
        let repr = Repr::parse(&Packet::new_checked(&critical[..]).unwrap()).unwrap();
        assert!(repr.critical);
        let reserved = [0x00, 0x01, 0x00, 0x04];
        assert_eq!(
            Repr::parse(&Packet::new_checked(&reserved[..]).unwrap()),
            Err(Error::Malformed { what: "payload header reserved bits" })
        );
    }

    #[test]
    fn emit() {
        let mut bytes = [0xffu8; 4];
        REPR.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, PACKET_BYTES[..4]);
    }

    #[test]
    fn buffer_len() {
        assert_eq!(REPR.buffer_len(), 4);
    }

    #[test]
    fn unknown_and_critical_payloads() {
        // Vendor ID "ab", then an unknown critical type 200 with body "x", then unknown
        // non-critical type 201, empty.
        let bytes = [
            0xc8, 0x00, 0x00, 0x06, b'a', b'b', //
            0xc9, 0x80, 0x00, 0x05, b'x', //
            0x00, 0x00, 0x00, 0x04,
        ];
        let chain: Vec<_> = Chain::new(PayloadType::VENDOR_ID, &bytes).collect();
        assert_eq!(chain.len(), 3);
        let unknown = chain[1].unwrap();
        assert_eq!(
            (unknown.ty, unknown.critical, unknown.body),
            (PayloadType(200), true, &b"x"[..])
        );
        let payloads = parse_chain(PayloadType::VENDOR_ID, &bytes).unwrap();
        assert_eq!(
            payloads[1],
            Payload::Unknown { ty: PayloadType(200), critical: true, body: b"x".to_vec() }
        );
        assert_eq!(
            payloads[2],
            Payload::Unknown { ty: PayloadType(201), critical: false, body: vec![] }
        );
        let mut out = Vec::new();
        assert_eq!(emit_chain(&payloads, &mut out), Ok(PayloadType::VENDOR_ID));
        assert_eq!(out, bytes);
        assert_eq!(chain_len(&payloads), bytes.len());
        // A critical bit on a known payload.
        let known = [0x00, 0x80, 0x00, 0x04];
        assert_eq!(
            parse_chain(PayloadType::NONCE, &known),
            Err(Error::Malformed { what: "critical bit on a known payload" })
        );
    }

    #[test]
    fn chain_ends_and_errors() {
        assert_eq!(parse_chain(PayloadType::NONE, &[]), Ok(vec![]));
        assert_eq!(
            parse_chain(PayloadType::NONE, &[0]),
            Err(Error::Malformed { what: "trailing bytes" })
        );
        // Next payload says Nonce but the bytes end.
        let bytes = [0x28, 0x00, 0x00, 0x04];
        assert!(matches!(
            parse_chain(PayloadType::NONCE, &bytes),
            Err(Error::Truncated { what: "payload header", .. })
        ));
        // An error is yielded once, then the iterator stops.
        let mut chain = Chain::new(PayloadType::NONCE, &bytes[..3]);
        assert!(chain.next().unwrap().is_err());
        assert!(chain.next().is_none());
        // Nothing may follow SK.
        let sk = [0x28, 0x00, 0x00, 0x05, 0xaa, 0x00, 0x00, 0x00, 0x04];
        assert_eq!(
            parse_chain(PayloadType::SK, &sk),
            Err(Error::Malformed { what: "payload after SK" })
        );
        let payloads = parse_chain(PayloadType::SK, &sk[..5]).unwrap();
        assert_eq!(
            payloads,
            vec![Payload::Sk(Sk { first_payload: PayloadType::NONCE, body: vec![0xaa] })]
        );
    }
}
