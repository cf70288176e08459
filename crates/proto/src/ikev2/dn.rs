//! X.500 distinguished names as swanctl.conf writes them (`C=CH, O=strongSwan, CN=moon`) and as
//! `ID_DER_ASN1_DN` carries them (the DER of an X.509 `Name`, RFC 5280 §4.1.2.4).
//!
//! ```text
//! Name ::= SEQUENCE OF RelativeDistinguishedName
//! RelativeDistinguishedName ::= SET OF AttributeTypeAndValue
//! AttributeTypeAndValue ::= SEQUENCE { type OBJECT IDENTIFIER, value ANY }
//! ```
//!
//! [`encode`] writes one attribute per RDN, in the order given, values as PrintableString
//! when every character allows it and UTF8String otherwise (emailAddress and DC as IA5String),
//! as strongSwan does. [`equal`] compares two DERs the way a person would: same attributes in
//! the same order, values equal ignoring ASCII case and string type.

use crate::wire::{Error, Result};

/// Known attribute names with their OID content bytes.
const ATTRIBUTES: &[(&str, &[u8])] = &[
    ("CN", &[0x55, 0x04, 0x03]),
    ("SN", &[0x55, 0x04, 0x04]),
    ("serialNumber", &[0x55, 0x04, 0x05]),
    ("C", &[0x55, 0x04, 0x06]),
    ("L", &[0x55, 0x04, 0x07]),
    ("ST", &[0x55, 0x04, 0x08]),
    ("street", &[0x55, 0x04, 0x09]),
    ("O", &[0x55, 0x04, 0x0a]),
    ("OU", &[0x55, 0x04, 0x0b]),
    ("T", &[0x55, 0x04, 0x0c]),
    ("D", &[0x55, 0x04, 0x0d]),
    ("postalCode", &[0x55, 0x04, 0x11]),
    ("N", &[0x55, 0x04, 0x29]),
    ("G", &[0x55, 0x04, 0x2a]),
    ("I", &[0x55, 0x04, 0x2b]),
    ("dnQualifier", &[0x55, 0x04, 0x2e]),
    ("pseudonym", &[0x55, 0x04, 0x41]),
    ("E", &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]),
    ("UID", &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01]),
    ("DC", &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19]),
];

/// Aliases accepted on input.
const ALIASES: &[(&str, &str)] = &[
    ("commonName", "CN"),
    ("surname", "SN"),
    ("countryName", "C"),
    ("localityName", "L"),
    ("stateOrProvinceName", "ST"),
    ("S", "ST"),
    ("organizationName", "O"),
    ("organizationalUnitName", "OU"),
    ("title", "T"),
    ("description", "D"),
    ("name", "N"),
    ("givenName", "G"),
    ("initials", "I"),
    ("emailAddress", "E"),
    ("Email", "E"),
    ("userid", "UID"),
    ("domainComponent", "DC"),
];

const TAG_UTF8: u8 = 0x0c;
const TAG_PRINTABLE: u8 = 0x13;
const TAG_T61: u8 = 0x14;
const TAG_IA5: u8 = 0x16;
const TAG_BMP: u8 = 0x1e;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;

fn oid_of(name: &str) -> Option<&'static [u8]> {
    let name = ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
        .map_or(name, |(_, canonical)| canonical);
    ATTRIBUTES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, oid)| *oid)
}

fn name_of(oid: &[u8]) -> Option<&'static str> {
    ATTRIBUTES.iter().find(|(_, o)| *o == oid).map(|(n, _)| *n)
}

fn push_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
}

fn is_printable(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c))
}

