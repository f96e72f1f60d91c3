//! Small text files in `.tenanted/` that describe the root (its layout, the
//! migrations applied in it): never seen half written, and never lost to
//! two writers at once.
//!
//! A read-only root cannot be recorded in; that is not an error (nothing
//! can be created there either), only logged.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::files::{remove_quietly, sync_dir};
use super::lock::FileLock;
use super::siblings::{lock_path, scratch_path};
use crate::error::{Error, Result};

/// Writes `text` to `path` unless a record is already there; returns the
/// record that was there, if any.
///
/// # Errors
///
/// I/O errors other than a read-only root.
pub(crate) fn record_once(path: &Path, text: &str) -> Result<Option<String>> {
    let written = write_scratch(path, text).and_then(|scratch| {
        let linked = fs::hard_link(&scratch, path);
        remove_quietly(&scratch);
        linked
    });
    match written {
        Ok(()) => {
            sync_dir(path);
            Ok(None)
        }
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
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(None, path, "reading the root's description", e)),
    }
}

/// Rewrites the record at `path` under its lock: `update` gets what is
/// there and returns what should be (`None`: leave it as it is).
///
/// # Errors
///
/// `update`'s error, or I/O errors other than a read-only root.
pub(crate) fn update_record(
    path: &Path,
    update: impl FnOnce(Option<&str>) -> Result<Option<String>>,
) -> Result<()> {
    let lock_file = lock_path(path);
    let lock = match FileLock::acquire(&lock_file, true) {
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
    let current = read_record(path)?;
    if let Some(text) = update(current.as_deref())? {
        write_scratch(path, &text)
            .and_then(|scratch| fs::rename(&scratch, path))
            .map_err(|e| Error::io(None, path, "recording the root's description", e))?;
        sync_dir(path);
    }
    drop(lock);
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error::io(None, path, "reading the root's description", e))
}

/// A synced scratch file beside `path` holding `text`.
fn write_scratch(path: &Path, text: &str) -> io::Result<std::path::PathBuf> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let scratch = scratch_path(path);
    let written = File::create_new(&scratch).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    match written {
        Ok(()) => Ok(scratch),
        Err(e) => {
            remove_quietly(&scratch);
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
