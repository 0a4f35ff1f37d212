//! vox-rpc topics over stable conduits on the simulated clock: a reliable
//! topic loses nothing across link cuts and a host-side session loss (the
//! samples not credited come again, marked as possible duplicates); a
//! subscriber that stops reading blocks only its publisher, never calls;
//! a latest-only topic under a flood drops the old samples, counted, and
//! the subscriber sees the newest.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex as M;
use futures::FutureExt;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vox_conduit_stable::{StableConfig, StableStorage};
use vox_link_embedded::sim::{SimClock, memory_link_source};
use vox_rpc::{Calls, Client, Delivery, Publication, Server, Subscription};
use vox_tests::gated_dialer::{GatedDialer, SharedDialer};
use vox_tests::sim_runtime::{SimHandle, SimRuntime};
use vox_tests::stable_harness::{FAST, rng};
use vox_types::{Clock, Instant};

vox_rpc::declare! {
    pub endpoint Double = "double": u32 => u32;
    pub topic Counter = "counter": u32;
    pub topic Level = "level": u32;
}

type Storage = StableStorage<M, 2048, 16, 2048, 16>;
const MS: Duration = Duration::from_millis(1);
const CONFIG: StableConfig = FAST;

type Reliable = Publication<Counter, M, 8, 16>;
type Latest = Publication<Level, M, 2, 16>;
type HostCounter = Subscription<Counter, M, 8, 16>;
type HostLevel = Subscription<Level, M, 1, 16>;

struct Rig {
    h: SimHandle,
    dialer: SharedDialer,
    open_at: Arc<AtomicU64>,
    counter: Arc<Reliable>,
    level: Arc<Latest>,
    host_counter: Arc<HostCounter>,
    host_level: Arc<HostLevel>,
    host: Client<Calls<M, 16, 64>, SimClock>,
    host_task: Option<futures::future::RemoteHandle<()>>,
    /// Signalled: the host drops its session and starts a new one (a
    /// host-side session loss: the device's session is gone).
    restart: Arc<embassy_sync::signal::Signal<M, ()>>,
    host_calls: Arc<Calls<M, 16, 64>>,
    listener: Arc<Mutex<Option<vox_link_embedded::sim::MemoryListener<M, 4, 256>>>>,
}

impl Rig {
    fn new(h: &SimHandle) -> Self {
        let (dialer, listener) = memory_link_source::<M, 4, 256>([]);
        let host_calls = Arc::new(Calls::new());
        let mut rig = Rig {
            h: h.clone(),
            dialer: Arc::new(Mutex::new(dialer)),
            open_at: Arc::new(AtomicU64::new(0)),
            counter: Arc::new(Publication::new(Delivery::Reliable)),
            level: Arc::new(Publication::new(Delivery::Latest)),
            host_counter: Arc::new(Subscription::new()),
            host_level: Arc::new(Subscription::new()),
            host: Client::new(host_calls.clone(), h.clock()),
            host_task: None,
            restart: Arc::new(embassy_sync::signal::Signal::new()),
            host_calls,
            listener: Arc::new(Mutex::new(Some(listener))),
        };
        rig.start_host();
        rig.boot_device();
        rig
    }

    /// The device: serves `Double`, publishes the two topics.
    fn boot_device(&self) {
        let clock = self.h.clock();
        let source = GatedDialer { inner: self.dialer.clone(), clock: clock.clone(), open_at: self.open_at.clone() };
        let (counter, level) = (self.counter.clone(), self.level.clone());
        self.h
            .spawn(async move {
                let calls = Calls::<M, 1, 16>::new();
                let server = pin!(Server::new().serve::<Double, _>(|n| Ok(*n * 2)).publish(&*counter).publish(&*level));
                let storage = Arc::new(Storage::new());
                vox_rpc::initiator_sessions(storage, CONFIG, source, &calls, server, clock).await;
            })
            .forget();
    }

    /// The host: sessions one after another, subscribed to both topics;
    /// a restart drops the session under way (its state is forgotten).
    fn start_host(&mut self) {
        let clock = self.h.clock();
        let (calls, counter, level, listener, restart) = (
            self.host_calls.clone(),
            self.host_counter.clone(),
            self.host_level.clone(),
            self.listener.clone(),
            self.restart.clone(),
        );
        self.host_task = Some(self.h.spawn(async move {
            let mut listener = listener.lock().unwrap().take().expect("one host at a time");
            let mut server = pin!(Server::new().subscribe(&*counter).subscribe(&*level));
            for seed in 0.. {
                let storage = Arc::new(Storage::new());
                let (conduit, driver) =
                    vox_conduit_stable::StableConduit::<vox_rpc::RpcFamily, _>::acceptor(storage, CONFIG).unwrap();
                let session = futures::future::join(
                    driver.run(&mut listener, rng(seed), clock.clone()),
                    vox_rpc::run(conduit, &*calls, server.as_mut(), clock.clone()),
                );
                embassy_futures::select::select(session, restart.wait()).await;
            }
        }));
    }

    fn cut_for(&self, ms: u64) {
        self.open_at.store(self.h.clock().now().as_millis() + ms, Ordering::SeqCst);
        self.dialer.lock().unwrap().kill_current();
    }
}

fn run_sim(f: impl FnOnce(SimHandle) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>) {
    let mut rt = SimRuntime::new();
    let main = f(rt.handle());
    rt.run(main, Instant::from_millis(600_000)).expect("the simulation finishes");
}

