//! One IKE SA and its CHILD_SAs: the IKEv2 state machine (RFC 7296), sans IO.
//!
//! # Contract (after quinn's `Connection`)
//!
//! A [`Session`] never reads a clock, opens a socket or draws randomness other than through
//! the [`CryptoProvider`]. The caller (the [`super::Endpoint`], and through it the daemon or a
//! simulation) drives it with four kinds of methods:
//!
//! - **getters**: [`Session::info`], [`Session::children`], [`Session::state_name`], …
//! - **`handle_*`**: [`Session::handle_datagram`] for every IKE message routed to this SA,
//!   [`Session::handle_timeout`] when the time from [`Session::poll_timeout`] has come.
//! - **commands**: [`Session::create_child`], [`Session::delete_child`], [`Session::close`],
//!   [`Session::liveness_check`]. Commands are queued and run one at a time: IKEv2 allows one
//!   outstanding request per direction (window size 1), and requests from the peer are answered
//!   whatever local procedure is running, since each direction has its own message IDs.
//! - **`poll_*`**: after any `handle_*` or command, drain [`Session::poll_transmit`] (datagrams
//!   to send), then [`Session::poll_event`] (SAs up and down, failures), then ask
//!   [`Session::poll_timeout`] for the next deadline.
//!
//! `now` must never go backwards between calls.
//!
//! # States (named by Android's grammar: procedure, who initiated, exchange)
//!
//! ```text
//! initiator:  CreateIkeLocalIkeInit ──► CreateIkeLocalIkeAuth ──► Established ──► Closed
//! responder:  (Endpoint: IKE_SA_INIT) ─► CreateIkeRemoteIkeAuth ─► Established ──► Closed
//! ```
//!
//! In `Established`, local procedures (`CreateChildLocalCreate`, `DeleteChildLocalDelete`,
//! `DeleteIkeLocalDelete`, `InfoLocalInfo`) run one after the other from a queue, and remote
//! requests are answered as they come. A CHILD_SA is only reported up ([`Event::ChildSaUp`])
//! from code that holds the [`AuthVerified`] proof of the peer's AUTH payload.
//!
//! # Timers
//!
//! | timer | armed when | fires |
//! |---|---|---|
//! | retransmit | a request is sent | resend (`timeout · base^n`), fail after `tries` resends |
//! | half-open | responder sent its IKE_SA_INIT response | drop the SA if IKE_AUTH never came |

/// The first payload of a kind in a message: `first!(payloads, Nonce)` is `Option<&Nonce>`.
macro_rules! first {
    ($payloads:expr, $variant:ident) => {
        $payloads.iter().find_map(|p| match p {
            $crate::wire::ikev2::Payload::$variant(x) => Some(x),
            _ => None,
        })
    };
}

mod child;
mod ike_auth;
mod ike_rekey;
mod ike_sa_init;
mod informational;
mod reauth;
mod rekey;
mod unique;

use core::fmt;
use core::net::SocketAddr;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

pub use child::{ChildSa, ChildSaUp, ChildState};
pub use unique::{Contact, SupersedeCause, UniquenessCheck};

use super::auth::AuthVerified;
use super::config::{ChildConfig, IkeConfig, Retransmit};
use super::identity::Identity;
use super::proposal::IkeSuite;
use super::protect::{Decoded, SaCrypto};
use super::ts::TriggerFlow;
use crate::crypto::{CryptoProvider, KeSecret};
use crate::wire::ikev2::{
    ExchangeType, Flags, HeaderRepr, Message, Notify, NotifyType, Payload, PayloadType,
};

/// Which side created the IKE SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We sent the IKE_SA_INIT request.
    Initiator,
    /// The peer did.
    Responder,
}

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Our address and port to send from (500, or 4500 after NAT-T floating).
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
    /// Prepend the four-byte non-ESP marker (RFC 3948 §2.2): the message goes over the
    /// UDP-encapsulation port.
    pub non_esp_marker: bool,
    /// The IKE message.
    pub payload: Vec<u8>,
}

/// What kind of failure, for counters and status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// No common IKE or ESP proposal.
    Proposal,
    /// Authentication (PSK, signature, certificate) failed.
    Authentication,
    /// The peer's identity did not match.
    Identity,
    /// No acceptable traffic selectors.
    TrafficSelectors,
    /// The peer did not answer.
    Timeout,
    /// The peer sent an error notification.
    PeerError,
    /// The peer violated the protocol.
    Protocol,
    /// A local problem (crypto provider, configuration).
    Local,
}

/// A failed negotiation, explained in one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The connection (and child, if any) it happened on: `conn` or `conn/child`.
    pub what: String,
    /// The kind.
    pub kind: FailureKind,
    /// What went wrong, what was offered, what was configured.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.message)
    }
}

/// Why a CHILD_SA went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DownReason {
    /// We deleted it.
    LocalDelete,
    /// The peer deleted it.
    PeerDelete,
    /// Its IKE SA closed.
    IkeClosed,
    /// A rekey replaced it (its DELETE exchange completed).
    Rekeyed,
    /// Its hard lifetime ran out.
    Expired,
}

