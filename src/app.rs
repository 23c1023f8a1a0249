//! Wiring: config chooses the implementations, `App::build` connects them and binds the port,
//! `App::run_until` serves gRPC, gRPC-Web, reflection, health and the JWKS document on that one
//! port until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::IntoResponse;

use crate::metrics::{GrpcMetricsLayer, Metrics};
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, SmsProviderKind};
use crate::db::{self, UserRepo};
use crate::flows::{Deps, Policy};
use crate::grpc::AuthApi;
use crate::otp::OtpHasher;
use crate::proto::auth_service_server::AuthServiceServer;
use crate::readiness::Readiness;
use crate::session::KeyRing;
use crate::sms::delivery::{Delivery, Provider};
use crate::sms::{LogSms, MessageTemplate, SmsSender, msg91, twilio};
use crate::store::cached::{CachedSessions, SessionCache};
use crate::store::memory::{MemoryOtpStore, MemoryRateLimiter, MemorySessionStore};
use crate::store::metered::Metered;
use crate::store::redis::{
    FieldCipher, RedisConn, RedisOtpStore, RedisRateLimiter, RedisSessionStore, ended_channel,
    follow_ended_sessions,
};
use crate::store::{OtpStore, RateLimiter, SessionStore};

/// The gRPC service name health reports on.
pub const SERVICE_NAME: &str = "arogya.auth.v1.AuthService";

