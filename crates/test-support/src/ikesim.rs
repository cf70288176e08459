//! Two IKEv2 endpoints on a virtual clock and a faulty virtual network (style.md example 2:
//! quinn's `Pair`, with smoltcp's fault-injector knobs).
//!
//! [`Pair::drive`] runs until nothing is in flight and no timer is due before a horizon:
//! it drains both endpoints' datagrams into the network, delivers the earliest datagram, or
//! jumps the clock to the next timer. Faults: drop by a predicate on the datagram's index
//! and contents, duplicate, reorder (random extra delay), all from a seeded generator, so a
//! failing run replays exactly.
//!
//! Manual delivery ([`Pair::set_manual`]), for scenarios that need one message order exactly
//! (strongSwan's exchange tests): the endpoints' IKE datagrams are held in send order instead
//! of travelling; the test takes the next one addressed to a side ([`Pair::take`]) and
//! delivers it ([`Pair::deliver`]) now, later, after others, or never (a drop). ESP packets
//! and timers keep running with [`Pair::advance`].

use core::net::{IpAddr, SocketAddr};
use core::time::Duration;
use std::sync::Arc;
use std::time::Instant;

use ferroswan_proto::crypto::{CryptoProvider, SecretBytes};
use ferroswan_proto::esp::Mode;
use ferroswan_proto::ikev2::config::{
    ChildConfig, ChildLifetime, EndpointConfig, IkeConfig, IkeLifetime, LocalAuth, PskStore,
    RemoteAuth, Retransmit, UniquePolicy,
};
use ferroswan_proto::ikev2::identity::{IdMatcher, Identity};
use ferroswan_proto::ikev2::proposal::{Preference, ProposalSpec};
use ferroswan_proto::ikev2::session::{Event, Transmit};
use ferroswan_proto::ikev2::ts::TsSpec;
use ferroswan_proto::ikev2::{Endpoint, SessionId};
use ferroswan_proto::wire::ikev2::{ExchangeType, HeaderPacket};

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
            lifetime: ChildLifetime::default(),
            dpd_restart: false,
            close_restart: false,
        }],
        encap: false,
        send_certreq: true,
        retransmit: Retransmit::default(),
        lifetime: IkeLifetime::default(),
        keyingtries: 1,
        unique: UniquePolicy::No,
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
    /// The SAs installed from the events, as a data plane would hold them.
    pub sas: SimSas,
}

/// A host's data plane, reduced to what decides whether a packet gets through: which SPIs
/// it accepts (with their keys) and which SA it sends on (the newest activated one).
#[derive(Debug, Default)]
pub struct SimSas {
    /// Inbound SAs: SPI → KEYMAT.
    pub inbound: std::collections::BTreeMap<u32, Vec<u8>>,
    /// Outbound SAs in install order.
    pub outbound: Vec<SimOutbound>,
    /// The largest number of inbound SAs held at once.
    pub max_inbound: usize,
    installs: u64,
}

/// One outbound SA of [`SimSas`].
#[derive(Debug, Clone)]
pub struct SimOutbound {
    /// The SPI packets are sent to.
    pub spi: u32,
    /// The inbound SPI of the same CHILD_SA (its key in events).
    pub inbound_spi: u32,
    /// KEYMAT.
    pub keymat: Vec<u8>,
    /// Used for sending (false until the replaced SA is deleted, for a rekey's responder).
    pub active: bool,
    order: u64,
}

impl SimSas {
    fn apply(&mut self, event: &Event) {
        match event {
            Event::ChildSaUp(up) => {
                self.inbound.insert(up.inbound.spi, up.inbound.keymat.expose().to_vec());
                self.max_inbound = self.max_inbound.max(self.inbound.len());
                self.installs += 1;
                self.outbound.push(SimOutbound {
                    spi: up.outbound.spi,
                    inbound_spi: up.inbound.spi,
                    keymat: up.outbound.keymat.expose().to_vec(),
                    active: up.activate_outbound,
                    order: self.installs,
                });
            }
            Event::ChildSaActivated { inbound_spi, .. } => {
                for o in self.outbound.iter_mut().filter(|o| o.inbound_spi == *inbound_spi) {
                    o.active = true;
                }
            }
            Event::ChildSaDown { inbound_spi, .. } => {
                self.inbound.remove(inbound_spi);
                self.outbound.retain(|o| o.inbound_spi != *inbound_spi);
            }
            _ => {}
        }
    }

