//! Running a module's store off the async executor. A store is a bundle of cheap handles
//! (the bus, keys, a cache) whose methods do blocking diesel work; every service ran that work
//! on the blocking pool through the same few lines, which live here once.

use std::future::Future;

use super::{Db, DbConnection, Retryable, retry_on_conflict};

/// A module's store: its methods take a connection and block. The provided methods run them
/// on tokio's blocking pool, inside the caller's span:
/// `self.store.run(move |store, conn| store.get(conn, id)).await`.
pub trait BlockingStore: Clone + Send + 'static {
    /// The database the store works on.
    fn db(&self) -> &Db;

    /// Runs `work` with a clone of the store and a pooled connection.
    ///
    /// # Errors
    /// Whatever `work` returns, or an unexpected error when no connection is available or
    /// the work panicked.
    fn run<T, E, F>(&self, work: F) -> impl Future<Output = Result<T, E>> + Send
    where
        F: FnOnce(&Self, &mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<anyhow::Error> + Send + 'static,
    {
        let store = self.clone();
        self.db().run(move |conn| work(&store, conn))
    }

    /// [`Self::run`] for a write: a transaction that loses a lock conflict to a concurrent one
    /// (a deadlock, a serialization failure) runs again instead of failing the caller.
    ///
    /// # Errors
    /// As [`Self::run`], after the retries.
    fn write<T, E, F>(&self, mut work: F) -> impl Future<Output = Result<T, E>> + Send
    where
        F: FnMut(&Self, &mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<anyhow::Error> + Retryable + Send + 'static,
    {
        self.run(move |store, conn| retry_on_conflict(conn, |conn| work(store, conn)))
    }
}
