//! Units of work on SQLite (and PostgreSQL when `TESSERA_TEST_DATABASE_URL` is set): what
//! joins, what commits, and that a failure or a panic leaves nothing behind and frees the
//! writer turn.

use diesel::{connection::SimpleConnection, prelude::*};

use super::*;
use crate::{
    db::{Backend, write_tx},
    testing::TestDatabase,
};

/// A fresh database of `backend` with table `n`, or `None` when that backend is not at hand.
fn fresh(backend: Backend) -> Option<(TestDatabase, Db)> {
    let database = TestDatabase::new(backend)?;
    let db = open(&database.settings());
    Some((database, db))
}

/// The database `settings` name, with table `n`.
fn open(settings: &crate::config::DatabaseSettings) -> Db {
    let db = Db::connect(settings).unwrap();
    db.get()
        .unwrap()
        .batch_execute("CREATE TABLE n (v BIGINT NOT NULL)")
        .unwrap();
    db
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn count(db: &Db) -> i64 {
    diesel::sql_query("SELECT COUNT(*) AS n FROM n")
        .get_result::<Count>(&mut *db.get().unwrap())
        .unwrap()
        .n
}

/// One insert the way a module's store writes: `Db::run` with a write transaction inside.
async fn insert(db: &Db, v: i64) -> anyhow::Result<()> {
    db.run(move |conn| {
        write_tx(conn, |conn| {
            conn.batch_execute(&format!("INSERT INTO n VALUES ({v})"))
                .map_err(anyhow::Error::from)
        })
    })
    .await
}

async fn both(test: impl AsyncFn(Backend)) {
    test(Backend::Sqlite).await;
    test(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_commits_every_joined_write_at_once_or_none_of_them() {
    both(async |backend| {
        let Some((_database, db)) = fresh(backend) else {
            return;
        };
        let (a, b) = (db.clone(), db.clone());
        let seen_inside = db
            .unit(move || {
                let db = a.clone();
                async move {
                    insert(&db, 1).await?;
                    insert(&db, 2).await?;
                    // Reads inside see the unit's own writes.
                    db.run(|conn| {
                        diesel::sql_query("SELECT COUNT(*) AS n FROM n")
                            .get_result::<Count>(conn)
                            .map_err(anyhow::Error::from)
                    })
                    .await
                }
            })
            .await
            .unwrap();
        assert_eq!((seen_inside.n, count(&db)), (2, 2));

        let failed: anyhow::Result<()> = db
            .unit(move || {
                let db = b.clone();
                async move {
                    insert(&db, 3).await?;
                    anyhow::bail!("refused after writing")
                }
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(count(&db), 2, "the refused unit wrote nothing");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_inside_a_unit_that_goes_on_still_rolls_it_back() {
    both(async |backend| {
        let Some((_database, db)) = fresh(backend) else {
            return;
        };
        let d = db.clone();
        let outcome: anyhow::Result<()> = db
            .unit(move || {
                let db = d.clone();
                async move {
                    insert(&db, 1).await?;
                    // The error is swallowed, but its write may have half-applied.
                    let _ = db
                        .run(|conn| {
                            write_tx(conn, |conn| {
                                conn.batch_execute("INSERT INTO n VALUES (2)")?;
                                conn.batch_execute("INSERT INTO missing VALUES (1)")
                                    .map_err(anyhow::Error::from)
                            })
                        })
                        .await;
                    Ok(())
                }
            })
            .await;
        assert!(outcome.is_err());
        assert_eq!(count(&db), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_unit_leaves_nothing_and_frees_the_writer_for_the_next() {
    both(async |backend| {
        let Some((_database, db)) = fresh(backend) else {
            return;
        };
        let d = db.clone();
        let outcome: anyhow::Result<()> = db
            .unit(move || {
                let db = d.clone();
                async move {
                    insert(&db, 1).await?;
                    panic!("a bug in the middle of a unit");
                }
            })
            .await;
        assert!(outcome.is_err());
        // Bounded, so a writer turn left taken fails the test instead of hanging it.
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), insert(&db, 2)).await;
        next.expect("the writer is free again").unwrap();
        assert_eq!(count(&db), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_on_another_database_commits_on_its_own() {
    let (here, there) = (TestDatabase::sqlite(), TestDatabase::sqlite());
    let (db, other) = (open(&here.settings()), open(&there.settings()));
    let (d, o) = (db.clone(), other.clone());
    let outcome: anyhow::Result<()> = db
        .unit(move || {
            let (db, other) = (d.clone(), o.clone());
            async move {
                insert(&db, 1).await?;
                insert(&other, 1).await?;
                anyhow::bail!("refused")
            }
        })
        .await;
    assert!(outcome.is_err());
    assert_eq!((count(&db), count(&other)), (0, 1));
    assert!(!db.admits("product"));
    db.admit("product");
    assert!(db.clone().admits("product") && !other.admits("product"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_on_a_pooled_connection_the_server_dropped_runs_on_a_fresh_one() {
    // PostgreSQL only: a unit does not ask the server about its pooled connection before it
    // begins; when the server has dropped it (a restart, an idle timeout), the `BEGIN` fails
    // and the unit must run on another connection rather than fail the caller's request.
    let Some(database) = TestDatabase::postgres() else {
        return;
    };
    let mut settings = database.settings();
    settings.pool_size = 1;
    let db = open(&settings);
    #[derive(QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let pid = diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(&mut *db.get().unwrap())
        .unwrap()
        .pid;
    let mut admin = crate::db::establish_postgres(database.url()).unwrap();
    diesel::sql_query(format!("SELECT pg_terminate_backend({pid})"))
        .execute(&mut admin)
        .unwrap();
    let unit_db = db.clone();
    db.unit(move || {
        let db = unit_db.clone();
        async move { insert(&db, 7).await }
    })
    .await
    .expect("the unit ran on a fresh connection");
    assert_eq!(count(&db), 1);
}

/// How many rows hold each value, in value order.
fn values(db: &Db) -> Vec<(i64, i64)> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        v: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query("SELECT v, COUNT(*) AS n FROM n GROUP BY v ORDER BY v")
        .load::<Row>(&mut *db.get().unwrap())
        .unwrap()
        .into_iter()
        .map(|r| (r.v, r.n))
        .collect()
}

/// Units queued together share a commit on SQLite; each still stands alone: the failing ones
/// (an error, a failed write they went on from, a panic inside a store call, which takes the
/// batch's connection down with it) leave nothing, every other one is written exactly once,
/// and a unit's caller hears "done" only when its write is visible to everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_committed_together_succeed_and_fail_one_by_one() {
    both(async |backend| {
        let Some((_database, db)) = fresh(backend) else {
            return;
        };
        let units: Vec<_> = (0..60_i64)
            .map(|v| {
                let db = db.clone();
                tokio::spawn(async move {
                    let d = db.clone();
                    let outcome: anyhow::Result<()> = db
                        .unit(move || {
                            let db = d.clone();
                            async move {
                                insert(&db, v).await?;
                                match v % 10 {
                                    3 => anyhow::bail!("refused after writing"),
                                    5 => {
                                        let _ = db
                                            .run(|conn| {
                                                write_tx(conn, |conn| {
                                                    conn.batch_execute(
                                                        "INSERT INTO missing VALUES (1)",
                                                    )
                                                    .map_err(anyhow::Error::from)
                                                })
                                            })
                                            .await;
                                    }
                                    7 => {
                                        db.run(|_conn| -> anyhow::Result<()> {
                                            panic!("a bug inside a store call")
                                        })
                                        .await?;
                                    }
                                    _ => {}
                                }
                                Ok(())
                            }
                        })
                        .await;
                    // Answered: then committed, and seen by any other connection.
                    let seen = outcome.is_ok()
                        && diesel::sql_query(format!("SELECT COUNT(*) AS n FROM n WHERE v = {v}"))
                            .get_result::<Count>(&mut *db.get().unwrap())
                            .unwrap()
                            .n
                            == 1;
                    (v, outcome.is_ok(), seen)
                })
            })
            .collect();
        for unit in units {
            let (v, ok, seen) = unit.await.unwrap();
            let fails = matches!(v % 10, 3 | 5 | 7);
            assert_eq!(ok, !fails, "{backend:?}: unit {v}");
            assert_eq!(
                seen, !fails,
                "{backend:?}: unit {v} is visible once answered"
            );
        }
        let expected: Vec<(i64, i64)> = (0..60)
            .filter(|v| !matches!(v % 10, 3 | 5 | 7))
            .map(|v| (v, 1))
            .collect();
        assert_eq!(values(&db), expected, "{backend:?}");
    })
    .await;
}

/// On SQLite, a unit queued while the pool's every connection belongs to a writer that has
/// yet to take the write turn still commits: the thread that commits queued units waits for a
/// connection before it takes the turn, as every writer does. The other way round it held the
/// turn waiting for a connection while the writer held the connection waiting for the turn,
/// until the pool gave up and the unit failed ("no database connection available", a 503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_queued_while_the_pool_waits_for_the_write_turn_still_commits() {
    let database = TestDatabase::sqlite();
    let mut settings = database.settings();
    settings.pool_size = 1;
    settings.connect_timeout_secs = 1;
    let db = open(&settings);
    // The pool's one connection, held by a store that begins its write only once the unit
    // below has been queued.
    let holder = db.clone();
    let store = tokio::spawn(async move {
        holder
            .run(|conn| {
                std::thread::sleep(std::time::Duration::from_millis(300));
                write_tx(conn, |conn| {
                    conn.batch_execute("INSERT INTO n VALUES (1)")
                        .map_err(anyhow::Error::from)
                })
            })
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let inner = db.clone();
    let unit: anyhow::Result<()> = db
        .unit(move || {
            let db = inner.clone();
            async move { insert(&db, 2).await }
        })
        .await;
    unit.expect("the queued unit commits");
    store.await.unwrap().expect("the store's write commits");
    assert_eq!(count(&db), 2);
}
