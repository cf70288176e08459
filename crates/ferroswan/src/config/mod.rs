//! Configuration: strongSwan's `swanctl.conf`, read as-is, plus ferroswan's own sections.
//!
//! Three layers:
//! - [`settings`]: the strongSwan settings syntax → a [`settings::Tree`] of sections and keys,
//!   each with its [`Location`].
//! - [`proposal`]: strongSwan proposal keywords (`aes256gcm16-prfsha384-ecp384`) → transforms.
//! - this module: the typed model the daemon needs now, built strictly from the tree: an
//!   unknown key or section is an error naming its file and line and listing the valid names.
//!
//! # What is read
//!
//! - `ferroswan { … }` ([`DaemonSettings`]): our daemon settings.
//! - `manual { <name> { … } }` ([`ManualSa`]): manually keyed ESP SAs, our addition.
//! - `connections { … }` ([`Connection`], module [`connection`]) and `secrets { … }`
//!   ([`Secrets`], module [`secrets`]): swanctl's IKE connections and credentials, typed
//!   strictly (every swanctl.conf key is parsed and stored, unknown keys are errors).
//!   `pools` and `authorities` are kept as parsed trees ([`Config::pools_raw`] …); all four
//!   are also kept raw ([`Config::connections_raw`] …). With
//!   [`LoadOptions::unsupported_sections_are_errors`] they are refused instead, with a
//!   message saying IKE connections arrive with IKEv2 support. The default reads them, so a
//!   strongSwan file loads today and the daemon decides (until IKE lands, the daemon sets the
//!   flag, so nothing the admin wrote is silently ignored).
//! - Top-level sections referenced as templates (`conn-defaults` in `a : conn-defaults { … }`)
//!   are allowed, as strongSwan's documentation recommends placing them at the top level.
//!
//! An empty value (`key =`) means "unset", as in strongSwan: the default applies.
//!
//! # Secrets
//!
//! A file holding `key_in`/`key_out` or a `secrets` section must not be readable by group or
//! others ([`check_secret_file_permissions`]); the loader checks every such file it read.

pub mod connection;
mod error;
pub mod proposal;
pub mod secrets;
pub mod settings;

use core::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ferroswan_proto::crypto::EspSuite;
use zeroize::Zeroizing;

pub use connection::Connection;
pub use error::{ConfigError, Location};
pub use secrets::Secrets;
use settings::{KeyValue, Section, Tree};

/// The default VICI control socket.
pub const DEFAULT_SOCKET: &str = "/run/ferroswan/charon.vici";
/// The default TUN interface name.
pub const DEFAULT_TUN_NAME: &str = "ferro0";
/// The default replay window of manual SAs (strongSwan's `replay_window` default).
pub const DEFAULT_REPLAY_WINDOW: u32 = 32;
/// The largest replay window we accept.
pub const MAX_REPLAY_WINDOW: u32 = 65536;

/// How to load a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Refuse `connections`, `secrets`, `pools` and `authorities` ("not supported yet")
    /// instead of returning them raw. Default: `false`.
    pub unsupported_sections_are_errors: bool,
    /// Refuse group/world-readable files that hold secrets. Default: `true`.
    pub check_secret_permissions: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { unsupported_sections_are_errors: false, check_secret_permissions: true }
    }
}

impl LoadOptions {
    /// Sets [`LoadOptions::unsupported_sections_are_errors`].
    #[must_use]
    pub fn unsupported_sections_are_errors(mut self, on: bool) -> Self {
        self.unsupported_sections_are_errors = on;
        self
    }

    /// Sets [`LoadOptions::check_secret_permissions`].
    #[must_use]
    pub fn check_secret_permissions(mut self, on: bool) -> Self {
        self.check_secret_permissions = on;
        self
    }
}

/// The whole configuration.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The `ferroswan { … }` section (defaults when absent).
    pub daemon: DaemonSettings,
    /// The `manual { … }` SAs, in file order.
    pub manual: Vec<ManualSa>,
    /// swanctl's `connections`, typed ([`connection`]), in file order.
    pub connections: Vec<Connection>,
    /// swanctl's `secrets`, typed ([`secrets`]).
    pub secrets: Secrets,
    /// swanctl's `connections` section, untouched.
    pub connections_raw: Option<Section>,
    /// swanctl's `secrets` section, untouched.
    pub secrets_raw: Option<Section>,
    /// swanctl's `pools` section, untouched.
    pub pools_raw: Option<Section>,
    /// swanctl's `authorities` section, untouched.
    pub authorities_raw: Option<Section>,
    /// Every file read (the top file first).
    pub files: Vec<PathBuf>,
}

/// `ferroswan { … }`: daemon settings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DaemonSettings {
    /// `socket`: the VICI control socket path.
    pub socket: PathBuf,
    /// `tun { … }`: the TUN interface.
    pub tun: TunSettings,
    /// `log_level`.
    pub log_level: LogLevel,
    /// `udp_port`: the IKE port (strongSwan's `charon.port`).
    pub udp_port: u16,
    /// `udp_port_nat_t`: the NAT-T port (strongSwan's `charon.port_nat_t`).
    pub udp_port_nat_t: u16,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(DEFAULT_SOCKET),
            tun: TunSettings::default(),
            log_level: LogLevel::Info,
            udp_port: 500,
            udp_port_nat_t: 4500,
        }
    }
}

