//! The scale benchmark of issue #13 ("A million tenants on one machine"):
//! builds N tenants quickly, then measures the fleet operations, each
//! beside its floor measured in the same run, and how each grows with N.
//! Run on demand (it is not run in CI, and takes minutes to an hour):
//!
//! ```text
//! cargo run --release --example scale -- 10000 100000 [--dir PATH] [--keep]
//!     [--pending-max N] [--pending-memory] [--repeat R] [--schema default|small]
//! ```
//!
//! Sizes are tenant counts (`100000`, `100_000`, `100k`, `1M`). For each
//! size, in a fresh root `PATH/tenanted-scale-XXXX/nN` (default `PATH`:
//! the system temp directory):
//!
//! 1. **Build.** One real tenant is created with a [`TenantManager`] over
//!    `schema/migrations` (4 migrations, a 32 KB file), or with
//!    `--schema small` three one-table migrations (a 12 KB file); its
//!    database file is then copied
//!    to every other tenant's `RootConfig::database_path` (parent
//!    directories created, no fsync) on 2 threads, followed by one `sync`.
//!    Same bytes and `user_version`: valid tenants. Before building, the
//!    free space is checked (one tenant's file and directory times N, plus
//!    the pending phase's pages, plus 5 GiB to spare); a size that does
//!    not fit is skipped. The file system is shared: whenever its free
//!    space falls below 3 GiB (checked while building and between
//!    phases) the run stops and removes its root.
//! 2. **Warm**, after one untimed pass of `tenants()`, the header floor
//!    and `migration_status()` (their times are printed: they are the
//!    first reads after the build). Each line runs the floor then the
//!    library, `--repeat` times (default 1), and shows the medians:
//!    - listing: `tenants()` consumed fully, against reading the 256
//!      bucket directories only (`read_dir`, counting entries: no
//!      per-tenant system call);
//!    - `migration_status()`, against the *header floor*: open each
//!      database file, `pread` its first 100 bytes (checking the magic and
//!      the `user_version` in them), close, on as many threads as the
//!      status uses (`available_parallelism`). The floor starts from a
//!      list of paths made before the clock starts, in the order a walk
//!      meets the files (`read_dir` of the root, then of each bucket),
//!      which is the order the library visits them; the library's number
//!      includes its own listing and sort;
//!    - `migration_status()` again, against the same floor in creation
//!      order. Files made one after another have neighbouring inodes, and
//!      a loop in that order finds the kernel's data for them close
//!      together: at 1M it runs 20-25% faster than the same loop in
//!      listing order. Issue #29 sets its goal against the faster of the
//!      two floors; the library comes close to this order by visiting
//!      each worker's few buckets by inode (`src/fleet/window.rs`);
//!    - no-op `migrate_all` with `jobs(1)` and `jobs(2)`, against the
//!      header floor on 1 and 2 threads, in listing order and in creation
//!      order.
//! 3. **Cold**: every line of phase 2 again (`--repeat` times), each run
//!    right after `sync` and dropping the caches: `echo 3 >
//!    /proc/sys/vm/drop_caches` where that is writable (root on a machine
//!    of one's own; machine-wide, so it slows anything else running),
//!    otherwise `echo 0 > memory.force_empty` of the process's own
//!    cgroup-v1 memory controller (root in a container, as on this
//!    project's machines): that reclaims the page cache and the dentries
//!    and inodes charged to the cgroup, which include all of the fleet's,
//!    since this process built it. Where neither is allowed the output
//!    says "cold: not measured (cannot drop caches)". `--cold-max N`
//!    skips this phase above N tenants.
//! 4. **One pending migration** (sizes up to `--pending-max`, default
//!    all): `migrate_all` with `jobs(1)` and `jobs(2)`, against a floor
//!    that opens each file (in listing order, as above) with plain
//!    rusqlite and runs the same SQL and `PRAGMA user_version` in one
//!    `IMMEDIATE` transaction, on 1 and 2 threads (after one untimed read
//!    of every file, so that the first run does not pay the second's
//!    page-cache misses). Each of the four runs starts from a fleet exactly one
//!    migration behind without a rollback in between: they apply, in
//!    turn, `CREATE TABLE scale_probe_K (x)` for K = V+1 to V+4, V being
//!    the schema's version (floor 1 thread, `migrate_all` jobs 1, floor 2
//!    threads, `migrate_all` jobs 2),
//!    the library through a manager whose migrations are the schema's plus
//!    the probes up to K. At 1M tenants this phase alone takes hours on a
//!    small machine (2 to 6.6 ms a tenant per run on one thread on a
//!    shared 2-vCPU VM, mostly fsyncs); hence `--pending-max`, and
//!    `--pending-memory`, which runs the library's `migration_status` and
//!    `migrate_all` (jobs 2) once each over the fleet a migration behind,
//!    no floor, for their time and peak RSS alone (#29 item 4).
//!
//! Every measurement also reports the growth of the process's peak RSS
//! (`5` written to `/proc/self/clear_refs` before, `VmHWM` read after,
//! minus `VmRSS` before; where `clear_refs` is not writable, the `VmRSS`
//! difference). Memory the allocator kept from an earlier step and reuses
//! is not counted.
//!
//! It prints a Markdown table per size and, at the end, how each line
//! grows from one size to the next, as a time ratio per 10× tenants
//! (10× is linear). The root is removed afterwards (on 4 threads, timed),
//! unless `--keep`. A run killed midway leaves `PATH/tenanted-scale-*`
//! behind: remove it by hand. Disk, file and directory: 36 KB a tenant
//! with the default schema (37 GB for 1M), 16 KB with `--schema small`
//! (16 GB for 1M); the pending phase adds about 20 KB a tenant.

