//! Two IKEv2 endpoints on a virtual clock and a faulty virtual network (style.md example 2:
//! quinn's `Pair`, with smoltcp's fault-injector knobs).
//!
//! [`Pair::drive`] runs until nothing is in flight and no timer is due before a horizon:
//! it drains both endpoints' datagrams into the network, delivers the earliest datagram, or
//! jumps the clock to the next timer. Faults: drop by a predicate on the datagram's index
//! and contents, duplicate, reorder (random extra delay), all from a seeded generator, so a
//! failing run replays exactly.

use core::net::{IpAddr, SocketAddr};
use core::time::Duration;
use std::sync::Arc;
use std::time::Instant;

use ferroswan_proto::crypto::{CryptoProvider, SecretBytes};
use ferroswan_proto::esp::Mode;
use ferroswan_proto::ikev2::config::{
    ChildConfig, EndpointConfig, IkeConfig, LocalAuth, PskStore, RemoteAuth, Retransmit,
};
use ferroswan_proto::ikev2::identity::{IdMatcher, Identity};
use ferroswan_proto::ikev2::proposal::{Preference, ProposalSpec};
use ferroswan_proto::ikev2::session::{Event, Transmit};
use ferroswan_proto::ikev2::ts::TsSpec;
use ferroswan_proto::ikev2::{Endpoint, SessionId};

use crate::SeededRandom;

/// One PSK for every identity pair.
#[derive(Debug)]
pub struct StaticPsk(pub Vec<u8>);

impl PskStore for StaticPsk {
    fn psk(&self, _: &Identity, _: Option<&Identity>) -> Option<SecretBytes> {
        Some(SecretBytes::new(self.0.clone()))
    }
}

/// A PSK connection between `local` and `remote` with one tunnel child `net` covering
/// `local_ts` === `remote_ts`.
#[allow(clippy::too_many_arguments)]
pub fn psk_config(
    name: &str,
    local: IpAddr,
    remote: IpAddr,
    ike: Vec<ProposalSpec>,
    esp: Vec<ProposalSpec>,
    local_ts: &str,
    remote_ts: &str,
    psk: &[u8],
) -> IkeConfig {
    IkeConfig {
        name: name.to_owned(),
        local_addrs: vec![local],
        remote_addrs: vec![remote],
        proposals: ike,
        preference: Preference::Configured,
        local_id: None,
        remote_id: IdMatcher::Any,
        local_auth: LocalAuth::Psk,
        remote_auth: RemoteAuth::Psk,
        psks: Some(Arc::new(StaticPsk(psk.to_vec()))),
        children: vec![ChildConfig {
            name: "net".to_owned(),
            proposals: esp,
            local_ts: local_ts
                .split(',')
                .map(|s| TsSpec::parse(s).unwrap_or_else(|e| panic!("{s}: {e}")))
                .collect(),
            remote_ts: remote_ts
                .split(',')
                .map(|s| TsSpec::parse(s).unwrap_or_else(|e| panic!("{s}: {e}")))
                .collect(),
            mode: Mode::Tunnel,
            replay_window: 32,
        }],
        encap: false,
        send_certreq: true,
        retransmit: Retransmit::default(),
    }
}

/// The wall-clock time (seconds since the Unix epoch) the virtual clock starts at, for
/// certificate validity: 2027-01-15 08:00:00 UTC. Tests with certificates pick their own with
/// [`Pair::set_unix_time`].
pub const START_UNIX_TIME: u64 = 1_800_000_000;

/// Which endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The first endpoint.
    A,
    /// The second endpoint.
    B,
}

/// One simulated host.
#[derive(Debug)]
pub struct Peer {
    /// The IKE endpoint.
    pub endpoint: Endpoint,
    /// The host's address.
    pub addr: IpAddr,
    /// Every event, in order.
    pub events: Vec<(SessionId, Event)>,
}

impl Peer {
    /// The failures reported so far, as one line each.
    pub fn failures(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Failed(f) => Some(f.to_string()),
                _ => None,
            })
            .collect()
    }

    /// The CHILD_SAs reported up.
    pub fn children_up(&self) -> Vec<&ferroswan_proto::ikev2::session::ChildSaUp> {
        self.events.iter().filter_map(|(_, e)| e.child_up()).collect()
    }

    /// Whether an IKE SA was established.
    pub fn established(&self) -> bool {
        self.events.iter().any(|(_, e)| matches!(e, Event::Established(_)))
    }
}

/// A datagram in flight.
#[derive(Debug, Clone)]
struct InFlight {
    at: Instant,
    to: Side,
    transmit: Transmit,
    seq: u64,
}

/// Drop decision: `(index of the datagram on the wire, from, the datagram) -> drop?`.
pub type DropFn = Box<dyn FnMut(u64, Side, &Transmit) -> bool>;

/// Two endpoints and the network between them.
pub struct Pair {
    /// Virtual time.
    pub now: Instant,
    /// The first host.
    pub a: Peer,
    /// The second host.
    pub b: Peer,
    /// One-way latency.
    pub latency: Duration,
    /// Drop predicate.
    pub drop: Option<DropFn>,
    /// Probability (0..1) that a datagram is delivered twice.
    pub duplicate: f64,
    /// Maximum random extra delay (reordering when larger than the gap between datagrams).
    pub jitter: Duration,
    /// Every datagram put on the wire (before faults), for assertions.
    pub wire: Vec<(Side, Transmit)>,
    /// Datagrams dropped by the fault injector.
    pub dropped: u64,
    in_flight: Vec<InFlight>,
    rng: SeededRandom,
    seq: u64,
    start: Instant,
}

