//! Destroying a tenant's files, coordinated with every process that may
//! have it open.
//!
//! Holding the tenant's lock, destroy fences the database off (renames it
//! out of reach, see `fence.rs`), waits until no other process holds it
//! open, and only then deletes it with its sidecars, then the lock file and
//! the directories left empty (never the root). If another process still
//! holds it when the deadline passes, the database is put back and the
//! destroy fails with `TenantBusy`: no write another process was told had
//! committed is ever deleted without the destroy reporting success, and no
//! process commits to the old file after it does.
//!
//! The caller has already drained this process's own pools of the tenant.

use std::path::Path;
use std::time::Instant;

use super::fence::Fence;
use super::files::remove_empty_parents;
use super::lock::lock_tenant;
use crate::error::Result;
use crate::name::TenantName;

/// Removes tenant `tenant`'s database `path` under `root`, waiting until
/// `deadline` for other processes to let go of it.
pub(crate) fn destroy(
    tenant: &TenantName,
    path: &Path,
    root: &Path,
    deadline: Instant,
) -> Result<()> {
    let lock = lock_tenant(tenant, path)?;
    let result = destroy_locked(tenant, path, deadline);
    drop(lock);
    if !path.exists() {
        remove_empty_parents(path, root);
    }
    result
}

/// The destroy itself, for a caller that holds the tenant's lock (a
/// restore that replaces the tenant keeps holding it to publish the new
/// database, so that no create can slip in between).
pub(super) fn destroy_locked(tenant: &TenantName, path: &Path, deadline: Instant) -> Result<()> {
    let fence = Fence::raise(tenant, path)?;
    fence.wait_released(deadline)?;
    fence.demolish();
    Ok(())
}
