//! Creating many tenants at once, sharing the cost of durability.
//!
//! A single create makes its tenant durable with fsyncs issued one after
//! another: the copy, then its directory once the copy is published, and
//! the bucket that got the tenant's new directory. A batch takes each
//! tenant's steps exactly as a create does, under each tenant's locks, but
//! issues each kind of sync for all its tenants together, from several
//! threads: every copy, then (after every copy is published) every
//! directory that got an entry, once. Syncs issued together share the file
//! system's journal commits, so a batch pays for a few commits where
//! single creates pay for three per tenant.
//!
//! Each tenant is still all or nothing: its copy is published only once
//! it is durable (see `stage.rs`), and it is reported created only once
//! the publication is. The batch runs in chunks of [`CHUNK`] tenants, so
//! it holds a bounded number of locks and descriptors, and two chunks at
//! a time: one chunk's syncs and publication (mostly waiting for the
//! disk) run beside the next chunk's locks and copies (mostly work for
//! the CPU).

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::fs::dir::Dir;
use crate::fs::file_id::FileId;
use crate::fs::{Patience, faults, sys};
use crate::name::TenantName;
use crate::storage::coordination::tenant_path::{TenantLock, TenantPath};
use crate::storage::lifecycle::create::{Cleared, clear_the_way, new_database, tidy_after_failure};
use crate::storage::lifecycle::stage::Stage;
use crate::storage::lifecycle::template_database::Template;

/// Tenants per chunk, at most: each holds up to six descriptors open (two
/// lock files and their directories, the stage's directory, the copy; see
/// [`chunk_size`]).
const CHUNK: usize = 64;

/// Threads that issue one chunk's syncs: the more syncs wait at once, the
/// fewer journal commits a round takes. (200 tenants on the 2-core test
/// machine: 58 ms with 8, 53 ms with 16, medians of 9 interleaved rounds;
/// no better with 32, whose threads cost more to start.)
const SYNC_THREADS: usize = 16;

/// One tenant part way through a chunk. The stage is declared first: it
/// is removed (if unpublished) before the locks go.
struct Pending<'a> {
    tenant: &'a TenantName,
    at: TenantPath<'a>,
    stage: Stage,
    copy: File,
    lock: TenantLock,
    /// The directories this tenant's create made new entries in.
    made: Vec<PathBuf>,
}

