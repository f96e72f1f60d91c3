//! `backup_all`: every tenant copied into a directory laid out like the
//! root, in parallel, on the fleet engine (`crate::fleet`).
//!
//! Each worker copies a window of up to [`WINDOW`] tenants into the run's
//! staging directory (`staging.rs`), makes them durable together with one
//! `syncfs` of the backup's file system instead of one fsync each (each
//! costs a journal commit and a cache flush), and only then moves each
//! into its place and reports it: a file in the backup is never one whose
//! bytes are not yet on disk, and a run killed midway leaves its unsynced
//! copies where no listing looks. The directory entries (the tenants'
//! directories, the renames) are made durable by the next window's sync
//! or, at the end of the run, by one more, before the run returns its
//! report.
//!
//! Before Linux 5.8, `syncfs` flushes but does not report a write that
//! failed, so a run there would call a copy that never reached the disk
//! a backup: there each copy is synced by itself (`fsync`, which does
//! report it) and moved into place, as `backup_tenant` does.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::destination::check_outside_root;
use super::lineage::Lineages;
use super::options::BackupOptions;
use super::report::{BackupCounts, BackupOutcome, BackupReport, TenantBackup};
use super::staging::Staging;
use crate::error::{Error, Result};
use crate::fleet::{Begun, Counting, FleetReport, Kept, Run};
use crate::fs::dir::Dir;
use crate::fs::sys;
use crate::name::TenantName;
use crate::paths::{INTERNAL_DIR, RootConfig};
use crate::root_description;
use crate::storage::{self, Staged, Within};

/// How many copies a worker makes before it syncs them: one `syncfs` per
/// window, and as many copies waiting per worker at most.
const WINDOW: usize = 32;

/// `backup_tenant`: one copy, synced with its directory at once.
pub(crate) fn backup_one(
    root: &RootConfig,
    tenant: &TenantName,
    dest: &Path,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    let path = root.path_of(tenant.as_str())?;
    let owns_dir = root.owns_directory()?;
    let how = (None, storage::Verify::No);
    let snapshot = storage::snapshot(tenant, (root.root_dir(), &path), dest, how)
        .map_err(|e| diagnosed(root, owns_dir, (tenant, &path), e))?;
    Ok(BackupOutcome::new(
        tenant.clone(),
        dest.to_path_buf(),
        snapshot,
        started,
    ))
}

/// What every tenant of one run shares.
struct Backup<'a> {
    root: &'a RootConfig,
    layout: RootConfig,
    options: &'a BackupOptions,
    staging: Staging,
    owns_dir: bool,
    lineages: Lineages,
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
    let staging = Staging::new(dir).map_err(|e| {
        let records = dir.join(INTERNAL_DIR);
        Error::io(
            None,
            records,
            "making the backup run's staging directory",
            e,
        )
    })?;
    let owns_dir = root.owns_directory()?;
    let backup = Backup {
        root,
        layout,
        options,
        staging,
        owns_dir,
        lineages: Lineages::open(dir),
    };
    let span = tracing::info_span!("backup_all", jobs = options.fleet.jobs);
    let _entered = span.enter();
    // Opened before the first copy: its last sync reports every write
    // error of the run (see `Staging::open_for_sync`).
    let whole_run = open_for_sync(&backup.layout)?;
    let new = || Counting::new(BackupCounts::new(dir.to_path_buf()));
    let ran = match sys::syncfs_reports_errors() {
        true => run.each_windowed(
            new,
            (WINDOW, || backup.staging.open_for_sync()),
            |run, found| Some(backup.begin(run, &found.tenant)),
            |run, synced_through, copies| backup.finish(run, synced_through, copies),
        ),
        // Its `syncfs` would not say that a copy failed to reach the disk.
        false => run.each(new, |run, found| {
            Some(backup.copy_synced(run, &found.tenant))
        }),
    };
    backup.lineages.finish();
    sync_entries(&backup.layout, &whole_run)?;
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
    copy: Staged,
    lineage: Option<String>,
}

