//! What `list-sas`, `stats` and `version` report about the running data plane, in strongSwan's
//! VICI shapes (so `swanctl --list-sas` works against us), plus the rendering of
//! `ferroswan status`.
//!
//! Manually keyed SAs have no IKE SA. Each manual SA is shown as an IKE SA entry with
//! `version = 0` (swanctl prints "IKEv0"), zero IKE SPIs and `manual = yes`, holding one
//! CHILD_SA with the real ESP SAs, so every tool that walks `list-sa` events sees them.
//! Beyond strongSwan's keys, each CHILD_SA carries `drops-in` and `drops-out` sections: the
//! packets dropped on that SA, by reason.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use ferroswan_proto::crypto::EspSuite;
use ferroswan_proto::esp::{Mode, SaCounters};
use ferroswan_proto::wire::{EncrId, IntegId};

use crate::dataplane::{Dataplane, Destination, InboundEntry, OutboundEntry};
use crate::vici::Message;
use crate::vici::schema::{
    Algorithms, ChildSaInfo, ChildSaState, IkeSaInfo, IkeSaState, IpsecMode, IpsecProtocol, Mark,
};

/// strongSwan's name for an encryption transform (as `swanctl` prints it).
pub fn encr_name(encr: EncrId) -> String {
    match encr {
        EncrId::ENCR_AES_GCM_16 => "AES_GCM_16".into(),
        EncrId::ENCR_AES_GCM_12 => "AES_GCM_12".into(),
        EncrId::ENCR_AES_GCM_8 => "AES_GCM_8".into(),
        EncrId::ENCR_AES_CBC => "AES_CBC".into(),
        EncrId::ENCR_AES_CTR => "AES_CTR".into(),
        EncrId::ENCR_CHACHA20_POLY1305 => "CHACHA20_POLY1305".into(),
        EncrId::ENCR_3DES => "3DES_CBC".into(),
        EncrId::ENCR_NULL => "NULL".into(),
        other => format!("{other:?}"),
    }
}

/// strongSwan's name for an integrity transform.
pub fn integ_name(integ: IntegId) -> String {
    match integ {
        IntegId::AUTH_HMAC_SHA1_96 => "HMAC_SHA1_96".into(),
        IntegId::AUTH_HMAC_MD5_96 => "HMAC_MD5_96".into(),
        IntegId::AUTH_HMAC_SHA2_256_128 => "HMAC_SHA2_256_128".into(),
        IntegId::AUTH_HMAC_SHA2_384_192 => "HMAC_SHA2_384_192".into(),
        IntegId::AUTH_HMAC_SHA2_512_256 => "HMAC_SHA2_512_256".into(),
        other => format!("{other:?}"),
    }
}

/// strongSwan's name for a PRF.
pub fn prf_name(prf: ferroswan_proto::wire::PrfId) -> String {
    use ferroswan_proto::wire::PrfId as P;
    match prf {
        P::PRF_HMAC_SHA1 => "PRF_HMAC_SHA1".into(),
        P::PRF_HMAC_SHA2_256 => "PRF_HMAC_SHA2_256".into(),
        P::PRF_HMAC_SHA2_384 => "PRF_HMAC_SHA2_384".into(),
        P::PRF_HMAC_SHA2_512 => "PRF_HMAC_SHA2_512".into(),
        other => format!("{other:?}"),
    }
}

/// strongSwan's name for a key exchange method.
pub fn ke_name(ke: ferroswan_proto::wire::KeId) -> String {
    use ferroswan_proto::wire::KeId as K;
    match ke {
        K::MODP_2048 => "MODP_2048".into(),
        K::MODP_3072 => "MODP_3072".into(),
        K::MODP_4096 => "MODP_4096".into(),
        K::ECP_256 => "ECP_256".into(),
        K::ECP_384 => "ECP_384".into(),
        K::ECP_521 => "ECP_521".into(),
        K::CURVE25519 => "CURVE_25519".into(),
        other => format!("{other:?}"),
    }
}

