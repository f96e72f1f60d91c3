//! The file systems a `backup_all` run writes to, synced a window of
//! copies at a time (`syncfs`), and once more at the end.
//!
//! A backup directory is one file system, unless something is mounted
//! inside it: each copy's directory is looked at (its device), and every
//! file system met is synced through a directory open on it. Nothing is
//! trusted to be on disk because another file system was synced.

use std::io;

use parking_lot::Mutex;

use crate::fs::dir::Dir;
use crate::fs::sys;

/// One open directory on each file system a run has written to.
pub(crate) struct FileSystems {
    seen: Mutex<Vec<(u64, Dir)>>,
}

impl FileSystems {
    pub(crate) fn new() -> Self {
        FileSystems {
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Syncs every file system the directories `dirs` are on, once each,
    /// and remembers them for [`FileSystems::sync_every`].
    ///
    /// # Errors
    ///
    /// A directory cannot be looked at, or a sync failed: nothing written
    /// to that file system since the last sync can be trusted to be there.
    pub(crate) fn sync<'a>(&self, dirs: impl Iterator<Item = &'a Dir>) -> io::Result<()> {
        let mut here: Vec<(u64, &Dir)> = Vec::new();
        for dir in dirs {
            let device = sys::fstat(dir.fd())?.st_dev;
            if !here.iter().any(|(seen, _)| *seen == device) {
                here.push((device, dir));
            }
        }
        for (device, dir) in here {
            sys::sync_file_system(dir.fd(), dir.path())?;
            let mut seen = self.seen.lock();
            if !seen.iter().any(|(known, _)| *known == device) {
                seen.push((device, dir.duplicate()?));
            }
        }
        Ok(())
    }

    /// Syncs every file system seen, and the one `base` is on: the
    /// directory entries the run made since each was last synced.
    ///
    /// # Errors
    ///
    /// As [`FileSystems::sync`].
    pub(crate) fn sync_every(&self, base: &Dir) -> io::Result<()> {
        let base_device = sys::fstat(base.fd())?.st_dev;
        sys::sync_file_system(base.fd(), base.path())?;
        for (device, dir) in self.seen.lock().iter() {
            if *device != base_device {
                sys::sync_file_system(dir.fd(), dir.path())?;
            }
        }
        Ok(())
    }
}
