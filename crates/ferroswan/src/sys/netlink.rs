//! A small synchronous rtnetlink (`NETLINK_ROUTE`) client: routes (in the main table or one of
//! our own), policy-routing rules, addresses, link state.
//!
//! Each request is one message with `NLM_F_ACK`; the call blocks (up to [`ACK_TIMEOUT`]) for the
//! kernel's acknowledgement and turns a negative one into an [`io::Error`] that names the
//! operation, carries the errno's kind, and wraps a [`NetlinkError`] with the kernel's extended
//! message when it sent one (`NETLINK_EXT_ACK`), e.g. `add route 10.2.0.0/16 dev ferro0: File
//! exists (os error 17)`.

use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::{cvt, cvt_size, setsockopt_int};

/// How long a request waits for the kernel's acknowledgement.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// The route protocol (`rtm_protocol`) of routes we install, so they are ours to delete and
/// can be found after a crash: `ip route show proto 245`, `ip route flush proto 245`.
pub const ROUTE_PROTOCOL: u8 = 245;

/// The main routing table (`ip route show table main`).
pub const MAIN_TABLE: u32 = 254;

/// The routing table the daemon puts its routes into the TUN in: `0x66657272` ("ferr" in ASCII,
/// 1717924466 in decimal as `ip rule` prints it). Looked up for unmarked packets only (see
/// [`RULE_PRIORITY`]), so that the daemon's own marked ESP, ESP-in-UDP and IKE packets to a peer
/// whose address is routed into the TUN (transport mode, or a tunnel whose remote selectors cover
/// the peer) use the main table and leave through the real interface instead of looping.
pub const POLICY_TABLE: u32 = 0x6665_7272;

/// The firewall mark (`SO_MARK`) on every socket of the daemon, compared under
/// [`SOCKET_MARK_MASK`]; the same value as [`POLICY_TABLE`] so that `ip rule` output is easy to
/// tie together.
pub const SOCKET_MARK: u32 = 0x6665_7272;

/// The mask the rule compares [`SOCKET_MARK`] under (all bits).
pub const SOCKET_MARK_MASK: u32 = u32::MAX;

/// The priority of our rule `not fwmark SOCKET_MARK lookup POLICY_TABLE`: after the `local`
/// table (0), so local addresses stay local, and well before `main` (32766), leaving room for
/// an administrator's rules that must come first (strongSwan uses 220 for its table 220).
/// `ip rule show pref 1000`.
pub const RULE_PRIORITY: u32 = 1000;

// From linux/netlink.h and linux/rtnetlink.h (stable kernel ABI).
const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_EXT_ACK: libc::c_int = 11;
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_ACK: u16 = 0x04;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_NEWRULE: u16 = 32;
const RTM_DELRULE: u16 = 33;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_F_NODAD: u8 = 0x02;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_PREFSRC: u16 = 7;
const RTA_TABLE: u16 = 15;
const RT_TABLE_UNSPEC: u8 = 0;
// From linux/fib_rules.h.
const FRA_PRIORITY: u16 = 6;
const FRA_FWMARK: u16 = 10;
const FRA_TABLE: u16 = 15;
const FRA_FWMASK: u16 = 16;
const FRA_PROTOCOL: u16 = 21;
const FRA_IP_PROTO: u16 = 22;
const FRA_SPORT_RANGE: u16 = 23;
const FR_ACT_TO_TBL: u8 = 1;
const FIB_RULE_INVERT: u32 = 0x02;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RT_SCOPE_NOWHERE: u8 = 255;
const RTN_UNICAST: u8 = 1;

/// A rejected netlink request: the operation, the kernel's errno and its extended message.
/// Reach it from the `io::Error` with `err.get_ref().and_then(|e| e.downcast_ref())`.
#[derive(Debug)]
pub struct NetlinkError {
    op: String,
    errno: i32,
    message: Option<String>,
}

impl NetlinkError {
    /// The kernel's errno (positive, e.g. `libc::EEXIST`).
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// The operation, e.g. `add route 10.2.0.0/16 dev ferro0`.
    pub fn op(&self) -> &str {
        &self.op
    }
}

impl fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, io::Error::from_raw_os_error(self.errno))?;
        if let Some(message) = &self.message {
            write!(f, " ({message})")?;
        }
        Ok(())
    }
}

