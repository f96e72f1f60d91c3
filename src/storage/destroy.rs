//! Destroying a tenant's files.
//!
//! Destroy renames the database away first (to a hidden tombstone), so the
//! tenant vanishes in one step, then removes the rest: the tombstone, the
//! sidecars, the lock file and the directories left empty. It holds the
//! tenant's lock; the caller has already drained the tenant's pools.

use std::fs;
use std::path::Path;

use super::files::{remove_empty_parents, remove_with_sidecars, sync_dir};
use super::lock::lock_tenant;
use super::siblings::tombstone_path;
use crate::error::{Error, Result};
use crate::name::TenantName;

/// Removes tenant `tenant`'s files; the caller has drained its pools.
pub(crate) fn destroy(tenant: &TenantName, path: &Path) -> Result<()> {
    let lock = lock_tenant(tenant, path)?;
    if !path.exists() {
        drop(lock);
        remove_empty_parents(path);
        return Err(Error::TenantDoesNotExist {
            tenant: tenant.clone(),
            path: path.to_path_buf(),
        });
    }
    // One rename makes the tenant disappear; if we die after it, the rest
    // is debris the next create (or cleanup) removes.
    let tombstone = tombstone_path(path);
    fs::rename(path, &tombstone)
        .map_err(|e| Error::io(Some(tenant), path, "removing the database", e))?;
    sync_dir(path);
    remove_with_sidecars(path);
    remove_with_sidecars(&tombstone);
    drop(lock);
    remove_empty_parents(path);
    Ok(())
}
