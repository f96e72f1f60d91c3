//! The root's migration history: `.tenanted/migrations` records, for every
//! migration applied in the root, its version, a checksum of what was
//! applied (its `up.sql`) and its name (as sqlx and refinery checksum what
//! was applied), so that a program whose migration N was edited, renamed
//! or reordered after it ran fails clearly instead of calling a tenant
//! "current" against other SQL.
//!
//! A `down.sql` is not part of what was applied: it is what a rollback
//! will run, and a rollback runs the down script of the program doing it.
//! Editing one (a fix, a comment) changes nothing recorded.
//!
//! A manager opened on the root checks its migrations against the history
//! and appends the ones it brings; a program with fewer migrations (an old
//! version during a deploy) passes as long as its own agree.
//! `accept_migration_changes` rewrites the history to the program's
//! migrations, for a deliberate change.

use std::path::Path;

use super::migrations::{Migration, Migrations};
use crate::error::{Error, Result};
use crate::fs::{Patience, read_record, record_once, update_record};
use crate::paths::{Fnv1a, INTERNAL_DIR, RootConfig};

/// The history's file name in `.tenanted/`.
const HISTORY: &str = "migrations";

/// One migration as the history holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    version: usize,
    checksum: String,
    name: String,
}

impl Entry {
    /// The entry of `migration`: its checksum covers what was applied,
    /// the up script alone.
    fn of(version: usize, migration: &Migration) -> Self {
        let mut hash = Fnv1a::new();
        hash.write(migration.up_sql().as_bytes());
        Entry {
            version,
            checksum: format!("{:016x}", hash.finish()),
            name: migration.name().to_owned(),
        }
    }

    fn parse(line: &str) -> Option<Self> {
        let mut fields = line.splitn(3, ' ');
        let version = fields.next()?.parse().ok()?;
        let checksum = fields.next()?.to_owned();
        let name = fields.next()?.to_owned();
        Some(Entry {
            version,
            checksum,
            name,
        })
    }

    fn line(&self) -> String {
        format!("{} {} {}\n", self.version, self.checksum, self.name)
    }
}

/// Checks that the root agrees with this program: its layout (recorded by
/// the first program that wrote to it) and its migration history. With
/// `record` (given just before a first write to a tenant), also records
/// what the root lacks (a root whose tenants were made by hand, or by
/// copying files in, is described by its first write), waiting for another process
/// recording at the same time until its patience runs out. Records are
/// read first and only what is missing is written: a described root
/// needs no free space. A root that does not exist yet is left alone.
///
/// # Errors
///
/// [`Error::LayoutMismatch`], [`Error::MigrationChanged`], I/O errors.
pub(crate) fn describe_root(
    root: &RootConfig,
    migrations: &Migrations,
    accept_changes: bool,
    record: Option<&Patience>,
) -> Result<()> {
    let layout = root.check_recorded_layout()?;
    let history = root.root_dir().join(INTERNAL_DIR).join(HISTORY);
    let ours = entries(migrations);
    let recorded = read_record(&history)?;
    compare(root.root_dir(), recorded.as_deref(), &ours, accept_changes)?;
    let Some(patience) = record.filter(|_| crate::fs::sys::is_dir(root.root_dir())) else {
        return Ok(());
    };
    // Two programs recording at once: one writes, the other compares.
    if !layout && record_once(&root.layout_record_path(), &root.layout_record())?.is_some() {
        root.check_recorded_layout()?;
    }
    if needs_recording(recorded.as_deref(), &ours, accept_changes) {
        record_history(root.root_dir(), &history, &ours, (accept_changes, patience))?;
    }
    Ok(())
}

/// Whether the history `recorded` lacks (or, accepting changes, differs
/// from) `ours`.
fn needs_recording(recorded: Option<&str>, ours: &[Entry], accept_changes: bool) -> bool {
    let recorded = parse(recorded);
    recorded.len() < ours.len() || (accept_changes && first_difference(&recorded, ours).is_some())
}

fn entries(migrations: &Migrations) -> Vec<Entry> {
    migrations
        .iter()
        .enumerate()
        .map(|(i, m)| Entry::of(i + 1, m))
        .collect()
}

/// A history file's entries (none for a missing file).
fn parse(text: Option<&str>) -> Vec<Entry> {
    text.unwrap_or("")
        .lines()
        .filter_map(Entry::parse)
        .collect()
}

/// The first version at which two histories both have an entry and
/// disagree: (the first's, the second's).
fn first_difference<'a>(a: &'a [Entry], b: &'a [Entry]) -> Option<(&'a Entry, &'a Entry)> {
    a.iter().zip(b).find(|(x, y)| x != y)
}

