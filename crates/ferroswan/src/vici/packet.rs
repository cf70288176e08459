//! VICI packets and their framing on a stream (sans-IO).
//!
//! Transport (strongSwan `src/libcharon/plugins/vici/README.md`, "Transport protocol"): each
//! segment is a 32-bit big-endian length (excluding itself) and that many bytes of data, at most
//! [`MAX_SEGMENT_LEN`]. A segment holds one packet: a type byte, for named types an 8-bit name
//! length and an ASCII name, then for types that carry one the encoded [`Message`].
//!
//! [`Packet::encode`] makes a whole segment (length prefix included); [`Packet::decode`] reads the
//! data of one segment; [`FrameDecoder`] cuts a byte stream into packets as bytes arrive.

use super::message::{DecodeError, EncodeError, Message};

/// Largest segment (packet) length, excluding the 4-byte length prefix (strongSwan's
/// `VICI_MESSAGE_SIZE_MAX`, 512 KiB, inclusive).
pub const MAX_SEGMENT_LEN: usize = 512 * 1024;

/// Packet type byte of [`Packet::CmdRequest`].
pub const CMD_REQUEST: u8 = 0;
/// Packet type byte of [`Packet::CmdResponse`].
pub const CMD_RESPONSE: u8 = 1;
/// Packet type byte of [`Packet::CmdUnknown`].
pub const CMD_UNKNOWN: u8 = 2;
/// Packet type byte of [`Packet::EventRegister`].
pub const EVENT_REGISTER: u8 = 3;
/// Packet type byte of [`Packet::EventUnregister`].
pub const EVENT_UNREGISTER: u8 = 4;
/// Packet type byte of [`Packet::EventConfirm`].
pub const EVENT_CONFIRM: u8 = 5;
/// Packet type byte of [`Packet::EventUnknown`].
pub const EVENT_UNKNOWN: u8 = 6;
/// Packet type byte of [`Packet::Event`].
pub const EVENT: u8 = 7;

/// One VICI packet. Variants are in wire (type byte) order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    /// Client → server: run command `name` with arguments `msg`.
    CmdRequest {
        /// Command name, e.g. `list-sas`.
        name: String,
        /// Arguments.
        msg: Message,
    },
    /// Server → client: the result of the command in flight.
    CmdResponse {
        /// Result.
        msg: Message,
    },
    /// Server → client: the command in flight is not known.
    CmdUnknown,
    /// Client → server: send me events named `name`.
    EventRegister {
        /// Event name, e.g. `list-sa`.
        name: String,
    },
    /// Client → server: stop sending events named `name`.
    EventUnregister {
        /// Event name.
        name: String,
    },
    /// Server → client: (un)registration done.
    EventConfirm,
    /// Server → client: no such event.
    EventUnknown,
    /// Server → client: an event.
    Event {
        /// Event name.
        name: String,
        /// Event data.
        msg: Message,
    },
}

impl Packet {
    /// The packet's type byte.
    pub fn type_byte(&self) -> u8 {
        match self {
            Self::CmdRequest { .. } => CMD_REQUEST,
            Self::CmdResponse { .. } => CMD_RESPONSE,
            Self::CmdUnknown => CMD_UNKNOWN,
            Self::EventRegister { .. } => EVENT_REGISTER,
            Self::EventUnregister { .. } => EVENT_UNREGISTER,
            Self::EventConfirm => EVENT_CONFIRM,
            Self::EventUnknown => EVENT_UNKNOWN,
            Self::Event { .. } => EVENT,
        }
    }

    /// A short description for logs and errors, e.g. `CMD_REQUEST "list-sas"`.
    pub fn describe(&self) -> String {
        match self {
            Self::CmdRequest { name, .. } => format!("CMD_REQUEST {name:?}"),
            Self::CmdResponse { .. } => "CMD_RESPONSE".into(),
            Self::CmdUnknown => "CMD_UNKNOWN".into(),
            Self::EventRegister { name } => format!("EVENT_REGISTER {name:?}"),
            Self::EventUnregister { name } => format!("EVENT_UNREGISTER {name:?}"),
            Self::EventConfirm => "EVENT_CONFIRM".into(),
            Self::EventUnknown => "EVENT_UNKNOWN".into(),
            Self::Event { name, .. } => format!("EVENT {name:?}"),
        }
    }

