//! `ferroswan`: the daemon and its command-line client in one binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ferroswan::vici::{Client, Message};

/// The default VICI socket (strongSwan's charon uses /var/run/charon.vici).
const DEFAULT_SOCKET: &str = "/run/ferroswan/charon.vici";

#[derive(Parser)]
#[command(
    name = "ferroswan",
    version,
    about = "IPsec VPN: IKEv2 and ESP with a userspace data plane"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon with a swanctl.conf-syntax configuration.
    Daemon {
        /// The configuration file.
        #[arg(short, long, default_value = "/etc/ferroswan/swanctl.conf")]
        config: PathBuf,
        /// Override the VICI socket path from the config.
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Show the daemon's security associations, counters and drops.
    Status {
        /// The daemon's VICI socket.
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Bring a connection up: VICI `initiate` of its child (the first one unless --child),
    /// waiting until the CHILD_SA is installed or the negotiation failed.
    Up {
        /// The connection name.
        conn: String,
        /// The child to bring up (default: the connection's first child).
        #[arg(long)]
        child: Option<String>,
        /// Seconds to wait for the outcome.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// The daemon's VICI socket.
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Take a connection down: VICI `terminate` of its IKE SAs (DELETE sent to the peer), or
    /// only of one child's CHILD_SAs with --child.
    Down {
        /// The connection name.
        conn: String,
        /// Delete only this child's CHILD_SAs; the IKE SA stays.
        #[arg(long)]
        child: Option<String>,
        /// Seconds to wait for the outcome.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// The daemon's VICI socket.
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Rekey a connection now: VICI `rekey` of its IKE SAs, or of one child's CHILD_SAs with
    /// --child (make-before-break, no traffic lost). Returns once the rekey has started.
    Rekey {
        /// The connection name.
        conn: String,
        /// Rekey only this child's CHILD_SAs.
        #[arg(long)]
        child: Option<String>,
        /// Reauthenticate the IKE SAs (a new IKE SA from scratch) instead of rekeying them.
        #[arg(long, conflicts_with = "child")]
        reauth: bool,
        /// Seconds to wait for the daemon.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// The daemon's VICI socket.
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Show a working VPN on this machine: two gateways and two LAN hosts in network
    /// namespaces, a ferroswan ESP tunnel between them, ping and a TCP transfer across, a
    /// capture of the transit link, and both sides' status. Cleans up afterwards. Needs root.
    Lab {
        /// ESP proposal (strongSwan keywords, one suite), e.g. aes256gcm16, chacha20poly1305,
        /// aes128-sha256.
        #[arg(long, default_value = "aes128gcm16")]
        proposal: String,
        /// Carry ESP in UDP port 4500 (RFC 3948) instead of raw ESP.
        #[arg(long)]
        encap: bool,
        /// Use IPv6 between the gateways.
        #[arg(long)]
        ipv6_outer: bool,
        /// MiB to send through the tunnel over TCP.
        #[arg(long, default_value_t = 20)]
        mib: u32,
        /// Use manually keyed SAs instead of negotiating them with IKEv2.
        #[arg(long)]
        manual: bool,
    },
    /// Check a configuration file and show what the daemon would set up.
    CheckConfig {
        /// The configuration file.
        #[arg(short, long, default_value = "/etc/ferroswan/swanctl.conf")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Daemon { config, socket } => ferroswan::daemon::run(&config, socket),
        Command::Status { socket, json } => status(&socket, json),
        Command::CheckConfig { config } => check_config(&config),
        Command::Up { conn, child, timeout, socket } => {
            control(&socket, "initiate", &conn, child.as_deref(), false, timeout)
        }
        Command::Down { conn, child, timeout, socket } => {
            control(&socket, "terminate", &conn, child.as_deref(), false, timeout)
        }
        Command::Rekey { conn, child, reauth, timeout, socket } => {
            control(&socket, "rekey", &conn, child.as_deref(), reauth, timeout)
        }
        Command::Lab { proposal, encap, ipv6_outer, mib, manual } => {
            lab(proposal, encap, ipv6_outer, mib, !manual)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferroswan: {e}");
            ExitCode::FAILURE
        }
    }
}

fn status(socket: &PathBuf, json: bool) -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut client = Client::connect(socket).await?;
        let (events, _) = client.request_streaming("list-sas", &Message::new(), "list-sa").await?;
        let stats = client.request("stats", &Message::new()).await?;
        let (policies, _) = client
            .request_streaming("list-policies", &Message::new().kv("trap", "yes"), "list-policy")
            .await
            .unwrap_or_default();
        // Our own command: the last failed negotiation per connection (absent on strongSwan).
        let failures =
            client.request("ferroswan-failures", &Message::new()).await.unwrap_or_default();
        // Ours too: restarts pending and stale SAs cleared, per connection.
        let notices =
            client.request("ferroswan-notices", &Message::new()).await.unwrap_or_default();
        if json {
            let value = serde_json::json!({
                "sas": events.iter().map(ferroswan::status::to_json).collect::<Vec<_>>(),
                "stats": ferroswan::status::to_json(&stats),
                "trap-policies": policies.iter().map(ferroswan::status::to_json).collect::<Vec<_>>(),
                "last-failures": ferroswan::status::to_json(&failures),
                "notices": ferroswan::status::to_json(&notices),
            });
            println!("{}", serde_json::to_string_pretty(&value)?);
        } else {
            print!("{}", ferroswan::status::render(&events, &stats));
            print!("{}", ferroswan::status::render_policies(&policies));
            let failures = ferroswan::status::to_json(&failures);
            if let Some(map) = failures.as_object().filter(|m| !m.is_empty()) {
                println!("last failure per connection:");
                // Each message starts with its connection (and child) name.
                for msg in map.values() {
                    println!("  {}", msg.as_str().unwrap_or_default());
                }
            }
            let notices = ferroswan::status::to_json(&notices);
            if let Some(map) = notices.as_object().filter(|m| !m.is_empty()) {
                println!("notices per connection:");
                for (conn, msg) in map {
                    println!("  {conn}: {}", msg.as_str().unwrap_or_default());
                }
            }
        }
        Ok(())
    })
}

/// `ferroswan up` / `down` / `rekey`: VICI `initiate`, `terminate` or `rekey` (`command`) of
/// connection `conn` (or its `child`); prints the daemon's `control-log` lines, then the
/// outcome. A refusal is an error (exit 1).
fn control(
    socket: &PathBuf,
    command: &str,
    conn: &str,
    child: Option<&str>,
    reauth: bool,
    timeout: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut client = Client::connect(socket).await?;
        // The daemon answers when the outcome is known; allow it its whole timeout.
        client.set_timeout(std::time::Duration::from_secs(timeout.saturating_add(5)));
        let mut request = Message::new().kv("ike", conn);
        if let Some(child) = child {
            request = request.kv("child", child);
        }
        if reauth {
            request = request.kv("reauth", "yes");
        }
        request = request.kv_display("timeout", timeout.saturating_mul(1000));
        let (log, reply) = client.request_streaming(command, &request, "control-log").await?;
        for line in &log {
            println!(
                "[{}] {}",
                line.get_str("group").unwrap_or("   "),
                line.get_str("msg").unwrap_or("")
            );
        }
        if reply.get_str("success") == Some("yes") {
            println!("{command} of '{conn}' completed successfully");
            Ok(())
        } else {
            let why = reply.get_str("errmsg").unwrap_or("the daemon gave no reason");
            Err(format!("{command} of '{conn}' failed: {why}").into())
        }
    })
}

