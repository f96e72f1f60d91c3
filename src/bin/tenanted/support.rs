//! What every command shares: failures and their exit codes, argument
//! checks, confirmation, logging.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use tenanted::{Error, TenantName};

/// A failure with its exit code.
pub struct Failure(pub u8, pub String);

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure(exit_code(&e), cli_message(&e))
    }
}

/// The exit code for `e`: 2 for bad input, 1 for anything else.
pub fn exit_code(e: &Error) -> u8 {
    if matches!(e, Error::BadTenantName { .. } | Error::BadTemplate { .. }) {
        2
    } else {
        1
    }
}

impl Failure {
    /// Prints the failure on stderr (and as `{"error": ...}` on stdout for
    /// `--json`) and gives the exit code.
    pub fn report(self, json: bool) -> ExitCode {
        let Failure(code, message) = self;
        eprintln!("error: {message}");
        if json {
            println!("{}", serde_json::json!({ "error": message }));
        }
        ExitCode::from(code)
    }
}

/// The library's message, with the CLI's own advice where it has a flag
/// for it.
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
        other => other.to_string(),
    }
}

/// Every name checked before anything is done: all bad ones are reported
/// together, with exit code 2.
pub fn tenant_names(names: &[String]) -> Result<Vec<TenantName>, Failure> {
    let mut good = Vec::with_capacity(names.len());
    let mut bad = Vec::new();
    for name in names {
        match TenantName::new(name) {
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
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure(
            1,
            format!(
                "root {} does not exist; pass --root DIR (or TENANTED_ROOT), or create the first tenant with `tenanted create NAME`",
                root.display()
            ),
        )),
        Err(e) => Err(Failure(
            1,
            format!("cannot read root {}: {e}", root.display()),
        )),
    }
}

/// Runs `f` for every name, going on past failures; the exit code is the
/// worst one seen.
pub fn each(
    names: &[TenantName],
    mut f: impl FnMut(&str) -> Result<(), Error>,
) -> Result<u8, Failure> {
    let mut worst = 0;
    for name in names {
        if let Err(e) = f(name.as_str()) {
            let Failure(code, message) = Failure::from(e);
            eprintln!("error: {message}");
            worst = worst.max(code);
        }
    }
    Ok(worst)
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
    eprint!("{question} [y/N] ");
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
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
