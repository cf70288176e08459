//! Manually keyed SAs (the `manual { … }` section of the config) turned into data-plane tables
//! and the routes the daemon installs for them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ferroswan_proto::crypto::{CryptoProvider, SecretBytes};
use ferroswan_proto::esp::{InboundSa, Lifetime, Mode, OutboundSa, SaParams};
use ferroswan_proto::policy::{SaSelectors, TrafficSelector, TsError};

use crate::config::{self, Config, ConfigError, ManualSa};
use crate::dataplane::{Destination, InboundEntry, OutboundEntry, Tables};

/// A route into the tunnel interface: `addr/prefix_len`, optionally with a preferred source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// Preferred source address (transport mode: the SA's local address, so that traffic this
    /// host sends to the peer carries the address the SA's selectors expect).
    pub src: Option<IpAddr>,
}

impl core::fmt::Display for Route {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)?;
        if let Some(src) = self.src {
            write!(f, " src {src}")?;
        }
        Ok(())
    }
}

/// What the daemon needs to run the manual SAs of a config.
#[derive(Debug, Default)]
pub struct ManualPlan {
    /// The data-plane tables.
    pub tables: Tables,
    /// Routes into the tunnel interface: the remote selectors of every SA (tunnel mode: the
    /// remote subnets; transport mode: the peer's host address, with our address as source).
    /// One route per prefix: the first SA to name a prefix decides its source.
    pub routes: Vec<Route>,
    /// Local addresses that send or receive raw ESP.
    pub raw_esp_addrs: Vec<IpAddr>,
    /// Local UDP sockets for ESP-in-UDP.
    pub udp_sockets: Vec<SocketAddr>,
}

/// Builds the data-plane tables for every manual SA in `config`. Legacy algorithms use
/// `legacy_provider` (and are warned about); everything else `provider`.
pub fn plan(
    config: &Config,
    provider: &CryptoProvider,
    legacy_provider: &CryptoProvider,
) -> Result<ManualPlan, ConfigError> {
    let mut plan = ManualPlan::default();
    for sa in &config.manual {
        let local = selectors(&sa.local_ts, sa.local_addr)?;
        let remote = selectors(&sa.remote_ts, sa.remote_addr)?;
        let selectors = SaSelectors::new(local, remote.clone());
        let provider = if sa.legacy.is_empty() {
            provider
        } else {
            tracing::warn!(
                "manual SA {}: uses legacy algorithms {} ({}); prefer aes128gcm16 or chacha20poly1305",
                sa.name,
                sa.legacy.join(", "),
                sa.location
            );
            legacy_provider
        };
        let mode = match sa.mode {
            config::Mode::Transport => Mode::Transport,
            config::Mode::Tunnel => Mode::Tunnel,
        };
        let params = |spi, key: &config::SecretKey| SaParams {
            spi,
            suite: sa.suite,
            keymat: SecretBytes::from(key.expose()),
            esn: sa.esn,
            mode,
            replay_window: sa.replay_window,
            tfc_pad_to: u16::try_from(sa.tfc_padding).unwrap_or(u16::MAX),
            lifetime: Lifetime::default(),
        };
        let refuse = |e: &dyn core::fmt::Display| {
            ConfigError::new(sa.location.clone(), format!("manual SA {}: {e}", sa.name))
        };
        let outbound =
            OutboundSa::new(&params(sa.spi_out, &sa.key_out), provider).map_err(|e| refuse(&e))?;
        let inbound =
            InboundSa::new(&params(sa.spi_in, &sa.key_in), provider).map_err(|e| refuse(&e))?;
        let dst = destination(sa);
        match dst {
            Destination::Raw(_) => push_unique(&mut plan.raw_esp_addrs, sa.local_addr),
            Destination::Udp { local, .. } => push_unique(&mut plan.udp_sockets, local),
        }
        for ts in &remote {
            for mut route in cidrs(ts) {
                if mode == Mode::Transport && route.addr.is_ipv4() == sa.local_addr.is_ipv4() {
                    route.src = Some(sa.local_addr);
                }
                if !plan
                    .routes
                    .iter()
                    .any(|r| (r.addr, r.prefix_len) == (route.addr, route.prefix_len))
                {
                    plan.routes.push(route);
                }
            }
        }
        let name = sa.name.clone();
        plan.tables.add_outbound(
            Arc::new(OutboundEntry { name: name.clone(), sa: outbound, dst, local: sa.local_addr }),
            selectors.clone(),
        );
        // Duplicate `spi_in` values are refused by the config loader.
        plan.tables.add_inbound(Arc::new(InboundEntry { name, sa: inbound, selectors }));
    }
    Ok(plan)
}

fn destination(sa: &ManualSa) -> Destination {
    if sa.encap {
        Destination::Udp {
            local: SocketAddr::new(sa.local_addr, sa.local_port),
            remote: SocketAddr::new(sa.remote_addr, sa.remote_port),
        }
    } else {
        Destination::Raw(sa.remote_addr)
    }
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, item: T) {
    if !v.contains(&item) {
        v.push(item);
    }
}

/// Parses swanctl selector strings; `dynamic` stands for `outer` (the SA's own address), with
/// any protocol and ports written after it.
fn selectors(
    entries: &[(String, config::Location)],
    outer: IpAddr,
) -> Result<Vec<TrafficSelector>, ConfigError> {
    entries
        .iter()
        .map(|(text, location)| match text.parse::<TrafficSelector>() {
            Ok(ts) => Ok(ts),
            Err(TsError::Dynamic { protocol, start_port, end_port }) => {
                Ok(TrafficSelector::host(outer).with_protocol(protocol).with_ports(start_port, end_port))
            }
            Err(e) => Err(ConfigError::new(location.clone(), format!("traffic selector '{text}': {e}"))
                .with_hint("write a subnet (10.1.0.0/16), a host, a range (10.1.0.1-10.1.0.9) or dynamic, optionally with [proto/port]")),
        })
        .collect()
}

