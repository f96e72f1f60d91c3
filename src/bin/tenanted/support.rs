//! What every command shares: failures and their exit codes, argument
//! checks, confirmation, logging.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use crate::output::{err, errln, outln};
use tenanted::replication::format_timestamp;
use tenanted::{Error, TenantManager, TenantName};

/// A failure with its exit code.
pub struct Failure(pub u8, pub String);

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure(exit_code(&e), cli_message(&e))
    }
}

/// The exit code for `e`, by the one rule (see main.rs): 2 when the
/// command cannot be done as asked (a bad name, template, version, step
/// count or migrations folder, a layout other than the root's, a backup
/// to be written inside the root, a `--from` that is no intact backup),
/// 1 for anything that went wrong doing it.
pub fn exit_code(e: &Error) -> u8 {
    match e {
        Error::BadTenantName { .. }
        | Error::BadTemplate { .. }
        | Error::BadMigrations { .. }
        | Error::VersionOutOfRange { .. }
        | Error::RollbackTooFar { .. }
        | Error::LayoutMismatch { .. }
        | Error::BackupInsideRoot { .. }
        | Error::BadBackup { .. } => USAGE,
        _ => 1,
    }
}

/// The exit code of a command that cannot be done as asked.
pub const USAGE: u8 = 2;

impl Failure {
    /// Prints the failure on stderr (and as `{"error": ...}` on stdout for
    /// `--json`) and gives the exit code.
    pub fn report(self, json: bool) -> ExitCode {
        let Failure(code, message) = self;
        errln!("error: {message}");
        if json {
            outln!("{}", serde_json::json!({ "error": message }));
        }
        ExitCode::from(code)
    }
}

/// The error in the CLI's words: the library's messages advise API calls
/// (`create_tenant_if_not_exists`, `accept_migration_changes(true)`);
/// here every piece of advice is a command or a flag.
pub fn cli_message(e: &Error) -> String {
    match e {
        Error::TenantExists { tenant, path } => format!(
            "tenant {tenant} already exists at {}; pass --if-not-exists to accept an existing tenant",
            path.display()
        ),
        Error::TenantDoesNotExist { tenant, path } => format!(
            "tenant {tenant} does not exist (no database at {}); create it with `tenanted create {tenant}`",
            path.display()
        ),
        Error::DamagedTenant {
            tenant,
            path,
            reason,
        } => format!(
            "tenant {tenant} is damaged: its database file {} is not one tenanted can use ({reason}); tenanted has left it untouched: restore it from a backup (`tenanted restore {tenant} --from FILE --replace --yes`), or destroy it (`tenanted destroy {tenant} --yes`) and create it again",
            path.display()
        ),
        Error::MissingDatabase {
            tenant,
            dir,
            path,
            found,
        } => format!(
            "tenant {tenant} is damaged: its directory {} is there, so it is listed, but holds no database file {} ({found} there); nothing was changed: {}",
            dir.display(),
            path.display(),
            tenanted::__private::missing_database_way_out(
                found,
                path,
                ("`tenanted cleanup`", &format!("`tenanted create {tenant}`"))
            )
        ),
        Error::BadBackup {
            tenant,
            path,
            reason,
        } => format!(
            "cannot restore tenant {tenant} from {}: {reason}; nothing was changed: restore from an intact backup of this root (one `tenanted backup` made)",
            path.display()
        ),
        Error::PendingMigration(p) => format!(
            "tenant {} has {} pending migration(s) (at version {} of {}: {}); run `tenanted migrate --tenant {}`",
            p.tenant,
            p.pending.len(),
            p.current_version,
            p.latest_version,
            p.pending.join(", "),
            p.tenant
        ),
        other => cli_message_of_root(other).unwrap_or_else(|| other.to_string()),
    }
}

/// [`cli_message`] for the errors about the root and its migrations.
fn cli_message_of_root(e: &Error) -> Option<String> {
    Some(match e {
        Error::LayoutMismatch {
            root,
            recorded_template,
            recorded_buckets,
            template,
            buckets,
        } => format!(
            "the root {} was laid out with the template `{recorded_template}` and {recorded_buckets} bucket(s), but this command uses `{template}` and {buckets}: its tenants would be looked for, and created, in the wrong places; pass --template '{recorded_template}' --buckets {recorded_buckets} (or set TENANTED_TEMPLATE and TENANTED_BUCKETS)",
            root.display()
        ),
        Error::MigrationChanged {
            root,
            version,
            applied,
            code,
        } => format!(
            "migration {version} in --migrations is {code}, but the root {} applied {applied} at that version: its up.sql was edited, it was renamed, or another migration was inserted before it after it ran (a changed down.sql does not count); restore the original, give an inserted migration a name after the last one applied, or if the change is deliberate and safe, run once with --accept-migration-changes (a migration that failed on every tenant and was then fixed is safe: the root recorded it before it ran; `tenanted status --all` with the --migrations of the release that applied it shows no tenant at that version)",
            root.display()
        ),
        Error::RollbackTooFar {
            tenant,
            steps,
            applied,
        } if *applied > 0 => format!(
            "cannot roll tenant {tenant} back {steps} step(s): it has only {applied} migration(s) applied; pass --steps {applied} or fewer"
        ),
        Error::DownNotAllowed {
            tenant,
            version,
            target,
        } => format!(
            "tenant {tenant} reached version {version}, above the target {target}, after the run was confirmed: nothing was done to it; run `tenanted migrate --to {target}` again to see it and confirm"
        ),
        Error::SchemaAheadOfCode {
            tenant,
            path,
            current_version,
            latest_version,
        } => format!(
            "tenant {tenant} ({}) is at schema version {current_version} but this `tenanted` only knows {latest_version} migration(s) (--migrations): a newer release migrated it. Run the newer release's `tenanted`, or point --migrations (or TENANTED_MIGRATIONS) at its migrations folder; to bring the tenant back to version {latest_version} (runs down.sql: may drop data): `tenanted rollback {tenant} --steps {} --migrations NEWER_FOLDER`",
            path.display(),
            current_version.saturating_sub(*latest_version)
        ),
        Error::TooManyOpenFiles { tenant, path } => format!(
            "too many open files while opening tenant {tenant} at {}; pass a smaller --jobs, or raise the file-descriptor limit (ulimit -n)",
            path.display()
        ),
        _ => return None,
    })
}

