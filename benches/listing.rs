//! Area 6 of BENCHMARKS.md. `tenants()` over 100,000 tenants on disk against a flat `read_dir` of
//! as many files, for the default layout (a directory per tenant) and a
//! flat-per-bucket one (`%{bucket}/%{tenant}.sqlite3`).

mod support;

use std::fs;

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
    group.finish();
}

criterion_group!(benches, listing);
criterion_main!(benches);
