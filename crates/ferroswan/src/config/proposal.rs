//! strongSwan proposal keywords (`esp_proposals`, `proposals`) → IKEv2 transforms.
//!
//! A proposal is a `-`-separated list of keywords (`aes256gcm16-prfsha384-ecp384`); a
//! proposal string is a `,`-separated list of proposals, tried in order. Several keywords of
//! one transform type in one proposal are alternatives (`aes128-aes256-sha256-sha1` offers
//! either cipher with either MAC). The vocabulary is strongSwan's
//! (`src/libstrongswan/crypto/proposal/proposal_keywords_static.txt`), matched case-sensitively
//! as strongSwan's gperf table does; only the word `default` is case-insensitive (vici's
//! `strcaseeq`). `ke1_`…`ke7_` in front of a key exchange keyword names an additional key
//! exchange (RFC 9370), as in strongSwan 6.
//!
//! The checks follow strongSwan's `check_proposal()`: an encryption algorithm is mandatory;
//! AEAD and classic ciphers cannot share a proposal; with AEAD ciphers integrity algorithms
//! are dropped; PRF keywords in ESP proposals are dropped; an IKE proposal needs integrity
//! with a classic cipher, a PRF (taken from the integrity algorithm when not written, as
//! strongSwan does) and a key exchange (`none` is dropped from IKE proposals).
//!
//! # `default`
//!
//! strongSwan 5.9/6.0 expands `default` (vici `add_default_proposals`) as follows; the key
//! exchange list is every supported method of at least 128-bit strength (ECP 256/384/521,
//! brainpool 256/384/512, Curve25519, Curve448, then MODP 3072…8192, then MODP 2048).
//! - ESP: first `aes128gcm16-aes192gcm16-aes256gcm16-noesn` (+ optional KE, `none` allowed),
//!   then `aes128-aes192-aes256-sha256-sha384-sha512-sha1-aesxcbc-noesn` (+ optional KE).
//! - IKE: first the classic proposal (AES-CBC/CTR and Camellia of all sizes, 3DES; SHA-256/
//!   384/512, AES-XCBC, AES-CMAC, SHA-1; PRF SHA-256/384/512, AES-XCBC, AES-CMAC, SHA-1; KEs),
//!   then the AEAD one (AES-GCM/CCM-16 all sizes, ChaCha20-Poly1305, then the 8/12-byte ICV
//!   variants; same PRFs and KEs).
//!
//! ferroswan's `default` ([`default_esp_proposals`], [`default_ike_proposals`]) has the same
//! shape and order but offers only what ferroswan implements: no 3DES, Camellia, CCM, GCM-8/12,
//! AES-XCBC/CMAC, brainpool, Curve448 or MODP 6144/8192.

use core::fmt;

use ferroswan_proto::crypto::{EspSuite, SuiteError, encr_is_aead};
use ferroswan_proto::wire::{EncrId, IntegId, KeId, PrfId};

/// strongSwan's private-use number for HMAC-SHA-256 truncated to 96 bits (`sha256_96`), the
/// draft-era truncation of old Linux kernels. It has no IANA number and is never sent in IKE.
pub const AUTH_HMAC_SHA2_256_96: IntegId = IntegId(1024);

/// What a proposal keyword stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transform {
    /// An encryption algorithm with its key size in bits (`0` for fixed-key algorithms).
    Encr(EncrId, u16),
    /// An integrity algorithm.
    Integ(IntegId),
    /// A pseudorandom function (IKE only).
    Prf(PrfId),
    /// A key exchange method ([`KeId::NONE`] for `none`).
    Ke(KeId),
    /// An additional key exchange (RFC 9370): its index (1–7) and method.
    AdditionalKe(u8, KeId),
    /// Extended sequence numbers on (`esn`) or off (`noesn`).
    Esn(bool),
}

/// One entry of the keyword table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keyword {
    /// The keyword as written in a proposal.
    pub name: &'static str,
    /// What it stands for.
    pub transform: Transform,
    /// Whether the algorithm is legacy (3DES, DES, MD5, MODP ≤ 1536): accepted because it was
    /// named, but callers should warn about it.
    pub legacy: bool,
}

const fn kw(name: &'static str, transform: Transform) -> Keyword {
    Keyword { name, transform, legacy: false }
}

const fn legacy(name: &'static str, transform: Transform) -> Keyword {
    Keyword { name, transform, legacy: true }
}

const fn encr(id: EncrId, bits: u16) -> Transform {
    Transform::Encr(id, bits)
}

const fn integ(id: IntegId) -> Transform {
    Transform::Integ(id)
}

const fn prf(id: PrfId) -> Transform {
    Transform::Prf(id)
}

const fn ke(id: u16) -> Transform {
    Transform::Ke(KeId(id))
}

