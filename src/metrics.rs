//! Prometheus metrics, served as text on the admin listener (`AROGYA_ADMIN_ADDR`, path
//! `/metrics`), never on the public port.
//!
//! Per-RPC metrics use the go-grpc-prometheus names and labels, so existing gRPC dashboards
//! work unchanged: `grpc_server_started_total`, `grpc_server_handled_total` (with
//! `grpc_code`) and the `grpc_server_handling_seconds` histogram, each labelled `grpc_type`,
//! `grpc_service`, `grpc_method`. They are counted by [`GrpcMetricsLayer`], which reads the
//! status from the response trailers (or the headers, for a trailers-only error), so health
//! and reflection calls are counted as well as AuthService's.
//!
//! Domain metrics are `arogya_auth_*`: codes sent, verified, failed and locked out; SMS sends
//! by provider and outcome; rate-limit refusals by limit; sessions created, refreshed, revoked
//! and caught reusing a refresh token; and the latency of every call to the backing stores
//! (Redis or memory, and the database). docs/OPERATIONS.md lists them with alerts worth setting.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub grpc_type: &'static str,
    pub grpc_service: &'static str,
    pub grpc_method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandledLabels {
    pub grpc_type: &'static str,
    pub grpc_service: &'static str,
    pub grpc_method: &'static str,
    pub grpc_code: &'static str,
}

/// Every method served, by service: metrics are kept for these (and one `unknown` bucket for
/// any other path), so a client sending made-up paths cannot grow the label set.
const METHODS: &[(&str, &[&str])] = &[
    (
        "arogya.auth.v1.AuthService",
        &[
            "RequestOtp",
            "ResendOtp",
            "VerifyOtp",
            "ValidateSession",
            "RefreshSession",
            "Logout",
        ],
    ),
    ("grpc.health.v1.Health", &["Check", "Watch"]),
    (
        "grpc.reflection.v1.ServerReflection",
        &["ServerReflectionInfo"],
    ),
    (
        "grpc.reflection.v1alpha.ServerReflection",
        &["ServerReflectionInfo"],
    ),
];

/// The series of one method, resolved once: a call costs one map lookup, no allocation.
struct MethodSeries {
    labels: MethodLabels,
    started: Counter,
    handling: Histogram,
    /// By `tonic::Code` (0..=16), created on first use.
    handled: [std::sync::OnceLock<Counter>; 17],
}

