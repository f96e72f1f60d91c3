//! [`FleetOptions`]: what every fleet run takes (how many threads, which
//! tenants, the progress callback, the cancel flag), embedded by
//! `MigrateOptions` and `BackupOptions`, and the [`Progress`] its callback
//! is given.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::name::TenantName;

/// A callback of a fleet run.
pub(crate) type Callback<T> = Box<dyn Fn(&T) + Send + Sync>;

/// The options every fleet run shares.
pub(crate) struct FleetOptions {
    /// Worker threads (at least 1).
    pub(crate) jobs: usize,
    /// Only these tenants, in this order; else every tenant on disk.
    pub(crate) only: Option<Vec<String>>,
    pub(crate) progress: Option<Callback<Progress>>,
    pub(crate) cancel: Option<Arc<AtomicBool>>,
}

impl FleetOptions {
    /// One worker per core, every tenant, no callback, no cancel flag.
    pub(crate) fn new() -> Self {
        FleetOptions {
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            only: None,
            progress: None,
            cancel: None,
        }
    }

    /// `jobs` workers (at least one).
    pub(crate) fn set_jobs(&mut self, jobs: usize) {
        self.jobs = jobs.max(1);
    }

    /// Only `tenants`, in their order.
    pub(crate) fn set_only<I, S>(&mut self, tenants: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.only = Some(tenants.into_iter().map(Into::into).collect());
    }

    /// Whether the caller's cancel flag is set.
    pub(crate) fn cancelled(&self) -> bool {
        (self.cancel.as_ref()).is_some_and(|c| c.load(Ordering::SeqCst))
    }
}

/// Where a fleet run is (`migrate_all`, or `backup_all` through
/// [`BackupOptions::on_progress`](crate::BackupOptions::on_progress)),
/// given to the progress callback.
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
/// # let dir = tempfile::tempdir()?;
/// # let manager = tenanted::TenantManager::builder(
/// #     tenanted::RootConfig::new(dir.path()),
/// #     tenanted::Migrations::new(vec![tenanted::Migration::new("a", "CREATE TABLE a (x);")]),
/// # ).build()?;
/// # manager.create_tenant("acme")?;
/// let seen = Arc::new(AtomicUsize::new(0));
/// let counter = Arc::clone(&seen);
/// manager.migrate_all(&tenanted::MigrateOptions::new().on_progress(move |p| {
///     assert_eq!(p.total, 1);
///     counter.store(p.done, Ordering::SeqCst);
/// }))?;
/// assert_eq!(seen.load(Ordering::SeqCst), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Progress {
    /// Tenants finished so far, this one included.
    pub done: usize,
    /// Tenants in the run, as counted when it started (never less than
    /// `done`: a tenant created since is counted when it is reached).
    pub total: usize,
    /// The tenant just finished.
    pub tenant: TenantName,
    /// Whether it succeeded.
    pub ok: bool,
}
