//! The cold open: a tenant with no cached pool gets one, in named steps.
//!
//! 0. Single flight: one thread per tenant opens it (the lead), the others
//!    wait for it and then use its pool (see `flight.rs`).
//! 1. The pool's first connection, opened by the lead itself through the
//!    pool's [`connection_manager`]: a missing or damaged file fails at
//!    once, creating nothing, and says why. It becomes the pool's
//!    resident connection (see `resident.rs`).
//! 2. The schema gate (`migrate::check_schema`) on that connection.
//! 3. [`build_pool`]: a lazily filled r2d2 pool on the shared connector
//!    threads, for the connections beyond the first.
//! 4. [`cache_and_adopt`]: the pool goes into the cache, unless another
//!    thread cached one first (then that one serves) or a destroy began.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags};
use scheduled_thread_pool::ScheduledThreadPool;

use super::cache::{Inserted, Opening, PoolCache};
use super::caller_gone;
use super::connect_errors::{ConnectErrors, LastConnectError};
use super::connection::TenantConnection;
use super::flight::Flight;
use super::lease::Lease;
use super::pinned_manager::{OpenFailure, PinnedManager, Steps, Target};
use super::pool_state::{Admission, PoolState};
use super::resident::{Resident, ResidentLease};
use super::tenant_pool::{Checkout, Refused, Shared, TenantPool};
use crate::busy::WaitedFor;
use crate::crypt::{self, TenantKey};
use crate::error::{Error, NoConnection, Result};
use crate::fs::Patience;
use crate::limits::{Limits, Policy, Suspension};
use crate::migrate::{self, Migrations};
use crate::name::TenantName;
use crate::storage::{self, EXISTING, TenantPath, TrackedConnection};

/// A hook run on every new pooled connection, after tenanted's PRAGMAs.
pub type ConnectionInit = Arc<dyn Fn(&mut Connection) -> rusqlite::Result<()> + Send + Sync>;

/// How tenants' pools are built and checked: the builder's settings.
pub(crate) struct OpenConfig {
    /// Connections per tenant pool.
    pub(crate) max_connections: u32,
    /// How long a checkout waits on an exhausted pool.
    pub(crate) connection_timeout: Duration,
    /// SQLite's `busy_timeout` on every pooled connection.
    pub(crate) busy_timeout: Duration,
    /// The user's hook, run on every new pooled connection.
    pub(crate) init: Option<ConnectionInit>,
    /// Migrate a tenant found behind instead of refusing it.
    pub(crate) auto_migrate: bool,
    /// How long such a migration waits for the tenant's lock.
    pub(crate) lock_timeout: Duration,
    /// The threads every pool shares to open connections.
    pub(crate) connector: Arc<ScheduledThreadPool>,
    /// The root, which every path of a tenant is reached from without
    /// following links.
    pub(crate) root: PathBuf,
    /// Whether each tenant has a directory of its own (the layout's; see
    /// `storage::TenantPath`).
    pub(crate) owns_dir: bool,
    /// Every tenant's size limit and suspension.
    pub(crate) limits: Arc<Limits>,
}

/// How many times a cold open starts again after finding that the file it
/// opened was replaced meanwhile (each time, a create or destroy finished).
/// Waiting for another thread's open is not an attempt: the caller looks
/// again afterwards, and gets the tenant's own answer however many failed
/// opens it waited behind.
const MAX_ATTEMPTS: usize = 3;

