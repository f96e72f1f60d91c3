//! The crate's one error type.
//!
//! Every variant names the tenant (where there is one) and the file involved,
//! and its message says what to do next.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use std::{fmt, io};

use crate::busy::{Busy, WaitedFor, advice, busy, holder_phrase};
use crate::name::TenantName;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed error returned by user code (seed closures, migration hooks).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Everything that can go wrong in `tenanted`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The tenant name breaks a naming rule.
    #[error(
        "invalid tenant name {name:?}: {reason}; use 1 to 100 ASCII letters, digits, '-', '_' or '.', starting with a letter or digit"
    )]
    BadTenantName {
        /// The rejected name, as given.
        name: String,
        /// Which rule it broke.
        reason: String,
    },

    /// The path template or bucket count of a [`RootConfig`](crate::RootConfig) is unusable.
    #[error("invalid path template {template:?}: {reason}")]
    BadTemplate {
        /// The template as given.
        template: String,
        /// What is wrong with it.
        reason: String,
    },

    /// `create_tenant` found the tenant already on disk.
    #[error("tenant {tenant} already exists at {}; use create_tenant_if_not_exists to accept an existing tenant, or restore with RestoreOptions::replace to overwrite it", path.display())]
    TenantExists {
        /// The tenant.
        tenant: TenantName,
        /// Its database file.
        path: PathBuf,
    },

    /// The tenant has no database file.
    #[error("tenant {tenant} does not exist (no database at {}); create it with create_tenant", path.display())]
    TenantDoesNotExist {
        /// The tenant.
        tenant: TenantName,
        /// Where its database file would be.
        path: PathBuf,
    },

    /// An operation gave up waiting for the tenant to be let go of: by
    /// this process's checked-out connections, by another process that
    /// has it open, or by another process's (or thread's) create,
    /// destroy, migration or restore of it, once the operation's own
    /// timeout had passed (`destroy_timeout` for a destroy or a restore
    /// that replaces, `lock_timeout` for the others). Nothing was changed:
    /// the tenant is as it was.
    #[error("{}", busy_message(tenant, path, *waited_for, *checked_out, other_process.as_ref(), *waited))]
    TenantBusy {
        /// The tenant.
        tenant: TenantName,
        /// Its database file.
        path: PathBuf,
        /// What held the tenant when the wait ended.
        waited_for: WaitedFor,
        /// This process's connections still checked out when the wait ended.
        checked_out: usize,
        /// The other process that held the tenant, if another process did
        /// (its pid where the kernel tells: `/proc/locks` for a lock file,
        /// `F_GETLK` for SQLite's locks on the database).
        other_process: Option<OtherProcess>,
        /// How long the operation waited, measured from its call.
        waited: Duration,
    },

    /// A checkout raced with `destroy_tenant` for the same tenant (or a
    /// restore with replace, or a re-key, which fence the tenant off the
    /// same way), or met what one of those left when its process died.
    #[error("tenant {tenant} is being destroyed (or replaced by a restore, or re-keyed); its database at {} accepts no new connections until that ends. If no such operation is running, one was interrupted: remove_debris (`tenanted cleanup`) finishes it, or puts the tenant back", path.display())]
    TenantBeingDestroyed {
        /// The tenant.
        tenant: TenantName,
        /// Its database file.
        path: PathBuf,
    },

    /// The tenant's database file is there but is not a usable database
    /// (empty, or not SQLite). tenanted reports it and never writes to it.
    #[error("tenant {tenant} is damaged: its database file {} is not one tenanted can use ({reason}); tenanted has left it untouched: restore it from a backup (restore_tenant_opts and RestoreOptions::replace; `tenanted restore {tenant} --from FILE --replace`), or destroy it (destroy_tenant; `tenanted destroy {tenant}`) and create it again", path.display())]
    DamagedTenant {
        /// The tenant.
        tenant: TenantName,
        /// Its database file.
        path: PathBuf,
        /// What is wrong with the file.
        reason: String,
    },

    /// The tenant's own directory is there, so [`tenants`](crate::TenantManager::tenants)
    /// lists it, but it holds no database: a directory made by hand in a
    /// bucket, or one whose database was moved away. Every operation on the tenant says
    /// so; tenanted changes nothing in it.
    #[error("tenant {tenant} is damaged: its directory {} is there, so it is listed, but holds no database file {} ({found} there); nothing was changed: {}", dir.display(), path.display(), missing_database_way_out(found, path, ("remove_debris (`tenanted cleanup`)", "create_tenant")))]
    MissingDatabase {
        /// The tenant.
        tenant: TenantName,
        /// Its directory.
        dir: PathBuf,
        /// Where its database file should be.
        path: PathBuf,
        /// What is there instead ("nothing", "a directory").
        found: &'static str,
    },

    /// A `-wal` (or rollback `-journal`) holding commits lies beside no
    /// database: the database was moved away, by hand or by a crash.
    /// `remove_debris` keeps it (removing it would lose those commits if
    /// the database comes back) and says so.
    #[error("{}{} holds {bytes} bytes of commits of the database {}, which is not there; it was kept: put the database back (its commits are then read with it), or, if the database is gone for good, remove the file by hand and run remove_debris (`tenanted cleanup`) again", tenant_label(tenant), path.display(), database.display())]
    OrphanedCommits {
        /// The tenant, when the file is beside a tenant's database.
        tenant: Option<TenantName>,
        /// The `-wal` or `-journal`.
        path: PathBuf,
        /// The database it belongs to.
        database: PathBuf,
        /// Its size.
        bytes: u64,
    },

    /// Something that is not a database file (a directory, a symbolic
    /// link) is where the tenant's database would be, so it cannot be
    /// created there.
    #[error("cannot create tenant {tenant}: {} is {found}, not a tenant database; tenanted did not make it and leaves it alone: move it out of the way and retry", path.display())]
    NotATenantDatabase {
        /// The tenant.
        tenant: TenantName,
        /// Where its database file would be.
        path: PathBuf,
        /// What is there instead ("a directory").
        found: &'static str,
    },

    /// The tenant's own directory holds files that are not tenanted's (a
    /// copy of the database made by hand, notes): a destroy, a replacing
    /// restore or a re-key would remove the directory with them, so it
    /// refuses, and changes nothing.
    #[error("tenant {tenant} was left as it was: its directory {} holds {} that tenanted did not make ({}), which removing or replacing the tenant would delete with it; move them out of that directory (they are yours), then retry", dir.display(), if files.len() == 1 { "a file" } else { "files" }, files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "))]
    ForeignFiles {
        /// The tenant.
        tenant: TenantName,
        /// Its directory.
        dir: PathBuf,
        /// The names in it that are not tenanted's (at most ten).
        files: Vec<PathBuf>,
    },

    /// Something that is not a regular file (a named pipe, a symbolic
    /// link, a directory) stands where SQLite opens one of the files it
    /// keeps beside a tenant's database (`-journal`, `-wal`, `-shm`), so
    /// the tenant is not opened: SQLite would fail on it, or wait forever
    /// on a named pipe.
    #[error("tenant {tenant} was not opened: {} is {found}, where SQLite keeps a file of its own beside the database (it would fail on it, or wait forever on a named pipe); nothing was changed: remove it (the database is untouched) and retry", path.display())]
    PlantedSidecar {
        /// The tenant.
        tenant: TenantName,
        /// The `-journal`, `-wal` or `-shm` path.
        path: PathBuf,
        /// What is there ("a symbolic link").
        found: &'static str,
    },

    /// Something that is not a regular file (a symbolic link, a
    /// directory) stands where tenanted keeps a tenant's lock file
    /// (`.NAME.lock` beside its directory), so the tenant cannot be locked
    /// for a create, destroy, migration or cleanup. tenanted never made
    /// it, and never follows a link or locks anything else.
    #[error("{}{} is {found}, where tenanted keeps the tenant's lock file; tenanted never follows links inside the root, nor locks anything else, so nothing was done: remove it (the tenant's data is untouched) and retry", tenant_label(tenant), path.display())]
    PlantedLockFile {
        /// The tenant the lock is for, if known.
        tenant: Option<TenantName>,
        /// The lock file's path.
        path: PathBuf,
        /// What is there ("a symbolic link").
        found: &'static str,
    },

    /// An entry on the way from the root to a tenant's files is a symbolic
    /// link or something else that is not a directory. tenanted never
    /// follows one, since it could lead outside the root.
    #[error("{}{} is {found}, not a directory; tenanted never follows links or passes through other entries inside the root, since they could lead outside it, so nothing was done: move it out of the root (or put the real directory in its place) and retry", tenant_label(tenant), path.display())]
    NotADirectory {
        /// The tenant whose files lie beyond it, if any.
        tenant: Option<TenantName>,
        /// The entry.
        path: PathBuf,
        /// What it is ("a symbolic link").
        found: &'static str,
    },

    /// An entry in the root where its layout has tenants, that tenanted
    /// does not take for one: a symbolic link or a file where a directory
    /// (or a tenant's database file) belongs, a name that is not a valid
    /// tenant name, a tenant in a bucket not its own. Someone put it there,
    /// and it may hold a tenant's data: a fleet run (status, migrate,
    /// backup, usage) skips it and reports it among its listing errors, so
    /// that a run that left it out does not call itself complete;
    /// `tenants()` skips it with a logged warning.
    #[error("{} was skipped, and whatever it holds left out: {reason}", path.display())]
    StrayEntry {
        /// The tenant its name gives, if it gives a valid one.
        tenant: Option<TenantName>,
        /// The entry.
        path: PathBuf,
        /// What it is, and what to do with it.
        reason: String,
    },

    /// A file given to `restore_tenant` is not a backup that can be
    /// restored (missing, empty, not SQLite, failing `integrity_check`);
    /// nothing was changed.
    #[error("cannot restore tenant {tenant} from {}: {reason}; nothing was changed: restore from an intact backup of this root (one backup_tenant or backup_all made)", path.display())]
    BadBackup {
        /// The tenant that was to be restored.
        tenant: TenantName,
        /// The backup file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A tenant's encryption key (or the master key that wraps it) could
    /// not be made, read or used (the `encryption` feature).
    // Not "encryption key {path}": the path is often no key (a database
    // that is encrypted, the root without a key provider: an outside
    // probe read a database's path labelled as a key).
    #[error("{}encryption failed at {}: {reason}", tenant_label(tenant), path.display())]
    Encryption {
        /// The tenant whose key it is, if one.
        tenant: Option<TenantName>,
        /// The file involved: a tenant's key file, the master key file,
        /// an encrypted database, or the root when it has no key provider.
        path: PathBuf,
        /// What went wrong, and what to do.
        reason: String,
    },

    /// A backup was to be written inside the tenant root, where it could
    /// replace a tenant's database or be listed as a tenant.
    #[error("{}cannot write a backup to {}: it is inside the tenant root {}; back up to a directory outside the root", tenant_label(tenant), path.display(), root.display())]
    BackupInsideRoot {
        /// The tenant being backed up, if one.
        tenant: Option<TenantName>,
        /// The backup file or directory asked for.
        path: PathBuf,
        /// The tenant root.
        root: PathBuf,
    },

    /// The tenant's schema is behind the migrations.
    #[error(transparent)]
    PendingMigration(#[from] PendingMigrationError),

    /// The tenant's schema is newer than any migration this program knows.
    #[error("tenant {tenant} is at schema version {current_version} but this program only knows {latest_version} migration(s) ({}); deploy the newer code, or roll the tenant back to version {latest_version} with a manager built with the newer migrations (`migrate_tenant_to(\"{tenant}\", {latest_version})`, which runs their down.sql and may drop data)", path.display())]
    SchemaAheadOfCode {
        /// The tenant.
        tenant: TenantName,
        /// Its database file.
        path: PathBuf,
        /// The tenant's `user_version`.
        current_version: usize,
        /// The number of migrations this program has.
        latest_version: usize,
    },

    /// `current_connection` was called outside `with_tenant`.
    #[error(
        "no current tenant on this thread; call current_connection inside with_tenant, or use connection(name)"
    )]
    NoTenant,

    /// `with_tenant` for one tenant was nested inside `with_tenant` for another.
    #[error(
        "cannot switch to tenant {requested} inside with_tenant({current}); finish the work for {current} first"
    )]
    TenantSwitchProhibited {
        /// The thread's current tenant.
        current: TenantName,
        /// The tenant that was asked for.
        requested: TenantName,
    },

    /// The process ran out of file descriptors.
    #[error("too many open files while opening tenant {tenant} at {}; lower max_pools or max_connections (or a fleet run's jobs), or raise the file-descriptor limit (ulimit -n)", path.display())]
    TooManyOpenFiles {
        /// The tenant.
        tenant: TenantName,
        /// The file being opened.
        path: PathBuf,
    },

    /// The tenant's database is on a read-only file system and SQLite
    /// cannot open it there: a WAL-mode database needs its `-shm` file,
    /// which a read-only root cannot hold unless it was left there.
    #[error("cannot open tenant {tenant} at {}: the file system is read-only, and SQLite can only open a WAL-mode database there if its -shm file already exists; serve it from a writable root, or copy the root to one (cp -a) and serve the copy", path.display())]
    ReadOnlyRoot {
        /// The tenant.
        tenant: TenantName,
        /// Its database file.
        path: PathBuf,
    },

    /// A migration failed; the tenant's transaction was rolled back.
    #[error("{}", migration_message(tenant, path, (migration.as_deref(), *undoing), *version, source))]
    Migration {
        /// The tenant.
        tenant: TenantName,
        /// Its database file.
        path: PathBuf,
        /// The migration that failed, when known.
        migration: Option<String>,
        /// Whether the step that failed was undoing it (its `down.sql`).
        undoing: bool,
        /// The version the tenant stays at.
        version: usize,
        /// The cause.
        #[source]
        source: Box<rusqlite_migration::Error>,
    },

    /// A rollback needs a `down` step that a migration does not have.
    #[error(
        "cannot roll tenant {tenant} back past migration {migration}: it has no down.sql; add one or restore from a backup"
    )]
    MissingDownMigration {
        /// The tenant.
        tenant: TenantName,
        /// The migration without a down step.
        migration: String,
    },

    /// A requested schema version does not exist.
    #[error(
        "tenant {tenant}: version {requested} is out of range, the migrations go from 0 to {latest}"
    )]
    VersionOutOfRange {
        /// The tenant.
        tenant: TenantName,
        /// The version asked for.
        requested: usize,
        /// The latest version.
        latest: usize,
    },

    /// A fleet run with
    /// [`MigrateOptions::allow_down(false)`](crate::MigrateOptions::allow_down)
    /// met a tenant above its target: reaching the target would run down
    /// migrations, which nobody confirmed. Nothing was done to the tenant.
    #[error(
        "tenant {tenant} is at version {version}, above the target {target}: reaching it runs down migrations, which can drop data, and going down was not allowed; nothing was done to it: allow it with MigrateOptions::allow_down(true)"
    )]
    DownNotAllowed {
        /// The tenant.
        tenant: TenantName,
        /// Its version (read under its lock).
        version: usize,
        /// The run's target.
        target: usize,
    },

    /// A rollback asked for more steps than the tenant has migrations
    /// applied (at version 0: nothing to roll back). Nothing was changed.
    #[error("{}", rollback_message(tenant, *steps, *applied))]
    RollbackTooFar {
        /// The tenant.
        tenant: TenantName,
        /// The steps asked for.
        steps: usize,
        /// The migrations the tenant has applied (its version).
        applied: usize,
    },

    /// The root was laid out with another template or bucket count than
    /// this program's `RootConfig` (recorded in `.tenanted/layout` when the
    /// root was first used). Nothing was read or created.
    #[error("the root {} was laid out with the template `{recorded_template}` and {recorded_buckets} bucket(s), but this program uses `{template}` and {buckets}: its tenants would be looked for, and created, in the wrong places; open it with the recorded layout: RootConfig::template(\"{recorded_template}\") and buckets({recorded_buckets})", root.display())]
    LayoutMismatch {
        /// The root directory.
        root: PathBuf,
        /// The template the root records.
        recorded_template: String,
        /// The bucket count the root records.
        recorded_buckets: String,
        /// This program's template.
        template: String,
        /// This program's bucket count.
        buckets: u32,
    },

    /// The root is in an on-disk format newer than this program knows
    /// (recorded in `.tenanted/layout` by a newer release of tenanted),
    /// whose files or locks this program could get wrong beside it.
    /// Nothing was read or created.
    #[error("the root {} is in on-disk format {found}, written by a newer release of tenanted; this program knows format {known} and could break the newer release's rules working beside it: run this root with the newer release (upgrade this program)", root.display())]
    RootFormatTooNew {
        /// The root directory.
        root: PathBuf,
        /// The format the root records.
        found: String,
        /// The newest format this program knows.
        known: u32,
    },

    /// The root's layout record (`.tenanted/layout`) is not one tenanted
    /// wrote: a line it always has (`format`, `template` or `buckets`) is
    /// missing or unreadable. Nothing was read or created.
    #[error("the root's layout record {} is damaged ({reason}); tenanted read nothing else from the root and changed nothing: restore the file from a backup of the root, or write it again as the three lines `format {format}`, `template TEMPLATE` and `buckets N` with the template and bucket count the root's tenants were created with", path.display())]
    BadLayoutRecord {
        /// The record.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// The format this program writes.
        format: u32,
    },

    /// This program's migration at `version` is not the one the root
    /// applied at that version (recorded in `.tenanted/migrations`): it was
    /// edited, renamed or reordered after it ran.
    #[error("migration {version} of this program is {code}, but the root {} applied {applied} at that version: {}; restore the original, or if the change is deliberate and safe (a migration that failed everywhere and was fixed is: no tenant at that version in `migration_status` of a manager built with the migrations that applied it), accept it with TenantManagerBuilder::accept_migration_changes(true)", root.display(), MIGRATION_CHANGED)]
    MigrationChanged {
        /// The root directory.
        root: PathBuf,
        /// The migration's version (1 is the first).
        version: usize,
        /// The applied migration's name and checksum.
        applied: String,
        /// This program's migration's name and checksum.
        code: String,
    },

    /// The migration set itself is unusable (bad directory, gap in numbering, empty).
    #[error("bad migrations at {}: {reason}", path.display())]
    BadMigrations {
        /// The file or directory at fault.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The seed closure given to `create_tenant_with` failed; nothing was created.
    #[error("seeding tenant {tenant} failed: {cause}; nothing was created at {}: fix the seed and create the tenant again", path.display())]
    Seed {
        /// The tenant.
        tenant: TenantName,
        /// The database file that was not created.
        path: PathBuf,
        /// The seed closure's error (its message is in this error's own;
        /// `source()` does not repeat it).
        cause: BoxError,
    },

    /// SQLite reported an error. The message ends with what to do where
    /// SQLite's code says (a full or read-only disk, a file it cannot open,
    /// a damaged file).
    #[error("{}{operation} failed at {}: {cause}{}", tenant_label(tenant), path.display(), sqlite_next_step(cause))]
    Sqlite {
        /// The tenant, when one is involved.
        tenant: Option<TenantName>,
        /// The database file.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// SQLite's error (its message is in this error's own; `source()`
        /// does not repeat it).
        cause: rusqlite::Error,
    },

    /// A `rusqlite` call in the caller's own code failed, and `?` turned
    /// its error into this one (`From<rusqlite::Error>`), so that a
    /// closure given to [`with_tenant`](crate::TenantManager::with_tenant)
    /// can `?` rusqlite errors and tenanted errors alike. The tenant is the
    /// thread's current one when the error was converted, if any.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// # manager.create_tenant("acme")?;
    /// let result = manager.with_tenant("acme", || -> Result<(), tenanted::Error> {
    ///     let conn = manager.current_connection()?;       // a tenanted::Error
    ///     conn.execute("INSERT INTO nowhere VALUES (1)", [])?; // a rusqlite::Error
    ///     Ok(())
    /// });
    /// let err = result.unwrap_err();
    /// assert!(matches!(err, tenanted::Error::Query { .. }));
    /// assert!(err.to_string().starts_with("tenant acme: a query failed: no such table: nowhere"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[error("{}a query failed: {cause}", tenant_label(tenant))]
    Query {
        /// The thread's current tenant when the error was converted,
        /// unless another tenant's connection was checked out inside the
        /// same `with_tenant` (see the `From` impl).
        tenant: Option<TenantName>,
        /// SQLite's error (its message is in this error's own; `source()`
        /// does not repeat it).
        cause: rusqlite::Error,
    },

    /// A file-system operation failed. The message ends with what to do
    /// where the system's error says (no room, a read-only file system,
    /// no permission).
    #[error("{}{operation} failed at {}: {cause}{}", tenant_label(tenant), path.display(), io_next_step(cause))]
    Io {
        /// The tenant, when one is involved.
        tenant: Option<TenantName>,
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// The operating system's error (its message is in this error's
        /// own; `source()` does not repeat it).
        cause: io::Error,
    },

    /// A write needed more room than the tenant's size limit leaves
    /// (SQLite's `SQLITE_FULL` under `PRAGMA max_page_count`); the
    /// statement was undone. In a transaction, SQLite may keep the
    /// transaction open with its earlier statements (it says it "may or
    /// may not" roll back): roll it back, or commit what came before.
    /// Reads, deletes and writes that fit in freed pages still work.
    #[error("tenant {tenant} is at its size limit: the write needs more than the {limit} bytes allowed, and its database ({}) holds {size} bytes; the statement was undone (in a transaction, its earlier statements may still be pending: roll it back, or commit them): delete data (freed pages are reused) or raise the limit (set_tenant_max_size, `tenanted limit set {tenant} SIZE`)", path.display())]
    QuotaExceeded {
        /// The tenant.
        tenant: TenantName,
        /// Its database file.
        path: PathBuf,
        /// Its size limit in bytes.
        limit: u64,
        /// Its database's size in bytes (page count times page size).
        size: u64,
    },

    /// The file system holding a tenant's database is full (SQLite's
    /// `SQLITE_FULL` with room left under any size limit).
    #[error("{}the file system mounted at {} is full ({available} bytes left) writing {}; nothing was written: free space on it, or move the root to a larger one", tenant_label(tenant), file_system.display(), path.display())]
    DiskFull {
        /// The tenant, when one is involved.
        tenant: Option<TenantName>,
        /// The file being written.
        path: PathBuf,
        /// Where the full file system is mounted.
        file_system: PathBuf,
        /// Bytes left on it when the error was looked at.
        available: u64,
    },

    /// The tenant is suspended: blocked (no connection is handed out), or
    /// read-only (a write was refused).
    #[error(
        "tenant {tenant} is suspended ({mode}): {}; resume it with resume_tenant (`tenanted resume {tenant}`) when that is settled",
        given_reason(reason)
    )]
    TenantSuspended {
        /// The tenant.
        tenant: TenantName,
        /// How it is suspended.
        mode: crate::limits::SuspendMode,
        /// The reason given when it was suspended.
        reason: String,
    },

    /// The root's limits record (`.tenanted/limits`) cannot be read; it
    /// was left as it is.
    #[error("the limits record {} cannot be read (line {line}: {reason}); tenanted changed nothing: restore it from a backup of the root, or fix the line (each is NAME, TAB, bytes or - or unlimited, TAB, - or read-only or blocked, TAB, reason)", path.display())]
    BadLimitsRecord {
        /// The record.
        path: PathBuf,
        /// The line at fault (1 is the first).
        line: usize,
        /// What is wrong with it.
        reason: String,
    },

    /// The closure given to `interact` panicked; its connection went back
    /// to the pool with any open transaction rolled back.
    #[error(
        "the closure run for tenant {tenant} by interact panicked: {message}; any transaction it had open was rolled back"
    )]
    ClosurePanicked {
        /// The tenant.
        tenant: TenantName,
        /// The panic's message.
        message: String,
    },

    /// The closure given to `interact` returned with a transaction still
    /// open; it was rolled back (a pooled connection never goes back
    /// inside one), and what the closure returned was dropped.
    #[error(
        "the closure run for tenant {tenant} by interact returned with a transaction open; it was rolled back: commit or roll back inside the closure"
    )]
    TransactionLeftOpen {
        /// The tenant.
        tenant: TenantName,
    },

    /// A connection to a tenant was asked for from inside the making of
    /// one of its own connections: from a `connection_init` hook. The
    /// connection being made waits for the hook, so the call would wait
    /// for itself: it is refused when the tenant's pool is not open yet or
    /// has no connection idle (one idle is served).
    #[error(
        "a connection to tenant {tenant} was asked for from inside the connection_init hook of one of its own connections ({}); that call would wait for the connection the hook is making: use the connection the hook was given instead", path.display()
    )]
    AskedFromItsOwnHook {
        /// The tenant.
        tenant: TenantName,
        /// Its database file.
        path: PathBuf,
    },

    /// `interact` could not run its closure: no Tokio runtime, or one
    /// shutting down. Nothing was checked out.
    #[error("interact for tenant {tenant} did not run: {reason}")]
    InteractAborted {
        /// The tenant.
        tenant: TenantName,
        /// Why.
        reason: &'static str,
    },

    /// The tenant's connection pool could not hand out a connection in time.
    #[error("no connection for tenant {tenant} ({}) within the connection timeout: {cause}", path.display())]
    Pool {
        /// The tenant.
        tenant: TenantName,
        /// Its database file.
        path: PathBuf,
        /// Why (its message is in this error's own; `source()` does not
        /// repeat it).
        cause: NoConnection,
    },

    /// Replication is configured, but no Litestream answers on its
    /// control socket.
    #[error("Litestream is not running: nothing answers on its control socket {}; start it (`tenanted replicate`) and retry", socket.display())]
    LitestreamNotRunning {
        /// The control socket.
        socket: PathBuf,
    },

    /// An operation that needs the root's replication settings found none
    /// recorded.
    #[error("{operation}: the root {} has no replication configured; configure and start it with `tenanted replicate --replica-url URL` (in code: ReplicationSettings::record, then Replicator::start)", root.display())]
    ReplicationNotConfigured {
        /// The root.
        root: PathBuf,
        /// What needed it ("reading the replication status").
        operation: &'static str,
    },

    /// Replication of a root was not started, or settings for it were not
    /// recorded: another `tenanted replicate` runs on it, or the settings
    /// cannot be followed (a retention with a replica that is not a local
    /// directory). Nothing was changed.
    #[error("replicating the root {} to {url} was refused, and nothing was changed: {reason}", root.display())]
    ReplicationRefused {
        /// The root.
        root: PathBuf,
        /// The replica URL asked for (or recorded).
        url: String,
        /// Why, and what to do.
        reason: String,
    },

    /// Litestream refused or failed a request on its control socket.
    #[error("Litestream refused `{request}` on {} ({}): {message}", socket.display(), if *status == 0 { "no answer".to_owned() } else { format!("HTTP {status}") })]
    Litestream {
        /// The control socket.
        socket: PathBuf,
        /// The request (`register`, `sync`, ...).
        request: String,
        /// Its HTTP status (0 when the exchange itself failed).
        status: u16,
        /// Litestream's message.
        message: String,
    },

    /// A tenant's replica could not be erased (or moved aside) in the
    /// replica store.
    #[error(
        "{}{operation} failed at {url}: {cause}; the erase stays queued in the root, and `tenanted erase-replicas` (or TenantManager::erase_destroyed_replicas) tries again",
        tenant_label(tenant)
    )]
    Replica {
        /// The tenant whose replica it was, when one was being erased.
        tenant: Option<TenantName>,
        /// The replica's URL.
        url: String,
        /// What was being done.
        operation: &'static str,
        /// Why it failed.
        cause: String,
    },

    /// Reading a replica failed: listing its tenants, or `litestream
    /// restore` of one of them.
    #[error(
        "{}{operation} from the replica {url} failed: {reason}",
        tenant_label(tenant)
    )]
    ReplicaRead {
        /// The tenant, when one was being restored.
        tenant: Option<TenantName>,
        /// The replica URL.
        url: String,
        /// What was being done.
        operation: String,
        /// Why it failed, in the words of Litestream or the store.
        reason: String,
    },
}

