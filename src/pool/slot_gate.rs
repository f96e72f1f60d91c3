//! Where an insert waits for room in the pool cache, asleep.
//!
//! Every slot of the cache can be taken by inserts whose pools are not in
//! their shards yet: nothing can be evicted, and the insert that needs a
//! slot must wait for one of them to finish (its pool is then evictable)
//! or give its slot back. It waits here on a condition variable, woken by
//! each such change, instead of spinning on `yield_now` (which, with more
//! inserting threads than cores, burns a core while the inserts it waits
//! for are descheduled).
//!
//! No wake-up is lost: a waiter counts itself in `waiters` and reads the
//! count of changes *before* it looks at the slots, and a change is made
//! *before* its maker looks at `waiters` (all `SeqCst`): either the maker
//! sees the waiter and moves the count on (so the waiter does not sleep, or
//! is woken), or the waiter's look comes after the change and sees it.
//! With nobody waiting, a change costs one atomic load.

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Condvar, Mutex};

/// Waiters for a slot and the changes that may free one.
#[derive(Debug, Default)]
pub(super) struct SlotGate {
    waiters: AtomicUsize,
    changes: Mutex<u64>,
    changed: Condvar,
}

/// One insert's wait for a slot: the changes it has seen.
pub(super) struct Waiting<'a> {
    gate: &'a SlotGate,
    seen: u64,
}

impl SlotGate {
    /// Starts a wait: call before looking at the slots.
    pub(super) fn enter(&self) -> Waiting<'_> {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let seen = *self.changes.lock();
        Waiting { gate: self, seen }
    }

    /// A slot was given back or a pool put in its shard (so evictable):
    /// wakes the waiters, if any. Call after the change.
    pub(super) fn changed(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            *self.changes.lock() += 1;
            self.changed.notify_all();
        }
    }
}

impl Waiting<'_> {
    /// Sleeps until a change since the last look (returns at once if one
    /// came already).
    pub(super) fn wait(&mut self) {
        let mut changes = self.gate.changes.lock();
        while *changes == self.seen {
            self.gate.changed.wait(&mut changes);
        }
        self.seen = *changes;
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.gate.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}
