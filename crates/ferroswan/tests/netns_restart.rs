//! A daemon killed with SIGKILL and started again, against strongSwan in network namespaces:
//! the tunnel must come back by itself, with no manual step.
//!
//! ```text
//!   lan_a ──── gw_a "moon" ─────────────────── gw_b "sun" ──── lan_b
//!   10.1.0.2   initiator                        responder        10.2.0.2
//!              ping -i 0.1 10.2.0.2 ─────────────────────────────►
//! ```
//!
//! - [`killed_ferroswan_initiator_comes_back_with_initial_contact`]: ferroswan (moon,
//!   `start_action = start`) is killed and started again with the same configuration. Its new
//!   IKE_AUTH carries INITIAL_CONTACT, so strongSwan destroys the stale IKE SA ("destroying
//!   duplicate IKE_SA … received INITIAL_CONTACT" in its log) and ends with exactly one IKE SA
//!   and one CHILD_SA, whose SPIs match ferroswan's; the ping flow resumes.
//! - [`killed_strongswan_responder_is_found_again_by_dpd_restart`]: charon (sun, responder
//!   only) is killed; ferroswan (`dpd_delay = 5s`, `dpd_timeout = 10s`,
//!   `dpd_action = restart`, `keyingtries = 0`) notices and keeps probing. charon comes back
//!   once quickly (3 s after the kill: ferroswan has not noticed yet) and once late (after
//!   ferroswan's restart was scheduled): the seconds from charon's start to the first ping
//!   reply are printed; the late case must be within 10 s.
//! - [`killed_ferroswan_responder_is_found_again_by_strongswans_dpd`]: strongSwan (moon,
//!   `start_action = start`, `dpd_action = restart`, `dpd_delay = 5s`) made the IKE SA;
//!   ferroswan (sun) is killed and started again as a responder; strongSwan's DPD gives up on
//!   the old IKE SA (its retransmissions go unanswered) and initiates again; ferroswan accepts
//!   it and both end with one IKE SA.
//! - [`killed_strongswan_initiator_clears_ferroswans_stale_sas`]: the other way round from
//!   the first: strongSwan (moon, `start_action = start`) is killed and started again; its new
//!   IKE_AUTH carries INITIAL_CONTACT, so ferroswan drops the stale IKE SA and CHILD_SA without
//!   a DELETE, says so in its log and in `ferroswan status`, and ends with one IKE SA.
//! - [`stopped_ferroswan_deletes_its_sas_and_comes_back`]: a graceful stop (SIGTERM) of
//!   ferroswan sends DELETE for its IKE SA: strongSwan logs "received DELETE for IKE_SA" and
//!   lists no SA within 3 s, ferroswan exits 0 within 5 s; started again, it brings the tunnel
//!   back (`start_action = start`) with one IKE SA on each side and no INITIAL_CONTACT cleanup
//!   needed.
//! - [`dpd_action_trap_rearms_the_trap_and_the_next_packet_brings_the_tunnel_back`], with
//!   `dpd_action = trap`: charon (sun, responder only) is killed; ferroswan (`dpd_delay = 5s`,
//!   `dpd_timeout = 10s`) declares it dead and arms the trap (strongSwan's `swanctl
//!   --list-pols` against ferroswan shows it); charon is started again and a single
//!   `ping -c 1 -W 8` from lan_a brings the tunnel up and gets its reply.
//!
//! Needs root and strongSwan: `#[ignore]`d, run by `scripts/test`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferroswan::lab::interop::{
    CONN, Case, ExtraSettings, FerroswanInitiation, GatewayConfig, Implementation, LOG_TAIL_LINES,
    RunningGateway, gateway_configs, start_ferroswan, start_strongswan, swanctl, vici_list_sas,
    wait_child_up, write_swanctl_dir,
};
use ferroswan::lab::netns::{BackgroundProcess, Topology};

const BIN: &str = env!("CARGO_BIN_EXE_ferroswan");

/// How long an SA may take to come up at the start.
const SA_TIMEOUT: Duration = Duration::from_secs(30);

/// The ping flow's interval.
const PING_INTERVAL: Duration = Duration::from_millis(100);

