//! `Serialize` for the rebuild report (the `serde` feature), in the style
//! of the other reports' `--json`: errors as their messages, durations in
//! milliseconds, totals spelled out.

use serde::{Serialize, Serializer};

use super::rebuild_report::{RebuildOutcome, RebuildReport, TenantRebuild};
use super::status::{ReplicationStatus, TenantReplication};
use super::timestamp::format_timestamp;
use crate::name::TenantName;

#[derive(Serialize)]
struct TenantRebuildJson<'a> {
    tenant: &'a TenantName,
    state: &'static str,
    version: Option<usize>,
    bytes: Option<u64>,
    pending: Option<&'a [String]>,
    duration_ms: f64,
    error: Option<String>,
}

impl Serialize for TenantRebuild {
    /// `{"tenant", "state" ("restored", "already_present",
    /// "not_in_replica" or "failed"), "version", "bytes", "pending",
    /// "duration_ms", "error"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut line = TenantRebuildJson {
            tenant: &self.tenant,
            state: "restored",
            version: None,
            bytes: None,
            pending: None,
            duration_ms: self.duration.as_secs_f64() * 1000.0,
            error: None,
        };
        match &self.outcome {
            RebuildOutcome::Restored {
                version,
                bytes,
                pending,
            } => {
                line.version = Some(*version);
                line.bytes = Some(*bytes);
                line.pending = Some(pending);
            }
            RebuildOutcome::AlreadyPresent => line.state = "already_present",
            RebuildOutcome::NotInReplica => line.state = "not_in_replica",
            RebuildOutcome::Failed(e) => {
                line.state = "failed";
                line.error = Some(e.to_string());
            }
        }
        line.serialize(s)
    }
}

#[derive(Serialize)]
struct RebuildReportJson<'a> {
    replica: &'a str,
    at: Option<String>,
    tenants: &'a [TenantRebuild],
    skipped: &'a [TenantName],
    cancelled: bool,
    restored: usize,
    already_present: usize,
    not_in_replica: usize,
    failed: usize,
    behind: usize,
    duration_ms: f64,
}

impl Serialize for RebuildReport {
    /// `{"replica", "at", "tenants", "skipped", "cancelled", "restored",
    /// "already_present", "not_in_replica", "failed", "behind",
    /// "duration_ms"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RebuildReportJson {
            replica: &self.replica,
            at: self.at.map(format_timestamp),
            tenants: &self.tenants,
            skipped: &self.skipped,
            cancelled: self.cancelled,
            restored: self.restored(),
            already_present: self.already_present(),
            not_in_replica: self.not_in_replica(),
            failed: self.failed(),
            behind: self.behind(),
            duration_ms: self.duration.as_secs_f64() * 1000.0,
        }
        .serialize(s)
    }
}

#[derive(Serialize)]
struct TenantReplicationJson<'a> {
    tenant: &'a TenantName,
    state: String,
    last_sync: Option<String>,
    last_write: Option<String>,
    lag_ms: f64,
    at_risk: bool,
    reason: Option<&'a str>,
}

impl Serialize for TenantReplication {
    /// `{"tenant", "state" ("replicating", "idle", "behind" or "not
    /// replicated"), "last_sync", "last_write" (RFC 3339), "lag_ms",
    /// "at_risk", "reason"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TenantReplicationJson {
            tenant: &self.tenant,
            state: self.state.to_string(),
            last_sync: self.last_sync.map(format_timestamp),
            last_write: self.last_write.map(format_timestamp),
            lag_ms: self.lag.as_secs_f64() * 1000.0,
            at_risk: self.at_risk(),
            reason: self.reason.as_deref(),
        }
        .serialize(s)
    }
}

#[derive(Serialize)]
struct ProcessJson {
    socket: String,
    databases: usize,
}

#[derive(Serialize)]
struct ReplicationStatusJson<'a> {
    replica: &'a str,
    processes: Vec<ProcessJson>,
    tenants: &'a [TenantReplication],
    replicating: usize,
    idle: usize,
    behind: usize,
    not_replicated: usize,
    at_risk: usize,
    max_lag_ms: f64,
    supervised: bool,
}

impl Serialize for ReplicationStatus {
    /// `{"replica", "processes": [{"socket", "databases"}], "tenants",
    /// "replicating", "idle", "behind", "not_replicated", "at_risk",
    /// "max_lag_ms", "supervised"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use super::status::ReplicaState as State;
        let processes = self
            .processes
            .iter()
            .map(|(socket, databases)| ProcessJson {
                socket: socket.display().to_string(),
                databases: *databases,
            })
            .collect();
        ReplicationStatusJson {
            replica: &self.replica,
            processes,
            tenants: &self.tenants,
            replicating: self.count(State::Replicating),
            idle: self.count(State::Idle),
            behind: self.count(State::Behind),
            not_replicated: self.count(State::NotReplicated),
            at_risk: self.tenants.iter().filter(|t| t.at_risk()).count(),
            max_lag_ms: self.max_lag().as_secs_f64() * 1000.0,
            supervised: self.supervised,
        }
        .serialize(s)
    }
}
