//! The Litestream control-socket client against the real Litestream:
//! register, sync and wait, list, unregister, and the errors a user meets;
//! the replica is checked by restoring it and comparing rows.

mod common;

use std::path::Path;
use std::time::Duration;

use common::litestream::{Litestream, binary, restore, rows_in};
use tenanted::Error;
use tenanted::replication::{ControlSocket, Registered};

fn write_users(db: &Path, from: usize, n: usize) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.pragma_update(None, "journal_mode", "wal").unwrap();
    conn.execute_batch("CREATE TABLE IF NOT EXISTS users (email TEXT)")
        .unwrap();
    for i in from..from + n {
        conn.execute("INSERT INTO users (email) VALUES (?1)", [format!("u{i}")])
            .unwrap();
    }
}

#[test]
fn register_sync_list_unregister_through_the_socket() {
    let Some(bin) = binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let litestream = Litestream::start(&bin, &dir.path().join("ls"));
    let control = ControlSocket::new(&litestream.socket);
    let db = dir.path().join("one.sqlite3");
    write_users(&db, 0, 10);
    let url = format!("file://{}", dir.path().join("replica").display());

    assert_eq!(control.register(&db, &url).unwrap(), Registered::New);
    assert_eq!(
        control.register(&db, &url).unwrap(),
        Registered::AlreadyRegistered
    );
    write_users(&db, 10, 5);
    let synced = control.sync(&db, true, Duration::from_secs(20)).unwrap();
    assert!(
        synced.replicated_txid >= synced.txid && synced.txid > 0,
        "{synced:?}"
    );
    let listed = control.list().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].path, db);
    assert_eq!(listed[0].status, "replicating");
    assert!(listed[0].last_sync_at.is_some(), "{listed:?}");
    let info = control.info().unwrap();
    assert_eq!((info.pid, info.database_count), (litestream.child.id(), 1));

    // Written after the last sync: unregister syncs it before letting go.
    write_users(&db, 15, 3);
    let gone = control.unregister(&db, Duration::from_secs(20)).unwrap();
    assert!(gone.was_registered && gone.txid > synced.txid, "{gone:?}");
    assert!(control.list().unwrap().is_empty());
    assert!(
        !control
            .unregister(&db, Duration::from_secs(5))
            .unwrap()
            .was_registered
    );

    let restored = dir.path().join("restored.sqlite3");
    restore(&bin, &url, &restored, None).unwrap();
    assert_eq!(rows_in(&restored, "users"), rows_in(&db, "users"));
    assert_eq!(rows_in(&restored, "users").len(), 18);
}

#[test]
fn refusals_say_what_litestream_said() {
    let Some(bin) = binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let litestream = Litestream::start(&bin, &dir.path().join("ls"));
    let control = ControlSocket::new(&litestream.socket);
    let db = dir.path().join("one.sqlite3");
    write_users(&db, 0, 1);

    match control.sync(&db, true, Duration::from_secs(5)) {
        Err(Error::Litestream {
            status: 404,
            request,
            message,
            ..
        }) => {
            assert_eq!(request, "sync");
            assert!(message.contains("not found"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let err = control.register(&db, "nosuchscheme://x").unwrap_err();
    assert!(
        matches!(err, Error::Litestream { status: 400, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("register"), "{err}");
    drop(litestream);
    let err = control.list().unwrap_err();
    assert!(matches!(err, Error::LitestreamNotRunning { .. }), "{err:?}");
    assert!(err.to_string().contains("tenanted replicate"), "{err}");
}
