//! Holding stock for an order: a reservation takes every line's units all-or-nothing, each
//! with one conditional statement, and the same reservation id asked again returns the
//! first answer instead of holding twice.

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::{
    prelude::*,
    result::Error as DieselError,
    sql_types::{BigInt, Text, Timestamp},
};
use kernel::{
    db::{DbConnection, is_unique_violation, prepared},
    money::{Currency, Money},
};
use product_api::{
    Product, ProductError, Reservation, ReservationId, ReservationLine, ReservationLines,
    ReservationStatus, ReservedLine, events::InventoryReserved,
};

use super::{ProductRow, Store, load};
use crate::schema::{product_reservation_lines as lines, product_reservations as reservations};

/// PostgreSQL advisory lock taken first by every transaction that moves stock (reserve,
/// commit, release), so they cannot deadlock on product rows. Each call locks its own
/// products in id order, so calls never deadlock with each other, and they share the lock
/// ([`Inventory::Shared`]): orders for different products go on side by side. The relay
/// delivers a batch of commits and releases in one transaction, whose products, over the
/// batch, come in any order: a reservation holding product A and waiting for B deadlocked
/// with a batch holding B and wanting A (the victim then waited a second for the deadlock
/// detector). A batch takes the lock alone ([`Inventory::Exclusive`]). Stock moves are
/// short, and on SQLite they are serialized by its single writer anyway.
const INVENTORY_LOCK: i64 = 0x0069_6e76_656e_746f;

/// How a transaction holds [`INVENTORY_LOCK`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Inventory {
    /// One call that locks its products in id order.
    Shared,
    /// A relay batch, whose products come in any order.
    Exclusive,
}

/// Takes [`INVENTORY_LOCK`] until the end of the transaction (PostgreSQL; SQLite's writer
/// lock already holds everything).
pub(super) fn lock_inventory(conn: &mut DbConnection, mode: Inventory) -> QueryResult<()> {
    if let DbConnection::Postgresql(pg) = conn {
        let sql = match mode {
            Inventory::Shared => "SELECT pg_advisory_xact_lock_shared(?)",
            Inventory::Exclusive => "SELECT pg_advisory_xact_lock(?)",
        };
        prepared(sql)
            .bind::<BigInt, _>(INVENTORY_LOCK)
            .execute(pg)?;
    }
    Ok(())
}

