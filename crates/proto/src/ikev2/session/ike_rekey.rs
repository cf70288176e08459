//! IKE SA rekeying (RFC 7296 §2.18): a CREATE_CHILD_SA exchange with an IKE proposal makes a
//! new IKE SA with fresh SPIs and keys (`SKEYSEED = prf_old(SK_d old, g^ir new | Ni | Nr)`);
//! the CHILD_SAs move to it; the rekey's initiator then deletes the old IKE SA.
//!
//! The new IKE SA is a new [`Session`] (the endpoint routes by SPI): the old one hands it over
//! through [`Session::take_successor`] and reports [`Event::IkeSaRekeyed`], then only finishes
//! the DELETE exchange ("retiring"). The new one inherits the old one's authentication proof,
//! as the RFC intends (rekeying does not authenticate again; `reauth_time` does).
//!
//! # Collisions (§2.8.2)
//!
//! When the peer's IKE rekey arrives while ours is in flight, both are answered and two new
//! IKE SAs exist. The one made by the exchange holding the lowest of the four nonces is
//! redundant: its initiator deletes it, and the initiator of the surviving one deletes the old
//! IKE SA; the CHILD_SAs move to the survivor. We answer the peer's request, keep the SA it made
//! aside ([`PassiveIkeRekey`]) and decide when our response comes, as strongSwan does
//! (`ike_rekey.c`, `collision_lost`). If the peer did not notice the collision (its response
//! is TEMPORARY_FAILURE, or its DELETE of the old IKE SA comes first), its new SA is taken.
//!
//! A peer's IKE rekey is still answered TEMPORARY_FAILURE while one of our CHILD_SA
//! exchanges or a DELETE is running, while we reauthenticate, and on a retiring SA (§2.25.2);
//! likewise a CHILD_SA request reaching an IKE SA that is being rekeyed.

use std::time::{Duration, Instant};

use super::rekey::{collision_lost, min_nonce};
use super::{
    CloseReason, Established, Event, FailureKind, IkeRekeyCollision, KeState, Procedure, Queued,
    Session, State, error_notify,
};
use crate::crypto::keys::rekey_skeyseed;
use crate::ikev2::proposal::{self, Suite};
use crate::ikev2::protect::SaCrypto;
use crate::wire::ikev2::{ExchangeType, HeaderRepr, Ke, Nonce, Notify, NotifyType, Payload, Sa};

/// How long an old or redundant IKE SA waits for the peer's DELETE before it is dropped
/// (strongSwan deletes a passively rekeyed IKE SA after 90 s).
const RETIRE_WAIT: Duration = Duration::from_secs(90);

/// The peer's IKE rekey we answered while ours was in flight: the SA it made and the lower
/// nonce of its exchange.
pub(super) struct PassiveIkeRekey {
    successor: Box<Session>,
    nonce_min: Vec<u8>,
}

/// An accepted IKE rekey request: the new IKE SA, our response, the exchange's lower nonce.
type Accepted = (Box<Session>, Vec<Payload>, Vec<u8>);

/// Our IKE rekey request, waiting for the answer.
#[derive(Debug)]
pub(super) struct LocalIkeRekey {
    spi: u64,
    nonce: Vec<u8>,
    ke: KeState,
    restarts: u32,
}

impl Session {
    /// When the IKE SA will be rekeyed (`rekey_time` minus jitter, or a retry; `None`: off
    /// or running) and when it ends for good (`over_time` past it).
    pub fn ike_rekey_due(&self) -> (Option<Instant>, Option<Instant>) {
        (self.ike_rekey_at, self.ike_expire_at)
    }

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

    /// The next new IKE SA this one made, for the endpoint to take over: the successor of a
    /// completed rekey, or a redundant IKE SA of a rekey collision (it closes once its DELETE
    /// is done, reporting [`CloseReason::Rekeyed`]). Call until `None`.
    pub fn take_successor(&mut self) -> Option<Box<Self>> {
        self.spawned.pop_front()
    }

    // ---- timers ----

    /// Arms `rekey_time` (with jitter) and the hard end `rekey_time + over_time`.
    pub(super) fn arm_ike_timers(&mut self, now: Instant) {
        let l = self.config.lifetime;
        self.ike_rekey_at = self.jittered(now, l.rekey_time, l.rand_time);
        self.ike_expire_at = (!l.rekey_time.is_zero()).then(|| now + l.rekey_time + l.over_time);
        self.arm_reauth_timers(now);
        self.last_heard.get_or_insert(now);
    }

