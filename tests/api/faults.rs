//! Redis or PostgreSQL going away and coming back, seen through a TCP proxy the test can cut:
//! calls fail fast with UNAVAILABLE (never UNKNOWN, never a hang), health turns NOT_SERVING,
//! and everything recovers by itself with no state lost.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::helpers::*;

/// Forwards loopback connections to `target` until cut (every open connection is dropped and
/// new ones are closed at once, as if the server had died) or stalled (connections stay open
/// but nothing more is forwarded, as if the host vanished without a word).
struct Proxy {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
    stalled: Arc<AtomicBool>,
    stall_now: Arc<tokio::sync::Notify>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let stalled = Arc::new(AtomicBool::new(false));
        let stall_now = Arc::new(tokio::sync::Notify::new());
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let target = target.to_owned();
        let (d, st, sn, l, h) = (
            down.clone(),
            stalled.clone(),
            stall_now.clone(),
            links.clone(),
            held.clone(),
        );
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if d.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                if st.load(Ordering::SeqCst) {
                    h.lock().unwrap().push(inbound); // accepted, never answered
                    continue;
                }
                let (target, sn, h) = (target.clone(), sn.clone(), h.clone());
                l.lock().unwrap().push(tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let stalled = tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
                        () = sn.notified() => true,
                    };
                    if stalled {
                        h.lock().unwrap().extend([inbound, outbound]);
                    }
                }));
            }
        });
        Proxy {
            addr,
            down,
            stalled,
            stall_now,
            links,
            held,
            accept,
        }
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
        self.stall_now.notify_waiters();
    }

    /// New connections forward again (stalled ones stay dead, as after a real partition).
    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
        self.stalled.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.held.lock().unwrap().clear();
        self.accept.abort();
    }
}

