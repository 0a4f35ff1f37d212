//! The firmware on an emulated Cortex-M (QEMU), talking to the host over
//! the emulated UART: the same `StableConduit` and `FramedLink` code on both
//! ends. Needs `qemu-system-arm` (installed when missing) and the
//! `thumbv7m-none-eabi` / `thumbv6m-none-eabi` targets.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use vox_conduit_stable::SessionError;
use vox_demo_host::device_host::Stopped;
use vox_tests::tcp_serial_port::TcpSerialPort;
/// Requests in flight.
const IN_FLIGHT: u32 = 64;
use vox_demo_host::device_host::Workload;
use vox_qemu_rig::qemu::{Board, Qemu, Uart, build_firmware, ensure_qemu};
use vox_tests::fault_proxy::{ProxyCounts, ProxyFaults, fault_proxy};

/// No QEMU outlives this, whatever the test does.
const QEMU_LIMIT: Duration = Duration::from_secs(240);

fn firmware(bin: &str, board: Board, features: &[&str]) -> std::path::PathBuf {
    ensure_qemu().unwrap();
    build_firmware(bin, board, features).unwrap()
}

fn mixed(requests: u32, min_telemetry: u32) -> Workload {
    Workload {
        requests,
        echo_len: 48,
        only_echo: false,
        min_telemetry,
        window: IN_FLIGHT,
        limit: Duration::from_secs(120),
    }
}

async fn host_port() -> (Arc<TcpSerialPort>, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (TcpSerialPort::spawn(listener), port)
}

async fn start_device(port: u16, reconnect: bool) -> Qemu {
    start_device_on(Board::Lm3s6965, port, reconnect).await
}

/// Starts the `device` firmware; with `VOX_QEMU_STDOUT=FILE` set, a defmt
/// build whose log goes to FILE (decode with `defmt-print -e ELF`).
async fn start_device_on(board: Board, port: u16, reconnect: bool) -> Qemu {
    let features: &[&str] = if std::env::var_os("VOX_QEMU_STDOUT").is_some() { &["defmt"] } else { &[] };
    let elf = firmware("device", board, features);
    Qemu::start(&elf, board, Uart::Tcp { port, reconnect }, QEMU_LIMIT, false).await.unwrap()
}

// r[verify port.firmware]
// r[verify rpc.symmetric]
// r[verify rpc.log]
/// 10,000 calls from the host through vox-rpc, while the device calls the
/// host (its clock) and publishes a telemetry sample every 20 ms and its
/// log lines on topics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_and_telemetry_over_the_emulated_uart() {
    let (serial, port) = host_port().await;
    let _qemu = start_device(port, false).await;
    let mut session = serial.session().unwrap();
    let r = session.exercise(mixed(10_000, 100)).await;
    let stats = session.stats();
    println!("{r:?}\nhost {stats:?}\nframed {:?}", serial.framed());
    assert_eq!(r.ended, None);
    assert_eq!(r.replies, 10_000, "every request answered correctly, once, in order");
    assert_eq!(r.wrong, 0, "nothing out of order, duplicated or wrong");
    assert!(r.telemetry >= 100, "the device published telemetry samples, every one in order: {}", r.telemetry);
    let log = session.take_log();
    assert!(log.iter().any(|l| l == "session started"), "the device's log reached the host: {log:?}");
    assert!(
        log.iter().any(|l| l == "logged from the timer interrupt"),
        "a line logged in an interrupt handler reached the host: {log:?}"
    );
    assert_eq!(serial.connections(), 1);
}

