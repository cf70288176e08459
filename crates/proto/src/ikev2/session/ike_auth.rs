//! IKE_AUTH (RFC 7296 §1.2, §2.15): identities, AUTH, certificates, and the first CHILD_SA.

use std::time::Instant;

use super::child::LocalCreate;
use super::ike_sa_init::InitResult;
use super::unique::UniquenessCheck;
use super::{
    Established, Event, FailureKind, IkeSaInfo, Procedure, Session, State, error_notify, notify,
};
use crate::ikev2::auth::{
    self, AuthError, AuthVerified, PeerAuth, id_body, signed_octets, verify_psk, verify_signature,
};
use crate::ikev2::config::{IkeConfig, LocalAuth, RemoteAuth};
use crate::ikev2::identity::Identity;
use crate::wire::ikev2::{
    Auth, AuthMethod, Cert, CertEncoding, ExchangeType, HeaderRepr, Id, Notify, NotifyType, Payload,
};

/// The initiator, waiting for the IKE_AUTH response.
pub(super) struct LocalIkeAuth {
    init: InitResult,
    local_id: Identity,
    child: Option<LocalCreate>,
}

/// The responder, waiting for the IKE_AUTH request.
pub(super) struct RemoteIkeAuth {
    pub(super) init: InitResult,
}

/// Our identity for `config`: `local.id`, else the certificate's subject, else our address.
fn local_identity(config: &IkeConfig, local: core::net::SocketAddr) -> Identity {
    if let Some(id) = &config.local_id {
        return id.clone();
    }
    if let LocalAuth::Signature(signer) = &config.local_auth
        && let Some(id) = signer.default_identity()
    {
        return id;
    }
    Identity::from_ip(local.ip())
}

fn id_payload(id: &Identity) -> Id {
    Id { id_type: id.ty, data: id.data.clone() }
}

fn identity(id: &Id) -> Identity {
    Identity { ty: id.id_type, data: id.data.clone() }
}

impl Session {
    /// `<SignedOctets>` of one side (RFC 7296 §2.15): its IKE_SA_INIT message, the other side's
    /// nonce, and `prf(SK_p, IDx')` with that side's SK_p (`ours`) and identity.
    fn octets_of(
        &self,
        ours: bool,
        message: &[u8],
        other_nonce: &[u8],
        id: &Identity,
    ) -> Result<Vec<u8>, String> {
        let crypto = self.crypto.as_ref().ok_or("no IKE keys")?;
        let sk_p = if ours { &crypto.sk_p_ours } else { &crypto.sk_p_peer };
        signed_octets(crypto.prf, message, other_nonce, sk_p.expose(), &id_body(id))
            .map_err(|e| e.to_string())
    }

    /// Builds our AUTH payload (and CERT payloads) over `octets`.
    fn our_auth(
        &self,
        config: &IkeConfig,
        local_id: &Identity,
        remote_id: Option<&Identity>,
        octets: &[u8],
        peer_hashes: &[u16],
    ) -> Result<Vec<Payload>, String> {
        let crypto = self.crypto.as_ref().ok_or("no IKE keys")?;
        match &config.local_auth {
            LocalAuth::Psk => {
                let store = config.psks.as_ref().ok_or_else(|| {
                    format!("local.auth = psk but no secrets are loaded (add secrets.ike with id {local_id})")
                })?;
                let secret = store.psk(local_id, remote_id).ok_or_else(|| {
                    format!(
                        "no pre-shared key for {local_id} - {} (add a secrets.ike section whose id matches)",
                        remote_id.map_or_else(|| "%any".to_owned(), ToString::to_string)
                    )
                })?;
                let data = auth::psk_auth(crypto.prf, secret.expose(), octets)
                    .map_err(|e| format!("PSK MAC failed: {e}"))?;
                Ok(vec![Payload::Auth(Auth {
                    method: AuthMethod::SHARED_KEY_MESSAGE_INTEGRITY_CODE,
                    data: data.expose().to_vec(),
                })])
            }
            LocalAuth::Signature(signer) => {
                let mut out: Vec<Payload> = signer
                    .certificates()
                    .into_iter()
                    .map(|data| {
                        Payload::Cert(Cert {
                            encoding: CertEncoding::X509_CERTIFICATE_SIGNATURE,
                            data,
                        })
                    })
                    .collect();
                let (method, data) = signer.sign(octets, peer_hashes).map_err(|e| e.to_string())?;
                out.push(Payload::Auth(Auth { method, data }));
                Ok(out)
            }
        }
    }

