//! The link conformance kit on `FramedLink`: over in-memory byte pipes
//! (runners on plain threads, or on tokio) and over real loopback TCP.

use vox_tests::framed_harness::{PipeHarness, TcpHarness, spawn_thread, spawn_tokio};
use vox_tests::link_kit;

#[test]
fn conformance_over_pipes_runners_on_threads() {
    futures::executor::block_on(link_kit::check_all(&mut PipeHarness { spawn: spawn_thread, exact: false }));
}

#[tokio::test(flavor = "current_thread")]
async fn conformance_over_pipes_on_tokio() {
    link_kit::check_all(&mut PipeHarness { spawn: spawn_tokio, exact: true }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_over_pipes_on_tokio_multi_thread() {
    link_kit::check_all(&mut PipeHarness { spawn: spawn_tokio, exact: false }).await;
}

// r[verify framed.io]
#[tokio::test(flavor = "current_thread")]
async fn conformance_over_loopback_tcp() {
    link_kit::check_all(&mut TcpHarness).await;
}
