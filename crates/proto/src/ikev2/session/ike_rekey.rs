//! IKE SA rekeying (RFC 7296 §2.18): a CREATE_CHILD_SA exchange with an IKE proposal makes a
//! new IKE SA with fresh SPIs and keys (`SKEYSEED = prf_old(SK_d old, g^ir new | Ni | Nr)`);
//! the CHILD_SAs move to it; the rekey's initiator then deletes the old IKE SA.
//!
//! The new IKE SA is a new [`Session`] (the endpoint routes by SPI): the old one hands it over
//! through [`Session::take_successor`] and reports [`Event::IkeSaRekeyed`], then only finishes
//! the DELETE exchange ("retiring"). The new one inherits the old one's authentication proof,
//! as the RFC intends (rekeying does not authenticate again; `reauth_time` does).
//!
//! Collisions are avoided rather than resolved: while our IKE rekey (or any CHILD_SA exchange
//! of ours) is in flight, the peer's IKE rekey is answered TEMPORARY_FAILURE and it tries again
//! later (§2.25.2 allows it; strongSwan retries after a random delay). Likewise a CHILD_SA
//! request reaching an IKE SA that is being rekeyed.

use std::time::{Duration, Instant};

use super::{
    CloseReason, Established, Event, FailureKind, KeState, Procedure, Queued, Session, State,
    error_notify,
};
use crate::crypto::keys::rekey_skeyseed;
use crate::ikev2::proposal::{self, Suite};
use crate::ikev2::protect::SaCrypto;
use crate::wire::ikev2::{ExchangeType, HeaderRepr, Ke, Nonce, Notify, NotifyType, Payload, Sa};

/// Retry a refused IKE rekey after this (minus up to the jitter).
const RETRY: Duration = Duration::from_secs(15);
const RETRY_JITTER: Duration = Duration::from_secs(5);

/// Our IKE rekey request, waiting for the answer.
#[derive(Debug)]
pub(super) struct LocalIkeRekey {
    spi: u64,
    nonce: Vec<u8>,
    ke: KeState,
    restarts: u32,
}

impl Session {
    // ---- commands ----

    /// Rekeys the IKE SA now (it is also rekeyed when `rekey_time` comes).
    pub fn rekey_ike(&mut self, now: Instant) {
        if self.established().is_some() && !self.retiring {
            self.ike_rekey_at = None;
            if !self.queue.iter().any(|q| matches!(q, Queued::RekeyIke)) {
                self.queue.push_back(Queued::RekeyIke);
            }
            self.run_queue(now);
        }
    }

    /// The new IKE SA after a completed rekey, for the endpoint to take over.
    pub fn take_successor(&mut self) -> Option<Box<Self>> {
        self.successor.take()
    }

    // ---- timers ----

    /// Arms `rekey_time` (with jitter) and the hard end `rekey_time + over_time`.
    pub(super) fn arm_ike_timers(&mut self, now: Instant) {
        let l = self.config.lifetime;
        self.ike_rekey_at = self.jittered(now, l.rekey_time, l.rand_time);
        self.ike_expire_at = (!l.rekey_time.is_zero()).then(|| now + l.rekey_time + l.over_time);
        self.last_heard.get_or_insert(now);
    }

    pub(super) fn ike_deadline(&self) -> Option<Instant> {
        if self.retiring {
            return None;
        }
        [self.ike_rekey_at, self.ike_expire_at].into_iter().flatten().min()
    }

    pub(super) fn run_ike_timers(&mut self, now: Instant) {
        if self.retiring || self.established().is_none() {
            return;
        }
        if self.ike_expire_at.is_some_and(|t| t <= now) {
            self.ike_expire_at = None;
            self.fail_ike(
                FailureKind::Timeout,
                format!(
                    "IKE SA reached its hard lifetime (rekey_time {} s + over_time {} s) without a \
                     successful rekey: closing it",
                    self.config.lifetime.rekey_time.as_secs(),
                    self.config.lifetime.over_time.as_secs()
                ),
            );
            return;
        }
        if self.ike_rekey_at.is_some_and(|t| t <= now) {
            self.rekey_ike(now);
        }
    }

    fn ike_retry_later(&mut self, now: Instant) {
        self.ike_rekey_at = self.jittered(now, RETRY, RETRY_JITTER);
    }

    // ---- initiator ----

    pub(super) fn start_rekey_ike(&mut self, now: Instant) {
        if self.retiring {
            return;
        }
        let Some(suite) = self.suite else { return };
        let Some(ke) = self.new_ke(suite.ke) else {
            self.fail_child("(IKE)", FailureKind::Local, format!("{} not implemented", suite.ke));
            return;
        };
        let spi = Self::new_ike_spi(&self.provider);
        let rekey = LocalIkeRekey { spi, nonce: self.random_nonce(), ke, restarts: 0 };
        self.send_ike_rekey(now, rekey);
    }

