//! The VICI client the ferroswan CLI uses.
//!
//! One connection, one operation at a time (`&mut self`). Every wait for a packet is bounded by
//! the client's timeout (default [`DEFAULT_TIMEOUT`]); the bound applies to each packet, so a long
//! `list-sas` stream does not time out as long as events keep coming. After a timeout or protocol
//! error the connection's state is unknown and every later call fails with [`Error::Poisoned`].
//!
//! Events for registrations made with [`Client::register`] that arrive during a request are kept
//! and handed out by [`Client::next_event`].

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::Error;
use super::message::Message;
use super::packet::{FrameDecoder, Packet};

/// How long the client waits for each packet by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to a VICI server.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    path: PathBuf,
    decoder: FrameDecoder,
    timeout: Duration,
    /// Events received while waiting for something else.
    pending: VecDeque<(String, Message)>,
    poisoned: bool,
}

impl Client {
    /// Connects to the server's socket at `path`.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let stream = match tokio::time::timeout(DEFAULT_TIMEOUT, UnixStream::connect(&path)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(Error::Io { path, action: "connecting", source }),
            Err(_) => {
                return Err(Error::Timeout {
                    what: format!("connecting to {}", path.display()),
                    timeout: DEFAULT_TIMEOUT,
                });
            }
        };
        Ok(Self {
            stream,
            path,
            decoder: FrameDecoder::new(),
            timeout: DEFAULT_TIMEOUT,
            pending: VecDeque::new(),
            poisoned: false,
        })
    }

    /// Sets how long to wait for each packet.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Runs command `cmd` and returns its response.
    pub async fn request(&mut self, cmd: &str, msg: &Message) -> Result<Message, Error> {
        self.guard(async |c: &mut Self| {
            c.send(&Packet::CmdRequest { name: cmd.into(), msg: msg.clone() }).await?;
            c.response(cmd, None).await.map(|(_, response)| response)
        })
        .await
    }

    /// Registers for `event`, runs `cmd`, collects the `event` events it streams until its
    /// response, and unregisters (e.g. `list-sas` with `list-sa`).
    pub async fn request_streaming(
        &mut self,
        cmd: &str,
        msg: &Message,
        event: &str,
    ) -> Result<(Vec<Message>, Message), Error> {
        self.guard(async |c: &mut Self| {
            c.registration(Packet::EventRegister { name: event.into() }).await?;
            c.send(&Packet::CmdRequest { name: cmd.into(), msg: msg.clone() }).await?;
            let result = c.response(cmd, Some(event)).await?;
            c.registration(Packet::EventUnregister { name: event.into() }).await?;
            Ok(result)
        })
        .await
    }

    /// Registers for `event` (for [`next_event`](Self::next_event)).
    pub async fn register(&mut self, event: &str) -> Result<(), Error> {
        self.guard(async |c: &mut Self| {
            c.registration(Packet::EventRegister { name: event.into() }).await
        })
        .await
    }

    /// Unregisters from `event`.
    pub async fn unregister(&mut self, event: &str) -> Result<(), Error> {
        self.guard(async |c: &mut Self| {
            c.registration(Packet::EventUnregister { name: event.into() }).await
        })
        .await
    }

    /// The next event of a registration, waiting without a timeout (as `swanctl --monitor-sa`).
    pub async fn next_event(&mut self) -> Result<(String, Message), Error> {
        if let Some(event) = self.pending.pop_front() {
            return Ok(event);
        }
        self.guard(async |c: &mut Self| match c.read_packet(None).await? {
            Packet::Event { name, msg } => Ok((name, msg)),
            other => Err(Error::UnexpectedPacket { expected: "EVENT", got: other.describe() }),
        })
        .await
    }

    /// Runs `op`, poisoning the connection if it fails midway.
    async fn guard<T>(
        &mut self,
        op: impl AsyncFnOnce(&mut Self) -> Result<T, Error>,
    ) -> Result<T, Error> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        let result = op(self).await;
        if let Err(e) = &result {
            // A refused command or event leaves the stream in sync; anything else may not.
            if !matches!(e, Error::CommandUnknown(_) | Error::EventUnknown(_)) {
                self.poisoned = true;
            }
        }
        result
    }

    async fn registration(&mut self, packet: Packet) -> Result<(), Error> {
        let name = match &packet {
            Packet::EventRegister { name } | Packet::EventUnregister { name } => name.clone(),
            _ => String::new(),
        };
        self.send(&packet).await?;
        loop {
            match self.read_packet(Some(&packet.describe())).await? {
                Packet::EventConfirm => return Ok(()),
                Packet::EventUnknown => return Err(Error::EventUnknown(name)),
                Packet::Event { name, msg } => self.pending.push_back((name, msg)),
                other => {
                    return Err(Error::UnexpectedPacket {
                        expected: "EVENT_CONFIRM",
                        got: other.describe(),
                    });
                }
            }
        }
    }

    /// Waits for the response to `cmd`, collecting `stream` events on the way.
    async fn response(
        &mut self,
        cmd: &str,
        stream: Option<&str>,
    ) -> Result<(Vec<Message>, Message), Error> {
        let what = format!("command {cmd:?}");
        let mut events = Vec::new();
        loop {
            match self.read_packet(Some(&what)).await? {
                Packet::CmdResponse { msg } => return Ok((events, msg)),
                Packet::CmdUnknown => return Err(Error::CommandUnknown(cmd.into())),
                Packet::Event { name, msg } if Some(name.as_str()) == stream => events.push(msg),
                Packet::Event { name, msg } => self.pending.push_back((name, msg)),
                other => {
                    return Err(Error::UnexpectedPacket {
                        expected: "CMD_RESPONSE",
                        got: other.describe(),
                    });
                }
            }
        }
    }

    async fn send(&mut self, packet: &Packet) -> Result<(), Error> {
        let frame = packet.encode()?;
        match tokio::time::timeout(self.timeout, self.stream.write_all(&frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => {
                Err(Error::Io { path: self.path.clone(), action: "writing", source })
            }
            Err(_) => Err(Error::Timeout { what: packet.describe(), timeout: self.timeout }),
        }
    }

    /// Reads the next packet; `waiting_for` names what we wait for, `None` waits forever.
    async fn read_packet(&mut self, waiting_for: Option<&str>) -> Result<Packet, Error> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(packet) = self.decoder.poll_packet()? {
                return Ok(packet);
            }
            let read = self.stream.read(&mut buf);
            let n = match waiting_for {
                Some(what) => match tokio::time::timeout(self.timeout, read).await {
                    Ok(n) => n,
                    Err(_) => {
                        return Err(Error::Timeout { what: what.into(), timeout: self.timeout });
                    }
                },
                None => read.await,
            }
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                action: "reading",
                source,
            })?;
            if n == 0 {
                return Err(Error::ConnectionClosed(if self.decoder.buffered() == 0 {
                    ""
                } else {
                    " in the middle of a packet"
                }));
            }
            self.decoder.handle_bytes(buf.get(..n).unwrap_or_default());
        }
    }
}
