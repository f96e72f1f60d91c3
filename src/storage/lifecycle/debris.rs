//! Sweeping up after crashed processes: scratch files, lock files and orphaned SQLite sidecars, beside one database or fleet-wide;
//! and, beside a tenant's own directory, a half-built directory of a
//! create and the fenced directory of a destroy.
//!
//! Each tenant's own debris is also removed by the next `create_tenant` of
//! that name; the fleet-wide sweep is for tenants nobody creates again.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, OtherProcess, Result};
use crate::fs::dir::Dir;
use crate::fs::file_id::FileId;
use crate::fs::files::{
    remove_empty_parents, remove_quietly, remove_tree_quietly, remove_with_sidecars,
};
use crate::fs::siblings::{
    debris_owner, fence_path, is_scratch, is_sidecar, litestream_dir, lock_path, restore_mark_path,
    sidecar_path, staging_path,
};
use crate::fs::sys;
use crate::name::TenantName;
use crate::paths::{Found, Mode, RootConfig};
use crate::storage::coordination::holders::{Holder, other_holder};
use crate::storage::coordination::tenant_path::{TenantLock, TenantPath};
use crate::storage::lifecycle::fence::unfence;
use crate::storage::opening::open::WAL_HEADER;
use crate::storage::opening::open_files;

/// Removes scratch files, a fenced database and orphaned SQLite sidecars left
/// beside database `name` in `dir` (a tenant's database, or the template)
/// by a crashed operation. The caller holds the database's lock. Returns
/// how many files it removed.
pub(in crate::storage) fn remove_debris(
    tenant: Option<&TenantName>,
    dir: &Dir,
    name: &Path,
) -> Result<usize> {
    let fenced = match tenant {
        Some(tenant) => finish_interrupted_destroy(tenant, dir, name)?,
        None => 0,
    };
    let db_exists = exists(tenant, dir, name)?;
    let file_name = name.to_string_lossy();
    let fence = fence_path(name).to_string_lossy().into_owned();
    let litestream = litestream_dir(name);
    let entries = dir
        .entries()
        .map_err(|e| Error::io(tenant, dir.path(), "cleaning up", e))?;
    let mut removed = 0;
    for (entry, is_dir) in entries.into_iter().flatten() {
        let entry_name = entry.to_string_lossy();
        let orphan_sidecar = !db_exists && is_sidecar(&entry_name, &file_name);
        if !db_exists && is_dir && entry == litestream {
            tracing::info!(dir = %dir.join(&entry).display(), "removing Litestream state of a destroyed database");
            remove_tree_quietly(dir, &entry);
            removed += 1;
        } else if !is_dir && orphan_sidecar {
            // A -wal or -journal left beside a database created later would
            // be replayed into it: failing to remove one stops the caller.
            // One holding commits is kept (and stops the caller too): its
            // database may only have been moved away.
            refuse_commits(tenant, dir, (&entry, name))?;
            tracing::info!(file = %dir.join(&entry).display(), "removing the sidecar of a destroyed database");
            match sys::unlink(dir.fd(), &entry) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    let operation = "removing the SQLite sidecar a destroyed database left";
                    return Err(Error::io(tenant, dir.join(&entry), operation, e));
                }
            }
        } else if is_sidecar(&entry_name, &fence) {
            // A dead fence's sidecars, left without it (its database went
            // first: `finish_interrupted_destroy` above), or planted.
            tracing::info!(file = %dir.join(&entry).display(), "removing the sidecar of a destroyed database");
            match is_dir {
                true => remove_tree_quietly(dir, &entry),
                false => remove_quietly(dir, &entry),
            }
            removed += 1;
        } else if !is_dir && is_scratch(&entry_name, &file_name) {
            tracing::info!(file = %dir.join(&entry).display(), "removing debris of a crashed operation");
            remove_quietly(dir, &entry);
            removed += 1;
        }
    }
    Ok(removed + fenced)
}