/// Creates each of `tenants` (name and database path, no duplicates) from
/// `template`; one result per tenant, in order. `owns_dir`: each tenant
/// has a directory of its own (see `tenant_path.rs`).
///
/// Tenants are taken in path order ([`lock_order`]): a chunk holds all
/// its locks at once, and locks taken in one global order never deadlock,
/// whatever other batches (in this process or another) are taking. Path
/// order also puts a bucket's tenants together, so a chunk syncs few
/// buckets.
pub(crate) fn create_many(
    root: &Path,
    owns_dir: bool,
    template: &mut Template,
    tenants: &[(TenantName, PathBuf)],
    (wait, cleared): (Duration, Cleared<'_>),
) -> Vec<Result<()>> {
    let mut order: Vec<usize> = (0..tenants.len()).collect();
    order.sort_by(|&a, &b| lock_order(&tenants[a].1, &tenants[b].1));
    let sorted: Vec<(TenantName, TenantPath<'_>)> = order
        .iter()
        .map(|&i| {
            let (tenant, path) = &tenants[i];
            (tenant.clone(), TenantPath::new(root, path, owns_dir))
        })
        .collect();
    let chunks = sorted.chunks(chunk_size());
    let results = if faults::plan_active() {
        // A test's fault plan belongs to its thread (see `faults.rs`):
        // every step of every chunk stays on it.
        chunks
            .flat_map(|chunk| finish_chunk(root, prepare_chunk(template, chunk, (wait, cleared))))
            .collect()
    } else {
        pipelined(root, template, chunks, (wait, cleared))
    };
    debug_assert_eq!(results.len(), order.len(), "one result per tenant");
    let mut by_input: Vec<(usize, Result<()>)> = order.into_iter().zip(results).collect();
    by_input.sort_by_key(|(i, _)| *i);
    by_input.into_iter().map(|(_, result)| result).collect()
}

/// The order every batch takes its tenants' locks in: by path with ASCII
/// case folded, then by path. On a file system that ignores case, two
/// names of one file (`Acme`, `acme`) are then next to each other and
/// every other file is before or after both, in every process; ordered by
/// bytes alone, one batch could hold `Acme` and wait for `b` while
/// another holds `B` and waits for `acme`. (Tenant names are ASCII.)
fn lock_order(a: &Path, b: &Path) -> std::cmp::Ordering {
    let (a_bytes, b_bytes) = (a.as_os_str().as_bytes(), b.as_os_str().as_bytes());
    let folded_a = a_bytes.iter().map(u8::to_ascii_lowercase);
    let folded_b = b_bytes.iter().map(u8::to_ascii_lowercase);
    folded_a.cmp(folded_b).then_with(|| a.cmp(b))
}

/// The chunks, two at a time: while a second thread syncs and publishes
/// one chunk (mostly waiting for the disk), the calling thread prepares
/// the next (locks, directories, copies: mostly work for the CPU). Every
/// lock is still taken by the calling thread, in path order; the other
/// thread only releases the locks of the chunk it finishes. A lock the
/// next chunk needs that the finishing chunk holds (two names of one
/// file, on a file system that ignores case) is waited for, and the
/// finishing thread waits for nothing the calling thread holds.
fn pipelined<'a>(
    root: &Path,
    template: &mut Template,
    chunks: impl Iterator<Item = &'a [(TenantName, TenantPath<'a>)]>,
    waiting: (Duration, Cleared<'_>),
) -> Vec<Result<()>> {
    std::thread::scope(|scope| {
        let mut results = Vec::new();
        let mut finishing = None;
        for chunk in chunks {
            let prepared = prepare_chunk(template, chunk, waiting);
            if let Some(previous) = finishing.take() {
                results.extend(joined(previous));
            }
            finishing = Some(scope.spawn(move || finish_chunk(root, prepared)));
        }
        if let Some(last) = finishing {
            results.extend(joined(last));
        }
        results
    })
}

fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// One chunk's tenants with their copies made and not yet synced, and the
/// directories their creates added entries to.
struct Prepared<'a> {
    pending: Vec<Result<Pending<'a>>>,
    unsynced: Vec<PathBuf>,
}

/// Locks each tenant of the chunk (in order), checks it, copies the
/// template for it.
fn prepare_chunk<'a>(
    template: &mut Template,
    tenants: &'a [(TenantName, TenantPath<'a>)],
    (wait, cleared): (Duration, Cleared<'_>),
) -> Prepared<'a> {
    let mut unsynced = Vec::new();
    let mut pending: Vec<Result<Pending<'_>>> = Vec::with_capacity(tenants.len());
    let mut held = Vec::with_capacity(tenants.len());
    for (tenant, at) in tenants {
        let patience = Patience::new(wait);
        // Every wait of this tenant's create ends at its deadline: the
        // keys directory's lock too, when its key is made.
        let _scoped = patience.scoped();
        let prepared = prepare(
            template,
            (tenant, *at),
            &mut unsynced,
            &held,
            (&patience, cleared),
        );
        match &prepared {
            Ok(p) => held.extend(p.lock.id().ok()),
            Err(e) => tidy_after_failure(*at, e),
        }
        pending.push(prepared);
    }
    Prepared { pending, unsynced }
}

/// Makes a prepared chunk's copies durable, publishes them, and makes the
/// publications durable; one result per tenant, in order.
fn finish_chunk(root: &Path, prepared: Prepared<'_>) -> Vec<Result<()>> {
    let Prepared {
        mut pending,
        mut unsynced,
    } = prepared;
    let synced = in_parallel(&pending, |p| {
        sys::sync(p.copy.as_fd(), p.stage.scratch()).map_err(|e| {
            let scratch = p.stage.scratch_path();
            Error::io(Some(p.tenant), scratch, "syncing the new database", e)
        })
    });
    settle(&mut pending, synced);
    let published = pending
        .iter_mut()
        .map(|p| {
            let p = p.as_mut().ok()?;
            let published = p.stage.publish_unsynced(p.tenant, p.at);
            if published.is_ok()
                && let Some(parent) = p.stage.parent_to_sync()
            {
                // The tenant's new directory is an entry of its parent.
                unsynced.push(parent.path().to_path_buf());
                p.made.push(parent.path().to_path_buf());
            }
            Some(published)
        })
        .collect();
    settle(&mut pending, published);
    make_durable(root, &mut pending, unsynced);
    pending.into_iter().map(|p| p.map(drop)).collect()
}

