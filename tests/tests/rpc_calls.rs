//! vox-rpc calls, one test per typed outcome, over bare conduits on
//! in-memory links, on the simulated clock (deterministic; simulated
//! seconds take microseconds).

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex as M;
use std::cell::RefCell;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use vox_conduit_bare::BareConduit;
use vox_link_embedded::MemoryLinkPair;
use vox_link_embedded::sim::SimClock;
use vox_rpc::{CallError, Calls, Client, RpcFamily, RunError, Server};
use vox_tests::sim_runtime::{SimHandle, SimRuntime};
use vox_types::{Clock, Instant, SessionRole};

vox_rpc::declare! {
    /// Doubles a number.
    pub endpoint Double = "double": u32 => u32;
    /// Always fails with a reason.
    pub endpoint Fail = "fail": u8 => (), &'a str;
    /// Waits `n` ms, then answers `n` (async, one at a time).
    pub endpoint Slow = "slow": u32 => u32;
    /// Waits `n` ms, then answers `n` (async, two at a time).
    pub endpoint Nap = "nap": u32 => u32;
    /// Sends the bytes back.
    pub endpoint Echo = "echo": &'a [u8] => &'a [u8];
    /// The host's clock (the device calls the host).
    pub endpoint HostTime = "host_time": () => u64;
    /// `n` bytes (a response larger than the link for a large `n`).
    pub endpoint Fill = "fill": u16 => Vec<u8>;
}

/// `Double` as a newer peer declares it: the same name, other types.
mod v2 {
    vox_rpc::declare! {
        pub endpoint Double = "double": u64 => u64;
    }
}

type Table<const N: usize> = Calls<M, N, 256>;
type HostClient<const N: usize> = Client<Table<N>, SimClock>;

const MS: Duration = Duration::from_millis(1);

/// One host and one device on a bare conduit: the device serves `Double`,
/// `Fail`, `Slow` and `Echo`, the host serves `HostTime`; `ran` logs every
/// handler run on the device (endpoint, argument).
struct Pair<const N: usize> {
    host: HostClient<N>,
    device: HostClient<2>,
    ran: Rc<RefCell<Vec<(&'static str, u32)>>>,
    link: Arc<MemoryLinkPair<M, 4, 256>>,
    ended: Rc<RefCell<Vec<Result<(), RunError>>>>,
}

fn pair<const N: usize>(rt: &SimHandle) -> Pair<N> {
    let clock = rt.clock();
    let host_calls: Arc<Table<N>> = Arc::new(Calls::new());
    let device_calls: Arc<Table<2>> = Arc::new(Calls::new());
    let ((a, b), link) = MemoryLinkPair::<M, 4, 256>::new_shared_with_faults(Default::default(), Default::default());
    let ran = Rc::new(RefCell::new(Vec::new()));
    let ended = Rc::new(RefCell::new(Vec::new()));
    {
        let (calls, clock, ended) = (host_calls.clone(), clock.clone(), ended.clone());
        rt.spawn(async move {
            let conduit = BareConduit::<_, RpcFamily>::connect(a, SessionRole::Acceptor).await.unwrap();
            let time = clock.clone();
            let mut server = pin!(Server::new().serve::<HostTime, _>(|_| Ok(time.now().as_millis())));
            let r = vox_rpc::run(conduit, &*calls, server.as_mut(), clock).await;
            ended.borrow_mut().push(r);
        })
        .forget();
    }
    {
        let (calls, clock, ran, ended) = (device_calls.clone(), clock.clone(), ran.clone(), ended.clone());
        rt.spawn(async move {
            let conduit = BareConduit::<_, RpcFamily>::connect(b, SessionRole::Initiator).await.unwrap();
            let (log1, log2, log3, log4, log5) = (ran.clone(), ran.clone(), ran.clone(), ran.clone(), ran.clone());
            let sleeper = clock.clone();
            let mut server = pin!(
                Server::new()
                    .serve::<Double, _>(move |n| {
                        log1.borrow_mut().push(("double", *n));
                        Ok(*n * 2)
                    })
                    .serve::<Fail, _>(move |n| {
                        log2.borrow_mut().push(("fail", u32::from(*n)));
                        Err("always")
                    })
                    .serve::<Fill, _>(move |n| {
                        log5.borrow_mut().push(("fill", u32::from(*n)));
                        Ok(vec![7u8; usize::from(*n)])
                    })
                    .serve::<Echo, _>(move |bytes| {
                        log3.borrow_mut().push(("echo", bytes.len() as u32));
                        Ok(bytes.into_inner())
                    })
                    .serve_async::<Nap, 2, _, _>({
                        let clock = clock.clone();
                        move |n| {
                            let clock = clock.clone();
                            async move {
                                clock.sleep(Duration::from_millis(u64::from(n))).await;
                                Ok(n)
                            }
                        }
                    })
                    .serve_async::<Slow, 1, _, _>(move |n| {
                        log4.borrow_mut().push(("slow", n));
                        let clock = sleeper.clone();
                        async move {
                            clock.sleep(Duration::from_millis(u64::from(n))).await;
                            Ok(n)
                        }
                    })
            );
            let r = vox_rpc::run(conduit, &*calls, server.as_mut(), clock).await;
            ended.borrow_mut().push(r);
        })
        .forget();
    }
    Pair { host: Client::new(host_calls, clock.clone()), device: Client::new(device_calls, clock), ran, link, ended }
}

fn run_sim<T: 'static>(f: impl FnOnce(SimHandle) -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>>) -> T {
    let mut rt = SimRuntime::new();
    let main = f(rt.handle());
    rt.run(main, Instant::from_millis(600_000)).expect("the simulation finishes")
}

