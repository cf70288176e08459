//! `ferroswan daemon`: loads the config, creates the TUN interface, routes and sockets, runs
//! the data-plane workers and the VICI control socket, and on SIGTERM/SIGINT takes everything
//! down again (no rule, route, interface or socket file is left behind).
//!
//! Threads: one outbound worker (TUN → ESP), one inbound worker per receiving socket
//! (ESP → TUN), and the main thread running the VICI server and waiting for signals.

use std::error::Error;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ferroswan_proto::esp::PacketBuf;

use crate::config::{Config, LoadOptions, LogLevel};
use crate::dataplane::{self, Carrier, Dataplane, Destination, NetRx, NetTx, RecvMeta, TunDevice};
use crate::manual::{self, ManualPlan};
use crate::status::StatusHandler;
use crate::sys::netlink::{
    IpFamily, POLICY_TABLE, Route, RouteGuard, Rule, RuleGuard, SOCKET_MARK,
};
use crate::sys::socket::{self as sock, Batch, EspSocket, UdpSocket};
use crate::sys::tun::Tun;
use crate::vici::{Server, ServerConfig};

/// Socket buffer size we ask for: large, because the receiving end of a userspace tunnel
/// otherwise overflows its UDP buffer (8–13 % loss measured with the kernel default).
const SOCKET_BUFFER: usize = 4 << 20;

/// Transmit queue of the TUN interface (packets the kernel holds for the outbound worker).
const TUN_TXQUEUELEN: u32 = 5000;

