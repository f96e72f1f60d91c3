//! The fleet engine: migrating and inspecting every tenant, in parallel.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use super::migrations::Migrations;
use super::options::{MigrateOptions, Progress};
use super::report::{MigrationReport, StatusReport, TenantReport, TenantStatus};
use super::tenant::migrate_to;
use super::version::peek_version;
use crate::error::Error;
use crate::name::TenantName;
use crate::paths::RootConfig;

/// Runs `work` over `items` on `jobs` scoped threads; results keep the
/// input order. `stop` ends the run early (unstarted items give `None`).
/// `backup_all` runs on it too.
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

/// Lists the tenants to work on, sorted, and the directories that failed.
pub(crate) fn collect_tenants(
    root: &RootConfig,
    only: Option<&[String]>,
) -> Result<(Vec<TenantName>, Vec<Arc<Error>>), Error> {
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

/// One `migrate_all` run, shared by its worker threads.
struct FleetRun<'a> {
    root: &'a RootConfig,
    migrations: &'a Migrations,
    options: &'a MigrateOptions,
    target: usize,
    total: usize,
    done: AtomicUsize,
    stop: AtomicBool,
}

impl FleetRun<'_> {
    /// Migrates one tenant, between its hooks, and reports progress.
    fn migrate_one(&self, tenant: &TenantName) -> TenantReport {
        let options = self.options;
        let tenant_started = Instant::now();
        if let Some(hook) = &options.before_each {
            hook(tenant);
        }
        let result = self.root.path_of(tenant.as_str()).and_then(|path| {
            migrate_to(
                self.migrations,
                tenant,
                self.root.root_dir(),
                &path,
                self.target,
            )
        });
        let report = TenantReport::from_result(tenant.clone(), result, tenant_started);
        if let Some(e) = &report.error {
            // The report carries the failure; callers print it once.
            tracing::info!(tenant = %tenant, error = %e, "tenant migration failed");
            if options.fail_fast {
                self.stop.store(true, Ordering::SeqCst);
            }
        }
        if let Some(hook) = &options.after_each {
            hook(&report);
        }
        if let Some(progress) = &options.progress {
            progress(&Progress {
                done: self.done.fetch_add(1, Ordering::SeqCst) + 1,
                total: self.total,
                tenant: tenant.clone(),
                ok: report.error.is_none(),
            });
        }
        report
    }

    /// Whether `fail_fast` or the caller's cancel flag stops the run.
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
    let run = FleetRun {
        root,
        migrations,
        options,
        target,
        total: tenants.len(),
        done: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    };
    let results = parallel_map(&tenants, options.jobs, &|| run.should_stop(), |t| {
        run.migrate_one(t)
    });
    let (reports, skipped) = split_skipped(tenants, results);
    let report = MigrationReport {
        cancelled: run.cancelled() && !skipped.is_empty(),
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

/// The results of the tenants attempted, and the tenants left unstarted
/// (`fail_fast`, a cancel).
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
/// on `jobs` threads.
pub(crate) fn migration_status(
    root: &RootConfig,
    migrations: &Migrations,
    jobs: usize,
) -> Result<StatusReport, Error> {
    let (tenants, listing_errors) = collect_tenants(root, None)?;
    let latest = migrations.latest_version();
    let statuses = parallel_map(&tenants, jobs, &|| false, |tenant| {
        let version = root
            .path_of(tenant.as_str())
            .and_then(|path| peek_version(tenant, root.root_dir(), &path))
            .map_err(Arc::new);
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
