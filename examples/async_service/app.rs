//! The async service's request handling (axum on Tokio; every statement
//! runs through `TenantManager::interact`, on Tokio's blocking threads,
//! so no runtime thread ever waits on SQLite), shared by `main.rs` and
//! the integration test (`tests/async_service.rs`). The routing, the
//! endpoints and the error responses are the sync service's
//! (`../sync_service/app.rs`).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tenanted::TenantManager;

#[path = "../sync_service/app.rs"]
#[allow(dead_code)]
mod sync_app;

pub use sync_app::resolve_tenant;

struct Service {
    manager: TenantManager,
    base_domain: String,
}

/// The service: every path and method goes to [`route`].
pub fn router(manager: TenantManager, base_domain: &str) -> Router {
    let service = Arc::new(Service {
        manager,
        base_domain: base_domain.to_owned(),
    });
    Router::new().fallback(handle).with_state(service)
}

async fn handle(
    State(service): State<Arc<Service>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let url = uri.path_and_query().map_or("/", |p| p.as_str());
    let (status, value, log) = route(
        &service.manager,
        &service.base_domain,
        method.as_str(),
        url,
        host,
        body,
    )
    .await;
    if let Some(line) = log {
        eprintln!("{line}");
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(value)).into_response();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        // RFC 9110: a 405 says which methods the resource has.
        let allowed = header::HeaderValue::from_static(sync_app::ALLOWED);
        response.headers_mut().insert(header::ALLOW, allowed);
    }
    response
}

/// Routes one request as the sync service does; returns the status, the
/// JSON body and the line the server logs for it, if any.
pub async fn route(
    manager: &TenantManager,
    base_domain: &str,
    method: &str,
    url: &str,
    host: Option<&str>,
    body: String,
) -> (u16, Value, Option<String>) {
    if url.split_once('?').map_or(url, |(path, _)| path) == "/health" {
        return (200, json!({ "ok": true }), None);
    }
    let Some((tenant, path)) = resolve_tenant(url, host, base_domain) else {
        let error =
            format!("no tenant in this request: use http://NAME.{base_domain}/... or /t/NAME/...");
        return (400, json!({ "error": error }), None);
    };
    let (method, path) = (method.to_owned(), path.to_owned());
    let reply = manager
        .interact(&tenant, move |conn| {
            sync_app::endpoint_on(conn, &method, &path, &body)
        })
        .await;
    match reply.and_then(|reply| reply) {
        Ok((status, value)) => (status, value, None),
        Err(e) => sync_app::error_response(&e),
    }
}
