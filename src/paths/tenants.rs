//! [`Tenants`]: the tenants on disk, streamed by the walker.

use super::walker::{Found, Walker};
use crate::error::Result;
use crate::name::TenantName;

/// An iterator over the tenants on disk, from [`RootConfig::tenants`](crate::RootConfig::tenants) or
/// [`TenantManager::tenants`](crate::TenantManager::tenants).
///
/// It holds one open directory per template level, never every name.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let manager = tenanted::TenantManager::builder(
/// #     tenanted::RootConfig::new(dir.path()), tenanted::Migrations::new(vec![])).build()?;
/// manager.create_tenant("acme")?;
/// for tenant in manager.tenants()? {
///     assert_eq!(tenant?.as_str(), "acme");
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Tenants {
    walk: Walker,
}

impl Tenants {
    pub(super) fn new(walk: Walker) -> Self {
        Tenants { walk }
    }
}

impl Iterator for Tenants {
    type Item = Result<TenantName>;

    fn next(&mut self) -> Option<Self::Item> {
        self.walk
            .next()
            .map(|found| found.map(|Found { tenant, .. }| tenant))
    }
}
