//! The IKE endpoint: routes datagrams to sessions by SPI, creates responder sessions, and
//! demands cookies when too many IKE SAs are half open (RFC 7296 §2.6).
//!
//! Same contract as [`Session`]: `handle_*`, commands, then drain `poll_*`. The endpoint owns
//! its sessions; [`SessionId`] (our IKE SPI) names them.

use core::net::SocketAddr;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::config::{EndpointConfig, UniquePolicy};
use super::identity::IdMatcher;
use super::session::{CloseReason, Contact, Event, Session, SupersedeCause, Transmit};
use crate::crypto::CryptoProvider;
use crate::wire::PrfId;
use crate::wire::ikev2::{
    ExchangeType, HeaderPacket, HeaderRepr, Message, Notify, NotifyType, Payload,
};

/// Names a session: our IKE SPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl core::fmt::Display for SessionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Counters of what the endpoint dropped or refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Datagrams that were not IKEv2 messages.
    pub malformed: u64,
    /// Messages for an IKE SA we do not have.
    pub unknown_spi: u64,
    /// IKE_SA_INIT requests answered with a COOKIE.
    pub cookies_sent: u64,
    /// IKE_SA_INIT requests with a wrong cookie.
    pub bad_cookies: u64,
    /// IKE_SA_INIT requests no connection matched (by address).
    pub no_connection: u64,
}

/// Why a command could not run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// No such connection.
    #[error("no connection named '{0}'")]
    UnknownConnection(String),
    /// No such child.
    #[error("connection '{conn}' has no child '{child}'")]
    UnknownChild {
        /// Connection.
        conn: String,
        /// Child.
        child: String,
    },
    /// No such IKE SA.
    #[error("no IKE SA {0}")]
    UnknownSession(SessionId),
}

/// All IKE SAs of the daemon.
pub struct Endpoint {
    config: EndpointConfig,
    provider: CryptoProvider,
    sessions: BTreeMap<SessionId, Session>,
    /// Responder sessions by (initiator SPI, peer address), to catch retransmitted IKE_SA_INIT.
    by_initiator: HashMap<(u64, SocketAddr), SessionId>,
    cookie_secret: [u8; 32],
    events: VecDeque<(SessionId, Event)>,
    unix: Option<(Instant, u64)>,
    stats: EndpointStats,
    extra_transmits: VecDeque<Transmit>,
    /// Connections to initiate again (`dpd_action`/`close_action = restart`, `keyingtries`).
    restarts: Vec<Restart>,
    /// The latest time we were given (restarts planned while polling events use it).
    last_now: Option<Instant>,
    /// IKE SAs to delete at a time (`unique = replace` after a grace period).
    replace_at: Vec<(Instant, SessionId)>,
    /// Reauthentications under way: (new session, the session it replaces).
    reauths: Vec<(SessionId, SessionId)>,
}

/// A connection to initiate again at a time.
#[derive(Debug)]
struct Restart {
    at: Instant,
    conn: Arc<super::config::IkeConfig>,
    children: Vec<String>,
    local: SocketAddr,
    remote: SocketAddr,
    attempt: u32,
}

/// Wait before another try of a connection whose initiation failed (`keyingtries`).
const RETRY_DELAY: core::time::Duration = core::time::Duration::from_secs(1);

/// A re-establishment (restart or retry) probes the peer with IKE_SA_INIT at least this often
/// on its first try, this much less often on each later one (a peer back after a short outage
/// is found within seconds, a long-dead one costs one datagram per [`RESTART_PROBE_MAX`]).
const RESTART_PROBE_STEP: core::time::Duration = core::time::Duration::from_secs(5);

/// The longest wait between IKE_SA_INIT retransmissions of a re-establishment.
const RESTART_PROBE_MAX: core::time::Duration = core::time::Duration::from_secs(30);

/// `unique = replace` with the new IKE SA from the old one's address: probably the peer
/// reauthenticating (make-before-break), which deletes the old SA itself; we wait this long
/// before deleting it (strongSwan's 10 s).
const REPLACE_GRACE: core::time::Duration = core::time::Duration::from_secs(10);

