//! `.tenanted/migrations`: for every migration applied in the root, its
//! version, a checksum of what was applied (its `up.sql`) and its name (as
//! sqlx and refinery checksum what was applied), so that a program whose
//! migration N was edited, renamed or reordered after it ran fails clearly
//! instead of calling a tenant "current" against other SQL.
//!
//! A `down.sql` is not part of what was applied: it is what a rollback
//! will run, and a rollback runs the down script of the program doing it.
//! Editing one (a fix, a comment) changes nothing recorded.
//!
//! A program checks its migrations against the history and appends the
//! ones it brings; a program with fewer migrations (an old version during
//! a deploy) passes as long as its own agree. `accept_migration_changes`
//! rewrites the history to the program's migrations, for a deliberate
//! change. The entries of a program's migrations are made by `migrate`
//! (`Migrations::history`).

use std::path::{Path, PathBuf};

use super::internal_dir::INTERNAL_DIR;
use crate::error::{Error, Result};
use crate::fs::{Patience, read_record, update_record};

/// The history's file name in `.tenanted/`.
const HISTORY: &str = "migrations";

/// Where the history of the root (or backup directory) `root` is.
pub(super) fn history_path(root: &Path) -> PathBuf {
    root.join(INTERNAL_DIR).join(HISTORY)
}

/// One migration as the history holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HistoryEntry {
    pub(super) version: usize,
    pub(super) checksum: String,
    pub(super) name: String,
}

impl HistoryEntry {
    /// Migration `name`, the `version`th, whose applied SQL has
    /// `checksum`.
    pub(crate) fn new(version: usize, checksum: String, name: &str) -> Self {
        HistoryEntry {
            version,
            checksum,
            name: name.to_owned(),
        }
    }

    /// The entry a history line holds.
    pub(crate) fn parse(line: &str) -> Option<Self> {
        let mut fields = line.splitn(3, ' ');
        let version = fields.next()?.parse().ok()?;
        let checksum = fields.next()?.to_owned();
        let name = fields.next()?.to_owned();
        Some(HistoryEntry {
            version,
            checksum,
            name,
        })
    }

    /// The entry as a history line.
    pub(crate) fn line(&self) -> String {
        format!("{} {} {}\n", self.version, self.checksum, self.name)
    }
}

/// The entries of the history file at `path` (none for a missing file).
///
/// # Errors
///
/// [`Error::BadMigrations`] for a line that is not `VERSION CHECKSUM NAME`
/// of the next version: such a line was dropped (a junk line), or read at
/// the wrong version (a line written twice), and the history checked
/// against the program's said something untrue (an outside probe).
pub(super) fn parse(path: &Path, text: Option<&str>) -> Result<Vec<HistoryEntry>> {
    // A blank line (a hand edit) holds no entry, and is no damage.
    let lines = (text.unwrap_or("").lines())
        .filter(|line| !line.trim().is_empty())
        .enumerate();
    let entries = lines.map(|(i, line)| match HistoryEntry::parse(line) {
        Some(entry) if entry.version == i + 1 => Ok(entry),
        _ => Err(damaged(
            path,
            &format!(
                "its line {} ({line:?}) is not `VERSION CHECKSUM NAME` of migration {}",
                i + 1,
                i + 1
            ),
        )),
    });
    entries.collect()
}

/// [`Error::BadMigrations`] for the damaged history at `path`.
pub(super) fn damaged(path: &Path, why: &str) -> Error {
    Error::BadMigrations {
        path: path.to_path_buf(),
        reason: format!(
            "the root's record of the migrations applied in it is damaged: {why}; nothing was changed. Restore the file from a backup of the root, or remove it (the next write records the running program's migrations, unchecked)"
        ),
    }
}

/// The history record at `path`: a record that is not text is damaged.
pub(super) fn read_history(path: &Path) -> Result<Option<String>> {
    read_record(path).map_err(|e| match e {
        Error::Io { ref cause, .. } if cause.kind() == std::io::ErrorKind::InvalidData => {
            damaged(path, &cause.to_string())
        }
        e => e,
    })
}

/// The first version at which two histories both have an entry and
/// disagree: (the first's, the second's).
pub(super) fn first_difference<'a>(
    a: &'a [HistoryEntry],
    b: &'a [HistoryEntry],
) -> Option<(&'a HistoryEntry, &'a HistoryEntry)> {
    a.iter().zip(b).find(|(x, y)| x != y)
}

/// Reads the root's history and checks `ours` against it where both have
/// entries (unless `accept` changes); returns what was recorded.
///
/// # Errors
///
/// [`Error::MigrationChanged`]; I/O errors reading the record.
pub(super) fn check_history(
    root: &Path,
    ours: &[HistoryEntry],
    accept: bool,
) -> Result<Option<String>> {
    let path = history_path(root);
    refuse_unrecordable(&path, ours)?;
    let recorded = read_history(&path)?;
    let entries = parse(&path, recorded.as_deref())?;
    match first_difference(&entries, ours) {
        Some((had, has)) if !accept => Err(changed(root, had, has)),
        Some(_) => refuse_moved(root, &entries, ours).map(|()| recorded),
        None => Ok(recorded),
    }
}

