//! The fleet engine: migrating and inspecting every tenant, in parallel.
//!
//! `migrate_all` and `migration_status` stream: their workers take tenants
//! from the walk, each worker walking a bucket of its own at a time (or
//! from the caller's list; see `feed.rs`), read each one's version from
//! its header (`peek_found`), and fold the result into a report that
//! keeps only the tenants that need attention. Memory does not grow with
//! the number of tenants.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use super::feed::{Feed, in_report_order};
use super::migrations::Migrations;
use super::options::{MigrateOptions, Progress};
use super::report::{MigrationReport, StatusReport, TenantReport, TenantStatus};
use super::tenant::migrate_from;
use super::version::peek_found;
use crate::error::{Error, Result};
use crate::name::TenantName;
use crate::paths::{Found, RootConfig};
use crate::storage::TenantPath;

/// Runs `work` over `items` on `jobs` scoped threads; results keep the
/// input order. `stop` ends the run early (unstarted items give `None`).
/// `backup_all` runs on it.
pub(crate) fn parallel_map<T, R>(
    items: &[T],
    jobs: usize,
    stop: &(dyn Fn() -> bool + Sync),
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
                    if stop() {
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

/// Lists the tenants to work on, sorted, and the directories that failed
/// (for `backup_all`; the migration runs stream instead, see [`Feed`]).
pub(crate) fn collect_tenants(
    root: &RootConfig,
    only: Option<&[String]>,
) -> Result<(Vec<TenantName>, Vec<Arc<Error>>)> {
    let mut errors = Vec::new();
    let mut tenants = match only {
        Some(names) => names
            .iter()
            .map(|n| TenantName::new(n))
            .collect::<Result<Vec<_>, _>>()?,
        None => root
            .tenants()?
            .filter_map(|t| t.map_err(|e| errors.push(Arc::new(e))).ok())
            .collect(),
    };
    if only.is_none() {
        tenants.sort();
    }
    Ok((tenants, errors))
}

/// How many tenants a run has, for progress: the caller's list, or one
/// more walk of the root (only a run that reports progress pays for it).
fn fleet_size(root: &RootConfig, only: Option<&[String]>) -> Result<usize> {
    match only {
        Some(names) => Ok(names.len()),
        None => Ok(root.tenants()?.filter(|t| t.is_ok()).count()),
    }
}

/// A report being filled by a run's workers, and the rows it will list
/// with their places in the run.
struct Tally<R, T> {
    report: R,
    rows: Vec<(usize, T)>,
}

/// One `migrate_all` run, shared by its worker threads.
struct FleetRun<'a> {
    root: &'a Path,
    owns_dir: bool,
    migrations: &'a Migrations,
    options: &'a MigrateOptions,
    target: usize,
    walked: bool,
    total: usize,
    done: AtomicUsize,
    failures: AtomicUsize,
    stop: AtomicBool,
    tally: Mutex<Tally<MigrationReport, TenantReport>>,
}

impl FleetRun<'_> {
    /// Migrates one tenant, between its hooks, reports progress, and
    /// counts it in the worker's tally `mine`. A walked candidate that is
    /// no tenant is skipped.
    fn migrate_one(
        &self,
        mine: &mut Tally<MigrationReport, TenantReport>,
        place: usize,
        found: Found,
    ) {
        let options = self.options;
        let started = Instant::now();
        let Some(before) = peek_found(&found, self.root, self.walked) else {
            return;
        };
        let tenant = found.tenant;
        if let Some(hook) = &options.before_each {
            hook(&tenant);
        }
        let at = TenantPath::new(self.root, &found.path, self.owns_dir);
        let target = (self.target, options.allow_down);
        let result = migrate_from(self.migrations, &tenant, at, target, before, started);
        let report = TenantReport::from_result(tenant, result, started);
        if let Some(e) = &report.error {
            // The report carries the failure; callers print it once.
            tracing::info!(tenant = %report.tenant, error = %e, "tenant migration failed");
            let failures = self.failures.fetch_add(1, Ordering::SeqCst) + 1;
            if options.max_failures.is_some_and(|limit| failures >= limit) {
                self.stop.store(true, Ordering::SeqCst);
            }
        }
        if let Some(hook) = &options.after_each {
            hook(&report);
        }
        self.progress(&report);
        if mine.report.count(&report) {
            mine.rows.push((place, report));
        }
    }

    fn progress(&self, report: &TenantReport) {
        if let Some(progress) = &self.options.progress {
            let done = self.done.fetch_add(1, Ordering::SeqCst) + 1;
            progress(&Progress {
                done,
                // Tenants created since the count was taken are counted in.
                total: self.total.max(done),
                tenant: report.tenant.clone(),
                ok: report.error.is_none(),
            });
        }
    }

    /// Whether the failure limit (`max_failures`, `fail_fast`) or the
    /// caller's cancel flag stops the run.
    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || self.cancelled()
    }

    fn cancelled(&self) -> bool {
        (self.options.cancel.as_ref()).is_some_and(|c| c.load(Ordering::SeqCst))
    }
}

