//! Payments through the public trait and the bus, on SQLite and (when
//! `TESSERA_TEST_DATABASE_URL` is set) on PostgreSQL, each test with its own database.
//!
//! The order module is stood in for by `FixedOrders`, a handful of orders in memory: this
//! crate may not depend on the order implementation, and the end-to-end flow is tested over
//! HTTP by the application's black-box tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{sync::atomic::Ordering, time::Duration};

use futures_util::future::join_all;
use kernel::testing::published_events;
use order_api::OrderStatus;
use payment_api::{
    PaymentError, PaymentId, PaymentQuery, PaymentStatus,
    events::{PaymentFailed, PaymentRefunded, PaymentSucceeded},
};
use support::*;

kernel::on_both_backends!(
    with support::fixture:
    a_good_card_captures_the_orders_total,
    a_declined_card_fails_the_payment_and_leaves_the_order_payable,
    insufficient_funds_is_recorded_as_the_failure_code,
    an_unreachable_gateway_fails_the_payment_with_gateway_error,
    an_order_that_is_not_pending_payment_cannot_be_paid,
    an_order_with_a_succeeded_payment_cannot_be_paid_again,
    concurrent_payments_of_one_order_capture_once,
    a_payment_whose_caller_hangs_up_is_still_settled,
    customers_cannot_pay_or_see_what_is_not_theirs,
    payments_are_listed_newest_first_page_by_page,
    refunds_add_up_to_the_amount_and_never_beyond,
    concurrent_refunds_never_give_back_more_than_was_taken,
    a_refund_racing_a_cancellation_never_gives_back_more,
    a_failed_payment_cannot_be_refunded,
    a_refund_of_less_than_one_is_invalid,
    a_cancelled_paid_order_is_refunded_once_even_if_told_twice,
    a_cancellation_without_refund_leaves_payments_alone,
    a_gateway_failure_during_a_cancellation_refund_is_retried,
    no_card_number_or_cvc_is_stored_or_published,
);

async fn a_good_card_captures_the_orders_total(f: Fixture) {
    let order = order(&f, "alice", 4999, OrderStatus::PendingPayment);
    let payment = f
        .payments
        .pay(&customer("alice"), order, card(GOOD_CARD))
        .await
        .unwrap();
    assert_eq!(payment.status, PaymentStatus::Succeeded);
    assert_eq!(payment.amount, eur(4999));
    assert_eq!(
        (
            payment.customer.as_str(),
            payment.brand.as_str(),
            payment.last4.as_str()
        ),
        ("alice", "visa", "4242")
    );
    assert_eq!(
        (payment.refunded, payment.failure_code.as_deref()),
        (0, None)
    );
    assert_eq!(
        f.payments
            .get(&customer("alice"), payment.id)
            .await
            .unwrap(),
        payment
    );
    let succeeded = events(&f, "payment.succeeded");
    assert_eq!(succeeded.len(), 1);
    assert_eq!(succeeded[0].subject, order.to_string());
    assert_eq!(
        succeeded[0].decode::<PaymentSucceeded>().unwrap(),
        PaymentSucceeded {
            payment_id: payment.id,
            order_id: order,
            amount: eur(4999),
        }
    );
}

async fn a_declined_card_fails_the_payment_and_leaves_the_order_payable(f: Fixture) {
    let order = order(&f, "alice", 1000, OrderStatus::PendingPayment);
    let declined = f
        .payments
        .pay(&customer("alice"), order, card(DECLINED_CARD))
        .await
        .unwrap();
    assert_eq!(declined.status, PaymentStatus::Failed);
    assert_eq!(declined.failure_code.as_deref(), Some("card_declined"));
    let failed = events(&f, "payment.failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].decode::<PaymentFailed>().unwrap().failure_code,
        "card_declined"
    );
    assert!(events(&f, "payment.succeeded").is_empty());

    let retried = f
        .payments
        .pay(&customer("alice"), order, card(GOOD_CARD))
        .await
        .unwrap();
    assert_eq!(retried.status, PaymentStatus::Succeeded);
    assert_ne!(retried.id, declined.id);
}

