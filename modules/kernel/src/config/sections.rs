//! The sections of the configuration, one type each; those holding secrets print without
//! them. Each field's doc comment is its documentation in `docs/configuration.md`
//! (`tessera config-keys`, see [`super::doc`]); a secret is marked `format = Password`.

use std::fmt;

use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on; `0.0.0.0` (all interfaces) in `config/production.toml`.
    pub host: String,
    /// Port to listen on; `0` picks a free one (the log says which).
    pub port: u16,
    /// Worker threads; `0` means one per CPU core.
    pub workers: usize,
    /// Seconds in-flight requests get to finish after SIGTERM or SIGINT.
    pub shutdown_timeout_secs: u64,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://<path>` (the file is created on first run) or
    /// `postgres://user:pass@host:5432/db`; the scheme picks the backend.
    pub url: String,
    /// Connections in the pool.
    pub pool_size: u32,
    /// Seconds to wait for the database: an unreachable one fails start-up within this, and
    /// a request waits this long for a pooled connection (then 503 with `Retry-After`).
    pub connect_timeout_secs: u64,
    /// SQLite only: milliseconds a writer waits for the database lock before failing.
    pub sqlite_busy_timeout_ms: u64,
    /// SQLite only: this process's writers wait their turn in an in-memory queue, woken as
    /// soon as the previous write commits (p99 of `POST /orders` ~25 ms instead of ~100 ms),
    /// and units of work (placing an order) that queue together share one commit;
    /// `false`: they poll SQLite's lock, sleeping in growing steps, and commit one by one.
    #[serde(default = "yes")]
    pub sqlite_writer_queue: bool,
}

// Hand-written so a password in the URL never reaches a log line.
impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &crate::db::redact_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("sqlite_busy_timeout_ms", &self.sqlite_busy_timeout_ms)
            .field("sqlite_writer_queue", &self.sqlite_writer_queue)
            .finish()
    }
}

#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 secret of the bearer tokens. The default is a development secret:
    /// `TESSERA_ENV=production` refuses to start with it, or with fewer than 32 bytes.
    #[schema(format = Password)]
    pub jwt_secret: String,
    /// `iss` of the tokens `tessera token` signs; tokens of another issuer are refused.
    pub issuer: String,
    /// Lifetime in seconds of a token from `tessera token` without `--ttl`.
    pub token_ttl_secs: u64,
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("jwt_secret", &"<redacted>")
            .field("issuer", &self.issuer)
            .field("token_ttl_secs", &self.token_ttl_secs)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Largest request body, in bytes; a larger one gets 413.
    pub json_limit_bytes: usize,
    /// Requests per second each client may make on average; over it, 429 with
    /// `Retry-After`. A client is a valid token's subject, else the peer address (behind a
    /// proxy every anonymous client shares the proxy's address). Tokens of role `service`
    /// and `/health/*` are never limited. `0` turns rate limiting off.
    pub rate_limit_per_second: u32,
    /// Requests a client may make at once before the per-second rate applies.
    pub rate_limit_burst: u32,
    /// A request still running after this many seconds gets a 503 problem (its outcome is
    /// then unknown: retry writes with the same `Idempotency-Key`).
    pub request_timeout_secs: u64,
    /// Origins allowed to call the API from a browser (CORS), e.g. `["https://shop.example"]`;
    /// `["*"]` allows any; empty: same origin only. As an environment variable, separated by
    /// commas: `TESSERA__HTTP__CORS_ORIGINS=https://a.example,https://b.example`.
    pub cors_origins: Vec<String>,
    /// Send `Strict-Transport-Security` on every response; `true` in
    /// `config/production.toml`, where TLS is expected.
    pub hsts: bool,
}

/// The event bus's delivery policy.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BusSettings {
    /// NATS server (`nats://host:4222`) that carries events between processes over JetStream
    /// (split deployments); unset: events stay in this process.
    #[serde(default)]
    pub nats_url: Option<String>,
    /// Subject prefix on NATS: events go to `<subject_prefix>.<type>`.
    pub subject_prefix: String,
    /// Attempts per delivery; then it is `failed` (a dead letter an operator can replay).
    pub max_attempts: u32,
    /// Milliseconds before the first retry; the wait doubles per attempt, with jitter.
    pub backoff_base_ms: u64,
    /// Longest wait between two attempts, in milliseconds.
    pub backoff_max_ms: u64,
    /// The relay is woken by commits; this poll (milliseconds) is the fallback and the retry
    /// clock.
    pub poll_interval_ms: u64,
    /// Seconds a claimed delivery belongs to one relay; after a crash, another relay (or the
    /// restarted process) takes it over once the lease has run out.
    pub lease_secs: u64,
    /// Deliveries a relay claims, applies and commits at once. Larger batches drain a backlog
    /// faster (one commit and a few statements per batch); a batch holds its deliveries (and,
    /// on SQLite, the write lock) while its handlers run.
    pub batch_size: u32,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `pretty` for people, `json` (every line with its spans, so its request id) for log
    /// collectors; `json` in `config/production.toml`.
    #[schema(inline)]
    pub format: LogFormat,
    /// Which lines are logged (`tracing` directives, e.g. `info,kernel=debug`); `RUST_LOG`
    /// overrides it.
    pub filter: String,
}
