//! Diesel queries for orders. Status changes are conditional on the status read
//! (`UPDATE … WHERE status = <expected>`), so concurrent changes cannot both apply.

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use kernel::{
    bus::{Bus, Tx},
    db::DbConnection,
    money::{Currency, Money},
};
use order_api::{
    Order, OrderError, OrderId, OrderItem, OrderPage, OrderQuery, OrderStatus,
    events::{OrderCancelled, OrderDelivered, OrderPaid, OrderPlaced, OrderShipped},
};

use crate::schema::{order_items, orders};

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

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
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

    pub(crate) fn list(
        &self,
        conn: &mut DbConnection,
        query: &OrderQuery,
    ) -> Result<OrderPage, OrderError> {
        let mut q = orders::table
            .filter(orders::status.ne(RESERVING))
            .select(OrderRow::as_select())
            .into_boxed();
        if let Some(customer) = &query.customer {
            q = q.filter(orders::customer.eq(customer.clone()));
        }
        if let Some(status) = query.status {
            q = q.filter(orders::status.eq(status.as_str()));
        }
        if let Some(before) = query.before {
            q = q.filter(orders::id.lt(before.to_string()));
        }
        let rows: Vec<OrderRow> = q
            .order_by(orders::id.desc())
            .limit(i64::from(query.limit) + 1)
            .load(conn)
            .context("list orders")?;
        let has_more = rows.len() > query.limit as usize;
        let rows: Vec<OrderRow> = rows.into_iter().take(query.limit as usize).collect();
        // The page's lines in one query, not one per order.
        let ids: Vec<&String> = rows.iter().map(|r| &r.id).collect();
        let mut lines: std::collections::HashMap<String, Vec<ItemRow>> = Default::default();
        for line in order_items::table
            .filter(order_items::order_id.eq_any(ids))
            .order_by((order_items::order_id, order_items::product_id))
            .select(ItemRow::as_select())
            .load::<ItemRow>(conn)
            .context("load order items")?
        {
            lines.entry(line.order_id.clone()).or_default().push(line);
        }
        let items = rows
            .into_iter()
            .map(|row| {
                let own = lines.remove(&row.id).unwrap_or_default();
                to_order(row, own)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let next = has_more
            .then(|| {
                items
                    .last()
                    .map(|o: &Order| kernel::http::cursor::encode(&o.id))
            })
            .flatten();
        Ok(OrderPage { items, next })
    }

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

/// `UPDATE orders SET status = to WHERE id AND status = from`; whether it applied.
fn set_status(
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
