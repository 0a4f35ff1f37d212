//! defmt over the conduit: the [`DefmtFrames`] topic (one raw defmt frame
//! per sample) and, with feature `defmt`, [`DefmtLogger`], a defmt global
//! logger that publishes each frame on it: latest-N, lossy and counted,
//! never waiting, callable from interrupt handlers.
//!
//! A firmware picks one defmt transport at build time, as defmt allows one
//! global logger per program: a probe's (`defmt-rtt`), semihosting's
//! (`defmt-semihosting`), or this one, with [`defmt_global_logger!`]. The
//! host decodes the frames with the firmware's ELF (its defmt table):
//! `defmt_decoder::Table::decode` takes one frame.

crate::declare! {
    /// The device's defmt log: each sample one raw (unencoded) defmt frame,
    /// as `defmt::Logger::write` received it between `acquire` and
    /// `release`. Decode with the firmware ELF's defmt table.
    pub topic DefmtFrames = "vox/defmt": &'a [u8];
}

#[cfg(feature = "defmt")]
pub use logger::DefmtLogger;

#[cfg(feature = "defmt")]
mod logger {
    use super::DefmtFrames;
    use crate::{Delivery, Publication};
    use core::cell::RefCell;
    use critical_section::RestoreState;
    use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;

    /// The frame being logged.
    struct Frame<const BUF: usize> {
        bytes: [u8; BUF],
        len: usize,
        /// Longer than `BUF`, or interleaved with a nested one: dropped.
        spoiled: bool,
        /// Nesting of `acquire` (1 while one frame is logged).
        depth: u8,
        /// What the outer `acquire` must give back to `release`.
        restore: RestoreState,
        /// Frames dropped because they did not fit or were interleaved.
        spoiled_count: u32,
    }

    /// A defmt logger that publishes each defmt frame on the
    /// [`DefmtFrames`] topic: the newest `N` frames of up to `BUF - 2`
    /// bytes each wait for the host; older ones are dropped and counted
    /// (a lossy ring: logging never waits, even with no host). Put it in
    /// a `static`, install it with [`defmt_global_logger!`](crate::defmt_global_logger)
    /// and publish [`publication`](Self::publication) with
    /// [`Server::publish`](crate::Server::publish).
    ///
    /// A frame is built in a critical section, from `acquire` to
    /// `release`, so interrupt handlers log too; a frame longer than the
    /// buffer is dropped (counted in [`frames_too_long`](Self::frames_too_long)).
    ///
    /// RAM: `N × (BUF + 12) + BUF + 64` bytes.
    ///
    /// ```ignore
    /// // In the firmware (one global logger per program):
    /// static DEFMT_LOG: vox_rpc::DefmtLogger<4, 48> = vox_rpc::DefmtLogger::new();
    /// vox_rpc::defmt_global_logger!(DEFMT_LOG);
    /// // ... and in the server:
    /// let server = vox_rpc::Server::new().publish(DEFMT_LOG.publication());
    /// ```
    // r[impl rpc.log]
    pub struct DefmtLogger<const N: usize, const BUF: usize> {
        publication: Publication<DefmtFrames, CriticalSectionRawMutex, N, BUF>,
        frame: critical_section::Mutex<RefCell<Frame<BUF>>>,
    }

    impl<const N: usize, const BUF: usize> Default for DefmtLogger<N, BUF> {
        fn default() -> Self {
            Self::new()
        }
    }

    impl<const N: usize, const BUF: usize> DefmtLogger<N, BUF> {
        /// An empty log.
        pub const fn new() -> Self {
            Self {
                publication: Publication::new(Delivery::Lossy),
                frame: critical_section::Mutex::new(RefCell::new(Frame {
                    bytes: [0; BUF],
                    len: 0,
                    spoiled: false,
                    depth: 0,
                    restore: RestoreState::invalid(),
                    spoiled_count: 0,
                })),
            }
        }

