//! Reading a tenant's schema version: SQLite's `user_version`, as in
//! `rusqlite_migration`.

use std::io;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::error::Result;
use crate::fleet::may_be_database;
use crate::fs::Dir;
use crate::name::TenantName;
use crate::paths::Found;
use crate::storage::{
    Header, TenantPath, diagnosed, header_version, incomplete, marked, marked_in_any_layout,
    open_for_glance, open_for_reading, put_back_interrupted, require_database, schema_version,
    sqlite_error,
};

/// The tenant's schema version.
pub(crate) fn read_version(tenant: &TenantName, path: &Path, conn: &Connection) -> Result<usize> {
    let version = conn
        .query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))
        .map_err(|e| sqlite_error(tenant, path, "reading the schema version", e))?;
    schema_version(tenant, path, version)
}

/// The tenant's schema version, read cheaply when the file alone tells it:
/// from the header with no SQLite open at all (`storage::header_version`), else
/// with [`peek_with_sqlite`], which waits on other processes as `reading`
/// says. A snapshot: a concurrent writer can change it the moment after.
pub(crate) fn peek_version(
    tenant: &TenantName,
    (root, path): (&Path, &Path),
    reading: Reading,
) -> Result<usize> {
    match contained_header_version(root, path) {
        Header::Version(version) => Ok(version),
        Header::NotThere | Header::AskSqlite => peek_with_sqlite(tenant, root, path, reading),
    }
}

/// How a full open of [`peek_with_sqlite`] waits on other processes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reading {
    /// As every one-off read does (`storage::open_for_reading`).
    Waiting,
    /// As `Waiting`, but a tenant found fenced off by an operation
    /// deciding its fate is an error at once, not waited for: the read
    /// ahead of an operation's own lock, whose wait (the caller's lock
    /// timeout) then decides. (One fenced between that look and the open
    /// is waited for as by any read, within its 30 s.)
    Ahead,
    /// Not at all (`storage::open_for_glance`): the watcher's look at a
    /// busy pool. A tenant another process holds now is an error, to be
    /// looked at again.
    Glance,
}

/// The schema version of a tenant a fleet run visits, read like
/// [`peek_version`] but through the directory the walk has open, if any.
///
/// `None` when `walked` (a walk found it without looking at the file) and
/// no regular file is there, unless the tenant's own directory is (then
/// the listing shows it, and so does the run: `MissingDatabase`); it is
/// otherwise no tenant (a destroy took it meanwhile), and the run skips
/// it as `tenants()` would have; so is one whose running destroy the read
/// waited for and saw go through. `owns_dir`: the layout gives each
/// tenant a directory of its own.
pub(crate) fn peek_found(
    found: &Found,
    root: &Path,
    (walked, owns_dir): (bool, bool),
) -> Option<Result<usize>> {
    let header = match found.below() {
        Some((dir, name)) => header_version(dir, name),
        None => contained_header_version(root, &found.path),
    };
    let at = TenantPath::new(root, &found.path, owns_dir);
    let incomplete = || incomplete(&found.tenant, at);
    match header {
        Header::Version(version) => Some(Ok(version)),
        // Not there (destroyed meanwhile) unless an operation deciding its
        // fate has it fenced off: read below, once it is done.
        Header::NotThere if walked && !marked(at) => incomplete().map(Err),
        Header::AskSqlite if walked && !may_be_database(found, root) && !marked(at) => {
            incomplete().map(Err)
        }
        Header::NotThere | Header::AskSqlite => {
            let peeked = peek_with_sqlite(&found.tenant, root, &found.path, Reading::Waiting);
            match peeked.map_err(|e| diagnosed(&found.tenant, at, e)) {
                // Destroyed meanwhile (a destroy the read waited for went
                // through): no tenant, as `tenants()` would say now.
                Err(e) if walked && e.says_tenant_gone() => None,
                peeked => Some(peeked),
            }
        }
    }
}

/// [`header_version`] of the database at `path`, its directory reached
/// from `root` without following a link (see `fs::Dir`); a link on
/// the way leaves it to [`peek_with_sqlite`], which says what is there.
fn contained_header_version(root: &Path, path: &Path) -> Header {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Header::AskSqlite;
    };
    match Dir::open(root, dir) {
        Ok(dir) => header_version(dir.fd(), Path::new(name)),
        Err(_) => Header::AskSqlite,
    }
}

