//! The LRU of per-tenant r2d2 pools.
//!
//! A short `parking_lot::Mutex` guards each shard's LRU and counters. A
//! cache of at least 32 pools is split into 8 shards by the FNV-1a hash of
//! the tenant's name, each an LRU of an eighth of `max_pools`, so that the
//! warm path of threads working on different tenants rarely shares a lock;
//! the price is that eviction takes the least recently used pool *of the
//! new pool's shard*, not of the whole cache (the total never exceeds
//! `max_pools`). Smaller caches are one exact LRU. Files are never opened
//! under a lock, and evicted pools are dropped after it is released. A pool evicted while connections are checked out stays alive
//! (its connections hold it) and is remembered as *draining* so that
//! `destroy_tenant` can wait for those connections too.

use std::num::NonZeroUsize;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::flight::{Flight, FlightGuard};
use super::pool_state::Admission;
pub(super) use super::shard::Retired;
use super::shard::Shard;
use super::stats::PoolStats;
use super::tenant_pool::TenantPool;
use crate::name::TenantName;
use crate::paths::Fnv1a;

/// How many shards a large cache is split into, so that threads working on
/// different tenants rarely take the same lock.
const SHARDS: usize = 8;
/// The fewest pools a shard may hold: below `SHARDS * MIN_SHARD` pools the
/// cache is one exact LRU.
const MIN_SHARD: usize = 4;

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

/// The pools' LRU, its counters and the tenants being destroyed, in
/// shards by tenant.
pub(crate) struct PoolCache {
    shards: Box<[Mutex<Shard>]>,
    epoch: Instant,
}

impl PoolCache {
    /// An empty cache of at most `max_pools` pools (at least 1), in
    /// [`SHARDS`] shards when each gets at least [`MIN_SHARD`] pools.
    pub(crate) fn new(max_pools: usize) -> Self {
        let max_pools = max_pools.max(1);
        let n = if max_pools >= SHARDS * MIN_SHARD {
            SHARDS
        } else {
            1
        };
        // The shards' capacities add up to exactly max_pools.
        let shards = (0..n)
            .map(|i| {
                let cap = max_pools / n + usize::from(i < max_pools % n);
                Mutex::new(Shard::new(
                    NonZeroUsize::new(cap).unwrap_or(NonZeroUsize::MIN),
                ))
            })
            .collect();
        PoolCache {
            shards,
            epoch: Instant::now(),
        }
    }

    /// The shard of tenant `name`: FNV-1a of its name (no hashing with one
    /// shard).
    fn shard(&self, name: &str) -> &Mutex<Shard> {
        if self.shards.len() == 1 {
            return &self.shards[0];
        }
        let mut hash = Fnv1a::new();
        hash.write(name.as_bytes());
        &self.shards[(hash.finish() % self.shards.len() as u64) as usize]
    }

    /// Milliseconds since the cache was made: the clock of `last_used`.
    pub(super) fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The warm path: one lock, one hash lookup, one reference count.
    pub(super) fn lookup(&self, name: &str) -> Option<Arc<TenantPool>> {
        let mut state = self.shard(name).lock();
        let pool = Arc::clone(state.lru.get(name)?);
        state.hits += 1;
        Some(pool)
    }

    /// Starts a cold open of `tenant`: see [`Opening`].
    pub(super) fn begin_open(&self, tenant: &TenantName) -> Opening<'_> {
        let mut state = self.shard(tenant.as_str()).lock();
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
        let mut state = self.shard(tenant.as_str()).lock();
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
        self.evict_if(name, |p| p.state().admission() == Admission::Stale);
    }

    /// Marks `pool` stale and takes it out of the cache (if it is still the
    /// cached one): its file is no longer the tenant's current one.
    pub(super) fn retire_stale(&self, pool: &Arc<TenantPool>) {
        pool.state().mark_stale();
        self.evict_if(pool.name().as_str(), |cached| Arc::ptr_eq(cached, pool));
    }

    /// Takes `name`'s cached pool out if `which` says so; it joins the
    /// draining pools and is dropped (closing, unless connections are out)
    /// after the lock is released.
    fn evict_if(&self, name: &str, which: impl Fn(&Arc<TenantPool>) -> bool) {
        let mut state = self.shard(name).lock();
        let pool = match state.lru.peek(name) {
            Some(cached) if which(cached) => state.lru.pop(name),
            _ => None,
        };
        if let Some(pool) = &pool {
            state.retire(std::slice::from_ref(pool));
        }
        drop(state);
        drop(pool);
    }

    /// Every cached pool, for the watcher to look at unlocked. Weak: a
    /// pool evicted while the watcher works through the list closes at
    /// once, instead of keeping its connections (and descriptors) open
    /// until the watcher is done, past the cache's bound.
    pub(super) fn snapshot(&self) -> Vec<Weak<TenantPool>> {
        let mut pools = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock();
            pools.extend(shard.lru.iter().map(|(_, p)| Arc::downgrade(p)));
        }
        pools
    }

    /// Caches a freshly built pool, unless another thread cached one for
    /// the same tenant first or the tenant is being destroyed; says which.
    /// The caller drops `Retired` unlocked.
    pub(super) fn insert(&self, pool: Arc<TenantPool>) -> (Inserted, Retired) {
        let mut retired = Vec::new();
        let mut state = self.shard(pool.name().as_str()).lock();
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
        self.evict_if(name, |_| true);
    }

    /// Drops pools with no checkout for `idle_for` and none checked out;
    /// returns how many.
    pub(crate) fn prune_idle(&self, idle_for: Duration) -> usize {
        let cutoff = self.now().saturating_sub(idle_for.as_millis() as u64);
        let mut pruned = 0;
        for shard in &self.shards {
            // Each shard's pools close here, after its lock is released.
            let retired = shard.lock().prune(cutoff);
            for pool in &retired {
                tracing::debug!(tenant = %pool.name(), "pruned idle pool");
            }
            pruned += retired.len();
        }
        pruned
    }

    /// Starts destroying `name`: new checkouts of it fail from now on, and
    /// every live pool of it (cached or draining) is returned, closing.
    /// `None` if another destroy of it is in progress.
    pub(super) fn begin_destroy(
        &self,
        name: &TenantName,
    ) -> Option<(Retired, Option<Arc<Flight>>)> {
        let mut state = self.shard(name.as_str()).lock();
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
        let mut state = self.shard(name.as_str()).lock();
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
        let mut total = PoolStats::default();
        for shard in &self.shards {
            let (stats, draining) = shard.lock().stats();
            // The draining pools close here, outside the lock.
            drop(draining);
            total.open_pools += stats.open_pools;
            total.draining_pools += stats.draining_pools;
            total.checked_out += stats.checked_out;
            total.hits += stats.hits;
            total.misses += stats.misses;
            total.evictions += stats.evictions;
            total.pruned += stats.pruned;
        }
        total
    }
}
