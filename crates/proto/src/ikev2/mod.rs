//! IKEv2 protocol logic above the wire formats in [`crate::wire::ikev2`].
//!
//! - [`proposal`]: SA proposal negotiation, pure functions that say why nothing matched.

pub mod proposal;
