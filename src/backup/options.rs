//! [`BackupOptions`]: how `backup_all` runs; [`RestoreOptions`]: whether
//! a restore may replace an existing tenant.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::report::TenantBackup;
use crate::fleet::{Callback, FleetOptions, Progress};

/// How [`TenantManager::backup_all`](crate::TenantManager::backup_all)
/// runs.
///
/// ```
/// use tenanted::BackupOptions;
///
/// let options = BackupOptions::new()
///     .jobs(2)
///     .only(["acme", "globex"])
///     .on_progress(|p| eprintln!("{}/{} {}", p.done, p.total, p.tenant));
/// ```
pub struct BackupOptions {
    pub(super) fleet: FleetOptions,
    pub(super) after_each: Option<Callback<TenantBackup>>,
    pub(super) verify: bool,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions::new()
    }
}

impl BackupOptions {
    /// Every tenant, one worker per core, continuing past failures, each
    /// copy verified.
    pub fn new() -> Self {
        BackupOptions {
            fleet: FleetOptions::new(),
            after_each: None,
            verify: true,
        }
    }

    /// Whether each copy is read back and checked with `PRAGMA
    /// integrity_check` before it is kept (default: yes), the check a
    /// restore makes of it.
    ///
    /// A tenant whose pages are damaged behind an intact header copies
    /// without an error, into a file no restore accepts. Verified, its
    /// copy is thrown away and its line fails with
    /// [`Error::DamagedTenant`](crate::Error::DamagedTenant): the run is
    /// not a success, and a rotation that keeps every tenant's newest
    /// good copy (`tenanted backup --into DIR --keep N`) keeps the older
    /// run that holds one. The check reads every page of the copy (from
    /// the page cache, just written): `benches/backup_floor.rs` measures
    /// what it adds to a run. Turn it off where something else checks
    /// the copies.
    ///
    /// ```
    /// let fast = tenanted::BackupOptions::new().verify(false);
    /// ```
    pub fn verify(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }

    /// Worker threads (at least 1). Each copies one tenant at a time.
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.fleet.set_jobs(jobs);
        self
    }

    /// Back up only these tenants, in this order.
    pub fn only<I, S>(mut self, tenants: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.fleet.set_only(tenants);
        self
    }

    /// Called after each tenant (`ok` is false for a failure, and also for
    /// a tenant destroyed before its turn), from a thread of the run: the
    /// worker that copied it, or the thread that synced its window, so
    /// calls may come from two threads at once even with `jobs(1)`.
    pub fn on_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.fleet.progress = Some(Box::new(f));
        self
    }

    /// Called with every tenant's line as it finishes, from a thread of
    /// the run (as `on_progress`): the copy written and synced (its
    /// directory entry is made durable with every other at the end of the
    /// run), a failure, or a tenant gone. The report keeps only the
    /// failures.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path().join("root")), tenanted::Migrations::new(vec![])).build()?;
    /// # manager.create_tenant("acme")?;
    /// let lines = Arc::new(Mutex::new(Vec::new()));
    /// let seen = Arc::clone(&lines);
    /// let options = tenanted::BackupOptions::new().after_each(move |line| seen.lock().unwrap().push(line.clone()));
    /// let report = manager.backup_all(dir.path().join("backup"), &options)?;
    /// assert!(lines.lock().unwrap()[0].succeeded());
    /// assert!(report.failures.is_empty(), "a tenant copied is only counted");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn after_each(mut self, f: impl Fn(&TenantBackup) + Send + Sync + 'static) -> Self {
        self.after_each = Some(Box::new(f));
        self
    }

    /// Stop starting tenants once `flag` is set (for example from a Ctrl-C
    /// handler): copies in progress finish, the rest are reported as
    /// skipped and the report as cancelled.
    ///
    /// ```
    /// use std::sync::{Arc, atomic::AtomicBool};
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path().join("root")), tenanted::Migrations::new(vec![])).build()?;
    /// # manager.create_tenant("acme")?;
    /// let cancel = Arc::new(AtomicBool::new(true));
    /// let options = tenanted::BackupOptions::new().cancel_on(cancel);
    /// let report = manager.backup_all(dir.path().join("backup"), &options)?;
    /// assert!(report.cancelled && report.total() == 0);
    /// assert_eq!(report.skipped, ["acme"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cancel_on(mut self, flag: Arc<AtomicBool>) -> Self {
        self.fleet.cancel = Some(flag);
        self
    }
}

impl fmt::Debug for BackupOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackupOptions")
            .field("jobs", &self.fleet.jobs)
            .field("only", &self.fleet.only)
            .field("verify", &self.verify)
            .finish_non_exhaustive()
    }
}

/// How [`TenantManager::restore_tenant_opts`](crate::TenantManager::restore_tenant_opts)
/// treats an existing tenant.
///
/// ```
/// let options = tenanted::RestoreOptions::new().replace(true);
/// assert!(options.replaces());
/// assert!(!tenanted::RestoreOptions::new().replaces());
/// ```
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    replace: bool,
}

impl RestoreOptions {
    /// Never replace an existing tenant (restore fails with
    /// [`Error::TenantExists`](crate::Error::TenantExists)).
    pub fn new() -> Self {
        RestoreOptions::default()
    }

    /// Replace an existing tenant: it is destroyed first, exactly as
    /// [`destroy_tenant`](crate::TenantManager::destroy_tenant) does (this
    /// process's connections drained, other processes waited for), then
    /// the backup is published.
    pub fn replace(mut self, replace: bool) -> Self {
        self.replace = replace;
        self
    }

    /// Whether an existing tenant is replaced.
    pub fn replaces(&self) -> bool {
        self.replace
    }
}
