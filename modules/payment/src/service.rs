//! The in-process implementation of [`PaymentService`]: database work runs on the blocking
//! pool, gateway calls on the async executor and never inside a transaction, each call in a
//! span named after the trait method. Spans carry ids, never card data.
//!
//! Paying and refunding run as tasks of their own, from the first write to the last: a client
//! that hangs up drops only its wait, never the work, so it cannot strand a payment
//! `processing` or a refund `pending`. What a crash interrupts, reconciliation settles.

use std::sync::Arc;

use async_trait::async_trait;
use kernel::{
    auth::{Principal, Role},
    db::BlockingStore,
    error::FieldError,
};
use order_api::{OrderError, OrderId, OrderService, OrderStatus};
use payment_api::{
    Card, ChargeOutcome, GatewayRecord, Payment, PaymentError, PaymentGateway, PaymentId,
    PaymentPage, PaymentQuery, PaymentService,
};
use tracing::Instrument;

use crate::{
    refunder::Refunder,
    store::{Settlement, Store},
};

/// The failure code of a payment whose gateway could not be reached.
const GATEWAY_ERROR: &str = "gateway_error";

#[derive(Clone)]
pub(crate) struct LocalPayments {
    store: Store,
    orders: Arc<dyn OrderService>,
    gateway: Arc<dyn PaymentGateway>,
    refunder: Refunder,
}

impl std::fmt::Debug for LocalPayments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPayments")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Admins and other services see every payment; everyone else only their own.
fn sees_everything(actor: &Principal) -> bool {
    matches!(actor.role, Role::Admin | Role::Service)
}

fn order_error(order: OrderId, err: OrderError) -> PaymentError {
    match err {
        OrderError::NotFound(_) => PaymentError::OrderNotFound(order),
        OrderError::Unavailable(unavailable) => PaymentError::Unavailable(unavailable),
        other => {
            PaymentError::Unexpected(anyhow::Error::new(other).context("look up the order to pay"))
        }
    }
}

impl LocalPayments {
    pub(crate) fn new(
        store: Store,
        orders: Arc<dyn OrderService>,
        gateway: Arc<dyn PaymentGateway>,
        refunder: Refunder,
    ) -> Self {
        Self {
            store,
            orders,
            gateway,
            refunder,
        }
    }

    /// The whole of a payment: the order is read, the `processing` row created, the card
    /// charged and the outcome recorded.
    async fn pay_now(
        self,
        actor: Principal,
        order_id: OrderId,
        card: Card,
    ) -> Result<Payment, PaymentError> {
        let order = self
            .orders
            .get(&actor, order_id)
            .await
            .map_err(|e| order_error(order_id, e))?;
        if order.status != OrderStatus::PendingPayment {
            return Err(PaymentError::NotPayable(
                order.id,
                format!("it is {}", order.status),
            ));
        }
        // Only the brand and last four digits cross into the store; the card stays here.
        let (brand, last4) = (card.brand(), card.last4().to_owned());
        let started = self
            .store
            .run(move |s, c| s.start(c, &order, brand, &last4))
            .await?;
        tracing::Span::current().record("payment_id", tracing::field::display(started.id));
        self.charge(started, card).await
    }

    /// Charges a `processing` payment and records how it went. A gateway that cannot be
    /// reached fails the payment, so the order stays payable.
    async fn charge(self, started: Payment, card: Card) -> Result<Payment, PaymentError> {
        let settlement = match self.gateway.charge(started.id, started.amount, &card).await {
            Ok(ChargeOutcome::Captured) => Settlement::Captured,
            Ok(ChargeOutcome::Declined { code }) => Settlement::Failed { code },
            Err(error) => {
                tracing::warn!(error = ?error, "the payment gateway could not be reached");
                // Close the key before giving up, so a charge that did reach the gateway is
                // found now and one still on its way cannot land after the payment failed.
                match self.gateway.void(&started.id.into()).await {
                    Ok(GatewayRecord::Charged(ChargeOutcome::Captured)) => Settlement::Captured,
                    Ok(GatewayRecord::Charged(ChargeOutcome::Declined { code })) => {
                        Settlement::Failed { code }
                    }
                    _ => Settlement::Failed {
                        code: GATEWAY_ERROR.into(),
                    },
                }
            }
        };
        let id = started.id;
        self.store
            .run(move |s, c| s.settle(c, id, &settlement))
            .await
            .inspect_err(|e| {
                // The charge happened (or not) but is not recorded: the payment stays
                // `processing` until reconciliation asks the gateway.
                tracing::error!(error = ?e, "a settled charge could not be recorded");
            })
    }
}

#[async_trait]
impl PaymentService for LocalPayments {
    #[tracing::instrument(
        name = "payment.pay",
        skip_all,
        fields(order_id = %order_id, payment_id = tracing::field::Empty, status = tracing::field::Empty)
    )]
    async fn pay(
        &self,
        actor: &Principal,
        order_id: OrderId,
        card: Card,
    ) -> Result<Payment, PaymentError> {
        let span = tracing::Span::current();
        let work = self
            .clone()
            .pay_now(actor.clone(), order_id, card)
            .instrument(span.clone());
        let payment = tokio::spawn(work)
            .await
            .map_err(|e| anyhow::anyhow!("the payment task failed: {e}"))??;
        span.record("status", payment.status.as_str());
        // One line per charge for operators (ids and outcome only, never card data).
        tracing::info!(status = payment.status.as_str(), "charge recorded");
        Ok(payment)
    }

    #[tracing::instrument(name = "payment.get", skip(self, actor), fields(role = %actor.role))]
    async fn get(&self, actor: &Principal, id: PaymentId) -> Result<Payment, PaymentError> {
        let payment = self.store.run(move |s, c| s.get(c, id)).await?;
        if sees_everything(actor) || payment.customer == actor.sub {
            Ok(payment)
        } else {
            Err(PaymentError::NotFound(id))
        }
    }

    #[tracing::instrument(
        name = "payment.list",
        skip_all,
        fields(role = %actor.role, limit = query.limit)
    )]
    async fn list(
        &self,
        actor: &Principal,
        query: PaymentQuery,
    ) -> Result<PaymentPage, PaymentError> {
        let customer = (!sees_everything(actor)).then(|| actor.sub.clone());
        self.store
            .run(move |s, c| s.list(c, &query, customer.as_deref()))
            .await
    }

    #[tracing::instrument(name = "payment.refund", skip(self))]
    async fn refund(&self, id: PaymentId, amount: i64) -> Result<Payment, PaymentError> {
        if amount < 1 {
            return Err(PaymentError::Invalid(vec![FieldError::new(
                "amount",
                "must be at least 1",
            )]));
        }
        let this = self.clone();
        let work = async move {
            let refund = this
                .store
                .run(move |s, c| s.reserve_refund(c, id, amount))
                .await?;
            this.refunder.execute(refund, id).await?.ok_or_else(|| {
                PaymentError::Unexpected(anyhow::anyhow!(
                    "refund {refund} ended before it was carried out"
                ))
            })
        };
        tokio::spawn(work.instrument(tracing::Span::current()))
            .await
            .map_err(|e| anyhow::anyhow!("the refund task failed: {e}"))?
    }
}
