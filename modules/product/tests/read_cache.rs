//! The read cache of `GET /products/{id}`, through the real handlers: every write of this
//! process (HTTP, in-process `ProductService` calls, saga subscribers) shows at once; a write
//! of another process on the same database shows after the TTL. On SQLite and (when
//! `TESSERA_TEST_DATABASE_URL` is set) on PostgreSQL, each test with its own database.
//!
//! The invalidation tests use a TTL of a minute, so without their invalidation they would
//! see the old product.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{sync::Arc, time::Duration};

use actix_http::Request;
use actix_web::{
    App,
    body::MessageBody,
    dev::{Service, ServiceResponse},
    http::{StatusCode, header},
    test, web,
};
use diesel::RunQueryDsl;
use kernel::{
    auth::{JwtKeys, Role},
    bus::{self, Bus},
    config::{AppEnv, Settings},
    db::{Backend, Db},
    module::{Context, Module},
    money::{Currency, Money},
    testing::{self, TestDatabase},
};
use order_api::{
    OrderId,
    events::{OrderCancelled, OrderPaid},
};
use product::{ProductModule, ProductSettings};
use product_api::{ProductId, ProductService, ReservationId};
use serde_json::{Value, json};
use utoipa_actix_web::{AppExt, scope};

const LONG_TTL_MS: u64 = 60_000;

struct Fixture {
    module: ProductModule,
    products: Arc<dyn ProductService>,
    bus: Bus,
    db: Db,
    keys: JwtKeys,
    _database: TestDatabase,
}

fn keys() -> JwtKeys {
    testing::jwt_keys("product-read-cache-tests")
}

/// The product module wired as the binary wires it: one module, whose service, saga
/// subscribers and handlers share its read cache.
fn fixture(backend: Backend, cache_ttl_ms: u64) -> Option<Fixture> {
    let database = TestDatabase::new(backend)?;
    let db = Db::connect(&database.settings()).unwrap();
    db.migrate(&[bus::MIGRATIONS, product::MIGRATIONS]).unwrap();
    let bus = Bus::new(db.clone(), Settings::defaults(AppEnv::Test).unwrap().bus);
    let settings = ProductSettings {
        cache_ttl_ms,
        ..ProductSettings::default()
    };
    let module = ProductModule::new(
        Context {
            bus: bus.clone(),
            settings,
        },
        (),
    )
    .unwrap();
    for subscriber in module.subscribers() {
        bus.subscribe(subscriber).unwrap();
    }
    Some(Fixture {
        products: module.service(),
        module,
        bus,
        db,
        keys: keys(),
        _database: database,
    })
}

/// The product handlers as the binary mounts them.
async fn app(
    f: &Fixture,
) -> impl Service<Request, Response = ServiceResponse<impl MessageBody>, Error = actix_web::Error> {
    let (app, _) = App::new()
        .into_utoipa_app()
        .app_data(keys().authenticator())
        .service(scope::scope("/api/v1").configure(|cfg| f.module.routes(cfg)))
        .split_for_parts();
    test::init_service(app).await
}

