//! Per-tenant limits and states: size quotas, suspension, and the record
//! in `.tenanted/limits` that every process of a root reads.

mod disk;
mod policy;
mod quota;
mod record;
mod registry;

pub use policy::{SuspendMode, Suspension, TenantLimits};

pub(crate) use policy::Policy;
pub(crate) use quota::{apply, diagnose};
pub(crate) use record::{Entry, Override};
pub(crate) use registry::Limits;
