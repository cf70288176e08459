//! `connections { <name> { … } }`: swanctl's IKE connections, typed.
//!
//! Key names, value syntax and defaults follow strongSwan's `src/swanctl/swanctl.opt` and the
//! way charon's vici plugin reads them (`vici_config.c`):
//!
//! - durations: a number (decimal, `0x` hex) optionally followed by `s`, `m`, `h` or `d`
//!   ([`parse_duration`]); byte volumes: a number optionally followed by `K`, `M` or `G`
//!   (powers of 1024, [`parse_bytes`]); booleans: `yes|no|true|false|enabled|disabled|1|0`.
//! - Lists (`local_addrs`, `proposals`, `local_ts`, `certs` …) are comma separated.
//! - `local<suffix>` / `remote<suffix>` sections are authentication rounds, ordered by their
//!   `round` key and then by position in the file.
//!
//! Every swanctl.conf key is parsed and stored, including those the daemon cannot honour yet
//! (virtual IPs, marks, mediation …), so nothing the admin wrote is lost; the IKE layer decides
//! which ones it refuses. A key that is not a swanctl.conf key at all is an error naming its
//! file and line and listing the valid keys.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ferroswan_proto::policy::{TrafficSelector, TsError};

use super::proposal::{self, EspProposal, IkeProposal, ProposalError};
use super::settings::{KeyValue, Section};
use super::{ConfigError, Location, Mode, bad, boolean, get, number, parse_u64, port, unknown};

/// strongSwan's default IKE_SA rekey time (`LFT_DEFAULT_IKE_REKEY_TIME`, 4h).
pub const DEFAULT_IKE_REKEY_TIME: Duration = Duration::from_secs(4 * 3600);
/// strongSwan's default CHILD_SA rekey time (`LFT_DEFAULT_CHILD_REKEY_TIME`, 1h).
pub const DEFAULT_CHILD_REKEY_TIME: Duration = Duration::from_secs(3600);
/// The default IKE port of `local_port`/`remote_port`.
pub const DEFAULT_IKE_PORT: u16 = 500;

/// `connections.<name>`: one IKE connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Connection {
    /// The section name.
    pub name: String,
    /// Where the section starts.
    pub location: Location,
    /// `version`: IKE major version (default 0: accept IKEv1 and IKEv2, initiate IKEv2).
    pub version: IkeVersion,
    /// `local_addrs` (default `%any`).
    pub local_addrs: Vec<HostSpec>,
    /// `remote_addrs` (default `%any`).
    pub remote_addrs: Vec<HostSpec>,
    /// `local_port` (default 500; strongSwan floats to 4500 for NAT-T by itself).
    pub local_port: u16,
    /// `remote_port` (default 500).
    pub remote_port: u16,
    /// `proposals`, parsed (default `default`).
    pub proposals: Vec<IkeProposal>,
    /// `vips`: virtual IPs to request (`0.0.0.0` / `::` for any, or a specific address);
    /// stored, not honoured yet.
    pub vips: Vec<IpAddr>,
    /// `aggressive`: IKEv1 aggressive mode (default no).
    pub aggressive: bool,
    /// `pull`: IKEv1 mode config pull (default yes).
    pub pull: bool,
    /// `dscp`: DSCP of IKE packets, 6 bits (default 0, written as a binary string `000000`).
    pub dscp: u8,
    /// `encap`: force UDP encapsulation of ESP (default no).
    pub encap: bool,
    /// `mobike` (default yes).
    pub mobike: bool,
    /// `dpd_delay`: interval of liveness checks (default 0s: off).
    pub dpd_delay: Duration,
    /// `dpd_timeout` (default 0s). charon uses it for IKEv1 only (5 × `dpd_delay` when 0);
    /// ferroswan also gives up an IKEv2 liveness check after it (0: the whole retransmission
    /// schedule, as charon does for IKEv2).
    pub dpd_timeout: Duration,
    /// `fragmentation` (default yes).
    pub fragmentation: Fragmentation,
    /// `childless`: IKE_SA without CHILD_SA, RFC 6023 (default allow).
    pub childless: Childless,
    /// `send_certreq` (default yes).
    pub send_certreq: bool,
    /// `send_cert` (default ifasked).
    pub send_cert: SendCert,
    /// `ocsp`: OCSP in IKEv2 (default reply).
    pub ocsp: Ocsp,
    /// `ppk_id`: post-quantum preshared key identity (default none).
    pub ppk_id: Option<String>,
    /// `ppk_required` (default no).
    pub ppk_required: bool,
    /// `keyingtries`: 0 = forever (default 1).
    pub keyingtries: u32,
    /// `unique`: uniqueness policy (default no).
    pub unique: Unique,
    /// `reauth_time`: 0 = off (default 0s).
    pub reauth_time: Duration,
    /// `rekey_time`: 0 = off (default 4h when neither `rekey_time` nor `reauth_time` is set,
    /// otherwise 0s).
    pub rekey_time: Duration,
    /// `over_time`: hard IKE_SA lifetime beyond rekey/reauth (default 10% of the larger of
    /// `rekey_time` and `reauth_time`).
    pub over_time: Duration,
    /// `rand_time`: jitter subtracted from rekey/reauth (default `over_time`, at most half of
    /// the rekey/reauth time: charon's `min(over_time, max(rekey, reauth) / 2)`, or
    /// `min(rekey, reauth) / 2` when both are set).
    pub rand_time: Duration,
    /// `pools`: address pools to assign virtual IPs from; stored, not honoured yet.
    pub pools: Vec<(String, Location)>,
    /// `if_id_in` (default 0); stored.
    pub if_id_in: Option<String>,
    /// `if_id_out` (default 0); stored.
    pub if_id_out: Option<String>,
    /// `mediation` (default no); stored.
    pub mediation: bool,
    /// `mediated_by`; stored.
    pub mediated_by: Option<String>,
    /// `mediation_peer`; stored.
    pub mediation_peer: Option<String>,
    /// `local<suffix>` sections, by `round`, then file order.
    pub local: Vec<AuthRound>,
    /// `remote<suffix>` sections, by `round`, then file order.
    pub remote: Vec<AuthRound>,
    /// `children.<name>`, in file order.
    pub children: Vec<Child>,
}

/// `version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IkeVersion {
    /// `0` (the default): respond to IKEv1 and IKEv2, initiate IKEv2.
    Any,
    /// `1`: IKEv1 only.
    V1,
    /// `2`: IKEv2 only.
    V2,
}

/// One entry of `local_addrs`/`remote_addrs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostSpec {
    /// `%any` (also `%any4`, `%any6`, `0.0.0.0`, `::`): any address; the field is the family
    /// restriction (`None` for both).
    Any(Option<AddressFamily>),
    /// A single address.
    Addr(IpAddr),
    /// A CIDR subnet (responder only).
    Subnet(IpAddr, u8),
    /// An address range `a-b` (responder only).
    Range(IpAddr, IpAddr),
    /// A DNS name, resolved when used.
    Fqdn(String),
}

/// An address family restriction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// `fragmentation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragmentation {
    /// `yes` (the default): use if supported by the peer.
    Yes,
    /// `accept`: accept, but do not send fragments.
    Accept,
    /// `force`: fragment from the first message (IKEv1).
    Force,
    /// `no`.
    No,
}

/// `childless`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Childless {
    /// `allow` (the default).
    Allow,
    /// `prefer`.
    Prefer,
    /// `force`.
    Force,
    /// `never`.
    Never,
}

/// `send_cert`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendCert {
    /// `ifasked` (the default): when the peer sent a CERTREQ.
    IfAsked,
    /// `always`.
    Always,
    /// `never`.
    Never,
}

/// `ocsp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ocsp {
    /// `reply` (the default).
    Reply,
    /// `request`.
    Request,
    /// `both`.
    Both,
    /// `never`.
    Never,
}

/// `unique`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unique {
    /// `no` (the default): replace only on an INITIAL_CONTACT.
    No,
    /// `never`: never check.
    Never,
    /// `keep`: reject the new IKE_SA.
    Keep,
    /// `replace`: delete the old IKE_SA.
    Replace,
}

