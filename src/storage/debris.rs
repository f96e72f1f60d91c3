//! Sweeping up after crashed processes: scratch files, tombstones, lock
//! files and orphaned SQLite sidecars, beside one database or fleet-wide.
//!
//! Each tenant's own debris is also removed by the next `create_tenant` of
//! that name; the fleet-wide sweep is for tenants nobody creates again.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::files::{remove_dir_quietly, remove_empty_parents, remove_quietly};
use super::holders::{Holder, other_holder};
use super::lock::FileLock;
use super::siblings::{
    debris_owner, fence_path, is_scratch_or_tombstone, is_sidecar, litestream_dir, lock_path,
    sidecar_path,
};
use crate::error::{Error, OtherProcess, Result};
use crate::name::TenantName;
use crate::paths::{Found, Mode, RootConfig};

/// Removes temporary files, tombstones and orphaned SQLite sidecars left
/// beside `path` (a tenant's database, or the template) by a crashed
/// operation. The caller holds `path`'s lock. Returns how many files it
/// removed.
pub(super) fn remove_debris(tenant: Option<&TenantName>, path: &Path) -> Result<usize> {
    let Some(dir) = path.parent() else {
        return Ok(0);
    };
    let fenced = match tenant {
        Some(tenant) => finish_interrupted_destroy(tenant, path)?,
        None => 0,
    };
    let db_exists = path.exists();
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(tenant, dir, "cleaning up", e)),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let orphan_sidecar = !db_exists && is_sidecar(&name, &file_name);
        if !db_exists && entry.path() == litestream_dir(path) {
            tracing::info!(dir = %entry.path().display(), "removing Litestream state of a destroyed database");
            remove_dir_quietly(&entry.path());
            removed += 1;
        } else if orphan_sidecar || is_scratch_or_tombstone(&name, &file_name) {
            tracing::info!(file = %entry.path().display(), "removing debris of a crashed operation");
            remove_quietly(&entry.path());
            removed += 1;
        }
    }
    Ok(removed + fenced)
}

/// A destroy that died while its tenant was fenced off left the database
/// under its fence name: finish it, unless another process still has that
/// file open (its sidecars are then in use too).
fn finish_interrupted_destroy(tenant: &TenantName, path: &Path) -> Result<usize> {
    let fenced = fence_path(path);
    if !fenced.exists() {
        return Ok(0);
    }
    let shm = sidecar_path(path, "-shm");
    let holder = other_holder(&fenced, &shm)
        .map_err(|e| Error::io(Some(tenant), &fenced, "reading the database's locks", e))?;
    if let Some(Holder { pid }) = holder {
        return Err(Error::TenantBusy {
            tenant: tenant.clone(),
            path: path.to_path_buf(),
            checked_out: 0,
            other_process: Some(OtherProcess { pid }),
            waited: std::time::Duration::ZERO,
        });
    }
    tracing::info!(file = %fenced.display(), "finishing a destroy that was interrupted");
    remove_quietly(&fenced);
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
    let lock = match FileLock::try_acquire(&lock_file) {
        Ok(Some(lock)) => lock,
        Ok(None) => return Ok(0),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(Some(tenant), lock_file, "locking the tenant", e)),
    };
    let removed = match remove_debris(Some(tenant), db) {
        Ok(removed) => removed,
        // Still open elsewhere: its debris is not debris yet.
        Err(Error::TenantBusy { .. }) => return Ok(0),
        Err(e) => return Err(e),
    };
    drop(lock);
    if !db.exists() {
        remove_empty_parents(db, root);
    }
    Ok(removed + usize::from(had_lock_file))
}
