//! CHILD_SA negotiation (RFC 7296 §1.3, §2.9, §2.17): in IKE_AUTH and with CREATE_CHILD_SA,
//! both roles, with optional PFS, traffic selector narrowing and transport mode.

use core::net::SocketAddr;
use std::time::Instant;

use super::ike_auth::child_failure_kind;
use super::{Event, FailureKind, KeState, Procedure, Session, error_notify, notify};
use crate::crypto::SecretBytes;
use crate::crypto::keys::ChildKeys;
use crate::esp::{Mode, SaParams};
use crate::ikev2::config::ChildConfig;
use crate::ikev2::proposal::{self, ChildSuite, Suite};
use crate::ikev2::ts::{self, List, TriggerFlow};
use crate::policy::TrafficSelector;
use crate::wire::KeId;
use crate::wire::ikev2::{
    ExchangeType, HeaderRepr, Ke, Nonce, Notify, NotifyType, Payload, ProtocolId, Sa,
};

/// A CHILD_SA as the session keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildSa {
    /// The child config name.
    pub name: String,
    /// Our inbound SPI (the peer sends to it).
    pub inbound_spi: u32,
    /// Our outbound SPI (the peer's inbound SPI).
    pub outbound_spi: u32,
    /// The algorithms.
    pub suite: ChildSuite,
    /// Our side's selectors.
    pub local_ts: Vec<TrafficSelector>,
    /// The peer's side's selectors.
    pub remote_ts: Vec<TrafficSelector>,
    /// Tunnel or transport.
    pub mode: Mode,
    /// When it was installed.
    pub installed_at: Instant,
    /// When a rekey is due (`None`: off, running, or done).
    pub rekey_at: Option<Instant>,
    /// When it expires for good (`life_time`).
    pub expire_at: Option<Instant>,
    /// Where it is in its life.
    pub state: ChildState,
    /// How many rekeys led to this SA (0 for the first of its line).
    pub rekeys: u32,
}

/// A CHILD_SA's place in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildState {
    /// Carrying traffic.
    Installed,
    /// We asked to rekey it (or will, the request is queued).
    Rekeying,
    /// A successor exists; it goes once the DELETE exchange for it completes.
    Rekeyed,
    /// We asked to delete it.
    Deleting,
}

/// A negotiated CHILD_SA, ready to install in the data plane. Only made from code that
/// holds the [`AuthVerified`](crate::ikev2::auth::AuthVerified) proof of the IKE SA.
#[derive(Debug)]
pub struct ChildSaUp {
    /// The connection name.
    pub ike: String,
    /// The IKE SA's SPIs (initiator, responder).
    pub ike_spis: (u64, u64),
    /// The child's facts.
    pub child: ChildSa,
    /// The inbound SA.
    pub inbound: SaParams,
    /// The outbound SA.
    pub outbound: SaParams,
    /// Our outer address (and port, 4500 when encapsulated).
    pub local: SocketAddr,
    /// The peer's outer address.
    pub remote: SocketAddr,
    /// ESP in UDP (RFC 3948).
    pub encap: bool,
    /// The inbound SPI of the CHILD_SA this one replaces (rekeying), if any.
    pub replaces: Option<u32>,
    /// Send on this SA at once. `false` for the responder of a rekey: the initiator may not
    /// have installed its new inbound SA yet, so the replaced SA keeps carrying our outbound
    /// traffic until its DELETE ([`Event::ChildSaActivated`] then).
    pub activate_outbound: bool,
}

/// A CHILD_SA we asked for, waiting for the answer.
#[derive(Debug)]
pub(super) struct LocalCreate {
    config: ChildConfig,
    spi: u32,
    pub(super) tsi: Vec<TrafficSelector>,
    pub(super) tsr: Vec<TrafficSelector>,
    pub(super) transport: bool,
    /// CREATE_CHILD_SA only: our nonce and PFS key exchange.
    nonce: Option<Vec<u8>>,
    pub(super) ke: Option<KeState>,
    restarts: u32,
    /// Rekeying an existing CHILD_SA.
    pub(super) rekey: Option<super::rekey::Rekey>,
}

impl LocalCreate {
    pub(super) fn name(&self) -> &str {
        &self.config.name
    }
}

