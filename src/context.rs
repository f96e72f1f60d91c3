//! The thread's current tenant, set by
//! [`TenantManager::with_tenant`](crate::TenantManager::with_tenant).

use std::cell::RefCell;

use crate::error::{Error, Result};
use crate::name::TenantName;

thread_local! {
    static CURRENT: RefCell<Option<TenantName>> = const { RefCell::new(None) };
}

/// The tenant set on this thread by `with_tenant`, or `None` outside it.
///
/// ```
/// assert_eq!(tenanted::current_tenant(), None);
/// ```
pub fn current_tenant() -> Option<TenantName> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Runs `f` with the current tenant, if any.
pub(crate) fn with_current<T>(f: impl FnOnce(Option<&TenantName>) -> T) -> T {
    CURRENT.with(|c| f(c.borrow().as_ref()))
}

/// Restores "no tenant" when the outermost `with_tenant` ends, even by panic.
pub(crate) struct ContextGuard(());

impl Drop for ContextGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }
}

/// Makes `tenant` current. `Ok(None)` when it already is (nesting);
/// switching to another tenant is refused.
pub(crate) fn enter(tenant: &TenantName) -> Result<Option<ContextGuard>> {
    CURRENT.with(|c| {
        let mut current = c.borrow_mut();
        match current.as_ref() {
            Some(active) if active == tenant => Ok(None),
            Some(active) => Err(Error::TenantSwitchProhibited {
                current: active.clone(),
                requested: tenant.clone(),
            }),
            None => {
                *current = Some(tenant.clone());
                Ok(Some(ContextGuard(())))
            }
        }
    })
}
