//! The schema's migrations: defined in code or read from a directory.

use crate::fs::sys;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rusqlite_migration::M;

use super::empty_run::{self, Refused, Scripts};
use super::foreign_keys::{self, Baseline};

use crate::error::{Error, Result};
use crate::paths::Fnv1a;
use crate::root_description::HistoryEntry;

/// One schema change: an `up` script and an optional `down` script.
///
/// ```
/// use tenanted::Migration;
///
/// let m = Migration::new("create_items", "CREATE TABLE items (id INTEGER PRIMARY KEY);")
///     .down("DROP TABLE items;");
/// assert_eq!(m.name(), "create_items");
/// assert!(m.down_sql().is_some());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    name: String,
    up: String,
    down: Option<String>,
}

impl Migration {
    /// A migration named `name` that runs `up_sql`. The root records the
    /// name of every migration it applied, a line each: a name holding a
    /// line break (a newline, a carriage return) is refused when the manager
    /// is built ([`Error::BadMigrations`]).
    pub fn new(name: impl Into<String>, up_sql: impl Into<String>) -> Self {
        Migration {
            name: name.into(),
            up: up_sql.into(),
            down: None,
        }
    }

    /// Adds the script that undoes this migration (needed for rollback).
    pub fn down(mut self, down_sql: impl Into<String>) -> Self {
        self.down = Some(down_sql.into());
        self
    }

    /// The migration's name, as shown in reports.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `up` script.
    pub fn up_sql(&self) -> &str {
        &self.up
    }

    /// The `down` script, if any.
    pub fn down_sql(&self) -> Option<&str> {
        self.down.as_deref()
    }
}

/// The ordered list of migrations; version `n` means the first `n` applied.
///
/// A tenant's version is SQLite's `user_version`, as in
/// `rusqlite_migration`. Cloning is cheap (a reference count).
#[derive(Debug, Clone)]
pub struct Migrations {
    list: Arc<[Migration]>,
    /// Each migration's up and down scripts, ended by a NUL (see
    /// [`terminated`]).
    terminated: Arc<[(String, Option<String>)]>,
    fingerprint: u64,
    /// The run on an empty database (`empty_run.rs`), once.
    on_empty: Arc<OnceLock<std::result::Result<(), Refused>>>,
}

impl PartialEq for Migrations {
    fn eq(&self, other: &Self) -> bool {
        self.list == other.list
    }
}

impl Eq for Migrations {}

impl Migrations {
    /// Migrations defined in code, applied in the order given.
    ///
    /// ```
    /// use tenanted::{Migration, Migrations};
    ///
    /// let migrations = Migrations::new(vec![
    ///     Migration::new("create_items", "CREATE TABLE items (id INTEGER PRIMARY KEY);")
    ///         .down("DROP TABLE items;"),
    /// ]);
    /// assert_eq!(migrations.latest_version(), 1);
    /// ```
    pub fn new(migrations: Vec<Migration>) -> Self {
        let fingerprint = fingerprint(&migrations);
        let scripts = migrations.iter().map(|m| {
            let down = m.down.as_deref().map(terminated);
            (terminated(&m.up), down)
        });
        Migrations {
            terminated: scripts.collect(),
            list: migrations.into(),
            fingerprint,
            on_empty: Arc::new(OnceLock::new()),
        }
    }

