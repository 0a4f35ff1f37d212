//! Pipelined request/reply over loopback TCP, `StableConduit` against
//! `BareConduit` in the same run: the client has a sending task and a
//! reading task (no request window), the server answers in a plain loop.
//! Prints requests per second and the ratio.
//!
//! `cargo bench -p vox-tests --bench tcp_pipelined [-- ROUNDS]`

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use vox_conduit_bare::BareConduit;
use vox_conduit_stable::{StableConduit, StableConfig, StableStorage};
use vox_link_embedded::host::{TcpDialer, TcpLink, TcpListenerSource, spawn_framed};
use vox_tests::conduit_kit::{KitFamily, kit_msg};
use vox_tests::stable_harness::{TokioClock, rng};
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit, SessionRole};

const N: u32 = 50_000;
type Storage = StableStorage<CriticalSectionRawMutex, 8192, 64, 8192, 64>;
type Stable = StableConduit<KitFamily, Storage>;

async fn server<C: Conduit<Msg = KitFamily>>(conduit: C) {
    let (tx, mut rx) = conduit.split();
    while let Ok(Some(req)) = rx.recv().await {
        let id = req.get::<KitFamily>().id;
        let Ok(permit) = tx.reserve().await else { return };
        if permit.send(kit_msg(id, "reply")).is_err() {
            return;
        }
    }
}

/// Sends `N` requests from one task while another reads the replies.
async fn client<C: Conduit<Msg = KitFamily>>(conduit: C) -> Duration {
    let (tx, mut rx) = conduit.split();
    let start = Instant::now();
    let send = async {
        for id in 0..N {
            tx.reserve().await.unwrap().send(kit_msg(id, "request")).unwrap();
        }
    };
    let receive = async {
        for id in 0..N {
            assert_eq!(rx.recv().await.unwrap().unwrap().get::<KitFamily>().id, id);
        }
    };
    tokio::join!(send, receive);
    start.elapsed()
}

async fn bare() -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let c = BareConduit::<TcpLink, KitFamily>::connect(spawn_framed(stream).unwrap().0, SessionRole::Acceptor)
            .await
            .unwrap();
        server(c).await;
    });
    let stream = TcpStream::connect(addr).await.unwrap();
    let c = BareConduit::<TcpLink, KitFamily>::connect(spawn_framed(stream).unwrap().0, SessionRole::Initiator)
        .await
        .unwrap();
    client(c).await
}

async fn stable() -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = StableConfig { ack_every: 16, ..StableConfig::DEFAULT };
    let (c, cd) = Stable::initiator(Arc::new(Storage::new()), config).unwrap();
    let (s, sd) = Stable::acceptor(Arc::new(Storage::new()), config).unwrap();
    let d1 = tokio::spawn(cd.run(TcpDialer::new(addr), TokioClock));
    let d2 = tokio::spawn(sd.run(TcpListenerSource::new(listener), rng(1), TokioClock));
    tokio::spawn(server(s));
    let t = client(c).await;
    d1.abort();
    d2.abort();
    t
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args().filter_map(|a| a.parse().ok()).next().unwrap_or(3);
    let (mut b, mut s) = (Duration::MAX, Duration::MAX);
    for _ in 0..rounds {
        b = b.min(bare().await);
        s = s.min(stable().await);
    }
    let rate = |d: Duration| f64::from(N) / d.as_secs_f64();
    println!("{N} pipelined request/replies over loopback TCP (sender and reader tasks, no window), best of {rounds}");
    println!("| conduit | requests/s | time ratio to bare |");
    println!("|---------|-----------:|-------------------:|");
    println!("| BareConduit | {:.0} | 1.00 |", rate(b));
    println!("| StableConduit | {:.0} | {:.2} |", rate(s), s.as_secs_f64() / b.as_secs_f64());
}
