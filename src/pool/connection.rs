//! A pooled connection to one tenant's database, and the warm path that
//! hands one out.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::path::Path;

use rusqlite::Connection;

use super::cache::PoolCache;
use super::tenant_pool::{Checkout, Refused};
use crate::error::{Error, Result};
use crate::limits;
use crate::name::TenantName;

/// A connection checked out of a tenant's pool; derefs to
/// [`rusqlite::Connection`] and goes back to the pool when dropped.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let manager = tenanted::TenantManager::builder(
/// #     tenanted::RootConfig::new(dir.path()),
/// #     tenanted::Migrations::new(vec![tenanted::Migration::new("t", "CREATE TABLE t (x);")]),
/// # ).build()?;
/// # manager.create_tenant("acme")?;
/// let conn = manager.connection("acme")?;
/// assert_eq!(conn.tenant().as_str(), "acme");
/// conn.execute("INSERT INTO t (x) VALUES (1)", [])?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TenantConnection {
    // The connection and its checkout count, dropped in the right order
    // (see tenant_pool.rs).
    checkout: Checkout,
}

impl TenantConnection {
    pub(super) fn new(checkout: Checkout) -> Self {
        TenantConnection { checkout }
    }

    /// The warm path: a connection from `name`'s cached pool, or `None`
    /// when no usable pool of it is cached. One short lock (the cache's),
    /// one hash lookup, one reference count, then r2d2's checkout; no I/O.
    /// A pool found stale (its file changed under it, see `watcher.rs`)
    /// is evicted and `None` sends the caller down the cold path.
    pub(crate) fn cached(cache: &PoolCache, name: &str) -> Option<Result<Self>> {
        let pool = cache.lookup(name)?;
        match pool.checkout(cache.now()) {
            Ok(checkout) => Some(Ok(TenantConnection::new(checkout))),
            Err(Refused::Failed(e)) => Some(Err(e)),
            Err(Refused::Stale) => {
                cache.evict_stale(name);
                None
            }
        }
    }

    /// The tenant this connection belongs to.
    pub fn tenant(&self) -> &TenantName {
        self.checkout.pool().name()
    }

    /// The tenant's database file.
    pub fn path(&self) -> &Path {
        self.checkout.pool().path()
    }

    /// Says what an error of a statement on this connection means for the
    /// tenant, in tenanted's words:
    ///
    /// - a write over the tenant's size limit (SQLite's `SQLITE_FULL`
    ///   under `PRAGMA max_page_count`) is [`Error::QuotaExceeded`],
    ///   naming the tenant, the limit and its size;
    /// - a full file system (also `SQLITE_FULL`) is [`Error::DiskFull`],
    ///   naming the file system; the two are told apart by which room is
    ///   smaller: what the limit leaves, or what the file system has;
    /// - a write refused on a tenant suspended read-only
    ///   (`SQLITE_READONLY`) is [`Error::TenantSuspended`] with the reason;
    /// - anything else is [`Error::Sqlite`] naming the tenant.
    ///
    /// Call it on the connection the statement ran on, right after it
    /// failed (it reads the database's size).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()),
    /// #     tenanted::Migrations::new(vec![tenanted::Migration::new("t", "CREATE TABLE t (x);")]),
    /// # ).build()?;
    /// manager.create_tenant("acme")?;
    /// manager.set_tenant_max_size("acme", Some(64 * 1024))?;
    /// let conn = manager.connection("acme")?;
    /// let err = conn
    ///     .execute("INSERT INTO t (x) VALUES (zeroblob(1000000))", [])
    ///     .map_err(|e| conn.diagnose(e))
    ///     .unwrap_err();
    /// assert!(matches!(err, tenanted::Error::QuotaExceeded { limit: 65536, .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn diagnose(&self, e: rusqlite::Error) -> Error {
        let pool = self.checkout.pool();
        limits::diagnose(self, pool.name(), pool.path(), pool.policy(), e)
    }
}

impl Deref for TenantConnection {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.checkout.connection()
    }
}

impl DerefMut for TenantConnection {
    fn deref_mut(&mut self) -> &mut Connection {
        self.checkout.connection_mut()
    }
}

impl fmt::Debug for TenantConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantConnection")
            .field("tenant", self.tenant())
            .field("path", &self.path())
            .finish()
    }
}

/// Retires `name`'s cached pool, if any, because its limits changed: new
/// checkouts open it afresh under the new ones; connections already out
/// finish their work and close when they come back.
pub(crate) fn retire_tenant(cache: &PoolCache, name: &str) {
    // Looked at, not used: no hit counted, its place in the LRU kept.
    if let Some(pool) = cache.peek(name).pool {
        cache.retire_stale(&pool);
    }
}
