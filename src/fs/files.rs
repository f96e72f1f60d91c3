//! File-system steps every operation shares, relative to an open [`Dir`]:
//! removing files quietly (a database with its sidecars, a directory
//! tree, the directories left empty), and building a database by rename.

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::fs::dir::Dir;
use crate::fs::siblings::{SQLITE_SIDECARS, scratch_path, sidecar_path};
use crate::fs::sys;
use crate::name::TenantName;

/// Removes database `db` in `dir` and its SQLite sidecars.
pub(crate) fn remove_with_sidecars(dir: &Dir, db: &Path) {
    // The -wal first: a database without its WAL is stale but consistent,
    // while a WAL without its database could be replayed into a new one.
    for suffix in SQLITE_SIDECARS {
        let mut sidecar = db.as_os_str().to_owned();
        sidecar.push(suffix);
        remove_quietly(dir, Path::new(&sidecar));
    }
    remove_quietly(dir, db);
}

/// Removes the SQLite sidecars of database `db` in `dir`, the WAL first,
/// stopping at the first that cannot be removed (a missing one is fine):
/// its path and the error. For a database about to be removed, which
/// must not go while its WAL stays (see [`remove_with_sidecars`]).
pub(crate) fn remove_sidecars(
    dir: &Dir,
    db: &Path,
) -> std::result::Result<(), (std::path::PathBuf, io::Error)> {
    for suffix in SQLITE_SIDECARS {
        let sidecar = sidecar_path(db, suffix);
        match sys::unlink(dir.fd(), &sidecar) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err((dir.join(&sidecar), e)),
            _ => {}
        }
    }
    Ok(())
}

/// Removes file `name` from `dir`; a missing one is fine, another
/// failure is logged.
pub(crate) fn remove_quietly(dir: &Dir, name: &Path) {
    if let Err(e) = sys::unlink(dir.fd(), name)
        && e.kind() != io::ErrorKind::NotFound
    {
        let file = dir.join(name);
        tracing::warn!(file = %file.display(), error = %e, "could not remove file");
    }
}

/// Removes directory `name` in `dir` and everything in it (links inside
/// are removed, never followed); a missing one is fine.
pub(crate) fn remove_tree_quietly(dir: &Dir, name: &Path) {
    if let Err(e) = remove_tree(dir, name)
        && e.kind() != io::ErrorKind::NotFound
    {
        let path = dir.join(name);
        tracing::warn!(dir = %path.display(), error = %e, "could not remove directory");
    }
}

/// Removes directory `name` in `dir` and everything in it (links inside
/// are removed, never followed).
pub(crate) fn remove_tree(dir: &Dir, name: &Path) -> io::Result<()> {
    let inner = dir.child(name)?;
    for entry in inner.entries()? {
        let (entry, is_dir) = entry?;
        if is_dir {
            remove_tree(&inner, &entry)?;
        } else {
            sys::unlink(inner.fd(), &entry)?;
        }
    }
    sys::remove_dir(dir.fd(), name)
}

/// Replaces file `name` in `dir` with one holding `bytes`: written to a
/// fresh scratch file (created exclusively, never through a link) and
/// renamed over `name`, so whatever was at `name` (a link planted there
/// included) is replaced, never written through. Not synced: for files
/// that are made again when lost (a configuration, a pid, a cache).
pub(crate) fn replace_file(dir: &Dir, name: &Path, bytes: &[u8]) -> io::Result<()> {
    let scratch = scratch_path(name);
    let written = sys::create_new(dir.fd(), &scratch)
        .and_then(|mut file| sys::write_all(&mut file, bytes, &scratch))
        .and_then(|()| sys::rename(dir.fd(), &scratch, name));
    if written.is_err() {
        remove_quietly(dir, &scratch);
    }
    written
}

/// The text of file `name` in `dir` (never through a link), at most
/// `limit` bytes.
pub(crate) fn read_file(dir: &Dir, name: &Path, limit: u64) -> io::Result<String> {
    sys::read_text(sys::open_file(dir.fd(), name)?, limit, name)
}