/// One gateway: its configuration and directory, and the daemon while it runs.
struct Gw {
    cfg: GatewayConfig,
    dir: PathBuf,
    running: Option<RunningGateway>,
}

/// The running lab. Field order matters: daemons are killed before the namespaces go.
struct Lab {
    moon: Gw,
    sun: Gw,
    case: Case,
    topo: Topology,
}

impl Lab {
    fn start(moon: Implementation, moon_extra: ExtraSettings, sun_extra: ExtraSettings) -> Self {
        let mut case = Case::psk("restart", Implementation::Ferroswan, "aes128gcm16").unwrap();
        case.initiator = moon;
        case.responder = match moon {
            Implementation::Ferroswan => Implementation::Strongswan,
            _ => Implementation::Ferroswan,
        };
        let topo = Topology::builder().build().unwrap();
        let [mut moon_cfg, mut sun_cfg] =
            gateway_configs(&case, &topo, FerroswanInitiation::StartAction).unwrap();
        moon_cfg.extra = moon_extra;
        sun_cfg.extra = sun_extra;
        let base = topo.log_dir().to_path_buf();
        let gw = |cfg: GatewayConfig| Gw { dir: base.join(cfg.name), cfg, running: None };
        let mut lab = Self { moon: gw(moon_cfg), sun: gw(sun_cfg), case, topo };
        for gw in [&lab.moon, &lab.sun] {
            write_swanctl_dir(&gw.dir, &lab.case, &gw.cfg, None).unwrap();
        }
        // Responder first, so the initiator's IKE_SA_INIT finds it listening.
        lab.start_daemon(false);
        lab.start_daemon(true);
        for gw in lab.gateways() {
            if let Err(e) = wait_child_up(gw, SA_TIMEOUT, None) {
                panic!("{e}\n{}", lab.logs());
            }
        }
        lab
    }

    /// Starts moon's (`moon`) or sun's daemon from its directory (again, after a kill).
    fn start_daemon(&mut self, moon: bool) {
        let ns = if moon { &self.topo.gw_a().ns } else { &self.topo.gw_b().ns };
        let gw = if moon { &mut self.moon } else { &mut self.sun };
        // For strongSwan's own swanctl against either daemon (charon writes its own).
        if gw.cfg.implementation != Implementation::Strongswan {
            std::fs::write(
                gw.dir.join("strongswan.conf"),
                "swanctl {\n    load = pem pkcs1 pkcs8 x509 pubkey openssl random\n}\n",
            )
            .unwrap();
        }
        let started = match gw.cfg.implementation {
            Implementation::Strongswan => start_strongswan(ns, gw.cfg.name, &gw.dir),
            _ => start_ferroswan(ns, gw.cfg.name, &gw.dir, Path::new(BIN)),
        };
        gw.running = Some(started.unwrap_or_else(|e| panic!("starting {}: {e}", gw.cfg.name)));
    }

    /// SIGKILLs moon's or sun's daemon.
    fn kill(&mut self, moon: bool) {
        let gw = if moon { &mut self.moon } else { &mut self.sun };
        gw.running.as_mut().unwrap().process.kill().unwrap();
    }

    fn gateways(&self) -> impl Iterator<Item = &RunningGateway> {
        [&self.moon, &self.sun].into_iter().filter_map(|g| g.running.as_ref())
    }

    fn gateway(&self, which: Implementation) -> &RunningGateway {
        self.gateways().find(|g| g.implementation == which).unwrap()
    }

    /// Every log of both daemons (all runs), last lines of each.
    fn logs(&self) -> String {
        let mut out = String::new();
        let mut files: Vec<PathBuf> = Vec::new();
        for gw in [&self.moon, &self.sun] {
            files.extend(
                std::fs::read_dir(&gw.dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "log")),
            );
        }
        files.extend(
            std::fs::read_dir(self.topo.log_dir())
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().contains("ferroswan")),
        );
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| !l.contains("vici client")).collect();
            let tail = lines.get(lines.len().saturating_sub(LOG_TAIL_LINES)..).unwrap_or_default();
            let _ = write!(out, "\n---- {} ----\n{}", f.display(), tail.join("\n"));
        }
        out
    }

    /// An endless ping flow lan_a → lan_b with timestamps (`-D`).
    fn ping_flow(&self) -> BackgroundProcess {
        let lan_a = self.topo.lan_a().unwrap();
        let dst = IpAddr::from(self.topo.lan_b().unwrap().eth0.v4).to_string();
        let interval = format!("{:.3}", PING_INTERVAL.as_secs_f64());
        let argv = ["ping", "-n", "-D", "-O", "-i", &interval, "-W", "1", &dst];
        lan_a.ns.spawn_logged(&argv, "ping-flow").unwrap()
    }

    fn close(self) {
        let Self { moon, sun, topo, .. } = self;
        drop((moon.running, sun.running));
        topo.close().unwrap();
    }
}

