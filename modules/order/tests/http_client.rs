//! `HttpOrderService` (order-api's `client` feature) against the real order handlers, over
//! the real product module (SQLite), on a local socket: the ownership rule on reads, the
//! identities it sends, typed errors, and unavailability. The server rewords every problem's
//! `title` and `detail`, so the client can only decode errors from `code` and members.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::TcpListener,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::{
    HttpServer,
    body::{self, BoxBody, MessageBody},
    dev::{ServerHandle, Service, ServiceRequest, ServiceResponse},
    http::header,
    middleware::{Next, from_fn},
    web,
};
use kernel::{
    auth::{JwtKeys, Principal, Role, bearer_token},
    bus::{self, Bus},
    client::{BreakerState, RemoteConfig},
    config::{AppEnv, AuthSettings, Settings},
    db::{Backend, Db},
    error::{PROBLEM_CONTENT_TYPE, Problem},
    http::{idempotency::IdempotencyStore, middleware::request_context},
    module::{Context, Module},
    money::{Currency, Money},
    testing::{self, TestDatabase},
};
use order::{OrderModule, OrderNeighbours, OrderSettings};
use order_api::{
    CreateOrder, NewOrder, OrderError, OrderId, OrderItemInput, OrderQuery, OrderService,
    OrderStatus, Transition, client::HttpOrderService,
};
use product::{ProductModule, ProductSettings};
use product_api::{NewProduct, ProductId, ProductInput, ProductService};

const SECRET: &str = "order-client-tests";

fn keys() -> JwtKeys {
    JwtKeys::new(&AuthSettings {
        jwt_secret: SECRET.into(),
        issuer: "tessera".into(),
        token_ttl_secs: 300,
    })
}

/// A request as the order API saw it: who called, and whether it carried an
/// `Idempotency-Key`.
type Seen = (String, Role, bool);

struct Neighbour {
    module: OrderModule,
    products: Arc<dyn ProductService>,
    db: Db,
    /// Requests that reached the order API, on any of the servers `serve` started.
    hits: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Problems whose prose the server replaced.
    reworded: Arc<AtomicUsize>,
    _database: TestDatabase,
}

fn neighbour() -> Neighbour {
    let database = TestDatabase::new(Backend::Sqlite).unwrap();
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
        bus,
        settings: OrderSettings::default(),
    };
    let neighbours = OrderNeighbours {
        products: products.clone(),
    };
    let module = OrderModule::new(context, neighbours).unwrap();
    Neighbour {
        module,
        products,
        db,
        hits: Arc::default(),
        seen: Arc::default(),
        reworded: Arc::default(),
        _database: database,
    }
}

/// Replaces the prose of every problem: a client that read it would fail the tests.
async fn reword_problems(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    counter: Arc<AtomicUsize>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let response = next.call(req).await?;
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == PROBLEM_CONTENT_TYPE);
    if !is_problem {
        return Ok(response.map_into_boxed_body());
    }
    let (req, response) = response.into_parts();
    let (head, body) = response.into_parts();
    let bytes = body::to_bytes(body)
        .await
        .map_err(|_| actix_web::error::ErrorInternalServerError("unreadable problem"))?;
    let problem: Problem = serde_json::from_slice(&bytes)?;
    let reworded = Problem {
        title: "Zzz".into(),
        detail: "Nothing to read here.".into(),
        ..problem
    };
    let response = head.set_body(serde_json::to_string(&reworded)?);
    counter.fetch_add(1, Ordering::SeqCst);
    Ok(ServiceResponse::new(req, response.map_into_boxed_body()))
}