fn algorithms(suite: &EspSuite) -> Algorithms {
    Algorithms {
        encr_alg: Some(encr_name(suite.encr)),
        encr_keysize: (suite.encr_key_bits != 0).then_some(suite.encr_key_bits),
        integ_alg: (suite.integ != IntegId::NONE).then(|| integ_name(suite.integ)),
        ..Algorithms::default()
    }
}

fn drops(counters: &SaCounters) -> Message {
    counters.nonzero_drops().fold(Message::new(), |m, (reason, n)| m.kv_display(reason.as_str(), n))
}

/// One `list-sa` event per manual SA, with live counters.
pub fn list_sa_events(dp: &Dataplane, installed: Instant, now: Instant) -> Vec<Message> {
    let tables = dp.tables();
    let mut by_name: BTreeMap<&str, (Option<&OutboundEntry>, Option<&InboundEntry>)> =
        BTreeMap::new();
    // IKE-negotiated SAs are named `conn/child` and listed under their IKE SA instead.
    for out in tables.outbound.iter().filter(|o| !o.name.contains('/')) {
        by_name.entry(&out.name).or_default().0 = Some(out);
    }
    for inb in tables.inbound.values().filter(|i| !i.name.contains('/')) {
        by_name.entry(&inb.name).or_default().1 = Some(inb);
    }
    let age = now.saturating_duration_since(installed).as_secs();
    by_name
        .into_iter()
        .enumerate()
        .filter_map(|(i, (name, (out, inb)))| {
            let (out, inb) = (out?, inb?);
            let uniqueid = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let (remote, encap) = match out.dst {
                Destination::Raw(ip) => (std::net::SocketAddr::new(ip, 0), false),
                Destination::Udp { remote, .. } => (remote, true),
            };
            let local_host = out.local;
            let child = ChildSaInfo {
                name: name.to_string(),
                uniqueid,
                reqid: uniqueid,
                state: ChildSaState::Installed,
                mode: if out.sa.mode() == Mode::Tunnel {
                    IpsecMode::Tunnel
                } else {
                    IpsecMode::Transport
                },
                label: None,
                protocol: IpsecProtocol::Esp,
                encap,
                spi_in: inb.sa.spi(),
                spi_out: out.sa.spi(),
                cpi: None,
                mark_in: Mark::default(),
                mark_out: Mark::default(),
                if_id_in: 0,
                if_id_out: 0,
                per_cpu_sas: false,
                cpu: None,
                algorithms: algorithms(&out.sa.suite()),
                esn: out.sa.esn(),
                bytes_in: inb.sa.counters().bytes(),
                packets_in: inb.sa.counters().packets(),
                use_in: None,
                bytes_out: out.sa.counters().bytes(),
                packets_out: out.sa.counters().packets(),
                use_out: None,
                rekey_time: None,
                life_time: None,
                install_time: age,
                local_ts: inb.selectors.local.iter().map(ToString::to_string).collect(),
                remote_ts: inb.selectors.remote.iter().map(ToString::to_string).collect(),
            };
            let ike = IkeSaInfo {
                name: name.to_string(),
                uniqueid,
                version: 0,
                state: IkeSaState::Established,
                local_host,
                local_port: if encap { 4500 } else { 0 },
                local_id: local_host.to_string(),
                remote_host: remote.ip(),
                remote_port: remote.port(),
                remote_id: remote.ip().to_string(),
                remote_eap_id: None,
                remote_xauth_id: None,
                initiator: true,
                initiator_spi: 0,
                responder_spi: 0,
                nat_local: false,
                nat_remote: false,
                nat_fake: false,
                nat_any: false,
                if_id_in: 0,
                if_id_out: 0,
                algorithms: Algorithms::default(),
                ppk: false,
                established: Some(age),
                rekey_time: None,
                reauth_time: None,
                local_vips: vec![],
                remote_vips: vec![],
                tasks_queued: vec![],
                tasks_active: vec![],
                tasks_passive: vec![],
                child_sas: vec![],
            };
            // Our additions: `manual = yes`, and drop counters per direction on the child.
            let child_msg = child
                .to_message()
                .section("drops-in", drops(inb.sa.counters()))
                .section("drops-out", drops(out.sa.counters()));
            let ike_msg = ike
                .to_message()
                .kv("manual", "yes")
                .section("child-sas", Message::new().section(child.section_name(), child_msg));
            let event = Message::new().section(name, ike_msg);
            Some(event)
        })
        .collect()
}

