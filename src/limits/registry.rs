//! [`Limits`]: this process's view of `.tenanted/limits`, the one record of
//! every tenant's size-limit override and suspension in a root.
//!
//! Why one record in `.tenanted/` and not something in each database: a
//! limit and a suspension are the operator's decisions about a tenant, not
//! the tenant's data. Kept outside the database they can be set on a
//! tenant at its limit or read-only (which could not write them), a
//! restore of old data does not undo a later suspension or plan change,
//! and a suspension cannot be lifted by whoever holds a connection. Every
//! process notices a change with one `stat` of the record per
//! `watch_interval` (and one read when it changed), however many tenants
//! the root holds. The record is rewritten whole (by rename, under its
//! lock), so its size grows with the tenants that have an override or a
//! suspension, never with the fleet.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::policy::{Policy, TenantLimits};
use super::record::{self, Entries, Entry, Override};
use crate::error::{Error, Result};
use crate::fs::{self, Patience};
use crate::name::TenantName;
use crate::paths::INTERNAL_DIR;

/// The record's name in `.tenanted/`.
const RECORD: &str = "limits";

/// What a `stat` of the record says: a rewrite by rename changes the inode
/// and the change time (an inode number alone may be reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// No record (no real file has inode 0).
    const MISSING: Stamp = Stamp {
        dev: 0,
        ino: 0,
        size: 0,
        mtime: (0, 0),
        ctime: (0, 0),
    };
}

struct View {
    /// The record's stamp when `entries` was read (`None`: read again at
    /// the next refresh).
    stamp: Option<Stamp>,
    entries: Arc<Entries>,
    /// How many views were installed before this one (see
    /// [`Limits::generation`]).
    generation: u64,
}

/// This process's copy of the root's limits record, and the manager's
/// default size limit.
pub(crate) struct Limits {
    path: PathBuf,
    default_max_size: Option<u64>,
    view: RwLock<View>,
    /// Held by a change from under the record's lock until its copy is
    /// installed, and by a refresh from its read until its install: each
    /// copy is installed in the order it was read.
    turn: Mutex<()>,
}

impl Limits {
    /// Reads the record of `root` (none yet: no overrides).
    ///
    /// # Errors
    ///
    /// [`Error::BadLimitsRecord`] for a record that cannot be read as one;
    /// an I/O error reading it.
    pub(crate) fn load(root: &Path, default_max_size: Option<u64>) -> Result<Self> {
        let path = root.join(INTERNAL_DIR).join(RECORD);
        let limits = Limits {
            path,
            default_max_size,
            view: RwLock::new(View {
                stamp: None,
                entries: Arc::default(),
                generation: 0,
            }),
            turn: Mutex::new(()),
        };
        let stamp = limits.stamp();
        let entries = limits.read()?;
        limits.install(stamp, entries);
        Ok(limits)
    }

    /// What `name`'s pools apply now (no I/O: this process's copy).
    pub(crate) fn policy(&self, name: &str) -> Policy {
        let view = self.view.read();
        self.policy_of(view.entries.get(name))
    }

    fn policy_of(&self, entry: Option<&Entry>) -> Policy {
        let Some(entry) = entry else {
            return Policy {
                max_size: self.default_max_size,
                suspension: None,
            };
        };
        let max_size = match entry.max_size {
            Override::Default => self.default_max_size,
            Override::Unlimited => None,
            Override::Bytes(bytes) => Some(bytes),
        };
        Policy {
            max_size,
            suspension: entry.suspension.clone(),
        }
    }

    /// `name`'s limits as the public API reports them.
    pub(crate) fn limits_of(&self, name: &str) -> TenantLimits {
        let view = self.view.read();
        let entry = view.entries.get(name);
        let policy = self.policy_of(entry);
        TenantLimits {
            max_size: policy.max_size,
            overridden: entry.is_some_and(|e| e.max_size != Override::Default),
            suspension: policy.suspension,
        }
    }

    /// The names of every tenant in the record.
    pub(crate) fn names(&self) -> Vec<TenantName> {
        self.view.read().entries.keys().cloned().collect()
    }

    /// A number that changes whenever this process's copy does (read
    /// again, or changed here): the watcher looks at its pools' limits
    /// only then, not on every pass (at 4,000 idle pools that look was
    /// most of an idle process's CPU, an outside probe).
    pub(crate) fn generation(&self) -> u64 {
        self.view.read().generation
    }

    fn install(&self, stamp: Option<Stamp>, entries: Entries) {
        let mut view = self.view.write();
        let generation = view.generation.wrapping_add(1);
        *view = View {
            stamp,
            entries: Arc::new(entries),
            generation,
        };
    }

