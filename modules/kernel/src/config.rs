//! Layered settings: the embedded `config/default.toml`, then `config/{TESSERA_ENV}.toml`
//! from the working directory, then `TESSERA__SECTION__KEY` environment variables.
//!
//! Loading never panics: a bad value becomes an error naming the key, and rules that only
//! production enforces (no development JWT secret) are checked in [`Settings::validate`].

use std::{collections::BTreeMap, fmt, path::Path, str::FromStr};

use anyhow::{Context, bail};
use config::{Config, Environment, File, FileFormat};
use serde::{Deserialize, de::DeserializeOwned};

/// The base layer, compiled in so the binary runs from an empty directory.
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/default.toml");

/// The JWT secret shipped in `config/default.toml`; production refuses it.
const DEVELOPMENT_JWT_SECRET: &str = "tessera-insecure-development-secret";

/// Which environment the process runs in (`TESSERA_ENV`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AppEnv {
    #[default]
    Development,
    Test,
    Production,
}

impl AppEnv {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Test => "test",
            Self::Production => "production",
        }
    }

    /// Reads `TESSERA_ENV`; unset means development.
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var("TESSERA_ENV") {
            Ok(value) => value.parse(),
            Err(std::env::VarError::NotPresent) => Ok(Self::Development),
            Err(e) => Err(e).context("TESSERA_ENV is not valid unicode"),
        }
    }
}

impl FromStr for AppEnv {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" => Ok(Self::Development),
            "test" => Ok(Self::Test),
            "production" | "prod" => Ok(Self::Production),
            other => {
                bail!("TESSERA_ENV must be one of development, test, production (got {other:?})")
            }
        }
    }
}

impl fmt::Display for AppEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the process reads from configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(skip)]
    pub env: AppEnv,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub http: HttpSettings,
    pub log: LogSettings,
    pub bus: BusSettings,
    /// `[modules.<name>]` sections, read by each module with [`Settings::module`].
    #[serde(default)]
    pub modules: BTreeMap<String, serde_json::Value>,
}

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

impl Settings {
    /// The `[modules.<name>]` section as the module's own settings type (absent → `{}`, so
    /// a type with defaults needs no section at all).
    ///
    /// # Errors
    /// A message naming `modules.<name>` when the section does not fit `T`.
    pub fn module<T: DeserializeOwned>(&self, name: &str) -> anyhow::Result<T> {
        let mut section = self
            .modules
            .get(name)
            .cloned()
            .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        // `url` belongs to the binary's wiring (see `neighbour_url`), not to the module.
        if let Some(map) = section.as_object_mut() {
            map.remove("url");
        }
        serde_json::from_value(section)
            .with_context(|| format!("invalid configuration: modules.{name}"))
    }

    /// `modules.<name>.url`: where a module that is not built into this binary is served
    /// (`TESSERA__MODULES__<NAME>__URL`), for split deployments.
    pub fn neighbour_url(&self, name: &str) -> Option<String> {
        self.modules
            .get(name)
            .and_then(|section| section.get("url"))
            .and_then(|url| url.as_str())
            .map(|url| url.trim_end_matches('/').to_owned())
            .filter(|url| !url.is_empty())
    }

    /// Loads the layers for the environment named by `TESSERA_ENV`, from the process's
    /// working directory and environment variables, and validates the result.
    ///
    /// # Errors
    /// A message naming the offending key or file when a layer cannot be read or a value does
    /// not fit its type, or when a rule of [`Settings::validate`] fails.
    pub fn load() -> anyhow::Result<Self> {
        let env = AppEnv::from_env()?;
        Self::load_from(
            env,
            Path::new("config"),
            Environment::with_prefix("TESSERA"),
        )
    }

    /// The embedded defaults for `env` with no files or environment variables on top.
    /// Tests start from this and change fields directly.
    ///
    /// # Errors
    /// Only if the embedded defaults are broken, which a unit test rules out.
    pub fn defaults(env: AppEnv) -> anyhow::Result<Self> {
        let raw = Config::builder()
            .add_source(File::from_str(DEFAULT_CONFIG, FileFormat::Toml))
            .build()?;
        let mut settings: Settings = raw.try_deserialize()?;
        settings.env = env;
        Ok(settings)
    }

    fn load_from(env: AppEnv, dir: &Path, vars: Environment) -> anyhow::Result<Self> {
        let env_file = dir.join(format!("{}.toml", env.as_str()));
        let raw = Config::builder()
            .add_source(File::from_str(DEFAULT_CONFIG, FileFormat::Toml))
            .add_source(File::from(env_file.as_path()).required(false))
            .add_source(
                vars.prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("http.cors_origins"),
            )
            .build()
            .with_context(|| format!("cannot read configuration ({})", env_file.display()))?;
        let mut settings: Settings = raw.try_deserialize().context("invalid configuration")?;
        settings.env = env;
        settings.validate()?;
        Ok(settings)
    }

