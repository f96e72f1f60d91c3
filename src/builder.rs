//! [`TenantManagerBuilder`]: every knob of a [`TenantManager`], with defaults.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use crate::error::Result;
use crate::manager::TenantManager;
use crate::migrate::Migrations;
use crate::paths::RootConfig;
use crate::pool::ConnectionInit;

/// The shortest `connection_timeout`: r2d2 panics on zero.
const SHORTEST_CONNECTION_TIMEOUT: Duration = Duration::from_millis(1);

/// The longest `connection_timeout`, `watch_interval` and
/// `sweep_interval`: a deadline this far off still fits an `Instant`
/// (`Duration::MAX` would overflow it: a panic on the request path, or in
/// the watcher's thread).
const LONGEST_WAIT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The longest `busy_timeout`: SQLite takes milliseconds as a C `int`
/// (rusqlite panics beyond).
const LONGEST_BUSY_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

/// The most connections a tenant's pool may open: r2d2 reserves room for
/// all of them when it builds the pool.
const MOST_CONNECTIONS: u32 = 1_024;

/// Configures a [`TenantManager`]; made by [`TenantManager::builder`].
///
/// ```
/// use std::time::Duration;
/// use tenanted::{Migrations, RootConfig, TenantManager};
///
/// # let dir = tempfile::tempdir()?;
/// let manager = TenantManager::builder(RootConfig::new(dir.path()), Migrations::new(vec![]))
///     .max_pools(100)
///     .max_connections(8)
///     .idle_timeout(Some(Duration::from_secs(300)))
///     .connection_init(|conn| conn.execute_batch("PRAGMA synchronous = NORMAL;"))
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "call build() to make the manager"]
pub struct TenantManagerBuilder {
    pub(crate) root: RootConfig,
    pub(crate) migrations: Migrations,
    pub(crate) max_pools: usize,
    pub(crate) max_connections: u32,
    pub(crate) connection_timeout: Duration,
    pub(crate) busy_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) destroy_timeout: Duration,
    pub(crate) lock_timeout: Duration,
    pub(crate) watch_interval: Duration,
    pub(crate) sweep_interval: Duration,
    pub(crate) auto_migrate: bool,
    pub(crate) accept_migration_changes: bool,
    pub(crate) connector_threads: usize,
    pub(crate) init: Option<ConnectionInit>,
    pub(crate) default_max_size: Option<u64>,
    #[cfg(feature = "encryption")]
    pub(crate) key_provider: Option<std::sync::Arc<dyn crate::crypt::KeyProvider>>,
}

impl TenantManagerBuilder {
    pub(crate) fn new(root: RootConfig, migrations: Migrations) -> Self {
        TenantManagerBuilder {
            root,
            migrations,
            max_pools: 50,
            max_connections: 4,
            connection_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(5),
            idle_timeout: None,
            destroy_timeout: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(30),
            watch_interval: Duration::from_millis(500),
            sweep_interval: Duration::from_secs(60),
            auto_migrate: false,
            accept_migration_changes: false,
            connector_threads: 2,
            init: None,
            default_max_size: None,
            #[cfg(feature = "encryption")]
            key_provider: None,
        }
    }

    /// Encrypts every tenant created from now on with a key of its own,
    /// kept by `provider` (the `encryption` feature): [`RootKeyStore`]
    /// keeps them in the root, wrapped by a [`MasterKey`]. Every
    /// connection tenanted opens on an encrypted tenant (pools, migrations,
    /// the fleet, backups, restores) is keyed first; a backup stays
    /// encrypted with the tenant's key; [`destroy_tenant`] destroys the key,
    /// so no copy made earlier can be read again. Tenants created without
    /// encryption stay plaintext and keep working. Every manager and
    /// process on the root must be given the same provider.
    ///
    /// [`RootKeyStore`]: crate::RootKeyStore
    /// [`MasterKey`]: crate::MasterKey
    /// [`destroy_tenant`]: crate::TenantManager::destroy_tenant
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use tenanted::{MasterKey, Migrations, RootConfig, RootKeyStore, TenantManager};
    /// let master = MasterKey::generate()?; // or MasterKey::from_env()?
    /// let manager = TenantManager::builder(RootConfig::new(dir.path()), Migrations::new(vec![]))
    ///     .encryption(RootKeyStore::new(dir.path(), master))
    ///     .build()?;
    /// manager.create_tenant("acme")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "encryption")]
    pub fn encryption(mut self, provider: impl crate::crypt::KeyProvider) -> Self {
        self.key_provider = Some(std::sync::Arc::new(provider));
        self
    }

