//! Notify (RFC 7296 §3.10) and Delete (§3.11) payloads.

use super::codec::{Reader, len_u8, len_u16, put_u16};
use super::registry::{NotifyType, ProtocolId};
use crate::wire::{Error, Result};

/// Notify payload (RFC 7296 §3.10):
/// `Protocol ID ‖ SPI Size ‖ Notify Message Type (2) ‖ SPI ‖ Notification Data`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify {
    /// Protocol of the SA the notification is about, or [`ProtocolId::NONE`].
    pub protocol: ProtocolId,
    /// SPI of that SA (empty when there is none).
    pub spi: Vec<u8>,
    /// Notify message type.
    pub ty: NotifyType,
    /// Notification data.
    pub data: Vec<u8>,
}

impl Notify {
    /// A notification with no protocol and no SPI, as most are.
    pub fn new(ty: NotifyType, data: Vec<u8>) -> Self {
        Self { protocol: ProtocolId::NONE, spi: Vec::new(), ty, data }
    }

    /// Parses a Notify body.
    pub fn parse(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let protocol = ProtocolId(r.u8("Notify payload")?);
        let spi_size = r.u8("Notify payload")?;
        let ty = NotifyType(r.u16("Notify payload")?);
        let spi = r.take("Notify SPI", usize::from(spi_size))?.to_vec();
        Ok(Self { protocol, spi, ty, data: r.rest().to_vec() })
    }

    /// Length of the emitted body.
    pub fn buffer_len(&self) -> usize {
        4usize.saturating_add(self.spi.len()).saturating_add(self.data.len())
    }

    /// Appends the body to `out`. Fails on an SPI longer than 255 bytes.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        let spi_size = len_u8("Notify SPI size", self.spi.len())?;
        out.extend_from_slice(&[self.protocol.0, spi_size]);
        put_u16(out, self.ty.0);
        out.extend_from_slice(&self.spi);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Delete payload (RFC 7296 §3.11):
/// `Protocol ID ‖ SPI Size ‖ Num of SPIs (2) ‖ SPIs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delete {
    /// Protocol of the SAs: IKE (no SPIs: the SA the message came on), AH or ESP.
    pub protocol: ProtocolId,
    /// Size of each SPI (0 for IKE, 4 for AH and ESP).
    pub spi_size: u8,
    /// The SPIs, each `spi_size` bytes long.
    pub spis: Vec<Vec<u8>>,
}

impl Delete {
    /// Parses a Delete body. SPI size 0 with a nonzero count is `Malformed`, and the SPIs must
    /// fill the body exactly.
    pub fn parse(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let protocol = ProtocolId(r.u8("Delete payload")?);
        let spi_size = r.u8("Delete payload")?;
        let count = r.u16("Delete payload")?;
        if spi_size == 0 && count != 0 {
            return Err(Error::Malformed { what: "Delete SPI count" });
        }
        let mut spis = Vec::new();
        for _ in 0..count {
            spis.push(r.take("Delete SPIs", usize::from(spi_size))?.to_vec());
        }
        if !r.is_empty() {
            return Err(Error::Malformed { what: "Delete trailing bytes" });
        }
        Ok(Self { protocol, spi_size, spis })
    }

    /// Length of the emitted body.
    pub fn buffer_len(&self) -> usize {
        self.spis.iter().fold(4usize, |acc, s| acc.saturating_add(s.len()))
    }

    /// Appends the body to `out`. Fails if an SPI is not `spi_size` bytes long, if there are
    /// SPIs of size 0, or more than 65535 SPIs.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        let count = len_u16("Delete SPI count", self.spis.len())?;
        if (self.spi_size == 0 && count != 0)
            || self.spis.iter().any(|s| s.len() != usize::from(self.spi_size))
        {
            return Err(Error::Malformed { what: "Delete SPI size" });
        }
        out.extend_from_slice(&[self.protocol.0, self.spi_size]);
        put_u16(out, count);
        for spi in &self.spis {
            out.extend_from_slice(spi);
        }
        Ok(())
    }
}
