//! Traces as a collector receives them: the real binaries export OTLP/HTTP (protobuf) to a
//! receiver in this test (`POST /v1/traces`, decoded with `opentelemetry-proto`), and the
//! spans say what an operator looks for in Jaeger — a SERVER span per request named by its
//! route template, the caller's `traceparent` honoured, module and database work beneath it,
//! and, in a split deployment, one trace from the order service through its client call to
//! the product service.

use std::{
    net::TcpListener,
    path::Path,
    sync::{Arc, Mutex},
};

use actix_web::{App, HttpResponse, HttpServer, web};
use kernel::auth::Role;
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{KeyValue, any_value::Value as Any},
    trace::v1::{Span, span::SpanKind},
};
use prost::Message;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    process::token,
    split::{Service, build, eventually, free_port, start},
};

/// One span as received, with the service that sent it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    span: Span,
}

impl Received {
    fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    fn kind(&self) -> SpanKind {
        SpanKind::try_from(self.span.kind).unwrap_or(SpanKind::Unspecified)
    }

    /// An attribute as text (strings as they are, integers in decimal).
    fn attr(&self, key: &str) -> Option<String> {
        text(&self.span.attributes, key)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    match value.value.as_ref()? {
        Any::StringValue(s) => Some(s.clone()),
        Any::IntValue(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// An OTLP/HTTP receiver on a free port: what it has received, and its endpoint.
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
    endpoint: String,
}

impl Collector {
    fn start() -> Self {
        async fn receive(body: web::Bytes, spans: web::Data<Mutex<Vec<Received>>>) -> HttpResponse {
            let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                return HttpResponse::BadRequest().finish();
            };
            let mut spans = spans.lock().unwrap();
            for resource_spans in request.resource_spans {
                let service = resource_spans
                    .resource
                    .as_ref()
                    .and_then(|r| text(&r.attributes, "service.name"))
                    .unwrap_or_default();
                for scope in resource_spans.scope_spans {
                    spans.extend(scope.spans.into_iter().map(|span| Received {
                        service: service.clone(),
                        span,
                    }));
                }
            }
            HttpResponse::Ok()
                .content_type("application/x-protobuf")
                .finish()
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let spans = web::Data::new(Mutex::new(Vec::new()));
        let shared = spans.clone().into_inner();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(spans.clone())
                .app_data(web::PayloadConfig::new(16 << 20))
                .route("/v1/traces", web::post().to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self {
            spans: shared,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// What a binary needs to export here, within a tenth of a second of a span's end.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.endpoint.clone()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ]
    }

    fn trace(&self, trace_id: &str) -> Vec<Received> {
        let spans = self.spans.lock().unwrap();
        spans
            .iter()
            .filter(|s| s.trace_id() == trace_id)
            .cloned()
            .collect()
    }

    /// The spans of `trace_id` once `done` holds for them (bounded wait).
    async fn wait_for(
        &self,
        trace_id: &str,
        what: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        eventually(what, || async { done(&self.trace(trace_id)) }).await;
        self.trace(trace_id)
    }
}

/// A fresh W3C `traceparent`: `(header, trace id, parent span id)`.
fn traceparent() -> (String, String, String) {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let parent = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    (format!("00-{trace_id}-{parent}-01"), trace_id, parent)
}

/// Whether `span` lies under `ancestor` in `trace` (following parent span ids).
fn descends_from(trace: &[Received], span: &Received, ancestor: &Received) -> bool {
    let mut current = span.clone();
    for _ in 0..trace.len() {
        if current.parent_id() == ancestor.span_id() {
            return true;
        }
        match trace.iter().find(|s| s.span_id() == current.parent_id()) {
            Some(parent) => current = parent.clone(),
            None => return false,
        }
    }
    false
}

fn server_span<'a>(trace: &'a [Received], service: &str, route: &str) -> Option<&'a Received> {
    trace.iter().find(|s| {
        s.service == service
            && s.kind() == SpanKind::Server
            && s.attr("http.route").as_deref() == Some(route)
    })
}

async fn create_product(base: &str, sku: &str, stock: u32) -> String {
    let created: Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/products"))
        .bearer_auth(token("ops", Role::Admin))
        .json(&json!({"sku": sku, "name": "Traced tea", "price": {"amount": 700, "currency": "EUR"}, "stock": stock}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["id"].as_str().unwrap().to_owned()
}

fn serve(bin: &Path, dir: &Path, env: &[(&str, String)]) -> Service {
    start(bin, dir, free_port(), env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_a_server_span_named_by_its_route_that_continues_the_callers_trace() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let app = serve(
        Path::new(env!("CARGO_BIN_EXE_tessera")),
        dir.path(),
        &collector.env(),
    );
    let id = create_product(&app.base, "OTLP-1", 5).await;

    let (header, trace_id, parent) = traceparent();
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/products/{id}", app.base))
        .header("traceparent", header)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let route = "/api/v1/products/{id}";
    let trace = collector
        .wait_for(&trace_id, "the GET's spans reach the collector", |t| {
            server_span(t, "tessera", route).is_some()
                && t.iter().any(|s| s.span.name == "db")
                && t.iter().any(|s| s.span.name == "product.get")
        })
        .await;
    let server = server_span(&trace, "tessera", route).unwrap();
    assert_eq!(server.span.name, format!("GET {route}"));
    assert_eq!(server.attr("http.request.method").as_deref(), Some("GET"));
    assert_eq!(
        server.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        server.attr("url.path"),
        Some(format!("/api/v1/products/{id}"))
    );
    // The caller's span is the parent.
    assert_eq!(server.parent_id(), parent);
    // The module call and the database work on the blocking thread lie beneath it.
    for name in ["product.get", "db"] {
        let span = trace.iter().find(|s| s.span.name == name).unwrap();
        assert!(descends_from(&trace, span, server), "{name}: {trace:#?}");
    }
    // The log line of the request carries the trace id.
    assert!(app.log().contains(&trace_id), "{}", app.log());

    // Without a traceparent a request starts a trace of its own, with a 404 as its status.
    let missing = uuid::Uuid::now_v7();
    let response = reqwest::get(format!("{}/api/v1/products/{missing}", app.base))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let path = format!("/api/v1/products/{missing}");
    eventually("the 404's server span reaches the collector", || async {
        let spans = collector.spans.lock().unwrap();
        spans.iter().any(|s| {
            s.attr("url.path").as_deref() == Some(path.as_str())
                && s.attr("http.response.status_code").as_deref() == Some("404")
                && s.span.parent_span_id.is_empty()
                && s.trace_id() != trace_id
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_split_deployment_an_order_is_one_trace_across_the_order_and_product_services() {
    let collector = Collector::start();
    let (product_bin, order_bin) = (build("product"), build("order"));
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let product = serve(&product_bin, dirs[0].path(), &collector.env());
    let mut order_env = collector.env();
    order_env.push(("TESSERA__MODULES__PRODUCT__URL", product.base.clone()));
    let order = serve(&order_bin, dirs[1].path(), &order_env);
    let id = create_product(&product.base, "OTLP-SPLIT", 10).await;

    let (header, trace_id, parent) = traceparent();
    let placed = reqwest::Client::new()
        .post(format!("{}/api/v1/orders", order.base))
        .bearer_auth(token("alice", Role::Customer))
        .header("traceparent", header)
        .json(&json!({"items": [{"product_id": id, "quantity": 2}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), StatusCode::CREATED);

    let trace = collector
        .wait_for(&trace_id, "both services' spans reach the collector", |t| {
            server_span(t, "tessera-order", "/api/v1/orders").is_some()
                && t.iter()
                    .any(|s| s.service == "tessera-product" && s.kind() == SpanKind::Server)
        })
        .await;
    let placing = server_span(&trace, "tessera-order", "/api/v1/orders").unwrap();
    assert_eq!(placing.parent_id(), parent);
    assert_eq!(
        placing.attr("http.response.status_code").as_deref(),
        Some("201")
    );
    let clients: Vec<&Received> = trace
        .iter()
        .filter(|s| s.service == "tessera-order" && s.kind() == SpanKind::Client)
        .collect();
    assert!(!clients.is_empty(), "{trace:#?}");
    for client in &clients {
        assert!(descends_from(&trace, client, placing), "{client:#?}");
        assert_eq!(client.attr("peer.service").as_deref(), Some("product"));
    }
    // Every request the product service served for the order is a child of one of the
    // order service's client spans.
    let served: Vec<&Received> = trace
        .iter()
        .filter(|s| s.service == "tessera-product" && s.kind() == SpanKind::Server)
        .collect();
    for span in &served {
        assert!(
            clients.iter().any(|c| c.span_id() == span.parent_id()),
            "{span:#?} under none of {clients:#?}"
        );
        assert!(
            span.attr("http.route").unwrap().starts_with("/api/v1/"),
            "{span:#?}"
        );
    }
    // Its log says so too.
    assert!(product.log().contains(&trace_id), "{}", product.log());
}

/// Without a collector no OpenTelemetry layer runs and nothing is exported, yet every request
/// still has a trace id in its log line: the caller's, or a new one of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_collector_the_log_lines_still_carry_the_trace_id() {
    let dir = tempfile::tempdir().unwrap();
    let app = serve(Path::new(env!("CARGO_BIN_EXE_tessera")), dir.path(), &[]);
    let (header, trace_id, _) = traceparent();
    let (continued, fresh) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/products/{continued}", app.base))
        .header("traceparent", header)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = reqwest::get(format!("{}/api/v1/products/{fresh}", app.base))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let logged = |path: uuid::Uuid| {
        let log = app.log();
        log.lines()
            .find(|l| l.contains("request completed") && l.contains(&path.to_string()))
            .map(str::to_owned)
    };
    eventually("both requests are logged", || async {
        logged(continued).is_some() && logged(fresh).is_some()
    })
    .await;
    let line = logged(continued).unwrap();
    assert!(line.contains(&format!("trace_id={trace_id}")), "{line}");
    let line = logged(fresh).unwrap();
    let own = line
        .split("trace_id=")
        .nth(1)
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_hexdigit)
                .collect::<String>()
        })
        .unwrap_or_default();
    assert_eq!(own.len(), 32, "a trace id of its own: {line}");
    assert_ne!(own, trace_id);
}
