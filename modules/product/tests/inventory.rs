//! The inventory commands order relies on, through the public trait, on SQLite and (when
//! `TESSERA_TEST_DATABASE_URL` is set) on PostgreSQL, each test with its own database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use futures_util::future::join_all;
use kernel::{
    bus::{self, Bus},
    config::{AppEnv, Settings},
    db::{Backend, Db},
    module::{Context, Module},
    money::{Currency, Money},
    testing::{TestDatabase, published_events},
    version::ExpectedVersion,
};
use product::{ProductModule, ProductSettings};
use product_api::{
    ProductChanges, ProductError, ProductId, ProductService, ReservationId, ReservationStatus,
};

struct Fixture {
    products: Arc<dyn ProductService>,
    db: Db,
    _database: TestDatabase,
}

fn fixture(backend: Backend) -> Option<Fixture> {
    let database = TestDatabase::new(backend)?;
    let mut settings = database.settings();
    settings.pool_size = 16;
    let db = Db::connect(&settings).unwrap();
    db.migrate(&[bus::MIGRATIONS, product::MIGRATIONS]).unwrap();
    let bus = Bus::new(db.clone(), Settings::defaults(AppEnv::Test).unwrap().bus);
    let settings = ProductSettings {
        stock_low_threshold: 3,
        ..ProductSettings::default()
    };
    let module = ProductModule::new(Context { bus, settings }, ()).unwrap();
    Some(Fixture {
        products: module.service(),
        db,
        _database: database,
    })
}

/// `(type, subject)` of every published event, oldest first.
fn events(f: &Fixture) -> Vec<(String, String)> {
    published_events(&f.db)
        .into_iter()
        .map(|e| (e.kind, e.subject))
        .collect()
}

async fn product(f: &Fixture, sku: &str, stock: i64) -> ProductId {
    support::product(f.products.as_ref(), sku, stock).await
}

use support::lines;

kernel::on_both_backends!(
    with fixture:
    concurrent_reservations_never_take_available_below_zero,
    a_reservation_takes_all_lines_or_none,
    retrying_a_reservation_does_not_reserve_twice,
    a_reservation_answers_with_the_prices_it_was_made_at,
    release_returns_stock_and_commit_removes_it,
    concurrent_releases_of_one_reservation_apply_once,
    stock_cannot_be_set_below_what_is_reserved,
    every_change_publishes_its_event_and_failures_publish_nothing,
    stock_low_is_published_once_per_crossing,
);

async fn concurrent_reservations_never_take_available_below_zero(f: Fixture) {
    let id = product(&f, "HOT", 10).await;
    let attempts = (0..40).map(|_| {
        let products = f.products.clone();
        tokio::spawn(async move {
            products
                .reserve(ReservationId::new(), lines(&[(id, 1)]))
                .await
        })
    });
    let results: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let won = results.iter().filter(|r| r.is_ok()).count();
    let short = results
        .iter()
        .filter(|r| matches!(r, Err(ProductError::InsufficientStock { .. })))
        .count();
    assert_eq!(won, 10, "exactly the stock on hand is reserved");
    assert_eq!(
        short, 30,
        "every other attempt is refused as insufficient stock"
    );
    let p = f.products.get(id).await.unwrap();
    assert_eq!((p.stock, p.reserved, p.available), (10, 10, 0));
}

async fn a_reservation_takes_all_lines_or_none(f: Fixture) {
    let plenty = product(&f, "PLENTY", 5).await;
    let scarce = product(&f, "SCARCE", 1).await;
    let err = f
        .products
        .reserve(ReservationId::new(), lines(&[(plenty, 2), (scarce, 2)]))
        .await
        .unwrap_err();
    match err {
        ProductError::InsufficientStock {
            product_id,
            requested,
            available,
        } => assert_eq!((product_id, requested, available), (scarce, 2, 1)),
        other => panic!("expected insufficient stock, got {other:?}"),
    }
    assert_eq!(f.products.get(plenty).await.unwrap().available, 5);
    assert_eq!(f.products.get(scarce).await.unwrap().available, 1);

    let unknown = ProductId::new();
    let err = f
        .products
        .reserve(ReservationId::new(), lines(&[(plenty, 1), (unknown, 1)]))
        .await
        .unwrap_err();
    assert!(matches!(err, ProductError::NotFound(id) if id == unknown));
    assert_eq!(f.products.get(plenty).await.unwrap().available, 5);
}