// r[verify rpc.call]
// r[verify rpc.outcome]
#[test]
fn a_call_returns_the_response_and_a_handler_error_is_typed() {
    run_sim(|rt| {
        Box::pin(async move {
            let p = pair::<4>(&rt);
            assert_eq!(p.host.call::<Double>(21, 200 * MS).await, Ok(42));
            let failed = p.host.call_with::<Fail, _>(3, 200 * MS, |r| r.map_err(str::to_owned)).await;
            assert_eq!(failed, Ok(Err("always".to_owned())));
            let echoed = p.host.call_with::<Echo, _>(b"abc", 200 * MS, |r| r.map(<[u8]>::to_vec)).await;
            assert_eq!(echoed, Ok(Ok(b"abc".to_vec())));
            assert_eq!(*p.ran.borrow(), [("double", 21), ("fail", 3), ("echo", 3)]);
            let e = p.host.epsilon().expect("a clock sample");
            assert_eq!(e, 3, "ε on an instant link: the clocks' resolution only");
        })
    })
}

// r[verify rpc.keys]
#[test]
fn an_endpoint_changed_on_one_side_is_unknown_and_the_others_keep_working() {
    run_sim(|rt| {
        Box::pin(async move {
            let p = pair::<4>(&rt);
            assert_ne!(<Double as vox_rpc::Endpoint>::KEY, <v2::Double as vox_rpc::Endpoint>::KEY);
            let e = p.host.call::<v2::Double>(21, 200 * MS).await.unwrap_err();
            assert_eq!(e, CallError::Unknown);
            assert!(!e.may_have_run() && !e.is_retryable());
            assert_eq!(p.host.call::<Double>(21, 200 * MS).await, Ok(42));
            assert_eq!(*p.ran.borrow(), [("double", 21)]);
            let peer = p.host.calls().peer().unwrap();
            assert_eq!(peer.endpoints, 6);
            assert!(p.host.calls().peer_serves(<Slow as vox_rpc::Endpoint>::KEY));
        })
    })
}

// r[verify rpc.serve]
#[test]
fn an_async_endpoint_beyond_its_bound_is_busy_at_once_and_did_not_run() {
    run_sim(|rt| {
        Box::pin(async move {
            let p = pair::<4>(&rt);
            let clock = rt.clock();
            let start = clock.now();
            let (a, b) = futures::join!(p.host.call::<Slow>(100, 500 * MS), async {
                clock.sleep(10 * MS).await;
                let r = p.host.call::<Slow>(7, 500 * MS).await;
                (r, clock.now().millis_since(start))
            });
            assert_eq!(a, Ok(100));
            assert_eq!(b.0, Err(CallError::Busy));
            assert!(b.1 < 20, "refused at once, not after the first run: {} ms", b.1);
            assert!(b.0.unwrap_err().is_retryable());
            assert_eq!(*p.ran.borrow(), [("slow", 100)], "the refused request never ran");
        })
    })
}

