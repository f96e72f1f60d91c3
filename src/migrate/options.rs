//! [`MigrateOptions`]: how a fleet migration runs; the options every fleet
//! run shares (jobs, which tenants, progress, cancel) are the fleet's own
//! ([`FleetOptions`]), embedded.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::report::TenantReport;
use super::tenant::DownFrom;
use crate::fleet::{Callback, FleetOptions, Progress};
use crate::name::TenantName;

/// How [`TenantManager::migrate_all`](crate::TenantManager::migrate_all)
/// runs.
///
/// ```
/// use tenanted::MigrateOptions;
///
/// let options = MigrateOptions::new()
///     .jobs(4)
///     .fail_fast(false)
///     .on_progress(|p| eprintln!("{}/{} {}", p.done, p.total, p.tenant));
/// ```
pub struct MigrateOptions {
    pub(super) fleet: FleetOptions,
    pub(super) max_failures: Option<usize>,
    pub(super) allow_down: AllowDown,
    pub(super) target: Option<usize>,
    pub(super) before_each: Option<Callback<TenantName>>,
    pub(super) after_each: Option<Callback<TenantReport>>,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions::new()
    }
}

impl MigrateOptions {
    /// Every tenant, to the latest version, one worker per core, continuing
    /// past failures.
    pub fn new() -> Self {
        MigrateOptions {
            fleet: FleetOptions::new(),
            max_failures: None,
            allow_down: AllowDown::Always,
            target: None,
            before_each: None,
            after_each: None,
        }
    }

