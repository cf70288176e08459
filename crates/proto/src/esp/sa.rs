//! One direction of an ESP security association: parameters, counters, lifetimes, seal, open.

use core::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::replay::{ReplayError, ReplayWindow};
use super::{DropReason, PacketBuf};
use crate::crypto::{
    CryptoProvider, EspAad, EspCipher, EspKeys, EspSuite, SecretBytes, SuiteError,
};
use crate::wire::IpProtocol;
use crate::wire::esp::{pad_len_for, parse_trailer, write_trailer};

/// Length of the ESP header: SPI and sequence number (RFC 4303 §2).
pub const ESP_HEADER_LEN: usize = 8;

/// How the SA carries traffic (RFC 4301 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Host-to-host: the original IP header stays in front of ESP.
    Transport,
    /// Gateway-to-gateway: the whole inner IP packet is the ESP payload.
    Tunnel,
}

/// Byte and packet limits of an SA (RFC 4301 §4.4.2.1). `None` means no limit.
///
/// Crossing a soft limit is reported once (the caller starts a rekey); at a hard limit the SA
/// refuses traffic with [`DropReason::SaExpired`]. Time limits are the control plane's job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lifetime {
    /// Soft limit on payload bytes.
    pub soft_bytes: Option<u64>,
    /// Hard limit on payload bytes.
    pub hard_bytes: Option<u64>,
    /// Soft limit on packets.
    pub soft_packets: Option<u64>,
    /// Hard limit on packets.
    pub hard_packets: Option<u64>,
}

/// Everything needed to build one direction of an ESP SA (from IKE or from manual keying).
#[derive(Clone, Debug)]
pub struct SaParams {
    /// The SPI the receiver chose, as on the wire.
    pub spi: u32,
    /// Encryption and integrity transforms.
    pub suite: EspSuite,
    /// KEYMAT for this direction: encryption key (with salt for the AEADs), then integrity key.
    pub keymat: SecretBytes,
    /// Extended (64-bit) Sequence Numbers (RFC 4303 §2.2.1).
    pub esn: bool,
    /// Tunnel or transport mode.
    pub mode: Mode,
    /// Anti-replay window size in packets; 0 turns anti-replay off (inbound only).
    pub replay_window: u32,
    /// Traffic flow confidentiality (RFC 4303 §2.7): pad every tunnel-mode payload up to this
    /// many bytes (outbound only; 0 = off). The inner IP header's length tells the receiver
    /// where the real packet ends.
    pub tfc_pad_to: u16,
    /// Byte and packet lifetimes.
    pub lifetime: Lifetime,
}