        /// The topic to publish with [`Server::publish`](crate::Server::publish);
        /// its [`stats`](Publication::stats) count frames logged and dropped.
        pub fn publication(&self) -> &Publication<DefmtFrames, CriticalSectionRawMutex, N, BUF> {
            &self.publication
        }

        /// Frames dropped because they were longer than the buffer (or
        /// interleaved with a nested log call, which defmt forbids).
        pub fn frames_too_long(&self) -> u32 {
            critical_section::with(|cs| self.frame.borrow_ref(cs).spoiled_count)
        }

        /// `defmt::Logger::acquire`: enters a critical section (held
        /// until [`release`](Self::release)) and starts a frame.
        pub fn acquire(&self) {
            // SAFETY: the matching `critical_section::release` is in
            // `release` (the outer pair) or just below (a nested call), in
            // the reverse order of acquisition.
            let restore = unsafe { critical_section::acquire() };
            let nested = critical_section::with(|cs| {
                let mut f = self.frame.borrow_ref_mut(cs);
                f.depth = f.depth.saturating_add(1);
                if f.depth == 1 {
                    f.restore = restore;
                    f.len = 0;
                    f.spoiled = false;
                    false
                } else {
                    // A log call while formatting another: the two frames'
                    // bytes interleave, so the outer one is dropped.
                    f.spoiled = true;
                    true
                }
            });
            if nested {
                // SAFETY: the critical section acquired above, released in
                // order; the outer one stays held.
                unsafe { critical_section::release(restore) };
            }
        }

        /// `defmt::Logger::write`: adds bytes to the frame being logged.
        pub fn write(&self, bytes: &[u8]) {
            critical_section::with(|cs| {
                let mut f = self.frame.borrow_ref_mut(cs);
                let f = &mut *f;
                let end = f.len.saturating_add(bytes.len());
                match f.bytes.get_mut(f.len..end) {
                    Some(room) if f.depth > 0 => {
                        room.copy_from_slice(bytes);
                        f.len = end;
                    }
                    _ => f.spoiled = true,
                }
            });
        }

        /// `defmt::Logger::release`: publishes the frame (dropping the
        /// oldest held one when the ring is full) and leaves the critical
        /// section. Does nothing without an `acquire`.
        ///
        /// # Safety
        /// Call it only to end an [`acquire`](Self::acquire) made in the
        /// same execution context (as defmt does): it leaves the critical
        /// section that `acquire` entered.
        pub unsafe fn release(&self) {
            let outer = critical_section::with(|cs| {
                let mut f = self.frame.borrow_ref_mut(cs);
                match f.depth {
                    0 => None,
                    1 => {
                        f.depth = 0;
                        if f.spoiled {
                            f.spoiled_count = f.spoiled_count.wrapping_add(1);
                        } else {
                            let frame = f.bytes.get(..f.len).unwrap_or(&[]);
                            // Lossy: never full; a frame too large for an
                            // entry is counted by the publication.
                            let _ = self.publication.try_publish(&frame);
                        }
                        Some(f.restore)
                    }
                    _ => {
                        f.depth -= 1;
                        None
                    }
                }
            });
            if let Some(restore) = outer {
                // SAFETY: the state `acquire` got when it entered the
                // critical section; the caller pairs this with it.
                unsafe { critical_section::release(restore) };
            }
        }
    }
}

