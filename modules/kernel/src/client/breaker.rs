//! The circuit breaker of one neighbour: closed → open after consecutive failures →
//! half-open after a cooldown (one probe) → closed again or open again.

use std::{
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

/// Where a [`CircuitBreaker`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls fail at once until the cooldown has passed.
    Open,
    /// One probe call is in flight; the others fail at once.
    HalfOpen,
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probe_started: Instant },
}

/// Closed → open after `threshold` consecutive failures → half-open after `cooldown` (one
/// probe call admitted) → closed when the probe succeeds, open again when it fails. A probe
/// that never reports (its caller gave up) is replaced by another after `cooldown`.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
}

/// The breaker's answer to "may I call?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Allowed,
    /// Go ahead: this call is the half-open probe.
    Probe,
    /// Fail fast; the breaker is open (or a probe is in flight) for this much longer.
    Rejected { retry_after: Duration },
}

impl CircuitBreaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            inner: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state is a few plain values, always consistent: a poisoned lock is still good.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    pub fn admit(&self) -> Admission {
        self.admit_at(Instant::now())
    }

    pub fn admit_at(&self, now: Instant) -> Admission {
        let mut inner = self.lock();
        match *inner {
            Inner::Closed { .. } => Admission::Allowed,
            Inner::Open { until } if now < until => Admission::Rejected {
                retry_after: until - now,
            },
            Inner::HalfOpen { probe_started } if now < probe_started + self.cooldown => {
                Admission::Rejected {
                    retry_after: probe_started + self.cooldown - now,
                }
            }
            Inner::Open { .. } | Inner::HalfOpen { .. } => {
                *inner = Inner::HalfOpen { probe_started: now };
                Admission::Probe
            }
        }
    }

    /// How long until the breaker lets a call through again: zero while it is closed.
    pub fn retry_after(&self) -> Duration {
        self.retry_after_at(Instant::now())
    }

    pub fn retry_after_at(&self, now: Instant) -> Duration {
        match *self.lock() {
            Inner::Closed { .. } => Duration::ZERO,
            Inner::Open { until } => until.saturating_duration_since(now),
            Inner::HalfOpen { probe_started } => {
                (probe_started + self.cooldown).saturating_duration_since(now)
            }
        }
    }

    pub fn record_success(&self) {
        *self.lock() = Inner::Closed { failures: 0 };
    }

    pub fn record_failure(&self) {
        self.record_failure_at(Instant::now());
    }

    pub fn record_failure_at(&self, now: Instant) {
        let mut inner = self.lock();
        let open = Inner::Open {
            until: now + self.cooldown,
        };
        *inner = match *inner {
            Inner::Closed { failures } if failures + 1 < self.threshold => Inner::Closed {
                failures: failures + 1,
            },
            // A late failure of a call admitted before the breaker opened changes nothing.
            Inner::Open { until } => Inner::Open { until },
            _ => open,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn the_breaker_opens_after_n_consecutive_failures_only() {
        let b = CircuitBreaker::new(3, Duration::from_secs(5));
        let t = Instant::now();
        b.record_failure_at(t);
        b.record_failure_at(t);
        b.record_success();
        b.record_failure_at(t);
        b.record_failure_at(t);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit_at(t), Admission::Allowed);
        b.record_failure_at(t);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.retry_after_at(at(t, 1000)), Duration::from_secs(4));
        assert_eq!(
            b.admit_at(at(t, 1000)),
            Admission::Rejected {
                retry_after: Duration::from_secs(4)
            }
        );
    }

    #[test]
    fn an_open_breaker_admits_one_probe_after_the_cooldown() {
        let b = CircuitBreaker::new(1, Duration::from_secs(5));
        let t = Instant::now();
        b.record_failure_at(t);
        assert!(matches!(
            b.admit_at(at(t, 4999)),
            Admission::Rejected { .. }
        ));
        assert_eq!(b.admit_at(at(t, 5000)), Admission::Probe);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // Only one probe at a time.
        assert!(matches!(
            b.admit_at(at(t, 5001)),
            Admission::Rejected { .. }
        ));
        assert_eq!(b.retry_after_at(at(t, 5001)), Duration::from_millis(4999));
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.retry_after_at(at(t, 5002)), Duration::ZERO);
        assert_eq!(b.admit_at(at(t, 5002)), Admission::Allowed);
    }

    #[test]
    fn a_failed_probe_reopens_the_breaker_for_another_cooldown() {
        let b = CircuitBreaker::new(2, Duration::from_secs(5));
        let t = Instant::now();
        b.record_failure_at(t);
        b.record_failure_at(t);
        assert_eq!(b.admit_at(at(t, 5000)), Admission::Probe);
        b.record_failure_at(at(t, 5100));
        assert_eq!(b.state(), BreakerState::Open);
        assert!(matches!(
            b.admit_at(at(t, 10_000)),
            Admission::Rejected { .. }
        ));
        assert_eq!(b.admit_at(at(t, 10_100)), Admission::Probe);
    }

    #[test]
    fn a_probe_that_never_reports_is_replaced_after_the_cooldown() {
        let b = CircuitBreaker::new(1, Duration::from_secs(5));
        let t = Instant::now();
        b.record_failure_at(t);
        assert_eq!(b.admit_at(at(t, 5000)), Admission::Probe);
        assert_eq!(b.admit_at(at(t, 10_000)), Admission::Probe);
    }
}
