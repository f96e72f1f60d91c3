//! Re-running this test binary as a child process.
//!
//! A child entry point is an `#[ignore]`d test, so an ordinary `cargo test`
//! lists it as ignored instead of counting it as a passing test. Its parent
//! runs it alone (`--ignored --exact NAME`), passing the tenant root in
//! [`ROOT_VAR`]; the child reads it with [`root`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The environment variable that carries the root to a child.
pub const ROOT_VAR: &str = "TENANTED_TEST_CHILD_ROOT";

/// In a child entry point: the root its parent passed, or `None` when the
/// test was not started by its parent (then it should return at once).
pub fn root() -> Option<PathBuf> {
    std::env::var_os(ROOT_VAR).map(PathBuf::from)
}

fn test_args(test: &str) -> [&str; 5] {
    [
        "--ignored",
        "--exact",
        test,
        "--nocapture",
        "--test-threads=1",
    ]
}

fn this_test_binary() -> PathBuf {
    std::env::current_exe().expect("the test binary's path")
}

/// The command that runs test `test` of this binary alone, in a child
/// process, on `root`.
pub fn command(test: &str, root: &Path) -> Command {
    let mut command = Command::new(this_test_binary());
    command.args(test_args(test)).env(ROOT_VAR, root);
    command
}

/// The same, after `preamble` in `sh` (for example `ulimit -n 128`).
pub fn command_after(preamble: &str, test: &str, root: &Path) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!(r#"{preamble} && exec "$0" "$@""#))
        .arg(this_test_binary())
        .args(test_args(test))
        .env(ROOT_VAR, root);
    command
}

/// The child running `test` inside its own mount namespace (`unshare
/// -m`), after `mounts` (shell commands) ran there; `None`, with the
/// skip printed for `who`, where this machine does not allow mount
/// namespaces. CI (`.ci/run`) sets `TENANTED_REQUIRE_UNSHARE`: there the
/// test must run, and a refusal fails it.
pub fn in_mount_namespace(mounts: &str, test: &str, root: &Path, who: &str) -> Option<Command> {
    let allowed = Command::new("unshare")
        .args(["-m", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !allowed {
        let why = "this machine does not allow `unshare -m` (needs CAP_SYS_ADMIN)";
        assert!(
            std::env::var_os("TENANTED_REQUIRE_UNSHARE").is_none(),
            "{why}"
        );
        eprintln!("SKIPPED {who}: {why}");
        return None;
    }
    let inner = command_after(mounts, test, root);
    let mut command = Command::new("unshare");
    command
        .arg("-m")
        .arg(inner.get_program())
        .args(inner.get_args());
    for (key, value) in inner.get_envs() {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    Some(command)
}

/// Starts `command` with its output captured, for [`wait`].
pub fn spawn(command: &mut Command) -> Child {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the child process starts")
}

/// Waits for a child started by [`spawn`]; panics with its output unless
/// it succeeded, and returns its standard output.
pub fn wait(child: Child) -> String {
    let out = child.wait_with_output().expect("the child process ends");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `command` to the end: [`spawn`] then [`wait`].
pub fn run(command: &mut Command) -> String {
    wait(spawn(command))
}

/// Starts child `test` on `root` with its output (both streams) going to
/// the file `out`: a long-running, chatty child must not block on a pipe
/// nobody reads until the end.
pub fn spawn_logged(test: &str, root: &Path, out: &Path) -> Child {
    let file = std::fs::File::create(out).expect("the child's output file");
    let err = file.try_clone().expect("a second handle on it");
    command(test, root)
        .stdout(file)
        .stderr(err)
        .spawn()
        .expect("the child process starts")
}

/// Waits until the child writing `out` has printed `word` (the test
/// harness may print its own words on the same line); panics with the
/// output after a minute.
pub fn wait_for_word(out: &Path, word: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let output = std::fs::read_to_string(out).unwrap_or_default();
        if output.split_whitespace().any(|w| w == word) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the child never printed {word}:\n{output}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Waits for a child started by [`spawn_logged`]; panics with its output
/// unless it succeeded, and returns that output.
pub fn wait_logged(mut child: Child, out: &Path) -> String {
    let status = child.wait().expect("the child process ends");
    let output = std::fs::read_to_string(out).unwrap_or_default();
    assert!(status.success(), "child failed ({status}):\n{output}");
    output
}

/// The file a long-running child stops at: beside its root, not in it.
pub fn stop_file(root: &Path) -> PathBuf {
    root.with_extension("stop")
}

/// Wall-clock nanoseconds, to order events across processes.
pub fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_nanos()
}
