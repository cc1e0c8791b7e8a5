//! Tracing set-up: `RUST_LOG` filters (default `info`), text or JSON lines,
//! on stderr (stdout is for what a command prints, such as a summary), and
//! OpenTelemetry spans exported over OTLP when `tracing.enabled`.
//!
//! The OpenTelemetry layer is installed whether or not spans are exported:
//! every request then has a trace id (the caller's, from its W3C
//! `traceparent`, or a new one) that its log lines carry and that calls to
//! Kratos pass on. With tracing off nothing is sampled and nothing leaves
//! the process.

use std::io::IsTerminal;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter};

use crate::configuration::TracingSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Keeps the tracer provider: dropping it flushes the spans not yet
/// exported (a batch goes out every few seconds).
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("flushing the last spans failed: {error}");
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the OTLP span exporter could not be built")]
pub struct TelemetryError(#[from] opentelemetry_otlp::ExporterBuildError);

/// Installs the global subscriber. A second initialisation (tests) is
/// harmless: the first stays.
pub fn init(format: LogFormat, settings: &TracingSettings) -> Result<Telemetry, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = tracer_provider(settings)?;
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("kratos-passkeys"))
        // The fields tracing-actix-web and the spans below set are enough;
        // tracing's own code locations and thread names are noise here.
        .with_location(false)
        .with_threads(false);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: a log file or collector gets plain text.
    let lines = fmt::layer()
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let _ = match format {
        LogFormat::Text => registry.with(lines).try_init(),
        LogFormat::Json => registry.with(lines.json().flatten_event(true)).try_init(),
    };
    Ok(Telemetry { provider })
}

fn tracer_provider(settings: &TracingSettings) -> Result<SdkTracerProvider, TelemetryError> {
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    if !settings.enabled {
        // Ids are still made (for the logs and Kratos), spans never kept.
        return Ok(builder.with_sampler(Sampler::AlwaysOff).build());
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(settings.traces_url().as_str())
        .build()?;
    Ok(builder
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            settings.sampling_ratio.get(),
        ))))
        .with_batch_exporter(exporter)
        .build())
}

/// The W3C trace context headers (`traceparent`, and `tracestate` when
/// there is one) of `span`, for an outgoing request.
pub fn trace_headers(span: &tracing::Span) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    TraceContextPropagator::new().inject_context(
        &span.context(),
        &mut opentelemetry_http::HeaderInjector(&mut headers),
    );
    headers
}