type Seconds = Family<MethodLabels, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NewUserLabel {
    new_user: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SmsLabels {
    provider: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabel {
    scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    store: &'static str,
    op: &'static str,
}

/// Why a code was not accepted (`arogya_auth_otp_failed_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpFailure {
    /// The code did not match.
    WrongCode,
    /// No live code for the number: never sent, expired, already used or withdrawn.
    NoCode,
    /// The attempts are used up; the number waits for the lock-out to end.
    LockedOut,
}

impl OtpFailure {
    fn label(self) -> &'static str {
        match self {
            Self::WrongCode => "wrong_code",
            Self::NoCode => "no_code",
            Self::LockedOut => "locked_out",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    handled: Family<HandledLabels, Counter>,
    /// `/service/method` → index into `series`; the last entry is `unknown`.
    paths: std::collections::HashMap<String, usize>,
    series: Vec<MethodSeries>,
    otp_sent: Family<KindLabel, Counter>,
    otp_verified: Family<NewUserLabel, Counter>,
    otp_failed: Family<ReasonLabel, Counter>,
    otp_locked_out: Counter,
    sms_sends: Family<SmsLabels, Counter>,
    rate_limited: Family<LimitLabel, Counter>,
    sessions_created: Counter,
    sessions_refreshed: Counter,
    sessions_revoked: Family<ScopeLabel, Counter>,
    refresh_reuse: Counter,
    store_seconds: Family<StoreLabels, Histogram, fn() -> Histogram>,
    store_errors: Family<StoreLabels, Counter>,
    ready: prometheus_client::metrics::gauge::Gauge,
}

/// Store call buckets (seconds): from a cache-warm Redis round trip to a timeout.
const STORE_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

fn store_histogram() -> Histogram {
    Histogram::new(STORE_BUCKETS)
}

/// The go-grpc-prometheus default buckets (seconds).
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let started = Family::<MethodLabels, Counter>::default();
        let handled = Family::<HandledLabels, Counter>::default();
        let handling: Seconds = Family::new_with_constructor(histogram);
        registry.register(
            "grpc_server_started",
            "Total number of RPCs started on the server.",
            started.clone(),
        );
        registry.register(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            handled.clone(),
        );
        registry.register(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
            handling.clone(),
        );
        let mut paths = std::collections::HashMap::new();
        let mut series = Vec::new();
        let known = METHODS
            .iter()
            .flat_map(|(service, methods)| methods.iter().map(move |m| (*service, *m)));
        for (service, method) in known.chain([("unknown", "unknown")]) {
            let labels = MethodLabels {
                grpc_type: grpc_type(service, method),
                grpc_service: service,
                grpc_method: method,
            };
            if service != "unknown" {
                paths.insert(format!("/{service}/{method}"), series.len());
            }
            series.push(MethodSeries {
                started: started.get_or_create(&labels).clone(),
                handling: handling.get_or_create(&labels).clone(),
                labels,
                handled: Default::default(),
            });
        }
        let mut metrics = Self {
            handled,
            paths,
            series,
            otp_sent: Family::default(),
            otp_verified: Family::default(),
            otp_failed: Family::default(),
            otp_locked_out: Counter::default(),
            sms_sends: Family::default(),
            rate_limited: Family::default(),
            sessions_created: Counter::default(),
            sessions_refreshed: Counter::default(),
            sessions_revoked: Family::default(),
            refresh_reuse: Counter::default(),
            store_seconds: Family::new_with_constructor(store_histogram),
            store_errors: Family::default(),
            ready: Default::default(),
            registry,
        };
        metrics.register_domain();
        Arc::new(metrics)
    }

    fn register_domain(&mut self) {
        // Every fixed label value exists from the start, so dashboards and ratios read 0 rather
        // than "no data" before the first event.
        for kind in ["request", "resend"] {
            let _ = self.otp_sent.get_or_create(&KindLabel { kind });
        }
        for new_user in ["true", "false"] {
            let _ = self.otp_verified.get_or_create(&NewUserLabel { new_user });
        }
        for why in [
            OtpFailure::WrongCode,
            OtpFailure::NoCode,
            OtpFailure::LockedOut,
        ] {
            let _ = self.otp_failed.get_or_create(&ReasonLabel {
                reason: why.label(),
            });
        }
        for limit in [
            "ip_otp_requests",
            "ip_verifies",
            "phone_sends",
            "phone_wrong_guesses",
            "sms_global",
            "otp_resend_cooldown",
        ] {
            let _ = self.rate_limited.get_or_create(&LimitLabel { limit });
        }
        for scope in ["session", "all"] {
            let _ = self.sessions_revoked.get_or_create(&ScopeLabel { scope });
        }
        let r = self.registry.sub_registry_with_prefix("arogya_auth");
        r.register(
            "otp_sent",
            "Codes accepted by the SMS provider, by kind (request or resend).",
            self.otp_sent.clone(),
        );
        r.register(
            "otp_verified",
            "Codes verified: completed sign-ins, by whether the account is new.",
            self.otp_verified.clone(),
        );
        r.register(
            "otp_failed",
            "Codes refused: wrong_code, no_code (expired, used or never sent), locked_out.",
            self.otp_failed.clone(),
        );
        r.register(
            "otp_locked_out",
            "Numbers locked out after using up their attempts on one code.",
            self.otp_locked_out.clone(),
        );
        r.register(
            "sms_sends",
            "SMS send outcomes by provider (after that provider's retries): accepted or failed.",
            self.sms_sends.clone(),
        );
        r.register(
            "rate_limited",
            "Requests refused by a rate limit or the resend cooldown, by limit.",
            self.rate_limited.clone(),
        );
        r.register(
            "sessions_created",
            "Sessions started by a sign-in.",
            self.sessions_created.clone(),
        );
        r.register(
            "sessions_refreshed",
            "Refresh tokens rotated.",
            self.sessions_refreshed.clone(),
        );
        r.register(
            "sessions_revoked",
            "Logouts, by scope (session, or all of a user's sessions).",
            self.sessions_revoked.clone(),
        );
        r.register(
            "sessions_reuse_detected",
            "Rotated refresh tokens presented again; each ended its session.",
            self.refresh_reuse.clone(),
        );
        r.register(
            "store_seconds",
            "Latency of calls to the backing stores (otp, session, rate_limit, database), by operation.",
            self.store_seconds.clone(),
        );
        r.register(
            "ready",
            "1 while Redis and the database answer (health SERVING), 0 otherwise.",
            self.ready.clone(),
        );
        r.register(
            "store_errors",
            "Store calls that failed (unreachable, timed out or refused), by operation.",
            self.store_errors.clone(),
        );
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    pub fn otp_sent(&self, resend: bool) {
        let kind = if resend { "resend" } else { "request" };
        self.otp_sent.get_or_create(&KindLabel { kind }).inc();
    }

    pub fn otp_verified(&self, new_user: bool) {
        let new_user = if new_user { "true" } else { "false" };
        self.otp_verified
            .get_or_create(&NewUserLabel { new_user })
            .inc();
    }

    pub fn otp_failed(&self, why: OtpFailure) {
        self.otp_failed
            .get_or_create(&ReasonLabel {
                reason: why.label(),
            })
            .inc();
    }

    pub fn otp_locked_out(&self) {
        self.otp_locked_out.inc();
    }

    /// Makes a provider's series exist (at 0) before its first send.
    pub fn sms_provider(&self, provider: &'static str) {
        for outcome in ["accepted", "failed"] {
            let _ = self
                .sms_sends
                .get_or_create(&SmsLabels { provider, outcome });
        }
    }

    pub fn sms_send(&self, provider: &'static str, accepted: bool) {
        let outcome = if accepted { "accepted" } else { "failed" };
        self.sms_sends
            .get_or_create(&SmsLabels { provider, outcome })
            .inc();
    }

    pub fn rate_limited(&self, limit: &'static str) {
        self.rate_limited.get_or_create(&LimitLabel { limit }).inc();
    }

    pub fn session_created(&self) {
        self.sessions_created.inc();
    }

    pub fn session_refreshed(&self) {
        self.sessions_refreshed.inc();
    }

    pub fn session_revoked(&self, all: bool) {
        let scope = if all { "all" } else { "session" };
        self.sessions_revoked
            .get_or_create(&ScopeLabel { scope })
            .inc();
    }

    pub fn refresh_reuse_detected(&self) {
        self.refresh_reuse.inc();
    }

    /// Runs one store call under a `store` span, recording its latency and any failure.
    pub async fn store<T, E, F>(
        &self,
        store: &'static str,
        op: &'static str,
        call: F,
    ) -> Result<T, E>
    where
        F: std::future::Future<Output = Result<T, E>>,
    {
        use tracing::Instrument;
        // A span only for trace export: it is all a span would be for, and creating one costs
        // more than the rest of this wrapper.
        let span = if crate::telemetry::exporting_traces() {
            tracing::info_span!("store", store, op)
        } else {
            tracing::Span::none()
        };
        let started = Instant::now();
        let result = call.instrument(span).await;
        let labels = StoreLabels { store, op };
        self.store_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            self.store_errors.get_or_create(&labels).inc();
        }
        result
    }

    /// The Prometheus text exposition (OpenMetrics), for `GET /metrics`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// go-grpc-prometheus's `grpc_type`: every AuthService RPC is unary; health's Watch streams
/// from the server, reflection streams both ways.
fn grpc_type(service: &str, method: &str) -> &'static str {
    match (service, method) {
        ("grpc.health.v1.Health", "Watch") => "server_stream",
        (_, "ServerReflectionInfo") => "bidi_stream",
        _ => "unary",
    }
}

