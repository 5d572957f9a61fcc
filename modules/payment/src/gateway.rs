//! The simulated card processor: deterministic answers for the well-known test numbers, so
//! development, demos and tests can produce every outcome without a real gateway.
//!
//! Like a real processor it remembers what it did, persistently and by idempotency key (its
//! own table in the module's database, standing in for the processor's side): a repeated key
//! gets the first outcome back instead of a second charge or refund. It keeps ids, amounts and
//! outcomes only, never a card number or CVC.

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use diesel::{prelude::*, result::Error as DieselError};
use kernel::{
    db::{Db, DbConnection, is_unique_violation, write_tx},
    money::Money,
};
use payment_api::{
    Card, ChargeOutcome, GatewayRecord, IdempotencyKey, PaymentGateway, PaymentId, RefundId,
    RefundOutcome,
};

use crate::schema::payment_gateway_sim_operations as ops;

/// Declines with `card_declined`.
const DECLINED: &str = "4000000000000002";
/// Declines with `insufficient_funds`.
const INSUFFICIENT_FUNDS: &str = "4000000000009995";
/// Why a call under a key that reconciliation closed is refused.
const VOIDED: &str = "voided";

/// Captures every card [`Card::parse`] accepted, except the test numbers above; refunds
/// always succeed.
#[derive(Debug, Clone)]
pub struct SimulatedGateway {
    db: Db,
}

impl SimulatedGateway {
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }

    /// Records `op` under its key unless the key has a record already; returns the record that
    /// stands (the first one).
    async fn remember(&self, op: Operation) -> anyhow::Result<Operation> {
        self.db
            .run(move |conn| {
                let inserted = write_tx(conn, |conn| {
                    if let Some(first) = find(conn, &op.idempotency_key)? {
                        return Ok::<_, anyhow::Error>(first);
                    }
                    diesel::insert_into(ops::table)
                        .values(&op)
                        .execute(conn)
                        .map_err(anyhow::Error::new)?;
                    Ok(op.clone())
                });
                match inserted {
                    Ok(stands) => Ok(stands),
                    // Two calls with one key at once (PostgreSQL): the other one was first.
                    Err(e)
                        if e.downcast_ref::<DieselError>()
                            .is_some_and(is_unique_violation) =>
                    {
                        find(conn, &op.idempotency_key)?
                            .ok_or_else(|| anyhow!("gateway operation vanished"))
                    }
                    Err(e) => Err(e.context("the simulated gateway could not record")),
                }
            })
            .await
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ops)]
struct Operation {
    idempotency_key: String,
    kind: String,
    payment_id: Option<String>,
    amount: i64,
    currency: String,
    outcome: String,
    decline_code: Option<String>,
    created_at: chrono::NaiveDateTime,
}

impl Operation {
    fn new(key: &IdempotencyKey, kind: &str, payment: Option<PaymentId>, amount: Money) -> Self {
        Self {
            idempotency_key: key.as_str().to_owned(),
            kind: kind.into(),
            payment_id: payment.map(|p| p.to_string()),
            amount: amount.amount,
            currency: amount.currency.as_str().to_owned(),
            outcome: String::new(),
            decline_code: None,
            created_at: kernel::time::now(),
        }
    }

    /// A closed key: no money, no currency (`XXX`, ISO 4217's "no currency").
    fn void(key: &IdempotencyKey) -> Self {
        Self {
            idempotency_key: key.as_str().to_owned(),
            kind: "void".into(),
            payment_id: None,
            amount: 0,
            currency: "XXX".into(),
            outcome: String::new(),
            decline_code: None,
            created_at: kernel::time::now(),
        }
    }

    fn record(&self) -> anyhow::Result<GatewayRecord> {
        Ok(match self.outcome.as_str() {
            "captured" => GatewayRecord::Charged(ChargeOutcome::Captured),
            "declined" => GatewayRecord::Charged(ChargeOutcome::Declined {
                code: self.decline_code.clone().unwrap_or_default(),
            }),
            "refunded" => GatewayRecord::Refunded,
            "voided" => GatewayRecord::Voided,
            other => return Err(anyhow!("unknown gateway outcome {other:?}")),
        })
    }
}

fn find(conn: &mut DbConnection, key: &str) -> anyhow::Result<Option<Operation>> {
    ops::table
        .find(key)
        .select(Operation::as_select())
        .first(conn)
        .optional()
        .context("read the simulated gateway's record")
}

fn decide(card: &Card) -> ChargeOutcome {
    let declined = |code: &str| ChargeOutcome::Declined { code: code.into() };
    match card.number() {
        DECLINED => declined("card_declined"),
        INSUFFICIENT_FUNDS => declined("insufficient_funds"),
        _ => ChargeOutcome::Captured,
    }
}

