//! The example sync service, driven over real HTTP on a loopback port
//! (the requests and answers of `tests/common/service.rs`, which the async
//! service must give too).

#[path = "../examples/sync_service/app.rs"]
#[allow(dead_code)]
mod app;
mod common;

use common::service;
use tenanted::{RootConfig, TenantManager};

#[test]
fn the_service_routes_by_subdomain_and_path_and_maps_errors() {
    let dir = tempfile::tempdir().unwrap();
    let manager = service::prepare(dir.path());
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let addr = server.server_addr().to_ip().unwrap();
    let running = app::serve(server, manager, "localhost", 2);
    service::exercise(addr);
    running.stop();
}

#[test]
fn resolve_tenant_reads_paths_and_subdomains() {
    assert_eq!(
        app::resolve_tenant("/t/acme/items", None, "localhost"),
        Some(("acme".to_owned(), "/items"))
    );
    assert_eq!(
        app::resolve_tenant("/t/acme", None, "localhost"),
        Some(("acme".to_owned(), "/"))
    );
    assert_eq!(
        app::resolve_tenant("/items", Some("acme.localhost:80"), "localhost"),
        Some(("acme".to_owned(), "/items"))
    );
    assert_eq!(
        app::resolve_tenant("/items", Some("localhost"), "localhost"),
        None
    );
    assert_eq!(
        app::resolve_tenant("/items", Some("acme.example.com"), "localhost"),
        None
    );
}

#[test]
fn a_refused_request_is_not_logged_but_a_server_fault_is() {
    let dir = tempfile::tempdir().unwrap();
    let manager = TenantManager::builder(RootConfig::new(dir.path()), common::schema())
        .build()
        .unwrap();
    manager.create_tenant("acme").unwrap();
    // Asked for during a destroy, or never made: the client's answer only.
    let (s, v, log) = app::route_logged(&manager, "localhost", "GET", "/t/nobody/items", None, "");
    assert_eq!((s, log), (404, None), "{v}");
    let (s, _, log) = app::route_logged(&manager, "localhost", "GET", "/items", None, "");
    assert_eq!((s, log), (400, None));
    // A fault of the server (its table gone): logged in full, hidden from
    // the client.
    manager
        .connection("acme")
        .unwrap()
        .execute_batch("DROP TABLE items;")
        .unwrap();
    let (s, v, log) = app::route_logged(&manager, "localhost", "GET", "/t/acme/items", None, "");
    assert_eq!(s, 500, "{v}");
    let log = log.expect("a 500 is logged");
    assert!(
        log.contains("tenant acme") && log.contains("no such table: items"),
        "{log}"
    );
    assert!(!v["error"].as_str().unwrap().contains("items"), "{v}");
}

#[test]
fn hosts_are_case_insensitive_and_query_strings_do_not_break_routing() {
    assert_eq!(
        app::resolve_tenant("/t/ACME/Items", None, "localhost"),
        Some(("acme".to_owned(), "/Items"))
    );
    assert_eq!(
        app::resolve_tenant("/items?limit=1", Some("ACME.LocalHost:80"), "localhost"),
        Some(("acme".to_owned(), "/items"))
    );
    assert_eq!(
        app::resolve_tenant("/t/acme/items?limit=1", None, "localhost"),
        Some(("acme".to_owned(), "/items"))
    );
    assert_eq!(
        app::resolve_tenant("/t/acme?x=1", None, "localhost"),
        Some(("acme".to_owned(), "/"))
    );
}

#[test]
fn error_bodies_name_the_tenant_but_no_server_path() {
    let dir = tempfile::tempdir().unwrap();
    let manager = TenantManager::builder(RootConfig::new(dir.path()), common::schema())
        .build()
        .unwrap();
    manager.create_tenant("acme").unwrap();
    let (s, v, _) = app::route_logged(
        &manager,
        "localhost",
        "GET",
        "/t/acme/items?limit=1",
        None,
        "",
    );
    assert_eq!(s, 200, "{v}");
    let (s, v, _) = app::route_logged(
        &manager,
        "localhost",
        "GET",
        "/items",
        Some("Acme.LOCALHOST"),
        "",
    );
    assert_eq!(s, 200, "{v}");
    let (s, v, _) = app::route_logged(&manager, "localhost", "GET", "/t/nobody/items", None, "");
    assert_eq!(s, 404);
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("nobody"), "{error}");
    let root = dir.path().to_str().unwrap();
    assert!(
        !error.contains(root) && !error.contains("sqlite3"),
        "{error}"
    );
}

/// A write past the tenant's size limit is a 507 naming the limit, and a
/// write to a tenant suspended read-only a 403 with the operator's reason,
/// not a 500 "internal error" with SQLite's "database or disk is full" or
/// "attempt to write a readonly database" in the log (an outside probe:
/// the example never asked the connection what its error meant).
#[test]
fn a_write_past_the_limit_or_while_read_only_is_said_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let manager = TenantManager::builder(RootConfig::new(dir.path()), common::schema())
        .build()
        .unwrap();
    manager.create_tenant("acme").unwrap();
    let size = std::fs::metadata(manager.root().database_path("acme").unwrap())
        .unwrap()
        .len();
    manager.set_tenant_max_size("acme", Some(size)).unwrap();
    let post = |title: &str| {
        let body = serde_json::json!({ "title": title }).to_string();
        app::route_logged(&manager, "localhost", "POST", "/t/acme/items", None, &body)
    };
    let big = "x".repeat(64 * 1024);
    let (s, v, log) = post(&big);
    assert_eq!(s, 507, "{v}");
    assert!(v["error"].as_str().unwrap().contains("size limit"), "{v}");
    assert!(log.is_none(), "{log:?}");
    manager.set_tenant_max_size("acme", None).unwrap();
    manager
        .suspend_tenant("acme", tenanted::SuspendMode::ReadOnly, "unpaid invoice")
        .unwrap();
    let (s, v, _) = post("buy milk");
    assert_eq!(s, 403, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("unpaid invoice"),
        "{v}"
    );
}
