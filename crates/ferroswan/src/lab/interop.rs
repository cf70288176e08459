//! IKEv2 interop cases: two gateways on a [`Topology`], each run by strongSwan (charon with
//! `kernel-libipsec`) or by ferroswan, configured from one [`Case`] of `interop/matrix.toml`,
//! and the checks that the tunnel they negotiate works and uses the algorithms the case asks for.
//!
//! ```text
//!   lan_a ──── gw_a "moon" ──── [nat] ──── gw_b "sun" ──── lan_b
//!   10.1.0.2   initiator                   responder       10.2.0.2
//!   fd00:1::2  <log_dir>/moon/             <log_dir>/sun/  fd00:2::2
//!              swanctl.conf, x509/, …      swanctl.conf, x509/, …
//! ```
//!
//! # What [`run_case`] does
//!
//! 1. Builds a fresh [`Topology`] (unique namespace names, stale ones swept), with the NAT
//!    router when the case asks for it. `gw_a` ("moon") always initiates, `gw_b` ("sun") always
//!    responds; the case says which implementation plays which role.
//! 2. Writes one swanctl directory per gateway, laid out as strongSwan's `/etc/swanctl`
//!    (`swanctl.conf`, `x509/`, `x509ca/`, and the private key in `rsa/`, `ecdsa/` or `pkcs8/`):
//!    connection `net` with the outer addresses, `proposals`, `local`/`remote` auth and ids, and
//!    child `net` with `local_ts`/`remote_ts` = both LANs (IPv4 and IPv6) and `esp_proposals`;
//!    `secrets` for PSK. Certificates come from a [`CertStore`] (strongSwan's `pki`).
//! 3. Starts the responder, then the initiator: strongSwan with [`start_strongswan`] (charon in
//!    the namespace with a private `/run`, then `swanctl --load-all`); ferroswan with
//!    [`start_ferroswan`]. The initiator is started by `swanctl --initiate --child net` on
//!    strongSwan and by [`initiate_ferroswan`] on ferroswan.
//! 4. Waits until **both** gateways report the CHILD_SA over VICI (`list-sas`: IKE_SA
//!    `ESTABLISHED` with child `net` `INSTALLED`; see [`wait_child_up`]).
//! 5. Checks: ping lan_a → lan_b and back over IPv4 and IPv6, a TCP transfer lan_a → lan_b
//!    with matching SHA-256, and on every strongSwan side the negotiated IKE and ESP algorithms
//!    (`encr-alg`, `encr-keysize`, `integ-alg`, `prf-alg`, `dh-group`, `esn`) against what the
//!    case's proposals imply ([`Expected`]).
//!
//! Any failure is a [`CaseError`] that carries the last [`LOG_TAIL_LINES`] lines of both
//! daemons' logs. Daemons are killed and namespaces removed on drop, also while panicking.
//!
//! # The contract with the ferroswan daemon
//!
//! [`start_ferroswan`] runs `ferroswan daemon -c <dir>/swanctl.conf --socket <dir>/ferroswan.vici`
//! inside the gateway's namespace, stdout and stderr to `<log_dir>/<gateway>-ferroswan.log`,
//! and waits until the socket accepts connections. The daemon reads the credentials next to its
//! `swanctl.conf` as swanctl does. It must answer VICI `list-sas` with strongSwan's keys
//! (`state`, `child-sas.<name>.state`, …), which is how "CHILD_SA up" is detected, exactly as
//! for charon. As initiator, the child carries `start_action = start`
//! ([`FerroswanInitiation::StartAction`]); [`FerroswanInitiation::UpCommand`] runs
//! `ferroswan up net --socket <socket>` instead.

use std::collections::{BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::fs;
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::netns::{BackgroundProcess, Gateway, IfAddrs, Nat, Netns, Topology};
use super::tunnel::transfer;
use crate::vici::{Client, Message};

/// How many lines of each daemon's log a [`CaseError`] carries.
pub const LOG_TAIL_LINES: usize = 60;

/// The name of the connection and of its child in every generated `swanctl.conf`.
pub const CONN: &str = "net";

/// How long the CHILD_SA may take to come up (MODP-4096 and RSA-3072 on a busy 2-core machine).
const CHILD_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a daemon may take to create its VICI socket.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(15);

/// The PSK of every PSK case (lab use only).
const PSK: &str = "ferroswan-interop-psk-only-for-namespaced-tests";

/// MiB sent through each tunnel by the TCP check.
const TRANSFER_MIB: u32 = 2;

/// charon, as installed by Debian's `strongswan-charon`.
pub const CHARON: &str = "/usr/lib/ipsec/charon";

/// Plugins charon and swanctl load (explicit, so nothing from `/etc/strongswan.d` matters).
/// `kernel-libipsec` must come before `kernel-netlink`: this kernel has XFRM netlink but no
/// ESP, and whichever loads first takes the kernel-ipsec role. OpenSSL 3 provides every
/// algorithm of the matrix, X25519 and Ed25519 included (Debian ships no `curve25519` plugin).
pub const CHARON_PLUGINS: &str = "random nonce openssl pem pkcs1 pkcs8 x509 pubkey constraints aes \
                              sha1 sha2 hmac kdf gcm gmp mgf1 kernel-libipsec kernel-netlink \
                              socket-default vici";

// ---------------------------------------------------------------------------------------------
// The matrix
// ---------------------------------------------------------------------------------------------

/// Why the matrix or a case is unusable, or a case failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The matrix file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file-system operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The matrix is not valid TOML or does not match the case format.
    #[error("interop matrix: {0}")]
    Parse(String),
    /// A case is inconsistent (unknown proposal keyword, option that does not apply, …).
    #[error("interop case '{case}': {detail}")]
    InvalidCase {
        /// The case name.
        case: String,
        /// What is wrong.
        detail: String,
    },
    /// A case ran and failed; the message includes both daemons' logs.
    #[error(transparent)]
    Failed(Box<CaseError>),
}

/// `interop/matrix.toml`: the list of interop cases.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    /// The cases, in file order (`[[case]]` tables).
    #[serde(rename = "case")]
    pub cases: Vec<Case>,
}

/// One interop case (one `[[case]]` table of the matrix).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Unique name, printed in the summary.
    pub name: String,
    /// How both gateways authenticate.
    pub auth: Auth,
    /// The IKE proposal in strongSwan keywords (`proposals =`), one proposal.
    pub ike: String,
    /// The ESP proposal in strongSwan keywords (`esp_proposals =`), one proposal; a DH group
    /// in it means PFS, `esn` extended sequence numbers.
    pub esp: String,
    /// Who runs gateway A, the initiator.
    pub initiator: Implementation,
    /// Who runs gateway B, the responder.
    pub responder: Implementation,
    /// Outer (transit) address family.
    #[serde(default)]
    pub family: Family,
    /// `encap = yes`: force UDP encapsulation even without NAT.
    #[serde(default)]
    pub encap: bool,
    /// Put a masquerading NAT router between the gateways (gateway A inside).
    #[serde(default)]
    pub nat: bool,
    /// The IKE identity type (PSK only; certificate cases always use the FQDN in the SAN).
    #[serde(default)]
    pub ids: IdKind,
    /// Curve of the ECDSA keys (`ecdsa` auth only; default P-256).
    #[serde(default)]
    pub ecdsa_curve: Option<Curve>,
    /// Why the case is not run yet; absent for cases expected to pass.
    #[serde(default)]
    pub disabled: Option<String>,
}

/// Authentication of both gateways.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Auth {
    /// Ed25519 certificates (RFC 8420) from one Ed25519 CA.
    Ed25519,
    /// ECDSA certificates (P-256, or [`Case::ecdsa_curve`]) from an ECDSA CA of the same curve.
    Ecdsa,
    /// A pre-shared key.
    Psk,
    /// RSA 3072 certificates from an RSA 3072 CA.
    Rsa,
}

