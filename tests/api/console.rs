//! The operator console at `/console/`: its page and assets as served (under the API's
//! Content-Security-Policy), the module map it draws, the per-subscriber backlog it reads, and
//! the whole page in a real browser — modules, map, a dead letter replayed with its button
//! (`scripts/console-e2e`; `TESSERA_SKIP_BROWSER=1` skips that one, and says so).

use std::{collections::BTreeSet, path::Path, sync::atomic::Ordering, time::Duration};

use kernel::{
    auth::Role,
    db::Backend,
    http::limits::{API_CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY},
};
use reqwest::{Method, StatusCode, redirect::Policy};
use serde_json::Value;

use crate::{
    browser,
    events::{SWITCH, SWITCH_ERROR, app_with_switch},
    helpers::{TestApp, problem},
};

/// The backlog row of `subscriber` from `GET /api/v1/admin/subscribers`.
async fn backlog(app: &TestApp, subscriber: &str) -> Value {
    let list = app.admin_json("/api/v1/admin/subscribers").await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subscriber"] == subscriber)
        .cloned()
        .unwrap_or_else(|| panic!("{subscriber} is not listed: {list}"))
}

/// Polls until `subscriber` has `failed` dead letters and nothing pending; returns the dead
/// letters (deliveries are retried in the background).
async fn settled(app: &TestApp, subscriber: &str, failed: u64) -> Vec<Value> {
    for _ in 0..200 {
        let row = backlog(app, subscriber).await;
        if row["failed"] == failed && row["pending"] == 0 {
            let page = app.admin_json("/api/v1/admin/events?status=failed").await;
            return page["items"].as_array().unwrap().clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{subscriber} never settled with {failed} dead letter(s)");
}

#[tokio::test]
async fn the_console_page_is_served_under_the_pages_csp_and_its_assets_under_the_apis() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let page = app.get("/console/").send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["content-security-policy"], CONTENT_SECURITY_POLICY);
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    // Everything the page runs or wears comes from the server, as files the CSP allows.
    assert!(html.contains(r#"<script type="module" src="console.js"></script>"#));
    assert!(html.contains(r#"<link rel="stylesheet" href="console.css">"#));
    assert_eq!(html.matches("<script").count(), 1, "an inline script");
    assert!(
        !html.contains("<style") && !html.contains(" style="),
        "inline style"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "an external asset"
    );
    for link in ["../swagger-ui/", "../metrics"] {
        assert!(html.contains(&format!(r#"href="{link}""#)), "{link}");
    }

    for (path, content_type) in [
        ("/console/console.js", "text/javascript; charset=utf-8"),
        ("/console/dom.js", "text/javascript; charset=utf-8"),
        ("/console/map.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console/favicon.svg", "image/svg+xml"),
        ("/console/map.json", "application/json"),
    ] {
        let response = app.get(path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["content-type"], content_type, "{path}");
        // The page's policy governs what its scripts do; the files themselves load nothing.
        assert_eq!(
            response.headers()["content-security-policy"],
            API_CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert!(!response.bytes().await.unwrap().is_empty(), "{path}");
    }

    let no_redirects = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let redirect = no_redirects.get(app.url("/console")).send().await.unwrap();
    assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(redirect.headers()["location"], "/console/");

    let post = app.client.post(app.url("/console/")).send().await.unwrap();
    assert_eq!(post.headers()["allow"], "GET");
    problem(post, StatusCode::METHOD_NOT_ALLOWED).await;
    problem(
        app.get("/console/nothing.js").send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn the_console_map_lists_every_module_event_and_subscriber_of_the_build() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let map: Value = app.get_json("/console/map.json").await;
    let modules: Vec<&str> = map["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(modules, tessera::module_names());

    // Every event type of the catalog (`tessera events`), under the module that publishes it.
    let catalog: Value = serde_json::from_str(&tessera::asyncapi_json().unwrap()).unwrap();
    let published: BTreeSet<String> = map["modules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| {
            let name = m["name"].as_str().unwrap().to_owned();
            m["publishes"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |t| format!("{name}:{}", t.as_str().unwrap()))
        })
        .collect();
    let channels = catalog["channels"].as_object().unwrap();
    assert!(!channels.is_empty());
    let messages = &catalog["components"]["messages"];
    for (name, channel) in channels {
        let kind = channel["address"]
            .as_str()
            .unwrap()
            .strip_prefix("tessera.")
            .unwrap();
        let source = messages[name]["payload"]["properties"]["source"]["const"]
            .as_str()
            .unwrap();
        assert!(
            published.contains(&format!("{source}:{kind}")),
            "{kind} (from {source}) is missing from {published:?}"
        );
    }
    assert_eq!(published.len(), channels.len(), "{published:?}");

    // Each flow ends at a module with a subscriber to those types; the trait calls are drawn.
    for flow in map["flows"].as_array().unwrap() {
        let to = flow["to"].as_str().unwrap();
        let module = &map["modules"][modules.iter().position(|m| *m == to).unwrap()];
        for kind in flow["event_types"].as_array().unwrap() {
            assert!(
                module["subscribers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["event_types"].as_array().unwrap().contains(kind)),
                "{to} consumes no {kind}"
            );
        }
    }
    if modules.contains(&"order") && modules.contains(&"product") {
        assert!(
            map["calls"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["from"] == "order"
                    && c["to"] == "product"
                    && c["via"] == "ProductService"),
            "{map}"
        );
        assert!(map["flows"].as_array().unwrap().iter().any(|f| {
            f["from"] == "order"
                && f["to"] == "product"
                && f["event_types"]
                    .as_array()
                    .unwrap()
                    .contains(&"order.paid".into())
        }));
    }
}

crate::helpers::on_both_backends_with!(
    app_with_switch,
    each_subscriber_shows_its_pending_and_dead_lettered_deliveries_and_its_lag,
);

async fn each_subscriber_shows_its_pending_and_dead_lettered_deliveries_and_its_lag(
    (app, switch): (TestApp, std::sync::Arc<crate::events::Switch>),
) {
    let quiet = backlog(&app, SWITCH).await;
    assert_eq!(quiet["pending"], 0);
    assert_eq!(quiet["failed"], 0);
    assert_eq!(quiet["lag_seconds"], 0.0);
    assert!(quiet["oldest_pending"].is_null());

    // The switch takes its two attempts and gives up.
    app.create_product("CONSOLE-1", "Kettle", 3000, 10).await;
    let dead = settled(&app, SWITCH, 1).await;
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]["last_error"]
            .as_str()
            .unwrap()
            .contains(SWITCH_ERROR)
    );

    // Mended and replayed, it is handled: nothing waits, nothing failed.
    switch.broken.store(false, Ordering::SeqCst);
    let id = dead[0]["id"].as_str().unwrap();
    let replay = app
        .admin(Method::POST, &format!("/api/v1/admin/events/{id}/replay"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::ACCEPTED);
    assert!(settled(&app, SWITCH, 0).await.is_empty());
    assert_eq!(switch.handled.load(Ordering::SeqCst), 1);

    // Only an admin reads it.
    let anonymous = app.get("/api/v1/admin/subscribers").send().await.unwrap();
    problem(anonymous, StatusCode::UNAUTHORIZED).await;
    let customer = app
        .get("/api/v1/admin/subscribers")
        .bearer_auth(app.token(Role::Customer))
        .send()
        .await
        .unwrap();
    problem(customer, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn the_console_shows_modules_map_and_a_dead_letter_that_replay_clears_in_a_browser() {
    if browser::skipped("operator console") {
        return;
    }
    let (app, switch) = app_with_switch(Backend::Sqlite).await.unwrap();
    app.create_product("CONSOLE-E2E-1", "Console kettle", 3000, 10)
        .await;
    let dead = settled(&app, SWITCH, 1).await;
    let id = dead[0]["id"].as_str().unwrap().to_owned();
    // The operator has mended what failed; the dead letter waits for their replay.
    switch.broken.store(false, Ordering::SeqCst);

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let screenshot = root.join("target/browser/console.png");
    let stdout = browser::run_script(
        "console-e2e",
        vec![
            app.base.clone(),
            app.token(Role::Admin),
            tessera::module_names().join(","),
            screenshot.display().to_string(),
        ],
    )
    .await;
    assert_eq!(
        Path::new(&browser::line(&stdout, "screenshot")),
        screenshot.as_path()
    );
    assert!(screenshot.is_file(), "{} is missing", screenshot.display());
    assert_eq!(browser::line(&stdout, "replayed"), id);
    assert!(
        browser::line(&stdout, "error").contains(SWITCH_ERROR),
        "{stdout}"
    );

    // The click really replayed it: handled once, no dead letter left.
    assert!(settled(&app, SWITCH, 0).await.is_empty());
    assert_eq!(switch.handled.load(Ordering::SeqCst), 1);
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::copy(&screenshot, root.join("docs/console.png")).unwrap();
    }
}
