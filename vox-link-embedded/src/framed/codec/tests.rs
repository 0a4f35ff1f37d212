//! Tests of the frame encoder and decoder together, fed bytes directly
//! (no I/O): interoperability with the `cobs` crate's one-shot encoder,
//! the CRC check value, the overhead bound, and garbage input.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use super::encoder::{FrameEncoder, MIN_ENCODE_BUF};
use super::kernels::crc32;
use super::{Decoded, FrameDecoder, FrameError, encode_frame, max_encoded_run};
use proptest::prelude::*;
use std::vec::Vec;

const MTU: usize = 1200;

fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = std::vec![0u8; payload.len() + payload.len() / 254 + 16];
    let n = encode_frame(payload, &mut out).expect("buffer large enough");
    out.truncate(n);
    // The byte-at-a-time encoder (MCU builds) writes the same bytes.
    assert_eq!(small_buffer_wire_with::<4096>(&[payload.to_vec()], true).unwrap(), out);
    out
}

/// Feeds `stream` to a decoder that starts in sync (as after the sender's
/// leading delimiter) and collects every outcome.
fn decode_all(stream: &[u8], mtu: usize) -> Vec<Result<Vec<u8>, FrameError>> {
    let mut dec = FrameDecoder::resyncing();
    let mut slot = std::vec![0u8; mtu];
    let mut out = Vec::new();
    for &b in core::iter::once(&0u8).chain(stream) {
        match dec.feed(b, &mut slot) {
            Ok(Decoded::Pending) => {}
            Ok(Decoded::Frame(len)) => out.push(Ok(slot[..len].to_vec())),
            Ok(Decoded::Close) => out.push(Ok(b"<close>".to_vec())),
            Err(e) => out.push(Err(e)),
        }
    }
    out
}

/// What an encoder with an `N`-byte buffer writes for `payloads`, written
/// out each time it asks (a leading delimiter and the close marker are
/// the runner's, not checked here).
fn small_buffer_wire<const N: usize>(payloads: &[Vec<u8>]) -> Result<Vec<u8>, TestCaseError> {
    let runs = small_buffer_wire_with::<N>(payloads, false)?;
    prop_assert_eq!(&small_buffer_wire_with::<N>(payloads, true)?, &runs, "byte and run encoders differ");
    Ok(runs)
}

/// [`small_buffer_wire`] with the byte-at-a-time encoder (MCU builds) or
/// the run-at-a-time one (hosts).
fn small_buffer_wire_with<const N: usize>(payloads: &[Vec<u8>], bytes: bool) -> Result<Vec<u8>, TestCaseError> {
    let mut enc = FrameEncoder::<N>::new();
    let mut wire = Vec::new();
    for p in payloads {
        enc.begin(p);
        while !(if bytes { enc.feed_bytes(p) } else { enc.feed_runs(p) }) {
            // A full buffer, every byte of it final.
            prop_assert_eq!(enc.pending().len(), N);
            wire.extend_from_slice(enc.pending());
            enc.consumed();
        }
    }
    wire.extend_from_slice(enc.pending());
    Ok(wire)
}

// r[verify framed.crc]
#[test]
fn crc_is_crc32_iso_hdlc() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    // The same function as the `crc` crate's table, whichever kernel this
    // build uses.
    let table = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 + i / 7) as u8).collect();
    for len in [0, 1, 3, 4, 15, 16, 17, 63, 64, 65, 1024, 5000] {
        assert_eq!(crc32(&data[..len]), table.checksum(&data[..len]), "len {len}");
    }
}

// r[verify framed.cobs]
#[test]
fn frames_are_cobs_of_payload_and_crc_le_then_a_delimiter() {
    for len in [0usize, 1, 2, 250, 251, 253, 254, 255, 256, 507, 508, 509, 512, 1000, MTU] {
        for fill in [0u8, 1, 0xFF] {
            let payload: Vec<u8> = (0..len).map(|i| if fill == 1 { (i % 7) as u8 } else { fill }).collect();
            let mut raw = payload.clone();
            raw.extend_from_slice(&crc32(&payload).to_le_bytes());
            let mut expected = cobs::encode_vec(&raw);
            expected.push(0);
            let ours = encode(&payload);
            assert_eq!(ours, expected, "len {len} fill {fill}");
            assert!(!ours[..ours.len() - 1].contains(&0), "no delimiter inside a frame");
            assert_eq!(decode_all(&ours, MTU), [Ok(payload)]);
        }
    }
}

