//! SA lifecycles against strongSwan, in network namespaces: CHILD_SA and IKE SA rekeying under
//! traffic in both roles, and dead peer detection.
//!
//! ```text
//!   lan_a ──── gw_a "moon" ─────────────────── gw_b "sun" ──── lan_b
//!   10.1.0.2   initiator of the IKE SA          responder       10.2.0.2
//!              ping -i 0.05 10.2.0.2 ───────────────────────────►
//! ```
//!
//! **Rekeying** ([`rekey_under_traffic_strongswan_rekeys`],
//! [`rekey_under_traffic_ferroswan_rekeys`]): one side has short lifetimes (CHILD
//! `rekey_time = 20s`, `life_time = 30s`, so `rand_time` 10 s; IKE `rekey_time = 45s`,
//! `over_time = 15s`, so `rand_time` 15 s), the other the defaults (1 h / 4 h), so only the
//! first starts rekeys. For 3 minutes a ping flow of 20 packets a second crosses the tunnel;
//! then the checks: loss below 0.1 %, at least one CHILD rekey per 22 s and one IKE rekey per
//! 60 s (counted on both sides: strongSwan's unique ids, ferroswan's log lines), only the
//! short-lifetime side starting them (strongSwan's log), never more than two IKE SAs or three
//! CHILD_SAs per side along the way, and at the end one IKE SA and one CHILD_SA per side whose
//! SPIs match (VICI `list-sas` of both, and strongSwan's `swanctl --list-sas` against each).
//! The ESP proposal has PFS, so every CHILD rekey runs a key exchange. In the first variant ferroswan
//! made the IKE SA and strongSwan rekeys it; in the second strongSwan made it and ferroswan
//! rekeys it: either way the first IKE rekey comes from the original responder and the later
//! ones from the current SA's initiator (the new IKE SA's initiator is the rekey's initiator).
//!
//! **Collisions** ([`rekey_under_traffic_both_rekey_colliding`], 90 s): both sides have the
//! short lifetimes without jitter (`rand_time = 0s`), so both rekey each SA at about the same
//! time and CHILD and IKE rekeys collide (RFC 7296 §2.8.1, §2.25); ferroswan is behind a
//! masquerading NAT with random ports. Same checks, and at least one CHILD collision must have
//! happened (strongSwan logs it).
//!
//! Crossing IKE rekeys are concluded as RFC 7296 §2.8.2 says (the nonces decide, or the side
//! that did not notice wins); strongSwan's log shows how, and the variant fails if strongSwan
//! saw IKE rekeys collide but never concluded one. In this lab they rarely cross by themselves:
//! strongSwan, as the original responder, arms its timer a round trip (well under a
//! millisecond) earlier, and its request usually arrives before ours leaves.
//!
//! **Forced IKE rekey crossings** ([`ike_rekeys_cross_when_strongswans_messages_are_held`]):
//! both sides have IKE `rekey_time = 30s`, `rand_time = 0s` (CHILD_SAs the 1 h default), and an
//! nftables filter in strongSwan's namespace holds what charon sends, matched on the IKE header
//! (exchange type, Response flag): from 3 s before the rekey is due its CREATE_CHILD_SA
//! requests and responses, so its request is lost and ours reaches it while its own is out
//! ("detected IKE_REKEY collision"); then only its responses and INFORMATIONAL requests, so its
//! retransmission reaches us while ours is still out (we detect the collision) and it decides
//! by the nonces ("IKE_SA rekey collision won/lost") while its DELETE waits; then nothing, so
//! our retransmission gets its answer and we decide too. Up to five rekeys until two were such
//! genuine crossings (one required), under a ping flow: loss below 0.1 % (only IKE is held), at
//! most three IKE SAs per side, and one agreeing IKE SA and CHILD_SA per side at the end.
//!
//! **Reauthentication** ([`reauth_under_traffic_ferroswan_reauthenticates`],
//! [`reauth_under_traffic_strongswan_reauthenticates`], 90 s): the side that made the IKE SA
//! has `reauth_time = 30s` and builds a new IKE SA from scratch every 30 s (strongSwan with
//! `make_before_break = yes`, which the harness sets); the ping flow must not lose a packet
//! (below 0.1 %), both sides must see new IKE SA unique ids, INITIAL_CONTACT only in the first
//! IKE_AUTH, and at the end one IKE SA and one CHILD_SA per side.
//!
//! The rekey variants run in parallel with the test harness's threads: about 3 minutes of wall time
//! with three threads, 4½ with two. `FERROSWAN_LIFECYCLE_SECS=60` shortens all of them for
//! local runs (the expected rekey counts scale with it).
//!
//! **Dead peer detection** ([`dpd_notices_a_killed_strongswan`]): ferroswan with
//! `dpd_delay = 5s`, `dpd_timeout = 10s` (ferroswan honours `dpd_timeout` for IKEv2 as the cap
//! on the liveness exchange; charon ignores it for IKEv2); charon is killed with SIGKILL; the
//! IKE SA must be gone from ferroswan's `list-sas` within `dpd_delay + dpd_timeout` plus 3 s
//! (the daemon samples ESP counters once a second), not before `dpd_timeout`, and the log must
//! say "dead peer". Once with ferroswan initiating and a ping flow (ESP counts as life, so the
//! check starts only when the flow stops being answered), once with ferroswan responding and an
//! idle tunnel (liveness exchanges every 5 s until the kill).
//!
//! `start_action = trap` and `close_action = trap` are tested in `netns_trap.rs`,
//! `dpd_action = trap` (with a SIGKILLed charon) in `netns_restart.rs`.
//!
//! Needs root and strongSwan: `#[ignore]`d, run by `scripts/test`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ferroswan::lab::interop::{
    CONN, Case, ExtraSettings, FerroswanInitiation, Implementation, LOG_TAIL_LINES, RunningGateway,
    gateway_configs, start_ferroswan, start_strongswan, swanctl, vici_list_sas, wait_child_up,
    write_swanctl_dir,
};
use ferroswan::lab::netns::{BackgroundProcess, Nat, Topology};
use ferroswan::vici::Message;

const BIN: &str = env!("CARGO_BIN_EXE_ferroswan");

/// How long an SA may take to come up.
const SA_TIMEOUT: Duration = Duration::from_secs(30);

/// The ping flow's interval (20 packets a second).
const PING_INTERVAL_MS: u64 = 50;

/// The most loss the rekey tests accept, in percent.
const MAX_LOSS_PERCENT: f64 = 0.1;

