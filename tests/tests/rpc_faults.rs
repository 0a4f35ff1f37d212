//! Seeded simulation: host and device call each other at once over stable
//! conduits under link faults (cuts with outages, dropped, corrupted and
//! duplicated frames) and device reboots, on the simulated clock. Every
//! request carries a unique nonce and every handler run is logged outside
//! the library; the test checks that no nonce runs twice, that "surely did
//! not run" means absent from the log, that `Ok` means present exactly
//! once, and that every reply reached its own call. A failure prints its
//! seed (`RPC_SEED=n` reruns one).

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex as M;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use std::collections::HashMap;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vox_conduit_stable::{StableConduit, StableStorage};
use vox_link_embedded::sim::{FaultPlan, SimClock, memory_link_source};
use vox_rpc::{CallError, Calls, Client, RpcFamily, Server};
use vox_tests::gated_dialer::GatedDialer;
use vox_tests::sim_runtime::{SimHandle, SimRuntime};
use vox_tests::stable_harness::{FAST, rng};
use vox_types::{Clock, Instant};

vox_rpc::declare! {
    /// Runs nonce `n` at once.
    pub endpoint Run = "run": u64 => u64;
    /// Runs nonce `n.0` after `n.1` ms (async).
    pub endpoint RunLater = "run_later": (u64, u16) => u64;
}

type Storage = StableStorage<M, 2048, 16, 2048, 16>;
type Rpc = StableConduit<RpcFamily, Storage>;
type Table = Calls<M, 4, 64>;
type RpcClient = Client<Table, SimClock>;
type Log = Arc<Mutex<HashMap<u64, u32>>>;
type Outcomes = Arc<Mutex<Vec<(u64, Result<u64, CallError>)>>>;

/// A server whose handlers log their nonce.
macro_rules! logging_server {
    ($log:expr, $clock:expr) => {{
        let (l1, l2, clock) = ($log.clone(), $log.clone(), $clock.clone());
        Server::<_, 8, 512>::with_room()
            .serve::<Run, _>(move |n| {
                *l1.lock().unwrap().entry(*n).or_default() += 1;
                Ok(*n)
            })
            .serve_async::<RunLater, 2, _, _>(move |(n, ms)| {
                *l2.lock().unwrap().entry(n).or_default() += 1;
                let clock = clock.clone();
                async move {
                    clock.sleep(Duration::from_millis(u64::from(ms))).await;
                    Ok(n)
                }
            })
    }};
}

/// `calls` calls from one task, nonces `first..`, random deadlines and
/// endpoints; every outcome recorded.
async fn caller(client: RpcClient, clock: SimClock, seed: u64, first: u64, calls: u64, outcomes: Outcomes) {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    for nonce in first..first + calls {
        let timeout = Duration::from_millis(u64::from(5 + r.next_u32() % 300));
        let result = if r.next_u32().is_multiple_of(3) {
            let ms = (r.next_u32() % 120) as u16;
            client.call::<RunLater>((nonce, ms), timeout).await
        } else {
            client.call::<Run>(nonce, timeout).await
        };
        outcomes.lock().unwrap().push((nonce, result));
        clock.sleep(Duration::from_millis(u64::from(r.next_u32() % 40))).await;
    }
}

fn plan(r: &mut ChaCha8Rng) -> FaultPlan {
    let at = |r: &mut ChaCha8Rng| r.next_u32().is_multiple_of(4).then(|| r.next_u32() % 60);
    FaultPlan { kill_after: at(r), drop: at(r), corrupt: at(r), duplicate: at(r) }
}

struct Report {
    ok: usize,
    not_run: usize,
    may_have_run: usize,
}