/// The canonical upper-case name go-grpc-prometheus uses for `grpc_code`.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

fn status_in(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let v = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    Some(tonic::Code::from_i32(v))
}

/// Counts every gRPC call passing through it; other requests pass untouched. With `traces`,
/// each call also runs in its own server span (see [`crate::telemetry::rpc_span`]).
#[derive(Clone)]
pub struct GrpcMetricsLayer {
    pub metrics: Arc<Metrics>,
    pub traces: bool,
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics {
            inner,
            metrics: self.metrics.clone(),
            traces: self.traces,
        }
    }
}

#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
    traces: bool,
}

/// One call being timed; records itself exactly once: with its status when the response
/// says it, else as `Canceled` when dropped (the client left, or the server's deadline fired
/// around this layer).
struct Call {
    metrics: Arc<Metrics>,
    /// Index into `Metrics::series`.
    method: usize,
    started: Instant,
    span: Option<tracing::Span>,
    done: bool,
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.done {
            self.record(tonic::Code::Cancelled);
        }
    }
}

/// The codes OpenTelemetry's RPC conventions count as a server-side error.
fn is_server_error(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        Unknown | DeadlineExceeded | Unimplemented | Internal | Unavailable | DataLoss
    )
}

impl Call {
    fn finish(mut self, code: tonic::Code) {
        self.record(code);
        self.done = true;
    }

