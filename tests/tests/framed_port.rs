//! `FramedPort`: one byte stream, links one after another on the same
//! storage, whose counters add up to the sum of every link's.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use std::sync::Arc;
use std::time::Duration;
use vox_link_embedded::FramedPort;
use vox_link_embedded::LinkChannel;
use vox_link_embedded::framed::{FramedLink, FramedLinkStorage, FramedStats};
use vox_link_embedded::host::TokioClock;
use vox_link_embedded::sim::{BytePipe, PipeReader, PipeWriter};
use vox_types::{Link, LinkRx, LinkSource, LinkTx, LinkTxPermit, WriteSlot};

type M = CriticalSectionRawMutex;
type Pipe = BytePipe<M, 4096>;

async fn put(tx: &impl LinkTx, bytes: &[u8]) {
    let mut slot = tx.reserve().await.unwrap().alloc(bytes.len()).unwrap();
    slot.as_mut_slice().copy_from_slice(bytes);
    slot.commit();
}

// r[verify framed.io]
#[tokio::test(flavor = "current_thread")]
async fn a_port_serves_link_after_link_and_its_counters_are_the_sum_of_the_links() {
    let (a_to_b, b_to_a) = (Arc::new(Pipe::new()), Arc::new(Pipe::new()));
    // Side A: the port, offering each link through a channel.
    let links: Arc<LinkChannel<M, FramedLink<M, 2, 64>>> = Arc::new(LinkChannel::new());
    let port = Arc::new(FramedPort::new(Arc::new(FramedLinkStorage::<M, 2, 64>::new())));
    let serving = {
        let (links, port) = (links.clone(), port.clone());
        let (mut reader, mut writer) = (PipeReader(b_to_a.clone()), PipeWriter(a_to_b.clone()));
        tokio::spawn(async move { port.serve(&mut reader, &mut writer, &TokioClock, |l| links.offer(l)).await })
    };
    // Side B: a fresh storage per link, its counters summed by hand.
    let (mut b_reader, mut b_writer) = (PipeReader(a_to_b.clone()), PipeWriter(b_to_a.clone()));
    let mut b_total = FramedStats::default();
    let mut a_payloads = 0u32;
    for round in 0..3u8 {
        let (b_link, b_runner) = FramedLinkStorage::<M, 2, 64>::new_shared();
        let b_stats = b_runner.stats_handle();
        let exchange = async {
            let (a_tx, mut a_rx) = links.receiver().next_link().await.unwrap().split();
            let (b_tx, mut b_rx) = b_link.split();
            for i in 0..round + 2 {
                put(&a_tx, &[round, i, 0xAA]).await;
                assert_eq!(b_rx.recv().await.unwrap().unwrap().as_bytes(), &[round, i, 0xAA]);
            }
            put(&b_tx, &[round]).await;
            assert_eq!(a_rx.recv().await.unwrap().unwrap().as_bytes(), &[round]);
            u32::from(round) + 2
        };
        let b_running = b_runner.run(&mut b_reader, &mut b_writer);
        let (sent, _ended) = tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(exchange, b_running) })
            .await
            .expect("the round completes");
        a_payloads += sent;
        b_total += b_stats.get();
    }
    // Let A read what B's last link wrote.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let a = port.stats();
    assert_eq!(a.frames_sent, a_payloads, "A's payloads over three links");
    // The bytes on the wire add up too (the fields a hand-written loop once
    // dropped): every byte B's links wrote, A read, and the other way.
    assert_eq!(a.wire_bytes_received, b_total.wire_bytes_sent, "B's wire bytes, all read by A");
    assert_eq!(a.wire_bytes_sent, b_total.wire_bytes_received, "A's wire bytes, all read by B's links");
    assert!(a.wire_bytes_sent > u64::from(a_payloads) * 3, "the wire bytes were counted");
    assert_eq!((a.discarded_bytes, b_total.discarded_bytes), (0, 0), "a clean line discards nothing");
    assert_eq!(a.frames_sent, b_total.frames_received, "what A sent is what B's links received");
    assert_eq!(a.payload_bytes_sent, b_total.payload_bytes_received);
    assert_eq!(a.frames_received, b_total.frames_sent, "and the other way");
    assert_eq!(a.frames_received, 3);
    assert_eq!(a.crc_errors + b_total.crc_errors, 0);
    serving.abort();
}
