//! `migration new`, `redo` and `prepare`: writing migrations, trying the
//! last one again, and bringing a list of tenants into being.

use std::path::Path;

use tenanted::{MigrateOptions, TenantName};

use crate::Cli;
use crate::support::{Failure, confirm, require_root, tenant_names};

/// `tenanted migration ...`.
#[derive(clap::Subcommand)]
pub enum MigrationCommand {
    /// Create the next numbered migration: NNNN_NAME/up.sql and down.sql.
    New {
        /// Migration name: lowercase letters, digits and '_' (for example add_tags).
        name: String,
    },
}

pub fn migration_new(dir: &Path, name: &str) -> Result<u8, Failure> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid {
        return Err(Failure(
            2,
            format!(
                "invalid migration name {name:?}: use lowercase letters, digits and '_' (for example add_tags)"
            ),
        ));
    }
    let next = last_number(dir)? + 1;
    let target = dir.join(format!("{next:04}_{name}"));
    let io = |e: std::io::Error| Failure(1, format!("cannot create {}: {e}", target.display()));
    std::fs::create_dir_all(&target).map_err(io)?;
    let header = |what: &str| format!("-- {next:04}_{name}: {what}\n");
    std::fs::write(target.join("up.sql"), header("the change")).map_err(io)?;
    std::fs::write(target.join("down.sql"), header("undoes up.sql")).map_err(io)?;
    println!("created {} (up.sql, down.sql)", target.display());
    Ok(0)
}

/// The highest `NNNN` among `dir`'s `NNNN_name` entries; 0 when there is
/// none or `dir` does not exist yet.
fn last_number(dir: &Path) -> Result<u32, Failure> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Failure(1, format!("cannot read {}: {e}", dir.display()))),
    };
    let mut last = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .split_once('_')
            .and_then(|(digits, _)| digits.parse::<u32>().ok())
        {
            last = last.max(n);
        }
    }
    Ok(last)
}

/// `tenanted redo NAME`: the last migration down, then up again.
pub fn redo(cli: &Cli, name: &str, yes: bool) -> Result<u8, Failure> {
    let tenant = tenant_names(&[name.to_owned()])?.remove(0);
    require_root(&cli.root)?;
    let m = cli.manager()?;
    confirm(
        yes,
        "redo runs the last down migration, which can drop data",
        &format!(
            "Redo {tenant}'s last migration (down, then up)? Its down migration can drop data."
        ),
        "nothing redone",
    )?;
    let down = m.rollback_tenant(tenant.as_str(), 1)?;
    let up = m.migrate_tenant_to(tenant.as_str(), down.from)?;
    println!(
        "redid {tenant}'s {}: {} → {} → {}",
        up.applied.join(", "),
        down.from,
        down.to,
        up.to
    );
    Ok(0)
}

/// `tenanted prepare NAMES...`: creates the missing tenants (at the latest
/// schema), migrates the others.
pub fn prepare(cli: &Cli, names: &[String]) -> Result<u8, Failure> {
    let names: Vec<TenantName> = tenant_names(names)?;
    let m = cli.manager()?;
    let mut created = 0;
    for name in &names {
        if m.create_tenant_if_not_exists(name.as_str())? {
            println!("created {name}");
            created += 1;
        }
    }
    let only = names.iter().map(|t| t.as_str().to_owned());
    let report = m.migrate_all(&MigrateOptions::new().only(only))?;
    for t in report
        .tenants
        .iter()
        .filter(|t| !t.succeeded() || t.changed())
    {
        println!("{t}");
    }
    println!("{created} created; {}", report.summary());
    Ok(if report.is_success() { 0 } else { 1 })
}
