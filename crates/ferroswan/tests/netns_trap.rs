//! Trap policies (on-demand tunnels) against strongSwan, in network namespaces.
//!
//! ```text
//!   lan_a ──── gw_a "moon" ─────────────────── gw_b "sun" ──── lan_b
//!   10.1.0.2   ferroswan, trap policy          strongSwan       10.2.0.2
//!              ping -c 1 10.2.0.2 ─► trap ─► IKE ─► CHILD_SA ─► the held echo request
//! ```
//!
//! - [`start_action_trap_brings_the_tunnel_up_with_the_first_packet`]: ferroswan with
//!   `start_action = trap` starts no IKE SA (neither side lists one) and shows the trap
//!   (`list-policies`, and strongSwan's `swanctl --list-pols` against its socket); a single
//!   `ping -c 1 -W 8` from lan_a gets its reply, so the one echo request was held and sent once
//!   the CHILD_SA was up; then both sides list the SA and strongSwan's counts the packet in.
//!   `swanctl --terminate` on ferroswan's side takes the SA down; the trap stays and the next
//!   single ping brings it up again. The echo request's addresses were proposed first in TSi
//!   and TSr (strongSwan logs `received: <host>/32[icmp/8]`) and both sides installed the
//!   configured ranges. Last, `swanctl --uninstall` / `--install --child net`
//!   against ferroswan remove the trap and put it back.
//! - [`close_action_trap_catches_traffic_after_the_peer_closes`]: ferroswan starts the tunnel
//!   (`start_action = start`, `close_action = trap`) and has no trap while it is up; strongSwan
//!   terminates the IKE SA; ferroswan then has no SA but a trap, and the next single ping brings
//!   the tunnel back and gets its reply.
//! - [`a_refused_negotiation_drops_the_held_packets_and_keeps_the_trap`]: strongSwan accepts
//!   the IKE SA but no ESP proposal; the held echo request is dropped and counted
//!   (`trap_failed`), the trap stays, and traffic after the retry delay asks again.
//! - [`two_children_trapped_at_once_share_one_ike_sa`]: two children of one connection (IPv4
//!   and IPv6 networks), both `start_action = trap`; an IPv4 and an IPv6 ping started together
//!   both get their reply, and each side ends with one IKE SA holding both CHILD_SAs (the
//!   second acquire waits for the IKE SA the first one is setting up, as charon's does).
//! - [`trap_with_an_unreachable_peer_counts_overflow`]: nobody answers on sun; a burst of 100
//!   pings fills the trap's queue, the rest is counted as `trap_queue_full`, the daemon keeps
//!   running and the trap stays.
//!
//! Needs root and strongSwan: `#[ignore]`d, run by `scripts/test`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ferroswan::lab::interop::{
    CONN, Case, ExtraSettings, FerroswanInitiation, GatewayConfig, Implementation, LOG_TAIL_LINES,
    RunningGateway, gateway_configs, start_ferroswan, start_strongswan, swanctl, vici_list_sas,
    wait_child_up, write_swanctl_dir,
};
use ferroswan::lab::netns::Topology;
use ferroswan::vici::{Client, Message};

const BIN: &str = env!("CARGO_BIN_EXE_ferroswan");

const SA_TIMEOUT: Duration = Duration::from_secs(30);

/// The running lab; daemons are dropped (killed) before the namespaces go.
struct Lab {
    moon: RunningGateway,
    sun: Option<RunningGateway>,
    topo: Topology,
}

impl Lab {
    /// ferroswan on moon with `moon_extra`, strongSwan on sun unless `no_peer`.
    fn start(initiation: FerroswanInitiation, moon_extra: ExtraSettings, no_peer: bool) -> Self {
        Self::start_with(initiation, moon_extra, ExtraSettings::default(), no_peer)
    }

    /// Also with `sun_extra` in strongSwan's config.
    fn start_with(
        initiation: FerroswanInitiation,
        moon_extra: ExtraSettings,
        sun_extra: ExtraSettings,
        no_peer: bool,
    ) -> Self {
        Self::start_edited(initiation, moon_extra, sun_extra, no_peer, |conf| conf)
    }

