//! vox-rpc over stable conduits on the simulated clock: a request
//! committed before a 1.2 s link cut and replayed after it is refused as
//! expired (its deadline holds across replay); a device reboot resolves
//! pending calls at once as "may have run", and the host's client goes on
//! with the next session on the same link source.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex as M;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vox_conduit_stable::{StableConduit, StableStorage};
use vox_link_embedded::sim::{MemoryListener, SimClock, memory_link_source};
use vox_rpc::{CallError, Calls, Client, RpcFamily, Server};
use vox_tests::gated_dialer::{GatedDialer, SharedDialer};
use vox_tests::sim_runtime::{SimHandle, SimRuntime};
use vox_tests::stable_harness::{FAST, rng};
use vox_types::{Clock, Instant};

vox_rpc::declare! {
    pub endpoint Double = "double": u32 => u32;
    pub endpoint Slow = "slow": u32 => u32;
}

type Storage = StableStorage<M, 2048, 16, 2048, 16>;
type Rpc = StableConduit<RpcFamily, Storage>;
type Table = Calls<M, 8, 64>;
const MS: Duration = Duration::from_millis(1);

struct Rig {
    handle: SimHandle,
    host: Client<Table, SimClock>,
    /// Runs of the device's handlers (every boot).
    ran: Arc<Mutex<Vec<u32>>>,
    dialer: SharedDialer,
    open_at: Arc<AtomicU64>,
    /// Sessions the host ran, and how each ended.
    host_sessions: Arc<Mutex<Vec<String>>>,
}

impl Rig {
    fn new(h: &SimHandle) -> Self {
        let (dialer, listener) = memory_link_source::<M, 4, 256>([]);
        let calls: Arc<Table> = Arc::new(Calls::new());
        let log = Arc::new(Mutex::new(Vec::new()));
        host_sessions(h, listener, calls.clone(), log.clone());
        Rig {
            handle: h.clone(),
            host: Client::new(calls, h.clock()),
            ran: Arc::new(Mutex::new(Vec::new())),
            dialer: Arc::new(Mutex::new(dialer)),
            open_at: Arc::new(AtomicU64::new(0)),
            host_sessions: log,
        }
    }

    /// Boots the device (fresh memory); dropping the handle powers it off.
    fn boot(&self) -> futures::future::RemoteHandle<()> {
        let clock = self.handle.clock();
        let (dialer, open_at, ran) = (self.dialer.clone(), self.open_at.clone(), self.ran.clone());
        self.handle.spawn(async move {
            let source = GatedDialer { inner: dialer, clock: clock.clone(), open_at };
            let (conduit, driver) = Rpc::initiator(Arc::new(Storage::new()), FAST).unwrap();
            let calls: Table = Calls::new();
            let (r1, r2, sleeper) = (ran.clone(), ran.clone(), clock.clone());
            let mut server = pin!(
                Server::new()
                    .serve::<Double, _>(move |n| {
                        r1.lock().unwrap().push(*n);
                        Ok(*n * 2)
                    })
                    .serve_async::<Slow, 2, _, _>(move |n| {
                        r2.lock().unwrap().push(n);
                        let clock = sleeper.clone();
                        async move {
                            clock.sleep(n * MS).await;
                            Ok(n)
                        }
                    })
            );
            let _ = futures::join!(
                driver.run(source, clock.clone()),
                vox_rpc::run(conduit, &calls, server.as_mut(), clock)
            );
        })
    }

    /// Cuts the link now; no new one before `ms` from now.
    fn cut_for(&self, ms: u64) {
        self.open_at.store(self.handle.clock().now().as_millis() + ms, Ordering::SeqCst);
        self.dialer.lock().unwrap().kill_current();
    }
}

