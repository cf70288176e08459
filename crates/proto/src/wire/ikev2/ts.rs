//! Traffic Selector payload, TSi or TSr (RFC 7296 §3.13).
//!
//! ```text
//! TS body  = Number of TSs ‖ RESERVED (3) ‖ Selector*
//! Selector = TS Type ‖ IP Protocol ID ‖ Selector Length (2) ‖ Start Port (2) ‖ End Port (2) ‖
//!            Starting Address ‖ Ending Address          (4 bytes each for IPv4, 16 for IPv6)
//! ```
//!
//! Selectors of an unknown type keep their bytes after the Selector Length field.

use core::net::{Ipv4Addr, Ipv6Addr};

use super::codec::{Reader, len_u8, patch_len16, placeholder16, put_u16};
use super::registry::TsType;
use crate::wire::{Error, IpProtocol, Result};

/// Traffic Selector payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ts {
    /// The selectors (at most 255).
    pub selectors: Vec<TrafficSelector>,
}

/// One traffic selector (§3.13.1).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrafficSelector {
    /// TS_IPV4_ADDR_RANGE.
    Ipv4 {
        /// IP protocol, or 0 for any.
        ip_protocol: IpProtocol,
        /// First port (or ICMP type/code packed, §3.13.1).
        start_port: u16,
        /// Last port.
        end_port: u16,
        /// First address.
        start: Ipv4Addr,
        /// Last address.
        end: Ipv4Addr,
    },
    /// TS_IPV6_ADDR_RANGE.
    Ipv6 {
        /// IP protocol, or 0 for any.
        ip_protocol: IpProtocol,
        /// First port.
        start_port: u16,
        /// Last port.
        end_port: u16,
        /// First address.
        start: Ipv6Addr,
        /// Last address.
        end: Ipv6Addr,
    },
    /// A selector type this implementation does not know.
    Unknown {
        /// TS type.
        ts_type: TsType,
        /// The second octet (IP Protocol ID for the address-range types).
        ip_protocol: u8,
        /// The bytes after Selector Length.
        data: Vec<u8>,
    },
}

impl TrafficSelector {
    /// The selector's type.
    pub fn ts_type(&self) -> TsType {
        match self {
            Self::Ipv4 { .. } => TsType::TS_IPV4_ADDR_RANGE,
            Self::Ipv6 { .. } => TsType::TS_IPV6_ADDR_RANGE,
            Self::Unknown { ts_type, .. } => *ts_type,
        }
    }

    fn buffer_len(&self) -> usize {
        match self {
            Self::Ipv4 { .. } => 16,
            Self::Ipv6 { .. } => 40,
            Self::Unknown { data, .. } => 4usize.saturating_add(data.len()),
        }
    }

    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let have = r.len();
        let ts_type = TsType(r.u8("traffic selector")?);
        let ip_protocol = r.u8("traffic selector")?;
        let len = usize::from(r.u16("traffic selector")?);
        let Some(rest_len) = len.checked_sub(4) else {
            return Err(Error::Malformed { what: "selector length" });
        };
        if rest_len > r.len() {
            return Err(Error::Truncated { what: "traffic selector", needed: len, have });
        }
        let mut s = Reader::new(r.take("traffic selector", rest_len)?);
        let addr_len = match ts_type {
            TsType::TS_IPV4_ADDR_RANGE => 4,
            TsType::TS_IPV6_ADDR_RANGE => 16,
            _ => {
                return Ok(Self::Unknown { ts_type, ip_protocol, data: s.rest().to_vec() });
            }
        };
        if rest_len != 4 + 2 * addr_len {
            return Err(Error::Malformed { what: "selector length" });
        }
        let ip_protocol = IpProtocol(ip_protocol);
        let start_port = s.u16("traffic selector")?;
        let end_port = s.u16("traffic selector")?;
        let start = s.take("selector address", addr_len)?;
        let end = s.take("selector address", addr_len)?;
        Ok(if addr_len == 4 {
            let v4 = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            Self::Ipv4 { ip_protocol, start_port, end_port, start: v4(start), end: v4(end) }
        } else {
            let v6 = |b: &[u8]| {
                let mut raw = [0u8; 16];
                raw.copy_from_slice(b);
                Ipv6Addr::from(raw)
            };
            Self::Ipv6 { ip_protocol, start_port, end_port, start: v6(start), end: v6(end) }
        })
    }

    fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        let start_pos = out.len();
        match self {
            Self::Ipv4 { ip_protocol, start_port, end_port, start, end } => {
                out.extend_from_slice(&[TsType::TS_IPV4_ADDR_RANGE.0, ip_protocol.0, 0, 16]);
                put_u16(out, *start_port);
                put_u16(out, *end_port);
                out.extend_from_slice(&start.octets());
                out.extend_from_slice(&end.octets());
            }
            Self::Ipv6 { ip_protocol, start_port, end_port, start, end } => {
                out.extend_from_slice(&[TsType::TS_IPV6_ADDR_RANGE.0, ip_protocol.0, 0, 40]);
                put_u16(out, *start_port);
                put_u16(out, *end_port);
                out.extend_from_slice(&start.octets());
                out.extend_from_slice(&end.octets());
            }
            Self::Unknown { ts_type, ip_protocol, data } => {
                if *ts_type == TsType::TS_IPV4_ADDR_RANGE || *ts_type == TsType::TS_IPV6_ADDR_RANGE
                {
                    // Would parse back as a known type: not a round trip.
                    return Err(Error::Malformed { what: "unknown selector with a known type" });
                }
                out.extend_from_slice(&[ts_type.0, *ip_protocol]);
                let at = placeholder16(out);
                out.extend_from_slice(data);
                patch_len16("selector length", out, at, start_pos)?;
            }
        }
        Ok(())
    }
}

impl Ts {
    /// Parses a TS body. The number of selectors must match what the body holds.
    pub fn parse(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let count = r.u8("TS payload")?;
        r.reserved("TS reserved", 3)?;
        let mut selectors = Vec::new();
        for _ in 0..count {
            selectors.push(TrafficSelector::parse(&mut r)?);
        }
        if !r.is_empty() {
            return Err(Error::Malformed { what: "TS trailing bytes" });
        }
        Ok(Self { selectors })
    }

    /// Length of the emitted body.
    pub fn buffer_len(&self) -> usize {
        self.selectors.iter().fold(4usize, |acc, s| acc.saturating_add(s.buffer_len()))
    }

    /// Appends the body to `out`. Fails with more than 255 selectors.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        let count = len_u8("TS count", self.selectors.len())?;
        out.extend_from_slice(&[count, 0, 0, 0]);
        for s in &self.selectors {
            s.emit(out)?;
        }
        Ok(())
    }
}
