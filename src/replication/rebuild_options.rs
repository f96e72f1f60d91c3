//! [`RebuildOptions`]: where a rebuild reads from, which tenants, to which
//! point in time, and how it runs.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use crate::fleet::{FleetOptions, Progress};
use crate::paths::ReplicaTarget;

/// How [`TenantManager::rebuild_from_replica`](crate::TenantManager::rebuild_from_replica)
/// runs.
///
/// ```
/// use tenanted::ReplicaTarget;
/// use tenanted::replication::RebuildOptions;
///
/// let options = RebuildOptions::new(ReplicaTarget::new("file:///var/backups/tenants"))
///     .jobs(8)
///     .only(["acme", "globex"])
///     .on_progress(|p| eprintln!("{}/{} {}", p.done, p.total, p.tenant));
/// ```
pub struct RebuildOptions {
    pub(super) target: ReplicaTarget,
    pub(super) at: Option<SystemTime>,
    pub(super) fleet: FleetOptions,
    pub(super) litestream: PathBuf,
    pub(super) env_remove: Vec<OsString>,
    pub(super) staging: Option<PathBuf>,
    pub(super) litestream_timeout: Duration,
}

impl RebuildOptions {
    /// Every tenant the replica at `target` holds, as of its latest sync,
    /// four workers per core (each mostly waits for `litestream
    /// restore`), with `litestream` from the `PATH`.
    pub fn new(target: ReplicaTarget) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut fleet = FleetOptions::new();
        fleet.set_jobs(cores * 4);
        RebuildOptions {
            target,
            at: None,
            fleet,
            litestream: PathBuf::from("litestream"),
            env_remove: Vec::new(),
            staging: None,
            litestream_timeout: Duration::from_secs(30 * 60),
        }
    }

    /// Rebuild only these tenants (they need not be listable: any replica
    /// URL Litestream reads will do).
    pub fn only<I, S>(mut self, tenants: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.fleet.set_only(tenants);
        self
    }

    /// Each tenant as it was at `time` (Litestream's `-timestamp`); a
    /// tenant with nothing in the replica by then is reported
    /// [`NotInReplica`](super::RebuildOutcome::NotInReplica).
    pub fn at(mut self, time: SystemTime) -> Self {
        self.at = Some(time);
        self
    }

    /// Tenants restored at a time (at least 1).
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.fleet.set_jobs(jobs);
        self
    }

    /// The `litestream` binary to run (default: `litestream` on the
    /// `PATH`).
    pub fn litestream(mut self, binary: impl Into<PathBuf>) -> Self {
        self.litestream = binary.into();
        self
    }

    /// Runs `litestream` without the environment variable `name` (for
    /// example `AWS_CA_BUNDLE` on machines where it names a bundle
    /// Litestream's S3 client rejects: "unable to add custom RootCAs").
    pub fn env_remove(mut self, name: impl Into<OsString>) -> Self {
        self.env_remove.push(name.into());
        self
    }

    /// The directory in which the rebuild makes its own private staging
    /// directory (a new `tenanted-rebuild-*` with a random name, mode
    /// 0700), where each tenant is restored before it is checked and
    /// published (default: the system's temporary directory). Must be
    /// outside the root. The run's own directory is removed when the run
    /// ends; it holds at most `jobs` tenants at a time. Nothing else in
    /// `dir` is touched but the `tenanted-rebuild-*` directories of
    /// earlier rebuilds that were killed (no run holds their lock).
    pub fn staging(mut self, dir: impl Into<PathBuf>) -> Self {
        self.staging = Some(dir.into());
        self
    }

    /// The longest one `litestream` run (a tenant's restore, or reading
    /// its replica's history) may take before it is killed and the tenant
    /// reported failed (default: 30 minutes; at most a year). A restore that hangs (a
    /// stalled store) then gives its worker back instead of holding it
    /// for ever.
    pub fn litestream_timeout(mut self, limit: Duration) -> Self {
        // At most a year: a deadline past that overflowed (`Duration::MAX`).
        self.litestream_timeout = limit.min(Duration::from_secs(365 * 24 * 3600));
        self
    }

    /// Called after each tenant, from the worker that restored it.
    pub fn on_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.fleet.progress = Some(Box::new(f));
        self
    }

    /// Stop starting tenants once `flag` is set: restores in progress
    /// finish, the rest are reported as skipped. Run the rebuild again to
    /// finish it: tenants already published are kept.
    pub fn cancel_on(mut self, flag: Arc<AtomicBool>) -> Self {
        self.fleet.cancel = Some(flag);
        self
    }
}

impl fmt::Debug for RebuildOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RebuildOptions")
            .field("target", &self.target)
            .field("only", &self.fleet.only)
            .field("at", &self.at)
            .field("jobs", &self.fleet.jobs)
            .field("litestream", &self.litestream)
            .finish_non_exhaustive()
    }
}
