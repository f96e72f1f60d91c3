//! Sweeping up after crashed processes: scratch files, tombstones, lock
//! files and orphaned SQLite sidecars, fleet-wide.
//!
//! Each tenant's own debris is also removed by the next `create_tenant` of
//! that name; this sweep is for tenants nobody creates again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::lifecycle::{debris_owner, lock_path, remove_debris, remove_empty_parents};
use crate::lock::FileLock;
use crate::name::TenantName;
use crate::paths::{Found, Mode, RootConfig};

/// Removes debris beside every tenant path under the root, skipping any
/// tenant whose lock is held (an operation is in progress there). Returns
/// how many files were removed, lock files included.
pub(crate) fn sweep(root: &RootConfig) -> Result<usize> {
    let walk = root.walk(Mode::Siblings {
        owner: debris_owner,
        operation: "sweeping debris",
    })?;
    let mut owners: BTreeMap<PathBuf, TenantName> = BTreeMap::new();
    for found in walk {
        let Found { tenant, path } = found?;
        owners.insert(path, tenant);
    }
    let mut removed = 0;
    for (db, tenant) in owners {
        removed += sweep_tenant(&tenant, &db)?;
    }
    Ok(removed)
}

fn sweep_tenant(tenant: &TenantName, db: &Path) -> Result<usize> {
    let lock_file = lock_path(db);
    let had_lock_file = lock_file.exists();
    let lock = match FileLock::try_acquire(&lock_file) {
        Ok(Some(lock)) => lock,
        Ok(None) => return Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(Some(tenant), lock_file, "locking the tenant", e)),
    };
    let removed = remove_debris(Some(tenant), db)?;
    drop(lock);
    if !db.exists() {
        remove_empty_parents(db);
    }
    Ok(removed + usize::from(had_lock_file))
}