async fn insufficient_funds_is_recorded_as_the_failure_code(f: Fixture) {
    let order = order(&f, "alice", 1000, OrderStatus::PendingPayment);
    let payment = f
        .payments
        .pay(&customer("alice"), order, card(POOR_CARD))
        .await
        .unwrap();
    assert_eq!(payment.status, PaymentStatus::Failed);
    assert_eq!(payment.failure_code.as_deref(), Some("insufficient_funds"));
    assert_eq!(
        f.payments
            .get(&admin(), payment.id)
            .await
            .unwrap()
            .failure_code
            .as_deref(),
        Some("insufficient_funds")
    );
}

async fn an_unreachable_gateway_fails_the_payment_with_gateway_error(f: Fixture) {
    let order = order(&f, "alice", 1000, OrderStatus::PendingPayment);
    f.gateway.down.store(true, Ordering::SeqCst);
    let payment = f
        .payments
        .pay(&customer("alice"), order, card(GOOD_CARD))
        .await
        .unwrap();
    assert_eq!(payment.status, PaymentStatus::Failed);
    assert_eq!(payment.failure_code.as_deref(), Some("gateway_error"));
    assert_eq!(events(&f, "payment.failed").len(), 1);

    f.gateway.down.store(false, Ordering::SeqCst);
    let retried = f
        .payments
        .pay(&customer("alice"), order, card(GOOD_CARD))
        .await
        .unwrap();
    assert_eq!(retried.status, PaymentStatus::Succeeded);
}

async fn an_order_that_is_not_pending_payment_cannot_be_paid(f: Fixture) {
    for status in [
        OrderStatus::Paid,
        OrderStatus::Shipped,
        OrderStatus::Cancelled,
    ] {
        let order = order(&f, "alice", 1000, status);
        let err = f
            .payments
            .pay(&customer("alice"), order, card(GOOD_CARD))
            .await
            .unwrap_err();
        match err {
            PaymentError::NotPayable(id, reason) => {
                assert_eq!(id, order);
                assert_eq!(reason, format!("it is {status}"));
            }
            other => panic!("expected not payable, got {other:?}"),
        }
    }
    assert!(published_events(&f.db).is_empty());
}

async fn an_order_with_a_succeeded_payment_cannot_be_paid_again(f: Fixture) {
    let (order, _) = paid(&f, 1000).await;
    // The order module has not yet heard of the payment: the order still looks payable.
    let err = f
        .payments
        .pay(&customer("alice"), order, card(GOOD_CARD))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PaymentError::NotPayable(id, reason)
            if *id == order && reason.contains("already in progress or has succeeded")),
        "{err:?}"
    );
    set_status(&f, order, OrderStatus::Paid);
    assert!(matches!(
        f.payments
            .pay(&customer("alice"), order, card(GOOD_CARD))
            .await
            .unwrap_err(),
        PaymentError::NotPayable(..)
    ));
    assert_eq!(events(&f, "payment.succeeded").len(), 1);
}

async fn concurrent_payments_of_one_order_capture_once(f: Fixture) {
    let order = order(&f, "alice", 1000, OrderStatus::PendingPayment);
    let attempts = (0..8).map(|_| {
        let payments = f.payments.clone();
        tokio::spawn(async move {
            payments
                .pay(&customer("alice"), order, card(GOOD_CARD))
                .await
        })
    });
    let results: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let captured = results
        .iter()
        .filter(|r| matches!(r, Ok(p) if p.status == PaymentStatus::Succeeded))
        .count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(PaymentError::NotPayable(..))))
        .count();
    assert_eq!((captured, refused), (1, 7), "{results:?}");
    assert_eq!(events(&f, "payment.succeeded").len(), 1);
}

async fn a_payment_whose_caller_hangs_up_is_still_settled(f: Fixture) {
    let order = order(&f, "alice", 1000, OrderStatus::PendingPayment);
    f.gateway.latency_ms.store(200, Ordering::SeqCst);
    let gave_up = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        f.payments.pay(&customer("alice"), order, card(GOOD_CARD)),
    )
    .await;
    assert!(gave_up.is_err(), "the caller stopped waiting mid-charge");
    let query = PaymentQuery {
        order_id: Some(order),
        ..Default::default()
    };
    let mut status = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let page = f.payments.list(&admin(), query.clone()).await.unwrap();
        status = page.items.first().map(|p| p.status);
        if status != Some(PaymentStatus::Processing) {
            break;
        }
    }
    assert_eq!(status, Some(PaymentStatus::Succeeded));
    assert_eq!(events(&f, "payment.succeeded").len(), 1);
}

