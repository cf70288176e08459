//! INFORMATIONAL exchanges (RFC 7296 §1.4): DELETE of CHILD_SAs and of the IKE SA, the empty
//! request used as a liveness check, and AUTHENTICATION_FAILED after IKE_AUTH (§2.21.2).

use std::time::Instant;

use super::{ChildState, CloseReason, DownReason, Event, FailureKind, Procedure, Session, notify};
use crate::wire::ikev2::{
    Delete, ExchangeType, HeaderRepr, Notify, NotifyType, Payload, ProtocolId,
};

impl Session {
    /// Deletes our CHILD_SA `spi`; `gone`: one we no longer have (tell the peer only).
    pub(super) fn start_delete_child(&mut self, now: Instant, spi: u32, gone: bool) {
        match self.children.iter_mut().find(|c| c.inbound_spi == spi) {
            Some(c) => {
                if c.state != ChildState::Rekeyed {
                    c.state = ChildState::Deleting;
                }
            }
            None if gone => {}
            None => return,
        }
        let payloads = [Payload::Delete(Delete {
            protocol: ProtocolId::ESP,
            spi_size: 4,
            spis: vec![spi.to_be_bytes().to_vec()],
        })];
        self.send_protected_request(
            now,
            ExchangeType::INFORMATIONAL,
            &payloads,
            Procedure::DeleteChild(spi),
        );
    }

    pub(super) fn start_delete_ike(&mut self, now: Instant) {
        let payloads =
            [Payload::Delete(Delete { protocol: ProtocolId::IKE, spi_size: 0, spis: Vec::new() })];
        self.send_protected_request(
            now,
            ExchangeType::INFORMATIONAL,
            &payloads,
            Procedure::DeleteIke,
        );
    }

    pub(super) fn start_liveness(&mut self, now: Instant) {
        self.send_protected_request(now, ExchangeType::INFORMATIONAL, &[], Procedure::Liveness);
        let timeout = self.config.lifetime.dpd_timeout;
        if !timeout.is_zero()
            && let Some(out) = self.outstanding.as_mut()
        {
            out.give_up = Some(now + timeout);
            out.deadline = out.deadline.min(now + timeout);
        }
    }

    /// Initiator whose check of the responder's AUTH failed: tells the responder, which
    /// already considers the IKE SA established, in an INFORMATIONAL request (RFC 7296 §2.21.2:
    /// "the notification MAY be returned in a separate INFORMATIONAL exchange"). Sent once and
    /// not retransmitted, since our IKE SA is deleted right after, as strongSwan does
    /// (`send_auth_failed_informational` in `ike_auth.c`).
    pub(super) fn send_auth_failed_informational(&mut self) {
        let id = self.next_request_id;
        let header = self.header(ExchangeType::INFORMATIONAL, id, false);
        let payloads =
            [Payload::Notify(Notify::new(NotifyType::AUTHENTICATION_FAILED, Vec::new()))];
        let Some(crypto) = self.crypto.as_mut() else { return };
        if let Ok(bytes) = crypto.encrypt(header, &payloads) {
            self.next_request_id = id.wrapping_add(1);
            self.send(bytes);
        }
    }

    pub(super) fn process_delete_child_response(
        &mut self,
        now: Instant,
        spi: u32,
        _payloads: &[Payload],
    ) {
        // Whatever the peer answers, the CHILD_SA is gone on our side (RFC 7296 §1.4.1).
        self.remove_child(now, spi, DownReason::LocalDelete);
    }

