//! Diesel queries for products and reservations. Every write is one transaction; every
//! change that depends on what was read is a conditional `UPDATE … WHERE`, so it stays
//! correct on PostgreSQL's read-committed isolation as well as under SQLite's single writer.
//!
//! This file holds the [`Store`], the product row and what the writes share; the queries
//! live by concern: `catalog` (create, read, change, delete), `listing` (search, sort,
//! pages), `reservations` (holding stock for an order) and `settlement` (committing or
//! releasing what was held).

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use kernel::{
    bus::{Bus, Tx},
    db::{BlockingStore, Db, DbConnection},
    money::{Currency, Money},
};
use product_api::{Product, ProductError, ProductId, events::StockLow};

use crate::{cache::ReadCache, schema::products};

mod catalog;
mod listing;
mod reservations;
mod settlement;

/// How many times an optimistic write is retried when a concurrent writer got there first.
const WRITE_ATTEMPTS: usize = 5;

/// The product module's persistence: every write goes through the bus, so its events are
/// published in the same transaction, and tells the read cache what it changed.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub bus: Bus,
    pub stock_low_threshold: i64,
    pub cache: ReadCache,
}

impl BlockingStore for Store {
    fn db(&self) -> &Db {
        self.bus.db()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = products)]
pub(crate) struct ProductRow {
    pub id: String,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price_amount: i64,
    pub price_currency: String,
    pub stock: i64,
    pub reserved: i64,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl ProductRow {
    fn into_product(self) -> Result<Product, ProductError> {
        let id = self
            .id
            .parse()
            .with_context(|| format!("corrupt product id {:?}", self.id))?;
        let currency = Currency::parse(&self.price_currency)
            .map_err(|e| anyhow::anyhow!("corrupt currency of product {}: {e}", self.id))?;
        Ok(Product {
            id,
            sku: self.sku,
            name: self.name,
            description: self.description,
            price: Money::new(self.price_amount, currency),
            stock: self.stock,
            reserved: self.reserved,
            available: self.stock - self.reserved,
            version: self.version,
            created_at: self.created_at.and_utc(),
            updated_at: self.updated_at.and_utc(),
        })
    }
}

fn load(conn: &mut DbConnection, id: ProductId) -> Result<ProductRow, ProductError> {
    products::table
        .find(id.to_string())
        .select(ProductRow::as_select())
        .first(conn)
        .optional()
        .context("load product")?
        .ok_or(ProductError::NotFound(id))
}

impl Store {
    /// Publishes `product.stock_low` when this change took `available` from above the threshold
    /// to at or below it (once per crossing, not on every change while low).
    fn check_stock_low(
        &self,
        tx: &mut Tx<'_>,
        product: &Product,
        available_before: i64,
    ) -> Result<(), ProductError> {
        let threshold = self.stock_low_threshold;
        if available_before > threshold && product.available <= threshold {
            tx.publish(&StockLow {
                product_id: product.id,
                sku: product.sku.clone(),
                available: product.available,
                threshold,
            })?;
        }
        Ok(())
    }

    /// Runs an optimistic write until it applies or fails for a reason other than a race.
    fn retrying<T>(
        &self,
        conn: &mut DbConnection,
        mut attempt: impl FnMut(&mut Tx<'_>) -> Result<Option<T>, ProductError>,
    ) -> Result<T, ProductError> {
        for _ in 0..WRITE_ATTEMPTS {
            if let Some(done) = self.bus.write(conn, &mut attempt)? {
                return Ok(done);
            }
        }
        Err(anyhow::anyhow!("gave up after {WRITE_ATTEMPTS} concurrent modifications").into())
    }

    /// After a write on `conn`: the products it changed, at their new versions. When the
    /// write joined a transaction still open (a unit of work another module commits), the
    /// read cache holds back the old versions until the new ones show instead.
    fn committed(&self, conn: &mut DbConnection, touched: &[(ProductId, i64)]) {
        let open = kernel::db::in_transaction(conn);
        for &(product, version) in touched {
            if open {
                self.cache.uncommitted(product, version);
            } else {
                self.cache.committed(product, Some(version));
            }
        }
    }
}