async fn retrying_a_reservation_does_not_reserve_twice(f: Fixture) {
    let id = product(&f, "RETRY", 10).await;
    let rid = ReservationId::new();
    let first = f.products.reserve(rid, lines(&[(id, 3)])).await.unwrap();
    let again = f.products.reserve(rid, lines(&[(id, 3)])).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(f.products.get(id).await.unwrap().reserved, 3);

    let err = f
        .products
        .reserve(rid, lines(&[(id, 4)]))
        .await
        .unwrap_err();
    assert!(matches!(err, ProductError::ReservationConflict(r) if r == rid));

    // Concurrent first attempts with one id also reserve once.
    let rid = ReservationId::new();
    let calls = (0..8).map(|_| {
        let products = f.products.clone();
        tokio::spawn(async move { products.reserve(rid, lines(&[(id, 2)])).await })
    });
    for result in join_all(calls).await {
        assert_eq!(result.unwrap().unwrap().id, rid);
    }
    assert_eq!(f.products.get(id).await.unwrap().reserved, 5);
}

async fn a_reservation_answers_with_the_prices_it_was_made_at(f: Fixture) {
    let id = product(&f, "PRICED", 10).await;
    let rid = ReservationId::new();
    let first = f.products.reserve(rid, lines(&[(id, 3)])).await.unwrap();
    let line = &first.lines[0];
    assert_eq!(
        (line.product_id, line.sku.as_str(), line.name.as_str()),
        (id, "PRICED", "Product PRICED")
    );
    assert_eq!(
        (line.unit_price.amount, line.unit_price.currency.as_str()),
        (250, "EUR")
    );
    assert_eq!(line.quantity, 3);

    let dearer = ProductChanges {
        price: Some(Money::new(400, Currency::parse("EUR").unwrap())),
        ..Default::default()
    };
    f.products
        .update(id, ExpectedVersion::Any, dearer)
        .await
        .unwrap();
    // Asked again, the reservation keeps the price it was made at; a new one takes today's.
    let again = f.products.reserve(rid, lines(&[(id, 3)])).await.unwrap();
    assert_eq!(again.lines[0].unit_price.amount, 250);
    let released = f.products.release(rid).await.unwrap();
    assert_eq!(released.lines, first.lines);
    let later = f
        .products
        .reserve(ReservationId::new(), lines(&[(id, 1)]))
        .await
        .unwrap();
    assert_eq!(later.lines[0].unit_price.amount, 400);
}

async fn release_returns_stock_and_commit_removes_it(f: Fixture) {
    let id = product(&f, "FLOW", 10).await;
    let released = ReservationId::new();
    let committed = ReservationId::new();
    f.products
        .reserve(released, lines(&[(id, 2)]))
        .await
        .unwrap();
    f.products
        .reserve(committed, lines(&[(id, 3)]))
        .await
        .unwrap();

    let r = f.products.release(released).await.unwrap();
    assert_eq!(r.status, ReservationStatus::Released);
    let p = f.products.get(id).await.unwrap();
    assert_eq!((p.stock, p.reserved, p.available), (10, 3, 7));

    let r = f.products.commit(committed).await.unwrap();
    assert_eq!(r.status, ReservationStatus::Committed);
    let p = f.products.get(id).await.unwrap();
    assert_eq!((p.stock, p.reserved, p.available), (7, 0, 7));

    // Repeats are harmless; a released reservation cannot be committed.
    assert_eq!(
        f.products.release(released).await.unwrap().status,
        ReservationStatus::Released
    );
    assert_eq!(f.products.get(id).await.unwrap().available, 7);
    assert!(matches!(
        f.products.commit(released).await.unwrap_err(),
        ProductError::ReservationClosed { .. }
    ));

    // Releasing a committed reservation (a paid order cancelled before shipping) brings the
    // units back into stock, once.
    for _ in 0..2 {
        let r = f.products.release(committed).await.unwrap();
        assert_eq!(r.status, ReservationStatus::Released);
    }
    let p = f.products.get(id).await.unwrap();
    assert_eq!((p.stock, p.reserved, p.available), (10, 0, 10));
    assert!(matches!(
        f.products.commit(ReservationId::new()).await.unwrap_err(),
        ProductError::ReservationNotFound(_)
    ));
}

