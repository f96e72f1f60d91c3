//! Copying a live tenant database to a self-contained file, consistently,
//! while other threads and processes keep writing to it.
//!
//! The copy is made with SQLite's online backup API in one step: one read
//! transaction on the source, so the copy is the database as of one commit
//! (in WAL mode that read never blocks writers, and a single step is never
//! restarted by their commits). The copy is written to a hidden scratch
//! file beside the destination, switched to `journal_mode = DELETE` (one
//! file, no `-wal`), synced, and renamed over the destination: a reader of
//! the destination sees the old file or the whole new one, never a torn one.
//!
//! `benches/backup.rs` measures it against `VACUUM INTO` and a plain
//! `fs::copy` + fsync of the same file.

use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::crypt::{self, TenantKey};
use crate::error::{Error, Result};
use crate::fs::dir::Dir;
use crate::fs::files::literal_path;
use crate::fs::files::remove_with_sidecars;
use crate::fs::siblings::{name_of, scratch_path};
use crate::fs::sys;
use crate::name::TenantName;
use crate::storage::opening::open::open_for_reading;

/// What a snapshot wrote.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    /// The copy's schema version (`user_version`), read from the copy.
    pub(crate) version: i64,
    /// The copy's size in bytes.
    pub(crate) bytes: u64,
}

/// Flags for a new copy: created here, never a URI (see `literal_path`).
const NEW_FILE: OpenFlags = OpenFlags::SQLITE_OPEN_READ_WRITE
    .union(OpenFlags::SQLITE_OPEN_CREATE)
    .union(OpenFlags::SQLITE_OPEN_NO_MUTEX);

/// Copies `tenant`'s database at `path` to `dest` (creating `dest`'s
/// directory if needed, replacing a file already at `dest` atomically).
///
/// With `within`, `dest` is beneath that directory (a `backup_all`
/// directory, laid out like the root) and is reached as a tenant's path is
/// (see `dir.rs`): a link planted in the backup directory is refused, and
/// never leads the copy over a file elsewhere (such as a live tenant).
/// Without, `dest` is the caller's own path, links and all.
///
/// The source is opened the way every one-off read of a tenant is (pinned,
/// never checkpointing on close), so a destroy in another process waits for
/// the copy to finish, and one in this process cannot be harmed by it.
pub(crate) fn snapshot(
    tenant: &TenantName,
    root: &Path,
    path: &Path,
    dest: &Path,
    within: Option<&Path>,
) -> Result<Snapshot> {
    let (source, _) = open_for_reading(tenant, root, path)?;
    // An encrypted tenant's backup is encrypted with the same key.
    let key = crypt::tenant_key(tenant, root)?;
    let dir = destination_dir(dest, within)
        .map_err(|e| Error::io(Some(tenant), dest, "creating the backup's directory", e))?;
    let name = name_of(dest);
    let scratch = scratch_path(name);
    let result = copy_to(
        tenant,
        &source,
        &dir.join(&scratch),
        ("DELETE", key.as_ref()),
    )
    .and_then(|snapshot| {
        sys::rename(dir.fd(), &scratch, name)
            .and_then(|()| dir.sync())
            .map_err(|e| Error::io(Some(tenant), dest, "moving the backup into place", e))?;
        Ok(snapshot)
    });
    if result.is_err() {
        remove_with_sidecars(&dir, &scratch);
    }
    result
}

/// The directory `dest` goes in, made if missing (see [`snapshot`]).
fn destination_dir(dest: &Path, within: Option<&Path>) -> std::io::Result<Dir> {
    let parent = dest.parent().filter(|d| !d.as_os_str().is_empty());
    let parent = parent.unwrap_or(Path::new("."));
    match within {
        Some(base) => Dir::make(base, parent),
        None => {
            create_dirs_durably(parent)?;
            Dir::open(parent, parent)
        }
    }
}

