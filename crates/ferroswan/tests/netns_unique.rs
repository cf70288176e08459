//! swanctl `unique` against strongSwan, in network namespaces: ferroswan responds, strongSwan
//! initiates a second IKE SA between the same identities while the first one carries a ping
//! flow.
//!
//! ```text
//!   lan_a ──── gw_a "moon" strongSwan ─────────────── gw_b "sun" ferroswan ──── lan_b
//!   10.1.0.2   192.0.2.1: connection net               192.0.2.2, unique = …      10.2.0.2
//!              192.0.2.3: connection net2 (same ids, proposals, traffic selectors)
//! ```
//!
//! How charon makes the second IKE SA: `swanctl --initiate` of the same connection again
//! does not (with `reuse_ikesa = yes`, the default, charon 5.9.8 puts the new CHILD_SA into
//! the established IKE SA of an *equal* peer config, and refuses it there as a duplicate
//! CHILD_SA). Equal means the same settings, not the same name, so moon has a second
//! connection `net2`, a copy of `net` with `keyingtries = 2` (the difference that makes charon
//! start a new IKE SA) and `local_addrs` either the same address or a second one (192.0.2.3)
//! on its `wan0`. Its IKE_AUTH carries no INITIAL_CONTACT (charon still has an IKE SA with the
//! same identities), so only ferroswan's `unique` policy decides, as charon's
//! `check_uniqueness` would:
//!
//! - [`unique_replace_deletes_the_old_ike_sa`]: `unique = replace`. From the other address the
//!   old IKE SA is deleted at once with a DELETE (strongSwan logs "received DELETE for IKE_SA
//!   net[1]" and lists only net2's IKE SA); from the same address after the 10 s grace
//!   (charon's: it may be a reauthentication whose initiator deletes the old SA itself). Both
//!   sides end with one IKE SA, the same, and the ping flow goes on through the new CHILD_SA.
//! - [`unique_keep_refuses_a_second_ike_sa_from_elsewhere`]: `unique = keep`. From the other
//!   address the new IKE SA is refused with AUTHENTICATION_FAILED (strongSwan's `swanctl
//!   --initiate` fails, its log says so), the old one stays (same SPIs on both sides) and the
//!   ping flow loses nothing. From the same address it is accepted, as charon does (a
//!   reauthentication, probably): two IKE SAs on each side.
//!
//! Needs root and strongSwan: `#[ignore]`d, run by `scripts/test`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use ferroswan::lab::interop::{
    CONN, Case, ExtraSettings, FerroswanInitiation, Implementation, LOG_TAIL_LINES, RunningGateway,
    gateway_configs, start_ferroswan, start_strongswan, swanctl, vici_list_sas, wait_child_up,
    write_swanctl_dir,
};
use ferroswan::lab::netns::{BackgroundProcess, Topology};

const BIN: &str = env!("CARGO_BIN_EXE_ferroswan");

/// moon's second connection.
const CONN2: &str = "net2";

/// moon's second transit address (the first is 192.0.2.1).
const SECOND_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);

const SA_TIMEOUT: Duration = Duration::from_secs(30);

/// Where moon's second IKE SA comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum From {
    /// The address of the first one.
    SameAddress,
    /// [`SECOND_ADDR`].
    OtherAddress,
}

/// The running lab; daemons are dropped (killed) before the namespaces go.
struct Lab {
    moon: RunningGateway,
    sun: RunningGateway,
    topo: Topology,
    ping: BackgroundProcess,
}

/// One IKE SA of a `list-sas`: connection, SPIs, CHILD_SA count.
type Ike = (String, String, String, usize);

