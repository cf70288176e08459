//! The ESP anti-replay window (RFC 4303 §3.4.3) with extended sequence numbers (RFC 4303
//! Appendix A).
//!
//! The bitmap is a ring of 64-bit blocks, as in RFC 6479 ("IPsec Anti-Replay Algorithm without
//! Bit Shifting") and wireguard-go's `replay` package: moving the window forward clears whole
//! blocks instead of shifting the bitmap, so the cost of a jump is bounded by the number of
//! blocks, not the number of bits.
//!
//! The window is used in two steps, because the RFC 4303 §3.4.3 rule is that the window is
//! updated only once the integrity check has passed:
//!
//! 1. [`ReplayWindow::infer_esn`] turns the 32 bits on the wire into the full 64-bit sequence
//!    number (which the ICV covers when ESN is in use), then [`ReplayWindow::check`] rejects
//!    obvious replays *before* spending time on the ICV (no state change).
//! 2. After the ICV verifies, [`ReplayWindow::accept`] checks again (another copy of the same
//!    packet may have been accepted in between) and marks the number as seen.

/// Bits per ring block.
const BLOCK_BITS: u64 = u64::BITS as u64;

/// The ESN inference window used when anti-replay is off: half the 32-bit space, so the low 32
/// bits are placed in whichever epoch puts them closest to [`ReplayWindow::top`].
const INFERENCE_WINDOW_WHEN_OFF: u64 = 1 << 31;

/// Why [`ReplayWindow::check`] or [`ReplayWindow::accept`] rejected a sequence number.
///
/// Each variant is a reason to drop the packet (RFC 4303 §3.4.3) and a per-SA counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The sequence number is inside the window and was already accepted: a replay (or a
    /// duplicate made by the network).
    #[error("duplicate sequence number (already received inside the replay window)")]
    Duplicate,
    /// The sequence number is to the left of the window: too old to tell whether it is a
    /// replay, so RFC 4303 §3.4.3 says to drop it.
    #[error("sequence number too old (left of the replay window)")]
    TooOld,
    /// The full 64-bit sequence number is 0. Counters start at 1 (RFC 4303 §2.2) and a sender
    /// must rekey before it would wrap back to 0 (§3.3.3), so 0 is never sent.
    #[error("sequence number 0 is never sent (counters start at 1)")]
    Zero,
}

/// The receive-side anti-replay state of one inbound SA (RFC 4303 §3.4.3, RFC 6479).
///
/// The window covers the `size()` sequence numbers ending at [`top`](Self::top) (the highest
/// accepted one): a number above `top` is new, a number at most `size() - 1` below it is new
/// unless already marked, anything further below is [`ReplayError::TooOld`].
///
/// Sequence numbers here are always the full 64-bit value; with 32-bit sequence numbers (no
/// ESN) the high half is simply 0. Use [`infer_esn`](Self::infer_esn) to get the full value
/// from the 32 bits carried in the ESP header when ESN was negotiated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Effective window size in sequence numbers: the requested size rounded up to a multiple
    /// of 64; 0 when anti-replay is off.
    size: u32,
    /// Highest accepted sequence number, 0 before the first one.
    top: u64,
    /// `size / 64 + 1` blocks; bit `seq % 64` of block `(seq / 64) % len` marks `seq`. The
    /// spare block lets the window slide without losing any of its `size` bits (RFC 6479 §2).
    ring: Box<[u64]>,
}

impl ReplayWindow {
    /// The default window size, in sequence numbers. RFC 4303 §3.4.3 recommends at least 64
    /// (32 at minimum); strongSwan defaults to 32, the Linux kernel caps its legacy bitmap at
    /// 32, and 128 is a cheap margin for reordering on multi-queue paths.
    pub const DEFAULT_SIZE: u32 = 128;

    /// The largest window size; larger requests are clamped to it. 65,536 bits is 8 KiB of
    /// bitmap per SA, enough for the reordering that parallel (per-CPU) senders produce at
    /// tens of Gbit/s.
    pub const MAX_SIZE: u32 = 65536;