    /// The SA a packet would be sent on now.
    pub fn sending(&self) -> Option<&SimOutbound> {
        self.outbound.iter().filter(|o| o.active).max_by_key(|o| o.order)
    }
}

impl Side {
    /// The other endpoint.
    pub fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }
}

/// An IKE datagram held back by manual delivery ([`Pair::set_manual`]).
#[derive(Debug, Clone)]
pub struct Held {
    /// The sender.
    pub from: Side,
    /// The datagram.
    pub transmit: Transmit,
}

impl Held {
    /// The exchange type and whether it is a response, from the IKE header.
    pub fn kind(&self) -> Option<(ExchangeType, bool)> {
        let h = HeaderPacket::new_checked(&self.transmit.payload[..]).ok()?;
        Some((h.exchange_type(), h.flags().response()))
    }
}

/// What happened to the data packets of [`Pair::send_data`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Packets sent on an SA.
    pub sent: u64,
    /// Packets the receiver had an SA with the same keys for.
    pub delivered: u64,
    /// Packets not sent: the sender had no active outbound SA.
    pub no_sa: u64,
    /// Packets that arrived for an SPI the receiver did not have (any more).
    pub unknown_spi: u64,
    /// Packets whose SPI the receiver had with other keys.
    pub wrong_keys: u64,
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
    what: Datagram,
    seq: u64,
}

