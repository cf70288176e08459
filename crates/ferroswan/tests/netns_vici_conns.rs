//! Connections loaded at run time with strongSwan's own `swanctl`, end to end.
//!
//! ```text
//!   lan_a ──── gw_a "moon" ─────────────────── gw_b "sun" ──── lan_b
//!              ferroswan daemon                 strongSwan charon
//!              config file: connection "other"  swanctl --load-all: "net" (responder)
//!              swanctl --load-all over VICI: "net" and its PSK
//! ```
//!
//! ferroswan starts with a config that does not have the connection to sun. strongSwan's
//! `swanctl --load-all --uri unix://<ferroswan's socket>` loads it and its PSK (`load-shared`,
//! `load-conn`); `swanctl --list-conns` shows it; `swanctl --initiate` brings it up; LAN pings
//! cross the tunnel; `swanctl --terminate --ike net` takes it down on both gateways. Then the
//! same with `ferroswan up` / `ferroswan down` and their failures, sun initiating to the loaded
//! connection (ferroswan responds with it), a `swanctl --load-all` of a
//! file without `net` (unloads the connection and the secret, keeps the config file's), and a
//! connection ferroswan refuses (swanctl prints the reason and exits non-zero).
//!
//! Needs root (namespaces, TUN) and strongSwan (charon, swanctl): `#[ignore]`d, run by
//! `scripts/test`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferroswan::lab::interop::{
    Case, FerroswanInitiation, Implementation, LOG_TAIL_LINES, RunningGateway, gateway_configs,
    start_ferroswan, start_strongswan, vici_list_sas, wait_child_up, write_swanctl_dir,
};
use ferroswan::lab::netns::Topology;
use ferroswan::vici::Message;

const BIN: &str = env!("CARGO_BIN_EXE_ferroswan");

/// How long an SA may take to come up or go away.
const SA_TIMEOUT: Duration = Duration::from_secs(30);

/// The running lab. Field order matters: daemons are killed before the namespaces go.
struct Lab {
    moon: RunningGateway,
    sun: RunningGateway,
    topo: Topology,
    /// The swanctl directory `swanctl` reads for moon (not the daemon's).
    moon_swanctl: PathBuf,
}

impl Lab {
    /// Both daemons' last log lines, for failure messages.
    fn logs(&self) -> String {
        format!(
            "---- moon (ferroswan) ----\n{}\n---- sun (strongswan) ----\n{}",
            self.moon.log_tail(LOG_TAIL_LINES),
            self.sun.log_tail(LOG_TAIL_LINES)
        )
    }

    /// `swanctl ARGS` against moon's ferroswan, reading moon's swanctl directory.
    fn swanctl_moon(&self, args: &[&str]) -> Output {
        swanctl(&self.moon.socket, &self.moon_swanctl, args)
    }

    /// `swanctl ARGS` against sun's charon.
    fn swanctl_sun(&self, args: &[&str]) -> Output {
        swanctl(&self.sun.socket, &self.sun.swanctl_dir, args)
    }

