//! A consistent copy of a live tenant database made by copying its files
//! (the kernel's `copy_file_range`, as `cp` does), not page by page
//! through SQLite: the backup's fast path (issue #29: the online backup
//! API cost 2.3× a plain copy of a 9 MB tenant, in its per-page reads and
//! writes).
//!
//! Why the copy is the database as of one commit: the files are copied
//! while the source connection holds one read transaction (in WAL mode,
//! it never blocks writers; a small tenant no connection is on may be
//! read under an exclusive lock instead, see `open_for_copy`), and
//!
//! - if the `-wal` then holds no frame (at most its 32-byte header), the
//!   read uses the database file alone, and SQLite lets no checkpoint
//!   write into that file while such a reader lasts (the checkpointer
//!   needs read lock 0 exclusively): the file is stable and whole. The
//!   copy is that file, its header switched from WAL to rollback mode
//!   (bytes 18 and 19, what `PRAGMA journal_mode = DELETE` writes);
//! - otherwise the read's frames stay in the `-wal` (a writer may not
//!   restart the log under a reader of its frames), so the `-wal` is
//!   copied too, after the database file. A checkpoint may write pages
//!   into the database file while it is copied, but only pages whose
//!   frames the copied `-wal` holds; frames appended meanwhile are later
//!   commits, and a torn last one fails its checksum. SQLite opens the
//!   copy, recovers its `-wal` (every complete commit in it) and folds it
//!   into the file (`journal_mode = DELETE`).

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use rustix::fs::FileType;

use crate::crypt::{self, TenantKey};
use crate::error::{Error, Result};
use crate::fs::dir::Dir;
use crate::fs::file_id::FileId;
use crate::fs::files::literal_path;
use crate::fs::lock::split;
use crate::fs::siblings::sidecar_path;
use crate::fs::sys;
use crate::name::TenantName;
use crate::storage::opening::open::WAL_HEADER;
use crate::storage::opening::open_files::OutsideSqlite;
use crate::storage::opening::opening_key::read_without_its_key;
use crate::storage::opening::wal_frames::current_frames;

/// What a snapshot wrote.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    /// The copy's schema version (`user_version`), read from the copy.
    pub(crate) version: i64,
    /// The copy's size in bytes.
    pub(crate) bytes: u64,
}

/// Flags for opening the copy: never a URI (see `literal_path`).
const COPY: OpenFlags = OpenFlags::SQLITE_OPEN_READ_WRITE.union(OpenFlags::SQLITE_OPEN_NO_MUTEX);

/// The database a copy is made of: the connection holding the read, the
/// file that connection is on, and an encrypted tenant's key.
pub(in crate::storage) struct Source<'a> {
    pub(in crate::storage) conn: &'a Connection,
    pub(in crate::storage) file: FileId,
    pub(in crate::storage) key: Option<&'a TenantKey>,
}

/// Why a copy was not made.
#[derive(Debug)]
pub(in crate::storage) enum CopyFailure {
    /// The tenant's path stopped naming the file the read is on before
    /// the copy was done (a destroy, or a restore that replaced it): what
    /// was copied may mix two files, or miss the frames of a `-wal`
    /// already removed. The caller throws the copy away.
    Moved,
    /// Anything else, said for the user.
    Failed(Error),
}

impl From<Error> for CopyFailure {
    fn from(e: Error) -> Self {
        CopyFailure::Failed(e)
    }
}

