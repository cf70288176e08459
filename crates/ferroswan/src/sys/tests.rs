//! Tests against the real kernel, each in a private network namespace of its own thread
//! (`unshare(CLONE_NEWNET)` affects only the calling thread): nothing to clean up, parallel-safe,
//! and nothing outside the namespace is touched. They need root (CAP_NET_ADMIN, CAP_NET_RAW);
//! `scripts/test` runs them with `--include-ignored`.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use ferroswan_proto::esp::PacketBuf;

use super::*;

const WAIT: Duration = Duration::from_secs(2);
const HEADROOM: usize = PacketBuf::DEFAULT_HEADROOM;

/// Runs `f` on a new thread inside a fresh network namespace with `lo` up.
fn in_netns<F: FnOnce() + Send + 'static>(f: F) {
    std::thread::spawn(move || {
        // SAFETY: unshare(2) with CLONE_NEWNET only moves this thread to a new namespace.
        let ret = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(ret, 0, "unshare(CLONE_NEWNET): {}", io::Error::last_os_error());
        let mut nl = Netlink::open().unwrap();
        let lo = nl.link_index("lo").unwrap();
        nl.set_link_up(lo).unwrap();
        f();
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

fn bufs(n: usize) -> Vec<PacketBuf> {
    (0..n).map(|_| PacketBuf::new(HEADROOM + 2048, HEADROOM)).collect()
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A TUN device, up, MTU 1400.
fn tun_up(name: &str) -> Tun {
    let tun = Tun::create(name).unwrap();
    tun.set_mtu(1400).unwrap();
    tun.set_up().unwrap();
    tun
}

/// Whether the kernel has a route to `dst` (a UDP connect does the lookup); the source address
/// it would use.
fn route_source(dst: IpAddr) -> Option<IpAddr> {
    let sock = std::net::UdpSocket::bind(SocketAddr::new(
        if dst.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() },
        0,
    ))
    .unwrap();
    sock.connect((dst, 9)).ok()?;
    Some(sock.local_addr().unwrap().ip())
}

/// An IPv4/UDP packet with a valid header checksum (UDP checksum 0: none, allowed over IPv4).
fn ipv4_udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else { panic!("IPv4 only") };
    let total = 28 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&s.octets());
    p[16..20].copy_from_slice(&d.octets());
    let mut sum: u32 = p[..20].chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p[20..22].copy_from_slice(&src.port().to_be_bytes());
    p[22..24].copy_from_slice(&dst.port().to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn tun_create_mtu_up_ifindex_and_gone_on_close() {
    in_netns(|| {
        let nl = Netlink::open().unwrap();
        let tun = Tun::create("ferro%d").unwrap();
        assert_eq!(tun.name(), "ferro0", "the kernel expands %d");
        assert_eq!(nl.link_index("ferro0").unwrap(), tun.ifindex());
        assert!(!tun.is_up().unwrap());
        tun.set_mtu(1400).unwrap();
        assert_eq!(tun.mtu().unwrap(), 1400);
        tun.set_txqueuelen(5000).unwrap();
        tun.set_up().unwrap();
        assert!(tun.is_up().unwrap());
        // Nothing is routed to it yet: a zero-timeout read returns at once.
        let mut b = bufs(4);
        let t = Instant::now();
        let _ = tun.recv_batch(&mut b, HEADROOM, Duration::ZERO).unwrap();
        assert!(t.elapsed() < Duration::from_millis(500));
        assert!(Tun::create("ferro0-but-far-too-long").is_err());
        drop(tun);
        let err = nl.link_index("ferro0").unwrap_err();
        assert!(err.to_string().contains("link index of ferro0"), "{err}");
    });
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn tun_multi_queue() {
    in_netns(|| {
        let q0 = Tun::create_multi_queue("mq0").unwrap();
        let q1 = q0.open_queue().unwrap();
        assert_eq!(q1.ifindex(), q0.ifindex());
        assert_eq!(q1.name(), "mq0");
        let single = Tun::create("sq0").unwrap();
        assert!(single.open_queue().is_err());
    });
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn routed_packets_are_read_from_the_tun() {
    in_netns(|| {
        let tun = tun_up("ferro0");
        let mut nl = Netlink::open().unwrap();
        nl.add_address(tun.ifindex(), ip("10.1.0.1"), 32).unwrap();
        nl.add_route(ip("10.2.0.0"), 16, tun.ifindex(), Some(ip("10.1.0.1"))).unwrap();

        let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        for i in 0..5u8 {
            sock.send_to(&[i; 100], "10.2.0.5:9999").unwrap();
        }
        let mut got = Vec::new();
        let mut b = bufs(8);
        let deadline = Instant::now() + WAIT;
        while got.len() < 5 && Instant::now() < deadline {
            let n = tun.recv_batch(&mut b, HEADROOM, WAIT).unwrap();
            for buf in &b[..n] {
                assert_eq!(buf.headroom(), HEADROOM);
                let p = buf.data();
                // Skip anything else the kernel sends out (IPv6 router solicitations, MLD).
                if p[0] >> 4 == 4 && p[9] == 17 && p[22..24] == 9999u16.to_be_bytes() {
                    assert_eq!(&p[12..16], &[10, 1, 0, 1], "source from the route's src");
                    assert_eq!(&p[16..20], &[10, 2, 0, 5]);
                    got.push(p[28..].to_vec());
                }
            }
        }
        let want: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 100]).collect();
        assert_eq!(got, want);
        assert_eq!(tun.truncated_packets(), 0);
    });
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn packets_written_to_the_tun_reach_a_local_socket() {
    in_netns(|| {
        let tun = tun_up("ferro0");
        let mut nl = Netlink::open().unwrap();
        nl.add_address(tun.ifindex(), ip("10.3.0.1"), 24).unwrap();
        let sock = UdpSocket::bind("10.3.0.1:7000".parse().unwrap()).unwrap();
        let peer: SocketAddr = "10.3.0.2:5555".parse().unwrap();
        let packets: Vec<Vec<u8>> =
            (0..3u8).map(|i| ipv4_udp(peer, sock.local_addr(), &[i; 32])).collect();
        let outcome = tun.send_batch(packets.iter().map(Vec::as_slice));
        assert_eq!((outcome.sent, outcome.failed), (3, 0), "{:?}", outcome.first_error);
        // Garbage is refused by the kernel, counted, and does not stop the batch.
        let outcome = tun.send_batch([&[0xffu8; 3][..], &packets[0]]);
        assert_eq!(outcome.sent + outcome.failed, 2);

        let mut batch = Batch::new();
        let mut b = bufs(8);
        let mut meta = vec![RecvMeta::<SocketAddr>::default(); 8];
        let mut seen = Vec::new();
        let deadline = Instant::now() + WAIT;
        while seen.len() < 4 && Instant::now() < deadline {
            let n = sock.recv_batch(&mut batch, &mut b, &mut meta, HEADROOM, WAIT).unwrap();
            for (buf, m) in b.iter().zip(&meta).take(n) {
                assert_eq!(m.src, peer);
                assert_eq!(m.dst, ip("10.3.0.1"));
                assert_eq!(m.len, 32);
                seen.push(buf.data()[0]);
            }
        }
        assert_eq!(seen, [0, 1, 2, 0]);
    });
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn raw_esp_over_ipv4_strips_the_header() {
    in_netns(|| {
        let rx = EspSocket::open_v4(Some(v4("127.0.0.1"))).unwrap();
        let tx = EspSocket::open_v4(Some(v4("127.0.0.2"))).unwrap();
        assert!(!rx.is_ipv6());
        let mut batch = Batch::new();
        let packets: Vec<Vec<u8>> = (0..10u32)
            .map(|seq| {
                let mut p = 0x1234_5678u32.to_be_bytes().to_vec();
                p.extend_from_slice(&seq.to_be_bytes());
                p.extend_from_slice(&[0xab; 50]);
                p
            })
            .collect();
        let outcome = tx.send_batch(&mut batch, packets.iter().map(|p| (ip("127.0.0.1"), &p[..])));
        assert_eq!(outcome.sent, 10, "{:?}", outcome.first_error);
        // A wrong-family destination fails alone.
        let outcome = tx.send_batch(&mut batch, [(ip("::1"), &packets[0][..])]);
        assert_eq!((outcome.sent, outcome.failed), (0, 1));

        let mut b = bufs(16);
        let mut meta = vec![RecvMeta::<IpAddr>::default(); 16];
        let mut got = Vec::new();
        let deadline = Instant::now() + WAIT;
        while got.len() < 10 && Instant::now() < deadline {
            let n = rx.recv_batch(&mut batch, &mut b, &mut meta, HEADROOM, WAIT).unwrap();
            for (buf, m) in b.iter().zip(&meta).take(n) {
                assert_eq!(m.src, ip("127.0.0.2"));
                assert_eq!(m.dst, ip("127.0.0.1"));
                assert_eq!(m.len, buf.len());
                assert!(!m.truncated);
                assert_eq!(buf.headroom(), HEADROOM + 20, "the IPv4 header was stripped");
                got.push(buf.data().to_vec());
            }
        }
        assert_eq!(got, packets);
    });
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn raw_esp_over_ipv6_reports_the_destination() {
    in_netns(|| {
        let rx = EspSocket::open_v6(Some(Ipv6Addr::LOCALHOST)).unwrap();
        let tx = EspSocket::open_v6(None).unwrap();
        assert!(rx.is_ipv6());
        let mut batch = Batch::new();
        let packet = [1u8, 2, 3, 4, 0, 0, 0, 1, 9, 9, 9, 9];
        tx.send_to(&mut batch, ip("::1"), &packet).unwrap();
        assert!(tx.send_to(&mut batch, ip("127.0.0.1"), &packet).is_err());
        let mut b = bufs(4);
        let mut meta = vec![RecvMeta::<IpAddr>::default(); 4];
        let n = rx.recv_batch(&mut batch, &mut b, &mut meta, HEADROOM, WAIT).unwrap();
        assert_eq!(n, 1);
        assert_eq!(b[0].data(), packet, "IPv6 raw sockets deliver no IP header");
        assert_eq!(b[0].headroom(), HEADROOM);
        assert_eq!(meta[0], RecvMeta { src: ip("::1"), dst: ip("::1"), len: 12, truncated: false });
        // Nothing more: a short wait times out with 0.
        assert_eq!(
            rx.recv_batch(&mut batch, &mut b, &mut meta, HEADROOM, Duration::from_millis(20))
                .unwrap(),
            0
        );
    });
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn udp_batches_of_100_with_metadata() {
    in_netns(|| {
        for (a, b) in [("127.0.0.1:0", "127.0.0.2:0"), ("[::1]:0", "[::1]:0")] {
            let rx = UdpSocket::bind(a.parse().unwrap()).unwrap();
            let tx = UdpSocket::bind(b.parse().unwrap()).unwrap();
            assert_ne!(rx.local_addr().port(), 0);
            rx.set_buffer_sizes(1 << 20, 1 << 20).unwrap();
            let mut batch = Batch::new();
            let payloads: Vec<Vec<u8>> =
                (0..100u16).map(|i| vec![i as u8; 10 + usize::from(i)]).collect();
            let outcome =
                tx.send_batch(&mut batch, payloads.iter().map(|p| (rx.local_addr(), &p[..])));
            assert_eq!((outcome.sent, outcome.failed), (100, 0), "{:?}", outcome.first_error);

            let mut bufs = bufs(BATCH);
            let mut meta = vec![RecvMeta::<SocketAddr>::default(); BATCH];
            let mut got = Vec::new();
            let mut calls = 0;
            let deadline = Instant::now() + WAIT;
            while got.len() < 100 && Instant::now() < deadline {
                let n = rx.recv_batch(&mut batch, &mut bufs, &mut meta, HEADROOM, WAIT).unwrap();
                calls += 1;
                for (buf, m) in bufs.iter().zip(&meta).take(n) {
                    assert_eq!(m.src, tx.local_addr());
                    assert_eq!(m.dst, rx.local_addr().ip());
                    assert_eq!(m.len, buf.len());
                    got.push(buf.data().to_vec());
                }
            }
            assert_eq!(got, payloads);
            assert!(calls <= 3, "{calls} recvmmsg calls for 100 queued datagrams");
        }
    });
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn truncated_datagrams_are_flagged() {
    in_netns(|| {
        let rx = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut batch = Batch::new();
        tx.send_to(&mut batch, rx.local_addr(), &[7; 300]).unwrap();
        let mut small = vec![PacketBuf::new(HEADROOM + 100, HEADROOM)];
        let mut meta = [RecvMeta::<SocketAddr>::default()];
        let n = rx.recv_batch(&mut batch, &mut small, &mut meta, HEADROOM, WAIT).unwrap();
        assert_eq!(n, 1);
        assert!(meta[0].truncated);
        assert_eq!(meta[0].len, 100);
    });
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn routes_add_delete_errors_and_guard() {
    in_netns(|| {
        let tun = tun_up("ferro0");
        let idx = tun.ifindex();
        let mut nl = Netlink::open().unwrap();
        nl.add_address(idx, ip("10.1.0.1"), 32).unwrap();
        let err = nl.add_address(idx, ip("10.1.0.1"), 32).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");

        assert_eq!(route_source(ip("10.2.3.4")), None);
        nl.add_route(ip("10.2.0.0"), 16, idx, Some(ip("10.1.0.1"))).unwrap();
        assert_eq!(route_source(ip("10.2.3.4")), Some(ip("10.1.0.1")));

        let err = nl.add_route(ip("10.2.0.0"), 16, idx, Some(ip("10.1.0.1"))).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(netlink::errno_of(&err), Some(libc::EEXIST));
        let text = err.to_string();
        assert!(
            text.starts_with("add route 10.2.0.0/16 dev ferro0 src 10.1.0.1: File exists"),
            "{text}"
        );

        nl.del_route(ip("10.2.0.0"), 16, idx, None).unwrap();
        assert_eq!(route_source(ip("10.2.3.4")), None);
        let err = nl.del_route(ip("10.2.0.0"), 16, idx, None).unwrap_err();
        assert_eq!(netlink::errno_of(&err), Some(libc::ESRCH), "{err}");

        // Host bits are cleared; IPv6 works the same way.
        nl.add_route(ip("10.9.9.9"), 24, idx, None).unwrap();
        assert!(route_source(ip("10.9.9.1")).is_some());
        nl.add_address(idx, ip("fd00:1::1"), 128).unwrap();
        nl.add_route(ip("fd00:2::"), 64, idx, None).unwrap();
        assert_eq!(route_source(ip("fd00:2::7")), Some(ip("fd00:1::1")));
        nl.del_route(ip("fd00:2::"), 64, idx, None).unwrap();
        assert_eq!(route_source(ip("fd00:2::7")), None);

        // A route into an interface that is down is refused, with the kernel's reason.
        let down = Tun::create("down0").unwrap();
        let err = nl.add_route(ip("10.4.0.0"), 16, down.ifindex(), None).unwrap_err();
        assert!(
            err.to_string().starts_with("add route 10.4.0.0/16 dev down0: Network is down"),
            "{err}"
        );
        assert!(nl.add_route(ip("10.4.0.0"), 33, idx, None).is_err());

        // The guard removes what it added, in reverse order, and tolerates routes already gone.
        {
            let mut guard = RouteGuard::new().unwrap();
            for (dst, len) in [("10.5.0.0", 16), ("10.6.0.0", 16), ("fd00:5::", 64)] {
                guard.add(main_route(dst, len, idx)).unwrap();
            }
            let r6 = main_route("10.6.0.0", 16, idx);
            guard.remove(&r6).unwrap();
            assert!(guard.remove(&r6).is_err());
            assert_eq!(guard.routes().len(), 2);
            nl.del_route(ip("10.5.0.0"), 16, idx, None).unwrap();
            assert!(route_source(ip("fd00:5::1")).is_some());
        }
        assert_eq!(route_source(ip("10.5.0.1")), None);
        assert_eq!(route_source(ip("fd00:5::1")), None);
    });
}

fn main_route(dst: &str, prefix_len: u8, ifindex: u32) -> Route {
    Route { dst: ip(dst), prefix_len, ifindex, src: None, table: netlink::MAIN_TABLE }
}

/// The payloads of UDP packets to port `port` read from `tun` until `want` of them arrived or
/// `wait` passed (other packets, e.g. IPv6 router solicitations, are skipped).
fn udp_payloads_to(tun: &Tun, port: u16, want: usize, wait: Duration) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut b = bufs(8);
    let deadline = Instant::now() + wait;
    while got.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let n = tun.recv_batch(&mut b, HEADROOM, left).unwrap();
        for buf in &b[..n] {
            let p = buf.data();
            let (proto, udp) = match p[0] >> 4 {
                4 => (p[9], &p[usize::from(p[0] & 0xf) * 4..]),
                6 => (p[6], &p[40..]),
                _ => continue,
            };
            if proto == 17 && udp[2..4] == port.to_be_bytes() {
                got.push(udp[8..].to_vec());
            }
        }
    }
    got
}

/// The daemon's policy routing: with `not fwmark SOCKET_MARK lookup POLICY_TABLE` and a route to
/// the peer in that table, an unmarked socket's packets to the peer enter the TUN, a marked
/// socket's leave by the main table's route (here into a second TUN standing in for the real
/// interface); without the rule, both use the main table.
#[test]
#[ignore = "needs root; scripts/test runs it"]
fn fwmark_rule_and_table_steer_unmarked_traffic_into_the_tun() {
    use netlink::{IpFamily, POLICY_TABLE, RULE_PRIORITY, Rule, RuleGuard, SOCKET_MARK};
    in_netns(|| {
        let vpn = tun_up("ferro0");
        let wan = tun_up("wan0");
        let mut nl = Netlink::open().unwrap();
        nl.add_address(wan.ifindex(), ip("192.0.2.1"), 24).unwrap();
        nl.add_address(wan.ifindex(), ip("2001:db8::1"), 64).unwrap();
        let cases = [
            ("192.0.2.1", "192.0.2.2", 32, "0.0.0.0:0"),
            ("2001:db8::1", "2001:db8::2", 128, "[::]:0"),
        ];
        // Main table only: the connected route to the peer through wan0.
        for (_, peer, _, _) in cases {
            assert!(route_source(ip(peer)).is_some());
        }
        let mut batch = Batch::new();
        let send = |batch: &mut Batch, marked: bool, bind: &str, peer: &str, port: u16| {
            let s = UdpSocket::bind(bind.parse().unwrap()).unwrap();
            if marked {
                s.set_mark(SOCKET_MARK).unwrap();
            }
            s.send_to(batch, SocketAddr::new(ip(peer), port), b"probe").unwrap();
        };
        let short = Duration::from_millis(200);
        {
            let mut routes = RouteGuard::new().unwrap();
            let mut rules = RuleGuard::new().unwrap();
            for (local, peer, len, _) in cases {
                let r = Route {
                    dst: ip(peer),
                    prefix_len: len,
                    ifindex: vpn.ifindex(),
                    src: Some(ip(local)),
                    table: POLICY_TABLE,
                };
                routes.add(r).unwrap();
                assert_eq!(
                    r.to_string(),
                    format!("{peer}/{len} dev ferro0 src {local} table 1717924466")
                );
            }
            for family in [IpFamily::V4, IpFamily::V6] {
                let rule = Rule::ferroswan(family);
                assert_eq!(rules.add_replacing(rule).unwrap(), 0);
                // An identical rule is refused; a leftover is replaced.
                let err = nl.add_rule(&rule).unwrap_err();
                assert_eq!(netlink::errno_of(&err), Some(libc::EEXIST), "{err}");
                assert!(
                    err.to_string().starts_with(&format!(
                        "add {} rule pref {RULE_PRIORITY} not fwmark 0x66657272/0xffffffff lookup \
                         1717924466: File exists",
                        if family == IpFamily::V4 { "-4" } else { "-6" }
                    )),
                    "{err}"
                );
                nl.del_rule(&rule).unwrap();
                nl.add_rule(&rule).unwrap();
            }
            assert_eq!(rules.rules().len(), 2);

            for (i, (_, peer, _, bind)) in cases.into_iter().enumerate() {
                let (plain, marked) = (7000 + i as u16 * 10, 7001 + i as u16 * 10);
                send(&mut batch, false, bind, peer, plain);
                send(&mut batch, true, bind, peer, marked);
                assert_eq!(udp_payloads_to(&vpn, plain, 1, WAIT), [b"probe"], "unmarked → TUN");
                assert_eq!(udp_payloads_to(&wan, marked, 1, WAIT), [b"probe"], "marked → main");
                assert!(udp_payloads_to(&wan, plain, 1, short).is_empty(), "{peer}");
                assert!(udp_payloads_to(&vpn, marked, 1, short).is_empty(), "{peer}");
            }
        }
        // The guards removed rules and routes: everything uses the main table again, and
        // nothing of ours is left to delete.
        for family in [IpFamily::V4, IpFamily::V6] {
            let err = nl.del_rule(&Rule::ferroswan(family)).unwrap_err();
            assert_eq!(netlink::errno_of(&err), Some(libc::ENOENT), "{err}");
        }
        for (i, (_, peer, _, bind)) in cases.into_iter().enumerate() {
            let port = 7100 + i as u16;
            send(&mut batch, false, bind, peer, port);
            assert_eq!(udp_payloads_to(&wan, port, 1, WAIT), [b"probe"], "{peer}");
        }
        // Leftovers (as after a crash) are purged, and only ours: the same rule added by someone
        // else (another protocol) stays. A child process runs in this thread's namespace.
        let rule = Rule::ferroswan(IpFamily::V4);
        nl.add_rule(&rule).unwrap();
        assert_eq!(nl.purge_rule(&rule).unwrap(), 1);
        assert_eq!(nl.purge_rule(&rule).unwrap(), 0);
        let ip_rule = |args: &[&str]| {
            let out = std::process::Command::new("ip").args(args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };
        let theirs = "not fwmark 0x66657272 lookup 1717924466 pref 1000 proto static";
        ip_rule(&["rule", "add"].into_iter().chain(theirs.split(' ')).collect::<Vec<_>>());
        nl.add_rule(&rule).unwrap();
        let listed = ip_rule(&["rule", "show", "pref", "1000"]);
        assert_eq!(listed.lines().count(), 2, "{listed}");
        assert!(listed.contains("not from all fwmark 0x66657272 lookup 1717924466 proto 245"));
        assert_eq!(nl.purge_rule(&rule).unwrap(), 1);
        let listed = ip_rule(&["rule", "show", "pref", "1000"]);
        assert!(listed.contains("proto static"), "{listed}");
        assert!(!listed.contains("proto 245"), "{listed}");

        // Rules on protocol and source port, without a mark.
        let esp = Rule {
            family: IpFamily::V4,
            priority: 999,
            fwmark: 0,
            fwmask: 0,
            ip_proto: Some(50),
            src_port: None,
            invert: false,
            table: netlink::MAIN_TABLE,
        };
        let nat_t = Rule { ip_proto: Some(17), src_port: Some(4500), ..esp };
        assert_eq!(nat_t.to_string(), "-4 rule pref 999 ipproto 17 sport 4500 lookup main");
        nl.add_rule(&esp).unwrap();
        nl.add_rule(&nat_t).unwrap();
        let listed = ip_rule(&["rule", "show", "pref", "999"]);
        assert!(listed.contains("from all ipproto esp lookup main proto 245"), "{listed}");
        assert!(
            listed.contains("from all ipproto udp sport 4500 lookup main proto 245"),
            "{listed}"
        );
        nl.del_rule(&nat_t).unwrap();
        let listed = ip_rule(&["rule", "show", "pref", "999"]);
        assert!(listed.contains("ipproto esp") && !listed.contains("udp"), "{listed}");
        assert_eq!(nl.purge_rule(&esp).unwrap(), 1);
    });
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn buffer_sizes_and_mark() {
    in_netns(|| {
        const MIB: usize = 1 << 20;
        let udp = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let sizes = udp.set_buffer_sizes(64 * MIB, 64 * MIB).unwrap();
        println!("UDP: asked 64 MiB, got {sizes:?}");
        assert!(sizes.forced, "root may exceed rmem_max");
        assert!(sizes.rcv >= 64 * MIB && sizes.snd >= 64 * MIB, "{sizes:?}");
        let esp = EspSocket::open_v4(None).unwrap();
        let sizes = esp.set_buffer_sizes(16 * MIB, 8 * MIB).unwrap();
        println!("ESP: asked 16/8 MiB, got {sizes:?}");
        assert!(sizes.rcv >= 16 * MIB && sizes.snd >= 8 * MIB, "{sizes:?}");
        udp.set_mark(0x5f).unwrap();
        esp.set_mark(0x5f).unwrap();
        assert!(!udp.wait_readable(Duration::from_millis(1)).unwrap());
    });
}

#[test]
#[ignore = "needs root; scripts/test runs it"]
fn sends_from_a_chosen_source_address() {
    in_netns(|| {
        let mut nl = Netlink::open().unwrap();
        let lo = nl.link_index("lo").unwrap();
        nl.add_address(lo, ip("fd00::5"), 128).unwrap();
        let mut batch = Batch::new();
        let mut b = bufs(4);
        for (rx_addr, tx_addr, src) in
            [("127.0.0.1:0", "0.0.0.0:0", "127.0.0.5"), ("[::1]:0", "[::]:0", "fd00::5")]
        {
            let rx = UdpSocket::bind(rx_addr.parse().unwrap()).unwrap();
            let tx = UdpSocket::bind(tx_addr.parse().unwrap()).unwrap();
            let outcome =
                tx.send_batch_from(&mut batch, Some(ip(src)), [(rx.local_addr(), &b"ike"[..])]);
            assert_eq!(outcome.sent, 1, "{:?}", outcome.first_error);
            let mut meta = vec![RecvMeta::<SocketAddr>::default(); 4];
            let n = rx.recv_batch(&mut batch, &mut b, &mut meta, HEADROOM, WAIT).unwrap();
            assert_eq!(n, 1);
            assert_eq!(meta[0].src, SocketAddr::new(ip(src), tx.local_addr().port()));
            // The other family's source fails every packet without a system call.
            let other = if ip(src).is_ipv4() { "::1" } else { "127.0.0.1" };
            let outcome =
                tx.send_batch_from(&mut batch, Some(ip(other)), [(rx.local_addr(), &b"x"[..])]);
            assert_eq!((outcome.sent, outcome.failed), (0, 1));
        }
        // Raw ESP too.
        let rx = EspSocket::open_v6(Some(Ipv6Addr::LOCALHOST)).unwrap();
        let tx = EspSocket::open_v6(None).unwrap();
        let outcome =
            tx.send_batch_from(&mut batch, Some(ip("fd00::5")), [(ip("::1"), &[1u8; 16][..])]);
        assert_eq!(outcome.sent, 1, "{:?}", outcome.first_error);
        let mut meta = vec![RecvMeta::<IpAddr>::default(); 4];
        let n = rx.recv_batch(&mut batch, &mut b, &mut meta, HEADROOM, WAIT).unwrap();
        assert_eq!(n, 1);
        assert_eq!((meta[0].src, meta[0].dst), (ip("fd00::5"), ip("::1")));
    });
}