/// Which IKEv2 implementation runs a gateway.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Implementation {
    /// `ferroswan daemon` ([`start_ferroswan`]).
    Ferroswan,
    /// strongSwan 5.9 charon with kernel-libipsec ([`start_strongswan`]).
    Strongswan,
}

/// Outer address family.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4 between the gateways.
    #[default]
    V4,
    /// IPv6 between the gateways.
    V6,
}

/// IKE identity type of PSK cases.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum IdKind {
    /// `moon.ferroswan.test` / `sun.ferroswan.test` (ID_FQDN).
    #[default]
    Fqdn,
    /// Each gateway's own outer address (ID_IPV4_ADDR / ID_IPV6_ADDR).
    Ip,
}

/// ECDSA curve.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Curve {
    /// NIST P-256.
    P256,
    /// NIST P-384.
    P384,
}

impl Matrix {
    /// Reads and validates a matrix file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = fs::read_to_string(path)
            .map_err(|source| Error::Read { path: path.display().to_string(), source })?;
        Self::parse(&text)
    }

    /// Parses and validates matrix text: unique names, a non-empty reason on disabled cases,
    /// options that apply to the case, and proposals whose expected algorithms are known.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let matrix: Self = toml::from_str(text).map_err(|e| Error::Parse(e.to_string()))?;
        let mut names = BTreeSet::new();
        for case in &matrix.cases {
            if !names.insert(case.name.as_str()) {
                return Err(case.invalid("duplicate case name".into()));
            }
            case.validate()?;
        }
        Ok(matrix)
    }

    /// The cases without `disabled`.
    pub fn enabled(&self) -> impl Iterator<Item = &Case> {
        self.cases.iter().filter(|c| c.disabled.is_none())
    }
}

impl Case {
    fn invalid(&self, detail: String) -> Error {
        Error::InvalidCase { case: self.name.clone(), detail }
    }

    /// Checks the options against each other and derives the expectations once.
    pub fn validate(&self) -> Result<(), Error> {
        if self.name.is_empty() || self.name.contains(char::is_whitespace) {
            return Err(self.invalid("the name must be non-empty, without blanks".into()));
        }
        if self.disabled.as_deref().is_some_and(|r| r.trim().is_empty()) {
            return Err(self.invalid("`disabled` needs a reason".into()));
        }
        if self.ids == IdKind::Ip && self.auth != Auth::Psk {
            return Err(
                self.invalid("`ids = \"ip\"` is for PSK cases (certificates name FQDNs)".into())
            );
        }
        if self.ecdsa_curve.is_some() && self.auth != Auth::Ecdsa {
            return Err(self.invalid("`ecdsa_curve` is for `auth = \"ecdsa\"`".into()));
        }
        self.expected_ike()?;
        self.expected_esp()?;
        Ok(())
    }

    /// The algorithms the IKE_SA must use.
    pub fn expected_ike(&self) -> Result<Expected, Error> {
        Expected::from_proposal(&self.ike, true).map_err(|d| self.invalid(d))
    }

    /// The algorithms the CHILD_SA must use.
    pub fn expected_esp(&self) -> Result<Expected, Error> {
        Expected::from_proposal(&self.esp, false).map_err(|d| self.invalid(d))
    }

    /// Whether a ferroswan binary is needed.
    pub fn needs_ferroswan(&self) -> bool {
        [self.initiator, self.responder].contains(&Implementation::Ferroswan)
    }

    /// The key type of the certificates, `None` for PSK.
    pub fn key_kind(&self) -> Option<KeyKind> {
        match self.auth {
            Auth::Psk => None,
            Auth::Rsa => Some(KeyKind::Rsa3072),
            Auth::Ecdsa => Some(match self.ecdsa_curve.unwrap_or(Curve::P256) {
                Curve::P256 => KeyKind::EcdsaP256,
                Curve::P384 => KeyKind::EcdsaP384,
            }),
            Auth::Ed25519 => Some(KeyKind::Ed25519),
        }
    }
}

impl Case {
    /// A PSK case between ferroswan and strongSwan with the suites the lifecycle suites use
    /// (IKE `aes128gcm16-prfsha256-x25519`, ESP `esp`), `initiator` on gateway A and the
    /// other implementation on gateway B.
    pub fn psk(name: &str, initiator: Implementation, esp: &str) -> Result<Self, Error> {
        let responder = match initiator {
            Implementation::Ferroswan => Implementation::Strongswan,
            Implementation::Strongswan => Implementation::Ferroswan,
        };
        let text = format!(
            "[[case]]\nname = \"{name}\"\nauth = \"psk\"\nike = \"aes128gcm16-prfsha256-x25519\"\n\
             esp = \"{esp}\"\ninitiator = \"{initiator}\"\nresponder = \"{responder}\"\n"
        );
        let mut matrix = Matrix::parse(&text)?;
        Ok(matrix.cases.remove(0))
    }
}

impl fmt::Display for Implementation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ferroswan => "ferroswan",
            Self::Strongswan => "strongswan",
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Expected algorithms
// ---------------------------------------------------------------------------------------------

/// The algorithms an SA must show in VICI `list-sas`, in strongSwan's names.
///
/// Derived from a strongSwan proposal string by a small table of its own (not by ferroswan's
/// proposal parser, which is under test): `aes128` → `AES_CBC`/128, `aes256gcm16` →
/// `AES_GCM_16`/256, `sha256` → `HMAC_SHA2_256_128` (and, in IKE without an explicit `prf…`,
/// `PRF_HMAC_SHA2_256`), `x25519` → `CURVE_25519`, `esn` → `esn=1`, …
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    /// `encr-alg`.
    pub encr: String,
    /// `encr-keysize`; `None` when strongSwan shows none (ChaCha20-Poly1305).
    pub encr_keysize: Option<u16>,
    /// `integ-alg`; `None` for AEADs.
    pub integ: Option<String>,
    /// `prf-alg` (IKE only).
    pub prf: Option<String>,
    /// `dh-group`; for ESP `None` without PFS.
    pub dh: Option<String>,
    /// `esn` = 1 (ESP only).
    pub esn: bool,
}