/// Why the IKE SA closed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// We deleted it.
    LocalDelete,
    /// The peer deleted it.
    PeerDelete,
    /// Negotiation failed.
    Failed(Failure),
    /// The peer stopped answering.
    Timeout,
    /// A responder's IKE SA never completed IKE_AUTH.
    HalfOpenTimeout,
    /// It was rekeyed: its successor ([`Event::IkeSaRekeyed`]) carries on.
    Rekeyed,
    /// The peer sent INITIAL_CONTACT on a newer IKE SA: it restarted and lost this one, which
    /// was dropped without a DELETE ([`Event::Superseded`]).
    Superseded,
    /// It was reauthenticated: a new IKE SA, made from scratch with the same peer, took over
    /// its CHILD_SAs (make-before-break) and this one was deleted.
    Reauthenticated,
}

/// Facts about an established IKE SA, for events and status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeSaInfo {
    /// The connection name.
    pub name: String,
    /// Our role in the IKE_SA_INIT.
    pub role: Role,
    /// Initiator's SPI.
    pub spi_i: u64,
    /// Responder's SPI.
    pub spi_r: u64,
    /// Our address.
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
    /// Our identity.
    pub local_id: Identity,
    /// The peer's authenticated identity.
    pub remote_id: Identity,
    /// The algorithms.
    pub suite: IkeSuite,
    /// We are behind a NAT.
    pub nat_local: bool,
    /// The peer is behind a NAT (or faked one to force UDP encapsulation).
    pub nat_remote: bool,
}

impl IkeSaInfo {
    /// Our SPI of the IKE SA: the endpoint's session key for it.
    pub fn local_spi(&self) -> u64 {
        match self.role {
            Role::Initiator => self.spi_i,
            Role::Responder => self.spi_r,
        }
    }
}

/// What a session reports.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// IKE_AUTH completed: the IKE SA is established.
    Established(IkeSaInfo),
    /// The IKE SA was rekeyed: a new IKE SA (these facts; the endpoint's session under its
    /// SPI) now owns every CHILD_SA of this one, which closes once its DELETE is done.
    IkeSaRekeyed(IkeSaInfo),
    /// A CHILD_SA was negotiated: install it.
    ChildSaUp(Box<ChildSaUp>),
    /// A CHILD_SA that was installed with [`ChildSaUp::activate_outbound`] `false` now
    /// carries our outbound traffic (the SA it replaced was deleted).
    ChildSaActivated {
        /// The child config name.
        child: String,
        /// Our inbound SPI.
        inbound_spi: u32,
    },
    /// A CHILD_SA is gone: remove it.
    ChildSaDown {
        /// The child config name.
        child: String,
        /// Our inbound SPI.
        inbound_spi: u32,
        /// Our outbound SPI.
        outbound_spi: u32,
        /// Why.
        reason: DownReason,
    },
    /// A negotiation failed (the IKE SA may live on, e.g. when only a CHILD_SA failed).
    Failed(Failure),
    /// The IKE SA is gone. The last event of a session.
    Closed(CloseReason),
    /// A newer IKE SA between the same identities authenticated and this one gives way
    /// (INITIAL_CONTACT, swanctl `unique`); its CHILD_SAs go down and `Closed` follows.
    /// Reported by the endpoint.
    Superseded {
        /// Our SPI of the new IKE SA (the endpoint's session of it).
        by: u64,
        /// Why, and whether a DELETE is sent.
        cause: SupersedeCause,
    },
    /// The connection of this (closed) IKE SA will be initiated again (`dpd_action` or
    /// `close_action = restart`, or another of its `keyingtries`). Reported by the endpoint.
    RestartScheduled {
        /// The connection.
        conn: String,
        /// The children it brings up.
        children: Vec<String>,
        /// How long until the new IKE_SA_INIT.
        delay: core::time::Duration,
        /// Which try this will be (1: the first after an established IKE SA went away).
        attempt: u32,
        /// `keyingtries`: the last try (0: no limit).
        keyingtries: u32,
        /// The longest wait between its IKE_SA_INIT retransmissions.
        retransmit_cap: core::time::Duration,
    },
    /// Our IKE rekey crossed the peer's (RFC 7296 §2.8.2): detected, then concluded.
    IkeRekeyCollision(IkeRekeyCollision),
}

/// A step of an IKE rekey collision ([`Event::IkeRekeyCollision`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IkeRekeyCollision {
    /// The peer's IKE rekey request came while ours was outstanding; we answered it and
    /// decide when our response comes.
    Detected,
    /// Our exchange made the surviving IKE SA; the peer deletes its redundant one.
    Won,
    /// Our exchange holds the lowest nonce: we delete the IKE SA it made, the peer's carries on.
    Lost,
    /// Our rekey came to nothing (an error answer, or the peer deleted the old IKE SA): the
    /// peer did not notice the collision and its new IKE SA carries on.
    PeerDidNotNotice,
}

