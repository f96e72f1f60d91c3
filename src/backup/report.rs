//! What a backup or restore did: [`BackupOutcome`] (one tenant),
//! [`BackupReport`] (the fleet report over [`BackupCounts`], keeping the
//! [`TenantBackup`] of each tenant that failed) and [`RestoreOutcome`],
//! with the text the CLI prints.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::fleet::{FleetCounts, FleetReport, grouped};
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

/// One tenant's line: in a [`BackupReport`] (tenants that failed), or
/// given to [`BackupOptions::after_each`](crate::BackupOptions::after_each)
/// (every tenant).
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
        self.error.as_deref().is_some_and(Error::says_tenant_gone)
    }
}

impl fmt::Display for TenantBackup {
    /// `✓ acme: 4096 bytes at version 3 in 1.2ms`, `✗ acme: why` or
    /// `- acme: gone (destroyed during the run)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.outcome, &self.error) {
            (Some(o), None) => write!(
                f,
                "✓ {}: {} bytes at version {} in {:.1?}",
                self.tenant, o.bytes, o.version, o.duration
            ),
            _ if self.gone() => write!(f, "- {}: gone (destroyed during the run)", self.tenant),
            (_, error) => {
                let error = error.as_deref().map(ToString::to_string);
                write!(f, "✗ {}: {}", self.tenant, error.unwrap_or_default())
            }
        }
    }
}

/// What [`TenantManager::backup_all`](crate::TenantManager::backup_all)
/// did: totals over every tenant, the failed tenants' lines, and what
/// every fleet run reports ([`FleetReport`]).
///
/// The report keeps no line for a tenant copied or gone, so it stays the
/// same size over a million tenants; a caller who wants every tenant's
/// line gets each one in
/// [`BackupOptions::after_each`](crate::BackupOptions::after_each) as it
/// happens.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let manager = tenanted::TenantManager::builder(
/// #     tenanted::RootConfig::new(dir.path().join("root")), tenanted::Migrations::new(vec![])).build()?;
/// # manager.create_tenant("acme")?;
/// let report = manager.backup_all(dir.path().join("backup"), &tenanted::BackupOptions::new())?;
/// assert_eq!((report.succeeded(), report.failed(), report.gone()), (1, 0, 0));
/// assert!(report.is_success() && report.bytes() > 0);
/// assert!(report.to_string().starts_with("1/1 tenants backed up"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type BackupReport = FleetReport<BackupCounts>;

/// What a [`BackupReport`] counts over every tenant attempted, and the
/// directory the copies went to.
#[derive(Debug, Clone)]
pub struct BackupCounts {
    dir: PathBuf,
    tenants: usize,
    succeeded: usize,
    gone: usize,
    bytes: u64,
}

impl BackupCounts {
    /// Nothing counted yet, in a backup into `dir`.
    pub(super) fn new(dir: PathBuf) -> Self {
        BackupCounts {
            dir,
            tenants: 0,
            succeeded: 0,
            gone: 0,
            bytes: 0,
        }
    }
}

impl FleetCounts for BackupCounts {
    type Line = TenantBackup;

    fn tenant(line: &TenantBackup) -> &TenantName {
        &line.tenant
    }

    fn count(&mut self, line: &TenantBackup) -> bool {
        self.tenants += 1;
        self.succeeded += usize::from(line.succeeded());
        self.gone += usize::from(line.gone());
        self.bytes += line.outcome.as_ref().map_or(0, |o| o.bytes);
        !line.succeeded() && !line.gone()
    }

    fn absorb(&mut self, other: &Self) {
        self.tenants += other.tenants;
        self.succeeded += other.succeeded;
        self.gone += other.gone;
        self.bytes += other.bytes;
    }

    fn total(&self) -> usize {
        self.tenants
    }

    fn succeeded(&self) -> usize {
        self.succeeded
    }

    /// Tenants gone during the run are neither copied nor failed.
    fn failed(&self) -> usize {
        self.tenants - self.succeeded - self.gone
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tenants backed up to {} ({} bytes",
            self.dir.display(),
            self.bytes
        )?;
        if self.gone > 0 {
            write!(f, ", {} gone: destroyed during the run", grouped(self.gone))?;
        }
        write!(f, ")")
    }

    #[cfg(feature = "serde")]
    fn serialize_head<M: serde::ser::SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        map.serialize_entry("dir", &self.dir.display().to_string())
    }

    #[cfg(feature = "serde")]
    fn serialize_totals<M: serde::ser::SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        map.serialize_entry("gone", &self.gone)?;
        map.serialize_entry("bytes", &self.bytes)
    }
}

impl FleetReport<BackupCounts> {
    /// The backup directory (a root with the same layout).
    pub fn dir(&self) -> &Path {
        &self.counts.dir
    }

    /// Tenants destroyed during the run before their turn (not in the
    /// backup, not failures).
    pub fn gone(&self) -> usize {
        self.counts.gone
    }

    /// Bytes written.
    pub fn bytes(&self) -> u64 {
        self.counts.bytes
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