/// `local<suffix>` or `remote<suffix>`: one authentication round.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthRound {
    /// The section name (`local`, `local-2` …).
    pub name: String,
    /// Where the section starts.
    pub location: Location,
    /// `round` (default 0).
    pub round: u32,
    /// `auth` (default pubkey).
    pub auth: AuthMethod,
    /// `id`: the IKE identity (local default: the certificate subject or the IP address;
    /// remote default `%any`). `None` when not set.
    pub id: Option<String>,
    /// `eap_id` (default: `id`).
    pub eap_id: Option<String>,
    /// `aaa_id` (local only; default: the remote id).
    pub aaa_id: Option<String>,
    /// `xauth_id` (local only; default: `id`).
    pub xauth_id: Option<String>,
    /// `certs`: certificate files (relative to swanctl's `x509` directory).
    pub certs: Vec<PathBuf>,
    /// `cert<suffix> { file | handle, slot, module }` sections.
    pub cert_sections: Vec<CertSource>,
    /// `pubkeys`: raw public key files (relative to swanctl's `pubkey` directory).
    pub pubkeys: Vec<PathBuf>,
    /// `cacerts` (remote only): CA certificate files the peer must chain to.
    pub cacerts: Vec<PathBuf>,
    /// `cacert<suffix> { … }` sections (remote only).
    pub cacert_sections: Vec<CertSource>,
    /// `ca_id` (remote only).
    pub ca_id: Option<String>,
    /// `groups` (remote only).
    pub groups: Vec<String>,
    /// `cert_policy` (remote only): certificate policy OIDs.
    pub cert_policy: Vec<String>,
    /// `revocation` (remote only; default relaxed).
    pub revocation: Revocation,
}

/// `cert<suffix>`/`cacert<suffix>` sections: a certificate from a file or a token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertSource {
    /// The section name.
    pub name: String,
    /// Where the section starts.
    pub location: Location,
    /// `file`.
    pub file: Option<PathBuf>,
    /// `handle` (hex key id on a token).
    pub handle: Option<String>,
    /// `slot`.
    pub slot: Option<u32>,
    /// `module`.
    pub module: Option<String>,
}

/// `auth`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// `pubkey`, `rsa`, `ecdsa`, `ed25519`, `ed448`, `rsa/pss`, optionally with hash and
    /// `ike:` signature constraints (`pubkey-sha256`, `rsa-sha384-ike:ecdsa`), kept verbatim.
    Pubkey(String),
    /// `psk`.
    Psk,
    /// `eap` or `eap-<method>` (the method, if any).
    Eap(Option<String>),
    /// `xauth` or `xauth-<backend>` (the backend, if any).
    Xauth(Option<String>),
}

/// `revocation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// `relaxed` (the default): fail only on a definite revocation.
    Relaxed,
    /// `ifuri`: fail if a CRL/OCSP URI is given but no status could be fetched.
    IfUri,
    /// `strict`: fail unless the status is known good.
    Strict,
}

/// `children.<name>`: one CHILD_SA configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Child {
    /// The section name.
    pub name: String,
    /// Where the section starts.
    pub location: Location,
    /// `ah_proposals` (default none: ESP is used). AH is not implemented, so the proposal
    /// strings are kept verbatim (not checked against the ESP keyword table, which requires
    /// a cipher).
    pub ah_proposals: Vec<(String, Location)>,
    /// `esp_proposals` (default `default`).
    pub esp_proposals: Vec<EspProposal>,
    /// `sha256_96`: truncate HMAC-SHA-256 to 96 bits (default no).
    pub sha256_96: bool,
    /// `local_ts`: traffic selector strings, each checked to parse (default `dynamic`, with
    /// the section's location).
    pub local_ts: Vec<(String, Location)>,
    /// `remote_ts` (default `dynamic`).
    pub remote_ts: Vec<(String, Location)>,
    /// `rekey_time` (default 1h, or `life_time` / 1.1 when only that is set).
    pub rekey_time: Duration,
    /// `life_time` (default `rekey_time` × 1.1).
    pub life_time: Duration,
    /// `rand_time` (default `life_time` − `rekey_time`).
    pub rand_time: Duration,
    /// `rekey_bytes` (default 0: off, or `life_bytes` / 1.1).
    pub rekey_bytes: u64,
    /// `life_bytes` (default `rekey_bytes` × 1.1).
    pub life_bytes: u64,
    /// `rand_bytes` (default `life_bytes` − `rekey_bytes`).
    pub rand_bytes: u64,
    /// `rekey_packets` (default 0: off, or `life_packets` / 1.1).
    pub rekey_packets: u64,
    /// `life_packets` (default `rekey_packets` × 1.1).
    pub life_packets: u64,
    /// `rand_packets` (default `life_packets` − `rekey_packets`).
    pub rand_packets: u64,
    /// `updown`: script to run on events (default none).
    pub updown: Option<String>,
    /// `hostaccess` (default no).
    pub hostaccess: bool,
    /// `mode` (default tunnel).
    pub mode: ChildMode,
    /// `policies`: install IPsec policies (default yes).
    pub policies: bool,
    /// `policies_fwd_out` (default no).
    pub policies_fwd_out: bool,
    /// `dpd_action` (default clear).
    pub dpd_action: Action,
    /// `ipcomp` (default no).
    pub ipcomp: bool,
    /// `inactivity`: close after this idle time (default 0s: off).
    pub inactivity: Duration,
    /// `reqid` (default 0: assigned).
    pub reqid: u32,
    /// `priority` (default 0: computed).
    pub priority: u32,
    /// `interface`; stored.
    pub interface: Option<String>,
    /// `mark_in`; stored verbatim (`value/mask`).
    pub mark_in: Option<String>,
    /// `mark_in_sa` (default no).
    pub mark_in_sa: bool,
    /// `mark_out`; stored verbatim.
    pub mark_out: Option<String>,
    /// `set_mark_in`; stored verbatim.
    pub set_mark_in: Option<String>,
    /// `set_mark_out`; stored verbatim.
    pub set_mark_out: Option<String>,
    /// `if_id_in`; stored verbatim.
    pub if_id_in: Option<String>,
    /// `if_id_out`; stored verbatim.
    pub if_id_out: Option<String>,
    /// `label`: security label; stored verbatim.
    pub label: Option<String>,
    /// `label_mode` (default system); stored verbatim.
    pub label_mode: Option<String>,
    /// `tfc_padding`: pad to this size, `mtu` = [`TfcPadding::Mtu`] (default 0: off).
    pub tfc_padding: TfcPadding,
    /// `replay_window` in packets (default 32).
    pub replay_window: u32,
    /// `per_cpu_sas` (default no); stored verbatim.
    pub per_cpu_sas: Option<String>,
    /// `hw_offload` (default no).
    pub hw_offload: HwOffload,
    /// `copy_df`: copy the DF bit to the outer header (default yes).
    pub copy_df: bool,
    /// `copy_ecn` (default yes).
    pub copy_ecn: bool,
    /// `copy_dscp` (default out).
    pub copy_dscp: CopyDscp,
    /// `icmp`: forward ICMP errors for non-matching packets (default no).
    pub icmp: bool,
    /// `start_action` (default none).
    pub start_action: Action,
    /// `close_action` (default none).
    pub close_action: Action,
}

/// `mode` of a CHILD_SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildMode {
    /// `tunnel` / `transport` (what the data plane runs).
    Esp(Mode),
    /// `transport_proxy`.
    TransportProxy,
    /// `beet`.
    Beet,
    /// `iptfs`.
    Iptfs,
    /// `pass`: a bypass policy.
    Pass,
    /// `drop`: a drop policy.
    Drop,
}

/// `start_action`, `close_action`, `dpd_action` (strongSwan's `action_t` flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Action {
    /// `trap` (alias `route`): install a trap policy.
    pub trap: bool,
    /// `start` (alias `restart`): initiate.
    pub start: bool,
}

impl Action {
    /// `none` (alias `clear`).
    pub const NONE: Self = Self { trap: false, start: false };
    /// `trap`.
    pub const TRAP: Self = Self { trap: true, start: false };
    /// `start`.
    pub const START: Self = Self { trap: false, start: true };
}

/// `tfc_padding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TfcPadding {
    /// Pad to this many bytes (0 = off, the default).
    Bytes(u32),
    /// `mtu`: pad to the path MTU.
    Mtu,
}

/// `hw_offload`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HwOffload {
    /// `no` (the default).
    No,
    /// `yes` / `crypto`.
    Crypto,
    /// `packet`.
    Packet,
    /// `auto`.
    Auto,
}

/// `copy_dscp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyDscp {
    /// `out` (the default): inner to outer on outbound only.
    Out,
    /// `in`.
    In,
    /// `yes`: both directions.
    Yes,
    /// `no`.
    No,
}