async fn customers_cannot_pay_or_see_what_is_not_theirs(f: Fixture) {
    let (order, payment) = paid(&f, 1000).await;
    let bobs = self::order(&f, "bob", 500, OrderStatus::PendingPayment);
    assert!(matches!(
        f.payments
            .pay(&customer("alice"), bobs, card(GOOD_CARD))
            .await
            .unwrap_err(),
        PaymentError::OrderNotFound(id) if id == bobs
    ));
    assert!(matches!(
        f.payments.get(&customer("bob"), payment).await.unwrap_err(),
        PaymentError::NotFound(id) if id == payment
    ));
    let seen_by_bob = f
        .payments
        .list(&customer("bob"), PaymentQuery::default())
        .await
        .unwrap();
    assert!(seen_by_bob.items.is_empty());
    // An admin may pay for a customer; the payment is still the customer's.
    let for_bob = f
        .payments
        .pay(&admin(), bobs, card(GOOD_CARD))
        .await
        .unwrap();
    assert_eq!(for_bob.customer, "bob");
    let everything = f
        .payments
        .list(&admin(), PaymentQuery::default())
        .await
        .unwrap();
    assert_eq!(everything.items.len(), 2);
    let alices = f
        .payments
        .list(&customer("alice"), PaymentQuery::default())
        .await
        .unwrap();
    assert_eq!(alices.items.len(), 1);
    assert_eq!(alices.items[0].order_id, order);
}

async fn payments_are_listed_newest_first_page_by_page(f: Fixture) {
    let order = order(&f, "alice", 1000, OrderStatus::PendingPayment);
    let mut made = Vec::new();
    for _ in 0..4 {
        let p = f
            .payments
            .pay(&customer("alice"), order, card(DECLINED_CARD))
            .await
            .unwrap();
        made.push(p.id);
    }
    made.push(paid(&f, 200).await.1);
    made.reverse();

    let mut seen = Vec::new();
    let mut query = PaymentQuery {
        limit: 2,
        ..Default::default()
    };
    loop {
        let page = f
            .payments
            .list(&customer("alice"), query.clone())
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|p| p.id));
        let Some(next) = page.next else { break };
        query = PaymentQuery::try_from(payment_api::PaymentListParams {
            limit: Some(2),
            cursor: Some(next),
            ..Default::default()
        })
        .unwrap();
    }
    assert_eq!(seen, made);

    let of_order = f
        .payments
        .list(
            &customer("alice"),
            PaymentQuery {
                order_id: Some(order),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(of_order.items.len(), 4);
    assert!(of_order.next.is_none());
}

async fn refunds_add_up_to_the_amount_and_never_beyond(f: Fixture) {
    let (order, id) = paid(&f, 1000).await;
    let partly = f.payments.refund(id, 300).await.unwrap();
    assert_eq!(
        (partly.status, partly.refunded),
        (PaymentStatus::PartiallyRefunded, 300)
    );
    let err = f.payments.refund(id, 701).await.unwrap_err();
    assert!(
        matches!(&err, PaymentError::NotRefundable(p, reason) if *p == id && reason.contains("700")),
        "{err:?}"
    );
    let fully = f.payments.refund(id, 700).await.unwrap();
    assert_eq!(
        (fully.status, fully.refunded),
        (PaymentStatus::Refunded, 1000)
    );
    assert!(matches!(
        f.payments.refund(id, 1).await.unwrap_err(),
        PaymentError::NotRefundable(..)
    ));
    assert!(matches!(
        f.payments.refund(PaymentId::new(), 1).await.unwrap_err(),
        PaymentError::NotFound(_)
    ));

    let refunded: Vec<PaymentRefunded> = events(&f, "payment.refunded")
        .iter()
        .map(|e| e.decode().unwrap())
        .collect();
    assert_eq!(
        refunded,
        [
            PaymentRefunded {
                payment_id: id,
                order_id: order,
                amount: eur(300),
                full: false,
            },
            PaymentRefunded {
                payment_id: id,
                order_id: order,
                amount: eur(700),
                full: true,
            },
        ]
    );
    assert_eq!(f.gateway.refunds(), [(id, eur(300)), (id, eur(700))]);
}

async fn concurrent_refunds_never_give_back_more_than_was_taken(f: Fixture) {
    let (_, id) = paid(&f, 1000).await;
    // Fifteen refunds of 100 on a payment of 1,000: ten fit, five must be refused.
    let calls = (0..15).map(|_| {
        let payments = f.payments.clone();
        tokio::spawn(async move { payments.refund(id, 100).await })
    });
    let results: Vec<_> = join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(PaymentError::NotRefundable(..))))
        .count();
    let refunded = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!((refunded, refused), (10, 5), "{results:?}");
    // What the gateway itself gave back, not what we think it did.
    assert_eq!(f.gateway.captured_and_refunded(id), (1000, 1000));
    let payment = f.payments.get(&admin(), id).await.unwrap();
    assert_eq!(
        (payment.status, payment.refunded),
        (PaymentStatus::Refunded, 1000)
    );
    let full: Vec<bool> = events(&f, "payment.refunded")
        .iter()
        .map(|e| e.decode::<PaymentRefunded>().unwrap().full)
        .collect();
    assert_eq!(full.len(), 10);
    assert_eq!(full.iter().filter(|f| **f).count(), 1);
}