/// Seconds since the Unix epoch, as ping's `-D` prints them.
fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// The `-D` timestamps of the echo replies in a ping log.
fn reply_times(log: &str) -> Vec<f64> {
    log.lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
        .collect()
}

/// Waits until the ping flow gets a reply sent after `since` (Unix seconds); returns the
/// seconds from `since` to it.
fn wait_first_reply(lab: &Lab, ping: &BackgroundProcess, since: f64, timeout: Duration) -> f64 {
    let deadline = Instant::now() + timeout;
    loop {
        let log = ping.read_log().unwrap();
        if let Some(t) = reply_times(&log).into_iter().find(|t| *t > since) {
            return t - since;
        }
        assert!(
            Instant::now() < deadline,
            "no ping reply within {timeout:?}{}\nping log tail:\n{}",
            lab.logs(),
            log.lines().rev().take(10).collect::<Vec<_>>().join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// IKE SAs of [`CONN`] a daemon lists: (initiator SPI, responder SPI, CHILD_SA count).
fn ike_sas(gw: &RunningGateway) -> Vec<(String, String, usize)> {
    vici_list_sas(&gw.socket)
        .unwrap()
        .iter()
        .filter_map(|e| e.get_section(CONN))
        .map(|ike| {
            let text = |k: &str| ike.get_str(k).unwrap_or_default().to_owned();
            let children = ike.get_section("child-sas").map_or(0, |c| c.sections().count());
            (text("initiator-spi"), text("responder-spi"), children)
        })
        .collect()
}

/// Waits until both daemons list exactly one IKE SA, the same one, with one CHILD_SA each.
fn wait_one_sa_each(lab: &Lab, timeout: Duration) -> (String, String) {
    let deadline = Instant::now() + timeout;
    loop {
        let ss = ike_sas(lab.gateway(Implementation::Strongswan));
        let fs = ike_sas(lab.gateway(Implementation::Ferroswan));
        if ss.len() == 1 && fs.len() == 1 && ss == fs && ss[0].2 == 1 {
            return (ss[0].0.clone(), ss[0].1.clone());
        }
        assert!(
            Instant::now() < deadline,
            "not one IKE SA each after {timeout:?}: strongSwan {ss:?}, ferroswan {fs:?}{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Lines of a daemon's log files (every run of it) containing `needle`.
fn log_lines(dir: &Path, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        out.extend(text.lines().filter(|l| l.contains(needle)).map(str::to_owned));
    }
    out
}

/// ferroswan's log lines (every run: its logs are in the lab's log directory) containing
/// `needle`.
fn ferroswan_log(lab: &Lab, needle: &str) -> Vec<String> {
    log_lines(lab.topo.log_dir(), needle)
}

#[test]
#[ignore = "needs root and strongSwan; scripts/test runs it"]
fn killed_ferroswan_initiator_comes_back_with_initial_contact() {
    let mut lab =
        Lab::start(Implementation::Ferroswan, ExtraSettings::default(), ExtraSettings::default());
    let before = wait_one_sa_each(&lab, Duration::from_secs(10));
    let ping = lab.ping_flow();
    wait_first_reply(&lab, &ping, unix_now(), Duration::from_secs(10));

    lab.kill(true);
    std::thread::sleep(Duration::from_secs(1));
    let restarted = unix_now();
    lab.start_daemon(true);
    let back = wait_first_reply(&lab, &ping, restarted, Duration::from_secs(30));
    let after = wait_one_sa_each(&lab, Duration::from_secs(20));
    let cleared = log_lines(&lab.sun.dir, "received INITIAL_CONTACT");
    eprintln!(
        "ferroswan initiator SIGKILLed and restarted: first ping reply {back:.1} s after the \
         restart; IKE SA {before:?} -> {after:?}; strongSwan: {}",
        cleared.first().map_or("(no INITIAL_CONTACT line)", String::as_str)
    );
    assert_ne!(before, after, "a new IKE SA");
    assert!(!cleared.is_empty(), "strongSwan did not act on INITIAL_CONTACT{}", lab.logs());
    // strongSwan's own view agrees: one IKE SA.
    let out = swanctl(lab.gateway(Implementation::Strongswan), &["--list-sas"]).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let ike = text.lines().filter(|l| l.starts_with(&format!("{CONN}: #"))).count();
    assert_eq!(ike, 1, "swanctl --list-sas on strongSwan:\n{text}");
    drop(ping);
    lab.close();
}

/// Kills charon, starts it again after `down` (or once ferroswan scheduled its restart, plus
/// `down`); returns seconds from charon's start to the first ping reply.
fn strongswan_back(late: bool, down: Duration) -> f64 {
    let dpd = ExtraSettings::default()
        .connection("dpd_delay", "5s")
        .connection("dpd_timeout", "10s")
        .connection("keyingtries", "0")
        .child("dpd_action", "restart");
    let mut lab = Lab::start(Implementation::Ferroswan, dpd, ExtraSettings::default());
    let ping = lab.ping_flow();
    wait_first_reply(&lab, &ping, unix_now(), Duration::from_secs(10));
    lab.kill(false);
    let killed = Instant::now();
    if late {
        let deadline = killed + Duration::from_secs(40);
        while ferroswan_log(&lab, "restarting net").is_empty() {
            assert!(Instant::now() < deadline, "no restart scheduled{}", lab.logs());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    std::thread::sleep(down);
    let started = unix_now();
    let down_for = killed.elapsed();
    lab.start_daemon(false);
    let back = wait_first_reply(&lab, &ping, started, Duration::from_secs(60));
    wait_one_sa_each(&lab, Duration::from_secs(20));
    let scheduled = ferroswan_log(&lab, "restarting net");
    eprintln!(
        "charon SIGKILLed, down {:.1} s ({}): first ping reply {back:.1} s after charon's \
         start; ferroswan: {}",
        down_for.as_secs_f64(),
        if late { "after ferroswan scheduled its restart" } else { "before DPD noticed" },
        scheduled.first().map_or("(no restart line)", String::as_str)
    );
    assert!(!scheduled.is_empty(), "ferroswan did not log its restart{}", lab.logs());
    drop(ping);
    lab.close();
    back
}

#[test]
#[ignore = "needs root and strongSwan; scripts/test runs it"]
fn killed_strongswan_responder_is_found_again_by_dpd_restart() {
    let late = strongswan_back(true, Duration::from_secs(12));
    assert!(late <= 10.0, "tunnel back {late:.1} s after charon's return (> 10 s)");
    let quick = strongswan_back(false, Duration::from_secs(3));
    // DPD must first notice (dpd_delay + dpd_timeout after the last reply), then one try.
    assert!(quick <= 20.0, "tunnel back {quick:.1} s after charon's return (> 20 s)");
}

#[test]
#[ignore = "needs root and strongSwan; scripts/test runs it"]
fn killed_ferroswan_responder_is_found_again_by_strongswans_dpd() {
    let moon = ExtraSettings::default()
        .connection("dpd_delay", "5s")
        .child("start_action", "start")
        .child("dpd_action", "restart");
    let mut lab = Lab::start(Implementation::Strongswan, moon, ExtraSettings::default());
    let before = wait_one_sa_each(&lab, Duration::from_secs(10));
    let ping = lab.ping_flow();
    wait_first_reply(&lab, &ping, unix_now(), Duration::from_secs(10));
    lab.kill(false);
    std::thread::sleep(Duration::from_secs(1));
    let restarted = unix_now();
    lab.start_daemon(false);
    let back = wait_first_reply(&lab, &ping, restarted, Duration::from_secs(90));
    let after = wait_one_sa_each(&lab, Duration::from_secs(20));
    let dpd = log_lines(&lab.moon.dir, "restarting CHILD_SA");
    eprintln!(
        "ferroswan responder SIGKILLed and restarted: first ping reply {back:.1} s after the \
         restart; IKE SA {before:?} -> {after:?}; strongSwan: {}",
        dpd.first().map_or("(no restart line)", String::as_str)
    );
    assert_ne!(before, after);
    let fs_errors = ferroswan_log(&lab, " ERROR ");
    assert!(fs_errors.is_empty(), "{fs_errors:?}");
    drop(ping);
    lab.close();
}

#[test]
#[ignore = "needs root and strongSwan; scripts/test runs it"]
fn killed_strongswan_initiator_clears_ferroswans_stale_sas() {
    let moon = ExtraSettings::default().child("start_action", "start");
    let mut lab = Lab::start(Implementation::Strongswan, moon, ExtraSettings::default());
    let before = wait_one_sa_each(&lab, Duration::from_secs(10));
    let ping = lab.ping_flow();
    wait_first_reply(&lab, &ping, unix_now(), Duration::from_secs(10));
    lab.kill(true);
    std::thread::sleep(Duration::from_secs(1));
    let restarted = unix_now();
    lab.start_daemon(true);
    let back = wait_first_reply(&lab, &ping, restarted, Duration::from_secs(30));
    let after = wait_one_sa_each(&lab, Duration::from_secs(20));
    let stale = ferroswan_log(&lab, "is stale: the peer restarted");
    eprintln!(
        "strongSwan initiator SIGKILLed and restarted: first ping reply {back:.1} s after the \
         restart; IKE SA {before:?} -> {after:?}; ferroswan: {}",
        stale.first().map_or("(no INITIAL_CONTACT line)", String::as_str)
    );
    assert_ne!(before, after);
    assert_eq!(stale.len(), 1, "ferroswan did not clear the stale IKE SA{}", lab.logs());
    let sent_delete = log_lines(&lab.moon.dir, "received DELETE for IKE_SA");
    assert!(sent_delete.is_empty(), "ferroswan sent a DELETE for the stale SA: {sent_delete:?}");
    // `ferroswan status` says it in plain words.
    let fs = lab.gateway(Implementation::Ferroswan);
    let out = std::process::Command::new(BIN)
        .args(["status", "--socket"])
        .arg(&fs.socket)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(text.contains("notices per connection:") && text.contains("is stale"), "{text}");
    drop(ping);
    lab.close();
}

#[test]
#[ignore = "needs root and strongSwan; scripts/test runs it"]
fn stopped_ferroswan_deletes_its_sas_and_comes_back() {
    let mut lab =
        Lab::start(Implementation::Ferroswan, ExtraSettings::default(), ExtraSettings::default());
    wait_one_sa_each(&lab, Duration::from_secs(10));
    let ping = lab.ping_flow();
    wait_first_reply(&lab, &ping, unix_now(), Duration::from_secs(10));

    let stopping = Instant::now();
    let (status, by_itself) =
        lab.moon.running.as_mut().unwrap().process.terminate(Duration::from_secs(5)).unwrap();
    let stopped_in = stopping.elapsed();
    assert!(by_itself && status.success(), "ferroswan on SIGTERM: {status:?}{}", lab.logs());
    let deadline = Instant::now() + Duration::from_secs(3);
    while !ike_sas(lab.gateway(Implementation::Strongswan)).is_empty() {
        assert!(
            Instant::now() < deadline,
            "strongSwan still has the IKE SA 3 s after ferroswan stopped{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let deleted = log_lines(&lab.sun.dir, "received DELETE for IKE_SA");
    assert!(!deleted.is_empty(), "strongSwan got no DELETE{}", lab.logs());

    let restarted = unix_now();
    lab.start_daemon(true);
    let back = wait_first_reply(&lab, &ping, restarted, Duration::from_secs(30));
    wait_one_sa_each(&lab, Duration::from_secs(20));
    assert!(
        log_lines(&lab.sun.dir, "received INITIAL_CONTACT").is_empty(),
        "strongSwan had stale SAs to clear: the DELETE did not do its job{}",
        lab.logs()
    );
    eprintln!(
        "ferroswan stopped with SIGTERM in {:.2} s, strongSwan: {}; started again: first ping \
         reply {back:.1} s after the start",
        stopped_in.as_secs_f64(),
        deleted.first().map_or("", String::as_str)
    );
    drop(ping);
    lab.close();
}

/// `dpd_action = trap`: ferroswan (moon, `dpd_delay = 5s`, `dpd_timeout = 10s`) and an idle
/// tunnel; charon (sun, responder only) is SIGKILLed. ferroswan's liveness check goes
/// unanswered, DPD declares the peer dead within `dpd_delay + dpd_timeout` (+ 3 s), and the
/// trap policy is armed (strongSwan's `swanctl --list-pols` against ferroswan shows it) with no
/// IKE SA. charon is started again and stays passive; a single `ping -c 1 -W 8` from lan_a
/// hits the trap, brings the tunnel up and gets its reply.
#[test]
#[ignore = "needs root and strongSwan; scripts/test runs it"]
fn dpd_action_trap_rearms_the_trap_and_the_next_packet_brings_the_tunnel_back() {
    let dpd = ExtraSettings::default()
        .connection("dpd_delay", "5s")
        .connection("dpd_timeout", "10s")
        .child("dpd_action", "trap");
    let mut lab = Lab::start(Implementation::Ferroswan, dpd, ExtraSettings::default());
    wait_one_sa_each(&lab, Duration::from_secs(10));
    let fs = lab.gateway(Implementation::Ferroswan);
    let pols = |gw: &RunningGateway| {
        let out = swanctl(gw, &["--list-pols"]).unwrap();
        assert!(out.status.success(), "swanctl --list-pols: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let trap_line = format!("{CONN}/{CONN}, TUNNEL");
    let before = pols(fs);
    assert!(!before.contains(&trap_line), "a trap while the tunnel is up:\n{before}");

    lab.kill(false);
    let killed = Instant::now();
    let limit = Duration::from_secs(5 + 10 + 3);
    let fs = lab.gateway(Implementation::Ferroswan);
    let (gone, listed) = loop {
        let listed = pols(fs);
        if ike_sas(fs).is_empty() && listed.contains(&trap_line) {
            break (killed.elapsed(), listed);
        }
        assert!(
            killed.elapsed() < limit + Duration::from_secs(10),
            "no trap without an IKE SA {:?} after the kill; list-pols:\n{listed}{}",
            killed.elapsed(),
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let dead = ferroswan_log(&lab, "dead peer");
    eprintln!(
        "charon SIGKILLed: ferroswan dropped the IKE SA and armed the trap {:.1} s later ({}); \
         swanctl --list-pols against ferroswan:\n{listed}",
        gone.as_secs_f64(),
        dead.first().map_or("(no dead peer line)", String::as_str)
    );
    assert!(gone <= limit, "DPD took {gone:?}, more than dpd_delay + dpd_timeout + 3 s");
    assert!(!dead.is_empty(), "ferroswan did not log the dead peer{}", lab.logs());

    // charon comes back, passive; nothing happens until a packet hits the trap.
    lab.start_daemon(false);
    std::thread::sleep(Duration::from_secs(2));
    assert!(ike_sas(lab.gateway(Implementation::Strongswan)).is_empty(), "{}", lab.logs());
    let lan_a = lab.topo.lan_a().unwrap();
    let dst = IpAddr::from(lab.topo.lan_b().unwrap().eth0.v4).to_string();
    let started = Instant::now();
    let out = lan_a.ns.run(&["ping", "-n", "-c", "1", "-W", "8", &dst]).unwrap();
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("1 received"),
        "the single ping through the re-armed trap got no reply ({took:?}):\n{text}{}",
        lab.logs()
    );
    let after = wait_one_sa_each(&lab, Duration::from_secs(20));
    let rtt = text.split("time=").nth(1).and_then(|t| t.split_whitespace().next());
    eprintln!(
        "single ping through the re-armed trap: reply after {} ms (ping ran {:.2} s); IKE SA \
         {after:?}",
        rtt.unwrap_or("?"),
        took.as_secs_f64()
    );
    lab.close();
}
