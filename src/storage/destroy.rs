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

use super::dir::Dir;
use super::fence::Fence;
use super::files::remove_empty_parents;
use super::lock::lock_tenant;
use super::siblings::name_of;
use super::sys;
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
    let lock = lock_tenant(tenant, root, path)?;
    let result = destroy_locked(tenant, lock.dir(), path, deadline);
    let gone = sys::stat(lock.dir().fd(), name_of(path)).is_err();
    drop(lock);
    if gone && let Some(dir) = path.parent() {
        remove_empty_parents(root, dir);
    }
    result
}

/// The destroy itself, for a caller that holds the tenant's lock (a
/// restore that replaces the tenant keeps holding it to publish the new
/// database, so that no create can slip in between). `dir` is the
/// database's directory, from the lock.
pub(super) fn destroy_locked(
    tenant: &TenantName,
    dir: &Dir,
    path: &Path,
    deadline: Instant,
) -> Result<()> {
    let fence = Fence::raise(tenant, dir, path)?;
    if let Err(e) = fence.wait_released(deadline) {
        // Said, not only logged: the tenant is intact only once it is back.
        fence.put_back()?;
        return Err(e);
    }
    fence.demolish();
    Ok(())
}
