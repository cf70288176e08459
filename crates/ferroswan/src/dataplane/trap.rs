//! Trap policies: on-demand tunnels (swanctl's `start_action = trap`, and `close_action` /
//! `dpd_action = trap`).
//!
//! A trap is an SPD entry ([`Action::Trap`](ferroswan_proto::policy::Action::Trap)) for a
//! child's configured selectors with no SA behind it. The first outbound packet that hits it
//! (the "interesting traffic") is copied into the trap's small bounded queue
//! ([`HeldPackets`]) and the control plane is told to negotiate the child (an *acquire*, as
//! the kernel's XFRM sends one to charon). While that negotiation runs, more packets join
//! the queue; once it is full they are dropped and counted as
//! [`DropReason::TrapQueueFull`](ferroswan_proto::esp::DropReason::TrapQueueFull). When the
//! CHILD_SA is installed, its policy beats the trap (same selectors, [`Spd`] order), and the
//! IKE thread sends the held packets through it, in order, before any packet sealed after it
//! ([`Dataplane::install_releasing`](super::Dataplane::install_releasing)). When the
//! negotiation fails,
//! the held packets are dropped
//! ([`DropReason::TrapFailed`](ferroswan_proto::esp::DropReason::TrapFailed)) and the trap
//! stays for later traffic.
//!
//! Acquires are rate-limited like the kernel's larval SA: one per trap while one is pending,
//! with a timeout ([`ACQUIRE_TIMEOUT`]) after which traffic may ask again, and a pause of
//! [`RETRY_DELAY`] after a failure so a peer that refuses at once is not asked for every
//! packet.
//!
//! Only trapped packets take the trap's lock and are copied (into storage allocated with the
//! trap); packets with an SA never touch any of this.
//!
//! # Order on release
//!
//! The held packets must leave before any packet the outbound worker seals with the new SA.
//! The IKE thread releases with the trap's lock held: it seals and sends the held packets
//! through the new tables, *then* publishes those tables, records their generation as the
//! trap's release ([`TrapEntry::release_into`]), and only then lets go of the lock. A worker
//! still on older tables that hits the trap meanwhile waits for the lock and is then told to
//! look the packet up again ([`Hold::retry`]): the fresh tables seal it behind the held ones.
//! Packets the worker seals with the new tables come after the publish, so after the held
//! ones. The fast path (`Protect`) takes no lock and reads no extra state for this.
//!
//! [`Spd`]: ferroswan_proto::policy::Spd

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ferroswan_proto::esp::Mode;
use ferroswan_proto::policy::SaSelectors;

/// Packets a trap holds at most while its SA is negotiated. Linux's XFRM queue holds up to 100
/// (`XFRM_MAX_QUEUE_LEN`); an on-demand tunnel needs the first few (a TCP SYN and its
/// retransmissions, a ping, a DNS query), and every byte here waits a whole IKE exchange.
pub const QUEUE_PACKETS: usize = 32;

/// Bytes a trap holds at most (the packets' total size).
pub const QUEUE_BYTES: usize = 64 * 1024;

/// How long an acquire counts as pending when the control plane does not answer it: after
/// this, the next trapped packet asks again.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// After a failed negotiation, the next trapped packet asks again after this long at the
/// earliest.
pub const RETRY_DELAY: Duration = Duration::from_secs(3);

/// A bounded FIFO of packets in storage allocated once: at most `max_packets` packets and
/// `max_bytes` bytes. Pushing never allocates.
#[derive(Debug)]
pub struct HeldPackets {
    data: Vec<u8>,
    lens: Vec<usize>,
    max_packets: usize,
    max_bytes: usize,
}

impl HeldPackets {
    /// An empty queue with room for `max_packets` packets of `max_bytes` bytes in total.
    pub fn new(max_packets: usize, max_bytes: usize) -> Self {
        Self {
            data: Vec::with_capacity(max_bytes),
            lens: Vec::with_capacity(max_packets),
            max_packets,
            max_bytes,
        }
    }

    /// Appends a copy of `packet`; `false` (and nothing changes) when it does not fit.
    pub fn push(&mut self, packet: &[u8]) -> bool {
        if self.lens.len() >= self.max_packets
            || self.data.len().saturating_add(packet.len()) > self.max_bytes
        {
            return false;
        }
        self.data.extend_from_slice(packet);
        self.lens.push(packet.len());
        true
    }

    /// The held packets, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.lens.iter().scan(0usize, |offset, &len| {
            let start = *offset;
            *offset += len;
            self.data.get(start..start + len)
        })
    }

    /// Number of held packets.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether no packet is held.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Forgets every packet (the storage is kept).
    pub fn clear(&mut self) {
        self.data.clear();
        self.lens.clear();
    }
}

