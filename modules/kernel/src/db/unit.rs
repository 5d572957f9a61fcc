//! Units of work: one transaction across the stores of several modules that live in one
//! process on one database.
//!
//! [`Db::unit`] runs an async body on one blocking-pool thread, with one pooled connection
//! holding an open write transaction (on SQLite, this process's writer turn too). While the
//! body runs, every [`Db::run`] of the same [`Db`] polled on that thread — whichever module's
//! store called it — runs its closure on that connection, inline, instead of taking a
//! connection and a thread of its own; a [`write_tx`](super::write_tx) inside it runs in the
//! unit's transaction instead of opening one. The unit commits once when the body returns
//! `Ok`, and rolls back on an error, on a failed write inside it, or on a panic.
//!
//! Work may also be held back for the unit's end ([`before_commit`]): on PostgreSQL the bus
//! writes every event the unit published in one statement just before the commit (one round
//! trip instead of one per event and delivery), and forgets them when the unit rolls back.
//!
//! On SQLite with the writer queue, units run on the database's writer thread instead, in a
//! savepoint each of a transaction that commits the units queued together at once
//! ([`super::group`]); what a unit sees and when it is answered stay the same.
//!
//! A store on another database never joins: its calls go to the blocking pool as usual.
//! Work the body hands to another task (`tokio::spawn`) does not join either, and on SQLite it
//! would wait for the writer turn the unit holds: a unit's body awaits only its own calls.
//! A module whose in-process service may join a unit opened by another module says so with
//! [`Db::admit`]; the caller asks [`Db::admits`] before it relies on one commit (a neighbour
//! reached over HTTP commits on its own, so the caller must keep its compensating protocol).

use std::{
    cell::{Cell, RefCell},
    future::Future,
    sync::Mutex,
};

use anyhow::anyhow;
use diesel::connection::TransactionManager;

use super::{
    Db, DbConnection, PooledConnection, connect,
    retry::{CONFLICT_ATTEMPTS, Retryable, is_retryable_error, pause},
    writer::{Turn, WriterScope, begin_write},
};

thread_local! {
    /// The connection of the unit running on this thread, and which [`Db`] it belongs to
    /// (`None` inside a joined closure, which holds it meanwhile).
    static AMBIENT: RefCell<Option<(usize, PooledConnection)>> = const { RefCell::new(None) };
    /// The [`Db`] of the unit running on this thread, 0 when none.
    static ACTIVE: Cell<usize> = const { Cell::new(0) };
    /// Set when a write inside the unit failed: its statements may have half-applied (SQLite
    /// keeps them; PostgreSQL aborts the transaction), so the unit can only roll back.
    static DOOMED: Cell<bool> = const { Cell::new(false) };
    /// What the unit running on this thread does once it has committed (see [`after_commit`]).
    static AFTER_COMMIT: RefCell<Vec<Box<dyn FnOnce()>>> = const { RefCell::new(Vec::new()) };
    /// The address of the unit's connection while a joined closure holds it, else 0: what a
    /// writer asks [`before_commit`] about is the unit's connection, not another database's.
    static LENT: Cell<usize> = const { Cell::new(0) };
    /// What the unit running on this thread writes just before it commits (see
    /// [`before_commit`]).
    static BEFORE_COMMIT: RefCell<Vec<&'static BeforeCommit>> = const { RefCell::new(Vec::new()) };
}

/// Work a unit of work does in its transaction just before it commits, and how to drop it
/// when the unit rolls back instead. `flush` writes what its owner held back for the unit
/// (the bus: every event of the unit in one statement); `discard` forgets it.
#[derive(Debug)]
pub(crate) struct BeforeCommit {
    pub flush: fn(&mut DbConnection) -> anyhow::Result<()>,
    pub discard: fn(),
}

/// Which modules' in-process services join units on a [`Db`] (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Members(Mutex<Vec<&'static str>>);

impl Members {
    /// The identity of the database these members belong to: their address.
    pub(super) fn key(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }
}

impl Db {
    /// The identity of this database handle (and its clones), which units are keyed by.
    fn key(&self) -> usize {
        self.members.key()
    }

    /// Declares that `module`'s in-process service runs its database work through this
    /// [`Db`], so a [`Db::unit`] opened on it includes that work.
    pub fn admit(&self, module: &'static str) {
        let mut members = self
            .members
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !members.contains(&module) {
            members.push(module);
        }
    }