/// Keys of `connections.<name>` (swanctl.opt).
pub const CONNECTION_KEYS: &[&str] = &[
    "aggressive",
    "childless",
    "dpd_delay",
    "dpd_timeout",
    "dscp",
    "encap",
    "fragmentation",
    "if_id_in",
    "if_id_out",
    "keyingtries",
    "local_addrs",
    "local_port",
    "mediated_by",
    "mediation",
    "mediation_peer",
    "mobike",
    "ocsp",
    "over_time",
    "pools",
    "ppk_id",
    "ppk_required",
    "proposals",
    "pull",
    "rand_time",
    "reauth_time",
    "rekey_time",
    "remote_addrs",
    "remote_port",
    "send_cert",
    "send_certreq",
    "unique",
    "version",
    "vips",
];
/// Keys of `local<suffix>`.
pub const LOCAL_AUTH_KEYS: &[&str] =
    &["aaa_id", "auth", "certs", "eap_id", "id", "pubkeys", "round", "xauth_id"];
/// Keys of `remote<suffix>`.
pub const REMOTE_AUTH_KEYS: &[&str] = &[
    "auth",
    "ca_id",
    "cacerts",
    "cert_policy",
    "certs",
    "eap_id",
    "groups",
    "id",
    "pubkeys",
    "revocation",
    "round",
];
/// Keys of `cert<suffix>`/`cacert<suffix>`.
pub const CERT_KEYS: &[&str] = &["file", "handle", "module", "slot"];
/// Keys of `children.<name>`.
pub const CHILD_KEYS: &[&str] = &[
    "ah_proposals",
    "close_action",
    "copy_df",
    "copy_dscp",
    "copy_ecn",
    "dpd_action",
    "esp_proposals",
    "hostaccess",
    "hw_offload",
    "icmp",
    "if_id_in",
    "if_id_out",
    "inactivity",
    "interface",
    "ipcomp",
    "label",
    "label_mode",
    "life_bytes",
    "life_packets",
    "life_time",
    "local_ts",
    "mark_in",
    "mark_in_sa",
    "mark_out",
    "mode",
    "per_cpu_sas",
    "policies",
    "policies_fwd_out",
    "priority",
    "rand_bytes",
    "rand_packets",
    "rand_time",
    "rekey_bytes",
    "rekey_packets",
    "rekey_time",
    "remote_ts",
    "replay_window",
    "reqid",
    "set_mark_in",
    "set_mark_out",
    "sha256_96",
    "start_action",
    "tfc_padding",
    "updown",
];
const CONNECTION_SECTIONS: &[&str] = &["children", "local<suffix>", "remote<suffix>"];

/// strongSwan's relative time (`parse_time`): a number (decimal or `0x` hex) optionally
/// followed by blanks and one of `s`, `m`, `h`, `d` (either case); plain numbers are seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let (digits, rest) = split_number(s)?;
    let n = parse_u64(digits)?;
    let mult = match rest.trim_start() {
        "" | "s" | "S" => 1,
        "m" | "M" => 60,
        "h" | "H" => 3600,
        "d" | "D" => 86400,
        _ => return None,
    };
    n.checked_mul(mult).map(Duration::from_secs)
}

/// strongSwan's byte volume (`parse_bytes`): a number optionally followed by blanks and one of
/// `k`, `m`, `g` (either case; powers of 1024). Overflow saturates, as in strongSwan.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let (digits, rest) = split_number(s)?;
    let n = parse_u64(digits)?;
    let mult: u64 = match rest.trim_start() {
        "" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        _ => return None,
    };
    Some(n.saturating_mul(mult))
}

/// Splits a leading number (`0x…` hex or decimal digits) from its unit.
fn split_number(s: &str) -> Option<(&str, &str)> {
    let s = s.trim();
    let end = if s.starts_with("0x") || s.starts_with("0X") {
        2 + s.get(2..)?.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(s.len() - 2)
    } else {
        s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len())
    };
    let (digits, rest) = s.split_at(end);
    (!digits.is_empty() && digits != "0x" && digits != "0X").then_some((digits, rest))
}

const DURATION_HINT: &str = "use seconds or a number with s, m, h or d, e.g. 30s, 5m, 4h, 1d";

fn duration(kv: Option<&KeyValue>) -> Result<Option<Duration>, ConfigError> {
    kv.map(|kv| parse_duration(&kv.value).ok_or_else(|| bad(kv, "not a duration", DURATION_HINT)))
        .transpose()
}

fn bytes(kv: Option<&KeyValue>) -> Result<Option<u64>, ConfigError> {
    kv.map(|kv| {
        parse_bytes(&kv.value).ok_or_else(|| {
            bad(
                kv,
                "not a byte count",
                "use a number of bytes, optionally with K, M or G, e.g. 500M, 1G",
            )
        })
    })
    .transpose()
}

fn packets(kv: Option<&KeyValue>) -> Result<Option<u64>, ConfigError> {
    kv.map(|kv| number(kv, 0, u64::MAX)).transpose()
}

fn u32_key(s: &Section, key: &str, default: u32) -> Result<u32, ConfigError> {
    get(s, key).map_or(Ok(default), |kv| {
        number(kv, 0, u64::from(u32::MAX)).map(|n| u32::try_from(n).unwrap_or(default))
    })
}

/// A keyword from `choices` (case-insensitive), or an error listing them.
fn choice<T: Copy>(
    s: &Section,
    key: &str,
    default: T,
    choices: &[(&str, T)],
) -> Result<T, ConfigError> {
    let Some(kv) = get(s, key) else { return Ok(default) };
    choices.iter().find(|(w, _)| w.eq_ignore_ascii_case(&kv.value)).map(|(_, v)| *v).ok_or_else(
        || {
            let names: Vec<&str> = choices.iter().map(|(w, _)| *w).collect();
            bad(kv, "unknown value", format!("use one of: {}", names.join(", ")))
        },
    )
}

fn string(s: &Section, key: &str) -> Option<String> {
    get(s, key).map(|kv| kv.value.clone())
}

/// A comma-separated list, trimmed, empty items dropped.
fn list(s: &Section, key: &str) -> Vec<(String, Location)> {
    get(s, key).map_or_else(Vec::new, |kv| {
        kv.value
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| (t.to_owned(), kv.location.clone()))
            .collect()
    })
}

fn strings(s: &Section, key: &str) -> Vec<String> {
    list(s, key).into_iter().map(|(v, _)| v).collect()
}

fn paths(s: &Section, key: &str) -> Vec<PathBuf> {
    list(s, key).into_iter().map(|(v, _)| PathBuf::from(v)).collect()
}

fn proposal_err(kv: &KeyValue, e: &ProposalError) -> ConfigError {
    let err = ConfigError::new(kv.location.clone(), format!("{}: {e}", kv.key));
    match e.hint() {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

/// Parses one `local_addrs`/`remote_addrs` entry.
pub fn parse_host(s: &str) -> Option<HostSpec> {
    match s {
        "%any" => return Some(HostSpec::Any(None)),
        "%any4" | "0.0.0.0" => return Some(HostSpec::Any(Some(AddressFamily::V4))),
        "%any6" | "::" => return Some(HostSpec::Any(Some(AddressFamily::V6))),
        _ => {}
    }
    if let Ok(a) = s.parse::<IpAddr>() {
        return Some(HostSpec::Addr(a));
    }
    if let Some((a, len)) = s.split_once('/') {
        let a: IpAddr = a.parse().ok()?;
        let len: u8 = len.parse().ok()?;
        let max = if a.is_ipv4() { 32 } else { 128 };
        return (len <= max).then_some(HostSpec::Subnet(a, len));
    }
    if let Some((a, b)) = s.split_once('-')
        && let (Ok(a), Ok(b)) = (a.parse::<IpAddr>(), b.parse::<IpAddr>())
    {
        return (a.is_ipv4() == b.is_ipv4() && a <= b).then_some(HostSpec::Range(a, b));
    }
    let fqdn = s.strip_prefix('%').unwrap_or(s);
    let ok = !fqdn.is_empty()
        && fqdn.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        && !fqdn.chars().all(|c| c.is_ascii_digit() || c == '.');
    ok.then(|| HostSpec::Fqdn(fqdn.to_owned()))
}

fn hosts(s: &Section, key: &str) -> Result<Vec<HostSpec>, ConfigError> {
    let Some(kv) = get(s, key) else { return Ok(vec![HostSpec::Any(None)]) };
    kv.value
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            parse_host(t).ok_or_else(|| {
                ConfigError::new(kv.location.clone(), format!("invalid {key} entry '{t}'"))
                    .with_hint(
                        "use IP addresses, CIDR subnets (10.0.0.0/8), ranges \
                         (10.0.0.1-10.0.0.9), DNS names or %any",
                    )
            })
        })
        .collect()
}