impl Backup<'_> {
    fn within(&self) -> Within<'_> {
        Within {
            base: self.layout.root_dir(),
            owns_dir: self.owns_dir,
        }
    }

    fn verify(&self) -> storage::Verify {
        match self.options.verify {
            true => storage::Verify::Integrity,
            false => storage::Verify::No,
        }
    }

    /// Copies `tenant` into the staging directory; a tenant that could not
    /// be copied has its line at once.
    fn begin(&self, run: &Run<'_>, tenant: &TenantName) -> Begun<Copying, Kept<BackupCounts>> {
        let started = Instant::now();
        let dest = match self.destination(tenant) {
            Ok(dest) => dest,
            Err(line) => return Begun::Done(self.line(run, line)),
        };
        let copied = self.copied(tenant, |source| {
            storage::snapshot_staged(tenant, source, self.staging.dir(), self.verify())
        });
        match copied {
            Ok((copy, lineage)) => Begun::Unfinished(Copying {
                lineage,
                tenant: tenant.clone(),
                dest,
                started,
                copy,
            }),
            Err(e) => Begun::Done(self.line(run, failed(tenant, &dest, e))),
        }
    }

    /// Copies `tenant` into its place and syncs it there at once (as
    /// `backup_tenant` does): the run on a kernel whose `syncfs` reports
    /// no write error (see `sys::syncfs_reports_errors`).
    fn copy_synced(&self, run: &Run<'_>, tenant: &TenantName) -> Kept<BackupCounts> {
        let started = Instant::now();
        let dest = match self.destination(tenant) {
            Ok(dest) => dest,
            Err(line) => return self.line(run, line),
        };
        let copied = self.copied(tenant, |source| {
            storage::snapshot(tenant, source, &dest, (Some(self.within()), self.verify()))
        });
        let line = match copied {
            Ok((snapshot, lineage)) => {
                self.record_lineage(tenant, lineage.as_deref());
                succeeded(tenant, dest, snapshot, started)
            }
            Err(e) => failed(tenant, &dest, e),
        };
        self.line(run, line)
    }

    /// `copy` of `tenant` from (the root, its database's path), a failure
    /// said as every answer says it (see [`diagnosed`]), and the lineage
    /// the copy is of (see `lineage.rs`): the tenant's, looked at before
    /// and after the copy; none if it changed meanwhile (destroyed and
    /// made again: which one was copied is not known, and the copy is
    /// matched by its name).
    fn copied<T>(
        &self,
        tenant: &TenantName,
        copy: impl FnOnce((&Path, &Path)) -> Result<T>,
    ) -> Result<(T, Option<String>)> {
        let path = self.root.path_of(tenant.as_str())?;
        let lineage = || match self.owns_dir {
            true => path.parent().and_then(Lineages::of),
            false => None,
        };
        let before = lineage();
        let copied = copy((self.root.root_dir(), &path))
            .map_err(|e| diagnosed(self.root, self.owns_dir, (tenant, &path), e))?;
        Ok((copied, before.filter(|b| lineage().as_ref() == Some(b))))
    }

    fn record_lineage(&self, tenant: &TenantName, lineage: Option<&str>) {
        if let Some(lineage) = lineage {
            self.lineages.record(tenant, lineage);
        }
    }

    /// Where `tenant`'s copy goes, or its failed line.
    fn destination(&self, tenant: &TenantName) -> Result<PathBuf, TenantBackup> {
        (self.layout.path_of(tenant.as_str()))
            .map_err(|e| failed(tenant, self.layout.root_dir(), e))
    }

    /// Syncs a window of copies, through the staging directory opened
    /// before the window's first copy, then puts each in place: their
    /// lines.
    fn finish(
        &self,
        run: &Run<'_>,
        synced_through: io::Result<Dir>,
        copies: Vec<(usize, Copying)>,
    ) -> Vec<(usize, Kept<BackupCounts>)> {
        let staging = self.staging.dir();
        let synced = synced_through.and_then(|d| sys::sync_file_system(d.fd(), d.path()));
        let put = |c: Copying| match &synced {
            Ok(()) => match c.copy.place(staging, &c.dest, self.within()) {
                Ok(snapshot) => {
                    self.record_lineage(&c.tenant, c.lineage.as_deref());
                    succeeded(&c.tenant, c.dest, snapshot, c.started)
                }
                Err(e) => failed(&c.tenant, &c.dest, e),
            },
            Err(e) => {
                c.copy.discard(staging);
                let operation = "syncing the backup's file system (syncfs); back up again";
                failed(
                    &c.tenant,
                    &c.dest,
                    Error::io(Some(&c.tenant), &c.dest, operation, same(e)),
                )
            }
        };
        (copies.into_iter())
            .map(|(place, c)| (place, self.line(run, put(c))))
            .collect()
    }

    /// A tenant's line, told to the caller's hook and to the progress.
    fn line(&self, run: &Run<'_>, line: TenantBackup) -> Kept<BackupCounts> {
        if let Some(hook) = &self.options.after_each {
            hook(&line);
        }
        run.progress(&line.tenant, line.succeeded());
        Kept(line)
    }
}

