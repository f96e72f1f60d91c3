//! File-system steps every operation shares: making a rename or link
//! durable, removing files quietly (a database with its sidecars, the
//! directories left empty), and building a database by rename.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::open::literal_path;
use super::siblings::{SQLITE_SIDECARS, scratch_path};
use crate::error::{Error, Result};

/// Removes a database file and its SQLite sidecars.
pub(super) fn remove_with_sidecars(db: &Path) {
    // The -wal first: a database without its WAL is stale but consistent,
    // while a WAL without its database could be replayed into a new one.
    for suffix in SQLITE_SIDECARS {
        let mut sidecar = db.as_os_str().to_owned();
        sidecar.push(suffix);
        remove_quietly(Path::new(&sidecar));
    }
    remove_quietly(db);
}

/// Removes a file; a missing one is fine, another failure is logged.
pub(super) fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(file = %path.display(), error = %e, "could not remove file");
    }
}

/// Removes the directories above `path` that are now empty, up to (not
/// including) the first one that is not.
/// Removes the directory `path` and everything in it (symlinks inside are
/// removed, never followed); a missing one is fine.
pub(super) fn remove_dir_quietly(path: &Path) {
    if let Err(e) = fs::remove_dir_all(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %path.display(), error = %e, "could not remove directory");
    }
}

pub(super) fn remove_empty_parents(path: &Path, root: &Path) {
    let mut dir = path.parent();
    // Never the root itself, nor anything above or beside it.
    while let Some(d) = dir.filter(|d| d.starts_with(root) && *d != root) {
        if fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// Makes a rename or link in `path`'s directory durable. Best effort: some
/// file systems cannot sync directories.
/// Makes the directories a create just made durable: each one's entry in
/// its parent, up to and including the root's directory.
pub(super) fn sync_new_dirs(path: &Path, root: &Path) {
    let mut dir = path.parent();
    while let Some(d) = dir.filter(|d| d.starts_with(root) && *d != root) {
        sync_dir(d);
        dir = d.parent();
    }
}

pub(super) fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent()
        && let Err(e) = File::open(dir).and_then(|d| d.sync_all())
    {
        tracing::debug!(dir = %dir.display(), error = %e, "could not sync directory");
    }
}

/// Builds a database at `path` with `init`, in a scratch file published by
/// rename: used for the template database, which only tenanted writes.
pub(super) fn build_by_rename(
    path: &Path,
    init: impl FnOnce(&mut Connection) -> Result<()>,
) -> Result<File> {
    let scratch = scratch_path(path);
    let result = build_and_rename(&scratch, path, init);
    if result.is_err() {
        remove_with_sidecars(&scratch);
    }
    result
}

fn build_and_rename(
    scratch: &Path,
    path: &Path,
    init: impl FnOnce(&mut Connection) -> Result<()>,
) -> Result<File> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(literal_path(scratch), flags)
        .map_err(|e| Error::sqlite(None, scratch, "creating the template database", e))?;
    init(&mut conn)?;
    conn.close()
        .map_err(|(_, e)| Error::sqlite(None, scratch, "closing the template database", e))?;
    // Opened before the rename: the caller reads what it built even if
    // another process removes the path right after.
    let built = File::open(scratch)
        .and_then(|f| f.sync_all().map(|()| f))
        .and_then(|f| fs::rename(scratch, path).map(|()| f))
        .map_err(|e| Error::io(None, path, "publishing the template database", e))?;
    sync_dir(path);
    Ok(built)
}
