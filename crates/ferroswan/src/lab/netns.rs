//! Network-namespace topologies: LAN hosts, two gateways and an optional NAT router, each in its
//! own namespace, wired with veth pairs, and always removed again.
//!
//! ```text
//!                ┌───────────────────────────────────────────────┐
//!   lan_a        │ LanHost, namespace fslab-<pid>-<id>-lana      │ (only with lan_hosts(true),
//!                │ eth0  10.1.0.2/24       fd00:1::2/64          │  the default)
//!                │ default via 10.1.0.1 / fd00:1::1              │
//!                └───────────────────────┬───────────────────────┘
//!                                        │ veth   LAN A: 10.1.0.0/24, fd00:1::/64
//!                ┌───────────────────────┴───────────────────────┐
//!   gw_a         │ Gateway, namespace fslab-<pid>-<id>-gwa       │
//!                │ lan0  10.1.0.1/24       fd00:1::1/64          │
//!                │ wan0  192.0.2.1/24      2001:db8::1/64        │ direct
//!                │ wan0  192.168.0.2/24    fd00:ff::2/64         │ behind the NAT; default via
//!                └───────────────────────┬───────────────────────┘ 192.168.0.1 / fd00:ff::1
//!                                        │ veth   transit, direct: 192.0.2.0/24, 2001:db8::/64
//!                                        │        behind the NAT:  192.168.0.0/24, fd00:ff::/64
//!                                        │        loss_percent(N): dropped at each wan0 ingress
//!                ┌───────────────────────┴───────────────────────┐
//!   nat          │ NatRouter, namespace fslab-<pid>-<id>-nat     │ (only with nat(..))
//!   (optional)   │ in0   192.168.0.1/24    fd00:ff::1/64         │
//!                │ out0  198.51.100.1/24   2001:db8:1::1/64      │ nftables: oifname "out0"
//!                └───────────────────────┬───────────────────────┘ masquerade (IPv4 and IPv6)
//!                                        │ veth   outside: 198.51.100.0/24, 2001:db8:1::/64
//!                ┌───────────────────────┴───────────────────────┐
//!   gw_b         │ Gateway, namespace fslab-<pid>-<id>-gwb       │
//!                │ wan0  192.0.2.2/24      2001:db8::2/64        │ direct
//!                │ wan0  198.51.100.2/24   2001:db8:1::2/64      │ outside the NAT: no route back
//!                │ lan0  10.2.0.1/24       fd00:2::1/64          │
//!                └───────────────────────┬───────────────────────┘
//!                                        │ veth   LAN B: 10.2.0.0/24, fd00:2::/64
//!                ┌───────────────────────┴───────────────────────┐
//!   lan_b        │ LanHost, namespace fslab-<pid>-<id>-lanb      │
//!                │ eth0  10.2.0.2/24       fd00:2::2/64          │
//!                │ default via 10.2.0.1 / fd00:2::1              │
//!                └───────────────────────────────────────────────┘
//! ```
//!
//! The same addresses are in [`Topology`]'s typed fields ([`IfAddrs`]); tests read them from
//! there rather than hard-coding them.
//!
//! # What is set up
//!
//! - Every namespace: `lo` up, `accept_dad=0` (all and default) and every IPv6 address added
//!   with `nodad`, so IPv6 is usable at once. Gateways and the NAT router forward IPv4 and IPv6.
//! - **Routes between the LANs exist only with [`TopologyBuilder::plain_routing`]**. Without it
//!   (the default) LAN A cannot reach LAN B except through a tunnel the test brings up, so a
//!   passing ping proves the tunnel. `gw_a` always reaches `gw_b`'s `wan0` (through the NAT
//!   when there is one).
//! - NAT ([`Nat`]): the inside gateway `gw_a` has a default route via the router; the router
//!   masquerades everything leaving `out0`; `gw_b` has only its connected routes, so nothing but
//!   the NAT's state can carry traffic back. With `plain_routing`, the router also routes LAN B
//!   via `gw_b` and LAN A via `gw_a`.
//! - Loss ([`TopologyBuilder::loss_percent`]): an nftables `netdev` ingress chain on **each**
//!   gateway's `wan0` drops `numgen random mod 100 < N` of the IPv4/IPv6 packets arriving there
//!   (ARP and IPv6 neighbour/router discovery are spared, so the link does not flap). Each
//!   direction therefore loses N % once: a ping round trip is lost with probability
//!   1 − (1 − N/100)².
//!
//! # Names, cleanup, stale namespaces
//!
//! Namespaces are named `fslab-<pid>-<id>-<role>` (`id`: six random hex digits), so parallel
//! threads and processes never collide; interface names are fixed and short (`eth0`, `lan0`,
//! `wan0`, `in0`, `out0`) because each lives in its own namespace. Dropping the [`Topology`]
//! (also while unwinding from a panic) kills every process left in its namespaces
//! (`ip netns pids` + `kill -KILL`) and deletes the namespaces. A crashed run (SIGKILL, abort)
//! cannot clean up; [`sweep_stale`] (called by every [`TopologyBuilder::build`]) deletes
//! namespaces with our prefix whose PID no longer exists, and never touches any other namespace.
//!
//! Each topology has a log directory (`$TMPDIR/fslab-<pid>-<id>/`) for
//! [`Netns::spawn_logged`]. It is removed on drop, except while panicking with logs in it: then
//! it is kept and its path printed, so a failed test leaves its daemons' logs behind.
//!
//! # Example
//!
//! ```no_run
//! use ferroswan::lab::netns::Topology;
//!
//! # fn main() -> Result<(), ferroswan::lab::netns::Error> {
//! let topo = Topology::builder().plain_routing(true).build()?;
//! let (Some(a), Some(b)) = (topo.lan_a(), topo.lan_b()) else { unreachable!() };
//! let ping = a.ns.ping(b.eth0.v4.into(), 3)?;
//! assert_eq!(ping.received, 3);
//! # Ok(())
//! # }
//! ```

