//! Logs and traces.
//!
//! Logs go to stderr so that stdout stays clean for commands whose output is data
//! (`tessera token`, `tessera openapi`).
//!
//! Traces: every `tracing` span at INFO or above is also an OpenTelemetry span (through
//! `tracing-opentelemetry`), so it has W3C trace and span ids: the request span records its
//! `trace_id` for the logs, and calls to other services carry a `traceparent` (the W3C
//! [`TraceContextPropagator`]) that continues the trace. With the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, spans are
//! exported over OTLP/HTTP (protobuf) to `<endpoint>/v1/traces` by a batch processor on its
//! own thread (tuned by the `OTEL_BSP_*` variables), under the service name
//! `OTEL_SERVICE_NAME` (default: the name the binary passes, `tessera` or `tessera-<module>`).
//! Without it nothing leaves the process and no connection is attempted.
//!
//! When nothing is exported, the OpenTelemetry layer is not installed either (it costs about a
//! fifth of the read path's throughput): the request middleware then takes the trace id from
//! the incoming `traceparent` (or draws a new one) itself, the logs carry it all the same, and
//! outgoing calls send it on from the request's call context. `OTEL_SDK_DISABLED=true` turns
//! even that off.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use actix_web::http::header::HeaderMap as ActixHeaders;
use anyhow::Context as _;
use opentelemetry::{
    propagation::{Extractor, TextMapPropagator},
    trace::{TraceContextExt, TraceId, TracerProvider as _},
};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{IdGenerator, RandomIdGenerator, SdkTracerProvider},
};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, Layer, filter::LevelFilter, fmt, prelude::*};

use crate::config::{LogFormat, LogSettings};

/// The variables that turn the export on (the second one for traces only).
const ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
];

/// How long a graceful shutdown waits for the last spans to be sent.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Set by [`init`] when spans are not exported: trace ids are then this module's own work
/// ([`Trace`]) rather than the OpenTelemetry layer's, which is not installed. Unset, the ids
/// come from whatever layer the current subscriber has (none: no ids).
static OWN_IDS: AtomicBool = AtomicBool::new(false);

/// A request's place in a trace when no OpenTelemetry layer is installed: the trace id (the
/// caller's, or a new one) and whether the caller sampled it, for the `traceparent` of
/// outgoing calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trace {
    pub id: TraceId,
    pub sampled: bool,
}

/// The tracer provider behind the global subscriber. [`Telemetry::shutdown`] (or dropping it)
/// sends the spans still queued: call it when the server has stopped, outside the runtime.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    exporting: bool,
}

impl Telemetry {
    /// Whether spans are exported (an OTLP endpoint is configured).
    pub fn exporting(&self) -> bool {
        self.exporting
    }

    /// Flushes the queued spans and stops the exporter (blocks up to a few seconds). Dropping
    /// the value does the same.
    pub fn shutdown(mut self) {
        self.flush();
    }

    fn flush(&mut self) {
        if std::mem::take(&mut self.exporting)
            && let Err(e) = self.provider.shutdown_with_timeout(FLUSH_TIMEOUT)
        {
            tracing::warn!(error = %e, "could not send the last spans");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Installs the global subscriber: logs as configured (`RUST_LOG` overrides the filter) and
/// OpenTelemetry spans, exported when an OTLP endpoint is set. `service` is the default
/// service name. Calling it twice is harmless (the second subscriber is not installed),
/// which keeps tests simple.
///
/// # Errors
/// When an OTLP endpoint is set but the exporter cannot be built from it (a malformed URL).
pub fn init(settings: &LogSettings, service: &str) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = match settings.format {
        LogFormat::Json => fmt::layer()
            .json()
            .with_current_span(true)
            // The whole chain, so a line logged inside a module call carries the request id
            // and the trace id.
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Pretty => fmt::layer().compact().with_writer(std::io::stderr).boxed(),
    };
    // `OTEL_SDK_DISABLED=true` (the standard switch) leaves spans as plain `tracing` spans: no
    // trace ids, no export, no propagation.
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let (provider, exporting) = if disabled {
        (SdkTracerProvider::builder().build(), false)
    } else {
        tracer_provider(service)?
    };
    // Traces have their own filter: a quiet log (`warn`) keeps the request spans, and a
    // verbose one (`kernel=debug`) does not turn every relay poll into a trace.
    let spans = exporting.then(|| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("tessera"))
            .with_filter(LevelFilter::INFO)
    });
    OWN_IDS.store(!disabled && !exporting, Ordering::Relaxed);
    drop(
        tracing_subscriber::registry()
            .with(logs.with_filter(filter))
            .with(spans)
            .try_init(),
    );
    Ok(Telemetry {
        provider,
        exporting,
    })
}

/// The service name (`OTEL_SERVICE_NAME` or `service`), and a provider that exports over
/// OTLP/HTTP when an endpoint is set, or that only hands out ids.
fn tracer_provider(service: &str) -> anyhow::Result<(SdkTracerProvider, bool)> {
    let name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| service.to_owned());
    let resource = Resource::builder().with_service_name(name).build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let endpoint = ENDPOINT_VARS
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()));
    let Some(endpoint) = endpoint else {
        return Ok((builder.build(), false));
    };
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()
        .with_context(|| format!("cannot export traces to {endpoint}"))?;
    Ok((builder.with_batch_exporter(exporter).build(), true))
}