/// `list-policy` events for VICI `list-policies`, in charon's shape: one section
/// `<conn>/<child>` per trap policy with `child`, `ike`, `mode` (`TUNNEL`/`TRANSPORT`),
/// `local-ts` and `remote-ts`, plus (not charon keys, swanctl skips them) the trap's queue and
/// counters: `ferroswan-queued`, `-acquires`, `-held`, `-sent`, `-queue-full`, `-failed`.
///
/// As in charon, traps are listed only when the request has `trap` (swanctl `--list-pols`
/// sends it unless `--drop` or `--pass` alone is given), and only those of child `child` when
/// given. There are no drop or pass shunt policies to list.
pub fn list_policy_events(dp: &Dataplane, request: &Message) -> Vec<Message> {
    if request.get("trap").is_none() {
        return Vec::new();
    }
    let only = request.get_str("child");
    dp.tables()
        .traps
        .iter()
        .filter(|t| only.is_none_or(|c| c == t.child))
        .map(|t| {
            let stats = t.stats();
            let policy = Message::new()
                .kv("child", &t.child)
                .kv("ike", &t.conn)
                .kv(
                    "mode",
                    match t.mode {
                        Mode::Tunnel => "TUNNEL",
                        Mode::Transport => "TRANSPORT",
                    },
                )
                .list("local-ts", t.selectors.local.iter().map(ToString::to_string))
                .list("remote-ts", t.selectors.remote.iter().map(ToString::to_string))
                .kv_display("ferroswan-queued", stats.queued)
                .kv_display("ferroswan-acquires", stats.acquires)
                .kv_display("ferroswan-held", stats.held)
                .kv_display("ferroswan-sent", stats.sent)
                .kv_display("ferroswan-queue-full", stats.queue_full)
                .kv_display("ferroswan-failed", stats.failed);
            Message::new().section(t.name(), policy)
        })
        .collect()
}

/// Renders `list-policy` events (trap policies) the way `ferroswan status` shows them.
pub fn render_policies(events: &[Message]) -> String {
    let mut out = String::new();
    for event in events {
        for (name, p) in event.sections() {
            let g = |k| p.get_str(k).unwrap_or("-");
            let _ = writeln!(
                out,
                "{name}: trap policy, {}: {} === {}",
                g("mode"),
                p.get_str_list("local-ts").unwrap_or_default().join(", "),
                p.get_str_list("remote-ts").unwrap_or_default().join(", "),
            );
            let _ = writeln!(
                out,
                "  queued {}, acquires {}, held {}, sent {}, dropped: queue full {}, failed {}",
                g("ferroswan-queued"),
                g("ferroswan-acquires"),
                g("ferroswan-held"),
                g("ferroswan-sent"),
                g("ferroswan-queue-full"),
                g("ferroswan-failed"),
            );
        }
    }
    out
}

