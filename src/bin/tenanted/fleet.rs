//! `migrate` and `status`: the whole fleet, with a progress bar on a
//! terminal, Ctrl-C handling and `--json`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use tenanted::{
    MigrateOptions, MigrationReport, StatusReport, TenantManager, TenantReport, TenantStatus,
};

use crate::Cli;
use crate::support::{Failure, require_root, tenant_names};

/// `tenanted migrate`.
#[derive(clap::Args)]
pub struct MigrateArgs {
    /// Only this tenant (repeatable): a canary rollout.
    #[arg(long = "tenant")]
    tenants: Vec<String>,
    /// Parallel workers (default: cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Target version instead of the latest (may be lower: a rollback).
    #[arg(long)]
    to: Option<usize>,
    /// Stop starting tenants after the first failure.
    #[arg(long)]
    fail_fast: bool,
    /// Print the report as JSON (no progress, no per-tenant lines).
    #[arg(long)]
    pub json: bool,
    /// Show which migrations would run on which tenants; change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// `tenanted status`.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// Print the documented JSON report.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 if any tenant is not at the latest version.
    #[arg(long)]
    check: bool,
    /// List every tenant, current ones included.
    #[arg(long)]
    all: bool,
    /// Only this tenant.
    #[arg(long, env = "TENANTED_TENANT")]
    tenant: Option<String>,
}

/// Exit code of an interrupted run, as shells report SIGINT.
pub const INTERRUPTED: u8 = 130;

pub fn migrate(cli: &Cli, args: &MigrateArgs) -> Result<u8, Failure> {
    let only = tenant_names(&args.tenants)?;
    let migrations = cli.load_migrations()?;
    let latest = migrations.latest_version();
    if let Some(to) = args.to.filter(|to| *to > latest) {
        return Err(Failure(
            2,
            format!(
                "--to {to} is out of range: the migrations at {} go from 0 to {latest}; nothing was migrated",
                cli.migrations.display()
            ),
        ));
    }
    require_root(&cli.root)?;
    let manager = cli.builder(migrations).build()?;
    if args.dry_run {
        return dry_run(&manager, &only, args.to.unwrap_or(latest), args.json);
    }
    let cancel = cancel_on_ctrl_c();
    let printer = Arc::new(Printer::new(cli.quiet, args.json));
    let mut options = MigrateOptions::new()
        .fail_fast(args.fail_fast)
        .cancel_on(Arc::clone(&cancel));
    if let Some(jobs) = args.jobs {
        options = options.jobs(jobs);
    }
    if let Some(to) = args.to {
        options = options.to_version(to);
    }
    if !only.is_empty() {
        options = options.only(only.iter().map(|t| t.as_str().to_owned()));
    }
    let (each, progress) = (Arc::clone(&printer), Arc::clone(&printer));
    options = options
        .after_each(move |report| each.tenant_done(report))
        .on_progress(move |p| progress.progress(p.done, p.total, p.tenant.as_str()));
    let report = manager.migrate_all(&options)?;
    printer.finish(&report);
    Ok(if report.cancelled {
        INTERRUPTED
    } else if report.is_success() {
        0
    } else {
        1
    })
}

/// The first Ctrl-C sets the flag (running tenants finish, no new one
/// starts); a second one exits at once.
pub fn cancel_on_ctrl_c() -> Arc<AtomicBool> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    let installed = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(i32::from(INTERRUPTED));
        }
        eprintln!(
            "interrupted: letting running tenants finish, starting no more (Ctrl-C again to abort)"
        );
    });
    if let Err(e) = installed {
        tracing::warn!(error = %e, "cannot handle Ctrl-C; it will stop the run abruptly");
    }
    cancel
}

/// Where `migrate` writes: per-tenant lines as they finish (above the bar
/// on a terminal), then the summary, or the JSON report.
struct Printer {
    bar: Option<ProgressBar>,
    quiet: bool,
    json: bool,
    /// With `--json`, every tenant's line: the report lists only the ones
    /// that changed or failed, the documented JSON lists them all.
    lines: Mutex<Vec<TenantReport>>,
}

impl Printer {
    fn new(quiet: bool, json: bool) -> Self {
        let bar = (!quiet && !json && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let template = "{bar:40} {pos}/{len} {per_sec} ETA {eta} {msg}";
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar
        });
        Printer {
            bar,
            quiet,
            json,
            lines: Mutex::new(Vec::new()),
        }
    }

    fn tenant_done(&self, report: &TenantReport) {
        if self.json
            && let Ok(mut lines) = self.lines.lock()
        {
            lines.push(report.clone());
        }
        let failed = !report.succeeded();
        if self.json || !(failed || report.changed()) || (self.quiet && !failed) {
            return;
        }
        self.println(&report.to_string());
    }

    fn progress(&self, done: usize, total: usize, tenant: &str) {
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            bar.set_message(tenant.to_owned());
        }
    }

    fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    fn finish(&self, report: &MigrationReport) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.json {
            let mut lines =
                (self.lines.lock()).map_or_else(|_| Vec::new(), |mut l| std::mem::take(&mut *l));
            lines.sort_by(|a, b| a.tenant.cmp(&b.tenant));
            println!("{}", migrate_json(report, &lines));
            return;
        }
        for e in &report.listing_errors {
            println!("✗ {e}");
        }
        println!("{}", report.summary());
    }
}

