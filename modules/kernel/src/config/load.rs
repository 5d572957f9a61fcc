//! Reading the layers (embedded defaults, the environment's file, environment variables)
//! into [`Settings`], and the rules that span keys or depend on the environment.

use std::path::Path;

use anyhow::{Context, bail};
use config::{Config, Environment, File, FileFormat};

use super::{AppEnv, Settings};

/// The base layer, compiled in so the binary runs from an empty directory.
pub const DEFAULT_CONFIG: &str = include_str!("../../../../config/default.toml");

/// The JWT secret shipped in `config/default.toml`; production refuses it.
const DEVELOPMENT_JWT_SECRET: &str = "tessera-insecure-development-secret";

impl Settings {
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
#[path = "load_tests.rs"]
mod tests;