/// Splits on unescaped commas (or `/` when the string starts with `/`, OpenSSL's style).
fn split_rdns(s: &str) -> Vec<String> {
    let (s, sep) = match s.strip_prefix('/') {
        Some(rest) => (rest, '/'),
        None => (s, ','),
    };
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                cur.push(next);
            }
        } else if c == sep || (sep == ',' && c == ';') {
            parts.push(core::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

/// Encodes a DN string (`C=CH, O=strongSwan, CN=moon`) as the DER of an X.509 `Name`.
/// Attribute names are the usual short ones (case-insensitive) or their long forms; an
/// attribute may also be given as a dotted OID (`2.5.4.3=moon`).
pub fn encode(s: &str) -> Result<Vec<u8>> {
    let mut rdns = Vec::new();
    for part in split_rdns(s) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (name, value) =
            part.split_once('=').ok_or(Error::Malformed { what: "DN attribute without '='" })?;
        let (name, value) = (name.trim(), value.trim());
        let oid = match oid_of(name) {
            Some(oid) => oid.to_vec(),
            None => dotted_oid(name).ok_or(Error::Malformed { what: "unknown DN attribute" })?,
        };
        let tag = if matches!(name_of(&oid), Some("E" | "DC")) {
            TAG_IA5
        } else if is_printable(value) {
            TAG_PRINTABLE
        } else {
            TAG_UTF8
        };
        let mut atv = Vec::new();
        push_tlv(&mut atv, TAG_OID, &oid);
        push_tlv(&mut atv, tag, value.as_bytes());
        let mut seq = Vec::new();
        push_tlv(&mut seq, TAG_SEQUENCE, &atv);
        push_tlv(&mut rdns, TAG_SET, &seq);
    }
    if rdns.is_empty() {
        return Err(Error::Malformed { what: "empty DN" });
    }
    let mut out = Vec::new();
    push_tlv(&mut out, TAG_SEQUENCE, &rdns);
    Ok(out)
}

fn dotted_oid(s: &str) -> Option<Vec<u8>> {
    let arcs: Vec<u64> = s.split('.').map(|a| a.parse().ok()).collect::<Option<_>>()?;
    let (first, second) = (*arcs.first()?, *arcs.get(1)?);
    if first > 2 || (first < 2 && second >= 40) {
        return None;
    }
    let mut out = Vec::new();
    let mut push_arc = |mut v: u64| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        out.extend(tmp.iter().rev());
    };
    push_arc(first.checked_mul(40)?.checked_add(second)?);
    for arc in arcs.iter().skip(2) {
        push_arc(*arc);
    }
    Some(out)
}

/// A DER reader over one level.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return None;
            }
            let (bytes, rest) = rest.split_at_checked(n)?;
            (bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)), rest)
        };
        let (content, rest) = rest.split_at_checked(len)?;
        self.0 = rest;
        Some((tag, content))
    }
}

/// One attribute of a parsed DN: OID content bytes, string tag and value bytes.
type Attr<'a> = (&'a [u8], u8, &'a [u8]);

/// Parses the DER of a `Name` into its attributes in order.
pub fn attributes(der: &[u8]) -> Option<Vec<Attr<'_>>> {
    let mut outer = Der(der);
    let (tag, name) = outer.next()?;
    if tag != TAG_SEQUENCE || !outer.0.is_empty() {
        return None;
    }
    let mut rdns = Der(name);
    let mut out = Vec::new();
    while !rdns.0.is_empty() {
        let (tag, set) = rdns.next()?;
        if tag != TAG_SET {
            return None;
        }
        let mut atvs = Der(set);
        while !atvs.0.is_empty() {
            let (tag, atv) = atvs.next()?;
            if tag != TAG_SEQUENCE {
                return None;
            }
            let mut fields = Der(atv);
            let (oid_tag, oid) = fields.next()?;
            let (value_tag, value) = fields.next()?;
            if oid_tag != TAG_OID {
                return None;
            }
            out.push((oid, value_tag, value));
        }
    }
    Some(out)
}

fn oid_to_dotted(oid: &[u8]) -> String {
    let mut arcs = Vec::new();
    let mut v: u64 = 0;
    for b in oid {
        v = (v << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(v);
            v = 0;
        }
    }
    let mut s = String::new();
    if let Some(first) = arcs.first() {
        let (a, b) = if *first >= 80 { (2, first - 80) } else { (first / 40, first % 40) };
        s = format!("{a}.{b}");
    }
    for arc in arcs.iter().skip(1) {
        s.push_str(&format!(".{arc}"));
    }
    s
}

