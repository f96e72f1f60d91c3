//! Copying a live tenant database to a self-contained file, consistently,
//! while other threads and processes keep writing to it.
//!
//! The database's files are copied under one read transaction on the
//! source (`file_copy.rs` says why that is the database as of one commit;
//! in WAL mode that read never blocks writers), into a hidden scratch file
//! beside the destination, left in rollback mode (`journal_mode =
//! DELETE`: one file, no `-wal`), synced, and renamed over the
//! destination: a reader of the destination sees the old file or the
//! whole new one, never a torn one, and never a file not yet on disk.
//! `backup_tenant` syncs the copy and its directory at once
//! ([`snapshot`]); `backup_all` makes its copies in a staging directory of
//! its own, syncs many with one `syncfs` of their file system, then moves
//! each into place ([`Staged`]).
//!
//! `benches/backup_floor.rs` measures it against a plain `fs::copy` +
//! fsync of the same file; `benches/backup.rs` against `VACUUM INTO` and
//! SQLite's online backup API, which it used until issue #29 (2.3× the
//! plain copy, in its page-by-page reads and writes). `copy_to` below
//! still copies through that API for a restore, which must leave the
//! tenant in WAL mode.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::crypt::{self, TenantKey};
use crate::error::{Error, Result};
use crate::fs::dir::Dir;
use crate::fs::file_id::FileId;
use crate::fs::files::literal_path;
use crate::fs::files::remove_with_sidecars;
use crate::fs::siblings::{name_of, scratch_path};
use crate::fs::sys;
use crate::name::TenantName;
use crate::storage::coordination::undecided::marked_in_any_layout;
pub(crate) use crate::storage::lifecycle::file_copy::Snapshot;
use crate::storage::lifecycle::file_copy::{CopyFailure, Source, copy_files};
use crate::storage::lifecycle::file_copy::{sync_copy, sync_file};
use crate::storage::lifecycle::integrity::verify_copy;
use crate::storage::lifecycle::settle::put_back_interrupted;
use crate::storage::opening::open::{OneOffRead, open_for_copy};
use crate::storage::opening::open_error::missing_error;

/// Flags for a new copy: created here, never a URI (see `literal_path`).
const NEW_FILE: OpenFlags = OpenFlags::SQLITE_OPEN_READ_WRITE
    .union(OpenFlags::SQLITE_OPEN_CREATE)
    .union(OpenFlags::SQLITE_OPEN_NO_MUTEX);

/// How many times a snapshot starts again when the tenant was replaced
/// while it was copied (a restore with replace in another process), or
/// re-keyed before its copy was in place: each attempt reads the new file.
/// A tenant replaced this often in a row is left for the user to back up
/// again.
const ATTEMPTS: usize = 3;

/// Whether a copy is read back and checked before it is kept (see
/// `integrity::verify_copy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verify {
    /// `PRAGMA integrity_check` of the copy, as a restore will ask it.
    Integrity,
    /// The copy is kept as written.
    No,
}

/// A backup directory laid out like the root, that copies go beneath.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Within<'a> {
    /// The backup directory.
    pub(crate) base: &'a Path,
    /// Whether each tenant has a directory of its own there (then a
    /// failed copy removes the one it left empty; otherwise the directory
    /// is a bucket other copies share, and stays).
    pub(crate) owns_dir: bool,
}

