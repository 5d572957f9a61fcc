//! The circuit breaker of one neighbour, on `failsafe`'s state machine with its
//! consecutive-failures policy: closed → open after `threshold` failures in a row → half-open
//! once `cooldown` has passed (calls go through as probes) → closed at the first success, open
//! again for another cooldown at the first failure. What failsafe does not say — where the
//! breaker stands and how long it stays open, for `Retry-After` — is read off its
//! [`Instrument`] callbacks.

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use failsafe::{
    Instrument, StateMachine,
    backoff::{self, Constant},
    failure_policy::{self, ConsecutiveFailures},
};

/// Where a neighbour's circuit breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls fail at once until the cooldown has passed.
    Open,
    /// The cooldown has passed: calls go through, and the first outcome closes or reopens it.
    HalfOpen,
}

/// The state as failsafe last reported it, and when it last opened.
#[derive(Debug)]
struct Watch {
    state: Mutex<(BreakerState, Instant)>,
}

impl Watch {
    fn lock(&self) -> MutexGuard<'_, (BreakerState, Instant)> {
        // Two plain values, always consistent: a poisoned lock is still good.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, state: BreakerState) {
        let mut guard = self.lock();
        guard.0 = state;
        if state == BreakerState::Open {
            guard.1 = Instant::now();
        }
    }
}

#[derive(Debug, Clone)]
struct Watcher(Arc<Watch>);

impl Instrument for Watcher {
    fn on_call_rejected(&self) {}

    fn on_open(&self) {
        self.0.set(BreakerState::Open);
    }

    fn on_half_open(&self) {
        self.0.set(BreakerState::HalfOpen);
    }

    fn on_closed(&self) {
        self.0.set(BreakerState::Closed);
    }
}

/// One neighbour's breaker; cheap to clone (clones share the state).
#[derive(Debug, Clone)]
pub(super) struct CircuitBreaker {
    machine: StateMachine<ConsecutiveFailures<Constant>, Watcher>,
    watch: Arc<Watch>,
    cooldown: Duration,
}

impl CircuitBreaker {
    pub(super) fn new(threshold: u32, cooldown: Duration) -> Self {
        let watch = Arc::new(Watch {
            state: Mutex::new((BreakerState::Closed, Instant::now())),
        });
        let policy =
            failure_policy::consecutive_failures(threshold.max(1), backoff::constant(cooldown));
        Self {
            machine: StateMachine::new(policy, Watcher(watch.clone())),
            watch,
            cooldown,
        }
    }

    pub(super) fn state(&self) -> BreakerState {
        self.watch.lock().0
    }

    /// `Ok` when a call may go out; otherwise how long the breaker stays open.
    pub(super) fn admit(&self) -> Result<(), Duration> {
        if self.machine.is_call_permitted() {
            Ok(())
        } else {
            Err(self.retry_after())
        }
    }

    /// How long until the breaker lets a call through again: zero unless it is open.
    pub(super) fn retry_after(&self) -> Duration {
        match *self.watch.lock() {
            (BreakerState::Open, opened) => {
                (opened + self.cooldown).saturating_duration_since(Instant::now())
            }
            _ => Duration::ZERO,
        }
    }

    /// The neighbour answered (whatever the status, but 502/503/504).
    pub(super) fn record_success(&self) {
        self.machine.on_success();
    }

    /// The neighbour was unavailable: unreachable, too slow, or 502/503/504.
    pub(super) fn record_failure(&self) {
        self.machine.on_error();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_after_n_consecutive_failures_only() {
        let b = CircuitBreaker::new(3, Duration::from_secs(5));
        b.record_failure();
        b.record_failure();
        b.record_success();
        b.record_failure();
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit(), Ok(()));
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
        let wait = b.admit().unwrap_err();
        assert!(
            wait > Duration::from_secs(4) && wait <= Duration::from_secs(5),
            "{wait:?}"
        );
        // A late success of a call sent before it opened does not close it.
        b.record_success();
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn after_the_cooldown_a_probe_closes_or_reopens_the_breaker() {
        let b = CircuitBreaker::new(1, Duration::from_millis(30));
        b.record_failure();
        assert!(b.admit().is_err());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.admit(), Ok(()));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.retry_after(), Duration::ZERO);
        // The probe fails: open for another cooldown.
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.admit().is_err());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.admit(), Ok(()));
        // The probe succeeds: closed.
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit(), Ok(()));
    }
}
