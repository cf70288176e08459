//! Payload round trips with hand-written bytes (RFC 7296 §3 layouts), truncation, a whole
//! IKE_SA_INIT request, and property tests.

use core::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;
use crate::wire::{EncrId, IntegId, IpProtocol, KeId, PrfId};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

/// One IKE proposal: ENCR_AES_GCM_16 with a 128-bit key, PRF_HMAC_SHA2_256, KE 31.
const SA_IKE_BODY: &str = "00000024 01010003 \
    0300000c 01000014 800e0080 \
    03000008 02000005 \
    00000008 0400001f";

fn sa_ike() -> Sa {
    Sa {
        proposals: vec![Proposal {
            number: 1,
            protocol: ProtocolId::IKE,
            spi: vec![],
            transforms: vec![
                Transform::encr(EncrId::ENCR_AES_GCM_16, Some(128)),
                Transform::prf(PrfId::PRF_HMAC_SHA2_256),
                Transform::ke(KeId::CURVE25519),
            ],
        }],
    }
}

/// Each payload type with a hand-written body and its expected parse.
fn vectors() -> Vec<(PayloadType, Vec<u8>, Payload)> {
    let esp_sa = Sa {
        proposals: vec![
            Proposal {
                number: 1,
                protocol: ProtocolId::ESP,
                spi: vec![0x11, 0x22, 0x33, 0x44],
                transforms: vec![
                    Transform::encr(EncrId::ENCR_AES_CBC, Some(256)),
                    Transform::integ(IntegId::AUTH_HMAC_SHA2_256_128),
                    Transform::esn(false),
                ],
            },
            Proposal {
                number: 2,
                protocol: ProtocolId::ESP,
                spi: vec![0x11, 0x22, 0x33, 0x44],
                transforms: vec![Transform {
                    ty: TransformType(0xf0),
                    id: 0xabcd,
                    attributes: vec![
                        Attribute::Tlv { ty: AttributeType(0x1234), value: vec![9, 8, 7] },
                        Attribute::Tv { ty: AttributeType(0x7fff), value: 0x0102 },
                    ],
                }],
            },
        ],
    };
    vec![
        (PayloadType::SA, h(SA_IKE_BODY), Payload::Sa(sa_ike())),
        (
            PayloadType::SA,
            h("02000028 01030403 11223344 \
               0300000c 0100000c 800e0100 \
               03000008 0300000c \
               00000008 05000000 \
               0000001f 02030401 11223344 \
               00000013 f000abcd 12340003 090807 ffff0102"),
            Payload::Sa(esp_sa),
        ),
        (
            PayloadType::KE,
            h("001f0000 aabbccdd"),
            Payload::Ke(Ke { group: KeId::CURVE25519, data: vec![0xaa, 0xbb, 0xcc, 0xdd] }),
        ),
        (
            PayloadType::IDI,
            h("02000000 6d6f6f6e"),
            Payload::IdI(Id { id_type: IdType::ID_FQDN, data: b"moon".to_vec() }),
        ),
        (
            PayloadType::IDR,
            h("01000000 c0a80001"),
            Payload::IdR(Id { id_type: IdType::ID_IPV4_ADDR, data: vec![192, 168, 0, 1] }),
        ),
        (
            PayloadType::CERT,
            h("04 30820102"),
            Payload::Cert(Cert {
                encoding: CertEncoding::X509_CERTIFICATE_SIGNATURE,
                data: vec![0x30, 0x82, 0x01, 0x02],
            }),
        ),
        (
            PayloadType::CERTREQ,
            h("04"),
            Payload::CertReq(Cert {
                encoding: CertEncoding::X509_CERTIFICATE_SIGNATURE,
                data: vec![],
            }),
        ),
        (
            PayloadType::AUTH,
            h("02000000 01020304 05060708"),
            Payload::Auth(Auth {
                method: AuthMethod::SHARED_KEY_MESSAGE_INTEGRITY_CODE,
                data: vec![1, 2, 3, 4, 5, 6, 7, 8],
            }),
        ),
        (
            PayloadType::NONCE,
            h("00112233 44556677 8899aabb ccddeeff"),
            Payload::Nonce(Nonce { data: h("00112233445566778899aabbccddeeff") }),
        ),
        (
            PayloadType::NOTIFY,
            h("03044009 12345678"),
            Payload::Notify(Notify {
                protocol: ProtocolId::ESP,
                spi: vec![0x12, 0x34, 0x56, 0x78],
                ty: NotifyType::REKEY_SA,
                data: vec![],
            }),
        ),
        (
            PayloadType::NOTIFY,
            h("0000402f 0002 0003 0004"),
            Payload::Notify(Notify::new(
                NotifyType::SIGNATURE_HASH_ALGORITHMS,
                vec![0, 2, 0, 3, 0, 4],
            )),
        ),
        (
            PayloadType::DELETE,
            h("03040002 11111111 22222222"),
            Payload::Delete(Delete {
                protocol: ProtocolId::ESP,
                spi_size: 4,
                spis: vec![vec![0x11; 4], vec![0x22; 4]],
            }),
        ),
        (
            PayloadType::DELETE,
            h("01000000"),
            Payload::Delete(Delete { protocol: ProtocolId::IKE, spi_size: 0, spis: vec![] }),
        ),
        (
            PayloadType::VENDOR_ID,
            h("deadbeef"),
            Payload::VendorId(VendorId { data: vec![0xde, 0xad, 0xbe, 0xef] }),
        ),
        (
            PayloadType::TSI,
            h("03000000 \
               07000010 0000ffff 0a000000 0a0000ff \
               08060028 00500050 20010db8000000000000000000000000 \
               20010db8ffffffffffffffffffffffff \
               0d110006 abcd"),
            Payload::TsI(Ts {
                selectors: vec![
                    TrafficSelector::Ipv4 {
                        ip_protocol: IpProtocol(0),
                        start_port: 0,
                        end_port: 0xffff,
                        start: Ipv4Addr::new(10, 0, 0, 0),
                        end: Ipv4Addr::new(10, 0, 0, 255),
                    },
                    TrafficSelector::Ipv6 {
                        ip_protocol: IpProtocol::TCP,
                        start_port: 80,
                        end_port: 80,
                        start: "2001:db8::".parse::<Ipv6Addr>().unwrap(),
                        end: "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
                    },
                    TrafficSelector::Unknown {
                        ts_type: TsType(13),
                        ip_protocol: 0x11,
                        data: vec![0xab, 0xcd],
                    },
                ],
            }),
        ),
        (PayloadType::TSR, h("00000000"), Payload::TsR(Ts { selectors: vec![] })),
        (
            PayloadType::CP,
            h("01000000 00010000 00030000 00070003 616263"),
            Payload::Cp(Cp {
                cfg_type: CfgType::CFG_REQUEST,
                attributes: vec![
                    CfgAttribute { ty: CfgAttributeType::INTERNAL_IP4_ADDRESS, value: vec![] },
                    CfgAttribute { ty: CfgAttributeType::INTERNAL_IP4_DNS, value: vec![] },
                    CfgAttribute {
                        ty: CfgAttributeType::APPLICATION_VERSION,
                        value: b"abc".to_vec(),
                    },
                ],
            }),
        ),
        (PayloadType::EAP, h("01020005 01"), Payload::Eap(h("0102000501"))),
    ]
}

