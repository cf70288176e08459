//! The IKE thread: drives the sans-IO [`Endpoint`] with real sockets and time, and turns its
//! events into data-plane state (SAs, policies, routes).
//!
//! ```text
//! UDP 500 reader thread ──┐
//! inbound worker (4500, non-ESP marker) ──┼──► channel ──► IKE thread ──► Endpoint
//! VICI commands (initiate, terminate) ────┤                   │
//! outbound worker (trap hit: acquire) ────┘                   │
//!                                       transmits ◄───────────┤ (UDP 500 / 4500 sockets)
//!                       Dataplane::install / routes ◄─────────┘ events (ChildSaUp/Down)
//! ```
//!
//! Everything the endpoint reports is logged in one line; failures are kept per connection
//! for `ferroswan status`.
//!
//! # Trap policies
//!
//! Children with `start_action = trap` get a trap policy ([`crate::dataplane::trap`]) for their
//! configured selectors (`dynamic` resolved to the connection's addresses) and routes for
//! their remote selectors, from the start and whenever the connection table changes; children
//! with `close_action = trap` (`dpd_action = trap`) get one once the peer closes (DPD declares
//! the peer dead), as charon installs it then. An acquire from the data plane initiates the
//! child: a CREATE_CHILD_SA when an IKE SA of the connection is up; queued on the IKE SA when
//! one of ours is being set up (as charon's trap manager checks out the connecting IKE SA),
//! so two children trapped at once share one IKE SA; else a new IKE SA. The triggering
//! packet's selectors (addresses, protocol, ports, as charon takes them from the kernel's
//! acquire) are proposed first in TSi/TSr (RFC 7296 §2.9,
//! [`TriggerFlow`]), before the configured ones, so a responder
//! that must narrow keeps the part that carries the packet; one that need not installs the
//! configured ranges. The held packets go out through the CHILD_SA once it is installed
//! (before any packet sealed after it: [`Dataplane::install_releasing`]), or are dropped when
//! the negotiation fails; the trap stays either way, and catches traffic again when the SA is
//! gone.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ferroswan_proto::crypto::CryptoProvider;
use ferroswan_proto::esp::{InboundSa, OutboundSa, PacketBuf};
use ferroswan_proto::ikev2::config::IkeConfig;
use ferroswan_proto::ikev2::session::{
    ChildSaUp, ChildState, CloseReason, DownReason, Event, IkeRekeyCollision, IkeSaInfo, Role,
    SupersedeCause, Transmit,
};
use ferroswan_proto::ikev2::ts::TriggerFlow;
use ferroswan_proto::ikev2::{Endpoint, SessionId};
use ferroswan_proto::policy::SaSelectors;
use ferroswan_proto::wire::FlowKey;

use crate::config::connection::Connection;
use crate::dataplane::trap::ACQUIRE_TIMEOUT;
use crate::dataplane::{Dataplane, Destination, InboundEntry, OutboundEntry, Tables, TrapEntry};
use crate::manual::cidrs;
use crate::sys::netlink::{POLICY_TABLE, Route, RouteGuard};
use crate::sys::socket::{Batch, RecvMeta, UdpSocket};

/// What the IKE thread is told.
#[derive(Debug)]
pub enum Input {
    /// An IKE message (non-ESP marker removed) that arrived on `local` from `remote`.
    Datagram {
        /// Our address and port.
        local: SocketAddr,
        /// The sender.
        remote: SocketAddr,
        /// The message.
        bytes: Vec<u8>,
    },
    /// A control command.
    Command(Command),
    /// A packet hit trap `trap` and no acquire of it is pending: bring its child up.
    Acquire {
        /// The trap's id ([`TrapEntry::id`]).
        trap: u64,
        /// The packet that hit it.
        flow: FlowKey,
    },
}

/// Which actions of one child use a trap policy (swanctl's `start_action`, `close_action`,
/// `dpd_action` = `trap`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrapActions {
    /// The connection.
    pub conn: String,
    /// The child.
    pub child: String,
    /// `start_action = trap`: a trap from the start.
    pub start: bool,
    /// `close_action = trap`: a trap once the peer closes the child or its IKE SA.
    pub close: bool,
    /// `dpd_action = trap`: a trap once the peer is found dead.
    pub dpd: bool,
}

impl TrapActions {
    /// The children of `conn` with any trap action.
    pub fn of(conn: &Connection) -> Vec<Self> {
        conn.children
            .iter()
            .filter(|c| c.start_action.trap || c.close_action.trap || c.dpd_action.trap)
            .map(|c| Self {
                conn: conn.name.clone(),
                child: c.name.clone(),
                start: c.start_action.trap,
                close: c.close_action.trap,
                dpd: c.dpd_action.trap,
            })
            .collect()
    }
}

/// Control commands (VICI `initiate`/`terminate`, `ferroswan up/down`).
#[derive(Debug)]
pub enum Command {
    /// Bring up a connection's child (or the connection's first child).
    Initiate {
        /// Connection name; `None`: the first connection with `child`.
        conn: Option<String>,
        /// Child name.
        child: Option<String>,
        /// Answer: once the CHILD_SA is up or failed, a line for the user.
        reply: Sender<Result<String, String>>,
    },
    /// Delete the SAs `target` names: its CHILD_SAs when it names a child (`child`,
    /// `child-id`), else its IKE SAs (with every CHILD_SA).
    Terminate {
        /// Which SAs.
        target: Target,
        /// Answer.
        reply: Sender<Result<String, String>>,
    },
    /// Rekey the SAs `target` names: its CHILD_SAs when it names a child, else its IKE SAs.
    Rekey {
        /// Which SAs.
        target: Target,
        /// Reauthenticate IKE SAs (a new IKE SA from scratch) instead of rekeying them.
        reauth: bool,
        /// Answer: how many SAs the rekey was started for.
        reply: Sender<Result<String, String>>,
    },
    /// Install a trap policy for a child (VICI `install`, swanctl `--install`).
    InstallTrap {
        /// Connection name; `None`: the first connection with `child`.
        conn: Option<String>,
        /// Child name.
        child: String,
        /// Answer.
        reply: Sender<Result<String, String>>,
    },
    /// Remove a child's trap policy (VICI `uninstall`, swanctl `--uninstall`).
    UninstallTrap {
        /// Connection name; `None`: any.
        conn: Option<String>,
        /// Child name.
        child: String,
        /// Answer.
        reply: Sender<Result<String, String>>,
    },
    /// Replace the connection table (VICI `load-conn`/`unload-conn`): new IKE SAs, initiated
    /// or answered, use these; established ones keep the config they were made with.
    SetConnections {
        /// Every connection, file and VICI ones.
        connections: Vec<Arc<IkeConfig>>,
        /// The children of those connections with trap actions.
        traps: Vec<TrapActions>,
        /// Answer, once the table is in place.
        reply: Sender<Result<String, String>>,
    },
}

/// Which SAs a `terminate` or `rekey` is about: VICI's `ike`, `ike-id`, `child` and
/// `child-id` keys, each narrowing the selection (charon's meaning).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// Connection name.
    pub ike: Option<String>,
    /// IKE SA unique id (as `list-sas` shows it).
    pub ike_id: Option<u32>,
    /// Child config name.
    pub child: Option<String>,
    /// CHILD_SA unique id.
    pub child_id: Option<u32>,
}

