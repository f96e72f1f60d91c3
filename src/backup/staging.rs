//! Where a `backup_all` run's copies wait for their window's sync: a
//! directory of the run's own in the backup's `.tenanted/`
//! (`staging-PID-N`). A copy is never in its tenant's place, and its
//! tenant directory is not even made, before the copy is on disk; a run
//! killed meanwhile leaves its copies here, where no listing looks, and
//! holds one open directory however many copies wait.
//!
//! The run holds an exclusive `flock` on its staging directory. A later
//! run removes every staging directory nobody holds (its run died); one
//! it found unlocked just as its run was taking it is told apart by the
//! run, which checks after locking that its directory is still there.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::fs::dir::Dir;
use crate::fs::files::remove_tree_quietly;
use crate::fs::{run_dirs, sys};
use crate::paths::INTERNAL_DIR;

const PREFIX: &str = "staging-";

/// How many times a run makes a staging directory that another run's
/// sweep removed before it could lock it.
const ATTEMPTS: usize = 3;

/// A run's staging directory, removed (with anything left in it) when
/// dropped.
pub(crate) struct Staging {
    parent: Dir,
    name: PathBuf,
    dir: Dir,
}

impl Staging {
    /// Makes and locks a staging directory in the backup directory
    /// `backup`'s `.tenanted/`, first removing the ones no run holds.
    ///
    /// # Errors
    ///
    /// The directory cannot be made, opened or locked.
    pub(crate) fn new(backup: &Path) -> io::Result<Staging> {
        let parent = Dir::open(backup, &backup.join(INTERNAL_DIR))?;
        run_dirs::remove_unheld(&parent, PREFIX, "the copies a killed backup run left");
        for _ in 0..ATTEMPTS {
            if let Some(staging) = Self::take(&parent)? {
                return Ok(staging);
            }
        }
        Err(io::Error::other(
            "another backup run kept removing this run's staging directory",
        ))
    }

    /// One attempt: `None` if the directory was swept away before it was
    /// locked.
    fn take(parent: &Dir) -> io::Result<Option<Staging>> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = PathBuf::from(format!("{PREFIX}{}-{n}", std::process::id()));
        sys::make_dir(parent.fd(), &name)?;
        let dir = parent.child(&name)?;
        if !run_dirs::hold(parent, &name, &dir)? {
            return Ok(None);
        }
        Ok(Some(Staging {
            parent: parent.duplicate()?,
            name,
            dir,
        }))
    }

    /// The directory, open (and locked).
    pub(crate) fn dir(&self) -> &Dir {
        &self.dir
    }

    /// The directory opened anew, for a `syncfs` that must report every
    /// write error on its file system from now on: Linux reports one to
    /// each open file once, so a descriptor another worker's sync has
    /// already been told through would say nothing.
    ///
    /// # Errors
    ///
    /// The directory cannot be opened.
    pub(crate) fn open_for_sync(&self) -> io::Result<Dir> {
        self.parent.child(&self.name)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        remove_tree_quietly(&self.parent, &self.name);
    }
}