impl Expected {
    /// Expectations for one proposal (`ike`: an IKE proposal, else ESP).
    pub fn from_proposal(proposal: &str, ike: bool) -> Result<Self, String> {
        let mut e = Self::default();
        let mut implied_prf = None;
        let mut aead = false;
        if proposal.contains(',') || proposal.trim().is_empty() {
            return Err(format!("'{proposal}': one proposal per case"));
        }
        for kw in proposal.trim().split('-') {
            let encr = match kw {
                "aes128" => Some(("AES_CBC", Some(128), false)),
                "aes192" => Some(("AES_CBC", Some(192), false)),
                "aes256" => Some(("AES_CBC", Some(256), false)),
                "aes128gcm16" => Some(("AES_GCM_16", Some(128), true)),
                "aes192gcm16" => Some(("AES_GCM_16", Some(192), true)),
                "aes256gcm16" => Some(("AES_GCM_16", Some(256), true)),
                "chacha20poly1305" => Some(("CHACHA20_POLY1305", None, true)),
                _ => None,
            };
            let integ = match kw {
                "sha1" => Some(("HMAC_SHA1_96", "PRF_HMAC_SHA1")),
                "sha256" => Some(("HMAC_SHA2_256_128", "PRF_HMAC_SHA2_256")),
                "sha384" => Some(("HMAC_SHA2_384_192", "PRF_HMAC_SHA2_384")),
                "sha512" => Some(("HMAC_SHA2_512_256", "PRF_HMAC_SHA2_512")),
                _ => None,
            };
            let prf = match kw {
                "prfsha1" => Some("PRF_HMAC_SHA1"),
                "prfsha256" => Some("PRF_HMAC_SHA2_256"),
                "prfsha384" => Some("PRF_HMAC_SHA2_384"),
                "prfsha512" => Some("PRF_HMAC_SHA2_512"),
                _ => None,
            };
            let dh = match kw {
                "modp2048" => Some("MODP_2048"),
                "modp3072" => Some("MODP_3072"),
                "modp4096" => Some("MODP_4096"),
                "ecp256" => Some("ECP_256"),
                "ecp384" => Some("ECP_384"),
                "ecp521" => Some("ECP_521"),
                "x25519" | "curve25519" => Some("CURVE_25519"),
                _ => None,
            };
            if let Some((name, size, is_aead)) = encr {
                set_once(&mut e.encr, name, kw)?;
                e.encr_keysize = size;
                aead = is_aead;
            } else if let Some((integ, prf)) = integ {
                set_opt_once(&mut e.integ, integ, kw)?;
                implied_prf = Some(prf);
            } else if let Some(prf) = prf {
                if !ike {
                    return Err(format!("'{proposal}': '{kw}' is not an ESP transform"));
                }
                set_opt_once(&mut e.prf, prf, kw)?;
            } else if let Some(dh) = dh {
                set_opt_once(&mut e.dh, dh, kw)?;
            } else if kw == "esn" && !ike {
                e.esn = true;
            } else if kw == "noesn" && !ike {
                e.esn = false;
            } else {
                return Err(format!("'{proposal}': unknown or unsupported keyword '{kw}'"));
            }
        }
        if e.encr.is_empty() {
            return Err(format!("'{proposal}': no encryption algorithm"));
        }
        if aead && e.integ.is_some() {
            return Err(format!("'{proposal}': an AEAD takes no integrity algorithm"));
        }
        if !aead && e.integ.is_none() {
            return Err(format!("'{proposal}': no integrity algorithm"));
        }
        if ike {
            if e.prf.is_none() {
                e.prf = implied_prf.map(str::to_owned);
            }
            if e.prf.is_none() {
                return Err(format!("'{proposal}': an AEAD IKE proposal needs a prf…"));
            }
            if e.dh.is_none() {
                return Err(format!("'{proposal}': no key exchange method"));
            }
        }
        Ok(e)
    }

    /// Compares with one SA's VICI section (IKE_SA or CHILD_SA); `Err` lists the differences.
    pub fn check(&self, what: &str, sa: &Message) -> Result<(), String> {
        let mut diffs = Vec::new();
        let mut want = |key: &str, expect: Option<&str>| {
            let got = sa.get_str(key);
            if got != expect {
                diffs.push(format!(
                    "{key}: expected {}, got {}",
                    expect.unwrap_or("(none)"),
                    got.unwrap_or("(none)")
                ));
            }
        };
        want("encr-alg", Some(&self.encr));
        let size = self.encr_keysize.map(|s| s.to_string());
        if size.is_some() {
            want("encr-keysize", size.as_deref());
        }
        want("integ-alg", self.integ.as_deref());
        if self.prf.is_some() {
            want("prf-alg", self.prf.as_deref());
        }
        want("dh-group", self.dh.as_deref());
        if self.esn {
            want("esn", Some("1"));
        } else if sa.get_str("esn").is_some_and(|v| v != "0") {
            diffs.push(format!("esn: expected none, got {}", sa.get_str("esn").unwrap_or("")));
        }
        if diffs.is_empty() { Ok(()) } else { Err(format!("{what}: {}", diffs.join("; "))) }
    }
}

fn set_once(slot: &mut String, value: &str, kw: &str) -> Result<(), String> {
    if !slot.is_empty() {
        return Err(format!("'{kw}': a second encryption algorithm (one suite per case)"));
    }
    value.clone_into(slot);
    Ok(())
}

fn set_opt_once(slot: &mut Option<String>, value: &str, kw: &str) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("'{kw}': a second algorithm of its kind (one suite per case)"));
    }
    *slot = Some(value.to_owned());
    Ok(())
}

/// One line of the negotiated algorithms, `AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519` style.
pub fn describe_sa(sa: &Message) -> String {
    let encr = match (sa.get_str("encr-alg"), sa.get_str("encr-keysize")) {
        (Some(a), Some(k)) => format!("{a}-{k}"),
        (Some(a), None) => a.to_owned(),
        _ => "?".to_owned(),
    };
    let mut parts = vec![encr];
    for key in ["integ-alg", "prf-alg", "dh-group"] {
        if let Some(v) = sa.get_str(key) {
            parts.push(v.to_owned());
        }
    }
    if sa.get_str("esn") == Some("1") {
        parts.push("ESN".to_owned());
    }
    parts.join("/")
}

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

/// Key type of a case's CA and gateway certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyKind {
    /// Ed25519.
    Ed25519,
    /// ECDSA on P-256.
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
    /// RSA, 3072 bits.
    Rsa3072,
}

impl KeyKind {
    /// `pki --gen` arguments.
    fn gen_args(self) -> &'static [&'static str] {
        match self {
            Self::Ed25519 => &["--type", "ed25519"],
            Self::EcdsaP256 => &["--type", "ecdsa", "--size", "256"],
            Self::EcdsaP384 => &["--type", "ecdsa", "--size", "384"],
            Self::Rsa3072 => &["--type", "rsa", "--size", "3072"],
        }
    }

    /// `pki --type` of the private key.
    fn pki_type(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256 | Self::EcdsaP384 => "ecdsa",
            Self::Rsa3072 => "rsa",
        }
    }

    /// The swanctl directory for the private key: `pki` writes PKCS#1 for RSA, SEC1 for ECDSA
    /// and PKCS#8 for Ed25519.
    pub fn key_dir(self) -> &'static str {
        match self {
            Self::Ed25519 => "pkcs8",
            Self::EcdsaP256 | Self::EcdsaP384 => "ecdsa",
            Self::Rsa3072 => "rsa",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256 => "p256",
            Self::EcdsaP384 => "p384",
            Self::Rsa3072 => "rsa3072",
        }
    }
}

/// A CA and the two gateways' certificates of one key type (PEM files).
#[derive(Clone, Debug)]
pub struct CertSet {
    /// Key type of all three.
    pub kind: KeyKind,
    /// The CA certificate (goes to `x509ca/`).
    pub ca_cert: PathBuf,
    /// Gateway A ("moon"): certificate (`x509/`) and private key.
    pub moon: (PathBuf, PathBuf),
    /// Gateway B ("sun"): certificate and private key.
    pub sun: (PathBuf, PathBuf),
}

/// Certificates made at run time with strongSwan's `pki` (package `strongswan-pki`), one
/// [`CertSet`] per key type, made on first use and shared by all cases of a process. The
/// directory is removed on drop.
#[derive(Debug)]
pub struct CertStore {
    dir: PathBuf,
    sets: Mutex<HashMap<KeyKind, CertSet>>,
}