fn value_string(tag: u8, value: &[u8]) -> String {
    match tag {
        TAG_BMP => {
            let units: Vec<u16> = value
                .chunks_exact(2)
                .map(|c| {
                    u16::from_be_bytes([
                        c.first().copied().unwrap_or(0),
                        c.get(1).copied().unwrap_or(0),
                    ])
                })
                .collect();
            String::from_utf16_lossy(&units)
        }
        TAG_UTF8 | TAG_PRINTABLE | TAG_IA5 | TAG_T61 => String::from_utf8_lossy(value).into_owned(),
        _ => {
            let mut s = String::from("#");
            for b in value {
                s.push_str(&format!("{b:02x}"));
            }
            s
        }
    }
}

/// Writes a `Name` DER as `C=CH, O=strongSwan, CN=moon`, or `None` when it does not parse.
pub fn to_string(der: &[u8]) -> Option<String> {
    let attrs = attributes(der)?;
    let parts: Vec<String> = attrs
        .iter()
        .map(|(oid, tag, value)| {
            let name = name_of(oid).map_or_else(|| oid_to_dotted(oid), str::to_owned);
            let value = value_string(*tag, value).replace(',', "\\,");
            format!("{name}={value}")
        })
        .collect();
    Some(parts.join(", "))
}

/// Whether two `Name` DERs name the same entity: the same attributes in the same order with
/// values equal ignoring ASCII case, whatever string type each side used. Falls back to byte
/// equality when either does not parse.
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    match (attributes(a), attributes(b)) {
        (Some(x), Some(y)) => {
            x.len() == y.len()
                && x.iter().zip(&y).all(|((oa, ta, va), (ob, tb, vb))| {
                    oa == ob && value_string(*ta, va).eq_ignore_ascii_case(&value_string(*tb, vb))
                })
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn encodes_like_openssl_and_strongswan() {
        // `openssl req -subj /C=CH/O=strongSwan/CN=moon` subject DER.
        let der = encode("C=CH, O=strongSwan, CN=moon").unwrap();
        let expected = "3031310b3009060355040613024348311330110603550\
                        40a130a7374726f6e675377616e310d300b0603550403\
                        13046d6f6f6e";
        assert_eq!(hex::encode(&der), expected.replace(' ', ""));
        let attrs = attributes(&der).unwrap();
        assert_eq!(attrs.len(), 3);
        assert_eq!(to_string(&der).unwrap(), "C=CH, O=strongSwan, CN=moon");
        assert_eq!(encode("/C=CH/O=strongSwan/CN=moon").unwrap(), der);
        assert_eq!(
            encode("countryName=CH,organizationName=strongSwan,commonName=moon").unwrap(),
            der
        );
    }

    #[test]
    fn semantic_equality_ignores_case_and_string_type() {
        let a = encode("C=CH, O=strongSwan, CN=moon").unwrap();
        let b = encode("c=ch, o=STRONGSWAN, cn=Moon").unwrap();
        assert!(equal(&a, &b));
        let c = encode("C=CH, O=strongSwan, CN=sun").unwrap();
        assert!(!equal(&a, &c));
        let reordered = encode("CN=moon, O=strongSwan, C=CH").unwrap();
        assert!(!equal(&a, &reordered));
        let utf8 = encode("CN=mööñ").unwrap();
        assert_eq!(to_string(&utf8).unwrap(), "CN=mööñ");
    }

    #[test]
    fn garbage_does_not_parse_and_never_panics() {
        assert!(to_string(&[0x30, 0x05, 0x31]).is_none());
        assert!(to_string(&[]).is_none());
        assert!(encode("nonsense").is_err());
        assert!(encode("XYZ=1").is_err());
        assert_eq!(to_string(&encode("2.5.4.3=moon").unwrap()).unwrap(), "CN=moon");
    }
}
