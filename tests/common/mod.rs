//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod child;
pub mod litestream;
pub mod object_store;
pub mod service;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tenanted::{Migration, Migrations, RootConfig, TenantManager, TenantManagerBuilder};

/// The example schema the CLI and examples use.
pub fn schema() -> Migrations {
    Migrations::from_dir(schema_dir()).expect("the example schema loads")
}

pub fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/migrations")
}

/// Three small migrations, each with a down.
pub fn three_migrations() -> Vec<Migration> {
    vec![
        Migration::new(
            "0001_create_notes",
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
        )
        .down("DROP TABLE notes;"),
        Migration::new(
            "0002_add_tags",
            "CREATE TABLE tags (note_id INTEGER NOT NULL, tag TEXT NOT NULL);",
        )
        .down("DROP TABLE tags;"),
        Migration::new("0003_index_tags", "CREATE INDEX tags_by_tag ON tags (tag);")
            .down("DROP INDEX tags_by_tag;"),
    ]
}

pub fn builder(root: &Path) -> TenantManagerBuilder {
    TenantManager::builder(RootConfig::new(root), Migrations::new(three_migrations()))
}

pub fn manager(root: &Path) -> TenantManager {
    builder(root).build().expect("manager builds")
}

/// `builder` with a `connection_init` hook that counts the connections
/// opened, and the count.
pub fn counting_opens(builder: TenantManagerBuilder) -> (TenantManagerBuilder, Arc<AtomicUsize>) {
    let opened = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&opened);
    let builder = builder.connection_init(move |_| {
        count.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    (builder, opened)
}

/// Every file under `dir`, relative, sorted (hidden ones included).
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

/// Files under `dir` except tenanted's own `.tenanted/` directory.
pub fn tenant_files_under(dir: &Path) -> Vec<String> {
    files_under(dir)
        .into_iter()
        .filter(|f| !f.starts_with(".tenanted"))
        .collect()
}

pub fn sorted_tenants(m: &TenantManager) -> Vec<String> {
    let mut names: Vec<String> = m
        .tenants()
        .unwrap()
        .map(|t| t.unwrap().as_str().to_owned())
        .collect();
    names.sort();
    names
}

/// `migrate_all` with `options`, and the lines of the tenants it changed
/// (migrations ran) or failed, sorted by name: the report keeps only the
/// failures, `after_each` sees every line.
pub fn migrate_all_changed(
    m: &TenantManager,
    options: tenanted::MigrateOptions,
) -> (tenanted::MigrationReport, Vec<tenanted::TenantReport>) {
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = Arc::clone(&lines);
    let options = options.after_each(move |line| {
        if line.changed() || !line.succeeded() {
            kept.lock().unwrap().push(line.clone());
        }
    });
    let report = m.migrate_all(&options).unwrap();
    let mut lines = std::mem::take(&mut *lines.lock().unwrap());
    lines.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    (report, lines)
}

/// A tenant with `rows` notes whose last commits are in its `-wal` (the
/// pool keeps a connection open, so nothing checkpoints them away).
pub fn tenant_with_rows_in_its_wal(m: &TenantManager, name: &str, rows: usize) {
    m.create_tenant(name).unwrap();
    let conn = m.connection(name).unwrap();
    for i in 0..rows {
        conn.execute("INSERT INTO notes (body) VALUES (?1)", [format!("row {i}")])
            .unwrap();
    }
    let wal = m
        .root()
        .database_path(name)
        .unwrap()
        .with_file_name("main.sqlite3-wal");
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 32,
        "no frames in {wal:?}"
    );
}

/// Runs `f` on a thread of its own and returns what it returned, or
/// panics naming `what` if it has not returned within a minute: for a call
/// that must not wait forever (a named pipe planted where a file was),
/// which would otherwise hang the test run instead of failing it.
pub fn within_a_minute<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (said, heard) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = said.send(f());
    });
    heard
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what} still waits after a minute"))
}
