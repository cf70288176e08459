//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz target bodies,
//! plus a deterministic batch of mutations of it, so every CI run covers what the fuzzers
//! found without needing a nightly toolchain. A panic here is a parser bug.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::fs;
use std::path::PathBuf;

use ferroswan_test::{SeededRandom, fuzzing, packets};

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|p| fs::read(p).unwrap()).collect()
}

/// Byte flips, truncations, extensions and splices of the seeds (a poor man's fuzzer).
fn mutations(seeds: &[Vec<u8>], count: usize) -> Vec<Vec<u8>> {
    let mut rng = SeededRandom::new(0xf022);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let mut m = seeds[i % seeds.len()].clone();
        for _ in 0..=(rng.next_u64() % 4) {
            let r = rng.next_u64();
            let pos = if m.is_empty() { 0 } else { (r >> 8) as usize % m.len() };
            match r % 5 {
                0 if !m.is_empty() => m[pos] ^= 1 << ((r >> 40) % 8),
                1 if !m.is_empty() => m[pos] = (r >> 32) as u8,
                2 => m.truncate(pos),
                3 => m.extend_from_slice(&(r as u32).to_be_bytes()),
                _ => {
                    let other = &seeds[(r >> 16) as usize % seeds.len()];
                    m.extend_from_slice(&other[..other.len().min(pos)]);
                }
            }
        }
        out.push(m);
    }
    out
}

#[test]
fn esp_open_corpus_and_mutations() {
    let seeds = corpus("esp_open");
    assert!(seeds.len() >= 5, "fuzz/corpus/esp_open lost its seeds");
    for input in seeds.iter().chain(&mutations(&seeds, 20_000)) {
        fuzzing::esp_open(input);
    }
}

#[test]
fn wire_parsers_corpus_and_mutations() {
    let seeds = corpus("wire_parsers");
    assert!(seeds.len() >= 5, "fuzz/corpus/wire_parsers lost its seeds");
    for input in seeds.iter().chain(&mutations(&seeds, 50_000)) {
        fuzzing::wire_parsers(input);
    }
}

#[test]
fn ikev2_message_corpus_and_mutations() {
    let seeds = corpus("ikev2_message");
    assert!(seeds.len() >= 5, "fuzz/corpus/ikev2_message lost its seeds");
    for input in seeds.iter().chain(&mutations(&seeds, 50_000)) {
        fuzzing::ikev2_message(input);
    }
}

/// The committed `ikev2_message` seeds are the messages `packets::ikev2_messages` builds, and
/// each parses and round-trips. `FERROSWAN_WRITE_SEEDS=1` rewrites them after a format change.
#[test]
fn ikev2_message_seeds_are_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/ikev2_message");
    let write = std::env::var_os("FERROSWAN_WRITE_SEEDS").is_some();
    for (name, bytes) in packets::ikev2_messages() {
        let path = dir.join(name);
        if write {
            fs::create_dir_all(&dir).unwrap();
            fs::write(&path, &bytes).unwrap();
        }
        let committed = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        assert_eq!(committed, bytes, "{name} is stale: rerun with FERROSWAN_WRITE_SEEDS=1");
        let msg = ferroswan_proto::wire::ikev2::Message::parse(&bytes).unwrap();
        assert_eq!(msg.emit().unwrap(), bytes, "{name}");
    }
}

/// The IKEv2 responder fed arbitrary datagram sequences: the seeds are a full exchange from a
/// null-provider initiator (rebuilt here, so they follow the code), plus the committed corpus.
#[test]
fn ikev2_responder_corpus_and_mutations() {
    let mut seeds = fuzzing::ikev2_responder_seeds();
    assert!(seeds.len() >= 4, "a full exchange has at least 4 initiator messages");
    if std::env::var_os("FERROSWAN_WRITE_SEEDS").is_some() {
        let dir =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/ikev2_responder");
        fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds.iter().enumerate() {
            fs::write(dir.join(format!("exchange-{i}")), seed).unwrap();
        }
    }
    seeds.extend(corpus("ikev2_responder"));
    for input in seeds.iter().chain(&mutations(&seeds, 20_000)) {
        fuzzing::ikev2_responder(input);
    }
}