use std::error::Error;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Write as _;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::{Connection, TransactionBehavior};
use tenanted::{
    MigrateOptions, Migration, MigrationReport, Migrations, RootConfig, StatusReport, TenantManager,
};

type BoxResult<T> = Result<T, Box<dyn Error>>;

/// When the program started, for the progress log.
static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

const GIB: u64 = 1 << 30;
/// Free space left over after the largest root this run builds.
const SPARE: u64 = 5 * GIB;
const BUILD_THREADS: usize = 2;
/// Unlinking is I/O-bound (and slow on a file system mounted `discard`).
const REMOVE_THREADS: usize = 4;
/// A run stops (and removes its root) when the file system's free space
/// falls below this, whoever uses it.
const FLOOR_FREE: u64 = 3 * GIB;
const BUCKETS: u32 = 256;
/// Pages the pending phase adds to each tenant (four tables, and room).
const PENDING_PAGES: u64 = 6;

struct Args {
    sizes: Vec<usize>,
    dir: PathBuf,
    keep: bool,
    pending_max: usize,
    /// The pending phase runs the library's `migrate_all` once (jobs 2)
    /// and no floor: for its memory at sizes where the four runs take
    /// hours.
    pending_memory: bool,
    repeat: usize,
    small_schema: bool,
    cold_max: usize,
}

fn usage() -> String {
    "usage: scale N [N ...] [--dir PATH] [--keep] [--pending-max N] [--pending-memory] [--repeat R] [--schema default|small] [--cold-max N]".to_owned()
}

fn parse_size(s: &str) -> Option<usize> {
    let s = s.replace(['_', ','], "");
    let (digits, factor) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1_000),
        'm' | 'M' => (&s[..s.len() - 1], 1_000_000),
        _ => (&s[..], 1),
    };
    digits.parse::<usize>().ok().map(|n| n * factor)
}

fn parse_args() -> BoxResult<Args> {
    let mut args = Args {
        sizes: Vec::new(),
        dir: std::env::temp_dir(),
        keep: false,
        pending_max: usize::MAX,
        repeat: 1,
        small_schema: false,
        cold_max: usize::MAX,
        pending_memory: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--dir" => args.dir = PathBuf::from(it.next().ok_or_else(usage)?),
            "--keep" => args.keep = true,
            "--pending-memory" => args.pending_memory = true,
            "--pending-max" => {
                let n = it.next().ok_or_else(usage)?;
                args.pending_max = parse_size(&n).ok_or_else(usage)?;
            }
            "--cold-max" => {
                let n = it.next().ok_or_else(usage)?;
                args.cold_max = parse_size(&n).ok_or_else(usage)?;
            }
            "--repeat" => {
                let r = it.next().ok_or_else(usage)?;
                args.repeat = r.parse::<usize>().map_err(|_| usage())?.max(1);
            }
            "--schema" => match it.next().as_deref() {
                Some("default") => args.small_schema = false,
                Some("small") => args.small_schema = true,
                _ => return Err(usage().into()),
            },
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            size => match parse_size(size) {
                Some(n) if n >= 1 => args.sizes.push(n),
                _ => return Err(format!("not a tenant count: {size}\n{}", usage()).into()),
            },
        }
    }
    if args.sizes.is_empty() {
        return Err(usage().into());
    }
    Ok(args)
}

// ----- the machine, memory and disk ------------------------------------------

fn proc_field(file: &str, field: &str) -> Option<u64> {
    fs::read_to_string(file)
        .ok()?
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

fn free_bytes(path: &Path) -> BoxResult<u64> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st.f_bavail * st.f_frsize)
}

/// A point to measure the growth of peak RSS from.
struct RssMark {
    rss_kb: u64,
    peak_reset: bool,
}

fn rss_mark() -> Option<RssMark> {
    // Resets VmHWM to the current RSS.
    let peak_reset = fs::write("/proc/self/clear_refs", "5").is_ok();
    Some(RssMark {
        rss_kb: proc_field("/proc/self/status", "VmRSS:")?,
        peak_reset,
    })
}

fn rss_growth_mb(mark: Option<RssMark>) -> Option<f64> {
    let mark = mark?;
    let field = if mark.peak_reset { "VmHWM:" } else { "VmRSS:" };
    let after = proc_field("/proc/self/status", field)?;
    Some(after.saturating_sub(mark.rss_kb) as f64 / 1024.0)
}

/// How the caches are dropped before a cold line.
#[derive(Debug, Clone)]
enum ColdBy {
    /// `sync; echo 3 > /proc/sys/vm/drop_caches`: machine-wide (root).
    DropCaches,
    /// `sync; echo 0 > memory.force_empty` of this process's own memory
    /// cgroup (v1), whose charges include every page and file system
    /// cache entry this process brought in (its fleet was built by this
    /// process): where `/proc/sys/vm/drop_caches` is not writable but the
    /// cgroup is, as in a container. The root cgroup refuses it.
    ForceEmpty(PathBuf),
}

impl ColdBy {
    /// The first way this process may drop caches, tried once.
    fn find() -> Option<ColdBy> {
        if ColdBy::DropCaches.drop() {
            return Some(ColdBy::DropCaches);
        }
        let by = ColdBy::ForceEmpty(own_memory_cgroup()?.join("memory.force_empty"));
        by.drop().then_some(by)
    }

    /// Drops the caches; false if not allowed.
    fn drop(&self) -> bool {
        rustix::fs::sync();
        match self {
            ColdBy::DropCaches => fs::write("/proc/sys/vm/drop_caches", "3").is_ok(),
            ColdBy::ForceEmpty(file) => fs::write(file, "0").is_ok(),
        }
    }

