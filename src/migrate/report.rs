//! What a fleet migration did ([`MigrationReport`], one [`TenantReport`]
//! per tenant) and where every tenant's schema is ([`StatusReport`], one
//! [`TenantStatus`] per tenant), with the text the CLI prints.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::tenant::MigrationOutcome;
use crate::error::Error;
use crate::name::TenantName;

/// One tenant's line in a [`MigrationReport`].
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let manager = tenanted::TenantManager::builder(
/// #     tenanted::RootConfig::new(dir.path()),
/// #     tenanted::Migrations::new(vec![tenanted::Migration::new("a", "CREATE TABLE a (x);")]),
/// # ).build()?;
/// # manager.create_tenant("acme")?;
/// let report = manager.migrate_all(&tenanted::MigrateOptions::new())?;
/// let line = &report.tenants[0];
/// assert_eq!((line.tenant.as_str(), line.from, line.to), ("acme", Some(1), Some(1)));
/// assert!(line.succeeded() && !line.changed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TenantReport {
    /// The tenant.
    pub tenant: TenantName,
    /// Its version before, when it could be read.
    pub from: Option<usize>,
    /// Its version after (on failure: the version it stays at).
    pub to: Option<usize>,
    /// Migrations run, in order (undone ones for a rollback).
    pub applied: Vec<String>,
    /// Time spent on it.
    pub duration: Duration,
    /// Why it failed; `None` on success. Shared, so a report can be cloned.
    pub error: Option<Arc<Error>>,
}

impl TenantReport {
    pub(super) fn from_result(
        tenant: TenantName,
        result: Result<MigrationOutcome, Error>,
        started: Instant,
    ) -> Self {
        match result {
            Ok(o) => TenantReport {
                tenant,
                from: Some(o.from),
                to: Some(o.to),
                applied: o.applied,
                duration: o.duration,
                error: None,
            },
            Err(e) => {
                let version = match &e {
                    Error::Migration { version, .. } => Some(*version),
                    Error::SchemaAheadOfCode {
                        current_version, ..
                    } => Some(*current_version),
                    _ => None,
                };
                TenantReport {
                    tenant,
                    from: version,
                    to: version,
                    applied: Vec::new(),
                    duration: started.elapsed(),
                    error: Some(Arc::new(e)),
                }
            }
        }
    }

    /// Whether the tenant ended where it was asked to.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }

    /// Whether migrations ran on it.
    pub fn changed(&self) -> bool {
        !self.applied.is_empty()
    }
}

/// What [`TenantManager::migrate_all`](crate::TenantManager::migrate_all)
/// did, tenant by tenant (sorted by name), with totals.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let manager = tenanted::TenantManager::builder(
/// #     tenanted::RootConfig::new(dir.path()),
/// #     tenanted::Migrations::new(vec![tenanted::Migration::new("a", "CREATE TABLE a (x);")]),
/// # ).build()?;
/// # manager.create_tenant("acme")?;
/// let report = manager.migrate_all(&tenanted::MigrateOptions::new())?;
/// assert_eq!((report.succeeded(), report.migrated(), report.up_to_date(), report.failed()), (1, 0, 1, 0));
/// assert!(report.is_success());
/// assert!(report.to_string().starts_with("1/1 tenants migrated to version 1"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MigrationReport {
    /// The version every tenant was asked to reach.
    pub target_version: usize,
    /// One entry per tenant that was attempted.
    pub tenants: Vec<TenantReport>,
    /// Tenants not attempted because `fail_fast` or a cancel stopped the run.
    pub skipped: Vec<TenantName>,
    /// Whether the caller's cancel flag
    /// ([`MigrateOptions::cancel_on`](crate::MigrateOptions::cancel_on))
    /// stopped the run before every tenant was started.
    pub cancelled: bool,
    /// Directories that could not be listed.
    pub listing_errors: Vec<Arc<Error>>,
    /// Wall-clock time of the whole run.
    pub duration: Duration,
}

impl MigrationReport {
    /// Tenants that succeeded (migrated or already there).
    pub fn succeeded(&self) -> usize {
        self.tenants.iter().filter(|t| t.succeeded()).count()
    }

    /// Tenants on which migrations ran.
    pub fn migrated(&self) -> usize {
        self.tenants
            .iter()
            .filter(|t| t.succeeded() && t.changed())
            .count()
    }

