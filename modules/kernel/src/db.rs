//! One pool type over SQLite and PostgreSQL, the migrations runner, and the bridge that runs
//! blocking diesel calls off the async executor.
//!
//! The backend is chosen by the URL scheme, never by trial: diesel's derived
//! `MultiConnection::establish` tries PostgreSQL then SQLite, which would turn a mistyped
//! `postgres://` URL into a new SQLite file of that name.

use std::{
    cell::{Cell, RefCell},
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use anyhow::{Context, anyhow, bail};
use diesel::{
    connection::{AnsiTransactionManager, SimpleConnection, TransactionManager},
    pg::PgConnection,
    prelude::*,
    sqlite::SqliteConnection,
};
use diesel_migrations::EmbeddedMigrations;
use tracing::Instrument;

use crate::config::DatabaseSettings;

mod migrate;
mod retry;

pub use retry::{
    CONFLICT_ATTEMPTS, Retryable, is_retryable, is_retryable_db_error, retry_on_conflict,
};

/// A connection to whichever database the URL named.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

impl std::fmt::Debug for DbConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Postgresql(_) => "DbConnection::Postgresql",
            Self::Sqlite(_) => "DbConnection::Sqlite",
        })
    }
}

/// Which database a URL points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbTarget {
    Postgres(String),
    Sqlite(PathBuf),
}

impl DbTarget {
    /// # Errors
    /// An unknown scheme, or a SQLite URL that names no file (`:memory:` would give every
    /// pooled connection its own empty database).
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        let path = if let Some(rest) = url.strip_prefix("sqlite://") {
            rest
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            rest
        } else if url.contains("://") {
            bail!(
                "unsupported database URL {}: use sqlite://<path> or postgres://…",
                redact_url(url)
            );
        } else {
            url
        };
        if path.is_empty() || path.contains(":memory:") || path.starts_with("file::memory") {
            bail!(
                "database URL {url:?} names no file: use sqlite://<path> (a pooled in-memory database would not be shared)"
            );
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }
}

/// Replaces the password of a URL with `***` so it can be logged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// r2d2 manager that opens the right backend and applies SQLite's per-connection pragmas.
#[derive(Debug, Clone)]
pub struct DbManager {
    target: DbTarget,
    connect_timeout: Duration,
    busy_timeout_ms: u64,
}

impl DbManager {
    fn open(&self) -> Result<DbConnection, diesel::r2d2::Error> {
        match &self.target {
            DbTarget::Postgres(url) => {
                let url = with_connect_timeout(url, self.connect_timeout);
                PgConnection::establish(&url)
                    .map(DbConnection::Postgresql)
                    .map_err(diesel::r2d2::Error::ConnectionError)
            }
            DbTarget::Sqlite(path) => {
                let path = path.to_string_lossy();
                let mut conn = SqliteConnection::establish(&path)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // WAL is set once in `connect`; these are per connection.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                    self.busy_timeout_ms
                ))
                .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

fn with_connect_timeout(url: &str, timeout: Duration) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}connect_timeout={}", timeout.as_secs().max(1))
}

impl r2d2::ManageConnection for DbManager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        self.open()
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        // A connection left inside a transaction (a panic mid-closure) must not be reused.
        std::thread::panicking()
            || !matches!(
                DbConnection::transaction_manager_status_mut(conn).transaction_depth(),
                Ok(None)
            )
    }
}

pub type DbPool = r2d2::Pool<DbManager>;
pub type PooledConnection = r2d2::PooledConnection<DbManager>;

/// Each module's embedded migrations, one set per backend. Version names are unique across
/// modules so all sets can share diesel's bookkeeping table.
#[derive(Clone, Copy)]
pub struct Migrations {
    pub module: &'static str,
    pub sqlite: &'static EmbeddedMigrations,
    pub postgres: &'static EmbeddedMigrations,
}

