//! `init`, `list`, `create` and `destroy`: a root and its tenants coming
//! into being and going away, with `--json` for scripts.

use serde_json::{Value, json};
use tenanted::{Error, MigrateOptions, TenantName};

use crate::Cli;
use crate::interrupt::{finish_the_tenant_in_hand_on_ctrl_c, unless_interrupted, was_interrupted};
use crate::output::{errln, one_line, outln};
use crate::support::{
    Failure, cli_message, confirm, exit_code, require_root, require_tenants, tenant_names,
};

/// `tenanted create`.
#[derive(clap::Args)]
pub struct CreateArgs {
    /// Tenant names (all are checked before any is created).
    #[arg(required = true, env = "TENANTED_TENANT")]
    names: Vec<String>,
    /// Accept tenants that already exist instead of failing.
    #[arg(long)]
    if_not_exists: bool,
    /// Print {"tenants": [{"tenant", "result", "path", "error"}], "totals"}.
    #[arg(long)]
    pub json: bool,
}

/// `tenanted destroy`.
#[derive(clap::Args)]
pub struct DestroyArgs {
    /// Tenant names (all are checked before anything is asked or done).
    #[arg(required = true, env = "TENANTED_TENANT")]
    names: Vec<String>,
    /// Do not ask (required when not on a terminal).
    #[arg(long)]
    yes: bool,
    /// Print {"tenants": [{"tenant", "result", "error"}], "totals"}.
    #[arg(long)]
    pub json: bool,
}

/// `tenanted init`: the root's directory, its layout record and (when the
/// migrations can be read) its migration history. Running it on an
/// existing root checks that root against the flags and changes nothing.
pub fn init(cli: &Cli) -> Result<u8, Failure> {
    let existed = cli.root.is_dir();
    let manager = match cli.load_migrations() {
        Ok(migrations) => cli.builder(migrations)?.build()?,
        // A new project may have no migrations yet; the history is then
        // recorded by the first command that reads them.
        Err(_) if !cli.migrations.exists() => cli.schemaless_manager()?,
        Err(failure) => return Err(failure),
    };
    std::fs::create_dir_all(&cli.root).map_err(|e| {
        Failure(
            1,
            format!("cannot create the root {}: {e}", cli.root.display()),
        )
    })?;
    // The layout and the history, as any first write records them.
    manager.record_root()?;
    let report = manager.migrate_all(&MigrateOptions::new())?;
    let what = if existed {
        "the root is ready"
    } else {
        "created the root"
    };
    let layout = cli.root_config();
    outln!(
        "{what} at {} (template {}, {} buckets; {} tenant(s))",
        cli.root.display(),
        layout.template_str(),
        layout.bucket_count(),
        report.total()
    );
    Ok(0)
}

pub fn list(cli: &Cli, json: bool) -> Result<u8, Failure> {
    require_root(&cli.root)?;
    let mut names = cli
        .root_config()
        .tenants()?
        .collect::<Result<Vec<_>, _>>()?;
    names.sort();
    let mut suspended = super::limits::suspended(cli)?;
    if json {
        suspended.retain(|name, _| names.binary_search_by(|t| t.as_str().cmp(name)).is_ok());
        let names: Vec<&str> = names.iter().map(|t| t.as_str()).collect();
        let mut value = json!({ "tenants": names });
        // Only when there is one, so the plain shape stays as it was.
        if !suspended.is_empty() {
            value["suspended"] = json!(suspended);
        }
        outln!("{value}");
    } else {
        for name in names {
            match suspended.get(name.as_str()) {
                Some(s) => outln!("{name}  (suspended, {}: {})", s.mode, one_line(&s.reason)),
                None => outln!("{name}"),
            }
        }
    }
    Ok(0)
}

/// One tenant's result, as a line and as JSON.
struct Outcome {
    tenant: TenantName,
    result: &'static str,
    path: Option<String>,
    error: Option<Failure>,
}

impl Outcome {
    fn json(&self) -> Value {
        let error = self.error.as_ref().map(|f| f.1.as_str());
        let mut value =
            json!({ "tenant": self.tenant.as_str(), "result": self.result, "error": error });
        if let Some(path) = &self.path {
            value["path"] = json!(path);
        }
        value
    }
}

/// Says `o` as it happens: its line (not with `--json`), or its error on
/// stderr.
/// Says `o` (a failure always; a success unless `quiet`: `-q` prints
/// only failures and summaries, and `create -q` printed every tenant: an
/// outside probe), or nothing yet with `json`.
fn say(o: Outcome, (json, quiet): (bool, bool)) -> Outcome {
    match &o.error {
        Some(Failure(_, message)) => errln!("error: {message}"),
        None if !json && !quiet => outln!("{}", line(&o)),
        None => {}
    }
    o
}

