//! Single flight for cold opens: when many threads ask for the same
//! uncached tenant at once, one of them (the lead) opens it and the others
//! wait for that, then find its pool in the cache. No lock is held while
//! the lead does I/O, and a destroy waits for a flight of its tenant to
//! land, so a pool being opened can never outlive the file it opened.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::cache::PoolCache;
use crate::name::TenantName;

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

    fn land(&self) {
        *self.landed.lock() = true;
        self.on_landing.notify_all();
    }
}

/// The lead's hold on a flight: dropped after the lead's pool (declare it
/// first), it ends the flight and wakes the waiters.
pub(crate) struct FlightGuard<'a> {
    cache: &'a PoolCache,
    tenant: TenantName,
    flight: Arc<Flight>,
}

impl<'a> FlightGuard<'a> {
    pub(super) fn new(cache: &'a PoolCache, tenant: TenantName, flight: Arc<Flight>) -> Self {
        FlightGuard {
            cache,
            tenant,
            flight,
        }
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        self.cache.end_open(&self.tenant, &self.flight);
        self.flight.land();
    }
}