/// `Error::OrphanedCommits` if `sidecar`, beside the missing database
/// `name` in `dir`, holds commits: a `-wal` with a frame after its
/// header, or a rollback `-journal` that is not empty (SQLite empties or
/// removes one when its transaction ends).
fn refuse_commits(
    tenant: Option<&TenantName>,
    dir: &Dir,
    (sidecar, name): (&Path, &Path),
) -> Result<()> {
    let file = sidecar.to_string_lossy();
    let empty_at_most = if file.ends_with("-wal") {
        WAL_HEADER
    } else if file.ends_with("-journal") {
        0
    } else {
        return Ok(());
    };
    let bytes = match sys::stat(dir.fd(), sidecar) {
        Ok(stat) => u64::try_from(stat.st_size).unwrap_or(0),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::io(
                tenant,
                dir.join(sidecar),
                "looking at a sidecar whose database is gone",
                e,
            ));
        }
    };
    if bytes <= empty_at_most {
        return Ok(());
    }
    Err(Error::OrphanedCommits {
        tenant: tenant.cloned(),
        path: dir.join(sidecar),
        database: dir.join(name),
        bytes,
    })
}

/// Whether `name` is in `dir`; an error other than "not there" is an
/// error (a database that cannot be looked at is not a missing one).
fn exists(tenant: Option<&TenantName>, dir: &Dir, name: &Path) -> Result<bool> {
    match sys::stat(dir.fd(), name) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(
            tenant,
            dir.join(name),
            "looking at the database file",
            e,
        )),
    }
}

/// A destroy that died while its tenant was fenced off left the database
/// under its fence name: finish it, unless another process still has that
/// file open (its sidecars are then in use too).
fn finish_interrupted_destroy(tenant: &TenantName, dir: &Dir, name: &Path) -> Result<usize> {
    let fenced = fence_path(name);
    if !exists(Some(tenant), dir, &fenced)? {
        return Ok(0);
    }
    unless_held(tenant, dir, &fenced, name)?;
    tracing::info!(file = %dir.join(&fenced).display(), "finishing a destroy that was interrupted");
    // As the destroy would have (`Fence::demolish`): its sidecars still
    // carry the tenant's own name, unless a database is back under that
    // name (then they are that one's); the WAL before the database.
    if !exists(Some(tenant), dir, name)? {
        remove_with_sidecars(dir, name);
    }
    // With the sidecars a replace in place set aside with it.
    remove_with_sidecars(dir, &fenced);
    Ok(1)
}

/// Beside a tenant with no directory of its own (a flat layout): a
/// restore replacing it in place that died left its mark
/// (`.acme.sqlite3.restoring`, see `fence.rs`). Before its copy was in
/// place, the old database, still fenced, goes back with the sidecars set
/// aside with it; after, the old database goes. Then the mark goes.
/// Returns how many marks it removed (0 or 1).
///
/// # Errors
///
/// [`Error::Io`] when the tenant's directory cannot be looked at or the
/// old database cannot be put back (its path is named).
pub(in crate::storage) fn finish_replace_in_place(
    tenant: &TenantName,
    lock: &TenantLock,
    at: TenantPath<'_>,
) -> Result<usize> {
    let (Some(dir), false) = (lock.db_dir(at), at.owns_dir()) else {
        return Ok(0);
    };
    let (name, marker) = (at.db_name(), restore_mark_path(at.db_name()));
    if !exists(Some(tenant), dir, &marker)? {
        return Ok(0);
    }
    let fenced = fence_path(name);
    if exists(Some(tenant), dir, &fenced)? {
        if exists(Some(tenant), dir, name)? {
            // The copy was published; nobody could reach the old one since.
            tracing::info!(file = %dir.join(&fenced).display(), "removing the database a restore replaced");
            remove_with_sidecars(dir, &fenced);
        } else {
            put_back_restored(tenant, dir, name)?;
        }
    }
    remove_mark(tenant, dir, &marker).map(|()| 1)
}

