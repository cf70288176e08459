//! Typed builders for the VICI messages strongSwan's tools read, with strongSwan's key names and
//! value formats (from `src/libcharon/plugins/vici/vici_query.c` and the README).
//!
//! The daemon fills [`IkeSaInfo`] / [`ChildSaInfo`] from its SAs and sends
//! [`IkeSaInfo::list_sa_event`] once per IKE SA during `list-sas`.
//!
//! Formats that `swanctl` relies on:
//! - numbers are decimal strings; SPIs are lower-case hex, zero-padded (IKE SPIs to 16 digits,
//!   ESP/AH SPIs to 8, CPIs to 4), marks and interface ids to 8;
//! - flags (`initiator`, `encap`, `nat-*`, …) are `yes` when set and absent otherwise;
//! - `swanctl --list-sas` prints an IKE SA only when it meets its `child-sas` section, so that
//!   section is always sent (possibly empty) and after the IKE SA's own keys;
//! - child sections are named `<child-name>-<child-uniqueid>`.

use std::fmt;
use std::net::IpAddr;

use super::message::Message;

/// The `version` command's response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    /// IKE daemon name (`charon` for strongSwan; `swanctl --version --daemon` prints it).
    pub daemon: String,
    /// Daemon version.
    pub version: String,
    /// `uname` sysname.
    pub sysname: String,
    /// `uname` release.
    pub release: String,
    /// `uname` machine.
    pub machine: String,
}

impl VersionInfo {
    /// The response message.
    pub fn to_message(&self) -> Message {
        Message::new()
            .kv("daemon", &self.daemon)
            .kv("version", &self.version)
            .kv("sysname", &self.sysname)
            .kv("release", &self.release)
            .kv("machine", &self.machine)
    }
}

/// Job counts per priority (`critical`, `high`, `medium`, `low`, in that order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PerPriority {
    /// `critical`.
    pub critical: u64,
    /// `high`.
    pub high: u64,
    /// `medium`.
    pub medium: u64,
    /// `low`.
    pub low: u64,
}

impl PerPriority {
    fn to_message(self) -> Message {
        Message::new()
            .kv_display("critical", self.critical)
            .kv_display("high", self.high)
            .kv_display("medium", self.medium)
            .kv_display("low", self.low)
    }
}

/// The `stats` command's response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsInfo {
    /// `uptime.running`: human-readable relative uptime (strongSwan: e.g. `5 minutes`).
    pub uptime_running: String,
    /// `uptime.since`: start time (strongSwan: e.g. `Nov 02 10:00:00 2026`).
    pub uptime_since: String,
    /// `workers.total`.
    pub workers_total: u64,
    /// `workers.idle`.
    pub workers_idle: u64,
    /// `workers.active.*`.
    pub workers_active: PerPriority,
    /// `queues.*`.
    pub queues: PerPriority,
    /// `scheduled`.
    pub scheduled: u64,
    /// `ikesas.total`.
    pub ikesas_total: u64,
    /// `ikesas.half-open`.
    pub ikesas_half_open: u64,
    /// `plugins` (names of loaded plugins; ferroswan lists its subsystems).
    pub plugins: Vec<String>,
    /// `mem.total` / `mem.allocs`, if known.
    pub mem: Option<(u64, u64)>,
}

impl StatsInfo {
    /// The response message.
    pub fn to_message(&self) -> Message {
        let mut msg = Message::new()
            .section(
                "uptime",
                Message::new().kv("running", &self.uptime_running).kv("since", &self.uptime_since),
            )
            .section(
                "workers",
                Message::new()
                    .kv_display("total", self.workers_total)
                    .kv_display("idle", self.workers_idle)
                    .section("active", self.workers_active.to_message()),
            )
            .section("queues", self.queues.to_message())
            .kv_display("scheduled", self.scheduled)
            .section(
                "ikesas",
                Message::new()
                    .kv_display("total", self.ikesas_total)
                    .kv_display("half-open", self.ikesas_half_open),
            )
            .list("plugins", &self.plugins);
        if let Some((total, allocs)) = self.mem {
            msg = msg.section(
                "mem",
                Message::new().kv_display("total", total).kv_display("allocs", allocs),
            );
        }
        msg
    }
}