/// Renames `from` to `to` in `dir`, never replacing what is at `to`.
///
/// Where the file system cannot promise that (`EINVAL`): a look, then a
/// plain rename. The caller's locks keep tenanted's own files (of this
/// release and earlier ones) away from `to` in between.
pub(crate) fn rename_no_replace(dir: &Dir, from: &Path, to: &Path) -> io::Result<()> {
    match sys::rename_no_replace(dir.fd(), from, to) {
        Err(e) if cannot_promise(&e) => match sys::stat(dir.fd(), to) {
            Ok(_) => Err(io::Error::from(io::ErrorKind::AlreadyExists)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => sys::rename(dir.fd(), from, to),
            Err(e) => Err(e),
        },
        other => other,
    }
}

/// Whether a rename failed because the kernel or file system cannot do
/// what its flags ask (`EINVAL`; `ENOSYS` from an old kernel or a
/// sandbox).
pub(crate) fn cannot_promise(e: &io::Error) -> bool {
    let code = e.raw_os_error();
    code == Some(rustix::io::Errno::INVAL.raw_os_error())
        || code == Some(rustix::io::Errno::NOSYS.raw_os_error())
}

/// Removes the directories from `dir` up that are now empty, stopping at
/// the first that is not, and never the root or anything above it.
pub(crate) fn remove_empty_parents(root: &Path, dir: &Path) {
    let Ok(below) = dir.strip_prefix(root) else {
        return;
    };
    let mut chain = below.to_path_buf();
    while let (Some(parent), Some(name)) = (chain.parent(), chain.file_name()) {
        let Ok(parent_dir) = Dir::open(root, &root.join(parent)) else {
            return;
        };
        match sys::remove_dir(parent_dir.fd(), Path::new(name)) {
            Ok(()) => {}
            // Gone already (a destroyed tenant's directory): go on up.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(_) => return,
        }
        chain = parent.to_path_buf();
    }
}

/// Builds a database `name` in `dir` with `init`, in a scratch file
/// published by rename: used for the template database, which only
/// tenanted writes. Returns the built file, open.
pub(crate) fn build_by_rename(
    dir: &Dir,
    name: &Path,
    tenant: &TenantName,
    init: impl FnOnce(&mut Connection) -> Result<()>,
) -> Result<File> {
    let scratch = scratch_path(name);
    let result = build_and_rename(dir, &scratch, name, tenant, init);
    if result.is_err() {
        remove_with_sidecars(dir, &scratch);
    }
    result
}

fn build_and_rename(
    dir: &Dir,
    scratch: &Path,
    name: &Path,
    tenant: &TenantName,
    init: impl FnOnce(&mut Connection) -> Result<()>,
) -> Result<File> {
    let path = dir.join(name);
    let tenant = Some(tenant);
    let scratch_file = dir.join(scratch);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(literal_path(&scratch_file), flags)
        .map_err(|e| Error::sqlite(tenant, &scratch_file, "creating the template database", e))?;
    init(&mut conn)?;
    conn.close().map_err(|(_, e)| {
        Error::sqlite(tenant, &scratch_file, "closing the template database", e)
    })?;
    // Opened before the rename: the caller reads what it built even if
    // another process removes the path right after.
    let built = sys::open_file(dir.fd(), scratch)
        .and_then(|f| sys::sync(f.as_fd(), scratch).map(|()| f))
        .and_then(|f| sys::rename(dir.fd(), scratch, name).map(|()| f))
        .and_then(|f| dir.sync().map(|()| f))
        .map_err(|e| Error::io(tenant, &path, "publishing the template database", e))?;
    Ok(built)
}

/// `path` spelt so that SQLite reads it as a file name, whatever it holds.
///
/// SQLite takes a file name that starts with `file:` for a URI when URI
/// names are on, and the bundled SQLite is built with them on for every
/// open (`SQLITE_USE_URI`), flag or not: a root named `file:tenants` would
/// open `tenants/...`. An absolute path starts with `/`; a relative one is
/// given a leading `./`. Every path handed to SQLite goes through here.
pub(crate) fn literal_path(path: &Path) -> Cow<'_, Path> {
    if path.is_absolute() || path.starts_with(".") {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(Path::new(".").join(path))
    }
}
