//! Migrating and inspecting the whole fleet of tenants, in parallel.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::Error;
use crate::migrations::Migrations;
use crate::migrator::{self, MigrationOutcome};
use crate::name::TenantName;
use crate::paths::RootConfig;

type Callback<T> = Box<dyn Fn(&T) + Send + Sync>;

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
    jobs: usize,
    fail_fast: bool,
    only: Option<Vec<String>>,
    target: Option<usize>,
    progress: Option<Callback<Progress>>,
    before_each: Option<Callback<TenantName>>,
    after_each: Option<Callback<TenantReport>>,
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
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            fail_fast: false,
            only: None,
            target: None,
            progress: None,
            before_each: None,
            after_each: None,
        }
    }

    /// Worker threads (at least 1). Each migrates one tenant at a time.
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Stop starting tenants after the first failure (default: go on).
    pub fn fail_fast(mut self, fail_fast: bool) -> Self {
        self.fail_fast = fail_fast;
        self
    }

    /// Migrate only these tenants (a canary rollout), in this order.
    pub fn only<I, S>(mut self, tenants: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.only = Some(tenants.into_iter().map(Into::into).collect());
        self
    }

    /// Move every tenant to `version` (up or down) instead of the latest.
    pub fn to_version(mut self, version: usize) -> Self {
        self.target = Some(version);
        self
    }

    /// Called after each tenant, from the worker thread that did it.
    pub fn on_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Called before each tenant is migrated.
    pub fn before_each(mut self, f: impl Fn(&TenantName) + Send + Sync + 'static) -> Self {
        self.before_each = Some(Box::new(f));
        self
    }

    /// Called after each tenant with its result.
    pub fn after_each(mut self, f: impl Fn(&TenantReport) + Send + Sync + 'static) -> Self {
        self.after_each = Some(Box::new(f));
        self
    }
}

impl fmt::Debug for MigrateOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MigrateOptions")
            .field("jobs", &self.jobs)
            .field("fail_fast", &self.fail_fast)
            .field("only", &self.only)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Where a fleet migration is, given to the progress callback.
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
/// # let dir = tempfile::tempdir()?;
/// # let manager = tenanted::TenantManager::builder(
/// #     tenanted::RootConfig::new(dir.path()),
/// #     tenanted::Migrations::new(vec![tenanted::Migration::new("a", "CREATE TABLE a (x);")]),
/// # ).build()?;
/// # manager.create_tenant("acme")?;
/// let seen = Arc::new(AtomicUsize::new(0));
/// let counter = Arc::clone(&seen);
/// manager.migrate_all(&tenanted::MigrateOptions::new().on_progress(move |p| {
///     assert_eq!(p.total, 1);
///     counter.store(p.done, Ordering::SeqCst);
/// }))?;
/// assert_eq!(seen.load(Ordering::SeqCst), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Progress {
    /// Tenants finished so far, this one included.
    pub done: usize,
    /// Tenants in the run.
    pub total: usize,
    /// The tenant just finished.
    pub tenant: TenantName,
    /// Whether it succeeded.
    pub ok: bool,
}

/// One tenant's line in a [`MigrationReport`].
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let manager = tenanted::TenantManager::builder(
/// #     tenanted::RootConfig::new(dir.path()),
/// #     tenanted::Migrations::new(vec![tenanted::Migration::new("a", "CREATE TABLE a (x);")]),
/// # ).build()?;
/// # manager.create_tenant("acme")?;
/// let report = manager.migrate_all(&tenanted::MigrateOptions::new())?;
/// let line = &report.tenants[0];
/// assert_eq!((line.tenant.as_str(), line.from, line.to), ("acme", Some(1), Some(1)));
/// assert!(line.succeeded() && !line.changed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TenantReport {
    /// The tenant.
    pub tenant: TenantName,
    /// Its version before, when it could be read.
    pub from: Option<usize>,
    /// Its version after (on failure: the version it stays at).
    pub to: Option<usize>,
    /// Migrations run, in order (undone ones for a rollback).
    pub applied: Vec<String>,
    /// Time spent on it.
    pub duration: Duration,
    /// Why it failed; `None` on success.
    pub error: Option<Error>,
}

