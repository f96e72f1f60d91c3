//! The LRU of per-tenant r2d2 pools.
//!
//! One short `parking_lot::Mutex` guards the LRU and the counters. Files
//! are never opened under it, and evicted pools are dropped after it is
//! released. A pool evicted while connections are checked out stays alive
//! (its connections hold it) and is remembered as *draining* so that
//! `destroy_tenant` can wait for those connections too.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use lru::LruCache;
use parking_lot::Mutex;
use r2d2_sqlite::SqliteConnectionManager;

use crate::connection::TenantConnection;
use crate::error::{Error, Result};
use crate::name::TenantName;

/// A snapshot of the pool cache's counters, from
/// [`TenantManager::stats`](crate::TenantManager::stats).
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let manager = tenanted::TenantManager::builder(
/// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
/// # manager.create_tenant("acme")?;
/// drop(manager.connection("acme")?);
/// drop(manager.connection("acme")?);
/// let stats = manager.stats();
/// assert_eq!((stats.open_pools, stats.hits, stats.misses, stats.checked_out), (1, 1, 1, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Pools in the cache (never more than `max_pools`).
    pub open_pools: usize,
    /// Evicted or pruned pools kept alive only by checked-out connections.
    pub draining_pools: usize,
    /// Connections checked out now, across all pools.
    pub checked_out: usize,
    /// `connection` calls served by a cached pool.
    pub hits: u64,
    /// `connection` calls that had to build a pool.
    pub misses: u64,
    /// Pools evicted to make room (least recently used first).
    pub evictions: u64,
    /// Pools dropped by `prune_idle` or the idle reaper.
    pub pruned: u64,
}

/// One tenant's r2d2 pool and what the cache knows about it.
pub(crate) struct TenantPool {
    pub(crate) name: TenantName,
    pub(crate) path: PathBuf,
    pool: r2d2::Pool<SqliteConnectionManager>,
    checked_out: AtomicUsize,
    closing: AtomicBool,
    /// Milliseconds since the cache's epoch at the last checkout.
    last_used: AtomicU64,
}

impl TenantPool {
    pub(crate) fn new(
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

    /// Checks a connection out. Counting *before* looking at `closing`
    /// (both SeqCst) means a concurrent destroy either sees this checkout
    /// and waits for it, or this checkout sees the destroy and backs off.
    pub(crate) fn checkout(self: Arc<Self>, now: u64) -> Result<TenantConnection> {
        self.checked_out.fetch_add(1, Ordering::SeqCst);
        let guard = CheckoutGuard(self);
        let pool = &guard.0;
        if pool.closing.load(Ordering::SeqCst) {
            return Err(Error::TenantBeingDestroyed {
                tenant: pool.name.clone(),
                path: pool.path.clone(),
            });
        }
        let conn = pool.pool.get().map_err(|source| Error::Pool {
            tenant: pool.name.clone(),
            path: pool.path.clone(),
            source,
        })?;
        pool.last_used.store(now, Ordering::Relaxed);
        Ok(TenantConnection::new(conn, guard))
    }

    /// Takes in a connection got from this pool before it was cached (the
    /// one its schema was checked on), under the same rules as `checkout`.
    pub(crate) fn adopt(
        self: Arc<Self>,
        conn: r2d2::PooledConnection<SqliteConnectionManager>,
        now: u64,
    ) -> Result<TenantConnection> {
        self.checked_out.fetch_add(1, Ordering::SeqCst);
        let guard = CheckoutGuard(self);
        if guard.0.closing.load(Ordering::SeqCst) {
            return Err(Error::TenantBeingDestroyed {
                tenant: guard.0.name.clone(),
                path: guard.0.path.clone(),
            });
        }
        guard.0.last_used.store(now, Ordering::Relaxed);
        Ok(TenantConnection::new(conn, guard))
    }

    fn checked_out(&self) -> usize {
        self.checked_out.load(Ordering::SeqCst)
    }

    /// No checkout in flight and nobody else holds this pool.
    fn quiescent(self: &Arc<Self>) -> bool {
        self.checked_out() == 0 && Arc::strong_count(self) == 1
    }
}

/// Keeps a pool's checkout count right: dropped after the connection has
/// gone back to r2d2 (struct fields drop in declaration order).
pub(crate) struct CheckoutGuard(pub(crate) Arc<TenantPool>);

impl Drop for CheckoutGuard {
    fn drop(&mut self) {
        self.0.checked_out.fetch_sub(1, Ordering::SeqCst);
    }
}

struct CacheState {
    lru: LruCache<TenantName, Arc<TenantPool>>,
    destroying: HashSet<TenantName>,
    draining: Vec<Weak<TenantPool>>,
    hits: u64,
    misses: u64,
    evictions: u64,
    pruned: u64,
}

impl CacheState {
    /// Remembers pools leaving the cache that may still be in use.
    fn retire(&mut self, pools: &[Arc<TenantPool>]) {
        self.draining.retain(|w| w.strong_count() > 0);
        self.draining.extend(pools.iter().map(Arc::downgrade));
    }
}

/// The pools' LRU, its counters and the tenants being destroyed.
pub(crate) struct PoolCache {
    state: Mutex<CacheState>,
    epoch: Instant,
}

/// Pools leaving the cache, to be dropped once the lock is released.
pub(crate) type Retired = Vec<Arc<TenantPool>>;

impl PoolCache {
    pub(crate) fn new(max_pools: NonZeroUsize) -> Self {
        PoolCache {
            state: Mutex::new(CacheState {
                lru: LruCache::new(max_pools),
                destroying: HashSet::new(),
                draining: Vec::new(),
                hits: 0,
                misses: 0,
                evictions: 0,
                pruned: 0,
            }),
            epoch: Instant::now(),
        }
    }