impl From<rusqlite::Error> for Error {
    /// [`Error::Query`], naming the thread's current tenant (inside
    /// [`with_tenant`](crate::TenantManager::with_tenant)), unless a
    /// connection to another tenant was checked out inside the same
    /// `with_tenant`: the statement may have been either's, and the error
    /// names none rather than the wrong one. Outside `with_tenant` it
    /// names none either. (A connection to another tenant checked out
    /// before `with_tenant` and used inside it is not seen.) To name the tenant and its file whatever the
    /// context, convert with
    /// [`TenantConnection::diagnose`](crate::TenantConnection::diagnose)
    /// on the connection the statement ran on.
    fn from(cause: rusqlite::Error) -> Self {
        Error::Query {
            tenant: crate::context::query_tenant(),
            cause,
        }
    }
}

/// What a [`Error::MigrationChanged`] means, said the same way by the
/// library and the CLI.
const MIGRATION_CHANGED: &str = "its up.sql was edited, it was renamed, or another migration was inserted before it (a branch merged with an older timestamp: give that one a name after the last migration applied) after it ran, so tenants reported current may hold another schema (a changed down.sql does not count: it is not what was applied)";

/// SQLite's own message, without the whole migration script that
/// `rusqlite_migration` and `rusqlite` put around it (still available
/// through `source()`).
pub(crate) fn concise(e: &rusqlite_migration::Error) -> String {
    match e {
        rusqlite_migration::Error::RusqliteError { err, .. } => match err {
            rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
            rusqlite::Error::SqliteFailure(_, Some(msg)) => msg.clone(),
            other => other.to_string(),
        },
        // A hook's own words (the foreign-key check after a step).
        rusqlite_migration::Error::Hook(message) => message.clone(),
        other => other.to_string(),
    }
}

