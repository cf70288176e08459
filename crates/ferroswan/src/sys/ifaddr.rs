//! Which interface holds a local address, and its MTU (for the TUN's default MTU: the path
//! MTU towards the peer is at most the MTU of the interface the SA's packets leave by).

use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The name of the interface that has `addr` configured, if any.
pub fn interface_with_address(addr: IpAddr) -> io::Result<Option<String>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `getifaddrs` writes a pointer to a list it allocates into `head`; it is freed
    // below with `freeifaddrs` and not used afterwards.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = None;
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a non-null node of the list `getifaddrs` returned, alive until
        // `freeifaddrs`.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: `ifa_addr` is non-null and points to a sockaddr whose `sa_family` says
        // which concrete type it is; we only read the matching type.
        let this = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*ifa.ifa_addr.cast::<libc::sockaddr_in>();
                    Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))))
                }
                libc::AF_INET6 => {
                    let sin6 = &*ifa.ifa_addr.cast::<libc::sockaddr_in6>();
                    Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
                }
                _ => None,
            }
        };
        if this == Some(addr) {
            // SAFETY: `ifa_name` is a non-null, NUL-terminated C string owned by the list.
            let name = unsafe { CStr::from_ptr(ifa.ifa_name) };
            found = Some(name.to_string_lossy().into_owned());
            break;
        }
    }
    // SAFETY: `head` came from a successful `getifaddrs` and is freed exactly once.
    unsafe { libc::freeifaddrs(head) };
    Ok(found)
}

/// The MTU of interface `name` (from sysfs).
pub fn interface_mtu(name: &str) -> io::Result<u32> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))?;
    text.trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("MTU of {name}: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn loopback_is_found_with_its_mtu() {
        let name = interface_with_address(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        assert_eq!(name.as_deref(), Some("lo"));
        assert!(interface_mtu("lo").unwrap() >= 1280);
        assert_eq!(interface_with_address("192.0.2.123".parse().unwrap()).unwrap(), None);
    }
}