// r[verify port.firmware]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_drops_and_corruption_lose_nothing() {
    let (serial, host_port_number) = host_port().await;
    let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_port = front.local_addr().unwrap().port();
    let counts = Arc::new(ProxyCounts::default());
    let faults = ProxyFaults { flip_ppm: 30, drop_after_bytes: 30_000, max_drops: 4, seed: 11 };
    let back = std::net::SocketAddr::from(([127, 0, 0, 1], host_port_number));
    let proxy = tokio::spawn(fault_proxy(front, back, faults, counts.clone()));
    let _qemu = start_device(proxy_port, true).await;
    let mut session = serial.session().unwrap();
    let r = session.exercise(mixed(4_000, 100)).await;
    let stats = session.stats();
    let drops = counts.drops.load(Ordering::Relaxed);
    println!(
        "{r:?}\nhost {stats:?}\nframed {:?}\nproxy: {} connections, {drops} drops, {} bytes flipped",
        serial.framed(),
        counts.connections.load(Ordering::Relaxed),
        counts.flipped.load(Ordering::Relaxed)
    );
    proxy.abort();
    assert_eq!(r.ended, None);
    assert_eq!(r.replies, 4_000, "every request answered correctly, once, in order");
    assert_eq!(r.wrong, 0, "nothing out of order, duplicated or wrong");
    assert!(drops >= 3, "the proxy dropped the device's connection several times: {drops}");
    assert!(counts.flipped.load(Ordering::Relaxed) > 0, "the proxy corrupted bytes");
    assert!(stats.reattachments >= drops, "a reattachment per drop: {} < {drops}", stats.reattachments);
    let f = serial.framed();
    assert!(
        f.crc_errors + f.malformed_frames + f.resyncs > 0,
        "corrupted frames were caught (CRC, COBS or resynchronisation): {f:?}"
    );
}

// r[verify port.firmware]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_reboot_ends_the_session_then_a_new_one_works() {
    let (serial, port) = host_port().await;
    let qemu = start_device(port, false).await;
    let mut first = serial.session().unwrap();
    let r = first.exercise(mixed(500, 10)).await;
    assert_eq!((r.replies, r.wrong, r.ended), (500, 0, None));

    // Power cut: the device forgets its session and boots again.
    qemu.stop();
    let _qemu = start_device(port, false).await;
    let lost = first.until_ended(Duration::from_secs(20)).await;
    assert_eq!(lost, Some(Stopped::Session(SessionError::SessionLost)), "the host learns the device's session is gone");
    drop(first);

    let mut second = serial.session().unwrap();
    let r = second.exercise(mixed(500, 10)).await;
    println!("after reboot: {r:?}\nhost {:?}", second.stats());
    assert_eq!((r.replies, r.wrong, r.ended), (500, 0, None), "a new session works");
    assert!(r.telemetry >= 10);
    assert_eq!(serial.connections(), 2);
}

/// Runs the `selftest` firmware on `board`; returns its exit code and
/// semihosting output.
async fn selftest(board: Board) -> (Option<i32>, String) {
    let elf = firmware("selftest", board, &[]);
    let qemu = Qemu::start(&elf, board, Uart::Null, Duration::from_secs(120), true).await.unwrap();
    let (code, stdout, stderr) = qemu.wait().await.unwrap();
    let out = String::from_utf8_lossy(&stdout).into_owned();
    println!("{out}{stderr}");
    (code, out)
}

// r[verify port.firmware]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selftest_passes_on_the_cortex_m3() {
    let (code, out) = selftest(Board::Lm3s6965).await;
    assert_eq!(code, Some(0), "the on-target self-test exits with success");
    assert!(out.contains("selftest stable conduit over a noisy, cut line: ok"), "{out}");
    // r[verify core.deadline]
    assert!(out.contains("selftest clock across a wrap: ok"), "the tickless clock: {out}");
}

// r[verify port.targets]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selftest_passes_on_the_cortex_m0() {
    let (code, out) = selftest(Board::Microbit).await;
    assert_eq!(code, Some(0), "the on-target self-test exits with success on thumbv6m");
    assert!(out.contains("selftest on microbit"), "{out}");
}

// r[verify port.firmware]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_cortex_m0_uart() {
    let (serial, port) = host_port().await;
    let _qemu = start_device_on(Board::Microbit, port, false).await;
    let mut session = serial.session().unwrap();
    let r = session.exercise(mixed(2_000, 20)).await;
    println!("{r:?}\nhost {:?}", session.stats());
    assert_eq!((r.replies, r.wrong, r.ended), (2_000, 0, None));
    assert!(r.telemetry >= 20);
}

