//! The report types serialize (the `serde` feature) to the documented
//! `--json` formats, and clone.

mod common;

use serde_json::json;
use tenanted::{MigrateOptions, Migrations, RootConfig, TenantManager};

#[test]
fn reports_serialize_to_the_documented_format_and_clone() {
    let dir = tempfile::tempdir().unwrap();
    let two: Vec<_> = common::three_migrations().into_iter().take(2).collect();
    TenantManager::builder(RootConfig::new(dir.path()), Migrations::new(two))
        .build()
        .unwrap()
        .create_tenant("acme")
        .unwrap();
    let m = common::manager(dir.path());

    let status = m.migration_status().unwrap().clone();
    assert_eq!(
        serde_json::to_value(&status).unwrap(),
        json!({
            "latest_version": 3,
            "tenants": [{"tenant": "acme", "version": 2, "pending": ["0003_index_tags"],
                         "state": "pending", "error": null}],
            "listing_errors": [],
            "totals": {"tenants": 1, "current": 0, "pending_tenants": 1, "pending_migrations": 1,
                       "ahead": 0, "unreadable": 0, "listing_errors": 0},
        })
    );

    let report = m.migrate_all(&MigrateOptions::new()).unwrap().clone();
    let mut value = serde_json::to_value(&report).unwrap();
    assert!(value["tenants"][0]["duration_ms"].as_f64().unwrap() >= 0.0);
    value["tenants"][0]["duration_ms"] = json!(0);
    assert_eq!(
        value,
        json!({
            "target_version": 3,
            "tenants": [{"tenant": "acme", "from": 2, "to": 3, "applied": ["0003_index_tags"],
                         "duration_ms": 0, "error": null}],
            "skipped": [],
            "cancelled": false,
            "listing_errors": [],
            "totals": {"tenants": 1, "succeeded": 1, "migrated": 1, "up_to_date": 0,
                       "failed": 0, "skipped": 0},
        })
    );
}
