//! Carries out reserved refunds at the gateway, with the refund's id as idempotency key, and
//! records the answer. Used by the refund endpoint, by the cancellation subscriber (after its
//! transaction commits) and by reconciliation (retrying cancellation refunds).

use std::sync::Arc;

use kernel::money::Money;
use payment_api::{Payment, PaymentError, PaymentGateway, PaymentId, RefundId, RefundOutcome};
use tokio::sync::Semaphore;

use crate::{refunds::Finish, store::Store};

/// Refunds carried out at once in the background: each holds a database connection while it
/// waits for its payment's lock, and the pool is shared with requests.
const BACKGROUND_REFUNDS: usize = 2;

#[derive(Clone)]
pub(crate) struct Refunder {
    store: Store,
    gateway: Arc<dyn PaymentGateway>,
    background: Arc<Semaphore>,
}

impl std::fmt::Debug for Refunder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refunder").finish_non_exhaustive()
    }
}

impl Refunder {
    pub(crate) fn new(store: Store, gateway: Arc<dyn PaymentGateway>) -> Self {
        Self {
            store,
            gateway,
            background: Arc::new(Semaphore::new(BACKGROUND_REFUNDS)),
        }
    }

    /// Asks the gateway for refund `refund` of `payment` if it is still pending, and records
    /// the answer. `Ok(None)`: nothing to do (it ended already, or was never committed).
    ///
    /// # Errors
    /// [`PaymentError::GatewayUnavailable`] when the gateway does not answer (the refund stays
    /// pending: reconciliation settles it); [`PaymentError::NotRefundable`] when it refuses.
    pub(crate) async fn execute(
        &self,
        refund: RefundId,
        payment: PaymentId,
    ) -> Result<Option<Payment>, PaymentError> {
        let store = self.store.clone();
        let pending = self
            .store
            .bus
            .db()
            .run(move |conn| store.pending_refund(conn, refund, payment))
            .await?;
        let Some((row, current)) = pending else {
            return Ok(None);
        };
        let amount = Money::new(row.amount, current.amount.currency);
        let finish = match self.gateway.refund(refund, payment, amount).await {
            Ok(RefundOutcome::Refunded) => Finish::Succeeded,
            Ok(RefundOutcome::Refused { code }) => Finish::Failed { code },
            Err(error) => {
                tracing::warn!(error = ?error, %refund, "the payment gateway could not be reached");
                return Err(PaymentError::GatewayUnavailable);
            }
        };
        let store = self.store.clone();
        let recorded = finish.clone();
        let payment = self
            .store
            .bus
            .db()
            .run(move |conn| store.finish_refund(conn, refund, payment, &recorded))
            .await?;
        match finish {
            Finish::Succeeded => Ok(Some(payment)),
            Finish::Failed { code } => Err(PaymentError::NotRefundable(
                payment.id,
                format!("the gateway refused the refund ({code})"),
            )),
        }
    }

    /// [`Refunder::execute`] in the background, a few at a time, logging the outcome.
    pub(crate) fn spawn(
        &self,
        runtime: &tokio::runtime::Handle,
        refund: RefundId,
        payment: PaymentId,
    ) {
        let this = self.clone();
        runtime.spawn(async move {
            let Ok(_turn) = this.background.acquire().await else {
                return;
            };
            match this.execute(refund, payment).await {
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = ?e, %refund, "a refund is left for reconciliation")
                }
            }
        });
    }
}
