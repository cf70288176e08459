//! Reauthentication (`reauth_time`), make-before-break (RFC 7296 §2.8.3; strongSwan's
//! `charon.make_before_break`): instead of rekeying, a new IKE SA is built from scratch with
//! the same peer (IKE_SA_INIT, IKE_AUTH with a full authentication), the CHILD_SAs of the old
//! one are created again on it, and only then is the old IKE SA deleted (and its CHILD_SAs with
//! it). No packet is lost: both sets of SAs are installed for a moment, and the newest active
//! outbound SA of a policy carries the traffic.
//!
//! A session cannot make another one by itself, so the work is split: the session says when it
//! is due ([`Session::take_reauth_request`]), the [`super::super::Endpoint`] starts the new
//! session (marked with [`Session::set_reauth`], which keeps it from sending INITIAL_CONTACT:
//! that would make the peer drop the old IKE SA before the new one is complete) and, once the
//! new session is established and idle, tells the old one ([`Session::reauth_complete`]), which
//! deletes itself. A reauthentication that fails leaves the old IKE SA in place until its hard
//! end (`reauth_time + over_time`).

use std::time::Instant;

use super::{ChildState, FailureKind, Session};

/// Reauthentication timers and progress of one IKE SA.
#[derive(Debug, Default)]
pub(super) struct ReauthState {
    /// When to reauthenticate (`reauth_time` minus jitter).
    at: Option<Instant>,
    /// The hard end if no reauthentication succeeds (`reauth_time + over_time`).
    expire_at: Option<Instant>,
    /// Due: the endpoint has not taken the request yet.
    wanted: bool,
    /// A new IKE SA is being built to replace this one.
    pub(super) in_progress: bool,
    /// The new IKE SA took over; this one is being deleted.
    pub(super) replaced: bool,
    /// This IKE SA reauthenticates another one (no INITIAL_CONTACT).
    pub(super) is_reauth: bool,
}

impl Session {
    /// When the IKE SA will be reauthenticated (`reauth_time` minus jitter; `None`: off,
    /// running, or done).
    pub fn reauth_due(&self) -> Option<Instant> {
        self.reauth.at
    }

    // ---- commands ----

    /// Reauthenticates the IKE SA now (it is also done when `reauth_time` comes): the
    /// endpoint builds a new IKE SA and deletes this one once the new one carries the
    /// CHILD_SAs. Ignored unless established and not being replaced already.
    pub fn reauthenticate(&mut self) {
        if self.established().is_some()
            && !self.retiring
            && !self.reauth.in_progress
            && !self.reauth.replaced
        {
            self.reauth.at = None;
            self.reauth.wanted = true;
        }
    }

    /// A due reauthentication, for the endpoint to start: the names of the children to create
    /// again on the new IKE SA (each once, in the order of the CHILD_SAs). The session then
    /// counts as being reauthenticated until [`Session::reauth_complete`] or
    /// [`Session::reauth_failed`].
    pub fn take_reauth_request(&mut self) -> Option<Vec<String>> {
        if !self.reauth.wanted {
            return None;
        }
        self.reauth.wanted = false;
        if self.retiring || self.established().is_none() {
            return None;
        }
        self.reauth.in_progress = true;
        let mut names: Vec<String> = Vec::new();
        for c in &self.children {
            if matches!(c.state, ChildState::Installed | ChildState::Rekeying)
                && !names.contains(&c.name)
            {
                names.push(c.name.clone());
            }
        }
        Some(names)
    }

    /// Marks a new session as the reauthentication of another IKE SA: it sends no
    /// INITIAL_CONTACT in IKE_AUTH. Call right after [`Session::initiate`].
    pub fn set_reauth(&mut self) {
        self.reauth.is_reauth = true;
    }

    /// Whether this session reauthenticates another IKE SA.
    pub fn is_reauth(&self) -> bool {
        self.reauth.is_reauth
    }

    /// Whether a new IKE SA is being built to replace this one.
    pub fn reauth_in_progress(&self) -> bool {
        self.reauth.in_progress
    }

    /// The new IKE SA is established and carries the CHILD_SAs: delete this one (closes with
    /// [`super::CloseReason::Reauthenticated`]).
    pub fn reauth_complete(&mut self, now: Instant) {
        self.reauth.in_progress = false;
        self.reauth.replaced = true;
        self.close(now);
    }

    /// The new IKE SA failed: this one stays until its hard end.
    pub fn reauth_failed(&mut self) {
        if self.reauth.in_progress {
            self.reauth.in_progress = false;
            self.report_failure(
                FailureKind::Timeout,
                "reauthentication failed: keeping the current IKE SA until its hard lifetime \
                 (reauth_time + over_time)"
                    .into(),
            );
        }
    }

    // ---- timers ----

    /// Arms `reauth_time` (with jitter) and its hard end `reauth_time + over_time`.
    pub(super) fn arm_reauth_timers(&mut self, now: Instant) {
        let l = self.config.lifetime;
        self.reauth.at = self.jittered(now, l.reauth_time, l.rand_time);
        self.reauth.expire_at =
            (!l.reauth_time.is_zero()).then(|| now + l.reauth_time + l.over_time);
    }

    /// A rekeyed IKE SA keeps the reauthentication schedule of the one it replaces (strongSwan
    /// inherits it too): rekeying does not authenticate again.
    pub(super) fn carry_reauth(&self, successor: &mut Self) {
        successor.reauth.at = self.reauth.at;
        successor.reauth.expire_at = self.reauth.expire_at;
        successor.reauth.wanted = self.reauth.wanted;
    }

    pub(super) fn reauth_deadline(&self) -> Option<Instant> {
        let at = self.reauth.at.filter(|_| !self.reauth.in_progress && !self.reauth.replaced);
        let expire = self.reauth.expire_at.filter(|_| !self.reauth.replaced);
        [at, expire].into_iter().flatten().min()
    }

    pub(super) fn run_reauth_timers(&mut self, now: Instant) {
        if self.reauth.replaced {
            return;
        }
        if self.reauth.expire_at.is_some_and(|t| t <= now) {
            self.reauth.expire_at = None;
            self.fail_ike(
                FailureKind::Timeout,
                format!(
                    "IKE SA reached its hard lifetime (reauth_time {} s + over_time {} s) without \
                     a successful reauthentication: closing it",
                    self.config.lifetime.reauth_time.as_secs(),
                    self.config.lifetime.over_time.as_secs()
                ),
            );
            return;
        }
        if !self.reauth.in_progress && self.reauth.at.is_some_and(|t| t <= now) {
            self.reauthenticate();
        }
    }
}
