//! swanctl.conf `connections` and `secrets`, typed by [`crate::config`], turned into what the
//! sans-IO IKEv2 core takes ([`IkeConfig`]). Everything that cannot be honoured is refused here
//! with the file and line, never silently ignored.

use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock};

use ferroswan_proto::crypto::SecretBytes;
use ferroswan_proto::esp::Mode;
use ferroswan_proto::ikev2::config::{
    ChildConfig, ChildLifetime, IkeConfig, IkeLifetime, LocalAuth, PskStore, RemoteAuth,
    Retransmit, UniquePolicy,
};
use ferroswan_proto::ikev2::identity::{IdMatcher, Identity};
use ferroswan_proto::ikev2::proposal::{Preference, ProposalSpec};
use ferroswan_proto::ikev2::ts::TsSpec;
use ferroswan_proto::wire::ikev2::ProtocolId;

use crate::config::connection::{AuthMethod, ChildMode, Connection, HostSpec, IkeVersion};
use crate::config::proposal::{EspProposal, IkeProposal};
use crate::config::secrets::{Secrets, SharedKind};
use crate::config::{Config, ConfigError};

/// The IKE preshared keys: the `secrets.ike*` entries of the config file, plus those loaded at
/// run time over VICI (`load-shared`, as `swanctl --load-creds` sends them). Matched to
/// identities as strongSwan does: an entry whose ids name both identities beats one naming one
/// of them, which beats one with no ids.
///
/// One store is shared by every connection, so a secret loaded later is used by connections
/// loaded earlier, as in charon.
#[derive(Debug, Default)]
pub struct SecretsPsk {
    entries: RwLock<Vec<PskEntry>>,
}

/// One preshared key and the identities it belongs to.
#[derive(Debug)]
struct PskEntry {
    /// Loaded over VICI (not from the config file).
    from_vici: bool,
    /// The VICI unique id (`load-shared`'s `id`, swanctl's section name), if given.
    vici_id: Option<String>,
    ids: Vec<IdMatcher>,
    secret: SecretBytes,
}

impl SecretsPsk {
    /// The IKE secrets of `secrets`.
    pub fn new(secrets: &Secrets) -> Result<Self, ConfigError> {
        let mut entries = Vec::new();
        for s in secrets.shared.iter().filter(|s| s.kind == SharedKind::Ike) {
            let mut ids = Vec::new();
            for id in &s.ids {
                ids.push(IdMatcher::from_swanctl(id).map_err(|e| {
                    ConfigError::new(
                        s.location.clone(),
                        format!("secrets.{}: id '{id}': {e}", s.name),
                    )
                })?);
            }
            entries.push(PskEntry {
                from_vici: false,
                vici_id: None,
                ids,
                secret: SecretBytes::from(s.secret.expose()),
            });
        }
        Ok(Self { entries: RwLock::new(entries) })
    }

