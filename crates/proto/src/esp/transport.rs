//! Transport mode (RFC 4303 §3.1.1): ESP goes between the IP header (with the extension headers
//! that must stay outside: Hop-by-Hop, Routing, Fragment, and Destination Options before a
//! Routing header) and the upper-layer payload. The original header stays; only its protocol
//! (or the last next-header field) becomes 50 and its length is fixed up.

use super::{DropReason, InboundSa, Mode, Opened, OutboundSa, PacketBuf, Sealed};
use crate::wire::ip::{InsertionPoint, esp_insertion_point};
use crate::wire::{IpProtocol, Ipv4Packet, Ipv6Packet};

/// The longest IP header (with extension headers) transport mode handles. IPv4 headers are at
/// most 60 bytes; IPv6 extension-header chains longer than this are refused.
const MAX_HEADER_LEN: usize = 512;

/// A copy of the outer IP header, kept on the stack while ESP is added or removed behind it.
struct SavedHeader {
    bytes: [u8; MAX_HEADER_LEN],
    point: InsertionPoint,
}

impl SavedHeader {
    fn take(buf: &PacketBuf) -> Result<Self, DropReason> {
        let data = buf.data();
        let point = esp_insertion_point(data).map_err(|_| DropReason::BadInnerPacket)?;
        let header = data.get(..point.offset).ok_or(DropReason::BadInnerPacket)?;
        let mut bytes = [0u8; MAX_HEADER_LEN];
        bytes.get_mut(..header.len()).ok_or(DropReason::BadInnerPacket)?.copy_from_slice(header);
        Ok(Self { bytes, point })
    }

    fn len(&self) -> usize {
        self.point.offset
    }

    /// Puts the header back in front of the data, with `next_header` in its last next-header
    /// field and the length fields (and IPv4 checksum) fixed for the new total length.
    fn restore(&self, buf: &mut PacketBuf, next_header: IpProtocol) -> Result<(), DropReason> {
        let saved = self.bytes.get(..self.len()).ok_or(DropReason::NoBufferSpace)?;
        buf.push_front(self.len())?.copy_from_slice(saved);
        let total = buf.len();
        let data = buf.data_mut();
        *data.get_mut(self.point.next_header_offset).ok_or(DropReason::BadInnerPacket)? =
            next_header.0;
        match data.first().map(|b| b >> 4) {
            Some(4) => {
                let total = u16::try_from(total).map_err(|_| DropReason::NoBufferSpace)?;
                // `take` validated this header; its old length field may not fit the new
                // buffer, which is why the view is unchecked (setters only touch the header).
                let mut ip = Ipv4Packet::new_unchecked(data);
                ip.set_total_len(total);
                ip.fill_checksum();
            }
            Some(6) => {
                let payload = u16::try_from(total - 40).map_err(|_| DropReason::NoBufferSpace)?;
                let mut ip = Ipv6Packet::new_unchecked(data);
                ip.set_payload_len(payload);
            }
            _ => return Err(DropReason::BadInnerPacket),
        }
        Ok(())
    }
}

impl OutboundSa {
    /// Seals a transport-mode packet: the data of `buf` is a whole IPv4 or IPv6 packet from
    /// this host; on success it is the same packet with ESP inserted after the IP header.
    pub fn seal_transport(&self, buf: &mut PacketBuf) -> Result<Sealed, DropReason> {
        if self.mode() != Mode::Transport {
            self.counters().record_drop(DropReason::BadInnerPacket);
            return Err(DropReason::BadInnerPacket);
        }
        let saved = SavedHeader::take(buf).inspect_err(|r| self.counters().record_drop(*r))?;
        // IPv4 fragments are not carried in transport mode (RFC 4301 §7); the sender's MTU
        // must be set so they do not occur.
        if is_ipv4_fragment(buf.data()) {
            self.counters().record_drop(DropReason::BadInnerPacket);
            return Err(DropReason::BadInnerPacket);
        }
        buf.pop_front(saved.len())?;
        let sealed = self.seal_payload(buf, saved.point.next_header, 0)?;
        saved.restore(buf, IpProtocol::ESP)?;
        Ok(sealed)
    }
}

impl InboundSa {
    /// Opens a transport-mode packet: the data of `buf` is a whole IP packet whose payload is
    /// ESP. On success it is the original packet (the IP header with the upper-layer payload).
    /// As with [`InboundSa::open`], the caller must then [`InboundSa::accept`] it.
    pub fn open_transport(&self, buf: &mut PacketBuf) -> Result<Opened, DropReason> {
        let saved = SavedHeader::take(buf)
            .and_then(|s| {
                if s.point.next_header == IpProtocol::ESP {
                    Ok(s)
                } else {
                    Err(DropReason::Malformed)
                }
            })
            .inspect_err(|r| self.counters().record_drop(*r))?;
        if self.mode() != Mode::Transport {
            self.counters().record_drop(DropReason::BadInnerPacket);
            return Err(DropReason::BadInnerPacket);
        }
        buf.pop_front(saved.len())?;
        let opened = self.open(buf)?;
        if !opened.is_dummy() {
            saved.restore(buf, opened.next_header)?;
        }
        Ok(opened)
    }
}