    /// Also with each `swanctl.conf` passed through `edit` before its daemon starts.
    fn start_edited(
        initiation: FerroswanInitiation,
        moon_extra: ExtraSettings,
        sun_extra: ExtraSettings,
        no_peer: bool,
        edit: impl Fn(String) -> String,
    ) -> Self {
        let case = Case::psk("trap", Implementation::Ferroswan, "aes128gcm16").unwrap();
        let topo = Topology::builder().build().unwrap();
        let [mut moon_cfg, mut sun_cfg] = gateway_configs(&case, &topo, initiation).unwrap();
        moon_cfg.extra = moon_extra;
        sun_cfg.extra = sun_extra;
        let base = topo.log_dir().to_path_buf();
        let start = |cfg: &GatewayConfig, ns| {
            let dir = base.join(cfg.name);
            let conf = write_swanctl_dir(&dir, &case, cfg, None).unwrap();
            std::fs::write(&conf, edit(std::fs::read_to_string(&conf).unwrap())).unwrap();
            std::fs::write(
                dir.join("strongswan.conf"),
                "swanctl {\n    load = pem pkcs1 pkcs8 x509 pubkey openssl random\n}\n",
            )
            .unwrap();
            match cfg.implementation {
                Implementation::Strongswan => start_strongswan(ns, cfg.name, &dir),
                _ => start_ferroswan(ns, cfg.name, &dir, Path::new(BIN)),
            }
            .unwrap_or_else(|e| panic!("starting {}: {e}", cfg.name))
        };
        let sun = (!no_peer).then(|| start(&sun_cfg, &topo.gw_b().ns));
        let moon = start(&moon_cfg, &topo.gw_a().ns);
        Self { moon, sun, topo }
    }

    fn sun(&self) -> &RunningGateway {
        self.sun.as_ref().unwrap()
    }

    fn close(self) {
        let Self { moon, sun, topo } = self;
        drop((moon, sun));
        topo.close().unwrap();
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for gw in std::iter::once(&self.moon).chain(self.sun.as_ref()) {
            out.push_str(&format!(
                "\n---- {} ({}) ----\n{}",
                gw.name,
                gw.implementation,
                gw.log_tail(LOG_TAIL_LINES)
            ));
        }
        out
    }

    fn lan_b_host(&self) -> String {
        IpAddr::from(self.topo.lan_b().unwrap().eth0.v4).to_string()
    }

    /// `ping -c 1 -W 8` from lan_a to lan_b's host: whether it got its reply, the round-trip
    /// time ping printed, and how long the command took.
    fn ping_once(&self) -> (bool, Option<f64>, Duration) {
        let lan_a = self.topo.lan_a().unwrap();
        let started = Instant::now();
        let out = lan_a.ns.run(&["ping", "-n", "-c", "1", "-W", "8", &self.lan_b_host()]).unwrap();
        let took = started.elapsed();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let rtt = text
            .split("time=")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok());
        eprintln!("ping -c 1: {}", text.lines().nth(1).unwrap_or_default());
        (out.status.success(), rtt, took)
    }

    /// IKE SAs of [`CONN`] on `gw`.
    fn ike_sas(gw: &RunningGateway) -> usize {
        vici_list_sas(&gw.socket).unwrap().iter().filter(|e| e.get_section(CONN).is_some()).count()
    }
}

/// VICI `list-policies` (traps) on `socket`: `(name, policy)` per event.
fn trap_policies(socket: &Path) -> Vec<(String, Message)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let events = rt.block_on(async {
        let mut client = Client::connect(socket).await.unwrap();
        client.set_timeout(Duration::from_secs(5));
        client
            .request_streaming("list-policies", &Message::new().kv("trap", "yes"), "list-policy")
            .await
            .unwrap()
            .0
    });
    events
        .iter()
        .flat_map(|e| e.sections().map(|(n, m)| (n.to_owned(), m.clone())).collect::<Vec<_>>())
        .collect()
}

