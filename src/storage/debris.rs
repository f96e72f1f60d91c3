//! Sweeping up after crashed processes: scratch files, tombstones, lock
//! files and orphaned SQLite sidecars, beside one database or fleet-wide.
//!
//! Each tenant's own debris is also removed by the next `create_tenant` of
//! that name; the fleet-wide sweep is for tenants nobody creates again.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::dir::Dir;
use super::files::{remove_empty_parents, remove_quietly, remove_tree_quietly};
use super::holders::{Holder, other_holder};
use super::lock::FileLock;
use super::siblings::{
    debris_owner, fence_path, is_scratch_or_tombstone, is_sidecar, litestream_dir, lock_path,
    name_of, sidecar_path,
};
use super::sys;
use crate::error::{Error, OtherProcess, Result};
use crate::name::TenantName;
use crate::paths::{Found, Mode, RootConfig};

/// Removes temporary files, tombstones and orphaned SQLite sidecars left
/// beside database `name` in `dir` (a tenant's database, or the template)
/// by a crashed operation. The caller holds the database's lock. Returns
/// how many files it removed.
pub(super) fn remove_debris(tenant: Option<&TenantName>, dir: &Dir, name: &Path) -> Result<usize> {
    let fenced = match tenant {
        Some(tenant) => finish_interrupted_destroy(tenant, dir, name)?,
        None => 0,
    };
    let db_exists = exists(tenant, dir, name)?;
    let file_name = name.to_string_lossy();
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
            tracing::info!(file = %dir.join(&entry).display(), "removing the sidecar of a destroyed database");
            match sys::unlink(dir.fd(), &entry) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    let operation = "removing the SQLite sidecar a destroyed database left";
                    return Err(Error::io(tenant, dir.join(&entry), operation, e));
                }
            }
        } else if !is_dir && is_scratch_or_tombstone(&entry_name, &file_name) {
            tracing::info!(file = %dir.join(&entry).display(), "removing debris of a crashed operation");
            remove_quietly(dir, &entry);
            removed += 1;
        }
    }
    Ok(removed + fenced)
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
    let shm = sidecar_path(name, "-shm");
    let holder = other_holder(dir, &fenced, &shm).map_err(|e| {
        Error::io(
            Some(tenant),
            dir.join(&fenced),
            "reading the database's locks",
            e,
        )
    })?;
    if let Some(Holder { pid }) = holder {
        return Err(Error::TenantBusy {
            tenant: tenant.clone(),
            path: dir.join(name),
            checked_out: 0,
            other_process: Some(OtherProcess { pid }),
            waited: std::time::Duration::ZERO,
        });
    }
    tracing::info!(file = %dir.join(&fenced).display(), "finishing a destroy that was interrupted");
    remove_quietly(dir, &fenced);
    Ok(1)
}

/// Removes debris beside every tenant path under the root, skipping any
/// tenant whose lock is held (an operation is in progress there). Returns
/// how many files were removed, lock files included.
pub(crate) fn sweep_debris(root: &RootConfig) -> Result<usize> {
    let walk = root.walk(Mode::Siblings {
        owner: debris_owner,
        operation: "sweeping debris",
    })?;
    let mut owners: BTreeMap<PathBuf, TenantName> = BTreeMap::new();
    for found in walk {
        let Found { tenant, path, .. } = found?;
        owners.insert(path, tenant);
    }
    let mut removed = 0;
    for (db, tenant) in owners {
        removed += sweep_tenant(&tenant, &db, root.root_dir())?;
    }
    Ok(removed)
}

fn sweep_tenant(tenant: &TenantName, db: &Path, root: &Path) -> Result<usize> {
    let lock_file = lock_path(db);
    let had_lock_file = lock_file.exists();
    let lock = match FileLock::try_acquire(root, &lock_file) {
        Ok(Some(lock)) => lock,
        Ok(None) => return Ok(0),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(Some(tenant), lock_file, "locking the tenant", e)),
    };
    let removed = match remove_debris(Some(tenant), lock.dir(), name_of(db)) {
        Ok(removed) => removed,
        // Still open elsewhere: its debris is not debris yet.
        Err(Error::TenantBusy { .. }) => return Ok(0),
        Err(e) => return Err(e),
    };
    let db_exists = exists(Some(tenant), lock.dir(), name_of(db))?;
    drop(lock);
    if !db_exists && let Some(dir) = db.parent() {
        remove_empty_parents(root, dir);
    }
    Ok(removed + usize::from(had_lock_file))
}
