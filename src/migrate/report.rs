//! What a fleet migration did ([`MigrationReport`]: the fleet report over
//! [`MigrationCounts`], keeping the [`TenantReport`] of each tenant that
//! failed) and where every tenant's schema is
//! ([`StatusReport`], one [`TenantStatus`] per tenant not current), each
//! with totals over every tenant, and the text the CLI prints.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::migrations::Migrations;
use super::tenant::MigrationOutcome;
use crate::error::Error;
use crate::fleet::{FleetCounts, FleetReport, FleetSummary, LineBudget, grouped};
use crate::name::TenantName;

/// One tenant's line: in a [`MigrationReport`] (tenants that failed), or
/// given to
/// [`MigrateOptions::after_each`](crate::MigrateOptions::after_each) (every
/// tenant).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// # let dir = tempfile::tempdir()?;
/// # let manager = tenanted::TenantManager::builder(
/// #     tenanted::RootConfig::new(dir.path()),
/// #     tenanted::Migrations::new(vec![tenanted::Migration::new("a", "CREATE TABLE a (x);")]),
/// # ).build()?;
/// # manager.create_tenant("acme")?;
/// let lines = Arc::new(Mutex::new(Vec::new()));
/// let seen = Arc::clone(&lines);
/// let options = tenanted::MigrateOptions::new().after_each(move |line| seen.lock().unwrap().push(line.clone()));
/// let report = manager.migrate_all(&options)?;
/// let line = &lines.lock().unwrap()[0];
/// assert_eq!((line.tenant.as_str(), line.from, line.to), ("acme", Some(1), Some(1)));
/// assert!(line.succeeded() && !line.changed());
/// assert!(report.failures.is_empty(), "a tenant that succeeded is only counted");
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
/// did: totals over every tenant, the failed tenants' lines, and what
/// every fleet run reports ([`FleetReport`]).
///
/// The report keeps no line for a tenant that succeeded (migrated or
/// already at the target), so it stays the same size over a million
/// tenants; a caller who wants every tenant's line gets each one in
/// [`MigrateOptions::after_each`](crate::MigrateOptions::after_each) as it
/// happens.
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
/// assert!(report.is_success() && report.failures.is_empty());
/// assert_eq!(report.target_version(), 1);
/// assert!(report.to_string().starts_with("1/1 tenants migrated to version 1"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type MigrationReport = FleetReport<MigrationCounts>;

/// The last line of a [`MigrationReport`], from
/// [`summary`](FleetReport::summary).
pub type MigrationSummary<'a> = FleetSummary<'a, MigrationCounts>;

/// What a [`MigrationReport`] counts over every tenant attempted, and the
/// version they were asked to reach.
#[derive(Debug, Clone, Copy)]
pub struct MigrationCounts {
    target_version: usize,
    tenants: usize,
    succeeded: usize,
    migrated: usize,
}

impl MigrationCounts {
    /// Nothing counted yet, in a run to `target_version`.
    pub(crate) fn new(target_version: usize) -> Self {
        MigrationCounts {
            target_version,
            tenants: 0,
            succeeded: 0,
            migrated: 0,
        }
    }
}

impl FleetCounts for MigrationCounts {
    type Line = TenantReport;

    fn tenant(line: &TenantReport) -> &TenantName {
        &line.tenant
    }

    fn count(&mut self, line: &TenantReport) -> bool {
        self.tenants += 1;
        self.succeeded += usize::from(line.succeeded());
        self.migrated += usize::from(line.succeeded() && line.changed());
        !line.succeeded()
    }

    fn absorb(&mut self, other: &Self) {
        self.tenants += other.tenants;
        self.succeeded += other.succeeded;
        self.migrated += other.migrated;
    }

    fn total(&self) -> usize {
        self.tenants
    }

    fn succeeded(&self) -> usize {
        self.succeeded
    }

    fn failed(&self) -> usize {
        self.tenants - self.succeeded
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tenants migrated to version {} ({} changed, {} already there)",
            self.target_version,
            grouped(self.migrated),
            grouped(self.succeeded - self.migrated)
        )
    }

    #[cfg(feature = "serde")]
    fn serialize_head<M: serde::ser::SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        map.serialize_entry("target_version", &self.target_version)
    }

    #[cfg(feature = "serde")]
    fn serialize_totals<M: serde::ser::SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        map.serialize_entry("migrated", &self.migrated)?;
        map.serialize_entry("up_to_date", &(self.succeeded - self.migrated))
    }
}

