//! Raw SQL that each connection prepares once.
//!
//! `diesel::sql_query` marks its statement unsafe to cache, so every run prepares it again:
//! on the relay's hot path that was a fifth of its CPU on SQLite. [`prepared`] is the same
//! raw SQL with typed binds, cached per connection under its text (the SQL is a constant, so
//! the cache stays as small as the set of call sites).
//!
//! Each `?` in the SQL is one parameter, bound in the order they appear; diesel writes the
//! backend's placeholder there (`?` on SQLite, `$1, $2, …` on PostgreSQL), so one text serves
//! both. A value used twice is bound twice. The SQL must not hold a `?` of its own (in a
//! string literal, say).
//!
//! ```ignore
//! let rows: Vec<Row> = prepared("SELECT … WHERE seq > ? LIMIT ?")
//!     .bind::<BigInt, _>(seq)
//!     .bind::<BigInt, _>(limit)
//!     .load(conn)?;
//! ```

use std::marker::PhantomData;

use diesel::prelude::RunQueryDsl;
use diesel::{
    backend::Backend,
    query_builder::{AstPass, Query, QueryFragment, QueryId},
    result::{Error, QueryResult},
    serialize::ToSql,
    sql_types::{HasSqlType, Untyped},
};

/// Raw SQL whose prepared statement the connection keeps; see the module docs.
#[must_use = "a statement runs only when loaded or executed"]
pub fn prepared(sql: &'static str) -> Prepared<()> {
    Prepared {
        sql,
        binds: (),
        replanned: false,
    }
}

/// A statement from [`prepared`] and its binds so far.
#[derive(Debug, Clone)]
#[must_use = "a statement runs only when loaded or executed"]
pub struct Prepared<B> {
    sql: &'static str,
    binds: B,
    replanned: bool,
}

/// One bound value of SQL type `ST`.
#[derive(Debug, Clone)]
pub struct Bind<ST, T> {
    value: T,
    sql_type: PhantomData<ST>,
}

impl<B> Prepared<B> {
    /// Not kept: planned for its actual parameters on every run. For PostgreSQL statements
    /// whose best plan depends on their arrays' sizes: after five runs of a kept statement
    /// PostgreSQL may settle on a generic plan, and for the relay's inbox and mark statements
    /// that plan halved the drain rate.
    pub fn replanned(mut self) -> Self {
        self.replanned = true;
        self
    }

    /// Binds the next parameter.
    pub fn bind<ST, T>(self, value: T) -> Prepared<(B, Bind<ST, T>)> {
        Prepared {
            replanned: self.replanned,
            sql: self.sql,
            binds: (
                self.binds,
                Bind {
                    value,
                    sql_type: PhantomData,
                },
            ),
        }
    }
}

/// The binds of a [`Prepared`], pushed first to last.
pub trait Binds<DB: Backend> {
    /// Pushes the SQL up to each parameter, then the parameter, first to last.
    ///
    /// # Errors
    /// Fewer parameters in the SQL than binds, or a value that cannot be serialized.
    fn push<'b>(
        &'b self,
        sql: &mut std::str::Split<'static, char>,
        out: &mut AstPass<'_, 'b, DB>,
    ) -> QueryResult<()>;
}

impl<DB: Backend> Binds<DB> for () {
    fn push<'b>(
        &'b self,
        _: &mut std::str::Split<'static, char>,
        _: &mut AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        Ok(())
    }
}

impl<DB, B, ST, T> Binds<DB> for (B, Bind<ST, T>)
where
    DB: Backend + HasSqlType<ST>,
    B: Binds<DB>,
    T: ToSql<ST, DB>,
{
    fn push<'b>(
        &'b self,
        sql: &mut std::str::Split<'static, char>,
        out: &mut AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        self.0.push(sql, out)?;
        let before = sql.next().ok_or_else(|| mismatch("more binds than"))?;
        out.push_sql(before);
        out.push_bind_param::<ST, T>(&self.1.value)
    }
}

fn mismatch(what: &str) -> Error {
    Error::QueryBuilderError(format!("{what} parameters in the statement").into())
}

impl<DB: Backend, B: Binds<DB>> QueryFragment<DB> for Prepared<B> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        if self.replanned {
            out.unsafe_to_cache_prepared();
        }
        let mut sql = self.sql.split('?');
        self.binds.push(&mut sql, &mut out)?;
        let rest = sql.next().ok_or_else(|| mismatch("more binds than"))?;
        out.push_sql(rest);
        if sql.next().is_some() {
            return Err(mismatch("fewer binds than"));
        }
        Ok(())
    }
}

// No static id: the connection caches the statement under its SQL text.
impl<B> QueryId for Prepared<B> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<B> Query for Prepared<B> {
    type SqlType = Untyped;
}

impl<B, Conn> RunQueryDsl<Conn> for Prepared<B> {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use diesel::{
        QueryableByName,
        sql_types::{BigInt, Text},
        sqlite::SqliteConnection,
    };

    use super::*;
    use diesel::Connection;

    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        n: i64,
        #[diesel(sql_type = Text)]
        s: String,
    }

    fn conn() -> SqliteConnection {
        SqliteConnection::establish(":memory:").unwrap()
    }

    #[test]
    fn binds_go_to_the_placeholders_in_order() {
        let row: Row = prepared("SELECT ? + 1 AS n, ? AS s")
            .bind::<BigInt, _>(41_i64)
            .bind::<Text, _>("tea")
            .get_result(&mut conn())
            .unwrap();
        assert_eq!((row.n, row.s.as_str()), (42, "tea"));
    }

    #[test]
    fn a_bind_count_that_does_not_match_the_placeholders_is_an_error() {
        let too_many = prepared("SELECT ? AS n, 'x' AS s")
            .bind::<BigInt, _>(1_i64)
            .bind::<BigInt, _>(2_i64)
            .get_result::<Row>(&mut conn());
        let error = too_many.err().unwrap().to_string();
        assert!(error.contains("more binds than parameters"), "{error}");
        let too_few = prepared("SELECT ? AS n, coalesce(?, 'x') AS s")
            .bind::<BigInt, _>(1_i64)
            .get_result::<Row>(&mut conn());
        let error = too_few.err().unwrap().to_string();
        assert!(error.contains("fewer binds than parameters"), "{error}");
    }
}
