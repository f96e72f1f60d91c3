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
                       "ahead": 0, "unreadable": 0, "not_listed": 0, "listing_errors": 0},
        })
    );

    let plan = m.migration_plan(&MigrateOptions::new()).unwrap();
    assert_eq!(
        serde_json::to_value(&plan).unwrap(),
        json!({
            "dry_run": true,
            "target_version": 3,
            "tenants": [{"tenant": "acme", "from": 2, "to": 3, "would": "apply",
                         "migrations": ["0003_index_tags"], "error": null}],
            "listing_errors": [],
            "totals": {"tenants": 1, "up": 1, "down": 0, "unchanged": 0, "unreadable": 0,
                       "migrations_up": 1, "steps_down": 0},
        })
    );

    // The report keeps the failed tenants' lines; every line goes to
    // after_each, and the CLI lists them all under "tenants".
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let each = std::sync::Arc::clone(&lines);
    let options = MigrateOptions::new().after_each(move |l| each.lock().unwrap().push(l.clone()));
    let report = m.migrate_all(&options).unwrap().clone();
    let line = serde_json::to_value(&lines.lock().unwrap()[0]).unwrap();
    assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);
    // Milliseconds to the microsecond: at most three decimals, never
    // the 0.0029349999999999997 of a float product.
    let text = line["duration_ms"].to_string();
    let decimals = text.split_once('.').map_or(0, |(_, d)| d.len());
    assert!(decimals <= 3, "duration_ms is {text}");
    let mut line = line;
    line["duration_ms"] = json!(0);
    assert_eq!(
        line,
        json!({"tenant": "acme", "from": 2, "to": 3, "applied": ["0003_index_tags"],
               "duration_ms": 0, "error": null})
    );
    let mut value = serde_json::to_value(&report).unwrap();
    assert!(value["duration_ms"].as_f64().unwrap() >= 0.0);
    value["duration_ms"] = json!(0);
    assert_eq!(
        value,
        json!({
            "target_version": 3,
            "tenants": [],
            "skipped": [],
            "cancelled": false,
            "stopped_by_failures": false,
            "listing_errors": [],
            "duration_ms": 0,
            "totals": {"tenants": 1, "succeeded": 1, "migrated": 1, "up_to_date": 0,
                       "failed": 0, "skipped": 0},
        })
    );
}
