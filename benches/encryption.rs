//! What encryption at rest costs (the `encryption` feature): the same
//! operations on plaintext tenants (the floor) and on encrypted tenants, in
//! one run of the same build, interleaved, as ratios. Cold open (a pool's
//! first connection: the key file read and unwrapped, SQLCipher keyed),
//! warm checkout, a write-heavy transaction (100 inserts), and
//! `migration_status` over a fleet (`TENANTED_BENCH_FLEET` tenants per
//! root, default 10,000; versions read from the plaintext header).
//!
//! `cargo bench --features encryption --bench encryption`

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tenanted::{MasterKey, RootKeyStore, TenantManager};

fn manager(root: &Path, encrypted: bool, max_pools: usize) -> TenantManager {
    let builder = support::builder(root, support::migrations(3)).max_pools(max_pools);
    let builder = if encrypted {
        let master = MasterKey::generate().unwrap();
        builder.encryption(RootKeyStore::new(root, master))
    } else {
        builder
    };
    builder.build().unwrap()
}

fn report(what: &str, (floor, ours, ratio): (Duration, Duration, f64)) {
    println!("{what}: encrypted {ours:?} vs plaintext {floor:?}: {ratio:.2}x");
}

fn costs(_c: &mut Criterion) {
    let (plain_dir, enc_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let plain = manager(plain_dir.path(), false, 1);
    let enc = manager(enc_dir.path(), true, 1);
    for m in [&plain, &enc] {
        m.create_tenant("a").unwrap();
        m.create_tenant("b").unwrap();
    }
    report(
        "cold open",
        support::interleaved(15, cold(&plain), cold(&enc)),
    );
    report(
        "warm checkout",
        support::interleaved(15, warm(&plain), warm(&enc)),
    );
    let what = "write-heavy (100 inserts, one commit)";
    report(what, support::interleaved(9, writes(&plain), writes(&enc)));
    fleet(&plain, &enc);
}

/// A pool's first connection each call: with `max_pools(1)` and two
/// tenants, every call evicts the other tenant's pool.
fn cold(m: &TenantManager) -> impl FnMut() -> Duration + '_ {
    let mut flip = false;
    move || {
        support::per_call(100, || {
            flip = !flip;
            let conn = m.connection(if flip { "a" } else { "b" }).unwrap();
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .unwrap();
        })
    }
}

fn warm(m: &TenantManager) -> impl FnMut() -> Duration + '_ {
    move || {
        support::per_call(20_000, || {
            let conn = m.connection("a").unwrap();
            std::hint::black_box(&conn);
        })
    }
}

fn writes(m: &TenantManager) -> impl FnMut() -> Duration + '_ {
    move || {
        support::per_call(20, || {
            let mut conn = m.connection("a").unwrap();
            let tx = conn.transaction().unwrap();
            for i in 0..100 {
                let name = format!("row {i} {}", "x".repeat(100));
                tx.execute("INSERT INTO t1 (name) VALUES (?1)", [name])
                    .unwrap();
            }
            tx.commit().unwrap();
        })
    }
}

fn status(m: &TenantManager, count: usize) -> impl FnMut() -> Duration + '_ {
    move || {
        support::per_call(1, || {
            let report = m.migration_status().unwrap();
            assert_eq!(report.current(), count + 2);
        })
    }
}

fn fleet(plain: &TenantManager, enc: &TenantManager) {
    let count: usize = std::env::var("TENANTED_BENCH_FLEET")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    for m in [plain, enc] {
        let started = Instant::now();
        let names: Vec<String> = (0..count).map(support::tenant).collect();
        for chunk in names.chunks(500) {
            assert!(m.create_tenants(chunk).unwrap().is_success());
        }
        println!("created {count} tenants in {:?}", started.elapsed());
    }
    let what = format!("migration_status over {count} tenants");
    report(
        &what,
        support::interleaved(5, status(plain, count), status(enc, count)),
    );
}

criterion_group!(benches, costs);
criterion_main!(benches);