impl Target {
    /// Every SA of connection `conn`.
    pub fn conn(conn: &str) -> Self {
        Self { ike: Some(conn.to_owned()), ..Self::default() }
    }

    /// Whether it selects CHILD_SAs (not whole IKE SAs).
    pub fn is_child(&self) -> bool {
        self.child.is_some() || self.child_id.is_some()
    }

    /// Whether nothing narrows it (charon refuses such a request).
    pub fn is_empty(&self) -> bool {
        self.ike.is_none() && self.ike_id.is_none() && !self.is_child()
    }

    fn matches_ike(&self, sa: &IkeStatus) -> bool {
        self.ike.as_ref().is_none_or(|n| *n == sa.info.name)
            && self.ike_id.is_none_or(|id| id == sa.unique_id)
    }

    fn matches_child(&self, c: &ChildStatus) -> bool {
        self.child.as_ref().is_none_or(|n| *n == c.name)
            && self.child_id.is_none_or(|id| id == c.unique_id)
    }

    /// The selection in words, for replies and logs.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = &self.ike {
            parts.push(format!("connection '{n}'"));
        }
        if let Some(id) = self.ike_id {
            parts.push(format!("IKE SA #{id}"));
        }
        if let Some(n) = &self.child {
            parts.push(format!("child '{n}'"));
        }
        if let Some(id) = self.child_id {
            parts.push(format!("CHILD_SA #{id}"));
        }
        if parts.is_empty() { "nothing".to_owned() } else { parts.join(", ") }
    }
}

/// A CHILD_SA as shown by status.
#[derive(Clone, Debug)]
pub struct ChildStatus {
    /// The child config name.
    pub name: String,
    /// The negotiated facts.
    pub up: ferroswan_proto::ikev2::session::ChildSa,
    /// When it was installed.
    pub installed: Instant,
    /// UDP encapsulation.
    pub encap: bool,
    /// charon-style unique id (a counter over all CHILD_SAs of the daemon).
    pub unique_id: u32,
    /// The reqid: kept across rekeys of the same CHILD_SA.
    pub reqid: u32,
}

/// An IKE SA as shown by status.
#[derive(Clone, Debug)]
pub struct IkeStatus {
    /// Facts from the endpoint.
    pub info: IkeSaInfo,
    /// When it was established.
    pub established: Instant,
    /// charon-style unique id.
    pub unique_id: u32,
    /// When it will be rekeyed (kept current from the session).
    pub rekey_at: Option<Instant>,
    /// When it will be reauthenticated (kept current from the session).
    pub reauth_at: Option<Instant>,
    /// Its CHILD_SAs.
    pub children: Vec<ChildStatus>,
}

impl IkeStatus {
    /// An IKE SA established now, with `children` (moved from its predecessor on a rekey).
    fn new(info: IkeSaInfo, unique_id: u32, children: Vec<ChildStatus>) -> Self {
        let established = Instant::now();
        Self { info, established, unique_id, rekey_at: None, reauth_at: None, children }
    }
}

/// What the status command shows about IKE.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// Established IKE SAs by session.
    pub sas: BTreeMap<u64, IkeStatus>,
    /// Last failure per connection, with when it happened.
    pub last_failure: BTreeMap<String, (std::time::SystemTime, String)>,
    /// Last notable event per connection (stale SAs cleared by INITIAL_CONTACT, an SA
    /// replaced by `unique`, a restart scheduled), with when it happened.
    pub notices: BTreeMap<String, (std::time::SystemTime, String)>,
    /// Restarts waiting per connection: when, and which try of how many (0: no limit).
    pub restarts: BTreeMap<String, (std::time::SystemTime, u32, u32)>,
}

/// The handle the rest of the daemon keeps.
#[derive(Clone, Debug)]
pub struct IkeHandle {
    /// Sends input to the IKE thread.
    pub tx: Sender<Input>,
    /// The status snapshot.
    pub status: Arc<Mutex<Status>>,
}

impl IkeHandle {
    /// Sends the command `make` builds around a reply channel to the IKE thread and waits up
    /// to `timeout` for its answer (`late`: the error then).
    pub fn request(
        &self,
        timeout: Duration,
        late: &str,
        make: impl FnOnce(Sender<Result<String, String>>) -> Command,
    ) -> Result<String, String> {
        let (reply, rx) = mpsc::channel();
        if self.tx.send(Input::Command(make(reply))).is_err() {
            return Err("IKE thread is not running".into());
        }
        rx.recv_timeout(timeout).unwrap_or_else(|_| Err(late.to_owned()))
    }
}

struct Installed {
    session: SessionId,
    outbound: Arc<OutboundEntry>,
    inbound: Arc<InboundEntry>,
    selectors: SaSelectors,
    routes: Vec<Route>,
    /// Install order: the newest active SA of a policy carries the outbound traffic.
    order: u64,
    /// Sends outbound traffic (false for a rekey responder's new SA until the old one goes).
    active: bool,
    reqid: u32,
    /// Soft byte and packet limits (start a rekey), checked against both directions.
    soft_bytes: Option<u64>,
    soft_packets: Option<u64>,
    rekey_asked: bool,
    /// Inbound packets at the last traffic check (dead peer detection).
    seen_packets: u64,
}

/// Where [`Driver::acquire`] sends a trap's child.
enum AcquireTarget {
    /// An established IKE SA of the connection: CREATE_CHILD_SA on it.
    Established(SessionId),
    /// An IKE SA of ours still being set up: the child is queued on it.
    Connecting(SessionId),
    /// The child is already being negotiated on this IKE SA.
    Pending(SessionId),
    /// None: a new IKE SA.
    None,
}

/// An installed trap policy.
struct Trap {
    entry: Arc<TrapEntry>,
    routes: Vec<Route>,
    /// When the acquire being worked on arrived (`None`: none).
    acquiring: Option<Instant>,
}

/// The IKE thread's state.
pub struct Driver {
    endpoint: Endpoint,
    provider: CryptoProvider,
    dp: Arc<Dataplane>,
    base_tables: Vec<(Arc<OutboundEntry>, SaSelectors, Arc<InboundEntry>)>,
    sock500: Vec<Arc<UdpSocket>>,
    sock4500: Vec<Arc<UdpSocket>>,
    batch: Batch,
    children: BTreeMap<u32, Installed>,
    routes: RouteGuard,
    route_refs: HashMap<(IpAddr, u8), usize>,
    tun_ifindex: u32,
    status: Arc<Mutex<Status>>,
    waiting: Vec<(String, Sender<Result<String, String>>)>,
    /// Counters for unique ids and reqids (charon numbers from 1).
    next_unique: u32,
    next_reqid: u32,
    installs: u64,
    last_traffic_check: Instant,
    /// Trap actions of every child that has one.
    trap_actions: Vec<TrapActions>,
    /// Children whose `close_action`/`dpd_action = trap` fired: their traps are in place.
    armed: std::collections::BTreeSet<(String, String)>,
    /// Installed traps by (connection, child).
    traps: BTreeMap<(String, String), Trap>,
    next_trap_id: u64,
    /// Traps installed by VICI `install` (swanctl `--install`).
    manual_traps: std::collections::BTreeSet<(String, String)>,
    /// Traps removed by VICI `uninstall` until the connections are loaded again.
    uninstalled: std::collections::BTreeSet<(String, String)>,
}