    /// Worker threads (at least 1). Each migrates one tenant at a time.
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.fleet.set_jobs(jobs);
        self
    }

    /// Stop starting tenants after the first failure (default: go on).
    /// The same as [`max_failures(1)`](Self::max_failures); `false` removes
    /// any limit.
    pub fn fail_fast(mut self, fail_fast: bool) -> Self {
        self.max_failures = fail_fast.then_some(1);
        self
    }

    /// Stop starting tenants once `failures` tenants have failed (at least
    /// 1): the tenants already running finish, the rest are reported as
    /// [`skipped`](crate::MigrationReport::skipped) and the report says
    /// the limit stopped it
    /// ([`stopped_by_failures`](crate::MigrationReport::stopped_by_failures)).
    /// A staged rollout: a bad migration stops after a few tenants
    /// instead of failing on all of them.
    ///
    /// ```
    /// use tenanted::{Migration, MigrateOptions, Migrations};
    /// # let dir = tempfile::tempdir()?;
    /// # let root = tenanted::RootConfig::new(dir.path());
    /// let good = Migrations::new(vec![Migration::new("a", "CREATE TABLE a (x);")]);
    /// let manager = tenanted::TenantManager::builder(root.clone(), good).build()?;
    /// for name in ["t1", "t2", "t3", "t4"] {
    ///     manager.create_tenant(name)?;
    ///     manager.connection(name)?.execute_batch("INSERT INTO a VALUES (1), (1);")?;
    /// }
    /// let bad = Migrations::new(vec![
    ///     Migration::new("a", "CREATE TABLE a (x);"),
    ///     // Fails on these tenants' rows (an empty database takes it).
    ///     Migration::new("b", "CREATE UNIQUE INDEX a_x ON a (x);"),
    /// ]);
    /// let manager = tenanted::TenantManager::builder(root, bad).build()?;
    /// let report = manager.migrate_all(&MigrateOptions::new().jobs(1).max_failures(2))?;
    /// assert_eq!((report.failed(), report.skipped.len()), (2, 2));
    /// assert!(report.stopped_by_failures && !report.is_success());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_failures(mut self, failures: usize) -> Self {
        self.max_failures = Some(failures.max(1));
        self
    }

    /// Whether a tenant above the target version may be taken down to it
    /// (default: `true`). Down migrations can drop data: a caller that
    /// asked its user to confirm a rollback for the tenants it saw above
    /// the target passes `false` when there were none, so that a tenant
    /// migrated up by someone else in the meantime is left alone and
    /// reported failed with [`Error::DownNotAllowed`](crate::Error::DownNotAllowed)
    /// instead of rolled back unconfirmed.
    ///
    /// ```
    /// use tenanted::{Migration, MigrateOptions, Migrations};
    /// # let dir = tempfile::tempdir()?;
    /// let two = Migrations::new(vec![
    ///     Migration::new("a", "CREATE TABLE a (x);").down("DROP TABLE a;"),
    ///     Migration::new("b", "CREATE TABLE b (x);").down("DROP TABLE b;"),
    /// ]);
    /// let manager = tenanted::TenantManager::builder(tenanted::RootConfig::new(dir.path()), two).build()?;
    /// manager.create_tenant("acme")?;
    /// let report = manager.migrate_all(&MigrateOptions::new().to_version(0).allow_down(false))?;
    /// assert!(matches!(report.failures[0].error.as_deref(), Some(tenanted::Error::DownNotAllowed { .. })));
    /// assert_eq!(manager.migration_status()?.current(), 1, "acme is still at version 2");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allow_down(mut self, allow: bool) -> Self {
        self.allow_down = match allow {
            true => AllowDown::Always,
            false => AllowDown::Never,
        };
        self
    }

    /// Lets only these tenants go down, each from the version it was at
    /// when the caller's user confirmed it (a [`MigrationPlan`](crate::MigrationPlan)'s
    /// tenants going down): any other tenant above the target, and one of
    /// these found at another version under its lock (migrated up by
    /// someone else since), is left alone and reported failed with
    /// [`Error::DownNotAllowed`](crate::Error::DownNotAllowed). The
    /// `tenanted migrate --to` confirmation passes the tenants it listed.
    ///
    /// ```
    /// use tenanted::{Migration, MigrateOptions, Migrations};
    /// # let dir = tempfile::tempdir()?;
    /// let two = Migrations::new(vec![
    ///     Migration::new("a", "CREATE TABLE a (x);").down("DROP TABLE a;"),
    ///     Migration::new("b", "CREATE TABLE b (x);").down("DROP TABLE b;"),
    /// ]);
    /// let manager = tenanted::TenantManager::builder(tenanted::RootConfig::new(dir.path()), two).build()?;
    /// manager.create_tenant("acme")?;
    /// manager.create_tenant("globex")?;
    /// let only_acme = MigrateOptions::new().to_version(1).allow_down_only([("acme", 2)]);
    /// let report = manager.migrate_all(&only_acme)?;
    /// assert_eq!((report.migrated(), report.failed()), (1, 1), "globex stays at 2");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allow_down_only<I, S>(mut self, confirmed: I) -> Self
    where
        I: IntoIterator<Item = (S, usize)>,
        S: Into<String>,
    {
        let confirmed = confirmed.into_iter().map(|(t, v)| (t.into(), v));
        self.allow_down = AllowDown::Confirmed(Arc::new(confirmed.collect()));
        self
    }

    /// Migrate only these tenants (a canary rollout), in this order.
    /// Without it, tenants are taken in the order the walk of the root
    /// finds them (bucket by bucket), not by name.
    pub fn only<I, S>(mut self, tenants: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.fleet.set_only(tenants);
        self
    }

    /// Move every tenant to `version` (up or down) instead of the latest.
    pub fn to_version(mut self, version: usize) -> Self {
        self.target = Some(version);
        self
    }

    /// Called after each tenant, from the worker thread that did it.
    ///
    /// [`Progress::total`] needs the number of tenants before the run
    /// starts, so a run with a progress callback lists the root once more
    /// first (the run itself streams the listing and never holds every
    /// name).
    pub fn on_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.fleet.progress = Some(Box::new(f));
        self
    }

    /// Called before each tenant is migrated (its version has been read:
    /// a tenant is one once its database file is found).
    pub fn before_each(mut self, f: impl Fn(&TenantName) + Send + Sync + 'static) -> Self {
        self.before_each = Some(Box::new(f));
        self
    }

    /// Called after each tenant with its result: every tenant's line,
    /// where the [`MigrationReport`](crate::MigrationReport) lists only
    /// the tenants that changed or failed.
    pub fn after_each(mut self, f: impl Fn(&TenantReport) + Send + Sync + 'static) -> Self {
        self.after_each = Some(Box::new(f));
        self
    }

    /// Stop starting tenants once `flag` is set (for example from a Ctrl-C
    /// handler): tenants already running finish their transaction, the
    /// rest are reported as skipped and the report as cancelled.
    ///
    /// ```
    /// use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()),
    /// #     tenanted::Migrations::new(vec![tenanted::Migration::new("a", "CREATE TABLE a (x);")]),
    /// # ).build()?;
    /// # manager.create_tenant("acme")?;
    /// let cancel = Arc::new(AtomicBool::new(true));
    /// let report = manager.migrate_all(&tenanted::MigrateOptions::new().cancel_on(cancel))?;
    /// assert!(report.cancelled && report.total() == 0);
    /// assert_eq!(report.skipped, ["acme"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cancel_on(mut self, flag: Arc<AtomicBool>) -> Self {
        self.fleet.cancel = Some(flag);
        self
    }
}

impl MigrateOptions {
    /// The target version, when not the latest.
    pub(crate) fn target(&self) -> Option<usize> {
        self.target
    }

    /// The tenants of `only`, when set.
    pub(crate) fn only_names(&self) -> Option<&[String]> {
        self.fleet.only.as_deref()
    }
}

/// Which tenants a run may take down (see [`MigrateOptions::allow_down`]).
#[derive(Debug, Clone)]
pub(super) enum AllowDown {
    /// Every one above the target.
    Always,
    /// None.
    Never,
    /// These, each from this version only.
    Confirmed(Arc<HashMap<String, usize>>),
}

impl AllowDown {
    /// What `tenant` may do.
    pub(super) fn for_tenant(&self, tenant: &TenantName) -> DownFrom {
        match self {
            AllowDown::Always => DownFrom::Any,
            AllowDown::Never => DownFrom::Never,
            AllowDown::Confirmed(tenants) => match tenants.get(tenant.as_str()) {
                Some(&version) => DownFrom::Only(version),
                None => DownFrom::Never,
            },
        }
    }
}

impl fmt::Debug for MigrateOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MigrateOptions")
            .field("jobs", &self.fleet.jobs)
            .field("max_failures", &self.max_failures)
            .field("allow_down", &self.allow_down)
            .field("only", &self.fleet.only)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}
