//! Interop: strongSwan's own `swanctl` (Debian `strongswan-swanctl`) against our VICI server.
//!
//! `swanctl` options quirks: `--uri` must come after the command option, and `--version` only
//! asks the daemon with `--daemon` (plain `--version` prints swanctl's own version).

#![allow(missing_docs, clippy::indexing_slicing)]

mod common;

use std::process::Command;

use common::{TestHandler, socket_path};
use ferroswan::vici::{Server, ServerConfig};

/// Runs `swanctl ARGS --uri unix://PATH` on a blocking thread; returns stdout.
async fn swanctl(path: &std::path::Path, args: &[&str]) -> String {
    let mut cmd = Command::new("swanctl");
    cmd.args(args).arg("--uri").arg(format!("unix://{}", path.display()));
    let shown = format!("{cmd:?}");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{shown}: {e} (install Debian package strongswan-swanctl)"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if std::env::var_os("VICI_SWANCTL_SHOW").is_some() {
        eprintln!("$ {shown}\n{stdout}");
    }
    assert!(out.status.success(), "{shown} failed: {}\n{stdout}\n{stderr}", out.status);
    stdout
}

fn assert_contains(haystack: &str, needles: &[&str]) {
    for needle in needles {
        assert!(haystack.contains(needle), "missing {needle:?} in:\n{haystack}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs strongswan-swanctl"]
async fn swanctl_version_stats_list_sas() {
    let path = socket_path("swanctl");
    let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
    let server = Server::start(ServerConfig::new(&path), TestHandler).await.unwrap();

    let out = swanctl(&path, &["--version", "--daemon"]).await;
    assert_contains(&out, &["strongSwan 0.1.0 ferroswan (Linux, 6.1.0-test, x86_64)"]);
    let out = swanctl(&path, &["--version", "--daemon", "--raw"]).await;
    assert_contains(&out, &["version reply", "daemon=ferroswan", "version=0.1.0"]);

    let out = swanctl(&path, &["--stats"]).await;
    assert_contains(
        &out,
        &[
            "uptime: 5 minutes, since Nov 02 10:00:00 2026",
            "worker threads: 16 total, 11 idle, working: 4/0/1/0",
            "job queues: 0/0/0/0",
            "jobs scheduled: 3",
            "IKE_SAs: 2 total, 0 half-open",
            "loaded plugins: ferroswan-ikev2 ferroswan-esp",
        ],
    );

    let out = swanctl(&path, &["--list-sas"]).await;
    assert_contains(
        &out,
        &[
            "home: #1, ESTABLISHED, IKEv2, 6fd55d95f66b4a67_i* cea64d4a303e0ca2_r",
            "local  'carol@strongswan.org' @ 192.168.0.100[4500]",
            "remote 'moon.strongswan.org' @ 192.168.0.1[4500]",
            "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519",
            "established 1s ago, rekeying in 14043s",
            "net: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-128",
            "installed 1s ago, rekeying in 3397s, expires in 3959s",
            "in  c8931e89,     84 bytes,     7 packets,     1s ago",
            "out cee78125,    168 bytes,    14 packets,     0s ago",
            "local  10.1.0.0/16",
            "remote 10.2.0.0/16 10.3.0.0/16",
            "office: #2, ESTABLISHED, IKEv2, 6fd55d95f66b4a67_i cea64d4a303e0ca2_r*",
            "local  'carol@strongswan.org' @ 192.168.0.100[4500] [10.9.0.5]",
            "remote 'gw.example.org' @ 2001:db8::1[4500]",
            "lan: #2, reqid 2, INSTALLED",
            "in  00001234,   4096 bytes",
            "out abcdef01,   8192 bytes",
        ],
    );
    assert!(!out.contains("(null)"), "a key swanctl needs is missing:\n{out}");

    let out = swanctl(&path, &["--list-sas", "--ike", "office"]).await;
    assert_contains(&out, &["office: #2"]);
    assert!(!out.contains("home: #1"), "filter ignored:\n{out}");

    let out = swanctl(&path, &["--list-sas", "--raw"]).await;
    assert_contains(
        &out,
        &[
            "list-sa event {home {uniqueid=1 version=2 state=ESTABLISHED local-host=192.168.0.100 \
             local-port=4500 local-id=carol@strongswan.org remote-host=192.168.0.1",
            "encr-alg=AES_CBC encr-keysize=128 integ-alg=HMAC_SHA2_256_128 \
             prf-alg=PRF_HMAC_SHA2_256 dh-group=CURVE_25519",
            "child-sas {net-1 {name=net uniqueid=1 reqid=1 state=INSTALLED mode=TUNNEL \
             protocol=ESP encap=yes spi-in=c8931e89 spi-out=cee78125 encr-alg=AES_GCM_16 \
             encr-keysize=128 bytes-in=84 packets-in=7 use-in=1 bytes-out=168",
            "local-ts=[10.1.0.0/16] remote-ts=[10.2.0.0/16 10.3.0.0/16]",
            "list-sa event {office {",
            "list-sas reply {}",
        ],
    );

    // A command we do not know: swanctl reports the failure and exits non-zero.
    let uri = format!("unix://{}", path.display());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("swanctl").args(["--list-conns", "--uri", &uri]).output()
    })
    .await
    .unwrap()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "swanctl --list-conns succeeded:\n{stderr}");
    assert_contains(&stderr, &["list-conns request failed"]);

    server.shutdown().await;
    assert!(!path.exists());
}
