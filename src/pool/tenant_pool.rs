//! One tenant's r2d2 pool, and the invariant that lets a destroy drain it.
//!
//! Every checkout is counted in `checked_out` *before* it looks at
//! `closing`, and uncounted only after its connection has gone back to
//! r2d2. A destroy sets `closing` first and then waits for the count to
//! reach zero. Both sides use `SeqCst`, so one of them always sees the
//! other: either the destroy sees the checkout and waits for it, or the
//! checkout sees the destroy and backs off.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::name::TenantName;

/// One tenant's r2d2 pool and what the cache knows about it.
pub(super) struct TenantPool {
    name: TenantName,
    path: PathBuf,
    pool: r2d2::Pool<SqliteConnectionManager>,
    checked_out: AtomicUsize,
    closing: AtomicBool,
    /// Milliseconds since the cache's epoch at the last checkout.
    last_used: AtomicU64,
}

impl TenantPool {
    pub(super) fn new(
        name: TenantName,
        path: PathBuf,
        pool: r2d2::Pool<SqliteConnectionManager>,
        now: u64,
    ) -> Self {
        TenantPool {
            name,
            path,
            pool,
            checked_out: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            last_used: AtomicU64::new(now),
        }
    }

    pub(super) fn name(&self) -> &TenantName {
        &self.name
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Checks a connection out. Counting *before* looking at `closing`
    /// (both SeqCst) means a concurrent destroy either sees this checkout
    /// and waits for it, or this checkout sees the destroy and backs off.
    pub(super) fn checkout(self: Arc<Self>, now: u64) -> Result<Checkout> {
        let guard = self.enter()?;
        let pool = &guard.0;
        let conn = pool.pool.get().map_err(|source| Error::Pool {
            tenant: pool.name.clone(),
            path: pool.path.clone(),
            source,
        })?;
        pool.last_used.store(now, Ordering::Relaxed);
        Ok(Checkout { conn, guard })
    }

    /// Takes in a connection got from this pool before it was cached (the
    /// one its schema was checked on), under the same rules as `checkout`.
    pub(super) fn adopt(
        self: Arc<Self>,
        conn: PooledConnection<SqliteConnectionManager>,
        now: u64,
    ) -> Result<Checkout> {
        let guard = self.enter()?;
        guard.0.last_used.store(now, Ordering::Relaxed);
        Ok(Checkout { conn, guard })
    }

    /// Counts a checkout, then backs off if the pool is closing (the guard
    /// uncounts it).
    fn enter(self: Arc<Self>) -> Result<CheckoutGuard> {
        self.checked_out.fetch_add(1, Ordering::SeqCst);
        let guard = CheckoutGuard(self);
        let pool = &guard.0;
        if pool.closing.load(Ordering::SeqCst) {
            return Err(Error::TenantBeingDestroyed {
                tenant: pool.name.clone(),
                path: pool.path.clone(),
            });
        }
        Ok(guard)
    }

    /// Refuses new checkouts from now on; the destroy that calls this then
    /// waits for [`quiescent`](Self::quiescent).
    pub(super) fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    /// Lets checkouts in again, after a destroy that gave up.
    pub(super) fn reopen(&self) {
        self.closing.store(false, Ordering::SeqCst);
    }

    pub(super) fn checked_out(&self) -> usize {
        self.checked_out.load(Ordering::SeqCst)
    }

    /// No checkout since `cutoff` (on the cache's clock) and none out now.
    pub(super) fn idle_since(&self, cutoff: u64) -> bool {
        self.last_used.load(Ordering::Relaxed) <= cutoff && self.checked_out() == 0
    }

    /// No checkout in flight and nobody else holds this pool.
    pub(super) fn quiescent(self: &Arc<Self>) -> bool {
        self.checked_out() == 0 && Arc::strong_count(self) == 1
    }
}

/// A connection checked out of a [`TenantPool`], counted.
pub(super) struct Checkout {
    // Field order matters: the connection returns to r2d2 before the guard
    // lowers the checkout count that destroy_tenant waits on.
    conn: PooledConnection<SqliteConnectionManager>,
    guard: CheckoutGuard,
}

impl Checkout {
    pub(super) fn pool(&self) -> &TenantPool {
        &self.guard.0
    }

    pub(super) fn connection(&self) -> &Connection {
        &self.conn
    }

    pub(super) fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

/// Keeps a pool's checkout count right: dropped after the connection has
/// gone back to r2d2 (struct fields drop in declaration order).
struct CheckoutGuard(Arc<TenantPool>);

impl Drop for CheckoutGuard {
    fn drop(&mut self) {
        self.0.checked_out.fetch_sub(1, Ordering::SeqCst);
    }
}
