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
use diesel::{
    QueryableByName, RunQueryDsl,
    sql_types::{BigInt, Nullable, Text},
};
use kernel::{
    auth::{Principal, Role},
    bus::{self, Bus, Envelope},
    config::{AppEnv, Settings},
    db::{Backend, Db},
    module::{Context, Module},
    money::{Currency, Money},
    testing::{TestDatabase, published_events},
};
use order_api::{
    NewOrder, Order, OrderError, OrderId, OrderPage, OrderQuery, OrderService, OrderStatus,
    Transition, events::OrderCancelled,
};
use payment::{PaymentModule, PaymentNeighbours, PaymentSettings};
use payment_api::{
    Card, CardInput, ChargeOutcome, GatewayRecord, IdempotencyKey, PaymentGateway, PaymentId,
    PaymentService, PaymentStatus, RefundId, RefundOutcome,
};

pub const GOOD_CARD: &str = "4242424242424242";
pub const DECLINED_CARD: &str = "4000000000000002";
pub const POOR_CARD: &str = "4000000000009995";
pub const CVC: &str = "987";

/// Orders the payment module may read: customers see only their own, like the real one.
#[derive(Default)]
pub struct FixedOrders(pub Mutex<HashMap<OrderId, Order>>, AtomicU64);

impl FixedOrders {
    /// How many times an order was read.
    pub fn reads(&self) -> u64 {
        self.1.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl OrderService for FixedOrders {
    async fn place(&self, _: &Principal, _: NewOrder) -> Result<Order, OrderError> {
        Err(anyhow::anyhow!("not used by the payment module").into())
    }

    async fn get(&self, actor: &Principal, id: OrderId) -> Result<Order, OrderError> {
        self.1.fetch_add(1, Ordering::SeqCst);
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

/// The simulated gateway (with its persistent record), with switches to make it unreachable
/// or slow.
pub struct TestGateway {
    pub down: AtomicBool,
    /// Charges take this long (milliseconds).
    pub latency_ms: AtomicU64,
    inner: Arc<dyn PaymentGateway>,
    db: Db,
}

#[derive(QueryableByName)]
struct GatewayRefund {
    #[diesel(sql_type = Text)]
    payment_id: String,
    #[diesel(sql_type = BigInt)]
    amount: i64,
}

#[derive(QueryableByName)]
struct Total {
    #[diesel(sql_type = Nullable<BigInt>)]
    total: Option<i64>,
}

impl TestGateway {
    fn new(db: Db) -> Self {
        Self {
            down: AtomicBool::new(false),
            latency_ms: AtomicU64::new(0),
            inner: payment::simulated_gateway(db.clone()),
            db,
        }
    }

    /// What the gateway itself records as refunded, oldest first.
    pub fn refunds(&self) -> Vec<(PaymentId, Money)> {
        let mut conn = self.db.get().unwrap();
        let rows: Vec<GatewayRefund> = diesel::sql_query(
            "SELECT payment_id, amount FROM payment_gateway_sim_operations \
             WHERE kind = 'refund' AND outcome = 'refunded' ORDER BY created_at, idempotency_key",
        )
        .load(&mut *conn)
        .unwrap();
        rows.into_iter()
            .map(|r| (r.payment_id.parse().unwrap(), eur(r.amount)))
            .collect()
    }

    /// The total the gateway itself records as captured for `payment`, and as refunded.
    pub fn captured_and_refunded(&self, payment: PaymentId) -> (i64, i64) {
        let mut conn = self.db.get().unwrap();
        let mut total = |sql: &str| -> i64 {
            diesel::sql_query(sql)
                .bind::<Text, _>(payment.to_string())
                .get_result::<Total>(&mut *conn)
                .unwrap()
                .total
                .unwrap_or(0)
        };
        let captured = total(&placeholders(
            &self.db,
            "SELECT CAST(SUM(amount) AS BIGINT) AS total FROM payment_gateway_sim_operations \
             WHERE kind = 'charge' AND outcome = 'captured' AND payment_id = ?",
        ));
        let refunded = total(&placeholders(
            &self.db,
            "SELECT CAST(SUM(amount) AS BIGINT) AS total FROM payment_gateway_sim_operations \
             WHERE kind = 'refund' AND outcome = 'refunded' AND payment_id = ?",
        ));
        (captured, refunded)
    }

    fn unreachable(&self) -> anyhow::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            anyhow::bail!("connection refused");
        }
        Ok(())
    }
}

/// `?` placeholders as the backend wants them.
pub fn placeholders(db: &Db, sql: &str) -> String {
    match db.backend() {
        Backend::Sqlite => sql.to_owned(),
        Backend::Postgres => {
            let mut n = 0;
            sql.chars()
                .map(|c| {
                    if c == '?' {
                        n += 1;
                        format!("${n}")
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        }
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
        self.inner.charge(payment, amount, card).await
    }

    async fn refund(
        &self,
        refund: RefundId,
        payment: PaymentId,
        amount: Money,
    ) -> anyhow::Result<RefundOutcome> {
        self.unreachable()?;
        self.inner.refund(refund, payment, amount).await
    }

    async fn lookup(&self, key: &IdempotencyKey) -> anyhow::Result<Option<GatewayRecord>> {
        self.unreachable()?;
        self.inner.lookup(key).await
    }

    async fn void(&self, key: &IdempotencyKey) -> anyhow::Result<GatewayRecord> {
        self.unreachable()?;
        self.inner.void(key).await
    }
}

pub struct Fixture {
    pub payments: Arc<dyn PaymentService>,
    pub module: PaymentModule,
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
    let gateway = Arc::new(TestGateway::new(db.clone()));
    let context = Context {
        bus: bus.clone(),
        settings: PaymentSettings::default(),
    };
    let neighbours = PaymentNeighbours {
        orders: orders.clone(),
    };
    let module = PaymentModule::with_gateway(context, neighbours, gateway.clone());
    for subscriber in module.subscribers() {
        bus.subscribe(subscriber).unwrap();
    }
    Some(Fixture {
        payments: module.service(),
        module,
        orders,
        gateway,
        bus,
        db,
        _database: database,
    })
}

/// Waits (bounded) until `done` holds.
pub async fn until<F, Fut>(what: &str, done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..400 {
        if done().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("never happened: {what}");
}

/// The statuses of every refund row, oldest first.
pub fn refund_statuses(f: &Fixture) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Status {
        #[diesel(sql_type = Text)]
        status: String,
    }
    let mut conn = f.db.get().unwrap();
    diesel::sql_query("SELECT status FROM payment_refunds ORDER BY created_at, id")
        .load::<Status>(&mut *conn)
        .unwrap()
        .into_iter()
        .map(|s| s.status)
        .collect()
}

/// Waits until no refund is pending any more (the cancellation's refunds have been carried out).
pub async fn refunds_carried_out(f: &Fixture) {
    until("every reserved refund is carried out", || async {
        !refund_statuses(f).iter().any(|s| s == "pending")
    })
    .await;
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
    kernel::testing::deliver_once(&f.bus).await
}

/// Runs the relay until nothing is due.
pub async fn deliver(f: &Fixture) {
    kernel::testing::deliver(&f.bus).await;
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Value {
    #[diesel(sql_type = Nullable<Text>)]
    value: Option<String>,
}

/// Every value of every text column of every table of the database, one per line: where a
/// card number or CVC would be if anything stored one. Timestamps and numbers are left out
/// (they are not text, and digits in them could look like a CVC).
pub fn stored_text(db: &Db) -> String {
    let mut conn = db.get().unwrap();
    let columns_sql = match db.backend() {
        Backend::Sqlite => {
            "SELECT m.name || '.' || p.name AS name FROM sqlite_master m \
             JOIN pragma_table_info(m.name) p WHERE m.type = 'table' AND p.type = 'TEXT'"
        }
        Backend::Postgres => {
            "SELECT table_name || '.' || column_name AS name FROM information_schema.columns \
             WHERE table_schema = 'public' \
             AND data_type IN ('text', 'character varying', 'json', 'jsonb')"
        }
    };
    let columns: Vec<Name> = diesel::sql_query(columns_sql).load(&mut *conn).unwrap();
    assert!(!columns.is_empty(), "the scan sees the tables");
    let mut text = String::new();
    for column in columns {
        let (table, name) = column.name.split_once('.').unwrap();
        let values: Vec<Value> = diesel::sql_query(format!(
            "SELECT CAST(\"{name}\" AS TEXT) AS value FROM \"{table}\""
        ))
        .load(&mut *conn)
        .unwrap();
        for value in values.into_iter().filter_map(|v| v.value) {
            text.push_str(&value);
            text.push('\n');
        }
    }
    text
}

/// Whether `secret` appears in `text` as a whole word (not as digits inside a longer one).
pub fn contains_word(text: &str, secret: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| word == secret)
}