/// A suspension's reason as said in a message: one line, and something
/// even when none was given.
fn given_reason(reason: &str) -> std::borrow::Cow<'_, str> {
    let one_line: std::borrow::Cow<'_, str> = match reason.contains(char::is_control) {
        true => reason.replace(char::is_control, " ").into(),
        false => reason.into(),
    };
    match one_line.trim() {
        "" => "no reason was given".into(),
        trimmed if trimmed.len() == one_line.len() => one_line,
        trimmed => trimmed.to_owned().into(),
    }
}

/// `"tenant NAME: "`, or nothing when no tenant is involved.
/// What blocked the way to a directory beneath the root: an entry that is
/// not one. Carried inside the `io::Error` of the step that met it (see
/// `fs/dir.rs`) and turned into [`Error::NotADirectory`] by
/// `Error::io`.
#[derive(Debug)]
pub(crate) struct Blocked {
    /// The entry.
    pub(crate) path: PathBuf,
    /// What it is ("a symbolic link").
    pub(crate) found: &'static str,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is {}, not a directory",
            self.path.display(),
            self.found
        )
    }
}

impl std::error::Error for Blocked {}

/// What stood where a lock file belongs: not a regular file. Carried
/// inside the `io::Error` of the lock (see `fs/lock.rs`) and turned into
/// [`Error::PlantedLockFile`] by `Error::io`.
#[derive(Debug)]
pub(crate) struct PlantedLock {
    /// The lock file's path.
    pub(crate) path: PathBuf,
    /// What is there ("a symbolic link").
    pub(crate) found: &'static str,
}

