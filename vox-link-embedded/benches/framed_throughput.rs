//! Frame codec and `FramedLink` throughput, with their baselines in the same
//! run: the codec alone (encode, decode and both CRCs of one frame, in
//! memory) beside `memcpy` and the `crc32fast` + `corncobs` round trip;
//! `FramedLink` over an in-memory byte pipe beside the same pipe carrying
//! the raw payloads. Payloads are pseudo-random bytes (zeros 1 in 256).
//!
//! `cargo bench -p vox-link-embedded --features std --bench framed_throughput`

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embedded_io_async::{Read, Write};
use futures::executor::block_on;
use std::time::{Duration, Instant};
use vox_link_embedded::FramedLinkStorage;
use vox_link_embedded::framed::codec::{Decoded, FrameDecoder, encode_frame};
use vox_link_embedded::sim::{BytePipe, PipeReader, PipeWriter};
use vox_types::{Link, LinkRx, LinkTx, LinkTxPermit, WriteSlot};

type M = CriticalSectionRawMutex;
type Pipe = BytePipe<M, 4096>;
const REPEATS: usize = 5;

/// `size` pseudo-random bytes (a fixed LCG: the same in every run).
fn payload(size: usize) -> Vec<u8> {
    let mut x = 0x2545_F491_u32;
    (0..size)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

/// Bytes of payload processed per codec measurement.
const CODEC_BYTES: usize = 64 << 20;

/// Our codec alone: encode one frame, decode it (both compute the CRC).
fn codec(size: usize) -> Duration {
    let p = payload(size);
    let mut wire = vec![0u8; size + size / 254 + 8];
    let mut slot = vec![0u8; size];
    let mut decoder = FrameDecoder::resyncing();
    assert_eq!(decoder.decode(&[0], &mut slot).1, Ok(Decoded::Pending));
    let start = Instant::now();
    for _ in 0..CODEC_BYTES / size {
        let n = encode_frame(std::hint::black_box(&p), &mut wire).unwrap();
        let (used, got) = decoder.decode(&wire[..n], &mut slot);
        assert_eq!((used, got), (n, Ok(Decoded::Frame(size))));
    }
    let t = start.elapsed();
    assert_eq!(slot, p);
    t
}

/// `memcpy` of the payload into another buffer, once per "frame".
fn memcpy(size: usize) -> Duration {
    let p = payload(size);
    let mut dst = vec![0u8; size];
    let start = Instant::now();
    for _ in 0..CODEC_BYTES / size {
        dst.copy_from_slice(std::hint::black_box(&p));
        std::hint::black_box(&mut dst);
    }
    start.elapsed()
}

/// The same round trip with `crc32fast` and `corncobs`: CRC and encode,
/// then decode and check the CRC.
fn crates_round_trip(size: usize) -> Duration {
    let p = payload(size);
    let mut raw = vec![0u8; size + 4];
    let mut wire = vec![0u8; corncobs::max_encoded_len(size + 4)];
    let mut back = vec![0u8; size + 4];
    let start = Instant::now();
    for _ in 0..CODEC_BYTES / size {
        let p = std::hint::black_box(&p);
        raw[..size].copy_from_slice(p);
        raw[size..].copy_from_slice(&crc32fast::hash(p).to_le_bytes());
        let n = corncobs::encode_buf(&raw, &mut wire);
        let m = corncobs::decode_buf(&wire[..n], &mut back).unwrap();
        let (data, crc) = back[..m].split_at(m - 4);
        assert_eq!(crc32fast::hash(data).to_le_bytes(), crc);
    }
    start.elapsed()
}

/// Sends `count` payloads of `size` bytes A → B; returns elapsed time and
/// wire bytes per payload byte.
fn framed(size: usize, count: u32) -> (Duration, f64) {
    let (ab, ba) = (Pipe::new(), Pipe::new());
    let (a, runner_a) = FramedLinkStorage::<M, 8, 1024>::new_shared();
    let (b, runner_b) = FramedLinkStorage::<M, 8, 1024>::new_shared();
    let stats = runner_a.stats_handle();
    let (atx, arx) = a.split();
    let (btx, mut brx) = b.split();
    let payload = payload(size);
    let start = Instant::now();
    let sender = async move {
        for _ in 0..count {
            let mut slot = atx.reserve().await.unwrap().alloc(size).unwrap();
            slot.as_mut_slice().copy_from_slice(&payload);
            slot.commit();
        }
        atx.close().await.unwrap();
        drop(arx);
    };
    let receiver = async move {
        let mut got = 0u32;
        while let Some(p) = brx.recv().await.unwrap() {
            assert_eq!(p.len(), size);
            got += 1;
        }
        assert_eq!(got, count);
        btx.close().await.unwrap();
        drop(brx);
    };
    let (mut ra, mut wa, mut rb, mut wb) = (PipeReader(&ba), PipeWriter(&ab), PipeReader(&ab), PipeWriter(&ba));
    let (_, _, x, y) = block_on(futures::future::join4(
        sender,
        receiver,
        runner_a.run(&mut ra, &mut wa),
        runner_b.run(&mut rb, &mut wb),
    ));
    let elapsed = start.elapsed();
    x.unwrap();
    y.unwrap();
    let s = stats.get();
    (elapsed, s.wire_bytes_sent as f64 / s.payload_bytes_sent as f64)
}

/// The same pipe carrying the raw payloads: write, then read exactly
/// `size` bytes per payload.
fn raw(size: usize, count: u32) -> Duration {
    let pipe = Pipe::new();
    let payload = payload(size);
    let start = Instant::now();
    let writer = async {
        let mut w = PipeWriter(&pipe);
        for _ in 0..count {
            w.write_all(&payload).await.unwrap();
        }
    };
    let reader = async {
        let mut r = PipeReader(&pipe);
        let mut buf = vec![0u8; size];
        for _ in 0..count {
            r.read_exact(&mut buf).await.unwrap();
            assert_eq!(buf[0], payload[0]);
        }
    };
    block_on(futures::future::join(writer, reader));
    start.elapsed()
}

fn best<T>(mut f: impl FnMut() -> (Duration, T)) -> (Duration, T) {
    let mut best = f();
    for _ in 1..REPEATS {
        let next = f();
        if next.0 < best.0 {
            best = next;
        }
    }
    best
}

/// Size of the runner's future (its buffers and state), on this host.
fn runner_future_size() -> usize {
    let (_link, runner) = FramedLinkStorage::<M, 2, 256>::new_shared();
    let (r, w) = (Pipe::new(), Pipe::new());
    let (mut reader, mut writer) = (PipeReader(&r), PipeWriter(&w));
    let fut = runner.run(&mut reader, &mut writer);
    std::mem::size_of_val(&fut)
}

fn main() {
    println!("FramedRunner::run future: {} bytes on this host", runner_future_size());
    let mbps = |bytes: f64, t: Duration| bytes / t.as_secs_f64() / 1e6;
    println!();
    println!("Frame codec in memory (best of {REPEATS}): encode + decode + CRC of one frame");
    println!("| payload | codec MB/s | memcpy MB/s | crc32fast+corncobs MB/s | codec/crates time |");
    println!("|--------:|-----------:|------------:|------------------------:|------------------:|");
    for size in [16usize, 64, 1024] {
        let bytes = (CODEC_BYTES / size * size) as f64;
        let (tc, ()) = best(|| (codec(size), ()));
        let (tm, ()) = best(|| (memcpy(size), ()));
        let (tx, ()) = best(|| (crates_round_trip(size), ()));
        println!(
            "| {size:>7} | {:>10.0} | {:>11.0} | {:>23.0} | {:>17.2} |",
            mbps(bytes, tc),
            mbps(bytes, tm),
            mbps(bytes, tx),
            tc.as_secs_f64() / tx.as_secs_f64()
        );
    }
    println!();
    println!("FramedLink over an in-memory byte pipe vs the raw pipe (best of {REPEATS})");
    println!("| payload | framed MB/s | raw MB/s | framed/raw time | wire bytes per payload byte |");
    println!("|--------:|------------:|---------:|----------------:|----------------------------:|");
    for (size, count) in [(16usize, 200_000u32), (64, 100_000), (1024, 20_000)] {
        let (tf, wire) = best(|| framed(size, count));
        let (tr, ()) = best(|| (raw(size, count), ()));
        let bytes = size as f64 * f64::from(count);
        println!(
            "| {size:>7} | {:>11.1} | {:>8.1} | {:>15.2} | {:>27.3} |",
            mbps(bytes, tf),
            mbps(bytes, tr),
            tf.as_secs_f64() / tr.as_secs_f64(),
            wire
        );
    }
}