/// Puts back the database `name` in `dir` that a restore replacing the
/// tenant fenced before it died, with the sidecars a replace in place set
/// aside with it (see `fence.rs`), durably.
fn put_back_restored(tenant: &TenantName, dir: &Dir, name: &Path) -> Result<()> {
    tracing::info!(file = %dir.join(name).display(), "putting back a tenant whose restore was interrupted");
    unfence(dir, name, true)
        .and_then(|()| dir.sync())
        .map_err(|e| {
            let operation = "putting back a tenant whose restore was interrupted";
            Error::io(Some(tenant), dir.join(&fence_path(name)), operation, e)
        })
}

/// `TenantBusy` if another process holds database `held` in `dir` open
/// (`name` is the database's own name, which its `-shm` is named after).
fn unless_held(tenant: &TenantName, dir: &Dir, held: &Path, name: &Path) -> Result<()> {
    let shm = sidecar_path(name, "-shm");
    let holder = other_holder(dir, held, &shm).map_err(|e| {
        Error::io(
            Some(tenant),
            dir.join(&e.name),
            "reading the database's locks",
            e.error,
        )
    })?;
    match holder {
        Some(Holder { pid }) => Err(Error::TenantBusy {
            tenant: tenant.clone(),
            path: dir.join(name),
            waited_for: crate::busy::WaitedFor::OpenConnection,
            checked_out: 0,
            other_process: Some(OtherProcess { pid }),
            waited: std::time::Duration::ZERO,
        }),
        None => Ok(()),
    }
}

/// Beside a tenant's own directory (the caller holds its entry lock):
/// removes the directory a crashed create was building (never a tenant:
/// a staged directory is published by rename), and deals with the mark of
/// a destroy or restore that died (see [`finish_fenced_entry`]). Returns
/// how many it removed.
///
/// # Errors
///
/// [`Error::TenantBusy`] for a fenced directory whose database another
/// process still has open; [`Error::Io`] when the bucket cannot be looked
/// at.
pub(in crate::storage) fn remove_entry_debris(
    tenant: &TenantName,
    lock: &TenantLock,
    at: TenantPath<'_>,
) -> Result<usize> {
    let parent = lock.parent();
    let staged = staging_path(at.entry_name());
    let mut removed = 0;
    if exists(Some(tenant), parent, &staged)? {
        tracing::info!(dir = %parent.join(&staged).display(), "removing a tenant directory a crashed create left half built");
        remove_tree_quietly(parent, &staged);
        removed += 1;
    }
    Ok(removed + finish_fenced_entry(tenant, lock, at)?)
}

/// Deals with the mark of a destroy or restore that died beside the
/// tenant's directory (see `fence.rs`). A restore's (`.acme.restoring`):
/// see [`put_back_unswapped`]. A destroy's (`.acme.destroying`):
///
/// - the database fenced in the directory: unless another process still
///   has it open, the destroy is finished (the directory removed);
/// - the database under its own name (the destroy died before fencing it,
///   or after putting it back): the tenant is intact;
/// - no database, or no directory: what is left goes.
///
/// Then the mark goes. Returns how many marks it removed.
///
/// # Errors
///
/// [`Error::TenantBusy`] for a fenced database still open elsewhere.
pub(in crate::storage) fn finish_fenced_entry(
    tenant: &TenantName,
    lock: &TenantLock,
    at: TenantPath<'_>,
) -> Result<usize> {
    Ok(put_back_unswapped(tenant, lock, at)? + finish_marked_destroy(tenant, lock, at)?)
}

/// A restore replacing the tenant died with its mark beside the tenant's
/// directory (`.acme.restoring`): if the old database is still fenced in
/// it (the restore never swapped), it goes back; then the mark goes. The
/// restored copy, in `.acme.creating`, is removed as any half-built
/// directory is. Returns how many it removed (0 or 1).
fn put_back_unswapped(tenant: &TenantName, lock: &TenantLock, at: TenantPath<'_>) -> Result<usize> {
    let parent = lock.parent();
    let marker = restore_mark_path(at.entry_name());
    if !exists(Some(tenant), parent, &marker)? {
        return Ok(0);
    }
    let fenced = fence_path(at.db_name());
    if let Some(dir) = lock.db_dir(at)
        && !exists(Some(tenant), dir, at.db_name())?
        && exists(Some(tenant), dir, &fenced)?
    {
        put_back_restored(tenant, dir, at.db_name())?;
    }
    remove_mark(tenant, parent, &marker).map(|()| 1)
}