/// Human-readable uptime, as strongSwan prints it (`5 minutes`, `2 hours`, `3 days`).
pub fn uptime_text(uptime: Duration) -> String {
    let s = uptime.as_secs();
    let (n, unit) = match s {
        0..120 => (s, "second"),
        120..7200 => (s / 60, "minute"),
        7200..172_800 => (s / 3600, "hour"),
        _ => (s / 86400, "day"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Renders `list-sa` events the way `ferroswan status` shows them.
pub fn render(events: &[Message], global: &Message) -> String {
    let mut out = String::new();
    if events.is_empty() {
        out.push_str("no security associations\n");
    }
    for event in events {
        for (name, ike) in event.sections() {
            let _ = writeln!(
                out,
                "{name}: {} {} -> {}{}",
                if ike.get_str("manual") == Some("yes") { "manual SA" } else { "IKE SA" },
                ike.get_str("local-host").unwrap_or("?"),
                ike.get_str("remote-host").unwrap_or("?"),
                ike.get_str("established")
                    .map(|s| format!(", established {s}s ago"))
                    .unwrap_or_default(),
            );
            let Some(children) = ike.get_section("child-sas") else { continue };
            for (_, child) in children.sections() {
                let g = |k| child.get_str(k).unwrap_or("-");
                let _ = writeln!(
                    out,
                    "  {} {} {}{} {}{}{}",
                    g("name"),
                    g("state"),
                    g("mode"),
                    if g("encap") == "yes" { "-in-UDP" } else { "" },
                    g("encr-alg"),
                    child.get_str("encr-keysize").map(|k| format!("-{k}")).unwrap_or_default(),
                    child.get_str("integ-alg").map(|k| format!("/{k}")).unwrap_or_default(),
                );
                let _ = writeln!(
                    out,
                    "    in  {}  {:>12} bytes {:>10} packets",
                    g("spi-in"),
                    g("bytes-in"),
                    g("packets-in")
                );
                let _ = writeln!(
                    out,
                    "    out {}  {:>12} bytes {:>10} packets",
                    g("spi-out"),
                    g("bytes-out"),
                    g("packets-out")
                );
                let times: Vec<String> = [
                    ("installed", "install-time", "s ago"),
                    ("rekey in", "rekey-time", "s"),
                    ("expires in", "life-time", "s"),
                    ("rekeys", "ferroswan-rekeys", ""),
                ]
                .iter()
                .filter_map(|(label, key, unit)| {
                    child.get_str(key).map(|v| format!("{label} {v}{unit}"))
                })
                .collect();
                if !times.is_empty() {
                    let _ = writeln!(out, "    {}", times.join(", "));
                }
                let _ = writeln!(
                    out,
                    "    local  {}\n    remote {}",
                    child.get_str_list("local-ts").unwrap_or_default().join(", "),
                    child.get_str_list("remote-ts").unwrap_or_default().join(", ")
                );
                for dir in ["in", "out"] {
                    let Some(drops) = child.get_section(&format!("drops-{dir}")) else { continue };
                    let list: Vec<String> = drops
                        .key_values()
                        .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v)))
                        .collect();
                    if !list.is_empty() {
                        let _ = writeln!(out, "    dropped {dir}: {}", list.join(" "));
                    }
                }
            }
        }
    }
    if let Some(dp) = global.get_section("dataplane") {
        let list: Vec<String> =
            dp.key_values().map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v))).collect();
        if !list.is_empty() {
            let _ = writeln!(out, "data plane (no SA): {}", list.join(" "));
        }
    }
    out
}

/// Answers VICI `version`, `stats` and `list-sas` from the live data plane.
#[derive(Debug)]
pub struct StatusHandler {
    dp: std::sync::Arc<Dataplane>,
    started: Instant,
    started_wall: std::time::SystemTime,
    installed: Instant,
    workers: u64,
    ike: Option<crate::ike::IkeHandle>,
    conns: Option<std::sync::Arc<crate::ike::conns::Control>>,
}

impl StatusHandler {
    /// Also reports (and controls) the IKE SAs of the IKE thread behind `ike`.
    #[must_use]
    pub fn with_ike(mut self, ike: crate::ike::IkeHandle) -> Self {
        self.ike = Some(ike);
        self
    }

    /// Also answers the connection and credential commands (`load-conn`, `list-conns`,
    /// `load-shared`, …) from `conns`.
    #[must_use]
    pub fn with_conns(mut self, conns: std::sync::Arc<crate::ike::conns::Control>) -> Self {
        self.conns = Some(conns);
        self
    }

