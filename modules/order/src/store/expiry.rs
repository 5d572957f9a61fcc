//! The expiry sweep: orders unpaid past their time, or stuck `reserving` after a crash,
//! are cancelled so their stock is released.

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use kernel::db::DbConnection;
use order_api::{OrderError, OrderId, OrderStatus, events::OrderCancelled};

use super::{RESERVING, Store, status::set_status};
use crate::schema::orders;

impl Store {
    /// Orders whose time is up: unpaid past `expires_at`, or stuck `reserving` since before
    /// `stuck_before` (a crash mid-placement).
    pub(crate) fn due_for_expiry(
        &self,
        conn: &mut DbConnection,
        now: NaiveDateTime,
        stuck_before: NaiveDateTime,
    ) -> Result<Vec<(OrderId, String)>, OrderError> {
        let rows: Vec<(String, String)> = orders::table
            .filter(
                orders::status
                    .eq(OrderStatus::PendingPayment.as_str())
                    .and(orders::expires_at.lt(now))
                    .or(orders::status
                        .eq(RESERVING)
                        .and(orders::created_at.lt(stuck_before))),
            )
            .select((orders::id, orders::status))
            .limit(500)
            .load(conn)
            .context("find expired orders")?;
        rows.into_iter()
            .map(|(id, status)| Ok((id.parse().context("corrupt order id")?, status)))
            .collect()
    }

    /// Cancels an expired order (or a placement that never completed) and says so, so its
    /// stock is released.
    pub(crate) fn expire(
        &self,
        conn: &mut DbConnection,
        id: OrderId,
        status: &str,
    ) -> Result<bool, OrderError> {
        let reason = if status == RESERVING {
            "placement did not complete"
        } else {
            "expired"
        };
        self.bus.write(conn, |tx| {
            let moved = set_status(
                tx.conn(),
                id,
                status,
                OrderStatus::Cancelled,
                Some(reason.into()),
            )?;
            if moved {
                tx.publish(&OrderCancelled {
                    order_id: id,
                    reason: reason.into(),
                    refund: false,
                })?;
            }
            Ok(moved)
        })
    }
}
