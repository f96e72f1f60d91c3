//! What is at a tenant's database path, judged one way by every operation.
//!
//! A tenant's database is a regular file (`lstat`: never a symlink, a
//! directory or anything else, as `tenants()` lists them) holding a SQLite
//! database. Something else at the path is no tenant: `tenant_exists` says
//! no, opens and destroys say the tenant does not exist, and a create says
//! what is in the way, touching none of it. A regular file that is not a
//! database is a *damaged* tenant: reported, never opened for writing,
//! never "repaired" into an empty one.

use std::fs::{self, FileType, Metadata};
use std::io;
use std::path::Path;

use super::open::missing_error;
use crate::error::{Error, Result};
use crate::name::TenantName;

/// What a tenant's database path names.
#[derive(Debug)]
pub(crate) enum Occupant {
    /// Nothing (or a parent directory is missing).
    Nothing,
    /// A regular file: the tenant's database, perhaps damaged (see [`damage`]).
    Database(Metadata),
    /// Something that is not a regular file, described ("a directory").
    Other(&'static str),
}

/// What `path` names, without following a symlink.
pub(crate) fn occupant(path: &Path) -> io::Result<Occupant> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => Ok(Occupant::Database(meta)),
        Ok(meta) => Ok(Occupant::Other(describe(meta.file_type()))),
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

fn describe(file_type: FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else {
        "a special file (not a regular file)"
    }
}

/// Why the regular file `meta` describes cannot be a tenant's database,
/// if the metadata alone tells. tenanted publishes only complete copies
/// of a template database, never an empty file, and SQLite would take an
/// empty file for a new database at version 0 (a migration would then
/// turn it into an empty, healthy-looking tenant: data loss hidden).
pub(crate) fn damage(meta: &Metadata) -> Option<&'static str> {
    (meta.len() == 0).then_some("the file is empty (0 bytes), so it holds no database")
}

/// The reason given for a file SQLite refuses as "not a database" (its
/// first 16 bytes are not "SQLite format 3\0", or its header is invalid).
/// SQLite's own check on the first read, so no second descriptor is ever
/// opened on a file whose POSIX locks this process may hold.
pub(crate) const NOT_SQLITE: &str = "it is not a SQLite database (SQLite: file is not a database)";

/// The metadata of `tenant`'s database at `path`, or the error every
/// operation gives when it is not there or is damaged.
///
/// # Errors
///
/// [`Error::TenantDoesNotExist`] (or `TenantBeingDestroyed`) when no
/// regular file is there, [`Error::DamagedTenant`] for an empty file,
/// [`Error::Io`] when the path cannot be looked at.
pub(crate) fn require_database(tenant: &TenantName, path: &Path) -> Result<Metadata> {
    let found = occupant(path)
        .map_err(|e| Error::io(Some(tenant), path, "looking at the database file", e))?;
    match found {
        Occupant::Database(meta) => match damage(&meta) {
            None => Ok(meta),
            Some(reason) => Err(damaged(tenant, path, reason)),
        },
        Occupant::Nothing | Occupant::Other(_) => Err(missing_error(tenant, path)),
    }
}

/// [`Error::DamagedTenant`].
pub(crate) fn damaged(tenant: &TenantName, path: &Path, reason: &str) -> Error {
    Error::DamagedTenant {
        tenant: tenant.clone(),
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    }
}
