//! Erasing a tenant's replica in the replica store: at once, or moved out
//! of the tenant's place into a graveyard (`.tenanted-erase/` beside the
//! tenants, a name no tenant can have) and erased when due.
//!
//! Local-directory replicas (`file://`) and, with the `s3` feature, S3
//! (`s3://`, erased at once; a retention there is refused) are handled
//! here. Other stores are refused with an error that says so, rather
//! than promising an erasure that does not happen.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::until::Until;
use crate::error::{Error, Result};
use crate::fs::files::{remove_empty_parents, remove_tree};
use crate::fs::{Dir, sys};

/// The graveyard's name under the replica URL.
pub const GRAVEYARD: &str = ".tenanted-erase";

/// Why a retention cannot be kept in any store but a local directory.
pub(crate) const RETENTION_IN_LOCAL_REPLICAS_ONLY: &str = "a retention is kept in local-directory replicas only; with S3 record a retention of 0 (erased when the destroy returns) and keep older copies with the bucket's own versioning or lifecycle rules";

/// The replica store behind a replica URL.
#[derive(Debug)]
pub(crate) enum ReplicaStore {
    /// A local directory.
    Dir(PathBuf),
    /// An S3 bucket and prefix (the `s3` feature): erased at once only.
    #[cfg(feature = "s3")]
    S3(String),
}

impl ReplicaStore {
    /// The store of `url`.
    ///
    /// # Errors
    ///
    /// [`Error::Replica`] for a store tenanted cannot erase in.
    pub(crate) fn of(url: &str) -> Result<ReplicaStore> {
        #[cfg(feature = "s3")]
        if url.starts_with("s3://") {
            return Ok(ReplicaStore::S3(url.to_owned()));
        }
        match url.strip_prefix("file://") {
            Some(path) if path.starts_with('/') => Ok(ReplicaStore::Dir(PathBuf::from(path))),
            _ => Err(Error::Replica {
            tenant: None,
                url: url.to_owned(),
                operation: "erasing a destroyed tenant's replica",
                cause: "tenanted erases a destroyed tenant's replica in local directories (file:///DIR) and, built with the `s3` feature, in S3 (s3://BUCKET/PATH) only; replicate to one of those, or erase it in the store by hand".to_owned(),
            }),
        }
    }

    /// Whether the store can be used: an S3 store answers, knows the
    /// bucket and takes the keys (a local directory is made by Litestream
    /// when it first writes).
    ///
    /// # Errors
    ///
    /// [`Error::ReplicaRead`] naming what the store said and what to check.
    pub(crate) fn check(&self) -> Result<()> {
        match self.local() {
            Ok(_) => Ok(()),
            Err(url) => check_s3(url),
        }
    }

    /// Erases everything of the database at `relative`; in S3, each
    /// request within `until` (a local directory's erase takes no wait).
    pub(crate) fn erase(&self, relative: &Path, until: Until) -> Result<()> {
        let base = match self.local() {
            Ok(base) => base,
            Err(url) => return erase_in_s3(url, relative, until),
        };
        let place = base.join(relative);
        erase_place(base, relative)
            .map_err(|e| self.error("erasing a tenant's replica", &place, e))?;
        if let Some(parent) = place.parent() {
            remove_empty_parents(base, parent);
        }
        Ok(())
    }

