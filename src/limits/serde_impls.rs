//! `Serialize` for the usage report (the `serde` feature), in the style of
//! the other reports' `--json`: times in seconds since the Unix epoch,
//! errors as their messages, durations in milliseconds, what the report's
//! methods say (size, fill, over and near the limit) spelled out.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

use super::policy::Suspension;
use super::usage_report::{TenantUsage, UsageOrder, UsageReport};
use crate::error::Error;
use crate::fleet::millis;
use crate::name::TenantName;

fn unix_seconds(time: Option<SystemTime>) -> Option<f64> {
    let since = time?.duration_since(UNIX_EPOCH).ok()?;
    Some(since.as_millis() as f64 / 1000.0)
}

#[derive(Serialize)]
struct TenantUsageJson<'a> {
    tenant: &'a TenantName,
    database_bytes: u64,
    wal_bytes: u64,
    page_size: u32,
    page_count: u64,
    free_pages: u64,
    size: u64,
    last_write: Option<f64>,
    max_size: Option<u64>,
    fill: Option<f64>,
    near_limit: bool,
    over_limit: bool,
    suspension: &'a Option<Suspension>,
}

impl Serialize for TenantUsage {
    /// `{"tenant", "database_bytes", "wal_bytes", "page_size",
    /// "page_count", "free_pages", "size", "last_write", "max_size",
    /// "fill", "near_limit", "over_limit", "suspension"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TenantUsageJson {
            tenant: &self.tenant,
            database_bytes: self.database_bytes,
            wal_bytes: self.wal_bytes,
            page_size: self.page_size,
            page_count: self.page_count,
            free_pages: self.free_pages,
            size: self.size(),
            last_write: unix_seconds(self.last_write),
            max_size: self.max_size,
            fill: self.fill(),
            near_limit: self.is_near_limit(),
            over_limit: self.is_over_limit(),
            suspension: &self.suspension,
        }
        .serialize(s)
    }
}

impl Serialize for UsageOrder {
    /// `"largest"`, `"closest-to-limit"` or `"least-recently-written"`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            UsageOrder::Largest => "largest",
            UsageOrder::ClosestToLimit => "closest-to-limit",
            UsageOrder::LeastRecentlyWritten => "least-recently-written",
        })
    }
}

#[derive(Serialize)]
struct FailedJson<'a> {
    tenant: &'a TenantName,
    error: String,
}

fn failed((tenant, e): &(TenantName, Arc<Error>)) -> FailedJson<'_> {
    FailedJson {
        tenant,
        error: e.to_string(),
    }
}

#[derive(Serialize)]
struct UsageReportJson<'a> {
    order: UsageOrder,
    tenants: usize,
    total_bytes: u64,
    over_limit: usize,
    near_limit: usize,
    suspended: usize,
    top: &'a [TenantUsage],
    failed: Vec<FailedJson<'a>>,
    listing_errors: Vec<String>,
    duration_ms: f64,
}

impl Serialize for UsageReport {
    /// `{"order", "tenants", "total_bytes", "over_limit", "near_limit",
    /// "suspended", "top", "failed": [{"tenant", "error"}],
    /// "listing_errors", "duration_ms"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        UsageReportJson {
            order: self.order,
            tenants: self.tenants,
            total_bytes: self.total_bytes,
            over_limit: self.over_limit,
            near_limit: self.near_limit,
            suspended: self.suspended,
            top: &self.top,
            failed: self.failed.iter().map(failed).collect(),
            listing_errors: self.listing_errors.iter().map(|e| e.to_string()).collect(),
            duration_ms: millis(self.duration),
        }
        .serialize(s)
    }
}
