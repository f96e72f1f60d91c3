//! Helpers shared by the benches: fleets on disk and process counters.
#![allow(dead_code)]

use std::path::Path;

use tenanted::{Migration, Migrations, RootConfig, TenantManager, TenantManagerBuilder};

/// `n` synthetic migrations, each a table with an index (and a down).
pub fn migrations(n: usize) -> Migrations {
    Migrations::new(
        (1..=n)
            .map(|i| {
                Migration::new(
                    format!("{i:04}_table_{i}"),
                    format!(
                        "CREATE TABLE t{i} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, value REAL, created TEXT);\
                         CREATE INDEX t{i}_name ON t{i} (name);"
                    ),
                )
                .down(format!("DROP TABLE t{i};"))
            })
            .collect(),
    )
}

pub fn builder(root: &Path, migrations: Migrations) -> TenantManagerBuilder {
    TenantManager::builder(RootConfig::new(root), migrations)
}

pub fn tenant(i: usize) -> String {
    format!("tenant-{i:06}")
}

/// Creates tenants `0..count` (skipping existing ones).
pub fn populate(m: &TenantManager, count: usize) {
    for i in 0..count {
        m.create_tenant_if_not_exists(&tenant(i)).expect("create");
    }
}

/// Tenants `0..count` made fast: tenant 0 is created the normal way and
/// every other missing one gets a copy of its file (no fsync, no lock:
/// for benches that read a big fleet, not for anything that writes).
pub fn populate_by_copy(m: &TenantManager, count: usize) {
    m.create_tenant_if_not_exists(&tenant(0)).expect("create");
    let first = std::fs::read(m.root().database_path(&tenant(0)).unwrap()).unwrap();
    for i in 1..count {
        let path = m.root().database_path(&tenant(i)).unwrap();
        if !path.exists() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &first).unwrap();
        }
    }
}

fn proc_count(dir: &str) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// OS threads of this process.
pub fn threads() -> usize {
    proc_count("/proc/self/task")
}

/// Open file descriptors of this process.
pub fn fds() -> usize {
    proc_count("/proc/self/fd")
}

/// A field of /proc/self/status in kB (VmRSS, VmHWM).
pub fn status_kb(field: &str) -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// A small xorshift generator: benches need no crypto-grade randomness.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `0..n`.
    pub fn uniform(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Zipf-like (s ≈ 1) in `0..n`: rank r with probability ∝ 1/r, by
    /// inverting the continuous approximation r = n^u.
    pub fn zipf(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64).powf(u) as usize).saturating_sub(1).min(n - 1)
    }
}

/// Mean time of one call of `f` over `n` calls.
pub fn per_call(n: u32, mut f: impl FnMut()) -> std::time::Duration {
    let started = std::time::Instant::now();
    for _ in 0..n {
        f();
    }
    started.elapsed() / n
}

/// The median of `times`.
pub fn median<T: PartialOrd + Copy>(mut times: Vec<T>) -> T {
    times.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    times[times.len() / 2]
}

/// Interleaved rounds of a floor and a contender, `per_round` timings of
/// each per round (each the time of one call): the median of the floor,
/// the contender, and of the per-round ratios (contender ÷ floor), which a
/// noisy machine moves least.
pub fn interleaved(
    rounds: usize,
    mut floor: impl FnMut() -> std::time::Duration,
    mut ours: impl FnMut() -> std::time::Duration,
) -> (std::time::Duration, std::time::Duration, f64) {
    let (mut f, mut o, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (a, b) = (floor(), ours());
        f.push(a);
        o.push(b);
        r.push(b.as_secs_f64() / a.as_secs_f64());
    }
    (median(f), median(o), median(r))
}

/// The machine's load average over the last minute (for the report line).
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