/// Tenants per chunk: [`CHUNK`], or fewer when the descriptor limit is
/// low (the two chunks in flight then use at most a quarter of it, each at
/// most six descriptors a tenant), never none.
fn chunk_size() -> usize {
    let fit = sys::descriptor_limit().map_or(CHUNK, |n| usize::try_from(n / 48).unwrap_or(CHUNK));
    fit.clamp(1, CHUNK)
}

/// A create's first steps for one tenant: lock (making its directories,
/// their syncs left for later), check, copy.
fn prepare<'a>(
    template: &mut Template,
    (tenant, at): (&'a TenantName, TenantPath<'a>),
    unsynced: &mut Vec<PathBuf>,
    held: &[FileId],
    (patience, cleared): (&Patience, Cleared<'_>),
) -> Result<Pending<'a>> {
    let already = unsynced.len();
    let lock = TenantLock::for_new_deferred(tenant, at, unsynced, held, patience)?;
    let made = unsynced.get(already..).unwrap_or_default().to_vec();
    clear_the_way(tenant, &lock, at)?;
    cleared(tenant)?;
    let mut stage = Stage::begin(tenant, &lock, at, false)?;
    let (copy, _key) = new_database(tenant, at, &mut stage, template)?;
    Ok(Pending {
        tenant,
        at,
        stage,
        copy,
        lock,
        made,
    })
}

/// Syncs, once each and together, every tenant's directory (its link) and
/// every parent that got a new directory.
fn make_durable(root: &Path, pending: &mut [Result<Pending<'_>>], mut unsynced: Vec<PathBuf>) {
    let synced = in_parallel(pending, |p| p.stage.sync_dir(p.tenant, p.at));
    settle(pending, synced);
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
    settle(pending, results);
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
/// what it built and releasing its locks.
fn settle(pending: &mut [Result<Pending<'_>>], results: Vec<Option<Result<()>>>) {
    for (p, result) in pending.iter_mut().zip(results) {
        let Some(Err(e)) = result else { continue };
        if let Ok(failed) = std::mem::replace(p, Err(e)) {
            let at = failed.at;
            drop(failed);
            if let Err(e) = p {
                tidy_after_failure(at, e);
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
    // A test's fault plan belongs to its thread (see `faults.rs`): with
    // one, every step runs on this thread, where the plan can fail it.
    if faults::plan_active() {
        return items.iter().map(|i| i.as_ok().map(&step)).collect();
    }
    let per_thread = items.len().div_ceil(SYNC_THREADS).max(1);
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

#[cfg(test)]
mod tests {
    use super::lock_order;
    use std::path::{Path, PathBuf};

    /// Names of one file on a file system that ignores case come next to
    /// each other, so every batch meets each file at the same point of
    /// its order: one taking `Acme` then `b` and one taking `B` then
    /// `acme` both take the acme file first.
    #[test]
    fn names_of_one_file_are_next_to_each_other_in_lock_order() {
        let sorted = |names: &[&str]| {
            let mut paths: Vec<PathBuf> = names.iter().map(|n| Path::new("db").join(n)).collect();
            paths.sort_by(|a, b| lock_order(a, b));
            paths
                .iter()
                .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            sorted(&["b", "acme", "c", "B", "Acme"]),
            ["Acme", "acme", "B", "b", "c"]
        );
        assert_eq!(sorted(&["Acme", "b"]), ["Acme", "b"]);
        assert_eq!(sorted(&["B", "acme"]), ["acme", "B"]);
    }
}