    /// Tenants already at the target.
    pub fn up_to_date(&self) -> usize {
        self.tenants
            .iter()
            .filter(|t| t.succeeded() && !t.changed())
            .count()
    }

    /// Tenants that failed.
    pub fn failed(&self) -> usize {
        self.tenants.len() - self.succeeded()
    }

    /// The failed tenants' reports.
    pub fn failures(&self) -> impl Iterator<Item = &TenantReport> {
        self.tenants.iter().filter(|t| !t.succeeded())
    }

    /// Whether everything succeeded, nothing was skipped and every
    /// directory could be listed.
    pub fn is_success(&self) -> bool {
        self.failed() == 0 && self.skipped.is_empty() && self.listing_errors.is_empty()
    }
}

fn version_label(v: Option<usize>) -> String {
    v.map_or_else(|| "?".to_owned(), |v| v.to_string())
}

impl fmt::Display for TenantReport {
    /// `✓ acme: 2 → 4 (names) in 1.2ms`, `✓ acme: already at version 4`
    /// or `✗ acme: FAILED at version 2: why`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            Some(e) => write!(
                f,
                "✗ {}: FAILED at version {}: {e}",
                self.tenant,
                version_label(self.to)
            ),
            None if self.changed() => write!(
                f,
                "✓ {}: {} → {} ({}) in {:.1?}",
                self.tenant,
                version_label(self.from),
                version_label(self.to),
                self.applied.join(", "),
                self.duration
            ),
            None => write!(
                f,
                "✓ {}: already at version {}",
                self.tenant,
                version_label(self.to)
            ),
        }
    }
}

/// The last line of a [`MigrationReport`], from
/// [`MigrationReport::summary`].
#[derive(Debug, Clone, Copy)]
pub struct MigrationSummary<'a>(&'a MigrationReport);

impl MigrationReport {
    /// Its summary line alone (totals, failed tenant names, skipped,
    /// duration), for callers that printed each tenant as it finished.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// let report = manager.migrate_all(&tenanted::MigrateOptions::new())?;
    /// assert!(report.summary().to_string().starts_with("0/0 tenants migrated"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn summary(&self) -> MigrationSummary<'_> {
        MigrationSummary(self)
    }
}

impl fmt::Display for MigrationSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        write!(
            f,
            "{}/{} tenants migrated to version {} ({} changed, {} already there)",
            r.succeeded(),
            r.tenants.len(),
            r.target_version,
            r.migrated(),
            r.up_to_date()
        )?;
        if r.failed() > 0 {
            let names: Vec<&str> = r.failures().map(|t| t.tenant.as_str()).collect();
            write!(f, ", {} failed: {}", r.failed(), names.join(", "))?;
        }
        if !r.skipped.is_empty() {
            let why = if r.cancelled {
                "not started: cancelled"
            } else {
                "skipped after the first failure"
            };
            write!(f, ", {} {why}", r.skipped.len())?;
        }
        write!(f, " in {:.1?}", r.duration)
    }
}

impl fmt::Display for MigrationReport {
    /// Lists migrated and failed tenants (up-to-date ones only as a count),
    /// then the summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.tenants {
            if !t.succeeded() || t.changed() {
                writeln!(f, "{t}")?;
            }
        }
        for e in &self.listing_errors {
            writeln!(f, "✗ {e}")?;
        }
        write!(f, "{}", self.summary())
    }
}

/// One tenant's line in a [`StatusReport`].
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let manager = tenanted::TenantManager::builder(
/// #     tenanted::RootConfig::new(dir.path()),
/// #     tenanted::Migrations::new(vec![tenanted::Migration::new("a", "CREATE TABLE a (x);")]),
/// # ).build()?;
/// # manager.create_tenant("acme")?;
/// let status = manager.migration_status()?;
/// assert!(status.tenants[0].is_current(status.latest_version));
/// assert!(status.tenants[0].pending.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TenantStatus {
    /// The tenant.
    pub tenant: TenantName,
    /// Its schema version, or why it could not be read.
    pub version: Result<usize, Arc<Error>>,
    /// Migrations not yet applied to it.
    pub pending: Vec<String>,
}

impl TenantStatus {
    /// Whether it is at the latest version.
    pub fn is_current(&self, latest: usize) -> bool {
        matches!(self.version, Ok(v) if v == latest)
    }

