//! What the payment tests share: stand-ins for the order module and the gateway, a fixture
//! with its own database, and helpers.
#![allow(dead_code, reason = "each test binary uses a part of it")]

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use async_trait::async_trait;
use kernel::{
    auth::{Principal, Role},
    bus::{self, Bus, Envelope},
    config::{AppEnv, Settings},
    db::{Backend, Db},
    money::{Currency, Money},
    testing::{TestDatabase, published_events},
};
use order_api::{
    NewOrder, Order, OrderError, OrderId, OrderPage, OrderQuery, OrderService, OrderStatus,
    Transition, events::OrderCancelled,
};
use payment_api::{
    Card, CardInput, ChargeOutcome, PaymentGateway, PaymentId, PaymentService, PaymentStatus,
};

pub const GOOD_CARD: &str = "4242424242424242";
pub const DECLINED_CARD: &str = "4000000000000002";
pub const POOR_CARD: &str = "4000000000009995";
pub const CVC: &str = "987";

/// Orders the payment module may read: customers see only their own, like the real one.
#[derive(Default)]
pub struct FixedOrders(pub Mutex<HashMap<OrderId, Order>>);

#[async_trait]
impl OrderService for FixedOrders {
    async fn place(&self, _: &Principal, _: NewOrder) -> Result<Order, OrderError> {
        Err(anyhow::anyhow!("not used by the payment module").into())
    }

    async fn get(&self, actor: &Principal, id: OrderId) -> Result<Order, OrderError> {
        let orders = self.0.lock().unwrap();
        match orders.get(&id) {
            Some(order) if actor.role != Role::Customer || order.customer == actor.sub => {
                Ok(order.clone())
            }
            _ => Err(OrderError::NotFound(id)),
        }
    }

    async fn list(&self, _: &Principal, _: OrderQuery) -> Result<OrderPage, OrderError> {
        Err(anyhow::anyhow!("not used by the payment module").into())
    }

    async fn transition(
        &self,
        _: &Principal,
        _: OrderId,
        _: Transition,
    ) -> Result<Order, OrderError> {
        Err(anyhow::anyhow!("not used by the payment module").into())
    }
}

/// The simulated gateway, with switches to make it unreachable and a record of its refunds.
#[derive(Default)]
pub struct TestGateway {
    pub down: AtomicBool,
    /// Charges take this long (milliseconds).
    pub latency_ms: AtomicU64,
    refunds: Mutex<Vec<(PaymentId, Money)>>,
}

impl TestGateway {
    pub fn refunds(&self) -> Vec<(PaymentId, Money)> {
        self.refunds.lock().unwrap().clone()
    }

    fn unreachable(&self) -> anyhow::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            anyhow::bail!("connection refused");
        }
        Ok(())
    }
}

#[async_trait]
impl PaymentGateway for TestGateway {
    async fn charge(
        &self,
        payment: PaymentId,
        amount: Money,
        card: &Card,
    ) -> anyhow::Result<ChargeOutcome> {
        self.unreachable()?;
        let latency = self.latency_ms.load(Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
        payment::simulated_gateway()
            .charge(payment, amount, card)
            .await
    }

    async fn refund(&self, payment: PaymentId, amount: Money) -> anyhow::Result<()> {
        self.unreachable()?;
        self.refunds.lock().unwrap().push((payment, amount));
        Ok(())
    }
}

pub struct Fixture {
    pub payments: Arc<dyn PaymentService>,
    pub orders: Arc<FixedOrders>,
    pub gateway: Arc<TestGateway>,
    pub bus: Bus,
    pub db: Db,
    pub _database: TestDatabase,
}

pub fn fixture(backend: Backend) -> Option<Fixture> {
    let database = TestDatabase::new(backend)?;
    let db = Db::connect(&database.settings()).unwrap();
    db.migrate(&[bus::MIGRATIONS, payment::MIGRATIONS]).unwrap();
    let mut settings = Settings::defaults(AppEnv::Test).unwrap().bus;
    // A failed delivery is due again at once, so a test can retry it without waiting.
    settings.backoff_base_ms = 1;
    settings.backoff_max_ms = 1;
    let bus = Bus::new(db.clone(), settings);
    let orders = Arc::new(FixedOrders::default());
    let gateway = Arc::new(TestGateway::default());
    for subscriber in payment::subscribers(gateway.clone()) {
        bus.subscribe(subscriber).unwrap();
    }
    Some(Fixture {
        payments: payment::service(bus.clone(), orders.clone(), gateway.clone()),
        orders,
        gateway,
        bus,
        db,
        _database: database,
    })
}

pub fn customer(sub: &str) -> Principal {
    Principal {
        sub: sub.into(),
        role: Role::Customer,
    }
}

pub fn admin() -> Principal {
    Principal {
        sub: "root".into(),
        role: Role::Admin,
    }
}

pub fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::parse("EUR").unwrap())
}

pub fn card(number: &str) -> Card {
    let input = CardInput {
        number: number.into(),
        exp_month: 12,
        exp_year: 2099,
        cvc: CVC.into(),
    };
    Card::parse(&input, chrono::Utc::now().date_naive()).unwrap()
}

/// An order of `customer` for `total` cents, in `status`.
pub fn order(f: &Fixture, customer: &str, total: i64, status: OrderStatus) -> OrderId {
    let now = chrono::Utc::now();
    let order = Order {
        id: OrderId::new(),
        customer: customer.into(),
        status,
        items: Vec::new(),
        total: eur(total),
        cancel_reason: None,
        expires_at: now,
        created_at: now,
        updated_at: now,
    };
    let id = order.id;
    f.orders.0.lock().unwrap().insert(id, order);
    id
}

pub fn set_status(f: &Fixture, id: OrderId, status: OrderStatus) {
    f.orders.0.lock().unwrap().get_mut(&id).unwrap().status = status;
}

/// A succeeded payment of `total` cents for a new order of alice.
pub async fn paid(f: &Fixture, total: i64) -> (OrderId, PaymentId) {
    let order = order(f, "alice", total, OrderStatus::PendingPayment);
    let payment = f
        .payments
        .pay(&customer("alice"), order, card(GOOD_CARD))
        .await
        .unwrap();
    assert_eq!(payment.status, PaymentStatus::Succeeded);
    (order, payment.id)
}

pub fn events(f: &Fixture, kind: &str) -> Vec<Envelope> {
    published_events(&f.db)
        .into_iter()
        .filter(|e| e.kind == kind)
        .collect()
}

/// Publishes `order.cancelled` the way the order module does.
pub async fn cancel(f: &Fixture, order_id: OrderId, refund: bool) {
    let bus = f.bus.clone();
    f.db.run(move |conn| {
        bus.write(conn, |tx| {
            tx.publish(&OrderCancelled {
                order_id,
                reason: "cancelled by alice".into(),
                refund,
            })
            .map(drop)
        })
    })
    .await
    .unwrap();
}

/// One turn of the relay, on the blocking pool as the real one does; how many deliveries it
/// attempted.
pub async fn deliver_once(f: &Fixture) -> usize {
    let bus = f.bus.clone();
    f.db.run(move |conn| bus.relay_batch(conn, "test-relay"))
        .await
        .unwrap()
}

/// Runs the relay until nothing is due.
pub async fn deliver(f: &Fixture) {
    while deliver_once(f).await > 0 {}
}
