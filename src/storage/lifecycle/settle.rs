//! A read that finds its tenant gone while the marks of a restore
//! replacing it, or of a re-key, still stand: the operation died between
//! its fence and its swap, and the tenant is there, old or new, once what
//! it left is put back. A checkout does that put-back (`pool/opener.rs`);
//! so does every one-off read of a fleet run (a backup's copy, a status or
//! migration's version, a usage row), here, and then reads again. A backup
//! run that took such a tenant for destroyed reported success without it.

use std::path::Path;

use crate::error::Error;
use crate::fs::siblings::fence_path;
use crate::name::TenantName;
use crate::storage::coordination::undecided::{fenced_by_replace, marked_in_any_layout};
use crate::storage::lifecycle::debris::finish_interrupted;

/// What [`put_back_interrupted`] made of a tenant a read found gone.
#[derive(Debug)]
pub(crate) enum Settled {
    /// No operation's marks stand (or only a destroy's): the read's own
    /// answer holds.
    Untouched,
    /// A dead operation's leftovers were finished or undone: read again.
    PutBack,
    /// Fenced off under the mark of a replace that is not running, and not
    /// put back now (another process holds the tenant's lock, or this
    /// process still has the fenced file open): not gone, and not to be
    /// read now; the error says what to do.
    Stuck(Error),
}

impl Settled {
    /// For a read that failed with `e` (the tenant gone): `Ok` to read
    /// again once what a dead operation left was put back, else the
    /// error to give (`e`, or why it could not be put back).
    ///
    /// # Errors
    ///
    /// `e` when nothing was put back; the [`Settled::Stuck`] error.
    pub(crate) fn read_again(self, e: Error) -> Result<(), Error> {
        match self {
            Settled::PutBack => Ok(()),
            Settled::Stuck(stuck) => Err(stuck),
            Settled::Untouched => Err(e),
        }
    }
}

/// After a read of `tenant`, whose database is `path` beneath `root`,
/// found it gone (having waited for any operation deciding its fate):
/// finishes or undoes what a restore or re-key that died left, as a
/// checkout does (`storage::finish_interrupted`: never waits, never
/// finishes a destroy).
pub(crate) fn put_back_interrupted(tenant: &TenantName, (root, path): (&Path, &Path)) -> Settled {
    let Some(at) = marked_in_any_layout(root, path) else {
        return Settled::Untouched;
    };
    match finish_interrupted(tenant, at) {
        Ok(true) => return Settled::PutBack,
        Ok(false) => {}
        Err(e) => {
            tracing::debug!(tenant = %tenant, error = %e, "could not put back a tenant an interrupted restore or re-key left fenced off");
        }
    }
    if !fenced_by_replace(at) {
        return Settled::Untouched;
    }
    let fenced = at.db_dir().join(fence_path(at.db_name()));
    let why = std::io::Error::other(
        "a restore or re-key replacing the tenant was interrupted, and its database could not be put back now (another process holds the tenant, or a connection of this process still has the fenced file open); run `tenanted cleanup` (remove_debris), or wait for the other process, then again",
    );
    Settled::Stuck(Error::io(
        Some(tenant),
        fenced,
        "reading the tenant's database",
        why,
    ))
}
