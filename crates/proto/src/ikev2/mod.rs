//! IKEv2 protocol logic above the wire formats in [`crate::wire::ikev2`].
//!
//! - [`proposal`]: SA proposal negotiation, pure functions that say why nothing matched.
//! - [`identity`] and [`dn`]: IKE identities as swanctl.conf writes them.
//! - [`auth`]: what gets signed or MACed, and the traits a certificate store implements.

pub mod auth;
pub mod config;
pub mod dn;
pub mod endpoint;
pub mod identity;
pub mod proposal;
pub mod protect;
pub mod session;
pub mod ts;

pub use endpoint::{Endpoint, SessionId};
pub use session::Session;