// r[verify rpc.topic]
#[test]
fn a_reliable_topic_loses_nothing_across_cuts_and_marks_what_may_repeat() {
    run_sim(|h| {
        Box::pin(async move {
            let rig = Rig::new(&h);
            let clock = h.clock();
            let counter = rig.counter.clone();
            let publishing = h.spawn(async move {
                for n in 0..300u32 {
                    counter.publish(&n).await.unwrap();
                    if n % 50 == 0 {
                        clock.sleep(5 * MS).await;
                    }
                }
            });
            let (sub, cutter) = (rig.host_counter.clone(), &rig);
            let reading = async move {
                let mut samples = sub.samples();
                let (mut seen, mut dups, mut cut, mut restarted) = (Vec::new(), 0, false, false);
                while seen.len() < 300 {
                    let s = samples.next().await;
                    let n = s.get().unwrap();
                    if s.possibly_duplicate() {
                        dups += 1;
                    }
                    if seen.last().is_none_or(|&last| n > last) {
                        seen.push(n);
                    } else {
                        assert!(s.possibly_duplicate(), "only a possible duplicate repeats: {n}");
                    }
                    if n == 100 && !cut {
                        cut = true;
                        cutter.cut_for(300);
                    }
                    if n == 200 && !restarted {
                        restarted = true;
                        // The host forgets the session: the device's
                        // samples not credited come again in the next one.
                        cutter.restart.signal(());
                        cutter.dialer.lock().unwrap().kill_current();
                    }
                }
                (seen, dups)
            };
            let (seen, dups) = reading.await;
            publishing.await;
            println!("duplicates: {dups}, counter {:?}, host {:?}", rig.counter.stats(), rig.host_counter.stats());
            assert!(dups > 0 && rig.counter.stats().resent > 0, "the session loss made the publisher send again");
            assert_eq!(seen, (0..300).collect::<Vec<_>>(), "every sample, in order");
            assert!(dups <= 2 * 8, "at most one credit window of duplicates per loss: {dups}");
            let stats = rig.counter.stats();
            assert_eq!((stats.published, stats.dropped), (300, 0));
        })
    })
}

// r[verify rpc.no-hol]
#[test]
fn a_subscriber_that_stops_reading_blocks_its_publisher_and_nothing_else() {
    run_sim(|h| {
        Box::pin(async move {
            let rig = Rig::new(&h);
            let clock = h.clock();
            let counter = rig.counter.clone();
            let blocked = Arc::new(AtomicBool::new(false));
            let flag = blocked.clone();
            let _publishing = h.spawn(async move {
                for n in 0..1_000u32 {
                    if counter.try_publish(&n).is_err() {
                        flag.store(true, Ordering::SeqCst);
                        counter.publish(&n).await.unwrap();
                    }
                }
            });
            // The other topic keeps flowing: a level every 20 ms, read as
            // it comes.
            let (level, levels_read) = (rig.level.clone(), Arc::new(AtomicU64::new(0)));
            let level_clock = clock.clone();
            let _levels = h.spawn(async move {
                for n in 0u32.. {
                    let _ = level.try_publish(&n);
                    level_clock.sleep(20 * MS).await;
                }
            });
            let (host_level, read) = (rig.host_level.clone(), levels_read.clone());
            let _reading_levels = h.spawn(async move {
                let mut samples = host_level.samples();
                loop {
                    drop(samples.next().await);
                    read.fetch_add(1, Ordering::SeqCst);
                }
            });
            // Nobody reads the counter for 5 s while 16 callers call.
            let start = clock.now();
            let mut worst = 0;
            let callers = (0..16u32).map(|t| {
                let (host, clock) = (rig.host.clone(), clock.clone());
                async move {
                    let mut worst = 0;
                    while clock.now().millis_since(start) < 5_000 {
                        let t0 = clock.now();
                        assert_eq!(host.call::<Double>(t, 200 * MS).await, Ok(t * 2));
                        worst = worst.max(clock.now().millis_since(t0));
                        clock.sleep(10 * MS).await;
                    }
                    worst
                }
            });
            for w in futures::future::join_all(callers).await {
                worst = worst.max(w);
            }
            assert!(blocked.load(Ordering::SeqCst), "the publisher waited for credit");
            assert_eq!(rig.counter.held(), 8, "its buffer is full: the subscriber's window");
            assert!(worst <= 50, "calls went on meanwhile: worst {worst} ms");
            let levels = levels_read.load(Ordering::SeqCst);
            assert!(levels >= 200, "the other topic went on meanwhile: {levels} of about 250 levels read");
            // Reading again unblocks the publisher.
            let mut samples = rig.host_counter.samples();
            for expected in 0..20u32 {
                assert_eq!(samples.next().await.get(), Some(expected));
            }
        })
    })
}

#[test]
fn a_latest_only_topic_under_a_flood_keeps_the_newest_and_counts_the_rest() {
    run_sim(|h| {
        Box::pin(async move {
            let rig = Rig::new(&h);
            let clock = h.clock();
            // Wait for the session, then flood.
            assert_eq!(rig.host.call::<Double>(1, 500 * MS).await, Ok(2));
            for n in 0..10_000u32 {
                rig.level.try_publish(&n).unwrap();
            }
            clock.sleep(100 * MS).await;
            let mut samples = rig.host_level.samples();
            let mut last = None;
            while let Some(s) = samples.next().now_or_never() {
                last = s.get();
                drop(s);
                clock.sleep(10 * MS).await;
            }
            assert_eq!(last, Some(9_999), "the subscriber sees the newest sample");
            let published = rig.level.stats();
            let received = rig.host_level.stats();
            assert_eq!(published.published, 10_000);
            assert!(published.dropped >= 9_990, "old samples dropped, counted: {published:?}");
            assert!(received.received <= 10, "{received:?}");
            // The stream never ends: nothing more is waiting now.
            assert!(rig.host_level.samples().next().now_or_never().is_none());
        })
    })
}
