//! A client for Litestream's control socket (Litestream 0.5.17 or later).
//!
//! Litestream serves HTTP on a Unix socket when its configuration has
//! `socket: {enabled: true, path: ...}`: `POST /register`, `POST
//! /unregister`, `POST /sync`, `GET /list`, `GET /info` and `GET /txid`,
//! each answering JSON (see `server.go` in its repository). Requests go as
//! HTTP/1.0, one connection each, so the answer always ends where the
//! connection does (Go never chunks a 1.0 answer); nothing here needs an
//! HTTP library.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::timestamp::parse_timestamp;
use crate::error::{Error, Result};

/// How long a request that does not wait for the replica may take.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Slack beyond Litestream's own timeout before this side gives up.
const SLACK: Duration = Duration::from_secs(5);

/// One Litestream process's control socket.
#[derive(Debug, Clone)]
pub struct ControlSocket {
    path: PathBuf,
    timeout: Duration,
}

/// What `register` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// Litestream now replicates the database.
    New,
    /// Litestream already had the database (by path), with whatever
    /// replica it was registered with first.
    AlreadyRegistered,
}

/// What `unregister` did: Litestream closed the database (after a last
/// sync of what it had) and no longer holds it open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unregistered {
    /// Whether Litestream had the database (false: nothing to do).
    pub was_registered: bool,
    /// The last transaction Litestream had written locally (0 if none).
    pub txid: u64,
}

/// What `sync` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    /// False when there was nothing new since the last sync.
    pub changed: bool,
    /// The database's transaction after the sync.
    pub txid: u64,
    /// The replica's transaction (meaningful when waited for).
    pub replicated_txid: u64,
}

/// One database Litestream has, from `list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The database's path as Litestream has it.
    pub path: PathBuf,
    /// `replicating`, `open` or `stopped`.
    pub status: String,
    /// When Litestream last synced it, if ever: its own local sync,
    /// which goes on while uploads to the replica fail (so
    /// `replication_status` judges the replica by its newest file).
    pub last_sync_at: Option<SystemTime>,
}

/// `info`: the Litestream process behind the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LitestreamInfo {
    /// Its version string.
    pub version: String,
    /// Its process id.
    pub pid: u32,
    /// Seconds since it started.
    pub uptime_seconds: u64,
    /// How many databases it has.
    pub database_count: usize,
}

impl ControlSocket {
    /// A client for the socket at `path` (nothing is connected yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ControlSocket {
            path: path.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// How long a request that does not wait for the replica may take
    /// (default 10 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Has Litestream replicate the database at `db` (an absolute path) to
    /// `replica_url` (`file:///DIR`, `s3://BUCKET/PATH?endpoint=...`).
    ///
    /// # Errors
    ///
    /// [`Error::LitestreamNotRunning`] when nothing listens on the socket;
    /// [`Error::Litestream`] when Litestream refuses (a bad URL, say).
    pub fn register(&self, db: &Path, replica_url: &str) -> Result<Registered> {
        let body = json!({ "path": path_str(db), "replica_url": replica_url });
        let answer = self.request("POST", "/register", Some(body), self.timeout)?;
        Ok(match answer["status"].as_str() {
            Some("already_registered") => Registered::AlreadyRegistered,
            _ => Registered::New,
        })
    }

    /// Has Litestream sync what it has of `db` and close it, within
    /// `timeout` (whole seconds, at least one).
    ///
    /// # Errors
    ///
    /// As [`ControlSocket::register`].
    pub fn unregister(&self, db: &Path, timeout: Duration) -> Result<Unregistered> {
        self.unregister_with(db, timeout, timeout + SLACK)
    }

    /// As [`ControlSocket::unregister`], all of it (Litestream's last sync
    /// and the exchange) within `budget`, with no slack added: for a wait
    /// that has a deadline of its own (a destroy's).
    pub(crate) fn unregister_within(&self, db: &Path, budget: Duration) -> Result<Unregistered> {
        self.unregister_with(db, budget, budget)
    }

    fn unregister_with(
        &self,
        db: &Path,
        sync: Duration,
        exchange: Duration,
    ) -> Result<Unregistered> {
        let body = json!({ "path": path_str(db), "timeout": whole_seconds(sync) });
        let answer = self.request("POST", "/unregister", Some(body), exchange)?;
        Ok(Unregistered {
            was_registered: answer["status"].as_str() == Some("unregistered"),
            txid: answer["txid"].as_u64().unwrap_or(0),
        })
    }

    /// Syncs `db` now; with `wait`, returns only once the replica has it
    /// (`litestream sync -wait`), within `timeout`.
    ///
    /// # Errors
    ///
    /// As [`ControlSocket::register`]; [`Error::Litestream`] with status
    /// 404 when Litestream does not have the database.
    pub fn sync(&self, db: &Path, wait: bool, timeout: Duration) -> Result<Synced> {
        let body = json!({ "path": path_str(db), "wait": wait, "timeout": whole_seconds(timeout) });
        let answer = self.request("POST", "/sync", Some(body), timeout + SLACK)?;
        Ok(Synced {
            changed: answer["status"].as_str() != Some("no_change"),
            txid: answer["txid"].as_u64().unwrap_or(0),
            replicated_txid: answer["replicated_txid"].as_u64().unwrap_or(0),
        })
    }

