//! Placing an order in two steps around the stock reservation: stored as `reserving` first,
//! then made visible (publishing `order.placed`) or discarded.

use anyhow::Context;
use diesel::prelude::*;
use kernel::db::DbConnection;
use order_api::{Order, OrderError, OrderId, OrderStatus, events::OrderPlaced};

use super::{Draft, ItemRow, OrderRow, RESERVING, Store, load, status::set_status};
use crate::schema::{order_items, orders};

impl Store {
    /// First step of placing: the order exists (as `reserving`) before any stock is held, so
    /// a crash between the steps leaves something the expiry sweep can find and undo.
    pub(crate) fn insert_reserving(
        &self,
        conn: &mut DbConnection,
        draft: &Draft,
    ) -> Result<(), OrderError> {
        let now = kernel::time::now();
        self.bus.write(conn, |tx| {
            diesel::insert_into(orders::table)
                .values(&OrderRow {
                    id: draft.id.to_string(),
                    customer: draft.customer.clone(),
                    status: RESERVING.into(),
                    total_amount: draft.total.amount,
                    currency: draft.total.currency.as_str().into(),
                    cancel_reason: None,
                    expires_at: draft.expires_at,
                    created_at: now,
                    updated_at: now,
                })
                .execute(tx.conn())
                .context("insert order")?;
            for item in &draft.items {
                diesel::insert_into(order_items::table)
                    .values(&ItemRow {
                        order_id: draft.id.to_string(),
                        product_id: item.product_id.to_string(),
                        sku: item.sku.clone(),
                        name: item.name.clone(),
                        unit_amount: item.unit_price.amount,
                        quantity: item.quantity,
                    })
                    .execute(tx.conn())
                    .context("insert order item")?;
            }
            Ok(())
        })
    }

    /// Second step: stock is reserved, the order becomes visible and `order.placed` goes out.
    pub(crate) fn confirm_placed(
        &self,
        conn: &mut DbConnection,
        id: OrderId,
    ) -> Result<Order, OrderError> {
        self.bus.write(conn, |tx| {
            let moved = set_status(tx.conn(), id, RESERVING, OrderStatus::PendingPayment, None)?;
            if !moved {
                return Err(anyhow::anyhow!("order {id} was cancelled while being placed").into());
            }
            let order = load(tx.conn(), id)?;
            tx.publish(&OrderPlaced {
                order_id: id,
                customer: order.customer.clone(),
                items: order.items.clone(),
                total: order.total,
            })?;
            Ok(order)
        })
    }

    /// Removes an order whose stock could not be reserved: it was never placed.
    pub(crate) fn discard(&self, conn: &mut DbConnection, id: OrderId) -> Result<(), OrderError> {
        self.bus.write(conn, |tx| {
            let key = id.to_string();
            diesel::delete(order_items::table.filter(order_items::order_id.eq(&key)))
                .execute(tx.conn())
                .context("discard order items")?;
            diesel::delete(
                orders::table
                    .find(&key)
                    .filter(orders::status.eq(RESERVING)),
            )
            .execute(tx.conn())
            .context("discard order")?;
            Ok(())
        })
    }
}
