//! [`CertVerifier`]: the peer's certificate chain, identity and AUTH signature, as the IKE core's
//! [`PeerVerifier`].

use ferroswan_proto::ikev2::auth::{AuthError, PeerAuth, PeerVerifier};
use ferroswan_proto::ikev2::dn;
use ferroswan_proto::ikev2::identity::{IdMatcher, Identity};
use ferroswan_proto::wire::ikev2::{AuthMethod, CertEncoding, IdType};

use super::alg::{self, Curve, Hash, Scheme, VerifyError};
use super::cert::{AltName, Certificate};
use super::util::sha1;

/// The longest chain we follow (end-entity plus intermediates), as a guard against loops.
const MAX_CHAIN: usize = 8;

/// Verifies a peer that authenticates with a certificate:
///
/// 1. its ID matches the configured `remote.id` ([`IdMatcher`]);
/// 2. the end-entity certificate (the first X.509 CERT payload, else a configured
///    `remote.certs` one that binds the ID) carries the ID as subject DN or subjectAltName;
/// 3. it chains, through intermediates the peer sent, to one of the trusted CAs, each signature
///    verifying, each certificate within its validity, each issuer with CA=true;
/// 4. the AUTH signature over the signed octets verifies with the end-entity key (methods 1,
///    9, 10, 11, 14), in a scheme that fits the key type.
///
/// Revocation (CRL, OCSP) is not checked yet.
#[derive(Debug)]
pub struct CertVerifier {
    trusted: Vec<Certificate>,
    pinned: Vec<Certificate>,
    remote_id: IdMatcher,
}

impl CertVerifier {
    /// A verifier trusting `trusted` CAs, accepting peers whose ID `remote_id` matches.
    /// `pinned` are configured peer certificates (`remote.certs`), used when the peer sends none.
    pub fn new(trusted: Vec<Certificate>, pinned: Vec<Certificate>, remote_id: IdMatcher) -> Self {
        Self { trusted, pinned, remote_id }
    }

    fn configured_cas(&self) -> String {
        let names: Vec<String> =
            self.trusted.iter().map(|c| format!("\"{}\"", c.subject())).collect();
        names.join(", ")
    }

    /// Follows the chain from `ee` to a trusted CA.
    fn check_chain(&self, ee: &Certificate, sent: &[Certificate], now: u64) -> Result<(), String> {
        let mut current = ee;
        for _ in 0..MAX_CHAIN {
            check_validity(current, now)?;
            let issued_by = |c: &&Certificate| dn::equal(c.subject_der(), current.issuer_der());
            let mut last_error = None;
            for ca in self.trusted.iter().filter(issued_by) {
                match current.verify_signed_by(ca) {
                    Ok(()) => return check_validity(ca, now),
                    Err(e) => last_error = Some(e),
                }
            }
            if let Some(e) = last_error {
                return Err(format!(
                    "certificate \"{}\" is not signed by the trusted CA \"{}\": {e}",
                    current.subject(),
                    current.issuer()
                ));
            }
            let Some(next) = sent.iter().find(|c| issued_by(c) && !c.is_self_issued()) else {
                return Err(format!(
                    "no trusted CA for \"{}\" issued by \"{}\" (configured CAs: {})",
                    current.subject(),
                    current.issuer(),
                    self.configured_cas()
                ));
            };
            if !next.is_ca() {
                return Err(format!(
                    "certificate \"{}\" issued \"{}\" but is not a CA (no basicConstraints CA=true)",
                    next.subject(),
                    current.subject()
                ));
            }
            current.verify_signed_by(next).map_err(|e| {
                format!(
                    "certificate \"{}\" is not signed by intermediate \"{}\": {e}",
                    current.subject(),
                    next.subject()
                )
            })?;
            current = next;
        }
        Err(format!("certificate chain of \"{}\" is longer than {MAX_CHAIN}", ee.subject()))
    }
}

