//! The real device application (`vox-demo-device`, the code every
//! firmware runs) in this process, against the real host code (the demo's
//! `HostSession`), on a simulated clock: its memory passed in
//! (`SharedMemory`, one per device), its time from the injected clock,
//! stopped by dropping its task and rebooted on fresh memory. The serial
//! line between them corrupts bytes and is cut; no QEMU, no real
//! sleeping, and the same seed gives the same run. A failing seed is
//! printed.

use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use futures::future::RemoteHandle;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use std::sync::Arc;
use std::time::Duration;
use vox_conduit_stable::{SessionError, StableStats};
use vox_demo_device::SharedMemory;
use vox_demo_host::device_host::{ExerciseReport, HostLink, HostLinkStorage, HostSession, M, Stopped, Workload};
use vox_link_embedded::FramedPort;
use vox_link_embedded::LinkChannel;
use vox_link_embedded::framed::FramedStats;
use vox_link_embedded::sim::{BytePipe, LineCutter, NoiseRates, NoisyWriter, PipeReader, PipeWriter, SimClock};
use vox_tests::sim_runtime::{SimHandle, SimRuntime, SimStopped};
use vox_types::{Clock, Instant};

type Line = BytePipe<CriticalSectionRawMutex, 1024>;
type Links = Arc<LinkChannel<M, HostLink>>;

/// About one corrupted byte in 5,000 each way.
const NOISE: NoiseRates = NoiseRates { flip_ppm: 70, drop_ppm: 70, insert_ppm: 60 };
/// A cable pull about every 150 frames each way.
const CUT_EVERY_FRAMES: u32 = 150;
/// Simulated time a run may take.
const SIM_LIMIT: Instant = Instant::from_millis(600_000);

/// One device's serial line, both directions.
struct Wire {
    to_device: Arc<Line>,
    to_host: Arc<Line>,
}

impl Wire {
    fn new() -> Self {
        Self { to_device: Arc::new(Line::new()), to_host: Arc::new(Line::new()) }
    }
}

/// A noisy, sometimes-cut writer onto `line`.
fn noisy(line: &Arc<Line>, seed: u64) -> LineCutter<NoisyWriter<PipeWriter<Arc<Line>>>> {
    LineCutter::new(NoisyWriter::new(PipeWriter(line.clone()), NOISE, seed), CUT_EVERY_FRAMES, 12)
}

/// Boots the device application on fresh memory; dropping the handle
/// stops it (the power goes).
fn boot_device(rt: &SimHandle, wire: &Wire, seed: u64) -> RemoteHandle<()> {
    let (clock, reader, writer) = (rt.clock(), PipeReader(wire.to_device.clone()), noisy(&wire.to_host, seed));
    rt.spawn(async move { match vox_demo_device::run(SharedMemory::new(), clock, reader, writer).await {} })
}

/// The host's end of the line: framed links on the byte stream, handed to
/// the sessions through the returned channel; the storage's counters.
fn host_port(rt: &SimHandle, wire: &Wire, seed: u64) -> (Links, Arc<HostLinkStorage>) {
    let links: Links = Arc::new(LinkChannel::new());
    let storage = Arc::new(HostLinkStorage::new());
    let (mut reader, mut writer) = (PipeReader(wire.to_host.clone()), noisy(&wire.to_device, seed));
    let (l, port, clock) = (links.clone(), FramedPort::new(storage.clone()), rt.clock());
    rt.spawn(async move { port.serve(&mut reader, &mut writer, &clock, |link| l.offer(link)).await }).forget();
    (links, storage)
}

/// A host session on `links`, its driver spawned.
fn host_session(
    rt: &SimHandle,
    links: &Links,
    seed: u64,
) -> (HostSession<SimClock>, RemoteHandle<Result<(), SessionError>>) {
    let clock = rt.clock();
    let (session, driver) = HostSession::new(clock.clone()).unwrap();
    let links = links.clone();
    let rng = ChaCha20Rng::seed_from_u64(seed);
    (session, rt.spawn(async move { driver.run(links.receiver(), rng, clock).await }))
}

fn workload(requests: u32, min_telemetry: u32) -> Workload {
    Workload { requests, echo_len: 48, only_echo: false, min_telemetry, window: 8, limit: Duration::from_secs(120) }
}

fn assert_clean(what: &str, r: &ExerciseReport, requests: u32) {
    assert_eq!(r.ended, None, "{what}: the session ended");
    assert_eq!(r.wrong, 0, "{what}: replies or samples out of order, repeated or wrong");
    assert_eq!(r.replies, requests, "{what}: every request answered once");
}