async fn concurrent_releases_of_one_reservation_apply_once(f: Fixture) {
    let id = product(&f, "RACE", 10).await;
    let rid = ReservationId::new();
    f.products.reserve(rid, lines(&[(id, 4)])).await.unwrap();
    f.products
        .reserve(ReservationId::new(), lines(&[(id, 1)]))
        .await
        .unwrap();
    let calls = (0..8).map(|_| {
        let products = f.products.clone();
        tokio::spawn(async move { products.release(rid).await })
    });
    for result in join_all(calls).await {
        assert_eq!(result.unwrap().unwrap().status, ReservationStatus::Released);
    }
    let p = f.products.get(id).await.unwrap();
    assert_eq!((p.reserved, p.available), (1, 9));
}

async fn stock_cannot_be_set_below_what_is_reserved(f: Fixture) {
    let id = product(&f, "FLOOR", 10).await;
    f.products
        .reserve(ReservationId::new(), lines(&[(id, 6)]))
        .await
        .unwrap();
    let changes = ProductChanges {
        stock: Some(5),
        ..Default::default()
    };
    let err = f
        .products
        .update(id, ExpectedVersion::Any, changes)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ProductError::StockBelowReserved {
            requested: 5,
            reserved: 6
        }
    ));
    assert!(matches!(
        f.products
            .delete(id, ExpectedVersion::Any)
            .await
            .unwrap_err(),
        ProductError::HasReservations(_)
    ));
}

async fn every_change_publishes_its_event_and_failures_publish_nothing(f: Fixture) {
    let id = product(&f, "EVT", 10).await;
    let p = id.to_string();
    let rid = ReservationId::new();
    f.products.reserve(rid, lines(&[(id, 1)])).await.unwrap();
    // Refused operations leave no event behind.
    f.products
        .reserve(ReservationId::new(), lines(&[(id, 100)]))
        .await
        .unwrap_err();
    let stale = ExpectedVersion::exactly(1);
    f.products
        .update(id, stale, ProductChanges::default())
        .await
        .unwrap_err();
    f.products.commit(rid).await.unwrap();
    f.products.commit(rid).await.unwrap(); // a repeat changes nothing and says nothing
    let again = ReservationId::new();
    f.products.reserve(again, lines(&[(id, 1)])).await.unwrap();
    f.products.release(again).await.unwrap();
    let changes = ProductChanges {
        stock: Some(20),
        ..Default::default()
    };
    let updated = f
        .products
        .update(id, ExpectedVersion::Any, changes)
        .await
        .unwrap();
    f.products.delete(id, ExpectedVersion::Any).await.unwrap();
    let r = rid.to_string();
    let a = again.to_string();
    assert_eq!(
        events(&f),
        [
            ("product.created".to_owned(), p.clone()),
            ("inventory.reserved".to_owned(), r.clone()),
            ("inventory.committed".to_owned(), r),
            ("inventory.reserved".to_owned(), a.clone()),
            ("inventory.released".to_owned(), a),
            ("product.updated".to_owned(), p.clone()),
            ("product.deleted".to_owned(), p),
        ]
    );
    let envelope = &published_events(&f.db)[5];
    let data: product_api::events::ProductUpdated = envelope.decode().unwrap();
    assert_eq!(
        data.product, updated,
        "the event carries the product as it became"
    );
    assert_eq!(envelope.source, "product");
}

async fn stock_low_is_published_once_per_crossing(f: Fixture) {
    // Threshold 3: 6 → 4 (above), → 3 (crosses), → 1 (still low: no repeat).
    let id = product(&f, "LOW", 6).await;
    for quantity in [2, 1, 2] {
        f.products
            .reserve(ReservationId::new(), lines(&[(id, quantity)]))
            .await
            .unwrap();
    }
    let low: Vec<_> = published_events(&f.db)
        .into_iter()
        .filter(|e| e.kind == "product.stock_low")
        .collect();
    assert_eq!(low.len(), 1);
    let data: product_api::events::StockLow = low[0].decode().unwrap();
    assert_eq!((data.available, data.threshold), (3, 3));

    // Restocking lifts it above; the next fall crosses again.
    let changes = ProductChanges {
        stock: Some(20),
        ..Default::default()
    };
    f.products
        .update(id, ExpectedVersion::Any, changes)
        .await
        .unwrap();
    let changes = ProductChanges {
        stock: Some(7),
        ..Default::default()
    };
    f.products
        .update(id, ExpectedVersion::Any, changes)
        .await
        .unwrap();
    let crossings = published_events(&f.db)
        .into_iter()
        .filter(|e| e.kind == "product.stock_low")
        .count();
    assert_eq!(crossings, 2);
}