    /// A window covering `size` sequence numbers, none received yet.
    ///
    /// `size` is rounded up to a multiple of 64 (the block granularity; RFC 6479 §2) and
    /// clamped to [`MAX_SIZE`](Self::MAX_SIZE), so [`size`](Self::size) may return more than
    /// was asked for. A window is never *smaller* than requested, which is what RFC 4303
    /// §3.4.3 cares about.
    ///
    /// `size == 0` turns anti-replay off (RFC 4303 §3.4.3 lets the receiver disable it, e.g.
    /// for manually keyed SAs): every sequence number except 0 is accepted, but
    /// [`top`](Self::top) is still tracked so that ESN inference keeps working.
    pub fn new(size: u32) -> Self {
        let size = size.min(Self::MAX_SIZE).div_ceil(64) * 64;
        let blocks = if size == 0 { 0 } else { size as usize / 64 + 1 };
        Self { size, top: 0, ring: vec![0; blocks].into_boxed_slice() }
    }

    /// The effective window size in sequence numbers (a multiple of 64), or 0 when anti-replay
    /// is off.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The highest accepted full sequence number, or 0 when none has been accepted yet.
    pub fn top(&self) -> u64 {
        self.top
    }

    /// The full 64-bit sequence number for the low 32 bits `seq_lo` carried in an ESP header,
    /// inferred from the window position as in RFC 4303 Appendix A2.2.
    ///
    /// With `T = top()` split into `Th`/`Tl` and `W` the window size, the result's high half is
    /// `Th`, except that (case A, window inside one 2^32 epoch, `Tl >= W - 1`) a `seq_lo` below
    /// the window belongs to the next epoch `Th + 1`, and (case B, window straddling an epoch
    /// boundary) a `seq_lo` at or above the window's bottom belongs to the previous epoch
    /// `Th - 1`. Where that epoch does not exist (before epoch 0, after epoch 2^32 - 1) the
    /// current one is used; the ICV, which covers the high bits, rejects a wrong guess.
    ///
    /// With anti-replay off, `W` is 2^31: `seq_lo` is placed in the epoch that puts it closest
    /// to `top()`, so reordering of up to 2^31 packets is tolerated across an epoch boundary.
    ///
    /// Without ESN, do not call this: the sequence number is `u64::from(seq_lo)`.
    pub fn infer_esn(&self, seq_lo: u32) -> u64 {
        let window = if self.size == 0 { INFERENCE_WINDOW_WHEN_OFF } else { u64::from(self.size) };
        let top_hi = self.top >> 32;
        let top_lo = self.top & u64::from(u32::MAX);
        let seq_lo = u64::from(seq_lo);
        let seq_hi = if top_lo + 1 >= window {
            // Case A: the window [Tl - W + 1, Tl] lies within epoch Th.
            let bottom = top_lo + 1 - window;
            if seq_lo >= bottom {
                top_hi
            } else {
                // Below the window: the sender has wrapped into the next epoch.
                match top_hi.checked_add(1) {
                    Some(next) if next <= u64::from(u32::MAX) => next,
                    _ => top_hi,
                }
            }
        } else {
            // Case B: the window starts in epoch Th - 1 at 2^32 + Tl - W + 1.
            let bottom = (1u64 << 32) + top_lo + 1 - window;
            if seq_lo >= bottom { top_hi.saturating_sub(1) } else { top_hi }
        };
        (seq_hi << 32) | seq_lo
    }

