//! Silent peers cannot hold the bare acceptor's cap: with its 4 places
//! held, a newcomer with a valid prologue takes the place of the held
//! connection idle the longest, once that one has been idle for the
//! minimum idle time (2 s here); an active connection is never taken;
//! before anyone is idle that long, the newcomer is closed. On the
//! simulated clock.

use embassy_futures::join::join;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use vox_conduit_bare::{BareAcceptor, BareConduit, ConnectError, CountedLink, RecvError};
use vox_link_embedded::sim::{SimClock, memory_link_source};
use vox_tests::conduit_kit::{KitFamily, kit_msg};
use vox_tests::sim_runtime::{SimHandle, SimRuntime};
use vox_types::{
    Clock, Conduit, ConduitAcceptor, ConduitRx, ConduitTx, ConduitTxPermit, Instant, Link, LinkError, LinkRx, LinkTx,
    LinkTxPermit, SessionRole, WriteSlot,
};

type M = CriticalSectionRawMutex;
type Mem = vox_link_embedded::MemoryLink<M, 4, 256>;

/// Which server-side conduits ended, and how.
type Ended = Rc<RefCell<Vec<(u32, RecvError)>>>;

/// Serves conduit `id`: echoes until its `recv` fails, then records why.
fn serve(h: &SimHandle, conduit: BareConduit<CountedLink<Mem>, KitFamily>, id: u32, ended: &Ended) {
    let ended = ended.clone();
    h.spawn(async move {
        let (tx, mut rx) = conduit.split();
        loop {
            match rx.recv().await {
                Ok(Some(m)) => {
                    let n = m.get::<KitFamily>().id;
                    let Ok(permit) = tx.reserve().await else { return };
                    let _ = permit.send(kit_msg(n, "echo"));
                }
                Ok(None) => return,
                Err(e) => return ended.borrow_mut().push((id, e)),
            }
        }
    })
    .forget();
}

// r[verify bare.idle]
#[test]
fn a_newcomer_takes_the_place_of_the_connection_idle_the_longest_never_of_an_active_one() {
    let mut rt = SimRuntime::new();
    let h = rt.handle();
    let main = async move {
        let clock: SimClock = h.clock();
        let (dialer, listener) = memory_link_source::<M, 4, 256>([]);
        let dialer = Rc::new(RefCell::new(dialer));
        let (mut acceptor, runner) = BareAcceptor::<Mem, KitFamily>::new::<_, _, 8>(listener, clock.clone(), 1_000, 4);
        h.spawn(runner.evict_idle_after(Some(2_000)).run()).forget();
        let ended: Ended = Rc::default();
        let connect = || {
            let link = dialer.borrow_mut().connect();
            BareConduit::<_, KitFamily>::connect_within(link, SessionRole::Initiator, clock.clone(), 1_000)
        };
        // Four clients take the four places.
        let mut clients = Vec::new();
        for id in 0..4 {
            let (client, server) = join(connect(), acceptor.accept()).await;
            serve(&h, server.unwrap(), id, &ended);
            clients.push(client.unwrap());
            clock.sleep(Duration::from_millis(10)).await;
        }
        // Client 1 stays active: a round trip every 500 ms.
        let (tx1, mut rx1) = clients.remove(1).split();
        let active_clock = clock.clone();
        h.spawn(async move {
            for n in 0.. {
                tx1.reserve().await.unwrap().send(kit_msg(n, "ping")).unwrap();
                assert_eq!(rx1.recv().await.unwrap().unwrap().get::<KitFamily>().id, n);
                active_clock.sleep(Duration::from_millis(500)).await;
            }
        })
        .forget();

        // At 0.5 s nobody has been idle 2 s: the newcomer is closed.
        clock.sleep_until(Instant::from_millis(500)).await;
        let refused = connect().await;
        assert!(
            matches!(refused, Err(ConnectError::PeerClosed | ConnectError::Link(LinkError::Closed))),
            "closed without an answer: {:?}",
            refused.err()
        );
        assert_eq!(acceptor.stats().over_cap, 1);
        assert_eq!(acceptor.stats().connections, 4);

        // At 3 s client 0 has been idle the longest: it makes room.
        clock.sleep_until(Instant::from_millis(3_000)).await;
        let (newcomer, server) = join(connect(), acceptor.accept()).await;
        serve(&h, server.unwrap(), 4, &ended);
        let newcomer = newcomer.expect("admitted");
        let (ntx, mut nrx) = newcomer.split();
        ntx.reserve().await.unwrap().send(kit_msg(77, "hello")).unwrap();
        assert_eq!(nrx.recv().await.unwrap().unwrap().get::<KitFamily>().id, 77, "served");
        let stats = acceptor.stats();
        assert_eq!((stats.evicted_idle, stats.connections), (1, 4), "{stats:?}");
        assert_eq!(ended.borrow().as_slice(), &[(0, RecvError::Link(LinkError::Closed))], "client 0 was evicted");

        // At 6 s another newcomer: the idle clients 2 and 3 may go (2,
        // idle longer, first); the active client 1 never.
        clock.sleep_until(Instant::from_millis(6_000)).await;
        let (again, server) = join(connect(), acceptor.accept()).await;
        assert!(again.is_ok());
        serve(&h, server.unwrap(), 5, &ended);
        clock.sleep(Duration::from_millis(10)).await;
        let evicted: Vec<u32> = ended.borrow().iter().map(|(id, _)| *id).collect();
        assert_eq!(evicted, [0, 2], "the idle ones, longest idle first; never the active one");
        assert_eq!(acceptor.stats().evicted_idle, 2);
        drop(clients);
        drop(nrx);
    };
    rt.run(main, Instant::from_millis(60_000)).expect("the simulation finishes");
}

