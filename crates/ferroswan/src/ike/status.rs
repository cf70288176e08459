//! IKE SAs in strongSwan's `list-sa` shape, so `swanctl --list-sas` shows them as charon's.

use std::sync::PoisonError;
use std::time::Instant;

use ferroswan_proto::esp::Mode;
use ferroswan_proto::ikev2::session::{ChildState, Role};
use ferroswan_proto::wire::IntegId;

use super::IkeHandle;
use crate::dataplane::Dataplane;
use crate::status::{encr_name, integ_name, ke_name, prf_name};
use crate::vici::Message;
use crate::vici::schema::{
    Algorithms, ChildSaInfo, ChildSaState, IkeSaInfo, IkeSaState, IpsecMode, IpsecProtocol, Mark,
};

/// One `list-sa` event per established IKE SA, its CHILD_SAs with live counters.
pub fn list_sa_events(dp: &Dataplane, ike: &IkeHandle, now: Instant) -> Vec<Message> {
    let st = ike.status.lock().unwrap_or_else(PoisonError::into_inner);
    let tables = dp.tables();
    let mut out = Vec::new();
    for sa in st.sas.values() {
        let info = &sa.info;
        let uniqueid = sa.unique_id;
        let mut children = Message::new();
        for c in &sa.children {
            let inb = tables.inbound.get(&c.up.inbound_spi);
            let outb = tables.outbound.iter().find(|o| o.sa.spi() == c.up.outbound_spi);
            let suite = c.up.suite;
            let child = ChildSaInfo {
                name: c.name.clone(),
                uniqueid: c.unique_id,
                reqid: c.reqid,
                state: match c.up.state {
                    ChildState::Installed => ChildSaState::Installed,
                    ChildState::Rekeying => ChildSaState::Rekeying,
                    ChildState::Rekeyed => ChildSaState::Rekeyed,
                    ChildState::Deleting => ChildSaState::Deleting,
                },
                mode: if c.up.mode == Mode::Tunnel {
                    IpsecMode::Tunnel
                } else {
                    IpsecMode::Transport
                },
                label: None,
                protocol: IpsecProtocol::Esp,
                encap: c.encap,
                spi_in: c.up.inbound_spi,
                spi_out: c.up.outbound_spi,
                cpi: None,
                mark_in: Mark::default(),
                mark_out: Mark::default(),
                if_id_in: 0,
                if_id_out: 0,
                per_cpu_sas: false,
                cpu: None,
                algorithms: Algorithms {
                    encr_alg: Some(encr_name(suite.esp.encr)),
                    encr_keysize: (suite.esp.encr_key_bits != 0).then_some(suite.esp.encr_key_bits),
                    integ_alg: (suite.esp.integ != IntegId::NONE)
                        .then(|| integ_name(suite.esp.integ)),
                    dh_group: suite.ke.map(ke_name),
                    ..Algorithms::default()
                },
                esn: suite.esn,
                bytes_in: inb.map_or(0, |e| e.sa.counters().bytes()),
                packets_in: inb.map_or(0, |e| e.sa.counters().packets()),
                use_in: None,
                bytes_out: outb.map_or(0, |e| e.sa.counters().bytes()),
                packets_out: outb.map_or(0, |e| e.sa.counters().packets()),
                use_out: None,
                rekey_time: c.up.rekey_at.map(|t| secs_until(t, now)),
                life_time: c.up.expire_at.map(|t| secs_until(t, now)),
                install_time: now.saturating_duration_since(c.installed).as_secs(),
                local_ts: c.up.local_ts.iter().map(ToString::to_string).collect(),
                remote_ts: c.up.remote_ts.iter().map(ToString::to_string).collect(),
            };
            // Not a charon key (swanctl skips it): how many rekeys led to this SA.
            let msg = child.to_message().kv_display("ferroswan-rekeys", c.up.rekeys);
            children = children.section(child.section_name(), msg);
        }
        let s = info.suite;
        let ike_info = IkeSaInfo {
            name: info.name.clone(),
            uniqueid,
            version: 2,
            state: IkeSaState::Established,
            local_host: info.local.ip(),
            local_port: info.local.port(),
            local_id: info.local_id.to_string(),
            remote_host: info.remote.ip(),
            remote_port: info.remote.port(),
            remote_id: info.remote_id.to_string(),
            remote_eap_id: None,
            remote_xauth_id: None,
            initiator: info.role == Role::Initiator,
            initiator_spi: info.spi_i,
            responder_spi: info.spi_r,
            nat_local: info.nat_local,
            nat_remote: info.nat_remote,
            nat_fake: false,
            nat_any: info.nat_local || info.nat_remote,
            if_id_in: 0,
            if_id_out: 0,
            algorithms: Algorithms {
                encr_alg: Some(encr_name(s.encr)),
                encr_keysize: (s.encr_key_bits != 0).then_some(s.encr_key_bits),
                integ_alg: (s.integ != IntegId::NONE).then(|| integ_name(s.integ)),
                prf_alg: Some(prf_name(s.prf)),
                dh_group: Some(ke_name(s.ke)),
                ..Algorithms::default()
            },
            ppk: false,
            established: Some(now.saturating_duration_since(sa.established).as_secs()),
            rekey_time: sa.rekey_at.map(|t| secs_until(t, now)),
            reauth_time: sa.reauth_at.map(|t| secs_until(t, now)),
            local_vips: vec![],
            remote_vips: vec![],
            tasks_queued: vec![],
            tasks_active: vec![],
            tasks_passive: vec![],
            child_sas: vec![],
        };
        let msg = ike_info.to_message().section("child-sas", children);
        out.push(Message::new().section(&info.name, msg));
    }
    out
}

/// Whole seconds from `now` until `t` (0 when past), as charon's signed time fields.
fn secs_until(t: Instant, now: Instant) -> i64 {
    i64::try_from(t.saturating_duration_since(now).as_secs()).unwrap_or(i64::MAX)
}
