//! What is at a tenant's database path, judged one way by every operation.
//!
//! A tenant's database is a regular file (`lstat`: never a symlink, a
//! directory or anything else, as `tenants()` lists them) holding a SQLite
//! database. Something else at the path is no tenant: `tenant_exists` says
//! no, opens and destroys say the tenant does not exist, and a create says
//! what is in the way, touching none of it. A regular file that is not a
//! database is a *damaged* tenant: reported, never opened for writing,
//! never "repaired" into an empty one.

use std::io;
use std::path::Path;

use rustix::fs::{FileType, Stat};

use crate::fs::dir::Dir;
use crate::fs::file_id::FileId;
use crate::fs::lock::split;
use crate::fs::sys;

/// What a tenant's database path names.
#[derive(Debug)]
pub(crate) enum Occupant {
    /// Nothing (or a directory on the way is missing).
    Nothing,
    /// A regular file: the tenant's database, perhaps damaged (see [`damage`]).
    Database(DatabaseFacts),
    /// Something that is not a regular file, described ("a directory").
    Other(&'static str),
}

/// What one `lstat` says about a tenant's database file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DatabaseFacts {
    /// Which file it is.
    pub(crate) id: FileId,
    /// Its size in bytes.
    pub(crate) len: u64,
}

/// What `path`, beneath `root`, names: never following a link, on the way
/// (see `dir.rs`) or at the path itself.
///
/// # Errors
///
/// I/O errors; one carrying a `Blocked` when a link or a file stands on
/// the way (`Error::io` makes it [`Error::NotADirectory`]).
pub(crate) fn occupant(root: &Path, path: &Path) -> io::Result<Occupant> {
    let (parent, name) = split(path)?;
    match Dir::open(root, parent) {
        Ok(dir) => occupant_in(&dir, name),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Occupant::Nothing),
        Err(e) => Err(e),
    }
}

/// What `name` in `dir` names, without following a link.
pub(crate) fn occupant_in(dir: &Dir, name: &Path) -> io::Result<Occupant> {
    match sys::stat(dir.fd(), name) {
        Ok(stat) => Ok(classify(&stat)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(Occupant::Nothing)
        }
        Err(e) => Err(e),
    }
}

fn classify(stat: &Stat) -> Occupant {
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => Occupant::Database(DatabaseFacts {
            id: FileId::from_stat(stat),
            len: stat.st_size as u64,
        }),
        FileType::Directory => Occupant::Other("a directory"),
        FileType::Symlink => Occupant::Other("a symbolic link"),
        _ => Occupant::Other("a special file (not a regular file)"),
    }
}

/// Why the regular file `facts` describes cannot be a tenant's database,
/// if the metadata alone tells. tenanted publishes only complete copies
/// of a template database, never an empty file, and SQLite would take an
/// empty file for a new database at version 0 (a migration would then
/// turn it into an empty, healthy-looking tenant: data loss hidden). So
/// it takes a file shorter than a page, the smallest of which is 512
/// bytes (SQLite counts its pages by the file's size: none), and a file
/// cut down to 50 bytes, its header's first bytes intact, was a tenant
/// at version 0 with every migration pending (an outside probe).
pub(crate) fn damage(facts: &DatabaseFacts) -> Option<&'static str> {
    match facts.len {
        0 => Some("the file is empty (0 bytes), so it holds no database"),
        1..SMALLEST_PAGE => Some(
            "the file is shorter than the smallest database page (512 bytes): it was cut short, and holds no database; put it back from a backup",
        ),
        _ => None,
    }
}

/// The smallest page size SQLite allows, and so the smallest database.
const SMALLEST_PAGE: u64 = 512;

/// The reason given for a file SQLite refuses as "not a database" (its
/// first 16 bytes are not "SQLite format 3\0", or its header is invalid).
/// SQLite's own check on the first read, so no second descriptor is ever
/// opened on a file whose POSIX locks this process may hold.
pub(crate) const NOT_SQLITE: &str = "it is not a SQLite database (SQLite: file is not a database)";