impl fmt::Display for PlantedLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is {}, not a lock file",
            self.path.display(),
            self.found
        )
    }
}

impl std::error::Error for PlantedLock {}

/// A tenant's lock file that could not be taken, as the cause of an I/O
/// error that names the tenant's database: the database is what the
/// reader knows, the lock file is the step that failed.
#[derive(Debug)]
pub(crate) struct LockStep {
    /// The lock file.
    pub(crate) file: PathBuf,
    /// Why it could not be taken.
    pub(crate) cause: io::Error,
}

impl LockStep {
    /// This failure as an I/O error of the same kind. A link on the way
    /// and descriptor exhaustion stay as they are: they are errors of
    /// their own (see [`Error::io`]).
    pub(crate) fn into_io(self) -> io::Error {
        if blocked(&self.cause).is_some()
            || planted_lock(&self.cause).is_some()
            || is_fd_exhaustion(&self.cause)
        {
            return self.cause;
        }
        io::Error::new(self.cause.kind(), self)
    }
}

impl fmt::Display for LockStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "its lock file {} could not be taken: {}",
            self.file.display(),
            self.cause
        )
    }
}

impl std::error::Error for LockStep {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

/// The [`Blocked`] inside an I/O error, if that is what it is.
pub(crate) fn blocked(e: &io::Error) -> Option<&Blocked> {
    e.get_ref()?.downcast_ref::<Blocked>()
}

/// The [`PlantedLock`] inside an I/O error, if that is what it is.
fn planted_lock(e: &io::Error) -> Option<&PlantedLock> {
    e.get_ref()?.downcast_ref::<PlantedLock>()
}

/// What to do after SQLite's error `e`, as the end of a message, when its
/// code says (nothing otherwise: the operation's own words must do).
fn sqlite_next_step(e: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode as Code;
    match e.sqlite_error_code() {
        Some(Code::DiskFull) => {
            "; the file system holding it is full (or a size limit was reached): free space on it and retry"
        }
        Some(Code::SystemIoFailure) if lock_or_shared_memory_failed(e) => {
            "; SQLite could not lock the file or open its -shm, which it does even to read a WAL database: this user may read the tenant but not write it (give this user write permission to the tenant's directory and files, or run as the root's owner), or the file system takes no locks (some network file systems); then retry"
        }
        Some(Code::SystemIoFailure) => {
            "; the disk failed the read or write, or ran out of room, or this user may not write the files SQLite keeps beside it (-wal, -shm): look at the file system holding it (`df`, the kernel log) and at those files' permissions, and retry"
        }
        Some(Code::ReadOnly) => {
            "; the file or its file system is read-only: make it writable for this user and retry"
        }
        Some(Code::CannotOpen) | Some(Code::PermissionDenied) => {
            "; check that the file and its directory exist and that this user may read and write both, then retry"
        }
        Some(Code::DatabaseCorrupt) | Some(Code::NotADatabase) => {
            "; the file is damaged: restore it from a backup"
        }
        // Not a wait at all: SQLite refuses at once to turn a read
        // transaction into a write once another connection has committed
        // since it began reading (no busy_timeout can help: an outside
        // probe was told to raise it).
        Some(Code::DatabaseBusy) if read_went_stale(e) => {
            "; another connection committed to the tenant after this transaction began reading, so SQLite refused at once to let it write (no wait would help): roll back and run the whole transaction again, and start transactions that will write with BEGIN IMMEDIATE (rusqlite: TransactionBehavior::Immediate) so that they take the write lock before they read"
        }
        // A statement's own wait for another connection's write lock ran
        // out (SQLITE_LOCKED is a conflict within one connection: not this).
        Some(Code::DatabaseBusy) => {
            "; this connection waited for the tenant's write lock longer than it waits (busy_timeout): another connection held it that long (a long transaction, another process's migration or restore), or other writers kept taking it in turn (SQLite's wait is not first come, first served: under a steady stream of short writes, a waiter can lose every time): retry, keep write transactions short, write from fewer threads or processes at once, or, for a pool's connections, raise busy_timeout"
        }
        _ => "",
    }
}

/// What to do about a tenant whose own directory holds no database file
/// (`found` at its `path`), `cleanup` and `create` said in the reader's
/// words. Something other than nothing there (a directory, a special
/// file) is not tenanted's, and neither a sweep nor a create touches it:
/// it must be moved out first (advice that said "run cleanup" went round
/// in a circle: an outside probe).
pub fn missing_database_way_out(
    found: &str,
    path: &Path,
    (cleanup, create): (&str, &str),
) -> String {
    let then = format!(
        "run {cleanup} to remove the directory if nothing else is in it, {create} to make the tenant again in it, or move the directory out of the root (the way when a -wal or -journal holding commits is left in it: they are the missing database's last writes, which cleanup and create both keep)"
    );
    match found {
        "nothing" => then,
        _ => format!(
            "move {} out of the root first (tenanted did not make it, and neither cleanup nor create touches it), then {then}",
            path.display()
        ),
    }
}

/// Whether SQLite's `SQLITE_BUSY` `e` is `SQLITE_BUSY_SNAPSHOT`: a read
/// transaction of a WAL database that may not become a write transaction.
fn read_went_stale(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(failure, _)
        if failure.extended_code == rusqlite::ffi::SQLITE_BUSY_SNAPSHOT)
}

