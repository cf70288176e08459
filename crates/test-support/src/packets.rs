//! Builders for well-formed inner packets (the traffic a tunnel carries in tests).

use core::net::{Ipv4Addr, Ipv6Addr};

/// An IPv4/UDP packet from `src` to `dst` with `payload`, checksums filled in.
pub fn ipv4_udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let csum = checksum(&p, 0);
    p.splice(10..12, csum.to_be_bytes());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    let udp_sum = checksum(p.get(20..).unwrap_or_default(), sum_words(&pseudo));
    let udp_sum = if udp_sum == 0 { 0xffff } else { udp_sum };
    p.splice(26..28, udp_sum.to_be_bytes());
    p
}

/// An IPv6/UDP packet from `src` to `dst` with `payload`, checksum filled in.
pub fn ipv6_udp(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let mut p = Vec::with_capacity(40 + udp_len);
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&(udp_len as u16).to_be_bytes());
    p.extend_from_slice(&[17, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&(udp_len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(udp_len as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 17]);
    let udp_sum = checksum(p.get(40..).unwrap_or_default(), sum_words(&pseudo));
    let udp_sum = if udp_sum == 0 { 0xffff } else { udp_sum };
    p.splice(46..48, udp_sum.to_be_bytes());
    p
}

fn sum_words(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| {
            u32::from(u16::from_be_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ]))
        })
        .sum()
}

