//! `HttpOrderService` against a stand-in of the order API on a local socket: the ownership
//! rule on reads, the identities it sends, and unavailability. (The real order handlers
//! over HTTP are covered by the application's end-to-end tests.)
#![cfg(feature = "client")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::TcpListener,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, dev::Service, web};
use kernel::{
    auth::{JwtKeys, Principal, Role},
    client::{BreakerState, RemoteConfig},
    config::AuthSettings,
    error::{ApiError, ErrorKind},
    money::{Currency, Money},
};
use order_api::{
    CreateOrder, NewOrder, Order, OrderError, OrderId, OrderItemInput, OrderPage, OrderQuery,
    OrderService, OrderStatus, Transition, client::HttpOrderService,
};
use product_api::ProductId;

fn keys() -> JwtKeys {
    JwtKeys::new(&AuthSettings {
        jwt_secret: "order-client-tests".into(),
        issuer: "tessera".into(),
        token_ttl_secs: 300,
    })
}

fn order(id: OrderId, customer: &str) -> Order {
    let now = chrono::Utc::now();
    let eur = Currency::parse("EUR").unwrap();
    Order {
        id,
        customer: customer.into(),
        status: OrderStatus::PendingPayment,
        items: Vec::new(),
        total: Money::new(0, eur),
        cancel_reason: None,
        expires_at: now,
        created_at: now,
        updated_at: now,
    }
}

/// Every order belongs to alice; the caller's identity is echoed in `cancel_reason`.
async fn get_order(req: HttpRequest, id: web::Path<OrderId>) -> Result<HttpResponse, ApiError> {
    let caller = Principal::from_http(&req)?;
    let mut o = order(id.into_inner(), "alice");
    o.cancel_reason = Some(format!("{}:{}", caller.role, caller.sub));
    Ok(HttpResponse::Ok().json(o))
}

async fn list_orders(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Principal::from_http(&req)?.require(&[Role::Service])?;
    let customer = req
        .query_string()
        .split('&')
        .find_map(|kv| kv.strip_prefix("customer="))
        .unwrap_or("alice")
        .to_owned();
    Ok(HttpResponse::Ok().json(OrderPage {
        items: vec![order(OrderId::new(), &customer)],
        next: None,
    }))
}

async fn place(req: HttpRequest, body: web::Json<CreateOrder>) -> Result<HttpResponse, ApiError> {
    let caller = Principal::from_http(&req)?;
    if req.headers().get("idempotency-key").is_none() {
        return Err(ApiError::new(ErrorKind::BadRequest, "no key"));
    }
    let mut o = order(OrderId::new(), &caller.sub);
    o.items = Vec::new();
    o.cancel_reason = Some(format!("{} lines", body.items.len()));
    Ok(HttpResponse::Created().json(o))
}

async fn ship(id: web::Path<OrderId>) -> Result<HttpResponse, ApiError> {
    // Through the conversion the order API uses, with the prose replaced: the client must
    // decode the variant from the code and members alone.
    let problem = ApiError::from(OrderError::IllegalTransition {
        id: id.into_inner(),
        status: OrderStatus::PendingPayment,
        action: "shipped",
    })
    .problem();
    let problem = kernel::error::Problem {
        title: "Zzz".into(),
        detail: "Nothing to read here.".into(),
        ..problem
    };
    Ok(kernel::error::problem_response(&problem))
}

fn serve() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    serve_on(listener, Arc::default());
    port
}

/// The stand-in on `listener`, counting in `hits` the requests that reach it.
fn serve_on(listener: TcpListener, hits: Arc<AtomicUsize>) {
    let server = HttpServer::new(move || {
        let hits = hits.clone();
        App::new()
            .wrap_fn(move |req, srv| {
                hits.fetch_add(1, Ordering::SeqCst);
                srv.call(req)
            })
            .app_data(web::Data::new(keys()))
            .route("/api/v1/orders", web::get().to(list_orders))
            .route("/api/v1/orders", web::post().to(place))
            .route("/api/v1/orders/{id}", web::get().to(get_order))
            .route("/api/v1/orders/{id}/ship", web::post().to(ship))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
}

fn client(port: u16) -> HttpOrderService {
    let config = RemoteConfig {
        breaker_failures: 2,
        breaker_cooldown: Duration::from_millis(300),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_as_the_service_and_customers_see_only_their_own_orders() {
    let orders = client(serve());
    let id = OrderId::new();
    let alice = principal("alice", Role::Customer);
    let got = orders.get(&alice, id).await.unwrap();
    assert_eq!(got.id, id);
    assert_eq!(got.cancel_reason.as_deref(), Some("service:payment"));
    let bob = principal("bob", Role::Customer);
    assert!(matches!(
        orders.get(&bob, id).await.unwrap_err(),
        OrderError::NotFound(o) if o == id
    ));
    assert!(
        orders
            .get(&principal("root", Role::Admin), id)
            .await
            .is_ok()
    );

    let query = OrderQuery {
        status: None,
        customer: None,
        limit: 20,
        before: None,
    };
    let page = orders.list(&bob, query).await.unwrap();
    assert_eq!(page.items[0].customer, "bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_act_as_the_user_and_conflicts_come_back_typed() {
    let orders = client(serve());
    let alice = principal("alice", Role::Customer);
    let new = NewOrder::try_from(CreateOrder {
        items: vec![OrderItemInput {
            product_id: ProductId::new(),
            quantity: 2,
        }],
    })
    .unwrap();
    let placed = orders.place(&alice, new).await.unwrap();
    assert_eq!(placed.customer, "alice");
    assert_eq!(placed.cancel_reason.as_deref(), Some("1 lines"));

    let id = OrderId::new();
    let err = orders
        .transition(&principal("root", Role::Admin), id, Transition::Ship)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            OrderError::IllegalTransition { id: o, status: OrderStatus::PendingPayment, action: "shipped" } if o == id
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_order_service_is_unavailable_and_fails_fast_once_the_breaker_opens() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A cooldown no run of this test reaches: every call after the first finds the breaker
    // open.
    let config = RemoteConfig {
        breaker_failures: 2,
        breaker_cooldown: Duration::from_secs(600),
        ..RemoteConfig::new(format!("http://127.0.0.1:{port}"))
    };
    let orders = HttpOrderService::new("payment", keys(), &config).unwrap();
    let alice = principal("alice", Role::Customer);
    let err = orders.get(&alice, OrderId::new()).await.unwrap_err();
    assert!(matches!(err, OrderError::Unavailable(_)), "{err:?}");
    assert_eq!(orders.remote().breaker_state(), BreakerState::Open);

    // The order service is back on its port, yet the open breaker refuses the calls itself:
    // none reaches it.
    let hits = Arc::new(AtomicUsize::new(0));
    serve_on(
        TcpListener::bind(("127.0.0.1", port)).unwrap(),
        hits.clone(),
    );
    for _ in 0..3 {
        let err = orders.get(&alice, OrderId::new()).await.unwrap_err();
        assert!(
            matches!(&err, OrderError::Unavailable(reason) if reason.contains("circuit breaker open")),
            "{err:?}"
        );
        assert_eq!(orders.remote().breaker_state(), BreakerState::Open);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    // The count is live: a client without an open breaker does reach it.
    client(port).get(&alice, OrderId::new()).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
