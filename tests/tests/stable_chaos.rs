//! Chaos runs: StableConduit over FramedLink on a noisy serial line that is
//! also cut now and then (framed links reattached to the same byte stream),
//! and over loopback TCP through a proxy that drops the connection several
//! times mid-stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vox_conduit_stable::{StableConduit, StableConfig};
use vox_demo_host::serial_line::{LineConfig, LineReport, run_line};
use vox_demo_protocol::{DemoFamily, DemoMsg};
use vox_link_embedded::host::TokioClock;
use vox_link_embedded::host::{TcpDialer, TcpListenerSource};
use vox_tests::stable_harness::rng;
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit};

fn check(r: &LineReport) {
    println!(
        "sent {} each way; delivered {} / {}; misordered or duplicated {}; reattachments {}; replays {}; CRC errors {}; line cuts {}; noise {:?}; {:.1} s",
        r.sent,
        r.delivered_to_device,
        r.delivered_to_host,
        r.misordered_or_duplicated,
        r.host.reattachments + r.device.reattachments,
        r.host.replays + r.device.replays,
        r.framed.crc_errors,
        r.cuts,
        r.noise,
        r.elapsed.as_secs_f64()
    );
    assert_eq!((r.delivered_to_device, r.delivered_to_host), (r.sent, r.sent), "nothing lost");
    assert_eq!(r.misordered_or_duplicated, 0, "nothing duplicated or reordered");
    assert_eq!((r.host_result, r.device_result), (Some(Ok(())), Some(Ok(()))), "both sessions ended cleanly");
    assert!(r.host.reattachments + r.device.reattachments > 0 && r.framed.crc_errors > 0, "the line really was bad");
    for s in [&r.host, &r.device] {
        assert!(s.replay_frames_high <= 32 && s.replay_bytes_high <= 4096, "replay bounded: {s:?}");
    }
}

/// 100k messages each way at 1e-4 corruption plus a cut about every 500
/// frames. Long: the test command runs it in release mode.
// r[verify stable.exactly-once]
// r[verify stable.stats]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long; run in release by scripts/test.sh"]
async fn chaos_serial_line_100k_each_way() {
    check(
        &run_line(LineConfig {
            messages: 100_000,
            noise_ppm: 100,
            cut_every_frames: 500,
            seed: 11,
            progress: false,
            time_limit: None,
        })
        .await
        .unwrap(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_serial_line_small() {
    check(
        &run_line(LineConfig {
            messages: 3_000,
            noise_ppm: 300,
            cut_every_frames: 300,
            seed: 5,
            progress: false,
            time_limit: None,
        })
        .await
        .unwrap(),
    );
}

/// Forwards connections from `front` to `back`; the first `cuts` connections
/// are dropped after forwarding a few kilobytes client→server.
async fn cutting_proxy(front: TcpListener, back: std::net::SocketAddr, cuts: u32, cut_count: Arc<AtomicU32>) {
    let mut n = 0u32;
    loop {
        let Ok((client, _)) = front.accept().await else { return };
        let Ok(server) = TcpStream::connect(back).await else { return };
        let limit = if n < cuts { 3_000 + 1_700 * n as usize } else { usize::MAX };
        n += 1;
        let cut_count = cut_count.clone();
        tokio::spawn(async move {
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let upstream = async {
                let mut buf = [0u8; 512];
                let mut forwarded = 0usize;
                while let Ok(k) = cr.read(&mut buf).await {
                    if k == 0 {
                        break;
                    }
                    let k = k.min(limit - forwarded);
                    if sw.write_all(&buf[..k]).await.is_err() {
                        break;
                    }
                    forwarded += k;
                    if forwarded >= limit {
                        cut_count.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            };
            let downstream = async {
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
            };
            // Either direction ending drops both sockets: the cut.
            tokio::select! { () = upstream => {}, () = downstream => {} }
        });
    }
}

// r[verify stable.link-source]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_tcp_through_a_cutting_proxy_loses_nothing() {
    const N: u32 = 5_000;
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (server_addr, proxy_addr) = (server.local_addr().unwrap(), proxy.local_addr().unwrap());
    let cuts = Arc::new(AtomicU32::new(0));
    tokio::spawn(cutting_proxy(proxy, server_addr, 4, cuts.clone()));

    let config = StableConfig { timeout_ms: 500, keepalive_ms: 100, linger_ms: 1500, ..StableConfig::DEFAULT };
    type S = vox_conduit_stable::StableStorage<
        embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex,
        4096,
        32,
        2048,
        16,
    >;
    type C = StableConduit<DemoFamily, S>;
    let (host, host_driver) = C::acceptor(std::sync::Arc::new(S::new()), config).unwrap();
    let (device, device_driver) = C::initiator(std::sync::Arc::new(S::new()), config).unwrap();
    let (hs, ds) = (host.stats_handle(), device.stats_handle());
    let host_task = tokio::spawn(host_driver.run(TcpListenerSource::new(server), rng(1), TokioClock));
    let device_task = tokio::spawn(device_driver.run(TcpDialer::new(proxy_addr), TokioClock));

    async fn send_then_close(tx: impl ConduitTx<Msg = DemoFamily>) {
        for seq in 0..N {
            let msg = DemoMsg::Telemetry { seq, millivolts: 3000, label: "tcp chaos" };
            tx.reserve().await.unwrap().send(msg).unwrap();
        }
        tx.close().await.unwrap();
    }
    async fn receive_in_order(mut rx: impl ConduitRx<Msg = DemoFamily>) -> u32 {
        let mut next = 0;
        while let Some(m) = rx.recv().await.unwrap() {
            let DemoMsg::Telemetry { seq, .. } = m.get::<DemoFamily>() else { panic!("unexpected message") };
            assert_eq!(*seq, next, "in order, exactly once");
            next += 1;
        }
        next
    }
    let (htx, hrx) = host.split();
    let (dtx, drx) = device.split();
    let run = async {
        tokio::join!(send_then_close(htx), send_then_close(dtx), receive_in_order(hrx), receive_in_order(drx))
    };
    let ((), (), to_host, to_device) =
        tokio::time::timeout(std::time::Duration::from_secs(60), run).await.expect("in time");
    assert_eq!((to_host, to_device), (N, N));
    assert_eq!(host_task.await.unwrap(), Ok(()));
    assert_eq!(device_task.await.unwrap(), Ok(()));
    let (h, d) = (hs.get(), ds.get());
    println!(
        "TCP proxy cuts {}; reattachments {} / {}; replays {} / {}",
        cuts.load(Ordering::Relaxed),
        h.reattachments,
        d.reattachments,
        h.replays,
        d.replays
    );
    assert!(cuts.load(Ordering::Relaxed) >= 3, "the proxy cut the connection several times");
    assert!(d.reattachments >= 3, "the dialer reconnected: {d:?}");
}