    /// Checks the peer's AUTH payload; the proof comes out only if it verified.
    #[allow(clippy::too_many_arguments)]
    fn verify_peer(
        &self,
        now: Instant,
        config: &IkeConfig,
        local_id: &Identity,
        peer_id: &Identity,
        auth_payload: &Auth,
        certs: &[(u8, Vec<u8>)],
        octets: &[u8],
    ) -> Result<AuthVerified, AuthError> {
        if !config.remote_id.matches(peer_id) {
            return Err(AuthError::IdMismatch {
                expected: config.remote_id.to_string(),
                got: peer_id.to_string(),
            });
        }
        let crypto =
            self.crypto.as_ref().ok_or(AuthError::Crypto(crate::crypto::CryptoError::Internal))?;
        match &config.remote_auth {
            RemoteAuth::Psk => {
                if auth_payload.method != AuthMethod::SHARED_KEY_MESSAGE_INTEGRITY_CODE {
                    return Err(AuthError::WrongMethod {
                        expected: "psk".into(),
                        got: auth_payload.method,
                    });
                }
                let secret =
                    config.psks.as_ref().and_then(|s| s.psk(local_id, Some(peer_id))).ok_or_else(
                        || AuthError::NoPsk {
                            local: local_id.to_string(),
                            remote: peer_id.to_string(),
                        },
                    )?;
                verify_psk(crypto.prf, secret.expose(), octets, &auth_payload.data, peer_id.clone())
            }
            RemoteAuth::Signature(verifier) => {
                if !auth::is_signature(auth_payload.method) {
                    return Err(AuthError::WrongMethod {
                        expected: "pubkey".into(),
                        got: auth_payload.method,
                    });
                }
                verify_signature(
                    verifier.as_ref(),
                    &PeerAuth {
                        id: peer_id,
                        certs,
                        method: auth_payload.method,
                        auth_data: &auth_payload.data,
                        signed_octets: octets,
                        now_unix: self.unix_time(now),
                    },
                )
            }
        }
    }

    /// Initiator: sends IKE_AUTH after a successful IKE_SA_INIT.
    pub(super) fn start_ike_auth(&mut self, now: Instant, init: InitResult, child: Option<String>) {
        let config = self.config.clone();
        let local_id = local_identity(&config, self.local);
        let remote_id = match &config.remote_id {
            crate::ikev2::identity::IdMatcher::Exact(id) => Some(id.clone()),
            crate::ikev2::identity::IdMatcher::Any => None,
        };
        let octets = match self.octets_of(true, &init.our_message, &init.nr, &local_id) {
            Ok(o) => o,
            Err(e) => {
                self.fail_ike(FailureKind::Local, format!("could not compute AUTH: {e}"));
                return;
            }
        };
        let auth_payloads =
            match self.our_auth(&config, &local_id, remote_id.as_ref(), &octets, &init.peer_hashes)
            {
                Ok(p) => p,
                Err(e) => {
                    self.fail_ike(FailureKind::Authentication, e);
                    return;
                }
            };
        let mut payloads = vec![Payload::IdI(id_payload(&local_id))];
        let (certs, auth): (Vec<Payload>, Vec<Payload>) =
            auth_payloads.into_iter().partition(|p| matches!(p, Payload::Cert(_)));
        payloads.extend(certs);
        if let RemoteAuth::Signature(verifier) = &config.remote_auth {
            let data = verifier.certreq();
            if config.send_certreq && !data.is_empty() {
                payloads.push(Payload::CertReq(Cert {
                    encoding: CertEncoding::X509_CERTIFICATE_SIGNATURE,
                    data,
                }));
            }
        }
        if let Some(id) = &remote_id {
            payloads.push(Payload::IdR(id_payload(id)));
        }
        payloads.extend(auth);
        if self.sends_initial_contact() && !self.reauth.is_reauth {
            // Not when reauthenticating: the peer would drop the IKE SA we replace before the
            // new one carries the CHILD_SAs (make-before-break).
            payloads.push(Payload::Notify(Notify::new(NotifyType::INITIAL_CONTACT, Vec::new())));
        }
        let mut local_create = None;
        if let Some(name) = child {
            match self.child_config(&name) {
                Some(cfg) => match self.prepare_child(&cfg, false, self.initial_trigger.as_ref()) {
                    Ok((create, child_payloads)) => {
                        payloads.extend(child_payloads);
                        local_create = Some(create);
                    }
                    Err(e) => {
                        self.fail_ike(FailureKind::Local, e);
                        return;
                    }
                },
                None => {
                    self.fail_ike(FailureKind::Local, format!("connection has no child '{name}'"));
                    return;
                }
            }
        }
        self.state = State::CreateIkeLocalIkeAuth(Box::new(LocalIkeAuth {
            init,
            local_id,
            child: local_create,
        }));
        self.send_protected_request(now, ExchangeType::IKE_AUTH, &payloads, Procedure::IkeAuth);
    }

