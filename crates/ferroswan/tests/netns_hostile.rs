//! A running `ferroswan daemon` against an independent ESP implementation and hostile input,
//! at the network level, plus bad configurations refused by the real binary.
//!
//! - Interop: gateway A runs ferroswan (manual SA, AES-128-GCM, raw ESP or ESP-in-UDP);
//!   gateway B is scapy's `SecurityAssociation` (`tests/scapy_peer.py`, run in B's namespace,
//!   no ferroswan there). scapy seals ICMP echo requests from LAN B to LAN A's host and opens
//!   ferroswan's ESP replies; and LAN A's host pings "LAN B" through ferroswan, scapy opening
//!   the requests and sealing the replies. Packets flow both ways between the two
//!   implementations.
//! - Hostile input: scapy sends A a replayed packet, a packet behind the replay window, a
//!   flipped bit, an unknown SPI, a truncated packet, a datagram too short for an SPI, and
//!   validly sealed packets whose inner addresses are outside the SA's selectors. Each is
//!   dropped and counted under its own reason in `ferroswan status --json` (exact counts), and
//!   the tunnel keeps working afterwards.
//! - Bad configs: `check-config` and `daemon` refuse them with `file:line` and what would be
//!   valid, and the daemon leaves no interface or route behind.
//!
//! Needs root (namespaces, TUN, raw sockets) and Debian's python3-scapy: `#[ignore]`d, run by
//! `scripts/test`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ferroswan::lab::netns::{Netns, Topology};
use ferroswan::lab::tunnel::{Daemon, LabTunnel, SPI_A_TO_B, SPI_B_TO_A, TunnelOptions, lab_key};
use ferroswan_proto::esp::DropReason;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ferroswan");
const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scapy_peer.py");
const PROPOSAL: &str = "aes128gcm16";
/// The ICMP payload scapy_peer.py puts in its echo requests.
const PAYLOAD: &str = "ferroswan-scapy-peer";

/// scapy on gateway B, keyed like ferroswan's peer would be.
struct Peer<'t> {
    topo: &'t Topology,
    job: Value,
}

impl<'t> Peer<'t> {
    fn new(topo: &'t Topology, encap: bool) -> Self {
        let job = json!({
            "carrier": if encap { "udp" } else { "esp" },
            "local": topo.gw_b().wan0.v4.to_string(),
            "remote": topo.gw_a().wan0.v4.to_string(),
            "crypt_algo": "AES-GCM",
            // lab_key seeds: B→A is seed 1, A→B seed 0 (as LabTunnel writes the configs).
            "sa_out": {"spi": SPI_B_TO_A, "key": lab_key(PROPOSAL, 1).unwrap()},
            "sa_in": {"spi": SPI_A_TO_B, "key": lab_key(PROPOSAL, 0).unwrap()},
        });
        Self { topo, job }
    }

    /// Runs steps (see scapy_peer.py) in gateway B's namespace; returns one result per step.
    fn run(&self, steps: Vec<Value>) -> Vec<Value> {
        self.run_with(steps, None)
    }

    fn run_with(&self, steps: Vec<Value>, ready_file: Option<&Path>) -> Vec<Value> {
        let mut job = self.job.clone();
        job["steps"] = Value::Array(steps);
        if let Some(f) = ready_file {
            job["ready_file"] = f.display().to_string().into();
        }
        let out = self
            .topo
            .gw_b()
            .ns
            .run_with_input(&["/usr/bin/python3", PEER], job.to_string().as_bytes())
            .expect("scapy_peer.py (python3-scapy: scripts/test installs it)");
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        result["steps"].as_array().unwrap().clone()
    }

    fn lan_a_host(&self) -> String {
        self.topo.lan_a().unwrap().eth0.v4.to_string()
    }

    fn lan_b_host(&self) -> String {
        self.topo.lan_b().unwrap().eth0.v4.to_string()
    }

    /// A step sealing an echo request from LAN B's host to `dst` with ESP sequence `seq`.
    fn echo(&self, seq: u32, dst: &str, replies: u32) -> Value {
        json!({
            "op": "seal", "seq": seq, "src": self.lan_b_host(), "dst": dst,
            "icmp_id": 0x4242, "icmp_seq": seq, "replies": replies,
            "wait": if replies > 0 { 5.0 } else { 0.5 },
        })
    }
}