    /// Whether any IKE secret is known.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Adds a secret for `owners` (swanctl identities; none: any identity). A secret with the
    /// same `vici_id` is replaced. Refuses an owner that is not a valid identity, naming it.
    pub fn load(
        &self,
        vici_id: Option<&str>,
        owners: &[&str],
        secret: SecretBytes,
    ) -> Result<(), String> {
        let ids = owners
            .iter()
            .map(|o| IdMatcher::from_swanctl(o).map_err(|e| format!("owner '{o}': {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let entry = PskEntry { from_vici: true, vici_id: vici_id.map(str::to_owned), ids, secret };
        let mut entries = self.write();
        match entries.iter_mut().find(|e| e.vici_id.is_some() && e.vici_id == entry.vici_id) {
            Some(slot) => *slot = entry,
            None => entries.push(entry),
        }
        Ok(())
    }

    /// Removes the secret loaded with `vici_id`; whether there was one.
    pub fn unload(&self, vici_id: &str) -> bool {
        let mut entries = self.write();
        let before = entries.len();
        entries.retain(|e| e.vici_id.as_deref() != Some(vici_id));
        entries.len() != before
    }

    /// Removes every secret loaded over VICI (`clear-creds`); the config file's stay.
    pub fn clear_loaded(&self) {
        self.write().retain(|e| !e.from_vici);
    }

    /// The ids of the secrets loaded over VICI with an id (what `get-shared` lists).
    pub fn loaded_ids(&self) -> Vec<String> {
        self.read().iter().filter_map(|e| e.vici_id.clone()).collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<PskEntry>> {
        // Every update is a single push, replace or retain: the list stays consistent.
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<PskEntry>> {
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl PskStore for SecretsPsk {
    fn psk(&self, local: &Identity, remote: Option<&Identity>) -> Option<SecretBytes> {
        let score = |ids: &[IdMatcher]| -> Option<u8> {
            if ids.is_empty() {
                return Some(1);
            }
            let l = ids.iter().any(|m| m.matches(local) && *m != IdMatcher::Any);
            let r =
                remote.is_some_and(|r| ids.iter().any(|m| m.matches(r) && *m != IdMatcher::Any));
            let any = ids.contains(&IdMatcher::Any);
            match (l, r) {
                (true, true) => Some(4),
                (true, false) | (false, true) => Some(3),
                _ if any => Some(2),
                _ => None,
            }
        };
        // Ties go to the entry added last (a secret loaded at run time beats the file's).
        self.read()
            .iter()
            .filter_map(|e| score(&e.ids).map(|s| (s, &e.secret)))
            .max_by_key(|(s, _)| *s)
            .map(|(_, secret)| secret.clone())
    }
}

fn ike_spec(p: &IkeProposal) -> ProposalSpec {
    ProposalSpec {
        protocol: ProtocolId::IKE,
        encr: p.encr.clone(),
        prf: p.prf.clone(),
        integ: p.integ.clone(),
        ke: p.ke.clone(),
        esn: Vec::new(),
    }
}

fn esp_spec(p: &EspProposal) -> ProposalSpec {
    ProposalSpec {
        protocol: ProtocolId::ESP,
        encr: p.encr.clone(),
        prf: Vec::new(),
        integ: p.integ.clone(),
        ke: p.ke.clone(),
        esn: p.esn_options(),
    }
}

/// The single addresses of a `local_addrs`/`remote_addrs` list (for matching and initiating).
pub fn addrs(list: &[HostSpec]) -> Vec<IpAddr> {
    list.iter()
        .filter_map(|h| match h {
            HostSpec::Addr(a) => Some(*a),
            _ => None,
        })
        .collect()
}

/// Builds the signer and verifier of one `pubkey` connection (the certificate store).
pub type SignatureAuth<'a> =
    dyn Fn(&Connection) -> Result<(LocalAuth, RemoteAuth), ConfigError> + 'a;

/// Builds the IKE configs of every connection. `signature` builds the signer and verifier for
/// `pubkey` rounds (the certificate store), or refuses with a reason.
pub fn ike_configs(
    config: &Config,
    signature: &SignatureAuth<'_>,
) -> Result<Vec<IkeConfig>, ConfigError> {
    let psks = Arc::new(SecretsPsk::new(&config.secrets)?);
    ike_configs_with(config, &psks, signature)
}

/// [`ike_configs`] with a given PSK store (the daemon's, which VICI `load-shared` extends).
pub fn ike_configs_with(
    config: &Config,
    psks: &Arc<SecretsPsk>,
    signature: &SignatureAuth<'_>,
) -> Result<Vec<IkeConfig>, ConfigError> {
    let mut out = Vec::new();
    for conn in &config.connections {
        let uses_psk = [&conn.local, &conn.remote]
            .iter()
            .any(|rounds| rounds.iter().any(|r| matches!(r.auth, AuthMethod::Psk)));
        let ike = ike_config(conn, psks, signature)?;
        if uses_psk && psks.is_empty() {
            return Err(ConfigError::new(
                conn.location.clone(),
                format!(
                    "connection {}: auth = psk, but the secrets section has no ike secret",
                    conn.name
                ),
            )
            .with_hint("add secrets { ike-1 { id = <peer id> secret = \"...\" } }"));
        }
        out.push(ike);
    }
    Ok(out)
}

/// Builds the IKE config of one connection, its PSKs looked up in `psks` when used (at
/// authentication time, so secrets may be loaded after the connection).
pub fn ike_config(
    conn: &Connection,
    psks: &Arc<SecretsPsk>,
    signature: &SignatureAuth<'_>,
) -> Result<IkeConfig, ConfigError> {
    let refuse = |msg: String| {
        ConfigError::new(conn.location.clone(), format!("connection {}: {msg}", conn.name))
    };
    if conn.version == IkeVersion::V1 {
        return Err(refuse("IKEv1 is not supported yet (version = 1)".into())
            .with_hint("use version = 2 (or 0 for any)"));
    }
    let (local, remote) = match (conn.local.as_slice(), conn.remote.as_slice()) {
        ([l], [r]) => (l, r),
        ([], _) | (_, []) => {
            return Err(refuse("needs a local and a remote section".into())
                .with_hint("add local { auth = psk } and remote { auth = psk } (or pubkey)"));
        }
        _ => return Err(refuse("multiple authentication rounds are not supported yet".into())),
    };
    let mut local_auth = match &local.auth {
        AuthMethod::Psk => LocalAuth::Psk,
        AuthMethod::Pubkey(_) => LocalAuth::Psk, // replaced below
        other => {
            return Err(refuse(format!(
                "local.auth = {other:?} is not supported yet (psk and pubkey are)"
            )));
        }
    };
    let mut remote_auth = match &remote.auth {
        AuthMethod::Psk => RemoteAuth::Psk,
        AuthMethod::Pubkey(_) => RemoteAuth::Psk, // replaced below
        other => {
            return Err(refuse(format!(
                "remote.auth = {other:?} is not supported yet (psk and pubkey are)"
            )));
        }
    };
    let uses_pubkey =
        matches!(local.auth, AuthMethod::Pubkey(_)) || matches!(remote.auth, AuthMethod::Pubkey(_));
    if uses_pubkey {
        let (l, r) = signature(conn)?;
        if matches!(local.auth, AuthMethod::Pubkey(_)) {
            local_auth = l;
        }
        if matches!(remote.auth, AuthMethod::Pubkey(_)) {
            remote_auth = r;
        }
    }
    let local_id = match local.id.as_deref() {
        None | Some("%any") => None,
        Some(id) => Some(Identity::from_swanctl(id).map_err(|e| refuse(format!("local.id: {e}")))?),
    };
    let remote_id = match remote.id.as_deref() {
        None => IdMatcher::Any,
        Some(id) => IdMatcher::from_swanctl(id).map_err(|e| refuse(format!("remote.id: {e}")))?,
    };
    let mut children = Vec::new();
    for child in &conn.children {
        let mode = match child.mode {
            ChildMode::Esp(crate::config::Mode::Tunnel) => Mode::Tunnel,
            ChildMode::Esp(crate::config::Mode::Transport) => Mode::Transport,
            other => {
                return Err(ConfigError::new(
                    child.location.clone(),
                    format!(
                        "children.{}: mode {other:?} is not supported (tunnel and transport are)",
                        child.name
                    ),
                ));
            }
        };
        if !child.ah_proposals.is_empty() {
            return Err(ConfigError::new(
                child.location.clone(),
                format!("children.{}: AH is not supported yet", child.name),
            )
            .with_hint("use esp_proposals"));
        }
        let ts = |list: &[(String, crate::config::Location)],
                  default_dynamic: bool|
         -> Result<Vec<TsSpec>, ConfigError> {
            if list.is_empty() && default_dynamic {
                return Ok(vec![TsSpec::Dynamic {
                    protocol: ferroswan_proto::wire::IpProtocol(0),
                    start_port: 0,
                    end_port: u16::MAX,
                }]);
            }
            list.iter()
                .map(|(s, loc)| {
                    TsSpec::parse(s).map_err(|e| {
                        ConfigError::new(
                            loc.clone(),
                            format!("children.{}: traffic selector '{s}': {e}", child.name),
                        )
                    })
                })
                .collect()
        };
        children.push(ChildConfig {
            name: child.name.clone(),
            proposals: child.esp_proposals.iter().map(esp_spec).collect(),
            local_ts: ts(&child.local_ts, true)?,
            remote_ts: ts(&child.remote_ts, true)?,
            mode,
            replay_window: child.replay_window,
            lifetime: ChildLifetime {
                rekey_time: child.rekey_time,
                life_time: child.life_time,
                rand_time: child.rand_time,
                rekey_bytes: child.rekey_bytes,
                life_bytes: child.life_bytes,
                rand_bytes: child.rand_bytes,
                rekey_packets: child.rekey_packets,
                life_packets: child.life_packets,
                rand_packets: child.rand_packets,
            },
            dpd_restart: child.dpd_action.start,
            close_restart: child.close_action.start,
        });
    }
    Ok(IkeConfig {
        name: conn.name.clone(),
        local_addrs: addrs(&conn.local_addrs),
        remote_addrs: addrs(&conn.remote_addrs),
        proposals: conn.proposals.iter().map(ike_spec).collect(),
        preference: Preference::Configured,
        local_id,
        remote_id,
        local_auth,
        remote_auth,
        psks: Some(Arc::clone(psks) as Arc<dyn PskStore>),
        children,
        encap: conn.encap,
        send_certreq: conn.send_certreq,
        retransmit: Retransmit::default(),
        lifetime: IkeLifetime {
            rekey_time: conn.rekey_time,
            reauth_time: conn.reauth_time,
            over_time: conn.over_time,
            rand_time: conn.rand_time,
            dpd_delay: conn.dpd_delay,
            dpd_timeout: conn.dpd_timeout,
        },
        keyingtries: conn.keyingtries,
        unique: match conn.unique {
            crate::config::connection::Unique::No => UniquePolicy::No,
            crate::config::connection::Unique::Never => UniquePolicy::Never,
            crate::config::connection::Unique::Keep => UniquePolicy::Keep,
            crate::config::connection::Unique::Replace => UniquePolicy::Replace,
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::config::LoadOptions;

    fn load(text: &str) -> Config {
        let dir =
            std::env::temp_dir().join(format!("fs-ikecfg-{}-{}", std::process::id(), text.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("swanctl.conf");
        std::fs::write(&path, text).unwrap();
        let c = Config::load_with(&path, &LoadOptions::default().check_secret_permissions(false))
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        c
    }

    const CONF: &str = r#"
connections {
    gw {
        local_addrs = 192.0.2.1
        remote_addrs = 192.0.2.2
        proposals = aes256gcm16-prfsha384-ecp384, aes128-sha256-modp2048
        local {
            auth = psk
            id = moon.example
        }
        remote {
            auth = psk
            id = @sun.example
        }
        children {
            net {
                local_ts = 10.1.0.0/16
                remote_ts = 10.2.0.0/16
                esp_proposals = aes128gcm16-esn
            }
        }
    }
}
secrets {
    ike-any {
        secret = "fallback"
    }
    ike-sun {
        id-1 = sun.example
        secret = "sunsecret"
    }
}
"#;

    #[test]
    fn a_swanctl_connection_becomes_an_ike_config() {
        let c = load(CONF);
        let cfgs = ike_configs(&c, &|_| unreachable!()).unwrap();
        let gw = &cfgs[0];
        assert_eq!(gw.proposals[0].to_string(), "aes256gcm16-prfsha384-ecp384");
        assert_eq!(gw.proposals[1].to_string(), "aes128-sha256-prfsha256-modp2048");
        assert_eq!(gw.children[0].proposals[0].to_string(), "aes128gcm16-esn");
        assert_eq!(gw.local_id.as_ref().unwrap().to_string(), "moon.example");
        assert_eq!(gw.remote_id.to_string(), "sun.example");
        let psks = gw.psks.as_ref().unwrap();
        let me = Identity::fqdn("moon.example");
        assert_eq!(
            psks.psk(&me, Some(&Identity::fqdn("sun.example"))).unwrap().expose(),
            b"sunsecret"
        );
        assert_eq!(psks.psk(&me, Some(&Identity::fqdn("other"))).unwrap().expose(), b"fallback");
    }

    #[test]
    fn unsupported_things_are_refused_with_the_line() {
        let c = load(&CONF.replace(
            "esp_proposals = aes128gcm16-esn",
            "esp_proposals = aes128gcm16-esn\n mode = beet",
        ));
        let e = ike_configs(&c, &|_| unreachable!()).unwrap_err().to_string();
        assert!(e.contains("swanctl.conf:") && e.contains("Beet"), "{e}");
        let secrets = CONF.find("secrets {").unwrap();
        let c = load(&format!("{}secrets {{\n}}\n", &CONF[..secrets]));
        let e = ike_configs(&c, &|_| unreachable!()).unwrap_err().to_string();
        assert!(e.contains("no ike secret"), "{e}");
    }
}