/// Opens `tenant`'s pool, caches it and checks a connection out of it.
/// One thread per tenant opens it; the others wait for that pool.
pub(crate) fn open(
    cache: &PoolCache,
    config: &OpenConfig,
    migrations: &Migrations,
    tenant: TenantName,
    path: PathBuf,
) -> Result<TenantConnection> {
    let span = tracing::debug_span!("open_tenant", tenant = %tenant);
    let _entered = span.enter();
    // A blocked tenant gets no pool (the watcher retires a cached one).
    if let Some(s) = config.limits.policy(tenant.as_str()).blocked() {
        return Err(suspended(&tenant, s));
    }
    let (mut attempts, mut together) = (0, false);
    let mut following = Following::default();
    while attempts < MAX_ATTEMPTS {
        let checkout = match cache.begin_open(&tenant, together) {
            Opening::Destroying => return Err(Error::TenantBeingDestroyed { tenant, path }),
            Opening::Reentered => return Err(Error::AskedFromItsOwnHook { tenant, path }),
            Opening::Follow(flight) => {
                // A flight ends with its leads' own answers, and after a
                // failed one its followers open together (see
                // `flight.rs`). A lead held up by user code (hooks waiting
                // on each other across threads) is waited for no longer
                // than a checkout waits for a connection.
                match following.follow(&flight, config) {
                    Some(failed) => together = failed,
                    None => return Err(following.gave_up(tenant, path)),
                }
                continue;
            }
            Opening::Cached(pool) => pool.checkout(cache.now()),
            Opening::Lead(mut flight) => {
                // This process's other callers for the tenant wait for the
                // flight, and so for what a dead operation left to be
                // finished: then they find the pool.
                let open = || open_as_lead(cache, config, migrations, &tenant, &path);
                let opened = lead_open(open, config, &tenant, &path);
                if matches!(opened, Err(Refused::Failed(_))) {
                    flight.failed();
                }
                // The pool the lead built (if it lost) is gone by now.
                drop(flight);
                opened
            }
        };
        match checkout {
            Ok(checkout) => return Ok(TenantConnection::new(checkout)),
            Err(Refused::Failed(e)) => return Err(e),
            Err(Refused::Stale) => cache.evict_stale(tenant.as_str()),
        }
        attempts += 1;
    }
    // The file was replaced under every attempt: an operation on the
    // tenant keeps replacing it (it exists, or may).
    match look_again(config, &tenant, &path) {
        Again::Nothing => Err(Error::TenantDoesNotExist { tenant, path }),
        Again::Database | Again::Fenced => Err(Error::TenantBeingDestroyed { tenant, path }),
    }
}

/// How long a caller has waited for other threads' opens of its tenant.
#[derive(Default)]
struct Following {
    started: Option<Instant>,
    /// The caller went while it waited.
    gone: bool,
}

/// How often a caller waiting for another's open looks whether it has
/// gone.
const FOLLOW_SLICE: Duration = Duration::from_millis(100);

impl Following {
    /// When the caller stops waiting: `connection_timeout` after it first
    /// waited.
    fn deadline(&mut self, config: &OpenConfig) -> Instant {
        *self.started.get_or_insert_with(Instant::now) + config.connection_timeout
    }

    /// Waits for `flight` to land: how it ended (`Some(failed)`), or
    /// `None` at the deadline, or once the caller has gone (an abandoned
    /// `interact`: see `caller_gone.rs`), looked at every [`FOLLOW_SLICE`].
    fn follow(&mut self, flight: &Flight, config: &OpenConfig) -> Option<bool> {
        let deadline = self.deadline(config);
        loop {
            let slice = deadline.min(Instant::now() + FOLLOW_SLICE);
            if let Some(failed) = flight.wait_until(slice) {
                return Some(failed);
            }
            self.gone = caller_gone::caller_gone();
            if self.gone || slice >= deadline {
                return None;
            }
        }
    }

    /// The error of a caller that waited until its deadline, or went.
    fn gave_up(&self, tenant: TenantName, path: PathBuf) -> Error {
        if self.gone {
            return Error::InteractAborted {
                tenant,
                reason: "the future was dropped while the tenant was being opened",
            };
        }
        let waited = self.started.map(|s| s.elapsed()).unwrap_or_default();
        Error::Pool {
            tenant,
            path,
            cause: NoConnection::StillOpening { waited },
        }
    }
}

/// The lead's cold open, again when what kept the tenant away is gone:
/// - fenced off on disk by an operation that died, which is finished or
///   undone first (see [`finish_interrupted`]);
/// - missing, but there a moment later (put back by whoever finished such
///   an operation, or published): `Stale`, so the caller looks again
///   instead of saying that an existing tenant does not exist.
fn lead_open(
    open: impl Fn() -> Result<Checkout, Refused>,
    config: &OpenConfig,
    tenant: &TenantName,
    path: &Path,
) -> Result<Checkout, Refused> {
    let opened = match open() {
        Err(Refused::Failed(Error::TenantBeingDestroyed { .. }))
            if finish_interrupted(config, tenant, path) =>
        {
            open()
        }
        opened => opened,
    };
    match opened {
        Err(Refused::Failed(Error::TenantDoesNotExist { tenant, path })) => {
            match look_again(config, &tenant, &path) {
                Again::Database => Err(Refused::Stale),
                Again::Fenced => Err(Refused::Failed(Error::TenantBeingDestroyed {
                    tenant,
                    path,
                })),
                Again::Nothing => Err(Refused::Failed(Error::TenantDoesNotExist { tenant, path })),
            }
        }
        opened => opened,
    }
}

