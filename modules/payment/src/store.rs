//! Diesel queries for payments. Every write is one transaction through the bus, so the events
//! it causes are published with it. A change that depends on what was read is either a
//! conditional `UPDATE … WHERE` or made under a row lock, so it stays correct on
//! PostgreSQL's read-committed isolation as well as under SQLite's single writer.

use anyhow::{Context, anyhow};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use kernel::{
    bus::Bus,
    db::{
        BlockingStore, Db, DbConnection, KeysetPage, MultiBackend, is_unique_violation, page_total,
    },
    money::{Currency, Money},
};
use order_api::Order;
use payment_api::{
    Payment, PaymentError, PaymentId, PaymentPage, PaymentQuery, PaymentStatus,
    events::{PaymentFailed, PaymentSucceeded},
};

use crate::schema::payments;

/// The statuses in which a payment holds captured money.
pub(crate) const HOLDING_MONEY: [&str; 2] = [
    PaymentStatus::Succeeded.as_str(),
    PaymentStatus::PartiallyRefunded.as_str(),
];

/// The payment module's persistence: every write goes through the bus, so its events are
/// published in the same transaction.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub bus: Bus,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = payments)]
pub(crate) struct PaymentRow {
    pub id: String,
    pub order_id: String,
    pub customer: String,
    pub amount: i64,
    pub currency: String,
    pub refunded: i64,
    pub status: String,
    pub brand: String,
    pub last4: String,
    pub failure_code: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl PaymentRow {
    pub(crate) fn into_payment(self) -> anyhow::Result<Payment> {
        let id = self
            .id
            .parse()
            .with_context(|| format!("corrupt payment id {:?}", self.id))?;
        let order_id = self
            .order_id
            .parse()
            .with_context(|| format!("corrupt order id of payment {}", self.id))?;
        let currency = Currency::parse(&self.currency)
            .map_err(|e| anyhow!("corrupt currency of payment {}: {e}", self.id))?;
        let status = PaymentStatus::parse(&self.status)
            .map_err(|e| anyhow!("corrupt status of payment {}: {e}", self.id))?;
        Ok(Payment {
            id,
            order_id,
            customer: self.customer,
            amount: Money::new(self.amount, currency),
            refunded: self.refunded,
            status,
            brand: self.brand,
            last4: self.last4,
            failure_code: self.failure_code,
            created_at: self.created_at.and_utc(),
            updated_at: self.updated_at.and_utc(),
        })
    }
}

/// How a charge ended, as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settlement {
    Captured,
    Failed { code: String },
}

pub(crate) fn load(conn: &mut DbConnection, id: PaymentId) -> Result<PaymentRow, PaymentError> {
    payments::table
        .find(id.to_string())
        .select(PaymentRow::as_select())
        .first(conn)
        .optional()
        .context("load payment")?
        .ok_or(PaymentError::NotFound(id))
}

impl BlockingStore for Store {
    fn db(&self) -> &Db {
        self.bus.db()
    }
}

