//! Creating a tenant's file, atomically.
//!
//! Create builds the database in a hidden scratch file beside its final
//! path (a copy of the template database), runs the seed, syncs it, and
//! publishes it with `hard_link`, which fails rather than replace an
//! existing file. It holds the tenant's lock, and cleans up whatever a
//! crashed predecessor left.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::path::Path;

use rusqlite::Connection;

use super::database_file::{Occupant, occupant_in};
use super::debris::remove_debris;
use super::dir::Dir;
use super::file_id::FileId;
use super::files::{remove_empty_parents, remove_quietly, remove_with_sidecars};
use super::lock::FileLock;
use super::open::{EXISTING, literal_path, open_error};
use super::siblings::{lock_path, name_of, scratch_path};
use super::sys;
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
    mut template: Template,
    seed: Option<Seed<'_>>,
    root: &Path,
) -> Result<()> {
    under_new_lock(tenant, root, path, |dir| {
        create_locked(tenant, dir, path, &mut template, seed)
    })
}

/// Runs `work` holding `tenant`'s lock, the directories on the way made
/// (each durable in its parent, never through a link: see `dir.rs`).
/// Create and restore publish a new database this way.
pub(super) fn under_new_lock<T>(
    tenant: &TenantName,
    root: &Path,
    path: &Path,
    work: impl FnOnce(&Dir) -> Result<T>,
) -> Result<T> {
    let lock_file = lock_path(path);
    let lock = FileLock::acquire(root, &lock_file, true)
        .map_err(|e| Error::io(Some(tenant), &lock_file, "locking the tenant", e))?;
    let result = work(lock.dir());
    drop(lock);
    if let Err(e) = &result {
        tidy_after_failure(root, path, e);
    }
    result
}

/// After a create failed (its lock released): the directories it made and
/// left empty go, unless the tenant turned out to exist.
pub(super) fn tidy_after_failure(root: &Path, path: &Path, e: &Error) {
    if !matches!(e, Error::TenantExists { .. })
        && let Some(dir) = path.parent()
    {
        remove_empty_parents(root, dir);
    }
}

fn create_locked(
    tenant: &TenantName,
    dir: &Dir,
    path: &Path,
    template: &mut Template,
    seed: Option<Seed<'_>>,
) -> Result<()> {
    clear_the_way(tenant, dir, path)?;
    let scratch = scratch_path(name_of(path));
    // Only a seed opens the copy with SQLite, which can leave sidecars.
    let seeded = seed.is_some();
    let built = build(tenant, dir, &scratch, path, template, seed);
    let published = built.and_then(|()| publish(tenant, dir, &scratch, path));
    match seeded {
        true => remove_with_sidecars(dir, &scratch),
        false => remove_quietly(dir, &scratch),
    }
    published
}

/// Checks that nothing is at `path` (in `dir`, whose lock the caller
/// holds) and removes the debris a crashed create or destroy left beside
/// it.
///
/// # Errors
///
/// [`Error::TenantExists`], or [`Error::NotATenantDatabase`] naming what
/// is in the way.
pub(super) fn clear_the_way(tenant: &TenantName, dir: &Dir, path: &Path) -> Result<()> {
    let name = name_of(path);
    let found = occupant_in(dir, name)
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
    remove_debris(Some(tenant), dir, name).map(drop)
}

fn build(
    tenant: &TenantName,
    dir: &Dir,
    scratch: &Path,
    path: &Path,
    template: &mut Template,
    seed: Option<Seed<'_>>,
) -> Result<()> {
    let copy = copy_template(tenant, dir, scratch, template)?;
    // Without a seed the copy is the tenant: no need to open it. (Its
    // version is the template's, and every open checks it anyway.)
    if let Some(seed) = seed {
        run_seed(tenant, dir, scratch, path, seed)?;
    }
    // The seed wrote through SQLite, by path: it must have written the
    // file made here, inside the root.
    let on_copy = FileId::by_path_is(dir, scratch, &copy);
    let scratch_path = dir.join(scratch);
    match on_copy {
        Ok(true) => sys::sync(copy.as_fd(), scratch)
            .map_err(|e| Error::io(Some(tenant), &scratch_path, "syncing the new database", e)),
        Ok(false) => Err(Error::io(
            Some(tenant),
            &scratch_path,
            "building the new database",
            io::Error::other("the scratch file was replaced while it was being built"),
        )),
        Err(e) => Err(Error::io(
            Some(tenant),
            &scratch_path,
            "looking at the new database",
            e,
        )),
    }
}

/// Copies the open template into a new scratch file, returned open (not
/// yet synced). Reading the open file, not its path, a copy never fails
/// because another version of the code removed the template meanwhile.
pub(super) fn copy_template(
    tenant: &TenantName,
    dir: &Dir,
    scratch: &Path,
    template: &mut Template,
) -> Result<File> {
    let mut copy = sys::create_new(dir.fd(), scratch).map_err(|e| {
        Error::io(
            Some(tenant),
            dir.join(scratch),
            "creating the new database",
            e,
        )
    })?;
    let copied = template
        .file
        .seek(SeekFrom::Start(0))
        .and_then(|_| sys::copy(&mut template.file, &mut copy, scratch));
    copied.map_err(|e| {
        Error::io(
            Some(tenant),
            &template.path,
            "copying the template database",
            e,
        )
    })?;
    Ok(copy)
}

fn run_seed(
    tenant: &TenantName,
    dir: &Dir,
    scratch: &Path,
    path: &Path,
    seed: Seed<'_>,
) -> Result<()> {
    let scratch = dir.join(scratch);
    let conn = Connection::open_with_flags(literal_path(&scratch), EXISTING)
        .map_err(|e| open_error(tenant, &scratch, e))?;
    let tx = conn
        .unchecked_transaction()
        .map_err(|e| Error::sqlite(Some(tenant), path, "starting the seed transaction", e))?;
    seed(&tx).map_err(|cause| Error::Seed {
        tenant: tenant.clone(),
        path: path.to_path_buf(),
        cause,
    })?;
    tx.commit()
        .map_err(|e| Error::sqlite(Some(tenant), path, "committing the seed", e))?;
    conn.close()
        .map_err(|(_, e)| Error::sqlite(Some(tenant), &scratch, "closing the new database", e))
}

/// Publishes the synced `scratch` (in `dir`) as `tenant`'s database `path`
/// without ever replacing a file there, and makes it durable. Restore
/// publishes the same way.
pub(super) fn publish(tenant: &TenantName, dir: &Dir, scratch: &Path, path: &Path) -> Result<()> {
    link(tenant, dir, scratch, path)?;
    dir.sync()
        .map_err(|e| Error::io(Some(tenant), path, "making the new database durable", e))
}

/// Links the synced `scratch` as `path`, never replacing a file there;
/// the caller makes the link durable by syncing `dir`.
pub(super) fn link(tenant: &TenantName, dir: &Dir, scratch: &Path, path: &Path) -> Result<()> {
    match sys::link(dir.fd(), scratch, name_of(path)) {
        Ok(()) => Ok(()),
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
