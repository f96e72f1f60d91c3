//! Single flight for cold opens: when many threads ask for the same
//! uncached tenant at once, one of them (the lead) opens it and the others
//! wait for that, then find its pool in the cache. No lock is held while
//! the lead does I/O, and a destroy waits for a flight of its tenant to
//! land, so a pool being opened can never outlive the file it opened.
//! The lead's hold on its flight is the cache's (`cache::FlightGuard`).

use std::time::Instant;

use parking_lot::{Condvar, Mutex};

/// One cold open in progress.
#[derive(Debug, Default)]
pub(crate) struct Flight {
    landed: Mutex<bool>,
    on_landing: Condvar,
}

impl Flight {
    /// Waits until the open has ended, however it ended.
    pub(super) fn wait(&self) {
        let mut landed = self.landed.lock();
        while !*landed {
            self.on_landing.wait(&mut landed);
        }
    }

    /// Waits until the open has ended or `deadline` passes; whether it
    /// ended.
    pub(super) fn wait_until(&self, deadline: Instant) -> bool {
        let mut landed = self.landed.lock();
        while !*landed {
            if self
                .on_landing
                .wait_until(&mut landed, deadline)
                .timed_out()
            {
                return *landed;
            }
        }
        true
    }

    /// Ends the flight and wakes the waiters (see `cache::FlightGuard`).
    pub(super) fn land(&self) {
        *self.landed.lock() = true;
        self.on_landing.notify_all();
    }
}
