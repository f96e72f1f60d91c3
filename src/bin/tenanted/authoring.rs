//! `migration new`, `redo`, `rollback` and `prepare`: writing migrations,
//! trying the last one again, undoing migrations on one tenant, and
//! bringing a list of tenants into being.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tenanted::{MigrateOptions, TenantName, TenantReport};

use crate::Cli;
use crate::output::outln;
use crate::support::{Failure, confirm, require_root, tenant_names, utc_timestamp};

/// The digits of a timestamped migration's name: `YYYYMMDDHHMMSS`.
const TIMESTAMP_DIGITS: usize = 14;

/// `tenanted migration ...`.
#[derive(clap::Subcommand)]
pub enum MigrationCommand {
    /// Create the next migration, NNNN_NAME/ or YYYYMMDDHHMMSS_NAME/ (in
    /// the style of the folder's last one), with up.sql and down.sql.
    New {
        /// Migration name: lowercase letters, digits and '_' (for example add_tags).
        name: String,
        /// Name it with the UTC time (YYYYMMDDHHMMSS_NAME) even in a folder
        /// of numbered migrations or an empty one.
        #[arg(long)]
        timestamp: bool,
    },
}

pub fn migration_new(dir: &Path, name: &str, timestamp: bool) -> Result<u8, Failure> {
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
    // A folder every other command refuses (a gap in its numbers, two
    // migrations of one number) gets no new migration: it would only be
    // added to what has to be mended first. One with none yet (empty, or
    // a README alone) gets its first.
    let (last, timestamped) = last_number(dir)?;
    if last > 0 {
        tenanted::Migrations::from_dir(dir)?;
    }
    let prefix = if timestamp || timestamped {
        // A clock behind the last migration still gives a later name.
        format!("{}", utc_timestamp(SystemTime::now()).max(last + 1))
    } else {
        format!("{:04}", last + 1)
    };
    let full = format!("{prefix}_{name}");
    let target = dir.join(&full);
    let io = |e: std::io::Error| Failure(1, format!("cannot create {}: {e}", target.display()));
    std::fs::create_dir_all(&target).map_err(io)?;
    let header = |what: &str| format!("-- {full}: {what}\n");
    std::fs::write(target.join("up.sql"), header("the change")).map_err(io)?;
    std::fs::write(target.join("down.sql"), header("undoes up.sql")).map_err(io)?;
    outln!("created {} (up.sql, down.sql)", target.display());
    Ok(0)
}

/// The highest number among `dir`'s `NNNN_name` entries (0 when there is
/// none or `dir` does not exist yet), and whether that last one is a
/// `YYYYMMDDHHMMSS` timestamp.
fn last_number(dir: &Path) -> Result<(u64, bool), Failure> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, false)),
        Err(e) => return Err(Failure(1, format!("cannot read {}: {e}", dir.display()))),
    };
    let mut last = (0, false);
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((digits, _)) = name.split_once('_') else {
            continue;
        };
        if let Ok(n) = digits.parse::<u64>()
            && digits.bytes().all(|b| b.is_ascii_digit())
        {
            last = last.max((n, digits.len() == TIMESTAMP_DIGITS));
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
    // The down step is done: a failed up says so (its down.sql may have
    // dropped data), not only where the tenant stays.
    let up = m
        .migrate_tenant_to(tenant.as_str(), down.from)
        .map_err(|e| {
            Failure(
                1,
                format!(
                    "redo undid {tenant}'s {} ({} → {}), then applying it again failed: {e}",
                    down.applied.join(", "),
                    down.from,
                    down.to
                ),
            )
        })?;
    outln!(
        "redid {tenant}'s {}: {} → {} → {}",
        up.applied.join(", "),
        down.from,
        down.to,
        up.to
    );
    Ok(0)
}

/// `tenanted prepare NAMES...`: creates the missing tenants (at the latest
/// schema), migrates the others. With `json`: `{"created": [...],
/// "migration": <the migrate --json report>}`.
pub fn prepare(cli: &Cli, names: &[String], json: bool) -> Result<u8, Failure> {
    let names: Vec<TenantName> = tenant_names(names)?;
    require_root(&cli.root)?;
    let m = cli.manager()?;
    let mut created = Vec::new();
    for name in &names {
        if m.create_tenant_if_not_exists(name.as_str())? {
            if !json && !cli.quiet {
                outln!("created {name}");
            }
            created.push(name.as_str());
        }
    }
    let only = names.iter().map(|t| t.as_str().to_owned());
    // Each tenant migrated or failed is printed as it finishes (the report
    // keeps only the failures); with `json`, every line is kept for the
    // documented migrate --json format, which lists every tenant.
    let lines = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&lines);
    let options = MigrateOptions::new().only(only).after_each(move |t| {
        if json && let Ok(mut kept) = kept.lock() {
            kept.push(t.clone());
        } else if !json && (!t.succeeded() || t.changed()) {
            outln!("{t}");
        }
    });
    let report = m.migrate_all(&options)?;
    if json {
        let mut migration = serde_json::to_value(&report)
            .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }));
        let lines = lines
            .lock()
            .map_or_else(|_| Vec::new(), |mut l| std::mem::take(&mut *l));
        if let Ok(lines) = serde_json::to_value(in_order(lines, &names)) {
            migration["tenants"] = lines;
        }
        outln!(
            "{}",
            serde_json::json!({ "created": created, "migration": migration })
        );
    } else {
        outln!("{} created; {}", created.len(), report.summary());
    }
    Ok(if report.is_success() { 0 } else { 1 })
}

/// `tenanted rollback`: runs `steps` down migrations on one tenant, after
/// asking.
pub fn rollback(cli: &Cli, name: &str, steps: u32, yes: bool) -> Result<u8, Failure> {
    let name = tenant_names(&[name.to_owned()])?.remove(0);
    require_root(&cli.root)?;
    let m = cli.manager()?;
    confirm(
        yes,
        "rollback runs down migrations, which can drop data",
        &format!("Roll {name} back {steps} migration(s)? Down migrations can drop data."),
        "nothing rolled back",
    )?;
    let outcome = m.rollback_tenant(name.as_str(), steps as usize)?;
    outln!(
        "rolled {name} back from {} to {} ({})",
        outcome.from,
        outcome.to,
        outcome.applied.join(", ")
    );
    Ok(0)
}

/// `lines` in the order of `names` (a run over a list reports in its
/// order).
fn in_order(mut lines: Vec<TenantReport>, names: &[TenantName]) -> Vec<TenantReport> {
    lines.sort_by_key(|l| names.iter().position(|n| *n == l.tenant));
    lines
}
