//! [`TenantManager`]: the facade. Each method validates the name, then
//! hands the work to the layer that does it: `paths` (where files are),
//! `storage` (files on disk), `migrate` (schemas), `pool` (connections).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Transaction;

use crate::backup::{
    self, BackupOptions, BackupOutcome, BackupReport, RestoreOptions, RestoreOutcome,
};
use crate::builder::TenantManagerBuilder;
use crate::busy::WaitedFor;
use crate::context;
use crate::error::{BoxError, Error, Result};
use crate::fs::Patience;
use crate::limits::Limits;
use crate::migrate::{
    self, MigrateOptions, MigrationOutcome, MigrationPlan, MigrationReport, Migrations,
    StatusReport, TenantStatus,
};
use crate::name::TenantName;
use crate::paths::{RootConfig, Tenants};
use crate::pool::{
    self, ConnectorThreads, DestroyGuard, OpenConfig, PoolCache, PoolStats, TenantConnection,
    WatchSettings, Watcher, start_connector,
};
use crate::replication::Followed;
use crate::root_description::{self, RootDescription};
use crate::storage::{self, CreateReport, Existing};

/// The least time a destroy's erase of its replica in a remote store
/// gets, however long the destroy waited before it: a healthy store
/// erases a replica well within it.
const ERASE_AT_LEAST: Duration = Duration::from_secs(1);

/// The facade's step before a tenant's first write: the root described.
type RecordFirst<'a> = dyn Fn(&Patience) -> Result<()> + Sync + 'a;

/// Gives every tenant its own SQLite database and hands out pooled
/// connections to them.
///
/// Cheap to clone: clones share the pools. Dropping the last clone closes
/// every pool and stops the background threads, and waits (a second at
/// most, and not while a connection checked out outlives it) until they
/// have ended: a process that exits while a thread is still ending can
/// corrupt its heap (see `docs/design.md`).
///
/// ```
/// use tenanted::{Migration, Migrations, RootConfig, TenantManager};
///
/// let dir = tempfile::tempdir()?;
/// let migrations = Migrations::new(vec![
///     Migration::new("create_notes", "CREATE TABLE notes (body TEXT NOT NULL);"),
/// ]);
/// let manager = TenantManager::builder(RootConfig::new(dir.path()), migrations).build()?;
///
/// manager.create_tenant("acme")?;
/// let conn = manager.connection("acme")?;
/// conn.execute("INSERT INTO notes (body) VALUES ('hello')", [])?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TenantManager {
    inner: Arc<Inner>,
}

struct Inner {
    // Dropped first: stops the watcher before the pools go.
    _watcher: Watcher,
    root: RootConfig,
    migrations: Migrations,
    cache: Arc<PoolCache>,
    open: OpenConfig,
    /// Every tenant's size limit and suspension (shared with `open`).
    limits: Arc<Limits>,
    destroy_timeout: Duration,
    lock_timeout: Duration,
    accept_migration_changes: bool,
    /// The replication recorded in the root, followed as it changes.
    replication: Followed,
    /// The root's description, checked and recorded (see
    /// `root_description/description.rs`).
    description: RootDescription,
    /// The key provider it was built with: the process's registry serves
    /// it to the root's other managers while this one lives (see
    /// `crypt/keyring.rs`).
    #[cfg(feature = "encryption")]
    _key_provider: Option<Arc<dyn crate::crypt::KeyProvider>>,
    // Dropped last: lets go of the pools, then waits for the connector
    // threads to end (see `pool/connector.rs`).
    _connector_threads: ConnectorThreads,
}

