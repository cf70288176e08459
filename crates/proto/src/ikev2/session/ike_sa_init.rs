//! IKE_SA_INIT (RFC 7296 §1.2): proposals, key exchange, nonces, NAT detection (§2.23),
//! cookies (§2.6) and INVALID_KE_PAYLOAD retries (§1.2).

use core::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use super::{Event, FailureKind, KeState, Procedure, Role, Session, State, error_notify, notify};
use crate::crypto::{CryptoProvider, PrfProvider};
use crate::ikev2::auth::hash_algorithm;
use crate::ikev2::config::{IkeConfig, RemoteAuth};
use crate::ikev2::proposal::{self, ProposalSpec, Suite};
use crate::ikev2::protect::SaCrypto;
use crate::wire::KeId;
use crate::wire::ikev2::{
    CertEncoding, ExchangeType, HeaderRepr, Ke, Message, Nonce, Notify, NotifyType, Payload, Sa,
};

/// The initiator, waiting for the IKE_SA_INIT response.
pub(super) struct LocalIkeInit {
    ke: KeState,
    nonce: Vec<u8>,
    cookie: Option<Vec<u8>>,
    /// CHILD_SA to create in IKE_AUTH.
    child: Option<String>,
    /// INVALID_KE_PAYLOAD and COOKIE round trips so far (bounded).
    restarts: u32,
}

/// What IKE_AUTH needs from IKE_SA_INIT.
pub(super) struct InitResult {
    /// Our IKE_SA_INIT message (request or response), signed in our AUTH.
    pub our_message: Vec<u8>,
    /// The peer's IKE_SA_INIT message, signed in its AUTH.
    pub peer_message: Vec<u8>,
    /// Initiator's nonce.
    pub ni: Vec<u8>,
    /// Responder's nonce.
    pub nr: Vec<u8>,
    /// The peer's SIGNATURE_HASH_ALGORITHMS.
    pub peer_hashes: Vec<u16>,
}

/// The hash algorithms we announce (RFC 7427 §4).
const OUR_HASHES: [u16; 4] = [
    hash_algorithm::SHA2_256,
    hash_algorithm::SHA2_384,
    hash_algorithm::SHA2_512,
    hash_algorithm::IDENTITY,
];

fn hashes_data() -> Vec<u8> {
    OUR_HASHES.iter().flat_map(|h| h.to_be_bytes()).collect()
}

fn parse_hashes(data: &[u8]) -> Vec<u16> {
    data.chunks_exact(2)
        .map(|c| {
            u16::from_be_bytes([c.first().copied().unwrap_or(0), c.get(1).copied().unwrap_or(0)])
        })
        .collect()
}

/// `SHA-1(SPIi | SPIr | IP | Port)` (RFC 7296 §2.23).
pub(super) fn nat_hash(prf: &dyn PrfProvider, spi_i: u64, spi_r: u64, addr: SocketAddr) -> Vec<u8> {
    let mut data = Vec::with_capacity(16 + 16 + 2);
    data.extend_from_slice(&spi_i.to_be_bytes());
    data.extend_from_slice(&spi_r.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(a) => data.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => data.extend_from_slice(&a.octets()),
    }
    data.extend_from_slice(&addr.port().to_be_bytes());
    prf.sha1(&data).map(|h| h.to_vec()).unwrap_or_default()
}

/// The first KE method of our proposals (what the initiator guesses).
fn first_ke(proposals: &[ProposalSpec]) -> Option<KeId> {
    proposals.iter().flat_map(|p| p.ke.iter()).copied().find(|k| *k != KeId::NONE)
}