impl Driver {
    /// A driver over these sockets (one per family each for 500 and 4500).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        endpoint: Endpoint,
        provider: CryptoProvider,
        dp: Arc<Dataplane>,
        sock500: Vec<Arc<UdpSocket>>,
        sock4500: Vec<Arc<UdpSocket>>,
        tun_ifindex: u32,
        status: Arc<Mutex<Status>>,
    ) -> std::io::Result<Self> {
        let tables = dp.tables();
        let base_tables = tables
            .outbound
            .iter()
            .filter_map(|o| {
                let inb = tables.inbound.values().find(|i| i.name == o.name)?;
                Some((o.clone(), inb.selectors.clone(), inb.clone()))
            })
            .collect();
        Ok(Self {
            endpoint,
            provider,
            dp,
            base_tables,
            sock500,
            sock4500,
            batch: Batch::new(),
            children: BTreeMap::new(),
            routes: RouteGuard::new()?,
            route_refs: HashMap::new(),
            tun_ifindex,
            status,
            waiting: Vec::new(),
            next_unique: 0,
            next_reqid: 0,
            installs: 0,
            last_traffic_check: Instant::now(),
            trap_actions: Vec::new(),
            armed: std::collections::BTreeSet::new(),
            traps: BTreeMap::new(),
            next_trap_id: 0,
            manual_traps: std::collections::BTreeSet::new(),
            uninstalled: std::collections::BTreeSet::new(),
        })
    }

    /// Sets the children with trap actions and installs the traps they need now.
    pub fn set_trap_actions(&mut self, actions: Vec<TrapActions>) {
        // A trap armed by close/dpd_action stays while the child still asks for it.
        self.armed.retain(|(conn, child)| {
            actions.iter().any(|a| &a.conn == conn && &a.child == child && (a.close || a.dpd))
        });
        self.trap_actions = actions;
        let conns: Vec<String> =
            self.endpoint.connections().iter().map(|c| c.name.clone()).collect();
        self.manual_traps.retain(|(conn, _)| conns.contains(conn));
        self.uninstalled.clear();
        self.sync_traps();
    }

    /// The first connection that has a child named `child` (charon's lookup when a command
    /// names only the child).
    fn conn_with_child(&self, child: &str) -> Option<String> {
        self.endpoint
            .connections()
            .iter()
            .find(|c| c.child(child).is_some())
            .map(|c| c.name.clone())
    }

    /// VICI `install`: a trap policy for `child` (of `conn`, or the first connection that has
    /// it), as swanctl `--install` asks charon for one.
    fn install_trap(&mut self, conn: Option<String>, child: &str) -> Result<String, String> {
        let conn = conn
            .or_else(|| self.conn_with_child(child))
            .ok_or_else(|| format!("configuration name not found: {child}"))?;
        self.trap_selectors(&conn, child)?;
        let key = (conn, child.to_owned());
        self.uninstalled.remove(&key);
        self.manual_traps.insert(key.clone());
        self.sync_traps();
        if self.traps.contains_key(&key) {
            Ok(format!("trap policy {}/{} installed", key.0, key.1))
        } else {
            Err(format!("installing policy '{child}' failed"))
        }
    }

    /// VICI `uninstall`: removes the trap policy of `child` (of `conn`, or any connection).
    fn uninstall_trap(&mut self, conn: Option<&str>, child: &str) -> Result<String, String> {
        let keys: Vec<(String, String)> = self
            .traps
            .keys()
            .filter(|(c, ch)| ch == child && conn.is_none_or(|conn| conn == c))
            .cloned()
            .collect();
        if keys.is_empty() {
            return Err(format!("policy '{child}' does not exist"));
        }
        for key in keys {
            self.manual_traps.remove(&key);
            self.armed.remove(&key);
            self.uninstalled.insert(key);
        }
        self.sync_traps();
        Ok(format!("trap policy '{child}' uninstalled"))
    }

    /// The endpoint (for initiating at startup).
    pub fn endpoint_mut(&mut self) -> &mut Endpoint {
        &mut self.endpoint
    }

    /// Runs until `stop`; then deletes every IKE SA (waiting briefly for answers).
    pub fn run(mut self, rx: &Receiver<Input>, stop: &AtomicBool) {
        self.flush();
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let wait = self
                .endpoint
                .poll_timeout()
                .map_or(Duration::from_millis(200), |t| t.saturating_duration_since(now))
                .min(Duration::from_millis(200));
            match rx.recv_timeout(wait) {
                Ok(input) => self.handle_input(input),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.endpoint.handle_timeout(Instant::now());
            self.check_traffic();
            self.flush();
        }
        // Graceful stop: DELETE every IKE SA, give the peers a moment to answer.
        let ids: Vec<SessionId> = self.endpoint.sessions().map(|(id, _)| id).collect();
        let now = Instant::now();
        for id in ids {
            if let Some(s) = self.endpoint.session_mut(id) {
                s.close(now);
            }
        }
        self.flush();
        let deadline = Instant::now() + Duration::from_millis(1500);
        while self.endpoint.sessions().next().is_some() && Instant::now() < deadline {
            if let Ok(input) = rx.recv_timeout(Duration::from_millis(50)) {
                self.handle_input(input);
            }
            self.flush();
        }
        for (_, installed) in std::mem::take(&mut self.children) {
            for r in installed.routes {
                let _ = self.routes.remove(&r);
            }
        }
        for (_, trap) in std::mem::take(&mut self.traps) {
            for r in trap.routes {
                let _ = self.routes.remove(&r);
            }
        }
    }

    fn handle_input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Datagram { local, remote, bytes } => {
                self.endpoint.handle(now, local, remote, &bytes)
            }
            Input::Command(Command::Initiate { conn, child, reply }) => {
                let conn = conn.or_else(|| self.conn_with_child(child.as_deref()?));
                let Some(conn) = conn else {
                    let _ = reply
                        .send(Err("no connection with that child (give --ike or --child)".into()));
                    return;
                };
                match self.initiate(&conn, child.as_deref()) {
                    Ok(_) => self.waiting.push((conn, reply)),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Input::Command(Command::Terminate { target, reply }) => {
                let _ = reply.send(self.terminate(now, &target));
            }
            Input::Command(Command::Rekey { target, reauth, reply }) => {
                let _ = reply.send(self.rekey(now, &target, reauth));
            }
            Input::Command(Command::SetConnections { connections, traps, reply }) => {
                let count = connections.len();
                self.endpoint.set_connections(connections);
                self.set_trap_actions(traps);
                let _ = reply.send(Ok(format!("{count} connection(s) loaded")));
            }
            Input::Command(Command::InstallTrap { conn, child, reply }) => {
                let _ = reply.send(self.install_trap(conn, &child));
            }
            Input::Command(Command::UninstallTrap { conn, child, reply }) => {
                let _ = reply.send(self.uninstall_trap(conn.as_deref(), &child));
            }
            Input::Acquire { trap, flow } => self.acquire(trap, &flow),
        }
    }

    /// Installs the traps the children's actions ask for now, removes the others (and those
    /// whose selectors changed with their connection), and routes their remote selectors into
    /// the TUN.
    fn sync_traps(&mut self) {
        let mut keys: std::collections::BTreeSet<(String, String)> = self
            .trap_actions
            .iter()
            .filter(|a| a.start)
            .map(|a| (a.conn.clone(), a.child.clone()))
            .collect();
        keys.extend(self.armed.iter().cloned());
        keys.extend(self.manual_traps.iter().cloned());
        let mut wanted = BTreeMap::new();
        for key in keys {
            if self.uninstalled.contains(&key) {
                continue;
            }
            match self.trap_selectors(&key.0, &key.1) {
                Ok(found) => {
                    wanted.insert(key, found);
                }
                Err(e) => tracing::warn!("trap policy for {}/{}: {e}", key.0, key.1),
            }
        }
        let mut changed = false;
        let keys: Vec<_> = self.traps.keys().cloned().collect();
        for key in keys {
            let keep = self.traps.get(&key).is_some_and(|t| {
                wanted.get(&key).is_some_and(|(sel, mode, _)| {
                    *sel == t.entry.selectors && *mode == t.entry.mode
                })
            });
            if keep {
                wanted.remove(&key);
            } else if let Some(trap) = self.traps.remove(&key) {
                let dropped = self.dp.discard_trap(&trap.entry);
                tracing::info!(
                    "trap policy {} removed{}",
                    trap.entry.name(),
                    if dropped > 0 {
                        format!(", {dropped} held packet(s) dropped")
                    } else {
                        String::new()
                    }
                );
                self.remove_routes(&trap.routes);
                changed = true;
            }
        }
        for ((conn, child), (selectors, mode, local)) in wanted {
            self.next_trap_id += 1;
            let entry = Arc::new(TrapEntry::new(self.next_trap_id, &conn, &child, mode, selectors));
            let routes = self.routes_for(&entry.selectors.remote, mode, local);
            self.add_routes(&routes);
            tracing::info!(
                "trap policy {} installed: {} === {}",
                entry.name(),
                ferroswan_proto::ikev2::ts::List(&entry.selectors.local),
                ferroswan_proto::ikev2::ts::List(&entry.selectors.remote)
            );
            self.traps.insert((conn, child), Trap { entry, routes, acquiring: None });
            changed = true;
        }
        if changed {
            self.rebuild_tables();
        }
    }

    /// A trap's selectors: the child's configured ones, `dynamic` resolved to the addresses
    /// the connection would be initiated between; with its mode and our address.
    fn trap_selectors(
        &self,
        conn: &str,
        child: &str,
    ) -> Result<(SaSelectors, ferroswan_proto::esp::Mode, SocketAddr), String> {
        let config = self
            .endpoint
            .connections()
            .iter()
            .find(|c| c.name == conn)
            .ok_or_else(|| format!("no connection named '{conn}'"))?;
        let child = config.child(child).ok_or_else(|| format!("no child named '{child}'"))?;
        let (local, remote) = initiation_addrs(config)?;
        let selectors = SaSelectors::new(
            ferroswan_proto::ikev2::ts::resolve(&child.local_ts, local),
            ferroswan_proto::ikev2::ts::resolve(&child.remote_ts, remote),
        );
        Ok((selectors, child.mode, SocketAddr::new(local, 500)))
    }

    /// A packet hit a trap: bring its child up, unless that is under way.
    fn acquire(&mut self, id: u64, flow: &FlowKey) {
        let now = Instant::now();
        let Some((key, trap)) = self.traps.iter_mut().find(|(_, t)| t.entry.id == id) else {
            return;
        };
        if trap.acquiring.is_some_and(|at| now.saturating_duration_since(at) < ACQUIRE_TIMEOUT) {
            return;
        }
        let (conn, child) = key.clone();
        let entry = trap.entry.clone();
        let name = entry.name();
        // The SA may have come up after the packet was trapped.
        if self.children.values().any(|i| i.active && i.outbound.name == name) {
            trap.acquiring = None;
            self.dp.release_trap(&entry);
            return;
        }
        trap.acquiring = Some(now);
        tracing::info!(
            "acquire: {:?} {} -> {} (ports {} -> {}) hit trap policy {name}",
            flow.protocol,
            flow.src,
            flow.dst,
            flow.src_port,
            flow.dst_port
        );
        let trigger = TriggerFlow::from_flow(flow);
        match self.acquire_target(&conn, &child) {
            AcquireTarget::Established(sid) => {
                tracing::info!("creating CHILD_SA {name} on IKE SA [{sid}]");
                if let Some(s) = self.endpoint.session_mut(sid) {
                    s.create_child_triggered(now, &child, Some(trigger));
                }
            }
            AcquireTarget::Pending(sid) => {
                tracing::info!("CHILD_SA {name} is already being negotiated on IKE SA [{sid}]");
            }
            AcquireTarget::Connecting(sid) => {
                // As charon's trap manager: the child waits for the IKE SA being set up
                // rather than starting a second one.
                tracing::info!(
                    "IKE SA [{sid}] of {conn} is being established: CHILD_SA {name} is queued on it"
                );
                if let Some(s) = self.endpoint.session_mut(sid) {
                    s.create_child_triggered(now, &child, Some(trigger));
                }
            }
            AcquireTarget::None => {
                if let Err(e) = self.initiate_triggered(&conn, Some(&child), Some(trigger)) {
                    tracing::warn!("trap policy {name}: {e}");
                    self.record_failure(&name, &e);
                    if let Some(trap) = self.traps.get_mut(&(conn, child)) {
                        trap.acquiring = None;
                    }
                    self.dp.fail_trap(&entry, now);
                }
            }
        }
    }

    /// Where an acquire for `conn/child` goes: an established IKE SA of the connection, one of
    /// ours being set up (IKE_SA_INIT or IKE_AUTH in flight), or a new one. `Pending`: the
    /// child is already being negotiated on that IKE SA.
    fn acquire_target(&self, conn: &str, child: &str) -> AcquireTarget {
        let live =
            || self.endpoint.sessions().filter(|(_, s)| s.config().name == conn && !s.is_closed());
        if let Some((sid, _)) = live().find(|(_, s)| s.pending_children().contains(&child)) {
            return AcquireTarget::Pending(sid);
        }
        if let Some((sid, _)) = live().find(|(_, s)| s.info().is_some()) {
            return AcquireTarget::Established(sid);
        }
        live()
            .find(|(_, s)| {
                s.role() == Role::Initiator && s.info().is_none() && !s.was_established()
            })
            .map_or(AcquireTarget::None, |(sid, _)| AcquireTarget::Connecting(sid))
    }

    /// The negotiation for traps of `what` (`conn` or `conn/child`) failed: drop the packets
    /// they hold; the traps stay.
    fn fail_traps(&mut self, what: &str) {
        let now = Instant::now();
        let (conn, child) = match what.split_once('/') {
            Some((conn, child)) => (conn, Some(child)),
            None => (what, None),
        };
        for ((c, ch), trap) in &mut self.traps {
            if c != conn || child.is_some_and(|child| child != ch) || trap.acquiring.is_none() {
                continue;
            }
            trap.acquiring = None;
            let dropped = self.dp.fail_trap(&trap.entry, now);
            tracing::info!(
                "trap policy {}: negotiation failed, {dropped} held packet(s) dropped; the trap stays",
                trap.entry.name()
            );
        }
    }

    /// `close_action`/`dpd_action = trap` of the children of `conn` (all, or only `child`)
    /// fire: `peer_closed` for a peer's delete, else a dead peer.
    fn arm_traps(&mut self, conn: &str, child: Option<&str>, peer_closed: bool) {
        let mut changed = false;
        for a in &self.trap_actions {
            if a.conn != conn || child.is_some_and(|c| c != a.child) {
                continue;
            }
            if (peer_closed && a.close) || (!peer_closed && a.dpd) {
                tracing::info!(
                    "{}_action = trap: installing trap policy for {}/{}",
                    if peer_closed { "close" } else { "dpd" },
                    a.conn,
                    a.child
                );
                changed |= self.armed.insert((a.conn.clone(), a.child.clone()));
            }
        }
        if changed {
            self.sync_traps();
        }
    }

    /// The established IKE SAs (and, for a child target, their current CHILD_SAs by inbound
    /// SPI) that `target` selects, from the status the driver keeps.
    fn select(&self, target: &Target) -> Vec<(SessionId, Vec<u32>)> {
        let st = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        st.sas
            .iter()
            .filter(|(_, sa)| target.matches_ike(sa))
            .map(|(id, sa)| {
                let children = sa
                    .children
                    .iter()
                    // A replaced SA lingering until its DELETE settles is not selectable.
                    .filter(|c| matches!(c.up.state, ChildState::Installed | ChildState::Rekeying))
                    .filter(|c| target.matches_child(c))
                    .map(|c| c.up.inbound_spi)
                    .collect();
                (SessionId(*id), children)
            })
            .collect()
    }

    /// `terminate`: DELETE the CHILD_SAs or IKE SAs `target` names. The user wants them
    /// down, so no `dpd_action`/`close_action` restart or `keyingtries` retry follows.
    fn terminate(&mut self, now: Instant, target: &Target) -> Result<String, String> {
        if target.is_empty() {
            return Err("terminate needs ike, ike-id, child or child-id".into());
        }
        if target.is_child() {
            let mut count = 0;
            for (id, spis) in self.select(target) {
                if let Some(s) = self.endpoint.session_mut(id) {
                    for spi in spis {
                        s.delete_child(now, spi);
                        count += 1;
                    }
                }
            }
            return if count == 0 {
                Err(format!("no CHILD_SA matches {}", target.describe()))
            } else {
                Ok(format!("deleting {count} CHILD_SA(s) of {}", target.describe()))
            };
        }
        let mut ids: Vec<SessionId> = self.select(target).into_iter().map(|(id, _)| id).collect();
        if let Some(conn) = &target.ike {
            self.cancel_restarts(conn);
            if target.ike_id.is_none() {
                // Half-open IKE SAs of the connection go too (not in the status yet).
                ids.extend(
                    self.endpoint
                        .sessions()
                        .filter(|(_, s)| s.config().name == *conn)
                        .map(|(id, _)| id),
                );
            }
        }
        ids.sort_unstable_by_key(|id| id.0);
        ids.dedup();
        if ids.is_empty() {
            return Err(format!("no IKE SA matches {}", target.describe()));
        }
        for id in &ids {
            let Some(s) = self.endpoint.session_mut(*id) else { continue };
            s.close(now);
            let conn = s.config().name.clone();
            self.cancel_restarts(&conn);
        }
        Ok(format!("closing {} IKE SA(s) of {}", ids.len(), target.describe()))
    }

    /// The user wants the connection down: no `dpd_action`/`close_action` restart or
    /// `keyingtries` retry follows, and status stops announcing one.
    fn cancel_restarts(&mut self, conn: &str) {
        self.endpoint.cancel_restarts(conn);
        self.status.lock().unwrap_or_else(PoisonError::into_inner).restarts.remove(conn);
    }

    /// `rekey`: start a rekey of the CHILD_SAs or IKE SAs `target` names (the exchange
    /// runs in the background, as charon's).
    fn rekey(&mut self, now: Instant, target: &Target, reauth: bool) -> Result<String, String> {
        if target.is_empty() {
            return Err("rekey needs ike, ike-id, child or child-id".into());
        }
        if reauth && target.is_child() {
            return Err(
                "reauth applies to IKE SAs: name the connection or IKE SA, not a child".into()
            );
        }
        let selected = self.select(target);
        let mut count = 0;
        for (id, spis) in selected {
            if reauth {
                // Make-before-break: a new IKE SA from scratch, then the old one goes.
                if self.endpoint.reauthenticate(now, id).is_ok() {
                    count += 1;
                }
                continue;
            }
            let Some(s) = self.endpoint.session_mut(id) else { continue };
            if target.is_child() {
                for spi in spis {
                    s.rekey_child(now, spi);
                    count += 1;
                }
            } else {
                s.rekey_ike(now);
                count += 1;
            }
        }
        let (verb, what) = match (target.is_child(), reauth) {
            (true, _) => ("rekeying", "CHILD_SA"),
            (false, false) => ("rekeying", "IKE SA"),
            (false, true) => ("reauthenticating", "IKE SA"),
        };
        if count == 0 {
            return Err(format!("no {what} matches {}", target.describe()));
        }
        let line = format!("{verb} {count} {what}(s) of {}", target.describe());
        tracing::info!("{line} (requested)");
        Ok(line)
    }

    /// Starts a connection toward its configured remote address.
    pub fn initiate(&mut self, conn: &str, child: Option<&str>) -> Result<SessionId, String> {
        self.initiate_triggered(conn, child, None)
    }

    /// [`Driver::initiate`] for the packet that hit a trap (`trigger`: proposed first in the
    /// child's TSi/TSr).
    fn initiate_triggered(
        &mut self,
        conn: &str,
        child: Option<&str>,
        trigger: Option<TriggerFlow>,
    ) -> Result<SessionId, String> {
        let config = self
            .endpoint
            .connections()
            .iter()
            .find(|c| c.name == conn)
            .cloned()
            .ok_or_else(|| format!("no connection named '{conn}'"))?;
        let (local_ip, remote_ip) = initiation_addrs(&config)?;
        let child =
            child.map(str::to_owned).or_else(|| config.children.first().map(|c| c.name.clone()));
        tracing::info!(
            "initiating {conn} ({local_ip} → {remote_ip}){}",
            child.as_deref().map_or(String::new(), |c| format!(", child {c}"))
        );
        self.endpoint
            .initiate_triggered(
                Instant::now(),
                conn,
                child.as_deref(),
                trigger,
                SocketAddr::new(local_ip, 500),
                SocketAddr::new(remote_ip, 500),
            )
            .map_err(|e| e.to_string())
    }

    /// Sends what the endpoint wants sent and applies its events.
    pub fn flush(&mut self) {
        while let Some(t) = self.endpoint.poll_transmit() {
            self.send(&t);
        }
        while let Some((id, event)) = self.endpoint.poll_event() {
            self.apply(id, event);
        }
        // Events may have queued more datagrams (DELETE answers, errors).
        while let Some(t) = self.endpoint.poll_transmit() {
            self.send(&t);
        }
        self.sync_status();
    }

    /// Copies the sessions' live facts (IKE rekey and reauth times; CHILD_SA state, rekey and
    /// expiry times) into the status, so `list-sas` shows REKEYING/REKEYED/DELETING as they
    /// happen.
    fn sync_status(&self) {
        let mut st = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        for (id, sa) in &mut st.sas {
            let Some(session) = self.endpoint.session(SessionId(*id)) else { continue };
            sa.rekey_at = session.ike_rekey_due().0;
            sa.reauth_at = session.reauth_due();
            for c in &mut sa.children {
                if let Some(live) =
                    session.children().iter().find(|l| l.inbound_spi == c.up.inbound_spi)
                    && (live.state != c.up.state
                        || live.rekey_at != c.up.rekey_at
                        || live.expire_at != c.up.expire_at)
                {
                    c.up = live.clone();
                }
            }
        }
    }

    fn send(&mut self, t: &Transmit) {
        let (socks, payload) = if t.non_esp_marker {
            let mut p = Vec::with_capacity(t.payload.len() + 4);
            p.extend_from_slice(&[0, 0, 0, 0]);
            p.extend_from_slice(&t.payload);
            (&self.sock4500, p)
        } else {
            (&self.sock500, t.payload.clone())
        };
        let Some(sock) = socks.iter().find(|s| s.local_addr().is_ipv6() == t.remote.is_ipv6())
        else {
            tracing::warn!("no socket to send IKE to {}", t.remote);
            return;
        };
        let src = (!t.local.ip().is_unspecified()).then_some(t.local.ip());
        let outcome = sock.send_batch_from(&mut self.batch, src, [(t.remote, payload.as_slice())]);
        if let Some(e) = outcome.first_error {
            tracing::warn!("sending IKE to {}: {e}", t.remote);
        }
    }

    fn record_failure(&self, what: &str, message: &str) {
        let conn = what.split('/').next().unwrap_or(what).to_owned();
        let mut st = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        st.last_failure.insert(conn, (std::time::SystemTime::now(), format!("{what}: {message}")));
    }

    fn answer_waiting(&mut self, conn: &str, result: Result<String, String>) {
        let mut i = 0;
        while i < self.waiting.len() {
            if self.waiting.get(i).is_some_and(|(c, _)| c == conn) {
                let (_, reply) = self.waiting.swap_remove(i);
                let _ = reply.send(result.clone());
            } else {
                i += 1;
            }
        }
    }

    fn apply(&mut self, id: SessionId, event: Event) {
        match event {
            Event::Established(info) => {
                tracing::info!(
                    "IKE SA {}[{id}] established between {}[{}]...{}[{}] with {}{}",
                    info.name,
                    info.local,
                    info.local_id,
                    info.remote,
                    info.remote_id,
                    super::suite_text(&info.suite),
                    if info.nat_local || info.nat_remote {
                        " (NAT-T, UDP encapsulation)"
                    } else {
                        ""
                    }
                );
                let unique_id = self.unique_id();
                let mut st = self.status.lock().unwrap_or_else(PoisonError::into_inner);
                st.restarts.remove(&info.name);
                st.sas.insert(id.0, IkeStatus::new(info, unique_id, Vec::new()));
            }
            Event::IkeSaRekeyed(info) => {
                let new = SessionId(info.local_spi());
                tracing::info!(
                    "IKE SA {}[{id}] rekeyed: new IKE SA [{new}] with {}, CHILD_SAs moved",
                    info.name,
                    super::suite_text(&info.suite)
                );
                for installed in self.children.values_mut().filter(|i| i.session == id) {
                    installed.session = new;
                }
                let unique_id = self.unique_id();
                let mut st = self.status.lock().unwrap_or_else(PoisonError::into_inner);
                let children = st.sas.remove(&id.0).map(|s| s.children).unwrap_or_default();
                st.sas.insert(new.0, IkeStatus::new(info, unique_id, children));
            }
            Event::ChildSaUp(up) => self.install(id, *up),
            Event::ChildSaActivated { child, inbound_spi } => {
                if let Some(installed) = self.children.get_mut(&inbound_spi) {
                    installed.active = true;
                    tracing::info!(
                        "CHILD_SA {child} SPIs {inbound_spi:08x}_i {:08x}_o now carries outbound traffic",
                        installed.outbound.sa.spi()
                    );
                }
                self.rebuild_tables();
            }
            Event::ChildSaDown { child, inbound_spi, outbound_spi, reason } => {
                tracing::info!(
                    "CHILD_SA {child} SPIs {inbound_spi:08x}_i {outbound_spi:08x}_o deleted ({reason:?})"
                );
                if let Some(installed) = self.children.remove(&inbound_spi) {
                    self.remove_routes(&installed.routes);
                }
                self.rebuild_tables();
                {
                    let mut st = self.status.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(sa) = st.sas.get_mut(&id.0) {
                        sa.children.retain(|c| c.up.inbound_spi != inbound_spi);
                    }
                }
                if reason == DownReason::PeerDelete
                    && let Some(conn) = self.endpoint.session(id).map(|s| s.config().name.clone())
                {
                    self.arm_traps(&conn, Some(&child), true);
                }
            }
            Event::Failed(f) => {
                tracing::warn!("{f}");
                self.record_failure(&f.what, &f.message);
                let conn = f.what.split('/').next().unwrap_or(&f.what).to_owned();
                self.answer_waiting(&conn, Err(f.to_string()));
                self.fail_traps(&f.what);
            }
            Event::Superseded { by, cause } => self.superseded(id, SessionId(by), cause),
            Event::IkeRekeyCollision(step) => {
                let name =
                    self.endpoint.session(id).map(|s| s.config().name.clone()).unwrap_or_default();
                let what = match step {
                    IkeRekeyCollision::Detected => {
                        "detected IKE rekey collision: answered the peer's IKE rekey while ours \
                         is outstanding"
                    }
                    IkeRekeyCollision::Won => {
                        "IKE rekey collision won: our new IKE SA carries on, the peer deletes \
                         its redundant one"
                    }
                    IkeRekeyCollision::Lost => {
                        "IKE rekey collision lost: deleting our redundant new IKE SA, the \
                         peer's carries on"
                    }
                    IkeRekeyCollision::PeerDidNotNotice => {
                        "peer did not notice the IKE rekey collision: its new IKE SA carries on"
                    }
                    _ => "IKE rekey collision",
                };
                tracing::info!("IKE SA {name}[{id}] {what}");
            }
            Event::RestartScheduled {
                conn,
                children,
                delay,
                attempt,
                keyingtries,
                retransmit_cap,
            } => {
                let of = if keyingtries == 0 {
                    " (keyingtries = 0: no limit)".to_owned()
                } else {
                    format!(" of {keyingtries} (keyingtries)")
                };
                let line = format!(
                    "restarting {conn} in {:.1} s: try {attempt}{of}, child {}, IKE_SA_INIT \
                     retransmitted at least every {} s",
                    delay.as_secs_f64(),
                    children.join(", "),
                    retransmit_cap.as_secs()
                );
                tracing::info!("{line}");
                let when = std::time::SystemTime::now() + delay;
                let mut st = self.status.lock().unwrap_or_else(PoisonError::into_inner);
                st.restarts.insert(conn.clone(), (when, attempt, keyingtries));
                st.notices.insert(conn, (std::time::SystemTime::now(), line));
            }
            Event::Closed(reason) => {
                let session = self
                    .endpoint
                    .session(id)
                    .map(|s| (s.config().name.clone(), s.was_established()));
                if let Some((conn, established)) = session {
                    // A try ended: a restart still due is announced again right after this.
                    self.status
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .restarts
                        .remove(&conn);
                    if established {
                        match reason {
                            CloseReason::PeerDelete => self.arm_traps(&conn, None, true),
                            CloseReason::Timeout => self.arm_traps(&conn, None, false),
                            _ => {}
                        }
                    }
                }
                let name = self
                    .status
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .sas
                    .remove(&id.0)
                    .map(|s| s.info.name);
                if let Some(name) = name {
                    tracing::info!("IKE SA {name}[{id}] closed ({reason:?})");
                }
            }
            _ => {}
        }
    }

    /// An IKE SA gives way to a newer one between the same identities: says why, in plain words.
    fn superseded(&mut self, old: SessionId, by: SessionId, cause: SupersedeCause) {
        let mut st = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(sa) = st.sas.get(&old.0) else { return };
        let (name, remote, remote_id) =
            (sa.info.name.clone(), sa.info.remote, sa.info.remote_id.to_string());
        let children = sa.children.len();
        let line = match cause {
            SupersedeCause::InitialContact => format!(
                "IKE SA {name}[{old}] with {remote_id} at {remote} is stale: the peer restarted \
                 (INITIAL_CONTACT in the IKE_AUTH of the new IKE SA [{by}]); dropping it and its \
                 {children} CHILD_SA(s) without sending DELETE"
            ),
            SupersedeCause::Replace { delay } if delay.is_zero() => format!(
                "IKE SA {name}[{old}] with {remote_id} at {remote} is replaced by IKE SA [{by}] \
                 (unique = replace): deleting it"
            ),
            SupersedeCause::Replace { delay } => format!(
                "IKE SA {name}[{old}] with {remote_id} at {remote} is replaced by IKE SA [{by}] \
                 from the same address (unique = replace; a reauthentication?): deleting it in \
                 {} s unless the peer does",
                delay.as_secs()
            ),
            _ => format!("IKE SA {name}[{old}] is replaced by IKE SA [{by}]"),
        };
        tracing::info!("{line}");
        st.notices.insert(name, (std::time::SystemTime::now(), line));
    }

    fn install(&mut self, id: SessionId, up: ChildSaUp) {
        let name = format!("{}/{}", up.ike, up.child.name);
        let result = (|| -> Result<(), String> {
            let outbound =
                OutboundSa::new(&up.outbound, &self.provider).map_err(|e| e.to_string())?;
            let inbound = InboundSa::new(&up.inbound, &self.provider).map_err(|e| e.to_string())?;
            let dst = if up.encap {
                let sock = self
                    .sock4500
                    .iter()
                    .find(|s| s.local_addr().is_ipv6() == up.remote.is_ipv6())
                    .ok_or("no UDP 4500 socket for this address family")?;
                Destination::Udp { local: sock.local_addr(), remote: up.remote }
            } else {
                Destination::Raw(up.remote.ip())
            };
            let selectors = SaSelectors::new(up.child.local_ts.clone(), up.child.remote_ts.clone());
            let routes = self.routes_for(&up.child.remote_ts, up.child.mode, up.local);
            self.add_routes(&routes);
            let reqid = up
                .replaces
                .and_then(|old| self.children.get(&old))
                .map(|old| old.reqid)
                .unwrap_or_else(|| {
                    self.next_reqid += 1;
                    self.next_reqid
                });
            self.installs += 1;
            self.children.insert(
                up.inbound.spi,
                Installed {
                    session: id,
                    order: self.installs,
                    active: up.activate_outbound,
                    reqid,
                    soft_bytes: up.inbound.lifetime.soft_bytes,
                    soft_packets: up.inbound.lifetime.soft_packets,
                    rekey_asked: false,
                    seen_packets: 0,
                    outbound: Arc::new(OutboundEntry {
                        name: name.clone(),
                        sa: outbound,
                        dst,
                        local: up.local.ip(),
                    }),
                    inbound: Arc::new(InboundEntry {
                        name: name.clone(),
                        sa: inbound,
                        selectors: selectors.clone(),
                    }),
                    selectors,
                    routes,
                },
            );
            Ok(())
        })();
        match result {
            Ok(()) => {
                // The child's trap, if it holds packets: they leave through the new SA before
                // any packet the outbound worker seals with it.
                let key = (up.ike.clone(), up.child.name.clone());
                let trap = self.traps.get(&key).map(|t| t.entry.clone());
                let sent = match &trap {
                    Some(entry) if up.activate_outbound => {
                        self.dp.install_releasing(self.build_tables(), entry)
                    }
                    _ => {
                        self.rebuild_tables();
                        0
                    }
                };
                tracing::info!(
                    "CHILD_SA {name} established with SPIs {:08x}_i {:08x}_o and TS {} === {}{}",
                    up.inbound.spi,
                    up.outbound.spi,
                    ferroswan_proto::ikev2::ts::List(&up.child.local_ts),
                    ferroswan_proto::ikev2::ts::List(&up.child.remote_ts),
                    if up.encap { " (ESP in UDP)" } else { "" }
                );
                {
                    let unique_id = self.unique_id();
                    let reqid = self.children.get(&up.inbound.spi).map_or(0, |i| i.reqid);
                    let mut st = self.status.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(sa) = st.sas.get_mut(&id.0) {
                        sa.children.push(ChildStatus {
                            name: up.child.name.clone(),
                            up: up.child.clone(),
                            installed: Instant::now(),
                            encap: up.encap,
                            unique_id,
                            reqid,
                        });
                    }
                }
                let conn = up.ike.clone();
                self.answer_waiting(&conn, Ok(format!("CHILD_SA {name} established")));
                if let Some(trap) = self.traps.get_mut(&key) {
                    let waited = trap.acquiring.take().map(|at| at.elapsed());
                    if let Some(waited) = waited {
                        tracing::info!(
                            "trap policy {name}: CHILD_SA up {} ms after the acquire, {sent} held packet(s) sent",
                            waited.as_millis()
                        );
                    }
                }
            }
            Err(e) => {
                tracing::error!("CHILD_SA {name}: could not install: {e}");
                self.record_failure(&name, &format!("could not install: {e}"));
            }
        }
    }

    /// Routes into the TUN for `remote_ts` (with our address as source in transport mode).
    fn routes_for(
        &self,
        remote_ts: &[ferroswan_proto::policy::TrafficSelector],
        mode: ferroswan_proto::esp::Mode,
        local: SocketAddr,
    ) -> Vec<Route> {
        let mut routes = Vec::new();
        for ts in remote_ts {
            for r in cidrs(ts) {
                let src = (mode == ferroswan_proto::esp::Mode::Transport
                    && r.addr.is_ipv4() == local.is_ipv4())
                .then_some(local.ip());
                routes.push(Route {
                    dst: r.addr,
                    prefix_len: r.prefix_len,
                    ifindex: self.tun_ifindex,
                    src,
                    table: POLICY_TABLE,
                });
            }
        }
        routes
    }

    /// Adds `routes`, counting references (SAs and traps share routes).
    fn add_routes(&mut self, routes: &[Route]) {
        for r in routes {
            let count = self.route_refs.entry((r.dst, r.prefix_len)).or_insert(0);
            if *count == 0
                && let Err(e) = self.routes.add(*r)
            {
                tracing::warn!("route {r}: {e}");
            }
            *count += 1;
        }
    }

    fn remove_routes(&mut self, routes: &[Route]) {
        for r in routes {
            if let Some(count) = self.route_refs.get_mut(&(r.dst, r.prefix_len)) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.route_refs.remove(&(r.dst, r.prefix_len));
                    if let Err(e) = self.routes.remove(r) {
                        tracing::debug!("remove route {r}: {e}");
                    }
                }
            }
        }
    }

    fn rebuild_tables(&self) {
        self.dp.install(self.build_tables());
    }

    /// The tables for the SAs and traps the driver holds now.
    fn build_tables(&self) -> Tables {
        let mut tables = Tables::default();
        for (out, sel, inb) in &self.base_tables {
            tables.add_outbound(out.clone(), sel.clone());
            tables.add_inbound(inb.clone());
        }
        // Among SAs for the same selectors the first added wins: newest active first.
        let mut outbound: Vec<&Installed> = self.children.values().filter(|i| i.active).collect();
        outbound.sort_by_key(|i| std::cmp::Reverse(i.order));
        for installed in outbound {
            tables.add_outbound(installed.outbound.clone(), installed.selectors.clone());
        }
        for installed in self.children.values() {
            tables.add_inbound(installed.inbound.clone());
        }
        // Traps last: an SA with the same selectors wins anyway (Spd order), this only keeps
        // the listing order stable.
        for trap in self.traps.values() {
            tables.add_trap(trap.entry.clone());
        }
        tables
    }

    fn unique_id(&mut self) -> u32 {
        self.next_unique = self.next_unique.wrapping_add(1).max(1);
        self.next_unique
    }

    /// Once a second: tells sessions whose SAs received packets (dead peer detection counts
    /// only silence), and starts rekeys for SAs past their soft byte or packet limit.
    fn check_traffic(&mut self) {
        let now = Instant::now();
        if now.saturating_duration_since(self.last_traffic_check) < Duration::from_secs(1) {
            return;
        }
        self.last_traffic_check = now;
        let mut heard = Vec::new();
        let mut rekey = Vec::new();
        for (spi, i) in &mut self.children {
            let (inb, outb) = (i.inbound.sa.counters(), i.outbound.sa.counters());
            let packets = inb.packets();
            if packets != i.seen_packets {
                i.seen_packets = packets;
                heard.push(i.session);
            }
            if i.rekey_asked {
                continue;
            }
            let reason = rekey_reason(
                (i.soft_bytes, i.soft_packets),
                (inb.bytes(), packets),
                (outb.bytes(), outb.packets()),
                i.outbound.sa.seq_nearly_exhausted(),
            );
            if let Some(why) = reason {
                i.rekey_asked = true;
                rekey.push((i.session, *spi, why));
            }
        }
        heard.sort_unstable_by_key(|s| s.0);
        heard.dedup();
        for id in heard {
            if let Some(s) = self.endpoint.session_mut(id) {
                s.traffic_received(now);
            }
        }
        for (id, spi, why) in rekey {
            tracing::info!("CHILD_SA SPI {spi:08x} {why}: rekeying");
            if let Some(s) = self.endpoint.session_mut(id) {
                s.rekey_child(now, spi);
            }
        }
    }
}

