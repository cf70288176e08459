//! What an IKE session needs to know from the configuration: a swanctl.conf connection,
//! already parsed and resolved by the daemon (credentials loaded, proposals typed).

use core::fmt;
use core::net::{IpAddr, SocketAddr};
use core::time::Duration;
use std::sync::Arc;

use super::auth::{LocalSigner, PeerVerifier};
use super::identity::{IdMatcher, Identity};
use super::proposal::{Preference, ProposalSpec};
use super::ts::TsSpec;
use crate::crypto::SecretBytes;
use crate::esp::Mode;

/// Finds pre-shared keys by identity, as strongSwan matches `secrets.ike*` `id` entries.
pub trait PskStore: Send + Sync + fmt::Debug {
    /// The best secret for this pair of identities, or `None`. `remote` is `None` when the
    /// peer's identity is not known yet (an initiator with `remote.id = %any`).
    fn psk(&self, local: &Identity, remote: Option<&Identity>) -> Option<SecretBytes>;
}

/// How we authenticate ourselves (`local.auth`).
#[derive(Clone, Debug)]
pub enum LocalAuth {
    /// `psk`.
    Psk,
    /// `pubkey`: a signature with our certificate's key.
    Signature(Arc<dyn LocalSigner>),
}

/// How the peer must authenticate (`remote.auth`).
#[derive(Clone, Debug)]
pub enum RemoteAuth {
    /// `psk`.
    Psk,
    /// `pubkey`: a signature checked against the configured CAs.
    Signature(Arc<dyn PeerVerifier>),
}

impl RemoteAuth {
    /// swanctl's keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            Self::Psk => "psk",
            Self::Signature(_) => "pubkey",
        }
    }
}

/// The retransmission schedule (strongSwan's `charon.retransmit_*`): request `n` (0-based)
/// is resent after `timeout * base^n`, `tries` times, then the exchange fails.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Retransmit {
    /// First timeout (`retransmit_timeout`, 4 s).
    pub timeout: Duration,
    /// Growth factor (`retransmit_base`, 1.8).
    pub base: f64,
    /// Number of retransmissions (`retransmit_tries`, 5).
    pub tries: u32,
    /// Upper bound of one timeout (`retransmit_limit`, none by default).
    pub limit: Option<Duration>,
}

impl Default for Retransmit {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(4), base: 1.8, tries: 5, limit: None }
    }
}

impl Retransmit {
    /// The timeout after the `n`-th transmission (0 is the first).
    pub fn timeout(&self, n: u32) -> Duration {
        let factor = self.base.powi(i32::try_from(n).unwrap_or(i32::MAX));
        let secs = self.timeout.as_secs_f64() * factor;
        let d = Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX);
        self.limit.map_or(d, |l| d.min(l))
    }
}

/// One `children.<name>` section.
#[derive(Clone, Debug)]
pub struct ChildConfig {
    /// The child's name.
    pub name: String,
    /// `esp_proposals`.
    pub proposals: Vec<ProposalSpec>,
    /// `local_ts`.
    pub local_ts: Vec<TsSpec>,
    /// `remote_ts`.
    pub remote_ts: Vec<TsSpec>,
    /// `mode`: tunnel or transport.
    pub mode: Mode,
    /// `replay_window` in packets.
    pub replay_window: u32,
    /// `rekey_time`, `life_time`, … : when the CHILD_SA is rekeyed and when it expires.
    pub lifetime: ChildLifetime,
    /// `dpd_action = restart`: initiate the connection again when the peer is found dead.
    pub dpd_restart: bool,
    /// `close_action = start`: initiate again when the peer deletes the IKE SA.
    pub close_restart: bool,
}

/// A CHILD_SA's soft (rekey) and hard (expire) limits, swanctl.conf's names and meanings.
/// Zero turns a limit off. The soft limits are lowered by a random amount up to `rand_*`
/// (so both ends do not rekey at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildLifetime {
    /// `rekey_time`: start a rekey after this long (default 1 h).
    pub rekey_time: Duration,
    /// `life_time`: the SA expires after this long (default 1.1 × `rekey_time`).
    pub life_time: Duration,
    /// `rand_time`: up to this much earlier (default `life_time` − `rekey_time`).
    pub rand_time: Duration,
    /// `rekey_bytes` (default off).
    pub rekey_bytes: u64,
    /// `life_bytes` (default off).
    pub life_bytes: u64,
    /// `rand_bytes`.
    pub rand_bytes: u64,
    /// `rekey_packets` (default off).
    pub rekey_packets: u64,
    /// `life_packets` (default off).
    pub life_packets: u64,
    /// `rand_packets`.
    pub rand_packets: u64,
}

impl ChildLifetime {
    /// No limit at all: never rekeyed, never expires.
    pub const NONE: Self = Self {
        rekey_time: Duration::ZERO,
        life_time: Duration::ZERO,
        rand_time: Duration::ZERO,
        rekey_bytes: 0,
        life_bytes: 0,
        rand_bytes: 0,
        rekey_packets: 0,
        life_packets: 0,
        rand_packets: 0,
    };
}

impl Default for ChildLifetime {
    /// charon's defaults: rekey after 1 h (minus up to 6 min), expire after 66 min.
    fn default() -> Self {
        Self {
            rekey_time: Duration::from_secs(3600),
            life_time: Duration::from_secs(3960),
            rand_time: Duration::from_secs(360),
            rekey_bytes: 0,
            life_bytes: 0,
            rand_bytes: 0,
            rekey_packets: 0,
            life_packets: 0,
            rand_packets: 0,
        }
    }
}

