//! ESP seal/open cost per suite and packet size, next to the raw AEAD cost of the same provider
//! (aws-lc-rs). The ratio engine/raw is the ESP engine's own overhead (layout, padding,
//! sequence numbers, replay window, counters); the README reports it at 1400 bytes.
//!
//! Run: `cargo bench -p ferroswan-test --bench esp_seal_open` (or `scripts/bench-esp`, which
//! also prints the ratio table).

#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Duration;

use aws_lc_rs::aead::{
    AES_128_GCM, AES_256_GCM, Aad, Algorithm, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferroswan_awslc::DEFAULT_PROVIDER;
use ferroswan_proto::crypto::{EspSuite, SecretBytes};
use ferroswan_proto::esp::{InboundSa, Lifetime, Mode, OutboundSa, PacketBuf, SaParams};
use ferroswan_proto::wire::{EncrId, IntegId};
use ferroswan_test::packets::ipv4_udp;

const SIZES: [usize; 4] = [64, 512, 1400, 8192];

struct Bench {
    name: &'static str,
    suite: EspSuite,
    raw: Option<&'static Algorithm>,
}

fn benches() -> Vec<Bench> {
    let s = |encr, bits, integ| EspSuite { encr, encr_key_bits: bits, integ };
    vec![
        Bench {
            name: "aes128gcm16",
            suite: s(EncrId::ENCR_AES_GCM_16, 128, IntegId::NONE),
            raw: Some(&AES_128_GCM),
        },
        Bench {
            name: "aes256gcm16",
            suite: s(EncrId::ENCR_AES_GCM_16, 256, IntegId::NONE),
            raw: Some(&AES_256_GCM),
        },
        Bench {
            name: "chacha20poly1305",
            suite: s(EncrId::ENCR_CHACHA20_POLY1305, 0, IntegId::NONE),
            raw: Some(&CHACHA20_POLY1305),
        },
        Bench {
            name: "aes128-sha256",
            suite: s(EncrId::ENCR_AES_CBC, 128, IntegId::AUTH_HMAC_SHA2_256_128),
            raw: None,
        },
    ]
}

fn params(suite: EspSuite) -> SaParams {
    SaParams {
        spi: 0x1234_5678,
        suite,
        keymat: SecretBytes::new(vec![0x42; suite.keymat_len().unwrap()]),
        esn: false,
        mode: Mode::Tunnel,
        // Off, so the same sealed packet can be opened again and again.
        replay_window: 0,
        tfc_pad_to: 0,
        lifetime: Lifetime::default(),
    }
}

/// An inner IPv4 packet of exactly `size` bytes.
fn packet(size: usize) -> Vec<u8> {
    ipv4_udp(
        Ipv4Addr::new(10, 1, 0, 1),
        Ipv4Addr::new(10, 2, 0, 1),
        5000,
        5001,
        &vec![0xab; size - 28],
    )
}

fn esp(c: &mut Criterion) {
    for b in benches() {
        let p = params(b.suite);
        let out = OutboundSa::new(&p, &DEFAULT_PROVIDER).unwrap();
        let inb = InboundSa::new(&p, &DEFAULT_PROVIDER).unwrap();
        let raw_key = b
            .raw
            .map(|alg| LessSafeKey::new(UnboundKey::new(alg, &vec![0x42; alg.key_len()]).unwrap()));
        let mut group = c.benchmark_group(b.name);
        for size in SIZES {
            group.throughput(Throughput::Bytes(size as u64));
            let pkt = packet(size);
            let mut buf = PacketBuf::new(size + 512, 128);

            group.bench_function(format!("seal/{size}"), |bencher| {
                bencher.iter(|| {
                    buf.load(128, &pkt).unwrap();
                    black_box(out.seal_tunnel(&mut buf).unwrap());
                })
            });
            buf.load(128, &pkt).unwrap();
            out.seal_tunnel(&mut buf).unwrap();
            let sealed = buf.data().to_vec();
            group.bench_function(format!("open/{size}"), |bencher| {
                bencher.iter_batched_ref(
                    || PacketBuf::from_slice(&sealed),
                    |buf| {
                        let opened = inb.open(buf).unwrap();
                        black_box(inb.accept(&opened).unwrap());
                    },
                    BatchSize::SmallInput,
                )
            });

            if let Some(key) = &raw_key {
                // The same work an ESP AEAD must do at minimum: copy in, seal in place with an
                // 8-byte AAD and a detached tag.
                let mut raw = vec![0u8; size + 64];
                let mut seq = 0u64;
                group.bench_function(format!("raw_seal/{size}"), |bencher| {
                    bencher.iter(|| {
                        seq += 1;
                        raw[..size].copy_from_slice(&pkt);
                        let mut nonce = [0u8; 12];
                        nonce[4..].copy_from_slice(&seq.to_be_bytes());
                        let tag = key
                            .seal_in_place_separate_tag(
                                Nonce::assume_unique_for_key(nonce),
                                Aad::from(&seq.to_be_bytes()),
                                &mut raw[..size],
                            )
                            .unwrap();
                        let _ = black_box(tag);
                    })
                });
                let mut sealed_raw = pkt.clone();
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key([0; 12]),
                        Aad::from([0u8; 8]),
                        &mut sealed_raw,
                    )
                    .unwrap();
                sealed_raw.extend_from_slice(tag.as_ref());
                group.bench_function(format!("raw_open/{size}"), |bencher| {
                    bencher.iter_batched_ref(
                        || sealed_raw.clone(),
                        |data| {
                            black_box(
                                key.open_in_place(
                                    Nonce::assume_unique_for_key([0; 12]),
                                    Aad::from([0u8; 8]),
                                    data,
                                )
                                .unwrap()
                                .len(),
                            );
                        },
                        BatchSize::SmallInput,
                    )
                });
            }
        }
        group.finish();
    }
}

criterion_group! {
    name = esp_benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = esp
}
criterion_main!(esp_benches);