impl std::fmt::Debug for Migrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migrations")
            .field("module", &self.module)
            .finish_non_exhaustive()
    }
}

/// The shared handle every module's store uses: a pool plus the executor bridge.
#[derive(Clone, Debug)]
pub struct Db {
    pool: DbPool,
    /// Opens connections outside the pool (the migrations' own session).
    manager: DbManager,
    backend: Backend,
    /// SQLite only: this process's writers queue here, woken the moment the previous write
    /// commits, instead of polling SQLite's lock through its busy handler (which sleeps in
    /// growing steps and made the write tail ~100 ms under load). Other processes on the same
    /// file are still kept apart by SQLite's own lock and `busy_timeout`.
    writer: Option<Arc<Mutex<()>>>,
}

thread_local! {
    /// The writer queue of the [`Db`] whose [`Db::run`] is executing on this thread.
    static WRITER: RefCell<Option<Arc<Mutex<()>>>> = const { RefCell::new(None) };
    /// Whether this thread holds its writer queue (a nested `write_tx` must not wait for
    /// itself; SQLite refuses the nested `BEGIN` with an error instead).
    static HOLDING: Cell<bool> = const { Cell::new(false) };
}

/// This thread's turn in the writer queue, if it runs under [`Db::run`] on SQLite.
struct Turn<'a>(Option<MutexGuard<'a, ()>>);

impl<'a> Turn<'a> {
    fn take(queue: Option<&'a Arc<Mutex<()>>>) -> Self {
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
struct WriterScope(Option<Arc<Mutex<()>>>);

impl WriterScope {
    fn enter(writer: Option<Arc<Mutex<()>>>) -> Self {
        Self(WRITER.with(|w| w.replace(writer)))
    }
}

impl Drop for WriterScope {
    fn drop(&mut self) {
        let previous = self.0.take();
        WRITER.with(|w| w.replace(previous));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Db {
    /// Opens the database named by the settings: checks one connection first so the error
    /// names the real cause, switches SQLite to WAL, then builds the pool.
    ///
    /// # Errors
    /// An unsupported URL, an unreachable or refusing server, or a SQLite file that cannot be
    /// created — each within `connect_timeout_secs`.
    pub fn connect(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let target = DbTarget::parse(&settings.url)?;
        let timeout = Duration::from_secs(settings.connect_timeout_secs.max(1));
        let manager = DbManager {
            target: target.clone(),
            connect_timeout: timeout,
            busy_timeout_ms: settings.sqlite_busy_timeout_ms,
        };
        let backend = match &target {
            DbTarget::Postgres(_) => Backend::Postgres,
            DbTarget::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).with_context(|| {
                        format!("cannot create the database directory {}", parent.display())
                    })?;
                }
                Backend::Sqlite
            }
        };
        let mut first = manager.open().map_err(|e| {
            anyhow!(
                "cannot connect to the database at {}: {}",
                redact_url(&settings.url),
                e.to_string().trim()
            )
        })?;
        if let DbConnection::Sqlite(conn) = &mut first {
            conn.batch_execute("PRAGMA journal_mode = WAL;")
                .context("cannot switch SQLite to WAL")?;
        }
        drop(first);
        let pool = r2d2::Pool::builder()
            .max_size(settings.pool_size)
            .min_idle(Some(1))
            .connection_timeout(timeout)
            .build(manager.clone())
            .with_context(|| {
                format!(
                    "cannot open a connection pool to {}",
                    redact_url(&settings.url)
                )
            })?;
        let writer = (backend == Backend::Sqlite && settings.sqlite_writer_queue)
            .then(|| Arc::new(Mutex::new(())));
        Ok(Self {
            pool,
            manager,
            backend,
            writer,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool's size limit, open connections and idle ones among them (for the metrics).
    pub fn pool_usage(&self) -> (u32, u32, u32) {
        let state = self.pool.state();
        (
            self.pool.max_size(),
            state.connections,
            state.idle_connections,
        )
    }

    /// A connection for blocking code (CLI commands, tests, start-up).
    ///
    /// # Errors
    /// When no connection frees up within the pool's timeout.
    pub fn get(&self) -> anyhow::Result<PooledConnection> {
        self.pool.get().map_err(crate::error::no_connection)
    }

    /// Runs blocking database work on tokio's blocking pool, inside the caller's span.
    ///
    /// # Errors
    /// Whatever `work` returns, or an unexpected error when no connection is available or
    /// the work panicked.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<anyhow::Error> + Send + 'static,
    {
        let pool = self.pool.clone();
        let writer = self.writer.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let _writer = WriterScope::enter(writer);
            let mut conn = pool.get().map_err(crate::error::no_connection)?;
            work(&mut conn)
        })
        .instrument(tracing::Span::current())
        .await
        .map_err(|e| E::from(anyhow!("database task failed: {e}")))?
    }

    /// `SELECT 1` through the pool, for readiness checks.
    ///
    /// # Errors
    /// When the database does not answer.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.run(|conn| {
            conn.batch_execute("SELECT 1")
                .context("database did not answer")
        })
        .await
    }
}

