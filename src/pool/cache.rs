//! The LRU of per-tenant r2d2 pools.
//!
//! One short `parking_lot::Mutex` guards the LRU and the counters. Files
//! are never opened under it, and evicted pools are dropped after it is
//! released. A pool evicted while connections are checked out stays alive
//! (its connections hold it) and is remembered as *draining* so that
//! `destroy_tenant` can wait for those connections too.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use lru::LruCache;
use parking_lot::Mutex;

use super::flight::{Flight, FlightGuard};
use super::pool_state::Admission;
use super::stats::PoolStats;
use super::tenant_pool::TenantPool;
use crate::name::TenantName;

/// Pools leaving the cache, to be dropped once the lock is released.
pub(super) type Retired = Vec<Arc<TenantPool>>;

/// Who won [`PoolCache::insert`].
pub(super) enum Inserted {
    /// The pool given is cached now.
    Ours,
    /// Another thread cached a pool of this tenant first: use that one.
    Theirs(Arc<TenantPool>),
    /// The tenant is being destroyed: nothing was cached.
    Destroying,
}

/// What a cold open of a tenant finds in the cache.
pub(super) enum Opening<'a> {
    /// A pool is cached (another thread opened it meanwhile).
    Cached(Arc<TenantPool>),
    /// Nobody is opening it: this thread opens it, the others wait.
    Lead(FlightGuard<'a>),
    /// Another thread is opening it: wait for it, then look again.
    Follow(Arc<Flight>),
    /// A destroy of it is in progress in this process.
    Destroying,
}

struct CacheState {
    lru: LruCache<TenantName, Arc<TenantPool>>,
    destroying: HashSet<TenantName>,
    /// Cold opens in progress, one per tenant (single flight).
    flights: HashMap<TenantName, Arc<Flight>>,
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

    /// Every live pool of `name`: cached or draining.
    fn live_pools<'a>(
        &'a self,
        name: &'a TenantName,
    ) -> impl Iterator<Item = Arc<TenantPool>> + 'a {
        let cached = self.lru.peek(name.as_str()).cloned();
        let draining = self
            .draining
            .iter()
            .filter_map(Weak::upgrade)
            .filter(move |p| p.name() == name);
        // A pool given back by a destroy that gave up can be both cached
        // and remembered as draining: count it once.
        let seen = cached.clone();
        cached
            .into_iter()
            .chain(draining.filter(move |p| !seen.as_ref().is_some_and(|c| Arc::ptr_eq(c, p))))
    }
}

/// The pools' LRU, its counters and the tenants being destroyed.
pub(crate) struct PoolCache {
    state: Mutex<CacheState>,
    epoch: Instant,
}