/// Makes a change in `path`'s directory durable. Best effort: some file
/// systems cannot sync directories, and the backup itself is synced.
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent()
        && let Err(e) = sys::open_path(dir).and_then(|d| sys::sync(d.as_fd(), dir))
    {
        tracing::debug!(dir = %dir.display(), error = %e, "could not sync directory");
    }
}

/// Creates `dir` and its missing parents, and syncs the directory above
/// each one created, so that after a crash the backup is reachable by its
/// path (the rename into `dir` is synced after the copy).
fn create_dirs_durably(dir: &Path) -> std::io::Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !sys::exists(d)).collect();
    sys::make_dir_all(dir)?;
    // Top down: each new directory's entry in its parent.
    for created in missing.iter().rev() {
        sync_dir(created);
    }
    Ok(())
}

/// Copies `source` into the new file `scratch` and syncs it. The copy is
/// left in `journal_mode` `mode`: `"DELETE"` for a backup (one
/// self-contained file), `"WAL"` for a restored tenant (as every tenant
/// is). Either way no `-wal` is left once it is closed. With a `key` (an
/// encrypted tenant's, which the source is open with) the copy is
/// encrypted with it: SQLCipher copies pages only between databases keyed
/// alike.
pub(in crate::storage) fn copy_to(
    tenant: &TenantName,
    source: &Connection,
    scratch: &Path,
    (mode, key): (&'static str, Option<&TenantKey>),
) -> Result<Snapshot> {
    let sqlite = |operation, e| Error::sqlite(Some(tenant), scratch, operation, e);
    let mut copy = Connection::open_with_flags(literal_path(scratch), NEW_FILE)
        .map_err(|e| sqlite("creating the copy", e))?;
    crypt::apply(&copy, key).map_err(|e| sqlite("keying the copy", e))?;
    // Nobody else sees the scratch file until it is complete and synced
    // (below, once): SQLite's own journal and syncs would only slow the
    // copy down.
    copy.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        .map_err(|e| sqlite("setting up the copy", e))?;
    copy_pages(source, &mut copy).map_err(|e| sqlite("copying the database", e))?;
    // The copy carries the source's journal mode in its header; a backup
    // must need nothing but its own file. (The pragma answers with the new
    // mode; an error is all that matters.)
    let pragma = format!("PRAGMA journal_mode = {mode}");
    copy.query_row(&pragma, [], |r| r.get::<_, String>(0))
        .map_err(|e| sqlite("setting the copy's journal mode", e))?;
    let version = copy
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| sqlite("reading the copy's version", e))?;
    copy.close()
        .map_err(|(_, e)| sqlite("closing the copy", e))?;
    let bytes = sync_file(tenant, scratch)?;
    Ok(Snapshot { version, bytes })
}

/// Copies every page of `source` into `copy` in one backup step, so in
/// one read transaction: a consistent snapshot, which writers (in WAL
/// mode) neither block nor restart. A step that finds the source busy or
/// locked is retried, for at most [`BUSY_WAIT`].
fn copy_pages(source: &Connection, copy: &mut Connection) -> rusqlite::Result<()> {
    let backup = Backup::new(source, copy)?;
    let deadline = Instant::now() + BUSY_WAIT;
    loop {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            // Not reached with -1 (everything in one step); retried anyway.
            StepResult::More => {}
            _ if Instant::now() >= deadline => {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    Some(format!("the database stayed busy for {BUSY_WAIT:?}")),
                ));
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// How long a copy waits for a source that is busy or locked.
const BUSY_WAIT: Duration = Duration::from_secs(30);

/// fsyncs the file at `path`; returns its size.
pub(in crate::storage) fn sync_file(tenant: &TenantName, path: &Path) -> Result<u64> {
    sys::open_path(path)
        .and_then(|f| sys::sync(f.as_fd(), path).and_then(|()| sys::fstat(f.as_fd())))
        .map(|stat| u64::try_from(stat.st_size).unwrap_or(0))
        .map_err(|e| Error::io(Some(tenant), path, "syncing the copy", e))
}
