//! The VICI server: a Unix socket serving many clients, dispatching commands to a [`Handler`].
//!
//! Per connection, packets are handled strictly in order, so there is at most one command in
//! flight (VICI has no request ids). Event registrations belong to the connection. A command's
//! handler may stream events to *this* client (only those it registered for) through its
//! [`EventSink`] before its response; unsolicited events (`ike-updown`, `child-updown`, `log`, …)
//! go to every client registered for them through a [`Broadcaster`]. Both paths share one ordered
//! outgoing queue per connection, so a streamed event never overtakes the response it belongs to.
//!
//! A client that sends anything malformed (bad framing, an oversized segment, an invalid message,
//! a packet type only a server may send) is disconnected; other clients and the server go on.
//!
//! The socket file gets mode `0660` by default, like strongSwan's (its
//! `stream_service_create_unix` binds under `umask(S_IXUSR | S_IXGRP | S_IRWXO)`, which leaves
//! `rw-rw----`): root and the daemon's group may connect. A missing parent directory is created
//! with mode `0750`. A stale socket file (nobody accepting on it) is replaced; a live one, or a
//! path that is not a socket, is an error. [`Server::shutdown`] and drop remove the socket file if
//! it is still ours (same device and inode).

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::message::Message;
use super::packet::{FrameDecoder, Packet};
use super::{Error, KNOWN_EVENTS};

/// Outgoing packets queued per connection before broadcasts to it are dropped (command replies
/// and streamed events wait for room instead).
const QUEUE_LEN: usize = 1024;

/// The daemon side of VICI: answers commands, and says which events exist.
///
/// [`command`](Self::command) runs on a blocking thread (`tokio::task::spawn_blocking`), so it may
/// wait (say, for an IKE exchange during `initiate`) without stalling other clients; events it
/// emits reach the client while it runs.
pub trait Handler: Send + Sync + 'static {
    /// Runs command `name` with arguments `request`; `None` answers `CMD_UNKNOWN`.
    ///
    /// Stream results with `events` (e.g. one `list-sa` event per IKE SA during `list-sas`, or
    /// `control-log` during `initiate`); they reach this client only, and only if it registered.
    fn command(&self, name: &str, request: &Message, events: &mut EventSink) -> Option<Message>;

    /// Whether clients may register for event `name`; others get `EVENT_UNKNOWN`. Defaults to
    /// strongSwan's events ([`KNOWN_EVENTS`]).
    fn has_event(&self, name: &str) -> bool {
        KNOWN_EVENTS.contains(&name)
    }
}

/// Streams events to the client whose command is running (see [`Handler::command`]).
#[derive(Debug)]
pub struct EventSink {
    registered: HashSet<String>,
    tx: mpsc::Sender<Frame>,
    emitted: usize,
}

impl EventSink {
    /// Whether the client registered for `event` (skip building events nobody reads).
    pub fn is_registered(&self, event: &str) -> bool {
        self.registered.contains(event)
    }

    /// Sends `msg` as event `event` if the client registered for it; waits while the client's
    /// queue is full. Returns whether it was queued (false: not registered, client gone, or the
    /// message could not be encoded).
    pub fn emit(&mut self, event: &str, msg: Message) -> bool {
        if !self.is_registered(event) {
            return false;
        }
        let frame = match (Packet::Event { name: event.into(), msg }).encode() {
            Ok(frame) => frame,
            Err(e) => {
                tracing::warn!("VICI event {event:?} not sent: {e}");
                return false;
            }
        };
        let queued = self.tx.blocking_send(frame.into()).is_ok();
        self.emitted += usize::from(queued);
        queued
    }

    /// Number of events queued so far.
    pub fn emitted(&self) -> usize {
        self.emitted
    }
}

/// Sends unsolicited events to every client registered for them. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Broadcaster {
    shared: Arc<Shared>,
}