    pub(super) fn ike_deadline(&self) -> Option<Instant> {
        if self.retiring {
            return self.retire_deadline.filter(|_| !self.deleting_ike());
        }
        [self.ike_rekey_at, self.ike_expire_at, self.reauth_deadline()].into_iter().flatten().min()
    }

    /// A DELETE of this IKE SA is running or queued.
    pub(super) fn deleting_ike(&self) -> bool {
        matches!(self.outstanding.as_ref().map(|o| &o.procedure), Some(Procedure::DeleteIke))
            || self.queue.iter().any(|q| matches!(q, Queued::DeleteIke))
    }

    pub(super) fn run_ike_timers(&mut self, now: Instant) {
        if self.retiring {
            // The peer never deleted the old (or its redundant) IKE SA: drop it.
            if !self.deleting_ike() && self.retire_deadline.is_some_and(|t| t <= now) {
                self.finish(CloseReason::LocalDelete);
            }
            return;
        }
        if self.established().is_none() {
            return;
        }
        self.run_reauth_timers(now);
        if self.is_closed() {
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
            if self.reauth.in_progress {
                // The IKE SA is being replaced by a reauthentication: no rekey meanwhile.
                self.ike_retry_later(now);
            } else {
                self.rekey_ike(now);
            }
        }
    }

