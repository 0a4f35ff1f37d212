//! Fuzzes the deframer: arbitrary stream bytes and slot sizes must never
//! panic, never write past the slot, and every delivered frame must
//! re-encode to bytes that decode to the same payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vox_link_embedded::{Decoded, FrameDecoder, encode_frame};

fuzz_target!(|data: &[u8]| {
    let Some((&mtu, stream)) = data.split_first() else { return };
    let mut slot = vec![0u8; mtu as usize * 4];
    let mut dec = FrameDecoder::resyncing();
    for &b in core::iter::once(&0u8).chain(stream) {
        if let Ok(Decoded::Frame(len)) = dec.feed(b, &mut slot) {
            assert!(len <= slot.len());
            let payload = slot[..len].to_vec();
            let mut wire = vec![0u8; len + len / 254 + 8];
            let n = encode_frame(&payload, &mut wire).expect("room");
            let mut again = FrameDecoder::resyncing();
            let mut slot2 = vec![0u8; len];
            let mut got = None;
            for &w in core::iter::once(&0u8).chain(&wire[..n]) {
                if let Ok(Decoded::Frame(l)) = again.feed(w, &mut slot2) {
                    got = Some(slot2[..l].to_vec());
                }
            }
            assert_eq!(got.as_deref(), Some(&payload[..]));
        }
    }
});