    /// Every database Litestream has.
    ///
    /// # Errors
    ///
    /// As [`ControlSocket::register`].
    pub fn list(&self) -> Result<Vec<Registration>> {
        let answer = self.request("GET", "/list", None, self.timeout)?;
        let databases = answer["databases"].as_array().cloned().unwrap_or_default();
        Ok(databases
            .iter()
            .map(|db| Registration {
                path: PathBuf::from(db["path"].as_str().unwrap_or_default()),
                status: db["status"].as_str().unwrap_or_default().to_owned(),
                last_sync_at: db["last_sync_at"].as_str().and_then(parse_timestamp),
            })
            .collect())
    }

    /// The Litestream process behind the socket.
    ///
    /// # Errors
    ///
    /// As [`ControlSocket::register`].
    pub fn info(&self) -> Result<LitestreamInfo> {
        let answer = self.request("GET", "/info", None, self.timeout)?;
        Ok(LitestreamInfo {
            version: answer["version"].as_str().unwrap_or_default().to_owned(),
            pid: answer["pid"]
                .as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(0),
            uptime_seconds: answer["uptime_seconds"].as_u64().unwrap_or(0),
            database_count: answer["database_count"]
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(0),
        })
    }

    /// Whether anything answers on the socket.
    pub fn is_running(&self) -> bool {
        self.info().is_ok()
    }

    /// Sends one request and returns the answer's JSON, or the error it
    /// carries.
    fn request(
        &self,
        method: &str,
        target: &str,
        body: Option<Value>,
        timeout: Duration,
    ) -> Result<Value> {
        let exchange = || -> io::Result<(u16, Vec<u8>)> {
            let mut stream = UnixStream::connect(&self.path)?;
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))?;
            let body = body.as_ref().map(Value::to_string).unwrap_or_default();
            let head = format!(
                "{method} {target} HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes())?;
            stream.write_all(body.as_bytes())?;
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer)?;
            parse_response(&answer)
        };
        let (status, body) = exchange().map_err(|e| self.transport_error(target, e))?;
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status == 200 {
            return Ok(value);
        }
        let message = value["error"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
        Err(Error::Litestream {
            socket: self.path.clone(),
            request: target.trim_start_matches('/').to_owned(),
            status,
            message,
        })
    }

    fn transport_error(&self, target: &str, cause: io::Error) -> Error {
        match cause.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                Error::LitestreamNotRunning {
                    socket: self.path.clone(),
                }
            }
            // The socket's read timed out: Litestream is up but stuck,
            // most often on a store that does not answer (an outside probe
            // saw only "Resource temporarily unavailable").
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Litestream {
                socket: self.path.clone(),
                request: target.trim_start_matches('/').to_owned(),
                status: 0,
                message: format!(
                    "{cause}: Litestream did not answer in time; it is most often blocked on a replica store that does not answer: check that the store is up and reachable, and Litestream's log beside this socket (litestream-N.log)"
                ),
            },
            _ => Error::Litestream {
                socket: self.path.clone(),
                request: target.trim_start_matches('/').to_owned(),
                status: 0,
                message: cause.to_string(),
            },
        }
    }
}

/// Splits an HTTP answer into its status code and body.
fn parse_response(answer: &[u8]) -> io::Result<(u16, Vec<u8>)> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("an answer without a header"))?;
    let head = std::str::from_utf8(&answer[..end]).map_err(|_| bad("a header that is not text"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad("an answer without a status"))?;
    Ok((status, answer[end + 4..].to_vec()))
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn whole_seconds(timeout: Duration) -> u64 {
    timeout.as_secs().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_split_into_status_and_body() {
        let (status, body) =
            parse_response(b"HTTP/1.0 404 Not Found\r\nContent-Type: x\r\n\r\n{\"error\":\"no\"}")
                .unwrap();
        assert_eq!(status, 404);
        assert_eq!(body, b"{\"error\":\"no\"}");
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn nothing_listening_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let socket = ControlSocket::new(dir.path().join("none.sock"));
        assert!(matches!(
            socket.list(),
            Err(Error::LitestreamNotRunning { .. })
        ));
        assert!(!socket.is_running());
    }

    /// A Litestream that accepts but never answers (blocked on a store
    /// that does not answer) is said to be stuck, and where to look.
    #[test]
    fn a_socket_that_never_answers_points_at_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stuck.sock");
        let _listening = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let socket = ControlSocket::new(&path).timeout(Duration::from_millis(200));
        let said = socket.list().unwrap_err().to_string();
        assert!(
            said.contains("did not answer in time") && said.contains("store"),
            "{said}"
        );
    }
}