/// The smallest set of prefixes covering the selector's address range.
pub fn cidrs(ts: &TrafficSelector) -> Vec<Route> {
    let (bits, start, end) = match (ts.start(), ts.end()) {
        (IpAddr::V4(s), IpAddr::V4(e)) => {
            (32u32, u128::from(u32::from(s)), u128::from(u32::from(e)))
        }
        (IpAddr::V6(s), IpAddr::V6(e)) => (128, u128::from(s), u128::from(e)),
        _ => return vec![],
    };
    let to_addr = |v: u128| -> IpAddr {
        if bits == 32 {
            IpAddr::from((v as u32).to_be_bytes())
        } else {
            IpAddr::from(v.to_be_bytes())
        }
    };
    // Last address of the block of 2^k addresses starting at `cur`.
    let block_end = |cur: u128, k: u32| -> Option<u128> {
        if k >= 128 { (cur == 0).then_some(u128::MAX) } else { cur.checked_add((1 << k) - 1) }
    };
    let mut out = vec![];
    let mut cur = start;
    loop {
        // The largest block aligned at `cur` that stays within the range.
        let mut k = if cur == 0 { bits } else { cur.trailing_zeros().min(bits) };
        while k > 0 && block_end(cur, k).is_none_or(|last| last > end) {
            k -= 1;
        }
        out.push(Route { addr: to_addr(cur), prefix_len: (bits - k) as u8, src: None });
        match block_end(cur, k).and_then(|last| last.checked_add(1)) {
            Some(next) if next <= end => cur = next,
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn routes(s: &str) -> Vec<String> {
        cidrs(&s.parse().unwrap()).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn ranges_become_minimal_prefix_sets() {
        assert_eq!(routes("10.2.0.0/16"), ["10.2.0.0/16"]);
        assert_eq!(routes("0.0.0.0/0"), ["0.0.0.0/0"]);
        assert_eq!(
            routes("10.0.0.1-10.0.0.6"),
            ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
        );
        assert_eq!(routes("fd02::/64"), ["fd02::/64"]);
        assert_eq!(routes("::/0"), ["::/0"]);
        assert_eq!(routes("255.255.255.254-255.255.255.255"), ["255.255.255.254/31"]);
    }

    #[test]
    fn example_config_plans_tables_and_routes() {
        let text = r#"
            manual {
                gw {
                    local_addrs = 192.0.2.1
                    remote_addrs = 192.0.2.2
                    esp_proposal = aes128gcm16
                    spi_in = 0x1001
                    spi_out = 0x2002
                    key_in = 0x000102030405060708090a0b0c0d0e0f10111213
                    key_out = 0x101112131415161718191a1b1c1d1e1f20212223
                    local_ts = 10.1.0.0/16
                    remote_ts = 10.2.0.0/16, 10.3.0.1-10.3.0.2
                }
                host {
                    local_addrs = 192.0.2.1
                    remote_addrs = 192.0.2.3
                    mode = transport
                    encap = yes
                    esp_proposal = aes256-sha256
                    spi_in = 0x3003
                    spi_out = 0x4004
                    key_in = 0x00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
                    key_out = 0x00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
                }
            }
        "#;
        let config = Config::parse_str(text, "test.conf").unwrap();
        let p = ferroswan_awslc::DEFAULT_PROVIDER;
        let plan = plan(&config, &p, &ferroswan_awslc::LEGACY_PROVIDER).unwrap();
        let routes: Vec<String> = plan.routes.iter().map(ToString::to_string).collect();
        // Tunnel mode: the remote subnets; transport mode: the peer, from our address.
        assert_eq!(
            routes,
            ["10.2.0.0/16", "10.3.0.1/32", "10.3.0.2/32", "192.0.2.3/32 src 192.0.2.1"]
        );
        assert_eq!(plan.tables.outbound.len(), 2);
        assert_eq!(plan.tables.inbound.len(), 2);
        assert_eq!(plan.raw_esp_addrs, [IpAddr::from([192, 0, 2, 1])]);
        assert_eq!(plan.udp_sockets, [SocketAddr::from(([192, 0, 2, 1], 4500))]);
        // `dynamic` (the default) resolved to the outer addresses for the transport SA.
        let flow = ferroswan_proto::wire::FlowKey {
            src: [192, 0, 2, 1].into(),
            dst: [192, 0, 2, 3].into(),
            protocol: ferroswan_proto::wire::IpProtocol::UDP,
            src_port: 1,
            dst_port: 2,
            ports_opaque: false,
        };
        assert!(plan.tables.spd.lookup_outbound(&flow).is_some());
    }

    #[test]
    fn bad_selectors_name_the_line() {
        let text = "manual {\n gw {\n local_addrs = 192.0.2.1\n remote_addrs = 192.0.2.2\n esp_proposal = aes128gcm16\n spi_in = 0x1001\n spi_out = 0x2002\n key_in = 000102030405060708090a0b0c0d0e0f10111213\n key_out = 000102030405060708090a0b0c0d0e0f10111213\n remote_ts = 10.2.0.0/33\n }\n}\n";
        let config = Config::parse_str(text, "bad.conf").unwrap();
        let p = ferroswan_awslc::DEFAULT_PROVIDER;
        let err = plan(&config, &p, &p).unwrap_err().to_string();
        assert!(err.starts_with("bad.conf:10: traffic selector '10.2.0.0/33'"), "{err}");
    }
}