impl TenantManager {
    /// Starts configuring a manager for the tenants under `root`, whose
    /// schema is `migrations`.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let migrations = tenanted::Migrations::from_dir(
    ///     concat!(env!("CARGO_MANIFEST_DIR"), "/schema/migrations"),
    /// )?;
    /// let manager = tenanted::TenantManager::builder(
    ///     tenanted::RootConfig::new(dir.path()),
    ///     migrations,
    /// )
    /// .max_pools(20)
    /// .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(root: RootConfig, migrations: Migrations) -> TenantManagerBuilder {
        TenantManagerBuilder::new(root, migrations)
    }

    pub(crate) fn from_builder(b: TenantManagerBuilder) -> Result<Self> {
        b.root.validate()?;
        b.root.refuse_dangling_link()?;
        // Only a check: building a manager writes nothing.
        let history = b.migrations.history();
        let description =
            RootDescription::new(b.root.layout_record(), history, b.accept_migration_changes);
        description.check()?;
        let cache = Arc::new(PoolCache::new(b.max_pools));
        let limits = Arc::new(Limits::load(b.root.root_dir(), b.default_max_size)?);
        let watch = WatchSettings {
            interval: b.watch_interval,
            sweep_interval: b.sweep_interval,
            idle_timeout: b.idle_timeout,
            latest_version: b.migrations.latest_version(),
            root: b.root.root_dir().to_path_buf(),
        };
        let watcher = Watcher::start(&cache, watch, Arc::clone(&limits))
            .map_err(|e| Error::io(None, b.root.root_dir(), "starting the watcher thread", e))?;
        let (connector, connector_threads) = start_connector(b.connector_threads, &cache);
        let open = OpenConfig {
            max_connections: b.max_connections,
            connection_timeout: b.connection_timeout,
            busy_timeout: b.busy_timeout,
            init: b.init,
            auto_migrate: b.auto_migrate,
            lock_timeout: b.lock_timeout,
            connector,
            root: b.root.root_dir().to_path_buf(),
            owns_dir: b.root.owns_directory()?,
            limits: Arc::clone(&limits),
        };
        let replication = Followed::new(&b.root)?;
        let inner = Inner {
            _watcher: watcher,
            root: b.root,
            migrations: b.migrations,
            cache,
            open,
            limits,
            destroy_timeout: b.destroy_timeout,
            lock_timeout: b.lock_timeout,
            accept_migration_changes: b.accept_migration_changes,
            replication,
            description,
            #[cfg(feature = "encryption")]
            _key_provider: b.key_provider,
            _connector_threads: connector_threads,
        };
        Ok(TenantManager {
            inner: Arc::new(inner),
        })
    }

    /// Where the tenants live.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// assert_eq!(manager.root().root_dir(), dir.path());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn root(&self) -> &RootConfig {
        &self.inner.root
    }

    /// The schema's migrations.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// assert_eq!(manager.migrations().latest_version(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn migrations(&self) -> &Migrations {
        &self.inner.migrations
    }

    /// Checks the root's recorded layout and migration history against
    /// this manager's; just before a first write to a tenant (`record`:
    /// how long another recording process is waited for), records what
    /// the root lacks.
    /// The root's checks before a status is read: its description, and
    /// the migrations it applied against this manager's.
    pub(crate) fn check_root_for_status(&self) -> Result<()> {
        // Accepting changed migrations records them, whichever call checks
        // them first (building a manager writes nothing).
        let accept = self.inner.accept_migration_changes;
        let record = accept.then(|| Patience::new(self.inner.lock_timeout));
        self.describe_root(record.as_ref())
    }

    fn describe_root(&self, record: Option<&Patience>) -> Result<()> {
        match record {
            Some(patience) => self.inner.description.record_before_write(patience),
            None => self.inner.description.check(),
        }
    }

    /// Records the root's description now (its layout, and the migrations
    /// this manager brings, where the root lacks them), creating the root
    /// directory if needed: what `tenanted init` does. Every first write to
    /// a tenant records it anyway; a call that is refused never does.
    ///
    /// # Errors
    ///
    /// [`Error::LayoutMismatch`] or [`Error::MigrationChanged`] when the
    /// root describes itself otherwise; [`Error::Io`] if the root cannot
    /// be made or the records written (or another process held their lock
    /// past `lock_timeout`).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path().join("root")), tenanted::Migrations::new(vec![])).build()?;
    /// manager.record_root()?;
    /// assert!(dir.path().join("root/.tenanted/layout").is_file());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record_root(&self) -> Result<()> {
        let patience = Patience::new(self.inner.lock_timeout);
        self.inner.description.record_now(&patience)
    }

    /// Checks the root's description before a call that may write, unless
    /// this manager has already checked and recorded it.
    fn check_root(&self) -> Result<()> {
        self.inner.description.check_unless_described()
    }

    /// What a migration of one tenant waits for and does before it
    /// writes: `lock_timeout`, and the root described.
    fn prelude<'a>(&'a self, describe: &'a RecordFirst<'a>) -> migrate::Prelude<'a> {
        migrate::Prelude {
            wait: self.inner.lock_timeout,
            first_write: describe,
        }
    }

    /// `TenantExists` now if `tenant` is already there: a create (or a
    /// restore that does not replace) refused this way writes nothing,
    /// not even the template or the root's description. The decision
    /// that counts is still taken under the tenant's lock.
    fn refuse_existing(&self, tenant: &TenantName, path: &Path) -> Result<()> {
        match storage::occupant(self.inner.root.root_dir(), path) {
            Ok(storage::Occupant::Database(_)) => Err(Error::TenantExists {
                tenant: tenant.clone(),
                path: path.to_path_buf(),
            }),
            _ => Ok(()),
        }
    }

    /// The root's limits record, as this process sees it.
    pub(crate) fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// What a create (or a restore under a free name) does once it holds
    /// the name and knows no tenant is there: a line left in the limits
    /// record by a destroy killed between removing the tenant and
    /// forgetting its limits is the old tenant's, and goes (one `stat`
    /// of the record when there is none).
    fn forget_limits(&self, tenant: &TenantName) -> Result<()> {
        // The operation's own deadline, from its call (a fresh wait here
        // came on top of the wait for the tenant's lock: a review).
        let patience = Patience::current_or(self.inner.lock_timeout);
        self.inner.limits.forget(tenant, &patience)
    }

    /// Tenant `tenant`'s entry lock (at `path`), for `doing`, waiting for
    /// another holder as long as `patience` allows (the operation's own,
    /// from its call: `lock_timeout`).
    ///
    /// # Errors
    ///
    /// As `storage::lock_tenant`: `TenantBusy`, `TenantDoesNotExist`.
    pub(crate) fn lock_tenant(
        &self,
        (tenant, path): (&TenantName, &Path),
        doing: WaitedFor,
        patience: &Patience,
    ) -> Result<storage::TenantLock> {
        storage::lock_tenant(tenant, self.tenant_path(path)?, patience, doing)
    }

    /// How long an operation waits for a tenant's lock.
    pub(crate) fn lock_timeout(&self) -> std::time::Duration {
        self.inner.lock_timeout
    }

    /// The pool cache.
    pub(crate) fn cache(&self) -> &PoolCache {
        &self.inner.cache
    }

    pub(crate) fn locate(&self, name: &str) -> Result<(TenantName, PathBuf)> {
        let tenant = TenantName::new(name)?;
        let path = self.inner.root.path_of(tenant.as_str())?;
        Ok((tenant, path))
    }

    /// The tenant whose database is `path`, as the storage layer sees it.
    fn tenant_path<'a>(&'a self, path: &'a Path) -> Result<storage::TenantPath<'a>> {
        let root = &self.inner.root;
        Ok(storage::TenantPath::new(
            root.root_dir(),
            path,
            root.owns_directory()?,
        ))
    }

    // ----- create, destroy, list -------------------------------------------

    /// Creates tenant `name` at the latest schema.
    ///
    /// The database is built in a temporary file (a copy of a template
    /// database already at the latest version), synced, and published
    /// atomically: no other thread or process ever sees it half made, and
    /// of several concurrent creators exactly one succeeds.
    ///
    /// # Errors
    ///
    /// [`Error::BadTenantName`], [`Error::TenantExists`],
    /// [`Error::NotADirectory`], or an I/O or SQLite error naming the file.
    /// On any error nothing is left behind, with one exception: when only
    /// the last step fails (syncing the directory the new database was
    /// published in, "making the new database durable"), the tenant exists
    /// and works but a crash could still lose it;
    /// [`create_tenant_if_not_exists`](Self::create_tenant_if_not_exists)
    /// then succeeds.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// manager.create_tenant("acme")?;
    /// assert!(manager.tenant_exists("acme")?);
    /// assert!(matches!(manager.create_tenant("acme"), Err(tenanted::Error::TenantExists { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_tenant(&self, name: &str) -> Result<()> {
        self.create(name, None)
    }

    /// Creates tenant `name` unless it exists; returns whether it created it.
    ///
    /// # Errors
    ///
    /// As [`create_tenant`](Self::create_tenant), except that an existing
    /// tenant is `Ok(false)`.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// assert!(manager.create_tenant_if_not_exists("acme")?);
    /// assert!(!manager.create_tenant_if_not_exists("acme")?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_tenant_if_not_exists(&self, name: &str) -> Result<bool> {
        match self.create(name, None) {
            Ok(()) => Ok(true),
            Err(Error::TenantExists { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates tenant `name` and runs `seed` on its database, inside one
    /// transaction, before publishing it. If `seed` fails, nothing is
    /// created.
    ///
    /// # Errors
    ///
    /// As [`create_tenant`](Self::create_tenant), plus [`Error::Seed`]
    /// carrying the seed's own error.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()),
    /// #     tenanted::Migrations::new(vec![tenanted::Migration::new("t", "CREATE TABLE t (x);")]),
    /// # ).build()?;
    /// manager.create_tenant_with("acme", |tx| {
    ///     tx.execute("INSERT INTO t (x) VALUES (42)", [])?;
    ///     Ok::<_, rusqlite::Error>(())
    /// })?;
    /// let x: i64 = manager.connection("acme")?.query_row("SELECT x FROM t", [], |r| r.get(0))?;
    /// assert_eq!(x, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_tenant_with<F, E>(&self, name: &str, seed: F) -> Result<()>
    where
        F: FnOnce(&Transaction<'_>) -> Result<(), E>,
        E: Into<BoxError>,
    {
        let mut seed = Some(seed);
        let mut run = |tx: &Transaction<'_>| match seed.take() {
            Some(seed) => seed(tx).map_err(Into::into),
            None => Ok(()),
        };
        self.create(name, Some(&mut run))
    }

    fn create(&self, name: &str, seed: Option<storage::Seed<'_>>) -> Result<()> {
        let patience = Patience::new(self.inner.lock_timeout);
        let (tenant, path) = self.locate(name)?;
        let span = tracing::info_span!("create_tenant", tenant = %tenant);
        let _entered = span.enter();
        self.refuse_existing(&tenant, &path)?;
        let root = self.inner.root.root_dir();
        let template = migrate::ensure_template(root, &self.inner.migrations, &tenant, &patience)?;
        // A root made by this create describes itself now.
        self.describe_root(Some(&patience))?;
        let at = self.tenant_path(&path)?;
        let cleared = |t: &TenantName| self.forget_limits(t);
        storage::create(&tenant, at, (template, seed), &cleared, &patience)?;
        tracing::info!(tenant = %tenant, path = %path.display(), "created tenant");
        Ok(())
    }

    /// Creates every tenant in `names` that does not exist yet, sharing the
    /// cost of making them durable: onboarding or importing many tenants
    /// at once runs several times faster than one `create_tenant` each.
    ///
    /// Each tenant is created exactly as [`create_tenant`](Self::create_tenant)
    /// creates it (all or nothing, never seen half made, exactly one of
    /// several concurrent creators wins), but the syncs of many tenants
    /// are issued together (see `docs/design.md`). A name given twice is
    /// created once. The report says, name by name, what happened.
    ///
    /// # Errors
    ///
    /// Only what stops the whole batch: the template database cannot be
    /// built, or the root's description disagrees. A name that cannot be
    /// created (invalid, blocked, a full disk) is in
    /// [`CreateReport::failed`], and the others are still created.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// manager.create_tenant("acme")?;
    /// let report = manager.create_tenants(["acme", "globex", "initech", "bad/name"])?;
    /// assert_eq!(report.created.len(), 2);
    /// assert_eq!(report.existed[0].as_str(), "acme");
    /// assert_eq!(report.failed[0].0, "bad/name");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_tenants<I>(&self, names: I) -> Result<CreateReport>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut report = CreateReport::default();
        let mut seen = HashSet::new();
        let mut valid = Vec::new();
        for name in names {
            match self.locate(name.as_ref()) {
                Ok((tenant, path)) if seen.insert(tenant.clone()) => valid.push((tenant, path)),
                Ok(_) => {}
                Err(e) => report.failed.push((name.as_ref().to_owned(), Arc::new(e))),
            }
        }
        let Some((first, _)) = valid.first() else {
            return Ok(report);
        };
        let wait = self.inner.lock_timeout;
        let patience = Patience::new(wait);
        let root = self.inner.root.root_dir();
        let migrations = &self.inner.migrations;
        let mut template = migrate::ensure_template(root, migrations, first, &patience)?;
        self.describe_root(Some(&patience))?;
        let owns_dir = self.inner.root.owns_directory()?;
        let cleared = |t: &TenantName| self.forget_limits(t);
        let waiting = (wait, &cleared as storage::Cleared<'_>);
        let results = storage::create_many(root, owns_dir, &mut template, &valid, waiting);
        for ((tenant, _), result) in valid.into_iter().zip(results) {
            match result {
                Ok(()) => report.created.push(tenant),
                Err(Error::TenantExists { .. }) => report.existed.push(tenant),
                Err(e) => report
                    .failed
                    .push((tenant.as_str().to_owned(), Arc::new(e))),
            }
        }
        tracing::info!(
            created = report.created.len(),
            failed = report.failed.len(),
            "created tenants"
        );
        Ok(report)
    }

    /// Destroys tenant `name`: new checkouts fail at once, checked-out
    /// connections are waited for (up to `destroy_timeout`), then the
    /// database, its `-wal`, `-shm`, `-journal` and lock files and the
    /// directories left empty are removed.
    ///
    /// # Errors
    ///
    /// [`Error::TenantDoesNotExist`]; [`Error::MissingDatabase`] for a
    /// listed tenant directory without its database (left for
    /// [`remove_debris`](Self::remove_debris)); [`Error::TenantBusy`] when
    /// `destroy_timeout`, from the call, ends before this process's
    /// checked-out connections come back, another process lets go of the
    /// tenant, or another process's (or thread's) create, destroy,
    /// migration or restore of it finishes: it says which, for how long it
    /// waited and the other process's pid, and the tenant is left intact
    /// and usable; [`Error::Io`] recording the erase of its replica, before
    /// anything is done (with replication). A replica that cannot be
    /// erased once the tenant is gone is not an error of the destroy: it
    /// is logged, and the erase stays queued
    /// ([`erase_destroyed_replicas`](Self::erase_destroyed_replicas)).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// manager.create_tenant("acme")?;
    /// manager.destroy_tenant("acme")?;
    /// assert!(!manager.tenant_exists("acme")?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn destroy_tenant(&self, name: &str) -> Result<()> {
        let (tenant, path) = self.locate(name)?;
        let span = tracing::info_span!("destroy_tenant", tenant = %tenant);
        let _entered = span.enter();
        // Listed without its database: reported, and left for
        // remove_debris (which knows whether anything in it is someone's).
        if let Some(damaged) = storage::incomplete(&tenant, self.tenant_path(&path)?) {
            return Err(damaged);
        }
        let inner = &self.inner;
        // Before any pool is drained or the tenant fenced off.
        crate::crypt::refuse_keyless_destroy(&tenant, inner.root.root_dir())?;
        let mut destroying =
            DestroyGuard::begin(&inner.cache, &tenant, &path, inner.destroy_timeout)?;
        destroying.drain()?;
        let patience = destroying.patience();
        self.erasing_replica(
            &tenant,
            &path,
            |let_go| {
                let waiting = storage::Waiting { patience, let_go };
                // Its limits and suspension go with it, under its lock (a
                // change of them takes it too): a tenant created again
                // under the name starts afresh.
                let forget = || {
                    if let Err(e) = inner.limits.forget(&tenant, &patience) {
                        tracing::warn!(tenant = %tenant, error = %e, "destroyed, but its limits are still recorded");
                    }
                };
                storage::destroy(&tenant, self.tenant_path(&path)?, waiting, forget)
            },
            |()| true,
        )?;
        drop(destroying);
        tracing::info!(tenant = %tenant, path = %path.display(), "destroyed tenant");
        Ok(())
    }

    /// Whether tenant `name` has a database file: a regular file at its
    /// path, as [`tenants`](Self::tenants) lists them (a symbolic link
    /// there, or one on the way, is not a tenant).
    ///
    /// # Errors
    ///
    /// [`Error::BadTenantName`] for an invalid name;
    /// [`Error::MissingDatabase`] when the tenant's own directory is there
    /// (so [`tenants`](Self::tenants) lists it) without its database, as
    /// every other operation on it says; [`Error::Io`] when the path
    /// cannot be looked at.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// assert!(!manager.tenant_exists("acme")?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tenant_exists(&self, name: &str) -> Result<bool> {
        let (tenant, path) = self.locate(name)?;
        let at = self.tenant_path(&path)?;
        match storage::occupant(self.inner.root.root_dir(), &path) {
            Ok(storage::Occupant::Database(_)) => Ok(true),
            // Fenced off in its own directory by a restore replacing it or
            // a re-key, running or dead: there, old or new, as `tenants()`
            // lists it (a flat layout's is not listed while fenced).
            Ok(_) if at.owns_dir() && storage::fenced_by_replace(at) => Ok(true),
            // Listed (its directory is there) but without its database.
            Ok(_) => match storage::incomplete(&tenant, at) {
                Some(damaged) => Err(damaged),
                None => Ok(false),
            },
            Err(e) => match Error::io(Some(&tenant), path, "looking at the database file", e) {
                // Behind a link is no tenant, as `tenants()` agrees.
                Error::NotADirectory { path, found, .. } => {
                    tracing::warn!(tenant = %tenant, path = %path.display(), found, "no tenant behind a link or a file in the root");
                    Ok(false)
                }
                e => Err(e),
            },
        }
    }

    /// Streams the tenants on disk; see [`RootConfig::tenants`].
    ///
    /// # Errors
    ///
    /// As [`RootConfig::tenants`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// manager.create_tenant("acme")?;
    /// let names: Vec<_> = manager.tenants()?.collect::<Result<_, _>>()?;
    /// assert_eq!(names, ["acme"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tenants(&self) -> Result<Tenants> {
        self.inner.root.tenants()
    }

    /// Removes what crashed processes left under the root: scratch files of
    /// interrupted creates, fenced databases of interrupted destroys, stale lock
    /// files and SQLite sidecars whose database is gone, and (the
    /// `encryption` feature) the staged key of an interrupted re-key, made
    /// current or destroyed by which key opens the tenant. Tenants with an
    /// operation in progress (their lock held) are skipped. Returns how
    /// many files were removed.
    ///
    /// Safe to run at any time, from any process; `create_tenant` also
    /// cleans its own tenant's debris. Run it at start-up or from cron
    /// (`tenanted cleanup`).
    ///
    /// A `-wal` or `-journal` that holds commits is never removed, even
    /// with its database gone (it may have been moved away by hand).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] for a directory that cannot be read;
    /// [`Error::OrphanedCommits`] for a `-wal` or `-journal` holding
    /// commits beside no database. Every other tenant (and every other
    /// directory) is cleaned up first: the error is the first that came
    /// (each is logged).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// assert_eq!(manager.remove_debris()?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove_debris(&self) -> Result<usize> {
        let removed = storage::sweep_debris(&self.inner.root)?;
        // Re-keys a crash interrupted: their staged keys committed or
        // discarded (the `encryption` feature).
        #[cfg(feature = "encryption")]
        let removed = removed + storage::settle_interrupted(&self.inner.root)?;
        Ok(removed)
    }

    // ----- connections -----------------------------------------------------

    /// A pooled connection to tenant `name`.
    ///
    /// For a cached tenant this is a short lock of the cache's shard, a time
    /// stamp, and the tenant's resident connection (a lock of its slot) or
    /// else r2d2's checkout. For another, the tenant's file is checked and
    /// its schema version read (once per pool), then its pool is built and
    /// cached, evicting the least recently used pool if the cache is full.
    ///
    /// # Errors
    ///
    /// [`Error::BadTenantName`]; [`Error::TenantDoesNotExist`] at once
    /// (never an empty file created, never a pool timeout);
    /// [`Error::PendingMigration`] if the tenant's schema is behind (unless
    /// `auto_migrate`); [`Error::SchemaAheadOfCode`];
    /// [`Error::TooManyOpenFiles`]; [`Error::TenantBeingDestroyed`];
    /// [`Error::DamagedTenant`] for a file that is no database, or whose
    /// schema version is negative; [`Error::TenantBusy`] when another
    /// connection held the file locked past `busy_timeout` (a stopped
    /// process); [`Error::DiskFull`] when its `-wal` and `-shm` find no
    /// room; [`Error::Pool`] if the tenant's pool stays exhausted for
    /// `connection_timeout`.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// # manager.create_tenant("acme")?;
    /// let conn = manager.connection("acme")?;
    /// let one: i64 = conn.query_row("SELECT 1", [], |r| r.get(0))?;
    /// assert!(matches!(manager.connection("nobody"), Err(tenanted::Error::TenantDoesNotExist { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connection(&self, name: impl AsRef<str>) -> Result<TenantConnection> {
        let name = name.as_ref();
        context::checked_out(name);
        match TenantConnection::cached(&self.inner.cache, name) {
            Some(conn) => conn,
            None => self.connection_cold(name),
        }
    }

    #[cold]
    fn connection_cold(&self, name: &str) -> Result<TenantConnection> {
        let (tenant, path) = self.locate(name)?;
        let inner = &self.inner;
        let (who, at) = (tenant.clone(), path.clone());
        pool::open(&inner.cache, &inner.open, &inner.migrations, who, at)
            .map_err(|e| self.diagnosed(&tenant, &path, e))
    }

    /// A tenant found missing whose own directory is there (so it is
    /// listed): `MissingDatabase` instead, so that every answer about it
    /// agrees with [`tenants`](Self::tenants).
    pub(crate) fn diagnosed(&self, tenant: &TenantName, path: &Path, e: Error) -> Error {
        match self.tenant_path(path) {
            Ok(at) => storage::diagnosed(tenant, at, e),
            Err(_) => e,
        }
    }

    /// Drops cached pools that had no checkout for `idle_for` and have no
    /// connection out now; returns how many.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// # manager.create_tenant("acme")?;
    /// drop(manager.connection("acme")?);
    /// assert_eq!(manager.prune_idle(std::time::Duration::ZERO), 1);
    /// assert_eq!(manager.stats().open_pools, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn prune_idle(&self, idle_for: Duration) -> usize {
        self.inner.cache.prune_idle(idle_for)
    }

    /// The pool cache's counters.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// # manager.create_tenant("acme")?;
    /// let conn = manager.connection("acme")?;
    /// let stats = manager.stats();
    /// assert_eq!((stats.open_pools, stats.checked_out, stats.misses), (1, 1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> PoolStats {
        self.inner.cache.stats()
    }

    // ----- context -----------------------------------------------------------

    /// Runs `f` with `name` as this thread's current tenant, so that
    /// [`current_connection`](Self::current_connection) and
    /// [`current_tenant`](crate::current_tenant) see it, inside a `tracing`
    /// span named `tenant` with a `tenant` field, so every log line `f`
    /// emits names it. Nesting the same tenant is fine; switching to
    /// another inside is refused. Returns `f`'s own result: its error type
    /// only has to accept an [`Error`].
    ///
    /// # Errors
    ///
    /// [`Error::BadTenantName`]; [`Error::TenantSwitchProhibited`]
    /// (converted into `E`); whatever `f` returns.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// # manager.create_tenant("acme")?;
    /// let version = manager.with_tenant("acme", || -> Result<i64, Box<dyn std::error::Error>> {
    ///     let conn = manager.current_connection()?;
    ///     Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
    /// })?;
    /// assert_eq!(version, 0);
    /// assert!(tenanted::current_tenant().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_tenant<T, E>(
        &self,
        name: impl AsRef<str>,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<Error>,
    {
        let tenant = TenantName::new(name.as_ref())?;
        let _guard = context::enter(&tenant)?;
        let span = tracing::info_span!("tenant", tenant = %tenant);
        let _entered = span.enter();
        f()
    }

    /// A connection to the thread's current tenant.
    ///
    /// # Errors
    ///
    /// [`Error::NoTenant`] outside [`with_tenant`](Self::with_tenant);
    /// otherwise as [`connection`](Self::connection).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// assert!(matches!(manager.current_connection(), Err(tenanted::Error::NoTenant)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn current_connection(&self) -> Result<TenantConnection> {
        context::with_current(|current| match current {
            Some(tenant) => self.connection(tenant),
            None => Err(Error::NoTenant),
        })
    }

    /// Runs `f` for every tenant on disk, each inside
    /// [`with_tenant`](Self::with_tenant); stops at the first error.
    ///
    /// # Errors
    ///
    /// The first error from listing, from `with_tenant`, or from `f`.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// # manager.create_tenant("a")?; manager.create_tenant("b")?;
    /// let mut seen = 0;
    /// manager.with_each_tenant(|_tenant| {
    ///     manager.current_connection()?;
    ///     seen += 1;
    ///     Ok::<_, tenanted::Error>(())
    /// })?;
    /// assert_eq!(seen, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_each_tenant<F, E>(&self, mut f: F) -> Result<(), E>
    where
        F: FnMut(&TenantName) -> Result<(), E>,
        E: From<Error>,
    {
        for tenant in self.tenants()? {
            let tenant = tenant?;
            self.with_tenant(&tenant, || f(&tenant))?;
        }
        Ok(())
    }

    // ----- one tenant's schema -------------------------------------------

    /// Applies tenant `name`'s pending migrations, in one transaction,
    /// holding its lock so concurrent calls (from any thread or process)
    /// run it once. An up-to-date tenant costs one read and no lock.
    ///
    /// # Errors
    ///
    /// [`Error::TenantDoesNotExist`]; [`Error::Migration`] naming the
    /// failed migration (the tenant keeps its old version);
    /// [`Error::SchemaAheadOfCode`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// # manager.create_tenant("acme")?;
    /// let outcome = manager.migrate_tenant("acme")?;
    /// assert_eq!(outcome.from, outcome.to);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn migrate_tenant(&self, name: &str) -> Result<MigrationOutcome> {
        self.migrate_tenant_to(name, self.inner.migrations.latest_version())
    }

    /// Moves tenant `name` to schema `version`, up or down (down needs a
    /// `down` script for every migration undone).
    ///
    /// # Errors
    ///
    /// As [`migrate_tenant`](Self::migrate_tenant), plus
    /// [`Error::VersionOutOfRange`] and [`Error::MissingDownMigration`].
    ///
    /// ```
    /// use tenanted::{Migration, Migrations};
    /// # let dir = tempfile::tempdir()?;
    /// let migrations = Migrations::new(vec![
    ///     Migration::new("a", "CREATE TABLE a (x);").down("DROP TABLE a;"),
    ///     Migration::new("b", "CREATE TABLE b (x);").down("DROP TABLE b;"),
    /// ]);
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), migrations).build()?;
    /// # manager.create_tenant("acme")?;
    /// let outcome = manager.migrate_tenant_to("acme", 0)?;
    /// assert_eq!(outcome.applied, ["b", "a"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn migrate_tenant_to(&self, name: &str, version: usize) -> Result<MigrationOutcome> {
        let (tenant, path) = self.locate(name)?;
        self.check_root()?;
        let describe = |patience: &Patience| self.describe_root(Some(patience));
        let at = self.tenant_path(&path)?;
        let prelude = self.prelude(&describe);
        let outcome = migrate::migrate_to(&self.inner.migrations, &tenant, at, version, prelude)
            .map_err(|e| self.diagnosed(&tenant, &path, e))?;
        if outcome.to < outcome.from {
            // Cached pools skip the schema check; make the next checkout
            // see that this tenant is now behind.
            self.inner.cache.evict_moved_down(tenant.as_str());
        }
        Ok(outcome)
    }

    // ----- the fleet ---------------------------------------------------------

    /// Migrates every tenant (or `options.only`) to the latest version (or
    /// `options.to_version`), `options.jobs` tenants at a time, each in its
    /// own transaction and under its own lock. A failed tenant stays at its
    /// old version and the run goes on (unless `fail_fast`). An up-to-date
    /// tenant costs one read of its database header: no SQLite open, no
    /// lock.
    ///
    /// The report counts every tenant and keeps the lines of those that
    /// failed (at most [`KEPT_FAILURES`](crate::KEPT_FAILURES)), so its
    /// size does not grow with the fleet; `after_each` sees every tenant's
    /// line as it happens.
    ///
    /// Safe to run from several processes at once: each tenant is migrated
    /// once, the other runs see it already there.
    ///
    /// # Errors
    ///
    /// Only for a bad `only` name, a bad template, a root that cannot be
    /// listed at all, [`Error::Encryption`] (the `encryption` feature) when the key provider
    /// cannot open the root's keys (a master key that is not the root's:
    /// see `KeyProvider::check_root_keys`); or, for a run to the latest version,
    /// [`Error::BadMigrations`] for migrations that cannot build a new
    /// tenant or that end the transaction they run in (tried once on an
    /// empty database before any tenant is changed: see the README's
    /// "Schema"); tenant failures are in the report.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// # manager.create_tenant("acme")?;
    /// let report = manager.migrate_all(&tenanted::MigrateOptions::new().jobs(2))?;
    /// assert!(report.is_success());
    /// println!("{report}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn migrate_all(&self, options: &MigrateOptions) -> Result<MigrationReport> {
        // Checked on every run (another program may have changed the
        // history since this manager recorded it); recorded before the
        // first tenant is written to.
        self.describe_root(None)?;
        let describe = |patience: &Patience| self.describe_root(Some(patience));
        let prelude = self.prelude(&describe);
        let inner = &self.inner;
        // A tenant moved down must be re-checked when next opened.
        let moved_down = |tenant: &TenantName| inner.cache.evict_moved_down(tenant.as_str());
        let report = migrate::migrate_all(
            &inner.root,
            &inner.migrations,
            options,
            prelude,
            &moved_down,
        )?;
        // Accepted changes are recorded once the run went through, even
        // if it wrote to no tenant (over a current fleet it recorded
        // nothing, and the next run without the flag failed again: an
        // outside probe); a run refused records nothing.
        if inner.accept_migration_changes {
            self.check_root_for_status()?;
        }
        Ok(report)
    }

    /// Every tenant's schema version and pending migrations, read in
    /// parallel (from each database's header when that is the truth: no
    /// SQLite open for a quiet tenant).
    ///
    /// The report lists the tenants that are not current and counts the
    /// rest, so its size does not grow with the fleet; for every row, use
    /// [`migration_status_each`](Self::migration_status_each).
    ///
    /// # Errors
    ///
    /// Only for a bad template, a root that cannot be listed at all, or
    /// [`Error::Encryption`] (the `encryption` feature) when the key provider
    /// cannot open the root's keys (a master key that is not the root's:
    /// see `KeyProvider::check_root_keys`);
    /// unreadable tenants are in the report.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// # manager.create_tenant("acme")?;
    /// let status = manager.migration_status()?;
    /// assert!(status.all_current());
    /// println!("{status}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn migration_status(&self) -> Result<StatusReport> {
        self.status(None)
    }

    /// [`migration_status`](Self::migration_status), handing every
    /// tenant's row to `each` as it is read: current tenants too, in no
    /// particular order, one call at a time (from the worker threads).
    /// Returns the same report.
    ///
    /// # Errors
    ///
    /// As [`migration_status`](Self::migration_status).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// # manager.create_tenant("acme")?;
    /// let mut current = Vec::new();
    /// let status = manager.migration_status_each(|row| {
    ///     if row.is_current(0) {
    ///         current.push(row.tenant.clone());
    ///     }
    /// })?;
    /// assert_eq!((current.len(), status.current(), status.tenants.len()), (1, 1, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn migration_status_each(
        &self,
        mut each: impl FnMut(&TenantStatus) + Send,
    ) -> Result<StatusReport> {
        self.status(Some(&mut each))
    }

    /// What [`migrate_all`](Self::migrate_all) with `options` would do
    /// (its target and `only`; the other options do not change the plan),
    /// without doing it: every tenant of the run, its version and the
    /// migrations that would run on it, up or down. Reads each tenant's
    /// version as [`migration_status`](Self::migration_status) does, and
    /// holds a line per tenant (a million tenants: tens of megabytes).
    /// It writes nothing: with
    /// [`accept_migration_changes`](crate::TenantManagerBuilder::accept_migration_changes)
    /// it plans over changed migrations as the run would, but leaves
    /// recording them to the run.
    ///
    /// # Errors
    ///
    /// [`Error::BadTenantName`] for a bad `only` name;
    /// [`Error::BadMigrations`] for migrations that `migrate_all` would
    /// refuse before any tenant (see its docs); otherwise as
    /// [`migration_status`](Self::migration_status). A tenant of `only`
    /// that does not exist is in the plan with its error, and so is every
    /// tenant for a target past the latest version
    /// ([`Error::VersionOutOfRange`], as `migrate_all` would report).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()),
    /// #     tenanted::Migrations::new(vec![tenanted::Migration::new("a", "CREATE TABLE a (x);")]),
    /// # ).build()?;
    /// manager.create_tenant("acme")?;
    /// let options = tenanted::MigrateOptions::new().only(["acme", "nobody"]);
    /// let plan = manager.migration_plan(&options)?;
    /// assert_eq!((plan.unchanged(), plan.unreadable()), (1, 1));
    /// assert!(plan.to_string().contains("nobody: unreadable: tenant nobody does not exist"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn migration_plan(&self, options: &MigrateOptions) -> Result<MigrationPlan> {
        let migrations = &self.inner.migrations;
        let latest = migrations.latest_version();
        let target = options.target().unwrap_or(latest);
        let only = match options.only_names() {
            Some(names) => Some(
                names
                    .iter()
                    .map(|n| TenantName::new(n))
                    .collect::<Result<Vec<_>>>()?,
            ),
            None => None,
        };
        // As `migrate_all` refuses the run (see `migrate/empty_run.rs`).
        if target == latest {
            migrations.check_on_empty((0, target))?;
        }
        // A plan is a dry run: it accepts changed migrations as the run
        // would, but records nothing (an outside probe: a dry run with
        // the flag recorded them, and said nothing was touched).
        self.describe_root(None)?;
        let mut rows = Vec::new();
        let status = self.read_status(Some(&mut |row: &TenantStatus| rows.push(row.clone())))?;
        let path_of =
            |tenant: &TenantName| self.inner.root.path_of(tenant.as_str()).unwrap_or_default();
        let plan = MigrationPlan::new(target, migrations, rows, status, only.as_deref(), path_of);
        Ok(plan)
    }

    fn status(&self, each: Option<&mut (dyn FnMut(&TenantStatus) + Send)>) -> Result<StatusReport> {
        self.check_root_for_status()?;
        self.read_status(each)
    }

    /// Every tenant's status, the root's records already checked.
    fn read_status(
        &self,
        each: Option<&mut (dyn FnMut(&TenantStatus) + Send)>,
    ) -> Result<StatusReport> {
        let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
        migrate::migration_status(&self.inner.root, &self.inner.migrations, jobs, each)
    }

    /// Undoes tenant `name`'s last `steps` migrations.
    ///
    /// # Errors
    ///
    /// [`Error::RollbackTooFar`] when `steps` is more than the tenant has
    /// applied (nothing is changed); otherwise as
    /// [`migrate_tenant_to`](Self::migrate_tenant_to).
    ///
    /// ```
    /// use tenanted::{Migration, Migrations};
    /// # let dir = tempfile::tempdir()?;
    /// let migrations = Migrations::new(vec![
    ///     Migration::new("a", "CREATE TABLE a (x);").down("DROP TABLE a;"),
    /// ]);
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), migrations).build()?;
    /// # manager.create_tenant("acme")?;
    /// assert_eq!(manager.rollback_tenant("acme", 1)?.to, 0);
    /// assert!(matches!(
    ///     manager.rollback_tenant("acme", 1),
    ///     Err(tenanted::Error::RollbackTooFar { applied: 0, .. })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rollback_tenant(&self, name: &str, steps: usize) -> Result<MigrationOutcome> {
        let (tenant, path) = self.locate(name)?;
        self.check_root()?;
        let describe = |patience: &Patience| self.describe_root(Some(patience));
        let at = self.tenant_path(&path)?;
        let prelude = self.prelude(&describe);
        let outcome = migrate::rollback(&self.inner.migrations, &tenant, at, steps, prelude)
            .map_err(|e| self.diagnosed(&tenant, &path, e))?;
        if outcome.to < outcome.from {
            // As in migrate_tenant_to: the next checkout checks again.
            self.inner.cache.evict_moved_down(tenant.as_str());
        }
        Ok(outcome)
    }
    // ----- backups and restore -------------------------------------------

    /// Copies tenant `name` to the file `dest`: a consistent snapshot (the
    /// database as of one commit) taken while other threads and processes
    /// keep writing, with SQLite's online backup API. The copy is one
    /// self-contained SQLite file (rollback journal mode: no `-wal`),
    /// written to a hidden scratch file beside `dest`, synced, and renamed
    /// into place: `dest` is the old file or the whole new one, never a
    /// torn one. `dest`'s directory is created if needed; a file already at
    /// `dest` is replaced.
    ///
    /// While the copy runs it holds a read snapshot of the tenant: writers
    /// are not blocked, but a destroy (here or in another process) waits
    /// for it, up to `destroy_timeout`. A tenant that a destroy, restore
    /// or re-key still running has fenced off is waited for (30 s at
    /// most), then copied, or found gone.
    ///
    /// # Errors
    ///
    /// [`Error::BadTenantName`]; [`Error::TenantDoesNotExist`] (or
    /// `TenantBeingDestroyed`); [`Error::TenantBusy`] naming the
    /// operation still running after that wait; [`Error::MissingDatabase`] for a tenant
    /// whose own directory is there (so it is listed) without its
    /// database; [`Error::BackupInsideRoot`] when `dest` is under the
    /// tenant root; an I/O or SQLite error naming the file. On error
    /// nothing is left beside `dest` and a file at `dest` is intact.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path().join("root")), tenanted::Migrations::new(vec![])).build()?;
    /// manager.create_tenant("acme")?;
    /// let outcome = manager.backup_tenant("acme", dir.path().join("backups/acme.sqlite3"))?;
    /// assert!(outcome.path.is_file());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn backup_tenant(&self, name: &str, dest: impl AsRef<Path>) -> Result<BackupOutcome> {
        let (tenant, _) = self.locate(name)?;
        let dest = dest.as_ref();
        let span = tracing::info_span!("backup_tenant", tenant = %tenant);
        let _entered = span.enter();
        backup::check_outside_root(Some(&tenant), self.inner.root.root_dir(), dest)?;
        let outcome = backup::backup_one(&self.inner.root, &tenant, dest)?;
        tracing::info!(tenant = %tenant, dest = %dest.display(), bytes = outcome.bytes, "backed up tenant");
        Ok(outcome)
    }

    /// Copies every tenant (or `options.only`) into `dir`, laid out like
    /// the root (same template and bucket count, with `dir` as the root),
    /// so that `RootConfig::new(dir)` with the same layout lists them and a
    /// restore finds each one. Each copy is read as
    /// [`backup_tenant`](Self::backup_tenant) reads it, into a staging
    /// directory of the run's own (`dir/.tenanted/staging-*`); a window of
    /// up to 32 copies per worker is made durable with one `syncfs` of
    /// the backup's file system, then each copy is moved into place and
    /// its line reported. (Before Linux 5.8, whose `syncfs` does not
    /// report a failed write, each copy is synced by itself, as
    /// `backup_tenant` syncs it, and moved into place at once.)
    /// The run's last directory entries are made durable before it
    /// returns: a line reported during the run is a copy on disk, and the
    /// returned report is the whole backup on disk. `options.jobs` run at
    /// a time; a failed tenant is reported and the run goes on. A tenant
    /// created during the run is in the backup whole or not at all; one
    /// destroyed before its turn is reported as
    /// [`gone`](crate::TenantBackup::gone), not as a failure; one whose
    /// destroy still waits for another process is waited for (30 s at
    /// most), then copied if the destroy gave up, gone if it went
    /// through, or a failure (`TenantBusy`) if it still runs. A tenant
    /// whose directory is there without its database (listed, and damaged:
    /// [`Error::MissingDatabase`]) is a failure.
    ///
    /// Use a new directory for each backup: a tenant destroyed since an
    /// earlier backup into the same directory keeps its old copy there.
    ///
    /// # Errors
    ///
    /// A bad `only` name, a `dir` inside the root
    /// ([`Error::BackupInsideRoot`]), a root that cannot be listed at all,
    /// [`Error::Encryption`] (the `encryption` feature) when the key provider
    /// cannot open the root's keys (a master key that is not the root's:
    /// see `KeyProvider::check_root_keys`);
    /// a `dir` recorded with another layout ([`Error::LayoutMismatch`]),
    /// a staging directory that cannot be made, or a last `syncfs` that
    /// fails (then no copy of the run can be trusted to be there after a
    /// crash); tenant failures are in the report.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path().join("root")), tenanted::Migrations::new(vec![])).build()?;
    /// manager.create_tenant("acme")?;
    /// let report = manager.backup_all(dir.path().join("backup"), &tenanted::BackupOptions::new().jobs(2))?;
    /// assert!(report.is_success());
    /// println!("{report}");
    /// let copies = tenanted::RootConfig::new(dir.path().join("backup"));
    /// assert_eq!(copies.tenants()?.count(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn backup_all(
        &self,
        dir: impl AsRef<Path>,
        options: &BackupOptions,
    ) -> Result<BackupReport> {
        backup::backup_all(&self.inner.root, dir.as_ref(), options)
    }

    /// Restores tenant `name` from the backup file `src`, which must not
    /// exist yet; see [`restore_tenant_opts`](Self::restore_tenant_opts).
    ///
    /// # Errors
    ///
    /// As [`restore_tenant_opts`](Self::restore_tenant_opts); an existing
    /// tenant is [`Error::TenantExists`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path().join("root")), tenanted::Migrations::new(vec![])).build()?;
    /// manager.create_tenant("acme")?;
    /// let backup = dir.path().join("acme.sqlite3");
    /// manager.backup_tenant("acme", &backup)?;
    /// manager.destroy_tenant("acme")?;
    /// let outcome = manager.restore_tenant("acme", &backup)?;
    /// assert!(outcome.is_current());
    /// assert!(matches!(manager.restore_tenant("acme", &backup), Err(tenanted::Error::TenantExists { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn restore_tenant(&self, name: &str, src: impl AsRef<Path>) -> Result<RestoreOutcome> {
        self.restore_tenant_opts(name, src, &RestoreOptions::new())
    }

    /// Restores tenant `name` from the backup file `src`, as `options` say.
    ///
    /// (Names: a method ending in `_with` takes a closure, as
    /// [`create_tenant_with`](Self::create_tenant_with) does, like std's
    /// `resize_with`; one ending in `_opts` takes an options value.)
    ///
    /// The backup is checked before anything under the root is touched:
    /// it must be a SQLite database that passes `PRAGMA integrity_check`,
    /// at a schema version not ahead of the migrations (a version behind
    /// is allowed: the outcome lists the migrations still
    /// [`pending`](RestoreOutcome::pending), to run before the tenant can
    /// be opened). Then it is published exactly like
    /// [`create_tenant`](Self::create_tenant) publishes a tenant: copied to
    /// a scratch file beside the tenant's path (in WAL mode, like every
    /// tenant), synced, linked into place without replacing anything, the
    /// directory synced.
    ///
    /// An existing tenant is replaced only with
    /// [`RestoreOptions::replace`]: it is then destroyed first exactly as
    /// [`destroy_tenant`](Self::destroy_tenant) does it (this process's
    /// connections drained, other processes fenced out and waited for),
    /// and the backup is published under the same tenant lock. Other
    /// processes see the restored tenant within their `watch_interval`;
    /// in between, their `connection` may briefly answer
    /// `TenantBeingDestroyed` or `TenantDoesNotExist`. A crash of this
    /// process before the backup is in place leaves the old tenant fenced
    /// off under a mark: [`remove_debris`](Self::remove_debris), or the
    /// next create, restore or destroy of the tenant, puts it back whole,
    /// the commits in its `-wal` included; run the restore again, the
    /// backup file is untouched.
    ///
    /// # Errors
    ///
    /// [`Error::BadBackup`] (no such file, empty, not SQLite, failing
    /// `integrity_check`, a file inside the tenant root);
    /// [`Error::SchemaAheadOfCode`] naming `src`; [`Error::TenantExists`]
    /// without `replace`; [`Error::TenantBusy`] if the tenant to replace is
    /// still held when `destroy_timeout` ends (it is left intact). A failed
    /// restore leaves nothing behind.
    ///
    /// ```
    /// use tenanted::RestoreOptions;
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path().join("root")),
    /// #     tenanted::Migrations::new(vec![tenanted::Migration::new("t", "CREATE TABLE t (x);")]),
    /// # ).build()?;
    /// manager.create_tenant("acme")?;
    /// let backup = dir.path().join("acme.sqlite3");
    /// manager.backup_tenant("acme", &backup)?;
    /// manager.connection("acme")?.execute("INSERT INTO t (x) VALUES (1)", [])?;
    /// let outcome = manager.restore_tenant_opts("acme", &backup, &RestoreOptions::new().replace(true))?;
    /// assert!(outcome.replaced);
    /// let rows: i64 = manager.connection("acme")?.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?;
    /// assert_eq!(rows, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn restore_tenant_opts(
        &self,
        name: &str,
        src: impl AsRef<Path>,
        options: &RestoreOptions,
    ) -> Result<RestoreOutcome> {
        let started = Instant::now();
        let (tenant, path) = self.locate(name)?;
        let span = tracing::info_span!("restore_tenant", tenant = %tenant);
        let _entered = span.enter();
        let inner = &self.inner;
        let latest = inner.migrations.latest_version();
        let root = inner.root.root_dir();
        backup::check_source(&tenant, root, src.as_ref())?;
        // An encrypted tenant's backup opens with the key its root keeps
        // for the tenant: none for a destroyed tenant, whose backups stay
        // unreadable.
        let checked = storage::check_backup(&tenant, (root, src.as_ref()), latest)?;
        let ours = inner.description.history();
        root_description::check_backup_history(&tenant, src.as_ref(), root, ours)?;
        self.check_root()?;
        if !options.replaces() {
            self.refuse_existing(&tenant, &path)?;
        }
        // As in create: a root made by this restore describes itself
        // first (which needs the root directory).
        crate::fs::sys::make_dir_all(root)
            .map_err(|e| Error::io(Some(&tenant), root, "creating the tenant root", e))?;
        let at = self.tenant_path(&path)?;
        let restored = match options.replaces() {
            true => self.restore_replacing((&tenant, &path), at, checked)?,
            false => self.restore_new(&tenant, at, checked)?,
        };
        tracing::info!(tenant = %tenant, replaced = restored.replaced, "restored tenant");
        let migrations = &inner.migrations;
        Ok(RestoreOutcome::new(
            tenant, path, restored, migrations, started,
        ))
    }
}

