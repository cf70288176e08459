//! The ferroswan daemon and CLI (library part).
//!
//! - [`config`]: swanctl.conf (strongSwan settings syntax) read as-is, validated with file,
//!   line and a fix in every error.
//! - [`sys`]: the OS boundary of the data plane: TUN, raw ESP and UDP sockets with batched I/O,
//!   rtnetlink routes and addresses.
//! - [`vici`]: strongSwan's VICI control protocol: codec, server and client.

pub mod config;
pub mod sys;
pub mod vici;