    /// Whether `module` declared with [`Db::admit`] that it joins units on this [`Db`].
    pub fn admits(&self, module: &str) -> bool {
        self.members
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&module)
    }

    /// Runs `body` as one unit of work (see the module docs): everything it does on this
    /// database, through any module's store, commits in one transaction or not at all. A
    /// body that loses a lock conflict (a deadlock, a serialization failure) is rolled back
    /// and run again, up to [`CONFLICT_ATTEMPTS`] times in all.
    ///
    /// # Errors
    /// Whatever `body` returns (everything rolled back), or an unexpected error when no
    /// connection is free, the transaction cannot begin or commit, a write inside failed
    /// while the body still returned `Ok`, or the body panicked.
    pub async fn unit<T, E, F, Fut>(&self, mut body: F) -> Result<T, E>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>>,
        T: Send + 'static,
        E: From<anyhow::Error> + Retryable + Send + 'static,
    {
        if let Some(group) = &self.group {
            return group.submit(body).await;
        }
        let db = self.clone();
        let runtime = tokio::runtime::Handle::current();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let _writer = WriterScope::enter(db.writer.clone());
            // The unit's `BEGIN` tells whether the pooled connection still works.
            let mut conn = connect::unprobed(|| db.get())?;
            let mut probed = false;
            let mut attempt = 1;
            loop {
                let (back, outcome, begun) = db.attempt(conn, &runtime, &mut body);
                conn = back.ok_or_else(|| anyhow!("the unit of work lost its connection"))?;
                if !begun && !probed && db.backend == super::Backend::Postgres {
                    // Nothing ran. The server may have dropped the connection (a restart):
                    // once more on a connection the pool has checked.
                    drop(conn);
                    conn = db.get()?;
                    probed = true;
                    continue;
                }
                match outcome {
                    Err(e) if attempt < CONFLICT_ATTEMPTS && is_retryable_error(&e) => {
                        tracing::debug!(attempt, "unit of work lost a conflict; running it again");
                        std::thread::sleep(pause(attempt));
                        attempt += 1;
                    }
                    outcome => return outcome,
                }
            }
        })
        .await
        .map_err(|e| E::from(anyhow!("unit of work failed: {e}")))?
    }

    /// One run of a unit's body in its own transaction; hands the connection back (unless a
    /// panic took it: then the pool discards it, which rolls back), and whether the
    /// transaction began.
    fn attempt<T, E, F, Fut>(
        &self,
        mut conn: PooledConnection,
        runtime: &tokio::runtime::Handle,
        body: &mut F,
    ) -> (Option<PooledConnection>, Result<T, E>, bool)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<anyhow::Error>,
    {
        let queue = match &*conn {
            DbConnection::Sqlite(_) => self.writer.clone(),
            DbConnection::Postgresql(_) => None,
        };
        // Held until the transaction ends, like a `write_tx`'s.
        let _turn = Turn::take(queue.as_ref());
        if let Err(e) = begin_write(&mut conn) {
            let error = anyhow::Error::new(e).context("cannot begin a transaction");
            return (Some(conn), Err(E::from(error)), false);
        }
        let scope = Scope::install(self.key(), conn);
        let result = runtime.block_on(body());
        let (mut conn, doomed) = scope.finish();
        let Some(c) = conn.as_deref_mut() else {
            return (
                conn,
                Err(E::from(anyhow!("the unit of work lost its connection"))),
                true,
            );
        };
        if result.is_err() || doomed {
            discard_before_commit();
        }
        let outcome = match result {
            Ok(_) if doomed => {
                let _ = DbConnection::rollback_transaction(c);
                Err(E::from(anyhow!(
                    "a write inside the unit of work failed but the unit went on"
                )))
            }
            // What the unit held back goes in last, then the commit.
            Ok(value) => match run_before_commit(c).and_then(|()| {
                DbConnection::commit_transaction(c)
                    .map_err(|e| anyhow::Error::new(e).context("cannot commit"))
            }) {
                Ok(()) => {
                    for then in take_after_commit() {
                        then();
                    }
                    Ok(value)
                }
                Err(e) => {
                    let _ = DbConnection::rollback_transaction(c);
                    Err(E::from(e))
                }
            },
            Err(e) => match DbConnection::rollback_transaction(c) {
                Ok(()) => Err(e),
                Err(rollback) => Err(E::from(
                    anyhow::Error::new(rollback).context("cannot roll back"),
                )),
            },
        };
        // Rolled back: what was to follow the commit never happens.
        AFTER_COMMIT.with(|a| a.borrow_mut().clear());
        (conn, outcome, true)
    }
}

/// The unit installed on this thread; dropping it (a panic in the body) uninstalls it.
pub(super) struct Scope {
    key: usize,
}