fn vips(s: &Section) -> Result<Vec<IpAddr>, ConfigError> {
    list(s, "vips")
        .into_iter()
        .map(|(v, at)| {
            v.parse().map_err(|_| {
                ConfigError::new(at, format!("invalid vips entry '{v}': not an IP address"))
                    .with_hint("use 0.0.0.0 or :: to request any address, or a specific address")
            })
        })
        .collect()
}

fn traffic_selectors(s: &Section, key: &str) -> Result<Vec<(String, Location)>, ConfigError> {
    let items = list(s, key);
    if items.is_empty() {
        return Ok(vec![("dynamic".to_owned(), s.location().clone())]);
    }
    for (t, at) in &items {
        match TrafficSelector::from_str(t) {
            Ok(_) | Err(TsError::Dynamic { .. }) => {}
            Err(e) => {
                return Err(ConfigError::new(at.clone(), format!("invalid {key} '{t}': {e}"))
                    .with_hint("e.g. 10.1.0.0/16, 10.1.0.5[tcp/80], dynamic"));
            }
        }
    }
    Ok(items)
}

fn action(s: &Section, key: &str, default: Action) -> Result<Action, ConfigError> {
    let Some(kv) = get(s, key) else { return Ok(default) };
    let mut out = Action::NONE;
    for word in kv.value.split('|').map(str::trim) {
        match word.to_ascii_lowercase().as_str() {
            "none" | "clear" => {}
            "trap" | "route" => out.trap = true,
            "start" | "restart" => out.start = true,
            _ => {
                return Err(bad(kv, "unknown action", "use none, trap, start or trap|start"));
            }
        }
    }
    Ok(out)
}

/// Parses `connections { … }`.
pub fn connections(section: &Section) -> Result<Vec<Connection>, ConfigError> {
    if let Some(kv) = section.keys().first() {
        return Err(ConfigError::new(
            kv.location.clone(),
            format!("unexpected key '{}' in 'connections'", kv.key),
        )
        .with_hint("'connections' holds one section per connection: connections { name { … } }"));
    }
    section.sections().iter().map(connection).collect()
}

fn connection(s: &Section) -> Result<Connection, ConfigError> {
    let place = format!("connections.{}", s.name());
    if let Some(kv) = s.keys().iter().find(|kv| !CONNECTION_KEYS.contains(&kv.key.as_str())) {
        return Err(unknown(&kv.location, "key", &kv.key, &place, CONNECTION_KEYS));
    }
    let mut local = Vec::new();
    let mut remote = Vec::new();
    let mut children = Vec::new();
    for sub in s.sections() {
        let name = sub.name();
        if name == "children" {
            if let Some(kv) = sub.keys().first() {
                return Err(ConfigError::new(
                    kv.location.clone(),
                    format!("unexpected key '{}' in {place}.children", kv.key),
                )
                .with_hint("'children' holds one section per CHILD_SA: children { name { … } }"));
            }
            for c in sub.sections() {
                children.push(child(c, &format!("{place}.children.{}", c.name()))?);
            }
        } else if name.starts_with("local") {
            local.push(auth_round(sub, &place, true)?);
        } else if name.starts_with("remote") {
            remote.push(auth_round(sub, &place, false)?);
        } else {
            return Err(unknown(sub.location(), "section", name, &place, CONNECTION_SECTIONS));
        }
    }
    local.sort_by_key(|r| r.round);
    remote.sort_by_key(|r| r.round);

    let version = choice(
        s,
        "version",
        IkeVersion::Any,
        &[("0", IkeVersion::Any), ("1", IkeVersion::V1), ("2", IkeVersion::V2)],
    )?;
    let proposals = match get(s, "proposals") {
        None => proposal::default_ike_proposals(),
        Some(kv) => proposal::parse_ike_proposals(&kv.value).map_err(|e| proposal_err(kv, &e))?,
    };
    let dscp = match get(s, "dscp") {
        None => 0,
        Some(kv) => {
            let v = &kv.value;
            if v.is_empty() || v.len() > 6 || !v.chars().all(|c| c == '0' || c == '1') {
                return Err(bad(kv, "not a 6-bit binary DSCP value", "e.g. 101110 for EF"));
            }
            u8::from_str_radix(v, 2).unwrap_or(0)
        }
    };

    let rekey = duration(get(s, "rekey_time"))?;
    let reauth = duration(get(s, "reauth_time"))?;
    let (rekey_time, reauth_time) = match (rekey, reauth) {
        (None, None) => (DEFAULT_IKE_REKEY_TIME, Duration::ZERO),
        (r, a) => (r.unwrap_or_default(), a.unwrap_or_default()),
    };
    let longest = rekey_time.max(reauth_time);
    let over_time = duration(get(s, "over_time"))?.unwrap_or(longest / 10);
    let rand_time = match duration(get(s, "rand_time"))? {
        Some(d) => d,
        None => {
            let base = if !rekey_time.is_zero() && !reauth_time.is_zero() {
                rekey_time.min(reauth_time)
            } else {
                longest
            };
            over_time.min(base / 2)
        }
    };

    Ok(Connection {
        name: s.name().to_owned(),
        location: s.location().clone(),
        version,
        local_addrs: hosts(s, "local_addrs")?,
        remote_addrs: hosts(s, "remote_addrs")?,
        local_port: port(get(s, "local_port"), DEFAULT_IKE_PORT)?,
        remote_port: port(get(s, "remote_port"), DEFAULT_IKE_PORT)?,
        proposals,
        vips: vips(s)?,
        aggressive: boolean(get(s, "aggressive"), false)?,
        pull: boolean(get(s, "pull"), true)?,
        dscp,
        encap: boolean(get(s, "encap"), false)?,
        mobike: boolean(get(s, "mobike"), true)?,
        dpd_delay: duration(get(s, "dpd_delay"))?.unwrap_or_default(),
        dpd_timeout: duration(get(s, "dpd_timeout"))?.unwrap_or_default(),
        fragmentation: choice(
            s,
            "fragmentation",
            Fragmentation::Yes,
            &[
                ("yes", Fragmentation::Yes),
                ("accept", Fragmentation::Accept),
                ("force", Fragmentation::Force),
                ("no", Fragmentation::No),
            ],
        )?,
        childless: choice(
            s,
            "childless",
            Childless::Allow,
            &[
                ("allow", Childless::Allow),
                ("prefer", Childless::Prefer),
                ("force", Childless::Force),
                ("never", Childless::Never),
            ],
        )?,
        send_certreq: boolean(get(s, "send_certreq"), true)?,
        send_cert: choice(
            s,
            "send_cert",
            SendCert::IfAsked,
            &[
                ("ifasked", SendCert::IfAsked),
                ("always", SendCert::Always),
                ("never", SendCert::Never),
            ],
        )?,
        ocsp: choice(
            s,
            "ocsp",
            Ocsp::Reply,
            &[
                ("reply", Ocsp::Reply),
                ("request", Ocsp::Request),
                ("both", Ocsp::Both),
                ("never", Ocsp::Never),
            ],
        )?,
        ppk_id: string(s, "ppk_id"),
        ppk_required: boolean(get(s, "ppk_required"), false)?,
        keyingtries: u32_key(s, "keyingtries", 1)?,
        unique: choice(
            s,
            "unique",
            Unique::No,
            &[
                ("no", Unique::No),
                ("never", Unique::Never),
                ("keep", Unique::Keep),
                ("replace", Unique::Replace),
            ],
        )?,
        reauth_time,
        rekey_time,
        over_time,
        rand_time,
        pools: list(s, "pools"),
        if_id_in: string(s, "if_id_in"),
        if_id_out: string(s, "if_id_out"),
        mediation: boolean(get(s, "mediation"), false)?,
        mediated_by: string(s, "mediated_by"),
        mediation_peer: string(s, "mediation_peer"),
        local,
        remote,
        children,
    })
}

fn auth_method(kv: Option<&KeyValue>) -> Result<AuthMethod, ConfigError> {
    let Some(kv) = kv else { return Ok(AuthMethod::Pubkey("pubkey".to_owned())) };
    let v = kv.value.to_ascii_lowercase();
    let base = v.strip_prefix("ike:").unwrap_or(&v);
    let suffix =
        |p: &str| base.strip_prefix(p).and_then(|r| r.strip_prefix('-')).map(str::to_owned);
    if base == "psk" {
        return Ok(AuthMethod::Psk);
    }
    if base == "eap" || base.starts_with("eap-") {
        return Ok(AuthMethod::Eap(suffix("eap")));
    }
    if base == "xauth" || base.starts_with("xauth-") {
        return Ok(AuthMethod::Xauth(suffix("xauth")));
    }
    let first = base.split(['-', ':']).next().unwrap_or("");
    if ["pubkey", "rsa", "ecdsa", "ed25519", "ed448", "rsa/pss", "bliss"].contains(&first) {
        return Ok(AuthMethod::Pubkey(kv.value.clone()));
    }
    Err(bad(
        kv,
        "unknown authentication method",
        "use pubkey, rsa, ecdsa, ed25519, psk, eap[-method] or xauth[-backend]",
    ))
}

