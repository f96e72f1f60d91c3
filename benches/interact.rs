//! The async front door's overhead on one tenant (`SELECT 1` on a warm
//! pool): `TenantManager::interact` against the sync path on the calling
//! thread, against the thread hop alone (`spawn_blocking` of the sync
//! path: the floor of any closure-on-a-blocking-thread design), and
//! against deadpool-sqlite's `pool.get().await` + `conn.interact(..)`.
//! Every async line pays one `block_on` on the same current-thread runtime.

mod support;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

fn select_one(conn: &rusqlite::Connection) -> i64 {
    conn.query_row("SELECT 1", [], |r| r.get(0)).unwrap()
}

fn interact(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let m = support::builder(dir.path(), support::migrations(3))
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    drop(m.connection("acme").unwrap());
    let path = m.root().database_path("acme").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // deadpool's connections are dropped through the runtime: keep it
    // entered until they are (the end of this function).
    let _inside = rt.enter();
    let deadpool = deadpool_sqlite::Config::new(&path)
        .create_pool(deadpool_sqlite::Runtime::Tokio1)
        .unwrap();
    rt.block_on(async { drop(deadpool.get().await.unwrap()) });

    let mut group = c.benchmark_group("interact");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("sync: connection(t) + SELECT 1", |b| {
        b.iter(|| select_one(&m.connection("acme").unwrap()))
    });
    group.bench_function("floor: spawn_blocking(connection(t) + SELECT 1)", |b| {
        b.iter(|| {
            rt.block_on(async {
                let m = m.clone();
                tokio::task::spawn_blocking(move || select_one(&m.connection("acme").unwrap()))
                    .await
                    .unwrap()
            })
        })
    });
    group.bench_function("tenanted: interact(t, SELECT 1)", |b| {
        b.iter(|| {
            rt.block_on(m.interact("acme", |conn| select_one(conn)))
                .unwrap()
        })
    });
    group.bench_function("deadpool-sqlite: get + interact(SELECT 1)", |b| {
        b.iter(|| {
            rt.block_on(async {
                let conn = deadpool.get().await.unwrap();
                conn.interact(|conn| select_one(conn)).await.unwrap()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, interact);
criterion_main!(benches);
