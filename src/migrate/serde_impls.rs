//! `Serialize` for the report types (the `serde` feature), in the format
//! the CLI's `--json` documents: errors as their messages, durations in
//! milliseconds, states and totals spelled out.

use serde::{Serialize, Serializer};

use super::plan::{MigrationPlan, PlannedTenant};
use super::report::{StatusReport, TenantReport, TenantStatus};
use crate::error::Error;
use crate::fleet::millis;
use crate::name::TenantName;

impl Serialize for TenantName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

fn message(e: &Error) -> String {
    e.to_string()
}

#[derive(Serialize)]
struct TenantReportJson<'a> {
    tenant: &'a TenantName,
    from: Option<usize>,
    to: Option<usize>,
    applied: &'a [String],
    duration_ms: f64,
    error: Option<String>,
}

impl Serialize for TenantReport {
    /// `{"tenant", "from", "to", "applied", "duration_ms", "error"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TenantReportJson {
            tenant: &self.tenant,
            from: self.from,
            to: self.to,
            applied: &self.applied,
            duration_ms: millis(self.duration),
            error: self.error.as_deref().map(message),
        }
        .serialize(s)
    }
}

#[derive(Serialize)]
struct TenantStatusJson<'a> {
    tenant: &'a TenantName,
    version: Option<usize>,
    pending: &'a [String],
    state: &'static str,
    error: Option<String>,
}

impl<'a> TenantStatusJson<'a> {
    fn new(t: &'a TenantStatus) -> Self {
        TenantStatusJson {
            tenant: &t.tenant,
            version: t.version.as_ref().ok().copied(),
            pending: &t.pending,
            state: t.state(),
            error: t.version.as_ref().err().map(|e| message(e)),
        }
    }
}

impl Serialize for TenantStatus {
    /// `{"tenant", "version", "pending", "state", "error"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TenantStatusJson::new(self).serialize(s)
    }
}

#[derive(Serialize)]
struct StatusTotals {
    tenants: usize,
    current: usize,
    pending_tenants: usize,
    pending_migrations: usize,
    ahead: usize,
    unreadable: usize,
    not_listed: usize,
    listing_errors: usize,
}

#[derive(Serialize)]
struct StatusReportJson<'a> {
    latest_version: usize,
    // Each row serialized as it is written, never all at once: a report
    // of a million tenants.
    tenants: &'a [TenantStatus],
    listing_errors: Vec<String>,
    totals: StatusTotals,
}

impl Serialize for StatusReport {
    /// The `status --json` format documented in the README.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        StatusReportJson {
            latest_version: self.latest_version,
            tenants: &self.tenants,
            listing_errors: self.listing_errors.iter().map(|e| message(e)).collect(),
            totals: StatusTotals {
                tenants: self.total(),
                current: self.current(),
                pending_tenants: self.behind(),
                pending_migrations: self.pending_migrations(),
                ahead: self.ahead(),
                unreadable: self.unreadable(),
                not_listed: self.not_listed(),
                listing_errors: self.listing_errors.len(),
            },
        }
        .serialize(s)
    }
}

#[derive(Serialize)]
struct PlannedTenantJson<'a> {
    tenant: &'a TenantName,
    from: Option<usize>,
    to: usize,
    would: &'static str,
    migrations: &'a [String],
    error: Option<String>,
}

impl Serialize for PlannedTenant {
    /// `{"tenant", "from", "to", "would", "migrations", "error"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        PlannedTenantJson {
            tenant: &self.tenant,
            from: self.from,
            to: self.to,
            would: self.action(),
            migrations: &self.migrations,
            error: self.error.as_deref().map(message),
        }
        .serialize(s)
    }
}

#[derive(Serialize)]
struct PlanTotals {
    tenants: usize,
    up: usize,
    down: usize,
    unchanged: usize,
    unreadable: usize,
    migrations_up: usize,
    steps_down: usize,
}

#[derive(Serialize)]
struct MigrationPlanJson<'a> {
    dry_run: bool,
    target_version: usize,
    tenants: &'a [PlannedTenant],
    listing_errors: Vec<String>,
    totals: PlanTotals,
}

impl Serialize for MigrationPlan {
    /// The `migrate --dry-run --json` format documented in the README.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        MigrationPlanJson {
            dry_run: true,
            target_version: self.target_version,
            tenants: &self.tenants,
            listing_errors: self.listing_errors.iter().map(|e| message(e)).collect(),
            totals: PlanTotals {
                tenants: self.tenants.len(),
                up: self.going_up(),
                down: self.going_down(),
                unchanged: self.unchanged(),
                unreadable: self.unreadable(),
                migrations_up: self.steps_up(),
                steps_down: self.steps_down(),
            },
        }
        .serialize(s)
    }
}
