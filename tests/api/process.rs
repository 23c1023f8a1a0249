//! The real binary: start-up refusals, `migrate`, `gen-key`, SIGTERM, and what reaches the log.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};

use crate::helpers::*;
use arogya_auth::proto::auth_service_client::AuthServiceClient;
use arogya_auth::proto::*;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_arogya-auth"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AROGYA_") || k == "REDIS_URL" || k == "DATABASE_URL" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn production_refuses_the_embedded_defaults_naming_each() {
    let out = bin().env("AROGYA_ENV", "production").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "AROGYA_SMS__PROVIDER",
        "AROGYA_OTP__SECRET",
        "AROGYA_JWT__PRIVATE_KEY_FILE",
        "REDIS_URL",
        "DATABASE_URL",
    ] {
        assert!(err.contains(key), "{key} not named: {err}");
    }
}

#[test]
fn a_bad_value_fails_start_up_with_one_line_naming_the_key() {
    let out = bin()
        .env("AROGYA_OTP__MAX_ATTEMPTS", "five")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("AROGYA_OTP__MAX_ATTEMPTS"), "{err}");
    let out = bin()
        .env("AROGYA_LISTEN_ADDR", "not-an-address")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("AROGYA_LISTEN_ADDR"));
}

#[test]
fn migrate_creates_the_schema_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    for _ in 0..2 {
        let out = bin()
            .arg("migrate")
            .env("AROGYA_DATABASE__SQLITE_PATH", &db)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let conn = arogya_auth::db::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let repo = arogya_auth::db::UserRepo::new(conn);
        assert_eq!(
            repo.count().await.unwrap(),
            0,
            "users table exists and is empty"
        );
    });
}

/// A generated client connected to a running binary.
async fn client(server: &Running) -> AuthServiceClient<tonic::transport::Channel> {
    AuthServiceClient::connect(format!("http://{}", server.addr))
        .await
        .expect("connects")
}

struct Running {
    child: Option<Child>,
    addr: String,
    lines: std::sync::mpsc::Receiver<String>,
    /// Lines read while waiting for the server to come up.
    early: Vec<String>,
}