/// Every keyword ferroswan knows, in strongSwan's table order.
pub static KEYWORDS: &[Keyword] = &[
    kw("null", encr(EncrId::ENCR_NULL, 0)),
    legacy("des", encr(EncrId(2), 0)),
    legacy("3des", encr(EncrId::ENCR_3DES, 0)),
    kw("aes", encr(EncrId::ENCR_AES_CBC, 128)),
    kw("aes128", encr(EncrId::ENCR_AES_CBC, 128)),
    kw("aes192", encr(EncrId::ENCR_AES_CBC, 192)),
    kw("aes256", encr(EncrId::ENCR_AES_CBC, 256)),
    kw("aes128ctr", encr(EncrId::ENCR_AES_CTR, 128)),
    kw("aes192ctr", encr(EncrId::ENCR_AES_CTR, 192)),
    kw("aes256ctr", encr(EncrId::ENCR_AES_CTR, 256)),
    kw("aes128ccm8", encr(EncrId::ENCR_AES_CCM_8, 128)),
    kw("aes128ccm64", encr(EncrId::ENCR_AES_CCM_8, 128)),
    kw("aes128ccm12", encr(EncrId::ENCR_AES_CCM_12, 128)),
    kw("aes128ccm96", encr(EncrId::ENCR_AES_CCM_12, 128)),
    kw("aes128ccm16", encr(EncrId::ENCR_AES_CCM_16, 128)),
    kw("aes128ccm128", encr(EncrId::ENCR_AES_CCM_16, 128)),
    kw("aes128ccm", encr(EncrId::ENCR_AES_CCM_16, 128)),
    kw("aes192ccm8", encr(EncrId::ENCR_AES_CCM_8, 192)),
    kw("aes192ccm64", encr(EncrId::ENCR_AES_CCM_8, 192)),
    kw("aes192ccm12", encr(EncrId::ENCR_AES_CCM_12, 192)),
    kw("aes192ccm96", encr(EncrId::ENCR_AES_CCM_12, 192)),
    kw("aes192ccm16", encr(EncrId::ENCR_AES_CCM_16, 192)),
    kw("aes192ccm128", encr(EncrId::ENCR_AES_CCM_16, 192)),
    kw("aes192ccm", encr(EncrId::ENCR_AES_CCM_16, 192)),
    kw("aes256ccm8", encr(EncrId::ENCR_AES_CCM_8, 256)),
    kw("aes256ccm64", encr(EncrId::ENCR_AES_CCM_8, 256)),
    kw("aes256ccm12", encr(EncrId::ENCR_AES_CCM_12, 256)),
    kw("aes256ccm96", encr(EncrId::ENCR_AES_CCM_12, 256)),
    kw("aes256ccm16", encr(EncrId::ENCR_AES_CCM_16, 256)),
    kw("aes256ccm128", encr(EncrId::ENCR_AES_CCM_16, 256)),
    kw("aes256ccm", encr(EncrId::ENCR_AES_CCM_16, 256)),
    kw("aes128gcm8", encr(EncrId::ENCR_AES_GCM_8, 128)),
    kw("aes128gcm64", encr(EncrId::ENCR_AES_GCM_8, 128)),
    kw("aes128gcm12", encr(EncrId::ENCR_AES_GCM_12, 128)),
    kw("aes128gcm96", encr(EncrId::ENCR_AES_GCM_12, 128)),
    kw("aes128gcm16", encr(EncrId::ENCR_AES_GCM_16, 128)),
    kw("aes128gcm128", encr(EncrId::ENCR_AES_GCM_16, 128)),
    kw("aes128gcm", encr(EncrId::ENCR_AES_GCM_16, 128)),
    kw("aes192gcm8", encr(EncrId::ENCR_AES_GCM_8, 192)),
    kw("aes192gcm64", encr(EncrId::ENCR_AES_GCM_8, 192)),
    kw("aes192gcm12", encr(EncrId::ENCR_AES_GCM_12, 192)),
    kw("aes192gcm96", encr(EncrId::ENCR_AES_GCM_12, 192)),
    kw("aes192gcm16", encr(EncrId::ENCR_AES_GCM_16, 192)),
    kw("aes192gcm128", encr(EncrId::ENCR_AES_GCM_16, 192)),
    kw("aes192gcm", encr(EncrId::ENCR_AES_GCM_16, 192)),
    kw("aes256gcm8", encr(EncrId::ENCR_AES_GCM_8, 256)),
    kw("aes256gcm64", encr(EncrId::ENCR_AES_GCM_8, 256)),
    kw("aes256gcm12", encr(EncrId::ENCR_AES_GCM_12, 256)),
    kw("aes256gcm96", encr(EncrId::ENCR_AES_GCM_12, 256)),
    kw("aes256gcm16", encr(EncrId::ENCR_AES_GCM_16, 256)),
    kw("aes256gcm128", encr(EncrId::ENCR_AES_GCM_16, 256)),
    kw("aes256gcm", encr(EncrId::ENCR_AES_GCM_16, 256)),
    kw("aes128gmac", encr(EncrId::ENCR_NULL_AUTH_AES_GMAC, 128)),
    kw("aes192gmac", encr(EncrId::ENCR_NULL_AUTH_AES_GMAC, 192)),
    kw("aes256gmac", encr(EncrId::ENCR_NULL_AUTH_AES_GMAC, 256)),
    kw("chacha20poly1305", encr(EncrId::ENCR_CHACHA20_POLY1305, 0)),
    kw("sha", integ(IntegId::AUTH_HMAC_SHA1_96)),
    kw("sha1", integ(IntegId::AUTH_HMAC_SHA1_96)),
    kw("sha1_160", integ(IntegId(7))),
    kw("sha256", integ(IntegId::AUTH_HMAC_SHA2_256_128)),
    kw("sha2_256", integ(IntegId::AUTH_HMAC_SHA2_256_128)),
    kw("sha256_96", integ(AUTH_HMAC_SHA2_256_96)),
    kw("sha2_256_96", integ(AUTH_HMAC_SHA2_256_96)),
    kw("sha384", integ(IntegId::AUTH_HMAC_SHA2_384_192)),
    kw("sha2_384", integ(IntegId::AUTH_HMAC_SHA2_384_192)),
    kw("sha512", integ(IntegId::AUTH_HMAC_SHA2_512_256)),
    kw("sha2_512", integ(IntegId::AUTH_HMAC_SHA2_512_256)),
    legacy("md5", integ(IntegId::AUTH_HMAC_MD5_96)),
    legacy("md5_128", integ(IntegId(6))),
    kw("aesxcbc", integ(IntegId::AUTH_AES_XCBC_96)),
    kw("aescmac", integ(IntegId::AUTH_AES_CMAC_96)),
    kw("prfsha1", prf(PrfId::PRF_HMAC_SHA1)),
    kw("prfsha256", prf(PrfId::PRF_HMAC_SHA2_256)),
    kw("prfsha384", prf(PrfId::PRF_HMAC_SHA2_384)),
    kw("prfsha512", prf(PrfId::PRF_HMAC_SHA2_512)),
    legacy("prfmd5", prf(PrfId::PRF_HMAC_MD5)),
    kw("prfaesxcbc", prf(PrfId::PRF_AES128_XCBC)),
    kw("prfaescmac", prf(PrfId::PRF_AES128_CMAC)),
    kw("none", ke(0)),
    kw("modpnone", ke(0)),
    legacy("modp768", ke(1)),
    legacy("modp1024", ke(2)),
    legacy("modp1536", ke(5)),
    kw("modp2048", ke(14)),
    kw("modp3072", ke(15)),
    kw("modp4096", ke(16)),
    kw("modp6144", ke(17)),
    kw("modp8192", ke(18)),
    kw("ecp192", ke(25)),
    kw("ecp224", ke(26)),
    kw("ecp256", ke(19)),
    kw("ecp384", ke(20)),
    kw("ecp521", ke(21)),
    legacy("modp1024s160", ke(22)),
    kw("modp2048s224", ke(23)),
    kw("modp2048s256", ke(24)),
    kw("ecp224bp", ke(27)),
    kw("ecp256bp", ke(28)),
    kw("ecp384bp", ke(29)),
    kw("ecp512bp", ke(30)),
    kw("curve25519", ke(31)),
    kw("x25519", ke(31)),
    kw("curve448", ke(32)),
    kw("x448", ke(32)),
    kw("mlkem512", ke(35)),
    kw("mlkem768", ke(36)),
    kw("mlkem1024", ke(37)),
    kw("noesn", Transform::Esn(false)),
    kw("esn", Transform::Esn(true)),
];