/// Whether SQLite's I/O error `e` was taking a lock on the file, or one
/// of its shared-memory file's (`-shm`: opening, sizing, mapping or
/// locking it): what a user who may read the root but not write it meets
/// first (a file SQLite could open only read-only refuses its write
/// locks: `SQLITE_IOERR_LOCK`, an outside probe's `nobody`).
fn lock_or_shared_memory_failed(e: &rusqlite::Error) -> bool {
    use rusqlite::ffi;
    let extended = match e {
        rusqlite::Error::SqliteFailure(failure, _) => failure.extended_code,
        _ => return false,
    };
    [
        ffi::SQLITE_IOERR_LOCK,
        ffi::SQLITE_IOERR_SHMOPEN,
        ffi::SQLITE_IOERR_SHMSIZE,
        ffi::SQLITE_IOERR_SHMMAP,
        ffi::SQLITE_IOERR_SHMLOCK,
    ]
    .contains(&extended)
}

/// What to do after the system's error `e`, as the end of a message, when
/// it says (nothing otherwise).
fn io_next_step(e: &io::Error) -> &'static str {
    use rustix::io::Errno;
    // A lock file's failure carries the system's error inside (`LockStep`):
    // an outside probe saw a read-only root's create say why, not what to do.
    let code = (e.raw_os_error()).or_else(|| {
        let step = e.get_ref()?.downcast_ref::<LockStep>()?;
        step.cause.raw_os_error()
    });
    match code.map(Errno::from_raw_os_error) {
        Some(Errno::NOSPC | Errno::DQUOT) => "; free space on that file system and retry",
        Some(Errno::ROFS) => "; the file system is read-only: remount it read-write and retry",
        Some(Errno::ACCESS | Errno::PERM) => {
            "; give this user permission to it (its directory too) and retry"
        }
        // An open that follows no link met one (`O_NOFOLLOW`): said bare,
        // "Too many levels of symbolic links" (an outside probe).
        Some(Errno::LOOP) => {
            "; a symbolic link stands there or on the way to it, and tenanted follows none inside the root: put the file itself there (or remove the link) and retry"
        }
        _ => "",
    }
}