/// Copies `tenant`'s database at `path` (below `root`), read on `source`,
/// into the new file `scratch` in `dir`: a self-contained database in
/// rollback mode, as of one commit (see the module's comment), encrypted
/// as the source is. The copy is not synced: the caller syncs it, alone
/// or with others (`backup_all`), before it renames it into place.
pub(in crate::storage) fn copy_files(
    tenant: &TenantName,
    source: &Source<'_>,
    (root, path): (&Path, &Path),
    dir: &Dir,
    scratch: &Path,
) -> Result<Snapshot, CopyFailure> {
    let read = |e| match read_without_its_key(root, path, &e) {
        true => crypt::unkeyed_open(tenant, path),
        false => Error::sqlite(Some(tenant), path, "starting the backup's read", e),
    };
    // One read transaction for the whole copy, taken by reading.
    let snapshot = source.conn.unchecked_transaction().map_err(read)?;
    snapshot
        .query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
        .map_err(read)?;
    let (copy, with_wal) = copy_under_read(tenant, (root, path), source.file, dir, scratch)?;
    drop(snapshot);
    let path = dir.join(scratch);
    // An encrypted copy's header is SQLCipher's to change.
    let version = if with_wal || source.key.is_some() {
        drop(copy);
        fold_wal(tenant, &path, source.key)?
    } else {
        let version = to_rollback_mode(tenant, &copy, &path)?;
        // Its writes go out while the next tenants are copied (and each
        // worker's from its own thread), not all in the window's sync.
        sys::start_writeback(copy.as_fd());
        version
    };
    let stat = sys::stat(dir.fd(), scratch)
        .map_err(|e| io_error(tenant, &path, "looking at the copy", e))?;
    let bytes = u64::try_from(stat.st_size).unwrap_or(0);
    Ok(Snapshot { version, bytes })
}

/// fsyncs the copy `scratch` in `dir`.
///
/// # Errors
///
/// The sync failed: the copy cannot be trusted to be on disk.
pub(in crate::storage) fn sync_copy(tenant: &TenantName, dir: &Dir, scratch: &Path) -> Result<()> {
    sys::open_file(dir.fd(), scratch)
        .and_then(|f| sys::sync(f.as_fd(), scratch))
        .map_err(|e| io_error(tenant, &dir.join(scratch), "syncing the copy", e))
}

/// Copies the database file at `path` to `scratch` in `dir`, then the
/// frames of its `-wal` if it holds any (to `scratch`'s `-wal`), while
/// the caller holds a read transaction on `file`; the copy of the database
/// file, and whether a `-wal` was copied.
///
/// Both are copied from the directory that holds `file`, and `path` must
/// still name `file` once they are: a destroy fences the tenant (its path
/// stops naming the file) before it removes a `-wal`, and an inode is not
/// reused while the read holds it open, so the `-wal` copied is `file`'s,
/// whole.
fn copy_under_read(
    tenant: &TenantName,
    (root, path): (&Path, &Path),
    file: FileId,
    dir: &Dir,
    scratch: &Path,
) -> Result<(File, bool), CopyFailure> {
    let (from, name) =
        split(path).map_err(|e| io_error(tenant, path, "finding the database", e))?;
    let from = match Dir::open(root, from) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(CopyFailure::Moved),
        opened => opened.map_err(|e| io_error(tenant, path, "opening its directory", e))?,
    };
    // Never closed outright: that would drop this process's SQLite locks
    // on the file, the read's and its pools' (see `open_files`).
    let looking = |e| io_error(tenant, path, "looking at the database file", e);
    let mut main = match OutsideSqlite::take_parked(file) {
        Some(parked) => parked,
        None => match sys::open_file(from.fd(), name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(CopyFailure::Moved),
            Err(e) => return Err(io_error(tenant, path, "opening the database file", e).into()),
            Ok(opened) => OutsideSqlite::opened(opened).map_err(looking)?,
        },
    };
    let (true, Some(main)) = (main.id() == file, main.file()) else {
        return Err(CopyFailure::Moved);
    };
    let wal_name = sidecar_path(name, "-wal");
    let wal = open_wal(&from, &wal_name).map_err(|e| {
        io_error(
            tenant,
            &from.join(&wal_name),
            "reading the database's WAL",
            e,
        )
    })?;
    let copy = copy_file(tenant, (main, u64::MAX), dir, scratch)?;
    let with_wal = match wal {
        Some((mut wal, len)) => {
            copy_file(tenant, (&mut wal, len), dir, &sidecar_path(scratch, "-wal"))?;
            true
        }
        None => false,
    };
    let still = FileId::in_dir(&from, name).and_then(|inside| Ok((inside, FileId::at(path)?)));
    match still.map_err(|e| io_error(tenant, path, "looking at the database file", e))? {
        (Some(inside), Some(at)) if inside == file && at == file => Ok((copy, with_wal)),
        _ => Err(CopyFailure::Moved),
    }
}