/// strongSwan keywords (prefixes) for algorithms ferroswan does not implement, so the error
/// can say "not supported" rather than "unknown".
const UNSUPPORTED_PREFIXES: &[&str] = &[
    "blowfish",
    "camellia",
    "cast128",
    "serpent",
    "twofish",
    "gost",
    "modpnull",
    "chacha20poly1305compat",
    "prfcamelliaxcbc",
];

/// Looks up one keyword (with an optional `ke1_`…`ke7_` prefix); `None` when unknown.
pub fn lookup(word: &str) -> Option<(Transform, bool)> {
    if let Some((prefix, rest)) = word.split_once('_')
        && let Some(index) = prefix.strip_prefix("ke").and_then(|n| n.parse::<u8>().ok())
        && (1..=7).contains(&index)
        && !prefix.starts_with("ke0")
    {
        let k = KEYWORDS.iter().find(|k| k.name == rest)?;
        return match k.transform {
            Transform::Ke(id) => Some((Transform::AdditionalKe(index, id), k.legacy)),
            _ => None,
        };
    }
    KEYWORDS.iter().find(|k| k.name == word).map(|k| (k.transform, k.legacy))
}

/// Why a proposal string was refused. `Display` says what; [`ProposalError::hint`] says what
/// would be valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProposalError {
    /// A keyword is not in the table.
    #[error("unknown algorithm '{keyword}' in proposal '{proposal}'")]
    UnknownKeyword {
        /// The keyword.
        keyword: String,
        /// The proposal it appeared in.
        proposal: String,
        /// Close valid keywords.
        suggestions: Vec<&'static str>,
    },
    /// A strongSwan keyword for an algorithm ferroswan does not implement.
    #[error("algorithm '{keyword}' in proposal '{proposal}' is not supported by ferroswan")]
    UnsupportedKeyword {
        /// The keyword.
        keyword: String,
        /// The proposal it appeared in.
        proposal: String,
    },
    /// An empty proposal (`aes128--sha256`, `a,,b`, or nothing at all).
    #[error("empty algorithm or proposal in '{0}'")]
    Empty(String),
    /// No encryption algorithm.
    #[error("proposal '{0}' has no encryption algorithm")]
    MissingEncr(String),
    /// AEAD and classic ciphers together.
    #[error("proposal '{0}' mixes AEAD (combined-mode) and classic encryption algorithms")]
    MixedAead(String),
    /// IKE, classic cipher, no integrity algorithm.
    #[error("IKE proposal '{0}' has a classic cipher but no integrity algorithm")]
    MissingInteg(String),
    /// IKE without a PRF (and none derivable from an integrity algorithm).
    #[error("IKE proposal '{0}' has no pseudorandom function")]
    MissingPrf(String),
    /// IKE without a key exchange method.
    #[error("IKE proposal '{0}' has no key exchange method")]
    MissingKe(String),
    /// A keyword of a type this protocol does not negotiate.
    #[error("'{keyword}' does not belong in an {protocol} proposal ('{proposal}')")]
    WrongType {
        /// The keyword.
        keyword: String,
        /// `IKE` or `ESP`.
        protocol: &'static str,
        /// The proposal it appeared in.
        proposal: String,
    },
    /// A manually keyed SA needs exactly one algorithm of each kind.
    #[error("a manually keyed SA needs a single algorithm choice: {0}")]
    NotSingle(String),
    /// The single suite is not one ferroswan's ESP engine can run.
    #[error("ESP suite not usable: {0}")]
    Suite(#[from] SuiteError),
}

