//! A framed link on static storage dies on a corrupt frame; a new link is
//! attached to the same storage and the same byte stream, resynchronises,
//! and carries frames; statistics count it all.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use futures::executor::block_on;
use vox_link_embedded::{
    FramedLinkStorage,
    sim::{BytePipe, PipeReader, PipeWriter},
};
use vox_tests::link_kit::{recv_payload, send};
use vox_tests::stream_faults::CorruptAfterFrames;
use vox_types::{Link, LinkError, LinkRx, LinkTx};

type M = CriticalSectionRawMutex;
type Storage = FramedLinkStorage<M, 2, 64>;

static STORAGE_A: Storage = Storage::new();
static STORAGE_B: Storage = Storage::new();
static A_TO_B: BytePipe<M, 256> = BytePipe::new();
static B_TO_A: BytePipe<M, 256> = BytePipe::new();

// r[verify framed.reattach]
// r[verify framed.corrupt]
// r[verify framed.io]
// r[verify framed.runtime]
#[test]
fn corrupt_frame_kills_the_link_and_a_new_link_resyncs_on_the_same_stream() {
    // First attachment: the second frame A sends is corrupted on the wire.
    let (a, runner_a) = STORAGE_A.attach().expect("fresh storage");
    let (b, runner_b) = STORAGE_B.attach().expect("fresh storage");
    let (mut a_read, mut b_read) = (PipeReader(&B_TO_A), PipeReader(&A_TO_B));
    let (mut b_write, mut a_write) = (PipeWriter(&B_TO_A), CorruptAfterFrames::new(PipeWriter(&A_TO_B), Some(1)));
    let (atx, arx) = a.split();
    let (btx, mut brx) = b.split();
    let sender = async move {
        send(&atx, b"good").await.unwrap();
        send(&atx, b"corrupted on the wire").await.unwrap();
        atx.close().await.unwrap(); // graceful: A's runner sends its close marker
        drop(arx);
    };
    let receiver = async {
        assert_eq!(recv_payload(&mut brx).await.as_bytes(), b"good");
        let err = brx.recv().await.expect_err("the corrupt frame is an error");
        assert_eq!(err, LinkError::CrcMismatch);
        assert_eq!(brx.recv().await, Err(LinkError::CrcMismatch), "the link stays dead");
        assert!(STORAGE_B.attach().is_none(), "cannot attach while the old halves live");
    };
    let (_, _, ra, rb) = block_on(futures::future::join4(
        sender,
        receiver,
        runner_a.run(&mut a_read, &mut a_write),
        runner_b.run(&mut b_read, &mut b_write),
    ));
    assert_eq!(ra, Ok(()));
    assert_eq!(rb, Err(LinkError::CrcMismatch));
    drop((btx, brx));
    let after_error = STORAGE_B.stats();
    assert_eq!((after_error.frames_received, after_error.crc_errors), (1, 1));

    // A frame cut off mid-way (say the sender rebooted) is left on the line.
    block_on(embedded_io_async::Write::write_all(&mut PipeWriter(&A_TO_B), &[5, 1, 2])).unwrap();

    // Second attachment on the same storage and the same pipes: B discards
    // the cut frame up to A's leading delimiter.
    let (a, runner_a) = STORAGE_A.attach().expect("old link fully dropped");
    let (b, runner_b) = STORAGE_B.attach().expect("old link fully dropped");
    let mut a_write = PipeWriter(&A_TO_B);
    let (atx, _arx) = a.split();
    let (_btx, mut brx) = b.split();
    let traffic = async {
        for i in 0..50u8 {
            send(&atx, &[i; 40]).await.unwrap();
            assert_eq!(recv_payload(&mut brx).await.as_bytes(), &[i; 40]);
        }
    };
    let both = futures::future::select(
        Box::pin(traffic),
        Box::pin(futures::future::join(
            runner_a.run(&mut a_read, &mut a_write),
            runner_b.run(&mut b_read, &mut b_write),
        )),
    );
    assert!(matches!(block_on(both), futures::future::Either::Left(_)), "traffic finished first");
    let stats = STORAGE_B.stats();
    assert_eq!(stats.frames_received, 51);
    assert_eq!(stats.crc_errors, 1);
    assert_eq!((stats.resyncs, stats.discarded_bytes), (1, 3), "{stats:?}");
    assert_eq!(stats.payload_bytes_received, 4 + 50 * 40);
    let a_stats = STORAGE_A.stats();
    assert_eq!(a_stats.frames_sent, 52);
    assert!(a_stats.wire_bytes_sent > a_stats.payload_bytes_sent);
}