/// Parses `body` as a payload of type `ty` (not critical, followed by nothing).
fn parse_body(ty: PayloadType, body: &[u8]) -> Result<Payload> {
    Payload::parse(&RawPayload { ty, next_payload: PayloadType::NONE, critical: false, body })
}

#[test]
fn payload_vectors_round_trip() {
    for (ty, body, expected) in vectors() {
        let parsed = parse_body(ty, &body).unwrap_or_else(|e| panic!("{ty:?}: {e}"));
        assert_eq!(parsed, expected, "{ty:?}");
        assert_eq!(parsed.ty(), ty);
        assert_eq!(parsed.body_len(), body.len(), "{ty:?}");
        let mut out = Vec::new();
        parsed.emit_body(&mut out).unwrap();
        assert_eq!(out, body, "{ty:?}");
        // With the generic header.
        let mut out = Vec::new();
        parsed.emit(PayloadType::NOTIFY, &mut out).unwrap();
        assert_eq!(out.len(), parsed.buffer_len());
        assert_eq!(out[0], PayloadType::NOTIFY.0);
        assert_eq!(usize::from(u16::from_be_bytes([out[2], out[3]])), 4 + body.len());
        assert_eq!(out[4..], body[..]);
    }
}

#[test]
fn truncated_payloads_never_panic() {
    for (ty, body, _) in vectors() {
        for len in 0..body.len() {
            let _ = parse_body(ty, &body[..len]);
        }
    }
    // Structured bodies: every proper prefix is an error.
    for (ty, body) in [
        (PayloadType::SA, h(SA_IKE_BODY)),
        (PayloadType::KE, h("001f0000")),
        (PayloadType::NOTIFY, h("03044009 12345678")),
        (PayloadType::DELETE, h("03040002 11111111 22222222")),
        (PayloadType::TSI, h("01000000 07000010 0000ffff 0a000000 0a0000ff")),
        (PayloadType::SKF, h("00010002")),
    ] {
        assert!(parse_body(ty, &body).is_ok(), "{ty:?}");
        for len in 0..body.len() {
            assert!(parse_body(ty, &body[..len]).is_err(), "{ty:?} prefix {len}");
        }
    }
}