    /// Runs `initiate`/`terminate`/`rekey` on the IKE thread and waits for the outcome.
    fn control(
        &self,
        name: &str,
        request: &Message,
        events: &mut crate::vici::EventSink,
    ) -> Message {
        let Some(ike) = &self.ike else {
            return Message::new()
                .kv("success", "no")
                .kv("errmsg", "no IKE connections configured");
        };
        let get = |key: &str| request.get_str(key).map(str::to_owned);
        let id = |key: &str| -> Result<Option<u32>, String> {
            get(key)
                .map(|v| v.parse::<u32>().map_err(|_| format!("invalid {key} '{v}'")))
                .transpose()
        };
        let target = match (id("ike-id"), id("child-id")) {
            (Ok(ike_id), Ok(child_id)) => {
                crate::ike::Target { ike: get("ike"), ike_id, child: get("child"), child_id }
            }
            (Err(e), _) | (_, Err(e)) => {
                return Message::new().kv("success", "no").kv("errmsg", &e);
            }
        };
        let reauth = request.get_str("reauth") == Some("yes");
        let timeout = request
            .get_str("timeout")
            .and_then(|t| t.parse::<u64>().ok())
            .filter(|t| *t > 0)
            .map_or(Duration::from_secs(60), Duration::from_millis);
        let result = ike.request(timeout, "timeout waiting for the IKE SA", |reply| match name {
            "initiate" => crate::ike::Command::Initiate {
                conn: target.ike.clone(),
                child: target.child.clone(),
                reply,
            },
            "rekey" => crate::ike::Command::Rekey { reauth, target, reply },
            _ => crate::ike::Command::Terminate { target, reply },
        });
        let line = match &result {
            Ok(s) | Err(s) => s.clone(),
        };
        events.emit(
            "control-log",
            Message::new().kv("group", "IKE").kv("level", "1").kv("msg", &line),
        );
        match result {
            Ok(_) => Message::new().kv("success", "yes").kv("matches", "1"),
            Err(e) => Message::new().kv("success", "no").kv("errmsg", &e),
        }
    }
    /// `install`/`uninstall` (swanctl `--install`/`--uninstall --child X [--ike Y]`): a trap
    /// policy for a child, on the IKE thread.
    fn trap_command(&self, name: &str, request: &Message) -> Message {
        let fail = |e: &str| Message::new().kv("success", "no").kv("errmsg", e);
        let Some(ike) = &self.ike else { return fail("no IKE connections configured") };
        let Some(child) = request.get_str("child").map(str::to_owned) else {
            return fail("missing configuration name");
        };
        let conn = request.get_str("ike").map(str::to_owned);
        let result =
            ike.request(Duration::from_secs(10), "the IKE thread did not answer", |reply| {
                if name == "install" {
                    crate::ike::Command::InstallTrap { conn, child, reply }
                } else {
                    crate::ike::Command::UninstallTrap { conn, child, reply }
                }
            });
        match result {
            Ok(_) => Message::new().kv("success", "yes"),
            Err(e) => fail(&e),
        }
    }

    /// A handler reporting on `dp`, whose SAs were installed at `installed`, served by
    /// `workers` data-plane threads.
    pub fn new(dp: std::sync::Arc<Dataplane>, installed: Instant, workers: u64) -> Self {
        Self {
            dp,
            started: Instant::now(),
            started_wall: std::time::SystemTime::now(),
            installed,
            workers,
            ike: None,
            conns: None,
        }
    }

    fn version(&self) -> Message {
        let uname = |flag: &str| {
            std::process::Command::new("uname")
                .arg(flag)
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        };
        crate::vici::schema::VersionInfo {
            daemon: "ferroswan".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            sysname: uname("-s"),
            release: uname("-r"),
            machine: uname("-m"),
        }
        .to_message()
    }