use std::collections::hash_map::RandomState;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::hash::BuildHasher;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The prefix of every namespace this module creates; [`sweep_stale`] only looks at these.
pub const NS_PREFIX: &str = "fslab-";

/// What went wrong while building, using or tearing down a topology.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A command ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The command line, as run.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// Its standard error, trimmed (or "(no stderr)").
        stderr: String,
    },
    /// A command could not be started at all.
    #[error("could not start `{command}`: {source}")]
    CommandStart {
        /// The command line.
        command: String,
        /// Why it could not be started.
        source: io::Error,
    },
    /// The builder was given an impossible option.
    #[error("invalid topology option: {0}")]
    InvalidOption(String),
    /// A file-system operation (log directory, log file) failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A tool the harness runs is not installed.
    #[error("`{tool}` not found in PATH: install {package} (scripts/test does)")]
    ToolMissing {
        /// The executable's name.
        tool: &'static str,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// A command's output did not look as expected.
    #[error("unexpected output from `{command}`: {detail}")]
    UnexpectedOutput {
        /// The command line.
        command: String,
        /// What was wrong, with the output.
        detail: String,
    },
}

/// NAT behaviour of the optional router between the gateways.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Nat {
    /// `masquerade`: the source address becomes the router's; the source port is kept when free.
    Masquerade,
    /// `masquerade random`: like [`Nat::Masquerade`], and source ports are randomised too, so a
    /// peer sees a port other than the one the inside host bound (NAT-T port-float checks).
    MasqueradeRandomPorts,
}

/// The IPv4 and IPv6 address of one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfAddrs {
    /// Interface name inside its namespace.
    pub ifname: &'static str,
    /// IPv4 address.
    pub v4: Ipv4Addr,
    /// IPv4 prefix length.
    pub v4_prefix: u8,
    /// IPv6 address.
    pub v6: Ipv6Addr,
    /// IPv6 prefix length.
    pub v6_prefix: u8,
}

impl IfAddrs {
    /// The IPv4 network, `10.1.0.0/24` style (for traffic selectors and routes).
    pub fn v4_network(&self) -> String {
        let mask = u32::MAX.checked_shl(32 - u32::from(self.v4_prefix)).unwrap_or(0);
        format!("{}/{}", Ipv4Addr::from(u32::from(self.v4) & mask), self.v4_prefix)
    }

    /// The IPv6 network, `fd00:1::/64` style.
    pub fn v6_network(&self) -> String {
        let mask = u128::MAX.checked_shl(128 - u32::from(self.v6_prefix)).unwrap_or(0);
        format!("{}/{}", Ipv6Addr::from(u128::from(self.v6) & mask), self.v6_prefix)
    }
}

/// A host on one of the inner LANs.
#[derive(Debug)]
pub struct LanHost {
    /// Its namespace.
    pub ns: Netns,
    /// Its only interface, towards its gateway.
    pub eth0: IfAddrs,
}

/// One of the two gateways (the tunnel endpoints in IPsec tests).
#[derive(Debug)]
pub struct Gateway {
    /// Its namespace.
    pub ns: Netns,
    /// The LAN side; `None` in a gateway-only topology.
    pub lan0: Option<IfAddrs>,
    /// The transit side (towards the other gateway, or towards the NAT router).
    pub wan0: IfAddrs,
}

/// The optional NAT router between the gateways.
#[derive(Debug)]
pub struct NatRouter {
    /// Its namespace.
    pub ns: Netns,
    /// Towards `gw_a` (the inside).
    pub in0: IfAddrs,
    /// Towards `gw_b` (the outside); its address is the source `gw_b` sees.
    pub out0: IfAddrs,
    /// The NAT behaviour configured.
    pub nat: Nat,
}

/// A set of namespaces wired as in the [module documentation](self); removed on drop.
#[derive(Debug)]
pub struct Topology {
    id: String,
    lan_a: Option<LanHost>,
    gw_a: Gateway,
    nat: Option<NatRouter>,
    gw_b: Gateway,
    lan_b: Option<LanHost>,
    // Last: dropped after the handles above, and it is what deletes the namespaces.
    guard: Teardown,
}

/// Options for a [`Topology`]; start with [`Topology::builder`].
#[derive(Clone, Debug)]
pub struct TopologyBuilder {
    lan_hosts: bool,
    nat: Option<Nat>,
    loss_percent: u8,
    plain_routing: bool,
}

/// One namespace of a topology: run and spawn commands inside it.
///
/// A handle only; the [`Topology`] owns the namespace and deletes it.
#[derive(Clone, Debug)]
pub struct Netns {
    name: String,
    log_dir: PathBuf,
}

/// A process started inside a namespace; killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct BackgroundProcess {
    child: Child,
    command: String,
    log: Option<PathBuf>,
}

/// The summary line of `ping`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PingSummary {
    /// Echo requests sent.
    pub transmitted: u32,
    /// Echo replies received.
    pub received: u32,
}

// Addresses (see the diagram in the module doc).
const LAN_A_V4: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(10, 1, 0, 2)];
const LAN_A_V6: [Ipv6Addr; 2] =
    [Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1), Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 2)];
const LAN_B_V4: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 2, 0, 1), Ipv4Addr::new(10, 2, 0, 2)];
const LAN_B_V6: [Ipv6Addr; 2] =
    [Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 1), Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 2)];