#[test]
fn malformed_bodies() {
    let bad = |ty: PayloadType, hex: &str, what: &'static str| {
        assert_eq!(parse_body(ty, &h(hex)), Err(Error::Malformed { what }), "{hex}");
    };
    // Reserved octets.
    bad(PayloadType::KE, "001f0001", "KE reserved");
    bad(PayloadType::IDI, "02000100", "ID reserved");
    bad(PayloadType::TSI, "00000001", "TS reserved");
    // Last Substruc must be 0 or 2 for proposals.
    bad(PayloadType::SA, "03000008 01010000", "Last Substruc");
    // "More proposals follow", but none does.
    assert!(matches!(
        parse_body(PayloadType::SA, &h("02000008 01010000")),
        Err(Error::Truncated { .. })
    ));
    // Transform count disagrees.
    bad(PayloadType::SA, "00000008 01010001", "proposal transform count");
    // Proposal length shorter than its prefix.
    bad(PayloadType::SA, "00000003 01010000", "proposal");
    // Selector length wrong for IPv4.
    bad(PayloadType::TSI, "01000000 07000011 0000ffff 0a000000 0a0000ff 00", "selector length");
    // One selector announced, two present.
    bad(
        PayloadType::TSI,
        "01000000 07000010 0000ffff 0a000000 0a0000ff 07000010 0000ffff 0a000000 0a0000ff",
        "TS trailing bytes",
    );
    bad(PayloadType::DELETE, "01000001", "Delete SPI count");
    bad(PayloadType::DELETE, "03040001 11111111 22", "Delete trailing bytes");
    bad(PayloadType::CP, "01000000 80010000", "CP attribute reserved bit");
    bad(PayloadType::SKF, "00030002", "SKF fragment number");
    bad(PayloadType::SKF, "00000000", "SKF fragment number");
}

