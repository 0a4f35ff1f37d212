//! `FramedLink`: a link over any `embedded-io-async` byte stream (UART, USB
//! CDC-ACM, TCP), framed with COBS and checked with CRC-32.
//!
//! # Frame format
//!
//! ```text
//! frame   = COBS(payload ‖ crc) ‖ 0x00
//! crc     = CRC-32/ISO-HDLC(payload), 4 bytes, little-endian
//! ```
//!
//! - COBS is standard consistent-overhead byte stuffing (Cheshire & Baker)
//!   with `0x00` as the delimiter, so no `0x00` occurs inside a frame.
//! - CRC-32/ISO-HDLC is the zlib/Ethernet CRC: polynomial `0x04C11DB7`
//!   (reflected input and output), initial value `0xFFFFFFFF`, final xor
//!   `0xFFFFFFFF`; the CRC of the ASCII bytes `123456789` is `0xCBF43926`.
//! - A lone `0x00` (an empty frame) carries nothing and is skipped. Every
//!   runner sends one before its first frame.
//! - `01 00` (COBS of zero bytes: too short for a CRC) is the end-of-stream
//!   marker, sent when the sending half is closed gracefully.
//! - A receiver first discards bytes up to the next `0x00`, so it can attach
//!   mid-stream (a new link on the same byte stream after an error).
//! - Overhead for an `n`-byte payload: at most `ceil((n + 4) / 254)` COBS
//!   bytes, 4 CRC bytes and 1 delimiter, i.e. at most `ceil(n / 254) + 6`.
//!
//! # Runner
//!
//! The I/O is a future, [`FramedRunner::run`], that the application drives:
//! spawn it on embassy or tokio, or `join` it with the application. The link
//! halves talk to it through embassy-sync primitives. It returns when the
//! link ends (error, or both directions finished), leaving the byte stream
//! to the caller, who may attach a new link to it.

use crate::FramedStats;
use crate::frame_decoder::{Decoded, FrameDecoder, FrameError};
use crate::frame_encoder::FrameEncoder;
use crate::queue_link::{QueueLink, QueueStorage, split_token};
use crate::slot_queue::SlotQueue;
use core::cell::Cell;
use core::future::poll_fn;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::RawMutex;
use embedded_io_async::{Read, Write};
use vox_types::LinkError;
use vox_types::{LendsSlots, StorageRef};

/// Direction of the queue the application sends on (app → runner).
const TX: usize = 0;
/// Direction of the queue the application receives on (runner → app).
const RX: usize = 1;
/// Bytes read from the stream per `read` call.
const READ_CHUNK: usize = 64;

/// Storage of a framed link: `SLOTS` payload slots of `MTU` bytes each way,
/// and the statistics. Put it in a `static` (no allocator) or use
/// [`FramedLinkStorage::new_shared`].
// r[impl framed.io]
pub struct FramedLinkStorage<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> {
    queues: [SlotQueue<M, SLOTS, MTU>; 2],
    stats: Mutex<M, Cell<FramedStats>>,
    /// Live halves and runner of the attached link.
    live: Mutex<M, Cell<u8>>,
}

/// The application's end of a framed link.
pub type FramedLink<M, const SLOTS: usize, const MTU: usize> =
    QueueLink<FramedLinkStorage<M, SLOTS, MTU>, M, SLOTS, MTU>;

/// Drives a [`FramedLink`]'s byte stream; see [`FramedRunner::run`].
pub struct FramedRunner<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> {
    storage: StorageRef<FramedLinkStorage<M, SLOTS, MTU>>,
}

impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> FramedLinkStorage<M, SLOTS, MTU> {
    /// Empty storage, usable in a `static`.
    pub const fn new() -> Self {
        Self {
            queues: [SlotQueue::new(), SlotQueue::new()],
            stats: Mutex::new(Cell::new(FramedStats {
                frames_sent: 0,
                payload_bytes_sent: 0,
                wire_bytes_sent: 0,
                frames_received: 0,
                payload_bytes_received: 0,
                wire_bytes_received: 0,
                crc_errors: 0,
                oversize_frames: 0,
                malformed_frames: 0,
                resyncs: 0,
                discarded_bytes: 0,
            })),
            live: Mutex::new(Cell::new(0)),
        }
    }

    /// Attaches a new link to static storage, or `None` while the previous
    /// link's halves, runner or received payloads are still alive.
    ///
    /// Statistics keep counting across attachments.
    pub fn attach(&'static self) -> Option<(FramedLink<M, SLOTS, MTU>, FramedRunner<M, SLOTS, MTU>)> {
        self.try_reopen().then(|| Self::ends(StorageRef::Static(self)))
    }

    /// Counters since the storage was created.
    pub fn stats(&self) -> FramedStats {
        self.stats.lock(Cell::get)
    }

    fn try_reopen(&self) -> bool {
        let idle = self.live.lock(|l| l.get() == 0) && self.queues.iter().all(SlotQueue::reopen);
        if idle {
            self.live.lock(|l| l.set(3));
        }
        idle
    }

    fn ends(storage: StorageRef<Self>) -> (FramedLink<M, SLOTS, MTU>, FramedRunner<M, SLOTS, MTU>) {
        (QueueLink::new(storage.clone(), TX, RX), FramedRunner { storage })
    }

    fn update(&self, f: impl FnOnce(&mut FramedStats)) {
        self.stats.lock(|c| {
            let mut s = c.get();
            f(&mut s);
            c.set(s);
        });
    }

    fn kill_with(&self, e: LinkError) {
        for q in &self.queues {
            q.kill(e);
        }
    }
}

