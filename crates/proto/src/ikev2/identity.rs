//! IKE identities (RFC 7296 §3.5) and how swanctl.conf writes them.
//!
//! [`Identity`] is the ID payload's type and data. [`Identity::from_swanctl`] reads the
//! strings of swanctl.conf's `local.id` / `remote.id` the way strongSwan's
//! `identification_create_from_string` does:
//!
//! | string | type |
//! |---|---|
//! | `192.0.2.1`, `2001:db8::1` | `ID_IPV4_ADDR`, `ID_IPV6_ADDR` |
//! | `@example.com` | `ID_FQDN` (the `@` is stripped) |
//! | `@#0a0b0c` | `ID_KEY_ID` (hex) |
//! | `user@example.com` | `ID_RFC822_ADDR` |
//! | `C=CH, O=strongSwan, CN=moon` (contains `=`) | `ID_DER_ASN1_DN` (see [`crate::ikev2::dn`]) |
//! | `example.com` (anything else) | `ID_FQDN` |
//! | `%any`, `*` | matches any identity (only valid for `remote.id`) |
//!
//! A type prefix forces the type: `fqdn:`, `email:`/`rfc822:`, `ipv4:`, `ipv6:`, `keyid:`
//! (hex after `#`, or the raw string), `asn1dn:`/`dn:`.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::ikev2::IdType;

/// An IKE identity: the ID payload's type and data.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The identification type.
    pub ty: IdType,
    /// The identification data, as in the ID payload.
    pub data: Vec<u8>,
}

/// Why an identity string could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A distinguished name that could not be parsed.
    #[error("'{0}' is not a valid distinguished name (expected e.g. 'C=CH, O=Example, CN=moon')")]
    BadDn(String),
    /// A `keyid:#…` that is not hexadecimal.
    #[error("'{0}' is not a valid hex key ID")]
    BadKeyId(String),
    /// An address prefix with something that is not an address.
    #[error("'{0}' is not an IP address")]
    BadAddress(String),
    /// An empty identity.
    #[error("empty identity")]
    Empty,
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    let s: String = s.chars().filter(|c| *c != ':' && !c.is_whitespace()).collect();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