impl CertStore {
    /// An empty store in a new directory under `$TMPDIR`.
    pub fn new() -> Result<Self, Error> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("fslab-certs-{}-{nanos:x}", std::process::id()));
        fs::create_dir_all(&dir)
            .map_err(|source| Error::Io { what: format!("creating {}", dir.display()), source })?;
        Ok(Self { dir, sets: Mutex::new(HashMap::new()) })
    }

    /// The set for `kind`, generating it on first use.
    pub fn get(&self, kind: KeyKind) -> Result<CertSet, String> {
        let mut sets = self.sets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(set) = sets.get(&kind) {
            return Ok(set.clone());
        }
        let set = self.generate(kind)?;
        sets.insert(kind, set.clone());
        Ok(set)
    }

    fn generate(&self, kind: KeyKind) -> Result<CertSet, String> {
        let dir = self.dir.join(kind.label());
        fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        // Only the plugins pki needs, so a stock /etc/strongswan.d naming absent plugins does
        // not fill stderr with load failures.
        let conf = dir.join("strongswan.conf");
        fs::write(
            &conf,
            "pki {\n  load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey gmp sha1 sha2\n}\n",
        )
        .map_err(|e| format!("writing {}: {e}", conf.display()))?;
        let pki = |args: &[&str], out: &Path| -> Result<(), String> {
            let mut cmd = Command::new("pki");
            cmd.args(args).env("STRONGSWAN_CONF", &conf).stdin(Stdio::null());
            let output = run(&mut cmd)?;
            fs::write(out, &output.stdout).map_err(|e| format!("writing {}: {e}", out.display()))
        };
        let path = |name: &str| dir.join(name);
        let (t, ca_key, ca_cert) = (kind.pki_type(), path("ca.key.pem"), path("ca.cert.pem"));
        let mut gen_args = vec!["--gen"];
        gen_args.extend_from_slice(kind.gen_args());
        gen_args.extend_from_slice(&["--outform", "pem"]);
        pki(&gen_args, &ca_key)?;
        let ca_dn = format!("O=ferroswan, CN=ferroswan interop CA {}", kind.label());
        pki(
            &[
                "--self",
                "--ca",
                "--lifetime",
                "30",
                "--in",
                s(&ca_key),
                "--type",
                t,
                "--dn",
                &ca_dn,
            ]
            .into_iter()
            .chain(["--outform", "pem"])
            .collect::<Vec<_>>(),
            &ca_cert,
        )?;
        let gateway = |name: &str| -> Result<(PathBuf, PathBuf), String> {
            let (key, public, cert) = (
                path(&format!("{name}.key.pem")),
                path(&format!("{name}.pub.pem")),
                path(&format!("{name}.cert.pem")),
            );
            pki(&gen_args, &key)?;
            // `--pub` knows no `ed25519` type; `priv` detects any private key.
            pki(&["--pub", "--in", s(&key), "--type", "priv", "--outform", "pem"], &public)?;
            let id = gateway_fqdn(name);
            let dn = format!("O=ferroswan, CN={id}");
            pki(
                &[
                    "--issue",
                    "--lifetime",
                    "30",
                    "--in",
                    s(&public),
                    "--type",
                    "pub",
                    "--cacert",
                    s(&ca_cert),
                    "--cakey",
                    s(&ca_key),
                    "--dn",
                    &dn,
                    "--san",
                    &id,
                    "--outform",
                    "pem",
                ],
                &cert,
            )?;
            Ok((cert, key))
        };
        let moon = gateway("moon")?;
        let sun = gateway("sun")?;
        Ok(CertSet { kind, ca_cert, moon, sun })
    }
}

impl Drop for CertStore {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// `moon.ferroswan.test` for gateway "moon".
pub fn gateway_fqdn(name: &str) -> String {
    format!("{name}.ferroswan.test")
}

// ---------------------------------------------------------------------------------------------
// swanctl directories
// ---------------------------------------------------------------------------------------------

/// Everything one gateway's `swanctl.conf` depends on.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// "moon" (gateway A, initiator) or "sun" (gateway B, responder).
    pub name: &'static str,
    /// The peer's name.
    pub peer: &'static str,
    /// Who runs this gateway.
    pub implementation: Implementation,
    /// Whether this gateway initiates.
    pub initiator: bool,
    /// Own outer address.
    pub local_addr: IpAddr,
    /// The peer's outer address as this gateway sees it (the NAT's, behind a NAT).
    pub remote_addr: IpAddr,
    /// Own IKE identity.
    pub local_id: String,
    /// The peer's IKE identity.
    pub remote_id: String,
    /// Own LAN (IPv4 and IPv6 networks).
    pub local_lan: IfAddrs,
    /// The peer's LAN.
    pub remote_lan: IfAddrs,
    /// How ferroswan initiates (ignored for strongSwan).
    pub ferroswan_initiation: FerroswanInitiation,
    /// Extra `swanctl.conf` settings of this gateway (lifetimes, DPD, …).
    pub extra: ExtraSettings,
}

/// Extra `key = value` lines of one gateway's `swanctl.conf`, written verbatim after the
/// harness's own: for lifetimes (`rekey_time`, `over_time`, `life_time`, `rand_time`) and
/// dead peer detection (`dpd_delay`, `dpd_timeout`, `dpd_action`). Both implementations read
/// the same file, so a key ferroswan refuses fails its start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtraSettings {
    /// In the connection section (`connections.net`).
    pub connection: Vec<(String, String)>,
    /// In the child section (`connections.net.children.net`).
    pub child: Vec<(String, String)>,
}

impl ExtraSettings {
    /// Adds `key = value` to the connection section.
    pub fn connection(mut self, key: &str, value: &str) -> Self {
        self.connection.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Adds `key = value` to the child section.
    pub fn child(mut self, key: &str, value: &str) -> Self {
        self.child.push((key.to_owned(), value.to_owned()));
        self
    }

    fn lines(settings: &[(String, String)], indent: &str) -> String {
        settings.iter().map(|(k, v)| format!("\n{indent}{k} = {v}")).collect()
    }
}

/// How a ferroswan initiator is told to bring the tunnel up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FerroswanInitiation {
    /// `start_action = start` on the child in its `swanctl.conf`.
    #[default]
    StartAction,
    /// `ferroswan up net --socket <socket>` once the daemon's socket exists.
    UpCommand,
}

/// Writes the swanctl directory of one gateway into `dir`: `swanctl.conf` and, for
/// certificate cases, `x509/<name>.pem`, `x509ca/ca.pem` and the key in
/// [`KeyKind::key_dir`]. Returns the path of `swanctl.conf`.
pub fn write_swanctl_dir(
    dir: &Path,
    case: &Case,
    gw: &GatewayConfig,
    certs: Option<&CertSet>,
) -> Result<PathBuf, String> {
    let mkdir =
        |d: &Path| fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()));
    mkdir(dir)?;
    let copy = |from: &Path, sub: &str, to: &str| -> Result<(), String> {
        let d = dir.join(sub);
        mkdir(&d)?;
        fs::copy(from, d.join(to))
            .map(drop)
            .map_err(|e| format!("copying {} to {}: {e}", from.display(), d.display()))
    };
    let mut auth_local = String::from("auth = psk");
    let auth_remote = match case.auth {
        Auth::Psk => "auth = psk",
        _ => "auth = pubkey",
    };
    if let Some(set) = certs {
        let (cert, key) = if gw.name == "moon" { &set.moon } else { &set.sun };
        copy(cert, "x509", &format!("{}.pem", gw.name))?;
        copy(key, set.kind.key_dir(), &format!("{}.pem", gw.name))?;
        copy(&set.ca_cert, "x509ca", "ca.pem")?;
        auth_local = format!("auth = pubkey\n            certs = {}.pem", gw.name);
    }
    let (ll, rl) = (&gw.local_lan, &gw.remote_lan);
    let start_action = if gw.initiator
        && gw.implementation == Implementation::Ferroswan
        && gw.ferroswan_initiation == FerroswanInitiation::StartAction
    {
        "\n                start_action = start"
    } else {
        ""
    };
    let extra_conn = ExtraSettings::lines(&gw.extra.connection, "        ");
    let extra_child = ExtraSettings::lines(&gw.extra.child, "                ");
    let mut conf = format!(
        "# written by ferroswan::lab::interop for case '{case}' ({name}, {implementation}, {role})
connections {{
    {CONN} {{
        version = 2
        local_addrs = {la}
        remote_addrs = {ra}
        proposals = {ike}
        encap = {encap}{extra_conn}
        local {{
            {auth_local}
            id = {lid}
        }}
        remote {{
            {auth_remote}
            id = {rid}
        }}
        children {{
            {CONN} {{
                local_ts = {l4}, {l6}
                remote_ts = {r4}, {r6}
                esp_proposals = {esp}
                mode = tunnel{start_action}{extra_child}
            }}
        }}
    }}
}}
",
        case = case.name,
        name = gw.name,
        implementation = gw.implementation,
        role = if gw.initiator { "initiator" } else { "responder" },
        la = gw.local_addr,
        ra = gw.remote_addr,
        ike = case.ike,
        encap = if case.encap { "yes" } else { "no" },
        lid = gw.local_id,
        rid = gw.remote_id,
        l4 = ll.v4_network(),
        l6 = ll.v6_network(),
        r4 = rl.v4_network(),
        r6 = rl.v6_network(),
        esp = case.esp,
    );
    if case.auth == Auth::Psk {
        let (a, b) = (&gw.local_id, &gw.remote_id);
        let _ = write!(
            conf,
            "secrets {{\n    ike-{CONN} {{\n        id-{} = {a}\n        id-{} = {b}\n        \
             secret = \"{PSK}\"\n    }}\n}}\n",
            gw.name, gw.peer
        );
    }
    let path = dir.join("swanctl.conf");
    fs::write(&path, conf).map_err(|e| format!("writing {}: {e}", path.display()))?;
    // It holds the PSK: owner-only, as ferroswan insists (strongSwan does not care).
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| format!("chmod 600 {}: {e}", path.display()))?;
    Ok(path)
}

