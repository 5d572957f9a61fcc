//! `HttpProductService` (product-api's `client` feature) against the real product handlers
//! (SQLite, the kernel's middleware and idempotency store as the application mounts them) on
//! a local socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    net::TcpListener,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use actix_web::{
    HttpServer,
    dev::{ServerHandle, Service},
    middleware::from_fn,
    web,
};
use kernel::{
    auth::{JwtKeys, Principal, Role},
    bus::{self, Bus},
    client::{Auth, BreakerState, RemoteConfig},
    config::{AppEnv, AuthSettings, Settings},
    db::{Backend, Db},
    http::{idempotency::IdempotencyStore, middleware::request_context},
    module::{Context, Module},
    money::{Currency, Money},
    testing::{self, TestDatabase},
    version::ExpectedVersion,
};
use product::{ProductModule, ProductSettings};
use product_api::{
    NewProduct, ProductChanges, ProductError, ProductId, ProductInput, ProductQuery,
    ProductService, ReservationId, ReservationStatus, client::HttpProductService,
};
use support::{lines, product};

const SECRET: &str = "product-client-tests";

fn keys() -> JwtKeys {
    JwtKeys::new(&AuthSettings {
        jwt_secret: SECRET.into(),
        issuer: "tessera".into(),
        token_ttl_secs: 300,
    })
}

struct Neighbour {
    module: ProductModule,
    products: Arc<dyn ProductService>,
    db: Db,
    /// Requests that reached the product API, on any of the servers `serve` started.
    hits: Arc<AtomicUsize>,
    _database: TestDatabase,
}

fn neighbour() -> Neighbour {
    let database = TestDatabase::new(Backend::Sqlite).unwrap();
    let db = Db::connect(&database.settings()).unwrap();
    db.migrate(&[bus::MIGRATIONS, product::MIGRATIONS]).unwrap();
    let bus = Bus::new(db.clone(), Settings::defaults(AppEnv::Test).unwrap().bus);
    let settings = ProductSettings::default();
    let module = ProductModule::new(Context { bus, settings }, ()).unwrap();
    Neighbour {
        products: module.service(),
        module,
        db,
        hits: Arc::default(),
        _database: database,
    }
}

