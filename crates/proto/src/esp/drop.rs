//! Why the data plane dropped a packet: the list of drop counters.

use core::fmt;

/// Why a packet was dropped. Every variant is a counter (per SA where an SA is known, else
/// global) shown by `status`, `list-sas` and the metrics, under the name [`DropReason::as_str`]
/// gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DropReason {
    /// The ICV (AEAD tag or HMAC) did not verify: corrupted or forged.
    AuthFailed,
    /// The decrypted padding was not the monotonic 1, 2, 3, … sequence (RFC 4303 §2.4), or the
    /// pad length does not fit the payload.
    BadPadding,
    /// The decrypted payload is not what the SA carries (not IPv4/IPv6 in tunnel mode, or an
    /// unparseable inner packet).
    BadInnerPacket,
    /// The packet was too short or malformed to be ESP.
    Malformed,
    /// No room in the buffer to add headers or trailer (a caller sizing bug, never remote input).
    NoBufferSpace,
    /// An outbound packet matches no security policy (it was routed into the tunnel, but no SA
    /// covers its addresses, protocol and ports).
    NoPolicy,
    /// The decrypted inner packet is outside the SA's traffic selectors (RFC 4301 §5.2).
    PolicyMismatch,
    /// The sequence number was already received (anti-replay, RFC 4303 §3.4.3).
    Replayed,
    /// The SA used up its sequence number space; it must be rekeyed (RFC 4303 §3.3.3).
    SeqExhausted,
    /// The SA reached its hard byte or packet lifetime.
    SaExpired,
    /// The sequence number is left of the anti-replay window.
    TooOld,
    /// An outbound packet held by a trap policy while its SA was negotiated was discarded:
    /// the negotiation failed, or the trap was removed.
    TrapFailed,
    /// An outbound packet hit a trap policy whose queue of packets waiting for the SA was
    /// full.
    TrapQueueFull,
    /// No SA has this SPI.
    UnknownSpi,
}

impl DropReason {
    /// Number of drop reasons (the size of a counter array).
    pub const COUNT: usize = 14;

    /// Every reason, in counter order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::AuthFailed,
        Self::BadPadding,
        Self::BadInnerPacket,
        Self::Malformed,
        Self::NoBufferSpace,
        Self::NoPolicy,
        Self::PolicyMismatch,
        Self::Replayed,
        Self::SeqExhausted,
        Self::SaExpired,
        Self::TooOld,
        Self::TrapFailed,
        Self::TrapQueueFull,
        Self::UnknownSpi,
    ];

    /// Index of this reason in a counter array.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The counter's name (snake case, stable: used in status output and metrics).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AuthFailed => "auth_failed",
            Self::BadPadding => "bad_padding",
            Self::BadInnerPacket => "bad_inner_packet",
            Self::Malformed => "malformed",
            Self::NoBufferSpace => "no_buffer_space",
            Self::NoPolicy => "no_policy",
            Self::PolicyMismatch => "policy_mismatch",
            Self::Replayed => "replayed",
            Self::SeqExhausted => "seq_exhausted",
            Self::SaExpired => "sa_expired",
            Self::TooOld => "too_old",
            Self::TrapFailed => "trap_failed",
            Self::TrapQueueFull => "trap_queue_full",
            Self::UnknownSpi => "unknown_spi",
        }
    }

    /// A plain-words explanation for logs.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::AuthFailed => "integrity check failed (corrupted, forged, or keys differ)",
            Self::BadPadding => "decrypted padding is invalid (keys or algorithms likely differ)",
            Self::BadInnerPacket => "decrypted payload is not an IP packet this SA carries",
            Self::Malformed => "packet too short or malformed for ESP",
            Self::NoBufferSpace => "packet buffer too small for ESP overhead",
            Self::NoPolicy => "no security policy matches the packet",
            Self::PolicyMismatch => "inner packet is outside the SA's traffic selectors",
            Self::Replayed => "sequence number already received (replay)",
            Self::SeqExhausted => "SA ran out of sequence numbers; it must be rekeyed",
            Self::SaExpired => "SA reached its hard lifetime",
            Self::TooOld => "sequence number is behind the anti-replay window",
            Self::TrapFailed => "held for an on-demand SA whose negotiation failed",
            Self::TrapQueueFull => "queue of packets waiting for an on-demand SA is full",
            Self::UnknownSpi => "no SA with this SPI",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn all_is_in_index_order_and_names_are_unique() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }
}