    /// Moves the replica of the database at `relative` into the
    /// graveyard, to be erased `after` from now.
    pub(crate) fn bury(&self, relative: &Path, after: Duration, nonce: u64) -> Result<()> {
        let base = match self.local() {
            Ok(base) => base,
            Err(url) => {
                return Err(Error::Replica {
                    tenant: None,
                    url: url.to_owned(),
                    operation: "moving a destroyed tenant's replica aside",
                    cause: RETENTION_IN_LOCAL_REPLICAS_ONLY.to_owned(),
                });
            }
        };
        let place = base.join(relative);
        let due = (SystemTime::now() + after)
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let grave = PathBuf::from(GRAVEYARD).join(format!("{due:012}-{nonce:016x}"));
        let moved = bury_place(base, relative, &grave);
        match moved {
            Ok(()) => {
                if let Some(parent) = place.parent() {
                    remove_empty_parents(base, parent);
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.error("moving a destroyed tenant's replica aside", &place, e)),
        }
    }

    /// Erases the graveyard's entries that are due by `now` (all of them
    /// with `all`); returns how many.
    pub(crate) fn erase_due(&self, now: SystemTime, all: bool) -> Result<usize> {
        let Ok(base) = self.local() else {
            // Nothing is ever moved aside in S3.
            return Ok(0);
        };
        let yard = base.join(GRAVEYARD);
        let listing = "listing destroyed tenants' replicas";
        let open = match Dir::open(base, &yard) {
            Ok(open) => open,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(self.error(listing, &yard, e)),
        };
        let entries = open.entries().map_err(|e| self.error(listing, &yard, e))?;
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut erased = 0;
        for entry in entries {
            let (name, _) = entry.map_err(|e| self.error(listing, &yard, e))?;
            let due = name
                .to_string_lossy()
                .split('-')
                .next()
                .and_then(|d| d.parse::<u64>().ok());
            if all || due.is_some_and(|due| due <= now) {
                let grave = yard.join(&name);
                remove_entry(&open, &name)
                    .map_err(|e| self.error("erasing a destroyed tenant's replica", &grave, e))?;
                erased += 1;
            }
        }
        Ok(erased)
    }

    /// The local directory, or the S3 URL.
    fn local(&self) -> std::result::Result<&PathBuf, &str> {
        match self {
            ReplicaStore::Dir(base) => Ok(base),
            #[cfg(feature = "s3")]
            ReplicaStore::S3(url) => Err(url),
        }
    }

    fn error(&self, operation: &'static str, path: &Path, cause: io::Error) -> Error {
        Error::Replica {
            tenant: None,
            url: format!("file://{}", path.display()),
            operation,
            cause: cause.to_string(),
        }
    }
}

/// Deletes every object of the replica at `relative` under `url`.
#[cfg(feature = "s3")]
fn erase_in_s3(url: &str, relative: &Path, until: Until) -> Result<()> {
    super::s3::delete_all(&s3_target(url, relative), until).map(drop)
}

/// Checks the S3 store of `url` (see [`ReplicaStore::check`]).
#[cfg(feature = "s3")]
fn check_s3(url: &str) -> Result<()> {
    super::s3::check(&s3_target(url, Path::new("")))
}

/// Never called: without the `s3` feature no store is in S3.
#[cfg(not(feature = "s3"))]
fn check_s3(_url: &str) -> Result<()> {
    Ok(())
}

/// Never called: without the `s3` feature no store is in S3.
#[cfg(not(feature = "s3"))]
fn erase_in_s3(url: &str, _relative: &Path, _until: Until) -> Result<()> {
    ReplicaStore::of(url).map(drop)
}

/// The S3 target of the replica at `relative` under `url`, the query's
/// endpoint, region and addressing style taken as Litestream takes them.
#[cfg(feature = "s3")]
fn s3_target(url: &str, relative: &Path) -> crate::paths::ReplicaTarget {
    // One reading of the query for every use of the URL (its values
    // percent-decoded, as Litestream decodes them): the erase read a
    // `http%3A%2F%2F...` endpoint as written, and failed for ever.
    let whole = crate::paths::ReplicaTarget::parse(url);
    let mut place = whole.url().to_owned();
    for part in relative.components() {
        place.push('/');
        place.push_str(&part.as_os_str().to_string_lossy());
    }
    let mut target = crate::paths::ReplicaTarget::new(place).force_path_style(whole.path_style());
    if let Some(endpoint) = whole.endpoint_url() {
        target = target.endpoint(endpoint);
    }
    if let Some(region) = whole.region_name() {
        target = target.region(region);
    }
    target
}

/// Removes what is at `relative` beneath `base` (a directory and all in
/// it, or a file or link in its place), every directory on the way opened
/// without following a link: a link planted in the store as a bucket or
/// tenant directory is an error naming it (the replica may have been
/// written through it, elsewhere: the operator must look), never a way
/// to delete what it points at. Nothing there is fine.
fn erase_place(base: &Path, relative: &Path) -> io::Result<()> {
    let found = Dir::open(base, base).and_then(|dir| dir.parent_of(relative));
    match found {
        Ok((parent, name)) => remove_entry(&parent, name),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Moves what is at `relative` beneath `base` to `grave/relative` (both
/// reached as [`erase_place`] reaches them); `NotFound` when nothing is
/// there.
fn bury_place(base: &Path, relative: &Path, grave: &Path) -> io::Result<()> {
    let (from, name) = Dir::open(base, base)?.parent_of(relative)?;
    sys::stat(from.fd(), name)?;
    let into = base.join(grave).join(relative);
    let into_dir = Dir::make(base, into.parent().unwrap_or(base))?;
    sys::rename_between(from.fd(), name, into_dir.fd(), name)?;
    into_dir.sync()
}

/// Removes `name` in `dir`: a directory with all in it, or a file or
/// link (never followed); missing is fine.
fn remove_entry(dir: &Dir, name: &Path) -> io::Result<()> {
    let removed = match remove_tree(dir, name) {
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => sys::unlink(dir.fd(), name),
        other => other,
    };
    match removed {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    /// The erase and the start check read the query as the listing and
    /// Litestream do: a percent-encoded endpoint decoded (a review: the
    /// erase took `http%3A%2F%2F...` as written, and failed for ever).
    #[cfg(feature = "s3")]
    #[test]
    fn an_encoded_endpoint_is_read_alike_everywhere() {
        let url = "s3://tbk/r?endpoint=http%3A%2F%2F127.0.0.1%3A8333&forcePathStyle=true&region=eu%20west";
        let target = s3_target(url, Path::new("ab/acme/main.sqlite3"));
        assert_eq!(target.url(), "s3://tbk/r/ab/acme/main.sqlite3");
        assert_eq!(target.endpoint_url(), Some("http://127.0.0.1:8333"));
        assert_eq!(target.region_name(), Some("eu west"));
        assert!(target.path_style());
        let raw = s3_target("s3://tbk/r/?endpoint=http://h:8333", Path::new("x"));
        assert_eq!(raw.url(), "s3://tbk/r/x");
        assert_eq!(raw.endpoint_url(), Some("http://h:8333"));
    }

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
        store
            .erase(Path::new("ab/acme/main.sqlite3"), Until(None))
            .unwrap();
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
        assert!(ReplicaStore::of("gs://bucket/x").is_err());
        assert_eq!(
            ReplicaStore::of("s3://bucket/x").is_ok(),
            cfg!(feature = "s3")
        );
    }
}
