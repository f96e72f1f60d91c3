//! The fleet usage run: every tenant's database and `-wal` size, pages,
//! free pages, last write, size limit and suspension, read from its files
//! without SQLite (`storage::database_usage`: the calls of a header read)
//! on the fleet engine (`fleet::Run`). It streams: every row goes to the
//! caller's callback as it is read, and each worker keeps only its best
//! rows (`usage_report::UsageTally`), so memory does not grow with the
//! fleet.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use super::registry::Limits;
use super::usage_report::{TenantUsage, UsageLine, UsageOrder, UsageReport, UsageTally};
use crate::error::{Error, Result};
use crate::fleet::{FleetOptions, Run};
use crate::fs::{Dir, Patience};
use crate::name::TenantName;
use crate::paths::{Found, RootConfig};
use crate::storage::{self, FileUsage, Settled, TenantPath, Usage};

/// Reads every tenant's usage on `jobs` threads, the record of limits
/// looked at first; `each` (if any) gets every row, one call at a time.
pub(crate) fn usage(
    root: &RootConfig,
    limits: &Limits,
    (order, top): (UsageOrder, usize),
    jobs: usize,
    each: Option<&mut (dyn FnMut(&TenantUsage) + Send)>,
) -> Result<UsageReport> {
    limits.refresh();
    let owns_dir = root.owns_directory()?;
    let each = each.map(Mutex::new);
    let mut options = FleetOptions::new();
    options.set_jobs(jobs);
    let work = |run: &Run<'_>, found: Found| {
        let line = line(run.root(), found, (limits, owns_dir))?;
        if let (Some(each), UsageLine::Read(row)) = (&each, &line) {
            (each.lock())(row);
        }
        Some(line)
    };
    let ran = Run::new(root, &options)?.each(|| UsageTally::new(order, top), work);
    let mut report = ran.tally.report;
    report.failed.sort_by(|a, b| a.0.cmp(&b.0));
    report.listing_errors = ran.listing_errors;
    report.duration = ran.duration;
    Ok(report)
}

/// The line of the tenant `found` beneath `root`: its row, or why it has
/// none; `None` for no tenant (destroyed since the walk met it).
/// `owns_dir`: the layout gives each tenant a directory of its own.
fn line(root: &Path, found: Found, (limits, owns_dir): (&Limits, bool)) -> Option<UsageLine> {
    let usage = match read_waiting_out_decision(root, &found) {
        Ok(usage) => usage,
        Err(e) => return Some(UsageLine::Failed(found.tenant, Arc::new(e))),
    };
    let failed = |tenant, e| Some(UsageLine::Failed(tenant, Arc::new(e)));
    match usage {
        Usage::Found(files) => Some(UsageLine::Read(row(found.tenant, files, limits))),
        // Shorter than its header says: SQLite tells truncated (an
        // error) from being extended by a checkpoint (its counts).
        Usage::AskSqlite(files) => {
            let at = (root, found.path.as_path());
            match storage::usage_through_sqlite(&found.tenant, at, files) {
                Ok(files) => Some(UsageLine::Read(row(found.tenant, files, limits))),
                Err(e) => failed(found.tenant, e),
            }
        }
        // A candidate of the walk whose database is not there: no
        // tenant, or a directory without its database (as listings say).
        Usage::NotThere => {
            let at = TenantPath::new(root, &found.path, owns_dir);
            let e = storage::incomplete(&found.tenant, at)?;
            failed(found.tenant, e)
        }
        Usage::Damaged(reason) => {
            let (tenant, path) = (found.tenant.clone(), found.path);
            let reason = reason.to_owned();
            failed(
                found.tenant,
                Error::DamagedTenant {
                    tenant,
                    path,
                    reason,
                },
            )
        }
        Usage::Unreadable(step, e) => {
            let e = Error::io(Some(&found.tenant), found.path, step, e);
            failed(found.tenant, e)
        }
    }
}

/// A tenant's row: its files' usage and its limits.
fn row(tenant: TenantName, files: FileUsage, limits: &Limits) -> TenantUsage {
    let policy = limits.policy(tenant.as_str());
    TenantUsage {
        tenant,
        database_bytes: files.database_bytes,
        wal_bytes: files.wal_bytes,
        page_size: files.page_size,
        page_count: files.page_count,
        free_pages: files.free_pages,
        last_write: files.last_write,
        max_size: policy.max_size,
        suspension: policy.suspension,
    }
}

/// [`read`], and once more, by its path, if an operation deciding the
/// tenant's fate (a destroy, a restore, a re-key) had its database fenced
/// off: waited for as a one-off read waits (see
/// `storage::wait_out_decision`).
fn read_waiting_out_decision(root: &Path, found: &Found) -> Result<Usage> {
    let usage = read(root, found);
    if !matches!(usage, Usage::NotThere) {
        return Ok(usage);
    }
    let at = (root, found.path.as_path());
    let patience = Patience::new(storage::READ_GATE_WAIT);
    match storage::wait_out_decision(&found.tenant, at, &patience) {
        // By its path, not through the walk's directory (a re-key swaps
        // the tenant's), with the lock held (see `wait_out_decision`).
        Ok(Some(lock)) => match read_path(root, &found.path) {
            // Fenced off by a replace that died: put back (which takes
            // the lock itself), then read.
            Usage::NotThere => {
                drop(lock);
                match storage::put_back_interrupted(&found.tenant, at) {
                    Settled::PutBack => Ok(read_path(root, &found.path)),
                    Settled::Stuck(stuck) => Err(stuck),
                    Settled::Untouched => Ok(Usage::NotThere),
                }
            }
            usage => Ok(usage),
        },
        Ok(None) => Ok(usage),
        // A destroy that went through: no tenant, skipped as the walk
        // would skip it now (a review: a failed line, exit 1).
        Err(e) if e.says_tenant_gone() => Ok(usage),
        Err(e) => Err(e),
    }
}

/// The usage of `found`'s database, through the directory the walk has
/// open, else reached from the root without following links.
fn read(root: &Path, found: &Found) -> Usage {
    if let Some((dir, name)) = found.below() {
        return storage::database_usage(dir, name);
    }
    read_path(root, &found.path)
}

/// The usage of the database at `path`, reached from `root` without
/// following links.
fn read_path(root: &Path, path: &Path) -> Usage {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Usage::NotThere;
    };
    match Dir::open(root, parent) {
        Ok(dir) => storage::database_usage(dir.fd(), Path::new(name)),
        Err(e) => Usage::Unreadable("opening its directory", e),
    }
}
