//! `backup_all`: every tenant copied into a directory laid out like the
//! root, in parallel, on the fleet engine's `parallel_map`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::destination::check_outside_root;
use super::options::BackupOptions;
use super::report::{BackupOutcome, BackupReport, TenantBackup};
use crate::error::{Error, Result};
use crate::migrate::{self, Progress, collect_tenants, parallel_map, split_skipped};
use crate::name::TenantName;
use crate::paths::RootConfig;
use crate::storage;

/// One tenant's copy, timed; see [`TenantManager::backup_tenant`](crate::TenantManager::backup_tenant).
pub(crate) fn backup_one(
    root: &RootConfig,
    tenant: &TenantName,
    dest: &Path,
    within: Option<&Path>,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    let path = root.path_of(tenant.as_str())?;
    let snapshot = storage::snapshot(tenant, root.root_dir(), &path, dest, within)?;
    Ok(BackupOutcome::new(
        tenant.clone(),
        dest.to_path_buf(),
        snapshot,
        started,
    ))
}

/// Copies every tenant (or `options.only`) of `root` into `dir`, laid out
/// with `root`'s template and bucket count.
pub(crate) fn backup_all(
    root: &RootConfig,
    dir: &Path,
    options: &BackupOptions,
) -> Result<BackupReport> {
    let started = Instant::now();
    check_outside_root(None, root.root_dir(), dir)?;
    let layout = RootConfig::new(dir)
        .template(root.template_str())
        .buckets(root.bucket_count());
    let (tenants, listing_errors) = collect_tenants(root, options.only.as_deref())?;
    describe_backup_dir(root, &layout)?;
    let span = tracing::info_span!("backup_all", tenants = tenants.len(), jobs = options.jobs);
    let _entered = span.enter();
    let done = AtomicUsize::new(0);
    let cancelled = || (options.cancel.as_ref()).is_some_and(|c| c.load(Ordering::SeqCst));
    let results = parallel_map(&tenants, options.jobs, &cancelled, |tenant| {
        let line = copy_one(root, &layout, tenant);
        if let Some(progress) = &options.progress {
            progress(&Progress {
                done: done.fetch_add(1, Ordering::SeqCst) + 1,
                total: tenants.len(),
                tenant: tenant.clone(),
                ok: line.succeeded(),
            });
        }
        line
    });
    let (lines, skipped) = split_skipped(tenants, results);
    let report = BackupReport {
        dir: dir.to_path_buf(),
        tenants: lines,
        cancelled: cancelled() && !skipped.is_empty(),
        skipped,
        listing_errors,
        duration: started.elapsed(),
    };
    tracing::info!(
        succeeded = report.succeeded(),
        failed = report.failed(),
        "backup finished"
    );
    Ok(report)
}

/// Records the layout in the backup directory, as a root describes itself
/// (`.tenanted/layout`), so that a manager or a listing that reads it with
/// another layout fails clearly instead of finding nothing; a directory
/// already recorded with another layout is refused before anything is
/// copied into it. The root's migration history goes with it.
fn describe_backup_dir(root: &RootConfig, layout: &RootConfig) -> Result<()> {
    layout.check_recorded_layout()?;
    let record = layout.layout_record();
    if crate::fs::record_once(&layout.layout_record_path(), &record)?.is_some() {
        // Another run recorded it first: it must agree too.
        layout.check_recorded_layout()?;
    }
    // A restore from this directory checks its tenants' migrations.
    migrate::copy_history(root.root_dir(), layout.root_dir())
}

/// One tenant's line: its copy at its place in the backup's layout.
fn copy_one(root: &RootConfig, layout: &RootConfig, tenant: &TenantName) -> TenantBackup {
    let dest = match layout.path_of(tenant.as_str()) {
        Ok(dest) => dest,
        Err(e) => return failed(tenant, layout.root_dir().to_path_buf(), e),
    };
    match backup_one(root, tenant, &dest, Some(layout.root_dir())) {
        Ok(outcome) => TenantBackup {
            tenant: tenant.clone(),
            path: dest,
            outcome: Some(outcome),
            error: None,
        },
        Err(e) => {
            // The report carries the failure; callers print it once.
            tracing::info!(tenant = %tenant, error = %e, "tenant backup failed");
            failed(tenant, dest, e)
        }
    }
}

fn failed(tenant: &TenantName, path: std::path::PathBuf, e: Error) -> TenantBackup {
    TenantBackup {
        tenant: tenant.clone(),
        path,
        outcome: None,
        error: Some(Arc::new(e)),
    }
}
