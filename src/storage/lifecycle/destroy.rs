//! Destroying a tenant's files, coordinated with every process that may
//! have it open.
//!
//! Holding the tenant's locks, destroy fences the database off (renames it
//! out of reach: see `fence.rs`), waits until no other process holds it
//! open, and only then deletes it with its sidecars, then the tenant's
//! directory, the lock files and the directories left empty (never the
//! root). If another process still holds it when the deadline passes, the
//! tenant is put back and the destroy fails with `TenantBusy`: no write
//! another process was told had committed is ever deleted without the
//! destroy reporting success, and no process commits to the old file after
//! it does.
//!
//! The caller has already drained this process's own pools of the tenant.

use crate::busy::WaitedFor;
use crate::crypt;
use crate::error::Result;
use crate::fs::files::remove_empty_parents;
use crate::fs::sys;
use crate::name::TenantName;
use crate::storage::coordination::tenant_path::{TenantLock, TenantPath};
use crate::storage::lifecycle::debris::{finish_fenced_entry, finish_replace_in_place};
use crate::storage::lifecycle::fence::{Fence, Waiting};
use crate::storage::lifecycle::foreign_files::refuse_foreign_files;

/// Removes tenant `tenant` at `at`, waiting as `waiting` says for other
/// processes (their operations on it, their connections to it) to let go.
pub(crate) fn destroy(
    tenant: &TenantName,
    at: TenantPath<'_>,
    waiting: Waiting<'_>,
    destroyed: impl FnOnce(),
) -> Result<()> {
    // Its key's destruction waits no longer than the destroy.
    let _patience = waiting.patience.scoped();
    let lock = TenantLock::for_existing(tenant, at, &waiting.patience, WaitedFor::Destroy)?;
    let result = destroy_locked(tenant, &lock, at, (waiting, false)).and_then(|()| {
        // Also after a destroy that died and was finished just now.
        crypt::destroyed_key(tenant, at.root())
    });
    // Still under the lock: what goes with the tenant (its limits) goes
    // before another operation on the name can begin.
    if result.is_ok() {
        destroyed();
    }
    let gone = lock
        .db_dir(at)
        .is_none_or(|dir| sys::stat(dir.fd(), at.db_name()).is_err());
    drop(lock);
    if gone {
        remove_empty_parents(at.root(), at.db_dir());
    }
    result
}

/// The destroy itself, for a caller that holds the tenant's locks (a
/// restore that replaces the tenant keeps holding them to publish the new
/// database, so that no create can slip in between: `replacing`, which
/// keeps an encrypted tenant's key).
pub(in crate::storage) fn destroy_locked(
    tenant: &TenantName,
    lock: &TenantLock,
    at: TenantPath<'_>,
    (waiting, replacing): (Waiting<'_>, bool),
) -> Result<()> {
    // The mark of a destroy that died (or failed) here would be in the
    // way; finishing it may finish this destroy too.
    if at.owns_dir() && finish_fenced_entry(tenant, lock, at)? > 0 && lock.db_dir(at).is_none() {
        return Ok(());
    }
    // A replace in place that died puts the old tenant back first.
    finish_replace_in_place(tenant, lock, at)?;
    refuse_foreign_files(tenant, lock, at)?;
    let fence = Fence::raise(tenant, lock, at)?;
    if let Err(e) = fence.wait_released(waiting) {
        // Said, not only logged: the tenant is intact only once it is back.
        fence.put_back()?;
        return Err(e);
    }
    // Nobody holds it and it will not be put back: an encrypted tenant's
    // key goes first, so that a crash from here on leaves only files that
    // can never be read again. (A replacing restore keeps the key: the
    // backup it publishes is encrypted with it.)
    if !replacing && let Err(e) = crypt::destroyed_key(tenant, at.root()) {
        // The destroy fails whole: the tenant is back, and a retry can
        // destroy both.
        fence.put_back()?;
        return Err(e);
    }
    fence.demolish()
}
