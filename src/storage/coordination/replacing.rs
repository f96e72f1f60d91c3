//! A tenant that a restore with replace, or a re-key, is replacing.
//!
//! Such an operation fences the old database off (its file renamed away)
//! and marks the tenant (`.acme.restoring` beside its entry) before it
//! swaps the new one in; if it gives up or dies, the old one goes back.
//! Either way the tenant exists throughout, so a read that finds no
//! database at its path while the mark stands has not found it gone: the
//! operation holds the tenant's entry lock from before its mark to after
//! its swap, and the read waits for that lock, then looks again holding
//! it. A read that waited in vain says who held the tenant (`TenantBusy`),
//! never that it was destroyed: a backup run that called it gone would
//! report success without it. (After a replace that died, the look again
//! still finds the database fenced off, and says so as before, until a
//! checkout or `remove_debris` puts it back.)

use std::path::Path;

use crate::busy::WaitedFor;
use crate::error::Result;
use crate::fs::siblings::restore_mark_path;
use crate::fs::{Patience, sys};
use crate::name::TenantName;
use crate::storage::coordination::tenant_path::{TenantLock, TenantPath, lock_tenant};

/// Whether an operation replacing the tenant at `at` has left its mark
/// (it is running, or died and awaits `remove_debris`).
pub(crate) fn being_replaced(at: TenantPath<'_>) -> bool {
    let parent = at.entry().parent().unwrap_or(at.root());
    sys::symlink_metadata(&parent.join(restore_mark_path(at.entry_name()))).is_ok()
}

/// The tenant whose database is `path` beneath `root`, if an operation
/// replacing it has left its mark, in whichever layout made it: beside
/// the tenant's own directory, or beside its database file.
pub(crate) fn replace_marked<'a>(root: &'a Path, path: &'a Path) -> Option<TenantPath<'a>> {
    [true, false]
        .map(|owns_dir| TenantPath::new(root, path, owns_dir))
        .into_iter()
        .find(|at| being_replaced(*at))
}

/// Waits until no operation replaces the tenant whose database is `path`
/// beneath `root`, in whichever layout marked it, for as long as
/// `patience` allows. `Some(lock)`: one was (it has finished, or died);
/// the tenant's entry lock, to hold while looking at the tenant again, so
/// that the next replace (a loop of re-keys) cannot fence it off between
/// the wait and the look. `None`: none was.
///
/// # Errors
///
/// [`Error::TenantBusy`] naming the operation still running when
/// `patience` ran out; the errors of taking the tenant's lock.
pub(crate) fn wait_out_replace(
    tenant: &TenantName,
    (root, path): (&Path, &Path),
    patience: &Patience,
) -> Result<Option<TenantLock>> {
    let Some(at) = replace_marked(root, path) else {
        return Ok(None);
    };
    lock_tenant(tenant, at, patience, WaitedFor::Opening).map(Some)
}