/// A health name that is SERVING for as long as the process serves at all, whatever Redis
/// and the database do: for liveness probes (`grpc: {port: 50051, service: liveness}`), which
/// must not restart every replica during a dependency outage.
pub const LIVENESS_NAME: &str = "liveness";

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error(transparent)]
    Key(#[from] crate::session::SessionError),
    #[error("server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Parts a caller may supply instead of the ones config would choose.
#[derive(Default)]
pub struct Overrides {
    pub clock: Option<Arc<dyn Clock>>,
    pub sms: Option<Arc<dyn SmsSender>>,
}

/// A built service: stores connected, migrations applied, port bound, not yet serving.
pub struct App {
    config: Config,
    deps: Deps,
    listener: TcpListener,
    /// `AROGYA_ADMIN_ADDR`: `/metrics`.
    admin: TcpListener,
    metrics: Arc<Metrics>,
    readiness: Readiness,
}

impl App {
    pub async fn build(config: Config) -> Result<Self, AppError> {
        Self::build_with(config, Overrides::default()).await
    }

    /// As [`App::build`], with parts replaced (tests pass a manual clock or an SMS sender
    /// they control).
    pub async fn build_with(config: Config, overrides: Overrides) -> Result<Self, AppError> {
        let clock = overrides.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let metrics = Metrics::new();
        let sms: Arc<dyn SmsSender> = match overrides.sms {
            Some(sms) => sms,
            None => sms_sender(&config, &metrics)?,
        };
        let message = MessageTemplate::new(&config.sms, (config.otp.ttl_seconds / 60).max(1))
            .map_err(|e| AppError::Config(e.to_string()))?;
        let keys = KeyRing::from_config(&config.jwt)?;
        let hasher = match &config.otp.secret {
            Some(secret) => OtpHasher::new(secret),
            None => OtpHasher::generated(),
        };

        let policy = Policy::from_config(&config, sms.as_ref(), message);
        let database = match &config.database_url {
            Some(u) => crate::config::redact_url(u),
            None => format!("sqlite file {}", config.database.sqlite_path.display()),
        };
        tracing::info!(
            env = ?config.env,
            state = %match &config.redis_url {
                Some(url) => format!("redis {} (prefix {})", crate::config::redact_url(url), config.redis.key_prefix),
                None => "in-memory (lost on restart; single replica only)".to_owned(),
            },
            database = %database,
            sms = sms.name(),
            signing_key = %keys.source,
            kid = keys.signing_kid(),
            also_accepted = ?&keys.kids()[1..],
            otp_secret = if config.otp.secret.is_some() { "configured" } else { "generated for this run" },
            dev_otp = policy.reveal_dev_otp,
            rate_limits = policy.limits.is_some(),
            "arogya-auth starting"
        );

        let url = db::database_url(config.database_url.as_deref(), &config.database.sqlite_path);
        let db_timeout = Duration::from_millis(config.database.timeout_ms);
        let conn = db::connect_lazy(&url, db_timeout).await?;
        let mut migrations_pending = false;
        if config.database.run_migrations {
            let migrated = tokio::time::timeout(Duration::from_secs(30), db::migrate(&conn)).await;
            match migrated {
                Ok(Ok(())) => {}
                // The database answers, so this is a real migration error: refuse to start.
                Ok(Err(e)) if conn.ping().await.is_ok() => return Err(e.into()),
                Ok(Err(_)) | Err(_) => {
                    tracing::warn!(
                        database = %crate::config::redact_url(&url),
                        "database not reachable at start-up; migrations will run when it answers, health NOT_SERVING until then"
                    );
                    migrations_pending = true;
                }
            }
        }

        let listener = TcpListener::bind(config.listen_addr)
            .await
            .map_err(|source| AppError::Bind {
                addr: config.listen_addr,
                source,
            })?;
        let admin = TcpListener::bind(config.admin_addr)
            .await
            .map_err(|source| AppError::Bind {
                addr: config.admin_addr,
                source,
            })?;

        let (redis, otps, sessions, limits) = stores(&config, &hasher, &metrics).await?;
        let readiness = Readiness::new(
            redis,
            conn.clone(),
            migrations_pending,
            db_timeout.max(Duration::from_millis(config.redis.timeout_ms)),
        )
        .metered(metrics.clone());
        let deps = Deps {
            otps,
            sessions,
            limits,
            sms,
            users: UserRepo::new(conn),
            clock,
            hasher: Arc::new(hasher),
            keys: Arc::new(keys),
            policy: Arc::new(policy),
            metrics: metrics.clone(),
        };
        Ok(Self {
            config,
            deps,
            listener,
            admin,
            metrics,
            readiness,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.config.listen_addr)
    }

    /// Where `/metrics` is served.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr().unwrap_or(self.config.admin_addr)
    }

    pub fn deps(&self) -> &Deps {
        &self.deps
    }

    /// Serves until `shutdown` completes; then health turns NOT_SERVING, the listener closes,
    /// in-flight calls finish (for at most `server.shutdown_grace_seconds`), and this returns.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let Self {
            config,
            deps,
            listener,
            admin,
            metrics,
            readiness,
        } = self;
        let admin = {
            let metrics = metrics.clone();
            let router = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let text = metrics.render();
                    async move {
                        (
                            [(
                                header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            text,
                        )
                    }
                }),
            );
            tracing::info!(admin = %admin.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving /metrics on the admin listener");
            tokio::spawn(async move {
                if let Err(e) = axum::serve(admin, router).await {
                    tracing::warn!(error = %e, "admin listener stopped");
                }
            })
        };
        let (health, health_svc) = tonic_health::server::health_reporter();
        health
            .set_service_status(LIVENESS_NAME, ServingStatus::Serving)
            .await;
        // Health is NOT_SERVING until Redis and the database answer; a task keeps it current.
        let ready = readiness.report(&health, None).await;
        let watcher_stop = Arc::new(tokio::sync::Notify::new());
        let watcher = tokio::spawn(readiness.watch(
            health.clone(),
            Duration::from_millis(config.server.health_interval_ms),
            ready,
            watcher_stop.clone(),
        ));

        let auth =
            AuthServiceServer::new(AuthApi::new(deps.clone(), config.trusted_proxies.clone()))
                .max_decoding_message_size(config.server.max_message_bytes)
                .max_encoding_message_size(config.server.max_message_bytes);
        // Our own files, health, and google.rpc error details (so grpcurl and buf curl can
        // decode BadRequest, RetryInfo and ErrorInfo by reflection alone).
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection()
            .build_v1()
            .map_err(|e| AppError::Config(format!("reflection: {e}")))?;
        let reflection_v1alpha = reflection()
            .build_v1alpha()
            .map_err(|e| AppError::Config(format!("reflection: {e}")))?;

        let jwks = Arc::new(deps.keys.jwks().to_string());
        let mut routes = tonic::service::Routes::builder();
        routes
            .add_service(auth)
            .add_service(health_svc)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        // gRPC-Web only on the gRPC routes: on the whole server it turns plain HTTP/1.1 GETs
        // (JWKS, probes) into 400s (STACK.md, gotcha 1).
        let router = routes
            .routes()
            .into_axum_router()
            // Inside gRPC-Web, so the metrics see real gRPC trailers either way.
            .layer(GrpcMetricsLayer {
                metrics: metrics.clone(),
                traces: crate::telemetry::exporting_traces(),
            })
            .layer(tonic_web::GrpcWebLayer::new())
            .route(
                "/.well-known/jwks.json",
                axum::routing::get(move || {
                    let body = jwks.clone();
                    async move {
                        (
                            [
                                (header::CONTENT_TYPE, "application/jwk-set+json"),
                                (header::CACHE_CONTROL, "public, max-age=300"),
                            ],
                            body.as_str().to_owned(),
                        )
                            .into_response()
                    }
                }),
            );

        let router = web_routes(router, &config);

        let grace = Duration::from_secs(config.server.shutdown_grace_seconds);
        let stopping = Arc::new(tokio::sync::Notify::new());
        let watcher_abort = watcher.abort_handle();
        let signal = {
            let (health, stopping) = (health.clone(), stopping.clone());
            let watcher_stop = watcher_stop.clone();
            let metrics = metrics.clone();
            async move {
                shutdown.await;
                // The watcher ends first, so no check still in flight can report SERVING
                // after this.
                watcher_stop.notify_one();
                let _ = watcher.await;
                metrics.set_ready(false);
                tracing::info!("shutting down: no new connections; finishing calls in flight");
                health.set_not_serving::<AuthServiceServer<AuthApi>>().await;
                health
                    .set_service_status("", ServingStatus::NotServing)
                    .await;
                stopping.notify_one();
            }
        };

        tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving gRPC, gRPC-Web, reflection, health and /.well-known/jwks.json");
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let serve = Server::builder()
            .accept_http1(true)
            .timeout(Duration::from_secs(config.server.request_timeout_seconds))
            .http2_max_header_list_size(config.server.max_header_list_bytes)
            .max_concurrent_streams(256)
            .layer(cors_layer(&config.cors.allowed_origins))
            .layer(tower::limit::ConcurrencyLimitLayer::new(
                config.server.concurrency_limit,
            ))
            .add_routes(tonic::service::Routes::from(router))
            .serve_with_incoming_shutdown(incoming, signal);
        tokio::pin!(serve);
        tokio::select! {
            result = &mut serve => result?,
            () = async { stopping.notified().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace_seconds = grace.as_secs(), "calls still open after the grace period; closing them");
            }
        }
        // (Normally already ended by the shutdown signal; not if serving failed.)
        watcher_abort.abort();
        admin.abort();
        tracing::info!("stopped");
        Ok(())
    }
}