impl Session {
    /// Starts an IKE SA as initiator toward `remote`, creating `child` (if any) in IKE_AUTH.
    pub fn initiate(
        now: Instant,
        provider: CryptoProvider,
        config: Arc<IkeConfig>,
        child: Option<&str>,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Self {
        let spi_i = Self::new_ike_spi(&provider);
        let mut session =
            Self::new(provider, config, Role::Initiator, spi_i, 0, local, remote, State::Closed);
        session.initial_child = child.map(str::to_owned);
        let Some(group) = first_ke(&session.config.proposals) else {
            session
                .fail_ike(FailureKind::Local, "no key exchange method in the IKE proposals".into());
            return session;
        };
        let Some(ke) = session.new_ke(group) else {
            session.fail_ike(
                FailureKind::Local,
                format!("key exchange method {group} is not implemented by the crypto provider"),
            );
            return session;
        };
        session.state = State::CreateIkeLocalIkeInit(Box::new(LocalIkeInit {
            ke,
            nonce: session.random_nonce(),
            cookie: None,
            child: child.map(str::to_owned),
            restarts: 0,
        }));
        session.send_ike_sa_init_request(now);
        session
    }

    pub(super) fn new_ke(&self, group: KeId) -> Option<KeState> {
        let g = self.provider.ke.group(group)?;
        g.generate(self.provider.secure_random).ok().map(|secret| KeState { secret })
    }

    fn nat_notifies(&self, spi_r: u64) -> [Payload; 2] {
        let prf = self.provider.prf;
        let source = if self.config.encap {
            // strongSwan's way to force UDP encapsulation: a source hash that cannot match.
            self.random::<20>().to_vec()
        } else {
            nat_hash(prf, self.spi_i, spi_r, self.local)
        };
        [
            Payload::Notify(Notify::new(NotifyType::NAT_DETECTION_SOURCE_IP, source)),
            Payload::Notify(Notify::new(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                nat_hash(prf, self.spi_i, spi_r, self.remote),
            )),
        ]
    }

    fn send_ike_sa_init_request(&mut self, now: Instant) {
        let State::CreateIkeLocalIkeInit(init) = &self.state else { return };
        let mut payloads = Vec::new();
        if let Some(cookie) = &init.cookie {
            payloads.push(Payload::Notify(Notify::new(NotifyType::COOKIE, cookie.clone())));
        }
        let proposals = self
            .config
            .proposals
            .iter()
            .enumerate()
            .map(|(i, p)| p.to_wire(u8::try_from(i + 1).unwrap_or(u8::MAX), Vec::new()))
            .collect();
        payloads.push(Payload::Sa(Sa { proposals }));
        payloads.push(Payload::Ke(Ke {
            group: init.ke.secret.id(),
            data: init.ke.secret.public_value().to_vec(),
        }));
        payloads.push(Payload::Nonce(Nonce { data: init.nonce.clone() }));
        payloads.extend(self.nat_notifies(0));
        payloads.push(Payload::Notify(Notify::new(
            NotifyType::SIGNATURE_HASH_ALGORITHMS,
            hashes_data(),
        )));
        let msg = Message { header: self.header(ExchangeType::IKE_SA_INIT, 0, false), payloads };
        match msg.emit() {
            Ok(bytes) => {
                self.next_request_id = 1;
                self.send_request(now, 0, bytes, Procedure::IkeSaInit);
            }
            Err(_) => self.fail_ike(FailureKind::Local, "could not encode IKE_SA_INIT".into()),
        }
    }

    pub(super) fn process_ike_sa_init_response(
        &mut self,
        now: Instant,
        _local: SocketAddr,
        remote: SocketAddr,
        header: HeaderRepr,
        bytes: &[u8],
    ) {
        if remote != self.remote {
            return;
        }
        let Ok(msg) = Message::parse(bytes) else { return };
        let payloads = msg.payloads;
        let State::CreateIkeLocalIkeInit(init) = &mut self.state else { return };
        // COOKIE (§2.6): resend with the cookie first.
        if let Some(cookie) = notify(&payloads, NotifyType::COOKIE) {
            if init.restarts < 5 && !cookie.data.is_empty() && cookie.data.len() <= 64 {
                init.cookie = Some(cookie.data.clone());
                init.restarts += 1;
                self.outstanding = None;
                self.send_ike_sa_init_request(now);
            }
            return;
        }
        // INVALID_KE_PAYLOAD (§1.2): retry with the group the responder wants, if we offered it.
        if let Some(n) = notify(&payloads, NotifyType::INVALID_KE_PAYLOAD) {
            let wanted =
                <[u8; 2]>::try_from(n.data.as_slice()).map(|b| KeId(u16::from_be_bytes(b)));
            let offered =
                wanted.is_ok_and(|g| self.config.proposals.iter().any(|p| p.ke.contains(&g)));
            match wanted {
                Ok(group) if offered && init.restarts < 5 && group != init.ke.secret.id() => {
                    let Some(ke) = self.new_ke(group) else {
                        self.fail_ike(
                            FailureKind::Local,
                            format!("peer asks for key exchange method {group}, which the crypto provider lacks"),
                        );
                        return;
                    };
                    if let State::CreateIkeLocalIkeInit(init) = &mut self.state {
                        init.ke = ke;
                        init.restarts += 1;
                    }
                    self.outstanding = None;
                    self.send_ike_sa_init_request(now);
                }
                _ => {
                    let group = wanted.map_or_else(|_| "(malformed)".to_owned(), |g| g.to_string());
                    self.fail_ike(
                        FailureKind::Proposal,
                        format!(
                            "peer requires key exchange method {group}, which our IKE proposals [{}] do not offer",
                            proposal_list(&self.config.proposals)
                        ),
                    );
                }
            }
            return;
        }
        if let Some(n) = error_notify(&payloads) {
            let (kind, hint) = if n.ty == NotifyType::NO_PROPOSAL_CHOSEN {
                (
                    FailureKind::Proposal,
                    format!(" (we offered [{}])", proposal_list(&self.config.proposals)),
                )
            } else {
                (FailureKind::PeerError, String::new())
            };
            self.fail_ike(kind, format!("peer answered IKE_SA_INIT with {}{hint}", n.ty));
            return;
        }
        if header.spi_r == 0 {
            return;
        }
        let (Some(sa), Some(ke), Some(nonce)) =
            (first!(payloads, Sa), first!(payloads, Ke), first!(payloads, Nonce))
        else {
            self.fail_ike(
                FailureKind::Protocol,
                "IKE_SA_INIT response lacks SA, KE or Nonce".into(),
            );
            return;
        };
        let [chosen] = sa.proposals.as_slice() else {
            self.fail_ike(
                FailureKind::Protocol,
                "IKE_SA_INIT response must carry exactly one proposal".into(),
            );
            return;
        };
        let suite = match proposal::check_response(&self.config.proposals, chosen) {
            Ok(sel) => match sel.suite {
                Suite::Ike(s) => s,
                _ => {
                    self.fail_ike(
                        FailureKind::Protocol,
                        "peer answered with a non-IKE proposal".into(),
                    );
                    return;
                }
            },
            Err(e) => {
                self.fail_ike(
                    FailureKind::Proposal,
                    format!("peer's IKE proposal is invalid: {e}"),
                );
                return;
            }
        };
        let State::CreateIkeLocalIkeInit(init) = &self.state else { return };
        if ke.group != suite.ke || ke.group != init.ke.secret.id() {
            self.fail_ike(
                FailureKind::Protocol,
                format!(
                    "peer's KE payload uses {} but the chosen proposal says {}",
                    ke.group, suite.ke
                ),
            );
            return;
        }
        if nonce.data.len() < 16 || nonce.data.len() > 256 {
            self.fail_ike(FailureKind::Protocol, "peer's nonce length is outside 16..256".into());
            return;
        }
        let shared = match init.ke.secret.agree(&ke.data) {
            Ok(s) => s,
            Err(e) => {
                self.fail_ike(FailureKind::Protocol, format!("peer's KE value is invalid: {e}"));
                return;
            }
        };
        self.spi_r = header.spi_r;
        let ni = init.nonce.clone();
        let child = init.child.clone();
        let nr = nonce.data.clone();
        let crypto = match SaCrypto::derive(
            &self.provider,
            suite,
            shared.expose(),
            &ni,
            &nr,
            self.spi_i,
            self.spi_r,
            true,
        ) {
            Ok(c) => c,
            Err(e) => {
                self.fail_ike(FailureKind::Local, format!("IKE key derivation failed: {e}"));
                return;
            }
        };
        self.crypto = Some(crypto);
        self.suite = Some(suite);
        self.detect_nat(&payloads, self.spi_r);
        let our_message = self.outstanding.take().map(|o| o.bytes).unwrap_or_default();
        let result = InitResult {
            our_message,
            peer_message: bytes.to_vec(),
            ni,
            nr,
            peer_hashes: notify(&payloads, NotifyType::SIGNATURE_HASH_ALGORITHMS)
                .map(|n| parse_hashes(&n.data))
                .unwrap_or_default(),
        };
        self.start_ike_auth(now, result, child);
    }

    /// Compares the peer's NAT_DETECTION_* hashes with ours and floats to port 4500 if a NAT
    /// is seen on either side or `encap` is configured (RFC 7296 §2.23, RFC 3948).
    /// `spi_r` is the responder SPI in the header of the message that carried the hashes: 0 in
    /// the IKE_SA_INIT request.
    pub(super) fn detect_nat(&mut self, payloads: &[Payload], spi_r: u64) {
        let prf = self.provider.prf;
        let sources: Vec<&Notify> = payloads
            .iter()
            .filter_map(|p| match p {
                Payload::Notify(n) if n.ty == NotifyType::NAT_DETECTION_SOURCE_IP => Some(n),
                _ => None,
            })
            .collect();
        let destination = notify(payloads, NotifyType::NAT_DETECTION_DESTINATION_IP);
        if sources.is_empty() || destination.is_none() {
            // The peer does not do NAT-T: no floating, unless forced.
            if self.config.encap {
                self.float();
            }
            return;
        }
        let remote_hash = nat_hash(prf, self.spi_i, spi_r, self.remote);
        self.nat_remote = !sources.iter().any(|n| n.data == remote_hash);
        let local_hash = nat_hash(prf, self.spi_i, spi_r, self.local);
        self.nat_local = destination.is_some_and(|n| n.data != local_hash);
        if self.nat_local || self.nat_remote || self.config.encap {
            self.float();
        }
    }

    /// Moves to the UDP-encapsulation port.
    fn float(&mut self) {
        self.encap = true;
        if self.role == Role::Initiator {
            if self.local.port() == 500 {
                self.local.set_port(super::NAT_T_PORT);
            }
            if self.remote.port() == 500 {
                self.remote.set_port(super::NAT_T_PORT);
            }
        }
    }

    /// The responder's half of IKE_SA_INIT. Called by the endpoint for a request that passed
    /// the cookie check; `candidates` are the connections whose addresses match, in order.
    /// Returns the session (which may already be closed, with its error response queued).
    #[allow(clippy::too_many_arguments)]
    pub fn accept(
        now: Instant,
        provider: CryptoProvider,
        candidates: Vec<Arc<IkeConfig>>,
        half_open_timeout: core::time::Duration,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) -> Option<Self> {
        let msg = Message::parse(bytes).ok()?;
        let header = msg.header;
        if header.flags.response() || header.message_id != 0 || header.spi_r != 0 {
            return None;
        }
        let first = candidates.first()?.clone();
        let mut spi = [0u8; 8];
        let _ = provider.secure_random.fill(&mut spi);
        let spi_r = u64::from_be_bytes(spi).max(1);
        let mut session = Self::new(
            provider,
            first,
            Role::Responder,
            header.spi_i,
            spi_r,
            local,
            remote,
            State::Closed,
        );
        session.expected_request_id = 1;
        let payloads = msg.payloads;
        let error = |s: &mut Self, ty: NotifyType, data: Vec<u8>| {
            let header = HeaderRepr { spi_r: 0, ..s.header(ExchangeType::IKE_SA_INIT, 0, true) };
            let msg = Message { header, payloads: vec![Payload::Notify(Notify::new(ty, data))] };
            if let Ok(bytes) = msg.emit() {
                s.send(bytes);
            }
        };
        if let Some(ty) = (Message { header, payloads: payloads.clone() }).unsupported_critical() {
            error(&mut session, NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD, vec![ty.0]);
            session.state = State::Closed;
            return Some(session);
        }
        let (Some(sa), Some(ke), Some(nonce)) =
            (first!(payloads, Sa), first!(payloads, Ke), first!(payloads, Nonce))
        else {
            error(&mut session, NotifyType::INVALID_SYNTAX, Vec::new());
            session.events.push_back(Event::Failed(super::Failure {
                what: session.config.name.clone(),
                kind: FailureKind::Protocol,
                message: format!("IKE_SA_INIT from {remote} lacks SA, KE or Nonce"),
            }));
            return Some(session);
        };
        if nonce.data.len() < 16 || nonce.data.len() > 256 {
            error(&mut session, NotifyType::INVALID_SYNTAX, Vec::new());
            return Some(session);
        }
        // Pick the first candidate whose proposals accept the offer.
        let mut chosen = None;
        let mut first_miss = None;
        for cand in &candidates {
            match proposal::select(&sa.proposals, &cand.proposals, cand.preference) {
                Ok(sel) => {
                    if let Suite::Ike(suite) = sel.suite {
                        chosen = Some((cand.clone(), sel, suite));
                        break;
                    }
                }
                Err(e) => {
                    if first_miss.is_none() {
                        first_miss = Some((cand.name.clone(), e));
                    }
                }
            }
        }
        let Some((config, selected, suite)) = chosen else {
            error(&mut session, NotifyType::NO_PROPOSAL_CHOSEN, Vec::new());
            let (name, message) = first_miss.map_or_else(
                || (session.config.name.clone(), "no proposal chosen".to_owned()),
                |(n, e)| (n, format!("IKE {e}")),
            );
            session.events.push_back(Event::Failed(super::Failure {
                what: name,
                kind: FailureKind::Proposal,
                message: format!("IKE_SA_INIT from {remote}: {message}"),
            }));
            return Some(session);
        };
        session.config = config;
        session.candidates = candidates
            .into_iter()
            .filter(|c| proposal::select(&sa.proposals, &c.proposals, c.preference).is_ok())
            .collect();
        if ke.group != suite.ke {
            // §1.2: tell the initiator which group we want; keep no state.
            error(&mut session, NotifyType::INVALID_KE_PAYLOAD, suite.ke.0.to_be_bytes().to_vec());
            return Some(session);
        }
        let Some(our_ke) = session.new_ke(suite.ke) else { return Some(session) };
        let Ok(shared) = our_ke.secret.agree(&ke.data) else {
            error(&mut session, NotifyType::INVALID_SYNTAX, Vec::new());
            return Some(session);
        };
        let nr = session.random_nonce();
        let ni = nonce.data.clone();
        let Ok(crypto) = SaCrypto::derive(
            &session.provider,
            suite,
            shared.expose(),
            &ni,
            &nr,
            session.spi_i,
            session.spi_r,
            false,
        ) else {
            error(&mut session, NotifyType::NO_PROPOSAL_CHOSEN, Vec::new());
            return Some(session);
        };
        session.crypto = Some(crypto);
        session.suite = Some(suite);
        session.detect_nat(&payloads, 0);
        let mut out = vec![
            Payload::Sa(Sa { proposals: vec![selected.to_wire(Vec::new())] }),
            Payload::Ke(Ke { group: suite.ke, data: our_ke.secret.public_value().to_vec() }),
            Payload::Nonce(Nonce { data: nr.clone() }),
        ];
        out.extend(session.nat_notifies(session.spi_r));
        let certreq = session.candidates.iter().find_map(|c| match &c.remote_auth {
            RemoteAuth::Signature(v) if c.send_certreq => Some(v.certreq()),
            _ => None,
        });
        if let Some(data) = certreq {
            out.push(Payload::CertReq(crate::wire::ikev2::Cert {
                encoding: CertEncoding::X509_CERTIFICATE_SIGNATURE,
                data,
            }));
        }
        out.push(Payload::Notify(Notify::new(
            NotifyType::SIGNATURE_HASH_ALGORITHMS,
            hashes_data(),
        )));
        let response =
            Message { header: session.header(ExchangeType::IKE_SA_INIT, 0, true), payloads: out };
        let Ok(response_bytes) = response.emit() else { return Some(session) };
        session.last_response = Some((0, response_bytes.clone()));
        session.send(response_bytes.clone());
        session.half_open_deadline = Some(now + half_open_timeout);
        session.state = State::CreateIkeRemoteIkeAuth(Box::new(super::ike_auth::RemoteIkeAuth {
            init: InitResult {
                our_message: response_bytes,
                peer_message: bytes.to_vec(),
                ni,
                nr,
                peer_hashes: notify(&payloads, NotifyType::SIGNATURE_HASH_ALGORITHMS)
                    .map(|n| parse_hashes(&n.data))
                    .unwrap_or_default(),
            },
        }));
        Some(session)
    }
}

/// A proposal list in swanctl keywords, comma separated.
pub(super) fn proposal_list(list: &[ProposalSpec]) -> String {
    list.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}
