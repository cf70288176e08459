//! Raw ESP and UDP sockets with batched, allocation-free I/O (`recvmmsg`/`sendmmsg`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use ferroswan_proto::esp::PacketBuf;

use super::{SendOutcome, cvt, getsockopt_int, poll_fd, setsockopt_int};

/// Most datagrams one `recvmmsg`/`sendmmsg` call moves; the size of a [`Batch`].
pub const BATCH: usize = 64;

/// How long a send waits for room in a full socket send buffer before it gives up on the rest
/// of the batch (the kernel always drains a datagram socket's buffer, so this only bounds a
/// stall, e.g. a saturated link).
const SEND_WAIT: Duration = Duration::from_secs(1);

/// IP protocol number of ESP (RFC 4303).
const IPPROTO_ESP: libc::c_int = 50;

// Socket options not exported by `libc` for every target; values from `asm-generic/socket.h`.
const SO_SNDBUFFORCE: libc::c_int = 32;
const SO_RCVBUFFORCE: libc::c_int = 33;
const SO_MARK: libc::c_int = 36;

/// Metadata of one received datagram: `RecvMeta<IpAddr>` for raw ESP, `RecvMeta<SocketAddr>`
/// for UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvMeta<A> {
    /// Sender: its address (ESP) or address and port (UDP).
    pub src: A,
    /// The packet's destination address: one of ours (from the IPv4 header, or from
    /// `IP_PKTINFO`/`IPV6_PKTINFO`); unspecified if the kernel did not say.
    pub dst: IpAddr,
    /// Length of the payload now in the buffer's window (the ESP packet, or the UDP payload).
    /// 0 for a datagram with nothing usable (an IPv4 header that does not parse).
    pub len: usize,
    /// The datagram did not fit the buffer and was cut short; drop it.
    pub truncated: bool,
}

impl Default for RecvMeta<IpAddr> {
    fn default() -> Self {
        Self {
            src: Ipv4Addr::UNSPECIFIED.into(),
            dst: Ipv4Addr::UNSPECIFIED.into(),
            len: 0,
            truncated: false,
        }
    }
}

impl Default for RecvMeta<SocketAddr> {
    fn default() -> Self {
        Self {
            src: (Ipv4Addr::UNSPECIFIED, 0).into(),
            dst: Ipv4Addr::UNSPECIFIED.into(),
            len: 0,
            truncated: false,
        }
    }
}

/// Kernel buffer sizes a socket obtained, as `getsockopt` reports them (Linux doubles the
/// requested value to account for its bookkeeping, so a 4 MiB request reads back as 8 MiB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferSizes {
    /// `SO_RCVBUF` now in effect.
    pub rcv: usize,
    /// `SO_SNDBUF` now in effect.
    pub snd: usize,
    /// Whether `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE` worked (needs CAP_NET_ADMIN); if not, the
    /// plain options were used and the kernel capped them at `net.core.rmem_max`/`wmem_max`.
    pub forced: bool,
}

/// Reusable `recvmmsg`/`sendmmsg` state for up to [`BATCH`] datagrams: message headers, iovecs,
/// address and control-message space. Make one per worker and pass it to every call, so the
/// packet path allocates nothing.
pub struct Batch {
    hdrs: Box<[libc::mmsghdr]>,
    iovs: Box<[libc::iovec]>,
    names: Box<[NameBuf]>,
    ctrls: Box<[CtrlBuf]>,
}

