//! What a backup or restore did: [`BackupOutcome`] (one tenant),
//! [`BackupReport`] (the fleet, one [`TenantBackup`] per tenant) and
//! [`RestoreOutcome`], with the text the CLI prints.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::migrate::Migrations;
use crate::name::TenantName;
use crate::storage::{Restored, Snapshot};

/// What [`TenantManager::backup_tenant`](crate::TenantManager::backup_tenant)
/// wrote.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let manager = tenanted::TenantManager::builder(
/// #     tenanted::RootConfig::new(dir.path().join("root")), tenanted::Migrations::new(vec![])).build()?;
/// # manager.create_tenant("acme")?;
/// let outcome = manager.backup_tenant("acme", dir.path().join("acme.sqlite3"))?;
/// assert_eq!((outcome.tenant.as_str(), outcome.version), ("acme", 0));
/// assert!(outcome.bytes > 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BackupOutcome {
    /// The tenant.
    pub tenant: TenantName,
    /// The backup file written.
    pub path: PathBuf,
    /// The schema version of the copy.
    pub version: usize,
    /// The backup's size in bytes.
    pub bytes: u64,
    /// Time taken.
    pub duration: Duration,
}

impl BackupOutcome {
    pub(crate) fn new(
        tenant: TenantName,
        path: PathBuf,
        snapshot: Snapshot,
        started: Instant,
    ) -> Self {
        BackupOutcome {
            tenant,
            path,
            // A negative user_version is no tenanted database's; shown as 0.
            version: usize::try_from(snapshot.version).unwrap_or(0),
            bytes: snapshot.bytes,
            duration: started.elapsed(),
        }
    }
}

/// One tenant's line in a [`BackupReport`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TenantBackup {
    /// The tenant.
    pub tenant: TenantName,
    /// Where its backup is (or would have been).
    pub path: PathBuf,
    /// What was written; `None` on failure.
    pub outcome: Option<BackupOutcome>,
    /// Why it failed; `None` on success. Shared, so a report can be cloned.
    pub error: Option<Arc<Error>>,
}

impl TenantBackup {
    /// Whether the tenant was copied.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }

    /// Whether the tenant was destroyed after the run listed it and before
    /// its turn came: it is not in the backup, and that is no failure.
    pub fn gone(&self) -> bool {
        matches!(
            self.error.as_deref(),
            Some(Error::TenantDoesNotExist { .. } | Error::TenantBeingDestroyed { .. })
        )
    }
}

/// What [`TenantManager::backup_all`](crate::TenantManager::backup_all)
/// did, tenant by tenant (sorted by name), with totals.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let manager = tenanted::TenantManager::builder(
/// #     tenanted::RootConfig::new(dir.path().join("root")), tenanted::Migrations::new(vec![])).build()?;
/// # manager.create_tenant("acme")?;
/// let report = manager.backup_all(dir.path().join("backup"), &tenanted::BackupOptions::new())?;
/// assert_eq!((report.succeeded(), report.failed(), report.gone()), (1, 0, 0));
/// assert!(report.is_success());
/// assert!(report.to_string().starts_with("1/1 tenants backed up"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BackupReport {
    /// The backup directory (a root with the same layout).
    pub dir: PathBuf,
    /// One entry per tenant that was attempted.
    pub tenants: Vec<TenantBackup>,
    /// Tenants not attempted because a cancel stopped the run.
    pub skipped: Vec<TenantName>,
    /// Whether the caller's cancel flag stopped the run early.
    pub cancelled: bool,
    /// Directories of the root that could not be listed.
    pub listing_errors: Vec<Arc<Error>>,
    /// Wall-clock time of the whole run.
    pub duration: Duration,
}

impl BackupReport {
    /// Tenants copied.
    pub fn succeeded(&self) -> usize {
        self.tenants.iter().filter(|t| t.succeeded()).count()
    }

    /// Tenants destroyed during the run before their turn (not in the
    /// backup, not failures).
    pub fn gone(&self) -> usize {
        self.tenants.iter().filter(|t| t.gone()).count()
    }