/// Prints the JSON document (with `--json`) and gives the worst exit code.
fn report(outcomes: &[Outcome], results: &[&str], json: bool) -> u8 {
    if json {
        let tenants: Vec<Value> = outcomes.iter().map(Outcome::json).collect();
        let mut totals = serde_json::Map::new();
        for result in results {
            let n = outcomes.iter().filter(|o| o.result == *result).count();
            totals.insert((*result).to_owned(), json!(n));
        }
        outln!("{}", json!({ "tenants": tenants, "totals": totals }));
    }
    let worst = outcomes
        .iter()
        .filter_map(|o| o.error.as_ref().map(|f| f.0));
    worst.max().unwrap_or(0)
}

fn line(o: &Outcome) -> String {
    let at = o
        .path
        .as_deref()
        .map(|p| format!(" at {p}"))
        .unwrap_or_default();
    match o.result {
        "existed" => format!("{} already exists{at}", o.tenant),
        result => format!("{result} {}{at}", o.tenant),
    }
}

pub fn create(cli: &Cli, args: &CreateArgs) -> Result<u8, Failure> {
    let names = tenant_names(&args.names)?;
    require_root(&cli.root)?;
    let m = cli.manager_for("create", &names)?;
    // One batch: many names share the cost of making them durable.
    // A batch stopped half way leaves hidden debris: it finishes first.
    let interrupted = finish_the_tenant_in_hand_on_ctrl_c();
    let created = m.create_tenants(&names)?;
    let path = |t: &TenantName| m.root().database_path(t.as_str()).unwrap_or_default();
    // Said in the order the names were given.
    let outcome = |tenant: &TenantName| {
        let at = Some(path(tenant).display().to_string());
        let (result, error) = if created.created.contains(tenant) {
            ("created", None)
        } else if created.existed.contains(tenant) && args.if_not_exists {
            ("existed", None)
        } else if created.existed.contains(tenant) {
            let e = Error::TenantExists {
                tenant: tenant.clone(),
                path: path(tenant),
            };
            ("failed", Some(Failure::from(e)))
        } else {
            let found = created.failed.iter().find(|(n, _)| n == tenant.as_str());
            let failure = found.map(|(_, e)| Failure(exit_code(e), cli_message(e)));
            ("failed", failure)
        };
        Outcome {
            tenant: tenant.clone(),
            result,
            path: at,
            error,
        }
    };
    let how = (args.json, cli.quiet);
    let outcomes: Vec<Outcome> = names.iter().map(|t| say(outcome(t), how)).collect();
    let code = report(&outcomes, &["created", "existed", "failed"], args.json);
    Ok(unless_interrupted(&interrupted, code))
}

pub fn destroy(cli: &Cli, args: &DestroyArgs) -> Result<u8, Failure> {
    let names = tenant_names(&args.names)?;
    require_root(&cli.root)?;
    let m = cli.schemaless_manager()?;
    // All checked before anything is asked: a typo destroys nothing.
    require_tenants(&m, &names, "nothing was destroyed")?;
    let list: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
    confirm(
        args.yes,
        "destroy deletes data",
        &format!("Destroy {} and all their data?", list.join(", ")),
        "nothing destroyed",
    )?;
    let outcome = |tenant: &TenantName| {
        let error = m.destroy_tenant(tenant.as_str()).err().map(Failure::from);
        Outcome {
            tenant: tenant.clone(),
            result: if error.is_none() {
                "destroyed"
            } else {
                "failed"
            },
            path: None,
            error,
        }
    };
    let interrupted = finish_the_tenant_in_hand_on_ctrl_c();
    let outcomes: Vec<Outcome> = names
        .iter()
        .map(|t| match was_interrupted(&interrupted) {
            false => say(outcome(t), (args.json, cli.quiet)),
            true => say(not_started(t), (args.json, cli.quiet)),
        })
        .collect();
    // "not started" is counted only when a Ctrl-C made some.
    let results: &[&str] = match was_interrupted(&interrupted) {
        true => &["destroyed", "failed", "not started"],
        false => &["destroyed", "failed"],
    };
    let code = report(&outcomes, results, args.json);
    Ok(unless_interrupted(&interrupted, code))
}

/// A tenant a Ctrl-C kept the command from starting on.
fn not_started(tenant: &TenantName) -> Outcome {
    Outcome {
        tenant: tenant.clone(),
        result: "not started",
        path: None,
        error: None,
    }
}
