//! `tenanted backup` and `restore`: copies of tenants, and tenants put
//! back from them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tenanted::{
    BackupCounts, BackupOptions, Error, ReportWithLines, RestoreOptions, RestoreOutcome,
    TenantBackup,
};

use crate::Cli;
use crate::interrupt::{
    INTERRUPTED, cancel_on_ctrl_c, finish_the_tenant_in_hand_on_ctrl_c, unless_interrupted,
};
use crate::migrate::progress_bar;
use crate::output::{errln, json_to_stdout, outln};
use crate::rotation;
use crate::support::{
    Failure, USAGE, confirm, in_cli_words, json, require_root, require_tenants, tenant_names,
};

/// `tenanted backup`.
#[derive(clap::Args)]
pub struct BackupArgs {
    /// Back up only this tenant (repeat for several; default: every one).
    #[arg(long = "tenant", value_name = "NAME", env = "TENANTED_TENANT")]
    tenants: Vec<String>,
    /// A new directory to write to, laid out like the root (not inside
    /// it); an existing one is refused.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "into",
        conflicts_with = "into"
    )]
    to: Option<PathBuf>,
    /// Write to a new timestamped directory DIR/YYYYMMDDTHHMMSSZ (UTC;
    /// -2, -3, ... after it for later runs of the same second) per run;
    /// with --keep/--keep-days, prune older runs.
    #[arg(long, value_name = "DIR")]
    into: Option<PathBuf>,
    /// With --into: keep the newest N runs (and any run holding a
    /// tenant's only good copy).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    keep: Option<u32>,
    /// With --into: keep the runs younger than D days (and any run holding
    /// a tenant's only good copy).
    #[arg(long, value_name = "D")]
    keep_days: Option<u64>,
    /// Parallel workers (at least 1; default: cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    /// Keep each copy without reading it back (by default every copy is
    /// checked with PRAGMA integrity_check, as a restore checks it, and a
    /// damaged tenant's copy is thrown away and its tenant reported).
    #[arg(long)]
    no_verify: bool,
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

pub fn backup(cli: &Cli, args: &BackupArgs) -> Result<u8, Failure> {
    let only = tenant_names(&args.tenants)?;
    require_root(&cli.root)?;
    let manager = cli.schemaless_manager()?;
    if args.into.is_none() && (args.keep.is_some() || args.keep_days.is_some()) {
        let why = "--keep and --keep-days rotate the runs of --into DIR (one timestamped directory per run); --to writes one directory and prunes nothing";
        return Err(Failure(2, why.to_owned()));
    }
    // A prune keeps an older run for each tenant whose only good copy it
    // holds; a copy nobody checked cannot be known good, and a damaged
    // tenant's last good copy was pruned for one (an outside probe).
    if args.no_verify && (args.keep.is_some() || args.keep_days.is_some()) {
        let why = "--no-verify cannot be combined with --keep or --keep-days: a prune removes older runs once a newer one holds a good copy of each tenant, and an unchecked copy may be damaged (it would take the place of the last good one); drop --no-verify, or back up without --keep/--keep-days";
        return Err(Failure(2, why.to_owned()));
    }
    if let Some(into) = &args.into {
        rotation::refuse_root_inside(&cli.root, into)?;
    }
    // Before the directory is made: a misspelt name is no backup run.
    require_tenants(&manager, &only, "nothing was backed up")?;
    // What this command makes on the way there, removed again if the
    // run fails as a whole (a directory inside the root, say).
    let made = (args.to.as_deref().or(args.into.as_deref())).and_then(first_missing);
    // A run of --into is held while it is written (see `rotation.rs`).
    let (dir, _held) = match (&args.to, &args.into) {
        (Some(to), _) => {
            rotation::new_dir(to)?;
            (to.clone(), None)
        }
        (None, Some(into)) => {
            let run = rotation::new_run(into)?;
            rotation::mark_unfinished(&run.dir)?;
            (run.dir.clone(), Some(run))
        }
        (None, None) => return Err(Failure(2, "pass --to DIR or --into DIR".to_owned())),
    };
    let (report, lines) = match run_backup(cli, &manager, &dir, &only, args) {
        Ok(ran) => ran,
        Err(failure) => {
            let failure = discard_run(&dir, failure);
            remove_made(&dir, made.as_deref());
            return Err(failure);
        }
    };
    if !report.cancelled && args.into.is_some() {
        rotation::mark_finished(&dir);
    }
    let retention = rotation::Retention {
        keep: args.keep.map(|k| k as usize),
        keep_days: args.keep_days,
    };
    let rotating = retention.keep.is_some() || retention.keep_days.is_some();
    let pruned = match (&args.into, rotating && !report.cancelled) {
        (Some(parent), true) => Some(rotation::prune(cli, parent, &dir, retention)),
        _ => None,
    };
    // A prune that could not even list the runs fails the command after
    // the report of the run it made (which was the only thing said: an
    // outside probe).
    let (pruned, prune_failed) = match pruned {
        Some(Err(Failure(_, why))) => (None, Some(why)),
        Some(Ok(pruned)) => (Some(pruned), None),
        None => (None, None),
    };
    let prune = (pruned.as_ref(), prune_failed.as_deref());
    print_backup(&report, prune, args.json.then_some(&lines));
    if let Some(why) = &prune_failed {
        errln!("the backup above was made, but older runs were not pruned: {why}");
    }
    let unjudged = prune_failed.is_some()
        || (pruned.as_ref()).is_some_and(|p| !p.unjudged.is_empty() || !p.leftovers.is_empty());
    Ok(if report.cancelled {
        INTERRUPTED
    } else if report.is_success() && !unjudged {
        0
    } else {
        1
    })
}

