//! `TestApp`: one running server per test, plus a client and one method per RPC.

use std::net::SocketAddr;
use std::sync::{Arc, Once};
use std::time::Duration;

use arogya_auth::app::{App, Overrides};
use arogya_auth::clock::ManualClock;
use arogya_auth::config::Config;
use arogya_auth::flows::Deps;
use arogya_auth::proto::auth_service_client::AuthServiceClient;
use arogya_auth::proto::*;
use arogya_auth::sms::SmsSender;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

pub const PHONE: &str = "+919876543210";

static LOGS: Once = Once::new();

/// Quiet unless TEST_LOG=1.
fn init_logs() {
    LOGS.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("info")
                .with_test_writer()
                .try_init();
        }
    });
}

/// Which stores the suite runs on: `AROGYA_TEST_BACKEND=production` puts every TestApp on
/// the real Redis (own key prefix) and PostgreSQL (own database); unset, the embedded default.
pub fn production_backend() -> bool {
    std::env::var("AROGYA_TEST_BACKEND").is_ok_and(|v| v == "production")
}

pub const REDIS_URL: &str = "redis://127.0.0.1:6379/";
const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database or key prefix of one test, removed when the test ends (even when it fails).
pub struct Scratch(Option<Place>);

enum Place {
    Postgres(String),
    Redis(String),
}

impl Scratch {
    /// A fresh, empty PostgreSQL database; returns its guard and URL.
    pub async fn postgres() -> (Scratch, String) {
        use sea_orm::ConnectionTrait;
        let name = format!("arogya_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sea_orm::Database::connect(PG_ADMIN_URL)
            .await
            .expect("postgres on 127.0.0.1:5432 (./scripts/test starts it)");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create db");
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        (Scratch(Some(Place::Postgres(name))), url)
    }

    pub fn redis() -> (Scratch, String) {
        let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
        (Scratch(Some(Place::Redis(prefix.clone()))), prefix)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let Some(place) = self.0.take() else { return };
        // Drop runs inside the test's runtime; clean up from a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                match place {
                    Place::Postgres(name) => {
                        use sea_orm::ConnectionTrait;
                        if let Ok(admin) = sea_orm::Database::connect(PG_ADMIN_URL).await {
                            let _ = admin
                                .execute_unprepared(&format!(
                                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                ))
                                .await;
                        }
                    }
                    Place::Redis(prefix) => {
                        if let Ok(client) = redis::Client::open(REDIS_URL)
                            && let Ok(mut c) = client.get_multiplexed_async_connection().await
                        {
                            // Session keys end in raw bytes: not text.
                            let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
                                .arg(format!("{prefix}*"))
                                .query_async(&mut c)
                                .await
                                .unwrap_or_default();
                            if !keys.is_empty() {
                                let _: Result<i64, _> =
                                    redis::cmd("DEL").arg(keys).query_async(&mut c).await;
                            }
                        }
                    }
                }
            });
        })
        .join();
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// The admin listener (`/metrics`).
    pub admin_addr: SocketAddr,
    pub client: AuthServiceClient<Channel>,
    pub clock: Arc<ManualClock>,
    pub deps: Deps,
    /// The Redis key prefix of this app, when it runs on Redis.
    pub redis_prefix: Option<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
    _scratch: Vec<Scratch>,
}