/// What a GET answered: status, ETag, content type, body.
#[derive(Debug, PartialEq)]
struct Answer {
    status: StatusCode,
    etag: Option<String>,
    content_type: Option<String>,
    headers: Vec<(String, String)>,
    body: web::Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

async fn get(
    app: &impl Service<Request, Response = ServiceResponse<impl MessageBody>, Error = actix_web::Error>,
    id: ProductId,
) -> Answer {
    let req = test::TestRequest::get()
        .uri(&format!("/api/v1/products/{id}"))
        .to_request();
    let res = test::call_service(app, req).await;
    let header = |name| {
        res.headers()
            .get(name)
            .map(|v: &header::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let status = res.status();
    let etag = header(header::ETAG);
    let content_type = header(header::CONTENT_TYPE);
    let mut headers: Vec<_> = res
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    let body = test::read_body(res).await;
    Answer {
        status,
        etag,
        content_type,
        headers,
        body,
    }
}

/// An admin's write through the HTTP API; returns its status.
async fn write(
    f: &Fixture,
    app: &impl Service<Request, Response = ServiceResponse<impl MessageBody>, Error = actix_web::Error>,
    method: &str,
    id: ProductId,
    body: Option<(&str, Value)>,
) -> StatusCode {
    let token = f.keys.issue("admin", Role::Admin, None).unwrap();
    let mut req = test::TestRequest::default()
        .method(method.parse().unwrap())
        .uri(&format!("/api/v1/products/{id}"))
        .insert_header((header::AUTHORIZATION, format!("Bearer {token}")));
    if let Some((content_type, body)) = body {
        req = req
            .insert_header((header::CONTENT_TYPE, content_type))
            .set_payload(body.to_string());
    }
    test::call_service(app, req.to_request()).await.status()
}

async fn product(f: &Fixture, sku: &str, stock: i64) -> ProductId {
    support::product(f.products.as_ref(), sku, stock).await
}

use support::lines;

/// Another process's write: straight into the database, past this process's cache.
fn rename_in_database(f: &Fixture, id: ProductId, name: &str) {
    let mut conn = f.db.get().unwrap();
    let changed = diesel::sql_query(format!(
        "UPDATE products SET name = '{name}', version = version + 1 WHERE id = '{id}'"
    ))
    .execute(&mut *conn)
    .unwrap();
    assert_eq!(changed, 1);
}

/// Delivers every pending event to the subscribers, as the relay does.
fn relay(f: &Fixture) {
    let mut conn = f.db.get().unwrap();
    while f.bus.relay_batch(&mut conn, "read-cache-test").unwrap() > 0 {}
}

fn publish<E: bus::Event>(f: &Fixture, event: &E) {
    let mut conn = f.db.get().unwrap();
    f.bus
        .write(&mut conn, |tx| tx.publish(event).map(|_| ()))
        .unwrap();
}

/// `(stock, reserved, available, version)` of a GET's body.
fn levels(answer: &Answer) -> (i64, i64, i64, i64) {
    let p = answer.json();
    (
        p["stock"].as_i64().unwrap(),
        p["reserved"].as_i64().unwrap(),
        p["available"].as_i64().unwrap(),
        p["version"].as_i64().unwrap(),
    )
}

kernel::on_both_backends!(
    a_hit_answers_the_same_bytes_and_headers_as_a_miss,
    get_shows_a_patch_put_or_delete_at_once,
    get_shows_reservations_made_in_process_at_once,
    get_shows_what_saga_subscribers_changed_at_once,
    not_found_is_not_cached,
    another_process_write_shows_after_the_ttl,
    a_zero_ttl_caches_nothing,
);

async fn a_hit_answers_the_same_bytes_and_headers_as_a_miss(backend: Backend) {
    let Some(f) = fixture(backend, LONG_TTL_MS) else {
        return;
    };
    let app = app(&f).await;
    let id = product(&f, "SAME", 10).await;
    let miss = get(&app, id).await;
    let hit = get(&app, id).await;
    assert_eq!(miss.status, StatusCode::OK);
    assert_eq!(miss.etag.as_deref(), Some("\"1\""));
    assert_eq!(miss.content_type.as_deref(), Some("application/json"));
    assert_eq!(hit, miss);
    // And what the handler answered before the cache: the product, serialized by serde.
    let fresh = f.products.get(id).await.unwrap();
    assert_eq!(miss.body, serde_json::to_vec(&fresh).unwrap());

    // Proof that the second GET was served from memory: another process's change is not
    // seen yet.
    rename_in_database(&f, id, "Renamed elsewhere");
    assert_eq!(get(&app, id).await, miss);
}

async fn get_shows_a_patch_put_or_delete_at_once(backend: Backend) {
    let Some(f) = fixture(backend, LONG_TTL_MS) else {
        return;
    };
    let app = app(&f).await;
    let id = product(&f, "EDIT", 10).await;
    assert_eq!(get(&app, id).await.json()["name"], "Product EDIT");
    assert_eq!(get(&app, id).await.etag.as_deref(), Some("\"1\""));

    let patch = json!({"name": "Patched"});
    let status = write(
        &f,
        &app,
        "PATCH",
        id,
        Some(("application/merge-patch+json", patch)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let after = get(&app, id).await;
    assert_eq!(after.json()["name"], "Patched");
    assert_eq!(after.etag.as_deref(), Some("\"2\""));

    let put = json!({
        "sku": "EDIT",
        "name": "Replaced",
        "description": "new",
        "price": {"amount": 300, "currency": "EUR"},
        "stock": 4,
    });
    let status = write(&f, &app, "PUT", id, Some(("application/json", put))).await;
    assert_eq!(status, StatusCode::OK);
    let after = get(&app, id).await;
    assert_eq!(after.json()["name"], "Replaced");
    assert_eq!(after.json()["stock"], 4);
    assert_eq!(after.etag.as_deref(), Some("\"3\""));

    // The in-process trait (as the order module calls it) too.
    let changes = product_api::ProductChanges {
        stock: Some(9),
        ..Default::default()
    };
    f.products
        .update(id, kernel::version::ExpectedVersion::Any, changes)
        .await
        .unwrap();
    assert_eq!(get(&app, id).await.json()["stock"], 9);

    let status = write(&f, &app, "DELETE", id, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(get(&app, id).await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&app, id).await.status, StatusCode::NOT_FOUND);
}

async fn get_shows_reservations_made_in_process_at_once(backend: Backend) {
    let Some(f) = fixture(backend, LONG_TTL_MS) else {
        return;
    };
    let app = app(&f).await;
    let a = product(&f, "RES-A", 10).await;
    let b = product(&f, "RES-B", 5).await;
    assert_eq!(levels(&get(&app, a).await), (10, 0, 10, 1));
    assert_eq!(levels(&get(&app, b).await), (5, 0, 5, 1));

    let first = ReservationId::new();
    f.products
        .reserve(first, lines(&[(a, 3), (b, 1)]))
        .await
        .unwrap();
    assert_eq!(levels(&get(&app, a).await), (10, 3, 7, 2));
    assert_eq!(levels(&get(&app, b).await), (5, 1, 4, 2));

    // A refused reservation changes nothing, and the cache keeps serving.
    f.products
        .reserve(ReservationId::new(), lines(&[(a, 1), (b, 99)]))
        .await
        .unwrap_err();
    assert_eq!(levels(&get(&app, a).await), (10, 3, 7, 2));

    f.products.commit(first).await.unwrap();
    assert_eq!(levels(&get(&app, a).await), (7, 0, 7, 3));
    assert_eq!(levels(&get(&app, b).await), (4, 0, 4, 3));

    let second = ReservationId::new();
    f.products.reserve(second, lines(&[(a, 2)])).await.unwrap();
    assert_eq!(levels(&get(&app, a).await), (7, 2, 5, 4));
    f.products.release(second).await.unwrap();
    assert_eq!(levels(&get(&app, a).await), (7, 0, 7, 5));

    // A committed reservation released (a paid order cancelled): the units come back.
    f.products.release(first).await.unwrap();
    assert_eq!(levels(&get(&app, a).await), (10, 0, 10, 6));
}

async fn get_shows_what_saga_subscribers_changed_at_once(backend: Backend) {
    let Some(f) = fixture(backend, LONG_TTL_MS) else {
        return;
    };
    let app = app(&f).await;
    let id = product(&f, "SAGA", 10).await;
    let paid = ReservationId::new();
    let cancelled = ReservationId::new();
    f.products.reserve(paid, lines(&[(id, 2)])).await.unwrap();
    f.products
        .reserve(cancelled, lines(&[(id, 3)]))
        .await
        .unwrap();
    relay(&f); // nothing of ours to deliver yet: inventory events have no subscriber here
    assert_eq!(levels(&get(&app, id).await), (10, 5, 5, 3));

    publish(
        &f,
        &OrderPaid {
            order_id: OrderId(paid.0),
            total: Money::new(500, Currency::parse("EUR").unwrap()),
        },
    );
    relay(&f);
    assert_eq!(levels(&get(&app, id).await), (8, 3, 5, 4));

    publish(
        &f,
        &OrderCancelled {
            order_id: OrderId(cancelled.0),
            reason: "cancelled by test".into(),
            refund: false,
        },
    );
    relay(&f);
    assert_eq!(levels(&get(&app, id).await), (8, 0, 8, 5));
    // Served from the cache again from here on.
    rename_in_database(&f, id, "Renamed elsewhere");
    assert_eq!(get(&app, id).await.json()["name"], "Product SAGA");
}

async fn not_found_is_not_cached(backend: Backend) {
    let Some(f) = fixture(backend, LONG_TTL_MS) else {
        return;
    };
    let app = app(&f).await;
    let id = ProductId::new();
    assert_eq!(get(&app, id).await.status, StatusCode::NOT_FOUND);
    // Another process creates it.
    let mut conn = f.db.get().unwrap();
    diesel::sql_query(format!(
        "INSERT INTO products (id, sku, name, description, price_amount, price_currency, \
         stock, reserved, version, created_at, updated_at) VALUES ('{id}', 'ELSEWHERE', \
         'Made elsewhere', '', 100, 'EUR', 1, 0, 1, '2026-01-01 00:00:00', \
         '2026-01-01 00:00:00')"
    ))
    .execute(&mut *conn)
    .unwrap();
    drop(conn);
    let found = get(&app, id).await;
    assert_eq!(found.status, StatusCode::OK);
    assert_eq!(found.json()["name"], "Made elsewhere");
}

async fn another_process_write_shows_after_the_ttl(backend: Backend) {
    let Some(f) = fixture(backend, 50) else {
        return;
    };
    let app = app(&f).await;
    let id = product(&f, "REPLICA", 10).await;
    assert_eq!(get(&app, id).await.json()["name"], "Product REPLICA");
    rename_in_database(&f, id, "Renamed elsewhere");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = get(&app, id).await;
    assert_eq!(after.json()["name"], "Renamed elsewhere");
    assert_eq!(after.etag.as_deref(), Some("\"2\""));
}

async fn a_zero_ttl_caches_nothing(backend: Backend) {
    let Some(f) = fixture(backend, 0) else {
        return;
    };
    let app = app(&f).await;
    let id = product(&f, "NOCACHE", 10).await;
    let first = get(&app, id).await;
    assert_eq!(first.json()["name"], "Product NOCACHE");
    rename_in_database(&f, id, "Renamed elsewhere");
    let after = get(&app, id).await;
    assert_eq!(after.json()["name"], "Renamed elsewhere");
    assert_eq!(after.etag.as_deref(), Some("\"2\""));
}
