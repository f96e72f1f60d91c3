//! Creating a tenant's file, atomically.
//!
//! Create builds the database in a hidden scratch file beside its final
//! path (a copy of the template database), runs the seed, syncs it, and
//! publishes it with `hard_link`, which fails rather than replace an
//! existing file. It holds the tenant's lock, and cleans up whatever a
//! crashed predecessor left.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use rusqlite::Connection;

use super::database_file::{Occupant, occupant};
use super::debris::remove_debris;
use super::files::{remove_empty_parents, remove_with_sidecars, sync_dir, sync_new_dirs};
use super::lock::FileLock;
use super::open::{EXISTING, literal_path, open_error};
use super::siblings::{lock_path, scratch_path};
use super::template_database::Template;
use crate::error::{BoxError, Error, Result};
use crate::name::TenantName;

/// A seed closure: runs on the new database, inside a transaction, before
/// the tenant is published.
pub(crate) type Seed<'a> = &'a mut dyn FnMut(&rusqlite::Transaction<'_>) -> Result<(), BoxError>;

/// Creates tenant `tenant` at `path` from the template database file, then
/// runs `seed`. Exactly one of several concurrent creators succeeds.
pub(crate) fn create(
    tenant: &TenantName,
    path: &Path,
    template: Template,
    seed: Option<Seed<'_>>,
    root: &Path,
) -> Result<()> {
    // Directories the lock below makes must outlive a crash as well as
    // the database in them.
    let new_dirs = !path.parent().is_some_and(Path::is_dir);
    let lock_file = lock_path(path);
    let lock = FileLock::acquire(&lock_file, true)
        .map_err(|e| Error::io(Some(tenant), &lock_file, "locking the tenant", e))?;
    let result = create_locked(tenant, path, template, seed);
    let existed = matches!(result, Err(Error::TenantExists { .. }));
    if result.is_ok() && new_dirs {
        sync_new_dirs(path, root);
    }
    drop(lock);
    if result.is_err() && !existed {
        remove_empty_parents(path, root);
    }
    result
}

fn create_locked(
    tenant: &TenantName,
    path: &Path,
    template: Template,
    seed: Option<Seed<'_>>,
) -> Result<()> {
    let found = occupant(path)
        .map_err(|e| Error::io(Some(tenant), path, "looking at the database file", e))?;
    match found {
        Occupant::Nothing => {}
        Occupant::Database(_) => {
            return Err(Error::TenantExists {
                tenant: tenant.clone(),
                path: path.to_path_buf(),
            });
        }
        // Not ours to remove, and no tenant: say what is in the way.
        Occupant::Other(found) => {
            return Err(Error::NotATenantDatabase {
                tenant: tenant.clone(),
                path: path.to_path_buf(),
                found,
            });
        }
    }
    // We hold the lock and the tenant does not exist: anything left beside
    // it is debris from a crashed create or destroy.
    remove_debris(Some(tenant), path)?;

    let scratch = scratch_path(path);
    let built = build(tenant, path, &scratch, template, seed);
    let published = built.and_then(|()| publish(tenant, &scratch, path));
    remove_with_sidecars(&scratch);
    published
}

fn build(
    tenant: &TenantName,
    path: &Path,
    scratch: &Path,
    template: Template,
    seed: Option<Seed<'_>>,
) -> Result<()> {
    copy_template(tenant, scratch, template)?;
    // Without a seed the copy is the tenant: no need to open it. (Its
    // version is the template's, and every open checks it anyway.)
    if let Some(seed) = seed {
        let conn = Connection::open_with_flags(literal_path(scratch), EXISTING)
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

/// Copies the open template into a new scratch file. Reading the open
/// file, not its path, a copy never fails because another version of the
/// code removed the template meanwhile.
fn copy_template(tenant: &TenantName, scratch: &Path, mut template: Template) -> Result<()> {
    let mut copy = File::create_new(scratch)
        .map_err(|e| Error::io(Some(tenant), scratch, "creating the new database", e))?;
    io::copy(&mut template.file, &mut copy).map_err(|e| {
        Error::io(
            Some(tenant),
            &template.path,
            "copying the template database",
            e,
        )
    })?;
    Ok(())
}

fn run_seed(tenant: &TenantName, path: &Path, conn: &Connection, seed: Seed<'_>) -> Result<()> {
    let tx = conn
        .unchecked_transaction()
        .map_err(|e| Error::sqlite(Some(tenant), path, "starting the seed transaction", e))?;
    seed(&tx).map_err(|cause| Error::Seed {
        tenant: tenant.clone(),
        path: path.to_path_buf(),
        cause,
    })?;
    tx.commit()
        .map_err(|e| Error::sqlite(Some(tenant), path, "committing the seed", e))
}

/// Publishes the synced `scratch` as `tenant`'s database `path` without
/// ever replacing a file there, and makes it durable. Restore publishes
/// the same way.
pub(super) fn publish(tenant: &TenantName, scratch: &Path, path: &Path) -> Result<()> {
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