// SAFETY: the raw pointers inside `hdrs` and `iovs` are only meaningful during one
// `recvmmsg`/`sendmmsg` call: every call rewrites all of them before the system call and never
// reads them afterwards, so moving a `Batch` to another thread between calls is sound.
unsafe impl Send for Batch {}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").field("capacity", &self.hdrs.len()).finish()
    }
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    /// Room for [`BATCH`] datagrams (about 14 KiB).
    pub fn new() -> Self {
        // SAFETY: `mmsghdr` and `iovec` are plain C structs of integers and pointers, for which
        // all-zero bytes (null pointers, zero lengths) are valid values.
        let hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
        let iov = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
        Self {
            hdrs: vec![hdr; BATCH].into_boxed_slice(),
            iovs: vec![iov; BATCH].into_boxed_slice(),
            names: vec![NameBuf([0; NAME_LEN]); BATCH].into_boxed_slice(),
            ctrls: vec![CtrlBuf([0; CTRL_LEN]); BATCH].into_boxed_slice(),
        }
    }

    /// Points header `i` at its iovec, name and control buffers, offering `ctrl_len` bytes of
    /// control messages (all of the buffer to receive; the encoded length or 0 to send).
    fn link(&mut self, i: usize, name_len: usize, ctrl_len: usize) {
        let (Some(hdr), Some(iov), Some(name), Some(cbuf)) = (
            self.hdrs.get_mut(i),
            self.iovs.get_mut(i),
            self.names.get_mut(i),
            self.ctrls.get_mut(i),
        ) else {
            return;
        };
        hdr.msg_len = 0;
        let msg = &mut hdr.msg_hdr;
        msg.msg_name = name.0.as_mut_ptr().cast();
        msg.msg_namelen = name_len as libc::socklen_t;
        msg.msg_iov = iov;
        msg.msg_iovlen = 1;
        if ctrl_len > 0 {
            msg.msg_control = cbuf.0.as_mut_ptr().cast();
            msg.msg_controllen = ctrl_len.min(CTRL_LEN) as _;
        } else {
            msg.msg_control = std::ptr::null_mut();
            msg.msg_controllen = 0;
        }
        msg.msg_flags = 0;
    }
}

/// Room for a `sockaddr_in6` (the largest address we use).
const NAME_LEN: usize = 28;
/// Room for one `IPV6_PKTINFO` or `IP_PKTINFO` control message, with slack.
const CTRL_LEN: usize = 64;
/// Alignment of control messages: `size_t`.
const WORD: usize = size_of::<usize>();
/// Length of a `struct cmsghdr { size_t len; int level; int type; }`, aligned.
const CMSG_HDR: usize = (WORD + 8).next_multiple_of(WORD);

#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct NameBuf([u8; NAME_LEN]);

#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct CtrlBuf([u8; CTRL_LEN]);

/// What a receive call learned about datagram `i` of a batch, before protocol-specific parsing.
struct Received<'a> {
    /// Bytes the kernel copied into the buffer (at the headroom).
    len: usize,
    truncated: bool,
    name: &'a [u8],
    ctrl: &'a [u8],
}

/// The socket descriptor and the operations shared by [`EspSocket`] and [`UdpSocket`].
#[derive(Debug)]
struct Socket {
    fd: OwnedFd,
    v6: bool,
}

