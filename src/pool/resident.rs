//! A pool's resident connection: its first one, opened on the thread that
//! asked for the tenant, and the count that keeps a pool within
//! `max_connections` while that connection lives outside r2d2.
//!
//! r2d2 opens every connection on a connector thread; the caller waits
//! for two cross-thread wake-ups, which cost as much as the open itself on
//! a virtual machine (a round trip measured 90 µs against a 150 µs open,
//! see BENCHMARKS.md). So the cold path opens the first connection itself
//! and hands it out directly. When it comes back it is *parked* here, and
//! the next checkout takes it before asking r2d2: a tenant used by one
//! thread at a time never wakes a connector thread.
//!
//! r2d2 does not count the resident connection, so the connector's opens
//! are counted here instead: the resident one plus every one r2d2 had
//! opened never exceed `max_connections`. When r2d2 asks for one more and
//! the count is full, it is told to retry later (r2d2 keeps that request
//! pending, so it too stays within its own `max_size`). A request that
//! finds the resident connection parked takes it into r2d2 (*absorbed*):
//! from then on r2d2 alone counts and hands out the pool's connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::storage::TrackedConnection;

/// Where the resident connection is, and how many connections exist.
#[derive(Debug)]
struct Slot {
    /// The resident connection when it is parked (not checked out).
    parked: Option<TrackedConnection>,
    /// Connections open: the resident one and those opened for r2d2
    /// while it was resident.
    open: u32,
}

/// The resident connection of one pool, shared by the pool (which hands
/// it out) and its connection manager (which may absorb it).
#[derive(Debug)]
pub(super) struct Resident {
    slot: Mutex<Slot>,
    /// Set once the connection went into r2d2 (or never came back): the
    /// warm path then skips the slot's lock.
    absorbed: AtomicBool,
    max: u32,
}

/// What r2d2's connector may do when it needs a connection.
pub(super) enum Claim {
    /// Take the resident connection into r2d2.
    Absorb(TrackedConnection),
    /// Open a new connection; the permit keeps the count right if the
    /// open fails.
    Open(Permit),
    /// The pool has all its connections: ask again later.
    Full,
}

impl Resident {
    /// A pool's resident state, its first connection out with the lead.
    pub(super) fn new(max_connections: u32) -> Arc<Self> {
        Arc::new(Resident {
            slot: Mutex::new(Slot {
                parked: None,
                open: 1,
            }),
            absorbed: AtomicBool::new(false),
            max: max_connections.max(1),
        })
    }

    /// The resident connection, if it is parked here. No I/O: one
    /// uncontended lock while it is resident, one load once absorbed.
    pub(super) fn take(self: &Arc<Self>) -> Option<ResidentLease> {
        if self.absorbed.load(Ordering::Acquire) {
            return None;
        }
        let conn = self.slot.lock().parked.take()?;
        Some(ResidentLease {
            conn: Some(conn),
            home: Arc::clone(self),
        })
    }

    /// The most connections the pool may have open.
    pub(super) fn max(&self) -> u32 {
        self.max
    }

    /// Whether the resident connection is in r2d2 now.
    pub(super) fn absorbed(&self) -> bool {
        self.absorbed.load(Ordering::Acquire)
    }

    /// What r2d2's connector may do now: see [`Claim`].
    pub(super) fn claim(self: &Arc<Self>) -> Claim {
        if self.absorbed.load(Ordering::Acquire) {
            // r2d2 counts every connection now.
            return Claim::Open(Permit(None));
        }
        let mut slot = self.slot.lock();
        if let Some(conn) = slot.parked.take() {
            self.absorbed.store(true, Ordering::Release);
            return Claim::Absorb(conn);
        }
        if slot.open >= self.max {
            return Claim::Full;
        }
        slot.open += 1;
        Claim::Open(Permit(Some(Arc::clone(self))))
    }

    fn park(&self, conn: TrackedConnection) {
        self.slot.lock().parked = Some(conn);
    }
}

/// Counts one connection being opened for r2d2 while the resident one is
/// out of it; uncounted if the open fails.
pub(super) struct Permit(Option<Arc<Resident>>);

impl Permit {
    /// The connection was opened: it stays counted.
    pub(super) fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(resident) = self.0.take() {
            resident.slot.lock().open -= 1;
        }
    }
}

/// The resident connection, checked out; parked again when dropped.
pub(super) struct ResidentLease {
    // Always `Some` until dropped.
    conn: Option<TrackedConnection>,
    home: Arc<Resident>,
}

impl ResidentLease {
    /// The first connection of a pool whose resident state is `home`.
    pub(super) fn first(conn: TrackedConnection, home: &Arc<Resident>) -> Self {
        ResidentLease {
            conn: Some(conn),
            home: Arc::clone(home),
        }
    }

    pub(super) fn connection(&self) -> &TrackedConnection {
        // Only `drop` takes it.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }

    pub(super) fn connection_mut(&mut self) -> &mut TrackedConnection {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for ResidentLease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.home.park(conn);
        }
    }
}
