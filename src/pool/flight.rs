//! Single flight for cold opens: when many threads ask for the same
//! uncached tenant at once, one of them (the lead) opens it and the others
//! wait for that, then find its pool in the cache. No lock is held while
//! the lead does I/O, and a destroy waits for a flight of its tenant to
//! land, so a pool being opened can never outlive the file it opened.
//! The lead's hold on its flight is the cache's (`cache::FlightGuard`).
//!
//! A flight whose lead failed (a pending tenant, a failing hook, a lock
//! held by a stopped process) frees its followers to open the tenant
//! *together*: they join one flight as leads of their own, each gets its
//! own answer, and none waits behind more than the lead it followed and
//! the round it joined. Following each other in turn, the k-th would wait
//! k opens, each as long as the first.
//!
//! A flight knows the threads leading it: one of them asking for the
//! tenant again (from a `connection_init` hook, within its own open) would
//! wait for itself, and is refused instead.

use std::thread::{self, ThreadId};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

/// One cold open in progress (or a round of them, see the module's
/// comment).
#[derive(Debug)]
pub(crate) struct Flight {
    state: Mutex<State>,
    on_landing: Condvar,
    /// Whether threads may join it as leads (a round after a failure).
    together: bool,
}

#[derive(Debug)]
struct State {
    /// The threads of the leads still opening.
    leads: Vec<ThreadId>,
    landed: bool,
    /// Whether a lead failed (and none cached a pool: then the followers
    /// find it).
    failed: bool,
}

impl Flight {
    /// A flight led by the calling thread; `together`, one others may
    /// join.
    pub(super) fn new(together: bool) -> Flight {
        Flight {
            state: Mutex::new(State {
                leads: vec![thread::current().id()],
                landed: false,
                failed: false,
            }),
            on_landing: Condvar::new(),
            together,
        }
    }

    /// Joins this flight as one more lead (the calling thread), if it
    /// takes them and has not landed. The caller holds the lock of the
    /// shard the flight is in.
    pub(super) fn join(&self) -> bool {
        let mut state = self.state.lock();
        let joined = self.together && !state.landed;
        if joined {
            state.leads.push(thread::current().id());
        }
        joined
    }

    /// Whether the calling thread is one of this flight's leads.
    pub(super) fn led_here(&self) -> bool {
        let here = thread::current().id();
        self.state.lock().leads.contains(&here)
    }

    /// Waits until the open has ended or `deadline` passes: how it ended
    /// (`Some(failed)`), or `None` if it had not by then.
    pub(super) fn wait_until(&self, deadline: Instant) -> Option<bool> {
        let mut state = self.state.lock();
        while !state.landed {
            if self.on_landing.wait_until(&mut state, deadline).timed_out() {
                return state.landed.then_some(state.failed);
            }
        }
        Some(state.failed)
    }

    /// The calling thread's lead is done (`failed`, or not); whether it
    /// was the last, which lands the flight. Called under the lock of the
    /// flight's shard, so that it leaves the shard as it lands.
    pub(super) fn leave(&self, failed: bool) -> bool {
        let here = thread::current().id();
        let mut state = self.state.lock();
        // The guard ending a lead is dropped on its thread; were it not,
        // one lead still ends, so the flight lands all the same.
        let at = state.leads.iter().position(|lead| *lead == here);
        if let Some(at) = at.or(state.leads.len().checked_sub(1)) {
            state.leads.swap_remove(at);
        }
        state.failed |= failed;
        state.landed = state.leads.is_empty();
        state.landed
    }

    /// Wakes the waiters of a landed flight (see `cache::FlightGuard`).
    pub(super) fn wake(&self) {
        self.on_landing.notify_all();
    }
}
