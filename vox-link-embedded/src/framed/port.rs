//! `FramedPort`: keeps a framed link on one byte stream, link after link:
//! attach a fresh link to the port's storage, hand it over, run it until
//! it dies, and again; the storage's statistics add up across links.

use super::{FramedLink, FramedLinkStorage, FramedStats};
use core::convert::Infallible;
use embassy_sync::blocking_mutex::raw::RawMutex;
use embedded_io_async::{Read, Write};
use vox_types::{Clock, LinkError, StorageRef};

/// Milliseconds to wait before trying again to attach while the previous
/// link's halves are still alive (the conduit drops a dead link at once,
/// so this is rare and short).
const ATTACH_RETRY_MS: u64 = 1;

/// One byte stream (a UART, a USB CDC-ACM connection, a socket) and the
/// storage of the framed links that run on it, one at a time. No
/// allocator, no executor: its methods are futures the application runs.
///
/// - [`serve`](Self::serve): links one after another until the stream
///   itself ends (a socket's end or reset; a UART's never ends it).
/// - [`run_link`](Self::run_link): one link (one USB connection).
/// - [`stats`](Self::stats): counters summed over every link so far.
///
/// Each new link is handed to `offer`, typically a conduit's link source
/// (`|link| links.offer(link)` on a `LinkChannel`).
///
/// ```
/// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
/// use vox_link_embedded::FramedPort;
/// use vox_link_embedded::framed::FramedLinkStorage;
///
/// static STORAGE: FramedLinkStorage<CriticalSectionRawMutex, 2, 256> = FramedLinkStorage::new();
/// let port = FramedPort::new(&STORAGE);
/// // In the firmware's serial-port task, with the UART's halves and a
/// // clock: `port.serve(&mut uart_rx, &mut uart_tx, &clock, |link| links.offer(link)).await`.
/// assert_eq!(port.stats().frames_sent, 0);
/// ```
pub struct FramedPort<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> {
    storage: StorageRef<FramedLinkStorage<M, SLOTS, MTU>>,
}

impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> FramedPort<M, SLOTS, MTU> {
    /// A port whose links live in `storage` (a `static`, or an `Arc` with
    /// `alloc`).
    pub fn new(storage: impl Into<StorageRef<FramedLinkStorage<M, SLOTS, MTU>>>) -> Self {
        Self { storage: storage.into() }
    }

    /// Counters of every link that ran on this port's storage.
    pub fn stats(&self) -> FramedStats {
        self.storage.stats()
    }

    /// Serves links on the stream until the stream itself ends (returned:
    /// [`LinkError::Reset`] for its end of file, or an I/O error that says
    /// the connection is gone: reset, aborted, not connected, broken
    /// pipe). After any other end of a link (a corrupt frame, a UART's
    /// framing or overrun error, the conduit dropping the link) a fresh
    /// link is attached and offered, resynchronising at the next frame
    /// delimiter; a link that ended without reading a byte is followed by
    /// a short wait, so nothing spins. Drop the future to stop.
    ///
    /// The loop is written out here rather than calling
    /// [`run_link`](Self::run_link), one future fewer.
    // r[impl framed.io]
    pub fn serve<R, W, C, F, O>(
        &self,
        rx: &mut R,
        tx: &mut W,
        clock: &C,
        mut offer: F,
    ) -> impl Future<Output = LinkError>
    where
        R: Read,
        W: Write,
        C: Clock,
        F: FnMut(FramedLink<M, SLOTS, MTU>) -> O,
        O: Future<Output = ()>,
    {
        async move {
            loop {
                let Some((link, runner)) = FramedLinkStorage::attach_in(self.storage.clone()) else {
                    clock.sleep_until(clock.now().add_millis(ATTACH_RETRY_MS)).await;
                    continue;
                };
                offer(link).await;
                let read_before = self.storage.wire_bytes_received();
                let ended = runner.run(rx, tx).await;
                link_ended(&ended);
                if let Err(e) = ended
                    && stream_ended(&e)
                {
                    return e;
                }
                if self.storage.wire_bytes_received() == read_before {
                    clock.sleep_until(clock.now().add_millis(ATTACH_RETRY_MS)).await;
                }
            }
        }
    }

    /// [`serve`](Self::serve) for a stream that never ends (a UART): links
    /// one after another, forever, each handed to `offer`. A link that
    /// ended in an error (a corrupt frame, a UART's framing or overrun
    /// error) is followed by a fresh one after a 1 ms wait, so a stream
    /// that fails at once every time cannot make the loop spin; one the
    /// conduit dropped, at once. Takes the stream's halves and the clock by
    /// value (pass `&mut` to keep them). Written apart from `serve` for
    /// the firmware's flash: with no way out, its future has no return
    /// path (on the lm3s6965 device, `serve` in a loop costs 452 B of
    /// flash over the hand-written loop this replaced, this 64 B). A plain
    /// function returning an `async move` block (its output `Infallible`,
    /// as a future's output cannot be `!` on stable Rust): an `async fn`
    /// would keep its arguments twice in the task's RAM.
    ///
    /// ```
    /// # use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
    /// # use vox_link_embedded::{FramedPort, LinkChannel, FramedLink};
    /// # use vox_link_embedded::framed::FramedLinkStorage;
    /// # use vox_types::Clock;
    /// # async fn uart_task<R: embedded_io_async::Read, W: embedded_io_async::Write>(
    /// #     uart_rx: R, uart_tx: W, clock: impl Clock) -> ! {
    /// static STORAGE: FramedLinkStorage<CriticalSectionRawMutex, 2, 256> = FramedLinkStorage::new();
    /// static LINKS: LinkChannel<CriticalSectionRawMutex, FramedLink<CriticalSectionRawMutex, 2, 256>> =
    ///     LinkChannel::new();
    /// // Never returns: `Infallible` has no value.
    /// match FramedPort::new(&STORAGE).serve_forever(uart_rx, uart_tx, clock, |link| LINKS.offer(link)).await {}
    /// # }
    /// ```
    pub fn serve_forever<R, W, C, F, O>(
        self,
        mut rx: R,
        mut tx: W,
        clock: C,
        mut offer: F,
    ) -> impl Future<Output = Infallible>
    where
        R: Read,
        W: Write,
        C: Clock,
        F: FnMut(FramedLink<M, SLOTS, MTU>) -> O,
        O: Future<Output = ()>,
    {
        // One place that waits: a smaller future (firmware flash).
        let mut pause = false;
        async move {
            loop {
                if pause {
                    clock.sleep_until(clock.now().add_millis(ATTACH_RETRY_MS)).await;
                }
                let Some((link, runner)) = FramedLinkStorage::attach_in(self.storage.clone()) else {
                    pause = true;
                    continue;
                };
                offer(link).await;
                let ended = runner.run(&mut rx, &mut tx).await;
                link_ended(&ended);
                pause = ended.is_err();
            }
        }
    }

    /// One link on the stream: waits until the previous link's halves are
    /// gone, hands a fresh link to `offer`, and runs it until it ends (how
    /// is returned). For a stream that comes and goes, such as a USB port
    /// the host opens and closes: one `run_link` per opening.
    pub fn run_link<R, W, C, O>(
        &self,
        rx: &mut R,
        tx: &mut W,
        clock: &C,
        offer: impl FnOnce(FramedLink<M, SLOTS, MTU>) -> O,
    ) -> impl Future<Output = Result<(), LinkError>>
    where
        R: Read,
        W: Write,
        C: Clock,
        O: Future<Output = ()>,
    {
        async move {
            let (link, runner) = loop {
                match FramedLinkStorage::attach_in(self.storage.clone()) {
                    Some(attached) => break attached,
                    None => clock.sleep_until(clock.now().add_millis(ATTACH_RETRY_MS)).await,
                }
            };
            offer(link).await;
            let read_before = self.storage.wire_bytes_received();
            let ended = runner.run(rx, tx).await;
            link_ended(&ended);
            if self.storage.wire_bytes_received() == read_before {
                // Nothing was read: a caller calling again at once must not spin.
                clock.sleep_until(clock.now().add_millis(ATTACH_RETRY_MS)).await;
            }
            ended
        }
    }
}

/// Whether a link's end is the byte stream's own: its end of file, or an
/// I/O error saying the connection is gone. A UART's framing, parity or
/// overrun errors are not: they end one link.
fn stream_ended(e: &LinkError) -> bool {
    use embedded_io_async::ErrorKind as K;
    matches!(
        e,
        LinkError::Reset | LinkError::Io(K::ConnectionReset | K::ConnectionAborted | K::NotConnected | K::BrokenPipe)
    )
}

#[cfg(feature = "defmt")]
fn link_ended(ended: &Result<(), LinkError>) {
    defmt::info!("framed link ended: {}", ended);
}

#[cfg(not(feature = "defmt"))]
fn link_ended(_ended: &Result<(), LinkError>) {}
