//! A CHILD_SA's life after it is negotiated: rekeying with CREATE_CHILD_SA and REKEY_SA
//! (RFC 7296 §2.8) as make-before-break, rekey collisions (§2.8.1, §2.25.1), soft and hard
//! lifetimes, and dead peer detection.
//!
//! Make-before-break, in both roles:
//!
//! ```text
//! initiator (rekeys X)                       responder
//!   CREATE_CHILD_SA N(REKEY_SA X) ──────────►  installs Y: inbound at once, outbound kept on X
//!   ◄──────────────────────────────────────    answer
//! installs Y (both directions), X stays       (packets from the initiator may still use X)
//!   INFORMATIONAL D(X) ───────────────────►   removes X, sends on Y (ChildSaActivated)
//!   ◄──────────────────────────────────────   D(X's peer SPI)
//! removes X (packets in flight on X were accepted until now)
//! ```
//!
//! Collisions: both ends rekey X at once. Each answers the other's request, so two new SAs
//! exist; the exchange holding the lowest of the four nonces lost (§2.8.1). Its initiator
//! deletes the SA it made; the winner deletes X. Only the nonces decide: a winner whose X the
//! peer deleted early keeps its new SA (strongSwan does too). A new SA the peer deleted before
//! its answer reached us is never installed, and X goes with it. A request to rekey an SA we
//! are deleting or already replaced is answered TEMPORARY_FAILURE; one for an SA we do not
//! have, CHILD_SA_NOT_FOUND (§2.25.1), and when that answers our own rekey of an SA the peer
//! deleted meanwhile, nothing is re-created. Scenario by scenario against strongSwan's
//! exchange tests: `crates/test-support/tests/ikev2_rekey_scenarios_sim.rs`.

use std::time::{Duration, Instant};

use super::child::{ChildSaUp, ChildState, LocalCreate};
use super::{DownReason, Event, FailureKind, Procedure, Queued, Session};
use crate::esp::{Lifetime, Mode};
use crate::ikev2::config::ChildLifetime;
use crate::wire::ikev2::NotifyType;

/// How long a replaced SA still accepts packets after its DELETE exchange: the peer's last
/// packets on it may arrive after the DELETE (reordering), and dropping them is needless loss.
/// Nothing is sent on it any more.
pub(super) const REKEY_LINGER: Duration = Duration::from_secs(2);

/// When to try a refused CHILD or IKE rekey again: after this, minus up to
/// [`RETRY_JITTER`] (10–15 s; strongSwan: 15 s minus up to 10 s).
const RETRY: Duration = Duration::from_secs(15);
const RETRY_JITTER: Duration = Duration::from_secs(5);

/// Our rekeying of a CHILD_SA, carried by its CREATE_CHILD_SA request.
#[derive(Debug)]
pub(super) struct Rekey {
    /// The SA being replaced (our inbound SPI).
    pub(super) old_inbound: u32,
    /// The peer rekeyed the same SA while our request was out.
    collision: Option<Collision>,
    /// SPIs (the peer's inbound) of DELETEs for SAs we did not know while our request was
    /// out: the peer may have deleted the new SA before its answer reached us.
    peer_deleted: Vec<u32>,
}

/// At most this many unknown DELETE SPIs are remembered per rekey.
const PEER_DELETED_MAX: usize = 8;

impl Rekey {
    pub(super) fn new(old_inbound: u32) -> Self {
        Self { old_inbound, collision: None, peer_deleted: Vec::new() }
    }
}

/// The peer's rekey of the same SA: the lower nonce of its exchange and the SA it made.
#[derive(Debug)]
struct Collision {
    nonce_min: Vec<u8>,
    new_inbound: u32,
}

/// The lower of an exchange's two nonces (compared as octet strings, §2.8.1).
pub(super) fn min_nonce<'a>(a: &'a [u8], b: &'a [u8]) -> &'a [u8] {
    if a <= b { a } else { b }
}

/// Whether our rekey lost a collision: `ours` and `theirs` are the lower nonces of our
/// exchange and of the peer's; the exchange with the lowest nonce made the redundant SA.
pub(super) fn collision_lost(ours: &[u8], theirs: &[u8]) -> bool {
    ours < theirs
}

impl Session {
    // ---- commands ----

