//! The ferroswan daemon and CLI (library part).
//!
//! - [`config`]: swanctl.conf (strongSwan settings syntax) read as-is, validated with file,
//!   line and a fix in every error.
//! - [`daemon`]: `ferroswan daemon`: TUN, routes, sockets, workers and the control socket.
//! - [`dataplane`]: the userspace ESP data plane between the TUN interface and the network.
//! - [`lab`]: network-namespace topologies (LAN hosts, gateways, NAT router, loss) for
//!   integration tests and `ferroswan lab`; needs root.
//! - [`pki`]: X.509 certificates and private keys for IKEv2 signature authentication
//!   (swanctl's `x509/`, `x509ca/`, `private/` … directories).
//! - [`manual`]: manually keyed SAs from the config, as data-plane tables and routes.
//! - [`status`]: `list-sas`/`stats` content and the `ferroswan status` view.
//! - [`sys`]: the OS boundary of the data plane: TUN, raw ESP and UDP sockets with batched I/O,
//!   rtnetlink routes and addresses.
//! - [`vici`]: strongSwan's VICI control protocol: codec, server and client.

pub mod config;
pub mod daemon;
pub mod dataplane;
pub mod ike;
pub mod lab;
pub mod manual;
pub mod pki;
pub mod status;
pub mod sys;
pub mod vici;
