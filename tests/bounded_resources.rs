//! Opening many tenants costs a bounded number of OS threads and file
//! descriptors. Alone in its binary: it counts the whole process.

mod common;

#[cfg(target_os = "linux")]
#[test]
fn a_thousand_tenants_cost_a_few_threads_and_bounded_descriptors() {
    fn count(dir: &str) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }
    let dir = tempfile::tempdir().unwrap();
    let m = common::builder(dir.path()).max_pools(32).build().unwrap();
    for i in 0..1000 {
        m.create_tenant(&format!("t{i:04}")).unwrap();
    }
    let (threads_before, fds_before) = (count("/proc/self/task"), count("/proc/self/fd"));
    let mut peak_fds = 0;
    for i in 0..1000 {
        let conn = m.connection(format!("t{i:04}")).unwrap();
        conn.query_row("SELECT count(*) FROM notes", [], |r| r.get::<_, i64>(0))
            .unwrap();
        peak_fds = peak_fds.max(count("/proc/self/fd"));
    }
    let threads_after = count("/proc/self/task");
    assert!(
        threads_after <= threads_before + 4,
        "threads grew from {threads_before} to {threads_after}"
    );
    // Each cached pool holds one connection: the database, its WAL and the
    // shared-memory file.
    let bound = fds_before + 32 * 3 + 8;
    assert!(
        peak_fds <= bound,
        "descriptors peaked at {peak_fds} (bound {bound})"
    );
    assert_eq!(m.stats().open_pools, 32);
}
