//! Orders through the public trait against the real product module, on SQLite and (when
//! `TESSERA_TEST_DATABASE_URL` is set) on PostgreSQL, each test with its own database:
//! placing prices and reserves all lines or none, the state machine refuses what it does not
//! allow, cancelling gives the stock back, and listings page newest first per customer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use kernel::{
    auth::{Principal, Role},
    bus::{self, Bus},
    config::{AppEnv, Settings},
    db::{Backend, Db},
    http::cursor,
    module::{Context, Module},
    money::{Currency, Money},
    testing::{self, TestDatabase, published_events},
};
use order::{OrderModule, OrderNeighbours, OrderSettings};
use order_api::{
    CreateOrder, NewOrder, OrderError, OrderItemInput, OrderQuery, OrderService, OrderStatus,
    Transition,
};
use product::{ProductModule, ProductSettings};
use product_api::{NewProduct, Product, ProductInput, ProductService};

struct Fixture {
    _database: TestDatabase,
    db: Db,
    bus: Bus,
    /// The product module's database: `db` itself, or one of its own ([`apart`]).
    product_db: Db,
    _product_database: Option<TestDatabase>,
    products: Arc<dyn ProductService>,
    orders: Arc<dyn OrderService>,
}

/// The product and order modules on a fresh database, their subscribers registered; the
/// relay is run by hand ([`Fixture::deliver`]).
fn fixture(backend: Backend) -> Option<Fixture> {
    build(backend, false)
}

/// The same, but the product module on a database of its own: order cannot share a
/// transaction with it and places orders in committed steps, as it does over HTTP.
fn apart(backend: Backend) -> Option<Fixture> {
    build(backend, true)
}

fn migrated(database: &TestDatabase) -> Db {
    let db = Db::connect(&database.settings()).unwrap();
    db.migrate(&[bus::MIGRATIONS, product::MIGRATIONS, order::MIGRATIONS])
        .unwrap();
    db
}

fn build(backend: Backend, apart: bool) -> Option<Fixture> {
    let database = TestDatabase::new(backend)?;
    let db = migrated(&database);
    let bus = Bus::new(db.clone(), Settings::defaults(AppEnv::Test).unwrap().bus);
    let product_database = apart.then(|| TestDatabase::new(backend)).flatten();
    let product_db = product_database
        .as_ref()
        .map_or_else(|| db.clone(), migrated);
    let product_bus = if apart {
        Bus::new(
            product_db.clone(),
            Settings::defaults(AppEnv::Test).unwrap().bus,
        )
    } else {
        bus.clone()
    };
    let product = ProductModule::new(
        Context {
            bus: product_bus.clone(),
            settings: ProductSettings::default(),
        },
        (),
    )
    .unwrap();
    for subscriber in product.subscribers() {
        product_bus.subscribe(subscriber).unwrap();
    }
    let products = product.service();
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
    Some(Fixture {
        _database: database,
        db,
        bus,
        product_db,
        _product_database: product_database,
        products,
        orders: module.service(),
    })
}

impl Fixture {
    async fn product(&self, sku: &str, price: i64, stock: i64) -> Product {
        self.product_in(sku, price, "EUR", stock).await
    }

    async fn product_in(&self, sku: &str, price: i64, currency: &str, stock: i64) -> Product {
        let input = ProductInput {
            sku: sku.into(),
            name: format!("Product {sku}"),
            description: String::new(),
            price: Money::new(price, Currency::parse(currency).unwrap()),
            stock,
        };
        self.products
            .create(NewProduct::try_from(input).unwrap())
            .await
            .unwrap()
    }

    async fn available(&self, product: &Product) -> i64 {
        self.products.get(product.id).await.unwrap().available
    }

    async fn place(
        &self,
        who: &Principal,
        lines: &[(&Product, i64)],
    ) -> Result<order_api::Order, OrderError> {
        let items = lines
            .iter()
            .map(|(product, quantity)| OrderItemInput {
                product_id: product.id,
                quantity: *quantity,
            })
            .collect();
        let order = NewOrder::try_from(CreateOrder { items }).unwrap();
        self.orders.place(who, order).await
    }
}

fn customer(sub: &str) -> Principal {
    Principal {
        sub: sub.into(),
        role: Role::Customer,
    }
}

fn admin() -> Principal {
    Principal {
        sub: "root".into(),
        role: Role::Admin,
    }
}

kernel::on_both_backends!(
    with fixture:
    placing_an_order_prices_every_line_reserves_its_stock_and_announces_it,
    an_order_that_cannot_be_filled_reserves_nothing_and_is_not_stored,
    the_state_machine_refuses_what_it_does_not_allow,
    cancelling_gives_the_stock_back,
    listings_page_newest_first_and_show_customers_only_their_own,
    an_order_refused_after_its_stock_was_taken_leaves_no_order_no_reservation_and_no_event,
    concurrent_orders_take_exactly_the_stock_on_hand,
);

