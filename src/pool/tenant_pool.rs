//! One tenant's r2d2 pool, and the invariant that lets a destroy drain it.
//!
//! Every checkout is counted in `checked_out` *before* it looks at the
//! pool's state, and uncounted only after its connection has gone back to
//! r2d2. A destroy marks the pool `DESTROYING` first and then waits for the
//! count to reach zero. Both sides use `SeqCst`, so one of them always sees
//! the other: either the destroy sees the checkout and waits for it, or the
//! checkout sees the destroy and backs off.
//!
//! A pool is `STALE` once its file is known not to be the tenant's current
//! one (another process destroyed, replaced or re-versioned it; see
//! `watcher.rs` and `pinned_manager.rs`): checkouts refuse it and the
//! caller opens the tenant afresh. The state is one atomic the warm path
//! already reads, so noticing costs it nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::connect_errors::LastConnectError;
use super::lease::Lease;
use super::pinned_manager::PinnedManager;
use super::pool_state::{Admission, PoolState};
use super::resident::Resident;
use super::{caller_gone, setting_up};
use crate::error::{Error, NoConnection, Result};
use crate::limits::{self, Policy};
use crate::name::TenantName;

/// How long one wait on an exhausted pool lasts before the pool's state is
/// looked at again (a connection being made may find the pool stale).
const WAIT_SLICE: Duration = Duration::from_millis(100);
/// The same while the pool's resident connection is outside r2d2: coming
/// back, it wakes nobody waiting in r2d2, so waiters look for it this often.
const RESIDENT_SLICE: Duration = Duration::from_millis(2);

/// Why a checkout got no connection.
#[derive(Debug)]
pub(super) enum Refused {
    /// The pool's file is not the tenant's current one: open it afresh.
    Stale,
    /// Anything else, said to the caller.
    Failed(Error),
}

impl From<Error> for Refused {
    fn from(e: Error) -> Self {
        Refused::Failed(e)
    }
}

/// What a pool shares with its connection manager and r2d2's error
/// handler.
pub(super) struct Shared {
    pub(super) state: Arc<PoolState>,
    pub(super) resident: Arc<Resident>,
    pub(super) last_error: Arc<LastConnectError>,
}

/// One tenant's r2d2 pool and what the cache knows about it.
pub(super) struct TenantPool {
    name: TenantName,
    path: PathBuf,
    pool: r2d2::Pool<PinnedManager>,
    state: Arc<PoolState>,
    resident: Arc<Resident>,
    last_error: Arc<LastConnectError>,
    /// The size limit and suspension its connections were opened with.
    policy: Policy,
    connection_timeout: Duration,
    checked_out: AtomicUsize,
    /// Nanoseconds since the cache's epoch at the last checkout (see
    /// `cache.rs`).
    last_used: AtomicU64,
}

impl TenantPool {
    pub(super) fn new(
        name: TenantName,
        path: PathBuf,
        pool: r2d2::Pool<PinnedManager>,
        shared: Shared,
        policy: Policy,
        now: u64,
    ) -> Self {
        TenantPool {
            name,
            path,
            connection_timeout: pool.connection_timeout(),
            pool,
            state: shared.state,
            resident: shared.resident,
            last_error: shared.last_error,
            policy,
            checked_out: AtomicUsize::new(0),
            last_used: AtomicU64::new(now),
        }
    }