/// Why an SA could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaError {
    /// The suite is not well formed.
    #[error(transparent)]
    Suite(#[from] SuiteError),
    /// The key material length does not match the suite.
    #[error("{suite} needs {expected} bytes of key material, got {got}")]
    KeyLength {
        /// The suite.
        suite: EspSuite,
        /// Bytes expected.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The crypto provider does not implement the suite.
    #[error("{0} is not supported by the crypto provider")]
    Unsupported(EspSuite),
    /// The provider failed to build the cipher.
    #[error("crypto provider failed: {0}")]
    Crypto(#[from] crate::crypto::CryptoError),
    /// SPI 0 is reserved (RFC 4303 §2.1), and 1–255 are reserved by IANA.
    #[error("SPI {0:#x} is reserved (SPIs 0-255 cannot be used)")]
    ReservedSpi(u32),
    /// The anti-replay window is larger than supported.
    #[error("replay window {0} is larger than the maximum {max}", max = ReplayWindow::MAX_SIZE)]
    ReplayWindowTooLarge(u32),
}

/// Traffic counters of one SA direction. Updated with relaxed atomics, so workers that share
/// an SA can count without a lock.
#[derive(Default)]
pub struct SaCounters {
    packets: AtomicU64,
    bytes: AtomicU64,
    dummy_packets: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
}

impl SaCounters {
    /// Packets carried (dummy packets excluded).
    pub fn packets(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Payload bytes carried: the inner packet in tunnel mode, the upper-layer payload in
    /// transport mode (what the lifetime limits count, as the Linux kernel does).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Dummy packets (next header 59, RFC 4303 §2.6) sent or silently discarded.
    pub fn dummy_packets(&self) -> u64 {
        self.dummy_packets.load(Ordering::Relaxed)
    }

    /// Packets dropped for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Every drop counter that is not zero.
    pub fn nonzero_drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.into_iter().map(|r| (r, self.drops(r))).filter(|(_, n)| *n != 0)
    }

    /// Counts a drop.
    pub fn record_drop(&self, reason: DropReason) {
        if let Some(c) = self.drops.get(reason.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a carried packet; returns the packet and byte totals after it.
    fn record_packet(&self, bytes: usize) -> (u64, u64) {
        let p = self.packets.fetch_add(1, Ordering::Relaxed) + 1;
        let b = self.bytes.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
        (p, b)
    }
}

impl fmt::Debug for SaCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SaCounters");
        d.field("packets", &self.packets()).field("bytes", &self.bytes());
        for (reason, n) in self.nonzero_drops() {
            d.field(reason.as_str(), &n);
        }
        d.finish()
    }
}

/// What the caller should do after a packet was counted against the SA's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifetimeStatus {
    /// Nothing to do.
    Fine,
    /// A soft limit was crossed with this packet (reported once): start a rekey.
    SoftExpired,
}

fn lifetime_status(lifetime: &Lifetime, before: (u64, u64), after: (u64, u64)) -> LifetimeStatus {
    let crossed =
        |limit: Option<u64>, old: u64, new: u64| limit.is_some_and(|l| old < l && new >= l);
    if crossed(lifetime.soft_packets, before.0, after.0)
        || crossed(lifetime.soft_bytes, before.1, after.1)
    {
        LifetimeStatus::SoftExpired
    } else {
        LifetimeStatus::Fine
    }
}

fn hard_expired(lifetime: &Lifetime, counters: &SaCounters) -> bool {
    lifetime.hard_packets.is_some_and(|l| counters.packets() >= l)
        || lifetime.hard_bytes.is_some_and(|l| counters.bytes() >= l)
}

fn build_cipher(
    params: &SaParams,
    provider: &CryptoProvider,
) -> Result<Box<dyn EspCipher>, SaError> {
    params.suite.validate()?;
    if params.spi < 256 {
        return Err(SaError::ReservedSpi(params.spi));
    }
    let encr_len = params.suite.encr_keymat_len().unwrap_or_default();
    let expected = params.suite.keymat_len().unwrap_or_default();
    let keymat = params.keymat.expose();
    if keymat.len() != expected {
        return Err(SaError::KeyLength { suite: params.suite, expected, got: keymat.len() });
    }
    if !provider.esp.supports(&params.suite) {
        return Err(SaError::Unsupported(params.suite));
    }
    let (encr, integ) = keymat.split_at(encr_len);
    Ok(provider.esp.new_cipher(&params.suite, &EspKeys { encr, integ })?)
}

/// Result of sealing one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The sequence number the packet carries.
    pub seq: u64,
    /// Whether a soft limit was crossed.
    pub lifetime: LifetimeStatus,
}

/// The outbound half of an ESP SA: assigns sequence numbers and seals packets.
///
/// Sealing takes `&self`: the sequence counter is atomic, so several workers may seal on one
/// SA in parallel (each packet still gets a unique sequence number; the caller keeps per-SA
/// send order if it cares).
pub struct OutboundSa {
    spi: u32,
    suite: EspSuite,
    esn: bool,
    mode: Mode,
    tfc_pad_to: u16,
    lifetime: Lifetime,
    cipher: Box<dyn EspCipher>,
    /// The last sequence number handed out (the first packet gets 1).
    seq: AtomicU64,
    counters: SaCounters,
}

impl OutboundSa {
    /// Builds the outbound SA from `params` with ciphers from `provider`.
    pub fn new(params: &SaParams, provider: &CryptoProvider) -> Result<Self, SaError> {
        Ok(Self {
            spi: params.spi,
            suite: params.suite,
            esn: params.esn,
            mode: params.mode,
            tfc_pad_to: params.tfc_pad_to,
            lifetime: params.lifetime,
            cipher: build_cipher(params, provider)?,
            seq: AtomicU64::new(0),
            counters: SaCounters::default(),
        })
    }

    /// The SPI this SA puts in its packets.
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// The SA's suite.
    pub fn suite(&self) -> EspSuite {
        self.suite
    }

    /// Tunnel or transport.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether ESN is on.
    pub fn esn(&self) -> bool {
        self.esn
    }

    /// Traffic and drop counters.
    pub fn counters(&self) -> &SaCounters {
        &self.counters
    }

    /// The last sequence number used (0 before the first packet).
    pub fn last_seq(&self) -> u64 {
        self.seq.load(Ordering::Relaxed).min(self.max_seq())
    }

    /// Bytes this SA adds in front of the payload: ESP header and IV.
    pub fn header_len(&self) -> usize {
        ESP_HEADER_LEN + self.cipher.iv_len()
    }

    /// The most bytes this SA adds after a payload of `payload_len` bytes: TFC padding, ESP
    /// padding, pad length, next header and ICV.
    pub fn trailer_len(&self, payload_len: usize) -> usize {
        let padded = payload_len.max(usize::from(self.tfc_pad_to));
        padded - payload_len
            + pad_len_for(padded, self.cipher.block_len())
            + 2
            + self.cipher.icv_len()
    }