/// The addresses of `session` with IKE's port 500: where a new IKE SA to the same peer starts
/// (it floats to 4500 again if NAT is detected).
fn ike_ports(session: &Session) -> (SocketAddr, SocketAddr) {
    let (local, remote) = session.addresses();
    (SocketAddr::new(local.ip(), 500), SocketAddr::new(remote.ip(), 500))
}

/// The wait between IKE_SA_INIT retransmissions of try `attempt` of a re-establishment.
fn restart_probe_interval(attempt: u32) -> core::time::Duration {
    RESTART_PROBE_STEP.saturating_mul(attempt.max(1)).min(RESTART_PROBE_MAX)
}

impl core::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Endpoint").field("sessions", &self.sessions.len()).finish_non_exhaustive()
    }
}

impl Endpoint {
    /// An endpoint with these connections.
    pub fn new(config: EndpointConfig, provider: CryptoProvider) -> Self {
        let mut cookie_secret = [0u8; 32];
        let _ = provider.secure_random.fill(&mut cookie_secret);
        Self {
            config,
            provider,
            sessions: BTreeMap::new(),
            by_initiator: HashMap::new(),
            cookie_secret,
            events: VecDeque::new(),
            unix: None,
            stats: EndpointStats::default(),
            extra_transmits: VecDeque::new(),
            restarts: Vec::new(),
            last_now: None,
            replace_at: Vec::new(),
            reauths: Vec::new(),
        }
    }

    /// Replaces the connections (new sessions use them; running ones keep theirs).
    pub fn set_connections(&mut self, connections: Vec<Arc<super::config::IkeConfig>>) {
        self.config.connections = connections;
    }

    /// The connections.
    pub fn connections(&self) -> &[Arc<super::config::IkeConfig>] {
        &self.config.connections
    }

    /// Tells the endpoint the wall-clock time at `now` (for certificate validity).
    pub fn set_unix_time(&mut self, now: Instant, unix: u64) {
        self.unix = Some((now, unix));
        for s in self.sessions.values_mut() {
            s.set_unix_time(now, unix);
        }
    }

    /// Counters.
    pub fn stats(&self) -> EndpointStats {
        self.stats
    }

    /// The sessions.
    pub fn sessions(&self) -> impl Iterator<Item = (SessionId, &Session)> {
        self.sessions.iter().map(|(id, s)| (*id, s))
    }