    /// Encodes the packet as one segment, 4-byte length prefix included.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = vec![0, 0, 0, 0, self.type_byte()];
        let (name, msg) = match self {
            Self::CmdRequest { name, msg } | Self::Event { name, msg } => (Some(name), Some(msg)),
            Self::CmdResponse { msg } => (None, Some(msg)),
            Self::EventRegister { name } | Self::EventUnregister { name } => (Some(name), None),
            Self::CmdUnknown | Self::EventConfirm | Self::EventUnknown => (None, None),
        };
        if let Some(name) = name {
            if !name.is_ascii() {
                return Err(EncodeError::NonAsciiName(name.clone()));
            }
            let len =
                u8::try_from(name.len()).map_err(|_| EncodeError::NameTooLong(name.clone()))?;
            out.push(len);
            out.extend_from_slice(name.as_bytes());
        }
        if let Some(msg) = msg {
            msg.encode_into(&mut out)?;
        }
        let len = out.len() - 4;
        if len > MAX_SEGMENT_LEN {
            return Err(EncodeError::PacketTooLarge(len));
        }
        // len <= 512 KiB fits in u32.
        let prefix = u32::try_from(len).map_err(|_| EncodeError::PacketTooLarge(len))?;
        out.splice(0..4, prefix.to_be_bytes());
        Ok(out)
    }

    /// Decodes the data of one segment (without its length prefix).
    pub fn decode(segment: &[u8]) -> Result<Self, PacketError> {
        if segment.len() > MAX_SEGMENT_LEN {
            return Err(PacketError::SegmentTooLarge(segment.len()));
        }
        let Some((&ty, rest)) = segment.split_first() else {
            return Err(PacketError::Empty);
        };
        let named = |rest: &[u8]| -> Result<(String, usize), PacketError> {
            let Some((&len, rest)) = rest.split_first() else {
                return Err(PacketError::TruncatedName { ty, len: None });
            };
            let name = rest
                .get(..usize::from(len))
                .ok_or(PacketError::TruncatedName { ty, len: Some(len) })?;
            if !name.is_ascii() {
                return Err(PacketError::NonAsciiName { ty, name: name.to_vec() });
            }
            Ok((name.iter().map(|&b| char::from(b)).collect(), 1 + usize::from(len)))
        };
        let message = |data: &[u8], start: usize| -> Result<Message, PacketError> {
            Message::decode(data).map_err(|mut e| {
                // Make the offset relative to the segment, so logs point at the right byte.
                e.offset += start;
                PacketError::Message { ty, source: e }
            })
        };
        let nothing_after = |rest: &[u8], used: usize| -> Result<(), PacketError> {
            match rest.len().checked_sub(used) {
                Some(0) => Ok(()),
                Some(extra) => Err(PacketError::TrailingBytes { ty, extra }),
                None => Err(PacketError::TruncatedName { ty, len: None }),
            }
        };
        // Offsets below are relative to `rest`, which starts at segment byte 1.
        match ty {
            CMD_REQUEST | EVENT => {
                let (name, used) = named(rest)?;
                let msg = message(rest.get(used..).unwrap_or_default(), 1 + used)?;
                Ok(if ty == CMD_REQUEST {
                    Self::CmdRequest { name, msg }
                } else {
                    Self::Event { name, msg }
                })
            }
            CMD_RESPONSE => Ok(Self::CmdResponse { msg: message(rest, 1)? }),
            EVENT_REGISTER | EVENT_UNREGISTER => {
                let (name, used) = named(rest)?;
                nothing_after(rest, used)?;
                Ok(if ty == EVENT_REGISTER {
                    Self::EventRegister { name }
                } else {
                    Self::EventUnregister { name }
                })
            }
            CMD_UNKNOWN | EVENT_CONFIRM | EVENT_UNKNOWN => {
                nothing_after(rest, 0)?;
                Ok(match ty {
                    CMD_UNKNOWN => Self::CmdUnknown,
                    EVENT_CONFIRM => Self::EventConfirm,
                    _ => Self::EventUnknown,
                })
            }
            other => Err(PacketError::UnknownType(other)),
        }
    }
}