impl std::error::Error for NetlinkError {}

/// The errno of an error from this module, if the kernel sent one.
pub fn errno_of(err: &io::Error) -> Option<i32> {
    err.get_ref().and_then(|e| e.downcast_ref::<NetlinkError>()).map(NetlinkError::errno)
}

/// A route to a prefix through an interface (no gateway: the TUN is point-to-point), in routing
/// table `table`, with protocol [`ROUTE_PROTOCOL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// Destination prefix (host bits are cleared before the request).
    pub dst: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// Outgoing interface.
    pub ifindex: u32,
    /// Preferred source address for traffic this route carries (`src` in `ip route`).
    pub src: Option<IpAddr>,
    /// The routing table: [`MAIN_TABLE`], [`POLICY_TABLE`] or any other (`table` in `ip route`).
    pub table: u32,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dst = mask(self.dst, self.prefix_len);
        write!(f, "{dst}/{} dev {}", self.prefix_len, link_name(self.ifindex))?;
        if let Some(src) = self.src {
            write!(f, " src {src}")?;
        }
        if self.table != MAIN_TABLE {
            write!(f, " table {}", self.table)?;
        }
        Ok(())
    }
}

/// An IP family, for what is per family without an address to tell it (rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpFamily {
    /// IPv4 (`ip -4 rule`).
    V4,
    /// IPv6 (`ip -6 rule`).
    V6,
}

impl IpFamily {
    /// The family of `addr`.
    pub fn of(addr: IpAddr) -> Self {
        if addr.is_ipv4() { Self::V4 } else { Self::V6 }
    }

    fn af(self) -> u8 {
        match self {
            Self::V4 => libc::AF_INET as u8,
            Self::V6 => libc::AF_INET6 as u8,
        }
    }
}

/// A policy-routing rule that looks a table up for packets by firewall mark, IP protocol and
/// source port: `ip rule add [not] [fwmark MARK/MASK] [ipproto P] [sport S] lookup TABLE
/// pref PRIORITY proto 245`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Which family's rule list it goes into.
    pub family: IpFamily,
    /// Its priority (`pref`): lower numbers are consulted first.
    pub priority: u32,
    /// The firewall mark compared (`SO_MARK` of the sending socket, or set by netfilter).
    pub fwmark: u32,
    /// The bits of the mark compared; 0: the mark is not compared.
    pub fwmask: u32,
    /// Matches only this IP protocol (`ipproto`, kernels since 4.17).
    pub ip_proto: Option<u8>,
    /// Matches only this source port (`sport`; with `ip_proto` TCP, UDP or SCTP).
    pub src_port: Option<u16>,
    /// Inverts the whole match (`not …`).
    pub invert: bool,
    /// The table looked up; when it has no route for the destination, the next rule is tried.
    pub table: u32,
}

impl Rule {
    /// The daemon's rule for `family`: packets without [`SOCKET_MARK`] look up [`POLICY_TABLE`]
    /// first, at [`RULE_PRIORITY`].
    pub fn ferroswan(family: IpFamily) -> Self {
        Self {
            family,
            priority: RULE_PRIORITY,
            fwmark: SOCKET_MARK,
            fwmask: SOCKET_MARK_MASK,
            ip_proto: None,
            src_port: None,
            invert: true,
            table: POLICY_TABLE,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let family = match self.family {
            IpFamily::V4 => "-4",
            IpFamily::V6 => "-6",
        };
        write!(f, "{family} rule pref {}", self.priority)?;
        if self.invert {
            write!(f, " not")?;
        }
        if self.fwmask != 0 {
            write!(f, " fwmark {:#x}/{:#x}", self.fwmark, self.fwmask)?;
        }
        if let Some(p) = self.ip_proto {
            write!(f, " ipproto {p}")?;
        }
        if let Some(p) = self.src_port {
            write!(f, " sport {p}")?;
        }
        match self.table {
            MAIN_TABLE => write!(f, " lookup main"),
            t => write!(f, " lookup {t}"),
        }
    }
}

/// A `NETLINK_ROUTE` socket in the calling thread's network namespace.
#[derive(Debug)]
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
    req: Vec<u8>,
    resp: Vec<u8>,
}

