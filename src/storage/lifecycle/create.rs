//! Creating a tenant's file, atomically.
//!
//! Holding the tenant's locks (see `tenant_path.rs`), create clears away
//! what a crashed predecessor left, builds the database out of reach (a
//! copy of the template database), runs the seed, syncs it, and publishes
//! it in one step that never replaces anything (see `stage.rs`).

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use rusqlite::Connection;

use crate::busy::WaitedFor;
use crate::crypt::{self, TenantKey};
use crate::error::{BoxError, Error, Result};
use crate::fs::dir::Dir;
use crate::fs::file_id::FileId;
use crate::fs::files::literal_path;
use crate::fs::files::remove_empty_parents;
use crate::fs::siblings::name_of;
use crate::fs::{Patience, sys};
use crate::name::TenantName;
use crate::storage::coordination::tenant_path::{TenantLock, TenantPath};
use crate::storage::lifecycle::debris::{
    finish_replace_in_place, remove_debris, remove_entry_debris,
};
use crate::storage::lifecycle::encrypted_copy::encrypted_copy;
use crate::storage::lifecycle::stage::Stage;
use crate::storage::lifecycle::template_database::Template;
use crate::storage::opening::database_file::{Occupant, occupant_in};
use crate::storage::opening::open::EXISTING;
use crate::storage::opening::open_error::open_error;