impl FleetReport<MigrationCounts> {
    /// The version every tenant was asked to reach.
    pub fn target_version(&self) -> usize {
        self.counts.target_version
    }

    /// Tenants on which migrations ran.
    pub fn migrated(&self) -> usize {
        self.counts.migrated
    }

    /// Tenants already at the target.
    pub fn up_to_date(&self) -> usize {
        self.counts.succeeded - self.counts.migrated
    }
}

fn version_label(v: Option<usize>) -> String {
    v.map_or_else(|| "?".to_owned(), |v| v.to_string())
}

impl fmt::Display for TenantReport {
    /// `✓ acme: 2 → 4 (names) in 1.2ms`, `✓ acme: already at version 4`,
    /// `✗ acme: FAILED at version 2: why`, or `✗ acme: FAILED: why` when
    /// the error does not say the version (a full disk, a busy tenant).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            Some(e) => match self.to {
                Some(v) => write!(f, "✗ {}: FAILED at version {v}: {e}", self.tenant),
                None => write!(f, "✗ {}: FAILED: {e}", self.tenant),
            },
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

/// One tenant's line in a [`StatusReport`], or one row handed to the
/// callback of
/// [`migration_status_each`](crate::TenantManager::migration_status_each).
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let manager = tenanted::TenantManager::builder(
/// #     tenanted::RootConfig::new(dir.path()),
/// #     tenanted::Migrations::new(vec![tenanted::Migration::new("a", "CREATE TABLE a (x);")]),
/// # ).build()?;
/// # manager.create_tenant("acme")?;
/// let mut rows = Vec::new();
/// let status = manager.migration_status_each(|row| rows.push(row.clone()))?;
/// assert!(rows[0].is_current(status.latest_version));
/// assert!(rows[0].pending.is_empty());
/// assert_eq!(rows[0].to_string(), "▸ acme: ✓ up to date (version 1)");
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
    /// The version the migrations reach (for `Display`).
    latest: usize,
}

impl TenantStatus {
    /// The line of `tenant`, whose version is `version`.
    pub(crate) fn new(
        tenant: TenantName,
        version: Result<usize, Arc<Error>>,
        migrations: &Migrations,
    ) -> Self {
        let latest = migrations.latest_version();
        let pending = match &version {
            Ok(v) if *v < latest => migrations.names_between(*v, latest),
            _ => Vec::new(),
        };
        TenantStatus {
            tenant,
            version,
            pending,
            latest,
        }
    }

    /// Whether it is at the latest version.
    pub fn is_current(&self, latest: usize) -> bool {
        matches!(self.version, Ok(v) if v == latest)
    }

    /// Whether it is newer than the migrations this program knows.
    pub fn is_ahead(&self, latest: usize) -> bool {
        matches!(self.version, Ok(v) if v > latest)
    }

    /// `current`, `pending`, `ahead` or `unreadable`.
    #[cfg(feature = "serde")]
    pub(super) fn state(&self) -> &'static str {
        match &self.version {
            Err(_) => "unreadable",
            Ok(v) if *v > self.latest => "ahead",
            Ok(_) if self.pending.is_empty() => "current",
            Ok(_) => "pending",
        }
    }
}

impl fmt::Display for TenantStatus {
    /// `▸ acme: ✓ up to date (version 4)`; a tenant behind also lists its
    /// pending migrations, one per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_said(f, &|e| e.to_string())
    }
}

