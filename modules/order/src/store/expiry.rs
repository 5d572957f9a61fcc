//! The expiry sweep: orders unpaid past their time, or stuck `reserving` after a crash,
//! are cancelled so their stock is released.

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use kernel::db::DbConnection;
use order_api::{OrderError, OrderId, OrderStatus, events::OrderCancelled};

use super::{RESERVING, Store, status::set_status};
use crate::schema::{order_items, orders};

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

    /// Cancels an expired order (or removes a placement that never completed) and says so
    /// (`order.cancelled`), so its stock is released.
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
            // A placement that never completed was never shown: it goes away (its total and
            // items were never written); an expired order stays, cancelled.
            let moved = if status == RESERVING {
                let key = id.to_string();
                diesel::delete(order_items::table.filter(order_items::order_id.eq(&key)))
                    .execute(tx.conn())
                    .context("remove the items of an abandoned placement")?;
                diesel::delete(
                    orders::table
                        .find(&key)
                        .filter(orders::status.eq(RESERVING)),
                )
                .execute(tx.conn())
                .context("remove an abandoned placement")?
                    == 1
            } else {
                set_status(
                    tx.conn(),
                    id,
                    status,
                    OrderStatus::Cancelled,
                    Some(reason.into()),
                )?
            };
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
