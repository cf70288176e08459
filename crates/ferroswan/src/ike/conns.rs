//! Connections and IKE preshared keys changed at run time over VICI, the way strongSwan's vici
//! plugin takes them (`vici_config.c`, `vici_cred.c`), so `swanctl --load-conns`,
//! `--load-creds` and `--load-all` work against the daemon:
//!
//! | command | what it does here |
//! |---|---|
//! | `load-conn` | each section of the request is a connection in swanctl.conf shape (lists for `local_addrs`, `proposals`, `local_ts` …); it is typed by the same parser as the config file ([`crate::config::connection`]), turned into an [`IkeConfig`] and added, or replaces the connection of that name |
//! | `unload-conn` | removes connection `name` and its trap policies; its IKE SAs stay (those of `start_action = start` children are closed, as charon does) |
//! | `get-conns` | `conns`: the names of the connections loaded over VICI |
//! | `list-conns` | one `list-conn` event per connection (file and VICI), with charon's keys |
//! | `load-shared` | an `ike` secret (`id`, `data`, `owners`) for every connection's PSK lookup |
//! | `unload-shared`, `get-shared`, `clear-creds` | remove one / list / remove all VICI secrets |
//! | `get-keys`, `get-authorities`, `get-pools` | empty lists: nothing of that kind is loaded over VICI |
//! | `load-cert`, `load-key`, `load-token`, `load-authority`, `load-pool` | refused with a reason |
//!
//! The daemon's config file stays the start-up source: its connections and secrets are in the
//! table from the start but are not listed by `get-conns`/`get-shared`, so a `swanctl
//! --load-all` with another file does not unload them (charon likewise only lists the vici
//! plugin's own). A `load-conn` of a name the file defines replaces that connection until the
//! daemon restarts.
//!
//! Connections loaded over VICI support PSK authentication fully. `auth = pubkey` works with the
//! certificates and keys in the daemon's own swanctl directory (next to its config file);
//! certificate data sent in `certs`, `cacerts` or `pubkeys` is refused, as are `load-cert` and
//! `load-key`.
//!
//! Replies are strongSwan's: `success = yes`, or `success = no` with an `errmsg` that says what
//! is wrong where (`connections.gw.children.net: …`), without a file and line.

use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ferroswan_proto::crypto::SecretBytes;
use ferroswan_proto::ikev2::config::{IkeConfig, LocalAuth, RemoteAuth};
use ferroswan_proto::ikev2::identity::Identity;
use ferroswan_proto::ikev2::ts::TsSpec;

use super::config::{SecretsPsk, ike_config};
use super::driver::{Command, Input, Target, TrapActions};
use crate::config::connection::{
    Action, AddressFamily, AuthMethod, AuthRound, Child, ChildMode, Connection, HostSpec,
    IkeVersion, Unique,
};
use crate::config::settings::{KeyValue, Section};
use crate::config::{ConfigError, Location, Mode};
use crate::vici::{Element, Message};

/// How long a VICI command waits for the IKE thread to take a new connection table.
const IKE_THREAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Lists whose items swanctl sends as file contents (certificates, public keys), not text.
const BLOB_LISTS: &[&str] = &["cacerts", "certs", "pubkeys"];

/// Builds the signer and verifier of a `pubkey` connection, or refuses with a reason.
pub type SignatureFn =
    dyn Fn(&Connection) -> Result<(LocalAuth, RemoteAuth), ConfigError> + Send + Sync;

/// Where a connection in the table came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The daemon's config file, at start-up.
    File,
    /// VICI `load-conn`.
    Vici,
}

/// One connection of the running daemon: as configured, and as the IKE core takes it.
#[derive(Clone, Debug)]
pub struct LoadedConn {
    /// The typed connection (what `list-conns` shows).
    pub conn: Connection,
    /// What the IKE thread uses.
    pub ike: Arc<IkeConfig>,
    /// Where it came from.
    pub source: Source,
}

/// The run-time connection table and PSK store, and the VICI commands that change them.
///
/// Changes are made under one lock and handed to the IKE thread in that order
/// ([`Command::SetConnections`]), so concurrent clients cannot reorder them; a command replies
/// only once the IKE thread has the new table, so an `initiate` sent after a `load-conn`'s reply
/// finds the connection.
pub struct Control {
    tx: Mutex<Sender<Input>>,
    table: Mutex<Vec<LoadedConn>>,
    psks: Arc<SecretsPsk>,
    signature: Box<SignatureFn>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").field("table", &self.lock().len()).finish_non_exhaustive()
    }
}

impl Control {
    /// The table of the config file's connections (`connections` and `ike` in the same
    /// order), changed at run time through `tx` (the IKE thread's input).
    pub fn new(
        tx: Sender<Input>,
        connections: Vec<(Connection, Arc<IkeConfig>)>,
        psks: Arc<SecretsPsk>,
        signature: Box<SignatureFn>,
    ) -> Self {
        let table = connections
            .into_iter()
            .map(|(conn, ike)| LoadedConn { conn, ike, source: Source::File })
            .collect();
        Self { tx: Mutex::new(tx), table: Mutex::new(table), psks, signature }
    }