/// The bare prologue of an initiator of the kit's family.
fn prologue_payload() -> Vec<u8> {
    let mut p = [0u8; 32];
    let n = vox_types::Prologue::new(
        vox_types::ConduitMode::Bare,
        SessionRole::Initiator,
        <KitFamily as vox_types::MsgFamily>::FINGERPRINT,
    )
    .encode(&mut p)
    .unwrap();
    p[..n].to_vec()
}

/// A peer that connects, sends `first` (nothing, or a valid prologue),
/// then nothing, waits until the acceptor closes it and connects again
/// `again` later, until `until`.
fn silent_peer(h: &SimHandle, dialer: &Rc<RefCell<Dialer>>, first: Option<Vec<u8>>, again: Duration, until: Instant) {
    let (dialer, clock) = (dialer.clone(), h.clock());
    h.spawn(async move {
        while clock.now() < until {
            let link = dialer.borrow_mut().connect();
            let (tx, mut rx) = link.split();
            if let Some(bytes) = &first
                && let Ok(permit) = tx.reserve().await
                && let Ok(mut slot) = permit.alloc(bytes.len())
            {
                slot.as_mut_slice().copy_from_slice(bytes);
                slot.commit();
            }
            // Whatever the acceptor answers, until it closes the link.
            while let Ok(Some(_)) = rx.recv().await {}
            clock.sleep(again).await;
        }
    })
    .forget();
}

type Dialer = vox_link_embedded::sim::MemoryDialer<M, 4, 256>;

// r[verify bare.idle]
#[test]
#[ignore = "a release-mode test: about 900,000 connections (the test command runs it)"]
fn a_thousand_silent_peers_reconnecting_when_closed_never_lock_out_a_client() {
    const SECONDS: u64 = 10;
    let mut rt = SimRuntime::new();
    let h = rt.handle();
    let main = async move {
        let clock: SimClock = h.clock();
        let (dialer, listener) = memory_link_source::<M, 4, 256>([]);
        let dialer = Rc::new(RefCell::new(dialer));
        // The example server's sizes: 32 handshakes at once, 64 conduits.
        let (mut acceptor, runner) =
            BareAcceptor::<Mem, KitFamily>::new::<_, _, 32>(listener, clock.clone(), 1_000, 64);
        h.spawn(runner.evict_idle_after(Some(1_000)).run()).forget();
        let ended: Ended = Rc::default();
        let server = h.clone();
        let served_ended = ended.clone();
        h.spawn(async move {
            let mut id = 0;
            while let Ok(conduit) = acceptor.accept().await {
                serve(&server, conduit, id, &served_ended);
                id += 1;
            }
        })
        .forget();
        // The peers from the start; the client for SECONDS after the first
        // minimum idle time (and a margin), while the peers go on.
        let first = Instant::ZERO + Duration::from_millis(1_200);
        let until = first + Duration::from_secs(SECONDS) + Duration::from_millis(200);
        // 1,000 peers that send nothing and 64 (the cap) that send a valid
        // prologue and then nothing; each connects again 10 ms after it is
        // closed (about a TCP connect and accept).
        for _ in 0..1_000 {
            silent_peer(&h, &dialer, None, Duration::from_millis(10), until);
        }
        for _ in 0..64 {
            silent_peer(&h, &dialer, Some(prologue_payload()), Duration::from_millis(10), until);
        }
        // A client every 200 ms for SECONDS, one request each, from 1.2 s:
        // before the minimum idle time (1 s) nobody holding a place can be
        // told from a quiet client, and the 64 prologue peers hold all 64
        // places (the lock-out window README and `BareAcceptor` state).
        let mut served = 0u32;
        let mut attempts = 0u32;
        let mut at = first;
        while at < first + Duration::from_secs(SECONDS) {
            clock.sleep_until(at).await;
            attempts += 1;
            let link = dialer.borrow_mut().connect();
            let request = async {
                let client =
                    BareConduit::<_, KitFamily>::connect_within(link, SessionRole::Initiator, clock.clone(), 1_000)
                        .await
                        .ok()?;
                let (tx, mut rx) = client.split();
                tx.reserve().await.ok()?.send(kit_msg(attempts, "request")).ok()?;
                let reply = rx.recv().await.ok()??;
                (reply.get::<KitFamily>().id == attempts).then_some(())
            };
            if let embassy_futures::select::Either::First(Some(())) =
                embassy_futures::select::select(request, clock.sleep(Duration::from_millis(150))).await
            {
                served += 1;
            }
            at = at + Duration::from_millis(200);
        }
        (served, attempts, dialer.borrow().links_made())
    };
    let (served, attempts, links) = rt.run(main, Instant::from_millis(60_000)).expect("the simulation finishes");
    println!("{served} of {attempts} clients served among {links} connections");
    assert_eq!(attempts, 50, "a client every 200 ms for 10 s");
    assert_eq!(served, attempts, "every client is served");
    assert!(links > 500_000, "the silent peers kept reconnecting: {links} connections");
}