/// Why a CHILD_SA needs a rekey now, if it does: a soft byte or packet limit (`(bytes,
/// packets)`, `None` = off) reached in either direction, or the outbound sequence numbers
/// close to their end (RFC 4303 §3.3.3: they must never cycle).
fn rekey_reason(
    soft: (Option<u64>, Option<u64>),
    inbound: (u64, u64),
    outbound: (u64, u64),
    seq_nearly_exhausted: bool,
) -> Option<&'static str> {
    if seq_nearly_exhausted {
        return Some("is close to the end of its sequence numbers");
    }
    let over = |limit: Option<u64>, a: u64, b: u64| limit.is_some_and(|l| a >= l || b >= l);
    (over(soft.0, inbound.0, outbound.0) || over(soft.1, inbound.1, outbound.1))
        .then_some("reached its soft byte/packet limit")
}

/// The addresses connection `config` is initiated between: its first remote address, and its
/// first local one or the source the kernel would use toward the remote.
fn initiation_addrs(config: &IkeConfig) -> Result<(IpAddr, IpAddr), String> {
    let remote = *config.remote_addrs.first().ok_or_else(|| {
        format!(
            "connection '{}' has no single remote address to initiate to (remote_addrs)",
            config.name
        )
    })?;
    let local = match config.local_addrs.first() {
        Some(ip) => *ip,
        None => source_for(remote).map_err(|e| format!("no route to {remote}: {e}"))?,
    };
    Ok((local, remote))
}

