//! The userspace data plane: moves packets between the TUN interface and the network,
//! sealing and opening ESP on the way.
//!
//! # Pipeline
//!
//! Outbound (one worker per TUN queue, [`outbound::run`]):
//!
//! 1. **TUN batch read** (sequential): up to [`BATCH`] packets per wake-up, each read straight
//!    into a pooled [`PacketBuf`] behind [`PacketBuf::DEFAULT_HEADROOM`] bytes of headroom, so
//!    ESP and outer headers are written in place later.
//! 2. **Policy lookup** (per packet): the flow key (addresses, protocol, ports) goes through the
//!    SPD of the current [`Tables`] snapshot; `Protect(sa)` picks the outbound SA. A packet that
//!    matches nothing is dropped and counted as [`DropReason::NoPolicy`]. A packet that hits a
//!    `Trap` is copied into that trap's bounded queue and the IKE thread is asked to bring the
//!    SA up ([`trap`]).
//! 3. **Seal** (per packet, in place): sequence number (atomic per SA), padding, AEAD.
//! 4. **Send batch** (sequential): all sealed packets of the batch leave in one
//!    [`NetTx::send_batch`] call (sendmmsg per socket in the daemon), raw ESP or UDP 4500 per
//!    SA. Per-SA order is kept because one worker handles a batch in order.
//!
//! Inbound (one worker per receiving socket, [`inbound::run`]):
//!
//! 1. **Socket batch read** (recvmmsg in the daemon) with per-packet source and destination.
//!    UDP 4500 datagrams are demultiplexed first (RFC 3948): NAT keepalives are ignored,
//!    non-ESP-marker datagrams are IKE (handed to the control plane), the rest is ESP.
//! 2. **SAD lookup by SPI** in the current [`Tables`] snapshot; unknown SPIs are counted.
//! 3. **Open** (per packet): replay pre-check, ICV, decrypt, padding — `&self`, no lock.
//! 4. **Accept**: replay-window update, only after the ICV verified (short per-SA lock).
//! 5. **Inbound policy check**: the decrypted inner packet must match the SA's selectors
//!    (RFC 4301 §5.2), else it is dropped as [`DropReason::PolicyMismatch`] — an SA is not a
//!    blanket pass into the LAN.
//! 6. **TUN write**.
//!
//! # Tables and locking
//!
//! The SPD and SAD live in an immutable [`Tables`] value behind an [`ArcSwap`]: the fast path
//! loads the current snapshot (an atomic pointer load, no lock), and the control plane
//! installs a new snapshot to add or remove SAs. SAs themselves are `Arc`s shared between
//! snapshots, so counters and sequence numbers survive a table change.
//!
//! # Buffers
//!
//! Each worker owns a pool of [`BATCH`] buffers allocated at start; nothing is allocated per
//! packet.

pub mod inbound;
pub mod outbound;
pub mod testing;
pub mod trap;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use ferroswan_proto::esp::{DropReason, InboundSa, OutboundSa, PacketBuf};
use ferroswan_proto::policy::{Action, SaSelectors, Spd};
use ferroswan_proto::wire::FlowKey;

use trap::HeldPackets;
pub use trap::TrapEntry;

/// Packets handled per wake-up of a worker.
pub const BATCH: usize = 64;

/// Size of each pooled packet buffer: headroom, a jumbo-safe payload and trailer room.
pub const BUF_SIZE: usize = PacketBuf::DEFAULT_HEADROOM + 9000 + PacketBuf::DEFAULT_TAILROOM;

/// How long a worker waits for packets before it checks whether it should stop.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Where a sealed ESP packet goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Destination {
    /// Raw ESP (IP protocol 50) to this peer address; the kernel adds the outer IP header.
    Raw(IpAddr),
    /// ESP in UDP (RFC 3948) from our `local` socket to the peer's `remote` address and port.
    Udp {
        /// Our local address and port (usually 4500).
        local: SocketAddr,
        /// The peer's address and port.
        remote: SocketAddr,
    },
}

/// How a packet reached us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carrier {
    /// A raw ESP socket: the buffer holds the ESP packet (SPI first).
    RawEsp,
    /// A UDP socket: the buffer holds the UDP payload (to be demultiplexed, RFC 3948).
    Udp,
}