/// `migrate --json`: the report's own `Serialize` (the documented format),
/// listing every tenant attempted (`lines`), up-to-date ones included.
fn migrate_json(report: &MigrationReport, lines: &[TenantReport]) -> Value {
    let mut value =
        serde_json::to_value(report).unwrap_or_else(|e| json!({ "error": e.to_string() }));
    if let (Some(tenants), Ok(lines)) = (value.get_mut("tenants"), serde_json::to_value(lines)) {
        *tenants = lines;
    }
    value
}

/// Every tenant's status row, sorted by name, with the report (whose
/// totals count every tenant). For the outputs that list every tenant.
fn every_row(manager: &TenantManager) -> Result<(StatusReport, Vec<TenantStatus>), Failure> {
    let mut rows = Vec::new();
    let report = manager.migration_status_each(|row| rows.push(row.clone()))?;
    rows.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    Ok((report, rows))
}

/// `migrate --dry-run`: each tenant's version and what would run on it.
fn dry_run(
    manager: &TenantManager,
    only: &[tenanted::TenantName],
    target: usize,
    json: bool,
) -> Result<u8, Failure> {
    let (status, rows) = every_row(manager)?;
    let names: Vec<&str> = manager.migrations().iter().map(|m| m.name()).collect();
    let mut plan = Vec::new();
    for t in &rows {
        if !only.is_empty() && !only.contains(&t.tenant) {
            continue;
        }
        let from = t.version.as_ref().ok().copied();
        let (would, steps) = planned(from, target, &names);
        if !json && would != "none" {
            let from = from.map_or("?".to_owned(), |v| v.to_string());
            let steps = steps.join(", ");
            println!("{}: {from} → {target}: would {would} {steps}", t.tenant);
        }
        plan.push(json!({ "tenant": t.tenant.as_str(), "from": from, "to": target, "would": would, "migrations": steps }));
    }
    if json {
        let report = json!({ "dry_run": true, "target_version": target, "tenants": plan });
        println!("{report}");
    } else {
        let changing = plan.iter().filter(|p| p["would"] != "none").count();
        let total = plan.len();
        println!("dry run: {changing}/{total} tenant(s) would change; nothing was touched");
    }
    Ok(u8::from(
        !status.listing_errors.is_empty() || status.unreadable() > 0,
    ))
}

/// What moving from `from` to `target` would do, and the migrations it
/// would run (undone ones newest first).
fn planned<'a>(
    from: Option<usize>,
    target: usize,
    names: &[&'a str],
) -> (&'static str, Vec<&'a str>) {
    match from {
        None => ("unreadable", Vec::new()),
        Some(v) if v < target => ("apply", names.get(v..target).unwrap_or_default().to_vec()),
        Some(v) if v > target => {
            let undone = names.get(target..v).unwrap_or_default();
            ("undo", undone.iter().rev().copied().collect())
        }
        Some(_) => ("none", Vec::new()),
    }
}

pub fn status(cli: &Cli, args: &StatusArgs) -> Result<u8, Failure> {
    let migrations = cli.load_migrations()?;
    require_root(&cli.root)?;
    let manager = cli.builder(migrations).build()?;
    let status = if args.all || args.json || args.tenant.is_some() {
        every_tenant_status(&manager, args.tenant.as_deref())?
    } else {
        manager.migration_status()?
    };
    if args.json {
        println!("{}", status_json(&status));
    } else {
        println!("{}", status.to_text(args.all || args.tenant.is_some()));
    }
    let incomplete = !status.listing_errors.is_empty() || status.unreadable() > 0;
    Ok(u8::from(
        incomplete || (args.check && !status.all_current()),
    ))
}

/// A report listing every tenant (or only `tenant`), sorted by name.
fn every_tenant_status(
    manager: &TenantManager,
    tenant: Option<&str>,
) -> Result<StatusReport, Failure> {
    let only = match tenant {
        Some(name) => {
            let tenant = tenant_names(&[name.to_owned()])?.remove(0);
            if !manager.tenant_exists(tenant.as_str())? {
                let path = manager.root().database_path(tenant.as_str())?;
                return Err(tenanted::Error::TenantDoesNotExist { tenant, path }.into());
            }
            Some(tenant)
        }
        None => None,
    };
    let (fleet, rows) = every_row(manager)?;
    let rows = rows
        .into_iter()
        .filter(|t| only.as_ref().is_none_or(|o| *o == t.tenant));
    let mut status: StatusReport = rows.collect();
    status.latest_version = fleet.latest_version;
    status.listing_errors = fleet.listing_errors;
    Ok(status)
}

/// The documented `status --json` format: the report's own `Serialize`.
fn status_json(status: &StatusReport) -> Value {
    serde_json::to_value(status).unwrap_or_else(|e| json!({ "error": e.to_string() }))
}