/// `ferroswan.tun { … }`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TunSettings {
    /// `name`: the interface name (at most 15 bytes, Linux's IFNAMSIZ − 1).
    pub name: String,
    /// `mtu`: the interface MTU, when set.
    pub mtu: Option<u32>,
}

impl Default for TunSettings {
    fn default() -> Self {
        Self { name: DEFAULT_TUN_NAME.to_owned(), mtu: None }
    }
}

/// `ferroswan.log_level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum LogLevel {
    /// `debug`.
    Debug,
    /// `error`.
    Error,
    /// `info` (the default).
    Info,
    /// `trace`.
    Trace,
    /// `warn`.
    Warn,
}

/// `mode` of a manual SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `transport`: the original IP header stays.
    Transport,
    /// `tunnel` (the default): the whole packet is encapsulated.
    Tunnel,
}

/// Key material of one direction; zeroized on drop, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(Zeroizing<Vec<u8>>);

impl SecretKey {
    /// The key bytes. Do not log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(<{} bytes redacted>)", self.0.len())
    }
}

/// `manual.<name> { … }`: a manually keyed ESP SA pair.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ManualSa {
    /// The section name.
    pub name: String,
    /// Where the section starts.
    pub location: Location,
    /// `local_addrs`: our outer address.
    pub local_addr: IpAddr,
    /// `remote_addrs`: the peer's outer address.
    pub remote_addr: IpAddr,
    /// `mode` (default tunnel).
    pub mode: Mode,
    /// `encap`: ESP in UDP (RFC 3948), default no.
    pub encap: bool,
    /// `local_port` for UDP encapsulation (default 4500).
    pub local_port: u16,
    /// `remote_port` for UDP encapsulation (default 4500).
    pub remote_port: u16,
    /// `esp_proposal`, resolved to one suite.
    pub suite: EspSuite,
    /// Legacy algorithms named in `esp_proposal` (for a warning).
    pub legacy: Vec<&'static str>,
    /// `spi_in`: the SPI the peer puts on packets to us.
    pub spi_in: u32,
    /// `spi_out`: the SPI we put on packets to the peer.
    pub spi_out: u32,
    /// `key_in`: KEYMAT for the inbound SA (encryption key incl. salt, then integrity key).
    pub key_in: SecretKey,
    /// `key_out`: KEYMAT for the outbound SA.
    pub key_out: SecretKey,
    /// `local_ts`: swanctl traffic selector strings, each with the key's location
    /// (default `dynamic`: our outer address).
    pub local_ts: Vec<(String, Location)>,
    /// `remote_ts`, as `local_ts` (default `dynamic`: the peer's outer address).
    pub remote_ts: Vec<(String, Location)>,
    /// `replay_window` in packets (default 32, at most 65536; 0 disables replay protection).
    pub replay_window: u32,
    /// `esn`: extended sequence numbers (default no, or what `esp_proposal` says).
    pub esn: bool,
    /// `tfc_padding`: pad the inner packet to this size (0 = off, default).
    pub tfc_padding: u32,
}

const TOP_SECTIONS: &[&str] =
    &["authorities", "connections", "ferroswan", "manual", "pools", "secrets"];
const SWANCTL_SECTIONS: &[&str] = &["authorities", "connections", "pools", "secrets"];
const DAEMON_KEYS: &[&str] = &["log_level", "socket", "udp_port", "udp_port_nat_t"];
const TUN_KEYS: &[&str] = &["mtu", "name"];
const MANUAL_KEYS: &[&str] = &[
    "encap",
    "esn",
    "esp_proposal",
    "key_in",
    "key_out",
    "local_addrs",
    "local_port",
    "local_ts",
    "mode",
    "remote_addrs",
    "remote_port",
    "remote_ts",
    "replay_window",
    "spi_in",
    "spi_out",
    "tfc_padding",
];