    /// Reads migrations from `dir`: one directory per migration, each
    /// holding `up.sql` and optionally `down.sql`, named either
    /// `NNNN_name` (numbered from 1 without gaps) or
    /// `YYYYMMDDHHMMSS_name` (a UTC timestamp, the default of sqlx, diesel
    /// and Rails: two branches adding one each do not collide). Both may
    /// be mixed (a folder that moved to timestamps keeps its numbered
    /// migrations, which come first). Migrations run in the order of
    /// their numbers; a tenant's version is how many have run.
    ///
    /// Hidden entries are ignored; any other entry whose name does not
    /// start with digits (a `README.md`, a `notes/` directory) is skipped
    /// with a warning (a `tracing` event). One that starts with digits is
    /// meant as a migration: without a name after them (`0002_`, `0002`),
    /// or with more than 14 of them, it is an error, not skipped.
    ///
    /// # Errors
    ///
    /// [`Error::BadMigrations`] naming the file or directory: a missing or
    /// unreadable directory or `up.sql`, a numbered entry that is not a
    /// directory or has no name or too many digits, a gap or duplicate among numbered migrations, two
    /// migrations with one timestamp, or no migrations.
    ///
    /// ```
    /// let migrations = tenanted::Migrations::from_dir(
    ///     concat!(env!("CARGO_MANIFEST_DIR"), "/schema/migrations"),
    /// )?;
    /// assert!(migrations.latest_version() >= 3);
    /// # Ok::<(), tenanted::Error>(())
    /// ```
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let mut found = Vec::new();
        for (number, name, path) in list_migration_dirs(dir)? {
            let migration = read_migration(name, &path)?;
            found.push((number, path, migration));
        }
        assemble(dir, found)
    }

    /// The migrations [`embed_migrations!`](crate::embed_migrations)
    /// compiled in; the same rules and errors as [`from_dir`](Self::from_dir).
    #[doc(hidden)]
    pub fn __from_embedded(dir: &include_dir::Dir<'_>) -> Result<Self> {
        let mut found = Vec::new();
        for entry in dir.entries() {
            let path = entry.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Some(number) = migration_number(&name, path)? else {
                continue;
            };
            let Some(sub) = entry.as_dir() else {
                return Err(bad(path, NOT_A_DIR.into()));
            };
            let sql = |file: &str| {
                let file = sub
                    .files()
                    .find(|f| f.path().file_name() == Some(file.as_ref()))?;
                Some(file.contents_utf8().map(str::to_owned).ok_or(file.path()))
            };
            let up = match sql("up.sql") {
                Some(Ok(up)) => up,
                Some(Err(file)) => return Err(bad(file, "up.sql is not UTF-8".into())),
                None => return Err(bad(path, "cannot read up.sql (it is missing)".into())),
            };
            let down = sql("down.sql")
                .transpose()
                .map_err(|file| bad(file, "down.sql is not UTF-8".into()))?;
            found.push((number, path.to_path_buf(), Migration { name, up, down }));
        }
        assemble(dir.path(), found)
    }

    /// These migrations as the root's history records them: each one's
    /// checksum covers what is applied, the up script alone (a changed
    /// `down.sql` changes nothing recorded).
    pub(crate) fn history(&self) -> Vec<HistoryEntry> {
        self.iter()
            .enumerate()
            .map(|(i, m)| history_entry(i + 1, m))
            .collect()
    }

    /// The version a fully migrated tenant has: the number of migrations.
    ///
    /// ```
    /// use tenanted::{Migration, Migrations};
    /// let migrations = Migrations::new(vec![
    ///     Migration::new("0001_a", "CREATE TABLE a (x);"),
    ///     Migration::new("0002_b", "CREATE TABLE b (x);"),
    /// ]);
    /// assert_eq!(migrations.latest_version(), 2);
    /// ```
    pub fn latest_version(&self) -> usize {
        self.list.len()
    }

    /// The number of migrations.
    ///
    /// ```
    /// use tenanted::{Migration, Migrations};
    /// let migrations = Migrations::new(vec![
    ///     Migration::new("0001_a", "CREATE TABLE a (x);"),
    ///     Migration::new("0002_b", "CREATE TABLE b (x);"),
    /// ]);
    /// assert_eq!(migrations.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are no migrations.
    ///
    /// ```
    /// assert!(tenanted::Migrations::new(vec![]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The migrations in order.
    ///
    /// ```
    /// use tenanted::{Migration, Migrations};
    /// let migrations = Migrations::new(vec![
    ///     Migration::new("0001_a", "CREATE TABLE a (x);"),
    ///     Migration::new("0002_b", "CREATE TABLE b (x);"),
    /// ]);
    /// let names: Vec<&str> = migrations.iter().map(|m| m.name()).collect();
    /// assert_eq!(names, ["0001_a", "0002_b"]);
    /// ```
    pub fn iter(&self) -> std::slice::Iter<'_, Migration> {
        self.list.iter()
    }

    /// The migration that takes a tenant from `version - 1` to `version`.
    ///
    /// ```
    /// use tenanted::{Migration, Migrations};
    /// let migrations = Migrations::new(vec![
    ///     Migration::new("0001_a", "CREATE TABLE a (x);"),
    ///     Migration::new("0002_b", "CREATE TABLE b (x);"),
    /// ]);
    /// assert_eq!(migrations.get(2).map(|m| m.name()), Some("0002_b"));
    /// assert!(migrations.get(0).is_none() && migrations.get(3).is_none());
    /// ```
    pub fn get(&self, version: usize) -> Option<&Migration> {
        version.checked_sub(1).and_then(|i| self.list.get(i))
    }

    /// Names of the migrations between two versions, in the order they run.
    pub(super) fn names_between(&self, from: usize, to: usize) -> Vec<String> {
        let names = |range: std::ops::Range<usize>| {
            self.list[range]
                .iter()
                .map(|m| m.name.clone())
                .collect::<Vec<_>>()
        };
        let latest = self.list.len();
        if from <= to {
            names(from.min(latest)..to.min(latest))
        } else {
            let mut down = names(to.min(latest)..from.min(latest));
            down.reverse();
            down
        }
    }

    /// The latest schema as SQL: every migration applied to an empty
    /// in-memory database, then its `sqlite_master` in creation order and
    /// the final `user_version`. Committed as `schema/schema.sql` and
    /// printed by `tenanted schema dump`.
    ///
    /// # Errors
    ///
    /// [`Error::BadMigrations`] if a migration fails on an empty database.
    ///
    /// ```
    /// use tenanted::{Migration, Migrations};
    ///
    /// let sql = Migrations::new(vec![Migration::new("a", "CREATE TABLE a (x);")]).schema_sql()?;
    /// assert!(sql.contains("CREATE TABLE a (x);"));
    /// assert!(sql.contains("PRAGMA user_version = 1;"));
    /// # Ok::<(), tenanted::Error>(())
    /// ```
    pub fn schema_sql(&self) -> Result<String> {
        let here = Path::new(":memory:");
        let sqlite = |e| Error::sqlite(None, here, "dumping the schema", e);
        let mut conn = rusqlite::Connection::open_in_memory().map_err(sqlite)?;
        if !self.is_empty() {
            foreign_keys::off(&conn).map_err(sqlite)?;
            self.engine(&Baseline::empty())
                .to_latest(&mut conn)
                .map_err(|e| Error::BadMigrations {
                    path: here.to_path_buf(),
                    reason: format!(
                        "applying the migrations to an empty database failed{}: {}",
                        self.failing_migration(&e)
                            .map(|m| format!(" in {m}"))
                            .unwrap_or_default(),
                        crate::error::concise(&e)
                    ),
                })?;
        }
        let mut out = format!(
            "-- The schema after all {} migrations. Generated: do not edit.\n\
             -- Regenerate with: tenanted schema dump > schema/schema.sql\n\n",
            self.len()
        );
        let mut stmt = conn
            .prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid")
            .map_err(sqlite)?;
        let rows = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(sqlite)?;
        for sql in rows {
            out.push_str(&sql.map_err(sqlite)?);
            out.push_str(";\n");
        }
        out.push_str(&format!("PRAGMA user_version = {};\n", self.len()));
        Ok(out)
    }

    /// A stable 64-bit fingerprint of every name and script (FNV-1a), used
    /// to key the template database.
    ///
    /// ```
    /// use tenanted::{Migration, Migrations};
    /// let migrations = Migrations::new(vec![
    ///     Migration::new("0001_a", "CREATE TABLE a (x);"),
    ///     Migration::new("0002_b", "CREATE TABLE b (x);"),
    /// ]);
    /// let same = Migrations::new(migrations.iter().cloned().collect());
    /// assert_eq!(migrations.fingerprint(), same.fingerprint());
    /// ```
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Runs every migration on an empty database once (see
    /// `empty_run.rs`), before the first run that changes a tenant; a
    /// refused script fails a run from version `from` to `to` only if the
    /// run would run it.
    ///
    /// # Errors
    ///
    /// [`Error::BadMigrations`] naming the script that failed there, or
    /// that ends its transaction.
    pub(crate) fn check_on_empty(&self, (from, to): (usize, usize)) -> Result<()> {
        let scripts = || {
            let each = self.list.iter().zip(self.terminated.iter());
            let each = each.map(|(m, (up, down))| Scripts {
                name: &m.name,
                up,
                down: down.as_deref(),
            });
            empty_run::run_on_empty(&each.collect::<Vec<_>>())
        };
        empty_run::checked(self.on_empty.get_or_init(scripts), (from, to))
    }

    /// The migrations as `rusqlite_migration` sees them, each script ended
    /// by a NUL (see [`terminated`]) and each up step followed by a check
    /// of foreign keys against `baseline` (see `foreign_keys.rs`): the
    /// caller runs them with foreign keys off.
    pub(super) fn engine(&self, baseline: &Baseline) -> rusqlite_migration::Migrations<'_> {
        rusqlite_migration::Migrations::new(
            self.list
                .iter()
                .zip(self.terminated.iter())
                .map(|(m, (up, down))| {
                    let step = M::up_with_hook(up, baseline.hook(&m.name));
                    match down {
                        Some(down) => step.down(down),
                        None => step,
                    }
                })
                .collect(),
        )
    }

    /// The migration a `rusqlite_migration` error came from, when its
    /// failing script is one of ours.
    pub(super) fn failing_migration(&self, e: &rusqlite_migration::Error) -> Option<String> {
        let rusqlite_migration::Error::RusqliteError { query, .. } = e else {
            return None;
        };
        let query = unterminated(query);
        self.list
            .iter()
            .find(|m| m.up == query || m.down.as_deref() == Some(query))
            .map(|m| m.name.clone())
    }

    /// Whether a `rusqlite_migration` error came from one of our down
    /// scripts (and not an up script with the same text).
    pub(super) fn failed_undoing(&self, e: &rusqlite_migration::Error) -> bool {
        let rusqlite_migration::Error::RusqliteError { query, .. } = e else {
            return false;
        };
        let query = unterminated(query);
        let undoing = |m: &Migration| m.down.as_deref() == Some(query);
        !self.list.iter().any(|m| m.up == query) && self.list.iter().any(undoing)
    }
}

