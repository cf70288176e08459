//! [`CredentialStore`]: certificates and keys loaded the way swanctl loads them.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferroswan_proto::ikev2::auth::{LocalSigner, PeerVerifier};
use ferroswan_proto::ikev2::identity::{IdMatcher, Identity};

use super::PkiError;
use super::cert::Certificate;
use super::key::PrivateKey;
use super::signer::CertSigner;
use super::verifier::{CertVerifier, binds};
use crate::config::Secrets;
use crate::config::connection::AuthRound;
use crate::config::secrets::PrivateKeyKind;

/// Key directories of the swanctl layout, all read as "any type".
const KEY_DIRS: &[&str] = &["private", "rsa", "ecdsa", "pkcs8"];

/// A file's content with its path.
#[derive(Debug)]
struct Loaded<T> {
    path: PathBuf,
    item: T,
}

/// The credentials of a swanctl configuration directory:
///
/// - `x509/`: our (and pinned peer) certificates; `x509ca/`: trusted CA certificates;
/// - `private/`, `rsa/`, `ecdsa/`, `pkcs8/`: private keys;
///
/// each file PEM or DER, plus the key files named in `secrets` ([`CredentialStore::add_secrets`]).
/// Like strongSwan, every key is loaded and a certificate's key is found by its public key.
#[derive(Debug, Default)]
pub struct CredentialStore {
    dir: PathBuf,
    certs: Vec<Loaded<Certificate>>,
    cacerts: Vec<Loaded<Certificate>>,
    keys: Vec<Loaded<Arc<PrivateKey>>>,
}

impl CredentialStore {
    /// Loads the certificate and key directories under `config_dir` (the directory of
    /// swanctl.conf). Missing directories are empty; a file that does not parse is an error
    /// naming it.
    pub fn load(config_dir: &Path) -> Result<Self, PkiError> {
        let mut store = Self { dir: config_dir.to_path_buf(), ..Self::default() };
        for path in dir_files(&config_dir.join("x509"))? {
            for item in read_certs(&path)? {
                store.certs.push(Loaded { path: path.clone(), item });
            }
        }
        for path in dir_files(&config_dir.join("x509ca"))? {
            for item in read_certs(&path)? {
                store.cacerts.push(Loaded { path: path.clone(), item });
            }
        }
        for dir in KEY_DIRS {
            for path in dir_files(&config_dir.join(dir))? {
                store.add_key_file(&path)?;
            }
        }
        Ok(store)
    }

    /// Loads the directories and then the key files of `secrets` (`private`, `rsa`, `ecdsa`,
    /// `pkcs8` sections; relative paths are relative to their directory).
    pub fn load_with_secrets(config_dir: &Path, secrets: &Secrets) -> Result<Self, PkiError> {
        let mut store = Self::load(config_dir)?;
        store.add_secrets(secrets)?;
        Ok(store)
    }

    /// Adds the key files named in `secrets`, skipping files already loaded.
    pub fn add_secrets(&mut self, secrets: &Secrets) -> Result<(), PkiError> {
        for key in &secrets.private_keys {
            let dir = match key.kind {
                PrivateKeyKind::Any => "private",
                PrivateKeyKind::Rsa => "rsa",
                PrivateKeyKind::Ecdsa => "ecdsa",
                PrivateKeyKind::Pkcs8 => "pkcs8",
                PrivateKeyKind::Pkcs12 => {
                    return Err(PkiError::Config {
                        place: format!("{} (secrets.{})", key.location, key.name),
                        reason: "PKCS#12 containers are not supported yet; extract the key and \
                                 certificate with `openssl pkcs12` into private/ and x509/"
                            .to_owned(),
                    });
                }
            };
            let path = self.dir.join(dir).join(&key.file);
            if !self.keys.iter().any(|k| k.path == path) {
                self.add_key_file(&path)?;
            }
        }
        Ok(())
    }

    fn add_key_file(&mut self, path: &Path) -> Result<(), PkiError> {
        let bytes = zeroize::Zeroizing::new(read(path)?);
        let key = PrivateKey::from_pem_or_der(&bytes)
            .map_err(|reason| PkiError::File { path: path.to_path_buf(), reason })?;
        self.keys.push(Loaded { path: path.to_path_buf(), item: Arc::new(key) });
        Ok(())
    }

    /// The end-entity certificates of `x509/`.
    pub fn certificates(&self) -> impl Iterator<Item = &Certificate> {
        self.certs.iter().map(|c| &c.item)
    }

    /// The CA certificates of `x509ca/`.
    pub fn ca_certificates(&self) -> impl Iterator<Item = &Certificate> {
        self.cacerts.iter().map(|c| &c.item)
    }

    fn key_for(&self, cert: &Certificate) -> Option<Arc<PrivateKey>> {
        let public = cert.public_key().ok()?;
        self.keys.iter().find(|k| k.item.public_key() == public).map(|k| Arc::clone(&k.item))
    }

    /// A certificate file of the config: absolute, or relative to `dir` (`x509`, `x509ca`).
    fn config_cert(&self, dir: &str, file: &Path) -> Result<Loaded<Certificate>, PkiError> {
        let path =
            if file.is_absolute() { file.to_path_buf() } else { self.dir.join(dir).join(file) };
        let mut certs = read_certs(&path)?;
        if certs.is_empty() {
            return Err(PkiError::File { path, reason: "holds no certificate".to_owned() });
        }
        Ok(Loaded { item: certs.remove(0), path })
    }