    /// Milliseconds since the cache was made: the clock of `last_used`.
    pub(crate) fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The warm path: one lock, one hash lookup, one reference count.
    pub(crate) fn lookup(&self, name: &str) -> Option<Arc<TenantPool>> {
        let mut state = self.state.lock();
        match state.lru.get(name) {
            Some(pool) => {
                let pool = Arc::clone(pool);
                state.hits += 1;
                Some(pool)
            }
            None => {
                state.misses += 1;
                None
            }
        }
    }

    pub(crate) fn is_destroying(&self, name: &str) -> bool {
        self.state.lock().destroying.contains(name)
    }

    /// Caches a freshly built pool. If another thread cached one for the
    /// same tenant first, that one wins and is returned; `Err` if the
    /// tenant is being destroyed. The caller drops `Retired` unlocked.
    pub(crate) fn insert(
        &self,
        pool: Arc<TenantPool>,
    ) -> (std::result::Result<Arc<TenantPool>, ()>, Retired) {
        let mut retired = Vec::new();
        let mut state = self.state.lock();
        if state.destroying.contains(pool.name.as_str()) {
            retired.push(pool);
            return (Err(()), retired);
        }
        if let Some(existing) = state.lru.get(pool.name.as_str()) {
            let existing = Arc::clone(existing);
            retired.push(pool);
            return (Ok(existing), retired);
        }
        if let Some((_, evicted)) = state.lru.push(pool.name.clone(), Arc::clone(&pool)) {
            state.evictions += 1;
            tracing::debug!(tenant = %evicted.name, "evicted least recently used pool");
            retired.push(evicted);
            state.retire(&retired);
        }
        (Ok(pool), retired)
    }

    /// Takes `name`'s pool out of the cache (it drains if in use).
    pub(crate) fn evict(&self, name: &str) -> Option<Arc<TenantPool>> {
        let mut state = self.state.lock();
        let pool = state.lru.pop(name)?;
        state.retire(std::slice::from_ref(&pool));
        Some(pool)
    }

    /// Drops pools with no checkout for `idle_for` and none checked out.
    pub(crate) fn prune_idle(&self, idle_for: Duration) -> Retired {
        let cutoff = self.now().saturating_sub(idle_for.as_millis() as u64);
        let mut state = self.state.lock();
        let idle: Vec<TenantName> = state
            .lru
            .iter()
            .filter(|(_, p)| p.last_used.load(Ordering::Relaxed) <= cutoff && p.checked_out() == 0)
            .map(|(name, _)| name.clone())
            .collect();
        let retired: Retired = idle
            .iter()
            .filter_map(|name| state.lru.pop(name.as_str()))
            .collect();
        state.pruned += retired.len() as u64;
        state.retire(&retired);
        for pool in &retired {
            tracing::debug!(tenant = %pool.name, "pruned idle pool");
        }
        retired
    }

    /// Stops new checkouts of `name` and returns every live pool of it
    /// (cached or draining), marked closing.
    pub(crate) fn begin_destroy(&self, name: &TenantName) -> std::result::Result<Retired, ()> {
        let mut state = self.state.lock();
        if !state.destroying.insert(name.clone()) {
            return Err(());
        }
        let mut pools: Retired = state.lru.pop(name.as_str()).into_iter().collect();
        pools.extend(
            state
                .draining
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|p| p.name == *name),
        );
        for pool in &pools {
            pool.closing.store(true, Ordering::SeqCst);
        }
        Ok(pools)
    }

    /// Waits until none of `pools` has a checkout and nobody else holds
    /// them; returns the checkouts still out on timeout.
    pub(crate) fn wait_quiescent(pools: &[Arc<TenantPool>], timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if pools.iter().all(TenantPool::quiescent) {
                return None;
            }
            if Instant::now() >= deadline {
                return Some(pools.iter().map(|p| p.checked_out()).sum());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Ends a destroy. When it failed (`pools` given back), the tenant is
    /// reopened for checkouts and its cached pool restored.
    pub(crate) fn end_destroy(&self, name: &TenantName, restore: Option<Retired>) {
        let mut state = self.state.lock();
        state.destroying.remove(name.as_str());
        let mut homeless = Vec::new();
        for pool in restore.into_iter().flatten() {
            pool.closing.store(false, Ordering::SeqCst);
            if !state.lru.contains(name.as_str()) && state.lru.len() < state.lru.cap().get() {
                state.lru.put(name.clone(), pool);
            } else {
                homeless.push(pool);
            }
        }
        // Pools not cached again may still have connections out.
        state.retire(&homeless);
        drop(state);
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let state = self.state.lock();
        let cached = |p: &Arc<TenantPool>| {
            state
                .lru
                .peek(p.name.as_str())
                .is_some_and(|c| Arc::ptr_eq(c, p))
        };
        let draining: Vec<Arc<TenantPool>> = state
            .draining
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|p| !cached(p))
            .collect();
        let checked_out = state
            .lru
            .iter()
            .map(|(_, p)| p.checked_out())
            .chain(draining.iter().map(|p| p.checked_out()))
            .sum();
        let draining_pools = draining.len();
        let stats = PoolStats {
            open_pools: state.lru.len(),
            draining_pools,
            checked_out,
            hits: state.hits,
            misses: state.misses,
            evictions: state.evictions,
            pruned: state.pruned,
        };
        drop(state);
        drop(draining);
        stats
    }
}
