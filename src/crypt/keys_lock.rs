//! The keys directory held exclusively while a key file changes.
//!
//! Every change of a tenant's key files (create, stage, commit, discard,
//! destroy) and a rotation's read and rewrite of each file hold it, so a
//! rotation never writes back a key that a re-key or a destroy replaced
//! after the rotation read it (that would leave a database under a key
//! kept nowhere). Readers take no lock: a key file is replaced whole, by
//! rename. A `flock` on the directory, on a description of its own, so
//! that threads of one process exclude each other as processes do.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::fs::dir::Dir;
use crate::fs::{Patience, sys};
use crate::name::TenantName;

/// How long a change of a key waits for another one (or a rotation's
/// step, one file long).
const KEYS_WAIT: Duration = Duration::from_secs(30);

/// The keys directory, held exclusively until dropped.
pub(super) struct KeysLock {
    dir: Dir,
    _held: OwnedFd,
}

impl KeysLock {
    /// Takes the lock of the keys directory `dir`, on behalf of `tenant`.
    ///
    /// # Errors
    ///
    /// [`Error::Encryption`] when another holds it past the wait;
    /// [`Error::Io`] when it cannot be taken.
    pub(super) fn take(dir: Dir, tenant: Option<&TenantName>) -> Result<KeysLock> {
        let io = |e| Error::io(tenant, dir.path(), "locking the keys directory", e);
        let held = sys::open_dir(dir.fd(), Path::new(".")).map_err(io)?;
        let taken = Patience::new(KEYS_WAIT)
            .retry(|| Ok(sys::flock(&held, false, false, Path::new("."))?.then_some(())))
            .map_err(io)?;
        match taken {
            Some(()) => Ok(KeysLock { dir, _held: held }),
            None => Err(Error::Encryption {
                tenant: tenant.cloned(),
                path: dir.path().to_path_buf(),
                reason: format!(
                    "another process held the keys directory for {KEYS_WAIT:?} (a master-key rotation, or a stuck process: see who holds it with `fuser` or /proc/locks); retry once it is done"
                ),
            }),
        }
    }

    /// The keys directory.
    pub(super) fn dir(&self) -> &Dir {
        &self.dir
    }
}
