//! The product saga when deliveries race: a paid order's stock commit held up (its relay
//! died holding the lease) while the order is cancelled and its reservation released. The
//! late commit is a handled outcome — delivered, announced, stock untouched — not a dead
//! letter. The relay is driven step by step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{sync::Arc, time::Duration};

use diesel::{QueryableByName, RunQueryDsl, sql_types::Integer, sql_types::Text};
use kernel::{
    bus::{self, Bus},
    config::{AppEnv, Settings},
    db::{Backend, Db},
    module::{Context, Module},
    money::{Currency, Money},
    testing::{TestDatabase, published_events},
};
use order_api::{
    OrderId,
    events::{OrderCancelled, OrderPaid},
};
use product::{ProductModule, ProductSettings};
use product_api::{ProductService, ReservationId};

const COMMIT: &str = "product.commit_paid_orders";

struct Fixture {
    products: Arc<dyn ProductService>,
    bus: Bus,
    db: Db,
    _database: TestDatabase,
}

fn fixture(backend: Backend) -> Option<Fixture> {
    let database = TestDatabase::new(backend)?;
    let db = Db::connect(&database.settings()).unwrap();
    db.migrate(&[bus::MIGRATIONS, product::MIGRATIONS]).unwrap();
    let mut settings = Settings::defaults(AppEnv::Test).unwrap().bus;
    // A dead relay's lease runs out quickly.
    settings.lease_secs = 3;
    let bus = Bus::new(db.clone(), settings);
    let context = Context {
        bus: bus.clone(),
        settings: ProductSettings::default(),
    };
    let module = ProductModule::new(context, ()).unwrap();
    for subscriber in module.subscribers() {
        bus.subscribe(subscriber).unwrap();
    }
    Some(Fixture {
        products: module.service(),
        bus,
        db,
        _database: database,
    })
}

async fn publish<E: bus::Event>(f: &Fixture, event: E) {
    let bus = f.bus.clone();
    f.db.run(move |conn| bus.write(conn, |tx| tx.publish(&event).map(|_| ())))
        .await
        .unwrap();
}

/// One relay batch as `owner`: claims what is due and delivers it.
async fn relay(f: &Fixture, owner: &'static str) -> usize {
    let bus = f.bus.clone();
    f.db.run(move |conn| bus.relay_batch(conn, owner))
        .await
        .unwrap()
}

#[derive(Debug, QueryableByName)]
struct Delivery {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
}

async fn commit_delivery(f: &Fixture) -> Delivery {
    f.db.run(|conn| {
        diesel::sql_query(format!(
            "SELECT status, attempts FROM bus_deliveries WHERE subscriber = '{COMMIT}'"
        ))
        .get_result(conn)
        .map_err(anyhow::Error::from)
    })
    .await
    .unwrap()
}

kernel::on_both_backends!(with fixture: a_commit_after_the_release_is_skipped_and_announced);

async fn a_commit_after_the_release_is_skipped_and_announced(f: Fixture) {
    let tea = support::product(f.products.as_ref(), "TEA", 10).await;
    let order = OrderId::new();
    let reservation = ReservationId(order.0);
    f.products
        .reserve(reservation, support::lines(&[(tea, 4)]))
        .await
        .unwrap();

    // Paid; a relay claims the commit and dies before delivering it.
    let total = Money::new(1000, Currency::parse("EUR").unwrap());
    publish(
        &f,
        OrderPaid {
            order_id: order,
            total,
        },
    )
    .await;
    let bus = f.bus.clone();
    let claimed =
        f.db.run(move |conn| bus.claim(conn, "relay-that-died"))
            .await
            .unwrap();
    assert_eq!(claimed.len(), 1);

    // Meanwhile an admin cancels the paid order: the reservation is released.
    publish(
        &f,
        OrderCancelled {
            order_id: order,
            reason: "cancelled by admin".into(),
            refund: true,
        },
    )
    .await;
    assert_eq!(relay(&f, "live-relay").await, 1);
    let released = f.products.get(tea).await.unwrap();
    assert_eq!((released.stock, released.reserved), (10, 0));

    // The dead relay's lease runs out; the commit is delivered late.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while commit_delivery(&f).await.attempts == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the commit was never retried"
        );
        relay(&f, "live-relay").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivery = commit_delivery(&f).await;
    assert_eq!(delivery.status, "delivered", "{delivery:?}");
    assert_eq!(delivery.attempts, 1);

    // Stock as the cancellation left it, and the skipped commit said so.
    let after = f.products.get(tea).await.unwrap();
    assert_eq!((after.stock, after.reserved, after.available), (10, 0, 10));
    let skipped: Vec<_> = published_events(&f.db)
        .into_iter()
        .filter(|e| e.kind == "inventory.commit_skipped")
        .collect();
    assert_eq!(skipped.len(), 1, "one inventory.commit_skipped");
    assert_eq!(skipped[0].subject, reservation.to_string());
    assert_eq!(skipped[0].data["status"], "released");
    assert!(
        skipped[0].data["reason"]
            .as_str()
            .unwrap()
            .contains("released"),
        "{:?}",
        skipped[0].data
    );
}