    /// Initiator: the IKE_AUTH response.
    pub(super) fn process_ike_auth_response(&mut self, now: Instant, payloads: &[Payload]) {
        let state = core::mem::replace(&mut self.state, State::Closed);
        let State::CreateIkeLocalIkeAuth(auth_state) = state else {
            self.state = state;
            return;
        };
        let LocalIkeAuth { init, local_id, child } = *auth_state;
        let idr = first!(payloads, IdR);
        let auth_payload = first!(payloads, Auth);
        let (Some(idr), Some(auth_payload)) = (idr, auth_payload) else {
            let message = match error_notify(payloads) {
                Some(n) if n.ty == NotifyType::AUTHENTICATION_FAILED => format!(
                    "peer rejected our authentication (AUTHENTICATION_FAILED): {}",
                    self.auth_rejected_hint(&local_id)
                ),
                Some(n) => format!("peer answered IKE_AUTH with {}", n.ty),
                None => "IKE_AUTH response lacks IDr or AUTH".to_owned(),
            };
            let kind = if error_notify(payloads).is_some() {
                FailureKind::Authentication
            } else {
                FailureKind::Protocol
            };
            if kind == FailureKind::Protocol {
                // The responder thinks it is done; tell it (strongSwan: "IDr payload missing").
                self.send_auth_failed_informational();
            }
            self.fail_ike(kind, message);
            return;
        };
        let peer_id = identity(idr);
        let octets = match self.octets_of(false, &init.peer_message, &init.ni, &peer_id) {
            Ok(o) => o,
            Err(e) => {
                self.fail_ike(FailureKind::Local, format!("could not compute AUTH: {e}"));
                return;
            }
        };
        let certs = cert_payloads(payloads);
        let config = self.config.clone();
        let verified = match self.verify_peer(
            now,
            &config,
            &local_id,
            &peer_id,
            auth_payload,
            &certs,
            &octets,
        ) {
            Ok(v) => v,
            Err(e) => {
                let kind = if matches!(e, AuthError::IdMismatch { .. }) {
                    FailureKind::Identity
                } else {
                    FailureKind::Authentication
                };
                self.send_auth_failed_informational();
                self.fail_ike(kind, format!("authentication of peer '{peer_id}' failed: {e}"));
                return;
            }
        };
        self.establish(now, local_id, verified);
        if let Some(create) = child {
            if let Some(n) = error_notify(payloads) {
                let name = create.name().to_owned();
                let msg = self.child_refusal_message(&create, n.ty);
                self.fail_child(&name, child_failure_kind(n.ty), msg);
            } else {
                self.complete_child(now, create, payloads, &init.ni, &init.nr);
            }
        }
        self.run_queue(now);
    }

