//! End-to-end throughput between the host and the firmware in QEMU:
//! payload bytes per second echoed through `StableConduit` (the `device`
//! firmware answering echo requests), against a raw byte echo (the `echo`
//! firmware) over the same emulated UART and loopback TCP chardev, in the
//! same process. Prints both and their ratio.
//!
//! `cargo bench -p vox-tests --bench qemu_throughput [-- ROUNDS]`

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
/// Requests in flight.
const IN_FLIGHT: u32 = 64;
use vox_demo_host::device_host::Workload;
use vox_qemu_rig::qemu::{Board, Qemu, Uart, build_firmware, ensure_qemu};
use vox_tests::tcp_serial_port::TcpSerialPort;

/// Payload bytes per run.
const TOTAL: usize = 48 * 1024;
/// Payload bytes per echo request.
const ECHO_LEN: usize = 128;
const LIMIT: Duration = Duration::from_secs(120);

/// Raw echo: writes `TOTAL` bytes while reading them back; bytes/s.
async fn raw_echo(board: Board) -> f64 {
    let elf = build_firmware("echo", board, &[]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _qemu = Qemu::start(&elf, board, Uart::Tcp { port, reconnect: false }, LIMIT, false).await.unwrap();
    let (stream, _) = listener.accept().await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut r, mut w) = stream.into_split();
    let data: Vec<u8> = (0..TOTAL).map(|i| (i * 31 + 7) as u8).collect();
    // One byte round trip first: the firmware has booted.
    w.write_all(&[0x55]).await.unwrap();
    let mut one = [0u8; 1];
    r.read_exact(&mut one).await.unwrap();
    let start = Instant::now();
    let writer = async {
        for chunk in data.chunks(256) {
            w.write_all(chunk).await.unwrap();
        }
    };
    let reader = async {
        let mut back = vec![0u8; TOTAL];
        r.read_exact(&mut back).await.unwrap();
        back
    };
    let ((), back) = tokio::join!(writer, reader);
    let secs = start.elapsed().as_secs_f64();
    assert!(back == data, "the echo firmware returned other bytes");
    TOTAL as f64 / secs
}

/// Stable conduit: echo requests of `ECHO_LEN` bytes; payload bytes/s.
async fn conduit_echo(board: Board) -> (f64, u64) {
    let elf = build_firmware("device", board, &[]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serial = TcpSerialPort::spawn(listener);
    let _qemu = Qemu::start(&elf, board, Uart::Tcp { port, reconnect: false }, LIMIT, false).await.unwrap();
    let mut session = serial.session().unwrap();
    let warm = Workload {
        requests: 16,
        echo_len: ECHO_LEN,
        only_echo: true,
        min_telemetry: 0,
        window: IN_FLIGHT,
        limit: LIMIT,
    };
    let w = session.exercise(warm).await;
    assert_eq!(w.replies, 16);
    let r = session.exercise(Workload { requests: (TOTAL / ECHO_LEN) as u32, ..warm }).await;
    assert_eq!((r.replies, r.wrong), ((TOTAL / ECHO_LEN) as u32, 0), "{r:?}");
    let wire = serial.framed().wire_bytes_sent;
    (r.echoed_bytes as f64 / r.elapsed.as_secs_f64(), wire)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    ensure_qemu().unwrap();
    let rounds: usize = std::env::args().filter_map(|a| a.parse().ok()).next().unwrap_or(3);
    for board in [Board::Lm3s6965, Board::Microbit] {
        let (mut raw, mut conduit) = (0f64, 0f64);
        for _ in 0..rounds {
            raw = raw.max(raw_echo(board).await);
            conduit = conduit.max(conduit_echo(board).await.0);
        }
        println!(
            "{:<12} raw UART echo {:>8.0} B/s | StableConduit echo ({ECHO_LEN} B payloads, {IN_FLIGHT} in flight) {:>8.0} B/s | ratio {:.2} (best of {rounds})",
            board.machine(),
            raw,
            conduit,
            conduit / raw
        );
    }
}
