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
    products: Arc<dyn ProductService>,
    orders: Arc<dyn OrderService>,
}

/// The product and order modules on a fresh database, their subscribers registered; the
/// relay is run by hand ([`Fixture::deliver`]).
fn fixture(backend: Backend) -> Option<Fixture> {
    let database = TestDatabase::new(backend)?;
    let db = Db::connect(&database.settings()).unwrap();
    db.migrate(&[bus::MIGRATIONS, product::MIGRATIONS, order::MIGRATIONS])
        .unwrap();
    let bus = Bus::new(db.clone(), Settings::defaults(AppEnv::Test).unwrap().bus);
    let product = ProductModule::new(
        Context {
            bus: bus.clone(),
            settings: ProductSettings::default(),
        },
        (),
    )
    .unwrap();
    for subscriber in product.subscribers() {
        bus.subscribe(subscriber).unwrap();
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
        products,
        orders: module.service(),
    })
}

impl Fixture {
    async fn product(&self, sku: &str, price: i64, stock: i64) -> Product {
        let input = ProductInput {
            sku: sku.into(),
            name: format!("Product {sku}"),
            description: String::new(),
            price: Money::new(price, Currency::parse("EUR").unwrap()),
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
);

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