/// A request we sent and wait for an answer to.
#[derive(Debug)]
struct Outstanding {
    message_id: u32,
    bytes: Vec<u8>,
    transmissions: u32,
    deadline: Instant,
    /// Give up at this time even if retransmissions are left (`dpd_timeout`).
    give_up: Option<Instant>,
    procedure: Procedure,
}

/// A local procedure: queued, then run with its request outstanding.
#[derive(Debug)]
enum Procedure {
    /// IKE_SA_INIT (state holds the data).
    IkeSaInit,
    /// IKE_AUTH (state holds the data).
    IkeAuth,
    /// CREATE_CHILD_SA for a new CHILD_SA.
    CreateChild(Box<child::LocalCreate>),
    /// INFORMATIONAL with a Delete of CHILD_SAs (our inbound SPI).
    DeleteChild(u32),
    /// INFORMATIONAL with a Delete of the IKE SA.
    DeleteIke,
    /// Empty INFORMATIONAL.
    Liveness,
    /// CREATE_CHILD_SA rekeying the IKE SA.
    RekeyIke(Box<ike_rekey::LocalIkeRekey>),
}

/// A local procedure waiting for its turn.
#[derive(Debug)]
enum Queued {
    /// A new CHILD_SA of this child config, with the packet that asked for it, if any.
    CreateChild(String, Option<TriggerFlow>),
    /// Rekey the CHILD_SA with this inbound SPI.
    RekeyChild(u32),
    DeleteChild(u32),
    /// Tell the peer to delete an SA we no longer have (expired, or redundant after a
    /// rekey collision).
    DeleteGone(u32),
    DeleteIke,
    Liveness,
    RekeyIke,
}

/// Where the IKE SA is.
enum State {
    CreateIkeLocalIkeInit(Box<ike_sa_init::LocalIkeInit>),
    CreateIkeLocalIkeAuth(Box<ike_auth::LocalIkeAuth>),
    CreateIkeRemoteIkeAuth(Box<ike_auth::RemoteIkeAuth>),
    Established(Box<Established>),
    Closed,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            Self::CreateIkeLocalIkeInit(_) => "CreateIkeLocalIkeInit",
            Self::CreateIkeLocalIkeAuth(_) => "CreateIkeLocalIkeAuth",
            Self::CreateIkeRemoteIkeAuth(_) => "CreateIkeRemoteIkeAuth",
            Self::Established(_) => "Established",
            Self::Closed => "Closed",
        }
    }
}

/// An IKE SA that completed IKE_AUTH.
struct Established {
    info: IkeSaInfo,
    /// The peer's verified AUTH; CHILD_SAs are built from it.
    auth: AuthVerified,
}

/// One IKE SA.
pub struct Session {
    provider: CryptoProvider,
    config: Arc<IkeConfig>,
    /// Responder: the connections that matched the addresses and the IKE proposal; IKE_AUTH
    /// picks among them by identity.
    candidates: Vec<Arc<IkeConfig>>,
    role: Role,
    spi_i: u64,
    spi_r: u64,
    local: SocketAddr,
    remote: SocketAddr,
    /// Send over the UDP-encapsulation port with the non-ESP marker.
    encap: bool,
    nat_local: bool,
    nat_remote: bool,
    state: State,
    crypto: Option<SaCrypto>,
    suite: Option<IkeSuite>,
    unix_offset: Option<(Instant, u64)>,
    // Our requests.
    next_request_id: u32,
    outstanding: Option<Outstanding>,
    queue: VecDeque<Queued>,
    // The peer's requests.
    expected_request_id: u32,
    last_response: Option<(u32, Vec<u8>)>,
    children: Vec<ChildSa>,
    /// CHILD_SAs we answered a rekey for (new inbound SPI) and the SA they replace: our
    /// outbound traffic moves to the new one when the old one is deleted.
    pending_activation: Vec<(u32, u32)>,
    /// Rekeys to try again (refused with TEMPORARY_FAILURE, or failed).
    rekey_retries: Vec<(Instant, u32)>,
    /// Replaced CHILD_SAs lingering until the time given (see `REKEY_LINGER`).
    retired: Vec<(Instant, ChildSa)>,
    /// When we last heard from the peer (authentic IKE message or ESP traffic).
    last_heard: Option<Instant>,
    half_open_deadline: Option<Instant>,
    /// IKE SA rekey due, and the hard end if rekeying keeps failing.
    ike_rekey_at: Option<Instant>,
    ike_expire_at: Option<Instant>,
    /// How many IKE rekeys led to this SA.
    rekeys: u32,
    /// Rekeyed: the CHILD_SAs moved to the successor; only the DELETE exchange is left.
    retiring: bool,
    /// New IKE SAs this one made, until the endpoint takes them: the successor of a completed
    /// rekey, and the redundant SA of a rekey collision (waiting for its DELETE).
    spawned: VecDeque<Box<Self>>,
    /// The peer's IKE rekey we answered while ours was in flight (§2.8.2), until the nonces
    /// decide which new IKE SA survives.
    ike_collision: Option<ike_rekey::PassiveIkeRekey>,
    /// Retiring without deleting it ourselves: give up waiting for the peer's DELETE then.
    retire_deadline: Option<Instant>,
    /// Reauthentication (`reauth_time`, make-before-break): see `reauth.rs`.
    reauth: reauth::ReauthState,
    /// It reached `Established` at some point.
    was_established: bool,
    /// The child asked for when we initiated, and which try this is (`keyingtries`).
    initial_child: Option<String>,
    /// The packet that made us initiate (a trap's acquire): its selectors go first in the
    /// initial child's TSi/TSr.
    initial_trigger: Option<TriggerFlow>,
    attempt: u32,
    /// A re-establishment probes the peer at least this often with its IKE_SA_INIT (over the
    /// time the normal schedule would take), so a returning peer is found quickly.
    init_retransmit_cap: Option<core::time::Duration>,
    /// INITIAL_CONTACT and `unique`.
    unique: unique::UniqueState,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("name", &self.config.name)
            .field("state", &self.state.name())
            .field("spi_i", &format_args!("{:016x}", self.spi_i))
            .field("spi_r", &format_args!("{:016x}", self.spi_r))
            .finish_non_exhaustive()
    }
}

