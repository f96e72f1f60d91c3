//! The keys directory held exclusively while a key file changes.
//!
//! Every change of a tenant's key files (create, stage, commit, discard,
//! destroy) and a rotation's read and rewrite of each file hold it, so a
//! rotation never writes back a key that a re-key or a destroy replaced
//! after the rotation read it (that would leave a database under a key
//! kept nowhere). Readers take no lock: a key file is replaced whole, by
//! rename. A `flock` on the directory, on a description of its own, so
//! that threads of one process exclude each other as processes do.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use crate::busy::{Busy, WaitedFor};
use crate::error::{Error, OtherProcess, Result};
use crate::fs::dir::Dir;
use crate::fs::flock_holders::flock_holder;
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
    /// Takes the lock of the keys directory `dir`, on behalf of `tenant`,
    /// waiting until the operation's deadline (the thread's current
    /// patience, see `Patience::scoped`), or `KEYS_WAIT` for a rotation.
    ///
    /// # Errors
    ///
    /// [`Error::TenantBusy`] naming the holder when it holds the lock past
    /// the wait ([`Error::Encryption`] for a rotation's step);
    /// [`Error::Io`] when it cannot be taken.
    pub(super) fn take(dir: Dir, tenant: Option<&TenantName>) -> Result<KeysLock> {
        let io = |e| Error::io(tenant, dir.path(), "locking the keys directory", e);
        let held = sys::open_dir(dir.fd(), Path::new(".")).map_err(io)?;
        let patience = Patience::current_or(KEYS_WAIT);
        let taken = patience
            .retry(|| Ok(sys::flock(&held, false, false, Path::new("."))?.then_some(())))
            .map_err(io)?;
        if taken.is_some() {
            return Ok(KeysLock { dir, _held: held });
        }
        let holder = OtherProcess {
            pid: flock_holder(held.as_fd()),
        };
        Err(match tenant {
            Some(tenant) => Error::busy(
                tenant,
                dir.path(),
                Busy {
                    waited_for: WaitedFor::KeyChange,
                    other_process: Some(holder),
                    waited: patience.waited(),
                },
            ),
            None => Error::Encryption {
                tenant: None,
                path: dir.path().to_path_buf(),
                reason: format!(
                    "the keys directory stayed locked by {holder} for {:?} (a key being changed, or a stuck process); retry once it is done",
                    patience.waited()
                ),
            },
        })
    }

    /// The keys directory.
    pub(super) fn dir(&self) -> &Dir {
        &self.dir
    }
}
