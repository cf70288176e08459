//! TUN devices: the data plane's side of the kernel's routing table.

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferroswan_proto::esp::PacketBuf;

use super::{SendOutcome, cvt, cvt_size, poll_fd, set_nonblocking};

/// A TUN device (`IFF_TUN | IFF_NO_PI`): every read is one IP packet the kernel routed to the
/// interface, every write is one IP packet handed to the kernel as if received on it.
///
/// The device is not persistent: it disappears (with its addresses and routes) when the last
/// queue's descriptor closes, so a crashed daemon leaves nothing behind.
///
/// The descriptor is non-blocking; [`Tun::recv_batch`] waits with `poll(2)`. All methods take
/// `&self`, so one thread may read while another writes.
///
/// Device names and the control ioctls act on the network namespace of the thread that called
/// [`Tun::create`].
///
/// # Offloads (not implemented yet)
///
/// The lab measured TUN TSO/GRO (`IFF_VNET_HDR` + `TUNSETOFFLOAD`) as one of the three offloads
/// needed together for multi-Gbit/s (`lab/tun-ceiling.md`). With it, every read and write starts
/// with a `virtio_net_hdr` (10 bytes, 12 with `TUNSETVNETHDRSZ`), reads return TCP/UDP
/// superpackets of up to 64 KiB, and writes may coalesce a flow's packets (GRO). What changes:
/// `recv_batch` reads one superpacket into a 64 KiB scratch buffer and splits it into
/// `PacketBuf`s itself (fixing the IP and TCP/UDP headers and checksums per segment, or better,
/// sealing straight from the superpacket); `send_batch` groups packets by flow into
/// superpackets, each with a header; buffers need the header size in their headroom. `create`
/// would take an options struct (`offload`, `multi_queue`) instead of growing more constructors.
#[derive(Debug)]
pub struct Tun {
    file: File,
    /// An `AF_INET` datagram socket for the interface ioctls, made in the device's namespace.
    ctl: OwnedFd,
    name: String,
    ifindex: u32,
    multi_queue: bool,
    truncated: AtomicU64,
}

impl Tun {
    /// Creates the TUN device `name` (a `%d` in it is replaced by the kernel with the first free
    /// number, e.g. `"ferro%d"`). The device starts down and without addresses.
    pub fn create(name: &str) -> io::Result<Self> {
        Self::open(name, false)
    }

    /// Creates a multi-queue TUN device; open more queues with [`Tun::open_queue`], one per
    /// worker thread. The kernel spreads flows over the queues by their hash.
    pub fn create_multi_queue(name: &str) -> io::Result<Self> {
        Self::open(name, true)
    }