/// How long a rekey variant runs: `default` seconds, or `FERROSWAN_LIFECYCLE_SECS`.
fn run_secs(default: u64) -> u64 {
    std::env::var("FERROSWAN_LIFECYCLE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// The short lifetimes of the rekeying side.
fn short_lifetimes() -> ExtraSettings {
    ExtraSettings::default()
        .connection("rekey_time", "45s")
        .connection("over_time", "15s")
        .child("rekey_time", "20s")
        .child("life_time", "30s")
}

// ---------------------------------------------------------------------------------------------
// The lab
// ---------------------------------------------------------------------------------------------

/// Who runs which gateway, and the extra settings of each.
struct Setup {
    moon: Implementation,
    moon_extra: ExtraSettings,
    sun_extra: ExtraSettings,
    /// moon behind a masquerading NAT with random source ports.
    nat: bool,
}

/// The running lab. Field order matters: daemons are killed before the namespaces go.
struct Lab {
    moon: RunningGateway,
    sun: RunningGateway,
    topo: Topology,
}

impl Lab {
    fn start(setup: Setup) -> Self {
        let mut case =
            Case::psk("lifecycle", Implementation::Ferroswan, "aes128gcm16-x25519").unwrap();
        let sun_impl = match setup.moon {
            Implementation::Ferroswan => Implementation::Strongswan,
            _ => Implementation::Ferroswan,
        };
        case.initiator = setup.moon;
        case.responder = sun_impl;
        case.nat = setup.nat;
        let mut builder = Topology::builder();
        if setup.nat {
            builder = builder.nat(Nat::MasqueradeRandomPorts);
        }
        let topo = builder.build().unwrap();
        let [mut moon_cfg, mut sun_cfg] =
            gateway_configs(&case, &topo, FerroswanInitiation::StartAction).unwrap();
        moon_cfg.extra = setup.moon_extra;
        sun_cfg.extra = setup.sun_extra;
        let base = topo.log_dir().to_path_buf();
        let start = |cfg: &ferroswan::lab::interop::GatewayConfig, ns| {
            let dir = base.join(cfg.name);
            write_swanctl_dir(&dir, &case, cfg, None).unwrap();
            // For strongSwan's own swanctl run against either daemon (charon writes its own).
            std::fs::write(
                dir.join("strongswan.conf"),
                "swanctl {\n    load = pem pkcs1 pkcs8 x509 pubkey openssl random\n}\n",
            )
            .unwrap();
            let started = match cfg.implementation {
                Implementation::Strongswan => start_strongswan(ns, cfg.name, &dir),
                _ => start_ferroswan(ns, cfg.name, &dir, Path::new(BIN)),
            };
            started.unwrap_or_else(|e| panic!("starting {}: {e}", cfg.name))
        };
        // Responder first, so the initiator's IKE_SA_INIT finds it listening.
        let sun = start(&sun_cfg, &topo.gw_b().ns);
        let moon = start(&moon_cfg, &topo.gw_a().ns);
        let lab = Self { moon, sun, topo };
        if lab.moon.implementation == Implementation::Strongswan {
            let out =
                swanctl(&lab.moon, &["--initiate", "--child", CONN, "--timeout", "30"]).unwrap();
            assert!(out.status.success(), "swanctl --initiate: {out:?}\n{}", lab.logs());
        }
        for gw in [&lab.moon, &lab.sun] {
            if let Err(e) = wait_child_up(gw, SA_TIMEOUT, None) {
                panic!("{e}\n{}", lab.logs());
            }
        }
        lab
    }

    /// Stops the daemons and removes the namespaces; with `FERROSWAN_LIFECYCLE_KEEP_LOGS=DIR`,
    /// first copies the logs (both daemons', ping's) to `DIR/<label>-<topology id>`.
    fn close(self, label: &str) {
        let Self { moon, sun, topo } = self;
        drop((moon, sun));
        if let Some(dir) = std::env::var_os("FERROSWAN_LIFECYCLE_KEEP_LOGS") {
            let dst = Path::new(&dir).join(format!("{label}-{}", topo.id()));
            std::fs::create_dir_all(&dir).unwrap();
            let out = std::process::Command::new("cp")
                .arg("-a")
                .arg(topo.log_dir())
                .arg(&dst)
                .output()
                .unwrap();
            assert!(out.status.success(), "copying the logs: {out:?}");
            eprintln!("logs kept in {}", dst.display());
        }
        topo.close().unwrap();
    }

    fn gateways(&self) -> [&RunningGateway; 2] {
        [&self.moon, &self.sun]
    }

    fn ferroswan(&self) -> &RunningGateway {
        self.gateway(Implementation::Ferroswan)
    }

    fn strongswan(&self) -> &RunningGateway {
        self.gateway(Implementation::Strongswan)
    }

    fn gateway(&self, which: Implementation) -> &RunningGateway {
        if self.moon.implementation == which { &self.moon } else { &self.sun }
    }

    /// Both daemons' last log lines, for failure messages (without charon's lines about the
    /// test's own VICI clients, which would fill the tail).
    fn logs(&self) -> String {
        let mut out = String::new();
        for gw in self.gateways() {
            let text = std::fs::read_to_string(&gw.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| !l.contains("vici client")).collect();
            let tail = lines.get(lines.len().saturating_sub(LOG_TAIL_LINES)..).unwrap_or_default();
            let _ = write!(
                out,
                "\n---- {} ({}), {} ----\n{}",
                gw.name,
                gw.implementation,
                gw.log.display(),
                tail.join("\n")
            );
        }
        out
    }

    /// A ping flow lan_a → lan_b, `count` echo requests [`PING_INTERVAL_MS`] apart.
    fn ping_flow(&self, count: u64) -> PingFlow {
        let lan_a = self.topo.lan_a().unwrap();
        let dst = IpAddr::from(self.topo.lan_b().unwrap().eth0.v4).to_string();
        let interval = format!("{:.3}", Duration::from_millis(PING_INTERVAL_MS).as_secs_f64());
        // -D -O: timestamps and "no answer yet" lines, to place any loss in the daemons' logs.
        let argv = ["ping", "-n", "-D", "-O", "-i", &interval, "-W", "1", "-c", &count.to_string()];
        let process = lan_a.ns.spawn_logged(&[&argv[..], &[dst.as_str()]].concat(), "ping-flow");
        PingFlow { process: process.unwrap(), count, started: Instant::now() }
    }
}

// ---------------------------------------------------------------------------------------------
// Observations
// ---------------------------------------------------------------------------------------------

/// One CHILD_SA as a `list-sas` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ChildView {
    uniqueid: u32,
    state: String,
    spi_in: String,
    spi_out: String,
}

/// One IKE SA as a `list-sas` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct IkeView {
    uniqueid: u32,
    state: String,
    spi_i: String,
    spi_r: String,
    children: Vec<ChildView>,
}

/// One gateway's IKE SAs of connection [`CONN`] over VICI `list-sas`.
fn ike_sas(gw: &RunningGateway) -> Result<Vec<IkeView>, String> {
    let events = vici_list_sas(&gw.socket)?;
    Ok(views(&events))
}

