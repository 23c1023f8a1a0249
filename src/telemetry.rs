//! Logs and traces. Logs: `tracing` with an env filter (`RUST_LOG` wins over `log.filter`),
//! human-readable in development and JSON in production. Phone numbers are masked at the call
//! sites; codes, tokens and secrets are never passed to a log macro or a span field.
//!
//! Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set,
//! spans go to that collector over OTLP/gRPC, configured by the standard `OTEL_*` variables
//! (service name, headers, timeout, batch sizes, sampler). Each gRPC call gets a server span
//! (`arogya.auth.v1.AuthService/VerifyOtp`) continuing the caller's W3C `traceparent`; the
//! flow, store and SMS spans are its children. Without an endpoint no RPC span is made at all.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

use crate::config::{Config, LogFormat};

/// What must outlive serving: the span exporter, flushed by [`Telemetry::shutdown`].
#[derive(Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered. Call before the runtime goes away.
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            eprintln!("arogya-auth: flushing traces failed: {e}");
        }
    }
}

/// Whether the standard variables ask for trace export.
pub fn otlp_requested() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()))
        && !std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether [`init`] installed a span exporter in this process.
pub fn exporting_traces() -> bool {
    EXPORTING.load(std::sync::atomic::Ordering::Relaxed)
}

/// Installs the global subscriber (and the OTLP exporter when asked for). Must run inside a
/// Tokio runtime when traces are exported. Fails if a subscriber is already installed.
pub fn init(cfg: &Config) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log.filter))
        .map_err(|e| format!("AROGYA_LOG__FILTER (log.filter): {e}"))?;
    let json = json_logs(cfg);
    let provider = if otlp_requested() {
        Some(tracer_provider()?)
    } else {
        None
    };
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("arogya-auth"))
            .with_tracked_inactivity(false)
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let result = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(ansi),
            )
            .try_init()
    };
    result.map_err(|e| e.to_string())?;
    if provider.is_some() {
        EXPORTING.store(true, std::sync::atomic::Ordering::Relaxed);
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
    }
    Ok(Telemetry { provider })
}

/// JSON lines in production (or when asked for), human-readable text otherwise.
pub fn json_logs(cfg: &Config) -> bool {
    match cfg.log.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => cfg.is_production(),
    }
}

fn tracer_provider() -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| format!("OTEL_EXPORTER_OTLP_ENDPOINT: {e}"))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name("arogya-auth");
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Reads W3C trace context (`traceparent`, `tracestate`) from request headers.
pub struct HeaderExtractor<'a>(pub &'a http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The server span of one gRPC call, continuing the caller's trace. Named and attributed as
/// the OpenTelemetry RPC conventions say; `rpc.grpc.status_code` is filled in at the end.
pub fn rpc_span(service: &str, method: &str, headers: &http::HeaderMap) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let span = tracing::info_span!(
        "grpc",
        otel.name = %format_args!("{service}/{method}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = tracing::field::Empty,
    );
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    let _ = span.set_parent(parent);
    span
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Environment;

    #[test]
    fn logs_are_json_in_production_and_text_in_development_unless_chosen() {
        let mut cfg = Config::default();
        assert!(!json_logs(&cfg));
        cfg.env = Environment::Production;
        assert!(json_logs(&cfg));
        cfg.log.format = LogFormat::Pretty;
        assert!(!json_logs(&cfg));
        cfg.env = Environment::Development;
        cfg.log.format = LogFormat::Json;
        assert!(json_logs(&cfg));
    }
}
