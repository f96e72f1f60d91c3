//! The facade's status of one tenant: its schema version and pending
//! migrations, through [`TenantManager`], without reading the fleet.

use crate::error::Result;
use crate::manager::TenantManager;
use crate::migrate::{self, TenantStatus};

impl TenantManager {
    /// Tenant `name`'s schema version and the migrations pending on it:
    /// its row of [`migration_status`](Self::migration_status), read the
    /// same way (the database header, no SQLite open when the file alone
    /// tells) without reading any other tenant. A snapshot: another
    /// process may migrate it the moment after.
    ///
    /// # Errors
    ///
    /// [`Error::BadTenantName`](crate::Error::BadTenantName);
    /// [`Error::TenantDoesNotExist`](crate::Error::TenantDoesNotExist) (or
    /// `TenantBeingDestroyed`); [`Error::NotADirectory`](crate::Error::NotADirectory)
    /// when a link or a file stands on the way to it; the root's checks
    /// ([`Error::MigrationChanged`](crate::Error::MigrationChanged), ...) as
    /// for `migration_status`. A tenant that is there but cannot be read
    /// (damaged, its database missing) is a row whose `version` is the
    /// error, as in the fleet's report.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()),
    /// #     tenanted::Migrations::new(vec![tenanted::Migration::new("a", "CREATE TABLE a (x);")]),
    /// # ).build()?;
    /// manager.create_tenant("acme")?;
    /// let row = manager.tenant_status("acme")?;
    /// assert!(row.is_current(1) && row.pending.is_empty());
    /// assert!(matches!(
    ///     manager.tenant_status("nobody"),
    ///     Err(tenanted::Error::TenantDoesNotExist { .. })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tenant_status(&self, name: &str) -> Result<TenantStatus> {
        let (tenant, _) = self.locate(name)?;
        self.check_root_for_status()?;
        migrate::tenant_status(self.root(), self.migrations(), tenant)
    }
}
