//! Replicating a whole fleet with `tenanted replicate` (issue #25, item
//! 3): N tenants, a fraction of them written once a second each, the
//! supervisor and its Litestream processes measured (memory,
//! descriptors, processes, scan time), then everything killed with
//! SIGKILL at once and a sample of the written tenants restored from the
//! replica: how long before the kill the earliest lost write was
//! acknowledged is the measured RPO.
//!
//! ```text
//! cargo build --release --all-features --bin tenanted --example replication_fleet
//! target/release/examples/replication_fleet --tenants 10000 --written 0.05 \
//!     --seconds 60 --shards 2 --dir /tmp/fleet [--tenanted target/release/tenanted]
//! ```
//!
//! The root is built once per `--dir` and size (one real tenant copied to
//! every path) and kept; the replica and the supervisor's state start
//! fresh every run, so the first phase replicates every tenant once (the
//! initial sweep, timed).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tenanted::replication::ReplicationSettings;
use tenanted::{Migrations, RootConfig, TenantManager};

struct Args {
    tenants: usize,
    written: f64,
    seconds: u64,
    shards: usize,
    max_per_process: usize,
    scan_ms: u64,
    idle_after: u64,
    sample: usize,
    dir: PathBuf,
    tenanted: PathBuf,
    litestream: String,
    assume_replicated: bool,
}

fn args() -> Args {
    let mut a = Args {
        tenants: 10_000,
        written: 0.05,
        seconds: 60,
        shards: 2,
        max_per_process: 2000,
        scan_ms: 1000,
        idle_after: 10,
        sample: 100,
        dir: std::env::temp_dir().join("tenanted-replication-fleet"),
        tenanted: PathBuf::from("target/release/tenanted"),
        litestream: "litestream".to_owned(),
        assume_replicated: false,
    };
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = argv.iter().position(|a| a == "--assume-replicated") {
        argv.remove(at);
        a.assume_replicated = true;
    }
    for pair in argv.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--tenants" => a.tenants = v.parse().expect("--tenants N"),
            "--written" => a.written = v.parse().expect("--written FRACTION"),
            "--seconds" => a.seconds = v.parse().expect("--seconds S"),
            "--shards" => a.shards = v.parse().expect("--shards N"),
            "--max-per-process" => a.max_per_process = v.parse().expect("--max-per-process N"),
            "--scan-ms" => a.scan_ms = v.parse().expect("--scan-ms MS"),
            "--idle-after" => a.idle_after = v.parse().expect("--idle-after S"),
            "--sample" => a.sample = v.parse().expect("--sample N"),
            "--dir" => a.dir = PathBuf::from(v),
            "--tenanted" => a.tenanted = PathBuf::from(v),
            "--litestream" => a.litestream = v,
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn name(i: usize) -> String {
    format!("t{i:07}")
}

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/migrations")
}

/// The root with `n` tenants (built by copying one real tenant).
fn build_root(root: &Path, n: usize) -> Duration {
    let started = Instant::now();
    let config = RootConfig::new(root);
    let migrations = Migrations::from_dir(schema_dir()).unwrap();
    let m = TenantManager::builder(config.clone(), migrations)
        .build()
        .unwrap();
    if !m.tenant_exists(&name(0)).unwrap() {
        m.create_tenant(&name(0)).unwrap();
    }
    let first = config.database_path(&name(0)).unwrap();
    std::thread::scope(|scope| {
        for part in 0..2 {
            let (config, first) = (&config, &first);
            scope.spawn(move || {
                for i in (1 + part..n).step_by(2) {
                    let db = config.database_path(&name(i)).unwrap();
                    if !db.exists() {
                        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
                        std::fs::copy(first, &db).unwrap();
                    }
                }
            });
        }
    });
    let _ = Command::new("sync").status();
    started.elapsed()
}

#[derive(Default, Clone)]
struct Seen {
    last: serde_json::Value,
    max_took_ms: f64,
    took_ms: Vec<f64>,
}

fn supervise(a: &Args, root: &Path, log: &Path) -> (Child, Arc<Mutex<Seen>>) {
    let mut child = Command::new(&a.tenanted)
        .arg("--root")
        .arg(root)
        .arg("--migrations")
        .arg(schema_dir())
        .args(["replicate", "--json", "--scan-interval", &a.scan_ms.to_string()])
        .args(["--idle-after", &a.idle_after.to_string()])
        .args(["--max-per-process", &a.max_per_process.to_string()])
        .env("TENANTED_LITESTREAM", &a.litestream)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("tenanted replicate starts (build it: cargo build --release --all-features --bin tenanted)");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let out = BufReader::new(child.stdout.take().unwrap());
    let into = Arc::clone(&seen);
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let took = v["took"]["secs"].as_f64().unwrap_or(0.0) * 1e3
                + v["took"]["nanos"].as_f64().unwrap_or(0.0) / 1e6;
            let mut s = into.lock().unwrap();
            s.max_took_ms = s.max_took_ms.max(took);
            s.took_ms.push(took);
            s.last = v;
        }
    });
    (child, seen)
}

