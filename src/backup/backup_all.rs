//! `backup_all`: every tenant copied into a directory laid out like the
//! root, in parallel, on the fleet engine (`crate::fleet`).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::destination::check_outside_root;
use super::options::BackupOptions;
use super::report::{BackupOutcome, BackupReport, TenantBackup};
use crate::error::{Error, Result};
use crate::fleet::{Line, Lines, Run};
use crate::name::TenantName;
use crate::paths::RootConfig;
use crate::root_description;
use crate::storage;

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

impl Line for TenantBackup {
    fn tenant(&self) -> &TenantName {
        &self.tenant
    }
}

pub(crate) fn backup_all(
    root: &RootConfig,
    dir: &Path,
    options: &BackupOptions,
) -> Result<BackupReport> {
    check_outside_root(None, root.root_dir(), dir)?;
    let layout = RootConfig::new(dir)
        .template(root.template_str())
        .buckets(root.bucket_count());
    let run = Run::in_order(root, &options.fleet)?;
    describe_backup_dir(root, &layout)?;
    let span = tracing::info_span!("backup_all", jobs = options.fleet.jobs);
    let _entered = span.enter();
    let ran = run.each(Lines::new, |run, found| {
        let line = copy_one(root, &layout, &found.tenant);
        run.progress(&line.tenant, line.succeeded());
        Some(line)
    });
    let report = BackupReport {
        dir: dir.to_path_buf(),
        tenants: ran.rows,
        skipped: ran.skipped,
        cancelled: ran.cancelled,
        listing_errors: ran.listing_errors,
        duration: ran.duration,
    };
    tracing::info!(
        succeeded = report.succeeded(),
        failed = report.failed(),
        "backup finished"
    );
    Ok(report)
}
fn describe_backup_dir(root: &RootConfig, layout: &RootConfig) -> Result<()> {
    let record = layout.layout_record();
    // Another run may have recorded it first: it must agree too.
    record.check()?;
    record.record()?;
    // A restore from this directory checks its tenants' migrations.
    root_description::copy_history(root.root_dir(), layout.root_dir())
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