// ---------------------------------------------------------------------------------------------
// Daemons
// ---------------------------------------------------------------------------------------------

/// A running IKE daemon on one gateway; killed on drop.
#[derive(Debug)]
pub struct RunningGateway {
    /// "moon" or "sun".
    pub name: &'static str,
    /// Who runs it.
    pub implementation: Implementation,
    /// The daemon process.
    pub process: BackgroundProcess,
    /// Its VICI socket (a file-system path, usable from the root namespace).
    pub socket: PathBuf,
    /// The daemon's own log file (charon's `filelog`, ferroswan's stdout/stderr).
    pub log: PathBuf,
    /// The swanctl directory it was configured from.
    pub swanctl_dir: PathBuf,
}

impl RunningGateway {
    /// The last `lines` lines of the daemon's log (and of its stdout/stderr when separate).
    pub fn log_tail(&self, lines: usize) -> String {
        let mut out = tail(&self.log, lines);
        if let Some(extra) = self.process.log_path()
            && extra != self.log
        {
            let t = tail(extra, 10);
            if !t.trim().is_empty() {
                let _ = write!(out, "\n  -- stdout/stderr ({}):\n{t}", extra.display());
            }
        }
        out
    }

    /// VICI `list-sas`: one message per IKE_SA, keyed by connection name.
    pub fn list_sas(&self) -> Result<Vec<Message>, String> {
        vici_list_sas(&self.socket)
    }
}

/// The last `n` lines of a file (or why it could not be read).
fn tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines.get(lines.len().saturating_sub(n)..).unwrap_or_default().join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Starts strongSwan's charon on `gw` with kernel-libipsec, configured from `swanctl_dir`
/// (written by [`write_swanctl_dir`]), and loads the configuration with `swanctl --load-all`.
///
/// charon gets its own `strongswan.conf` (through `STRONGSWAN_CONF`; nothing in `/etc` is
/// read), an explicit plugin list ([`CHARON_PLUGINS`]), a `filelog` `charon.log` in
/// `swanctl_dir`, and a private `/run` (`swanctl_dir/run` bind-mounted in the mount namespace
/// `ip netns exec` creates), because its PID file path is compiled in and a second charon on
/// the machine would refuse to start.
pub fn start_strongswan(
    ns: &Netns,
    name: &'static str,
    swanctl_dir: &Path,
) -> Result<RunningGateway, String> {
    let run_dir = swanctl_dir.join("run");
    fs::create_dir_all(&run_dir).map_err(|e| format!("creating {}: {e}", run_dir.display()))?;
    let log = swanctl_dir.join("charon.log");
    let socket = run_dir.join("charon.vici");
    let conf = swanctl_dir.join("strongswan.conf");
    let text = format!(
        "# written by ferroswan::lab::interop; charon reads it through STRONGSWAN_CONF
charon {{
    load_modular = no
    load = {CHARON_PLUGINS}
    install_virtual_ip = no
    # Reauthentication (reauth_time) as make-before-break: the new IKE SA and its CHILD_SAs
    # first, then the old one goes (5.9.8's default is break-before-make).
    make_before_break = yes
    retransmit_timeout = 2
    retransmit_tries = 3
    syslog {{
        daemon {{
            default = -1
        }}
    }}
    filelog {{
        interop {{
            path = {log}
            time_format = %T
            default = 1
            ike = 2
            cfg = 2
            flush_line = yes
        }}
    }}
    plugins {{
        vici {{
            socket = unix://{socket}
        }}
    }}
}}
swanctl {{
    load = pem pkcs1 pkcs8 x509 pubkey openssl random
}}
",
        log = log.display(),
        socket = socket.display(),
    );
    fs::write(&conf, text).map_err(|e| format!("writing {}: {e}", conf.display()))?;
    let script = format!(
        "mount --bind '{}' /run && exec env STRONGSWAN_CONF='{}' {CHARON}",
        run_dir.display(),
        conf.display()
    );
    let process = ns
        .spawn_logged(&["sh", "-c", &script], &format!("{name}-charon"))
        .map_err(|e| e.to_string())?;
    let mut gw = RunningGateway {
        name,
        implementation: Implementation::Strongswan,
        process,
        socket,
        log,
        swanctl_dir: swanctl_dir.to_owned(),
    };
    wait_for_socket(&mut gw)?;
    let out = swanctl(&gw, &["--load-all", "--file", s(&swanctl_dir.join("swanctl.conf"))])?;
    if !out.status.success() {
        return Err(format!(
            "swanctl --load-all failed on {name}:\n{}\n---- {name} (strongswan): last \
             {LOG_TAIL_LINES} log lines ----\n{}",
            output_text(&out),
            gw.log_tail(LOG_TAIL_LINES)
        ));
    }
    Ok(gw)
}

/// Starts `ferroswan daemon` on `gw`: the integrator's one place to adjust.
///
/// Runs `BINARY daemon -c <swanctl_dir>/swanctl.conf --socket <swanctl_dir>/ferroswan.vici`
/// inside the namespace, stdout and stderr to `<log_dir>/<name>-ferroswan.log`, and waits until
/// the socket accepts connections. The daemon is expected to load its credentials from `swanctl_dir`
/// (`x509/`, `x509ca/`, `rsa/`, `ecdsa/`, `pkcs8/`, `private/`) as swanctl would, to initiate
/// children with `start_action = start` by itself, and to answer VICI `list-sas` on the socket.
pub fn start_ferroswan(
    ns: &Netns,
    name: &'static str,
    swanctl_dir: &Path,
    binary: &Path,
) -> Result<RunningGateway, String> {
    let conf = swanctl_dir.join("swanctl.conf");
    let socket = swanctl_dir.join("ferroswan.vici");
    let argv = [
        binary.as_os_str(),
        "daemon".as_ref(),
        "-c".as_ref(),
        conf.as_os_str(),
        "--socket".as_ref(),
        socket.as_os_str(),
    ];
    let process =
        ns.spawn_logged(&argv, &format!("{name}-ferroswan")).map_err(|e| e.to_string())?;
    let log = process.log_path().map(Path::to_path_buf).unwrap_or_default();
    let mut gw = RunningGateway {
        name,
        implementation: Implementation::Ferroswan,
        process,
        socket,
        log,
        swanctl_dir: swanctl_dir.to_owned(),
    };
    wait_for_socket(&mut gw)?;
    Ok(gw)
}

