//! Fencing a tenant off before its files go, so that no process — this one
//! or another — commits a write to a database that is then deleted.
//!
//! 1. [`Fence::raise`], for a tenant with a directory of its own, first
//!    creates the marker `bucket/.acme.destroying`: from then on
//!    `tenants()` does not show the tenant (a fleet run's walk does while
//!    the destroy runs, and its read waits for the destroy; a restore's
//!    marker, `.acme.restoring`, leaves it listed: see
//!    `coordination/undecided.rs`). Then it renames the database to a
//!    fixed hidden name in its own directory: no open by path reaches
//!    it, serving processes notice the path is gone within their watch
//!    interval and let go, and Litestream drops it (its watch on the
//!    directory reports the rename, and the fence name matches no
//!    Litestream pattern).
//! 2. [`Fence::wait_released`] passes the directory's open gate (opens that
//!    raced the rename finish first), then polls until no other
//!    `TenantManager` of this process has the file open (its watcher lets
//!    go as another process's does; POSIX locks cannot tell them apart)
//!    and SQLite's own locks say no other process holds it, up to a
//!    deadline.
//! 3. [`Fence::demolish`] removes the sidecars and the fenced file for
//!    good, then the rest of the tenant's directory, then the marker.
//!
//! A fence dropped before `demolish` (the wait timed out, or anything
//! failed) renames the database back, then removes the marker: the tenant
//! is left intact, and listed again.
//!
//! A restore replacing a tenant that has no directory of its own (a flat
//! layout) marks it too (`bucket/.acme.sqlite3.restoring`), and once
//! nobody holds the fenced file sets its `-wal` aside under the fence's
//! name ([`Fence::set_sidecars_aside`]), so that the copy published under
//! the tenant's name never replays it; a crash before the copy is in
//! place puts the old tenant back whole (see `debris.rs`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::busy::{Busy, WaitedFor, busy};
use crate::error::{Error, OtherProcess, Result};
use crate::fs::dir::Dir;
use crate::fs::file_id::FileId;
use crate::fs::files::{
    remove_quietly, remove_sidecars, remove_tree, remove_tree_quietly, remove_with_sidecars,
    rename_no_replace,
};
use crate::fs::siblings::{
    SQLITE_SIDECARS, fence_path, litestream_dir, restore_mark_path, sidecar_path,
};
use crate::fs::{Patience, sys};
use crate::name::TenantName;
use crate::storage::coordination::changes::announce;
use crate::storage::coordination::holders::{Holder, other_holder};
use crate::storage::coordination::open_gate::barrier;
use crate::storage::coordination::tenant_path::{TenantLock, TenantPath};
use crate::storage::opening::database_file::{Occupant, occupant_in};
use crate::storage::opening::open_files;

/// A process that holds tenants open on purpose and lets go of one when
/// told (Litestream, told through its control socket): told once the
/// tenant is fenced off, before the wait for other processes, which it
/// would otherwise outlast.
pub(crate) trait LetGo {
    /// Tells it to let go of the database at `db` (its path before the
    /// fence), giving it until `deadline` (the operation's own); errors
    /// are its own to log, the wait that follows is the judge.
    fn let_go(&self, db: &Path, deadline: Instant);
}

/// Nobody to tell.
pub(crate) struct Nobody;

impl LetGo for Nobody {
    fn let_go(&self, _db: &Path, _deadline: Instant) {}
}

/// How long a fence waits for other processes, and whom it tells first.
#[derive(Clone, Copy)]
pub(crate) struct Waiting<'a> {
    /// How long to wait, from the operation's call (`TenantBusy` then).
    pub(crate) patience: Patience,
    /// Told to let go before the wait.
    pub(crate) let_go: &'a dyn LetGo,
}

impl std::fmt::Debug for Waiting<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("deadline", &self.patience.deadline())
            .finish_non_exhaustive()
    }
}

