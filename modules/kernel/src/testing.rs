//! Throwaway databases for tests (feature `testing`): a SQLite file in a temporary directory,
//! or — when `TESSERA_TEST_DATABASE_URL` is set — a fresh PostgreSQL database created for
//! one test and dropped after it. Tests never share a database. And a module's API mounted
//! as the application mounts it, for the tests of its HTTP client.

use std::{io::Write, sync::Once};

use actix_web::{
    App,
    body::BoxBody,
    dev::{ServiceFactory, ServiceRequest, ServiceResponse},
    middleware::from_fn,
    web,
};
use anyhow::Context;
use diesel::RunQueryDsl;
use utoipa_actix_web::{AppExt, scope, service_config::ServiceConfig};

mod nats;

pub use nats::NatsServer;

use crate::{
    auth::JwtKeys,
    config::DatabaseSettings,
    db::Backend,
    http::idempotency::{self, IdempotencyStore},
};

pub const POSTGRES_URL_VAR: &str = "TESSERA_TEST_DATABASE_URL";

/// A module's API as the application mounts it, for the tests of the module's HTTP client:
/// its `routes` (handlers and the app data they need) under `/api/v1` behind the idempotency
/// middleware, with `keys` as the authenticator. Wrap it in
/// [`request_context`](crate::http::middleware::request_context) as the application does.
pub fn module_api(
    keys: JwtKeys,
    idempotency: web::Data<IdempotencyStore>,
    routes: &dyn Fn(&mut ServiceConfig),
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    > + use<>,
> {
    let (app, _) = App::new()
        .into_utoipa_app()
        .app_data(keys.authenticator())
        .app_data(idempotency)
        .service(
            scope::scope("/api/v1")
                .wrap(from_fn(idempotency::idempotency))
                .configure(|cfg| routes(cfg)),
        )
        .split_for_parts();
    app
}

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
        let mut admin = crate::db::establish_postgres(&admin_url)
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
            && let Ok(mut admin) = crate::db::establish_postgres(admin_url)
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin);
        }
    }
}

/// Runs each named `async fn` as two tests, `sqlite::<name>` and `postgres::<name>`; the
/// PostgreSQL one does nothing when `TESSERA_TEST_DATABASE_URL` is unset (see
/// [`TestDatabase::postgres`]).
///
/// - `on_both_backends!(a, b)`: each function takes the [`Backend`] and makes its own fixture.
/// - `on_both_backends!(with fixture: a, b)`: each takes what `fixture(backend)` returns, an
///   `Option` that is `None` only for an unconfigured PostgreSQL; `fixture` is a path from
///   the calling module (`support::fixture`).
#[macro_export]
macro_rules! on_both_backends {
    (with $fixture:path : $($name:ident),* $(,)?) => {
        mod sqlite {
            #[allow(unused_imports, reason = "unused when the fixture is named by an absolute path")]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($fixture($crate::db::Backend::Sqlite).unwrap()).await;
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports, reason = "unused when the fixture is named by an absolute path")]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(fixture) = $fixture($crate::db::Backend::Postgres) {
                        super::$name(fixture).await;
                    }
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::db::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::db::Backend::Postgres).await;
                }
            )*
        }
    };
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

/// Runs one turn of `bus`'s relay on the blocking pool, as the real relay does; how many
/// deliveries it attempted.
///
/// # Panics
/// On database errors (tests only).
#[allow(clippy::expect_used)]
pub async fn deliver_once(bus: &crate::bus::Bus) -> usize {
    let relay = bus.clone();
    bus.db()
        .run(move |conn| relay.relay_batch(conn, "test-relay"))
        .await
        .expect("a turn of the relay")
}

/// Runs `bus`'s relay until nothing is due.
///
/// # Panics
/// On database errors (tests only).
pub async fn deliver(bus: &crate::bus::Bus) {
    while deliver_once(bus).await > 0 {}
}

/// JWT keys for tests: `secret`, the default issuer, five-minute tokens.
pub fn jwt_keys(secret: &str) -> crate::auth::JwtKeys {
    crate::auth::JwtKeys::new(&crate::config::AuthSettings {
        jwt_secret: secret.to_owned(),
        issuer: "tessera".to_owned(),
        token_ttl_secs: 300,
    })
}

/// The `Authorization` header of a request by `sub` with `role`, signed with `keys`.
///
/// # Panics
/// When the token cannot be signed (tests only).
#[allow(clippy::expect_used)]
pub fn bearer(
    keys: &crate::auth::JwtKeys,
    sub: &str,
    role: crate::auth::Role,
) -> (actix_web::http::header::HeaderName, String) {
    let token = keys.issue(sub, role, None).expect("sign a test token");
    (
        actix_web::http::header::AUTHORIZATION,
        format!("Bearer {token}"),
    )
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