// r[verify framed.overhead]
#[test]
fn overhead_is_within_the_bound_for_every_length() {
    for len in 0..=MTU {
        let payload = std::vec![0xA5u8; len]; // no zeros: COBS worst case
        let wire = encode(&payload).len();
        let bound = len.div_ceil(254) + 6;
        assert!(wire - len <= bound, "payload {len}: {} bytes of overhead > {bound}", wire - len);
    }
}

// r[verify framed.corrupt]
#[test]
fn corrupt_oversized_and_truncated_frames_are_typed_errors() {
    let good = encode(b"hello, frame");
    for i in 0..good.len() - 1 {
        for bit in 0..8 {
            let mut bad = good.clone();
            bad[i] ^= 1 << bit;
            let got = decode_all(&bad, MTU);
            let delivered: Vec<&Vec<u8>> = got.iter().filter_map(|r| r.as_ref().ok()).collect();
            assert!(delivered.iter().all(|p| p.as_slice() == b"<close>"), "flip at {i}/{bit} delivered {got:?}");
            assert!(got.iter().any(Result::is_err), "flip at {i}/{bit} went unreported: {got:?}");
        }
    }
    assert_eq!(decode_all(&encode(&[7u8; 65]), 64), [Err(FrameError::Oversized)]);
    assert_eq!(decode_all(&encode(&[7u8; 64]), 64), [Ok(std::vec![7u8; 64])]);
    assert_eq!(decode_all(&[3, 1, 2, 0], MTU), [Err(FrameError::Malformed)], "shorter than the CRC");
    assert_eq!(decode_all(&[5, 1, 0], MTU), [Err(FrameError::Malformed)], "delimiter inside a COBS run");
    assert_eq!(decode_all(&[1, 0], MTU), [Ok(b"<close>".to_vec())]);
    assert_eq!(decode_all(&[0, 0, 0], MTU), [], "empty frames are skipped");
}

// r[verify framed.reattach]
// r[verify framed.garbage-bound]
#[test]
fn bytes_without_a_delimiter_are_oversized_after_one_maximum_frame_even_before_the_first_delimiter() {
    let mtu = 256;
    let bound = max_encoded_run(mtu);
    // Before any delimiter (a fresh decoder attached mid-stream) and after
    // one: a megabyte without a delimiter is refused within the bound.
    for prefix in [&[][..], &[0u8][..]] {
        let mut dec = FrameDecoder::resyncing();
        let mut slot = std::vec![0u8; mtu];
        let mut fed = 0usize;
        let mut error = None;
        for &b in prefix.iter().chain(std::iter::repeat_n(&0x55u8, 1 << 20)) {
            fed += 1;
            if let Err(e) = dec.feed(b, &mut slot) {
                error = Some(e);
                break;
            }
        }
        assert_eq!(error, Some(FrameError::Oversized), "prefix {prefix:?}");
        assert!(fed <= prefix.len() + bound + 1, "refused within the bound: {fed}");
    }
    // The longest legal frame (no zero byte anywhere) still decodes: the
    // bound is exact enough not to refuse it.
    let payload: Vec<u8> = (0..mtu).map(|i| (i % 255) as u8 + 1).collect();
    let mut frame = encode(&payload);
    frame.insert(0, 0);
    assert!(frame.len() - 2 <= bound);
    assert_eq!(decode_all(&frame, mtu), std::vec![Ok(payload)]);
}

