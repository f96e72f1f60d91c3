//! The time to rebuild N tenants from a Litestream replica (#25 item 4),
//! beside its floors in the same run. Run on demand (needs `litestream`
//! 0.5 on the PATH or in `TENANTED_LITESTREAM`; not run in CI):
//!
//! ```text
//! cargo run --release --example rebuild_scale -- 1000 10000 [--jobs J]
//! ```
//!
//! For each size N, in a fresh directory of the system temp directory:
//!
//! 1. **Build the replica.** One tenant with 50 rows (the example schema)
//!    is replicated by Litestream into a `file://` replica; its replica
//!    directory is then copied to every other tenant's path under the
//!    replica (an LTX file does not name its database), so the replica
//!    holds N tenants as Litestream wrote them.
//! 2. **Floor: `litestream restore` loop.** N `litestream restore` into
//!    files outside any root, J at a time: what a careful operator's
//!    script does by hand.
//! 3. **Floor: plain copy.** One restored file copied N times (J threads):
//!    the bytes alone.
//! 4. **Rebuild.** `rebuild_from_replica` into a fresh root, J jobs: the
//!    listing, the restores, each tenant's checks and its publication.
//!
//! Prints each time, per tenant, and the rebuild's ratio to each floor.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tenanted::replication::RebuildOptions;
use tenanted::{Migrations, ReplicaTarget, RootConfig, TenantManager};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let mut sizes = Vec::new();
    let mut jobs = 8;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--jobs" => jobs = args.next().ok_or("--jobs N")?.parse()?,
            size => sizes.push(size.replace('_', "").parse::<usize>()?),
        }
    }
    if sizes.is_empty() {
        sizes.push(1000);
    }
    let bin = std::env::var_os("TENANTED_LITESTREAM").map_or("litestream".into(), PathBuf::from);
    for n in sizes {
        let dir = tempfile::tempdir()?;
        run(&bin, dir.path(), n, jobs)?;
    }
    Ok(())
}

fn migrations() -> Result<Migrations, Error> {
    Ok(Migrations::from_dir(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/migrations"),
    )?)
}

fn run(bin: &Path, dir: &Path, n: usize, jobs: usize) -> Result<(), Error> {
    let replica = dir.join("replica");
    let seed_rel = seed_replica(bin, dir, &replica)?;
    // The seed tenant is in the replica too: N + 1 are rebuilt.
    let names: Vec<String> = (0..n).map(|i| format!("t{i:06}")).collect();
    let layout = RootConfig::new(dir.join("layout"));
    let started = Instant::now();
    for name in &names {
        let rel = relative(&layout, name)?;
        copy_tree(&replica.join(&seed_rel), &replica.join(rel))?;
    }
    println!(
        "n={n} jobs={jobs}: replica of {n} tenants built in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let scratch = dir.join("scratch");
    std::fs::create_dir_all(&scratch)?;
    let floor_restore = parallel(n, jobs, |i| {
        let url = format!(
            "file://{}",
            replica.join(relative(&layout, &names[i])?).display()
        );
        let out = scratch.join(format!("{i}.sqlite3"));
        let status = Command::new(bin)
            .args(["restore", "-o"])
            .arg(&out)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            return Err("litestream restore failed".into());
        }
        Ok(())
    })?;
    let copies = dir.join("copies");
    std::fs::create_dir_all(&copies)?;
    let one = scratch.join("0.sqlite3");
    let floor_copy = parallel(n, jobs, |i| {
        std::fs::copy(&one, copies.join(format!("{i}.sqlite3")))?;
        Ok(())
    })?;

    let fresh =
        TenantManager::builder(RootConfig::new(dir.join("fresh")), migrations()?).build()?;
    let options = RebuildOptions::new(ReplicaTarget::new(format!("file://{}", replica.display())))
        .litestream(bin)
        .staging(dir.join("staging"))
        .jobs(jobs);
    let started = Instant::now();
    let report = fresh.rebuild_from_replica(&options)?;
    let rebuild = started.elapsed();
    if !report.is_success() || report.restored() != n + 1 {
        return Err(format!("the rebuild failed: {report}").into());
    }
    let per = |d: Duration| d.as_secs_f64() * 1e3 / n as f64;
    println!(
        "  floor litestream restore loop: {:.2} s ({:.2} ms/tenant)",
        floor_restore.as_secs_f64(),
        per(floor_restore)
    );
    println!(
        "  floor plain copy:              {:.2} s ({:.3} ms/tenant)",
        floor_copy.as_secs_f64(),
        per(floor_copy)
    );
    println!(
        "  rebuild_from_replica:          {:.2} s ({:.2} ms/tenant) = {:.2}x the restore loop, {:.0}x the copy",
        rebuild.as_secs_f64(),
        per(rebuild),
        rebuild.as_secs_f64() / floor_restore.as_secs_f64(),
        rebuild.as_secs_f64() / floor_copy.as_secs_f64()
    );
    Ok(())
}

/// Replicates one tenant with 50 rows; its path relative to the replica.
fn seed_replica(bin: &Path, dir: &Path, replica: &Path) -> Result<PathBuf, Error> {
    let root = RootConfig::new(dir.join("seed-root"));
    let m = TenantManager::builder(root.clone(), migrations()?).build()?;
    m.create_tenant("seed")?;
    let conn = m.connection("seed")?;
    for i in 0..50 {
        conn.execute(
            "INSERT INTO users (email, name) VALUES (?1, 'seed')",
            [format!("{i}@example.com")],
        )?;
    }
    drop(conn);
    let config = dir.join("litestream.yml");
    std::fs::write(
        &config,
        root.litestream_config(&format!("file://{}", replica.display()))?,
    )?;
    let mut litestream = Command::new(bin)
        .args(["replicate", "-config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let rel = relative(&root, "seed")?;
    let l0 = replica.join(&rel).join("ltx/0");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !l0.is_dir() || std::fs::read_dir(&l0)?.count() == 0 {
        if Instant::now() > deadline {
            return Err("Litestream never replicated the seed tenant".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let _ = Command::new("kill")
        .arg(litestream.id().to_string())
        .status();
    litestream.wait()?;
    Ok(rel)
}

fn relative(root: &RootConfig, tenant: &str) -> Result<PathBuf, Error> {
    let db = root.database_path(tenant)?;
    Ok(db.strip_prefix(root.root_dir())?.to_path_buf())
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Runs `work(0..n)` on `jobs` threads; the wall time.
fn parallel(
    n: usize,
    jobs: usize,
    work: impl Fn(usize) -> Result<(), Error> + Sync,
) -> Result<Duration, Error> {
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        return;
                    }
                    if work(i).is_err() {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    match failed.load(Ordering::SeqCst) {
        0 => Ok(started.elapsed()),
        k => Err(format!("{k} of {n} failed").into()),
    }
}
