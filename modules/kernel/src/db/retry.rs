//! Transactions that lose a conflict are tried again before anyone sees the failure.
//!
//! PostgreSQL resolves a deadlock (SQLSTATE 40P01) or a serialization failure (40001) by
//! aborting one of the transactions involved. Nothing was written by it, and the same work
//! usually succeeds a moment later, once the winner has committed, so the loser is re-run
//! from its `BEGIN` a bounded number of times with a short jittered pause. Only a whole
//! transaction can be re-run: one nested in a caller's transaction (a subscriber inside the
//! relay's batch) would wait again on locks its own enclosing transaction still holds, so
//! there the error is passed up for the owner of the outer transaction to retry.

use std::time::Duration;

use diesel::{
    connection::{Connection, TransactionManager},
    result::{DatabaseErrorKind, Error as DieselError},
};
use uuid::Uuid;

use super::DbConnection;
pub use kernel_api::error::Retryable;

/// How many times in all a transaction that keeps losing conflicts is run.
pub const CONFLICT_ATTEMPTS: u32 = 5;

/// Whether a diesel error is a transient conflict: a serialization failure (40001) or a
/// deadlock (40P01). Diesel maps 40001 to its own kind; a deadlock is `Unknown`, and libpq
/// exposes no SQLSTATE through diesel, so it is told by the server's (English) message.
pub fn is_retryable_db_error(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        DieselError::DatabaseError(_, info) => info.message().starts_with("deadlock detected"),
        _ => false,
    }
}

/// Whether any cause in `error`'s chain is a transient conflict ([`is_retryable_db_error`]):
/// running the same transaction again may succeed.
pub fn is_retryable(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<DieselError>()
            .is_some_and(is_retryable_db_error)
    })
}

/// Whether `error` failed with a transient conflict: its unexpected cause
/// ([`Retryable::unexpected`]) is one by [`is_retryable`].
pub fn is_retryable_error(error: &impl Retryable) -> bool {
    error.unexpected().is_some_and(is_retryable)
}

/// Runs `transaction` (work that begins and ends its own transaction, such as a
/// [`super::write_tx`] or `Bus::write` call) and runs it again, up to [`CONFLICT_ATTEMPTS`]
/// times in all, while it fails with a transient conflict. Inside an enclosing transaction it
/// runs once (see the module documentation).
///
/// # Errors
/// Whatever the last run returned.
pub fn retry_on_conflict<T, E, F>(conn: &mut DbConnection, mut transaction: F) -> Result<T, E>
where
    F: FnMut(&mut DbConnection) -> Result<T, E>,
    E: Retryable,
{
    if in_transaction(conn) {
        return transaction(conn);
    }
    let mut attempt = 1;
    loop {
        match transaction(conn) {
            Err(e) if attempt < CONFLICT_ATTEMPTS && is_retryable_error(&e) => {
                tracing::debug!(attempt, "transaction lost a conflict; running it again");
                std::thread::sleep(pause(attempt));
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// Whether `conn` is inside a transaction (one of its own or a unit of work's): a write made
/// on it now is not committed yet.
pub fn in_transaction(conn: &mut DbConnection) -> bool {
    !matches!(
        <DbConnection as Connection>::TransactionManager::transaction_manager_status_mut(conn)
            .transaction_depth(),
        Ok(None)
    )
}

/// `5 ms · 2^(attempt-1)`, at most 100 ms, with jitter in [½, 1] of that, so the transactions
/// of one conflict do not collide again in step.
pub(super) fn pause(attempt: u32) -> Duration {
    let ceiling = (5u64 << attempt.saturating_sub(1).min(5)).min(100);
    let random = u64::try_from(Uuid::new_v4().as_u128() % 1_000).unwrap_or_default();
    Duration::from_millis(ceiling / 2 + ceiling / 2 * random / 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_to_a_cap_with_jitter() {
        for attempt in 1..10 {
            let ms = u64::try_from(pause(attempt).as_millis()).unwrap();
            let ceiling = (5u64 << (attempt - 1).min(5)).min(100);
            assert!(
                ms >= ceiling / 2 && ms <= ceiling,
                "attempt {attempt}: {ms}"
            );
        }
    }

    #[test]
    fn only_conflicts_are_retryable() {
        let conflict = DieselError::DatabaseError(
            DatabaseErrorKind::SerializationFailure,
            Box::new("could not serialize access".to_owned()),
        );
        let deadlock = DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("deadlock detected".to_owned()),
        );
        let unique = DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new("duplicate key".to_owned()),
        );
        assert!(is_retryable(
            &anyhow::Error::new(conflict).context("reserve stock")
        ));
        assert!(is_retryable(
            &anyhow::Error::new(deadlock).context("a").context("b")
        ));
        assert!(!is_retryable(&anyhow::Error::new(unique)));
        assert!(!is_retryable(&anyhow::anyhow!("deadlock detected")));
        assert!(is_retryable_error(&anyhow::Error::new(
            DieselError::DatabaseError(
                DatabaseErrorKind::SerializationFailure,
                Box::new("could not serialize access".to_owned()),
            )
        )));
        assert!(!is_retryable_db_error(&DieselError::NotFound));
    }
}
