//! End to end: host-to-host transport mode. Two `ferroswan daemon`s in a gateway-only topology
//! protect all traffic between their transit addresses (IPv4 and IPv6, raw ESP and ESP-in-UDP)
//! with manually keyed transport-mode SAs: traffic to the peer is steered into the TUN by the
//! daemon's rule `not fwmark 0x66657272 lookup 0x66657272`, while the daemon's own (marked) ESP
//! to the same address leaves through the real interface. A capture on the transit link proves
//! no echo request or reply and no plaintext crosses it, and after SIGTERM no rule, route or
//! interface of ours is left; after SIGKILL a restart replaces the leftover rule.
//!
//! Needs root (namespaces, TUN): `#[ignore]`d, run by `scripts/test`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferroswan::lab::netns::{BackgroundProcess, Gateway, Netns, Topology};
use ferroswan::sys::netlink::{POLICY_TABLE, RULE_PRIORITY};

const BIN: &str = env!("CARGO_BIN_EXE_ferroswan");

/// Sent from one gateway to the other's transit address; a capture must not contain it.
const MARKER: &str = "TRANSPORT-PLAINTEXT-5c1e";

/// Key material for `proposal`, as hex, different per direction (`seed`).
fn key(proposal: &str, seed: u8) -> String {
    use ferroswan::config::proposal::{manual_esp_suite, parse_esp_proposals};
    let suite = manual_esp_suite(&parse_esp_proposals(proposal).unwrap()).unwrap();
    let len = suite.keymat_len().unwrap();
    (0..len).map(|i| format!("{:02x}", (i as u8).wrapping_mul(41) ^ seed)).collect()
}

/// One gateway's config: a transport-mode SA to the peer per family, selectors left `dynamic`
/// (the outer addresses).
fn config(me: &Gateway, peer: &Gateway, a_side: bool, encap: bool, proposal: &str) -> String {
    let mut sas = String::new();
    let families: [(&str, IpAddr, IpAddr, u32); 2] = [
        ("host4", me.wan0.v4.into(), peer.wan0.v4.into(), 0x4000),
        ("host6", me.wan0.v6.into(), peer.wan0.v6.into(), 0x6000),
    ];
    for (name, local, remote, spi_base) in families {
        // A→B uses spi_base + 1 and key seed 0; B→A spi_base + 2 and seed 1.
        let (spi_out, spi_in, seed_out, seed_in) = if a_side {
            (spi_base + 1, spi_base + 2, 0, 1)
        } else {
            (spi_base + 2, spi_base + 1, 1, 0)
        };
        sas.push_str(&format!(
            "  {name} {{\n    local_addrs = {local}\n    remote_addrs = {remote}\n    \
             mode = transport\n    encap = {}\n    esp_proposal = {proposal}\n    \
             spi_in = {spi_in:#x}\n    spi_out = {spi_out:#x}\n    key_in = {}\n    \
             key_out = {}\n  }}\n",
            if encap { "yes" } else { "no" },
            key(proposal, seed_in),
            key(proposal, seed_out),
        ));
    }
    format!("ferroswan {{\n  tun {{\n    name = fsw0\n  }}\n}}\nmanual {{\n{sas}}}\n")
}

struct Daemon {
    process: BackgroundProcess,
    socket: PathBuf,
}

fn start(dir: &Path, label: &str, ns: &Netns, conf_text: &str) -> Daemon {
    let conf = dir.join(format!("{label}.conf"));
    fs::write(&conf, conf_text).unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o600)).unwrap();
    let socket = dir.join(format!("{label}.vici"));
    let _ = fs::remove_file(&socket);
    let process = ns
        .spawn_logged(
            &[BIN, "daemon", "-c", conf.to_str().unwrap(), "--socket", socket.to_str().unwrap()],
            label,
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "daemon {label} did not start: {}",
            process.read_log().unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Daemon { process, socket }
}