/// Defines a state enum with strongSwan's names.
macro_rules! named_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// strongSwan's name for the value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum! {
    /// IKE SA state (strongSwan `ike_sa_state_names`), in lifecycle order.
    IkeSaState {
        /// Created, nothing sent.
        Created => "CREATED",
        /// IKE_SA_INIT / IKE_AUTH in progress.
        Connecting => "CONNECTING",
        /// Established.
        Established => "ESTABLISHED",
        /// Passive (HA).
        Passive => "PASSIVE",
        /// Being rekeyed.
        Rekeying => "REKEYING",
        /// Replaced by a rekeyed SA.
        Rekeyed => "REKEYED",
        /// Being deleted.
        Deleting => "DELETING",
        /// Being destroyed.
        Destroying => "DESTROYING",
    }
}

named_enum! {
    /// Child SA state (strongSwan `child_sa_state_names`), in lifecycle order.
    ChildSaState {
        /// Created.
        Created => "CREATED",
        /// Trap policy installed.
        Routed => "ROUTED",
        /// Being installed.
        Installing => "INSTALLING",
        /// Installed.
        Installed => "INSTALLED",
        /// Being updated (MOBIKE).
        Updating => "UPDATING",
        /// Being rekeyed.
        Rekeying => "REKEYING",
        /// Replaced by a rekeyed SA.
        Rekeyed => "REKEYED",
        /// Retrying.
        Retrying => "RETRYING",
        /// Being deleted.
        Deleting => "DELETING",
        /// Deleted.
        Deleted => "DELETED",
        /// Being destroyed.
        Destroying => "DESTROYING",
    }
}

named_enum! {
    /// IPsec mode (strongSwan `ipsec_mode_names`).
    IpsecMode {
        /// Tunnel mode.
        Tunnel => "TUNNEL",
        /// Transport mode.
        Transport => "TRANSPORT",
        /// Transport mode with proxy (RFC 7296 §2.23 style) addresses.
        TransportProxy => "TRANSPORT_PROXY",
        /// BEET mode.
        Beet => "BEET",
        /// Pass-through policy.
        Pass => "PASS",
        /// Drop policy.
        Drop => "DROP",
    }
}

named_enum! {
    /// IPsec protocol (strongSwan `protocol_id_names`).
    IpsecProtocol {
        /// AH.
        Ah => "AH",
        /// ESP.
        Esp => "ESP",
    }
}

/// A Netfilter mark and mask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    /// Value.
    pub value: u32,
    /// Mask.
    pub mask: u32,
}

/// Algorithms negotiated for an SA (names as strongSwan prints them: `AES_GCM_16`,
/// `HMAC_SHA2_256_128`, `PRF_HMAC_SHA2_256`, `CURVE_25519`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Algorithms {
    /// `encr-alg`.
    pub encr_alg: Option<String>,
    /// `encr-keysize` (bits; omitted when 0).
    pub encr_keysize: Option<u16>,
    /// `integ-alg`.
    pub integ_alg: Option<String>,
    /// `integ-keysize`.
    pub integ_keysize: Option<u16>,
    /// `prf-alg`.
    pub prf_alg: Option<String>,
    /// `dh-group`.
    pub dh_group: Option<String>,
    /// `ake1` … `ake7` (RFC 9370 additional key exchanges), at most 7.
    pub ake: Vec<String>,
}

impl Algorithms {
    fn add_to(&self, mut msg: Message) -> Message {
        if let Some(alg) = &self.encr_alg {
            msg = msg.kv("encr-alg", alg);
            if let Some(ks) = self.encr_keysize.filter(|&ks| ks != 0) {
                msg = msg.kv_display("encr-keysize", ks);
            }
        }
        if let Some(alg) = &self.integ_alg {
            msg = msg.kv("integ-alg", alg);
            if let Some(ks) = self.integ_keysize.filter(|&ks| ks != 0) {
                msg = msg.kv_display("integ-keysize", ks);
            }
        }
        if let Some(alg) = &self.prf_alg {
            msg = msg.kv("prf-alg", alg);
        }
        if let Some(group) = &self.dh_group {
            msg = msg.kv("dh-group", group);
        }
        for (i, ake) in self.ake.iter().take(7).enumerate() {
            msg = msg.kv(format!("ake{}", i + 1), ake);
        }
        msg
    }
}