    /// The most tenant pools kept open at once (default 50, at least 1):
    /// `max_pools(n)` holds `n` tenants, and when one more is opened the
    /// least recently used pool of the whole cache is evicted (an exact
    /// LRU). The count of cached pools never exceeds `max_pools`; an
    /// evicted pool closes once its checked-out connections come back.
    pub fn max_pools(mut self, max_pools: usize) -> Self {
        self.max_pools = max_pools.max(1);
        self
    }

    /// The most connections one tenant's pool opens (default 4, at least
    /// 1, at most 1,024: r2d2 reserves room for them all at once, about
    /// 224 bytes each in every pool, and `u32::MAX`, a natural "no limit",
    /// ended the process at the first connection when that room could not
    /// be had).
    pub fn max_connections(mut self, max_connections: u32) -> Self {
        self.max_connections = max_connections.clamp(1, MOST_CONNECTIONS);
        self
    }

    /// How long `connection` waits when a tenant's pool is exhausted
    /// (default 30 s), and for another thread that is opening the tenant
    /// (then the error's cause is
    /// [`NoConnection::StillOpening`](crate::NoConnection::StillOpening)):
    /// raise it if first opens can be slow (`auto_migrate` of a large
    /// tenant). At least 1 ms (r2d2 refuses zero) and at most a year.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout.clamp(SHORTEST_CONNECTION_TIMEOUT, LONGEST_WAIT);
        self
    }

    /// SQLite's `busy_timeout` on every connection (default 5 s): how long
    /// a write waits for another writer of the same tenant. At most
    /// 2^31 - 1 ms (24.8 days), the longest SQLite takes.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout.min(LONGEST_BUSY_TIMEOUT);
        self
    }

    /// Prune pools unused for this long, from one background thread
    /// (default `None`: only [`TenantManager::prune_idle`] prunes).
    pub fn idle_timeout(mut self, idle: Option<Duration>) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// How long `destroy_tenant` (and a restore that replaces a tenant)
    /// waits for the tenant to be let go of, measured from the call (a
    /// restore's, from the end of its check of the backup): this
    /// process's checked-out connections, every other process that has it
    /// open, and another process's create, destroy, migration or restore
    /// of it in progress. Then it gives up with
    /// [`Error::TenantBusy`](crate::Error::TenantBusy), saying what it
    /// waited for, and leaves the tenant intact (default 5 s, at most a
    /// year: `Duration::MAX` waits that long). Keep it well above the
    /// other processes' [`watch_interval`](Self::watch_interval).
    pub fn destroy_timeout(mut self, timeout: Duration) -> Self {
        self.destroy_timeout = timeout.min(LONGEST_WAIT);
        self
    }

    /// How long a create, restore (without replacing), migration or
    /// rollback of a tenant waits, measured from the call (for
    /// `migrate_all` and `create_tenants`, from when the run reaches the
    /// tenant; for a restore, from the end of its check of the backup,
    /// which reads the whole file), for another process or thread working
    /// on the same tenant: its create (a slow seed), destroy, migration or
    /// restore, or the template database being built (default 30 s, at
    /// most a year: `Duration::MAX` waits that long). Then it gives up with
    /// [`Error::TenantBusy`](crate::Error::TenantBusy), saying what held
    /// the tenant, for how long it waited, and the holder's pid where the
    /// kernel tells; nothing is changed. The wait is a non-blocking try
    /// repeated with short sleeps (1 ms doubling to 20 ms), so a holder
    /// that is stopped or stuck never holds this call longer.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let manager = tenanted::TenantManager::builder(
    ///     tenanted::RootConfig::new(dir.path()),
    ///     tenanted::Migrations::new(vec![]),
    /// )
    /// .lock_timeout(std::time::Duration::from_secs(2))
    /// .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout.min(LONGEST_WAIT);
        self
    }

    /// How often the manager's background thread reads the root's change
    /// log (default 500 ms, at least 1 ms, at most a year). Within this interval a pool
    /// notices that another tenanted process destroyed its tenant, is
    /// destroying it, replaced it, or changed its schema version, and is
    /// retired: the next [`connection`](crate::TenantManager::connection)
    /// opens the tenant as it now is. The warm path never looks at files.
    /// Changes made by other programs are found within
    /// [`sweep_interval`](Self::sweep_interval).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let manager = tenanted::TenantManager::builder(
    ///     tenanted::RootConfig::new(dir.path()),
    ///     tenanted::Migrations::new(vec![]),
    /// )
    /// .watch_interval(std::time::Duration::from_millis(200))
    /// .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn watch_interval(mut self, interval: Duration) -> Self {
        self.watch_interval = interval.clamp(Duration::from_millis(1), LONGEST_WAIT);
        self
    }

    /// How long a change made *behind tenanted's back* to a cached tenant
    /// may go unnoticed (default 60 s, at least `watch_interval`, at most
    /// a year).
    ///
    /// Destroys, restores, migrations and rollbacks by tenanted, in any
    /// process, announce themselves in the root's change log, and the
    /// watcher reads it every [`watch_interval`](Self::watch_interval): it
    /// looks only at the tenants announced, so an idle process costs the
    /// same with 10 or 10,000 cached pools. Another program changing a
    /// database (the `sqlite3` shell setting `user_version`, a file moved
    /// by hand) announces nothing; the watcher finds that by sweeping
    /// every cached pool once per `sweep_interval`, a slice each pass, at
    /// about 10 µs a pool.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let manager = tenanted::TenantManager::builder(
    ///     tenanted::RootConfig::new(dir.path()),
    ///     tenanted::Migrations::new(vec![]),
    /// )
    /// .sweep_interval(std::time::Duration::from_secs(10))
    /// .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval.min(LONGEST_WAIT);
        self
    }

    /// Migrate a tenant that is behind when its pool is created, instead of
    /// failing with [`PendingMigrationError`](crate::PendingMigrationError)
    /// (default `false`).
    pub fn auto_migrate(mut self, auto_migrate: bool) -> Self {
        self.auto_migrate = auto_migrate;
        self
    }

    /// Accept that some of this program's migrations differ from the ones
    /// the root has applied (an edited comment, a rename), and record this
    /// program's as applied (default `false`: building fails with
    /// [`Error::MigrationChanged`](crate::Error::MigrationChanged)). Use it
    /// once, for a change you have checked leaves every tenant's schema as
    /// the new migration would make it.
    ///
    /// ```
    /// use tenanted::{Migration, Migrations, RootConfig, TenantManager};
    /// # let dir = tempfile::tempdir()?;
    /// let v1 = Migrations::new(vec![Migration::new("0001_notes", "CREATE TABLE notes (x);")]);
    /// TenantManager::builder(RootConfig::new(dir.path()), v1).build()?.create_tenant("acme")?;
    /// // The same table, a comment added to the script:
    /// let v2 = Migrations::new(vec![Migration::new("0001_notes", "CREATE TABLE notes (x); -- notes")]);
    /// assert!(TenantManager::builder(RootConfig::new(dir.path()), v2.clone()).build().is_err());
    /// TenantManager::builder(RootConfig::new(dir.path()), v2)
    ///     .accept_migration_changes(true)
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept_migration_changes(mut self, accept: bool) -> Self {
        self.accept_migration_changes = accept;
        self
    }

    /// Threads shared by every pool to open connections (default 2). r2d2
    /// would otherwise start 3 per pool.
    pub fn connector_threads(mut self, threads: usize) -> Self {
        self.connector_threads = threads.max(1);
        self
    }

    /// Runs `init` on every new pooled connection, after tenanted's own
    /// PRAGMAs (`busy_timeout`, `foreign_keys = ON`).
    ///
    /// `init` is given the connection being made: use it. Asking
    /// [`TenantManager::connection`] for the same tenant from inside `init`
    /// would wait for the very connection `init` is making, so that call
    /// gets [`Error::AskedFromItsOwnHook`](crate::Error::AskedFromItsOwnHook)
    /// (unless a connection of the tenant is idle). Other tenants may be
    /// asked for.
    pub fn connection_init<F>(mut self, init: F) -> Self
    where
        F: Fn(&mut Connection) -> rusqlite::Result<()> + Send + Sync + 'static,
    {
        self.init = Some(Arc::new(init));
        self
    }

    /// The size limit, in bytes, of every tenant without one of its own
    /// (default `None`: unlimited). A tenant's own limit
    /// ([`TenantManager::set_tenant_max_size`]) is recorded in the root and
    /// seen by every process; this default is this manager's, so give
    /// every process of a root the same one.
    ///
    /// SQLite enforces it (`PRAGMA max_page_count`, set on every pooled
    /// connection): a write that needs more pages fails with `SQLITE_FULL`,
    /// which [`TenantConnection::diagnose`](crate::TenantConnection::diagnose)
    /// turns into [`Error::QuotaExceeded`](crate::Error::QuotaExceeded).
    /// Reads, deletes and writes that fit in pages freed by deletes keep
    /// working at the limit. Migrations, creates and restores are not held
    /// to it (they run on connections of their own): a migration that
    /// grows a tenant past its limit succeeds, and the tenant is then over
    /// it (it can shrink, not grow).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let manager = tenanted::TenantManager::builder(
    ///     tenanted::RootConfig::new(dir.path()),
    ///     tenanted::Migrations::new(vec![]),
    /// )
    /// .default_max_size(Some(100 << 20))
    /// .build()?;
    /// manager.create_tenant("acme")?;
    /// assert_eq!(manager.tenant_limits("acme")?.max_size, Some(100 << 20));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn default_max_size(mut self, bytes: Option<u64>) -> Self {
        self.default_max_size = bytes;
        self
    }

    /// Builds the manager. Opens no database: pools are made on first use.
    ///
    /// # Errors
    ///
    /// [`Error::BadTemplate`](crate::Error::BadTemplate) for an unusable
    /// [`RootConfig`]; [`Error::BadLimitsRecord`](crate::Error::BadLimitsRecord)
    /// if the root's limits record is damaged; [`Error::NotADirectory`](crate::Error::NotADirectory)
    /// naming the root when it is a file (or its `.tenanted` a link or a
    /// file); [`Error::LayoutMismatch`](crate::Error::LayoutMismatch) and
    /// [`Error::MigrationChanged`](crate::Error::MigrationChanged) when the
    /// root describes itself otherwise;
    /// [`Error::BadMigrations`](crate::Error::BadMigrations) for a
    /// migration name the root's record cannot hold (a line break);
    /// [`Error::Io`](crate::Error::Io) if
    /// the root's description cannot be read or a thread cannot be
    /// started; [`Error::Encryption`](crate::Error::Encryption) (the
    /// `encryption` feature) for a key provider on a root that Litestream
    /// replicates, or none on a root that keeps encrypted tenants.
    pub fn build(#[allow(unused_mut)] mut self) -> Result<TenantManager> {
        #[cfg(feature = "encryption")]
        {
            if self.key_provider.is_some() {
                crate::replication::refuse_encryption(&self.root, None)?;
            }
            // The manager holds the provider that serves it: its own, or
            // another manager's of the root (see `crypt/keyring.rs`).
            self.key_provider =
                crate::crypt::register_for(self.root.root_dir(), self.key_provider.as_ref())?;
        }
        TenantManager::from_builder(self)
    }
}

impl fmt::Debug for TenantManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantManagerBuilder")
            .field("root", &self.root)
            .field("migrations", &self.migrations.len())
            .field("max_pools", &self.max_pools)
            .field("max_connections", &self.max_connections)
            .field("connection_timeout", &self.connection_timeout)
            .field("busy_timeout", &self.busy_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("destroy_timeout", &self.destroy_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .field("watch_interval", &self.watch_interval)
            .field("sweep_interval", &self.sweep_interval)
            .field("auto_migrate", &self.auto_migrate)
            .field("accept_migration_changes", &self.accept_migration_changes)
            .field("connector_threads", &self.connector_threads)
            .field("default_max_size", &self.default_max_size)
            .finish_non_exhaustive()
    }
}