#[test]
fn sk_and_skf_keep_the_first_inner_type() {
    let raw = RawPayload {
        ty: PayloadType::SKF,
        next_payload: PayloadType::IDI,
        critical: false,
        body: &h("00010003 aabbcc"),
    };
    let skf = Payload::parse(&raw).unwrap();
    assert_eq!(
        skf,
        Payload::Skf(Skf {
            first_payload: PayloadType::IDI,
            fragment_number: 1,
            total_fragments: 3,
            body: vec![0xaa, 0xbb, 0xcc],
        })
    );
    let mut out = Vec::new();
    // The Next Payload field carries the inner type, whatever follows.
    skf.emit(PayloadType::NONE, &mut out).unwrap();
    assert_eq!(out, h("2300000b 00010003 aabbcc"));
}

#[test]
fn transform_helpers() {
    let t = Transform::encr(EncrId::ENCR_AES_CBC, Some(256));
    assert_eq!(t.key_length(), Some(256));
    assert_eq!(Transform::encr(EncrId::ENCR_CHACHA20_POLY1305, None).key_length(), None);
    assert_eq!(Transform::esn(true).id, 1);
    assert_eq!(Transform::integ(IntegId::NONE).ty, TransformType::INTEG);
}

#[test]
fn emit_rejects_what_does_not_fit() {
    let mut out = Vec::new();
    let notify = Notify { spi: vec![0; 256], ..Notify::new(NotifyType::COOKIE, vec![]) };
    assert!(notify.emit(&mut out).is_err());
    let big = Payload::Nonce(Nonce { data: vec![0; 65532] });
    assert!(big.emit(PayloadType::NONE, &mut Vec::new()).is_err());
    let fits = Payload::Nonce(Nonce { data: vec![0; 65531] });
    assert!(fits.emit(PayloadType::NONE, &mut Vec::new()).is_ok());
    assert!(Sa { proposals: vec![] }.emit(&mut out).is_err());
    let del = Delete { protocol: ProtocolId::ESP, spi_size: 4, spis: vec![vec![1, 2, 3]] };
    assert!(del.emit(&mut out).is_err());
    let ts = Ts {
        selectors: vec![TrafficSelector::Unknown {
            ts_type: TsType::TS_IPV4_ADDR_RANGE,
            ip_protocol: 0,
            data: vec![],
        }],
    };
    assert!(ts.emit(&mut out).is_err());
    // Unknown payloads must have an unknown type, and SK must be last.
    for ty in [PayloadType::NONE, PayloadType::NONCE] {
        let p = Payload::Unknown { ty, critical: false, body: vec![] };
        assert_eq!(
            p.emit(PayloadType::NONE, &mut out),
            Err(Error::Malformed { what: "unknown payload with a known type" })
        );
    }
    let sk = Payload::Sk(Sk { first_payload: PayloadType::NONE, body: vec![] });
    let nonce = Payload::Nonce(Nonce { data: vec![1] });
    assert_eq!(
        emit_chain(&[sk.clone(), nonce.clone()], &mut out),
        Err(Error::Malformed { what: "payload after SK" })
    );
    assert_eq!(emit_chain(&[nonce, sk], &mut Vec::new()), Ok(PayloadType::NONCE));
}

fn ike_sa_init() -> Message {
    Message {
        header: HeaderRepr {
            spi_i: 0xa1b2_c3d4_e5f6_0718,
            spi_r: 0,
            next_payload: PayloadType::NONE,
            minor_version: 0,
            exchange_type: ExchangeType::IKE_SA_INIT,
            flags: Flags::INITIATOR,
            message_id: 0,
            payload_len: 0,
        },
        payloads: vec![
            Payload::Sa(sa_ike()),
            Payload::Ke(Ke { group: KeId::CURVE25519, data: vec![0x42; 32] }),
            Payload::Nonce(Nonce { data: vec![0x5a; 32] }),
            Payload::Notify(Notify::new(NotifyType::NAT_DETECTION_SOURCE_IP, vec![0x11; 20])),
            Payload::Notify(Notify::new(NotifyType::NAT_DETECTION_DESTINATION_IP, vec![0x22; 20])),
        ],
    }
}

