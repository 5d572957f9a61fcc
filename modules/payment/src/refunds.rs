//! Refund rows. A refund is reserved (`pending`) under its payment's row lock before the
//! gateway is called: what is left to refund is the captured amount less what was given back
//! and less every pending refund, so no interleaving of refunds, cancellations and retries can
//! ask the gateway for more than was captured. The gateway's answer then marks the refund
//! `succeeded` (counted in `payments.refunded`, `payment.refunded` published) or `failed` (its
//! amount is free again). Every change is made under the payment's lock and is conditional on
//! the refund still being `pending`, so replicas and reconciliation may race safely.

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use kernel::{bus::Tx, db::DbConnection, money::Money};
use order_api::OrderId;
use payment_api::{
    Payment, PaymentError, PaymentId, PaymentStatus, RefundId, events::PaymentRefunded,
};

use crate::{
    domain,
    schema::{payment_refunds as refunds, payments},
    store::{HOLDING_MONEY, PaymentRow, Store, lock, set_refunded},
};

pub(crate) const PENDING: &str = "pending";
const SUCCEEDED: &str = "succeeded";
const FAILED: &str = "failed";

/// Who asked for a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// An admin, over the API: if its outcome is lost, reconciliation fails it.
    Request,
    /// The cancellation of a paid order: retried until the gateway has given the money back.
    Cancellation,
}

impl Origin {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Cancellation => "cancellation",
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refunds)]
pub(crate) struct RefundRow {
    pub id: String,
    pub payment_id: String,
    pub amount: i64,
    pub status: String,
    pub origin: String,
    pub failure_code: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl RefundRow {
    pub(crate) fn ids(&self) -> anyhow::Result<(RefundId, PaymentId)> {
        Ok((
            self.id.parse().context("corrupt refund id")?,
            self.payment_id
                .parse()
                .context("corrupt payment id of a refund")?,
        ))
    }
}

/// How a refund ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Finish {
    Succeeded,
    Failed { code: String },
}

/// The sum of `payment`'s pending refunds; call it under the payment's lock.
fn pending_total(conn: &mut DbConnection, payment: &str) -> anyhow::Result<i64> {
    let amounts: Vec<i64> = refunds::table
        .filter(refunds::payment_id.eq(payment))
        .filter(refunds::status.eq(PENDING))
        .select(refunds::amount)
        .load(conn)
        .context("read pending refunds")?;
    Ok(amounts.iter().sum())
}

fn insert(
    conn: &mut DbConnection,
    payment: &PaymentRow,
    amount: i64,
    origin: Origin,
) -> anyhow::Result<RefundId> {
    let now = kernel::time::now();
    let id = RefundId::new();
    diesel::insert_into(refunds::table)
        .values(&RefundRow {
            id: id.to_string(),
            payment_id: payment.id.clone(),
            amount,
            status: PENDING.into(),
            origin: origin.as_str().into(),
            failure_code: None,
            created_at: now,
            updated_at: now,
        })
        .execute(conn)
        .context("reserve a refund")?;
    Ok(id)
}

fn status_of(row: &PaymentRow) -> anyhow::Result<PaymentStatus> {
    PaymentStatus::parse(&row.status).map_err(anyhow::Error::msg)
}

impl Store {
    /// Reserves `amount` of payment `id` for a refund an admin asked for.
    ///
    /// # Errors
    /// [`PaymentError::NotFound`]; [`PaymentError::NotRefundable`] when the payment holds no
    /// money or `amount` exceeds what is left once pending refunds are counted.
    pub(crate) fn reserve_refund(
        &self,
        conn: &mut DbConnection,
        id: PaymentId,
        amount: i64,
    ) -> Result<RefundId, PaymentError> {
        self.bus.write(conn, |tx| {
            let row = lock(tx.conn(), id)?.ok_or(PaymentError::NotFound(id))?;
            let pending = pending_total(tx.conn(), &row.id)?;
            domain::refund(status_of(&row)?, row.amount, row.refunded + pending, amount)
                .map_err(|reason| PaymentError::NotRefundable(id, reason))?;
            Ok(insert(tx.conn(), &row, amount, Origin::Request)?)
        })
    }

    /// The refund if it is still pending, read under its payment's lock. The lock also makes
    /// this wait for the transaction that reserved the refund, if it has not committed yet.
    pub(crate) fn pending_refund(
        &self,
        conn: &mut DbConnection,
        refund: RefundId,
        payment: PaymentId,
    ) -> Result<Option<(RefundRow, Payment)>, PaymentError> {
        self.bus.write(conn, |tx| {
            let Some(row) = lock(tx.conn(), payment)? else {
                return Ok(None);
            };
            let found: Option<RefundRow> = refunds::table
                .find(refund.to_string())
                .filter(refunds::status.eq(PENDING))
                .select(RefundRow::as_select())
                .first(tx.conn())
                .optional()
                .context("read a refund")?;
            Ok(found
                .map(|r| row.into_payment().map(|p| (r, p)))
                .transpose()?)
        })
    }

