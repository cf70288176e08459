//! End to end: two `ferroswan daemon`s in network namespaces carry LAN traffic through manually
//! keyed ESP tunnels (raw ESP and ESP-in-UDP; IPv4 and IPv6 inner over IPv4 and IPv6 outer),
//! with a capture on the transit link proving nothing leaves in plaintext.
//!
//! Needs root (namespaces, TUN): `#[ignore]`d, run by `scripts/test`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferroswan::lab::netns::{BackgroundProcess, Netns, Topology};

const BIN: &str = env!("CARGO_BIN_EXE_ferroswan");

/// Sent in cleartext into the tunnel; a capture of the transit link must not contain it.
const MARKER: &str = "PLAINTEXT-MARKER-7f3a";

/// Key material for `proposal`, as hex, different per direction (`seed`).
fn key(proposal: &str, seed: u8) -> String {
    use ferroswan::config::proposal::{manual_esp_suite, parse_esp_proposals};
    let suite = manual_esp_suite(&parse_esp_proposals(proposal).unwrap()).unwrap();
    let len = suite.keymat_len().unwrap();
    (0..len).map(|i| format!("{:02x}", (i as u8).wrapping_mul(37) ^ seed)).collect()
}

struct Side<'a> {
    ns: &'a Netns,
    local: IpAddr,
    remote: IpAddr,
    local_ts: String,
    remote_ts: String,
    spi_in: u32,
    spi_out: u32,
    /// Which direction's key this side receives with (0 = A→B, 1 = B→A).
    key_in: u8,
    key_out: u8,
}

fn config(side: &Side<'_>, encap: bool, proposal: &str) -> String {
    format!(
        "ferroswan {{\n  tun {{\n    name = fsw0\n  }}\n}}\nmanual {{\n  lab {{\n    local_addrs = {}\n    \
         remote_addrs = {}\n    encap = {}\n    esp_proposal = {proposal}\n    spi_in = {:#x}\n    \
         spi_out = {:#x}\n    key_in = {}\n    key_out = {}\n    local_ts = {}\n    remote_ts = {}\n    \
         replay_window = 128\n  }}\n}}\n",
        side.local,
        side.remote,
        if encap { "yes" } else { "no" },
        side.spi_in,
        side.spi_out,
        key(proposal, side.key_in),
        key(proposal, side.key_out),
        side.local_ts,
        side.remote_ts,
    )
}

struct Daemon {
    process: BackgroundProcess,
    socket: PathBuf,
}

fn start(dir: &Path, label: &str, side: &Side<'_>, encap: bool, proposal: &str) -> Daemon {
    let conf = dir.join(format!("{label}.conf"));
    fs::write(&conf, config(side, encap, proposal)).unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o600)).unwrap();
    let socket = dir.join(format!("{label}.vici"));
    let process = side
        .ns
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