/// One IKE SA as `list-sa`, `ike-updown` and `child-updown` events show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeSaInfo {
    /// Connection (config) name; the event's top-level section name.
    pub name: String,
    /// `uniqueid`.
    pub uniqueid: u32,
    /// `version` (1 or 2).
    pub version: u8,
    /// `state`.
    pub state: IkeSaState,
    /// `local-host`.
    pub local_host: IpAddr,
    /// `local-port`.
    pub local_port: u16,
    /// `local-id`.
    pub local_id: String,
    /// `remote-host`.
    pub remote_host: IpAddr,
    /// `remote-port`.
    pub remote_port: u16,
    /// `remote-id`.
    pub remote_id: String,
    /// `remote-eap-id`, if EAP-authenticated with an identity differing from `remote-id`.
    pub remote_eap_id: Option<String>,
    /// `remote-xauth-id` (IKEv1 only).
    pub remote_xauth_id: Option<String>,
    /// `initiator`: we initiated this SA.
    pub initiator: bool,
    /// `initiator-spi` (host order value; printed as 16 hex digits).
    pub initiator_spi: u64,
    /// `responder-spi`.
    pub responder_spi: u64,
    /// `nat-local`.
    pub nat_local: bool,
    /// `nat-remote`.
    pub nat_remote: bool,
    /// `nat-fake`.
    pub nat_fake: bool,
    /// `nat-any`.
    pub nat_any: bool,
    /// `if-id-in` (omitted when 0).
    pub if_id_in: u32,
    /// `if-id-out` (omitted when 0).
    pub if_id_out: u32,
    /// IKE algorithms.
    pub algorithms: Algorithms,
    /// `ppk`: a post-quantum preshared key was used.
    pub ppk: bool,
    /// `established` (seconds ago; only sent when `state` is ESTABLISHED).
    pub established: Option<u64>,
    /// `rekey-time` (seconds until rekeying).
    pub rekey_time: Option<i64>,
    /// `reauth-time` (seconds until reauthentication).
    pub reauth_time: Option<i64>,
    /// `local-vips` (omitted when empty).
    pub local_vips: Vec<IpAddr>,
    /// `remote-vips` (omitted when empty).
    pub remote_vips: Vec<IpAddr>,
    /// `tasks-queued` (omitted when empty).
    pub tasks_queued: Vec<String>,
    /// `tasks-active` (omitted when empty).
    pub tasks_active: Vec<String>,
    /// `tasks-passive` (omitted when empty).
    pub tasks_passive: Vec<String>,
    /// The SA's Child SAs.
    pub child_sas: Vec<ChildSaInfo>,
}

impl IkeSaInfo {
    /// The SA's own keys, without `child-sas` (the body of `ike-updown` and `ike-rekey`).
    pub fn to_message(&self) -> Message {
        let mut m = Message::new()
            .kv_display("uniqueid", self.uniqueid)
            .kv_display("version", self.version)
            .kv("state", self.state.as_str())
            .kv_display("local-host", self.local_host)
            .kv_display("local-port", self.local_port)
            .kv("local-id", &self.local_id)
            .kv_display("remote-host", self.remote_host)
            .kv_display("remote-port", self.remote_port)
            .kv("remote-id", &self.remote_id);
        if let Some(id) = &self.remote_xauth_id {
            m = m.kv("remote-xauth-id", id);
        }
        if let Some(id) = &self.remote_eap_id {
            m = m.kv("remote-eap-id", id);
        }
        m = flag(m, "initiator", self.initiator)
            .kv("initiator-spi", format!("{:016x}", self.initiator_spi))
            .kv("responder-spi", format!("{:016x}", self.responder_spi));
        m = flag(m, "nat-local", self.nat_local);
        m = flag(m, "nat-remote", self.nat_remote);
        m = flag(m, "nat-fake", self.nat_fake);
        m = flag(m, "nat-any", self.nat_any);
        m = hex32(m, "if-id-in", self.if_id_in);
        m = hex32(m, "if-id-out", self.if_id_out);
        m = self.algorithms.add_to(m);
        m = flag(m, "ppk", self.ppk);
        if self.state == IkeSaState::Established {
            if let Some(t) = self.established {
                m = m.kv_display("established", t);
            }
            if let Some(t) = self.rekey_time {
                m = m.kv_display("rekey-time", t);
            }
            if let Some(t) = self.reauth_time {
                m = m.kv_display("reauth-time", t);
            }
        }
        m = nonempty_list(m, "local-vips", &self.local_vips);
        m = nonempty_list(m, "remote-vips", &self.remote_vips);
        m = nonempty_list(m, "tasks-queued", &self.tasks_queued);
        m = nonempty_list(m, "tasks-active", &self.tasks_active);
        nonempty_list(m, "tasks-passive", &self.tasks_passive)
    }