/// A seed closure: runs on the new database, inside a transaction, before
/// the tenant is published.
pub(crate) type Seed<'a> = &'a mut dyn FnMut(&rusqlite::Transaction<'_>) -> Result<(), BoxError>;

/// Called under a tenant's locks once its name is known to be free (no
/// tenant there, the debris of a dead one swept), before a new tenant is
/// made under it: what a destroy that died kept of the old tenant outside
/// its files (its limits, see `manager.rs`) goes, so that the new one
/// does not inherit it. An error stops the create.
pub(crate) type Cleared<'a> = &'a (dyn Fn(&TenantName) -> Result<()> + Sync);

/// Creates tenant `tenant` at `at` from the template database file, then
/// runs `seed`. Exactly one of several concurrent creators succeeds.
pub(crate) fn create(
    tenant: &TenantName,
    at: TenantPath<'_>,
    (mut template, seed): (Template, Option<Seed<'_>>),
    cleared: Cleared<'_>,
    patience: &Patience,
) -> Result<()> {
    under_new_lock(tenant, at, patience, WaitedFor::Create, |lock| {
        clear_the_way(tenant, lock, at)?;
        cleared(tenant)?;
        let mut stage = Stage::begin(tenant, lock, at, false)?;
        build(tenant, &mut stage, at, &mut template, seed)?;
        stage.publish(tenant, at)
    })
}

/// Runs `work` holding `tenant`'s locks, the directories on the way made
/// (each durable in its parent, never through a link: see `dir.rs`),
/// waiting for another holder until `patience` runs out. Create and
/// restore (`doing`) publish a new database this way.
pub(in crate::storage) fn under_new_lock<T>(
    tenant: &TenantName,
    at: TenantPath<'_>,
    patience: &Patience,
    doing: WaitedFor,
    work: impl FnOnce(&TenantLock) -> Result<T>,
) -> Result<T> {
    // A key made or destroyed beneath waits no longer than the operation.
    let _patience = patience.scoped();
    let lock = TenantLock::for_new(tenant, at, patience, doing)?;
    let result = work(&lock);
    drop(lock);
    if let Err(e) = &result {
        tidy_after_failure(at, e);
    }
    result
}

/// After a create failed (its locks released): the directories it made and
/// left empty go, unless the tenant turned out to exist.
pub(in crate::storage) fn tidy_after_failure(at: TenantPath<'_>, e: &Error) {
    if !matches!(e, Error::TenantExists { .. }) {
        remove_empty_parents(at.root(), at.db_dir());
    }
}

/// Checks that `tenant` does not exist (the caller holds its locks) and
/// removes the debris a crashed create or destroy left.
///
/// # Errors
///
/// [`Error::TenantExists`], or [`Error::NotATenantDatabase`] naming what
/// is in the way; [`Error::TenantBusy`] if a destroy that died left the
/// tenant's directory fenced while another process still has it open.
pub(in crate::storage) fn clear_the_way(
    tenant: &TenantName,
    lock: &TenantLock,
    at: TenantPath<'_>,
) -> Result<()> {
    if at.owns_dir() {
        remove_entry_debris(tenant, lock, at)?;
    } else {
        finish_replace_in_place(tenant, lock, at)?;
    }
    let Some(dir) = lock.db_dir(at) else {
        return Ok(());
    };
    let path = at.db();
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
    stage: &mut Stage,
    at: TenantPath<'_>,
    template: &mut Template,
    seed: Option<Seed<'_>>,
) -> Result<()> {
    let (copy, key) = new_database(tenant, at, stage, template)?;
    // Without a seed the copy is the tenant: no need to open it. (Its
    // version is the template's, and every open checks it anyway.)
    if let Some(seed) = seed {
        stage.opened_by_sqlite();
        run_seed(tenant, &stage.scratch_path(), at.db(), seed, key.as_ref())?;
    }
    // The seed wrote through SQLite, by path: it must have written the
    // file made here, inside the root.
    let on_copy = FileId::by_path_is(stage.dir(), stage.scratch(), &copy);
    let scratch_path = stage.scratch_path();
    match on_copy {
        Ok(true) => sys::sync(copy.as_fd(), stage.scratch())
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

/// The new database in `stage`'s scratch file, returned open (not yet
/// synced), with its key: a copy of the template, or, when the root has a
/// key provider, an encrypted export of it under a new key for this
/// incarnation (forgotten again if the export fails).
pub(in crate::storage) fn new_database(
    tenant: &TenantName,
    at: TenantPath<'_>,
    stage: &mut Stage,
    template: &mut Template,
) -> Result<(File, Option<TenantKey>)> {
    let key = crypt::created_key(tenant, at.root())?;
    let made = match &key {
        Some(key) => {
            stage.opened_by_sqlite();
            encrypted_copy(tenant, stage.dir(), stage.scratch(), template, key)
        }
        None => copy_template(tenant, stage.dir(), stage.scratch(), template),
    };
    if made.is_err()
        && key.is_some()
        && let Err(e) = crypt::destroyed_key(tenant, at.root())
    {
        tracing::warn!(tenant = %tenant, error = %e, "a create failed; the key made for it stays until the next create");
    }
    Ok((made?, key))
}

/// Copies the open template into a new scratch file, returned open (not
/// yet synced). Reading the open file, not its path, a copy never fails
/// because another version of the code removed the template meanwhile.
pub(in crate::storage) fn copy_template(
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
    let copied = sys::copy(&mut template.file, &mut copy, scratch);
    copied.map_err(|e| match out_of_space(&e) {
        // The new database could not be written: name it, not the
        // template it was copied from.
        true => Error::io(
            Some(tenant),
            dir.join(scratch),
            "writing the new database (a copy of the template database)",
            e,
        ),
        false => Error::io(
            Some(tenant),
            &template.path,
            "copying the template database",
            e,
        ),
    })?;
    Ok(copy)
}

/// ENOSPC, EDQUOT or EFBIG (Linux's numbers): a write that found no room.
fn out_of_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(28 | 122 | 27))
}

fn run_seed(
    tenant: &TenantName,
    scratch: &Path,
    path: &Path,
    seed: Seed<'_>,
    key: Option<&TenantKey>,
) -> Result<()> {
    let conn = Connection::open_with_flags(literal_path(scratch), EXISTING)
        .map_err(|e| open_error(tenant, scratch, e))?;
    crypt::apply(&conn, key).map_err(|e| open_error(tenant, scratch, e))?;
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
        .map_err(|(_, e)| Error::sqlite(Some(tenant), scratch, "closing the new database", e))
}