/// A run that failed as a whole (before its first copy, or in its last
/// sync) is no backup: the directory this command made for it goes, with
/// whatever the run wrote there (never through a link: `remove_dir_all`
/// does not follow them), so that the same command can be run again.
/// The failure says what became of it.
fn discard_run(dir: &std::path::Path, Failure(code, message): Failure) -> Failure {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Failure(
            code,
            format!(
                "{message}\n(the directory {} this backup made was removed)",
                dir.display()
            ),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Failure(code, message),
        Err(e) => Failure(
            code,
            format!(
                "{message}\n(the directory {} this backup made could not be removed: {e}; remove it before running the same backup again)",
                dir.display()
            ),
        ),
    }
}

/// The outermost directory of `path` (itself included) that does not
/// exist yet: what a backup into `path` makes.
fn first_missing(path: &std::path::Path) -> Option<std::path::PathBuf> {
    let missing = |p: &&std::path::Path| !p.as_os_str().is_empty() && !p.exists();
    path.ancestors()
        .take_while(missing)
        .last()
        .map(|p| p.to_path_buf())
}

/// Removes the directories a failed run made above `dir` (itself gone),
/// up to `made`, each only if empty: they were this command's, and a
/// failure changes nothing (exit 2: nothing was done).
fn remove_made(dir: &std::path::Path, made: Option<&std::path::Path>) {
    let Some(made) = made else { return };
    for above in dir.ancestors().skip(1) {
        if !above.starts_with(made) || std::fs::remove_dir(above).is_err() {
            return;
        }
    }
}

/// `backup_all` into `dir`, with a bar on a terminal and Ctrl-C handled;
/// with `--json`, every tenant's line too (sorted by name, or in the order
/// given), which the documented JSON lists.
fn run_backup(
    cli: &Cli,
    manager: &tenanted::TenantManager,
    dir: &std::path::Path,
    only: &[tenanted::TenantName],
    args: &BackupArgs,
) -> Result<(tenanted::BackupReport, Vec<TenantBackup>), Failure> {
    let cancel = cancel_on_ctrl_c();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut options = BackupOptions::new()
        .cancel_on(Arc::clone(&cancel))
        .verify(!args.no_verify);
    if args.json {
        let lines = Arc::clone(&lines);
        options = options.after_each(move |line| {
            if let Ok(mut lines) = lines.lock() {
                lines.push(line.clone());
            }
        });
    }
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
    let report = manager.backup_all(dir, &options)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut lines = (lines.lock()).map_or_else(|_| Vec::new(), |mut l| std::mem::take(&mut *l));
    match only.is_empty() {
        true => lines.sort_by(|a, b| a.tenant.cmp(&b.tenant)),
        false => lines.sort_by_key(|l| only.iter().position(|t| *t == l.tenant)),
    }
    Ok((report, lines))
}

/// The backup report (every failure gathered at the end), then what the
/// prune removed and kept, or why it could not run; as JSON (`lines`:
/// every tenant's, listed under `tenants`) or text (where the caller says
/// why the prune failed, on stderr).
fn print_backup(
    report: &tenanted::BackupReport,
    (pruned, prune_failed): (Option<&rotation::Pruned>, Option<&str>),
    lines: Option<&Vec<TenantBackup>>,
) {
    if let Some(lines) = lines {
        json_to_stdout(&BackupJson {
            report: report.with_lines(lines),
            pruned: pruned.map(PrunedJson::new),
            prune_error: prune_failed,
        });
        return;
    }
    print_report(report);
    let Some(pruned) = pruned else { return };
    for dir in &pruned.removed {
        outln!("pruned {}", dir.display());
    }
    for (dir, tenants) in &pruned.kept_for {
        outln!(
            "kept {}: it holds the only good copy of {}",
            dir.display(),
            tenants.join(", ")
        );
    }
    for dir in &pruned.in_progress {
        outln!(
            "kept {}: another backup command was writing it when this one listed the runs, or is pruning it now; the next prune judges it",
            dir.display()
        );
    }
    for (dir, why) in &pruned.unjudged {
        outln!(
            "✗ kept {}: it could not be judged ({why}); look at it, and remove it by hand if it is no backup",
            dir.display()
        );
    }
    for (dir, why) in &pruned.leftovers {
        outln!(
            "✗ {} (a pruned run, no longer a backup) could not be removed ({why}); remove it by hand",
            dir.display()
        );
    }
}

