//! `FramedRunner`: the future that moves frames between a framed link's
//! slots and its byte stream, encoding and decoding in bulk.

use super::codec::{Decoded, FrameDecoder, FrameEncoder, FrameError};
use super::storage::{RX, TX};
use super::{FramedLinkStorage, FramedStats};
use crate::queue::queue_link::QueueStorage;
use crate::queue::slot_queue::{LentSlot, SlotQueue};
use core::future::poll_fn;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::raw::RawMutex;
use embedded_io_async::{Read, Write};
use vox_types::LinkError;
use vox_types::StorageRef;

/// Bytes read from the stream per `read` call, and encoded bytes the
/// sending loop gathers per `write` call, on small targets: two of a
/// UART's 16-byte FIFOs (a buffered UART hands over what it has in as many
/// calls; the encoder needs no room for a whole COBS block, so the buffer
/// costs RAM only for what one `write` takes). On hosts (feature
/// `fast-codec`) each buffer is one payload slot, `MTU` bytes: many frames
/// per system call on a link of small frames, and a gateway's sessions
/// pay for their links' size, not for a fixed 4 KiB each way.
#[cfg(not(feature = "fast-codec"))]
const UART_CHUNK: usize = 32;

/// Drives a [`FramedLink`](super::FramedLink)'s byte stream; see
/// [`FramedRunner::run`]. A runner that stops (finished, failed or
/// dropped) ends its link; its statistics stay readable.
///
/// ```
/// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
/// use futures::executor::block_on;
/// use vox_link_embedded::FramedLinkStorage;
/// use vox_types::{Link, LinkError, LinkRx};
///
/// static STORAGE: FramedLinkStorage<CriticalSectionRawMutex, 2, 64> = FramedLinkStorage::new();
/// let (link, runner) = STORAGE.attach().unwrap();
/// let stats = runner.stats_handle();
/// let (_tx, mut rx) = link.split();
/// drop(runner);
/// assert_eq!(block_on(rx.recv()), Err(LinkError::Reset));
/// assert_eq!(stats.get().frames_received, 0);
/// ```
pub struct FramedRunner<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> {
    storage: StorageRef<FramedLinkStorage<M, SLOTS, MTU>>,
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
    pub(super) fn new(storage: StorageRef<FramedLinkStorage<M, SLOTS, MTU>>) -> Self {
        Self { storage }
    }

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
    ///
    /// Two framed links over a pair of in-memory byte pipes (a UART's two
    /// wires), each runner joined with its application:
    ///
    /// ```
    /// use embassy_futures::join::join4;
    /// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
    /// use vox_link_embedded::FramedLinkStorage;
    /// use vox_link_embedded::sim::{BytePipe, PipeReader, PipeWriter};
    /// use vox_types::{Link, LinkRx, LinkTx, LinkTxPermit, WriteSlot};
    ///
    /// type Storage = FramedLinkStorage<CriticalSectionRawMutex, 2, 64>;
    /// type Pipe = BytePipe<CriticalSectionRawMutex, 64>;
    /// static DEVICE: Storage = FramedLinkStorage::new();
    /// static HOST: Storage = FramedLinkStorage::new();
    /// let (to_host, to_device) = (Pipe::new(), Pipe::new());
    /// let (device, device_runner) = DEVICE.attach().unwrap();
    /// let (host, host_runner) = HOST.attach().unwrap();
    ///
    /// let device_app = async {
    ///     let (tx, _rx) = device.split();
    ///     let mut slot = tx.reserve().await?.alloc(5)?;
    ///     slot.as_mut_slice().copy_from_slice(b"hello");
    ///     slot.commit();
    ///     tx.close().await // the host reads end-of-stream after it
    /// };
    /// let host_app = async {
    ///     let (tx, mut rx) = host.split();
    ///     assert_eq!(rx.recv().await?.unwrap().as_bytes(), b"hello");
    ///     assert!(rx.recv().await?.is_none());
    ///     tx.close().await
    /// };
    /// let (device_end, host_end, device_run, host_run) = futures::executor::block_on(join4(
    ///     device_app,
    ///     host_app,
    ///     device_runner.run(&mut PipeReader(&to_device), &mut PipeWriter(&to_host)),
    ///     host_runner.run(&mut PipeReader(&to_host), &mut PipeWriter(&to_device)),
    /// ));
    /// assert_eq!((device_end, host_end), (Ok(()), Ok(())));
    /// // Both directions finished gracefully.
    /// assert_eq!((device_run, host_run), (Ok(()), Ok(())));
    /// assert_eq!((DEVICE.stats().frames_sent, HOST.stats().frames_received), (1, 1));
    /// ```
    // r[impl framed.runtime]
    pub fn run<R: Read, W: Write>(self, reader: &mut R, writer: &mut W) -> impl Future<Output = Result<(), LinkError>> {
        async move {
            let storage = &*self.storage;
            let mut rx = pin!(rx_loop(storage, reader));
            let mut tx = pin!(tx_loop(storage, writer));
            // Both loops until both finish, or until one fails: one
            // `poll_fn` (one suspension point) rather than a `select` and
            // then an await of the other loop, for a smaller future. A
            // finished loop is not polled again (the flags live in the
            // closure: moved in, they take no room of their own).
            let (mut rx_done, mut tx_done) = (false, false);
            let result = poll_fn(move |cx| {
                if !rx_done {
                    match rx.as_mut().poll(cx) {
                        Poll::Ready(Ok(())) => rx_done = true,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => {}
                    }
                }
                if !tx_done {
                    match tx.as_mut().poll(cx) {
                        Poll::Ready(Ok(())) => tx_done = true,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => {}
                    }
                }
                if rx_done && tx_done { Poll::Ready(Ok(())) } else { Poll::Pending }
            })
            .await;
            // A loop that failed ended the link: the halves see its error.
            if let Err(e) = result {
                storage.kill_with(e);
            }
            result
        }
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
// r[impl framed.fast]
fn rx_loop<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize, R: Read>(
    storage: &FramedLinkStorage<M, SLOTS, MTU>,
    reader: &mut R,
) -> impl Future<Output = Result<(), LinkError>> {
    async move {
        let queue = storage.queue(RX);
        let mut decoder = FrameDecoder::resyncing();
        let mut slot = ReservedSlot { queue, idx: None };
        #[cfg(feature = "fast-codec")]
        let mut chunk = [0u8; MTU];
        #[cfg(not(feature = "fast-codec"))]
        let mut chunk = [0u8; UART_CHUNK];
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
            let mut input = chunk.get(..n).unwrap_or(&[]);
            let outcome = loop {
                if input.is_empty() {
                    break None;
                }
                let idx = match slot.idx {
                    Some(idx) => idx,
                    None => match poll_fn(|cx| queue.poll_reserve(cx)).await {
                        Ok(idx) => *slot.idx.insert(idx),
                        // The application dropped its receiving half.
                        Err(_) => break Some(Ok(())),
                    },
                };
                // SAFETY: slot `idx` is Reserved to this loop alone (held in
                // `slot`) until committed or cancelled; it is `MTU` bytes long.
                let dst = unsafe { core::slice::from_raw_parts_mut(queue.slot_ptr(idx).as_ptr(), MTU) };
                let (used, decoded) = decoder.decode(input, dst);
                input = input.get(used..).unwrap_or(&[]);
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
                        break Some(Ok(()));
                    }
                    Err(e) => {
                        storage.update(|s| match e {
                            FrameError::Crc => s.crc_errors += 1,
                            FrameError::Oversized => s.oversize_frames += 1,
                            FrameError::Malformed => s.malformed_frames += 1,
                        });
                        break Some(Err(match e {
                            FrameError::Crc => LinkError::CrcMismatch,
                            FrameError::Oversized => LinkError::Oversized,
                            FrameError::Malformed => LinkError::Malformed,
                        }));
                    }
                }
            };
            let discarded = decoder.take_discarded() as u64;
            let resynced = u32::from(decoder.resynced_after_discard());
            if discarded > 0 || resynced > 0 {
                storage.update(|s| {
                    s.discarded_bytes += discarded;
                    s.resyncs += resynced;
                });
            }
            if let Some(done) = outcome {
                return done;
            }
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

/// Writes out what the encoder holds, then flushes the stream if `flush`
/// (one future for both: a value the sending loop keeps across it is kept
/// across one suspension point, not two, and shares its room in the
/// loop's future with other states').
fn write_pending<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize, const B: usize, W: Write>(
    storage: &FramedLinkStorage<M, SLOTS, MTU>,
    encoder: &mut FrameEncoder<B>,
    writer: &mut W,
    flush: bool,
) -> impl Future<Output = Result<(), LinkError>> {
    async move {
        let pending = encoder.pending();
        if !pending.is_empty() {
            writer.write_all(pending).await.map_err(io_error)?;
            let n = pending.len() as u64;
            storage.update(|s| s.wire_bytes_sent += n);
        }
        encoder.consumed();
        if flush {
            writer.flush().await.map_err(io_error)?;
        }
        Ok(())
    }
}

/// The sending loop. One `write_pending` call site (a single suspension
/// point for writes: a smaller future than one per case), driven by what
/// the loop found: a frame to finish, nothing queued, the end.
fn tx_loop<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize, W: Write>(
    storage: &FramedLinkStorage<M, SLOTS, MTU>,
    writer: &mut W,
) -> impl Future<Output = Result<(), LinkError>> {
    async move {
        let queue = storage.queue(TX);
        #[cfg(feature = "fast-codec")]
        let mut encoder = FrameEncoder::<MTU>::new();
        #[cfg(not(feature = "fast-codec"))]
        let mut encoder = FrameEncoder::<UART_CHUNK>::new();
        encoder.push_delimiter();
        // The frame being encoded: its slot (freed also when the loop is
        // cancelled or fails mid-frame) and length.
        let mut frame: Option<(LentSlot<'_, M, SLOTS, MTU>, usize)> = None;
        // The queue said closed while the encoder still held bytes to
        // write: the marker follows them.
        let mut closing = false;
        loop {
            // After the write: what the loop returns (with a flush); or,
            // flushed and not returning, the loop waits for the queue.
            let mut end = None;
            let flush = match &frame {
                &Some((ref lent, len)) => {
                    // SAFETY: slot `lent.idx()` is Lent to this loop until
                    // `lent` is dropped (after the last use of `payload`); it
                    // holds `len <= MTU` committed bytes.
                    let payload = unsafe { core::slice::from_raw_parts(queue.slot_ptr(lent.idx()).as_ptr(), len) };
                    if encoder.feed_frame(payload) {
                        frame = None;
                        storage.update(|s| {
                            s.frames_sent += 1;
                            s.payload_bytes_sent += len as u64;
                        });
                        continue;
                    }
                    false
                }
                None => match if closing { Some(Ok(None)) } else { try_next(queue) } {
                    Some(Ok(Some((idx, len)))) => {
                        let lent = queue.lent(idx);
                        // SAFETY: as above; the slot is Lent to this loop.
                        let payload = unsafe { core::slice::from_raw_parts(queue.slot_ptr(idx).as_ptr(), len) };
                        encoder.begin(payload);
                        frame = Some((lent, len));
                        continue;
                    }
                    Some(Ok(None)) if encoder.pending().is_empty() => {
                        encoder.push_close_marker();
                        end = Some(Ok(()));
                        true
                    }
                    // Closed: first what is encoded, then the marker.
                    Some(Ok(None)) => {
                        closing = true;
                        false
                    }
                    // The application dropped its sending half (or the link
                    // was killed): frames already encoded still go out, so
                    // the last one sent before dropping (a handshake
                    // rejection, say) reaches the peer.
                    Some(Err(e)) => {
                        end = Some(Err(e));
                        true
                    }
                    // Nothing queued: put what is encoded on the wire first.
                    None => true,
                },
            };
            write_pending(storage, &mut encoder, writer, flush).await?;
            if let Some(end) = end {
                return end;
            }
            if flush {
                poll_fn(|cx| queue.poll_ready(cx)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{BytePipe, PipeReader, PipeWriter};
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
        let n = super::super::codec::encode_frame(b"abc", &mut bad).unwrap();
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