impl Running {
    /// SIGTERM, then wait for the exit (never longer than `within`).
    fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let (tx, rx) = std::sync::mpsc::channel();
        let pid = child.id();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(within) {
            Ok(status) => status.unwrap(),
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                panic!("did not exit within {within:?}");
            }
        }
    }

    fn log(&self) -> Vec<String> {
        self.early
            .iter()
            .cloned()
            .chain(self.lines.try_iter())
            .collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts the binary on port 0 and reads the bound address from its log.
#[allow(clippy::zombie_processes)] // the child moves into `Running`, whose Drop kills and reaps it
fn start(dir: &std::path::Path, extra: &[(&str, &str)]) -> Running {
    let mut cmd = bin();
    cmd.env("AROGYA_LISTEN_ADDR", "127.0.0.1:0")
        .env("AROGYA_ADMIN_ADDR", "127.0.0.1:0")
        .env("AROGYA_DATABASE__SQLITE_PATH", dir.join("users.db"))
        .env("AROGYA_LOG__FILTER", "debug")
        .env("AROGYA_SERVER__SHUTDOWN_GRACE_SECONDS", "5")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        seen.push(line.clone());
        if !line.contains("serving gRPC") {
            continue;
        }
        let addr = match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(json) => json["fields"]["addr"].as_str().map(str::to_owned),
            Err(_) => line
                .split("addr=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned),
        };
        if let Some(addr) = addr {
            return Running {
                child: Some(child),
                addr,
                lines: rx,
                early: seen,
            };
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("server did not start: {seen:#?}");
}

/// `needle` occurs in `text` not glued to other letters or digits (a six-digit code may appear
/// by chance inside a timestamp's microseconds; that is not a leak).
fn contains_token(text: &str, needle: &str) -> bool {
    text.match_indices(needle).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

#[test]
fn sigterm_exits_zero_and_the_log_never_holds_a_code_a_token_or_a_full_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (code, access, refresh) = rt.block_on(async {
        let mut c = client(&server).await;
        let sent = c
            .request_otp(RequestOtpRequest {
                phone_number: "98765 43210".into(),
            })
            .await
            .unwrap()
            .into_inner();
        let _ = c
            .verify_otp(VerifyOtpRequest {
                phone_number: PHONE.into(),
                otp: wrong(&sent.dev_otp),
            })
            .await;
        let s = c
            .verify_otp(VerifyOtpRequest {
                phone_number: PHONE.into(),
                otp: sent.dev_otp.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let r = c
            .refresh_session(RefreshSessionRequest {
                refresh_token: s.refresh_token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let _ = c
            .refresh_session(RefreshSessionRequest {
                refresh_token: s.refresh_token.clone(),
            })
            .await;
        c.validate_session(ValidateSessionRequest {
            access_token: r.access_token.clone(),
        })
        .await
        .ok();
        (sent.dev_otp, r.access_token, r.refresh_token)
    });
    let status = server.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");

    let log = server.log();
    let text = log.join("\n");
    assert!(
        text.contains("+91******3210"),
        "masked number logged: {text}"
    );
    assert!(
        text.contains("shutting down") && text.contains("stopped"),
        "{text}"
    );
    // Numbers by plain substring (any form); the code only as a whole token, since six digits
    // can occur inside a timestamp by chance.
    for number in ["9876543210", "98765 43210", "+919876543210"] {
        assert!(
            !text.contains(number),
            "{number:?} leaked into the log:\n{text}"
        );
    }
    for secret in [code.as_str(), &access[access.len() - 20..], &refresh[..20]] {
        assert!(
            !contains_token(&text, secret),
            "{secret:?} leaked into the log:\n{text}"
        );
    }
}

#[test]
fn the_first_log_line_says_what_the_service_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &[]);
    assert!(server.terminate(Duration::from_secs(10)).success());
    let log = server.log();
    let starting = log
        .iter()
        .find(|l| l.contains("arogya-auth starting"))
        .expect("a start line");
    for words in [
        "in-memory",
        "sqlite file",
        "sms=\"log\"",
        "signing_key=generated",
    ] {
        assert!(starting.contains(words), "{words}: {starting}");
    }
}

#[test]
fn gen_key_makes_a_key_the_server_signs_with() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin().arg("gen-key").output().unwrap();
    assert!(out.status.success());
    let pem = String::from_utf8(out.stdout).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let key = dir.path().join("signing.pem");
    std::fs::write(&key, &pem).unwrap();
    let mut server = start(
        dir.path(),
        &[("AROGYA_JWT__PRIVATE_KEY_FILE", key.to_str().unwrap())],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let jwks: serde_json::Value = rt.block_on(async {
        reqwest::get(format!("http://{}/.well-known/jwks.json", server.addr))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert!(server.terminate(Duration::from_secs(10)).success());
    let log = server.log();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    assert!(
        log.iter()
            .any(|l| l.contains(&kid) && l.contains("signing.pem")),
        "{log:#?}"
    );

    std::fs::write(&key, "not a key").unwrap();
    let out = bin()
        .env("AROGYA_JWT__PRIVATE_KEY_FILE", &key)
        .env("AROGYA_LISTEN_ADDR", "127.0.0.1:0")
        .env("AROGYA_ADMIN_ADDR", "127.0.0.1:0")
        .env("AROGYA_DATABASE__SQLITE_PATH", dir.path().join("x.db"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("signing.pem"));
}

#[test]
fn two_server_processes_on_one_redis_and_postgres_are_one_service() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.pem");
    std::fs::write(&key, arogya_auth::session::KeyRing::generate_pem().unwrap()).unwrap();
    let (_db, db_url) = rt.block_on(Scratch::postgres());
    let (_keys, prefix) = Scratch::redis();
    let env = [
        ("REDIS_URL", REDIS_URL),
        ("DATABASE_URL", db_url.as_str()),
        ("AROGYA_REDIS__KEY_PREFIX", prefix.as_str()),
        ("AROGYA_JWT__PRIVATE_KEY_FILE", key.to_str().unwrap()),
        (
            "AROGYA_OTP__SECRET",
            "two-processes-share-this-secret-0123456789",
        ),
        ("AROGYA_RATE_LIMIT__ENABLED", "false"),
    ];
    let mut one = start(dir.path(), &env);
    let mut two = start(dir.path(), &env);
    rt.block_on(async {
        let mut a = client(&one).await;
        let mut b = client(&two).await;
        let sent = a
            .request_otp(RequestOtpRequest {
                phone_number: PHONE.into(),
            })
            .await
            .unwrap()
            .into_inner();
        let refused = b
            .resend_otp(ResendOtpRequest {
                phone_number: PHONE.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::ResourceExhausted,
            "the cooldown is shared"
        );
        let s = b
            .verify_otp(VerifyOtpRequest {
                phone_number: PHONE.into(),
                otp: sent.dev_otp,
            })
            .await
            .expect("a code from one process signs in on the other")
            .into_inner();
        a.validate_session(ValidateSessionRequest {
            access_token: s.access_token.clone(),
        })
        .await
        .unwrap();
        a.logout(LogoutRequest {
            refresh_token: s.refresh_token,
            all_sessions: false,
        })
        .await
        .unwrap();
        let ended = b
            .validate_session(ValidateSessionRequest {
                access_token: s.access_token,
            })
            .await
            .unwrap_err();
        assert_eq!(
            ended.code(),
            tonic::Code::Unauthenticated,
            "a logout on one is seen by the other"
        );
    });
    assert!(one.terminate(Duration::from_secs(10)).success());
    assert!(two.terminate(Duration::from_secs(10)).success());
}

#[test]
fn migrate_applies_the_schema_to_postgres_and_start_up_can_skip_it() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_db, url) = rt.block_on(Scratch::postgres());
    // A migration Job in production needs only DATABASE_URL: no SMS credentials, no keys.
    for _ in 0..2 {
        let out = bin()
            .arg("migrate")
            .env("AROGYA_ENV", "production")
            .env("DATABASE_URL", &url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    rt.block_on(async {
        let repo = arogya_auth::db::UserRepo::new(arogya_auth::db::connect(&url).await.unwrap());
        assert_eq!(repo.count().await.unwrap(), 0, "users table exists");
    });
    // With migrations already applied, a server told not to run them serves sign-ins.
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(
        dir.path(),
        &[
            ("DATABASE_URL", url.as_str()),
            ("AROGYA_DATABASE__RUN_MIGRATIONS", "false"),
        ],
    );
    rt.block_on(async {
        let mut c = client(&server).await;
        let sent = c
            .request_otp(RequestOtpRequest {
                phone_number: PHONE.into(),
            })
            .await
            .unwrap()
            .into_inner();
        let s = c
            .verify_otp(VerifyOtpRequest {
                phone_number: PHONE.into(),
                otp: sent.dev_otp,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(s.new_user);
    });
    assert!(server.terminate(Duration::from_secs(10)).success());
    assert!(
        !server
            .log()
            .iter()
            .any(|l| l.contains("Applying migration")),
        "start-up skipped migrations"
    );
}

/// A whole production configuration: every setting `check-config` and start-up insist on.
fn production_env(cmd: &mut Command, key_file: &std::path::Path) {
    for (k, v) in [
        ("AROGYA_ENV", "production"),
        ("AROGYA_SMS__PROVIDER", "twilio"),
        (
            "AROGYA_SMS__TWILIO__ACCOUNT_SID",
            "AC00000000000000000000000000000000",
        ),
        (
            "AROGYA_SMS__TWILIO__AUTH_TOKEN",
            "twilio-token-do-not-print",
        ),
        ("AROGYA_SMS__TWILIO__FROM", "+15005550006"),
        (
            "AROGYA_SMS__DLT__TEMPLATE",
            "{#var#} is your {#var#} sign-in code. It expires in {#var#} min. Never share it with anyone.",
        ),
        ("AROGYA_SMS__DLT__TEMPLATE_ID", "1107161234567890123"),
        ("AROGYA_SMS__DLT__ENTITY_ID", "1101161234567890123"),
        ("AROGYA_SMS__DLT__SENDER", "AROGYA"),
        ("AROGYA_OTP__SECRET", "otp-secret-do-not-print-0123456789"),
        ("AROGYA_CORS__ALLOWED_ORIGINS", "https://vault.example.in"),
        ("REDIS_URL", "redis://:redis-pw-do-not-print@10.0.0.5:6379/"),
        (
            "DATABASE_URL",
            "postgres://auth:pg-pw-do-not-print@10.0.0.6/auth",
        ),
    ] {
        cmd.env(k, v);
    }
    cmd.env("AROGYA_JWT__PRIVATE_KEY_FILE", key_file);
}

#[test]
fn check_config_prints_every_setting_masked_and_passes_a_safe_production_config() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.pem");
    std::fs::write(&key, arogya_auth::session::KeyRing::generate_pem().unwrap()).unwrap();
    let mut cmd = bin();
    production_env(&mut cmd, &key);
    let out = cmd.arg("check-config").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("# ok: safe for production"), "{text}");
    for line in [
        "AROGYA_ENV = production",
        "AROGYA_OTP__SECRET = (set, not shown)",
        "AROGYA_SMS__TWILIO__AUTH_TOKEN = (set, not shown)",
        "AROGYA_SMS__MSG91__AUTH_KEY = (unset)",
        "AROGYA_OTP__TTL_SECONDS = 600",
        "DATABASE_URL = postgres://auth:***@10.0.0.6/auth",
        "REDIS_URL = redis://:***@10.0.0.5:6379/",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
    }
    let all = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        !all.contains("do-not-print"),
        "a secret was printed:\n{all}"
    );
}

#[test]
fn check_config_fails_an_unsafe_production_config_naming_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.pem");
    std::fs::write(&key, arogya_auth::session::KeyRing::generate_pem().unwrap()).unwrap();
    let mut cmd = bin();
    production_env(&mut cmd, &key);
    let out = cmd
        .env_remove("REDIS_URL")
        .env("AROGYA_RATE_LIMIT__ENABLED", "false")
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let unsafe_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("# unsafe:"))
        .collect();
    assert_eq!(unsafe_lines.len(), 2, "{text}");
    assert!(unsafe_lines.iter().any(|l| l.contains("REDIS_URL")));
    assert!(
        unsafe_lines
            .iter()
            .any(|l| l.contains("AROGYA_RATE_LIMIT__ENABLED"))
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 setting(s) unsafe for production"));
    assert!(!text.contains("do-not-print"));

    // Development: the same defaults are only warned about.
    let out = bin().arg("check-config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("# would be refused in production: REDIS_URL"),
        "{text}"
    );
    assert!(text.contains("# ok: valid for development"));

    // A value that does not parse: non-zero, one line naming it, nothing printed as valid.
    let out = bin()
        .env("AROGYA_OTP__TTL_SECONDS", "ten minutes")
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AROGYA_OTP__TTL_SECONDS"));
    assert!(out.stdout.is_empty());
}

#[test]
fn check_config_reads_the_signing_and_verify_keys_as_the_server_would() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.pem");
    let next = dir.path().join("next.pem");
    std::fs::write(&key, arogya_auth::session::KeyRing::generate_pem().unwrap()).unwrap();
    std::fs::write(
        &next,
        arogya_auth::session::KeyRing::generate_pem().unwrap(),
    )
    .unwrap();

    // `public-key` prints the public half; published as a verify key, check-config names it.
    let out = bin().arg("public-key").arg(&next).output().unwrap();
    assert!(out.status.success());
    let public = String::from_utf8(out.stdout).unwrap();
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{public}");
    let mut cmd = bin();
    production_env(&mut cmd, &key);
    let out = cmd
        .env("AROGYA_JWT__VERIFY_KEYS", &public)
        .arg("check-config")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("# signing key:"))
        .expect("a key line");
    assert!(line.contains(&key.display().to_string()), "{line}");
    assert!(!line.ends_with("also accepted: none"), "{line}");
    assert!(text.contains("AROGYA_JWT__VERIFY_KEYS = (set, not shown)"));
    assert!(!text.contains("BEGIN PUBLIC KEY"));

    // A verify-keys file that is not a key: non-zero, naming the file.
    let mut cmd = bin();
    production_env(&mut cmd, &key);
    let out = cmd
        .env(
            "AROGYA_JWT__VERIFY_KEYS_FILE",
            dir.path().join("missing.pem"),
        )
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("missing.pem"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Both the key text and the key file: refused, naming both.
    let mut cmd = bin();
    production_env(&mut cmd, &key);
    let out = cmd
        .env(
            "AROGYA_JWT__PRIVATE_KEY",
            std::fs::read_to_string(&next).unwrap(),
        )
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AROGYA_JWT__PRIVATE_KEY or AROGYA_JWT__PRIVATE_KEY_FILE"),
        "{err}"
    );
    assert!(!err.contains("PRIVATE KEY-----"));
}

mod collector {
    //! A stand-in OpenTelemetry collector: the real OTLP/gRPC trace service, keeping what it
    //! receives.
    use std::sync::{Arc, Mutex};

    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use tonic::{Request, Response, Status};

    #[derive(Clone, Default)]
    pub struct Collector {
        pub requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
        pub arrived: Arc<tokio::sync::Notify>,
    }

    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            request: Request<ExportTraceServiceRequest>,
        ) -> Result<Response<ExportTraceServiceResponse>, Status> {
            self.requests.lock().unwrap().push(request.into_inner());
            self.arrived.notify_waiters();
            Ok(Response::new(ExportTraceServiceResponse::default()))
        }
    }

    /// Serves on a free loopback port; returns the collector and its `http://` endpoint.
    pub async fn start() -> (Collector, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let collector = Collector::default();
        let service = TraceServiceServer::new(collector.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (collector, format!("http://{addr}"))
    }
}

#[test]
fn rpc_spans_reach_an_otlp_collector_continuing_the_callers_trace() {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::trace::v1::Span;

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (collector, endpoint) = rt.block_on(collector::start());
    // On Redis and PostgreSQL, whose calls get store spans (the in-memory stores do not).
    let (_db, db_url) = rt.block_on(Scratch::postgres());
    let (_prefix, prefix) = Scratch::redis();
    let dir = tempfile::tempdir().unwrap();
    // A schedule delay longer than the test: spans can only arrive by the flush at SIGTERM.
    let mut server = start(
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
            ("REDIS_URL", REDIS_URL),
            ("AROGYA_REDIS__KEY_PREFIX", prefix.as_str()),
            ("DATABASE_URL", db_url.as_str()),
        ],
    );
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let code = rt.block_on(async {
        let mut c = client(&server).await;
        let mut req = tonic::Request::new(RequestOtpRequest {
            phone_number: PHONE.into(),
        });
        req.metadata_mut().insert(
            "traceparent",
            format!("00-{trace_id}-{caller_span}-01").parse().unwrap(),
        );
        let sent = c.request_otp(req).await.unwrap().into_inner();
        c.verify_otp(VerifyOtpRequest {
            phone_number: PHONE.into(),
            otp: sent.dev_otp.clone(),
        })
        .await
        .unwrap();
        sent.dev_otp
    });
    assert!(
        collector.requests.lock().unwrap().is_empty(),
        "batched, not yet sent"
    );
    assert!(server.terminate(Duration::from_secs(15)).success());

    let requests = collector.requests.lock().unwrap().clone();
    let resource_spans: Vec<_> = requests.iter().flat_map(|r| &r.resource_spans).collect();
    assert!(!resource_spans.is_empty(), "flushed at shutdown");
    let service_name = resource_spans[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.clone()?.value);
    assert_eq!(service_name, Some(Value::StringValue("arogya-auth".into())));
    let spans: Vec<&Span> = resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let attr = |s: &Span, key: &str| {
        s.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.clone()?.value)
    };
    let named = |name: &str| -> &Span {
        spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
            panic!(
                "no {name} span in {:#?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
    };

    // The RequestOtp server span continues the caller's trace, under the caller's span.
    let rpc = named("arogya.auth.v1.AuthService/RequestOtp");
    assert_eq!(hex(&rpc.trace_id), trace_id);
    assert_eq!(hex(&rpc.parent_span_id), caller_span);
    assert_eq!(rpc.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(
        attr(rpc, "rpc.system"),
        Some(Value::StringValue("grpc".into()))
    );
    assert_eq!(
        attr(rpc, "rpc.method"),
        Some(Value::StringValue("RequestOtp".into()))
    );
    assert_eq!(attr(rpc, "rpc.grpc.status_code"), Some(Value::IntValue(0)));
    // Its children: the flow, under it the store calls and the SMS send.
    let flow = named("otp.send");
    assert_eq!(flow.trace_id, rpc.trace_id);
    assert_eq!(flow.parent_span_id, rpc.span_id);
    let sms = named("sms.send");
    assert_eq!(sms.parent_span_id, flow.span_id);
    let issue = spans
        .iter()
        .find(|s| s.name == "store" && attr(s, "op") == Some(Value::StringValue("issue".into())))
        .expect("a store span for the code's issue");
    assert_eq!(issue.parent_span_id, flow.span_id);

    // VerifyOtp came with no trace context: a new trace, the database call inside it.
    let verify = named("arogya.auth.v1.AuthService/VerifyOtp");
    assert_ne!(verify.trace_id, rpc.trace_id);
    assert!(verify.parent_span_id.is_empty(), "a root span");
    assert!(spans.iter().any(|s| s.trace_id == verify.trace_id
        && attr(s, "op") == Some(Value::StringValue("find_or_create".into()))));

    // Nothing secret in any span: no full number, no code.
    let dump = format!("{spans:?}");
    assert!(!dump.contains("9876543210"), "a full number in a span");
    assert!(!contains_token(&dump, &code), "the code in a span");
}

#[test]
fn json_logs_are_one_object_per_line_with_the_number_masked() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &[("AROGYA_LOG__FORMAT", "json")]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let code = rt.block_on(async {
        let mut c = client(&server).await;
        c.request_otp(RequestOtpRequest {
            phone_number: PHONE.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .dev_otp
    });
    assert!(server.terminate(Duration::from_secs(10)).success());
    let log = server.log();
    assert!(log.len() > 3, "{log:#?}");
    let mut masked = false;
    for line in &log {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        assert!(v["fields"].is_object(), "{line}");
        masked |= line.contains("+91******3210");
        assert!(!line.contains("9876543210"), "full number: {line}");
        assert!(!contains_token(line, &code), "the code: {line}");
    }
    assert!(masked, "the masked number is logged: {log:#?}");
}
