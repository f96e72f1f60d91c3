//! `backup_all`: every tenant copied into a directory laid out like the
//! root, in parallel, on the fleet engine (`crate::fleet`).
//!
//! Each copy is synced before its tenant is counted, as `backup_tenant`'s
//! is; the directory entries (the new directories, the renames into them)
//! are made durable together at the end of the run, with one `syncfs` of
//! the backup's file system instead of one directory fsync per tenant
//! (each costs a journal commit and a cache flush), before the run
//! reports anything as backed up.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::destination::check_outside_root;
use super::options::BackupOptions;
use super::report::{BackupCounts, BackupOutcome, BackupReport, TenantBackup};
use crate::error::{Error, Result};
use crate::fleet::{Counting, FleetReport, Kept, Run};
use crate::fs::dir::Dir;
use crate::fs::sys;
use crate::name::TenantName;
use crate::paths::RootConfig;
use crate::root_description;
use crate::storage::{self, DirSyncs};

/// `backup_tenant`: one copy, its directory synced at once.
pub(crate) fn backup_one(
    root: &RootConfig,
    tenant: &TenantName,
    dest: &Path,
) -> Result<BackupOutcome> {
    copy_to(root, tenant, dest, None, DirSyncs::Now)
}

fn copy_to(
    root: &RootConfig,
    tenant: &TenantName,
    dest: &Path,
    within: Option<&Path>,
    dirs: DirSyncs,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    let path = root.path_of(tenant.as_str())?;
    let snapshot = storage::snapshot(tenant, root.root_dir(), &path, dest, within, dirs)?;
    Ok(BackupOutcome::new(
        tenant.clone(),
        dest.to_path_buf(),
        snapshot,
        started,
    ))
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
    let new = || Counting::new(BackupCounts::new(dir.to_path_buf()));
    let ran = run.each(new, |run, found| {
        let line = copy_one(root, &layout, &found.tenant);
        if let Some(hook) = &options.after_each {
            hook(&line);
        }
        run.progress(&line.tenant, line.succeeded());
        Some(Kept(line))
    });
    sync_entries(&layout)?;
    let report = FleetReport::from_run(ran);
    tracing::info!(
        succeeded = report.succeeded(),
        failed = report.failed(),
        "backup finished"
    );
    Ok(report)
}

/// Makes every directory entry the run made in the backup directory
/// durable: one `syncfs` of its file system (see the module's comment).
///
/// # Errors
///
/// The sync failed: no copy of this run can be trusted to be there after
/// a crash, so the run fails as a whole.
fn sync_entries(layout: &RootConfig) -> Result<()> {
    let dir = layout.root_dir();
    Dir::open(dir, dir)
        .and_then(|d| sys::sync_file_system(d.fd(), dir))
        .map_err(|e| Error::io(None, dir, "making the backup's directories durable (syncfs); back up again into a new directory", e))
}

fn describe_backup_dir(root: &RootConfig, layout: &RootConfig) -> Result<()> {
    let record = layout.layout_record();
    // Another run may have recorded it first: it must agree too.
    record.check()?;
    record.record()?;
    // A restore from this directory checks its tenants' migrations.
    root_description::copy_history(root.root_dir(), layout.root_dir())
}

/// One tenant's line: its copy at its place in the backup's layout, its
/// directories made durable at the end of the run.
fn copy_one(root: &RootConfig, layout: &RootConfig, tenant: &TenantName) -> TenantBackup {
    let dest = match layout.path_of(tenant.as_str()) {
        Ok(dest) => dest,
        Err(e) => return failed(tenant, layout.root_dir().to_path_buf(), e),
    };
    let within = Some(layout.root_dir());
    match copy_to(root, tenant, &dest, within, DirSyncs::AtTheEnd) {
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
