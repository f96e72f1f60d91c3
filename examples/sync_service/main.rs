//! A small synchronous HTTP service on tenanted: each request names its
//! tenant by subdomain (`acme.localhost:8080`) or path (`/t/acme/...`) and
//! runs inside `with_tenant`.
//!
//! ```text
//! cargo run --example sync_service            # listens on 127.0.0.1:8080
//! cargo run --example sync_service -- --addr 0.0.0.0:9000 --root /srv/tenants
//! curl -H 'Host: acme.localhost' localhost:8080/items
//! curl -X POST -d '{"title":"buy milk"}' localhost:8080/t/acme/items
//! ```
//!
//! Unknown tenant: 404. Bad name: 400. Over its size limit: 507. Suspended:
//! 403 with the reason. Pending migrations: 503 naming the
//! command to run. Error bodies name the tenant, never a server path; the
//! full error goes to stderr.

mod app;

use std::error::Error;

use tenanted::{RootConfig, TenantManager};

const USAGE: &str = "usage: sync_service [--addr HOST:PORT] [--root DIR]
  --addr  where to listen (default 127.0.0.1:8080, env ADDR)
  --root  the tenants' root directory (default storage/tenants, env TENANTED_ROOT)";

/// `--addr` and `--root`, falling back to `ADDR` and `TENANTED_ROOT`.
fn options() -> Result<(String, String), String> {
    let mut addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let mut root = std::env::var("TENANTED_ROOT").unwrap_or_else(|_| "storage/tenants".to_owned());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--addr" => &mut addr,
            "--root" => &mut root,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        };
        *slot = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
    }
    Ok((addr, root))
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let (addr, root) = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let migrations = tenanted::embed_migrations!("$CARGO_MANIFEST_DIR/schema/migrations")?;
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
