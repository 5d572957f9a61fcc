//! Group commit on SQLite: this process's units of work ([`Db::unit`]) queue for one writer
//! thread, which runs whatever has queued as one transaction, each unit in a savepoint of its
//! own, and commits once for the lot.
//!
//! SQLite has one writer at a time, so units wait for each other anyway. Waiting in a queue
//! that one thread drains costs less than each unit taking a pooled connection and a blocking
//! thread, waiting for the writer turn, and paying its own `BEGIN` and `COMMIT` (the WAL
//! frames of every page it touched, written again by the next unit that touches them). Under
//! load a commit carries many units; alone, a unit commits as before.
//!
//! What a unit sees does not change: its body runs with the unit's connection installed
//! ([`super::unit`]), so its stores' calls join it; when it fails (an error, a failed write
//! it went on from, a panic) its savepoint is rolled back and nothing it did is committed,
//! and its caller hears so at once. A unit that succeeded is answered only once the batch
//! has committed; its `after_commit` work runs then. When the batch cannot commit, every unit
//! in it gets that error, as a unit whose own `COMMIT` failed did. When the batch loses its
//! connection (a unit panicked inside a store call, which drops it), the units that had
//! already run are run again in the next batch: nothing of theirs was committed.

use std::{
    collections::VecDeque,
    future::Future,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex, mpsc},
};

use anyhow::anyhow;
use diesel::connection::TransactionManager;

use super::{
    DbConnection, DbPool, PooledConnection, unit,
    writer::{Turn, begin_write},
};
use crate::error::Shortage;

/// The most units one commit carries: the first to queue waits for no more than this many.
const MAX_BATCH: usize = 64;

/// The queue of a SQLite [`super::Db`]'s units and the thread that drains it.
#[derive(Debug)]
pub(super) struct Group {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl Group {
    /// Starts the writer thread for units of the database with `key`, on connections of
    /// `pool`, taking the process's writer turn (`writer`) for each batch.
    pub(super) fn start(key: usize, pool: DbPool, writer: Arc<Mutex<()>>) -> anyhow::Result<Self> {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("tessera-sqlite-writer".into())
            .spawn(move || {
                Writer {
                    key,
                    pool,
                    writer,
                    queue,
                }
                .serve();
            })
            .map_err(|e| anyhow!("cannot start the SQLite writer thread: {e}"))?;
        Ok(Self { jobs })
    }

