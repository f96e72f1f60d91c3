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
            let conn = m.current_connection()?;
            assert_eq!(conn.tenant(), "acme");
            Ok::<_, Error>(current_tenant())
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
        m.with_tenant("acme", || {
            assert_eq!(current_tenant().unwrap(), "acme");
            Ok::<_, Error>(())
        })
        .unwrap();
        // The inner call must not clear the outer context.
        assert_eq!(current_tenant().unwrap(), "acme");
        let err = m.with_tenant("globex", || Ok::<_, Error>(())).unwrap_err();
        assert!(matches!(err, Error::TenantSwitchProhibited { .. }), "{err}");
        assert!(err.to_string().contains("acme") && err.to_string().contains("globex"));
        assert_eq!(current_tenant().unwrap(), "acme");
        Ok::<_, Error>(())
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
        Ok::<_, Error>(())
    })
    .unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        m.with_tenant("acme", || -> Result<(), Error> { panic!("boom") })
            .unwrap();
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
        m.with_tenant("../x", || {
            ran = true;
            Ok::<_, Error>(())
        }),
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

/// Records the `tenant` field of every span named `tenant` that is created.
struct SpanRecorder(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

struct TenantField<'a>(&'a mut Option<String>);

impl tracing::field::Visit for TenantField<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "tenant" {
            *self.0 = Some(format!("{value:?}"));
        }
    }
}

impl tracing::Subscriber for SpanRecorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        if span.metadata().name() == "tenant" {
            let mut tenant = None;
            span.record(&mut TenantField(&mut tenant));
            self.0.lock().unwrap().extend(tenant);
        }
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn with_tenant_enters_a_span_naming_the_tenant_and_returns_the_closures_result() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    m.create_tenant("acme").unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorder = SpanRecorder(std::sync::Arc::clone(&seen));
    let answer = tracing::subscriber::with_default(recorder, || {
        m.with_tenant("acme", || Ok::<_, Error>(42))
    });
    assert_eq!(answer.unwrap(), 42);
    assert_eq!(*seen.lock().unwrap(), ["acme"]);

    #[derive(Debug)]
    enum AppError {
        Tenancy(Error),
        NotFound,
    }
    impl From<Error> for AppError {
        fn from(e: Error) -> Self {
            AppError::Tenancy(e)
        }
    }
    let mine = m.with_tenant("acme", || Err::<(), _>(AppError::NotFound));
    assert!(matches!(mine, Err(AppError::NotFound)));
    let theirs = m.with_tenant("../x", || Ok::<_, AppError>(()));
    assert!(matches!(
        theirs,
        Err(AppError::Tenancy(Error::BadTenantName { .. }))
    ));
}

/// The tenant an error converted by `?` names, inside `with_tenant`.
fn failed_query_names(m: &tenanted::TenantManager, use_globex: bool) -> Option<String> {
    let failed = m.with_tenant("acme", || -> Result<(), Error> {
        let acme = m.current_connection()?;
        acme.execute("INSERT INTO notes (body) VALUES ('fine')", [])?;
        let on = match use_globex {
            true => m.connection("globex")?,
            false => acme,
        };
        on.execute("INSERT INTO nowhere VALUES (1)", [])?;
        Ok(())
    });
    match failed {
        Err(Error::Query { tenant, .. }) => tenant.map(|t| t.to_string()),
        other => panic!("expected Query, got {other:?}"),
    }
}

/// Inside `with_tenant("acme")`, a statement on a connection to `globex`
/// (allowed) failed and the error blamed acme: the context cannot tell
/// whose statement it was, so it now names neither; the connection can.
#[test]
fn an_error_inside_with_tenant_names_its_tenant_only_when_no_other_was_used() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    m.create_tenant("acme").unwrap();
    m.create_tenant("globex").unwrap();
    assert_eq!(failed_query_names(&m, false).as_deref(), Some("acme"));
    assert_eq!(failed_query_names(&m, true), None);
    // The flag ends with the outermost with_tenant.
    assert_eq!(failed_query_names(&m, false).as_deref(), Some("acme"));
    // diagnose names the connection's own tenant and file.
    let globex = m.connection("globex").unwrap();
    let e = globex
        .execute("INSERT INTO nowhere VALUES (1)", [])
        .unwrap_err();
    let said = globex.diagnose(e).to_string();
    assert!(
        said.contains("globex") && said.contains("main.sqlite3"),
        "{said}"
    );
}