fn cert_source(s: &Section, place: &str) -> Result<CertSource, ConfigError> {
    super::check_names(s, place, CERT_KEYS, &[])?;
    let slot = get(s, "slot")
        .map(|kv| number(kv, 0, u64::from(u32::MAX)).map(|n| u32::try_from(n).unwrap_or(0)))
        .transpose()?;
    let file = string(s, "file").map(PathBuf::from);
    let handle = string(s, "handle");
    if file.is_none() && handle.is_none() {
        return Err(ConfigError::new(
            s.location().clone(),
            format!("{place} names no certificate"),
        )
        .with_hint("add 'file = …', or 'handle = …' for a token"));
    }
    Ok(CertSource {
        name: s.name().to_owned(),
        location: s.location().clone(),
        file,
        handle,
        slot,
        module: string(s, "module"),
    })
}

fn auth_round(s: &Section, conn: &str, is_local: bool) -> Result<AuthRound, ConfigError> {
    let place = format!("{conn}.{}", s.name());
    let keys = if is_local { LOCAL_AUTH_KEYS } else { REMOTE_AUTH_KEYS };
    if let Some(kv) = s.keys().iter().find(|kv| !keys.contains(&kv.key.as_str())) {
        let mut err = unknown(&kv.location, "key", &kv.key, &place, keys);
        let other = if is_local { REMOTE_AUTH_KEYS } else { LOCAL_AUTH_KEYS };
        if other.contains(&kv.key.as_str()) {
            let side = if is_local { "remote" } else { "local" };
            err.message = format!("key '{}' belongs in a {side} section, not {place}", kv.key);
        }
        return Err(err);
    }
    let mut cert_sections = Vec::new();
    let mut cacert_sections = Vec::new();
    for sub in s.sections() {
        let sub_place = format!("{place}.{}", sub.name());
        if sub.name().starts_with("cacert") && !is_local {
            cacert_sections.push(cert_source(sub, &sub_place)?);
        } else if sub.name().starts_with("cert") {
            cert_sections.push(cert_source(sub, &sub_place)?);
        } else {
            let valid: &[&str] =
                if is_local { &["cert<suffix>"] } else { &["cacert<suffix>", "cert<suffix>"] };
            return Err(unknown(sub.location(), "section", sub.name(), &place, valid));
        }
    }
    Ok(AuthRound {
        name: s.name().to_owned(),
        location: s.location().clone(),
        round: u32_key(s, "round", 0)?,
        auth: auth_method(get(s, "auth"))?,
        id: string(s, "id"),
        eap_id: string(s, "eap_id"),
        aaa_id: string(s, "aaa_id"),
        xauth_id: string(s, "xauth_id"),
        certs: paths(s, "certs"),
        cert_sections,
        pubkeys: paths(s, "pubkeys"),
        cacerts: paths(s, "cacerts"),
        cacert_sections,
        ca_id: string(s, "ca_id"),
        groups: strings(s, "groups"),
        cert_policy: strings(s, "cert_policy"),
        revocation: choice(
            s,
            "revocation",
            Revocation::Relaxed,
            &[
                ("relaxed", Revocation::Relaxed),
                ("ifuri", Revocation::IfUri),
                ("strict", Revocation::Strict),
            ],
        )?,
    })
}

/// charon's `check_lifetimes` for one of time/bytes/packets: `(rekey, life, rand)`.
fn lifetimes(rekey: Option<u64>, life: Option<u64>, rand: Option<u64>, default: u64) -> [u64; 3] {
    // Integer ×10/11 and ×11/10 instead of charon's floating point `/ 1.1`, `* 1.1`.
    let rekey = rekey.unwrap_or_else(|| life.map_or(default, |l| l / 11 * 10 + l % 11 * 10 / 11));
    let life = life.unwrap_or_else(|| rekey.saturating_add(rekey / 10));
    let rand = rand.unwrap_or_else(|| life - life.min(rekey));
    [rekey, life, rand]
}