static STORAGE_C: Storage = Storage::new();

/// A line whose writer never completes and whose reader fails once told:
/// the cable is pulled while frames wait to be written.
struct PulledCable<'a>(&'a std::cell::Cell<bool>);

impl embedded_io_async::ErrorType for PulledCable<'_> {
    type Error = embedded_io_async::ErrorKind;
}

impl embedded_io_async::Read for PulledCable<'_> {
    async fn read(&mut self, _: &mut [u8]) -> Result<usize, Self::Error> {
        while !self.0.get() {
            embassy_futures::yield_now().await;
        }
        Err(embedded_io_async::ErrorKind::BrokenPipe)
    }
}

impl embedded_io_async::Write for PulledCable<'_> {
    async fn write(&mut self, _: &[u8]) -> Result<usize, Self::Error> {
        core::future::pending().await
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        core::future::pending().await
    }
}

// Found by the firmware's on-target self-test: payloads still queued for
// sending when the runner failed stayed "in use", so static storage could
// never be attached again.
// r[verify framed.reattach]
#[test]
fn storage_is_reusable_after_the_runner_failed_with_payloads_queued() {
    let (link, runner) = STORAGE_C.attach().expect("fresh storage");
    let (tx, rx) = link.split();
    let pulled = std::cell::Cell::new(false);
    let (mut reader, mut writer) = (PulledCable(&pulled), PulledCable(&pulled));
    let app = async {
        // The runner is stuck writing its first delimiter: both slots stay
        // queued.
        send(&tx, b"queued").await.unwrap();
        send(&tx, b"queued too").await.unwrap();
        pulled.set(true);
    };
    let (ended, ()) = block_on(futures::future::join(runner.run(&mut reader, &mut writer), app));
    assert!(matches!(ended, Err(LinkError::Io(_))), "{ended:?}");
    drop((tx, rx));
    assert!(STORAGE_C.attach().is_some(), "every slot is free again once the halves are dropped");
}

static STORAGE_D: Storage = Storage::new();
static STORAGE_E: Storage = Storage::new();
static D_TO_E: BytePipe<M, 256> = BytePipe::new();
static E_TO_D: BytePipe<M, 256> = BytePipe::new();

// Found by the firmware tests: an application that sends one last payload
// (a handshake rejection) and drops both halves, receiving half first, lost
// that payload: the runner stopped with it encoded but not yet written.
// r[verify framed.io]
#[test]
fn the_last_payload_before_dropping_both_halves_still_goes_out() {
    let (d, runner_d) = STORAGE_D.attach().expect("fresh storage");
    let (e, runner_e) = STORAGE_E.attach().expect("fresh storage");
    let (dtx, drx) = d.split();
    let (_etx, mut erx) = e.split();
    let (mut d_read, mut d_write) = (PipeReader(&E_TO_D), PipeWriter(&D_TO_E));
    let (mut e_read, mut e_write) = (PipeReader(&D_TO_E), PipeWriter(&E_TO_D));
    let app_d = async move {
        send(&dtx, b"last words").await.unwrap();
        drop(drx);
        drop(dtx);
    };
    let app_e = async {
        let first = erx.recv().await.map(|p| p.map(|p| p.as_bytes().to_vec()));
        (first, erx.recv().await.map(|p| p.is_some()))
    };
    let side_d = async {
        let ended = runner_d.run(&mut d_read, &mut d_write).await;
        // Whatever D wrote is on the line; then the line ends.
        D_TO_E.close();
        ended
    };
    let side_e = async {
        futures::pin_mut!(app_e);
        let runner = runner_e.run(&mut e_read, &mut e_write);
        futures::pin_mut!(runner);
        // If E's runner ends first (the line ended), what reached E is
        // still delivered.
        match futures::future::select(app_e, runner).await {
            futures::future::Either::Left((got, _)) => got,
            futures::future::Either::Right((_, app_e)) => app_e.await,
        }
    };
    let (((), ended_d), (first, second)) =
        block_on(futures::future::join(futures::future::join(app_d, side_d), side_e));
    assert_eq!(first, Ok(Some(b"last words".to_vec())), "the last payload arrived");
    assert!(second.is_err(), "then the link ends (no end-of-stream marker): {second:?}");
    assert_eq!(ended_d, Err(LinkError::Closed));
}
