//! Building a new tenant database out of reach, then publishing it in one
//! step that never replaces anything. Create, the batch create and restore
//! all publish this way.
//!
//! - When the tenant owns a directory (the default layout) that does not
//!   exist yet, or that a restore is about to replace, the database is
//!   built in a new hidden directory beside the tenant's
//!   (`bucket/.acme.creating/`), under a scratch name. Publishing names it
//!   and then renames the directory to the tenant's with
//!   `RENAME_NOREPLACE`: the tenant's directory appears with a complete,
//!   synced database in it, or not at all, so a listing can trust it.
//! - Otherwise (a layout without tenant directories, or a tenant
//!   directory left without its database, by hand or by moving it away)
//!   the database is built under a scratch name beside its path and
//!   published with `link`, which never replaces a file.
//!
//! The database keeps its scratch name until the last moment because
//! Litestream's directory watcher picks up any file matching its pattern
//! (`main.sqlite3`), even in hidden directories: named just before the
//! directory's rename, it is never seen half built.
//!
//! Why one sync of the directory, after both renames, is enough: journaling
//! file systems commit metadata changes in order, so the directory's rename
//! never reaches the disk before the rename inside it. Syncing the new
//! directory then its parent makes both durable.
//!
//! A stage dropped before it is published removes what it built.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fs::dir::Dir;
use crate::fs::files::{
    cannot_promise, remove_quietly, remove_tree_quietly, remove_with_sidecars, rename_no_replace,
};
use crate::fs::siblings::{name_of, scratch_path, sidecar_path, staging_path};
use crate::fs::sys;
use crate::name::TenantName;
use crate::storage::coordination::tenant_path::{TenantLock, TenantPath};

/// A new database being built, published on [`Stage::publish`].
#[derive(Debug)]
pub(in crate::storage) struct Stage {
    /// The directory the database is built in.
    dir: Dir,
    /// Its name there until it is published.
    scratch: PathBuf,
    how: How,
    published: bool,
    /// Whether the database has its own name in a staged directory.
    named: bool,
    /// Whether SQLite opened the scratch file (it may leave sidecars).
    opened: bool,
}

/// What [`Stage::publish_swapping`] did.
#[derive(Debug)]
pub(in crate::storage) enum Swap {
    /// The directories were swapped: the old one is at `old` in the
    /// tenant's parent; `durable` says whether the swap was synced.
    Swapped {
        /// The old directory's name now.
        old: PathBuf,
        /// Whether the swap is durable.
        durable: Result<()>,
    },
    /// Nothing was swapped (a stage published by link, or a file system
    /// that cannot swap): the stage, to publish another way.
    Unsupported(Stage),
}

/// How a stage is published.
#[derive(Debug)]
enum How {
    /// `link` beside the database's path.
    Link,
    /// Renamed into place with the tenant's new directory.
    Rename {
        /// The directory the tenant's directory goes in.
        parent: Dir,
        /// The hidden directory built.
        staged: PathBuf,
        /// The tenant directory's name.
        entry: PathBuf,
    },
}

impl Stage {
    /// Starts building `tenant`'s database; the caller holds `lock` and
    /// has cleared the way. `replacing`: a restore will destroy the
    /// tenant first, so a tenant directory is built anew.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the directory that could not be made or opened.
    pub(in crate::storage) fn begin(
        tenant: &TenantName,
        lock: &TenantLock,
        at: TenantPath<'_>,
        replacing: bool,
    ) -> Result<Stage> {
        let scratch = scratch_path(at.db_name());
        let fail = |path: &Path, operation, e| Error::io(Some(tenant), path, operation, e);
        let existing = lock.db_dir(at).filter(|_| !(replacing && at.owns_dir()));
        if let Some(dir) = existing {
            let dir = dir
                .duplicate()
                .map_err(|e| fail(dir.path(), "opening the tenant's directory", e))?;
            return Ok(Stage::new(dir, scratch, How::Link));
        }
        let parent = lock.parent();
        let parent = parent
            .duplicate()
            .map_err(|e| fail(parent.path(), "opening the tenant's parent directory", e))?;
        let staged = staging_path(at.entry_name());
        let making = "making the new tenant's directory";
        sys::make_dir(parent.fd(), &staged).map_err(|e| fail(&parent.join(&staged), making, e))?;
        let dir = match parent.child(&staged) {
            Ok(dir) => dir,
            Err(e) => {
                remove_tree_quietly(&parent, &staged);
                return Err(fail(&parent.join(&staged), making, e));
            }
        };
        let entry = at.entry_name().to_path_buf();
        let how = How::Rename {
            parent,
            staged,
            entry,
        };
        Ok(Stage::new(dir, scratch, how))
    }