impl Broadcaster {
    /// Sends event `event` to all clients registered for it, without waiting: a client whose
    /// queue is full misses it (counted in [`dropped`](Self::dropped)). Returns the number of
    /// clients it was queued for.
    pub fn emit(&self, event: &str, msg: Message) -> usize {
        let frame: Frame = match (Packet::Event { name: event.into(), msg }).encode() {
            Ok(frame) => frame.into(),
            Err(e) => {
                tracing::warn!("VICI event {event:?} not broadcast: {e}");
                return 0;
            }
        };
        let mut sent = 0;
        for conn in self.shared.lock().values().filter(|c| c.events.contains(event)) {
            match conn.tx.try_send(Arc::clone(&frame)) {
                Ok(()) => sent += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        sent
    }

    /// Whether any client is registered for `event`.
    pub fn has_listeners(&self, event: &str) -> bool {
        self.shared.lock().values().any(|c| c.events.contains(event))
    }

    /// Events not delivered because a client's queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

/// Where and how to listen.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The socket path.
    pub path: PathBuf,
    /// The socket file's mode (default `0o660`, as strongSwan).
    pub mode: u32,
}

impl ServerConfig {
    /// Listen on `path` with mode `0o660`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), mode: 0o660 }
    }

    /// Sets the socket file's mode.
    pub fn with_mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }
}

/// A running VICI server. Stop it with [`shutdown`](Self::shutdown); dropping it also stops it
/// and removes the socket file.
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
    /// (device, inode) of the socket file we bound, to remove only our own.
    inode: (u64, u64),
    shutdown: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds the socket and starts serving on the current tokio runtime.
    pub async fn start<H: Handler>(config: ServerConfig, handler: H) -> Result<Self, Error> {
        let path = config.path;
        let io = |action| {
            let path = &path;
            move |source| Error::Io { path: path.clone(), action, source }
        };
        prepare_path(&path).map_err(io("preparing socket path"))?;
        let listener = UnixListener::bind(&path).map_err(io("binding"))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(config.mode))
            .map_err(io("setting socket mode"))?;
        let meta = std::fs::metadata(&path).map_err(io("reading socket metadata"))?;

        let shared = Arc::new(Shared::default());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(
            listener,
            Arc::new(handler),
            Arc::clone(&shared),
            shutdown_rx,
        ));
        Ok(Self { path, inode: (meta.dev(), meta.ino()), shutdown, task: Some(task), shared })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A handle for unsolicited events.
    pub fn broadcaster(&self) -> Broadcaster {
        Broadcaster { shared: Arc::clone(&self.shared) }
    }

    /// Number of connected clients.
    pub fn client_count(&self) -> usize {
        self.shared.lock().len()
    }

    /// Stops accepting, closes every connection, waits for them and removes the socket file.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.remove_socket();
    }

    fn remove_socket(&self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.inode
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.remove_socket();
    }
}

/// Creates the parent directory, and removes a stale socket file at `path`.
fn prepare_path(path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        std::fs::DirBuilder::new().recursive(true).mode(0o750).create(parent)?;
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(meta) if !meta.file_type().is_socket() => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "path exists and is not a socket; not removing it",
        )),
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another server is accepting connections on this socket",
            )),
            // Nobody listens: a leftover of a daemon that did not clean up.
            Err(_) => std::fs::remove_file(path),
        },
    }
}

/// An encoded packet, shared between the connections a broadcast goes to.
type Frame = Arc<[u8]>;

/// State shared between the accept loop, connections and broadcasters.
#[derive(Debug, Default)]
struct Shared {
    conns: Mutex<HashMap<u64, ConnEntry>>,
    next_id: AtomicU64,
    dropped: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, ConnEntry>> {
        // The map stays consistent even if a holder panicked: every update is a single insert,
        // remove or set operation.
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection as seen by broadcasters.
#[derive(Debug)]
struct ConnEntry {
    events: HashSet<String>,
    tx: mpsc::Sender<Frame>,
}

/// Removes a connection from the registry however its task ends (including abort).
struct ConnGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.shared.lock().remove(&self.id);
    }
}