impl Socket {
    fn new(v6: bool, ty: libc::c_int, protocol: libc::c_int) -> io::Result<Self> {
        let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
        // SAFETY: plain socket(2) call; no pointers.
        let fd = cvt(unsafe {
            libc::socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, protocol)
        })?;
        // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd, v6 })
    }

    fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        let mut name = NameBuf([0; NAME_LEN]);
        let len = encode_sockaddr(addr, &mut name.0);
        // SAFETY: `name` holds a `sockaddr_in`/`sockaddr_in6` of `len` bytes for the call.
        cvt(unsafe { libc::bind(self.fd.as_raw_fd(), name.0.as_ptr().cast(), len) }).map(drop)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        let mut name = NameBuf([0; NAME_LEN]);
        let mut len = NAME_LEN as libc::socklen_t;
        // SAFETY: `name` has room for `len` bytes, and `len` is live and writable.
        cvt(unsafe {
            libc::getsockname(self.fd.as_raw_fd(), name.0.as_mut_ptr().cast(), &mut len)
        })?;
        decode_sockaddr(name.0.get(..len as usize).unwrap_or_default())
            .ok_or_else(|| io::Error::other("getsockname: not an IP address"))
    }

    fn opt(&self, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
        setsockopt_int(self.fd.as_fd(), level, name, value)
    }

    fn set_buffer_sizes(&self, rcv: usize, snd: usize) -> io::Result<BufferSizes> {
        let clamp = |n: usize| libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX);
        let sol = libc::SOL_SOCKET;
        let forced = self.opt(sol, SO_RCVBUFFORCE, clamp(rcv)).is_ok()
            && self.opt(sol, SO_SNDBUFFORCE, clamp(snd)).is_ok();
        if !forced {
            self.opt(sol, libc::SO_RCVBUF, clamp(rcv))?;
            self.opt(sol, libc::SO_SNDBUF, clamp(snd))?;
        }
        let get = |name| getsockopt_int(self.fd.as_fd(), sol, name).map(|v| v.max(0) as usize);
        Ok(BufferSizes { rcv: get(libc::SO_RCVBUF)?, snd: get(libc::SO_SNDBUF)?, forced })
    }

    /// Receives up to `min(bufs, meta, BATCH)` datagrams into `bufs` at `headroom`, waiting up
    /// to `timeout` for the first; calls `parse` for each to fill its metadata and window.
    fn recv<A>(
        &self,
        batch: &mut Batch,
        bufs: &mut [PacketBuf],
        meta: &mut [RecvMeta<A>],
        headroom: usize,
        timeout: Duration,
        mut parse: impl FnMut(&Received<'_>, &mut PacketBuf, &mut RecvMeta<A>),
    ) -> io::Result<usize> {
        let count = bufs.len().min(meta.len()).min(BATCH);
        for (i, buf) in bufs.iter_mut().take(count).enumerate() {
            let Some(room) = buf.storage_mut().get_mut(headroom..).filter(|r| !r.is_empty()) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "recv_batch: buffer has no room after the headroom",
                ));
            };
            if let Some(iov) = batch.iovs.get_mut(i) {
                iov.iov_base = room.as_mut_ptr().cast();
                iov.iov_len = room.len();
            }
        }
        if count == 0 {
            return Ok(0);
        }
        let mut waited = false;
        let n = loop {
            for i in 0..count {
                batch.link(i, NAME_LEN, CTRL_LEN);
            }
            // SAFETY: the first `count` headers point at live iovecs (into `bufs`, exclusively
            // borrowed for this call), name and control buffers in `batch`, with their lengths;
            // the timeout pointer may be null.
            let ret = unsafe {
                libc::recvmmsg(
                    self.fd.as_raw_fd(),
                    batch.hdrs.as_mut_ptr(),
                    count as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            match cvt(ret) {
                Ok(n) => break n as usize,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted =>
                {
                    if waited
                        || timeout.is_zero()
                        || !poll_fd(self.fd.as_fd(), libc::POLLIN, timeout)?
                    {
                        return Ok(0);
                    }
                    waited = true;
                }
                Err(e) => return Err(e),
            }
        };
        let entries = batch.hdrs.iter().zip(batch.names.iter()).zip(batch.ctrls.iter());
        for (((hdr, name), ctrl), (buf, meta)) in
            entries.zip(bufs.iter_mut().zip(meta.iter_mut())).take(n)
        {
            let msg = &hdr.msg_hdr;
            // `msg_controllen` is a `size_t` on glibc but a `socklen_t` on musl.
            #[allow(clippy::unnecessary_cast)]
            let received = Received {
                len: hdr.msg_len as usize,
                truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
                name: name.0.get(..msg.msg_namelen as usize).unwrap_or_default(),
                ctrl: ctrl.0.get(..msg.msg_controllen as usize).unwrap_or_default(),
            };
            if buf.set_window(headroom, received.len).is_err() {
                buf.set_window(headroom, 0).unwrap_or_default();
            }
            meta.truncated = received.truncated;
            meta.len = buf.len();
            parse(&received, buf, meta);
        }
        Ok(n)
    }

    /// Sends every `(destination, payload)` with `sendmmsg`, [`BATCH`] at a time, from source
    /// address `src` if given (a `IP_PKTINFO`/`IPV6_PKTINFO` control message on each).
    fn send<'a, A>(
        &self,
        batch: &mut Batch,
        src: Option<IpAddr>,
        packets: impl IntoIterator<Item = (A, &'a [u8])>,
        mut encode: impl FnMut(A, &mut [u8; NAME_LEN]) -> io::Result<libc::socklen_t>,
    ) -> SendOutcome {
        let mut outcome = SendOutcome::default();
        let mut packets = packets.into_iter().peekable();
        while packets.peek().is_some() {
            let mut filled = 0;
            while filled < BATCH {
                let Some((dst, payload)) = packets.next() else { break };
                let Some(name) = batch.names.get_mut(filled) else { break };
                let name_len = match encode(dst, &mut name.0) {
                    Ok(len) => len as usize,
                    Err(e) => {
                        outcome.fail(e);
                        continue;
                    }
                };
                if let Some(iov) = batch.iovs.get_mut(filled) {
                    // The kernel only reads through this pointer.
                    iov.iov_base = payload.as_ptr().cast_mut().cast();
                    iov.iov_len = payload.len();
                }
                let ctrl_len = match (src, batch.ctrls.get_mut(filled)) {
                    (Some(src), Some(ctrl)) => encode_pktinfo(src, &mut ctrl.0),
                    _ => 0,
                };
                batch.link(filled, name_len, ctrl_len);
                filled += 1;
            }
            let mut off = 0;
            while off < filled {
                let Some(hdrs) = batch.hdrs.get_mut(off..filled) else { break };
                // SAFETY: headers `off..filled` point at iovecs over payload slices that live
                // for this call (borrowed from the caller's iterator items, `'a`), and at name
                // and control buffers in `batch`, with their lengths.
                let ret = unsafe {
                    libc::sendmmsg(
                        self.fd.as_raw_fd(),
                        hdrs.as_mut_ptr(),
                        hdrs.len() as libc::c_uint,
                        libc::MSG_DONTWAIT,
                    )
                };
                match cvt(ret) {
                    Ok(n) => {
                        off += n as usize;
                        outcome.sent += n as usize;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        match poll_fd(self.fd.as_fd(), libc::POLLOUT, SEND_WAIT) {
                            Ok(true) => {}
                            Ok(false) => {
                                for _ in off..filled {
                                    outcome.fail(io::Error::from(io::ErrorKind::WouldBlock));
                                }
                                off = filled;
                            }
                            Err(e) => {
                                outcome.fail(e);
                                off += 1;
                            }
                        }
                    }
                    // The datagram at `off` was refused: skip it, keep the rest.
                    Err(e) => {
                        outcome.fail(e);
                        off += 1;
                    }
                }
            }
        }
        outcome
    }
}