    /// Records how refund `refund` ended, unless it has ended already; returns its payment.
    /// A failed refund frees its amount; if the payment's order was cancelled, that amount is
    /// reserved again for the cancellation, so the customer still gets everything back.
    pub(crate) fn finish_refund(
        &self,
        conn: &mut DbConnection,
        refund: RefundId,
        payment: PaymentId,
        finish: &Finish,
    ) -> Result<Payment, PaymentError> {
        let now = kernel::time::now();
        self.bus.write(conn, |tx| {
            let row = lock(tx.conn(), payment)?.ok_or(PaymentError::NotFound(payment))?;
            let (status, code) = match finish {
                Finish::Succeeded => (SUCCEEDED, None),
                Finish::Failed { code } => (FAILED, Some(code.as_str())),
            };
            let claimed: Option<i64> = diesel::update(
                refunds::table
                    .find(refund.to_string())
                    .filter(refunds::status.eq(PENDING)),
            )
            .set((
                refunds::status.eq(status),
                refunds::failure_code.eq(code),
                refunds::updated_at.eq(now),
            ))
            .returning(refunds::amount)
            .get_result(tx.conn())
            .optional()
            .context("finish a refund")?;
            let Some(amount) = claimed else {
                // Finished already (by reconciliation, a retry or another replica).
                return Ok(row.into_payment()?);
            };
            match finish {
                Finish::Succeeded => {
                    let next = domain::refund(status_of(&row)?, row.amount, row.refunded, amount)
                        .map_err(|reason| {
                        anyhow::anyhow!(
                            "refund {refund} was reserved but does not fit payment \
                                     {payment}: {reason}"
                        )
                    })?;
                    let payment = set_refunded(tx.conn(), row, next.refunded, next.status, now)?;
                    tx.publish(&PaymentRefunded {
                        payment_id: payment.id,
                        order_id: payment.order_id,
                        amount: Money::new(amount, payment.amount.currency),
                        full: next.full,
                    })?;
                    Ok(payment)
                }
                Finish::Failed { .. } => {
                    let cancelled = refunds::table
                        .filter(refunds::payment_id.eq(&row.id))
                        .filter(refunds::origin.eq(Origin::Cancellation.as_str()))
                        .count()
                        .get_result::<i64>(tx.conn())
                        .context("read cancellation refunds")?
                        > 0;
                    if cancelled && HOLDING_MONEY.contains(&row.status.as_str()) {
                        insert(tx.conn(), &row, amount, Origin::Cancellation)?;
                    }
                    Ok(row.into_payment()?)
                }
            }
        })
    }

    /// Pending refunds of `origin` reserved before `before`, oldest first.
    pub(crate) fn stale_pending_refunds(
        &self,
        conn: &mut DbConnection,
        origin: Origin,
        before: NaiveDateTime,
    ) -> anyhow::Result<Vec<RefundRow>> {
        refunds::table
            .filter(refunds::status.eq(PENDING))
            .filter(refunds::origin.eq(origin.as_str()))
            .filter(refunds::created_at.lt(before))
            .order_by(refunds::created_at)
            .select(RefundRow::as_select())
            .load(conn)
            .context("find pending refunds")
    }
}

/// Inside an event handler's transaction: reserves what is left of every payment of `order`
/// that holds money for a refund (pending refunds counted, so being told twice reserves
/// once). Returns the refunds to carry out at the gateway once the transaction has committed.
pub(crate) fn reserve_order_refunds(
    tx: &mut Tx<'_>,
    order: OrderId,
) -> anyhow::Result<Vec<(RefundId, PaymentId)>> {
    let ids: Vec<String> = payments::table
        .filter(payments::order_id.eq(order.to_string()))
        .filter(payments::status.eq_any(HOLDING_MONEY))
        .order_by(payments::id)
        .select(payments::id)
        .load(tx.conn())
        .context("find the payments of a cancelled order")?;
    let mut reserved = Vec::new();
    for id in ids {
        let id: PaymentId = id.parse().context("corrupt payment id")?;
        // Read again under the lock: a concurrent refund may have changed it since.
        let Some(row) = lock(tx.conn(), id)? else {
            continue;
        };
        if !HOLDING_MONEY.contains(&row.status.as_str()) {
            continue;
        }
        let left = row.amount - row.refunded - pending_total(tx.conn(), &row.id)?;
        if left > 0 {
            reserved.push((insert(tx.conn(), &row, left, Origin::Cancellation)?, id));
        }
    }
    Ok(reserved)
}
