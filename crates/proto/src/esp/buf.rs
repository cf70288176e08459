//! A packet buffer with headroom and tailroom, so headers and trailers are added in place.

use super::DropReason;

/// An owned packet buffer: `[headroom | data | tailroom]`.
///
/// The data plane allocates these once (a pool per worker) and reuses them; sealing and opening
/// only move the `data` window and write into the rooms around it, so no packet is copied or
/// allocated on the way through.
#[derive(Clone)]
pub struct PacketBuf {
    storage: Box<[u8]>,
    start: usize,
    end: usize,
}

impl PacketBuf {
    /// Headroom that covers any outer header the daemon may write before an ESP packet:
    /// IPv6 (40) + UDP (8) + ESP header (8) + the largest IV (16), rounded up.
    pub const DEFAULT_HEADROOM: usize = 128;

    /// Tailroom that covers TFC padding up to a full MTU is the caller's choice; this covers the
    /// ESP trailer: up to 255 bytes of padding, pad length, next header and a 32-byte ICV.
    pub const DEFAULT_TAILROOM: usize = 256 + 2 + 32;

    /// A zeroed buffer of `capacity` bytes whose empty data window starts at `headroom`.
    pub fn new(capacity: usize, headroom: usize) -> Self {
        let headroom = headroom.min(capacity);
        Self { storage: vec![0; capacity].into_boxed_slice(), start: headroom, end: headroom }
    }

    /// A buffer holding `data` with the default headroom and tailroom.
    pub fn from_slice(data: &[u8]) -> Self {
        let mut buf = Self::new(
            Self::DEFAULT_HEADROOM + data.len() + Self::DEFAULT_TAILROOM,
            Self::DEFAULT_HEADROOM,
        );
        buf.load(Self::DEFAULT_HEADROOM, data).unwrap_or_default();
        buf
    }

    /// Empties the buffer and copies `data` in at offset `headroom`.
    pub fn load(&mut self, headroom: usize, data: &[u8]) -> Result<(), DropReason> {
        let end = headroom.checked_add(data.len()).ok_or(DropReason::NoBufferSpace)?;
        let dst = self.storage.get_mut(headroom..end).ok_or(DropReason::NoBufferSpace)?;
        dst.copy_from_slice(data);
        self.start = headroom;
        self.end = end;
        Ok(())
    }

    /// Sets the data window to `len` bytes starting at `headroom` (for reads straight into
    /// [`PacketBuf::storage_mut`]).
    pub fn set_window(&mut self, headroom: usize, len: usize) -> Result<(), DropReason> {
        let end = headroom.checked_add(len).ok_or(DropReason::NoBufferSpace)?;
        if end > self.storage.len() {
            return Err(DropReason::NoBufferSpace);
        }
        self.start = headroom;
        self.end = end;
        Ok(())
    }

    /// The whole underlying storage, for I/O that reads into the buffer.
    pub fn storage_mut(&mut self) -> &mut [u8] {
        &mut self.storage
    }

    /// The data.
    pub fn data(&self) -> &[u8] {
        self.storage.get(self.start..self.end).unwrap_or_default()
    }

    /// The data, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.storage.get_mut(self.start..self.end).unwrap_or_default()
    }

    /// Length of the data.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the data is empty.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Free bytes before the data.
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Free bytes after the data.
    pub fn tailroom(&self) -> usize {
        self.storage.len() - self.end
    }

    /// Grows the data by `n` bytes at the front and returns them.
    pub fn push_front(&mut self, n: usize) -> Result<&mut [u8], DropReason> {
        let start = self.start.checked_sub(n).ok_or(DropReason::NoBufferSpace)?;
        self.start = start;
        self.storage.get_mut(start..start + n).ok_or(DropReason::NoBufferSpace)
    }

    /// Grows the data by `n` bytes at the back and returns them.
    pub fn push_back(&mut self, n: usize) -> Result<&mut [u8], DropReason> {
        let end = self.end.checked_add(n).ok_or(DropReason::NoBufferSpace)?;
        let old = self.end;
        let slice = self.storage.get_mut(old..end).ok_or(DropReason::NoBufferSpace)?;
        self.end = end;
        Ok(slice)
    }

    /// Drops `n` bytes from the front of the data.
    pub fn pop_front(&mut self, n: usize) -> Result<(), DropReason> {
        if n > self.len() {
            return Err(DropReason::Malformed);
        }
        self.start += n;
        Ok(())
    }

    /// Keeps only the first `len` bytes of the data.
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.end = self.start + len;
        }
    }
}

impl core::fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PacketBuf")
            .field("headroom", &self.headroom())
            .field("len", &self.len())
            .field("tailroom", &self.tailroom())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn push_and_pop_move_the_window() {
        let mut b = PacketBuf::new(64, 16);
        b.load(16, b"hello").unwrap();
        b.push_front(4).unwrap().copy_from_slice(b"HDR:");
        b.push_back(1).unwrap()[0] = b'!';
        assert_eq!(b.data(), b"HDR:hello!");
        b.pop_front(4).unwrap();
        b.truncate(5);
        assert_eq!(b.data(), b"hello");
        assert_eq!(b.headroom(), 16);
    }

    #[test]
    fn out_of_room_is_an_error_not_a_panic() {
        let mut b = PacketBuf::new(8, 2);
        b.load(2, b"abcd").unwrap();
        assert_eq!(b.push_front(3).unwrap_err(), DropReason::NoBufferSpace);
        assert_eq!(b.push_back(3).unwrap_err(), DropReason::NoBufferSpace);
        assert!(b.pop_front(5).is_err());
        assert!(b.load(6, b"abc").is_err());
        assert_eq!(b.data(), b"abcd");
    }
}