    fn record(&self, code: tonic::Code) {
        if let Some(span) = &self.span {
            span.record("rpc.grpc.status_code", code as i32);
            if is_server_error(code) {
                span.record("otel.status_code", "ERROR");
            }
        }
        let series = &self.metrics.series[self.method];
        series
            .handling
            .observe(self.started.elapsed().as_secs_f64());
        let code_index = (code as usize).min(series.handled.len() - 1);
        series.handled[code_index]
            .get_or_init(|| {
                let labels = &series.labels;
                self.metrics
                    .handled
                    .get_or_create(&HandledLabels {
                        grpc_type: labels.grpc_type,
                        grpc_service: labels.grpc_service,
                        grpc_method: labels.grpc_method,
                        grpc_code: code_name(code),
                    })
                    .clone()
            })
            .inc();
    }
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for GrpcMetrics<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + Unpin + 'static,
{
    type Response = Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let is_grpc = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/grpc"));
        let call = is_grpc.then(|| {
            let metrics = &self.metrics;
            let method = metrics
                .paths
                .get(req.uri().path())
                .copied()
                .unwrap_or(metrics.series.len() - 1);
            let labels = &metrics.series[method].labels;
            metrics.series[method].started.inc();
            Call {
                metrics: metrics.clone(),
                method,
                started: Instant::now(),
                span: self.traces.then(|| {
                    crate::telemetry::rpc_span(
                        labels.grpc_service,
                        labels.grpc_method,
                        req.headers(),
                    )
                }),
                done: false,
            }
        });
        let span = call
            .as_ref()
            .and_then(|c| c.span.clone())
            .unwrap_or_else(tracing::Span::none);
        let fut = span.in_scope(|| self.inner.call(req));
        let fut = tracing::Instrument::instrument(fut, span);
        Box::pin(async move {
            let res = fut.await?;
            let Some(call) = call else {
                return Ok(res.map(|inner| MeteredBody { inner, call: None }));
            };
            // A trailers-only response (most errors) carries the status in its headers.
            if let Some(code) = status_in(res.headers()) {
                call.finish(code);
                return Ok(res.map(|inner| MeteredBody { inner, call: None }));
            }
            Ok(res.map(|inner| MeteredBody {
                inner,
                call: Some(call),
            }))
        })
    }
}

/// A response body that records its call when the trailers pass (or, if the client goes
/// away first, as `Canceled`).
pub struct MeteredBody<B> {
    inner: B,
    call: Option<Call>,
}