/// The configured provider (and fallback) behind the delivery rules, or the log provider.
fn sms_sender(config: &Config, metrics: &Arc<Metrics>) -> Result<Arc<dyn SmsSender>, AppError> {
    let sms = &config.sms;
    if sms.provider == SmsProviderKind::Log {
        return Ok(Arc::new(LogSms::metered(metrics.clone())));
    }
    // No redirects: MSG91's authkey header would follow one to another host.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_millis(sms.timeout_ms))
        .build()
        .map_err(|e| AppError::Config(format!("http client: {e}")))?;
    let provider = |kind: SmsProviderKind| -> Result<Arc<dyn Provider>, AppError> {
        let need = |v: &Option<String>, key: &str| {
            v.clone().ok_or_else(|| {
                AppError::Config(format!("{} is required", crate::config::env_name(key)))
            })
        };
        Ok(match kind {
            SmsProviderKind::Twilio => {
                let t = &sms.twilio;
                let sender = match (&t.from, &t.messaging_service_sid) {
                    (Some(from), _) if !from.is_empty() => twilio::Sender::From(from.clone()),
                    _ => twilio::Sender::MessagingService(need(
                        &t.messaging_service_sid,
                        "sms.twilio.messaging_service_sid",
                    )?),
                };
                let token = t.auth_token.clone().ok_or_else(|| {
                    AppError::Config("AROGYA_SMS__TWILIO__AUTH_TOKEN is required".into())
                })?;
                Arc::new(twilio::Twilio::new(
                    http.clone(),
                    &t.base_url,
                    &need(&t.account_sid, "sms.twilio.account_sid")?,
                    token,
                    sender,
                ))
            }
            SmsProviderKind::Msg91 => {
                let m = &sms.msg91;
                let key = m.auth_key.clone().ok_or_else(|| {
                    AppError::Config("AROGYA_SMS__MSG91__AUTH_KEY is required".into())
                })?;
                let sender = m.sender.clone().or_else(|| sms.dlt.sender.clone());
                Arc::new(msg91::Msg91::new(
                    http.clone(),
                    &m.base_url,
                    key,
                    &need(&m.template_id, "sms.msg91.template_id")?,
                    sender,
                    m.vars.clone(),
                ))
            }
            SmsProviderKind::Log => {
                return Err(AppError::Config(
                    "AROGYA_SMS__FALLBACK: `log` cannot be part of a delivery chain".into(),
                ));
            }
        })
    };
    let mut chain = vec![provider(sms.provider)?];
    if let Some(f) = sms.fallback {
        chain.push(provider(f)?);
    }
    Ok(Arc::new(
        Delivery::new(
            chain,
            Duration::from_millis(sms.timeout_ms),
            sms.retries,
            Duration::from_millis(sms.backoff_ms),
        )
        .metered(metrics.clone()),
    ))
}

