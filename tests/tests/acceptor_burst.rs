//! A burst of new sessions that fits the table is admitted whole: 1,000
//! initiators dial one `StableAcceptor` with a 1,000-session table over
//! loopback TCP at once, and an accept loop that only spawns tasks takes
//! every one; none is refused (`Busy` or `TableFull`), and each gets its
//! reply.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpSocket;
use vox_conduit_stable::{AcceptorConfig, StableAcceptor, StableConduit, StableConfig, StableStorage};
use vox_link_embedded::host::{TcpDialer, TcpLink, TcpListenerSource, TokioClock};
use vox_tests::conduit_kit::{KitFamily, kit_msg};
use vox_tests::stable_harness::rng;
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit};

type M = CriticalSectionRawMutex;
type Storage = StableStorage<M, 1024, 8, 1024, 8>;

const CLIENTS: usize = 1_000;

/// Makes sure this process may hold both ends of every connection (and
/// some): raises the soft open-file limit to what is needed, or says
/// why the machine cannot run the test.
fn open_files_for(needed: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `getrlimit` writes into the `rlimit` we own.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(got, 0, "getrlimit(RLIMIT_NOFILE) failed");
    if limit.rlim_cur >= needed {
        return;
    }
    assert!(
        limit.rlim_max >= needed,
        "this test holds {needed} open files; the hard limit is {} (raise it with `ulimit -Hn`)",
        limit.rlim_max
    );
    limit.rlim_cur = needed;
    // SAFETY: `setrlimit` reads the `rlimit` we own.
    let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(set, 0, "setrlimit(RLIMIT_NOFILE, {needed}) failed");
}

// r[verify core.burst]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_1000_initiators_that_fits_the_table_is_admitted_whole() {
    open_files_for(2 * CLIENTS as u64 + 256);
    let somaxconn: usize =
        std::fs::read_to_string("/proc/sys/net/core/somaxconn").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    assert!(somaxconn >= CLIENTS, "the listen backlog is capped at {somaxconn} (net.core.somaxconn); {CLIENTS} needed");
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(CLIENTS as u32).unwrap();
    let addr = listener.local_addr().unwrap();
    let config = StableConfig { timeout_ms: 5_000, keepalive_ms: 1_000, linger_ms: 5_000, ..StableConfig::DEFAULT };
    let (mut acceptor, runner) = StableAcceptor::<KitFamily, Storage, M, TcpLink>::new(
        TcpListenerSource::new(listener),
        TokioClock,
        config,
        AcceptorConfig::with_sessions(CLIENTS),
    )
    .unwrap();
    tokio::spawn(runner.run());
    // The application only spawns: the queue (as large as the table)
    // absorbs the burst.
    let accepting = tokio::spawn(async move {
        for n in 0..CLIENTS {
            let (conduit, driver, links) = acceptor.accept().await.unwrap();
            tokio::spawn(driver.run(links, rng(n as u64), TokioClock));
            tokio::spawn(async move {
                let (tx, mut rx) = conduit.split();
                while let Ok(Some(m)) = rx.recv().await {
                    let id = m.get::<KitFamily>().id;
                    let Ok(permit) = tx.reserve().await else { return };
                    let _ = permit.send(kit_msg(id, "reply"));
                }
            });
        }
        acceptor
    });
    let clients: Vec<_> = (0..CLIENTS as u32)
        .map(|n| {
            tokio::spawn(async move {
                let (conduit, driver) =
                    StableConduit::<KitFamily, Storage>::initiator(Arc::new(Storage::new()), config).unwrap();
                let stats = conduit.stats_handle();
                let driving = tokio::spawn(driver.run(TcpDialer::new(addr), TokioClock));
                let (tx, mut rx) = conduit.split();
                tx.reserve().await.unwrap().send(kit_msg(n, "hello")).unwrap();
                let reply = rx.recv().await;
                let replied = matches!(&reply, Ok(Some(m)) if m.get::<KitFamily>().id == n);
                driving.abort();
                (replied, stats.get())
            })
        })
        .collect();
    let mut replied = 0;
    let mut busy_retries = 0;
    for client in clients {
        let (ok, stats) =
            tokio::time::timeout(Duration::from_secs(60), client).await.expect("every client ends").unwrap();
        replied += usize::from(ok);
        busy_retries += stats.busy_retries;
    }
    let acceptor = tokio::time::timeout(Duration::from_secs(10), accepting).await.expect("all accepted").unwrap();
    let stats = acceptor.stats();
    println!("{CLIENTS} initiators at once: {replied} replied; acceptor {stats:?}; busy retries {busy_retries}");
    assert_eq!(replied, CLIENTS);
    assert_eq!(stats.accepted, CLIENTS as u64);
    assert_eq!((stats.busy, stats.table_full), (0, 0), "none refused");
    // Ended sessions are swept when the table has doubled (16, 32, ...),
    // not on every admission: about log2(CLIENTS) passes over the table,
    // not CLIENTS.
    assert!(stats.table_scans <= 8, "{} passes over the table for {CLIENTS} admissions", stats.table_scans);
    assert_eq!(busy_retries, 0);
}
