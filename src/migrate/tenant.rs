//! Moving one tenant's schema between versions, safely against other
//! threads and processes doing the same.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite_migration::MigrationDefinitionError;

use super::foreign_keys::{self, Baseline};
use super::migrations::Migrations;
use super::version::{Reading, peek_version, read_version};
use crate::busy::WaitedFor;
use crate::crypt;
use crate::error::{Error, Result};
use crate::fs::Patience;
use crate::name::TenantName;
use crate::storage::{
    TenantPath, full_file_system, held_by_sqlite_lock, is_busy, lock_tenant, open_existing,
    read_without_its_key,
};

/// What one tenant's migration did.
///
/// ```
/// use tenanted::{Migration, Migrations};
/// # let dir = tempfile::tempdir()?;
/// let two = Migrations::new(vec![
///     Migration::new("a", "CREATE TABLE a (x);").down("DROP TABLE a;"),
///     Migration::new("b", "CREATE TABLE b (x);").down("DROP TABLE b;"),
/// ]);
/// # let manager = tenanted::TenantManager::builder(tenanted::RootConfig::new(dir.path()), two).build()?;
/// # manager.create_tenant("acme")?;
/// let outcome = manager.rollback_tenant("acme", 2)?;
/// assert_eq!((outcome.from, outcome.to), (2, 0));
/// assert_eq!(outcome.applied, ["b", "a"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationOutcome {
    /// The tenant.
    pub tenant: TenantName,
    /// Its version before.
    pub from: usize,
    /// Its version after.
    pub to: usize,
    /// The migrations run, in order (for a rollback, the ones undone,
    /// newest first). Empty when the tenant was already there.
    pub applied: Vec<String>,
    /// How long it took, lock wait included.
    pub duration: Duration,
}

/// How a migration waits for others, and what it does before it writes.
#[derive(Clone, Copy)]
pub(crate) struct Prelude<'a> {
    /// How long the tenant's lock is waited for, from the start of the
    /// work on the tenant (`lock_timeout`).
    pub(crate) wait: Duration,
    /// Run under the tenant's lock just before the first write (the
    /// facade records the root's description there): a migration that is
    /// refused, or has nothing to do, writes nothing.
    pub(crate) first_write: &'a (dyn Fn(&Patience) -> Result<()> + Sync),
}

/// Whether one tenant may go down, read under its lock.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DownFrom {
    /// From any version.
    Any,
    /// Not at all.
    Never,
    /// From this version only (the one its going down was confirmed at).
    Only(usize),
}

/// Brings `tenant` to `target` (up or down), holding the tenant's lock.
///
/// A tenant already at `target` returns at once without locking, so a
/// fleet of up-to-date tenants costs one header read each.
pub(crate) fn migrate_to(
    migrations: &Migrations,
    tenant: &TenantName,
    at: TenantPath<'_>,
    target: usize,
    prelude: Prelude<'_>,
) -> Result<MigrationOutcome> {
    let started = Instant::now();
    let before = peek_version(tenant, (at.root(), at.db()), Reading::Ahead);
    migrate_from(
        migrations,
        tenant,
        at,
        (target, DownFrom::Any, before),
        started,
        prelude,
    )
}

/// [`migrate_to`], given the version read without the lock (`before`)
/// and when the work on the tenant started. `(target, down)`: a tenant
/// above `target` that `down` does not let go down is refused, not rolled
/// back.
pub(crate) fn migrate_from(
    migrations: &Migrations,
    tenant: &TenantName,
    at: TenantPath<'_>,
    (target, down, before): (usize, DownFrom, Result<usize>),
    started: Instant,
    prelude: Prelude<'_>,
) -> Result<MigrationOutcome> {
    let latest = migrations.latest_version();
    if target > latest {
        return Err(Error::VersionOutOfRange {
            tenant: tenant.clone(),
            requested: target,
            latest,
        });
    }
    // The unlocked read only spares up-to-date tenants the lock; if it
    // failed (another process destroying the tenant under us can make
    // SQLite report an I/O error), the read under the lock decides.
    if let Ok(version) = before
        && version == target
    {
        return Ok(unchanged(tenant, version, started));
    }
    let patience = Patience::since(started, prelude.wait);
    let _lock = lock_tenant(tenant, at, &patience, WaitedFor::Migration)?;
    let target = match down {
        DownFrom::Any => Target::Version(target),
        DownFrom::Never => Target::NotDown(target),
        DownFrom::Only(version) => Target::DownOnlyFrom(target, version),
    };
    migrate_locked(migrations, tenant, at, target, (&patience, prelude))
}

/// Undoes `tenant`'s last `steps` migrations, counted from the version it
/// has once its lock is held: two rollbacks of one step each undo two
/// migrations, never more, whatever else runs at the same time.
pub(crate) fn rollback(
    migrations: &Migrations,
    tenant: &TenantName,
    at: TenantPath<'_>,
    steps: usize,
    prelude: Prelude<'_>,
) -> Result<MigrationOutcome> {
    let patience = Patience::new(prelude.wait);
    let _lock = lock_tenant(tenant, at, &patience, WaitedFor::Migration)?;
    let target = Target::Down(steps);
    migrate_locked(migrations, tenant, at, target, (&patience, prelude))
}

