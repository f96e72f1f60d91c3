//! The example service of `examples/sync_service`, async: axum on Tokio,
//! each request's statements run with `TenantManager::interact` (the
//! `tokio` feature). Same routes, same answers.
//!
//! ```text
//! cargo run --example async_service --features tokio          # 127.0.0.1:8080
//! cargo run --example async_service --features tokio -- --addr 0.0.0.0:9000 --root /srv/tenants
//! curl -H 'Host: acme.localhost' localhost:8080/items
//! curl -X POST -d '{"title":"buy milk"}' localhost:8080/t/acme/items
//! ```

mod app;

use std::error::Error;

use tenanted::{RootConfig, TenantManager};

const USAGE: &str = "usage: async_service [--addr HOST:PORT] [--root DIR]
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
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
    // Setup before serving: blocking here is fine.
    if manager.create_tenant_if_not_exists("acme")? {
        println!("created demo tenant acme");
    }
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "listening on http://{addr} (try: curl -H 'Host: acme.localhost' http://{addr}/items)"
    );
    axum::serve(listener, app::router(manager, "localhost")).await?;
    Ok(())
}