impl TenantReport {
    fn from_result(
        tenant: TenantName,
        result: Result<MigrationOutcome, Error>,
        started: Instant,
    ) -> Self {
        match result {
            Ok(o) => TenantReport {
                tenant,
                from: Some(o.from),
                to: Some(o.to),
                applied: o.applied,
                duration: o.duration,
                error: None,
            },
            Err(e) => {
                let version = match &e {
                    Error::Migration { version, .. } => Some(*version),
                    Error::SchemaAheadOfCode {
                        current_version, ..
                    } => Some(*current_version),
                    _ => None,
                };
                TenantReport {
                    tenant,
                    from: version,
                    to: version,
                    applied: Vec::new(),
                    duration: started.elapsed(),
                    error: Some(e),
                }
            }
        }
    }

    /// Whether the tenant ended where it was asked to.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }

    /// Whether migrations ran on it.
    pub fn changed(&self) -> bool {
        !self.applied.is_empty()
    }
}

/// What [`TenantManager::migrate_all`](crate::TenantManager::migrate_all)
/// did, tenant by tenant (sorted by name), with totals.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let manager = tenanted::TenantManager::builder(
/// #     tenanted::RootConfig::new(dir.path()),
/// #     tenanted::Migrations::new(vec![tenanted::Migration::new("a", "CREATE TABLE a (x);")]),
/// # ).build()?;
/// # manager.create_tenant("acme")?;
/// let report = manager.migrate_all(&tenanted::MigrateOptions::new())?;
/// assert_eq!((report.succeeded(), report.migrated(), report.up_to_date(), report.failed()), (1, 0, 1, 0));
/// assert!(report.is_success());
/// assert!(report.to_string().starts_with("1/1 tenants migrated to version 1"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MigrationReport {
    /// The version every tenant was asked to reach.
    pub target_version: usize,
    /// One entry per tenant that was attempted.
    pub tenants: Vec<TenantReport>,
    /// Tenants not attempted because `fail_fast` stopped the run.
    pub skipped: Vec<TenantName>,
    /// Directories that could not be listed.
    pub listing_errors: Vec<Error>,
    /// Wall-clock time of the whole run.
    pub duration: Duration,
}

impl MigrationReport {
    /// Tenants that succeeded (migrated or already there).
    pub fn succeeded(&self) -> usize {
        self.tenants.iter().filter(|t| t.succeeded()).count()
    }

    /// Tenants on which migrations ran.
    pub fn migrated(&self) -> usize {
        self.tenants
            .iter()
            .filter(|t| t.succeeded() && t.changed())
            .count()
    }

    /// Tenants already at the target.
    pub fn up_to_date(&self) -> usize {
        self.tenants
            .iter()
            .filter(|t| t.succeeded() && !t.changed())
            .count()
    }

    /// Tenants that failed.
    pub fn failed(&self) -> usize {
        self.tenants.len() - self.succeeded()
    }

    /// The failed tenants' reports.
    pub fn failures(&self) -> impl Iterator<Item = &TenantReport> {
        self.tenants.iter().filter(|t| !t.succeeded())
    }

    /// Whether everything succeeded, nothing was skipped and every
    /// directory could be listed.
    pub fn is_success(&self) -> bool {
        self.failed() == 0 && self.skipped.is_empty() && self.listing_errors.is_empty()
    }
}

fn version_label(v: Option<usize>) -> String {
    v.map_or_else(|| "?".to_owned(), |v| v.to_string())
}

impl fmt::Display for MigrationReport {
    /// Lists migrated and failed tenants (up-to-date ones only as a count),
    /// then a summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.tenants {
            match &t.error {
                Some(e) => writeln!(
                    f,
                    "✗ {}: FAILED at version {}: {e}",
                    t.tenant,
                    version_label(t.to)
                )?,
                None if t.changed() => writeln!(
                    f,
                    "✓ {}: {} → {} ({}) in {:.1?}",
                    t.tenant,
                    version_label(t.from),
                    version_label(t.to),
                    t.applied.join(", "),
                    t.duration
                )?,
                None => {}
            }
        }
        for e in &self.listing_errors {
            writeln!(f, "✗ {e}")?;
        }
        write!(
            f,
            "{}/{} tenants migrated to version {} ({} changed, {} already there)",
            self.succeeded(),
            self.tenants.len(),
            self.target_version,
            self.migrated(),
            self.up_to_date()
        )?;
        if self.failed() > 0 {
            let names: Vec<&str> = self.failures().map(|t| t.tenant.as_str()).collect();
            write!(f, ", {} failed: {}", self.failed(), names.join(", "))?;
        }
        if !self.skipped.is_empty() {
            write!(
                f,
                ", {} skipped after the first failure",
                self.skipped.len()
            )?;
        }
        write!(f, " in {:.1?}", self.duration)
    }
}