    /// The largest inner packet that fits in `outer_payload_mtu` bytes of ESP (for the tunnel
    /// interface MTU: path MTU minus outer IP/UDP headers gives `outer_payload_mtu`).
    pub fn max_payload_len(&self, outer_payload_mtu: usize) -> usize {
        let block = self.cipher.block_len().max(4);
        let room = outer_payload_mtu.saturating_sub(self.header_len() + self.cipher.icv_len());
        (room - room % block).saturating_sub(2)
    }

    /// Sets the last used sequence number, so the next packet carries `seq + 1`. For tests of
    /// ESN rollover and exhaustion only: reusing sequence numbers breaks replay protection and,
    /// for counter-mode AEADs, confidentiality.
    #[doc(hidden)]
    pub fn danger_set_last_seq(&self, seq: u64) {
        self.seq.store(seq, Ordering::Relaxed);
    }

    fn max_seq(&self) -> u64 {
        if self.esn { u64::MAX } else { u64::from(u32::MAX) }
    }

    /// Whether the sequence number space is close enough to exhaustion that the SA should be
    /// rekeyed now (the last sixteenth of the space).
    pub fn seq_nearly_exhausted(&self) -> bool {
        self.last_seq() >= self.max_seq() - (self.max_seq() >> 4)
    }

    fn next_seq(&self) -> Result<u64, DropReason> {
        // RFC 4303 §3.3.3: the counter must never cycle. fetch_add cannot realistically reach
        // u64::MAX, so "beyond max" is a sticky exhausted state.
        let seq = self.seq.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if seq > self.max_seq() {
            self.seq.store(self.max_seq(), Ordering::Relaxed);
            return Err(DropReason::SeqExhausted);
        }
        Ok(seq)
    }

    /// Seals a tunnel-mode packet: the data of `buf` is an IPv4 or IPv6 packet and becomes
    /// `ESP header ‖ IV ‖ ciphertext ‖ ICV`, ready to send on a raw ESP socket or after a UDP
    /// header (RFC 3948). Applies TFC padding if configured.
    pub fn seal_tunnel(&self, buf: &mut PacketBuf) -> Result<Sealed, DropReason> {
        let next_header = match buf.data().first().map(|b| b >> 4) {
            Some(4) => IpProtocol::IPV4,
            Some(6) => IpProtocol::IPV6,
            _ => {
                self.counters.record_drop(DropReason::BadInnerPacket);
                return Err(DropReason::BadInnerPacket);
            }
        };
        self.seal_payload(buf, next_header, usize::from(self.tfc_pad_to))
    }

    /// Sends a dummy packet (next header 59, RFC 4303 §2.6) of `len` random-looking bytes, for
    /// traffic flow confidentiality. The receiver discards it silently.
    pub fn seal_dummy(&self, buf: &mut PacketBuf, len: usize) -> Result<Sealed, DropReason> {
        let headroom = buf.headroom();
        buf.set_window(headroom, 0)?;
        buf.push_back(len)?.fill(0);
        let sealed = self.seal_raw(buf, IpProtocol::IPV6_NONXT, 0)?;
        Ok(Sealed { seq: sealed, lifetime: LifetimeStatus::Fine })
    }

    /// Seals the data of `buf` as an ESP payload with `next_header` (no TFC padding). Tunnel
    /// and transport mode are built on this.
    pub fn seal_payload(
        &self,
        buf: &mut PacketBuf,
        next_header: IpProtocol,
        tfc_pad_to: usize,
    ) -> Result<Sealed, DropReason> {
        if hard_expired(&self.lifetime, &self.counters) {
            self.counters.record_drop(DropReason::SaExpired);
            return Err(DropReason::SaExpired);
        }
        let payload_len = buf.len();
        let before = (self.counters.packets(), self.counters.bytes());
        let seq = self.seal_raw(buf, next_header, tfc_pad_to)?;
        let after = self.counters.record_packet(payload_len);
        Ok(Sealed { seq, lifetime: lifetime_status(&self.lifetime, before, after) })
    }