impl TenantStatus {
    /// Its line, an error said by `say` (see [`StatusReport::write_text_in`]).
    fn write_said(&self, f: &mut impl fmt::Write, say: &impl Fn(&Error) -> String) -> fmt::Result {
        let (tenant, latest) = (&self.tenant, self.latest);
        match &self.version {
            Err(e) => write!(f, "▸ {tenant}: ✗ unreadable: {}", say(e)),
            Ok(v) if *v > latest => write!(
                f,
                "▸ {tenant}: ✗ at version {v}, ahead of the {latest} migrations this program knows"
            ),
            Ok(v) if self.pending.is_empty() => write!(f, "▸ {tenant}: ✓ up to date (version {v})"),
            Ok(v) => {
                let count = self.pending.len();
                write!(
                    f,
                    "▸ {tenant}: ⚠ {count} pending migration(s) (at version {v})"
                )?;
                self.pending
                    .iter()
                    .try_for_each(|name| write!(f, "\n    - {name}"))
            }
        }
    }
}

/// Where every tenant's schema is, from
/// [`TenantManager::migration_status`](crate::TenantManager::migration_status):
/// the tenants that are not current, and totals over all of them.
///
/// Current tenants are counted, not listed, so a report over a million
/// tenants stays small.
/// [`migration_status_each`](crate::TenantManager::migration_status_each)
/// hands every row to a callback; a report over rows of your choosing
/// (every one, or one tenant's) is [`collect`](Iterator::collect)ed from
/// them.
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
/// assert!(status.all_current() && status.tenants.is_empty());
/// assert_eq!(status.to_string(), "Overall: 1/1 tenants current, 0 migration(s) pending");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StatusReport {
    /// The version the migrations reach.
    pub latest_version: usize,
    /// The tenants that are not current (behind, ahead of the code or
    /// unreadable), sorted by name: from
    /// [`migration_status`](crate::TenantManager::migration_status), at
    /// most [`KEPT_FAILURES`](crate::KEPT_FAILURES) of them (the totals
    /// count every one; [`not_listed`](Self::not_listed) says how many
    /// more there are); in a report collected from rows, those rows.
    pub tenants: Vec<TenantStatus>,
    /// Directories that could not be listed.
    pub listing_errors: Vec<Arc<Error>>,
    totals: StatusTotals,
    /// Rows a fleet run's worker has kept for `tenants` (see `Tally`).
    pub(super) kept: LineBudget,
}

/// What a [`StatusReport`] counts over every tenant read.
#[derive(Debug, Clone, Copy, Default)]
struct StatusTotals {
    tenants: usize,
    current: usize,
    behind: usize,
    ahead: usize,
    unreadable: usize,
    pending_migrations: usize,
}

impl StatusReport {
    /// An empty report against `latest_version`.
    pub(super) fn new(latest_version: usize) -> Self {
        StatusReport {
            latest_version,
            tenants: Vec::new(),
            listing_errors: Vec::new(),
            totals: StatusTotals::default(),
            kept: LineBudget::default(),
        }
    }

    /// Counts `row`; whether the report should list it (it is not current).
    pub(super) fn count(&mut self, row: &TenantStatus) -> bool {
        let (totals, latest) = (&mut self.totals, self.latest_version);
        let current = row.is_current(latest);
        totals.tenants += 1;
        totals.current += usize::from(current);
        totals.behind += usize::from(!row.pending.is_empty());
        totals.ahead += usize::from(row.is_ahead(latest));
        totals.unreadable += usize::from(row.version.is_err());
        totals.pending_migrations += row.pending.len();
        !current
    }

    /// Adds what `other` (a worker's share of the same run) counted.
    pub(super) fn absorb(&mut self, other: &StatusReport) {
        let (totals, more) = (&mut self.totals, &other.totals);
        totals.tenants += more.tenants;
        totals.current += more.current;
        totals.behind += more.behind;
        totals.ahead += more.ahead;
        totals.unreadable += more.unreadable;
        totals.pending_migrations += more.pending_migrations;
    }

    /// Tenants read (listed or not).
    pub fn total(&self) -> usize {
        self.totals.tenants
    }

    /// Tenants at the latest version.
    pub fn current(&self) -> usize {
        self.totals.current
    }

    /// Tenants with pending migrations.
    pub fn behind(&self) -> usize {
        self.totals.behind
    }

    /// Tenants newer than the code.
    pub fn ahead(&self) -> usize {
        self.totals.ahead
    }

    /// Tenants whose version could not be read.
    pub fn unreadable(&self) -> usize {
        self.totals.unreadable
    }