/// Product on another database: placing takes committed steps, as over HTTP.
mod in_steps {
    use super::*;

    kernel::on_both_backends!(
        with apart:
        an_order_placed_in_steps_is_priced_from_its_reservation,
        an_order_refused_after_reserving_in_steps_gives_its_stock_back,
    );

    async fn an_order_placed_in_steps_is_priced_from_its_reservation(f: Fixture) {
        let tea = f.product("TEA", 250, 10).await;
        let order = f.place(&customer("alice"), &[(&tea, 3)]).await.unwrap();
        assert_eq!(order.total.amount, 750);
        assert_eq!(order.items[0].sku, "TEA");
        assert_eq!(f.available(&tea).await, 7);
        let again = f.orders.get(&customer("alice"), order.id).await.unwrap();
        assert_eq!((again.total, again.items), (order.total, order.items));
    }

    async fn an_order_refused_after_reserving_in_steps_gives_its_stock_back(f: Fixture) {
        refuse_mixed_currencies(&f).await;
        assert_eq!(count(&f.db, "SELECT COUNT(*) AS n FROM orders"), 0);
        let released = "SELECT COUNT(*) AS n FROM product_reservations WHERE status = 'released'";
        assert_eq!(count(&f.product_db, released), 1);
    }
}

/// Orders a product priced in EUR with one priced in USD: refused as a 422 naming the items
/// (found once product has taken the stock and said the prices), and every unit available
/// again. Returns the EUR product.
async fn refuse_mixed_currencies(f: &Fixture) -> Product {
    let tea = f.product_in("TEA", 250, "EUR", 10).await;
    let mug = f.product_in("MUG", 900, "USD", 10).await;
    let err = f
        .place(&customer("alice"), &[(&tea, 1), (&mug, 2)])
        .await
        .unwrap_err();
    match err {
        OrderError::Invalid(fields) => {
            assert_eq!(fields.len(), 1, "{fields:?}");
            assert_eq!(fields[0].field, "items");
            assert!(fields[0].message.contains("one currency"), "{fields:?}");
        }
        other => panic!("expected a 422 naming the items, got {other:?}"),
    }
    assert_eq!((f.available(&tea).await, f.available(&mug).await), (10, 10));
    tea
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn count(db: &Db, sql: &str) -> i64 {
    use diesel::RunQueryDsl;
    let mut conn = db.get().unwrap();
    diesel::sql_query(sql)
        .get_result::<Count>(&mut *conn)
        .unwrap()
        .n
}

/// Product's prices are only known once the stock is taken; lines that do not add up to one
/// total are refused then, and the unit of work takes the reservation back with the order.
async fn an_order_refused_after_its_stock_was_taken_leaves_no_order_no_reservation_and_no_event(
    f: Fixture,
) {
    let tea = refuse_mixed_currencies(&f).await;
    assert_eq!(count(&f.db, "SELECT COUNT(*) AS n FROM orders"), 0);
    assert_eq!(count(&f.db, "SELECT COUNT(*) AS n FROM order_items"), 0);
    let reservations = "SELECT COUNT(*) AS n FROM product_reservations";
    assert_eq!(count(&f.db, reservations), 0);
    let events: Vec<String> = published_events(&f.db)
        .into_iter()
        .map(|e| e.kind)
        .filter(|kind| kind != "product.created")
        .collect();
    assert!(events.is_empty(), "{events:?}");
    // The same products in one currency still sell.
    let order = f.place(&customer("alice"), &[(&tea, 1)]).await.unwrap();
    assert_eq!(order.total.amount, 250);
}

async fn concurrent_orders_take_exactly_the_stock_on_hand(f: Fixture) {
    let hot = f.product("HOT", 100, 5).await;
    let f = Arc::new(f);
    let attempts: Vec<_> = (0..20)
        .map(|i| {
            let f = f.clone();
            let hot = hot.clone();
            tokio::spawn(async move { f.place(&customer(&format!("c{i}")), &[(&hot, 1)]).await })
        })
        .collect();
    let mut placed = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => placed += 1,
            Err(OrderError::InsufficientStock { available: 0, .. }) => {}
            Err(other) => panic!("only a shortage may refuse an order here: {other:?}"),
        }
    }
    assert_eq!(placed, 5);
    assert_eq!(f.available(&hot).await, 0);
    let stored = "SELECT COUNT(*) AS n FROM orders WHERE status = 'pending_payment'";
    assert_eq!(count(&f.db, stored), 5);
}

