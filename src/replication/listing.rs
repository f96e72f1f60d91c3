//! Which tenants a replica holds, read from the replica alone (the root
//! it came from may be gone with its machine).
//!
//! Litestream writes a database's replica as LTX files at
//! `<replica>/<relative path>/<level>/<min>-<max>.ltx`, the level four
//! hex digits. Every such file names a database's relative path; the
//! root's template turns that back into a tenant name (a path that is not
//! one of the root's tenant paths is ignored, as `tenants()` ignores odd
//! files), and the graveyard of destroyed tenants' replicas kept for the
//! retention (see `store.rs`) is skipped. A `file://` replica is walked;
//! an `s3://` one is listed (with the `s3` feature).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use rustix::fs::FileType;

use super::store::GRAVEYARD;
use super::until::Until;
use crate::error::{Error, Result};
use crate::fs::{Dir, sys};
use crate::name::TenantName;
use crate::paths::{ReplicaTarget, RootConfig};

/// What the replica holds of one tenant.
#[derive(Debug, Clone)]
pub(crate) struct ReplicaEntry {
    /// The tenant's path relative to the root (and to the replica URL).
    pub(crate) relative: String,
    /// When its newest LTX file was written, if the store says.
    pub(crate) updated: Option<SystemTime>,
    /// The last transaction its LTX files hold (their names say it:
    /// `MIN-MAX.ltx`, in hex), if any file is named so.
    pub(crate) last_txid: Option<u64>,
}

/// The transactions an LTX file holds, from its name (`MIN-MAX.ltx`, each
/// 16 hex digits), as Litestream 0.5 names them in a replica and in its
/// local state directory.
pub(crate) fn ltx_txids(file: &str) -> Option<(u64, u64)> {
    let (min, max) = file.strip_suffix(".ltx")?.split_once('-')?;
    let hex = |s: &str| u64::from_str_radix(s, 16).ok();
    Some((hex(min)?, hex(max)?))
}

/// The tenants the replica holds, by name, with each one's path relative
/// to the root (sorted by name).
pub(crate) fn replicated_tenants(
    root: &RootConfig,
    target: &ReplicaTarget,
) -> Result<BTreeMap<TenantName, String>> {
    let entries = replica_entries(root, target, Until(None))?;
    Ok(entries.into_iter().map(|(t, e)| (t, e.relative)).collect())
}

/// The tenants the replica holds, with when each was last written to;
/// a remote store's listing within `until`.
pub(crate) fn replica_entries(
    root: &RootConfig,
    target: &ReplicaTarget,
    until: Until,
) -> Result<BTreeMap<TenantName, ReplicaEntry>> {
    // Only a remote store's listing waits (a local directory's does not).
    #[cfg(not(feature = "s3"))]
    let _ = until;
    let keys = match scheme(target.url()).as_deref() {
        Some("file") => file_keys(target)?,
        #[cfg(feature = "s3")]
        Some("s3") => super::s3::list_keys(target, until)?,
        _ => return Err(unlistable(target)),
    };
    let mut tenants: BTreeMap<TenantName, ReplicaEntry> = BTreeMap::new();
    for (key, modified) in &keys {
        // Replicas of destroyed tenants kept for the retention.
        if key.starts_with(GRAVEYARD) {
            continue;
        }
        let Some(relative) = database_of_key(key) else {
            continue;
        };
        let Some(tenant) = root.tenant_at(relative) else {
            continue;
        };
        let entry = tenants.entry(tenant).or_insert_with(|| ReplicaEntry {
            relative: relative.to_owned(),
            updated: None,
            last_txid: None,
        });
        entry.updated = entry.updated.max(*modified);
        let file = key.rsplit('/').next().unwrap_or_default();
        entry.last_txid = entry.last_txid.max(ltx_txids(file).map(|(_, max)| max));
    }
    Ok(tenants)
}

/// The URL's scheme, lowercase.
pub(crate) fn scheme(url: &str) -> Option<String> {
    url.split_once("://")
        .map(|(scheme, _)| scheme.to_ascii_lowercase())
}

/// The database's relative path in an LTX file's key, relative to the
/// replica's URL: `<relative>/<level>/<name>.ltx` in an object store (the
/// level four hex digits), `<relative>/ltx/<level>/<name>.ltx` in a
/// directory (the level in decimal).
pub(crate) fn database_of_key(key: &str) -> Option<&str> {
    let (rest, file) = key.rsplit_once('/')?;
    let (above, level) = rest.rsplit_once('/')?;
    if !file.ends_with(".ltx") || level.is_empty() {
        return None;
    }
    let relative = if level.len() == 4 && level.bytes().all(|b| b.is_ascii_hexdigit()) {
        above
    } else if level.bytes().all(|b| b.is_ascii_digit()) {
        above.strip_suffix("/ltx")?
    } else {
        return None;
    };
    (!relative.is_empty()).then_some(relative)
}

