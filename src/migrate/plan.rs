//! What a fleet migration would do, without doing it
//! ([`MigrationPlan`]): the `migrate --dry-run` of the CLI, and what it
//! asks its user to confirm before any tenant goes down.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use super::migrations::Migrations;
use super::report::{StatusReport, TenantStatus};
use super::tenant::{check_down_scripts, check_not_ahead};
use crate::error::Error;
use crate::fleet::grouped;
use crate::name::TenantName;

/// What [`TenantManager::migration_plan`](crate::TenantManager::migration_plan)
/// found: every tenant of the run with the migrations that would run on
/// it, and totals. Nothing is changed to make it.
///
/// ```
/// use tenanted::{MigrateOptions, Migration, Migrations};
/// # let dir = tempfile::tempdir()?;
/// let two = Migrations::new(vec![
///     Migration::new("a", "CREATE TABLE a (x);").down("DROP TABLE a;"),
///     Migration::new("b", "CREATE TABLE b (x);").down("DROP TABLE b;"),
/// ]);
/// let manager = tenanted::TenantManager::builder(tenanted::RootConfig::new(dir.path()), two).build()?;
/// manager.create_tenant("acme")?;
/// let plan = manager.migration_plan(&MigrateOptions::new().to_version(0))?;
/// assert_eq!((plan.going_down(), plan.steps_down()), (1, 2));
/// assert_eq!(plan.tenants[0].migrations, ["b", "a"]);
/// assert!(plan.to_string().contains("acme: 2 → 0: would undo b, a (2 steps down)"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MigrationPlan {
    /// The version the run would take every tenant to.
    pub target_version: usize,
    /// Every tenant of the run, sorted by name (for
    /// [`MigrateOptions::only`](crate::MigrateOptions::only), in the order
    /// given).
    pub tenants: Vec<PlannedTenant>,
    /// Directories that could not be listed.
    pub listing_errors: Vec<Arc<Error>>,
}

/// One tenant of a [`MigrationPlan`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PlannedTenant {
    /// The tenant.
    pub tenant: TenantName,
    /// Its version now; `None` when it cannot be read (see `error`).
    pub from: Option<usize>,
    /// The version the run would take it to.
    pub to: usize,
    /// The migrations that would run, in order (undone ones newest first).
    pub migrations: Vec<String>,
    /// Why its version cannot be read, or why it is not there.
    pub error: Option<Arc<Error>>,
}

impl PlannedTenant {
    /// `"apply"` (it would go up), `"undo"` (down: down scripts run),
    /// `"none"` (already there), `"unreadable"` (its version cannot be
    /// read, or it is not there) or `"fail"` (the target is out of range,
    /// its schema is ahead of the migrations,
    /// or a migration it would undo has no down script).
    pub fn action(&self) -> &'static str {
        match self.from {
            None => "unreadable",
            Some(_) if self.error.is_some() => "fail",
            Some(v) if v < self.to => "apply",
            Some(v) if v > self.to => "undo",
            Some(_) => "none",
        }
    }

    /// Whether it would go down (run down scripts).
    pub fn goes_down(&self) -> bool {
        self.action() == "undo"
    }

    fn new(
        tenant: TenantName,
        from: Result<usize, Arc<Error>>,
        (to, m): (usize, &Migrations),
        path_of: &dyn Fn(&TenantName) -> PathBuf,
    ) -> Self {
        let latest = m.latest_version();
        let (from, error) = match from {
            // The run refuses it: its schema is ahead of these migrations.
            Ok(v) if v > latest => {
                let ahead = check_not_ahead(m, &tenant, &path_of(&tenant), v);
                (Some(v), ahead.err().map(Arc::new))
            }
            Ok(_) if to > latest => {
                let e = Error::VersionOutOfRange {
                    tenant: tenant.clone(),
                    requested: to,
                    latest,
                };
                (from.ok(), Some(Arc::new(e)))
            }
            // The run would fail it: a migration to undo has no down.sql,
            // or a script it would run is refused on an empty database.
            Ok(v) => match check_down_scripts(m, &tenant, v, to)
                .and_then(|()| m.check_on_empty((v, to)))
            {
                Ok(()) => (Some(v), None),
                Err(e) => (Some(v), Some(Arc::new(e))),
            },
            Err(e) => (None, Some(e)),
        };
        let migrations = match error {
            None => from.map_or_else(Vec::new, |v| m.names_between(v, to)),
            Some(_) => Vec::new(),
        };
        PlannedTenant {
            tenant,
            from,
            to,
            migrations,
            error,
        }
    }
}