    /// Rekeys the CHILD_SA with our inbound SPI `spi` now (its soft byte or packet limit was
    /// reached, or the user asked). Ignored when it is already being rekeyed or deleted.
    pub fn rekey_child(&mut self, now: Instant, spi: u32) {
        if self.mark_rekeying(spi) {
            self.queue.push_back(Queued::RekeyChild(spi));
            self.run_queue(now);
        }
    }

    /// Tells the session that ESP traffic from the peer arrived: dead peer detection only
    /// checks a peer that was silent for `dpd_delay`.
    pub fn traffic_received(&mut self, now: Instant) {
        self.last_heard = Some(now);
    }

    fn mark_rekeying(&mut self, spi: u32) -> bool {
        match self.children.iter_mut().find(|c| c.inbound_spi == spi) {
            Some(c) if c.state == ChildState::Installed => {
                c.state = ChildState::Rekeying;
                c.rekey_at = None;
                true
            }
            _ => false,
        }
    }

    // ---- timers ----

    /// The earliest CHILD_SA or liveness deadline.
    pub(super) fn lifecycle_deadline(&self) -> Option<Instant> {
        let children = self
            .children
            .iter()
            .flat_map(|c| {
                let rekey = c.rekey_at.filter(|_| c.state == ChildState::Installed);
                [rekey, c.expire_at]
            })
            .flatten()
            .min();
        let retired = self.retired.iter().map(|(at, _)| *at).min();
        [children, self.dpd_deadline(), self.retry_deadline(), retired].into_iter().flatten().min()
    }

    fn dpd_deadline(&self) -> Option<Instant> {
        let delay = self.config.lifetime.dpd_delay;
        if delay.is_zero()
            || self.retiring
            || self.outstanding.is_some()
            || self.established().is_none()
        {
            return None;
        }
        self.last_heard.map(|h| h + delay)
    }

    fn retry_deadline(&self) -> Option<Instant> {
        self.rekey_retries.iter().map(|(at, _)| *at).min()
    }

    /// Starts rekeys that are due, expires SAs past their hard lifetime, checks liveness.
    pub(super) fn run_lifecycle_timers(&mut self, now: Instant) {
        self.release_retired(|at| at <= now);
        let mut expired = Vec::new();
        let mut due = Vec::new();
        for c in &mut self.children {
            if c.expire_at.is_some_and(|t| t <= now) {
                // Replaced by our answer to the peer's rekey, waiting for the peer's DELETE:
                // the peer deletes it, and a DELETE of ours could overtake a late
                // CREATE_CHILD_SA response (strongSwan's
                // test_regular_responder_handle_hard_expire sends none either).
                let peer_deletes = c.state == ChildState::Rekeyed
                    && self.pending_activation.iter().any(|(_, old)| *old == c.inbound_spi);
                let state = if peer_deletes { ChildState::Deleting } else { c.state };
                expired.push((c.inbound_spi, state));
            } else if c.state == ChildState::Installed && c.rekey_at.is_some_and(|t| t <= now) {
                c.rekey_at = None;
                c.state = ChildState::Rekeying;
                due.push(c.inbound_spi);
            }
        }
        let (ready, later): (Vec<_>, Vec<_>) =
            self.rekey_retries.drain(..).partition(|(at, _)| *at <= now);
        self.rekey_retries = later;
        for (_, spi) in ready {
            if self.mark_rekeying(spi) {
                due.push(spi);
            }
        }
        for (spi, state) in expired {
            // The hard lifetime is over: stop using it now, then tell the peer.
            self.remove_child(now, spi, DownReason::Expired);
            if state != ChildState::Deleting {
                self.queue.retain(
                    |q| !matches!(q, Queued::DeleteChild(s) | Queued::RekeyChild(s) if *s == spi),
                );
                self.queue.push_back(Queued::DeleteGone(spi));
            }
        }
        for spi in due {
            self.queue.push_back(Queued::RekeyChild(spi));
        }
        if self.dpd_deadline().is_some_and(|t| t <= now)
            && !self.queue.iter().any(|q| matches!(q, Queued::Liveness))
        {
            self.last_heard = Some(now);
            self.queue.push_back(Queued::Liveness);
        }
        self.run_queue(now);
    }

