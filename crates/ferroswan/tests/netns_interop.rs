#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
//! IKEv2 interop: every enabled case of `interop/matrix.toml`, each on a fresh namespace
//! topology with strongSwan or ferroswan on each gateway (`ferroswan::lab::interop`).
//!
//! `FERROSWAN_INTEROP_CASES=a,b` runs only the cases whose names contain `a` or `b`, disabled
//! ones included (to work on one case). Needs root, strongSwan (charon, swanctl, pki) and the
//! lab's tools: `#[ignore]`d, run by `scripts/test`. The matrix checks run everywhere.

use std::path::PathBuf;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferroswan::config::{connection, secrets, settings};
use ferroswan::lab::interop::{
    Auth, Case, CertSet, CertStore, ExtraSettings, Family, FerroswanInitiation, GatewayConfig,
    HarnessOptions, IdKind, Implementation, Matrix, gateway_fqdn, run_case, write_swanctl_dir,
};
use ferroswan::lab::netns::IfAddrs;

fn matrix_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop/matrix.toml")
}

fn load() -> Matrix {
    Matrix::load(&matrix_path()).unwrap()
}

/// The matrix parses, and covers what it promises: every authentication in both roles against
/// strongSwan, every listed proposal in both roles, and working strongSwan-only anchors for
/// each authentication.
#[test]
fn matrix_is_valid_and_covers_both_roles() {
    let m = load();
    let fsw_vs_ss = |c: &Case, ini: Implementation| {
        c.initiator == ini
            && [c.initiator, c.responder].contains(&Implementation::Ferroswan)
            && [c.initiator, c.responder].contains(&Implementation::Strongswan)
    };
    for auth in [Auth::Psk, Auth::Rsa, Auth::Ecdsa, Auth::Ed25519] {
        for ini in [Implementation::Ferroswan, Implementation::Strongswan] {
            assert!(
                m.cases.iter().any(|c| c.auth == auth && fsw_vs_ss(c, ini)),
                "no {auth:?} case with {ini} initiating against the other implementation"
            );
        }
        assert!(
            m.enabled().any(|c| c.auth == auth
                && c.initiator == Implementation::Strongswan
                && c.responder == Implementation::Strongswan),
            "no enabled strongSwan anchor for {auth:?}"
        );
    }
    for ike in [
        "aes128gcm16-prfsha256-x25519",
        "aes256gcm16-prfsha384-ecp384",
        "chacha20poly1305-prfsha256-x25519",
        "aes128-sha256-modp2048",
        "aes256-sha384-ecp256",
        "aes128-sha1-modp2048",
        "aes256gcm16-prfsha512-ecp521",
        "aes128gcm16-prfsha256-modp4096",
    ] {
        for ini in [Implementation::Ferroswan, Implementation::Strongswan] {
            assert!(
                m.cases.iter().any(|c| c.ike == ike && fsw_vs_ss(c, ini)),
                "IKE proposal {ike} with {ini} initiating is missing"
            );
        }
    }
    for (what, pred) in [
        ("ESP PFS", (|c: &Case| c.expected_esp().unwrap().dh.is_some()) as fn(&Case) -> bool),
        ("ESP ESN", |c: &Case| c.expected_esp().unwrap().esn),
    ] {
        for ini in [Implementation::Ferroswan, Implementation::Strongswan] {
            assert!(
                m.cases.iter().any(|c| pred(c) && fsw_vs_ss(c, ini)),
                "{what}, {ini} initiating"
            );
        }
    }
}