impl ProposalError {
    /// What would be valid, for the error's hint.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::UnknownKeyword { suggestions, .. } if !suggestions.is_empty() => {
                Some(format!("did you mean {}?", suggestions.join(", ")))
            }
            Self::UnknownKeyword { .. } => Some(
                "see strongSwan's proposal keywords, e.g. aes256gcm16, aes128-sha256, \
                 chacha20poly1305, ecp256, x25519"
                    .to_owned(),
            ),
            Self::UnsupportedKeyword { .. } => Some(
                "use AES-GCM (aes128gcm16, aes256gcm16), ChaCha20-Poly1305 or AES-CBC/CTR with \
                 SHA-2"
                    .to_owned(),
            ),
            Self::Empty(_) => Some("write proposals like 'aes128-sha256,aes256gcm16'".to_owned()),
            Self::MissingEncr(_) => Some("add a cipher such as aes128gcm16 or aes128".to_owned()),
            Self::MixedAead(_) => {
                Some("put AEAD and classic ciphers in separate proposals: 'aes128gcm16,aes128-sha256'".to_owned())
            }
            Self::MissingInteg(_) => Some("add an integrity algorithm such as sha256".to_owned()),
            Self::MissingPrf(_) => {
                Some("add a PRF such as prfsha256 (AEAD ciphers have no integrity algorithm to take it from)".to_owned())
            }
            Self::MissingKe(_) => Some("add a key exchange method such as ecp256 or x25519".to_owned()),
            Self::WrongType { .. } => None,
            Self::NotSingle(_) => Some("write one proposal like 'aes128gcm16' or 'aes128-sha256'".to_owned()),
            Self::Suite(SuiteError::MissingInteg) => Some("add an integrity algorithm such as sha256".to_owned()),
            Self::Suite(_) => Some(
                "supported: aes{128,192,256}gcm16, chacha20poly1305, aes{128,192,256}[ctr] or \
                 null with sha1/sha256/sha384/sha512 (3des, md5 as legacy)"
                    .to_owned(),
            ),
        }
    }
}

/// One ESP (or AH) proposal: alternatives per transform type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EspProposal {
    /// Encryption algorithms with key size in bits (`0` for fixed-key ones).
    pub encr: Vec<(EncrId, u16)>,
    /// Integrity algorithms (empty with AEAD ciphers).
    pub integ: Vec<IntegId>,
    /// Key exchange methods for PFS (empty: no PFS; may contain [`KeId::NONE`]: optional).
    pub ke: Vec<KeId>,
    /// Additional key exchanges (RFC 9370): index 1–7 and method, in the order written.
    pub additional_ke: Vec<(u8, KeId)>,
    /// ESN choices as written; empty when the proposal names neither `esn` nor `noesn`, which
    /// strongSwan (and we) treat as `noesn` (see [`EspProposal::esn_options`]).
    pub esn: Vec<bool>,
    /// The legacy keywords used (3DES, MD5, MODP ≤ 1536…), for a warning.
    pub legacy: Vec<&'static str>,
}

impl EspProposal {
    /// The ESN choices to negotiate: as written, or `[false]` when none was written.
    pub fn esn_options(&self) -> Vec<bool> {
        if self.esn.is_empty() { vec![false] } else { self.esn.clone() }
    }
}

/// One IKE proposal: alternatives per transform type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IkeProposal {
    /// Encryption algorithms with key size in bits (`0` for fixed-key ones).
    pub encr: Vec<(EncrId, u16)>,
    /// Integrity algorithms (empty with AEAD ciphers).
    pub integ: Vec<IntegId>,
    /// Pseudorandom functions (taken from the integrity algorithms when none was written).
    pub prf: Vec<PrfId>,
    /// Key exchange methods (never [`KeId::NONE`]).
    pub ke: Vec<KeId>,
    /// Additional key exchanges (RFC 9370): index 1–7 and method, in the order written.
    pub additional_ke: Vec<(u8, KeId)>,
    /// The legacy keywords used, for a warning.
    pub legacy: Vec<&'static str>,
}