/// Runs `work` in a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so the write lock
/// is taken up front and concurrent writers wait for `busy_timeout` instead of failing on a
/// read-to-write upgrade; PostgreSQL uses its default (read committed) transaction, where
/// every write path relies on conditional `UPDATE … WHERE` rather than read-then-write.
///
/// # Errors
/// Whatever `work` returns (the transaction is rolled back), or an unexpected error when
/// the transaction cannot begin or commit.
pub fn write_tx<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<anyhow::Error>,
{
    // Held until the transaction ends (SQLite under `Db::run` only; see `Db::writer`).
    let queue = match conn {
        DbConnection::Sqlite(_) => WRITER.with(|w| w.borrow().clone()),
        DbConnection::Postgresql(_) => None,
    };
    let _turn = Turn::take(queue.as_ref());
    let begun = match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        DbConnection::Postgresql(c) => AnsiTransactionManager::begin_transaction(c),
    };
    begun.context("cannot begin a transaction")?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_backend_by_scheme() {
        assert_eq!(
            DbTarget::parse("sqlite://./data/x.db").unwrap(),
            DbTarget::Sqlite("./data/x.db".into())
        );
        assert_eq!(
            DbTarget::parse("sqlite:///tmp/x.db").unwrap(),
            DbTarget::Sqlite("/tmp/x.db".into())
        );
        assert!(matches!(
            DbTarget::parse("postgres://u@h/db").unwrap(),
            DbTarget::Postgres(_)
        ));
        assert!(DbTarget::parse("mysql://u@h/db").is_err());
        assert!(DbTarget::parse("sqlite://:memory:").is_err());
    }

    #[test]
    fn redaction_hides_only_the_password() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/t?x=1"),
            "postgres://app:***@db:5432/t?x=1"
        );
        assert_eq!(redact_url("postgres://app@db/t"), "postgres://app@db/t");
        assert_eq!(redact_url("sqlite://./a.db"), "sqlite://./a.db");
    }

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

    #[test]
    fn sqlite_file_and_directory_are_created_on_first_connect() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/app.db");
        let settings = DatabaseSettings {
            url: format!("sqlite://{}", path.display()),
            pool_size: 2,
            connect_timeout_secs: 2,
            sqlite_busy_timeout_ms: 1000,
            sqlite_writer_queue: true,
        };
        let db = Db::connect(&settings).unwrap();
        assert!(path.exists());
        let mut conn = db.get().unwrap();
        let mode: Vec<JournalMode> = diesel::sql_query("PRAGMA journal_mode")
            .load(&mut *conn)
            .unwrap();
        assert_eq!(mode[0].journal_mode, "wal");
    }

    #[derive(QueryableByName)]
    struct JournalMode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
}
