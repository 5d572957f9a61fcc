//! The order saga when a payment and a cancellation race on PostgreSQL: the payment's
//! delivery reads the order as pending while a cancellation of it is being committed. It
//! applies to the order as it now is — cancelled, so the money is given back — on its first
//! attempt, instead of failing and waiting for a retry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::mpsc, time::Duration};

use diesel::{
    QueryableByName, RunQueryDsl, sql_types::BigInt, sql_types::Integer, sql_types::Text,
};
use kernel::{
    auth::{Principal, Role},
    bus::{self, Bus},
    config::{AppEnv, Settings},
    db::Db,
    module::{Context, Module},
    money::{Currency, Money},
    testing::{TestDatabase, published_events},
};
use order::{OrderModule, OrderNeighbours, OrderSettings};
use order_api::{CreateOrder, NewOrder, OrderItemInput, OrderStatus, events::OrderCancelled};
use payment_api::{PaymentId, events::PaymentSucceeded};
use product::{ProductModule, ProductSettings};
use product_api::{NewProduct, ProductInput};

#[derive(Debug, QueryableByName)]
struct Delivery {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
}

#[derive(Debug, QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_applied_while_the_order_is_cancelled_is_refunded_at_once() {
    let Some(database) = TestDatabase::postgres() else {
        return;
    };
    let db = Db::connect(&database.settings()).unwrap();
    db.migrate(&[bus::MIGRATIONS, product::MIGRATIONS, order::MIGRATIONS])
        .unwrap();
    let bus = Bus::new(db.clone(), Settings::defaults(AppEnv::Test).unwrap().bus);
    let product = Context {
        bus: bus.clone(),
        settings: ProductSettings::default(),
    };
    let products = ProductModule::new(product, ()).unwrap().service();
    let context = Context {
        bus: bus.clone(),
        settings: OrderSettings::default(),
    };
    let neighbours = OrderNeighbours {
        products: products.clone(),
    };
    let module = OrderModule::new(context, neighbours).unwrap();
    for subscriber in module.subscribers() {
        bus.subscribe(subscriber).unwrap();
    }
    let eur = Currency::parse("EUR").unwrap();
    let tea = products
        .create(
            NewProduct::try_from(ProductInput {
                sku: "TEA".into(),
                name: "Tea".into(),
                description: String::new(),
                price: Money::new(250, eur),
                stock: 10,
            })
            .unwrap(),
        )
        .await
        .unwrap();
    let alice = Principal {
        sub: "alice".into(),
        role: Role::Customer,
    };
    let order = module
        .service()
        .place(
            &alice,
            NewOrder::try_from(CreateOrder {
                items: vec![OrderItemInput {
                    product_id: tea.id,
                    quantity: 2,
                }],
            })
            .unwrap(),
        )
        .await
        .unwrap();

    // The payment module reports the charge.
    let (b, succeeded) = (
        bus.clone(),
        PaymentSucceeded {
            payment_id: PaymentId::new(),
            order_id: order.id,
            amount: order.total,
        },
    );
    db.run(move |conn| b.write(conn, |tx| tx.publish(&succeeded).map(|_| ())))
        .await
        .unwrap();

    // Alice's cancellation is being committed: the order row is locked, not yet changed.
    let (locked, is_locked) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let (b, d, id) = (bus.clone(), db.clone(), order.id);
    let canceller = std::thread::spawn(move || {
        let mut conn = d.get().unwrap();
        b.write(&mut conn, |tx| {
            diesel::sql_query(
                "UPDATE orders SET status = 'cancelled', cancel_reason = 'cancelled by alice' \
                 WHERE id = $1 AND status = 'pending_payment'",
            )
            .bind::<Text, _>(id.to_string())
            .execute(tx.conn())?;
            tx.publish(&OrderCancelled {
                order_id: id,
                reason: "cancelled by alice".into(),
                refund: false,
            })?;
            locked.send(()).unwrap();
            released.recv_timeout(Duration::from_secs(30)).unwrap();
            Ok::<_, anyhow::Error>(())
        })
    });
    is_locked.recv_timeout(Duration::from_secs(10)).unwrap();

    // The relay applies the payment: it reads the order as pending and waits for the lock.
    let (b, d) = (bus.clone(), db.clone());
    let relay = tokio::spawn(async move { d.run(move |conn| b.relay_batch(conn, "relay")).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: Count = db
            .run(|conn| {
                diesel::sql_query(
                    "SELECT COUNT(*) AS n FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .get_result(conn)
                .map_err(anyhow::Error::from)
            })
            .await
            .unwrap();
        if waiting.n > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the relay never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    release.send(()).unwrap();
    canceller.join().unwrap().unwrap();
    assert_eq!(relay.await.unwrap().unwrap(), 1);

    let delivery: Delivery = db
        .run(|conn| {
            diesel::sql_query(
                "SELECT status, attempts FROM bus_deliveries WHERE subscriber = 'order.apply_payments'",
            )
            .get_result(conn)
            .map_err(anyhow::Error::from)
        })
        .await
        .unwrap();
    assert_eq!(
        (delivery.status.as_str(), delivery.attempts),
        ("delivered", 1),
        "{delivery:?}"
    );
    let admin = Principal {
        sub: "admin".into(),
        role: Role::Admin,
    };
    let now = module.service().get(&admin, order.id).await.unwrap();
    assert_eq!(now.status, OrderStatus::Cancelled);
    let refunds: Vec<_> = published_events(&db)
        .into_iter()
        .filter(|e| e.kind == "order.cancelled" && e.data["refund"] == true)
        .collect();
    assert_eq!(refunds.len(), 1, "the late payment is given back");
    assert_eq!(refunds[0].data["reason"], "paid after cancellation");
}
