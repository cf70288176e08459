//! Two `ferroswan daemon`s on a [`Topology`]'s gateways with a manually keyed ESP tunnel
//! between LAN A and LAN B, plus the checks a person (or a test) runs through it: ping, a TCP
//! transfer with a checksum, a capture of the transit link. Used by `ferroswan lab` and by the
//! netns integration tests, so both exercise exactly the same setup.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::netns::{BackgroundProcess, Error as NetnsError, Gateway, IfAddrs, Netns, Topology};
use crate::config::proposal::{manual_esp_suite, parse_esp_proposals};

/// Why the lab tunnel could not be set up or checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A namespace command failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The ESP proposal is not a single usable suite.
    #[error("ESP proposal '{0}' is not usable for manual keying: {1}")]
    Proposal(String, String),
    /// A daemon did not come up.
    #[error("ferroswan on {gateway} did not start within 10 s; its log ({log}):\n{output}")]
    DaemonStart {
        /// Which gateway.
        gateway: String,
        /// Log file path.
        log: String,
        /// What it printed.
        output: String,
    },
    /// A file could not be written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A check did not hold.
    #[error("{0}")]
    Check(String),
}

/// How the tunnel is set up.
#[derive(Clone, Debug)]
pub struct TunnelOptions {
    /// The `ferroswan` binary to run on the gateways.
    pub binary: PathBuf,
    /// strongSwan ESP proposal keyword, one suite (e.g. `aes128gcm16`).
    pub proposal: String,
    /// ESP in UDP 4500 (RFC 3948) instead of raw ESP.
    pub encap: bool,
    /// IPv6 outer addresses (transit) instead of IPv4.
    pub ipv6_outer: bool,
    /// Negotiate the SAs with IKEv2 (PSK; gateway A initiates) instead of manual keys.
    pub ike: bool,
}

impl TunnelOptions {
    /// AES-128-GCM over raw ESP and IPv4, run with `binary`.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
            proposal: "aes128gcm16".into(),
            encap: false,
            ipv6_outer: false,
            ike: false,
        }
    }
}

/// A running daemon on one gateway.
#[derive(Debug)]
pub struct Daemon {
    /// The daemon process (killed on drop).
    pub process: BackgroundProcess,
    /// Its VICI socket.
    pub socket: PathBuf,
    /// Its config file.
    pub config: PathBuf,
}