/// Path MTU assumed towards a peer when the interface of the local address is not found.
const ASSUMED_PATH_MTU: usize = 1500;

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(config_path: &Path, socket: Option<PathBuf>) -> Result<(), Box<dyn Error>> {
    let options =
        LoadOptions { unsupported_sections_are_errors: false, check_secret_permissions: true };
    let config = Config::load_with(config_path, &options)?;
    init_logging(config.daemon.log_level);
    if config.pools_raw.is_some() || config.authorities_raw.is_some() {
        tracing::warn!(
            "{}: `pools` and `authorities` sections are not supported yet and are ignored",
            config_path.display()
        );
    }
    let psks = Arc::new(crate::ike::config::SecretsPsk::new(&config.secrets)?);
    let ike_configs = crate::ike::config::ike_configs_with(&config, &psks, &|conn| {
        crate::ike::signature_auth(config_path, &config, conn)
    })?;
    // Without manual SAs, IKE runs even with no connection yet: they may come over VICI
    // (`swanctl --load-conns`). A daemon of manual SAs only keeps to them.
    let ike_enabled = !ike_configs.is_empty() || config.manual.is_empty();
    if ike_configs.is_empty() && ike_enabled {
        tracing::info!(
            "{}: no connections configured; waiting for VICI load-conn (swanctl --load-conns)",
            config_path.display()
        );
    }
    let file_connections: Vec<_> =
        config.connections.iter().cloned().zip(ike_configs.iter().cloned().map(Arc::new)).collect();
    let mut plan = manual::plan(
        &config,
        &ferroswan_awslc::DEFAULT_PROVIDER,
        &ferroswan_awslc::LEGACY_PROVIDER,
    )?;
    if ike_enabled {
        // IKE SAs come and go: raw ESP and ESP-in-UDP on any local address.
        for addr in [IpAddr::from([0u8; 4]), IpAddr::from([0u16; 8])] {
            if !plan.raw_esp_addrs.iter().any(|a| a.is_ipv6() == addr.is_ipv6())
                && family_usable(addr)
            {
                plan.raw_esp_addrs.push(addr);
            }
            let nat_t = SocketAddr::new(addr, crate::ike::NAT_T_PORT);
            if !plan
                .udp_sockets
                .iter()
                .any(|a| a.port() == nat_t.port() && a.is_ipv6() == nat_t.is_ipv6())
                && family_usable(addr)
            {
                plan.udp_sockets.push(nat_t);
            }
        }
    }
    let socket_path = socket.unwrap_or_else(|| config.daemon.socket.clone());

    let tun = Tun::create(&config.daemon.tun.name)
        .map_err(|e| format!("create TUN interface {}: {e}", config.daemon.tun.name))?;
    let mtu = match config.daemon.tun.mtu {
        Some(mtu) => mtu,
        // IKE SAs are not known yet: leave room for the largest ESP-in-UDP overhead over a
        // 1500-byte path (as strongSwan's libipsec TUN uses 1400).
        None if ike_enabled && plan.tables.outbound.is_empty() => 1400,
        None => default_mtu(&plan),
    };
    tun.set_mtu(mtu)?;
    // The kernel's default TUN queue (500 packets) overflows while the outbound worker is
    // busy sealing a batch: the benchmark saw every lost packet as a TX drop on the TUN.
    tun.set_txqueuelen(TUN_TXQUEUELEN)?;
    quiet_ipv6(tun.name());
    tun.set_up()?;
    // Sockets first: they carry SOCKET_MARK before any route can steer traffic into the TUN.
    let net = Arc::new(Sockets::open(&plan)?);
    let (routes, rules) = install_routing(&plan, tun.ifindex(), ike_enabled)?;
    tracing::info!(
        "tunnel interface {} up, MTU {mtu}, routes (table {POLICY_TABLE}): {}",
        tun.name(),
        plan.routes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    );

    let dp = Arc::new(Dataplane::new());
    // Packets held by trap policies leave through the same sockets.
    dp.set_net_tx(net.clone());
    let sa_count = plan.tables.outbound.len();
    dp.install(plan.tables);
    let tun_ifindex = tun.ifindex();
    let tun = Arc::new(TunDev(tun));

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = vec![];
    let ike = if ike_enabled {
        Some(crate::ike::start(
            ike_configs,
            &config,
            dp.clone(),
            &net.udp,
            tun_ifindex,
            stop.clone(),
            &mut workers,
        )?)
    } else {
        None
    };
    {
        let (dp, tun, net, stop) = (dp.clone(), tun.clone(), net.clone(), stop.clone());
        workers.push(spawn("outbound", move || {
            dataplane::outbound::run(&dp, tun.as_ref(), net.as_ref(), &stop)
        })?);
    }
    for rx in net.receivers() {
        let (dp, tun, stop) = (dp.clone(), tun.clone(), stop.clone());
        workers.push(spawn("inbound", move || {
            dataplane::inbound::run(&dp, rx.as_ref(), tun.as_ref(), &stop)
        })?);
    }
    tracing::info!("{sa_count} manual SA(s) installed, {} data-plane workers", workers.len());

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = rt.block_on(async {
        let mut handler = StatusHandler::new(dp.clone(), Instant::now(), workers.len() as u64);
        if let Some(ike) = &ike {
            handler = handler.with_ike(ike.clone());
            let (config_path, config) = (config_path.to_path_buf(), config.clone());
            let signature: Box<crate::ike::conns::SignatureFn> =
                Box::new(move |conn| crate::ike::signature_auth(&config_path, &config, conn));
            handler = handler.with_conns(Arc::new(crate::ike::conns::Control::new(
                ike.tx.clone(),
                file_connections,
                psks,
                signature,
            )));
        }
        let server = Server::start(ServerConfig::new(&socket_path), handler).await?;
        tracing::info!("VICI control socket at {}", socket_path.display());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        }
        server.shutdown().await;
        Ok::<(), Box<dyn Error>>(())
    });
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    // The rules first, so nothing is steered into a table that is being emptied.
    drop(rules);
    drop(routes);
    drop(tun);
    tracing::info!("stopped; rules, routes and {} removed", config.daemon.tun.name);
    result
}

/// Whether this host can open sockets of `addr`'s family (IPv6 may be disabled).
fn family_usable(addr: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(addr, 0)).is_ok()
}

/// No IPv6 link-local address on the TUN: routes into it work without one, and without it the
/// kernel sends no router solicitations or MLD reports into the tunnel (they would only be
/// dropped as "no policy" and blur the counters).
fn quiet_ipv6(ifname: &str) {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/addr_gen_mode");
    if let Err(e) = std::fs::write(&path, "1") {
        tracing::debug!("{path}: {e} (IPv6 may be disabled)");
    }
}

