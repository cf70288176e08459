//! The outbound worker: TUN → policy → seal → network. See the pipeline in [`super`].

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ferroswan_proto::esp::{DropReason, Mode, PacketBuf, Sealed};
use ferroswan_proto::policy::Action;
use ferroswan_proto::wire::FlowKey;
use ferroswan_proto::wire::ip::{esp_insertion_point, flow_key};

use super::trap::HeldPackets;
use super::{
    BATCH, Dataplane, Destination, NetTx, OutboundEntry, POLL_INTERVAL, Tables, TrapEntry,
    TunDevice, buffer_pool,
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
    let mut tables = dp.tables.load();
    for (i, buf) in bufs.iter_mut().enumerate() {
        let mut fate = route(dp, &tables, buf, None);
        if matches!(fate, Fate::Retry) {
            // The trap was released into newer tables while this batch was on older ones:
            // those hold the SA, and the held packets already left through it.
            tables = dp.tables.load();
            fate = route(dp, &tables, buf, None);
        }
        match fate {
            Fate::Send(dst) => sends.push((dst, i)),
            Fate::Retry => dp.counters.record_drop(DropReason::NoPolicy),
            Fate::Held | Fate::Dropped => {}
        }
    }
}

/// What became of one outbound packet.
pub(crate) enum Fate {
    /// Sealed in place: send it here.
    Send(Destination),
    /// A trap holds a copy (or dropped it, counted).
    Held,
    /// A trap was released into newer tables than these: look the packet up again.
    Retry,
    /// Dropped and counted.
    Dropped,
}

/// Looks `buf` up in `tables` and seals it, or hands it to the trap it hits. `releasing`: the
/// trap being released (its id and its queue, locked by the caller): a packet that hits it
/// again (the new SA does not cover it) goes back into the queue.
pub(crate) fn route(
    dp: &Dataplane,
    tables: &Tables,
    buf: &mut PacketBuf,
    releasing: Option<(u64, &mut HeldPackets)>,
) -> Fate {
    let Ok(flow) = flow_key(buf.data()) else {
        dp.counters.record_drop(DropReason::Malformed);
        return Fate::Dropped;
    };
    if is_link_scope(&flow) {
        dp.counters.link_local.fetch_add(1, Ordering::Relaxed);
        return Fate::Dropped;
    }
    let entry = match tables.spd.lookup_outbound(&flow) {
        Some(Action::Protect(index)) => tables.outbound.get(*index),
        Some(Action::Trap(index)) => match (tables.traps.get(*index), releasing) {
            (Some(trap), Some((id, queue))) if trap.id == id => {
                if !queue.push(buf.data()) {
                    dp.counters.record_drop(DropReason::TrapQueueFull);
                }
                return Fate::Held;
            }
            (Some(trap), _) => return hold(dp, trap, buf.data(), &flow, tables.generation),
            (None, _) => None,
        },
        // Bypass traffic is never routed into the tunnel; reaching us it has no SA either.
        Some(Action::Bypass | Action::Discard) | None => None,
    };
    let Some(entry) = entry else {
        dp.counters.record_drop(DropReason::NoPolicy);
        tracing::debug!(
            "dropped {:?} {} -> {} (ports {} -> {}): no policy covers it",
            flow.protocol,
            flow.src,
            flow.dst,
            flow.src_port,
            flow.dst_port
        );
        return Fate::Dropped;
    };
    match seal(entry, buf) {
        Ok(_) => Fate::Send(entry.dst),
        Err(_) => Fate::Dropped,
    }
}

/// A packet hit `trap` (in tables of `generation`): queue a copy, and ask for the SA unless
/// an acquire is pending.
#[cold]
fn hold(dp: &Dataplane, trap: &TrapEntry, packet: &[u8], flow: &FlowKey, generation: u64) -> Fate {
    let held = trap.hold(packet, Instant::now(), generation);
    if held.retry {
        return Fate::Retry;
    }
    if !held.queued {
        dp.counters.record_drop(DropReason::TrapQueueFull);
    }
    if held.acquire {
        tracing::debug!(
            "trap {}: {:?} {} -> {} (ports {} -> {}) starts the negotiation",
            trap.name(),
            flow.protocol,
            flow.src,
            flow.dst,
            flow.src_port,
            flow.dst_port
        );
        dp.acquire(trap.id, flow);
    }
    Fate::Held
}

/// Packets that cannot leave the link: from the unspecified or a link-local address, or to a
/// link-scope multicast group (e.g. the kernel's MLD reports when the TUN comes up).
fn is_link_scope(flow: &FlowKey) -> bool {
    match (flow.src, flow.dst) {
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let [group, ..] = dst.segments();
            src.is_unspecified()
                || src.is_unicast_link_local()
                || dst.is_unicast_link_local()
                || (dst.is_multicast() && group & 0x000f <= 2)
        }
        (IpAddr::V4(src), IpAddr::V4(dst)) => src.is_link_local() || dst.is_link_local(),
        _ => false,
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