#[async_trait]
impl PaymentGateway for SimulatedGateway {
    async fn charge(
        &self,
        payment: PaymentId,
        amount: Money,
        card: &Card,
    ) -> anyhow::Result<ChargeOutcome> {
        let mut op = Operation::new(&payment.into(), "charge", Some(payment), amount);
        match decide(card) {
            ChargeOutcome::Captured => op.outcome = "captured".into(),
            ChargeOutcome::Declined { code } => {
                op.outcome = "declined".into();
                op.decline_code = Some(code);
            }
        }
        Ok(match self.remember(op).await?.record()? {
            GatewayRecord::Charged(outcome) => outcome,
            _ => ChargeOutcome::Declined {
                code: VOIDED.into(),
            },
        })
    }

    async fn refund(
        &self,
        refund: RefundId,
        payment: PaymentId,
        amount: Money,
    ) -> anyhow::Result<RefundOutcome> {
        let mut op = Operation::new(&refund.into(), "refund", Some(payment), amount);
        op.outcome = "refunded".into();
        Ok(match self.remember(op).await?.record()? {
            GatewayRecord::Refunded => RefundOutcome::Refunded,
            _ => RefundOutcome::Refused {
                code: VOIDED.into(),
            },
        })
    }

    async fn lookup(&self, key: &IdempotencyKey) -> anyhow::Result<Option<GatewayRecord>> {
        let key = key.as_str().to_owned();
        self.db
            .run(move |conn| find(conn, &key)?.map(|op| op.record()).transpose())
            .await
    }

    async fn void(&self, key: &IdempotencyKey) -> anyhow::Result<GatewayRecord> {
        let mut op = Operation::void(key);
        op.outcome = "voided".into();
        self.remember(op).await?.record()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel::{db::Db, money::Currency, testing::TestDatabase};
    use payment_api::CardInput;

    fn card(number: &str) -> Card {
        let input = CardInput {
            number: number.into(),
            exp_month: 12,
            exp_year: 2099,
            cvc: "123".into(),
        };
        Card::parse(&input, chrono::Utc::now().date_naive()).unwrap()
    }

    fn gateway() -> (SimulatedGateway, TestDatabase) {
        let database = TestDatabase::sqlite();
        let db = Db::connect(&database.settings()).unwrap();
        db.migrate(&[kernel::bus::MIGRATIONS, crate::MIGRATIONS])
            .unwrap();
        (SimulatedGateway::new(db), database)
    }

    fn eur(amount: i64) -> Money {
        Money::new(amount, Currency::parse("EUR").unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_test_numbers_give_their_documented_outcomes() {
        let (gateway, _db) = gateway();
        let charge = |number: &'static str| {
            let gateway = gateway.clone();
            async move {
                gateway
                    .charge(PaymentId::new(), eur(100), &card(number))
                    .await
                    .unwrap()
            }
        };
        assert_eq!(charge("4242424242424242").await, ChargeOutcome::Captured);
        assert_eq!(charge("5555555555554444").await, ChargeOutcome::Captured);
        let declined = |code: &str| ChargeOutcome::Declined { code: code.into() };
        assert_eq!(charge("4000000000000002").await, declined("card_declined"));
        assert_eq!(
            charge("4000 0000 0000 9995").await,
            declined("insufficient_funds")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_repeated_key_gets_the_first_outcome_and_a_voided_key_acts_no_more() {
        let (gateway, _db) = gateway();
        let payment = PaymentId::new();
        let (declined, good) = (card("4000000000000002"), card("4242424242424242"));
        let first = gateway.charge(payment, eur(100), &declined);
        assert!(matches!(
            first.await.unwrap(),
            ChargeOutcome::Declined { .. }
        ));
        let again = gateway.charge(payment, eur(100), &good);
        assert!(matches!(
            again.await.unwrap(),
            ChargeOutcome::Declined { .. }
        ));

        let refund = RefundId::new();
        for _ in 0..2 {
            let outcome = gateway.refund(refund, payment, eur(40)).await.unwrap();
            assert_eq!(outcome, RefundOutcome::Refunded);
        }
        let key = IdempotencyKey::from(refund);
        assert_eq!(
            gateway.lookup(&key).await.unwrap(),
            Some(GatewayRecord::Refunded)
        );
        assert_eq!(gateway.void(&key).await.unwrap(), GatewayRecord::Refunded);

        let unused = RefundId::new();
        assert_eq!(gateway.lookup(&unused.into()).await.unwrap(), None);
        assert_eq!(
            gateway.void(&unused.into()).await.unwrap(),
            GatewayRecord::Voided
        );
        let late = gateway.refund(unused, payment, eur(40)).await.unwrap();
        assert!(matches!(late, RefundOutcome::Refused { .. }));
    }
}