/// An incoming request's headers as the propagator reads them.
struct IncomingHeaders<'a>(&'a ActixHeaders);

impl Extractor for IncomingHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` (not yet entered) continue the trace of an incoming W3C `traceparent`, when
/// the request carries a valid one (else a new trace), and returns the request's trace: `None`
/// when nothing traces (no OpenTelemetry layer and no [`init`], as in the in-process tests, or
/// `OTEL_SDK_DISABLED=true`).
pub fn continue_trace(span: &tracing::Span, headers: &ActixHeaders) -> Option<Trace> {
    let incoming = TraceContextPropagator::new().extract(&IncomingHeaders(headers));
    let parent = incoming.span().span_context().clone();
    if OWN_IDS.load(Ordering::Relaxed) {
        return Some(if parent.is_valid() {
            Trace {
                id: parent.trace_id(),
                sampled: parent.is_sampled(),
            }
        } else {
            Trace {
                id: RandomIdGenerator::default().new_trace_id(),
                sampled: true,
            }
        });
    }
    if parent.is_valid() {
        // Fails only without an OpenTelemetry layer: there is no trace to continue then.
        drop(span.set_parent(incoming));
    }
    let context = span.context();
    let own = context.span().span_context().clone();
    own.is_valid().then(|| Trace {
        id: own.trace_id(),
        sampled: own.is_sampled(),
    })
}

/// The trace id of `span`, when it belongs to a trace the OpenTelemetry layer keeps.
pub fn trace_id(span: &tracing::Span) -> Option<TraceId> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| span_context.trace_id())
}

/// Whether the current span belongs to a trace, so that a child span shows in it (work
/// outside any request, such as the relay's polls, then starts no trace of its own).
pub fn in_trace() -> bool {
    trace_id(&tracing::Span::current()).is_some()
}

/// The W3C `traceparent` (and `tracestate`) that continue `span`'s trace, added to the
/// headers of an outgoing call; nothing when the span is not in a trace.
/// Without an OpenTelemetry layer, the trace comes from the request's call context (see
/// [`continue_trace`]) under a new span id.
#[cfg(feature = "client")]
pub fn inject(span: &tracing::Span, headers: &mut reqwest::header::HeaderMap) {
    if OWN_IDS.load(Ordering::Relaxed) {
        let Some(trace) = crate::client::CallContext::current().and_then(|c| c.trace) else {
            return;
        };
        let flags = if trace.sampled {
            opentelemetry::trace::TraceFlags::SAMPLED
        } else {
            opentelemetry::trace::TraceFlags::default()
        };
        let header = format!(
            "00-{}-{}-{:02x}",
            trace.id,
            RandomIdGenerator::default().new_span_id(),
            flags.to_u8()
        );
        if let Ok(value) = reqwest::header::HeaderValue::from_str(&header) {
            headers.insert("traceparent", value);
        }
        return;
    }
    let context: opentelemetry::Context = span.context();
    TraceContextPropagator::new()
        .inject_context(&context, &mut opentelemetry_http::HeaderInjector(headers));
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};
    use tracing::{Instrument, subscriber::with_default};

    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn subscriber() -> impl tracing::Subscriber + Send + Sync {
        let provider = SdkTracerProvider::builder().build();
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
    }

    fn incoming(traceparent: &str) -> ActixHeaders {
        let mut headers = ActixHeaders::new();
        headers.insert(
            HeaderName::from_static("traceparent"),
            HeaderValue::from_str(traceparent).unwrap(),
        );
        headers
    }

    #[test]
    fn a_request_span_continues_an_incoming_trace_and_its_children_belong_to_it() {
        with_default(subscriber(), || {
            let span = tracing::info_span!("http.request");
            let trace = continue_trace(&span, &incoming(PARENT)).unwrap().id;
            assert_eq!(trace.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
            let child = span.in_scope(|| tracing::info_span!("product.get"));
            assert_eq!(trace_id(&child), Some(trace));
            assert!(child.in_scope(in_trace));
        });
    }

    #[cfg(feature = "client")]
    #[test]
    fn an_outgoing_call_carries_the_trace_under_a_span_of_its_own() {
        with_default(subscriber(), || {
            let span = tracing::info_span!("http.request");
            continue_trace(&span, &incoming(PARENT)).unwrap();
            let mut outgoing = reqwest::header::HeaderMap::new();
            span.in_scope(|| inject(&tracing::info_span!("remote.call"), &mut outgoing));
            let sent = outgoing["traceparent"].to_str().unwrap();
            assert!(
                sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
                "{sent}"
            );
            assert!(
                !sent.contains("00f067aa0ba902b7"),
                "a span of our own: {sent}"
            );
        });
    }

    #[test]
    fn a_malformed_or_missing_traceparent_starts_a_new_trace() {
        with_default(subscriber(), || {
            for headers in [incoming("00-zz-00f067aa0ba902b7-01"), ActixHeaders::new()] {
                let span = tracing::info_span!("http.request");
                let trace = continue_trace(&span, &headers).unwrap().id;
                assert_ne!(trace, TraceId::INVALID);
                assert_ne!(trace.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
            }
        });
    }

    #[tokio::test]
    async fn without_an_opentelemetry_layer_nothing_is_traced() {
        let span = tracing::info_span!("http.request");
        assert_eq!(continue_trace(&span, &incoming(PARENT)), None);
        assert!(!async { in_trace() }.instrument(span).await);
    }
}
