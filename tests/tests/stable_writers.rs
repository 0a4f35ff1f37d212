//! Many tasks waiting in `reserve` on one stable conduit: 16 writers share
//! one sending half whose replay ring is full (the peer reads slowly);
//! each proceeds when room frees, oldest first, none spinning: their
//! `reserve` futures are polled at most 2 × (messages sent) + 16 times.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;
use vox_link_embedded::sim::memory_link_source;
use vox_tests::conduit_kit::{KitFamily, kit_msg};
use vox_tests::sim_runtime::SimRuntime;
use vox_tests::stable_harness::{acceptor, initiator, rng};
use vox_types::{Clock, Conduit, ConduitRx, ConduitTx, ConduitTxPermit, Instant};

const WRITERS: u32 = 16;
const EACH: u32 = 25;

/// A future and the count of its polls.
struct Counted<F> {
    inner: Pin<Box<F>>,
    polls: Rc<Cell<u64>>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.set(self.polls.get() + 1);
        self.inner.as_mut().poll(cx)
    }
}

// r[verify core.burst]
#[test]
fn sixteen_tasks_waiting_in_reserve_all_proceed_and_none_spins() {
    let mut rt = SimRuntime::new();
    let h = rt.handle();
    let polls = Rc::new(Cell::new(0u64));
    let counted = polls.clone();
    let main = async move {
        let clock = h.clock();
        let (dialer, listener) =
            memory_link_source::<embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex, 4, 256>([]);
        let (sender, sender_driver) = initiator();
        let (receiver, receiver_driver) = acceptor();
        h.spawn(sender_driver.run(dialer, clock.clone())).forget();
        h.spawn(receiver_driver.run(listener, rng(1), clock.clone())).forget();
        // The reader takes a message every 5 ms: the sender's replay ring
        // stays full, and the writers wait.
        let reader_clock = clock.clone();
        let reader = h.spawn(async move {
            let (_tx, mut rx) = receiver.split();
            let mut per_writer = vec![Vec::new(); WRITERS as usize];
            for _ in 0..WRITERS * EACH {
                let m = rx.recv().await.unwrap().unwrap();
                let id = m.get::<KitFamily>().id;
                per_writer[(id / EACH) as usize].push(id % EACH);
                reader_clock.sleep(Duration::from_millis(5)).await;
            }
            per_writer
        });
        let (tx, _rx) = sender.split();
        let tx = Rc::new(tx);
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (tx, polls) = (tx.clone(), counted.clone());
                h.spawn(async move {
                    for n in 0..EACH {
                        let reserve = Counted { inner: Box::pin(tx.reserve()), polls: polls.clone() };
                        reserve.await.unwrap().send(kit_msg(w * EACH + n, "w")).unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await;
        }
        reader.await
    };
    let per_writer = rt.run(main, Instant::from_millis(600_000)).expect("the simulation finishes");
    for (w, got) in per_writer.iter().enumerate() {
        assert_eq!(got, &(0..EACH).collect::<Vec<_>>(), "writer {w}: every message, in its order");
    }
    let sent = u64::from(WRITERS * EACH);
    println!("{WRITERS} writers, {sent} messages: {} polls of their reserve futures", polls.get());
    assert!(polls.get() <= 2 * sent + u64::from(WRITERS), "{} polls for {sent} messages", polls.get());
}
