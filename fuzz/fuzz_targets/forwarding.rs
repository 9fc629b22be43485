//! Any sequence of packets (layers, sequence numbers, timestamps, payload bytes) through a
//! forwarder with layer switches: keyframe detection, munging and VP8 rewriting must never
//! panic, and no outgoing sequence number is ever given to two different incoming packets.
#![no_main]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sfu_core::codec::{Codec, is_keyframe_start};
use sfu_core::forwarder::{Decision, Forwarder, PacketInfo};
use sfu_core::vp8_munger::Vp8Fields;

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut forwarder = Forwarder::new(true, 90_000);
    let mut given: HashMap<u64, (u8, u64)> = HashMap::new();
    for (i, chunk) in data.chunks(12).enumerate() {
        if chunk.len() < 12 {
            break;
        }
        let layer = chunk[0] % 3;
        if chunk[1] % 16 == 0 {
            forwarder.set_target(if chunk[1] % 32 == 0 {
                None
            } else {
                Some(chunk[2] % 3)
            });
        }
        let payload = &chunk[3..];
        let seq = u64::from(u16::from_be_bytes([chunk[4], chunk[5]])) + (u64::from(layer) << 20);
        let packet = PacketInfo {
            layer,
            seq,
            timestamp: u32::from_be_bytes([chunk[6], chunk[7], chunk[8], chunk[9]]),
            keyframe_start: is_keyframe_start(Codec::Vp8, payload)
                || is_keyframe_start(Codec::H264, payload),
            arrival: start + Duration::from_millis(i as u64),
            vp8: Some(Vp8Fields {
                picture_id: Some(u16::from_be_bytes([chunk[10], chunk[11]]) & 0x7fff),
                tl0_pic_idx: Some(chunk[11]),
            }),
        };
        if let Decision::Forward(munged, _) = forwarder.decide(&packet) {
            let source = (packet.layer, packet.seq);
            let first = *given.entry(munged.seq).or_insert(source);
            assert_eq!(first, source, "outgoing seq {} given twice", munged.seq);
        }
    }
});
