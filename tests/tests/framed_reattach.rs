//! A framed link on static storage dies on a corrupt frame; a new link is
//! attached to the same storage and the same byte stream, resynchronises,
//! and carries frames; statistics count it all.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use futures::executor::block_on;
use vox_link_embedded::{BytePipe, FramedLinkStorage, PipeReader, PipeWriter};
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
