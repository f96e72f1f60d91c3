//! A pooled connection to one tenant's database.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::path::Path;

use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use crate::name::TenantName;
use crate::pool_cache::CheckoutGuard;

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
    // Field order matters: the connection returns to r2d2 before the guard
    // lowers the checkout count that destroy_tenant waits on.
    conn: PooledConnection<SqliteConnectionManager>,
    guard: CheckoutGuard,
}

impl TenantConnection {
    pub(crate) fn new(
        conn: PooledConnection<SqliteConnectionManager>,
        guard: CheckoutGuard,
    ) -> Self {
        TenantConnection { conn, guard }
    }

    /// The tenant this connection belongs to.
    pub fn tenant(&self) -> &TenantName {
        &self.guard.0.name
    }

    /// The tenant's database file.
    pub fn path(&self) -> &Path {
        &self.guard.0.path
    }
}

impl Deref for TenantConnection {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl DerefMut for TenantConnection {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
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