/// The swanctl.conf the harness writes for each case's two gateways reads with ferroswan's own
/// config reader (`connections`, `secrets`), so a ferroswan gateway never fails on the harness's
/// syntax. Addresses are the lab topology's; no namespaces are needed.
#[test]
fn generated_swanctl_confs_read_with_ferroswans_config_reader() {
    let m = load();
    let tmp = tempfile::tempdir().unwrap();
    // Certificate cases only need files to copy here; their content is not parsed.
    let dummy = |name: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, "dummy").unwrap();
        p
    };
    let lan = |third: u16, v4: [u8; 4]| IfAddrs {
        ifname: "lan0",
        v4: Ipv4Addr::from(v4),
        v4_prefix: 24,
        v6: Ipv6Addr::new(0xfd00, third, 0, 0, 0, 0, 0, 1),
        v6_prefix: 64,
    };
    for case in &m.cases {
        let key_kind = case.key_kind();
        let certs = key_kind.map(|kind| CertSet {
            kind,
            ca_cert: dummy("ca.pem"),
            moon: (dummy("moon.pem"), dummy("moon.key")),
            sun: (dummy("sun.pem"), dummy("sun.key")),
        });
        let (a, b): (IpAddr, IpAddr) = match case.family {
            Family::V4 => (Ipv4Addr::new(192, 0, 2, 1).into(), Ipv4Addr::new(192, 0, 2, 2).into()),
            _ => (
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(),
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).into(),
            ),
        };
        let id = |name: &str, addr: IpAddr| match case.ids {
            IdKind::Ip => addr.to_string(),
            _ => gateway_fqdn(name),
        };
        for (name, peer, initiator, implementation, local, remote) in [
            ("moon", "sun", true, case.initiator, a, b),
            ("sun", "moon", false, case.responder, b, a),
        ] {
            let gw = GatewayConfig {
                name,
                peer,
                implementation,
                initiator,
                local_addr: local,
                remote_addr: remote,
                local_id: id(name, local),
                remote_id: id(peer, remote),
                local_lan: if initiator { lan(1, [10, 1, 0, 1]) } else { lan(2, [10, 2, 0, 1]) },
                remote_lan: if initiator { lan(2, [10, 2, 0, 1]) } else { lan(1, [10, 1, 0, 1]) },
                ferroswan_initiation: FerroswanInitiation::StartAction,
                extra: ExtraSettings::default(),
            };
            let dir = tmp.path().join(&case.name).join(name);
            let conf = write_swanctl_dir(&dir, case, &gw, certs.as_ref()).unwrap();
            let tree = settings::parse_file(&conf).unwrap();
            let conns = connection::connections(tree.root.section("connections").unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
            assert_eq!(conns.len(), 1, "{}", case.name);
            if let Some(sec) = tree.root.section("secrets") {
                secrets::secrets(sec).unwrap_or_else(|e| panic!("{}: {e}", case.name));
            }
            assert_eq!(tree.root.section("secrets").is_some(), case.auth == Auth::Psk);
            if let Some(kind) = key_kind {
                assert!(dir.join(kind.key_dir()).join(format!("{name}.pem")).is_file());
                assert!(dir.join("x509ca/ca.pem").is_file() && dir.join("x509").is_dir());
            }
        }
    }
}

/// Every enabled case (or the ones named in `FERROSWAN_INTEROP_CASES`), one after the other,
/// with a summary table; fails with every failed case's error, daemons' logs included.
#[test]
#[ignore = "needs root; scripts/test runs it"]
fn interop_matrix() {
    let m = load();
    let filter: Option<Vec<String>> = std::env::var("FERROSWAN_INTEROP_CASES").ok().map(|v| {
        v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
    });
    let cases: Vec<&Case> = match &filter {
        Some(names) => {
            m.cases.iter().filter(|c| names.iter().any(|n| c.name.contains(n))).collect()
        }
        None => m.enabled().collect(),
    };
    assert!(!cases.is_empty(), "no case selected (FERROSWAN_INTEROP_CASES={filter:?})");
    let certs = CertStore::new().unwrap();
    let opts = HarnessOptions {
        ferroswan: Some(PathBuf::from(env!("CARGO_BIN_EXE_ferroswan"))),
        ..HarnessOptions::default()
    };
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for case in &cases {
        let t = std::time::Instant::now();
        eprintln!("interop: {} ({} -> {}) ...", case.name, case.initiator, case.responder);
        match run_case(case, &certs, &opts) {
            Ok(r) => {
                eprintln!("interop: {} ok in {:.1} s", case.name, r.seconds);
                rows.push((
                    case.name.clone(),
                    "ok".to_owned(),
                    r.seconds,
                    format!("IKE {}, ESP {}, {:.0} Mbit/s", r.ike, r.child, r.mbit_per_s),
                ));
            }
            Err(e) => {
                let secs = t.elapsed().as_secs_f64();
                eprintln!("interop: {} FAILED in {secs:.1} s:\n{e}", case.name);
                rows.push((case.name.clone(), "FAILED".to_owned(), secs, String::new()));
                failures.push(format!("{e}"));
            }
        }
    }
    let disabled = m.cases.len() - m.enabled().count();
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(4).max(4);
    let mut table = format!(
        "\ninterop summary ({} run, {disabled} of {} disabled in the matrix)\n{:width$}  {:6}  {:>6}  negotiated (responder's view)\n",
        rows.len(),
        m.cases.len(),
        "case",
        "result",
        "secs"
    );
    for (name, result, secs, detail) in &rows {
        table.push_str(&format!("{name:width$}  {result:6}  {secs:6.1}  {detail}\n"));
    }
    let total: f64 = rows.iter().map(|r| r.2).sum();
    table.push_str(&format!("total {total:.1} s\n"));
    eprintln!("{table}");
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}