/// A raw IP socket for ESP (protocol 50), IPv4 or IPv6.
///
/// Receiving gets every ESP packet addressed to the bound address (or to any local address if
/// unbound); the kernel reassembles fragments first. Since the kernel has no ESP, a raw socket
/// is the only consumer and it sends no "protocol unreachable". For IPv4 the kernel delivers
/// the IP header, which [`EspSocket::recv_batch`] strips (the destination comes from it); for
/// IPv6 it delivers only the payload, and the destination comes from `IPV6_PKTINFO`.
/// Sending builds the outer IP header in the kernel (no `IP_HDRINCL`), with the bound address
/// as the source or, if unbound, the one routing picks.
#[derive(Debug)]
pub struct EspSocket {
    sock: Socket,
}

impl EspSocket {
    /// An IPv4 ESP socket, bound to `local` if given (then it sees only packets to `local`).
    pub fn open_v4(local: Option<Ipv4Addr>) -> io::Result<Self> {
        Self::open(false, local.map(IpAddr::V4))
    }

    /// An IPv6 ESP socket, bound to `local` if given.
    pub fn open_v6(local: Option<Ipv6Addr>) -> io::Result<Self> {
        Self::open(true, local.map(IpAddr::V6))
    }

    fn open(v6: bool, local: Option<IpAddr>) -> io::Result<Self> {
        let family = if v6 { "IPv6" } else { "IPv4" };
        let context =
            |e: io::Error| io::Error::new(e.kind(), format!("open {family} ESP socket: {e}"));
        let sock = Socket::new(v6, libc::SOCK_RAW, IPPROTO_ESP).map_err(context)?;
        if v6 {
            sock.opt(libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1).map_err(context)?;
        }
        if let Some(local) = local {
            sock.bind(SocketAddr::new(local, 0)).map_err(|e| {
                io::Error::new(e.kind(), format!("bind {family} ESP socket to {local}: {e}"))
            })?;
        }
        Ok(Self { sock })
    }

    /// Whether this is an IPv6 socket.
    pub fn is_ipv6(&self) -> bool {
        self.sock.v6
    }

    /// Receives up to `min(bufs.len(), meta.len(), BATCH)` ESP packets, waiting up to `timeout`
    /// for the first (not at all for a zero timeout). Each is read at `headroom` into its buffer;
    /// the window is then set to the ESP packet (for IPv4, after the IP header, whose length
    /// is validated), and `meta` gets its addresses. Returns how many arrived (0 on timeout).
    pub fn recv_batch(
        &self,
        batch: &mut Batch,
        bufs: &mut [PacketBuf],
        meta: &mut [RecvMeta<IpAddr>],
        headroom: usize,
        timeout: Duration,
    ) -> io::Result<usize> {
        let v6 = self.sock.v6;
        self.sock.recv(batch, bufs, meta, headroom, timeout, |rx, buf, meta| {
            if v6 {
                meta.src =
                    decode_sockaddr(rx.name).map_or(Ipv6Addr::UNSPECIFIED.into(), |a| a.ip());
                meta.dst = pktinfo_dst(rx.ctrl).unwrap_or(Ipv6Addr::UNSPECIFIED.into());
            } else {
                let (src, dst, ihl) = parse_ipv4_header(buf.data()).unwrap_or((
                    Ipv4Addr::UNSPECIFIED,
                    Ipv4Addr::UNSPECIFIED,
                    buf.len(),
                ));
                meta.src = src.into();
                meta.dst = dst.into();
                buf.pop_front(ihl).unwrap_or_default();
                meta.len = buf.len();
            }
        })
    }

