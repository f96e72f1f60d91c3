//! The sync service's request handling, shared by `main.rs` and the
//! integration test (`tests/sync_service.rs`) that drives it over HTTP.

use std::sync::Arc;
use std::thread::JoinHandle;

use serde_json::{Value, json};
use tenanted::{Error, TenantConnection, TenantManager};
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
    let (status, value, log) = route_logged(
        manager,
        base_domain,
        request.method().as_str(),
        request.url(),
        host.as_deref(),
        &body,
    );
    if let Some(line) = log {
        eprintln!("{line}");
    }
    let mut response = Response::from_string(value.to_string())
        .with_status_code(status)
        .with_header(
            Header::from_bytes("Content-Type", "application/json").expect("a valid header"),
        );
    if status == 405 {
        // RFC 9110: a 405 says which methods the resource has.
        response =
            response.with_header(Header::from_bytes("Allow", ALLOWED).expect("a valid header"));
    }
    let _ = request.respond(response);
}

/// The methods `/items` answers.
pub const ALLOWED: &str = "GET, POST";

/// The tenant named by a `/t/NAME/...` path or a `NAME.<base domain>` host,
/// and the path left for the endpoint. The query string is not part of the
/// path. Host names are case-insensitive, so a subdomain is lowercased, and
/// so is a name in the path: `/t/ACME/items` and `ACME.localhost` are both
/// acme.
pub fn resolve_tenant<'a>(
    url: &'a str,
    host: Option<&str>,
    base_domain: &str,
) -> Option<(String, &'a str)> {
    let path = url.split_once('?').map_or(url, |(path, _query)| path);
    if let Some(rest) = path.strip_prefix("/t/") {
        return Some(match rest.find('/') {
            Some(slash) => (rest[..slash].to_ascii_lowercase(), &rest[slash..]),
            None => (rest.to_ascii_lowercase(), "/"),
        });
    }
    let host = host?.split(':').next()?.to_ascii_lowercase();
    let base = base_domain.to_ascii_lowercase();
    let tenant = host.strip_suffix(base.as_str())?.strip_suffix('.')?;
    Some((tenant.to_owned(), path))
}

/// Routes one request; returns the status, the JSON body and the line the
/// server logs for it, if any.
pub fn route_logged(
    manager: &TenantManager,
    base_domain: &str,
    method: &str,
    url: &str,
    host: Option<&str>,
    body: &str,
) -> (u16, Value, Option<String>) {
    if url.split_once('?').map_or(url, |(path, _)| path) == "/health" {
        return (200, json!({ "ok": true }), None);
    }
    let Some((tenant, path)) = resolve_tenant(url, host, base_domain) else {
        let error =
            format!("no tenant in this request: use http://NAME.{base_domain}/... or /t/NAME/...");
        return (400, json!({ "error": error }), None);
    };
    match manager.with_tenant(&tenant, || endpoint(manager, method, path, body)) {
        Ok((status, value)) => (status, value, None),
        Err(e) => error_response(&e),
    }
}

/// The status and a client-safe message. Only a server fault (500) is
/// logged in full (file paths and SQLite's message go to the log, never to
/// the client); a tenant that is not there, or going away, is the
/// client's answer, not the operator's problem, and is not logged.
pub fn error_response(e: &Error) -> (u16, Value, Option<String>) {
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
        Error::TenantSuspended { mode, reason, .. } => (
            403,
            format!("tenant {tenant} is suspended ({mode}): {reason}"),
        ),
        Error::QuotaExceeded { limit, .. } => (
            507,
            format!(
                "tenant {tenant} is at its size limit ({limit} bytes): delete data, or ask for a larger plan"
            ),
        ),
        _ => {
            let message = "internal error; the server log has the details";
            return (
                500,
                json!({ "error": message }),
                Some(format!("request failed: {e}")),
            );
        }
    };
    (status, json!({ "error": message }), None)
}

/// The endpoints, run inside `with_tenant`: `?` takes tenanted's errors;
/// SQLite's are told by the connection (`diagnose`: a tenant at its size
/// limit, or suspended read-only, is said as such, not a 500).
fn endpoint(
    manager: &TenantManager,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, Value), Error> {
    endpoint_on(&manager.current_connection()?, method, path, body)
}

/// The endpoints on the tenant's connection (the async service runs them
/// through `TenantManager::interact`).
pub fn endpoint_on(
    conn: &TenantConnection,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, Value), Error> {
    reply(conn, method, path, body).map_err(|e| conn.diagnose(e))
}

/// [`endpoint_on`], its SQLite errors as SQLite gives them.
fn reply(
    conn: &TenantConnection,
    method: &str,
    path: &str,
    body: &str,
) -> rusqlite::Result<(u16, Value)> {
    let tenant = conn.tenant().to_string();
    let reply = match (method, path) {
        ("GET", "/items") => {
            let mut stmt =
                conn.prepare("SELECT id, title, done FROM items ORDER BY position, id")?;
            let rows = stmt.query_map([], |r| {
                Ok(json!({ "id": r.get::<_, i64>(0)?, "title": r.get::<_, String>(1)?, "done": r.get::<_, bool>(2)? }))
            })?;
            let items = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            (200, json!({ "tenant": tenant, "items": items }))
        }
        ("POST", "/items") => match title(body) {
            Err(why) => (400, json!({ "error": why })),
            Ok(title) => {
                conn.execute("INSERT INTO items (title) VALUES (?1)", [&title])?;
                let id = conn.last_insert_rowid();
                (201, json!({ "tenant": tenant, "id": id, "title": title }))
            }
        },
        (_, "/items") => (
            405,
            json!({ "error": format!("{method} is not allowed on /items; use {ALLOWED}") }),
        ),
        _ => (
            404,
            json!({ "error": format!("no endpoint {method} {path}; try GET or POST /items") }),
        ),
    };
    Ok(reply)
}

/// The title of a new item: a JSON body's non-empty `title`.
fn title(body: &str) -> Result<String, &'static str> {
    let value: Value = serde_json::from_str(body)
        .map_err(|_| "send a JSON body like {\"title\": \"buy milk\"}")?;
    let title = value["title"]
        .as_str()
        .ok_or("send a JSON body like {\"title\": \"buy milk\"}")?;
    if title.trim().is_empty() {
        return Err("the title is empty; send a title with some text in it");
    }
    Ok(title.to_owned())
}