#[cfg(feature = "alloc")]
impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> FramedLinkStorage<M, SLOTS, MTU> {
    /// A link on fresh heap storage, and its runner.
    pub fn new_shared() -> (FramedLink<M, SLOTS, MTU>, FramedRunner<M, SLOTS, MTU>) {
        let storage = alloc::sync::Arc::new(Self::new());
        storage.live.lock(|l| l.set(3));
        Self::ends(StorageRef::Shared(storage))
    }
}

impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> Default for FramedLinkStorage<M, SLOTS, MTU> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> LendsSlots for FramedLinkStorage<M, SLOTS, MTU> {
    fn release_slot(&self, token: usize) {
        let (dir, idx) = split_token(token);
        self.queue(dir).release(idx);
    }
}

impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> QueueStorage<M, SLOTS, MTU>
    for FramedLinkStorage<M, SLOTS, MTU>
{
    fn queue(&self, dir: usize) -> &SlotQueue<M, SLOTS, MTU> {
        let [tx, rx] = &self.queues;
        if dir == TX { tx } else { rx }
    }

    fn kill(&self) {
        self.kill_with(LinkError::Reset);
    }

    fn half_dropped(&self) {
        self.live.lock(|l| l.set(l.get().saturating_sub(1)));
    }
}

/// Frees a payload slot the sending loop took, also when the loop is
/// cancelled or fails mid-frame.
struct LentSlot<'q, M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> {
    queue: &'q SlotQueue<M, SLOTS, MTU>,
    idx: usize,
}

impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> Drop for LentSlot<'_, M, SLOTS, MTU> {
    fn drop(&mut self) {
        self.queue.release(self.idx);
    }
}

/// Gives a reserved slot back unless it was committed.
struct ReservedSlot<'q, M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> {
    queue: &'q SlotQueue<M, SLOTS, MTU>,
    idx: Option<usize>,
}

impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> Drop for ReservedSlot<'_, M, SLOTS, MTU> {
    fn drop(&mut self) {
        if let Some(idx) = self.idx.take() {
            self.queue.cancel(idx);
        }
    }
}

/// Reads a framed link's statistics after its runner is gone.
pub struct FramedStatsHandle<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> {
    storage: StorageRef<FramedLinkStorage<M, SLOTS, MTU>>,
}

impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> FramedStatsHandle<M, SLOTS, MTU> {
    /// Current counters.
    pub fn get(&self) -> FramedStats {
        self.storage.stats()
    }
}

impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> FramedRunner<M, SLOTS, MTU> {
    /// Counters of this link's storage.
    pub fn stats(&self) -> FramedStats {
        self.storage.stats()
    }

    /// A handle that reads the statistics, also after `run` consumed the
    /// runner.
    pub fn stats_handle(&self) -> FramedStatsHandle<M, SLOTS, MTU> {
        FramedStatsHandle { storage: self.storage.clone() }
    }

    /// Moves frames between the link and the byte stream until the link
    /// ends: `Ok(())` when both directions finished gracefully (or the
    /// application dropped its halves), the error that killed the link
    /// otherwise. The link's halves see the same error.
    ///
    /// `reader` and `writer` are the two directions of the stream (a split
    /// UART or socket). On return the stream may sit mid-frame; a new link
    /// attached to it resynchronises at the next delimiter.
    // r[impl framed.runtime]
    pub async fn run<R: Read, W: Write>(self, reader: &mut R, writer: &mut W) -> Result<(), LinkError> {
        let storage = &*self.storage;
        let mut rx = pin!(rx_loop(storage, reader));
        let mut tx = pin!(tx_loop(storage, writer));
        let result = match select(&mut rx, &mut tx).await {
            Either::First(Ok(())) => tx.await,
            Either::Second(Ok(())) => rx.await,
            Either::First(Err(e)) | Either::Second(Err(e)) => Err(e),
        };
        if let Err(e) = result {
            storage.kill_with(e);
        }
        result
    }
}

impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> Drop for FramedRunner<M, SLOTS, MTU> {
    fn drop(&mut self) {
        // A runner that stops (finished, failed or cancelled) ends the link,
        // and, as the consumer of the sending queue, frees the payloads
        // queued there that it will never write: otherwise static storage
        // could never be attached again.
        self.storage.kill_with(LinkError::Reset);
        self.storage.queue(TX).drop_consumer();
        self.storage.half_dropped();
    }
}

fn io_error(e: impl embedded_io_async::Error) -> LinkError {
    LinkError::Io(e.kind())
}

// r[impl framed.cobs]
// r[impl framed.crc]
// r[impl framed.corrupt]
// r[impl framed.reattach]
async fn rx_loop<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize, R: Read>(
    storage: &FramedLinkStorage<M, SLOTS, MTU>,
    reader: &mut R,
) -> Result<(), LinkError> {
    let queue = storage.queue(RX);
    let mut decoder = FrameDecoder::resyncing();
    let mut slot = ReservedSlot { queue, idx: None };
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        let read = select(reader.read(&mut chunk), poll_fn(|cx| queue.poll_consumer_gone(cx))).await;
        let n = match read {
            Either::First(Ok(0)) => {
                // The stream ended without an end-of-stream marker.
                if decoder.in_frame() {
                    storage.update(|s| s.malformed_frames += 1);
                }
                return Err(LinkError::Reset);
            }
            Either::First(Ok(n)) => n,
            Either::First(Err(e)) => return Err(io_error(e)),
            Either::Second(()) => return Ok(()),
        };
        storage.update(|s| s.wire_bytes_received += n as u64);
        for &byte in chunk.get(..n).unwrap_or(&[]) {
            let idx = match slot.idx {
                Some(idx) => idx,
                None => match poll_fn(|cx| queue.poll_reserve(cx)).await {
                    Ok(idx) => *slot.idx.insert(idx),
                    // The application dropped its receiving half.
                    Err(_) => return Ok(()),
                },
            };
            // SAFETY: slot `idx` is Reserved to this loop alone (held in
            // `slot`) until committed or cancelled; it is `MTU` bytes long.
            let dst = unsafe { core::slice::from_raw_parts_mut(queue.slot_ptr(idx).as_ptr(), MTU) };
            let decoded = decoder.feed(byte, dst);
            let discarded = decoder.take_discarded();
            if discarded > 0 {
                storage.update(|s| s.discarded_bytes += discarded as u64);
            }
            match decoded {
                Ok(Decoded::Pending) => {}
                Ok(Decoded::Frame(len)) => {
                    slot.idx = None;
                    queue.commit(idx, len);
                    storage.update(|s| {
                        s.frames_received += 1;
                        s.payload_bytes_received += len as u64;
                    });
                }
                Ok(Decoded::Close) => {
                    queue.close();
                    return Ok(());
                }
                Err(e) => {
                    storage.update(|s| match e {
                        FrameError::Crc => s.crc_errors += 1,
                        FrameError::Oversized => s.oversize_frames += 1,
                        FrameError::Malformed => s.malformed_frames += 1,
                    });
                    return Err(match e {
                        FrameError::Crc => LinkError::CrcMismatch,
                        FrameError::Oversized => LinkError::Oversized,
                        FrameError::Malformed => LinkError::Malformed,
                    });
                }
            }
        }
        if decoder.resynced_after_discard() {
            storage.update(|s| s.resyncs += 1);
        }
    }
}

/// The next committed payload without waiting, if there is one.
fn try_next<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize>(
    queue: &SlotQueue<M, SLOTS, MTU>,
) -> Option<Result<Option<(usize, usize)>, LinkError>> {
    match queue.poll_recv(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(r) => Some(r),
        Poll::Pending => None,
    }
}

async fn write_pending<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize, W: Write>(
    storage: &FramedLinkStorage<M, SLOTS, MTU>,
    encoder: &mut FrameEncoder,
    writer: &mut W,
) -> Result<(), LinkError> {
    let pending = encoder.pending();
    if !pending.is_empty() {
        writer.write_all(pending).await.map_err(io_error)?;
        let n = pending.len() as u64;
        storage.update(|s| s.wire_bytes_sent += n);
    }
    encoder.consumed();
    Ok(())
}

