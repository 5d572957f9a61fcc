//! The sections of the configuration, one type each; those holding secrets print without
//! them.

use std::fmt;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// 0 = one worker per CPU core.
    pub workers: usize,
    pub shutdown_timeout_secs: u64,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub pool_size: u32,
    pub connect_timeout_secs: u64,
    pub sqlite_busy_timeout_ms: u64,
    /// SQLite only: queue this process's writers in memory (see `Db`), instead of letting
    /// them poll SQLite's lock.
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

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub jwt_secret: String,
    pub issuer: String,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub json_limit_bytes: usize,
    /// Requests per second each client (peer IP) may make on average; 0 turns rate limiting off.
    pub rate_limit_per_second: u32,
    /// Requests a client may make at once before the per-second rate applies.
    pub rate_limit_burst: u32,
    /// A request still running after this many seconds is answered with a 503 problem.
    pub request_timeout_secs: u64,
    /// Origins allowed to call the API from a browser (CORS); `*` allows any. Empty: none.
    pub cors_origins: Vec<String>,
    /// Send `Strict-Transport-Security` (on by default in production, behind TLS).
    pub hsts: bool,
}

/// The event bus's delivery policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusSettings {
    /// NATS server for events between processes (split deployments); none = in-process only.
    #[serde(default)]
    pub nats_url: Option<String>,
    /// Subject prefix on NATS: events go to `<prefix>.<type>`.
    pub subject_prefix: String,
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    pub poll_interval_ms: u64,
    pub lease_secs: u64,
    pub batch_size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}
