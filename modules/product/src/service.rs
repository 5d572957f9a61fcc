//! The in-process implementation of [`ProductService`]: each call runs its store function on
//! the blocking pool, inside a span named after the trait method.

use async_trait::async_trait;
use kernel::{db::Db, http::IfMatch};
use product_api::{
    NewProduct, Product, ProductChanges, ProductError, ProductId, ProductPage, ProductQuery,
    ProductService, Reservation, ReservationId, ReservationLines,
};

use crate::store;

#[derive(Debug, Clone)]
pub(crate) struct LocalProducts {
    db: Db,
}

impl LocalProducts {
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }
}

#[async_trait]
impl ProductService for LocalProducts {
    #[tracing::instrument(name = "product.create", skip_all, fields(sku = %input.sku))]
    async fn create(&self, input: NewProduct) -> Result<Product, ProductError> {
        self.db.run(move |c| store::insert(c, input)).await
    }

    #[tracing::instrument(name = "product.get", skip(self))]
    async fn get(&self, id: ProductId) -> Result<Product, ProductError> {
        self.db.run(move |c| store::get(c, id)).await
    }

    #[tracing::instrument(name = "product.list", skip_all, fields(limit = query.limit))]
    async fn list(&self, query: ProductQuery) -> Result<ProductPage, ProductError> {
        self.db.run(move |c| store::list(c, &query)).await
    }

    #[tracing::instrument(name = "product.update", skip(self, changes))]
    async fn update(
        &self,
        id: ProductId,
        if_match: IfMatch,
        changes: ProductChanges,
    ) -> Result<Product, ProductError> {
        self.db
            .run(move |c| store::update(c, id, &if_match, &changes))
            .await
    }

    #[tracing::instrument(name = "product.delete", skip(self))]
    async fn delete(&self, id: ProductId, if_match: IfMatch) -> Result<(), ProductError> {
        self.db.run(move |c| store::delete(c, id, &if_match)).await
    }

    #[tracing::instrument(name = "product.reserve", skip(self, lines), fields(lines = lines.lines().len()))]
    async fn reserve(
        &self,
        id: ReservationId,
        lines: ReservationLines,
    ) -> Result<Reservation, ProductError> {
        self.db.run(move |c| store::reserve(c, id, &lines)).await
    }

    #[tracing::instrument(name = "product.release", skip(self))]
    async fn release(&self, id: ReservationId) -> Result<Reservation, ProductError> {
        self.db.run(move |c| store::release(c, id)).await
    }

    #[tracing::instrument(name = "product.commit", skip(self))]
    async fn commit(&self, id: ReservationId) -> Result<Reservation, ProductError> {
        self.db.run(move |c| store::commit(c, id)).await
    }
}