impl core::fmt::Debug for Pair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pair").field("a", &self.a).field("b", &self.b).finish_non_exhaustive()
    }
}

impl Pair {
    /// Two endpoints at `192.0.2.1` (A) and `192.0.2.2` (B) with these connections.
    pub fn new(provider: CryptoProvider, a: Vec<IkeConfig>, b: Vec<IkeConfig>) -> Self {
        Self::with_endpoint_config(
            provider,
            a,
            b,
            EndpointConfig::default(),
            EndpointConfig::default(),
        )
    }

    /// Like [`Pair::new`] with endpoint settings (cookie threshold, half-open timeout).
    pub fn with_endpoint_config(
        provider: CryptoProvider,
        a: Vec<IkeConfig>,
        b: Vec<IkeConfig>,
        ea: EndpointConfig,
        eb: EndpointConfig,
    ) -> Self {
        let now = Instant::now();
        let mk = |cfgs: Vec<IkeConfig>, mut e: EndpointConfig, addr: &str| {
            e.connections = cfgs.into_iter().map(Arc::new).collect();
            let mut endpoint = Endpoint::new(e, provider);
            endpoint.set_unix_time(now, START_UNIX_TIME);
            Peer {
                endpoint,
                addr: addr.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
                events: Vec::new(),
            }
        };
        Self {
            now,
            a: mk(a, ea, "192.0.2.1"),
            b: mk(b, eb, "192.0.2.2"),
            latency: Duration::from_millis(10),
            drop: None,
            duplicate: 0.0,
            jitter: Duration::ZERO,
            wire: Vec::new(),
            dropped: 0,
            in_flight: Vec::new(),
            rng: SeededRandom::new(7),
            seq: 0,
            start: now,
        }
    }

    /// Seconds of virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Sets both hosts' wall clock to `unix` (seconds since the Unix epoch) at the current
    /// virtual time; it then advances with the virtual clock. Certificate validity is checked
    /// against it.
    pub fn set_unix_time(&mut self, unix: u64) {
        let now = self.now;
        self.a.endpoint.set_unix_time(now, unix);
        self.b.endpoint.set_unix_time(now, unix);
    }

    /// The peer on `side`.
    pub fn peer(&mut self, side: Side) -> &mut Peer {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// `side` initiates connection `conn` with child `child` toward the other side on port 500.
    pub fn initiate(&mut self, side: Side, conn: &str, child: Option<&str>) -> SessionId {
        let (local, remote) = match side {
            Side::A => (self.a.addr, self.b.addr),
            Side::B => (self.b.addr, self.a.addr),
        };
        let now = self.now;
        let peer = self.peer(side);
        peer.endpoint
            .initiate(now, conn, child, SocketAddr::new(local, 500), SocketAddr::new(remote, 500))
            .unwrap_or_else(|e| panic!("initiate: {e}"))
    }

    fn collect(&mut self) {
        for side in [Side::A, Side::B] {
            while let Some(t) = self.peer(side).endpoint.poll_transmit() {
                let index = self.wire.len() as u64;
                self.wire.push((side, t.clone()));
                let to = if side == Side::A { Side::B } else { Side::A };
                let drop = self.drop.as_mut().is_some_and(|f| f(index, side, &t));
                if drop {
                    self.dropped += 1;
                    continue;
                }
                let copies = if self.rng.next_f64() < self.duplicate { 2 } else { 1 };
                for _ in 0..copies {
                    let extra = self.jitter.mul_f64(self.rng.next_f64());
                    self.seq += 1;
                    self.in_flight.push(InFlight {
                        at: self.now + self.latency + extra,
                        to,
                        transmit: t.clone(),
                        seq: self.seq,
                    });
                }
            }
            while let Some(e) = self.peer(side).endpoint.poll_event() {
                self.peer(side).events.push(e);
            }
        }
    }

    /// Runs the exchange for at most `horizon` of virtual time, or until nothing is left to
    /// do. Returns whether it went quiet before the horizon.
    pub fn drive_for(&mut self, horizon: Duration) -> bool {
        let end = self.now + horizon;
        loop {
            self.collect();
            let next_packet = self.in_flight.iter().map(|p| (p.at, p.seq)).min();
            let next_timer = [self.a.endpoint.poll_timeout(), self.b.endpoint.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let next = match (next_packet.map(|p| p.0), next_timer) {
                (Some(p), Some(t)) => p.min(t),
                (Some(p), None) => p,
                (None, Some(t)) => t,
                (None, None) => return true,
            };
            if next > end {
                self.now = end;
                return false;
            }
            self.now = self.now.max(next);
            if let Some((at, seq)) = next_packet
                && at <= self.now
            {
                let Some(pos) = self.in_flight.iter().position(|p| p.seq == seq) else {
                    continue;
                };
                let p = self.in_flight.remove(pos);
                let now = self.now;
                let peer = self.peer(p.to);
                // The receiver sees the datagram arrive on its `remote` from the sender's `local`.
                peer.endpoint.handle(now, p.transmit.remote, p.transmit.local, &p.transmit.payload);
                continue;
            }
            let now = self.now;
            self.a.endpoint.handle_timeout(now);
            self.b.endpoint.handle_timeout(now);
        }
    }

    /// [`Pair::drive_for`] with a 10-minute horizon: enough for a full retransmission schedule.
    pub fn drive(&mut self) -> bool {
        self.drive_for(Duration::from_secs(600))
    }

    /// Advances virtual time by `d` (datagrams in flight are delivered and timers fire on the
    /// way); the clock ends at `now + d` even when everything went quiet earlier.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        self.drive_for(d);
        self.now = self.now.max(end);
    }
}

impl SeededRandom {
    /// A uniform float in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
