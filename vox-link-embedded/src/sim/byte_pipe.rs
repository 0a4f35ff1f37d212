//! `BytePipe`: a bounded in-memory byte stream implementing
//! `embedded-io-async` `Read`/`Write`: a stand-in for a UART or a socket.

use core::cell::RefCell;
use core::convert::Infallible;
use core::future::poll_fn;
use core::ops::Deref;
use core::task::Poll;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::waitqueue::WakerRegistration;
use heapless::Deque;

struct PipeState<const N: usize> {
    bytes: Deque<u8, N>,
    writer_closed: bool,
    reader_waker: WakerRegistration,
    writer_waker: WakerRegistration,
}

/// A one-way byte stream holding at most `N` bytes in flight. Writes wait
/// while it is full, reads while it is empty.
///
/// ```
/// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
/// use embedded_io_async::{Read, Write};
/// use vox_link_embedded::sim::{BytePipe, PipeReader, PipeWriter};
///
/// # futures::executor::block_on(async {
/// let wire = BytePipe::<CriticalSectionRawMutex, 16>::new();
/// let (mut rx, mut tx) = (PipeReader(&wire), PipeWriter(&wire));
/// tx.write_all(b"abc").await.unwrap();
/// assert_eq!(wire.len(), 3);
/// wire.close();
/// let mut buf = [0u8; 16];
/// let n = rx.read(&mut buf).await.unwrap();
/// assert_eq!(&buf[..n], b"abc");
/// // Closed and drained: end of file.
/// assert_eq!(rx.read(&mut buf).await.unwrap(), 0);
/// # });
/// ```
pub struct BytePipe<M: RawMutex, const N: usize> {
    state: Mutex<M, RefCell<PipeState<N>>>,
}

impl<M: RawMutex, const N: usize> BytePipe<M, N> {
    /// An empty pipe, usable in a `static`.
    pub const fn new() -> Self {
        Self {
            state: Mutex::new(RefCell::new(PipeState {
                bytes: Deque::new(),
                writer_closed: false,
                reader_waker: WakerRegistration::new(),
                writer_waker: WakerRegistration::new(),
            })),
        }
    }

    /// Ends the stream: once drained, reads return 0 (end of file).
    pub fn close(&self) {
        self.state.lock(|s| {
            let mut s = s.borrow_mut();
            s.writer_closed = true;
            s.reader_waker.wake();
        });
    }

    /// Bytes currently buffered.
    pub fn len(&self) -> usize {
        self.state.lock(|s| s.borrow().bytes.len())
    }

    /// Whether no bytes are buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Discards every buffered byte (a line glitch).
    pub fn clear(&self) {
        self.state.lock(|s| {
            let mut s = s.borrow_mut();
            s.bytes.clear();
            s.writer_waker.wake();
        });
    }
}

impl<M: RawMutex, const N: usize> Default for BytePipe<M, N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Reading end of a [`BytePipe`] reached through `D` (`&BytePipe`, `Arc<BytePipe>`).
pub struct PipeReader<D>(pub D);

/// Writing end of a [`BytePipe`] reached through `D` (`&BytePipe`, `Arc<BytePipe>`).
pub struct PipeWriter<D>(pub D);

impl<D> embedded_io_async::ErrorType for PipeReader<D> {
    type Error = Infallible;
}

impl<D> embedded_io_async::ErrorType for PipeWriter<D> {
    type Error = Infallible;
}

impl<M: RawMutex, const N: usize, D: Deref<Target = BytePipe<M, N>>> embedded_io_async::Read for PipeReader<D> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            self.0.state.lock(|s| {
                let mut s = s.borrow_mut();
                if s.bytes.is_empty() {
                    if s.writer_closed {
                        return Poll::Ready(Ok(0));
                    }
                    s.reader_waker.register(cx.waker());
                    return Poll::Pending;
                }
                let mut n = 0;
                for dst in buf.iter_mut() {
                    match s.bytes.pop_front() {
                        Some(b) => *dst = b,
                        None => break,
                    }
                    n += 1;
                }
                s.writer_waker.wake();
                Poll::Ready(Ok(n))
            })
        })
        .await
    }
}

impl<M: RawMutex, const N: usize, D: Deref<Target = BytePipe<M, N>>> embedded_io_async::Write for PipeWriter<D> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            self.0.state.lock(|s| {
                let mut s = s.borrow_mut();
                let mut n = 0;
                for &b in buf {
                    if s.bytes.push_back(b).is_err() {
                        break;
                    }
                    n += 1;
                }
                if n == 0 {
                    s.writer_waker.register(cx.waker());
                    return Poll::Pending;
                }
                s.reader_waker.wake();
                Poll::Ready(Ok(n))
            })
        })
        .await
    }

    async fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}
