//! A [`Remote`] against a real neighbour on a local socket: tokens, context headers, the
//! breaker's whole cycle, and error statuses.

use std::{
    net::TcpListener,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

use super::*;
use crate::{
    auth::Principal,
    error::{ApiError, ErrorKind},
};

#[derive(Default)]
struct Neighbour {
    healthy: AtomicBool,
    hits: AtomicUsize,
}

fn keys() -> JwtKeys {
    JwtKeys::new(&crate::config::AuthSettings {
        jwt_secret: "client-tests".into(),
        issuer: "tessera".into(),
        token_ttl_secs: 60,
    })
}

/// Answers 503 while unhealthy; echoes the caller and the tracing headers otherwise.
async fn handler(req: HttpRequest, state: web::Data<Neighbour>) -> Result<HttpResponse, ApiError> {
    state.hits.fetch_add(1, Ordering::SeqCst);
    if !state.healthy.load(Ordering::SeqCst) {
        return Err(ApiError::new(ErrorKind::ServiceUnavailable, "Down."));
    }
    let caller = Principal::from_http(&req)?;
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "sub": caller.sub,
        "role": caller.role,
        "request_id": header("x-request-id"),
        "traceparent": header("traceparent"),
    })))
}

fn start(state: Arc<Neighbour>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let data = web::Data::from(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(keys().authenticator())
            .route("/echo", web::get().to(handler))
            .route("/echo", web::post().to(handler))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    port
}

fn remote(port: u16) -> Remote {
    let config = RemoteConfig {
        retries: 2,
        breaker_failures: 3,
        breaker_cooldown: Duration::from_millis(300),
        ..RemoteConfig::new(format!("http://127.0.0.1:{port}"))
    };
    Remote::new("neighbour", "caller", keys(), &config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_carry_a_service_token_and_the_context_headers() {
    let state = Arc::new(Neighbour::default());
    state.healthy.store(true, Ordering::SeqCst);
    let r = remote(start(state));
    // As in a request: a server span continuing the caller's trace, under an OpenTelemetry
    // layer (spans that are not exported).
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::prelude::*;
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
    };
    let mut incoming = actix_web::http::header::HeaderMap::new();
    incoming.insert(
        actix_web::http::header::HeaderName::from_static("traceparent"),
        actix_web::http::header::HeaderValue::from_static(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    );
    let call = async {
        let server = tracing::info_span!("http.request");
        crate::telemetry::continue_trace(&server, &incoming).unwrap();
        let ctx = CallContext {
            request_id: Some("req-42".into()),
            trace: None,
        };
        ctx.scope(r.send(r.request(Method::Get, "/echo")))
            .instrument(server)
            .await
    };
    let echo: serde_json::Value =
        tracing::instrument::WithSubscriber::with_subscriber(call, subscriber)
            .await
            .unwrap()
            .json()
            .unwrap();
    assert_eq!(echo["sub"], "caller");
    assert_eq!(echo["role"], "service");
    assert_eq!(echo["request_id"], "req-42");
    // The same trace, under a span of the caller's own (the client span).
    let tp = echo["traceparent"].as_str().unwrap();
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{tp}"
    );
    assert!(!tp.contains("00f067aa0ba902b7"), "{tp}");
    // Without a context: a fresh request id, and no trace to continue.
    let echo: serde_json::Value = r
        .send(r.request(Method::Get, "/echo"))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert!(!echo["request_id"].as_str().unwrap().is_empty());
    assert_eq!(echo["traceparent"], "");
    // On behalf of a user.
    let alice = Principal {
        sub: "alice".into(),
        role: Role::Customer,
    };
    let echo: serde_json::Value = r
        .send(
            r.request(Method::Get, "/echo")
                .auth(Auth::OnBehalfOf(alice)),
        )
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(echo["sub"], "alice");
    assert_eq!(echo["role"], "customer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_fails_fast_and_recovers_when_the_neighbour_is_back() {
    let state = Arc::new(Neighbour::default());
    let r = remote(start(state.clone()));

    // A POST without a key is tried once.
    let err = r.send(r.request(Method::Post, "/echo")).await.unwrap_err();
    assert!(matches!(err, RemoteError::Unavailable { .. }), "{err:?}");
    assert_eq!(err.problem().unwrap().detail, "Down.");
    assert_eq!(state.hits.swap(0, Ordering::SeqCst), 1);
    r.inner.breaker.record_success();

    // A GET is tried three times; three failures open the breaker.
    let err = r.send(r.request(Method::Get, "/echo")).await.unwrap_err();
    assert!(matches!(err, RemoteError::Unavailable { .. }), "{err:?}");
    assert_eq!(state.hits.swap(0, Ordering::SeqCst), 3);
    assert_eq!(r.breaker_state(), BreakerState::Open);

    // Open: the breaker refuses the calls itself; none reaches the neighbour, although
    // it is healthy again.
    state.healthy.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let err = r.send(r.request(Method::Get, "/echo")).await.unwrap_err();
        assert!(err.to_string().contains("circuit breaker open"), "{err}");
        assert_eq!(r.breaker_state(), BreakerState::Open);
    }
    assert_eq!(state.hits.load(Ordering::SeqCst), 0);

    // After the cooldown the probe goes through and closes the breaker.
    tokio::time::sleep(Duration::from_millis(350)).await;
    r.send(r.request(Method::Get, "/echo")).await.unwrap();
    assert_eq!(r.breaker_state(), BreakerState::Closed);
    assert_eq!(state.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_neighbour_that_is_not_listening_is_unavailable() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = remote(port);
    let err = r.send(r.request(Method::Get, "/echo")).await.unwrap_err();
    let RemoteError::Unavailable {
        service,
        reason,
        retry_after,
        ..
    } = err
    else {
        panic!("{err:?}")
    };
    // The reason, for the log, names the address and the OS error…
    assert!(reason.contains(&port.to_string()), "{reason}");
    assert_eq!(r.breaker_state(), BreakerState::Open);
    // …what the caller passes on names the module and when to retry: the breaker just
    // opened for 300 ms, so one second (rounded up).
    let unavailable = crate::error::Unavailable::new(service, retry_after);
    assert_eq!(
        (unavailable.module.as_str(), unavailable.retry_after),
        ("neighbour", 1)
    );
    let said = unavailable.to_string();
    assert!(
        !said.contains("127.0.0.1") && !said.contains("os error"),
        "{said}"
    );
    // While the breaker is open, its remaining cooldown is the wait.
    match r.send(r.request(Method::Get, "/echo")).await.unwrap_err() {
        RemoteError::Unavailable { retry_after, .. } => {
            assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_millis(300));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_statuses_come_back_as_problems_without_retries() {
    async fn conflict(state: web::Data<Neighbour>) -> Result<HttpResponse, ApiError> {
        state.hits.fetch_add(1, Ordering::SeqCst);
        Err(ApiError::new(ErrorKind::Conflict, "Taken."))
    }
    let state = Arc::new(Neighbour::default());
    let data = web::Data::from(state.clone());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/c", web::get().to(conflict))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    let r = remote(port);
    let err = r.send(r.request(Method::Get, "/c")).await.unwrap_err();
    let problem = err.problem().unwrap();
    assert_eq!(problem.status, 409);
    assert_eq!(problem.detail, "Taken.");
    assert_eq!(state.hits.load(Ordering::SeqCst), 1);
    assert_eq!(r.breaker_state(), BreakerState::Closed);
}