    /// Whether `seq` (a full 64-bit sequence number) may be new, without changing the window.
    ///
    /// Call it before verifying the ICV, so replayed packets cost no cryptography (RFC 4303
    /// §3.4.3: "the receiver SHOULD check ... before performing the integrity check"); call
    /// [`accept`](Self::accept) after the ICV verified.
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
        let (block, bit) = self.position(seq);
        match self.ring.get(block) {
            Some(word) if word & bit != 0 => Err(ReplayError::Duplicate),
            _ => Ok(()),
        }
    }

    /// Marks `seq` as received, after its ICV verified (RFC 4303 §3.4.3: the window "is
    /// updated only if the integrity verification succeeds").
    ///
    /// Checks again first, because another copy of the same packet may have passed
    /// [`check`](Self::check) at the same time and been accepted since: of two racing copies,
    /// exactly one is accepted. When `seq` is above [`top`](Self::top), the window slides
    /// forward, clearing the blocks it moves over (at most all of them, however far the jump).
    pub fn accept(&mut self, seq: u64) -> Result<(), ReplayError> {
        self.check(seq)?;
        if self.size == 0 {
            self.top = self.top.max(seq);
            return Ok(());
        }
        let blocks = self.ring.len() as u64;
        if seq > self.top {
            let top_block = self.top / BLOCK_BITS;
            let new_block = seq / BLOCK_BITS;
            let to_clear = (new_block - top_block).min(blocks);
            for i in 1..=to_clear {
                // `(top_block + i) % blocks` < blocks = ring.len(), so the cast is lossless.
                let index = ((top_block + i) % blocks) as usize;
                if let Some(word) = self.ring.get_mut(index) {
                    *word = 0;
                }
            }
            self.top = seq;
        }
        let (block, bit) = self.position(seq);
        if let Some(word) = self.ring.get_mut(block) {
            *word |= bit;
        }
        Ok(())
    }

    /// Ring block index and bit mask of `seq`. Only meaningful with a non-empty ring.
    fn position(&self, seq: u64) -> (usize, u64) {
        let blocks = (self.ring.len() as u64).max(1);
        // The remainder is below ring.len(), so it fits in usize.
        let block = ((seq / BLOCK_BITS) % blocks) as usize;
        (block, 1u64 << (seq % BLOCK_BITS))
    }
}