const NOT_A_DIR: &str = "expected a directory holding up.sql and optionally down.sql";

/// The digits of a timestamped migration's name: `YYYYMMDDHHMMSS`.
const TIMESTAMP_DIGITS: usize = 14;

/// Checks the numbering (numbered ones from 1 without gaps, no number
/// twice) and orders the list by number.
fn assemble(dir: &Path, mut found: Vec<(u64, PathBuf, Migration)>) -> Result<Migrations> {
    if found.is_empty() {
        return Err(bad(
            dir,
            "no migrations found; add 0001_name/up.sql (or YYYYMMDDHHMMSS_name/up.sql)".into(),
        ));
    }
    found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut list = Vec::with_capacity(found.len());
    let mut previous: Option<(u64, &Path)> = None;
    for (index, (number, path, migration)) in found.iter().enumerate() {
        if let Some((last, other)) = previous
            && last == *number
        {
            return Err(bad(
                path,
                format!(
                    "{} has the number of {} too; give one of them the next free number (or a newer timestamp)",
                    migration.name,
                    other.display()
                ),
            ));
        }
        let expected = index as u64 + 1;
        if !is_timestamp(&migration.name) && *number != expected {
            return Err(bad(
                path,
                format!(
                    "expected migration number {expected:04} here (numbered migrations start at 1, without gaps), found {number:04}"
                ),
            ));
        }
        previous = Some((*number, path));
        list.push(migration.clone());
    }
    Ok(Migrations::new(list))
}

