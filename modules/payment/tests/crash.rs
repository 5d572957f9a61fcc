//! What a crash, a lost task or a caller who hangs up leaves behind, and how it is resolved:
//! payments left `processing` and refunds left `pending` are settled by reconciliation, which
//! asks the gateway (its own record, by idempotency key) what happened. SQLite and (when
//! `TESSERA_TEST_DATABASE_URL` is set) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::{
    RunQueryDsl,
    sql_types::{BigInt, Text, Timestamp},
};
use kernel::db::Backend;
use order_api::{OrderId, OrderStatus};
use payment::Reconciled;
use payment_api::{
    ChargeOutcome, PaymentError, PaymentGateway, PaymentId, PaymentQuery, PaymentStatus, RefundId,
    events::PaymentSucceeded,
};
use support::*;

kernel::on_both_backends!(
    with support::fixture:
    a_charge_interrupted_after_the_gateway_captured_ends_succeeded,
    a_charge_interrupted_before_the_gateway_ends_failed_and_the_order_is_payable_again,
    refunds_interrupted_by_a_crash_are_settled_from_the_gateways_record,
);

/// The reconciliation age the tests run with; the rows a "crash" left are older.
const AGE: Duration = Duration::from_secs(60);

fn minutes_ago(minutes: i64) -> NaiveDateTime {
    kernel::time::now() - chrono::Duration::minutes(minutes)
}

/// A `processing` payment of `order` as a crash leaves it: recorded `minutes` ago, never
/// settled.
fn crashed_payment(f: &Fixture, order: OrderId, total: i64, minutes: i64) -> PaymentId {
    let id = PaymentId::new();
    let at = minutes_ago(minutes);
    let mut conn = f.db.get().unwrap();
    diesel::sql_query(placeholders(
        &f.db,
        "INSERT INTO payments (id, order_id, customer, amount, currency, refunded, status, \
         brand, last4, failure_code, created_at, updated_at) \
         VALUES (?, ?, 'alice', ?, 'EUR', 0, 'processing', 'visa', '4242', NULL, ?, ?)",
    ))
    .bind::<Text, _>(id.to_string())
    .bind::<Text, _>(order.to_string())
    .bind::<BigInt, _>(total)
    .bind::<Timestamp, _>(at)
    .bind::<Timestamp, _>(at)
    .execute(&mut *conn)
    .unwrap();
    id
}

/// A `pending` refund as a crash leaves it: reserved long ago, never finished.
fn crashed_refund(f: &Fixture, payment: PaymentId, amount: i64) -> RefundId {
    let id = RefundId::new();
    let at = minutes_ago(10);
    let mut conn = f.db.get().unwrap();
    diesel::sql_query(placeholders(
        &f.db,
        "INSERT INTO payment_refunds (id, payment_id, amount, status, origin, failure_code, \
         created_at, updated_at) VALUES (?, ?, ?, 'pending', 'request', NULL, ?, ?)",
    ))
    .bind::<Text, _>(id.to_string())
    .bind::<Text, _>(payment.to_string())
    .bind::<BigInt, _>(amount)
    .bind::<Timestamp, _>(at)
    .bind::<Timestamp, _>(at)
    .execute(&mut *conn)
    .unwrap();
    id
}

async fn a_charge_interrupted_after_the_gateway_captured_ends_succeeded(f: Fixture) {
    let order = order(&f, "alice", 1000, OrderStatus::PendingPayment);
    let id = crashed_payment(&f, order, 1000, 10);
    // The gateway captured; the process died before recording it.
    let charged = f.gateway.charge(id, eur(1000), &card(GOOD_CARD)).await;
    assert_eq!(charged.unwrap(), ChargeOutcome::Captured);
    assert!(matches!(
        f.payments
            .pay(&customer("alice"), order, card(GOOD_CARD))
            .await,
        Err(PaymentError::NotPayable(..))
    ));

    let done = f.module.reconcile(AGE).await.unwrap();
    assert_eq!(
        done,
        Reconciled {
            payments: 1,
            refunds: 0
        }
    );
    let payment = f.payments.get(&admin(), id).await.unwrap();
    assert_eq!(payment.status, PaymentStatus::Succeeded);
    // The saga goes on with the same event a normal success publishes.
    let succeeded: Vec<PaymentSucceeded> = events(&f, "payment.succeeded")
        .iter()
        .map(|e| e.decode().unwrap())
        .collect();
    assert_eq!(
        succeeded,
        [PaymentSucceeded {
            payment_id: id,
            order_id: order,
            amount: eur(1000),
        }]
    );
    assert_eq!(
        f.gateway.captured_and_refunded(id),
        (1000, 0),
        "charged once"
    );
    // A second pass (another replica) finds nothing left to do.
    assert_eq!(
        f.module.reconcile(AGE).await.unwrap(),
        Reconciled::default()
    );
    assert_eq!(events(&f, "payment.succeeded").len(), 1);
}