impl MigrationPlan {
    /// The plan of a run to `target` over the rows `rows` (every tenant,
    /// in any order), for the tenants in `only` (every one when `None`).
    pub(crate) fn new(
        target: usize,
        migrations: &Migrations,
        rows: Vec<TenantStatus>,
        status: StatusReport,
        only: Option<&[TenantName]>,
        path_of: impl Fn(&TenantName) -> PathBuf,
    ) -> Self {
        let path_of: &dyn Fn(&TenantName) -> PathBuf = &path_of;
        let missing = |tenant: &TenantName| Error::TenantDoesNotExist {
            tenant: tenant.clone(),
            path: path_of(tenant),
        };
        let to = (target, migrations);
        let plan = |t: TenantStatus| PlannedTenant::new(t.tenant, t.version, to, path_of);
        let tenants = match only {
            None => {
                let mut all: Vec<PlannedTenant> = rows.into_iter().map(plan).collect();
                all.sort_by(|a, b| a.tenant.cmp(&b.tenant));
                all
            }
            Some(names) => {
                let mut rows = rows;
                let row = |name: &TenantName, rows: &mut Vec<TenantStatus>| {
                    let at = rows.iter().position(|r| r.tenant == *name);
                    match at {
                        Some(i) => plan(rows.swap_remove(i)),
                        None => {
                            let e = Err(Arc::new(missing(name)));
                            PlannedTenant::new(name.clone(), e, to, path_of)
                        }
                    }
                };
                names.iter().map(|name| row(name, &mut rows)).collect()
            }
        };
        MigrationPlan {
            target_version: target,
            tenants,
            listing_errors: status.listing_errors,
        }
    }

    fn count(&self, action: &str) -> usize {
        self.tenants.iter().filter(|t| t.action() == action).count()
    }

    /// Tenants that would go up.
    pub fn going_up(&self) -> usize {
        self.count("apply")
    }

    /// Tenants that would go down: their down scripts would run.
    pub fn going_down(&self) -> usize {
        self.count("undo")
    }

    /// Tenants already at the target.
    pub fn unchanged(&self) -> usize {
        self.count("none")
    }

    /// Tenants whose version cannot be read (or that are not there), and
    /// tenants the run would fail on (see [`PlannedTenant::action`]'s
    /// `"fail"`); the summary line says the two apart.
    pub fn unreadable(&self) -> usize {
        self.count("unreadable") + self.count("fail")
    }

    /// Migrations that would run up, over every tenant.
    pub fn steps_up(&self) -> usize {
        let up = self.tenants.iter().filter(|t| t.action() == "apply");
        up.map(|t| t.migrations.len()).sum()
    }

    /// Down scripts that would run, over every tenant.
    pub fn steps_down(&self) -> usize {
        let down = self.tenants.iter().filter(|t| t.goes_down());
        down.map(|t| t.migrations.len()).sum()
    }

    /// Whether nothing prevented reading every tenant's version.
    pub fn is_complete(&self) -> bool {
        self.listing_errors.is_empty() && self.unreadable() == 0
    }

    /// Its summary line alone.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let manager = tenanted::TenantManager::builder(
    /// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
    /// let plan = manager.migration_plan(&tenanted::MigrateOptions::new())?;
    /// assert_eq!(plan.summary(), "dry run: 0/0 tenant(s) would change; nothing was touched");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn summary(&self) -> String {
        let changing = self.going_up() + self.going_down();
        let mut line = format!(
            "dry run: {}/{} tenant(s) would change",
            grouped(changing),
            grouped(self.tenants.len())
        );
        let mut parts = Vec::new();
        if self.going_up() > 0 {
            let (n, steps) = (grouped(self.going_up()), grouped(self.steps_up()));
            parts.push(format!("{n} up by {steps} migration(s)"));
        }
        if self.going_down() > 0 {
            let (n, steps) = (grouped(self.going_down()), grouped(self.steps_down()));
            parts.push(format!("{n} down by {steps} step(s), running down scripts"));
        }
        if !parts.is_empty() {
            line.push_str(&format!(" ({})", parts.join(", ")));
        }
        let (fail, unreadable) = (self.count("fail"), self.count("unreadable"));
        if fail > 0 {
            line.push_str(&format!(", {} would fail", grouped(fail)));
        }
        if unreadable > 0 {
            line.push_str(&format!(", {} unreadable", grouped(unreadable)));
        }
        line.push_str("; nothing was touched");
        line
    }
}

impl fmt::Display for PlannedTenant {
    /// `acme: 2 → 0: would undo b, a (2 steps down)`,
    /// `acme: 1 → 2: would apply b`, `acme: already at version 2`, or
    /// `acme: unreadable: why`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (tenant, to, names) = (&self.tenant, self.to, self.migrations.join(", "));
        match (self.from, &self.error) {
            (None, Some(e)) => write!(f, "{tenant}: unreadable: {e}"),
            (None, None) => write!(f, "{tenant}: unreadable"),
            (Some(_), Some(e)) => write!(f, "{tenant}: would fail: {e}"),
            (Some(from), _) if from > to => {
                let steps = from - to;
                let s = if steps == 1 { "" } else { "s" };
                write!(
                    f,
                    "{tenant}: {from} → {to}: would undo {names} ({steps} step{s} down)"
                )
            }
            (Some(from), _) if from < to => {
                write!(f, "{tenant}: {from} → {to}: would apply {names}")
            }
            (Some(_), _) => write!(f, "{tenant}: already at version {to}"),
        }
    }
}

impl fmt::Display for MigrationPlan {
    /// The tenants that would change or cannot be read, one a line, then
    /// the summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in self.tenants.iter().filter(|t| t.action() != "none") {
            writeln!(f, "{t}")?;
        }
        for e in &self.listing_errors {
            writeln!(f, "✗ {e}")?;
        }
        f.write_str(&self.summary())
    }
}