    /// Sends ESP packets (payload only; the kernel adds the IP header), [`BATCH`] per system
    /// call. A destination of the wrong family fails that packet only.
    pub fn send_batch<'a>(
        &self,
        batch: &mut Batch,
        packets: impl IntoIterator<Item = (IpAddr, &'a [u8])>,
    ) -> SendOutcome {
        self.send_batch_from(batch, None, packets)
    }

    /// Like [`EspSocket::send_batch`], with source address `src` (one of ours) instead of the
    /// bound or routed one; `None` is the same as `send_batch`.
    pub fn send_batch_from<'a>(
        &self,
        batch: &mut Batch,
        src: Option<IpAddr>,
        packets: impl IntoIterator<Item = (IpAddr, &'a [u8])>,
    ) -> SendOutcome {
        let v6 = self.sock.v6;
        if let Some(err) = src.and_then(|src| family_error(v6, src)) {
            return fail_all(packets, err);
        }
        // Port 0: an IPv6 raw socket reads the port as the protocol and refuses any other.
        self.sock
            .send(batch, src, packets, |dst, name| encode_dst(v6, SocketAddr::new(dst, 0), name))
    }

    /// Sends one ESP packet to `dst`.
    pub fn send_to(&self, batch: &mut Batch, dst: IpAddr, packet: &[u8]) -> io::Result<()> {
        single(self.send_batch(batch, [(dst, packet)]))
    }

    /// Sets the kernel buffer sizes (see [`UdpSocket::set_buffer_sizes`]).
    pub fn set_buffer_sizes(&self, rcv: usize, snd: usize) -> io::Result<BufferSizes> {
        self.sock.set_buffer_sizes(rcv, snd)
    }

    /// Sets `SO_MARK` on outgoing packets (needs CAP_NET_ADMIN), so policy routing can keep
    /// our own outer packets out of the TUN (transport mode routes the peer's address into it).
    pub fn set_mark(&self, mark: u32) -> io::Result<()> {
        self.sock.opt(libc::SOL_SOCKET, SO_MARK, mark as libc::c_int)
    }

    /// Waits until a packet can be read, up to `timeout`. `Ok(false)` on timeout.
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        poll_fd(self.sock.fd.as_fd(), libc::POLLIN, timeout)
    }
}

/// A UDP socket for ESP-in-UDP (RFC 3948, port 4500) and IKE (port 500).
///
/// The destination address of every datagram is reported (`IP_PKTINFO`/`IPV6_RECVPKTINFO`), so
/// a host with several addresses can answer from the one that was used. An IPv6 socket is
/// IPv6-only (`IPV6_V6ONLY`); open one socket per family.
#[derive(Debug)]
pub struct UdpSocket {
    sock: Socket,
    local: SocketAddr,
}