/// The tenant's schema version, read with SQLite.
///
/// With no WAL content and no journal, the `user_version` in the
/// database header is the truth, and an `immutable` open reads it without
/// opening `-wal` or `-shm`, taking locks, or checkpointing on close
/// (several times cheaper than a full open of a WAL database). It still
/// goes through SQLite's VFS, which keeps this process's POSIX locks on
/// the file intact. A tenant with a live WAL gets a full open. Damaged and
/// missing tenants get their errors here.
pub(crate) fn peek_with_sqlite(
    tenant: &TenantName,
    root: &Path,
    path: &Path,
    reading: Reading,
) -> Result<usize> {
    // An empty file would read as version 0 through either open below.
    match (require_database(tenant, root, path), reading) {
        // Its fate being decided (a destroy, a restore, a re-key): the
        // one-off read waits for that, within its own wait, and reads the
        // tenant once it is done.
        (Err(e), Reading::Waiting) if e.says_tenant_gone() => {
            if marked_in_any_layout(root, path).is_none() {
                return Err(e);
            }
            let read = match open_for_reading(tenant, root, path) {
                // Fenced off by a replace that died: put back, then read.
                Err(e) if e.says_tenant_gone() => {
                    put_back_interrupted(tenant, (root, path)).read_again(e)?;
                    open_for_reading(tenant, root, path)?
                }
                read => read?,
            };
            return schema_version(tenant, path, read.version);
        }
        (found, _) => found?,
    };
    let sidecar = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        crate::fs::sys::symlink_metadata(Path::new(&name))
    };
    let wal_is_empty = match sidecar("-wal") {
        Ok(meta) => meta.len() == 0,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    };
    // An immutable open never rolls a hot journal back: it would read the
    // page 1 a crashed commit left in the file. A full open does.
    let no_journal = matches!(sidecar("-journal"), Err(e) if e.kind() == io::ErrorKind::NotFound);
    if let (true, true, Some(uri)) = (wal_is_empty, no_journal, immutable_uri(path)) {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        if let Ok(conn) = Connection::open_with_flags(&uri, flags)
            && let Ok(version) = read_version(tenant, path, &conn)
        {
            return Ok(version);
        }
    }
    let read = match reading {
        Reading::Waiting | Reading::Ahead => open_for_reading(tenant, root, path)?,
        Reading::Glance => open_for_glance(tenant, root, path)?,
    };
    schema_version(tenant, path, read.version)
}

/// `file:PATH?immutable=1`, with the characters URIs reserve escaped.
/// An absolute path gets an empty authority (`file:///abs`), so a path
/// starting with `//` is never read as a host name; a relative one
/// (`file:rel`, even `file:file:rel`) is a relative file name to SQLite.
fn immutable_uri(path: &Path) -> Option<String> {
    let mut uri = String::from(if path.is_absolute() {
        "file://"
    } else {
        "file:"
    });
    for c in path.to_str()?.chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    Some(uri)
}

#[cfg(test)]
mod tests {
    use super::immutable_uri;
    use rusqlite::{Connection, OpenFlags};
    use std::path::Path;

    /// The URI opens the very file the path names, even when the path
    /// holds `file:`, `?`, `#` and `%`.
    #[test]
    fn the_immutable_uri_opens_the_file_the_path_names() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("file:a%41?b=c#d");
        std::fs::create_dir(&odd).unwrap();
        let path = odd.join("main.sqlite3");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 7;")
            .unwrap();
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(immutable_uri(&path).unwrap(), flags).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 7);
    }

    #[test]
    fn reserved_characters_are_escaped() {
        assert_eq!(
            immutable_uri(Path::new("/r/a%b?c#d/main.sqlite3")).as_deref(),
            Some("file:///r/a%25b%3fc%23d/main.sqlite3?immutable=1")
        );
        assert_eq!(
            immutable_uri(Path::new("//r/main.sqlite3")).as_deref(),
            Some("file:////r/main.sqlite3?immutable=1")
        );
        assert_eq!(
            immutable_uri(Path::new("file:t/main.sqlite3")).as_deref(),
            Some("file:file:t/main.sqlite3?immutable=1")
        );
    }
}
