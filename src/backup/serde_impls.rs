//! `Serialize` for the backup reports (the `serde` feature), in the style
//! of the migration reports' `--json`: errors as their messages, paths as
//! strings, durations in milliseconds, totals spelled out.

use std::path::Path;

use serde::{Serialize, Serializer};

use super::report::{BackupOutcome, RestoreOutcome, TenantBackup};
use crate::fleet::millis;
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
    use crate::backup::report::{BackupCounts, BackupReport};
    use crate::error::Error;
    use crate::fleet::{Counting, FleetCounts, Kept, Tally};

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
        let mut failed = gone.clone();
        failed.tenant = name("failed");
        failed.error = Some(Arc::new(Error::BadBackup {
            tenant: name("failed"),
            path: "/b/failed.sqlite3".into(),
            reason: "broken".into(),
        }));
        let mut counts = Counting::new(BackupCounts::new("/b".into()));
        let kept: Vec<bool> = [&ok, &gone, &failed]
            .iter()
            .map(|line| counts.count(&Kept::<BackupCounts>((*line).clone())))
            .collect();
        assert_eq!(kept, [false, false, true], "only the failure is kept");
        assert_eq!(serde_json::to_value(&gone).unwrap()["state"], "gone");
        assert_eq!(serde_json::to_value(&ok).unwrap()["version"], 3);
        let mut totals = BackupCounts::new("/b".into());
        for line in [&ok, &gone, &failed] {
            totals.count(line);
        }
        let report = BackupReport {
            counts: totals,
            failures: vec![failed],
            skipped: vec![],
            cancelled: false,
            stopped_by_failures: false,
            listing_errors: vec![],
            duration: Duration::from_millis(5),
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["dir"], "/b");
        assert_eq!(json["tenants"][0]["state"], "failed");
        assert_eq!(json["duration_ms"], 5.0);
        let totals = &json["totals"];
        assert_eq!(
            (totals["tenants"].as_u64(), totals["succeeded"].as_u64()),
            (Some(3), Some(1))
        );
        assert_eq!(
            (totals["gone"].as_u64(), totals["failed"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(totals["bytes"].as_u64(), Some(4096));
        assert!(
            report
                .to_string()
                .contains("1/3 tenants backed up to /b (4096 bytes, 1 gone")
        );
    }
}