/// Serves the product API on `listener` as the application mounts it.
fn serve(n: &Neighbour, listener: TcpListener) -> ServerHandle {
    let module = n.module.clone();
    let idempotency = web::Data::new(IdempotencyStore::new(n.db.clone(), SECRET.as_bytes()));
    let hits = n.hits.clone();
    let server = HttpServer::new(move || {
        let hits = hits.clone();
        let app = testing::module_api(keys(), idempotency.clone(), &|cfg| module.routes(cfg));
        app.wrap(from_fn(request_context)).wrap_fn(move |req, srv| {
            hits.fetch_add(1, Ordering::SeqCst);
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

fn client(port: u16) -> HttpProductService {
    client_with_cooldown(port, Duration::from_millis(400))
}

fn client_with_cooldown(port: u16, breaker_cooldown: Duration) -> HttpProductService {
    let config = RemoteConfig {
        timeout: Duration::from_secs(2),
        retries: 2,
        breaker_failures: 3,
        breaker_cooldown,
        ..RemoteConfig::new(format!("http://127.0.0.1:{port}"))
    };
    HttpProductService::new("order", keys(), &config).unwrap()
}

fn started(n: &Neighbour) -> (HttpProductService, ServerHandle, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = serve(n, listener);
    (client(port), handle, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserving_twice_with_one_id_over_http_reserves_once() {
    let n = neighbour();
    let (products, _server, port) = started(&n);
    let id = product(n.products.as_ref(), "TEA-1", 10).await;
    let rid = ReservationId::new();
    let first = products.reserve(rid, lines(&[(id, 3)])).await.unwrap();
    let again = products.reserve(rid, lines(&[(id, 3)])).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(first.status, ReservationStatus::Active);
    // Another caller (another idempotency scope) with the same id: still once.
    let other = HttpProductService::new(
        "payment",
        keys(),
        &RemoteConfig::new(format!("http://127.0.0.1:{port}")),
    )
    .unwrap();
    assert_eq!(other.reserve(rid, lines(&[(id, 3)])).await.unwrap(), first);
    let p = products.get(id).await.unwrap();
    assert_eq!((p.reserved, p.available), (3, 7));
    // The same id with other lines is a conflict.
    let err = products.reserve(rid, lines(&[(id, 4)])).await.unwrap_err();
    assert!(
        matches!(err, ProductError::ReservationConflict(r) if r == rid),
        "{err:?}"
    );

    let committed = products.commit(rid).await.unwrap();
    assert_eq!(committed.status, ReservationStatus::Committed);
    let p = products.get(id).await.unwrap();
    assert_eq!((p.stock, p.reserved), (7, 0));
    let released = products.release(rid).await.unwrap();
    assert_eq!(released.status, ReservationStatus::Released);
    assert_eq!(products.get(id).await.unwrap().stock, 10);

    let unknown = ReservationId::new();
    assert!(matches!(
        products.release(unknown).await.unwrap_err(),
        ProductError::ReservationNotFound(r) if r == unknown
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_stock_and_unknown_products_map_back_to_their_variants() {
    let n = neighbour();
    let (products, _server, _) = started(&n);
    let plenty = product(n.products.as_ref(), "PLENTY", 5).await;
    let scarce = product(n.products.as_ref(), "SCARCE", 1).await;
    let err = products
        .reserve(ReservationId::new(), lines(&[(plenty, 2), (scarce, 2)]))
        .await
        .unwrap_err();
    match err {
        ProductError::InsufficientStock {
            product_id,
            requested,
            available,
        } => assert_eq!((product_id, requested, available), (scarce, 2, 1)),
        other => panic!("{other:?}"),
    }
    // All or nothing.
    assert_eq!(products.get(plenty).await.unwrap().available, 5);

    let unknown = ProductId::new();
    let err = products
        .reserve(ReservationId::new(), lines(&[(plenty, 1), (unknown, 1)]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProductError::NotFound(p) if p == unknown),
        "{err:?}"
    );
    assert!(matches!(
        products.get(unknown).await.unwrap_err(),
        ProductError::NotFound(p) if p == unknown
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_commands_work_over_http_for_an_admin() {
    let n = neighbour();
    let (service, _server, _) = started(&n);
    let input = || {
        NewProduct::try_from(ProductInput {
            sku: "CAT-1".into(),
            name: "One".into(),
            description: "First".into(),
            price: Money::new(100, Currency::parse("EUR").unwrap()),
            stock: 4,
        })
        .unwrap()
    };
    // Catalog writes need `admin`: a service token is refused.
    let err = service.create(input()).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err:?}");

    let admin = service.clone().with_auth(Auth::OnBehalfOf(Principal {
        sub: "root".into(),
        role: Role::Admin,
    }));
    let created = admin.create(input()).await.unwrap();
    assert_eq!(service.get(created.id).await.unwrap(), created);
    assert!(matches!(
        admin.create(input()).await.unwrap_err(),
        ProductError::DuplicateSku(sku) if sku == "CAT-1"
    ));
    let page = service
        .list(ProductQuery {
            q: Some("cat".into()),
            ..ProductQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items, std::slice::from_ref(&created));

    let stale = ExpectedVersion::exactly(99);
    let patch = ProductChanges {
        stock: Some(9),
        ..Default::default()
    };
    assert!(matches!(
        admin
            .update(created.id, stale.clone(), patch.clone())
            .await
            .unwrap_err(),
        ProductError::PreconditionFailed
    ));
    let current = ExpectedVersion::exactly(created.version);
    let patched = admin.update(created.id, current, patch).await.unwrap();
    assert_eq!((patched.stock, patched.name.as_str()), (9, "One"));
    let replaced = admin
        .update(
            created.id,
            ExpectedVersion::Any,
            ProductChanges::from(input()),
        )
        .await
        .unwrap();
    assert_eq!(replaced.stock, 4);

    service
        .reserve(ReservationId::new(), lines(&[(created.id, 4)]))
        .await
        .unwrap();
    assert!(matches!(
        admin
            .update(
                created.id,
                ExpectedVersion::Any,
                ProductChanges {
                    stock: Some(1),
                    ..Default::default()
                }
            )
            .await
            .unwrap_err(),
        ProductError::StockBelowReserved {
            requested: 1,
            reserved: 4
        }
    ));
    assert!(matches!(
        admin.delete(created.id, ExpectedVersion::Any).await.unwrap_err(),
        ProductError::HasReservations(p) if p == created.id
    ));
    let other = product(n.products.as_ref(), "CAT-2", 1).await;
    assert!(matches!(
        admin.delete(other, stale).await.unwrap_err(),
        ProductError::PreconditionFailed
    ));
    admin.delete(other, ExpectedVersion::Any).await.unwrap();
    assert!(matches!(
        service.get(other).await.unwrap_err(),
        ProductError::NotFound(p) if p == other
    ));

    // A customer may not reserve.
    let customer = service.clone().with_auth(Auth::OnBehalfOf(Principal {
        sub: "alice".into(),
        role: Role::Customer,
    }));
    let err = customer
        .reserve(ReservationId::new(), lines(&[(created.id, 1)]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("403"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_neighbour_opens_the_breaker_and_its_return_closes_it() {
    let n = neighbour();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve(&n, listener);
    // A cooldown far longer than the open phase below takes, so that no call in it can be
    // the half-open probe.
    let products = client_with_cooldown(port, Duration::from_secs(3));
    let id = product(n.products.as_ref(), "UP-DOWN", 3).await;
    assert_eq!(products.get(id).await.unwrap().id, id);

    server.stop(true).await;
    // Connection refused, three attempts: the breaker opens.
    let err = products.get(id).await.unwrap_err();
    assert!(matches!(err, ProductError::Unavailable(_)), "{err:?}");
    assert_eq!(products.remote().breaker_state(), BreakerState::Open);

    // The neighbour comes back on the same port, but while the breaker is open every call
    // fails fast, reservations included: the breaker refuses them and none reaches it.
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    n.hits.store(0, Ordering::SeqCst);
    let _server = serve(&n, listener);
    for _ in 0..3 {
        let err = products
            .reserve(ReservationId::new(), lines(&[(id, 1)]))
            .await
            .unwrap_err();
        // The breaker's remaining cooldown (3 s) is the wait it names.
        assert!(
            matches!(&err, ProductError::Unavailable(u) if u.module == "product" && u.retry_after > 1),
            "{err:?}"
        );
        assert_eq!(products.remote().breaker_state(), BreakerState::Open);
    }
    assert_eq!(n.hits.load(Ordering::SeqCst), 0);
    assert_eq!(n.products.get(id).await.unwrap().reserved, 0);

    // After the cooldown the first call is the probe: it reaches the neighbour, succeeds and
    // closes the breaker. Until then the breaker refuses the calls as above.
    let rid = ReservationId::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match products.reserve(rid, lines(&[(id, 1)])).await {
            Ok(_) => break,
            Err(ProductError::Unavailable(_))
                if products.remote().breaker_state() != BreakerState::Closed
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("{err:?}"),
        }
    }
    assert_eq!(products.remote().breaker_state(), BreakerState::Closed);
    assert_eq!(
        n.hits.load(Ordering::SeqCst),
        1,
        "only the probe reached it"
    );
    assert_eq!(products.get(id).await.unwrap().reserved, 1);
}