#[test]
fn a_fresh_decoder_mid_stream_resyncs_at_the_next_delimiter() {
    let a = encode(b"first");
    let b = encode(b"second");
    let mut stream = a[3..].to_vec(); // start in the middle of a frame
    stream.extend_from_slice(&b);
    let mut dec = FrameDecoder::resyncing();
    let mut slot = [0u8; 64];
    let mut got = Vec::new();
    for &byte in &stream {
        if let Ok(Decoded::Frame(n)) = dec.feed(byte, &mut slot) {
            got.push(slot[..n].to_vec());
        }
    }
    assert_eq!(got, [b"second".to_vec()]);
    assert_eq!(dec.take_discarded(), a.len() - 4);

    // Attached exactly at a boundary: the first frame is whole and kept.
    let mut dec = FrameDecoder::resyncing();
    let mut got = Vec::new();
    for &byte in a.iter().chain(&b) {
        if let Ok(Decoded::Frame(n)) = dec.feed(byte, &mut slot) {
            got.push(slot[..n].to_vec());
        }
    }
    assert_eq!(got, [b"first".to_vec(), b"second".to_vec()]);
    assert_eq!(dec.take_discarded(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 256 }, ..ProptestConfig::default() })]

    #[test]
    fn random_payload_sequences_round_trip(payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 0..8)) {
        let mut stream = Vec::new();
        for p in &payloads {
            stream.extend(encode(p));
        }
        let got = decode_all(&stream, MTU);
        let expected: Vec<Result<Vec<u8>, FrameError>> = payloads.into_iter().map(Ok).collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn random_bytes_never_panic_or_deliver_unchecked_data(stream in prop::collection::vec(any::<u8>(), 0..2000), mtu in 0usize..300) {
        for p in decode_all(&stream, mtu).into_iter().flatten() {
            // Anything delivered fits its slot (or is the close marker).
            prop_assert!(p.len() <= mtu || p == b"<close>");
        }
    }

    #[test]
    fn overhead_bound_holds_for_random_payloads(payload in prop::collection::vec(any::<u8>(), 0..2000)) {
        let wire = encode(&payload).len();
        prop_assert!(wire - payload.len() <= payload.len().div_ceil(254) + 6);
    }
}

/// Every outcome of feeding `stream` (after a leading delimiter) in the
/// given chunk sizes, with the stream offset just past the byte that
/// completed it.
fn decode_chunked(stream: &[u8], mtu: usize, chunks: &[usize]) -> Vec<(usize, Result<Vec<u8>, FrameError>)> {
    let mut dec = FrameDecoder::resyncing();
    let mut slot = std::vec![0u8; mtu];
    let mut out = Vec::new();
    let mut input: Vec<u8> = core::iter::once(0u8).chain(stream.iter().copied()).collect();
    let mut offset = 0;
    let mut sizes = chunks.iter().copied().cycle();
    while !input.is_empty() {
        let take = sizes.next().unwrap_or(1).clamp(1, input.len());
        let mut chunk: &[u8] = &input[..take];
        let mut at = offset;
        while !chunk.is_empty() {
            let (used, result) = dec.decode(chunk, &mut slot);
            assert!(used >= 1 && used <= chunk.len(), "decode used {used} of {}", chunk.len());
            at += used;
            chunk = &chunk[used..];
            match result {
                Ok(Decoded::Pending) => assert!(chunk.is_empty(), "Pending before the input ran out"),
                Ok(Decoded::Frame(len)) => out.push((at, Ok(slot[..len].to_vec()))),
                Ok(Decoded::Close) => out.push((at, Ok(b"<close>".to_vec()))),
                Err(e) => out.push((at, Err(e))),
            }
        }
        offset += take;
        input.drain(..take);
    }
    out
}

/// Each `decode` call of the byte-at-a-time decoder (MCU builds) or the
/// run-at-a-time one (hosts) on `stream` in the given chunk sizes: bytes
/// used, outcome, the payload it delivered, and the decoder's state and
/// counters read after it.
#[allow(clippy::type_complexity)]
fn decode_trace(
    stream: &[u8],
    mtu: usize,
    chunks: &[usize],
    bytes: bool,
) -> Vec<(usize, Result<Decoded, FrameError>, Vec<u8>, bool, usize, bool)> {
    let mut dec = FrameDecoder::resyncing();
    let mut slot = std::vec![0u8; mtu];
    let mut out = Vec::new();
    let mut input = stream;
    let mut sizes = chunks.iter().copied().cycle();
    while !input.is_empty() {
        let (mut chunk, rest) = input.split_at(sizes.next().unwrap_or(1).clamp(1, input.len()));
        input = rest;
        while !chunk.is_empty() {
            let (used, result) =
                if bytes { dec.decode_bytes(chunk, &mut slot) } else { dec.decode_runs(chunk, &mut slot) };
            chunk = &chunk[used..];
            let payload = match result {
                Ok(Decoded::Frame(len)) => slot[..len].to_vec(),
                _ => Vec::new(),
            };
            out.push((used, result, payload, dec.in_frame(), dec.take_discarded(), dec.resynced_after_discard()));
        }
    }
    out
}