impl Lab {
    /// strongSwan on moon with `net` up and `net2` loaded, ferroswan on sun with `unique`,
    /// a ping flow lan_a → lan_b (every 50 ms) running through `net`.
    fn start(unique: &str, from: From) -> Self {
        let case = Case::psk("unique", Implementation::Strongswan, "aes128gcm16").unwrap();
        let topo = Topology::builder().build().unwrap();
        let gw_a = topo.gw_a();
        let cidr = format!("{SECOND_ADDR}/{}", gw_a.wan0.v4_prefix);
        gw_a.ns.run_ok(&["ip", "addr", "add", &cidr, "dev", gw_a.wan0.ifname]).unwrap();
        let [moon_cfg, mut sun_cfg] =
            gateway_configs(&case, &topo, FerroswanInitiation::StartAction).unwrap();
        sun_cfg.extra = ExtraSettings::default().connection("unique", unique);
        let base = topo.log_dir().to_path_buf();
        let moon_addr = moon_cfg.local_addr.to_string();
        let second = match from {
            From::SameAddress => moon_addr.clone(),
            From::OtherAddress => SECOND_ADDR.to_string(),
        };

        // ferroswan accepts moon from both addresses.
        let sun_dir = base.join("sun");
        let conf = write_swanctl_dir(&sun_dir, &case, &sun_cfg, None).unwrap();
        let text = std::fs::read_to_string(&conf).unwrap();
        let from_line = format!("remote_addrs = {moon_addr}\n");
        assert!(text.contains(&from_line), "{text}");
        let text =
            text.replace(&from_line, &format!("remote_addrs = {moon_addr}, {SECOND_ADDR}\n"));
        std::fs::write(&conf, text).unwrap();
        std::fs::write(
            sun_dir.join("strongswan.conf"),
            "swanctl {\n    load = pem pkcs1 pkcs8 x509 pubkey openssl random\n}\n",
        )
        .unwrap();

        // moon: `net2`, a copy of `net` from `second`.
        let moon_dir = base.join("moon");
        let conf = write_swanctl_dir(&moon_dir, &case, &moon_cfg, None).unwrap();
        let text = std::fs::read_to_string(&conf).unwrap();
        let open = format!("    {CONN} {{\n");
        let start = text.find(&open).unwrap();
        let end = start + text[start..].find("\n    }\n").unwrap() + "\n    }\n".len();
        let copy = text[start..end]
            .replacen(&open, &format!("    {CONN2} {{\n"), 1)
            .replace(&format!("local_addrs = {moon_addr}\n"), &format!("local_addrs = {second}\n"))
            .replace("version = 2\n", "version = 2\n        keyingtries = 2\n");
        assert!(
            copy.contains(&format!("local_addrs = {second}\n")) && copy.contains("keyingtries")
        );
        let text = format!("{}{copy}{}", &text[..end], &text[end..]);
        std::fs::write(&conf, text).unwrap();

        let sun = start_ferroswan(&topo.gw_b().ns, "sun", &sun_dir, Path::new(BIN)).unwrap();
        let moon = start_strongswan(&topo.gw_a().ns, "moon", &moon_dir).unwrap();
        let out =
            swanctl(&moon, &["--initiate", "--ike", CONN, "--child", CONN, "--timeout", "30"])
                .unwrap();
        assert!(out.status.success(), "swanctl --initiate net: {out:?}");
        for gw in [&moon, &sun] {
            wait_child_up(gw, SA_TIMEOUT, None).unwrap();
        }
        let lan_a = topo.lan_a().unwrap();
        let dst = IpAddr::from(topo.lan_b().unwrap().eth0.v4).to_string();
        let argv = ["ping", "-n", "-D", "-O", "-i", "0.05", "-W", "1", &dst];
        let ping = lan_a.ns.spawn_logged(&argv, "ping-flow").unwrap();
        Self { moon, sun, topo, ping }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for gw in [&self.moon, &self.sun] {
            let text = std::fs::read_to_string(&gw.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| !l.contains("vici client")).collect();
            let tail = lines.get(lines.len().saturating_sub(LOG_TAIL_LINES)..).unwrap_or_default();
            let _ =
                write!(out, "\n---- {} ({}) ----\n{}", gw.name, gw.implementation, tail.join("\n"));
        }
        out
    }