    fn stats(&self) -> Message {
        let tables = self.dp.tables();
        let since = self
            .started_wall
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| format!("{} s after the epoch", d.as_secs()))
            .unwrap_or_default();
        let c = self.dp.counters();
        let dataplane = ferroswan_proto::esp::DropReason::ALL
            .into_iter()
            .filter(|r| c.drops(*r) != 0)
            .fold(Message::new(), |m, r| m.kv_display(r.as_str(), c.drops(r)))
            .kv_display("nat-keepalives", c.nat_keepalives())
            .kv_display("ike-datagrams", c.ike_datagrams())
            .kv_display("io-errors", c.io_errors())
            .kv_display("link-local-ignored", c.link_local_ignored());
        crate::vici::schema::StatsInfo {
            uptime_running: uptime_text(self.started.elapsed()),
            uptime_since: since,
            workers_total: self.workers,
            workers_idle: 0,
            workers_active: crate::vici::schema::PerPriority::default(),
            queues: crate::vici::schema::PerPriority::default(),
            scheduled: 0,
            ikesas_total: u64::try_from(tables.outbound.len()).unwrap_or(u64::MAX),
            ikesas_half_open: 0,
            plugins: vec!["esp".into(), "manual".into(), "tun".into(), "vici".into()],
            mem: None,
        }
        .to_message()
        .section("dataplane", dataplane)
    }
}

impl crate::vici::Handler for StatusHandler {
    fn command(
        &self,
        name: &str,
        request: &Message,
        events: &mut crate::vici::EventSink,
    ) -> Option<Message> {
        match name {
            "version" => Some(self.version()),
            "stats" => Some(self.stats()),
            "list-sas" => {
                if let Some(ike) = &self.ike {
                    for event in crate::ike::status::list_sa_events(&self.dp, ike, Instant::now()) {
                        events.emit("list-sa", event);
                    }
                }
                for event in list_sa_events(&self.dp, self.installed, Instant::now()) {
                    events.emit("list-sa", event);
                }
                Some(Message::new())
            }
            "list-policies" => {
                for event in list_policy_events(&self.dp, request) {
                    events.emit("list-policy", event);
                }
                Some(Message::new())
            }
            "initiate" | "terminate" | "rekey" => Some(self.control(name, request, events)),
            "install" | "uninstall" => Some(self.trap_command(name, request)),
            "load-conn" | "unload-conn" | "get-conns" | "list-conns" | "load-shared"
            | "unload-shared" | "get-shared" | "clear-creds" | "get-keys" | "get-authorities"
            | "get-pools" | "load-cert" | "load-key" | "load-token" | "load-authority"
            | "load-pool" => {
                let Some(conns) = &self.conns else {
                    return Some(Message::new().kv("success", "no").kv(
                        "errmsg",
                        "IKE is not running: this daemon was started with manual SAs only",
                    ));
                };
                let (reply, stream) = conns.command(name, request)?;
                for event in stream {
                    events.emit("list-conn", event);
                }
                Some(reply)
            }
            "ferroswan-failures" => Some(self.ike.as_ref().map_or_else(Message::new, |ike| {
                let st = ike.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                st.last_failure.iter().fold(Message::new(), |m, (conn, (_, msg))| m.kv(conn, msg))
            })),
            "ferroswan-notices" => Some(self.ike.as_ref().map_or_else(Message::new, |ike| {
                let st = ike.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                notices(&st, std::time::SystemTime::now())
            })),
            _ => None,
        }
    }
}

