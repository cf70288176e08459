//! Property tests of the ESP engine with the real (aws-lc) provider: for every supported suite,
//! ESN on and off, tunnel and transport mode, IPv4 and IPv6 packets of any size,
//! `open(seal(p)) == p`, and any single flipped bit in a sealed packet is rejected and counted.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::net::{Ipv4Addr, Ipv6Addr};

use ferroswan_awslc::LEGACY_PROVIDER;
use ferroswan_proto::crypto::{EspSuite, SecretBytes};
use ferroswan_proto::esp::{
    DropReason, InboundSa, Lifetime, Mode, OutboundSa, PacketBuf, SaParams,
};
use ferroswan_proto::wire::{EncrId, IntegId};
use ferroswan_test::packets::{ipv4_udp, ipv6_udp};
use proptest::prelude::*;

fn all_suites() -> Vec<EspSuite> {
    let s = |encr, bits, integ| EspSuite { encr, encr_key_bits: bits, integ };
    let mut v = vec![
        s(EncrId::ENCR_AES_GCM_16, 128, IntegId::NONE),
        s(EncrId::ENCR_AES_GCM_16, 256, IntegId::NONE),
        s(EncrId::ENCR_CHACHA20_POLY1305, 0, IntegId::NONE),
    ];
    for integ in [
        IntegId::AUTH_HMAC_SHA1_96,
        IntegId::AUTH_HMAC_SHA2_256_128,
        IntegId::AUTH_HMAC_SHA2_384_192,
        IntegId::AUTH_HMAC_SHA2_512_256,
        IntegId::AUTH_HMAC_MD5_96,
    ] {
        v.push(s(EncrId::ENCR_AES_CBC, 128, integ));
        v.push(s(EncrId::ENCR_AES_CBC, 256, integ));
        v.push(s(EncrId::ENCR_NULL, 0, integ));
        v.push(s(EncrId::ENCR_3DES, 0, integ));
    }
    v
}

fn sa_pair(suite: EspSuite, esn: bool, key_seed: u8) -> (OutboundSa, InboundSa) {
    sa_pair_mode(suite, esn, key_seed, Mode::Tunnel)
}

fn sa_pair_mode(suite: EspSuite, esn: bool, key_seed: u8, mode: Mode) -> (OutboundSa, InboundSa) {
    let len = suite.keymat_len().unwrap();
    let params = SaParams {
        spi: 0xc0de_0001,
        suite,
        keymat: SecretBytes::new((0..len).map(|i| (i as u8) ^ key_seed).collect()),
        esn,
        mode,
        replay_window: 1024,
        tfc_pad_to: 0,
        lifetime: Lifetime::default(),
    };
    (
        OutboundSa::new(&params, &LEGACY_PROVIDER).unwrap(),
        InboundSa::new(&params, &LEGACY_PROVIDER).unwrap(),
    )
}

fn inner_packet(v6: bool, payload: &[u8]) -> Vec<u8> {
    if v6 {
        let a: Ipv6Addr = "fd00::1".parse().unwrap();
        let b: Ipv6Addr = "fd00::2".parse().unwrap();
        ipv6_udp(a, b, 1, 2, payload)
    } else {
        ipv4_udp(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), 1, 2, payload)
    }
}

#[test]
fn every_suite_is_supported_by_the_legacy_provider() {
    for suite in all_suites() {
        let _ = sa_pair(suite, false, 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn open_inverts_seal(
        suite_ix in 0..all_suites().len(),
        esn in any::<bool>(),
        v6 in any::<bool>(),
        payload in prop::collection::vec(any::<u8>(), 0..1600),
        start in prop_oneof![Just(0u64), 0..u64::from(u32::MAX), Just(u64::from(u32::MAX) - 3)],
        key_seed in any::<u8>(),
    ) {
        let suite = all_suites()[suite_ix];
        let (out, inb) = sa_pair(suite, esn, key_seed);
        let start = if esn { start } else { start.min(u64::from(u32::MAX) - 8) };
        out.danger_set_last_seq(start);
        let pkt = inner_packet(v6, &payload);
        for _ in 0..3 {
            let mut buf = PacketBuf::from_slice(&pkt);
            let sealed = out.seal_tunnel(&mut buf).unwrap();
            prop_assert_ne!(buf.data(), &pkt[..]);
            let opened = inb.open(&mut buf).unwrap();
            prop_assert_eq!(opened.seq, sealed.seq);
            inb.accept(&opened).unwrap();
            prop_assert_eq!(buf.data(), &pkt[..]);
        }
    }

    #[test]
    fn transport_open_inverts_seal(
        suite_ix in 0..all_suites().len(),
        esn in any::<bool>(),
        v6 in any::<bool>(),
        payload in prop::collection::vec(any::<u8>(), 0..1600),
        key_seed in any::<u8>(),
    ) {
        let suite = all_suites()[suite_ix];
        let (out, inb) = sa_pair_mode(suite, esn, key_seed, Mode::Transport);
        let pkt = inner_packet(v6, &payload);
        let mut buf = PacketBuf::from_slice(&pkt);
        let sealed = out.seal_transport(&mut buf).unwrap();
        // The IP header stays in front (addresses unchanged), now followed by ESP.
        let hdr = if v6 { 40 } else { 20 };
        prop_assert_eq!(&buf.data()[hdr..hdr + 4], &0xc0de_0001u32.to_be_bytes());
        let opened = inb.open_transport(&mut buf).unwrap();
        prop_assert_eq!(opened.seq, sealed.seq);
        inb.accept(&opened).unwrap();
        prop_assert_eq!(buf.data(), &pkt[..]);
    }

    #[test]
    fn any_flipped_bit_is_rejected_and_counted(
        suite_ix in 0..all_suites().len(),
        esn in any::<bool>(),
        payload in prop::collection::vec(any::<u8>(), 0..300),
        bit_seed in any::<usize>(),
    ) {
        let suite = all_suites()[suite_ix];
        let (out, inb) = sa_pair(suite, esn, 7);
        let pkt = inner_packet(false, &payload);
        let mut buf = PacketBuf::from_slice(&pkt);
        out.seal_tunnel(&mut buf).unwrap();
        let wire = buf.data().to_vec();
        let bit = bit_seed % (wire.len() * 8);
        let mut bad = wire.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let mut bad_buf = PacketBuf::from_slice(&bad);
        let err = inb.open(&mut bad_buf).unwrap_err();
        let expected: &[DropReason] = if bit < 32 {
            &[DropReason::UnknownSpi]
        } else {
            &[DropReason::AuthFailed, DropReason::TooOld, DropReason::Malformed]
        };
        prop_assert!(expected.contains(&err), "bit {} gave {:?}", bit, err);
        prop_assert_eq!(inb.counters().drops(err), 1);
        // The genuine packet still opens: nothing was learnt from the forgery.
        let mut good = PacketBuf::from_slice(&wire);
        let opened = inb.open(&mut good).unwrap();
        inb.accept(&opened).unwrap();
        prop_assert_eq!(good.data(), &pkt[..]);
    }
}