/// Resident memory (KB) and open descriptors of `pid`.
fn resources(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss, fds)
}

#[derive(Default, Debug)]
struct Peak {
    supervisor_kb: u64,
    supervisor_fds: usize,
    litestream_kb: u64,
    litestream_fds: usize,
    processes: usize,
    registered: u64,
}

fn sample(peak: &mut Peak, supervisor: u32, seen: &Seen) {
    let (kb, fds) = resources(supervisor);
    peak.supervisor_kb = peak.supervisor_kb.max(kb);
    peak.supervisor_fds = peak.supervisor_fds.max(fds);
    let pids: Vec<u32> = seen.last["pids"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|v| v.as_u64())
                .map(|v| v as u32)
                .collect()
        })
        .unwrap_or_default();
    let (mut kb, mut fds) = (0, 0);
    for pid in &pids {
        let (k, f) = resources(*pid);
        kb += k;
        fds += f;
    }
    peak.litestream_kb = peak.litestream_kb.max(kb);
    peak.litestream_fds = peak.litestream_fds.max(fds);
    peak.processes = peak.processes.max(1 + pids.len());
    peak.registered = peak
        .registered
        .max(seen.last["registered"].as_u64().unwrap_or(0));
}

/// Acknowledged writes: per tenant, (sequence, when acknowledged).
type Acks = HashMap<usize, Vec<(u64, Instant)>>;

