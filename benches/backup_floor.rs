//! Area 8 of BENCHMARKS.md, against the floors of issue #29 item 3, in
//! interleaved rounds (the median of the per-round ratios, which a shared
//! machine moves least):
//!
//! - `backup_tenant` of a 10 MB tenant while another thread writes to it,
//!   against `fs::copy` (what `cp` does: `copy_file_range`) + fsync of its
//!   database file (no consistent copy while it is written: the floor,
//!   not an alternative);
//! - `backup_all` of N small tenants (5 migrations, 45 KB each) with
//!   `jobs(1)` and `jobs(2)`, against a plain loop on one thread that walks
//!   the root (`read_dir` of the root, each bucket, each tenant
//!   directory), makes the same directories in the destination, copies
//!   each database file and fsyncs it (one fsync a tenant, no directory
//!   syncs), and the same loop with the buckets shared out among 2
//!   threads (how much faster two threads can copy on this file system at
//!   all). Each run also reports how many of the machine's CPUs were
//!   busy while it ran (`/proc/stat`, every process and kernel thread):
//!   a run that keeps them all busy cannot go faster with more jobs.
//!   And each round times a piece of pure computation on 1 and 2 threads:
//!   how much more 2 workers of any kind can do here than one (a VM's two
//!   CPUs need not be two whole cores; 1.69-1.84x on 2026-12-06), the
//!   ceiling of `jobs(2)` over a `jobs(1)` that already keeps more than
//!   one CPU busy.
//!   Every backup is kept until the last round is timed, and the first
//!   round starts a minute after the fleet is made: on an ext4
//!   without a journal (this project's machines), a file created within a
//!   minute of many deletions in its block group scans past every inode
//!   freed meanwhile (`recently_deleted` in `ext4/ialloc.c`), which made the
//!   floor up to 5× slower when each run followed the removal of the one
//!   before (as this bench did until 2026-12-06). The backups take about
//!   0.5 GB each at 10,000 tenants: 9 GB for the default 3 rounds.
//!   The runs compared with the plain loop are made with
//!   `.verify(false)` (the loop reads nothing back); each round also
//!   times jobs 1 and 2 as they run by default, every copy read back and
//!   checked (`BackupOptions::verify`), beside the same loop.
//!
//! `cargo bench --bench backup_floor` (`BACKUP_TENANTS` sets N, default
//! 10,000; `BACKUP_ROUNDS` the rounds, default 3; `BACKUP_ONLY=tenant` or
//! `=all` one part).

mod support;

use std::fs::{self, File};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tenanted::{BackupOptions, Migration, Migrations, TenantManager};