/// Cuts a byte stream into packets (sans-IO): feed received bytes with
/// [`handle_bytes`](Self::handle_bytes), then drain [`poll_packet`](Self::poll_packet) until it
/// returns `Ok(None)`.
///
/// An error is final: the stream is out of sync (or the peer is hostile) and the connection
/// should be closed. An oversized length is rejected as soon as its 4 bytes arrive, before any of
/// the data is buffered.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed by returned packets.
    start: usize,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn handle_bytes(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Number of buffered bytes not yet returned as packets.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete packet, `Ok(None)` if more bytes are needed.
    pub fn poll_packet(&mut self) -> Result<Option<Packet>, PacketError> {
        let pending = self.buf.get(self.start..).unwrap_or_default();
        let Some(&[a, b, c, d]) = pending.get(..4) else {
            return Ok(None);
        };
        let len = usize::try_from(u32::from_be_bytes([a, b, c, d])).unwrap_or(usize::MAX);
        if len > MAX_SEGMENT_LEN {
            return Err(PacketError::SegmentTooLarge(len));
        }
        let Some(segment) = pending.get(4..4 + len) else {
            return Ok(None);
        };
        let packet = Packet::decode(segment)?;
        self.start += 4 + len;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > MAX_SEGMENT_LEN {
            // Compact now and then so a long stream of packets does not grow the buffer.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        Ok(Some(packet))
    }
}

/// A packet could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// A segment of length 0 (no packet type).
    #[error("empty VICI segment (no packet type)")]
    Empty,
    /// The embedded message is invalid.
    #[error("VICI packet type {ty}: {source} (offset counted from the packet type byte)")]
    Message {
        /// Packet type byte.
        ty: u8,
        /// What was wrong with the message; its offset is relative to the segment start.
        source: DecodeError,
    },
    /// The packet's name has non-ASCII bytes.
    #[error("VICI packet type {ty}: name {name:02x?} is not ASCII")]
    NonAsciiName {
        /// Packet type byte.
        ty: u8,
        /// The name bytes.
        name: Vec<u8>,
    },
    /// The segment is longer than [`MAX_SEGMENT_LEN`].
    #[error("VICI segment of {0} bytes exceeds the 524288-byte limit")]
    SegmentTooLarge(usize),
    /// A packet type that carries nothing (more) has extra bytes.
    #[error("VICI packet type {ty} has {extra} unexpected trailing bytes")]
    TrailingBytes {
        /// Packet type byte.
        ty: u8,
        /// Number of extra bytes.
        extra: usize,
    },
    /// The name length or name is cut off.
    #[error("VICI packet type {ty}: name truncated (declared length {len:?})")]
    TruncatedName {
        /// Packet type byte.
        ty: u8,
        /// The declared name length, if it was present.
        len: Option<u8>,
    },
    /// A packet type byte above 7.
    #[error("unknown VICI packet type {0}")]
    UnknownType(u8),
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn all_packets() -> Vec<Packet> {
        let msg = Message::new().kv("ike", "home").section("s", Message::new().list("l", ["a"]));
        vec![
            Packet::CmdRequest { name: "list-sas".into(), msg: msg.clone() },
            Packet::CmdResponse { msg: msg.clone() },
            Packet::CmdUnknown,
            Packet::EventRegister { name: "list-sa".into() },
            Packet::EventUnregister { name: "list-sa".into() },
            Packet::EventConfirm,
            Packet::EventUnknown,
            Packet::Event { name: "list-sa".into(), msg },
        ]
    }

    #[test]
    fn hand_written_frames() {
        // A `version` request as libvici sends it: length 9, CMD_REQUEST, "version", no message.
        let req = Packet::CmdRequest { name: "version".into(), msg: Message::new() };
        assert_eq!(req.encode().unwrap(), b"\x00\x00\x00\x09\x00\x07version");
        let reg = Packet::EventRegister { name: "list-sa".into() };
        assert_eq!(reg.encode().unwrap(), b"\x00\x00\x00\x09\x03\x07list-sa");
        assert_eq!(Packet::EventConfirm.encode().unwrap(), b"\x00\x00\x00\x01\x05");
        let resp = Packet::CmdResponse { msg: Message::new().kv("a", "b") };
        assert_eq!(resp.encode().unwrap(), b"\x00\x00\x00\x07\x01\x03\x01a\x00\x01b");
    }

    #[test]
    fn every_packet_type_round_trips() {
        for (ty, packet) in all_packets().into_iter().enumerate() {
            let frame = packet.encode().unwrap();
            assert_eq!(usize::from(frame[4]), ty);
            assert_eq!(Packet::decode(&frame[4..]).unwrap(), packet);
            let mut dec = FrameDecoder::new();
            dec.handle_bytes(&frame);
            assert_eq!(dec.poll_packet().unwrap(), Some(packet));
            assert_eq!(dec.poll_packet().unwrap(), None);
            assert_eq!(dec.buffered(), 0);
        }
    }

    #[test]
    fn frame_decoder_byte_by_byte() {
        let stream: Vec<u8> = all_packets().iter().flat_map(|p| p.encode().unwrap()).collect();
        let mut dec = FrameDecoder::new();
        let mut got = Vec::new();
        for b in &stream {
            dec.handle_bytes(std::slice::from_ref(b));
            while let Some(p) = dec.poll_packet().unwrap() {
                got.push(p);
            }
        }
        assert_eq!(got, all_packets());
    }

    #[test]
    fn invalid_segments() {
        assert_eq!(Packet::decode(&[]), Err(PacketError::Empty));
        assert_eq!(Packet::decode(&[8]), Err(PacketError::UnknownType(8)));
        assert_eq!(
            Packet::decode(&[EVENT_CONFIRM, 0]),
            Err(PacketError::TrailingBytes { ty: EVENT_CONFIRM, extra: 1 })
        );
        assert_eq!(
            Packet::decode(&[EVENT_REGISTER, 2, b'a', b'b', b'c']),
            Err(PacketError::TrailingBytes { ty: EVENT_REGISTER, extra: 1 })
        );
        assert_eq!(
            Packet::decode(&[CMD_REQUEST]),
            Err(PacketError::TruncatedName { ty: CMD_REQUEST, len: None })
        );
        assert_eq!(
            Packet::decode(&[EVENT, 5, b'a']),
            Err(PacketError::TruncatedName { ty: EVENT, len: Some(5) })
        );
        assert!(matches!(
            Packet::decode(&[EVENT_REGISTER, 1, 0x80]),
            Err(PacketError::NonAsciiName { .. })
        ));
        // The message offset is counted from the packet type byte: 1 + 1 + 1 ("x").
        let err = Packet::decode(&[CMD_REQUEST, 1, b'x', 9]).unwrap_err();
        let PacketError::Message { ty: CMD_REQUEST, source } = &err else { panic!("{err}") };
        assert_eq!(source.offset, 3);
        assert!(err.to_string().contains("unknown element type 9"), "{err}");
    }

    #[test]
    fn segment_limit() {
        // Rejected as soon as the length arrives, before any data.
        let mut dec = FrameDecoder::new();
        dec.handle_bytes(&(MAX_SEGMENT_LEN as u32 + 1).to_be_bytes());
        assert_eq!(dec.poll_packet(), Err(PacketError::SegmentTooLarge(MAX_SEGMENT_LEN + 1)));
        let mut dec = FrameDecoder::new();
        dec.handle_bytes(&[0xff; 4]);
        assert!(dec.poll_packet().is_err());
        // Exactly 512 KiB is allowed (strongSwan's check is `len > VICI_MESSAGE_SIZE_MAX`).
        let value = vec![b'v'; 60_000];
        let mut msg = Message::new();
        let mut i = 0;
        while msg.encode().unwrap().len() + 60_010 < MAX_SEGMENT_LEN {
            msg = msg.kv(format!("k{i}"), &value);
            i += 1;
        }
        let used = msg.encode().unwrap().len() + 1;
        // KEY_VALUE byte, name length, "pad", 16-bit value length.
        let pad = MAX_SEGMENT_LEN - used - 1 - 1 - 3 - 2;
        let msg = msg.kv("pad", vec![b'p'; pad]);
        let frame = Packet::CmdResponse { msg: msg.clone() }.encode().unwrap();
        assert_eq!(frame.len(), 4 + MAX_SEGMENT_LEN);
        let mut dec = FrameDecoder::new();
        dec.handle_bytes(&frame);
        assert_eq!(dec.poll_packet().unwrap(), Some(Packet::CmdResponse { msg: msg.clone() }));
        let too_big = Packet::CmdResponse { msg: msg.kv("pad", vec![b'p'; pad + 1]) };
        assert_eq!(too_big.encode(), Err(EncodeError::PacketTooLarge(MAX_SEGMENT_LEN + 1)));
    }

    #[test]
    fn truncated_frames_wait_and_truncated_segments_error() {
        let packet = Packet::Event {
            name: "list-sa".into(),
            msg: Message::new().section("home", Message::new().kv("state", "ESTABLISHED")),
        };
        let frame = packet.encode().unwrap();
        for len in 0..frame.len() {
            let mut dec = FrameDecoder::new();
            dec.handle_bytes(&frame[..len]);
            assert_eq!(dec.poll_packet(), Ok(None), "prefix {len}");
        }
        // The same prefixes, taken as whole segments, are invalid packets, except the one that
        // ends right after the name (an event with an empty message).
        let name_end = 4 + 1 + 1 + "list-sa".len();
        for len in (4..frame.len()).filter(|&len| len != name_end) {
            assert!(Packet::decode(&frame[4..len]).is_err(), "segment prefix {len}");
        }
    }

    proptest! {
        #[test]
        fn random_streams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut dec = FrameDecoder::new();
            dec.handle_bytes(&bytes);
            while let Ok(Some(_)) = dec.poll_packet() {}
            let _ = Packet::decode(&bytes);
        }

        #[test]
        fn random_framed_segments_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut frame = (body.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&body);
            let mut dec = FrameDecoder::new();
            dec.handle_bytes(&frame);
            match dec.poll_packet() {
                Ok(Some(p)) => prop_assert_eq!(p.encode().unwrap(), frame),
                Ok(None) => prop_assert!(false, "complete frame not returned"),
                Err(_) => {}
            }
        }
    }
}
