//! Placing an order. With the product module in this process on this database, the order is
//! written once, already priced and visible, in the unit of work that also holds its stock
//! ([`Store::insert_placed`]). Reaching product over HTTP, it takes two steps around the
//! reservation: stored as `reserving` first ([`Store::insert_reserving`]), so a crash leaves
//! something the expiry sweep can find and undo, then priced and made visible
//! ([`Store::confirm_placed`]) or discarded.

use anyhow::Context;
use diesel::{
    pg::PgConnection,
    prelude::*,
    sql_types::{Array, BigInt, Text, Timestamp},
};
use kernel::{
    bus::Tx,
    db::{DbConnection, prepared, write_tx},
};
use order_api::{Order, OrderError, OrderId, OrderStatus, events::OrderPlaced};

use super::{Draft, OrderRow, RESERVING};
use crate::schema::{order_items, orders};

/// An order being placed, before its stock is reserved: no items or total yet.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    pub id: OrderId,
    pub customer: String,
    pub expires_at: chrono::NaiveDateTime,
    pub created_at: chrono::NaiveDateTime,
}

impl super::Store {
    /// Writes a priced order as placed (`pending_payment`) and publishes `order.placed`.
    pub(crate) fn insert_placed(
        &self,
        conn: &mut DbConnection,
        draft: &Draft,
    ) -> Result<Order, OrderError> {
        self.bus.write(conn, |tx| {
            if let DbConnection::Postgresql(pg) = tx.conn() {
                insert_with_items_on_postgres(pg, draft).context("insert order")?;
            } else {
                // Column tuples rather than `OrderRow`: diesel prepares these once per
                // connection (a derived `Insertable` is planned anew on every run).
                diesel::insert_into(orders::table)
                    .values((
                        orders::id.eq(draft.id.to_string()),
                        orders::customer.eq(&draft.customer),
                        orders::status.eq(OrderStatus::PendingPayment.as_str()),
                        orders::total_amount.eq(draft.total.amount),
                        orders::currency.eq(draft.total.currency.as_str()),
                        orders::expires_at.eq(draft.expires_at),
                        orders::created_at.eq(draft.created_at),
                        orders::updated_at.eq(draft.created_at),
                    ))
                    .execute(tx.conn())
                    .context("insert order")?;
                insert_items(tx, draft)?;
            }
            placed(tx, draft, draft.created_at)
        })
    }

    /// First of the two steps: the order exists (as `reserving`, never shown) before any
    /// stock is held. Its total is written by the second step, from the reservation's prices.
    pub(crate) fn insert_reserving(
        &self,
        conn: &mut DbConnection,
        placement: &Placement,
    ) -> Result<(), OrderError> {
        write_tx(conn, |conn| {
            diesel::insert_into(orders::table)
                .values(&OrderRow {
                    id: placement.id.to_string(),
                    customer: placement.customer.clone(),
                    status: RESERVING.into(),
                    total_amount: 0,
                    currency: String::new(),
                    cancel_reason: None,
                    expires_at: placement.expires_at,
                    created_at: placement.created_at,
                    updated_at: placement.created_at,
                })
                .execute(conn)
                .context("insert order")?;
            Ok(())
        })
    }

    /// Second step: stock is reserved; the order gets its items and total, becomes visible
    /// and `order.placed` goes out.
    pub(crate) fn confirm_placed(
        &self,
        conn: &mut DbConnection,
        draft: &Draft,
    ) -> Result<Order, OrderError> {
        let now = kernel::time::now();
        self.bus.write(conn, |tx| {
            let moved = diesel::update(
                orders::table
                    .find(draft.id.to_string())
                    .filter(orders::status.eq(RESERVING)),
            )
            .set((
                orders::status.eq(OrderStatus::PendingPayment.as_str()),
                orders::total_amount.eq(draft.total.amount),
                orders::currency.eq(draft.total.currency.as_str()),
                orders::updated_at.eq(now),
            ))
            .execute(tx.conn())
            .context("confirm order")?;
            if moved == 0 {
                let id = draft.id;
                return Err(anyhow::anyhow!("order {id} was cancelled while being placed").into());
            }
            insert_items(tx, draft)?;
            placed(tx, draft, now)
        })
    }

    /// Removes an order whose stock could not be reserved: it was never placed.
    pub(crate) fn discard(&self, conn: &mut DbConnection, id: OrderId) -> Result<(), OrderError> {
        write_tx(conn, |conn| {
            diesel::delete(
                orders::table
                    .find(id.to_string())
                    .filter(orders::status.eq(RESERVING)),
            )
            .execute(conn)
            .context("discard order")?;
            Ok(())
        })
    }
}

/// The order and its items in one PostgreSQL statement (a data-modifying `WITH`; the items
/// as arrays, one element each), so placing an order costs one round trip for both.
fn insert_with_items_on_postgres(pg: &mut PgConnection, draft: &Draft) -> QueryResult<usize> {
    let items = &draft.items;
    prepared(
        "WITH placed AS (INSERT INTO orders (id, customer, status, total_amount, currency, \
         expires_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)) \
         INSERT INTO order_items (order_id, product_id, sku, name, unit_amount, quantity) \
         SELECT ?, * FROM unnest(?, ?, ?, ?, ?)",
    )
    .bind::<Text, _>(draft.id.to_string())
    .bind::<Text, _>(&draft.customer)
    .bind::<Text, _>(OrderStatus::PendingPayment.as_str())
    .bind::<BigInt, _>(draft.total.amount)
    .bind::<Text, _>(draft.total.currency.as_str())
    .bind::<Timestamp, _>(draft.expires_at)
    .bind::<Timestamp, _>(draft.created_at)
    .bind::<Timestamp, _>(draft.created_at)
    .bind::<Text, _>(draft.id.to_string())
    .bind::<Array<Text>, _>(
        items
            .iter()
            .map(|i| i.product_id.to_string())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(items.iter().map(|i| i.sku.as_str()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(
        items
            .iter()
            .map(|i| i.unit_price.amount)
            .collect::<Vec<_>>(),
    )
    .bind::<Array<BigInt>, _>(items.iter().map(|i| i.quantity).collect::<Vec<_>>())
    .execute(pg)
}

/// Inserts the items of an order whose row is written.
fn insert_items(tx: &mut Tx<'_>, draft: &Draft) -> Result<(), OrderError> {
    let key = draft.id.to_string();
    for item in &draft.items {
        diesel::insert_into(order_items::table)
            .values((
                order_items::order_id.eq(&key),
                order_items::product_id.eq(item.product_id.to_string()),
                order_items::sku.eq(&item.sku),
                order_items::name.eq(&item.name),
                order_items::unit_amount.eq(item.unit_price.amount),
                order_items::quantity.eq(item.quantity),
            ))
            .execute(tx.conn())
            .context("insert order item")?;
    }
    Ok(())
}

/// Publishes `order.placed` for an order whose rows are written, and returns the order as
/// stored.
fn placed(tx: &mut Tx<'_>, draft: &Draft, now: chrono::NaiveDateTime) -> Result<Order, OrderError> {
    let order = Order {
        id: draft.id,
        customer: draft.customer.clone(),
        status: OrderStatus::PendingPayment,
        items: draft.items.clone(),
        total: draft.total,
        cancel_reason: None,
        expires_at: draft.expires_at.and_utc(),
        created_at: draft.created_at.and_utc(),
        updated_at: now.and_utc(),
    };
    tx.publish(&OrderPlaced {
        order_id: order.id,
        customer: order.customer.clone(),
        items: order.items.clone(),
        total: order.total,
    })?;
    Ok(order)
}
