//! `tenanted`: operate the tenants of a root directory from a shell.
//!
//! Exit codes: 0 ok, 1 something failed (or is pending, with
//! `status --check`), 2 bad usage or a bad tenant name.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use tenanted::{
    DEFAULT_BUCKETS, DEFAULT_TEMPLATE, Error, MigrateOptions, Migrations, RootConfig, StatusReport,
    TenantManager,
};

#[derive(Parser)]
#[command(
    name = "tenanted",
    version,
    about = "One SQLite database per tenant: create, list, migrate, destroy."
)]
struct Cli {
    /// Directory holding the tenant databases.
    #[arg(
        long,
        global = true,
        env = "TENANTED_ROOT",
        default_value = "./storage/tenants"
    )]
    root: PathBuf,
    /// Directory of migrations (NNNN_name/up.sql, down.sql).
    #[arg(
        long,
        global = true,
        env = "TENANTED_MIGRATIONS",
        default_value = "./schema/migrations"
    )]
    migrations: PathBuf,
    /// Path template under the root.
    #[arg(long, global = true, env = "TENANTED_TEMPLATE", default_value = DEFAULT_TEMPLATE)]
    template: String,
    /// Number of bucket directories.
    #[arg(long, global = true, env = "TENANTED_BUCKETS", default_value_t = DEFAULT_BUCKETS)]
    buckets: u32,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the tenants on disk, sorted.
    List {
        /// Print {"tenants": [...]}.
        #[arg(long)]
        json: bool,
    },
    /// Create tenants at the latest schema.
    Create {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Destroy tenants and all their data.
    Destroy {
        #[arg(required = true)]
        names: Vec<String>,
        /// Do not ask (required when not on a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Exit 0 if the tenant exists, 1 if not.
    Exists { name: String },
    /// Migrate every tenant (or --tenant ones) to the latest version or --to.
    Migrate {
        /// Only these tenants (repeatable): a canary rollout.
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
    },
    /// Every tenant's schema version and pending migrations.
    Status {
        /// Print the documented JSON report.
        #[arg(long)]
        json: bool,
        /// Exit 1 if any tenant is not at the latest version.
        #[arg(long)]
        check: bool,
    },
    /// Undo a tenant's last migrations.
    Rollback {
        name: String,
        #[arg(long, default_value_t = 1)]
        steps: usize,
    },
    /// Schema commands.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// Remove what crashed processes left (scratch, tombstone, lock files).
    Cleanup,
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Print the latest schema as SQL (what schema/schema.sql holds).
    Dump,
}

/// A failure with its exit code.
struct Failure(u8, String);

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = if matches!(e, Error::BadTenantName { .. } | Error::BadTemplate { .. }) {
            2
        } else {
            1
        };
        Failure(code, e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(Failure(code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("tenanted={level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn manager(cli: &Cli) -> Result<TenantManager, Failure> {
    let root = RootConfig::new(&cli.root)
        .template(&cli.template)
        .buckets(cli.buckets);
    let migrations = Migrations::from_dir(&cli.migrations)?;
    Ok(TenantManager::builder(root, migrations).build()?)
}

fn run(cli: Cli) -> Result<u8, Failure> {
    match &cli.command {
        Command::List { json } => {
            let m = manager(&cli)?;
            let mut names = m.tenants()?.collect::<Result<Vec<_>, _>>()?;
            names.sort();
            if *json {
                let names: Vec<&str> = names.iter().map(|t| t.as_str()).collect();
                println!("{}", json!({ "tenants": names }));
            } else {
                for name in names {
                    println!("{name}");
                }
            }
            Ok(0)
        }
        Command::Create { names } => {
            let m = manager(&cli)?;
            each(names, |name| {
                m.create_tenant(name)?;
                println!(
                    "created {name} at {}",
                    m.root().database_path(name)?.display()
                );
                Ok(())
            })
        }
        Command::Destroy { names, yes } => {
            let m = manager(&cli)?;
            confirm_destroy(names, *yes)?;
            each(names, |name| {
                m.destroy_tenant(name)?;
                println!("destroyed {name}");
                Ok(())
            })
        }
        Command::Exists { name } => Ok(if manager(&cli)?.tenant_exists(name)? {
            0
        } else {
            1
        }),
        Command::Migrate {
            tenants,
            jobs,
            to,
            fail_fast,
        } => {
            let m = manager(&cli)?;
            let mut options = MigrateOptions::new().fail_fast(*fail_fast);
            if let Some(jobs) = jobs {
                options = options.jobs(*jobs);
            }
            if let Some(to) = to {
                options = options.to_version(*to);
            }
            if !tenants.is_empty() {
                options = options.only(tenants.iter().cloned());
            }
            let bar = progress_bar();
            let progress = bar.clone();
            options = options.on_progress(move |p| {
                progress.set_length(p.total as u64);
                progress.set_position(p.done as u64);
                progress.set_message(p.tenant.to_string());
            });
            let report = m.migrate_all(&options)?;
            bar.finish_and_clear();
            println!("{report}");
            Ok(if report.is_success() { 0 } else { 1 })
        }
        Command::Status { json, check } => {
            let status = manager(&cli)?.migration_status()?;
            if *json {
                println!("{}", status_json(&status));
            } else {
                println!("{status}");
            }
            Ok(if *check && !status.all_current() {
                1
            } else {
                0
            })
        }
        Command::Rollback { name, steps } => {
            let outcome = manager(&cli)?.rollback_tenant(name, *steps)?;
            println!(
                "rolled {name} back from {} to {} ({})",
                outcome.from,
                outcome.to,
                outcome.applied.join(", ")
            );
            Ok(0)
        }
        Command::Schema {
            command: SchemaCommand::Dump,
        } => {
            print!("{}", Migrations::from_dir(&cli.migrations)?.schema_sql()?);
            Ok(0)
        }
        Command::Cleanup => {
            let removed = manager(&cli)?.remove_debris()?;
            println!("removed {removed} leftover file(s)");
            Ok(0)
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "tenanted",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
    }
}

/// Runs `f` for every name, going on past failures; the exit code is the
/// worst one seen.
fn each(names: &[String], mut f: impl FnMut(&str) -> Result<(), Error>) -> Result<u8, Failure> {
    let mut worst = 0;
    for name in names {
        if let Err(e) = f(name) {
            let Failure(code, message) = Failure::from(e);
            eprintln!("error: {message}");
            worst = worst.max(code);
        }
    }
    Ok(worst)
}

fn confirm_destroy(names: &[String], yes: bool) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure(
            2,
            "destroy deletes data: pass --yes to confirm when not on a terminal".into(),
        ));
    }
    eprint!("Destroy {} and all their data? [y/N] ", names.join(", "));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure(1, "not confirmed; nothing destroyed".into()))
    }
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    bar
}

/// The documented `status --json` format.
fn status_json(status: &StatusReport) -> serde_json::Value {
    let latest = status.latest_version;
    let tenants: Vec<_> = status
        .tenants
        .iter()
        .map(|t| {
            let state = match &t.version {
                Err(_) => "unreadable",
                Ok(v) if *v > latest => "ahead",
                Ok(_) if t.pending.is_empty() => "current",
                Ok(_) => "pending",
            };
            json!({
                "tenant": t.tenant.as_str(),
                "version": t.version.as_ref().ok(),
                "pending": t.pending,
                "state": state,
                "error": t.version.as_ref().err().map(|e| e.to_string()),
            })
        })
        .collect();
    json!({
        "latest_version": latest,
        "tenants": tenants,
        "totals": {
            "tenants": status.tenants.len(),
            "current": status.current(),
            "pending_tenants": status.behind(),
            "pending_migrations": status.pending_migrations(),
            "ahead": status.ahead(),
            "unreadable": status.unreadable(),
        },
    })
}