impl TenantManager {
    /// A restore over the tenant at `path`: the destroy protocol of
    /// `destroy_tenant`, then the publish.
    fn restore_replacing(
        &self,
        (tenant, path): (&TenantName, &Path),
        at: storage::TenantPath<'_>,
        checked: storage::CheckedBackup,
    ) -> Result<storage::Restored> {
        let inner = &self.inner;
        let mut destroying =
            DestroyGuard::begin(&inner.cache, tenant, path, inner.destroy_timeout)?;
        let patience = destroying.patience();
        self.describe_root(Some(&patience))?;
        destroying.drain()?;
        self.erasing_replica(
            tenant,
            path,
            |let_go| {
                let waiting = storage::Waiting { patience, let_go };
                let cleared = |t: &TenantName| self.forget_limits(t);
                let existing = (
                    Existing::Replace { waiting },
                    &cleared as storage::Cleared<'_>,
                );
                storage::restore(tenant, at, checked, existing, &patience)
            },
            |restored| restored.replaced,
        )
    }

    /// A restore of a tenant that is not there (one that is, meanwhile,
    /// is refused).
    fn restore_new(
        &self,
        tenant: &TenantName,
        at: storage::TenantPath<'_>,
        checked: storage::CheckedBackup,
    ) -> Result<storage::Restored> {
        // From here, as a replacing restore's destroy_timeout: the check
        // of a large backup before it is no wait on anyone.
        let patience = Patience::new(self.inner.lock_timeout);
        self.describe_root(Some(&patience))?;
        let cleared = |t: &TenantName| self.forget_limits(t);
        let existing = (Existing::Refuse, &cleared as storage::Cleared<'_>);
        storage::restore(tenant, at, checked, existing, &patience)
    }
}

impl TenantManager {
    /// Re-keys `name` (the `encryption` feature): its database encrypted
    /// again under a new random key, swapped in while other processes
    /// serve it, and the old key destroyed. A plaintext tenant (created
    /// before encryption was turned on, or restored from a plaintext
    /// backup) is encrypted by it.
    ///
    /// Use it when a tenant's key may have leaked. Like a destroy, it
    /// makes every copy encrypted with the old key unreadable with what
    /// tenanted keeps: backups taken before cannot be restored afterwards
    /// (take a new backup after the re-key).
    ///
    /// This process's connections to the tenant are drained first, as for
    /// a destroy (its `destroy_timeout`); other processes let go and open
    /// the new file as for a restore with replace, trying the new key when
    /// the old one is refused, so they keep serving the tenant. A crash at
    /// any point leaves the tenant readable: the next re-key finishes or
    /// undoes the interrupted one. Needs a provider that can stage keys
    /// ([`KeyProvider::stage_key`](crate::KeyProvider::stage_key);
    /// [`RootKeyStore`](crate::RootKeyStore) can).
    ///
    /// # Errors
    ///
    /// [`Error::Encryption`] without a key provider, or when the provider
    /// cannot stage or commit a key; [`Error::TenantDoesNotExist`];
    /// [`Error::TenantBusy`] if the tenant is still held when
    /// `destroy_timeout` ends (it is left as it was); `Error::Encryption`
    /// too for a root whose template gives tenants no directory of their
    /// own (a re-key swaps the tenant's directory), or that Litestream
    /// replicates (it cannot read encrypted tenants).
    #[cfg(feature = "encryption")]
    pub fn rekey_tenant(&self, name: &str) -> Result<()> {
        let (tenant, path) = self.locate(name)?;
        // Replication may have been recorded since the build.
        crate::replication::refuse_encryption(&self.inner.root, Some(&tenant))?;
        let span = tracing::info_span!("rekey_tenant", tenant = %tenant);
        let _entered = span.enter();
        let inner = &self.inner;
        let at = self.tenant_path(&path)?;
        let mut draining =
            DestroyGuard::begin(&inner.cache, &tenant, &path, inner.destroy_timeout)?;
        let patience = draining.patience();
        self.describe_root(Some(&patience))?;
        draining.drain()?;
        let rekeyed = self.erasing_replica(
            &tenant,
            &path,
            |let_go| {
                let waiting = storage::Waiting { patience, let_go };
                storage::rekey(&tenant, at, waiting, &patience)
            },
            |_| true,
        )?;
        tracing::info!(tenant = %tenant, version = rekeyed.version, bytes = rekeyed.bytes, was_plaintext = rekeyed.was_plaintext, "re-keyed tenant");
        Ok(())
    }
}

impl TenantManager {
    /// Runs `op`, which may remove `tenant`'s database at `path` (a
    /// destroy, or a restore replacing it), under the root's replication:
    /// an erase intent is recorded first, Litestream is told to let go
    /// once the tenant is fenced off, and once `gone` says the old
    /// database went, its replica is erased (see `replication::lifecycle`)
    /// within what is left of `destroy_timeout` from the call (at least
    /// [`ERASE_AT_LEAST`]): a stalled store leaves the erase queued instead
    /// of holding the operation for its requests' own timeouts.
    fn erasing_replica<T>(
        &self,
        tenant: &TenantName,
        path: &Path,
        op: impl FnOnce(&dyn storage::LetGo) -> Result<T>,
        gone: impl FnOnce(&T) -> bool,
    ) -> Result<T> {
        // The settings recorded now, not at build: an operator may have
        // configured or changed replication since (see `followed.rs`).
        let deadline = Instant::now() + self.inner.destroy_timeout;
        let current = self.inner.replication.current();
        let Some(replication) = current.map_err(|e| e.naming(tenant))? else {
            return op(&storage::Nobody);
        };
        let intent = replication.intend_erase(tenant, path)?;
        let release = replication.release(tenant);
        let done = op(&release).map(|done| {
            let went = gone(&done);
            (done, went)
        });
        match done {
            // Litestream may still have uploads of the old database on
            // their way: erased now, the replica could get them after.
            // The intent stays queued for `tenanted replicate` and
            // `erase_destroyed_replicas`, which erase once they settled.
            Ok((done, true)) if release.unclean() => Ok(done),
            Ok((done, true)) => {
                // The operation happened: its caller must hear so. The
                // intent stays queued for `tenanted replicate` and
                // `erase_destroyed_replicas`, which try again.
                let deadline = deadline.max(Instant::now() + ERASE_AT_LEAST);
                if let Err(e) = intent.finish(deadline) {
                    tracing::warn!(%tenant, error = %e, "the tenant's old database is gone, but its replica was not erased yet; the erase stays queued");
                }
                Ok(done)
            }
            Ok((done, false)) => {
                if intent.abandon() {
                    release.kept();
                }
                Ok(done)
            }
            // Failed after the old database went (its key, a publish):
            // the mark stays, for the erase and the next incarnation.
            Err(e) => {
                if intent.abandon() {
                    release.kept();
                }
                Err(e)
            }
        }
    }