    fn describe(&self) -> String {
        match self {
            ColdBy::DropCaches => "`sync; echo 3 > /proc/sys/vm/drop_caches`".into(),
            ColdBy::ForceEmpty(file) => format!(
                "`sync; echo 0 > {}` (this process's memory cgroup: its page cache and its dentries and inodes; `/proc/sys/vm/drop_caches` is not writable here)",
                file.display()
            ),
        }
    }
}

/// This process's cgroup-v1 memory controller directory, unless it is the
/// root one.
fn own_memory_cgroup() -> Option<PathBuf> {
    let groups = fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = groups.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then_some(path)
    })?;
    let dir = Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/'));
    (path != "/" && dir.join("memory.force_empty").exists()).then_some(dir)
}

/// A warm line runs as it finds the caches; a cold one right after they
/// are dropped.
#[derive(Clone, Copy)]
enum Temperature<'c> {
    Warm,
    Cold(&'c ColdBy),
}

impl Temperature<'_> {
    /// Drops the caches before a cold line; an error if that was refused
    /// (the line would run warm).
    fn prepare(&self) -> BoxResult<()> {
        match self {
            Temperature::Cold(by) if !by.drop() => {
                Err(format!("could not drop the caches ({})", by.describe()).into())
            }
            _ => Ok(()),
        }
    }

    /// A line's name at this temperature.
    fn name(&self, what: &str) -> String {
        match self {
            Temperature::Warm => what.to_owned(),
            Temperature::Cold(_) => format!("cold {what}"),
        }
    }
}

// ----- parallel loops ------------------------------------------------------------

/// Runs `work` on every item on `threads` threads (items claimed in small
/// chunks); the first error stops the loop and is returned.
fn par_try<T: Sync>(
    items: &[T],
    threads: usize,
    work: impl Fn(&T) -> Result<(), String> + Sync,
) -> Result<(), String> {
    const CHUNK: usize = 16;
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let error: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let start = next.fetch_add(CHUNK, Ordering::Relaxed);
                    if start >= items.len() {
                        break;
                    }
                    for item in &items[start..(start + CHUNK).min(items.len())] {
                        if let Err(e) = work(item) {
                            failed.store(true, Ordering::Relaxed);
                            error.lock().get_or_insert(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    match error.into_inner() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

// ----- floors ----------------------------------------------------------------------

/// Reads the bucket directories only: the entries, no per-tenant call.
fn list_buckets(root: &Path) -> BoxResult<usize> {
    let mut count = 0;
    for bucket in 0..BUCKETS {
        for entry in fs::read_dir(root.join(format!("{bucket:02x}")))? {
            entry?;
            count += 1;
        }
    }
    Ok(count)
}

/// Every database file in the order a walk meets them: the buckets in the
/// order `read_dir` of the root gives them, each bucket's tenants in the
/// order `read_dir` of the bucket gives them.
fn list_paths(root: &Path) -> BoxResult<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for bucket in fs::read_dir(root)? {
        let bucket = bucket?;
        let name = bucket.file_name();
        let is_bucket = name.len() == 2
            && name
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_hexdigit()));
        if !is_bucket {
            continue;
        }
        for entry in fs::read_dir(bucket.path())? {
            paths.push(entry?.path().join("main.sqlite3"));
        }
    }
    Ok(paths)
}

/// Opens each file, reads its first 100 bytes, closes it; checks the
/// SQLite magic and that `user_version` is `expect`.
fn read_headers(paths: &[PathBuf], threads: usize, expect: u32) -> Result<(), String> {
    par_try(paths, threads, |path| {
        let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let file = File::open(path).map_err(|e| fail(&e))?;
        let mut header = [0u8; 100];
        file.read_exact_at(&mut header, 0).map_err(|e| fail(&e))?;
        if &header[..16] != b"SQLite format 3\0" {
            return Err(fail(&"not a SQLite database"));
        }
        let version = u32::from_be_bytes([header[60], header[61], header[62], header[63]]);
        if version != expect {
            return Err(fail(&format!("user_version {version}, expected {expect}")));
        }
        Ok(())
    })
}

/// [`read_headers`] of `paths` as a line's floor.
fn headers_of(
    paths: &[PathBuf],
    threads: usize,
    expect: u32,
) -> impl FnMut() -> BoxResult<()> + '_ {
    move || Ok(read_headers(paths, threads, expect)?)
}

/// Plain rusqlite: open each file, run `sql` and `PRAGMA user_version` in
/// one IMMEDIATE transaction, close.
fn apply_plain(paths: &[PathBuf], threads: usize, sql: &str, version: usize) -> Result<(), String> {
    let batch = format!("{sql}\nPRAGMA user_version = {version};");
    par_try(paths, threads, |path| {
        let run = || -> rusqlite::Result<()> {
            let mut conn = Connection::open(path)?;
            conn.busy_timeout(Duration::from_secs(30))?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(&batch)?;
            tx.commit()
        };
        run().map_err(|e| format!("{}: {e}", path.display()))
    })
}

// ----- measurements ------------------------------------------------------------

#[derive(Clone, Copy)]
struct Sample {
    time: Duration,
    rss_mb: Option<f64>,
}

/// Runs `f`, timing it and the growth of peak RSS around it.
fn measure<T>(f: impl FnOnce() -> BoxResult<T>) -> BoxResult<(Sample, T)> {
    let mark = rss_mark();
    let started = Instant::now();
    let out = f()?;
    let time = started.elapsed();
    let rss_mb = rss_growth_mb(mark);
    Ok((Sample { time, rss_mb }, out))
}

