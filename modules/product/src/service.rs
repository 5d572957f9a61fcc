//! The in-process implementation of [`ProductService`]: each call runs its store method on
//! the blocking pool, inside a span named after the trait method. (The HTTP layer's `GET` of
//! one product answers from the read cache when it can: `ReadCache::response`.)

use async_trait::async_trait;
use kernel::{
    db::{DbConnection, retry_on_conflict},
    version::ExpectedVersion,
};
use product_api::{
    NewProduct, Product, ProductChanges, ProductError, ProductId, ProductPage, ProductQuery,
    ProductService, Reservation, ReservationId, ReservationLines,
};

use crate::store::Store;

#[derive(Debug, Clone)]
pub(crate) struct LocalProducts {
    store: Store,
}

impl LocalProducts {
    pub(crate) fn new(store: Store) -> Self {
        Self { store }
    }

    async fn run<T, F>(&self, work: F) -> Result<T, ProductError>
    where
        F: FnOnce(&Store, &mut DbConnection) -> Result<T, ProductError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.store.clone();
        self.store
            .bus
            .db()
            .run(move |conn| work(&store, conn))
            .await
    }

    /// [`Self::run`] for a write: a transaction that loses a lock conflict to a concurrent
    /// one (a deadlock, a serialization failure) runs again instead of failing the caller.
    async fn write<T, F>(&self, mut work: F) -> Result<T, ProductError>
    where
        F: FnMut(&Store, &mut DbConnection) -> Result<T, ProductError> + Send + 'static,
        T: Send + 'static,
    {
        self.run(move |store, conn| retry_on_conflict(conn, |conn| work(store, conn)))
            .await
    }
}

#[async_trait]
impl ProductService for LocalProducts {
    #[tracing::instrument(name = "product.create", skip_all, fields(sku = %input.sku))]
    async fn create(&self, input: NewProduct) -> Result<Product, ProductError> {
        self.write(move |s, c| s.insert(c, input.clone())).await
    }

    #[tracing::instrument(name = "product.get", skip(self))]
    async fn get(&self, id: ProductId) -> Result<Product, ProductError> {
        self.run(move |s, c| s.get(c, id)).await
    }

    #[tracing::instrument(name = "product.list", skip_all, fields(limit = query.limit))]
    async fn list(&self, query: ProductQuery) -> Result<ProductPage, ProductError> {
        self.run(move |s, c| s.list(c, &query)).await
    }

    #[tracing::instrument(name = "product.update", skip(self, changes))]
    async fn update(
        &self,
        id: ProductId,
        if_match: ExpectedVersion,
        changes: ProductChanges,
    ) -> Result<Product, ProductError> {
        self.write(move |s, c| s.update(c, id, &if_match, &changes))
            .await
    }

    #[tracing::instrument(name = "product.delete", skip(self))]
    async fn delete(&self, id: ProductId, if_match: ExpectedVersion) -> Result<(), ProductError> {
        self.write(move |s, c| s.delete(c, id, &if_match)).await
    }

    #[tracing::instrument(name = "product.reserve", skip(self, lines), fields(lines = lines.lines().len()))]
    async fn reserve(
        &self,
        id: ReservationId,
        lines: ReservationLines,
    ) -> Result<Reservation, ProductError> {
        self.write(move |s, c| s.reserve(c, id, &lines)).await
    }

    #[tracing::instrument(name = "product.release", skip(self))]
    async fn release(&self, id: ReservationId) -> Result<Reservation, ProductError> {
        self.write(move |s, c| s.release(c, id)).await
    }

    #[tracing::instrument(name = "product.commit", skip(self))]
    async fn commit(&self, id: ReservationId) -> Result<Reservation, ProductError> {
        self.write(move |s, c| s.commit(c, id)).await
    }
}
