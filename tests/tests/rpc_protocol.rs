//! vox-rpc at the frame level: a hand-driven peer (a bare conduit of
//! `RpcFamily` frames) against the library's runner, for what a
//! well-behaved client never sends: bodies that do not decode, endpoint
//! indexes out of range, deadlines already past, another envelope version,
//! more requests than the window allows, impossible clock replies, topic
//! indexes in another order than the subscriber's. Every request is
//! answered.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex as M;
use std::pin::pin;
use std::sync::Arc;
use vox_conduit_bare::BareConduit;
use vox_link_embedded::MemoryLinkPair;
use vox_rpc::{Body, Calls, Endpoint, Frame, Hello, Request, RpcFamily, RunError, Server, Topic};
use vox_tests::sim_runtime::SimRuntime;
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit, Instant, SessionRole};

vox_rpc::declare! {
    pub endpoint Double = "double": u32 => u32;
}

type Raw = BareConduit<vox_link_embedded::MemoryLink<M, 8, 256>, RpcFamily>;

async fn send(tx: &<Raw as Conduit>::Tx, frame: Frame<'_>) {
    tx.reserve().await.unwrap().send(frame).unwrap();
}

/// What the runner sent, with its clock queries answered on the way.
async fn next(tx: &<Raw as Conduit>::Tx, rx: &mut <Raw as Conduit>::Rx, now: u64) -> Option<String> {
    loop {
        let msg = rx.recv().await.ok()??;
        match *msg.get::<RpcFamily>() {
            Frame::TimeQuery { t0 } => send(tx, Frame::TimeReply { t0, t1: now, t2: now }).await,
            Frame::Hello(ref h) => {
                let keys: Vec<_> = vox_rpc::keys(h.endpoints.bytes().unwrap_or(&[])).collect();
                return Some(format!("Hello version {} room {} keys {keys:?}", h.version, h.max_in_flight));
            }
            ref other => return Some(format!("{other:?}")),
        }
    }
}

fn hello(version: u16, max_in_flight: u16) -> Frame<'static> {
    Frame::Hello(Hello {
        version,
        max_in_flight,
        fingerprint: 0,
        endpoints: Body::Bytes(&[]),
        topics: Body::Bytes(&[]),
    })
}

/// Runs a device serving `Double` (logging runs) against `peer`.
fn with_device<F: std::future::Future<Output = ()> + 'static>(
    peer: impl FnOnce(
        Raw,
        Arc<std::sync::Mutex<Vec<u32>>>,
        std::rc::Rc<std::cell::RefCell<Option<Result<(), RunError>>>>,
    ) -> F
    + 'static,
) {
    let mut rt = SimRuntime::new();
    let h = rt.handle();
    let (a, b) = MemoryLinkPair::<M, 8, 256>::new_shared();
    let ran = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ended = std::rc::Rc::new(std::cell::RefCell::new(None));
    {
        let (clock, ran, ended) = (h.clock(), ran.clone(), ended.clone());
        h.spawn(async move {
            let conduit = BareConduit::<_, RpcFamily>::connect(b, SessionRole::Initiator).await.unwrap();
            let calls: Calls<M, 1, 16> = Calls::new();
            let mut server = pin!(Server::<_, 2, 64>::with_room().serve::<Double, _>(move |n| {
                ran.lock().unwrap().push(*n);
                Ok(*n * 2)
            }));
            *ended.borrow_mut() = Some(vox_rpc::run(conduit, &calls, server.as_mut(), clock).await);
        })
        .forget();
    }
    let main = async move {
        let raw = BareConduit::<_, RpcFamily>::connect(a, SessionRole::Acceptor).await.unwrap();
        peer(raw, ran, ended).await;
    };
    rt.run(main, Instant::from_millis(60_000)).expect("the exchange finishes");
}

// r[verify rpc.serve]
// r[verify rpc.outcome]
// r[verify rpc.deadline]
#[test]
fn every_request_is_answered_and_only_a_valid_one_in_time_runs() {
    with_device(|raw, ran, _| async move {
        let (tx, mut rx) = raw.split();
        send(&tx, hello(vox_rpc::PROTOCOL_VERSION, 4)).await;
        let greeting = next(&tx, &mut rx, 0).await.unwrap();
        assert_eq!(
            greeting,
            format!("Hello version {} room 2 keys [{:?}]", vox_rpc::PROTOCOL_VERSION, Double::KEY),
            "the device lists its one endpoint"
        );
        // Deadlines are deltas from the previous request's: start at 1 s.
        let body = postcard::to_allocvec(&21u32).unwrap();
        let bad = [0xffu8; 6];
        let cases: [(u32, u16, i64, &[u8], &str); 4] = [
            (1, 0, 1000, &bad, "Refused { id: 1, why: Undecodable }"),
            (2, 7, 0, &body, "Refused { id: 2, why: Unknown }"),
            (3, 0, -2000, &body, "Refused { id: 3, why: Expired }"),
            (4, 0, 2000, &body, "Reply { id: 4, body: Body(1 bytes) }"),
        ];
        for (id, endpoint, deadline, body, expected) in cases {
            send(&tx, Frame::Request(Request { id, endpoint, deadline, body: Body::Bytes(body) })).await;
            assert_eq!(next(&tx, &mut rx, 0).await.unwrap(), expected);
        }
        assert_eq!(*ran.lock().unwrap(), [21], "only the valid request in time ran");
    });
}