/// A stream of good frames, close markers, corrupt frames and garbage.
fn mixed_stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..700).prop_map(|p| encode(&p)),
        prop::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..300).prop_map(|p| encode(&p)),
        Just(std::vec![1u8, 0]),
        (prop::collection::vec(any::<u8>(), 1..300), any::<usize>(), any::<u8>()).prop_map(|(p, at, x)| {
            let mut f = encode(&p);
            let i = at % f.len();
            f[i] ^= x;
            f
        }),
        prop::collection::vec(any::<u8>(), 0..400),
        prop::collection::vec(1u8..=255, 250..1400),
    ];
    prop::collection::vec(piece, 0..10).prop_map(|v| v.concat())
}

// r[verify framed.fast]
#[test]
fn frames_equal_corncobs_encoding_and_decode_with_it() {
    for len in [0usize, 1, 200, 253, 254, 255, 300, 508, 1024, MTU] {
        for fill in [0u8, 1, 0xFF] {
            let payload: Vec<u8> = (0..len).map(|i| if fill == 1 { (i % 7) as u8 } else { fill }).collect();
            let mut raw = payload.clone();
            raw.extend_from_slice(&crc32(&payload).to_le_bytes());
            let mut theirs = std::vec![0u8; corncobs::max_encoded_len(raw.len())];
            let n = corncobs::encode_buf(&raw, &mut theirs);
            let ours = encode(&payload);
            assert_eq!(ours, theirs[..n], "len {len} fill {fill}");
            let mut back = std::vec![0u8; raw.len()];
            let m = corncobs::decode_buf(&ours, &mut back).unwrap();
            assert_eq!(back[..m], raw[..], "len {len} fill {fill}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 256 }, ..ProptestConfig::default() })]

    /// Bulk decoding in any chunking gives exactly the outcomes, at the same
    /// stream offsets, as feeding one byte at a time.
    // r[verify framed.fast]
    // r[verify framed.garbage-bound]
    #[test]
    fn chunked_decoding_equals_byte_at_a_time(
        stream in mixed_stream(),
        mtu in prop_oneof![0usize..16, 250usize..300, Just(MTU)],
        chunks in prop::collection::vec(1usize..2000, 1..8),
    ) {
        let bytewise = decode_chunked(&stream, mtu, &[1]);
        let bulk = decode_chunked(&stream, mtu, &chunks);
        prop_assert_eq!(&bulk, &bytewise);
        prop_assert_eq!(bulk, decode_chunked(&stream, mtu, &[usize::MAX]));
    }

    /// The MCU builds' byte-at-a-time decoder and the hosts' run-at-a-time
    /// one agree on every call: bytes used, outcome, payload, counters;
    /// also attached mid-stream (no leading delimiter).
    #[test]
    fn byte_and_run_decoders_agree(
        stream in mixed_stream(),
        skip in 0usize..40,
        mtu in prop_oneof![0usize..16, 250usize..300, Just(MTU)],
        chunks in prop::collection::vec(1usize..2000, 1..8),
    ) {
        let stream = &stream[skip.min(stream.len())..];
        prop_assert_eq!(decode_trace(stream, mtu, &chunks, true), decode_trace(stream, mtu, &chunks, false));
    }

    /// The runner's encoder, flushing a buffer of the smallest size, of a
    /// UART's, just below and above a COBS block's, writes the same bytes
    /// as one-shot encoding.
    #[test]
    fn a_small_encoder_buffer_writes_the_same_bytes(payloads in prop::collection::vec(
        // Zeros often (short blocks), or rarely (full 254-byte blocks
        // split across flushes).
        prop_oneof![
            prop::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..1300),
            prop::collection::vec(prop_oneof![1 => Just(0u8), 300 => 1..=255u8], 0..1300),
        ], 1..6)) {
        let expected: Vec<u8> = payloads.iter().flat_map(|p| encode(p)).collect();
        prop_assert_eq!(&small_buffer_wire::<MIN_ENCODE_BUF>(&payloads)?, &expected);
        prop_assert_eq!(&small_buffer_wire::<3>(&payloads)?, &expected);
        prop_assert_eq!(&small_buffer_wire::<32>(&payloads)?, &expected);
        prop_assert_eq!(&small_buffer_wire::<255>(&payloads)?, &expected);
        prop_assert_eq!(&small_buffer_wire::<257>(&payloads)?, &expected);
        prop_assert_eq!(&small_buffer_wire::<2048>(&payloads)?, &expected);
    }
}
