//! strongSwan's VICI control protocol: message codec, packet framing, server and client.
//!
//! ferroswan's control socket speaks VICI so that strongSwan's `swanctl`, its client libraries and
//! the Prometheus exporters built on them work against ferroswan unchanged (design §1). The
//! protocol is described in strongSwan's `src/libcharon/plugins/vici/README.md`.
//!
//! - [`message`]: [`Message`], the ordered element tree, and its encoding (sans-IO).
//! - [`packet`]: [`Packet`] and [`FrameDecoder`], the packet layer and stream framing (sans-IO).
//! - [`server`]: [`Server`], an async Unix-socket server dispatching to a [`Handler`].
//! - [`client`]: [`Client`], used by the ferroswan CLI.
//! - [`schema`]: typed builders for the messages strongSwan's tools expect (`version`, `stats`,
//!   `list-sa`, `ike-updown`, `child-updown`), with strongSwan's exact key names.

pub mod client;
pub mod message;
pub mod packet;
pub mod schema;
pub mod server;

pub use client::Client;
pub use message::{Element, Message};
pub use packet::{FrameDecoder, Packet};
pub use server::{Broadcaster, EventSink, Handler, Server, ServerConfig};

/// Events strongSwan's vici plugin raises, in its README's order. [`Handler::has_event`] accepts
/// these by default; registering for any other name gets `EVENT_UNKNOWN`.
pub const KNOWN_EVENTS: &[&str] = &[
    "log",
    "control-log",
    "list-sa",
    "list-policy",
    "list-conn",
    "list-cert",
    "list-authority",
    "ike-updown",
    "ike-rekey",
    "ike-update",
    "child-updown",
    "child-rekey",
    "alert",
];

/// Default socket path of the ferroswan daemon (strongSwan's is `/var/run/charon.vici`).
pub const DEFAULT_SOCKET_PATH: &str = "/run/ferroswan/charon.vici";

/// Errors of the VICI server and client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server does not know the command.
    #[error("the VICI server does not know command {0:?}")]
    CommandUnknown(String),
    /// The connection closed.
    #[error("VICI connection closed by the peer{0}")]
    ConnectionClosed(&'static str),
    /// A message could not be encoded.
    #[error(transparent)]
    Encode(#[from] message::EncodeError),
    /// The server does not know the event.
    #[error("the VICI server does not know event {0:?}")]
    EventUnknown(String),
    /// A socket operation failed.
    #[error("VICI socket {path}: {action}: {source}")]
    Io {
        /// The socket path.
        path: std::path::PathBuf,
        /// What we were doing.
        action: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The peer sent an invalid packet.
    #[error(transparent)]
    Packet(#[from] packet::PacketError),
    /// A previous operation timed out or failed midway, so the connection's state is unknown.
    #[error("VICI connection unusable after an earlier timeout or error; reconnect")]
    Poisoned,
    /// No answer within the timeout.
    #[error("no VICI answer to {what} within {timeout:?}")]
    Timeout {
        /// The request waiting for an answer.
        what: String,
        /// The timeout.
        timeout: std::time::Duration,
    },
    /// The peer sent a packet that makes no sense at this point.
    #[error("unexpected VICI packet {got} while waiting for {expected}")]
    UnexpectedPacket {
        /// What we waited for.
        expected: &'static str,
        /// What came.
        got: String,
    },
}