#[derive(Debug, Clone)]
enum Datagram {
    Ike(Transmit),
    /// An ESP packet: its SPI and the sender's KEYMAT.
    Esp(u32, Vec<u8>),
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
    /// The data packets' fate.
    pub traffic: Traffic,
    /// Print every event and lost packet (`FERROSWAN_SIM_TRACE=1`).
    pub trace: bool,
    in_flight: Vec<InFlight>,
    manual: bool,
    held: Vec<Held>,
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
                sas: SimSas::default(),
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
            traffic: Traffic::default(),
            trace: std::env::var_os("FERROSWAN_SIM_TRACE").is_some(),
            in_flight: Vec::new(),
            manual: false,
            held: Vec::new(),
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
                if self.manual {
                    self.held.push(Held { from: side, transmit: t });
                    continue;
                }
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
                        what: Datagram::Ike(t.clone()),
                        seq: self.seq,
                    });
                }
            }
            while let Some(e) = self.peer(side).endpoint.poll_event() {
                let t = self.now - self.start;
                let trace = self.trace;
                let peer = self.peer(side);
                if trace {
                    eprintln!("{t:?} {side:?} {:?}", e.1);
                }
                peer.sas.apply(&e.1);
                peer.events.push(e);
            }
        }
    }

    /// Runs the exchange for at most `horizon` of virtual time, or until nothing is left to
    /// do before it (the clock then stays at the last event). Returns whether it went quiet.
    pub fn drive_for(&mut self, horizon: Duration) -> bool {
        self.run_until(self.now + horizon, true)
    }

    /// Delivers datagrams and fires timers up to `end`. `settle`: stop early once nothing is
    /// in flight and no exchange is running or pending on either side (lifetime and liveness
    /// timers still armed do not count).
    fn run_until(&mut self, end: Instant, settle: bool) -> bool {
        loop {
            self.collect();
            if settle
                && self.in_flight.is_empty()
                && self.a.endpoint.is_settled()
                && self.b.endpoint.is_settled()
            {
                return true;
            }
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
                // Nothing before the horizon: quiet if no datagram is still on its way (SA
                // lifetimes keep timers armed far ahead; they do not count).
                return self.in_flight.is_empty();
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
                match p.what {
                    Datagram::Ike(t) => {
                        // The receiver sees the datagram arrive on its `remote` from the
                        // sender's `local`.
                        self.peer(p.to).endpoint.handle(now, t.remote, t.local, &t.payload);
                    }
                    Datagram::Esp(spi, keymat) => match self.peer(p.to).sas.inbound.get(&spi) {
                        Some(k) if *k == keymat => self.traffic.delivered += 1,
                        Some(_) => self.traffic.wrong_keys += 1,
                        None => {
                            if self.trace {
                                eprintln!(
                                    "lost: {:?} has no SA {spi:08x} at {:?}",
                                    p.to,
                                    now - self.start
                                );
                            }
                            self.traffic.unknown_spi += 1
                        }
                    },
                }
                continue;
            }
            let now = self.now;
            self.a.endpoint.handle_timeout(now);
            self.b.endpoint.handle_timeout(now);
        }
    }

    /// Manual delivery on (`true`): from now on IKE datagrams are held in send order until
    /// [`Pair::take`]n and [`Pair::deliver`]ed; the drop predicate, duplication and jitter do
    /// not apply to them. Off: the datagrams still held go on the wire, in order.
    pub fn set_manual(&mut self, on: bool) {
        self.collect();
        self.manual = on;
        if !on {
            for h in core::mem::take(&mut self.held) {
                let to = h.from.other();
                self.seq += 1;
                self.in_flight.push(InFlight {
                    at: self.now + self.latency,
                    to,
                    what: Datagram::Ike(h.transmit),
                    seq: self.seq,
                });
            }
        }
    }

    /// The held datagrams addressed to `to`, oldest first (manual delivery).
    pub fn held(&mut self, to: Side) -> Vec<&Held> {
        self.collect();
        self.held.iter().filter(|h| h.from != to).collect()
    }

    /// Takes the oldest held datagram addressed to `to` (manual delivery): deliver it now or
    /// later with [`Pair::deliver`], or drop it. Panics when none is held.
    pub fn take(&mut self, to: Side) -> Held {
        self.collect();
        let pos = self
            .held
            .iter()
            .position(|h| h.from != to)
            .unwrap_or_else(|| panic!("no IKE datagram held for {to:?}"));
        self.held.remove(pos)
    }

    /// Hands a datagram to its receiver now, and collects what that caused.
    pub fn deliver(&mut self, h: Held) {
        let now = self.now;
        let t = h.transmit;
        self.peer(h.from.other()).endpoint.handle(now, t.remote, t.local, &t.payload);
        self.collect();
    }

    /// [`Pair::take`] then [`Pair::deliver`]: the next datagram addressed to `to` arrives.
    pub fn deliver_next(&mut self, to: Side) {
        let h = self.take(to);
        self.deliver(h);
    }

    /// `from` sends one data packet on the SA it would use now (latency and jitter apply,
    /// not loss: the fault injector is for IKE).
    pub fn send_data(&mut self, from: Side) {
        self.collect();
        let to = if from == Side::A { Side::B } else { Side::A };
        let Some(out) = self.peer(from).sas.sending().cloned() else {
            self.traffic.no_sa += 1;
            return;
        };
        self.traffic.sent += 1;
        let extra = self.jitter.mul_f64(self.rng.next_f64());
        self.seq += 1;
        self.in_flight.push(InFlight {
            at: self.now + self.latency + extra,
            to,
            what: Datagram::Esp(out.spi, out.keymat),
            seq: self.seq,
        });
    }

    /// Runs for `duration` with both sides sending a data packet every `interval`.
    pub fn run_traffic(&mut self, duration: Duration, interval: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.send_data(Side::A);
            self.send_data(Side::B);
            self.advance(interval);
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
        self.run_until(end, false);
        self.now = self.now.max(end);
    }
}

impl SeededRandom {
    /// A uniform float in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
