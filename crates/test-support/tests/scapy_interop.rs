//! ESP interop with an independent implementation: scapy's `SecurityAssociation`.
//!
//! For each suite, ferroswan seals inner packets that scapy must decrypt to the same bytes, and
//! scapy seals packets that ferroswan must open. Covers AES-GCM-16 (128/256), ChaCha20-Poly1305
//! and AES-CBC with HMAC-SHA2, with and without ESN (including a high sequence half > 0), in
//! tunnel mode (IPv4 and IPv6 inner packets, each checked under IPv4 and IPv6 outer headers) and
//! in transport mode.
//!
//! Needs Debian's `python3-scapy`; `scripts/test` installs it and runs this with
//! `--include-ignored`.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};

use ferroswan_awslc::DEFAULT_PROVIDER;
use ferroswan_proto::crypto::{EspSuite, SecretBytes};
use ferroswan_proto::esp::{
    DropReason, InboundSa, Lifetime, Mode, Opened, OutboundSa, PacketBuf, SaParams,
};
use ferroswan_proto::wire::{EncrId, IntegId};
use ferroswan_test::packets::{ipv4_udp, ipv6_udp};
use serde_json::{Value, json};

struct Case {
    name: &'static str,
    suite: EspSuite,
    scapy_crypt: &'static str,
    scapy_auth: Option<&'static str>,
    esn: bool,
    mode: Mode,
}

fn cases() -> Vec<Case> {
    let s = |encr, bits, integ| EspSuite { encr, encr_key_bits: bits, integ };
    let mut v = vec![];
    for (esn, mode) in [
        (false, Mode::Tunnel),
        (true, Mode::Tunnel),
        (false, Mode::Transport),
        (true, Mode::Transport),
    ] {
        v.push(Case {
            name: "aes128gcm16",
            suite: s(EncrId::ENCR_AES_GCM_16, 128, IntegId::NONE),
            scapy_crypt: "AES-GCM",
            scapy_auth: None,
            esn,
            mode,
        });
        v.push(Case {
            name: "aes256gcm16",
            suite: s(EncrId::ENCR_AES_GCM_16, 256, IntegId::NONE),
            scapy_crypt: "AES-GCM",
            scapy_auth: None,
            esn,
            mode,
        });
        v.push(Case {
            name: "chacha20poly1305",
            suite: s(EncrId::ENCR_CHACHA20_POLY1305, 0, IntegId::NONE),
            scapy_crypt: "CHACHA20-POLY1305",
            scapy_auth: None,
            esn,
            mode,
        });
        v.push(Case {
            name: "aes128-sha256",
            suite: s(EncrId::ENCR_AES_CBC, 128, IntegId::AUTH_HMAC_SHA2_256_128),
            scapy_crypt: "AES-CBC",
            scapy_auth: Some("SHA2-256-128"),
            esn,
            mode,
        });
        v.push(Case {
            name: "aes256-sha512",
            suite: s(EncrId::ENCR_AES_CBC, 256, IntegId::AUTH_HMAC_SHA2_512_256),
            scapy_crypt: "AES-CBC",
            scapy_auth: Some("SHA2-512-256"),
            esn,
            mode,
        });
    }
    v
}

fn inner_packets() -> Vec<Vec<u8>> {
    let a4 = Ipv4Addr::new(10, 1, 0, 5);
    let b4 = Ipv4Addr::new(10, 2, 0, 7);
    let a6: Ipv6Addr = "fd00:1::5".parse().unwrap();
    let b6: Ipv6Addr = "fd00:2::7".parse().unwrap();
    let mut v = vec![];
    for len in [0usize, 1, 13, 100, 1000, 1400] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        v.push(ipv4_udp(a4, b4, 40000, 53, &payload));
        v.push(ipv6_udp(a6, b6, 40000, 53, &payload));
    }
    v
}

fn seal(out: &OutboundSa, buf: &mut PacketBuf) {
    match out.mode() {
        Mode::Tunnel => out.seal_tunnel(buf).unwrap(),
        Mode::Transport => out.seal_transport(buf).unwrap(),
    };
}

fn open(inb: &InboundSa, buf: &mut PacketBuf) -> Result<Opened, DropReason> {
    match inb.mode() {
        Mode::Tunnel => inb.open(buf),
        Mode::Transport => inb.open_transport(buf),
    }
}