    /// A snapshot of the table.
    pub fn connections(&self) -> Vec<LoadedConn> {
        self.lock().clone()
    }

    /// Answers the connection and credential commands; `None` for any other command.
    pub fn command(&self, name: &str, request: &Message) -> Option<(Message, Vec<Message>)> {
        let reply = match name {
            "load-conn" => self.load_conn(request),
            "unload-conn" => self.unload_conn(request),
            "get-conns" => Message::new().list("conns", self.vici_names()),
            "list-conns" => return Some((Message::new(), self.list_conns(request))),
            "load-shared" => self.load_shared(request),
            "unload-shared" => match request.get_str("id") {
                None => failure("unique identifier missing"),
                Some(id) => {
                    if self.psks.unload(id) {
                        tracing::info!("unloaded shared key with id '{id}'");
                    }
                    success()
                }
            },
            "get-shared" => Message::new().list("keys", self.psks.loaded_ids()),
            "clear-creds" => {
                self.psks.clear_loaded();
                tracing::info!("cleared the shared keys loaded over VICI");
                success()
            }
            "get-keys" => Message::new().list("keys", Vec::<String>::new()),
            "get-authorities" => Message::new().list("authorities", Vec::<String>::new()),
            "get-pools" => Message::new(),
            "load-cert" | "load-key" | "load-token" => failure(&format!(
                "{name} is not supported: ferroswan reads certificates and private keys from the \
                 swanctl directory next to its config file (x509/, x509ca/, private/, rsa/, \
                 ecdsa/, pkcs8/)"
            )),
            "load-authority" | "load-pool" => failure(&format!(
                "{name} is not supported: certification authorities and address pools are not \
                 implemented yet"
            )),
            _ => return None,
        };
        Some((reply, Vec::new()))
    }

    /// `load-conn`: every section of the request is one connection. All are checked before
    /// any is applied, so a bad one leaves the table as it was.
    pub fn load_conn(&self, request: &Message) -> Message {
        let conns = match connections_from_vici(request) {
            Ok(conns) => conns,
            Err(e) => return failure(&e),
        };
        let mut built = Vec::new();
        for conn in conns {
            match ike_config(&conn, &self.psks, self.signature.as_ref()) {
                Ok(ike) => {
                    built.push(LoadedConn { conn, ike: Arc::new(ike), source: Source::Vici })
                }
                Err(e) => return failure(&errmsg(&e)),
            }
        }
        let mut table = self.lock();
        let mut next = table.clone();
        let mut undo = Vec::new();
        let mut start = Vec::new();
        for new in built {
            let name = new.conn.name.clone();
            match next.iter_mut().find(|c| c.conn.name == name) {
                Some(old) if old.conn == new.conn => {
                    tracing::info!("updated vici connection: {name}");
                    old.source = Source::Vici;
                }
                Some(old) => {
                    tracing::info!("replaced vici connection: {name}");
                    if has_start_action(&old.conn) {
                        undo.push(name.clone());
                    }
                    start.extend(start_children(&new.conn));
                    *old = new;
                }
                None => {
                    tracing::info!("added vici connection: {name}");
                    start.extend(start_children(&new.conn));
                    next.push(new);
                }
            }
        }
        if let Err(e) = self.set_connections(&next) {
            return failure(&e);
        }
        *table = next;
        drop(table);
        self.run_actions(&undo, &start);
        success()
    }

    /// `unload-conn`: removes connection `name`.
    pub fn unload_conn(&self, request: &Message) -> Message {
        let Some(name) = request.get_str("name") else {
            return failure("unload: missing connection name");
        };
        let mut table = self.lock();
        let Some(pos) = table.iter().position(|c| c.conn.name == name) else {
            return failure(&format!("unload: connection '{name}' not found"));
        };
        let mut next = table.clone();
        let old = next.remove(pos);
        if let Err(e) = self.set_connections(&next) {
            return failure(&e);
        }
        *table = next;
        drop(table);
        tracing::info!("unloaded connection: {name}");
        if has_start_action(&old.conn) {
            self.run_actions(&[old.conn.name], &[]);
        }
        success()
    }

    /// `list-conns`: one `list-conn` event per connection, only `ike` if given.
    pub fn list_conns(&self, request: &Message) -> Vec<Message> {
        let only = request.get_str("ike");
        self.lock()
            .iter()
            .filter(|c| only.is_none_or(|name| c.conn.name == name))
            .map(|c| list_conn_event(&c.conn))
            .collect()
    }