    /// The signer for a `local` round with `auth = pubkey` (or rsa, ecdsa …): its `certs`
    /// (`x509/`-relative or absolute; the first one signs), the matching private key, and the
    /// intermediate CAs from `x509ca/` to send along. Without `certs`, the first certificate in
    /// `x509/` that has a key and binds `id` is used, as strongSwan does.
    pub fn signer_for(&self, round: &AuthRound) -> Result<Arc<dyn LocalSigner>, PkiError> {
        let place = || format!("{} ({})", round.location, round.name);
        let id = match &round.id {
            Some(s) => Some(
                Identity::from_swanctl(s)
                    .map_err(|e| PkiError::Config { place: place(), reason: format!("id: {e}") })?,
            ),
            None => None,
        };
        let mut files: Vec<PathBuf> = round.certs.clone();
        files.extend(round.cert_sections.iter().filter_map(|s| s.file.clone()));
        let (cert, key) = match files.first() {
            Some(file) => {
                let cert = self.config_cert("x509", file)?;
                let key = self.key_for(&cert.item).ok_or_else(|| PkiError::NoPrivateKey {
                    path: cert.path.clone(),
                    subject: cert.item.subject(),
                })?;
                (cert.item, key)
            }
            None => self
                .certs
                .iter()
                .filter(|c| id.as_ref().is_none_or(|id| binds(&c.item, id)))
                .find_map(|c| self.key_for(&c.item).map(|k| (c.item.clone(), k)))
                .ok_or_else(|| PkiError::Config {
                    place: place(),
                    reason: format!(
                        "no certificate{} with a private key in {}; set certs = <file in x509/>",
                        id.as_ref().map(|i| format!(" for \"{i}\"")).unwrap_or_default(),
                        self.dir.join("x509").display()
                    ),
                })?,
        };
        if let Some(id) = id.as_ref().filter(|id| !binds(&cert, id)) {
            return Err(PkiError::Config {
                place: place(),
                reason: format!(
                    "id \"{id}\" is not in certificate \"{}\": use its subject DN or one of \
                         its subjectAltNames ({})",
                    cert.subject(),
                    alt_names(&cert)
                ),
            });
        }
        let chain = self.chain_for(cert);
        let signer = CertSigner::new(key, chain)
            .map_err(|reason| PkiError::Config { place: place(), reason })?;
        Ok(Arc::new(signer))
    }

    /// `cert` followed by the intermediate CAs (not self-signed) that issued it.
    fn chain_for(&self, cert: Certificate) -> Vec<Certificate> {
        let mut chain = vec![cert];
        while chain.len() < 8 {
            let Some(last) = chain.last() else { break };
            let issuer = self.cacerts.iter().chain(&self.certs).map(|c| &c.item).find(|ca| {
                ca.is_ca()
                    && !ca.is_self_issued()
                    && ferroswan_proto::ikev2::dn::equal(ca.subject_der(), last.issuer_der())
                    && last.verify_signed_by(ca).is_ok()
                    && !chain.iter().any(|c| c.der() == ca.der())
            });
            match issuer {
                Some(ca) => chain.push(ca.clone()),
                None => break,
            }
        }
        chain
    }

    /// The verifier for a `remote` round: trusts its `cacerts` (`x509ca/`-relative or
    /// absolute), or every CA of `x509ca/` when none is configured (strongSwan's behaviour);
    /// accepts peers whose ID `remote_id` matches and whose certificate binds that ID.
    pub fn verifier_for(
        &self,
        round: &AuthRound,
        remote_id: &IdMatcher,
    ) -> Result<Arc<dyn PeerVerifier>, PkiError> {
        let mut files: Vec<PathBuf> = round.cacerts.clone();
        files.extend(round.cacert_sections.iter().filter_map(|s| s.file.clone()));
        let trusted: Vec<Certificate> = if files.is_empty() {
            self.cacerts.iter().map(|c| c.item.clone()).collect()
        } else {
            files
                .iter()
                .map(|f| self.config_cert("x509ca", f).map(|c| c.item))
                .collect::<Result<_, _>>()?
        };
        if trusted.is_empty() {
            return Err(PkiError::Config {
                place: format!("{} ({})", round.location, round.name),
                reason: format!(
                    "no trusted CA: cacerts is not set and {} holds no certificate",
                    self.dir.join("x509ca").display()
                ),
            });
        }
        let pinned = round
            .certs
            .iter()
            .map(|f| self.config_cert("x509", f).map(|c| c.item))
            .collect::<Result<_, _>>()?;
        Ok(Arc::new(CertVerifier::new(trusted, pinned, remote_id.clone())))
    }
}

fn alt_names(cert: &Certificate) -> String {
    let names: Vec<String> = cert.alt_names().iter().map(ToString::to_string).collect();
    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
}

fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    fs::read(path).map_err(|e| PkiError::File {
        path: path.to_path_buf(),
        reason: format!("cannot read: {e}"),
    })
}

fn read_certs(path: &Path) -> Result<Vec<Certificate>, PkiError> {
    Certificate::from_pem_or_der(&read(path)?).map_err(|e| PkiError::File {
        path: path.to_path_buf(),
        reason: format!("not an X.509 certificate in PEM or DER ({e})"),
    })
}

/// The regular files of a directory, sorted; none when it does not exist.
fn dir_files(dir: &Path) -> Result<Vec<PathBuf>, PkiError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(PkiError::File {
                path: dir.to_path_buf(),
                reason: format!("cannot list: {e}"),
            });
        }
    };
    let mut files: Vec<PathBuf> =
        entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    Ok(files)
}