#[test]
fn another_envelope_version_ends_the_session_with_a_typed_error() {
    with_device(|raw, ran, ended| async move {
        let (tx, mut rx) = raw.split();
        send(&tx, hello(99, 4)).await;
        // The device greets (with its version), then ends.
        let greeting = next(&tx, &mut rx, 0).await.unwrap();
        assert!(greeting.starts_with(&format!("Hello version {} ", vox_rpc::PROTOCOL_VERSION)), "{greeting}");
        while rx.recv().await.is_ok_and(|m| m.is_some()) {}
        assert_eq!(*ended.borrow(), Some(Err(RunError::Version { ours: vox_rpc::PROTOCOL_VERSION, theirs: 99 })));
        assert!(ran.lock().unwrap().is_empty());
    });
}

#[test]
fn a_peer_beyond_the_window_it_was_given_is_a_violation_not_a_panic() {
    with_device(|raw, _, ended| async move {
        let (tx, mut rx) = raw.split();
        send(&tx, hello(vox_rpc::PROTOCOL_VERSION, 4)).await;
        let _greeting = next(&tx, &mut rx, 0).await.unwrap();
        // The device holds room for 2 answers it owes: undecodable requests
        // are refused (owed) until the window is exceeded. Nothing is read
        // back meanwhile, so the refusals stay owed only if the device
        // cannot send them: fill its link first by not reading.
        let bad = [0xffu8; 6];
        for id in 0..64 {
            let frame = Frame::Request(Request { id, endpoint: 0, deadline: 1000, body: Body::Bytes(&bad) });
            if tx.reserve().await.and_then(|p| p.send(frame)).is_err() {
                break;
            }
            if ended.borrow().is_some() {
                break;
            }
        }
        while ended.borrow().is_none() && rx.recv().await.is_ok_and(|m| m.is_some()) {}
        let end = *ended.borrow();
        assert_eq!(end, Some(Err(RunError::Violation("more requests unanswered than the window allows"))));
    });
}

#[test]
fn a_frame_before_the_greeting_is_a_violation() {
    with_device(|raw, _, ended| async move {
        let (tx, mut rx) = raw.split();
        send(&tx, Frame::Cancel { id: 3 }).await;
        while rx.recv().await.is_ok_and(|m| m.is_some()) {}
        assert_eq!(*ended.borrow(), Some(Err(RunError::Violation("a frame before the greeting"))));
    });
}

/// A peer whose every clock reply is impossible (it says it answered
/// before the query arrived) gets the 8 queries of a session's start and
/// then one 30 s later, not a query after every reply for ever: dropped
/// samples count (docs/PROTOCOL.md, clock samples).
#[test]
fn impossible_clock_replies_end_the_burst_of_queries_at_connect() {
    let mut rt = SimRuntime::new();
    let h = rt.handle();
    let (a, b) = MemoryLinkPair::<M, 8, 256>::new_shared();
    {
        let clock = h.clock();
        h.spawn(async move {
            let conduit = BareConduit::<_, RpcFamily>::connect(b, SessionRole::Initiator).await.unwrap();
            let calls: Calls<M, 1, 16> = Calls::new();
            let mut server = pin!(Server::<_, 2, 64>::with_room());
            let _ = vox_rpc::run(conduit, &calls, server.as_mut(), clock).await;
        })
        .forget();
    }
    let clock = h.clock();
    let peer = async move {
        use vox_types::Clock;
        let raw = BareConduit::<_, RpcFamily>::connect(a, SessionRole::Acceptor).await.unwrap();
        let (tx, mut rx) = raw.split();
        send(&tx, hello(vox_rpc::PROTOCOL_VERSION, 4)).await;
        let mut queries_at = Vec::new();
        while queries_at.len() < 9 {
            let msg = rx.recv().await.unwrap().unwrap();
            if let Frame::TimeQuery { t0 } = *msg.get::<RpcFamily>() {
                queries_at.push(clock.now().as_millis());
                // t2 before t1: impossible.
                send(&tx, Frame::TimeReply { t0, t1: 5, t2: 4 }).await;
            }
        }
        assert!(queries_at[..8].iter().all(|&t| t == 0), "the burst at connect: {queries_at:?}");
        assert_eq!(queries_at[8], vox_rpc::RESYNC_MS, "then one a resync period later");
    };
    rt.run(peer, Instant::from_millis(120_000)).expect("the peer sees its nine queries");
}

vox_rpc::declare! {
    pub topic TopicA = "a": u32;
    pub topic TopicB = "b": u32;
    pub topic TopicC = "c": u32;
}

fn key_list(keys: &[vox_rpc::EndpointKey]) -> Vec<u8> {
    keys.iter().flat_map(|k| k.0.to_le_bytes()).collect()
}