    /// Removes a CHILD_SA and reports it down. A replaced SA is reported
    /// ([`DownReason::Rekeyed`]) only [`REKEY_LINGER`](super::rekey::REKEY_LINGER) later, so
    /// packets the peer sent on it just before switching, reordered behind the DELETE, are
    /// still accepted.
    pub(super) fn remove_child(
        &mut self,
        now: Instant,
        inbound_spi: u32,
        reason: DownReason,
    ) -> Option<u32> {
        let pos = self.children.iter().position(|c| c.inbound_spi == inbound_spi)?;
        let child = self.children.remove(pos);
        // A new SA we answered the peer's rekey with replaces it (also when our own rekey of
        // it collided and is still out): the peer's DELETE ends a replaced SA.
        let replaced = self.pending_activation.iter().any(|(_, old)| *old == inbound_spi);
        let reason = match (child.state, reason) {
            (ChildState::Rekeyed, DownReason::LocalDelete | DownReason::PeerDelete) => {
                DownReason::Rekeyed
            }
            (_, DownReason::PeerDelete) if replaced => DownReason::Rekeyed,
            _ => reason,
        };
        self.rekey_retries.retain(|(_, s)| *s != inbound_spi);
        self.activate_successors(inbound_spi);
        if reason == DownReason::Rekeyed {
            self.retired.push((now + super::rekey::REKEY_LINGER, child));
            return Some(inbound_spi);
        }
        self.events.push_back(Event::ChildSaDown {
            child: child.name,
            inbound_spi: child.inbound_spi,
            outbound_spi: child.outbound_spi,
            reason,
        });
        Some(child.inbound_spi)
    }

    pub(super) fn process_informational_request(
        &mut self,
        now: Instant,
        header: HeaderRepr,
        payloads: &[Payload],
    ) {
        if notify(payloads, NotifyType::AUTHENTICATION_FAILED).is_some() {
            // The initiator did not accept our AUTH after we answered IKE_AUTH: the IKE SA
            // (and the CHILD_SA we installed with it) goes, like a Delete (strongSwan's
            // task_manager_v2.c hands this notify to ike_delete).
            self.send_protected_response(ExchangeType::INFORMATIONAL, header.message_id, &[]);
            let message = match self.established().map(|e| e.info.local_id.clone()) {
                Some(id) => format!(
                    "peer rejected our authentication (AUTHENTICATION_FAILED in an INFORMATIONAL \
                     after IKE_AUTH): {}",
                    self.auth_rejected_hint(&id)
                ),
                None => "peer sent AUTHENTICATION_FAILED in an INFORMATIONAL before IKE_AUTH \
                         completed"
                    .to_owned(),
            };
            self.fail_ike(FailureKind::Authentication, message);
            return;
        }
        let mut response = Vec::new();
        let mut delete_ike = false;
        for p in payloads {
            let Payload::Delete(d) = p else { continue };
            match d.protocol {
                ProtocolId::IKE => delete_ike = true,
                ProtocolId::ESP | ProtocolId::AH => {
                    // The SPIs are the peer's inbound SPIs, i.e. our outbound ones; answer with
                    // our inbound SPIs of the same CHILD_SAs (§1.4.1).
                    let mut ours = Vec::new();
                    for spi in &d.spis {
                        let Ok(bytes) = <[u8; 4]>::try_from(spi.as_slice()) else { continue };
                        let outbound = u32::from_be_bytes(bytes);
                        let found = self
                            .children
                            .iter()
                            .find(|c| c.outbound_spi == outbound)
                            .map(|c| (c.inbound_spi, c.state));
                        if let Some((inbound, state)) = found {
                            self.remove_child(now, inbound, DownReason::PeerDelete);
                            // Both ends deleting at once: each removes the SA, neither
                            // names it in its answer (§1.4.1).
                            if state != ChildState::Deleting {
                                ours.push(inbound.to_be_bytes().to_vec());
                            }
                        } else {
                            self.note_unknown_delete(outbound);
                        }
                    }
                    if !ours.is_empty() {
                        response.push(Payload::Delete(Delete {
                            protocol: d.protocol,
                            spi_size: 4,
                            spis: ours,
                        }));
                    }
                }
                _ => {}
            }
        }
        if delete_ike {
            self.send_protected_response(ExchangeType::INFORMATIONAL, header.message_id, &[]);
            // Our IKE rekey collided with the peer's and the peer, not having noticed (or
            // having won before our response came), deletes the old IKE SA: its new one
            // carries on (§2.8.2, strongSwan's `collide` with an IKE_DELETE).
            self.conclude_ike_collision(now);
            self.finish(CloseReason::PeerDelete);
            return;
        }
        self.send_protected_response(ExchangeType::INFORMATIONAL, header.message_id, &response);
    }
}