/// A manual refund racing the cancellation's full refund: together they never give back more
/// than was captured, and the customer still gets everything back.
async fn a_refund_racing_a_cancellation_never_gives_back_more(f: Fixture) {
    let (order, id) = paid(&f, 1000).await;
    cancel(&f, order, true).await;
    let manual = {
        let payments = f.payments.clone();
        tokio::spawn(async move { payments.refund(id, 400).await })
    };
    deliver(&f).await;
    let manual = manual.await.unwrap();
    refunds_carried_out(&f).await;
    assert_eq!(
        f.gateway.captured_and_refunded(id),
        (1000, 1000),
        "{manual:?}"
    );
    let payment = f.payments.get(&admin(), id).await.unwrap();
    assert_eq!(
        (payment.status, payment.refunded),
        (PaymentStatus::Refunded, 1000)
    );
}

async fn a_failed_payment_cannot_be_refunded(f: Fixture) {
    let order = order(&f, "alice", 1000, OrderStatus::PendingPayment);
    let failed = f
        .payments
        .pay(&customer("alice"), order, card(DECLINED_CARD))
        .await
        .unwrap();
    let err = f.payments.refund(failed.id, 100).await.unwrap_err();
    assert!(
        matches!(&err, PaymentError::NotRefundable(_, reason) if reason == "it is failed"),
        "{err:?}"
    );
    assert!(events(&f, "payment.refunded").is_empty());
    assert!(f.gateway.refunds().is_empty());
}

async fn a_refund_of_less_than_one_is_invalid(f: Fixture) {
    let (_, id) = paid(&f, 1000).await;
    for amount in [0, -5] {
        match f.payments.refund(id, amount).await.unwrap_err() {
            PaymentError::Invalid(errors) => assert_eq!(errors[0].field, "amount"),
            other => panic!("expected invalid, got {other:?}"),
        }
    }
}