fn env_or(name: &str, default: usize) -> usize {
    (std::env::var(name).ok())
        .and_then(|s| s.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn timed(f: impl FnOnce()) -> Duration {
    let started = Instant::now();
    f();
    started.elapsed()
}

fn sync(path: &Path) {
    File::open(path).unwrap().sync_all().unwrap();
}

/// Flushes the file system (`sync`), so that the next timed run does not
/// pay for the writes before it in its first fsyncs.
fn flush() {
    std::process::Command::new("sync").status().unwrap();
}

/// How long an ext4 without a journal skips over the inodes freed in a
/// block group, once their inode table is written back (`RECENTCY_MIN`).
const RECENTLY_DELETED: Duration = Duration::from_secs(61);

/// Writes small rows to `big` until `stop`, a few hundred a second.
fn writer(m: &TenantManager, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let conn = m.connection("big").unwrap();
        conn.execute("INSERT INTO log (at) VALUES (datetime('now'))", [])
            .unwrap();
        drop(conn);
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn one_tenant(dir: &Path, rounds: usize) {
    let migrations = Migrations::new(vec![Migration::new(
        "0001_blobs",
        "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL);
         CREATE TABLE log (id INTEGER PRIMARY KEY, at TEXT NOT NULL);",
    )]);
    let m = support::builder(&dir.join("root"), migrations)
        .build()
        .unwrap();
    m.create_tenant("big").unwrap();
    m.connection("big")
        .unwrap()
        .execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO blobs (data) SELECT randomblob(4096) FROM n;",
        )
        .unwrap();
    let source = m.root().database_path("big").unwrap();
    let out = dir.join("out");
    fs::create_dir_all(&out).unwrap();
    let stop = AtomicBool::new(false);
    let (floor, ours, ratio) = std::thread::scope(|scope| {
        scope.spawn(|| writer(&m, &stop));
        let to = out.join("copy");
        let result = support::interleaved(
            rounds * 7,
            || {
                let t = timed(|| {
                    fs::copy(&source, &to).unwrap();
                    sync(&to);
                });
                fs::remove_file(&to).unwrap();
                t
            },
            || {
                let t = timed(|| {
                    m.backup_tenant("big", &to).unwrap();
                });
                fs::remove_file(&to).unwrap();
                t
            },
        );
        stop.store(true, Ordering::Relaxed);
        result
    });
    let mb = fs::metadata(&source).unwrap().len() as f64 / 1e6;
    println!(
        "backup_tenant, {mb:.1} MB, a thread writing: tenanted {ours:.1?} vs fs::copy + fsync {floor:.1?}: {ratio:.2}x (median of {} interleaved rounds; load {}; {})",
        rounds * 7,
        support::load(),
        support::sqlite_build()
    );
}

/// The floor: walk `root`, make the same directories under `to`, copy
/// each database file and fsync it, the buckets shared out among
/// `threads` threads. Returns the files copied.
fn plain_loop(root: &Path, to: &Path, threads: usize) -> usize {
    let buckets: Vec<_> = (fs::read_dir(root).unwrap())
        .map(|b| b.unwrap())
        .filter(|b| b.file_type().unwrap().is_dir())
        .collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let mine: Vec<_> = buckets.iter().skip(t).step_by(threads).collect();
                scope.spawn(move || {
                    (mine.iter())
                        .map(|b| copy_bucket(&b.path(), &to.join(b.file_name())))
                        .sum::<usize>()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    })
}

/// The plain loop over one bucket's tenants.
fn copy_bucket(bucket: &Path, to: &Path) -> usize {
    let mut copied = 0;
    for tenant in fs::read_dir(bucket).unwrap() {
        let tenant = tenant.unwrap();
        let file = tenant.path().join("main.sqlite3");
        if !tenant.file_type().unwrap().is_dir() || !file.exists() {
            continue;
        }
        let dest = to.join(tenant.file_name());
        fs::create_dir_all(&dest).unwrap();
        let dest = dest.join("main.sqlite3");
        fs::copy(&file, &dest).unwrap();
        sync(&dest);
        copied += 1;
    }
    copied
}

/// A fixed piece of pure computation (hashing a buffer that stays in the
/// core's cache: no system call, no memory traffic to share).
fn compute() -> u64 {
    let mut buf = vec![1u8; 1 << 18];
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for _ in 0..2_000 {
        for b in buf.iter_mut() {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            *b = h as u8;
        }
        std::hint::black_box(&mut buf);
    }
    h
}

/// How many times as much pure computation 2 threads do as one, here and
/// now: the ceiling of any 2 workers on this machine (a VM's two CPUs
/// need not be two whole cores).
fn computation_speedup() -> f64 {
    let one = timed(|| {
        std::hint::black_box(compute());
    });
    let two = timed(|| {
        std::thread::scope(|scope| {
            let other = scope.spawn(compute);
            std::hint::black_box(compute());
            std::hint::black_box(other.join().unwrap());
        })
    });
    2.0 * one.as_secs_f64() / two.as_secs_f64()
}

/// The runs of each round: the plain loop on 1 and 2 threads, then
/// `backup_all` with jobs 1 and 2, unverified and verified.
const VARIANTS: usize = 6;

fn all_tenants(dir: &Path, tenants: usize, rounds: usize) {
    let root = dir.join("fleet");
    let m = support::builder(&root, support::migrations(5))
        .build()
        .unwrap();
    let started = Instant::now();
    support::populate(&m, tenants);
    flush();
    eprintln!("{tenants} tenants made in {:.1?}", started.elapsed());
    // Each create removed its lock file (see the module).
    std::thread::sleep(RECENTLY_DELETED);
    let mut n = 0;
    let mut fresh = || {
        n += 1;
        dir.join(format!("backup-{n}"))
    };
    // Per round: the plain loop on 1 and 2 threads, jobs 1 and 2 without
    // the check of each copy (the plain loop reads nothing back), then
    // jobs 1 and 2 as they run by default, each copy checked.
    let mut made = Vec::new();
    let mut times: [Vec<Duration>; VARIANTS] = Default::default();
    let mut busy: [Vec<f64>; VARIANTS] = Default::default();
    let mut ratios: [Vec<f64>; 7] = Default::default();
    let mut ceilings = Vec::new();
    for r in 0..rounds {
        let mut round = [Duration::ZERO; VARIANTS];
        // The order turns each round, so that no variant always comes in
        // the same place.
        for variant in (0..VARIANTS).map(|i| (i + r) % VARIANTS) {
            let to = fresh();
            let cpu = support::machine_cpu();
            round[variant] = match variant {
                0 | 1 => timed(|| assert_eq!(plain_loop(&root, &to, variant + 1), tenants)),
                _ => {
                    let options = BackupOptions::new()
                        .jobs(1 + (variant % 2))
                        .verify(variant >= 4);
                    timed(|| assert!(m.backup_all(&to, &options).unwrap().is_success()))
                }
            };
            busy[variant].push(support::busy_cpus(cpu, support::machine_cpu()));
            made.push(to);
            flush();
        }
        let [f1, f2, j1, j2, v1, v2] = round.map(|t| t.as_secs_f64());
        for (kept, ratio) in ratios.iter_mut().zip([
            j1 / f1,
            j2 / f1,
            j1 / j2,
            j2 / f2,
            f1 / f2,
            v1 / f1,
            v2 / f1,
        ]) {
            kept.push(ratio);
        }
        for (kept, t) in times.iter_mut().zip(round) {
            kept.push(t);
        }
        let cpus = busy.each_ref().map(|b| b.last().copied().unwrap_or(0.0));
        let ceiling = computation_speedup();
        ceilings.push(ceiling);
        eprintln!(
            "round: {f1:.2}s / {f2:.2}s / {j1:.2}s / {j2:.2}s / verified {v1:.2}s / {v2:.2}s; CPUs busy {cpus:.2?}; pure computation on 2 threads {ceiling:.2}x one"
        );
    }
    for to in made {
        fs::remove_dir_all(to).unwrap();
    }
    let [floor, floor2, j1, j2, v1, v2] = times.map(support::median);
    let [b1, b2, bj1, bj2, _, _] = busy.map(support::median);
    let [r1, r2, speedup, r2_2, floor_speedup, rv1, rv2] = ratios.map(support::median);
    let ceiling = support::median(ceilings);
    println!(
        "backup_all, {tenants} tenants: plain loop {floor:.2?}; jobs 1 {j1:.2?} ({r1:.2}x); jobs 2 {j2:.2?} ({r2:.2}x); jobs 2 is {speedup:.2}x faster than jobs 1; the plain loop on 2 threads {floor2:.2?} ({floor_speedup:.2}x faster than on 1; jobs 2 is {r2_2:.2}x it); CPUs busy (the whole machine's, writeback included): plain loop {b1:.2} / {b2:.2}, jobs 1 {bj1:.2}, jobs 2 {bj2:.2}; pure computation on 2 threads {ceiling:.2}x one, so 2 jobs can be at most {:.2}x as fast as 1 that keeps {bj1:.2} CPUs busy (those runs with .verify(false)); each copy verified, as by default: jobs 1 {v1:.2?} ({rv1:.2}x the plain loop), jobs 2 {v2:.2?} ({rv2:.2}x) (medians of {rounds} interleaved rounds; load {}; {})",
        ceiling / bj1,
        support::load(),
        support::sqlite_build()
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = env_or("BACKUP_ROUNDS", 3);
    let only = std::env::var("BACKUP_ONLY").unwrap_or_default();
    // On the disk the crate is built on, not a tmpfs: fsyncs are real.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    if only != "all" {
        one_tenant(dir.path(), rounds);
    }
    if only != "tenant" {
        all_tenants(dir.path(), env_or("BACKUP_TENANTS", 10_000), rounds);
    }
}