fn unlistable(target: &ReplicaTarget) -> Error {
    let supported = if cfg!(feature = "s3") {
        "file:// and s3:// replicas"
    } else {
        "file:// replicas (s3:// needs the `s3` feature)"
    };
    Error::ReplicaRead {
        tenant: None,
        url: target.url().to_owned(),
        operation: "listing the tenants".to_owned(),
        reason: format!(
            "only {supported} can be listed; name the tenants to rebuild (RebuildOptions::only, `tenanted rebuild --tenant NAME`)"
        ),
    }
}

/// Every file under a `file://` replica, as `/`-separated paths relative
/// to it, with its modification time. Each directory is opened without
/// following a link, and links are not listed: a link planted in the
/// replica never makes a tenant of what it points at.
fn file_keys(target: &ReplicaTarget) -> Result<Vec<(String, Option<SystemTime>)>> {
    let dir = Path::new(target.url().split_once("://").map_or("", |(_, p)| p));
    let failed = |e: io::Error| Error::ReplicaRead {
        tenant: None,
        url: target.url().to_owned(),
        operation: "listing the tenants".to_owned(),
        reason: e.to_string(),
    };
    let top = Dir::open(dir, dir).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::ReplicaRead {
            tenant: None,
            url: target.url().to_owned(),
            operation: "listing the tenants".to_owned(),
            reason: format!("the replica directory {} does not exist: check the replica URL (the path replicate was given), or whether the directory's disk is mounted", dir.display()),
        },
        _ => failed(e),
    })?;
    let mut keys = Vec::new();
    let mut pending = vec![(top, String::new())];
    while let Some((here, relative)) = pending.pop() {
        for entry in here.entries().map_err(failed)? {
            let (name, is_dir) = entry.map_err(failed)?;
            let Some(name) = name.to_str() else {
                continue;
            };
            let path = match relative.is_empty() {
                true => name.to_owned(),
                false => format!("{relative}/{name}"),
            };
            if is_dir {
                match here.child(Path::new(name)) {
                    Ok(child) => pending.push((child, path)),
                    // Gone, or swapped for a link, since it was listed.
                    Err(e) if gone_or_link(&e) => {}
                    Err(e) => return Err(failed(e)),
                }
            } else if let Some(modified) = regular_file_modified(&here, Path::new(name)) {
                keys.push((path, modified));
            }
        }
    }
    Ok(keys)
}

fn gone_or_link(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// `Some` with when `name` in `dir` was modified (if the system says)
/// when it is a regular file; `None` for a link or anything else.
fn regular_file_modified(dir: &Dir, name: &Path) -> Option<Option<SystemTime>> {
    let stat = sys::stat(dir.fd(), name).ok()?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return None;
    }
    let secs = u64::try_from(stat.st_mtime).ok();
    let nanos = u32::try_from(stat.st_mtime_nsec).unwrap_or(0);
    Some(secs.map(|s| SystemTime::UNIX_EPOCH + std::time::Duration::new(s, nanos)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ltx_keys_name_their_database() {
        let key = "3f/acme/main.sqlite3/0000/0000000000000001-0000000000000001.ltx";
        assert_eq!(database_of_key(key), Some("3f/acme/main.sqlite3"));
        assert_eq!(
            database_of_key("acme/main.sqlite3/0009/x.ltx"),
            Some("acme/main.sqlite3")
        );
        assert_eq!(database_of_key("acme/main.sqlite3/l0/x.ltx"), None);
        assert_eq!(database_of_key("acme/main.sqlite3/0000/x.tmp"), None);
        assert_eq!(database_of_key("0000/x.ltx"), None);
        let file = "3f/acme/main.sqlite3/ltx/0/0000000000000001-0000000000000001.ltx";
        assert_eq!(database_of_key(file), Some("3f/acme/main.sqlite3"));
        assert_eq!(
            database_of_key("a/main.sqlite3/ltx/12/x.ltx"),
            Some("a/main.sqlite3")
        );
        assert_eq!(database_of_key("a/main.sqlite3/other/1/x.ltx"), None);
    }

    #[test]
    fn schemes() {
        assert_eq!(scheme("S3://b/p").as_deref(), Some("s3"));
        assert_eq!(scheme("/no/scheme"), None);
    }
}