    /// Queues `body` as a unit of work and waits for its outcome.
    pub(super) async fn submit<T, E, F, Fut>(&self, body: F) -> Result<T, E>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>>,
        T: Send + 'static,
        E: From<anyhow::Error> + Send + 'static,
    {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        let job = Box::new(UnitJob {
            body,
            runtime: tokio::runtime::Handle::current(),
            span: tracing::Span::current(),
            outcome: None,
            reply,
        });
        if self.jobs.send(job).is_err() {
            return Err(E::from(anyhow!("the SQLite writer thread has stopped")));
        }
        outcome.await.unwrap_or_else(|_| {
            Err(E::from(anyhow!(
                "the SQLite writer thread dropped the unit"
            )))
        })
    }
}

/// One queued unit, its types erased for the queue.
trait Job: Send {
    /// Runs the body once, on the unit connection installed on this thread; keeps its
    /// outcome and says whether it was `Ok`. A panic in the body goes through.
    fn run(&mut self) -> bool;
    /// Replaces the outcome with `error` (the unit failed after all).
    fn fail(&mut self, error: anyhow::Error);
    /// Forgets the outcome: the unit runs again.
    fn reset(&mut self);
    /// Answers the caller.
    fn reply(self: Box<Self>);
}

struct UnitJob<T, E, F> {
    body: F,
    runtime: tokio::runtime::Handle,
    span: tracing::Span,
    outcome: Option<Result<T, E>>,
    reply: tokio::sync::oneshot::Sender<Result<T, E>>,
}

impl<T, E, F, Fut> Job for UnitJob<T, E, F>
where
    F: FnMut() -> Fut + Send,
    Fut: Future<Output = Result<T, E>>,
    T: Send,
    E: From<anyhow::Error> + Send,
{
    fn run(&mut self) -> bool {
        let _entered = self.span.enter();
        let outcome = self.runtime.block_on((self.body)());
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn fail(&mut self, error: anyhow::Error) {
        self.outcome = Some(Err(E::from(error)));
    }

    fn reset(&mut self) {
        self.outcome = None;
    }

    fn reply(self: Box<Self>) {
        let outcome = self
            .outcome
            .unwrap_or_else(|| Err(E::from(anyhow!("the unit of work did not run"))));
        // A caller that stopped waiting (its request timed out) no longer needs the answer.
        let _ = self.reply.send(outcome);
    }
}

/// A unit that ran and waits for its batch to commit, with what it does after.
struct Ran {
    job: Box<dyn Job>,
    after: Vec<Box<dyn FnOnce()>>,
}

/// The writer thread's state.
struct Writer {
    key: usize,
    pool: DbPool,
    writer: Arc<Mutex<()>>,
    queue: mpsc::Receiver<Box<dyn Job>>,
}

impl Writer {
    /// Drains the queue until every sender (every clone of the database handle) is gone.
    fn serve(self) {
        let mut waiting: VecDeque<Box<dyn Job>> = VecDeque::new();
        loop {
            if waiting.is_empty() {
                match self.queue.recv() {
                    Ok(job) => waiting.push_back(job),
                    Err(_) => return,
                }
            }
            while waiting.len() < MAX_BATCH {
                match self.queue.try_recv() {
                    Ok(job) => waiting.push_back(job),
                    Err(_) => break,
                }
            }
            let take = waiting.len().min(MAX_BATCH);
            let batch: Vec<Box<dyn Job>> = waiting.drain(..take).collect();
            // Units that ran in a batch that lost its connection go first next time.
            for job in self.batch(batch).into_iter().rev() {
                waiting.push_front(job);
            }
        }
    }

    /// Runs `batch` in one transaction and answers every unit in it, except those to run
    /// again (returned) because the batch lost its connection before it could commit.
    fn batch(&self, batch: Vec<Box<dyn Job>>) -> Vec<Box<dyn Job>> {
        // The connection first, then the turn, in the order every other writer takes them
        // (`write_tx`, `unit`): the other way round, writers holding every connection of the
        // pool waited for the turn while this thread held it waiting for a connection, until
        // the pool's checkout timed out and the whole batch was answered 503.
        let mut conn = match self.pool.get() {
            Ok(conn) => conn,
            Err(e) => {
                let message = e.to_string();
                fail_all(batch, || {
                    anyhow::Error::new(Shortage::new(
                        "no database connection available",
                        std::io::Error::other(message.clone()),
                    ))
                });
                return Vec::new();
            }
        };
        let _turn = Turn::take(Some(&self.writer));
        if let Err(e) = begin_write(&mut conn) {
            let message = format!("cannot begin a transaction: {e}");
            fail_all(batch, || anyhow!("{message}"));
            return Vec::new();
        }
        let mut ran: Vec<Ran> = Vec::with_capacity(batch.len());
        let mut jobs = batch.into_iter();
        while let Some(job) = jobs.next() {
            match self.one(conn, job) {
                Step::Ran(back, done) => {
                    conn = back;
                    ran.push(done);
                }
                Step::Answered(back) => conn = back,
                Step::Lost => {
                    // Gone with everything the batch wrote: the units that ran go again,
                    // with those not run yet.
                    return ran
                        .into_iter()
                        .map(|r| r.job)
                        .chain(jobs)
                        .map(|mut job| {
                            job.reset();
                            job
                        })
                        .collect();
                }
            }
        }
        match DbConnection::commit_transaction(&mut conn) {
            Ok(()) => {
                for Ran { job, after } in ran {
                    for then in after {
                        then();
                    }
                    job.reply();
                }
            }
            Err(e) => {
                let _ = DbConnection::rollback_transaction(&mut conn);
                let message = format!("cannot commit: {e}");
                fail_all(ran.into_iter().map(|r| r.job), || anyhow!("{message}"));
            }
        }
        Vec::new()
    }

    /// Runs one unit in a savepoint of the batch's transaction. A unit that failed is rolled
    /// back to its savepoint and answered here.
    fn one(&self, mut conn: PooledConnection, mut job: Box<dyn Job>) -> Step {
        // Inside the batch's transaction, diesel's nested transaction is a savepoint.
        if let Err(e) = DbConnection::begin_transaction(&mut conn) {
            job.fail(anyhow::Error::new(e).context("cannot begin a unit of work"));
            job.reply();
            return Step::Lost;
        }
        let scope = unit::Scope::install(self.key, conn);
        let ran = std::panic::catch_unwind(AssertUnwindSafe(|| job.run()));
        let after = unit::take_after_commit();
        let (conn, doomed) = scope.finish();
        // `Some` when the unit failed, with the error that replaces its outcome (none when
        // the body's own error is the outcome).
        let failure = match ran {
            Ok(true) if doomed => Some(Some(anyhow!(
                "a write inside the unit of work failed but the unit went on"
            ))),
            Ok(true) => None,
            Ok(false) => Some(None),
            Err(_) => Some(Some(anyhow!("unit of work failed: it panicked"))),
        };
        let Some(mut conn) = conn else {
            // A store call inside panicked and took the connection with it.
            job.fail(
                failure
                    .flatten()
                    .unwrap_or_else(|| anyhow!("the unit of work lost its connection")),
            );
            job.reply();
            return Step::Lost;
        };
        // Nothing holds work back for a unit on SQLite today; should something, it is
        // written in the unit's savepoint (or the unit fails).
        let failure = match failure {
            None => unit::run_before_commit(&mut conn).err().map(Some),
            failed => {
                unit::discard_before_commit();
                failed
            }
        };
        match failure {
            None => match DbConnection::commit_transaction(&mut conn) {
                Ok(()) => Step::Ran(conn, Ran { job, after }),
                Err(e) => {
                    job.fail(anyhow::Error::new(e).context("cannot release the unit's savepoint"));
                    job.reply();
                    Step::Lost
                }
            },
            Some(error) => {
                if let Some(error) = error {
                    job.fail(error);
                }
                job.reply();
                match DbConnection::rollback_transaction(&mut conn) {
                    Ok(()) => Step::Answered(conn),
                    // Its writes cannot be told from the others': the batch goes again.
                    Err(_) => Step::Lost,
                }
            }
        }
    }
}

/// What became of one unit in a batch.
enum Step {
    /// It ran and waits for the batch's commit.
    Ran(PooledConnection, Ran),
    /// It failed, was rolled back to its savepoint and answered.
    Answered(PooledConnection),
    /// It failed and was answered, and the batch's transaction is lost with it.
    Lost,
}

/// Answers each of `jobs` with an error of its own from `error`.
fn fail_all(jobs: impl IntoIterator<Item = Box<dyn Job>>, error: impl Fn() -> anyhow::Error) {
    for mut job in jobs {
        job.fail(error());
        job.reply();
    }
}
