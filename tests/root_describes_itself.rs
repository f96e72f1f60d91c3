//! The root records its layout and the migrations applied in it
//! (`.tenanted/layout`, `.tenanted/migrations`): a program opened with
//! another layout, or with a migration edited, renamed or reordered after
//! it ran, fails with an error naming both, instead of listing nothing,
//! creating a second copy of a tenant, or calling a tenant current.

mod common;

use common::three_migrations;
use tenanted::{Error, Migration, Migrations, RootConfig, TenantManager};

fn build(root: RootConfig, migrations: Vec<Migration>) -> Result<TenantManager, Error> {
    TenantManager::builder(root, Migrations::new(migrations)).build()
}

/// The root `dir` with tenant `acme`, made by a program of
/// `three_migrations()` (which the root records as applied).
fn acme_applied(dir: &std::path::Path) {
    build(RootConfig::new(dir), three_migrations())
        .unwrap()
        .create_tenant("acme")
        .unwrap();
}

#[test]
fn a_root_refuses_a_program_with_another_layout() {
    let dir = tempfile::tempdir().unwrap();
    let m = build(RootConfig::new(dir.path()), three_migrations()).unwrap();
    m.create_tenant("acme").unwrap();

    let other = RootConfig::new(dir.path()).buckets(16);
    let err = build(other.clone(), three_migrations()).unwrap_err();
    assert!(matches!(err, Error::LayoutMismatch { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("256") && message.contains("16"),
        "{message}"
    );
    assert!(message.contains("buckets(256)"), "{message}");
    // Listing with the wrong layout fails too, instead of finding nothing.
    assert!(matches!(other.tenants(), Err(Error::LayoutMismatch { .. })));
    let other_template = RootConfig::new(dir.path()).template("%{tenant}.db");
    assert!(matches!(
        build(other_template, three_migrations()),
        Err(Error::LayoutMismatch { .. })
    ));
}

#[test]
fn a_root_whose_description_was_lost_is_described_by_its_first_write() {
    let dir = tempfile::tempdir().unwrap();
    let m = build(RootConfig::new(dir.path()), three_migrations()).unwrap();
    m.create_tenant("acme").unwrap();
    drop(m);
    // Its description removed by hand: no description.
    std::fs::remove_file(dir.path().join(".tenanted/layout")).unwrap();
    std::fs::remove_file(dir.path().join(".tenanted/migrations")).unwrap();

    let m = build(RootConfig::new(dir.path()), three_migrations()).unwrap();
    assert_eq!(common::sorted_tenants(&m), ["acme"]);
    assert!(
        !dir.path().join(".tenanted/layout").exists(),
        "a build wrote"
    );
    m.create_tenant("globex").unwrap();
    let layout = std::fs::read_to_string(dir.path().join(".tenanted/layout")).unwrap();
    assert_eq!(
        layout,
        "format 1\ntemplate %{bucket}/%{tenant}/main.sqlite3\nbuckets 256\n"
    );
    let history = std::fs::read_to_string(dir.path().join(".tenanted/migrations")).unwrap();
    assert_eq!(history.lines().count(), 3, "{history}");
    assert!(
        history
            .lines()
            .next()
            .unwrap()
            .ends_with(" 0001_create_notes")
    );
}

#[test]
fn an_edited_migration_is_refused_until_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let root = || RootConfig::new(dir.path());
    acme_applied(dir.path());

    let mut edited = three_migrations();
    edited[1] = Migration::new(
        "0002_add_tags",
        "CREATE TABLE tags (note_id INTEGER NOT NULL, tag TEXT NOT NULL, weight INTEGER);",
    )
    .down("DROP TABLE tags;");
    let err = build(root(), edited.clone()).unwrap_err();
    match &err {
        Error::MigrationChanged { version, .. } => assert_eq!(*version, 2),
        other => panic!("expected MigrationChanged, got {other}"),
    }
    assert!(
        err.to_string().contains("accept_migration_changes"),
        "{err}"
    );

    // A rename is a change too.
    let mut renamed = three_migrations();
    renamed[2] = Migration::new("0003_tag_index", "CREATE INDEX tags_by_tag ON tags (tag);")
        .down("DROP INDEX tags_by_tag;");
    assert!(matches!(
        build(root(), renamed),
        Err(Error::MigrationChanged { version: 3, .. })
    ));

    // Accepted deliberately, then recorded: later programs with it pass,
    // and the original is now the one refused.
    let m = TenantManager::builder(root(), Migrations::new(edited.clone()))
        .accept_migration_changes(true)
        .build()
        .unwrap();
    m.create_tenant("globex").unwrap();
    build(root(), edited).unwrap();
    assert!(matches!(
        build(root(), three_migrations()),
        Err(Error::MigrationChanged { version: 2, .. })
    ));
}

/// A migration plan (`tenanted migrate --dry-run`) is a dry run even when
/// accepting changes: it plans as the run would, and records nothing.
#[test]
fn a_plan_that_accepts_a_changed_migration_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    acme_applied(dir.path());
    let history = dir.path().join(".tenanted/migrations");
    let before = std::fs::read(&history).unwrap();
    let mut edited = three_migrations();
    edited[2] = Migration::new("0003_index_tags", "CREATE INDEX by_tag ON tags (tag);");
    let accepting =
        TenantManager::builder(RootConfig::new(dir.path()), Migrations::new(edited.clone()))
            .accept_migration_changes(true)
            .build()
            .unwrap();

    let plan = accepting
        .migration_plan(&tenanted::MigrateOptions::new())
        .unwrap();
    assert_eq!(plan.unchanged(), 1, "{plan}");
    assert_eq!(std::fs::read(&history).unwrap(), before);
    assert!(matches!(
        build(RootConfig::new(dir.path()), edited),
        Err(Error::MigrationChanged { version: 3, .. })
    ));
}