/// Serves the order API on `listener` as the application mounts it.
fn serve(n: &Neighbour, listener: TcpListener) -> ServerHandle {
    let module = n.module.clone();
    let idempotency = web::Data::new(IdempotencyStore::new(n.db.clone(), SECRET.as_bytes()));
    let (hits, seen, reworded) = (n.hits.clone(), n.seen.clone(), n.reworded.clone());
    let server = HttpServer::new(move || {
        let (hits, seen, reworded) = (hits.clone(), seen.clone(), reworded.clone());
        let app = testing::module_api(keys(), idempotency.clone(), &|cfg| module.routes(cfg));
        app.wrap(from_fn(move |req, next| {
            reword_problems(req, next, reworded.clone())
        }))
        .wrap(from_fn(request_context))
        .wrap_fn(move |req, srv| {
            hits.fetch_add(1, Ordering::SeqCst);
            let caller = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(bearer_token)
                .and_then(|token| keys().verify(token).ok());
            if let Some(claims) = caller {
                let keyed = req.headers().contains_key("idempotency-key");
                seen.lock().unwrap().push((claims.sub, claims.role, keyed));
            }
            srv.call(req)
        })
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    handle
}

fn started(n: &Neighbour) -> (HttpOrderService, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    serve(n, listener);
    (client(port, Duration::from_millis(300)), port)
}

fn client(port: u16, breaker_cooldown: Duration) -> HttpOrderService {
    let config = RemoteConfig {
        breaker_failures: 2,
        breaker_cooldown,
        ..RemoteConfig::new(format!("http://127.0.0.1:{port}"))
    };
    HttpOrderService::new("payment", keys(), &config).unwrap()
}

fn principal(sub: &str, role: Role) -> Principal {
    Principal {
        sub: sub.into(),
        role,
    }
}

/// A product created in process (the catalog is not what is under test).
async fn product(n: &Neighbour, sku: &str, stock: i64) -> ProductId {
    let input = ProductInput {
        sku: sku.into(),
        name: format!("Product {sku}"),
        description: String::new(),
        price: Money::new(250, Currency::parse("EUR").unwrap()),
        stock,
    };
    let created = n.products.create(NewProduct::try_from(input).unwrap());
    created.await.unwrap().id
}

fn new_order(items: &[(ProductId, i64)]) -> NewOrder {
    NewOrder::try_from(CreateOrder {
        items: items
            .iter()
            .map(|&(product_id, quantity)| OrderItemInput {
                product_id,
                quantity,
            })
            .collect(),
    })
    .unwrap()
}

fn everything() -> OrderQuery {
    OrderQuery {
        status: None,
        customer: None,
        limit: 20,
        before: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_as_the_service_and_customers_see_only_their_own_orders() {
    let n = neighbour();
    let (orders, _) = started(&n);
    let tea = product(&n, "TEA", 10).await;
    let (alice, bob) = (
        principal("alice", Role::Customer),
        principal("bob", Role::Customer),
    );
    let alices = orders.place(&alice, new_order(&[(tea, 1)])).await.unwrap();
    let bobs = orders.place(&bob, new_order(&[(tea, 2)])).await.unwrap();
    n.seen.lock().unwrap().clear();

    assert_eq!(orders.get(&alice, alices.id).await.unwrap(), alices);
    assert!(matches!(
        orders.get(&bob, alices.id).await.unwrap_err(),
        OrderError::NotFound(o) if o == alices.id
    ));
    let root = principal("root", Role::Admin);
    assert_eq!(
        orders.get(&root, alices.id).await.unwrap().customer,
        "alice"
    );

    let page = orders.list(&bob, everything()).await.unwrap();
    assert_eq!(page.items, [bobs]);
    assert_eq!(
        orders.list(&root, everything()).await.unwrap().items.len(),
        2
    );
    let seen = n.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 5);
    assert!(
        seen.iter()
            .all(|(sub, role, _)| sub == "payment" && *role == Role::Service),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_act_as_the_user_and_errors_come_back_typed() {
    let n = neighbour();
    let (orders, _) = started(&n);
    let tea = product(&n, "TEA", 3).await;
    let alice = principal("alice", Role::Customer);
    let placed = orders.place(&alice, new_order(&[(tea, 2)])).await.unwrap();
    assert_eq!(
        (placed.customer.as_str(), placed.status),
        ("alice", OrderStatus::PendingPayment)
    );
    assert_eq!(
        n.seen.lock().unwrap().as_slice(),
        [("alice".to_owned(), Role::Customer, true)]
    );

    let err = orders
        .place(&alice, new_order(&[(tea, 5)]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, OrderError::InsufficientStock { product_id, requested: 5, available: 1 } if product_id == tea),
        "{err:?}"
    );
    let unknown = ProductId::new();
    let err = orders
        .place(&alice, new_order(&[(unknown, 1)]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, OrderError::UnknownProduct { index: 0, product_id } if product_id == unknown),
        "{err:?}"
    );

    let root = principal("root", Role::Admin);
    let err = orders
        .transition(&root, placed.id, Transition::Ship)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            OrderError::IllegalTransition { id, status: OrderStatus::PendingPayment, action: "shipped" } if id == placed.id
        ),
        "{err:?}"
    );
    let err = orders
        .transition(&alice, placed.id, Transition::Ship)
        .await
        .unwrap_err();
    assert!(matches!(err, OrderError::Forbidden(_)), "{err:?}");
    let cancelled = orders
        .transition(&alice, placed.id, Transition::Cancel)
        .await
        .unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    let missing = OrderId::new();
    assert!(matches!(
        orders.transition(&root, missing, Transition::Cancel).await.unwrap_err(),
        OrderError::NotFound(o) if o == missing
    ));
    // Every error above reached the client with its prose replaced.
    assert_eq!(n.reworded.load(Ordering::SeqCst), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_order_service_is_unavailable_and_fails_fast_once_the_breaker_opens() {
    let n = neighbour();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A cooldown no run of this test reaches: every call after the first finds the breaker
    // open.
    let orders = client(port, Duration::from_secs(600));
    let alice = principal("alice", Role::Customer);
    let err = orders.get(&alice, OrderId::new()).await.unwrap_err();
    assert!(matches!(err, OrderError::Unavailable(_)), "{err:?}");
    assert_eq!(orders.remote().breaker_state(), BreakerState::Open);

    // The order service is back on its port, yet the open breaker refuses the calls itself:
    // none reaches it.
    serve(&n, TcpListener::bind(("127.0.0.1", port)).unwrap());
    for _ in 0..3 {
        let err = orders.get(&alice, OrderId::new()).await.unwrap_err();
        // The breaker's remaining cooldown is the wait it names.
        assert!(
            matches!(&err, OrderError::Unavailable(u) if u.module == "order" && u.retry_after > 500),
            "{err:?}"
        );
        assert_eq!(orders.remote().breaker_state(), BreakerState::Open);
    }
    assert_eq!(n.hits.load(Ordering::SeqCst), 0);
    // The count is live: a client without an open breaker does reach it.
    let missing = OrderId::new();
    let fresh = client(port, Duration::from_secs(600));
    assert!(matches!(
        fresh.get(&alice, missing).await.unwrap_err(),
        OrderError::NotFound(o) if o == missing
    ));
    assert_eq!(n.hits.load(Ordering::SeqCst), 1);
}
