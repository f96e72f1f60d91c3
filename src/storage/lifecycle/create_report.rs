//! What a batch of creates did, tenant by tenant.

use std::sync::Arc;

use crate::error::Error;
use crate::name::TenantName;

/// What [`TenantManager::create_tenants`](crate::TenantManager::create_tenants)
/// did with each name it was given.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CreateReport {
    /// The tenants this call created, in the order given.
    pub created: Vec<TenantName>,
    /// Names that were tenants already: left exactly as they were.
    pub existed: Vec<TenantName>,
    /// Names that could not be created, as given, each with the reason.
    /// Nothing was left of them, except when only the last step failed
    /// ("making the new database durable" or "making the new directory
    /// durable"): that tenant exists and works, but a crash could still
    /// lose it (see [`TenantManager::create_tenant`](crate::TenantManager::create_tenant)).
    pub failed: Vec<(String, Arc<Error>)>,
}

impl CreateReport {
    /// Whether every name given is now a tenant (created or already there).
    pub fn is_success(&self) -> bool {
        self.failed.is_empty()
    }
}
