//! Creating and destroying tenant files, atomically.
//!
//! Create builds the database in a hidden temporary file beside its final
//! path, syncs it, and publishes it with `hard_link`, which fails rather
//! than replace an existing file. Destroy renames the database away first,
//! so the tenant vanishes in one step, then removes the rest. Both hold the
//! tenant's lock, and both clean up whatever a crashed predecessor left.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, OpenFlags};

use crate::error::{BoxError, Error, Result};
use crate::lock::FileLock;
use crate::migrator::{EXISTING, lock_tenant, open_error};
use crate::name::TenantName;
use crate::paths::SQLITE_SIDECARS;

/// A seed closure: runs on the new database, inside a transaction, before
/// the tenant is published.
pub(crate) type Seed<'a> = &'a mut dyn FnMut(&rusqlite::Transaction<'_>) -> Result<(), BoxError>;

/// The tenant's lock file: hidden, beside the database.
pub(crate) fn lock_path(db: &Path) -> PathBuf {
    hidden_sibling(db, ".lock")
}

fn hidden_sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(db.file_name().unwrap_or_default());
    name.push(suffix);
    db.with_file_name(name)
}

/// A fresh hidden name beside `db`, unique within the machine.
pub(crate) fn scratch_path(db: &Path, kind: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    hidden_sibling(db, &format!(".{kind}-{}-{n}", std::process::id()))
}

/// Creates tenant `tenant` at `path` from the template database file, then
/// runs `seed`. Exactly one of several concurrent creators succeeds.
pub(crate) fn create(
    tenant: &TenantName,
    path: &Path,
    template: &Path,
    seed: Option<Seed<'_>>,
) -> Result<()> {
    let lock_file = lock_path(path);
    let lock = FileLock::acquire(&lock_file, true)
        .map_err(|e| Error::io(Some(tenant), &lock_file, "locking the tenant", e))?;
    let result = create_locked(tenant, path, template, seed);
    let existed = matches!(result, Err(Error::TenantExists { .. }));
    drop(lock);
    if result.is_err() && !existed {
        remove_empty_parents(path);
    }
    result
}

fn create_locked(
    tenant: &TenantName,
    path: &Path,
    template: &Path,
    seed: Option<Seed<'_>>,
) -> Result<()> {
    if path.exists() {
        return Err(Error::TenantExists {
            tenant: tenant.clone(),
            path: path.to_path_buf(),
        });
    }
    // We hold the lock and the tenant does not exist: anything left beside
    // it is debris from a crashed create or destroy.
    remove_debris(Some(tenant), path)?;

    let scratch = scratch_path(path, "tmp");
    let built = build(tenant, path, &scratch, template, seed);
    let published = built.and_then(|()| publish(tenant, &scratch, path));
    remove_with_sidecars(&scratch);
    published
}

fn build(
    tenant: &TenantName,
    path: &Path,
    scratch: &Path,
    template: &Path,
    seed: Option<Seed<'_>>,
) -> Result<()> {
    fs::copy(template, scratch)
        .map_err(|e| Error::io(Some(tenant), scratch, "copying the template database", e))?;
    // Without a seed the copy is the tenant: no need to open it. (Its
    // version is the template's, and every open checks it anyway.)
    if let Some(seed) = seed {
        let conn = Connection::open_with_flags(scratch, EXISTING)
            .map_err(|e| open_error(tenant, scratch, e))?;
        run_seed(tenant, path, &conn, seed)?;
        conn.close().map_err(|(_, e)| {
            Error::sqlite(Some(tenant), scratch, "closing the new database", e)
        })?;
    }
    File::open(scratch)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(Some(tenant), scratch, "syncing the new database", e))
}

fn run_seed(tenant: &TenantName, path: &Path, conn: &Connection, seed: Seed<'_>) -> Result<()> {
    let tx = conn
        .unchecked_transaction()
        .map_err(|e| Error::sqlite(Some(tenant), path, "starting the seed transaction", e))?;
    seed(&tx).map_err(|source| Error::Seed {
        tenant: tenant.clone(),
        path: path.to_path_buf(),
        source,
    })?;
    tx.commit()
        .map_err(|e| Error::sqlite(Some(tenant), path, "committing the seed", e))
}

