//! Swagger UI in a real browser: `scripts/swagger-ui-e2e` drives headless Chromium through the
//! served page — Authorize with a token from `tessera token`, "Try it out" on
//! `POST /api/v1/products` and `GET /api/v1/products` — and fails on any console error or
//! Content-Security-Policy violation. The script installs Debian's Chromium and playwright-core
//! on first use; `TESSERA_SKIP_BROWSER=1` skips this test (and the operator console's, in
//! `console.rs`, which runs its script through [`run_script`] too), and says so.

use std::{io::Write, path::Path, process::Command};

use kernel::db::Backend;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

const SKIP_VAR: &str = "TESSERA_SKIP_BROWSER";

/// Written past the test harness's capture, so that it is seen in a plain `cargo test` too.
fn notice(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Whether the browser tests are to be skipped; says so when they are.
pub(crate) fn skipped(what: &str) -> bool {
    let skip = std::env::var(SKIP_VAR).is_ok_and(|v| v == "1");
    if skip {
        notice(&format!(
            "skipped: {what} browser test ({SKIP_VAR}=1); it needs Chromium and Node.js"
        ));
    }
    skip
}

/// Runs `scripts/<script>` with `args` off the runtime's thread (the server keeps serving the
/// browser meanwhile), asserts that it succeeded, and returns its stdout.
pub(crate) async fn run_script(script: &str, args: Vec<String>) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let out = tokio::task::spawn_blocking(move || Command::new(&path).args(args).output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("run scripts/{script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    notice(stdout.trim_end());
    assert!(
        out.status.success(),
        "scripts/{script} failed ({}); set {SKIP_VAR}=1 to skip this test where no browser \
         can be installed\n--- stdout\n{stdout}--- stderr\n{stderr}",
        out.status
    );
    stdout
}

/// The value of the `key` line (`key: value`) of a script's output.
pub(crate) fn line(stdout: &str, key: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no `{key}:` line in the script's output:\n{stdout}"))
        .trim()
        .to_owned()
}

#[tokio::test]
async fn swagger_ui_authorizes_and_executes_product_requests_in_a_browser() {
    if skipped("Swagger UI") {
        return;
    }
    // A secret and issuer of its own: the token only works if `tessera token` got them.
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.auth.jwt_secret = "swagger-e2e-secret-not-the-default-0123456789".into();
        s.auth.issuer = "tessera-swagger-e2e".into();
    })
    .await
    .unwrap();
    let token = token_from_the_binary(&app);

    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser/swagger-ui.png");
    let stdout = run_script(
        "swagger-ui-e2e",
        vec![app.base.clone(), token, screenshot.display().to_string()],
    )
    .await;
    assert_eq!(
        Path::new(&line(&stdout, "screenshot")),
        screenshot.as_path()
    );
    assert!(screenshot.is_file(), "{} is missing", screenshot.display());

    // The server really created what the page showed.
    let sku = line(&stdout, "sku");
    let response = app
        .get(&format!("/api/v1/products?q={sku}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page: Value = response.json().await.unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["sku"], sku.as_str());
    assert_eq!(items[0]["price"]["amount"], 1299);
}

/// An admin token from `tessera token`, run as a user would, for the app's secret and issuer.
fn token_from_the_binary(app: &TestApp) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir.path())
        .env_remove("TESSERA_ENV")
        .env("TESSERA__AUTH__JWT_SECRET", &app.settings.auth.jwt_secret)
        .env("TESSERA__AUTH__ISSUER", &app.settings.auth.issuer)
        .env("TESSERA__LOG__FILTER", "warn")
        .env("NO_COLOR", "1")
        .args(["token", "--sub", "swagger-e2e", "--role", "admin"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tessera token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(app.keys().verify(&token).is_ok(), "{token}");
    token
}