    fn ike_retry_later(&mut self, now: Instant) {
        self.ike_rekey_at = self.retry_at(now);
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
            if self.conclude_ike_collision(now) {
                // The peer answered our rekey with an error but we answered its own: it did
                // not notice the collision, its new IKE SA carries on.
                return;
            }
            if !matches!(n.ty, NotifyType::TEMPORARY_FAILURE | NotifyType::NO_ADDITIONAL_SAS) {
                self.report_failure(
                    FailureKind::PeerError,
                    format!("peer refused to rekey the IKE SA: {}", n.ty),
                );
            }
            self.ike_retry_later(now);
            return;
        }
        let result = (|| -> Result<(Box<Self>, Vec<u8>), String> {
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
            Ok((successor, nr))
        })();
        match result {
            Ok((successor, nr)) => match self.ike_collision.take() {
                Some(passive)
                    if collision_lost(min_nonce(&rekey.nonce, &nr), &passive.nonce_min) =>
                {
                    self.events.push_back(Event::IkeRekeyCollision(IkeRekeyCollision::Lost));
                    // §2.8.2: our exchange holds the lowest nonce, the SA it made is redundant
                    // and ours to delete; the peer's new SA takes over and the peer deletes the
                    // old one.
                    self.spawn_redundant(now, successor, true);
                    self.hand_over(now, passive.successor);
                }
                passive => {
                    if let Some(passive) = passive {
                        // We won: the peer deletes the SA its exchange made.
                        self.events.push_back(Event::IkeRekeyCollision(IkeRekeyCollision::Won));
                        self.spawn_redundant(now, passive.successor, false);
                    }
                    self.hand_over(now, successor);
                    // The rekey's initiator deletes the old IKE SA (§2.18).
                    self.retire_deadline = None;
                    self.queue.clear();
                    self.queue.push_back(Queued::DeleteIke);
                }
            },
            Err(message) => {
                if self.conclude_ike_collision(now) {
                    return;
                }
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
        // Busy with an exchange of our own that would move or change SAs, or replacing this IKE
        // SA already: later, please (§2.25.2; strongSwan's `process_r` in ike_rekey.c). Our own
        // IKE rekey in flight is a collision, resolved by the nonces.
        let busy = matches!(
            self.outstanding.as_ref().map(|o| &o.procedure),
            Some(Procedure::CreateChild(_) | Procedure::DeleteChild(_) | Procedure::DeleteIke)
        );
        let colliding =
            matches!(self.outstanding.as_ref().map(|o| &o.procedure), Some(Procedure::RekeyIke(_)));
        if self.retiring || busy || self.reauth.in_progress || self.ike_collision.is_some() {
            respond(self, &error(NotifyType::TEMPORARY_FAILURE, Vec::new()));
            return;
        }
        let result = (|| -> Result<Accepted, [Payload; 1]> {
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
            let nonce_min = min_nonce(&ni, &nr).to_vec();
            let response = vec![
                Payload::Sa(Sa { proposals: vec![selected.to_wire(spi.to_be_bytes().to_vec())] }),
                Payload::Nonce(Nonce { data: nr }),
                Payload::Ke(Ke {
                    group: ours.secret.id(),
                    data: ours.secret.public_value().to_vec(),
                }),
            ];
            Ok((successor, response, nonce_min))
        })();
        match result {
            Ok((successor, response, nonce_min)) => {
                respond(self, &response);
                if colliding {
                    // Both ends rekey: the nonces decide once our response is in.
                    self.events.push_back(Event::IkeRekeyCollision(IkeRekeyCollision::Detected));
                    self.ike_collision = Some(PassiveIkeRekey { successor, nonce_min });
                } else {
                    self.hand_over(now, successor);
                }
            }
            Err(refusal) => respond(self, &refusal),
        }
    }

    /// Our rekey collided with the peer's but came to nothing (error answer, or the peer
    /// deleted the old IKE SA): the peer did not notice the collision, so its new IKE SA takes
    /// over (strongSwan's `conclude_collision`). Whether there was one.
    pub(super) fn conclude_ike_collision(&mut self, now: Instant) -> bool {
        match self.ike_collision.take() {
            Some(passive) => {
                self.events
                    .push_back(Event::IkeRekeyCollision(IkeRekeyCollision::PeerDidNotNotice));
                self.hand_over(now, passive.successor);
                true
            }
            None => false,
        }
    }

    /// Hands a new IKE SA that lost a collision to the endpoint, CHILD_SA-less: `delete` when
    /// we made it (we delete it), else it waits for the peer's DELETE.
    fn spawn_redundant(&mut self, now: Instant, mut redundant: Box<Self>, delete: bool) {
        redundant.retiring = true;
        redundant.last_heard = Some(now);
        if delete {
            redundant.queue.push_back(Queued::DeleteIke);
            redundant.run_queue(now);
        } else {
            redundant.retire_deadline = Some(now + RETIRE_WAIT);
        }
        self.spawned.push_back(redundant);
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
        self.carry_reauth(&mut successor);
        let Some(info) = successor.info().cloned() else { return };
        self.retiring = true;
        self.ike_rekey_at = None;
        self.ike_expire_at = None;
        // The peer deletes the old IKE SA (unless we do, see the caller).
        self.retire_deadline = Some(now + RETIRE_WAIT);
        self.events.push_back(Event::IkeSaRekeyed(info));
        successor.run_queue(now);
        self.spawned.push_back(successor);
    }

    /// How a retiring IKE SA ends.
    pub(super) fn retired_reason(&self, reason: CloseReason) -> CloseReason {
        let deleted = matches!(reason, CloseReason::LocalDelete | CloseReason::PeerDelete);
        if self.retiring && deleted {
            CloseReason::Rekeyed
        } else if self.reauth.replaced && deleted {
            CloseReason::Reauthenticated
        } else {
            reason
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{collision_lost, min_nonce};

    /// RFC 7296 §2.8.2: "If a redundant SA is created, then the SA created with the lowest of
    /// the four nonces used in the two exchanges SHOULD be closed by the endpoint that created
    /// it." Each row puts the lowest nonce somewhere else among A's request nonce, B's request
    /// nonce, B's response to A and A's response to B (strongSwan's `test_collision` table);
    /// `a_lost`: A's exchange made the redundant IKE SA.
    #[test]
    fn the_ike_sa_of_the_exchange_with_the_lowest_nonce_is_redundant() {
        let rows: [([u8; 4], bool); 4] = [
            ([0x00, 0xff, 0xff, 0xff], true),
            ([0xff, 0x00, 0xff, 0xff], false),
            ([0xff, 0xff, 0x00, 0xff], true),
            ([0xff, 0xff, 0xff, 0x00], false),
        ];
        for ([a_ni, b_ni, b_nr, a_nr], a_lost) in rows {
            // 32-byte nonces differing only in their first byte, the rest random-looking.
            let n = |first: u8, fill: u8| {
                let mut v = vec![first];
                v.resize(32, fill);
                v
            };
            let (a_ni, b_ni, b_nr, a_nr) = (n(a_ni, 1), n(b_ni, 2), n(b_nr, 3), n(a_nr, 4));
            // A's exchange: A's request, B's response; B's exchange: B's request, A's response.
            let a_exchange = min_nonce(&a_ni, &b_nr);
            let b_exchange = min_nonce(&b_ni, &a_nr);
            assert_eq!(collision_lost(a_exchange, b_exchange), a_lost, "A's view");
            assert_eq!(collision_lost(b_exchange, a_exchange), !a_lost, "B's view");
        }
    }
}