/// One tenant's line in a [`StatusReport`].
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let manager = tenanted::TenantManager::builder(
/// #     tenanted::RootConfig::new(dir.path()),
/// #     tenanted::Migrations::new(vec![tenanted::Migration::new("a", "CREATE TABLE a (x);")]),
/// # ).build()?;
/// # manager.create_tenant("acme")?;
/// let status = manager.migration_status()?;
/// assert!(status.tenants[0].is_current(status.latest_version));
/// assert!(status.tenants[0].pending.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TenantStatus {
    /// The tenant.
    pub tenant: TenantName,
    /// Its schema version, or why it could not be read.
    pub version: Result<usize, Error>,
    /// Migrations not yet applied to it.
    pub pending: Vec<String>,
}

impl TenantStatus {
    /// Whether it is at the latest version.
    pub fn is_current(&self, latest: usize) -> bool {
        matches!(self.version, Ok(v) if v == latest)
    }

    /// Whether it is newer than the migrations this program knows.
    pub fn is_ahead(&self, latest: usize) -> bool {
        matches!(self.version, Ok(v) if v > latest)
    }
}

/// Every tenant's schema version, from
/// [`TenantManager::migration_status`](crate::TenantManager::migration_status).
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let manager = tenanted::TenantManager::builder(
/// #     tenanted::RootConfig::new(dir.path()),
/// #     tenanted::Migrations::new(vec![tenanted::Migration::new("a", "CREATE TABLE a (x);")]),
/// # ).build()?;
/// # manager.create_tenant("acme")?;
/// let status = manager.migration_status()?;
/// assert_eq!((status.current(), status.behind(), status.ahead(), status.unreadable()), (1, 0, 0, 0));
/// assert!(status.all_current());
/// assert!(status.to_string().ends_with("Overall: 1/1 tenants current, 0 migration(s) pending"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct StatusReport {
    /// The version the migrations reach.
    pub latest_version: usize,
    /// One entry per tenant, sorted by name.
    pub tenants: Vec<TenantStatus>,
    /// Directories that could not be listed.
    pub listing_errors: Vec<Error>,
}

impl StatusReport {
    /// Tenants at the latest version.
    pub fn current(&self) -> usize {
        self.tenants
            .iter()
            .filter(|t| t.is_current(self.latest_version))
            .count()
    }

    /// Tenants with pending migrations.
    pub fn behind(&self) -> usize {
        self.tenants
            .iter()
            .filter(|t| !t.pending.is_empty())
            .count()
    }

    /// Tenants newer than the code.
    pub fn ahead(&self) -> usize {
        self.tenants
            .iter()
            .filter(|t| t.is_ahead(self.latest_version))
            .count()
    }

    /// Tenants whose version could not be read.
    pub fn unreadable(&self) -> usize {
        self.tenants.iter().filter(|t| t.version.is_err()).count()
    }

    /// Pending migrations summed over all tenants.
    pub fn pending_migrations(&self) -> usize {
        self.tenants.iter().map(|t| t.pending.len()).sum()
    }

    /// Whether every tenant is at the latest version.
    pub fn all_current(&self) -> bool {
        self.current() == self.tenants.len() && self.listing_errors.is_empty()
    }
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let latest = self.latest_version;
        for t in &self.tenants {
            match &t.version {
                Err(e) => writeln!(f, "▸ {}: ✗ unreadable: {e}", t.tenant)?,
                Ok(v) if *v > latest => writeln!(
                    f,
                    "▸ {}: ✗ at version {v}, ahead of the {latest} migrations this program knows",
                    t.tenant
                )?,
                Ok(v) if t.pending.is_empty() => {
                    writeln!(f, "▸ {}: ✓ up to date (version {v})", t.tenant)?
                }
                Ok(v) => {
                    writeln!(
                        f,
                        "▸ {}: ⚠ {} pending migration(s) (at version {v})",
                        t.tenant,
                        t.pending.len()
                    )?;
                    for name in &t.pending {
                        writeln!(f, "    - {name}")?;
                    }
                }
            }
        }
        for e in &self.listing_errors {
            writeln!(f, "✗ {e}")?;
        }
        write!(
            f,
            "Overall: {}/{} tenants current, {} migration(s) pending",
            self.current(),
            self.tenants.len(),
            self.pending_migrations()
        )?;
        if self.ahead() > 0 {
            write!(f, ", {} ahead of the code", self.ahead())?;
        }
        if self.unreadable() > 0 {
            write!(f, ", {} unreadable", self.unreadable())?;
        }
        Ok(())
    }
}