/// How the SQLite this bench runs was built, for its report: its version,
/// and whether its global memory statistics are on (every allocation then
/// takes one process-wide mutex; `.cargo/config.toml` turns them off).
pub fn sqlite_build() -> String {
    let options = || -> rusqlite::Result<Vec<String>> {
        let conn = rusqlite::Connection::open_in_memory()?;
        let mut stmt = conn.prepare("PRAGMA compile_options")?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        rows.collect()
    };
    let stats = match options() {
        Ok(options) if options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0") => "off",
        Ok(_) => "on",
        Err(_) => "unknown",
    };
    format!("SQLite {}, memory statistics {stats}", rusqlite::version())
}

/// The whole machine's CPU time so far, in clock ticks: busy, in all, and
/// the number of CPUs (from `/proc/stat`). Every process and kernel
/// thread counts, so the file system's writeback threads do too. Zeroes
/// where `/proc/stat` cannot be read.
pub fn machine_cpu() -> [u64; 3] {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = (stat.lines().next().unwrap_or_default())
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: idle and iowait are
    // the time a CPU had no work.
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    let all: u64 = ticks.iter().take(8).sum();
    let cpus = stat.lines().filter(|l| l.starts_with("cpu")).count() as u64;
    [all.saturating_sub(idle), all, cpus.saturating_sub(1)]
}

/// How many of the machine's CPUs were busy, on average, between two
/// readings of [`machine_cpu`].
pub fn busy_cpus(before: [u64; 3], after: [u64; 3]) -> f64 {
    let (busy, all) = (after[0] - before[0], after[1] - before[1]);
    match all {
        0 => 0.0,
        all => busy as f64 / all as f64 * after[2] as f64,
    }
}

/// CPU time the calling thread has used: unlike the wall clock, not
/// stretched by time spent waiting for a CPU on a loaded machine.
pub fn thread_cpu() -> std::time::Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Wall and CPU time of one call of `f`.
pub fn timed(f: impl FnOnce()) -> (std::time::Duration, std::time::Duration) {
    let (cpu, wall) = (thread_cpu(), std::time::Instant::now());
    f();
    (wall.elapsed(), thread_cpu() - cpu)
}

/// Calls of a floor and a contender, alternating one by one (which goes
/// first alternates too), so that both meet the same machine at the same
/// moments: `rounds` rounds of `per_round` pairs. Returns the medians over
/// rounds of the mean wall and CPU time of a call, floor then contender,
/// and the medians of the per-round ratios (contender ÷ floor), wall then
/// CPU.
pub fn paired(
    rounds: usize,
    per_round: u32,
    mut floor: impl FnMut(),
    mut ours: impl FnMut(),
) -> (Times, Times, f64, f64) {
    let (mut fs, mut os, mut wall, mut cpu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (mut f, mut o) = (Times::default(), Times::default());
        for i in 0..per_round {
            if i % 2 == 0 {
                f.add(timed(&mut floor));
                o.add(timed(&mut ours));
            } else {
                o.add(timed(&mut ours));
                f.add(timed(&mut floor));
            }
        }
        wall.push(o.wall.as_secs_f64() / f.wall.as_secs_f64());
        cpu.push(o.cpu.as_secs_f64() / f.cpu.as_secs_f64());
        fs.push(f.per(per_round));
        os.push(o.per(per_round));
    }
    let med = |v: &[Times]| Times {
        wall: median(v.iter().map(|t| t.wall).collect()),
        cpu: median(v.iter().map(|t| t.cpu).collect()),
    };
    (med(&fs), med(&os), median(wall), median(cpu))
}

/// Wall and CPU time.
#[derive(Debug, Default, Clone, Copy)]
pub struct Times {
    pub wall: std::time::Duration,
    pub cpu: std::time::Duration,
}

impl Times {
    fn add(&mut self, (wall, cpu): (std::time::Duration, std::time::Duration)) {
        self.wall += wall;
        self.cpu += cpu;
    }

    fn per(self, n: u32) -> Times {
        Times {
            wall: self.wall / n,
            cpu: self.cpu / n,
        }
    }
}
