//! Throwaway databases for tests (feature `testing`): a SQLite file in a temporary directory,
//! or — when `TESSERA_TEST_DATABASE_URL` is set — a fresh PostgreSQL database created for
//! one test and dropped after it. Tests never share a database.

use std::{io::Write, sync::Once};

use anyhow::Context;
use diesel::{Connection, RunQueryDsl, pg::PgConnection};

use crate::{config::DatabaseSettings, db::Backend};

pub const POSTGRES_URL_VAR: &str = "TESSERA_TEST_DATABASE_URL";

/// A database that lives as long as this value.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    backend: Backend,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// A new SQLite database file in a temporary directory.
    ///
    /// # Panics
    /// When no temporary directory can be made (tests only).
    #[allow(clippy::expect_used)]
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("tessera.db").display());
        Self {
            url,
            backend: Backend::Sqlite,
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// A new, empty PostgreSQL database on the server named by `TESSERA_TEST_DATABASE_URL`,
    /// or `None` (with a notice on stderr, once per process) when the variable is unset.
    ///
    /// # Panics
    /// When the variable is set but the server cannot create the database: a configured
    /// PostgreSQL that does not work is a failure, not a skip.
    #[allow(clippy::expect_used)]
    pub fn postgres() -> Option<Self> {
        let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
            static NOTICE: Once = Once::new();
            NOTICE.call_once(|| {
                // Written to the real stderr, past the test harness's capture, so the skip is seen.
                let _ = writeln!(
                    std::io::stderr(),
                    "NOTE: PostgreSQL tests SKIPPED: {POSTGRES_URL_VAR} is not set \
                     (e.g. {POSTGRES_URL_VAR}=postgres://postgres@127.0.0.1:5432/test)"
                );
            });
            return None;
        };
        let name = format!("tessera_t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(&admin_url)
            .with_context(|| format!("{POSTGRES_URL_VAR} is set but does not connect"))
            .expect("connect to the PostgreSQL test server");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .expect("create a PostgreSQL test database");
        let url = replace_database(&admin_url, &name);
        Some(Self {
            url,
            backend: Backend::Postgres,
            _dir: None,
            postgres: Some((admin_url, name)),
        })
    }

    /// The database for `backend`; `None` only for PostgreSQL when it is not configured.
    pub fn new(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite()),
            Backend::Postgres => Self::postgres(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Database settings pointing at this database, with short timeouts.
    pub fn settings(&self) -> DatabaseSettings {
        DatabaseSettings {
            url: self.url.clone(),
            pool_size: 8,
            connect_timeout_secs: 5,
            sqlite_busy_timeout_ms: 10_000,
            sqlite_writer_queue: true,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = &self.postgres
            && let Ok(mut admin) = PgConnection::establish(admin_url)
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin);
        }
    }
}

/// Every event in the outbox, oldest first.
///
/// # Panics
/// On database errors (tests only).
#[allow(clippy::expect_used)]
pub fn published_events(db: &crate::db::Db) -> Vec<crate::bus::Envelope> {
    use crate::bus::{relay::EventRow, schema::bus_events};
    use diesel::QueryDsl;
    let mut conn = db.get().expect("a connection");
    bus_events::table
        .order_by(bus_events::seq)
        .load::<EventRow>(&mut *conn)
        .expect("read the outbox")
        .into_iter()
        .map(|row| row.into_envelope().expect("a well-formed event"))
        .collect()
}

/// `postgres://u@h:5432/test?x=1` with database `name` instead of `test`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_swapped_keeping_the_rest() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