    /// Reads the record again if it changed since it was last read (one
    /// `stat` otherwise). A record that cannot be read keeps the last good
    /// copy, logged.
    pub(crate) fn refresh(&self) {
        if self.read_as_of(self.stamp()) {
            return;
        }
        // In turn with this process's changes (see `change`).
        let _turn = self.turn.lock();
        let stamp = self.stamp();
        if self.read_as_of(stamp) {
            return;
        }
        match self.read() {
            Ok(entries) => self.install(stamp, entries),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the limits record; keeping the last one read")
            }
        }
    }

    /// Whether this process's copy is the record as of `stamp`.
    fn read_as_of(&self, stamp: Option<Stamp>) -> bool {
        let view = self.view.read();
        view.stamp.is_some() && view.stamp == stamp
    }

    /// Changes `tenant`'s entry with `change`, in the record (under its
    /// lock, so that no other process's change is lost) and in this
    /// process's copy, waiting for the record's lock as long as
    /// `patience` allows (the tenant's operation's own).
    ///
    /// This process's copy is replaced in turn with
    /// [`refresh`](Self::refresh) and the other changes: a mutex (`turn`)
    /// is taken under the record's lock and held until the copy is
    /// installed, just after the record's lock is let go, so a copy read
    /// (or changed) before this change is never installed after it, which
    /// would undo it here until the next refresh (two suspensions at once
    /// in two threads left one undone: a review). The installed copy has
    /// no stamp: the next refresh reads the record again.
    ///
    /// # Errors
    ///
    /// [`Error::BadLimitsRecord`], or an I/O error writing the record (a
    /// read-only root included), naming the tenant; a wait for the
    /// record's lock that ran out is [`Error::TenantBusy`].
    pub(crate) fn change(
        &self,
        tenant: &TenantName,
        patience: &Patience,
        change: impl FnOnce(&mut Entry),
    ) -> Result<()> {
        let (mut turn, mut installed) = (None, None);
        let doing = "locking the tenants' limits record";
        let changed = fs::rewrite_record((&self.path, doing), patience, |text| {
            // Taken under the record's lock (never while waiting for it),
            // held until this copy is installed.
            turn = Some(self.turn.lock());
            let mut entries = self.parse(text)?;
            let mut entry = entries.remove(tenant.as_str()).unwrap_or_default();
            change(&mut entry);
            if !entry.is_empty() {
                entries.insert(tenant.clone(), entry);
            }
            let text = record::format(&entries);
            installed = Some(entries);
            Ok(Some(text))
        });
        if let (Ok(()), Some(entries)) = (&changed, installed) {
            // Read again at the next refresh (no stamp): another process
            // may write right after this one.
            self.install(None, entries);
        }
        drop(turn);
        changed.map_err(|e| e.naming(tenant))
    }

    /// Drops `tenant`'s entry (it was destroyed, or a new tenant takes
    /// the name); nothing is written when it has none. Part of that
    /// operation: its lock waited for within the operation's `patience`
    /// (a process stopped holding it held a destroy 30 s, past its
    /// timeout: an outside probe).
    ///
    /// # Errors
    ///
    /// As [`change`](Self::change); an I/O error naming the record's lock
    /// when `patience` ran out.
    pub(crate) fn forget(&self, tenant: &TenantName, patience: &Patience) -> Result<()> {
        self.refresh();
        if !self.view.read().entries.contains_key(tenant.as_str()) {
            return Ok(());
        }
        // Said as the tenant's operation held up (`TenantBusy`).
        self.change(tenant, patience, |entry| *entry = Entry::default())
    }

    /// The record's stamp now: [`Stamp::MISSING`] when there is none yet
    /// (most roots: then a refresh reads nothing, and installs nothing
    /// new, until one is made); `None` when it cannot be looked at (read
    /// again next time).
    fn stamp(&self) -> Option<Stamp> {
        let meta = match fs::sys::symlink_metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(Stamp::MISSING),
            Err(_) => return None,
        };
        Some(Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        })
    }

    fn read(&self) -> Result<Entries> {
        let text = fs::read_record(&self.path).map_err(|e| self.not_text(e))?;
        self.parse(text.as_deref())
    }

    /// A record that is not text is damaged, as one with a junk line is
    /// (an outside probe: it was a bare "stream did not contain valid
    /// UTF-8", with no word of what to do).
    fn not_text(&self, e: Error) -> Error {
        match fs::record::not_text_line(&e) {
            Some(line) => Error::BadLimitsRecord {
                path: self.path.clone(),
                line,
                reason: "it is not UTF-8 text".to_owned(),
            },
            None => e,
        }
    }

    /// The record's entries: none when there is no record (`None`).
    fn parse(&self, text: Option<&str>) -> Result<Entries> {
        let Some(text) = text else {
            return Ok(Entries::new());
        };
        record::parse(text).map_err(|(line, reason)| Error::BadLimitsRecord {
            path: self.path.clone(),
            line,
            reason,
        })
    }
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("path", &self.path)
            .field("default_max_size", &self.default_max_size)
            .finish_non_exhaustive()
    }
}
