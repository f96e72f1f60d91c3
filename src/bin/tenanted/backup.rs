//! `tenanted backup`, `restore` and `litestream-config`: tenants beyond
//! one machine.

use std::path::PathBuf;
use std::sync::Arc;

use tenanted::{BackupOptions, ReplicaTarget, RestoreOptions, RestoreOutcome};

use crate::Cli;
use crate::migrate::{INTERRUPTED, cancel_on_ctrl_c, progress_bar};
use crate::support::{Failure, confirm, require_root, tenant_names};

/// `tenanted backup`.
#[derive(clap::Args)]
pub struct BackupArgs {
    /// Back up only this tenant (repeat for several; default: every one).
    #[arg(long = "tenant", value_name = "NAME", env = "TENANTED_TENANT")]
    tenants: Vec<String>,
    /// The directory to write to, laid out like the root (not inside it).
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// Parallel workers (at least 1; default: cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    /// Print the report as JSON (no progress bar).
    #[arg(long)]
    pub json: bool,
}

/// `tenanted restore`.
#[derive(clap::Args)]
pub struct RestoreArgs {
    /// Tenant name.
    #[arg(env = "TENANTED_TENANT")]
    name: String,
    /// The backup file to restore (made by `tenanted backup`).
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// Replace the tenant if it exists: its current data is lost.
    #[arg(long)]
    replace: bool,
    /// Do not ask before replacing (required with --replace off a terminal).
    #[arg(long)]
    yes: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where the replica is: its URL and what an S3-compatible store needs.
#[derive(clap::Args)]
pub struct ReplicaArgs {
    /// Where Litestream replicates to: s3://BUCKET/PATH, file:///DIR, ...
    #[arg(long, value_name = "URL")]
    replica_url: String,
    /// The S3 endpoint of a store that is not AWS (SeaweedFS, MinIO, ...),
    /// for example http://127.0.0.1:8333.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// Address S3 objects as ENDPOINT/BUCKET/KEY (most S3-compatible
    /// stores need it).
    #[arg(long)]
    force_path_style: bool,
    /// The S3 region.
    #[arg(long)]
    region: Option<String>,
}

impl ReplicaArgs {
    /// The replica these flags describe.
    pub fn target(&self) -> ReplicaTarget {
        let mut target =
            ReplicaTarget::new(self.replica_url.as_str()).force_path_style(self.force_path_style);
        if let Some(endpoint) = &self.endpoint {
            target = target.endpoint(endpoint.as_str());
        }
        if let Some(region) = &self.region {
            target = target.region(region.as_str());
        }
        target
    }
}

/// `tenanted litestream-config`.
#[derive(clap::Args)]
pub struct LitestreamArgs {
    #[command(flatten)]
    replica: ReplicaArgs,
    /// Write the configuration to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn backup(cli: &Cli, args: &BackupArgs) -> Result<u8, Failure> {
    let only = tenant_names(&args.tenants)?;
    require_root(&cli.root)?;
    let manager = cli.schemaless_manager()?;
    let cancel = cancel_on_ctrl_c();
    let mut options = BackupOptions::new().cancel_on(Arc::clone(&cancel));
    if let Some(jobs) = args.jobs {
        options = options.jobs(usize::from(jobs));
    }
    if !only.is_empty() {
        options = options.only(only.iter().map(|t| t.as_str().to_owned()));
    }
    let bar = progress_bar(cli.quiet || args.json);
    if let Some(bar) = &bar {
        let bar = bar.clone();
        options = options.on_progress(move |p| {
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
            bar.set_message(p.tenant.as_str().to_owned());
        });
    }
    let report = manager.backup_all(&args.to, &options)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if args.json {
        println!("{}", json(&report));
    } else {
        println!("{report}");
    }
    Ok(if report.cancelled {
        INTERRUPTED
    } else if report.is_success() {
        0
    } else {
        1
    })
}

pub fn restore(cli: &Cli, args: &RestoreArgs) -> Result<u8, Failure> {
    let tenant = tenant_names(std::slice::from_ref(&args.name))?.remove(0);
    if args.replace {
        confirm(
            args.yes,
            "restore --replace deletes the tenant's current data",
            &format!(
                "Replace tenant {tenant} with {}? Its current data is lost.",
                args.from.display()
            ),
            "nothing was restored",
        )?;
    }
    let manager = cli.manager()?;
    let options = RestoreOptions::new().replace(args.replace);
    let outcome = manager.restore_tenant_with(tenant.as_str(), &args.from, &options)?;
    if args.json {
        println!("{}", json(&outcome));
    } else {
        println!("{}", restored_line(&outcome, &args.from));
    }
    Ok(0)
}

fn restored_line(outcome: &RestoreOutcome, from: &std::path::Path) -> String {
    let verb = if outcome.replaced {
        "replaced"
    } else {
        "restored"
    };
    let mut line = format!(
        "{verb} {} from {} at version {} ({} bytes)",
        outcome.tenant,
        from.display(),
        outcome.version,
        outcome.bytes
    );
    if !outcome.is_current() {
        line.push_str(&format!(
            "; behind the code: run `tenanted migrate --tenant {}` ({} pending: {})",
            outcome.tenant,
            outcome.pending.len(),
            outcome.pending.join(", ")
        ));
    }
    line
}

pub fn litestream_config(cli: &Cli, args: &LitestreamArgs) -> Result<u8, Failure> {
    let yaml = cli
        .root_config()
        .litestream_config_for(&args.replica.target())?;
    match &args.output {
        None => print!("{yaml}"),
        Some(path) => {
            std::fs::write(path, yaml)
                .map_err(|e| Failure(1, format!("cannot write {}: {e}", path.display())))?;
            eprintln!(
                "wrote {}; run: litestream replicate -config {}",
                path.display(),
                path.display()
            );
        }
    }
    Ok(0)
}

pub fn json(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
}
