//! The fixed 28-byte IKE header (RFC 7296 §3.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IKE SA Initiator's SPI                  |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IKE SA Responder's SPI                  |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                          Message ID                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                            Length                             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use super::registry::{ExchangeType, PayloadType};
use crate::wire::{Error, Result, ensure_len, read_u32, write_u32};

/// Length of the IKE header.
pub const HEADER_LEN: usize = 28;

/// The only major version this implementation speaks (RFC 7296 §3.1).
pub const MAJOR_VERSION: u8 = 2;

/// Byte ranges of the header fields.
mod field {
    use core::ops::Range;

    pub(super) const SPI_I: Range<usize> = 0..8;
    pub(super) const SPI_R: Range<usize> = 8..16;
    pub(super) const NEXT_PAYLOAD: usize = 16;
    pub(super) const VERSION: usize = 17;
    pub(super) const EXCHANGE_TYPE: usize = 18;
    pub(super) const FLAGS: usize = 19;
    pub(super) const MESSAGE_ID: Range<usize> = 20..24;
    pub(super) const LENGTH: Range<usize> = 24..28;
}

/// The Flags octet of the IKE header. The raw octet is kept, reserved bits included, so that a
/// parsed header re-emits unchanged (RFC 7296 §3.1: reserved bits are ignored on receipt).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u8);

impl Flags {
    /// Initiator: set in messages sent by the original initiator of the IKE SA.
    pub const INITIATOR: Self = Self(0x08);
    /// Version: the sender could speak a higher major version.
    pub const VERSION: Self = Self(0x10);
    /// Response: set in responses.
    pub const RESPONSE: Self = Self(0x20);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of both flag sets.
    #[must_use]
    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The I (Initiator) bit.
    pub const fn initiator(self) -> bool {
        self.contains(Self::INITIATOR)
    }

    /// The R (Response) bit.
    pub const fn response(self) -> bool {
        self.contains(Self::RESPONSE)
    }
}