/// Migrates every tenant (or `options.only`) in parallel; see
/// [`TenantManager::migrate_all`](crate::TenantManager::migrate_all).
pub(crate) fn migrate_all(
    root: &RootConfig,
    migrations: &Migrations,
    options: &MigrateOptions,
) -> Result<MigrationReport> {
    let started = Instant::now();
    let target = options.target.unwrap_or(migrations.latest_version());
    let only = options.only.as_deref();
    let feed = Feed::new(root, only)?;
    let total = match options.progress {
        Some(_) => fleet_size(root, only)?,
        None => 0,
    };
    let span = tracing::info_span!("migrate_all", target, jobs = options.jobs);
    let _entered = span.enter();
    let run = FleetRun {
        root: feed.root,
        owns_dir: root.owns_directory()?,
        migrations,
        options,
        target,
        walked: feed.walked,
        total,
        done: AtomicUsize::new(0),
        failures: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        tally: Mutex::new(Tally {
            report: MigrationReport::new(target),
            rows: Vec::new(),
        }),
    };
    let start = || Tally {
        report: MigrationReport::new(target),
        rows: Vec::new(),
    };
    let work = |mine: &mut Tally<_, _>, place, found| run.migrate_one(mine, place, found);
    let done = |mine: Tally<MigrationReport, TenantReport>| {
        let mut tally = run.tally.lock();
        tally.report.absorb(&mine.report);
        tally.rows.extend(mine.rows);
    };
    feed.run(options.jobs, &|| run.should_stop(), &start, &work, &done);
    let cancelled = run.cancelled();
    let limit_reached = run.stop.load(Ordering::SeqCst);
    let Tally { mut report, rows } = run.tally.into_inner();
    report.tenants = in_report_order(rows, feed.walked, |t| &t.tenant);
    (report.skipped, report.listing_errors) = feed.finish();
    report.cancelled = cancelled && !report.skipped.is_empty();
    report.stopped_by_failures = limit_reached && !report.cancelled && !report.skipped.is_empty();
    report.duration = started.elapsed();
    tracing::info!(
        succeeded = report.succeeded(),
        failed = report.failed(),
        "fleet migration finished"
    );
    Ok(report)
}

/// The results of the tenants attempted, and the tenants left unstarted
/// (`max_failures`, a cancel).
pub(crate) fn split_skipped<R>(
    tenants: Vec<TenantName>,
    results: Vec<Option<R>>,
) -> (Vec<R>, Vec<TenantName>) {
    let mut reports = Vec::with_capacity(tenants.len());
    let mut skipped = Vec::new();
    for (tenant, result) in tenants.into_iter().zip(results) {
        match result {
            Some(report) => reports.push(report),
            None => skipped.push(tenant),
        }
    }
    (reports, skipped)
}

/// Every tenant's schema version and pending migrations, read in parallel
/// on `jobs` threads; `each` (if any) is given every row, one at a time.
pub(crate) fn migration_status(
    root: &RootConfig,
    migrations: &Migrations,
    jobs: usize,
    each: Option<&mut (dyn FnMut(&TenantStatus) + Send)>,
) -> Result<StatusReport> {
    let feed = Feed::new(root, None)?;
    let each = each.map(Mutex::new);
    let latest = migrations.latest_version();
    let tally = Mutex::new(Tally {
        report: StatusReport::new(latest),
        rows: Vec::new(),
    });
    let start = || Tally {
        report: StatusReport::new(latest),
        rows: Vec::new(),
    };
    let work = |mine: &mut Tally<StatusReport, TenantStatus>, place, found: Found| {
        let Some(version) = peek_found(&found, feed.root, feed.walked) else {
            return;
        };
        let row = TenantStatus::new(found.tenant, version.map_err(Arc::new), migrations);
        if let Some(each) = &each {
            (each.lock())(&row);
        }
        if mine.report.count(&row) {
            mine.rows.push((place, row));
        }
    };
    let done = |mine: Tally<StatusReport, TenantStatus>| {
        let mut tally = tally.lock();
        tally.report.absorb(&mine.report);
        tally.rows.extend(mine.rows);
    };
    feed.run(jobs, &|| false, &start, &work, &done);
    let Tally { mut report, rows } = tally.into_inner();
    report.tenants = in_report_order(rows, feed.walked, |t| &t.tenant);
    report.listing_errors = feed.finish().1;
    Ok(report)
}
