//! A stable conduit over TLS on loopback TCP (tokio-rustls, a certificate
//! made at test time) through a proxy that cuts the connection: every
//! message arrives once, in order, across TLS reconnects; and a peer that
//! presents another certificate (an on-path relay) is refused by TLS.

use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use vox_conduit_stable::{StableConduit, StableConfig, StableStorage};
use vox_link_embedded::host::TokioClock;
use vox_tests::conduit_kit::{KitFamily, kit_msg};
use vox_tests::fault_proxy::{ProxyCounts, ProxyFaults, fault_proxy};
use vox_tests::stable_harness::rng;
use vox_tests::tls::{TlsDialer, TlsListener, self_signed};
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit, LinkSource};

type Storage = StableStorage<embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex, 4096, 32, 4096, 32>;

// r[verify host.threat-model]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stable_conduit_over_tls_survives_reconnects_and_loses_nothing() {
    const N: u32 = 3_000;
    let (cert, key) = self_signed().unwrap();
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (server_addr, proxy_addr) = (server.local_addr().unwrap(), proxy.local_addr().unwrap());
    let counts = Arc::new(ProxyCounts::default());
    let faults = ProxyFaults { flip_ppm: 0, drop_after_bytes: 30_000, max_drops: 5, seed: 3 };
    tokio::spawn(fault_proxy(proxy, server_addr, faults, counts.clone()));

    let config = StableConfig { timeout_ms: 600, keepalive_ms: 150, linger_ms: 1500, ..StableConfig::DEFAULT };
    let (host, hd) = StableConduit::<KitFamily, Storage>::acceptor(Arc::new(Storage::new()), config).unwrap();
    let (device, dd) = StableConduit::<KitFamily, Storage>::initiator(Arc::new(Storage::new()), config).unwrap();
    let (hs, ds) = (host.stats_handle(), device.stats_handle());
    let host_task = tokio::spawn(hd.run(TlsListener::new(server, cert.clone(), key).unwrap(), rng(1), TokioClock));
    let device_task = tokio::spawn(dd.run(TlsDialer::new(proxy_addr, cert).unwrap(), TokioClock));

    async fn send_then_close(tx: impl ConduitTx<Msg = KitFamily>) {
        for id in 0..N {
            tx.reserve().await.unwrap().send(kit_msg(id, "over TLS")).unwrap();
        }
        tx.close().await.unwrap();
    }
    async fn receive_in_order(mut rx: impl ConduitRx<Msg = KitFamily>) -> u32 {
        let mut next = 0;
        while let Some(m) = rx.recv().await.unwrap() {
            assert_eq!(m.get::<KitFamily>().id, next, "in order, exactly once");
            next += 1;
        }
        next
    }
    let (htx, hrx) = host.split();
    let (dtx, drx) = device.split();
    let run = async {
        tokio::join!(send_then_close(htx), send_then_close(dtx), receive_in_order(hrx), receive_in_order(drx))
    };
    let ((), (), to_host, to_device) = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap_or_else(|_| panic!("stuck:\n{:?}\n{:?}", hs.get(), ds.get()));
    assert_eq!((to_host, to_device), (N, N));
    assert_eq!(host_task.await.unwrap(), Ok(()));
    assert_eq!(device_task.await.unwrap(), Ok(()));
    let drops = counts.drops.load(std::sync::atomic::Ordering::Relaxed);
    println!("{N} messages each way over TLS; {drops} connection drops; device {:?}", ds.get());
    assert!(drops >= 5, "the proxy cut the TLS connection {drops} times");
    assert!(ds.get().reattachments >= 5, "each cut was a TLS reconnect: {:?}", ds.get());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_with_another_certificate_is_refused_by_tls() {
    let (real, _) = self_signed().unwrap();
    let (relay_cert, relay_key) = self_signed().unwrap();
    let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = relay.local_addr().unwrap();
    let mut relay = TlsListener::new(relay, relay_cert, relay_key).unwrap();
    tokio::spawn(async move {
        let _ = relay.next_link().await;
    });
    // The device trusts only the real server's certificate.
    let mut dialer = TlsDialer::new(addr, real).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), dialer.next_link()).await.expect("quick");
    assert!(r.is_err(), "TLS refused the relay");
}