/// What a second look at a tenant found missing finds.
enum Again {
    /// A database is at its path now: open it.
    Database,
    /// It is fenced off, or marked, by an operation (the first look fell
    /// between one restore's swap and the next one's fence).
    Fenced,
    /// Neither, as seen under the tenant's entry lock (or with a create
    /// holding it): it does not exist.
    Nothing,
}

/// Looks again at a tenant whose open found nothing at `path`: two looks
/// (the open's, then the fence's) may straddle an operation's steps.
fn look_again(config: &OpenConfig, tenant: &TenantName, path: &Path) -> Again {
    let at = TenantPath::new(&config.root, path, config.owns_dir);
    look_again_at(at, tenant)
}

/// [`look_again`] at `at`.
fn look_again_at(at: TenantPath<'_>, tenant: &TenantName) -> Again {
    match look(at) {
        Again::Nothing => confirm_under_lock(at, tenant),
        seen => seen,
    }
}

/// A look at the database's path, then at the marks of an operation.
fn look(at: TenantPath<'_>) -> Again {
    if matches!(
        storage::occupant(at.root(), at.db()),
        Ok(storage::Occupant::Database(_))
    ) {
        return Again::Database;
    }
    match storage::marked(at) {
        true => Again::Fenced,
        false => Again::Nothing,
    }
}

/// The last look, with the tenant's entry lock held. Looks taken without
/// it can each land in a different operation: a replace in another
/// process that finishes between the look at the path (which found its
/// fence) and the look at the marks (which found them gone) leaves both
/// empty. Every operation holds the lock from before its first mark to
/// after its last, so under it the tenant is either there, marked by one
/// that died, or gone. The lock is only tried, never waited for (a
/// checkout does not wait on another process's operation): held by a
/// create, the tenant is not there yet; held by anything else (a restore,
/// a destroy, a re-key, a migration, a sweep), an operation that may have
/// just moved it is running, and the answer is that one. Only a tenant
/// that looks gone pays for this; its lock file is made and removed again
/// (in its bucket, if that exists).
fn confirm_under_lock(at: TenantPath<'_>, tenant: &TenantName) -> Again {
    let no_wait = Patience::new(Duration::ZERO);
    match storage::lock_tenant(tenant, at, &no_wait, WaitedFor::Opening) {
        Ok(_lock) => look(at),
        Err(Error::TenantBusy {
            waited_for: WaitedFor::Create,
            ..
        }) => Again::Nothing,
        Err(Error::TenantBusy { .. }) => Again::Fenced,
        // No directory for it (or no lock to be had, as on a read-only
        // root, where no operation runs): gone, as both looks said.
        Err(_) => Again::Nothing,
    }
}

/// After a cold open found `tenant` fenced off on disk: finishes what a
/// restore or re-key that died left (`storage::finish_interrupted`; it
/// never waits, and leaves a running operation alone). Whether the open
/// should be tried again.
fn finish_interrupted(config: &OpenConfig, tenant: &TenantName, path: &Path) -> bool {
    let at = TenantPath::new(&config.root, path, config.owns_dir);
    match storage::finish_interrupted(tenant, at) {
        Ok(removed) => removed,
        Err(e) => {
            // The checkout's own error says what to do (`remove_debris`).
            tracing::warn!(tenant = %tenant, error = %e, "could not finish an interrupted restore or re-key of a tenant a checkout found fenced off");
            false
        }
    }
}

/// The lead's cold open: connect, check the schema, build, cache.
fn open_as_lead(
    cache: &PoolCache,
    config: &OpenConfig,
    migrations: &Migrations,
    tenant: &TenantName,
    path: &Path,
) -> Result<Checkout, Refused> {
    let state = Arc::new(PoolState::default());
    let resident = Resident::new(config.max_connections);
    // Read again here, by the lead: a caller that passed `open`'s look
    // may have waited behind other opens while the tenant was blocked.
    let policy = config.limits.policy(tenant.as_str());
    if let Some(s) = policy.blocked() {
        return Err(Refused::Failed(suspended(tenant, s)));
    }
    let target = Target {
        root: config.root.clone(),
        path: path.to_path_buf(),
        policy: policy.clone(),
    };
    let (manager, (first, version)) = open_first(config, target, (&state, &resident), tenant)?;
    let first = ResidentLease::first(first, &resident);
    if state.admission() == Admission::Stale {
        // The file changed while it was being opened: look again.
        return Err(Refused::Stale);
    }
    migrate::check_schema(
        migrations,
        config.auto_migrate.then_some(config.lock_timeout),
        tenant,
        TenantPath::new(&config.root, path, config.owns_dir),
        (first.connection(), version),
    )?;
    let last_error = Arc::new(LastConnectError::default());
    let pool = build_pool(config, manager, Arc::clone(&last_error));
    let shared = Shared {
        state,
        resident,
        last_error,
    };
    let pool = Arc::new(TenantPool::new(
        tenant.clone(),
        path.to_path_buf(),
        pool,
        shared,
        policy,
        cache.now(),
    ));
    let checkout = cache_and_adopt(cache, Arc::clone(&pool), Lease::Resident(first))?;
    // Limits changed while the pool was opened (`suspend_tenant` retires
    // the pools it finds cached, and this one was not yet): it is retired
    // now, and the caller looks again, under the new ones.
    if config.limits.policy(tenant.as_str()) != *pool.policy() {
        drop(checkout);
        cache.retire_stale(&pool);
        return Err(Refused::Stale);
    }
    Ok(checkout)
}