impl Config {
    /// Reads `path` (and its includes) with the default [`LoadOptions`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::load_with(path, &LoadOptions::default())
    }

    /// Reads `path` (and its includes).
    pub fn load_with(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Self, ConfigError> {
        Self::from_tree(settings::parse_file(path.as_ref())?, options)
    }

    /// Parses `text` as the file `virtual_path` with the default [`LoadOptions`] (the text
    /// itself is not a file, so its permissions are not checked; included files are).
    pub fn parse_str(text: &str, virtual_path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::parse_str_with(text, virtual_path, &LoadOptions::default())
    }

    /// Parses `text` as the file `virtual_path`.
    pub fn parse_str_with(
        text: &str,
        virtual_path: impl AsRef<Path>,
        options: &LoadOptions,
    ) -> Result<Self, ConfigError> {
        Self::from_tree(settings::parse_str(text, virtual_path.as_ref())?, options)
    }

    /// Builds the typed model from a parsed tree.
    pub fn from_tree(tree: Tree, options: &LoadOptions) -> Result<Self, ConfigError> {
        let root = &tree.root;
        if let Some(kv) = root.keys().first() {
            return Err(ConfigError::new(
                kv.location.clone(),
                format!("unknown top-level key '{}'", kv.key),
            )
            .with_hint(format!("settings belong in a section: {}", TOP_SECTIONS.join(", "))));
        }
        let templates = template_names(root);
        for s in root.sections() {
            if !TOP_SECTIONS.contains(&s.name()) && !templates.iter().any(|t| t == s.name()) {
                return Err(unknown(
                    s.location(),
                    "section",
                    s.name(),
                    "the top level",
                    TOP_SECTIONS,
                ));
            }
            if options.unsupported_sections_are_errors && SWANCTL_SECTIONS.contains(&s.name()) {
                return Err(ConfigError::new(
                    s.location().clone(),
                    format!(
                        "section '{}' is not supported yet in this version: IKE connections \
                         arrive with IKEv2 support",
                        s.name()
                    ),
                )
                .with_hint("use manual { … } SAs for now, or remove the section"));
            }
        }
        let daemon = match root.section("ferroswan") {
            Some(s) => daemon_settings(s)?,
            None => DaemonSettings::default(),
        };
        let mut manual = Vec::new();
        if let Some(m) = root.section("manual") {
            if let Some(kv) = m.keys().first() {
                return Err(ConfigError::new(
                    kv.location.clone(),
                    format!("unexpected key '{}' in 'manual'", kv.key),
                )
                .with_hint("'manual' holds one section per SA: manual { name { … } }"));
            }
            for s in m.sections() {
                let sa = manual_sa(s)?;
                if let Some(prev) = manual.iter().find(|p: &&ManualSa| p.spi_in == sa.spi_in) {
                    let at = s.key("spi_in").map_or(&sa.location, |kv| &kv.location);
                    return Err(ConfigError::new(
                        at.clone(),
                        format!(
                            "spi_in {:#x} of manual SA '{}' is already used by manual SA '{}' at {}",
                            sa.spi_in, sa.name, prev.name, prev_spi_location(m, prev),
                        ),
                    )
                    .with_hint("inbound SPIs identify the SA and must be unique"));
                }
                manual.push(sa);
            }
        }
        if options.check_secret_permissions {
            // Reported at the file's first secret, so the error names a line to look at.
            for (at, key) in secret_files(root, &tree.files) {
                let file = at.file.clone();
                check_permissions_at(&file, at, &format!("secrets ({key})"))?;
            }
        }
        let connections = match root.section("connections") {
            Some(s) => connection::connections(s)?,
            None => Vec::new(),
        };
        let secrets = match root.section("secrets") {
            Some(s) => secrets::secrets(s)?,
            None => Secrets::default(),
        };
        Ok(Self {
            daemon,
            manual,
            connections,
            secrets,
            connections_raw: root.section("connections").cloned(),
            secrets_raw: root.section("secrets").cloned(),
            pools_raw: root.section("pools").cloned(),
            authorities_raw: root.section("authorities").cloned(),
            files: tree.files,
        })
    }
}

fn prev_spi_location(manual: &Section, prev: &ManualSa) -> Location {
    manual
        .section(&prev.name)
        .and_then(|s| s.key("spi_in"))
        .map_or_else(|| prev.location.clone(), |kv| kv.location.clone())
}

/// First components of every section reference in the tree.
fn template_names(root: &Section) -> Vec<String> {
    fn walk(s: &Section, out: &mut Vec<String>) {
        for r in s.references() {
            if let Some(first) = r.split('.').next() {
                out.push(first.to_owned());
            }
        }
        for sub in s.sections() {
            walk(sub, out);
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out
}

/// Files (among those actually read) that hold manual keys or `secrets`, each with the
/// location and name of its first secret.
fn secret_files(root: &Section, files: &[PathBuf]) -> Vec<(Location, String)> {
    fn all_keys(s: &Section, out: &mut Vec<(Location, String)>) {
        for kv in s.keys() {
            out.push((kv.location.clone(), kv.key.clone()));
        }
        for sub in s.sections() {
            all_keys(sub, out);
        }
    }
    let mut found = Vec::new();
    if let Some(m) = root.section("manual") {
        for sa in m.sections() {
            for key in ["key_in", "key_out"] {
                if let Some(kv) = sa.key(key) {
                    found.push((kv.location.clone(), key.to_owned()));
                }
            }
        }
    }
    if let Some(s) = root.section("secrets") {
        all_keys(s, &mut found);
    }
    let mut out: Vec<(Location, String)> = files
        .iter()
        .filter_map(|f| {
            found.iter().filter(|(at, _)| at.file == *f).min_by_key(|(at, _)| at.line).cloned()
        })
        .collect();
    out.dedup_by(|a, b| a.0.file == b.0.file);
    out
}

/// Refuses a secrets file that group or others may read (`mode & 0o077 != 0`).
pub fn check_secret_file_permissions(path: &Path) -> Result<(), ConfigError> {
    check_permissions_at(path, Location::new(path, 0), "secrets")
}

/// [`check_secret_file_permissions`], reporting at `at` (the file's first secret) and naming
/// what it holds.
fn check_permissions_at(path: &Path, at: Location, holds: &str) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| ConfigError::new(at.clone(), format!("cannot check permissions: {e}")))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::new(
            at,
            format!(
                "'{}' holds {holds} but is readable by group or others (mode {mode:03o})",
                path.display()
            ),
        )
        .with_hint(format!("chmod 600 {}", path.display())));
    }
    Ok(())
}

