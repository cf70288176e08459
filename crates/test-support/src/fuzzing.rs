//! The bodies of the fuzz targets in `fuzz/fuzz_targets/`, one function per target.
//!
//! They live here, not in the fuzz crate, so that `tests/fuzz_corpus.rs` replays the committed
//! corpus through exactly the same code on stable Rust in every CI run. Each function must
//! never panic, whatever the input: a panic is a bug the fuzzer found.

use ferroswan_proto::crypto::{EspSuite, SecretBytes};
use ferroswan_proto::esp::{InboundSa, Lifetime, Mode, PacketBuf, SaParams};
use ferroswan_proto::wire::{EncrId, IntegId, ikev2};

use ferroswan_proto::wire::{
    self, AhPacket, AhRepr, EspPacket, EspRepr, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr,
    UdpPacket, UdpRepr,
};

use crate::null_provider;

/// Feeds `data` to the ESP receive path of an SA with the no-security provider, so ICV checks
/// pass and the fuzzer reaches padding, trailer, inner-packet and replay logic. The first byte
/// picks the suite, ESN and mode; the rest is the ESP packet (SPI forced to match so the
/// packet is not rejected as unknown).
pub fn esp_open(data: &[u8]) {
    let Some((&selector, packet)) = data.split_first() else { return };
    let suites = [
        EspSuite { encr: EncrId::ENCR_AES_GCM_16, encr_key_bits: 128, integ: IntegId::NONE },
        EspSuite {
            encr: EncrId::ENCR_AES_CBC,
            encr_key_bits: 256,
            integ: IntegId::AUTH_HMAC_SHA2_256_128,
        },
    ];
    let Some(&suite) = suites.get(usize::from(selector & 1)) else { return };
    let params = SaParams {
        spi: 0x0000_1000,
        suite,
        keymat: SecretBytes::new(vec![0; suite.keymat_len().unwrap_or_default()]),
        esn: selector & 2 != 0,
        mode: if selector & 4 != 0 { Mode::Transport } else { Mode::Tunnel },
        replay_window: if selector & 8 != 0 { 0 } else { 64 },
        tfc_pad_to: 0,
        lifetime: Lifetime::default(),
    };
    let Ok(sa) = InboundSa::new(&params, &null_provider()) else { return };
    let mut buf = PacketBuf::from_slice(packet);
    if let Some(spi) = buf.data_mut().get_mut(..4) {
        spi.copy_from_slice(&0x0000_1000u32.to_be_bytes());
    }
    // Twice: the second time exercises the replay path.
    for _ in 0..2 {
        let mut copy = buf.clone();
        if let Ok(opened) = sa.open(&mut copy) {
            let _ = sa.accept(&opened);
        }
    }
}

/// If `data` parses as `$packet`/`$repr`, emits the repr into a fresh buffer (header plus
/// `$payload_len` bytes) and asserts it parses back to the same repr.
macro_rules! round_trip {
    ($data:expr, $packet:ident, $repr:ident, $payload_len:expr) => {
        if let Ok(p) = $packet::new_checked($data)
            && let Ok(repr) = $repr::parse(&p)
        {
            let mut buf = vec![0u8; repr.buffer_len() + $payload_len(&repr)];
            repr.emit(&mut $packet::new_unchecked(&mut buf[..]));
            let again = $packet::new_checked(&buf[..]).and_then(|p| $repr::parse(&p));
            assert_eq!(again, Ok(repr), concat!(stringify!($repr), " emit/parse round trip"));
        }
    };
}

/// Runs every wire parser over `data` and checks that what parses re-emits to a buffer that
/// parses back to the same representation.
pub fn wire_parsers(data: &[u8]) {
    let _ = wire::ip::flow_key(data);
    let _ = wire::ip::esp_insertion_point(data);
    let _ = wire::esp::parse_trailer(data);
    let _ = wire::udp_encap::classify(data);
    if let Ok(upper) = wire::ipv6::upper_layer(data) {
        assert!(upper.offset <= data.len());
    }
    round_trip!(data, Ipv4Packet, Ipv4Repr, |r: &Ipv4Repr| r.payload_len);
    round_trip!(data, Ipv6Packet, Ipv6Repr, |r: &Ipv6Repr| r.payload_len);
    round_trip!(data, EspPacket, EspRepr, |_: &EspRepr| 0);
    round_trip!(data, AhPacket, AhRepr, |_: &AhRepr| 0);
    round_trip!(data, UdpPacket, UdpRepr, |r: &UdpRepr| r.payload_len);
}

/// Parses `data` as an IKEv2 message; if it parses, emitting it must give back `data` exactly
/// (rustls `fuzz_message`). An SK or SKF payload's body is also walked as if it were the
/// decrypted payload chain, so the fuzzer reaches the inner payload parsers.
pub fn ikev2_message(data: &[u8]) {
    let Ok(msg) = ikev2::Message::parse(data) else { return };
    let _ = msg.unsupported_critical();
    assert_eq!(msg.emit().as_deref(), Ok(data), "IKEv2 message emit/parse round trip");
    for payload in &msg.payloads {
        let (first, body) = match payload {
            ikev2::Payload::Sk(sk) => (sk.first_payload, &sk.body),
            ikev2::Payload::Skf(skf) => (skf.first_payload, &skf.body),
            _ => continue,
        };
        if let Ok(inner) = ikev2::parse_chain(first, body) {
            let mut out = Vec::new();
            assert_eq!(ikev2::emit_chain(&inner, &mut out), Ok(first), "inner first payload");
            assert_eq!(&out, body, "inner payload chain round trip");
        }
    }
}