    fn send_ike_rekey(&mut self, now: Instant, rekey: LocalIkeRekey) {
        let payloads = self.ike_rekey_payloads(&rekey);
        self.send_protected_request(
            now,
            ExchangeType::CREATE_CHILD_SA,
            &payloads,
            Procedure::RekeyIke(Box::new(rekey)),
        );
    }

    fn ike_rekey_payloads(&self, rekey: &LocalIkeRekey) -> Vec<Payload> {
        let proposals = self
            .config
            .proposals
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.to_wire(u8::try_from(i + 1).unwrap_or(u8::MAX), rekey.spi.to_be_bytes().to_vec())
            })
            .collect();
        vec![
            Payload::Sa(Sa { proposals }),
            Payload::Nonce(Nonce { data: rekey.nonce.clone() }),
            Payload::Ke(Ke {
                group: rekey.ke.secret.id(),
                data: rekey.ke.secret.public_value().to_vec(),
            }),
        ]
    }

    pub(super) fn process_ike_rekey_response(
        &mut self,
        now: Instant,
        mut rekey: LocalIkeRekey,
        payloads: &[Payload],
    ) {
        if let Some(ke) = self.ke_asked_for(payloads, &self.config.proposals, rekey.restarts) {
            rekey.ke = ke;
            rekey.restarts += 1;
            self.send_ike_rekey(now, rekey);
            return;
        }
        if let Some(n) = error_notify(payloads) {
            if !matches!(n.ty, NotifyType::TEMPORARY_FAILURE | NotifyType::NO_ADDITIONAL_SAS) {
                self.report_failure(
                    FailureKind::PeerError,
                    format!("peer refused to rekey the IKE SA: {}", n.ty),
                );
            }
            self.ike_retry_later(now);
            return;
        }
        let result = (|| -> Result<(Box<Self>, u64), String> {
            let sa = first!(payloads, Sa).ok_or("response lacks the SA payload")?;
            let [chosen] = sa.proposals.as_slice() else {
                return Err("response must carry exactly one proposal".into());
            };
            let selected = proposal::check_response(&self.config.proposals, chosen)
                .map_err(|e| format!("peer's IKE proposal is invalid: {e}"))?;
            let Suite::Ike(suite) = selected.suite else {
                return Err("peer answered with a non-IKE proposal".into());
            };
            let peer_spi = <[u8; 8]>::try_from(chosen.spi.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| "peer's new IKE SPI is not 8 bytes".to_owned())?;
            let nr = first!(payloads, Nonce)
                .map(|n| n.data.clone())
                .ok_or("response lacks the nonce")?;
            let ke = first!(payloads, Ke).ok_or("response lacks the KE payload")?;
            if ke.group != suite.ke || rekey.ke.secret.id() != suite.ke {
                return Err(format!("peer's KE uses {} not {}", ke.group, suite.ke));
            }
            let shared = rekey.ke.secret.agree(&ke.data).map_err(|e| format!("peer's KE: {e}"))?;
            let successor = self.successor_session(
                super::Role::Initiator,
                rekey.spi,
                peer_spi,
                suite,
                shared.expose(),
                &rekey.nonce,
                &nr,
            )?;
            Ok((successor, rekey.spi))
        })();
        match result {
            Ok((successor, _)) => {
                self.hand_over(now, successor);
                // The rekey's initiator deletes the old IKE SA (§2.18).
                self.queue.clear();
                self.queue.push_back(Queued::DeleteIke);
            }
            Err(message) => {
                self.report_failure(
                    FailureKind::Protocol,
                    format!("rekeying the IKE SA failed: {message}"),
                );
                self.ike_retry_later(now);
            }
        }
    }

    // ---- responder ----

    /// The peer asks to rekey the IKE SA (a CREATE_CHILD_SA with an IKE proposal).
    pub(super) fn process_ike_rekey_request(
        &mut self,
        now: Instant,
        header: HeaderRepr,
        payloads: &[Payload],
    ) {
        let respond = |s: &mut Self, payloads: &[Payload]| {
            s.send_protected_response(ExchangeType::CREATE_CHILD_SA, header.message_id, payloads);
        };
        let error = |ty: NotifyType, data: Vec<u8>| [Payload::Notify(Notify::new(ty, data))];
        // Busy with an exchange of our own that would move or change SAs: later, please.
        let busy = matches!(
            self.outstanding.as_ref().map(|o| &o.procedure),
            Some(Procedure::RekeyIke(_) | Procedure::CreateChild(_) | Procedure::DeleteIke)
        );
        if self.retiring || busy {
            respond(self, &error(NotifyType::TEMPORARY_FAILURE, Vec::new()));
            return;
        }
        let result = (|| -> Result<(Box<Self>, Vec<Payload>), [Payload; 1]> {
            let syntax = || error(NotifyType::INVALID_SYNTAX, Vec::new());
            let sa = first!(payloads, Sa).ok_or_else(syntax)?;
            let selected =
                proposal::select(&sa.proposals, &self.config.proposals, self.config.preference)
                    .map_err(|_| error(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new()))?;
            let Suite::Ike(suite) = selected.suite else {
                return Err(error(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new()));
            };
            let peer_spi = <[u8; 8]>::try_from(selected.peer_spi.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| syntax())?;
            let ni = first!(payloads, Nonce).map(|n| n.data.clone()).ok_or_else(syntax)?;
            let ke = first!(payloads, Ke).ok_or_else(syntax)?;
            if ke.group != suite.ke {
                return Err(error(
                    NotifyType::INVALID_KE_PAYLOAD,
                    suite.ke.0.to_be_bytes().to_vec(),
                ));
            }
            let ours = self
                .new_ke(suite.ke)
                .ok_or_else(|| error(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new()))?;
            let shared = ours.secret.agree(&ke.data).map_err(|_| syntax())?;
            let spi = Self::new_ike_spi(&self.provider);
            let nr = self.random_nonce();
            let successor = self
                .successor_session(
                    super::Role::Responder,
                    peer_spi,
                    spi,
                    suite,
                    shared.expose(),
                    &ni,
                    &nr,
                )
                .map_err(|_| error(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new()))?;
            let response = vec![
                Payload::Sa(Sa { proposals: vec![selected.to_wire(spi.to_be_bytes().to_vec())] }),
                Payload::Nonce(Nonce { data: nr }),
                Payload::Ke(Ke {
                    group: ours.secret.id(),
                    data: ours.secret.public_value().to_vec(),
                }),
            ];
            Ok((successor, response))
        })();
        match result {
            Ok((successor, response)) => {
                respond(self, &response);
                self.hand_over(now, successor);
            }
            Err(refusal) => respond(self, &refusal),
        }
    }

    // ---- shared ----

    /// Builds the new IKE SA: `spi_i`/`spi_r` and `role` as of the rekey exchange (its
    /// initiator is the new SA's initiator).
    #[allow(clippy::too_many_arguments)]
    fn successor_session(
        &self,
        role: super::Role,
        spi_i: u64,
        spi_r: u64,
        suite: super::IkeSuite,
        shared: &[u8],
        ni: &[u8],
        nr: &[u8],
    ) -> Result<Box<Self>, String> {
        let old = self.crypto.as_ref().ok_or("no IKE keys")?;
        let established = self.established().ok_or("IKE SA not established")?;
        let seed = rekey_skeyseed(old.prf, old.sk_d.expose(), shared, ni, nr)
            .map_err(|e| format!("SKEYSEED: {e}"))?;
        let prf = self.provider.prf.prf(suite.prf).ok_or("PRF not implemented")?;
        let crypto = SaCrypto::from_skeyseed(
            &self.provider,
            suite,
            prf,
            &seed,
            ni,
            nr,
            spi_i,
            spi_r,
            role == super::Role::Initiator,
        )
        .map_err(|e| format!("IKE key derivation failed: {e}"))?;
        let mut info = established.info.clone();
        info.role = role;
        info.spi_i = spi_i;
        info.spi_r = spi_r;
        info.suite = suite;
        let mut s = Self::new(
            self.provider,
            self.config.clone(),
            role,
            spi_i,
            spi_r,
            self.local,
            self.remote,
            State::Established(Box::new(Established { info, auth: established.auth.carry_over() })),
        );
        s.encap = self.encap;
        s.nat_local = self.nat_local;
        s.nat_remote = self.nat_remote;
        s.crypto = Some(crypto);
        s.suite = Some(suite);
        s.unix_offset = self.unix_offset;
        s.rekeys = self.rekeys.saturating_add(1);
        s.was_established = true;
        Ok(Box::new(s))
    }

    /// Moves the CHILD_SAs and pending work to the new IKE SA and retires this one.
    fn hand_over(&mut self, now: Instant, mut successor: Box<Self>) {
        successor.children = core::mem::take(&mut self.children);
        successor.pending_activation = core::mem::take(&mut self.pending_activation);
        successor.retired = core::mem::take(&mut self.retired);
        successor.rekey_retries = core::mem::take(&mut self.rekey_retries);
        successor.queue = self
            .queue
            .drain(..)
            .filter(|q| !matches!(q, Queued::RekeyIke | Queued::DeleteIke))
            .collect();
        successor.last_heard = Some(now);
        successor.arm_ike_timers(now);
        let Some(info) = successor.info().cloned() else { return };
        self.retiring = true;
        self.ike_rekey_at = None;
        self.ike_expire_at = None;
        self.events.push_back(Event::IkeSaRekeyed(info));
        successor.run_queue(now);
        self.successor = Some(successor);
    }

    /// How a retiring IKE SA ends.
    pub(super) fn retired_reason(&self, reason: CloseReason) -> CloseReason {
        if self.retiring && matches!(reason, CloseReason::LocalDelete | CloseReason::PeerDelete) {
            CloseReason::Rekeyed
        } else {
            reason
        }
    }
}
