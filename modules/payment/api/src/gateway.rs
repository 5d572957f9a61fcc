//! The card processor the payment module talks to, and what it answers.
//!
//! Every call carries an idempotency key: the payment's id for its charge, the refund's id for
//! a refund. A gateway answers a repeated key with the first outcome instead of acting twice,
//! so a retry, a redelivery or a second replica can never move money twice, and
//! reconciliation can ask what happened under a key.

use async_trait::async_trait;
use kernel_api::money::Money;

use crate::{Card, PaymentId, RefundId};

/// What a gateway says about a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Captured,
    Declined { code: String },
}

/// What a gateway says about a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    Refunded,
    /// Not given back, e.g. `voided` when reconciliation closed the key first.
    Refused {
        code: String,
    },
}

/// The idempotency key of a gateway call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<PaymentId> for IdempotencyKey {
    fn from(id: PaymentId) -> Self {
        Self(format!("charge:{id}"))
    }
}

impl From<RefundId> for IdempotencyKey {
    fn from(id: RefundId) -> Self {
        Self(format!("refund:{id}"))
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a gateway did under one idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayRecord {
    /// A charge, and how it went.
    Charged(ChargeOutcome),
    /// A refund was given back.
    Refunded,
    /// Nothing was done, and nothing will be: the key was closed by [`PaymentGateway::void`].
    Voided,
}

/// A card processor.
#[async_trait]
pub trait PaymentGateway: Send + Sync + 'static {
    /// Charges `amount` to `card`, with `payment` as the idempotency key.
    ///
    /// # Errors
    /// The gateway could not be reached (not a decline).
    async fn charge(
        &self,
        payment: PaymentId,
        amount: Money,
        card: &Card,
    ) -> anyhow::Result<ChargeOutcome>;

    /// Gives back `amount` of `payment`, with `refund` as the idempotency key.
    ///
    /// # Errors
    /// The gateway could not be reached.
    async fn refund(
        &self,
        refund: RefundId,
        payment: PaymentId,
        amount: Money,
    ) -> anyhow::Result<RefundOutcome>;

    /// What was done under `key`, if anything.
    ///
    /// # Errors
    /// The gateway could not be reached.
    async fn lookup(&self, key: &IdempotencyKey) -> anyhow::Result<Option<GatewayRecord>>;

    /// What was done under `key`; if nothing was, closes the key so that a call still in flight
    /// with it is refused ([`GatewayRecord::Voided`]). Reconciliation decides with this, so its
    /// verdict on an interrupted operation cannot be overtaken by that operation.
    ///
    /// # Errors
    /// The gateway could not be reached.
    async fn void(&self, key: &IdempotencyKey) -> anyhow::Result<GatewayRecord>;
}
