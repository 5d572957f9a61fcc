//! Which environment the process runs in: `TESSERA_ENV`, development unless set.

use std::{fmt, str::FromStr};

use anyhow::{Context, bail};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_environment_names_are_rejected() {
        assert!("staging".parse::<AppEnv>().is_err());
        assert_eq!("PRODUCTION".parse::<AppEnv>().unwrap(), AppEnv::Production);
    }
}