/// What [`TrapEntry::hold`] did with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hold {
    /// The packet was queued (else the queue was full and it was dropped, or `retry`).
    pub queued: bool,
    /// The caller must signal an acquire now (none is pending).
    pub acquire: bool,
    /// Nothing was done: the trap was released into newer tables than the caller looked the
    /// packet up in; look it up again in the current tables (they hold the SA).
    pub retry: bool,
}

/// One trap policy: the child it brings up, its selectors, and its queue.
#[derive(Debug)]
pub struct TrapEntry {
    /// Stable id (acquires name the trap by it).
    pub id: u64,
    /// The connection.
    pub conn: String,
    /// The child config.
    pub child: String,
    /// The child's mode.
    pub mode: Mode,
    /// The configured selectors, `dynamic` resolved to the connection's addresses.
    pub selectors: SaSelectors,
    state: Mutex<TrapState>,
    acquires: AtomicU64,
    held: AtomicU64,
    sent: AtomicU64,
    queue_full: AtomicU64,
    failed: AtomicU64,
}

#[derive(Debug)]
struct TrapState {
    queue: HeldPackets,
    /// Trapped packets signal an acquire only from this time on (`None`: at once).
    next_acquire: Option<Instant>,
    /// The generation of the tables the queue was last released into (0: never).
    released: u64,
}

/// A trap's counters and queue, for status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapStats {
    /// Packets held now.
    pub queued: usize,
    /// Acquires signalled.
    pub acquires: u64,
    /// Packets ever queued.
    pub held: u64,
    /// Queued packets handed to the SA once it was up.
    pub sent: u64,
    /// Packets dropped because the queue was full.
    pub queue_full: u64,
    /// Queued packets dropped because the negotiation failed or the trap went away.
    pub failed: u64,
}

impl TrapEntry {
    /// A trap with an empty queue of the default size ([`QUEUE_PACKETS`], [`QUEUE_BYTES`]).
    pub fn new(id: u64, conn: &str, child: &str, mode: Mode, selectors: SaSelectors) -> Self {
        Self::with_limits(id, conn, child, mode, selectors, QUEUE_PACKETS, QUEUE_BYTES)
    }