impl Netlink {
    /// Opens the socket (extended acks on, request echo in error acks off).
    pub fn open() -> io::Result<Self> {
        let context =
            |e: io::Error| io::Error::new(e.kind(), format!("open rtnetlink socket: {e}"));
        // SAFETY: plain socket(2) call; no pointers.
        let fd = cvt(unsafe {
            libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE)
        })
        .map_err(context)?;
        // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // Both are optional comforts (kernels since 4.3 / 4.12); errors still work without.
        let _ = setsockopt_int(fd.as_fd(), libc::SOL_NETLINK, NETLINK_CAP_ACK, 1);
        let _ = setsockopt_int(fd.as_fd(), libc::SOL_NETLINK, NETLINK_EXT_ACK, 1);
        let tv = libc::timeval { tv_sec: ACK_TIMEOUT.as_secs() as libc::time_t, tv_usec: 0 };
        // SAFETY: the option value points at a live timeval and the length is its size.
        cvt(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        })
        .map_err(context)?;
        Ok(Self { fd, seq: 0, req: Vec::with_capacity(256), resp: vec![0; 16 * 1024] })
    }

    /// The index of interface `name` (`if_nametoindex`).
    pub fn link_index(&self, name: &str) -> io::Result<u32> {
        let bad =
            || io::Error::new(io::ErrorKind::InvalidInput, format!("bad interface name {name:?}"));
        let cname = CString::new(name).map_err(|_| bad())?;
        // SAFETY: `cname` is a valid NUL-terminated string for the call.
        let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if index == 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("link index of {name}: {e}")));
        }
        Ok(index)
    }

    /// Brings interface `ifindex` up (`RTM_NEWLINK` changing only `IFF_UP`).
    pub fn set_link_up(&mut self, ifindex: u32) -> io::Result<()> {
        self.begin(RTM_NEWLINK, 0);
        // struct ifinfomsg { u8 family, pad; u16 type; i32 index; u32 flags, change; }
        self.req.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        self.req.extend_from_slice(&ifindex.to_ne_bytes());
        self.req.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
        self.req.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
        self.transact(|| format!("set link {} up", link_name(ifindex)))
    }

    /// Adds `addr/prefix_len` to interface `ifindex` (for IPv6 without duplicate address
    /// detection, so the address is usable at once instead of "tentative" for a second).
    pub fn add_address(&mut self, ifindex: u32, addr: IpAddr, prefix_len: u8) -> io::Result<()> {
        self.address(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifindex, addr, prefix_len).map_err(
            |e| e.with_op(|| format!("add address {addr}/{prefix_len} dev {}", link_name(ifindex))),
        )
    }

    /// Removes `addr/prefix_len` from interface `ifindex`.
    pub fn del_address(&mut self, ifindex: u32, addr: IpAddr, prefix_len: u8) -> io::Result<()> {
        self.address(RTM_DELADDR, 0, ifindex, addr, prefix_len).map_err(|e| {
            e.with_op(|| format!("delete address {addr}/{prefix_len} dev {}", link_name(ifindex)))
        })
    }

    fn address(
        &mut self,
        ty: u16,
        flags: u16,
        ifindex: u32,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<(), Rejected> {
        check_prefix(addr, prefix_len).map_err(Rejected::Local)?;
        self.begin(ty, flags);
        // struct ifaddrmsg { u8 family, prefixlen, flags, scope; u32 index; }
        let nodad = if addr.is_ipv6() { IFA_F_NODAD } else { 0 };
        self.req.extend_from_slice(&[family(addr), prefix_len, nodad, RT_SCOPE_UNIVERSE]);
        self.req.extend_from_slice(&ifindex.to_ne_bytes());
        self.attr_addr(IFA_LOCAL, addr);
        self.attr_addr(IFA_ADDRESS, addr);
        self.exchange()
    }

    /// Adds a route to `dst/prefix_len` through interface `ifindex`, optionally with a preferred
    /// source address. The interface must be up (else "Network is down").
    pub fn add_route(
        &mut self,
        dst: IpAddr,
        prefix_len: u8,
        ifindex: u32,
        src: Option<IpAddr>,
    ) -> io::Result<()> {
        self.insert_route(&Route { dst, prefix_len, ifindex, src, table: MAIN_TABLE })
    }

    /// Adds `route` to its table (an error if the table has a route to the same prefix and
    /// metric already).
    pub fn insert_route(&mut self, route: &Route) -> io::Result<()> {
        self.route(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, route)
            .map_err(|e| e.with_op(|| format!("add route {route}")))
    }

    /// Deletes a route that [`Netlink::add_route`] added (it matches on our route protocol, so
    /// it never deletes someone else's route to the same prefix).
    pub fn del_route(
        &mut self,
        dst: IpAddr,
        prefix_len: u8,
        ifindex: u32,
        src: Option<IpAddr>,
    ) -> io::Result<()> {
        self.remove_route(&Route { dst, prefix_len, ifindex, src, table: MAIN_TABLE })
    }

    /// Deletes `route` from its table, matching on our route protocol like
    /// [`Netlink::del_route`].
    pub fn remove_route(&mut self, route: &Route) -> io::Result<()> {
        self.route(RTM_DELROUTE, 0, route)
            .map_err(|e| e.with_op(|| format!("delete route {route}")))
    }

    /// Adds `rule` (an error, `EEXIST`, if an identical rule exists).
    pub fn add_rule(&mut self, rule: &Rule) -> io::Result<()> {
        self.rule(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, rule)
            .map_err(|e| e.with_op(|| format!("add {rule}")))
    }

    /// Deletes one rule matching `rule` that we added (the match includes our protocol,
    /// [`ROUTE_PROTOCOL`], so someone else's identical rule stays). `ENOENT` when there is none.
    pub fn del_rule(&mut self, rule: &Rule) -> io::Result<()> {
        self.rule(RTM_DELRULE, 0, rule).map_err(|e| e.with_op(|| format!("delete {rule}")))
    }

    /// Deletes every rule matching `rule` that we added, e.g. leftovers of a daemon that was
    /// killed (rules, unlike routes, do not go with the TUN device). Returns how many went.
    pub fn purge_rule(&mut self, rule: &Rule) -> io::Result<usize> {
        let mut removed = 0;
        loop {
            match self.del_rule(rule) {
                Ok(()) => removed += 1,
                Err(e) if errno_of(&e) == Some(libc::ENOENT) => return Ok(removed),
                Err(e) => return Err(e),
            }
            // Duplicates cannot be added with NLM_F_EXCL; a handful is already suspicious.
            if removed >= 64 {
                return Ok(removed);
            }
        }
    }

    fn rule(&mut self, ty: u16, flags: u16, rule: &Rule) -> Result<(), Rejected> {
        self.begin(ty, flags);
        // struct fib_rule_hdr { u8 family, dst_len, src_len, tos, table, res1, res2, action;
        //                       u32 flags; }
        let table = u8::try_from(rule.table).unwrap_or(RT_TABLE_UNSPEC);
        self.req.extend_from_slice(&[rule.family.af(), 0, 0, 0, table, 0, 0, FR_ACT_TO_TBL]);
        let rule_flags = if rule.invert { FIB_RULE_INVERT } else { 0 };
        self.req.extend_from_slice(&rule_flags.to_ne_bytes());
        self.attr(FRA_PRIORITY, &rule.priority.to_ne_bytes());
        if rule.fwmask != 0 {
            self.attr(FRA_FWMARK, &rule.fwmark.to_ne_bytes());
            self.attr(FRA_FWMASK, &rule.fwmask.to_ne_bytes());
        }
        if let Some(p) = rule.ip_proto {
            self.attr(FRA_IP_PROTO, &[p]);
        }
        if let Some(p) = rule.src_port {
            // struct fib_rule_port_range { u16 start, end; }
            let mut range = [0u8; 4];
            range[..2].copy_from_slice(&p.to_ne_bytes());
            range[2..].copy_from_slice(&p.to_ne_bytes());
            self.attr(FRA_SPORT_RANGE, &range);
        }
        self.attr(FRA_TABLE, &rule.table.to_ne_bytes());
        self.attr(FRA_PROTOCOL, &[ROUTE_PROTOCOL]);
        self.exchange()
    }

    fn route(&mut self, ty: u16, flags: u16, route: &Route) -> Result<(), Rejected> {
        check_prefix(route.dst, route.prefix_len).map_err(Rejected::Local)?;
        if let Some(src) = route.src
            && src.is_ipv6() != route.dst.is_ipv6()
        {
            return Err(Rejected::Local(io::Error::new(
                io::ErrorKind::InvalidInput,
                "source and destination are of different families",
            )));
        }
        let add = ty == RTM_NEWROUTE;
        let scope = match (add, route.dst) {
            // A delete with scope "nowhere" matches a route of any scope.
            (false, _) => RT_SCOPE_NOWHERE,
            // A route without gateway is on-link, as `ip route add … dev X` makes it.
            (true, IpAddr::V4(_)) => RT_SCOPE_LINK,
            (true, IpAddr::V6(_)) => RT_SCOPE_UNIVERSE,
        };
        self.begin(ty, flags);
        // struct rtmsg { u8 family, dst_len, src_len, tos, table, protocol, scope, type;
        //                u32 flags; } (tables above 255 only fit in RTA_TABLE)
        self.req.extend_from_slice(&[
            family(route.dst),
            route.prefix_len,
            0,
            0,
            u8::try_from(route.table).unwrap_or(RT_TABLE_UNSPEC),
            ROUTE_PROTOCOL,
            scope,
            if add { RTN_UNICAST } else { 0 },
        ]);
        self.req.extend_from_slice(&0u32.to_ne_bytes());
        if route.prefix_len > 0 {
            self.attr_addr(RTA_DST, mask(route.dst, route.prefix_len));
        }
        self.attr(RTA_OIF, &route.ifindex.to_ne_bytes());
        if let Some(src) = route.src {
            self.attr_addr(RTA_PREFSRC, src);
        }
        self.attr(RTA_TABLE, &route.table.to_ne_bytes());
        self.exchange()
    }

    /// Starts a request: a header whose length [`Netlink::exchange`] fills in.
    fn begin(&mut self, ty: u16, flags: u16) {
        self.seq = self.seq.wrapping_add(1);
        self.req.clear();
        self.req.extend_from_slice(&0u32.to_ne_bytes());
        self.req.extend_from_slice(&ty.to_ne_bytes());
        self.req.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        self.req.extend_from_slice(&self.seq.to_ne_bytes());
        self.req.extend_from_slice(&0u32.to_ne_bytes());
    }

    /// Appends a route attribute (`struct rtattr { u16 len, type; }` + data, padded to 4).
    fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = (4 + data.len()) as u16;
        self.req.extend_from_slice(&len.to_ne_bytes());
        self.req.extend_from_slice(&ty.to_ne_bytes());
        self.req.extend_from_slice(data);
        self.req.resize(self.req.len().next_multiple_of(4), 0);
    }

    fn attr_addr(&mut self, ty: u16, addr: IpAddr) {
        match addr {
            IpAddr::V4(a) => self.attr(ty, &a.octets()),
            IpAddr::V6(a) => self.attr(ty, &a.octets()),
        }
    }

    /// [`Netlink::exchange`], with the operation named on error.
    fn transact(&mut self, op: impl FnOnce() -> String) -> io::Result<()> {
        self.exchange().map_err(|e| e.with_op(op))
    }

    /// Sends the request and waits for its acknowledgement.
    fn exchange(&mut self) -> Result<(), Rejected> {
        let len = self.req.len() as u32;
        if let Some(hdr_len) = self.req.get_mut(..4) {
            hdr_len.copy_from_slice(&len.to_ne_bytes());
        }
        // SAFETY: `sockaddr_nl` is a plain C struct for which all-zero bytes are valid (pid 0:
        // the kernel).
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: the buffer and the address are live for the call, with their lengths.
        let ret = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                self.req.as_ptr().cast(),
                self.req.len(),
                0,
                (&raw const kernel).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        cvt_size(ret).map_err(Rejected::Local)?;
        loop {
            // SAFETY: `resp` is a live, exclusively borrowed buffer of `resp.len()` bytes.
            let ret = unsafe {
                libc::recv(self.fd.as_raw_fd(), self.resp.as_mut_ptr().cast(), self.resp.len(), 0)
            };
            let n = match cvt_size(ret) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Rejected::Local(e)),
            };
            if let Some(result) = find_ack(self.resp.get(..n).unwrap_or_default(), self.seq) {
                return result;
            }
        }
    }
}

