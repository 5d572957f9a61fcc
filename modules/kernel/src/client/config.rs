//! How to reach one neighbour: its base URL, the per-attempt timeout, the retries an
//! idempotent call gets and the circuit breaker's thresholds, as read from configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How to reach one neighbour. In TOML, durations are seconds (`timeout = 2.5`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// Where the neighbour's API lives, without `/api/v1`: `http://product:8080`.
    pub base_url: String,
    /// Per attempt, connecting included (default 2 s).
    #[serde(default = "defaults::timeout", with = "secs")]
    pub timeout: Duration,
    /// Extra attempts of an idempotent call (default 2).
    #[serde(default = "defaults::retries")]
    pub retries: u32,
    /// Consecutive failures that open the circuit breaker (default 5).
    #[serde(default = "defaults::breaker_failures")]
    pub breaker_failures: u32,
    /// How long the breaker stays open before a probe call (default 5 s).
    #[serde(default = "defaults::breaker_cooldown", with = "secs")]
    pub breaker_cooldown: Duration,
}

impl RemoteConfig {
    /// The defaults, for `base_url`.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            timeout: defaults::timeout(),
            retries: defaults::retries(),
            breaker_failures: defaults::breaker_failures(),
            breaker_cooldown: defaults::breaker_cooldown(),
        }
    }
}

mod defaults {
    use std::time::Duration;

    pub fn timeout() -> Duration {
        Duration::from_secs(2)
    }
    pub fn retries() -> u32 {
        2
    }
    pub fn breaker_failures() -> u32 {
        5
    }
    pub fn breaker_cooldown() -> Duration {
        Duration::from_secs(5)
    }
}

/// Durations as (fractional) seconds.
mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_durations_read_as_seconds_with_defaults() {
        let c: RemoteConfig =
            serde_json::from_str(r#"{"base_url":"http://p:8080","timeout":0.5}"#).unwrap();
        assert_eq!(c.timeout, Duration::from_millis(500));
        assert_eq!(c.retries, 2);
        assert_eq!(c.breaker_failures, 5);
        assert_eq!(c.breaker_cooldown, Duration::from_secs(5));
    }
}
