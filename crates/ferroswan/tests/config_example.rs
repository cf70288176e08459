//! The example configuration under `tests/data` loads and means what it says.

use std::net::IpAddr;
use std::path::Path;

use ferroswan::config::{Config, LoadOptions, LogLevel, Mode};
use ferroswan_proto::wire::{EncrId, IntegId};

#[test]
fn example_manual_sa_config_loads() -> Result<(), Box<dyn std::error::Error>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/manual-sa.conf");
    // git does not keep mode 600, so check permissions separately below.
    let config = Config::load_with(&path, &LoadOptions::default().check_secret_permissions(false))?;
    assert_eq!(config.daemon.tun.name, "ferro0");
    assert_eq!(config.daemon.tun.mtu, Some(1400));
    assert_eq!(config.daemon.log_level, LogLevel::Info);
    assert_eq!((config.daemon.udp_port, config.daemon.udp_port_nat_t), (500, 4500));
    assert_eq!(config.manual.len(), 2);

    let site = config.manual.first().ok_or("no SA")?;
    assert_eq!(site.name, "site-b");
    assert_eq!(site.remote_addr, "198.51.100.2".parse::<IpAddr>()?);
    assert!(site.encap);
    assert_eq!(site.suite.encr, EncrId::ENCR_AES_GCM_16);
    assert_eq!((site.spi_in, site.spi_out), (0xc0de_0001, 0xc0de_0002));
    assert_eq!(site.key_in.expose().len(), 20);
    assert_eq!(site.replay_window, 128, "inherited from the template");
    assert_eq!(site.mode, Mode::Tunnel);
    let remote: Vec<&str> = site.remote_ts.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(remote, ["10.2.0.0/16", "10.3.0.0/16[tcp/443]"]);
    assert!(!format!("{site:?}").contains("0a0b0c"), "keys are redacted in Debug");

    let host = config.manual.get(1).ok_or("no SA")?;
    assert_eq!(host.mode, Mode::Transport);
    assert_eq!(host.suite.integ, IntegId::AUTH_HMAC_SHA2_256_128);
    assert!(host.esn);
    assert_eq!(host.key_out.expose().len(), 48);
    assert_eq!((host.replay_window, host.tfc_padding), (1024, 1400));
    assert_eq!(host.local_ts.first().map(|(t, _)| t.as_str()), Some("dynamic"));

    let conns = config.connections_raw.as_ref().ok_or("connections kept")?;
    assert_eq!(
        conns.find("home.children.net").and_then(|s| s.value("esp_proposals")),
        Some("aes256gcm16,default")
    );

    let strict = LoadOptions::default()
        .check_secret_permissions(false)
        .unsupported_sections_are_errors(true);
    let err = Config::load_with(&path, &strict).err().ok_or("connections refused")?;
    assert!(err.to_string().contains("not supported yet in this version"), "{err}");
    Ok(())
}