/// A migration name the root's record cannot hold (a newline made two
/// lines of one entry, a carriage return was lost when read back: every
/// later start failed) is refused before anything is written; a tab,
/// which reads back as written, is not.
#[test]
fn a_migration_name_with_a_line_break_is_refused_before_it_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    acme_applied(dir.path());
    let history = dir.path().join(".tenanted/migrations");
    let before = std::fs::read(&history).unwrap();
    for name in ["0004_a\n5 deadbeefdeadbeef planted", "0004_b\r", "0004_\rc"] {
        let mut more = three_migrations();
        more.push(Migration::new(name, "CREATE TABLE d (x);"));
        let refused = build(RootConfig::new(dir.path()), more).unwrap_err();
        match &refused {
            Error::BadMigrations { path, reason } => {
                assert_eq!(path, &history);
                assert!(
                    reason.contains("line break") && reason.contains("migration 4"),
                    "{reason}"
                );
            }
            other => panic!("expected BadMigrations, got {other}"),
        }
        assert_eq!(std::fs::read(&history).unwrap(), before, "{name:?}");
    }
    build(RootConfig::new(dir.path()), three_migrations()).unwrap();
    let mut tabbed = three_migrations();
    tabbed.push(Migration::new("0004_\tc", "CREATE TABLE d (x);"));
    build(RootConfig::new(dir.path()), tabbed).unwrap();
}

#[test]
fn an_older_program_with_fewer_migrations_agrees() {
    let dir = tempfile::tempdir().unwrap();
    build(RootConfig::new(dir.path()), three_migrations())
        .unwrap()
        .create_tenant("acme")
        .unwrap();
    let older = build(
        RootConfig::new(dir.path()),
        three_migrations()[..2].to_vec(),
    )
    .unwrap();
    older.create_tenant("globex").unwrap();
    // Its create did not shorten the history.
    let history = std::fs::read_to_string(dir.path().join(".tenanted/migrations")).unwrap();
    assert_eq!(history.lines().count(), 3, "{history}");
}

#[test]
fn status_and_migrate_all_check_the_history_again() {
    let dir = tempfile::tempdir().unwrap();
    let m = build(RootConfig::new(dir.path()), three_migrations()).unwrap();
    m.create_tenant("acme").unwrap();
    // Another program records a changed migration 3 meanwhile.
    let mut changed = three_migrations();
    changed[2] = Migration::new("0003_index_tags", "CREATE INDEX by_tag ON tags (tag);");
    TenantManager::builder(RootConfig::new(dir.path()), Migrations::new(changed))
        .accept_migration_changes(true)
        .build()
        .unwrap()
        .create_tenant("globex")
        .unwrap();
    assert!(matches!(
        m.migration_status(),
        Err(Error::MigrationChanged { version: 3, .. })
    ));
    assert!(matches!(
        m.migrate_all(&tenanted::MigrateOptions::new()),
        Err(Error::MigrationChanged { version: 3, .. })
    ));
}

#[test]
fn a_backup_directory_carries_the_history_a_restore_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (a, backups) = (dir.path().join("a"), dir.path().join("backups"));
    let m = build(RootConfig::new(&a), three_migrations()).unwrap();
    m.create_tenant("acme").unwrap();
    m.backup_all(&backups, &tenanted::BackupOptions::new())
        .unwrap();
    let file = RootConfig::new(&backups).database_path("acme").unwrap();
    assert!(backups.join(".tenanted/migrations").is_file());

    // A root whose migration 2 is another one: refused, nothing restored.
    let mut edited = three_migrations();
    edited[1] = Migration::new(
        "0002_add_tags",
        "CREATE TABLE tags (note_id INTEGER NOT NULL, tag TEXT NOT NULL, weight INTEGER);",
    );
    let other = build(RootConfig::new(dir.path().join("b")), edited).unwrap();
    other.create_tenant("globex").unwrap();
    let err = other.restore_tenant("acme", &file).unwrap_err();
    assert!(matches!(err, Error::BadBackup { .. }), "{err}");
    assert!(err.to_string().contains("0002_add_tags"), "{err}");
    assert!(!other.tenant_exists("acme").unwrap());

    // A root with the same migrations takes it.
    let same = build(RootConfig::new(dir.path().join("c")), three_migrations()).unwrap();
    same.restore_tenant("acme", &file).unwrap();
    assert!(same.tenant_exists("acme").unwrap());
}