/// One line of a table: the library's runs and its floor's, interleaved
/// (floor, library, floor, library, ...).
struct Line {
    what: String,
    floor_what: String,
    lib: Vec<Sample>,
    floor: Vec<Sample>,
}

impl Line {
    fn new(what: impl Into<String>, floor_what: impl Into<String>) -> Self {
        Line {
            what: what.into(),
            floor_what: floor_what.into(),
            lib: Vec::new(),
            floor: Vec::new(),
        }
    }

    /// Runs the floor then the library, `repeat` times, each after
    /// `prepare` (outside the clock); each result is checked, and
    /// dropped, after its clock stops.
    fn run<A, B>(
        mut self,
        repeat: usize,
        prepare: impl Fn() -> BoxResult<()>,
        mut floor: impl FnMut() -> BoxResult<A>,
        mut lib: impl FnMut() -> BoxResult<B>,
        check: impl Fn(Result<A, B>) -> BoxResult<()>,
    ) -> BoxResult<Self> {
        for _ in 0..repeat {
            prepare()?;
            let (sample, out) = measure(&mut floor)?;
            check(Ok(out))?;
            log_sample("floor", &self.floor_what, &sample);
            self.floor.push(sample);
            prepare()?;
            let (sample, out) = measure(&mut lib)?;
            check(Err(out))?;
            log_sample("tenanted", &self.what, &sample);
            self.lib.push(sample);
        }
        Ok(self)
    }
}

/// Each sample goes to stderr as soon as it is taken, so that an
/// interrupted run keeps what it measured.
fn log_sample(side: &str, what: &str, sample: &Sample) {
    eprintln!(
        "    {side}: {what}: {} (peak RSS +{} MB)",
        fmt_duration(sample.time),
        fmt_rss(sample.rss_mb)
    );
}

/// The median time (the lower middle one for an even count) and the
/// largest RSS growth of some runs.
fn summary(samples: &[Sample]) -> Sample {
    let mut times: Vec<Duration> = samples.iter().map(|s| s.time).collect();
    times.sort();
    let rss_mb = samples
        .iter()
        .filter_map(|s| s.rss_mb)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    Sample {
        time: times[(times.len() - 1) / 2],
        rss_mb,
    }
}

/// "min–max" of several runs, empty for one.
fn spread(samples: &[Sample]) -> String {
    if samples.len() < 2 {
        return String::new();
    }
    let min = samples.iter().map(|s| s.time).min().unwrap_or_default();
    let max = samples.iter().map(|s| s.time).max().unwrap_or_default();
    format!(" ({}–{})", fmt_duration(min), fmt_duration(max))
}

struct SizeResult {
    n: usize,
    lines: Vec<Line>,
    notes: Vec<String>,
}

fn tenant_name(i: usize) -> String {
    format!("t{i:07}")
}

fn probe(version: usize) -> Migration {
    Migration::new(
        format!("{version:04}_scale_probe_{version}"),
        format!("CREATE TABLE scale_probe_{version} (x);"),
    )
}

/// The schema's migrations plus the probes up to `version`.
fn with_probes(base: &Migrations, version: usize) -> Migrations {
    let mut list: Vec<Migration> = base.iter().cloned().collect();
    list.extend((base.latest_version() + 1..=version).map(probe));
    Migrations::new(list)
}

/// Removes the root, its bucket directories on `REMOVE_THREADS` threads.
fn remove_root(root: &Path) -> BoxResult<()> {
    let buckets: Vec<PathBuf> = (0..BUCKETS)
        .map(|b| root.join(format!("{b:02x}")))
        .filter(|p| p.exists())
        .collect();
    par_try(&buckets, REMOVE_THREADS, |dir| {
        fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
    })?;
    fs::remove_dir_all(root)?;
    Ok(())
}

/// Removes a root on drop unless disarmed (an error midway).
struct RootGuard(Option<PathBuf>);

impl Drop for RootGuard {
    fn drop(&mut self) {
        if let Some(root) = self.0.take() {
            eprintln!("removing {} after an error", root.display());
            let _ = remove_root(&root);
        }
    }
}

/// Logs a phase; fails if the file system is nearly full.
fn step(n: usize, parent: &Path, what: &str) -> BoxResult<()> {
    eprintln!(
        "[{}] [N={}] {what} (load {})",
        fmt_duration(STARTED.get_or_init(Instant::now).elapsed()),
        thousands(n),
        load_average()
    );
    low_on_space(parent)
}

fn low_on_space(parent: &Path) -> BoxResult<()> {
    let free = free_bytes(parent)?;
    if free < FLOOR_FREE {
        return Err(format!(
            "stopped: only {:.1} GB free on the file system",
            free as f64 / 1e9
        )
        .into());
    }
    Ok(())
}

/// A small schema: three migrations, three pages a tenant.
fn small_schema() -> Migrations {
    Migrations::new(vec![
        Migration::new(
            "0001_create_users",
            "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT NOT NULL);",
        ),
        Migration::new(
            "0002_create_items",
            "CREATE TABLE items (id INTEGER PRIMARY KEY, owner_id INTEGER, title TEXT NOT NULL);",
        ),
        Migration::new(
            "0003_add_item_done",
            "ALTER TABLE items ADD COLUMN done INTEGER NOT NULL DEFAULT 0;",
        ),
    ])
}

/// The disk space one tenant takes (its file and its directory), in bytes.
fn tenant_blocks(path: &Path) -> BoxResult<u64> {
    let file = fs::symlink_metadata(path)?.blocks();
    let dir = fs::symlink_metadata(path.parent().ok_or("no parent")?)?.blocks();
    Ok((file + dir) * 512)
}

