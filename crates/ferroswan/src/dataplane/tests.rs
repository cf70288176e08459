#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use ferroswan_proto::crypto::{CryptoProvider, EspSuite, SecretBytes};
use ferroswan_proto::esp::{
    DropReason, InboundSa, Lifetime, Mode, OutboundSa, PacketBuf, SaParams,
};
use ferroswan_proto::policy::{SaSelectors, TrafficSelector};
use ferroswan_proto::wire::{EncrId, IntegId};

use super::testing::{MemLink, MemTun, WireDatagram};
use super::*;

fn provider() -> CryptoProvider {
    ferroswan_awslc::DEFAULT_PROVIDER
}

const A_OUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B_OUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

struct Sides {
    a: Dataplane,
    b: Dataplane,
}

fn ts(s: &str) -> TrafficSelector {
    s.parse().unwrap()
}

fn params(spi: u32, mode: Mode, suite: EspSuite) -> SaParams {
    SaParams {
        spi,
        suite,
        keymat: SecretBytes::new(vec![spi as u8; suite.keymat_len().unwrap()]),
        esn: false,
        mode,
        replay_window: 64,
        tfc_pad_to: 0,
        lifetime: Lifetime::default(),
    }
}

fn gcm() -> EspSuite {
    EspSuite { encr: EncrId::ENCR_AES_GCM_16, encr_key_bits: 128, integ: IntegId::NONE }
}

/// One gateway's tables: outbound SA `spi_out` to `peer`, inbound SA `spi_in`.
fn tables(
    mode: Mode,
    spi_out: u32,
    spi_in: u32,
    dst: Destination,
    local: &[&str],
    remote: &[&str],
) -> Tables {
    let selectors = SaSelectors::new(
        local.iter().map(|s| ts(s)).collect(),
        remote.iter().map(|s| ts(s)).collect(),
    );
    let mut t = Tables::default();
    let out = OutboundSa::new(&params(spi_out, mode, gcm()), &provider()).unwrap();
    let local = IpAddr::from(if spi_out == 0x1001 { A_OUTER } else { B_OUTER });
    t.add_outbound(
        Arc::new(OutboundEntry { name: "net".into(), sa: out, dst, local }),
        selectors.clone(),
    );
    let inb = InboundSa::new(&params(spi_in, mode, gcm()), &provider()).unwrap();
    t.add_inbound(Arc::new(InboundEntry { name: "net".into(), sa: inb, selectors }));
    t
}

fn sides(mode: Mode, udp: bool, a_ts: &[&str], b_ts: &[&str]) -> Sides {
    let to = |addr: Ipv4Addr| {
        if udp {
            Destination::Udp {
                local: SocketAddr::from(([0, 0, 0, 0], 4500)),
                remote: SocketAddr::from((addr, 4500)),
            }
        } else {
            Destination::Raw(addr.into())
        }
    };
    let a = Dataplane::new();
    a.install(tables(mode, 0x1001, 0x2002, to(B_OUTER), a_ts, b_ts));
    let b = Dataplane::new();
    b.install(tables(mode, 0x2002, 0x1001, to(A_OUTER), b_ts, a_ts));
    Sides { a, b }
}

fn tunnel_sides() -> Sides {
    sides(Mode::Tunnel, false, &["10.1.0.0/16", "fd01::/64"], &["10.2.0.0/16", "fd02::/64"])
}

fn udp4(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    ferroswan_test::packets::ipv4_udp(src.into(), dst.into(), 40000, 53, payload)
}

/// Runs `packets` through `from`'s outbound pipeline; returns what went on the wire.
fn send(from: &Dataplane, packets: &[Vec<u8>]) -> Vec<(Destination, Vec<u8>)> {
    let mut bufs: Vec<PacketBuf> = packets.iter().map(|p| PacketBuf::from_slice(p)).collect();
    let mut sends = vec![];
    outbound::process_batch(from, &mut bufs, &mut sends);
    sends.iter().map(|(d, i)| (*d, bufs[*i].data().to_vec())).collect()
}