#[test]
#[ignore = "needs Debian python3-scapy; scripts/test installs it and runs this"]
fn ferroswan_and_scapy_open_each_others_esp() {
    let inner = inner_packets();
    let mut job_cases = vec![];
    let mut inbound = vec![];
    for (n, case) in cases().iter().enumerate() {
        let encr_len = case.suite.encr_keymat_len().unwrap();
        let keymat: Vec<u8> = (0..case.suite.keymat_len().unwrap())
            .map(|i| (i as u8).wrapping_mul(31) ^ n as u8)
            .collect();
        let params = SaParams {
            spi: 0x0c00_0000 + n as u32,
            suite: case.suite,
            keymat: SecretBytes::new(keymat.clone()),
            esn: case.esn,
            mode: case.mode,
            replay_window: 128,
            tfc_pad_to: 0,
            lifetime: Lifetime::default(),
        };
        let out = OutboundSa::new(&params, &DEFAULT_PROVIDER).unwrap();
        let inb = InboundSa::new(&params, &DEFAULT_PROVIDER).unwrap();
        // With ESN, run in the second 2^32 block so the high half (never sent) matters. A
        // receiver only knows which block it is in by following the sender (RFC 4303 App. A),
        // so walk ours there in steps the inference can follow, as a live SA would be.
        let seq_hi: u32 = if case.esn { 1 } else { 0 };
        if case.esn {
            for last in [(1u64 << 31) - 1, (1 << 32) - 10, (1 << 32) | 1] {
                out.danger_set_last_seq(last);
                let mut buf = PacketBuf::from_slice(&inner[0]);
                seal(&out, &mut buf);
                let opened = open(&inb, &mut buf).unwrap();
                inb.accept(&opened).unwrap();
            }
        }
        out.danger_set_last_seq(u64::from(seq_hi) << 32 | 4);
        let mut ours = vec![];
        for pkt in &inner {
            let mut buf = PacketBuf::from_slice(pkt);
            seal(&out, &mut buf);
            ours.push(json!({"esp": hex::encode(buf.data()), "plain": hex::encode(pkt)}));
        }
        let (crypt_key, auth_key) = keymat.split_at(encr_len);
        job_cases.push(json!({
            "name": format!("{} esn={} {:?}", case.name, case.esn, case.mode),
            "mode": if case.mode == Mode::Tunnel { "tunnel" } else { "transport" },
            "spi": params.spi,
            "crypt_algo": case.scapy_crypt,
            "crypt_key": hex::encode(crypt_key),
            "auth_algo": case.scapy_auth,
            "auth_key": if auth_key.is_empty() { Value::Null } else { hex::encode(auth_key).into() },
            "esn": case.esn,
            "seq_hi": seq_hi,
            "ours": ours,
            "plains": inner.iter().map(hex::encode).collect::<Vec<_>>(),
            "scapy_seq_start": 100,
        }));
        inbound.push(inb);
    }

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/scapy_esp.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3 (install python3-scapy: scripts/test does)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json!({ "cases": job_cases }).to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "scapy script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();

    let mut failures = vec![];
    let mut checked = 0;
    for (case_result, inb) in result["cases"].as_array().unwrap().iter().zip(&inbound) {
        let name = case_result["name"].as_str().unwrap();
        for (i, verdict) in case_result["verdicts"].as_array().unwrap().iter().enumerate() {
            checked += 1;
            if verdict != "ok" {
                failures.push(format!("{name}: scapy could not open our packet {i}: {verdict}"));
            }
        }
        for (i, sealed) in case_result["sealed"].as_array().unwrap().iter().enumerate() {
            checked += 1;
            let packet = hex::decode(sealed["packet"].as_str().unwrap()).unwrap();
            let mut buf = PacketBuf::from_slice(&packet);
            match open(inb, &mut buf).and_then(|o| inb.accept(&o).map(|_| o)) {
                Ok(_) if buf.data() == inner[i] => {}
                Ok(_) => failures.push(format!("{name}: scapy packet {i} opened to other bytes")),
                Err(e) => failures.push(format!("{name}: we could not open scapy packet {i}: {e}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, cases().len() * inner.len() * 2);
}
