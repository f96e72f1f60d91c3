//! [`FleetReport`]: what every fleet run reports, written once: what the
//! operation counted ([`FleetCounts`]), the failed tenants' lines (at most
//! [`KEPT_FAILURES`]), the tenants not started, whether a cancel or the
//! failure limit stopped the run, the directories that could not be
//! listed, the duration, the summary line and (with `serde`) the JSON.
//! `MigrationReport` and `BackupReport` are this report over their own
//! counts and lines.
//!
//! A report holds no line per tenant that succeeded, so it stays the same
//! size however many tenants a run visits; each operation hands every
//! tenant's line to its `after_each` callback as it happens.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::run::{Finished, Line, Tally};
use crate::error::Error;
use crate::name::TenantName;

/// The most failed tenants' lines a [`FleetReport`] keeps. Every failure
/// is counted
/// ([`FleetReport::failed`]), and every line, failed or not, goes to the
/// operation's `after_each` callback as it happens.
pub const KEPT_FAILURES: usize = 1_000;

/// One fleet operation's part in a [`FleetReport`]: what it was asked to
/// do, what it counts over the tenants, and how its summary reads
/// (`MigrationCounts`, `BackupCounts`).
pub trait FleetCounts: Clone + fmt::Debug + Send {
    /// One tenant's line.
    type Line: Clone + fmt::Debug + fmt::Display + Send;

    /// The tenant `line` is about.
    fn tenant(line: &Self::Line) -> &TenantName;

    /// Counts `line`; whether the tenant failed (its line is kept).
    fn count(&mut self, line: &Self::Line) -> bool;

    /// Adds what `other` (another worker's share of the run) counted.
    fn absorb(&mut self, other: &Self);

    /// Tenants attempted.
    fn total(&self) -> usize;

    /// Tenants that succeeded.
    fn succeeded(&self) -> usize;

    /// Tenants that failed.
    fn failed(&self) -> usize;

    /// The summary's words after the tenant counts: `tenants migrated to
    /// version 4 (3 changed, 1 already there)`.
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;

    /// Writes the report's fields that belong to the operation (before the
    /// common ones): `"target_version"`, `"dir"`.
    #[cfg(feature = "serde")]
    fn serialize_head<M: serde::ser::SerializeMap>(&self, map: &mut M) -> Result<(), M::Error>;

    /// Writes the operation's own totals (after `tenants`, `succeeded`,
    /// `failed` and `skipped`): `"migrated"`, `"bytes"`.
    #[cfg(feature = "serde")]
    fn serialize_totals<M: serde::ser::SerializeMap>(&self, map: &mut M) -> Result<(), M::Error>;
}

/// What a fleet run did: the operation's counts over every tenant
/// attempted, the failed tenants' lines, and what every run reports.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let manager = tenanted::TenantManager::builder(
/// #     tenanted::RootConfig::new(dir.path().join("root")), tenanted::Migrations::new(vec![])).build()?;
/// # manager.create_tenant("acme")?;
/// let report = manager.backup_all(dir.path().join("backup"), &tenanted::BackupOptions::new())?;
/// assert_eq!((report.total(), report.succeeded(), report.failed()), (1, 1, 0));
/// assert!(report.failures.is_empty() && report.skipped.is_empty() && !report.cancelled);
/// assert!(report.is_success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FleetReport<C: FleetCounts> {
    /// What the operation was asked to do and counted over every tenant
    /// attempted (the report's methods read it).
    pub counts: C,
    /// The failed tenants' lines, sorted by name (for a run over a list,
    /// in its order); at most [`KEPT_FAILURES`] of them, while
    /// [`failed`](Self::failed) counts them all.
    pub failures: Vec<C::Line>,
    /// Tenants not started because a cancel or the failure limit stopped
    /// the run.
    pub skipped: Vec<TenantName>,
    /// Whether the caller's cancel flag stopped the run before every
    /// tenant was started.
    pub cancelled: bool,
    /// Whether the failure limit (`MigrateOptions::max_failures`) stopped
    /// the run before every tenant was started.
    pub stopped_by_failures: bool,
    /// Directories of the root that could not be listed.
    pub listing_errors: Vec<Arc<Error>>,
    /// Wall-clock time of the whole run.
    pub duration: Duration,
}

