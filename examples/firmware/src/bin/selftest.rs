//! On-target self-test: runs the framed-link and stable-conduit logic on
//! the emulated Cortex-M itself (no host), prints one line per check over
//! semihosting and exits with status 0 only if every check passed.
#![no_std]
#![no_main]

use cortex_m_semihosting::hprintln;
use embassy_executor::Spawner;
use embassy_futures::join::join;
use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::raw::ThreadModeRawMutex;
use embassy_time::{Instant, Timer};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use static_cell::StaticCell;
use vox_conduit_stable::{StableConduit, StableConfig, StableStorage};
use vox_demo_device::EmbassyClock;
use vox_demo_protocol::{DemoFamily, DemoMsg};
use vox_firmware::board;
use vox_firmware::executor::WfiExecutor;
use vox_link_embedded::{
    FramedLink, FramedLinkStorage,
    framed::codec::{Decoded, FrameDecoder, encode_frame},
    sim::{BytePipe, NoiseRates, NoisyWriter, PipeReader, PipeWriter},
};
use vox_link_embedded::{FramedPort, LinkChannel};
use vox_types::{
    Conduit, ConduitMode, ConduitRx, ConduitTx, ConduitTxPermit, MsgFamily, PROLOGUE_MAX_LEN, Prologue, PrologueError,
    SchemaFingerprint, SessionRole,
};

type M = ThreadModeRawMutex;
const MTU: usize = 128;
type TestLink = FramedLink<M, 2, MTU>;
type TestStorage = StableStorage<M, 1024, 16, 512, 4>;
type TestConduit = StableConduit<DemoFamily, TestStorage>;

static PIPE_AB: BytePipe<M, 256> = BytePipe::new();
static PIPE_BA: BytePipe<M, 256> = BytePipe::new();
static LINK_A: FramedLinkStorage<M, 2, MTU> = FramedLinkStorage::new();
static LINK_B: FramedLinkStorage<M, 2, MTU> = FramedLinkStorage::new();
static LINKS_A: LinkChannel<M, TestLink> = LinkChannel::new();
static LINKS_B: LinkChannel<M, TestLink> = LinkChannel::new();
static CONDUIT_A: TestStorage = StableStorage::new();
static CONDUIT_B: TestStorage = StableStorage::new();

/// Messages each way in the conduit check.
const MESSAGES: u32 = 1000;
/// Corruption of the in-RAM line (flips, drops and inserts, each).
const NOISE_PPM: u32 = 300;

const CONFIG: StableConfig = StableConfig {
    max_message: 100,
    ack_every: 4,
    ack_delay_ms: 5,
    keepalive_ms: 60,
    timeout_ms: 250,
    retry_delay_ms: 5,
    linger_ms: 600,
    connect_timeout_ms: 10_000,
};

fn report(name: &str, ok: bool) -> bool {
    hprintln!("selftest {}: {}", name, if ok { "ok" } else { "FAILED" });
    ok
}

/// A frame round-trips through encoder and decoder; a flipped byte is
/// caught by the CRC.
fn frame_codec() -> bool {
    let mut wire = [0u8; 32];
    let Some(n) = encode_frame(b"123456789", &mut wire) else { return false };
    let mut decoder = FrameDecoder::resyncing();
    let mut slot = [0u8; MTU];
    let mut got = None;
    for &b in wire.get(..n).unwrap_or(&[]) {
        if let Ok(Decoded::Frame(len)) = decoder.feed(b, &mut slot) {
            got = Some(len);
        }
    }
    let round_trip = got == Some(9) && slot.get(..9) == Some(&b"123456789"[..]);
    if let Some(b) = wire.get_mut(3) {
        *b ^= 0x10;
    }
    let mut caught = false;
    for &b in wire.get(..n).unwrap_or(&[]) {
        caught |= decoder.feed(b, &mut slot).is_err();
    }
    round_trip && caught
}

/// Prologues encode, decode and match on the same schema; another schema
/// is refused with a typed error.
fn prologue() -> bool {
    let ours = Prologue::new(ConduitMode::Stable, SessionRole::Initiator, DemoFamily::FINGERPRINT);
    let peer = Prologue::new(ConduitMode::Stable, SessionRole::Acceptor, DemoFamily::FINGERPRINT);
    let mut buf = [0u8; PROLOGUE_MAX_LEN];
    let Ok(n) = peer.encode(&mut buf) else { return false };
    let decoded = Prologue::decode(buf.get(..n).unwrap_or(&[]));
    let matched = decoded.as_ref().is_ok_and(|p| ours.check_peer(p).is_ok());
    let other = Prologue::new(ConduitMode::Stable, SessionRole::Acceptor, SchemaFingerprint::of::<u32>());
    let refused = matches!(ours.check_peer(&other), Err(PrologueError::SchemaMismatch { .. }));
    matched && refused
}

/// One end of a noisy in-RAM serial line: the library's
/// [`FramedPort::run_link`], one link after another, each cut after
/// `cut_ms` (its future is dropped).
async fn serial_port(
    storage: &'static FramedLinkStorage<M, 2, MTU>,
    links: &'static LinkChannel<M, TestLink>,
    from: &'static BytePipe<M, 256>,
    to: &'static BytePipe<M, 256>,
    seed: u64,
    cut_ms: u64,
) -> ! {
    let mut reader = PipeReader(from);
    let mut writer = NoisyWriter::new(PipeWriter(to), NoiseRates::uniform(NOISE_PPM), seed);
    let port = FramedPort::new(storage);
    loop {
        let link = port.run_link(&mut reader, &mut writer, &EmbassyClock, |link| links.offer(link));
        let _ = select(link, Timer::after_millis(cut_ms)).await;
    }
}