fn status(d: &Daemon) -> String {
    let out = std::process::Command::new(BIN)
        .args(["status", "--socket", d.socket.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "status failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn lan_a_net(topo: &Topology) -> (String, String) {
    let i = topo.gw_a().lan0.clone().unwrap();
    (i.v4_network(), i.v6_network())
}

fn lan_b_net(topo: &Topology) -> (String, String) {
    let i = topo.gw_b().lan0.clone().unwrap();
    (i.v4_network(), i.v6_network())
}

fn sides(topo: &Topology, v6_outer: bool) -> (Side<'_>, Side<'_>) {
    let (a, b) = (topo.gw_a(), topo.gw_b());
    let (la, lb) = (a.lan0.clone().unwrap(), b.lan0.clone().unwrap());
    let outer = |i: &ferroswan::lab::netns::IfAddrs| -> IpAddr {
        if v6_outer { i.v6.into() } else { i.v4.into() }
    };
    let ts = |i: &ferroswan::lab::netns::IfAddrs| format!("{}, {}", i.v4_network(), i.v6_network());
    (
        Side {
            ns: &a.ns,
            local: outer(&a.wan0),
            remote: outer(&b.wan0),
            local_ts: ts(&la),
            remote_ts: ts(&lb),
            spi_in: 0xc000_0b0a,
            spi_out: 0xc000_0a0b,
            key_in: 1,
            key_out: 0,
        },
        Side {
            ns: &b.ns,
            local: outer(&b.wan0),
            remote: outer(&a.wan0),
            local_ts: ts(&lb),
            remote_ts: ts(&la),
            spi_in: 0xc000_0a0b,
            spi_out: 0xc000_0b0a,
            key_in: 0,
            key_out: 1,
        },
    )
}

/// Brings up a tunnel, pings across over IPv4 and IPv6 while capturing on B's transit link,
/// and checks the capture holds only ESP (or ESP-in-UDP) and no plaintext.
fn tunnel_case(encap: bool, v6_outer: bool, proposal: &str) {
    let topo = Topology::builder().build().unwrap();
    let (sa, sb) = sides(&topo, v6_outer);
    let dir = topo.log_dir().to_path_buf();
    let da = start(&dir, "gwa", &sa, encap, proposal);
    let db = start(&dir, "gwb", &sb, encap, proposal);
    let (lan_a, lan_b) = (topo.lan_a().unwrap(), topo.lan_b().unwrap());

    let pcap = dir.join("transit.pcap");
    // `timeout` ends tcpdump with SIGTERM, so it flushes the capture; -Z root keeps it able to
    // write into the (root-owned) log directory.
    let mut capture = topo
        .gw_b()
        .ns
        .spawn(&[
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
    for dst in [IpAddr::from(lan_b.eth0.v4), IpAddr::from(lan_b.eth0.v6)] {
        let p = lan_a.ns.ping(dst, 5).unwrap();
        assert_eq!(
            p.received,
            5,
            "ping {dst} through the tunnel: {p:?}\n{}",
            da.process.read_log().unwrap_or_default()
        );
    }
    // A UDP datagram with a marker from B's LAN to A's: it must never appear on the wire.
    let send = format!(
        "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'{MARKER}', ('{}', 9))",
        lan_a.eth0.v4
    );
    lan_b.ns.run_ok(&["/usr/bin/python3", "-c", &send]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while capture.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "tcpdump did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    let bytes = fs::read(&pcap).unwrap();
    assert!(bytes.len() > 24, "empty capture");
    assert!(!bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()), "plaintext on the wire");
    // Inner (LAN) addresses must never be in an outer header on the transit link.
    let (a4, a6) = lan_a_net(&topo);
    let (b4, b6) = lan_b_net(&topo);
    let filter = format!("net {a4} or net {a6} or net {b4} or net {b6}");
    let leaked =
        topo.gw_b().ns.run_ok(&["tcpdump", "-nn", "-r", pcap.to_str().unwrap(), &filter]).unwrap();
    assert!(
        String::from_utf8_lossy(&leaked.stdout).trim().is_empty(),
        "LAN addresses on the transit link: {}",
        String::from_utf8_lossy(&leaked.stdout)
    );
    let esp = topo.gw_b().ns.run_ok(&["tcpdump", "-nn", "-r", pcap.to_str().unwrap()]).unwrap();
    let esp_lines = String::from_utf8_lossy(&esp.stdout)
        .lines()
        .filter(|l| l.contains("ESP") || l.contains("4500"))
        .count();
    assert!(esp_lines >= 20, "expected ESP on the transit link, saw {esp_lines} lines");

    let sa_status = status(&db);
    assert!(sa_status.contains("INSTALLED"), "{sa_status}");
    assert!(sa_status.contains("packets"), "{sa_status}");
    drop((da, db));
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

/// strongSwan's own `swanctl` reads our daemon's SAs over VICI.
#[test]
#[ignore = "needs root and strongswan-swanctl; scripts/test runs it"]
fn swanctl_lists_the_daemons_sas() {
    let topo = Topology::builder().build().unwrap();
    let (sa, sb) = sides(&topo, false);
    let dir = topo.log_dir().to_path_buf();
    let da = start(&dir, "gwa", &sa, false, "aes128gcm16");
    let _db = start(&dir, "gwb", &sb, false, "aes128gcm16");
    let p = topo.lan_a().unwrap().ns.ping(topo.lan_b().unwrap().eth0.v4.into(), 3).unwrap();
    assert_eq!(p.received, 3);
    let uri = format!("unix://{}", da.socket.display());
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