fn run_size(n: usize, parent: &Path, args: &Args, cold: Option<&ColdBy>) -> BoxResult<SizeResult> {
    let wall = Instant::now();
    let load_before = load_average();
    let (mut run, guard) = SizeRun::build(n, parent, args)?;
    run.warm_up()?;
    run.warm_lines()?;
    run.cold_lines(cold)?;
    run.pending_lines()?;
    run.finish(guard, wall, &load_before)
}

/// One size's run: its root and manager, its tenants' paths (in creation
/// order and in the order listing gives), and the lines and notes so far.
struct SizeRun<'a> {
    n: usize,
    parent: &'a Path,
    args: &'a Args,
    root_dir: PathBuf,
    root: RootConfig,
    base: Migrations,
    v0: usize,
    manager: TenantManager,
    status_threads: usize,
    paths: Vec<PathBuf>,
    listed_paths: Vec<PathBuf>,
    lines: Vec<Line>,
    notes: Vec<String>,
}

impl<'a> SizeRun<'a> {
    /// Phase 1, the build: one real tenant, then copies of its file; the
    /// guard removes the root if the run fails.
    fn build(n: usize, parent: &'a Path, args: &'a Args) -> BoxResult<(Self, RootGuard)> {
        let root_dir = parent.join(format!("n{n}"));
        let root = RootConfig::new(&root_dir);
        let base = if args.small_schema {
            small_schema()
        } else {
            tenanted::embed_migrations!("$CARGO_MANIFEST_DIR/schema/migrations")?
        };
        let manager = TenantManager::builder(root.clone(), base.clone()).build()?;
        step(n, parent, "building")?;
        let names: Vec<String> = (0..n).map(tenant_name).collect();
        let paths = names
            .iter()
            .map(|t| root.database_path(t))
            .collect::<Result<Vec<_>, _>>()?;
        let started = Instant::now();
        manager.create_tenant(&names[0])?;
        let guard = RootGuard((!args.keep).then(|| root_dir.clone()));
        let mut run = SizeRun {
            n,
            parent,
            args,
            root_dir,
            root,
            v0: base.latest_version(),
            base,
            manager,
            status_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            paths,
            listed_paths: Vec::new(),
            lines: Vec::new(),
            notes: Vec::new(),
        };
        run.copy_first_tenant(started)?;
        // The floors visit the files in the order listing the buckets gives,
        // which is the order the library visits them. Not in creation order:
        // files made one after another have neighbouring inodes, and at 1M a
        // loop in that order runs 20-25% faster than in any other (see
        // BENCHMARKS.md). A line beside each header-read line shows that
        // floor too.
        run.listed_paths = list_paths(&run.root_dir)?;
        let listed = run.listed_paths.len();
        check(listed == n, "listed database files", listed, n)?;
        Ok((run, guard))
    }

