//! Helpers for your own test suites (the `testing` feature): a temporary
//! root, a default tenant created once, and a tenant per test so parallel
//! tests never collide, all cleaned up afterwards.
//!
//! ```
//! use tenanted::testing::TestRoot;
//! # let migrations = tenanted::Migrations::new(vec![
//! #     tenanted::Migration::new("a", "CREATE TABLE items (title TEXT);"),
//! # ]);
//!
//! let root = TestRoot::new(migrations)?;            // a fresh temporary root
//! let tenant = root.tenant()?;                      // named after this test, unique
//! let conn = root.manager().connection(tenant.name())?;
//! conn.execute("INSERT INTO items (title) VALUES ('x')", [])?;
//! # drop(conn);
//! assert_eq!(root.default_tenant()?.name(), "test-tenant"); // as tenant.name()
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`shared`] gives one root for the whole test binary, with its default
//! tenant created once, for suites whose tests all use the same schema.

use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};
use crate::manager::TenantManager;
use crate::migrate::Migrations;
use crate::name::TenantName;
use crate::paths::RootConfig;

/// Injected file-system faults: fail the Nth step an operation takes on
/// this thread, to test what every failure leaves behind.
///
/// ```
/// use tenanted::testing::faults::FaultPlan;
///
/// let plan = FaultPlan::record();          // count the steps, fail none
/// // ... run an operation on this thread ...
/// let steps = plan.steps().len();
/// drop(plan);
/// let _failing = FaultPlan::fail_step(1, 5); // EIO on the first step
/// # let _ = steps;
/// ```
pub mod faults {
    pub use crate::fs::{FaultPlan, Step, StepTaken};
}

/// The default tenant's name, as activerecord-tenanted's `test-tenant`.
pub const DEFAULT_TENANT: &str = "test-tenant";

/// Directory-name prefix of every temporary root.
const PREFIX: &str = "tenanted-test-";

/// A temporary root directory with a manager on it; removed (with every
/// tenant in it) when dropped.
#[derive(Debug)]
pub struct TestRoot {
    manager: TenantManager,
    default: OnceLock<TenantName>,
    // Declared last: the manager goes before its directory does.
    dir: tempfile::TempDir,
}

impl TestRoot {
    /// A fresh root under the system's temporary directory.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the directory cannot be made; as
    /// [`TenantManagerBuilder::build`](crate::TenantManagerBuilder::build).
    pub fn new(migrations: Migrations) -> Result<Self> {
        let dir = crate::fs::sys::make_temp_dir(&format!("{PREFIX}{}-", std::process::id()))
            .map_err(|e| Error::io(None, std::env::temp_dir(), "creating a test root", e))?;
        let manager = TenantManager::builder(RootConfig::new(dir.path()), migrations).build()?;
        Ok(TestRoot {
            manager,
            default: OnceLock::new(),
            dir,
        })
    }

    /// The manager for this root.
    pub fn manager(&self) -> &TenantManager {
        &self.manager
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `test-tenant`, created on first use and kept for the root's life.
    ///
    /// # Errors
    ///
    /// As [`TenantManager::create_tenant_if_not_exists`].
    pub fn default_tenant(&self) -> Result<&TenantName> {
        if let Some(name) = self.default.get() {
            return Ok(name);
        }
        let name = TenantName::new(DEFAULT_TENANT)?;
        self.manager.create_tenant_if_not_exists(name.as_str())?;
        Ok(self.default.get_or_init(|| name))
    }

    /// A new tenant for the calling test, named after it (the test
    /// harness names each test's thread) plus a counter, so tests running
    /// in parallel never share one. Destroyed when the guard drops.
    ///
    /// # Errors
    ///
    /// As [`TenantManager::create_tenant`].
    pub fn tenant(&self) -> Result<TestTenant<'_>> {
        let thread = std::thread::current();
        self.tenant_named(thread.name().unwrap_or("test"))
    }

    /// As [`tenant`](Self::tenant), named after `hint` instead of the thread.
    ///
    /// # Errors
    ///
    /// As [`TenantManager::create_tenant`].
    pub fn tenant_named(&self, hint: &str) -> Result<TestTenant<'_>> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = TenantName::new(&unique_name(hint, n))?;
        self.manager.create_tenant(name.as_str())?;
        Ok(TestTenant {
            name,
            manager: &self.manager,
        })
    }
}

/// A valid tenant name from any hint: unsupported characters become `_`,
/// the counter keeps it unique, the length stays within the limit.
fn unique_name(hint: &str, n: usize) -> String {
    let cleaned: String = hint
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '_',
        })
        .take(80)
        .collect();
    format!("t-{cleaned}-{n}")
}

/// A tenant made for one test; destroyed when dropped.
#[derive(Debug)]
pub struct TestTenant<'a> {
    name: TenantName,
    manager: &'a TenantManager,
}

impl TestTenant<'_> {
    /// Its name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// Its name, as [`TenantName::as_str`].
    pub fn as_str(&self) -> &str {
        self.name.as_str()
    }
}

impl Drop for TestTenant<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.manager.destroy_tenant(self.name.as_str()) {
            tracing::warn!(tenant = %self.name, error = %e, "test tenant left behind");
        }
    }
}

/// What [`shared`]'s closure may return: [`Migrations`], or a
/// `Result<Migrations>` as [`embed_migrations!`](crate::embed_migrations)
/// and [`Migrations::from_dir`] give.
pub trait IntoMigrations {
    /// The migrations, or why there are none.
    ///
    /// # Errors
    ///
    /// The `Result`'s own error.
    fn into_migrations(self) -> Result<Migrations>;
}

impl IntoMigrations for Migrations {
    fn into_migrations(self) -> Result<Migrations> {
        Ok(self)
    }
}

impl IntoMigrations for Result<Migrations> {
    fn into_migrations(self) -> Result<Migrations> {
        self
    }
}

/// One root for the whole test binary, made on first call with
/// `migrations()`, its default tenant already created; later calls return
/// the same root (their closure is not run). The closure returns
/// [`Migrations`] or a `Result` of them:
///
/// ```
/// let root = tenanted::testing::shared(|| {
///     tenanted::embed_migrations!("$CARGO_MANIFEST_DIR/schema/migrations")
/// })?;
/// let conn = root.manager().connection(root.default_tenant()?.name())?;
/// # drop(conn);
/// # Ok::<(), tenanted::Error>(())
/// ```
///
/// A `static` is never dropped, so this root outlives the test binary: each
/// first call removes the roots that earlier test processes, no longer
/// running, left behind.
///
/// # Errors
///
/// As [`TestRoot::new`] and [`TestRoot::default_tenant`], on the first
/// call, and the closure's own error.
pub fn shared<M: IntoMigrations>(migrations: impl FnOnce() -> M) -> Result<&'static TestRoot> {
    static SHARED: OnceLock<TestRoot> = OnceLock::new();
    if let Some(root) = SHARED.get() {
        return Ok(root);
    }
    remove_stale_roots();
    let root = TestRoot::new(migrations().into_migrations()?)?;
    root.default_tenant()?;
    // A racing first call may have won; its root is the one kept.
    Ok(SHARED.get_or_init(|| root))
}

/// Removes `tenanted-test-PID-*` directories whose process is gone.
fn remove_stale_roots() {
    let Ok(entries) = crate::fs::sys::read_dir_path(&std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok());
        // Only "no such process" means gone (not "not yours").
        let gone = pid
            .and_then(rustix::process::Pid::from_raw)
            .is_some_and(|pid| {
                rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH)
            });
        if gone {
            let _ = crate::fs::sys::remove_tree(&entry.path());
        }
    }
}
