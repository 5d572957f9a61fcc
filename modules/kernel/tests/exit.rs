//! A process that ends while other threads still talk to PostgreSQL ends cleanly. A server
//! stops with its relays, listeners and pool threads still running, and a test binary exits
//! with every app it started still up: none of them may die of a signal on the way out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{process::Command, time::Duration};

use diesel::{RunQueryDsl, connection::SimpleConnection};
use kernel::{
    db::{Backend, Db, DbConnection},
    testing::TestDatabase,
};

/// Processes started; before `db::establish_postgres` started OpenSSL itself, 8 to 11 in 100
/// died of SIGSEGV.
const RUNS: usize = 100;

/// Set, to the database's URL, in the process `busy_until_exit` runs in.
const CHILD: &str = "TESSERA_EXIT_TEST_DATABASE";

/// In the child: eight threads query PostgreSQL over the kernel's pool without a pause while
/// the main thread exits the process.
#[test]
fn busy_until_exit() {
    let Ok(url) = std::env::var(CHILD) else {
        return;
    };
    let mut settings = TestDatabase::sqlite().settings();
    settings.url = url;
    let db = Db::connect(&settings).unwrap();
    for _ in 0..8 {
        let db = db.clone();
        std::thread::spawn(move || {
            loop {
                let mut conn = db.get().unwrap();
                if let DbConnection::Postgresql(pg) = &mut *conn {
                    pg.batch_execute("SELECT 1").unwrap();
                    let _ = diesel::sql_query("SELECT pg_sleep(0)").execute(pg);
                }
            }
        });
    }
    std::thread::sleep(Duration::from_millis(30));
    std::process::exit(0);
}

#[test]
fn a_process_ending_while_its_threads_query_postgres_exits_cleanly() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let Some(database) = TestDatabase::new(Backend::Postgres) else {
        return;
    };
    let mut signalled = Vec::new();
    for _ in 0..RUNS {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "busy_until_exit",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, database.url())
            .output()
            .unwrap();
        if !out.status.success() {
            signalled.push(format!(
                "{:?}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        signalled.is_empty(),
        "{} of {RUNS} processes did not exit cleanly: {signalled:#?}",
        signalled.len()
    );
}
