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

/// Defines a format's `Packet<T>`: a zero-copy view over a buffer with `new_unchecked`,
/// `new_checked` (which runs the format's own `check_len`, written beside its getters) and
/// `into_inner`, per the contract above. The doc comment given becomes the type's doc.
macro_rules! packet_view {
    ($(#[$doc:meta])*) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct Packet<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> Packet<T> {
            /// Wraps `buffer` without checking it; getters may panic until
            /// [`Self::check_len`] passes.
            pub const fn new_unchecked(buffer: T) -> Self {
                Self { buffer }
            }

            /// Wraps `buffer` and checks it with [`Self::check_len`].
            pub fn new_checked(buffer: T) -> $crate::wire::Result<Self> {
                let packet = Self::new_unchecked(buffer);
                packet.check_len()?;
                Ok(packet)
            }

            /// Returns the underlying buffer.
            pub fn into_inner(self) -> T {
                self.buffer
            }
        }
    };
}
pub(crate) use packet_view;

pub mod ah;
pub mod esp;
pub mod ikev2;
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

#[cfg(test)]
mod tests {
    use core::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    /// Runs every parser on `bytes`; none may panic, whatever the result.
    fn parse_everything(bytes: &[u8]) {
        if let Ok(packet) = Ipv4Packet::new_checked(bytes) {
            let _ = (packet.payload(), packet.options(), packet.verify_checksum());
            let _ = Ipv4Repr::parse(&packet);
        }
        if let Ok(packet) = Ipv6Packet::new_checked(bytes) {
            let _ = packet.payload();
            let _ = Ipv6Repr::parse(&packet);
        }
        if let Ok(packet) = EspPacket::new_checked(bytes) {
            let _ = packet.payload();
            let _ = EspRepr::parse(&packet);
        }
        if let Ok(packet) = AhPacket::new_checked(bytes) {
            let _ = (packet.icv(), packet.payload());
            let _ = AhRepr::parse(&packet);
        }
        if let Ok(packet) = UdpPacket::new_checked(bytes) {
            let _ = packet.payload();
            let _ = UdpRepr::parse(&packet);
            let v4 = core::net::IpAddr::V4(Ipv4Addr::LOCALHOST);
            let v6 = core::net::IpAddr::V6(Ipv6Addr::LOCALHOST);
            let _ = (packet.verify_checksum(&v4, &v4), packet.verify_checksum(&v6, &v6));
        }
        let _ = ip::flow_key(bytes);
        let _ = ip::esp_insertion_point(bytes);
        let _ = ipv6::upper_layer(bytes);
        let _ = ipv6::esp_insertion_point(bytes);
        let _ = ipv4::esp_insertion_point(bytes);
        let _ = udp_encap::classify(bytes);
        let _ = esp::parse_trailer(bytes);
        if let Ok(msg) = ikev2::Message::parse(bytes) {
            assert_eq!(msg.emit().as_deref(), Ok(bytes));
        }
        let _ = ikev2::parse_chain(ikev2::PayloadType::SA, bytes);
        let _ = ikev2::parse_chain(ikev2::PayloadType::TSI, bytes);
    }

    /// Bytes that look like an IPv4 or IPv6 packet: the version and length fields agree with
    /// the buffer, so the parsers get past the fixed header into options, extension headers
    /// and the upper layer.
    fn ip_like() -> impl Strategy<Value = Vec<u8>> {
        let ext = prop::sample::select(vec![0u8, 6, 17, 43, 44, 50, 51, 58, 59, 60, 132]);
        (any::<bool>(), ext, prop::collection::vec(any::<u8>(), 40..160)).prop_map(
            |(is_v6, first, mut bytes)| {
                let len = u16::try_from(bytes.len()).unwrap();
                if is_v6 {
                    bytes[0] = 0x60 | (bytes[0] & 0x0f);
                    bytes[4..6].copy_from_slice(&(len - 40).to_be_bytes());
                    bytes[6] = first;
                    // Make the extension headers short so that chains form.
                    for i in (41..bytes.len()).step_by(8) {
                        bytes[i] &= 0x01;
                    }
                } else {
                    bytes[0] = 0x40 | (5 + (bytes[0] & 0x03));
                    bytes[2..4].copy_from_slice(&len.to_be_bytes());
                    bytes[6] &= 0xe0;
                    bytes[9] = first;
                }
                bytes
            },
        )
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            parse_everything(&bytes);
        }

