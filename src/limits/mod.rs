//! Per-tenant limits and states: size quotas, suspension, the record in
//! `.tenanted/limits` that every process of a root reads, and the fleet
//! usage report that shows every tenant beside its limit.

mod policy;
mod quota;
mod record;
mod registry;
#[cfg(feature = "serde")]
mod serde_impls;
mod usage;
mod usage_report;

pub use policy::{SuspendMode, Suspension, TenantLimits};
pub use usage_report::{NEAR_LIMIT, TenantUsage, UsageOrder, UsageReport};

pub(crate) use policy::Policy;
pub(crate) use quota::{apply, diagnose, max_pages_sql, set_max_pages_by};
pub(crate) use record::{Entry, Override};
pub(crate) use registry::Limits;
pub(crate) use usage::usage;