/// Tells a ferroswan initiator to bring child [`CONN`] up, per `how`; nothing to do for
/// [`FerroswanInitiation::StartAction`] (the daemon does it on start-up).
pub fn initiate_ferroswan(
    gw: &RunningGateway,
    binary: &Path,
    how: FerroswanInitiation,
) -> Result<(), String> {
    match how {
        FerroswanInitiation::StartAction => Ok(()),
        FerroswanInitiation::UpCommand => {
            let mut cmd = Command::new(binary);
            cmd.args(["up", CONN, "--socket"]).arg(&gw.socket).stdin(Stdio::null());
            run(&mut cmd).map(drop)
        }
    }
}

/// Runs `swanctl CMD --uri unix://<socket> ARGS…` from the root namespace with the gateway's
/// `SWANCTL_DIR` and `STRONGSWAN_CONF` (`--uri` must follow the command).
pub fn swanctl(gw: &RunningGateway, args: &[&str]) -> Result<Output, String> {
    let Some((command, rest)) = args.split_first() else { return Err("empty swanctl".into()) };
    let mut cmd = Command::new("swanctl");
    cmd.arg(command)
        .arg("--uri")
        .arg(format!("unix://{}", gw.socket.display()))
        .args(rest)
        .env("SWANCTL_DIR", &gw.swanctl_dir)
        .env("STRONGSWAN_CONF", gw.swanctl_dir.join("strongswan.conf"))
        .stdin(Stdio::null());
    cmd.output().map_err(|e| format!("running swanctl: {e}"))
}

