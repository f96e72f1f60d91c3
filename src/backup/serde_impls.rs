//! `Serialize` for the backup reports (the `serde` feature), in the style
//! of the migration reports' `--json`: errors as their messages, paths as
//! strings, durations in milliseconds, totals spelled out.

use std::path::Path;

use serde::{Serialize, Serializer};

use super::report::{BackupOutcome, BackupReport, RestoreOutcome, TenantBackup};
use crate::migrate::serde_impls::millis;
use crate::name::TenantName;

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[derive(Serialize)]
struct BackupOutcomeJson<'a> {
    tenant: &'a TenantName,
    path: String,
    version: usize,
    bytes: u64,
    duration_ms: f64,
}

impl Serialize for BackupOutcome {
    /// `{"tenant", "path", "version", "bytes", "duration_ms"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        BackupOutcomeJson {
            tenant: &self.tenant,
            path: path(&self.path),
            version: self.version,
            bytes: self.bytes,
            duration_ms: millis(self.duration),
        }
        .serialize(s)
    }
}

#[derive(Serialize)]
struct TenantBackupJson<'a> {
    tenant: &'a TenantName,
    path: String,
    state: &'static str,
    version: Option<usize>,
    bytes: Option<u64>,
    duration_ms: Option<f64>,
    error: Option<String>,
}

impl Serialize for TenantBackup {
    /// `{"tenant", "path", "state" ("ok", "gone" or "failed"), "version",
    /// "bytes", "duration_ms", "error"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let state = match (self.succeeded(), self.gone()) {
            (true, _) => "ok",
            (false, true) => "gone",
            (false, false) => "failed",
        };
        let outcome = self.outcome.as_ref();
        TenantBackupJson {
            tenant: &self.tenant,
            path: path(&self.path),
            state,
            version: outcome.map(|o| o.version),
            bytes: outcome.map(|o| o.bytes),
            duration_ms: outcome.map(|o| millis(o.duration)),
            error: self.error.as_deref().map(ToString::to_string),
        }
        .serialize(s)
    }
}

#[derive(Serialize)]
struct BackupTotals {
    tenants: usize,
    succeeded: usize,
    failed: usize,
    gone: usize,
    skipped: usize,
    bytes: u64,
}

#[derive(Serialize)]
struct BackupReportJson<'a> {
    dir: String,
    tenants: &'a [TenantBackup],
    skipped: &'a [TenantName],
    cancelled: bool,
    listing_errors: Vec<String>,
    duration_ms: f64,
    totals: BackupTotals,
}

impl Serialize for BackupReport {
    /// `{"dir", "tenants", "skipped", "cancelled", "listing_errors",
    /// "duration_ms", "totals"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        BackupReportJson {
            dir: path(&self.dir),
            tenants: &self.tenants,
            skipped: &self.skipped,
            cancelled: self.cancelled,
            listing_errors: self.listing_errors.iter().map(|e| e.to_string()).collect(),
            duration_ms: millis(self.duration),
            totals: BackupTotals {
                tenants: self.tenants.len(),
                succeeded: self.succeeded(),
                failed: self.failed(),
                gone: self.gone(),
                skipped: self.skipped.len(),
                bytes: self.bytes(),
            },
        }
        .serialize(s)
    }
}

#[derive(Serialize)]
struct RestoreOutcomeJson<'a> {
    tenant: &'a TenantName,
    path: String,
    version: usize,
    latest_version: usize,
    pending: &'a [String],
    replaced: bool,
    bytes: u64,
    duration_ms: f64,
}

impl Serialize for RestoreOutcome {
    /// `{"tenant", "path", "version", "latest_version", "pending",
    /// "replaced", "bytes", "duration_ms"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RestoreOutcomeJson {
            tenant: &self.tenant,
            path: path(&self.path),
            version: self.version,
            latest_version: self.latest_version,
            pending: &self.pending,
            replaced: self.replaced,
            bytes: self.bytes,
            duration_ms: millis(self.duration),
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::error::Error;

    fn name(s: &str) -> TenantName {
        TenantName::new(s).unwrap()
    }

    #[test]
    fn a_backup_report_serializes_states_and_totals() {
        let ok = TenantBackup {
            tenant: name("acme"),
            path: "/b/acme.sqlite3".into(),
            outcome: Some(BackupOutcome {
                tenant: name("acme"),
                path: "/b/acme.sqlite3".into(),
                version: 3,
                bytes: 4096,
                duration: Duration::from_millis(2),
            }),
            error: None,
        };
        let gone = TenantBackup {
            tenant: name("gone"),
            path: "/b/gone.sqlite3".into(),
            outcome: None,
            error: Some(Arc::new(Error::TenantDoesNotExist {
                tenant: name("gone"),
                path: "/r/gone.sqlite3".into(),
            })),
        };
        let report = BackupReport {
            dir: "/b".into(),
            tenants: vec![ok, gone],
            skipped: vec![],
            cancelled: false,
            listing_errors: vec![],
            duration: Duration::from_millis(5),
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["tenants"][0]["state"], "ok");
        assert_eq!(json["tenants"][0]["version"], 3);
        assert_eq!(json["tenants"][1]["state"], "gone");
        assert!(
            json["tenants"][1]["error"]
                .as_str()
                .unwrap()
                .contains("gone")
        );
        let totals = &json["totals"];
        assert_eq!(
            (totals["succeeded"].as_u64(), totals["gone"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(
            (totals["failed"].as_u64(), totals["bytes"].as_u64()),
            (Some(0), Some(4096))
        );
    }
}
