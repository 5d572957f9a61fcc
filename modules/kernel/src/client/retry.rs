//! When a call is retried and how long it waits first: exponential backoff with jitter, for
//! idempotent calls that met an unavailable neighbour or a key still in flight.

use std::time::Duration;

/// Exponential backoff with jitter: before retry `n` (0-based) wait a random time in
/// `[cap/2, cap]` where `cap = min(max_delay, base_delay · 2ⁿ)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

/// How one attempt ended, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Connection refused, reset, DNS failure: the request was (probably) not processed.
    ConnectError,
    /// No answer in time: the request may or may not have been processed.
    Timeout,
    /// An HTTP status.
    Status(u16),
    /// A `409` saying a request with the same `Idempotency-Key` is still being processed.
    KeyInFlight,
}

impl Outcome {
    /// Whether this outcome says the neighbour is unavailable (what the breaker counts).
    pub fn is_unavailable(self) -> bool {
        matches!(
            self,
            Self::ConnectError | Self::Timeout | Self::Status(502..=504)
        )
    }
}

impl RetryPolicy {
    pub fn new(retries: u32) -> Self {
        Self {
            retries,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
        }
    }

    /// Whether attempt `attempt` (0-based; 0 is the first call) of a call may be retried after
    /// `outcome`.
    pub fn should_retry(&self, idempotent: bool, attempt: u32, outcome: Outcome) -> bool {
        idempotent
            && attempt < self.retries
            && (outcome.is_unavailable() || outcome == Outcome::KeyInFlight)
    }

    /// The wait before retry `retry` (0-based), for a random `unit` in `[0, 1)`.
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(16));
        let cap = self.base_delay.saturating_mul(factor).min(self.max_delay);
        let half = cap / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// A random number in `[0, 1)` from the OS generator uuid v4 already uses.
pub(super) fn jitter_unit() -> f64 {
    (uuid::Uuid::new_v4().as_u128() as u64 >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_idempotent_calls_are_retried_and_only_after_unavailability() {
        let p = RetryPolicy::new(2);
        for outcome in [
            Outcome::ConnectError,
            Outcome::Timeout,
            Outcome::Status(502),
            Outcome::Status(503),
            Outcome::Status(504),
            Outcome::KeyInFlight,
        ] {
            assert!(p.should_retry(true, 0, outcome), "{outcome:?}");
            assert!(p.should_retry(true, 1, outcome), "{outcome:?}");
            assert!(!p.should_retry(true, 2, outcome), "{outcome:?}");
            assert!(!p.should_retry(false, 0, outcome), "{outcome:?}");
        }
        for status in [200, 201, 400, 404, 409, 412, 422, 500] {
            assert!(
                !p.should_retry(true, 0, Outcome::Status(status)),
                "{status}"
            );
        }
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_a_cap() {
        let p = RetryPolicy {
            retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        assert_eq!(p.delay(0, 0.0), Duration::from_millis(50));
        assert_eq!(p.delay(0, 1.0), Duration::from_millis(100));
        assert_eq!(p.delay(1, 0.0), Duration::from_millis(100));
        assert_eq!(p.delay(2, 0.5), Duration::from_millis(300));
        assert_eq!(p.delay(9, 1.0), Duration::from_millis(1000));
        assert_eq!(p.delay(40, 0.0), Duration::from_millis(500));
        for _ in 0..100 {
            let u = jitter_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
