//! The bus as an operator sees it: events listed by their worst delivery state, dead letters
//! replayed over HTTP.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use kernel::{
    auth::Role,
    bus::{self, Subscriber},
    db::Backend,
};
use product::api::events::ProductCreated;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{TestApp, problem};

/// The name of the [`Switch`] subscriber on the bus, and the error it fails with.
pub(crate) const SWITCH: &str = "test.switch";
pub(crate) const SWITCH_ERROR: &str = "the switch is off";

/// A subscriber to `product.created` that fails while `broken` is set.
pub(crate) struct Switch {
    pub broken: AtomicBool,
    pub handled: AtomicUsize,
}

/// An app with a [`Switch`] (broken at first) allowed two attempts: each new product leaves a
/// dead letter until the switch is mended and the event replayed.
pub(crate) async fn app_with_switch(backend: Backend) -> Option<(TestApp, Arc<Switch>)> {
    let switch = Arc::new(Switch {
        broken: AtomicBool::new(true),
        handled: AtomicUsize::new(0),
    });
    let s = switch.clone();
    let subscriber: Arc<dyn Subscriber> =
        bus::on::<ProductCreated, _>(SWITCH, move |_tx, _event, _envelope| {
            if s.broken.load(Ordering::SeqCst) {
                anyhow::bail!("{SWITCH_ERROR}");
            }
            s.handled.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    let app = TestApp::spawn_full(
        backend,
        |settings| {
            settings.bus.max_attempts = 2;
            settings.bus.backoff_base_ms = 1;
            settings.bus.backoff_max_ms = 2;
            settings.bus.poll_interval_ms = 20;
        },
        vec![subscriber],
    )
    .await?;
    Some((app, switch))
}

async fn events(app: &TestApp, query: &str) -> Value {
    let response = app
        .admin(Method::GET, &format!("/api/v1/admin/events?{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{query}");
    response.json().await.unwrap()
}

/// Polls the event list until `done` holds (deliveries happen in the background).
async fn wait_for(app: &TestApp, query: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let page = events(app, query).await;
        if done(&page) {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("events?{query} never reached the expected state");
}

crate::helpers::on_both_backends_with!(
    app_with_switch,
    a_dead_letter_is_listed_and_replayed_after_the_fix,
    the_event_list_filters_and_pages,
);

async fn a_dead_letter_is_listed_and_replayed_after_the_fix((app, switch): (TestApp, Arc<Switch>)) {
    let product = app.create_product("EVT-1", "Kettle", 3000, 10).await;
    let failed = wait_for(&app, "status=failed", |p| {
        p["items"].as_array().unwrap().len() == 1
    })
    .await;
    let event = &failed["items"][0];
    assert_eq!(event["type"], "product.created");
    assert_eq!(event["source"], "product");
    assert_eq!(event["subject"], product["id"]);
    assert_eq!(event["attempts"], 2);
    assert!(
        event["last_error"]
            .as_str()
            .unwrap()
            .contains("the switch is off")
    );
    assert_eq!(switch.handled.load(Ordering::SeqCst), 0);

    let id = event["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/admin/events/{id}/replay");
    let customer = app
        .client
        .post(app.url(&path))
        .bearer_auth(app.token(Role::Customer))
        .send()
        .await
        .unwrap();
    problem(customer, StatusCode::FORBIDDEN).await;

    switch.broken.store(false, Ordering::SeqCst);
    let replay = app.admin(Method::POST, &path).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::ACCEPTED);
    let body: Value = replay.json().await.unwrap();
    assert_eq!(body["replayed"], 1);
    wait_for(&app, "type=product.created", |p| {
        p["items"][0]["status"] == "delivered"
    })
    .await;
    assert_eq!(switch.handled.load(Ordering::SeqCst), 1);

    // Replaying a delivered event re-delivers nothing; `all=true` runs the handler again.
    let body: Value = app
        .admin(Method::POST, &path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["replayed"], 0);
    let body: Value = app
        .admin(Method::POST, &format!("{path}?all=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["replayed"], 1);
    for _ in 0..100 {
        if switch.handled.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(switch.handled.load(Ordering::SeqCst), 2);

    let missing = app
        .admin(
            Method::POST,
            &format!("/api/v1/admin/events/{}/replay", uuid::Uuid::now_v7()),
        )
        .send()
        .await
        .unwrap();
    problem(missing, StatusCode::NOT_FOUND).await;
}

async fn the_event_list_filters_and_pages((app, switch): (TestApp, Arc<Switch>)) {
    switch.broken.store(false, Ordering::SeqCst);
    for n in 0..3 {
        app.create_product(&format!("LIST-{n}"), "Cup", 100, 1)
            .await;
    }
    let all = wait_for(&app, "type=product.created", |p| {
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["status"] == "delivered")
    })
    .await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3);
    // stock 1 is below the default threshold: each creation also said stock_low.
    let low = events(&app, "type=product.stock_low").await;
    assert_eq!(low["items"].as_array().unwrap().len(), 3);
    assert_eq!(
        low["items"][0]["status"], "unconsumed",
        "no subscriber: nothing to wait for, and nothing was delivered"
    );

    let first = events(&app, "limit=2").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let next = first["next"].as_str().unwrap();
    let rest = events(&app, &format!("limit=10&cursor={next}")).await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 4);
    assert!(rest["next"].is_null());
    assert_eq!(
        events(&app, "status=failed").await["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    for query in ["status=lost", "limit=0", "cursor=zzz", "colour=red"] {
        let response = app
            .admin(Method::GET, &format!("/api/v1/admin/events?{query}"))
            .send()
            .await
            .unwrap();
        problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let anonymous = app.get("/api/v1/admin/events").send().await.unwrap();
    problem(anonymous, StatusCode::UNAUTHORIZED).await;
    let customer = app
        .client
        .get(app.url("/api/v1/admin/events"))
        .bearer_auth(app.token(Role::Customer))
        .send()
        .await
        .unwrap();
    problem(customer, StatusCode::FORBIDDEN).await;
}