/// Waits (with a deadline) until the overall health reads `want`.
async fn health_becomes(app: &TestApp, want: ServingStatus) {
    // grpc.health's Watch streams every change: wait on it, no polling.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(app.addr).await);
    let mut watch = health
        .watch(tonic_health::pb::HealthCheckRequest {
            service: "arogya.auth.v1.AuthService".into(),
        })
        .await
        .expect("watch")
        .into_inner();
    let reached = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(Ok(update)) = watch.message().await.transpose() {
            if update.status() == want {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(reached, Ok(true), "health never became {want:?}");
}

/// After an outage: the session and the pending code (for 9123456789) from before it work.
async fn assert_intact(
    app: &TestApp,
    before: &arogya_auth::proto::VerifyOtpResponse,
    pending: &arogya_auth::proto::RequestOtpResponse,
) {
    app.validate(&before.access_token)
        .await
        .expect("the session from before is valid");
    app.refresh(&before.refresh_token)
        .await
        .expect("and refreshes");
    app.verify_otp("9123456789", &pending.dev_otp)
        .await
        .expect("the pending code still works");
}

/// Asserts the call fails UNAVAILABLE, within the configured timeouts (well under 3 s).
async fn fails_fast<T: std::fmt::Debug>(
    call: impl std::future::Future<Output = Result<T, tonic::Status>>,
) {
    let started = Instant::now();
    let s = expect_code(call.await, Code::Unavailable);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        s.message().contains("temporarily unavailable"),
        "{}",
        s.message()
    );
}

/// An app whose Redis is reached through `proxy`, with its own key prefix.
async fn behind_proxy(proxy: &Proxy) -> (TestApp, Scratch) {
    let (keys, prefix) = Scratch::redis();
    let url = format!("redis://{}/", proxy.addr);
    let app = TestApp::spawn_with(|c| {
        fast_checks(c);
        c.redis_url = Some(url.clone());
        c.redis.key_prefix = prefix.clone();
    })
    .await;
    (app, keys)
}

fn fast_checks(c: &mut arogya_auth::config::Config) {
    c.server.health_interval_ms = 50;
    c.redis.timeout_ms = 300;
    c.database.timeout_ms = 500;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_during_traffic_is_unavailable_then_recovers_with_every_session() {
    let proxy = Proxy::start("127.0.0.1:6379").await;
    let (app, _keys) = behind_proxy(&proxy).await;
    health_becomes(&app, ServingStatus::Serving).await;
    let before = app.sign_in(PHONE).await;
    let pending = app.request_otp("9123456789").await.unwrap();

    proxy.cut();
    fails_fast(app.request_otp("9000000001")).await;
    fails_fast(app.validate(&before.access_token)).await;
    fails_fast(app.refresh(&before.refresh_token)).await;
    fails_fast(app.verify_otp("9123456789", &pending.dev_otp)).await;
    health_becomes(&app, ServingStatus::NotServing).await;
    // Liveness is not readiness: the process still serves, so a liveness probe must not
    // restart it for an outage elsewhere.
    let live = tonic_health::pb::health_client::HealthClient::new(channel(app.addr).await)
        .check(tonic_health::pb::HealthCheckRequest {
            service: "liveness".into(),
        })
        .await
        .expect("liveness answers")
        .into_inner();
    assert_eq!(live.status(), ServingStatus::Serving);
    // The same state for Prometheus (alert on it: an up metric only says /metrics answered).
    assert_eq!(
        sample(&app.scrape_metrics().await, "arogya_auth_ready"),
        0.0
    );

    proxy.restore();
    health_becomes(&app, ServingStatus::Serving).await;
    assert_eq!(
        sample(&app.scrape_metrics().await, "arogya_auth_ready"),
        1.0
    );
    assert_intact(&app, &before, &pending).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_down_fails_sign_in_fast_while_sessions_keep_validating() {
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let (_db, url) = Scratch::postgres().await;
    let via_proxy = url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    let app = TestApp::spawn_with(|c| {
        fast_checks(c);
        c.database_url = Some(via_proxy.clone());
    })
    .await;
    let before = app.sign_in(PHONE).await;
    app.advance(61);
    let pending = app.request_otp(PHONE).await.unwrap();

    proxy.cut();
    fails_fast(app.verify_otp(PHONE, &pending.dev_otp)).await;
    health_becomes(&app, ServingStatus::NotServing).await;
    app.validate(&before.access_token)
        .await
        .expect("ValidateSession needs no SQL");

    proxy.restore();
    health_becomes(&app, ServingStatus::Serving).await;
    app.advance(61);
    let after = app.sign_in(PHONE).await;
    assert_eq!(
        after.user.unwrap().id,
        before.user.unwrap().id,
        "the same user, nothing half-written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_started_while_postgres_is_down_migrates_and_serves_when_it_returns() {
    let proxy = Proxy::start("127.0.0.1:5432").await;
    proxy.cut();
    let (_db, url) = Scratch::postgres().await;
    let via_proxy = url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    let app = TestApp::spawn_with(|c| {
        fast_checks(c);
        c.database_url = Some(via_proxy.clone());
    })
    .await;
    health_becomes(&app, ServingStatus::NotServing).await;
    let sent = app
        .request_otp(PHONE)
        .await
        .expect("sending needs no database");
    fails_fast(app.verify_otp(PHONE, &sent.dev_otp)).await;

    proxy.restore();
    health_becomes(&app, ServingStatus::Serving).await;
    app.advance(61);
    let signed = app.sign_in(PHONE).await;
    assert!(signed.new_user, "migrations ran once the database answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_and_restarted_during_traffic_loses_no_session() {
    let mut redis = tokio::task::spawn_blocking(crate::testing::RedisServer::start_persistent)
        .await
        .unwrap();
    let url = redis.url();
    let app = TestApp::spawn_with(|c| {
        fast_checks(c);
        c.redis_url = Some(url.clone());
    })
    .await;
    let before = app.sign_in(PHONE).await;
    let pending = app.request_otp("9123456789").await.unwrap();

    // Traffic all along: ValidateSession as fast as one client goes.
    let stop = Arc::new(AtomicBool::new(false));
    let first_answer = Arc::new(tokio::sync::Notify::new());
    let traffic = {
        let (mut client, token, stop) = (
            app.client.clone(),
            before.access_token.clone(),
            stop.clone(),
        );
        let first_answer = first_answer.clone();
        tokio::spawn(async move {
            let mut seen: Vec<(Code, Duration)> = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                let code = match client
                    .validate_session(arogya_auth::proto::ValidateSessionRequest {
                        access_token: token.clone(),
                    })
                    .await
                {
                    Ok(_) => Code::Ok,
                    Err(s) => s.code(),
                };
                seen.push((code, started.elapsed()));
                if seen.len() == 1 {
                    first_answer.notify_one();
                }
            }
            seen
        })
    };
    first_answer.notified().await; // traffic is flowing before the crash

    redis = tokio::task::spawn_blocking(move || {
        redis.stop();
        redis
    })
    .await
    .unwrap();
    health_becomes(&app, ServingStatus::NotServing).await;
    fails_fast(app.request_otp("9000000001")).await;

    redis = tokio::task::spawn_blocking(move || {
        redis.start();
        redis
    })
    .await
    .unwrap();
    health_becomes(&app, ServingStatus::Serving).await;
    stop.store(true, Ordering::SeqCst);
    let seen = traffic.await.unwrap();

    let codes: std::collections::BTreeSet<i32> = seen.iter().map(|(c, _)| *c as i32).collect();
    assert_eq!(
        codes,
        [Code::Ok as i32, Code::Unavailable as i32].into(),
        "only OK and UNAVAILABLE: {codes:?}"
    );
    let slowest = seen.iter().map(|(_, d)| *d).max().unwrap();
    assert!(
        slowest < Duration::from_secs(3),
        "a call hung for {slowest:?}"
    );
    assert_intact(&app, &before, &pending).await;
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_started_while_redis_is_down_serves_once_it_answers() {
    let proxy = Proxy::start("127.0.0.1:6379").await;
    proxy.cut();
    let (app, _keys) = behind_proxy(&proxy).await;
    health_becomes(&app, ServingStatus::NotServing).await;
    fails_fast(app.request_otp(PHONE)).await;

    proxy.restore();
    health_becomes(&app, ServingStatus::Serving).await;
    app.sign_in(PHONE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_that_stops_answering_times_out_fast_and_is_reconnected() {
    let proxy = Proxy::start("127.0.0.1:6379").await;
    let (app, _keys) = behind_proxy(&proxy).await;
    let before = app.sign_in(PHONE).await;
    health_becomes(&app, ServingStatus::Serving).await;

    proxy.stall();
    fails_fast(app.validate(&before.access_token)).await;
    fails_fast(app.request_otp("9123456789")).await;
    health_becomes(&app, ServingStatus::NotServing).await;

    proxy.restore();
    health_becomes(&app, ServingStatus::Serving).await;
    app.validate(&before.access_token)
        .await
        .expect("a new connection, the same session");
}