/// Refuses a migration whose name holds a line break: a newline in it
/// made two lines of its record's one (a planted entry, even), a carriage
/// return was dropped when read back, and either made every later start
/// on the root fail (an outside probe). Other characters (a tab) read
/// back as written and stay accepted (a review). Checked before the
/// record is read, so nothing is written.
///
/// # Errors
///
/// [`Error::BadMigrations`] naming the migration and the record.
fn refuse_unrecordable(path: &Path, ours: &[HistoryEntry]) -> Result<()> {
    match ours.iter().find(|e| e.name.contains(['\n', '\r'])) {
        Some(entry) => Err(Error::BadMigrations {
            path: path.to_path_buf(),
            reason: format!(
                "migration {}'s name {:?} holds a line break, which the root's record of the migrations it applied cannot hold; give it a name on one line (nothing was written)",
                entry.version, entry.name
            ),
        }),
        None => Ok(()),
    }
}

/// Refuses to accept a history in which a migration the root applied is
/// at another version in `ours`: another was inserted before it (a
/// branch merged late). Accepting that ran the applied one again on every
/// tenant past it and never the inserted one there, each then called
/// current (an outside probe); an edit or a rename at one version stays
/// acceptable.
///
/// # Errors
///
/// [`Error::BadMigrations`] naming both migrations and what to do.
fn refuse_moved(root: &Path, recorded: &[HistoryEntry], ours: &[HistoryEntry]) -> Result<()> {
    // The same migration: its SQL and its name but for the number or
    // timestamp before the first `_` (renumbered `NNNN_` ones move too).
    let same = |a: &HistoryEntry, b: &HistoryEntry| a.checksum == b.checksum && stem(a) == stem(b);
    // An entry of ours that is the root's own at its version is no other
    // one moved there (two `reindex` migrations of one SQL: a review).
    let in_place = |has: &HistoryEntry| {
        (has.version.checked_sub(1))
            .and_then(|i| recorded.get(i))
            .is_some_and(|r| same(r, has))
    };
    let moved = recorded.iter().find_map(|had| {
        let still = ours
            .iter()
            .any(|has| has.version == had.version && same(had, has));
        let has = ours.iter().find(|has| same(had, has) && !in_place(has))?;
        (!still && has.version != had.version).then_some((had, has))
    });
    let Some((had, has)) = moved else {
        return Ok(());
    };
    let inserted = ours
        .iter()
        .find(|o| o.version == had.version)
        .map_or("another", |o| o.name.as_str());
    Err(Error::BadMigrations {
        path: history_path(root),
        reason: format!(
            "{name}, applied by the root as version {was}, is version {now} here: {inserted} was inserted before it (a branch merged late). Accepting changes cannot make that safe: tenants past version {was} would run {name} again and never {inserted}. Rename {inserted} to a time after the last migration applied (`tenanted migration new` names one so)",
            name = had.name,
            was = had.version,
            now = has.version,
        ),
    })
}

/// Whether the history `recorded` lacks (or, accepting changes, differs
/// from) `ours`; one that cannot be read does (its writer says why).
pub(super) fn needs_recording(
    recorded: Option<&str>,
    ours: &[HistoryEntry],
    accept_changes: bool,
) -> bool {
    let Ok(recorded) = parse(Path::new(HISTORY), recorded) else {
        return true;
    };
    recorded.len() < ours.len() || (accept_changes && first_difference(&recorded, ours).is_some())
}

/// Checks `ours` against the root's history again, then records the ones
/// it lacks (or, with `accept_changes`, rewrites it to `ours`), under the
/// record's lock.
///
/// # Errors
///
/// [`Error::MigrationChanged`]; I/O errors, or another process holding
/// the record's lock past `patience`.
pub(super) fn record_history(
    root: &Path,
    ours: &[HistoryEntry],
    (accept_changes, patience): (bool, &Patience),
) -> Result<()> {
    let path = history_path(root);
    update_record(&path, patience, |current| {
        let recorded = parse(&path, current)?;
        if let Some((had, has)) = first_difference(&recorded, ours) {
            if !accept_changes {
                return Err(changed(root, had, has));
            }
            refuse_moved(root, &recorded, ours)?;
            tracing::warn!(version = has.version, was = %had.name, now = %has.name, "accepting a changed migration");
        } else if recorded.len() >= ours.len() {
            return Ok(None);
        }
        // The program's migrations, then whatever newer ones the root has.
        let tail = recorded.iter().skip(ours.len());
        Ok(Some(
            ours.iter().chain(tail).map(HistoryEntry::line).collect(),
        ))
    })
}

/// A migration's name without its number or timestamp.
fn stem(entry: &HistoryEntry) -> &str {
    entry
        .name
        .split_once('_')
        .map_or(entry.name.as_str(), |(_, stem)| stem)
}

fn changed(root: &Path, had: &HistoryEntry, has: &HistoryEntry) -> Error {
    Error::MigrationChanged {
        root: root.to_path_buf(),
        version: has.version,
        applied: format!("{} (checksum {})", had.name, had.checksum),
        code: format!("{} (checksum {})", has.name, has.checksum),
    }
}