impl<C: FleetCounts> FleetReport<C> {
    /// The report of a finished run whose workers counted into
    /// [`Counting`] tallies (its rows, the failures, in report order).
    pub(crate) fn from_run(ran: Finished<Counting<C>>) -> Self {
        let mut failures = ran.rows;
        failures.truncate(KEPT_FAILURES);
        FleetReport {
            counts: ran.tally.counts,
            failures: failures.into_iter().map(|kept| kept.0).collect(),
            skipped: ran.skipped,
            cancelled: ran.cancelled,
            stopped_by_failures: ran.stopped,
            listing_errors: ran.listing_errors,
            duration: ran.duration,
        }
    }

    /// Tenants attempted.
    pub fn total(&self) -> usize {
        self.counts.total()
    }

    /// Tenants that succeeded.
    pub fn succeeded(&self) -> usize {
        self.counts.succeeded()
    }

    /// Tenants that failed (every one, kept in
    /// [`failures`](Self::failures) or not).
    pub fn failed(&self) -> usize {
        self.counts.failed()
    }

    /// Whether nothing failed, nothing was skipped and every directory
    /// could be listed.
    pub fn is_success(&self) -> bool {
        self.failed() == 0 && self.skipped.is_empty() && self.listing_errors.is_empty()
    }

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
    pub fn summary(&self) -> FleetSummary<'_, C> {
        FleetSummary(self)
    }
}

/// The last line of a [`FleetReport`], from [`FleetReport::summary`].
#[derive(Debug, Clone, Copy)]
pub struct FleetSummary<'a, C: FleetCounts>(&'a FleetReport<C>);

impl<C: FleetCounts> fmt::Display for FleetSummary<'_, C> {
    /// `3/3 tenants migrated ...` for a run that reached every tenant;
    /// `124 of 2,003 tenants migrated ..., 1,879 not started: cancelled`
    /// for one that stopped early, so that it never reads as done.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        let (ok, whole) = (r.succeeded(), r.total() + r.skipped.len());
        match r.skipped.is_empty() {
            true => write!(f, "{}/{} ", grouped(ok), grouped(whole))?,
            false => write!(f, "{} of {} ", grouped(ok), grouped(whole))?,
        }
        r.counts.describe(f)?;
        if r.failed() > 0 {
            let names: Vec<&str> = r.failures.iter().map(|l| C::tenant(l).as_str()).collect();
            write!(f, ", {} failed: {}", grouped(r.failed()), names.join(", "))?;
            if r.failed() > names.len() {
                write!(f, " and {} more", grouped(r.failed() - names.len()))?;
            }
        }
        if !r.skipped.is_empty() {
            let why = match (r.cancelled, r.failed()) {
                (true, _) => "cancelled".to_owned(),
                (false, 1) => "stopped after the first failure".to_owned(),
                (false, n) => format!("stopped after {} failures", grouped(n)),
            };
            write!(f, ", {} not started: {why}", grouped(r.skipped.len()))?;
        }
        write!(f, " in {:.1?}", r.duration)
    }
}

impl<C: FleetCounts> fmt::Display for FleetReport<C> {
    /// The failed tenants' lines and the directories that could not be
    /// listed, then the summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.failures {
            writeln!(f, "{line}")?;
        }
        for e in &self.listing_errors {
            writeln!(f, "✗ {e}")?;
        }
        write!(f, "{}", self.summary())
    }
}

/// `n` with its thousands grouped by commas: `2,003`.
pub(crate) fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How many lines a worker has kept for its report: at most
/// [`KEPT_FAILURES`], so that a run never holds more than jobs ×
/// `KEPT_FAILURES` lines however many tenants it lists.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LineBudget(usize);

