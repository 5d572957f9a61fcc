use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, fields, on_both_backends, problem};

on_both_backends!(
    an_admin_creates_a_product_and_anyone_reads_it,
    a_duplicate_sku_is_a_conflict,
    every_invalid_field_is_named_in_one_response,
    missing_required_fields_are_named,
    updates_honour_if_match,
    patch_changes_only_the_given_fields,
    a_deleted_product_is_gone,
    pages_follow_the_cursor_through_every_product,
    filters_and_sorting_narrow_the_list,
    bad_list_parameters_are_named,
);

async fn an_admin_creates_a_product_and_anyone_reads_it(app: TestApp) {
    let response = app
        .admin(Method::POST, "/api/v1/products")
        .json(&json!({
            "sku": "TEA-EARL-GREY",
            "name": "Earl Grey",
            "description": "Black tea with bergamot",
            "price": {"amount": 1299, "currency": "EUR"},
            "stock": 40
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/v1/products/{}", created["id"].as_str().unwrap())
    );
    assert_eq!(created["price"], json!({"amount": 1299, "currency": "EUR"}));
    assert_eq!(
        (
            created["stock"].as_i64(),
            created["reserved"].as_i64(),
            created["available"].as_i64()
        ),
        (Some(40), Some(0), Some(40))
    );
    assert!(chrono::DateTime::parse_from_rfc3339(created["created_at"].as_str().unwrap()).is_ok());

    // Reads need no token and return the same representation and ETag.
    let response = app.get(&location).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["etag"].to_str().unwrap(), etag);
    let fetched: Value = response.json().await.unwrap();
    assert_eq!(fetched, created);

    let missing = app
        .get(&format!("/api/v1/products/{}", uuid::Uuid::now_v7()))
        .send()
        .await
        .unwrap();
    problem(missing, StatusCode::NOT_FOUND).await;
    let not_an_id = app.get("/api/v1/products/not-an-id").send().await.unwrap();
    problem(not_an_id, StatusCode::NOT_FOUND).await;
}

async fn a_duplicate_sku_is_a_conflict(app: TestApp) {
    app.create_product("DUP-1", "First", 100, 1).await;
    let response = app
        .admin(Method::POST, "/api/v1/products")
        .json(&json!({"sku": "DUP-1", "name": "Second", "price": {"amount": 5, "currency": "EUR"}, "stock": 1}))
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::CONFLICT).await;
    assert!(body["detail"].as_str().unwrap().contains("DUP-1"));

    // Renaming another product onto a taken SKU is a conflict too.
    let other = app.create_product("DUP-2", "Other", 100, 1).await;
    let response = app
        .admin(
            Method::PATCH,
            &format!("/api/v1/products/{}", other["id"].as_str().unwrap()),
        )
        .json(&json!({"sku": "DUP-1"}))
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::CONFLICT).await;
}

async fn every_invalid_field_is_named_in_one_response(app: TestApp) {
    // Wrong types, an unknown field, and an unknown currency in one body.
    let response = app
        .admin(Method::POST, "/api/v1/products")
        .json(&json!({
            "sku": "OK-1",
            "name": 42,
            "price": {"amount": 100, "currency": "ABC"},
            "stock": "many",
            "colour": "red"
        }))
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(fields(&body), ["colour", "name", "price.currency", "stock"]);

    // Well-typed values out of range.
    let response = app
        .admin(Method::POST, "/api/v1/products")
        .json(&json!({
            "sku": "has spaces",
            "name": "  ",
            "price": {"amount": -5, "currency": "EUR"},
            "stock": -1
        }))
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(fields(&body), ["name", "price.amount", "sku", "stock"]);
    let listed = app.get("/api/v1/products").send().await.unwrap();
    let page: Value = listed.json().await.unwrap();
    assert_eq!(page["total"], 0, "nothing invalid was stored");
}

async fn missing_required_fields_are_named(app: TestApp) {
    let response = app
        .admin(Method::POST, "/api/v1/products")
        .json(&json!({"name": "Nameless"}))
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(fields(&body), ["price", "sku", "stock"]);
}

