//! The bodies of the fuzz targets in `fuzz/fuzz_targets/`, one function per target.
//!
//! They live here, not in the fuzz crate, so that `tests/fuzz_corpus.rs` replays the committed
//! corpus through exactly the same code on stable Rust in every CI run. Each function must
//! never panic, whatever the input: a panic is a bug the fuzzer found.

use ferroswan_proto::crypto::{EspSuite, SecretBytes};
use ferroswan_proto::esp::{InboundSa, Lifetime, Mode, PacketBuf, SaParams};
use ferroswan_proto::wire::{EncrId, IntegId};

use crate::null_provider;

/// Feeds `data` to the ESP receive path of an SA with the no-security provider, so ICV checks
/// pass and the fuzzer reaches padding, trailer, inner-packet and replay logic. The first byte
/// picks the suite, ESN and mode; the rest is the ESP packet (SPI forced to match so the
/// packet is not rejected as unknown).
pub fn esp_open(data: &[u8]) {
    let Some((&selector, packet)) = data.split_first() else { return };
    let suites = [
        EspSuite { encr: EncrId::ENCR_AES_GCM_16, encr_key_bits: 128, integ: IntegId::NONE },
        EspSuite {
            encr: EncrId::ENCR_AES_CBC,
            encr_key_bits: 256,
            integ: IntegId::AUTH_HMAC_SHA2_256_128,
        },
    ];
    let suite = suites[usize::from(selector & 1)];
    let params = SaParams {
        spi: 0x0000_1000,
        suite,
        keymat: SecretBytes::new(vec![0; suite.keymat_len().unwrap_or_default()]),
        esn: selector & 2 != 0,
        mode: if selector & 4 != 0 { Mode::Transport } else { Mode::Tunnel },
        replay_window: if selector & 8 != 0 { 0 } else { 64 },
        tfc_pad_to: 0,
        lifetime: Lifetime::default(),
    };
    let Ok(mut sa) = InboundSa::new(&params, &null_provider()) else { return };
    let mut buf = PacketBuf::from_slice(packet);
    if let Some(spi) = buf.data_mut().get_mut(..4) {
        spi.copy_from_slice(&0x0000_1000u32.to_be_bytes());
    }
    // Twice: the second time exercises the replay path.
    for _ in 0..2 {
        let mut copy = buf.clone();
        if let Ok(opened) = sa.open(&mut copy) {
            let _ = sa.accept(&opened);
        }
    }
}