fn views(events: &[Message]) -> Vec<IkeView> {
    let num = |m: &Message, k: &str| m.get_str(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    let text = |m: &Message, k: &str| m.get_str(k).unwrap_or_default().to_owned();
    events
        .iter()
        .filter_map(|e| e.get_section(CONN))
        .map(|ike| IkeView {
            uniqueid: num(ike, "uniqueid"),
            state: text(ike, "state"),
            spi_i: text(ike, "initiator-spi"),
            spi_r: text(ike, "responder-spi"),
            children: ike
                .get_section("child-sas")
                .map(|c| {
                    c.sections()
                        .map(|(_, ch)| ChildView {
                            uniqueid: num(ch, "uniqueid"),
                            state: text(ch, "state"),
                            spi_in: text(ch, "spi-in"),
                            spi_out: text(ch, "spi-out"),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

/// What was seen of one gateway over a run: every unique id, the most SAs at once.
#[derive(Debug, Default)]
struct Seen {
    ike_ids: BTreeSet<u32>,
    child_ids: BTreeSet<u32>,
    max_ike: usize,
    max_children: usize,
    samples: u32,
}

impl Seen {
    fn add(&mut self, sas: &[IkeView]) {
        self.samples += 1;
        self.max_ike = self.max_ike.max(sas.len());
        self.max_children = self.max_children.max(sas.iter().map(|s| s.children.len()).sum());
        for sa in sas {
            self.ike_ids.insert(sa.uniqueid);
            self.child_ids.extend(sa.children.iter().map(|c| c.uniqueid));
        }
    }

    /// Unique ids seen, less the first: SAs that replaced the first one.
    fn successors(ids: &BTreeSet<u32>) -> usize {
        ids.len().saturating_sub(1)
    }
}

/// Both sides agree: one IKE SA each with the same SPIs, one INSTALLED CHILD_SA each, one's
/// inbound SPI the other's outbound SPI. `Err` says what differs.
fn agreement(a: &[IkeView], b: &[IkeView]) -> Result<(String, String), String> {
    let (Some(ia), Some(ib)) = (single(a), single(b)) else {
        return Err(format!("not one IKE SA each: {a:?} / {b:?}"));
    };
    if ia.state != "ESTABLISHED" || ib.state != "ESTABLISHED" {
        return Err(format!("IKE SA not ESTABLISHED: {ia:?} / {ib:?}"));
    }
    if (&ia.spi_i, &ia.spi_r) != (&ib.spi_i, &ib.spi_r) {
        return Err(format!("IKE SPIs differ: {ia:?} / {ib:?}"));
    }
    let (Some(ca), Some(cb)) = (single(&ia.children), single(&ib.children)) else {
        return Err(format!("not one CHILD_SA each: {ia:?} / {ib:?}"));
    };
    if ca.state != "INSTALLED" || cb.state != "INSTALLED" {
        return Err(format!("CHILD_SA not INSTALLED: {ca:?} / {cb:?}"));
    }
    if ca.spi_in != cb.spi_out || ca.spi_out != cb.spi_in || ca.spi_in.is_empty() {
        return Err(format!("CHILD_SA SPIs differ: {ca:?} / {cb:?}"));
    }
    Ok((ca.spi_in.clone(), ca.spi_out.clone()))
}

fn single<T>(items: &[T]) -> Option<&T> {
    match items {
        [one] => Some(one),
        _ => None,
    }
}

/// `swanctl --list-sas` text: the number of IKE SAs (`net: #…` at the start of a line), of
/// CHILD_SAs (`  net: #…`), and the CHILD_SAs' inbound and outbound SPIs.
fn parse_list_sas_text(text: &str) -> (usize, usize, Vec<(String, String)>) {
    let ike_prefix = format!("{CONN}: #");
    let child_prefix = format!("  {ike_prefix}");
    let ike = text.lines().filter(|l| l.starts_with(&ike_prefix)).count();
    let children = text.lines().filter(|l| l.starts_with(&child_prefix)).count();
    let mut spis = Vec::new();
    let mut spi_in = None;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("in ") {
            spi_in = rest.split_whitespace().next().map(|s| s.trim_end_matches(',').to_owned());
        } else if let Some(rest) = t.strip_prefix("out ")
            && let (Some(i), Some(o)) = (spi_in.take(), rest.split_whitespace().next())
        {
            spis.push((i, o.trim_end_matches(',').to_owned()));
        }
    }
    (ike, children, spis)
}

/// Waits until both sides agree ([`agreement`]) and strongSwan's own `swanctl --list-sas`,
/// run against each daemon, shows the same single IKE SA and CHILD_SA; a rekey may be running
/// when the flow ends, so this polls for up to `timeout`. Returns the strongSwan side's
/// `(spi-in, spi-out)`.
fn wait_agreement(lab: &Lab, timeout: Duration) -> (String, String) {
    let deadline = Instant::now() + timeout;
    loop {
        let ss = ike_sas(lab.strongswan()).unwrap();
        let fs = ike_sas(lab.ferroswan()).unwrap();
        let last = match agreement(&ss, &fs) {
            Ok(spis) => {
                let reversed = (spis.1.clone(), spis.0.clone());
                let mut problems = String::new();
                for (gw, want) in [(lab.strongswan(), &spis), (lab.ferroswan(), &reversed)] {
                    let out = swanctl(gw, &["--list-sas"]).unwrap();
                    let text = String::from_utf8_lossy(&out.stdout).into_owned();
                    let (ike, children, listed) = parse_list_sas_text(&text);
                    if !out.status.success()
                        || ike != 1
                        || children != 1
                        || listed != [want.clone()]
                    {
                        let _ = write!(
                            problems,
                            "swanctl --list-sas on {} shows {ike} IKE SA(s), {children} \
                             CHILD_SA(s), SPIs {listed:?}, expected {want:?}:\n{text}{}\n",
                            gw.implementation,
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                }
                if problems.is_empty() {
                    return spis;
                }
                problems
            }
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "strongSwan and ferroswan do not agree after {timeout:?}: {last}{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A running `ping` flow (see [`Lab::ping_flow`]).
struct PingFlow {
    process: BackgroundProcess,
    count: u64,
    started: Instant,
}

/// What a ping flow measured.
#[derive(Debug)]
struct FlowResult {
    transmitted: u64,
    received: u64,
    /// `no answer yet` lines and other non-reply lines, for the failure message.
    gaps: Vec<String>,
}

impl FlowResult {
    fn loss_percent(&self) -> f64 {
        if self.transmitted == 0 {
            return 100.0;
        }
        100.0 * self.transmitted.saturating_sub(self.received) as f64 / self.transmitted as f64
    }
}

impl PingFlow {
    /// Waits for ping to finish (its count at its interval, plus a few seconds) and reads its
    /// summary.
    fn finish(mut self) -> FlowResult {
        let expected = Duration::from_millis(self.count * PING_INTERVAL_MS);
        let deadline = self.started + expected + Duration::from_secs(30);
        while self.process.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "ping did not finish in {expected:?} + 30 s");
            std::thread::sleep(Duration::from_millis(200));
        }
        self.result()
    }

    /// Stops ping now (SIGINT: it prints its summary) and reads the summary.
    fn interrupt(mut self) -> FlowResult {
        let pid = self.process.pid().to_string();
        let out = std::process::Command::new("kill").args(["-INT", &pid]).output().unwrap();
        assert!(out.status.success(), "kill -INT {pid}: {out:?}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.process.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "ping did not stop on SIGINT");
            std::thread::sleep(Duration::from_millis(100));
        }
        self.result()
    }

    fn result(&self) -> FlowResult {
        let log = self.process.read_log().unwrap();
        let summary = log
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .unwrap_or_else(|| panic!("no ping summary in:\n{log}"));
        let mut parts = summary.split(',');
        let mut num = || -> u64 {
            parts.next().and_then(|p| p.split_whitespace().next()?.parse().ok()).unwrap()
        };
        let (transmitted, received) = (num(), num());
        let gaps = log
            .lines()
            .filter(|l| l.contains("no answer yet") || l.contains("Unreachable"))
            .map(str::to_owned)
            .collect();
        FlowResult { transmitted, received, gaps }
    }
}

/// Lines of `gw`'s log containing `needle`.
fn count_log(gw: &RunningGateway, needle: &str) -> usize {
    let text = std::fs::read_to_string(&gw.log).unwrap_or_default();
    text.lines().filter(|l| l.contains(needle)).count()
}

// ---------------------------------------------------------------------------------------------
// Rekeying under traffic
// ---------------------------------------------------------------------------------------------

/// Who starts the rekeys of a variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rekeyer {
    /// Only this side has short lifetimes.
    Only(Implementation),
    /// Both have the same short lifetimes without jitter (`rand_time = 0`): both rekey the
    /// same SA at about the same time, so most rekeys collide (RFC 7296 §2.8.1, §2.25).
    Both,
}

impl std::fmt::Display for Rekeyer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Only(i) => write!(f, "{i}"),
            Self::Both => f.write_str("both sides (rand_time 0)"),
        }
    }
}

/// Runs one rekey variant for `secs`: `rekeyer` has the short lifetimes, `moon` made the IKE
/// SA, `nat`: moon is behind a NAT.
fn rekey_under_traffic(moon: Implementation, rekeyer: Rekeyer, secs: u64, nat: bool) {
    let (moon_extra, sun_extra) = match rekeyer {
        Rekeyer::Only(r) if r == moon => (short_lifetimes(), ExtraSettings::default()),
        Rekeyer::Only(_) => (ExtraSettings::default(), short_lifetimes()),
        Rekeyer::Both => {
            let no_jitter =
                short_lifetimes().connection("rand_time", "0s").child("rand_time", "0s");
            (no_jitter.clone(), no_jitter)
        }
    };
    let lab = Lab::start(Setup { moon, moon_extra, sun_extra, nat });
    let initial = [ike_sas(lab.strongswan()).unwrap(), ike_sas(lab.ferroswan()).unwrap()];
    let mut seen = [Seen::default(), Seen::default()];
    for (s, sas) in seen.iter_mut().zip(&initial) {
        s.add(sas);
    }

    let count = secs * 1000 / PING_INTERVAL_MS;
    let flow = lab.ping_flow(count);
    let end = flow.started + Duration::from_millis(count * PING_INTERVAL_MS);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_secs(1));
        for (s, gw) in seen.iter_mut().zip([lab.strongswan(), lab.ferroswan()]) {
            match ike_sas(gw) {
                Ok(sas) => s.add(&sas),
                Err(e) => panic!("{}: {e}{}", gw.name, lab.logs()),
            }
        }
    }
    let flow = flow.finish();
    let (spi_in, spi_out) = wait_agreement(&lab, Duration::from_secs(40));
    // The final state counts too (the SAs made since the flow's last sample).
    for (s, gw) in seen.iter_mut().zip([lab.strongswan(), lab.ferroswan()]) {
        s.add(&ike_sas(gw).unwrap());
    }

    let [ss_seen, fs_seen] = &seen;
    let ss_child_rekeys = Seen::successors(&ss_seen.child_ids);
    let ss_ike_rekeys = Seen::successors(&ss_seen.ike_ids);
    let fs_child_rekeys = count_log(lab.ferroswan(), "deleted (Rekeyed)");
    let fs_ike_rekeys = count_log(lab.ferroswan(), "rekeyed: new IKE SA");
    let ss = lab.strongswan();
    let ss_requests = count_log(ss, "generating CREATE_CHILD_SA request");
    let ss_answers = count_log(ss, "generating CREATE_CHILD_SA response");
    // strongSwan logs "CHILD_SA rekey collision won/lost" when its own rekey's answer comes
    // after it answered ours, "detected IKE_REKEY collision" when it answered our IKE rekey
    // while its own was out.
    let child_collisions = count_log(ss, "CHILD_SA rekey collision");
    let ike_collisions = count_log(ss, "detected IKE_REKEY collision");
    // How strongSwan concluded IKE rekey collisions (RFC 7296 §2.8.2): "IKE_SA rekey collision
    // won/lost" after comparing nonces, "peer did not notice IKE_SA rekey collision" when our
    // side completed first; "IKE_SA rekeying failed, trying again" when we refused its rekey.
    let ike_resolved = count_log(ss, "IKE_SA rekey collision");
    let ike_refused = count_log(ss, "IKE_SA rekeying failed");
    let report = format!(
        "{rekeyer} rekeys, {moon} made the IKE SA{}, {secs} s: ping {}/{} answered ({:.3} % \
         loss); CHILD rekeys: strongSwan {ss_child_rekeys} (new unique ids), ferroswan \
         {fs_child_rekeys} (log); IKE rekeys: strongSwan {ss_ike_rekeys}, ferroswan \
         {fs_ike_rekeys}; strongSwan sent {ss_requests} CREATE_CHILD_SA requests, answered \
         {ss_answers}; collisions seen by strongSwan: {child_collisions} CHILD, {ike_collisions} \
         IKE ({ike_resolved} IKE collisions concluded, {ike_refused} IKE rekeys refused); at most {}/{} IKE SAs and {}/{} CHILD_SAs at once (strongSwan/ferroswan, \
         {} samples); final CHILD_SA (strongSwan view) {spi_in}_i {spi_out}_o",
        if nat { " behind a NAT" } else { "" },
        flow.received,
        flow.transmitted,
        flow.loss_percent(),
        ss_seen.max_ike,
        fs_seen.max_ike,
        ss_seen.max_children,
        fs_seen.max_children,
        ss_seen.samples,
    );
    eprintln!("{report}");
    for (gw, needles) in [
        (lab.ferroswan(), &[" WARN ", " ERROR "][..]),
        (lab.strongswan(), &["TEMPORARY_FAILURE", "retry", "failed", "collision"][..]),
    ] {
        let text = std::fs::read_to_string(&gw.log).unwrap_or_default();
        for line in text.lines().filter(|l| needles.iter().any(|n| l.contains(n))) {
            eprintln!("  {} ({}): {line}", gw.name, gw.implementation);
        }
    }
    let fail = |what: &str| -> ! {
        panic!(
            "{what}\n{report}\nping gaps: {:#?}\nlogs in {}{}",
            flow.gaps,
            lab.topo.log_dir().display(),
            lab.logs()
        )
    };

    // Every echo request was sent, and (nearly) all answered.
    if flow.transmitted < count {
        fail(&format!("ping sent only {} of {count}", flow.transmitted));
    }
    if flow.loss_percent() >= MAX_LOSS_PERCENT {
        fail(&format!("loss {:.3} % ≥ {MAX_LOSS_PERCENT} %", flow.loss_percent()));
    }
    // Rekeys: one CHILD rekey per 22 s (rekey_time 20 s minus up to rand_time 10 s: one per
    // 10–20 s), one IKE rekey per 60 s (45 s minus up to 15 s), seen by both sides. Without
    // jitter a CHILD rekey comes every 20 s, later when a collision with an IKE rekey made
    // one side retry (TEMPORARY_FAILURE, 5–15 s): one per 30 s is asked.
    let child_period = if rekeyer == Rekeyer::Both { 30 } else { 22 };
    let (want_child, want_ike) = ((secs / child_period) as usize, (secs / 60) as usize);
    for (who, n) in [("strongSwan", ss_child_rekeys), ("ferroswan", fs_child_rekeys)] {
        if n < want_child {
            fail(&format!("{who} saw {n} CHILD rekeys, expected at least {want_child}"));
        }
    }
    for (who, n) in [("strongSwan", ss_ike_rekeys), ("ferroswan", fs_ike_rekeys)] {
        if n < want_ike {
            fail(&format!("{who} saw {n} IKE rekeys, expected at least {want_ike}"));
        }
    }
    // Only the short-lifetime side started them: strongSwan's CREATE_CHILD_SA requests are
    // its rekeys (CHILD and IKE), its responses ferroswan's.
    let (started, answered) = match rekeyer {
        Rekeyer::Only(Implementation::Strongswan) => (ss_requests, ss_answers),
        Rekeyer::Only(_) => (ss_answers, ss_requests),
        Rekeyer::Both => (ss_requests + ss_answers, 0),
    };
    if answered != 0 || started < want_child + want_ike {
        fail(&format!(
            "{rekeyer} should have started every rekey: it started {started}, the other side \
             {answered}"
        ));
    }
    if rekeyer == Rekeyer::Both && child_collisions == 0 {
        fail("no CHILD rekey collided: the variant did not test collisions");
    }
    // Crossing IKE rekeys are resolved (by the nonces, or as an unnoticed collision), not
    // refused and retried.
    if rekeyer == Rekeyer::Both && ike_collisions > 0 && ike_resolved == 0 {
        fail("strongSwan saw IKE rekeys collide but never concluded a collision");
    }
    // No leaks along the way: during a rekey at most the old and the new SA (and, for an IKE
    // rekey moving a CHILD_SA that is itself being replaced, two children on the new SA).
    // Crossing IKE rekeys hold three IKE SAs for a moment (old, new, redundant).
    let max_ike = if rekeyer == Rekeyer::Both { 3 } else { 2 };
    for (who, s) in [("strongSwan", ss_seen), ("ferroswan", fs_seen)] {
        if s.max_ike > max_ike || s.max_children > 3 {
            fail(&format!(
                "{who} had {} IKE SAs and {} CHILD_SAs at once",
                s.max_ike, s.max_children
            ));
        }
    }

    lab.close(&format!("rekey-{moon}-{}", rekeyer.to_string().replace(' ', "_")));
}

#[test]
#[ignore = "needs root and strongSwan; scripts/test runs it"]
fn rekey_under_traffic_strongswan_rekeys() {
    rekey_under_traffic(
        Implementation::Ferroswan,
        Rekeyer::Only(Implementation::Strongswan),
        run_secs(180),
        false,
    );
}

#[test]
#[ignore = "needs root and strongSwan; scripts/test runs it"]
fn rekey_under_traffic_ferroswan_rekeys() {
    rekey_under_traffic(
        Implementation::Strongswan,
        Rekeyer::Only(Implementation::Ferroswan),
        run_secs(180),
        false,
    );
}

#[test]
#[ignore = "needs root and strongSwan; scripts/test runs it"]
fn rekey_under_traffic_both_rekey_colliding() {
    rekey_under_traffic(Implementation::Ferroswan, Rekeyer::Both, run_secs(90), true);
}

// ---------------------------------------------------------------------------------------------
// Reauthentication (reauth_time), make-before-break
// ---------------------------------------------------------------------------------------------

/// `reauth_time` of the reauthenticating side (no IKE rekeying: `rekey_time` unset).
const REAUTH_SECS: u64 = 30;

/// `reauther` made the IKE SA and has `reauth_time = 30s` (`rand_time = 5s`,
/// `over_time = 10s`), the other side the defaults; strongSwan runs with
/// `make_before_break = yes`. A ping flow runs for `secs`; then the checks: loss below 0.1 %,
/// at least `secs / 30 - 1` reauthentications seen as new IKE SA unique ids by strongSwan, and
/// in the reauthenticating side's log (ferroswan: "closed (Reauthenticated)", strongSwan:
/// "reauthenticating IKE_SA"), never more than two IKE SAs or CHILD_SAs per side at once (old
/// and new), one IKE SA and one CHILD_SA per side at the end.
fn reauth_under_traffic(reauther: Implementation, secs: u64) {
    let reauth = ExtraSettings::default()
        .connection("reauth_time", &format!("{REAUTH_SECS}s"))
        .connection("rand_time", "5s")
        .connection("over_time", "10s");
    let lab = Lab::start(Setup {
        moon: reauther,
        moon_extra: reauth,
        sun_extra: ExtraSettings::default(),
        nat: false,
    });
    let mut seen = [Seen::default(), Seen::default()];
    let count = secs * 1000 / PING_INTERVAL_MS;
    let flow = lab.ping_flow(count);
    let end = flow.started + Duration::from_millis(count * PING_INTERVAL_MS);
    while Instant::now() < end {
        for (s, gw) in seen.iter_mut().zip([lab.strongswan(), lab.ferroswan()]) {
            match ike_sas(gw) {
                Ok(sas) => s.add(&sas),
                Err(e) => panic!("{}: {e}{}", gw.name, lab.logs()),
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let flow = flow.finish();
    let (spi_in, spi_out) = wait_agreement(&lab, Duration::from_secs(40));
    for (s, gw) in seen.iter_mut().zip([lab.strongswan(), lab.ferroswan()]) {
        s.add(&ike_sas(gw).unwrap());
    }
    let [ss_seen, fs_seen] = &seen;
    let ss_new_ike = Seen::successors(&ss_seen.ike_ids);
    let fs_new_ike = Seen::successors(&fs_seen.ike_ids);
    let logged = match reauther {
        Implementation::Strongswan => count_log(lab.strongswan(), "reauthenticating IKE_SA"),
        _ => count_log(lab.ferroswan(), "closed (Reauthenticated)"),
    };
    // strongSwan logs every IKE_AUTH it parses or generates with its notifies: only the
    // first IKE SA's may carry INITIAL_CONTACT.
    let initial_contact = count_log(lab.strongswan(), "N(INIT_CONTACT)");
    let report = format!(
        "{reauther} reauthenticates every {REAUTH_SECS} s (make-before-break), {secs} s: ping \
         {}/{} answered ({:.3} % loss); new IKE SAs (unique ids): strongSwan {ss_new_ike}, \
         ferroswan {fs_new_ike}; reauthentications in {reauther}'s log: {logged}; at most {}/{} \
         IKE SAs and {}/{} CHILD_SAs at once (strongSwan/ferroswan, {} samples); final \
         CHILD_SA (strongSwan view) {spi_in}_i {spi_out}_o",
        flow.received,
        flow.transmitted,
        flow.loss_percent(),
        ss_seen.max_ike,
        fs_seen.max_ike,
        ss_seen.max_children,
        fs_seen.max_children,
        ss_seen.samples,
    );
    eprintln!("{report}");
    let fail = |what: &str| -> ! {
        panic!(
            "{what}\n{report}\nping gaps: {:#?}\nlogs in {}{}",
            flow.gaps,
            lab.topo.log_dir().display(),
            lab.logs()
        )
    };
    if flow.transmitted < count {
        fail(&format!("ping sent only {} of {count}", flow.transmitted));
    }
    if flow.loss_percent() >= MAX_LOSS_PERCENT {
        fail(&format!("loss {:.3} % ≥ {MAX_LOSS_PERCENT} %", flow.loss_percent()));
    }
    let want = (secs / REAUTH_SECS).saturating_sub(1) as usize;
    for (who, n) in [("strongSwan", ss_new_ike), ("ferroswan", fs_new_ike), ("the log", logged)] {
        if n < want {
            fail(&format!("{who}: {n} reauthentications, expected at least {want}"));
        }
    }
    if initial_contact > 1 {
        fail("INITIAL_CONTACT sent again: a reauthentication must not send it");
    }
    for (who, s) in [("strongSwan", ss_seen), ("ferroswan", fs_seen)] {
        if s.max_ike > 2 || s.max_children > 2 {
            fail(&format!(
                "{who} had {} IKE SAs and {} CHILD_SAs at once",
                s.max_ike, s.max_children
            ));
        }
    }
    lab.close(&format!("reauth-{reauther}"));
}

#[test]
#[ignore = "needs root and strongSwan; scripts/test runs it"]
fn reauth_under_traffic_ferroswan_reauthenticates() {
    reauth_under_traffic(Implementation::Ferroswan, run_secs(90));
}

#[test]
#[ignore = "needs root and strongSwan; scripts/test runs it"]
fn reauth_under_traffic_strongswan_reauthenticates() {
    reauth_under_traffic(Implementation::Strongswan, run_secs(90));
}

// ---------------------------------------------------------------------------------------------
// Crossing IKE rekeys, forced with nftables
// ---------------------------------------------------------------------------------------------

/// IKE `rekey_time` of both sides in [`ike_rekeys_cross_when_strongswans_messages_are_held`]
/// (`rand_time = 0s`; CHILD_SAs keep the 1 h default, so every CREATE_CHILD_SA is an IKE
/// rekey).
const CROSS_REKEY_SECS: u64 = 30;

/// How many IKE rekeys the test may force.
const CROSS_ATTEMPTS: usize = 5;

/// Genuine crossings after which the test stops (the nonces pick the winner: two give both
/// outcomes half the time); one is required.
const CROSS_WANTED: usize = 2;

/// A class of IKE messages strongSwan sends that [`IkeFilter`] can hold back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Held {
    /// CREATE_CHILD_SA requests (its IKE rekey request and retransmissions).
    CreateRequests,
    /// CREATE_CHILD_SA responses (its answer to our IKE rekey).
    CreateResponses,
    /// INFORMATIONAL requests (its DELETEs after it concluded the collision).
    InformationalRequests,
}

impl Held {
    const ALL: [Self; 3] =
        [Self::CreateRequests, Self::CreateResponses, Self::InformationalRequests];

    fn chain(self) -> &'static str {
        match self {
            Self::CreateRequests => "create_requests",
            Self::CreateResponses => "create_responses",
            Self::InformationalRequests => "informational_requests",
        }
    }

    /// IKE exchange type (header byte 18) and the Response flag (0x20 of byte 19).
    fn exchange_and_response(self) -> (u8, u8) {
        match self {
            Self::CreateRequests => (36, 0),
            Self::CreateResponses => (36, 0x20),
            Self::InformationalRequests => (37, 0),
        }
    }
}

/// An nftables table in strongSwan's namespace (`output` hook, so only what charon sends) with
/// one chain per [`Held`] class, empty until [`IkeFilter::hold`]. The IKE header is matched
/// with raw payload expressions: on UDP 500 it follows the 8-byte UDP header, on UDP 4500 the
/// 4-byte non-ESP marker (zero) as well. ESP is never touched. The table goes with the
/// namespace.
struct IkeFilter<'a> {
    ns: &'a ferroswan::lab::netns::Netns,
    /// Packets dropped per class, summed over every hold.
    dropped: std::cell::RefCell<std::collections::BTreeMap<Held, u64>>,
}

impl<'a> IkeFilter<'a> {
    const TABLE: &'static str = "fslab_ikecoll";

    fn install(ns: &'a ferroswan::lab::netns::Netns) -> Self {
        let mut rules = format!("table inet {} {{\n", Self::TABLE);
        for class in Held::ALL {
            let _ = writeln!(rules, "  chain {} {{ }}", class.chain());
        }
        rules
            .push_str("  chain output {\n    type filter hook output priority 0; policy accept;\n");
        for class in Held::ALL {
            let _ = writeln!(rules, "    jump {}", class.chain());
        }
        rules.push_str("  }\n}\n");
        ns.run_with_input(&["nft", "-f", "-"], rules.as_bytes()).unwrap();
        Self { ns, dropped: Default::default() }
    }

    /// Starts dropping `class`.
    fn hold(&self, class: Held) {
        let (exchange, response) = class.exchange_and_response();
        // Bit offsets from the start of the UDP header: IKE header byte 18 is bit
        // (8 + 18) · 8 = 208 on port 500, (8 + 4 + 18) · 8 = 240 on port 4500.
        for rule in [
            format!(
                "udp sport 500 @th,208,8 {exchange} @th,216,8 & 0x20 == {response} counter drop"
            ),
            format!(
                "udp sport 4500 @th,64,32 0 @th,240,8 {exchange} @th,248,8 & 0x20 == {response} \
                 counter drop"
            ),
        ] {
            let argv = ["nft", "add", "rule", "inet", Self::TABLE, class.chain(), &rule];
            self.ns.run_ok(&argv).unwrap();
        }
    }

    /// Stops dropping `class` (its drop counts are added up first).
    fn release(&self, class: Held) {
        let out =
            self.ns.run_ok(&["nft", "list", "chain", "inet", Self::TABLE, class.chain()]).unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let packets: u64 = text
            .split("packets ")
            .skip(1)
            .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        *self.dropped.borrow_mut().entry(class).or_default() += packets;
        self.ns.run_ok(&["nft", "flush", "chain", "inet", Self::TABLE, class.chain()]).unwrap();
    }

    fn release_all(&self) {
        for class in Held::ALL {
            self.release(class);
        }
    }
}

/// When the IKE SA of `gw` is due for rekeying, in whole seconds: VICI `rekey-time`
/// (charon), or [`CROSS_REKEY_SECS`] after `established` (ferroswan does not list the IKE
/// SA's `rekey-time`; with `rand_time = 0s` that is the same).
fn ike_rekey_due(gw: &RunningGateway) -> Option<Instant> {
    let events = vici_list_sas(&gw.socket).ok()?;
    let num = |ike: &Message, key: &str| ike.get_str(key)?.parse::<u64>().ok();
    let due = events
        .iter()
        .filter_map(|e| e.get_section(CONN))
        .filter(|ike| ike.get_str("state") == Some("ESTABLISHED"))
        .filter_map(|ike| {
            num(ike, "rekey-time")
                .or_else(|| Some(CROSS_REKEY_SECS.saturating_sub(num(ike, "established")?)))
        })
        .min()?;
    Some(Instant::now() + Duration::from_secs(due))
}

/// The number of lines of `gw`'s log.
fn log_lines(gw: &RunningGateway) -> usize {
    std::fs::read_to_string(&gw.log).unwrap_or_default().lines().count()
}

/// Waits until a line after the first `from` lines of `gw`'s log contains one of `needles`;
/// returns it, or `None` at `deadline`.
fn wait_log_line(
    gw: &RunningGateway,
    from: usize,
    needles: &[&str],
    deadline: Instant,
) -> Option<String> {
    loop {
        let text = std::fs::read_to_string(&gw.log).unwrap_or_default();
        if let Some(line) = text.lines().skip(from).find(|l| needles.iter().any(|n| l.contains(n)))
        {
            return Some(line.to_owned());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

/// How one forced rekey went.
#[derive(Debug, Default)]
struct CrossAttempt {
    /// strongSwan's "detected IKE_REKEY collision": our request reached it while its own was
    /// out (held back).
    ss_detected: bool,
    /// strongSwan's conclusion ("IKE_SA rekey collision won/lost", "peer did not notice").
    ss_concluded: Option<String>,
    /// ferroswan's "detected IKE rekey collision": strongSwan's request reached us while ours
    /// was out.
    fs_detected: bool,
    /// ferroswan's conclusion.
    fs_concluded: Option<String>,
    /// Seconds from the rekey being due to ferroswan's conclusion.
    secs: f64,
}

impl CrossAttempt {
    /// Both sides saw the other's request while their own was out, and both decided by the
    /// nonces, with opposite results.
    fn genuine(&self) -> bool {
        let ss_won = self.ss_concluded.as_deref().is_some_and(|l| l.contains("collision won"));
        let ss_lost = self.ss_concluded.as_deref().is_some_and(|l| l.contains("collision lost"));
        let fs_won = self.fs_concluded.as_deref().is_some_and(|l| l.contains("collision won"));
        let fs_lost = self.fs_concluded.as_deref().is_some_and(|l| l.contains("collision lost"));
        self.ss_detected && self.fs_detected && ((ss_won && fs_lost) || (ss_lost && fs_won))
    }

    fn winner(&self) -> &'static str {
        match &self.ss_concluded {
            Some(l) if l.contains("collision won") => "strongSwan",
            Some(l) if l.contains("collision lost") => "ferroswan",
            _ => "nobody",
        }
    }
}

/// Forces one IKE rekey collision: holds strongSwan's CREATE_CHILD_SA requests and responses
/// from 3 s before the rekey is due, so its request is lost and ours reaches it while its own
/// is out (it detects the collision, its answer is held); then lets its requests through, so
/// its retransmission reaches us while ours is still out (we detect the collision and answer,
/// it concludes by the nonces; its DELETE, old or redundant SA, is held meanwhile); then lets
/// its responses through, so our retransmission gets its answer (we conclude); last, its
/// DELETE.
fn force_ike_rekey_crossing(lab: &Lab, filter: &IkeFilter<'_>) -> CrossAttempt {
    let (ss, fs) = (lab.strongswan(), lab.ferroswan());
    let due = loop {
        if let (Some(a), Some(b)) = (ike_rekey_due(ss), ike_rekey_due(fs)) {
            break (a.min(b), a.max(b));
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    sleep_until(due.0.checked_sub(Duration::from_secs(3)).unwrap_or(due.0));
    let (ss_from, fs_from) = (log_lines(ss), log_lines(fs));
    let mut attempt = CrossAttempt::default();
    filter.hold(Held::CreateRequests);
    filter.hold(Held::CreateResponses);
    // strongSwan gives up on its request 23.7 s after sending it (retransmit_timeout 2,
    // tries 3): everything below ends well before.
    let detected = wait_log_line(
        ss,
        ss_from,
        &["detected IKE_REKEY collision"],
        due.1 + Duration::from_secs(4),
    );
    attempt.ss_detected = detected.is_some();
    if attempt.ss_detected {
        filter.hold(Held::InformationalRequests);
        filter.release(Held::CreateRequests);
        attempt.ss_concluded = wait_log_line(
            ss,
            ss_from,
            &["IKE_SA rekey collision", "peer did not notice IKE_SA rekey collision"],
            Instant::now() + Duration::from_secs(12),
        );
        filter.release(Held::CreateResponses);
        attempt.fs_detected = wait_log_line(
            fs,
            fs_from,
            &["detected IKE rekey collision"],
            Instant::now() + Duration::from_secs(1),
        )
        .is_some();
        attempt.fs_concluded = wait_log_line(
            fs,
            fs_from,
            &["IKE rekey collision won", "IKE rekey collision lost", "did not notice"],
            Instant::now() + Duration::from_secs(12),
        );
    }
    attempt.secs = Instant::now().saturating_duration_since(due.0).as_secs_f64();
    filter.release_all();
    attempt
}

/// Crossing IKE rekeys against strongSwan (RFC 7296 §2.8.2), which a sub-millisecond link
/// never produces by itself: both sides have IKE `rekey_time = 30s`, `rand_time = 0s`, and
/// [`force_ike_rekey_crossing`] holds strongSwan's messages with nftables so that each side
/// gets the other's request while its own is out. Up to [`CROSS_ATTEMPTS`] rekeys until
/// [`CROSS_WANTED`] were genuine crossings (both sides detect it and decide by the nonces, with
/// opposite results), at least one required, under a ping flow; then one IKE SA and one CHILD_SA per side with matching SPIs
/// (also in `swanctl --list-sas` against each), at most three IKE SAs per side along the way,
/// and loss below 0.1 % (only IKE is held, never ESP).
#[test]
#[ignore = "needs root and strongSwan; scripts/test runs it"]
fn ike_rekeys_cross_when_strongswans_messages_are_held() {
    let ike_only = ExtraSettings::default()
        .connection("rekey_time", &format!("{CROSS_REKEY_SECS}s"))
        .connection("over_time", "30s")
        .connection("rand_time", "0s");
    let lab = Lab::start(Setup {
        moon: Implementation::Ferroswan,
        moon_extra: ike_only.clone(),
        sun_extra: ike_only,
        nat: false,
    });
    let filter = IkeFilter::install(&lab.topo.gw_b().ns);
    let flow = lab.ping_flow(1_000_000);
    let mut attempts = Vec::new();
    let mut seen = [Seen::default(), Seen::default()];
    for _ in 0..CROSS_ATTEMPTS {
        let attempt = force_ike_rekey_crossing(&lab, &filter);
        eprintln!("forced IKE rekey: {attempt:?}");
        attempts.push(attempt);
        // Let the redundant and old IKE SAs go (strongSwan's DELETE retransmissions come
        // every few seconds), sampling how many there are meanwhile.
        let settle = Instant::now() + Duration::from_secs(6);
        while Instant::now() < settle {
            for (s, gw) in seen.iter_mut().zip([lab.strongswan(), lab.ferroswan()]) {
                s.add(&ike_sas(gw).unwrap());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        if attempts.iter().filter(|a| a.genuine()).count() >= CROSS_WANTED {
            break;
        }
    }
    let (spi_in, spi_out) = wait_agreement(&lab, Duration::from_secs(60));
    let flow = flow.interrupt();
    let dropped = filter.dropped.borrow().clone();
    let genuine = attempts.iter().filter(|a| a.genuine()).count();
    let report = format!(
        "forced IKE rekey collisions: {} attempt(s), {genuine} genuine crossing(s), winners {:?}, \
         resolved {:?} s after the rekey was due; IKE messages strongSwan sent that nft held: \
         {dropped:?}; ping {}/{} answered ({:.3} % loss); at most {}/{} IKE SAs at once \
         (strongSwan/ferroswan); final CHILD_SA (strongSwan view) {spi_in}_i {spi_out}_o",
        attempts.len(),
        attempts.iter().map(CrossAttempt::winner).collect::<Vec<_>>(),
        attempts.iter().map(|a| (a.secs * 10.0).round() / 10.0).collect::<Vec<_>>(),
        flow.received,
        flow.transmitted,
        flow.loss_percent(),
        seen[0].max_ike,
        seen[1].max_ike,
    );
    eprintln!("{report}");
    let fail = |what: &str| -> ! {
        panic!(
            "{what}\n{report}\nattempts: {attempts:#?}\nping gaps: {:#?}\nlogs in {}{}",
            flow.gaps,
            lab.topo.log_dir().display(),
            lab.logs()
        )
    };
    if genuine == 0 {
        fail("no genuine IKE rekey crossing");
    }
    if dropped.get(&Held::CreateRequests).copied().unwrap_or(0) == 0 {
        fail("the filter never held a CREATE_CHILD_SA request of strongSwan's");
    }
    if flow.loss_percent() >= MAX_LOSS_PERCENT {
        fail(&format!("loss {:.3} % ≥ {MAX_LOSS_PERCENT} %", flow.loss_percent()));
    }
    for (who, s) in [("strongSwan", &seen[0]), ("ferroswan", &seen[1])] {
        if s.max_ike > 3 {
            fail(&format!("{who} had {} IKE SAs at once", s.max_ike));
        }
    }
    // Nobody gave up or refused along the way.
    for (gw, needles) in [
        (lab.ferroswan(), &["peer refused to rekey", "rekeying the IKE SA failed"][..]),
        (lab.strongswan(), &["IKE_SA rekeying failed", "giving up after"][..]),
    ] {
        let n: usize = needles.iter().map(|n| count_log(gw, n)).sum();
        if n > 0 {
            fail(&format!("{} logged a failed or refused IKE rekey", gw.implementation));
        }
    }
    drop(filter);
    lab.close("ike-rekey-crossing");
}

// ---------------------------------------------------------------------------------------------
// Dead peer detection
// ---------------------------------------------------------------------------------------------

const DPD_DELAY: Duration = Duration::from_secs(5);
const DPD_TIMEOUT: Duration = Duration::from_secs(10);
/// The daemon samples ESP counters once a second, and this test polls `list-sas` every 200 ms.
const DPD_SLACK: Duration = Duration::from_secs(3);

/// Kills charon and measures how long ferroswan takes to drop the IKE SA.
fn dpd_case(moon: Implementation, traffic: bool) -> Duration {
    let dpd =
        ExtraSettings::default().connection("dpd_delay", "5s").connection("dpd_timeout", "10s");
    let (moon_extra, sun_extra) = if moon == Implementation::Ferroswan {
        (dpd, ExtraSettings::default())
    } else {
        (ExtraSettings::default(), dpd)
    };
    let mut lab = Lab::start(Setup { moon, moon_extra, sun_extra, nat: false });
    let flow = traffic.then(|| lab.ping_flow(10_000));
    // Let a few liveness checks (idle) or ESP packets (flow) go by: the peer is alive.
    std::thread::sleep(DPD_DELAY * 2 + Duration::from_secs(1));
    let fs = lab.ferroswan();
    if ike_sas(fs).unwrap().is_empty() {
        panic!("ferroswan dropped the IKE SA of a live peer{}", lab.logs());
    }
    let dead_before = count_log(fs, "dead peer");
    assert_eq!(dead_before, 0, "{}", lab.logs());

    let ss = if lab.moon.implementation == Implementation::Strongswan {
        &mut lab.moon
    } else {
        &mut lab.sun
    };
    ss.process.kill().unwrap();
    let killed = Instant::now();
    let limit = DPD_DELAY + DPD_TIMEOUT + DPD_SLACK;
    let detected = loop {
        let sas = ike_sas(lab.ferroswan()).unwrap();
        if sas.is_empty() {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < limit + Duration::from_secs(10),
            "ferroswan still has the IKE SA {:?} after charon was killed: {sas:?}{}",
            killed.elapsed(),
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(flow);
    let fs = lab.ferroswan();
    let log = std::fs::read_to_string(&fs.log).unwrap_or_default();
    let why: Vec<&str> = log.lines().filter(|l| l.contains("dead peer")).collect();
    eprintln!(
        "DPD ({moon} made the IKE SA, {}): IKE SA gone {:.1} s after SIGKILL; {}",
        if traffic { "ping flow" } else { "idle" },
        detected.as_secs_f64(),
        why.first().unwrap_or(&"(no log line)")
    );
    assert!(
        detected <= limit,
        "ferroswan took {detected:?} to notice, more than dpd_delay + dpd_timeout + {DPD_SLACK:?}{}",
        lab.logs()
    );
    assert!(
        detected >= DPD_TIMEOUT - Duration::from_secs(1),
        "ferroswan dropped the SA after {detected:?}, before dpd_timeout: not by DPD?{}",
        lab.logs()
    );
    assert!(
        why.iter().any(|l| l.contains("did not answer our liveness check within dpd_timeout 10 s")),
        "no 'dead peer' line explaining it in ferroswan's log{}",
        lab.logs()
    );
    lab.close(&format!("dpd-{moon}"));
    detected
}

#[test]
#[ignore = "needs root and strongSwan; scripts/test runs it"]
fn dpd_notices_a_killed_strongswan() {
    dpd_case(Implementation::Ferroswan, true);
    dpd_case(Implementation::Strongswan, false);
}

// ---------------------------------------------------------------------------------------------
// The generated configurations (no root needed)
// ---------------------------------------------------------------------------------------------

/// The extra settings of these tests land in `swanctl.conf` where ferroswan's config reader
/// finds them, with the values the tests rely on (a misplaced key would silently leave the
/// defaults, and a rekey test would then count no rekeys for the wrong reason).
#[test]
fn extra_settings_are_read_by_ferroswans_config_reader() {
    use ferroswan::config::{connection, settings};
    use ferroswan::lab::interop::GatewayConfig;
    use ferroswan::lab::netns::IfAddrs;
    use std::net::{Ipv4Addr, Ipv6Addr};

    let case = Case::psk("lifecycle", Implementation::Ferroswan, "aes128gcm16-x25519").unwrap();
    let lan = |third: u16| IfAddrs {
        ifname: "lan0",
        v4: Ipv4Addr::new(10, third as u8, 0, 1),
        v4_prefix: 24,
        v6: Ipv6Addr::new(0xfd00, third, 0, 0, 0, 0, 0, 1),
        v6_prefix: 64,
    };
    let tmp = tempfile::tempdir().unwrap();
    let no_jitter = short_lifetimes().connection("rand_time", "0s").child("rand_time", "0s");
    let dpd =
        ExtraSettings::default().connection("dpd_delay", "5s").connection("dpd_timeout", "10s");
    for (i, extra) in [short_lifetimes(), no_jitter, dpd].into_iter().enumerate() {
        let gw = GatewayConfig {
            name: "moon",
            peer: "sun",
            implementation: Implementation::Ferroswan,
            initiator: true,
            local_addr: Ipv4Addr::new(192, 0, 2, 1).into(),
            remote_addr: Ipv4Addr::new(192, 0, 2, 2).into(),
            local_id: "moon.ferroswan.test".into(),
            remote_id: "sun.ferroswan.test".into(),
            local_lan: lan(1),
            remote_lan: lan(2),
            ferroswan_initiation: FerroswanInitiation::StartAction,
            extra,
        };
        let conf = write_swanctl_dir(&tmp.path().join(i.to_string()), &case, &gw, None).unwrap();
        let tree = settings::parse_file(&conf).unwrap();
        let conns = connection::connections(tree.root.section("connections").unwrap()).unwrap();
        let (conn, child) = (&conns[0], &conns[0].children[0]);
        let secs = Duration::from_secs;
        match i {
            0 | 1 => {
                assert_eq!((conn.rekey_time, conn.over_time), (secs(45), secs(15)));
                assert_eq!((child.rekey_time, child.life_time), (secs(20), secs(30)));
                // Defaults like charon's: IKE rand_time = over_time, CHILD = life − rekey.
                let rand = if i == 0 { (secs(15), secs(10)) } else { (secs(0), secs(0)) };
                assert_eq!((conn.rand_time, child.rand_time), rand);
            }
            _ => {
                assert_eq!((conn.dpd_delay, conn.dpd_timeout), (secs(5), secs(10)));
                assert_eq!(child.rekey_time, secs(3600), "default CHILD lifetimes");
            }
        }
    }
}

/// The end-of-run checks tell agreeing sides from disagreeing ones.
#[test]
fn agreement_and_list_sas_parsing() {
    let text = "net: #3, ESTABLISHED, IKEv2, 16ff2a476d3b1b6f_i* ceb60fc95926cbdd_r
  local  'sun.ferroswan.test' @ 192.0.2.2[4500]
  AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519
  net: #9, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-128/CURVE_25519
    installed 8s ago, rekeying in 4s, expires in 22s
    in  d6a1cd7e,      0 bytes,     0 packets
    out ce1d74f6,      0 bytes,     0 packets
    local  10.2.0.0/24 fd00:2::/64
";
    let spis = |i: &str, o: &str| vec![(i.to_owned(), o.to_owned())];
    assert_eq!(parse_list_sas_text(text), (1, 1, spis("d6a1cd7e", "ce1d74f6")));
    let rekeying = format!(
        "{text}  net: #10, reqid 1, INSTALLED, TUNNEL-in-UDP\n    in  0000aaaa (-|0x00000000), 0 bytes\n    out 0000bbbb (-|0x00000000), 0 bytes\n"
    );
    assert_eq!(parse_list_sas_text(&rekeying).1, 2);
    assert_eq!(parse_list_sas_text(&rekeying).2[1], ("0000aaaa".into(), "0000bbbb".into()));

    let child = |id, i: &str, o: &str| ChildView {
        uniqueid: id,
        state: "INSTALLED".into(),
        spi_in: i.into(),
        spi_out: o.into(),
    };
    let ike = |children| IkeView {
        uniqueid: 1,
        state: "ESTABLISHED".into(),
        spi_i: "01".into(),
        spi_r: "02".into(),
        children,
    };
    let a = [ike(vec![child(1, "aa", "bb")])];
    assert_eq!(agreement(&a, &[ike(vec![child(7, "bb", "aa")])]), Ok(("aa".into(), "bb".into())));
    assert!(agreement(&a, &[ike(vec![child(7, "bb", "cc")])]).is_err(), "SPIs differ");
    assert!(agreement(&a, &[ike(vec![child(7, "bb", "aa"), child(8, "dd", "ee")])]).is_err());
    assert!(agreement(&a, &[ike(vec![child(7, "bb", "aa")]), ike(Vec::new())]).is_err());
    let mut other_spis = ike(vec![child(7, "bb", "aa")]);
    other_spis.spi_r = "03".into();
    assert!(agreement(&a, &[other_spis]).is_err(), "IKE SPIs differ");
}