impl UdpSocket {
    /// Binds to `addr` (port 0 picks a free port; see [`UdpSocket::local_addr`]).
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let context =
            |e: io::Error| io::Error::new(e.kind(), format!("bind UDP socket to {addr}: {e}"));
        let v6 = addr.is_ipv6();
        let sock = Socket::new(v6, libc::SOCK_DGRAM, 0).map_err(context)?;
        if v6 {
            sock.opt(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1).map_err(context)?;
            sock.opt(libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1).map_err(context)?;
        } else {
            sock.opt(libc::IPPROTO_IP, libc::IP_PKTINFO, 1).map_err(context)?;
        }
        sock.bind(addr).map_err(context)?;
        let local = sock.local_addr().map_err(context)?;
        Ok(Self { sock, local })
    }

    /// The bound address and port.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Receives up to `min(bufs.len(), meta.len(), BATCH)` datagrams, waiting up to `timeout`
    /// for the first (not at all for a zero timeout). Each payload is read at `headroom` into
    /// its buffer, whose window is set to it. Returns how many arrived (0 on timeout).
    pub fn recv_batch(
        &self,
        batch: &mut Batch,
        bufs: &mut [PacketBuf],
        meta: &mut [RecvMeta<SocketAddr>],
        headroom: usize,
        timeout: Duration,
    ) -> io::Result<usize> {
        let unspecified = self.local.ip();
        self.sock.recv(batch, bufs, meta, headroom, timeout, |rx, _buf, meta| {
            meta.src = decode_sockaddr(rx.name).unwrap_or(SocketAddr::new(unspecified, 0));
            meta.dst = pktinfo_dst(rx.ctrl).unwrap_or(unspecified);
        })
    }

    /// Sends datagrams, [`BATCH`] per system call. A destination of the wrong family fails that
    /// datagram only.
    pub fn send_batch<'a>(
        &self,
        batch: &mut Batch,
        packets: impl IntoIterator<Item = (SocketAddr, &'a [u8])>,
    ) -> SendOutcome {
        self.send_batch_from(batch, None, packets)
    }

    /// Like [`UdpSocket::send_batch`], with source address `src` (one of ours) instead of the
    /// routed one: an IKE responder on a host with several addresses answers from the address
    /// the request came to ([`RecvMeta::dst`]). The socket must be bound to the wildcard address
    /// or to `src`. `None` is the same as `send_batch`.
    pub fn send_batch_from<'a>(
        &self,
        batch: &mut Batch,
        src: Option<IpAddr>,
        packets: impl IntoIterator<Item = (SocketAddr, &'a [u8])>,
    ) -> SendOutcome {
        let v6 = self.sock.v6;
        if let Some(err) = src.and_then(|src| family_error(v6, src)) {
            return fail_all(packets, err);
        }
        self.sock.send(batch, src, packets, |dst, name| encode_dst(v6, dst, name))
    }

    /// Sends one datagram to `dst`.
    pub fn send_to(&self, batch: &mut Batch, dst: SocketAddr, payload: &[u8]) -> io::Result<()> {
        single(self.send_batch(batch, [(dst, payload)]))
    }

    /// Sets the kernel receive and send buffer sizes: `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE` first
    /// (root or CAP_NET_ADMIN; not capped by `net.core.rmem_max`, which cannot even be raised
    /// inside a network namespace on this kernel), else `SO_RCVBUF`/`SO_SNDBUF`. Returns what
    /// the kernel now reports. The lab used 64 MiB with no receive-buffer loss.
    pub fn set_buffer_sizes(&self, rcv: usize, snd: usize) -> io::Result<BufferSizes> {
        self.sock.set_buffer_sizes(rcv, snd)
    }

    /// Sets `SO_MARK` on outgoing packets (needs CAP_NET_ADMIN), for policy routing.
    pub fn set_mark(&self, mark: u32) -> io::Result<()> {
        self.sock.opt(libc::SOL_SOCKET, SO_MARK, mark as libc::c_int)
    }

    /// Waits until a datagram can be read, up to `timeout`. `Ok(false)` on timeout.
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        poll_fd(self.sock.fd.as_fd(), libc::POLLIN, timeout)
    }
}

macro_rules! fd_impls {
    ($($ty:ty),*) => {$(
        impl AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.sock.fd.as_fd()
            }
        }
        impl AsRawFd for $ty {
            fn as_raw_fd(&self) -> RawFd {
                self.sock.fd.as_raw_fd()
            }
        }
    )*};
}
fd_impls!(EspSocket, UdpSocket);