/// Asserts that a step got exactly one ESP packet back from A: the echo reply to `seq`, sealed
/// by ferroswan under the A→B SA with ESP sequence number `esp_seq`.
fn assert_echo_reply(peer: &Peer<'_>, step: &Value, seq: u32, esp_seq: u32) {
    let got = step["received"].as_array().unwrap();
    assert_eq!(got.len(), 1, "expected one ESP reply: {step}");
    let r = &got[0];
    assert_eq!(r.get("error"), None, "scapy could not open ferroswan's ESP: {r}");
    assert_eq!(r["spi"], SPI_A_TO_B, "{r}");
    assert_eq!(r["esp_seq"], esp_seq, "{r}");
    assert_eq!(r["src"], peer.lan_a_host(), "{r}");
    assert_eq!(r["dst"], peer.lan_b_host(), "{r}");
    assert_eq!(r["icmp_type"], 0, "not an echo reply: {r}");
    assert_eq!(r["icmp_id"], 0x4242, "{r}");
    assert_eq!(r["icmp_seq"], seq, "{r}");
    assert_eq!(r["payload"], PAYLOAD, "{r}");
}

fn assert_nothing_back(step: &Value) {
    assert_eq!(
        step["received"].as_array().unwrap().len(),
        0,
        "A answered a dropped packet: {step}"
    );
}

/// What `ferroswan status --json` says about the one SA and the data plane.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counters {
    packets_in: u64,
    packets_out: u64,
    /// Per-SA inbound drops by reason (non-zero ones only).
    drops_in: BTreeMap<String, u64>,
    /// Per-SA outbound drops.
    drops_out: BTreeMap<String, u64>,
    /// Global drops by reason (`stats` → `dataplane`, drop reasons only).
    global: BTreeMap<String, u64>,
    io_errors: u64,
}