/// A root written by a newer release (a higher format in its description)
/// is refused before anything is read or created, by the builder and by a
/// listing, saying which formats and what to do; a root in this release's format opens as before.
#[test]
fn a_root_in_a_newer_format_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let m = build(RootConfig::new(dir.path()), three_migrations()).unwrap();
    m.create_tenant("acme").unwrap();
    drop(m);
    let record = dir.path().join(".tenanted/layout");
    let ours = std::fs::read_to_string(&record).unwrap();
    assert!(ours.starts_with("format 1\n"), "{ours}");
    std::fs::write(&record, ours.replace("format 1\n", "format 2\n")).unwrap();

    let err = build(RootConfig::new(dir.path()), three_migrations()).unwrap_err();
    assert!(
        matches!(err, Error::RootFormatTooNew { known: 1, .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("format 2") && message.contains("format 1"),
        "{message}"
    );
    assert!(
        message.contains("newer release") && message.contains("upgrade"),
        "{message}"
    );
    assert!(matches!(
        RootConfig::new(dir.path()).tenants(),
        Err(Error::RootFormatTooNew { .. })
    ));
    assert!(!dir.path().join(".tenanted/migrations.tmp").exists());

    std::fs::write(&record, &ours).unwrap();
    let m = build(RootConfig::new(dir.path()), three_migrations()).unwrap();
    assert_eq!(common::sorted_tenants(&m), ["acme"]);
}

/// A layout record without its format line (cut by hand, or half copied)
/// is named as a damaged record with what to do, by the builder and by a
/// listing, instead of a layout mismatch between two identical layouts
/// (review R20); put back whole, the root opens as before.
#[test]
fn a_layout_record_without_its_format_line_is_named_as_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let m = build(RootConfig::new(dir.path()), three_migrations()).unwrap();
    m.create_tenant("acme").unwrap();
    drop(m);
    let record = dir.path().join(".tenanted/layout");
    let ours = std::fs::read_to_string(&record).unwrap();
    let cut = ours.replace("format 1\n", "");
    for (damaged, why) in [
        (cut.as_bytes(), "no `format N` line"),
        (b"format x\ntemplate t\nbuckets 1\n", "not a number"),
        (b"format 1\nbuckets 1\n", "`template` or `buckets`"),
        // Bytes that are not text were a bare I/O error (an outside probe).
        (
            b"format 1\ntemplate \xff\xfe\nbuckets 1\n",
            "line 2 is not UTF-8",
        ),
    ] {
        std::fs::write(&record, damaged).unwrap();
        let err = build(RootConfig::new(dir.path()), three_migrations()).unwrap_err();
        let Error::BadLayoutRecord { path, reason, .. } = &err else {
            panic!("{damaged:?}: {err}");
        };
        assert_eq!(path, &record);
        assert!(reason.contains(why), "{reason}");
        let message = err.to_string();
        assert!(
            message.contains(&record.display().to_string())
                && message.contains("restore the file from a backup")
                && message.contains("`format 1`"),
            "{message}"
        );
        assert!(matches!(
            RootConfig::new(dir.path()).tenants(),
            Err(Error::BadLayoutRecord { .. })
        ));
    }
    std::fs::write(&record, &ours).unwrap();
    let m = build(RootConfig::new(dir.path()), three_migrations()).unwrap();
    assert_eq!(common::sorted_tenants(&m), ["acme"]);
}

#[test]
fn a_named_pipe_in_place_of_a_root_record_is_named_not_read_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let m = build(RootConfig::new(dir.path()), three_migrations()).unwrap();
    m.create_tenant("acme").unwrap();
    drop(m);
    for record in ["layout", "migrations"] {
        let path = dir.path().join(".tenanted").join(record);
        let ours = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        assert!(made.unwrap().success());
        // On a thread of its own: an open of a pipe for reading would
        // wait for a writer (and a record read as empty would be taken
        // for a root never described).
        let root = dir.path().to_path_buf();
        let built = common::within_a_minute(record, move || {
            build(RootConfig::new(&root), three_migrations()).map(drop)
        });
        let err = built.expect_err(record).to_string();
        assert!(err.contains(&path.display().to_string()), "{record}: {err}");
        assert!(err.contains("not a regular file"), "{record}: {err}");
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, ours).unwrap();
    }
    let m = build(RootConfig::new(dir.path()), three_migrations()).unwrap();
    assert_eq!(common::sorted_tenants(&m), ["acme"]);
}

