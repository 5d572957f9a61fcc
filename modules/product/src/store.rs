//! Diesel queries for products and reservations. Every write is one transaction; every
//! change that depends on what was read is a conditional `UPDATE … WHERE`, so it stays
//! correct on PostgreSQL's read-committed isolation as well as under SQLite's single writer.

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::{
    prelude::*,
    result::{DatabaseErrorKind, Error as DieselError},
};
use kernel::{
    bus::{Bus, Tx},
    db::{DbConnection, MultiBackend},
    money::{Currency, Money},
    version::ExpectedVersion,
};
use product_api::{
    After, NewProduct, Product, ProductChanges, ProductError, ProductId, ProductPage, ProductQuery,
    Reservation, ReservationId, ReservationLine, ReservationLines, ReservationStatus, SortKey,
    events::{
        InventoryCommitted, InventoryReleased, InventoryReserved, ProductCreated, ProductDeleted,
        ProductUpdated, StockLow,
    },
};

use crate::{
    cache::ReadCache,
    domain,
    schema::{product_reservation_lines as lines, product_reservations as reservations, products},
};

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// How many times an optimistic write is retried when a concurrent writer got there first.
const WRITE_ATTEMPTS: usize = 5;

/// PostgreSQL advisory lock taken first by every transaction that moves stock (reserve,
/// commit, release), so they cannot deadlock on product rows. Each of them locks its own
/// products in id order, but the relay delivers a batch of commits and releases in one
/// transaction, whose products, over the batch, come in any order: a reservation holding
/// product A and waiting for B deadlocked with a batch holding B and wanting A (the victim
/// then waited a second for the deadlock detector). Stock moves are short, and on SQLite
/// they are serialized by its single writer anyway.
const INVENTORY_LOCK: i64 = 0x0069_6e76_656e_746f;

/// Takes [`INVENTORY_LOCK`] until the end of the transaction (PostgreSQL; SQLite's writer
/// lock already holds everything).
fn lock_inventory(conn: &mut DbConnection) -> QueryResult<()> {
    if let DbConnection::Postgresql(pg) = conn {
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<diesel::sql_types::BigInt, _>(INVENTORY_LOCK)
            .execute(pg)?;
    }
    Ok(())
}

/// The product module's persistence: every write goes through the bus, so its events are
/// published in the same transaction, and tells the read cache what it changed.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub bus: Bus,
    pub stock_low_threshold: i64,
    pub cache: ReadCache,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
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

fn is_unique_violation(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
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

    pub(crate) fn get(
        &self,
        conn: &mut DbConnection,
        id: ProductId,
    ) -> Result<Product, ProductError> {
        load(conn, id)?.into_product()
    }
}

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
            .limit(i64::from(query.limit) + 1)
            .select(ProductRow::as_select())
            .load(conn)
            .context("list products")?;
        let has_more = rows.len() > query.limit as usize;
        let items = rows
            .into_iter()
            .take(query.limit as usize)
            .map(ProductRow::into_product)
            .collect::<Result<Vec<_>, _>>()?;
        let next = has_more
            .then(|| items.last().map(|p| After::of(p, query.sort.key).encode()))
            .flatten();
        Ok(ProductPage {
            items,
            next,
            total: u64::try_from(total).unwrap_or_default(),
        })
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
            let next = domain::apply_changes(&current, changes, kernel::time::now())?;
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

// ---------------------------------------------------------------------------------------
// Reservations.

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = reservations)]
struct ReservationRow {
    id: String,
    status: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = lines)]
struct LineRow {
    reservation_id: String,
    product_id: String,
    quantity: i64,
}

fn load_reservation(
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
        .map(|l| {
            Ok(ReservationLine {
                product_id: l
                    .product_id
                    .parse()
                    .context("corrupt product id in reservation")?,
                quantity: l.quantity,
            })
        })
        .collect::<Result<Vec<_>, ProductError>>()?;
    Ok(Some(Reservation {
        id,
        status: ReservationStatus::parse(&row.status).map_err(anyhow::Error::msg)?,
        lines,
        created_at: row.created_at.and_utc(),
        updated_at: row.updated_at.and_utc(),
    }))
}

/// The same id again returns what was reserved the first time, so a retried call never
/// reserves twice.
fn existing_reservation(
    conn: &mut DbConnection,
    id: ReservationId,
    wanted: &ReservationLines,
) -> Result<Option<Reservation>, ProductError> {
    match load_reservation(conn, id)? {
        Some(r) if r.lines == wanted.lines() => Ok(Some(r)),
        Some(_) => Err(ProductError::ReservationConflict(id)),
        None => Ok(None),
    }
}