fn tenant_label(tenant: &Option<TenantName>) -> String {
    tenant
        .as_ref()
        .map_or_else(String::new, |t| format!("tenant {t}: "))
}

/// A failed migration, said for the way it ran: an `up.sql` (fix it, or
/// the tenant's data, and what the root's record of migrations needs), or
/// a `down.sql` (fix it and roll back again: down scripts are not in the
/// record).
fn migration_message(
    tenant: &TenantName,
    path: &Path,
    (migration, undoing): (Option<&str>, bool),
    version: usize,
    source: &rusqlite_migration::Error,
) -> String {
    let cause = concise(source);
    let path = path.display();
    if undoing {
        let what = migration.map_or_else(|| "a migration".to_owned(), |m| format!("migration {m}"));
        return format!(
            "undoing {what} of tenant {tenant} ({path}) failed: {cause}; its down.sql was rolled back and the tenant stays at version {version}; fix that down.sql and roll back (or migrate --to) again: down scripts are not part of the root's record of migrations, so editing one needs no --accept-migration-changes"
        );
    }
    let step = migration.map(|m| format!(" in {m}")).unwrap_or_default();
    format!(
        "migrating tenant {tenant} ({path}) failed{step}: {cause}; the tenant stays at version {version}; fix the migration and run migrate again, or, if it fails on this tenant's data alone (other tenants took it), fix the data and run migrate again (the root recorded the failed one as the migration for its version before it ran: if no tenant applied it, as `migration_status` (`tenanted status --all`) shows, run the fixed one once with accept_migration_changes, `tenanted migrate --accept-migration-changes`; if some did, add a new migration instead of editing it)"
    )
}

fn rollback_message(tenant: &TenantName, steps: usize, applied: usize) -> String {
    if applied == 0 {
        format!("tenant {tenant} is at version 0: there is nothing to roll back")
    } else {
        format!(
            "cannot roll tenant {tenant} back {steps} step(s): it has only {applied} migration(s) applied; ask for at most {applied}"
        )
    }
}