fn unknown(at: &Location, what: &str, name: &str, place: &str, valid: &[&str]) -> ConfigError {
    ConfigError::new(at.clone(), format!("unknown {what} '{name}' in {place}"))
        .with_hint(format!("valid {what}s: {}", valid.join(", ")))
}

/// Refuses keys and sections not in the lists.
fn check_names(
    s: &Section,
    place: &str,
    keys: &[&str],
    sections: &[&str],
) -> Result<(), ConfigError> {
    if let Some(kv) = s.keys().iter().find(|kv| !keys.contains(&kv.key.as_str())) {
        return Err(unknown(&kv.location, "key", &kv.key, place, keys));
    }
    if let Some(sub) = s.sections().iter().find(|sub| !sections.contains(&sub.name())) {
        let err = if sections.is_empty() {
            ConfigError::new(
                sub.location().clone(),
                format!("unexpected section '{}' in {place}", sub.name()),
            )
            .with_hint(format!("{place} takes no sections; valid keys: {}", keys.join(", ")))
        } else {
            unknown(sub.location(), "section", sub.name(), place, sections)
        };
        return Err(err);
    }
    Ok(())
}

/// A key with a non-empty value (empty means unset, as in strongSwan).
fn get<'a>(s: &'a Section, key: &str) -> Option<&'a KeyValue> {
    s.key(key).filter(|kv| !kv.value.is_empty())
}

fn bad(kv: &KeyValue, what: &str, hint: impl Into<String>) -> ConfigError {
    ConfigError::new(kv.location.clone(), format!("invalid {} '{}': {what}", kv.key, kv.value))
        .with_hint(hint)
}

/// strongSwan's number format: decimal, or hexadecimal with `0x`.
fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn number(kv: &KeyValue, min: u64, max: u64) -> Result<u64, ConfigError> {
    match parse_u64(&kv.value) {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        Some(_) => Err(bad(kv, "out of range", format!("use a number from {min} to {max}"))),
        None => Err(bad(
            kv,
            "not a number",
            format!("use a decimal or 0x-prefixed hex number from {min} to {max}"),
        )),
    }
}

fn port(kv: Option<&KeyValue>, default: u16) -> Result<u16, ConfigError> {
    kv.map_or(Ok(default), |kv| number(kv, 1, 65535).map(|n| u16::try_from(n).unwrap_or(default)))
}

/// strongSwan's booleans (`settings_value_as_bool`).
fn boolean(kv: Option<&KeyValue>, default: bool) -> Result<bool, ConfigError> {
    let Some(kv) = kv else { return Ok(default) };
    match kv.value.to_ascii_lowercase().as_str() {
        "yes" | "true" | "enabled" | "1" => Ok(true),
        "no" | "false" | "disabled" | "0" => Ok(false),
        _ => Err(bad(kv, "not a yes/no value", "use yes or no")),
    }
}

fn daemon_settings(s: &Section) -> Result<DaemonSettings, ConfigError> {
    check_names(s, "ferroswan", DAEMON_KEYS, &["tun"])?;
    let mut d = DaemonSettings::default();
    if let Some(kv) = get(s, "socket") {
        if !Path::new(&kv.value).is_absolute() {
            return Err(bad(kv, "not an absolute path", format!("e.g. {DEFAULT_SOCKET}")));
        }
        d.socket = PathBuf::from(&kv.value);
    }
    if let Some(kv) = get(s, "log_level") {
        d.log_level = match kv.value.to_ascii_lowercase().as_str() {
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => return Err(bad(kv, "unknown level", "use error, warn, info, debug or trace")),
        };
    }
    d.udp_port = port(get(s, "udp_port"), 500)?;
    d.udp_port_nat_t = port(get(s, "udp_port_nat_t"), 4500)?;
    if let Some(tun) = s.section("tun") {
        check_names(tun, "ferroswan.tun", TUN_KEYS, &[])?;
        if let Some(kv) = get(tun, "name") {
            if kv.value.len() > 15 || kv.value.contains(['/', ' ']) {
                return Err(bad(
                    kv,
                    "not a valid interface name",
                    "at most 15 characters, no '/' or blanks",
                ));
            }
            d.tun.name = kv.value.clone();
        }
        if let Some(kv) = get(tun, "mtu") {
            d.tun.mtu = Some(u32::try_from(number(kv, 576, 65535)?).unwrap_or(1500));
        }
    }
    Ok(d)
}