/// An IKE SA's lifetime and liveness settings (swanctl.conf names). Zero turns one off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IkeLifetime {
    /// `rekey_time`: rekey the IKE SA after this long (default 4 h).
    pub rekey_time: Duration,
    /// `reauth_time`: reauthenticate (make-before-break) after this long (default off).
    pub reauth_time: Duration,
    /// `over_time`: the IKE SA is closed this long after a rekey/reauth that did not happen.
    pub over_time: Duration,
    /// `rand_time`: rekey/reauth up to this much earlier.
    pub rand_time: Duration,
    /// `dpd_delay`: check liveness when nothing was received for this long (default off).
    pub dpd_delay: Duration,
    /// `dpd_timeout`: give up on a liveness check after this long instead of the whole
    /// retransmission schedule (charon uses it for IKEv1 only; we honour it for IKEv2 too
    /// when set, as users expect).
    pub dpd_timeout: Duration,
}

impl Default for IkeLifetime {
    /// charon's defaults: rekey after 4 h (minus up to 24 min), hard stop 24 min later, no DPD.
    fn default() -> Self {
        Self {
            rekey_time: Duration::from_secs(4 * 3600),
            reauth_time: Duration::ZERO,
            over_time: Duration::from_secs(1440),
            rand_time: Duration::from_secs(1440),
            dpd_delay: Duration::ZERO,
            dpd_timeout: Duration::ZERO,
        }
    }
}

/// One `connections.<name>` section, IKEv2 parts.
#[derive(Clone, Debug)]
pub struct IkeConfig {
    /// The connection's name.
    pub name: String,
    /// `local_addrs`: acceptable local addresses; empty is any.
    pub local_addrs: Vec<IpAddr>,
    /// `remote_addrs`: acceptable peer addresses; empty is any (responder only).
    pub remote_addrs: Vec<IpAddr>,
    /// `proposals`.
    pub proposals: Vec<ProposalSpec>,
    /// Whose order wins when we are the responder.
    pub preference: Preference,
    /// `local.id`; `None` uses the certificate subject or the local address.
    pub local_id: Option<Identity>,
    /// `remote.id`.
    pub remote_id: IdMatcher,
    /// `local.auth`.
    pub local_auth: LocalAuth,
    /// `remote.auth`.
    pub remote_auth: RemoteAuth,
    /// The `secrets` (for PSK).
    pub psks: Option<Arc<dyn PskStore>>,
    /// `children`.
    pub children: Vec<ChildConfig>,
    /// `encap`: force UDP encapsulation by faking NAT detection (RFC 7296 §2.23, as strongSwan).
    pub encap: bool,
    /// `send_certreq`.
    pub send_certreq: bool,
    /// Retransmission schedule.
    pub retransmit: Retransmit,
    /// Rekeying, reauthentication and dead peer detection.
    pub lifetime: IkeLifetime,
    /// `keyingtries`: how many times an initiation is tried before giving up (0: forever).
    pub keyingtries: u32,
    /// `unique`: what to do with other IKE SAs between the same identities, and whether we
    /// send INITIAL_CONTACT (every policy but `never`).
    pub unique: UniquePolicy,
}

/// `unique`: the uniqueness policy of a connection's IKE SAs (strongSwan's
/// `ike_sa_manager.c` `check_uniqueness`, RFC 7296 §2.4 for INITIAL_CONTACT).
///
/// Whatever the policy, it is applied by the responder when a new IKE SA authenticates; other
/// IKE SAs "match" when they have the same local and remote identities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UniquePolicy {
    /// `no` (the default): keep other IKE SAs, unless the new one carries INITIAL_CONTACT;
    /// then every other IKE SA between the identities is stale (the peer restarted) and is
    /// dropped without a DELETE.
    #[default]
    No,
    /// `never`: never check; INITIAL_CONTACT is neither sent nor acted upon.
    Never,
    /// `keep`: refuse the new IKE SA (AUTHENTICATION_FAILED) while an established one of the
    /// same connection exists with a peer at another address (INITIAL_CONTACT still clears).
    Keep,
    /// `replace`: delete (with DELETE) the established IKE SAs of the same connection once the
    /// new one authenticated; from the same address (a reauthentication, probably) after a
    /// grace period, so the peer can move its CHILD_SAs first.
    Replace,
}

impl UniquePolicy {
    /// Whether we send INITIAL_CONTACT in our first IKE_AUTH (every policy but `never`).
    pub fn sends_initial_contact(self) -> bool {
        self != Self::Never
    }
}

impl IkeConfig {
    /// Whether this connection may be used between these addresses (responder selection).
    pub fn matches_addrs(&self, local: SocketAddr, remote: SocketAddr) -> bool {
        (self.local_addrs.is_empty() || self.local_addrs.contains(&local.ip()))
            && (self.remote_addrs.is_empty() || self.remote_addrs.contains(&remote.ip()))
    }

    /// Finds a child by name.
    pub fn child(&self, name: &str) -> Option<&ChildConfig> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// Endpoint-wide settings.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// The connections.
    pub connections: Vec<Arc<IkeConfig>>,
    /// Half-open IKE SAs above which a COOKIE is demanded (`charon.cookie_threshold`, 10).
    pub cookie_threshold: usize,
    /// How long a responder keeps a half-open IKE SA (`charon.half_open_timeout`, 30 s).
    pub half_open_timeout: Duration,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            connections: Vec::new(),
            cookie_threshold: 10,
            half_open_timeout: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strongswan_schedule() {
        let r = Retransmit::default();
        let secs: Vec<f64> =
            (0..6).map(|n| (r.timeout(n).as_secs_f64() * 100.0).round() / 100.0).collect();
        assert_eq!(secs, [4.0, 7.2, 12.96, 23.33, 41.99, 75.58]);
        let capped = Retransmit { limit: Some(Duration::from_secs(10)), ..r };
        assert_eq!(capped.timeout(3), Duration::from_secs(10));
    }
}
