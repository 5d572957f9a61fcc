//! The migrations runner. Several processes may start at once on one database (replicas
//! rolled out together): they take turns under a database-wide lock, so the first applies
//! what is pending and the others, once it is done, find nothing left to do. Without it, two
//! processes create the same tables at once and one fails (`relation "products" already
//! exists`, or a duplicate `pg_type` row from two concurrent `CREATE TABLE`s).

use anyhow::{Context, anyhow};
use diesel::{
    backend::Backend as DieselBackend, migration::MigrationSource, prelude::*, sql_types::BigInt,
    sqlite::SqliteConnection,
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

use super::{Db, DbConnection, Migrations};

/// The PostgreSQL advisory lock every Tessera process takes to migrate: an arbitrary constant
/// (`tessera` in ASCII), the same in every release.
const MIGRATIONS_LOCK: i64 = 0x0074_6573_7365_7261;

/// `EmbeddedMigrations` is a migration source only by value; this lends it by reference.
struct Embedded(&'static EmbeddedMigrations);

impl<DB: DieselBackend> MigrationSource<DB> for Embedded {
    fn migrations(
        &self,
    ) -> diesel::migration::Result<Vec<Box<dyn diesel::migration::Migration<DB>>>> {
        MigrationSource::<DB>::migrations(self.0)
    }
}

type Pick = fn(&Migrations) -> &'static EmbeddedMigrations;

fn apply<C, DB>(conn: &mut C, sets: &[Migrations], pick: Pick) -> anyhow::Result<Vec<String>>
where
    C: MigrationHarness<DB>,
    DB: DieselBackend,
{
    let mut applied = Vec::new();
    for set in sets {
        let done = conn
            .run_pending_migrations(Embedded(pick(set)))
            .map_err(|e| anyhow!("migrations of module {} failed: {e}", set.module))?;
        applied.extend(done.iter().map(ToString::to_string));
    }
    Ok(applied)
}

impl Db {
    /// Applies every pending migration of the given modules, returning the versions applied.
    /// Concurrent callers on one database take turns: PostgreSQL under an advisory lock held
    /// by the migrating session, SQLite inside one `BEGIN IMMEDIATE` transaction (other
    /// processes wait for it up to their busy timeout).
    ///
    /// # Errors
    /// The first migration that fails, with its module (nothing of a failed SQLite run is
    /// kept), or a lock that cannot be taken.
    pub fn migrate(&self, sets: &[Migrations]) -> anyhow::Result<Vec<String>> {
        // A session of its own, closed after: the advisory lock cannot outlive it, even when
        // unlocking fails, and no pooled connection is handed out still holding it.
        let mut conn = self
            .manager
            .open()
            .map_err(|e| anyhow!("cannot connect to migrate: {}", e.to_string().trim()))?;
        match &mut conn {
            DbConnection::Postgresql(c) => {
                diesel::sql_query("SELECT pg_advisory_lock($1)")
                    .bind::<BigInt, _>(MIGRATIONS_LOCK)
                    .execute(c)
                    .context("cannot take the migrations lock")?;
                let applied = apply(c, sets, |s| s.postgres);
                let unlocked = diesel::sql_query("SELECT pg_advisory_unlock($1)")
                    .bind::<BigInt, _>(MIGRATIONS_LOCK)
                    .execute(c);
                if let Err(e) = unlocked {
                    tracing::warn!(error = %e, "cannot release the migrations lock; closing the session releases it");
                }
                applied
            }
            DbConnection::Sqlite(c) => {
                SqliteConnection::immediate_transaction(c, |c| apply(c, sets, |s| s.sqlite))
            }
        }
    }

    /// The versions of the given modules' migrations not applied yet (for `tessera doctor`).
    ///
    /// # Errors
    /// The database cannot be read.
    pub fn pending_migrations(&self, sets: &[Migrations]) -> anyhow::Result<Vec<String>> {
        let mut conn = self.get()?;
        let mut pending = Vec::new();
        for set in sets {
            let names = match &mut *conn {
                DbConnection::Sqlite(c) => c
                    .pending_migrations(Embedded(set.sqlite))
                    .map(|v| v.iter().map(|m| m.name().to_string()).collect::<Vec<_>>()),
                DbConnection::Postgresql(c) => c
                    .pending_migrations(Embedded(set.postgres))
                    .map(|v| v.iter().map(|m| m.name().to_string()).collect::<Vec<_>>()),
            }
            .map_err(|e| anyhow!("cannot read the migrations of module {}: {e}", set.module))?;
            pending.extend(names.into_iter().map(|n| format!("{}: {n}", set.module)));
        }
        Ok(pending)
    }
}