type Stores = (
    Option<RedisConn>,
    Arc<dyn OtpStore>,
    Arc<dyn SessionStore>,
    Arc<dyn RateLimiter>,
);

/// In-memory stores, or Redis ones when `REDIS_URL` is set.
async fn stores(
    config: &Config,
    hasher: &OtpHasher,
    metrics: &Arc<Metrics>,
) -> Result<Stores, AppError> {
    let metered_otps = |s: Arc<dyn OtpStore>| Arc::new(Metered::new(s, metrics.clone()));
    let metered_sessions = |s: Arc<dyn SessionStore>| {
        Arc::new(Metered::new(s, metrics.clone())) as Arc<dyn SessionStore>
    };
    let metered_limits = |s: Arc<dyn RateLimiter>| Arc::new(Metered::new(s, metrics.clone()));
    // In memory there is no store latency worth a histogram (and ValidateSession's hot path
    // stays bare); Redis stores are timed, behind the session cache.
    let Some(url) = &config.redis_url else {
        return Ok((
            None,
            Arc::new(MemoryOtpStore::new()),
            Arc::new(MemorySessionStore::new()),
            Arc::new(MemoryRateLimiter::new()),
        ));
    };
    let timeout = Duration::from_millis(config.redis.timeout_ms);
    let conn = RedisConn::connect(url, config.redis.cluster, timeout)
        .await
        .map_err(|e| AppError::Config(format!("REDIS_URL: {e}")))?;
    // An evicted key can bring back what it ended (a user's session epoch, a lock-out).
    if let Some(policy) = conn.eviction_policy().await
        && policy != "noeviction"
    {
        tracing::warn!(
            maxmemory_policy = %policy,
            "Redis may evict keys under memory pressure, which can revive sessions ended by 'log out everywhere' and lift lock-outs; set maxmemory-policy noeviction (docs/STORAGE.md)"
        );
    }
    let prefix = &config.redis.key_prefix;
    let cipher = FieldCipher::new(hasher.derive_key("session-phone-v1"));
    let redis_sessions = metered_sessions(Arc::new(RedisSessionStore::new(
        conn.clone(),
        prefix,
        cipher,
    )));
    // On a single Redis, a local cache of live sessions kept in step over pub/sub spares
    // ValidateSession its round trip. (Not on a cluster: every call asks Redis.)
    let sessions: Arc<dyn SessionStore> = match conn.client() {
        Some(client) => {
            let cache = SessionCache::new();
            tokio::spawn(follow_ended_sessions(
                client,
                ended_channel(prefix),
                cache.clone(),
            ));
            Arc::new(CachedSessions::new(redis_sessions, cache))
        }
        None => redis_sessions,
    };
    Ok((
        Some(conn.clone()),
        metered_otps(Arc::new(RedisOtpStore::new(conn.clone(), prefix))),
        sessions,
        metered_limits(Arc::new(RedisRateLimiter::new(conn, prefix))),
    ))
}