fn remove_mark(tenant: &TenantName, parent: &Dir, marker: &Path) -> Result<()> {
    match sys::unlink(parent.fd(), marker) {
        // A directory there is debris all the same.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::ISDIR.raw_os_error()) => {
            remove_tree_quietly(parent, marker);
            Ok(())
        }
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            let operation = "removing the mark of an interrupted destroy or restore";
            Err(Error::io(Some(tenant), parent.join(marker), operation, e))
        }
        _ => Ok(()),
    }
}

fn finish_marked_destroy(
    tenant: &TenantName,
    lock: &TenantLock,
    at: TenantPath<'_>,
) -> Result<usize> {
    let parent = lock.parent();
    let marker = fence_path(at.entry_name());
    if !exists(Some(tenant), parent, &marker)? {
        return Ok(0);
    }
    if let Some(dir) = lock.db_dir(at)
        && !exists(Some(tenant), dir, at.db_name())?
    {
        let fenced = fence_path(at.db_name());
        if exists(Some(tenant), dir, &fenced)? {
            unless_held(tenant, dir, &fenced, at.db_name())?;
        }
        tracing::info!(dir = %dir.path().display(), "finishing a destroy that was interrupted");
        remove_tree_quietly(parent, at.entry_name());
        if exists(Some(tenant), parent, at.entry_name())? {
            // Left behind: the marker keeps it out of listings.
            return Ok(0);
        }
    }
    remove_mark(tenant, parent, &marker).map(|()| 1)
}

/// Removes debris beside every tenant path under the root, skipping any
/// tenant whose lock is held (an operation is in progress there). Returns
/// how many files were removed, lock files included; or, once every other
/// tenant is swept, the first error (each one is logged): a directory of
/// the root that cannot be read, or a tenant that cannot be swept, leaves
/// the rest to be swept (an outside probe: one bucket this user may not
/// read stopped the sweep of every other).
pub(crate) fn sweep_debris(root: &RootConfig) -> Result<usize> {
    let owns_dir = root.owns_directory()?;
    let walk = root.walk(Mode::Siblings {
        owner: debris_owner,
        operation: "sweeping debris",
    })?;
    let mut owners: BTreeMap<PathBuf, TenantName> = BTreeMap::new();
    let mut first_failure = None;
    for found in walk {
        match found {
            Ok(Found { tenant, path, .. }) => _ = owners.insert(path, tenant),
            Err(e) => {
                tracing::warn!(error = %e, "could not look for debris there; going on with the rest of the root");
                first_failure.get_or_insert(e);
            }
        }
    }
    let mut removed = 0;
    for (db, tenant) in owners {
        let at = TenantPath::new(root.root_dir(), &db, owns_dir);
        match sweep_tenant(&tenant, at, SweptBy::Operator) {
            Ok(swept) => removed += swept.debris + swept.lock_file,
            // One tenant that cannot be swept leaves the others to be.
            Err(e) => {
                tracing::warn!(tenant = %tenant, error = %e, "could not clean up after a tenant; going on with the others");
                first_failure.get_or_insert(e);
            }
        }
    }
    first_failure.map_or(Ok(removed), Err)
}

/// Finishes, or undoes, what a restore replacing `tenant`, a re-key or a
/// create that died left (all that [`sweep_debris`] does for the
/// tenant), for a checkout that found the tenant fenced off: one
/// interrupted operation must not keep a tenant from every checkout until
/// an operator runs `remove_debris`. Never waits: nothing is done while
/// any process holds the tenant's lock (the operation is still running,
/// or stopped) or has the fenced database open, and some things are left
/// to `remove_debris` ([`SweptBy::Checkout`]). Returns whether it removed
/// anything.
///
/// # Errors
///
/// [`Error::Io`] when the tenant's files cannot be looked at or put back.
pub(crate) fn finish_interrupted(tenant: &TenantName, at: TenantPath<'_>) -> Result<bool> {
    sweep_tenant(tenant, at, SweptBy::Checkout).map(|swept| swept.debris > 0)
}