/// Our own `ferroswan-notices` answer: per connection, the restart it waits for (when, which
/// try) and its last notable event (stale SAs cleared by INITIAL_CONTACT, a restart scheduled),
/// each in one line of plain words.
fn notices(st: &crate::ike::driver::Status, now: std::time::SystemTime) -> Message {
    let mut out = Message::new();
    let conns: std::collections::BTreeSet<&String> =
        st.notices.keys().chain(st.restarts.keys()).collect();
    for conn in conns {
        let mut lines = Vec::new();
        if let Some((when, attempt, of)) = st.restarts.get(conn) {
            let of = if *of == 0 { String::new() } else { format!(" of {of}") };
            match when.duration_since(now) {
                Ok(wait) => lines.push(format!(
                    "restart pending: try {attempt}{of} in {:.0} s",
                    wait.as_secs_f64()
                )),
                Err(e) => lines.push(format!(
                    "restarting: try {attempt}{of} running for {:.0} s",
                    e.duration().as_secs_f64()
                )),
            }
        }
        if let Some((at, line)) = st.notices.get(conn) {
            let ago = now.duration_since(*at).unwrap_or_default();
            lines.push(format!("{} ago: {line}", uptime_text(ago)));
        }
        out = out.kv(conn, lines.join("; "));
    }
    out
}