async fn placing_an_order_prices_every_line_reserves_its_stock_and_announces_it(f: Fixture) {
    let tea = f.product("TEA", 250, 10).await;
    let cup = f.product("CUP", 900, 3).await;
    let order = f
        .place(&customer("alice"), &[(&tea, 2), (&cup, 1)])
        .await
        .unwrap();
    assert_eq!(order.status, OrderStatus::PendingPayment);
    assert_eq!(order.customer, "alice");
    assert_eq!(order.total.amount, 2 * 250 + 900);
    assert_eq!(order.items.len(), 2);
    assert_eq!((f.available(&tea).await, f.available(&cup).await), (8, 2));
    let placed = published_events(&f.db)
        .into_iter()
        .filter(|e| e.kind == "order.placed")
        .count();
    assert_eq!(placed, 1);
    let again = f.orders.get(&customer("alice"), order.id).await.unwrap();
    assert_eq!(again.total, order.total);
    // Read back (in product id order), every line is stored as placed.
    let mut lines = order.items.clone();
    lines.sort_by_key(|item| item.product_id.to_string());
    assert_eq!(again.items, lines);
}

async fn an_order_that_cannot_be_filled_reserves_nothing_and_is_not_stored(f: Fixture) {
    let tea = f.product("TEA", 250, 10).await;
    let cup = f.product("CUP", 900, 1).await;
    let err = f
        .place(&customer("alice"), &[(&tea, 2), (&cup, 2)])
        .await
        .unwrap_err();
    match err {
        OrderError::InsufficientStock {
            product_id,
            requested,
            available,
        } => assert_eq!((product_id, requested, available), (cup.id, 2, 1)),
        other => panic!("{other:?}"),
    }
    assert_eq!((f.available(&tea).await, f.available(&cup).await), (10, 1));
    let page = f
        .orders
        .list(&admin(), query(None, 20, None))
        .await
        .unwrap();
    assert!(page.items.is_empty(), "{:?}", page.items);
}

async fn the_state_machine_refuses_what_it_does_not_allow(f: Fixture) {
    let tea = f.product("TEA", 250, 10).await;
    let alice = customer("alice");
    let order = f.place(&alice, &[(&tea, 1)]).await.unwrap();
    // Unpaid: it cannot ship, and a customer may not ship anything.
    let err = f
        .orders
        .transition(&admin(), order.id, Transition::Ship)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            OrderError::IllegalTransition {
                status: OrderStatus::PendingPayment,
                ..
            }
        ),
        "{err:?}"
    );
    let err = f
        .orders
        .transition(&alice, order.id, Transition::Deliver)
        .await
        .unwrap_err();
    assert!(matches!(err, OrderError::Forbidden(_)), "{err:?}");
    // Another customer does not even see it.
    let err = f
        .orders
        .transition(&customer("bob"), order.id, Transition::Cancel)
        .await
        .unwrap_err();
    assert!(
        matches!(err, OrderError::NotFound(id) if id == order.id),
        "{err:?}"
    );
    // Its owner cancels it once.
    let cancelled = f
        .orders
        .transition(&alice, order.id, Transition::Cancel)
        .await
        .unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(
        cancelled.cancel_reason.as_deref(),
        Some("cancelled by alice")
    );
    let err = f
        .orders
        .transition(&alice, order.id, Transition::Cancel)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            OrderError::IllegalTransition {
                status: OrderStatus::Cancelled,
                ..
            }
        ),
        "{err:?}"
    );
}

async fn cancelling_gives_the_stock_back(f: Fixture) {
    let tea = f.product("TEA", 250, 10).await;
    let order = f.place(&customer("alice"), &[(&tea, 4)]).await.unwrap();
    assert_eq!(f.available(&tea).await, 6);
    f.orders
        .transition(&admin(), order.id, Transition::Cancel)
        .await
        .unwrap();
    testing::deliver(&f.bus).await;
    assert_eq!(f.available(&tea).await, 10);
    let product = f.products.get(tea.id).await.unwrap();
    assert_eq!((product.stock, product.reserved), (10, 0));
}

async fn listings_page_newest_first_and_show_customers_only_their_own(f: Fixture) {
    let tea = f.product("TEA", 250, 100).await;
    let (alice, bob) = (customer("alice"), customer("bob"));
    let mut placed = Vec::new();
    for _ in 0..5 {
        placed.push(f.place(&alice, &[(&tea, 1)]).await.unwrap().id);
    }
    let bobs = f.place(&bob, &[(&tea, 1)]).await.unwrap().id;

    // Alice asks for everyone's orders and gets hers, two at a time, newest first.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = f.orders.list(&alice, query(None, 2, before)).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|o| o.id));
        let Some(next) = page.next else { break };
        before = Some(cursor::decode(&next).unwrap());
    }
    placed.reverse();
    assert_eq!(seen, placed);

    // Staff see everyone's; a status filter narrows it.
    let all = f
        .orders
        .list(&admin(), query(None, 100, None))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 6);
    assert_eq!(all.items[0].id, bobs);
    assert!(all.next.is_none());
    let paid = f
        .orders
        .list(&admin(), query(Some(OrderStatus::Paid), 100, None))
        .await
        .unwrap();
    assert!(paid.items.is_empty());
}

fn query(
    status: Option<OrderStatus>,
    limit: u32,
    before: Option<order_api::OrderId>,
) -> OrderQuery {
    OrderQuery {
        status,
        customer: None,
        limit,
        before,
    }
}
