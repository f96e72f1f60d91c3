//! Directories a run makes for its own work beside other runs' (a
//! backup's staging, a rebuild's): each run holds an exclusive `flock` on
//! its directory while it lasts, so a later run can tell one whose run was
//! killed (nobody holds it) and remove it with what it left, copies of
//! tenants' data included, instead of letting them pile up.

use std::path::Path;

use crate::fs::dir::Dir;
use crate::fs::file_id::FileId;
use crate::fs::files::remove_tree_quietly;
use crate::fs::sys;

/// Takes the lock on `dir`, the run's own directory `name` in `parent`,
/// made just now: `false` when another run's sweep removed it before it
/// was locked (the run makes another).
///
/// # Errors
///
/// The lock or a look at the directory failed.
pub(crate) fn hold(parent: &Dir, name: &Path, dir: &Dir) -> std::io::Result<bool> {
    if !sys::flock(&dir.fd(), false, false, name)? {
        return Ok(false);
    }
    let here = FileId::in_dir(parent, name)?;
    Ok(here == Some(FileId::from_stat(&sys::fstat(dir.fd())?)))
}

/// Removes the directories in `parent` named with `prefix` that no run
/// holds (see [`hold`]): what runs killed before they ended left there.
/// `what` says what they held, for the log.
pub(crate) fn remove_unheld(parent: &Dir, prefix: &str, what: &str) {
    let Ok(entries) = parent.entries() else {
        return;
    };
    for (name, is_dir) in entries.into_iter().flatten() {
        if !is_dir || !name.to_str().is_some_and(|n| n.starts_with(prefix)) {
            continue;
        }
        let Ok(dir) = parent.child(&name) else {
            continue;
        };
        // Held until the directory is gone: a run that made it and locks
        // it meanwhile fails to, or finds it gone, and makes another.
        if sys::flock(&dir.fd(), false, false, &name).unwrap_or(false) {
            tracing::info!(dir = %parent.join(&name).display(), "removing {what}");
            remove_tree_quietly(parent, &name);
        }
        drop(dir);
    }
}