fn child(s: &Section, place: &str) -> Result<Child, ConfigError> {
    super::check_names(s, place, CHILD_KEYS, &[])?;
    let esp_proposals = match get(s, "esp_proposals") {
        None => proposal::default_esp_proposals(),
        Some(kv) => proposal::parse_esp_proposals(&kv.value).map_err(|e| proposal_err(kv, &e))?,
    };
    let secs = |d: Option<Duration>| d.map(|d| d.as_secs());
    let [rekey_time, life_time, rand_time] = lifetimes(
        secs(duration(get(s, "rekey_time"))?),
        secs(duration(get(s, "life_time"))?),
        secs(duration(get(s, "rand_time"))?),
        DEFAULT_CHILD_REKEY_TIME.as_secs(),
    );
    let [rekey_bytes, life_bytes, rand_bytes] = lifetimes(
        bytes(get(s, "rekey_bytes"))?,
        bytes(get(s, "life_bytes"))?,
        bytes(get(s, "rand_bytes"))?,
        0,
    );
    let [rekey_packets, life_packets, rand_packets] = lifetimes(
        packets(get(s, "rekey_packets"))?,
        packets(get(s, "life_packets"))?,
        packets(get(s, "rand_packets"))?,
        0,
    );
    let tfc_padding = match get(s, "tfc_padding") {
        None => TfcPadding::Bytes(0),
        Some(kv) if kv.value.eq_ignore_ascii_case("mtu") => TfcPadding::Mtu,
        Some(kv) => {
            TfcPadding::Bytes(u32::try_from(number(kv, 0, u64::from(u32::MAX))?).unwrap_or(0))
        }
    };
    Ok(Child {
        name: s.name().to_owned(),
        location: s.location().clone(),
        ah_proposals: list(s, "ah_proposals"),
        esp_proposals,
        sha256_96: boolean(get(s, "sha256_96"), false)?,
        local_ts: traffic_selectors(s, "local_ts")?,
        remote_ts: traffic_selectors(s, "remote_ts")?,
        rekey_time: Duration::from_secs(rekey_time),
        life_time: Duration::from_secs(life_time),
        rand_time: Duration::from_secs(rand_time),
        rekey_bytes,
        life_bytes,
        rand_bytes,
        rekey_packets,
        life_packets,
        rand_packets,
        updown: string(s, "updown"),
        hostaccess: boolean(get(s, "hostaccess"), false)?,
        mode: choice(
            s,
            "mode",
            ChildMode::Esp(Mode::Tunnel),
            &[
                ("tunnel", ChildMode::Esp(Mode::Tunnel)),
                ("transport", ChildMode::Esp(Mode::Transport)),
                ("transport_proxy", ChildMode::TransportProxy),
                ("beet", ChildMode::Beet),
                ("iptfs", ChildMode::Iptfs),
                ("pass", ChildMode::Pass),
                ("drop", ChildMode::Drop),
            ],
        )?,
        policies: boolean(get(s, "policies"), true)?,
        policies_fwd_out: boolean(get(s, "policies_fwd_out"), false)?,
        dpd_action: action(s, "dpd_action", Action::NONE)?,
        ipcomp: boolean(get(s, "ipcomp"), false)?,
        inactivity: duration(get(s, "inactivity"))?.unwrap_or_default(),
        reqid: u32_key(s, "reqid", 0)?,
        priority: u32_key(s, "priority", 0)?,
        interface: string(s, "interface"),
        mark_in: string(s, "mark_in"),
        mark_in_sa: boolean(get(s, "mark_in_sa"), false)?,
        mark_out: string(s, "mark_out"),
        set_mark_in: string(s, "set_mark_in"),
        set_mark_out: string(s, "set_mark_out"),
        if_id_in: string(s, "if_id_in"),
        if_id_out: string(s, "if_id_out"),
        label: string(s, "label"),
        label_mode: string(s, "label_mode"),
        tfc_padding,
        replay_window: u32_key(s, "replay_window", super::DEFAULT_REPLAY_WINDOW)?,
        per_cpu_sas: string(s, "per_cpu_sas"),
        hw_offload: choice(
            s,
            "hw_offload",
            HwOffload::No,
            &[
                ("no", HwOffload::No),
                ("yes", HwOffload::Crypto),
                ("crypto", HwOffload::Crypto),
                ("packet", HwOffload::Packet),
                ("auto", HwOffload::Auto),
            ],
        )?,
        copy_df: boolean(get(s, "copy_df"), true)?,
        copy_ecn: boolean(get(s, "copy_ecn"), true)?,
        copy_dscp: choice(
            s,
            "copy_dscp",
            CopyDscp::Out,
            &[
                ("out", CopyDscp::Out),
                ("in", CopyDscp::In),
                ("yes", CopyDscp::Yes),
                ("no", CopyDscp::No),
            ],
        )?,
        icmp: boolean(get(s, "icmp"), false)?,
        start_action: action(s, "start_action", Action::NONE)?,
        close_action: action(s, "close_action", Action::NONE)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::super::{Config, LoadOptions};
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_str_with(
            text,
            "/virtual/swanctl.conf",
            &LoadOptions::default().check_secret_permissions(false),
        )
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    fn conn(body: &str) -> String {
        format!("connections {{\n c {{\n{body}\n }}\n}}\n")
    }

    fn child_conf(body: &str) -> String {
        conn(&format!("  children {{\n   k {{\n{body}\n   }}\n  }}"))
    }

    const GW_GW_PSK: &str = "\
# gateway-to-gateway with a preshared key (swanctl.conf(5) style)
connections {
    gw-gw {
        local_addrs  = 192.168.0.1
        remote_addrs = 192.168.0.2
        proposals = aes128-sha256-x25519
        local {
            auth = psk
            id = moon.strongswan.org
        }
        remote {
            auth = psk
            id = sun.strongswan.org
        }
        children {
            net-net {
                local_ts  = 10.1.0.0/16
                remote_ts = 10.2.0.0/16
                esp_proposals = aes128gcm16-x25519
                start_action = trap
                dpd_action = restart
            }
        }
        version = 2
        dpd_delay = 30s
    }
}
secrets {
    ike-1 {
        id-moon = moon.strongswan.org
        id-sun = sun.strongswan.org
        secret = 0sv+NkxY9LLZvwj4qCC2o/gGrWDF2d21jL
    }
}
";

    const ROADWARRIOR: &str = "\
connections {
    rw {
        pools = rw_pool
        local {
            auth = pubkey
            certs = moonCert.pem
            id = moon.strongswan.org
        }
        remote {
            auth = pubkey
            cacerts = strongswanCert.pem
            revocation = strict
        }
        children {
            net {
                local_ts = 10.1.0.0/16
                rekey_time = 20m
                life_bytes = 1G
            }
        }
        send_certreq = no
        send_cert = always
        unique = replace
        keyingtries = 0
        rekey_time = 1d
        fragmentation = force
    }
}
";

    #[test]
    fn gw_gw_psk_example() {
        let c = parse(GW_GW_PSK).unwrap();
        let [k] = c.connections.as_slice() else { panic!("one connection") };
        assert_eq!(k.name, "gw-gw");
        assert_eq!(k.location, Location::new("/virtual/swanctl.conf", 3));
        assert_eq!(k.version, IkeVersion::V2);
        assert_eq!(k.local_addrs, [HostSpec::Addr("192.168.0.1".parse().unwrap())]);
        assert_eq!(k.remote_addrs, [HostSpec::Addr("192.168.0.2".parse().unwrap())]);
        assert_eq!((k.local_port, k.remote_port), (500, 500));
        assert_eq!(k.proposals, proposal::parse_ike_proposals("aes128-sha256-x25519").unwrap());
        assert_eq!(k.dpd_delay, Duration::from_secs(30));
        assert_eq!(k.local.len(), 1);
        assert_eq!(k.local[0].auth, AuthMethod::Psk);
        assert_eq!(k.local[0].id.as_deref(), Some("moon.strongswan.org"));
        assert_eq!(k.remote[0].id.as_deref(), Some("sun.strongswan.org"));
        let [ch] = k.children.as_slice() else { panic!("one child") };
        assert_eq!(ch.name, "net-net");
        assert_eq!(
            ch.local_ts,
            [("10.1.0.0/16".to_owned(), Location::new("/virtual/swanctl.conf", 17))]
        );
        assert_eq!(ch.remote_ts[0].0, "10.2.0.0/16");
        assert_eq!(ch.esp_proposals, proposal::parse_esp_proposals("aes128gcm16-x25519").unwrap());
        assert_eq!((ch.start_action, ch.dpd_action), (Action::TRAP, Action::START));
        assert_eq!(ch.close_action, Action::NONE);
        let psk: Vec<_> = c.secrets.ike().collect();
        assert_eq!(psk.len(), 1);
        assert_eq!(psk[0].ids, ["moon.strongswan.org", "sun.strongswan.org"]);
        assert_eq!(psk[0].secret.expose().len(), 24);
    }

    #[test]
    fn roadwarrior_cert_example() {
        let c = parse(ROADWARRIOR).unwrap();
        let k = &c.connections[0];
        assert_eq!(k.local_addrs, [HostSpec::Any(None)]);
        assert_eq!(k.pools[0].0, "rw_pool");
        assert!(k.vips.is_empty());
        assert_eq!(k.local[0].auth, AuthMethod::Pubkey("pubkey".to_owned()));
        assert_eq!(k.local[0].certs, [PathBuf::from("moonCert.pem")]);
        assert_eq!(k.remote[0].cacerts, [PathBuf::from("strongswanCert.pem")]);
        assert_eq!(k.remote[0].revocation, Revocation::Strict);
        assert_eq!(k.remote[0].id, None);
        assert!(!k.send_certreq);
        assert_eq!((k.send_cert, k.unique, k.keyingtries), (SendCert::Always, Unique::Replace, 0));
        assert_eq!(k.fragmentation, Fragmentation::Force);
        assert_eq!(k.rekey_time, Duration::from_secs(86400));
        assert_eq!(k.over_time, Duration::from_secs(8640));
        assert_eq!(k.rand_time, Duration::from_secs(8640));
        let ch = &k.children[0];
        assert_eq!(ch.rekey_time, Duration::from_secs(1200));
        assert_eq!(ch.life_time, Duration::from_secs(1320));
        assert_eq!(ch.rand_time, Duration::from_secs(120));
        assert_eq!(ch.life_bytes, 1 << 30);
        assert_eq!(ch.rekey_bytes, (1u64 << 30) * 10 / 11);
        assert_eq!(ch.remote_ts[0].0, "dynamic");
    }

    #[test]
    fn connection_defaults() {
        let c = parse(&conn("")).unwrap();
        let k = &c.connections[0];
        assert_eq!(k.version, IkeVersion::Any);
        assert_eq!(k.remote_addrs, [HostSpec::Any(None)]);
        assert_eq!(k.proposals, proposal::default_ike_proposals());
        assert!(!k.aggressive && k.pull && !k.encap && k.mobike && k.send_certreq);
        assert!(!k.ppk_required && !k.mediation);
        assert_eq!(k.dscp, 0);
        assert_eq!((k.dpd_delay, k.dpd_timeout), (Duration::ZERO, Duration::ZERO));
        assert_eq!(k.fragmentation, Fragmentation::Yes);
        assert_eq!(k.childless, Childless::Allow);
        assert_eq!((k.send_cert, k.ocsp, k.unique), (SendCert::IfAsked, Ocsp::Reply, Unique::No));
        assert_eq!(k.keyingtries, 1);
        assert_eq!((k.rekey_time, k.reauth_time), (DEFAULT_IKE_REKEY_TIME, Duration::ZERO));
        assert_eq!(k.over_time, Duration::from_secs(1440));
        assert_eq!(k.rand_time, Duration::from_secs(1440));
        assert!(k.local.is_empty() && k.remote.is_empty() && k.children.is_empty());
        // reauth only: no rekeying.
        let k = &parse(&conn("reauth_time = 2h")).unwrap().connections[0];
        assert_eq!((k.rekey_time, k.reauth_time), (Duration::ZERO, Duration::from_secs(7200)));
        assert_eq!(k.over_time, Duration::from_secs(720));
        // both: rand_time at most half the shorter.
        let k = &parse(&conn("reauth_time = 2h\nrekey_time = 600")).unwrap().connections[0];
        assert_eq!(k.rand_time, Duration::from_secs(300));
        // over_time is a swanctl.conf key (charon's vici plugin reads it).
        let k = &parse(&conn("over_time = 10m")).unwrap().connections[0];
        assert_eq!(k.over_time, Duration::from_secs(600));
    }

    #[test]
    fn child_defaults() {
        let c = parse(&child_conf("")).unwrap();
        let ch = &c.connections[0].children[0];
        assert_eq!(ch.local_ts, [("dynamic".to_owned(), ch.location.clone())]);
        assert_eq!(ch.esp_proposals, proposal::default_esp_proposals());
        assert!(ch.ah_proposals.is_empty());
        assert_eq!(ch.mode, ChildMode::Esp(Mode::Tunnel));
        assert_eq!(
            (ch.rekey_time, ch.life_time),
            (Duration::from_secs(3600), Duration::from_secs(3960))
        );
        assert_eq!(ch.rand_time, Duration::from_secs(360));
        assert_eq!((ch.rekey_bytes, ch.life_bytes, ch.rand_bytes), (0, 0, 0));
        assert_eq!((ch.rekey_packets, ch.life_packets, ch.rand_packets), (0, 0, 0));
        assert_eq!(
            (ch.start_action, ch.close_action, ch.dpd_action),
            (Action::NONE, Action::NONE, Action::NONE)
        );
        assert!(ch.policies && !ch.policies_fwd_out && !ch.hostaccess && !ch.ipcomp);
        assert!(ch.copy_df && ch.copy_ecn && !ch.icmp && !ch.sha256_96 && !ch.mark_in_sa);
        assert_eq!((ch.copy_dscp, ch.hw_offload), (CopyDscp::Out, HwOffload::No));
        assert_eq!((ch.replay_window, ch.reqid, ch.priority), (32, 0, 0));
        assert_eq!(ch.tfc_padding, TfcPadding::Bytes(0));
        assert_eq!(ch.inactivity, Duration::ZERO);
        assert_eq!(ch.updown, None);
    }

    #[test]
    fn child_options() {
        let c = parse(&child_conf(
            "mode = transport\nstart_action = trap|start\nclose_action = start\n\
             rekey_packets = 1000\nlife_time = 110m\nreplay_window = 0x400\nhw_offload = yes\n\
             copy_df = no\ntfc_padding = mtu\nupdown = /usr/libexec/ipsec/_updown iptables\n\
             local_ts = 10.0.0.0/8[tcp/80], dynamic[udp]\nah_proposals = sha256\ninactivity = 5m\n\
             mark_in = 42/0xff\ncopy_dscp = yes",
        ))
        .unwrap();
        let ch = &c.connections[0].children[0];
        assert_eq!(ch.mode, ChildMode::Esp(Mode::Transport));
        assert_eq!(ch.start_action, Action { trap: true, start: true });
        assert_eq!(ch.close_action, Action::START);
        assert_eq!((ch.rekey_packets, ch.life_packets, ch.rand_packets), (1000, 1100, 100));
        assert_eq!(
            (ch.rekey_time, ch.life_time),
            (Duration::from_secs(6000), Duration::from_secs(6600))
        );
        assert_eq!(ch.replay_window, 1024);
        assert_eq!((ch.hw_offload, ch.copy_dscp), (HwOffload::Crypto, CopyDscp::Yes));
        assert!(!ch.copy_df);
        assert_eq!(ch.tfc_padding, TfcPadding::Mtu);
        assert_eq!(ch.updown.as_deref(), Some("/usr/libexec/ipsec/_updown iptables"));
        let ts: Vec<_> = ch.local_ts.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(ts, ["10.0.0.0/8[tcp/80]", "dynamic[udp]"]);
        assert_eq!(ch.ah_proposals.len(), 1);
        assert_eq!(ch.inactivity, Duration::from_secs(300));
        assert_eq!(ch.mark_in.as_deref(), Some("42/0xff"));
    }

    #[test]
    fn addresses_and_auth_rounds() {
        let c = parse(&conn(
            "local_addrs = %any6, 10.0.0.0/8, 10.1.0.1-10.1.0.9, vpn.example.org, %gw.example.org\n\
             remote_addrs = 0.0.0.0\nvips = 0.0.0.0, ::\nlocal_port = 4500\ndscp = 101110\nversion = 1\n\
             local-2 {\n round = 2\n auth = eap-tls\n eap_id = %any\n}\n\
             local-1 {\n round = 1\n auth = pubkey-sha256-ike:rsa\n cert-a { file = a.pem }\n}\n\
             remote {\n auth = xauth-pam\n cacert-x { handle = 0a0b\n slot = 1\n module = p11 }\n}",
        ))
        .unwrap();
        let k = &c.connections[0];
        assert_eq!(
            k.local_addrs,
            [
                HostSpec::Any(Some(AddressFamily::V6)),
                HostSpec::Subnet("10.0.0.0".parse().unwrap(), 8),
                HostSpec::Range("10.1.0.1".parse().unwrap(), "10.1.0.9".parse().unwrap()),
                HostSpec::Fqdn("vpn.example.org".to_owned()),
                HostSpec::Fqdn("gw.example.org".to_owned()),
            ]
        );
        assert_eq!(k.remote_addrs, [HostSpec::Any(Some(AddressFamily::V4))]);
        assert_eq!(k.vips, ["0.0.0.0".parse::<IpAddr>().unwrap(), "::".parse().unwrap()]);
        assert_eq!((k.local_port, k.dscp, k.version), (4500, 0b10_1110, IkeVersion::V1));
        let names: Vec<_> = k.local.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["local-1", "local-2"], "ordered by round");
        assert_eq!(k.local[0].auth, AuthMethod::Pubkey("pubkey-sha256-ike:rsa".to_owned()));
        assert_eq!(k.local[0].cert_sections[0].file, Some(PathBuf::from("a.pem")));
        assert_eq!(k.local[1].auth, AuthMethod::Eap(Some("tls".to_owned())));
        assert_eq!(k.remote[0].auth, AuthMethod::Xauth(Some("pam".to_owned())));
        let ca = &k.remote[0].cacert_sections[0];
        assert_eq!(
            (ca.handle.as_deref(), ca.slot, ca.module.as_deref()),
            (Some("0a0b"), Some(1), Some("p11"))
        );
    }

    #[test]
    fn durations_and_sizes() {
        let durations: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("30", Some(30)),
            ("30s", Some(30)),
            ("5m", Some(300)),
            ("4h", Some(14400)),
            ("1d", Some(86400)),
            ("2D", Some(172_800)),
            ("10 m", Some(600)),
            ("0x10", Some(16)),
            (" 7s ", Some(7)),
            ("", None),
            ("s", None),
            ("1w", None),
            ("1.5h", None),
            ("-1", None),
            ("1hs", None),
            ("99999999999999999999", None),
        ];
        for (text, want) in durations {
            assert_eq!(parse_duration(text).map(|d| d.as_secs()), *want, "{text:?}");
        }
        let sizes: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("1000", Some(1000)),
            ("1k", Some(1024)),
            ("2K", Some(2048)),
            ("500M", Some(500 << 20)),
            ("1G", Some(1 << 30)),
            ("4 g", Some(4 << 30)),
            ("0x100", Some(256)),
            ("99999999999G", Some(u64::MAX)),
            ("1T", None),
            ("1KB", None),
            ("M", None),
            ("", None),
        ];
        for (text, want) in sizes {
            assert_eq!(parse_bytes(text), *want, "{text:?}");
        }
    }

    #[test]
    fn booleans() {
        for (v, want) in
            [("yes", true), ("true", true), ("no", false), ("false", false), ("NO", false)]
        {
            assert_eq!(parse(&conn(&format!("mobike = {v}"))).unwrap().connections[0].mobike, want);
        }
    }

    #[test]
    fn connection_errors() {
        let f = "/virtual/swanctl.conf";
        let cases: Vec<(String, String)> = vec![
            (
                conn("colour = blue"),
                format!(
                    "{f}:3: unknown key 'colour' in connections.c (valid keys: aggressive, childless, dpd_delay"
                ),
            ),
            (
                conn("sub { }"),
                format!(
                    "{f}:3: unknown section 'sub' in connections.c (valid sections: children, local<suffix>, remote<suffix>)"
                ),
            ),
            (
                "connections {\n x = 1\n}".to_owned(),
                format!("{f}:2: unexpected key 'x' in 'connections'"),
            ),
            (
                conn("version = 3"),
                format!("{f}:3: invalid version '3': unknown value (use one of: 0, 1, 2)"),
            ),
            (conn("local_port = 0"), format!("{f}:3: invalid local_port '0': out of range")),
            (
                conn("mobike = maybe"),
                format!("{f}:3: invalid mobike 'maybe': not a yes/no value (use yes or no)"),
            ),
            (
                conn("dpd_delay = 1w"),
                format!(
                    "{f}:3: invalid dpd_delay '1w': not a duration (use seconds or a number with s, m, h or d"
                ),
            ),
            (
                conn("rekey_time = soon"),
                format!("{f}:3: invalid rekey_time 'soon': not a duration"),
            ),
            (
                conn("proposals = aes128-sha257-x25519"),
                format!("{f}:3: proposals: unknown algorithm 'sha257'"),
            ),
            (
                conn("proposals = aes128-x25519"),
                format!(
                    "{f}:3: proposals: IKE proposal 'aes128-x25519' has a classic cipher but no integrity algorithm (add an integrity algorithm"
                ),
            ),
            (
                conn("remote_addrs = 10.0.0.0/33"),
                format!(
                    "{f}:3: invalid remote_addrs entry '10.0.0.0/33' (use IP addresses, CIDR subnets"
                ),
            ),
            (
                conn("remote_addrs = 10.0.0.9-10.0.0.1"),
                format!("{f}:3: invalid remote_addrs entry '10.0.0.9-10.0.0.1' (use IP addresses"),
            ),
            (conn("local_addrs = a b"), format!("{f}:3: invalid local_addrs entry 'a b' (use")),
            (
                conn("fragmentation = sometimes"),
                format!(
                    "{f}:3: invalid fragmentation 'sometimes': unknown value (use one of: yes, accept, force, no)"
                ),
            ),
            (
                conn("send_cert = often"),
                format!(
                    "{f}:3: invalid send_cert 'often': unknown value (use one of: ifasked, always, never)"
                ),
            ),
            (
                conn("unique = yes"),
                format!(
                    "{f}:3: invalid unique 'yes': unknown value (use one of: no, never, keep, replace)"
                ),
            ),
            (
                conn("ocsp = x"),
                format!(
                    "{f}:3: invalid ocsp 'x': unknown value (use one of: reply, request, both, never)"
                ),
            ),
            (
                conn("childless = x"),
                format!(
                    "{f}:3: invalid childless 'x': unknown value (use one of: allow, prefer, force, never)"
                ),
            ),
            (
                conn("keyingtries = -1"),
                format!(
                    "{f}:3: invalid keyingtries '-1': not a number (use a decimal or 0x-prefixed hex number from 0 to 4294967295)"
                ),
            ),
            (
                conn("vips = 0.0.0.0, any"),
                format!("{f}:3: invalid vips entry 'any': not an IP address (use 0.0.0.0 or ::"),
            ),
            (conn("dscp = 2"), format!("{f}:3: invalid dscp '2': not a 6-bit binary DSCP value")),
            (
                conn("local {\n auth = password\n}"),
                format!(
                    "{f}:4: invalid auth 'password': unknown authentication method (use pubkey"
                ),
            ),
            (
                conn("local {\n revocation = strict\n}"),
                format!(
                    "{f}:4: key 'revocation' belongs in a remote section, not connections.c.local (valid keys: aaa_id, auth"
                ),
            ),
            (
                conn("remote {\n aaa_id = x\n}"),
                format!("{f}:4: key 'aaa_id' belongs in a local section, not connections.c.remote"),
            ),
            (
                conn("remote {\n idd = x\n}"),
                format!(
                    "{f}:4: unknown key 'idd' in connections.c.remote (valid keys: auth, ca_id"
                ),
            ),
            (
                conn("remote {\n revocation = lax\n}"),
                format!(
                    "{f}:4: invalid revocation 'lax': unknown value (use one of: relaxed, ifuri, strict)"
                ),
            ),
            (
                conn("local {\n x { }\n}"),
                format!(
                    "{f}:4: unknown section 'x' in connections.c.local (valid sections: cert<suffix>)"
                ),
            ),
            (
                conn("local {\n cacert { file = a }\n}"),
                format!(
                    "{f}:4: unknown section 'cacert' in connections.c.local (valid sections: cert<suffix>)"
                ),
            ),
            (
                conn("local {\n cert { }\n}"),
                format!("{f}:4: connections.c.local.cert names no certificate (add 'file = …'"),
            ),
            (
                conn("local {\n cert { path = x }\n}"),
                format!(
                    "{f}:4: unknown key 'path' in connections.c.local.cert (valid keys: file, handle, module, slot)"
                ),
            ),
            (
                conn("children {\n x = 1\n}"),
                format!("{f}:4: unexpected key 'x' in connections.c.children"),
            ),
        ];
        for (text, want) in &cases {
            let got = err(text);
            assert!(got.contains(want.as_str()), "{text}\n got  {got}\n want {want}");
        }
    }

    #[test]
    fn child_errors() {
        let f = "/virtual/swanctl.conf";
        let cases: Vec<(String, String)> = vec![
            (
                child_conf("esp_proposal = aes128gcm16"),
                format!(
                    "{f}:5: unknown key 'esp_proposal' in connections.c.children.k (valid keys: ah_proposals, close_action"
                ),
            ),
            (
                child_conf("x { }"),
                format!("{f}:5: unexpected section 'x' in connections.c.children.k"),
            ),
            (
                child_conf("mode = tunnel6"),
                format!(
                    "{f}:5: invalid mode 'tunnel6': unknown value (use one of: tunnel, transport, transport_proxy, beet, iptfs, pass, drop)"
                ),
            ),
            (
                child_conf("start_action = go"),
                format!(
                    "{f}:5: invalid start_action 'go': unknown action (use none, trap, start or trap|start)"
                ),
            ),
            (
                child_conf("rekey_bytes = 1T"),
                format!(
                    "{f}:5: invalid rekey_bytes '1T': not a byte count (use a number of bytes, optionally with K, M or G"
                ),
            ),
            (
                child_conf("life_packets = 1k"),
                format!("{f}:5: invalid life_packets '1k': not a number"),
            ),
            (
                child_conf("life_time = 1y"),
                format!("{f}:5: invalid life_time '1y': not a duration (use seconds"),
            ),
            (
                child_conf("esp_proposals = aes128gcm17"),
                format!("{f}:5: esp_proposals: unknown algorithm 'aes128gcm17'"),
            ),
            (
                child_conf("local_ts = 10.0.0.0/8, 10.300.0.0/16"),
                format!(
                    "{f}:5: invalid local_ts '10.300.0.0/16': invalid address `10.300.0.0`: expected a subnet"
                ),
            ),
            (
                child_conf("remote_ts = 10.0.0.0/8[tcp/99999]"),
                format!("{f}:5: invalid remote_ts '10.0.0.0/8[tcp/99999]': invalid port"),
            ),
            (
                child_conf("replay_window = 0x1000000000"),
                format!(
                    "{f}:5: invalid replay_window '0x1000000000': out of range (use a number from 0 to 4294967295)"
                ),
            ),
            (
                child_conf("tfc_padding = lots"),
                format!("{f}:5: invalid tfc_padding 'lots': not a number (use a decimal"),
            ),
            (
                child_conf("hw_offload = maybe"),
                format!(
                    "{f}:5: invalid hw_offload 'maybe': unknown value (use one of: no, yes, crypto, packet, auto)"
                ),
            ),
            (
                child_conf("copy_dscp = both"),
                format!(
                    "{f}:5: invalid copy_dscp 'both': unknown value (use one of: out, in, yes, no)"
                ),
            ),
            (
                child_conf("copy_df = 2"),
                format!("{f}:5: invalid copy_df '2': not a yes/no value (use yes or no)"),
            ),
        ];
        for (text, want) in &cases {
            let got = err(text);
            assert!(got.contains(want.as_str()), "{text}\n got  {got}\n want {want}");
        }
    }

    #[test]
    fn templates_and_strict_mode() {
        let text = "conn-defaults {\n mobike = no\n children { k { mode = transport } }\n}\n\
                    connections {\n a : conn-defaults { remote_addrs = 192.0.2.9 }\n}\n";
        let c = parse(text).unwrap();
        let k = &c.connections[0];
        assert!(!k.mobike);
        assert_eq!(k.children[0].mode, ChildMode::Esp(Mode::Transport));
        let strict = LoadOptions::default().unsupported_sections_are_errors(true);
        assert!(Config::parse_str_with(text, "/virtual/swanctl.conf", &strict).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_connection_values_never_panic(key in proptest::sample::select(CONNECTION_KEYS), value in "[ -~]{0,30}") {
            let _ = parse(&conn(&format!("{key} = {value}")));
        }

        #[test]
        fn arbitrary_child_values_never_panic(key in proptest::sample::select(CHILD_KEYS), value in "[ -~]{0,30}") {
            let _ = parse(&child_conf(&format!("{key} = {value}")));
        }
    }
}