    fn seal_raw(
        &self,
        buf: &mut PacketBuf,
        next_header: IpProtocol,
        tfc_pad_to: usize,
    ) -> Result<u64, DropReason> {
        let result = self.seal_inner(buf, next_header, tfc_pad_to);
        if let Err(reason) = result {
            self.counters.record_drop(reason);
        } else if next_header == IpProtocol::IPV6_NONXT {
            self.counters.dummy_packets.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn seal_inner(
        &self,
        buf: &mut PacketBuf,
        next_header: IpProtocol,
        tfc_pad_to: usize,
    ) -> Result<u64, DropReason> {
        let iv_len = self.cipher.iv_len();
        let icv_len = self.cipher.icv_len();
        let payload_len = buf.len();
        // TFC padding (RFC 4303 §2.7) goes between the payload and the ESP padding, bounded by
        // the tailroom the caller gave us.
        let tfc = tfc_pad_to.saturating_sub(payload_len);
        let tfc = tfc.min(buf.tailroom().saturating_sub(256 + 2 + icv_len));
        let padded = payload_len + tfc;
        let pad = pad_len_for(padded, self.cipher.block_len());
        if buf.headroom() < ESP_HEADER_LEN + iv_len || buf.tailroom() < tfc + pad + 2 + icv_len {
            return Err(DropReason::NoBufferSpace);
        }
        let seq = self.next_seq()?;
        let tail = buf.push_back(tfc + pad + 2 + icv_len)?;
        if let Some(t) = tail.get_mut(..tfc) {
            t.fill(0);
        }
        let aad = EspAad { spi: self.spi, seq, esn: self.esn };
        buf.push_front(ESP_HEADER_LEN + iv_len)?;
        let data = buf.data_mut();
        let (header, rest) = data.split_at_mut(ESP_HEADER_LEN);
        header.copy_from_slice(&aad.header());
        let (iv, rest) = rest.split_at_mut(iv_len);
        let (ct, icv) = rest.split_at_mut(rest.len() - icv_len);
        let pad = u8::try_from(pad).map_err(|_| DropReason::NoBufferSpace)?;
        write_trailer(ct, padded, pad, next_header).map_err(|_| DropReason::NoBufferSpace)?;
        self.cipher.generate_iv(seq, iv).map_err(|_| DropReason::AuthFailed)?;
        self.cipher.seal(&aad, iv, ct, icv).map_err(|_| DropReason::AuthFailed)?;
        Ok(seq)
    }
}

impl fmt::Debug for OutboundSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundSa")
            .field("spi", &format_args!("{:08x}", self.spi))
            .field("suite", &self.suite)
            .field("esn", &self.esn)
            .field("mode", &self.mode)
            .field("seq", &self.last_seq())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// A packet that passed the ICV check and was decrypted, but is not yet accepted by the
/// anti-replay window (see [`InboundSa::accept`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "an opened packet must be passed to InboundSa::accept before it is delivered"]
pub struct Opened {
    /// The full (ESN-inferred) sequence number.
    pub seq: u64,
    /// The payload's protocol (IPv4/IPv6 in tunnel mode; 59 for a dummy packet).
    pub next_header: IpProtocol,
    /// Payload bytes (what lifetimes count).
    pub payload_len: usize,
}

impl Opened {
    /// Whether this is a dummy packet to discard silently (RFC 4303 §2.6).
    pub fn is_dummy(&self) -> bool {
        self.next_header == IpProtocol::IPV6_NONXT
    }
}

/// The inbound half of an ESP SA: verifies, decrypts and checks for replays.
///
/// Processing follows RFC 4303 §3.4 in order: sequence number pre-check against the window
/// (cheap rejection before any crypto), ICV verification, decryption, and only then the window
/// update ([`InboundSa::accept`]), so forged packets can never move the window.
/// Both take `&self`: [`InboundSa::open`] can run in parallel on several workers, and `accept`
/// serialises on the SA's replay window (a short lock, never held across crypto).
pub struct InboundSa {
    spi: u32,
    suite: EspSuite,
    esn: bool,
    mode: Mode,
    lifetime: Lifetime,
    cipher: Box<dyn EspCipher>,
    /// Behind a mutex so that an SA can be shared (`Arc`) between a decrypting worker and the
    /// control plane; the lock is held for a few nanoseconds per packet, never across crypto.
    window: Mutex<ReplayWindow>,
    counters: SaCounters,
}

impl InboundSa {
    /// Builds the inbound SA from `params` with ciphers from `provider`.
    pub fn new(params: &SaParams, provider: &CryptoProvider) -> Result<Self, SaError> {
        if params.replay_window > ReplayWindow::MAX_SIZE {
            return Err(SaError::ReplayWindowTooLarge(params.replay_window));
        }
        Ok(Self {
            spi: params.spi,
            suite: params.suite,
            esn: params.esn,
            mode: params.mode,
            lifetime: params.lifetime,
            cipher: build_cipher(params, provider)?,
            window: Mutex::new(ReplayWindow::new(params.replay_window)),
            counters: SaCounters::default(),
        })
    }

    /// The SPI of packets for this SA.
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// The SA's suite.
    pub fn suite(&self) -> EspSuite {
        self.suite
    }

    /// Tunnel or transport.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether ESN is on.
    pub fn esn(&self) -> bool {
        self.esn
    }

    /// Traffic and drop counters.
    pub fn counters(&self) -> &SaCounters {
        &self.counters
    }

    /// The highest sequence number accepted so far.
    pub fn highest_seq(&self) -> u64 {
        self.window().top()
    }

    /// The anti-replay window size (0 = off).
    pub fn replay_window(&self) -> u32 {
        self.window().size()
    }

    fn window(&self) -> MutexGuard<'_, ReplayWindow> {
        // A panic while holding this lock cannot leave the window inconsistent (every update
        // is a single call), so a poisoned lock is still usable.
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Verifies and decrypts the ESP packet in `buf` (data starting at the SPI). On success
    /// the data of `buf` is narrowed to the payload (the inner packet in tunnel mode). On
    /// failure the drop is counted and `buf`'s contents are unspecified.
    pub fn open(&self, buf: &mut PacketBuf) -> Result<Opened, DropReason> {
        let result = self.open_inner(buf);
        if let Err(reason) = result {
            self.counters.record_drop(reason);
        }
        result
    }

    fn open_inner(&self, buf: &mut PacketBuf) -> Result<Opened, DropReason> {
        let iv_len = self.cipher.iv_len();
        let icv_len = self.cipher.icv_len();
        let block = self.cipher.block_len().max(4);
        let data = buf.data_mut();
        let min = ESP_HEADER_LEN + iv_len + block + icv_len;
        if data.len() < min {
            return Err(DropReason::Malformed);
        }
        let (header, rest) = data.split_at_mut(ESP_HEADER_LEN);
        let (iv, rest) = rest.split_at_mut(iv_len);
        let (ct, icv) = rest.split_at_mut(rest.len() - icv_len);
        if !ct.len().is_multiple_of(block) {
            return Err(DropReason::Malformed);
        }
        let mut spi = [0u8; 4];
        let mut seq_lo = [0u8; 4];
        for (i, b) in header.iter().enumerate() {
            if let Some(s) = spi.get_mut(i) {
                *s = *b;
            } else if let Some(s) = seq_lo.get_mut(i - 4) {
                *s = *b;
            }
        }
        if u32::from_be_bytes(spi) != self.spi {
            return Err(DropReason::UnknownSpi);
        }
        let seq_lo = u32::from_be_bytes(seq_lo);
        let seq = {
            let window = self.window();
            let seq = if self.esn { window.infer_esn(seq_lo) } else { u64::from(seq_lo) };
            window.check(seq).map_err(replay_drop)?;
            seq
        };
        if hard_expired(&self.lifetime, &self.counters) {
            return Err(DropReason::SaExpired);
        }
        let aad = EspAad { spi: self.spi, seq, esn: self.esn };
        self.cipher.open(&aad, iv, ct, icv).map_err(|_| DropReason::AuthFailed)?;
        let (payload_len, trailer) = parse_trailer(ct).map_err(|_| DropReason::BadPadding)?;
        let next_header = trailer.next_header;
        let inner_ok = match (self.mode, next_header) {
            (_, IpProtocol::IPV6_NONXT) => true,
            (Mode::Tunnel, IpProtocol::IPV4) => {
                ct.first().is_some_and(|b| b >> 4 == 4) && tunnel_len_ok(ct, payload_len)
            }
            (Mode::Tunnel, IpProtocol::IPV6) => {
                ct.first().is_some_and(|b| b >> 4 == 6) && tunnel_len_ok(ct, payload_len)
            }
            (Mode::Tunnel, _) => false,
            (Mode::Transport, _) => true,
        };
        if !inner_ok {
            return Err(DropReason::BadInnerPacket);
        }
        // Drop TFC padding: in tunnel mode the inner IP header gives the real length.
        let payload_len = match (self.mode, next_header) {
            (Mode::Tunnel, IpProtocol::IPV4 | IpProtocol::IPV6) => inner_ip_len(ct),
            _ => payload_len,
        };
        buf.pop_front(ESP_HEADER_LEN + iv_len)?;
        buf.truncate(payload_len);
        Ok(Opened { seq, next_header, payload_len })
    }

    /// Accepts an opened packet: updates the anti-replay window (which re-checks, in case a
    /// copy of the same packet was opened in parallel) and counts it. Returns whether a soft
    /// lifetime was crossed. Dummy packets update the window but are counted apart; the caller
    /// discards them.
    pub fn accept(&self, opened: &Opened) -> Result<LifetimeStatus, DropReason> {
        if let Err(e) = self.window().accept(opened.seq) {
            let reason = replay_drop(e);
            self.counters.record_drop(reason);
            return Err(reason);
        }
        if opened.is_dummy() {
            self.counters.dummy_packets.fetch_add(1, Ordering::Relaxed);
            return Ok(LifetimeStatus::Fine);
        }
        let before = (self.counters.packets(), self.counters.bytes());
        let after = self.counters.record_packet(opened.payload_len);
        Ok(lifetime_status(&self.lifetime, before, after))
    }
}

impl fmt::Debug for InboundSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundSa")
            .field("spi", &format_args!("{:08x}", self.spi))
            .field("suite", &self.suite)
            .field("esn", &self.esn)
            .field("mode", &self.mode)
            .field("highest_seq", &self.highest_seq())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

fn replay_drop(e: ReplayError) -> DropReason {
    match e {
        ReplayError::TooOld => DropReason::TooOld,
        ReplayError::Duplicate => DropReason::Replayed,
        // Sequence number 0 is never sent (RFC 4303 §3.3.3: the first packet carries 1).
        _ => DropReason::Malformed,
    }
}

/// Length of the inner IP packet according to its own header (0 if the header is cut short).
fn inner_ip_len(packet: &[u8]) -> usize {
    let be16 = |i: usize| match (packet.get(i), packet.get(i + 1)) {
        (Some(a), Some(b)) => usize::from(u16::from_be_bytes([*a, *b])),
        _ => 0,
    };
    match packet.first().map(|b| b >> 4) {
        Some(4) => be16(2),
        Some(6) => be16(4) + 40,
        _ => 0,
    }
}

fn tunnel_len_ok(packet: &[u8], payload_len: usize) -> bool {
    let len = inner_ip_len(packet);
    let min = if packet.first().map(|b| b >> 4) == Some(4) { 20 } else { 40 };
    len >= min && len <= payload_len
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::crypto::test_provider::TEST_PROVIDER;
    use crate::wire::{EncrId, IntegId};

    fn suite(encr: EncrId, bits: u16, integ: IntegId) -> EspSuite {
        EspSuite { encr, encr_key_bits: bits, integ }
    }

    fn suites() -> Vec<EspSuite> {
        vec![
            suite(EncrId::ENCR_AES_GCM_16, 128, IntegId::NONE),
            suite(EncrId::ENCR_CHACHA20_POLY1305, 0, IntegId::NONE),
            suite(EncrId::ENCR_AES_CBC, 256, IntegId::AUTH_HMAC_SHA2_256_128),
            suite(EncrId::ENCR_3DES, 0, IntegId::AUTH_HMAC_SHA1_96),
            suite(EncrId::ENCR_NULL, 0, IntegId::AUTH_HMAC_SHA2_512_256),
        ]
    }

    fn params(suite: EspSuite, esn: bool) -> SaParams {
        let len = suite.keymat_len().unwrap();
        SaParams {
            spi: 0x1000_0001,
            suite,
            keymat: SecretBytes::new((0..len as u8).collect()),
            esn,
            mode: Mode::Tunnel,
            replay_window: 64,
            tfc_pad_to: 0,
            lifetime: Lifetime::default(),
        }
    }

    fn pair(p: &SaParams) -> (OutboundSa, InboundSa) {
        (OutboundSa::new(p, &TEST_PROVIDER).unwrap(), InboundSa::new(p, &TEST_PROVIDER).unwrap())
    }

    /// A minimal IPv4 packet of `len` bytes (header length fields valid).
    fn ipv4(len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[9] = 17;
        for (i, b) in p[20..].iter_mut().enumerate() {
            *b = i as u8;
        }
        p
    }

    fn ipv6(len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        p[6] = 59;
        p
    }

    #[test]
    fn tunnel_round_trip_every_suite_and_size() {
        for s in suites() {
            for esn in [false, true] {
                let (out, inb) = pair(&params(s, esn));
                for len in [20, 21, 40, 63, 64, 65, 1400, 1500] {
                    for pkt in [ipv4(len), ipv6(len.max(40))] {
                        let mut buf = PacketBuf::from_slice(&pkt);
                        let sealed = out.seal_tunnel(&mut buf).unwrap();
                        let esp_len = buf.len();
                        assert_eq!(
                            esp_len,
                            out.header_len() + pkt.len() + out.trailer_len(pkt.len())
                        );
                        assert_eq!((esp_len - out.header_len() - out.cipher.icv_len()) % 4, 0);
                        let opened = inb.open(&mut buf).unwrap();
                        assert_eq!(opened.seq, sealed.seq);
                        inb.accept(&opened).unwrap();
                        assert_eq!(buf.data(), &pkt[..], "{s} esn={esn} len={len}");
                    }
                }
                assert_eq!(inb.counters().packets(), out.counters().packets());
                assert_eq!(inb.counters().bytes(), out.counters().bytes());
                assert_eq!(inb.counters().nonzero_drops().count(), 0);
            }
        }
    }

    #[test]
    fn sequence_numbers_start_at_one_and_are_in_the_header() {
        let (out, _) = pair(&params(suites()[0], false));
        for want in 1..=3u32 {
            let mut buf = PacketBuf::from_slice(&ipv4(40));
            assert_eq!(out.seal_tunnel(&mut buf).unwrap().seq, u64::from(want));
            assert_eq!(&buf.data()[..4], &0x1000_0001u32.to_be_bytes());
            assert_eq!(&buf.data()[4..8], &want.to_be_bytes());
            // AEAD IV is the 64-bit sequence number (never repeats under one key).
            assert_eq!(&buf.data()[8..16], &u64::from(want).to_be_bytes());
        }
    }

    #[test]
    fn sequence_exhaustion_stops_the_sa_instead_of_wrapping() {
        let (out, _) = pair(&params(suites()[0], false));
        out.danger_set_last_seq(u64::from(u32::MAX) - 1);
        assert!(out.seq_nearly_exhausted());
        let mut buf = PacketBuf::from_slice(&ipv4(40));
        assert_eq!(out.seal_tunnel(&mut buf).unwrap().seq, u64::from(u32::MAX));
        for _ in 0..3 {
            let mut buf = PacketBuf::from_slice(&ipv4(40));
            assert_eq!(out.seal_tunnel(&mut buf), Err(DropReason::SeqExhausted));
        }
        assert_eq!(out.counters().drops(DropReason::SeqExhausted), 3);
        assert_eq!(out.last_seq(), u64::from(u32::MAX));
    }

    #[test]
    fn esn_carries_across_the_32_bit_boundary() {
        let (out, inb) = pair(&params(suites()[2], true));
        out.danger_set_last_seq(u64::from(u32::MAX) - 2);
        for i in 0..6u64 {
            let mut buf = PacketBuf::from_slice(&ipv4(60));
            let sealed = out.seal_tunnel(&mut buf).unwrap();
            assert_eq!(sealed.seq, u64::from(u32::MAX) - 1 + i);
            let opened = inb.open(&mut buf).unwrap();
            assert_eq!(opened.seq, sealed.seq);
            inb.accept(&opened).unwrap();
        }
        assert_eq!(inb.highest_seq(), (1 << 32) + 3);
    }

    #[test]
    fn replays_are_dropped_and_counted() {
        let (out, inb) = pair(&params(suites()[0], false));
        let mut buf = PacketBuf::from_slice(&ipv4(100));
        out.seal_tunnel(&mut buf).unwrap();
        let wire = buf.data().to_vec();
        let opened = inb.open(&mut buf).unwrap();
        inb.accept(&opened).unwrap();
        let mut again = PacketBuf::from_slice(&wire);
        assert_eq!(inb.open(&mut again), Err(DropReason::Replayed));
        assert_eq!(inb.counters().drops(DropReason::Replayed), 1);
        assert_eq!(inb.counters().packets(), 1);
    }

    #[test]
    fn a_parallel_duplicate_is_caught_at_accept() {
        let (out, inb) = pair(&params(suites()[1], false));
        let mut buf = PacketBuf::from_slice(&ipv4(100));
        out.seal_tunnel(&mut buf).unwrap();
        let mut copy = buf.clone();
        let a = inb.open(&mut buf).unwrap();
        let b = inb.open(&mut copy).unwrap();
        inb.accept(&a).unwrap();
        assert_eq!(inb.accept(&b), Err(DropReason::Replayed));
    }

    #[test]
    fn every_flipped_bit_is_rejected_and_does_not_move_the_window() {
        for s in suites() {
            let (out, inb) = pair(&params(s, true));
            let mut buf = PacketBuf::from_slice(&ipv4(48));
            out.seal_tunnel(&mut buf).unwrap();
            let wire = buf.data().to_vec();
            // Skip the SPI (a flip there is an unknown SPI, checked below).
            for bit in 32..wire.len() * 8 {
                let mut bad = wire.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                let mut b = PacketBuf::from_slice(&bad);
                let err = inb.open(&mut b).unwrap_err();
                assert!(
                    matches!(
                        err,
                        DropReason::AuthFailed | DropReason::TooOld | DropReason::Malformed
                    ),
                    "{s} bit {bit}: {err:?}"
                );
            }
            assert_eq!(inb.highest_seq(), 0);
            let mut good = PacketBuf::from_slice(&wire);
            let opened = inb.open(&mut good).unwrap();
            inb.accept(&opened).unwrap();
        }
    }

    #[test]
    fn unknown_spi_and_truncation_are_dropped() {
        let (out, inb) = pair(&params(suites()[2], false));
        let mut buf = PacketBuf::from_slice(&ipv4(64));
        out.seal_tunnel(&mut buf).unwrap();
        let wire = buf.data().to_vec();
        let mut bad = wire.clone();
        bad[0] ^= 0x80;
        assert_eq!(inb.open(&mut PacketBuf::from_slice(&bad)), Err(DropReason::UnknownSpi));
        for len in 0..wire.len() {
            let r = inb.open(&mut PacketBuf::from_slice(&wire[..len]));
            assert!(matches!(r, Err(DropReason::Malformed | DropReason::AuthFailed)), "{len}");
        }
        assert_eq!(inb.counters().drops(DropReason::UnknownSpi), 1);
    }

    #[test]
    fn non_ip_payload_in_tunnel_mode_is_refused_both_ways() {
        let (out, _) = pair(&params(suites()[0], false));
        let mut buf = PacketBuf::from_slice(&[0x10; 40]);
        assert_eq!(out.seal_tunnel(&mut buf), Err(DropReason::BadInnerPacket));
    }

    #[test]
    fn dummy_packets_are_discarded_silently() {
        let (out, inb) = pair(&params(suites()[0], false));
        let mut buf = PacketBuf::from_slice(&[]);
        out.seal_dummy(&mut buf, 100).unwrap();
        let opened = inb.open(&mut buf).unwrap();
        assert!(opened.is_dummy());
        inb.accept(&opened).unwrap();
        assert_eq!(inb.counters().packets(), 0);
        assert_eq!(inb.counters().dummy_packets(), 1);
        assert_eq!(out.counters().dummy_packets(), 1);
        assert_eq!(inb.highest_seq(), 1);
    }

    #[test]
    fn tfc_padding_hides_the_length_and_is_removed() {
        let mut p = params(suites()[0], false);
        p.tfc_pad_to = 1000;
        let (out, inb) = pair(&p);
        let pkt = ipv4(64);
        let mut buf = PacketBuf::new(2048, 128);
        buf.load(128, &pkt).unwrap();
        out.seal_tunnel(&mut buf).unwrap();
        assert!(buf.len() >= 1000);
        let opened = inb.open(&mut buf).unwrap();
        inb.accept(&opened).unwrap();
        assert_eq!(buf.data(), &pkt[..]);
    }

    #[test]
    fn lifetimes_report_soft_once_and_stop_at_hard() {
        let mut p = params(suites()[0], false);
        p.lifetime =
            Lifetime { soft_packets: Some(2), hard_packets: Some(3), ..Lifetime::default() };
        let (out, inb) = pair(&p);
        let mut statuses = vec![];
        for _ in 0..3 {
            let mut buf = PacketBuf::from_slice(&ipv4(40));
            statuses.push(out.seal_tunnel(&mut buf).unwrap().lifetime);
            let opened = inb.open(&mut buf).unwrap();
            inb.accept(&opened).unwrap();
        }
        use LifetimeStatus::*;
        assert_eq!(statuses, [Fine, SoftExpired, Fine]);
        let mut buf = PacketBuf::from_slice(&ipv4(40));
        assert_eq!(out.seal_tunnel(&mut buf), Err(DropReason::SaExpired));
    }

    #[test]
    fn bad_parameters_are_refused() {
        let mut p = params(suites()[0], false);
        p.keymat = SecretBytes::new(vec![0; 5]);
        assert!(matches!(OutboundSa::new(&p, &TEST_PROVIDER), Err(SaError::KeyLength { .. })));
        let mut p = params(suites()[0], false);
        p.spi = 7;
        assert!(matches!(OutboundSa::new(&p, &TEST_PROVIDER), Err(SaError::ReservedSpi(7))));
        let mut p = params(suites()[0], false);
        p.replay_window = u32::MAX;
        assert!(matches!(
            InboundSa::new(&p, &TEST_PROVIDER),
            Err(SaError::ReplayWindowTooLarge(_))
        ));
        let p = params(suite(EncrId::ENCR_NULL, 0, IntegId::NONE), false);
        assert!(matches!(OutboundSa::new(&p, &TEST_PROVIDER), Err(SaError::Suite(_))));
    }

    #[test]
    fn no_room_is_reported() {
        let (out, _) = pair(&params(suites()[0], false));
        let mut buf = PacketBuf::new(60, 4);
        buf.load(4, &ipv4(40)).unwrap();
        assert_eq!(out.seal_tunnel(&mut buf), Err(DropReason::NoBufferSpace));
    }

    #[test]
    fn max_payload_fits_the_mtu() {
        for s in suites() {
            let (out, _) = pair(&params(s, false));
            let mtu = 1472;
            let max = out.max_payload_len(mtu);
            assert!(out.header_len() + max + out.trailer_len(max) <= mtu, "{s}");
            assert!(out.header_len() + max + 4 + out.trailer_len(max + 4) > mtu, "{s}");
        }
    }
}
