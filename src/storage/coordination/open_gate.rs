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

use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use crate::busy::{Busy, WaitedFor};
use crate::error::OtherProcess;
use crate::fs::dir::Dir;
use crate::fs::file_id::FileId;
use crate::fs::flock_holders::flock_holder;
use crate::fs::{Patience, sys};

/// A shared hold on a directory's open gate; released on drop.
#[derive(Debug)]
pub(crate) struct OpenGate {
    dir: Dir,
}

/// How many times `enter` starts again after the directory was replaced
/// under it; each retry means a destroy or create made progress.
const MAX_ATTEMPTS: usize = 100;

impl OpenGate {
    /// Holds the gate of `dir` (beneath `root`), the directory a tenant
    /// database is in. The gate is held exclusively only for the instant
    /// a destroy passes it; a destroy stopped in that instant is waited
    /// for until `patience` runs out.
    ///
    /// # Errors
    ///
    /// `NotFound` if `dir` does not exist (so neither does the tenant); a
    /// `Blocked` error if a link stands on the way (see `dir.rs`); a
    /// `Busy` error (kind `TimedOut`) past the deadline.
    pub(crate) fn enter(root: &Path, dir: &Path, patience: &Patience) -> io::Result<OpenGate> {
        for _ in 0..MAX_ATTEMPTS {
            let opened = Dir::open(root, dir)?;
            hold(&opened, true, patience, WaitedFor::Destroy)?;
            // A directory removed (and maybe made again) while we waited
            // is not the one a destroy will put its barrier on.
            if FileId::at(dir)? == Some(FileId::from_stat(&sys::fstat(opened.fd())?)) {
                return Ok(OpenGate { dir: opened });
            }
        }
        Err(io::Error::other(format!(
            "{} kept being replaced while opening a tenant in it",
            dir.display()
        )))
    }

    /// The directory, held open (and contained: see `dir.rs`).
    pub(crate) fn dir(&self) -> &Dir {
        &self.dir
    }
}

/// Waits until every open that started before now in `dir` has finished,
/// or `patience` runs out.
///
/// # Errors
///
/// I/O errors opening or locking `dir`; a `Busy` error (kind `TimedOut`)
/// naming the process still opening a connection at the deadline.
pub(crate) fn barrier(dir: &Dir, patience: &Patience) -> io::Result<()> {
    // A description of its own: `flock` belongs to open file descriptions,
    // and the lock is released when this one closes.
    let own = sys::open_dir(dir.fd(), Path::new("."))?;
    hold(&own, false, patience, WaitedFor::Opening)
}

/// Takes the `flock` on directory `fd` (shared or not) until `patience`
/// runs out; then `waited_for` is what held it.
fn hold(
    fd: &impl AsFd,
    shared: bool,
    patience: &Patience,
    waited_for: WaitedFor,
) -> io::Result<()> {
    let name = Path::new(".");
    let taken = patience.retry(|| Ok(sys::flock(fd, shared, false, name)?.then_some(())))?;
    taken.ok_or_else(|| {
        Busy {
            waited_for,
            other_process: Some(OtherProcess {
                pid: flock_holder(fd.as_fd()),
            }),
            waited: patience.waited(),
        }
        .into_io()
    })
}
