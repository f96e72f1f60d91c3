//! `migrate_all` and `migration_status` on the fleet engine
//! (`crate::fleet`): each tenant's version read from its header
//! (`peek_found`), migrated if it is not at the target, and folded into a
//! report that keeps only the tenants that need attention. Memory does not
//! grow with the number of tenants.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use super::migrations::Migrations;
use super::options::MigrateOptions;
use super::report::{MigrationCounts, MigrationReport, StatusReport, TenantReport, TenantStatus};
use super::tenant::{Prelude, migrate_from};
use super::version::{Reading, peek_found, peek_version};
use crate::error::{Error, Result};
use crate::fleet::{Counting, FleetOptions, FleetReport, KEPT_FAILURES, Kept, Line, Run, Tally};
use crate::name::TenantName;
use crate::paths::{Found, RootConfig};
use crate::storage::{TenantPath, diagnosed};

impl Tally for StatusReport {
    type Row = TenantStatus;

    fn count(&mut self, row: &TenantStatus) -> bool {
        // A run over a fleet a migration behind never holds a row per
        // tenant.
        let wanted = StatusReport::count(self, row);
        self.kept.keeps(wanted)
    }

    fn absorb(&mut self, other: &Self) {
        StatusReport::absorb(self, other);
    }
}

impl Line for TenantStatus {
    fn tenant(&self) -> &TenantName {
        &self.tenant
    }
}

/// What every tenant of one `migrate_all` run shares.
struct Migrating<'a> {
    migrations: &'a Migrations,
    options: &'a MigrateOptions,
    prelude: Prelude<'a>,
    target: usize,
    owns_dir: bool,
    failures: AtomicUsize,
    /// Told of every tenant taken down (its pools must check it again).
    moved_down: &'a (dyn Fn(&TenantName) + Sync),
}

impl Migrating<'_> {
    /// Migrates one tenant between its hooks and reports progress; `None`
    /// for a walked candidate that is no tenant.
    fn tenant(&self, run: &Run<'_>, found: Found) -> Option<TenantReport> {
        let options = self.options;
        let started = Instant::now();
        let before = peek_found(&found, run.root(), (run.walked(), self.owns_dir))?;
        let tenant = found.tenant;
        if let Some(hook) = &options.before_each {
            hook(&tenant);
        }
        let at = TenantPath::new(run.root(), &found.path, self.owns_dir);
        let result = match before {
            // Listed without its database: nothing to lock or migrate.
            Err(damaged @ Error::MissingDatabase { .. }) => Err(damaged),
            before => {
                let to = (self.target, options.allow_down.for_tenant(&tenant), before);
                migrate_from(self.migrations, &tenant, at, to, started, self.prelude)
            }
        };
        let report = TenantReport::from_result(tenant, result, started);
        if let Some(e) = &report.error {
            // The report carries the failure; callers print it once.
            tracing::info!(tenant = %report.tenant, error = %e, "tenant migration failed");
            let failures = self.failures.fetch_add(1, Ordering::SeqCst) + 1;
            if options.max_failures.is_some_and(|limit| failures >= limit) {
                run.stop();
            }
        }
        if report.to < report.from {
            (self.moved_down)(&report.tenant);
        }
        if let Some(hook) = &options.after_each {
            hook(&report);
        }
        run.progress(&report.tenant, report.error.is_none());
        Some(report)
    }
}

/// Migrates every tenant (or `options.only`) in parallel; see
/// [`TenantManager::migrate_all`](crate::TenantManager::migrate_all).
pub(crate) fn migrate_all(
    root: &RootConfig,
    migrations: &Migrations,
    options: &MigrateOptions,
    prelude: Prelude<'_>,
    moved_down: &(dyn Fn(&TenantName) + Sync),
) -> Result<MigrationReport> {
    let target = options.target.unwrap_or(migrations.latest_version());
    // Refused before any tenant is changed, not once per tenant (each
    // tenant's run checks what it would run, see `tenant.rs`): a run to
    // the latest version applies whatever a new tenant's build does.
    if target == migrations.latest_version() {
        migrations.check_on_empty((0, target))?;
    }
    let run = Run::new(root, &options.fleet)?;
    let span = tracing::info_span!("migrate_all", target, jobs = options.fleet.jobs);
    let _entered = span.enter();
    let migrating = Migrating {
        migrations,
        options,
        prelude,
        target,
        owns_dir: root.owns_directory()?,
        failures: AtomicUsize::new(0),
        moved_down,
    };
    let new = || Counting::new(MigrationCounts::new(target));
    let ran = run.each(new, |run, found| migrating.tenant(run, found).map(Kept));
    let report = FleetReport::from_run(ran);
    tracing::info!(
        succeeded = report.succeeded(),
        failed = report.failed(),
        "fleet migration finished"
    );
    Ok(report)
}

/// One tenant's schema version and pending migrations, read as
/// [`migration_status`] reads each tenant's.
///
/// # Errors
///
/// [`Error::TenantDoesNotExist`] (or `TenantBeingDestroyed`) for a tenant
/// that is not there, [`Error::NotADirectory`] for one a link stands in
/// the way of: neither is listed. A tenant that is there but cannot be
/// read (damaged, its database missing) is a row with its error, as in
/// the fleet's report.
pub(crate) fn tenant_status(
    root: &RootConfig,
    migrations: &Migrations,
    tenant: TenantName,
) -> Result<TenantStatus> {
    let path = root.path_of(tenant.as_str())?;
    let at = TenantPath::new(root.root_dir(), &path, root.owns_directory()?);
    let version = peek_version(&tenant, (root.root_dir(), &path), Reading::Waiting)
        .map_err(|e| diagnosed(&tenant, at, e));
    match version {
        Err(
            e @ (Error::TenantDoesNotExist { .. }
            | Error::TenantBeingDestroyed { .. }
            | Error::NotADirectory { .. }),
        ) => Err(e),
        version => Ok(TenantStatus::new(
            tenant,
            version.map_err(Arc::new),
            migrations,
        )),
    }
}

/// Every tenant's schema version and pending migrations, read in parallel
/// on `jobs` threads; `each` (if any) is given every row, one at a time.
pub(crate) fn migration_status(
    root: &RootConfig,
    migrations: &Migrations,
    jobs: usize,
    each: Option<&mut (dyn FnMut(&TenantStatus) + Send)>,
) -> Result<StatusReport> {
    let each = each.map(Mutex::new);
    let latest = migrations.latest_version();
    let owns_dir = root.owns_directory()?;
    let mut options = FleetOptions::new();
    options.set_jobs(jobs);
    let row = |run: &Run<'_>, found: Found| {
        let version = peek_found(&found, run.root(), (run.walked(), owns_dir))?;
        let row = TenantStatus::new(found.tenant, version.map_err(Arc::new), migrations);
        if let Some(each) = &each {
            (each.lock())(&row);
        }
        Some(row)
    };
    let ran = Run::new(root, &options)?.each(|| StatusReport::new(latest), row);
    let mut report = ran.tally;
    report.tenants = ran.rows;
    report.tenants.truncate(KEPT_FAILURES);
    report.listing_errors = ran.listing_errors;
    Ok(report)
}
