//! What a rebuild did: [`TenantRebuild`] per tenant, [`RebuildReport`]
//! for the run.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::Error;
use crate::name::TenantName;

/// What became of one tenant.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RebuildOutcome {
    /// Restored from the replica, checked and published.
    Restored {
        /// Its schema version.
        version: usize,
        /// Its size in bytes.
        bytes: u64,
        /// Migrations it still needs before it can be opened.
        pending: Vec<String>,
    },
    /// The root already has it (published by an earlier, interrupted run,
    /// or never lost): left as it is.
    AlreadyPresent,
    /// The replica has nothing of it (at the point in time asked for).
    NotInReplica,
    /// Restoring, checking or publishing it failed; nothing of it was
    /// published.
    Failed(Arc<Error>),
}

/// One tenant's line in a [`RebuildReport`].
#[derive(Debug, Clone)]
pub struct TenantRebuild {
    /// The tenant.
    pub tenant: TenantName,
    /// What became of it.
    pub outcome: RebuildOutcome,
    /// How long it took.
    pub duration: Duration,
}

impl TenantRebuild {
    /// Whether it is in the root now, restored by this run or before.
    pub fn in_root(&self) -> bool {
        matches!(
            self.outcome,
            RebuildOutcome::Restored { .. } | RebuildOutcome::AlreadyPresent
        )
    }

    /// Whether it failed.
    pub fn failed(&self) -> bool {
        matches!(self.outcome, RebuildOutcome::Failed(_))
    }
}

/// What [`TenantManager::rebuild_from_replica`](crate::TenantManager::rebuild_from_replica)
/// did, tenant by tenant.
#[derive(Debug, Clone)]
pub struct RebuildReport {
    /// The replica URL.
    pub replica: String,
    /// The point in time asked for (`None`: the latest).
    pub at: Option<SystemTime>,
    /// Every tenant started, in name order.
    pub tenants: Vec<TenantRebuild>,
    /// Tenants not started because the run was cancelled.
    pub skipped: Vec<TenantName>,
    /// Whether the run was cancelled before every tenant was started.
    pub cancelled: bool,
    /// How long the run took.
    pub duration: Duration,
}

impl RebuildReport {
    /// Tenants this run restored.
    pub fn restored(&self) -> usize {
        self.count(|o| matches!(o, RebuildOutcome::Restored { .. }))
    }

    /// Tenants that were already in the root.
    pub fn already_present(&self) -> usize {
        self.count(|o| matches!(o, RebuildOutcome::AlreadyPresent))
    }

    /// Tenants the replica had nothing of.
    pub fn not_in_replica(&self) -> usize {
        self.count(|o| matches!(o, RebuildOutcome::NotInReplica))
    }

    /// Tenants that failed.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, RebuildOutcome::Failed(_)))
    }

    /// Restored tenants behind the code (run `migrate_all` next).
    pub fn behind(&self) -> usize {
        self.count(|o| matches!(o, RebuildOutcome::Restored { pending, .. } if !pending.is_empty()))
    }

    /// Whether the replica held no tenant at all: most likely the wrong
    /// URL (bucket or path) or endpoint, since a replica that tenants were
    /// ever replicated to holds them.
    pub fn found_nothing(&self) -> bool {
        self.tenants.is_empty() && self.skipped.is_empty()
    }

    /// No failure, nothing skipped.
    pub fn is_success(&self) -> bool {
        self.failed() == 0 && self.skipped.is_empty()
    }

    fn count(&self, f: impl Fn(&RebuildOutcome) -> bool) -> usize {
        self.tenants.iter().filter(|t| f(&t.outcome)).count()
    }
}

impl fmt::Display for RebuildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.tenants {
            if let RebuildOutcome::Failed(e) = &line.outcome {
                writeln!(f, "{}: FAILED: {e}", line.tenant)?;
            }
        }
        write!(
            f,
            "rebuilt {}/{} tenants from {} in {:.1} s: {} restored, {} already in the root, {} not in the replica, {} failed",
            self.restored() + self.already_present(),
            self.tenants.len() + self.skipped.len(),
            self.replica,
            self.duration.as_secs_f64(),
            self.restored(),
            self.already_present(),
            self.not_in_replica(),
            self.failed(),
        )?;
        if self.behind() > 0 {
            write!(f, "; {} behind the code: run migrate", self.behind())?;
        }
        if self.found_nothing() {
            write!(
                f,
                "; the replica holds no tenant: if tenants were replicated there, check its URL (bucket and path) and endpoint, and that the layout given (RootConfig's template and buckets; the CLI's --template and --buckets) is the one the lost root had"
            )?;
        }
        if self.cancelled {
            write!(
                f,
                "; interrupted, {} not started: run the rebuild again to finish",
                self.skipped.len()
            )?;
        }
        Ok(())
    }
}