    /// Attaches one more queue to a device made with [`Tun::create_multi_queue`]. The device
    /// lives as long as any queue is open.
    pub fn open_queue(&self) -> io::Result<Self> {
        if !self.multi_queue {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "open queue on {}: the device was created without IFF_MULTI_QUEUE",
                    self.name
                ),
            ));
        }
        Self::open(&self.name, true)
    }

    fn open(name: &str, multi_queue: bool) -> io::Result<Self> {
        let context = |e: io::Error| io::Error::new(e.kind(), format!("create TUN {name}: {e}"));
        let mut ifr = ifreq(name).map_err(context)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(context)?;
        let mut flags = libc::IFF_TUN | libc::IFF_NO_PI;
        if multi_queue {
            flags |= libc::IFF_MULTI_QUEUE;
        }
        ifr.ifr_ifru.ifru_flags = flags as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `ifr` is, for the call.
        cvt(unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut ifr) })
            .map_err(context)?;
        // The kernel wrote the final name (with `%d` expanded) back.
        let name = ifr_name(&ifr);
        let ctl = control_socket().map_err(context)?;
        let ifindex = {
            let mut ifr = ifreq(&name)?;
            // SAFETY: SIOCGIFINDEX reads the name from and writes the index into `ifr`.
            cvt(unsafe { libc::ioctl(ctl.as_raw_fd(), libc::SIOCGIFINDEX, &mut ifr) })
                .map_err(context)?;
            // SAFETY: the kernel filled the `ifru_ifindex` member of the union.
            let index = unsafe { ifr.ifr_ifru.ifru_ifindex };
            u32::try_from(index).unwrap_or_default()
        };
        Ok(Self { file, ctl, name, ifindex, multi_queue, truncated: AtomicU64::new(0) })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface index (for routes and addresses).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Sets the interface MTU (`SIOCSIFMTU`).
    pub fn set_mtu(&self, mtu: u32) -> io::Result<()> {
        let mut ifr = ifreq(&self.name)?;
        ifr.ifr_ifru.ifru_mtu = libc::c_int::try_from(mtu)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "MTU out of range"))?;
        self.ioctl(libc::SIOCSIFMTU, &mut ifr, "set MTU")
    }

    /// The interface MTU (`SIOCGIFMTU`).
    pub fn mtu(&self) -> io::Result<u32> {
        let mut ifr = ifreq(&self.name)?;
        self.ioctl(libc::SIOCGIFMTU, &mut ifr, "get MTU")?;
        // SAFETY: the kernel filled the `ifru_mtu` member of the union.
        let mtu = unsafe { ifr.ifr_ifru.ifru_mtu };
        Ok(u32::try_from(mtu).unwrap_or_default())
    }

    /// Sets the transmit queue length: the kernel's queue of packets routed to the device and
    /// not yet read. Without offloads this queue is where packets are lost first when the reader
    /// falls behind (lab notes: 112k–155k drops per 30 s at the default 500).
    pub fn set_txqueuelen(&self, len: u32) -> io::Result<()> {
        let mut ifr = ifreq(&self.name)?;
        ifr.ifr_ifru.ifru_metric = libc::c_int::try_from(len).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "queue length out of range")
        })?;
        self.ioctl(libc::SIOCSIFTXQLEN, &mut ifr, "set txqueuelen")
    }

    /// Brings the interface up (`IFF_UP`).
    pub fn set_up(&self) -> io::Result<()> {
        let mut ifr = ifreq(&self.name)?;
        self.ioctl(libc::SIOCGIFFLAGS, &mut ifr, "get flags")?;
        // SAFETY: the kernel filled the `ifru_flags` member of the union.
        let flags = unsafe { ifr.ifr_ifru.ifru_flags };
        ifr.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        self.ioctl(libc::SIOCSIFFLAGS, &mut ifr, "set up")
    }

    /// Whether the interface is up.
    pub fn is_up(&self) -> io::Result<bool> {
        let mut ifr = ifreq(&self.name)?;
        self.ioctl(libc::SIOCGIFFLAGS, &mut ifr, "get flags")?;
        // SAFETY: the kernel filled the `ifru_flags` member of the union.
        let flags = unsafe { ifr.ifr_ifru.ifru_flags };
        Ok(flags & libc::IFF_UP as libc::c_short != 0)
    }

    fn ioctl(&self, request: libc::Ioctl, ifr: &mut libc::ifreq, what: &str) -> io::Result<()> {
        // SAFETY: every request passed here reads and/or writes exactly one `struct ifreq`.
        cvt(unsafe { libc::ioctl(self.ctl.as_raw_fd(), request, ifr as *mut libc::ifreq) })
            .map(drop)
            .map_err(|e| io::Error::new(e.kind(), format!("{what} on {}: {e}", self.name)))
    }

    /// Waits until a packet can be read, up to `timeout`. `Ok(false)` on timeout.
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        poll_fd(self.file.as_fd(), libc::POLLIN, timeout)
    }

    /// Reads up to `bufs.len()` packets: waits up to `timeout` for the first one (not at all for
    /// a zero timeout), then reads what is queued without waiting. Each packet is read into its
    /// buffer at offset `headroom`, and the buffer's window is set to the packet. Returns how
    /// many buffers were filled (0 on timeout or when a signal interrupted the wait).
    ///
    /// Each buffer needs at least `headroom` + MTU bytes of storage: a packet that does not fit
    /// is dropped and counted ([`Tun::truncated_packets`]). An error after some packets were
    /// read ends the batch early and shows again on the next call.
    pub fn recv_batch(
        &self,
        bufs: &mut [PacketBuf],
        headroom: usize,
        timeout: Duration,
    ) -> io::Result<usize> {
        let mut filled = 0;
        let mut waited = false;
        while let Some(buf) = bufs.get_mut(filled) {
            let Some(room) = buf.storage_mut().get_mut(headroom..).filter(|r| !r.is_empty()) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "recv_batch: buffer has no room after the headroom",
                ));
            };
            let room_len = room.len();
            // SAFETY: `room` is a live, exclusively borrowed byte slice of `room_len` bytes.
            let ret =
                unsafe { libc::read(self.file.as_raw_fd(), room.as_mut_ptr().cast(), room_len) };
            match cvt_size(ret) {
                // The kernel returns the full packet length even when it copied less.
                Ok(len) if len > room_len => {
                    self.truncated.fetch_add(1, Ordering::Relaxed);
                }
                Ok(len) => {
                    buf.set_window(headroom, len).map_err(|_| io::Error::other("set_window"))?;
                    filled += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if filled > 0 || waited || timeout.is_zero() {
                        break;
                    }
                    waited = true;
                    if !self.wait_readable(timeout)? {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted && filled == 0 && !waited => {
                    waited = true;
                }
                Err(_) if filled > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }

    /// Packets dropped by [`Tun::recv_batch`] because they did not fit their buffer.
    pub fn truncated_packets(&self) -> u64 {
        self.truncated.load(Ordering::Relaxed)
    }

    /// Writes one IP packet to the kernel.
    pub fn send(&self, packet: &[u8]) -> io::Result<()> {
        // SAFETY: `packet` is a live byte slice of `packet.len()` bytes; the kernel only reads it.
        let ret =
            unsafe { libc::write(self.file.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
        cvt_size(ret).map(drop)
    }

    /// Writes IP packets to the kernel, one `write(2)` each (a TUN has no batched write without
    /// `IFF_VNET_HDR` coalescing). A packet the kernel refuses (malformed, interface down) is
    /// counted in the outcome and the rest still go.
    pub fn send_batch<'a>(&self, packets: impl IntoIterator<Item = &'a [u8]>) -> SendOutcome {
        let mut outcome = SendOutcome::default();
        for packet in packets {
            match self.send(packet) {
                Ok(()) => outcome.sent += 1,
                Err(e) => outcome.fail(e),
            }
        }
        outcome
    }
}

impl AsFd for Tun {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// A zeroed `ifreq` naming `name`.
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}: 1 to {} bytes, no NUL", libc::IFNAMSIZ - 1),
        ));
    }
    // SAFETY: `ifreq` is a plain C struct (a name array and a union of integers, addresses and
    // pointers) for which all-zero bytes are a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in ifr.ifr_name.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    Ok(ifr)
}

/// The name in an `ifreq` the kernel filled (NUL-terminated within `IFNAMSIZ`).
fn ifr_name(ifr: &libc::ifreq) -> String {
    let bytes: Vec<u8> = ifr.ifr_name.iter().map(|&c| c as u8).collect();
    CStr::from_bytes_until_nul(&bytes).map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// A datagram socket to carry interface ioctls, in the calling thread's namespace.
fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; no pointers.
    let fd = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    set_nonblocking(fd.as_fd())?;
    Ok(fd)
}