    /// Responder: the IKE_AUTH request.
    pub(super) fn process_ike_auth_request(
        &mut self,
        now: Instant,
        header: HeaderRepr,
        payloads: &[Payload],
    ) {
        let state = core::mem::replace(&mut self.state, State::Closed);
        let State::CreateIkeRemoteIkeAuth(remote) = state else {
            self.state = state;
            // IKE_AUTH on an established SA (or EAP, multiple auth rounds): not supported.
            self.send_protected_response(
                ExchangeType::IKE_AUTH,
                header.message_id,
                &[Payload::Notify(Notify::new(NotifyType::INVALID_SYNTAX, Vec::new()))],
            );
            return;
        };
        self.half_open_deadline = None;
        let init = remote.init;
        let idi = first!(payloads, IdI);
        let auth_payload = first!(payloads, Auth);
        let (Some(idi), Some(auth_payload)) = (idi, auth_payload) else {
            let eap = payloads.iter().any(|p| matches!(p, Payload::Eap(_))) || idi.is_some();
            self.refuse_auth(
                header,
                FailureKind::Protocol,
                if eap {
                    "peer wants EAP authentication (no AUTH payload), which is not supported"
                        .to_owned()
                } else {
                    "IKE_AUTH request lacks IDi or AUTH".to_owned()
                },
            );
            return;
        };
        let peer_id = identity(idi);
        let wanted_local = first!(payloads, IdR).map(identity);
        // Pick the connection by identity (strongSwan's peer_cfg selection).
        let config = self.candidates.iter().find(|c| {
            c.remote_id.matches(&peer_id)
                && wanted_local.as_ref().is_none_or(|w| local_identity(c, self.local) == *w)
        });
        let Some(config) = config.cloned() else {
            let configured: Vec<String> = self
                .candidates
                .iter()
                .map(|c| {
                    format!(
                        "{}: remote.id={} local.id={}",
                        c.name,
                        c.remote_id,
                        local_identity(c, self.local)
                    )
                })
                .collect();
            self.refuse_auth(
                header,
                FailureKind::Identity,
                format!(
                    "no connection accepts peer identity '{peer_id}'{} (configured: {})",
                    wanted_local
                        .map_or_else(String::new, |w| format!(" asking for our identity '{w}'")),
                    if configured.is_empty() { "none".to_owned() } else { configured.join("; ") }
                ),
            );
            return;
        };
        self.config = config.clone();
        let local_id = local_identity(&config, self.local);
        let Ok(octets) = self.octets_of(false, &init.peer_message, &init.nr, &peer_id) else {
            return;
        };
        let certs = cert_payloads(payloads);
        let verified = match self.verify_peer(
            now,
            &config,
            &local_id,
            &peer_id,
            auth_payload,
            &certs,
            &octets,
        ) {
            Ok(v) => v,
            Err(e) => {
                self.refuse_auth(
                    header,
                    FailureKind::Authentication,
                    format!("authentication of peer '{peer_id}' failed: {e}"),
                );
                return;
            }
        };
        // RFC 7296 §2.4: the peer says this is its only IKE SA with us (it restarted).
        let initial_contact = config.unique != crate::ikev2::config::UniquePolicy::Never
            && notify(payloads, NotifyType::INITIAL_CONTACT).is_some();
        if config.unique == crate::ikev2::config::UniquePolicy::Keep
            && !initial_contact
            && let Some(existing) = self.kept_duplicate(&config.name, &local_id, &peer_id)
        {
            let message = format!(
                "refusing a second IKE SA with '{peer_id}' from {} (unique = keep): connection \
                 '{}' already has one with it at {}",
                self.remote.ip(),
                config.name,
                existing.remote
            );
            self.refuse_auth(header, FailureKind::Authentication, message);
            return;
        }
        let Ok(our_octets) = self.octets_of(true, &init.our_message, &init.ni, &local_id) else {
            return;
        };
        let auth_payloads =
            match self.our_auth(&config, &local_id, Some(&peer_id), &our_octets, &init.peer_hashes)
            {
                Ok(p) => p,
                Err(e) => {
                    self.refuse_auth(header, FailureKind::Authentication, e);
                    return;
                }
            };
        let mut response = vec![Payload::IdR(id_payload(&local_id))];
        response.extend(auth_payloads);
        self.establish(now, local_id, verified);
        self.unique.contacts = Vec::new();
        self.unique.check = Some(UniquenessCheck { initial_contact });
        let child_result = if payloads.iter().any(|p| matches!(p, Payload::Sa(_))) {
            Some(self.respond_child(now, payloads, &init.ni, &init.nr, None, false))
        } else {
            None
        };
        match child_result {
            Some(Ok((up, child_payloads))) => {
                response.extend(child_payloads);
                self.send_protected_response(ExchangeType::IKE_AUTH, header.message_id, &response);
                self.install_child(*up);
            }
            Some(Err(refusal)) => {
                response.push(Payload::Notify(Notify::new(refusal.notify, Vec::new())));
                self.send_protected_response(ExchangeType::IKE_AUTH, header.message_id, &response);
                let name = refusal.child.clone().unwrap_or_else(|| "(no child)".to_owned());
                self.fail_child(&name, refusal.kind, refusal.message);
            }
            None => {
                self.send_protected_response(ExchangeType::IKE_AUTH, header.message_id, &response)
            }
        }
    }