    /// `load-shared`: an IKE preshared key for its `owners`.
    pub fn load_shared(&self, request: &Message) -> Message {
        let Some(kind) = request.get_str("type") else {
            return failure("shared key type missing");
        };
        if !kind.eq_ignore_ascii_case("ike") {
            let known =
                ["eap", "xauth", "ntlm", "ppk"].iter().any(|k| kind.eq_ignore_ascii_case(k));
            return failure(&if known {
                format!("shared key type {kind} is not supported (ferroswan uses ike secrets only)")
            } else {
                format!("invalid shared key type: {kind}")
            });
        }
        let data = match request.get_bytes("data") {
            Some(d) if !d.is_empty() => d,
            _ => return failure("shared key data missing"),
        };
        let owners = match request.get("owners") {
            None => Vec::new(),
            Some(Element::List(_, items)) => {
                match items.iter().map(|i| std::str::from_utf8(i)).collect::<Result<Vec<_>, _>>() {
                    Ok(owners) => owners,
                    Err(_) => return failure("parsing shared key owners failed: not UTF-8 text"),
                }
            }
            Some(_) => return failure("parsing shared key owners failed: owners is not a list"),
        };
        let id = request.get_str("id");
        match self.psks.load(id, &owners, SecretBytes::new(data.to_vec())) {
            Ok(()) => {
                let who = if owners.is_empty() { "%any".to_owned() } else { owners.join(", ") };
                tracing::info!(
                    "loaded IKE shared key{} for: {who}",
                    id.map(|i| format!(" with id '{i}'")).unwrap_or_default()
                );
                success()
            }
            Err(e) => failure(&format!("parsing shared key owners failed: {e}")),
        }
    }

    /// The names `get-conns` lists.
    fn vici_names(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|c| c.source == Source::Vici)
            .map(|c| c.conn.name.clone())
            .collect()
    }

    /// Hands the IKE thread the table and waits until it has it.
    fn set_connections(&self, table: &[LoadedConn]) -> Result<(), String> {
        let (reply, answer) = mpsc::channel();
        let connections = table.iter().map(|c| Arc::clone(&c.ike)).collect();
        let traps = table.iter().flat_map(|c| TrapActions::of(&c.conn)).collect();
        self.send(Command::SetConnections { connections, traps, reply })?;
        match answer.recv_timeout(IKE_THREAD_TIMEOUT) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the IKE thread did not take the new connections".to_owned()),
        }
    }

    /// Closes the IKE SAs of `terminate` (connections whose `start_action = start` children
    /// are replaced or gone, as charon undoes start actions), then initiates `start`
    /// (connection, child). Fire and forget: the outcome is logged by the IKE thread.
    fn run_actions(&self, terminate: &[String], start: &[(String, String)]) {
        for conn in terminate {
            let (reply, _) = mpsc::channel();
            let _ = self.send(Command::Terminate { target: Target::conn(conn), reply });
        }
        for (conn, child) in start {
            tracing::info!("start_action = start: initiating '{conn}/{child}'");
            let (reply, _) = mpsc::channel();
            let _ = self.send(Command::Initiate {
                conn: Some(conn.clone()),
                child: Some(child.clone()),
                reply,
            });
        }
    }

    fn send(&self, command: Command) -> Result<(), String> {
        self.tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(Input::Command(command))
            .map_err(|_| "the IKE thread is not running".to_owned())
    }

    fn lock(&self) -> MutexGuard<'_, Vec<LoadedConn>> {
        // Updates replace the whole table at once: it stays consistent even after a panic.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn success() -> Message {
    Message::new().kv("success", "yes")
}

fn failure(errmsg: &str) -> Message {
    Message::new().kv("success", "no").kv("errmsg", errmsg)
}

/// A config error as a VICI `errmsg`: the message and hint, without the (meaningless) location.
pub fn errmsg(e: &ConfigError) -> String {
    match &e.hint {
        Some(hint) => format!("{} ({hint})", e.message),
        None => e.message.clone(),
    }
}

fn has_start_action(conn: &Connection) -> bool {
    conn.children.iter().any(|c| c.start_action.start)
}

fn start_children(conn: &Connection) -> Vec<(String, String)> {
    conn.children
        .iter()
        .filter(|c| c.start_action.start)
        .map(|c| (conn.name.clone(), c.name.clone()))
        .collect()
}

/// The connections of a `load-conn` request, typed by the config file's parser.
///
/// Each top-level section is a connection; key/values become settings, lists become
/// comma-separated settings (as swanctl.conf writes them), sections nest. Errors name the
/// setting (`connections.gw.children.net: …`) and say what is wrong.
pub fn connections_from_vici(request: &Message) -> Result<Vec<Connection>, String> {
    let at = Location::new("vici load-conn", 0);
    let mut connections = Section::new("connections", at.clone());
    for element in request.elements() {
        match element {
            Element::Section(name, body) => {
                connections.add_section(section_from_vici(name, body, &at, "connections")?);
            }
            other => {
                return Err(format!(
                    "unexpected {} '{}' outside a connection section",
                    if matches!(other, Element::List(..)) { "list" } else { "key" },
                    other.name()
                ));
            }
        }
    }
    if connections.sections().is_empty() {
        return Err("no connection in the request (expected one section per connection)".into());
    }
    crate::config::connection::connections(&connections).map_err(|e| errmsg(&e))
}

