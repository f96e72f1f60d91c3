//! The example services' shared test: the same requests, over real HTTP
//! on a loopback port, must get the same answers from the sync service
//! (`tests/sync_service.rs`) and the async one (`tests/async_service.rs`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;

use serde_json::Value;
use tenanted::{Migrations, RootConfig, SuspendMode, TenantManager};

/// One request; the status and the JSON body (`Null` if none).
pub fn request(addr: SocketAddr, method: &str, path: &str, host: &str, body: &str) -> (u16, Value) {
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

/// A root with `acme` and `globex` at the latest schema, `stale` behind
/// it, and `frozen` suspended; the manager to serve it.
pub fn prepare(root: &Path) -> TenantManager {
    let schema = super::schema();
    let old: Vec<_> = schema.iter().take(2).cloned().collect();
    TenantManager::builder(RootConfig::new(root), Migrations::new(old))
        .build()
        .unwrap()
        .create_tenant("stale")
        .unwrap();
    let manager = TenantManager::builder(RootConfig::new(root), schema)
        .build()
        .unwrap();
    for name in ["acme", "globex", "frozen"] {
        manager.create_tenant(name).unwrap();
    }
    manager
        .suspend_tenant("frozen", SuspendMode::Blocked, "invoice unpaid")
        .unwrap();
    manager
}

/// The requests and the answers both services must give.
pub fn exercise(addr: SocketAddr) {
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
    let (s, v) = request(addr, "GET", "/items", "frozen.localhost", "");
    assert_eq!(s, 403, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("invoice unpaid"),
        "{v}"
    );
}