/// Copies `tenant`'s database at `path` to `dest` (creating `dest`'s
/// directory if needed, replacing a file already at `dest` atomically),
/// synced, its directory entries too, before it returns.
///
/// With `within`, `dest` is beneath that directory (a `backup_all`
/// directory, laid out like the root) and is reached as a tenant's path is
/// (see `dir.rs`): a link planted in the backup directory is refused, and
/// never leads the copy over a file elsewhere (such as a live tenant).
/// Without, `dest` is the caller's own path, links and all.
///
/// The source is opened the way every one-off read of a tenant is (pinned,
/// never checkpointing on close), so a destroy in another process waits for
/// the copy to finish, and one in this process cannot be harmed by it: a
/// tenant destroyed during its copy fails as gone
/// (`TenantDoesNotExist` or `TenantBeingDestroyed`), and nothing of it is
/// left at `dest`. With [`Verify::Integrity`], a copy that fails the check
/// fails as [`Error::DamagedTenant`], and nothing of it is left either.
pub(crate) fn snapshot(
    tenant: &TenantName,
    (root, path): (&Path, &Path),
    dest: &Path,
    (within, verify): (Option<Within<'_>>, Verify),
) -> Result<Snapshot> {
    let mut made = None;
    let result = attempts(tenant, (root, path), || {
        let read = open_for_copy(tenant, root, path)?;
        // Made once the tenant is found: a failed open leaves nothing.
        let dir = match made {
            Some(ref dir) => dir,
            None => made.insert(destination_dir(dest, within.map(|w| w.base)).map_err(|e| {
                Error::io(Some(tenant), dest, "creating the backup's directory", e)
            })?),
        };
        let key = read.key.clone();
        let scratch = scratch_path(name_of(dest));
        let copied = copy_files(tenant, &source_of(&read), (root, path), dir, &scratch);
        // The copy is whole: the read's lock goes before the check and
        // the syncs, since it may keep every other connection out (see
        // `open_for_copy`).
        drop(read);
        let placed = copied.and_then(|snapshot| {
            verified(tenant, (path, &dir.join(&scratch)), key.as_ref(), verify)?;
            sync_copy(tenant, dir, &scratch)?;
            sys::rename(dir.fd(), &scratch, name_of(dest))
                .and_then(|()| dir.sync())
                .map_err(|e| Error::io(Some(tenant), dest, "moving the backup into place", e))?;
            Ok(snapshot)
        });
        if placed.is_err() {
            remove_with_sidecars(dir, &scratch);
        }
        // A re-key that committed before the copy was in place leaves it
        // under a key no longer kept, which no restore could use: copy the
        // re-keyed file over it. (One committed after this look finds a
        // backup taken before it, which it retires, as it retires every
        // earlier backup.)
        match placed {
            Ok(_) if !crypt::key_kept(tenant, root, key.as_ref())? => Err(CopyFailure::Moved),
            placed => placed,
        }
    });
    if result.is_err()
        && let Some(within) = within
    {
        remove_if_empty(within, dest);
    }
    result
}

/// Copies `tenant`'s database at `path` into a new file in `staging` (a
/// `backup_all` run's own directory), not synced: the run syncs a window
/// of copies at once (one `syncfs`), then puts each in place
/// ([`Staged::place`]). Read and checked as [`snapshot`] reads and checks.
///
/// # Errors
///
/// As [`snapshot`]; nothing of the copy is left in `staging`.
pub(crate) fn snapshot_staged(
    tenant: &TenantName,
    (root, path): (&Path, &Path),
    staging: &Dir,
    verify: Verify,
) -> Result<Staged> {
    attempts(tenant, (root, path), || {
        let read = open_for_copy(tenant, root, path)?;
        let key = read.key.clone();
        let scratch = scratch_path(Path::new("main.sqlite3"));
        let copied = copy_files(tenant, &source_of(&read), (root, path), staging, &scratch);
        // As in `snapshot`: the read's lock goes before the check.
        drop(read);
        let checked = copied.and_then(|snapshot| {
            verified(
                tenant,
                (path, &staging.join(&scratch)),
                key.as_ref(),
                verify,
            )?;
            Ok(snapshot)
        });
        match checked {
            Ok(snapshot) => Ok(Staged {
                tenant: tenant.clone(),
                root: root.to_path_buf(),
                path: path.to_path_buf(),
                scratch,
                snapshot,
                key,
                verify,
            }),
            Err(failure) => {
                remove_with_sidecars(staging, &scratch);
                Err(failure)
            }
        }
    })
}

/// The copy at `copy` of `tenant`'s database at `path`, checked as
/// `verify` says.
fn verified(
    tenant: &TenantName,
    (path, copy): (&Path, &Path),
    key: Option<&TenantKey>,
    verify: Verify,
) -> Result<(), CopyFailure> {
    match verify {
        Verify::Integrity => Ok(verify_copy(tenant, (path, copy), key)?),
        Verify::No => Ok(()),
    }
}

/// Runs `attempt` until it succeeds, fails, or has found the tenant
/// replaced [`ATTEMPTS`] times; a tenant gone meanwhile is said so.
fn attempts<T>(
    tenant: &TenantName,
    (root, path): (&Path, &Path),
    mut attempt: impl FnMut() -> Result<T, CopyFailure>,
) -> Result<T> {
    for _ in 0..ATTEMPTS {
        match attempt() {
            Ok(done) => return Ok(done),
            Err(CopyFailure::Moved) if FileId::at(path).ok().flatten().is_some() => {}
            // Fenced off by a restore or a re-key: copied again once it is
            // done (the next attempt's read waits for it).
            Err(CopyFailure::Moved) if marked_in_any_layout(root, path).is_some() => {}
            Err(CopyFailure::Moved) => return Err(missing_error(tenant, path)),
            // Fenced off by a replace that died: put back, then copied.
            Err(CopyFailure::Failed(e)) if e.says_tenant_gone() => {
                put_back_interrupted(tenant, (root, path)).read_again(e)?;
            }
            Err(CopyFailure::Failed(e)) => return Err(e),
        }
    }
    Err(replaced(tenant, path))
}

fn source_of(read: &OneOffRead) -> Source<'_> {
    // An encrypted tenant's backup is encrypted with the same key.
    Source {
        conn: &read.conn,
        file: read.file,
        key: read.key.as_ref(),
    }
}