fn counters(daemon: &Daemon) -> Counters {
    let out = Command::new(BIN)
        .args(["status", "--json", "--socket"])
        .arg(&daemon.socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "status: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sas = v["sas"].as_array().unwrap();
    assert_eq!(sas.len(), 1, "{v}");
    let child = sas[0]["lab"]["child-sas"].as_object().unwrap().values().next().unwrap().clone();
    let num = |v: &Value| v.as_str().unwrap().parse::<u64>().unwrap();
    let map = |v: &Value| -> BTreeMap<String, u64> {
        v.as_object().map_or_else(BTreeMap::new, |o| {
            o.iter().map(|(k, v)| (k.clone(), num(v))).filter(|(_, n)| *n != 0).collect()
        })
    };
    let dataplane = &v["stats"]["dataplane"];
    let global = DropReason::ALL
        .iter()
        .filter_map(|r| dataplane.get(r.as_str()).map(|n| (r.as_str().to_owned(), num(n))))
        .filter(|(_, n)| *n != 0)
        .collect();
    Counters {
        packets_in: num(&child["packets-in"]),
        packets_out: num(&child["packets-out"]),
        drops_in: map(&child["drops-in"]),
        drops_out: map(&child["drops-out"]),
        global,
        io_errors: num(&dataplane["io-errors"]),
    }
}

fn reasons(list: &[(&str, u64)]) -> BTreeMap<String, u64> {
    list.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

/// Polls the status until it equals `want` (the inbound worker runs asynchronously), for up to
/// 5 s; then asserts equality, showing both.
fn expect_counters(daemon: &Daemon, want: &Counters, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = counters(daemon);
        if got == *want {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "after {what}: counters differ\n got: {got:?}\nwant: {want:?}\ndaemon log:\n{}",
                daemon.process.read_log().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start(encap: bool) -> (Topology, Daemon) {
    let topo = Topology::builder().build().unwrap();
    let options = TunnelOptions { proposal: PROPOSAL.into(), encap, ..TunnelOptions::new(BIN) };
    let daemon = LabTunnel::start_gateway_a(&topo, &options).unwrap();
    (topo, daemon)
}

/// ferroswan on A and scapy on B exchange ICMP echoes in both directions: scapy-initiated
/// (scapy seals, ferroswan opens, LAN A's host answers, ferroswan seals, scapy opens) and
/// ferroswan-initiated (LAN A's host pings; scapy opens, answers and seals; ferroswan opens).
fn interop_case(encap: bool) {
    let (topo, daemon) = start(encap);
    let peer = Peer::new(&topo, encap);
    let lan_a = peer.lan_a_host();

    let steps = peer.run((1..=3).map(|seq| peer.echo(seq, &lan_a, 1)).collect());
    for (i, step) in (1..=3).zip(&steps) {
        assert_echo_reply(&peer, step, i, i);
    }
    let none = Counters { packets_in: 3, packets_out: 3, ..Counters::default() };
    expect_counters(&daemon, &none, "three scapy pings");

    // Now ferroswan initiates: LAN A's host pings LAN B's address; scapy answers.
    let ready = topo.log_dir().join("peer.ready");
    let answer = json!({"op": "answer", "count": 3, "seq": 4, "wait": 20.0});
    let ping = |ns: &Netns| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "scapy_peer.py did not get ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        ns.run(&["ping", "-n", "-c", "3", "-i", "0.2", "-W", "5", &peer.lan_b_host()]).unwrap()
    };
    let (steps, ping_out) = std::thread::scope(|s| {
        let pinger = s.spawn(|| ping(&topo.lan_a().unwrap().ns));
        let steps = peer.run_with(vec![answer], Some(&ready));
        (steps, pinger.join().unwrap())
    });
    let ping_text = String::from_utf8_lossy(&ping_out.stdout);
    assert!(ping_text.contains("3 packets transmitted, 3 received"), "{ping_text}\n{steps:?}");
    let got = steps[0]["received"].as_array().unwrap();
    assert_eq!(got.len(), 3, "{got:?}");
    for (r, esp_seq) in got.iter().zip(4..) {
        assert_eq!(r.get("error"), None, "{r}");
        assert_eq!(r["esp_seq"], esp_seq, "{r}");
        assert_eq!(r["icmp_type"], 8, "an echo request from LAN A: {r}");
        assert_eq!(r["src"], lan_a, "{r}");
        assert_eq!(r["dst"], peer.lan_b_host(), "{r}");
    }
    let both = Counters { packets_in: 6, packets_out: 6, ..Counters::default() };
    expect_counters(&daemon, &both, "three ferroswan pings");
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn scapy_peer_interop_raw_esp() {
    interop_case(false);
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn scapy_peer_interop_esp_in_udp() {
    interop_case(true);
}

/// Hostile input against a running daemon, each drop counted under its own reason; the SA
/// keeps working afterwards.
fn hostile_case(encap: bool) {
    let (topo, daemon) = start(encap);
    let peer = Peer::new(&topo, encap);
    let lan_a = peer.lan_a_host();
    let mut want = Counters::default();

    // A valid packet: accepted, answered.
    let steps = peer.run(vec![peer.echo(1, &lan_a, 1)]);
    assert_echo_reply(&peer, &steps[0], 1, 1);
    want.packets_in = 1;
    want.packets_out = 1;
    expect_counters(&daemon, &want, "a valid packet");
    let valid = steps[0]["sent"].as_str().unwrap().to_owned();

    // The same bytes again: a replay.
    let steps = peer.run(vec![json!({"op": "raw", "hex": valid, "wait": 0.5})]);
    assert_nothing_back(&steps[0]);
    want.drops_in = reasons(&[("replayed", 1)]);
    expect_counters(&daemon, &want, "a replayed packet");

    // A flipped bit in the ciphertext (SPI 4 + sequence 4 + GCM IV 8 bytes precede it).
    let mut flipped = peer.echo(2, &lan_a, 0);
    flipped["mutate"] = json!({"flip": 20});
    assert_nothing_back(&peer.run(vec![flipped])[0]);
    want.drops_in = reasons(&[("auth_failed", 1), ("replayed", 1)]);
    expect_counters(&daemon, &want, "a flipped bit");

    // Sealed with the right key but an SPI no SA has.
    let mut unknown = peer.echo(3, &lan_a, 0);
    unknown["spi"] = json!(0xdead_beef_u32);
    assert_nothing_back(&peer.run(vec![unknown])[0]);
    want.global = reasons(&[("unknown_spi", 1)]);
    expect_counters(&daemon, &want, "an unknown SPI");

    // Truncated: the right SPI and sequence number, then 4 bytes of ciphertext, no ICV.
    let mut truncated = peer.echo(4, &lan_a, 0);
    truncated["mutate"] = json!({"truncate": 12});
    assert_nothing_back(&peer.run(vec![truncated])[0]);
    want.drops_in.insert("malformed".into(), 1);
    expect_counters(&daemon, &want, "a truncated packet");

    // Too short to hold an SPI: no SA to charge it to.
    assert_nothing_back(&peer.run(vec![json!({"op": "raw", "hex": "c000", "wait": 0.5})])[0]);
    want.global.insert("malformed".into(), 1);
    expect_counters(&daemon, &want, "a 2-byte datagram");

    // Validly sealed, but the inner destination is outside LAN A (local selector), and then
    // the inner source outside LAN B (remote selector). The SA opens and accepts them (they
    // count in packets-in, as the kernel's SA counters would), the inbound policy check drops
    // them before the TUN.
    let outside_dst = peer.echo(5, "10.9.9.9", 0);
    let mut outside_src = peer.echo(6, &lan_a, 0);
    outside_src["src"] = json!("10.3.0.5");
    let steps = peer.run(vec![outside_dst, outside_src]);
    assert_nothing_back(&steps[0]);
    assert_nothing_back(&steps[1]);
    want.packets_in += 2;
    want.drops_in.insert("policy_mismatch".into(), 2);
    expect_counters(&daemon, &want, "two packets outside the selectors");

    // Far ahead (accepted and answered), then one that was never received but is now left of
    // the 128-packet window: too old, not a replay.
    let steps = peer.run(vec![peer.echo(300, &lan_a, 1), peer.echo(7, &lan_a, 0)]);
    assert_echo_reply(&peer, &steps[0], 300, 2);
    assert_nothing_back(&steps[1]);
    want.packets_in += 1;
    want.packets_out += 1;
    want.drops_in.insert("too_old".into(), 1);
    expect_counters(&daemon, &want, "a packet behind the replay window");

    // The tunnel still works: fresh packets are accepted and answered.
    let steps = peer.run(vec![peer.echo(301, &lan_a, 1), peer.echo(302, &lan_a, 1)]);
    assert_echo_reply(&peer, &steps[0], 301, 3);
    assert_echo_reply(&peer, &steps[1], 302, 4);
    want.packets_in += 2;
    want.packets_out += 2;
    expect_counters(&daemon, &want, "fresh valid packets");
    eprintln!("{} final counters: {want:?}", if encap { "ESP-in-UDP" } else { "raw ESP" });
    let text = daemon.status(BIN.as_ref()).unwrap();
    eprintln!("{text}");
    // The outer addresses, not a traffic selector, as the SA's hosts.
    let hosts = format!("lab: manual SA {} -> {}", topo.gw_a().wan0.v4, topo.gw_b().wan0.v4);
    assert!(text.contains(&hosts), "{text}");
    assert!(
        text.contains(
            "dropped in: auth_failed=1 malformed=1 policy_mismatch=2 replayed=1 too_old=1"
        ),
        "{text}"
    );
    assert!(text.contains("data plane (no SA): malformed=1 unknown_spi=1"), "{text}");
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn hostile_input_is_dropped_by_reason_raw_esp() {
    hostile_case(false);
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn hostile_input_is_dropped_by_reason_esp_in_udp() {
    hostile_case(true);
}

/// One manual SA section, `name`: 11 lines, the first being `  name {`.
fn manual_sa(name: &str, remote: &str, proposal: &str, key_in: &str, spi_out: u32) -> String {
    let key = lab_key("aes128gcm16", 0).unwrap();
    format!(
        "  {name} {{\n    local_addrs = 192.0.2.1\n    remote_addrs = {remote}\n    \
         esp_proposal = {proposal}\n    spi_in = {SPI_B_TO_A:#x}\n    spi_out = {spi_out:#x}\n    \
         key_in = {key_in}\n    key_out = {key}\n    local_ts = 10.1.0.0/24\n    \
         remote_ts = 10.2.0.0/24\n  }}\n"
    )
}

/// Line numbers in the configs below: 1 `manual {`, 2 `  lab {`, 3 local_addrs, 4
/// remote_addrs, 5 esp_proposal, 6 spi_in, 7 spi_out, 8 key_in; a second SA starts at 13.
fn bad_config_cases() -> Vec<(&'static str, String, u32, Vec<&'static str>, u32)> {
    let key = lab_key("aes128gcm16", 1).unwrap();
    let one = |sa: String| format!("manual {{\n{sa}}}\n");
    vec![
        (
            "short key",
            one(manual_sa("lab", "192.0.2.2", "aes128gcm16", &key[..10], SPI_A_TO_B)),
            8,
            vec!["key_in is 5 bytes", "needs 20 bytes", "40 hex digits"],
            0o600,
        ),
        (
            "unknown algorithm",
            one(manual_sa("lab", "192.0.2.2", "aes128gcm17", &key, SPI_A_TO_B)),
            5,
            vec!["unknown algorithm 'aes128gcm17'", "did you mean", "aes128gcm16"],
            0o600,
        ),
        (
            "duplicate spi_in",
            format!(
                "manual {{\n{}{}}}\n",
                manual_sa("lab", "192.0.2.2", "aes128gcm16", &key, SPI_A_TO_B),
                manual_sa("lab2", "192.0.2.3", "aes128gcm16", &key, SPI_A_TO_B + 1)
            ),
            // The second SA's spi_in: line 13 + 4.
            17,
            vec!["spi_in 0xc0000b0a of manual SA 'lab2' is already used by manual SA 'lab' at"],
            0o600,
        ),
        (
            "world-readable keys",
            one(manual_sa("lab", "192.0.2.2", "aes128gcm16", &key, SPI_A_TO_B)),
            8,
            vec!["holds secrets (key_in) but is readable by group or others (mode 644)"],
            0o644,
        ),
    ]
}

/// `ip link` and routes of a namespace (to compare before and after a daemon start).
fn net_state(ns: &Netns) -> String {
    let mut state = String::new();
    // Routes in every table (the daemon's live in its own table) and the policy rules.
    for argv in [
        &["ip", "-o", "link"][..],
        &["ip", "-4", "route", "show", "table", "all"],
        &["ip", "-6", "route", "show", "table", "all"],
        &["ip", "-4", "rule"],
        &["ip", "-6", "rule"],
    ] {
        state.push_str(&String::from_utf8_lossy(&ns.run_ok(argv).unwrap().stdout));
    }
    state
}

/// `check-config` and `daemon` refuse bad configs with exit status 1 and `file:line: what`
/// plus what would be valid; the daemon fails before creating its interface, routes or socket.
#[test]
#[ignore = "needs root; scripts/test runs it"]
fn bad_configs_are_refused_with_file_and_line() {
    let topo = Topology::builder().lan_hosts(false).build().unwrap();
    let ns = &topo.gw_a().ns;
    let dir = topo.log_dir();
    let before = net_state(ns);
    assert!(!before.contains("fsw") && !before.contains("ferro"), "{before}");
    for (i, (what, text, line, needles, mode)) in bad_config_cases().into_iter().enumerate() {
        let path = dir.join(format!("bad{i}.conf"));
        std::fs::write(&path, &text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let at = format!("ferroswan: {}:{line}: ", path.display());
        let socket = dir.join(format!("bad{i}.vici"));
        let check = Command::new(BIN).arg("check-config").arg("-c").arg(&path).output().unwrap();
        let daemon = ns
            .run(&[
                "timeout".as_ref(),
                "10".as_ref(),
                BIN.as_ref(),
                "daemon".as_ref(),
                "-c".as_ref(),
                path.as_os_str(),
                "--socket".as_ref(),
                socket.as_os_str(),
            ])
            .unwrap();
        for (cmd, out) in [("check-config", &check), ("daemon", &daemon)] {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{what}: {cmd} must fail: {stderr}");
            assert!(stderr.starts_with(&at), "{what}: {cmd}: want '{at}…', got: {stderr}");
            for needle in &needles {
                assert!(stderr.contains(needle), "{what}: {cmd}: no '{needle}' in: {stderr}");
            }
            eprintln!("{what}: {cmd}: {}", stderr.trim());
        }
        assert!(!socket.exists(), "{what}: the daemon created its VICI socket");
        assert_eq!(net_state(ns), before, "{what}: the daemon left an interface or route");
    }
    // The duplicate SPI error points at the first use too.
    let path = dir.join("bad2.conf");
    let check = Command::new(BIN).arg("check-config").arg("-c").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(stderr.contains(&format!("at {}:6 ", path.display())), "{stderr}");
    assert!(stderr.contains("(inbound SPIs identify the SA and must be unique)"), "{stderr}");
    // The world-readable file says how to fix it.
    let path = dir.join("bad3.conf");
    let check = Command::new(BIN).arg("check-config").arg("-c").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(stderr.trim_end().ends_with(&format!("(chmod 600 {})", path.display())), "{stderr}");
    // And the same config with mode 600 is fine (so the checks above failed for their reason).
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let check = Command::new(BIN).arg("check-config").arg("-c").arg(&path).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    // Control: with it, the daemon does create its interface, so the state checks above can
    // see one.
    let socket = dir.join("good.vici");
    let argv = [
        BIN.as_ref(),
        "daemon".as_ref(),
        "-c".as_ref(),
        path.as_os_str(),
        "--socket".as_ref(),
        socket.as_os_str(),
    ];
    let daemon = ns.spawn_logged(&argv, "good").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "{}", daemon.read_log().unwrap_or_default());
        std::thread::sleep(Duration::from_millis(50));
    }
    let running = net_state(ns);
    // (No `ferroswan { tun { name } }` in these configs: the default name, ferro0.)
    assert!(running.contains("ferro0: <POINTOPOINT"), "{running}");
    assert!(running.contains("10.2.0.0/24 dev ferro0 table"), "{running}");
    daemon.stop().unwrap();
}