/// A tenant moved out of reach; put back on drop unless demolished.
#[derive(Debug)]
pub(in crate::storage) struct Fence<'a> {
    tenant: &'a TenantName,
    at: TenantPath<'a>,
    /// The directory the tenant's entry is in.
    parent: &'a Dir,
    /// The database's directory.
    dir: &'a Dir,
    /// The marker beside a tenant's own directory, in `parent`.
    marker: Option<PathBuf>,
    /// The fence name of the database, in `dir`.
    fenced: PathBuf,
    standing: bool,
    /// Whether the database was renamed to the fence name: only then is
    /// it renamed back.
    moved: bool,
    /// Whether [`set_sidecars_aside`](Self::set_sidecars_aside) ran: only
    /// then do sidecars go back with the database.
    sidecars_aside: bool,
}

impl<'a> Fence<'a> {
    /// Moves `tenant` out of reach. The caller holds the tenant's locks,
    /// and has removed a marker a crashed destroy left (see `debris.rs`).
    ///
    /// # Errors
    ///
    /// [`Error::TenantDoesNotExist`] if there is no database.
    pub(in crate::storage) fn raise(
        tenant: &'a TenantName,
        lock: &'a TenantLock,
        at: TenantPath<'a>,
    ) -> Result<Self> {
        let marker = at.owns_dir().then(|| fence_path(at.entry_name()));
        Self::raise_marked(tenant, lock, at, marker)
    }

    /// As [`raise`](Self::raise), for a restore that replaces the tenant:
    /// its mark, made in every layout, says that a crash before the new
    /// copy is in place puts the old tenant back (see `debris.rs`).
    pub(in crate::storage) fn raise_for_restore(
        tenant: &'a TenantName,
        lock: &'a TenantLock,
        at: TenantPath<'a>,
    ) -> Result<Self> {
        let marker = Some(restore_mark_path(at.entry_name()));
        Self::raise_marked(tenant, lock, at, marker)
    }

    fn raise_marked(
        tenant: &'a TenantName,
        lock: &'a TenantLock,
        at: TenantPath<'a>,
        marker: Option<PathBuf>,
    ) -> Result<Self> {
        let missing = || Error::TenantDoesNotExist {
            tenant: tenant.clone(),
            path: at.db().to_path_buf(),
        };
        let dir = lock.db_dir(at).ok_or_else(missing)?;
        let name = at.db_name();
        // Only a database file is ever moved: a directory or a symlink at
        // the path is no tenant (and renaming it would leave it behind as
        // a fence nothing removes). The locks keep tenanted's own files
        // from changing between this look and the rename.
        let found = occupant_in(dir, name)
            .map_err(|e| Error::io(Some(tenant), at.db(), "looking at the database file", e))?;
        if !matches!(found, Occupant::Database(_)) {
            return Err(missing());
        }
        let fenced = fence_path(name);
        // Sidecars under the fence's name are a dead fence's leftovers:
        // gone before this one stands, so that any found beside it later
        // were set aside by it (see `unfence`).
        clear_dead_sidecars(dir, &fenced).map_err(|(stale, e)| {
            Error::io(Some(tenant), dir.join(&stale), "fencing the tenant off", e)
        })?;
        let mut fence = Fence {
            tenant,
            at,
            parent: lock.parent(),
            dir,
            marker: None,
            fenced,
            standing: false,
            moved: false,
            sidecars_aside: false,
        };
        if let Some(marker) = marker {
            let made = sys::create_new(fence.parent.fd(), &marker);
            made.map_err(|e| {
                fence.io_error("fencing the tenant off", &fence.parent.join(&marker), e)
            })?;
            fence.marker = Some(marker);
        }
        // From here a drop puts back what changed.
        fence.standing = true;
        let fenced = sys::rename(dir.fd(), name, &fence.fenced);
        fenced.map_err(|e| fence.io_error("fencing the tenant off", at.db(), e))?;
        fence.moved = true;
        let synced = dir.sync().and_then(|()| fence.parent.sync());
        synced.map_err(|e| fence.io_error("fencing the tenant off", fence.parent.path(), e))?;
        // Other processes' watchers retire their pools of it now, so that
        // the wait for them to let go is short.
        announce(at.root(), tenant);
        Ok(fence)
    }

