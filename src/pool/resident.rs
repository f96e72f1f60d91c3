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
//!
//! When the pool is dropped, [`Resident::close`] closes a parked resident
//! connection there and then, and refuses r2d2 from then on: a connector
//! job in flight keeps r2d2's shared state (and so this) alive a moment
//! longer, and a destroy that drained the pool must not find the file
//! still open.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use super::check_in;
use crate::storage::TrackedConnection;

/// Where the resident connection is, and how many connections exist.
#[derive(Debug)]
struct Slot {
    /// The resident connection when it is parked (not checked out).
    parked: Option<TrackedConnection>,
    /// Connections open: the resident one and those opened for r2d2
    /// while it was resident.
    open: u32,
    /// The pool was dropped: nothing more is opened or handed out.
    closed: bool,
}

/// The resident connection of one pool, shared by the pool (which hands
/// it out) and its connection manager (which may absorb it).
#[derive(Debug)]
pub(super) struct Resident {
    slot: Mutex<Slot>,
    /// Set once the connection went into r2d2 or the pool closed: the
    /// warm path then skips the slot's lock.
    settled: AtomicBool,
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
                closed: false,
            }),
            settled: AtomicBool::new(false),
            max: max_connections.max(1),
        })
    }

    /// The resident connection, if it is parked here. No I/O: one
    /// uncontended lock while it is resident, one load once absorbed.
    pub(super) fn take(self: &Arc<Self>) -> Option<ResidentLease> {
        if self.settled.load(Ordering::Acquire) {
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

    /// Whether the resident connection is still outside r2d2.
    pub(super) fn outside(&self) -> bool {
        !self.settled.load(Ordering::Acquire)
    }

    /// What r2d2's connector may do now: see [`Claim`].
    pub(super) fn claim(self: &Arc<Self>) -> Claim {
        let mut slot = self.slot.lock();
        if slot.closed {
            return Claim::Full;
        }
        if self.settled.load(Ordering::Acquire) {
            // r2d2 counts every connection now.
            return Claim::Open(Permit(None));
        }
        if let Some(conn) = slot.parked.take() {
            self.settled.store(true, Ordering::Release);
            return Claim::Absorb(conn);
        }
        if slot.open >= self.max {
            return Claim::Full;
        }
        slot.open += 1;
        Claim::Open(Permit(Some(Arc::clone(self))))
    }

    /// The pool is gone: closes the parked connection now (outside the
    /// lock) and refuses r2d2 from now on.
    pub(super) fn close(&self) {
        let parked = {
            let mut slot = self.slot.lock();
            slot.closed = true;
            slot.parked.take()
        };
        self.settled.store(true, Ordering::Release);
        drop(parked);
    }

    /// Takes the connection back; one that cannot be made fit to lend
    /// again (see `check_in.rs`) is closed, and the pool goes on with
    /// r2d2's connections alone.
    fn park(&self, conn: TrackedConnection) {
        if !check_in::fit_to_return(&conn) {
            // Closed: from now on r2d2 counts every connection itself, as
            // once the resident one is absorbed.
            drop(conn);
            self.settled.store(true, Ordering::Release);
            return;
        }
        let mut slot = self.slot.lock();
        if slot.closed {
            // Cannot happen while the pool lives (a lease holds it); close
            // the connection rather than keep it.
            drop(slot);
            drop(conn);
        } else {
            slot.parked = Some(conn);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::TenantName;

    /// A connection to a fresh WAL database in `dir`.
    fn connection(dir: &std::path::Path) -> TrackedConnection {
        let path = dir.join("t.sqlite3");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        drop(conn);
        let tenant = TenantName::new("t").unwrap();
        let patience = crate::fs::Patience::new(std::time::Duration::from_secs(30));
        crate::storage::open_existing(&tenant, dir, &path, &patience).unwrap()
    }

    fn claims(resident: &Arc<Resident>) -> &'static str {
        match resident.claim() {
            Claim::Absorb(_) => "absorb",
            Claim::Open(permit) => {
                permit.keep();
                "open"
            }
            Claim::Full => "full",
        }
    }

    #[test]
    fn opens_are_counted_until_the_resident_connection_is_absorbed() {
        let dir = tempfile::tempdir().unwrap();
        let resident = Resident::new(2);
        let lease = ResidentLease::first(connection(dir.path()), &resident);
        // Lent: one more may be opened, then the pool is full.
        assert_eq!(claims(&resident), "open");
        assert_eq!(claims(&resident), "full");
        assert!(resident.take().is_none());
        // Parked: a checkout takes it, and it parks again when dropped.
        drop(lease);
        let lease = resident.take().unwrap();
        assert_eq!(claims(&resident), "full");
        drop(lease);
        // r2d2 takes it in; from then on r2d2 counts alone.
        assert_eq!(claims(&resident), "absorb");
        assert!(!resident.outside());
        assert!(resident.take().is_none());
        assert_eq!(claims(&resident), "open");
    }

    #[test]
    fn a_failed_open_gives_its_place_back() {
        let dir = tempfile::tempdir().unwrap();
        let resident = Resident::new(2);
        let _lease = ResidentLease::first(connection(dir.path()), &resident);
        match resident.claim() {
            Claim::Open(permit) => drop(permit),
            _ => panic!("the pool has room for one more"),
        }
        assert_eq!(claims(&resident), "open");
    }

    #[test]
    fn a_closed_pool_keeps_nothing_and_opens_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let resident = Resident::new(2);
        drop(ResidentLease::first(connection(dir.path()), &resident));
        resident.close();
        assert!(resident.take().is_none());
        assert!(resident.slot.lock().parked.is_none());
        assert_eq!(claims(&resident), "full");
    }
}