const TRANSIT_V4: [Ipv4Addr; 2] = [Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)];
const TRANSIT_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
];
/// `[router, gw_a]`.
const NAT_IN_V4: [Ipv4Addr; 2] = [Ipv4Addr::new(192, 168, 0, 1), Ipv4Addr::new(192, 168, 0, 2)];
/// `[router, gw_a]`.
const NAT_IN_V6: [Ipv6Addr; 2] =
    [Ipv6Addr::new(0xfd00, 0xff, 0, 0, 0, 0, 0, 1), Ipv6Addr::new(0xfd00, 0xff, 0, 0, 0, 0, 0, 2)];
/// `[router, gw_b]`.
const NAT_OUT_V4: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 51, 100, 1), Ipv4Addr::new(198, 51, 100, 2)];
/// `[router, gw_b]`.
const NAT_OUT_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2),
];
const LAN_A_NET: (&str, &str) = ("10.1.0.0/24", "fd00:1::/64");
const LAN_B_NET: (&str, &str) = ("10.2.0.0/24", "fd00:2::/64");

/// Serialises `ip netns add` within this process: the first one creates and bind-mounts
/// `/run/netns`, and concurrent first calls can stack that mount.
static NETNS_ADD: Mutex<()> = Mutex::new(());
static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Topology {
    /// A builder with the defaults: LAN hosts on both sides, no NAT, no loss, and no routes
    /// between the LANs.
    pub fn builder() -> TopologyBuilder {
        TopologyBuilder { lan_hosts: true, nat: None, loss_percent: 0, plain_routing: false }
    }

    /// The unique id in every namespace name (`<pid>-<random>`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The host on LAN A, unless built with `lan_hosts(false)`.
    pub fn lan_a(&self) -> Option<&LanHost> {
        self.lan_a.as_ref()
    }

    /// Gateway A (behind the NAT when there is one).
    pub fn gw_a(&self) -> &Gateway {
        &self.gw_a
    }

    /// The NAT router, if built with [`TopologyBuilder::nat`].
    pub fn nat(&self) -> Option<&NatRouter> {
        self.nat.as_ref()
    }

    /// Gateway B.
    pub fn gw_b(&self) -> &Gateway {
        &self.gw_b
    }

    /// The host on LAN B, unless built with `lan_hosts(false)`.
    pub fn lan_b(&self) -> Option<&LanHost> {
        self.lan_b.as_ref()
    }

    /// The address `gw_b` sees `gw_a`'s packets come from: the NAT router's outside address, or
    /// `gw_a`'s own transit address without NAT.
    pub fn gw_a_as_seen_by_gw_b(&self) -> IfAddrs {
        match &self.nat {
            Some(nat) => nat.out0.clone(),
            None => self.gw_a.wan0.clone(),
        }
    }

    /// Every namespace, in wiring order from LAN A to LAN B.
    pub fn namespaces(&self) -> Vec<&Netns> {
        let mut all = Vec::with_capacity(5);
        all.extend(self.lan_a.as_ref().map(|h| &h.ns));
        all.push(&self.gw_a.ns);
        all.extend(self.nat.as_ref().map(|n| &n.ns));
        all.push(&self.gw_b.ns);
        all.extend(self.lan_b.as_ref().map(|h| &h.ns));
        all
    }

    /// The directory [`Netns::spawn_logged`] writes to.
    pub fn log_dir(&self) -> &Path {
        &self.guard.log_dir
    }

    /// Kills what runs in the namespaces and deletes them, reporting the first failure (drop
    /// does the same but can only print failures).
    pub fn close(mut self) -> Result<(), Error> {
        self.guard.teardown()
    }
}

impl TopologyBuilder {
    /// Whether to create the LAN hosts (default `true`); `false` gives a gateway-only topology
    /// for transport-mode tests (the gateways then have no `lan0`).
    pub fn lan_hosts(mut self, yes: bool) -> Self {
        self.lan_hosts = yes;
        self
    }

    /// Puts a NAT router between the gateways; `gw_a` is inside.
    pub fn nat(mut self, nat: Nat) -> Self {
        self.nat = Some(nat);
        self
    }

    /// Drops `percent` % of the IP packets arriving at each gateway's `wan0` (0 to 100).
    pub fn loss_percent(mut self, percent: u8) -> Self {
        self.loss_percent = percent;
        self
    }

    /// Routes between the LANs in the clear (default `false`): for testing the harness itself,
    /// or a baseline without IPsec. Never combine with a tunnel test, or a passing ping proves
    /// nothing.
    pub fn plain_routing(mut self, yes: bool) -> Self {
        self.plain_routing = yes;
        self
    }

