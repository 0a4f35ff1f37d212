//! `FramedLink` on a noisy byte stream: bytes flipped, dropped and inserted
//! at a seeded rate. A delivered payload is always one that was sent, every
//! corruption is reported as an error, and a new link attached to the same
//! stream resynchronises and carries on.

use embassy_futures::select::select;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::signal::Signal;
use futures::executor::block_on;
use std::cell::Cell;
use vox_link_embedded::{
    FramedLinkStorage,
    sim::{BytePipe, NoiseRates, NoisyWriter, PipeReader, PipeWriter},
};
use vox_tests::link_kit::{pattern, send};
use vox_types::{Link, LinkError, LinkRx};

type M = CriticalSectionRawMutex;
const MTU: usize = 128;
type Storage = FramedLinkStorage<M, 4, MTU>;
type Pipe = BytePipe<M, 512>;

/// A payload carrying its sequence number in its first four bytes.
fn payload(seq: u32) -> Vec<u8> {
    let mut p = seq.to_le_bytes().to_vec();
    p.extend(pattern(seq, 4 + (seq as usize * 7) % 60));
    p
}

struct Outcome {
    delivered: u32,
    attachments: u32,
    errors: Vec<LinkError>,
}

/// One-way traffic A → B over a noisy pipe; after each link death both
/// sides attach new links to the same pipes (stale bytes included) and the
/// sender resumes after the newest payload B got.
fn noisy_run(total: u32, rates: NoiseRates, seed: u64) -> Outcome {
    let ab = Pipe::new();
    let ba = Pipe::new();
    let mut noisy = NoisyWriter::new(PipeWriter(&ab), rates, seed);
    let mut b_reader = PipeReader(&ab);
    let mut a_reader = PipeReader(&ba);
    let mut b_writer = PipeWriter(&ba);
    let next = Cell::new(0u32);
    let mut out = Outcome { delivered: 0, attachments: 0, errors: Vec::new() };
    while next.get() < total {
        out.attachments += 1;
        assert!(out.attachments < 20_000, "no progress");
        let (a, runner_a) = Storage::new_shared();
        let (b, runner_b) = Storage::new_shared();
        // One signal per waiter: a `Signal` wakes a single waiter.
        let stops = [Signal::<M, ()>::new(), Signal::new(), Signal::new()];
        let (atx, _arx) = a.split();
        let (_btx, mut brx) = b.split();
        let first = next.get();
        let sender = async {
            for seq in first..total {
                if send(&atx, &payload(seq)).await.is_err() {
                    break;
                }
            }
            stops[0].wait().await;
        };
        let receiver = async {
            let result = loop {
                match brx.recv().await {
                    Ok(Some(p)) => {
                        let bytes = p.as_bytes();
                        let seq = u32::from_le_bytes(bytes[..4].try_into().unwrap());
                        assert_eq!(bytes, &payload(seq)[..], "delivered payload differs from what was sent");
                        // Frames of the previous link may still sit in the pipe
                        // (as on a real serial line), so order across
                        // attachments is the upper layer's business.
                        assert!(seq < total, "payload {seq} was never sent");
                        next.set(next.get().max(seq + 1));
                        out.delivered += 1;
                        if seq + 1 == total {
                            break None;
                        }
                    }
                    Ok(None) => panic!("end-of-stream on a noisy line"),
                    Err(e) => break Some(e),
                }
            };
            stops.iter().for_each(|s| s.signal(()));
            result
        };
        let run_a = select(runner_a.run(&mut a_reader, &mut noisy), stops[1].wait());
        let run_b = select(runner_b.run(&mut b_reader, &mut b_writer), stops[2].wait());
        let (_, err, _, _) = block_on(futures::future::join4(sender, receiver, run_a, run_b));
        out.errors.extend(err);
    }
    out
}

// r[verify framed.crc]
// r[verify framed.corrupt]
#[test]
fn noisy_line_never_delivers_a_wrong_payload_and_reports_every_error() {
    let total = 20_000;
    let out = noisy_run(total, NoiseRates::uniform(200), 0x5eed);
    println!(
        "noisy line: {} payloads delivered over {} attachments, {} errors reported",
        out.delivered,
        out.attachments,
        out.errors.len()
    );
    assert!(out.delivered >= total / 2, "most payloads get through: {}", out.delivered);
    assert!(out.attachments > 10, "the noise killed links: {}", out.attachments);
    assert_eq!(out.errors.len() as u32, out.attachments - 1, "every link death was reported");
    assert!(
        out.errors.iter().all(|e| matches!(e, LinkError::CrcMismatch | LinkError::Malformed | LinkError::Oversized))
    );
}

#[test]
fn clean_line_loses_nothing() {
    let out = noisy_run(5_000, NoiseRates::default(), 1);
    assert_eq!((out.delivered, out.attachments, out.errors.len()), (5_000, 1, 0));
}