    /// A trap whose queue holds `packets` packets of `bytes` bytes in total.
    pub fn with_limits(
        id: u64,
        conn: &str,
        child: &str,
        mode: Mode,
        selectors: SaSelectors,
        packets: usize,
        bytes: usize,
    ) -> Self {
        Self {
            id,
            conn: conn.to_owned(),
            child: child.to_owned(),
            mode,
            selectors,
            state: Mutex::new(TrapState {
                queue: HeldPackets::new(packets, bytes),
                next_acquire: None,
                released: 0,
            }),
            acquires: AtomicU64::new(0),
            held: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            queue_full: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// `conn/child`, as logs name it.
    pub fn name(&self) -> String {
        format!("{}/{}", self.conn, self.child)
    }

    /// Outbound worker: holds a copy of `packet` (if there is room) and says whether to signal
    /// an acquire (none pending, or the last one timed out). `generation` is that of the
    /// tables the packet was looked up in: older than the trap's last release, the packet is
    /// not held and the caller looks it up again ([`Hold::retry`]).
    pub fn hold(&self, packet: &[u8], now: Instant, generation: u64) -> Hold {
        let mut state = self.lock();
        if generation < state.released {
            return Hold { queued: false, acquire: false, retry: true };
        }
        let queued = state.queue.push(packet);
        let acquire = state.next_acquire.is_none_or(|at| now >= at);
        if acquire {
            state.next_acquire = Some(now + ACQUIRE_TIMEOUT);
        }
        drop(state);
        if queued {
            self.held.fetch_add(1, Ordering::Relaxed);
        } else {
            self.queue_full.fetch_add(1, Ordering::Relaxed);
        }
        if acquire {
            self.acquires.fetch_add(1, Ordering::Relaxed);
        }
        Hold { queued, acquire, retry: false }
    }

    /// The SA is up: with the trap locked (workers that hit it wait), `release` gets the
    /// queue, sends its packets and returns how many left (it may leave packets in the queue
    /// that the SA does not cover); then the trap records `generation` as released into, so
    /// packets trapped by older tables are looked up again ([`Hold::retry`]). The next trapped
    /// packet signals an acquire at once. Returns what `release` returned.
    pub fn release_into(
        &self,
        generation: u64,
        release: impl FnOnce(&mut HeldPackets) -> usize,
    ) -> usize {
        let mut state = self.lock();
        state.next_acquire = None;
        let n = release(&mut state.queue);
        state.released = state.released.max(generation);
        drop(state);
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// The negotiation failed at `now`: drops the held packets (returns how many) and lets
    /// traffic ask again after [`RETRY_DELAY`].
    pub fn fail(&self, now: Instant) -> usize {
        let mut state = self.lock();
        state.next_acquire = Some(now + RETRY_DELAY);
        let n = state.queue.len();
        state.queue.clear();
        drop(state);
        self.failed.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// The trap is removed: drops the held packets, returns how many.
    pub fn discard(&self) -> usize {
        let mut state = self.lock();
        let n = state.queue.len();
        state.queue.clear();
        drop(state);
        self.failed.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Counters and queue length.
    pub fn stats(&self) -> TrapStats {
        let queued = self.lock().queue.len();
        TrapStats {
            queued,
            acquires: self.acquires.load(Ordering::Relaxed),
            held: self.held.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            queue_full: self.queue_full.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TrapState> {
        // The state is a queue and a time: consistent after any panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn held_packets_keep_order_and_bounds() {
        let mut q = HeldPackets::new(3, 10);
        assert!(q.is_empty());
        assert!(q.push(b"abc"));
        assert!(q.push(b""));
        assert!(q.push(b"defg"));
        // Packet limit.
        assert!(!q.push(b"h"));
        assert_eq!(q.iter().collect::<Vec<_>>(), [&b"abc"[..], b"", b"defg"]);
        assert_eq!((q.len(), q.bytes()), (3, 7));
        q.clear();
        // Byte limit: 10 fit, the 11th does not.
        assert!(q.push(b"0123456"));
        assert!(!q.push(b"7890"));
        assert!(q.push(b"789"));
        assert_eq!(q.iter().collect::<Vec<_>>(), [&b"0123456"[..], b"789"]);
        // The storage was allocated once.
        let cap = q.data.capacity();
        q.clear();
        for _ in 0..3 {
            q.push(b"xyz");
        }
        assert_eq!(q.data.capacity(), cap);
    }

    #[test]
    fn a_trap_acquires_once_counts_overflow_and_releases_in_order() {
        let t0 = Instant::now();
        let trap =
            TrapEntry::with_limits(1, "gw", "net", Mode::Tunnel, SaSelectors::default(), 2, 100);
        let held = |queued, acquire| Hold { queued, acquire, retry: false };
        assert_eq!(trap.hold(b"one", t0, 1), held(true, true));
        // Pending: no second acquire.
        assert_eq!(trap.hold(b"two", t0 + Duration::from_secs(1), 1), held(true, false));
        // Full: dropped and counted.
        assert_eq!(trap.hold(b"three", t0 + Duration::from_secs(2), 1), held(false, false));
        let s = trap.stats();
        assert_eq!((s.queued, s.acquires, s.held, s.queue_full), (2, 1, 2, 1));
        // The acquire times out: the next packet asks again (and still does not fit).
        assert_eq!(trap.hold(b"four", t0 + ACQUIRE_TIMEOUT, 1), held(false, true));
        // The SA is up in the tables of generation 2: released oldest first, queue empty.
        let mut out = Vec::new();
        let sent = trap.release_into(2, |q| {
            out.extend(q.iter().map(<[u8]>::to_vec));
            let n = q.len();
            q.clear();
            n
        });
        assert_eq!(sent, 2);
        assert_eq!(out, [b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(trap.stats().queued, 0);
        // A packet looked up in older tables is sent back to look again, untouched.
        assert_eq!(trap.hold(b"late", t0, 1), Hold { queued: false, acquire: false, retry: true });
        assert_eq!(trap.stats().queued, 0);
        // In the new tables (the SA does not cover it, or is gone): held, acquires at once.
        assert_eq!(trap.hold(b"five", t0, 2), held(true, true));
        // Failure: held packets dropped, no acquire until RETRY_DELAY passed.
        let t1 = t0 + Duration::from_secs(100);
        assert_eq!(trap.fail(t1), 1);
        assert_eq!(trap.hold(b"six", t1 + Duration::from_secs(1), 2), held(true, false));
        assert_eq!(trap.hold(b"seven", t1 + RETRY_DELAY, 3), held(true, true));
        assert_eq!(trap.discard(), 2);
        let s = trap.stats();
        assert_eq!(
            (s.queued, s.acquires, s.held, s.sent, s.queue_full, s.failed),
            (0, 4, 5, 2, 2, 3)
        );
    }
}