impl Identity {
    /// An address identity.
    pub fn from_ip(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(a) => Self { ty: IdType::ID_IPV4_ADDR, data: a.octets().to_vec() },
            IpAddr::V6(a) => Self { ty: IdType::ID_IPV6_ADDR, data: a.octets().to_vec() },
        }
    }

    /// An FQDN identity.
    pub fn fqdn(name: &str) -> Self {
        Self { ty: IdType::ID_FQDN, data: name.as_bytes().to_vec() }
    }

    /// Reads a swanctl.conf identity string (see the module doc). `%any` and `*` are not
    /// identities: use [`IdMatcher::from_swanctl`] for `remote.id`.
    pub fn from_swanctl(s: &str) -> Result<Self, IdentityError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(IdentityError::Empty);
        }
        if let Some((prefix, rest)) = s.split_once(':') {
            let typed = match prefix {
                "fqdn" => Some(Self::fqdn(rest)),
                "email" | "rfc822" => {
                    Some(Self { ty: IdType::ID_RFC822_ADDR, data: rest.as_bytes().to_vec() })
                }
                "ipv4" => Some(Self::from_ip(IpAddr::V4(
                    rest.parse::<Ipv4Addr>()
                        .map_err(|_| IdentityError::BadAddress(rest.to_owned()))?,
                ))),
                "ipv6" => Some(Self::from_ip(IpAddr::V6(
                    rest.parse::<Ipv6Addr>()
                        .map_err(|_| IdentityError::BadAddress(rest.to_owned()))?,
                ))),
                "keyid" => Some(match rest.strip_prefix('#') {
                    Some(hex) => Self {
                        ty: IdType::ID_KEY_ID,
                        data: hex_decode(hex)
                            .ok_or_else(|| IdentityError::BadKeyId(s.to_owned()))?,
                    },
                    None => Self { ty: IdType::ID_KEY_ID, data: rest.as_bytes().to_vec() },
                }),
                "asn1dn" | "dn" => Some(Self {
                    ty: IdType::ID_DER_ASN1_DN,
                    data: super::dn::encode(rest)
                        .map_err(|_| IdentityError::BadDn(rest.to_owned()))?,
                }),
                _ => None,
            };
            if let Some(id) = typed {
                return Ok(id);
            }
        }
        if let Ok(addr) = s.parse::<IpAddr>() {
            return Ok(Self::from_ip(addr));
        }
        if let Some(rest) = s.strip_prefix("@#") {
            return Ok(Self {
                ty: IdType::ID_KEY_ID,
                data: hex_decode(rest).ok_or_else(|| IdentityError::BadKeyId(s.to_owned()))?,
            });
        }
        if let Some(rest) = s.strip_prefix('@') {
            return Ok(Self::fqdn(rest));
        }
        if s.contains('=') {
            return Ok(Self {
                ty: IdType::ID_DER_ASN1_DN,
                data: super::dn::encode(s).map_err(|_| IdentityError::BadDn(s.to_owned()))?,
            });
        }
        if s.contains('@') {
            return Ok(Self { ty: IdType::ID_RFC822_ADDR, data: s.as_bytes().to_vec() });
        }
        Ok(Self::fqdn(s))
    }

    /// The address, for the address types.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.ty {
            IdType::ID_IPV4_ADDR => {
                <[u8; 4]>::try_from(self.data.as_slice()).ok().map(IpAddr::from)
            }
            IdType::ID_IPV6_ADDR => {
                <[u8; 16]>::try_from(self.data.as_slice()).ok().map(IpAddr::from)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Identity {
    /// Writes the identity as swanctl would print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ty {
            IdType::ID_IPV4_ADDR | IdType::ID_IPV6_ADDR => match self.ip() {
                Some(ip) => write!(f, "{ip}"),
                None => write!(f, "(invalid address of {} bytes)", self.data.len()),
            },
            IdType::ID_FQDN | IdType::ID_RFC822_ADDR => {
                write!(f, "{}", String::from_utf8_lossy(&self.data).escape_debug())
            }
            IdType::ID_DER_ASN1_DN => match super::dn::to_string(&self.data) {
                Some(s) => f.write_str(&s),
                None => write!(f, "(unparsable DN of {} bytes)", self.data.len()),
            },
            IdType::ID_KEY_ID => {
                f.write_str("@#")?;
                self.data.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
            other => {
                write!(f, "{other}:")?;
                self.data.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({self})")
    }
}

/// What a configured `remote.id` accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdMatcher {
    /// `%any` (or `*`, or no `remote.id`): any identity; with certificates the peer is still
    /// bound to the identity its certificate carries.
    Any,
    /// Exactly this identity (DNs compare by their DER, RDN wildcards are not supported yet).
    Exact(Identity),
}

impl IdMatcher {
    /// Reads a `remote.id` value.
    pub fn from_swanctl(s: &str) -> Result<Self, IdentityError> {
        match s.trim() {
            "%any" | "*" | "%any6" => Ok(Self::Any),
            other => Identity::from_swanctl(other).map(Self::Exact),
        }
    }

    /// Whether `id` is acceptable.
    pub fn matches(&self, id: &Identity) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(want) => want == id,
        }
    }
}

impl fmt::Display for IdMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("%any"),
            Self::Exact(id) => id.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn swanctl_strings_pick_the_type_strongswan_picks() {
        let cases: &[(&str, IdType, &[u8])] = &[
            ("192.0.2.1", IdType::ID_IPV4_ADDR, &[192, 0, 2, 1]),
            ("@moon.example", IdType::ID_FQDN, b"moon.example"),
            ("moon.example", IdType::ID_FQDN, b"moon.example"),
            ("carol@example.org", IdType::ID_RFC822_ADDR, b"carol@example.org"),
            ("@#0a0B", IdType::ID_KEY_ID, &[0x0a, 0x0b]),
            ("fqdn:1.2.3.4", IdType::ID_FQDN, b"1.2.3.4"),
            ("keyid:abc", IdType::ID_KEY_ID, b"abc"),
        ];
        for (s, ty, data) in cases {
            let id = Identity::from_swanctl(s).unwrap();
            assert_eq!((id.ty, id.data.as_slice()), (*ty, *data), "{s}");
        }
        let v6 = Identity::from_swanctl("2001:db8::1").unwrap();
        assert_eq!(v6.ty, IdType::ID_IPV6_ADDR);
        assert_eq!(v6.to_string(), "2001:db8::1");
        assert_eq!(Identity::from_swanctl("@#0a0b").unwrap().to_string(), "@#0a0b");
        assert!(Identity::from_swanctl("@#0g").is_err());
        assert!(Identity::from_swanctl("  ").is_err());
    }

    #[test]
    fn any_matches_everything_exact_only_itself() {
        let moon = Identity::fqdn("moon");
        assert!(IdMatcher::from_swanctl("%any").unwrap().matches(&moon));
        assert!(IdMatcher::from_swanctl("@moon").unwrap().matches(&moon));
        assert!(!IdMatcher::from_swanctl("@sun").unwrap().matches(&moon));
        assert!(!IdMatcher::from_swanctl("moon@x").unwrap().matches(&moon));
    }
}