impl Error {
    /// The tenant this error is about, if any.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// let err = manager.connection("nobody").unwrap_err();
    /// assert_eq!(err.tenant().map(|t| t.as_str()), Some("nobody"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tenant(&self) -> Option<&TenantName> {
        match self {
            Error::TenantExists { tenant, .. }
            | Error::TenantDoesNotExist { tenant, .. }
            | Error::TenantBusy { tenant, .. }
            | Error::TenantBeingDestroyed { tenant, .. }
            | Error::AskedFromItsOwnHook { tenant, .. }
            | Error::DamagedTenant { tenant, .. }
            | Error::MissingDatabase { tenant, .. }
            | Error::NotATenantDatabase { tenant, .. }
            | Error::PlantedSidecar { tenant, .. }
            | Error::ForeignFiles { tenant, .. }
            | Error::BadBackup { tenant, .. }
            | Error::SchemaAheadOfCode { tenant, .. }
            | Error::TooManyOpenFiles { tenant, .. }
            | Error::ReadOnlyRoot { tenant, .. }
            | Error::Migration { tenant, .. }
            | Error::MissingDownMigration { tenant, .. }
            | Error::VersionOutOfRange { tenant, .. }
            | Error::RollbackTooFar { tenant, .. }
            | Error::DownNotAllowed { tenant, .. }
            | Error::Seed { tenant, .. }
            | Error::QuotaExceeded { tenant, .. }
            | Error::TenantSuspended { tenant, .. }
            | Error::ClosurePanicked { tenant, .. }
            | Error::TransactionLeftOpen { tenant }
            | Error::InteractAborted { tenant, .. }
            | Error::Pool { tenant, .. } => Some(tenant),
            Error::PendingMigration(e) => Some(&e.tenant),
            Error::TenantSwitchProhibited { requested, .. } => Some(requested),
            Error::Sqlite { tenant, .. }
            | Error::Query { tenant, .. }
            | Error::Io { tenant, .. }
            | Error::BackupInsideRoot { tenant, .. }
            | Error::Encryption { tenant, .. }
            | Error::ReplicaRead { tenant, .. }
            | Error::OrphanedCommits { tenant, .. }
            | Error::DiskFull { tenant, .. }
            | Error::NotADirectory { tenant, .. }
            | Error::StrayEntry { tenant, .. }
            | Error::PlantedLockFile { tenant, .. } => tenant.as_ref(),
            Error::BadTenantName { .. }
            | Error::BadTemplate { .. }
            | Error::NoTenant
            | Error::BadMigrations { .. }
            | Error::LayoutMismatch { .. }
            | Error::RootFormatTooNew { .. }
            | Error::BadLayoutRecord { .. }
            | Error::MigrationChanged { .. }
            | Error::LitestreamNotRunning { .. }
            | Error::ReplicationNotConfigured { .. }
            | Error::ReplicationRefused { .. }
            | Error::Litestream { .. }
            | Error::Replica { .. }
            | Error::BadLimitsRecord { .. } => None,
        }
    }

    pub(crate) fn io(
        tenant: Option<&TenantName>,
        path: impl Into<PathBuf>,
        operation: &'static str,
        cause: io::Error,
    ) -> Self {
        // A link or a file on the way into the root is its own error,
        // whichever step met it; so is a wait that reached its deadline.
        if let (Some(tenant), Some(wait)) = (tenant, busy(&cause)) {
            return Error::busy(tenant, path, wait);
        }
        if let Some(Blocked { path, found }) = blocked(&cause) {
            return Error::NotADirectory {
                tenant: tenant.cloned(),
                path: path.clone(),
                found,
            };
        }
        if let Some(PlantedLock { path, found }) = planted_lock(&cause) {
            return Error::PlantedLockFile {
                tenant: tenant.cloned(),
                path: path.clone(),
                found,
            };
        }
        let path = path.into();
        match (tenant, is_fd_exhaustion(&cause)) {
            (Some(tenant), true) => Error::TooManyOpenFiles {
                tenant: tenant.clone(),
                path,
            },
            _ => Error::Io {
                tenant: tenant.cloned(),
                path,
                operation,
                cause,
            },
        }
    }

    /// This error, naming `tenant` if it names none: a root-wide step
    /// taken for the tenant's operation (the replication record looked
    /// at for a destroy, the limits record a destroy or create drops its
    /// line from, the replica a destroy erases from), said as that
    /// operation's (a wait that ran out there is the tenant's
    /// `TenantBusy`).
    pub(crate) fn naming(self, tenant: &TenantName) -> Error {
        match self {
            Error::Io {
                tenant: None,
                path,
                operation,
                cause,
            } => Error::io(Some(tenant), path, operation, cause),
            Error::NotADirectory {
                tenant: None,
                path,
                found,
            } => Error::NotADirectory {
                tenant: Some(tenant.clone()),
                path,
                found,
            },
            Error::Replica {
                tenant: None,
                url,
                operation,
                cause,
            } => Error::Replica {
                tenant: Some(tenant.clone()),
                url,
                operation,
                cause,
            },
            Error::ReplicaRead {
                tenant: None,
                url,
                operation,
                reason,
            } => Error::ReplicaRead {
                tenant: Some(tenant.clone()),
                url,
                operation,
                reason,
            },
            e => e,
        }
    }

    /// Whether this says the tenant is not there: never created, or
    /// destroyed (or being destroyed) since it was named or listed. A
    /// fleet run skips such a tenant, as `tenants()` would skip it now.
    pub(crate) fn says_tenant_gone(&self) -> bool {
        matches!(
            self,
            Error::TenantDoesNotExist { .. } | Error::TenantBeingDestroyed { .. }
        )
    }

    /// `TenantBusy` for `tenant` (whose database is `path`) after `wait`.
    pub(crate) fn busy(tenant: &TenantName, path: impl Into<PathBuf>, wait: Busy) -> Self {
        Error::TenantBusy {
            tenant: tenant.clone(),
            path: path.into(),
            waited_for: wait.waited_for,
            checked_out: 0,
            other_process: wait.other_process,
            waited: wait.waited,
        }
    }

    pub(crate) fn sqlite(
        tenant: Option<&TenantName>,
        path: impl Into<PathBuf>,
        operation: &'static str,
        cause: rusqlite::Error,
    ) -> Self {
        Error::Sqlite {
            tenant: tenant.cloned(),
            path: path.into(),
            operation,
            cause,
        }
    }
}

/// EMFILE (per process) or ENFILE (system wide): the same number on Linux and macOS.
pub(crate) fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24))
}

/// Another process that has a tenant's database open, as SQLite's locks
/// on the file show it.
///
/// ```
/// let other = tenanted::OtherProcess { pid: Some(4242) };
/// assert_eq!(other.to_string(), "another process (pid 4242)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtherProcess {
    /// Its process id, when the kernel reports one.
    pub pid: Option<u32>,
}

impl fmt::Display for OtherProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "another process (pid {pid})"),
            None => f.write_str("another process"),
        }
    }
}

/// Why a tenant's pool handed out no connection within
/// `connection_timeout` ([`Error::Pool`]).
///
/// ```
/// let cause = tenanted::NoConnection::AllInUse { max_connections: 4 };
/// assert!(cause.to_string().starts_with("all 4 connections"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum NoConnection {
    /// Every connection the pool may open is open and checked out.
    AllInUse {
        /// The pool's `max_connections`.
        max_connections: u32,
    },
    /// A new connection was needed, and opening it failed: the last
    /// failure during the wait.
    OpenFailed(Arc<dyn StdError + Send + Sync>),
    /// The tenant had no pool yet, and another thread opening it had not
    /// finished when the wait ended.
    StillOpening {
        /// How long this caller waited for that thread.
        waited: Duration,
    },
}

impl fmt::Display for NoConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoConnection::AllInUse { max_connections } => write!(
                f,
                "all {max_connections} connections of its pool are open and in use; raise max_connections or connection_timeout, or release connections sooner"
            ),
            NoConnection::OpenFailed(e) => write!(
                f,
                "opening a new connection failed: {e}; fix what the error names, then retry"
            ),
            NoConnection::StillOpening { waited } => write!(
                f,
                "another thread has been opening the tenant for {waited:.1?} and has not finished: a connection_init hook is slow, or waits for another tenant whose own hook waits for this one (break that cycle); if first opens are slow (auto_migrate of a large tenant), raise connection_timeout"
            ),
        }
    }
}

fn busy_message(
    tenant: &TenantName,
    path: &Path,
    waited_for: WaitedFor,
    checked_out: usize,
    other: Option<&OtherProcess>,
    waited: Duration,
) -> String {
    let holder = holder_phrase(waited_for, checked_out, other);
    let path = path.display();
    // A root-wide lock's path is not the tenant's: say which it is.
    let left = match waited_for {
        WaitedFor::KeyChange | WaitedFor::RootRecord | WaitedFor::TemplateBuild => {
            format!("the tenant was left intact (the lock waited for is the root's, {path})")
        }
        _ => format!("the tenant at {path} was left intact"),
    };
    format!(
        "tenant {tenant} is busy: {holder} after {waited:?} of waiting; nothing was changed, {left}: {}",
        advice(waited_for)
    )
}