/// Sends `MESSAGES` telemetry samples and closes, while checking that the
/// peer's arrive once each and in order. Returns the samples received.
async fn exchange(conduit: TestConduit) -> u32 {
    let (tx, mut rx) = conduit.split();
    let send = async move {
        for seq in 0..MESSAGES {
            let Ok(permit) = tx.reserve().await else { return };
            if permit.send(DemoMsg::Telemetry { seq, millivolts: 3300, label: "selftest" }).is_err() {
                return;
            }
        }
    };
    let receive = async {
        let mut next = 0u32;
        while let Ok(Some(msg)) = rx.recv().await {
            match msg.get::<DemoFamily>() {
                DemoMsg::Telemetry { seq, .. } if *seq == next => next += 1,
                _ => return u32::MAX,
            }
        }
        next
    };
    join(send, receive).await.1
}

/// Two stable conduits over a noisy line that is cut every few hundred
/// milliseconds: every message arrives exactly once, in order.
async fn stable_over_noisy_cut_line() -> bool {
    let (Ok((a, driver_a)), Ok((b, driver_b))) =
        (TestConduit::initiator(&CONDUIT_A, CONFIG), TestConduit::acceptor(&CONDUIT_B, CONFIG))
    else {
        return false;
    };
    let (stats_a, stats_b) = (a.stats_handle(), b.stats_handle());
    let ports = select(
        serial_port(&LINK_A, &LINKS_A, &PIPE_BA, &PIPE_AB, 1, 170),
        serial_port(&LINK_B, &LINKS_B, &PIPE_AB, &PIPE_BA, 2, 230),
    );
    let drivers = join(
        driver_a.run(LINKS_A.receiver(), EmbassyClock),
        driver_b.run(LINKS_B.receiver(), ChaCha8Rng::seed_from_u64(2), EmbassyClock),
    );
    let started = Instant::now();
    let work = join(drivers, join(exchange(a), exchange(b)));
    let ((ra, rb), (got_a, got_b)) = match select(work, ports).await {
        Either::First(done) => done,
        Either::Second(_) => return false,
    };
    let (sa, sb) = (stats_a.get(), stats_b.get());
    hprintln!(
        "selftest conduit: {}/{} and {}/{} messages in {} ms; reattachments {}+{}, replays {}+{}, crc errors {}+{}",
        got_a,
        MESSAGES,
        got_b,
        MESSAGES,
        started.elapsed().as_millis(),
        sa.reattachments,
        sb.reattachments,
        sa.replays,
        sb.replays,
        sa.crc_errors,
        sb.crc_errors
    );
    ra.is_ok() && rb.is_ok() && got_a == MESSAGES && got_b == MESSAGES && sa.reattachments + sb.reattachments > 0
}

/// The tickless clock across a SysTick wrap: read back to back from 10 ms
/// before the wrap to 10 ms after, it never steps back and never leaps by
/// anything like a period (5.4 s; QEMU starved of CPU may pause the core
/// for milliseconds between two reads); and it never stepped back since
/// boot.
#[cfg(feature = "board-lm3s6965")]
async fn clock_across_a_wrap() -> bool {
    use embassy_time::Duration;
    use vox_firmware::time_driver::tickless::{clock_steps_back, until_next_wrap_ms, wraps};
    let before = wraps();
    Timer::after_millis(until_next_wrap_ms().saturating_sub(10)).await;
    let start = Instant::now();
    let (mut last, mut longest, mut back) = (start, 0, false);
    while last.duration_since(start) < Duration::from_millis(20) {
        let now = Instant::now();
        back |= now < last;
        longest = longest.max(now.as_millis().saturating_sub(last.as_millis()));
        last = now;
    }
    let steps_back = clock_steps_back();
    hprintln!(
        "selftest clock: longest step {} ms, steps back {}, wraps {} -> {}",
        longest,
        steps_back,
        before,
        wraps()
    );
    !back && longest < 1000 && wraps() > before && steps_back == 0
}

#[embassy_executor::task]
async fn run_all() {
    hprintln!("selftest on {}", board::NAME);
    let mut ok = report("frame codec", frame_codec());
    ok &= report("prologue", prologue());
    ok &= report("stable conduit over a noisy, cut line", stable_over_noisy_cut_line().await);
    #[cfg(feature = "board-lm3s6965")]
    {
        ok &= report("clock across a wrap", clock_across_a_wrap().await);
    }
    hprintln!("selftest {}", if ok { "passed" } else { "FAILED" });
    vox_firmware::exit::exit(ok)
}

#[cortex_m_rt::entry]
fn main() -> ! {
    static EXECUTOR: StaticCell<WfiExecutor> = StaticCell::new();
    let _uart = board::init();
    EXECUTOR.init(WfiExecutor::new()).run(|spawner: Spawner| {
        spawner.spawn(run_all().unwrap_or_else(|_| vox_firmware::exit::exit(false)));
    })
}
