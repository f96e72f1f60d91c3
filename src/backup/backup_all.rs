//! `backup_all`: every tenant copied into a directory laid out like the
//! root, in parallel, on the fleet engine (`crate::fleet`).
//!
//! Each worker copies a window of up to [`WINDOW`] tenants into scratch
//! files beside their destinations, makes them durable together with one
//! `syncfs` of the backup's file system (`file_systems.rs`) instead of
//! one fsync each (each costs a journal commit and a cache flush), and
//! only then renames each into place and reports it: a file in the backup
//! is never one whose bytes are not yet on disk. The directory entries
//! (the new directories, the renames) are made durable by the next
//! window's sync or, at the end of the run, by one more, before the run
//! reports anything as backed up.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::destination::check_outside_root;
use super::file_systems::FileSystems;
use super::options::BackupOptions;
use super::report::{BackupCounts, BackupOutcome, BackupReport, TenantBackup};
use crate::error::{Error, Result};
use crate::fleet::{Begun, Counting, FleetReport, Kept, Run};
use crate::fs::dir::Dir;
use crate::name::TenantName;
use crate::paths::RootConfig;
use crate::root_description;
use crate::storage::{self, Unplaced};

/// How many copies a worker makes before it syncs them: one `syncfs` per
/// window, and as many scratch files (with their directories open) held
/// per worker at most.
const WINDOW: usize = 32;

/// `backup_tenant`: one copy, synced with its directory at once.
pub(crate) fn backup_one(
    root: &RootConfig,
    tenant: &TenantName,
    dest: &Path,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    let path = root.path_of(tenant.as_str())?;
    let snapshot = storage::snapshot(tenant, (root.root_dir(), &path), dest, None)?;
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
    let file_systems = FileSystems::new();
    let new = || Counting::new(BackupCounts::new(dir.to_path_buf()));
    let ran = run.each_windowed(
        new,
        WINDOW,
        |run, found| Some(begin(run, options, (root, &layout), &found.tenant)),
        |run, copies| finish(run, options, &file_systems, copies),
    );
    sync_entries(&layout, &file_systems)?;
    let report = FleetReport::from_run(ran);
    tracing::info!(
        succeeded = report.succeeded(),
        failed = report.failed(),
        "backup finished"
    );
    Ok(report)
}

/// A tenant copied, waiting for its window's sync to be put in place.
struct Copying {
    tenant: TenantName,
    dest: PathBuf,
    started: Instant,
    copy: Unplaced,
}

/// Copies `tenant` into a scratch file at its place in the backup's
/// layout; a tenant that could not be copied has its line at once.
fn begin(
    run: &Run<'_>,
    options: &BackupOptions,
    (root, layout): (&RootConfig, &RootConfig),
    tenant: &TenantName,
) -> Begun<Copying, Kept<BackupCounts>> {
    let started = Instant::now();
    let dest = match layout.path_of(tenant.as_str()) {
        Ok(dest) => dest,
        Err(e) => return Begun::Done(line(run, options, failed(tenant, layout.root_dir(), e))),
    };
    let copied = (root.path_of(tenant.as_str())).and_then(|path| {
        storage::snapshot_unplaced(tenant, (root.root_dir(), &path), &dest, layout.root_dir())
    });
    match copied {
        Ok(copy) => Begun::Unfinished(Copying {
            tenant: tenant.clone(),
            dest,
            started,
            copy,
        }),
        Err(e) => Begun::Done(line(run, options, failed(tenant, &dest, e))),
    }
}

/// Syncs a window of copies, then puts each in place: their lines.
fn finish(
    run: &Run<'_>,
    options: &BackupOptions,
    file_systems: &FileSystems,
    copies: Vec<(usize, Copying)>,
) -> Vec<(usize, Kept<BackupCounts>)> {
    let synced = file_systems.sync(copies.iter().map(|(_, c)| c.copy.dir()));
    let put = |c: Copying| match &synced {
        Ok(()) => match c.copy.put_in_place_or_again() {
            Ok(snapshot) => {
                let outcome =
                    BackupOutcome::new(c.tenant.clone(), c.dest.clone(), snapshot, c.started);
                TenantBackup {
                    tenant: c.tenant,
                    path: c.dest,
                    outcome: Some(outcome),
                    error: None,
                }
            }
            Err(e) => failed(&c.tenant, &c.dest, e),
        },
        // The copy is removed with `c`.
        Err(e) => {
            let e = io::Error::new(e.kind(), e.to_string());
            let e = Error::io(
                Some(&c.tenant),
                &c.dest,
                "syncing the backup's file system (syncfs); back up again",
                e,
            );
            failed(&c.tenant, &c.dest, e)
        }
    };
    (copies.into_iter())
        .map(|(place, c)| (place, line(run, options, put(c))))
        .collect()
}

/// A tenant's line, told to the caller's hook and to the progress.
fn line(run: &Run<'_>, options: &BackupOptions, line: TenantBackup) -> Kept<BackupCounts> {
    if let Some(hook) = &options.after_each {
        hook(&line);
    }
    run.progress(&line.tenant, line.succeeded());
    Kept(line)
}

/// Makes every directory entry the run made in the backup directory
/// durable: one `syncfs` of each file system it wrote to (see the
/// module's comment).
///
/// # Errors
///
/// The sync failed: no copy of this run can be trusted to be there after
/// a crash, so the run fails as a whole.
fn sync_entries(layout: &RootConfig, file_systems: &FileSystems) -> Result<()> {
    let dir = layout.root_dir();
    Dir::open(dir, dir)
        .and_then(|d| file_systems.sync_every(&d))
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

fn failed(tenant: &TenantName, path: &Path, e: Error) -> TenantBackup {
    TenantBackup {
        tenant: tenant.clone(),
        path: path.to_path_buf(),
        outcome: None,
        error: Some(Arc::new(e)),
    }
}
