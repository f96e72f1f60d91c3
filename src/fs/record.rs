//! Small text files in `.tenanted/` that describe the root (its layout, the
//! migrations applied in it): never seen half written, and never lost to
//! two writers at once.
//!
//! A read-only root cannot be recorded in. For the root's description
//! that is not an error (nothing can be created there either), only
//! logged ([`update_record`]); a change the caller must not lose silently
//! (a tenant's limits, what replicates the root) fails there, unless the
//! record already says it ([`rewrite_record`]).

use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use crate::busy::WaitedFor;
use crate::error::{Error, Result};
use crate::fs::dir::Dir;
use crate::fs::files::remove_quietly;
use crate::fs::lock::{FileLock, split};
use crate::fs::siblings::{is_scratch, lock_path, scratch_path};
use crate::fs::{Patience, sys};

/// How long a record written outside any tenant's operation (a backup
/// directory's history, the replication settings) waits for another
/// process writing it.
pub(crate) const RECORD_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The record at `path` (`ROOT/INTERNAL/NAME`), read without following a
/// link at `internal` or at the record itself (someone else may have put
/// either there; the root itself may be a link, the user's choice), and
/// at most 64 KiB of it: a record is a few lines.
pub(crate) fn read_contained(root: &Path, internal: &Path, path: &Path) -> io::Result<String> {
    // The root itself may be a link (where it lives is the user's to
    // choose); nothing beneath it is followed.
    let dir = sys::open_root(root)?;
    let internal = sys::open_dir(dir.as_fd(), internal)?;
    let name = Path::new(path.file_name().unwrap_or_default());
    let file = std::fs::File::from(sys::open_any(internal.as_fd(), name)?);
    sys::read_text(file, 64 * 1024, name)
}

/// Writes `text` to `path` unless a record is already there; returns the
/// record that was there, if any. The record is looked for first: one
/// already there is never written again (a full disk does not stop a
/// root that describes itself).
///
/// # Errors
///
/// I/O errors other than a read-only root.
pub(crate) fn record_once(path: &Path, text: &str) -> Result<Option<String>> {
    if let Some(there) = read_record(path)? {
        return Ok(Some(there));
    }
    let written = record_dir(path, true).and_then(|(dir, name)| {
        let scratch = write_scratch(&dir, name, text)?;
        let linked = sys::link(dir.fd(), &scratch, name);
        remove_quietly(&dir, &scratch);
        linked?;
        dir.sync()
    });
    match written {
        Ok(()) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read(path).map(Some),
        Err(e) if read_only(&e) => {
            tracing::info!(record = %path.display(), error = %e, "read-only root: not recorded");
            Ok(None)
        }
        Err(e) => Err(Error::io(None, path, "recording the root's description", e)),
    }
}

/// Reads the record at `path`, if there is one.
///
/// # Errors
///
/// I/O errors other than a missing record.
pub(crate) fn read_record(path: &Path) -> Result<Option<String>> {
    let read = record_dir(path, false)
        .and_then(|(dir, name)| sys::read_text(sys::open_file(dir.fd(), name)?, u64::MAX, name));
    match read {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(None, path, "reading the root's description", e)),
    }
}

/// The first line that is not text of a record whose read failed with
/// `e` ([`read_record`]'s error), if that is why it failed: each record's
/// reader then says it is damaged, in its own words.
pub(crate) fn not_text_line(e: &Error) -> Option<usize> {
    match e {
        Error::Io { cause, .. } => sys::NotText::in_error(cause).map(|n| n.line),
        _ => None,
    }
}

/// Rewrites the record at `path` under its lock (waited for until
/// `patience` runs out): `update` gets what is there and returns what
/// should be (`None`: leave it as it is).
///
/// # Errors
///
/// `update`'s error, or I/O errors other than a read-only root (a lock
/// held past the deadline is `TimedOut`, saying by whom).
pub(crate) fn update_record(
    path: &Path,
    patience: &Patience,
    update: impl FnOnce(Option<&str>) -> Result<Option<String>>,
) -> Result<()> {
    let lock_file = lock_path(path);
    let doing = WaitedFor::RootRecord;
    let lock = match FileLock::acquire(root_of(path), &lock_file, true, patience, doing) {
        Ok(lock) => lock,
        Err(e) if read_only(&e) => {
            let current = read_record(path)?;
            // Still check what is there; only the writing is skipped.
            return update(current.as_deref()).map(drop);
        }
        Err(e) => {
            return Err(Error::io(
                None,
                lock_file,
                "locking the root's description",
                e,
            ));
        }
    };
    rewrite_locked(&lock, path, update, "recording the root's description")
}

