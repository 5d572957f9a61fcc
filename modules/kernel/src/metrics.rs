//! Prometheus metrics (the `metrics` facade with `metrics-exporter-prometheus`): HTTP requests
//! by route template and status, the event bus's traffic per module and subscriber, its
//! backlog and lag, and the database pool. Served as Prometheus text at `/metrics`.
//!
//! Counters are process-wide (one recorder per process); the bus backlog and pool figures are
//! read when the endpoint is scraped, so they are true for every process sharing the database.

use std::{sync::OnceLock, time::Duration};

use actix_web::{HttpResponse, get, web};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::{bus::Bus, error::ApiError};

/// Seconds; from half a millisecond (a cached read) to ten seconds (a stuck call).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls return the same handle). `None` if
/// another recorder was installed first by someone else.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "http_requests_total",
        "HTTP requests by method, route template and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by method, route template and status"
    );
    describe_counter!(
        "bus_events_published_total",
        "Events committed to the outbox, by producing module and type"
    );
    describe_counter!(
        "bus_deliveries_total",
        "Delivery attempts by subscriber and outcome (delivered, failed = will retry, dead_lettered = gave up)"
    );
    describe_gauge!(
        "bus_deliveries_pending",
        "Deliveries waiting in the outbox, by subscriber"
    );
    describe_gauge!(
        "bus_deliveries_dead_lettered",
        "Deliveries that gave up and wait for an operator's replay, by subscriber"
    );
    describe_gauge!(
        "bus_relay_lag_seconds",
        "Age of the oldest event still waiting for a subscriber"
    );
    describe_gauge!(
        "db_pool_connections",
        "Database pool: open connections (state=open), idle ones (state=idle), limit (state=max)"
    );
}

/// Keeps the histograms' memory bounded between scrapes; call every few seconds.
pub fn run_upkeep() {
    if let Some(Some(handle)) = HANDLE.get() {
        handle.run_upkeep();
    }
}

/// One HTTP request answered. `route` is the matched template (`/api/v1/products/{id}`), never
/// the raw path, so ids do not explode the label set.
///
/// Each worker thread keeps the counter and histogram of the label sets it has seen, so a
/// request costs two atomic updates instead of building the labels and looking them up in
/// the registry (once the recorder is installed: a handle taken before would be a no-op).
pub fn http_request(method: &str, route: &str, status: u16, latency: Duration) {
    let seconds = latency.as_secs_f64();
    if !matches!(HANDLE.get(), Some(Some(_))) {
        let (counter, histogram) = http_handles(method, route, status);
        counter.increment(1);
        histogram.record(seconds);
        return;
    }
    HTTP_HANDLES.with_borrow_mut(|handles| {
        let key = (method, route, status);
        if let Some((_, counter, histogram)) = handles.iter().find(|(k, _, _)| k.matches(key)) {
            counter.increment(1);
            histogram.record(seconds);
            return;
        }
        let (counter, histogram) = http_handles(method, route, status);
        counter.increment(1);
        histogram.record(seconds);
        // Methods are the client's to choose: keep the cache bounded all the same.
        if handles.len() < MAX_CACHED_LABEL_SETS {
            handles.push((LabelSet::new(key), counter, histogram));
        }
    });
}

/// Label sets of `http_request` one thread keeps handles for, at most.
const MAX_CACHED_LABEL_SETS: usize = 256;

thread_local! {
    /// This thread's handles of `http_request`, by label set (a few dozen: a linear scan
    /// compares fewer bytes than hashing would).
    static HTTP_HANDLES: std::cell::RefCell<Vec<(LabelSet, metrics::Counter, metrics::Histogram)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The labels of one `http_request` series.
struct LabelSet {
    method: Box<str>,
    route: Box<str>,
    status: u16,
}

impl LabelSet {
    fn new((method, route, status): (&str, &str, u16)) -> Self {
        Self {
            method: method.into(),
            route: route.into(),
            status,
        }
    }

    fn matches(&self, (method, route, status): (&str, &str, u16)) -> bool {
        self.status == status && *self.route == *route && *self.method == *method
    }
}

fn http_handles(method: &str, route: &str, status: u16) -> (metrics::Counter, metrics::Histogram) {
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    (
        metrics::counter!("http_requests_total", &labels),
        metrics::histogram!("http_request_duration_seconds", &labels),
    )
}

/// These events were committed to the outbox. `module` is the module that published one,
/// never the first word of its type (`inventory.reserved` is the product module's).
pub(crate) fn events_published(events: &[crate::bus::Published]) {
    for event in events {
        metrics::counter!(
            "bus_events_published_total",
            "module" => event.source.clone(),
            "type" => event.kind.clone()
        )
        .increment(1);
    }
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// Failed; it will be retried.
    Failed,
    /// Failed for the last allowed time; it waits for a replay.
    DeadLettered,
}

pub fn deliveries(subscriber: &str, outcome: Delivery, count: u64) {
    let outcome = match outcome {
        Delivery::Delivered => "delivered",
        Delivery::Failed => "failed",
        Delivery::DeadLettered => "dead_lettered",
    };
    let module = subscriber.split('.').next().unwrap_or_default().to_owned();
    metrics::counter!(
        "bus_deliveries_total",
        "module" => module,
        "subscriber" => subscriber.to_owned(),
        "outcome" => outcome
    )
    .increment(count);
}

/// Reads the outbox backlog and the pool into gauges.
async fn sample(bus: &Bus) -> anyhow::Result<()> {
    let (max, open, idle) = bus.db().pool_usage();
    metrics::gauge!("db_pool_connections", "state" => "max").set(f64::from(max));
    metrics::gauge!("db_pool_connections", "state" => "open").set(f64::from(open));
    metrics::gauge!("db_pool_connections", "state" => "idle").set(f64::from(idle));
    // Every registered subscriber is listed, so one whose backlog emptied since the last
    // scrape reads 0, not its old value.
    let mut lag = 0.0_f64;
    for row in crate::bus::subscribers::backlog(bus).await? {
        #[allow(clippy::cast_precision_loss)]
        let (pending, failed) = (row.pending as f64, row.failed as f64);
        metrics::gauge!("bus_deliveries_pending", "subscriber" => row.subscriber.clone())
            .set(pending);
        metrics::gauge!("bus_deliveries_dead_lettered", "subscriber" => row.subscriber).set(failed);
        lag = lag.max(row.lag_seconds);
    }
    metrics::gauge!("bus_relay_lag_seconds").set(lag);
    Ok(())
}

/// Prometheus metrics (text format 0.0.4).
#[utoipa::path(
    tag = "health",
    operation_id = "metrics",
    security(()),
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String,
         content_type = "text/plain; version=0.0.4"),
        (status = 503, description = "The outbox could not be read", body = crate::error::Problem,
         content_type = "application/problem+json"),
    )
)]
#[get("/metrics")]
pub async fn scrape(bus: web::Data<Bus>) -> Result<HttpResponse, ApiError> {
    let Some(handle) = install() else {
        return Err(ApiError::new(
            crate::error::ErrorKind::ServiceUnavailable,
            "Another metrics recorder is installed in this process.",
        ));
    };
    sample(&bus).await.map_err(|e| {
        tracing::warn!(error = ?e, "sampling metrics failed");
        ApiError::new(
            crate::error::ErrorKind::ServiceUnavailable,
            "The event outbox could not be read.",
        )
    })?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render()))
}