/// Metadata of a received datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvMeta {
    /// The sender (port 0 for raw ESP).
    pub src: SocketAddr,
    /// Our address it was sent to.
    pub dst: IpAddr,
    /// Which kind of socket delivered it.
    pub carrier: Carrier,
}

impl Default for RecvMeta {
    fn default() -> Self {
        Self {
            src: SocketAddr::from(([0, 0, 0, 0], 0)),
            dst: IpAddr::from([0, 0, 0, 0]),
            carrier: Carrier::RawEsp,
        }
    }
}

/// The TUN side of the data plane.
pub trait TunDevice: Send + Sync {
    /// Waits up to `timeout` for packets, then reads as many as are ready into `bufs` (at
    /// headroom `headroom`); returns how many buffers were filled.
    fn recv_batch(
        &self,
        bufs: &mut [PacketBuf],
        headroom: usize,
        timeout: Duration,
    ) -> io::Result<usize>;

    /// Writes one IP packet into the kernel.
    fn send(&self, packet: &[u8]) -> io::Result<()>;
}

/// The network side, sending.
pub trait NetTx: Send + Sync {
    /// Sends `bufs[i].data()` to `dst` for every `(dst, i)` in `sends`, in order.
    fn send_batch(&self, bufs: &[PacketBuf], sends: &[(Destination, usize)]) -> io::Result<()>;
}

/// The network side, receiving (one per socket).
pub trait NetRx: Send + Sync {
    /// Waits up to `timeout`, then receives as many datagrams as are ready into `bufs` and
    /// `metas` (same index); returns how many.
    fn recv_batch(
        &self,
        bufs: &mut [PacketBuf],
        metas: &mut [RecvMeta],
        timeout: Duration,
    ) -> io::Result<usize>;
}

/// An installed outbound SA and where its packets go.
#[derive(Debug)]
pub struct OutboundEntry {
    /// The connection or manual-SA name (for status).
    pub name: String,
    /// The SA.
    pub sa: OutboundSa,
    /// Where sealed packets are sent.
    pub dst: Destination,
    /// Our outer address for this SA (for status; the socket chooses the source).
    pub local: IpAddr,
}

/// An installed inbound SA and the selectors its decrypted traffic must match.
#[derive(Debug)]
pub struct InboundEntry {
    /// The connection or manual-SA name (for status).
    pub name: String,
    /// The SA.
    pub sa: InboundSa,
    /// Traffic allowed through this SA (local = our side).
    pub selectors: SaSelectors,
}

/// One snapshot of the security policy and SA databases.
#[derive(Debug, Default)]
pub struct Tables {
    /// Outbound policies; `Protect(i)` is an index into `outbound`, `Trap(i)` into `traps`.
    pub spd: Spd<usize>,
    /// Outbound SAs.
    pub outbound: Vec<Arc<OutboundEntry>>,
    /// Inbound SAs by SPI.
    pub inbound: HashMap<u32, Arc<InboundEntry>>,
    /// Trap policies (on-demand SAs).
    pub traps: Vec<Arc<TrapEntry>>,
    /// Counts the snapshots [`Dataplane::install`] published (set by it; 0 before): traps
    /// compare it with their last release ([`trap::Hold::retry`]).
    pub generation: u64,
}

impl Tables {
    /// Adds an outbound SA protecting `selectors`; returns its index.
    pub fn add_outbound(&mut self, entry: Arc<OutboundEntry>, selectors: SaSelectors) -> usize {
        let index = self.outbound.len();
        self.outbound.push(entry);
        self.spd.insert(selectors, Action::Protect(index));
        index
    }

    /// Adds a trap policy for its selectors; returns its index. It loses to any SA policy of
    /// the same specificity ([`Spd`]).
    pub fn add_trap(&mut self, entry: Arc<TrapEntry>) -> usize {
        let index = self.traps.len();
        self.spd.insert(entry.selectors.clone(), Action::Trap(index));
        self.traps.push(entry);
        index
    }

    /// Adds an inbound SA. Returns the entry already holding the SPI, if any (it is replaced).
    pub fn add_inbound(&mut self, entry: Arc<InboundEntry>) -> Option<Arc<InboundEntry>> {
        self.inbound.insert(entry.sa.spi(), entry)
    }
}