/// Why we refused a CHILD_SA.
pub(super) struct Refusal {
    pub(super) notify: NotifyType,
    pub(super) kind: FailureKind,
    pub(super) child: Option<String>,
    pub(super) message: String,
}

impl Session {
    fn new_child_spi(&self) -> u32 {
        // SPIs below 256 are reserved (RFC 4303 §2.1).
        loop {
            let spi = u32::from_be_bytes(self.random::<4>());
            if spi >= 256 && !self.children.iter().any(|c| c.inbound_spi == spi) {
                return spi;
            }
        }
    }

    /// Builds the SA/TS payloads asking for a CHILD_SA of `config`. `create_child_sa` adds the
    /// nonce and, for PFS, the KE payload. A `trigger` (the packet that hit a trap) goes first
    /// in TSi/TSr when it lies inside the configured selectors.
    pub(super) fn prepare_child(
        &self,
        config: &ChildConfig,
        create_child_sa: bool,
        trigger: Option<&TriggerFlow>,
    ) -> Result<(LocalCreate, Vec<Payload>), String> {
        let spi = self.new_child_spi();
        let mut tsi = ts::resolve(&config.local_ts, self.local.ip());
        let mut tsr = ts::resolve(&config.remote_ts, self.remote.ip());
        if let Some((with_i, with_r)) = trigger.and_then(|t| t.prepend(&tsi, &tsr)) {
            (tsi, tsr) = (with_i, with_r);
        }
        let transport = config.mode == Mode::Transport;
        let (nonce, ke) = if create_child_sa {
            let pfs = config
                .proposals
                .iter()
                .flat_map(|p| p.ke.iter())
                .copied()
                .find(|k| *k != KeId::NONE);
            let ke = match pfs {
                Some(group) => Some(self.new_ke(group).ok_or_else(|| {
                    format!(
                        "PFS key exchange method {group} is not implemented by the crypto provider"
                    )
                })?),
                None => None,
            };
            (Some(self.random_nonce()), ke)
        } else {
            (None, None)
        };
        let create = LocalCreate {
            config: config.clone(),
            spi,
            tsi,
            tsr,
            transport,
            nonce,
            ke,
            restarts: 0,
            rekey: None,
        };
        let payloads = self.child_request_payloads(&create);
        Ok((create, payloads))
    }

