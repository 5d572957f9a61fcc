//! Listing products: text search (name or SKU), price range and currency filters, three
//! sort keys in either direction, and keyset pages after a cursor.

use anyhow::Context;
use diesel::prelude::*;
use kernel::db::{DbConnection, KeysetPage, MultiBackend};
use product_api::{After, ProductError, ProductPage, ProductQuery, SortKey};

use super::{ProductRow, Store};
use crate::schema::products;

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

type BoxedProducts = products::BoxedQuery<'static, MultiBackend>;

/// The filter part of a listing, shared by the page query and the count.
fn filtered(query: &ProductQuery) -> BoxedProducts {
    let mut q = products::table.into_boxed();
    if let Some(text) = &query.q {
        let pattern = format!("%{}%", escape_like(&text.to_lowercase()));
        q = q.filter(
            lower(products::name)
                .like(pattern.clone())
                .escape('\\')
                .or(lower(products::sku).like(pattern).escape('\\')),
        );
    }
    if let Some(min) = query.min_price {
        q = q.filter(products::price_amount.ge(min));
    }
    if let Some(max) = query.max_price {
        q = q.filter(products::price_amount.le(max));
    }
    if let Some(currency) = query.currency {
        q = q.filter(products::price_currency.eq(currency.as_str().to_owned()));
    }
    q
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Keyset pagination: the next page starts strictly after the cursor's (value, id).
fn after(q: BoxedProducts, after: &After, descending: bool) -> BoxedProducts {
    macro_rules! keyset {
        ($column:expr, $value:expr, $id:expr) => {{
            let id = $id.to_string();
            if descending {
                q.filter(
                    $column
                        .lt($value.clone())
                        .or($column.eq($value).and(products::id.lt(id))),
                )
            } else {
                q.filter(
                    $column
                        .gt($value.clone())
                        .or($column.eq($value).and(products::id.gt(id))),
                )
            }
        }};
    }
    match after {
        After::Name(name, id) => keyset!(products::name, name.clone(), id),
        After::Price(amount, id) => keyset!(products::price_amount, *amount, id),
        After::CreatedAt(at, id) => keyset!(products::created_at, at.naive_utc(), id),
    }
}

fn ordered(q: BoxedProducts, key: SortKey, descending: bool) -> BoxedProducts {
    match (key, descending) {
        (SortKey::Name, false) => q.order_by((products::name.asc(), products::id.asc())),
        (SortKey::Name, true) => q.order_by((products::name.desc(), products::id.desc())),
        (SortKey::Price, false) => q.order_by((products::price_amount.asc(), products::id.asc())),
        (SortKey::Price, true) => q.order_by((products::price_amount.desc(), products::id.desc())),
        (SortKey::CreatedAt, false) => q.order_by((products::created_at.asc(), products::id.asc())),
        (SortKey::CreatedAt, true) => {
            q.order_by((products::created_at.desc(), products::id.desc()))
        }
    }
}

impl Store {
    pub(crate) fn list(
        &self,
        conn: &mut DbConnection,
        query: &ProductQuery,
    ) -> Result<ProductPage, ProductError> {
        let total: i64 = filtered(query)
            .count()
            .get_result(conn)
            .context("count products")?;
        let mut page = filtered(query);
        if let Some(position) = &query.after {
            page = after(page, position, query.sort.descending);
        }
        let rows: Vec<ProductRow> = ordered(page, query.sort.key, query.sort.descending)
            .limit(KeysetPage::<ProductRow>::fetch(query.limit))
            .select(ProductRow::as_select())
            .load(conn)
            .context("list products")?;
        let (items, next) = KeysetPage::of(rows, query.limit)
            .try_map(ProductRow::into_product)?
            .finish(|p| After::of(p, query.sort.key).encode());
        Ok(ProductPage {
            items,
            next,
            total: u64::try_from(total).unwrap_or_default(),
        })
    }
}