impl Scope {
    pub(super) fn install(key: usize, conn: PooledConnection) -> Self {
        AMBIENT.with(|a| *a.borrow_mut() = Some((key, conn)));
        ACTIVE.with(|a| a.set(key));
        DOOMED.with(|d| d.set(false));
        AFTER_COMMIT.with(|a| a.borrow_mut().clear());
        discard_before_commit();
        Self { key }
    }

    /// Uninstalls the unit: its connection (if a joined closure did not take it away) and
    /// whether a write inside it failed.
    pub(super) fn finish(self) -> (Option<PooledConnection>, bool) {
        let conn = uninstall(self.key);
        std::mem::forget(self);
        (conn, DOOMED.with(Cell::get))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        // Unwinding: the connection, still in its transaction, is dropped here and the pool
        // discards it (`DbManager::has_broken`), which rolls the transaction back.
        drop(uninstall(self.key));
        discard_before_commit();
    }
}

fn uninstall(key: usize) -> Option<PooledConnection> {
    ACTIVE.with(|a| a.set(0));
    LENT.with(|l| l.set(0));
    AMBIENT
        .with(|a| a.borrow_mut().take())
        .and_then(|(k, conn)| (k == key).then_some(conn))
}

/// Runs `work` on the connection of the unit of `db` running on this thread, if there is
/// one; otherwise hands `work` back.
pub(super) fn join<T, E, F>(db: &Db, work: F) -> Result<Result<T, E>, F>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<anyhow::Error>,
{
    let key = db.key();
    if ACTIVE.with(Cell::get) != key {
        return Err(work);
    }
    let Some((k, mut conn)) = AMBIENT.with(|a| a.borrow_mut().take()) else {
        return Ok(Err(E::from(anyhow!(
            "the unit of work's connection is in use by another closure"
        ))));
    };
    LENT.with(|l| l.set(address(&conn)));
    let result = work(&mut conn);
    LENT.with(|l| l.set(0));
    AMBIENT.with(|a| *a.borrow_mut() = Some((k, conn)));
    Ok(result)
}

/// Whether a unit runs on this thread (a [`write_tx`](super::write_tx) on a connection
/// already in a transaction then belongs to it).
pub(super) fn active() -> bool {
    ACTIVE.with(Cell::get) != 0
}

/// Runs `then` once the work of this thread is durable: at once, or, inside a unit, when the
/// unit has committed (never, when it rolls back). A relay woken before the commit would
/// find nothing and sleep a poll interval.
pub(crate) fn after_commit(then: impl FnOnce() + 'static) {
    if active() {
        AFTER_COMMIT.with(|a| a.borrow_mut().push(Box::new(then)));
    } else {
        then();
    }
}

fn address(conn: &DbConnection) -> usize {
    std::ptr::from_ref(conn) as usize
}

/// Has `work` done just before the unit commits, if `conn` is the connection of the unit
/// running on this thread (once, however often it is asked for); `false` otherwise (no unit
/// runs here, or `conn` is another database's: the caller then writes at once).
pub(crate) fn before_commit(conn: &DbConnection, work: &'static BeforeCommit) -> bool {
    if !active() || LENT.with(Cell::get) != address(conn) {
        return false;
    }
    BEFORE_COMMIT.with_borrow_mut(|hooks| {
        if !hooks.iter().any(|h| std::ptr::eq(*h, work)) {
            hooks.push(work);
        }
    });
    true
}

/// Runs the before-commit work of the unit that just ran on this thread, on its connection
/// (still in its transaction). On an error the rest is discarded: the unit rolls back.
pub(super) fn run_before_commit(conn: &mut DbConnection) -> anyhow::Result<()> {
    let hooks = BEFORE_COMMIT.with_borrow_mut(std::mem::take);
    for (n, hook) in hooks.iter().enumerate() {
        if let Err(e) = (hook.flush)(conn) {
            for rest in &hooks[n..] {
                (rest.discard)();
            }
            return Err(e.context("cannot write what the unit of work held back"));
        }
    }
    Ok(())
}

/// Forgets the before-commit work of the unit on this thread (it rolls back).
pub(super) fn discard_before_commit() {
    for hook in BEFORE_COMMIT.with_borrow_mut(std::mem::take) {
        (hook.discard)();
    }
}

/// What the unit that just ran on this thread is to do once it has committed.
pub(super) fn take_after_commit() -> Vec<Box<dyn FnOnce()>> {
    AFTER_COMMIT.with(|a| std::mem::take(&mut *a.borrow_mut()))
}

/// Marks the unit running on this thread as one that can only roll back.
pub(super) fn doom() {
    DOOMED.with(|d| d.set(true));
}

#[cfg(test)]
#[path = "unit_tests.rs"]
mod tests;
