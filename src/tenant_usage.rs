//! The facade's fleet usage report: every tenant's use of the disk beside
//! its size limit and suspension, through [`TenantManager`].

use crate::error::Result;
use crate::limits::{self, TenantUsage, UsageOrder, UsageReport};
use crate::manager::TenantManager;

impl TenantManager {
    /// Every tenant's use of the disk, read from its files without SQLite
    /// (a `stat` of the `-wal` and the database header: the cost of
    /// [`migration_status`](Self::migration_status) on a quiet fleet), on
    /// one thread per core: the totals over the fleet, and its first `top`
    /// tenants in `order` (largest, closest to its size limit, least
    /// recently written). Memory does not grow with the fleet; for every
    /// row, use [`usage_each`](Self::usage_each).
    ///
    /// Page counts are as of each tenant's last commit (its `-wal`'s last
    /// commit frame, read only when the `-wal` holds frames; else the
    /// header's), so a tenant is at its limit here when its writes are;
    /// free pages are the header's, as of its last checkpoint. Limits and suspensions are the root's record, read again
    /// first if it changed.
    ///
    /// # Errors
    ///
    /// Only for a root that cannot be walked at all, or
    /// [`Error::Encryption`](crate::Error::Encryption) (the `encryption`
    /// feature) when the key provider cannot open the root's keys (a
    /// master key that is not the root's). A tenant whose files
    /// cannot be read is in [`UsageReport::failed`] (a damaged database is
    /// [`Error::DamagedTenant`](crate::Error::DamagedTenant), a tenant
    /// directory without its database
    /// [`Error::MissingDatabase`](crate::Error::MissingDatabase)), and a
    /// directory of the root that cannot be listed in
    /// [`UsageReport::listing_errors`].
    ///
    /// ```
    /// use tenanted::UsageOrder;
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// manager.create_tenant("acme")?;
    /// manager.create_tenant("globex")?;
    /// let report = manager.usage(UsageOrder::Largest, 10)?;
    /// assert_eq!((report.tenants, report.top.len()), (2, 2));
    /// assert!(report.top[0].bytes_on_disk() >= report.top[1].bytes_on_disk());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn usage(&self, order: UsageOrder, top: usize) -> Result<UsageReport> {
        self.usage_run(order, top, None)
    }

    /// [`usage`](Self::usage), handing every tenant's row to `each` as it
    /// is read (in no particular order, one call at a time, from the run's
    /// threads). Returns the same report; with `top` 0 it keeps no row.
    ///
    /// # Errors
    ///
    /// As [`usage`](Self::usage).
    ///
    /// ```
    /// use tenanted::UsageOrder;
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// manager.create_tenant("acme")?;
    /// let mut bytes = 0;
    /// let report = manager.usage_each(UsageOrder::Largest, 0, |row| bytes += row.database_bytes)?;
    /// assert_eq!((report.tenants, report.top.len()), (1, 0));
    /// assert!(bytes > 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn usage_each(
        &self,
        order: UsageOrder,
        top: usize,
        mut each: impl FnMut(&TenantUsage) + Send,
    ) -> Result<UsageReport> {
        self.usage_run(order, top, Some(&mut each))
    }

    fn usage_run(
        &self,
        order: UsageOrder,
        top: usize,
        each: Option<&mut (dyn FnMut(&TenantUsage) + Send)>,
    ) -> Result<UsageReport> {
        let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
        limits::usage(self.root(), self.limits(), (order, top), jobs, each)
    }
}