/// The IKE_SA_INIT request, written out by hand from RFC 7296 §3.
fn ike_sa_init_bytes() -> Vec<u8> {
    let mut s = String::new();
    // Header: SPIi, SPIr, next SA, 2.0, IKE_SA_INIT, I, message ID 0, length 200.
    s += "a1b2c3d4e5f60718 0000000000000000 21 20 22 08 00000000 000000c8";
    // SA: next KE, length 40, one proposal.
    s += "22 00 0028";
    s += SA_IKE_BODY;
    // KE: next Nonce, length 40, group 31, reserved, 32 bytes.
    s += "28 00 0028 001f 0000";
    s += &"42".repeat(32);
    // Nonce: next Notify, length 36.
    s += "29 00 0024";
    s += &"5a".repeat(32);
    // Notify NAT_DETECTION_SOURCE_IP (16388): next Notify, length 28, no protocol, no SPI.
    s += "29 00 001c 00 00 4004";
    s += &"11".repeat(20);
    // Notify NAT_DETECTION_DESTINATION_IP (16389): last, length 28.
    s += "00 00 001c 00 00 4005";
    s += &"22".repeat(20);
    h(&s)
}

#[test]
fn ike_sa_init_request() {
    let msg = ike_sa_init();
    let bytes = msg.emit().unwrap();
    assert_eq!(bytes.len(), 200);
    assert_eq!(msg.buffer_len(), 200);
    assert_eq!(hex::encode(&bytes), hex::encode(ike_sa_init_bytes()));
    let parsed = Message::parse(&bytes).unwrap();
    assert_eq!(parsed.payloads, msg.payloads);
    assert_eq!(parsed.header.next_payload, PayloadType::SA);
    assert_eq!(parsed.header.payload_len, 172);
    assert_eq!(parsed.unsupported_critical(), None);
    assert_eq!(parsed.emit().unwrap(), bytes);
    // Emitting after other bytes leaves them alone.
    let mut out = vec![0, 0, 0, 0];
    msg.emit_into(&mut out).unwrap();
    assert_eq!(out[4..], bytes[..]);
}

#[test]
fn truncated_messages_are_errors() {
    let bytes = ike_sa_init_bytes();
    for len in 0..bytes.len() {
        assert!(Message::parse(&bytes[..len]).is_err(), "prefix {len}");
        // Also with the Length field adjusted, so the payload chain itself is cut short.
        if len >= 28 {
            let mut cut = bytes[..len].to_vec();
            cut[24..28].copy_from_slice(&u32::try_from(len).unwrap().to_be_bytes());
            assert!(Message::parse(&cut).is_err(), "adjusted prefix {len}");
        }
    }
    // Trailing bytes after the Length field.
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(Message::parse(&long), Err(Error::Malformed { what: "IKE length" }));
}

#[test]
fn unknown_critical_payload_is_reported() {
    let mut msg = ike_sa_init();
    msg.payloads
        .insert(1, Payload::Unknown { ty: PayloadType(0xc0), critical: true, body: vec![1, 2, 3] });
    msg.payloads
        .insert(1, Payload::Unknown { ty: PayloadType(0xc1), critical: false, body: vec![] });
    let bytes = msg.emit().unwrap();
    let parsed = Message::parse(&bytes).unwrap();
    assert_eq!(parsed.unsupported_critical(), Some(PayloadType(0xc0)));
    assert_eq!(parsed.payloads, msg.payloads);
    assert_eq!(parsed.emit().unwrap(), bytes);
}