    /// `ferroswan ARGS --socket <moon's socket>`.
    fn ferroswan(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args).arg("--socket").arg(&self.moon.socket).stdin(Stdio::null());
        let out = cmd.output().unwrap();
        if std::env::var_os("VICI_SWANCTL_SHOW").is_some() {
            eprintln!("$ ferroswan {}\n{}", args.join(" "), text(&out));
        }
        out
    }

    /// Pings lan_a → lan_b and back over IPv4 and IPv6; every echo must come back.
    fn ping_across(&self) {
        let (lan_a, lan_b) = (self.topo.lan_a().unwrap(), self.topo.lan_b().unwrap());
        for (from, to) in [(lan_a, lan_b), (lan_b, lan_a)] {
            for dst in [IpAddr::from(to.eth0.v4), IpAddr::from(to.eth0.v6)] {
                let p = from.ns.ping(dst, 3).unwrap();
                assert_eq!(p.received, 3, "ping {dst}: {p:?}\n{}", self.logs());
            }
        }
    }

    /// Both gateways report the CHILD_SA `net` installed.
    fn wait_up(&self) {
        for gw in [&self.moon, &self.sun] {
            if let Err(e) = wait_child_up(gw, SA_TIMEOUT, None) {
                panic!("{e}\n{}", self.logs());
            }
        }
    }

    /// sun (strongSwan) has a CHILD_SA with the SPIs of moon's `child` (swapped).
    fn wait_spis_agree(&self, child: &Message) {
        let (moon_in, moon_out) = (
            child.get_str("spi-in").unwrap().to_owned(),
            child.get_str("spi-out").unwrap().to_owned(),
        );
        let deadline = Instant::now() + SA_TIMEOUT;
        loop {
            let sun = wait_child_up(&self.sun, SA_TIMEOUT, None).ok();
            if sun.as_ref().is_some_and(|(_, c)| {
                c.get_str("spi-in") == Some(moon_out.as_str())
                    && c.get_str("spi-out") == Some(moon_in.as_str())
            }) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sun has no CHILD_SA {moon_out}_i {moon_in}_o: {sun:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Both gateways have an IKE SA `net` other than unique id `old` (on moon), and only one.
    fn wait_ike_rekeyed(&self, old: &str) {
        let deadline = Instant::now() + SA_TIMEOUT;
        loop {
            let moon = vici_list_sas(&self.moon.socket).unwrap();
            let sun = vici_list_sas(&self.sun.socket).unwrap();
            let ids = |sas: &[Message]| -> Vec<String> {
                sas.iter()
                    .filter_map(|sa| sa.get_section("net"))
                    .filter_map(|ike| ike.get_str("uniqueid").map(str::to_owned))
                    .collect()
            };
            let (m, s) = (ids(&moon), ids(&sun));
            if m.len() == 1 && m.first().map(String::as_str) != Some(old) && s.len() == 1 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "IKE SA not rekeyed: moon {m:?} (old #{old}), sun {s:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Both gateways still have the IKE SA `net` but no CHILD_SA in it.
    fn wait_child_gone_ike_kept(&self) {
        for gw in [&self.moon, &self.sun] {
            let deadline = Instant::now() + SA_TIMEOUT;
            loop {
                let sas = vici_list_sas(&gw.socket).unwrap();
                let ike: Vec<&Message> =
                    sas.iter().filter_map(|sa| sa.get_section("net")).collect();
                let children = ike
                    .iter()
                    .filter_map(|i| i.get_section("child-sas"))
                    .map(|c| c.elements().len())
                    .sum::<usize>();
                if ike.len() == 1 && children == 0 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{}: expected the IKE SA without CHILD_SAs: {sas:?}\n{}",
                    gw.name,
                    self.logs()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    /// Neither gateway has an IKE SA of `net` any more; sun's own `swanctl --list-sas` agrees.
    fn wait_gone(&self) {
        for gw in [&self.moon, &self.sun] {
            let deadline = Instant::now() + SA_TIMEOUT;
            loop {
                let sas = vici_list_sas(&gw.socket).unwrap();
                if !sas.iter().any(|sa| sa.get_section("net").is_some()) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{}: IKE SA 'net' still there after {SA_TIMEOUT:?}: {sas:?}\n{}",
                    gw.name,
                    self.logs()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let out = self.swanctl_sun(&["--list-sas"]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(!stdout(&out).contains("net: #"), "sun still lists the SA:\n{}", text(&out));
    }
}

/// Runs `swanctl COMMAND --uri unix://SOCKET REST…` with `dir` as its swanctl directory and
/// configuration (nothing from /etc is read).
fn swanctl(socket: &Path, dir: &Path, args: &[&str]) -> Output {
    let (command, rest) = args.split_first().unwrap();
    let out = Command::new("swanctl")
        .arg(command)
        .arg("--uri")
        .arg(format!("unix://{}", socket.display()))
        .args(rest)
        .env("SWANCTL_DIR", dir)
        .env("STRONGSWAN_CONF", dir.join("strongswan.conf"))
        .stdin(Stdio::null())
        .output()
        .expect("swanctl (Debian package strongswan-swanctl)");
    if std::env::var_os("VICI_SWANCTL_SHOW").is_some() {
        eprintln!("$ swanctl {}\n{}", args.join(" "), text(&out));
    }
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn text(out: &Output) -> String {
    format!("exit {}\nstdout:\n{}stderr:\n{}", out.status, stdout(out), stderr(out))
}

fn assert_ok_with(out: &Output, needles: &[&str]) {
    assert!(out.status.success(), "command failed:\n{}", text(out));
    let all = format!("{}{}", stdout(out), stderr(out));
    for needle in needles {
        assert!(all.contains(needle), "missing {needle:?} in:\n{}", text(out));
    }
}

fn assert_fails_with(out: &Output, needle: &str) {
    assert!(!out.status.success(), "command succeeded:\n{}", text(out));
    assert!(stderr(out).contains(needle), "missing {needle:?} in stderr:\n{}", text(out));
}

/// Writes `text` as `dir/name` (mode 0600: it may hold secrets) and returns the path.
fn write_private(dir: &Path, name: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

/// The daemon's own config: one unrelated connection (which loads over VICI must not unload)
/// and its secret.
const DAEMON_CONF: &str = "
connections {
    other {
        version = 2
        remote_addrs = 192.0.2.99
        local {
            auth = psk
            id = moon.ferroswan.test
        }
        remote {
            auth = psk
            id = other.ferroswan.test
        }
        children {
            other {
                remote_ts = 10.99.0.0/16
            }
        }
    }
}
secrets {
    ike-other {
        id = other.ferroswan.test
        secret = only-for-other
    }
}
";

fn start() -> Lab {
    let case = Case::psk("vici-load-conns", Implementation::Ferroswan, "aes128gcm16").unwrap();
    let topo = Topology::builder().build().unwrap();
    let [moon_cfg, sun_cfg] =
        gateway_configs(&case, &topo, FerroswanInitiation::UpCommand).unwrap();
    let base = topo.log_dir().to_path_buf();

    // sun: strongSwan, configured and loaded as usual (`swanctl --load-all` on its charon).
    let sun_dir = base.join("sun");
    write_swanctl_dir(&sun_dir, &case, &sun_cfg, None).unwrap();
    let sun = start_strongswan(&topo.gw_b().ns, "sun", &sun_dir).unwrap();

    // moon: the swanctl directory an administrator would run swanctl in (connection `net`,
    // its PSK), and a separate directory with the daemon's own config.
    let moon_swanctl = base.join("moon");
    write_swanctl_dir(&moon_swanctl, &case, &moon_cfg, None).unwrap();
    write_private(
        &moon_swanctl,
        "strongswan.conf",
        "swanctl {\n    load = pem pkcs1 pkcs8 x509 pubkey openssl random\n}\n",
    );
    let daemon_dir = base.join("moon-daemon");
    write_private(&daemon_dir, "swanctl.conf", DAEMON_CONF);
    let moon = match start_ferroswan(&topo.gw_a().ns, "moon", &daemon_dir, Path::new(BIN)) {
        Ok(moon) => moon,
        Err(e) => panic!("{e}"),
    };
    Lab { moon, sun, topo, moon_swanctl }
}

#[test]
#[ignore = "needs root and strongSwan; scripts/test runs it"]
fn swanctl_loads_lists_initiates_and_terminates_against_ferroswan() {
    let lab = start();
    let moon_addr = lab.topo.gw_a().wan0.v4.to_string();
    let sun_addr = lab.topo.gw_b().wan0.v4.to_string();
    let gw_a_lan = lab.topo.gw_a().lan0.clone().unwrap();
    let gw_b_lan = lab.topo.gw_b().lan0.clone().unwrap();
    let conf = lab.moon_swanctl.join("swanctl.conf");
    let conf = conf.to_str().unwrap();

    // 1. Nothing to initiate yet.
    assert_fails_with(&lab.ferroswan(&["up", "net"]), "no connection named 'net'");

    // 2. swanctl --load-all: get-keys, get-shared, load-shared, get-authorities, get-pools,
    //    get-conns, load-conn.
    let out = lab.swanctl_moon(&["--load-all", "--file", conf]);
    assert_ok_with(
        &out,
        &[
            "loaded ike secret 'ike-net'",
            "no authorities found, 0 unloaded",
            "no pools found, 0 unloaded",
            "loaded connection 'net'",
            "successfully loaded 1 connections, 0 unloaded",
        ],
    );

    // 3. swanctl --list-conns shows it as charon would, and the config file's connection.
    let out = lab.swanctl_moon(&["--list-conns"]);
    assert_ok_with(
        &out,
        &[
            "net: IKEv2, no reauthentication, rekeying every 14400s\n",
            &format!("  local:  {moon_addr}\n"),
            &format!("  remote: {sun_addr}\n"),
            "  local pre-shared key authentication:\n    id: moon.ferroswan.test\n",
            "  remote pre-shared key authentication:\n    id: sun.ferroswan.test\n",
            "  net: TUNNEL, rekeying every 3600s\n",
            &format!("    local:  {} {}\n", gw_a_lan.v4_network(), gw_a_lan.v6_network()),
            &format!("    remote: {} {}\n", gw_b_lan.v4_network(), gw_b_lan.v6_network()),
            "other: IKEv2, no reauthentication, rekeying every 14400s\n",
            "  other: TUNNEL, rekeying every 3600s\n",
            "    local:  dynamic\n",
            "    remote: 10.99.0.0/16\n",
        ],
    );
    assert!(!stdout(&out).contains("(null)"), "a key swanctl needs is missing:\n{}", text(&out));
    let out = lab.swanctl_moon(&["--list-conns", "--raw"]);
    assert_ok_with(
        &out,
        &[&format!("list-conn event {{net {{local_addrs=[{moon_addr}] remote_addrs=[{sun_addr}]")],
    );

    // 4. swanctl --initiate / --terminate against ferroswan.
    let out = lab.swanctl_moon(&["--initiate", "--child", "net", "--timeout", "30"]);
    assert_ok_with(&out, &["CHILD_SA net/net established", "initiate completed successfully"]);
    lab.wait_up();
    lab.ping_across();
    let out = lab.swanctl_moon(&["--list-sas"]);
    assert_ok_with(&out, &["net: #", "ESTABLISHED, IKEv2", "net: #", "INSTALLED, TUNNEL"]);
    // The IKE SA's time to rekey (swanctl prints it only when charon's key is there).
    let listed = stdout(&out);
    let ike_line = listed.lines().find(|l| l.trim_start().starts_with("established ")).unwrap();
    assert!(ike_line.contains("s ago, rekeying in "), "{listed}");

    // 4b. swanctl --rekey of the CHILD_SA and of the IKE SA, then ferroswan's own `rekey`:
    //     each time a new SA (new unique id) on both sides, SPIs agreeing, traffic flowing.
    let (_, child) = wait_child_up(&lab.moon, SA_TIMEOUT, None).unwrap();
    let old_child = child.get_str("uniqueid").unwrap().to_owned();
    let out = lab.swanctl_moon(&["--rekey", "--child", "net"]);
    // (swanctl --rekey prints no control-log: charon's rekey does not stream one.)
    assert_ok_with(&out, &["rekey completed successfully"]);
    let (ike, child) = wait_child_up(&lab.moon, SA_TIMEOUT, Some(&old_child))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    lab.wait_spis_agree(&child);
    lab.ping_across();
    let old_ike = ike.get_str("uniqueid").unwrap().to_owned();
    let out = lab.swanctl_moon(&["--rekey", "--ike", "net"]);
    assert_ok_with(&out, &["rekey completed successfully"]);
    lab.wait_ike_rekeyed(&old_ike);
    lab.ping_across();
    // Reauthentication: a new IKE SA from scratch (make-before-break), the CHILD_SA made again.
    let (ike, _) = wait_child_up(&lab.moon, SA_TIMEOUT, None).unwrap();
    let old_ike = ike.get_str("uniqueid").unwrap().to_owned();
    let out = lab.swanctl_moon(&["--rekey", "--ike", "net", "--reauth"]);
    assert_ok_with(&out, &["rekey completed successfully"]);
    lab.wait_ike_rekeyed(&old_ike);
    let (_, child) = wait_child_up(&lab.moon, SA_TIMEOUT, None).unwrap();
    lab.wait_spis_agree(&child);
    lab.ping_across();
    let (ike, _) = wait_child_up(&lab.moon, SA_TIMEOUT, None).unwrap();
    let old_ike = ike.get_str("uniqueid").unwrap().to_owned();
    let out = lab.ferroswan(&["rekey", "net", "--reauth"]);
    assert_ok_with(&out, &["reauthenticating 1 IKE SA(s) of connection 'net'"]);
    lab.wait_ike_rekeyed(&old_ike);
    let (_, child) = wait_child_up(&lab.moon, SA_TIMEOUT, None).unwrap();
    lab.wait_spis_agree(&child);
    let old_child = child.get_str("uniqueid").unwrap().to_owned();
    let out = lab.ferroswan(&["rekey", "net", "--child", "net"]);
    assert_ok_with(&out, &["rekey of 'net' completed successfully"]);
    let (_, child) = wait_child_up(&lab.moon, SA_TIMEOUT, Some(&old_child))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    lab.wait_spis_agree(&child);
    assert_fails_with(
        &lab.swanctl_moon(&["--rekey", "--ike-id", "999"]),
        "no IKE SA matches IKE SA #999",
    );
    assert_fails_with(
        &lab.ferroswan(&["rekey", "net", "--child", "nosuch"]),
        "no CHILD_SA matches",
    );

    // 4c. swanctl --terminate --child: the CHILD_SA goes on both sides, the IKE SA stays.
    let out = lab.swanctl_moon(&["--terminate", "--child", "net"]);
    assert_ok_with(
        &out,
        &["deleting 1 CHILD_SA(s) of child 'net'", "terminate completed successfully"],
    );
    lab.wait_child_gone_ike_kept();
    let out = lab.swanctl_moon(&["--terminate", "--ike", "net"]);
    assert_ok_with(&out, &["terminate completed successfully"]);
    lab.wait_gone();

    // 5. The same with ferroswan's own CLI.
    let out = lab.ferroswan(&["up", "net"]);
    assert_ok_with(&out, &["CHILD_SA net/net established", "initiate of 'net' completed"]);
    lab.wait_up();
    lab.ping_across();
    let out = lab.ferroswan(&["down", "net"]);
    assert_ok_with(&out, &["terminate of 'net' completed successfully"]);
    lab.wait_gone();
    assert_fails_with(&lab.ferroswan(&["down", "net"]), "no IKE SA matches connection 'net'");
    assert_fails_with(&lab.ferroswan(&["up", "nosuch"]), "no connection named 'nosuch'");
    assert_fails_with(
        &lab.ferroswan(&["up", "net", "--child", "nosuch"]),
        "connection 'net' has no child 'nosuch'",
    );

    // 5b. The loaded connection answers too: sun initiates, ferroswan responds with it (and
    //     the PSK from load-shared); sun's swanctl takes it down.
    let out = lab.swanctl_sun(&["--initiate", "--child", "net", "--timeout", "30"]);
    assert_ok_with(&out, &["initiate completed successfully"]);
    lab.wait_up();
    lab.ping_across();
    let out = lab.swanctl_sun(&["--terminate", "--ike", "net", "--timeout", "30"]);
    assert_ok_with(&out, &["terminate completed successfully"]);
    lab.wait_gone();

    // 6. --load-all of a file without `net`: swanctl unloads what it loaded (connection and
    //    secret) and leaves the daemon's config file alone.
    let empty = write_private(&lab.moon_swanctl, "empty.conf", "connections {\n}\n");
    let empty = empty.to_str().unwrap();
    let out = lab.swanctl_moon(&["--load-all", "--file", empty]);
    assert_ok_with(&out, &["no connections found, 1 unloaded"]);
    let out = lab.swanctl_moon(&["--load-creds", "--raw", "--file", empty]);
    assert_ok_with(&out, &["get-shared reply {keys=[]}"]);
    let out = lab.swanctl_moon(&["--list-conns"]);
    assert_ok_with(&out, &["other: IKEv2"]);
    assert!(!stdout(&out).contains("net: IKEv2"), "net still listed:\n{}", text(&out));
    assert_fails_with(&lab.ferroswan(&["up", "net"]), "no connection named 'net'");

    // 7. A connection ferroswan cannot run: refused with the reason, nothing loaded.
    let bad = write_private(
        &lab.moon_swanctl,
        "bad.conf",
        "connections {\n    bad {\n        bogus = 1\n        local {\n            auth = psk\n        \
         }\n        remote {\n            auth = psk\n        }\n    }\n    beet {\n        \
         local {\n            auth = psk\n        }\n        remote {\n            auth = psk\n\
         \x20       }\n        children {\n            c {\n                mode = beet\n\
         \x20           }\n        }\n    }\n}\n",
    );
    let out = lab.swanctl_moon(&["--load-conns", "--file", bad.to_str().unwrap()]);
    assert_fails_with(
        &out,
        "loading connection 'bad' failed: unknown key 'bogus' in connections.bad",
    );
    assert_fails_with(&out, "loading connection 'beet' failed: ");
    assert_fails_with(&out, "mode Beet is not supported");
    assert_fails_with(&out, "loaded 0 of 2 connections, 2 failed to load");
    let out = lab.swanctl_moon(&["--list-conns"]);
    assert!(!stdout(&out).contains("bad:"), "{}", text(&out));

    let Lab { moon, sun, topo, .. } = lab;
    drop((moon, sun));
    topo.close().unwrap();
}
