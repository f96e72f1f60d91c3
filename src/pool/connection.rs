//! A pooled connection to one tenant's database, and the warm path that
//! hands one out.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::path::Path;

use rusqlite::Connection;

use super::cache::PoolCache;
use super::tenant_pool::{Checkout, Refused};
use crate::error::Result;
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