    /// One session.
    pub fn session(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id)
    }

    /// One session, mutably (for its commands).
    pub fn session_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.sessions.get_mut(&id)
    }

    fn half_open(&self) -> usize {
        self.sessions.values().filter(|s| s.is_half_open()).count()
    }

    fn cookie(&self, spi_i: u64, remote: SocketAddr, ni: &[u8]) -> Vec<u8> {
        // Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>) (§2.6).
        let mut data = Vec::with_capacity(ni.len() + 16 + 8);
        data.extend_from_slice(ni);
        match remote.ip() {
            core::net::IpAddr::V4(a) => data.extend_from_slice(&a.octets()),
            core::net::IpAddr::V6(a) => data.extend_from_slice(&a.octets()),
        }
        data.extend_from_slice(&spi_i.to_be_bytes());
        let mac = self
            .provider
            .prf
            .prf(PrfId::PRF_HMAC_SHA2_256)
            .or_else(|| self.provider.prf.prf(PrfId::PRF_HMAC_SHA1))
            .and_then(|prf| prf.prf(&self.cookie_secret, &data).ok());
        let mut out = vec![0u8]; // secret version
        out.extend(mac.map(|m| m.expose().to_vec()).unwrap_or_default());
        out
    }

    fn attach(&mut self, now: Instant, mut session: Session) -> SessionId {
        if let Some((at, unix)) = self.unix {
            let unix = unix.saturating_add(now.saturating_duration_since(at).as_secs());
            session.set_unix_time(now, unix);
        }
        let id = SessionId(session.local_spi());
        self.sessions.insert(id, session);
        id
    }

    /// Processes one received IKE datagram (non-ESP marker removed).
    pub fn handle(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, bytes: &[u8]) {
        self.last_now = Some(now);
        let Ok(packet) = HeaderPacket::new_checked(bytes) else {
            self.stats.malformed += 1;
            return;
        };
        let Ok(header) = HeaderRepr::parse(&packet) else {
            self.stats.malformed += 1;
            return;
        };
        let is_request = !header.flags.response();
        if header.exchange_type == ExchangeType::IKE_SA_INIT && is_request && header.spi_r == 0 {
            self.handle_init_request(now, local, remote, header, bytes);
            return;
        }
        // The original initiator sets the I flag; our SPI is the other side's.
        let ours = if header.flags.initiator() { header.spi_r } else { header.spi_i };
        let id = SessionId(ours);
        if header.exchange_type == ExchangeType::IKE_SA_INIT && !is_request {
            // Our IKE_AUTH follows: INITIAL_CONTACT only if we have no other SA with the peer.
            self.decide_initial_contact(id);
        }
        self.prepare_uniqueness(id);
        match self.sessions.get_mut(&id) {
            Some(session) => {
                session.handle_datagram(now, local, remote, bytes);
                let spawned: Vec<_> = core::iter::from_fn(|| session.take_successor()).collect();
                for next in spawned {
                    self.attach(now, *next);
                }
            }
            None => self.stats.unknown_spi += 1,
        }
        self.enforce_uniqueness(now, id);
        self.run_reauths(now);
    }

    fn handle_init_request(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        header: HeaderRepr,
        bytes: &[u8],
    ) {
        if let Some(id) = self.by_initiator.get(&(header.spi_i, remote)).copied() {
            if let Some(s) = self.sessions.get_mut(&id) {
                s.handle_datagram(now, local, remote, bytes);
            }
            return;
        }
        let Ok(msg) = Message::parse(bytes) else {
            self.stats.malformed += 1;
            return;
        };
        let candidates: Vec<_> = self
            .config
            .connections
            .iter()
            .filter(|c| c.matches_addrs(local, remote))
            .cloned()
            .collect();
        if candidates.is_empty() {
            self.stats.no_connection += 1;
            // No reply: an unconfigured peer gets nothing to work with (strongSwan answers
            // NO_PROPOSAL_CHOSEN; silence is the safer choice against scans).
            return;
        }
        if self.half_open() >= self.config.cookie_threshold {
            let ni = msg.payloads.iter().find_map(|p| match p {
                Payload::Nonce(n) => Some(n.data.clone()),
                _ => None,
            });
            let Some(ni) = ni else { return };
            let expected = self.cookie(header.spi_i, remote, &ni);
            let got = msg.payloads.first().and_then(|p| match p {
                Payload::Notify(n) if n.ty == NotifyType::COOKIE => Some(n.data.clone()),
                _ => None,
            });
            match got {
                Some(c) if c == expected => {}
                other => {
                    if other.is_some() {
                        self.stats.bad_cookies += 1;
                    }
                    self.stats.cookies_sent += 1;
                    let reply = Message {
                        header: HeaderRepr {
                            spi_r: 0,
                            flags: crate::wire::ikev2::Flags::RESPONSE,
                            ..header
                        },
                        payloads: vec![Payload::Notify(Notify::new(NotifyType::COOKIE, expected))],
                    };
                    if let Ok(bytes) = reply.emit() {
                        self.extra_transmits.push_back(Transmit {
                            local,
                            remote,
                            non_esp_marker: local.port() == super::session::NAT_T_PORT,
                            payload: bytes,
                        });
                    }
                    return;
                }
            }
        }
        let Some(session) = Session::accept(
            now,
            self.provider,
            candidates,
            self.config.half_open_timeout,
            local,
            remote,
            bytes,
        ) else {
            self.stats.malformed += 1;
            return;
        };
        let spi_i = header.spi_i;
        let id = self.attach(now, session);
        if self.sessions.get(&id).is_some_and(|s| s.is_half_open()) {
            self.by_initiator.insert((spi_i, remote), id);
        }
    }

    /// Starts connection `conn` (with its child `child`, or none) toward `remote` from `local`.
    pub fn initiate(
        &mut self,
        now: Instant,
        conn: &str,
        child: Option<&str>,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<SessionId, CommandError> {
        self.initiate_triggered(now, conn, child, None, local, remote)
    }

    /// [`Endpoint::initiate`] for a packet that hit a trap policy: `trigger`, its selectors,
    /// goes first in the child's TSi/TSr in IKE_AUTH (RFC 7296 §2.9).
    pub fn initiate_triggered(
        &mut self,
        now: Instant,
        conn: &str,
        child: Option<&str>,
        trigger: Option<super::ts::TriggerFlow>,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<SessionId, CommandError> {
        self.last_now = Some(now);
        let config = self
            .config
            .connections
            .iter()
            .find(|c| c.name == conn)
            .cloned()
            .ok_or_else(|| CommandError::UnknownConnection(conn.to_owned()))?;
        if let Some(child) = child
            && config.child(child).is_none()
        {
            return Err(CommandError::UnknownChild {
                conn: conn.to_owned(),
                child: child.to_owned(),
            });
        }
        let mut session = Session::initiate(now, self.provider, config, child, local, remote);
        if child.is_some() {
            session.set_initial_trigger(trigger);
        }
        let id = self.attach(now, session);
        self.decide_initial_contact(id);
        Ok(id)
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = Some(now);
        let (due, later): (Vec<_>, Vec<_>) = self.restarts.drain(..).partition(|r| r.at <= now);
        self.restarts = later;
        for r in due {
            let mut session = self.new_session(now, r.conn.clone(), &r.children, r.local, r.remote);
            session.set_attempt(r.attempt);
            session.set_init_retransmit_cap(now, Some(restart_probe_interval(r.attempt)));
            let id = self.attach(now, session);
            self.decide_initial_contact(id);
        }
        self.run_replacements(now);
        let mut successors = Vec::new();
        for s in self.sessions.values_mut() {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
            }
            successors.extend(core::iter::from_fn(|| s.take_successor()));
        }
        for next in successors {
            self.attach(now, *next);
        }
        self.run_reauths(now);
    }

    /// Reauthenticates IKE SA `id` now (make-before-break; see [`Session::reauthenticate`]).
    pub fn reauthenticate(&mut self, now: Instant, id: SessionId) -> Result<(), CommandError> {
        self.last_now = Some(now);
        self.sessions.get_mut(&id).ok_or(CommandError::UnknownSession(id))?.reauthenticate();
        self.run_reauths(now);
        Ok(())
    }

    /// The IKE SA that session `id` reauthenticates, while that is under way.
    pub fn reauth_of(&self, id: SessionId) -> Option<SessionId> {
        self.reauths.iter().find(|(new, _)| *new == id).map(|(_, old)| *old)
    }

    /// A reauthentication's new IKE SA that never came up: the IKE SA it was to replace lives
    /// on, so its connection is not initiated again.
    fn failed_reauth(&self, id: SessionId) -> bool {
        self.sessions.get(&id).is_some_and(|s| s.is_reauth() && !s.was_established())
    }

    /// A new IKE SA of `conn` carrying `children` (the first in IKE_AUTH, the others by
    /// CREATE_CHILD_SA once it is up), as restarts and reauthentications build them.
    fn new_session(
        &self,
        now: Instant,
        conn: Arc<super::config::IkeConfig>,
        children: &[String],
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Session {
        let first = children.first().map(String::as_str);
        let mut session = Session::initiate(now, self.provider, conn, first, local, remote);
        for child in children.iter().skip(1) {
            session.create_child(now, child);
        }
        session
    }

    /// Starts due reauthentications and finishes those whose new IKE SA is ready.
    fn run_reauths(&mut self, now: Instant) {
        let due: Vec<(SessionId, Vec<String>)> = self
            .sessions
            .iter_mut()
            .filter_map(|(id, s)| s.take_reauth_request().map(|c| (*id, c)))
            .collect();
        for (old, children) in due {
            let Some(s) = self.sessions.get(&old) else { continue };
            let conn = s.config().clone();
            let (local, remote) = ike_ports(s);
            let mut new = self.new_session(now, conn, &children, local, remote);
            new.set_reauth();
            let id = self.attach(now, new);
            self.reauths.push((id, old));
        }
        let mut done = Vec::new();
        let mut failed = Vec::new();
        self.reauths.retain(|&(new, old)| {
            let old_alive = self.sessions.get(&old).is_some_and(|s| !s.is_closed());
            match self.sessions.get(&new) {
                _ if !old_alive => false,
                Some(s) if !s.is_closed() => {
                    if s.info().is_some() && s.is_settled() {
                        done.push(old);
                        false
                    } else {
                        true
                    }
                }
                _ => {
                    failed.push(old);
                    false
                }
            }
        });
        for old in done {
            if let Some(s) = self.sessions.get_mut(&old) {
                s.reauth_complete(now);
            }
        }
        for old in failed {
            if let Some(s) = self.sessions.get_mut(&old) {
                s.reauth_failed();
            }
        }
    }

    /// Whether no session has an exchange running or waiting to run, and none is half-open
    /// (only lifetime and liveness timers are armed): a simulation has settled.
    pub fn is_settled(&self) -> bool {
        self.replace_at.is_empty() && self.sessions.values().all(Session::is_settled)
    }

    /// The earliest deadline of all sessions.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let restart = self.restarts.iter().map(|r| r.at).min();
        let replace = self.replace_at.iter().map(|r| r.0).min();
        self.sessions.values().filter_map(Session::poll_timeout).chain(restart).chain(replace).min()
    }

    /// Whether a connection waits to be initiated again (after a dead peer, a peer's
    /// delete, or a failed try).
    pub fn restart_pending(&self, conn: &str) -> bool {
        self.restarts.iter().any(|r| r.conn.name == conn)
    }

    /// Drops pending restarts of a connection (the user terminated it).
    pub fn cancel_restarts(&mut self, conn: &str) {
        self.restarts.retain(|r| r.conn.name != conn);
    }

    /// A session closed: initiate its connection again if its config says so.
    fn plan_restart(&mut self, now: Instant, id: SessionId, reason: &CloseReason) {
        let Some(s) = self.sessions.get(&id) else { return };
        let conn = s.config().clone();
        let (local, remote) = ike_ports(s);
        let (children, attempt, at) = if s.was_established() {
            let wanted: Vec<String> = conn
                .children
                .iter()
                .filter(|c| match reason {
                    CloseReason::Timeout => c.dpd_restart,
                    CloseReason::PeerDelete => c.close_restart,
                    _ => false,
                })
                .map(|c| c.name.clone())
                .collect();
            (wanted, 1, now)
        } else if s.role() == super::session::Role::Initiator
            && matches!(reason, CloseReason::Timeout | CloseReason::Failed(_))
            && (conn.keyingtries == 0 || s.attempt() < conn.keyingtries)
        {
            (
                s.initial_child().map(str::to_owned).into_iter().collect(),
                s.attempt() + 1,
                now + RETRY_DELAY,
            )
        } else {
            return;
        };
        if children.is_empty() && s.was_established() {
            return;
        }
        self.events.push_back((
            id,
            Event::RestartScheduled {
                conn: conn.name.clone(),
                children: children.clone(),
                delay: at.saturating_duration_since(now),
                attempt,
                keyingtries: conn.keyingtries,
                retransmit_cap: restart_probe_interval(attempt),
            },
        ));
        self.restarts.push(Restart { at, conn, children, local, remote, attempt });
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(t) = self.extra_transmits.pop_front() {
            return Some(t);
        }
        self.sessions.values_mut().find_map(Session::poll_transmit)
    }

    /// The next event, with the session it came from. Closed sessions are removed once their
    /// last event has been taken.
    pub fn poll_event(&mut self) -> Option<(SessionId, Event)> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        let mut closed = Vec::new();
        let mut found = None;
        for (id, s) in &mut self.sessions {
            if let Some(e) = s.poll_event() {
                found = Some((*id, e));
                break;
            }
            if s.is_closed() {
                closed.push(*id);
            }
        }
        for id in closed {
            // Keep what the closed session still wants sent (an error reply), then drop it.
            if let Some(mut s) = self.sessions.remove(&id) {
                self.extra_transmits.extend(core::iter::from_fn(|| s.poll_transmit()));
            }
            self.by_initiator.retain(|_, v| *v != id);
        }
        if let Some((id, Event::Closed(reason))) = &found
            && let Some(now) = self.last_now
            && !self.failed_reauth(*id)
        {
            self.plan_restart(now, *id, reason);
        }
        found
    }

    // ---- uniqueness (swanctl `unique`, INITIAL_CONTACT) ----

    /// Whether another established IKE SA of `id`'s connection exists with the same peer
    /// (strongSwan's `has_contact`): then `id` must not send INITIAL_CONTACT, which would make
    /// the peer drop that one.
    fn has_contact(&self, id: SessionId) -> bool {
        let Some(new) = self.sessions.get(&id) else { return false };
        let config = new.config();
        self.sessions.iter().any(|(other, s)| {
            *other != id
                && s.config().name == config.name
                && s.info().is_some_and(|i| match &config.remote_id {
                    IdMatcher::Exact(want) => i.remote_id == *want,
                    IdMatcher::Any => true,
                })
        })
    }

    /// An initiator sends INITIAL_CONTACT unless it still holds an IKE SA with the peer.
    fn decide_initial_contact(&mut self, id: SessionId) {
        let contact = self.has_contact(id);
        if let Some(s) = self.sessions.get_mut(&id) {
            s.set_initial_contact(!contact);
        }
    }

    /// Before a half-open responder SA handles what may be its IKE_AUTH: the established IKE
    /// SAs, which a `unique = keep` connection refuses to duplicate (only when one is
    /// configured: the list is built per IKE_AUTH).
    fn prepare_uniqueness(&mut self, id: SessionId) {
        let keep = self.config.connections.iter().any(|c| c.unique == UniquePolicy::Keep);
        if !keep || !self.sessions.get(&id).is_some_and(Session::is_half_open) {
            return;
        }
        let contacts: Vec<Contact> = self
            .sessions
            .values()
            .filter_map(|s| {
                let info = s.info()?;
                Some(Contact {
                    conn: info.name.clone(),
                    local_id: info.local_id.clone(),
                    remote_id: info.remote_id.clone(),
                    remote: info.remote.ip(),
                })
            })
            .collect();
        if let Some(s) = self.sessions.get_mut(&id) {
            s.set_contacts(contacts);
        }
    }

    /// After a responder's IKE_AUTH established `id`: applies its connection's `unique`
    /// policy to the other IKE SAs between the same identities (strongSwan's
    /// `check_uniqueness`). INITIAL_CONTACT drops every one of them without a DELETE (the
    /// peer restarted and has none of them); `replace` deletes those of the same connection.
    fn enforce_uniqueness(&mut self, now: Instant, id: SessionId) {
        let Some(check) = self.sessions.get_mut(&id).and_then(Session::take_uniqueness_check)
        else {
            return;
        };
        let Some(new) = self.sessions.get(&id) else { return };
        let Some(info) = new.info() else { return };
        let policy = new.config().unique;
        let replace = policy == UniquePolicy::Replace;
        if policy == UniquePolicy::Never || !(check.initial_contact || replace) {
            return;
        }
        let stale: Vec<(SessionId, bool, bool)> = self
            .sessions
            .iter()
            .filter(|(other, _)| **other != id)
            .filter_map(|(other, s)| {
                let i = s.info()?;
                let same = i.local_id == info.local_id
                    && i.remote_id == info.remote_id
                    && i.remote.is_ipv4() == info.remote.is_ipv4();
                same.then(|| (*other, i.name == info.name, i.remote.ip() == info.remote.ip()))
            })
            .collect();
        for (old, same_conn, same_host) in stale {
            let Some(s) = self.sessions.get_mut(&old) else { continue };
            if check.initial_contact {
                self.events.push_back((
                    old,
                    Event::Superseded { by: id.0, cause: SupersedeCause::InitialContact },
                ));
                s.discard();
            } else if same_conn {
                let delay = if same_host { REPLACE_GRACE } else { core::time::Duration::ZERO };
                self.events.push_back((
                    old,
                    Event::Superseded { by: id.0, cause: SupersedeCause::Replace { delay } },
                ));
                if same_host {
                    self.replace_at.push((now + delay, old));
                } else {
                    s.close(now);
                }
            }
        }
    }

    /// Deletes the IKE SAs whose `unique = replace` grace period is over (if still there).
    fn run_replacements(&mut self, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) = self.replace_at.drain(..).partition(|r| r.0 <= now);
        self.replace_at = later;
        for (_, id) in due {
            if let Some(s) = self.sessions.get_mut(&id) {
                s.close(now);
            }
        }
    }
}
