//! A small synchronous HTTP service on tenanted: each request names its
//! tenant by subdomain (`acme.localhost:8080`) or path (`/t/acme/...`) and
//! runs inside `with_tenant`.
//!
//! ```text
//! cargo run --example sync_service            # listens on 127.0.0.1:8080
//! curl -H 'Host: acme.localhost' localhost:8080/items
//! curl -X POST -d '{"title":"buy milk"}' localhost:8080/t/acme/items
//! ```
//!
//! Unknown tenant: 404. Bad name: 400. Pending migrations: 503 naming the
//! command to run.

mod app;

use std::error::Error;

use tenanted::{Migrations, RootConfig, TenantManager};

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let root = std::env::var("TENANTED_ROOT").unwrap_or_else(|_| "storage/tenants".to_owned());
    let migrations =
        Migrations::from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/migrations"))?;
    let manager = TenantManager::builder(RootConfig::new(root), migrations)
        .idle_timeout(Some(std::time::Duration::from_secs(300)))
        .build()?;
    if manager.create_tenant_if_not_exists("acme")? {
        println!("created demo tenant acme");
    }
    let server = tiny_http::Server::http(&addr)?;
    println!(
        "listening on http://{addr} (try: curl -H 'Host: acme.localhost' http://{addr}/items)"
    );
    let running = app::serve(server, manager, "localhost", 4);
    // Serve until the process is stopped.
    std::thread::park();
    running.stop();
    Ok(())
}
