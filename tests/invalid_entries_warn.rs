//! `tenants()` skips a directory whose name is not a valid tenant name
//! (restored by hand, say) with a warning that names its path; tenanted's
//! own hidden entries are skipped without one.

mod common;

use std::fmt::{self, Write as _};
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tenanted::{Migrations, RootConfig, TenantManager};
use tracing::field::Field;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Records every event's level and fields as text.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<(Level, String)>>>);

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut text = String::new();
        event.record(&mut |field: &Field, value: &dyn fmt::Debug| {
            let _ = write!(text, "{}={value:?} ", field.name());
        });
        let level = *event.metadata().level();
        self.0.lock().unwrap().push((level, text));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Capture {
    fn warnings(&self) -> Vec<String> {
        let events = self.0.lock().unwrap();
        events
            .iter()
            .filter(|(level, _)| *level == Level::WARN)
            .map(|(_, text)| text.clone())
            .collect()
    }
}

fn listed_with(m: &TenantManager, capture: &Capture) -> Vec<String> {
    tracing::subscriber::with_default(capture.clone(), || common::sorted_tenants(m))
}

fn plant(db: &Path) {
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    fs::write(db, b"restored by hand").unwrap();
}

#[test]
fn a_directory_with_an_invalid_tenant_name_is_skipped_with_a_warning_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    m.create_tenant("acme").unwrap();
    let bad = dir.path().join("00/bad~name");
    plant(&bad.join("main.sqlite3"));
    // Hidden: tenanted's own kind of name, skipped quietly.
    plant(&dir.path().join("00/.scratch/main.sqlite3"));

    let capture = Capture::default();
    assert_eq!(listed_with(&m, &capture), ["acme"]);
    let warnings = capture.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let shown = bad.display().to_string();
    assert!(
        warnings[0].contains(&shown),
        "{warnings:?} should name {shown}"
    );
    assert!(warnings[0].contains("'~'"), "{warnings:?} should say why");
}

#[test]
fn tenanteds_own_directory_at_the_tenant_level_is_not_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let root = RootConfig::new(dir.path())
        .template("%{tenant}/main.sqlite3")
        .buckets(1);
    let m = TenantManager::builder(root, Migrations::new(common::three_migrations()))
        .build()
        .unwrap();
    m.create_tenant("acme").unwrap();
    assert!(dir.path().join(tenanted::INTERNAL_DIR).is_dir());
    let bad = dir.path().join("not valid");
    plant(&bad.join("main.sqlite3"));

    let capture = Capture::default();
    assert_eq!(listed_with(&m, &capture), ["acme"]);
    let warnings = capture.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(&bad.display().to_string()),
        "{warnings:?}"
    );
}

#[test]
fn a_tenant_moved_into_a_wrong_bucket_is_warned_about_naming_its_own_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::manager(dir.path());
    m.create_tenant("acme").unwrap();
    m.create_tenant("globex").unwrap();
    // globex's directory moved by hand into acme's bucket.
    let acme_bucket = format!("{:02x}", tenanted::bucket_of("acme", 256));
    let globex_bucket = format!("{:02x}", tenanted::bucket_of("globex", 256));
    assert_ne!(acme_bucket, globex_bucket);
    let moved = dir.path().join(&acme_bucket).join("globex");
    fs::rename(dir.path().join(&globex_bucket).join("globex"), &moved).unwrap();

    let capture = Capture::default();
    assert_eq!(listed_with(&m, &capture), ["acme"]);
    let warnings = capture.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(&moved.display().to_string())
            && warnings[0].contains(&format!("belongs in bucket {globex_bucket}")),
        "{warnings:?}"
    );
    // status, migrate and cleanup walk on worker threads: tests/cli.rs
    // (`a_tenant_in_the_wrong_bucket_is_warned_about_by_every_walk...`)
    // reads their warnings on the CLI's stderr.
}