fn counter(policy: &Message, key: &str) -> u64 {
    policy.get_str(key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !ok() {
        if Instant::now() > deadline {
            eprintln!("timed out waiting for {what}");
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// The trap `net/net` on ferroswan, or panics with the logs.
fn the_trap(lab: &Lab) -> Message {
    let traps = trap_policies(&lab.moon.socket);
    let name = format!("{CONN}/{CONN}");
    traps
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, m)| m)
        .unwrap_or_else(|| panic!("no trap policy {name} on ferroswan{}", lab.logs()))
}

#[test]
#[ignore = "needs root and strongSwan"]
fn start_action_trap_brings_the_tunnel_up_with_the_first_packet() {
    let lab = Lab::start(
        FerroswanInitiation::UpCommand,
        ExtraSettings::default().child("start_action", "trap"),
        false,
    );
    // Nothing negotiated yet: no IKE SA anywhere, a trap on ferroswan.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(Lab::ike_sas(&lab.moon), 0, "ferroswan started an IKE SA{}", lab.logs());
    assert_eq!(Lab::ike_sas(lab.sun()), 0, "strongSwan has an IKE SA{}", lab.logs());
    let trap = the_trap(&lab);
    assert_eq!(trap.get_str("mode"), Some("TUNNEL"));
    let lan_b = lab.topo.gw_b().lan0.clone().unwrap();
    assert_eq!(
        trap.get_str_list("remote-ts").unwrap(),
        [lan_b.v4_network(), lan_b.v6_network()],
        "{trap:?}"
    );
    // strongSwan's own swanctl lists it too.
    let pols = swanctl(&lab.moon, &["--list-pols"]).unwrap();
    let text = String::from_utf8_lossy(&pols.stdout);
    eprintln!("swanctl --list-pols against ferroswan:\n{text}");
    assert!(text.contains(&format!("{CONN}/{CONN}, TUNNEL")), "{text}");

    // One echo request: it is held, starts IKE, and goes out through the new CHILD_SA.
    let (ok, rtt, took) = lab.ping_once();
    assert!(ok, "the first packet got no reply (rtt {rtt:?}, {took:?}){}", lab.logs());
    eprintln!("first packet: reply after {rtt:?} ms (ping ran {took:?})");
    for gw in [&lab.moon, lab.sun()] {
        if let Err(e) = wait_child_up(gw, SA_TIMEOUT, None) {
            panic!("{e}{}", lab.logs());
        }
    }
    let (_, sun_child) = wait_child_up(lab.sun(), SA_TIMEOUT, None).unwrap();
    assert!(counter(&sun_child, "packets-in") >= 1, "strongSwan saw no packet: {sun_child:?}");
    // RFC 7296 §2.9: the echo request's addresses (ICMP type 8) came first in TSi and TSr;
    // strongSwan narrowed to its configured ranges, which hold them, and so did we.
    let sun_log = std::fs::read_to_string(&lab.sun().log).unwrap();
    let lan_a_host = IpAddr::from(lab.topo.lan_a().unwrap().eth0.v4).to_string();
    for host in [&lan_a_host, &lab.lan_b_host()] {
        let packet_ts = format!("received: {host}/32[icmp/8]");
        let line = sun_log.lines().find(|l| l.contains(&packet_ts));
        eprintln!("strongSwan: {}", line.unwrap_or("(none)").trim());
        assert!(line.is_some(), "strongSwan's log lacks '{packet_ts}'{}", lab.logs());
    }
    let lan_a = lab.topo.gw_a().lan0.clone().unwrap();
    let both = |c: &Message| {
        let list = |k| -> Vec<String> {
            c.get_str_list(k).unwrap().into_iter().map(|t| t.to_string()).collect()
        };
        (list("local-ts"), list("remote-ts"))
    };
    let configured_sun = (
        vec![lan_b.v4_network().to_string(), lan_b.v6_network().to_string()],
        vec![lan_a.v4_network().to_string(), lan_a.v6_network().to_string()],
    );
    assert_eq!(both(&sun_child), configured_sun, "strongSwan's CHILD_SA: {sun_child:?}");
    let (_, moon_child) = wait_child_up(&lab.moon, SA_TIMEOUT, None).unwrap();
    assert_eq!(
        both(&moon_child),
        (configured_sun.1.clone(), configured_sun.0.clone()),
        "ferroswan's CHILD_SA: {moon_child:?}"
    );
    let trap = the_trap(&lab);
    eprintln!("trap after the first ping: {}", ferroswan::status::to_json(&trap));
    assert_eq!(
        (counter(&trap, "ferroswan-acquires"), counter(&trap, "ferroswan-sent")),
        (1, 1),
        "{trap:?}"
    );
    assert_eq!(counter(&trap, "ferroswan-queued"), 0);
    // With the SA up, traffic no longer hits the trap.
    let (ok, rtt, _) = lab.ping_once();
    assert!(ok);
    eprintln!("second ping with the SA up: {rtt:?} ms");
    assert_eq!(counter(&the_trap(&lab), "ferroswan-held"), 1);

    // The SA goes (ferroswan's side terminates it): the trap catches the next packet.
    let out = swanctl(&lab.moon, &["--terminate", "--ike", CONN]).unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(wait_for("both sides without IKE SA", Duration::from_secs(10), || {
        Lab::ike_sas(&lab.moon) == 0 && Lab::ike_sas(lab.sun()) == 0
    }));
    let (ok, rtt, took) = lab.ping_once();
    assert!(ok, "no reply after the SA was terminated{}", lab.logs());
    eprintln!("after terminate: reply after {rtt:?} ms (ping ran {took:?})");
    assert_eq!(counter(&the_trap(&lab), "ferroswan-acquires"), 2);
    wait_child_up(&lab.moon, SA_TIMEOUT, None).unwrap();

    // swanctl --uninstall / --install against ferroswan: the trap goes and comes back.
    let out = swanctl(&lab.moon, &["--uninstall", "--child", CONN]).unwrap();
    assert!(out.status.success(), "swanctl --uninstall: {out:?}");
    assert!(trap_policies(&lab.moon.socket).is_empty());
    let out = swanctl(&lab.moon, &["--uninstall", "--child", CONN]).unwrap();
    assert!(!out.status.success(), "a second --uninstall must fail: {out:?}");
    let out = swanctl(&lab.moon, &["--install", "--child", CONN]).unwrap();
    assert!(out.status.success(), "swanctl --install: {out:?}");
    assert_eq!(the_trap(&lab).get_str("mode"), Some("TUNNEL"));
    lab.close();
}

#[test]
#[ignore = "needs root and strongSwan"]
fn close_action_trap_catches_traffic_after_the_peer_closes() {
    let lab = Lab::start(
        FerroswanInitiation::StartAction,
        ExtraSettings::default().child("close_action", "trap"),
        false,
    );
    for gw in [&lab.moon, lab.sun()] {
        if let Err(e) = wait_child_up(gw, SA_TIMEOUT, None) {
            panic!("{e}{}", lab.logs());
        }
    }
    // As charon: the trap comes only when the close action fires.
    assert!(trap_policies(&lab.moon.socket).is_empty(), "a trap before any close");
    let out = swanctl(lab.sun(), &["--terminate", "--ike", CONN]).unwrap();
    assert!(out.status.success(), "swanctl --terminate on strongSwan: {out:?}");
    assert!(wait_for("ferroswan without IKE SA", Duration::from_secs(10), || {
        Lab::ike_sas(&lab.moon) == 0
    }));
    assert!(
        wait_for("the trap", Duration::from_secs(5), || !trap_policies(&lab.moon.socket)
            .is_empty()),
        "no trap after the peer closed{}",
        lab.logs()
    );
    assert_eq!(Lab::ike_sas(&lab.moon), 0, "close_action = trap must not restart by itself");
    let (ok, rtt, took) = lab.ping_once();
    assert!(ok, "the first packet after the close got no reply{}", lab.logs());
    eprintln!("after the peer's close: reply after {rtt:?} ms (ping ran {took:?})");
    for gw in [&lab.moon, lab.sun()] {
        wait_child_up(gw, SA_TIMEOUT, None).unwrap();
    }
    let trap = the_trap(&lab);
    assert_eq!(counter(&trap, "ferroswan-sent"), 1, "{trap:?}");
    lab.close();
}

#[test]
#[ignore = "needs root and strongSwan"]
fn trap_with_an_unreachable_peer_counts_overflow() {
    let lab = Lab::start(
        FerroswanInitiation::UpCommand,
        ExtraSettings::default().child("start_action", "trap"),
        true,
    );
    std::thread::sleep(Duration::from_secs(1));
    let lan_a = lab.topo.lan_a().unwrap();
    // 100 echo requests 10 ms apart, nobody answers IKE.
    let out = lan_a
        .ns
        .run(&["ping", "-n", "-q", "-i", "0.01", "-c", "100", "-W", "1", &lab.lan_b_host()])
        .unwrap();
    assert!(!out.status.success(), "a reply without a peer? {out:?}");
    let trap = the_trap(&lab);
    eprintln!("trap after 100 packets, peer unreachable: {}", ferroswan::status::to_json(&trap));
    let queued = counter(&trap, "ferroswan-queued");
    let full = counter(&trap, "ferroswan-queue-full");
    assert_eq!(counter(&trap, "ferroswan-acquires"), 1, "{trap:?}");
    assert_eq!(queued, ferroswan::dataplane::trap::QUEUE_PACKETS as u64, "{trap:?}");
    assert_eq!(queued + full, 100, "{trap:?}");
    // The drops show in the data-plane counters of `ferroswan status` too.
    let status = std::process::Command::new(BIN)
        .args(["status", "--socket"])
        .arg(&lab.moon.socket)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    eprintln!("ferroswan status:\n{text}");
    assert!(text.contains(&format!("trap_queue_full={full}")), "{text}");
    assert!(text.contains("trap policy"), "{text}");
    // Still running, the trap still there.
    let mut moon = lab.moon;
    assert!(moon.process.try_wait().unwrap().is_none(), "ferroswan exited");
    let lab = Lab { moon, sun: lab.sun, topo: lab.topo };
    assert_eq!(trap_policies(&lab.moon.socket).len(), 1);
    lab.close();
}

#[test]
#[ignore = "needs root and strongSwan"]
fn a_refused_negotiation_drops_the_held_packets_and_keeps_the_trap() {
    // strongSwan reads the later `esp_proposals`: no ESP proposal in common.
    let lab = Lab::start_with(
        FerroswanInitiation::UpCommand,
        ExtraSettings::default().child("start_action", "trap"),
        ExtraSettings::default().child("esp_proposals", "aes256-sha512-modp4096"),
        false,
    );
    std::thread::sleep(Duration::from_secs(1));
    let (ok, _, took) = lab.ping_once();
    assert!(!ok, "a reply without a CHILD_SA?{}", lab.logs());
    eprintln!("refused: ping gave up after {took:?}");
    let trap = the_trap(&lab);
    eprintln!("trap after the refusal: {}", ferroswan::status::to_json(&trap));
    assert_eq!(counter(&trap, "ferroswan-acquires"), 1, "{trap:?}");
    assert_eq!(counter(&trap, "ferroswan-failed"), 1, "{trap:?}{}", lab.logs());
    assert_eq!(counter(&trap, "ferroswan-queued"), 0, "{trap:?}");
    // After the retry delay (3 s, and ping waited 8 s), the next packet asks again.
    let (ok, _, _) = lab.ping_once();
    assert!(!ok);
    let trap = the_trap(&lab);
    assert_eq!(counter(&trap, "ferroswan-acquires"), 2, "{trap:?}");
    assert_eq!(counter(&trap, "ferroswan-failed"), 2, "{trap:?}");
    lab.close();
}

/// The child `net` split in two on both sides: `net` for the IPv4 networks, `net6` for the
/// IPv6 ones (same settings otherwise).
fn split_child(conf: String) -> String {
    let lines: Vec<&str> = conf.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == format!("{CONN} {{") && l.starts_with("            "))
        .unwrap();
    let end = start + lines[start..].iter().position(|l| *l == "            }").unwrap();
    let body = &lines[start + 1..end];
    let child = |name: &str, family: usize| {
        let mut out = format!("            {name} {{\n");
        for l in body {
            let t = l.trim();
            if let Some((key, list)) = t.split_once(" = ").filter(|(k, _)| k.ends_with("_ts")) {
                let ts = list.split(", ").nth(family).unwrap();
                out.push_str(&format!("                {key} = {ts}\n"));
            } else {
                out.push_str(l);
                out.push('\n');
            }
        }
        out.push_str("            }\n");
        out
    };
    let mut out = lines[..start].join("\n");
    out.push('\n');
    out.push_str(&child(CONN, 0));
    out.push_str(&child("net6", 1));
    out.push_str(&lines[end + 1..].join("\n"));
    out.push('\n');
    out
}

#[test]
#[ignore = "needs root and strongSwan"]
fn two_children_trapped_at_once_share_one_ike_sa() {
    let lab = Lab::start_edited(
        FerroswanInitiation::UpCommand,
        ExtraSettings::default().child("start_action", "trap"),
        ExtraSettings::default(),
        false,
        split_child,
    );
    std::thread::sleep(Duration::from_secs(1));
    let names: Vec<String> = trap_policies(&lab.moon.socket).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, [format!("{CONN}/{CONN}"), format!("{CONN}/net6")], "{}", lab.logs());
    // One ping over IPv4 (child net) and one over IPv6 (child net6), started together: the
    // second acquire finds the IKE SA of the first still being set up and waits for it.
    let lan_a = lab.topo.lan_a().unwrap();
    let lan_b = lab.topo.lan_b().unwrap();
    let v4 = IpAddr::from(lan_b.eth0.v4).to_string();
    let v6 = IpAddr::from(lan_b.eth0.v6).to_string();
    let ping = |host: &str| {
        let out = lan_a.ns.run(&["ping", "-n", "-c", "1", "-W", "8", host]).unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!("ping {host}: {}", text.lines().nth(1).unwrap_or_default());
        out.status.success()
    };
    let (ok4, ok6) = std::thread::scope(|s| {
        let a = s.spawn(|| ping(&v4));
        let b = s.spawn(|| ping(&v6));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(ok4 && ok6, "replies: IPv4 {ok4}, IPv6 {ok6}{}", lab.logs());
    let children = |gw: &RunningGateway| -> Vec<Vec<String>> {
        vici_list_sas(&gw.socket)
            .unwrap()
            .iter()
            .filter_map(|e| e.get_section(CONN))
            .map(|ike| {
                let mut names: Vec<String> = ike
                    .get_section("child-sas")
                    .map(|c| {
                        c.sections()
                            .filter_map(|(_, c)| c.get_str("name").map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                names.sort();
                names
            })
            .collect()
    };
    let want = vec![vec![CONN.to_owned(), "net6".to_owned()]];
    for gw in [&lab.moon, lab.sun()] {
        assert!(
            wait_for("one IKE SA with both CHILD_SAs", SA_TIMEOUT, || children(gw) == want),
            "{}: {:?}{}",
            gw.name,
            children(gw),
            lab.logs()
        );
    }
    // Nothing extra comes up later (a second IKE SA would show within a second or two).
    std::thread::sleep(Duration::from_secs(2));
    for gw in [&lab.moon, lab.sun()] {
        assert_eq!(children(gw), want, "{}{}", gw.name, lab.logs());
    }
    let moon_log = std::fs::read_to_string(&lab.moon.log).unwrap();
    let queued = moon_log.lines().find(|l| l.contains("is being established: CHILD_SA"));
    eprintln!(
        "ferroswan: {}",
        queued.unwrap_or("(no queued child: the acquires came apart)").trim()
    );
    for (name, trap) in trap_policies(&lab.moon.socket) {
        assert_eq!(
            (counter(&trap, "ferroswan-acquires"), counter(&trap, "ferroswan-sent")),
            (1, 1),
            "{name}: {trap:?}"
        );
    }
    lab.close();
}
