//! The operating-system boundary of the userspace data plane (Linux only).
//!
//! - [`Tun`]: a TUN device (`/dev/net/tun`, `IFF_TUN | IFF_NO_PI`) that reads and writes whole IP
//!   packets straight into [`PacketBuf`](ferroswan_proto::esp::PacketBuf)s.
//! - [`EspSocket`]: a raw IP socket for protocol 50 (IPv4 or IPv6); [`UdpSocket`]: UDP for
//!   NAT-T (RFC 3948, port 4500) and IKE. Both receive with `recvmmsg` and send with `sendmmsg`
//!   through a reusable [`Batch`], so the packet path neither allocates nor copies, and both size
//!   their kernel buffers themselves ([`BufferSizes`]): buffer overflow at the receiving socket
//!   is the main loss source of userspace tunnels (lab notes §6).
//! - [`Netlink`]: a small synchronous rtnetlink client (routes, addresses, link up), and
//!   [`RouteGuard`] and [`RuleGuard`], which remove the routes and policy-routing rules they
//!   added when dropped.
//!
//! Every descriptor is non-blocking; waits are `poll(2)` with a timeout, so a worker thread owns
//! its loop and can check for shutdown between batches. Devices, sockets and netlink requests act
//! on the network namespace of the *thread* that creates them.
//!
//! This is the only module of the workspace that may use `unsafe`: each block is a system call or
//! a plain C struct, with a `// SAFETY:` comment saying why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

pub mod ifaddr;
pub mod netlink;
pub mod socket;
pub mod tun;

#[cfg(test)]
mod tests;

pub use netlink::{IpFamily, Netlink, NetlinkError, Route, RouteGuard, Rule, RuleGuard};
pub use socket::{BATCH, Batch, BufferSizes, EspSocket, RecvMeta, UdpSocket};
pub use tun::Tun;

/// What a batched send did. Packets are independent: one that the kernel refuses (no route, too
/// big, …) is counted and skipped, and the rest of the batch still goes out.
#[derive(Debug, Default)]
pub struct SendOutcome {
    /// Packets the kernel accepted.
    pub sent: usize,
    /// Packets the kernel refused, or that could not be queued before the send timeout.
    pub failed: usize,
    /// The first error, for the log (the counters are `failed`).
    pub first_error: Option<io::Error>,
}

impl SendOutcome {
    fn fail(&mut self, err: io::Error) {
        self.failed += 1;
        if self.first_error.is_none() {
            self.first_error = Some(err);
        }
    }
}

/// Converts a `-1`-on-error C return value.
fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// Converts a `-1`-on-error `ssize_t` return value.
fn cvt_size(ret: isize) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// `poll(2)` timeout in milliseconds: rounded up, so a sub-millisecond wait does not spin.
fn timeout_ms(timeout: Duration) -> libc::c_int {
    let ms = timeout.as_nanos().div_ceil(1_000_000);
    libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
}

/// Waits until `fd` has one of `events`, up to `timeout`. `Ok(false)` on timeout or on a signal.
fn poll_fd(fd: BorrowedFd<'_>, events: libc::c_short, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events, revents: 0 };
    // SAFETY: `pfd` is a valid, exclusively borrowed pollfd for the whole call and nfds is 1.
    let ret = unsafe { libc::poll(&mut pfd, 1, timeout_ms(timeout)) };
    match cvt(ret) {
        Ok(n) => Ok(n > 0),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(e),
    }
}

/// Sets an `int` socket option.
fn setsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value points at a live c_int and the length is its size.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    cvt(ret).map(drop)
}

/// Reads an `int` socket option.
fn getsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len are live and writable; len says how much the kernel may write.
    let ret =
        unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, (&raw mut value).cast(), &mut len) };
    cvt(ret).map(|_| value)
}

/// Sets `O_NONBLOCK` on a descriptor.
fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we borrow; no pointers are involved.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) }).map(drop)
}