/// Runs `work` over `items` on `jobs` scoped threads; results keep the
/// input order. `stop` ends the run early (unstarted items give `None`).
fn parallel_map<T, R>(
    items: &[T],
    jobs: usize,
    stop: &AtomicBool,
    work: impl Fn(&T) -> R + Sync,
) -> Vec<Option<R>>
where
    T: Sync,
    R: Send,
{
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(items.len()).max(1) {
            scope.spawn(|| {
                loop {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { break };
                    let result = work(item);
                    slots.lock()[i] = Some(result);
                }
            });
        }
    });
    slots.into_inner()
}

/// Lists the tenants to work on, sorted, and the directories that failed.
fn collect_tenants(
    root: &RootConfig,
    only: Option<&[String]>,
) -> Result<(Vec<TenantName>, Vec<Error>), Error> {
    let mut errors = Vec::new();
    let mut tenants = match only {
        Some(names) => names
            .iter()
            .map(|n| TenantName::new(n))
            .collect::<Result<Vec<_>, _>>()?,
        None => root
            .tenants()?
            .filter_map(|t| t.map_err(|e| errors.push(e)).ok())
            .collect(),
    };
    if only.is_none() {
        tenants.sort();
    }
    Ok((tenants, errors))
}

pub(crate) fn migrate_all(
    root: &RootConfig,
    migrations: &Migrations,
    options: &MigrateOptions,
) -> Result<MigrationReport, Error> {
    let started = Instant::now();
    let target = options.target.unwrap_or(migrations.latest_version());
    let (tenants, listing_errors) = collect_tenants(root, options.only.as_deref())?;
    let span = tracing::info_span!(
        "migrate_all",
        tenants = tenants.len(),
        target,
        jobs = options.jobs
    );
    let _entered = span.enter();
    let total = tenants.len();
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let results = parallel_map(&tenants, options.jobs, &stop, |tenant| {
        let tenant_started = Instant::now();
        if let Some(hook) = &options.before_each {
            hook(tenant);
        }
        let result = root
            .path_of(tenant.as_str())
            .and_then(|path| migrator::migrate_to(migrations, tenant, &path, target));
        let report = TenantReport::from_result(tenant.clone(), result, tenant_started);
        if let Some(e) = &report.error {
            tracing::warn!(tenant = %tenant, error = %e, "tenant migration failed");
            if options.fail_fast {
                stop.store(true, Ordering::SeqCst);
            }
        }
        if let Some(hook) = &options.after_each {
            hook(&report);
        }
        if let Some(progress) = &options.progress {
            progress(&Progress {
                done: done.fetch_add(1, Ordering::SeqCst) + 1,
                total,
                tenant: tenant.clone(),
                ok: report.error.is_none(),
            });
        }
        report
    });
    let mut reports = Vec::with_capacity(total);
    let mut skipped = Vec::new();
    for (tenant, result) in tenants.into_iter().zip(results) {
        match result {
            Some(report) => reports.push(report),
            None => skipped.push(tenant),
        }
    }
    let report = MigrationReport {
        target_version: target,
        tenants: reports,
        skipped,
        listing_errors,
        duration: started.elapsed(),
    };
    tracing::info!(
        succeeded = report.succeeded(),
        failed = report.failed(),
        "fleet migration finished"
    );
    Ok(report)
}

pub(crate) fn migration_status(
    root: &RootConfig,
    migrations: &Migrations,
    jobs: usize,
) -> Result<StatusReport, Error> {
    let (tenants, listing_errors) = collect_tenants(root, None)?;
    let latest = migrations.latest_version();
    let never = AtomicBool::new(false);
    let statuses = parallel_map(&tenants, jobs, &never, |tenant| {
        let version = root
            .path_of(tenant.as_str())
            .and_then(|path| migrator::peek_version(tenant, &path));
        let pending = match &version {
            Ok(v) if *v < latest => migrations.names_between(*v, latest),
            _ => Vec::new(),
        };
        TenantStatus {
            tenant: tenant.clone(),
            version,
            pending,
        }
    });
    Ok(StatusReport {
        latest_version: latest,
        tenants: statuses.into_iter().flatten().collect(),
        listing_errors,
    })
}