/// Where a migration goes.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// That version.
    Version(usize),
    /// That version, unless the tenant is above it (going down was not
    /// confirmed).
    NotDown(usize),
    /// That many steps below the version read under the lock.
    Down(usize),
    /// That version, going down only from the second (the one confirmed).
    DownOnlyFrom(usize, usize),
}

impl Target {
    fn resolve(self, tenant: &TenantName, from: usize) -> Result<usize> {
        match self {
            Target::Version(version) => Ok(version),
            Target::NotDown(version) if from > version => Err(Error::DownNotAllowed {
                tenant: tenant.clone(),
                version: from,
                target: version,
            }),
            Target::NotDown(version) => Ok(version),
            Target::DownOnlyFrom(version, confirmed) if from > version && from != confirmed => {
                Err(Error::DownNotAllowed {
                    tenant: tenant.clone(),
                    version: from,
                    target: version,
                })
            }
            Target::DownOnlyFrom(version, _) => Ok(version),
            Target::Down(steps) => from
                .checked_sub(steps)
                .ok_or_else(|| Error::RollbackTooFar {
                    tenant: tenant.clone(),
                    steps,
                    applied: from,
                }),
        }
    }
}

/// The rest of [`migrate_to`] and [`rollback`], under the tenant's lock.
fn migrate_locked(
    migrations: &Migrations,
    tenant: &TenantName,
    at: TenantPath<'_>,
    target: Target,
    (patience, prelude): (&Patience, Prelude<'_>),
) -> Result<MigrationOutcome> {
    let started = patience.started();
    let (root, path) = (at.root(), at.db());
    // Open again under the lock: another process may have destroyed (or
    // destroyed and re-created) the tenant, or migrated it, while we waited.
    let mut conn = open_existing(tenant, root, path, patience)?;
    let from = read_version(tenant, path, &conn)?;
    check_not_ahead(migrations, tenant, path, from)?;
    let target = target.resolve(tenant, from)?;
    if from == target {
        return Ok(unchanged(tenant, from, started));
    }
    check_down_scripts(migrations, tenant, from, target)?;
    migrations.check_on_empty((from, target))?;
    (prelude.first_write)(patience)?;
    let span = tracing::info_span!("migrate", tenant = %tenant, from, to = target);
    let _entered = span.enter();
    // Foreign keys off, and checked after each step against what was
    // there before (see `foreign_keys.rs`).
    // The first read of the tenant's pages: one without its key is said
    // as the migration's own failure would be.
    let failed = |operation, e: rusqlite::Error| match read_without_its_key(root, path, &e) {
        true => crypt::unkeyed_open(tenant, path),
        false => crate::storage::sqlite_error(tenant, path, operation, e),
    };
    foreign_keys::off(&conn)
        .map_err(|e| failed("turning foreign keys off for the migration", e))?;
    let baseline =
        Baseline::of(&conn).map_err(|e| failed("checking foreign keys before the migration", e))?;
    let migrated = migrations.engine(&baseline).to_version(&mut conn, target);
    // Even a failed run may have committed some steps: other processes'
    // watchers look at the version either way.
    crate::storage::announce(root, tenant);
    migrated.map_err(|e| run_failed(migrations, (tenant, at), (&conn, from, started), e))?;
    tracing::info!(tenant = %tenant, from, to = target, "migrated");
    Ok(MigrationOutcome {
        tenant: tenant.clone(),
        from,
        to: target,
        applied: migrations.names_between(from, target),
        duration: started.elapsed(),
    })
}

/// The error of a migration run of `tenant` from version `from`, begun
/// at `started`, that failed with `e`: it says "nothing was changed" only
/// when no step was committed (read on `conn`).
fn run_failed(
    migrations: &Migrations,
    (tenant, at): (&TenantName, TenantPath<'_>),
    (conn, from, started): (&rusqlite::Connection, usize, Instant),
    e: rusqlite_migration::Error,
) -> Error {
    let (root, path) = (at.root(), at.db());
    let unchanged = read_version(tenant, path, conn).is_ok_and(|now| now == from);
    let waited = unchanged.then(|| started.elapsed());
    match &e {
        rusqlite_migration::Error::RusqliteError { err, .. }
            if read_without_its_key(root, path, err) =>
        {
            crypt::unkeyed_open(tenant, path)
        }
        _ => migration_error(migrations, (tenant, path), (from, waited), e),
    }
}

/// Moving down from `from` to `target` needs a down script for every
/// migration undone (a plan says so too: `plan.rs`).
pub(super) fn check_down_scripts(
    migrations: &Migrations,
    tenant: &TenantName,
    from: usize,
    target: usize,
) -> Result<()> {
    if target < from
        && let Some(m) = (target + 1..=from)
            .rev()
            .filter_map(|v| migrations.get(v))
            .find(|m| m.down_sql().is_none())
    {
        return Err(Error::MissingDownMigration {
            tenant: tenant.clone(),
            migration: m.name().to_owned(),
        });
    }
    Ok(())
}

pub(super) fn check_not_ahead(
    migrations: &Migrations,
    tenant: &TenantName,
    path: &Path,
    version: usize,
) -> Result<()> {
    let latest = migrations.latest_version();
    if version > latest {
        return Err(Error::SchemaAheadOfCode {
            tenant: tenant.clone(),
            path: path.to_path_buf(),
            current_version: version,
            latest_version: latest,
        });
    }
    Ok(())
}

fn unchanged(tenant: &TenantName, version: usize, started: Instant) -> MigrationOutcome {
    MigrationOutcome {
        tenant: tenant.clone(),
        from: version,
        to: version,
        applied: Vec::new(),
        duration: started.elapsed(),
    }
}

/// The error of a failed run from `version`; `busy_for` is how long the
/// operation has waited when no step of it was committed (a run that
/// gave up on another connection's write lock then changed nothing).
fn migration_error(
    migrations: &Migrations,
    (tenant, path): (&TenantName, &Path),
    (version, busy_for): (usize, Option<Duration>),
    e: rusqlite_migration::Error,
) -> Error {
    let path: PathBuf = path.to_path_buf();
    match e {
        rusqlite_migration::Error::MigrationDefinition(
            MigrationDefinitionError::DatabaseTooFarAhead,
        ) => Error::SchemaAheadOfCode {
            tenant: tenant.clone(),
            path,
            current_version: version,
            latest_version: migrations.latest_version(),
        },
        // Another connection's write transaction outlasted the busy
        // timeout: nothing is wrong with the migration.
        rusqlite_migration::Error::RusqliteError { ref err, .. }
            if is_busy(err)
                && let Some(waited) = busy_for =>
        {
            held_by_sqlite_lock(tenant, &path, waited)
        }
        // Nothing is wrong with the migration either: the disk is full.
        rusqlite_migration::Error::RusqliteError { ref err, .. }
            if let Some(fs) = full_file_system(err, &path) =>
        {
            Error::DiskFull {
                tenant: Some(tenant.clone()),
                path,
                file_system: fs.mount,
                available: fs.available,
            }
        }
        e => Error::Migration {
            tenant: tenant.clone(),
            path,
            migration: migrations.failing_migration(&e),
            undoing: migrations.failed_undoing(&e),
            version,
            source: Box::new(as_written(e)),
        },
    }
}

/// The error with its script as written (the engine runs it ended by a
/// NUL: see `migrations.rs`).
fn as_written(e: rusqlite_migration::Error) -> rusqlite_migration::Error {
    match e {
        rusqlite_migration::Error::RusqliteError { query, err } => {
            let query = super::migrations::unterminated(&query).to_owned();
            let err = match err {
                rusqlite::Error::SqlInputError {
                    error,
                    msg,
                    sql,
                    offset,
                } => rusqlite::Error::SqlInputError {
                    error,
                    msg,
                    sql: super::migrations::unterminated(&sql).to_owned(),
                    offset,
                },
                err => err,
            };
            rusqlite_migration::Error::RusqliteError { query, err }
        }
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::file_system::FileSystem;
    use crate::storage::NEARLY_FULL;

    fn failed_with(code: std::ffi::c_int, path: &Path) -> Error {
        let err = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        let e = rusqlite_migration::Error::RusqliteError {
            query: String::from("INSERT INTO big SELECT randomblob(100)"),
            err,
        };
        let tenant = TenantName::new("acme").unwrap();
        migration_error(&Migrations::new(vec![]), (&tenant, path), (4, None), e)
    }

    /// A migration that ran out of disk says so, naming the file system,
    /// instead of telling the user to fix the migration; any other failed
    /// write (an I/O error with room left) is the migration's.
    #[test]
    fn a_full_disk_is_told_apart_from_a_failed_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("main.sqlite3");
        match failed_with(rusqlite::ffi::SQLITE_FULL, &path) {
            Error::DiskFull {
                tenant,
                path: at,
                file_system,
                ..
            } => {
                assert_eq!(tenant.map(|t| t.to_string()).as_deref(), Some("acme"));
                assert_eq!(at, path);
                assert!(dir.path().starts_with(&file_system), "{file_system:?}");
            }
            other => panic!("expected DiskFull, got {other:?}"),
        }
        let roomy = FileSystem::of(dir.path()).unwrap().available >= NEARLY_FULL;
        if roomy {
            assert!(matches!(
                failed_with(rusqlite::ffi::SQLITE_IOERR, &path),
                Error::Migration { version: 4, .. }
            ));
        }
        assert!(matches!(
            failed_with(rusqlite::ffi::SQLITE_CONSTRAINT, &path),
            Error::Migration { version: 4, .. }
        ));
    }
}