/// Delivers one datagram to `to`'s inbound pipeline; returns the packet written to its TUN.
fn receive(to: &Dataplane, src: Ipv4Addr, dst: Destination, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut buf = PacketBuf::from_slice(bytes);
    let (carrier, src, our) = match dst {
        Destination::Raw(ip) => (Carrier::RawEsp, SocketAddr::new(src.into(), 0), ip),
        Destination::Udp { remote, .. } => {
            (Carrier::Udp, SocketAddr::new(src.into(), 4500), remote.ip())
        }
    };
    inbound::process(to, &to.tables(), &mut buf, &RecvMeta { src, dst: our, carrier })
        .map(<[u8]>::to_vec)
}

#[test]
fn tunnel_mode_carries_ipv4_and_ipv6_both_ways() {
    let s = tunnel_sides();
    let v4 = udp4([10, 1, 0, 5], [10, 2, 0, 7], b"hello over ESP");
    let v6 = ferroswan_test::packets::ipv6_udp(
        "fd01::5".parse().unwrap(),
        "fd02::7".parse().unwrap(),
        1,
        2,
        &[7; 900],
    );
    let wire = send(&s.a, &[v4.clone(), v6.clone()]);
    assert_eq!(wire.len(), 2);
    for (i, (dst, bytes)) in wire.iter().enumerate() {
        assert_eq!(*dst, Destination::Raw(B_OUTER.into()));
        assert_eq!(&bytes[..4], &0x1001u32.to_be_bytes(), "SPI first");
        assert!(!bytes.windows(14).any(|w| w == b"hello over ESP"), "no plaintext on the wire");
        let inner = receive(&s.b, A_OUTER, *dst, bytes).unwrap();
        assert_eq!(inner, if i == 0 { v4.clone() } else { v6.clone() });
    }
    let back = udp4([10, 2, 0, 7], [10, 1, 0, 5], b"reply");
    let wire = send(&s.b, std::slice::from_ref(&back));
    assert_eq!(receive(&s.a, B_OUTER, wire[0].0, &wire[0].1), Some(back));
    let t = s.b.tables();
    let inb = &t.inbound[&0x1001].sa;
    assert_eq!((inb.counters().packets(), inb.counters().nonzero_drops().count()), (2, 0));
}

#[test]
fn udp_encapsulation_and_non_esp_traffic_on_port_4500() {
    let s = sides(Mode::Tunnel, true, &["10.1.0.0/16"], &["10.2.0.0/16"]);
    let p = udp4([10, 1, 0, 5], [10, 2, 0, 7], b"x");
    let wire = send(&s.a, std::slice::from_ref(&p));
    assert!(matches!(wire[0].0, Destination::Udp { .. }));
    assert_eq!(receive(&s.b, A_OUTER, wire[0].0, &wire[0].1), Some(p));
    // NAT keepalive and an IKE message (non-ESP marker) are not ESP.
    assert_eq!(receive(&s.b, A_OUTER, wire[0].0, &[0xff]), None);
    assert_eq!(receive(&s.b, A_OUTER, wire[0].0, &[0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]), None);
    assert_eq!(s.b.counters().nat_keepalives(), 1);
    assert_eq!(s.b.counters().ike_datagrams(), 1);
}

#[test]
fn transport_mode_restores_a_header_from_the_outer_addresses() {
    let s = sides(Mode::Transport, false, &["192.0.2.1/32"], &["192.0.2.2/32"]);
    let p = udp4(A_OUTER.octets(), B_OUTER.octets(), b"host to host");
    let wire = send(&s.a, std::slice::from_ref(&p));
    // Only ESP goes to the socket: the kernel writes the outer header.
    assert_eq!(&wire[0].1[..4], &0x1001u32.to_be_bytes());
    let got = receive(&s.b, A_OUTER, wire[0].0, &wire[0].1).unwrap();
    let flow = ferroswan_proto::wire::ip::flow_key(&got).unwrap();
    assert_eq!((flow.src, flow.dst), (IpAddr::from(A_OUTER), IpAddr::from(B_OUTER)));
    assert_eq!(&got[20..], &p[20..], "the UDP datagram arrives unchanged");
}