/// What [`sweep_tenant`] removed.
struct Swept {
    /// Files an interrupted operation left (a fenced database put back
    /// counts as one).
    debris: usize,
    /// The tenant's lock file (1 or 0).
    lock_file: usize,
}

/// Who sweeps a tenant, which decides what is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SweptBy {
    /// `remove_debris`, the operator's call: a destroy that died is
    /// finished.
    Operator,
    /// A checkout that found the tenant fenced off. It leaves alone:
    /// - a destroy's fenced database: a destroy whose put-back failed told
    ///   its caller the database is intact under its fence name and how to
    ///   put it back by hand, and a checkout must not finish that destroy
    ///   behind the operator's back;
    /// - a fenced database this process has open: who else holds a file
    ///   is asked with `F_GETLK`, which never reports the asking process's
    ///   own locks, and closing the descriptor it asks through would drop
    ///   them (see `holders.rs`).
    Checkout,
}

fn sweep_tenant(tenant: &TenantName, at: TenantPath<'_>, by: SweptBy) -> Result<Swept> {
    let lock_file = usize::from(sys::symlink_metadata(&lock_path(at.entry())).is_ok());
    let nothing = Swept {
        debris: 0,
        lock_file: 0,
    };
    let lock = match TenantLock::try_for_sweep(at) {
        Ok(Some(lock)) => lock,
        Ok(None) => return Ok(nothing),
        Err(e) => return Err(Error::io(Some(tenant), at.entry(), "locking the tenant", e)),
    };
    if by == SweptBy::Checkout && left_to_the_operator(tenant, &lock, at)? {
        return Ok(nothing);
    }
    let debris = match sweep_locked(tenant, &lock, at) {
        Ok(removed) => removed,
        // Still open elsewhere: its debris is not debris yet.
        Err(Error::TenantBusy { .. }) => return Ok(nothing),
        Err(e) => return Err(e),
    };
    let db_exists = match lock.db_dir(at) {
        Some(dir) => exists(Some(tenant), dir, at.db_name())?,
        None => false,
    };
    drop(lock);
    if !db_exists {
        remove_empty_parents(at.root(), at.db_dir());
    }
    Ok(Swept { debris, lock_file })
}

/// Whether a fenced database beside the tenant's is one a checkout leaves
/// alone (see [`SweptBy::Checkout`]): a destroy's (a fenced database with
/// no restore's mark: a restore or re-key marks the tenant before it
/// fences it, and keeps the mark until it is done), or one a connection of
/// this process is on.
fn left_to_the_operator(
    tenant: &TenantName,
    lock: &TenantLock,
    at: TenantPath<'_>,
) -> Result<bool> {
    let Some(dir) = lock.db_dir(at) else {
        return Ok(false);
    };
    let fenced = fence_path(at.db_name());
    let stat = match sys::stat(dir.fd(), &fenced) {
        Ok(stat) => stat,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            let operation = "looking at the fenced database file";
            return Err(Error::io(Some(tenant), dir.join(&fenced), operation, e));
        }
    };
    if open_files::is_open(FileId::from_stat(&stat)) {
        return Ok(true);
    }
    let (marked_in, mark) = match at.owns_dir() {
        true => (lock.parent(), restore_mark_path(at.entry_name())),
        false => (dir, restore_mark_path(at.db_name())),
    };
    Ok(!exists(Some(tenant), marked_in, &mark)?)
}

fn sweep_locked(tenant: &TenantName, lock: &TenantLock, at: TenantPath<'_>) -> Result<usize> {
    let beside_entry = match at.owns_dir() {
        true => remove_entry_debris(tenant, lock, at)?,
        false => finish_replace_in_place(tenant, lock, at)?,
    };
    let beside_db = match lock.db_dir(at) {
        Some(dir) => remove_debris(Some(tenant), dir, at.db_name())?,
        None => 0,
    };
    Ok(beside_entry + beside_db)
}