impl LineBudget {
    /// Whether a line the report would list (`wanted`) is kept.
    pub(crate) fn keeps(&mut self, wanted: bool) -> bool {
        let keep = wanted && self.0 < KEPT_FAILURES;
        self.0 += usize::from(keep);
        keep
    }
}

/// A worker's tally for a [`FleetReport`]: the operation's counts, and
/// the failed lines it has kept.
pub(crate) struct Counting<C> {
    counts: C,
    kept: LineBudget,
}

impl<C: FleetCounts> Counting<C> {
    pub(crate) fn new(counts: C) -> Self {
        Counting {
            counts,
            kept: LineBudget::default(),
        }
    }
}

/// A failed line the report keeps.
pub(crate) struct Kept<C: FleetCounts>(pub(crate) C::Line);

impl<C: FleetCounts> Line for Kept<C> {
    fn tenant(&self) -> &TenantName {
        C::tenant(&self.0)
    }
}

impl<C: FleetCounts> Tally for Counting<C> {
    type Row = Kept<C>;

    fn count(&mut self, row: &Kept<C>) -> bool {
        let wanted = self.counts.count(&row.0);
        self.kept.keeps(wanted)
    }

    fn absorb(&mut self, other: &Self) {
        self.counts.absorb(&other.counts);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fleet::run::Finished;

    /// A tenant's line in a test operation: its name and whether it failed.
    #[derive(Debug, Clone)]
    struct Done(TenantName, bool);

    impl fmt::Display for Done {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}", self.0)
        }
    }

    #[derive(Debug, Clone, Default)]
    struct Counts {
        tenants: usize,
        failed: usize,
    }

    impl FleetCounts for Counts {
        type Line = Done;

        fn tenant(line: &Done) -> &TenantName {
            &line.0
        }

        fn count(&mut self, line: &Done) -> bool {
            self.tenants += 1;
            self.failed += usize::from(line.1);
            line.1
        }

        fn absorb(&mut self, other: &Self) {
            self.tenants += other.tenants;
            self.failed += other.failed;
        }

        fn total(&self) -> usize {
            self.tenants
        }

        fn succeeded(&self) -> usize {
            self.tenants - self.failed
        }

        fn failed(&self) -> usize {
            self.failed
        }

        fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "tenants done")
        }

        #[cfg(feature = "serde")]
        fn serialize_head<M: serde::ser::SerializeMap>(&self, _: &mut M) -> Result<(), M::Error> {
            Ok(())
        }

        #[cfg(feature = "serde")]
        fn serialize_totals<M: serde::ser::SerializeMap>(&self, _: &mut M) -> Result<(), M::Error> {
            Ok(())
        }
    }

    /// A run over many tenants keeps counts and at most KEPT_FAILURES
    /// failed lines, however many fail; the summary says how many more.
    #[test]
    fn a_report_keeps_counts_and_a_bounded_share_of_failures() {
        let mut tally = Counting::new(Counts::default());
        let mut rows = Vec::new();
        for i in 0..5_000 {
            let tenant = TenantName::new(&format!("t{i:05}")).unwrap();
            let row = Kept::<Counts>(Done(tenant, i % 2 == 0));
            if tally.count(&row) {
                rows.push(row);
            }
        }
        assert_eq!(rows.len(), KEPT_FAILURES);
        let report = FleetReport::from_run(Finished {
            tally,
            rows,
            skipped: Vec::new(),
            cancelled: false,
            stopped: false,
            listing_errors: Vec::new(),
            duration: Duration::ZERO,
        });
        assert_eq!(
            (report.total(), report.succeeded(), report.failed()),
            (5_000, 2_500, 2_500)
        );
        assert_eq!(report.failures.len(), KEPT_FAILURES);
        let text = report.summary().to_string();
        assert!(
            text.starts_with("2,500/5,000 tenants done, 2,500 failed: t00000, t00002"),
            "{text}"
        );
        assert!(text.contains(" and 1,500 more in "), "{text}");
    }
}
