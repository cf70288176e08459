//! Traffic selectors and the security policy database.
//!
//! - [`TrafficSelector`]: one IKEv2 traffic selector (RFC 7296 §3.13.1): address range,
//!   protocol, port range (ICMP type/code for ICMP). Parses and prints swanctl.conf's
//!   `local_ts`/`remote_ts` syntax; [`TrafficSelector::intersect`] and
//!   [`TrafficSelector::is_subset_of`] are the building blocks of narrowing (RFC 7296 §2.9).
//! - [`SaSelectors`]: the local and remote selector lists of one Child SA, with the outbound
//!   match and the inbound check a decrypted packet must pass (RFC 4301 §5.2).
//! - [`Spd`]: ordered entries mapping selectors to [`Action::Protect`], [`Action::Bypass`],
//!   [`Action::Discard`] (RFC 4301 §4.4.1) or [`Action::Trap`] (negotiate an SA on demand),
//!   looked up per outbound packet by its
//!   [`FlowKey`](crate::wire::ip::FlowKey).
//!
//! Everything here is a pure function of its inputs; lookups do not allocate.

mod spd;
mod ts;

pub use spd::{Action, SaSelectors, Spd, SpdEntry, SpdEntryId};
pub use ts::{TrafficSelector, TsError};