fn checksum(data: &[u8], initial: u32) -> u16 {
    let mut sum = u64::from(initial) + u64::from(sum_words(data));
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Well-formed IKEv2 messages, named, built with `ferroswan_proto::wire::ikev2`: the seeds of
/// the `ikev2_message` fuzz corpus (`fuzz/corpus/ikev2_message/`, checked against these by
/// `tests/fuzz_corpus.rs`).
pub fn ikev2_messages() -> Vec<(&'static str, Vec<u8>)> {
    use ferroswan_proto::wire::ikev2::{
        Auth, AuthMethod, CfgAttribute, CfgAttributeType, CfgType, Cp, Delete, ExchangeType, Flags,
        HeaderRepr, Id, IdType, Ke, Message, Nonce, Notify, NotifyType, Payload, PayloadType,
        Proposal, ProtocolId, Sa, Sk, Skf, TrafficSelector, Transform, Ts, VendorId, emit_chain,
    };
    use ferroswan_proto::wire::{EncrId, IntegId, IpProtocol, KeId, PrfId};

    let header = |exchange_type, flags, message_id| HeaderRepr {
        spi_i: 0x0123_4567_89ab_cdef,
        spi_r: if exchange_type == ExchangeType::IKE_SA_INIT { 0 } else { 0xfedc_ba98_7654_3210 },
        next_payload: PayloadType::NONE,
        minor_version: 0,
        exchange_type,
        flags,
        message_id,
        payload_len: 0,
    };
    let ike_proposal = Proposal {
        number: 1,
        protocol: ProtocolId::IKE,
        spi: vec![],
        transforms: vec![
            Transform::encr(EncrId::ENCR_AES_GCM_16, Some(128)),
            Transform::prf(PrfId::PRF_HMAC_SHA2_256),
            Transform::ke(KeId::CURVE25519),
        ],
    };
    let esp_proposal = Proposal {
        number: 1,
        protocol: ProtocolId::ESP,
        spi: vec![0xc0, 0x01, 0xd0, 0x0d],
        transforms: vec![
            Transform::encr(EncrId::ENCR_AES_CBC, Some(256)),
            Transform::integ(IntegId::AUTH_HMAC_SHA2_256_128),
            Transform::esn(false),
        ],
    };
    let ts = |a: [u8; 4], b: [u8; 4]| Ts {
        selectors: vec![TrafficSelector::Ipv4 {
            ip_protocol: IpProtocol(0),
            start_port: 0,
            end_port: 0xffff,
            start: a.into(),
            end: b.into(),
        }],
    };
    let nat = |ty| Payload::Notify(Notify::new(ty, vec![0x5c; 20]));
    let init = Message {
        header: header(ExchangeType::IKE_SA_INIT, Flags::INITIATOR, 0),
        payloads: vec![
            Payload::Sa(Sa { proposals: vec![ike_proposal.clone()] }),
            Payload::Ke(Ke { group: KeId::CURVE25519, data: vec![0x42; 32] }),
            Payload::Nonce(Nonce { data: vec![0x17; 32] }),
            nat(NotifyType::NAT_DETECTION_SOURCE_IP),
            nat(NotifyType::NAT_DETECTION_DESTINATION_IP),
            Payload::Notify(Notify::new(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED, vec![])),
            Payload::Notify(Notify::new(
                NotifyType::SIGNATURE_HASH_ALGORITHMS,
                vec![0, 2, 0, 3, 0, 4],
            )),
            Payload::VendorId(VendorId { data: b"ferroswan".to_vec() }),
        ],
    };
    let cookie = Message {
        header: header(ExchangeType::IKE_SA_INIT, Flags::RESPONSE, 0),
        payloads: vec![Payload::Notify(Notify::new(NotifyType::COOKIE, vec![0xc0; 16]))],
    };
    // The plaintext of an IKE_AUTH request, as it sits inside SK.
    let auth_inner = Message {
        header: header(ExchangeType::IKE_AUTH, Flags::INITIATOR, 1),
        payloads: vec![
            Payload::IdI(Id { id_type: IdType::ID_FQDN, data: b"moon.example".to_vec() }),
            Payload::Auth(Auth {
                method: AuthMethod::SHARED_KEY_MESSAGE_INTEGRITY_CODE,
                data: vec![0xa5; 32],
            }),
            Payload::Cp(Cp {
                cfg_type: CfgType::CFG_REQUEST,
                attributes: vec![
                    CfgAttribute { ty: CfgAttributeType::INTERNAL_IP4_ADDRESS, value: vec![] },
                    CfgAttribute { ty: CfgAttributeType::INTERNAL_IP4_DNS, value: vec![] },
                ],
            }),
            Payload::Sa(Sa { proposals: vec![esp_proposal.clone()] }),
            Payload::TsI(ts([10, 1, 0, 0], [10, 1, 255, 255])),
            Payload::TsR(ts([10, 2, 0, 0], [10, 2, 255, 255])),
            Payload::Notify(Notify::new(NotifyType::INITIAL_CONTACT, vec![])),
        ],
    };
    // The same inside SK, unencrypted, so that mutations reach the inner chain parsers.
    let mut inner = Vec::new();
    let first = emit_chain(&auth_inner.payloads, &mut inner).unwrap_or(PayloadType::NONE);
    let auth = Message {
        header: header(ExchangeType::IKE_AUTH, Flags::INITIATOR, 1),
        payloads: vec![Payload::Sk(Sk { first_payload: first, body: inner })],
    };
    let fragment = Message {
        header: header(ExchangeType::IKE_AUTH, Flags::INITIATOR, 1),
        payloads: vec![Payload::Skf(Skf {
            first_payload: PayloadType::IDI,
            fragment_number: 1,
            total_fragments: 2,
            body: vec![0xf1; 64],
        })],
    };
    let delete = Message {
        header: header(ExchangeType::INFORMATIONAL, Flags::RESPONSE, 7),
        payloads: vec![
            Payload::Delete(Delete {
                protocol: ProtocolId::ESP,
                spi_size: 4,
                spis: vec![vec![0xc0, 0x01, 0xd0, 0x0d]],
            }),
            Payload::Delete(Delete { protocol: ProtocolId::IKE, spi_size: 0, spis: vec![] }),
        ],
    };
    let rekey = Message {
        header: header(ExchangeType::CREATE_CHILD_SA, Flags::INITIATOR, 2),
        payloads: vec![
            Payload::Notify(Notify {
                protocol: ProtocolId::ESP,
                spi: vec![0xc0, 0x01, 0xd0, 0x0d],
                ty: NotifyType::REKEY_SA,
                data: vec![],
            }),
            Payload::Sa(Sa { proposals: vec![esp_proposal, ike_proposal] }),
            Payload::Nonce(Nonce { data: vec![0x99; 32] }),
            Payload::Unknown { ty: PayloadType(0xc8), critical: true, body: vec![1, 2, 3] },
        ],
    };
    [
        ("ike_sa_init_request", init),
        ("ike_sa_init_cookie", cookie),
        ("ike_auth_plaintext", auth_inner),
        ("ike_auth_sk", auth),
        ("ike_auth_skf", fragment),
        ("informational_delete", delete),
        ("create_child_rekey_critical", rekey),
    ]
    .into_iter()
    .filter_map(|(name, m)| Some((name, m.emit().ok()?)))
    .collect()
}