        #[test]
        fn ip_like_bytes_never_panic(bytes in ip_like()) {
            parse_everything(&bytes);
            // A well-formed fixed header always gives a flow key or a reasoned error.
            let _ = ip::flow_key(&bytes);
        }

        #[test]
        fn esp_trailer_round_trips(
            payload_len in 0usize..64,
            block_len in prop::sample::select(vec![1usize, 8, 16]),
            next_header in any::<u8>(),
        ) {
            let pad_len = esp::pad_len_for(payload_len, block_len);
            let pad = u8::try_from(pad_len).unwrap();
            let mut buf = vec![0xaa; payload_len + pad_len + 2];
            let len = esp::write_trailer(&mut buf, payload_len, pad, IpProtocol(next_header));
            prop_assert_eq!(len, Ok(buf.len()));
            prop_assert_eq!(buf.len() % block_len.max(4), 0);
            let trailer = EspTrailer { pad_len: pad, next_header: IpProtocol(next_header) };
            prop_assert_eq!(esp::parse_trailer(&buf), Ok((payload_len, trailer)));
        }

        #[test]
        fn ipv4_repr_round_trips(
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), protocol in any::<u8>(),
            payload_len in 0usize..64, ttl in any::<u8>(), dscp_ecn in any::<u8>(),
            ident in any::<u16>(), dont_frag in any::<bool>(),
        ) {
            let repr = Ipv4Repr {
                src_addr: Ipv4Addr::from(src), dst_addr: Ipv4Addr::from(dst),
                protocol: IpProtocol(protocol), payload_len, ttl, dscp_ecn, ident, dont_frag,
            };
            let mut bytes = vec![0xa5; repr.buffer_len() + payload_len];
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut bytes[..]));
            prop_assert_eq!(Ipv4Repr::parse(&Ipv4Packet::new_checked(&bytes[..]).unwrap()), Ok(repr));
        }

        #[test]
        fn ipv6_repr_round_trips(
            src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), next_header in any::<u8>(),
            payload_len in 0usize..64, hop_limit in any::<u8>(), traffic_class in any::<u8>(),
            flow_label in 0u32..0x10_0000,
        ) {
            let repr = Ipv6Repr {
                src_addr: Ipv6Addr::from(src), dst_addr: Ipv6Addr::from(dst),
                next_header: IpProtocol(next_header), payload_len, hop_limit, traffic_class,
                flow_label,
            };
            let mut bytes = vec![0xa5; repr.buffer_len() + payload_len];
            repr.emit(&mut Ipv6Packet::new_unchecked(&mut bytes[..]));
            prop_assert_eq!(Ipv6Repr::parse(&Ipv6Packet::new_checked(&bytes[..]).unwrap()), Ok(repr));
        }

        #[test]
        fn esp_ah_udp_reprs_round_trip(
            spi in 1u32.., seq in any::<u32>(), next_header in any::<u8>(), icv_words in 0usize..64,
            src_port in any::<u16>(), dst_port in any::<u16>(), payload_len in 0usize..64,
        ) {
            let esp = EspRepr { spi, seq };
            let mut bytes = vec![0xa5; esp.buffer_len()];
            esp.emit(&mut EspPacket::new_unchecked(&mut bytes[..]));
            prop_assert_eq!(EspRepr::parse(&EspPacket::new_checked(&bytes[..]).unwrap()), Ok(esp));

            let ah = AhRepr { next_header: IpProtocol(next_header), spi, seq, icv_len: icv_words * 4 };
            let mut bytes = vec![0xa5; ah.buffer_len()];
            ah.emit(&mut AhPacket::new_unchecked(&mut bytes[..]));
            prop_assert_eq!(AhRepr::parse(&AhPacket::new_checked(&bytes[..]).unwrap()), Ok(ah));

            let udp = UdpRepr { src_port, dst_port, payload_len };
            let mut bytes = vec![0xa5; udp.buffer_len() + payload_len];
            udp.emit(&mut UdpPacket::new_unchecked(&mut bytes[..]));
            prop_assert_eq!(UdpRepr::parse(&UdpPacket::new_checked(&bytes[..]).unwrap()), Ok(udp));
        }
    }
}