/// The source address the kernel would use toward `remote`.
fn source_for(remote: IpAddr) -> std::io::Result<IpAddr> {
    let bind: SocketAddr = if remote.is_ipv6() { "[::]:0".parse() } else { "0.0.0.0:0".parse() }
        .map_err(|_| std::io::Error::other("address"))?;
    let s = std::net::UdpSocket::bind(bind)?;
    s.connect(SocketAddr::new(remote, 500))?;
    Ok(s.local_addr()?.ip())
}

/// Reads IKE datagrams from a port-500 socket and forwards them to the IKE thread.
pub fn read_port_500(sock: &UdpSocket, tx: &Sender<Input>, stop: &AtomicBool) {
    let mut batch = Batch::new();
    let mut bufs: Vec<PacketBuf> = (0..8).map(|_| PacketBuf::new(65536, 0)).collect();
    let mut metas = vec![RecvMeta::<SocketAddr>::default(); 8];
    let port = sock.local_addr().port();
    while !stop.load(Ordering::Relaxed) {
        let n =
            match sock.recv_batch(&mut batch, &mut bufs, &mut metas, 0, Duration::from_millis(200))
            {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!("IKE socket: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
        for (buf, meta) in bufs.iter().zip(&metas).take(n) {
            if meta.truncated {
                continue;
            }
            let input = Input::Datagram {
                local: SocketAddr::new(meta.dst, port),
                remote: meta.src,
                bytes: buf.data().to_vec(),
            };
            if tx.send(input).is_err() {
                return;
            }
        }
    }
}

/// Creates the channel to the IKE thread.
pub fn channel() -> (Sender<Input>, Receiver<Input>) {
    mpsc::channel()
}

#[cfg(test)]
mod tests {
    use super::{Target, rekey_reason};

    #[test]
    fn rekey_reasons() {
        assert_eq!(rekey_reason((None, None), (u64::MAX, u64::MAX), (1, 1), false), None);
        assert_eq!(rekey_reason((Some(100), None), (99, 1), (99, 1), false), None);
        assert!(rekey_reason((Some(100), None), (99, 1), (100, 1), false).is_some());
        assert!(rekey_reason((None, Some(5)), (0, 5), (0, 0), false).is_some());
        assert_eq!(
            rekey_reason((None, None), (0, 0), (0, 0), true),
            Some("is close to the end of its sequence numbers")
        );
    }

    #[test]
    fn target_kinds_and_descriptions() {
        assert!(Target::default().is_empty());
        let conn = Target::conn("net");
        assert!(!conn.is_empty() && !conn.is_child());
        assert_eq!(conn.describe(), "connection 'net'");
        let child = Target { child_id: Some(7), ..Target::default() };
        assert!(!child.is_empty() && child.is_child());
        let all = Target {
            ike: Some("net".into()),
            ike_id: Some(3),
            child: Some("lan".into()),
            child_id: Some(7),
        };
        assert_eq!(all.describe(), "connection 'net', IKE SA #3, child 'lan', CHILD_SA #7");
    }
}