/// The root itself may be a link: where it lives is the user's to
/// choose; only what is beneath it is never followed. Its record was read
/// without following it, so a second manager on it failed to build.
#[test]
fn a_root_that_is_a_link_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let m = build(RootConfig::new(&link), three_migrations()).unwrap();
    m.create_tenant("acme").unwrap();
    drop(m);
    for root in [&link, &real] {
        let again = build(RootConfig::new(root), three_migrations()).unwrap();
        let listed: Vec<String> = (again.tenants().unwrap())
            .map(|t| t.unwrap().to_string())
            .collect();
        assert_eq!(listed, ["acme"]);
    }
}

/// A migration inserted before ones the root applied (a branch merged
/// late, its migrations renumbered after it) is refused even when changes
/// are accepted: accepting it ran the applied ones again on every tenant
/// past them, never the inserted one there, and called them current (an
/// outside probe). An edit at one version stays acceptable (above).
#[test]
fn a_migration_inserted_before_applied_ones_is_refused_even_when_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let root = || RootConfig::new(dir.path());
    acme_applied(dir.path());
    let old = three_migrations();
    let renumbered = |m: &Migration, n: usize| {
        let name = m.name();
        let (_, stem) = name.split_once('_').unwrap();
        let mut moved = Migration::new(format!("{n:04}_{stem}"), m.up_sql());
        if let Some(down) = m.down_sql() {
            moved = moved.down(down);
        }
        moved
    };
    let inserted = vec![
        old[0].clone(),
        Migration::new("0002_add_flags", "CREATE TABLE flags (x);").down("DROP TABLE flags;"),
        renumbered(&old[1], 3),
        renumbered(&old[2], 4),
    ];
    let err = TenantManager::builder(root(), Migrations::new(inserted))
        .accept_migration_changes(true)
        .build()
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::BadMigrations { .. }), "{message}");
    assert!(message.contains("0002_add_flags"), "{message}");
    assert!(message.contains("was inserted before it"), "{message}");
    // Nothing was recorded: the program the root ran still passes.
    build(root(), three_migrations()).unwrap();
}

/// A damaged record of the migrations applied (a junk line, a line
/// written twice, bytes that are not text) is said to be damaged, naming
/// it, and nothing is changed: a junk line was dropped (and the record
/// rewritten without a word), a line written twice read as the next
/// version, and bytes said "stream did not contain valid UTF-8" with no
/// next step (an outside probe).
#[test]
fn a_damaged_migration_history_is_named_as_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let root = || RootConfig::new(dir.path());
    acme_applied(dir.path());
    let path = dir.path().join(".tenanted/migrations");
    let good = std::fs::read(&path).unwrap();
    let text = String::from_utf8(good.clone()).unwrap();
    let first = text.lines().next().unwrap().to_owned();
    let damages: [Vec<u8>; 3] = [
        format!("{text}99999999999999999999 abc zz\n").into_bytes(),
        format!("{first}\n{text}").into_bytes(),
        vec![0xff, 0xfe, 0x00, 0x41],
    ];
    for damaged in damages {
        std::fs::write(&path, &damaged).unwrap();
        let err = build(root(), three_migrations()).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, Error::BadMigrations { .. }), "{message}");
        assert!(message.contains("is damaged"), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert_eq!(std::fs::read(&path).unwrap(), damaged, "nothing changed");
    }
    // Blank lines hold no entry, and are no damage.
    std::fs::write(&path, format!("{text}\n\n")).unwrap();
    build(root(), three_migrations()).unwrap();
    std::fs::write(&path, good).unwrap();
    build(root(), three_migrations()).unwrap();
}

/// Two migrations of one SQL and one name but for their numbers (a
/// `reindex` run twice): editing the second and accepting it is an edit,
/// not the first one moved (a review: refused as "inserted before it").
#[test]
fn an_accepted_edit_beside_a_twin_migration_is_no_move() {
    let dir = tempfile::tempdir().unwrap();
    let root = || RootConfig::new(dir.path());
    let mut twins = three_migrations();
    twins.push(Migration::new("0004_reindex", "REINDEX;"));
    twins.push(Migration::new("0005_reindex", "REINDEX;"));
    build(root(), twins.clone())
        .unwrap()
        .create_tenant("acme")
        .unwrap();
    twins[4] = Migration::new("0005_reindex", "REINDEX; -- again");
    let m = TenantManager::builder(root(), Migrations::new(twins))
        .accept_migration_changes(true)
        .build()
        .unwrap();
    m.create_tenant("globex").unwrap();
}