impl Store {
    pub(crate) fn reserve(
        &self,
        conn: &mut DbConnection,
        id: ReservationId,
        wanted: &ReservationLines,
    ) -> Result<Reservation, ProductError> {
        if let Some(done) = existing_reservation(conn, id, wanted)? {
            return Ok(done);
        }
        let now = kernel::time::now();
        let outcome = self.bus.write(conn, |tx| {
            lock_inventory(tx.conn())?;
            // Inserting the reservation first makes a concurrent call with the same id fail on
            // the primary key instead of reserving a second time.
            diesel::insert_into(reservations::table)
                .values(&ReservationRow {
                    id: id.to_string(),
                    status: ReservationStatus::Active.as_str().to_owned(),
                    created_at: now,
                    updated_at: now,
                })
                .execute(tx.conn())?;
            let mut touched = Vec::with_capacity(wanted.lines().len());
            for line in wanted.lines() {
                let product = take_stock(tx.conn(), line, now)?;
                touched.push((product.id, product.version));
                diesel::insert_into(lines::table)
                    .values(&LineRow {
                        reservation_id: id.to_string(),
                        product_id: line.product_id.to_string(),
                        quantity: line.quantity,
                    })
                    .execute(tx.conn())?;
                self.check_stock_low(tx, &product, product.available + line.quantity)?;
            }
            tx.publish(&InventoryReserved {
                reservation_id: id,
                lines: wanted.lines().to_vec(),
            })?;
            Ok::<_, ReserveError>(touched)
        });
        match outcome {
            Ok(touched) => {
                self.committed(&touched);
                load_reservation(conn, id)?
                    .ok_or_else(|| anyhow::anyhow!("reservation {id} vanished after commit").into())
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

    fn close_reservation(
        &self,
        conn: &mut DbConnection,
        id: ReservationId,
        to: ReservationStatus,
    ) -> Result<Reservation, ProductError> {
        let (reservation, touched) = self.bus.write(conn, |tx| self.close(tx, id, to))?;
        self.committed(&touched);
        Ok(reservation)
    }

    /// [`Self::close`] inside a transaction the caller commits (a saga subscriber's, which the
    /// relay commits): the read cache holds back the old versions until the new ones show.
    pub(crate) fn close_in(
        &self,
        tx: &mut Tx<'_>,
        id: ReservationId,
        to: ReservationStatus,
    ) -> Result<Reservation, ProductError> {
        let (reservation, touched) = self.close(tx, id, to)?;
        for (product, version) in touched {
            self.cache.uncommitted(product, version);
        }
        Ok(reservation)
    }

    /// After a commit: the products it changed, at their new versions.
    fn committed(&self, touched: &[(ProductId, i64)]) {
        for &(product, version) in touched {
            self.cache.committed(product, Some(version));
        }
    }

    /// Moves a reservation to `to` inside `tx` and applies it to stock:
    /// active → committed (the units leave stock), active → released (they are free again),
    /// committed → released (a paid order was cancelled before shipping: they come back).
    /// Asking for the state it is already in changes nothing. The status change is
    /// conditional on the status read, so of two concurrent calls only one applies.
    /// Returns the reservation and the products it changed, at their new versions.
    fn close(
        &self,
        tx: &mut Tx<'_>,
        id: ReservationId,
        to: ReservationStatus,
    ) -> Result<(Reservation, Vec<(ProductId, i64)>), ProductError> {
        use ReservationStatus::{Active, Committed, Released};
        let now = kernel::time::now();
        lock_inventory(tx.conn()).context("lock the inventory")?;
        for _ in 0..WRITE_ATTEMPTS {
            let current =
                load_reservation(tx.conn(), id)?.ok_or(ProductError::ReservationNotFound(id))?;
            // Per unit: how stock and reserved move.
            let (stock_delta, reserved_delta) = match (current.status, to) {
                (from, to) if from == to => return Ok((current, Vec::new())),
                (Active, Committed) => (-1, -1),
                (Active, Released) => (0, -1),
                (Committed, Released) => (1, 0),
                (from, _) => {
                    return Err(ProductError::ReservationClosed {
                        id,
                        status: from,
                        action: if to == Committed {
                            "committed"
                        } else {
                            "released"
                        },
                    });
                }
            };
            let moved = diesel::update(
                reservations::table
                    .find(id.to_string())
                    .filter(reservations::status.eq(current.status.as_str())),
            )
            .set((
                reservations::status.eq(to.as_str()),
                reservations::updated_at.eq(now),
            ))
            .execute(tx.conn())
            .context("close reservation")?;
            if moved == 0 {
                continue;
            }
            let mut touched = Vec::with_capacity(current.lines.len());
            for line in &current.lines {
                let version: Option<i64> =
                    diesel::update(products::table.find(line.product_id.to_string()))
                        .set((
                            products::stock.eq(products::stock + stock_delta * line.quantity),
                            products::reserved
                                .eq(products::reserved + reserved_delta * line.quantity),
                            products::version.eq(products::version + 1),
                            products::updated_at.eq(now),
                        ))
                        .returning(products::version)
                        .get_result(tx.conn())
                        .optional()
                        .context("apply reservation to stock")?;
                let Some(version) = version else {
                    return Err(anyhow::anyhow!(
                        "product {} of reservation {id} is missing",
                        line.product_id
                    )
                    .into());
                };
                touched.push((line.product_id, version));
            }
            let lines = current.lines.clone();
            if to == Committed {
                tx.publish(&InventoryCommitted {
                    reservation_id: id,
                    lines,
                })?;
            } else {
                tx.publish(&InventoryReleased {
                    reservation_id: id,
                    lines,
                })?;
            }
            let reservation = Reservation {
                status: to,
                updated_at: now.and_utc(),
                ..current
            };
            return Ok((reservation, touched));
        }
        Err(anyhow::anyhow!("gave up on reservation {id} after concurrent changes").into())
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

/// Holds `line.quantity` units if that many are available — one atomic statement, so two
/// concurrent reservations can never both take the last unit. Returns the product after.
fn take_stock(
    conn: &mut DbConnection,
    line: &ReservationLine,
    now: NaiveDateTime,
) -> Result<Product, ReserveError> {
    let pid = line.product_id.to_string();
    let held = diesel::update(
        products::table
            .find(&pid)
            .filter((products::stock - products::reserved).ge(line.quantity)),
    )
    .set((
        products::reserved.eq(products::reserved + line.quantity),
        products::version.eq(products::version + 1),
        products::updated_at.eq(now),
    ))
    .execute(conn)?;
    let current = load(conn, line.product_id)?;
    if held == 1 {
        return Ok(current.into_product()?);
    }
    Err(ProductError::InsufficientStock {
        product_id: line.product_id,
        requested: line.quantity,
        available: current.stock - current.reserved,
    }
    .into())
}
