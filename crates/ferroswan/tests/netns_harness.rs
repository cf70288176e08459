//! The namespace harness itself (`ferroswan::lab::netns`), without IPsec: routing, NAT, loss,
//! parallel builds, cleanup on drop and on panic, and the stale-namespace sweep.
//!
//! Every test needs root, `ip`, `nft` and `ping`; `scripts/test` installs them and runs these.

#![allow(missing_docs)]

use std::net::IpAddr;
use std::process::Command;

use ferroswan::lab::netns::{
    Gateway, LanHost, NS_PREFIX, Nat, Netns, Topology, list_namespaces, sweep_stale,
};

fn lans(topo: &Topology) -> (&LanHost, &LanHost) {
    (topo.lan_a().expect("LAN host A"), topo.lan_b().expect("LAN host B"))
}

fn names(topo: &Topology) -> Vec<String> {
    topo.namespaces().into_iter().map(|ns| ns.name().to_owned()).collect()
}

fn ping_all(from: &Netns, to: IpAddr, count: u32) {
    let ping = from.ping(to, count).unwrap();
    assert_eq!(ping.received, count, "ping {to} from {}: {ping:?}", from.name());
}

/// `nft` counters in `gw`'s forward path, one per source address; returns the packet counts.
fn count_forwarded_sources(gw: &Gateway, sources: &[IpAddr], run: impl FnOnce()) -> Vec<u64> {
    let mut rules = String::from("table inet fstest {\n");
    for i in 0..sources.len() {
        rules.push_str(&format!(" counter c{i} {{ }}\n"));
    }
    rules.push_str(" chain seen {\n  type filter hook forward priority 0; policy accept;\n");
    for (i, src) in sources.iter().enumerate() {
        let family = if src.is_ipv4() { "ip" } else { "ip6" };
        rules.push_str(&format!("  {family} saddr {src} counter name \"c{i}\"\n"));
    }
    rules.push_str(" }\n}\n");
    gw.ns.run_with_input(&["nft", "-f", "-"], rules.as_bytes()).unwrap();
    run();
    (0..sources.len())
        .map(|i| {
            let out = gw.ns.run_ok(&["nft", "list", "counter", "inet", "fstest", &format!("c{i}")]);
            let text = String::from_utf8(out.unwrap().stdout).unwrap();
            let packets = text
                .split_whitespace()
                .skip_while(|w| *w != "packets")
                .nth(1)
                .and_then(|n| n.parse().ok());
            packets.unwrap_or_else(|| panic!("no packet count in: {text}"))
        })
        .collect()
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn routed_lans_reach_each_other_over_ipv4_and_ipv6() {
    let topo = Topology::builder().plain_routing(true).build().unwrap();
    let (a, b) = lans(&topo);
    ping_all(&a.ns, b.eth0.v4.into(), 3);
    ping_all(&a.ns, b.eth0.v6.into(), 3);
    ping_all(&b.ns, a.eth0.v4.into(), 3);
    ping_all(&b.ns, a.eth0.v6.into(), 3);
    // The gateways' transit addresses too (what the tunnel endpoints will use).
    ping_all(&topo.gw_a().ns, topo.gw_b().wan0.v4.into(), 2);
    ping_all(&topo.gw_a().ns, topo.gw_b().wan0.v6.into(), 2);
    topo.close().unwrap();
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn without_plain_routing_the_lans_are_cut_off() {
    // The default: only a tunnel could connect the LANs, so a tunnel test cannot pass by accident.
    let topo = Topology::builder().build().unwrap();
    let (a, b) = lans(&topo);
    assert_eq!(a.ns.ping(b.eth0.v4.into(), 2).unwrap().received, 0);
    assert_eq!(a.ns.ping(b.eth0.v6.into(), 2).unwrap().received, 0);
    ping_all(&topo.gw_a().ns, topo.gw_b().wan0.v4.into(), 2);
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn nat_rewrites_lan_a_to_the_router_address() {
    let topo = Topology::builder().nat(Nat::Masquerade).plain_routing(true).build().unwrap();
    let (a, b) = lans(&topo);
    let nat = topo.nat().expect("NAT router");
    assert_eq!(topo.gw_a_as_seen_by_gw_b(), nat.out0);
    let sources = [
        nat.out0.v4.into(),
        nat.out0.v6.into(),
        a.eth0.v4.into(),
        a.eth0.v6.into(),
        topo.gw_a().wan0.v4.into(),
        topo.gw_a().wan0.v6.into(),
    ];
    let counts = count_forwarded_sources(topo.gw_b(), &sources, || {
        ping_all(&a.ns, b.eth0.v4.into(), 3);
        ping_all(&a.ns, b.eth0.v6.into(), 3);
    });
    assert_eq!(counts, [3, 3, 0, 0, 0, 0], "packets forwarded by gw_b per source {sources:?}");
    // Nothing routes back in: LAN B cannot open a connection to LAN A or to gw_a.
    assert_eq!(b.ns.ping(a.eth0.v4.into(), 1).unwrap().received, 0);
    let err = topo.gw_b().ns.ping(topo.gw_a().wan0.v4.into(), 1).unwrap_err().to_string();
    assert!(err.contains("Network is unreachable"), "{err}");
    // gw_a reaches gw_b through the NAT (the IKE/ESP path of a NAT-T test).
    ping_all(&topo.gw_a().ns, topo.gw_b().wan0.v4.into(), 2);
    ping_all(&topo.gw_a().ns, topo.gw_b().wan0.v6.into(), 2);
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn nat_random_ports_builds_and_forwards() {
    let topo =
        Topology::builder().nat(Nat::MasqueradeRandomPorts).lan_hosts(false).build().unwrap();
    let nat = topo.nat().expect("NAT router");
    let rules = String::from_utf8(nat.ns.run_ok(&["nft", "list", "ruleset"]).unwrap().stdout);
    assert!(rules.unwrap().contains("masquerade random"));
    ping_all(&topo.gw_a().ns, topo.gw_b().wan0.v4.into(), 2);
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn gateway_only_topology_has_no_lans() {
    let topo = Topology::builder().lan_hosts(false).build().unwrap();
    assert!(topo.lan_a().is_none() && topo.lan_b().is_none());
    assert!(topo.gw_a().lan0.is_none() && topo.gw_b().lan0.is_none());
    assert_eq!(topo.namespaces().len(), 2);
    ping_all(&topo.gw_a().ns, topo.gw_b().wan0.v4.into(), 3);
    ping_all(&topo.gw_b().ns, topo.gw_a().wan0.v6.into(), 3);
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn loss_50_percent_loses_a_plausible_share() {
    let topo = Topology::builder().lan_hosts(false).loss_percent(50).build().unwrap();
    let ping = topo.gw_a().ns.ping(topo.gw_b().wan0.v4.into(), 100).unwrap();
    // 50 % each way: a round trip survives with probability 1/4, so about 75 % are lost
    // (σ ≈ 4.3 points for 100 pings); the band is wide on purpose.
    let loss = ping.loss_percent();
    assert!((50.0..=95.0).contains(&loss), "{loss} % lost: {ping:?}");
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn parallel_topologies_do_not_collide() {
    let handles: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(|| {
                let topo = Topology::builder().plain_routing(true).build().unwrap();
                let (a, b) = lans(&topo);
                ping_all(&a.ns, b.eth0.v4.into(), 2);
                ping_all(&a.ns, b.eth0.v6.into(), 2);
                (topo.id().to_owned(), names(&topo))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut ids: Vec<_> = results.iter().map(|(id, _)| id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "ids {ids:?}");
    let existing = list_namespaces().unwrap();
    for (_, names) in &results {
        assert!(names.iter().all(|n| !existing.contains(n)), "left behind: {names:?}");
    }
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn drop_removes_namespaces_processes_and_logs() {
    let topo = Topology::builder().nat(Nat::Masquerade).build().unwrap();
    let created = names(&topo);
    assert_eq!(created.len(), 5);
    assert!(created.iter().all(|n| n.starts_with(NS_PREFIX) && n.contains(topo.id())));
    let existing = list_namespaces().unwrap();
    assert!(created.iter().all(|n| existing.contains(n)));
    let log_dir = topo.log_dir().to_owned();
    // A logged process, and one left running that only the teardown can kill.
    let mut echo = topo
        .gw_b()
        .ns
        .spawn_logged(&["sh", "-c", "echo hello from gw_b; sleep 30"], "echo")
        .unwrap();
    let sleeper = topo.gw_a().ns.spawn(&["sleep", "300"]).unwrap();
    let sleeper_pid = sleeper.pid();
    std::mem::forget(sleeper); // not killed by its own drop
    for _ in 0..50 {
        if echo.read_log().unwrap().contains("hello") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(echo.read_log().unwrap(), "hello from gw_b\n");
    assert!(echo.try_wait().unwrap().is_none());
    drop(topo);
    let existing = list_namespaces().unwrap();
    assert!(created.iter().all(|n| !existing.contains(n)), "left behind: {existing:?}");
    assert!(!log_dir.exists());
    // Killed by the teardown (a zombie until reaped, as it was never waited for).
    let state = std::fs::read_to_string(format!("/proc/{sleeper_pid}/stat")).unwrap_or_default();
    assert!(state.is_empty() || state.contains(") Z "), "sleep still runs: {state}");
    assert!(echo.try_wait().unwrap().is_some());
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn panic_while_holding_a_topology_still_removes_it() {
    let (tx, rx) = std::sync::mpsc::channel();
    let joined = std::thread::spawn(move || {
        let topo = Topology::builder().lan_hosts(false).build().unwrap();
        let logged = topo.gw_a().ns.spawn_logged(&["echo", "post-mortem"], "daemon").unwrap();
        std::mem::forget(logged);
        tx.send((names(&topo), topo.log_dir().to_owned())).unwrap();
        panic!("test panics with a topology alive");
    })
    .join();
    assert!(joined.is_err());
    let (created, log_dir) = rx.recv().unwrap();
    let existing = list_namespaces().unwrap();
    assert!(created.iter().all(|n| !existing.contains(n)), "left behind: {created:?}");
    // Kept for the post-mortem; this test cleans it up itself.
    assert!(log_dir.exists());
    std::fs::remove_dir_all(log_dir).unwrap();
}

/// Removes the listed namespaces on drop (the sweep test's own fixtures).
struct Fixtures(Vec<String>);

impl Drop for Fixtures {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn sweep_removes_namespaces_of_dead_pids_only() {
    let mut child = Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let live_pid = std::process::id();
    let stale = format!("{NS_PREFIX}{dead_pid}-sweep-gwa");
    let live = format!("{NS_PREFIX}{live_pid}-sweep-gwa");
    let foreign = format!("fsother-{dead_pid}-sweep");
    let _fixtures = Fixtures(vec![stale.clone(), live.clone(), foreign.clone()]);
    for name in [&stale, &live, &foreign] {
        let status = Command::new("ip").args(["netns", "add", name]).status().unwrap();
        assert!(status.success(), "ip netns add {name}");
    }
    // A concurrent test's build() may sweep first: either way the stale one must be gone.
    let removed = sweep_stale().unwrap();
    assert!(removed.iter().all(|n| n.starts_with(NS_PREFIX)), "{removed:?}");
    let existing = list_namespaces().unwrap();
    assert!(!existing.contains(&stale), "stale namespace survived: {existing:?}");
    assert!(existing.contains(&live), "live process's namespace was removed");
    assert!(existing.contains(&foreign), "namespace without our prefix was removed");
}

/// The child half of `a_crashed_run_is_swept`: builds a topology, reports it, and aborts so no
/// destructor runs (as with SIGKILL or a crash).
#[test]
#[ignore = "needs root; scripts/test runs it"]
fn crashing_child() {
    // libtest prints "test crashing_child ... " before the first line: the parent searches.
    if std::env::var_os("FSLAB_CRASHING_CHILD").is_none() {
        return; // only meaningful when started by a_crashed_run_is_swept
    }
    let topo = Topology::builder().nat(Nat::Masquerade).build().unwrap();
    let _sleeper = topo.gw_a().ns.spawn(&["sleep", "300"]).unwrap();
    println!("FSLAB_LOG_DIR {}", topo.log_dir().display());
    for name in names(&topo) {
        println!("FSLAB_NS {name}");
    }
    std::process::abort();
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn a_crashed_run_is_swept() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crashing_child", "--include-ignored", "--nocapture", "--test-threads=1"])
        .env("FSLAB_CRASHING_CHILD", "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child was meant to abort");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let left: Vec<String> = stdout
        .lines()
        .filter_map(|l| Some(l.split_once("FSLAB_NS ")?.1))
        .map(str::to_owned)
        .collect();
    let log_dir = stdout.lines().find_map(|l| Some(l.split_once("FSLAB_LOG_DIR ")?.1)).unwrap();
    assert_eq!(left.len(), 5, "child output: {stdout}");
    let _fixtures = Fixtures(left.clone()); // in case the sweep fails
    // A concurrent test's build() may sweep first; either way they must all be gone after ours.
    sweep_stale().unwrap();
    let existing = list_namespaces().unwrap();
    assert!(left.iter().all(|n| !existing.contains(n)), "not swept: {left:?}");
    assert!(!std::path::Path::new(log_dir).exists(), "empty log dir {log_dir} not swept");
}
