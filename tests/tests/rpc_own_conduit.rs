//! vox-rpc over a conduit of the user's own: a few lines over tokio
//! channels (frames encoded with postcard into `Vec`s), its failures
//! classified through `ConduitError`. Calls work both ways; when the
//! channel goes away, a pending call resolves at once as session lost.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex as M;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use vox_link_embedded::host::TokioClock;
use vox_rpc::{CallError, Calls, Client, RpcFamily, Server};
use vox_types::{
    Backing, Conduit, ConduitError, ConduitRx, ConduitTx, ConduitTxPermit, ErrorKind, MsgFamily, RecvResult, SelfRef,
    decode_message,
};

vox_rpc::declare! {
    pub endpoint Double = "double": u32 => u32;
    pub endpoint Nap = "nap": u32 => u32;
}

/// The user's conduit: one tokio channel each way.
struct Own {
    tx: mpsc::Sender<Vec<u8>>,
    rx: mpsc::Receiver<Vec<u8>>,
}

#[derive(Debug)]
enum OwnError {
    Gone,
    Encode,
    Decode,
}

impl std::fmt::Display for OwnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}
impl std::error::Error for OwnError {}

impl ConduitError for OwnError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Gone => ErrorKind::SessionLost,
            Self::Encode => ErrorKind::TooLarge,
            Self::Decode => ErrorKind::Decode,
        }
    }
}

struct OwnTx(mpsc::Sender<Vec<u8>>);
struct OwnRx(mpsc::Receiver<Vec<u8>>);
struct OwnPermit<'a>(mpsc::Permit<'a, Vec<u8>>);

impl Conduit for Own {
    type Msg = RpcFamily;
    type Tx = OwnTx;
    type Rx = OwnRx;
    fn split(self) -> (OwnTx, OwnRx) {
        (OwnTx(self.tx), OwnRx(self.rx))
    }
}

impl ConduitTx for OwnTx {
    type Msg = RpcFamily;
    type Permit<'a> = OwnPermit<'a>;
    type Error = OwnError;
    async fn reserve(&self) -> Result<OwnPermit<'_>, OwnError> {
        self.0.reserve().await.map(OwnPermit).map_err(|_| OwnError::Gone)
    }
    async fn close(self) -> Result<(), OwnError> {
        Ok(())
    }
}

impl ConduitTxPermit for OwnPermit<'_> {
    type Msg = RpcFamily;
    type Error = OwnError;
    fn send(self, item: <RpcFamily as MsgFamily>::Msg<'_>) -> Result<(), OwnError> {
        let bytes = postcard::to_allocvec(&item).map_err(|_| OwnError::Encode)?;
        self.0.send(bytes);
        Ok(())
    }
}

impl ConduitRx for OwnRx {
    type Msg = RpcFamily;
    type Error = OwnError;
    async fn recv(&mut self) -> RecvResult<RpcFamily, OwnError> {
        let Some(bytes) = self.0.recv().await else { return Err(OwnError::Gone) };
        SelfRef::<RpcFamily>::try_new(Backing::from(bytes), decode_message::<RpcFamily>)
            .map(Some)
            .map_err(|_| OwnError::Decode)
    }
}

fn pair() -> (Own, Own) {
    let (a_tx, b_rx) = mpsc::channel(8);
    let (b_tx, a_rx) = mpsc::channel(8);
    (Own { tx: a_tx, rx: a_rx }, Own { tx: b_tx, rx: b_rx })
}

// r[verify rpc.crate]
#[tokio::test(flavor = "current_thread")]
async fn calls_run_over_a_conduit_of_the_users_own() {
    let (a, b) = pair();
    let a_calls: Arc<Calls<M, 4, 32>> = Arc::new(Calls::new());
    let b_calls: Arc<Calls<M, 4, 32>> = Arc::new(Calls::new());
    let a_client = Client::new(a_calls.clone(), TokioClock);
    let b_client = Client::new(b_calls.clone(), TokioClock);
    let a_runner = {
        let calls = a_calls.clone();
        tokio::spawn(async move {
            let mut server = pin!(Server::new().serve::<Double, _>(|n| Ok(*n * 2)));
            vox_rpc::run(a, &*calls, server.as_mut(), TokioClock).await
        })
    };
    let b_runner = {
        let calls = b_calls.clone();
        tokio::spawn(async move {
            let mut server = pin!(Server::new().serve_async::<Nap, 1, _, _>(|n| async move {
                tokio::time::sleep(Duration::from_millis(u64::from(n))).await;
                Ok(n)
            }));
            vox_rpc::run(b, &*calls, server.as_mut(), TokioClock).await
        })
    };
    async {
        assert_eq!(b_client.call::<Double>(21, Duration::from_millis(500)).await, Ok(42));
        assert_eq!(a_client.call::<Nap>(5, Duration::from_millis(500)).await, Ok(5));
        // The other side goes away while a call is pending.
        let pending = a_client.call::<Nap>(300, Duration::from_secs(5));
        let started = std::time::Instant::now();
        let (lost, ()) = tokio::join!(pending, async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            b_runner.abort();
        });
        assert_eq!(lost, Err(CallError::SessionLost { committed: true }));
        assert!(started.elapsed() < Duration::from_secs(1), "resolved when the conduit failed");
        assert!(a_runner.await.unwrap().is_err());
    }
    .await;
}

// r[verify rpc.exactly-once]
#[tokio::test(flavor = "current_thread")]
async fn dropping_the_runner_resolves_its_committed_calls_at_once() {
    let (a, b) = pair();
    let a_calls: Arc<Calls<M, 4, 32>> = Arc::new(Calls::new());
    let b_calls: Arc<Calls<M, 4, 32>> = Arc::new(Calls::new());
    let a_client = Client::new(a_calls.clone(), TokioClock);
    let a_runner = {
        let calls = a_calls.clone();
        tokio::spawn(async move {
            let mut server = pin!(Server::new());
            vox_rpc::run(a, &*calls, server.as_mut(), TokioClock).await
        })
    };
    let _b_runner = tokio::spawn(async move {
        let mut server = pin!(Server::new().serve_async::<Nap, 1, _, _>(|n| async move {
            tokio::time::sleep(Duration::from_millis(u64::from(n))).await;
            Ok(n)
        }));
        vox_rpc::run(b, &*b_calls, server.as_mut(), TokioClock).await
    });
    assert_eq!(a_client.call::<Nap>(1, Duration::from_millis(500)).await, Ok(1));
    let started = std::time::Instant::now();
    let (lost, ()) = tokio::join!(a_client.call::<Nap>(2_000, Duration::from_secs(5)), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        a_runner.abort();
    });
    assert_eq!(lost, Err(CallError::SessionLost { committed: true }));
    assert!(started.elapsed() < Duration::from_secs(1), "resolved when the runner was dropped");
}
