//! The outbound worker: TUN → policy → seal → network. See the pipeline in [`super`].

use std::sync::atomic::{AtomicBool, Ordering};

use ferroswan_proto::esp::{DropReason, Mode, PacketBuf, Sealed};
use ferroswan_proto::policy::Action;
use ferroswan_proto::wire::ip::{esp_insertion_point, flow_key};

use super::{
    BATCH, Dataplane, Destination, NetTx, OutboundEntry, POLL_INTERVAL, TunDevice, buffer_pool,
};

/// Runs the outbound pipeline until `stop` is set.
pub fn run(dp: &Dataplane, tun: &dyn TunDevice, net: &dyn NetTx, stop: &AtomicBool) {
    let mut bufs = buffer_pool();
    let mut sends: Vec<(Destination, usize)> = Vec::with_capacity(BATCH);
    while !stop.load(Ordering::Relaxed) {
        let n = match tun.recv_batch(&mut bufs, PacketBuf::DEFAULT_HEADROOM, POLL_INTERVAL) {
            Ok(n) => n,
            Err(e) => {
                dp.counters.io_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("reading from the tunnel interface failed: {e}");
                std::thread::sleep(POLL_INTERVAL);
                continue;
            }
        };
        process_batch(dp, bufs.get_mut(..n).unwrap_or_default(), &mut sends);
        if !sends.is_empty()
            && let Err(e) = net.send_batch(&bufs, &sends)
        {
            dp.counters.io_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("sending ESP failed: {e}");
        }
    }
}

/// Looks up, seals and queues every packet of one batch (index `i` of `sends` refers to
/// `bufs[i]`).
pub fn process_batch(
    dp: &Dataplane,
    bufs: &mut [PacketBuf],
    sends: &mut Vec<(Destination, usize)>,
) {
    sends.clear();
    let tables = dp.tables.load();
    for (i, buf) in bufs.iter_mut().enumerate() {
        let Ok(flow) = flow_key(buf.data()) else {
            dp.counters.record_drop(DropReason::Malformed);
            continue;
        };
        let entry = match tables.spd.lookup_outbound(&flow) {
            Some(Action::Protect(index)) => tables.outbound.get(*index),
            // Bypass traffic is never routed into the tunnel; reaching us it has no SA either.
            Some(Action::Bypass | Action::Discard) | None => None,
        };
        let Some(entry) = entry else {
            dp.counters.record_drop(DropReason::NoPolicy);
            continue;
        };
        if seal(entry, buf).is_ok() {
            sends.push((entry.dst, i));
        }
    }
}

/// Seals `buf` for the wire: afterwards it holds the ESP packet (SPI first); the outer IP (and
/// UDP) header is the socket's job. Failures are counted on the SA.
fn seal(entry: &OutboundEntry, buf: &mut PacketBuf) -> Result<Sealed, DropReason> {
    match entry.sa.mode() {
        Mode::Tunnel => entry.sa.seal_tunnel(buf),
        Mode::Transport => {
            // The kernel writes the outer header of our raw or UDP socket, so the original
            // header is dropped here and ESP carries the upper-layer payload.
            let point = esp_insertion_point(buf.data()).map_err(|_| {
                entry.sa.counters().record_drop(DropReason::BadInnerPacket);
                DropReason::BadInnerPacket
            })?;
            buf.pop_front(point.offset)?;
            entry.sa.seal_payload(buf, point.next_header, 0)
        }
    }
}
