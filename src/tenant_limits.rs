//! The facade's limits: a tenant's size limit and suspension, set and
//! read through [`TenantManager`].

use crate::busy::WaitedFor;
use crate::error::{Error, Result};
use crate::fs::Patience;
use crate::limits::{Entry, Override, SuspendMode, Suspension, TenantLimits};
use crate::manager::TenantManager;
use crate::name::TenantName;
use crate::pool::retire_tenant;

impl TenantManager {
    /// Sets tenant `name`'s own size limit in bytes (`None`: unlimited,
    /// whatever the manager's
    /// [`default_max_size`](crate::TenantManagerBuilder::default_max_size)).
    ///
    /// It is recorded in the root (`.tenanted/limits`), so it survives
    /// restarts and holds in every process of the root: this one at once,
    /// the others within their `watch_interval`. Pools of the tenant are
    /// reopened under it; connections already checked out finish their
    /// work under the old one. A limit below the tenant's current size
    /// keeps it at that size: it can shrink, not grow.
    ///
    /// # Errors
    ///
    /// [`Error::BadTenantName`], [`Error::TenantDoesNotExist`]; an I/O
    /// error writing the record (a read-only root included);
    /// [`Error::BadLimitsRecord`] if the record is damaged;
    /// [`Error::TenantBusy`] when the tenant (a destroy, a restore) or the
    /// root's limits record (another process's change) is held past
    /// `lock_timeout`, counted from the call.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// manager.create_tenant("acme")?;
    /// manager.set_tenant_max_size("acme", Some(10 << 20))?;
    /// let limits = manager.tenant_limits("acme")?;
    /// assert_eq!((limits.max_size, limits.overridden), (Some(10 << 20), true));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_tenant_max_size(&self, name: &str, max_size: Option<u64>) -> Result<()> {
        let max_size = max_size.map_or(Override::Unlimited, Override::Bytes);
        self.change_limits(name, |entry| entry.max_size = max_size)
    }

    /// Drops tenant `name`'s own size limit: the manager's default applies
    /// again (in every process within its `watch_interval`).
    ///
    /// # Errors
    ///
    /// As [`set_tenant_max_size`](Self::set_tenant_max_size).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// manager.create_tenant("acme")?;
    /// manager.set_tenant_max_size("acme", Some(1 << 20))?;
    /// manager.clear_tenant_max_size("acme")?;
    /// assert_eq!(manager.tenant_limits("acme")?.max_size, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clear_tenant_max_size(&self, name: &str) -> Result<()> {
        self.change_limits(name, |entry| entry.max_size = Override::Default)
    }

    /// Suspends tenant `name` with a `reason` callers are shown:
    ///
    /// - read-only ([`SuspendMode::ReadOnly`]): connections are still handed out, but
    ///   opened read-only (the file itself, so no `PRAGMA` lifts it); a
    ///   write fails, and [`TenantConnection::diagnose`](crate::TenantConnection::diagnose)
    ///   says [`Error::TenantSuspended`] with the reason;
    /// - blocked ([`SuspendMode::Blocked`]): [`connection`](Self::connection)
    ///   returns [`Error::TenantSuspended`] with the reason.
    ///
    /// It is recorded in the root, survives restarts and holds in every
    /// process: this one at once, others within their `watch_interval`.
    /// Connections already checked out finish their work; the pool is
    /// reopened (or refused) for the next checkout. Suspending again
    /// replaces the mode and reason.
    ///
    /// A suspension is about serving the tenant, not about operating it:
    /// fleet migrations, backups and destroy treat a suspended tenant like
    /// any other (a resumed tenant must be at the current schema; its data
    /// is still backed up; destroying it removes its suspension too).
    ///
    /// # Errors
    ///
    /// As [`set_tenant_max_size`](Self::set_tenant_max_size).
    ///
    /// ```
    /// use tenanted::{Error, SuspendMode};
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// manager.create_tenant("acme")?;
    /// manager.suspend_tenant("acme", SuspendMode::Blocked, "invoice 2026-11 unpaid")?;
    /// match manager.connection("acme") {
    ///     Err(Error::TenantSuspended { reason, .. }) => assert_eq!(reason, "invoice 2026-11 unpaid"),
    ///     other => panic!("{other:?}"),
    /// }
    /// manager.resume_tenant("acme")?;
    /// manager.connection("acme")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn suspend_tenant(&self, name: &str, mode: SuspendMode, reason: &str) -> Result<()> {
        let suspension = Suspension::new(mode, reason);
        self.change_limits(name, |entry| entry.suspension = Some(suspension))
    }

    /// Lifts tenant `name`'s suspension, in every process within its
    /// `watch_interval` (this one at once). Resuming a tenant that is not
    /// suspended does nothing.
    ///
    /// # Errors
    ///
    /// As [`set_tenant_max_size`](Self::set_tenant_max_size).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// manager.create_tenant("acme")?;
    /// manager.resume_tenant("acme")?;
    /// assert!(manager.tenant_limits("acme")?.suspension.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resume_tenant(&self, name: &str) -> Result<()> {
        self.change_limits(name, |entry| entry.suspension = None)
    }

    /// Tenant `name`'s size limit (its own or the default) and
    /// suspension, as recorded now (the record is looked at again if it
    /// changed).
    ///
    /// # Errors
    ///
    /// [`Error::BadTenantName`]; [`Error::TenantDoesNotExist`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// manager.create_tenant("acme")?;
    /// let limits = manager.tenant_limits("acme")?;
    /// assert_eq!((limits.max_size, limits.suspension), (None, None));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tenant_limits(&self, name: &str) -> Result<TenantLimits> {
        let tenant = self.existing(name)?;
        self.limits().refresh();
        Ok(self.limits().limits_of(tenant.as_str()))
    }

    /// Every tenant with a size limit of its own or a suspension, as
    /// recorded now, sorted by name (its size grows with those tenants,
    /// not with the fleet).
    ///
    /// # Errors
    ///
    /// None today; reserved for reading the record.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// manager.create_tenant("acme")?;
    /// manager.create_tenant("globex")?;
    /// manager.suspend_tenant("globex", tenanted::SuspendMode::ReadOnly, "audit")?;
    /// let recorded = manager.recorded_limits()?;
    /// assert_eq!(recorded.len(), 1);
    /// assert_eq!(recorded[0].0.as_str(), "globex");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recorded_limits(&self) -> Result<Vec<(TenantName, TenantLimits)>> {
        let limits = self.limits();
        limits.refresh();
        let mut all: Vec<_> = limits
            .names()
            .into_iter()
            .map(|name| {
                let of = limits.limits_of(name.as_str());
                (name, of)
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    fn change_limits(&self, name: &str, change: impl FnOnce(&mut Entry)) -> Result<()> {
        let (tenant, path) = self.locate(name)?;
        // Under the tenant's lock, looked at there: a destroy holds it
        // until the tenant and its limits are gone, so a change racing it
        // cannot outlive it onto the next tenant of the name; a restore
        // or a re-key holds it while the tenant is fenced off, and the
        // change waits for it.
        // One wait, from the call: for the tenant's lock, then the
        // record's.
        let patience = Patience::new(self.lock_timeout());
        let locked = self.lock_tenant((&tenant, &path), WaitedFor::LimitChange, &patience);
        let _lock = locked.map_err(|e| match e {
            Error::TenantDoesNotExist { .. } => self.existing(name).err().unwrap_or(e),
            e => e,
        })?;
        self.existing(name)?;
        self.limits().change(&tenant, &patience, change)?;
        // This process at once; the others when their watcher looks.
        retire_tenant(self.cache(), tenant.as_str());
        tracing::info!(tenant = %tenant, limits = ?self.limits().limits_of(tenant.as_str()), "tenant limits changed");
        Ok(())
    }

    fn existing(&self, name: &str) -> Result<TenantName> {
        let (tenant, path) = self.locate(name)?;
        if !self.tenant_exists(tenant.as_str())? {
            // Said as every other answer says it (a link in the way).
            let missing = Error::TenantDoesNotExist {
                tenant: tenant.clone(),
                path: path.clone(),
            };
            return Err(self.diagnosed(&tenant, &path, missing));
        }
        Ok(tenant)
    }
}