/// The result of a one-packet send.
fn single(outcome: SendOutcome) -> io::Result<()> {
    match outcome.first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Encodes `dst` for a socket of family `v6`, refusing the other family.
fn encode_dst(v6: bool, dst: SocketAddr, name: &mut [u8; NAME_LEN]) -> io::Result<libc::socklen_t> {
    match family_error(v6, dst.ip()) {
        Some(err) => Err(err),
        None => Ok(encode_sockaddr(dst, name)),
    }
}

/// An error if `addr` is not of the socket's family.
fn family_error(v6: bool, addr: IpAddr) -> Option<io::Error> {
    (addr.is_ipv6() != v6).then(|| {
        let family = if v6 { "IPv6" } else { "IPv4" };
        io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: not an {family} address"))
    })
}

/// Fails every packet with (a copy of) `err`.
fn fail_all<T>(packets: impl IntoIterator<Item = T>, err: io::Error) -> SendOutcome {
    let mut outcome = SendOutcome::default();
    for _ in packets {
        outcome.fail(io::Error::new(err.kind(), err.to_string()));
    }
    outcome
}

/// Writes an `IP_PKTINFO` (`ipi_spec_dst` = `src`) or `IPV6_PKTINFO` (`ipi6_addr` = `src`)
/// control message choosing the source address of a send; returns its length.
fn encode_pktinfo(src: IpAddr, out: &mut [u8; CTRL_LEN]) -> usize {
    *out = [0; CTRL_LEN];
    let (level, ty, data_len) = match src {
        IpAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_PKTINFO, 12),
        IpAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, 20),
    };
    let len = CMSG_HDR + data_len;
    let (hdr, data) = out.split_at_mut(CMSG_HDR);
    let (hdr_len, rest) = hdr.split_at_mut(WORD);
    hdr_len.copy_from_slice(&len.to_ne_bytes());
    let (hdr_level, hdr_ty) = rest.split_at_mut(4);
    hdr_level.copy_from_slice(&level.to_ne_bytes());
    if let Some(hdr_ty) = hdr_ty.get_mut(..4) {
        hdr_ty.copy_from_slice(&ty.to_ne_bytes());
    }
    match src {
        // struct in_pktinfo { int ipi_ifindex; struct in_addr ipi_spec_dst, ipi_addr; }
        IpAddr::V4(a) => data.get_mut(4..8).map(|d| d.copy_from_slice(&a.octets())),
        // struct in6_pktinfo { struct in6_addr ipi6_addr; int ipi6_ifindex; }
        IpAddr::V6(a) => data.get_mut(..16).map(|d| d.copy_from_slice(&a.octets())),
    };
    len.next_multiple_of(WORD)
}

