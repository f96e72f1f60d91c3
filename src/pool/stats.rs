//! [`PoolStats`]: a snapshot of the pool cache's counters.

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