fn manual_sa(s: &Section) -> Result<ManualSa, ConfigError> {
    let place = format!("manual.{}", s.name());
    check_names(s, &place, MANUAL_KEYS, &[])?;
    let required = |key: &str| {
        get(s, key).ok_or_else(|| {
            ConfigError::new(s.location().clone(), format!("manual SA '{}' has no {key}", s.name()))
                .with_hint(format!("add '{key} = …' to the section"))
        })
    };
    let addr = |key: &str| -> Result<IpAddr, ConfigError> {
        let kv = required(key)?;
        kv.value.parse().map_err(|_| {
            bad(kv, "not a single IP address", "a manual SA needs one literal IPv4 or IPv6 address")
        })
    };
    let local_addr = addr("local_addrs")?;
    let remote_addr = addr("remote_addrs")?;
    if local_addr.is_ipv4() != remote_addr.is_ipv4() {
        let kv = required("remote_addrs")?;
        return Err(bad(
            kv,
            "address family differs from local_addrs",
            "use two IPv4 or two IPv6 addresses",
        ));
    }
    let mode = match get(s, "mode") {
        None => Mode::Tunnel,
        Some(kv) => match kv.value.as_str() {
            "tunnel" => Mode::Tunnel,
            "transport" => Mode::Transport,
            _ => return Err(bad(kv, "unknown mode", "use tunnel or transport")),
        },
    };
    let encap = boolean(get(s, "encap"), false)?;
    let local_port = port(get(s, "local_port"), 4500)?;
    let remote_port = port(get(s, "remote_port"), 4500)?;

    let prop_kv = required("esp_proposal")?;
    let to_err = |e: proposal::ProposalError| {
        let hint = e.hint();
        let err = ConfigError::new(prop_kv.location.clone(), format!("esp_proposal: {e}"));
        match hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    };
    let proposals = proposal::parse_esp_proposals(&prop_kv.value).map_err(to_err)?;
    let suite = proposal::manual_esp_suite(&proposals).map_err(to_err)?;
    let (proposal_esn, legacy) = match proposals.first() {
        Some(p) => (p.esn.first().copied(), p.legacy.clone()),
        None => (None, Vec::new()),
    };

    let spi = |key: &str| -> Result<u32, ConfigError> {
        let kv = required(key)?;
        let n = parse_u64(&kv.value).ok_or_else(|| {
            bad(kv, "not a number", "use 0x-prefixed hex or decimal, e.g. 0x1000")
        })?;
        let n = u32::try_from(n)
            .map_err(|_| bad(kv, "larger than 32 bits", "SPIs are 32-bit values"))?;
        if n < 256 {
            return Err(bad(
                kv,
                "SPIs 0-255 are reserved (RFC 4303 §2.1)",
                "use a value of 256 (0x100) or more",
            ));
        }
        Ok(n)
    };
    let spi_in = spi("spi_in")?;
    let spi_out = spi("spi_out")?;

    let expected = suite.keymat_len().unwrap_or(0);
    let key = |name: &str| -> Result<SecretKey, ConfigError> {
        let kv = required(name)?;
        let bytes = parse_hex(&kv.value).ok_or_else(|| {
            ConfigError::new(kv.location.clone(), format!("invalid {name}: not a hex string"))
                .with_hint("write the key as hex digits, optionally prefixed with 0x")
        })?;
        if bytes.len() != expected {
            return Err(ConfigError::new(
                kv.location.clone(),
                format!(
                    "{name} is {} bytes, but {} needs {expected} bytes",
                    bytes.len(),
                    prop_kv.value
                ),
            )
            .with_hint(format!(
                "expected {expected} bytes = {} hex digits ({} encryption{} + {} integrity)",
                expected * 2,
                suite.encr_keymat_len().unwrap_or(0),
                if suite.is_aead() { " incl. 4-byte salt" } else { "" },
                suite.integ_keymat_len().unwrap_or(0),
            )));
        }
        Ok(SecretKey(bytes))
    };
    let key_in = key("key_in")?;
    let key_out = key("key_out")?;

    let ts = |name: &str| -> Vec<(String, Location)> {
        match get(s, name) {
            None => vec![("dynamic".to_owned(), s.location().clone())],
            Some(kv) => kv
                .value
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| (t.to_owned(), kv.location.clone()))
                .collect(),
        }
    };
    let replay_window = match get(s, "replay_window") {
        None => DEFAULT_REPLAY_WINDOW,
        Some(kv) => u32::try_from(number(kv, 0, u64::from(MAX_REPLAY_WINDOW))?)
            .unwrap_or(DEFAULT_REPLAY_WINDOW),
    };
    let esn = match (get(s, "esn"), proposal_esn) {
        (None, from_proposal) => from_proposal.unwrap_or(false),
        (Some(kv), from_proposal) => {
            let esn = boolean(Some(kv), false)?;
            if from_proposal.is_some_and(|p| p != esn) {
                return Err(bad(
                    kv,
                    "contradicts esp_proposal",
                    "set ESN in one place: 'esn = yes' or '-esn' in esp_proposal",
                ));
            }
            esn
        }
    };
    let tfc_padding = match get(s, "tfc_padding") {
        None => 0,
        Some(kv) => u32::try_from(number(kv, 0, 65535)?).unwrap_or(0),
    };
    Ok(ManualSa {
        name: s.name().to_owned(),
        location: s.location().clone(),
        local_addr,
        remote_addr,
        mode,
        encap,
        local_port,
        remote_port,
        suite,
        legacy,
        spi_in,
        spi_out,
        key_in,
        key_out,
        local_ts: ts("local_ts"),
        remote_ts: ts("remote_ts"),
        replay_window,
        esn,
        tfc_padding,
    })
}