async fn a_charge_interrupted_before_the_gateway_ends_failed_and_the_order_is_payable_again(
    f: Fixture,
) {
    let order = order(&f, "alice", 1000, OrderStatus::PendingPayment);
    let id = crashed_payment(&f, order, 1000, 10);
    // Younger than the reconciliation age: its charge may still be under way; left alone.
    let other = self::order(&f, "alice", 500, OrderStatus::PendingPayment);
    let young = crashed_payment(&f, other, 500, 0);

    assert_eq!(
        f.module.reconcile(AGE).await.unwrap(),
        Reconciled {
            payments: 1,
            refunds: 0
        }
    );
    let payment = f.payments.get(&admin(), id).await.unwrap();
    assert_eq!(
        (payment.status, payment.failure_code.as_deref()),
        (PaymentStatus::Failed, Some("interrupted"))
    );
    assert_eq!(events(&f, "payment.failed").len(), 1);
    assert_eq!(
        f.payments.get(&admin(), young).await.unwrap().status,
        PaymentStatus::Processing
    );
    // A charge still on its way with the old key cannot land after the verdict.
    let late = f.gateway.charge(id, eur(1000), &card(GOOD_CARD)).await;
    assert!(matches!(late.unwrap(), ChargeOutcome::Declined { code } if code == "voided"));
    assert_eq!(f.gateway.captured_and_refunded(id), (0, 0));

    let again = f
        .payments
        .pay(&customer("alice"), order, card(GOOD_CARD))
        .await
        .unwrap();
    assert_eq!(again.status, PaymentStatus::Succeeded);
}

async fn refunds_interrupted_by_a_crash_are_settled_from_the_gateways_record(f: Fixture) {
    let (_, id) = paid(&f, 1000).await;
    // Reserved, given back at the gateway, then the process died.
    let done_at_gateway = crashed_refund(&f, id, 300);
    f.gateway
        .refund(done_at_gateway, id, eur(300))
        .await
        .unwrap();
    // Reserved, and the process died before calling the gateway.
    let never_sent = crashed_refund(&f, id, 200);
    // While they are pending their amounts are taken: 500 are left, not 1,000.
    let err = f.payments.refund(id, 600).await.unwrap_err();
    assert!(
        matches!(&err, PaymentError::NotRefundable(_, reason) if reason.contains("500 left")),
        "{err:?}"
    );

    assert_eq!(
        f.module.reconcile(AGE).await.unwrap(),
        Reconciled {
            payments: 0,
            refunds: 2
        }
    );
    let payment = f.payments.get(&admin(), id).await.unwrap();
    assert_eq!(
        (payment.status, payment.refunded),
        (PaymentStatus::PartiallyRefunded, 300)
    );
    assert_eq!(events(&f, "payment.refunded").len(), 1);
    assert_eq!(refund_statuses(&f), ["succeeded", "failed"]);
    // The failed one's amount is free again, and its key is closed at the gateway.
    let late = f.gateway.refund(never_sent, id, eur(200)).await.unwrap();
    assert!(matches!(late, payment_api::RefundOutcome::Refused { .. }));
    let rest = f.payments.refund(id, 700).await.unwrap();
    assert_eq!(
        (rest.status, rest.refunded),
        (PaymentStatus::Refunded, 1000)
    );
    assert_eq!(f.gateway.captured_and_refunded(id), (1000, 1000));
}

/// The caller hangs up while its payment row is being created (SQLite's write lock is held
/// from outside, so the creation waits): the payment still ends settled, not `processing`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caller_who_hangs_up_while_the_row_is_created_leaves_no_payment_processing() {
    let f = fixture(Backend::Sqlite).unwrap();
    let order = order(&f, "alice", 1000, OrderStatus::PendingPayment);
    let path = f
        ._database
        .url()
        .strip_prefix("sqlite://")
        .unwrap()
        .to_owned();
    let (locked, is_locked) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let locker = std::thread::spawn(move || {
        use diesel::{Connection, sqlite::SqliteConnection};
        let mut conn = SqliteConnection::establish(&path).unwrap();
        diesel::sql_query("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .unwrap();
        locked.send(()).unwrap();
        released.recv().unwrap();
        diesel::sql_query("ROLLBACK").execute(&mut conn).unwrap();
    });
    is_locked.recv().unwrap();
    let payments = f.payments.clone();
    let caller = tokio::spawn(async move {
        payments
            .pay(&customer("alice"), order, card(GOOD_CARD))
            .await
    });
    // The order is read and the row's write begun in one poll (the stand-in order service
    // never yields), so once the order has been read the write is under way, waiting for the
    // lock; an abort takes effect only when that poll has returned.
    until("the order is read", || async { f.orders.reads() > 0 }).await;
    caller.abort();
    assert!(caller.await.unwrap_err().is_cancelled());
    release.send(()).unwrap();
    locker.join().unwrap();

    let query = PaymentQuery {
        order_id: Some(order),
        ..Default::default()
    };
    until("the payment is settled", || async {
        let page = f.payments.list(&admin(), query.clone()).await.unwrap();
        page.items.first().map(|p| p.status) == Some(PaymentStatus::Succeeded)
    })
    .await;
    assert_eq!(events(&f, "payment.succeeded").len(), 1);
}
