//! Moving one tenant's schema between versions, safely against other
//! threads and processes doing the same.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use rusqlite_migration::MigrationDefinitionError;

use crate::error::{Error, Result, is_fd_exhaustion};
use crate::lifecycle::lock_path;
use crate::lock::FileLock;
use crate::migrations::Migrations;
use crate::name::TenantName;

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

/// Open flags for a tenant that must already exist: never `CREATE`, so a
/// misspelt name cannot leave an empty database behind.
pub(crate) const EXISTING: OpenFlags = OpenFlags::SQLITE_OPEN_READ_WRITE
    .union(OpenFlags::SQLITE_OPEN_NO_MUTEX)
    .union(OpenFlags::SQLITE_OPEN_URI);

/// How long a maintenance connection waits on another writer.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens an existing tenant database directly (not through a pool).
pub(crate) fn open_existing(tenant: &TenantName, path: &Path) -> Result<Connection> {
    match Connection::open_with_flags(path, EXISTING) {
        Ok(mut conn) => {
            conn.busy_timeout(BUSY_TIMEOUT)
                .map_err(|e| Error::sqlite(Some(tenant), path, "setting busy_timeout", e))?;
            // Take the write lock when the migration transaction begins, so
            // a reader never has to upgrade and deadlock.
            conn.set_transaction_behavior(TransactionBehavior::Immediate);
            Ok(conn)
        }
        Err(e) => Err(open_error(tenant, path, e)),
    }
}

/// Explains why SQLite could not open `path`: missing tenant, too many
/// open files, or SQLite's own error.
pub(crate) fn open_error(tenant: &TenantName, path: &Path, e: rusqlite::Error) -> Error {
    match fs::metadata(path) {
        Err(m) if m.kind() == io::ErrorKind::NotFound => Error::TenantDoesNotExist {
            tenant: tenant.clone(),
            path: path.to_path_buf(),
        },
        _ => sqlite_error(tenant, path, "opening the database", e),
    }
}

/// A SQLite error on `tenant`; SQLite says only "unable to open" when it
/// runs out of descriptors (for the database, its WAL or its shared
/// memory), so a CANTOPEN is probed for that.
pub(crate) fn sqlite_error(
    tenant: &TenantName,
    path: &Path,
    operation: &'static str,
    e: rusqlite::Error,
) -> Error {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen) && fd_exhausted(path) {
        return Error::TooManyOpenFiles {
            tenant: tenant.clone(),
            path: path.to_path_buf(),
        };
    }
    Error::sqlite(Some(tenant), path, operation, e)
}

/// Opening any directory needs a descriptor: if that fails with EMFILE or
/// ENFILE, the process is out of them. (Never opens the database file
/// itself: closing a second descriptor would drop SQLite's POSIX locks.)
fn fd_exhausted(path: &Path) -> bool {
    let dir = path.parent().unwrap_or(Path::new("."));
    matches!(fs::File::open(dir), Err(ref e) if is_fd_exhaustion(e))
}

/// The tenant's schema version.
pub(crate) fn read_version(tenant: &TenantName, path: &Path, conn: &Connection) -> Result<usize> {
    conn.query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))
        .map_err(|e| sqlite_error(tenant, path, "reading the schema version", e))
        .map(|v| usize::try_from(v).unwrap_or(0))
}

/// The tenant's schema version, read cheaply when the file alone tells it.
///
/// With no WAL content, the `user_version` in the database header is the
/// truth, and an `immutable` open reads it without opening `-wal` or
/// `-shm`, taking locks, or checkpointing on close (several times cheaper
/// than a full open of a WAL database). It still goes through SQLite's VFS,
/// which keeps this process's POSIX locks on the file intact. A tenant with
/// a live WAL gets a full open. A snapshot: a concurrent writer can change
/// it the moment after.
pub(crate) fn peek_version(tenant: &TenantName, path: &Path) -> Result<usize> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal_is_empty = match fs::metadata(&wal) {
        Ok(meta) => meta.len() == 0,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    };
    if let (true, Some(uri)) = (wal_is_empty, immutable_uri(path)) {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        if let Ok(conn) = Connection::open_with_flags(&uri, flags)
            && let Ok(version) = read_version(tenant, path, &conn)
        {
            return Ok(version);
        }
    }
    let conn = open_existing(tenant, path)?;
    read_version(tenant, path, &conn)
}

/// `file:PATH?immutable=1`, with the characters URIs reserve escaped.
fn immutable_uri(path: &Path) -> Option<String> {
    let mut uri = String::from("file:");
    for c in path.to_str()?.chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    Some(uri)
}

/// Brings `tenant` to `target` (up or down), holding the tenant's lock.
///
/// A tenant already at `target` returns at once without locking, so a
/// fleet of up-to-date tenants costs one `PRAGMA user_version` each.
pub(crate) fn migrate_to(
    migrations: &Migrations,
    tenant: &TenantName,
    path: &Path,
    target: usize,
) -> Result<MigrationOutcome> {
    let started = Instant::now();
    let latest = migrations.latest_version();
    if target > latest {
        return Err(Error::VersionOutOfRange {
            tenant: tenant.clone(),
            requested: target,
            latest,
        });
    }
    // The unlocked read only spares up-to-date tenants the lock; if it
    // fails (another process destroying the tenant under us can make SQLite
    // report an I/O error), the read under the lock decides.
    let before = peek_version(tenant, path);
    if let Ok(version) = before
        && version == target
    {
        return Ok(unchanged(tenant, version, started));
    }
    let _lock = lock_tenant(tenant, path)?;
    // Open again under the lock: another process may have destroyed (or
    // destroyed and re-created) the tenant, or migrated it, while we waited.
    let mut conn = open_existing(tenant, path)?;
    let from = read_version(tenant, path, &conn)?;
    check_not_ahead(migrations, tenant, path, from)?;
    if from == target {
        return Ok(unchanged(tenant, from, started));
    }
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
    let span = tracing::info_span!("migrate", tenant = %tenant, from, to = target);
    let _entered = span.enter();
    migrations
        .engine()
        .to_version(&mut conn, target)
        .map_err(|e| migration_error(migrations, tenant, path, from, e))?;
    tracing::info!(tenant = %tenant, from, to = target, "migrated");
    Ok(MigrationOutcome {
        tenant: tenant.clone(),
        from,
        to: target,
        applied: migrations.names_between(from, target),
        duration: started.elapsed(),
    })
}

/// Takes the tenant's lock without creating directories: a tenant whose
/// directory is gone does not exist.
pub(crate) fn lock_tenant(tenant: &TenantName, path: &Path) -> Result<FileLock> {
    let lock = lock_path(path);
    FileLock::acquire(&lock, false).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::TenantDoesNotExist {
                tenant: tenant.clone(),
                path: path.to_path_buf(),
            }
        } else {
            Error::io(Some(tenant), lock, "locking the tenant", e)
        }
    })
}

pub(crate) fn check_not_ahead(
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

fn migration_error(
    migrations: &Migrations,
    tenant: &TenantName,
    path: &Path,
    version: usize,
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
        e => Error::Migration {
            tenant: tenant.clone(),
            path,
            migration: migrations.failing_migration(&e),
            version,
            source: Box::new(e),
        },
    }
}