fn check_config(path: &PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let config = ferroswan::config::Config::load(path)?;
    let plan = ferroswan::manual::plan(
        &config,
        &ferroswan_awslc::DEFAULT_PROVIDER,
        &ferroswan_awslc::LEGACY_PROVIDER,
    )?;
    println!("{}: OK", path.display());
    for sa in &config.manual {
        println!(
            "  manual SA {}: {} -> {}, {:?}{}, {}, spi in {:08x} out {:08x}",
            sa.name,
            sa.local_addr,
            sa.remote_addr,
            sa.mode,
            if sa.encap { " in UDP" } else { "" },
            sa.suite,
            sa.spi_in,
            sa.spi_out
        );
    }
    for route in &plan.routes {
        println!("  route {route} into the tunnel interface");
    }
    Ok(())
}

fn lab(
    proposal: String,
    encap: bool,
    ipv6_outer: bool,
    mib: u32,
    ike: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    use ferroswan::lab::netns::Topology;
    use ferroswan::lab::tunnel::{LabTunnel, TunnelOptions, capture_transit, outer, transfer};

    let step = |n: u32, text: &str| println!("\n[{n}] {text}");
    step(1, "building the lab: four network namespaces joined by veth pairs");
    let topo = Topology::builder().build()?;
    let (lan_a, lan_b) = (topo.lan_a().ok_or("no LAN A")?, topo.lan_b().ok_or("no LAN B")?);
    let (ga, gb) = (topo.gw_a(), topo.gw_b());
    println!(
        "    host A {} ── gateway A {} ══ ESP ══ gateway B {} ── host B {}",
        lan_a.eth0.v4,
        outer(&ga.wan0, ipv6_outer),
        outer(&gb.wan0, ipv6_outer),
        lan_b.eth0.v4
    );
    println!(
        "    (IPv6 too: {} ── … ── {}); the LANs have no route to each other except the tunnel",
        lan_a.eth0.v6, lan_b.eth0.v6
    );

    step(
        2,
        &format!(
            "starting ferroswan on both gateways: {}, ESP {proposal}, {}",
            if ike {
                "IKEv2 with a pre-shared key (gateway A initiates)"
            } else {
                "manually keyed SA"
            },
            if encap { "ESP in UDP 4500" } else { "raw ESP (IP protocol 50)" }
        ),
    );
    let options = TunnelOptions {
        proposal,
        encap,
        ipv6_outer,
        ike,
        ..TunnelOptions::new(std::env::current_exe()?)
    };
    let tunnel = LabTunnel::start(&topo, options)?;
    println!("    config of gateway A: {}", tunnel.a.config.display());

    let marker = b"FERROSWAN-LAB-PLAINTEXT";
    let mut transferred = None;
    step(3, "traffic through the tunnel, with tcpdump on gateway B's transit link");
    let report = capture_transit(&topo, marker, || {
        for dst in [std::net::IpAddr::from(lan_b.eth0.v4), lan_b.eth0.v6.into()] {
            let p = lan_a.ns.ping(dst, 4)?;
            println!("    ping host A → {dst}: {}/{} replies", p.received, p.transmitted);
        }
        let t = transfer(&lan_a.ns, &lan_b.ns, lan_b.eth0.v4.into(), mib)?;
        println!(
            "    TCP {} MiB host A → host B: SHA-256 matches, {:.1} s, {:.0} Mbit/s",
            t.bytes >> 20,
            t.seconds,
            t.mbit_per_s()
        );
        transferred = Some(t);
        Ok(())
    })?;
    println!(
        "    transit capture: {} packets, {} of them ESP; {} with a LAN address in the clear; plaintext seen: {}",
        report.packets,
        report.esp,
        report.leaked,
        if report.marker_seen { "YES" } else { "no" }
    );

    step(4, "status of gateway A (ferroswan status)");
    print!("{}", indent(&tunnel.a.status(&tunnel.options.binary)?));
    step(5, "status of gateway B");
    print!("{}", indent(&tunnel.b.status(&tunnel.options.binary)?));

    step(6, "cleaning up: stopping the daemons and deleting the namespaces");
    drop(tunnel);
    topo.close()?;
    let ok = report.leaked == 0 && !report.marker_seen && transferred.is_some();
    println!("\n{}", if ok { "The VPN works." } else { "Something is wrong: see above." });
    if ok { Ok(()) } else { Err("lab checks failed".into()) }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}