    /// Reports the replaced SAs whose linger time `due` down.
    pub(super) fn release_retired(&mut self, due: impl Fn(Instant) -> bool) {
        let (gone, keep): (Vec<_>, Vec<_>) = self.retired.drain(..).partition(|(at, _)| due(*at));
        self.retired = keep;
        for (_, child) in gone {
            self.events.push_back(Event::ChildSaDown {
                child: child.name,
                inbound_spi: child.inbound_spi,
                outbound_spi: child.outbound_spi,
                reason: DownReason::Rekeyed,
            });
        }
    }

    /// A random instant `base` minus up to `rand` from `now`; `None` when `base` is zero.
    pub(super) fn jittered(&self, now: Instant, base: Duration, rand: Duration) -> Option<Instant> {
        if base.is_zero() {
            return None;
        }
        let rand = rand.min(base);
        let millis = u64::try_from(rand.as_millis()).unwrap_or(u64::MAX);
        Some(now + base - Duration::from_millis(self.random_up_to(millis)))
    }

    /// When to try a refused rekey (CHILD or IKE) again.
    pub(super) fn retry_at(&self, now: Instant) -> Option<Instant> {
        self.jittered(now, RETRY, RETRY_JITTER)
    }

    /// The ESP core's byte and packet limits for a child (time limits are ours).
    pub(super) fn esp_lifetime(&self, l: &ChildLifetime) -> Lifetime {
        let soft =
            |rekey: u64, rand: u64| (rekey > 0).then(|| rekey - self.random_up_to(rand.min(rekey)));
        Lifetime {
            soft_bytes: soft(l.rekey_bytes, l.rand_bytes),
            hard_bytes: (l.life_bytes > 0).then_some(l.life_bytes),
            soft_packets: soft(l.rekey_packets, l.rand_packets),
            hard_packets: (l.life_packets > 0).then_some(l.life_packets),
        }
    }

    // ---- initiator ----

    pub(super) fn start_rekey_child(&mut self, now: Instant, old_inbound: u32) {
        let Some(old) = self
            .children
            .iter()
            .find(|c| c.inbound_spi == old_inbound && c.state == ChildState::Rekeying)
            .cloned()
        else {
            return;
        };
        let Some(config) = self.child_config(&old.name) else {
            // The connection was reloaded without this child: let the SA run out.
            self.rekey_retry_later(now, old_inbound);
            return;
        };
        match self.prepare_child(&config, true, None) {
            Ok((mut create, _)) => {
                // The PFS group the SA being replaced was made with, when still allowed: it was
                // accepted before, so no INVALID_KE_PAYLOAD round this time (strongSwan's
                // test_regular_ke_invalid expects the next rekey to reuse it).
                if let Some(group) = old.suite.ke
                    && create.ke.as_ref().is_some_and(|k| k.secret.id() != group)
                    && config.proposals.iter().any(|p| p.ke.contains(&group))
                    && let Some(ke) = self.new_ke(group)
                {
                    create.ke = Some(ke);
                }
                // The same selectors as the SA being replaced (already narrowed).
                create.tsi = old.local_ts.clone();
                create.tsr = old.remote_ts.clone();
                create.transport = old.mode == Mode::Transport;
                create.rekey = Some(Rekey::new(old_inbound));
                self.send_create_child(now, create);
            }
            Err(e) => {
                self.fail_child(&old.name, FailureKind::Local, format!("cannot rekey: {e}"));
                self.rekey_retry_later(now, old_inbound);
            }
        }
    }

