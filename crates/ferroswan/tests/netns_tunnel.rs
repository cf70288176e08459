//! End to end: two `ferroswan daemon`s in network namespaces carry LAN traffic through manually
//! keyed ESP tunnels (raw ESP and ESP-in-UDP; IPv4 and IPv6 inner over IPv4 and IPv6 outer),
//! with a capture on the transit link proving nothing leaves in plaintext, a 100 MiB TCP
//! transfer whose checksum matches, and strongSwan's `swanctl` reading the daemon's SAs.
//!
//! Needs root (namespaces, TUN): `#[ignore]`d, run by `scripts/test`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::net::IpAddr;

use ferroswan::lab::netns::Topology;
use ferroswan::lab::tunnel::{LabTunnel, TunnelOptions, capture_transit, transfer};

const BIN: &str = env!("CARGO_BIN_EXE_ferroswan");

/// Sent in cleartext into the tunnel; a capture of the transit link must not contain it.
const MARKER: &str = "PLAINTEXT-MARKER-7f3a";

fn options(proposal: &str, encap: bool, ipv6_outer: bool) -> TunnelOptions {
    TunnelOptions { proposal: proposal.into(), encap, ipv6_outer, ..TunnelOptions::new(BIN) }
}

/// Brings up a tunnel, pings across over IPv4 and IPv6 and sends a marker datagram while
/// capturing on B's transit link; the capture must hold ESP only, no LAN address, no marker.
fn tunnel_case(encap: bool, ipv6_outer: bool, proposal: &str) {
    let topo = Topology::builder().build().unwrap();
    let tunnel = LabTunnel::start(&topo, options(proposal, encap, ipv6_outer)).unwrap();
    let (lan_a, lan_b) = (topo.lan_a().unwrap(), topo.lan_b().unwrap());
    let report = capture_transit(&topo, MARKER.as_bytes(), || {
        // Both ways: each side starts one exchange per family.
        for (from, dst) in [
            (lan_a, IpAddr::from(lan_b.eth0.v4)),
            (lan_a, IpAddr::from(lan_b.eth0.v6)),
            (lan_b, IpAddr::from(lan_a.eth0.v4)),
            (lan_b, IpAddr::from(lan_a.eth0.v6)),
        ] {
            let p = from.ns.ping(dst, 5)?;
            assert_eq!(p.received, 5, "ping {dst}: {p:?}\n{}", tunnel.a.process.read_log().unwrap_or_default());
        }
        let send = format!(
            "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'{MARKER}', ('{}', 9))",
            lan_a.eth0.v4
        );
        lan_b.ns.run_ok(&["/usr/bin/python3", "-c", &send])?;
        Ok(())
    })
    .unwrap();
    assert!(!report.marker_seen, "plaintext on the transit link: {report:?}");
    assert_eq!(report.leaked, 0, "LAN addresses on the transit link: {report:?}");
    assert!(report.esp >= 41, "expected 40 pings and a datagram as ESP: {report:?}");

    let status = tunnel.b.status(tunnel.options.binary.as_ref()).unwrap();
    assert!(status.contains("INSTALLED"), "{status}");
    // At least 20 pings and the datagram arrived at B (ping may send a spare echo or two).
    let packets_in: u64 = status
        .lines()
        .find(|l| l.trim_start().starts_with("in "))
        .and_then(|l| l.split_whitespace().rev().nth(1)?.parse().ok())
        .unwrap_or(0);
    assert!(packets_in >= 21, "{status}");
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn raw_esp_tunnel_ipv4_outer() {
    tunnel_case(false, false, "aes128gcm16");
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn udp_encapsulated_tunnel_ipv4_outer() {
    tunnel_case(true, false, "aes256gcm16");
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn raw_esp_tunnel_ipv6_outer() {
    tunnel_case(false, true, "chacha20poly1305");
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn udp_encapsulated_tunnel_ipv6_outer_cbc() {
    tunnel_case(true, true, "aes128-sha256");
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn tcp_transfer_of_100_mib_arrives_intact_both_encapsulations() {
    for encap in [false, true] {
        let topo = Topology::builder().build().unwrap();
        let _tunnel = LabTunnel::start(&topo, options("aes128gcm16", encap, false)).unwrap();
        let (lan_a, lan_b) = (topo.lan_a().unwrap(), topo.lan_b().unwrap());
        let t = transfer(&lan_a.ns, &lan_b.ns, lan_b.eth0.v4.into(), 100).unwrap();
        assert_eq!(t.bytes, 100 << 20);
        eprintln!(
            "100 MiB over {} in {:.1} s ({:.0} Mbit/s)",
            if encap { "ESP-in-UDP" } else { "ESP" },
            t.seconds,
            t.mbit_per_s()
        );
    }
}

/// strongSwan's own `swanctl` reads our daemon's SAs over VICI.
#[test]
#[ignore = "needs root and strongswan-swanctl; scripts/test runs it"]
fn swanctl_lists_the_daemons_sas() {
    let topo = Topology::builder().build().unwrap();
    let tunnel = LabTunnel::start(&topo, options("aes128gcm16", false, false)).unwrap();
    let p = topo.lan_a().unwrap().ns.ping(topo.lan_b().unwrap().eth0.v4.into(), 3).unwrap();
    assert_eq!(p.received, 3);
    let uri = format!("unix://{}", tunnel.a.socket.display());
    let out =
        std::process::Command::new("swanctl").args(["--list-sas", "--uri", &uri]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "swanctl failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("lab: #1"), "{text}");
    assert!(text.contains("INSTALLED, TUNNEL"), "{text}");
    assert!(text.contains("ESP:AES_GCM_16-128"), "{text}");
    assert!(text.contains("c0000b0a"), "{text}");
    assert!(text.contains("3 packets"), "{text}");
    assert!(!text.contains("(null)"), "{text}");
}

/// SIGTERM: the daemon exits 0 and leaves no route, TUN interface or socket file behind.
#[test]
#[ignore = "needs root; scripts/test runs it"]
fn sigterm_leaves_nothing_behind() {
    let topo = Topology::builder().build().unwrap();
    let mut tunnel = LabTunnel::start(&topo, options("aes128gcm16", true, false)).unwrap();
    let ns = &topo.gw_a().ns;
    let routes = |ns: &ferroswan::lab::netns::Netns| {
        // Our routes (protocol 245, in any table) and our policy rule (fwmark 0x66657272).
        let v4 = ns.run_ok(&["ip", "route", "show", "table", "all", "proto", "245"]).unwrap();
        let v6 = ns.run_ok(&["ip", "-6", "route", "show", "table", "all", "proto", "245"]).unwrap();
        let r4 = ns.run_ok(&["ip", "rule", "show"]).unwrap();
        let r6 = ns.run_ok(&["ip", "-6", "rule", "show"]).unwrap();
        let rules: String = [r4, r6]
            .iter()
            .flat_map(|o| {
                String::from_utf8_lossy(&o.stdout).lines().map(str::to_owned).collect::<Vec<_>>()
            })
            .filter(|l| l.contains("0x66657272"))
            .collect();
        format!(
            "{}{}{rules}",
            String::from_utf8_lossy(&v4.stdout),
            String::from_utf8_lossy(&v6.stdout)
        )
    };
    assert!(routes(ns).contains("fsw0"), "routes installed while running");
    let pid = tunnel.a.process.pid().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = tunnel.a.process.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "daemon did not exit on SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "exit status {status}: {}",
        tunnel.a.process.read_log().unwrap_or_default()
    );
    assert_eq!(routes(ns).trim(), "", "routes left behind");
    let links = ns.run_ok(&["ip", "link", "show"]).unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains("fsw0"), "TUN left behind");
    assert!(!tunnel.a.socket.exists(), "VICI socket file left behind");
    let log = tunnel.a.process.read_log().unwrap_or_default();
    assert!(log.contains("SIGTERM"), "{log}");
}

/// The TUN's default MTU follows the MTU of the interface holding the SA's local address, so
/// full-size inner packets still fit in one outer packet.
#[test]
#[ignore = "needs root; scripts/test runs it"]
fn tun_mtu_follows_the_outgoing_interface() {
    let topo = Topology::builder().build().unwrap();
    for gw in [topo.gw_a(), topo.gw_b()] {
        gw.ns.run_ok(&["ip", "link", "set", "wan0", "mtu", "1400"]).unwrap();
    }
    let _tunnel = LabTunnel::start(&topo, options("aes128gcm16", false, false)).unwrap();
    let link = topo.gw_a().ns.run_ok(&["ip", "-o", "link", "show", "fsw0"]).unwrap();
    let link = String::from_utf8_lossy(&link.stdout).into_owned();
    // 1400 - 20 (outer IPv4) - 8 (ESP header) - 8 (IV) - 16 (ICV) - 2 (trailer), 4-aligned.
    assert!(link.contains("mtu 1346"), "{link}");
    // A full-size inner packet (1346 bytes: 1318 of ICMP payload) crosses without fragmenting.
    let (lan_a, lan_b) = (topo.lan_a().unwrap(), topo.lan_b().unwrap());
    let dst = lan_b.eth0.v4.to_string();
    lan_a
        .ns
        .run_ok(&["ping", "-n", "-q", "-c", "3", "-w", "10", "-M", "do", "-s", "1318", &dst])
        .unwrap();
}
