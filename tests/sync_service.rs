//! The example sync service, driven over real HTTP on a loopback port.

#[path = "../examples/sync_service/app.rs"]
#[allow(dead_code)]
mod app;
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::Value;
use tenanted::{Migrations, RootConfig, TenantManager};

fn request(addr: SocketAddr, method: &str, path: &str, host: &str, body: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let json = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("");
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

#[test]
fn the_service_routes_by_subdomain_and_path_and_maps_errors() {
    let dir = tempfile::tempdir().unwrap();
    let schema = common::schema();
    let old: Vec<_> = schema.iter().take(2).cloned().collect();
    TenantManager::builder(RootConfig::new(dir.path()), Migrations::new(old))
        .build()
        .unwrap()
        .create_tenant("stale")
        .unwrap();
    let manager = TenantManager::builder(RootConfig::new(dir.path()), schema)
        .build()
        .unwrap();
    manager.create_tenant("acme").unwrap();
    manager.create_tenant("globex").unwrap();

    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let addr = server.server_addr().to_ip().unwrap();
    let running = app::serve(server, manager, "localhost", 2);

    let (s, v) = request(
        addr,
        "POST",
        "/items",
        "acme.localhost:1234",
        r#"{"title":"buy milk"}"#,
    );
    assert_eq!((s, v["tenant"].as_str()), (201, Some("acme")), "{v}");
    let (s, _) = request(
        addr,
        "POST",
        "/t/acme/items",
        "localhost",
        r#"{"title":"walk dog"}"#,
    );
    assert_eq!(s, 201);
    let (s, v) = request(addr, "GET", "/t/acme/items", "localhost", "");
    assert_eq!(s, 200);
    let titles: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["buy milk", "walk dog"]);
    // Tenants are isolated.
    let (s, v) = request(addr, "GET", "/items", "globex.localhost", "");
    assert_eq!((s, v["items"].as_array().map(Vec::len)), (200, Some(0)));

    let (s, v) = request(addr, "GET", "/items", "nobody.localhost", "");
    assert_eq!(s, 404);
    assert!(v["error"].as_str().unwrap().contains("nobody"), "{v}");
    let (s, v) = request(addr, "GET", "/t/a%2e%2e/items", "localhost", "");
    assert_eq!(s, 400, "{v}");
    let (s, v) = request(addr, "GET", "/items", "stale.localhost", "");
    assert_eq!(s, 503);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("tenanted migrate --tenant stale"),
        "{v}"
    );
    let (s, _) = request(addr, "GET", "/items", "localhost", "");
    assert_eq!(s, 400, "a request naming no tenant is a bad request");
    let (s, _) = request(addr, "POST", "/t/acme/items", "localhost", "not json");
    assert_eq!(s, 400);
    for empty in [r#"{"title":""}"#, r#"{"title":"   "}"#] {
        let (s, v) = request(addr, "POST", "/t/acme/items", "localhost", empty);
        assert_eq!(s, 400, "{v}");
        assert!(v["error"].as_str().unwrap().contains("empty"), "{v}");
    }
    // The path form ignores case as the host form does.
    let (s, v) = request(addr, "GET", "/t/ACME/items", "localhost", "");
    assert_eq!(
        (s, v["items"].as_array().map(Vec::len)),
        (200, Some(2)),
        "{v}"
    );
    let (s, v) = request(addr, "DELETE", "/items", "acme.localhost", "");
    assert_eq!(s, 405, "{v}");
    assert!(v["error"].as_str().unwrap().contains("GET, POST"), "{v}");
    let (s, _) = request(addr, "GET", "/health", "localhost", "");
    assert_eq!(s, 200);
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
