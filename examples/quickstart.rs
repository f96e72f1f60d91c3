//! The main job end to end on the embedded default: bundled SQLite and a
//! local `./storage/tenants` directory.
//!
//! Creates three tenants, writes and reads in each, lists them, destroys
//! one. Safe to run again: it picks up what is already there.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use std::error::Error;

use tenanted::{RootConfig, TenantManager};

fn main() -> Result<(), Box<dyn Error>> {
    let root = RootConfig::new("storage/tenants");
    let migrations = tenanted::embed_migrations!("$CARGO_MANIFEST_DIR/schema/migrations")?;
    println!(
        "root {} ({} buckets), {} migrations",
        root.root_dir().display(),
        root.bucket_count(),
        migrations.latest_version()
    );
    let manager = TenantManager::builder(root, migrations)
        .auto_migrate(true)
        .build()?;

    for name in ["acme", "globex", "initech"] {
        if manager.create_tenant_if_not_exists(name)? {
            println!(
                "created   {name} at {}",
                manager.root().database_path(name)?.display()
            );
        } else {
            println!("reusing   {name}");
        }
    }

    for name in ["acme", "globex", "initech"] {
        manager.with_tenant(name, || -> Result<(), Box<dyn Error>> {
            let conn = manager.current_connection()?;
            conn.execute(
                "INSERT INTO items (title) VALUES (?1)",
                [format!("welcome to {name}")],
            )?;
            let (items, changes): (i64, i64) = conn.query_row(
                "SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM changes)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            println!("wrote     {name}: {items} item(s), {changes} change(s) in its own database");
            Ok(())
        })?;
    }

    let mut names = manager.tenants()?.collect::<Result<Vec<_>, _>>()?;
    names.sort();
    println!(
        "tenants   {}",
        names
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );

    manager.destroy_tenant("initech")?;
    println!(
        "destroyed initech (exists now: {})",
        manager.tenant_exists("initech")?
    );

    let stats = manager.stats();
    println!(
        "pools     {} open, {} hits, {} misses",
        stats.open_pools, stats.hits, stats.misses
    );
    Ok(())
}