#[test]
fn hostile_input_is_dropped_and_counted_under_its_own_reason() {
    let s = tunnel_sides();
    let good = udp4([10, 1, 0, 5], [10, 2, 0, 7], &[1; 200]);
    let wire = send(&s.a, &[good.clone(), good.clone()]);
    let (dst, first) = (wire[0].0, wire[0].1.clone());
    let src = A_OUTER;
    assert!(receive(&s.b, src, dst, &first).is_some());
    // 1. Replayed packet.
    assert_eq!(receive(&s.b, src, dst, &first), None);
    // 2. Flipped bit.
    let mut flipped = wire[1].1.clone();
    flipped[40] ^= 0x04;
    assert_eq!(receive(&s.b, src, dst, &flipped), None);
    // 3. Unknown SPI.
    let mut unknown = wire[1].1.clone();
    unknown[..4].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    assert_eq!(receive(&s.b, src, dst, &unknown), None);
    // 4. Truncated: cut inside the ESP packet, and shorter than an SPI.
    assert_eq!(receive(&s.b, src, dst, &wire[1].1[..20]), None);
    assert_eq!(receive(&s.b, src, dst, &wire[1].1[..3]), None);
    // 5. Inner packet outside the SA's selectors, sealed with the right keys (a peer that
    //    tries to reach a network it was not given).
    let outside = udp4([10, 1, 0, 5], [10, 3, 0, 1], b"sneaky");
    let mut buf = PacketBuf::from_slice(&outside);
    s.a.tables().outbound[0].sa.seal_tunnel(&mut buf).unwrap();
    assert_eq!(receive(&s.b, src, dst, buf.data()), None);
    // The tunnel keeps working.
    assert_eq!(receive(&s.b, src, dst, &wire[1].1), Some(good));

    let t = s.b.tables();
    let c = t.inbound[&0x1001].sa.counters();
    assert_eq!(c.drops(DropReason::Replayed), 1);
    assert_eq!(c.drops(DropReason::AuthFailed), 1);
    assert_eq!(c.drops(DropReason::Malformed), 1);
    assert_eq!(c.drops(DropReason::PolicyMismatch), 1);
    assert_eq!(s.b.counters().drops(DropReason::UnknownSpi), 1);
    assert_eq!(s.b.counters().drops(DropReason::Malformed), 1);
    assert_eq!(c.packets(), 3);
}

#[test]
fn packets_without_a_policy_are_dropped() {
    let s = tunnel_sides();
    let wire = send(&s.a, &[udp4([10, 1, 0, 5], [10, 9, 0, 1], b"nowhere"), vec![0x45, 0, 0]]);
    assert!(wire.is_empty());
    assert_eq!(s.a.counters().drops(DropReason::NoPolicy), 1);
    assert_eq!(s.a.counters().drops(DropReason::Malformed), 1);
}