    /// Waits until nobody else holds the fenced database open, or
    /// `patience` runs out: no other process, and no pool of this one
    /// (the caller's own manager closed its pools of it already: one left
    /// is another `TenantManager`'s on the same root; a one-off read of
    /// this process is not waited for, see `open_files`).
    ///
    /// # Errors
    ///
    /// [`Error::TenantBusy`] naming the process still opening or holding
    /// it when the deadline passes; I/O errors reading the locks.
    pub(in crate::storage) fn wait_released(&self, waiting: Waiting<'_>) -> Result<()> {
        let patience = &waiting.patience;
        waiting.let_go.let_go(self.at.db(), patience.deadline());
        barrier(self.dir, patience).map_err(|e| match busy(&e) {
            Some(wait) => Error::busy(self.tenant, self.at.db(), wait),
            None => self.io_error("waiting for opens in progress", self.dir.path(), e),
        })?;
        let fenced = self.dir.join(&self.fenced);
        let file = sys::stat(self.dir.fd(), &self.fenced)
            .map_err(|e| self.io_error("looking at the fenced database", &fenced, e))?;
        let file = FileId::from_stat(&file);
        let shm = sidecar_path(self.at.db_name(), "-shm");
        let mut last = None;
        // The file whose locks could not be read: the error names it.
        let mut unreadable = fenced.clone();
        let released = patience.retry(|| {
            // Checked first: the probe below closes a descriptor of the
            // file, which would drop every lock this process holds on it.
            if open_files::is_armed_on(file) {
                last = Some(Holder {
                    pid: Some(std::process::id()),
                });
                return Ok(None);
            }
            last = other_holder(self.dir, &self.fenced, &shm).map_err(|e| {
                unreadable = self.dir.join(&e.name);
                e.error
            })?;
            Ok(last.is_none().then_some(()))
        });
        let released =
            released.map_err(|e| self.io_error("reading the database's locks", &unreadable, e))?;
        match (released, last) {
            (Some(()), _) | (None, None) => Ok(()),
            (None, Some(Holder { pid })) => Err(Error::busy(
                self.tenant,
                self.at.db(),
                Busy {
                    waited_for: WaitedFor::OpenConnection,
                    other_process: Some(OtherProcess { pid }),
                    waited: patience.waited(),
                },
            )),
        }
    }

