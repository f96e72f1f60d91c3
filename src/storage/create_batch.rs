//! Creating many tenants at once, sharing the cost of durability.
//!
//! A single create makes its tenant durable with fsyncs issued one after
//! another: the copy, then its directory once the copy is linked, and the
//! bucket when the tenant's directory is new. A batch takes each tenant's
//! steps exactly as a create does, under each tenant's lock, but issues
//! each kind of sync for all its tenants together, from several threads:
//! every copy, then (after every copy is linked) every directory that got
//! an entry, once. Syncs issued together share the file system's journal
//! commits, so a batch pays for a few commits where single creates pay for
//! three per tenant.
//!
//! Each tenant is still all or nothing: its copy is linked only once it
//! is durable, and it is reported created only once the link is. The
//! batch runs in chunks of [`CHUNK`] tenants, so it holds a bounded number
//! of locks and descriptors.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use super::create::{clear_the_way, copy_template, link, tidy_after_failure};
use super::dir::Dir;
use super::faults;
use super::file_id::FileId;
use super::files::remove_quietly;
use super::lock::FileLock;
use super::siblings::{lock_path, name_of, scratch_path};
use super::sys;
use super::template_database::Template;
use crate::error::{Error, Result};
use crate::name::TenantName;

/// Tenants per chunk, at most: each holds a lock file, its directory and
/// its copy open, so three descriptors (see [`chunk_size`]).
const CHUNK: usize = 64;

/// Threads that issue one chunk's syncs.
const SYNC_THREADS: usize = 8;

/// One tenant part way through a chunk.
struct Pending<'a> {
    tenant: &'a TenantName,
    path: &'a Path,
    lock: FileLock,
    scratch: PathBuf,
    copy: File,
    /// The directories this tenant's create made new entries in.
    made: Vec<PathBuf>,
}

/// Creates each of `tenants` (name and database path, no duplicates) from
/// `template`; one result per tenant, in order.
///
/// Tenants are taken in path order: a chunk holds all its locks at once,
/// and locks taken in one global order never deadlock, whatever other
/// batches (in this process or another) are taking. Path order also puts
/// a bucket's tenants together, so a chunk syncs few buckets.
pub(crate) fn create_many(
    root: &Path,
    template: &mut Template,
    tenants: &[(TenantName, PathBuf)],
) -> Vec<Result<()>> {
    let mut order: Vec<usize> = (0..tenants.len()).collect();
    order.sort_by(|&a, &b| tenants[a].1.cmp(&tenants[b].1));
    let sorted: Vec<(TenantName, PathBuf)> = order.iter().map(|&i| tenants[i].clone()).collect();
    let results = sorted
        .chunks(chunk_size())
        .flat_map(|chunk| create_chunk(root, template, chunk));
    let mut by_input: Vec<(usize, Result<()>)> = order.into_iter().zip(results).collect();
    by_input.sort_by_key(|(i, _)| *i);
    by_input.into_iter().map(|(_, result)| result).collect()
}

fn create_chunk(
    root: &Path,
    template: &mut Template,
    tenants: &[(TenantName, PathBuf)],
) -> Vec<Result<()>> {
    let mut unsynced = Vec::new();
    let mut pending: Vec<Result<Pending<'_>>> = Vec::with_capacity(tenants.len());
    let mut held = Vec::with_capacity(tenants.len());
    for (tenant, path) in tenants {
        let prepared = prepare(root, template, tenant, path, &mut unsynced, &held);
        match &prepared {
            Ok(p) => held.extend(p.lock.id().ok()),
            Err(e) => tidy_after_failure(root, path, e),
        }
        pending.push(prepared);
    }
    let synced = in_parallel(&pending, |p| {
        let scratch = || p.lock.dir().join(&p.scratch);
        sys::sync(p.copy.as_fd(), &p.scratch)
            .map_err(|e| Error::io(Some(p.tenant), scratch(), "syncing the new database", e))
    });
    settle(root, &mut pending, synced);
    let linked = pending
        .iter()
        .map(|p| {
            p.as_ref()
                .ok()
                .map(|p| link(p.tenant, p.lock.dir(), &p.scratch, p.path))
        })
        .collect();
    settle(root, &mut pending, linked);
    make_durable(root, &mut pending, unsynced);
    pending
        .into_iter()
        .map(|p| p.map(|p| remove_quietly(p.lock.dir(), &p.scratch)))
        .collect()
}

/// Tenants per chunk: [`CHUNK`], or fewer when the descriptor limit is
/// low (a chunk then uses at most a quarter of it), never none.
fn chunk_size() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let fit = limit.map_or(CHUNK, |n| usize::try_from(n / 12).unwrap_or(CHUNK));
    fit.clamp(1, CHUNK)
}