/// Drops that belong to no SA (unknown SPI, malformed datagrams, no policy), plus traffic
/// the data plane hands elsewhere.
#[derive(Debug, Default)]
pub struct GlobalCounters {
    drops: [AtomicU64; DropReason::COUNT],
    nat_keepalives: AtomicU64,
    ike_datagrams: AtomicU64,
    io_errors: AtomicU64,
    link_local: AtomicU64,
}

impl GlobalCounters {
    /// Counts a drop.
    pub fn record_drop(&self, reason: DropReason) {
        if let Some(c) = self.drops.get(reason.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops counted for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// NAT-T keepalives received (RFC 3948 §2.3).
    pub fn nat_keepalives(&self) -> u64 {
        self.nat_keepalives.load(Ordering::Relaxed)
    }

    /// IKE datagrams received on the NAT-T port (non-ESP marker).
    pub fn ike_datagrams(&self) -> u64 {
        self.ike_datagrams.load(Ordering::Relaxed)
    }

    /// Link-scope packets the kernel sent into the TUN (IPv6 MLD and the like): they can never
    /// be tunnelled, so they are ignored without counting as a drop.
    pub fn link_local_ignored(&self) -> u64 {
        self.link_local.load(Ordering::Relaxed)
    }

    /// Socket or TUN errors seen by the workers.
    pub fn io_errors(&self) -> u64 {
        self.io_errors.load(Ordering::Relaxed)
    }
}

/// The data plane's shared state: the current tables and global counters.
#[derive(Default)]
pub struct Dataplane {
    tables: ArcSwap<Tables>,
    /// The generation of the last tables installed.
    generations: AtomicU64,
    counters: GlobalCounters,
    ike_sink: std::sync::OnceLock<IkeSink>,
    acquire_sink: std::sync::OnceLock<AcquireSink>,
    net_tx: std::sync::OnceLock<Arc<dyn NetTx>>,
}

/// Where IKE messages that arrive on the NAT-T port go: `(our address, sender, message)`.
pub type IkeSink = Box<dyn Fn(IpAddr, SocketAddr, &[u8]) + Send + Sync>;

/// Where acquires go: `(trap id, the trapped packet's flow)`; called from the outbound worker
/// at most once per pending acquire of a trap.
pub type AcquireSink = Box<dyn Fn(u64, &FlowKey) + Send + Sync>;

impl std::fmt::Debug for Dataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataplane")
            .field("tables", &self.tables)
            .field("counters", &self.counters)
            .field("ike_sink", &self.ike_sink.get().is_some())
            .field("acquire_sink", &self.acquire_sink.get().is_some())
            .field("net_tx", &self.net_tx.get().is_some())
            .finish()
    }
}

impl Dataplane {
    /// An empty data plane (no policies: every packet is dropped as `NoPolicy`).
    pub fn new() -> Self {
        Self::default()
    }

    /// The current tables snapshot.
    pub fn tables(&self) -> Arc<Tables> {
        self.tables.load_full()
    }

    /// Installs a new tables snapshot (SAs shared with the old one keep their state).
    pub fn install(&self, mut tables: Tables) {
        tables.generation = self.next_generation();
        self.tables.store(Arc::new(tables));
    }

    /// Installs `tables`, which hold the new SA of `trap`, and sends the trap's held packets
    /// through them first: they are sealed and sent before the tables are published, with the
    /// trap locked, so no packet sealed with the new SA overtakes them (see
    /// [`trap`](self::trap#order-on-release)). Returns how many held packets left.
    pub fn install_releasing(&self, mut tables: Tables, trap: &TrapEntry) -> usize {
        let generation = self.next_generation();
        tables.generation = generation;
        let tables = Arc::new(tables);
        trap.release_into(generation, |queue| {
            let sent = self.send_held(trap, &tables, queue);
            self.tables.store(tables.clone());
            sent
        })
    }

