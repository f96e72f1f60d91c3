//! What a tenant is held to: its size limit and whether it is suspended.

use std::fmt;
use std::str::FromStr;

/// How a suspended tenant is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[non_exhaustive]
pub enum SuspendMode {
    /// Connections are handed out but opened read-only
    /// (`SQLITE_OPEN_READONLY`: the file itself is opened read-only, so no
    /// `PRAGMA` can turn it back on); a write fails with SQLite's
    /// `SQLITE_READONLY`, which
    /// [`TenantConnection::diagnose`](crate::TenantConnection::diagnose)
    /// turns into [`Error::TenantSuspended`](crate::Error::TenantSuspended).
    ReadOnly,
    /// [`connection`](crate::TenantManager::connection) refuses the tenant
    /// with [`Error::TenantSuspended`](crate::Error::TenantSuspended).
    Blocked,
}

impl SuspendMode {
    /// Its name in the record, the CLI and JSON: `read-only` or `blocked`.
    pub fn as_str(self) -> &'static str {
        match self {
            SuspendMode::ReadOnly => "read-only",
            SuspendMode::Blocked => "blocked",
        }
    }
}

impl fmt::Display for SuspendMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SuspendMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read-only" | "readonly" => Ok(SuspendMode::ReadOnly),
            "blocked" => Ok(SuspendMode::Blocked),
            other => Err(format!(
                "unknown suspension mode {other:?}: use read-only or blocked"
            )),
        }
    }
}

/// A tenant's suspension: how, and the reason given for it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Suspension {
    /// Read-only or blocked.
    pub mode: SuspendMode,
    /// The reason given by whoever suspended it (shown to callers).
    pub reason: String,
}

impl Suspension {
    /// A suspension in `mode` for `reason`.
    pub fn new(mode: SuspendMode, reason: impl Into<String>) -> Self {
        Suspension {
            mode,
            reason: reason.into(),
        }
    }
}

/// What a tenant is held to, as
/// [`TenantManager::tenant_limits`](crate::TenantManager::tenant_limits)
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct TenantLimits {
    /// The size limit in bytes in force (`None`: unlimited).
    pub max_size: Option<u64>,
    /// Whether `max_size` is the tenant's own override (recorded in the
    /// root) rather than the manager's default.
    pub overridden: bool,
    /// The tenant's suspension, if it is suspended.
    pub suspension: Option<Suspension>,
}

/// The limits a tenant's pool applies: compared with the recorded ones to
/// tell when a pool must be reopened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Policy {
    /// The size limit in bytes.
    pub(crate) max_size: Option<u64>,
    /// The suspension.
    pub(crate) suspension: Option<Suspension>,
}

impl Policy {
    /// Whether connections are opened read-only.
    pub(crate) fn read_only(&self) -> bool {
        matches!(&self.suspension, Some(s) if s.mode == SuspendMode::ReadOnly)
    }

    /// The suspension that refuses connections, if any.
    pub(crate) fn blocked(&self) -> Option<&Suspension> {
        self.suspension
            .as_ref()
            .filter(|s| s.mode == SuspendMode::Blocked)
    }
}