/// A create's first steps for one tenant: lock (making its directories,
/// their syncs left for later), check, copy.
fn prepare<'a>(
    root: &Path,
    template: &mut Template,
    tenant: &'a TenantName,
    path: &'a Path,
    unsynced: &mut Vec<PathBuf>,
    held: &[FileId],
) -> Result<Pending<'a>> {
    let lock_file = lock_path(path);
    let already = unsynced.len();
    let lock = FileLock::acquire_deferred(root, &lock_file, unsynced, held).map_err(|e| {
        match e.kind() {
            // Another name of this batch is the same file.
            io::ErrorKind::AlreadyExists => Error::TenantExists {
                tenant: tenant.clone(),
                path: path.to_path_buf(),
            },
            _ => Error::io(Some(tenant), &lock_file, "locking the tenant", e),
        }
    })?;
    let made = unsynced.get(already..).unwrap_or_default().to_vec();
    clear_the_way(tenant, lock.dir(), path)?;
    let scratch = scratch_path(name_of(path));
    let copy = copy_template(tenant, lock.dir(), &scratch, template);
    let copy = copy.inspect_err(|_| remove_quietly(lock.dir(), &scratch))?;
    Ok(Pending {
        tenant,
        path,
        lock,
        scratch,
        copy,
        made,
    })
}

/// Syncs, once each and together, every tenant's directory (its link) and
/// every parent that got a new directory.
fn make_durable(root: &Path, pending: &mut [Result<Pending<'_>>], mut unsynced: Vec<PathBuf>) {
    let synced = in_parallel(pending, |p| {
        let durable = p.lock.dir().sync();
        durable.map_err(|e| Error::io(Some(p.tenant), p.path, "making the new database durable", e))
    });
    settle(root, pending, synced);
    unsynced.sort();
    unsynced.dedup();
    let parents = in_parallel(&unsynced, |dir| Dir::open(root, dir).and_then(|d| d.sync()));
    let failed: Vec<(&PathBuf, io::Error)> = unsynced
        .iter()
        .zip(parents)
        .filter_map(|(dir, result)| Some((dir, result?.err()?)))
        .collect();
    // A tenant whose new directory's entry could not be synced may lose
    // it in a crash: its create is not confirmed.
    let results = pending
        .iter()
        .map(|p| {
            let p = p.as_ref().ok()?;
            let (dir, e) = failed.iter().find(|(dir, _)| p.made.contains(dir))?;
            let operation = "making the new directory durable";
            Some(Err(Error::io(
                Some(p.tenant),
                *dir,
                operation,
                same_error(e),
            )))
        })
        .collect();
    settle(root, pending, results);
}

/// A copy of `e`, keeping its OS error number (which says, for one,
/// "too many open files").
fn same_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// Replaces each pending tenant whose step failed by its error, removing
/// its copy and releasing its lock.
fn settle(root: &Path, pending: &mut [Result<Pending<'_>>], results: Vec<Option<Result<()>>>) {
    for (p, result) in pending.iter_mut().zip(results) {
        let Some(Err(e)) = result else { continue };
        if let Ok(failed) = std::mem::replace(p, Err(e)) {
            remove_quietly(failed.lock.dir(), &failed.scratch);
            let path = failed.path;
            drop(failed);
            if let Err(e) = p {
                tidy_after_failure(root, path, e);
            }
        }
    }
}

/// Runs `step` on every `Ok` item from [`SYNC_THREADS`] threads at once;
/// `None` for items that are errors already.
fn in_parallel<T: Sync, E: Send>(
    items: &[impl AsOk<T> + Sync],
    step: impl Fn(&T) -> std::result::Result<(), E> + Sync,
) -> Vec<Option<std::result::Result<(), E>>> {
    // A test's fault plan belongs to its thread (see `faults.rs`).
    let threads = if faults::plan_active() {
        1
    } else {
        SYNC_THREADS
    };
    let per_thread = items.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per_thread)
            .map(|part| {
                scope.spawn(|| {
                    part.iter()
                        .map(|i| i.as_ok().map(&step))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// An item a step runs on, unless it already failed.
trait AsOk<T> {
    fn as_ok(&self) -> Option<&T>;
}

impl<T, E> AsOk<T> for std::result::Result<T, E> {
    fn as_ok(&self) -> Option<&T> {
        self.as_ref().ok()
    }
}

impl AsOk<PathBuf> for PathBuf {
    fn as_ok(&self) -> Option<&PathBuf> {
        Some(self)
    }
}
