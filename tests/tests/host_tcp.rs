//! The library's TCP link sources: the dialer reconnects through a proxy
//! that is killed and restarted; the listener serves 100 clients at once.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use vox_link_embedded::host::{Backoff, TcpDialer, TcpListenerSource};
use vox_types::{Link, LinkRx, LinkSource, LinkTx, LinkTxPermit, WriteSlot};

async fn put(tx: &impl LinkTx, bytes: &[u8]) {
    let mut slot = tx.reserve().await.unwrap().alloc(bytes.len()).unwrap();
    slot.as_mut_slice().copy_from_slice(bytes);
    slot.commit();
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Forwards every connection on `front` to `back` until aborted (its
/// connections die with it).
async fn proxy(front: TcpListener, back: SocketAddr) {
    let mut conns = Vec::new();
    while let Ok((mut a, _)) = front.accept().await {
        let Ok(mut b) = TcpStream::connect(back).await else { return };
        conns.push(AbortOnDrop(tokio::spawn(async move {
            let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
        })));
    }
}

/// Echoes every payload of every link the listener gives.
async fn echo_server(mut source: TcpListenerSource) {
    while let Ok(link) = source.next_link().await {
        tokio::spawn(async move {
            let (tx, mut rx) = link.split();
            while let Ok(Some(p)) = rx.recv().await {
                put(&tx, p.as_bytes()).await;
            }
        });
    }
}

// r[verify host.tcp]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dialer_reconnects_through_a_proxy_that_is_killed_and_restarted() {
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = server.local_addr().unwrap();
    tokio::spawn(echo_server(TcpListenerSource::new(server)));
    let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = front.local_addr().unwrap();
    let running = tokio::spawn(proxy(front, server_addr));
    let backoff = Backoff { initial: Duration::from_millis(10), max: Duration::from_millis(50), give_up_after: None };
    let mut dialer = TcpDialer::new(proxy_addr).with_backoff(backoff);

    let (tx, mut rx) = dialer.next_link().await.unwrap().split();
    put(&tx, b"one").await;
    assert_eq!(rx.recv().await.unwrap().unwrap().as_bytes(), b"one");

    // The proxy dies with its connections: the link ends.
    running.abort();
    let _ = running.await;
    let ended = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("the link ends");
    assert!(!matches!(ended, Ok(Some(_))), "no payload after the cut");

    // Dial while the proxy is down; it comes back on the same port.
    let redial = tokio::spawn(async move { dialer.next_link().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let front = TcpListener::bind(proxy_addr).await.unwrap();
    tokio::spawn(proxy(front, server_addr));
    let link = tokio::time::timeout(Duration::from_secs(5), redial).await.expect("reconnected").unwrap().unwrap();
    let (tx, mut rx) = link.split();
    put(&tx, b"two").await;
    assert_eq!(rx.recv().await.unwrap().unwrap().as_bytes(), b"two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_serves_a_hundred_clients_at_once() {
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(echo_server(TcpListenerSource::new(server)));
    let clients = (0..100u32).map(|i| {
        tokio::spawn(async move {
            let (tx, mut rx) = TcpDialer::new(addr).next_link().await.unwrap().split();
            let payload = i.to_le_bytes();
            put(&tx, &payload).await;
            rx.recv().await.unwrap().unwrap().as_bytes() == payload
        })
    });
    let all = tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(clients)).await.expect("in time");
    assert_eq!(all.into_iter().filter(|r| matches!(r, Ok(true))).count(), 100);
}