/// Every name checked before anything is done: all bad ones are reported
/// together, with exit code 2. A name given twice is one tenant, done
/// once (`destroy d d` destroyed d, then failed on d; `create d d`
/// counted two creates).
pub fn tenant_names(names: &[String]) -> Result<Vec<TenantName>, Failure> {
    let mut good = Vec::with_capacity(names.len());
    let mut seen = std::collections::HashSet::with_capacity(names.len());
    let mut bad = Vec::new();
    for name in names {
        match TenantName::new(name) {
            Ok(t) if !seen.insert(t.clone()) => {}
            Ok(t) => good.push(t),
            Err(e) => bad.push(e.to_string()),
        }
    }
    if bad.is_empty() {
        Ok(good)
    } else {
        let message = format!("{}\nnothing was done", bad.join("\nerror: "));
        Err(Failure(2, message))
    }
}

/// `line`, a report's line for a tenant that failed with `e` (the
/// library's lines end with `e`'s message), ending in the CLI's words for
/// `e` instead: the one place the printers of report lines translate.
pub fn in_cli_words(line: String, e: &Error) -> String {
    match line.strip_suffix(e.to_string().as_str()) {
        Some(head) => format!("{head}{}", cli_message(e)),
        None => line,
    }
}

/// Every tenant of `names` must exist when the command starts: a misspelt
/// name is refused (exit 1) before anything is asked or done, all such
/// names together, rather than reported as a tenant gone, or failed, half
/// way through the run. `nothing` says what was not done.
pub fn require_tenants(
    manager: &TenantManager,
    names: &[TenantName],
    nothing: &str,
) -> Result<(), Failure> {
    let mut missing = Vec::new();
    for name in names {
        // Only a name nothing is known of: one on its way out (another
        // process's destroy, which the command waits for and reports) or
        // damaged is the command's to report, tenant by tenant.
        if !manager.tenant_exists(name.as_str())?
            && matches!(
                manager.connection(name.as_str()),
                Err(Error::TenantDoesNotExist { .. })
            )
        {
            let path = manager.root().database_path(name.as_str())?;
            missing.push(format!(
                "tenant {name} does not exist (no database at {}); check the name against `tenanted list`",
                path.display()
            ));
        }
    }
    match missing.is_empty() {
        true => Ok(()),
        false => Err(Failure(
            1,
            format!("{}\n{nothing}", missing.join("\nerror: ")),
        )),
    }
}

/// The root must be an existing directory for every command that looks at
/// the fleet: a missing root is never reported as an empty fleet.
pub fn require_root(root: &Path) -> Result<(), Failure> {
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Failure(
            1,
            format!(
                "root {} is not a directory; pass --root DIR (or TENANTED_ROOT) naming the directory that holds the tenants",
                root.display()
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::read_link(root) {
            Ok(target) => Err(Failure(
                1,
                format!(
                    "root {} is a symbolic link to {}, which does not exist: create that directory, or pass --root DIR (or TENANTED_ROOT) naming the directory that holds the tenants",
                    root.display(),
                    target.display()
                ),
            )),
            Err(_) => Err(Failure(
                1,
                format!(
                    "root {} does not exist; pass --root DIR (or TENANTED_ROOT) naming an existing root, or create a new one with `tenanted init` (no other command creates one, but `tenanted rebuild`, which brings a lost one back from its replica)",
                    root.display()
                ),
            )),
        },
        Err(e) => Err(Failure(
            1,
            format!("cannot read root {}: {e}", root.display()),
        )),
    }
}

/// Asks `question` on a terminal; off one, `--yes` is required.
pub fn confirm(yes: bool, why: &str, question: &str, declined: &str) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure(
            2,
            format!("{why}: pass --yes to confirm when not on a terminal"),
        ));
    }
    err!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure(1, format!("not confirmed; {declined}")))
    }
}

/// Logs on stderr, coloured only on a terminal.
pub fn init_logging(verbose: u8, quiet: bool) {
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
        .with_writer(|| crate::output::LogWriter)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// `time` in UTC as the number YYYYMMDDHHMMSS: the digits of the
/// library's RFC 3339 form up to its seconds.
pub fn utc_timestamp(time: SystemTime) -> u64 {
    let text = format_timestamp(time);
    let seconds = text.split_once('.').map_or(text.as_str(), |(s, _)| s);
    (seconds.bytes().filter(u8::is_ascii_digit)).fold(0, |n, d| n * 10 + u64::from(d - b'0'))
}

/// `value` as JSON, or an object saying why it could not be.
pub fn json(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
}
