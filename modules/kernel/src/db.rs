//! One pool type over SQLite and PostgreSQL, the migrations runner, and the bridge that runs
//! blocking diesel calls off the async executor.
//!
//! This file holds the connection type and the [`Db`] handle every store uses; the rest is
//! one concern a file: opening connections (`connect`), write transactions and SQLite's
//! writer queue (`writer`), one transaction across modules' stores (`unit`), migrations
//! (`migrate`), retrying lost lock conflicts (`retry`), running a module's store on the
//! blocking pool (`blocking`), and keyset pages (`page`).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, anyhow};
use diesel::{
    connection::SimpleConnection,
    pg::PgConnection,
    prelude::*,
    result::{DatabaseErrorKind, Error as DieselError},
    sqlite::SqliteConnection,
};
use diesel_migrations::EmbeddedMigrations;
use tracing::Instrument;

use crate::config::DatabaseSettings;

mod blocking;
mod connect;
mod group;
mod migrate;
mod page;
mod prepared;
mod retry;
mod unit;
mod writer;

pub use blocking::BlockingStore;
pub use connect::{DbManager, DbTarget, establish_postgres, redact_url};
pub use page::{KeysetPage, page_total};
pub use prepared::{Bind, Binds, Prepared, prepared};
pub use retry::{
    CONFLICT_ATTEMPTS, Retryable, in_transaction, is_retryable, is_retryable_db_error,
    retry_on_conflict,
};
pub(crate) use unit::{BeforeCommit, after_commit, before_commit};
use writer::WriterScope;
pub use writer::write_tx;

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
    /// SQLite with the writer queue: the thread that runs this process's units of work,
    /// several to a commit (`group`).
    group: Option<Arc<group::Group>>,
    /// Which modules join units of work on this database; its address is the database's
    /// identity for units (`unit`).
    members: Arc<unit::Members>,
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
        let members: Arc<unit::Members> = Arc::default();
        let group = match &writer {
            Some(writer) => Some(Arc::new(group::Group::start(
                members.key(),
                pool.clone(),
                writer.clone(),
            )?)),
            None => None,
        };
        Ok(Self {
            pool,
            manager,
            backend,
            writer,
            group,
            members,
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

    /// A connection of its own, outside the pool, for a session that lives as long as its
    /// user (the bus's `LISTEN`).
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub fn open_unpooled(&self) -> anyhow::Result<DbConnection> {
        self.manager
            .open()
            .map_err(|e| anyhow!("cannot connect to the database: {e}"))
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
        // Inside a unit of work on this database: its connection and transaction, inline.
        let work = match unit::join(self, work) {
            Ok(joined) => return joined,
            Err(work) => work,
        };
        let pool = self.pool.clone();
        let writer = self.writer.clone();
        // In a trace, the work is a span of its own (on the blocking thread, under the
        // caller's); outside one (the relay's polls) it starts no trace.
        let span = if crate::telemetry::in_trace() {
            let system = match self.backend {
                Backend::Sqlite => "sqlite",
                Backend::Postgres => "postgresql",
            };
            tracing::info_span!("db", db.system.name = system)
        } else {
            tracing::Span::current()
        };
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

/// Whether `e` is a unique-constraint violation (a duplicate key), which stores turn into
/// their module's "already exists" error.
pub fn is_unique_violation(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