/// The port IKE floats to when UDP encapsulation is used (RFC 3948, RFC 7296 §2.23).
pub const NAT_T_PORT: u16 = 4500;

impl Session {
    // ---- getters ----

    /// Our SPI: the key the endpoint routes by.
    pub fn local_spi(&self) -> u64 {
        match self.role {
            Role::Initiator => self.spi_i,
            Role::Responder => self.spi_r,
        }
    }

    /// Initiator's and responder's SPIs.
    pub fn spis(&self) -> (u64, u64) {
        (self.spi_i, self.spi_r)
    }

    /// The connection.
    pub fn config(&self) -> &Arc<IkeConfig> {
        &self.config
    }

    /// The state's name (for logs and status).
    pub fn state_name(&self) -> &'static str {
        self.state.name()
    }

    /// The IKE SA's facts once established.
    pub fn info(&self) -> Option<&IkeSaInfo> {
        match &self.state {
            State::Established(e) => Some(&e.info),
            _ => None,
        }
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The addresses in use.
    pub fn addresses(&self) -> (SocketAddr, SocketAddr) {
        (self.local, self.remote)
    }

    /// The installed CHILD_SAs.
    pub fn children(&self) -> &[ChildSa] {
        &self.children
    }

    /// Whether the session is finished (its last event may still be waiting in
    /// [`Session::poll_event`]).
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Whether no exchange of ours is running or queued and the SA is not half-open (only
    /// lifetime and liveness timers may be armed).
    pub fn is_settled(&self) -> bool {
        self.is_closed()
            || (self.outstanding.is_none()
                && self.queue.is_empty()
                && self.half_open_deadline.is_none()
                && self.retired.is_empty()
                && self.spawned.is_empty())
    }

    /// Whether the IKE SA was established at some point (also after it closed).
    pub fn was_established(&self) -> bool {
        self.was_established
    }

    /// The child named when we initiated, if any.
    pub fn initial_child(&self) -> Option<&str> {
        self.initial_child.as_deref()
    }

    /// The packet that made us initiate, if a trap's acquire did.
    pub fn initial_trigger(&self) -> Option<&TriggerFlow> {
        self.initial_trigger.as_ref()
    }

    /// Proposes `trigger` first in the initial child's TSi/TSr (the IKE_AUTH request, so this
    /// takes effect only before IKE_SA_INIT completes).
    pub(crate) fn set_initial_trigger(&mut self, trigger: Option<TriggerFlow>) {
        self.initial_trigger = trigger;
    }

    /// Which try of the connection this is (1 for the first; see `keyingtries`).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Marks the session as try `n` of its connection.
    pub fn set_attempt(&mut self, n: u32) {
        self.attempt = n;
    }

    /// Caps the wait between IKE_SA_INIT retransmissions at `cap` (a re-establishment: find
    /// a returning peer within `cap`). The request is then retried for as long as the normal
    /// schedule would take, `retransmit_tries` is not counted.
    /// An IKE_SA_INIT already sent at `now` is re-armed with the cap.
    pub fn set_init_retransmit_cap(&mut self, now: Instant, cap: Option<core::time::Duration>) {
        self.init_retransmit_cap = cap;
        let retransmit = self.config.retransmit;
        if let (Some(cap), Some(out)) = (cap, self.outstanding.as_mut())
            && matches!(out.procedure, Procedure::IkeSaInit)
            && out.transmissions == 1
        {
            out.deadline = out.deadline.min(now + cap);
            out.give_up = Some(now + total_retransmit_time(&retransmit, retransmit.tries + 1));
        }
    }

    /// Whether it is a responder's half-open SA (counts toward the cookie threshold).
    pub fn is_half_open(&self) -> bool {
        matches!(self.state, State::CreateIkeRemoteIkeAuth(_))
    }

    // ---- poll ----

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        let retransmit = self.outstanding.as_ref().map(|o| o.deadline);
        [retransmit, self.half_open_deadline, self.lifecycle_deadline(), self.ike_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    // ---- commands ----

    /// Negotiates another CHILD_SA of the connection with CREATE_CHILD_SA. On an IKE SA that
    /// is still being set up (IKE_SA_INIT or IKE_AUTH in flight) the request waits and runs
    /// once it is established (as charon queues a `child_create` task); it is dropped if the
    /// IKE SA fails, which its [`Event::Failed`] reports.
    pub fn create_child(&mut self, now: Instant, child: &str) {
        self.create_child_triggered(now, child, None);
    }

    /// [`Session::create_child`] for a packet that hit a trap policy: its selectors
    /// (`trigger`) are proposed first in TSi/TSr (RFC 7296 §2.9), before the configured ones.
    pub fn create_child_triggered(
        &mut self,
        now: Instant,
        child: &str,
        trigger: Option<TriggerFlow>,
    ) {
        self.queue.push_back(Queued::CreateChild(child.to_owned(), trigger));
        self.run_queue(now);
    }

    /// The children whose CREATE_CHILD_SA is queued or running (not yet answered), in order,
    /// plus the initial child while IKE_AUTH has not completed.
    pub fn pending_children(&self) -> Vec<&str> {
        let mut out = Vec::new();
        if !matches!(self.state, State::Established(_) | State::Closed) {
            out.extend(self.initial_child.as_deref());
        }
        if let Some(Outstanding { procedure: Procedure::CreateChild(create), .. }) =
            &self.outstanding
            && create.rekey.is_none()
        {
            out.push(create.name());
        }
        out.extend(self.queue.iter().filter_map(|q| match q {
            Queued::CreateChild(name, _) => Some(name.as_str()),
            _ => None,
        }));
        out
    }

    /// Deletes the CHILD_SA with our inbound SPI `spi`.
    pub fn delete_child(&mut self, now: Instant, spi: u32) {
        self.queue.push_back(Queued::DeleteChild(spi));
        self.run_queue(now);
    }

    /// Deletes the IKE SA (and with it every CHILD_SA). A session that is not established yet
    /// is dropped at once.
    pub fn close(&mut self, now: Instant) {
        if matches!(self.state, State::Established(_)) {
            self.queue.clear();
            self.queue.push_back(Queued::DeleteIke);
            if self.outstanding.is_none() {
                self.run_queue(now);
            }
        } else if !self.is_closed() {
            self.finish(CloseReason::LocalDelete);
        }
    }

    /// Sends an empty INFORMATIONAL request (dead peer detection).
    pub fn liveness_check(&mut self, now: Instant) {
        self.queue.push_back(Queued::Liveness);
        self.run_queue(now);
    }

    // ---- handle ----

    /// Processes an IKE message routed to this SA (the non-ESP marker already removed).
    /// `local` and `remote` are the addresses it was received on and from.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) {
        let Ok(packet) = crate::wire::ikev2::HeaderPacket::new_checked(bytes) else { return };
        let Ok(header) = HeaderRepr::parse(&packet) else { return };
        if self.is_closed() {
            return;
        }
        if header.flags.response() {
            self.handle_response(now, local, remote, header, bytes);
        } else {
            self.handle_request(now, local, remote, header, bytes);
        }
    }

    /// Runs timers whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.half_open_deadline.is_some_and(|d| d <= now) {
            self.half_open_deadline = None;
            if self.is_half_open() {
                self.finish(CloseReason::HalfOpenTimeout);
                return;
            }
        }
        self.run_retransmit_timer(now);
        if !self.is_closed() {
            self.run_lifecycle_timers(now);
        }
        if !self.is_closed() {
            self.run_ike_timers(now);
        }
    }

    fn run_retransmit_timer(&mut self, now: Instant) {
        let cap = self.init_retransmit_cap;
        let Some(out) = self.outstanding.as_mut() else { return };
        if out.deadline > now {
            return;
        }
        let retransmit = self.config.retransmit;
        let gave_up = out.give_up.is_some_and(|g| g <= now);
        // A capped IKE_SA_INIT is retried until its `give_up`, however many transmissions.
        let cap = cap.filter(|_| matches!(out.procedure, Procedure::IkeSaInit));
        if (cap.is_none() && out.transmissions > retransmit.tries) || gave_up {
            let procedure = match &out.procedure {
                Procedure::IkeSaInit => "IKE_SA_INIT",
                Procedure::IkeAuth => "IKE_AUTH",
                Procedure::CreateChild(_) | Procedure::RekeyIke(_) => "CREATE_CHILD_SA",
                Procedure::DeleteChild(_) | Procedure::DeleteIke | Procedure::Liveness => {
                    "INFORMATIONAL"
                }
            };
            let deleting = matches!(out.procedure, Procedure::DeleteIke);
            let tries = out.transmissions;
            self.outstanding = None;
            if deleting {
                self.finish(CloseReason::LocalDelete);
            } else if gave_up && cap.is_none() {
                self.fail_ike(
                    FailureKind::Timeout,
                    format!(
                        "dead peer: {} did not answer our liveness check within dpd_timeout {} s \
                         ({tries} transmissions)",
                        self.remote,
                        self.config.lifetime.dpd_timeout.as_secs()
                    ),
                );
            } else {
                self.fail_ike(
                    FailureKind::Timeout,
                    format!(
                        "peer {} did not answer our {procedure} request ({tries} transmissions over {:.0} s): \
                         is it running, is UDP 500/4500 open, is the address right?",
                        self.remote,
                        total_retransmit_time(&retransmit, if cap.is_some() { retransmit.tries + 1 } else { tries })
                            .as_secs_f64()
                    ),
                );
            }
            return;
        }
        let timeout = retransmit.timeout(out.transmissions);
        out.deadline = now + cap.map_or(timeout, |c| timeout.min(c));
        if let Some(g) = out.give_up {
            out.deadline = out.deadline.min(g);
        }
        out.transmissions += 1;
        let bytes = out.bytes.clone();
        self.send(bytes);
    }

    // ---- internals shared by the procedures ----

    #[allow(clippy::too_many_arguments)]
    fn new(
        provider: CryptoProvider,
        config: Arc<IkeConfig>,
        role: Role,
        spi_i: u64,
        spi_r: u64,
        local: SocketAddr,
        remote: SocketAddr,
        state: State,
    ) -> Self {
        Self {
            provider,
            config,
            candidates: Vec::new(),
            role,
            spi_i,
            spi_r,
            local,
            remote,
            encap: false,
            nat_local: false,
            nat_remote: false,
            state,
            crypto: None,
            suite: None,
            unix_offset: None,
            next_request_id: 0,
            outstanding: None,
            queue: VecDeque::new(),
            expected_request_id: 0,
            last_response: None,
            children: Vec::new(),
            pending_activation: Vec::new(),
            rekey_retries: Vec::new(),
            retired: Vec::new(),
            last_heard: None,
            half_open_deadline: None,
            ike_rekey_at: None,
            ike_expire_at: None,
            rekeys: 0,
            retiring: false,
            spawned: VecDeque::new(),
            ike_collision: None,
            retire_deadline: None,
            reauth: reauth::ReauthState::default(),
            was_established: false,
            initial_child: None,
            initial_trigger: None,
            attempt: 1,
            init_retransmit_cap: None,
            unique: unique::UniqueState::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Tells the session the wall-clock time (seconds since the Unix epoch) at `now`, for
    /// certificate validity checks.
    pub fn set_unix_time(&mut self, now: Instant, unix: u64) {
        self.unix_offset = Some((now, unix));
    }

    fn unix_time(&self, now: Instant) -> u64 {
        self.unix_offset.map_or(0, |(at, unix)| {
            unix.saturating_add(now.saturating_duration_since(at).as_secs())
        })
    }

    fn random<const N: usize>(&self) -> [u8; N] {
        let mut out = [0u8; N];
        // A failing RNG leaves zeros; the KE and nonces then fail loudly further on.
        let _ = self.provider.secure_random.fill(&mut out);
        out
    }

    fn random_nonce(&self) -> Vec<u8> {
        self.random::<32>().to_vec()
    }

    /// A uniformly drawn number in `0..=max` (jitter for timers and limits).
    fn random_up_to(&self, max: u64) -> u64 {
        match max.checked_add(1) {
            Some(n) => u64::from_be_bytes(self.random::<8>()) % n,
            None => u64::from_be_bytes(self.random::<8>()),
        }
    }

    /// A fresh nonzero IKE SPI.
    fn new_ike_spi(provider: &CryptoProvider) -> u64 {
        let mut spi = [0u8; 8];
        let _ = provider.secure_random.fill(&mut spi);
        u64::from_be_bytes(spi).max(1)
    }

    fn header(&self, exchange: ExchangeType, message_id: u32, response: bool) -> HeaderRepr {
        let mut flags = Flags(0);
        if self.role == Role::Initiator {
            flags = flags.with(Flags::INITIATOR);
        }
        if response {
            flags = flags.with(Flags::RESPONSE);
        }
        HeaderRepr {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            next_payload: PayloadType::NONE,
            minor_version: 0,
            exchange_type: exchange,
            flags,
            message_id,
            payload_len: 0,
        }
    }

    fn send(&mut self, payload: Vec<u8>) {
        self.transmits.push_back(Transmit {
            local: self.local,
            remote: self.remote,
            non_esp_marker: self.uses_marker(),
            payload,
        });
    }

    /// IKE on the NAT-T port carries the non-ESP marker; IKE_SA_INIT on 500 never does.
    fn uses_marker(&self) -> bool {
        self.local.port() == NAT_T_PORT || (self.encap && self.local.port() != 500)
    }

    /// Sends a new request and arms its retransmission.
    fn send_request(
        &mut self,
        now: Instant,
        message_id: u32,
        bytes: Vec<u8>,
        procedure: Procedure,
    ) {
        let retransmit = self.config.retransmit;
        let mut deadline = now + retransmit.timeout(0);
        let mut give_up = None;
        if let (Procedure::IkeSaInit, Some(cap)) = (&procedure, self.init_retransmit_cap) {
            // Probe more often, for as long as the normal schedule.
            deadline = now + retransmit.timeout(0).min(cap);
            give_up = Some(now + total_retransmit_time(&retransmit, retransmit.tries + 1));
        }
        self.outstanding = Some(Outstanding {
            message_id,
            bytes: bytes.clone(),
            transmissions: 1,
            deadline,
            give_up,
            procedure,
        });
        self.send(bytes);
    }

    /// Encrypts and sends a request of an established (or authenticating) SA.
    fn send_protected_request(
        &mut self,
        now: Instant,
        exchange: ExchangeType,
        payloads: &[Payload],
        procedure: Procedure,
    ) {
        let id = self.next_request_id;
        let header = self.header(exchange, id, false);
        let Some(crypto) = self.crypto.as_mut() else { return };
        match crypto.encrypt(header, payloads) {
            Ok(bytes) => {
                self.next_request_id = id.wrapping_add(1);
                self.send_request(now, id, bytes, procedure);
            }
            Err(e) => {
                self.fail_ike(FailureKind::Local, format!("could not encrypt a request: {e}"))
            }
        }
    }

    /// Encrypts and sends the response to the peer's current request, and caches it for
    /// retransmitted requests.
    fn send_protected_response(
        &mut self,
        exchange: ExchangeType,
        message_id: u32,
        payloads: &[Payload],
    ) {
        let header = self.header(exchange, message_id, true);
        let Some(crypto) = self.crypto.as_mut() else { return };
        if let Ok(bytes) = crypto.encrypt(header, payloads) {
            self.last_response = Some((message_id, bytes.clone()));
            self.send(bytes);
        }
    }

    /// Records a failure that ends the IKE SA.
    fn fail_ike(&mut self, kind: FailureKind, message: String) {
        let failure = Failure { what: self.config.name.clone(), kind, message };
        self.events.push_back(Event::Failed(failure.clone()));
        let reason = if kind == FailureKind::Timeout {
            CloseReason::Timeout
        } else {
            CloseReason::Failed(failure)
        };
        self.finish(reason);
    }

    /// Records a failure that leaves the IKE SA as it is (a refused IKE rekey).
    fn report_failure(&mut self, kind: FailureKind, message: String) {
        let what = self.config.name.clone();
        self.events.push_back(Event::Failed(Failure { what, kind, message }));
    }

    /// Records a failure of one CHILD_SA negotiation (the IKE SA lives on).
    fn fail_child(&mut self, child: &str, kind: FailureKind, message: String) {
        self.events.push_back(Event::Failed(Failure {
            what: format!("{}/{child}", self.config.name),
            kind,
            message,
        }));
    }

    /// Ends the session: every CHILD_SA goes down, then `Closed`.
    fn finish(&mut self, reason: CloseReason) {
        let reason = self.retired_reason(reason);
        self.release_retired(|_| true);
        for child in self.children.drain(..) {
            self.events.push_back(Event::ChildSaDown {
                child: child.name.clone(),
                inbound_spi: child.inbound_spi,
                outbound_spi: child.outbound_spi,
                reason: DownReason::IkeClosed,
            });
        }
        self.outstanding = None;
        self.queue.clear();
        self.pending_activation.clear();
        self.rekey_retries.clear();
        self.half_open_deadline = None;
        self.ike_collision = None;
        self.retire_deadline = None;
        self.state = State::Closed;
        self.events.push_back(Event::Closed(reason));
    }

    /// Starts the next queued procedure if none is running and the SA is established.
    fn run_queue(&mut self, now: Instant) {
        if self.outstanding.is_some() || !matches!(self.state, State::Established(_)) {
            return;
        }
        while self.outstanding.is_none() {
            let Some(next) = self.queue.pop_front() else { return };
            match next {
                Queued::CreateChild(name, trigger) => {
                    self.start_create_child(now, &name, trigger.as_ref())
                }
                Queued::RekeyChild(spi) => self.start_rekey_child(now, spi),
                Queued::DeleteChild(spi) => self.start_delete_child(now, spi, false),
                Queued::DeleteGone(spi) => self.start_delete_child(now, spi, true),
                Queued::DeleteIke => self.start_delete_ike(now),
                Queued::Liveness => self.start_liveness(now),
                Queued::RekeyIke => self.start_rekey_ike(now),
            }
            if self.is_closed() {
                return;
            }
        }
    }

    fn handle_response(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        header: HeaderRepr,
        bytes: &[u8],
    ) {
        let Some(out) = self.outstanding.as_ref() else { return };
        if out.message_id != header.message_id {
            // A late answer to an earlier request, or forged: ignore (RFC 7296 §2.3).
            return;
        }
        if header.exchange_type == ExchangeType::IKE_SA_INIT {
            if matches!(out.procedure, Procedure::IkeSaInit) {
                self.process_ike_sa_init_response(now, local, remote, header, bytes);
            }
            return;
        }
        let Some(crypto) = self.crypto.as_ref() else { return };
        let payloads = match crypto.decrypt(bytes) {
            Decoded::Ok { payloads, .. } => payloads,
            // A response we cannot read is dropped; the retransmission timer goes on.
            Decoded::Protected { .. } | Decoded::Unprotected(_) => return,
        };
        self.last_heard = Some(now);
        let Some(out) = self.outstanding.take() else { return };
        // An authentic response from a new address: the peer's NAT mapping changed (RFC 7296
        // §2.23, without MOBIKE only for the NAT case).
        if self.nat_remote && remote != self.remote {
            self.remote = remote;
        }
        match out.procedure {
            Procedure::IkeSaInit => {}
            Procedure::IkeAuth => self.process_ike_auth_response(now, &payloads),
            Procedure::CreateChild(create) => {
                self.process_create_child_response(now, *create, &payloads)
            }
            Procedure::DeleteChild(spi) => self.process_delete_child_response(now, spi, &payloads),
            Procedure::DeleteIke => self.finish(CloseReason::LocalDelete),
            Procedure::Liveness => {}
            Procedure::RekeyIke(rekey) => self.process_ike_rekey_response(now, *rekey, &payloads),
        }
        self.run_queue(now);
    }

    fn handle_request(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        header: HeaderRepr,
        bytes: &[u8],
    ) {
        if header.exchange_type == ExchangeType::IKE_SA_INIT {
            // A retransmitted IKE_SA_INIT request: answer from the cache.
            if header.message_id == 0
                && let Some((0, cached)) = &self.last_response
            {
                let cached = cached.clone();
                self.send(cached);
            }
            return;
        }
        if header.message_id.wrapping_add(1) == self.expected_request_id {
            if let Some((id, cached)) = &self.last_response
                && *id == header.message_id
            {
                // RFC 7296 §2.1: retransmit the response, do not process again.
                let cached = cached.clone();
                self.send(cached);
            }
            return;
        }
        if header.message_id != self.expected_request_id {
            return;
        }
        let Some(crypto) = self.crypto.as_ref() else { return };
        let payloads = match crypto.decrypt(bytes) {
            Decoded::Ok { payloads, .. } => payloads,
            Decoded::Protected { .. } => {
                self.expected_request_id = header.message_id.wrapping_add(1);
                self.send_protected_response(
                    header.exchange_type,
                    header.message_id,
                    &[Payload::Notify(Notify::new(NotifyType::INVALID_SYNTAX, Vec::new()))],
                );
                return;
            }
            Decoded::Unprotected(_) => return,
        };
        self.expected_request_id = header.message_id.wrapping_add(1);
        self.last_heard = Some(now);
        if let Some(ty) = (Message { header, payloads: payloads.clone() }).unsupported_critical() {
            self.send_protected_response(
                header.exchange_type,
                header.message_id,
                &[Payload::Notify(Notify::new(
                    NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD,
                    vec![ty.0],
                ))],
            );
            return;
        }
        // An authentic request on new addresses: the initiator floated to port 4500, or a NAT
        // mapping changed (RFC 7296 §2.23).
        if (self.encap || self.nat_remote) && (remote != self.remote || local != self.local) {
            self.remote = remote;
            self.local = local;
        }
        match header.exchange_type {
            ExchangeType::IKE_AUTH => self.process_ike_auth_request(now, header, &payloads),
            ExchangeType::CREATE_CHILD_SA => {
                self.process_create_child_request(now, header, &payloads)
            }
            ExchangeType::INFORMATIONAL => {
                self.process_informational_request(now, header, &payloads)
            }
            _ => {
                // An exchange we do not implement (IKE_INTERMEDIATE, …): refuse it.
                self.send_protected_response(
                    header.exchange_type,
                    header.message_id,
                    &[Payload::Notify(Notify::new(NotifyType::INVALID_SYNTAX, Vec::new()))],
                );
            }
        }
        self.run_queue(now);
    }

    fn established(&self) -> Option<&Established> {
        match &self.state {
            State::Established(e) => Some(e),
            _ => None,
        }
    }

    fn child_config(&self, name: &str) -> Option<ChildConfig> {
        self.config.child(name).cloned()
    }
}

/// Total time a request is retried before giving up, for messages.
fn total_retransmit_time(r: &Retransmit, transmissions: u32) -> core::time::Duration {
    (0..transmissions).map(|n| r.timeout(n)).sum()
}

/// The first notify of type `ty`.
fn notify(payloads: &[Payload], ty: NotifyType) -> Option<&Notify> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.ty == ty => Some(n),
        _ => None,
    })
}

/// The first error notify (types below 16384).
fn error_notify(payloads: &[Payload]) -> Option<&Notify> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.ty.is_error() => Some(n),
        _ => None,
    })
}

/// A KE secret with its group, kept while an exchange is running.
struct KeState {
    secret: Box<dyn KeSecret>,
}

impl fmt::Debug for KeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeState({})", self.secret.id())
    }
}
