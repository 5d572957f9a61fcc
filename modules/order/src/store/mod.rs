//! Diesel queries for orders. Status changes are conditional on the status read
//! (`UPDATE … WHERE status = <expected>`), so concurrent changes cannot both apply.
//!
//! This file holds the [`Store`], the rows and loading one order; the queries live by
//! concern: `placing` (placing an order, in one step or two), `listing`, `status` (checked
//! status changes and their events) and `expiry` (the sweep of unpaid orders).

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use kernel::{
    bus::Bus,
    db::{BlockingStore, Db, DbConnection},
    money::{Currency, Money},
};
use order_api::{Order, OrderError, OrderId, OrderItem, OrderStatus};

use crate::schema::{order_items, orders};

mod expiry;
mod listing;
mod placing;
mod status;

pub(crate) use placing::Placement;

/// The status of an order still being placed; never shown by the API.
pub(crate) const RESERVING: &str = "reserving";

#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub bus: Bus,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = orders)]
struct OrderRow {
    id: String,
    customer: String,
    status: String,
    total_amount: i64,
    currency: String,
    cancel_reason: Option<String>,
    expires_at: NaiveDateTime,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = order_items)]
struct ItemRow {
    order_id: String,
    product_id: String,
    sku: String,
    name: String,
    unit_amount: i64,
    quantity: i64,
}

/// A priced order about to be stored.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub id: OrderId,
    pub customer: String,
    pub items: Vec<OrderItem>,
    pub total: Money,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

fn to_order(row: OrderRow, items: Vec<ItemRow>) -> Result<Order, OrderError> {
    let currency = Currency::parse(&row.currency).map_err(anyhow::Error::msg)?;
    let items = items
        .into_iter()
        .map(|i| {
            Ok(OrderItem {
                product_id: i.product_id.parse().context("corrupt product id")?,
                sku: i.sku,
                name: i.name,
                unit_price: Money::new(i.unit_amount, currency),
                quantity: i.quantity,
                line_total: Money::new(i.unit_amount * i.quantity, currency),
            })
        })
        .collect::<Result<Vec<_>, OrderError>>()?;
    Ok(Order {
        id: row.id.parse().context("corrupt order id")?,
        customer: row.customer,
        status: OrderStatus::parse(&row.status).map_err(anyhow::Error::msg)?,
        items,
        total: Money::new(row.total_amount, currency),
        cancel_reason: row.cancel_reason,
        expires_at: row.expires_at.and_utc(),
        created_at: row.created_at.and_utc(),
        updated_at: row.updated_at.and_utc(),
    })
}

/// Loads an order, including one still being placed.
fn load_any(
    conn: &mut DbConnection,
    id: OrderId,
) -> Result<Option<(OrderRow, Vec<ItemRow>)>, OrderError> {
    let Some(row) = orders::table
        .find(id.to_string())
        .select(OrderRow::as_select())
        .first(conn)
        .optional()
        .context("load order")?
    else {
        return Ok(None);
    };
    let items = order_items::table
        .filter(order_items::order_id.eq(&row.id))
        .order_by(order_items::product_id)
        .select(ItemRow::as_select())
        .load(conn)
        .context("load order items")?;
    Ok(Some((row, items)))
}

/// A visible order (not one still being placed).
pub(crate) fn load(conn: &mut DbConnection, id: OrderId) -> Result<Order, OrderError> {
    match load_any(conn, id)? {
        Some((row, items)) if row.status != RESERVING => to_order(row, items),
        _ => Err(OrderError::NotFound(id)),
    }
}

impl BlockingStore for Store {
    fn db(&self) -> &Db {
        self.bus.db()
    }
}