// r[verify rpc.cancel]
// r[verify rpc.ids]
#[test]
fn a_timed_out_call_frees_its_entry_at_once_and_its_late_answer_reaches_no_other_call() {
    run_sim(|rt| {
        Box::pin(async move {
            // One entry: the next call reuses the slot, one generation on.
            let p = pair::<1>(&rt);
            let clock = rt.clock();
            assert_eq!(p.host.call::<Double>(1, 200 * MS).await, Ok(2));
            let t = p.host.call::<Slow>(300, 50 * MS).await;
            assert_eq!(t, Err(CallError::Timeout { committed: true }));
            assert!(t.unwrap_err().may_have_run());
            // The entry is free now, while the slow run goes on...
            let before = clock.now();
            assert_eq!(p.host.call::<Double>(5, 200 * MS).await, Ok(10));
            assert!(clock.now().millis_since(before) < 10);
            // ...and the same slot is in flight again when the slow run
            // ends (its outcome dropped after the cancel): its late answer
            // carries the old generation and reaches no call.
            assert_eq!(p.host.call::<Nap>(400, 1000 * MS).await, Ok(400));
            let stats = p.host.calls().stats();
            assert_eq!(stats.late_answers, 1, "{stats:?}");
            assert_eq!(stats.cancels, 1, "{stats:?}");
        })
    })
}

#[test]
fn callers_beyond_the_table_wait_for_an_entry_under_their_deadline() {
    run_sim(|rt| {
        Box::pin(async move {
            let p = pair::<1>(&rt);
            let calls = (0..5u32).map(|i| p.host.call::<Double>(i, 200 * MS));
            let got = futures::future::join_all(calls).await;
            assert_eq!(got, (0..5u32).map(|i| Ok(i * 2)).collect::<Vec<_>>());
            // A caller that cannot get an entry before its deadline: never sent.
            let clock = rt.clock();
            let (slow, quick) = futures::join!(p.host.call::<Slow>(100, 500 * MS), async {
                clock.sleep(MS).await;
                p.host.call::<Double>(1, 20 * MS).await
            });
            assert_eq!(slow, Ok(100));
            assert_eq!(quick, Err(CallError::Timeout { committed: false }));
            assert!(quick.unwrap_err().is_retryable());
        })
    })
}

// r[verify rpc.symmetric]
#[test]
fn both_sides_call_each_other_on_one_conduit() {
    run_sim(|rt| {
        Box::pin(async move {
            let p = pair::<4>(&rt);
            let clock = rt.clock();
            let (from_host, from_device) = futures::join!(
                async {
                    let mut sum = 0;
                    for i in 0..50 {
                        sum += p.host.call::<Double>(i, 200 * MS).await.unwrap();
                    }
                    sum
                },
                async {
                    let mut last = 0;
                    for _ in 0..50 {
                        let t = p.device.call::<HostTime>((), 200 * MS).await.unwrap();
                        assert!(t >= last);
                        last = t;
                    }
                    last
                }
            );
            assert_eq!(from_host, 2 * (0..50).sum::<u32>());
            assert!(from_device <= clock.now().as_millis());
        })
    })
}

// r[verify rpc.exactly-once]
#[test]
fn on_a_bare_conduit_link_loss_resolves_pending_calls_as_link_lost() {
    run_sim(|rt| {
        Box::pin(async move {
            let p = pair::<4>(&rt);
            let clock = rt.clock();
            assert_eq!(p.host.call::<Double>(1, 200 * MS).await, Ok(2));
            let link = p.link.clone();
            let start = clock.now();
            let (lost, ()) = futures::join!(p.host.call::<Slow>(100, 1000 * MS), async {
                clock.sleep(10 * MS).await;
                link.kill();
            });
            assert_eq!(lost, Err(CallError::LinkLost { committed: true }));
            assert!(clock.now().millis_since(start) < 20, "resolved at once, not at the deadline");
            // Never sent: a call after the loss waits for a session that
            // never comes, and says it did not run.
            let after = p.host.call::<Double>(2, 50 * MS).await;
            assert_eq!(after, Err(CallError::Timeout { committed: false }));
            assert_eq!(p.ended.borrow().len(), 2);
            assert!(p.ended.borrow().iter().all(|r| matches!(r, Err(RunError::Conduit(_)))));
        })
    })
}