/// Feeds an IKEv2 responder (no-security provider, one PSK connection) a sequence of
/// datagrams: `data` is split into chunks, each prefixed by a big-endian `u16` length. After the
/// first chunk, the responder SPI field of later chunks is set to the responder's real SPI, so
/// the fuzzer gets past the SPI lookup into IKE_AUTH, CREATE_CHILD_SA and INFORMATIONAL
/// processing (the null provider's ICVs always verify). Nothing may panic, and the endpoint
/// must stay consistent: every session it reports can be polled.
pub fn ikev2_responder(data: &[u8]) {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use ferroswan_proto::ikev2::Endpoint;
    use ferroswan_proto::ikev2::config::EndpointConfig;

    let now = Instant::now();
    let local: std::net::SocketAddr = "192.0.2.2:500".parse().unwrap_or_else(|_| unreachable!());
    let remote: std::net::SocketAddr = "192.0.2.1:500".parse().unwrap_or_else(|_| unreachable!());
    let config = crate::ikesim::psk_config(
        "fuzz",
        remote.ip(),
        local.ip(),
        vec![fuzz_ike_proposal()],
        vec![fuzz_esp_proposal()],
        "10.2.0.0/16",
        "10.1.0.0/16",
        b"fuzz",
    );
    let mut endpoint = Endpoint::new(
        EndpointConfig { connections: vec![Arc::new(config)], ..EndpointConfig::default() },
        null_provider(),
    );
    let mut rest = data;
    let mut t = now;
    let mut spi_r: Option<u64> = None;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let (chunk, tail) = tail.split_at(len);
        rest = tail;
        let mut msg = chunk.to_vec();
        if let (Some(spi), Some(field)) = (spi_r, msg.get_mut(8..16)) {
            field.copy_from_slice(&spi.to_be_bytes());
        }
        endpoint.handle(t, local, remote, &msg);
        while endpoint.poll_transmit().is_some() {}
        while endpoint.poll_event().is_some() {}
        if spi_r.is_none() {
            spi_r = endpoint.sessions().next().map(|(_, s)| s.spis().1);
        }
        t += Duration::from_secs(1);
        endpoint.handle_timeout(t);
        for (_, s) in endpoint.sessions() {
            let _ = (s.state_name(), s.children().len(), s.poll_timeout());
        }
    }
}

fn fuzz_ike_proposal() -> ferroswan_proto::ikev2::proposal::ProposalSpec {
    use ferroswan_proto::wire::{EncrId, KeId, PrfId, ikev2::ProtocolId};
    ferroswan_proto::ikev2::proposal::ProposalSpec {
        protocol: ProtocolId::IKE,
        encr: vec![(EncrId::ENCR_AES_GCM_16, 128)],
        prf: vec![PrfId::PRF_HMAC_SHA2_256],
        integ: vec![],
        ke: vec![KeId::ECP_256],
        esn: vec![],
    }
}

fn fuzz_esp_proposal() -> ferroswan_proto::ikev2::proposal::ProposalSpec {
    use ferroswan_proto::wire::{EncrId, ikev2::ProtocolId};
    ferroswan_proto::ikev2::proposal::ProposalSpec {
        protocol: ProtocolId::ESP,
        encr: vec![(EncrId::ENCR_AES_GCM_16, 128)],
        prf: vec![],
        integ: vec![],
        ke: vec![],
        esn: vec![false],
    }
}

/// Seeds for [`ikev2_responder`]: the messages a null-provider initiator sends in a full
/// exchange (IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL), framed as the target
/// expects, in a few prefixes.
pub fn ikev2_responder_seeds() -> Vec<Vec<u8>> {
    use crate::ikesim::{Pair, Side, psk_config};
    let a = psk_config(
        "fuzz",
        "192.0.2.1".parse().unwrap_or_else(|_| unreachable!()),
        "192.0.2.2".parse().unwrap_or_else(|_| unreachable!()),
        vec![fuzz_ike_proposal()],
        vec![fuzz_esp_proposal()],
        "10.1.0.0/16",
        "10.2.0.0/16",
        b"fuzz",
    );
    let b = psk_config(
        "fuzz",
        "192.0.2.2".parse().unwrap_or_else(|_| unreachable!()),
        "192.0.2.1".parse().unwrap_or_else(|_| unreachable!()),
        vec![fuzz_ike_proposal()],
        vec![fuzz_esp_proposal()],
        "10.2.0.0/16",
        "10.1.0.0/16",
        b"fuzz",
    );
    let mut pair = Pair::new(null_provider(), vec![a], vec![b]);
    let sid = pair.initiate(Side::A, "fuzz", Some("net"));
    pair.drive();
    let now = pair.now;
    if let Some(s) = pair.a.endpoint.session_mut(sid) {
        s.create_child(now, "net");
    }
    pair.drive();
    let now = pair.now;
    if let Some(s) = pair.a.endpoint.session_mut(sid) {
        s.close(now);
    }
    pair.drive();
    let from_a: Vec<Vec<u8>> = pair
        .wire
        .iter()
        .filter(|(side, _)| *side == Side::A)
        .map(|(_, t)| t.payload.clone())
        .collect();
    (1..=from_a.len())
        .map(|n| {
            let mut out = Vec::new();
            for m in from_a.iter().take(n) {
                out.extend_from_slice(&u16::try_from(m.len()).unwrap_or(u16::MAX).to_be_bytes());
                out.extend_from_slice(m);
            }
            out
        })
        .collect()
}