fn write_load(root: &Path, written: &[usize], stop: &AtomicBool) -> Acks {
    let migrations = Migrations::from_dir(schema_dir()).unwrap();
    let m = TenantManager::builder(RootConfig::new(root), migrations)
        .max_pools(written.len() + 16)
        .max_connections(1)
        .build()
        .unwrap();
    let threads = 4;
    let chunk = written.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = written
            .chunks(chunk)
            .map(|part| {
                let m = &m;
                scope.spawn(move || {
                    let mut acks: Acks = HashMap::new();
                    let mut seq = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        let round = Instant::now();
                        seq += 1;
                        for &t in part {
                            if stop.load(Ordering::SeqCst) {
                                break;
                            }
                            let conn = m.connection(name(t)).unwrap();
                            conn.execute(
                                "INSERT INTO users (email, name) VALUES (?1, 'load')",
                                [format!("{seq}@load")],
                            )
                            .unwrap();
                            acks.entry(t).or_default().push((seq, Instant::now()));
                        }
                        let rest = Duration::from_secs(1).saturating_sub(round.elapsed());
                        std::thread::sleep(rest);
                    }
                    acks
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    })
}

fn kill9(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}

/// The highest load sequence in the restored copy of tenant `t`.
fn restored_max(
    a: &Args,
    settings: &ReplicationSettings,
    root: &Path,
    t: usize,
    scratch: &Path,
) -> Option<u64> {
    let db = RootConfig::new(root).database_path(&name(t)).unwrap();
    let url = settings.replica_url_of(db.strip_prefix(root).unwrap());
    let _ = std::fs::remove_file(scratch);
    let out = Command::new(&a.litestream)
        .args(["restore", "-o"])
        .arg(scratch)
        .arg(&url)
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let conn = rusqlite::Connection::open(scratch).unwrap();
    conn.query_row(
        "SELECT max(CAST(replace(email, '@load', '') AS INTEGER)) FROM users WHERE name = 'load'",
        [],
        |r| r.get::<_, Option<i64>>(0),
    )
    .unwrap()
    .map(|v| v as u64)
}

fn main() {
    let a = args();
    let root = a.dir.join(format!("root-{}", a.tenants));
    let replica = a.dir.join(format!("replica-{}", a.tenants));
    let built = build_root(&root, a.tenants);
    println!("root of {} tenants ready in {built:.1?}", a.tenants);
    let _ = std::fs::remove_dir_all(&replica);
    let _ = std::fs::remove_dir_all(root.join(".tenanted/replication.d"));
    let settings =
        ReplicationSettings::new(format!("file://{}", replica.display())).shards(a.shards);
    settings.record(&RootConfig::new(&root)).unwrap();
    if a.assume_replicated {
        assume_replicated(&root, &settings, a.tenants);
        // The record is trusted only while its replica is there.
        std::fs::create_dir_all(&replica).unwrap();
    }
    let (mut supervisor, seen) = supervise(&a, &root, &a.dir.join("replicate.log"));
    let pid = supervisor.id();

    // Phase 1: the initial sweep.
    let started = Instant::now();
    let mut peak = Peak::default();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let s = seen.lock().unwrap().clone();
        sample(&mut peak, pid, &s);
        let l = &s.last;
        if l["tenants"].as_u64() == Some(a.tenants as u64)
            && l["registered"].as_u64() == Some(0)
            && l["waiting"].as_u64() == Some(0)
        {
            break;
        }
        if let Ok(Some(status)) = supervisor.try_wait() {
            panic!("tenanted replicate exited: {status}");
        }
    }
    let sweep = started.elapsed();
    println!(
        "initial sweep: every tenant replicated once in {sweep:.1?} ({:.0} tenants/s); peak {peak:?}",
        a.tenants as f64 / sweep.as_secs_f64()
    );
    let scans_before = seen.lock().unwrap().took_ms.len();

    // Phase 2: the load.
    let count = ((a.tenants as f64) * a.written).round().max(1.0) as usize;
    let step = (a.tenants / count).max(1);
    let written: Vec<usize> = (0..count).map(|i| (i * step) % a.tenants).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let mut peak = Peak::default();
    let load = {
        let (root, written, stop) = (root.clone(), written.clone(), Arc::clone(&stop));
        std::thread::spawn(move || write_load(&root, &written, &stop))
    };
    let load_started = Instant::now();
    while load_started.elapsed() < Duration::from_secs(a.seconds) {
        std::thread::sleep(Duration::from_secs(2));
        sample(&mut peak, pid, &seen.lock().unwrap());
    }
    // The machine is gone: writers stop, the supervisor and every
    // Litestream are killed at once.
    let last = seen.lock().unwrap().clone();
    stop.store(true, Ordering::SeqCst);
    kill9(pid);
    for p in last.last["pids"].as_array().into_iter().flatten() {
        kill9(p.as_u64().unwrap_or(0) as u32);
    }
    let killed_at = Instant::now();
    let _ = supervisor.wait();
    let acks = load.join().unwrap();
    let scans: Vec<f64> = last.took_ms[scans_before..].to_vec();
    let mut sorted = scans.clone();
    sorted.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| {
        v.get(((v.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "load: {count} tenants written once a second for {}s; scans {} (median {:.0} ms, p99 {:.0} ms, max {:.0} ms); peak {peak:?}",
        a.seconds,
        scans.len(),
        pct(&sorted, 0.5),
        pct(&sorted, 0.99),
        pct(&sorted, 1.0)
    );

    // Phase 3: restore a sample and find the earliest lost write.
    let scratch = a.dir.join("scratch.sqlite3");
    let mut windows = Vec::new();
    let mut missing_replicas = 0;
    for &t in written
        .iter()
        .step_by((written.len() / a.sample.max(1)).max(1))
    {
        let acked = &acks[&t];
        let have = restored_max(&a, &settings, &root, t, &scratch);
        if have.is_none() {
            missing_replicas += 1;
        }
        let have = have.unwrap_or(0);
        let lost = acked
            .iter()
            .find(|(seq, at)| *seq > have && *at <= killed_at);
        let window = lost.map_or(0.0, |(_, at)| killed_at.duration_since(*at).as_secs_f64());
        windows.push(window);
    }
    windows.sort_by(f64::total_cmp);
    println!(
        "RPO over {} restored tenants: earliest lost acknowledged write, before the kill: median {:.2} s, p99 {:.2} s, max {:.2} s ({} with no replica)",
        windows.len(),
        pct(&windows, 0.5),
        pct(&windows, 0.99),
        pct(&windows, 1.0),
        missing_replicas
    );
}

/// Skips the initial sweep: records every tenant's files as if its
/// replica were complete (the supervisor's saved state after a sweep), so
/// that only the tenants written from now on are registered. Their
/// replicas are then made from scratch when first written, which is what
/// the RPO measurement restores.
fn assume_replicated(root: &Path, settings: &ReplicationSettings, n: usize) {
    use std::os::unix::fs::MetadataExt;
    let config = RootConfig::new(root);
    // The record names the replica it is for (`replication/quiet.rs`).
    let mut text = format!("replica {}\n", settings.replica_url());
    for i in 0..n {
        let db = config.database_path(&name(i)).unwrap();
        let m = std::fs::metadata(&db).unwrap();
        let wal = match std::fs::metadata(format!("{}-wal", db.display())) {
            Ok(w) => format!("{} {} {}", w.len(), w.mtime(), w.mtime_nsec()),
            Err(_) => "-".to_owned(),
        };
        text.push_str(&format!(
            "{} {} {} {} {} {wal}\n",
            name(i),
            m.ino(),
            m.len(),
            m.mtime(),
            m.mtime_nsec()
        ));
    }
    let dir = root.join(".tenanted/replication.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("quiet"), text).unwrap();
}
