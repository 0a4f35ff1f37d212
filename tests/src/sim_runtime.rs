//! A deterministic single-threaded runtime on a simulated clock, for
//! tests that run a device and a host in one process: it polls every task
//! until none can move, then jumps the clock to the next deadline. The
//! same seed gives the same run, and simulated minutes take milliseconds.

use futures::executor::{LocalPool, LocalSpawner};
use futures::future::{FutureExt, RemoteHandle};
use futures::task::LocalSpawnExt;
use std::future::Future;
use vox_link_embedded::sim::SimClock;
use vox_types::{Clock, Instant};

/// Why [`SimRuntime::run`] stopped before its future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimStopped {
    /// Every task waits, and nothing waits on the clock: nothing will
    /// ever move again.
    Deadlock {
        /// Simulated time when it happened.
        at: Instant,
    },
    /// Simulated time reached the limit.
    TimeLimit,
}

/// Tasks on one thread, and the clock they share.
pub struct SimRuntime {
    pool: LocalPool,
    handle: SimHandle,
}

/// Spawns tasks on a [`SimRuntime`] (from inside its tasks too) and
/// gives its clock.
#[derive(Clone)]
pub struct SimHandle {
    spawner: LocalSpawner,
    clock: SimClock,
}

impl SimHandle {
    /// The shared clock.
    pub fn clock(&self) -> SimClock {
        self.clock.clone()
    }

    /// Spawns `task`; dropping the handle stops it (its future is dropped
    /// the next time the runtime runs).
    pub fn spawn<F: Future + 'static>(&self, task: F) -> RemoteHandle<F::Output> {
        let (remote, handle) = task.remote_handle();
        self.spawner.spawn_local(remote).expect("the pool accepts tasks");
        handle
    }
}

impl Default for SimRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl SimRuntime {
    /// No tasks, the clock at zero.
    pub fn new() -> Self {
        let pool = LocalPool::new();
        let handle = SimHandle { spawner: pool.spawner(), clock: SimClock::new() };
        Self { pool, handle }
    }

    /// Spawns tasks and gives the clock.
    pub fn handle(&self) -> SimHandle {
        self.handle.clone()
    }

    /// Runs every task until `main` completes, jumping the clock to the
    /// next deadline whenever no task can move; stops at a deadlock or
    /// when simulated time passes `limit`.
    pub fn run<T: 'static>(
        &mut self,
        main: impl Future<Output = T> + 'static,
        limit: Instant,
    ) -> Result<T, SimStopped> {
        let mut main = self.handle.spawn(main);
        let clock = self.handle.clock();
        loop {
            self.pool.run_until_stalled();
            if let Some(out) = (&mut main).now_or_never() {
                return Ok(out);
            }
            match clock.advance_to_next() {
                None => return Err(SimStopped::Deadlock { at: clock.now() }),
                Some(at) if at > limit => return Err(SimStopped::TimeLimit),
                Some(_) => {}
            }
        }
    }
}