/// SIGTERM, and waits for a clean exit.
fn terminate(mut d: Daemon) -> String {
    let pid = d.process.pid().to_string();
    let out = std::process::Command::new("kill").args(["-TERM", &pid]).output().unwrap();
    assert!(out.status.success(), "kill -TERM {pid}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = d.process.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "daemon did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = d.process.read_log().unwrap_or_default();
    assert!(status.success(), "daemon exited with {status}: {log}");
    assert!(!d.socket.exists(), "VICI socket left behind");
    log
}

fn stdout(ns: &Netns, argv: &[&str]) -> String {
    String::from_utf8(ns.run_ok(argv).unwrap().stdout).unwrap()
}

/// The rules and the table routes of ours in `ns` (empty when none).
fn our_routing(ns: &Netns) -> String {
    let mut out = String::new();
    for family in ["-4", "-6"] {
        let rules = stdout(ns, &["ip", family, "rule", "show"]);
        out.extend(rules.lines().filter(|l| l.contains("proto 245")).map(|l| format!("{l}\n")));
        // A table that does not exist (any more) is an error for some iproute2 versions.
        let table = POLICY_TABLE.to_string();
        let routes = ns.run(&["ip", family, "route", "show", "table", &table]).unwrap();
        out.push_str(&String::from_utf8_lossy(&routes.stdout));
    }
    out
}

fn assert_routing_installed(gw: &Gateway, peer: &Gateway) {
    let ns = &gw.ns;
    for family in ["-4", "-6"] {
        let rules = stdout(ns, &["ip", family, "rule", "show", "pref", &RULE_PRIORITY.to_string()]);
        assert!(
            rules.contains("not from all fwmark 0x66657272 lookup 1717924466 proto 245"),
            "{family} rule missing: {rules}"
        );
    }
    // Those two are all the rules of ours.
    let rules = stdout(ns, &["ip", "rule", "show"]) + &stdout(ns, &["ip", "-6", "rule", "show"]);
    assert_eq!(rules.matches("proto 245").count(), 2, "{rules}");
    let routes = our_routing(ns);
    assert!(
        routes.contains(&format!(
            "{} dev fsw0 proto 245 scope link src {}",
            peer.wan0.v4, gw.wan0.v4
        )),
        "{routes}"
    );
    assert!(
        routes.contains(&format!("{} dev fsw0 proto 245 src {}", peer.wan0.v6, gw.wan0.v6)),
        "{routes}"
    );
    // Nothing of ours in the main table.
    let main = stdout(ns, &["ip", "route", "show", "proto", "245"]);
    assert!(main.trim().is_empty(), "{main}");
}

fn assert_routing_removed(ns: &Netns) {
    let left = our_routing(ns);
    assert!(left.trim().is_empty(), "left behind: {left}");
    assert!(ns.run(&["ip", "link", "show", "fsw0"]).unwrap().status.code() != Some(0), "fsw0 left");
}

/// With `strict_rp_filter`, both gateways check IPv4 sources strictly (`rp_filter = 1`, the
/// default of some distributions) except on the transit interface, loose as the daemon's
/// warning advises (the effective value is the larger of `all` and the interface's).
fn transport_case(encap: bool, proposal: &str, strict_rp_filter: bool) {
    let topo = Topology::builder().lan_hosts(false).build().unwrap();
    let (a, b) = (topo.gw_a(), topo.gw_b());
    if strict_rp_filter {
        for gw in [a, b] {
            gw.ns
                .run_ok(&[
                    "sysctl",
                    "-qw",
                    "net.ipv4.conf.all.rp_filter=1",
                    "net.ipv4.conf.default.rp_filter=1",
                    "net.ipv4.conf.wan0.rp_filter=2",
                ])
                .unwrap();
        }
    }
    let dir = topo.log_dir().to_path_buf();
    let da = start(&dir, "gwa", &a.ns, &config(a, b, true, encap, proposal));
    let db = start(&dir, "gwb", &b.ns, &config(b, a, false, encap, proposal));
    assert_routing_installed(a, b);
    assert_routing_installed(b, a);
    let warned = da.process.read_log().unwrap_or_default().contains("rp_filter = 1 (strict)");
    assert_eq!(warned, strict_rp_filter, "{}", da.process.read_log().unwrap_or_default());

    let pcap = dir.join("transit.pcap");
    let mut capture =
        b.ns.spawn(&[
            "timeout",
            "4",
            "tcpdump",
            "-i",
            "wan0",
            "-nn",
            "--immediate-mode",
            "-U",
            "-Z",
            "root",
            "-w",
            pcap.to_str().unwrap(),
        ])
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    for dst in [IpAddr::from(b.wan0.v4), IpAddr::from(b.wan0.v6)] {
        let p = a.ns.ping(dst, 5).unwrap();
        assert_eq!(
            p.received,
            5,
            "ping {dst} in transport mode: {p:?}\n{}\n{}",
            da.process.read_log().unwrap_or_default(),
            db.process.read_log().unwrap_or_default()
        );
    }
    // UDP with a marker, gw_b → gw_a over both families: never in clear on the wire.
    for (family, dst) in [("AF_INET", a.wan0.v4.to_string()), ("AF_INET6", a.wan0.v6.to_string())] {
        let send = format!(
            "import socket; socket.socket(socket.{family}, socket.SOCK_DGRAM).sendto(b'{MARKER}', ('{dst}', 9))"
        );
        b.ns.run_ok(&["/usr/bin/python3", "-c", &send]).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while capture.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "tcpdump did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    let bytes = fs::read(&pcap).unwrap();
    assert!(bytes.len() > 24, "empty capture");
    assert!(!bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()), "plaintext on the wire");
    let read = |filter: &str| {
        let out = stdout(&b.ns, &["tcpdump", "-nn", "-r", pcap.to_str().unwrap(), filter]);
        out.lines().map(str::to_owned).collect::<Vec<_>>()
    };
    // No echo request or reply in clear (neighbour discovery is ICMPv6 and may be there).
    let echoes = read("icmp or (icmp6 and (ip6[40] == 128 or ip6[40] == 129)) or udp port 9");
    assert!(echoes.is_empty(), "cleartext between the hosts: {echoes:#?}");
    let all = read("");
    let is_esp = |l: &&String| l.contains("ESP") || l.contains(".4500");
    let esp = |v6: bool| all.iter().filter(is_esp).filter(|l| l.contains(" IP6 ") == v6).count();
    // 5 requests + 5 replies + 1 marker datagram per family.
    assert!(esp(false) >= 11 && esp(true) >= 11, "expected ESP for both families: {all:#?}");
    // Everything between the two hosts' addresses is ESP, except address resolution.
    let between = |l: &&String| {
        (l.contains(&a.wan0.v4.to_string()) && l.contains(&b.wan0.v4.to_string()))
            || (l.contains(&a.wan0.v6.to_string()) && l.contains(&b.wan0.v6.to_string()))
    };
    let other: Vec<_> = all
        .iter()
        .filter(between)
        .filter(|l| !is_esp(l))
        .filter(|l| !l.contains("ICMP6, neighbor") && !l.contains("ARP,"))
        .collect();
    assert!(other.is_empty(), "non-ESP traffic between the hosts: {other:#?}");

    // Both daemons counted traffic on their SAs.
    let status = std::process::Command::new(BIN)
        .args(["status", "--socket", db.socket.to_str().unwrap()])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("host4") && status.contains("host6"), "{status}");

    let log = terminate(da);
    assert!(log.contains("rules, routes and fsw0 removed"), "{log}");
    terminate(db);
    assert_routing_removed(&a.ns);
    assert_routing_removed(&b.ns);
    // Without the daemon (and its rule), the peer is reachable in clear again.
    assert_eq!(a.ns.ping(b.wan0.v4.into(), 2).unwrap().received, 2);
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn raw_esp_transport_ipv4_and_ipv6() {
    transport_case(false, "aes128gcm16", true);
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn udp_encapsulated_transport_ipv4_and_ipv6() {
    transport_case(true, "aes128-sha256", false);
}

/// Daemons killed with SIGKILL leave their rules (their routes go with their TUN); the next
/// start replaces them with a warning and works, and a clean stop then leaves nothing. (Both
/// restart: manual SAs restart their sequence numbers, which the peer's replay window would
/// refuse.)
#[test]
#[ignore = "needs root; scripts/test runs it"]
fn restart_after_sigkill_replaces_leftover_rules() {
    let topo = Topology::builder().lan_hosts(false).build().unwrap();
    let (a, b) = (topo.gw_a(), topo.gw_b());
    let dir = topo.log_dir().to_path_buf();
    let conf_a = config(a, b, true, false, "chacha20poly1305");
    let conf_b = config(b, a, false, false, "chacha20poly1305");
    let da = start(&dir, "gwa", &a.ns, &conf_a);
    let db = start(&dir, "gwb", &b.ns, &conf_b);
    assert_eq!(a.ns.ping(b.wan0.v4.into(), 3).unwrap().received, 3);
    da.process.stop().unwrap();
    db.process.stop().unwrap();
    for gw in [a, b] {
        let left = our_routing(&gw.ns);
        assert_eq!(
            left.lines().count(),
            2,
            "the two rules stay, the routes went with fsw0: {left}"
        );
    }
    // With the rules but no table routes, traffic falls through to the main table: in clear.
    assert_eq!(a.ns.ping(b.wan0.v4.into(), 2).unwrap().received, 2);

    let da = start(&dir, "gwa2", &a.ns, &conf_a);
    let db = start(&dir, "gwb2", &b.ns, &conf_b);
    for d in [&da, &db] {
        let log = d.process.read_log().unwrap_or_default();
        assert_eq!(log.matches("removed 1 leftover rule(s)").count(), 2, "{log}");
    }
    assert_routing_installed(a, b);
    assert_routing_installed(b, a);
    for dst in [IpAddr::from(b.wan0.v4), IpAddr::from(b.wan0.v6)] {
        assert_eq!(a.ns.ping(dst, 3).unwrap().received, 3, "{dst}");
    }
    terminate(da);
    terminate(db);
    assert_routing_removed(&a.ns);
    assert_routing_removed(&b.ns);
}
