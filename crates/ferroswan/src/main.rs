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
        if json {
            let value = serde_json::json!({
                "sas": events.iter().map(ferroswan::status::to_json).collect::<Vec<_>>(),
                "stats": ferroswan::status::to_json(&stats),
            });
            println!("{}", serde_json::to_string_pretty(&value)?);
        } else {
            print!("{}", ferroswan::status::render(&events, &stats));
        }
        Ok(())
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