/// Makes a [`DefmtLogger`] `static` the program's defmt global logger
/// (feature `defmt`; the crate calling it depends on `defmt`). One per
/// program: a firmware using it has no other defmt transport
/// (`defmt-rtt`, `defmt-semihosting`).
///
/// ```ignore
/// static DEFMT_LOG: vox_rpc::DefmtLogger<4, 48> = vox_rpc::DefmtLogger::new();
/// vox_rpc::defmt_global_logger!(DEFMT_LOG);
/// ```
#[cfg(feature = "defmt")]
#[macro_export]
macro_rules! defmt_global_logger {
    ($logger:path) => {
        #[defmt::global_logger]
        struct VoxDefmtGlobalLogger;

        // SAFETY: defmt calls `acquire`, `write`s, then `release`, from one
        // context at a time; the logger holds a critical section from
        // `acquire` to `release`, so frames never interleave.
        unsafe impl defmt::Logger for VoxDefmtGlobalLogger {
            fn acquire() {
                $logger.acquire()
            }
            unsafe fn flush() {}
            unsafe fn release() {
                // SAFETY: defmt pairs every `release` with its `acquire`.
                unsafe { $logger.release() }
            }
            unsafe fn write(bytes: &[u8]) {
                $logger.write(bytes)
            }
        }
    };
}

#[cfg(all(test, feature = "defmt"))]
mod tests {
    use super::*;
    use crate::PublicationState;

    /// The frames the publication holds, oldest first.
    fn held<const N: usize, const BUF: usize>(log: &DefmtLogger<N, BUF>) -> std::vec::Vec<std::vec::Vec<u8>> {
        let p: &dyn PublicationState = log.publication();
        p.on_session();
        p.on_subscribe(u16::MAX);
        let mut frames = std::vec::Vec::new();
        while p.send_next(&mut |_, _, bytes| {
            let frame: &[u8] = postcard::from_bytes(bytes).unwrap_or(&[]);
            frames.push(frame.to_vec());
            true
        }) {}
        frames
    }

    fn log<const N: usize, const BUF: usize>(logger: &DefmtLogger<N, BUF>, parts: &[&[u8]]) {
        logger.acquire();
        for part in parts {
            logger.write(part);
        }
        // SAFETY: ends the `acquire` above.
        unsafe { logger.release() };
    }

    // r[verify rpc.log]
    #[test]
    fn frames_are_published_whole_newest_n_kept_and_drops_counted() {
        let logger = DefmtLogger::<2, 16>::new();
        log(&logger, &[b"\x01\x00", b"one"]);
        log(&logger, &[b"\x02\x00", b"two"]);
        log(&logger, &[b"\x03\x00", b"three"]);
        assert_eq!(held(&logger), [b"\x02\x00two".to_vec(), b"\x03\x00three".to_vec()]);
        let stats = logger.publication().stats();
        assert_eq!((stats.published, stats.dropped), (3, 1), "the oldest frame was dropped, counted");
        assert_eq!(logger.frames_too_long(), 0);
    }

    #[test]
    fn a_frame_longer_than_the_buffer_is_dropped_and_counted() {
        let logger = DefmtLogger::<2, 8>::new();
        log(&logger, &[b"\x01\x00", b"far too long"]);
        log(&logger, &[b"\x02\x00ok"]);
        assert_eq!(held(&logger), [b"\x02\x00ok".to_vec()]);
        assert_eq!(logger.frames_too_long(), 1);
    }

    #[test]
    fn a_nested_log_call_spoils_only_the_outer_frame_and_release_without_acquire_does_nothing() {
        let logger = DefmtLogger::<4, 16>::new();
        // SAFETY: no acquire is outstanding; `release` then does nothing.
        unsafe { logger.release() };
        logger.acquire();
        logger.write(b"outer");
        logger.acquire();
        logger.write(b"inner");
        // SAFETY: ends the inner, then the outer `acquire`.
        unsafe { logger.release() };
        // SAFETY: as above.
        unsafe { logger.release() };
        log(&logger, &[b"next"]);
        assert_eq!(held(&logger), [b"next".to_vec()]);
        assert_eq!(logger.frames_too_long(), 1);
    }
}

#[cfg(test)]
mod key_tests {
    use crate::Topic;

    /// The topic's key is on the wire (PROTOCOL.md 12.5): frozen.
    #[test]
    fn the_defmt_topic_key_is_frozen() {
        assert_eq!(super::DefmtFrames::KEY.0, 0x4ebd_e3af);
    }
}