    /// What to check when the peer refused our AUTH, naming our identity.
    pub(super) fn auth_rejected_hint(&self, local_id: &Identity) -> String {
        match self.config.local_auth {
            LocalAuth::Psk => format!(
                "check that it has the same pre-shared key for our identity '{local_id}', and \
                 that its remote.id accepts '{local_id}'"
            ),
            LocalAuth::Signature(_) => format!(
                "check that it trusts the CA of our certificate, that the certificate is valid \
                 by its clock and contains our identity '{local_id}', and that its remote.id \
                 accepts '{local_id}'"
            ),
        }
    }

    /// Answers AUTHENTICATION_FAILED, records why, and closes.
    fn refuse_auth(&mut self, header: HeaderRepr, kind: FailureKind, message: String) {
        self.send_protected_response(
            ExchangeType::IKE_AUTH,
            header.message_id,
            &[Payload::Notify(Notify::new(NotifyType::AUTHENTICATION_FAILED, Vec::new()))],
        );
        self.fail_ike(kind, message);
    }

    /// Moves to `Established` and reports it.
    fn establish(&mut self, now: Instant, local_id: Identity, auth: AuthVerified) {
        let Some(suite) = self.suite else { return };
        let info = IkeSaInfo {
            name: self.config.name.clone(),
            role: self.role,
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            local: self.local,
            remote: self.remote,
            local_id,
            remote_id: auth.peer_id.clone(),
            suite,
            nat_local: self.nat_local,
            nat_remote: self.nat_remote,
        };
        self.events.push_back(Event::Established(info.clone()));
        self.state = State::Established(Box::new(Established { info, auth }));
        self.was_established = true;
        self.arm_ike_timers(now);
    }
}

/// The X.509 CERT payloads as (encoding, data).
fn cert_payloads(payloads: &[Payload]) -> Vec<(u8, Vec<u8>)> {
    payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Cert(c) => Some((c.encoding.0, c.data.clone())),
            _ => None,
        })
        .collect()
}

/// The failure kind of a CHILD_SA error notify.
pub(super) fn child_failure_kind(ty: NotifyType) -> FailureKind {
    match ty {
        NotifyType::NO_PROPOSAL_CHOSEN | NotifyType::INVALID_KE_PAYLOAD => FailureKind::Proposal,
        NotifyType::TS_UNACCEPTABLE | NotifyType::SINGLE_PAIR_REQUIRED => {
            FailureKind::TrafficSelectors
        }
        _ => FailureKind::PeerError,
    }
}