/// Whether a migration's name starts with a `YYYYMMDDHHMMSS_` timestamp.
fn is_timestamp(name: &str) -> bool {
    name.split_once('_')
        .is_some_and(|(digits, _)| digits.len() == TIMESTAMP_DIGITS)
}

/// The number of the migration named `name` (at `path`), or `None`, with
/// a warning, for an entry that is no migration (hidden ones silently).
///
/// # Errors
///
/// [`Error::BadMigrations`] for a name that starts with digits but is no
/// well-named migration (see [`misnumbered`]).
fn migration_number(name: &str, path: &Path) -> Result<Option<u64>> {
    if name.starts_with('.') {
        return Ok(None);
    }
    if let Some(reason) = misnumbered(name) {
        return Err(bad(path, reason.into()));
    }
    let number = parse_number(name);
    if number.is_none() {
        tracing::warn!(
            path = %path.display(),
            "not a migration (its name does not start with NNNN_ or YYYYMMDDHHMMSS_): skipped"
        );
    }
    Ok(number)
}

fn bad(path: &Path, reason: String) -> Error {
    Error::BadMigrations {
        path: path.to_path_buf(),
        reason,
    }
}

/// The migration directories in `dir` (other entries skipped), unsorted:
/// number, name, path.
fn list_migration_dirs(dir: &Path) -> Result<Vec<(u64, String, PathBuf)>> {
    let entries = sys::read_dir_path(dir).map_err(|e| {
        bad(
            dir,
            format!("cannot read the migrations directory ({e}); pass the right --migrations path"),
        )
    })?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| bad(dir, format!("cannot list it ({e})")))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(number) = migration_number(&name, &path)? else {
            continue;
        };
        if !sys::is_dir(&path) {
            return Err(bad(&path, NOT_A_DIR.into()));
        }
        found.push((number, name, path));
    }
    Ok(found)
}