    /// Removes the fenced database and its sidecars, then the rest of a
    /// tenant's own directory, then the marker. Nobody holds them.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the fenced database cannot be removed: the
    /// tenant stays out of reach, and the next create or `remove_debris`
    /// removes it.
    pub(in crate::storage) fn demolish(mut self) -> Result<()> {
        self.standing = false;
        let name = self.at.db_name();
        // The WAL first (see `remove_with_sidecars`); the sidecars still
        // carry the tenant's own name. One that cannot be removed fails
        // the destroy with the database still fenced (`remove_debris`
        // finishes it): a WAL of commits left without its database
        // would outlive the tenant.
        if let Err((path, e)) = remove_sidecars(self.dir, name) {
            return Err(self.io_error(
                "removing the destroyed tenant's WAL and shared memory",
                &path,
                e,
            ));
        }
        if let Err(e) = sys::unlink(self.dir.fd(), &self.fenced)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            let fenced = self.dir.join(&self.fenced);
            return Err(self.io_error("removing the destroyed tenant's database", &fenced, e));
        }
        match self.marker.as_ref().filter(|_| self.at.owns_dir()) {
            // The rest of the directory (Litestream's state, anything),
            // then the marker, unless something was left: then the marker
            // keeps it out of listings until `remove_debris`.
            Some(marker) => {
                remove_tree_quietly(self.parent, self.at.entry_name());
                if !present(self.parent, self.at.entry_name()) {
                    remove_quietly(self.parent, marker);
                }
            }
            // Litestream's state for this database: it dropped the
            // database when the file went away (it held it open until
            // then, so the wait above covered it).
            None => remove_tree_quietly(self.dir, &litestream_dir(name)),
        }
        if let Err(e) = self.parent.sync() {
            tracing::warn!(dir = %self.parent.path().display(), error = %e, "could not sync the directory of a destroyed tenant");
        }
        Ok(())
    }

    /// The tenant's old directory was swapped out for a restored one, and
    /// is at `old` in the parent (see `restore.rs`): removes it and the
    /// marker. Whether the old directory is gone (a leftover is removed by
    /// the next operation on the tenant, or `remove_debris`).
    pub(in crate::storage) fn swapped_out(mut self, old: &Path) -> bool {
        self.standing = false;
        remove_tree_quietly(self.parent, old);
        let gone = !present(self.parent, old);
        if let Some(marker) = &self.marker {
            remove_quietly(self.parent, marker);
        }
        if let Err(e) = self.parent.sync() {
            tracing::warn!(dir = %self.parent.path().display(), error = %e, "could not sync the directory of a restored tenant");
        }
        gone
    }

    /// For a restore replacing a tenant in place (no directory of its
    /// own), once nobody holds the fenced database: its `-wal` and
    /// `-journal` are renamed to the fence's (they belong to the old
    /// database, and a copy published under the tenant's name would
    /// replay them), its `-shm` and Litestream's state for it removed.
    /// A put-back renames them back.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when one cannot be moved; the fence, dropped, puts
    /// the tenant back.
    pub(in crate::storage) fn set_sidecars_aside(&mut self) -> Result<()> {
        self.sidecars_aside = true;
        let name = self.at.db_name();
        for suffix in SET_ASIDE {
            let (own, aside) = (
                sidecar_path(name, suffix),
                sidecar_path(&self.fenced, suffix),
            );
            match sys::rename(self.dir.fd(), &own, &aside) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => other.map_err(|e| {
                    self.io_error(
                        "setting the replaced database's sidecars aside",
                        &self.dir.join(&own),
                        e,
                    )
                })?,
            }
        }
        remove_quietly(self.dir, &sidecar_path(name, "-shm"));
        remove_tree_quietly(self.dir, &litestream_dir(name));
        self.dir.sync().map_err(|e| {
            self.io_error(
                "setting the replaced database's sidecars aside",
                self.dir.path(),
                e,
            )
        })
    }

    /// The copy replacing the tenant in place is published: the old
    /// database (fenced, with its sidecars set aside) and the mark go. What
    /// cannot be removed is logged; `remove_debris` removes it later.
    pub(in crate::storage) fn replaced(mut self) {
        self.standing = false;
        remove_with_sidecars(self.dir, &self.fenced);
        if let Some(marker) = &self.marker {
            remove_quietly(self.parent, marker);
        }
        if let Err(e) = self.parent.sync() {
            tracing::warn!(dir = %self.parent.path().display(), error = %e, "could not sync the directory of a restored tenant");
        }
    }

    /// Puts the tenant back, the destroy abandoned.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the fenced file, which holds the tenant's
    /// intact database, and how to put it back by hand.
    pub(in crate::storage) fn put_back(mut self) -> Result<()> {
        self.standing = false;
        self.move_back().map_err(|e| {
            let operation = "putting the tenant back after its destroy stopped (its database is intact at this path: rename it to the tenant's database file, and remove the tenant's .destroying marker beside its directory, before running remove_debris, create_tenant or destroy_tenant, which would finish the destroy)";
            self.io_error(operation, &self.dir.join(&self.fenced), e)
        })
    }

    /// `raise` undone: the database back, then the marker gone (so that
    /// no listing shows the tenant without its database).
    fn move_back(&self) -> std::io::Result<()> {
        if self.moved {
            unfence(self.dir, self.at.db_name(), self.sidecars_aside)?;
        }
        if let Err(e) = self.dir.sync() {
            tracing::warn!(dir = %self.dir.path().display(), error = %e, "a fenced tenant was put back, but its directory could not be synced");
        }
        if let Some(marker) = &self.marker {
            sys::unlink(self.parent.fd(), marker)?;
            if let Err(e) = self.parent.sync() {
                tracing::warn!(dir = %self.parent.path().display(), error = %e, "a fenced tenant was put back, but its marker's removal could not be synced");
            }
        }
        Ok(())
    }

    fn io_error(&self, operation: &'static str, path: &Path, e: std::io::Error) -> Error {
        Error::io(Some(self.tenant), path, operation, e)
    }
}