/// One VICI section as a settings section (see [`connections_from_vici`]).
fn section_from_vici(
    name: &str,
    body: &Message,
    at: &Location,
    parent: &str,
) -> Result<Section, String> {
    let place = format!("{parent}.{name}");
    let text = |key: &str, value: &[u8]| {
        std::str::from_utf8(value)
            .map(str::to_owned)
            .map_err(|_| format!("{place}.{key}: the value is not UTF-8 text"))
    };
    let mut section = Section::new(name, at.clone());
    for element in body.elements() {
        match element {
            Element::KeyValue(key, value) => section.add_key(KeyValue {
                key: key.clone(),
                value: text(key, value)?,
                location: at.clone(),
            }),
            Element::List(key, items) => {
                if BLOB_LISTS.contains(&key.as_str()) && !items.is_empty() {
                    return Err(format!(
                        "{place}.{key}: certificate and public key data in load-conn is not \
                         supported; leave {key} unset and put the files in the daemon's swanctl \
                         directory (x509/, x509ca/), where it finds them by identity"
                    ));
                }
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    let value = text(key, item)?;
                    if value.contains(',') {
                        return Err(format!(
                            "{place}.{key}: list item '{value}' contains a comma, which this \
                             list cannot hold"
                        ));
                    }
                    values.push(value);
                }
                section.add_key(KeyValue {
                    key: key.clone(),
                    value: values.join(", "),
                    location: at.clone(),
                });
            }
            Element::Section(sub, sub_body) => {
                section.add_section(section_from_vici(sub, sub_body, at, &place)?);
            }
        }
    }
    Ok(section)
}

/// The `list-conn` event of a connection, with the keys of charon's `list_conns`
/// (`vici_query.c`) in its order, so `swanctl --list-conns` prints it as charon's.
pub fn list_conn_event(conn: &Connection) -> Message {
    let mut m = Message::new()
        .list("local_addrs", conn.local_addrs.iter().map(host_text))
        .list("remote_addrs", conn.remote_addrs.iter().map(host_text))
        // Only IKEv2 is spoken: `version = 0` (IKEv1 or IKEv2) behaves as 2 here, and
        // `version = 1` is refused when loading.
        .kv(
            "version",
            match conn.version {
                IkeVersion::V1 => "IKEv1",
                IkeVersion::Any | IkeVersion::V2 => "IKEv2",
            },
        )
        .kv_display("reauth_time", conn.reauth_time.as_secs())
        .kv_display("rekey_time", conn.rekey_time.as_secs())
        .kv(
            "unique",
            match conn.unique {
                Unique::Never => "UNIQUE_NEVER",
                Unique::No => "UNIQUE_NO",
                Unique::Replace => "UNIQUE_REPLACE",
                Unique::Keep => "UNIQUE_KEEP",
            },
        );
    if !conn.dpd_delay.is_zero() {
        m = m.kv_display("dpd_delay", conn.dpd_delay.as_secs());
    }
    if !conn.dpd_timeout.is_zero() {
        m = m.kv_display("dpd_timeout", conn.dpd_timeout.as_secs());
    }
    if let Some(ppk) = &conn.ppk_id {
        m = m.kv("ppk_id", identity_text(ppk));
    }
    if conn.ppk_required {
        m = m.kv("ppk_required", "yes");
    }
    for (i, round) in conn.local.iter().enumerate() {
        m = m.section(format!("local-{}", i + 1), auth_section(round));
    }
    for (i, round) in conn.remote.iter().enumerate() {
        m = m.section(format!("remote-{}", i + 1), auth_section(round));
    }
    let children =
        conn.children.iter().fold(Message::new(), |m, c| m.section(&c.name, child_section(c)));
    Message::new().section(&conn.name, m.section("children", children))
}

/// An authentication round as `list-conns` shows it (`build_auth_cfgs`).
fn auth_section(round: &AuthRound) -> Message {
    let mut m = match &round.auth {
        AuthMethod::Pubkey(_) => Message::new().kv("class", "public key"),
        AuthMethod::Psk => Message::new().kv("class", "pre-shared key"),
        AuthMethod::Eap(method) => {
            let m = Message::new().kv("class", "EAP");
            match method {
                Some(method) => m.kv("eap-type", method.to_ascii_uppercase()),
                None => m,
            }
        }
        AuthMethod::Xauth(backend) => {
            let m = Message::new().kv("class", "XAuth");
            match backend {
                Some(backend) => m.kv("xauth", backend),
                None => m,
            }
        }
    };
    for (key, value) in [
        ("id", &round.id),
        ("ca_id", &round.ca_id),
        ("aaa_id", &round.aaa_id),
        ("eap_id", &round.eap_id),
        ("xauth_id", &round.xauth_id),
    ] {
        if let Some(v) = value.as_deref().filter(|v| *v != "%any") {
            m = m.kv(key, identity_text(v));
        }
    }
    m.list("groups", &round.groups)
        .list("cert_policy", &round.cert_policy)
        .list("certs", round.certs.iter().map(|p| p.display().to_string()))
        .list("cacerts", round.cacerts.iter().map(|p| p.display().to_string()))
}