/// Writes `addr` as a kernel `sockaddr_in`/`sockaddr_in6` and returns its length. The layout is
/// the kernel ABI: family in host order, port in network order, then the address.
fn encode_sockaddr(addr: SocketAddr, out: &mut [u8; NAME_LEN]) -> libc::socklen_t {
    *out = [0; NAME_LEN];
    let (fam, rest) = out.split_at_mut(2);
    let (port, rest) = rest.split_at_mut(2);
    port.copy_from_slice(&addr.port().to_be_bytes());
    match addr {
        SocketAddr::V4(a) => {
            fam.copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            if let Some(ip) = rest.get_mut(..4) {
                ip.copy_from_slice(&a.ip().octets());
            }
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            fam.copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            let (flow, rest) = rest.split_at_mut(4);
            flow.copy_from_slice(&a.flowinfo().to_be_bytes());
            let (ip, scope) = rest.split_at_mut(16);
            ip.copy_from_slice(&a.ip().octets());
            if let Some(scope) = scope.get_mut(..4) {
                scope.copy_from_slice(&a.scope_id().to_ne_bytes());
            }
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Reads a kernel `sockaddr_in`/`sockaddr_in6`.
fn decode_sockaddr(name: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes(name.get(..2)?.try_into().ok()?);
    let port = u16::from_be_bytes(name.get(2..4)?.try_into().ok()?);
    if family == libc::AF_INET as u16 {
        let ip: [u8; 4] = name.get(4..8)?.try_into().ok()?;
        Some(SocketAddrV4::new(ip.into(), port).into())
    } else if family == libc::AF_INET6 as u16 {
        let flow = u32::from_be_bytes(name.get(4..8)?.try_into().ok()?);
        let ip: [u8; 16] = name.get(8..24)?.try_into().ok()?;
        let scope = u32::from_ne_bytes(name.get(24..28)?.try_into().ok()?);
        Some(SocketAddrV6::new(ip.into(), port, flow, scope).into())
    } else {
        None
    }
}

/// The destination address from an `IP_PKTINFO` (`ipi_addr`) or `IPV6_PKTINFO` (`ipi6_addr`)
/// control message. Parsed by hand on the kernel ABI: `cmsghdr` is `{ size_t len; int level;
/// int type; }`, data and each header aligned to `size_t`.
fn pktinfo_dst(ctrl: &[u8]) -> Option<IpAddr> {
    const HDR: usize = CMSG_HDR;
    let mut rest = ctrl;
    while rest.len() >= HDR {
        let len = usize::from_ne_bytes(rest.get(..WORD)?.try_into().ok()?);
        let level = i32::from_ne_bytes(rest.get(WORD..WORD + 4)?.try_into().ok()?);
        let ty = i32::from_ne_bytes(rest.get(WORD + 4..WORD + 8)?.try_into().ok()?);
        let data = rest.get(HDR..len)?;
        if level == libc::IPPROTO_IP && ty == libc::IP_PKTINFO {
            // struct in_pktinfo { int ipi_ifindex; struct in_addr ipi_spec_dst, ipi_addr; }
            let ip: [u8; 4] = data.get(8..12)?.try_into().ok()?;
            return Some(IpAddr::from(ip));
        }
        if level == libc::IPPROTO_IPV6 && ty == libc::IPV6_PKTINFO {
            // struct in6_pktinfo { struct in6_addr ipi6_addr; int ipi6_ifindex; }
            let ip: [u8; 16] = data.get(..16)?.try_into().ok()?;
            return Some(IpAddr::from(ip));
        }
        rest = rest.get(len.next_multiple_of(WORD)..)?;
    }
    None
}

/// Source, destination and header length of an IPv4 header (RFC 791), or `None` if it does not
/// parse (not version 4, IHL below 5, or longer than the packet).
fn parse_ipv4_header(packet: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, usize)> {
    let first = *packet.first()?;
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < 20 || ihl > packet.len() {
        return None;
    }
    let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
    let dst: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
    Some((src.into(), dst.into(), ihl))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sockaddr_round_trip() {
        let addrs: [SocketAddr; 3] = [
            "192.0.2.1:4500".parse().unwrap(),
            "[2001:db8::1]:500".parse().unwrap(),
            SocketAddrV6::new(Ipv6Addr::LOCALHOST, 1, 7, 3).into(),
        ];
        for addr in addrs {
            let mut name = NameBuf([0xaa; NAME_LEN]);
            let len = encode_sockaddr(addr, &mut name.0) as usize;
            assert_eq!(decode_sockaddr(name.0.get(..len).unwrap_or_default()), Some(addr));
        }
        assert_eq!(decode_sockaddr(&[0; 4]), None);
    }

    #[test]
    fn ipv4_header_is_validated() {
        let mut hdr = [0u8; 24];
        hdr[0] = 0x46; // IHL 6: 24 bytes with options
        hdr[12..16].copy_from_slice(&[10, 0, 0, 1]);
        hdr[16..20].copy_from_slice(&[10, 0, 0, 2]);
        assert_eq!(
            parse_ipv4_header(&hdr),
            Some((Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), 24))
        );
        assert_eq!(parse_ipv4_header(&hdr[..20]), None, "IHL longer than the packet");
        hdr[0] = 0x44;
        assert_eq!(parse_ipv4_header(&hdr), None, "IHL below 5");
        hdr[0] = 0x65;
        assert_eq!(parse_ipv4_header(&hdr), None, "version 6");
        assert_eq!(parse_ipv4_header(&[]), None);
    }

    #[test]
    fn pktinfo_parsing_is_bounded() {
        // A truncated or lying cmsg length must not panic.
        let mut ctrl = [0u8; 40];
        ctrl[..8].copy_from_slice(&1000usize.to_ne_bytes());
        assert_eq!(pktinfo_dst(&ctrl), None);
        ctrl[..8].copy_from_slice(&36usize.to_ne_bytes());
        ctrl[8..12].copy_from_slice(&libc::IPPROTO_IPV6.to_ne_bytes());
        ctrl[12..16].copy_from_slice(&libc::IPV6_PKTINFO.to_ne_bytes());
        ctrl[16..32].copy_from_slice(&Ipv6Addr::LOCALHOST.octets());
        assert_eq!(pktinfo_dst(&ctrl), Some(Ipv6Addr::LOCALHOST.into()));
        assert_eq!(pktinfo_dst(&[]), None);
    }

    #[test]
    fn ipv6_pktinfo_round_trip() {
        let mut ctrl = [0u8; CTRL_LEN];
        let src: IpAddr = "2001:db8::7".parse().unwrap();
        let len = encode_pktinfo(src, &mut ctrl);
        assert_eq!(len, CMSG_HDR + 24, "in6_pktinfo is 20 bytes, padded to 24");
        assert_eq!(pktinfo_dst(&ctrl[..len]), Some(src));
    }
}