/// What one run ends with: enough to tell two runs apart.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    end: Instant,
    before: StableStats,
    after: StableStats,
    framed: FramedStats,
}

const REQUESTS: u32 = 300;

/// A device through corruption and cuts, a reboot, and a new session on
/// the same host port.
fn reboot_run(seed: u64) -> Result<Outcome, SimStopped> {
    let mut rt = SimRuntime::new();
    let h = rt.handle();
    let main = async move {
        let wire = Wire::new();
        let device = boot_device(&h, &wire, seed);
        let (links, framed) = host_port(&h, &wire, seed ^ 0x9E37_79B9);
        let (mut first, first_driver) = host_session(&h, &links, seed);
        let report = first.exercise(workload(REQUESTS, 50)).await;
        assert_clean("before the reboot", &report, REQUESTS);
        let before = first.stats();

        // The power goes; the device boots again on fresh memory.
        drop(device);
        let _rebooted = boot_device(&h, &wire, seed + 1);
        let lost = first.until_ended(Duration::from_secs(30)).await;
        assert_eq!(lost, Some(Stopped::Session(SessionError::SessionLost)), "the host learns of the reboot");
        assert_eq!(first_driver.await, Err(SessionError::SessionLost));

        // A new session on the same host port and the same links.
        let (mut second, second_driver) = host_session(&h, &links, seed + 2);
        let report = match select(second.exercise(workload(REQUESTS, 50)), second_driver).await {
            Either::First(report) => report,
            Either::Second(ended) => panic!("the second session's driver ended: {ended:?}"),
        };
        assert_clean("after the reboot", &report, REQUESTS);
        let framed = framed.stats();
        Outcome { end: h.clock().now(), before, after: second.stats(), framed }
    };
    rt.run(main, SIM_LIMIT)
}

/// Runs `run` for each seed, printing the seed that fails.
fn each_seed<T>(seeds: std::ops::Range<u64>, run: impl Fn(u64) -> Result<T, SimStopped>) -> Vec<T> {
    seeds
        .map(|seed| {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(seed)));
            match out {
                Ok(Ok(t)) => t,
                Ok(Err(stopped)) => panic!("seed {seed}: the simulation stopped: {stopped:?}"),
                Err(panic) => {
                    eprintln!("failing seed: {seed}");
                    std::panic::resume_unwind(panic)
                }
            }
        })
        .collect()
}

// r[verify found.device-host]
#[test]
fn the_device_application_runs_in_process_through_cuts_corruption_and_a_reboot() {
    let outcomes = each_seed(0..4, reboot_run);
    for (seed, o) in outcomes.iter().enumerate() {
        assert!(o.before.reattachments > 0, "seed {seed}: the line was cut: {:?}", o.before);
        assert!(
            o.framed.crc_errors + o.framed.malformed_frames > 0,
            "seed {seed}: bytes were corrupted: {:?}",
            o.framed
        );
        assert!(o.end > Instant::ZERO, "simulated time moved");
        println!(
            "seed {seed}: {:.1} simulated s, reattachments {} then {}, host CRC errors {}",
            o.end.as_millis() as f64 / 1000.0,
            o.before.reattachments,
            o.after.reattachments,
            o.framed.crc_errors
        );
    }
    // Deterministic: the same seed runs the same way.
    assert_eq!(reboot_run(1).unwrap(), outcomes[1], "seed 1 run twice");
}

// r[verify found.device-host]
#[test]
fn many_devices_run_side_by_side_in_one_process() {
    const DEVICES: u64 = 32;
    const CALLS: u32 = 40;
    let mut rt = SimRuntime::new();
    let h = rt.handle();
    let main = async move {
        let sessions = (0..DEVICES).map(|d| {
            let h = h.clone();
            async move {
                let wire = Wire::new();
                let _device = boot_device(&h, &wire, d);
                let (links, _framed) = host_port(&h, &wire, d + 1000);
                let (mut session, _driver) = host_session(&h, &links, d);
                let report = session.exercise(workload(CALLS, 5)).await;
                assert_clean(&format!("device {d}"), &report, CALLS);
                session.stats()
            }
        });
        futures::future::join_all(sessions).await
    };
    let stats = rt.run(main, SIM_LIMIT).expect("every device served in time");
    assert_eq!(stats.len(), DEVICES as usize);
    let delivered: u64 = stats.iter().map(|s| s.messages_delivered).sum();
    assert!(delivered >= DEVICES * u64::from(CALLS), "{delivered} messages delivered");
}
