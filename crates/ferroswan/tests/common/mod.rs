//! A VICI test handler answering `version`, `stats` and `list-sas` the way charon does.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::IpAddr;
use std::path::PathBuf;

use ferroswan::vici::schema::{
    Algorithms, ChildSaInfo, ChildSaState, IkeSaInfo, IkeSaState, IpsecMode, IpsecProtocol, Mark,
    PerPriority, StatsInfo, VersionInfo,
};
use ferroswan::vici::{EventSink, Handler, Message};

/// A fresh socket path in a fresh directory (the directory does not exist yet).
pub fn socket_path(test: &str) -> PathBuf {
    std::env::temp_dir()
        .join(format!("ferroswan-vici-{test}-{}", std::process::id()))
        .join("sub")
        .join("charon.vici")
}

pub fn version() -> VersionInfo {
    VersionInfo {
        daemon: "ferroswan".into(),
        version: "0.1.0".into(),
        sysname: "Linux".into(),
        release: "6.1.0-test".into(),
        machine: "x86_64".into(),
    }
}

pub fn stats() -> StatsInfo {
    StatsInfo {
        uptime_running: "5 minutes".into(),
        uptime_since: "Nov 02 10:00:00 2026".into(),
        workers_total: 16,
        workers_idle: 11,
        workers_active: PerPriority { critical: 4, high: 0, medium: 1, low: 0 },
        queues: PerPriority { critical: 0, high: 0, medium: 0, low: 0 },
        scheduled: 3,
        ikesas_total: 2,
        ikesas_half_open: 0,
        plugins: vec!["ferroswan-ikev2".into(), "ferroswan-esp".into()],
        mem: None,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn child(name: &str, uniqueid: u32, spi_in: u32, spi_out: u32, bytes: u64) -> ChildSaInfo {
    ChildSaInfo {
        name: name.into(),
        uniqueid,
        reqid: uniqueid,
        state: ChildSaState::Installed,
        mode: IpsecMode::Tunnel,
        label: None,
        protocol: IpsecProtocol::Esp,
        encap: true,
        spi_in,
        spi_out,
        cpi: None,
        mark_in: Mark::default(),
        mark_out: Mark::default(),
        if_id_in: 0,
        if_id_out: 0,
        per_cpu_sas: false,
        cpu: None,
        algorithms: Algorithms {
            encr_alg: Some("AES_GCM_16".into()),
            encr_keysize: Some(128),
            ..Algorithms::default()
        },
        esn: false,
        bytes_in: bytes,
        packets_in: 7,
        use_in: Some(1),
        bytes_out: bytes * 2,
        packets_out: 14,
        use_out: Some(0),
        rekey_time: Some(3397),
        life_time: Some(3959),
        install_time: 1,
        local_ts: vec!["10.1.0.0/16".into()],
        remote_ts: vec!["10.2.0.0/16".into(), "10.3.0.0/16".into()],
    }
}

pub fn ike_sas() -> Vec<IkeSaInfo> {
    let base = IkeSaInfo {
        name: "home".into(),
        uniqueid: 1,
        version: 2,
        state: IkeSaState::Established,
        local_host: ip("192.168.0.100"),
        local_port: 4500,
        local_id: "carol@strongswan.org".into(),
        remote_host: ip("192.168.0.1"),
        remote_port: 4500,
        remote_id: "moon.strongswan.org".into(),
        remote_eap_id: None,
        remote_xauth_id: None,
        initiator: true,
        initiator_spi: 0x6fd5_5d95_f66b_4a67,
        responder_spi: 0xcea6_4d4a_303e_0ca2,
        nat_local: false,
        nat_remote: false,
        nat_fake: false,
        nat_any: false,
        if_id_in: 0,
        if_id_out: 0,
        algorithms: Algorithms {
            encr_alg: Some("AES_CBC".into()),
            encr_keysize: Some(128),
            integ_alg: Some("HMAC_SHA2_256_128".into()),
            integ_keysize: None,
            prf_alg: Some("PRF_HMAC_SHA2_256".into()),
            dh_group: Some("CURVE_25519".into()),
            ake: vec![],
        },
        ppk: false,
        established: Some(1),
        rekey_time: Some(14043),
        reauth_time: None,
        local_vips: vec![],
        remote_vips: vec![],
        tasks_queued: vec![],
        tasks_active: vec![],
        tasks_passive: vec![],
        child_sas: vec![child("net", 1, 0xc893_1e89, 0xcee7_8125, 84)],
    };
    let second = IkeSaInfo {
        name: "office".into(),
        uniqueid: 2,
        initiator: false,
        remote_host: ip("2001:db8::1"),
        remote_id: "gw.example.org".into(),
        local_vips: vec![ip("10.9.0.5")],
        child_sas: vec![child("lan", 2, 0x0000_1234, 0xabcd_ef01, 4096)],
        ..base.clone()
    };
    vec![base, second]
}

/// Answers `version`, `stats` and `list-sas` (streaming one `list-sa` per IKE SA, honouring the
/// `ike` filter); everything else is unknown.
#[derive(Debug, Default)]
pub struct TestHandler;

impl Handler for TestHandler {
    fn command(&self, name: &str, request: &Message, events: &mut EventSink) -> Option<Message> {
        match name {
            "version" => Some(version().to_message()),
            "stats" => Some(stats().to_message()),
            "list-sas" => {
                for sa in ike_sas() {
                    if request.get_str("ike").is_some_and(|ike| ike != sa.name) {
                        continue;
                    }
                    events.emit("list-sa", sa.list_sa_event());
                }
                Some(Message::new())
            }
            "initiate" => {
                for i in 0..3 {
                    events.emit(
                        "control-log",
                        Message::new().kv("group", "IKE").kv("level", "1").kv_display("msg", i),
                    );
                }
                Some(Message::new().kv("success", "yes"))
            }
            _ => None,
        }
    }
}