crate::wire::packet_view! {
    /// A zero-copy view of an IKE message starting with its header.
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the 28-byte header and that the Length field covers at
    /// least the header and at most the buffer.
    pub fn check_len(&self) -> Result<()> {
        let have = self.buffer.as_ref().len();
        ensure_len("IKE header", HEADER_LEN, have)?;
        let length = usize::try_from(self.length()).unwrap_or(usize::MAX);
        if length < HEADER_LEN {
            return Err(Error::Malformed { what: "IKE length" });
        }
        ensure_len("IKE message", length, have)
    }

    /// IKE SA Initiator's SPI.
    pub fn spi_i(&self) -> u64 {
        read_u64(&self.buffer.as_ref()[field::SPI_I])
    }

    /// IKE SA Responder's SPI (zero in the first message).
    pub fn spi_r(&self) -> u64 {
        read_u64(&self.buffer.as_ref()[field::SPI_R])
    }

    /// Type of the first payload.
    pub fn next_payload(&self) -> PayloadType {
        PayloadType(self.buffer.as_ref()[field::NEXT_PAYLOAD])
    }

    /// Major version (high nibble of the version octet).
    pub fn major_version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION] >> 4
    }

    /// Minor version (low nibble of the version octet).
    pub fn minor_version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION] & 0x0f
    }

    /// Exchange type.
    pub fn exchange_type(&self) -> ExchangeType {
        ExchangeType(self.buffer.as_ref()[field::EXCHANGE_TYPE])
    }

    /// Flags octet.
    pub fn flags(&self) -> Flags {
        Flags(self.buffer.as_ref()[field::FLAGS])
    }

    /// Message ID.
    pub fn message_id(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::MESSAGE_ID])
    }

    /// Length of the whole message, header included.
    pub fn length(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::LENGTH])
    }

    /// The payloads: the bytes after the header, up to the Length field (needs `check_len`).
    pub fn payload(&self) -> &[u8] {
        let length = usize::try_from(self.length()).unwrap_or(usize::MAX);
        &self.buffer.as_ref()[HEADER_LEN..length]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the initiator's SPI.
    pub fn set_spi_i(&mut self, value: u64) {
        self.buffer.as_mut()[field::SPI_I].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the responder's SPI.
    pub fn set_spi_r(&mut self, value: u64) {
        self.buffer.as_mut()[field::SPI_R].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the first payload's type.
    pub fn set_next_payload(&mut self, value: PayloadType) {
        self.buffer.as_mut()[field::NEXT_PAYLOAD] = value.0;
    }

    /// Sets the version octet from its two nibbles (each masked to 4 bits).
    pub fn set_version(&mut self, major: u8, minor: u8) {
        self.buffer.as_mut()[field::VERSION] = (major << 4) | (minor & 0x0f);
    }

    /// Sets the exchange type.
    pub fn set_exchange_type(&mut self, value: ExchangeType) {
        self.buffer.as_mut()[field::EXCHANGE_TYPE] = value.0;
    }

    /// Sets the flags octet.
    pub fn set_flags(&mut self, value: Flags) {
        self.buffer.as_mut()[field::FLAGS] = value.0;
    }

    /// Sets the message ID.
    pub fn set_message_id(&mut self, value: u32) {
        write_u32(&mut self.buffer.as_mut()[field::MESSAGE_ID], value);
    }

    /// Sets the Length field.
    pub fn set_length(&mut self, value: u32) {
        write_u32(&mut self.buffer.as_mut()[field::LENGTH], value);
    }

    /// Everything after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// Reads a big-endian `u64` from the first eight bytes of `bytes`.
fn read_u64(bytes: &[u8]) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(raw)
}

/// A parsed IKE header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// IKE SA Initiator's SPI.
    pub spi_i: u64,
    /// IKE SA Responder's SPI.
    pub spi_r: u64,
    /// Type of the first payload.
    pub next_payload: PayloadType,
    /// Minor version: 0 from RFC 7296 senders, kept as received (§2.5 says to ignore it).
    pub minor_version: u8,
    /// Exchange type.
    pub exchange_type: ExchangeType,
    /// Flags.
    pub flags: Flags,
    /// Message ID.
    pub message_id: u32,
    /// Length of the payloads after the header.
    pub payload_len: usize,
}

impl Repr {
    /// Parses the header of `packet`.
    ///
    /// Fails with `Unsupported { what: "IKE major version" }` unless the major version is 2;
    /// the caller may answer `INVALID_MAJOR_VERSION` (RFC 7296 §1.5).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self> {
        if packet.major_version() != MAJOR_VERSION {
            return Err(Error::Unsupported { what: "IKE major version" });
        }
        Ok(Self {
            spi_i: packet.spi_i(),
            spi_r: packet.spi_r(),
            next_payload: packet.next_payload(),
            minor_version: packet.minor_version(),
            exchange_type: packet.exchange_type(),
            flags: packet.flags(),
            message_id: packet.message_id(),
            payload_len: packet.payload().len(),
        })
    }

    /// The length of the emitted header (always 28).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into `packet` (at least [`Self::buffer_len`] bytes). The Length field
    /// is `28 + payload_len`, saturated at `u32::MAX`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_spi_i(self.spi_i);
        packet.set_spi_r(self.spi_r);
        packet.set_next_payload(self.next_payload);
        packet.set_version(MAJOR_VERSION, self.minor_version);
        packet.set_exchange_type(self.exchange_type);
        packet.set_flags(self.flags);
        packet.set_message_id(self.message_id);
        let length = u32::try_from(HEADER_LEN.saturating_add(self.payload_len)).unwrap_or(u32::MAX);
        packet.set_length(length);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IKE_SA_INIT request header: SPIi 0x0102030405060708, SPIr 0, next payload SA,
    /// version 2.0, flags I, message ID 0, length 32 (four bytes of payload follow).
    static PACKET_BYTES: [u8; 32] = [
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x21, 0x20, 0x22, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0xde, 0xad,
        0xbe, 0xef,
    ];

    const REPR: Repr = Repr {
        spi_i: 0x0102_0304_0506_0708,
        spi_r: 0,
        next_payload: PayloadType::SA,
        minor_version: 0,
        exchange_type: ExchangeType::IKE_SA_INIT,
        flags: Flags::INITIATOR,
        message_id: 0,
        payload_len: 4,
    };

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.spi_i(), 0x0102_0304_0506_0708);
        assert_eq!(packet.spi_r(), 0);
        assert_eq!(packet.next_payload(), PayloadType::SA);
        assert_eq!((packet.major_version(), packet.minor_version()), (2, 0));
        assert_eq!(packet.exchange_type(), ExchangeType::IKE_SA_INIT);
        assert!(packet.flags().initiator() && !packet.flags().response());
        assert_eq!(packet.message_id(), 0);
        assert_eq!(packet.length(), 32);
        assert_eq!(packet.payload(), &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xffu8; 32];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_spi_i(0x0102_0304_0506_0708);
        packet.set_spi_r(0);
        packet.set_next_payload(PayloadType::SA);
        packet.set_version(2, 0);
        packet.set_exchange_type(ExchangeType::IKE_SA_INIT);
        packet.set_flags(Flags::INITIATOR);
        packet.set_message_id(0);
        packet.set_length(32);
        packet.payload_mut().copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn check_len() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&PACKET_BYTES[..len]),
                Err(Error::Truncated { what: "IKE header", needed: 28, have: len })
            );
        }
        // The Length field says 32: any shorter buffer is truncated.
        for len in HEADER_LEN..32 {
            assert_eq!(
                Packet::new_checked(&PACKET_BYTES[..len]),
                Err(Error::Truncated { what: "IKE message", needed: 32, have: len })
            );
        }
        // A Length field shorter than the header itself.
        let mut bytes = PACKET_BYTES;
        bytes[27] = 27;
        assert_eq!(Packet::new_checked(&bytes[..]), Err(Error::Malformed { what: "IKE length" }));
        // Trailing bytes beyond the Length field are not part of the payload.
        bytes[27] = 30;
        assert_eq!(Packet::new_checked(&bytes[..]).unwrap().payload(), &[0xde, 0xad]);
        // A huge Length field is truncation, not a panic.
        bytes[24] = 0xff;
        assert!(matches!(Packet::new_checked(&bytes[..]), Err(Error::Truncated { .. })));
    }

    #[test]
    fn parse() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Ok(REPR));
        let mut bytes = PACKET_BYTES;
        bytes[17] = 0x30;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Err(Error::Unsupported { what: "IKE major version" }));
        // Minor version and reserved flag bits are kept.
        bytes[17] = 0x21;
        bytes[19] = 0x29;
        let repr = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!((repr.minor_version, repr.flags), (1, Flags(0x29)));
        let mut out = [0u8; 32];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out[..28], bytes[..28]);
    }

    #[test]
    fn emit() {
        let mut bytes = [0xffu8; 28];
        REPR.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, PACKET_BYTES[..28]);
    }

    #[test]
    fn buffer_len() {
        assert_eq!(REPR.buffer_len(), 28);
    }

    #[test]
    fn flags() {
        let f = Flags::INITIATOR.with(Flags::RESPONSE);
        assert!(f.initiator() && f.response() && !f.contains(Flags::VERSION));
        assert_eq!(f, Flags(0x28));
    }
}
