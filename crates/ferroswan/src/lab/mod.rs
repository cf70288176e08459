//! The lab: real network namespaces on this machine, for integration tests and `ferroswan lab`.
//!
//! - [`netns`]: the [`Topology`](netns::Topology) harness: LAN hosts, gateways and an optional
//!   NAT router in their own namespaces, wired with veth pairs, always removed on drop; helpers
//!   to run and spawn commands inside them; [`sweep_stale`](netns::sweep_stale) for leftovers of
//!   crashed runs.
//! - [`tunnel`]: two `ferroswan daemon`s on a topology's gateways with a manually keyed tunnel,
//!   and the checks run through it (ping, TCP transfer with checksum, transit capture).
//! - [`interop`]: IKEv2 interop cases from `interop/matrix.toml`: strongSwan or ferroswan on
//!   each gateway, certificates from strongSwan's `pki`, tunnel and algorithm checks.
//!
//! Everything here needs root (namespaces, veth, nftables) and the Debian packages listed in
//! `scripts/test`.

pub mod interop;
pub mod netns;
pub mod tunnel;
