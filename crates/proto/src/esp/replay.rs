//! PLACEHOLDER until the policy branch lands: naive replay window.

use std::collections::BTreeSet;

/// Replay check failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayError {
    /// Seen before.
    Duplicate,
    /// Left of the window.
    TooOld,
    /// Zero.
    Zero,
}

/// Naive window.
#[derive(Debug)]
pub struct ReplayWindow {
    size: u32,
    top: u64,
    seen: BTreeSet<u64>,
}

impl ReplayWindow {
    /// Default.
    pub const DEFAULT_SIZE: u32 = 128;
    /// Max.
    pub const MAX_SIZE: u32 = 65536;
    /// New.
    pub fn new(size: u32) -> Self {
        Self { size, top: 0, seen: BTreeSet::new() }
    }
    /// Size.
    pub fn size(&self) -> u32 {
        self.size
    }
    /// Top.
    pub fn top(&self) -> u64 {
        self.top
    }
    /// ESN.
    pub fn infer_esn(&self, seq_lo: u32) -> u64 {
        let w = u64::from(self.size.max(1 << 16));
        let th = self.top >> 32;
        let tl = self.top as u32;
        let bl = u64::from(tl).saturating_sub(w - 1) as u32;
        let hi = if u64::from(tl) >= w - 1 {
            if seq_lo >= bl { th } else { th + 1 }
        } else if seq_lo >= bl.wrapping_sub(0) && u64::from(seq_lo) > u64::from(tl) + (1u64 << 31) {
            th.saturating_sub(1)
        } else {
            th
        };
        (hi << 32) | u64::from(seq_lo)
    }
    /// Check.
    pub fn check(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 {
            return Err(ReplayError::Zero);
        }
        if self.size == 0 || seq > self.top {
            return Ok(());
        }
        if self.top - seq >= u64::from(self.size) {
            return Err(ReplayError::TooOld);
        }
        if self.seen.contains(&seq) { Err(ReplayError::Duplicate) } else { Ok(()) }
    }
    /// Accept.
    pub fn accept(&mut self, seq: u64) -> Result<(), ReplayError> {
        self.check(seq)?;
        self.seen.insert(seq);
        self.top = self.top.max(seq);
        Ok(())
    }
}
