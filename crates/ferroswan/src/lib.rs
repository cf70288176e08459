//! The ferroswan daemon and CLI (library part).
//!
//! - [`config`]: swanctl.conf (strongSwan settings syntax) read as-is, validated with file,
//!   line and a fix in every error.
//! - [`lab`]: network-namespace topologies (LAN hosts, gateways, NAT router, loss) for
//!   integration tests and `ferroswan lab`; needs root.
//! - [`vici`]: strongSwan's VICI control protocol: codec, server and client.

pub mod config;
pub mod lab;
pub mod vici;