/// As [`update_record`], but a root that cannot be written is an error
/// when the record must change: for records whose change the caller must
/// not lose silently (a tenant's limits, what replicates the root).
///
/// `operation` says, for its lock's error, what was being recorded;
/// `patience`, how long to wait for that lock: [`RECORD_WAIT`] for an
/// operator's call outside any tenant operation, else the operation's
/// own deadline.
///
/// # Errors
///
/// `update`'s error, or any I/O error.
pub(crate) fn rewrite_record(
    (path, operation): (&Path, &'static str),
    patience: &Patience,
    update: impl FnOnce(Option<&str>) -> Result<Option<String>>,
) -> Result<()> {
    let lock_file = lock_path(path);
    let doing = WaitedFor::RootRecord;
    let lock = match FileLock::acquire(root_of(path), &lock_file, true, patience, doing) {
        Ok(lock) => lock,
        // A record already as asked needs no write, nor a lock: no error
        // on a root this process cannot write.
        Err(e) if read_only(&e) => {
            return match update(read_record(path)?.as_deref())? {
                None => Ok(()),
                Some(_) => Err(Error::io(None, lock_file, operation, e)),
            };
        }
        Err(e) => return Err(Error::io(None, lock_file, operation, e)),
    };
    rewrite_locked(
        &lock,
        path,
        update,
        "writing the record (a synced scratch file renamed over it)",
    )
}

/// Under `lock`: `update` what is at `path`, by rename of a synced scratch
/// file (`writing` says it in an error); unlocked (unlink, then unlock)
/// on return.
fn rewrite_locked(
    lock: &FileLock,
    path: &Path,
    update: impl FnOnce(Option<&str>) -> Result<Option<String>>,
    writing: &'static str,
) -> Result<()> {
    let current = read_record(path)?;
    if let Some(text) = update(current.as_deref())? {
        let (dir, name) = (lock.dir(), crate::fs::siblings::name_of(path));
        remove_dead_scratches(dir, name);
        write_scratch(dir, name, &text)
            .and_then(|scratch| sys::rename(dir.fd(), &scratch, name))
            .and_then(|()| dir.sync())
            .map_err(|e| Error::io(None, path, writing, e))?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    read_record(path)?.ok_or_else(|| {
        let gone = io::Error::from(io::ErrorKind::NotFound);
        Error::io(None, path, "reading the root's description", gone)
    })
}

/// The root a record at `ROOT/.tenanted/NAME` belongs to.
fn root_of(path: &Path) -> &Path {
    path.parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."))
}

/// The record's directory (made if `make`), reached without following
/// links, and the record's name in it.
fn record_dir(path: &Path, make: bool) -> io::Result<(Dir, &Path)> {
    let (parent, name) = split(path)?;
    let dir = if make {
        Dir::make(root_of(path), parent)?
    } else {
        Dir::open(root_of(path), parent)?
    };
    Ok((dir, name))
}

/// Removes the scratch files of the record `name` in `dir` that writers
/// killed before their rename left (`.limits.tmp-PID-N`: 18 from one
/// round of killed `suspend` commands, an outside probe). Called holding
/// the record's lock, which every writer of it holds while its scratch
/// file exists: any other is a dead writer's.
fn remove_dead_scratches(dir: &Dir, name: &Path) {
    let Ok(entries) = dir.entries() else { return };
    let record = name.to_string_lossy();
    for (entry, is_dir) in entries.into_iter().flatten() {
        if !is_dir && is_scratch(&entry.to_string_lossy(), &record) {
            remove_quietly(dir, &entry);
        }
    }
}

/// A synced scratch file beside `name` in `dir` holding `text`.
fn write_scratch(dir: &Dir, name: &Path, text: &str) -> io::Result<std::path::PathBuf> {
    let scratch = scratch_path(name);
    let written = sys::create_new(dir.fd(), &scratch).and_then(|mut file| {
        sys::write_all(&mut file, text.as_bytes(), &scratch)?;
        sys::sync(std::os::fd::AsFd::as_fd(&file), &scratch)
    });
    match written {
        Ok(()) => Ok(scratch),
        Err(e) => {
            remove_quietly(dir, &scratch);
            Err(e)
        }
    }
}

fn read_only(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied
    )
}