    pub(super) fn child_request_payloads(&self, create: &LocalCreate) -> Vec<Payload> {
        let mut payloads = Vec::new();
        if let Some(rekey) = &create.rekey {
            payloads.push(Payload::Notify(Notify {
                protocol: ProtocolId::ESP,
                spi: rekey.old_inbound.to_be_bytes().to_vec(),
                ty: NotifyType::REKEY_SA,
                data: Vec::new(),
            }));
        }
        if create.transport {
            payloads.push(Payload::Notify(Notify::new(NotifyType::USE_TRANSPORT_MODE, Vec::new())));
        }
        // In IKE_AUTH, no KE: strip KE transforms from the ESP proposals (RFC 7296 §1.2).
        let with_ke = create.ke.is_some();
        let proposals = create
            .config
            .proposals
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut p = p.clone();
                if !with_ke {
                    p.ke.clear();
                }
                p.to_wire(u8::try_from(i + 1).unwrap_or(u8::MAX), create.spi.to_be_bytes().to_vec())
            })
            .collect();
        payloads.push(Payload::Sa(Sa { proposals }));
        if let Some(nonce) = &create.nonce {
            payloads.push(Payload::Nonce(Nonce { data: nonce.clone() }));
        }
        if let Some(ke) = &create.ke {
            payloads.push(Payload::Ke(Ke {
                group: ke.secret.id(),
                data: ke.secret.public_value().to_vec(),
            }));
        }
        payloads.push(Payload::TsI(ts::payload(&create.tsi)));
        payloads.push(Payload::TsR(ts::payload(&create.tsr)));
        payloads
    }

    /// The message for a CHILD_SA the peer refused.
    pub(super) fn child_refusal_message(&self, create: &LocalCreate, ty: NotifyType) -> String {
        match ty {
            NotifyType::NO_PROPOSAL_CHOSEN => format!(
                "peer refused CHILD_SA: NO_PROPOSAL_CHOSEN for our ESP proposals [{}]",
                super::ike_sa_init::proposal_list(&create.config.proposals)
            ),
            NotifyType::TS_UNACCEPTABLE => format!(
                "peer refused CHILD_SA: TS_UNACCEPTABLE for our local_ts {} remote_ts {}",
                List(&create.tsi),
                List(&create.tsr)
            ),
            other => format!("peer refused CHILD_SA: {other}"),
        }
    }

    /// Initiator of the exchange: checks the answer and installs the CHILD_SA.
    pub(super) fn complete_child(
        &mut self,
        now: Instant,
        create: LocalCreate,
        payloads: &[Payload],
        ni: &[u8],
        nr: &[u8],
    ) {
        match self.check_child_response(now, &create, payloads, ni, nr, None) {
            Ok(up) => self.install_child(up),
            Err((kind, message)) => self.fail_child(&create.config.name, kind, message),
        }
    }

    /// Initiator of the exchange: checks the answer and derives the CHILD_SA.
    pub(super) fn check_child_response(
        &mut self,
        now: Instant,
        create: &LocalCreate,
        payloads: &[Payload],
        ni: &[u8],
        nr: &[u8],
        replaces: Option<u32>,
    ) -> Result<ChildSaUp, (FailureKind, String)> {
        {
            let sa = first!(payloads, Sa)
                .ok_or((FailureKind::Protocol, "response lacks the SA payload".to_owned()))?;
            let [chosen] = sa.proposals.as_slice() else {
                return Err((
                    FailureKind::Protocol,
                    "response must carry exactly one proposal".into(),
                ));
            };
            let mut offered = create.config.proposals.clone();
            if create.ke.is_none() {
                offered.iter_mut().for_each(|p| p.ke.clear());
            }
            let selected = proposal::check_response(&offered, chosen).map_err(|e| {
                (FailureKind::Proposal, format!("peer's ESP proposal is invalid: {e}"))
            })?;
            let Suite::Esp(suite) = selected.suite else {
                return Err((
                    FailureKind::Protocol,
                    "peer answered with a non-ESP proposal".into(),
                ));
            };
            let peer_spi = <[u8; 4]>::try_from(chosen.spi.as_slice())
                .map(u32::from_be_bytes)
                .map_err(|_| (FailureKind::Protocol, "peer's ESP SPI is not 4 bytes".to_owned()))?;
            let tsi = first!(payloads, TsI).map(ts::from_payload).unwrap_or_default();
            let tsr = first!(payloads, TsR).map(ts::from_payload).unwrap_or_default();
            if !ts::is_narrowing_of(&tsi, &create.tsi) || !ts::is_narrowing_of(&tsr, &create.tsr) {
                return Err((
                    FailureKind::TrafficSelectors,
                    format!(
                        "peer's traffic selectors {} === {} are not inside ours {} === {}",
                        List(&tsi),
                        List(&tsr),
                        List(&create.tsi),
                        List(&create.tsr)
                    ),
                ));
            }
            let transport =
                create.transport && notify(payloads, NotifyType::USE_TRANSPORT_MODE).is_some();
            let g_ir =
                match (&create.ke, suite.ke) {
                    (Some(ours), Some(group)) => {
                        let ke = first!(payloads, Ke).ok_or((
                            FailureKind::Protocol,
                            "response lacks the KE payload for PFS".to_owned(),
                        ))?;
                        if ke.group != group || ours.secret.id() != group {
                            return Err((
                                FailureKind::Protocol,
                                format!("peer's KE uses {} not {group}", ke.group),
                            ));
                        }
                        Some(ours.secret.agree(&ke.data).map_err(|e| {
                            (FailureKind::Protocol, format!("peer's KE value: {e}"))
                        })?)
                    }
                    _ => None,
                };
            self.child_up(
                now,
                &create.config,
                suite,
                create.spi,
                peer_spi,
                tsi,
                tsr,
                transport,
                g_ir.as_ref(),
                ni,
                nr,
                true,
                replaces,
            )
            .map_err(|e| (FailureKind::Local, e))
        }
    }

    /// Derives keys and builds the CHILD_SA. `we_initiated` is our role in *this* exchange.
    #[allow(clippy::too_many_arguments)]
    fn child_up(
        &self,
        now: Instant,
        config: &ChildConfig,
        suite: ChildSuite,
        our_spi: u32,
        peer_spi: u32,
        local_ts: Vec<TrafficSelector>,
        remote_ts: Vec<TrafficSelector>,
        transport: bool,
        g_ir: Option<&SecretBytes>,
        ni: &[u8],
        nr: &[u8],
        we_initiated: bool,
        replaces: Option<u32>,
    ) -> Result<ChildSaUp, String> {
        // The proof: only an established session (AUTH verified) makes CHILD_SAs.
        let established = self.established().ok_or("IKE SA not authenticated")?;
        let _proof = &established.auth;
        let crypto = self.crypto.as_ref().ok_or("no IKE keys")?;
        let keys = ChildKeys::derive(
            crypto.prf,
            crypto.sk_d.expose(),
            g_ir.map(SecretBytes::expose),
            ni,
            nr,
            &suite.esp,
        )
        .map_err(|e| format!("CHILD_SA key derivation failed: {e}"))?;
        let (inbound_keys, outbound_keys) = keys.into_inbound_outbound(we_initiated);
        let mode = if transport { Mode::Transport } else { Mode::Tunnel };
        let lifetime = self.esp_lifetime(&config.lifetime);
        let params = |spi, keymat, replay_window| SaParams {
            spi,
            suite: suite.esp,
            keymat,
            esn: suite.esn,
            mode,
            replay_window,
            tfc_pad_to: 0,
            lifetime,
        };
        Ok(ChildSaUp {
            ike: self.config.name.clone(),
            ike_spis: (self.spi_i, self.spi_r),
            child: ChildSa {
                name: config.name.clone(),
                inbound_spi: our_spi,
                outbound_spi: peer_spi,
                suite,
                local_ts,
                remote_ts,
                mode,
                installed_at: now,
                rekey_at: None,
                expire_at: None,
                state: ChildState::Installed,
                rekeys: 0,
            },
            inbound: params(our_spi, inbound_keys, config.replay_window),
            outbound: params(peer_spi, outbound_keys, 0),
            local: self.local,
            remote: self.remote,
            encap: self.encap,
            replaces,
            activate_outbound: true,
        })
    }

    /// Records and reports a new CHILD_SA, arming its rekey and expiry timers.
    pub(super) fn install_child(&mut self, mut up: ChildSaUp) {
        let now = up.child.installed_at;
        let lifetime = self.config.child(&up.child.name).map(|c| c.lifetime).unwrap_or_default();
        up.child.rekey_at = self.jittered(now, lifetime.rekey_time, lifetime.rand_time);
        up.child.expire_at = (!lifetime.life_time.is_zero()).then(|| now + lifetime.life_time);
        self.children.push(up.child.clone());
        self.events.push_back(Event::ChildSaUp(Box::new(up)));
    }

    /// Responder of the exchange: picks a child config by traffic selectors, a proposal, and
    /// builds the answer's SA/TS payloads. `ke` is the peer's KE for PFS (CREATE_CHILD_SA).
    pub(super) fn respond_child(
        &mut self,
        now: Instant,
        payloads: &[Payload],
        ni: &[u8],
        nr: &[u8],
        replaces: Option<u32>,
        nonce_in_response: bool,
    ) -> Result<(Box<ChildSaUp>, Vec<Payload>), Refusal> {
        let refuse = |notify, kind, child: Option<&str>, message: String| Refusal {
            notify,
            kind,
            child: child.map(str::to_owned),
            message,
        };
        let sa = first!(payloads, Sa).ok_or_else(|| {
            refuse(
                NotifyType::INVALID_SYNTAX,
                FailureKind::Protocol,
                None,
                "request lacks SA".into(),
            )
        })?;
        let tsi = first!(payloads, TsI).map(ts::from_payload);
        let tsr = first!(payloads, TsR).map(ts::from_payload);
        let (Some(tsi), Some(tsr)) = (tsi, tsr) else {
            return Err(refuse(
                NotifyType::INVALID_SYNTAX,
                FailureKind::Protocol,
                None,
                "request lacks TSi or TSr".into(),
            ));
        };
        let config = self.config.clone();
        // Pick the child whose selectors fit (strongSwan: best match over all children).
        let mut fitting = None;
        for child in &config.children {
            let ours_remote = ts::resolve(&child.remote_ts, self.remote.ip());
            let ours_local = ts::resolve(&child.local_ts, self.local.ip());
            let narrowed_i = ts::narrow(&tsi, &ours_remote);
            let narrowed_r = ts::narrow(&tsr, &ours_local);
            if !narrowed_i.is_empty() && !narrowed_r.is_empty() {
                fitting = Some((child.clone(), narrowed_i, narrowed_r));
                break;
            }
        }
        let Some((child, narrowed_i, narrowed_r)) = fitting else {
            let configured: Vec<String> = config
                .children
                .iter()
                .map(|c| {
                    format!(
                        "{}: local_ts {} remote_ts {}",
                        c.name,
                        List(&ts::resolve(&c.local_ts, self.local.ip())),
                        List(&ts::resolve(&c.remote_ts, self.remote.ip()))
                    )
                })
                .collect();
            return Err(refuse(
                NotifyType::TS_UNACCEPTABLE,
                FailureKind::TrafficSelectors,
                None,
                format!(
                    "traffic selectors unacceptable: peer proposed TSi {} TSr {}, we have [{}]",
                    List(&tsi),
                    List(&tsr),
                    configured.join("; ")
                ),
            ));
        };
        let peer_ke = first!(payloads, Ke);
        let mut ours = child.proposals.clone();
        if peer_ke.is_none() {
            // No KE offered (IKE_AUTH, or CREATE_CHILD_SA without PFS): accept without PFS.
            ours.iter_mut().for_each(|p| p.ke.clear());
        }
        let selected = proposal::select(&sa.proposals, &ours, config.preference).map_err(|e| {
            refuse(
                NotifyType::NO_PROPOSAL_CHOSEN,
                FailureKind::Proposal,
                Some(&child.name),
                format!("ESP {e}"),
            )
        })?;
        let Suite::Esp(suite) = selected.suite else {
            return Err(refuse(
                NotifyType::NO_PROPOSAL_CHOSEN,
                FailureKind::Proposal,
                Some(&child.name),
                "not an ESP proposal".into(),
            ));
        };
        let peer_spi = <[u8; 4]>::try_from(selected.peer_spi.as_slice())
            .map(u32::from_be_bytes)
            .map_err(|_| {
                refuse(
                    NotifyType::INVALID_SYNTAX,
                    FailureKind::Protocol,
                    Some(&child.name),
                    "ESP SPI is not 4 bytes".into(),
                )
            })?;
        let mut response = Vec::new();
        let (g_ir, our_ke) = match (suite.ke, peer_ke) {
            (Some(group), Some(ke)) => {
                if ke.group != group {
                    return Err(refuse(
                        NotifyType::INVALID_KE_PAYLOAD,
                        FailureKind::Proposal,
                        Some(&child.name),
                        format!("peer's PFS KE uses {} but we chose {group}", ke.group),
                    ));
                }
                let ours = self.new_ke(group).ok_or_else(|| {
                    refuse(
                        NotifyType::NO_PROPOSAL_CHOSEN,
                        FailureKind::Local,
                        Some(&child.name),
                        format!("{group} not implemented"),
                    )
                })?;
                let shared = ours.secret.agree(&ke.data).map_err(|_| {
                    refuse(
                        NotifyType::INVALID_SYNTAX,
                        FailureKind::Protocol,
                        Some(&child.name),
                        "invalid KE value".into(),
                    )
                })?;
                (Some(shared), Some(ours))
            }
            _ => (None, None),
        };
        let transport = child.mode == Mode::Transport
            && notify(payloads, NotifyType::USE_TRANSPORT_MODE).is_some();
        let our_spi = self.new_child_spi();
        if transport {
            response.push(Payload::Notify(Notify::new(NotifyType::USE_TRANSPORT_MODE, Vec::new())));
        }
        response.push(Payload::Sa(Sa {
            proposals: vec![selected.to_wire(our_spi.to_be_bytes().to_vec())],
        }));
        if nonce_in_response {
            response.push(Payload::Nonce(Nonce { data: nr.to_vec() }));
        }
        if let Some(ke) = &our_ke {
            response.push(Payload::Ke(Ke {
                group: ke.secret.id(),
                data: ke.secret.public_value().to_vec(),
            }));
        }
        response.push(Payload::TsI(ts::payload(&narrowed_i)));
        response.push(Payload::TsR(ts::payload(&narrowed_r)));
        let up = self
            .child_up(
                now,
                &child,
                suite,
                our_spi,
                peer_spi,
                narrowed_r,
                narrowed_i,
                transport,
                g_ir.as_ref(),
                ni,
                nr,
                false,
                replaces,
            )
            .map_err(|e| {
                refuse(NotifyType::NO_PROPOSAL_CHOSEN, FailureKind::Local, Some(&child.name), e)
            })?;
        Ok((Box::new(up), response))
    }

    // ---- CREATE_CHILD_SA ----

    /// Sends (or resends, after INVALID_KE_PAYLOAD) a CREATE_CHILD_SA request for `create`.
    pub(super) fn send_create_child(&mut self, now: Instant, create: LocalCreate) {
        let payloads = self.child_request_payloads(&create);
        self.send_protected_request(
            now,
            ExchangeType::CREATE_CHILD_SA,
            &payloads,
            Procedure::CreateChild(Box::new(create)),
        );
    }

    /// The peer's INVALID_KE_PAYLOAD names a group our `proposals` allow: a fresh key
    /// exchange in it, for at most three retries.
    pub(super) fn ke_asked_for(
        &self,
        payloads: &[Payload],
        proposals: &[proposal::ProposalSpec],
        restarts: u32,
    ) -> Option<KeState> {
        let n = notify(payloads, NotifyType::INVALID_KE_PAYLOAD)?;
        let group = KeId(u16::from_be_bytes(<[u8; 2]>::try_from(n.data.as_slice()).ok()?));
        (restarts < 3 && proposals.iter().any(|p| p.ke.contains(&group)))
            .then(|| self.new_ke(group))
            .flatten()
    }

    pub(super) fn start_create_child(
        &mut self,
        now: Instant,
        name: &str,
        trigger: Option<&TriggerFlow>,
    ) {
        let Some(config) = self.child_config(name) else {
            self.fail_child(name, FailureKind::Local, format!("connection has no child '{name}'"));
            return;
        };
        match self.prepare_child(&config, true, trigger) {
            Ok((create, payloads)) => self.send_protected_request(
                now,
                ExchangeType::CREATE_CHILD_SA,
                &payloads,
                Procedure::CreateChild(Box::new(create)),
            ),
            Err(e) => self.fail_child(name, FailureKind::Local, e),
        }
    }

    pub(super) fn process_create_child_response(
        &mut self,
        now: Instant,
        mut create: LocalCreate,
        payloads: &[Payload],
    ) {
        if let Some(ke) = self.ke_asked_for(payloads, &create.config.proposals, create.restarts) {
            create.ke = Some(ke);
            create.restarts += 1;
            self.send_create_child(now, create);
            return;
        }
        if let Some(n) = error_notify(payloads) {
            if let Some(rekey) = &create.rekey {
                let old = rekey.old_inbound;
                self.rekey_refused(now, &create, old, n.ty);
                return;
            }
            let msg = self.child_refusal_message(&create, n.ty);
            let name = create.config.name.clone();
            self.fail_child(&name, child_failure_kind(n.ty), msg);
            return;
        }
        let Some(nr) = first!(payloads, Nonce) else {
            let name = create.config.name.clone();
            self.fail_child(
                &name,
                FailureKind::Protocol,
                "CREATE_CHILD_SA response lacks a nonce".into(),
            );
            if let Some(rekey) = &create.rekey {
                self.rekey_retry_later(now, rekey.old_inbound);
            }
            return;
        };
        let nr = nr.data.clone();
        let ni = create.nonce.clone().unwrap_or_default();
        if create.rekey.is_some() {
            self.complete_rekey(now, create, payloads, &ni, &nr);
        } else {
            self.complete_child(now, create, payloads, &ni, &nr);
        }
    }

    pub(super) fn process_create_child_request(
        &mut self,
        now: Instant,
        header: HeaderRepr,
        payloads: &[Payload],
    ) {
        let respond_error = |s: &mut Self, ty: NotifyType| {
            s.send_protected_response(
                ExchangeType::CREATE_CHILD_SA,
                header.message_id,
                &[Payload::Notify(Notify::new(ty, Vec::new()))],
            );
        };
        if self.established().is_none() {
            respond_error(self, NotifyType::INVALID_SYNTAX);
            return;
        }
        let Some(sa) = first!(payloads, Sa) else {
            respond_error(self, NotifyType::INVALID_SYNTAX);
            return;
        };
        if sa.proposals.iter().any(|p| p.protocol == ProtocolId::IKE) {
            self.process_ike_rekey_request(now, header, payloads);
            return;
        }
        // CHILD_SAs must not be made on an IKE SA that is being replaced or deleted
        // (§2.25.2; strongSwan answers TEMPORARY_FAILURE while deleting too).
        if self.retiring
            || self.deleting_ike()
            || matches!(
                self.outstanding.as_ref().map(|o| &o.procedure),
                Some(Procedure::RekeyIke(_))
            )
        {
            respond_error(self, NotifyType::TEMPORARY_FAILURE);
            return;
        }
        let Some(ni) = first!(payloads, Nonce) else {
            respond_error(self, NotifyType::INVALID_SYNTAX);
            return;
        };
        let ni = ni.data.clone();
        // REKEY_SA (§2.8): the new CHILD_SA replaces the one whose SPI (our outbound, the
        // peer's inbound) is named; the peer deletes the old one afterwards.
        let replaces = match notify(payloads, NotifyType::REKEY_SA) {
            None => None,
            Some(n) => {
                let spi = <[u8; 4]>::try_from(n.spi.as_slice()).ok().map(u32::from_be_bytes);
                match self.peer_rekey_target(spi) {
                    Ok(old) => Some(old),
                    Err(ty) => {
                        respond_error(self, ty);
                        return;
                    }
                }
            }
        };
        let nr = self.random_nonce();
        match self.respond_child(now, payloads, &ni, &nr, replaces, true) {
            Ok((mut up, response)) => {
                self.send_protected_response(
                    ExchangeType::CREATE_CHILD_SA,
                    header.message_id,
                    &response,
                );
                if let Some(old) = replaces {
                    self.peer_rekeyed(&mut up, old, &ni, &nr);
                }
                self.install_child(*up);
            }
            Err(refusal) => {
                let mut data = Vec::new();
                if refusal.notify == NotifyType::INVALID_KE_PAYLOAD {
                    // Tell the peer which group we want: the first PFS group of the child.
                    if let Some(g) =
                        refusal.child.as_deref().and_then(|c| self.child_config(c)).and_then(|c| {
                            c.proposals
                                .iter()
                                .flat_map(|p| p.ke.iter())
                                .copied()
                                .find(|k| *k != KeId::NONE)
                        })
                    {
                        data = g.0.to_be_bytes().to_vec();
                    }
                }
                self.send_protected_response(
                    ExchangeType::CREATE_CHILD_SA,
                    header.message_id,
                    &[Payload::Notify(Notify::new(refusal.notify, data))],
                );
                // INVALID_KE_PAYLOAD is a step of the negotiation (the peer retries with the
                // group named), not a failure.
                if refusal.notify != NotifyType::INVALID_KE_PAYLOAD {
                    let name = refusal.child.clone().unwrap_or_else(|| "(no child)".to_owned());
                    self.fail_child(&name, refusal.kind, refusal.message);
                }
            }
        }
    }
}

