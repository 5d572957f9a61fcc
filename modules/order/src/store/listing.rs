//! Listing orders, newest first: by customer and status, in keyset pages, each page's lines
//! loaded in one query.

use anyhow::Context;
use diesel::prelude::*;
use kernel::db::{DbConnection, KeysetPage, MultiBackend, page_total};
use order_api::{Order, OrderError, OrderPage, OrderQuery};

use super::{ItemRow, OrderRow, RESERVING, Store, to_order};
use crate::schema::{order_items, orders};

impl Store {
    pub(crate) fn list(
        &self,
        conn: &mut DbConnection,
        query: &OrderQuery,
    ) -> Result<OrderPage, OrderError> {
        // The filter, shared by the count and the page.
        let filtered = || {
            let mut q = orders::table
                .filter(orders::status.ne(RESERVING))
                .into_boxed::<MultiBackend>();
            if let Some(customer) = &query.customer {
                q = q.filter(orders::customer.eq(customer.clone()));
            }
            if let Some(status) = query.status {
                q = q.filter(orders::status.eq(status.as_str()));
            }
            q
        };
        let total: i64 = filtered()
            .count()
            .get_result(conn)
            .context("count orders")?;
        let mut q = filtered().select(OrderRow::as_select());
        if let Some(before) = query.before {
            q = q.filter(orders::id.lt(before.to_string()));
        }
        let rows: Vec<OrderRow> = q
            .order_by(orders::id.desc())
            .limit(KeysetPage::<OrderRow>::fetch(query.limit))
            .load(conn)
            .context("list orders")?;
        let page = KeysetPage::of(rows, query.limit);
        // The page's lines in one query, not one per order.
        let ids: Vec<&String> = page.items.iter().map(|r| &r.id).collect();
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
        let (items, next) = page
            .try_map(|row| {
                let own = lines.remove(&row.id).unwrap_or_default();
                to_order(row, own)
            })?
            .finish(|o: &Order| kernel::http::cursor::encode(&o.id));
        Ok(OrderPage {
            items,
            next,
            total: page_total(total),
        })
    }
}