    /// Copies the first tenant's file to every other tenant's path.
    /// Copies the first tenant's file to every other tenant's path (the
    /// build's clock started at `started`, before the first tenant).
    fn copy_first_tenant(&mut self, started: Instant) -> BoxResult<()> {
        let (n, parent, args, paths) = (self.n, self.parent, self.args, &self.paths);
        let mut wal = paths[0].as_os_str().to_owned();
        wal.push("-wal");
        if fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
            return Err(
                "the first tenant has WAL content: its file alone is not the tenant".into(),
            );
        }
        let bytes = fs::read(&paths[0])?;
        let page = 4096u64;
        let per_tenant = (bytes.len() as u64).div_ceil(page) * page + page;
        let pending = n <= args.pending_max;
        let need = n as u64 * (per_tenant + if pending { PENDING_PAGES * page } else { 0 });
        let free_before = free_bytes(parent)?;
        if free_before < need + SPARE {
            return Err(format!(
                "{} tenants need about {:.1} GB and {:.0} GB to spare; {:.1} GB free",
                thousands(n),
                need as f64 / 1e9,
                SPARE as f64 / 1e9,
                free_before as f64 / 1e9
            )
            .into());
        }
        let built = AtomicUsize::new(0);
        par_try(&paths[1..], BUILD_THREADS, |path| {
            if built.fetch_add(1, Ordering::Relaxed).is_multiple_of(4096) {
                low_on_space(parent).map_err(|e| e.to_string())?;
            }
            let fail = |e: std::io::Error| format!("{}: {e}", path.display());
            fs::create_dir_all(path.parent().expect("a tenant's file has a directory"))
                .map_err(fail)?;
            File::create_new(path)
                .and_then(|mut f| f.write_all(&bytes))
                .map_err(fail)
        })?;
        let build = started.elapsed();
        let started = Instant::now();
        rustix::fs::sync();
        let sync = started.elapsed();
        let used = n as u64 * tenant_blocks(paths.last().expect("n >= 1"))?;
        self.notes.push(format!(
            "build: 1 tenant created by `create_tenant`, {} copies of its {}-byte file on {BUILD_THREADS} threads in {}, then `sync` in {}; the tenants take {:.2} GB on disk ({:.1} KB each, file and directory)",
            thousands(n - 1),
            thousands(bytes.len()),
            fmt_duration(build),
            fmt_duration(sync),
            used as f64 / 1e9,
            used as f64 / n as f64 / 1e3,
        ));
        Ok(())
    }

    /// Phase 2, warm: one untimed pass of each read, and notes on method.
    fn warm_up(&mut self) -> BoxResult<()> {
        let (n, parent, manager) = (self.n, self.parent, &self.manager);
        let (status_threads, v0) = (self.status_threads, self.v0);
        step(n, parent, "warm-up pass")?;
        let mut warm = Vec::new();
        let started = Instant::now();
        count_tenants(manager)?;
        warm.push(format!("`tenants()` {}", fmt_duration(started.elapsed())));
        let started = Instant::now();
        read_headers(&self.listed_paths, status_threads, v0 as u32)?;
        warm.push(format!("header read {}", fmt_duration(started.elapsed())));
        let started = Instant::now();
        manager.migration_status()?;
        warm.push(format!(
            "`migration_status()` {}",
            fmt_duration(started.elapsed())
        ));
        self.notes.push(format!(
            "warm-up, untimed for the table, right after the build: {}",
            warm.join(", ")
        ));
        if self.args.repeat > 1 {
            self.notes.push(format!(
                "warm lines: {} interleaved runs each (floor, tenanted, floor, ...), median shown, (min–max) beside it, largest RSS growth",
                self.args.repeat
            ));
        }
        self.notes.push(format!(
            "`migration_status` uses `available_parallelism()` = {status_threads} threads; so does its floor"
        ));
        Ok(())
    }

    /// The warm lines: listing, status, and a no-op `migrate_all`.
    fn warm_lines(&mut self) -> BoxResult<()> {
        self.read_lines(Temperature::Warm)
    }

    /// Phase 3, cold: the same lines, each run right after dropping the
    /// caches.
    fn cold_lines(&mut self, cold: Option<&ColdBy>) -> BoxResult<()> {
        let n = self.n;
        if n > self.args.cold_max {
            self.notes.push(format!(
                "cold: not measured at this size (--cold-max {})",
                thousands(self.args.cold_max)
            ));
            return Ok(());
        }
        let Some(by) = cold else {
            self.notes
                .push("cold: not measured (cannot drop caches)".into());
            return Ok(());
        };
        self.read_lines(Temperature::Cold(by))?;
        self.notes.push(format!(
            "cold: each cold line ran right after {} (outside its clock)",
            by.describe()
        ));
        Ok(())
    }

    /// Listing, status, and a no-op `migrate_all` (jobs 1 and 2), each
    /// against its floors, at `temperature`.
    fn read_lines(&mut self, temperature: Temperature) -> BoxResult<()> {
        let (n, parent, repeat) = (self.n, self.parent, self.args.repeat);
        let (status_threads, v0) = (self.status_threads, self.v0);
        let (manager, root_dir) = (&self.manager, &self.root_dir);
        let (listed, created) = (&self.listed_paths[..], &self.paths[..]);
        let headers = |paths, threads| headers_of(paths, threads, v0 as u32);
        let prepare = || temperature.prepare();
        let named = |what: &str| temperature.name(what);
        step(n, parent, &named("listing"))?;
        self.lines.push(
            Line::new(
                named("listing: `tenants()` consumed"),
                named("`read_dir` of the 256 buckets"),
            )
            .run(
                repeat,
                prepare,
                || list_buckets(root_dir),
                || count_tenants(manager),
                listed_ok(n),
            )?,
        );
        step(n, parent, &named("status"))?;
        // Each line against the walk-order floor, then the creation-order one.
        let orders = [
            (listed, "", ""),
            (
                created,
                " in creation order",
                ", against the creation-order floor",
            ),
        ];
        for (paths, order, against) in orders {
            self.lines.push(
                Line::new(
                    named(&format!("`migration_status()`{against}")),
                    named(&format!("header read{order}, {status_threads} threads")),
                )
                .run(
                    repeat,
                    prepare,
                    headers(paths, status_threads),
                    || Ok(manager.migration_status()?),
                    status_ok(n),
                )?,
            );
        }
        let noop_ok = |r: Result<(), MigrationReport>| match r {
            Ok(()) => Ok(()),
            Err(report) => check(
                report.is_success() && report.up_to_date() == n,
                "up-to-date tenants",
                report.up_to_date(),
                n,
            ),
        };
        for jobs in [1, 2] {
            step(n, parent, &named(&format!("no-op migrate_all jobs {jobs}")))?;
            let options = MigrateOptions::new().jobs(jobs);
            // The goal is set against the faster of the two floors.
            for (paths, order, against) in orders {
                self.lines.push(
                    Line::new(
                        named(&format!("no-op `migrate_all`, jobs {jobs}{against}")),
                        named(&format!(
                            "header read{order}, {jobs} thread{}",
                            plural(jobs)
                        )),
                    )
                    .run(
                        repeat,
                        prepare,
                        headers(paths, jobs),
                        || Ok(manager.migrate_all(&options)?),
                        noop_ok,
                    )?,
                );
            }
        }
        Ok(())
    }

    /// Phase 4: one pending migration, twice (jobs 1 and 2), beside its
    /// floor.
    fn pending_lines(&mut self) -> BoxResult<()> {
        let (n, parent, args, v0) = (self.n, self.parent, self.args, self.v0);
        let (status_threads, root, base) = (self.status_threads, &self.root, &self.base);
        let (paths, listed_paths) = (&self.paths, &self.listed_paths);
        let pending = n <= args.pending_max;
        if pending {
            // Both sides write the whole schema page, the header and the
            // freelist: read every file once, so the first run does not pay
            // the reads for the second.
            step(n, parent, "reading every file before the pending phase")?;
            let started = Instant::now();
            par_try(listed_paths, status_threads, |path| {
                fs::read(path)
                    .map(drop)
                    .map_err(|e| format!("{}: {e}", path.display()))
            })?;
            self.notes.push(format!(
                "pending: every file read once before this phase, {}",
                fmt_duration(started.elapsed())
            ));
            let migrated_ok = |r: Result<(), MigrationReport>| match r {
                Ok(()) => Ok(()),
                Err(report) => check(
                    report.is_success() && report.migrated() == n,
                    "migrated tenants",
                    report.migrated(),
                    n,
                ),
            };
            let mut version = v0;
            if args.pending_memory {
                version += 1;
                let newer =
                    TenantManager::builder(root.clone(), with_probes(base, version)).build()?;
                step(
                    n,
                    parent,
                    "pending: migration_status of a fleet a migration behind",
                )?;
                let (sample, status) = measure(|| Ok(newer.migration_status()?))?;
                check(status.behind() == n, "tenants behind", status.behind(), n)?;
                self.notes.push(format!(
                    "pending (--pending-memory): `migration_status()` with every tenant a migration behind: {}, peak RSS {}, {} tenants listed in the report",
                    fmt_duration(sample.time),
                    sample.rss_mb.map_or("not measured".into(), |mb| format!("+{mb:.1} MB")),
                    status.tenants.len(),
                ));
                drop(status);
                step(
                    n,
                    parent,
                    "pending: migrate_all, jobs 2, no floor (--pending-memory)",
                )?;
                let options = MigrateOptions::new().jobs(2);
                let (sample, report) = measure(|| Ok(newer.migrate_all(&options)?))?;
                migrated_ok(Err(report))?;
                self.notes.push(format!(
                    "pending (--pending-memory): `migrate_all`, 1 pending, jobs 2, no floor: {}, peak RSS {}",
                    fmt_duration(sample.time),
                    sample.rss_mb.map_or("not measured".into(), |mb| format!("+{mb:.1} MB")),
                ));
            }
            for jobs in [1, 2].into_iter().filter(|_| !args.pending_memory) {
                step(
                    n,
                    parent,
                    &format!("pending: floor, then migrate_all, jobs {jobs}"),
                )?;
                // The floor applies probe `floor_to`, the library the next one.
                let floor_to = version + 1;
                version += 2;
                let sql = probe(floor_to).up_sql().to_owned();
                let newer =
                    TenantManager::builder(root.clone(), with_probes(base, version)).build()?;
                let options = MigrateOptions::new().jobs(jobs);
                self.lines.push(
                    Line::new(
                        format!("`migrate_all`, 1 pending, jobs {jobs}"),
                        format!(
                            "rusqlite: SQL + `user_version` in one transaction, {jobs} thread{}",
                            plural(jobs)
                        ),
                    )
                    .run(
                        1,
                        || Ok(()),
                        || Ok(apply_plain(listed_paths, jobs, &sql, floor_to)?),
                        || Ok(newer.migrate_all(&options)?),
                        migrated_ok,
                    )?,
                );
            }
            read_headers(listed_paths, status_threads, version as u32)?;
            self.notes.push(format!(
                "pending: the fleet went from version {v0} to {version}, one `CREATE TABLE scale_probe_K (x)` per run; the tenants take {:.2} GB on disk at the end",
                (n as u64 * tenant_blocks(paths.last().expect("n >= 1"))?) as f64 / 1e9
            ));
        } else {
            self.notes.push(format!(
                "pending: not measured at this size (--pending-max {})",
                thousands(args.pending_max)
            ));
        }
        Ok(())
    }

    /// The end of a size: the manager dropped, the root removed (or kept),
    /// the wall time noted.
    fn finish(
        mut self,
        mut guard: RootGuard,
        wall: Instant,
        load_before: &str,
    ) -> BoxResult<SizeResult> {
        let (n, parent, root_dir) = (self.n, self.parent, self.root_dir.clone());
        drop(self.manager);
        if self.args.keep {
            self.notes.push(format!("kept: {}", root_dir.display()));
        } else {
            step(n, parent, "removing the root")?;
            let started = Instant::now();
            guard.0 = None;
            remove_root(&root_dir)?;
            self.notes.push(format!(
                "removed the root in {} ({REMOVE_THREADS} threads)",
                fmt_duration(started.elapsed())
            ));
        }
        self.notes.push(format!(
            "wall time for this size: {}; load average before {load_before}, after {}",
            fmt_duration(wall.elapsed()),
            load_average()
        ));
        Ok(SizeResult {
            n,
            lines: self.lines,
            notes: self.notes,
        })
    }
}

