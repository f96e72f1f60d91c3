//! One shard of the pool cache: its tenants' cached pools in an LRU, the
//! tenants being destroyed, the cold opens in flight, the draining pools
//! and the counters, all behind one mutex (see `cache.rs`). Which pool to
//! evict is decided over the whole cache (`PoolCache::evict_oldest`), not
//! per shard.

use std::collections::HashSet;
use std::sync::{Arc, Weak};

use hashbrown::HashMap;
use lru::LruCache;

use super::flight::Flight;
use super::stats::PoolStats;
use super::tenant_pool::TenantPool;
use crate::name::TenantName;

/// Pools leaving the cache, to be dropped once the lock is released.
pub(super) type Retired = Vec<Arc<TenantPool>>;

pub(super) struct Shard {
    /// The cached pools of this shard's tenants, the most recently checked
    /// out first: a warm checkout moves its pool to the front under the
    /// lock it takes anyway. Unbounded: the cap is the cache's, over every
    /// shard.
    pub(super) pools: LruCache<TenantName, Arc<TenantPool>>,
    pub(super) destroying: HashSet<TenantName>,
    /// Cold opens in progress, one per tenant (single flight).
    pub(super) flights: HashMap<TenantName, Arc<Flight>>,
    pub(super) draining: Vec<Weak<TenantPool>>,
    pub(super) hits: u64,
    pub(super) misses: u64,
    pub(super) evictions: u64,
    pub(super) pruned: u64,
}

impl Shard {
    /// Remembers pools leaving the cache that may still be in use.
    pub(super) fn retire(&mut self, pools: &[Arc<TenantPool>]) {
        self.draining.retain(|w| w.strong_count() > 0);
        self.draining.extend(pools.iter().map(Arc::downgrade));
    }

    /// Whether `pool` is the cached pool of its tenant.
    pub(super) fn caches(&self, pool: &Arc<TenantPool>) -> bool {
        self.pools
            .peek(pool.name().as_str())
            .is_some_and(|c| Arc::ptr_eq(c, pool))
    }

    /// Every live pool of `name`: cached or draining.
    pub(super) fn live_pools<'a>(
        &'a self,
        name: &'a TenantName,
    ) -> impl Iterator<Item = Arc<TenantPool>> + 'a {
        let cached = self.pools.peek(name.as_str()).cloned();
        let draining = self
            .draining
            .iter()
            .filter_map(Weak::upgrade)
            .filter(move |p| p.name() == name);
        // Never both cached and draining (a destroy that gives up puts
        // none back); counted once if so.
        let seen = cached.clone();
        cached
            .into_iter()
            .chain(draining.filter(move |p| !seen.as_ref().is_some_and(|c| Arc::ptr_eq(c, p))))
    }
}

impl Shard {
    /// An empty shard.
    pub(super) fn new() -> Self {
        Shard {
            pools: LruCache::unbounded(),
            destroying: HashSet::new(),
            flights: HashMap::new(),
            draining: Vec::new(),
            hits: 0,
            misses: 0,
            evictions: 0,
            pruned: 0,
        }
    }

    /// The least recently used pool of this shard and its last use.
    pub(super) fn oldest(&self) -> Option<(&Arc<TenantPool>, u64)> {
        self.pools.peek_lru().map(|(_, p)| (p, p.last_used()))
    }

    /// Takes out the pools with no checkout since `cutoff` and none out.
    pub(super) fn prune(&mut self, cutoff: u64) -> Retired {
        let idle: Vec<TenantName> = self
            .pools
            .iter()
            .filter(|(_, p)| p.idle_since(cutoff))
            .map(|(name, _)| name.clone())
            .collect();
        let retired: Retired = idle.iter().filter_map(|n| self.pools.pop(n)).collect();
        self.pruned += retired.len() as u64;
        self.retire(&retired);
        retired
    }

    /// This shard's counters; the draining pools it counts are returned
    /// too, to be dropped after the lock is released.
    pub(super) fn stats(&self) -> (PoolStats, Retired) {
        let draining: Retired = self
            .draining
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|p| !self.caches(p))
            .collect();
        let checked_out = self
            .pools
            .iter()
            .map(|(_, p)| p.checked_out())
            .chain(draining.iter().map(|p| p.checked_out()))
            .sum();
        let stats = PoolStats {
            open_pools: self.pools.len(),
            draining_pools: draining.len(),
            checked_out,
            hits: self.hits,
            misses: self.misses,
            evictions: self.evictions,
            pruned: self.pruned,
        };
        (stats, draining)
    }
}