/// A VICI message as JSON: sections become objects, lists arrays, values strings.
pub fn to_json(msg: &Message) -> serde_json::Value {
    use crate::vici::Element;
    let mut map = serde_json::Map::new();
    for element in msg.elements() {
        let (name, value) = match element {
            Element::Section(name, section) => (name, to_json(section)),
            Element::KeyValue(name, value) => {
                (name, serde_json::Value::String(String::from_utf8_lossy(value).into_owned()))
            }
            Element::List(name, items) => (
                name,
                serde_json::Value::Array(
                    items
                        .iter()
                        .map(|i| serde_json::Value::String(String::from_utf8_lossy(i).into_owned()))
                        .collect(),
                ),
            ),
        };
        map.insert(name.clone(), value);
    }
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::vici::{Client, Server, ServerConfig};

    #[test]
    fn list_policies_shows_traps_with_charons_keys_when_asked() {
        let dp = Dataplane::new();
        let mut tables = crate::dataplane::Tables::default();
        let selectors = ferroswan_proto::policy::SaSelectors::new(
            vec!["10.1.0.0/16".parse().unwrap()],
            vec!["10.2.0.0/16".parse().unwrap(), "fd02::/64".parse().unwrap()],
        );
        let trap =
            Arc::new(crate::dataplane::TrapEntry::new(1, "gw", "net", Mode::Tunnel, selectors));
        trap.hold(b"held", Instant::now(), 0);
        tables.add_trap(trap);
        dp.install(tables);
        // As charon: traps only with `trap`, and only child `child` when given.
        assert!(list_policy_events(&dp, &Message::new()).is_empty());
        let only_other = Message::new().kv("trap", "yes").kv("child", "other");
        assert!(list_policy_events(&dp, &only_other).is_empty());
        let events = list_policy_events(&dp, &Message::new().kv("trap", "yes").kv("child", "net"));
        assert_eq!(events.len(), 1);
        let p = events[0].get_section("gw/net").unwrap();
        assert_eq!(
            (p.get_str("child"), p.get_str("ike"), p.get_str("mode")),
            (Some("net"), Some("gw"), Some("TUNNEL"))
        );
        assert_eq!(p.get_str_list("remote-ts").unwrap(), ["10.2.0.0/16", "fd02::/64"]);
        assert_eq!(
            (p.get_str("ferroswan-queued"), p.get_str("ferroswan-acquires")),
            (Some("1"), Some("1"))
        );
        let text = render_policies(&events);
        assert!(
            text.starts_with(
                "gw/net: trap policy, TUNNEL: 10.1.0.0/16 === 10.2.0.0/16, fd02::/64\n"
            ),
            "{text}"
        );
        assert!(text.contains("queued 1, acquires 1, held 1, sent 0"), "{text}");
    }

    #[test]
    fn notices_say_what_is_pending_and_what_happened() {
        let now = std::time::SystemTime::now();
        let mut st = crate::ike::driver::Status::default();
        st.restarts.insert("gw".into(), (now + Duration::from_secs(4), 2, 5));
        st.notices.insert("gw".into(), (now, "restarting gw in 4.0 s".into()));
        st.notices.insert("other".into(), (now, "IKE SA other[1] is stale".into()));
        st.restarts.insert("late".into(), (now - Duration::from_secs(7), 1, 0));
        let m = notices(&st, now);
        assert_eq!(
            m.get_str("gw"),
            Some("restart pending: try 2 of 5 in 4 s; 0 seconds ago: restarting gw in 4.0 s")
        );
        assert_eq!(m.get_str("other"), Some("0 seconds ago: IKE SA other[1] is stale"));
        assert_eq!(m.get_str("late"), Some("restarting: try 1 running for 7 s"));
    }

    fn dataplane() -> Arc<Dataplane> {
        let text = "manual {\n gw {\n local_addrs = 192.0.2.1\n remote_addrs = 192.0.2.2\n \
                    esp_proposal = aes256gcm16\n spi_in = 0xc0010001\n spi_out = 0xc0020002\n \
                    key_in = 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223\n \
                    key_out = 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223\n \
                    local_ts = 10.1.0.0/16\n remote_ts = 10.2.0.0/16\n }\n}\n";
        let config = Config::parse_str(text, "t.conf").unwrap();
        let p = ferroswan_awslc::DEFAULT_PROVIDER;
        let plan = crate::manual::plan(&config, &p, &p).unwrap();
        let dp = Arc::new(Dataplane::new());
        dp.install(plan.tables);
        dp
    }

    #[test]
    fn list_sas_reports_manual_sas_with_counters_and_drops() {
        let dp = dataplane();
        let t = dp.tables();
        t.inbound[&0xc001_0001]
            .sa
            .counters()
            .record_drop(ferroswan_proto::esp::DropReason::Replayed);
        let events = list_sa_events(&dp, Instant::now(), Instant::now());
        assert_eq!(events.len(), 1);
        let ike = events[0].get_section("gw").unwrap();
        assert_eq!(ike.get_str("version"), Some("0"));
        assert_eq!(ike.get_str("manual"), Some("yes"));
        assert_eq!(
            ike.get_str("local-host"),
            Some("192.0.2.1"),
            "the outer address, not a selector"
        );
        assert_eq!(ike.get_str("remote-host"), Some("192.0.2.2"));
        let child = ike.get_section("child-sas").unwrap().get_section("gw-1").unwrap();
        assert_eq!(child.get_str("spi-in"), Some("c0010001"));
        assert_eq!(child.get_str("spi-out"), Some("c0020002"));
        assert_eq!(child.get_str("encr-alg"), Some("AES_GCM_16"));
        assert_eq!(child.get_str("encr-keysize"), Some("256"));
        assert_eq!(child.get_str("mode"), Some("TUNNEL"));
        assert_eq!(child.get_str_list("remote-ts"), Some(vec!["10.2.0.0/16"]));
        assert_eq!(child.get_section("drops-in").unwrap().get_str("replayed"), Some("1"));
        let text = render(&events, &Message::new());
        assert!(text.contains("dropped in: replayed=1"), "{text}");
        assert!(text.contains("AES_GCM_16-256"), "{text}");
    }

    #[test]
    fn served_over_vici() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("charon.vici");
            let handler = StatusHandler::new(dataplane(), Instant::now(), 2);
            let server = Server::start(ServerConfig::new(&path), handler).await.unwrap();
            let mut client = Client::connect(&path).await.unwrap();
            let version = client.request("version", &Message::new()).await.unwrap();
            assert_eq!(version.get_str("daemon"), Some("ferroswan"));
            let stats = client.request("stats", &Message::new()).await.unwrap();
            assert!(stats.get_section("dataplane").is_some());
            let (events, _) =
                client.request_streaming("list-sas", &Message::new(), "list-sa").await.unwrap();
            assert_eq!(events.len(), 1);
            server.shutdown().await;
        });
    }
}