    /// The SA's keys and its `child-sas` section (always present, possibly empty).
    pub fn to_message_with_children(&self) -> Message {
        let children = self
            .child_sas
            .iter()
            .fold(Message::new(), |m, c| m.section(c.section_name(), c.to_message()));
        self.to_message().section("child-sas", children)
    }

    /// The `list-sa` event for this SA: `{ <name> { …, child-sas { <child>-<id> { … } } } }`.
    pub fn list_sa_event(&self) -> Message {
        Message::new().section(&self.name, self.to_message_with_children())
    }

    /// The `ike-updown` event: `{ up = yes (if up), <name> { … without child-sas } }`.
    pub fn ike_updown_event(&self, up: bool) -> Message {
        flag(Message::new(), "up", up).section(&self.name, self.to_message())
    }

    /// The `child-updown` event for `child`: `{ up = yes (if up), <name> { …, child-sas {
    /// <child>-<id> { … } } } }` with only the affected Child SA.
    pub fn child_updown_event(&self, child: &ChildSaInfo, up: bool) -> Message {
        let children = Message::new().section(child.section_name(), child.to_message());
        flag(Message::new(), "up", up)
            .section(&self.name, self.to_message().section("child-sas", children))
    }
}

/// One Child SA as the `child-sas` section of `list-sa` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildSaInfo {
    /// `name` (the child config name).
    pub name: String,
    /// `uniqueid`.
    pub uniqueid: u32,
    /// `reqid`.
    pub reqid: u32,
    /// `state`. SPIs, algorithms and counters are only sent in the states where strongSwan sends
    /// them (INSTALLED, REKEYING, REKEYED, DELETING, DELETED).
    pub state: ChildSaState,
    /// `mode`.
    pub mode: IpsecMode,
    /// `label` (hex-encoded security label), if any.
    pub label: Option<String>,
    /// `protocol`.
    pub protocol: IpsecProtocol,
    /// `encap`: UDP-encapsulated (NAT-T).
    pub encap: bool,
    /// `spi-in` (host order value; printed as 8 hex digits).
    pub spi_in: u32,
    /// `spi-out`.
    pub spi_out: u32,
    /// `cpi-in` / `cpi-out`, if IPComp is used.
    pub cpi: Option<(u16, u16)>,
    /// `mark-in` / `mark-mask-in`.
    pub mark_in: Mark,
    /// `mark-out` / `mark-mask-out`.
    pub mark_out: Mark,
    /// `if-id-in` (omitted when 0).
    pub if_id_in: u32,
    /// `if-id-out` (omitted when 0).
    pub if_id_out: u32,
    /// `per-cpu-sas`.
    pub per_cpu_sas: bool,
    /// `cpu`, for a per-CPU SA.
    pub cpu: Option<u32>,
    /// ESP/AH algorithms (`prf-alg` is not sent for Child SAs by strongSwan; leave it `None`).
    pub algorithms: Algorithms,
    /// `esn`: extended sequence numbers.
    pub esn: bool,
    /// `bytes-in`.
    pub bytes_in: u64,
    /// `packets-in`.
    pub packets_in: u64,
    /// `use-in` (seconds since the last inbound packet).
    pub use_in: Option<u64>,
    /// `bytes-out`.
    pub bytes_out: u64,
    /// `packets-out`.
    pub packets_out: u64,
    /// `use-out`.
    pub use_out: Option<u64>,
    /// `rekey-time` (seconds until rekeying).
    pub rekey_time: Option<i64>,
    /// `life-time` (seconds until expiry).
    pub life_time: Option<i64>,
    /// `install-time` (seconds since installation).
    pub install_time: u64,
    /// `local-ts` (strongSwan notation, e.g. `10.1.0.0/16`, `10.1.0.0/16[tcp/443]`).
    pub local_ts: Vec<String>,
    /// `remote-ts`.
    pub remote_ts: Vec<String>,
}

