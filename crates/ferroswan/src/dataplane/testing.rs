//! In-memory doubles of the TUN device and the network, so the data plane runs in tests with
//! no root, no kernel and no timing (wireguard-go's `tun/tuntest` and `conn/bindtest`).

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use ferroswan_proto::esp::PacketBuf;

use super::{Carrier, Destination, NetRx, NetTx, RecvMeta, TunDevice};

/// A blocking FIFO of packets with metadata.
#[derive(Debug)]
struct Queue<T> {
    items: Mutex<VecDeque<T>>,
    ready: Condvar,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self { items: Mutex::new(VecDeque::new()), ready: Condvar::new() }
    }
}

impl<T> Queue<T> {
    fn push(&self, item: T) {
        self.items.lock().unwrap_or_else(PoisonError::into_inner).push_back(item);
        self.ready.notify_all();
    }

    /// Waits up to `timeout` for the first item, then pops up to `max`.
    fn pop_batch(&self, max: usize, timeout: Duration) -> Vec<T> {
        let guard = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut items, _) = self
            .ready
            .wait_timeout_while(guard, timeout, |q| q.is_empty())
            .unwrap_or_else(PoisonError::into_inner);
        let n = items.len().min(max);
        items.drain(..n).collect()
    }

    fn drain(&self) -> Vec<T> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner).drain(..).collect()
    }
}

/// An in-memory TUN: tests [`MemTun::inject`] packets "from the kernel" and read what the data
/// plane wrote with [`MemTun::written`].
#[derive(Debug, Default)]
pub struct MemTun {
    from_kernel: Queue<Vec<u8>>,
    to_kernel: Queue<Vec<u8>>,
}

impl MemTun {
    /// A new, empty TUN double.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Queues an IP packet as if the kernel routed it into the tunnel.
    pub fn inject(&self, packet: &[u8]) {
        self.from_kernel.push(packet.to_vec());
    }

    /// Takes every packet the data plane has written so far.
    pub fn written(&self) -> Vec<Vec<u8>> {
        self.to_kernel.drain()
    }

    /// Waits up to `timeout` for at least one written packet and takes up to `max`.
    pub fn wait_written(&self, max: usize, timeout: Duration) -> Vec<Vec<u8>> {
        self.to_kernel.pop_batch(max, timeout)
    }
}

impl TunDevice for MemTun {
    fn recv_batch(
        &self,
        bufs: &mut [PacketBuf],
        headroom: usize,
        timeout: Duration,
    ) -> io::Result<usize> {
        let packets = self.from_kernel.pop_batch(bufs.len(), timeout);
        for (buf, packet) in bufs.iter_mut().zip(&packets) {
            buf.load(headroom, packet).map_err(|e| io::Error::other(e.describe()))?;
        }
        Ok(packets.len())
    }

    fn send(&self, packet: &[u8]) -> io::Result<()> {
        self.to_kernel.push(packet.to_vec());
        Ok(())
    }
}

/// A datagram on the in-memory wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireDatagram {
    /// Where the sender sent it.
    pub dst: Destination,
    /// The sender's address for it (raw: port 0).
    pub src: SocketAddr,
    /// The ESP packet (or UDP payload).
    pub bytes: Vec<u8>,
}

/// One direction of an in-memory network between two gateways: what one side's [`NetTx`]
/// sends, the other side's [`NetRx`] receives. Tests can intercept in between with
/// [`MemLink::take`] and [`MemLink::deliver`] (drop, tamper, replay, inject).
#[derive(Debug)]
pub struct MemLink {
    /// The sender's outer address (source of every datagram on this link).
    pub src_addr: IpAddr,
    in_flight: Queue<WireDatagram>,
    delivered: Queue<WireDatagram>,
    /// Pass sent datagrams straight through (true) or hold them for `take` (false).
    pub auto_deliver: bool,
}

impl MemLink {
    /// A link whose sender has outer address `src_addr`; datagrams pass straight through.
    pub fn new(src_addr: IpAddr) -> Arc<Self> {
        Arc::new(Self {
            src_addr,
            in_flight: Queue::default(),
            delivered: Queue::default(),
            auto_deliver: true,
        })
    }

    /// A link that holds every datagram until the test [`MemLink::take`]s and
    /// [`MemLink::deliver`]s it.
    pub fn manual(src_addr: IpAddr) -> Arc<Self> {
        Arc::new(Self {
            src_addr,
            in_flight: Queue::default(),
            delivered: Queue::default(),
            auto_deliver: false,
        })
    }

    /// Takes the datagrams sent and not yet delivered (manual links only).
    pub fn take(&self) -> Vec<WireDatagram> {
        self.in_flight.drain()
    }

    /// Delivers a datagram to the receiving side.
    pub fn deliver(&self, datagram: WireDatagram) {
        self.delivered.push(datagram);
    }
}

impl NetTx for MemLink {
    fn send_batch(&self, bufs: &[PacketBuf], sends: &[(Destination, usize)]) -> io::Result<()> {
        for (dst, i) in sends {
            let bytes = bufs.get(*i).ok_or_else(|| io::Error::other("bad index"))?.data().to_vec();
            let src = match dst {
                Destination::Raw(_) => SocketAddr::new(self.src_addr, 0),
                Destination::Udp { local, .. } => SocketAddr::new(self.src_addr, local.port()),
            };
            let datagram = WireDatagram { dst: *dst, src, bytes };
            if self.auto_deliver {
                self.delivered.push(datagram);
            } else {
                self.in_flight.push(datagram);
            }
        }
        Ok(())
    }
}

impl NetRx for MemLink {
    fn recv_batch(
        &self,
        bufs: &mut [PacketBuf],
        metas: &mut [RecvMeta],
        timeout: Duration,
    ) -> io::Result<usize> {
        let datagrams = self.delivered.pop_batch(bufs.len().min(metas.len()), timeout);
        for ((buf, meta), d) in bufs.iter_mut().zip(metas.iter_mut()).zip(&datagrams) {
            buf.load(PacketBuf::DEFAULT_HEADROOM, &d.bytes)
                .map_err(|e| io::Error::other(e.describe()))?;
            let (dst, carrier) = match d.dst {
                Destination::Raw(ip) => (ip, Carrier::RawEsp),
                Destination::Udp { remote, .. } => (remote.ip(), Carrier::Udp),
            };
            *meta = RecvMeta { src: d.src, dst, carrier };
        }
        Ok(datagrams.len())
    }
}
