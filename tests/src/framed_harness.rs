//! [`LinkHarness`]es for `FramedLink`: over
//! in-memory byte pipes with runners on plain threads or tokio tasks, and
//! over real loopback TCP.

use crate::link_kit::LinkHarness;
use crate::stream_faults::CorruptAfterFrames;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embedded_io_adapters::tokio_1::FromTokio;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use vox_link_embedded::{
    FramedLink, FramedLinkStorage, FramedRunner,
    sim::{BytePipe, PipeReader, PipeWriter},
};

/// Payload slots each way.
pub const SLOTS: usize = 4;
/// Maximum payload.
pub const MTU: usize = 512;
/// Bytes a pipe holds.
pub const PIPE: usize = 256;

/// The framed link the harnesses make.
pub type TestFramedLink = FramedLink<CriticalSectionRawMutex, SLOTS, MTU>;
type Runner = FramedRunner<CriticalSectionRawMutex, SLOTS, MTU>;
/// The in-memory byte pipe the harnesses use.
pub type Pipe = BytePipe<CriticalSectionRawMutex, PIPE>;

/// Runs a runner future somewhere: a thread, a tokio task.
pub type Spawn = fn(Pin<Box<dyn Future<Output = ()> + Send>>);

/// Spawns on a new OS thread driven by `futures::executor::block_on`.
pub fn spawn_thread(fut: Pin<Box<dyn Future<Output = ()> + Send>>) {
    std::thread::spawn(move || futures::executor::block_on(fut));
}

/// Spawns on the current tokio runtime.
pub fn spawn_tokio(fut: Pin<Box<dyn Future<Output = ()> + Send>>) {
    tokio::spawn(fut);
}

fn run_on_pipes(spawn: Spawn, runner: Runner, rx: Arc<Pipe>, tx: Arc<Pipe>, corrupt_after: Option<u32>) {
    spawn(Box::pin(async move {
        let mut reader = PipeReader(rx);
        let mut writer = CorruptAfterFrames::new(PipeWriter(tx), corrupt_after);
        let _ = runner.run(&mut reader, &mut writer).await;
    }));
}

/// A framed pair over two in-memory pipes; A's writer corrupts the frame
/// after `corrupt_after` good ones.
pub fn pipe_pair(spawn: Spawn, corrupt_after: Option<u32>) -> (TestFramedLink, TestFramedLink) {
    let (ab, ba) = (Arc::new(Pipe::new()), Arc::new(Pipe::new()));
    let (a, ra) = FramedLinkStorage::new_shared();
    let (b, rb) = FramedLinkStorage::new_shared();
    run_on_pipes(spawn, ra, ba.clone(), ab.clone(), corrupt_after);
    run_on_pipes(spawn, rb, ab, ba, None);
    (a, b)
}

/// `FramedLink` over in-memory byte pipes.
pub struct PipeHarness {
    /// Where runners run.
    pub spawn: Spawn,
    /// Whether nothing drains the link while the test fills it (runners on
    /// the test's own single-threaded executor).
    pub exact: bool,
}

impl LinkHarness for PipeHarness {
    type Link = TestFramedLink;

    fn pair(&mut self) -> (Self::Link, Self::Link) {
        pipe_pair(self.spawn, None)
    }

    fn failing_pair(&mut self, n: u32) -> (Self::Link, Self::Link) {
        pipe_pair(self.spawn, Some(n))
    }

    fn capacity_bound(&self) -> usize {
        // Both slot queues, the encoder buffer and the pipe, in 7-byte
        // frames of one-byte payloads.
        2 * SLOTS + (512 + PIPE) / 7 + 16
    }

    fn exact_capacity(&self) -> bool {
        self.exact
    }
}

/// A connected loopback TCP pair, made without awaiting (inside a tokio
/// runtime).
pub fn tcp_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let client = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    let to_tokio = |s: std::net::TcpStream| {
        s.set_nodelay(true).expect("nodelay");
        s.set_nonblocking(true).expect("nonblocking");
        tokio::net::TcpStream::from_std(s).expect("tokio stream")
    };
    (to_tokio(client), to_tokio(server))
}

/// Runs `runner` over a tokio TCP stream through `embedded-io-adapters`.
pub fn run_on_tcp(runner: Runner, stream: tokio::net::TcpStream, corrupt_after: Option<u32>) {
    let (r, w) = stream.into_split();
    tokio::spawn(async move {
        let mut reader = FromTokio::new(r);
        let mut writer = CorruptAfterFrames::new(FromTokio::new(w), corrupt_after);
        let _ = runner.run(&mut reader, &mut writer).await;
    });
}

/// `FramedLink` over real loopback TCP (needs a current-thread tokio
/// runtime for exact capacity).
pub struct TcpHarness;

impl TcpHarness {
    fn make(corrupt_after: Option<u32>) -> (TestFramedLink, TestFramedLink) {
        let (sa, sb) = tcp_pair();
        let (a, ra) = FramedLinkStorage::new_shared();
        let (b, rb) = FramedLinkStorage::new_shared();
        run_on_tcp(ra, sa, corrupt_after);
        run_on_tcp(rb, sb, None);
        (a, b)
    }
}

impl LinkHarness for TcpHarness {
    type Link = TestFramedLink;

    fn pair(&mut self) -> (Self::Link, Self::Link) {
        Self::make(None)
    }

    fn failing_pair(&mut self, n: u32) -> (Self::Link, Self::Link) {
        Self::make(Some(n))
    }

    fn capacity_bound(&self) -> usize {
        SLOTS
    }

    fn exact_capacity(&self) -> bool {
        true
    }
}