    /// `swanctl --initiate --ike net2 --child net` on moon: whether it succeeded, its output.
    fn initiate_second(&self) -> (bool, String) {
        let out = swanctl(
            &self.moon,
            &["--initiate", "--ike", CONN2, "--child", CONN, "--timeout", "30"],
        )
        .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Echo replies so far (ping's `-D` lines).
    fn replies(&self) -> usize {
        self.ping.read_log().unwrap().lines().filter(|l| l.contains("bytes from")).count()
    }

    /// `no answer yet` lines so far.
    fn unanswered(&self) -> Vec<String> {
        let log = self.ping.read_log().unwrap();
        log.lines().filter(|l| l.contains("no answer yet")).map(str::to_owned).collect()
    }

    /// Waits until the flow got `n` more replies than `since`.
    fn wait_replies(&self, since: usize, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.replies() < since + n {
            assert!(
                Instant::now() < deadline,
                "the ping flow got {} replies in {timeout:?}, expected {n}{}",
                self.replies() - since,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn close(self) {
        let Self { moon, sun, topo, ping } = self;
        drop((ping, moon, sun));
        topo.close().unwrap();
    }
}

/// IKE SAs a daemon lists (either connection).
fn ike_sas(gw: &RunningGateway) -> Vec<Ike> {
    let mut out: Vec<Ike> = vici_list_sas(&gw.socket)
        .unwrap()
        .iter()
        .flat_map(|e| e.sections().map(|(n, m)| (n.to_owned(), m.clone())).collect::<Vec<_>>())
        .map(|(name, ike)| {
            let text = |k: &str| ike.get_str(k).unwrap_or_default().to_owned();
            let children = ike.get_section("child-sas").map_or(0, |c| c.sections().count());
            (name, text("initiator-spi"), text("responder-spi"), children)
        })
        .collect();
    out.sort();
    out
}

/// The same IKE SAs by SPIs (the connection names differ: ferroswan has only `net`).
fn same_spis(a: &[Ike], b: &[Ike]) -> bool {
    let spis = |v: &[Ike]| {
        let mut s: Vec<(String, String, usize)> =
            v.iter().map(|i| (i.1.clone(), i.2.clone(), i.3)).collect();
        s.sort();
        s
    };
    spis(a) == spis(b)
}

/// Waits until both daemons list `n` IKE SAs, the same ones, each with one CHILD_SA.
fn wait_agreement(lab: &Lab, n: usize, timeout: Duration) -> Vec<Ike> {
    let deadline = Instant::now() + timeout;
    loop {
        let (ss, fs) = (ike_sas(&lab.moon), ike_sas(&lab.sun));
        if ss.len() == n && same_spis(&ss, &fs) && ss.iter().all(|i| i.3 == 1) {
            return ss;
        }
        assert!(
            Instant::now() < deadline,
            "not {n} IKE SA(s) on both sides after {timeout:?}: strongSwan {ss:?}, ferroswan \
             {fs:?}{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Lines of a daemon's log containing `needle`.
fn log_lines(gw: &RunningGateway, needle: &str) -> Vec<String> {
    let text = std::fs::read_to_string(&gw.log).unwrap_or_default();
    text.lines().filter(|l| l.contains(needle)).map(str::to_owned).collect()
}

/// `unique = replace`, the second IKE SA `from` where: ferroswan deletes the old one (at once,
/// or after the grace period); returns seconds from the second IKE SA's establishment to
/// strongSwan's "received DELETE".
fn replace_case(from: From) -> f64 {
    let lab = Lab::start("replace", from);
    let old = wait_agreement(&lab, 1, Duration::from_secs(10));
    lab.wait_replies(0, 20, Duration::from_secs(10));
    let (ok, text) = lab.initiate_second();
    let established = Instant::now();
    assert!(ok, "swanctl --initiate --ike net2 failed:\n{text}{}", lab.logs());
    // The old IKE SA goes: strongSwan receives ferroswan's DELETE for it.
    let want = format!("received DELETE for IKE_SA {CONN}[");
    let deadline = established + Duration::from_secs(20);
    let deleted_after = loop {
        if !log_lines(&lab.moon, &want).is_empty() {
            break established.elapsed();
        }
        assert!(Instant::now() < deadline, "no DELETE for the old IKE SA{}", lab.logs());
        std::thread::sleep(Duration::from_millis(100));
    };
    let new = wait_agreement(&lab, 1, Duration::from_secs(10));
    assert_eq!(new[0].0, CONN2, "strongSwan kept the wrong IKE SA: {new:?}");
    assert!(!same_spis(&old, &new), "still the old IKE SA: {new:?}");
    let replies = lab.replies();
    lab.wait_replies(replies, 20, Duration::from_secs(10));
    let fs_line = log_lines(&lab.sun, "(unique = replace");
    let unanswered = lab.unanswered();
    eprintln!(
        "unique = replace, second IKE SA from {from:?}: strongSwan got the DELETE for the old one \
         {:.1} s after the new one was up; ferroswan: {}; strongSwan now lists {new:?}; ping \
         flow: {} replies, {} unanswered ({unanswered:?})",
        deleted_after.as_secs_f64(),
        fs_line.first().map_or("(no line)", String::as_str),
        lab.replies(),
        unanswered.len(),
    );
    assert_eq!(fs_line.len(), 1, "ferroswan's log does not say why{}", lab.logs());
    let (lo, hi) = match from {
        From::OtherAddress => (0.0, 3.0),
        From::SameAddress => (9.0, 14.0),
    };
    let secs = deleted_after.as_secs_f64();
    assert!((lo..=hi).contains(&secs), "DELETE after {secs:.1} s, expected {lo}–{hi} s");
    lab.close();
    secs
}

#[test]
#[ignore = "needs root and strongSwan; scripts/test runs it"]
fn unique_replace_deletes_the_old_ike_sa() {
    replace_case(From::OtherAddress);
    replace_case(From::SameAddress);
}

#[test]
#[ignore = "needs root and strongSwan; scripts/test runs it"]
fn unique_keep_refuses_a_second_ike_sa_from_elsewhere() {
    // From the other address: refused, the old one stays, the flow loses nothing.
    let lab = Lab::start("keep", From::OtherAddress);
    let old = wait_agreement(&lab, 1, Duration::from_secs(10));
    lab.wait_replies(0, 20, Duration::from_secs(10));
    let (ok, text) = lab.initiate_second();
    assert!(!ok, "the second IKE SA was accepted:\n{text}{}", lab.logs());
    let refused = log_lines(&lab.moon, "received AUTHENTICATION_FAILED notify error");
    assert!(!refused.is_empty(), "strongSwan got no AUTHENTICATION_FAILED{}", lab.logs());
    let fs_line = log_lines(&lab.sun, "(unique = keep)");
    assert_eq!(fs_line.len(), 1, "ferroswan's log does not say why{}", lab.logs());
    let replies = lab.replies();
    lab.wait_replies(replies, 40, Duration::from_secs(10));
    let now = wait_agreement(&lab, 1, Duration::from_secs(5));
    assert_eq!(old, now, "the old IKE SA did not stay");
    let unanswered = lab.unanswered();
    eprintln!(
        "unique = keep, second IKE SA from the other address: swanctl --initiate failed \
         ({}); strongSwan: {}; ferroswan: {}; both still list {now:?}; ping flow: {} replies, \
         {} unanswered",
        text.lines().last().unwrap_or_default(),
        refused[0],
        fs_line[0],
        lab.replies(),
        unanswered.len()
    );
    assert!(unanswered.is_empty(), "the flow lost packets: {unanswered:?}");
    lab.close();

    // From the same address: charon's `keep` takes it for a reauthentication and accepts it.
    let lab = Lab::start("keep", From::SameAddress);
    wait_agreement(&lab, 1, Duration::from_secs(10));
    let (ok, text) = lab.initiate_second();
    assert!(ok, "refused from the same address:\n{text}{}", lab.logs());
    let both = wait_agreement(&lab, 2, Duration::from_secs(10));
    eprintln!("unique = keep, second IKE SA from the same address: accepted, {both:?}");
    lab.close();
}
