//! Area 10 of BENCHMARKS.md. An idle server: the CPU a process with many
//! cached pools and no traffic spends, as a share of one core, at 1,000,
//! 5,000 and as many pools as the descriptor limit allows (about three
//! descriptors a pool). Nothing but the manager's watcher thread runs while
//! it is measured: the figure is its cost. The floor is zero.
//!
//! `cargo bench --bench idle` (one line per size; `IDLE_SECS` sets the
//! window, default 10 s; `IDLE_POOLS` a comma-separated list of sizes).

mod support;

use std::time::{Duration, Instant};

/// CPU time of every thread of this process so far (nanoseconds on the
/// CPU, from each thread's schedstat).
fn cpu_time() -> Duration {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    let nanos: u64 = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// The most pools the descriptor limit allows, with room left.
fn pools_the_limit_allows() -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    usize::try_from(now.saturating_sub(200) / 3).unwrap_or(usize::MAX)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let window = Duration::from_secs(
        std::env::var("IDLE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10),
    );
    let most = pools_the_limit_allows().min(10_000);
    let sizes: Vec<usize> = match std::env::var("IDLE_POOLS") {
        Ok(list) => list
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
        Err(_) => vec![1_000, 5_000, 10_000],
    };
    let dir = tempfile::tempdir().unwrap();
    let setup = support::builder(dir.path(), support::migrations(3))
        .build()
        .unwrap();
    support::populate_by_copy(&setup, most);
    drop(setup);
    for size in sizes {
        let pools = size.min(most);
        let m = support::builder(dir.path(), support::migrations(3))
            .max_pools(pools)
            .build()
            .unwrap();
        for i in 0..pools {
            drop(m.connection(support::tenant(i)).unwrap());
        }
        assert_eq!(m.stats().open_pools, pools);
        // Let the watcher's first passes over the new pools go by.
        std::thread::sleep(Duration::from_secs(1));
        let (cpu, started) = (cpu_time(), Instant::now());
        std::thread::sleep(window);
        let (cpu, wall) = (cpu_time() - cpu, started.elapsed());
        println!(
            "idle, {pools} cached pools{}: {:.3}% of a core ({cpu:?} CPU in {wall:?}; watch_interval 500 ms; load {})",
            if pools < size {
                " (the descriptor limit)"
            } else {
                ""
            },
            100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
            support::load()
        );
    }
}