async fn a_cancelled_paid_order_is_refunded_once_even_if_told_twice(f: Fixture) {
    let (order, id) = paid(&f, 1000).await;
    f.payments.refund(id, 250).await.unwrap();
    // An earlier, declined attempt at the same order holds no money and stays as it is.
    let other = self::order(&f, "alice", 1000, OrderStatus::PendingPayment);
    let declined = f
        .payments
        .pay(&customer("alice"), other, card(DECLINED_CARD))
        .await
        .unwrap();

    cancel(&f, order, true).await;
    cancel(&f, order, true).await;
    deliver(&f).await;
    refunds_carried_out(&f).await;

    let payment = f.payments.get(&admin(), id).await.unwrap();
    assert_eq!(
        (payment.status, payment.refunded),
        (PaymentStatus::Refunded, 1000)
    );
    let refunded: Vec<PaymentRefunded> = events(&f, "payment.refunded")
        .iter()
        .map(|e| e.decode().unwrap())
        .collect();
    assert_eq!(
        refunded.last(),
        Some(&PaymentRefunded {
            payment_id: id,
            order_id: order,
            amount: eur(750),
            full: true,
        })
    );
    assert_eq!(refunded.len(), 2, "the manual refund, then the rest once");
    assert_eq!(f.gateway.refunds(), [(id, eur(250)), (id, eur(750))]);
    assert_eq!(
        f.payments.get(&admin(), declined.id).await.unwrap(),
        declined
    );

    // Delivered once more (a replay): still nothing new.
    cancel(&f, order, true).await;
    deliver(&f).await;
    refunds_carried_out(&f).await;
    assert_eq!(events(&f, "payment.refunded").len(), 2);
    assert_eq!(f.gateway.refunds().len(), 2);
}

async fn a_cancellation_without_refund_leaves_payments_alone(f: Fixture) {
    let (order, id) = paid(&f, 1000).await;
    cancel(&f, order, false).await;
    deliver(&f).await;
    assert_eq!(
        f.payments.get(&admin(), id).await.unwrap().status,
        PaymentStatus::Succeeded
    );
    assert!(events(&f, "payment.refunded").is_empty());
}

async fn a_gateway_failure_during_a_cancellation_refund_is_retried(f: Fixture) {
    let (order, id) = paid(&f, 1000).await;
    f.gateway.down.store(true, Ordering::SeqCst);
    cancel(&f, order, true).await;
    deliver(&f).await;
    // Retried while the gateway is still down: the refund stays owed.
    f.module.reconcile(Duration::ZERO).await.unwrap();
    assert_eq!(
        f.payments.get(&admin(), id).await.unwrap().status,
        PaymentStatus::Succeeded,
        "nothing is recorded as given back before the gateway has done it"
    );
    assert!(events(&f, "payment.refunded").is_empty());
    assert_eq!(refund_statuses(&f), ["pending"]);

    f.gateway.down.store(false, Ordering::SeqCst);
    f.module.reconcile(Duration::ZERO).await.unwrap();
    refunds_carried_out(&f).await;
    assert_eq!(
        f.payments.get(&admin(), id).await.unwrap().status,
        PaymentStatus::Refunded
    );
    assert_eq!(f.gateway.refunds(), [(id, eur(1000))]);
    assert_eq!(events(&f, "payment.refunded").len(), 1);
}

async fn no_card_number_or_cvc_is_stored_or_published(f: Fixture) {
    let (order, id) = paid(&f, 1000).await;
    let other = self::order(&f, "alice", 1000, OrderStatus::PendingPayment);
    f.payments
        .pay(&customer("alice"), other, card(DECLINED_CARD))
        .await
        .unwrap();
    f.payments.refund(id, 100).await.unwrap();
    cancel(&f, order, true).await;
    deliver(&f).await;
    refunds_carried_out(&f).await;

    // Every text column of every table: payments, refunds, the gateway's record, the outbox.
    let stored = stored_text(&f.db);
    let published: String = published_events(&f.db)
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    assert!(published.contains("payment.refunded"));
    assert!(stored.contains("payment_id"), "the scan sees the outbox");
    for text in [&stored, &published] {
        for secret in [
            GOOD_CARD,
            DECLINED_CARD,
            &GOOD_CARD[..12],
            &DECLINED_CARD[..12],
        ] {
            assert!(!text.contains(secret), "{secret} leaked into {text}");
        }
        assert!(!contains_word(text, CVC), "the CVC leaked into {text}");
        assert!(!text.contains("cvc"), "a CVC field leaked into {text}");
    }
    // What is kept is the brand and the last four digits.
    assert!(
        contains_word(&stored, "visa") && contains_word(&stored, "4242"),
        "{stored}"
    );
}
