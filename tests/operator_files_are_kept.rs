//! Files the operator put in a tenant's own directory (a copy of the
//! database made by hand before a risky restore, notes) are not
//! tenanted's: a destroy, a replacing restore or a re-key would remove
//! or swap out the whole directory with them, so each refuses, naming
//! them, and changes nothing. An outside probe found `restore --replace`,
//! `destroy` and `rekey` deleting them.

mod common;

use common::*;
use tenanted::{Error, RestoreOptions};

#[test]
fn a_destroy_or_replacing_restore_refuses_while_the_operators_files_are_there() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let m = manager(&root);
    m.create_tenant("acme").unwrap();
    let backup = dir.path().join("acme.bak");
    m.backup_tenant("acme", &backup).unwrap();
    let db = m.root().database_path("acme").unwrap();
    let own = db.parent().unwrap();
    std::fs::copy(&db, own.join("main.sqlite3.bak")).unwrap();
    std::fs::write(own.join("NOTES.txt"), "why acme is special").unwrap();

    let destroyed = m.destroy_tenant("acme");
    let Err(Error::ForeignFiles { files, .. }) = &destroyed else {
        panic!("{destroyed:?}")
    };
    assert_eq!(files.len(), 2, "{files:?}");
    let said = destroyed.unwrap_err().to_string();
    assert!(
        said.contains("main.sqlite3.bak") && said.contains("move them out"),
        "{said}"
    );
    let replacing = RestoreOptions::new().replace(true);
    let restored = m.restore_tenant_opts("acme", &backup, &replacing);
    assert!(
        matches!(restored, Err(Error::ForeignFiles { .. })),
        "{restored:?}"
    );
    // Nothing changed: the tenant, its files and the operator's.
    assert!(m.tenant_exists("acme").unwrap());
    drop(m.connection("acme").unwrap());
    assert!(own.join("NOTES.txt").is_file() && own.join("main.sqlite3.bak").is_file());

    // Moved out, both go through.
    std::fs::rename(own.join("NOTES.txt"), dir.path().join("NOTES.txt")).unwrap();
    std::fs::rename(own.join("main.sqlite3.bak"), dir.path().join("copy")).unwrap();
    m.restore_tenant_opts("acme", &backup, &replacing).unwrap();
    m.destroy_tenant("acme").unwrap();
    assert!(!m.tenant_exists("acme").unwrap());
    assert!(dir.path().join("NOTES.txt").is_file());
}

/// A directory under one of SQLite's names for the tenant's files
/// (`main.sqlite3-wal/`, `-shm/`, `-journal/`) is not SQLite's either: a
/// destroy refuses, naming it, and nothing the sweep does afterwards
/// touches it, in a layout with a directory per tenant and in a flat one.
/// (An outside probe: the destroy fenced the tenant off and failed to
/// unlink the "WAL"; `tenanted cleanup` then finished the destroy and
/// removed the directory with the notes in it. A second review: the flat
/// layout was not looked at.)
#[test]
fn a_directory_at_a_sidecars_name_is_the_operators_and_kept() {
    for template in [None, Some("%{bucket}/%{tenant}.sqlite3")] {
        for suffix in ["-wal", "-shm", "-journal"] {
            let dir = tempfile::tempdir().unwrap();
            let mut root = tenanted::RootConfig::new(dir.path());
            if let Some(template) = template {
                root = root.template(template);
            }
            let m = tenanted::TenantManager::builder(root, schema())
                .build()
                .unwrap();
            m.create_tenant("globex").unwrap();
            let db = m.root().database_path("globex").unwrap();
            let sidecar = format!("{}{suffix}", db.file_name().unwrap().to_str().unwrap());
            let planted = db.with_file_name(&sidecar);
            std::fs::create_dir(&planted).unwrap();
            std::fs::write(planted.join("notes.txt"), "the operator's").unwrap();
            let destroyed = m.destroy_tenant("globex");
            let Err(Error::ForeignFiles { files, .. }) = &destroyed else {
                panic!("{template:?} {sidecar}: {destroyed:?}")
            };
            assert_eq!(files, &[std::path::PathBuf::from(&sidecar)], "{sidecar}");
            m.remove_debris().unwrap();
            assert!(
                planted.join("notes.txt").is_file(),
                "{template:?} {sidecar}"
            );
            assert!(
                m.tenants()
                    .unwrap()
                    .any(|t| t.unwrap().as_str() == "globex")
            );
            std::fs::remove_dir_all(&planted).unwrap();
            m.destroy_tenant("globex").unwrap();
        }
    }
}
