//! The sync service's request handling, shared by `main.rs` and the
//! integration test (`tests/sync_service.rs`) that drives it over HTTP.

use std::sync::Arc;
use std::thread::JoinHandle;

use serde_json::{Value, json};
use tenanted::{Error, TenantManager};
use tiny_http::{Header, Request, Response, Server};

/// A running service: its worker threads share one listening socket.
pub struct Running {
    server: Arc<Server>,
    workers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting requests and waits for the workers.
    pub fn stop(self) {
        for _ in &self.workers {
            self.server.unblock();
        }
        for worker in self.workers {
            let _ = worker.join();
        }
    }
}

/// Serves `server` with `workers` threads until stopped.
pub fn serve(server: Server, manager: TenantManager, base_domain: &str, workers: usize) -> Running {
    let server = Arc::new(server);
    let workers = (0..workers)
        .map(|_| {
            let (server, manager, base) =
                (Arc::clone(&server), manager.clone(), base_domain.to_owned());
            std::thread::spawn(move || {
                while let Ok(request) = server.recv() {
                    handle(&manager, &base, request);
                }
            })
        })
        .collect();
    Running { server, workers }
}

fn handle(manager: &TenantManager, base_domain: &str, mut request: Request) {
    let mut body = String::new();
    let _ = request.as_reader().read_to_string(&mut body);
    let host = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Host"))
        .map(|h| h.value.as_str().to_owned());
    let (status, value) = route(
        manager,
        base_domain,
        request.method().as_str(),
        request.url(),
        host.as_deref(),
        &body,
    );
    let response = Response::from_string(value.to_string())
        .with_status_code(status)
        .with_header(
            Header::from_bytes("Content-Type", "application/json").expect("a valid header"),
        );
    let _ = request.respond(response);
}

/// The tenant named by a `/t/NAME/...` path or a `NAME.<base domain>` host,
/// and the path left for the endpoint. The query string is not part of the
/// path; host names are case-insensitive, so a subdomain is lowercased.
pub fn resolve_tenant<'a>(
    url: &'a str,
    host: Option<&str>,
    base_domain: &str,
) -> Option<(String, &'a str)> {
    let path = url.split_once('?').map_or(url, |(path, _query)| path);
    if let Some(rest) = path.strip_prefix("/t/") {
        return Some(match rest.find('/') {
            Some(slash) => (rest[..slash].to_owned(), &rest[slash..]),
            None => (rest.to_owned(), "/"),
        });
    }
    let host = host?.split(':').next()?.to_ascii_lowercase();
    let base = base_domain.to_ascii_lowercase();
    let tenant = host.strip_suffix(base.as_str())?.strip_suffix('.')?;
    Some((tenant.to_owned(), path))
}

/// Routes one request; returns the status and the JSON body.
pub fn route(
    manager: &TenantManager,
    base_domain: &str,
    method: &str,
    url: &str,
    host: Option<&str>,
    body: &str,
) -> (u16, Value) {
    if url.split_once('?').map_or(url, |(path, _)| path) == "/health" {
        return (200, json!({ "ok": true }));
    }
    let Some((tenant, path)) = resolve_tenant(url, host, base_domain) else {
        return (
            404,
            json!({ "error": format!("no tenant in this request: use http://NAME.{base_domain}/... or /t/NAME/...") }),
        );
    };
    match manager.with_tenant(&tenant, || endpoint(manager, method, path, body)) {
        Ok(ok) => ok,
        Err(e) => error_response(&e),
    }
}

/// The status and a client-safe message: the full error (file paths
/// included) goes to the server's log only.
fn error_response(e: &Error) -> (u16, Value) {
    eprintln!("request failed: {e}");
    let tenant = e.tenant().map_or("", |t| t.as_str());
    let (status, message) = match e {
        Error::BadTenantName { .. } => (400, e.to_string()),
        Error::TenantDoesNotExist { .. } => (404, format!("tenant {tenant} does not exist")),
        Error::PendingMigration(_) => (
            503,
            format!(
                "tenant {tenant} has pending migrations; run `tenanted migrate --tenant {tenant}`"
            ),
        ),
        Error::SchemaAheadOfCode { .. } => (
            503,
            format!(
                "tenant {tenant} has a newer schema than this service; deploy the newer service"
            ),
        ),
        Error::TenantBeingDestroyed { .. } => (503, format!("tenant {tenant} is being destroyed")),
        _ => (
            500,
            "internal error; the server log has the details".to_owned(),
        ),
    };
    (status, json!({ "error": message }))
}

/// A 500 whose details (SQLite's message) go to the log, not the client.
fn internal_error(tenant: &str, e: rusqlite::Error) -> (u16, Value) {
    eprintln!("tenant {tenant}: query failed: {e}");
    (
        500,
        json!({ "error": "internal error; the server log has the details" }),
    )
}

/// The endpoints, run inside `with_tenant`.
fn endpoint(
    manager: &TenantManager,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, Value), Error> {
    let conn = manager.current_connection()?;
    let tenant = conn.tenant().to_string();
    let sql_error = |e| internal_error(&tenant, e);
    let reply = match (method, path) {
        ("GET", "/items") => {
            let items = (|| {
                let mut stmt =
                    conn.prepare("SELECT id, title, done FROM items ORDER BY position, id")?;
                let rows = stmt.query_map([], |r| {
                    Ok(json!({ "id": r.get::<_, i64>(0)?, "title": r.get::<_, String>(1)?, "done": r.get::<_, bool>(2)? }))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })();
            match items {
                Ok(items) => (200, json!({ "tenant": tenant, "items": items })),
                Err(e) => sql_error(e),
            }
        }
        ("POST", "/items") => match serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v["title"].as_str().map(str::to_owned))
        {
            None => (
                400,
                json!({ "error": "send a JSON body like {\"title\": \"buy milk\"}" }),
            ),
            Some(title) => match conn.execute("INSERT INTO items (title) VALUES (?1)", [&title]) {
                Ok(_) => (
                    201,
                    json!({ "tenant": tenant, "id": conn.last_insert_rowid(), "title": title }),
                ),
                Err(e) => sql_error(e),
            },
        },
        _ => (
            404,
            json!({ "error": format!("no endpoint {method} {path}; try GET or POST /items") }),
        ),
    };
    Ok(reply)
}