/// A tenant's copy in a `backup_all` run's staging directory, waiting for
/// its window's sync to be put in place.
pub(crate) struct Staged {
    tenant: TenantName,
    root: PathBuf,
    path: PathBuf,
    /// Its name in the staging directory.
    scratch: PathBuf,
    snapshot: Snapshot,
    key: Option<TenantKey>,
    /// Checked again as it was if it is copied again.
    verify: Verify,
}

impl Staged {
    /// Moves the copy from `staging` (synced by the caller: its file
    /// system) to `dest` beneath `within`, making `dest`'s directory (its
    /// entry synced by the caller too). A copy made under a key the tenant
    /// no longer keeps (re-keyed, or destroyed with its key, meanwhile) is
    /// not put in place: the tenant is copied again, as [`snapshot`]
    /// copies it.
    ///
    /// # Errors
    ///
    /// The directory or the rename failed, or a copy made again failed;
    /// nothing of this copy is left, in `staging` or at `dest`.
    pub(crate) fn place(self, staging: &Dir, dest: &Path, within: Within<'_>) -> Result<Snapshot> {
        let tenant = &self.tenant;
        if !crypt::key_kept(tenant, &self.root, self.key.as_ref())
            .inspect_err(|_| self.discard(staging))?
        {
            self.discard(staging);
            let again = (Some(within), self.verify);
            return snapshot(tenant, (&self.root, &self.path), dest, again);
        }
        let parent = dest.parent().unwrap_or(within.base);
        let move_in = || {
            Dir::make_deferred(within.base, parent, &mut Vec::new()).and_then(|dir| {
                sys::rename_between(staging.fd(), &self.scratch, dir.fd(), name_of(dest))
            })
        };
        // A failed copy of the same tenant by another run into this
        // directory may have removed the directory just made: once more.
        let moved = match move_in() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => move_in(),
            moved => moved,
        };
        if let Err(e) = moved {
            self.discard(staging);
            remove_if_empty(within, dest);
            let operation = "moving the backup into place from the run's staging directory";
            return Err(Error::io(Some(tenant), dest, operation, e));
        }
        // The copy in place under a key no longer kept is no backup.
        let unplace = || {
            if let Ok(dir) = Dir::open(within.base, parent) {
                remove_with_sidecars(&dir, name_of(dest));
            }
            remove_if_empty(within, dest);
        };
        // As in `snapshot`: a re-key between the look above and the rename.
        match crypt::key_kept(tenant, &self.root, self.key.as_ref()) {
            Ok(true) => Ok(self.snapshot),
            Ok(false) => snapshot(
                tenant,
                (&self.root, &self.path),
                dest,
                (Some(within), self.verify),
            )
            .inspect_err(|_| unplace()),
            Err(e) => {
                unplace();
                Err(e)
            }
        }
    }

    /// Removes the copy from `staging`.
    pub(crate) fn discard(&self, staging: &Dir) {
        remove_with_sidecars(staging, &self.scratch);
    }
}

/// The error of a tenant replaced [`ATTEMPTS`] times while it was copied.
fn replaced(tenant: &TenantName, path: &Path) -> Error {
    let replaced = std::io::Error::other(format!(
        "the tenant's database was replaced while it was copied, {ATTEMPTS} times in a row; back up again"
    ));
    Error::io(Some(tenant), path, "copying the database", replaced)
}

/// Removes `dest`'s directory beneath `within` if the failed copy left it
/// empty, so that a backup directory holds no tenant directory without
/// its database (a listing of it would show one). Only a tenant's own
/// directory: the ones above it (and a bucket of a layout without one)
/// may be shared with other tenants' copies.
fn remove_if_empty(within: Within<'_>, dest: &Path) {
    let Some(dir) = dest.parent().filter(|_| within.owns_dir) else {
        return;
    };
    let (Some(above), Some(name)) = (dir.parent(), dir.file_name()) else {
        return;
    };
    if above.starts_with(within.base)
        && let Ok(above) = Dir::open(within.base, above)
    {
        // Not empty (an earlier backup's file): it stays.
        let _ = sys::remove_dir(above.fd(), Path::new(name));
    }
}

/// The directory `dest` goes in, made if missing (see [`snapshot`]), the
/// directories above new ones synced.
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