/// Checks a listing found all `n` tenants (the floor's count, or the
/// library's).
fn listed_ok(n: usize) -> impl Fn(Result<usize, usize>) -> BoxResult<()> {
    move |r| {
        let (what, count) = match r {
            Ok(c) => ("bucket entries", c),
            Err(c) => ("tenants()", c),
        };
        check(count == n, what, count, n)
    }
}

/// Checks a status read found all `n` tenants current.
fn status_ok(n: usize) -> impl Fn(Result<(), StatusReport>) -> BoxResult<()> {
    move |r| match r {
        Ok(()) => Ok(()),
        Err(report) => check(
            report.current() == n,
            "current tenants",
            report.current(),
            n,
        ),
    }
}

fn count_tenants(manager: &TenantManager) -> BoxResult<usize> {
    let mut count = 0;
    for tenant in manager.tenants()? {
        tenant?;
        count += 1;
    }
    Ok(count)
}

fn check(ok: bool, what: &str, got: usize, want: usize) -> BoxResult<()> {
    if ok {
        Ok(())
    } else {
        Err(format!("{what}: got {got}, expected {want}").into())
    }
}

// ----- output ----------------------------------------------------------------------

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn short(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n.is_multiple_of(1_000_000) => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n.is_multiple_of(1_000) => format!("{}k", n / 1_000),
        n => thousands(n),
    }
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 100.0 {
        format!("{s:.0} s")
    } else if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