/// A tenant's schema is behind the migrations this program knows.
///
/// Returned by [`TenantManager::connection`](crate::TenantManager::connection)
/// when the tenant's pool is created, unless the manager was built with
/// `auto_migrate(true)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMigrationError {
    /// The tenant.
    pub tenant: TenantName,
    /// Its database file.
    pub path: PathBuf,
    /// The tenant's schema version (`user_version`).
    pub current_version: usize,
    /// The latest version the migrations reach.
    pub latest_version: usize,
    /// Names of the migrations not yet applied, in order.
    pub pending: Vec<String>,
}

impl fmt::Display for PendingMigrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tenant {} has {} pending migration(s) (at version {} of {}: {}); migrate it (TenantManager::migrate_tenant(\"{}\"), or migrate_all) before opening it",
            self.tenant,
            self.pending.len(),
            self.current_version,
            self.latest_version,
            self.pending.join(", "),
            self.tenant,
        )
    }
}

impl StdError for PendingMigrationError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message of an error and its sources, as a tool printing the
    /// chain (anyhow's `{:#}`, eyre) shows it.
    fn chain(e: &dyn StdError) -> String {
        let mut text = e.to_string();
        let mut next = e.source();
        while let Some(cause) = next {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            next = cause.source();
        }
        text
    }

    #[test]
    fn a_cause_is_said_once_even_when_the_chain_is_printed() {
        let tenant = TenantName::new("acme").unwrap();
        let io = Error::io(
            Some(&tenant),
            "/r/acme.db",
            "opening",
            io::Error::other("boom"),
        );
        let sqlite = Error::sqlite(
            Some(&tenant),
            "/r/acme.db",
            "reading",
            rusqlite::Error::InvalidQuery,
        );
        for e in [io, sqlite] {
            let text = chain(&e);
            assert_eq!(text, e.to_string(), "the cause is repeated: {text}");
            assert!(text.starts_with("tenant acme: "), "{text}");
        }
    }

    /// A full or read-only disk, a file SQLite cannot open or a damaged
    /// one, a refused permission: the message ends with what to do.
    #[test]
    fn a_sqlite_or_system_error_says_what_to_do_when_its_code_tells() {
        let tenant = TenantName::new("acme").unwrap();
        let sqlite = |code| {
            let cause = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
            Error::sqlite(Some(&tenant), "/r/acme.db", "enabling WAL", cause).to_string()
        };
        let io = |code| {
            let cause = io::Error::from_raw_os_error(code);
            Error::io(Some(&tenant), "/r/acme.db", "writing", cause).to_string()
        };
        let said = [
            (
                sqlite(rusqlite::ffi::SQLITE_FULL),
                "free space on it and retry",
            ),
            (
                sqlite(rusqlite::ffi::SQLITE_IOERR),
                "look at the file system",
            ),
            (sqlite(rusqlite::ffi::SQLITE_READONLY), "make it writable"),
            (
                sqlite(rusqlite::ffi::SQLITE_CANTOPEN),
                "may read and write both",
            ),
            (
                sqlite(rusqlite::ffi::SQLITE_NOTADB),
                "restore it from a backup",
            ),
            (sqlite(rusqlite::ffi::SQLITE_BUSY), "raise busy_timeout"),
            (
                io(rustix::io::Errno::NOSPC.raw_os_error()),
                "free space on that file system",
            ),
            (
                Error::io(
                    Some(&tenant),
                    "/r/acme.db",
                    "creating the tenant",
                    LockStep {
                        file: "/r/.acme.lock".into(),
                        cause: io::Error::from_raw_os_error(rustix::io::Errno::ROFS.raw_os_error()),
                    }
                    .into_io(),
                )
                .to_string(),
                "remount it read-write",
            ),
            (
                io(rustix::io::Errno::ROFS.raw_os_error()),
                "remount it read-write",
            ),
            (
                io(rustix::io::Errno::ACCESS.raw_os_error()),
                "give this user permission",
            ),
        ];
        for (message, next_step) in said {
            assert!(message.starts_with("tenant acme: "), "{message}");
            let (at, step) = (message.find("/r/acme.db"), message.find(next_step));
            assert!(at.is_some() && step > at, "{message}");
        }
        // No advice where the code says nothing.
        assert!(sqlite(rusqlite::ffi::SQLITE_CONSTRAINT).ends_with("constraint failed"));
    }

    /// `suspend_tenant` takes any reason; an empty one read "suspended
    /// (blocked): ; resume it", and one with a newline broke the message
    /// (and a log line) in two (an outside probe).
    #[test]
    fn a_suspension_is_said_on_one_line_with_a_reason() {
        let said = |reason: &str| {
            Error::TenantSuspended {
                tenant: TenantName::new("acme").unwrap(),
                mode: crate::limits::SuspendMode::Blocked,
                reason: reason.to_string(),
            }
            .to_string()
        };
        assert!(said("").contains("(blocked): no reason was given; resume"));
        assert!(said("\u{7}").contains("(blocked): no reason was given; resume"));
        assert!(said("unpaid\nacme blocked").contains("(blocked): unpaid acme blocked; resume"));
        assert!(said("invoice 2026-11").contains("(blocked): invoice 2026-11; resume"));
    }

    /// A wait for a root-wide lock (the keys directory, a root record) does
    /// not call that lock "the tenant" (an outside probe).
    #[test]
    fn a_root_wide_lock_is_not_said_to_be_the_tenant() {
        let tenant = TenantName::new("acme").unwrap();
        let said = |waited_for, path| {
            let wait = Busy {
                waited_for,
                other_process: Some(OtherProcess { pid: Some(4242) }),
                waited: Duration::from_secs(5),
            };
            Error::busy(&tenant, path, wait).to_string()
        };
        let keys = said(WaitedFor::KeyChange, "/r/.tenanted/keys");
        assert!(
            keys.contains("still held the root's keys directory"),
            "{keys}"
        );
        assert!(
            keys.contains("the lock waited for is the root's, /r/.tenanted/keys"),
            "{keys}"
        );
        assert!(!keys.contains("the tenant at /r/.tenanted/keys"), "{keys}");
        let record = said(WaitedFor::RootRecord, "/r/.tenanted/limits.lock");
        assert!(
            record.contains("was still recording the root's description"),
            "{record}"
        );
        assert!(!record.contains("the tenant at"), "{record}");
        let own = said(WaitedFor::Restore, "/r/0f/acme/main.sqlite3");
        assert!(
            own.contains("the tenant at /r/0f/acme/main.sqlite3 was left intact"),
            "{own}"
        );
    }

    #[test]
    fn an_encryption_error_does_not_call_a_database_a_key() {
        let said = Error::Encryption {
            tenant: Some(TenantName::new("acme").unwrap()),
            path: "/r/0f/acme/main.sqlite3".into(),
            reason: "no key is kept here".to_owned(),
        }
        .to_string();
        assert!(!said.contains("key /r/0f"), "{said}");
        assert!(
            said.contains("/r/0f/acme/main.sqlite3: no key is kept here"),
            "{said}"
        );
    }

    #[test]
    fn results_stay_small_for_the_hot_path() {
        assert!(std::mem::size_of::<super::Error>() <= 128);
    }
}