impl PoolCache {
    /// An empty cache of at most `max_pools` pools (at least 1).
    pub(crate) fn new(max_pools: usize) -> Self {
        let max_pools = NonZeroUsize::new(max_pools).unwrap_or(NonZeroUsize::MIN);
        PoolCache {
            state: Mutex::new(CacheState {
                lru: LruCache::new(max_pools),
                destroying: HashSet::new(),
                flights: HashMap::new(),
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
    pub(super) fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The warm path: one lock, one hash lookup, one reference count.
    pub(super) fn lookup(&self, name: &str) -> Option<Arc<TenantPool>> {
        let mut state = self.state.lock();
        let pool = Arc::clone(state.lru.get(name)?);
        state.hits += 1;
        Some(pool)
    }

    /// Starts a cold open of `tenant`: see [`Opening`].
    pub(super) fn begin_open(&self, tenant: &TenantName) -> Opening<'_> {
        let mut state = self.state.lock();
        if state.destroying.contains(tenant.as_str()) {
            return Opening::Destroying;
        }
        if let Some(pool) = state.lru.get(tenant.as_str()) {
            let pool = Arc::clone(pool);
            state.hits += 1;
            return Opening::Cached(pool);
        }
        if let Some(flight) = state.flights.get(tenant.as_str()) {
            return Opening::Follow(Arc::clone(flight));
        }
        let flight = Arc::new(Flight::default());
        state.flights.insert(tenant.clone(), Arc::clone(&flight));
        Opening::Lead(FlightGuard::new(self, tenant.clone(), flight))
    }

    /// Ends a cold open (from `FlightGuard::drop`).
    pub(super) fn end_open(&self, tenant: &TenantName, flight: &Arc<Flight>) {
        let mut state = self.state.lock();
        if state
            .flights
            .get(tenant.as_str())
            .is_some_and(|f| Arc::ptr_eq(f, flight))
        {
            state.flights.remove(tenant.as_str());
        }
    }

    /// Takes `name`'s pool out of the cache if it is stale (a checkout
    /// found it so); returns at once otherwise.
    pub(super) fn evict_stale(&self, name: &str) {
        let mut state = self.state.lock();
        let stale = state
            .lru
            .peek(name)
            .is_some_and(|p| p.state().admission() == Admission::Stale);
        let pool = if stale { state.lru.pop(name) } else { None };
        if let Some(pool) = &pool {
            state.retire(std::slice::from_ref(pool));
        }
        drop(state);
        drop(pool);
    }

    /// Marks `pool` stale and takes it out of the cache (if it is still the
    /// cached one): its file is no longer the tenant's current one.
    pub(super) fn retire_stale(&self, pool: &Arc<TenantPool>) {
        pool.state().mark_stale();
        let mut state = self.state.lock();
        let cached = state
            .lru
            .peek(pool.name().as_str())
            .is_some_and(|c| Arc::ptr_eq(c, pool));
        let popped = if cached {
            state.lru.pop(pool.name().as_str())
        } else {
            None
        };
        if let Some(popped) = &popped {
            state.retire(std::slice::from_ref(popped));
        }
        drop(state);
        drop(popped);
    }

    /// Every cached pool, for the watcher to look at unlocked.
    pub(super) fn snapshot(&self) -> Vec<Arc<TenantPool>> {
        let state = self.state.lock();
        state.lru.iter().map(|(_, p)| Arc::clone(p)).collect()
    }

    /// Caches a freshly built pool, unless another thread cached one for
    /// the same tenant first or the tenant is being destroyed; says which.
    /// The caller drops `Retired` unlocked.
    pub(super) fn insert(&self, pool: Arc<TenantPool>) -> (Inserted, Retired) {
        let mut retired = Vec::new();
        let mut state = self.state.lock();
        if state.destroying.contains(pool.name().as_str()) {
            retired.push(pool);
            return (Inserted::Destroying, retired);
        }
        if let Some(existing) = state.lru.get(pool.name().as_str()) {
            let existing = Arc::clone(existing);
            retired.push(pool);
            return (Inserted::Theirs(existing), retired);
        }
        state.misses += 1;
        if let Some((_, evicted)) = state.lru.push(pool.name().clone(), pool) {
            state.evictions += 1;
            tracing::debug!(tenant = %evicted.name(), "evicted least recently used pool");
            retired.push(evicted);
            state.retire(&retired);
        }
        (Inserted::Ours, retired)
    }

    /// Takes `name`'s pool out of the cache (it drains if in use).
    pub(crate) fn evict(&self, name: &str) {
        let mut state = self.state.lock();
        let pool = state.lru.pop(name);
        if let Some(pool) = &pool {
            state.retire(std::slice::from_ref(pool));
        }
        drop(state);
        // Closes here, outside the lock, unless connections are out.
        drop(pool);
    }

    /// Drops pools with no checkout for `idle_for` and none checked out;
    /// returns how many.
    pub(crate) fn prune_idle(&self, idle_for: Duration) -> usize {
        let cutoff = self.now().saturating_sub(idle_for.as_millis() as u64);
        let mut state = self.state.lock();
        let idle: Vec<TenantName> = state
            .lru
            .iter()
            .filter(|(_, p)| p.idle_since(cutoff))
            .map(|(name, _)| name.clone())
            .collect();
        let retired: Retired = idle
            .iter()
            .filter_map(|name| state.lru.pop(name.as_str()))
            .collect();
        state.pruned += retired.len() as u64;
        state.retire(&retired);
        drop(state);
        for pool in &retired {
            tracing::debug!(tenant = %pool.name(), "pruned idle pool");
        }
        retired.len()
    }

    /// Starts destroying `name`: new checkouts of it fail from now on, and
    /// every live pool of it (cached or draining) is returned, closing.
    /// `None` if another destroy of it is in progress.
    pub(super) fn begin_destroy(
        &self,
        name: &TenantName,
    ) -> Option<(Retired, Option<Arc<Flight>>)> {
        let mut state = self.state.lock();
        if !state.destroying.insert(name.clone()) {
            return None;
        }
        let pools: Retired = state.live_pools(name).collect();
        state.lru.pop(name.as_str());
        for pool in &pools {
            pool.state().begin_destroy();
        }
        let flight = state.flights.get(name.as_str()).cloned();
        Some((pools, flight))
    }

    /// Ends a destroy. When it failed (`pools` given back), the tenant is
    /// reopened for checkouts and its cached pool restored.
    pub(super) fn end_destroy(&self, name: &TenantName, restore: Option<Retired>) {
        let mut state = self.state.lock();
        state.destroying.remove(name.as_str());
        let mut homeless = Vec::new();
        for pool in restore.into_iter().flatten() {
            pool.state().end_destroy();
            let open = pool.state().admission() == Admission::Open;
            if open && !state.lru.contains(name.as_str()) && state.lru.len() < state.lru.cap().get()
            {
                state.lru.put(name.clone(), pool);
            } else {
                homeless.push(pool);
            }
        }
        // Pools not cached again may still have connections out.
        state.retire(&homeless);
        // Unlock before `homeless` drops (it was declared after `state`).
        drop(state);
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let state = self.state.lock();
        let cached = |p: &Arc<TenantPool>| {
            state
                .lru
                .peek(p.name().as_str())
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
        let stats = PoolStats {
            open_pools: state.lru.len(),
            draining_pools: draining.len(),
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
