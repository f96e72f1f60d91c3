//! A fleet migration with its status and report, on a throwaway fleet in
//! `./storage/fleet-demo`: six tenants at mixed schema versions, one of
//! them sabotaged so that a migration fails in it.
//!
//! ```text
//! cargo run --release --example fleet_migration
//! ```

use std::error::Error;

use tenanted::{MigrateOptions, Migrations, RootConfig, TenantManager};

fn main() -> Result<(), Box<dyn Error>> {
    let dir = "storage/fleet-demo";
    let _ = std::fs::remove_dir_all(dir);
    let schema = tenanted::embed_migrations!("$CARGO_MANIFEST_DIR/schema/migrations")?;

    // Yesterday's code knew only the first two migrations.
    let yesterday = Migrations::new(schema.iter().take(2).cloned().collect());
    let old = TenantManager::builder(RootConfig::new(dir), yesterday).build()?;
    for name in ["acme", "beta", "globex", "hooli", "initech", "umbrella"] {
        old.create_tenant(name)?;
        old.connection(name)?
            .execute("INSERT INTO items (title) VALUES ('existing data')", [])?;
    }
    // Someone hand-made a table in beta that migration 0003 wants to create.
    old.connection("beta")?
        .execute_batch("CREATE TABLE changes (note TEXT);")?;
    drop(old);

    let manager = TenantManager::builder(RootConfig::new(dir), schema).build()?;
    manager.migrate_tenant("acme")?; // one tenant already done

    println!("$ status\n{}\n", manager.migration_status()?);
    let options = MigrateOptions::new().jobs(2).on_progress(|p| {
        eprintln!(
            "  [{}/{}] {} {}",
            p.done,
            p.total,
            p.tenant,
            if p.ok { "ok" } else { "FAILED" }
        )
    });
    let report = manager.migrate_all(&options)?;
    println!("$ migrate\n{report}\n");
    println!("$ status\n{}", manager.migration_status()?);
    Ok(())
}
