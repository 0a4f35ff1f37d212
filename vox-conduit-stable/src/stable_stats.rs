//! `StableStats`: counters of a stable conduit, readable by the application.

/// Counters of a [`StableConduit`](crate::StableConduit) since it was made.
///
/// A session whose first link dies after three payloads from the device
/// (its prologue, its hello and one message; the next is lost) resumes on
/// the next link:
///
/// ```
/// use embassy_futures::join::join4;
/// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
/// use std::sync::Arc;
/// use vox_conduit_stable::{StableConduit, StableConfig, StableStats, StableStorage};
/// use vox_link_embedded::sim::{FaultPlan, SimClock, memory_link_source};
/// use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit};
/// # #[derive(serde::Serialize, serde::Deserialize, postcard_schema::Schema)]
/// # struct Count(u32);
/// # vox_types::msg_family!(CountFamily => Count);
/// # type Storage = StableStorage<CriticalSectionRawMutex, 1024, 8, 1024, 8>;
/// # let rng: rand_chacha::ChaCha8Rng = rand_core::SeedableRng::seed_from_u64(7);
///
/// let cut = [(FaultPlan::kill_after(3), FaultPlan::NONE)];
/// let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 4, 256>(cut);
/// let config = StableConfig::DEFAULT;
/// let (device, device_driver) = StableConduit::<CountFamily, Storage>::initiator(Arc::new(Storage::new()), config)?;
/// let (host, host_driver) = StableConduit::<CountFamily, Storage>::acceptor(Arc::new(Storage::new()), config)?;
/// let (device_stats, host_stats) = (device.stats_handle(), host.stats_handle());
/// assert_eq!(device_stats.get(), StableStats::ZERO);
///
/// let device_app = async {
///     let (tx, mut rx) = device.split();
///     for n in 0..5 {
///         tx.reserve().await.unwrap().send(Count(n)).unwrap();
///     }
///     drop(tx);
///     assert!(rx.recv().await.unwrap().is_none());
/// };
/// let host_app = async {
///     let (tx, mut rx) = host.split();
///     for n in 0..5 {
///         assert_eq!(rx.recv().await.unwrap().unwrap().get::<CountFamily>().0, n, "once, in order");
///     }
///     drop(tx);
///     assert!(rx.recv().await.unwrap().is_none());
/// };
/// let clock = SimClock::new();
/// let (device_end, host_end, (), ()) = futures::executor::block_on(join4(
///     device_driver.run(dialer, clock.clone()),
///     host_driver.run(listener, rng, clock.clone()),
///     device_app,
///     host_app,
/// ));
/// assert_eq!((device_end, host_end), (Ok(()), Ok(())));
/// let (device, host) = (device_stats.get(), host_stats.get());
/// assert_eq!((device.reattachments, host.reattachments), (1, 1));
/// assert_eq!(host.messages_delivered, 5);
/// assert_eq!(device.replays, 1, "the message lost with the link went again");
/// assert_eq!(device.replay_frames, 0, "everything acknowledged");
/// # Ok::<(), vox_conduit_stable::ConfigError>(())
/// ```
// r[impl stable.stats]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StableStats {
    /// Frames written to links (data, close, acks, hellos).
    pub frames_sent: u64,
    /// Frames read from links.
    pub frames_received: u64,
    /// Messages delivered to the application's receive queue.
    pub messages_delivered: u64,
    /// Data frames sent again after a reattachment.
    pub replays: u64,
    /// Attachments after the first.
    pub reattachments: u32,
    /// Frames that skipped a sequence number (each ended an attachment).
    pub gaps: u32,
    /// Duplicate frames dropped.
    pub duplicates: u64,
    /// Link deaths reported as CRC errors by the link below.
    pub crc_errors: u32,
    /// Attachments declared dead by the silence timeout.
    pub timeouts: u32,
    /// Ack-only frames sent (acks and keepalives).
    pub acks_sent: u64,
    /// Frames in the replay buffer now.
    pub replay_frames: u32,
    /// Message bytes in the replay buffer now.
    pub replay_bytes: u32,
    /// Most frames the replay buffer ever held.
    pub replay_frames_high: u32,
    /// Most message bytes the replay buffer ever held.
    pub replay_bytes_high: u32,
    /// Frames that broke the protocol (each ended an attachment).
    pub violations: u32,
    /// Times data was ready but waited for the peer's window to open.
    pub window_waits: u64,
    /// Window updates sent at once because the application freed room
    /// after the window had closed.
    pub window_updates: u64,
    /// Data frames dropped unacknowledged because they arrived beyond the
    /// window granted (only a misbehaving peer sends them).
    pub beyond_window: u64,
    /// Times `reserve` waited longer than `timeout_ms` while messages sent
    /// to this side sat unread and its window was shut: the application
    /// waits on itself (one task pipelining more requests than the bound
    /// in [`StableConduit`](crate::StableConduit)'s docs).
    pub self_stalls: u32,
    /// Times the acceptor answered a new session with `Busy` (its accept
    /// queue was full) and the initiator tried again after a backoff.
    pub busy_retries: u32,
}

impl StableStats {
    /// All counters zero.
    pub const ZERO: Self = Self {
        frames_sent: 0,
        frames_received: 0,
        messages_delivered: 0,
        replays: 0,
        reattachments: 0,
        gaps: 0,
        duplicates: 0,
        crc_errors: 0,
        timeouts: 0,
        acks_sent: 0,
        replay_frames: 0,
        replay_bytes: 0,
        replay_frames_high: 0,
        replay_bytes_high: 0,
        violations: 0,
        window_waits: 0,
        window_updates: 0,
        beyond_window: 0,
        self_stalls: 0,
        busy_retries: 0,
    };
}
