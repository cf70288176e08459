//! IKEv2 in the daemon: configuration ([`config`]), the IKE thread ([`driver`]) around the
//! sans-IO core in `ferroswan_proto::ikev2`, and the connections and secrets changed at run time
//! over VICI ([`conns`]).

pub mod config;
pub mod conns;
pub mod driver;
pub mod status;

use ferroswan_proto::ikev2::proposal::IkeSuite;
use ferroswan_proto::wire::IntegId;

use crate::status::{encr_name, integ_name, ke_name, prf_name};

/// An IKE suite as strongSwan logs it: `AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384`.
pub fn suite_text(s: &IkeSuite) -> String {
    let mut out = encr_name(s.encr);
    if s.encr_key_bits != 0 {
        out.push_str(&format!("_{}", s.encr_key_bits));
    }
    if s.integ != IntegId::NONE {
        out.push('/');
        out.push_str(&integ_name(s.integ));
    }
    out.push_str(&format!("/{}/{}", prf_name(s.prf), ke_name(s.ke)));
    out
}

use std::error::Error;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use ferroswan_proto::ikev2::Endpoint;
use ferroswan_proto::ikev2::config::{EndpointConfig, IkeConfig, LocalAuth, RemoteAuth};

use crate::config::connection::Connection;
use crate::config::{Config, ConfigError};
use crate::dataplane::Dataplane;
use crate::sys::netlink::SOCKET_MARK;
use crate::sys::socket::UdpSocket;

pub use driver::{Command, IkeHandle, Input, Status, Target};

/// The IKE port.
pub const IKE_PORT: u16 = 500;
/// The NAT-T port (IKE with the non-ESP marker, and ESP in UDP).
pub const NAT_T_PORT: u16 = 4500;

/// Builds the signer and verifier of a `pubkey` connection from the certificates and keys
/// beside the config file (swanctl's `x509/`, `x509ca/`, `private/`, … directories).
pub fn signature_auth(
    config_path: &Path,
    config: &Config,
    conn: &Connection,
) -> Result<(LocalAuth, RemoteAuth), ConfigError> {
    let refuse = |e: &dyn std::fmt::Display| {
        ConfigError::new(conn.location.clone(), format!("connection {}: {e}", conn.name))
    };
    let dir = config_path.parent().unwrap_or_else(|| Path::new("."));
    let store = crate::pki::CredentialStore::load_with_secrets(dir, &config.secrets)
        .map_err(|e| refuse(&e))?;
    let (Some(local), Some(remote)) = (conn.local.first(), conn.remote.first()) else {
        return Err(refuse(&"needs local and remote sections"));
    };
    let local_auth = match local.auth {
        crate::config::connection::AuthMethod::Pubkey(_) => {
            LocalAuth::Signature(store.signer_for(local).map_err(|e| refuse(&e))?)
        }
        _ => LocalAuth::Psk,
    };
    let remote_auth = match remote.auth {
        crate::config::connection::AuthMethod::Pubkey(_) => {
            let matcher = match remote.id.as_deref() {
                None => ferroswan_proto::ikev2::identity::IdMatcher::Any,
                Some(id) => ferroswan_proto::ikev2::identity::IdMatcher::from_swanctl(id)
                    .map_err(|e| refuse(&format!("remote.id: {e}")))?,
            };
            RemoteAuth::Signature(store.verifier_for(remote, &matcher).map_err(|e| refuse(&e))?)
        }
        _ => RemoteAuth::Psk,
    };
    Ok((local_auth, remote_auth))
}

/// Starts IKE: port-500 sockets and readers, the IKE thread, the connections with
/// `start_action = start` and the trap policies of those with `start_action = trap`. `nat_t` are the data plane's UDP 4500 sockets (shared: the inbound
/// worker hands IKE messages with the non-ESP marker to the IKE thread).
pub fn start(
    connections: Vec<IkeConfig>,
    config: &Config,
    dp: Arc<Dataplane>,
    nat_t: &[(SocketAddr, Arc<UdpSocket>)],
    tun_ifindex: u32,
    stop: Arc<AtomicBool>,
    workers: &mut Vec<JoinHandle<()>>,
) -> Result<IkeHandle, Box<dyn Error>> {
    let (tx, rx) = driver::channel();
    let mut sock500 = Vec::new();
    for addr in [IpAddr::from([0u8; 4]), IpAddr::from([0u16; 8])] {
        let bind = SocketAddr::new(addr, IKE_PORT);
        match UdpSocket::bind(bind) {
            Ok(s) => {
                s.set_mark(SOCKET_MARK)?;
                sock500.push(Arc::new(s));
            }
            Err(e) if addr.is_ipv6() => tracing::debug!("no IPv6 IKE socket: {e}"),
            Err(e) => {
                return Err(format!(
                    "bind IKE socket {bind}: {e} (is another IKE daemon running?)"
                )
                .into());
            }
        }
    }
    let sock4500: Vec<Arc<UdpSocket>> =
        nat_t.iter().filter(|(a, _)| a.port() == NAT_T_PORT).map(|(_, s)| s.clone()).collect();
    {
        let tx = Mutex::new(tx.clone());
        dp.set_ike_sink(Box::new(move |local, remote, message| {
            let input = Input::Datagram {
                local: SocketAddr::new(local, NAT_T_PORT),
                remote,
                bytes: message.to_vec(),
            };
            if let Ok(tx) = tx.lock() {
                let _ = tx.send(input);
            }
        }));
    }
    {
        let tx = Mutex::new(tx.clone());
        dp.set_acquire_sink(Box::new(move |trap, flow| {
            if let Ok(tx) = tx.lock() {
                let _ = tx.send(Input::Acquire { trap, flow: *flow });
            }
        }));
    }
    for s in &sock500 {
        let (s, tx, stop) = (s.clone(), tx.clone(), stop.clone());
        workers.push(std::thread::Builder::new().name("ferroswan-ike500".into()).spawn(
            move || {
                driver::read_port_500(&s, &tx, &stop);
            },
        )?);
    }
    let starts: Vec<(String, String)> = config
        .connections
        .iter()
        .flat_map(|c| {
            c.children
                .iter()
                .filter(|ch| ch.start_action.start)
                .map(|ch| (c.name.clone(), ch.name.clone()))
        })
        .collect();
    let names: Vec<String> = connections.iter().map(|c| c.name.clone()).collect();
    let traps: Vec<driver::TrapActions> =
        config.connections.iter().flat_map(driver::TrapActions::of).collect();
    let endpoint = Endpoint::new(
        EndpointConfig {
            connections: connections.into_iter().map(Arc::new).collect(),
            ..EndpointConfig::default()
        },
        ferroswan_awslc::DEFAULT_PROVIDER,
    );
    let status = Arc::new(Mutex::new(Status::default()));
    let mut drv = driver::Driver::new(
        endpoint,
        ferroswan_awslc::DEFAULT_PROVIDER,
        dp,
        sock500,
        sock4500,
        tun_ifindex,
        status.clone(),
    )?;
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    drv.endpoint_mut().set_unix_time(Instant::now(), unix);
    drv.set_trap_actions(traps);
    tracing::info!("IKEv2 on UDP {IKE_PORT}/{NAT_T_PORT}, connections: {}", names.join(", "));
    for (conn, child) in starts {
        if let Err(e) = drv.initiate(&conn, Some(&child)) {
            tracing::warn!("start_action = start: {e}");
        }
    }
    let stop_ike = stop;
    workers.push(std::thread::Builder::new().name("ferroswan-ike".into()).spawn(move || {
        drv.run(&rx, &stop_ike);
    })?);
    Ok(IkeHandle { tx, status })
}