/// A greeting publishing the topics of `key_list`.
fn greeting(topics: &[u8]) -> Frame<'_> {
    Frame::Hello(Hello {
        version: vox_rpc::PROTOCOL_VERSION,
        max_in_flight: 4,
        fingerprint: 0,
        endpoints: Body::Bytes(&[]),
        topics: Body::Bytes(topics),
    })
}

/// Topic indexes are the peer's, not the subscriber's own: subscriptions
/// [A, B, C] against a peer publishing [B, A] send `Subscribe` for B and
/// A with the peer's indexes, take each sample by the peer's index, credit
/// with it; in the next session, whose peer publishes [A] only, nothing
/// of the first mapping is left (a sample at B's old index is a violation).
#[test]
fn topic_indexes_are_the_peers_and_nothing_of_them_outlives_a_session() {
    use vox_rpc::Subscription;
    let mut rt = SimRuntime::new();
    let h = rt.handle();
    let a: &'static Subscription<TopicA, M, 4, 16> = Box::leak(Box::new(Subscription::new()));
    let b: &'static Subscription<TopicB, M, 4, 16> = Box::leak(Box::new(Subscription::new()));
    let c: &'static Subscription<TopicC, M, 4, 16> = Box::leak(Box::new(Subscription::new()));
    let ended: std::rc::Rc<std::cell::RefCell<Vec<Result<(), RunError>>>> = Default::default();
    let (mut device_links, mut peer_links) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let (x, y) = MemoryLinkPair::<M, 8, 256>::new_shared();
        peer_links.push(x);
        device_links.push(y);
    }
    {
        let (clock, ended) = (h.clock(), ended.clone());
        h.spawn(async move {
            let calls: Calls<M, 1, 16> = Calls::new();
            let mut server = pin!(Server::new().subscribe(a).subscribe(b).subscribe(c));
            for link in device_links {
                let conduit = BareConduit::<_, RpcFamily>::connect(link, SessionRole::Initiator).await.unwrap();
                let r = vox_rpc::run(conduit, &calls, server.as_mut(), clock.clone()).await;
                ended.borrow_mut().push(r);
            }
        })
        .forget();
    }
    let peer = async move {
        let (seven, nine) = (postcard::to_allocvec(&7u32).unwrap(), postcard::to_allocvec(&9u32).unwrap());
        // Session 1: the peer publishes B at 0 and A at 1, not C.
        let raw = BareConduit::<_, RpcFamily>::connect(peer_links.remove(0), SessionRole::Acceptor).await.unwrap();
        let (tx, mut rx) = raw.split();
        let topics = key_list(&[TopicB::KEY, TopicA::KEY]);
        send(&tx, greeting(&topics)).await;
        assert!(next(&tx, &mut rx, 0).await.unwrap().starts_with("Hello"));
        let mut subscribes = vec![next(&tx, &mut rx, 0).await.unwrap(), next(&tx, &mut rx, 0).await.unwrap()];
        subscribes.sort();
        assert_eq!(subscribes, ["Subscribe { topic: 0, window: 4 }", "Subscribe { topic: 1, window: 4 }"]);
        send(&tx, Frame::Sample { topic: 0, seq: 0, dup: false, body: Body::Bytes(&seven) }).await;
        send(&tx, Frame::Sample { topic: 1, seq: 0, dup: false, body: Body::Bytes(&nine) }).await;
        let sample = a.samples().next().await;
        assert_eq!(sample.get(), Some(9), "the peer's topic 1 is A");
        drop(sample);
        assert_eq!(
            next(&tx, &mut rx, 0).await.unwrap(),
            "Credit { topic: 1, next: 1 }",
            "A's credit names the peer's index"
        );
        let sample = b.samples().next().await;
        assert_eq!(sample.get(), Some(7), "the peer's topic 0 is B");
        drop(sample);
        assert_eq!(next(&tx, &mut rx, 0).await.unwrap(), "Credit { topic: 0, next: 1 }");
        drop(tx);
        while rx.recv().await.is_ok_and(|m| m.is_some()) {}
        // Session 2: the peer publishes A only, at 0.
        let raw = BareConduit::<_, RpcFamily>::connect(peer_links.remove(0), SessionRole::Acceptor).await.unwrap();
        let (tx, mut rx) = raw.split();
        let topics = key_list(&[TopicA::KEY]);
        send(&tx, greeting(&topics)).await;
        assert!(next(&tx, &mut rx, 0).await.unwrap().starts_with("Hello"));
        assert_eq!(next(&tx, &mut rx, 0).await.unwrap(), "Subscribe { topic: 0, window: 4 }");
        // Index 1 (A's in the last session) names no topic now.
        send(&tx, Frame::Sample { topic: 1, seq: 5, dup: false, body: Body::Bytes(&seven) }).await;
        while rx.recv().await.is_ok_and(|m| m.is_some()) {}
    };
    rt.run(peer, Instant::from_millis(60_000)).expect("the peer's script ends");
    let ended = ended.borrow();
    assert_eq!(ended.len(), 2, "{ended:?}");
    assert_eq!(ended[1], Err(RunError::Violation("a sample of a topic not subscribed")));
}
