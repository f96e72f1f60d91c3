//! The example async service (axum, `TenantManager::interact`), driven
//! over real HTTP on a loopback port with the same requests as the sync
//! service, which must get the same answers (`tests/common/service.rs`).

#[path = "../examples/async_service/app.rs"]
#[allow(dead_code)]
mod app;
mod common;

use common::service;

#[test]
fn the_service_routes_by_subdomain_and_path_and_maps_errors() {
    let dir = tempfile::tempdir().unwrap();
    let manager = service::prepare(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(async move {
        axum::serve(listener, app::router(manager, "localhost"))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    // The client blocks this (non-runtime) thread, as curl would.
    service::exercise(addr);
    stop.send(()).unwrap();
    runtime.block_on(server).unwrap().unwrap();
}

#[test]
fn error_bodies_name_the_tenant_but_no_server_path() {
    let dir = tempfile::tempdir().unwrap();
    let manager = service::prepare(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let route = |url: &'static str, host: Option<&'static str>| {
        runtime.block_on(app::route(
            &manager,
            "localhost",
            "GET",
            url,
            host,
            String::new(),
        ))
    };
    let (s, v, _) = route("/t/acme/items?limit=1", None);
    assert_eq!(s, 200, "{v}");
    let (s, v, _) = route("/items", Some("Acme.LOCALHOST"));
    assert_eq!(s, 200, "{v}");
    let (s, v, log) = route("/t/nobody/items", None);
    assert!(log.is_none(), "a refused request is not logged");
    assert_eq!(s, 404);
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("nobody"), "{error}");
    let root = dir.path().to_str().unwrap();
    assert!(
        !error.contains(root) && !error.contains("sqlite3"),
        "{error}"
    );
    assert_eq!(
        app::resolve_tenant("/t/acme?x=1", None, "localhost"),
        Some(("acme".to_owned(), "/"))
    );
}