/// Whether the recorded history and `ours` agree where both have entries.
fn compare(root: &Path, recorded: Option<&str>, ours: &[Entry], accept: bool) -> Result<()> {
    match first_difference(&parse(recorded), ours) {
        Some((had, has)) if !accept => Err(changed(root, had, has)),
        _ => Ok(()),
    }
}

/// Checks `ours` against the history at `path`, then records the ones
/// the history lacks (or, with `accept_changes`, rewrites it to `ours`),
/// under the record's lock.
fn record_history(
    root: &Path,
    path: &Path,
    ours: &[Entry],
    (accept_changes, patience): (bool, &Patience),
) -> Result<()> {
    update_record(path, patience, |current| {
        let recorded = parse(current);
        if let Some((had, has)) = first_difference(&recorded, ours) {
            if !accept_changes {
                return Err(changed(root, had, has));
            }
            tracing::warn!(version = has.version, was = %had.name, now = %has.name, "accepting a changed migration");
        } else if recorded.len() >= ours.len() {
            return Ok(None);
        }
        // The program's migrations, then whatever newer ones the root has.
        let tail = recorded.iter().skip(ours.len());
        Ok(Some(ours.iter().chain(tail).map(Entry::line).collect()))
    })
}

fn changed(root: &Path, had: &Entry, has: &Entry) -> Error {
    Error::MigrationChanged {
        root: root.to_path_buf(),
        version: has.version,
        applied: format!("{} (checksum {})", had.name, had.checksum),
        code: format!("{} (checksum {})", has.name, has.checksum),
    }
}

/// Copies the migration history of the root `root` into the backup
/// directory `dir` (laid out like a root), so that a restore from it can
/// check that its tenants were migrated with the same migrations. A root
/// with no history yet gives the backup none.
///
/// # Errors
///
/// I/O errors.
pub(crate) fn copy_history(root: &Path, dir: &Path) -> Result<()> {
    let Some(history) = read_record(&root.join(INTERNAL_DIR).join(HISTORY))? else {
        return Ok(());
    };
    let patience = Patience::new(crate::fs::record::RECORD_WAIT);
    update_record(
        &dir.join(INTERNAL_DIR).join(HISTORY),
        &patience,
        |current| Ok((current != Some(history.as_str())).then(|| history.clone())),
    )
}

/// Checks the history a backup carries (the `.tenanted/migrations` of the
/// backup directory `src` is in, if it is in one) against the root's (or,
/// for a root with none yet, `migrations`): a tenant migrated with other
/// migrations must not be restored as if it were on this schema. A lone
/// backup file carries no history and passes.
///
/// # Errors
///
/// [`Error::BadBackup`] naming the first migration that differs.
pub(crate) fn check_backup_history(
    tenant: &crate::name::TenantName,
    src: &Path,
    root: &Path,
    migrations: &Migrations,
) -> Result<()> {
    let Some(carried) = carried_history(src)? else {
        return Ok(());
    };
    let ours = match read_record(&root.join(INTERNAL_DIR).join(HISTORY))? {
        Some(text) => parse(Some(&text)),
        None => entries(migrations),
    };
    let carried = parse(Some(&carried));
    match first_difference(&carried, &ours) {
        None => Ok(()),
        Some((had, has)) => Err(Error::BadBackup {
            tenant: tenant.clone(),
            path: src.to_path_buf(),
            reason: format!(
                "its tenants were migrated with {} (checksum {}) as migration {}, but this root applied {} (checksum {})",
                had.name, had.checksum, had.version, has.name, has.checksum
            ),
        }),
    }
}

/// The history of the backup directory `src` is in: the nearest
/// `.tenanted/migrations` in a directory above it that also has a layout
/// record (so only a directory made by `backup_all` counts).
fn carried_history(src: &Path) -> Result<Option<String>> {
    for dir in src.ancestors().skip(1) {
        let internal = dir.join(INTERNAL_DIR);
        if crate::fs::sys::metadata(&internal.join("layout")).is_ok_and(|m| m.is_file()) {
            return read_record(&internal.join(HISTORY));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(up: &str, down: &str) -> Entry {
        Entry::of(1, &Migration::new("0001_a", up).down(down))
    }

    #[test]
    fn a_changed_down_script_agrees_and_a_changed_up_script_does_not() {
        let line = ours("CREATE TABLE a (x);", "DROP TABLE a;").line();
        let recorded = Entry::parse(line.trim_end()).unwrap();
        assert_eq!(
            recorded,
            ours("CREATE TABLE a (x);", "-- fixed\nDROP TABLE a;")
        );
        assert_ne!(
            recorded,
            ours("CREATE TABLE a (x); -- edited", "DROP TABLE a;")
        );
    }
}