/// Decodes a defmt byte stream with the ELF's table into lines.
fn defmt_lines(elf: &std::path::Path, stream: &[u8]) -> Vec<String> {
    let bytes = std::fs::read(elf).unwrap();
    let table = defmt_decoder::Table::parse(&bytes).unwrap().expect("the ELF has a defmt table");
    let mut decoder = table.new_stream_decoder();
    decoder.received(stream);
    let mut lines = Vec::new();
    loop {
        match decoder.decode() {
            Ok(frame) => lines.push(frame.display_message().to_string()),
            Err(defmt_decoder::DecodeError::UnexpectedEof) => break,
            Err(defmt_decoder::DecodeError::Malformed) => panic!("malformed defmt stream after {lines:?}"),
        }
    }
    lines
}

// r[verify port.defmt]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defmt_log_shows_state_changes() {
    let elf = firmware("device", Board::Lm3s6965, &["defmt"]);
    let (serial, port) = host_port().await;
    let qemu =
        Qemu::start(&elf, Board::Lm3s6965, Uart::Tcp { port, reconnect: false }, QEMU_LIMIT, true).await.unwrap();
    let mut session = serial.session().unwrap();
    let first = session.exercise(mixed(200, 5)).await;
    // The host restarts: the device's session is lost, and a new one starts.
    drop(session);
    let mut again = serial.session().unwrap();
    let second = again.exercise(Workload { limit: Duration::from_secs(30), ..mixed(50, 0) }).await;
    let log = defmt_lines(&elf, &qemu.stop_with_output().await.unwrap());
    println!("{}\n{first:?}\n{second:?}\nhost {:?}", log.join("\n"), again.stats());
    assert_eq!((first.replies, first.wrong), (200, 0));
    assert_eq!((second.replies, second.wrong), (50, 0));
    let has = |needle: &str| log.iter().any(|l| l.contains(needle));
    assert!(has("session 1: connecting"), "{log:?}");
    assert!(has("stable: attached (reattachments 0)"), "attachment logged: {log:?}");
    assert!(has("stable: session ended: SessionLost"), "the typed error is logged: {log:?}");
    assert!(has("session 2: connecting"), "{log:?}");
}

/// A firmware built with `defmt-conduit` sends its defmt log on the
/// conduit, beside the calls: `demo --port PTY --elf ELF` decodes the
/// frames, one logged in the timer interrupt among them.
// r[verify rpc.log]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defmt_frames_on_the_conduit_are_decoded_by_the_port_demo() {
    let elf = firmware("device", Board::Lm3s6965, &["defmt-conduit"]);
    let qemu = Qemu::start(&elf, Board::Lm3s6965, Uart::Pty, QEMU_LIMIT, false).await.unwrap();
    let pty = qemu.pty().unwrap().to_path_buf();
    // 3,000 calls take more than the second after which the interrupt logs.
    let lines = vox_demo_host::qemu_demo::run_port_demo(&pty, 3_000, Some(&elf)).await.unwrap();
    drop(qemu);
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    assert!(has("INFO the host's clock:"), "a defmt line from a task, decoded: {lines:?}");
    assert!(has("INFO defmt from the timer interrupt, at "), "a defmt line from an interrupt: {lines:?}");
    assert!(has("logged from the timer interrupt"), "text lines still arrive beside them: {lines:?}");
}

/// A host of another schema: both the host's driver and the device end
/// with the schema refusal within a round trip, and the device does not
/// retry.
// r[verify stable.refusal]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_of_another_schema_is_refused_by_the_device_and_the_device_stops() {
    use vox_conduit_stable::{StableConduit, StableStorage};
    use vox_types::{HandshakeError, PrologueError};
    type KitStorage = StableStorage<embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex, 1024, 8, 1024, 8>;
    let elf = firmware("device", Board::Lm3s6965, &["defmt"]);
    let (serial, port) = host_port().await;
    let (_conduit, driver) = StableConduit::<vox_tests::conduit_kit::KitFamily, KitStorage>::acceptor(
        Arc::new(KitStorage::new()),
        vox_demo_protocol::UART_CONFIG,
    )
    .unwrap();
    let links = serial.links.clone();
    let host = tokio::spawn(async move {
        driver.run(links.receiver(), vox_tests::stable_harness::rng(5), vox_link_embedded::host::TokioClock).await
    });
    let qemu =
        Qemu::start(&elf, Board::Lm3s6965, Uart::Tcp { port, reconnect: false }, QEMU_LIMIT, true).await.unwrap();
    while serial.connections() == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let connected = std::time::Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), host).await.expect("the host's driver ends").unwrap();
    let took = connected.elapsed();
    assert!(
        matches!(ended, Err(SessionError::Refused(HandshakeError::Prologue(PrologueError::SchemaMismatch { .. })))),
        "{ended:?}"
    );
    assert!(took < Duration::from_secs(1), "refused in {took:?}");
    // The device says why, once, and does not try again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = defmt_lines(&elf, &qemu.stop_with_output().await.unwrap());
    let count = |needle: &str| log.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(count("SchemaMismatch"), 2, "the device logs the typed refusal: {log:?}");
    assert_eq!(count("not retrying"), 1, "{log:?}");
    assert_eq!(count("connecting"), 1, "no second session: {log:?}");
    println!("refused in {took:?}\n{}", log.join("\n"));
}