/// Routes every SA's remote selectors into the TUN, in our own table [`POLICY_TABLE`], and adds
/// the rule `not fwmark SOCKET_MARK lookup POLICY_TABLE` (priority
/// [`RULE_PRIORITY`](crate::sys::netlink::RULE_PRIORITY)) for each family that has routes.
///
/// Why a table of our own and a rule, for both modes:
/// - transport mode routes the *peer's own address* into the TUN; the daemon's ESP (raw or
///   UDP 4500) and, later, IKE packets go to that same address. All our sockets carry
///   [`SOCKET_MARK`], so the rule skips them and they take the main table's route out of the
///   real interface, while everything else this host sends to the peer enters the TUN;
/// - tunnel mode gains the same protection when the remote selectors cover the peer's address
///   (`remote_ts = 0.0.0.0/0`, a full tunnel, would otherwise loop or clash with the default
///   route in the main table), and our routes stay out of the administrator's main table, as
///   strongSwan keeps its routes in table 220.
///
/// Strict IPv4 reverse-path filtering does not mix with this: see [`warn_strict_rp_filter`].
///
/// Rules outlive a killed daemon (routes go with its TUN), so identical leftovers of ours are
/// removed first, with a warning.
fn install_routing(
    plan: &ManualPlan,
    ifindex: u32,
    ike_enabled: bool,
) -> Result<(RouteGuard, RuleGuard), Box<dyn Error>> {
    let mut routes = RouteGuard::new()?;
    for r in &plan.routes {
        routes
            .add(Route {
                dst: r.addr,
                prefix_len: r.prefix_len,
                ifindex,
                src: r.src,
                table: POLICY_TABLE,
            })
            .map_err(|e| {
                if crate::sys::netlink::errno_of(&e) == Some(libc::EEXIST) {
                    format!(
                        "{e}: table {POLICY_TABLE} is ferroswan's; is another daemon running in \
                         this network namespace? (`ip route show table {POLICY_TABLE}`)"
                    )
                } else {
                    e.to_string()
                }
            })?;
    }
    let mut rules = RuleGuard::new()?;
    for family in [IpFamily::V4, IpFamily::V6] {
        let needed = plan.routes.iter().any(|r| IpFamily::of(r.addr) == family)
            || (ike_enabled
                && family_usable(match family {
                    IpFamily::V4 => IpAddr::from([0u8; 4]),
                    IpFamily::V6 => IpAddr::from([0u16; 8]),
                }));
        if !needed {
            continue;
        }
        let rule = Rule::ferroswan(family);
        let leftovers = rules.add_replacing(rule)?;
        if leftovers > 0 {
            tracing::warn!("removed {leftovers} leftover rule(s) `{rule}` of an earlier run");
        }
        tracing::debug!("added `{rule}`");
    }
    if rules.rules().contains(&Rule::ferroswan(IpFamily::V4)) {
        warn_strict_rp_filter();
    }
    Ok((routes, rules))
}

/// Strict reverse-path filtering (`rp_filter = 1`) checks an arriving packet's source by a
/// route lookup without its mark (unless `src_valid_mark`), so once the peer's address is
/// routed into the TUN (transport mode) the peer's ARP requests and ESP on the real interface
/// fail the check and the kernel drops them. (Rules on protocol would exempt ESP, but not ARP.)
/// The effective value is the larger of `all` and the interface's, so loose mode (2) on the
/// interface towards the peer is enough.
fn warn_strict_rp_filter() {
    let read = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{name}/rp_filter"))
            .ok()
            .and_then(|s| s.trim().parse::<u8>().ok())
    };
    if read("all") == Some(1) {
        tracing::warn!(
            "net.ipv4.conf.all.rp_filter = 1 (strict): the kernel drops ARP and ESP from a peer \
             whose address is routed into the tunnel (transport mode) unless the interface \
             towards it is loose: sysctl net.ipv4.conf.<interface>.rp_filter=2"
        );
    }
}

fn spawn(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name(format!("ferroswan-{name}")).spawn(move || {
        tracing::debug!("worker started");
        f();
        tracing::debug!("worker stopped");
    })
}