/// Waits until the daemon's VICI socket accepts connections (charon creates the file a moment
/// before it listens: a `swanctl` in between gets "Connection refused"); fails early when the
/// daemon exits, and the error then carries the tail of its log (it is not in the case's
/// gateway list yet).
fn wait_for_socket(gw: &mut RunningGateway) -> Result<(), String> {
    let deadline = Instant::now() + SOCKET_TIMEOUT;
    while UnixStream::connect(&gw.socket).is_err() {
        let exited = gw.process.try_wait().map_err(|e| e.to_string())?;
        if exited.is_some() || Instant::now() > deadline {
            let why = match exited {
                Some(status) => format!("exited ({status}) before listening on"),
                None => format!("did not listen within {} s on", SOCKET_TIMEOUT.as_secs()),
            };
            return Err(format!(
                "{} ({}) {why} {}\n---- {} ({}): last {LOG_TAIL_LINES} log lines ----\n{}",
                gw.name,
                gw.implementation,
                gw.socket.display(),
                gw.name,
                gw.implementation,
                gw.log_tail(LOG_TAIL_LINES)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// VICI `list-sas` on `socket` with ferroswan's own client: one message per `list-sa` event,
/// each holding one section named after the connection.
pub fn vici_list_sas(socket: &Path) -> Result<Vec<Message>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(async {
        let mut client = Client::connect(socket).await.map_err(|e| e.to_string())?;
        client.set_timeout(Duration::from_secs(5));
        let (events, _) = client
            .request_streaming("list-sas", &Message::new(), "list-sa")
            .await
            .map_err(|e| e.to_string())?;
        Ok(events)
    })
    .map_err(|e: String| format!("VICI list-sas on {}: {e}", socket.display()))
}

/// The IKE_SA of connection [`CONN`] and its CHILD_SA [`CONN`] when the IKE_SA is
/// `ESTABLISHED` and the child `INSTALLED`; with `not_uniqueid`, only a child with another
/// `uniqueid` (the one a rekeying made).
pub fn established_child(
    sas: &[Message],
    not_uniqueid: Option<&str>,
) -> Option<(Message, Message)> {
    sas.iter().find_map(|event| {
        let ike = event.get_section(CONN)?;
        if ike.get_str("state") != Some("ESTABLISHED") {
            return None;
        }
        let child = ike.get_section("child-sas")?.sections().find_map(|(_, child)| {
            (child.get_str("name") == Some(CONN)
                && child.get_str("state") == Some("INSTALLED")
                && (not_uniqueid.is_none() || child.get_str("uniqueid") != not_uniqueid))
                .then_some(child)
        })?;
        Some((ike.clone(), child.clone()))
    })
}

/// Polls `gw`'s VICI `list-sas` until [`established_child`] finds the CHILD_SA, for up to
/// `timeout`; returns the IKE_SA and CHILD_SA sections.
///
/// This is how "CHILD_SA up" is detected for both implementations (and, with `not_uniqueid`
/// = the old child's `uniqueid`, "CHILD_SA rekeyed").
pub fn wait_child_up(
    gw: &RunningGateway,
    timeout: Duration,
    not_uniqueid: Option<&str>,
) -> Result<(Message, Message), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match gw.list_sas() {
            Ok(sas) => match established_child(&sas, not_uniqueid) {
                Some(found) => return Ok(found),
                None => format!("{sas:?}"),
            },
            Err(e) => e,
        };
        if Instant::now() > deadline {
            return Err(format!(
                "{} ({}): no INSTALLED CHILD_SA '{CONN}'{} after {} s; last list-sas: {last}",
                gw.name,
                gw.implementation,
                not_uniqueid.map(|u| format!(" other than #{u}")).unwrap_or_default(),
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------------
// Running a case
// ---------------------------------------------------------------------------------------------

/// Options shared by all cases of a run.
#[derive(Clone, Debug, Default)]
pub struct HarnessOptions {
    /// The `ferroswan` binary, for cases with a ferroswan side.
    pub ferroswan: Option<PathBuf>,
    /// How a ferroswan initiator is started.
    pub ferroswan_initiation: FerroswanInitiation,
}

/// What a passing case measured.
#[derive(Clone, Debug)]
pub struct CaseReport {
    /// The case name.
    pub name: String,
    /// Wall time of the whole case (topology to teardown).
    pub seconds: f64,
    /// Negotiated IKE_SA algorithms ([`describe_sa`]) as the responder reports them.
    pub ike: String,
    /// Negotiated CHILD_SA algorithms.
    pub child: String,
    /// The TCP transfer's throughput, Mbit/s.
    pub mbit_per_s: f64,
}

/// A failed case: the stage, what went wrong, and the tails of both daemons' logs.
#[derive(Debug)]
pub struct CaseError {
    /// The case name.
    pub case: String,
    /// The stage that failed ("start sun", "initiate", "ping", …).
    pub stage: String,
    /// What went wrong.
    pub detail: String,
    /// `(gateway label, last lines of its log)` for each daemon started.
    pub logs: Vec<(String, String)>,
}

impl fmt::Display for CaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "interop case '{}' failed at {}: {}", self.case, self.stage, self.detail)?;
        for (label, tail) in &self.logs {
            writeln!(f, "---- {label}: last {LOG_TAIL_LINES} log lines ----\n{tail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CaseError {}

/// The gateways of a running case. Field order matters: daemons are dropped (killed) before
/// the topology deletes the namespaces.
struct Running<'a> {
    case: &'a Case,
    gateways: Vec<RunningGateway>,
    topo: Topology,
}

impl Running<'_> {
    fn fail(&self, stage: &str, detail: impl Into<String>) -> Error {
        let logs = self
            .gateways
            .iter()
            .map(|g| (format!("{} ({})", g.name, g.implementation), g.log_tail(LOG_TAIL_LINES)))
            .collect();
        Error::Failed(Box::new(CaseError {
            case: self.case.name.clone(),
            stage: stage.to_owned(),
            detail: detail.into(),
            logs,
        }))
    }
}

/// Runs one case end to end (see the [module documentation](self)); needs root.
pub fn run_case(
    case: &Case,
    certs: &CertStore,
    opts: &HarnessOptions,
) -> Result<CaseReport, Error> {
    let started = Instant::now();
    case.validate()?;
    let expected = (case.expected_ike()?, case.expected_esp()?);
    let early = |stage: &str, detail: String| {
        Error::Failed(Box::new(CaseError {
            case: case.name.clone(),
            stage: stage.into(),
            detail,
            logs: Vec::new(),
        }))
    };
    let binary = match (case.needs_ferroswan(), &opts.ferroswan) {
        (false, _) => None,
        (true, Some(b)) => Some(b.clone()),
        (true, None) => return Err(early("setup", "case needs a ferroswan binary".into())),
    };
    let cert_set =
        case.key_kind().map(|k| certs.get(k)).transpose().map_err(|e| early("pki", e))?;
    let mut builder = Topology::builder();
    if case.nat {
        builder = builder.nat(Nat::MasqueradeRandomPorts);
    }
    let topo = builder.build().map_err(|e| early("topology", e.to_string()))?;
    let mut running = Running { case, gateways: Vec::new(), topo };

    // 1. Configuration of both gateways.
    let configs = gateway_configs(case, &running.topo, opts.ferroswan_initiation)
        .map_err(|e| running.fail("configure", e))?;
    let dirs: Vec<PathBuf> = configs.iter().map(|c| running.topo.log_dir().join(c.name)).collect();
    for (config, dir) in configs.iter().zip(&dirs) {
        write_swanctl_dir(dir, case, config, cert_set.as_ref())
            .map_err(|e| running.fail("configure", e))?;
    }

    // 2. Responder first, so the initiator's first IKE_SA_INIT finds it listening.
    for (config, dir) in configs.iter().zip(&dirs).rev() {
        let ns = if config.initiator { &running.topo.gw_a().ns } else { &running.topo.gw_b().ns };
        let started = match (config.implementation, &binary) {
            (Implementation::Strongswan, _) => start_strongswan(ns, config.name, dir),
            (Implementation::Ferroswan, Some(bin)) => start_ferroswan(ns, config.name, dir, bin),
            (Implementation::Ferroswan, None) => Err("no ferroswan binary".into()),
        };
        match started {
            Ok(gw) => running.gateways.push(gw),
            Err(e) => return Err(running.fail(&format!("start {}", config.name), e)),
        }
    }

    // 3. Initiate.
    let initiator = running.gateways.iter().find(|g| g.name == "moon");
    let initiated = match (initiator, &binary) {
        (Some(gw), _) if gw.implementation == Implementation::Strongswan => {
            swanctl(gw, &["--initiate", "--child", CONN, "--timeout", "30"]).and_then(|out| {
                if out.status.success() {
                    Ok(())
                } else {
                    Err(format!("swanctl --initiate failed:\n{}", output_text(&out)))
                }
            })
        }
        (Some(gw), Some(bin)) => initiate_ferroswan(gw, bin, opts.ferroswan_initiation),
        _ => Err("no initiator running".into()),
    };
    initiated.map_err(|e| running.fail("initiate", e))?;

    // 4. Both sides report the CHILD_SA.
    let mut observed: Vec<Observed> = Vec::new();
    for gw in &running.gateways {
        let sa = wait_child_up(gw, CHILD_UP_TIMEOUT, None)
            .map_err(|e| running.fail("CHILD_SA up", e))?;
        observed.push((gw.name, gw.implementation, sa));
    }

    // 4b. Behind the NAT, strongSwan must have seen it (libipsec fakes "remote host is behind
    //     NAT" everywhere, so only these two are real evidence).
    if case.nat {
        check_nat(&running, &observed)?;
    }

    // 5. Traffic both ways, both inner families.
    traffic(&running)?;
    let t = {
        let (Some(lan_a), Some(lan_b)) = (running.topo.lan_a(), running.topo.lan_b()) else {
            return Err(running.fail("topology", "no LAN hosts"));
        };
        transfer(&lan_a.ns, &lan_b.ns, lan_b.eth0.v4.into(), TRANSFER_MIB)
            .map_err(|e| running.fail("TCP transfer", e.to_string()))?
    };

    // 6. Negotiated algorithms, on every strongSwan side. The CHILD_SA made in IKE_AUTH has
    //    no key exchange of its own (RFC 7296 §1.2), so a PFS group shows only after a rekey.
    let (ike_expected, esp_expected) = expected;
    let esp_in_auth = Expected { dh: None, ..esp_expected.clone() };
    check_algorithms(&running, &observed, &ike_expected, &esp_in_auth)?;
    if esp_expected.dh.is_some() {
        observed = rekey_child(&running, &observed)?;
        check_algorithms(&running, &observed, &ike_expected, &esp_expected)?;
        traffic(&running)?;
    }
    let (ike, child) = observed
        .iter()
        .find(|(name, ..)| *name == "sun")
        .map(|(_, _, (ike, child))| (describe_sa(ike), describe_sa(child)))
        .unwrap_or_default();

    // 7. Teardown (errors here are real: a namespace we cannot delete would leak).
    let Running { gateways, topo, .. } = running;
    drop(gateways);
    topo.close().map_err(|e| early("teardown", e.to_string()))?;
    Ok(CaseReport {
        name: case.name.clone(),
        seconds: started.elapsed().as_secs_f64(),
        ike,
        child,
        mbit_per_s: t.mbit_per_s(),
    })
}

/// `(gateway name, implementation, (IKE_SA, CHILD_SA))` as reported over VICI.
type Observed = (&'static str, Implementation, (Message, Message));

/// Three pings lan_a → lan_b and lan_b → lan_a, IPv4 and IPv6; all must be answered.
fn traffic(running: &Running<'_>) -> Result<(), Error> {
    let (Some(lan_a), Some(lan_b)) = (running.topo.lan_a(), running.topo.lan_b()) else {
        return Err(running.fail("topology", "no LAN hosts"));
    };
    for (from, to, label) in [(lan_a, lan_b, "lan_a -> lan_b"), (lan_b, lan_a, "lan_b -> lan_a")] {
        for dst in [IpAddr::from(to.eth0.v4), IpAddr::from(to.eth0.v6)] {
            let p = from.ns.ping(dst, 3).map_err(|e| running.fail("ping", e.to_string()))?;
            if p.received < 3 {
                return Err(running.fail(
                    "ping",
                    format!("{label} ({dst}): {} of {} replies", p.received, p.transmitted),
                ));
            }
        }
    }
    Ok(())
}

/// NAT cases: a strongSwan initiator reports `nat-local = yes`, a strongSwan responder sees the
/// initiator at the NAT router's outside address.
fn check_nat(running: &Running<'_>, observed: &[Observed]) -> Result<(), Error> {
    let seen = running.topo.gw_a_as_seen_by_gw_b();
    let v6 = running.case.family == Family::V6;
    let nat_addr = if v6 { IpAddr::from(seen.v6) } else { IpAddr::from(seen.v4) }.to_string();
    for (name, implementation, (ike, _)) in observed {
        if *implementation != Implementation::Strongswan {
            continue;
        }
        let (key, want) =
            if *name == "moon" { ("nat-local", "yes") } else { ("remote-host", nat_addr.as_str()) };
        if ike.get_str(key) != Some(want) {
            return Err(running.fail(
                &format!("NAT on {name}"),
                format!("{key}: expected {want}, got {:?}; IKE_SA: {ike:?}", ike.get_str(key)),
            ));
        }
    }
    Ok(())
}

/// Compares every strongSwan side's IKE_SA and CHILD_SA with the expectations.
fn check_algorithms(
    running: &Running<'_>,
    observed: &[Observed],
    ike: &Expected,
    esp: &Expected,
) -> Result<(), Error> {
    for (name, implementation, (ike_sa, child_sa)) in observed {
        if *implementation != Implementation::Strongswan {
            continue;
        }
        let checks = [ike.check("IKE_SA", ike_sa), esp.check("CHILD_SA", child_sa)];
        let errors: Vec<String> = checks.into_iter().filter_map(Result::err).collect();
        if !errors.is_empty() {
            return Err(running.fail(&format!("algorithms on {name}"), errors.join("\n")));
        }
    }
    Ok(())
}

/// Rekeys the CHILD_SA from a strongSwan side (`swanctl --rekey --child`; the initiator when it
/// is strongSwan) and waits until every gateway reports a new INSTALLED child.
fn rekey_child(running: &Running<'_>, observed: &[Observed]) -> Result<Vec<Observed>, Error> {
    let Some(gw) = running
        .gateways
        .iter()
        .filter(|g| g.implementation == Implementation::Strongswan)
        .min_by_key(|g| g.name != "moon")
    else {
        return Err(running.fail("rekey", "PFS is checked by rekeying from a strongSwan side"));
    };
    let out = swanctl(gw, &["--rekey", "--child", CONN]).map_err(|e| running.fail("rekey", e))?;
    if !out.status.success() {
        return Err(
            running.fail("rekey", format!("swanctl --rekey failed:\n{}", output_text(&out)))
        );
    }
    let mut rekeyed = Vec::new();
    for gw in &running.gateways {
        let old = observed
            .iter()
            .find(|(name, ..)| *name == gw.name)
            .and_then(|(_, _, (_, child))| child.get_str("uniqueid"));
        let sa = wait_child_up(gw, CHILD_UP_TIMEOUT, old)
            .map_err(|e| running.fail("CHILD_SA rekeyed", e))?;
        rekeyed.push((gw.name, gw.implementation, sa));
    }
    Ok(rekeyed)
}

/// The two gateways' configurations: `[moon (gw_a, initiator), sun (gw_b, responder)]`.
pub fn gateway_configs(
    case: &Case,
    topo: &Topology,
    ferroswan_initiation: FerroswanInitiation,
) -> Result<[GatewayConfig; 2], String> {
    let v6 = case.family == Family::V6;
    let addr = |ifa: &IfAddrs| -> IpAddr { if v6 { ifa.v6.into() } else { ifa.v4.into() } };
    let (ga, gb) = (topo.gw_a(), topo.gw_b());
    let lan = |g: &Gateway| g.lan0.clone().ok_or_else(|| "topology without LANs".to_owned());
    // What each side sees of the other: gw_b sees gw_a through the NAT, gw_a sees gw_b as is.
    let a_addr = addr(&ga.wan0);
    let a_seen = addr(&topo.gw_a_as_seen_by_gw_b());
    let b_addr = addr(&gb.wan0);
    let id = |name: &str, own: IpAddr| match case.ids {
        IdKind::Fqdn => gateway_fqdn(name),
        IdKind::Ip => own.to_string(),
    };
    let moon = GatewayConfig {
        name: "moon",
        peer: "sun",
        implementation: case.initiator,
        initiator: true,
        local_addr: a_addr,
        remote_addr: b_addr,
        local_id: id("moon", a_addr),
        remote_id: id("sun", b_addr),
        local_lan: lan(ga)?,
        remote_lan: lan(gb)?,
        ferroswan_initiation,
        extra: ExtraSettings::default(),
    };
    let sun = GatewayConfig {
        name: "sun",
        peer: "moon",
        implementation: case.responder,
        initiator: false,
        local_addr: b_addr,
        remote_addr: a_seen,
        local_id: id("sun", b_addr),
        remote_id: id("moon", a_addr),
        local_lan: lan(gb)?,
        remote_lan: lan(ga)?,
        ferroswan_initiation,
        extra: ExtraSettings::default(),
    };
    Ok([moon, sun])
}

/// Runs a command; an unsuccessful exit is an error with its output.
fn run(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd.output().map_err(|e| format!("running {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!("{cmd:?} failed ({}):\n{}", out.status, output_text(&out)))
    }
}

fn output_text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
        .trim()
        .to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn expectations_from_proposals() {
        let e = Expected::from_proposal("aes256-sha384-ecp256", true).unwrap();
        assert_eq!(e.encr, "AES_CBC");
        assert_eq!(e.encr_keysize, Some(256));
        assert_eq!(e.integ.as_deref(), Some("HMAC_SHA2_384_192"));
        assert_eq!(e.prf.as_deref(), Some("PRF_HMAC_SHA2_384"));
        assert_eq!(e.dh.as_deref(), Some("ECP_256"));
        let e = Expected::from_proposal("chacha20poly1305-prfsha256-x25519", true).unwrap();
        assert_eq!((e.encr.as_str(), e.encr_keysize, e.integ), ("CHACHA20_POLY1305", None, None));
        let e = Expected::from_proposal("aes128gcm16-esn", false).unwrap();
        assert!(e.esn && e.dh.is_none() && e.prf.is_none());
        let e = Expected::from_proposal("aes256-sha512-modp3072", false).unwrap();
        assert_eq!(e.dh.as_deref(), Some("MODP_3072"));
    }

    #[test]
    fn bad_proposals_are_refused() {
        for (p, ike) in [
            ("aes128gcm16-x25519", true),
            ("aes128-modp2048", true),
            ("aes128-sha256", true),
            ("aes128gcm16-sha256", false),
            ("aes128-sha256-prfsha256", false),
            ("aes128-sha256-foo", false),
            ("aes128,aes256", false),
            ("aes128-aes256-sha1", false),
        ] {
            assert!(Expected::from_proposal(p, ike).is_err(), "{p}");
        }
    }

    #[test]
    fn check_reports_every_difference() {
        let e = Expected::from_proposal("aes128gcm16-esn", false).unwrap();
        let sa = Message::new().kv("encr-alg", "AES_GCM_16").kv("encr-keysize", "256");
        let err = e.check("CHILD_SA", &sa).unwrap_err();
        assert_eq!(
            err,
            "CHILD_SA: encr-keysize: expected 128, got 256; esn: expected 1, got (none)"
        );
        let sa = sa.kv("encr-keysize", "128").kv("esn", "1");
        assert_eq!(e.check("CHILD_SA", &sa), Ok(()));
        assert_eq!(describe_sa(&sa), "AES_GCM_16-128/ESN");
    }

    #[test]
    fn matrix_validation() {
        let ok = "[[case]]\nname = \"a\"\nauth = \"psk\"\nike = \"aes128-sha256-modp2048\"\n\
                  esp = \"aes128-sha256\"\ninitiator = \"strongswan\"\nresponder = \"strongswan\"\n";
        let m = Matrix::parse(ok).unwrap();
        assert_eq!(m.enabled().count(), 1);
        let dup = format!("{ok}{ok}");
        assert!(Matrix::parse(&dup).unwrap_err().to_string().contains("duplicate"));
        let empty_reason = format!("{ok}disabled = \" \"\n");
        assert!(Matrix::parse(&empty_reason).unwrap_err().to_string().contains("reason"));
        let typo = format!("{ok}encapp = true\n");
        assert!(Matrix::parse(&typo).is_err());
        let ip_cert = ok.replace("psk", "rsa") + "ids = \"ip\"\n";
        assert!(Matrix::parse(&ip_cert).unwrap_err().to_string().contains("PSK"));
    }

    #[test]
    fn established_child_needs_both_states() {
        let child =
            |state: &str| Message::new().kv("name", CONN).kv("state", state).kv("uniqueid", "8");
        let event = |ike: &str, ch: &str| {
            Message::new().section(
                CONN,
                Message::new()
                    .kv("state", ike)
                    .section("child-sas", Message::new().section("net-1", child(ch))),
            )
        };
        assert!(established_child(&[event("CONNECTING", "INSTALLED")], None).is_none());
        assert!(established_child(&[event("ESTABLISHED", "INSTALLING")], None).is_none());
        assert!(established_child(&[event("ESTABLISHED", "INSTALLED")], None).is_some());
        let rekeyed = [event("ESTABLISHED", "INSTALLED")];
        assert!(established_child(&rekeyed, Some("7")).is_some());
    }
}