#[test]
fn encrypted_message_round_trips() {
    let msg = Message {
        header: HeaderRepr {
            spi_i: 1,
            spi_r: 2,
            next_payload: PayloadType::NONE,
            minor_version: 0,
            exchange_type: ExchangeType::IKE_AUTH,
            flags: Flags::INITIATOR,
            message_id: 1,
            payload_len: 0,
        },
        payloads: vec![
            Payload::VendorId(VendorId { data: b"ferroswan".to_vec() }),
            Payload::Sk(Sk { first_payload: PayloadType::IDI, body: vec![0xee; 48] }),
        ],
    };
    let bytes = msg.emit().unwrap();
    // Vendor ID's next is SK; SK's next is the inner IDi.
    assert_eq!(bytes[16], PayloadType::VENDOR_ID.0);
    assert_eq!(bytes[28], PayloadType::SK.0);
    assert_eq!(bytes[28 + 4 + 9], PayloadType::IDI.0);
    let parsed = Message::parse(&bytes).unwrap();
    assert_eq!(parsed.payloads, msg.payloads);
    assert_eq!(parsed.emit().unwrap(), bytes);
    // An empty message (an INFORMATIONAL liveness check, before encryption) is fine.
    let empty = Message { payloads: vec![], ..msg };
    let bytes = empty.emit().unwrap();
    assert_eq!(bytes.len(), 28);
    assert_eq!(Message::parse(&bytes).unwrap(), empty);
}

/// Bytes that look like an IKE message: a valid header whose Length matches, and a chain of
/// payloads whose lengths are right, with random types, flags and bodies.
fn ike_like() -> impl Strategy<Value = Vec<u8>> {
    let ty = prop::sample::select(vec![
        0u8, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 53, 1, 200,
    ]);
    let payload = (
        ty,
        prop::sample::select(vec![0u8, 0, 0, 0x80, 0x01]),
        prop::collection::vec(any::<u8>(), 0..48),
    );
    (any::<[u8; 28]>(), prop::collection::vec(payload, 0..6)).prop_map(|(mut header, payloads)| {
        header[17] = 0x20;
        header[16] = payloads.first().map_or(0, |p| p.0);
        let mut out = header.to_vec();
        for (i, (_, flags, body)) in payloads.iter().enumerate() {
            out.push(payloads.get(i + 1).map_or(0, |p| p.0));
            out.push(*flags);
            out.extend_from_slice(&u16::try_from(body.len() + 4).unwrap().to_be_bytes());
            out.extend_from_slice(body);
        }
        let len = u32::try_from(out.len()).unwrap();
        out[24..28].copy_from_slice(&len.to_be_bytes());
        out
    })
}