impl Daemon {
    /// `ferroswan status` of this daemon.
    pub fn status(&self, binary: &Path) -> Result<String, Error> {
        let out = std::process::Command::new(binary)
            .args(["status", "--socket"])
            .arg(&self.socket)
            .output()
            .map_err(|source| Error::Io { what: "run ferroswan status".into(), source })?;
        if !out.status.success() {
            return Err(Error::Check(format!(
                "ferroswan status failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The two daemons of a lab tunnel.
#[derive(Debug)]
pub struct LabTunnel {
    /// The daemon on gateway A.
    pub a: Daemon,
    /// The daemon on gateway B.
    pub b: Daemon,
    /// The options it was started with.
    pub options: TunnelOptions,
}

/// SPIs of the two directions (A→B is received by B).
pub const SPI_A_TO_B: u32 = 0xc000_0a0b;
/// SPI of B→A.
pub const SPI_B_TO_A: u32 = 0xc000_0b0a;

/// Key material for `proposal` as hex, distinct per direction (`seed`). Lab use only: the
/// keys are predictable.
pub fn lab_key(proposal: &str, seed: u8) -> Result<String, Error> {
    let suite = parse_esp_proposals(proposal)
        .map_err(|e| e.to_string())
        .and_then(|p| manual_esp_suite(&p).map_err(|e| e.to_string()))
        .map_err(|e| Error::Proposal(proposal.into(), e))?;
    let len = suite.keymat_len().unwrap_or_default();
    Ok((0..len).map(|i| format!("{:02x}", (i as u8).wrapping_mul(37) ^ seed)).collect())
}

/// The outer address of a gateway's transit interface.
pub fn outer(gw: &IfAddrs, ipv6: bool) -> IpAddr {
    if ipv6 { gw.v6.into() } else { gw.v4.into() }
}

fn lan(gw: &Gateway) -> Result<IfAddrs, Error> {
    gw.lan0
        .clone()
        .ok_or_else(|| Error::Check("the lab tunnel needs a topology with LAN hosts".into()))
}

/// The swanctl.conf of one side with an IKEv2 connection (PSK); `initiator` starts it.
fn ike_config(
    local: &Gateway,
    remote: &Gateway,
    o: &TunnelOptions,
    initiator: bool,
) -> Result<String, Error> {
    let (l, r) = (lan(local)?, lan(remote)?);
    Ok(format!(
        "# written by ferroswan lab\nferroswan {{\n  tun {{\n    name = fsw0\n  }}\n}}\n\
         connections {{\n  lab {{\n    local_addrs = {}\n    remote_addrs = {}\n    encap = {}\n    \
         proposals = aes256gcm16-prfsha384-ecp384, aes128gcm16-prfsha256-x25519\n    \
         local {{\n      auth = psk\n      id = {}\n    }}\n    remote {{\n      auth = psk\n      id = {}\n    }}\n    \
         children {{\n      net {{\n        local_ts = {}, {}\n        remote_ts = {}, {}\n        \
         esp_proposals = {}\n        start_action = {}\n      }}\n    }}\n  }}\n}}\n\
         secrets {{\n  ike-lab {{\n    id-a = {}\n    id-b = {}\n    secret = \"lab only: not a secret\"\n  }}\n}}\n",
        outer(&local.wan0, o.ipv6_outer),
        outer(&remote.wan0, o.ipv6_outer),
        if o.encap { "yes" } else { "no" },
        if initiator { "gw-a.lab" } else { "gw-b.lab" },
        if initiator { "gw-b.lab" } else { "gw-a.lab" },
        l.v4_network(),
        l.v6_network(),
        r.v4_network(),
        r.v6_network(),
        o.proposal,
        if initiator { "start" } else { "none" },
        "gw-a.lab",
        "gw-b.lab",
    ))
}

/// Waits until the daemon's log says the CHILD_SA is installed.
fn wait_child_up(d: &Daemon, label: &str) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = d.process.read_log().unwrap_or_default();
        if log.contains("CHILD_SA lab/net established") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Check(format!("{label}: no CHILD_SA within 15 s; log:\n{log}")));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The swanctl.conf-syntax config of one side.
fn config(
    local: &Gateway,
    remote: &Gateway,
    o: &TunnelOptions,
    spi_in: u32,
    spi_out: u32,
) -> Result<String, Error> {
    let (l, r) = (lan(local)?, lan(remote)?);
    let (seed_in, seed_out) = if spi_in == SPI_A_TO_B { (0, 1) } else { (1, 0) };
    Ok(format!(
        "# written by ferroswan lab\nferroswan {{\n  tun {{\n    name = fsw0\n  }}\n}}\n\
         manual {{\n  lab {{\n    local_addrs = {}\n    remote_addrs = {}\n    encap = {}\n    \
         esp_proposal = {}\n    spi_in = {spi_in:#x}\n    spi_out = {spi_out:#x}\n    \
         key_in = {}\n    key_out = {}\n    local_ts = {}, {}\n    remote_ts = {}, {}\n    \
         replay_window = 128\n  }}\n}}\n",
        outer(&local.wan0, o.ipv6_outer),
        outer(&remote.wan0, o.ipv6_outer),
        if o.encap { "yes" } else { "no" },
        o.proposal,
        lab_key(&o.proposal, seed_in)?,
        lab_key(&o.proposal, seed_out)?,
        l.v4_network(),
        l.v6_network(),
        r.v4_network(),
        r.v6_network(),
    ))
}

fn start_daemon(
    ns: &Netns,
    dir: &Path,
    label: &str,
    text: &str,
    binary: &Path,
) -> Result<Daemon, Error> {
    let config = dir.join(format!("{label}.conf"));
    let io = |what: &str| {
        let what = format!("{what} {}", config.display());
        move |source| Error::Io { what, source }
    };
    fs::write(&config, text).map_err(io("write"))?;
    fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).map_err(io("chmod 600"))?;
    let socket = dir.join(format!("{label}.vici"));
    let argv = [
        binary.as_os_str(),
        "daemon".as_ref(),
        "-c".as_ref(),
        config.as_os_str(),
        "--socket".as_ref(),
        socket.as_os_str(),
    ];
    let process = ns.spawn_logged(&argv, label)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        if Instant::now() > deadline {
            return Err(Error::DaemonStart {
                gateway: label.into(),
                log: process.log_path().map(|p| p.display().to_string()).unwrap_or_default(),
                output: process.read_log().unwrap_or_default(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Daemon { process, socket, config })
}

impl LabTunnel {
    /// Writes both configs into the topology's log directory and starts both daemons.
    pub fn start(topo: &Topology, options: TunnelOptions) -> Result<Self, Error> {
        let (ga, gb) = (topo.gw_a(), topo.gw_b());
        let dir = topo.log_dir();
        if options.ike {
            // The responder first, so the initiator's first IKE_SA_INIT finds it listening.
            let b_conf = ike_config(gb, ga, &options, false)?;
            let a_conf = ike_config(ga, gb, &options, true)?;
            let b = start_daemon(&gb.ns, dir, "gwb", &b_conf, &options.binary)?;
            let a = start_daemon(&ga.ns, dir, "gwa", &a_conf, &options.binary)?;
            wait_child_up(&a, "gateway A")?;
            wait_child_up(&b, "gateway B")?;
            return Ok(Self { a, b, options });
        }
        let a_conf = config(ga, gb, &options, SPI_B_TO_A, SPI_A_TO_B)?;
        let b_conf = config(gb, ga, &options, SPI_A_TO_B, SPI_B_TO_A)?;
        let a = start_daemon(&ga.ns, dir, "gwa", &a_conf, &options.binary)?;
        let b = start_daemon(&gb.ns, dir, "gwb", &b_conf, &options.binary)?;
        Ok(Self { a, b, options })
    }

    /// Starts only gateway A's daemon, with the same config as [`LabTunnel::start`]; gateway
    /// B's side is left to something else (an independent ESP implementation in B's
    /// namespace, keyed with [`lab_key`]: `seed` 1 for [`SPI_B_TO_A`], 0 for [`SPI_A_TO_B`]).
    pub fn start_gateway_a(topo: &Topology, options: &TunnelOptions) -> Result<Daemon, Error> {
        let (ga, gb) = (topo.gw_a(), topo.gw_b());
        let a_conf = config(ga, gb, options, SPI_B_TO_A, SPI_A_TO_B)?;
        start_daemon(&ga.ns, topo.log_dir(), "gwa", &a_conf, &options.binary)
    }
}

/// Receives one TCP stream and prints `<bytes> <sha256>`.
const RECEIVER: &str = r#"
import hashlib, socket, sys
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(30)
c, _ = s.accept(); c.settimeout(60); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(1 << 16)
    if not b: break
    h.update(b); n += len(b)
print(n, h.hexdigest())
"#;

/// Sends `<mib>` MiB of pseudo-random data and prints `<bytes> <sha256> <seconds>`.
const SENDER: &str = r#"
import hashlib, socket, sys, time
dst, port, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
block = b''.join(hashlib.sha256(i.to_bytes(4, 'big')).digest() for i in range(2048))
for _ in range(50):
    try:
        c = socket.create_connection((dst, port), timeout=5); break
    except OSError: time.sleep(0.1)
h = hashlib.sha256(); t = time.monotonic(); n = 0
for i in range(mib * 64):  # 64 chunks of 16 KiB per MiB
    chunk = block[:16 * 1024] if i % 2 else block[16 * 1024:32 * 1024]
    chunk = bytes([i & 0xff]) + chunk[1:]
    c.sendall(chunk); h.update(chunk); n += len(chunk)
c.shutdown(socket.SHUT_WR); c.recv(1); c.close()
print(n, h.hexdigest(), time.monotonic() - t)
"#;

/// Result of [`transfer`].
#[derive(Clone, Debug, PartialEq)]
pub struct Transfer {
    /// Bytes received.
    pub bytes: u64,
    /// Wall time of the send, in seconds.
    pub seconds: f64,
}

impl Transfer {
    /// Throughput in Mbit/s.
    pub fn mbit_per_s(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.seconds.max(1e-9) / 1e6
    }
}

/// Sends `mib` MiB over TCP from `from` to `to_addr` (in namespace `to`) and checks the
/// SHA-256 of what arrived against what was sent.
pub fn transfer(from: &Netns, to: &Netns, to_addr: IpAddr, mib: u32) -> Result<Transfer, Error> {
    let addr = to_addr.to_string();
    // The receiver blocks in accept, so it runs in a thread while the sender connects.
    let mut receiver = to.command(&["/usr/bin/python3", "-c", RECEIVER, &addr, "5001"]);
    let rx = std::thread::spawn(move || receiver.output());
    std::thread::sleep(Duration::from_millis(300));
    let sent = from.run_ok(&["/usr/bin/python3", "-c", SENDER, &addr, "5001", &mib.to_string()])?;
    let received = rx
        .join()
        .map_err(|_| Error::Check("receiver thread panicked".into()))?
        .map_err(|source| Error::Io { what: "run the TCP receiver".into(), source })?;
    let sent = String::from_utf8_lossy(&sent.stdout).into_owned();
    let received = String::from_utf8_lossy(&received.stdout).into_owned();
    let s: Vec<&str> = sent.split_whitespace().collect();
    let r: Vec<&str> = received.split_whitespace().collect();
    match (s.as_slice(), r.as_slice()) {
        ([sb, sh, secs], [rb, rh]) if sb == rb && sh == rh => Ok(Transfer {
            bytes: rb.parse().unwrap_or_default(),
            seconds: secs.parse().unwrap_or(f64::NAN),
        }),
        _ => Err(Error::Check(format!(
            "TCP transfer mismatch: sent [{}], received [{}]",
            sent.trim(),
            received.trim()
        ))),
    }
}

/// What a capture of the transit link held.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureReport {
    /// Packets captured.
    pub packets: usize,
    /// ESP or ESP-in-UDP packets.
    pub esp: usize,
    /// Packets whose outer addresses are LAN addresses (must be 0).
    pub leaked: usize,
    /// Whether `marker` appeared anywhere in the capture (must be false).
    pub marker_seen: bool,
}

/// Captures on gateway B's transit interface while `traffic` runs, then reports what crossed.
pub fn capture_transit(
    topo: &Topology,
    marker: &[u8],
    traffic: impl FnOnce() -> Result<(), Error>,
) -> Result<CaptureReport, Error> {
    let ns = &topo.gw_b().ns;
    let pcap = topo.log_dir().join("transit.pcap");
    let pcap_s = pcap.display().to_string();
    // `timeout` ends tcpdump with SIGTERM so it flushes; -Z root keeps it able to write into
    // the root-owned log directory.
    let mut capture = ns.spawn(&[
        "timeout",
        "6",
        "tcpdump",
        "-i",
        "wan0",
        "-nn",
        "--immediate-mode",
        "-U",
        "-Z",
        "root",
        "-w",
        &pcap_s,
    ])?;
    std::thread::sleep(Duration::from_millis(500));
    traffic()?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while capture.try_wait()?.is_none() {
        if Instant::now() > deadline {
            return Err(Error::Check("tcpdump did not stop".into()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let bytes =
        fs::read(&pcap).map_err(|source| Error::Io { what: format!("read {pcap_s}"), source })?;
    let lines = |filter: &str| -> Result<usize, Error> {
        let mut argv = vec!["tcpdump", "-nn", "-r", &pcap_s];
        if !filter.is_empty() {
            argv.push(filter);
        }
        let out = ns.run_ok(&argv)?;
        Ok(String::from_utf8_lossy(&out.stdout).lines().count())
    };
    let (la, lb) = (lan(topo.gw_a())?, lan(topo.gw_b())?);
    let lans = format!(
        "net {} or net {} or net {} or net {}",
        la.v4_network(),
        la.v6_network(),
        lb.v4_network(),
        lb.v6_network()
    );
    Ok(CaptureReport {
        packets: lines("")?,
        esp: lines("esp or udp port 4500")?,
        leaked: lines(&lans)?,
        marker_seen: bytes.windows(marker.len().max(1)).any(|w| w == marker),
    })
}