/// Starts the defmt `device` and waits for its connection to the host.
async fn refusing_device() -> (Arc<TcpSerialPort>, Qemu, std::path::PathBuf) {
    let elf = firmware("device", Board::Lm3s6965, &["defmt"]);
    let (serial, port) = host_port().await;
    let qemu =
        Qemu::start(&elf, Board::Lm3s6965, Uart::Tcp { port, reconnect: false }, QEMU_LIMIT, true).await.unwrap();
    while serial.connections() == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (serial, qemu, elf)
}

/// The device's log after a refusal: the typed error, once, and no retry.
async fn assert_device_refused(qemu: Qemu, elf: &std::path::Path, what: &str) {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = defmt_lines(elf, &qemu.stop_with_output().await.unwrap());
    let count = |needle: &str| log.iter().filter(|l| l.contains(needle)).count();
    assert!(count(what) >= 1, "the device logs {what}: {log:?}");
    assert_eq!(count("not retrying"), 1, "{log:?}");
    assert_eq!(count("connecting"), 1, "no second session: {log:?}");
}

/// A bare host against the stable device: both refuse the mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_host_and_the_stable_device_refuse_each_other_for_the_mode() {
    use vox_types::PrologueError;
    let (serial, qemu, elf) = refusing_device().await;
    let mut links = serial.links.receiver();
    let link = vox_types::LinkSource::next_link(&mut links).await.unwrap();
    let started = std::time::Instant::now();
    let bare = tokio::time::timeout(
        Duration::from_secs(5),
        vox_conduit_bare::BareConduit::<_, vox_demo_protocol::DemoFamily>::connect(
            link,
            vox_types::SessionRole::Acceptor,
        ),
    )
    .await
    .expect("in time");
    let took = started.elapsed();
    assert!(
        matches!(&bare, Err(vox_conduit_bare::ConnectError::Refused(PrologueError::ModeMismatch { .. }))),
        "{:?}",
        bare.err()
    );
    assert!(took < Duration::from_secs(1), "refused in {took:?}");
    assert_device_refused(qemu, &elf, "ModeMismatch").await;
}

/// A host of another protocol version: the device refuses it and answers
/// with its own version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_of_another_version_is_refused_by_the_device() {
    use vox_types::{Link, LinkRx, Prologue};
    let (serial, qemu, elf) = refusing_device().await;
    let mut links = serial.links.receiver();
    let link = vox_types::LinkSource::next_link(&mut links).await.unwrap();
    let (tx, mut rx) = link.split();
    let started = std::time::Instant::now();
    let fingerprint = <vox_demo_protocol::DemoFamily as vox_types::MsgFamily>::FINGERPRINT;
    // A host of version 1 (before the compact data frame).
    vox_tests::stable_harness::send_prologue_of_version(&tx, 1, vox_types::SessionRole::Acceptor, fingerprint).await;
    // The device's prologue (sent when it attached) says its own version.
    let theirs = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("in time").unwrap().unwrap();
    assert_eq!(Prologue::decode(theirs.as_bytes()).unwrap().version, vox_types::PROTOCOL_VERSION);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_device_refused(qemu, &elf, "UnsupportedVersion").await;
}