/// The largest migration script read (a script of its size would hold a
/// tenant's write lock for minutes; a larger one is no script).
const SCRIPT_LIMIT: u64 = 256 << 20;

/// Reads `up.sql` and the optional `down.sql` of the migration at `path`.
fn read_migration(name: String, path: &Path) -> Result<Migration> {
    let up_path = path.join("up.sql");
    let up = sys::read_to_string(&up_path, SCRIPT_LIMIT)
        .map_err(|e| bad(&up_path, format!("cannot read up.sql ({e})")))?;
    let down_path = path.join("down.sql");
    let down = match sys::read_to_string(&down_path, SCRIPT_LIMIT) {
        Ok(sql) => Some(sql),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(bad(&down_path, format!("cannot read down.sql ({e})"))),
    };
    Ok(Migration { name, up, down })
}

/// `NNNN` of `NNNN_name`: 1 to 14 digits, then `_` and a name.
/// Why an entry whose name starts with digits, and so was meant as a
/// migration, is not a well-named one (skipped, it would leave tenants
/// called current without it).
fn misnumbered(name: &str) -> Option<&'static str> {
    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    if digits > TIMESTAMP_DIGITS {
        return Some(
            "its number has more than 14 digits: name it NNNN_what_it_does, or YYYYMMDDHHMMSS_what_it_does with a UTC time",
        );
    }
    match &name[digits..] {
        "" | "_" => Some("it has no name after its number: name it NNNN_what_it_does"),
        // `0005-add_tags`, `0005 add tags` (an outside probe: skipped);
        // not `2fa_notes`, whose digits begin a word.
        rest if !rest.starts_with(|c: char| c == '_' || c.is_ascii_alphabetic()) => Some(
            "its number is not followed by `_`: name it NNNN_what_it_does (the whole name up to the first `_` must be digits)",
        ),
        _ => None,
    }
}

/// `sql` ended by a NUL, which SQLite then reads in place. Given a length
/// that does not count one (as rusqlite gives every string), it copies
/// what is left of the script before each statement it prepares: a
/// migration's time grew with the square of its statements (80,000 took
/// 15 s, a 22 MB one 200 s a tenant, holding the tenant's write lock).
fn terminated(sql: &str) -> String {
    let mut sql = sql.to_owned();
    sql.push('\0');
    sql
}

/// A script as written, without the NUL [`terminated`] ended it with.
pub(super) fn unterminated(sql: &str) -> &str {
    sql.strip_suffix('\0').unwrap_or(sql)
}

fn parse_number(name: &str) -> Option<u64> {
    let (digits, rest) = name.split_once('_')?;
    let digit_count = 1..=TIMESTAMP_DIGITS;
    if !digit_count.contains(&digits.len())
        || rest.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    digits.parse().ok()
}

fn fingerprint(list: &[Migration]) -> u64 {
    let mut hash = Fnv1a::new();
    for m in list {
        // 0xff never occurs in UTF-8, so it separates fields unambiguously.
        for field in [m.name.as_str(), &m.up, m.down.as_deref().unwrap_or("")] {
            hash.write(field.as_bytes());
            hash.write(&[0xff]);
        }
    }
    hash.finish()
}

/// Migration `migration`, the `version`th, as the history holds it.
fn history_entry(version: usize, migration: &Migration) -> HistoryEntry {
    let mut hash = Fnv1a::new();
    hash.write(migration.up_sql().as_bytes());
    HistoryEntry::new(version, format!("{:016x}", hash.finish()), migration.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(up: &str, down: &str) -> HistoryEntry {
        history_entry(1, &Migration::new("0001_a", up).down(down))
    }

    #[test]
    fn a_name_meant_as_a_migration_but_misnumbered_is_an_error_not_skipped() {
        for name in [
            "0002_",
            "0002",
            "202612051200001_add_tags",
            "0005-add_tags",
            "0005 add tags",
        ] {
            assert!(misnumbered(name).is_some(), "{name}");
        }
        for name in [
            "0002_add_tags",
            "20261205120000_add_tags",
            "README.md",
            "notes",
            "2fa_x",
        ] {
            assert!(misnumbered(name).is_none(), "{name}");
        }
    }

    #[test]
    fn a_changed_down_script_agrees_and_a_changed_up_script_does_not() {
        let line = ours("CREATE TABLE a (x);", "DROP TABLE a;").line();
        let recorded = HistoryEntry::parse(line.trim_end()).unwrap();
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
