use reqwest::StatusCode;

use crate::helpers::{TestApp, on_both_backends};

on_both_backends!(liveness_and_readiness_answer_ok);

async fn liveness_and_readiness_answer_ok(app: TestApp) {
    for path in ["/health/live", "/health/ready"] {
        let response = app.get(path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ok");
    }
}