    pub(super) fn name(&self) -> &TenantName {
        &self.name
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn state(&self) -> &PoolState {
        &self.state
    }

    pub(super) fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Checks a connection out. Counting *before* looking at the state
    /// (both SeqCst) means a concurrent destroy either sees this checkout
    /// and waits for it, or this checkout sees the destroy and backs off.
    pub(super) fn checkout(self: Arc<Self>, now: u64) -> Result<Checkout, Refused> {
        let guard = self.enter()?;
        let conn = guard.0.get()?;
        guard.0.last_used.store(now, Ordering::Relaxed);
        guard.0.hold_to_limit(&conn);
        Ok(Checkout { conn, guard })
    }

    /// Sets the size limit again on a connection of a pool opened with its
    /// tenant over it (rare; nothing for any other pool): SQLite kept such
    /// a connection's limit at the size the tenant had then, and the
    /// tenant may have shrunk since (see `limits::apply`).
    fn hold_to_limit(&self, conn: &Lease) {
        if let Some(sql) = self.state.clamped()
            && let Err(e) = limits::set_max_pages_by(conn.connection(), sql)
        {
            // The connection keeps the tenant at the size it had when it
            // was opened until this works.
            tracing::warn!(tenant = %self.name, error = %e, "could not set the size limit again on a connection opened while the tenant was over it");
        }
    }

    /// Takes in a connection got from this pool before it was cached (the
    /// one its schema was checked on), under the same rules as `checkout`.
    pub(super) fn adopt(self: Arc<Self>, conn: Lease, now: u64) -> Result<Checkout, Refused> {
        let guard = self.enter()?;
        guard.0.last_used.store(now, Ordering::Relaxed);
        guard.0.hold_to_limit(&conn);
        Ok(Checkout { conn, guard })
    }

    /// Counts a checkout, then backs off if the pool refuses checkouts
    /// (the guard uncounts it).
    fn enter(self: Arc<Self>) -> Result<CheckoutGuard, Refused> {
        self.checked_out.fetch_add(1, Ordering::SeqCst);
        let guard = CheckoutGuard(self);
        guard.0.admit()?;
        Ok(guard)
    }

    fn admit(&self) -> Result<(), Refused> {
        match self.state.admission() {
            Admission::Open => Ok(()),
            Admission::Stale => Err(Refused::Stale),
            Admission::Destroying => Err(Refused::Failed(Error::TenantBeingDestroyed {
                tenant: self.name.clone(),
                path: self.path.clone(),
            })),
        }
    }

    /// A connection: the resident one if it is parked (see `resident.rs`),
    /// else one from r2d2. With one idle this is r2d2's own checkout;
    /// otherwise the wait is sliced so that a pool found stale while a
    /// connection was being made stops waiting at once. The state is read
    /// again after getting the connection: one made on a moved file marks
    /// the pool stale before r2d2 hands it out.
    fn get(&self) -> Result<Lease, Refused> {
        // Read once a wait may follow: the common case, the resident
        // connection parked, reads no clock.
        let mut waiting_since = None;
        loop {
            if let Some(resident) = self.resident.take() {
                self.admit()?;
                return Ok(Lease::Resident(resident));
            }
            let started = *waiting_since.get_or_insert_with(Instant::now);
            let wait = if self.resident.outside() {
                RESIDENT_SLICE
            } else {
                WAIT_SLICE
            };
            let slice = wait.min(self.connection_timeout.saturating_sub(started.elapsed()));
            match self.pool.get_timeout(slice) {
                Ok(conn) => {
                    self.admit()?;
                    return Ok(Lease::Pooled(conn));
                }
                Err(_timed_out) => {
                    self.admit()?;
                    if setting_up::making_for(&self.state) {
                        return Err(Refused::Failed(Error::AskedFromItsOwnHook {
                            tenant: self.name.clone(),
                            path: self.path.clone(),
                        }));
                    }
                    if caller_gone::caller_gone() {
                        return Err(Refused::Failed(Error::InteractAborted {
                            tenant: self.name.clone(),
                            reason: "the future was dropped while it waited for a connection",
                        }));
                    }
                    if started.elapsed() >= self.connection_timeout {
                        return Err(Refused::Failed(Error::Pool {
                            tenant: self.name.clone(),
                            path: self.path.clone(),
                            cause: self.why_none(started),
                        }));
                    }
                }
            }
        }
    }

    /// Why a wait that began at `started` got no connection: the last
    /// open that failed meanwhile, or else a pool whose connections are
    /// all in use.
    fn why_none(&self, started: Instant) -> NoConnection {
        match self.last_error.since(started) {
            Some(e) => NoConnection::OpenFailed(e),
            None => NoConnection::AllInUse {
                max_connections: self.pool.max_size(),
            },
        }
    }

    /// An idle connection, if one is there now (for the watcher).
    pub(super) fn try_idle(&self) -> Option<Lease> {
        match self.resident.take() {
            Some(resident) => Some(Lease::Resident(resident)),
            None => self.pool.try_get().map(Lease::Pooled),
        }
    }

    /// When the pool was last checked out from, on the cache's clock.
    pub(super) fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
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

impl Drop for TenantPool {
    fn drop(&mut self) {
        // Before r2d2's pool: see `Resident::close`.
        self.resident.close();
    }
}

/// A connection checked out of a [`TenantPool`], counted.
pub(super) struct Checkout {
    // Field order matters: the connection returns to r2d2 before the guard
    // lowers the checkout count that destroy_tenant waits on.
    conn: Lease,
    guard: CheckoutGuard,
}

impl Checkout {
    pub(super) fn pool(&self) -> &TenantPool {
        &self.guard.0
    }

    pub(super) fn connection(&self) -> &Connection {
        self.conn.connection()
    }

    pub(super) fn connection_mut(&mut self) -> &mut Connection {
        self.conn.connection_mut()
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