async fn accept_loop<H: Handler>(
    listener: UnixListener,
    handler: Arc<H>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                    conns.spawn(connection(
                        stream,
                        id,
                        Arc::clone(&handler),
                        Arc::clone(&shared),
                        shutdown.clone(),
                    ));
                }
                Err(e) => {
                    // E.g. EMFILE: back off instead of spinning.
                    tracing::warn!("VICI accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

/// Serves one client until it disconnects, misbehaves or the server stops.
async fn connection<H: Handler>(
    stream: UnixStream,
    id: u64,
    handler: Arc<H>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Frame>(QUEUE_LEN);
    shared.lock().insert(id, ConnEntry { events: HashSet::new(), tx: tx.clone() });
    let guard = ConnGuard { shared, id };

    let writer = async move {
        while let Some(frame) = rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    };
    let reader = async move {
        tokio::select! {
            result = serve(&mut rd, &tx, &guard, handler) => {
                if let Err(reason) = result {
                    tracing::info!("VICI client {id} disconnected: {reason}");
                }
            }
            _ = shutdown.changed() => {}
        }
        // Dropping `tx` and `guard` (the registry's sender) lets the writer drain and finish.
        drop(tx);
        drop(guard);
    };
    tokio::join!(reader, writer);
}

/// The reason a connection ended (for the log).
type Disconnect = String;

async fn serve<H: Handler>(
    rd: &mut tokio::net::unix::OwnedReadHalf,
    tx: &mpsc::Sender<Frame>,
    conn: &ConnGuard,
    handler: Arc<H>,
) -> Result<(), Disconnect> {
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = rd.read(&mut buf).await.map_err(|e| format!("read error: {e}"))?;
        if n == 0 {
            return if decoder.buffered() == 0 {
                Ok(())
            } else {
                Err(format!("closed in the middle of a packet ({} bytes)", decoder.buffered()))
            };
        }
        decoder.handle_bytes(buf.get(..n).unwrap_or_default());
        while let Some(packet) = decoder.poll_packet().map_err(|e| e.to_string())? {
            let reply = match packet {
                Packet::CmdRequest { name, msg } => {
                    run_command(&handler, name, msg, tx, conn).await?
                }
                Packet::EventRegister { name } => {
                    if handler.has_event(&name) {
                        if let Some(entry) = conn.shared.lock().get_mut(&conn.id) {
                            entry.events.insert(name);
                        }
                        Packet::EventConfirm
                    } else {
                        Packet::EventUnknown
                    }
                }
                Packet::EventUnregister { name } => {
                    if handler.has_event(&name) {
                        if let Some(entry) = conn.shared.lock().get_mut(&conn.id) {
                            entry.events.remove(&name);
                        }
                        Packet::EventConfirm
                    } else {
                        Packet::EventUnknown
                    }
                }
                other => {
                    return Err(format!("client sent server-only packet {}", other.describe()));
                }
            };
            send(tx, &reply).await?;
        }
    }
}

async fn run_command<H: Handler>(
    handler: &Arc<H>,
    name: String,
    msg: Message,
    tx: &mpsc::Sender<Frame>,
    conn: &ConnGuard,
) -> Result<Packet, Disconnect> {
    let registered = conn.shared.lock().get(&conn.id).map(|e| e.events.clone()).unwrap_or_default();
    let mut sink = EventSink { registered, tx: tx.clone(), emitted: 0 };
    let handler = Arc::clone(handler);
    let cmd = name.clone();
    let result = tokio::task::spawn_blocking(move || handler.command(&cmd, &msg, &mut sink)).await;
    match result {
        Ok(Some(msg)) => Ok(Packet::CmdResponse { msg }),
        Ok(None) => Ok(Packet::CmdUnknown),
        Err(e) => Err(format!("handler of command {name:?} failed: {e}")),
    }
}

async fn send(tx: &mpsc::Sender<Frame>, packet: &Packet) -> Result<(), Disconnect> {
    let frame = packet.encode().map_err(|e| format!("cannot encode {}: {e}", packet.describe()))?;
    tx.send(frame.into()).await.map_err(|_| "connection closed while sending".to_string())
}