/// [`Error::TenantSuspended`], for a tenant blocked as `s` says.
fn suspended(tenant: &TenantName, s: &Suspension) -> Error {
    Error::TenantSuspended {
        tenant: tenant.clone(),
        mode: s.mode,
        reason: s.reason.clone(),
    }
}

/// The pool's connection manager and its first connection, with the
/// tenant's schema version.
///
/// Opened here, on the caller's thread, not on r2d2's connector: that
/// would cost two cross-thread wake-ups (see `resident.rs`). A missing
/// tenant (or an empty, damaged file) fails at once, creating nothing:
/// connections open without SQLITE_OPEN_CREATE. The pool keeps the key its
/// first connection opened with (see `storage::with_tenant_key`).
fn open_first(
    config: &OpenConfig,
    target: Target,
    (state, resident): (&Arc<PoolState>, &Arc<Resident>),
    tenant: &TenantName,
) -> Result<(PinnedManager, (TrackedConnection, i64)), Refused> {
    let path = target.path.clone();
    let opened = storage::with_tenant_key(
        tenant,
        (&config.root, &path),
        |key| {
            let keyed = (target.clone(), key.cloned());
            let manager = connection_manager(config, keyed, state, resident);
            manager.open_connection().map(|first| (manager, first))
        },
        OpenFailure::key_refused,
    );
    let opened = opened.map_err(Refused::Failed)?;
    let (opened, _) = opened.map_err(|e| e.into_error(tenant, &path))?;
    Ok(opened)
}

/// What opens the tenant's connections: its file, without following
/// links, keyed with `key` (an encrypted tenant's), set up by
/// [`setup_connection`], read-only if the tenant is suspended so.
fn connection_manager(
    config: &OpenConfig,
    (target, key): (Target, Option<TenantKey>),
    state: &Arc<PoolState>,
    resident: &Arc<Resident>,
) -> PinnedManager {
    let busy_timeout = config.busy_timeout;
    let user_init = config.init.clone();
    let sqlite = SqliteConnectionManager::file(crate::fs::files::literal_path(&target.path))
        .with_flags(open_flags(&target.policy));
    let keying = Box::new(move |conn: &mut Connection| {
        // The key first: nothing may read the file before it; proven by
        // the first read, once a lock is waited for.
        crypt::apply(conn, key.as_ref())?;
        conn.busy_timeout(busy_timeout)?;
        crypt::prove(conn, key.as_ref())
    });
    let setup = Box::new(move |conn: &mut Connection| setup_connection(conn, user_init.as_ref()));
    PinnedManager::new(
        sqlite,
        (Steps { keying, setup }, config.connection_timeout),
        target,
        Arc::clone(state),
        Arc::clone(resident),
    )
}

/// The flags a tenant's connections open with: a tenant suspended
/// read-only has its file opened read-only, which no `PRAGMA` undoes.
fn open_flags(policy: &Policy) -> OpenFlags {
    if policy.read_only() {
        EXISTING
            .difference(OpenFlags::SQLITE_OPEN_READ_WRITE)
            .union(OpenFlags::SQLITE_OPEN_READ_ONLY)
    } else {
        EXISTING
    }
}

/// The tenant's r2d2 pool: lazily filled beside the resident connection.
fn build_pool(
    config: &OpenConfig,
    manager: PinnedManager,
    last_error: Arc<LastConnectError>,
) -> r2d2::Pool<PinnedManager> {
    // Lazily filled, no r2d2 reaper (we prune whole pools ourselves),
    // no validation query on checkout, one shared connector pool.
    r2d2::Pool::builder()
        .max_size(config.max_connections)
        .min_idle(Some(0))
        .idle_timeout(None)
        .max_lifetime(None)
        .test_on_check_out(false)
        .connection_timeout(config.connection_timeout)
        .thread_pool(Arc::clone(&config.connector))
        .error_handler(Box::new(ConnectErrors(last_error)))
        .build_unchecked(manager)
}

