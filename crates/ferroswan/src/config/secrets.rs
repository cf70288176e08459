//! `secrets { … }`: swanctl's credentials, typed.
//!
//! Section names select the type by prefix, as swanctl does (`ike`, `ike-gw`, `ike2` …):
//! `ike|eap|xauth|ntlm|ppk<suffix> { id<suffix> = …, secret = … }` are shared secrets;
//! `private|rsa|ecdsa|pkcs8|pkcs12<suffix> { file = …, secret = … }` are private key files and
//! their passphrases. `token<suffix>` (PKCS#11) is refused as not supported yet.
//!
//! A `secret` is a string, `0x…` hex or `0s…` base64 (swanctl's `load_creds.c`); it is kept
//! as a zeroized [`SecretKey`].

use std::path::PathBuf;

use zeroize::Zeroizing;

use super::settings::{KeyValue, Section};
use super::{ConfigError, Location, SecretKey, get, parse_hex, unknown};

/// The typed `secrets` section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Secrets {
    /// `ike|eap|xauth|ntlm|ppk<suffix>` sections, in file order.
    pub shared: Vec<SharedSecret>,
    /// `private|rsa|ecdsa|pkcs8|pkcs12<suffix>` sections, in file order.
    pub private_keys: Vec<PrivateKey>,
}

impl Secrets {
    /// The IKE preshared keys.
    pub fn ike(&self) -> impl Iterator<Item = &SharedSecret> {
        self.shared.iter().filter(|s| s.kind == SharedKind::Ike)
    }
}

/// The kind of a shared secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedKind {
    /// `ike<suffix>`: IKE preshared key.
    Ike,
    /// `eap<suffix>`: EAP password.
    Eap,
    /// `xauth<suffix>`: XAuth password.
    Xauth,
    /// `ntlm<suffix>`: NTLM hash.
    Ntlm,
    /// `ppk<suffix>`: post-quantum preshared key (RFC 8784).
    Ppk,
}

/// A shared secret and the identities it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedSecret {
    /// The section name.
    pub name: String,
    /// Where the section starts.
    pub location: Location,
    /// What it is for.
    pub kind: SharedKind,
    /// `id<suffix>` values, in file order; empty: the secret matches any identity.
    pub ids: Vec<String>,
    /// `secret`, decoded.
    pub secret: SecretKey,
}

/// The kind of a private key file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrivateKeyKind {
    /// `private<suffix>`: any type, detected.
    Any,
    /// `rsa<suffix>`.
    Rsa,
    /// `ecdsa<suffix>`.
    Ecdsa,
    /// `pkcs8<suffix>`.
    Pkcs8,
    /// `pkcs12<suffix>`: a container with certificates and keys.
    Pkcs12,
}

/// A private key file and its passphrase.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PrivateKey {
    /// The section name.
    pub name: String,
    /// Where the section starts.
    pub location: Location,
    /// What kind of file.
    pub kind: PrivateKeyKind,
    /// `file`: relative paths are relative to swanctl's matching directory
    /// (`private/`, `rsa/`, `ecdsa/`, `pkcs8/`, `pkcs12/`).
    pub file: PathBuf,
    /// `secret`: the passphrase, if any.
    pub secret: Option<SecretKey>,
}

const SHARED: &[(&str, SharedKind)] = &[
    ("ike", SharedKind::Ike),
    ("eap", SharedKind::Eap),
    ("xauth", SharedKind::Xauth),
    ("ntlm", SharedKind::Ntlm),
    ("ppk", SharedKind::Ppk),
];
// `pkcs12` before `pkcs8` does not matter (neither is a prefix of the other); `private` is.
const PRIVATE: &[(&str, PrivateKeyKind)] = &[
    ("private", PrivateKeyKind::Any),
    ("rsa", PrivateKeyKind::Rsa),
    ("ecdsa", PrivateKeyKind::Ecdsa),
    ("pkcs8", PrivateKeyKind::Pkcs8),
    ("pkcs12", PrivateKeyKind::Pkcs12),
];
/// Valid section names of `secrets` (each takes any suffix).
pub const SECRET_SECTIONS: &[&str] = &[
    "eap<suffix>",
    "ecdsa<suffix>",
    "ike<suffix>",
    "ntlm<suffix>",
    "pkcs12<suffix>",
    "pkcs8<suffix>",
    "ppk<suffix>",
    "private<suffix>",
    "rsa<suffix>",
    "token<suffix>",
    "xauth<suffix>",
];

/// Decodes a swanctl secret: `0x` hex, `0s` base64 (prefixes case-insensitive), else the
/// string's bytes.
pub fn decode_secret(value: &str) -> Option<SecretKey> {
    let prefix = value.get(..2).map(str::to_ascii_lowercase);
    let rest = value.get(2..).unwrap_or("");
    let bytes = match prefix.as_deref() {
        Some("0x") => parse_hex(rest)?,
        Some("0s") => decode_base64(rest)?,
        _ => Zeroizing::new(value.as_bytes().to_vec()),
    };
    Some(SecretKey(bytes))
}