fn arb_payload() -> impl Strategy<Value = Payload> {
    let bytes = || prop::collection::vec(any::<u8>(), 0..24);
    let transform =
        (any::<u8>(), any::<u16>(), prop::option::of(any::<u16>())).prop_map(|(ty, id, key)| {
            let attributes = key
                .map(|v| Attribute::Tv { ty: AttributeType::KEY_LENGTH, value: v })
                .into_iter()
                .collect();
            Transform { ty: TransformType(ty), id, attributes }
        });
    let proposal = (
        any::<u8>(),
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..9),
        prop::collection::vec(transform, 0..5),
    )
        .prop_map(|(number, protocol, spi, transforms)| Proposal {
            number,
            protocol: ProtocolId(protocol),
            spi,
            transforms,
        });
    let selector = (
        any::<bool>(),
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
    )
        .prop_map(|(v6, proto, sp, ep, a, b)| {
            if v6 {
                TrafficSelector::Ipv6 {
                    ip_protocol: IpProtocol(proto),
                    start_port: sp,
                    end_port: ep,
                    start: Ipv6Addr::from(a),
                    end: Ipv6Addr::from(b),
                }
            } else {
                TrafficSelector::Ipv4 {
                    ip_protocol: IpProtocol(proto),
                    start_port: sp,
                    end_port: ep,
                    start: Ipv4Addr::new(a[0], a[1], a[2], a[3]),
                    end: Ipv4Addr::new(b[0], b[1], b[2], b[3]),
                }
            }
        });
    prop_oneof![
        prop::collection::vec(proposal, 1..4).prop_map(|proposals| Payload::Sa(Sa { proposals })),
        (any::<u16>(), bytes()).prop_map(|(g, data)| Payload::Ke(Ke { group: KeId(g), data })),
        bytes().prop_map(|data| Payload::Nonce(Nonce { data })),
        (any::<u8>(), prop::collection::vec(any::<u8>(), 0..9), any::<u16>(), bytes()).prop_map(
            |(p, spi, ty, data)| Payload::Notify(Notify {
                protocol: ProtocolId(p),
                spi,
                ty: NotifyType(ty),
                data
            })
        ),
        (any::<u8>(), prop::collection::vec(any::<[u8; 4]>(), 0..4)).prop_map(|(p, spis)| {
            Payload::Delete(Delete {
                protocol: ProtocolId(p),
                spi_size: 4,
                spis: spis.into_iter().map(|s| s.to_vec()).collect(),
            })
        }),
        (any::<u8>(), bytes()).prop_map(|(t, data)| Payload::IdI(Id { id_type: IdType(t), data })),
        (any::<u8>(), bytes())
            .prop_map(|(m, data)| Payload::Auth(Auth { method: AuthMethod(m), data })),
        (any::<u8>(), bytes())
            .prop_map(|(e, data)| Payload::CertReq(Cert { encoding: CertEncoding(e), data })),
        prop::collection::vec(selector, 0..4).prop_map(|selectors| Payload::TsR(Ts { selectors })),
        (any::<u8>(), prop::collection::vec((0u16..0x8000, bytes()), 0..4)).prop_map(
            |(t, attrs)| {
                Payload::Cp(Cp {
                    cfg_type: CfgType(t),
                    attributes: attrs
                        .into_iter()
                        .map(|(ty, value)| CfgAttribute { ty: CfgAttributeType(ty), value })
                        .collect(),
                })
            }
        ),
        (prop::sample::select(vec![1u8, 32, 49, 50, 52, 54, 128, 255]), any::<bool>(), bytes())
            .prop_map(|(ty, critical, body)| Payload::Unknown {
                ty: PayloadType(ty),
                critical,
                body
            }),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(msg) = Message::parse(&bytes) {
            prop_assert_eq!(msg.emit(), Ok(bytes));
        }
    }

    #[test]
    fn ike_like_bytes_round_trip_when_they_parse(bytes in ike_like()) {
        for len in 0..bytes.len() {
            let _ = Message::parse(&bytes[..len]);
        }
        if let Ok(msg) = Message::parse(&bytes) {
            prop_assert_eq!(msg.emit(), Ok(bytes));
        }
    }

    #[test]
    fn messages_round_trip(
        payloads in prop::collection::vec(arb_payload(), 0..6),
        sk in prop::option::of((any::<u8>(), prop::collection::vec(any::<u8>(), 0..32))),
        spi_i in any::<u64>(), spi_r in any::<u64>(), exchange in any::<u8>(),
        flags in any::<u8>(), message_id in any::<u32>(), minor in 0u8..16,
    ) {
        let mut payloads = payloads;
        if let Some((first, body)) = sk {
            payloads.push(Payload::Sk(Sk { first_payload: PayloadType(first), body }));
        }
        let msg = Message {
            header: HeaderRepr {
                spi_i, spi_r, next_payload: PayloadType::NONE, minor_version: minor,
                exchange_type: ExchangeType(exchange), flags: Flags(flags), message_id,
                payload_len: 0,
            },
            payloads,
        };
        let bytes = msg.emit().unwrap();
        prop_assert_eq!(bytes.len(), msg.buffer_len());
        let parsed = Message::parse(&bytes).unwrap();
        prop_assert_eq!(&parsed.payloads, &msg.payloads);
        prop_assert_eq!(parsed.emit().unwrap(), bytes);
    }
}
