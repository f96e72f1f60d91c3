//! Area 6 of BENCHMARKS.md. `tenants()` over 100,000 tenants on disk against a flat `read_dir` of
//! as many files, for the default layout (a directory per tenant) and a
//! flat-per-bucket one (`%{bucket}/%{tenant}.sqlite3`); and, for the
//! default layout, against its own floor: reading its bucket directories
//! and nothing else (issue #13, goal 1), the ratio printed from medians
//! of interleaved runs.

mod support;

use std::fs;
use std::path::Path;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use tenanted::RootConfig;

const TENANTS: usize = 100_000;

fn touch_all(root: &RootConfig) {
    for i in 0..TENANTS {
        let path = root.database_path(&support::tenant(i)).unwrap();
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"").unwrap();
    }
}

fn listing(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let flat = dir.path().join("flat");
    fs::create_dir_all(&flat).unwrap();
    for i in 0..TENANTS {
        fs::write(flat.join(format!("{}.sqlite3", support::tenant(i))), b"").unwrap();
    }
    let per_tenant_dir = RootConfig::new(dir.path().join("default"));
    touch_all(&per_tenant_dir);
    let per_bucket =
        RootConfig::new(dir.path().join("bucketed")).template("%{bucket}/%{tenant}.sqlite3");
    touch_all(&per_bucket);

    let mut group = c.benchmark_group("list_100k_tenants");
    group.sample_size(10);
    group.bench_function("baseline: flat read_dir", |b| {
        b.iter(|| {
            let names: Vec<String> = fs::read_dir(&flat)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert_eq!(names.len(), TENANTS);
        })
    });
    group.bench_function("tenanted: tenants(), %{bucket}/%{tenant}.sqlite3", |b| {
        b.iter(|| assert_eq!(per_bucket.tenants().unwrap().count(), TENANTS))
    });
    group.bench_function(
        "tenanted: tenants(), default %{bucket}/%{tenant}/main.sqlite3",
        |b| b.iter(|| assert_eq!(per_tenant_dir.tenants().unwrap().count(), TENANTS)),
    );
    group.bench_function("floor: read the default layout's bucket directories", |b| {
        b.iter(|| assert_eq!(read_buckets(per_tenant_dir.root_dir()), TENANTS))
    });
    group.finish();
    print_floor_ratio(&per_tenant_dir);
}

/// The listing floor: every bucket directory read, entries counted, no
/// other system call.
fn read_buckets(root: &Path) -> usize {
    fs::read_dir(root)
        .unwrap()
        .filter_map(|bucket| {
            let bucket = bucket.unwrap();
            let hidden = bucket.file_name().to_string_lossy().starts_with('.');
            (!hidden).then(|| fs::read_dir(bucket.path()).unwrap().count())
        })
        .sum()
}

/// `tenants()` against the floor in 11 interleaved rounds: the medians,
/// and the median of the per-round ratios (what a shared machine moves
/// least).
fn print_floor_ratio(root: &RootConfig) {
    let time = |run: &dyn Fn()| {
        let started = Instant::now();
        run();
        started.elapsed()
    };
    let (floor, listing, ratio) = support::interleaved(
        11,
        || time(&|| assert_eq!(read_buckets(root.root_dir()), TENANTS)),
        || time(&|| assert_eq!(root.tenants().unwrap().count(), TENANTS)),
    );
    println!(
        "list_100k_tenants: tenants() {listing:?} against the bucket-directory floor {floor:?}: {ratio:.2}x (median of 11 interleaved rounds; load {})",
        support::load()
    );
}

criterion_group!(benches, listing);
criterion_main!(benches);
