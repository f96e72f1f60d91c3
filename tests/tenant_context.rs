//! The thread's current tenant: with_tenant, nesting, switching,
//! current_connection and with_each_tenant.

mod common;

use common::*;
use tenanted::{Error, current_tenant};

#[test]
fn with_tenant_sets_and_restores_the_current_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    m.create_tenant("acme").unwrap();
    assert_eq!(current_tenant(), None);
    assert!(matches!(m.current_connection(), Err(Error::NoTenant)));
    let seen = m
        .with_tenant("acme", || {
            let conn = m.current_connection().unwrap();
            assert_eq!(conn.tenant(), "acme");
            current_tenant()
        })
        .unwrap();
    assert_eq!(seen.unwrap(), "acme");
    assert_eq!(current_tenant(), None);
}

#[test]
fn nesting_the_same_tenant_is_allowed_switching_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    m.with_tenant("acme", || {
        m.with_tenant("acme", || assert_eq!(current_tenant().unwrap(), "acme"))
            .unwrap();
        // The inner call must not clear the outer context.
        assert_eq!(current_tenant().unwrap(), "acme");
        let err = m.with_tenant("globex", || ()).unwrap_err();
        assert!(matches!(err, Error::TenantSwitchProhibited { .. }), "{err}");
        assert!(err.to_string().contains("acme") && err.to_string().contains("globex"));
        assert_eq!(current_tenant().unwrap(), "acme");
    })
    .unwrap();
    assert_eq!(current_tenant(), None);
}

#[test]
fn the_context_is_per_thread_and_survives_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    m.with_tenant("acme", || {
        std::thread::spawn(|| assert_eq!(current_tenant(), None))
            .join()
            .unwrap();
    })
    .unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        m.with_tenant("acme", || panic!("boom")).unwrap();
    }));
    assert!(caught.is_err());
    assert_eq!(current_tenant(), None);
}

#[test]
fn a_bad_name_is_rejected_before_running_the_closure() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    let mut ran = false;
    assert!(matches!(
        m.with_tenant("../x", || ran = true),
        Err(Error::BadTenantName { .. })
    ));
    assert!(!ran);
}

#[test]
fn with_each_tenant_visits_every_tenant_inside_its_context() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    for name in ["a", "b", "c"] {
        m.create_tenant(name).unwrap();
    }
    let mut seen = Vec::new();
    m.with_each_tenant(|tenant| {
        let conn = m.current_connection()?;
        assert_eq!(conn.tenant(), tenant);
        seen.push(tenant.to_string());
        Ok::<_, Error>(())
    })
    .unwrap();
    seen.sort();
    assert_eq!(seen, ["a", "b", "c"]);
}
