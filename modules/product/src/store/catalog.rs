//! Creating, reading, changing and deleting one product. A change applies only to the
//! version it was computed from; a lost race is computed again (see `Store::retrying`).

use anyhow::Context;
use diesel::prelude::*;
use kernel::{
    db::{DbConnection, is_unique_violation},
    version::ExpectedVersion,
};
use product_api::{
    NewProduct, Product, ProductChanges, ProductError, ProductId,
    events::{ProductCreated, ProductDeleted, ProductUpdated},
};

use super::{ProductRow, Store, load};
use crate::{domain, schema::products};

impl Store {
    pub(crate) fn insert(
        &self,
        conn: &mut DbConnection,
        new: NewProduct,
    ) -> Result<Product, ProductError> {
        let now = kernel::time::now();
        let row = ProductRow {
            id: ProductId::new().to_string(),
            sku: new.sku.as_str().to_owned(),
            name: new.name.as_str().to_owned(),
            description: new.description.as_str().to_owned(),
            price_amount: new.price.amount,
            price_currency: new.price.currency.as_str().to_owned(),
            stock: new.stock,
            reserved: 0,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let product = row.clone().into_product()?;
        self.bus.write(conn, |tx| {
            diesel::insert_into(products::table)
                .values(&row)
                .execute(tx.conn())
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        ProductError::DuplicateSku(row.sku.clone())
                    } else {
                        anyhow::Error::new(e).context("insert product").into()
                    }
                })?;
            tx.publish(&ProductCreated {
                product: product.clone(),
            })?;
            // A product created at or below the threshold is low from the start.
            self.check_stock_low(tx, &product, i64::MAX)?;
            Ok(product)
        })
    }

    pub(crate) fn get(
        &self,
        conn: &mut DbConnection,
        id: ProductId,
    ) -> Result<Product, ProductError> {
        load(conn, id)?.into_product()
    }

    pub(crate) fn update(
        &self,
        conn: &mut DbConnection,
        id: ProductId,
        if_match: &ExpectedVersion,
        changes: &ProductChanges,
    ) -> Result<Product, ProductError> {
        let product = self.retrying(conn, |tx| {
            let current = load(tx.conn(), id)?;
            if !if_match.allows(current.version) {
                return Err(ProductError::PreconditionFailed);
            }
            let Some(next) = domain::apply_changes(&current, changes, kernel::time::now())? else {
                // Nothing changes: no write, no event, and the same version (and ETag).
                return Ok(Some(current.into_product()?));
            };
            let applied = diesel::update(
                products::table
                    .find(&current.id)
                    .filter(products::version.eq(current.version)),
            )
            .set((
                products::sku.eq(&next.sku),
                products::name.eq(&next.name),
                products::description.eq(&next.description),
                products::price_amount.eq(next.price_amount),
                products::price_currency.eq(&next.price_currency),
                products::stock.eq(next.stock),
                products::version.eq(next.version),
                products::updated_at.eq(next.updated_at),
            ))
            .execute(tx.conn())
            .map_err(|e| {
                if is_unique_violation(&e) {
                    ProductError::DuplicateSku(next.sku.clone())
                } else {
                    anyhow::Error::new(e).context("update product").into()
                }
            })?;
            if applied == 0 {
                return Ok(None);
            }
            let product = next.into_product()?;
            tx.publish(&ProductUpdated {
                product: product.clone(),
            })?;
            self.check_stock_low(tx, &product, current.stock - current.reserved)?;
            Ok(Some(product))
        })?;
        self.cache.committed(id, Some(product.version));
        Ok(product)
    }

    pub(crate) fn delete(
        &self,
        conn: &mut DbConnection,
        id: ProductId,
        if_match: &ExpectedVersion,
    ) -> Result<(), ProductError> {
        self.retrying(conn, |tx| {
            let current = load(tx.conn(), id)?;
            if !if_match.allows(current.version) {
                return Err(ProductError::PreconditionFailed);
            }
            if current.reserved > 0 {
                return Err(ProductError::HasReservations(id));
            }
            let deleted = diesel::delete(
                products::table
                    .find(&current.id)
                    .filter(products::version.eq(current.version))
                    .filter(products::reserved.eq(0)),
            )
            .execute(tx.conn())
            .context("delete product")?;
            if deleted == 0 {
                return Ok(None);
            }
            tx.publish(&ProductDeleted {
                product_id: id,
                sku: current.sku,
            })?;
            Ok(Some(()))
        })?;
        self.cache.committed(id, None);
        Ok(())
    }
}