    /// Creates the namespaces and wires them. On error, whatever was created is removed.
    pub fn build(self) -> Result<Topology, Error> {
        if self.loss_percent > 100 {
            return Err(Error::InvalidOption(format!(
                "loss_percent({}) is more than 100",
                self.loss_percent
            )));
        }
        require_tool("ip", "iproute2")?;
        require_tool("sysctl", "procps")?;
        require_tool("kill", "procps")?;
        if self.nat.is_some() || self.loss_percent > 0 {
            require_tool("nft", "nftables")?;
        }
        sweep_stale()?;

        let id = format!("{}-{:06x}", std::process::id(), random_u64() & 0xff_ffff);
        let log_dir = std::env::temp_dir().join(format!("{NS_PREFIX}{id}"));
        fs::create_dir_all(&log_dir).map_err(|source| Error::Io {
            what: format!("creating log directory {}", log_dir.display()),
            source,
        })?;
        let mut guard = Teardown { names: Vec::new(), log_dir: log_dir.clone(), done: false };

        let mut add = |role: &str, forwarding: bool| -> Result<Netns, Error> {
            let ns = Netns { name: format!("{NS_PREFIX}{id}-{role}"), log_dir: log_dir.clone() };
            {
                let _serial = NETNS_ADD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                run_host_ok(&["ip", "netns", "add", &ns.name])?;
            }
            guard.names.push(ns.name.clone());
            ip_ok(&ns, &["link", "set", "lo", "up"])?;
            let mut sysctls = vec![
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ];
            if forwarding {
                sysctls.extend(["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
            }
            ns.run_ok(&sysctls)?;
            Ok(ns)
        };
        let lan_a_ns = if self.lan_hosts { Some(add("lana", false)?) } else { None };
        let gw_a_ns = add("gwa", true)?;
        let nat_ns = if self.nat.is_some() { Some(add("nat", true)?) } else { None };
        let gw_b_ns = add("gwb", true)?;
        let lan_b_ns = if self.lan_hosts { Some(add("lanb", false)?) } else { None };

        let ifa = |ifname, v4, v6| IfAddrs { ifname, v4, v4_prefix: 24, v6, v6_prefix: 64 };
        let [gw_a_lan_v4, host_a_v4] = LAN_A_V4;
        let [gw_a_lan_v6, host_a_v6] = LAN_A_V6;
        let [gw_b_lan_v4, host_b_v4] = LAN_B_V4;
        let [gw_b_lan_v6, host_b_v6] = LAN_B_V6;

        // gw_a <-> (nat <->) gw_b
        let (gw_a_wan, gw_b_wan, nat) = match (self.nat, nat_ns) {
            (Some(mode), Some(ns)) => {
                let [r_in_v4, a_v4] = NAT_IN_V4;
                let [r_in_v6, a_v6] = NAT_IN_V6;
                let [r_out_v4, b_v4] = NAT_OUT_V4;
                let [r_out_v6, b_v6] = NAT_OUT_V6;
                let router = NatRouter {
                    ns,
                    in0: ifa("in0", r_in_v4, r_in_v6),
                    out0: ifa("out0", r_out_v4, r_out_v6),
                    nat: mode,
                };
                let gw_a_wan = ifa("wan0", a_v4, a_v6);
                let gw_b_wan = ifa("wan0", b_v4, b_v6);
                link(&gw_a_ns, &gw_a_wan, &router.ns, &router.in0)?;
                link(&router.ns, &router.out0, &gw_b_ns, &gw_b_wan)?;
                route(&gw_a_ns, "default", router.in0.v4.into())?;
                route(&gw_a_ns, "default", router.in0.v6.into())?;
                if self.plain_routing && self.lan_hosts {
                    route(&router.ns, LAN_B_NET.0, gw_b_wan.v4.into())?;
                    route(&router.ns, LAN_B_NET.1, gw_b_wan.v6.into())?;
                    // For the replies after un-NATting (inside, the router is a plain router).
                    route(&router.ns, LAN_A_NET.0, gw_a_wan.v4.into())?;
                    route(&router.ns, LAN_A_NET.1, gw_a_wan.v6.into())?;
                }
                let random = if mode == Nat::MasqueradeRandomPorts { " random" } else { "" };
                router.ns.run_with_input(
                    &["nft", "-f", "-"],
                    format!(
                        "table inet fslab_nat {{\n\
                         \tchain postrouting {{\n\
                         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
                         \t\toifname \"{}\" masquerade{random}\n\
                         \t}}\n\
                         }}\n",
                        router.out0.ifname
                    )
                    .as_bytes(),
                )?;
                (gw_a_wan, gw_b_wan, Some(router))
            }
            _ => {
                let [a_v4, b_v4] = TRANSIT_V4;
                let [a_v6, b_v6] = TRANSIT_V6;
                let gw_a_wan = ifa("wan0", a_v4, a_v6);
                let gw_b_wan = ifa("wan0", b_v4, b_v6);
                link(&gw_a_ns, &gw_a_wan, &gw_b_ns, &gw_b_wan)?;
                if self.plain_routing && self.lan_hosts {
                    route(&gw_a_ns, LAN_B_NET.0, gw_b_wan.v4.into())?;
                    route(&gw_a_ns, LAN_B_NET.1, gw_b_wan.v6.into())?;
                    route(&gw_b_ns, LAN_A_NET.0, gw_a_wan.v4.into())?;
                    route(&gw_b_ns, LAN_A_NET.1, gw_a_wan.v6.into())?;
                }
                (gw_a_wan, gw_b_wan, None)
            }
        };

        // LAN hosts
        let lan = |host_ns: Option<Netns>,
                   gw_ns: &Netns,
                   gw_addrs: IfAddrs,
                   host_addrs: IfAddrs|
         -> Result<(Option<LanHost>, Option<IfAddrs>), Error> {
            let Some(ns) = host_ns else { return Ok((None, None)) };
            link(gw_ns, &gw_addrs, &ns, &host_addrs)?;
            route(&ns, "default", gw_addrs.v4.into())?;
            route(&ns, "default", gw_addrs.v6.into())?;
            Ok((Some(LanHost { ns, eth0: host_addrs }), Some(gw_addrs)))
        };
        let (lan_a, gw_a_lan) = lan(
            lan_a_ns,
            &gw_a_ns,
            ifa("lan0", gw_a_lan_v4, gw_a_lan_v6),
            ifa("eth0", host_a_v4, host_a_v6),
        )?;
        let (lan_b, gw_b_lan) = lan(
            lan_b_ns,
            &gw_b_ns,
            ifa("lan0", gw_b_lan_v4, gw_b_lan_v6),
            ifa("eth0", host_b_v4, host_b_v6),
        )?;

        if self.loss_percent > 0 {
            for (ns, wan) in [(&gw_a_ns, &gw_a_wan), (&gw_b_ns, &gw_b_wan)] {
                ns.run_with_input(
                    &["nft", "-f", "-"],
                    loss_ruleset(wan.ifname, self.loss_percent).as_bytes(),
                )?;
            }
        }

        let mut ends = vec![(&gw_a_ns, gw_a_wan.ifname), (&gw_b_ns, gw_b_wan.ifname)];
        if let Some(router) = &nat {
            ends.extend([(&router.ns, router.in0.ifname), (&router.ns, router.out0.ifname)]);
        }
        ends.extend([&lan_a, &lan_b].into_iter().flatten().map(|h| (&h.ns, h.eth0.ifname)));
        ends.extend(gw_a_lan.as_ref().map(|lan| (&gw_a_ns, lan.ifname)));
        ends.extend(gw_b_lan.as_ref().map(|lan| (&gw_b_ns, lan.ifname)));
        wait_until_up(&ends)?;

        Ok(Topology {
            id,
            lan_a,
            gw_a: Gateway { ns: gw_a_ns, lan0: gw_a_lan, wan0: gw_a_wan },
            nat,
            gw_b: Gateway { ns: gw_b_ns, lan0: gw_b_lan, wan0: gw_b_wan },
            lan_b,
            guard,
        })
    }
}

impl Netns {
    /// The namespace's name (for `ip netns exec NAME` / `ip -n NAME`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec NAME ARGV…` as a [`Command`], for callers that need more control (for
    /// instance a `sh -c 'mount --bind DIR /run && exec charon'`: `ip netns exec` runs its
    /// command in a fresh mount namespace, so such a bind mount stays private).
    pub fn command<S: AsRef<OsStr>>(&self, argv: &[S]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(argv).stdin(Stdio::null());
        cmd
    }

    /// Runs `ARGV` inside the namespace and returns its output, whatever its exit status.
    pub fn run<S: AsRef<OsStr>>(&self, argv: &[S]) -> Result<Output, Error> {
        let mut cmd = self.command(argv);
        cmd.output().map_err(|source| Error::CommandStart { command: show(&cmd), source })
    }

    /// Runs `ARGV` inside the namespace; an unsuccessful exit is an error with the command
    /// line, exit status and stderr.
    pub fn run_ok<S: AsRef<OsStr>>(&self, argv: &[S]) -> Result<Output, Error> {
        let mut cmd = self.command(argv);
        output_ok(&mut cmd, None)
    }

    /// Like [`Netns::run_ok`], with `input` on standard input (for example `nft -f -`).
    pub fn run_with_input<S: AsRef<OsStr>>(
        &self,
        argv: &[S],
        input: &[u8],
    ) -> Result<Output, Error> {
        let mut cmd = self.command(argv);
        output_ok(&mut cmd, Some(input))
    }

    /// Starts `ARGV` inside the namespace in the background, its output discarded.
    pub fn spawn<S: AsRef<OsStr>>(&self, argv: &[S]) -> Result<BackgroundProcess, Error> {
        let mut cmd = self.command(argv);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        spawn(cmd, None)
    }

    /// Starts `ARGV` inside the namespace in the background, stdout and stderr going to
    /// `LABEL.log` in the topology's log directory (`LABEL-2.log`… if taken).
    pub fn spawn_logged<S: AsRef<OsStr>>(
        &self,
        argv: &[S],
        label: &str,
    ) -> Result<BackgroundProcess, Error> {
        let safe: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
            .collect();
        let mut path = self.log_dir.join(format!("{safe}.log"));
        let mut n = 2;
        while path.exists() {
            path = self.log_dir.join(format!("{safe}-{n}.log"));
            n += 1;
        }
        let io_err =
            |source| Error::Io { what: format!("creating log file {}", path.display()), source };
        let out = File::create(&path).map_err(io_err)?;
        let err = out.try_clone().map_err(io_err)?;
        let mut cmd = self.command(argv);
        cmd.stdout(out).stderr(err);
        spawn(cmd, Some(path))
    }

    /// `ping -c COUNT` to `dst` (IPv4 or IPv6), 10 ms apart, waiting up to 1 s per reply. Lost
    /// replies are not an error; `ping` failing to run is.
    pub fn ping(&self, dst: IpAddr, count: u32) -> Result<PingSummary, Error> {
        let argv = [
            "ping",
            "-n",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            "0.01",
            // A deadline, not just a reply timeout: with -W alone, once one reply is in, ping
            // waits only two round trips for the rest, so scheduling jitter on a loaded machine
            // would count as loss. With -w it waits for `count` replies (or the deadline).
            "-W",
            "1",
            "-w",
            "10",
            &dst.to_string(),
        ];
        let mut cmd = self.command(&argv);
        let out =
            cmd.output().map_err(|source| Error::CommandStart { command: show(&cmd), source })?;
        // ping exits 1 when replies were missing and 2 on other errors.
        if out.status.code() != Some(0) && out.status.code() != Some(1) {
            return Err(failed(&cmd, &out));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary = parse_ping(&stdout).ok_or_else(|| Error::UnexpectedOutput {
            command: show(&cmd),
            detail: format!("no \"N packets transmitted, M received\" line in: {stdout}"),
        })?;
        // With a deadline ping sends until `count` replies are in, so a reply still in flight
        // can make it `count + 1`; "all answered" is `received == count`, and
        // `1 - count / transmitted` stays a fair loss estimate.
        Ok(PingSummary { received: summary.received.min(count), ..summary })
    }
}

impl BackgroundProcess {
    /// The process id (of the command itself: `ip netns exec` execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The command line it was started with.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The log file, for [`Netns::spawn_logged`].
    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// The log file's contents so far (empty without a log).
    pub fn read_log(&self) -> Result<String, Error> {
        let Some(path) = &self.log else { return Ok(String::new()) };
        fs::read(path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .map_err(|source| Error::Io { what: format!("reading {}", path.display()), source })
    }

    /// The exit status if it has exited, `None` while it runs.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, Error> {
        self.child.try_wait().map_err(|source| Error::Io {
            what: format!("checking on `{}` (pid {})", self.command, self.child.id()),
            source,
        })
    }

    /// Kills it (SIGKILL) and reaps it, keeping the handle (and its log path); returns its
    /// exit status. Killing a process that already exited returns that exit status.
    pub fn kill(&mut self) -> Result<ExitStatus, Error> {
        let what = format!("killing `{}` (pid {})", self.command, self.child.id());
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        self.child.kill().map_err(|source| Error::Io { what: what.clone(), source })?;
        self.child.wait().map_err(|source| Error::Io { what, source })
    }

    /// Asks it to stop (SIGTERM, with the `kill` utility) and waits up to `grace` for it to
    /// exit; SIGKILLs it after that. Returns its exit status and whether it exited by itself
    /// in time.
    pub fn terminate(&mut self, grace: Duration) -> Result<(ExitStatus, bool), Error> {
        if let Some(status) = self.try_wait()? {
            return Ok((status, true));
        }
        let pid = self.child.id().to_string();
        let out = Command::new("kill").args(["-TERM", &pid]).output().map_err(|source| {
            Error::Io { what: format!("kill -TERM {pid} (`{}`)", self.command), source }
        })?;
        if !out.status.success() {
            // Exited between the check and the signal.
            return self.kill().map(|s| (s, true));
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait()? {
                return Ok((status, true));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill().map(|s| (s, false))
    }

    /// Kills (SIGKILL) and reaps it; returns its exit status.
    pub fn stop(mut self) -> Result<ExitStatus, Error> {
        let what = format!("stopping `{}` (pid {})", self.command, self.child.id());
        self.child.kill().map_err(|source| Error::Io { what: what.clone(), source })?;
        self.child.wait().map_err(|source| Error::Io { what, source })
    }
}

impl Drop for BackgroundProcess {
    fn drop(&mut self) {
        // Errors only mean it is already gone (or already reaped by `stop`).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PingSummary {
    /// Lost echo requests, in percent of those sent (0 when none were sent).
    pub fn loss_percent(&self) -> f64 {
        if self.transmitted == 0 {
            return 0.0;
        }
        100.0 * f64::from(self.transmitted.saturating_sub(self.received))
            / f64::from(self.transmitted)
    }
}

/// Deletes namespaces left by crashed runs: those named `fslab-<pid>-…` whose `<pid>` no longer
/// exists (after killing what still runs inside them). Namespaces without the prefix, or owned
/// by a live process, are left alone. Returns the names deleted. Empty log directories of dead
/// runs go too; those with logs in them stay.
///
/// The PID is checked in this process's PID namespace, so runs in other PID namespaces sharing
/// `/run/netns` would look dead; this harness is not meant to be shared that way.
pub fn sweep_stale() -> Result<Vec<String>, Error> {
    let mut removed = Vec::new();
    for name in list_namespaces()? {
        let Some(pid) = owner_pid(&name) else { continue };
        if Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        kill_all_in(&name)?;
        delete_namespace(&name)?;
        removed.push(name);
    }
    // The dead runs' log directories too, when empty (ones with logs are kept for a post-mortem).
    if let Ok(entries) = fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(owner_pid) else { continue };
            if !Path::new("/proc").join(pid.to_string()).exists() {
                // Fails (and is skipped) when not empty or already gone.
                let _ = fs::remove_dir(entry.path());
            }
        }
    }
    Ok(removed)
}

/// The names in `ip netns list` (all of them, not only ours).
pub fn list_namespaces() -> Result<Vec<String>, Error> {
    let out = run_host_ok(&["ip", "netns", "list"])?;
    // Lines look like "NAME" or "NAME (id: 3)".
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// The PID encoded in one of our namespace names (`fslab-<pid>-…`).
fn owner_pid(name: &str) -> Option<u32> {
    name.strip_prefix(NS_PREFIX)?.split('-').next()?.parse().ok()
}

/// Deletes the namespaces (and, unless a panic is unwinding, the log directory) on drop.
#[derive(Debug)]
struct Teardown {
    names: Vec<String>,
    log_dir: PathBuf,
    done: bool,
}

impl Teardown {
    fn teardown(&mut self) -> Result<(), Error> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        let mut first_err = None;
        // Kill everything first: a process left in one namespace keeps its veth peers alive.
        for name in &self.names {
            if let Err(e) = kill_all_in(name) {
                first_err.get_or_insert(e);
            }
        }
        for name in self.names.iter().rev() {
            if let Err(e) = delete_namespace(name) {
                first_err.get_or_insert(e);
            }
        }
        let has_logs = fs::read_dir(&self.log_dir).is_ok_and(|mut dir| dir.next().is_some());
        if std::thread::panicking() && has_logs {
            eprintln!("lab: keeping the logs of the failed topology in {}", self.log_dir.display());
        } else if let Err(source) = fs::remove_dir_all(&self.log_dir)
            && source.kind() != io::ErrorKind::NotFound
        {
            first_err.get_or_insert(Error::Io {
                what: format!("removing log directory {}", self.log_dir.display()),
                source,
            });
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("lab: cleaning up topology: {e}");
        }
    }
}

/// Kills every process in namespace `name` (SIGKILL).
fn kill_all_in(name: &str) -> Result<(), Error> {
    let out = match run_host_ok(&["ip", "netns", "pids", name]) {
        Ok(out) => out,
        Err(_) if !namespace_exists(name) => return Ok(()),
        Err(e) => return Err(e),
    };
    let pids: Vec<String> =
        String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect();
    if pids.is_empty() {
        return Ok(());
    }
    let mut argv = vec!["kill".to_owned(), "-KILL".to_owned()];
    argv.extend(pids);
    // A process may exit between listing and killing; only complain if some are still there.
    if let Err(e) = run_host_ok(&argv) {
        let still = run_host_ok(&["ip", "netns", "pids", name])
            .map(|o| !o.stdout.iter().all(u8::is_ascii_whitespace))
            .unwrap_or(false);
        if still {
            return Err(e);
        }
    }
    Ok(())
}

/// `ip netns del NAME`; a namespace already gone (a concurrent sweep) is fine.
fn delete_namespace(name: &str) -> Result<(), Error> {
    match run_host_ok(&["ip", "netns", "del", name]) {
        Err(_) if !namespace_exists(name) => Ok(()),
        other => other.map(drop),
    }
}

fn namespace_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// A veth pair between two namespaces, both ends up and addressed.
fn link(a: &Netns, a_if: &IfAddrs, b: &Netns, b_if: &IfAddrs) -> Result<(), Error> {
    // Created inside `a` with the peer moved straight into `b`: the fixed names never exist in
    // the root namespace, so parallel topologies cannot collide.
    ip_ok(
        a,
        &[
            "link",
            "add",
            a_if.ifname,
            "type",
            "veth",
            "peer",
            "name",
            b_if.ifname,
            "netns",
            &b.name,
        ],
    )?;
    for (ns, ifa) in [(a, a_if), (b, b_if)] {
        ip_ok(ns, &["addr", "add", &format!("{}/{}", ifa.v4, ifa.v4_prefix), "dev", ifa.ifname])?;
        ip_ok(
            ns,
            &["addr", "add", &format!("{}/{}", ifa.v6, ifa.v6_prefix), "dev", ifa.ifname, "nodad"],
        )?;
        ip_ok(ns, &["link", "set", ifa.ifname, "up"])?;
    }
    Ok(())
}

/// How long an interface may take to come up (the kernel's link watcher applies carrier changes
/// up to a second late when busy).
const LINK_UP_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits until every interface is operationally up with its IPv6 link-local address.
///
/// Until the kernel's link watcher has seen the veth carrier (up to about a second after
/// `ip link set up`), the interface still has the `noop` qdisc and no link-local address, and
/// the first packets, notably the first IPv6 ones, are dropped.
fn wait_until_up(ends: &[(&Netns, &str)]) -> Result<(), Error> {
    let started = Instant::now();
    let mut pending: Vec<(&Netns, &str)> = ends.to_vec();
    loop {
        let mut still = Vec::new();
        let mut last = String::new();
        for (ns, ifname) in pending {
            let out = run_host_ok(&["ip", "-n", &ns.name, "addr", "show", "dev", ifname])?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if !(text.contains("state UP") && text.contains("scope link")) {
                still.push((ns, ifname));
                last = text;
            }
        }
        let Some((ns, ifname)) = still.first() else { return Ok(()) };
        if started.elapsed() > LINK_UP_TIMEOUT {
            return Err(Error::UnexpectedOutput {
                command: format!("ip -n {} addr show dev {ifname}", ns.name),
                detail: format!(
                    "not up with an IPv6 link-local address after {} s: {}",
                    LINK_UP_TIMEOUT.as_secs(),
                    last.trim()
                ),
            });
        }
        pending = still;
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `ip route add DST via GW` (IPv4 or IPv6 by the gateway's family).
fn route(ns: &Netns, dst: &str, via: IpAddr) -> Result<(), Error> {
    let family = if via.is_ipv4() { "-4" } else { "-6" };
    ip_ok(ns, &[family, "route", "add", dst, "via", &via.to_string()])
}

/// `ip -n NS ARGS…`.
fn ip_ok(ns: &Netns, args: &[&str]) -> Result<(), Error> {
    let mut argv = vec!["ip", "-n", &ns.name];
    argv.extend_from_slice(args);
    run_host_ok(&argv).map(drop)
}

fn loss_ruleset(ifname: &str, percent: u8) -> String {
    format!(
        "table netdev fslab_loss {{\n\
         \tchain {ifname}_ingress {{\n\
         \t\ttype filter hook ingress device \"{ifname}\" priority filter; policy accept;\n\
         \t\tmeta protocol ip6 icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert, \
         nd-router-solicit, nd-router-advert }} accept\n\
         \t\tmeta protocol {{ ip, ip6 }} numgen random mod 100 < {percent} drop\n\
         \t}}\n\
         }}\n"
    )
}

/// Runs a command in the root namespace; unsuccessful exit is an error.
fn run_host_ok<S: AsRef<OsStr>>(argv: &[S]) -> Result<Output, Error> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::InvalidOption("empty command line".to_owned()));
    };
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    output_ok(&mut cmd, None)
}

fn output_ok(cmd: &mut Command, input: Option<&[u8]>) -> Result<Output, Error> {
    let start_err = |cmd: &Command, source| Error::CommandStart { command: show(cmd), source };
    let out = match input {
        None => cmd.output().map_err(|e| start_err(cmd, e))?,
        Some(input) => {
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
            let mut child = cmd.spawn().map_err(|e| start_err(cmd, e))?;
            let stdin = child.stdin.take();
            // Written from a second thread so a child that talks before reading cannot block us.
            let (written, out) = std::thread::scope(|s| {
                let writer = s.spawn(move || match stdin {
                    Some(mut stdin) => stdin.write_all(input),
                    None => Ok(()),
                });
                let out = child.wait_with_output();
                (writer.join(), out)
            });
            let out = out.map_err(|source| Error::Io {
                what: format!("waiting for `{}`", show(cmd)),
                source,
            })?;
            if !out.status.success() {
                return Err(failed(cmd, &out));
            }
            let written =
                written.unwrap_or_else(|_| Err(io::Error::other("writer thread panicked")));
            if let Err(source) = written {
                return Err(Error::Io {
                    what: format!("writing stdin of `{}`", show(cmd)),
                    source,
                });
            }
            out
        }
    };
    if !out.status.success() {
        return Err(failed(cmd, &out));
    }
    Ok(out)
}

fn spawn(mut cmd: Command, log: Option<PathBuf>) -> Result<BackgroundProcess, Error> {
    let command = show(&cmd);
    let child =
        cmd.spawn().map_err(|source| Error::CommandStart { command: command.clone(), source })?;
    Ok(BackgroundProcess { child, command, log })
}

fn failed(cmd: &Command, out: &Output) -> Error {
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    Error::CommandFailed {
        command: show(cmd),
        status: out.status,
        stderr: if stderr.is_empty() { "(no stderr)".to_owned() } else { stderr },
    }
}

/// The command line, shell-like (arguments with spaces or quotes in single quotes).
fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|arg| {
            let arg = arg.to_string_lossy();
            if arg.is_empty()
                || arg.contains(|c: char| c.is_whitespace() || "'\"\\$;&|".contains(c))
            {
                format!("'{}'", arg.replace('\'', r"'\''"))
            } else {
                arg.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses "N packets transmitted, M received" from ping's summary.
fn parse_ping(stdout: &str) -> Option<PingSummary> {
    let line = stdout.lines().find(|l| l.contains("packets transmitted"))?;
    let mut parts = line.split(',');
    let transmitted = parts.next()?.split_whitespace().next()?.parse().ok()?;
    let received = parts.next()?.split_whitespace().next()?.parse().ok()?;
    Some(PingSummary { transmitted, received })
}

fn require_tool(tool: &'static str, package: &'static str) -> Result<(), Error> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()) {
        Ok(())
    } else {
        Err(Error::ToolMissing { tool, package })
    }
}

/// 64 random-enough bits for the topology id (std's randomly keyed hasher, plus the time and a
/// counter so two calls in one process differ).
fn random_u64() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    RandomState::new().hash_one((nanos, COUNTER.fetch_add(1, Ordering::Relaxed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_only_for_our_prefix() {
        assert_eq!(owner_pid("fslab-1234-abcdef-gwa"), Some(1234));
        assert_eq!(owner_pid("fslab-x-abcdef-gwa"), None);
        assert_eq!(owner_pid("anc-l"), None);
        assert_eq!(owner_pid("fslabx-1234-a"), None);
    }

    #[test]
    fn ping_summary_lines() {
        let out = "--- 10.2.0.2 ping statistics ---\n\
                   3 packets transmitted, 2 received, 33.3333% packet loss, time 2003ms\n";
        assert_eq!(parse_ping(out), Some(PingSummary { transmitted: 3, received: 2 }));
        let unreachable = "2 packets transmitted, 0 received, +2 errors, 100% packet loss\n";
        let summary = parse_ping(unreachable);
        assert_eq!(summary, Some(PingSummary { transmitted: 2, received: 0 }));
        assert_eq!(summary.map(|s| s.loss_percent()), Some(100.0));
        assert_eq!(parse_ping("garbage"), None);
    }

    #[test]
    fn networks_of_interface_addresses() {
        let ifa = IfAddrs {
            ifname: "lan0",
            v4: LAN_A_V4[1],
            v4_prefix: 24,
            v6: LAN_A_V6[1],
            v6_prefix: 64,
        };
        assert_eq!((ifa.v4_network().as_str(), ifa.v6_network().as_str()), LAN_A_NET);
        let host = IfAddrs { v4_prefix: 32, v6_prefix: 128, ..ifa.clone() };
        assert_eq!(host.v4_network(), "10.1.0.2/32");
        assert_eq!(host.v6_network(), "fd00:1::2/128");
        let all = IfAddrs { v4_prefix: 0, v6_prefix: 0, ..ifa };
        assert_eq!((all.v4_network().as_str(), all.v6_network().as_str()), ("0.0.0.0/0", "::/0"));
    }

    #[test]
    fn command_lines_are_quoted_when_needed() {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", "ns", "sh", "-c", "echo it's"]);
        assert_eq!(show(&cmd), r"ip netns exec ns sh -c 'echo it'\''s'");
    }

    #[test]
    fn missing_tool_names_the_package() {
        let err = require_tool("fslab-no-such-tool", "fslab-pkg").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("`fslab-no-such-tool` not found in PATH: install fslab-pkg (scripts/test does)")
        );
    }

    #[test]
    fn loss_over_100_is_rejected_before_touching_anything() {
        let err = Topology::builder().loss_percent(101).build().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid topology option: loss_percent(101) is more than 100")
        );
    }
}