/// Looks for the acknowledgement of request `seq` among the messages in `buf`.
fn find_ack(mut buf: &[u8], seq: u32) -> Option<Result<(), Rejected>> {
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(buf.get(..4)?.try_into().ok()?) as usize;
        let ty = u16::from_ne_bytes(buf.get(4..6)?.try_into().ok()?);
        let flags = u16::from_ne_bytes(buf.get(6..8)?.try_into().ok()?);
        let msg_seq = u32::from_ne_bytes(buf.get(8..12)?.try_into().ok()?);
        let msg = buf.get(..len).filter(|_| len >= NLMSG_HDRLEN)?;
        if ty == NLMSG_ERROR && msg_seq == seq {
            // struct nlmsgerr { int error; struct nlmsghdr msg; [payload unless capped] } + TLVs
            let error = i32::from_ne_bytes(msg.get(16..20)?.try_into().ok()?);
            if error == 0 {
                return Some(Ok(()));
            }
            let mut message = None;
            if flags & NLM_F_ACK_TLVS != 0 {
                let orig_len = if flags & NLM_F_CAPPED != 0 {
                    NLMSG_HDRLEN
                } else {
                    u32::from_ne_bytes(msg.get(20..24)?.try_into().ok()?) as usize
                };
                let tlvs = msg.get(20 + orig_len.next_multiple_of(4)..).unwrap_or_default();
                message = ext_ack_message(tlvs);
            }
            return Some(Err(Rejected::Kernel { errno: error.saturating_neg(), message }));
        }
        buf = buf.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    None
}