impl Event {
    /// The CHILD_SA of a [`Event::ChildSaUp`].
    pub fn child_up(&self) -> Option<&ChildSaUp> {
        match self {
            Self::ChildSaUp(up) => Some(up),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;
    use crate::crypto::test_provider::TEST_PROVIDER;
    use crate::ikev2::config::{
        ChildLifetime, IkeConfig, IkeLifetime, LocalAuth, RemoteAuth, Retransmit, UniquePolicy,
    };
    use crate::ikev2::identity::IdMatcher;
    use crate::ikev2::proposal::{Preference, ProposalSpec};
    use crate::ikev2::session::{Role, State};
    use crate::ikev2::ts::TsSpec;
    use crate::wire::{EncrId, FlowKey, IpProtocol};

    fn ts(s: &str) -> TrafficSelector {
        s.parse().unwrap()
    }

    /// Random bytes that make valid SPIs (the shared test generator starts with zeros).
    struct Ones;

    impl crate::crypto::SecureRandom for Ones {
        fn fill(&self, dest: &mut [u8]) -> Result<(), crate::crypto::CryptoError> {
            dest.fill(0x11);
            Ok(())
        }
    }

    static ONES: Ones = Ones;

    fn session() -> Session {
        let child = ChildConfig {
            name: "net".into(),
            proposals: vec![ProposalSpec {
                protocol: ProtocolId::ESP,
                encr: vec![(EncrId::ENCR_AES_GCM_16, 128)],
                prf: Vec::new(),
                integ: Vec::new(),
                ke: Vec::new(),
                esn: Vec::new(),
            }],
            local_ts: vec![
                TsSpec::parse("10.1.0.0/16").unwrap(),
                TsSpec::parse("dynamic").unwrap(),
            ],
            remote_ts: vec![TsSpec::parse("10.2.0.0/16").unwrap()],
            mode: Mode::Tunnel,
            replay_window: 32,
            lifetime: ChildLifetime::default(),
            dpd_restart: false,
            close_restart: false,
        };
        let config = IkeConfig {
            name: "gw".into(),
            local_addrs: Vec::new(),
            remote_addrs: Vec::new(),
            proposals: Vec::new(),
            preference: Preference::Configured,
            local_id: None,
            remote_id: IdMatcher::Any,
            local_auth: LocalAuth::Psk,
            remote_auth: RemoteAuth::Psk,
            psks: None,
            children: vec![child],
            encap: false,
            send_certreq: false,
            retransmit: Retransmit::default(),
            lifetime: IkeLifetime::default(),
            keyingtries: 1,
            unique: UniquePolicy::No,
        };
        Session::new(
            crate::crypto::CryptoProvider { secure_random: &ONES, ..TEST_PROVIDER },
            Arc::new(config),
            Role::Initiator,
            1,
            2,
            "192.0.2.1:500".parse().unwrap(),
            "192.0.2.2:500".parse().unwrap(),
            State::Closed,
        )
    }

    /// The TSi and TSr payloads of a request, as selectors.
    fn ts_payloads(payloads: &[Payload]) -> (Vec<TrafficSelector>, Vec<TrafficSelector>) {
        let tsi = first!(payloads, TsI).map(ts::from_payload).unwrap();
        let tsr = first!(payloads, TsR).map(ts::from_payload).unwrap();
        (tsi, tsr)
    }

    #[test]
    fn the_triggering_packet_goes_first_in_tsi_and_tsr() {
        let s = session();
        let config = s.child_config("net").unwrap();
        let flow = FlowKey {
            src: "10.1.0.5".parse().unwrap(),
            dst: "10.2.3.4".parse().unwrap(),
            protocol: IpProtocol(6),
            src_port: 40000,
            dst_port: 443,
            ports_opaque: false,
        };
        let trigger = TriggerFlow::from_flow(&flow);
        for create_child_sa in [false, true] {
            let (create, payloads) =
                s.prepare_child(&config, create_child_sa, Some(&trigger)).unwrap();
            let (tsi, tsr) = ts_payloads(&payloads);
            assert_eq!(
                tsi,
                [ts("10.1.0.5/32[tcp/40000]"), ts("10.1.0.0/16"), ts("192.0.2.1/32")],
                "IKE_AUTH: {}",
                !create_child_sa
            );
            assert_eq!(tsr, [ts("10.2.3.4/32[tcp/443]"), ts("10.2.0.0/16")]);
            // The response is checked against what was proposed.
            assert_eq!((create.tsi, create.tsr), (tsi, tsr));
        }
        // Without a trigger: the configured selectors only.
        let (_, payloads) = s.prepare_child(&config, true, None).unwrap();
        assert_eq!(
            ts_payloads(&payloads),
            (vec![ts("10.1.0.0/16"), ts("192.0.2.1/32")], vec![ts("10.2.0.0/16")])
        );
        // A packet outside the configured selectors is not proposed.
        let outside = TriggerFlow::from_flow(&FlowKey { dst: "10.9.0.1".parse().unwrap(), ..flow });
        let (_, payloads) = s.prepare_child(&config, true, Some(&outside)).unwrap();
        assert_eq!(ts_payloads(&payloads).1, [ts("10.2.0.0/16")]);
    }

    #[test]
    fn a_child_asked_for_while_the_ike_sa_is_set_up_waits_for_it() {
        // (A session in no exchange state yet: the simulator tests run the real handshake.)
        let mut s = session();
        let now = Instant::now();
        s.create_child_triggered(now, "net", None);
        s.create_child(now, "net");
        // Not established: nothing is sent, both wait.
        assert!(s.poll_transmit().is_none());
        assert_eq!(s.pending_children(), ["net", "net"]);
    }
}