impl ChildSaInfo {
    /// The section name strongSwan uses: `<name>-<uniqueid>`.
    pub fn section_name(&self) -> String {
        format!("{}-{}", self.name, self.uniqueid)
    }

    /// The section body.
    pub fn to_message(&self) -> Message {
        let mut m = Message::new()
            .kv("name", &self.name)
            .kv_display("uniqueid", self.uniqueid)
            .kv_display("reqid", self.reqid)
            .kv("state", self.state.as_str())
            .kv("mode", self.mode.as_str());
        if let Some(label) = &self.label {
            m = m.kv("label", label);
        }
        if matches!(
            self.state,
            ChildSaState::Installed
                | ChildSaState::Rekeying
                | ChildSaState::Rekeyed
                | ChildSaState::Deleting
                | ChildSaState::Deleted
        ) {
            m = self.add_ipsec(m);
            m = self.add_stats(m);
        }
        m.list("local-ts", &self.local_ts).list("remote-ts", &self.remote_ts)
    }

    fn add_ipsec(&self, mut m: Message) -> Message {
        m = m.kv("protocol", self.protocol.as_str());
        m = flag(m, "encap", self.encap)
            .kv("spi-in", format!("{:08x}", self.spi_in))
            .kv("spi-out", format!("{:08x}", self.spi_out));
        if let Some((cpi_in, cpi_out)) = self.cpi {
            m = m.kv("cpi-in", format!("{cpi_in:04x}")).kv("cpi-out", format!("{cpi_out:04x}"));
        }
        m = mark(m, self.mark_in, "mark-in", "mark-mask-in");
        m = mark(m, self.mark_out, "mark-out", "mark-mask-out");
        m = hex32(m, "if-id-in", self.if_id_in);
        m = hex32(m, "if-id-out", self.if_id_out);
        m = flag(m, "per-cpu-sas", self.per_cpu_sas);
        if let Some(cpu) = self.cpu {
            m = m.kv_display("cpu", cpu);
        }
        m = self.algorithms.add_to(m);
        if self.esn { m.kv("esn", "1") } else { m }
    }

    fn add_stats(&self, mut m: Message) -> Message {
        m = m.kv_display("bytes-in", self.bytes_in).kv_display("packets-in", self.packets_in);
        if let Some(t) = self.use_in {
            m = m.kv_display("use-in", t);
        }
        m = m.kv_display("bytes-out", self.bytes_out).kv_display("packets-out", self.packets_out);
        if let Some(t) = self.use_out {
            m = m.kv_display("use-out", t);
        }
        if let Some(t) = self.rekey_time {
            m = m.kv_display("rekey-time", t);
        }
        if let Some(t) = self.life_time {
            m = m.kv_display("life-time", t);
        }
        m.kv_display("install-time", self.install_time)
    }
}

fn flag(m: Message, name: &str, set: bool) -> Message {
    if set { m.kv(name, "yes") } else { m }
}

fn hex32(m: Message, name: &str, value: u32) -> Message {
    if value != 0 { m.kv(name, format!("{value:08x}")) } else { m }
}

/// strongSwan sends a mark if value or mask is set, and the mask unless it is all ones.
fn mark(m: Message, mark: Mark, name: &str, mask_name: &str) -> Message {
    if mark.value | mark.mask == 0 {
        return m;
    }
    let m = m.kv(name, format!("{:08x}", mark.value));
    if mark.mask != u32::MAX { m.kv(mask_name, format!("{:08x}", mark.mask)) } else { m }
}

fn nonempty_list<T: fmt::Display>(m: Message, name: &str, items: &[T]) -> Message {
    if items.is_empty() { m } else { m.list(name, items.iter().map(ToString::to_string)) }
}