impl Store {
    /// Records a `processing` payment of `order`'s total: the claim on the order that the
    /// partial unique index makes exclusive, taken before the gateway is called.
    pub(crate) fn start(
        &self,
        conn: &mut DbConnection,
        order: &Order,
        brand: &str,
        last4: &str,
    ) -> Result<Payment, PaymentError> {
        let now = kernel::time::now();
        let row = PaymentRow {
            id: PaymentId::new().to_string(),
            order_id: order.id.to_string(),
            customer: order.customer.clone(),
            amount: order.total.amount,
            currency: order.total.currency.as_str().to_owned(),
            refunded: 0,
            status: PaymentStatus::Processing.as_str().to_owned(),
            brand: brand.to_owned(),
            last4: last4.to_owned(),
            failure_code: None,
            created_at: now,
            updated_at: now,
        };
        let payment = row.clone().into_payment()?;
        self.bus.write(conn, |tx| {
            diesel::insert_into(payments::table)
                .values(&row)
                .execute(tx.conn())
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        PaymentError::NotPayable(
                            order.id,
                            "a payment is already in progress or has succeeded".into(),
                        )
                    } else {
                        anyhow::Error::new(e).context("insert payment").into()
                    }
                })?;
            Ok(payment)
        })
    }

    /// Moves a `processing` payment to `succeeded` or `failed` and publishes the outcome.
    pub(crate) fn settle(
        &self,
        conn: &mut DbConnection,
        id: PaymentId,
        settlement: &Settlement,
    ) -> Result<Payment, PaymentError> {
        let now = kernel::time::now();
        let (status, code) = match settlement {
            Settlement::Captured => (PaymentStatus::Succeeded, None),
            Settlement::Failed { code } => (PaymentStatus::Failed, Some(code.as_str())),
        };
        self.bus.write(conn, |tx| {
            let changed = diesel::update(
                payments::table
                    .find(id.to_string())
                    .filter(payments::status.eq(PaymentStatus::Processing.as_str())),
            )
            .set((
                payments::status.eq(status.as_str()),
                payments::failure_code.eq(code),
                payments::updated_at.eq(now),
            ))
            .execute(tx.conn())
            .context("settle payment")?;
            let payment = load(tx.conn(), id)?.into_payment()?;
            if changed == 0 {
                // Settled already, by reconciliation or another replica (conditional update:
                // whoever came first decided, and published).
                return Ok(payment);
            }
            match settlement {
                Settlement::Captured => tx.publish(&PaymentSucceeded {
                    payment_id: id,
                    order_id: payment.order_id,
                    amount: payment.amount,
                })?,
                Settlement::Failed { code } => tx.publish(&PaymentFailed {
                    payment_id: id,
                    order_id: payment.order_id,
                    failure_code: code.clone(),
                })?,
            };
            Ok(payment)
        })
    }

    pub(crate) fn get(
        &self,
        conn: &mut DbConnection,
        id: PaymentId,
    ) -> Result<Payment, PaymentError> {
        Ok(load(conn, id)?.into_payment()?)
    }

    /// Newest first; only `customer`'s payments when given.
    pub(crate) fn list(
        &self,
        conn: &mut DbConnection,
        query: &PaymentQuery,
        customer: Option<&str>,
    ) -> Result<PaymentPage, PaymentError> {
        // The filter, shared by the count and the page.
        let filtered = || {
            let mut q: payments::BoxedQuery<'_, MultiBackend> = payments::table.into_boxed();
            if let Some(customer) = customer {
                q = q.filter(payments::customer.eq(customer));
            }
            if let Some(order) = query.order_id {
                q = q.filter(payments::order_id.eq(order.to_string()));
            }
            q
        };
        let total: i64 = filtered()
            .count()
            .get_result(conn)
            .context("count payments")?;
        let mut q = filtered();
        // Ids are UUID v7 in their canonical text form, so text order is creation order.
        if let Some(before) = query.before {
            q = q.filter(payments::id.lt(before.to_string()));
        }
        let rows: Vec<PaymentRow> = q
            .order_by(payments::id.desc())
            .limit(KeysetPage::<PaymentRow>::fetch(query.limit))
            .select(PaymentRow::as_select())
            .load(conn)
            .context("list payments")?;
        let (items, next) = KeysetPage::of(rows, query.limit)
            .try_map(PaymentRow::into_payment)?
            .finish(|p| PaymentQuery::cursor_after(p.id));
        Ok(PaymentPage {
            items,
            next,
            total: page_total(total),
        })
    }

    /// Payments still `processing` that were started before `before`: a crash or a lost task
    /// interrupted their charge.
    pub(crate) fn stale_processing(
        &self,
        conn: &mut DbConnection,
        before: NaiveDateTime,
    ) -> anyhow::Result<Vec<PaymentId>> {
        let ids: Vec<String> = payments::table
            .filter(payments::status.eq(PaymentStatus::Processing.as_str()))
            .filter(payments::created_at.lt(before))
            .order_by(payments::created_at)
            .select(payments::id)
            .load(conn)
            .context("find processing payments")?;
        ids.iter()
            .map(|id| id.parse().context("corrupt payment id"))
            .collect()
    }
}

/// Reads a payment and holds it until the transaction ends, so a refund computed from what
/// was read cannot race another (PostgreSQL's read committed would otherwise let two
/// refunds read the same total). A no-op `UPDATE … RETURNING` takes the row lock on both
/// backends, where `SELECT … FOR UPDATE` is PostgreSQL only; under SQLite the write
/// transaction holds the database already.
pub(crate) fn lock(conn: &mut DbConnection, id: PaymentId) -> anyhow::Result<Option<PaymentRow>> {
    diesel::update(payments::table.find(id.to_string()))
        .set(payments::updated_at.eq(payments::updated_at))
        .returning(payments::all_columns)
        .get_result::<PaymentRow>(conn)
        .optional()
        .context("lock payment")
}

/// Writes a refund computed from `row`, read under [`lock`].
pub(crate) fn set_refunded(
    conn: &mut DbConnection,
    row: PaymentRow,
    refunded: i64,
    status: PaymentStatus,
    now: NaiveDateTime,
) -> anyhow::Result<Payment> {
    // Conditional as well, so a caller that forgot the lock fails loudly instead of
    // refunding twice.
    let changed = diesel::update(
        payments::table
            .find(&row.id)
            .filter(payments::refunded.eq(row.refunded))
            .filter(payments::status.eq(&row.status)),
    )
    .set((
        payments::refunded.eq(refunded),
        payments::status.eq(status.as_str()),
        payments::updated_at.eq(now),
    ))
    .execute(conn)
    .context("record refund")?;
    if changed != 1 {
        return Err(anyhow!("payment {} changed while it was locked", row.id));
    }
    PaymentRow {
        refunded,
        status: status.as_str().to_owned(),
        updated_at: now,
        ..row
    }
    .into_payment()
}