    /// The replication settings recorded in the root now
    /// ([`ReplicationSettings::record`](crate::replication::ReplicationSettings::record)):
    /// a change recorded by another process (the operator's `tenanted
    /// replicate --replica-url`) is followed from the next call, by this and
    /// by every destroy and replacing restore.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] looking at or reading the record, naming it.
    pub fn replication(&self) -> Result<Option<crate::replication::ReplicationSettings>> {
        let current = self.inner.replication.current()?;
        Ok(current.map(|r| r.settings().clone()))
    }

    /// Erases the replicas of destroyed tenants that are still kept: the
    /// graveyard's entries (all of them, whatever their retention), and
    /// the erases of destroys whose process died before erasing. Returns
    /// how many replicas were erased. Nothing to do without replication.
    ///
    /// # Errors
    ///
    /// [`Error::Replica`] when the replica store refuses; what was not
    /// erased stays queued.
    pub fn erase_destroyed_replicas(&self) -> Result<usize> {
        match self.inner.replication.current()? {
            Some(replication) => replication.finish_erases(true),
            None => Ok(0),
        }
    }
}

impl fmt::Debug for TenantManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantManager")
            .field("root", &self.inner.root)
            .field("migrations", &self.inner.migrations.len())
            .field("stats", &self.stats())
            .finish()
    }
}