/// The `NLMSGERR_ATTR_MSG` string among extended-ack attributes.
fn ext_ack_message(mut tlvs: &[u8]) -> Option<String> {
    while tlvs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes(tlvs.get(..2)?.try_into().ok()?));
        let ty = u16::from_ne_bytes(tlvs.get(2..4)?.try_into().ok()?);
        if len < 4 {
            return None;
        }
        if ty == NLMSGERR_ATTR_MSG {
            let data = tlvs.get(4..len)?;
            let text = CStr::from_bytes_until_nul(data).ok()?;
            return Some(text.to_string_lossy().into_owned());
        }
        tlvs = tlvs.get(len.next_multiple_of(4)..)?;
    }
    None
}

/// A failed request, before the operation is named.
#[derive(Debug)]
enum Rejected {
    /// The kernel said no.
    Kernel { errno: i32, message: Option<String> },
    /// Our side failed (socket error, bad argument).
    Local(io::Error),
}

impl Rejected {
    fn with_op(self, op: impl FnOnce() -> String) -> io::Error {
        match self {
            Self::Kernel { errno, message } => {
                let kind = io::Error::from_raw_os_error(errno).kind();
                io::Error::new(kind, NetlinkError { op: op(), errno, message })
            }
            Self::Local(e) => io::Error::new(e.kind(), format!("{}: {e}", op())),
        }
    }
}

