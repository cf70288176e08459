//! Uniqueness of IKE SAs (swanctl `unique`) and INITIAL_CONTACT (RFC 7296 §2.4), the session's
//! part: whether our IKE_AUTH carries INITIAL_CONTACT, what a responder's IKE_AUTH saw, and a
//! silent end for an IKE SA the peer has forgotten. The [`super::super::Endpoint`] compares the
//! sessions with each other and decides.

use core::net::IpAddr;
use core::time::Duration;

use super::{CloseReason, Session};
use crate::ikev2::identity::Identity;

/// An established IKE SA of the endpoint, as a responder's IKE_AUTH compares itself with it
/// (`unique = keep`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    /// The connection name.
    pub conn: String,
    /// Our identity on it.
    pub local_id: Identity,
    /// The peer's authenticated identity.
    pub remote_id: Identity,
    /// The peer's address.
    pub remote: IpAddr,
}

/// What a responder's IKE_AUTH left for the endpoint to enforce once the IKE SA is
/// established (see [`Session::take_uniqueness_check`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UniquenessCheck {
    /// The peer's IKE_AUTH request carried INITIAL_CONTACT (and the policy is not `never`):
    /// every other IKE SA between the same identities is stale.
    pub initial_contact: bool,
}

/// Why an IKE SA gives way to a newer one ([`super::Event::Superseded`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SupersedeCause {
    /// The new IKE SA's IKE_AUTH carried INITIAL_CONTACT: the peer restarted and lost this
    /// one, so it is dropped at once, without a DELETE.
    InitialContact,
    /// `unique = replace`: it is deleted (with a DELETE) after `delay` (zero, or a grace
    /// period when the new IKE SA comes from the same address: probably a reauthentication
    /// whose initiator deletes the old SA itself).
    Replace {
        /// How long until our DELETE.
        delay: Duration,
    },
}

/// The session's uniqueness state.
#[derive(Debug, Default)]
pub(super) struct UniqueState {
    /// Initiator: leave INITIAL_CONTACT out of our IKE_AUTH (we still hold another IKE SA
    /// with the peer, so it must not drop that one).
    pub(super) no_initial_contact: bool,
    /// Responder: the established IKE SAs of the endpoint, for `unique = keep`.
    pub(super) contacts: Vec<Contact>,
    /// Responder: set when IKE_AUTH established the SA, taken by the endpoint.
    pub(super) check: Option<UniquenessCheck>,
}

impl Session {
    /// Whether our IKE_AUTH request will carry INITIAL_CONTACT: when the connection's
    /// `unique` policy allows it, unless the endpoint said another IKE SA with the peer exists
    /// ([`Session::set_initial_contact`]).
    pub fn sends_initial_contact(&self) -> bool {
        self.config.unique.sends_initial_contact() && !self.unique.no_initial_contact
    }

    /// Initiator, before IKE_AUTH: `false` leaves INITIAL_CONTACT out (the endpoint still has
    /// an IKE SA with this peer, which the peer must not drop).
    pub fn set_initial_contact(&mut self, send: bool) {
        self.unique.no_initial_contact = !send;
    }

    /// Responder, before IKE_AUTH: the endpoint's established IKE SAs, which a
    /// `unique = keep` connection refuses to duplicate.
    pub fn set_contacts(&mut self, contacts: Vec<Contact>) {
        self.unique.contacts = contacts;
    }

    /// Responder: once IKE_AUTH established the IKE SA, what the endpoint must enforce (once).
    pub fn take_uniqueness_check(&mut self) -> Option<UniquenessCheck> {
        self.unique.check.take()
    }

    /// Ends the IKE SA at once without telling the peer (it lost the SA: INITIAL_CONTACT):
    /// every CHILD_SA goes down, then `Closed(Superseded)`. Nothing more is sent.
    pub fn discard(&mut self) {
        if self.is_closed() {
            return;
        }
        self.transmits.clear();
        self.finish(CloseReason::Superseded);
    }

    /// Responder, in IKE_AUTH: `unique = keep` refuses a second IKE SA of connection `conn`
    /// between these identities from another address; the existing one, if any.
    pub(super) fn kept_duplicate(
        &self,
        conn: &str,
        local_id: &Identity,
        peer_id: &Identity,
    ) -> Option<&Contact> {
        let remote = self.remote.ip();
        self.unique.contacts.iter().find(|c| {
            c.conn == conn
                && c.local_id == *local_id
                && c.remote_id == *peer_id
                && c.remote != remote
        })
    }
}
