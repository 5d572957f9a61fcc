//! An order-only binary (built once into `target/split`, see `split.rs`) as an operator meets
//! it: with its product neighbour down, a 503 that names the module and says when to retry
//! (`Retry-After`), never the neighbour's address or the OS error (those go to its log, with
//! the request id); without the neighbour's URL, `tessera doctor` fails naming the variable,
//! and `tessera serve` refuses before it creates or migrates a database.

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use kernel::{auth::Role, db::Backend, testing::TestDatabase};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    process::{Sql, token},
    split::{build, eventually, free_port, start},
};

const PRODUCT_URL: &str = "TESSERA__MODULES__PRODUCT__URL";

/// Runs the binary to its end (killed after 60 s: a server that should have refused but
/// started fails the test instead of hanging it).
fn run(bin: &Path, dir: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut command = Command::new(bin);
    command
        .current_dir(dir)
        .args(args)
        .env_remove("TESSERA_ENV")
        .env_remove(PRODUCT_URL)
        .env("TESSERA__SERVER__PORT", free_port().to_string())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn serve_without_the_neighbours_url_refuses_before_touching_the_database() {
    let bin = build("order");
    // SQLite: the default `./data/tessera.db` of its working directory is never created.
    let dir = tempfile::tempdir().unwrap();
    let out = run(&bin, dir.path(), &["serve"], &[]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "serve started: {stderr}");
    assert!(stderr.contains(PRODUCT_URL), "{stderr}");
    assert!(!dir.path().join("data/tessera.db").exists(), "{stderr}");
    // PostgreSQL: the database stays empty, not migrated.
    if let Some(database) = TestDatabase::new(Backend::Postgres) {
        let env = [("TESSERA__DATABASE__URL", database.url().to_owned())];
        let out = run(&bin, dir.path(), &["serve"], &env);
        assert!(!out.status.success(), "{}", text(&out.stderr));
        let tables = Sql::connect(database.url()).count(
            "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'public'",
        );
        assert_eq!(tables, 0, "serve created tables before refusing");
    }
}

#[test]
fn doctor_names_the_missing_neighbour_url() {
    let bin = build("order");
    let dir = tempfile::tempdir().unwrap();
    let out = run(&bin, dir.path(), &["doctor"], &[]);
    let report = text(&out.stdout);
    assert!(!out.status.success(), "{report}");
    let failed: Vec<&str> = report.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        failed.iter().any(|l| l.contains(PRODUCT_URL)),
        "no FAIL line names {PRODUCT_URL}:\n{report}"
    );
    // With the URL set, the same check passes and says where the neighbour is.
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = run(&bin, dir.path(), &["doctor"], &[(PRODUCT_URL, url.clone())]);
    let report = text(&out.stdout);
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("ok") && l.contains("product module") && l.contains(&url)),
        "{report}"
    );
    assert!(!report.contains(PRODUCT_URL), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_neighbour_down_503_names_the_module_and_when_to_retry_and_nothing_internal() {
    let bin = build("order");
    let dir = tempfile::tempdir().unwrap();
    // Nobody listens at the product URL: every connection is refused.
    let product_port = free_port();
    let product_url = format!("http://127.0.0.1:{product_port}");
    let order = start(
        &bin,
        dir.path(),
        free_port(),
        &[(PRODUCT_URL, product_url.clone())],
    );
    let client = reqwest::Client::new();
    let place = || {
        client
            .post(format!("{}/api/v1/orders", order.base))
            .bearer_auth(token("alice", Role::Customer))
            .json(&json!({"items": [{"product_id": uuid::Uuid::now_v7(), "quantity": 1}]}))
            .send()
    };
    let mut waits = Vec::new();
    // The first calls fail on refused connections; once the breaker is open (after 5
    // failures), it refuses by itself and the wait is its remaining cooldown (5 s).
    for _ in 0..3 {
        let response = place().await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let headers = response.headers().clone();
        let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry_after >= 1, "Retry-After: {retry_after}");
        waits.push(retry_after);
        let request_id = headers["x-request-id"].to_str().unwrap().to_owned();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "unavailable");
        assert_eq!(body["module"], "product");
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("product module") && detail.contains(&format!("{retry_after} s")),
            "{detail}"
        );
        let text = body.to_string();
        for internal in [
            "127.0.0.1",
            &product_port.to_string(),
            "http://",
            "os error",
            "refused",
        ] {
            assert!(!text.contains(internal), "{internal:?} in {text}");
        }
        // The log has what the answer leaves out, under the request's id.
        eventually("a warning with the request id and the cause", || async {
            order.log().lines().any(|l| {
                l.contains("WARN")
                    && l.contains(&request_id)
                    && (l.contains("os error") || l.contains("circuit breaker open"))
            })
        })
        .await;
    }
    assert!(
        waits.iter().any(|w| *w > 1),
        "the open breaker's cooldown was never the wait: {waits:?}"
    );
}
