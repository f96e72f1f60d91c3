//! Erasing a tenant's replica in the replica store: at once, or moved out
//! of the tenant's place into a graveyard (`.tenanted-erase/` beside the
//! tenants, a name no tenant can have) and erased when due.
//!
//! Local-directory replicas (`file://`) are handled here. Other stores
//! are refused with an error that says so, rather than promising an
//! erasure that does not happen.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};

/// The graveyard's name under the replica URL.
pub const GRAVEYARD: &str = ".tenanted-erase";

/// The replica store behind a replica URL.
#[derive(Debug)]
pub(crate) enum ReplicaStore {
    /// A local directory.
    Dir(PathBuf),
}

impl ReplicaStore {
    /// The store of `url`.
    ///
    /// # Errors
    ///
    /// [`Error::Replica`] for a store tenanted cannot erase in.
    pub(crate) fn of(url: &str) -> Result<ReplicaStore> {
        match url.strip_prefix("file://") {
            Some(path) if path.starts_with('/') => Ok(ReplicaStore::Dir(PathBuf::from(path))),
            _ => Err(Error::Replica {
                url: url.to_owned(),
                operation: "erasing a destroyed tenant's replica",
                cause: "tenanted erases replicas in local directories (file:///DIR) only; erase it in the store by hand, or replicate to a local directory".to_owned(),
            }),
        }
    }

    /// Erases everything of the database at `relative`.
    pub(crate) fn erase(&self, relative: &Path) -> Result<()> {
        let ReplicaStore::Dir(base) = self;
        let place = base.join(relative);
        remove_tree(&place).map_err(|e| self.error("erasing a tenant's replica", &place, e))?;
        remove_empty_parents(base, &place);
        Ok(())
    }

    /// Moves the replica of the database at `relative` into the
    /// graveyard, to be erased `after` from now.
    pub(crate) fn bury(&self, relative: &Path, after: Duration, nonce: u64) -> Result<()> {
        let ReplicaStore::Dir(base) = self;
        let place = base.join(relative);
        let due = (SystemTime::now() + after)
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let grave = base.join(GRAVEYARD).join(format!("{due:012}-{nonce:016x}"));
        let into = grave.join(relative);
        let moved = into
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| fs::rename(&place, &into));
        match moved {
            Ok(()) => {
                remove_empty_parents(base, &place);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let _ = fs::remove_dir_all(&grave);
                Ok(())
            }
            Err(e) => Err(self.error("moving a destroyed tenant's replica aside", &place, e)),
        }
    }

    /// Erases the graveyard's entries that are due by `now` (all of them
    /// with `all`); returns how many.
    pub(crate) fn erase_due(&self, now: SystemTime, all: bool) -> Result<usize> {
        let ReplicaStore::Dir(base) = self;
        let yard = base.join(GRAVEYARD);
        let entries = match fs::read_dir(&yard) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(self.error("listing destroyed tenants' replicas", &yard, e)),
        };
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut erased = 0;
        for entry in entries {
            let entry =
                entry.map_err(|e| self.error("listing destroyed tenants' replicas", &yard, e))?;
            let name = entry.file_name();
            let due = name
                .to_string_lossy()
                .split('-')
                .next()
                .and_then(|d| d.parse::<u64>().ok());
            if all || due.is_some_and(|due| due <= now) {
                let grave = entry.path();
                remove_tree(&grave)
                    .map_err(|e| self.error("erasing a destroyed tenant's replica", &grave, e))?;
                erased += 1;
            }
        }
        Ok(erased)
    }

    fn error(&self, operation: &'static str, path: &Path, cause: io::Error) -> Error {
        Error::Replica {
            url: format!("file://{}", path.display()),
            operation,
            cause: cause.to_string(),
        }
    }
}

fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Removes the directories above `place` left empty, up to `base`.
fn remove_empty_parents(base: &Path, place: &Path) {
    let mut dir = place.parent();
    while let Some(d) = dir {
        if d == base || !d.starts_with(base) || fs::remove_dir(d).is_err() {
            return;
        }
        dir = d.parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erase_bury_and_erase_when_due() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let store = ReplicaStore::of(&url).unwrap();
        for t in [
            "ab/acme/main.sqlite3",
            "ab/zeta/main.sqlite3",
            "cd/x/main.sqlite3",
        ] {
            fs::create_dir_all(dir.path().join(t).join("ltx/0")).unwrap();
            fs::write(dir.path().join(t).join("ltx/0/1.ltx"), b"rows").unwrap();
        }
        store.erase(Path::new("ab/acme/main.sqlite3")).unwrap();
        assert!(!dir.path().join("ab/acme").exists());
        assert!(dir.path().join("ab/zeta/main.sqlite3").exists());
        store
            .bury(Path::new("cd/x/main.sqlite3"), Duration::from_secs(3600), 7)
            .unwrap();
        assert!(!dir.path().join("cd").exists());
        assert_eq!(store.erase_due(SystemTime::now(), false).unwrap(), 0);
        let later = SystemTime::now() + Duration::from_secs(3601);
        assert_eq!(store.erase_due(later, false).unwrap(), 1);
        assert!(
            fs::read_dir(dir.path().join(GRAVEYARD))
                .unwrap()
                .next()
                .is_none()
        );
        assert!(ReplicaStore::of("s3://bucket/x").is_err());
    }
}