/// Standard base64 (RFC 4648, `=` padding optional, blanks ignored).
fn decode_base64(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(s.len() / 4 * 3));
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut padding = 0usize;
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            padding += 1;
            continue;
        }
        if padding > 0 {
            return None;
        }
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = ((acc << 6) | u32::from(v)) & 0x3fff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    // Leftover bits must be zero padding of a valid length (2 or 4 bits).
    if padding > 2 || bits >= 6 || acc & ((1 << bits) - 1) != 0 {
        return None;
    }
    Some(out)
}

fn secret_of(kv: &KeyValue) -> Result<SecretKey, ConfigError> {
    decode_secret(&kv.value).ok_or_else(|| {
        // Never echo the value: it is a secret.
        let what = if kv.value.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("0x")) {
            "not a hex string"
        } else {
            "not valid base64"
        };
        ConfigError::new(kv.location.clone(), format!("invalid secret: {what}"))
            .with_hint("write 0x followed by hex digits, 0s followed by base64, or a plain string")
    })
}

/// Parses `secrets { … }`.
pub fn secrets(section: &Section) -> Result<Secrets, ConfigError> {
    if let Some(kv) = section.keys().first() {
        return Err(ConfigError::new(
            kv.location.clone(),
            format!("unexpected key '{}' in 'secrets'", kv.key),
        )
        .with_hint("'secrets' holds sections such as ike-1 { id = …, secret = … }"));
    }
    let mut out = Secrets::default();
    for s in section.sections() {
        let name = s.name();
        let place = format!("secrets.{name}");
        if let Some((_, kind)) = SHARED.iter().find(|(p, _)| name.starts_with(p)) {
            out.shared.push(shared(s, &place, *kind)?);
        } else if let Some((_, kind)) = PRIVATE.iter().find(|(p, _)| name.starts_with(p)) {
            out.private_keys.push(private(s, &place, *kind)?);
        } else if name.starts_with("token") {
            return Err(ConfigError::new(
                s.location().clone(),
                format!("'{place}': PKCS#11 token secrets are not supported yet in this version"),
            )
            .with_hint("use a private key file (private { file = … }) instead"));
        } else {
            return Err(unknown(s.location(), "section", name, "secrets", SECRET_SECTIONS));
        }
    }
    Ok(out)
}

fn no_subsections(s: &Section, place: &str, keys: &str) -> Result<(), ConfigError> {
    if let Some(sub) = s.sections().first() {
        return Err(ConfigError::new(
            sub.location().clone(),
            format!("unexpected section '{}' in {place}", sub.name()),
        )
        .with_hint(format!("{place} takes no sections; valid keys: {keys}")));
    }
    Ok(())
}

fn shared(s: &Section, place: &str, kind: SharedKind) -> Result<SharedSecret, ConfigError> {
    const VALID: &[&str] = &["id<suffix>", "secret"];
    no_subsections(s, place, "id<suffix>, secret")?;
    if let Some(kv) = s.keys().iter().find(|kv| kv.key != "secret" && !kv.key.starts_with("id")) {
        return Err(unknown(&kv.location, "key", &kv.key, place, VALID));
    }
    let kv = get(s, "secret").ok_or_else(|| {
        ConfigError::new(s.location().clone(), format!("{place} has no secret"))
            .with_hint("add 'secret = …'")
    })?;
    Ok(SharedSecret {
        name: s.name().to_owned(),
        location: s.location().clone(),
        kind,
        ids: s
            .keys()
            .iter()
            .filter(|kv| kv.key.starts_with("id") && !kv.value.is_empty())
            .map(|kv| kv.value.clone())
            .collect(),
        secret: secret_of(kv)?,
    })
}

