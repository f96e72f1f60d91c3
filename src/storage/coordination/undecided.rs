//! A tenant whose fate an operation is deciding: a destroy, or a restore
//! with replace or a re-key replacing it.
//!
//! Such an operation marks the tenant (`.acme.destroying` or
//! `.acme.restoring` beside its entry) and fences its database off (the
//! file renamed away) before it acts; if it gives up or dies, the old
//! database goes back. So a read that finds no database at its path
//! while a mark stands has not found the tenant gone: the operation holds
//! the tenant's entry lock from before its mark to after its last step,
//! and the read waits for that lock, then looks again holding it. Once
//! it is done the tenant is there (replaced, or a destroy that gave up)
//! or truly gone (destroyed). A read that waited in vain says who held
//! the tenant (`TenantBusy`), never that it was destroyed: a backup run
//! that called it gone would report success without it. (After a replace
//! that died, a fleet run has put the database back before it reads it,
//! as a checkout does: see `Found::interrupted`; a read by a tenant's
//! name that finds it still fenced off says so, until a checkout or
//! `remove_debris` puts it back.)

use std::path::{Path, PathBuf};

use crate::busy::WaitedFor;
use crate::error::Result;
use crate::fs::siblings::{fence_path, restore_mark_path};
use crate::fs::{Patience, sys};
use crate::name::TenantName;
use crate::storage::coordination::tenant_path::{TenantLock, TenantPath, lock_tenant};

/// Whether an operation replacing the tenant at `at` has left its mark
/// (it is running, or died and awaits `remove_debris`).
fn being_replaced(at: TenantPath<'_>) -> bool {
    let parent = at.entry().parent().unwrap_or(at.root());
    sys::symlink_metadata(&parent.join(restore_mark_path(at.entry_name()))).is_ok()
}

/// Whether a restore replacing the tenant at `at`, or a re-key, has its
/// database fenced off under its mark (running, or dead and not yet put
/// back): the tenant exists, old or new, either way. A mark alone (a
/// leftover, a planted one) is not enough.
pub(crate) fn fenced_by_replace(at: TenantPath<'_>) -> bool {
    let fenced = at.db_dir().join(fence_path(at.db_name()));
    being_replaced(at) && sys::symlink_metadata(&fenced).is_ok_and(|m| m.is_file())
}

/// Whether a destroy, or an operation replacing the tenant, has left its
/// marks at `at` (it is running, or died and awaits `remove_debris`):
/// until they are gone, whether the tenant stays is not decided.
pub(crate) fn marked(at: TenantPath<'_>) -> bool {
    let there = |p: PathBuf| sys::symlink_metadata(&p).is_ok();
    there(at.db_dir().join(fence_path(at.db_name()))) || entry_marked(at)
}

/// Whether the marks beside `at`'s entry are there (a destroy's, a
/// replace's); in a layout with a directory per tenant, only such a
/// layout makes them.
fn entry_marked(at: TenantPath<'_>) -> bool {
    let parent = at.entry().parent().unwrap_or(at.root());
    sys::symlink_metadata(&parent.join(fence_path(at.entry_name()))).is_ok() || being_replaced(at)
}

/// The tenant whose database is `path` beneath `root`, if an operation
/// deciding its fate has left its marks, in whichever layout made them:
/// beside the tenant's own directory, or beside its database file. The
/// marks beside an entry decide: a fenced database file alone is the
/// same path in either reading, and a flat layout read as one with
/// directories would name the bucket's lock, which nobody holds (a
/// review: a restore in a flat layout was no longer waited for).
pub(crate) fn marked_in_any_layout<'a>(root: &'a Path, path: &'a Path) -> Option<TenantPath<'a>> {
    let own_dir = TenantPath::new(root, path, true);
    if entry_marked(own_dir) {
        return Some(own_dir);
    }
    let flat = TenantPath::new(root, path, false);
    marked(flat).then_some(flat)
}

/// Waits until no operation decides the fate of the tenant whose
/// database is `path` beneath `root`, in whichever layout marked it, for
/// as long as `patience` allows. `Some(lock)`: one was (it has finished,
/// or died); the tenant's entry lock, to hold while looking at the tenant
/// again, so that the next operation (a loop of re-keys) cannot fence it
/// off between the wait and the look. `None`: none was.
///
/// # Errors
///
/// [`Error::TenantBusy`](crate::Error::TenantBusy) naming the operation
/// still running when `patience` ran out;
/// [`Error::TenantDoesNotExist`](crate::Error::TenantDoesNotExist) when
/// it was a destroy that went through; the errors of taking the tenant's
/// lock.
pub(crate) fn wait_out_decision(
    tenant: &TenantName,
    (root, path): (&Path, &Path),
    patience: &Patience,
) -> Result<Option<TenantLock>> {
    let Some(at) = marked_in_any_layout(root, path) else {
        return Ok(None);
    };
    lock_tenant(tenant, at, patience, WaitedFor::Opening).map(Some)
}
