//! The IKE thread: drives the sans-IO [`Endpoint`] with real sockets and time, and turns its
//! events into data-plane state (SAs, policies, routes).
//!
//! ```text
//! UDP 500 reader thread ──┐
//! inbound worker (4500, non-ESP marker) ──┼──► channel ──► IKE thread ──► Endpoint
//! VICI commands (initiate, terminate) ────┘                   │
//!                                       transmits ◄───────────┤ (UDP 500 / 4500 sockets)
//!                       Dataplane::install / routes ◄─────────┘ events (ChildSaUp/Down)
//! ```
//!
//! Everything the endpoint reports is logged in one line; failures are kept per connection
//! for `ferroswan status`.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ferroswan_proto::crypto::CryptoProvider;
use ferroswan_proto::esp::{InboundSa, OutboundSa, PacketBuf};
use ferroswan_proto::ikev2::config::IkeConfig;
use ferroswan_proto::ikev2::session::{ChildSaUp, Event, IkeSaInfo, SupersedeCause, Transmit};
use ferroswan_proto::ikev2::{Endpoint, SessionId};
use ferroswan_proto::policy::SaSelectors;

use crate::dataplane::{Dataplane, Destination, InboundEntry, OutboundEntry, Tables};
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
    /// Delete the IKE SAs of a connection.
    Terminate {
        /// Connection name.
        conn: String,
        /// Answer.
        reply: Sender<Result<String, String>>,
    },
    /// Replace the connection table (VICI `load-conn`/`unload-conn`): new IKE SAs, initiated
    /// or answered, use these; established ones keep the config they were made with.
    SetConnections {
        /// Every connection, file and VICI ones.
        connections: Vec<Arc<IkeConfig>>,
        /// Answer, once the table is in place.
        reply: Sender<Result<String, String>>,
    },
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
    /// Its CHILD_SAs.
    pub children: Vec<ChildStatus>,
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
        })
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
    }

    fn handle_input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Datagram { local, remote, bytes } => {
                self.endpoint.handle(now, local, remote, &bytes)
            }
            Input::Command(Command::Initiate { conn, child, reply }) => {
                let conn = conn.or_else(|| {
                    let child = child.as_deref()?;
                    self.endpoint
                        .connections()
                        .iter()
                        .find(|c| c.child(child).is_some())
                        .map(|c| c.name.clone())
                });
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
            Input::Command(Command::Terminate { conn, reply }) => {
                // The user wants it down: no dpd/close_action restart or keyingtries retry.
                self.endpoint.cancel_restarts(&conn);
                self.status.lock().unwrap_or_else(PoisonError::into_inner).restarts.remove(&conn);
                let ids: Vec<SessionId> = self
                    .endpoint
                    .sessions()
                    .filter(|(_, s)| s.config().name == conn)
                    .map(|(id, _)| id)
                    .collect();
                if ids.is_empty() {
                    let _ = reply.send(Err(format!("no IKE SA of connection '{conn}'")));
                    return;
                }
                for id in &ids {
                    if let Some(s) = self.endpoint.session_mut(*id) {
                        s.close(now);
                    }
                }
                let _ = reply.send(Ok(format!("closing {} IKE SA(s) of '{conn}'", ids.len())));
            }
            Input::Command(Command::SetConnections { connections, reply }) => {
                let count = connections.len();
                self.endpoint.set_connections(connections);
                let _ = reply.send(Ok(format!("{count} connection(s) loaded")));
            }
        }
    }

    /// Starts a connection toward its configured remote address.
    pub fn initiate(&mut self, conn: &str, child: Option<&str>) -> Result<SessionId, String> {
        let config = self
            .endpoint
            .connections()
            .iter()
            .find(|c| c.name == conn)
            .cloned()
            .ok_or_else(|| format!("no connection named '{conn}'"))?;
        let remote_ip = *config.remote_addrs.first().ok_or_else(|| {
            format!(
                "connection '{conn}' has no single remote address to initiate to (remote_addrs)"
            )
        })?;
        let local_ip = match config.local_addrs.first() {
            Some(ip) => *ip,
            None => source_for(remote_ip).map_err(|e| format!("no route to {remote_ip}: {e}"))?,
        };
        let child =
            child.map(str::to_owned).or_else(|| config.children.first().map(|c| c.name.clone()));
        tracing::info!(
            "initiating {conn} ({local_ip} → {remote_ip}){}",
            child.as_deref().map_or(String::new(), |c| format!(", child {c}"))
        );
        self.endpoint
            .initiate(
                Instant::now(),
                conn,
                child.as_deref(),
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
                st.sas.insert(
                    id.0,
                    IkeStatus {
                        info,
                        established: Instant::now(),
                        unique_id,
                        children: Vec::new(),
                    },
                );
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
                st.sas.insert(
                    new.0,
                    IkeStatus { info, established: Instant::now(), unique_id, children },
                );
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
                let mut st = self.status.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(sa) = st.sas.get_mut(&id.0) {
                    sa.children.retain(|c| c.up.inbound_spi != inbound_spi);
                }
            }
            Event::Failed(f) => {
                tracing::warn!("{f}");
                self.record_failure(&f.what, &f.message);
                let conn = f.what.split('/').next().unwrap_or(&f.what).to_owned();
                self.answer_waiting(&conn, Err(f.to_string()));
            }
            Event::Superseded { by, cause } => self.superseded(id, SessionId(by), cause),
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
                // A try ended: a restart still due is announced again right after this.
                if let Some(s) = self.endpoint.session(id) {
                    let conn = s.config().name.clone();
                    self.status
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .restarts
                        .remove(&conn);
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
            let mut routes = Vec::new();
            for ts in &up.child.remote_ts {
                for r in cidrs(ts) {
                    let src = (up.child.mode == ferroswan_proto::esp::Mode::Transport
                        && r.addr.is_ipv4() == up.local.is_ipv4())
                    .then_some(up.local.ip());
                    routes.push(Route {
                        dst: r.addr,
                        prefix_len: r.prefix_len,
                        ifindex: self.tun_ifindex,
                        src,
                        table: POLICY_TABLE,
                    });
                }
            }
            for r in &routes {
                let count = self.route_refs.entry((r.dst, r.prefix_len)).or_insert(0);
                if *count == 0
                    && let Err(e) = self.routes.add(*r)
                {
                    tracing::warn!("route {r}: {e}");
                }
                *count += 1;
            }
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
                self.rebuild_tables();
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
            }
            Err(e) => {
                tracing::error!("CHILD_SA {name}: could not install: {e}");
                self.record_failure(&name, &format!("could not install: {e}"));
            }
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
        self.dp.install(tables);
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
            let over_bytes = i.soft_bytes.is_some_and(|l| inb.bytes() >= l || outb.bytes() >= l);
            let over_packets = i.soft_packets.is_some_and(|l| packets >= l || outb.packets() >= l);
            if (over_bytes || over_packets) && !i.rekey_asked {
                i.rekey_asked = true;
                rekey.push((i.session, *spi));
            }
        }
        heard.sort_unstable_by_key(|s| s.0);
        heard.dedup();
        for id in heard {
            if let Some(s) = self.endpoint.session_mut(id) {
                s.traffic_received(now);
            }
        }
        for (id, spi) in rekey {
            tracing::info!("CHILD_SA SPI {spi:08x} reached its soft byte/packet limit: rekeying");
            if let Some(s) = self.endpoint.session_mut(id) {
                s.rekey_child(now, spi);
            }
        }
    }
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
