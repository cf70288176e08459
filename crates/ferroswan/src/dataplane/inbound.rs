//! The inbound worker: network → SAD → open → accept → inbound policy → TUN. See the pipeline
//! in [`super`].

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use ferroswan_proto::esp::{DropReason, Mode, Opened, PacketBuf};
use ferroswan_proto::wire::ip::flow_key;
use ferroswan_proto::wire::udp_encap::{Datagram, classify};
use ferroswan_proto::wire::{Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr};

use super::{
    Carrier, Dataplane, InboundEntry, NetRx, POLL_INTERVAL, RecvMeta, Tables, TunDevice,
    buffer_pool,
};

/// Runs the inbound pipeline for one receiving socket until `stop` is set.
pub fn run(dp: &Dataplane, rx: &dyn NetRx, tun: &dyn TunDevice, stop: &AtomicBool) {
    let mut bufs = buffer_pool();
    let mut metas = vec![RecvMeta::default(); bufs.len()];
    while !stop.load(Ordering::Relaxed) {
        let n = match rx.recv_batch(&mut bufs, &mut metas, POLL_INTERVAL) {
            Ok(n) => n,
            Err(e) => {
                dp.counters.io_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("receiving ESP failed: {e}");
                std::thread::sleep(POLL_INTERVAL);
                continue;
            }
        };
        // One table snapshot per batch, as on the outbound side.
        let tables = dp.tables.load();
        for (buf, meta) in bufs.iter_mut().zip(&metas).take(n) {
            if let Some(packet) = process(dp, &tables, buf, meta)
                && let Err(e) = tun.send(packet)
            {
                dp.counters.io_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("writing to the tunnel interface failed: {e}");
            }
        }
    }
}

/// Processes one received datagram against the `tables` snapshot; returns the inner packet to
/// write to the TUN, if any. Every drop is counted (on the SA when one is known, else
/// globally).
pub fn process<'b>(
    dp: &Dataplane,
    tables: &Tables,
    buf: &'b mut PacketBuf,
    meta: &RecvMeta,
) -> Option<&'b [u8]> {
    if meta.carrier == Carrier::Udp {
        match classify(buf.data()) {
            Ok(Datagram::Esp(_)) => {}
            Ok(Datagram::NatKeepalive) => {
                dp.counters.nat_keepalives.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Ok(Datagram::Ike(message)) => {
                // IKE on the NAT-T port belongs to the control plane.
                dp.counters.ike_datagrams.fetch_add(1, Ordering::Relaxed);
                dp.deliver_ike(meta.dst, meta.src, message);
                return None;
            }
            Err(_) => {
                dp.counters.record_drop(DropReason::Malformed);
                return None;
            }
        }
    }
    let spi = match buf.data().get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
        Some(spi) => u32::from_be_bytes(spi),
        None => {
            dp.counters.record_drop(DropReason::Malformed);
            return None;
        }
    };
    let Some(entry) = tables.inbound.get(&spi) else {
        dp.counters.record_drop(DropReason::UnknownSpi);
        return None;
    };
    let opened = entry.sa.open(buf).ok()?;
    entry.sa.accept(&opened).ok()?;
    if opened.is_dummy() {
        return None;
    }
    if entry.sa.mode() == Mode::Transport {
        restore_header(entry, buf, meta, &opened).ok()?;
    }
    let allowed = flow_key(buf.data()).is_ok_and(|flow| entry.selectors.allows_inbound(&flow));
    if !allowed {
        entry.sa.counters().record_drop(DropReason::PolicyMismatch);
        return None;
    }
    Some(buf.data())
}

/// Transport mode: the socket stripped the outer IP header, so a fresh one (peer → us, with the
/// upper-layer protocol ESP carried) goes in front of the decrypted payload.
fn restore_header(
    entry: &InboundEntry,
    buf: &mut PacketBuf,
    meta: &RecvMeta,
    opened: &Opened,
) -> Result<(), DropReason> {
    let fail = |reason| {
        entry.sa.counters().record_drop(reason);
        reason
    };
    let payload_len = buf.len();
    match (meta.src.ip(), meta.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let repr = Ipv4Repr {
                src_addr: src,
                dst_addr: dst,
                protocol: opened.next_header,
                payload_len,
                ttl: 64,
                dscp_ecn: 0,
                ident: 0,
                dont_frag: true,
            };
            let header = buf.push_front(repr.buffer_len()).map_err(fail)?;
            repr.emit(&mut Ipv4Packet::new_unchecked(header));
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let repr = Ipv6Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: opened.next_header,
                payload_len,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            };
            let header = buf.push_front(repr.buffer_len()).map_err(fail)?;
            repr.emit(&mut Ipv6Packet::new_unchecked(header));
        }
        _ => return Err(fail(DropReason::BadInnerPacket)),
    }
    Ok(())
}
