//! The sans-IO core of ferroswan, an IPsec implementation.
//!
//! Nothing in this crate opens a socket, reads a clock, spawns a thread or touches the OS random
//! number generator: bytes and time go in, bytes and events come out. That is what lets the
//! same code run in the daemon, in deterministic two-peer simulations and under a fuzzer.
//!
//! The layers, from the bottom up (a module only uses the ones above it in this list):
//!
//! - [`wire`]: zero-copy views and parsed representations of IPv4, IPv6, ESP, AH and
//!   UDP-encapsulated ESP (RFC 3948), plus the IANA registries.
//! - [`crypto`]: the [`crypto::CryptoProvider`] traits the core calls for every cryptographic
//!   operation, secrets that zeroize themselves, and spec-defined key lengths.
//! - [`policy`]: traffic selectors and the security policy database: which SA an outbound
//!   packet takes, and whether a decrypted inbound packet was allowed on its SA.
//! - [`esp`]: ESP SA processing (RFC 4303): seal and open in place, sequence numbers with ESN,
//!   the anti-replay window, padding, TFC, lifetimes and per-SA counters.
//! - [`ikev2`]: IKEv2 protocol logic; so far [`ikev2::proposal`], SA proposal negotiation.
//!
//! Start with [`esp::OutboundSa`] and [`esp::InboundSa`] for the data path, and
//! [`policy::Spd`] for packet-to-SA lookup.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![deny(clippy::indexing_slicing)]

pub mod crypto;
pub mod esp;
pub mod ikev2;
pub mod policy;
pub mod wire;