/// A child config as `list-conns` shows it.
fn child_section(child: &Child) -> Message {
    let mode = match child.mode {
        ChildMode::Esp(Mode::Tunnel) => "TUNNEL",
        ChildMode::Esp(Mode::Transport) => "TRANSPORT",
        ChildMode::TransportProxy => "TRANSPORT_PROXY",
        ChildMode::Beet => "BEET",
        ChildMode::Iptfs => "IPTFS",
        ChildMode::Pass => "PASS",
        ChildMode::Drop => "DROP",
    };
    let ts = |list: &[(String, Location)]| -> Vec<String> {
        list.iter()
            .map(|(s, _)| TsSpec::parse(s).map_or_else(|_| s.clone(), |ts| ts.to_string()))
            .collect()
    };
    let mut m = Message::new()
        .kv("mode", mode)
        .kv_display("rekey_time", child.rekey_time.as_secs())
        .kv_display("rekey_bytes", child.rekey_bytes)
        .kv_display("rekey_packets", child.rekey_packets)
        .kv("dpd_action", action_text(child.dpd_action))
        .kv("close_action", action_text(child.close_action))
        .list("local-ts", ts(&child.local_ts))
        .list("remote-ts", ts(&child.remote_ts));
    if let Some(interface) = &child.interface {
        m = m.kv("interface", interface);
    }
    if child.priority != 0 {
        m = m.kv_display("priority", child.priority);
    }
    m
}

/// strongSwan's `action_names` (flags): `none`, `trap`, `start`, `trap | start`.
fn action_text(action: Action) -> &'static str {
    match (action.trap, action.start) {
        (false, false) => "none",
        (true, false) => "trap",
        (false, true) => "start",
        (true, true) => "trap | start",
    }
}

/// A `local_addrs`/`remote_addrs` entry as written in swanctl.conf.
fn host_text(host: &HostSpec) -> String {
    match host {
        HostSpec::Any(None) => "%any".to_owned(),
        HostSpec::Any(Some(AddressFamily::V4)) => "%any4".to_owned(),
        HostSpec::Any(Some(AddressFamily::V6)) => "%any6".to_owned(),
        HostSpec::Addr(a) => a.to_string(),
        HostSpec::Subnet(a, len) => format!("{a}/{len}"),
        HostSpec::Range(a, b) => format!("{a}-{b}"),
        HostSpec::Fqdn(name) => name.clone(),
    }
}