fn publish(tenant: &TenantName, scratch: &Path, path: &Path) -> Result<()> {
    match fs::hard_link(scratch, path) {
        Ok(()) => {
            sync_dir(path);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(Error::TenantExists {
            tenant: tenant.clone(),
            path: path.to_path_buf(),
        }),
        Err(e) => Err(Error::io(
            Some(tenant),
            path,
            "publishing the new database",
            e,
        )),
    }
}

/// Removes tenant `tenant`'s files; the caller has drained its pools.
pub(crate) fn destroy(tenant: &TenantName, path: &Path) -> Result<()> {
    let lock = lock_tenant(tenant, path)?;
    if !path.exists() {
        drop(lock);
        remove_empty_parents(path);
        return Err(Error::TenantDoesNotExist {
            tenant: tenant.clone(),
            path: path.to_path_buf(),
        });
    }
    // One rename makes the tenant disappear; if we die after it, the rest
    // is debris the next create (or cleanup) removes.
    let tombstone = scratch_path(path, "deleted");
    fs::rename(path, &tombstone)
        .map_err(|e| Error::io(Some(tenant), path, "removing the database", e))?;
    sync_dir(path);
    remove_with_sidecars(path);
    remove_with_sidecars(&tombstone);
    drop(lock);
    remove_empty_parents(path);
    Ok(())
}

/// Removes temporary files, tombstones and orphaned SQLite sidecars left
/// beside `path` (a tenant's database, or the template) by a crashed
/// operation. The caller holds `path`'s lock. Returns how many files it
/// removed.
pub(crate) fn remove_debris(tenant: Option<&TenantName>, path: &Path) -> Result<usize> {
    let Some(dir) = path.parent() else {
        return Ok(0);
    };
    let db_exists = path.exists();
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp_prefix = format!(".{file_name}.tmp-");
    let deleted_prefix = format!(".{file_name}.deleted-");
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(tenant, dir, "cleaning up", e)),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let orphan_sidecar = !db_exists
            && SQLITE_SIDECARS
                .iter()
                .any(|s| name.strip_suffix(s) == Some(&*file_name));
        if orphan_sidecar || name.starts_with(&tmp_prefix) || name.starts_with(&deleted_prefix) {
            tracing::info!(file = %entry.path().display(), "removing debris of a crashed operation");
            remove_quietly(&entry.path());
            removed += 1;
        }
    }
    Ok(removed)
}

/// The database file name a piece of debris belongs to: a scratch file,
/// tombstone or lock file (`.main.sqlite3.tmp-…`, `.main.sqlite3.lock`) or
/// a SQLite sidecar (`main.sqlite3-wal`).
pub(crate) fn debris_owner(file_name: &str) -> Option<&str> {
    if let Some(hidden) = file_name.strip_prefix('.') {
        for marker in [".tmp-", ".deleted-"] {
            if let Some(at) = hidden.find(marker) {
                return Some(&hidden[..at]);
            }
        }
        return hidden.strip_suffix(".lock");
    }
    SQLITE_SIDECARS
        .iter()
        .find_map(|s| file_name.strip_suffix(s))
}

fn remove_with_sidecars(db: &Path) {
    // The -wal first: a database without its WAL is stale but consistent,
    // while a WAL without its database could be replayed into a new one.
    for suffix in SQLITE_SIDECARS {
        let mut sidecar = db.as_os_str().to_owned();
        sidecar.push(suffix);
        remove_quietly(Path::new(&sidecar));
    }
    remove_quietly(db);
}

fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(file = %path.display(), error = %e, "could not remove file");
    }
}

/// Removes the directories above `path` that are now empty, up to (not
/// including) the first one that is not.
pub(crate) fn remove_empty_parents(path: &Path) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// Makes a rename or link in `path`'s directory durable. Best effort: some
/// file systems cannot sync directories.
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent()
        && let Err(e) = File::open(dir).and_then(|d| d.sync_all())
    {
        tracing::debug!(dir = %dir.display(), error = %e, "could not sync directory");
    }
}

/// Builds a database at `path` with `init`, in a scratch file published by
/// rename: used for the template database, which only tenanted writes.
pub(crate) fn build_by_rename(
    path: &Path,
    init: impl FnOnce(&mut Connection) -> Result<()>,
) -> Result<()> {
    let scratch = scratch_path(path, "tmp");
    let result = (|| {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&scratch, flags)
            .map_err(|e| Error::sqlite(None, &scratch, "creating the template database", e))?;
        init(&mut conn)?;
        conn.close()
            .map_err(|(_, e)| Error::sqlite(None, &scratch, "closing the template database", e))?;
        File::open(&scratch)
            .and_then(|f| f.sync_all())
            .and_then(|()| fs::rename(&scratch, path))
            .map_err(|e| Error::io(None, path, "publishing the template database", e))?;
        sync_dir(path);
        Ok(())
    })();
    if result.is_err() {
        remove_with_sidecars(&scratch);
    }
    result
}