/// The sign-in page at `/` (GET only, so a gRPC call to an unknown method still gets
/// UNIMPLEMENTED from tonic): `index.html` and `/assets/…`. Served from here the page talks to
/// this origin only (its CSP says so); `/config.json` is for other static servers.
fn web_routes(router: axum::Router, config: &Config) -> axum::Router {
    use tower_http::services::{ServeDir, ServeFile};
    if !config.web_enabled() {
        return router;
    }
    let dir = &config.web.dir;
    let index = dir.join("index.html");
    if !index.is_file() {
        tracing::warn!(
            dir = %dir.display(),
            "sign-in page not built, not served (cd web && npm ci && npm run build); AROGYA_WEB__ENABLED=false silences this"
        );
        return router;
    }
    tracing::info!(dir = %dir.display(), "serving the sign-in page at /");
    let header = |name: HeaderName, value: &'static str| {
        tower_http::set_header::SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        )
    };
    // The page talks only to this origin, is never framed (a sign-in page inside someone
    // else's frame invites clickjacking), runs no inline code and leaks no referrer.
    let hardened = |r: axum::Router| {
        r.layer(header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
             object-src 'none'",
        ))
        .layer(header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header(header::REFERRER_POLICY, "no-referrer"))
    };
    let page = axum::Router::new()
        .route_service("/", ServeFile::new(index))
        .layer(header(header::CACHE_CONTROL, "no-cache"));
    // Vite names every asset by its content hash: cache them for good, but never a 404 (a
    // browser asking a replica that is not updated yet must not remember the miss).
    let assets = axum::Router::new()
        .nest_service("/assets", ServeDir::new(dir.join("assets")))
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            |res: &http::Response<_>| {
                res.status()
                    .is_success()
                    .then(|| HeaderValue::from_static("public, max-age=31536000, immutable"))
            },
        ));
    router.merge(hardened(page.merge(assets)))
}

/// Exact-origin allow-list; exposes the gRPC status headers so browsers can read errors and
/// rich details.
fn cors_layer(origins: &[String]) -> CorsLayer {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([Method::POST, Method::GET, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-grpc-web"),
            HeaderName::from_static("x-user-agent"),
            HeaderName::from_static("grpc-timeout"),
            HeaderName::from_static("traceparent"),
            HeaderName::from_static("tracestate"),
        ])
        .expose_headers([
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
            HeaderName::from_static("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(600))
}

/// Completes on SIGTERM or SIGINT (Ctrl-C). The handlers are installed when this is called,
/// not when the future is first polled: call it before start-up work, so a SIGTERM that
/// arrives while the service is still starting is a clean shutdown rather than a kill.
/// Must be called inside a Tokio runtime.
#[cfg(unix)]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            _ => {
                tracing::warn!("cannot install signal handlers; stop with SIGKILL");
                std::future::pending::<()>().await
            }
        }
    }
}

#[cfg(not(unix))]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_passwords_never_reach_the_log() {
        assert_eq!(
            crate::config::redact_url("postgres://app:s3cret@db:5432/auth"),
            "postgres://app:***@db:5432/auth"
        );
        assert_eq!(
            crate::config::redact_url("postgres://app@db/auth?sslmode=require&password=s3cret"),
            "postgres://app@db/auth?sslmode=require&password=***"
        );
        assert_eq!(
            crate::config::redact_url("sqlite://x.db?mode=rwc"),
            "sqlite://x.db?mode=rwc"
        );
    }
}