fn simulate(seed: u64) -> Result<Report, String> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let schedule: Vec<_> = (0..400).map(|_| (plan(&mut r), plan(&mut r))).collect();
    let (dialer, mut listener) = memory_link_source::<M, 4, 256>(schedule);
    let dialer = Arc::new(Mutex::new(dialer));
    let mut rt = SimRuntime::new();
    let h = rt.handle();
    let clock = h.clock();
    let log: Log = Arc::default();
    let outcomes: Outcomes = Arc::default();
    let open_at = Arc::new(AtomicU64::new(0));
    let host_calls: Arc<Table> = Arc::new(Calls::new());

    // The host: sessions one after another on one table.
    {
        let (calls, clock, log) = (host_calls.clone(), clock.clone(), log.clone());
        h.spawn(async move {
            let mut server = pin!(logging_server!(log, clock));
            for session in 0.. {
                let (conduit, driver) = Rpc::acceptor(Arc::new(Storage::new()), FAST).unwrap();
                let _ = futures::join!(
                    driver.run(&mut listener, rng(seed ^ session), clock.clone()),
                    vox_rpc::run(conduit, &*calls, server.as_mut(), clock.clone())
                );
            }
        })
        .forget();
    }
    let boot = {
        let (log, outcomes, dialer, open_at) = (log.clone(), outcomes.clone(), dialer.clone(), open_at.clone());
        move |h: &SimHandle, boot: u64| {
            let (clock, log, outcomes) = (h.clock(), log.clone(), outcomes.clone());
            let source = GatedDialer { inner: dialer.clone(), clock: clock.clone(), open_at: open_at.clone() };
            h.spawn(async move {
                let calls: Arc<Table> = Arc::new(Calls::new());
                let (conduit, driver) = Rpc::initiator(Arc::new(Storage::new()), FAST).unwrap();
                let mut server = pin!(logging_server!(log, clock));
                let client = Client::new(calls.clone(), clock.clone());
                // Device nonces: 1_000_000 × (boot + 1) + task × 10_000 + i.
                let base = 1_000_000 * (boot + 1);
                let _ = futures::join!(
                    driver.run(source, clock.clone()),
                    vox_rpc::run(conduit, &*calls, server.as_mut(), clock.clone()),
                    caller(client.clone(), clock.clone(), seed ^ base, base, 30, outcomes.clone()),
                    caller(client, clock.clone(), seed ^ (base + 1), base + 10_000, 30, outcomes.clone()),
                );
            })
        }
    };
    let main = {
        let h = h.clone();
        let outcomes = outcomes.clone();
        let dialer = dialer.clone();
        let open_at = open_at.clone();
        async move {
            let mut device = boot(&h, 0);
            let host = RpcClient::new(host_calls.clone(), h.clock());
            let callers: Vec<_> = (0..3u64)
                .map(|t| h.spawn(caller(host.clone(), h.clock(), seed ^ t, t * 10_000, 60, outcomes.clone())))
                .collect();
            let clock = h.clock();
            let mut boots = 1;
            let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0xfeed);
            // Faults for 20 simulated seconds: cuts with outages, a reboot
            // now and then.
            while clock.now().as_millis() < 20_000 {
                clock.sleep(Duration::from_millis(u64::from(50 + r.next_u32() % 700))).await;
                match r.next_u32() % 10 {
                    0 => {
                        drop(std::mem::replace(&mut device, boot(&h, boots)));
                        boots += 1;
                        dialer.lock().unwrap().kill_current();
                    }
                    _ => {
                        let outage = u64::from(r.next_u32() % 400);
                        open_at.store(clock.now().as_millis() + outage, Ordering::SeqCst);
                        dialer.lock().unwrap().kill_current();
                    }
                }
            }
            futures::future::join_all(callers).await;
            // Every deadline has passed: nothing may run any more.
            clock.sleep(Duration::from_millis(2000)).await;
            drop(device);
        }
    };
    rt.run(main, Instant::from_millis(600_000)).map_err(|e| format!("the simulation stopped: {e:?}"))?;

    let log = log.lock().unwrap();
    let outcomes = outcomes.lock().unwrap();
    if let Some((nonce, n)) = log.iter().find(|(_, n)| **n > 1) {
        return Err(format!("nonce {nonce} ran {n} times"));
    }
    let mut report = Report { ok: 0, not_run: 0, may_have_run: 0 };
    for (nonce, result) in outcomes.iter() {
        let runs = log.get(nonce).copied().unwrap_or(0);
        match result {
            Ok(v) if v != nonce => return Err(format!("call {nonce} got the reply of call {v}")),
            Ok(_) if runs != 1 => return Err(format!("call {nonce} returned Ok but ran {runs} times")),
            Ok(_) => report.ok += 1,
            Err(e) if !e.may_have_run() && runs != 0 => {
                return Err(format!("call {nonce} failed with {e:?} (did not run) but ran {runs} times"));
            }
            Err(e) if !e.may_have_run() => report.not_run += 1,
            Err(_) => report.may_have_run += 1,
        }
    }
    if report.ok < outcomes.len() / 4 {
        return Err(format!("only {} of {} calls succeeded", report.ok, outcomes.len()));
    }
    Ok(report)
}

// r[verify rpc.exactly-once]
// r[verify rpc.outcome]
// r[verify rpc.ids]
#[test]
fn calls_both_ways_under_faults_run_at_most_once_and_say_so() {
    let seeds: Vec<u64> = match std::env::var("RPC_SEED") {
        Ok(s) => vec![s.parse().expect("RPC_SEED is a number")],
        Err(_) => (1..=12).collect(),
    };
    let (mut ok, mut not_run, mut may) = (0, 0, 0);
    for seed in seeds {
        match simulate(seed) {
            Ok(r) => {
                ok += r.ok;
                not_run += r.not_run;
                may += r.may_have_run;
            }
            Err(e) => panic!("seed {seed}: {e} (rerun with RPC_SEED={seed})"),
        }
    }
    println!("outcomes: {ok} ok, {not_run} surely not run, {may} may have run");
    assert!(not_run > 0 && may > 0, "the faults exercised every kind of outcome");
}