impl<B> Body for MeteredBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_in)
                    && let Some(call) = self.call.take()
                {
                    call.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = self.call.take() {
                    call.finish(tonic::Code::Internal);
                }
            }
            Poll::Ready(None) => {
                if let Some(call) = self.call.take() {
                    call.finish(tonic::Code::Unknown);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_of_the_served_protos_has_its_series() {
        use prost::Message;
        let mut served = Vec::new();
        for set in [
            crate::proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ] {
            let set = prost_types::FileDescriptorSet::decode(set).unwrap();
            for file in set.file {
                for svc in &file.service {
                    for m in &svc.method {
                        served.push(format!("/{}.{}/{}", file.package(), svc.name(), m.name()));
                    }
                }
            }
        }
        assert!(served.len() >= 8, "{served:?}");
        let m = Metrics::new();
        for path in &served {
            assert!(m.paths.contains_key(path), "{path} has no series");
        }
    }

    #[test]
    fn a_call_dropped_before_its_status_counts_as_canceled_once() {
        let m = Metrics::new();
        let method = m.paths["/arogya.auth.v1.AuthService/ValidateSession"];
        let call = |done| Call {
            metrics: m.clone(),
            method,
            started: Instant::now(),
            span: None,
            done,
        };
        drop(call(false)); // the server's deadline fired, or the client left
        call(false).finish(tonic::Code::Ok);
        let text = m.render();
        let handled = |code: &str| {
            let series = format!(
                "grpc_server_handled_total{{grpc_type=\"unary\",grpc_service=\"arogya.auth.v1.AuthService\",grpc_method=\"ValidateSession\",grpc_code=\"{code}\"}} "
            );
            text.lines()
                .find_map(|l| l.strip_prefix(series.as_str()))
                .unwrap_or("0")
                .to_owned()
        };
        assert_eq!(handled("Canceled"), "1", "{text}");
        assert_eq!(
            handled("OK"),
            "1",
            "finished calls are not also counted as canceled"
        );
        assert!(text.contains("grpc_server_handling_seconds_count{grpc_type=\"unary\",grpc_service=\"arogya.auth.v1.AuthService\",grpc_method=\"ValidateSession\"} 2"));
    }

    #[test]
    fn made_up_paths_share_one_unknown_series() {
        let m = Metrics::new();
        for path in ["/a.B/C", "/x/y", "/arogya.auth.v1.AuthService/Nope"] {
            assert!(!m.paths.contains_key(path));
        }
        let unknown = m.series.len() - 1;
        for _ in 0..3 {
            Call {
                metrics: m.clone(),
                method: unknown,
                started: Instant::now(),
                span: None,
                done: false,
            }
            .finish(tonic::Code::Unimplemented);
        }
        let text = m.render();
        assert!(text.contains("grpc_server_handled_total{grpc_type=\"unary\",grpc_service=\"unknown\",grpc_method=\"unknown\",grpc_code=\"Unimplemented\"} 3"), "{text}");
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("grpc_server_handled_total{"))
                .count(),
            1,
            "one series, not one per path"
        );
    }

    #[test]
    fn streaming_methods_are_labelled_as_streams() {
        assert_eq!(grpc_type("grpc.health.v1.Health", "Watch"), "server_stream");
        assert_eq!(grpc_type("grpc.health.v1.Health", "Check"), "unary");
        assert_eq!(
            grpc_type(
                "grpc.reflection.v1.ServerReflection",
                "ServerReflectionInfo"
            ),
            "bidi_stream"
        );
        assert_eq!(
            grpc_type("arogya.auth.v1.AuthService", "VerifyOtp"),
            "unary"
        );
    }

    #[test]
    fn the_text_carries_go_grpc_prometheus_names() {
        let m = Metrics::new();
        let method = m.paths["/arogya.auth.v1.AuthService/VerifyOtp"];
        m.series[method].started.inc();
        Call {
            metrics: m.clone(),
            method,
            started: Instant::now(),
            span: None,
            done: false,
        }
        .finish(tonic::Code::Unauthenticated);
        let text = m.render();
        for want in [
            "grpc_server_started_total{grpc_type=\"unary\",grpc_service=\"arogya.auth.v1.AuthService\",grpc_method=\"VerifyOtp\"} 1",
            "grpc_server_handled_total{grpc_type=\"unary\",grpc_service=\"arogya.auth.v1.AuthService\",grpc_method=\"VerifyOtp\",grpc_code=\"Unauthenticated\"} 1",
            "grpc_server_handling_seconds_count{grpc_type=\"unary\",grpc_service=\"arogya.auth.v1.AuthService\",grpc_method=\"VerifyOtp\"} 1",
            // Every method exists from the start.
            "grpc_server_started_total{grpc_type=\"unary\",grpc_service=\"arogya.auth.v1.AuthService\",grpc_method=\"Logout\"} 0",
        ] {
            assert!(text.contains(want), "{want}\n{text}");
        }
    }
}