    /// Rules that span keys or depend on the environment.
    ///
    /// # Errors
    /// When production would run on the development JWT secret or a short one, or when a
    /// size or count is zero.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.auth.jwt_secret.is_empty() {
            bail!("invalid configuration: auth.jwt_secret must not be empty");
        }
        for origin in &self.http.cors_origins {
            let valid = origin == "*"
                || origin
                    .strip_prefix("https://")
                    .or_else(|| origin.strip_prefix("http://"))
                    .is_some_and(|host| {
                        !host.is_empty()
                            && host
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
                    });
            if !valid {
                bail!(
                    "invalid configuration: http.cors_origins: {origin:?} is not an origin \
                     (scheme://host[:port], no path) or \"*\""
                );
            }
        }
        if self.env == AppEnv::Production {
            if self.auth.jwt_secret == DEVELOPMENT_JWT_SECRET {
                bail!(
                    "refusing to start in production with the development JWT secret: \
                     set TESSERA__AUTH__JWT_SECRET to a random value of at least 32 bytes"
                );
            }
            if self.auth.jwt_secret.len() < 32 {
                bail!("refusing to start in production: auth.jwt_secret must be at least 32 bytes");
            }
        }
        if self.database.pool_size == 0 {
            bail!("invalid configuration: database.pool_size must be at least 1");
        }
        if self.http.json_limit_bytes == 0 {
            bail!("invalid configuration: http.json_limit_bytes must be at least 1");
        }
        if self.bus.max_attempts == 0 || self.bus.batch_size == 0 || self.bus.lease_secs == 0 {
            bail!(
                "invalid configuration: bus.max_attempts, bus.batch_size and bus.lease_secs \
                 must be at least 1"
            );
        }
        if self.auth.token_ttl_secs == 0 {
            bail!("invalid configuration: auth.token_ttl_secs must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> Environment {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Environment::with_prefix("TESSERA").source(Some(map))
    }

    fn empty_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn cors_origins_come_as_a_comma_separated_list_and_bad_ones_are_named() {
        let dir = empty_dir();
        let s = Settings::load_from(
            AppEnv::Development,
            dir.path(),
            vars(&[(
                "TESSERA__HTTP__CORS_ORIGINS",
                "https://shop.example,http://localhost:3000",
            )]),
        )
        .unwrap();
        assert_eq!(
            s.http.cors_origins,
            ["https://shop.example", "http://localhost:3000"]
        );
        let err = Settings::load_from(
            AppEnv::Development,
            dir.path(),
            vars(&[("TESSERA__HTTP__CORS_ORIGINS", "shop.example/app")]),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("http.cors_origins"), "{err:#}");
    }

    #[test]
    fn embedded_defaults_give_the_documented_keys() {
        let dir = empty_dir();
        let s = Settings::load_from(AppEnv::Development, dir.path(), vars(&[])).unwrap();
        assert_eq!(s.server.host, "127.0.0.1");
        assert_eq!(s.server.port, 8080);
        assert_eq!(s.database.url, "sqlite://./data/tessera.db");
        assert_eq!(s.http.json_limit_bytes, 1024 * 1024);
    }

    #[test]
    fn environment_variables_override_files() {
        let dir = empty_dir();
        std::fs::write(dir.path().join("test.toml"), "[server]\nport = 7000\n").unwrap();
        let s = Settings::load_from(AppEnv::Test, dir.path(), vars(&[])).unwrap();
        assert_eq!(s.server.port, 7000);
        let s = Settings::load_from(
            AppEnv::Test,
            dir.path(),
            vars(&[("TESSERA__SERVER__PORT", "9999")]),
        )
        .unwrap();
        assert_eq!(s.server.port, 9999);
    }

    #[test]
    fn a_bad_value_names_the_key() {
        let dir = empty_dir();
        let err = Settings::load_from(
            AppEnv::Development,
            dir.path(),
            vars(&[("TESSERA__SERVER__PORT", "eighty")]),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("server.port"), "{err:#}");
    }

    #[test]
    fn an_unknown_key_is_rejected() {
        let dir = empty_dir();
        let err = Settings::load_from(
            AppEnv::Development,
            dir.path(),
            vars(&[("TESSERA__SERVER__PROT", "1")]),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("prot"), "{err:#}");
    }

    #[test]
    fn production_refuses_the_development_secret() {
        let dir = empty_dir();
        let err = Settings::load_from(AppEnv::Production, dir.path(), vars(&[])).unwrap_err();
        assert!(err.to_string().contains("JWT secret"), "{err:#}");
        let secret = "0123456789abcdef0123456789abcdef";
        let ok = Settings::load_from(
            AppEnv::Production,
            dir.path(),
            vars(&[("TESSERA__AUTH__JWT_SECRET", secret)]),
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn module_sections_reach_their_module_and_bad_ones_are_named() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Product {
            stock_low_threshold: i64,
            #[allow(dead_code)]
            cache_ttl_ms: u64,
            #[allow(dead_code)]
            cache_capacity: usize,
        }
        let dir = empty_dir();
        let s = Settings::load_from(
            AppEnv::Development,
            dir.path(),
            vars(&[("TESSERA__MODULES__PRODUCT__STOCK_LOW_THRESHOLD", "9")]),
        )
        .unwrap();
        assert_eq!(
            s.module::<Product>("product").unwrap().stock_low_threshold,
            9
        );
        let s = Settings::load_from(
            AppEnv::Development,
            dir.path(),
            vars(&[("TESSERA__MODULES__PRODUCT__STOCK_LOW_THRESHOLD", "lots")]),
        )
        .unwrap();
        let err = s.module::<Product>("product").unwrap_err();
        assert!(format!("{err:#}").contains("modules.product"), "{err:#}");
    }

    #[test]
    fn unknown_environment_names_are_rejected() {
        assert!("staging".parse::<AppEnv>().is_err());
        assert_eq!("PRODUCTION".parse::<AppEnv>().unwrap(), AppEnv::Production);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let mut s = Settings::defaults(AppEnv::Development).unwrap();
        s.database.url = "postgres://app:hunter2@db/tessera".into();
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter2"));
        assert!(!printed.contains(DEVELOPMENT_JWT_SECRET));
    }
}