    fn new(dir: Dir, scratch: PathBuf, how: How) -> Stage {
        Stage {
            dir,
            scratch,
            how,
            published: false,
            named: false,
            opened: false,
        }
    }

    /// The directory the database is built in.
    pub(in crate::storage) fn dir(&self) -> &Dir {
        &self.dir
    }

    /// The database's name in [`dir`](Self::dir) while it is built.
    pub(in crate::storage) fn scratch(&self) -> &Path {
        &self.scratch
    }

    /// The scratch file's path, for SQLite (which opens by path).
    pub(in crate::storage) fn scratch_path(&self) -> PathBuf {
        self.dir.join(&self.scratch)
    }

    /// Notes that SQLite opened the scratch file: its sidecars go too.
    pub(in crate::storage) fn opened_by_sqlite(&mut self) {
        self.opened = true;
    }

    /// Publishes the built (and synced) database and makes it durable.
    ///
    /// # Errors
    ///
    /// [`Error::TenantExists`] if something took the tenant's place
    /// meanwhile (only something outside tenanted can, such as a
    /// directory made by hand: tenanted builds it under the entry lock);
    /// [`Error::Io`] naming the step that failed.
    pub(in crate::storage) fn publish(
        mut self,
        tenant: &TenantName,
        at: TenantPath<'_>,
    ) -> Result<()> {
        self.publish_unsynced(tenant, at)?;
        self.sync_dir(tenant, at)?;
        match self.parent_to_sync() {
            Some(parent) => parent.sync().map_err(|e| {
                Error::io(Some(tenant), at.entry(), "making the new tenant durable", e)
            }),
            None => Ok(()),
        }
    }

    /// Publishes the built database; [`sync_dir`](Self::sync_dir) and a
    /// sync of [`parent_to_sync`](Self::parent_to_sync) make it durable.
    pub(in crate::storage) fn publish_unsynced(
        &mut self,
        tenant: &TenantName,
        at: TenantPath<'_>,
    ) -> Result<()> {
        self.name_database(tenant, at)?;
        match &self.how {
            How::Link => link(tenant, (&self.dir, &self.scratch), &self.dir, at.db())?,
            How::Rename {
                parent,
                staged,
                entry,
            } => {
                rename_no_replace(parent, staged, entry).map_err(|e| match e.kind() {
                    io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty => {
                        Error::TenantExists {
                            tenant: tenant.clone(),
                            path: at.db().to_path_buf(),
                        }
                    }
                    _ => Error::io(Some(tenant), at.entry(), "publishing the new tenant", e),
                })?;
            }
        }
        self.published = true;
        Ok(())
    }

    /// Publishes a staged directory in place of the tenant's existing one,
    /// swapping the two in one step (`RENAME_EXCHANGE`); the old one is
    /// then under the staged name, for the caller to remove. A restore that
    /// replaces a tenant publishes this way, so that a failure before the
    /// swap leaves the old tenant in place.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] for a failure before the swap (nothing changed).
    pub(in crate::storage) fn publish_swapping(
        mut self,
        tenant: &TenantName,
        at: TenantPath<'_>,
    ) -> Result<Swap> {
        if matches!(self.how, How::Link) {
            return Ok(Swap::Unsupported(self));
        }
        self.name_database(tenant, at)?;
        let How::Rename {
            parent,
            staged,
            entry,
        } = &self.how
        else {
            return Ok(Swap::Unsupported(self));
        };
        match sys::rename_exchange(parent.fd(), staged, entry) {
            Err(e) if cannot_promise(&e) => {
                return Ok(Swap::Unsupported(self));
            }
            Err(e) => {
                let operation = "publishing the restored tenant";
                return Err(Error::io(Some(tenant), at.entry(), operation, e));
            }
            Ok(()) => {}
        }
        self.published = true;
        let durable = self.sync_dir(tenant, at).and_then(|()| {
            let making = "making the restored tenant durable";
            parent
                .sync()
                .map_err(|e| Error::io(Some(tenant), at.entry(), making, e))
        });
        Ok(Swap::Swapped {
            old: staged.clone(),
            durable,
        })
    }

