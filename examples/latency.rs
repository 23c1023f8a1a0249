//! Rough per-RPC latency of one sign-in, unloaded, over loopback: starts the embedded default
//! in-process and times `N` sequential calls of each RPC. Not the load generator of issue 6; a
//! quick figure for the README. Run: `cargo run --release --example latency [N]`.

use std::time::{Duration, Instant};

use arogya_auth::app::App;
use arogya_auth::config::Config;
use arogya_auth::proto::auth_service_client::AuthServiceClient;
use arogya_auth::proto::*;

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e6
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = Config::for_tests(dir.path().join("users.db"));
    cfg.otp.resend_cooldown_seconds = 0;
    let app = App::build(cfg).await.expect("app");
    let addr = app.local_addr();
    tokio::spawn(app.run_until(std::future::pending()));
    let mut c = AuthServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");

    let mut t: [Vec<Duration>; 5] = Default::default();
    for i in 0..n {
        let phone = format!("98{:08}", i);
        let s = Instant::now();
        let sent = c
            .request_otp(RequestOtpRequest {
                phone_number: phone.clone(),
            })
            .await
            .expect("request")
            .into_inner();
        t[0].push(s.elapsed());
        let s = Instant::now();
        let v = c
            .verify_otp(VerifyOtpRequest {
                phone_number: phone,
                otp: sent.dev_otp,
            })
            .await
            .expect("verify")
            .into_inner();
        t[1].push(s.elapsed());
        let s = Instant::now();
        c.validate_session(ValidateSessionRequest {
            access_token: v.access_token.clone(),
        })
        .await
        .expect("validate");
        t[2].push(s.elapsed());
        let s = Instant::now();
        let r = c
            .refresh_session(RefreshSessionRequest {
                refresh_token: v.refresh_token,
            })
            .await
            .expect("refresh")
            .into_inner();
        t[3].push(s.elapsed());
        let s = Instant::now();
        c.logout(LogoutRequest {
            refresh_token: r.refresh_token,
            all_sessions: false,
        })
        .await
        .expect("logout");
        t[4].push(s.elapsed());
    }
    println!("{n} sequential sign-ins, new user each (first sign-in writes a SQLite row)");
    println!("| RPC | p50 µs | p99 µs |\n|---|---:|---:|");
    for (name, v) in [
        "RequestOtp",
        "VerifyOtp",
        "ValidateSession",
        "RefreshSession",
        "Logout",
    ]
    .iter()
    .zip(t.iter_mut())
    {
        println!("| {name} | {:.0} | {:.0} |", pct(v, 0.5), pct(v, 0.99));
    }
}