    fn next_generation(&self) -> u64 {
        self.generations.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Global counters.
    pub fn counters(&self) -> &GlobalCounters {
        &self.counters
    }

    /// Hands IKE messages received on the NAT-T port (after the non-ESP marker) to `sink`
    /// (the IKE thread). Set once; later calls are ignored.
    pub fn set_ike_sink(&self, sink: IkeSink) {
        let _ = self.ike_sink.set(sink);
    }

    /// Delivers an IKE message from the NAT-T port to the sink, if one is set.
    pub(crate) fn deliver_ike(&self, local: IpAddr, remote: SocketAddr, message: &[u8]) {
        if let Some(sink) = self.ike_sink.get() {
            sink(local, remote, message);
        }
    }

    /// Hands acquires (a packet hit a trap with no acquire pending) to `sink` (the IKE
    /// thread). Set once; later calls are ignored. Without a sink, trapped packets wait in
    /// their queue until it is released or fails.
    pub fn set_acquire_sink(&self, sink: AcquireSink) {
        let _ = self.acquire_sink.set(sink);
    }

    /// Signals an acquire for trap `id`, if a sink is set.
    pub(crate) fn acquire(&self, id: u64, flow: &FlowKey) {
        if let Some(sink) = self.acquire_sink.get() {
            sink(id, flow);
        }
    }

    /// The sending side [`release_trap`](Self::release_trap) uses (the daemon's sockets, the
    /// same the outbound worker sends on). Set once; later calls are ignored.
    pub fn set_net_tx(&self, net: Arc<dyn NetTx>) {
        let _ = self.net_tx.set(net);
    }

    /// The SA of `trap` is in the current tables: sends its held packets, oldest first,
    /// through them (as the outbound worker would) and empties its queue. Returns how many
    /// packets left. [`install_releasing`](Self::install_releasing) does this as it installs
    /// the SA, which keeps the held packets ahead of newer ones; this is for packets trapped
    /// after that.
    pub fn release_trap(&self, trap: &TrapEntry) -> usize {
        let tables = self.tables.load_full();
        trap.release_into(tables.generation, |queue| self.send_held(trap, &tables, queue))
    }

    /// Seals `queue`'s packets (the trap is locked) through `tables` and sends them. Packets
    /// that hit the trap again (the SA does not cover them: it was narrowed) stay in the
    /// queue for a later release, or are dropped when the trap fails or goes.
    fn send_held(&self, trap: &TrapEntry, tables: &Tables, queue: &mut HeldPackets) -> usize {
        if queue.is_empty() {
            return 0;
        }
        let mut bufs: Vec<PacketBuf> = queue
            .iter()
            .filter_map(|packet| {
                let mut buf = PacketBuf::new(BUF_SIZE, PacketBuf::DEFAULT_HEADROOM);
                buf.load(PacketBuf::DEFAULT_HEADROOM, packet).is_ok().then_some(buf)
            })
            .collect();
        queue.clear();
        let Some(net) = self.net_tx.get() else {
            for _ in &bufs {
                self.counters.record_drop(DropReason::TrapFailed);
            }
            return 0;
        };
        let mut sends = Vec::with_capacity(bufs.len());
        for (i, buf) in bufs.iter_mut().enumerate() {
            if let outbound::Fate::Send(dst) =
                outbound::route(self, tables, buf, Some((trap.id, &mut *queue)))
            {
                sends.push((dst, i));
            }
        }
        if sends.is_empty() {
            return 0;
        }
        if let Err(e) = net.send_batch(&bufs, &sends) {
            self.counters.io_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("sending the packets held by trap {}: {e}", trap.name());
            return 0;
        }
        sends.len()
    }

    /// The negotiation of `trap`'s SA failed: drops its held packets (counted as
    /// [`DropReason::TrapFailed`]) and lets traffic retry after
    /// [`trap::RETRY_DELAY`]. Returns how many were dropped.
    pub fn fail_trap(&self, trap: &TrapEntry, now: std::time::Instant) -> usize {
        let n = trap.fail(now);
        for _ in 0..n {
            self.counters.record_drop(DropReason::TrapFailed);
        }
        n
    }

    /// `trap` is removed: drops its held packets (counted as [`DropReason::TrapFailed`]).
    pub fn discard_trap(&self, trap: &TrapEntry) -> usize {
        let n = trap.discard();
        for _ in 0..n {
            self.counters.record_drop(DropReason::TrapFailed);
        }
        n
    }
}

/// A pool of packet buffers for one worker.
pub(crate) fn buffer_pool() -> Vec<PacketBuf> {
    (0..BATCH).map(|_| PacketBuf::new(BUF_SIZE, PacketBuf::DEFAULT_HEADROOM)).collect()
}

#[cfg(test)]
mod tests;
