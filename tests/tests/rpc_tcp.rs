//! vox-rpc over loopback TCP: stable sessions through the library's TCP
//! dialer and listener, calls both ways, and the clock bound ε the layer
//! reports (goal: at most 5 ms on loopback TCP).

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex as M;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use vox_conduit_stable::{StableConfig, StableStorage};
use vox_link_embedded::host::{TcpDialer, TcpListenerSource, TokioClock};
use vox_rpc::{Calls, Client, Server};
use vox_types::Clock;

vox_rpc::declare! {
    pub endpoint Double = "double": u32 => u32;
    pub endpoint Now = "now": () => u64;
}

type Storage = StableStorage<M, 8192, 64, 8192, 64>;

// r[verify rpc.deadline]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_loopback_tcp_and_the_clock_bound_is_small() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let host_calls: Arc<Calls<M, 16, 64>> = Arc::new(Calls::new());
    let device_calls: Arc<Calls<M, 4, 64>> = Arc::new(Calls::new());
    let host = Client::new(host_calls.clone(), TokioClock);
    let device = Client::new(device_calls.clone(), TokioClock);
    tokio::spawn(async move {
        let server = pin!(Server::new().serve::<Now, _>(|_| Ok(TokioClock.now().as_millis())));
        let source = TcpListenerSource::<8, 1024>::new(listener);
        let storage = Arc::new(Storage::new());
        vox_rpc::acceptor_sessions(
            storage,
            StableConfig::DEFAULT,
            source,
            ChaCha20Rng::from_os_rng,
            &*host_calls,
            server,
            TokioClock,
        )
        .await
    });
    tokio::spawn(async move {
        let server = pin!(Server::new().serve::<Double, _>(|n| Ok(*n * 2)));
        let storage = Arc::new(Storage::new());
        let dialer = TcpDialer::<8, 1024>::new(addr);
        vox_rpc::initiator_sessions(storage, StableConfig::DEFAULT, dialer, &*device_calls, server, TokioClock).await
    });
    for i in 0..200u32 {
        assert_eq!(host.call::<Double>(i, Duration::from_secs(2)).await, Ok(i * 2));
        assert!(device.call::<Now>((), Duration::from_secs(2)).await.is_ok());
    }
    let (host_e, device_e) = (host.epsilon().unwrap(), device.epsilon().unwrap());
    println!("ε on loopback TCP: host {host_e} ms, device {device_e} ms");
    assert!(host_e <= 5 && device_e <= 5, "ε {host_e} / {device_e} ms");
}