async fn updates_honour_if_match(app: TestApp) {
    let created = app.create_product("ETAG-1", "Mug", 800, 5).await;
    let path = format!("/api/v1/products/{}", created["id"].as_str().unwrap());
    let etag = app.get(&path).send().await.unwrap().headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    let replacement = json!({"sku": "ETAG-1", "name": "Big mug", "price": {"amount": 900, "currency": "EUR"}, "stock": 7});

    let response = app
        .admin(Method::PUT, &path)
        .header("If-Match", &etag)
        .json(&replacement)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let new_etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_etag, etag);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["name"], "Big mug");
    assert_eq!(
        body["description"], "",
        "PUT replaces: an omitted description is cleared"
    );

    // The old ETag is stale now: PUT, PATCH and DELETE all refuse it.
    let stale = app
        .admin(Method::PUT, &path)
        .header("If-Match", &etag)
        .json(&replacement)
        .send()
        .await
        .unwrap();
    problem(stale, StatusCode::PRECONDITION_FAILED).await;
    let stale = app
        .admin(Method::PATCH, &path)
        .header("If-Match", &etag)
        .json(&json!({"stock": 1}))
        .send()
        .await
        .unwrap();
    problem(stale, StatusCode::PRECONDITION_FAILED).await;
    let stale = app
        .admin(Method::DELETE, &path)
        .header("If-Match", &etag)
        .send()
        .await
        .unwrap();
    problem(stale, StatusCode::PRECONDITION_FAILED).await;
    let current: Value = app.get_json(&path).await;
    assert_eq!(current["stock"], 7, "refused writes changed nothing");

    let ok = app
        .admin(Method::PATCH, &path)
        .header("If-Match", &new_etag)
        .json(&json!({"stock": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

async fn patch_changes_only_the_given_fields(app: TestApp) {
    let created = app.create_product("PATCH-1", "Teapot", 2500, 3).await;
    let path = format!("/api/v1/products/{}", created["id"].as_str().unwrap());
    let response = app
        .admin(Method::PATCH, &path)
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"price": {"amount": 2000, "currency": "EUR"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["price"]["amount"], 2000);
    assert_eq!(body["name"], "Teapot");
    assert_eq!(body["stock"], 3);
    assert_eq!(body["version"], created["version"].as_i64().unwrap() + 1);

    let response = app
        .admin(Method::PATCH, &path)
        .json(&json!({"stock": -2, "nickname": "x"}))
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    // The unknown field and the broken rule, in one answer.
    assert_eq!(fields(&body), ["nickname", "stock"]);
    let response = app
        .admin(Method::PATCH, &path)
        .json(&json!({"stock": -2}))
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(fields(&body), ["stock"]);
}

async fn a_deleted_product_is_gone(app: TestApp) {
    let created = app.create_product("DEL-1", "Spoon", 100, 1).await;
    let path = format!("/api/v1/products/{}", created["id"].as_str().unwrap());
    let response = app
        .admin(Method::DELETE, &path)
        .header("If-Match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    problem(app.get(&path).send().await.unwrap(), StatusCode::NOT_FOUND).await;
    problem(
        app.admin(Method::DELETE, &path).send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    // The SKU is free again.
    app.create_product("DEL-1", "Spoon again", 100, 1).await;
}

async fn collect_pages(app: &TestApp, query: &str) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("/api/v1/products?{query}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = app.get_json(&url).await;
        pages += 1;
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 20, "pagination does not end");
    }
    (items, pages)
}

fn names(items: &[Value]) -> Vec<&str> {
    items.iter().map(|p| p["name"].as_str().unwrap()).collect()
}

async fn pages_follow_the_cursor_through_every_product(app: TestApp) {
    // Two products share a name and a price, so the id tie-break is exercised.
    for (sku, name, price) in [
        ("P-1", "delta", 300),
        ("P-2", "alpha", 100),
        ("P-3", "charlie", 300),
        ("P-4", "bravo", 200),
        ("P-5", "alpha", 100),
    ] {
        app.create_product(sku, name, price, 1).await;
    }
    let (items, pages) = collect_pages(&app, "limit=2&sort=name").await;
    assert_eq!(pages, 3);
    assert_eq!(
        names(&items),
        ["alpha", "alpha", "bravo", "charlie", "delta"]
    );

    let (items, _) = collect_pages(&app, "limit=2&sort=-price").await;
    let prices: Vec<i64> = items
        .iter()
        .map(|p| p["price"]["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(prices, [300, 300, 200, 100, 100]);
    let mut skus: Vec<&str> = items.iter().map(|p| p["sku"].as_str().unwrap()).collect();
    skus.sort_unstable();
    assert_eq!(
        skus,
        ["P-1", "P-2", "P-3", "P-4", "P-5"],
        "every product exactly once"
    );

    let (items, _) = collect_pages(&app, "limit=1").await;
    let skus: Vec<&str> = items.iter().map(|p| p["sku"].as_str().unwrap()).collect();
    assert_eq!(
        skus,
        ["P-1", "P-2", "P-3", "P-4", "P-5"],
        "default order is creation order"
    );

    let first: Value = app.get_json("/api/v1/products?limit=2").await;
    assert_eq!(first["total"], 5);
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
}

async fn filters_and_sorting_narrow_the_list(app: TestApp) {
    app.create_product("TEA-GREEN", "Green Tea", 500, 1).await;
    app.create_product("TEA-BLACK", "Black Tea", 700, 1).await;
    app.create_product("MUG-1", "Mug", 900, 1).await;
    app.create_product("HONEY-1", "Honey 100%_pure", 1500, 1)
        .await;

    let page: Value = app.get_json("/api/v1/products?q=tea&sort=-price").await;
    assert_eq!(
        names(page["items"].as_array().unwrap()),
        ["Black Tea", "Green Tea"]
    );
    assert_eq!(page["total"], 2);

    let page: Value = app.get_json("/api/v1/products?q=mug-").await;
    assert_eq!(
        names(page["items"].as_array().unwrap()),
        ["Mug"],
        "q matches SKUs, case-insensitively"
    );

    let page: Value = app
        .get_json("/api/v1/products?min_price=600&max_price=1000&sort=price")
        .await;
    assert_eq!(
        names(page["items"].as_array().unwrap()),
        ["Black Tea", "Mug"]
    );

    // LIKE wildcards in q are literal.
    let page: Value = app.get_json("/api/v1/products?q=%25_").await;
    assert_eq!(
        names(page["items"].as_array().unwrap()),
        ["Honey 100%_pure"]
    );

    let page: Value = app.get_json("/api/v1/products?currency=USD").await;
    assert_eq!(page["total"], 0);
}

async fn bad_list_parameters_are_named(app: TestApp) {
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("sort=colour", "sort"),
        ("cursor=nonsense", "cursor"),
        ("currency=EURO", "currency"),
        ("min_price=-1", "min_price"),
        ("colour=red", "colour"),
    ] {
        let response = app
            .get(&format!("/api/v1/products?{query}"))
            .send()
            .await
            .unwrap();
        let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(fields(&body), [field], "{query}");
    }
}