    /// The peer answered our rekey with a new SA: keep it, or delete it when it lost a
    /// collision or the old SA is gone.
    pub(super) fn complete_rekey(
        &mut self,
        now: Instant,
        mut create: LocalCreate,
        payloads: &[crate::wire::ikev2::Payload],
        ni: &[u8],
        nr: &[u8],
    ) {
        let Some(rekey) = create.rekey.take() else { return };
        let old_in = rekey.old_inbound;
        let mut up = match self.check_child_response(now, &create, payloads, ni, nr, Some(old_in)) {
            Ok(up) => up,
            Err((kind, message)) => {
                let name = create.name().to_owned();
                self.fail_child(&name, kind, format!("rekeying SA {old_in:08x}: {message}"));
                self.rekey_retry_later(now, old_in);
                return;
            }
        };
        // §2.8.1: the SA made by the exchange holding the lowest of the four nonces is the
        // redundant one. Ours lost when our exchange's lower nonce is below the peer's
        // (strongSwan's `handle_collision` in child_rekey.c decides the same way).
        let lost = rekey
            .collision
            .as_ref()
            .is_some_and(|c| collision_lost(min_nonce(ni, nr), &c.nonce_min));
        // The peer deleted the new SA before its answer reached us (its DELETE named an SPI
        // we did not know yet): it never carries traffic (strongSwan's
        // test_collision_delete_delayed_response).
        let gone_at_peer = rekey.peer_deleted.contains(&up.child.outbound_spi);
        let new_in = up.child.inbound_spi;
        let old = self.children.iter_mut().find(|c| c.inbound_spi == old_in);
        if lost {
            // The peer's new SA wins and the peer deletes the old one: ours is redundant.
            if let Some(old) = old {
                old.state = ChildState::Rekeyed;
            }
            if !gone_at_peer {
                self.queue.push_front(Queued::DeleteGone(new_in));
            }
            return;
        }
        if gone_at_peer {
            // The old SA is replaced in the peer's eyes and goes too.
            if old.is_some() {
                self.queue.retain(|q| !matches!(q, Queued::DeleteChild(s) if *s == old_in));
                self.queue.push_front(Queued::DeleteChild(old_in));
            }
            return;
        }
        if let Some(c) = &rekey.collision {
            // The peer deletes the SA it made; never switch our traffic to it.
            self.pending_activation.retain(|(new, _)| *new != c.new_inbound);
        }
        match old {
            Some(old) => {
                // Ours stays: the old SA goes once the new one is in place.
                old.state = ChildState::Rekeyed;
                old.rekey_at = None;
                up.child.rekeys = old.rekeys.saturating_add(1);
                self.install_child(up);
                self.queue.retain(|q| !matches!(q, Queued::DeleteChild(s) if *s == old_in));
                self.queue.push_front(Queued::DeleteChild(old_in));
            }
            // The peer deleted the old SA before its answer arrived (it is ours to delete,
            // §2.8, but some responders do, and a lost collision is decided above): the new SA
            // stands, as in strongSwan's test_regular_responder_incorrect_delete.
            None => self.install_child(up),
        }
    }

    /// The peer deleted an SA we do not know (its inbound SPI `spi`): if our rekey is out, it
    /// may be the SA the answer will bring.
    pub(super) fn note_unknown_delete(&mut self, spi: u32) {
        if let Some(Procedure::CreateChild(create)) =
            self.outstanding.as_mut().map(|o| &mut o.procedure)
            && let Some(rekey) = create.rekey.as_mut()
            && rekey.peer_deleted.len() < PEER_DELETED_MAX
        {
            rekey.peer_deleted.push(spi);
        }
    }

    /// The peer refused our rekey.
    pub(super) fn rekey_refused(
        &mut self,
        now: Instant,
        create: &LocalCreate,
        old_in: u32,
        ty: NotifyType,
    ) {
        let collided = create.rekey.as_ref().is_some_and(|r| r.collision.is_some());
        match ty {
            // We answered the peer's rekey of the same SA and it refused ours (busy with the
            // old SA, or already deleted it): it did not notice the collision, its rekey
            // completed first, so its new SA replaces the old one, which it deletes. No retry
            // and no fresh SA (strongSwan's child_rekey.c concludes the collision the same
            // way); the old SA, if still here, lingers like any replaced one.
            _ if collided => {
                if let Some(old) = self.children.iter_mut().find(|c| c.inbound_spi == old_in) {
                    old.state = ChildState::Rekeyed;
                    old.rekey_at = None;
                }
            }
            // The peer is busy with that SA (rekeying or deleting it): try again later.
            NotifyType::TEMPORARY_FAILURE => self.rekey_retry_later(now, old_in),
            // The peer does not know the SA any more: replace it with a fresh one.
            // Unless we processed the peer's DELETE of it meanwhile: then it was deleted on
            // purpose and nothing is re-created (strongSwan's test_collision_delete_drop_rekey).
            NotifyType::CHILD_SA_NOT_FOUND => {
                let name = create.name().to_owned();
                if self.remove_child(now, old_in, DownReason::PeerDelete).is_some() {
                    self.queue.push_back(Queued::CreateChild(name, None));
                }
            }
            other => {
                let name = create.name().to_owned();
                let message = self.child_refusal_message(create, other);
                self.fail_child(
                    &name,
                    super::ike_auth::child_failure_kind(other),
                    format!("rekeying SA {old_in:08x}: {message}"),
                );
                self.rekey_retry_later(now, old_in);
            }
        }
    }