fn fmt_rss(mb: Option<f64>) -> String {
    mb.map_or("?".to_owned(), |mb| format!("{mb:.1}"))
}

fn size_table(r: &SizeResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### {} tenants\n", thousands(r.n));
    for note in &r.notes {
        let _ = writeln!(out, "- {note}");
    }
    let _ = writeln!(
        out,
        "\n| measurement | tenanted | floor | floor time | ratio | per tenant: tenanted / floor | peak RSS growth, MB: tenanted / floor |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for l in &r.lines {
        let (lib, floor) = (summary(&l.lib), summary(&l.floor));
        let per = |s: &Sample| s.time.as_secs_f64() * 1e6 / r.n as f64;
        let _ = writeln!(
            out,
            "| {} | {}{} | {} | {}{} | **{:.2}×** | {:.1} µs / {:.1} µs | {} / {} |",
            l.what,
            fmt_duration(lib.time),
            spread(&l.lib),
            l.floor_what,
            fmt_duration(floor.time),
            spread(&l.floor),
            lib.time.as_secs_f64() / floor.time.as_secs_f64(),
            per(&lib),
            per(&floor),
            fmt_rss(lib.rss_mb),
            fmt_rss(floor.rss_mb),
        );
    }
    out
}

/// `b / a` scaled to 10× tenants: `(b / a)^(1 / log10(n_b / n_a))`.
fn per_tenfold(a: f64, b: f64, na: usize, nb: usize) -> Option<f64> {
    let decades = (nb as f64 / na as f64).log10();
    (a > 0.0 && b > 0.0 && decades > 0.0).then(|| (b / a).powf(1.0 / decades))
}

fn growth_tables(results: &[SizeResult]) -> String {
    let mut out = String::new();
    if results.len() < 2 {
        return out;
    }
    let pairs: Vec<(&SizeResult, &SizeResult)> =
        results.windows(2).map(|w| (&w[0], &w[1])).collect();
    let mut what: Vec<&str> = Vec::new();
    for r in results {
        for l in &r.lines {
            if !what.contains(&l.what.as_str()) {
                what.push(&l.what);
            }
        }
    }
    let find = |r: &SizeResult, w: &str| {
        r.lines
            .iter()
            .find(|l| l.what == w)
            .map(|l| (summary(&l.lib), summary(&l.floor)))
    };
    let header = |out: &mut String| {
        let _ = write!(out, "| measurement |");
        for (a, b) in &pairs {
            let _ = write!(out, " {} → {} |", short(a.n), short(b.n));
        }
        let _ = write!(out, "\n|---|");
        for _ in &pairs {
            let _ = write!(out, "---|");
        }
        let _ = writeln!(out);
    };

    let _ = writeln!(
        out,
        "### Growth with N: time ratio per 10× tenants, tenanted (floor); 10× is linear\n"
    );
    header(&mut out);
    for w in &what {
        let _ = write!(out, "| {w} |");
        for (a, b) in &pairs {
            match (find(a, w), find(b, w)) {
                (Some((la, fa)), Some((lb, fb))) => {
                    let g = |x: Duration, y: Duration| {
                        per_tenfold(x.as_secs_f64(), y.as_secs_f64(), a.n, b.n)
                            .map_or("?".to_owned(), |g| format!("{g:.1}×"))
                    };
                    let _ = write!(out, " {} ({}) |", g(la.time, lb.time), g(fa.time, fb.time));
                }
                _ => {
                    let _ = write!(out, " — |");
                }
            }
        }
        let _ = writeln!(out);
    }

    let _ = writeln!(
        out,
        "\n### Growth with N: peak RSS growth of tenanted, MB (from → to)\n"
    );
    header(&mut out);
    for w in &what {
        let _ = write!(out, "| {w} |");
        for (a, b) in &pairs {
            match (find(a, w), find(b, w)) {
                (Some((la, _)), Some((lb, _))) => {
                    let _ = write!(out, " {} → {} |", fmt_rss(la.rss_mb), fmt_rss(lb.rss_mb));
                }
                _ => {
                    let _ = write!(out, " — |");
                }
            }
        }
        let _ = writeln!(out);
    }
    out
}

fn main() -> BoxResult<()> {
    STARTED.get_or_init(Instant::now);
    let args = parse_args()?;
    fs::create_dir_all(&args.dir)?;
    let parent = tempfile::Builder::new()
        .prefix("tenanted-scale-")
        .tempdir_in(&args.dir)?;
    let mem_gb =
        proc_field("/proc/meminfo", "MemTotal:").map_or(0.0, |kb| kb as f64 / 1024.0 / 1024.0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "## tenanted scale run\n\n- machine: {} CPUs (available_parallelism), {mem_gb:.1} GiB RAM, Linux {}, {:.1} GB free under {}\n- sizes: {}; root under {}\n",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel.trim(),
        free_bytes(parent.path())? as f64 / 1e9,
        args.dir.display(),
        args.sizes
            .iter()
            .map(|&n| thousands(n))
            .collect::<Vec<_>>()
            .join(", "),
        parent.path().display(),
    );
    let cold = ColdBy::find();
    let mut results = Vec::new();
    for &n in &args.sizes {
        match run_size(n, parent.path(), &args, cold.as_ref()) {
            Ok(r) => {
                println!("{}", size_table(&r));
                results.push(r);
            }
            Err(e) => println!("### {} tenants\n\n- skipped: {e}\n", thousands(n)),
        }
    }
    print!("{}", growth_tables(&results));
    if args.keep {
        println!("\nkept: {}", parent.keep().display());
    }
    Ok(())
}