/// The transforms of one proposal, before protocol-specific checks.
#[derive(Default)]
struct Parsed {
    encr: Vec<(EncrId, u16)>,
    integ: Vec<IntegId>,
    prf: Vec<PrfId>,
    ke: Vec<KeId>,
    additional_ke: Vec<(u8, KeId)>,
    esn: Vec<bool>,
    legacy: Vec<&'static str>,
    /// First ESN keyword, to name it in an IKE error.
    esn_keyword: Option<String>,
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

fn parse_one(proposal: &str) -> Result<Parsed, ProposalError> {
    let mut p = Parsed::default();
    for word in proposal.split('-').map(str::trim) {
        if word.is_empty() {
            return Err(ProposalError::Empty(proposal.to_owned()));
        }
        let Some((transform, is_legacy)) = lookup(word) else {
            if UNSUPPORTED_PREFIXES.iter().any(|pre| word.starts_with(pre)) {
                return Err(ProposalError::UnsupportedKeyword {
                    keyword: word.to_owned(),
                    proposal: proposal.to_owned(),
                });
            }
            return Err(ProposalError::UnknownKeyword {
                keyword: word.to_owned(),
                proposal: proposal.to_owned(),
                suggestions: suggest(word),
            });
        };
        if is_legacy {
            let base = match word.split_once('_') {
                Some((pre, rest))
                    if matches!(transform, Transform::AdditionalKe(..))
                        && pre.starts_with("ke") =>
                {
                    rest
                }
                _ => word,
            };
            if let Some(k) = KEYWORDS.iter().find(|k| k.name == base) {
                push_unique(&mut p.legacy, k.name);
            }
        }
        match transform {
            Transform::Encr(id, bits) => push_unique(&mut p.encr, (id, bits)),
            Transform::Integ(id) => push_unique(&mut p.integ, id),
            Transform::Prf(id) => push_unique(&mut p.prf, id),
            Transform::Ke(id) => push_unique(&mut p.ke, id),
            Transform::AdditionalKe(i, id) => push_unique(&mut p.additional_ke, (i, id)),
            Transform::Esn(on) => {
                p.esn_keyword.get_or_insert_with(|| word.to_owned());
                push_unique(&mut p.esn, on);
            }
        }
    }
    if p.encr.is_empty() {
        return Err(ProposalError::MissingEncr(proposal.to_owned()));
    }
    let aead = p.encr.iter().filter(|(id, _)| encr_is_aead(*id)).count();
    if aead != 0 && aead != p.encr.len() {
        return Err(ProposalError::MixedAead(proposal.to_owned()));
    }
    if aead != 0 {
        // strongSwan: "if all encryption algorithms in the proposal are AEADs, we MUST NOT
        // propose any integrity algorithms".
        p.integ.clear();
    }
    Ok(p)
}

/// Splits a proposal list on `,` (swanctl does this before handing items to vici).
fn items(list: &str) -> Result<Vec<&str>, ProposalError> {
    let items: Vec<&str> = list.split(',').map(str::trim).collect();
    if items.iter().any(|i| i.is_empty()) {
        return Err(ProposalError::Empty(list.to_owned()));
    }
    Ok(items)
}

/// Parses an `esp_proposals` value (a `,`-separated list; `default` expands to
/// [`default_esp_proposals`]).
pub fn parse_esp_proposals(list: &str) -> Result<Vec<EspProposal>, ProposalError> {
    let mut out = Vec::new();
    for item in items(list)? {
        if item.eq_ignore_ascii_case("default") {
            out.extend(default_esp_proposals());
            continue;
        }
        let p = parse_one(item)?;
        // strongSwan drops PRFs from ESP/AH proposals; we do the same.
        out.push(EspProposal {
            encr: p.encr,
            integ: p.integ,
            ke: p.ke,
            additional_ke: p.additional_ke,
            esn: p.esn,
            legacy: p.legacy,
        });
    }
    Ok(out)
}

/// Parses an IKE `proposals` value (a `,`-separated list; `default` expands to
/// [`default_ike_proposals`]).
pub fn parse_ike_proposals(list: &str) -> Result<Vec<IkeProposal>, ProposalError> {
    let mut out = Vec::new();
    for item in items(list)? {
        if item.eq_ignore_ascii_case("default") {
            out.extend(default_ike_proposals());
            continue;
        }
        let mut p = parse_one(item)?;
        if let Some(keyword) = p.esn_keyword.take() {
            return Err(ProposalError::WrongType {
                keyword,
                protocol: "IKE",
                proposal: item.to_owned(),
            });
        }
        if p.integ.is_empty() && !p.encr.iter().any(|(id, _)| encr_is_aead(*id)) {
            return Err(ProposalError::MissingInteg(item.to_owned()));
        }
        if p.prf.is_empty() {
            // strongSwan's integ_prf_map: the PRF of the integrity algorithm's hash.
            for integ in &p.integ {
                if let Some(prf) = prf_for_integ(*integ) {
                    push_unique(&mut p.prf, prf);
                }
            }
        }
        if p.prf.is_empty() {
            return Err(ProposalError::MissingPrf(item.to_owned()));
        }
        p.ke.retain(|k| *k != KeId::NONE);
        if p.ke.is_empty() {
            return Err(ProposalError::MissingKe(item.to_owned()));
        }
        out.push(IkeProposal {
            encr: p.encr,
            integ: p.integ,
            prf: p.prf,
            ke: p.ke,
            additional_ke: p.additional_ke,
            legacy: p.legacy,
        });
    }
    Ok(out)
}

/// The PRF strongSwan derives from an integrity algorithm when a proposal names none.
fn prf_for_integ(integ: IntegId) -> Option<PrfId> {
    Some(match integ {
        IntegId::AUTH_HMAC_SHA1_96 | IntegId(7) => PrfId::PRF_HMAC_SHA1,
        IntegId::AUTH_HMAC_SHA2_256_128 => PrfId::PRF_HMAC_SHA2_256,
        IntegId::AUTH_HMAC_SHA2_384_192 => PrfId::PRF_HMAC_SHA2_384,
        IntegId::AUTH_HMAC_SHA2_512_256 => PrfId::PRF_HMAC_SHA2_512,
        IntegId::AUTH_HMAC_MD5_96 | IntegId(6) => PrfId::PRF_HMAC_MD5,
        IntegId::AUTH_AES_XCBC_96 => PrfId::PRF_AES128_XCBC,
        IntegId::AUTH_AES_CMAC_96 => PrfId::PRF_AES128_CMAC,
        _ => return None,
    })
}

/// Key exchange methods ferroswan offers by default, in strongSwan's order of preference.
const DEFAULT_KE: &[KeId] = &[
    KeId::ECP_256,
    KeId::ECP_384,
    KeId::ECP_521,
    KeId::CURVE25519,
    KeId::MODP_3072,
    KeId::MODP_4096,
    KeId::MODP_2048,
];

const AES_SIZES: [u16; 3] = [128, 192, 256];

/// ferroswan's ESP `default`: AES-GCM-16 first, then AES-CBC with SHA-2/SHA-1; PFS optional.
pub fn default_esp_proposals() -> Vec<EspProposal> {
    let mut ke = DEFAULT_KE.to_vec();
    ke.push(KeId::NONE);
    vec![
        EspProposal {
            encr: AES_SIZES.iter().map(|b| (EncrId::ENCR_AES_GCM_16, *b)).collect(),
            ke: ke.clone(),
            esn: vec![false],
            ..EspProposal::default()
        },
        EspProposal {
            encr: AES_SIZES.iter().map(|b| (EncrId::ENCR_AES_CBC, *b)).collect(),
            integ: vec![
                IntegId::AUTH_HMAC_SHA2_256_128,
                IntegId::AUTH_HMAC_SHA2_384_192,
                IntegId::AUTH_HMAC_SHA2_512_256,
                IntegId::AUTH_HMAC_SHA1_96,
            ],
            ke,
            esn: vec![false],
            ..EspProposal::default()
        },
    ]
}

/// ferroswan's IKE `default`: a classic proposal (AES-CBC, SHA-2/SHA-1) first, then an AEAD one
/// (AES-GCM-16, ChaCha20-Poly1305), as strongSwan orders them.
pub fn default_ike_proposals() -> Vec<IkeProposal> {
    let prf = vec![
        PrfId::PRF_HMAC_SHA2_256,
        PrfId::PRF_HMAC_SHA2_384,
        PrfId::PRF_HMAC_SHA2_512,
        PrfId::PRF_HMAC_SHA1,
    ];
    let mut aead: Vec<(EncrId, u16)> =
        AES_SIZES.iter().map(|b| (EncrId::ENCR_AES_GCM_16, *b)).collect();
    aead.push((EncrId::ENCR_CHACHA20_POLY1305, 0));
    vec![
        IkeProposal {
            encr: AES_SIZES.iter().map(|b| (EncrId::ENCR_AES_CBC, *b)).collect(),
            integ: vec![
                IntegId::AUTH_HMAC_SHA2_256_128,
                IntegId::AUTH_HMAC_SHA2_384_192,
                IntegId::AUTH_HMAC_SHA2_512_256,
                IntegId::AUTH_HMAC_SHA1_96,
            ],
            prf: prf.clone(),
            ke: DEFAULT_KE.to_vec(),
            ..IkeProposal::default()
        },
        IkeProposal { encr: aead, prf, ke: DEFAULT_KE.to_vec(), ..IkeProposal::default() },
    ]
}

/// Picks the one [`EspSuite`] of a manually keyed SA from its parsed `esp_proposal`: exactly
/// one proposal with exactly one cipher, at most one integrity algorithm and no key exchange;
/// the suite must pass [`EspSuite::validate`].
pub fn manual_esp_suite(proposals: &[EspProposal]) -> Result<EspSuite, ProposalError> {
    let [p] = proposals else {
        return Err(ProposalError::NotSingle(format!(
            "{} proposals given, exactly one is needed",
            proposals.len()
        )));
    };
    let [(encr, encr_key_bits)] = p.encr.as_slice() else {
        return Err(ProposalError::NotSingle(format!(
            "{} encryption algorithms given, exactly one is needed",
            p.encr.len()
        )));
    };
    let integ = match p.integ.as_slice() {
        [] => IntegId::NONE,
        [one] => *one,
        more => {
            return Err(ProposalError::NotSingle(format!(
                "{} integrity algorithms given, at most one is allowed",
                more.len()
            )));
        }
    };
    if !p.ke.is_empty() || !p.additional_ke.is_empty() {
        return Err(ProposalError::NotSingle(
            "a key exchange method was given, but manual keys need none".to_owned(),
        ));
    }
    if p.esn.len() > 1 {
        return Err(ProposalError::NotSingle("both esn and noesn given".to_owned()));
    }
    let suite = EspSuite { encr: *encr, encr_key_bits: *encr_key_bits, integ };
    suite.validate()?;
    Ok(suite)
}

/// Up to five keywords close to `word` (edit distance, or sharing a prefix).
fn suggest(word: &str) -> Vec<&'static str> {
    let lower = word.to_ascii_lowercase();
    if lower != word
        && let Some(k) = KEYWORDS.iter().find(|k| k.name == lower)
    {
        return vec![k.name];
    }
    let limit = (word.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &'static str)> = KEYWORDS
        .iter()
        .map(|k| (levenshtein(&lower, k.name), k.name))
        .filter(|(d, _)| *d <= limit)
        .collect();
    scored.sort();
    scored.into_iter().map(|(_, n)| n).take(5).collect()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let sub =
                prev.get(j).copied().unwrap_or(usize::MAX).saturating_add(usize::from(ca != *cb));
            let del = prev.get(j + 1).copied().unwrap_or(usize::MAX).saturating_add(1);
            let ins = cur.last().copied().unwrap_or(usize::MAX).saturating_add(1);
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

impl fmt::Display for EspProposal {
    /// strongSwan-like: `ENCR_AES_GCM_16_128/ENCR_AES_GCM_16_256/…/NO_EXT_SEQ`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        for (id, bits) in &self.encr {
            parts.push(if *bits == 0 { format!("{id}") } else { format!("{id}_{bits}") });
        }
        parts.extend(self.integ.iter().map(|i| i.to_string()));
        parts.extend(self.ke.iter().map(|k| k.to_string()));
        parts.extend(self.additional_ke.iter().map(|(i, k)| format!("KE{i}_{k}")));
        parts.extend(
            self.esn_options().iter().map(|e| if *e { "EXT_SEQ" } else { "NO_EXT_SEQ" }.to_owned()),
        );
        f.write_str(&parts.join("/"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn esp(s: &str) -> Vec<EspProposal> {
        parse_esp_proposals(s).unwrap()
    }

    fn one(s: &str) -> EspProposal {
        let mut v = esp(s);
        assert_eq!(v.len(), 1, "{s}");
        v.remove(0)
    }

    #[test]
    fn keyword_names_are_unique() {
        for (i, k) in KEYWORDS.iter().enumerate() {
            assert!(KEYWORDS.iter().skip(i + 1).all(|o| o.name != k.name), "{}", k.name);
        }
    }

    #[test]
    fn esp_keyword_table() {
        let gcm = |b| vec![(EncrId::ENCR_AES_GCM_16, b)];
        assert_eq!(one("aes128gcm16").encr, gcm(128));
        assert_eq!(one("aes256gcm128").encr, gcm(256));
        assert_eq!(one("aes192gcm").encr, gcm(192));
        assert_eq!(one("aes128gcm8").encr, vec![(EncrId::ENCR_AES_GCM_8, 128)]);
        assert_eq!(one("aes128gcm64").encr, vec![(EncrId::ENCR_AES_GCM_8, 128)]);
        assert_eq!(one("aes256gcm96").encr, vec![(EncrId::ENCR_AES_GCM_12, 256)]);
        assert_eq!(one("aes128ccm12").encr, vec![(EncrId::ENCR_AES_CCM_12, 128)]);
        assert_eq!(one("aes256ctr-sha256").encr, vec![(EncrId::ENCR_AES_CTR, 256)]);
        assert_eq!(one("aes-sha1").encr, vec![(EncrId::ENCR_AES_CBC, 128)]);
        let p = one("aes256gcm16-esn");
        assert_eq!((p.esn.clone(), p.integ.len()), (vec![true], 0));
        let p = one("chacha20poly1305");
        assert_eq!(p.encr, vec![(EncrId::ENCR_CHACHA20_POLY1305, 0)]);
        assert_eq!(p.esn_options(), vec![false]);
        let p = one("aes128-sha256");
        assert_eq!(p.integ, vec![IntegId::AUTH_HMAC_SHA2_256_128]);
        let p = one("aes256-sha512-modp2048-noesn");
        assert_eq!(p.encr, vec![(EncrId::ENCR_AES_CBC, 256)]);
        assert_eq!(p.integ, vec![IntegId::AUTH_HMAC_SHA2_512_256]);
        assert_eq!((p.ke.clone(), p.esn.clone()), (vec![KeId::MODP_2048], vec![false]));
        let p = one("3des-md5");
        assert_eq!(p.encr, vec![(EncrId::ENCR_3DES, 0)]);
        assert_eq!(p.integ, vec![IntegId::AUTH_HMAC_MD5_96]);
        assert_eq!(p.legacy, vec!["3des", "md5"]);
        let p = one("null-sha256");
        assert_eq!(p.encr, vec![(EncrId::ENCR_NULL, 0)]);
        assert!(p.legacy.is_empty());
        let p = one("aes128-aes256-sha256-sha1");
        assert_eq!(p.encr, vec![(EncrId::ENCR_AES_CBC, 128), (EncrId::ENCR_AES_CBC, 256)]);
        assert_eq!(p.integ, vec![IntegId::AUTH_HMAC_SHA2_256_128, IntegId::AUTH_HMAC_SHA1_96]);
        assert_eq!(one("aes128-sha256_96").integ, vec![AUTH_HMAC_SHA2_256_96]);
        assert_eq!(one("aes128-aesxcbc").integ, vec![IntegId::AUTH_AES_XCBC_96]);
        assert_eq!(one("aes128-aescmac").integ, vec![IntegId::AUTH_AES_CMAC_96]);
        // PRFs are dropped from ESP proposals, as strongSwan does.
        assert_eq!(one("aes128-sha256-prfsha256").integ.len(), 1);
        // AEAD with integrity: strongSwan drops the integrity algorithm.
        assert!(one("aes128gcm16-sha256").integ.is_empty());
        // Blanks around keywords and proposals are trimmed.
        assert_eq!(esp(" aes128gcm16 , aes128 - sha256 ").len(), 2);
    }

    #[test]
    fn key_exchange_keywords() {
        let ke = |s: &str| one(&format!("aes128gcm16-{s}")).ke;
        assert_eq!(ke("ecp256-ecp384-ecp521"), vec![KeId::ECP_256, KeId::ECP_384, KeId::ECP_521]);
        assert_eq!(ke("x25519"), vec![KeId::CURVE25519]);
        assert_eq!(ke("curve25519"), vec![KeId::CURVE25519]);
        assert_eq!(ke("x448-curve448"), vec![KeId::CURVE448]);
        assert_eq!(ke("mlkem768"), vec![KeId::ML_KEM_768]);
        assert_eq!(ke("ecp256bp"), vec![KeId(28)]);
        assert_eq!(ke("none"), vec![KeId::NONE]);
        let p = one("aes128gcm16-modp1024-modp1536-modp768");
        assert_eq!(p.legacy, vec!["modp1024", "modp1536", "modp768"]);
        let p = one("aes128gcm16-x25519-ke1_mlkem768-ke2_modp1024");
        assert_eq!(p.additional_ke, vec![(1, KeId::ML_KEM_768), (2, KeId::MODP_1024)]);
        assert_eq!(p.legacy, vec!["modp1024"]);
        assert!(parse_esp_proposals("aes128gcm16-ke8_mlkem768").is_err());
        assert!(parse_esp_proposals("aes128gcm16-ke1_sha256").is_err());
        assert!(parse_esp_proposals("aes128gcm16-ke01_ecp256").is_err());
    }

    #[test]
    fn esp_default_expands_like_strongswan() {
        let d = esp("default");
        assert_eq!(d, default_esp_proposals());
        assert_eq!(d.len(), 2);
        assert!(d[0].encr.iter().all(|(e, _)| *e == EncrId::ENCR_AES_GCM_16));
        assert!(d[0].integ.is_empty());
        assert_eq!(d[1].encr.first(), Some(&(EncrId::ENCR_AES_CBC, 128)));
        assert_eq!(d[1].integ.first(), Some(&IntegId::AUTH_HMAC_SHA2_256_128));
        assert_eq!(d[0].ke.last(), Some(&KeId::NONE));
        assert_eq!(esp("aes256gcm16,DEFAULT").len(), 3);
        assert_eq!(d[0].to_string().split('/').next(), Some("ENCR_AES_GCM_16_128"));
    }

    #[test]
    fn ike_proposals() {
        let p = parse_ike_proposals("aes256gcm16-prfsha384-ecp384").unwrap();
        assert_eq!(p[0].encr, vec![(EncrId::ENCR_AES_GCM_16, 256)]);
        assert_eq!(
            (p[0].prf.clone(), p[0].ke.clone()),
            (vec![PrfId::PRF_HMAC_SHA2_384], vec![KeId::ECP_384])
        );
        let p = parse_ike_proposals("aes128-sha256-modp2048").unwrap();
        // The PRF follows the integrity algorithm when none is written.
        assert_eq!(p[0].prf, vec![PrfId::PRF_HMAC_SHA2_256]);
        let p = parse_ike_proposals("chacha20poly1305-prfsha256-x25519").unwrap();
        assert_eq!(p[0].ke, vec![KeId::CURVE25519]);
        let p = parse_ike_proposals("aes128-sha256-none-ecp256").unwrap();
        assert_eq!(p[0].ke, vec![KeId::ECP_256]);
        let d = parse_ike_proposals("default").unwrap();
        assert_eq!(d.len(), 2);
        assert!(!d[0].integ.is_empty(), "classic first, as strongSwan");
        let err = |s: &str| parse_ike_proposals(s).unwrap_err();
        assert_eq!(
            err("aes128gcm16-ecp256"),
            ProposalError::MissingPrf("aes128gcm16-ecp256".into())
        );
        assert_eq!(
            err("aes128-prfsha256-ecp256"),
            ProposalError::MissingInteg("aes128-prfsha256-ecp256".into())
        );
        assert_eq!(err("aes128-sha256"), ProposalError::MissingKe("aes128-sha256".into()));
        assert_eq!(
            err("aes128-sha256-none"),
            ProposalError::MissingKe("aes128-sha256-none".into())
        );
        assert!(matches!(err("aes128-sha256-ecp256-esn"), ProposalError::WrongType { .. }));
    }

    #[test]
    fn errors_name_the_keyword_and_suggest() {
        let e = parse_esp_proposals("aes128-sha256,aes128gcm17").unwrap_err();
        assert_eq!(e.to_string(), "unknown algorithm 'aes128gcm17' in proposal 'aes128gcm17'");
        let hint = e.hint().unwrap();
        assert!(hint.starts_with("did you mean ") && hint.contains("aes128gcm16"), "{hint}");
        let e = parse_esp_proposals("AES128-sha256").unwrap_err();
        assert_eq!(e.hint().unwrap(), "did you mean aes128?");
        let e = parse_esp_proposals("aes128-sha265").unwrap_err();
        assert!(e.hint().unwrap().contains("sha256"));
        let e = parse_esp_proposals("camellia128-sha256").unwrap_err();
        assert_eq!(
            e.to_string(),
            "algorithm 'camellia128' in proposal 'camellia128-sha256' is not supported by ferroswan"
        );
        assert!(matches!(
            parse_esp_proposals("xyzzy-plugh").unwrap_err(),
            ProposalError::UnknownKeyword { .. }
        ));
        assert_eq!(
            parse_esp_proposals("sha256").unwrap_err(),
            ProposalError::MissingEncr("sha256".into())
        );
        assert_eq!(
            parse_esp_proposals("aes128gcm16-aes128-sha256").unwrap_err(),
            ProposalError::MixedAead("aes128gcm16-aes128-sha256".into())
        );
        for bad in ["", "aes128--sha256", "aes128gcm16,", ",aes128gcm16", "-"] {
            assert!(
                matches!(parse_esp_proposals(bad).unwrap_err(), ProposalError::Empty(_)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn manual_suite_picker() {
        let pick = |s: &str| manual_esp_suite(&esp(s));
        assert_eq!(
            pick("aes128gcm16").unwrap(),
            EspSuite { encr: EncrId::ENCR_AES_GCM_16, encr_key_bits: 128, integ: IntegId::NONE }
        );
        assert_eq!(pick("aes256-sha256").unwrap().keymat_len(), Some(64));
        assert_eq!(pick("chacha20poly1305").unwrap().keymat_len(), Some(36));
        assert_eq!(pick("null-sha1").unwrap().integ, IntegId::AUTH_HMAC_SHA1_96);
        assert_eq!(pick("3des-md5").unwrap().keymat_len(), Some(40));
        assert_eq!(pick("aes128gcm16-esn").unwrap().encr_key_bits, 128);
        let msg = |s: &str| pick(s).unwrap_err().to_string();
        assert_eq!(
            msg("aes128-aes256-sha256"),
            "a manually keyed SA needs a single algorithm choice: 2 encryption algorithms given, exactly one is needed"
        );
        assert!(msg("aes128-sha256-sha1").contains("2 integrity algorithms given, at most one"));
        assert!(msg("aes128gcm16,aes256gcm16").contains("2 proposals given"));
        assert!(msg("default").contains("2 proposals given"));
        assert!(msg("aes128gcm16-ecp256").contains("key exchange"));
        assert!(msg("aes128gcm16-esn-noesn").contains("both esn and noesn"));
        assert_eq!(pick("aes128").unwrap_err(), ProposalError::Suite(SuiteError::MissingInteg));
        assert!(matches!(
            pick("aes128gmac").unwrap_err(),
            ProposalError::Suite(SuiteError::BadEncr { .. })
        ));
        assert!(matches!(
            pick("aes128-aesxcbc").unwrap_err(),
            ProposalError::Suite(SuiteError::BadInteg(_))
        ));
        assert!(pick("aes128").unwrap_err().hint().unwrap().contains("sha256"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_proposals_never_panic(s in "\\PC{0,40}") {
            let _ = parse_esp_proposals(&s).map(|p| manual_esp_suite(&p));
            let _ = parse_ike_proposals(&s);
        }

        #[test]
        fn keyword_soup_never_panics(words in proptest::collection::vec(0..KEYWORDS.len(), 1..6)) {
            let s: Vec<&str> = words.iter().map(|i| KEYWORDS[*i].name).collect();
            let s = s.join("-");
            let _ = parse_esp_proposals(&s).map(|p| manual_esp_suite(&p));
            let _ = parse_ike_proposals(&s);
        }
    }
}