    /// Puts a child whose rekey did not happen back to work and tries again soon.
    pub(super) fn rekey_retry_later(&mut self, now: Instant, old_in: u32) {
        if let Some(c) = self
            .children
            .iter_mut()
            .find(|c| c.inbound_spi == old_in && c.state == ChildState::Rekeying)
        {
            c.state = ChildState::Installed;
            c.rekey_at = None;
            if let Some(at) = self.retry_at(now) {
                self.rekey_retries.push((at, old_in));
            }
        }
    }

    // ---- responder ----

    /// Which of our CHILD_SAs the peer's REKEY_SA (naming its inbound SPI) is about, or the
    /// error to answer (§2.25.1).
    pub(super) fn peer_rekey_target(&self, peer_spi: Option<u32>) -> Result<u32, NotifyType> {
        let spi = peer_spi.ok_or(NotifyType::INVALID_SYNTAX)?;
        let child = self
            .children
            .iter()
            .find(|c| c.outbound_spi == spi)
            .ok_or(NotifyType::CHILD_SA_NOT_FOUND)?;
        match child.state {
            ChildState::Installed | ChildState::Rekeying => Ok(child.inbound_spi),
            ChildState::Rekeyed | ChildState::Deleting => Err(NotifyType::TEMPORARY_FAILURE),
        }
    }

    /// We answered the peer's rekey of `old_in` with `up`: our outbound traffic moves to it
    /// when the old SA is deleted. Notes a collision with our own rekey of the same SA.
    pub(super) fn peer_rekeyed(&mut self, up: &mut ChildSaUp, old_in: u32, ni: &[u8], nr: &[u8]) {
        up.activate_outbound = false;
        let new_in = up.child.inbound_spi;
        self.pending_activation.push((new_in, old_in));
        let collision = match self.outstanding.as_mut().map(|o| &mut o.procedure) {
            Some(Procedure::CreateChild(create)) => match create.rekey.as_mut() {
                Some(r) if r.old_inbound == old_in => {
                    r.collision = Some(Collision {
                        nonce_min: min_nonce(ni, nr).to_vec(),
                        new_inbound: new_in,
                    });
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if !collision {
            // A rekey of ours that did not start yet is no longer needed.
            self.queue.retain(|q| !matches!(q, Queued::RekeyChild(s) if *s == old_in));
        }
        if let Some(old) = self.children.iter_mut().find(|c| c.inbound_spi == old_in) {
            up.child.rekeys = old.rekeys.saturating_add(1);
            if !collision {
                old.state = ChildState::Rekeyed;
                old.rekey_at = None;
            }
        }
    }

    /// A CHILD_SA went away: SAs waiting for it to be deleted start carrying our traffic.
    pub(super) fn activate_successors(&mut self, removed: u32) {
        self.pending_activation.retain(|(new, _)| *new != removed);
        let (ready, rest): (Vec<_>, Vec<_>) =
            self.pending_activation.drain(..).partition(|(_, old)| *old == removed);
        self.pending_activation = rest;
        for (new, _) in ready {
            if let Some(c) = self.children.iter().find(|c| c.inbound_spi == new) {
                self.events
                    .push_back(Event::ChildSaActivated { child: c.name.clone(), inbound_spi: new });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{collision_lost, min_nonce};

    #[test]
    fn the_exchange_with_the_lowest_nonce_loses() {
        // Ours: {0x10…, 0xf0…}; the peer's: {0x20…, 0xf0…}: 0x10 is the lowest of the four.
        let ours = min_nonce(&[0x10, 0xff], &[0xf0, 0x00]);
        let theirs = min_nonce(&[0xf0, 0x01], &[0x20, 0x00]);
        assert!(collision_lost(ours, theirs));
        assert!(!collision_lost(theirs, ours), "exactly one side loses");
    }
}
