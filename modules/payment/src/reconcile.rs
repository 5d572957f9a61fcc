//! Reconciliation: settles what a crash, a lost task or an unreachable gateway left open, by
//! asking the gateway what happened under each idempotency key.
//!
//! - A payment `processing` for longer than `reconcile_after_secs`: the gateway is asked to
//!   [`void`](PaymentGateway::void) its key. Captured → `succeeded` (and `payment.succeeded`,
//!   so the saga goes on); declined → `failed` with its code; nothing done → `failed`
//!   (`interrupted`), and the order can be paid again. Voiding instead of a plain lookup means a
//!   charge still in flight cannot land after the verdict.
//! - A refund an admin asked for, `pending` for as long: the same with its key: refunded →
//!   `succeeded`; nothing done → `failed`, its amount free again.
//! - A refund for a cancelled order, still `pending`: asked again with the same key (the
//!   gateway does it once), until done.
//!
//! Every change is conditional on the row still being `processing`/`pending`, so several
//! replicas may run this at once.

use std::{sync::Arc, time::Duration};

use payment_api::{ChargeOutcome, GatewayRecord, PaymentError, PaymentGateway, PaymentId};

use crate::{
    refunder::Refunder,
    refunds::{Finish, Origin},
    store::{Settlement, Store},
};

/// The failure code of a charge or refund reconciliation found never done.
const INTERRUPTED: &str = "interrupted";

/// What one pass settled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// `processing` payments settled.
    pub payments: usize,
    /// Pending refunds settled (succeeded or failed).
    pub refunds: usize,
}

#[derive(Clone)]
pub(crate) struct Reconciler {
    pub store: Store,
    pub gateway: Arc<dyn PaymentGateway>,
    pub refunder: Refunder,
}

impl Reconciler {
    /// One pass over what has been open for longer than `age`; cancellation refunds are
    /// retried once they are `retry_after` old.
    ///
    /// # Errors
    /// The database could not be read; a gateway that does not answer only leaves its
    /// operations for the next pass.
    pub(crate) async fn run(
        &self,
        age: Duration,
        retry_after: Duration,
    ) -> Result<Reconciled, PaymentError> {
        let now = kernel::time::now();
        let before = |d: Duration| now - chrono::Duration::from_std(d).unwrap_or_default();
        let mut done = Reconciled::default();

        let (store, cutoff) = (self.store.clone(), before(age));
        let stale = self
            .run_db(move |c| Ok(store.stale_processing(c, cutoff)?))
            .await?;
        for id in stale {
            match self.settle_payment(id).await {
                Ok(()) => done.payments += 1,
                Err(e) => {
                    tracing::warn!(error = ?e, payment_id = %id, "cannot reconcile a payment yet")
                }
            }
        }

        let store = self.store.clone();
        let requested = self
            .run_db(move |c| Ok(store.stale_pending_refunds(c, Origin::Request, cutoff)?))
            .await?;
        for row in requested {
            let (refund, payment) = row.ids()?;
            let finish = match self.gateway.void(&refund.into()).await {
                Ok(GatewayRecord::Refunded) => Finish::Succeeded,
                Ok(_) => Finish::Failed {
                    code: INTERRUPTED.into(),
                },
                Err(e) => {
                    tracing::warn!(error = ?e, %refund, "cannot reconcile a refund yet");
                    continue;
                }
            };
            let store = self.store.clone();
            self.run_db(move |c| store.finish_refund(c, refund, payment, &finish))
                .await?;
            done.refunds += 1;
        }

        let (store, cutoff) = (self.store.clone(), before(retry_after));
        let owed = self
            .run_db(move |c| Ok(store.stale_pending_refunds(c, Origin::Cancellation, cutoff)?))
            .await?;
        for row in owed {
            let (refund, payment) = row.ids()?;
            match self.refunder.execute(refund, payment).await {
                Ok(_) => done.refunds += 1,
                Err(e) => {
                    tracing::warn!(error = ?e, %refund, "a cancellation refund is still owed")
                }
            }
        }
        if done != Reconciled::default() {
            tracing::info!(
                payments = done.payments,
                refunds = done.refunds,
                "reconciled with the gateway"
            );
        }
        Ok(done)
    }

    async fn settle_payment(&self, id: PaymentId) -> Result<(), PaymentError> {
        let settlement = match self.gateway.void(&id.into()).await? {
            GatewayRecord::Charged(ChargeOutcome::Captured) => Settlement::Captured,
            GatewayRecord::Charged(ChargeOutcome::Declined { code }) => Settlement::Failed { code },
            GatewayRecord::Refunded | GatewayRecord::Voided => Settlement::Failed {
                code: INTERRUPTED.into(),
            },
        };
        let store = self.store.clone();
        self.run_db(move |c| store.settle(c, id, &settlement).map(drop))
            .await
    }

    async fn run_db<T, F>(&self, work: F) -> Result<T, PaymentError>
    where
        F: FnOnce(&mut kernel::db::DbConnection) -> Result<T, PaymentError> + Send + 'static,
        T: Send + 'static,
    {
        self.store.bus.db().run(work).await
    }

    /// Runs a pass at once and then every `every` until `stop` changes.
    pub(crate) fn start(
        self,
        age: Duration,
        every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.run(age, every).await {
                    tracing::warn!(error = ?e, "payment reconciliation failed");
                }
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = stop.changed() => break,
                }
            }
        })
    }
}