/// Takes [`INVENTORY_LOCK`] shared and inserts the active reservation `id`. On PostgreSQL in
/// one statement: the lock is a function in the insert's `FROM`, so holding stock for an order
/// costs one round trip fewer.
fn open_reservation(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> QueryResult<()> {
    let active = ReservationStatus::Active.as_str();
    if let DbConnection::Postgresql(pg) = conn {
        prepared(
            "INSERT INTO product_reservations (id, status, created_at, updated_at) \
             SELECT ?, ?, ?, ? FROM pg_advisory_xact_lock_shared(?)",
        )
        .bind::<Text, _>(id)
        .bind::<Text, _>(active)
        .bind::<Timestamp, _>(now)
        .bind::<Timestamp, _>(now)
        .bind::<BigInt, _>(INVENTORY_LOCK)
        .execute(pg)?;
        return Ok(());
    }
    // SQLite: the writer lock already holds everything. Column tuples rather than a row
    // struct: diesel prepares them once per connection (a derived `Insertable` is planned
    // anew on every run on PostgreSQL).
    diesel::insert_into(reservations::table)
        .values((
            reservations::id.eq(id),
            reservations::status.eq(active),
            reservations::created_at.eq(now),
            reservations::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = reservations)]
struct ReservationRow {
    id: String,
    status: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = lines)]
struct LineRow {
    reservation_id: String,
    product_id: String,
    quantity: i64,
    sku: String,
    name: String,
    unit_amount: i64,
    currency: String,
}

impl LineRow {
    fn into_line(self) -> Result<ReservedLine, ProductError> {
        let currency = Currency::parse(&self.currency).map_err(|e| {
            anyhow::anyhow!(
                "corrupt currency in reservation {}: {e}",
                self.reservation_id
            )
        })?;
        Ok(ReservedLine {
            product_id: self
                .product_id
                .parse()
                .context("corrupt product id in reservation")?,
            sku: self.sku,
            name: self.name,
            unit_price: Money::new(self.unit_amount, currency),
            quantity: self.quantity,
        })
    }
}

pub(super) fn load_reservation(
    conn: &mut DbConnection,
    id: ReservationId,
) -> Result<Option<Reservation>, ProductError> {
    let key = id.to_string();
    let Some(row) = reservations::table
        .find(&key)
        .select(ReservationRow::as_select())
        .first(conn)
        .optional()
        .context("load reservation")?
    else {
        return Ok(None);
    };
    let line_rows: Vec<LineRow> = lines::table
        .filter(lines::reservation_id.eq(&key))
        .order_by(lines::product_id.asc())
        .select(LineRow::as_select())
        .load(conn)
        .context("load reservation lines")?;
    let lines = line_rows
        .into_iter()
        .map(LineRow::into_line)
        .collect::<Result<Vec<_>, ProductError>>()?;
    Ok(Some(Reservation {
        id,
        status: ReservationStatus::parse(&row.status).map_err(anyhow::Error::msg)?,
        lines,
        created_at: row.created_at.and_utc(),
        updated_at: row.updated_at.and_utc(),
    }))
}

/// The same id again returns what was reserved the first time (at the first time's prices),
/// so a retried call never reserves twice.
fn existing_reservation(
    conn: &mut DbConnection,
    id: ReservationId,
    wanted: &ReservationLines,
) -> Result<Option<Reservation>, ProductError> {
    match load_reservation(conn, id)? {
        Some(r) if r.holds(wanted) => Ok(Some(r)),
        Some(_) => Err(ProductError::ReservationConflict(id)),
        None => Ok(None),
    }
}

impl Store {
    /// Holds every line of `wanted` or none, and answers with each line priced as the product
    /// stood when its stock was taken (the same statement that takes it reads it back).
    pub(crate) fn reserve(
        &self,
        conn: &mut DbConnection,
        id: ReservationId,
        wanted: &ReservationLines,
    ) -> Result<Reservation, ProductError> {
        let now = kernel::time::now();
        let key = id.to_string();
        let outcome = self.bus.write(conn, |tx| {
            // Inserting the reservation first makes a repeated or concurrent call with the same
            // id fail on the primary key, before anything is held, instead of reserving twice.
            open_reservation(tx.conn(), &key, now)?;
            let mut held = Vec::with_capacity(wanted.lines().len());
            let mut touched = Vec::with_capacity(wanted.lines().len());
            for line in wanted.lines() {
                let product = hold_line(tx.conn(), &key, line, now)?;
                self.check_stock_low(tx, &product, product.available + line.quantity)?;
                touched.push((product.id, product.version));
                held.push(ReservedLine {
                    product_id: product.id,
                    sku: product.sku,
                    name: product.name,
                    unit_price: product.price,
                    quantity: line.quantity,
                });
            }
            tx.publish(&InventoryReserved {
                reservation_id: id,
                lines: wanted.lines().to_vec(),
            })?;
            Ok::<_, ReserveError>((held, touched))
        });
        match outcome {
            Ok((lines, touched)) => {
                self.committed(conn, &touched);
                Ok(Reservation {
                    id,
                    status: ReservationStatus::Active,
                    lines,
                    created_at: now.and_utc(),
                    updated_at: now.and_utc(),
                })
            }
            Err(ReserveError::Db(e)) if is_unique_violation(&e) => {
                existing_reservation(conn, id, wanted)?.ok_or_else(|| {
                    anyhow::anyhow!("reservation {id} conflicted but is absent").into()
                })
            }
            Err(ReserveError::Db(e)) => Err(anyhow::Error::new(e).context("reserve stock").into()),
            Err(ReserveError::Product(e)) => Err(e),
        }
    }

    pub(crate) fn release(
        &self,
        conn: &mut DbConnection,
        id: ReservationId,
    ) -> Result<Reservation, ProductError> {
        self.close_reservation(conn, id, ReservationStatus::Released)
    }

    pub(crate) fn commit(
        &self,
        conn: &mut DbConnection,
        id: ReservationId,
    ) -> Result<Reservation, ProductError> {
        self.close_reservation(conn, id, ReservationStatus::Committed)
    }
}

/// Inside `reserve`: diesel errors stay inspectable (a unique violation means "already
/// reserved") until the transaction is over.
#[derive(Debug)]
enum ReserveError {
    Db(DieselError),
    Product(ProductError),
}

impl From<DieselError> for ReserveError {
    fn from(e: DieselError) -> Self {
        Self::Db(e)
    }
}

/// Takes a line's units from its product and returns the row after. Parameters: the
/// quantity, now, the product id, the quantity again.
macro_rules! take_stock {
    () => {
        "UPDATE products SET reserved = reserved + ?, version = version + 1, updated_at = ? \
         WHERE id = ? AND stock - reserved >= ? RETURNING id, sku, name, description, \
         price_amount, price_currency, stock, reserved, version, created_at, updated_at"
    };
}

const TAKE_STOCK: &str = take_stock!();

/// [`TAKE_STOCK`] and the reservation's line, priced from the row it returns, in one
/// PostgreSQL statement (a data-modifying `WITH`, which SQLite lacks). Parameters: those of
/// [`TAKE_STOCK`], then the reservation id and the quantity.
const PG_HOLD_LINE: &str = concat!(
    "WITH held AS (",
    take_stock!(),
    "), line AS (INSERT INTO product_reservation_lines (reservation_id, product_id, quantity, \
     sku, name, unit_amount, currency) SELECT ?, id, ?, sku, name, price_amount, \
     price_currency FROM held) SELECT * FROM held"
);

impl From<ProductError> for ReserveError {
    fn from(e: ProductError) -> Self {
        Self::Product(e)
    }
}

impl From<anyhow::Error> for ReserveError {
    fn from(e: anyhow::Error) -> Self {
        Self::Product(e.into())
    }
}

/// Holds `line.quantity` units for reservation `reservation_id` and records its line, if that
/// many are available (one atomic `UPDATE`, so two concurrent reservations can never both
/// take the last unit), and returns the product after.
fn hold_line(
    conn: &mut DbConnection,
    reservation_id: &str,
    line: &ReservationLine,
    now: NaiveDateTime,
) -> Result<Product, ReserveError> {
    // Raw SQL, prepared once per connection: diesel never caches an UPDATE it builds, and
    // preparing this one again for every order was 6.5% of the server's CPU per order.
    let take = |sql| {
        prepared(sql)
            .bind::<BigInt, _>(line.quantity)
            .bind::<Timestamp, _>(now)
            .bind::<Text, _>(line.product_id.to_string())
            .bind::<BigInt, _>(line.quantity)
    };
    let held: Option<ProductRow> = if let DbConnection::Postgresql(pg) = conn {
        take(PG_HOLD_LINE)
            .bind::<Text, _>(reservation_id)
            .bind::<BigInt, _>(line.quantity)
            .get_result(pg)
            .optional()?
    } else {
        let held: Option<ProductRow> = take(TAKE_STOCK).get_result(conn).optional()?;
        if let Some(product) = &held {
            diesel::insert_into(lines::table)
                .values((
                    lines::reservation_id.eq(reservation_id),
                    lines::product_id.eq(&product.id),
                    lines::quantity.eq(line.quantity),
                    lines::sku.eq(&product.sku),
                    lines::name.eq(&product.name),
                    lines::unit_amount.eq(product.price_amount),
                    lines::currency.eq(&product.price_currency),
                ))
                .execute(conn)?;
        }
        held
    };
    if let Some(row) = held {
        return Ok(row.into_product()?);
    }
    let current = load(conn, line.product_id)?;
    Err(ProductError::InsufficientStock {
        product_id: line.product_id,
        requested: line.quantity,
        available: current.stock - current.reserved,
    }
    .into())
}
