//! Status changes: each is conditional on the status read, so of two concurrent changes only
//! one applies, and each publishes its event in the same transaction.

use anyhow::Context;
use diesel::prelude::*;
use kernel::{bus::Tx, db::DbConnection};
use order_api::{
    Order, OrderError, OrderId, OrderStatus,
    events::{OrderCancelled, OrderDelivered, OrderPaid, OrderShipped},
};

use super::{Store, load};
use crate::schema::orders;

impl Store {
    /// Applies a checked status change and publishes its event, atomically.
    pub(crate) fn change_status(
        &self,
        conn: &mut DbConnection,
        order: &Order,
        to: OrderStatus,
        reason: Option<String>,
    ) -> Result<Order, OrderError> {
        self.bus
            .write(conn, |tx| self.change_status_in(tx, order, to, reason))
    }

    pub(crate) fn change_status_in(
        &self,
        tx: &mut Tx<'_>,
        order: &Order,
        to: OrderStatus,
        reason: Option<String>,
    ) -> Result<Order, OrderError> {
        let moved = set_status(
            tx.conn(),
            order.id,
            order.status.as_str(),
            to,
            reason.clone(),
        )?;
        if !moved {
            let now = load(tx.conn(), order.id)?;
            return Err(OrderError::IllegalTransition {
                id: order.id,
                status: now.status,
                action: verb(to),
            });
        }
        let id = order.id;
        match to {
            OrderStatus::Paid => {
                tx.publish(&OrderPaid {
                    order_id: id,
                    total: order.total,
                })?;
            }
            OrderStatus::Cancelled => {
                tx.publish(&OrderCancelled {
                    order_id: id,
                    reason: reason.unwrap_or_else(|| "cancelled".into()),
                    refund: order.status == OrderStatus::Paid,
                })?;
            }
            OrderStatus::Shipped => {
                tx.publish(&OrderShipped { order_id: id })?;
            }
            OrderStatus::Delivered => {
                tx.publish(&OrderDelivered { order_id: id })?;
            }
            OrderStatus::PendingPayment => {}
        }
        load(tx.conn(), id)
    }
}

/// `UPDATE orders SET status = to WHERE id AND status = from`; whether it applied.
pub(super) fn set_status(
    conn: &mut DbConnection,
    id: OrderId,
    from: &str,
    to: OrderStatus,
    reason: Option<String>,
) -> Result<bool, OrderError> {
    let now = kernel::time::now();
    let target = orders::table
        .find(id.to_string())
        .filter(orders::status.eq(from));
    let changed = match reason {
        Some(reason) => diesel::update(target)
            .set((
                orders::status.eq(to.as_str()),
                orders::cancel_reason.eq(Some(reason)),
                orders::updated_at.eq(now),
            ))
            .execute(conn),
        None => diesel::update(target)
            .set((orders::status.eq(to.as_str()), orders::updated_at.eq(now)))
            .execute(conn),
    }
    .context("change order status")?;
    Ok(changed == 1)
}

/// The past tense of moving to `status`, for problem details ("cannot be shipped").
fn verb(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::PendingPayment => "placed",
        OrderStatus::Paid => "paid",
        OrderStatus::Shipped => "shipped",
        OrderStatus::Delivered => "delivered",
        OrderStatus::Cancelled => "cancelled",
    }
}