// r[verify rpc.outcome]
#[test]
fn a_request_too_large_is_never_sent_and_a_response_too_large_says_the_call_ran() {
    run_sim(|rt| {
        Box::pin(async move {
            let p = pair::<4>(&rt);
            let big = [1u8; 300];
            let e = p.host.call_with::<Echo, _>(&big, 200 * MS, |_| ()).await.unwrap_err();
            assert_eq!(e, CallError::TooLarge);
            assert!(!e.may_have_run());
            // The link carries 256 bytes: the 1,000-byte response is not
            // sent, and the caller learns that the call ran.
            let e = p.host.call::<Fill>(1000, 200 * MS).await.unwrap_err();
            assert_eq!(e, CallError::BadResponse);
            assert!(e.may_have_run());
            assert_eq!(p.host.call::<Fill>(3, 200 * MS).await, Ok(vec![7, 7, 7]));
            assert_eq!(*p.ran.borrow(), [("fill", 1000), ("fill", 3)]);
        })
    })
}

// r[verify rpc.keys]
#[test]
fn the_built_in_describe_call_lists_a_peers_endpoints_with_names_and_keys() {
    use vox_rpc::{Endpoint, Kind};
    run_sim(|rt| {
        Box::pin(async move {
            let p = pair::<4>(&rt);
            let mut listed = Vec::new();
            p.host
                .describe(200 * MS, &mut |e| {
                    assert_eq!(e.kind, Kind::Endpoint);
                    listed.push((e.name.to_owned(), e.key));
                })
                .await
                .unwrap();
            listed.sort();
            let mut expected: Vec<(String, vox_rpc::EndpointKey)> = [
                (Double::NAME, Double::KEY),
                (Fail::NAME, Fail::KEY),
                (Slow::NAME, Slow::KEY),
                (Nap::NAME, Nap::KEY),
                (Echo::NAME, Echo::KEY),
                (Fill::NAME, Fill::KEY),
            ]
            .into_iter()
            .map(|(n, k)| (n.to_owned(), k))
            .collect();
            expected.sort();
            assert_eq!(listed, expected);
            // The device asks the host, which serves one endpoint.
            let mut host = Vec::new();
            p.device.describe(200 * MS, &mut |e| host.push(e.name.to_owned())).await.unwrap();
            assert_eq!(host, ["host_time"]);
            assert!(p.ran.borrow().is_empty(), "no handler ran");
        })
    })
}

// r[verify rpc.deadline]
#[test]
fn clock_samples_come_at_connect_then_every_30_s_on_the_timer() {
    run_sim(|rt| {
        Box::pin(async move {
            let p = pair::<4>(&rt);
            let clock = rt.clock();
            assert_eq!(p.host.call::<Double>(1, 200 * MS).await, Ok(2));
            let start = clock.now();
            clock.sleep(100 * MS).await;
            assert_eq!(p.host.calls().clock_samples(), 8, "a burst at connect");
            // Idle for 65 s: two resyncs, on the timer alone.
            clock.sleep(Duration::from_secs(65)).await;
            assert_eq!(p.host.calls().clock_samples(), 10);
            assert_eq!(p.device.calls().clock_samples(), 10);
            assert!(clock.now().millis_since(start) >= 65_000);
            assert_eq!(p.host.call::<Double>(2, 200 * MS).await, Ok(4));
        })
    })
}

/// A call's deadline counts from `call`, not from the future's first
/// poll: a call future made, then first awaited after its timeout, ends at
/// once (with no session, never sent: it did not run).
#[test]
fn a_calls_deadline_counts_from_the_call_not_from_its_first_poll() {
    run_sim(|rt| {
        Box::pin(async move {
            let clock = rt.clock();
            let calls: &'static Calls<M, 1, 16> = Box::leak(Box::new(Calls::new()));
            let client = Client::new(calls, clock.clone());
            let call = client.call::<Double>(21, 100 * MS);
            clock.sleep(1000 * MS).await;
            let awaited_at = clock.now();
            assert_eq!(call.await, Err(CallError::Timeout { committed: false }));
            assert_eq!(clock.now(), awaited_at, "over at its first poll: its deadline had passed");
        })
    })
}