/// The sidecars a replace in place sets aside with the old database (the
/// `-shm` is SQLite's to rebuild from the `-wal`).
const SET_ASIDE: [&str; 2] = ["-wal", "-journal"];

/// Renames the fenced database `name` in `dir` back to its own name, and,
/// with `sidecars`, the sidecars set aside with it (a fence removes any
/// under its name before it stands, so those beside it are its own).
/// Nothing moves while a database is at `name` (`AlreadyExists`: a copy
/// replacing it is in place), and a sidecar never replaces one there. A
/// fenced file that is not there was never moved (a fence that failed
/// half way up), or was put back already.
///
/// # Errors
///
/// The renames' errors.
pub(in crate::storage) fn unfence(dir: &Dir, name: &Path, sidecars: bool) -> std::io::Result<()> {
    let fenced = fence_path(name);
    let not_found = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    match sys::stat(dir.fd(), &fenced) {
        Err(e) if not_found(&e) => return Ok(()),
        other => drop(other?),
    }
    // The caller holds the tenant's lock: nothing else puts a database at
    // `name` between this look and the renames.
    match sys::stat(dir.fd(), name) {
        Ok(_) => return Err(std::io::ErrorKind::AlreadyExists.into()),
        Err(e) if not_found(&e) => {}
        Err(e) => return Err(e),
    }
    // The sidecars first: a database back without its -wal would open
    // without the commits in it.
    for suffix in SET_ASIDE.iter().filter(|_| sidecars) {
        let (aside, own) = (sidecar_path(&fenced, suffix), sidecar_path(name, suffix));
        match rename_no_replace(dir, &aside, &own) {
            Err(e) if not_found(&e) => {}
            // Not set aside by the fence: the sweep removes it.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                tracing::warn!(file = %dir.join(&aside).display(), "a sidecar set aside with a fenced database was not put back: one is in its place");
            }
            other => other?,
        }
    }
    rename_no_replace(dir, &fenced, name)
}

/// Removes the sidecars (`-wal`, `-shm`, `-journal`) under the fence name
/// `fenced` in `dir`: what a dead fence left, a directory planted there
/// included. The error names the one that stays.
fn clear_dead_sidecars(
    dir: &Dir,
    fenced: &Path,
) -> std::result::Result<(), (PathBuf, std::io::Error)> {
    for suffix in SQLITE_SIDECARS {
        let stale = sidecar_path(fenced, suffix);
        let removed = match sys::unlink(dir.fd(), &stale) {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::ISDIR.raw_os_error()) => {
                remove_tree(dir, &stale)
            }
            other => other,
        };
        match removed {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err((stale, e)),
            _ => {}
        }
    }
    Ok(())
}

/// Whether `name` is in `dir` (an error looking counts as there).
fn present(dir: &Dir, name: &Path) -> bool {
    !matches!(sys::stat(dir.fd(), name), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

impl Drop for Fence<'_> {
    fn drop(&mut self) {
        if !self.standing {
            return;
        }
        // We hold the tenant's locks: nothing of this release can have
        // taken the tenant's place meanwhile.
        if let Err(e) = self.move_back() {
            tracing::error!(
                tenant = %self.tenant,
                fenced = %self.dir.join(&self.fenced).display(),
                error = %e,
                "could not put a fenced tenant back; move it back by hand to restore it"
            );
        }
    }
}