/// Why `tenant`, at `path`, was not copied: a tenant found without a
/// database whose own directory is there is damaged, not gone (`tenants()`
/// lists it, and a run that called it destroyed would report success
/// without it).
fn diagnosed(
    root: &RootConfig,
    owns_dir: bool,
    (tenant, path): (&TenantName, &Path),
    e: Error,
) -> Error {
    storage::diagnosed(
        tenant,
        storage::TenantPath::new(root.root_dir(), path, owns_dir),
        e,
    )
}

/// The same error again, for each tenant of a window: its OS error code
/// kept (`ENOSPC`, `EIO`), or else its kind and message.
fn same(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// The backup directory, opened for the run's last sync.
fn open_for_sync(layout: &RootConfig) -> Result<Dir> {
    let dir = layout.root_dir();
    Dir::open(dir, dir).map_err(|e| Error::io(None, dir, "opening the backup directory", e))
}

/// Makes every directory entry the run made in the backup directory
/// durable: one `syncfs` of its file system (see the module's comment),
/// through `whole_run`, opened before the run's first copy.
///
/// # Errors
///
/// The sync failed, or a write anywhere on the file system failed during
/// the run: no copy of this run can be trusted to be there after a crash,
/// so the run fails as a whole.
fn sync_entries(layout: &RootConfig, whole_run: &Dir) -> Result<()> {
    let dir = layout.root_dir();
    sys::sync_file_system(whole_run.fd(), dir)
        .map_err(|e| Error::io(None, dir, "making the backup durable (syncfs; a write failed during the run, or this sync did); back up again into a new directory", e))
}

fn describe_backup_dir(root: &RootConfig, layout: &RootConfig) -> Result<()> {
    let record = layout.layout_record();
    // Another run may have recorded it first: it must agree too.
    record.check()?;
    record.record()?;
    // A restore from this directory checks its tenants' migrations.
    root_description::copy_history(root.root_dir(), layout.root_dir())
}

fn succeeded(
    tenant: &TenantName,
    dest: PathBuf,
    snapshot: storage::Snapshot,
    started: Instant,
) -> TenantBackup {
    TenantBackup {
        tenant: tenant.clone(),
        path: dest.clone(),
        outcome: Some(BackupOutcome::new(tenant.clone(), dest, snapshot, started)),
        error: None,
    }
}

fn failed(tenant: &TenantName, path: &Path, e: Error) -> TenantBackup {
    TenantBackup {
        tenant: tenant.clone(),
        path: path.to_path_buf(),
        outcome: None,
        error: Some(Arc::new(e)),
    }
}