/// What every new pooled connection runs: tenanted's PRAGMAs, then the
/// user's hook. No I/O: these only set connection state.
fn setup_connection(
    conn: &mut Connection,
    user_init: Option<&ConnectionInit>,
) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA foreign_keys = ON;")?;
    match user_init {
        Some(init) => init(conn),
        None => Ok(()),
    }
}

/// Caches `pool` and checks `first` out of it, or out of the pool another
/// thread cached first.
fn cache_and_adopt(
    cache: &PoolCache,
    pool: Arc<TenantPool>,
    first: Lease,
) -> Result<Checkout, Refused> {
    let (inserted, retired) = cache.insert(Arc::clone(&pool));
    // Evicted pools close here, outside the cache lock.
    drop(retired);
    match inserted {
        Inserted::Ours => pool.adopt(first, cache.now()),
        // Another thread cached this tenant first: use its pool.
        Inserted::Theirs(winner) => {
            drop(first);
            winner.checkout(cache.now())
        }
        Inserted::Destroying => Err(Refused::Failed(Error::TenantBeingDestroyed {
            tenant: pool.name().clone(),
            path: pool.path().to_path_buf(),
        })),
    }
}

#[cfg(test)]
#[cfg(feature = "testing")]
mod tests {
    use std::path::Path;
    use std::sync::mpsc;

    use super::{Again, look_again_at};
    use crate::fs::siblings::fence_path;
    use crate::fs::{FaultPlan, Step, StepTaken};
    use crate::storage::TenantPath;
    use crate::{Migrations, RestoreOptions, RootConfig, TenantManager};

    /// The index (from 1) of the first step `matches` picks among `steps`.
    fn step_of(steps: &[StepTaken], matches: impl Fn(&StepTaken) -> bool) -> usize {
        steps.iter().position(matches).expect("the step is taken") + 1
    }

    /// A checkout's second look at a tenant it found missing may start in
    /// one replace's fence (the path empty) and end after it (no marks
    /// left): the tenant existed throughout, and must not be called gone.
    /// The replace is held just before its swap while the look at the path
    /// is taken, then let finish before the look at the marks.
    #[test]
    fn a_replace_that_ends_between_the_two_looks_does_not_make_the_tenant_gone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let manager = TenantManager::builder(RootConfig::new(&root), Migrations::new(vec![]))
            .build()
            .unwrap();
        manager.create_tenant("acme").unwrap();
        let backup = dir.path().join("acme.backup");
        manager.backup_tenant("acme", &backup).unwrap();
        let replace = RestoreOptions::new().replace(true);
        // The first replace also records the root's layout: the second
        // takes the steps the third will.
        let mut swap_at = 0;
        for _ in 0..2 {
            let plan = FaultPlan::record();
            let replaced = manager.restore_tenant_opts("acme", &backup, &replace);
            replaced.unwrap();
            swap_at = step_of(&plan.steps(), |s| s.step == Step::Swap);
        }
        let (fenced, until_fenced) = mpsc::channel();
        let (go, until_go) = mpsc::channel::<()>();
        let replacer = std::thread::spawn(move || {
            let _plan = FaultPlan::interrupt_step(swap_at, move || {
                fenced.send(()).unwrap();
                until_go.recv().unwrap();
            });
            manager
                .restore_tenant_opts("acme", &backup, &replace)
                .unwrap();
        });
        until_fenced.recv().unwrap();

        let db = RootConfig::new(&root).database_path("acme").unwrap();
        let (at, tenant) = (TenantPath::new(&root, &db, true), "acme".parse().unwrap());
        let fence = fence_path(Path::new("main.sqlite3"));
        let marks_at = {
            let plan = FaultPlan::record();
            assert!(matches!(look_again_at(at, &tenant), Again::Fenced));
            step_of(&plan.steps(), |s| s.name.ends_with(&fence))
        };
        let _plan = FaultPlan::interrupt_step(marks_at, move || {
            go.send(()).unwrap();
            replacer.join().unwrap();
        });
        let seen = look_again_at(at, &tenant);
        assert!(
            matches!(seen, Again::Database),
            "the tenant was called gone"
        );
    }
}
