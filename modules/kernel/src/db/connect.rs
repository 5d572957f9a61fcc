//! Opening connections: which backend a URL names ([`DbTarget`]), the r2d2 manager that
//! opens it with SQLite's per-connection pragmas ([`DbManager`]), and a URL fit for a log.
//!
//! The backend is chosen by the URL scheme, never by trial: diesel's derived
//! `MultiConnection::establish` tries PostgreSQL then SQLite, which would turn a mistyped
//! `postgres://` URL into a new SQLite file of that name.

use std::{cell::Cell, path::PathBuf, time::Duration};

use anyhow::bail;
use diesel::{
    connection::{SimpleConnection, TransactionManager},
    pg::PgConnection,
    prelude::*,
    sqlite::SqliteConnection,
};

use super::DbConnection;

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

thread_local! {
    /// Set while this thread checks out a connection whose first statement is a `BEGIN`
    /// ([`unprobed`]).
    static UNPROBED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `checkout` without the PostgreSQL round trip that asks a pooled connection whether the
/// server still holds it. For a caller whose first statement is a `BEGIN`: if the connection
/// is dead, that `BEGIN` fails having done nothing, and the caller checks out again the usual
/// way (which discards dead connections).
pub(super) fn unprobed<T>(checkout: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            UNPROBED.with(|u| u.set(false));
        }
    }
    UNPROBED.with(|u| u.set(true));
    let _reset = Reset;
    checkout()
}

/// Opens a PostgreSQL connection. Every connection of ours is opened here, so OpenSSL, which
/// libpq encrypts with, is started first without its exit-time clean-up: OpenSSL registers
/// one with `atexit` when libpq starts it, and a process that exits while another thread is
/// in a TLS call (a relay, the pool opening a connection) then died of SIGSEGV on a freed
/// lock (8 to 11 in 100 processes exiting with eight threads busy on PostgreSQL; a test binary
/// exiting with its apps still up, once in CI; `tests/exit.rs`).
/// The operating system reclaims what the clean-up would have freed.
///
/// # Errors
/// When the server cannot be reached or refuses the connection.
pub fn establish_postgres(url: &str) -> ConnectionResult<PgConnection> {
    openssl_sys::init();
    PgConnection::establish(url)
}

/// r2d2 manager that opens the right backend and applies SQLite's per-connection pragmas.
#[derive(Debug, Clone)]
pub struct DbManager {
    pub(super) target: DbTarget,
    pub(super) connect_timeout: Duration,
    pub(super) busy_timeout_ms: u64,
}

impl DbManager {
    pub(super) fn open(&self) -> Result<DbConnection, diesel::r2d2::Error> {
        match &self.target {
            DbTarget::Postgres(url) => {
                let url = with_connect_timeout(url, self.connect_timeout);
                establish_postgres(&url)
                    .map(DbConnection::Postgresql)
                    .map_err(diesel::r2d2::Error::ConnectionError)
            }
            DbTarget::Sqlite(path) => {
                let path = path.to_string_lossy();
                let mut conn = SqliteConnection::establish(&path)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // WAL is set once in `connect`; these are per connection. Temporary storage in
                // memory keeps a savepoint's journal there too (units of work committed
                // together each run in one, `super::group`): on disk, SQLite spills it to a
                // file past 64 KiB and then writes every page it saves with a system call.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; \
                     PRAGMA temp_store = MEMORY;",
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
        match conn {
            // The caller's `BEGIN` asks instead: one round trip fewer per unit of work.
            DbConnection::Postgresql(_) if UNPROBED.with(Cell::get) => Ok(()),
            // A server may have restarted (or dropped the connection) since it was pooled.
            DbConnection::Postgresql(_) => conn
                .batch_execute("SELECT 1")
                .map_err(diesel::r2d2::Error::QueryError),
            // An open file does not go away: nothing to ask (this was 1.6% of an order's CPU).
            DbConnection::Sqlite(_) => Ok(()),
        }
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
}