impl Default for ReplayWindow {
    /// A window of [`ReplayWindow::DEFAULT_SIZE`].
    fn default() -> Self {
        Self::new(Self::DEFAULT_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::ReplayError::{Duplicate, TooOld, Zero};
    use super::*;

    const OK: Result<(), ReplayError> = Ok(());

    /// Runs a numbered table against one window, like wireguard-linux-compat's
    /// `selftest/counter.c`: each line is `(seq, expected result of accept)`, in order.
    fn run_table(window: &mut ReplayWindow, table: &[(u64, Result<(), ReplayError>)]) {
        for (n, &(seq, expected)) in table.iter().enumerate() {
            let checked = window.check(seq);
            let accepted = window.accept(seq);
            assert_eq!(accepted, expected, "T({n}): accept({seq}) with top {}", window.top());
            assert_eq!(checked, expected, "T({n}): check({seq}) disagrees with accept");
        }
    }

    #[test]
    fn sizes_are_rounded_up_to_blocks_and_clamped() {
        for (requested, effective) in [
            (0, 0),
            (1, 64),
            (32, 64),
            (64, 64),
            (65, 128),
            (128, 128),
            (4096, 4096),
            (65536, 65536),
            (65537, 65536),
            (u32::MAX, 65536),
        ] {
            assert_eq!(ReplayWindow::new(requested).size(), effective, "new({requested})");
        }
        assert_eq!(ReplayWindow::default().size(), ReplayWindow::DEFAULT_SIZE);
    }

    #[test]
    fn edge_cases_default_window() {
        const W: u64 = ReplayWindow::DEFAULT_SIZE as u64; // 128
        let mut w = ReplayWindow::new(ReplayWindow::DEFAULT_SIZE);
        #[rustfmt::skip]
        let table = [
            /*  0 */ (0, Err(Zero)),            // 0 is never valid, even first
            /*  1 */ (1, OK),                   // first packet
            /*  2 */ (1, Err(Duplicate)),
            /*  3 */ (2, OK),                   // in order
            /*  4 */ (3, OK),
            /*  5 */ (2, Err(Duplicate)),
            /*  6 */ (10, OK),                  // small gap
            /*  7 */ (5, OK),                   // reordered, inside the window
            /*  8 */ (4, OK),
            /*  9 */ (5, Err(Duplicate)),
            /* 10 */ (63, OK),                  // last bit of block 0
            /* 11 */ (64, OK),                  // first bit of block 1
            /* 12 */ (65, OK),
            /* 13 */ (127, OK),                 // block boundary at 128
            /* 14 */ (128, OK),
            /* 15 */ (W + 10, OK),              // top = 138
            /* 16 */ (W + 10 - (W - 1), OK),    // 11: size-1 behind top: oldest in the window
            /* 17 */ (W + 10 - W, Err(TooOld)),  // 10: size behind top: just outside
            /* 18 */ (W + 10 - (W + 1), Err(TooOld)), // size+1 behind
            /* 19 */ (W + 10 - (W - 1), Err(Duplicate)),
            /* 20 */ (64, Err(Duplicate)),   // 74 behind, inside, seen at T(11)
        ];
        run_table(&mut w, &table);

        #[rustfmt::skip]
        let table = [
            /* 21 */ (W + 10 + W, OK),          // jump of exactly the window size: top = 266
            /* 22 */ (W + 10, Err(TooOld)),      // the old top is now size behind
            /* 23 */ (W + 11, OK),              // size-1 behind the new top, never seen
            /* 24 */ (W + 11, Err(Duplicate)),
            /* 25 */ (W + 10 + W - 1, OK),      // just below top
            /* 26 */ (1_000_000, OK),           // far jump: every block cleared
            /* 27 */ (1_000_000 - W + 1, OK),   // oldest in the new window
            /* 28 */ (1_000_000 - W, Err(TooOld)),
            /* 29 */ (1_000_000 - 1, OK),
            /* 30 */ (1_000_000, Err(Duplicate)),
            /* 31 */ (1_000_001, OK),
            /* 32 */ (266, Err(TooOld)),         // a number from before the far jump
            /* 33 */ (0, Err(Zero)),
        ];
        run_table(&mut w, &table);
        assert_eq!(w.top(), 1_000_001);
    }

    #[test]
    fn edge_cases_block_boundaries_64() {
        let mut w = ReplayWindow::new(64); // 2 blocks in the ring
        #[rustfmt::skip]
        let table = [
            /*  0 */ (64, OK),                  // first bit of block 1
            /*  1 */ (1, OK),                   // 63 behind: oldest in the window
            /*  2 */ (1, Err(Duplicate)),
            /*  3 */ (0, Err(Zero)),
            /*  4 */ (63, OK),
            /*  5 */ (127, OK),                 // last bit of block 1 → ring slot reused
            /*  6 */ (64, Err(Duplicate)),      // 63 behind; T(0) survived the slot reuse
            /*  7 */ (65, OK),
            /*  8 */ (63, Err(TooOld)),
            /*  9 */ (128, OK),                 // block 2 → clears ring slot 0 (block 0)
            /* 10 */ (66, OK),                  // 62 behind, still in block 1
            /* 11 */ (64, Err(TooOld)),
            /* 12 */ (127, Err(Duplicate)),     // survived the slide
            /* 13 */ (191, OK),                 // last of block 2
            /* 14 */ (192, OK),                 // block 3: clears slot 1 (block 1)
            /* 15 */ (129, OK),                 // 63 behind, block 2
            /* 16 */ (128, Err(TooOld)),
            /* 17 */ (191, Err(Duplicate)),
        ];
        run_table(&mut w, &table);
    }

    #[test]
    fn edge_cases_window_of_4096() {
        const W: u64 = 4096;
        let mut w = ReplayWindow::new(4096);
        #[rustfmt::skip]
        let table = [
            /*  0 */ (W, OK),
            /*  1 */ (1, OK),                   // size-1 behind top
            /*  2 */ (W / 2, OK),
            /*  3 */ (W / 2, Err(Duplicate)),
            /*  4 */ (W + W - 1, OK),           // top = 8191
            /*  5 */ (W, Err(Duplicate)),       // size-1 behind: oldest, seen at T(0)
            /*  6 */ (W - 1, Err(TooOld)),      // size behind
            /*  7 */ (W + 5000, OK),            // top = 9096: crosses many blocks
            /*  8 */ (W + W - 1, Err(Duplicate)),
            /*  9 */ (W + 5000 - W + 1, OK),
            /* 10 */ (W + 5000 - W, Err(TooOld)),
            /* 11 */ (W * 100, OK),             // far jump
            /* 12 */ (W * 100 - 1, OK),
            /* 13 */ (W * 99, Err(TooOld)),
            /* 14 */ (W * 99 + 1, OK),
        ];
        run_table(&mut w, &table);
    }

    #[test]
    fn window_of_size_zero_accepts_everything_but_zero() {
        let mut w = ReplayWindow::new(0);
        assert_eq!(w.size(), 0);
        #[rustfmt::skip]
        let table = [
            /* 0 */ (0, Err(Zero)),
            /* 1 */ (5, OK),
            /* 2 */ (5, OK),                    // duplicates pass: anti-replay is off
            /* 3 */ (1, OK),
            /* 4 */ (u64::from(u32::MAX) + 7, OK),
            /* 5 */ (2, OK),
        ];
        run_table(&mut w, &table);
        assert_eq!(w.top(), u64::from(u32::MAX) + 7, "top is tracked for ESN inference");
    }

    #[test]
    fn check_does_not_change_state_and_racing_copies_accept_once() {
        let mut w = ReplayWindow::default();
        w.accept(10).unwrap();
        let before = w.clone();
        // Two copies of packet 7 arrive; both pass the pre-ICV check.
        assert_eq!(w.check(7), OK);
        assert_eq!(w.check(7), OK);
        assert_eq!(w, before, "check must not change the window");
        // Both verify; only the first to reach accept wins.
        assert_eq!(w.accept(7), OK);
        assert_eq!(w.accept(7), Err(Duplicate));
        // The same race for a number above top.
        assert_eq!(w.check(20), OK);
        assert_eq!(w.check(20), OK);
        assert_eq!(w.accept(20), OK);
        assert_eq!(w.accept(20), Err(Duplicate));
        assert_eq!(w.top(), 20);
    }

    #[test]
    fn esn_inference() {
        const EPOCH: u64 = 1 << 32;
        const W: u64 = ReplayWindow::DEFAULT_SIZE as u64;
        let at = |top: u64| {
            let mut w = ReplayWindow::default();
            if top != 0 {
                w.accept(top).unwrap();
            }
            w
        };
        #[rustfmt::skip]
        let table: [(u64, u32, u64); 16] = [
            // (top, seq_lo, expected full seq)
            /*  0 */ (0, 1, 1),                                     // nothing received yet
            /*  1 */ (0, 1000, 1000),
            /*  2 */ (0, u32::MAX, EPOCH - 1),                      // no epoch -1: stays in 0
            /*  3 */ (500, 400, 400),                               // case A, in the window
            /*  4 */ (500, 501, 501),                               // case A, ahead
            /*  5 */ (EPOCH - 10, (EPOCH - 20) as u32, EPOCH - 20), // near 2^32, behind top
            /*  6 */ (EPOCH - 10, (EPOCH - 5) as u32, EPOCH - 5),   // ahead, same epoch
            /*  7 */ (EPOCH - 10, 5, EPOCH + 5),                    // wrapped: next epoch
            /*  8 */ (EPOCH - 10, 0, EPOCH),                        // the first of the next epoch
            /*  9 */ (EPOCH - 1, (EPOCH - W) as u32, EPOCH - W),     // bottom of the window
            /* 10 */ (EPOCH - 1, (EPOCH - W - 1) as u32, 2 * EPOCH - W - 1), // below: next epoch
            /* 11 */ (EPOCH + 5, 3, EPOCH + 3),                     // case B, in the window
            /* 12 */ (EPOCH + 5, (EPOCH - 20) as u32, EPOCH - 20),  // case B: previous epoch
            /* 13 */ (EPOCH + 5, (EPOCH - W + 6) as u32, EPOCH - W + 6), // window bottom
            /* 14 */ (EPOCH + 5, (EPOCH - W + 5) as u32, 2 * EPOCH - W + 5), // below: ahead
            /* 15 */ (3 * EPOCH + 100, 50, 3 * EPOCH + 50),
        ];
        for (n, &(top, seq_lo, expected)) in table.iter().enumerate() {
            let w = at(top);
            assert_eq!(w.infer_esn(seq_lo), expected, "E({n}): top {top:#x}, seq_lo {seq_lo:#x}");
        }
    }

    #[test]
    fn esn_rollover_end_to_end() {
        const EPOCH: u64 = 1 << 32;
        let mut w = ReplayWindow::default();
        let mut receive = |seq_lo: u32| {
            let seq = w.infer_esn(seq_lo);
            w.check(seq)?;
            w.accept(seq).map(|()| seq)
        };
        assert_eq!(receive(u32::MAX - 2), Ok(EPOCH - 3));
        assert_eq!(receive(u32::MAX), Ok(EPOCH - 1));
        assert_eq!(receive(0), Ok(EPOCH)); // wrapped into epoch 1
        assert_eq!(receive(1), Ok(EPOCH + 1));
        assert_eq!(receive(u32::MAX - 1), Ok(EPOCH - 2)); // late packet from epoch 0
        assert_eq!(receive(u32::MAX), Err(Duplicate));
        assert_eq!(receive(1), Err(Duplicate));
    }

    #[test]
    fn esn_inference_with_window_off_picks_the_closest_epoch() {
        const EPOCH: u64 = 1 << 32;
        let mut w = ReplayWindow::new(0);
        w.accept(EPOCH + 10).unwrap();
        assert_eq!(w.infer_esn(11), EPOCH + 11);
        // 1,000 packets late across the boundary: a 128-wide window would guess epoch 2.
        assert_eq!(w.infer_esn(u32::MAX - 990), EPOCH - 991);
        assert_eq!(w.infer_esn(1 << 30), EPOCH + (1 << 30));
        w.accept(2 * EPOCH - 10).unwrap();
        assert_eq!(w.infer_esn(3), 2 * EPOCH + 3);
    }

    #[test]
    fn esn_inference_at_the_last_epoch_does_not_overflow() {
        let mut w = ReplayWindow::default();
        let top = u64::MAX - 10;
        w.accept(top).unwrap();
        // There is no next epoch; stays in the current one (and is too old).
        let seq = w.infer_esn(3);
        assert_eq!(seq >> 32, u64::from(u32::MAX));
        assert_eq!(w.check(seq), Err(TooOld));
        assert_eq!(w.infer_esn(u32::MAX), u64::MAX);
        assert_eq!(w.accept(u64::MAX), OK);
    }

    /// The naive model: every accepted number in a set, plus the highest.
    struct Model {
        size: u64,
        top: u64,
        seen: HashSet<u64>,
    }

    impl Model {
        fn accept(&mut self, seq: u64) -> Result<(), ReplayError> {
            if seq == 0 {
                return Err(Zero);
            }
            if self.size != 0 && seq <= self.top {
                if self.top - seq >= self.size {
                    return Err(TooOld);
                }
                if self.seen.contains(&seq) {
                    return Err(Duplicate);
                }
            }
            self.seen.insert(seq);
            self.top = self.top.max(seq);
            Ok(())
        }
    }

    fn steps() -> impl Strategy<Value = Vec<(bool, u64)>> {
        // Mostly small moves around the top, sometimes far jumps.
        prop::collection::vec(
            prop_oneof![
                8 => (Just(false), 0u64..300),
                1 => (Just(true), 0u64..100_000),
            ],
            1..400,
        )
    }

    proptest! {
        #[test]
        fn matches_naive_model(size in prop_oneof![Just(0u32), 1u32..300, Just(4096)], steps in steps()) {
            let mut w = ReplayWindow::new(size);
            let mut model = Model { size: u64::from(w.size()), top: 0, seen: HashSet::new() };
            for (jump, delta) in steps {
                // A jump goes ahead of top; otherwise land around top (behind or a bit ahead).
                let seq = if jump {
                    w.top() + delta
                } else {
                    (w.top() + 20).saturating_sub(delta)
                };
                let checked = w.check(seq);
                let got = w.accept(seq);
                prop_assert_eq!(got, model.accept(seq), "seq {}", seq);
                prop_assert_eq!(checked, got);
                prop_assert_eq!(w.top(), model.top);
            }
        }

        #[test]
        fn inferred_seq_keeps_low_bits_and_is_near_top(top in 1u64..(1 << 40), lo in any::<u32>()) {
            let mut w = ReplayWindow::default();
            w.accept(top).unwrap();
            let seq = w.infer_esn(lo);
            prop_assert_eq!(seq as u32, lo);
            let epoch = |s: u64| s >> 32;
            prop_assert!(epoch(seq) + 1 >= epoch(top) && epoch(seq) <= epoch(top) + 1);
            // Anything inside the window is inferred exactly.
            let size = u64::from(w.size());
            if top >= size {
                let inside = top - (u64::from(lo) % size);
                prop_assert_eq!(w.infer_esn(inside as u32), inside);
            }
        }
    }
}