async fn tx_loop<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize, W: Write>(
    storage: &FramedLinkStorage<M, SLOTS, MTU>,
    writer: &mut W,
) -> Result<(), LinkError> {
    let queue = storage.queue(TX);
    let mut encoder = FrameEncoder::new();
    encoder.push_delimiter();
    loop {
        let next = match try_next(queue) {
            Some(next) => next,
            None => {
                // Nothing queued: put what is encoded on the wire first.
                write_pending(storage, &mut encoder, writer).await?;
                writer.flush().await.map_err(io_error)?;
                poll_fn(|cx| queue.poll_recv(cx)).await
            }
        };
        let next = match next {
            Ok(next) => next,
            Err(e) => {
                // The application dropped its sending half (or the link was
                // killed): frames already encoded still go out, so the last
                // one sent before dropping (a handshake rejection, say)
                // reaches the peer.
                write_pending(storage, &mut encoder, writer).await?;
                writer.flush().await.map_err(io_error)?;
                return Err(e);
            }
        };
        let Some((idx, len)) = next else {
            encoder.push_close_marker();
            write_pending(storage, &mut encoder, writer).await?;
            writer.flush().await.map_err(io_error)?;
            return Ok(());
        };
        let lent = LentSlot { queue, idx };
        // SAFETY: slot `idx` is Lent to this loop until `lent` is dropped
        // (after the last use of `payload`); it holds `len <= MTU` committed
        // bytes.
        let payload = unsafe { core::slice::from_raw_parts(queue.slot_ptr(idx).as_ptr(), len) };
        encoder.begin(payload);
        while !encoder.feed_frame(payload) {
            write_pending(storage, &mut encoder, writer).await?;
        }
        drop(lent);
        storage.update(|s| {
            s.frames_sent += 1;
            s.payload_bytes_sent += len as u64;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BytePipe, PipeReader, PipeWriter};
    use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
    use futures::executor::block_on;
    use vox_types::{Link, LinkRx, LinkTx, LinkTxPermit, WriteSlot};

    type S = FramedLinkStorage<CriticalSectionRawMutex, 2, 300>;
    type P = BytePipe<CriticalSectionRawMutex, 64>;

    // Small enough for Miri: exercises the runner's slot writes and reads.
    #[test]
    fn frames_cross_a_pipe_and_a_wrong_byte_kills_the_link() {
        static A: S = S::new();
        static B: S = S::new();
        let (ab, ba) = (P::new(), P::new());
        let (a, run_a) = A.attach().unwrap();
        let (b, run_b) = B.attach().unwrap();
        let (atx, arx) = a.split();
        let (btx, mut brx) = b.split();
        let sizes = [0usize, 1, 254, 300];
        let sender = async move {
            for (i, &n) in sizes.iter().enumerate() {
                let mut slot = atx.reserve().await.unwrap().alloc(n).unwrap();
                slot.as_mut_slice().fill(i as u8 + 1);
                slot.commit();
            }
            atx.close().await.unwrap();
            drop(arx);
        };
        let receiver = async move {
            for (i, &n) in sizes.iter().enumerate() {
                let got = brx.recv().await.unwrap().unwrap();
                assert_eq!(got.as_bytes(), &std::vec![i as u8 + 1; n][..]);
            }
            assert_eq!(brx.recv().await, Ok(None));
            btx.close().await.unwrap();
            drop(brx);
        };
        let (mut ra, mut wa, mut rb, mut wb) = (PipeReader(&ba), PipeWriter(&ab), PipeReader(&ab), PipeWriter(&ba));
        let (_, _, x, y) = block_on(futures::future::join4(
            sender,
            receiver,
            run_a.run(&mut ra, &mut wa),
            run_b.run(&mut rb, &mut wb),
        ));
        assert_eq!((x, y), (Ok(()), Ok(())));
        assert_eq!(A.stats().frames_sent, 4);
        assert_eq!(B.stats().frames_received, 4);

        // A frame whose CRC fails: the receiver gets a typed error.
        let (b, run_b) = B.attach().unwrap();
        let (_btx, mut brx) = b.split();
        let mut bad = [0u8; 16];
        let n = crate::encode_frame(b"abc", &mut bad).unwrap();
        bad[2] ^= 0x10;
        let feed = async {
            embedded_io_async::Write::write_all(&mut PipeWriter(&ab), &[0]).await.unwrap();
            embedded_io_async::Write::write_all(&mut PipeWriter(&ab), &bad[..n]).await.unwrap();
        };
        let (_, r) = block_on(futures::future::join(feed, run_b.run(&mut PipeReader(&ab), &mut PipeWriter(&ba))));
        assert_eq!(r, Err(LinkError::CrcMismatch));
        assert_eq!(block_on(brx.recv()), Err(LinkError::CrcMismatch));
        assert_eq!(B.stats().crc_errors, 1);
    }
}
