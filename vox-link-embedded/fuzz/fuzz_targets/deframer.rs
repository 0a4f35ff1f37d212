//! Fuzzes the deframer. For arbitrary stream bytes, slot sizes and read
//! sizes:
//! - nothing panics, and nothing is written past the slot;
//! - decoding in the fuzzer's chunks gives the same outcomes, at the same
//!   stream offsets, as decoding one byte at a time;
//! - every delivered frame is exactly the one-shot COBS decoding of the
//!   bytes before its delimiter, minus a matching CRC-32 trailer, and
//!   re-encodes to those bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vox_link_embedded::framed::codec::{Decoded, FrameDecoder, FrameError, encode_frame};

type Outcome = (usize, Result<Vec<u8>, FrameError>);

/// Outcomes of decoding `stream` (after a leading delimiter) in chunks of
/// the given sizes (cycled).
fn outcomes(stream: &[u8], mtu: usize, chunks: &[u8]) -> Vec<Outcome> {
    let mut dec = FrameDecoder::resyncing();
    // Guard bytes after the slot catch writes past its end.
    let mut buf = vec![0xA5u8; mtu + 16];
    let mut out = Vec::new();
    let input: Vec<u8> = core::iter::once(0).chain(stream.iter().copied()).collect();
    let mut at = 0;
    let mut sizes = chunks.iter().map(|&c| usize::from(c).max(1)).cycle();
    while at < input.len() {
        let end = (at + sizes.next().unwrap_or(1)).min(input.len());
        let mut chunk = &input[at..end];
        while !chunk.is_empty() {
            let (used, result) = dec.decode(chunk, &mut buf[..mtu]);
            assert!(used >= 1 && used <= chunk.len());
            at += used;
            chunk = &chunk[used..];
            match result {
                Ok(Decoded::Pending) => assert!(chunk.is_empty()),
                Ok(Decoded::Frame(len)) => out.push((at, Ok(buf[..len].to_vec()))),
                Ok(Decoded::Close) => out.push((at, Ok(b"<close>".to_vec()))),
                Err(e) => out.push((at, Err(e))),
            }
        }
    }
    assert!(buf[mtu..].iter().all(|&b| b == 0xA5), "wrote past the slot");
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mtu, rest)) = data.split_first() else { return };
    let Some((&n_chunks, rest)) = rest.split_first() else { return };
    let (chunks, stream) = rest.split_at(usize::from(n_chunks % 8).min(rest.len()));
    let mtu = usize::from(mtu) * 4;
    let bytewise = outcomes(stream, mtu, &[1]);
    let chunked = outcomes(stream, mtu, if chunks.is_empty() { &[255] } else { chunks });
    assert_eq!(bytewise, chunked);
    let input: Vec<u8> = core::iter::once(0).chain(stream.iter().copied()).collect();
    for (end, result) in &bytewise {
        let Ok(payload) = result else { continue };
        if payload == b"<close>" {
            continue;
        }
        // The frame's bytes: from the previous delimiter to this one.
        let frame = &input[..end - 1];
        let start = frame.iter().rposition(|&b| b == 0).map_or(0, |i| i + 1);
        let raw = cobs::decode_vec(&frame[start..]).expect("a delivered frame is valid COBS");
        assert_eq!(&raw[..raw.len() - 4], &payload[..]);
        let mut wire = vec![0u8; payload.len() + payload.len() / 254 + 8];
        let n = encode_frame(payload, &mut wire).expect("room");
        assert_eq!(&wire[..n - 1], &frame[start..], "canonical encoding");
    }
});