fn init_logging(level: LogLevel) {
    let level = match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERROSWAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// The largest inner packet every SA can carry: for each SA, the MTU of the interface holding
/// its local address (the path MTU is at most that; 1500 when it is not found)
/// minus the outer IP header, the UDP header with encapsulation, and the SA's ESP overhead.
pub fn default_mtu(plan: &ManualPlan) -> u32 {
    plan.tables
        .outbound
        .iter()
        .map(|e| {
            let link_mtu = crate::sys::ifaddr::interface_with_address(e.local)
                .ok()
                .flatten()
                .and_then(|name| crate::sys::ifaddr::interface_mtu(&name).ok())
                .and_then(|mtu| usize::try_from(mtu).ok())
                .unwrap_or(ASSUMED_PATH_MTU);
            let (outer_ip, udp) = match e.dst {
                Destination::Raw(ip) => (if ip.is_ipv6() { 40 } else { 20 }, 0),
                Destination::Udp { remote, .. } => (if remote.is_ipv6() { 40 } else { 20 }, 8),
            };
            e.sa.max_payload_len(link_mtu.saturating_sub(outer_ip + udp))
        })
        .min()
        // IPv6 needs at least 1280 on every link; on a smaller path the kernel fragments the
        // outer packets.
        .map_or(1280, |m| u32::try_from(m).unwrap_or(1280).max(1280))
}

/// The TUN interface as the data plane sees it.
struct TunDev(Tun);

impl TunDevice for TunDev {
    fn recv_batch(
        &self,
        bufs: &mut [PacketBuf],
        headroom: usize,
        timeout: Duration,
    ) -> std::io::Result<usize> {
        self.0.recv_batch(bufs, headroom, timeout)
    }

    fn send(&self, packet: &[u8]) -> std::io::Result<()> {
        self.0.send(packet)
    }
}

/// The daemon's network sockets: one raw ESP socket per local address, and one UDP socket per
/// local address and port for ESP-in-UDP.
struct Sockets {
    raw: Vec<(IpAddr, Arc<EspSocket>)>,
    /// The ESP-in-UDP sockets (port 4500 for IKE SAs), shared with the IKE thread.
    pub(crate) udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    send_batch: Mutex<Batch>,
}

impl Sockets {
    fn open(plan: &ManualPlan) -> Result<Self, Box<dyn Error>> {
        let mut raw = vec![];
        for addr in &plan.raw_esp_addrs {
            let bind = (!addr.is_unspecified()).then_some(*addr);
            let s = match addr {
                IpAddr::V4(_) => EspSocket::open_v4(bind.and_then(|a| match a {
                    IpAddr::V4(a) => Some(a),
                    IpAddr::V6(_) => None,
                })),
                IpAddr::V6(_) => EspSocket::open_v6(bind.and_then(|a| match a {
                    IpAddr::V6(a) => Some(a),
                    IpAddr::V4(_) => None,
                })),
            }
            .map_err(|e| format!("open raw ESP socket on {addr}: {e}"))?;
            s.set_mark(SOCKET_MARK)?;
            let sizes = s.set_buffer_sizes(SOCKET_BUFFER, SOCKET_BUFFER)?;
            tracing::debug!("raw ESP socket on {addr}: buffers {sizes:?}");
            raw.push((*addr, Arc::new(s)));
        }
        let mut udp = vec![];
        for addr in &plan.udp_sockets {
            let s = UdpSocket::bind(*addr)?;
            s.set_mark(SOCKET_MARK)?;
            let sizes = s.set_buffer_sizes(SOCKET_BUFFER, SOCKET_BUFFER)?;
            tracing::debug!("UDP socket on {addr}: buffers {sizes:?}");
            udp.push((*addr, Arc::new(s)));
        }
        Ok(Self { raw, udp, send_batch: Mutex::new(Batch::new()) })
    }

    fn receivers(&self) -> Vec<Arc<dyn NetRx>> {
        let raw =
            self.raw.iter().map(|(_, s)| Arc::new(SocketRx::new(s.clone())) as Arc<dyn NetRx>);
        let udp =
            self.udp.iter().map(|(_, s)| Arc::new(SocketRx::new(s.clone())) as Arc<dyn NetRx>);
        raw.chain(udp).collect()
    }
}

impl NetTx for Sockets {
    fn send_batch(
        &self,
        bufs: &[PacketBuf],
        sends: &[(Destination, usize)],
    ) -> std::io::Result<()> {
        let mut batch = self.send_batch.lock().unwrap_or_else(PoisonError::into_inner);
        let data = |i: &usize| bufs.get(*i).map(PacketBuf::data).unwrap_or_default();
        let mut first_error = None;
        let mut note = |outcome: crate::sys::SendOutcome| {
            if let Some(e) = outcome.first_error
                && first_error.is_none()
            {
                first_error = Some(e);
            }
        };
        // Raw ESP: the first socket of the destination's family (bound to our configured
        // local address) sends it.
        for v6 in [false, true] {
            let Some((_, s)) = self.raw.iter().find(|(a, _)| a.is_ipv6() == v6) else { continue };
            let packets = sends.iter().filter_map(|(d, i)| match d {
                Destination::Raw(ip) if ip.is_ipv6() == v6 => Some((*ip, data(i))),
                _ => None,
            });
            note(s.send_batch(&mut batch, packets));
        }
        for (local, s) in &self.udp {
            let packets = sends.iter().filter_map(|(d, i)| match d {
                Destination::Udp { local: l, remote } if l == local => Some((*remote, data(i))),
                _ => None,
            });
            note(s.send_batch(&mut batch, packets));
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// A data-plane receiver over one of our sockets: its reusable `recvmmsg` state plus the
/// conversion of the socket's metadata into the data plane's.
struct SocketRx<S: RecvSocket> {
    sock: Arc<S>,
    state: Mutex<(Batch, Vec<sock::RecvMeta<S::Addr>>)>,
}

impl<S: RecvSocket> SocketRx<S>
where
    sock::RecvMeta<S::Addr>: Default + Clone,
{
    fn new(sock: Arc<S>) -> Self {
        let metas = vec![sock::RecvMeta::<S::Addr>::default(); dataplane::BATCH];
        Self { sock, state: Mutex::new((Batch::new(), metas)) }
    }
}

/// What [`SocketRx`] needs from a socket.
trait RecvSocket: Send + Sync + 'static {
    /// The sender address type in the socket's metadata.
    type Addr: Copy + Send;

    fn recv(
        &self,
        batch: &mut Batch,
        bufs: &mut [PacketBuf],
        metas: &mut [sock::RecvMeta<Self::Addr>],
        timeout: Duration,
    ) -> std::io::Result<usize>;

    fn meta(sys: &sock::RecvMeta<Self::Addr>) -> RecvMeta;
}

impl RecvSocket for EspSocket {
    type Addr = IpAddr;

    fn recv(
        &self,
        batch: &mut Batch,
        bufs: &mut [PacketBuf],
        metas: &mut [sock::RecvMeta<IpAddr>],
        timeout: Duration,
    ) -> std::io::Result<usize> {
        self.recv_batch(batch, bufs, metas, PacketBuf::DEFAULT_HEADROOM, timeout)
    }

    fn meta(sys: &sock::RecvMeta<IpAddr>) -> RecvMeta {
        RecvMeta { src: SocketAddr::new(sys.src, 0), dst: sys.dst, carrier: Carrier::RawEsp }
    }
}

impl RecvSocket for UdpSocket {
    type Addr = SocketAddr;

    fn recv(
        &self,
        batch: &mut Batch,
        bufs: &mut [PacketBuf],
        metas: &mut [sock::RecvMeta<SocketAddr>],
        timeout: Duration,
    ) -> std::io::Result<usize> {
        self.recv_batch(batch, bufs, metas, PacketBuf::DEFAULT_HEADROOM, timeout)
    }

    fn meta(sys: &sock::RecvMeta<SocketAddr>) -> RecvMeta {
        RecvMeta { src: sys.src, dst: sys.dst, carrier: Carrier::Udp }
    }
}

impl<S: RecvSocket> NetRx for SocketRx<S>
where
    sock::RecvMeta<S::Addr>: Default + Clone,
{
    fn recv_batch(
        &self,
        bufs: &mut [PacketBuf],
        metas: &mut [RecvMeta],
        timeout: Duration,
    ) -> std::io::Result<usize> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (batch, sys_metas) = &mut *state;
        let n = self.sock.recv(batch, bufs, sys_metas, timeout)?;
        for ((meta, sys), buf) in
            metas.iter_mut().zip(sys_metas.iter()).zip(bufs.iter_mut()).take(n)
        {
            if sys.truncated {
                // Cut short by the buffer: drop it as malformed rather than open a fragment.
                buf.truncate(0);
            }
            *meta = S::meta(sys);
        }
        Ok(n)
    }
}
