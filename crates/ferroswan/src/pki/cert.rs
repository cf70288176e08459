//! A parsed X.509 certificate: the few fields IKE authentication needs, and the raw DER.

use core::fmt;
use std::net::IpAddr;

use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Decode, Encode, Reader, SliceReader};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, SubjectAltName};
use x509_cert::time::Time;

use super::alg::{PublicKey, Scheme, VerifyError};

const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");

/// A subjectAltName entry IKE identities can match (RFC 7296 §3.5 ID types).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AltName {
    /// `dNSName`, matched by `ID_FQDN` ignoring ASCII case.
    Dns(String),
    /// `rfc822Name`, matched by `ID_RFC822_ADDR` ignoring ASCII case.
    Email(String),
    /// `iPAddress`, matched by `ID_IPV4_ADDR` / `ID_IPV6_ADDR`.
    Ip(IpAddr),
    /// `directoryName` (DER of the `Name`), matched by `ID_DER_ASN1_DN`.
    Dn(Vec<u8>),
}

impl fmt::Display for AltName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(s) | Self::Email(s) => f.write_str(s),
            Self::Ip(ip) => write!(f, "{ip}"),
            Self::Dn(der) => f.write_str(&dn_string(der)),
        }
    }
}

/// An X.509 certificate as IKE authentication uses it.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    tbs: Vec<u8>,
    signature_alg: Vec<u8>,
    signature: Vec<u8>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    not_before: Time,
    not_after: Time,
    spki: Vec<u8>,
    public_key: Result<PublicKey, String>,
    ca: bool,
    alt_names: Vec<AltName>,
}