/// Hex with an optional `0x` prefix (and `:` separators, as strongSwan prints keys); the
/// intermediate buffers are zeroized.
fn parse_hex(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    let s = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    let digits: Zeroizing<Vec<u8>> = Zeroizing::new(
        s.chars()
            .filter(|c| *c != ':')
            .map(|c| c.to_digit(16).and_then(|d| u8::try_from(d).ok()))
            .collect::<Option<Vec<u8>>>()?,
    );
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    Some(Zeroizing::new(
        digits
            .chunks_exact(2)
            .map(|p| match p {
                [hi, lo] => hi << 4 | lo,
                _ => 0,
            })
            .collect(),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const GCM_KEY: &str = "000102030405060708090a0b0c0d0e0f10111213";

    fn sa(body: &str) -> String {
        format!(
            "manual {{\n a {{\n  local_addrs = 192.0.2.1\n  remote_addrs = 192.0.2.2\n  \
             esp_proposal = aes128gcm16\n  spi_in = 0x1000\n  spi_out = 0x1001\n  \
             key_in = {GCM_KEY}\n  key_out = 0x{GCM_KEY}\n{body}\n }}\n}}\n"
        )
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_str(text, "/virtual/swanctl.conf")
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn empty_config_has_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.daemon, DaemonSettings::default());
        assert_eq!(c.daemon.socket, Path::new("/run/ferroswan/charon.vici"));
        assert_eq!(c.daemon.tun.name, "ferro0");
        assert!(c.manual.is_empty() && c.connections_raw.is_none());
    }

    #[test]
    fn daemon_settings() {
        let c = parse(
            "ferroswan {\n socket = /tmp/x.vici\n log_level = debug\n udp_port = 1500\n \
             udp_port_nat_t = 14500\n tun { name = vpn1\n mtu = 1380 }\n}",
        )
        .unwrap();
        assert_eq!(c.daemon.socket, Path::new("/tmp/x.vici"));
        assert_eq!(c.daemon.log_level, LogLevel::Debug);
        assert_eq!((c.daemon.udp_port, c.daemon.udp_port_nat_t), (1500, 14500));
        assert_eq!((c.daemon.tun.name.as_str(), c.daemon.tun.mtu), ("vpn1", Some(1380)));
        // An empty value means "unset": the default applies.
        assert_eq!(parse("ferroswan { log_level =\n}").unwrap().daemon.log_level, LogLevel::Info);
    }

    #[test]
    fn daemon_errors() {
        let cases: &[(&str, &str)] = &[
            (
                "ferroswan {\n sockt = /x\n}",
                "/virtual/swanctl.conf:2: unknown key 'sockt' in ferroswan (valid keys: log_level, \
                 socket, udp_port, udp_port_nat_t)",
            ),
            (
                "ferroswan {\n tunnel { }\n}",
                "/virtual/swanctl.conf:2: unknown section 'tunnel' in ferroswan (valid sections: tun)",
            ),
            (
                "ferroswan { tun {\n mtu = 9x\n} }",
                "/virtual/swanctl.conf:2: invalid mtu '9x': not a number",
            ),
            (
                "ferroswan { tun { mtu = 100 } }",
                "invalid mtu '100': out of range (use a number from 576 to 65535)",
            ),
            ("ferroswan { tun { name = a-very-long-name0 } }", "not a valid interface name"),
            ("ferroswan { tun { x { } } }", "unexpected section 'x' in ferroswan.tun"),
            ("ferroswan { udp_port = 0 }", "invalid udp_port '0': out of range"),
            ("ferroswan { udp_port = 70000 }", "invalid udp_port '70000': out of range"),
            (
                "ferroswan { log_level = loud }",
                "invalid log_level 'loud': unknown level (use error, warn",
            ),
            (
                "ferroswan { socket = relative.vici }",
                "invalid socket 'relative.vici': not an absolute path",
            ),
            (
                "charon { }",
                "/virtual/swanctl.conf:1: unknown section 'charon' in the top level (valid sections: authorities, connections, ferroswan, manual, pools, secrets)",
            ),
            ("x = 1", "/virtual/swanctl.conf:1: unknown top-level key 'x'"),
            ("manual { x = 1 }", "unexpected key 'x' in 'manual'"),
        ];
        for (text, want) in cases {
            let got = err(text);
            assert!(got.contains(want), "{text:?}:\n got  {got}\n want {want}");
        }
    }

    #[test]
    fn manual_sa_defaults() {
        let c = parse(&sa("")).unwrap();
        let a = &c.manual[0];
        assert_eq!(a.name, "a");
        assert_eq!(a.location, Location::new("/virtual/swanctl.conf", 2));
        assert_eq!(
            (a.mode, a.encap, a.local_port, a.remote_port),
            (Mode::Tunnel, false, 4500, 4500)
        );
        assert_eq!((a.spi_in, a.spi_out), (0x1000, 0x1001));
        assert_eq!(a.key_in, a.key_out);
        assert_eq!(a.key_in.expose()[19], 0x13);
        assert_eq!((a.replay_window, a.esn, a.tfc_padding), (32, false, 0));
        assert_eq!(a.local_ts, vec![("dynamic".to_owned(), a.location.clone())]);
        assert!(a.legacy.is_empty());
        assert_eq!(format!("{:?}", a.key_in), "SecretKey(<20 bytes redacted>)");
    }

    #[test]
    fn manual_sa_options() {
        let c =
            parse(&sa("mode = transport\nencap = yes\nlocal_port = 4501\nremote_port = 4502\n\
             replay_window = 0x400\nesn = yes\ntfc_padding = 1200\nlocal_ts = 10.1.0.0/16\n\
             remote_ts = 10.2.0.0/16 , 10.3.0.0/24[udp]"))
            .unwrap();
        let a = &c.manual[0];
        assert_eq!(
            (a.mode, a.encap, a.local_port, a.remote_port),
            (Mode::Transport, true, 4501, 4502)
        );
        assert_eq!((a.replay_window, a.esn, a.tfc_padding), (1024, true, 1200));
        let remote: Vec<_> = a.remote_ts.iter().map(|(t, l)| (t.as_str(), l.line)).collect();
        assert_eq!(remote, [("10.2.0.0/16", 18), ("10.3.0.0/24[udp]", 18)]);
        let c = parse(&sa("").replace("aes128gcm16", "aes128gcm16-esn")).unwrap();
        assert!(c.manual[0].esn, "ESN from the proposal");
        let legacy = sa("").replace("aes128gcm16", "3des-md5").replace(GCM_KEY, &"ab".repeat(40));
        assert_eq!(parse(&legacy).unwrap().manual[0].legacy, vec!["3des", "md5"]);
    }

    #[test]
    fn manual_sa_errors() {
        let gcm = sa("");
        let cases: Vec<(String, &str)> = vec![
            (
                sa("colour = blue"),
                ":10: unknown key 'colour' in manual.a (valid keys: encap, esn, esp_proposal",
            ),
            (sa("sub { }"), ":10: unexpected section 'sub' in manual.a"),
            (
                gcm.replace("  local_addrs = 192.0.2.1\n", ""),
                ":2: manual SA 'a' has no local_addrs (add 'local_addrs = …'",
            ),
            (
                gcm.replace("192.0.2.2", "192.0.2.0/24"),
                ":4: invalid remote_addrs '192.0.2.0/24': not a single IP address",
            ),
            (gcm.replace("192.0.2.2", "gw.example.org"), "not a single IP address"),
            (gcm.replace("192.0.2.2", "2001:db8::2"), "address family differs from local_addrs"),
            (sa("mode = beet"), "invalid mode 'beet': unknown mode (use tunnel or transport)"),
            (sa("encap = maybe"), "invalid encap 'maybe': not a yes/no value (use yes or no)"),
            (sa("local_port = 0"), "invalid local_port '0': out of range"),
            (
                sa("replay_window = 65537"),
                "invalid replay_window '65537': out of range (use a number from 0 to 65536)",
            ),
            (sa("tfc_padding = -1"), "invalid tfc_padding '-1': not a number"),
            (
                sa("esn = no").replace("aes128gcm16", "aes128gcm16-esn"),
                "invalid esn 'no': contradicts esp_proposal",
            ),
            (
                gcm.replace("0x1000", "255"),
                ":6: invalid spi_in '255': SPIs 0-255 are reserved (RFC 4303 §2.1) (use a value of 256 (0x100) or more)",
            ),
            (gcm.replace("0x1001", "0"), "invalid spi_out '0': SPIs 0-255 are reserved"),
            (
                gcm.replace("0x1000", "0x100000000"),
                "invalid spi_in '0x100000000': larger than 32 bits",
            ),
            (gcm.replace("0x1000", "12ab"), "invalid spi_in '12ab': not a number"),
            (
                gcm.replace("aes128gcm16", "aes128gcm17"),
                ":5: esp_proposal: unknown algorithm 'aes128gcm17' in proposal 'aes128gcm17' (did you mean aes128gcm12, aes128gcm16",
            ),
            (
                gcm.replace("aes128gcm16", "aes128-aes256-sha256"),
                "esp_proposal: a manually keyed SA needs a single algorithm choice: 2 encryption algorithms given, exactly one is needed",
            ),
            (
                gcm.replace("aes128gcm16", "aes128"),
                "esp_proposal: ESP suite not usable: ESP without integrity protection",
            ),
            (gcm.replace("aes128gcm16", "aes128gcm16,chacha20poly1305"), "2 proposals given"),
            (
                gcm.replace(&format!("key_in = {GCM_KEY}"), "key_in = 0x0001"),
                ":8: key_in is 2 bytes, but aes128gcm16 needs 20 bytes (expected 20 bytes = 40 hex digits (20 encryption incl. 4-byte salt + 0 integrity))",
            ),
            (
                gcm.replace("aes128gcm16", "aes256-sha512"),
                "key_in is 20 bytes, but aes256-sha512 needs 96 bytes (expected 96 bytes = 192 hex digits (32 encryption + 64 integrity))",
            ),
            (
                gcm.replace(&format!("key_in = {GCM_KEY}"), "key_in = 0xzz"),
                ":8: invalid key_in: not a hex string",
            ),
            (
                gcm.replace(&format!("key_in = {GCM_KEY}"), "key_in = abc"),
                "invalid key_in: not a hex string",
            ),
        ];
        for (text, want) in &cases {
            let got = err(text);
            assert!(got.contains(want), "{text}\n got  {got}\n want {want}");
        }
    }

    #[test]
    fn duplicate_spi_in_names_both_locations() {
        let one = sa("");
        let two = one.replace("manual {\n a {", "manual {\n b {").replace("0x1001", "0x2001");
        let text = format!("{one}{two}");
        let got = err(&text);
        assert_eq!(
            got,
            "/virtual/swanctl.conf:18: spi_in 0x1000 of manual SA 'b' is already used by manual \
             SA 'a' at /virtual/swanctl.conf:6 (inbound SPIs identify the SA and must be unique)"
        );
        // Same SPI outbound is fine (it is the peer's SPI space).
        let two = one.replace("manual {\n a {", "manual {\n b {").replace("0x1000", "0x2000");
        assert_eq!(parse(&format!("{one}{two}")).unwrap().manual.len(), 2);
    }

    #[test]
    fn swanctl_sections_kept_or_refused() {
        let text = "connections {\n home { remote_addrs = 192.0.2.9 }\n}\nsecrets { }\npools { }\nauthorities { }\n";
        let c = parse(text).unwrap();
        assert_eq!(
            c.connections_raw.unwrap().find("home").unwrap().value("remote_addrs"),
            Some("192.0.2.9")
        );
        assert!(c.secrets_raw.is_some() && c.pools_raw.is_some() && c.authorities_raw.is_some());
        let strict = LoadOptions::default().unsupported_sections_are_errors(true);
        let e = Config::parse_str_with(text, "/virtual/swanctl.conf", &strict).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/virtual/swanctl.conf:1: section 'connections' is not supported yet in this version: \
             IKE connections arrive with IKEv2 support (use manual { … } SAs for now, or remove \
             the section)"
        );
    }

    #[test]
    fn top_level_templates_are_allowed() {
        let text =
            "conn-defaults { remote_addrs = 192.0.2.9 }\nconnections { a : conn-defaults { } }";
        let c = parse(text).unwrap();
        assert_eq!(
            c.connections_raw.unwrap().find("a").unwrap().value("remote_addrs"),
            Some("192.0.2.9")
        );
    }

    #[test]
    fn secret_file_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("swanctl.conf");
        fs::write(&path, sa("")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = Config::load(&path).unwrap_err();
        let p = path.display();
        assert_eq!(
            e.to_string(),
            format!(
                "{p}:8: '{p}' holds secrets (key_in) but is readable by group or others (mode 644) (chmod 600 {p})"
            )
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Config::load(&path).unwrap().manual.len(), 1);
        assert!(check_secret_file_permissions(&path).is_ok());

        // A readable file without secrets is fine; an included secrets file is checked.
        let inc = dir.path().join("secrets.conf");
        fs::write(&inc, "ike-1 { secret = x }\n").unwrap();
        fs::set_permissions(&inc, fs::Permissions::from_mode(0o640)).unwrap();
        let top = dir.path().join("top.conf");
        fs::write(&top, "secrets {\n include secrets.conf\n}\n").unwrap();
        fs::set_permissions(&top, fs::Permissions::from_mode(0o644)).unwrap();
        let e = Config::load(&top).unwrap_err();
        assert!(e.to_string().contains("chmod 600") && e.message.contains("secrets.conf"), "{e}");
        fs::set_permissions(&inc, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Config::load(&top).is_ok());
        let opts = LoadOptions::default().check_secret_permissions(false);
        fs::set_permissions(&inc, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Config::load_with(&top, &opts).is_ok());
    }

    #[test]
    fn hex_keys() {
        assert_eq!(parse_hex("0x0aff").unwrap().as_slice(), [0x0a, 0xff]);
        assert_eq!(parse_hex("0A:FF").unwrap().as_slice(), [0x0a, 0xff]);
        assert_eq!(parse_hex("").unwrap().as_slice(), [] as [u8; 0]);
        assert!(
            parse_hex("abc").is_none() && parse_hex("0xg0").is_none() && parse_hex("é1").is_none()
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC*") {
            let _ = parse(&text);
        }

        #[test]
        fn arbitrary_manual_values_never_panic(key in proptest::sample::select(MANUAL_KEYS), value in "[ -~]{0,30}") {
            let _ = parse(&sa(&format!("{key} = {value}")));
        }
    }
}
