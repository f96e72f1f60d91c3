//! The root's replication settings as a running process follows them.
//!
//! The settings live in the root (`.tenanted/replication`), and an operator
//! changes them while services run (`tenanted replicate --replica-url`,
//! [`ReplicationSettings::record`](super::ReplicationSettings::record)).
//! Every process must act on the settings recorded *now*: a destroy in a
//! service built before replication was configured must still erase the
//! tenant's replica, in the store the record names, with its retention.
//!
//! So the record is not read once at build: each use looks at the
//! record's `lstat` (its inode, size, modification and change times; a
//! record is rewritten by rename, so any change gives a new inode) and
//! reads it again only when that changed. A look is two system calls
//! (`.tenanted` opened without following a link, then `fstatat`), taken by
//! destroys, replacing restores, `erase_destroyed_replicas`,
//! `replication()` and each scan of `tenanted replicate`: never on the
//! connection path.

use std::io;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use super::lifecycle::Replication;
use super::settings::record_path;
use crate::error::{Error, Result};
use crate::fs::{Dir, sys};
use crate::paths::{INTERNAL_DIR, RootConfig};

/// The record's identity and times: any rewrite changes it.
type Stamp = (u64, i64, i64, i64, i64, i64);

/// A root's replication, read again whenever its record changes.
#[derive(Debug)]
pub(crate) struct Followed {
    root: RootConfig,
    seen: Mutex<Seen>,
}

#[derive(Debug)]
struct Seen {
    stamp: Option<Stamp>,
    replication: Option<Arc<Replication>>,
}

impl Followed {
    /// Follows `root`'s record, read now.
    ///
    /// # Errors
    ///
    /// As [`current`](Self::current).
    pub(crate) fn new(root: &RootConfig) -> Result<Followed> {
        let stamp = stamp(root)?;
        let replication = Replication::of_root(root)?.map(Arc::new);
        Ok(Followed {
            root: root.clone(),
            seen: Mutex::new(Seen { stamp, replication }),
        })
    }

    /// The replication the record says now (`None`: not configured), read
    /// again if the record changed since the last look.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] looking at or reading the record, naming it (a
    /// damaged record says how to record the settings again).
    pub(crate) fn current(&self) -> Result<Option<Arc<Replication>>> {
        let stamp = stamp(&self.root)?;
        let mut seen = self.seen.lock();
        if seen.stamp != stamp {
            let replication = Replication::of_root(&self.root)?.map(Arc::new);
            tracing::info!(
                root = %self.root.root_dir().display(),
                replica = replication.as_ref().map_or("none", |r| r.settings().replica_url()),
                "the root's replication settings changed; following them"
            );
            *seen = Seen { stamp, replication };
        }
        Ok(seen.replication.clone())
    }
}

/// The record's stamp, looked at without following a link; `None` when
/// there is no record (or no `.tenanted`).
fn stamp(root: &RootConfig) -> Result<Option<Stamp>> {
    let path = record_path(root);
    let internal = root.root_dir().join(INTERNAL_DIR);
    let looked = Dir::open(root.root_dir(), &internal)
        .and_then(|dir| sys::stat(dir.fd(), Path::new(path.file_name().unwrap_or_default())));
    match looked {
        Ok(s) => Ok(Some((
            s.st_ino,
            s.st_size,
            s.st_mtime,
            i64::try_from(s.st_mtime_nsec).unwrap_or(0),
            s.st_ctime,
            i64::try_from(s.st_ctime_nsec).unwrap_or(0),
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(
            None,
            path,
            "looking at the root's replication settings",
            e,
        )),
    }
}