#[test]
fn threaded_workers_carry_a_stream_in_order_both_ways() {
    let s = Arc::new(tunnel_sides());
    let (tun_a, tun_b) = (MemTun::new(), MemTun::new());
    let (a_to_b, b_to_a) = (MemLink::new(A_OUTER.into()), MemLink::new(B_OUTER.into()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = vec![];
    for (dp, tun, tx, rx) in [
        (0, tun_a.clone(), a_to_b.clone(), b_to_a.clone()),
        (1, tun_b.clone(), b_to_a.clone(), a_to_b.clone()),
    ] {
        let (s1, s2, stop1, stop2, tun2) =
            (s.clone(), s.clone(), stop.clone(), stop.clone(), tun.clone());
        workers.push(std::thread::spawn(move || {
            let dp = if dp == 0 { &s1.a } else { &s1.b };
            outbound::run(dp, tun.as_ref(), tx.as_ref(), &stop1);
        }));
        workers.push(std::thread::spawn(move || {
            let dp = if dp == 0 { &s2.a } else { &s2.b };
            inbound::run(dp, rx.as_ref(), tun2.as_ref(), &stop2);
        }));
    }
    let packets: Vec<Vec<u8>> =
        (0..1000u32).map(|i| udp4([10, 1, 0, 5], [10, 2, 0, 7], &i.to_be_bytes())).collect();
    for p in &packets {
        tun_a.inject(p);
    }
    tun_b.inject(&udp4([10, 2, 0, 7], [10, 1, 0, 5], b"back"));
    let mut got = vec![];
    while got.len() < packets.len() {
        let batch = tun_b.wait_written(1000, Duration::from_secs(10));
        assert!(!batch.is_empty(), "stalled after {} packets", got.len());
        got.extend(batch);
    }
    assert_eq!(got, packets, "every packet, in order");
    assert_eq!(tun_a.wait_written(1, Duration::from_secs(10)).len(), 1);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn a_manual_link_lets_tests_hold_and_reorder_datagrams() {
    let s = tunnel_sides();
    let link = MemLink::manual(A_OUTER.into());
    let mut bufs: Vec<PacketBuf> = (0..3u8)
        .map(|i| PacketBuf::from_slice(&udp4([10, 1, 0, 5], [10, 2, 0, 7], &[i])))
        .collect();
    let mut sends = vec![];
    outbound::process_batch(&s.a, &mut bufs, &mut sends);
    link.send_batch(&bufs, &sends).unwrap();
    let mut held: Vec<WireDatagram> = link.take();
    held.reverse();
    for d in held {
        link.deliver(d);
    }
    let mut rx_bufs = vec![PacketBuf::new(BUF_SIZE, 128); 8];
    let mut metas = vec![RecvMeta::default(); 8];
    let n = link.recv_batch(&mut rx_bufs, &mut metas, Duration::from_secs(1)).unwrap();
    let delivered: Vec<_> = rx_bufs
        .iter_mut()
        .zip(&metas)
        .take(n)
        .filter_map(|(b, m)| inbound::process(&s.b, &s.b.tables(), b, m).map(<[u8]>::to_vec))
        .collect();
    assert_eq!(delivered.len(), 3, "reordering inside the replay window is accepted");
}

#[test]
fn link_scope_packets_are_ignored_not_counted_as_drops() {
    let s = tunnel_sides();
    // An MLDv2 report from :: to ff02::16, as the kernel sends when the TUN comes up.
    let mld = ferroswan_test::packets::ipv6_udp(
        "::".parse().unwrap(),
        "ff02::16".parse().unwrap(),
        1,
        2,
        b"",
    );
    assert!(send(&s.a, &[mld]).is_empty());
    assert_eq!(s.a.counters().link_local_ignored(), 1);
    assert_eq!(s.a.counters().drops(DropReason::NoPolicy), 0);
}

#[test]
fn a_trap_holds_packets_acquires_once_and_releases_them_through_the_sa() {
    let s = tunnel_sides();
    let selectors = SaSelectors::new(vec![ts("10.1.0.0/16")], vec![ts("10.2.0.0/16")]);
    let trap = Arc::new(TrapEntry::with_limits(7, "gw", "net", Mode::Tunnel, selectors, 3, 4096));
    // Only the trap: nothing leaves, the first packet acquires, the queue takes three.
    let mut only_trap = Tables::default();
    only_trap.add_trap(trap.clone());
    s.a.install(only_trap);
    let acquired = Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let acquired = acquired.clone();
        s.a.set_acquire_sink(Box::new(move |id, flow| {
            acquired.lock().unwrap().push((id, flow.dst));
        }));
    }
    let packets: Vec<Vec<u8>> =
        (0..5u8).map(|i| udp4([10, 1, 0, 5], [10, 2, 0, 7], &[i; 10])).collect();
    assert!(send(&s.a, &packets).is_empty());
    assert_eq!(*acquired.lock().unwrap(), [(7, IpAddr::from([10, 2, 0, 7]))]);
    assert_eq!(s.a.counters().drops(DropReason::TrapQueueFull), 2);
    assert_eq!(s.a.counters().drops(DropReason::NoPolicy), 0);
    assert_eq!(trap.stats().queued, 3);

    // The SA is installed (the trap stays, and loses to it): the held packets go out through
    // it, oldest first, and arrive whole at the peer.
    let mut with_sa = tables(
        Mode::Tunnel,
        0x1001,
        0x2002,
        Destination::Raw(B_OUTER.into()),
        &["10.1.0.0/16"],
        &["10.2.0.0/16"],
    );
    with_sa.add_trap(trap.clone());
    let link = MemLink::manual(A_OUTER.into());
    s.a.set_net_tx(link.clone());
    assert_eq!(s.a.install_releasing(with_sa, &trap), 3);
    let wire = link.take();
    let inner: Vec<Vec<u8>> =
        wire.iter().map(|d| receive(&s.b, A_OUTER, d.dst, &d.bytes).unwrap()).collect();
    assert_eq!(inner, packets[..3]);
    assert_eq!(trap.stats().queued, 0);
    // New traffic takes the SA, not the trap.
    assert_eq!(send(&s.a, &packets[3..]).len(), 2);
    assert_eq!((trap.stats().held, trap.stats().sent, trap.stats().acquires), (3, 3, 1));

    // The SA goes again: the next packet acquires at once; a failed negotiation drops it.
    let mut only_trap = Tables::default();
    only_trap.add_trap(trap.clone());
    s.a.install(only_trap);
    assert!(send(&s.a, &packets[..1]).is_empty());
    assert_eq!(acquired.lock().unwrap().len(), 2);
    assert_eq!(s.a.fail_trap(&trap, std::time::Instant::now()), 1);
    assert_eq!(s.a.counters().drops(DropReason::TrapFailed), 1);
    // Within the retry delay, traffic is held but asks for nothing.
    assert!(send(&s.a, &packets[..1]).is_empty());
    assert_eq!(acquired.lock().unwrap().len(), 2);
    assert_eq!(s.a.discard_trap(&trap), 1);
    assert_eq!(s.a.counters().drops(DropReason::TrapFailed), 2);
}

/// The ESP sequence number of a sealed packet.
fn esp_seq(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(bytes[4..8].try_into().unwrap())
}

#[test]
fn held_packets_leave_before_packets_sealed_with_the_new_sa() {
    let s = tunnel_sides();
    let selectors = SaSelectors::new(vec![ts("10.1.0.0/16")], vec![ts("10.2.0.0/16")]);
    let trap = Arc::new(TrapEntry::with_limits(3, "gw", "net", Mode::Tunnel, selectors, 8, 8192));
    let mut only_trap = Tables::default();
    only_trap.add_trap(trap.clone());
    s.a.install(only_trap);
    // A worker that loaded these tables and has not looked at its next packet yet.
    let old = s.a.tables();
    let to = |d: [u8; 4], i: u8| udp4([10, 1, 0, 5], d, &[i; 20]);
    // Three packets the new SA covers, one it does not (the peer narrowed to 10.2.0.0/24).
    let held =
        [to([10, 2, 0, 7], 0), to([10, 2, 5, 5], 1), to([10, 2, 0, 7], 2), to([10, 2, 0, 8], 3)];
    assert!(send(&s.a, &held).is_empty());
    assert_eq!(trap.stats().queued, 4);
    let mut with_sa = tables(
        Mode::Tunnel,
        0x1001,
        0x2002,
        Destination::Raw(B_OUTER.into()),
        &["10.1.0.0/16"],
        &["10.2.0.0/24"],
    );
    with_sa.add_trap(trap.clone());
    let link = MemLink::manual(A_OUTER.into());
    s.a.set_net_tx(link.clone());
    assert_eq!(s.a.install_releasing(with_sa, &trap), 3);
    let wire = link.take();
    assert_eq!(wire.iter().map(|d| esp_seq(&d.bytes)).collect::<Vec<_>>(), [1, 2, 3]);
    let inner: Vec<Vec<u8>> =
        wire.iter().map(|d| receive(&s.b, A_OUTER, d.dst, &d.bytes).unwrap()).collect();
    assert_eq!(inner, [held[0].clone(), held[2].clone(), held[3].clone()]);
    // The packet outside the SA stays held (no new acquire from the release).
    assert_eq!(trap.stats().queued, 1);
    // The worker still on the old tables hits the trap: it is told to look again, and the
    // queue is left alone; looked up again (the new tables), it follows the held ones.
    let late = to([10, 2, 0, 9], 4);
    let mut buf = PacketBuf::from_slice(&late);
    assert!(matches!(outbound::route(&s.a, &old, &mut buf, None), outbound::Fate::Retry));
    assert_eq!((trap.stats().queued, trap.stats().held), (1, 4));
    let after = send(&s.a, std::slice::from_ref(&late));
    assert_eq!(after.iter().map(|(_, b)| esp_seq(b)).collect::<Vec<_>>(), [4]);
    assert_eq!(receive(&s.b, A_OUTER, after[0].0, &after[0].1).unwrap(), late);
    assert_eq!(trap.stats().sent, 3);
}