    /// Tenants that failed.
    pub fn failed(&self) -> usize {
        self.tenants.len() - self.succeeded() - self.gone()
    }

    /// The failed tenants' lines.
    pub fn failures(&self) -> impl Iterator<Item = &TenantBackup> {
        self.tenants.iter().filter(|t| !t.succeeded() && !t.gone())
    }

    /// Bytes written.
    pub fn bytes(&self) -> u64 {
        let outcomes = self.tenants.iter().filter_map(|t| t.outcome.as_ref());
        outcomes.map(|o| o.bytes).sum()
    }

    /// Whether every listed tenant still there was copied, nothing was
    /// skipped and every directory could be listed.
    pub fn is_success(&self) -> bool {
        self.failed() == 0 && self.skipped.is_empty() && self.listing_errors.is_empty()
    }
}

impl fmt::Display for BackupReport {
    /// One line per failure, then
    /// `3/4 tenants backed up to DIR (1234 bytes) in 1.2s; 1 failed, 1 gone`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in self.failures() {
            let error = t.error.as_deref().map(ToString::to_string);
            writeln!(f, "✗ {}: {}", t.tenant, error.unwrap_or_default())?;
        }
        for e in &self.listing_errors {
            writeln!(f, "✗ listing: {e}")?;
        }
        write!(
            f,
            "{}/{} tenants backed up to {} ({} bytes) in {:.1?}",
            self.succeeded(),
            self.tenants.len() + self.skipped.len(),
            self.dir.display(),
            self.bytes(),
            self.duration
        )?;
        let notes = [
            (self.failed(), "failed"),
            (self.gone(), "gone (destroyed during the run)"),
            (self.skipped.len(), "skipped"),
        ];
        let notes: Vec<String> = (notes.iter().filter(|(n, _)| *n > 0))
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        if !notes.is_empty() {
            write!(f, "; {}", notes.join(", "))?;
        }
        Ok(())
    }
}

/// What [`TenantManager::restore_tenant`](crate::TenantManager::restore_tenant)
/// published.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let manager = tenanted::TenantManager::builder(
/// #     tenanted::RootConfig::new(dir.path().join("root")), tenanted::Migrations::new(vec![])).build()?;
/// # manager.create_tenant("acme")?;
/// # manager.backup_tenant("acme", dir.path().join("acme.sqlite3"))?;
/// let outcome = manager.restore_tenant("globex", dir.path().join("acme.sqlite3"))?;
/// assert!(outcome.is_current() && !outcome.replaced);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RestoreOutcome {
    /// The tenant restored.
    pub tenant: TenantName,
    /// Its database file.
    pub path: PathBuf,
    /// The restored database's schema version.
    pub version: usize,
    /// The latest version the migrations know.
    pub latest_version: usize,
    /// Migrations the restored tenant still needs (it cannot be opened
    /// until they run: `migrate_tenant`, `tenanted migrate`).
    pub pending: Vec<String>,
    /// Whether an existing tenant was replaced.
    pub replaced: bool,
    /// The database's size in bytes.
    pub bytes: u64,
    /// Time taken.
    pub duration: Duration,
}

impl RestoreOutcome {
    pub(crate) fn new(
        tenant: TenantName,
        path: PathBuf,
        restored: Restored,
        migrations: &Migrations,
        started: Instant,
    ) -> Self {
        let latest_version = migrations.latest_version();
        let pending = (restored.version + 1..=latest_version)
            .filter_map(|v| migrations.get(v))
            .map(|m| m.name().to_owned())
            .collect();
        RestoreOutcome {
            tenant,
            path,
            version: restored.version,
            latest_version,
            pending,
            replaced: restored.replaced,
            bytes: restored.bytes,
            duration: started.elapsed(),
        }
    }

    /// Whether the restored tenant is at the latest version.
    pub fn is_current(&self) -> bool {
        self.pending.is_empty()
    }
}
