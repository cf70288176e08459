//! ESP security association processing (RFC 4303), sans-IO.
//!
//! # Contract
//!
//! - [`OutboundSa::seal_tunnel`] turns the inner IP packet in a [`PacketBuf`] into
//!   `ESP header ‖ IV ‖ ciphertext ‖ ICV` **in place**, using the buffer's headroom and
//!   tailroom: no allocation, no copy. Sequence numbers start at 1 and never cycle: at the end
//!   of the 32-bit (or, with ESN, 64-bit) space the SA refuses with
//!   [`DropReason::SeqExhausted`]; [`OutboundSa::seq_nearly_exhausted`] says when to rekey.
//! - Inbound is two steps, in RFC 4303 §3.4's order:
//!   1. [`InboundSa::open`] (`&self`, so decryption can run in parallel): anti-replay
//!      *pre-check* on the (ESN-inferred) sequence number, ICV verification, decryption,
//!      padding check, inner-packet sanity check. Nothing in the SA changes except drop
//!      counters.
//!   2. [`InboundSa::accept`]: the anti-replay window is updated only now, after the ICV
//!      verified, so forged packets can never move it. The window sits behind a short lock, so
//!      SAs can be shared between threads.
//! - The inbound selector check (the decrypted packet must match the SA's traffic selectors)
//!   belongs to the caller, with [`crate::policy`]; a failure is counted on the SA with
//!   [`SaCounters::record_drop`]`(`[`DropReason::PolicyMismatch`]`)`.
//! - Every drop has a [`DropReason`], counted per SA.
//!
//! Padding is RFC 4303 §2.4's default monotonic sequence (verified on receipt); TFC padding
//! (§2.7) and dummy packets (§2.6) are supported on request.

mod buf;
mod drop;
pub mod replay;
mod sa;
mod transport;

pub use buf::PacketBuf;
pub use drop::DropReason;
pub use sa::{
    ESP_HEADER_LEN, InboundSa, Lifetime, LifetimeStatus, Mode, Opened, OutboundSa, SaCounters,
    SaError, SaParams, Sealed,
};