/// The database's `-wal` and how much of it to copy, if it holds any
/// frame of its current generation: its header and those frames. The
/// frames after them are left over from before the log last restarted
/// (their salts are an earlier header's), and SQLite ignores them.
fn open_wal(dir: &Dir, name: &Path) -> io::Result<Option<(File, u64)>> {
    let wal = match sys::open_file(dir.fd(), name) {
        Ok(wal) => wal,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let stat = sys::fstat(wal.as_fd())?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        // Put there by hand: SQLite's own `-wal` is a regular file, and a
        // copy without its frames would miss commits.
        let what = "is not a regular file (SQLite's WAL always is)";
        return Err(io::Error::new(io::ErrorKind::InvalidData, what));
    }
    let len = u64::try_from(stat.st_size).unwrap_or(0);
    if len <= WAL_HEADER {
        return Ok(None);
    }
    let frames = current_frames(wal.as_fd(), len, name)?;
    Ok(frames.map(|end| (wal, end)))
}

/// Copies the first `len` bytes of `from` (all of it for `u64::MAX`)
/// into the new file `name` in `dir`; the copy, open for reading and
/// writing.
fn copy_file(
    tenant: &TenantName,
    (from, len): (&mut File, u64),
    dir: &Dir,
    name: &Path,
) -> Result<File> {
    let to = dir.join(name);
    let mut copy = sys::create_new(dir.fd(), name)
        .map_err(|e| io_error(tenant, &to, "creating the copy", e))?;
    sys::copy_prefix(from, &mut copy, len, name)
        .map_err(|e| io_error(tenant, &to, "writing the copy", e))?;
    Ok(copy)
}

/// Opens the copy (with `key`) and its `-wal` if any (SQLite recovers
/// the commits in it), and leaves it in rollback mode, the `-wal` folded
/// into the file; the copy's `user_version`.
fn fold_wal(tenant: &TenantName, copy: &Path, key: Option<&TenantKey>) -> Result<i64> {
    let sqlite = |operation, e| Error::sqlite(Some(tenant), copy, operation, e);
    let conn = Connection::open_with_flags(literal_path(copy), COPY)
        .map_err(|e| sqlite("opening the copy", e))?;
    crypt::apply(&conn, key).map_err(|e| sqlite("keying the copy", e))?;
    // The copy is synced once, whole, by the caller.
    conn.execute_batch("PRAGMA synchronous = OFF;")
        .map_err(|e| sqlite("setting up the copy", e))?;
    conn.query_row("PRAGMA journal_mode = DELETE", [], |r| {
        r.get::<_, String>(0)
    })
    .map_err(|e| sqlite("setting the copy's journal mode", e))?;
    let version = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| sqlite("reading the copy's version", e))?;
    conn.close()
        .map_err(|(_, e)| sqlite("closing the copy", e))?;
    Ok(version)
}

/// Switches the copy's header from WAL to rollback mode, as `PRAGMA
/// journal_mode = DELETE` would (bytes 18 and 19, the file format's read
/// and write versions, from 2 to 1); the copy's `user_version` (bytes 60
/// to 63).
fn to_rollback_mode(tenant: &TenantName, copy: &File, path: &Path) -> Result<i64> {
    let fail = |e| io_error(tenant, path, "switching the copy to rollback mode", e);
    let mut header = [0u8; 100];
    let read = sys::read_at(copy.as_fd(), &mut header, 0, path).map_err(fail)?;
    if read < header.len() || !header.starts_with(b"SQLite format 3\0") {
        return Err(fail(io::Error::new(
            io::ErrorKind::InvalidData,
            "the copy has no SQLite header: the tenant's database file is not a database",
        )));
    }
    if header[18..20] == [2, 2] {
        sys::write_at(copy, &[1, 1], 18, path).map_err(fail)?;
    }
    Ok(i64::from(i32::from_be_bytes([
        header[60], header[61], header[62], header[63],
    ])))
}

fn io_error(tenant: &TenantName, path: &Path, operation: &'static str, e: io::Error) -> Error {
    Error::io(Some(tenant), path, operation, e)
}

/// fsyncs the file at `path`; returns its size.
pub(in crate::storage) fn sync_file(tenant: &TenantName, path: &Path) -> Result<u64> {
    sys::open_path(path)
        .and_then(|f| sys::sync(f.as_fd(), path).and_then(|()| sys::fstat(f.as_fd())))
        .map(|stat| u64::try_from(stat.st_size).unwrap_or(0))
        .map_err(|e| Error::io(Some(tenant), path, "syncing the copy", e))
}