/// An identity as charon prints it (`%Y`: `sun.example` for `@sun.example`); as written when
/// it does not parse.
fn identity_text(id: &str) -> String {
    Identity::from_swanctl(id).map_or_else(|_| id.to_owned(), |id| id.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

    use std::sync::mpsc::Receiver;
    use std::time::Duration;

    use ferroswan_proto::ikev2::config::PskStore;

    use super::*;
    use crate::config::connection::{AuthMethod, HostSpec};

    /// `connections.gw` as `swanctl --load-conns` sends it: list keys (`is_list_key` in
    /// swanctl's `load_conns.c`) as lists, everything else as key/values, sections nested.
    fn swanctl_gw() -> Message {
        Message::new().section(
            "gw",
            Message::new()
                .kv("version", "2")
                .list("local_addrs", ["192.0.2.1"])
                .list("remote_addrs", ["192.0.2.2"])
                .list("proposals", ["aes256gcm16-prfsha384-ecp384", "aes128-sha256-modp2048"])
                .kv("rekey_time", "2h")
                .kv("dpd_delay", "30s")
                .section("local", Message::new().kv("auth", "psk").kv("id", "moon.example"))
                .section("remote", Message::new().kv("auth", "psk").kv("id", "@sun.example"))
                .section(
                    "children",
                    Message::new().section(
                        "net",
                        Message::new()
                            .list("local_ts", ["10.1.0.0/16", "fd00:1::/64"])
                            .list("remote_ts", ["10.2.0.0/16"])
                            .list("esp_proposals", ["aes128gcm16"])
                            .kv("start_action", "none")
                            .kv("rekey_time", "20m"),
                    ),
                ),
        )
    }

    fn psk_store() -> Arc<SecretsPsk> {
        Arc::new(SecretsPsk::default())
    }

    fn no_signature() -> Box<SignatureFn> {
        Box::new(|conn| {
            Err(ConfigError::new(conn.location.clone(), "no certificates in this test"))
        })
    }

    /// A stand-in IKE thread: answers `SetConnections` and records every command.
    fn fake_ike() -> (Sender<Input>, Arc<Mutex<Vec<String>>>) {
        let (tx, rx): (Sender<Input>, Receiver<Input>) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            while let Ok(Input::Command(cmd)) = rx.recv() {
                let line = match cmd {
                    Command::SetConnections { connections, traps, reply } => {
                        let names: Vec<_> = connections.iter().map(|c| c.name.clone()).collect();
                        let _ = reply.send(Ok(String::new()));
                        let traps: Vec<_> =
                            traps.iter().map(|t| format!(" trap {}/{}", t.conn, t.child)).collect();
                        format!("set {}{}", names.join(","), traps.concat())
                    }
                    Command::Initiate { conn, child, .. } => {
                        format!(
                            "initiate {}/{}",
                            conn.unwrap_or_default(),
                            child.unwrap_or_default()
                        )
                    }
                    Command::Terminate { target, .. } => {
                        format!("terminate {}", target.ike.unwrap_or_default())
                    }
                    Command::Rekey { target, .. } => format!("rekey {}", target.describe()),
                    Command::InstallTrap { child, .. } => format!("install {child}"),
                    Command::UninstallTrap { child, .. } => format!("uninstall {child}"),
                };
                log.lock().unwrap().push(line);
            }
        });
        (tx, seen)
    }

    fn commands(seen: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
        // Fire-and-forget commands may still be on their way.
        std::thread::sleep(Duration::from_millis(50));
        seen.lock().unwrap().clone()
    }

    fn ok(reply: &Message) {
        assert_eq!(reply.get_str("success"), Some("yes"), "{reply}");
    }

    fn err(reply: &Message) -> String {
        assert_eq!(reply.get_str("success"), Some("no"), "{reply}");
        reply.get_str("errmsg").unwrap().to_owned()
    }

    #[test]
    fn a_swanctl_load_conn_message_becomes_a_typed_connection() {
        let conns = connections_from_vici(&swanctl_gw()).unwrap();
        assert_eq!(conns.len(), 1);
        let c = &conns[0];
        assert_eq!(c.name, "gw");
        assert_eq!(c.version, IkeVersion::V2);
        assert_eq!(c.local_addrs, [HostSpec::Addr("192.0.2.1".parse().unwrap())]);
        assert_eq!(c.proposals.len(), 2);
        assert_eq!(c.rekey_time, Duration::from_secs(7200));
        assert_eq!(c.dpd_delay, Duration::from_secs(30));
        assert_eq!(c.local[0].auth, AuthMethod::Psk);
        assert_eq!(c.remote[0].id.as_deref(), Some("@sun.example"));
        let net = &c.children[0];
        assert_eq!(net.name, "net");
        let ts: Vec<&str> = net.local_ts.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(ts, ["10.1.0.0/16", "fd00:1::/64"]);
        assert_eq!(net.rekey_time, Duration::from_secs(1200));
        // And the IKE core takes it.
        let ike = ike_config(c, &psk_store(), no_signature().as_ref()).unwrap();
        assert_eq!(ike.children[0].local_ts.len(), 2);
        assert_eq!(ike.remote_addrs, ["192.0.2.2".parse::<std::net::IpAddr>().unwrap()]);
    }

    #[test]
    fn lists_may_also_come_as_plain_values() {
        // A raw VICI client may send `local_addrs = a, b` as one value, as swanctl.conf has it.
        let msg = Message::new().section(
            "gw",
            Message::new()
                .kv("remote_addrs", "192.0.2.2, 192.0.2.3")
                .section("local", Message::new().kv("auth", "psk"))
                .section("remote", Message::new().kv("auth", "psk")),
        );
        let c = &connections_from_vici(&msg).unwrap()[0];
        assert_eq!(c.remote_addrs.len(), 2);
    }

    #[test]
    fn bad_requests_are_refused_with_what_and_where() {
        let cases: Vec<(Message, &str)> = vec![
            (Message::new(), "no connection in the request"),
            (Message::new().kv("name", "gw"), "unexpected key 'name' outside a connection"),
            (
                Message::new().section("gw", Message::new().kv("bogus", "1")),
                "unknown key 'bogus' in connections.gw",
            ),
            (
                Message::new().section(
                    "gw",
                    Message::new().section(
                        "children",
                        Message::new().section("net", Message::new().list("local_ts", ["10.1/99"])),
                    ),
                ),
                "invalid local_ts '10.1/99'",
            ),
            (
                Message::new().section(
                    "gw",
                    Message::new().section("local", Message::new().list("certs", [[0x30u8, 0x82]])),
                ),
                "connections.gw.local.certs: certificate and public key data in load-conn is not supported",
            ),
            (
                Message::new().section("gw", Message::new().kv("version", [0xffu8, 0xfe])),
                "connections.gw.version: the value is not UTF-8 text",
            ),
            (
                Message::new().section("gw", Message::new().list("local_ts", ["a,b"])),
                "contains a comma",
            ),
            (
                Message::new().section("gw", Message::new().list("proposals", ["aes128-nosuch"])),
                "proposals",
            ),
        ];
        for (msg, want) in cases {
            let e = connections_from_vici(&msg).unwrap_err();
            assert!(e.contains(want), "{msg}: {e:?} lacks {want:?}");
            assert!(!e.contains("vici load-conn:0"), "location leaked into {e:?}");
        }
    }

    #[test]
    fn list_conn_event_has_charons_keys() {
        let c = &connections_from_vici(&swanctl_gw()).unwrap()[0];
        let event = list_conn_event(c);
        let gw = event.get_section("gw").unwrap();
        assert_eq!(gw.get_str_list("local_addrs"), Some(vec!["192.0.2.1"]));
        assert_eq!(gw.get_str_list("remote_addrs"), Some(vec!["192.0.2.2"]));
        assert_eq!(gw.get_str("version"), Some("IKEv2"));
        assert_eq!(gw.get_str("reauth_time"), Some("0"));
        assert_eq!(gw.get_str("rekey_time"), Some("7200"));
        assert_eq!(gw.get_str("unique"), Some("UNIQUE_NO"));
        assert_eq!(gw.get_str("dpd_delay"), Some("30"));
        assert_eq!(gw.get_str("dpd_timeout"), None);
        let local = gw.get_section("local-1").unwrap();
        assert_eq!(local.get_str("class"), Some("pre-shared key"));
        assert_eq!(local.get_str("id"), Some("moon.example"));
        assert_eq!(local.get_str_list("groups"), Some(vec![]));
        let remote = gw.get_section("remote-1").unwrap();
        assert_eq!(remote.get_str("id"), Some("sun.example"), "printed as charon's %Y");
        let net = gw.get_section("children").unwrap().get_section("net").unwrap();
        assert_eq!(net.get_str("mode"), Some("TUNNEL"));
        assert_eq!(net.get_str("rekey_time"), Some("1200"));
        assert_eq!(net.get_str("rekey_bytes"), Some("0"));
        assert_eq!(net.get_str("dpd_action"), Some("none"));
        assert_eq!(net.get_str("close_action"), Some("none"));
        assert_eq!(net.get_str_list("local-ts"), Some(vec!["10.1.0.0/16", "fd00:1::/64"]));
        assert_eq!(net.get_str_list("remote-ts"), Some(vec!["10.2.0.0/16"]));
        let names: Vec<&str> = gw.elements().iter().map(Element::name).collect();
        assert_eq!(
            names,
            [
                "local_addrs",
                "remote_addrs",
                "version",
                "reauth_time",
                "rekey_time",
                "unique",
                "dpd_delay",
                "local-1",
                "remote-1",
                "children"
            ]
        );
        assert_eq!(action_text(Action { trap: true, start: true }), "trap | start");
    }

    #[test]
    fn load_list_replace_and_unload() {
        let (tx, seen) = fake_ike();
        let control = Control::new(tx, Vec::new(), psk_store(), no_signature());
        let run = |name: &str, req: &Message| control.command(name, req).unwrap();

        ok(&run("load-conn", &swanctl_gw()).0);
        assert_eq!(run("get-conns", &Message::new()).0.get_str_list("conns"), Some(vec!["gw"]));
        let (reply, events) = run("list-conns", &Message::new());
        assert!(reply.is_empty());
        assert_eq!(events.len(), 1);
        assert!(events[0].get_section("gw").is_some());
        assert!(run("list-conns", &Message::new().kv("ike", "other")).1.is_empty());

        // The same again: nothing changes for the IKE thread but the (same) table.
        ok(&run("load-conn", &swanctl_gw()).0);
        // A second connection, with start_action = start: initiated once loaded.
        let mut second = swanctl_gw();
        let Some(Element::Section(_, body)) = second.remove("gw") else { panic!() };
        let body = body.section(
            "children",
            Message::new().section("lan", Message::new().kv("start_action", "start")),
        );
        let second = Message::new().section("rw", body);
        ok(&run("load-conn", &second).0);
        let names = run("get-conns", &Message::new()).0;
        assert_eq!(names.get_str_list("conns"), Some(vec!["gw", "rw"]));

        // Replacing rw (changed) closes its SAs and starts it again.
        let changed = Message::new().section(
            "rw",
            second.get_section("rw").unwrap().clone().list("remote_addrs", ["192.0.2.9"]),
        );
        ok(&run("load-conn", &changed).0);
        let rw = control.connections().into_iter().find(|c| c.conn.name == "rw").unwrap();
        assert_eq!(rw.ike.remote_addrs, ["192.0.2.9".parse::<std::net::IpAddr>().unwrap()]);

        ok(&run("unload-conn", &Message::new().kv("name", "gw")).0);
        assert_eq!(
            err(&run("unload-conn", &Message::new().kv("name", "gw")).0),
            "unload: connection 'gw' not found"
        );
        assert_eq!(err(&run("unload-conn", &Message::new()).0), "unload: missing connection name");
        ok(&run("unload-conn", &Message::new().kv("name", "rw")).0);
        // A connection with trap actions: the IKE thread learns which children trap; unloading
        // it hands over a table without them.
        let mut trapped = swanctl_gw();
        let Some(Element::Section(_, body)) = trapped.remove("gw") else { panic!() };
        let children = Message::new()
            .section("net", Message::new().kv("start_action", "trap"))
            .section("dpd", Message::new().kv("dpd_action", "trap"))
            .section("plain", Message::new());
        let trapped = Message::new().section("od", body.section("children", children));
        ok(&run("load-conn", &trapped).0);
        ok(&run("unload-conn", &Message::new().kv("name", "od")).0);
        assert_eq!(
            commands(&seen),
            [
                "set gw",
                "set gw",
                "set gw,rw",
                "initiate rw/lan",
                "set gw,rw",
                "terminate rw",
                "initiate rw/lan",
                "set rw",
                "set ",
                "terminate rw",
                "set od trap od/net trap od/dpd",
                "set ",
            ]
        );
    }

    #[test]
    fn a_bad_connection_leaves_the_table_alone() {
        let (tx, seen) = fake_ike();
        let control = Control::new(tx, Vec::new(), psk_store(), no_signature());
        let mut both = swanctl_gw();
        both.insert(Element::Section(
            "bad".into(),
            Message::new()
                .section("local", Message::new().kv("auth", "eap-tls"))
                .section("remote", Message::new().kv("auth", "psk")),
        ));
        let e = err(&control.load_conn(&both));
        assert!(e.contains("connection bad: local.auth") && e.contains("not supported"), "{e}");
        let e = err(&control.load_conn(
            &Message::new().section(
                "cert",
                Message::new()
                    .section("local", Message::new().kv("auth", "pubkey"))
                    .section("remote", Message::new().kv("auth", "pubkey")),
            ),
        ));
        assert_eq!(e, "no certificates in this test");
        assert!(control.connections().is_empty());
        assert!(commands(&seen).is_empty());
    }

    #[test]
    fn file_connections_are_listed_but_not_vici_loaded() {
        let (tx, _seen) = fake_ike();
        let conn = connections_from_vici(&swanctl_gw()).unwrap().remove(0);
        let ike = Arc::new(ike_config(&conn, &psk_store(), no_signature().as_ref()).unwrap());
        let control = Control::new(tx, vec![(conn, ike)], psk_store(), no_signature());
        assert_eq!(control.command("list-conns", &Message::new()).unwrap().1.len(), 1);
        let conns = control.command("get-conns", &Message::new()).unwrap().0;
        assert_eq!(conns.get_str_list("conns"), Some(vec![]));
    }

    #[test]
    fn shared_secrets_load_list_and_unload() {
        let (tx, _seen) = fake_ike();
        let psks = psk_store();
        let control = Control::new(tx, Vec::new(), Arc::clone(&psks), no_signature());
        let run = |name: &str, req: &Message| control.command(name, req).unwrap().0;
        // As swanctl's load_creds.c sends `secrets.ike-gw { id-1 = …, id-2 = …, secret = … }`.
        let shared = |secret: &str| {
            Message::new()
                .kv("id", "ike-gw")
                .kv("type", "ike")
                .kv("data", secret)
                .list("owners", ["moon.example", "sun.example"])
        };
        ok(&run("load-shared", &shared("first")));
        ok(&run("load-shared", &shared("second")));
        let me = Identity::fqdn("moon.example");
        let peer = Identity::fqdn("sun.example");
        assert_eq!(psks.psk(&me, Some(&peer)).unwrap().expose(), b"second", "replaced by id");
        assert_eq!(run("get-shared", &Message::new()).get_str_list("keys"), Some(vec!["ike-gw"]));
        ok(&run("unload-shared", &Message::new().kv("id", "ike-gw")));
        assert!(psks.psk(&me, Some(&peer)).is_none());

        // Without owners: any identity.
        ok(&run("load-shared", &Message::new().kv("type", "IKE").kv("data", "x")));
        assert!(psks.psk(&me, None).is_some());
        ok(&run("clear-creds", &Message::new()));
        assert!(psks.is_empty());

        assert_eq!(
            err(&run("load-shared", &Message::new().kv("data", "x"))),
            "shared key type missing"
        );
        assert_eq!(
            err(&run("load-shared", &Message::new().kv("type", "ike"))),
            "shared key data missing"
        );
        let e = err(&run("load-shared", &Message::new().kv("type", "eap").kv("data", "x")));
        assert!(e.contains("not supported"), "{e}");
        let e = err(&run("load-shared", &Message::new().kv("type", "nope").kv("data", "x")));
        assert_eq!(e, "invalid shared key type: nope");
        let bad_owner = Message::new().kv("type", "ike").kv("data", "x").list("owners", ["ipv4:x"]);
        assert!(err(&run("load-shared", &bad_owner)).contains("owner 'ipv4:x'"));
        assert_eq!(run("get-keys", &Message::new()).get_str_list("keys"), Some(vec![]));
        assert!(err(&run("load-key", &Message::new())).contains("not supported"));
        assert!(control.command("nope", &Message::new()).is_none());
    }
}