fn private(s: &Section, place: &str, kind: PrivateKeyKind) -> Result<PrivateKey, ConfigError> {
    super::check_names(s, place, &["file", "secret"], &[])?;
    let file = get(s, "file").ok_or_else(|| {
        ConfigError::new(s.location().clone(), format!("{place} has no file"))
            .with_hint("add 'file = …' naming the key file")
    })?;
    Ok(PrivateKey {
        name: s.name().to_owned(),
        location: s.location().clone(),
        kind,
        file: PathBuf::from(&file.value),
        secret: get(s, "secret").map(secret_of).transpose()?,
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

    #[test]
    fn secret_encodings() {
        let cases: &[(&str, Option<&[u8]>)] = &[
            ("plain text", Some(b"plain text")),
            ("0x0aff", Some(&[0x0a, 0xff])),
            ("0X0A:FF", Some(&[0x0a, 0xff])),
            ("0sAQID", Some(&[1, 2, 3])),
            ("0SAQI=", Some(&[1, 2])),
            ("0sAQ==", Some(&[1])),
            ("0sAQ", Some(&[1])),
            ("0sYWJjZGVm", Some(b"abcdef")),
            ("0s", Some(&[])),
            ("0x", Some(&[])),
            ("0", Some(b"0")),
            ("0xabc", None),
            ("0xzz", None),
            ("0s!!!!", None),
            ("0sA", None),
            ("0sAR==", None),
            ("0sAQ=I", None),
        ];
        for (text, want) in cases {
            let got = decode_secret(text);
            assert_eq!(got.as_ref().map(SecretKey::expose), *want, "{text:?}");
        }
    }

    #[test]
    fn typed_secrets() {
        let c = parse(
            "secrets {\n ike-gw {\n  id = moon\n  id-2 = sun\n  secret = \"a long secret\"\n }\n \
             eap-carol {\n  id = carol\n  secret = 0x1234\n }\n ike {\n  secret = 0sAQID\n }\n \
             private-moon {\n  file = moonKey.pem\n  secret = hunter2\n }\n \
             ecdsa { file = /etc/k.der }\n pkcs12-x { file = x.p12 }\n}\n",
        )
        .unwrap();
        let s = &c.secrets;
        let ike: Vec<_> = s.ike().collect();
        assert_eq!(ike.len(), 2);
        assert_eq!(ike[0].name, "ike-gw");
        assert_eq!(ike[0].location, Location::new("/virtual/swanctl.conf", 2));
        assert_eq!(ike[0].ids, ["moon", "sun"]);
        assert_eq!(ike[0].secret.expose(), b"a long secret");
        assert!(ike[1].ids.is_empty());
        assert_eq!(ike[1].secret.expose(), [1, 2, 3]);
        assert_eq!(s.shared[1].kind, SharedKind::Eap);
        assert_eq!(s.shared[1].secret.expose(), [0x12, 0x34]);
        let kinds: Vec<_> = s.private_keys.iter().map(|k| k.kind).collect();
        assert_eq!(kinds, [PrivateKeyKind::Any, PrivateKeyKind::Ecdsa, PrivateKeyKind::Pkcs12]);
        assert_eq!(s.private_keys[0].file, PathBuf::from("moonKey.pem"));
        assert_eq!(s.private_keys[0].secret.as_ref().unwrap().expose(), b"hunter2");
        assert!(s.private_keys[1].secret.is_none());
        // Secrets never show up in Debug output.
        let debug = format!("{s:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("a long secret"), "{debug}");
    }

    #[test]
    fn secret_errors() {
        let f = "/virtual/swanctl.conf";
        let cases: &[(&str, String)] = &[
            ("secrets {\n x = 1\n}", format!("{f}:2: unexpected key 'x' in 'secrets'")),
            (
                "secrets {\n psk { secret = x }\n}",
                format!(
                    "{f}:2: unknown section 'psk' in secrets (valid sections: eap<suffix>, ecdsa<suffix>, ike<suffix>"
                ),
            ),
            (
                "secrets {\n token-1 { pin = 1 }\n}",
                format!(
                    "{f}:2: 'secrets.token-1': PKCS#11 token secrets are not supported yet in this version (use a private key file"
                ),
            ),
            (
                "secrets {\n ike {\n id = a\n}\n}",
                format!("{f}:2: secrets.ike has no secret (add 'secret = …')"),
            ),
            (
                "secrets {\n ike {\n secret = 0xabc\n}\n}",
                format!("{f}:3: invalid secret: not a hex string (write 0x followed by hex digits"),
            ),
            (
                "secrets {\n ike {\n secret = 0s@@\n}\n}",
                format!("{f}:3: invalid secret: not valid base64"),
            ),
            (
                "secrets {\n ike {\n secret = x\n pass = y\n}\n}",
                format!(
                    "{f}:4: unknown key 'pass' in secrets.ike (valid keys: id<suffix>, secret)"
                ),
            ),
            (
                "secrets {\n ike {\n secret = x\n sub { }\n}\n}",
                format!("{f}:4: unexpected section 'sub' in secrets.ike"),
            ),
            (
                "secrets {\n rsa {\n secret = x\n}\n}",
                format!("{f}:2: secrets.rsa has no file (add 'file = …'"),
            ),
            (
                "secrets {\n rsa {\n file = k\n pin = 1\n}\n}",
                format!("{f}:4: unknown key 'pin' in secrets.rsa (valid keys: file, secret)"),
            ),
        ];
        for (text, want) in cases {
            let got = err(text);
            assert!(got.contains(want.as_str()), "{text}\n got  {got}\n want {want}");
        }
        // The secret value is never echoed in an error.
        assert!(!err("secrets {\n ike {\n secret = 0xsecretvalue\n}\n}").contains("secretvalue"));
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(text in "\\PC{0,40}") {
            let _ = decode_secret(&text);
        }
    }
}