impl Certificate {
    /// Parses one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let cert = x509_cert::Certificate::from_der(der).map_err(|e| e.to_string())?;
        // The exact TBS bytes as received, for the signature check.
        let mut reader = SliceReader::new(der).map_err(|e| e.to_string())?;
        let tbs = reader
            .sequence(|r| {
                let tbs = r.tlv_bytes()?;
                r.tlv_bytes()?;
                r.tlv_bytes()?;
                Ok(tbs.to_vec())
            })
            .map_err(|e| e.to_string())?;
        let tbs_cert = &cert.tbs_certificate;
        let mut ca = false;
        let mut alt_names = Vec::new();
        for ext in tbs_cert.extensions.iter().flatten() {
            let value = ext.extn_value.as_bytes();
            if ext.extn_id == BASIC_CONSTRAINTS {
                ca = BasicConstraints::from_der(value)
                    .map_err(|e| format!("basicConstraints: {e}"))?
                    .ca;
            } else if ext.extn_id == SUBJECT_ALT_NAME {
                let san =
                    SubjectAltName::from_der(value).map_err(|e| format!("subjectAltName: {e}"))?;
                alt_names.extend(san.0.iter().filter_map(alt_name));
            }
        }
        let enc = |e: x509_cert::der::Error| e.to_string();
        Ok(Self {
            der: der.to_vec(),
            tbs,
            signature_alg: cert.signature_algorithm.to_der().map_err(enc)?,
            signature: cert.signature.as_bytes().ok_or("signature has unused bits")?.to_vec(),
            subject: tbs_cert.subject.to_der().map_err(enc)?,
            issuer: tbs_cert.issuer.to_der().map_err(enc)?,
            not_before: tbs_cert.validity.not_before,
            not_after: tbs_cert.validity.not_after,
            spki: tbs_cert.subject_public_key_info.to_der().map_err(enc)?,
            public_key: PublicKey::from_spki(&tbs_cert.subject_public_key_info),
            ca,
            alt_names,
        })
    }

    /// Parses every certificate of a PEM file, or one DER certificate.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Vec<Self>, String> {
        if bytes.starts_with(b"-----") || bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            let certs = x509_cert::Certificate::load_pem_chain(bytes)
                .map_err(|e| format!("bad PEM ({e})"))?;
            if certs.is_empty() {
                return Err("no CERTIFICATE block in the PEM file".to_owned());
            }
            certs.iter().map(|c| Self::from_der(&c.to_der().map_err(|e| e.to_string())?)).collect()
        } else {
            Self::from_der(bytes).map(|c| vec![c])
        }
    }

    /// The certificate DER, as sent in a CERT payload.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject `Name` DER (what `ID_DER_ASN1_DN` carries).
    pub fn subject_der(&self) -> &[u8] {
        &self.subject
    }

    /// The issuer `Name` DER.
    pub fn issuer_der(&self) -> &[u8] {
        &self.issuer
    }

    /// The subject as `C=CH, O=strongSwan, CN=moon`.
    pub fn subject(&self) -> String {
        dn_string(&self.subject)
    }

    /// The issuer as `C=CH, O=strongSwan, CN=Root CA`.
    pub fn issuer(&self) -> String {
        dn_string(&self.issuer)
    }

    /// The `SubjectPublicKeyInfo` DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// Whether basicConstraints says CA=true.
    pub fn is_ca(&self) -> bool {
        self.ca
    }

    /// Whether the certificate is self-signed by name (subject equals issuer).
    pub fn is_self_issued(&self) -> bool {
        ferroswan_proto::ikev2::dn::equal(&self.subject, &self.issuer)
    }

    /// The subjectAltNames IKE can match.
    pub fn alt_names(&self) -> &[AltName] {
        &self.alt_names
    }

    /// notBefore, seconds since the Unix epoch.
    pub fn not_before_unix(&self) -> u64 {
        self.not_before.to_unix_duration().as_secs()
    }

    /// notAfter, seconds since the Unix epoch.
    pub fn not_after_unix(&self) -> u64 {
        self.not_after.to_unix_duration().as_secs()
    }

    /// notBefore as `2025-01-01 00:00:00 UTC`.
    pub fn not_before(&self) -> String {
        time_string(&self.not_before)
    }

    /// notAfter as `2025-01-01 00:00:00 UTC`.
    pub fn not_after(&self) -> String {
        time_string(&self.not_after)
    }

    pub(crate) fn public_key(&self) -> Result<&PublicKey, String> {
        self.public_key.as_ref().map_err(Clone::clone)
    }

    /// Checks this certificate's signature with `issuer`'s public key.
    pub(crate) fn verify_signed_by(&self, issuer: &Self) -> Result<(), String> {
        let key = issuer.public_key()?;
        let scheme = Scheme::from_der(&self.signature_alg)?;
        key.verify(scheme, &self.tbs, &self.signature).map_err(|e| match e {
            VerifyError::Invalid(name) => format!("{name} signature does not verify"),
            VerifyError::Unsupported(s) | VerifyError::WrongKey(s) => s,
        })
    }

    /// The signatureAlgorithm DER (tests compare it with our AUTH identifiers).
    #[cfg(test)]
    pub(crate) fn signature_alg_der(&self) -> &[u8] {
        &self.signature_alg
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Certificate(\"{}\" issued by \"{}\")", self.subject(), self.issuer())
    }
}

fn alt_name(name: &GeneralName) -> Option<AltName> {
    Some(match name {
        GeneralName::DnsName(s) => AltName::Dns(s.as_str().to_owned()),
        GeneralName::Rfc822Name(s) => AltName::Email(s.as_str().to_owned()),
        GeneralName::IpAddress(ip) => {
            let b = ip.as_bytes();
            if let Ok(v4) = <[u8; 4]>::try_from(b) {
                AltName::Ip(IpAddr::from(v4))
            } else {
                AltName::Ip(IpAddr::from(<[u8; 16]>::try_from(b).ok()?))
            }
        }
        GeneralName::DirectoryName(n) => AltName::Dn(n.to_der().ok()?),
        _ => return None,
    })
}

/// A DN for messages.
pub(crate) fn dn_string(der: &[u8]) -> String {
    ferroswan_proto::ikev2::dn::to_string(der)
        .unwrap_or_else(|| format!("(unparsable DN of {} bytes)", der.len()))
}

fn time_string(t: &Time) -> String {
    let d = t.to_date_time();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        d.year(),
        d.month(),
        d.day(),
        d.hour(),
        d.minutes(),
        d.seconds()
    )
}