impl PeerVerifier for CertVerifier {
    fn verify(&self, auth: &PeerAuth<'_>) -> Result<(), AuthError> {
        if !id_matches(&self.remote_id, auth.id) {
            return Err(AuthError::IdMismatch {
                expected: self.remote_id.to_string(),
                got: auth.id.to_string(),
            });
        }
        let mut sent = Vec::new();
        for (i, (encoding, data)) in auth.certs.iter().enumerate() {
            if *encoding != CertEncoding::X509_CERTIFICATE_SIGNATURE.0 {
                continue;
            }
            sent.push(Certificate::from_der(data).map_err(|e| {
                AuthError::Certificate(format!(
                    "certificate #{} from peer \"{}\" does not parse: {e}",
                    i + 1,
                    auth.id
                ))
            })?);
        }
        let ee = match sent.first() {
            Some(ee) => ee,
            None => self.pinned.iter().find(|c| binds(c, auth.id)).ok_or_else(|| {
                AuthError::Certificate(format!(
                    "peer \"{}\" sent no X.509 certificate and none is configured for it \
                     (remote.certs)",
                    auth.id
                ))
            })?,
        };
        if !binds(ee, auth.id) {
            let sans: Vec<String> = ee.alt_names().iter().map(ToString::to_string).collect();
            return Err(AuthError::Certificate(format!(
                "identity \"{}\" is not in certificate \"{}\" (subjectAltNames: {})",
                auth.id,
                ee.subject(),
                if sans.is_empty() { "none".to_owned() } else { sans.join(", ") }
            )));
        }
        let intermediates = sent.get(1..).unwrap_or_default();
        self.check_chain(ee, intermediates, auth.now_unix).map_err(AuthError::Certificate)?;

        let key = ee.public_key().map_err(|e| {
            AuthError::Certificate(format!("certificate \"{}\": {e}", ee.subject()))
        })?;
        let (scheme, sig) = match auth.method {
            AuthMethod::RSA_DIGITAL_SIGNATURE => (Scheme::RsaPkcs1(Hash::Sha1), auth.auth_data),
            AuthMethod::ECDSA_SHA256_P256 => (Scheme::EcdsaFixed(Curve::P256), auth.auth_data),
            AuthMethod::ECDSA_SHA384_P384 => (Scheme::EcdsaFixed(Curve::P384), auth.auth_data),
            AuthMethod::ECDSA_SHA512_P521 => (Scheme::EcdsaFixed(Curve::P521), auth.auth_data),
            AuthMethod::DIGITAL_SIGNATURE => {
                alg::split_auth_data(auth.auth_data).map_err(AuthError::BadSignature)?
            }
            other => {
                return Err(AuthError::BadSignature(format!(
                    "AUTH method {other} is not a signature method"
                )));
            }
        };
        key.verify(scheme, auth.signed_octets, sig).map_err(|e| {
            AuthError::BadSignature(match e {
                VerifyError::Invalid(name) => format!(
                    "{name} AUTH signature of \"{}\" does not match the key of certificate \"{}\" \
                     (the peer signed with another key, or the IKE_SA_INIT messages were altered)",
                    auth.id,
                    ee.subject()
                ),
                VerifyError::Unsupported(s) => s,
                VerifyError::WrongKey(s) => format!("{s} (certificate \"{}\")", ee.subject()),
            })
        })
    }

    fn certreq(&self) -> Vec<u8> {
        self.trusted.iter().flat_map(|ca| sha1(ca.spki_der())).collect()
    }
}

fn check_validity(cert: &Certificate, now: u64) -> Result<(), String> {
    if now < cert.not_before_unix() {
        return Err(format!(
            "certificate \"{}\" is not valid before {} (check the clocks)",
            cert.subject(),
            cert.not_before()
        ));
    }
    if now > cert.not_after_unix() {
        return Err(format!("certificate \"{}\" expired on {}", cert.subject(), cert.not_after()));
    }
    Ok(())
}

/// Whether `id` is the certificate's subject DN or one of its subjectAltNames.
pub(crate) fn binds(cert: &Certificate, id: &Identity) -> bool {
    let text = || core::str::from_utf8(&id.data).ok();
    match id.ty {
        IdType::ID_DER_ASN1_DN => {
            dn::equal(cert.subject_der(), &id.data)
                || cert
                    .alt_names()
                    .iter()
                    .any(|n| matches!(n, AltName::Dn(d) if dn::equal(d, &id.data)))
        }
        IdType::ID_FQDN => cert.alt_names().iter().any(
            |n| matches!((n, text()), (AltName::Dns(d), Some(t)) if d.eq_ignore_ascii_case(t)),
        ),
        IdType::ID_RFC822_ADDR => cert.alt_names().iter().any(
            |n| matches!((n, text()), (AltName::Email(e), Some(t)) if e.eq_ignore_ascii_case(t)),
        ),
        IdType::ID_IPV4_ADDR | IdType::ID_IPV6_ADDR => {
            cert.alt_names().iter().any(|n| matches!(n, AltName::Ip(ip) if Some(*ip) == id.ip()))
        }
        _ => false,
    }
}

/// `remote.id` matching: DNs compare as DNs, names ignoring ASCII case (as strongSwan does).
fn id_matches(matcher: &IdMatcher, id: &Identity) -> bool {
    match matcher {
        IdMatcher::Exact(want) if want.ty == id.ty => match id.ty {
            IdType::ID_DER_ASN1_DN => dn::equal(&want.data, &id.data),
            IdType::ID_FQDN | IdType::ID_RFC822_ADDR => want.data.eq_ignore_ascii_case(&id.data),
            _ => want.data == id.data,
        },
        other => other.matches(id),
    }
}