/// Adds routes and removes them again when dropped, so the daemon leaves none behind. (If the
/// process dies instead, the routes go with the TUN device they point into.)
#[derive(Debug)]
pub struct RouteGuard {
    netlink: Netlink,
    routes: Vec<Route>,
}

impl RouteGuard {
    /// A guard with its own netlink socket, in the calling thread's network namespace (where
    /// it also deletes, whichever thread drops it).
    pub fn new() -> io::Result<Self> {
        Ok(Self { netlink: Netlink::open()?, routes: Vec::new() })
    }

    /// Adds `route` (to its table) and remembers it.
    pub fn add(&mut self, route: Route) -> io::Result<()> {
        self.netlink.insert_route(&route)?;
        self.routes.push(route);
        Ok(())
    }

    /// Deletes `route` now (it must have been added through this guard).
    pub fn remove(&mut self, route: &Route) -> io::Result<()> {
        let Some(pos) = self.routes.iter().position(|r| r == route) else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("delete route {route}: not added by this guard"),
            ));
        };
        self.routes.remove(pos);
        self.netlink.remove_route(route)
    }

    /// The routes currently held.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        while let Some(r) = self.routes.pop() {
            match self.netlink.remove_route(&r) {
                Ok(()) => {}
                // Already gone, e.g. with its interface.
                Err(e) if matches!(errno_of(&e), Some(libc::ESRCH | libc::ENODEV)) => {}
                Err(e) => tracing::warn!("{e}"),
            }
        }
    }
}