fn is_ipv4_fragment(packet: &[u8]) -> bool {
    match Ipv4Packet::new_checked(packet) {
        Ok(ip) if ip.version() == 4 => ip.more_frags() || ip.frag_offset() != 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::crypto::test_provider::TEST_PROVIDER;
    use crate::crypto::{EspSuite, SecretBytes};
    use crate::esp::{Lifetime, SaParams};
    use crate::wire::{EncrId, IntegId};

    fn pair() -> (OutboundSa, InboundSa) {
        let suite = EspSuite {
            encr: EncrId::ENCR_AES_CBC,
            encr_key_bits: 128,
            integ: IntegId::AUTH_HMAC_SHA2_256_128,
        };
        let p = SaParams {
            spi: 0x2000,
            suite,
            keymat: SecretBytes::new(vec![3; suite.keymat_len().unwrap()]),
            esn: false,
            mode: Mode::Transport,
            replay_window: 32,
            tfc_pad_to: 0,
            lifetime: Lifetime::default(),
        };
        (OutboundSa::new(&p, &TEST_PROVIDER).unwrap(), InboundSa::new(&p, &TEST_PROVIDER).unwrap())
    }

    fn ipv4_udp(payload: usize) -> Vec<u8> {
        let total = 28 + payload;
        let mut p = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&[0x30, 0x39, 0, 53]);
        p.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend((0..payload).map(|i| i as u8));
        let mut ip = Ipv4Packet::new_checked(&mut p[..]).unwrap();
        ip.fill_checksum();
        p
    }

    /// IPv6 with Hop-by-Hop and a final Destination Options header, then UDP.
    fn ipv6_hbh_dst_udp(payload: usize) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, 0, 64];
        p.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]); // HbH → DstOpts, PadN
        p.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]); // DstOpts → UDP
        p.extend_from_slice(&[0x30, 0x39, 0, 53]);
        p.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend((0..payload).map(|i| i as u8));
        let plen = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&plen.to_be_bytes());
        p
    }

    #[test]
    fn ipv4_transport_round_trip_keeps_the_header() {
        let (out, inb) = pair();
        let pkt = ipv4_udp(100);
        let mut buf = PacketBuf::from_slice(&pkt);
        out.seal_transport(&mut buf).unwrap();
        let ip = Ipv4Packet::new_checked(buf.data()).unwrap();
        assert_eq!(ip.protocol(), IpProtocol::ESP);
        assert_eq!(usize::from(ip.total_len()), buf.len());
        assert!(ip.verify_checksum());
        assert_eq!(&buf.data()[20..24], &0x2000u32.to_be_bytes());
        let opened = inb.open_transport(&mut buf).unwrap();
        inb.accept(&opened).unwrap();
        assert_eq!(opened.next_header, IpProtocol::UDP);
        assert_eq!(buf.data(), &pkt[..]);
    }

    #[test]
    fn ipv6_transport_puts_esp_after_hop_by_hop_and_before_final_dest_opts() {
        let (out, inb) = pair();
        let pkt = ipv6_hbh_dst_udp(50);
        let mut buf = PacketBuf::from_slice(&pkt);
        out.seal_transport(&mut buf).unwrap();
        let data = buf.data();
        assert_eq!(data[6], 0, "fixed header still points to Hop-by-Hop");
        assert_eq!(data[40], 50, "Hop-by-Hop now points to ESP");
        assert_eq!(&data[48..52], &0x2000u32.to_be_bytes());
        assert_eq!(usize::from(u16::from_be_bytes([data[4], data[5]])), data.len() - 40);
        let opened = inb.open_transport(&mut buf).unwrap();
        inb.accept(&opened).unwrap();
        assert_eq!(opened.next_header, IpProtocol::IPV6_OPTS);
        assert_eq!(buf.data(), &pkt[..]);
    }

    #[test]
    fn transport_refuses_wrong_input() {
        let (out, inb) = pair();
        let mut frag = ipv4_udp(10);
        frag[6] = 0x20; // more fragments
        assert_eq!(
            out.seal_transport(&mut PacketBuf::from_slice(&frag)),
            Err(DropReason::BadInnerPacket)
        );
        // A plain (non-ESP) packet handed to the inbound path.
        assert_eq!(
            inb.open_transport(&mut PacketBuf::from_slice(&ipv4_udp(10))),
            Err(DropReason::Malformed)
        );
        assert_eq!(
            inb.open_transport(&mut PacketBuf::from_slice(&[0x45, 0])),
            Err(DropReason::BadInnerPacket)
        );
        assert_eq!(inb.counters().drops(DropReason::Malformed), 1);
    }

    #[test]
    fn tampered_transport_packets_are_dropped() {
        let (out, inb) = pair();
        let mut buf = PacketBuf::from_slice(&ipv4_udp(30));
        out.seal_transport(&mut buf).unwrap();
        let wire = buf.data().to_vec();
        for i in 24..wire.len() {
            let mut bad = wire.clone();
            bad[i] ^= 0x01;
            assert!(inb.open_transport(&mut PacketBuf::from_slice(&bad)).is_err(), "byte {i}");
        }
    }
}