/// The report as its `Display` writes it, each failed tenant's line in the
/// CLI's words.
fn print_report(report: &tenanted::BackupReport) {
    for line in &report.failures {
        let text = line.to_string();
        match line.error.as_deref() {
            Some(e) => outln!("{}", in_cli_words(text, e)),
            None => outln!("{text}"),
        }
    }
    for e in &report.listing_errors {
        outln!("✗ {e}");
    }
    outln!("{}", report.summary());
}

/// `backup --json`: the report listing every tenant's line, and what the
/// prune removed and kept. Written as it is serialized.
#[derive(serde::Serialize)]
struct BackupJson<'a> {
    #[serde(flatten)]
    report: ReportWithLines<'a, BackupCounts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pruned: Option<PrunedJson<'a>>,
    /// Why the prune could not run at all (the runs could not be listed):
    /// with `--json` it was said only on stderr and by the exit code.
    #[serde(skip_serializing_if = "Option::is_none")]
    prune_error: Option<&'a str>,
}

/// `{"removed": [dir, ...], "kept": [{"dir", "only_copy_of"}, ...],
/// "unjudged": [{"dir", "error"}, ...], "in_progress": [dir, ...],
/// "leftovers": [{"dir", "error"}, ...]}`.
#[derive(serde::Serialize)]
struct PrunedJson<'a> {
    removed: Vec<String>,
    kept: Vec<KeptJson<'a>>,
    unjudged: Vec<UnjudgedJson<'a>>,
    /// Runs another backup command is still writing.
    in_progress: Vec<String>,
    /// What pruned runs left and could not be removed.
    leftovers: Vec<UnjudgedJson<'a>>,
}

#[derive(serde::Serialize)]
struct UnjudgedJson<'a> {
    dir: String,
    error: &'a str,
}

#[derive(serde::Serialize)]
struct KeptJson<'a> {
    dir: String,
    only_copy_of: &'a [String],
}

impl<'a> PrunedJson<'a> {
    fn new(pruned: &'a rotation::Pruned) -> Self {
        PrunedJson {
            removed: pruned
                .removed
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            kept: (pruned.kept_for.iter())
                .map(|(dir, tenants)| KeptJson {
                    dir: dir.display().to_string(),
                    only_copy_of: tenants,
                })
                .collect(),
            unjudged: (pruned.unjudged.iter())
                .map(|(dir, why)| UnjudgedJson {
                    dir: dir.display().to_string(),
                    error: why,
                })
                .collect(),
            in_progress: (pruned.in_progress.iter())
                .map(|p| p.display().to_string())
                .collect(),
            leftovers: (pruned.leftovers.iter())
                .map(|(dir, why)| UnjudgedJson {
                    dir: dir.display().to_string(),
                    error: why,
                })
                .collect(),
        }
    }
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
    require_root(&cli.root)?;
    let manager = cli.manager()?;
    let options = RestoreOptions::new().replace(args.replace);
    let interrupted = finish_the_tenant_in_hand_on_ctrl_c();
    let outcome = manager
        .restore_tenant_opts(tenant.as_str(), &args.from, &options)
        .map_err(|e| match e {
            Error::TenantExists { tenant, path } => Failure(
                1,
                format!(
                    "tenant {tenant} already exists at {}; pass --replace (and --yes off a terminal) to overwrite it with the backup: its current data is lost",
                    path.display()
                ),
            ),
            // The general advice rolls back a tenant of the root: here
            // there is none yet (an outside probe).
            Error::SchemaAheadOfCode {
                current_version,
                latest_version,
                ..
            } => Failure(
                USAGE,
                format!(
                    "the backup {} is at schema version {current_version} but this `tenanted` only knows {latest_version} migration(s) (--migrations): a newer release made it; restore it with that release's `tenanted`, or point --migrations (or TENANTED_MIGRATIONS) at its migrations folder; nothing was restored",
                    args.from.display()
                ),
            ),
            e => Failure::from(e),
        })?;
    if args.json {
        outln!("{}", json(&outcome));
    } else {
        outln!("{}", restored_line(&outcome, &args.from));
    }
    Ok(unless_interrupted(&interrupted, 0))
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