/// The host: sessions one after another on one listener and one table.
fn host_sessions(
    h: &SimHandle,
    mut listener: MemoryListener<M, 4, 256>,
    calls: Arc<Table>,
    log: Arc<Mutex<Vec<String>>>,
) {
    let clock = h.clock();
    h.spawn(async move {
        let mut server = pin!(Server::new());
        for seed in 0.. {
            let (conduit, driver) = Rpc::acceptor(Arc::new(Storage::new()), FAST).unwrap();
            let (driven, ran) = futures::join!(
                driver.run(&mut listener, rng(seed), clock.clone()),
                vox_rpc::run(conduit, &*calls, server.as_mut(), clock.clone())
            );
            log.lock().unwrap().push(format!("{driven:?} / {ran:?}"));
            if matches!(driven, Err(vox_conduit_stable::SessionError::SourceClosed)) {
                break;
            }
        }
    })
    .forget();
}

fn run_sim(f: impl FnOnce(SimHandle) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>) {
    let mut rt = SimRuntime::new();
    let main = f(rt.handle());
    rt.run(main, Instant::from_millis(600_000)).expect("the simulation finishes");
}

// r[verify rpc.deadline]
// r[verify rpc.exactly-once]
#[test]
fn a_request_replayed_after_a_cut_longer_than_its_deadline_does_not_run() {
    run_sim(|h| {
        Box::pin(async move {
            let rig = Rig::new(&h);
            let _device = rig.boot();
            let clock = h.clock();
            assert_eq!(rig.host.call::<Double>(1, 500 * MS).await, Ok(2));
            // The cable goes out; the request is committed into the host's
            // replay ring, and replayed when the link is back 1.2 s later.
            rig.cut_for(1200);
            let started = clock.now();
            let cut = rig.host.call::<Double>(7, 200 * MS).await;
            assert_eq!(cut, Err(CallError::Timeout { committed: true }));
            assert_eq!(clock.now().millis_since(started), 200);
            clock.sleep(2000 * MS).await;
            assert_eq!(*rig.ran.lock().unwrap(), [1], "the replayed request did not run");
            let stats = rig.host.calls().stats();
            assert_eq!(stats.late_answers, 1, "its refusal came late: {stats:?}");
            // The same session goes on.
            assert_eq!(rig.host.call::<Double>(8, 200 * MS).await, Ok(16));
            assert!(rig.host_sessions.lock().unwrap().is_empty(), "{:?}", rig.host_sessions.lock().unwrap());
        })
    })
}

#[test]
fn a_request_replayed_after_a_short_cut_runs_once_and_its_reply_arrives() {
    run_sim(|h| {
        Box::pin(async move {
            let rig = Rig::new(&h);
            let _device = rig.boot();
            assert_eq!(rig.host.call::<Double>(1, 500 * MS).await, Ok(2));
            rig.cut_for(100);
            assert_eq!(rig.host.call::<Double>(7, 1000 * MS).await, Ok(14));
            assert_eq!(*rig.ran.lock().unwrap(), [1, 7]);
        })
    })
}

// r[verify rpc.host]
// r[verify rpc.exactly-once]
#[test]
fn a_device_reboot_resolves_pending_calls_at_once_and_the_client_goes_on() {
    run_sim(|h| {
        Box::pin(async move {
            let rig = Rig::new(&h);
            let device = rig.boot();
            let clock = h.clock();
            assert_eq!(rig.host.call::<Double>(1, 500 * MS).await, Ok(2));
            let client = rig.host.clone();
            let pending = h.spawn(async move { client.call::<Slow>(500, 5000 * MS).await });
            clock.sleep(50 * MS).await;
            // Power off, and on again with fresh memory: a new session.
            drop(device);
            rig.dialer.lock().unwrap().kill_current();
            let started = clock.now();
            let _device = rig.boot();
            let lost = pending.await;
            assert_eq!(lost, Err(CallError::SessionLost { committed: true }));
            assert!(lost.unwrap_err().may_have_run());
            assert!(clock.now().millis_since(started) < 1000, "resolved when the session ended, not at the deadline");
            // The same client, the next session.
            assert_eq!(rig.host.call::<Double>(3, 1000 * MS).await, Ok(6));
            assert_eq!(rig.host.calls().peer().unwrap().session, 2);
            assert_eq!(rig.host_sessions.lock().unwrap().len(), 1);
        })
    })
}

fn _assert_send_and_clone() {
    fn is<T: Send + Sync + Clone>() {}
    is::<Client<Table, SimClock>>();
}