    /// Whether it is newer than the migrations this program knows.
    pub fn is_ahead(&self, latest: usize) -> bool {
        matches!(self.version, Ok(v) if v > latest)
    }
}

/// Every tenant's schema version, from
/// [`TenantManager::migration_status`](crate::TenantManager::migration_status).
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let manager = tenanted::TenantManager::builder(
/// #     tenanted::RootConfig::new(dir.path()),
/// #     tenanted::Migrations::new(vec![tenanted::Migration::new("a", "CREATE TABLE a (x);")]),
/// # ).build()?;
/// # manager.create_tenant("acme")?;
/// let status = manager.migration_status()?;
/// assert_eq!((status.current(), status.behind(), status.ahead(), status.unreadable()), (1, 0, 0, 0));
/// assert!(status.all_current());
/// assert!(status.to_string().ends_with("Overall: 1/1 tenants current, 0 migration(s) pending"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StatusReport {
    /// The version the migrations reach.
    pub latest_version: usize,
    /// One entry per tenant, sorted by name.
    pub tenants: Vec<TenantStatus>,
    /// Directories that could not be listed.
    pub listing_errors: Vec<Arc<Error>>,
}

impl StatusReport {
    /// Tenants at the latest version.
    pub fn current(&self) -> usize {
        self.tenants
            .iter()
            .filter(|t| t.is_current(self.latest_version))
            .count()
    }

    /// Tenants with pending migrations.
    pub fn behind(&self) -> usize {
        self.tenants
            .iter()
            .filter(|t| !t.pending.is_empty())
            .count()
    }

    /// Tenants newer than the code.
    pub fn ahead(&self) -> usize {
        self.tenants
            .iter()
            .filter(|t| t.is_ahead(self.latest_version))
            .count()
    }

    /// Tenants whose version could not be read.
    pub fn unreadable(&self) -> usize {
        self.tenants.iter().filter(|t| t.version.is_err()).count()
    }

    /// Pending migrations summed over all tenants.
    pub fn pending_migrations(&self) -> usize {
        self.tenants.iter().map(|t| t.pending.len()).sum()
    }

    /// Whether every tenant is at the latest version.
    pub fn all_current(&self) -> bool {
        self.current() == self.tenants.len() && self.listing_errors.is_empty()
    }
}

impl StatusReport {
    /// The report as text: with `all`, every tenant (as `Display`);
    /// without, only the tenants that are not current, then the summary.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// # manager.create_tenant("acme")?;
    /// let status = manager.migration_status()?;
    /// assert_eq!(status.to_text(false), "Overall: 1/1 tenants current, 0 migration(s) pending");
    /// assert!(status.to_text(true).starts_with("▸ acme: ✓ up to date"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_text(&self, all: bool) -> String {
        let mut text = String::new();
        let _ = self.write_text(&mut text, all);
        text
    }

    fn write_text(&self, f: &mut impl fmt::Write, all: bool) -> fmt::Result {
        let latest = self.latest_version;
        for t in &self.tenants {
            if !all && t.is_current(latest) {
                continue;
            }
            match &t.version {
                Err(e) => writeln!(f, "▸ {}: ✗ unreadable: {e}", t.tenant)?,
                Ok(v) if *v > latest => writeln!(
                    f,
                    "▸ {}: ✗ at version {v}, ahead of the {latest} migrations this program knows",
                    t.tenant
                )?,
                Ok(v) if t.pending.is_empty() => {
                    writeln!(f, "▸ {}: ✓ up to date (version {v})", t.tenant)?
                }
                Ok(v) => {
                    writeln!(
                        f,
                        "▸ {}: ⚠ {} pending migration(s) (at version {v})",
                        t.tenant,
                        t.pending.len()
                    )?;
                    for name in &t.pending {
                        writeln!(f, "    - {name}")?;
                    }
                }
            }
        }
        for e in &self.listing_errors {
            writeln!(f, "✗ {e}")?;
        }
        write!(
            f,
            "Overall: {}/{} tenants current, {} migration(s) pending",
            self.current(),
            self.tenants.len(),
            self.pending_migrations()
        )?;
        if self.ahead() > 0 {
            write!(f, ", {} ahead of the code", self.ahead())?;
        }
        if self.unreadable() > 0 {
            write!(f, ", {} unreadable", self.unreadable())?;
        }
        Ok(())
    }
}

impl fmt::Display for StatusReport {
    /// Every tenant, then the summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_text(f, true)
    }
}