impl TestApp {
    /// Test defaults: rate limits off, its own SQLite file, a manual clock.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_with_sms(adjust, None).await
    }

    /// As [`TestApp::spawn_with`], sending SMS through `sms` instead of the log provider.
    pub async fn spawn_with_sms(
        adjust: impl FnOnce(&mut Config),
        sms: Option<Arc<dyn SmsSender>>,
    ) -> Self {
        init_logs();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = Config::for_tests(dir.path().join("users.db"));
        let mut scratch = Vec::new();
        if production_backend() {
            let (guard, url) = Scratch::postgres().await;
            scratch.push(guard);
            cfg.database_url = Some(url);
            let (guard, prefix) = Scratch::redis();
            scratch.push(guard);
            cfg.redis_url = Some(REDIS_URL.into());
            cfg.redis.key_prefix = prefix;
        }
        adjust(&mut cfg);
        cfg.validate().expect("test config is valid");
        let redis_prefix = cfg
            .redis_url
            .is_some()
            .then(|| cfg.redis.key_prefix.clone());
        let clock = Arc::new(ManualClock::new());
        let app = App::build_with(
            cfg,
            Overrides {
                clock: Some(clock.clone() as Arc<dyn arogya_auth::clock::Clock>),
                sms,
            },
        )
        .await
        .expect("app builds");
        let addr = app.local_addr();
        let admin_addr = app.admin_addr();
        let deps = app.deps().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            app.run_until(async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        let client = AuthServiceClient::new(channel(addr).await);
        Self {
            addr,
            admin_addr,
            client,
            clock,
            deps,
            redis_prefix,
            shutdown: Some(tx),
            server: Some(server),
            _dir: dir,
            _scratch: scratch,
        }
    }

    /// A client on a new connection.
    pub async fn connect_client(addr: SocketAddr) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(channel(addr).await)
    }

    /// The JWKS document, fetched over plain HTTP.
    pub async fn jwks(&self) -> serde_json::Value {
        reqwest::get(format!("{}/.well-known/jwks.json", self.url()))
            .await
            .expect("GET jwks")
            .json()
            .await
            .expect("jwks is JSON")
    }

    /// A `grpc.health.v1.Health/Watch` stream on the overall status, already past its first
    /// (SERVING) message.
    pub async fn watch_health(&self) -> tonic::Streaming<tonic_health::pb::HealthCheckResponse> {
        use tonic_health::pb::health_check_response::ServingStatus;
        let mut health =
            tonic_health::pb::health_client::HealthClient::new(channel(self.addr).await);
        let mut watch = health
            .watch(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("watch")
            .into_inner();
        let first = watch
            .message()
            .await
            .expect("stream")
            .expect("a first status");
        assert_eq!(first.status(), ServingStatus::Serving);
        watch
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    /// Stops the server the way SIGTERM would, and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.await.expect("server task");
        }
    }

    pub async fn request_otp(&self, phone: &str) -> Result<RequestOtpResponse, Status> {
        let req = RequestOtpRequest {
            phone_number: phone.into(),
        };
        self.client
            .clone()
            .request_otp(req)
            .await
            .map(|r| r.into_inner())
    }

    pub async fn resend_otp(&self, phone: &str) -> Result<ResendOtpResponse, Status> {
        let req = ResendOtpRequest {
            phone_number: phone.into(),
        };
        self.client
            .clone()
            .resend_otp(req)
            .await
            .map(|r| r.into_inner())
    }

    pub async fn verify_otp(&self, phone: &str, otp: &str) -> Result<VerifyOtpResponse, Status> {
        let req = VerifyOtpRequest {
            phone_number: phone.into(),
            otp: otp.into(),
        };
        self.client
            .clone()
            .verify_otp(req)
            .await
            .map(|r| r.into_inner())
    }

    pub async fn validate(&self, access_token: &str) -> Result<ValidateSessionResponse, Status> {
        let req = ValidateSessionRequest {
            access_token: access_token.into(),
        };
        self.client
            .clone()
            .validate_session(req)
            .await
            .map(|r| r.into_inner())
    }

    pub async fn validate_bearer(
        &self,
        access_token: &str,
    ) -> Result<ValidateSessionResponse, Status> {
        let mut req = Request::new(ValidateSessionRequest::default());
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {access_token}").parse().expect("ascii"),
        );
        self.client
            .clone()
            .validate_session(req)
            .await
            .map(|r| r.into_inner())
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<RefreshSessionResponse, Status> {
        let req = RefreshSessionRequest {
            refresh_token: refresh_token.into(),
        };
        self.client
            .clone()
            .refresh_session(req)
            .await
            .map(|r| r.into_inner())
    }

    pub async fn logout(
        &self,
        refresh_token: &str,
        all_sessions: bool,
    ) -> Result<LogoutResponse, Status> {
        let req = LogoutRequest {
            refresh_token: refresh_token.into(),
            all_sessions,
        };
        self.client
            .clone()
            .logout(req)
            .await
            .map(|r| r.into_inner())
    }

    pub async fn logout_bearer(
        &self,
        access_token: &str,
        all_sessions: bool,
    ) -> Result<LogoutResponse, Status> {
        let mut req = Request::new(LogoutRequest {
            refresh_token: String::new(),
            all_sessions,
        });
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {access_token}").parse().expect("ascii"),
        );
        self.client
            .clone()
            .logout(req)
            .await
            .map(|r| r.into_inner())
    }

    /// The Prometheus text of the admin listener's `/metrics`.
    pub async fn scrape_metrics(&self) -> String {
        let res = reqwest::get(format!("http://{}/metrics", self.admin_addr))
            .await
            .expect("admin listener answers");
        assert!(res.status().is_success());
        res.text().await.unwrap()
    }

    /// RequestOtp + VerifyOtp with the dev code.
    pub async fn sign_in(&self, phone: &str) -> VerifyOtpResponse {
        let sent = self.request_otp(phone).await.expect("RequestOtp");
        assert_eq!(sent.dev_otp.len(), 6, "dev_otp present in development");
        self.verify_otp(phone, &sent.dev_otp)
            .await
            .expect("VerifyOtp")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connects")
}

/// Asserts the status code, returning the status for further checks.
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Ok(v) => panic!("expected {code:?}, got Ok({v:?})"),
        Err(s) => {
            assert_eq!(s.code(), code, "message: {}", s.message());
            s
        }
    }
}

/// The field named by the status's `google.rpc.BadRequest` violation.
pub fn violated_field(status: &Status) -> Option<String> {
    let details = status.get_error_details();
    details
        .bad_request()
        .and_then(|b| b.field_violations.first())
        .map(|v| v.field.clone())
}

/// The `google.rpc.RetryInfo` delay, in whole seconds.
pub fn retry_after(status: &Status) -> Option<u64> {
    let details = status.get_error_details();
    details
        .retry_info()
        .and_then(|r| r.retry_delay)
        .map(|d| d.as_secs())
}

/// The `google.rpc.ErrorInfo` reason.
pub fn reason(status: &Status) -> Option<String> {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
}

/// A code that is not `code` (for wrong guesses).
pub fn wrong(code: &str) -> String {
    let n: u32 = code.parse().expect("digits");
    format!("{:06}", (n + 1) % 1_000_000)
}

/// The value of one Prometheus sample (`name{labels}` exactly as rendered), 0 when absent (a
/// counter not yet touched).
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.split(' ').next().unwrap_or(v).parse().expect("a number"))
        .unwrap_or(0.0)
}
