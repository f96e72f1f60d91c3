//! The thread's current tenant, set by
//! [`TenantManager::with_tenant`](crate::TenantManager::with_tenant).

use std::cell::RefCell;

use crate::error::{Error, Result};
use crate::name::TenantName;

/// What `with_tenant` set on this thread.
struct Current {
    tenant: TenantName,
    /// Whether a connection to another tenant was checked out on this
    /// thread meanwhile: a statement that fails may then be either's, and
    /// an error converted by `?` names neither (see [`query_tenant`]).
    others: bool,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// The tenant set on this thread by `with_tenant`, or `None` outside it.
///
/// ```
/// assert_eq!(tenanted::current_tenant(), None);
/// ```
pub fn current_tenant() -> Option<TenantName> {
    CURRENT.with(|c| c.borrow().as_ref().map(|current| current.tenant.clone()))
}

/// The tenant a failed statement on this thread belongs to, as far as the
/// context tells: the current tenant, unless another tenant's connection
/// was checked out inside the same `with_tenant`.
pub(crate) fn query_tenant() -> Option<TenantName> {
    CURRENT.with(|c| match c.borrow().as_ref() {
        Some(current) if !current.others => Some(current.tenant.clone()),
        _ => None,
    })
}

/// Notes a connection to `name` checked out on this thread. No I/O, no
/// allocation: one thread-local look, and a compare inside `with_tenant`.
pub(crate) fn checked_out(name: &str) {
    // `try_with`: a connection asked for while the thread's locals are
    // being torn down (another local's destructor) notes nothing.
    let _ = CURRENT.try_with(|c| {
        if let Ok(mut current) = c.try_borrow_mut()
            && let Some(current) = current.as_mut()
            && current.tenant.as_str() != name
        {
            current.others = true;
        }
    });
}

/// Runs `f` with the current tenant, if any.
pub(crate) fn with_current<T>(f: impl FnOnce(Option<&TenantName>) -> T) -> T {
    CURRENT.with(|c| f(c.borrow().as_ref().map(|current| &current.tenant)))
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
            Some(active) if active.tenant == *tenant => Ok(None),
            Some(active) => Err(Error::TenantSwitchProhibited {
                current: active.tenant.clone(),
                requested: tenant.clone(),
            }),
            None => {
                *current = Some(Current {
                    tenant: tenant.clone(),
                    others: false,
                });
                Ok(Some(ContextGuard(())))
            }
        }
    })
}