    /// For a stage that cannot swap ([`Swap::Unsupported`]: a tenant
    /// without a directory of its own, or a file system that cannot swap
    /// directories): links the database into the directory `into` the
    /// tenant's database is in, under its own name (never over a file
    /// there), and syncs that directory. The scratch name, or the staged
    /// directory, goes when the stage is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::TenantExists`] if a database is in the way; [`Error::Io`]
    /// naming the step that failed.
    pub(in crate::storage) fn publish_into(
        mut self,
        tenant: &TenantName,
        at: TenantPath<'_>,
        into: &Dir,
    ) -> Result<()> {
        self.name_database(tenant, at)?;
        let from = if self.named {
            at.db_name()
        } else {
            &self.scratch
        };
        link(tenant, (&self.dir, from), into, at.db())?;
        into.sync().map_err(|e| {
            Error::io(
                Some(tenant),
                at.db(),
                "making the restored tenant durable",
                e,
            )
        })
    }

    /// Gives the database its own name: in a staged directory, as the last
    /// step before the directory is published (see the module
    /// documentation); beside its path, it keeps its scratch name until
    /// it is linked.
    fn name_database(&mut self, tenant: &TenantName, at: TenantPath<'_>) -> Result<()> {
        if self.opened {
            // Left by SQLite after the seed closed cleanly: stale.
            for suffix in ["-wal", "-shm", "-journal"] {
                remove_quietly(&self.dir, &sidecar_path(&self.scratch, suffix));
            }
        }
        if self.named || matches!(self.how, How::Link) {
            return Ok(());
        }
        let named = sys::rename(self.dir.fd(), &self.scratch, at.db_name());
        named.map_err(|e| {
            let path = self.dir.join(at.db_name());
            Error::io(Some(tenant), path, "naming the new database", e)
        })?;
        self.named = true;
        Ok(())
    }

    /// Syncs the directory the database is now in.
    pub(in crate::storage) fn sync_dir(
        &self,
        tenant: &TenantName,
        at: TenantPath<'_>,
    ) -> Result<()> {
        self.dir
            .sync()
            .map_err(|e| Error::io(Some(tenant), at.db(), "making the new database durable", e))
    }

    /// The directory that got the tenant's new directory, when the stage
    /// published one: it needs a sync too (a batch syncs each once).
    pub(in crate::storage) fn parent_to_sync(&self) -> Option<&Dir> {
        match &self.how {
            How::Link => None,
            How::Rename { parent, .. } => Some(parent),
        }
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        match (&self.how, self.published) {
            (How::Rename { parent, staged, .. }, false) => remove_tree_quietly(parent, staged),
            (How::Rename { .. }, true) => {}
            // Published or not, the scratch name goes (once linked, the
            // database keeps its own).
            (How::Link, _) if self.opened => remove_with_sidecars(&self.dir, &self.scratch),
            (How::Link, _) => remove_quietly(&self.dir, &self.scratch),
        }
    }
}

/// Links the synced `from` (a name in its directory) as `path`, which is
/// in `into`, never replacing a file there; the caller makes the link
/// durable by syncing `into`.
fn link(tenant: &TenantName, from: (&Dir, &Path), into: &Dir, path: &Path) -> Result<()> {
    match sys::link_between(from.0.fd(), from.1, into.fd(), name_of(path)) {
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