/// Adds policy-routing rules and removes them again when dropped. Rules outlive a killed daemon
/// (they belong to no device), so [`RuleGuard::add_replacing`] first removes identical leftovers.
#[derive(Debug)]
pub struct RuleGuard {
    netlink: Netlink,
    rules: Vec<Rule>,
}

impl RuleGuard {
    /// A guard with its own netlink socket, in the calling thread's network namespace.
    pub fn new() -> io::Result<Self> {
        Ok(Self { netlink: Netlink::open()?, rules: Vec::new() })
    }

    /// Adds `rule` and remembers it.
    pub fn add(&mut self, rule: Rule) -> io::Result<()> {
        self.netlink.add_rule(&rule)?;
        self.rules.push(rule);
        Ok(())
    }

    /// Removes rules identical to `rule` that we added earlier (a crashed run's), then adds
    /// `rule`. Returns how many leftovers were removed.
    pub fn add_replacing(&mut self, rule: Rule) -> io::Result<usize> {
        let removed = self.netlink.purge_rule(&rule)?;
        self.add(rule)?;
        Ok(removed)
    }

    /// The rules currently held.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

impl Drop for RuleGuard {
    fn drop(&mut self) {
        while let Some(r) = self.rules.pop() {
            match self.netlink.del_rule(&r) {
                Ok(()) => {}
                Err(e) if errno_of(&e) == Some(libc::ENOENT) => {}
                Err(e) => tracing::warn!("{e}"),
            }
        }
    }
}

fn family(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn check_prefix(addr: IpAddr, prefix_len: u8) -> io::Result<()> {
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix_len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("prefix length {prefix_len} is longer than {max}"),
        ));
    }
    Ok(())
}

/// `addr` with the bits after `prefix_len` cleared.
fn mask(addr: IpAddr, prefix_len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix_len.min(32))).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix_len.min(128))).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

/// The name of interface `ifindex`, or `#<index>` if it has none (for messages).
fn link_name(ifindex: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write.
    let ret = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if ret.is_null() {
        return format!("#{ifindex}");
    }
    let bytes: Vec<u8> = buf.iter().map(|&c| c as u8).collect();
    CStr::from_bytes_until_nul(&bytes)
        .map_or_else(|_| format!("#{ifindex}"), |s| s.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn mask_clears_host_bits() {
        let m = |s: &str, p| mask(s.parse().unwrap(), p).to_string();
        assert_eq!(m("10.2.3.4", 16), "10.2.0.0");
        assert_eq!(m("10.2.3.4", 0), "0.0.0.0");
        assert_eq!(m("10.2.3.4", 32), "10.2.3.4");
        assert_eq!(m("fd00:1:2:3::9", 48), "fd00:1:2::");
        assert_eq!(m("fd00::1", 128), "fd00::1");
    }

    #[test]
    fn ack_parsing_reads_errno_and_extended_message() {
        let mut msg = Vec::new();
        let tlv_text = b"Nexthop device is not up\0";
        let tlv_len = 4 + tlv_text.len();
        let total = 16 + 4 + 16 + tlv_len.next_multiple_of(4);
        msg.extend_from_slice(&(total as u32).to_ne_bytes());
        msg.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        msg.extend_from_slice(&(NLM_F_CAPPED | NLM_F_ACK_TLVS).to_ne_bytes());
        msg.extend_from_slice(&7u32.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&(-libc::ENETDOWN).to_ne_bytes());
        msg.extend_from_slice(&[0; 16]);
        msg.extend_from_slice(&(tlv_len as u16).to_ne_bytes());
        msg.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        msg.extend_from_slice(tlv_text);
        msg.resize(total, 0);
        assert!(find_ack(&msg, 6).is_none(), "another request's ack is skipped");
        let err = find_ack(&msg, 7).unwrap().unwrap_err().with_op(|| "add route x".into());
        assert_eq!(errno_of(&err), Some(libc::ENETDOWN));
        let text = err.to_string();
        assert!(text.starts_with("add route x: Network is down"), "{text}");
        assert!(text.ends_with("(Nexthop device is not up)"), "{text}");
        // Truncated input: no panic, no ack.
        for cut in 0..msg.len() {
            let _ = find_ack(msg.get(..cut).unwrap(), 7);
        }
    }
}
