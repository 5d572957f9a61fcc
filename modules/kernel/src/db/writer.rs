//! Write transactions ([`write_tx`]) and, on SQLite, the in-process writer queue they wait
//! in: this process's writers take turns on a mutex, woken the moment the previous write
//! commits, instead of polling SQLite's lock through its busy handler.

use std::{
    cell::{Cell, RefCell},
    sync::{Arc, Mutex, MutexGuard},
};

use anyhow::Context;
use diesel::connection::{AnsiTransactionManager, TransactionManager};

use super::{DbConnection, retry::in_transaction, unit};

thread_local! {
    /// The writer queue of the [`Db`] whose [`Db::run`] is executing on this thread.
    static WRITER: RefCell<Option<Arc<Mutex<()>>>> = const { RefCell::new(None) };
    /// Whether this thread holds its writer queue (a nested `write_tx` must not wait for
    /// itself; SQLite refuses the nested `BEGIN` with an error instead).
    static HOLDING: Cell<bool> = const { Cell::new(false) };
}

/// This thread's turn in the writer queue, if it runs under [`Db::run`] on SQLite.
pub(super) struct Turn<'a>(Option<MutexGuard<'a, ()>>);

impl<'a> Turn<'a> {
    pub(super) fn take(queue: Option<&'a Arc<Mutex<()>>>) -> Self {
        if HOLDING.with(Cell::get) {
            return Self(None);
        }
        let guard = queue.map(|q| q.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        if guard.is_some() {
            HOLDING.with(|h| h.set(true));
        }
        Self(guard)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if self.0.take().is_some() {
            HOLDING.with(|h| h.set(false));
        }
    }
}

/// Sets [`WRITER`] for the duration of one [`Db::run`] closure.
pub(super) struct WriterScope(Option<Arc<Mutex<()>>>);

impl WriterScope {
    pub(super) fn enter(writer: Option<Arc<Mutex<()>>>) -> Self {
        Self(WRITER.with(|w| w.replace(writer)))
    }
}

impl Drop for WriterScope {
    fn drop(&mut self) {
        let previous = self.0.take();
        WRITER.with(|w| w.replace(previous));
    }
}

/// Runs `work` in a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so the write lock
/// is taken up front and concurrent writers wait for `busy_timeout` instead of failing on a
/// read-to-write upgrade; PostgreSQL uses its default (read committed) transaction, where
/// every write path relies on conditional `UPDATE … WHERE` rather than read-then-write.
///
/// Inside a unit of work ([`Db::unit`](super::Db::unit)), on its connection, `work` runs in
/// the unit's transaction instead: it commits with the unit, and if it fails the unit can only
/// roll back.
///
/// # Errors
/// Whatever `work` returns (the transaction is rolled back), or an unexpected error when
/// the transaction cannot begin or commit.
pub fn write_tx<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<anyhow::Error>,
{
    if unit::active() && in_transaction(conn) {
        let result = work(conn);
        if result.is_err() {
            unit::doom();
        }
        return result;
    }
    // Held until the transaction ends (SQLite under `Db::run` only; see `Db::writer`).
    let queue = match conn {
        DbConnection::Sqlite(_) => WRITER.with(|w| w.borrow().clone()),
        DbConnection::Postgresql(_) => None,
    };
    let _turn = Turn::take(queue.as_ref());
    begin_write(conn).context("cannot begin a transaction")?;
    match work(conn) {
        Ok(value) => {
            if let Err(e) = DbConnection::commit_transaction(conn) {
                let _ = DbConnection::rollback_transaction(conn);
                return Err(E::from(anyhow::Error::new(e).context("cannot commit")));
            }
            Ok(value)
        }
        Err(err) => {
            DbConnection::rollback_transaction(conn).context("cannot roll back")?;
            Err(err)
        }
    }
}

/// Begins a write transaction (see [`write_tx`]): `BEGIN IMMEDIATE` on SQLite, which takes the
/// write lock up front, the default `BEGIN` on PostgreSQL.
pub(super) fn begin_write(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        DbConnection::Postgresql(c) => AnsiTransactionManager::begin_transaction(c),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use diesel::{connection::SimpleConnection, prelude::*};

    use super::*;
    use crate::{config::DatabaseSettings, db::Db};

    /// The in-process writer queue serializes this process's writers without losing any, and
    /// a nested write transaction fails (as SQLite makes it) instead of waiting for itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_sqlite_writers_all_commit_and_nesting_fails_fast() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&DatabaseSettings {
            url: format!("sqlite://{}", dir.path().join("q.db").display()),
            pool_size: 4,
            connect_timeout_secs: 2,
            sqlite_busy_timeout_ms: 1000,
            sqlite_writer_queue: true,
        })
        .unwrap();
        db.run(|conn| {
            conn.batch_execute("CREATE TABLE n (v INTEGER NOT NULL)")
                .map_err(anyhow::Error::from)
        })
        .await
        .unwrap();
        let writers: Vec<_> = (0..50)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    db.run(move |conn| {
                        write_tx(conn, |conn| {
                            conn.batch_execute(&format!("INSERT INTO n VALUES ({i})"))
                                .map_err(anyhow::Error::from)
                        })
                    })
                    .await
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap().unwrap();
        }
        // On a thread of its own, so that a deadlock fails the test instead of hanging it.
        let (done, outcome) = std::sync::mpsc::channel();
        let nested_db = db.clone();
        std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
                return;
            };
            let result = runtime.block_on(nested_db.run(|conn| {
                write_tx(conn, |conn| {
                    write_tx(conn, |c| {
                        c.batch_execute("SELECT 1").map_err(anyhow::Error::from)
                    })
                })
            }));
            let _ = done.send(result.is_err());
        });
        let failed = outcome
            .recv_timeout(Duration::from_secs(5))
            .expect("a nested write transaction must not wait for itself");
        assert!(failed);
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let count: Count = db
            .run(|conn| {
                diesel::sql_query("SELECT COUNT(*) AS n FROM n")
                    .get_result(conn)
                    .map_err(anyhow::Error::from)
            })
            .await
            .unwrap();
        assert_eq!(count.n, 50);
    }
}
