//! The open gate: what makes "no process holds the old file" observable.
//!
//! A destroy can only see processes that hold SQLite's lock on a database
//! (see `holders`). A connection takes that lock on its first read, a
//! moment *after* it opened the file by path; a destroy that looked in
//! between would miss it, delete the file, and that connection would then
//! read (and on close, checkpoint and delete) the `-wal` of whatever tenant
//! is created next at the same path, since SQLite finds sidecars by name.
//!
//! So every open of a tenant database holds a shared `flock` on the
//! database's directory from before `open()` until the connection holds its
//! lock and has checked that the path still names the file it opened. A
//! destroy first moves the database away (no new open can reach it), then
//! takes the same `flock` exclusively once ([`barrier`]): every open that
//! might have reached the old file has finished by then, and either holds
//! the lock (and is seen) or knows it opened a moved file.

use std::fs::File;
use std::io;
use std::path::Path;

use super::file_id::FileId;

/// A shared hold on a directory's open gate; released on drop.
#[derive(Debug)]
pub(crate) struct OpenGate {
    _dir: File,
}

/// How many times `enter` starts again after the directory was replaced
/// under it; each retry means a destroy or create made progress.
const MAX_ATTEMPTS: usize = 100;

impl OpenGate {
    /// Holds the gate of `dir`, the directory a tenant database is in.
    ///
    /// # Errors
    ///
    /// `NotFound` if `dir` does not exist (so neither does the tenant).
    pub(crate) fn enter(dir: &Path) -> io::Result<OpenGate> {
        for _ in 0..MAX_ATTEMPTS {
            let file = File::open(dir)?;
            file.lock_shared()?;
            // A directory removed (and maybe made again) while we waited
            // is not the one a destroy will put its barrier on.
            if FileId::still_at(&file, dir)? {
                return Ok(OpenGate { _dir: file });
            }
        }
        Err(io::Error::other(format!(
            "{} kept being replaced while opening a tenant in it",
            dir.display()
        )))
    }
}

/// Waits until every open that started before now in `dir` has finished.
///
/// # Errors
///
/// I/O errors opening or locking `dir`; a missing `dir` has no opens.
pub(crate) fn barrier(dir: &Path) -> io::Result<()> {
    let file = match File::open(dir) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    // Released when `file` closes.
    file.lock()
}