    /// Pending migrations summed over all tenants.
    pub fn pending_migrations(&self) -> usize {
        self.totals.pending_migrations
    }

    /// Tenants not current that [`tenants`](Self::tenants) does not list:
    /// past the [`KEPT_FAILURES`](crate::KEPT_FAILURES) a report keeps, so
    /// that a report over a million tenants a migration behind stays
    /// small.
    /// [`migration_status_each`](crate::TenantManager::migration_status_each)
    /// hands every row to a callback.
    pub fn not_listed(&self) -> usize {
        let not_current = self.total() - self.current();
        not_current.saturating_sub(
            self.tenants
                .iter()
                .filter(|t| !t.is_current(self.latest_version))
                .count(),
        )
    }

    /// Whether every tenant is at the latest version.
    pub fn all_current(&self) -> bool {
        self.current() == self.total() && self.listing_errors.is_empty()
    }
}

impl FromIterator<TenantStatus> for StatusReport {
    /// A report listing every row given, in the order given (such as every
    /// row from
    /// [`migration_status_each`](crate::TenantManager::migration_status_each),
    /// sorted), with totals over them. It has no listing errors: copy them
    /// from the report the rows came from.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// # manager.create_tenant("acme")?;
    /// # manager.create_tenant("globex")?;
    /// let mut rows = Vec::new();
    /// manager.migration_status_each(|row| rows.push(row.clone()))?;
    /// let acme: tenanted::StatusReport = rows.into_iter().filter(|r| r.tenant.as_str() == "acme").collect();
    /// assert_eq!(acme.to_text(true), "▸ acme: ✓ up to date (version 0)\nOverall: 1/1 tenants current, 0 migration(s) pending");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn from_iter<I: IntoIterator<Item = TenantStatus>>(rows: I) -> Self {
        let mut rows = rows.into_iter().peekable();
        let latest = rows.peek().map_or(0, |row| row.latest);
        let mut report = StatusReport::new(latest);
        for row in rows {
            report.count(&row);
            report.tenants.push(row);
        }
        report
    }
}

impl StatusReport {
    /// The report as text: the tenants it lists (with `all`, current ones
    /// too; `migration_status` lists none of those), then the summary.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// # manager.create_tenant("acme")?;
    /// let status = manager.migration_status()?;
    /// assert_eq!(status.to_text(false), "Overall: 1/1 tenants current, 0 migration(s) pending");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_text(&self, all: bool) -> String {
        let mut text = String::new();
        let _ = self.write_text(&mut text, all);
        text
    }

    /// Writes [`to_text`](Self::to_text)'s text into `f` line by line,
    /// never held whole (a report listing a million tenants).
    ///
    /// # Errors
    ///
    /// `f`'s own error, and the writing stops.
    pub fn write_text(&self, f: &mut impl fmt::Write, all: bool) -> fmt::Result {
        self.write_text_in(f, all, |e| e.to_string())
    }

    /// [`write_text`](Self::write_text), each error (a tenant's, the
    /// listing's) said by `say` instead of its own message: a program
    /// that prints the report says them in its own words (the `tenanted`
    /// CLI names its commands where the library's messages name methods).
    ///
    /// # Errors
    ///
    /// `f`'s own error, and the writing stops.
    pub fn write_text_in(
        &self,
        f: &mut impl fmt::Write,
        all: bool,
        say: impl Fn(&Error) -> String,
    ) -> fmt::Result {
        let latest = self.latest_version;
        for t in self.tenants.iter().filter(|t| all || !t.is_current(latest)) {
            t.write_said(f, &say)?;
            writeln!(f)?;
        }
        let more = self.not_listed();
        if more > 0 {
            writeln!(
                f,
                "▸ … and {more} more tenant(s) not current, not listed (a report keeps {}; `tenanted status --all` or `migration_status_each` lists every one)",
                crate::KEPT_FAILURES
            )?;
        }
        for e in &self.listing_errors {
            writeln!(f, "✗ {}", say(e))?;
        }
        write!(
            f,
            "Overall: {}/{} tenants current, {} migration(s) pending",
            self.current(),
            self.total(),
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
    /// The tenants it lists, then the summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_text(f, true)
    }
}
