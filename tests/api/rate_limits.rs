//! The rate limits of DESIGN.md, each refused with RESOURCE_EXHAUSTED, RetryInfo and an
//! ErrorInfo naming the limit.

use std::collections::HashMap;

use arogya_auth::config::LimitRule;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

use crate::helpers::*;
use arogya_auth::proto::RequestOtpRequest;

fn limit_name(s: &Status) -> Option<String> {
    s.get_error_details()
        .error_info()
        .and_then(|i| i.metadata.get("limit").cloned())
}

/// Asserts a rate-limit refusal naming `name`; returns the RetryInfo wait in seconds.
#[track_caller]
fn check<T: std::fmt::Debug>(r: Result<T, Status>, name: &str) -> u64 {
    let s = expect_code(r, Code::ResourceExhausted);
    assert_eq!(reason(&s).as_deref(), Some("RATE_LIMITED"));
    assert_eq!(limit_name(&s).as_deref(), Some(name), "{}", s.message());
    retry_after(&s).expect("RetryInfo")
}

#[tokio::test]
async fn the_fourth_code_request_from_one_ip_in_15_minutes_is_refused() {
    let app = TestApp::spawn_with(|c| c.rate_limit.enabled = true).await;
    for p in ["9876500001", "9876500002", "9876500003"] {
        app.request_otp(p).await.unwrap();
    }
    app.advance(60);
    let wait = check(app.request_otp("9876500004").await, "ip_otp_requests");
    assert_eq!(
        wait,
        15 * 60 - 60,
        "until the first request leaves the window"
    );
    app.advance(wait - 1);
    check(app.resend_otp("9876500001").await, "ip_otp_requests");
    app.advance(1);
    app.request_otp("9876500004").await.expect("one slot freed");
}

#[tokio::test]
async fn ten_verifies_per_ip_then_refused() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.phone_wrong_guesses = LimitRule::new(1000, 60);
        c.otp.max_attempts = 100;
    })
    .await;
    let sent = app.request_otp(PHONE).await.unwrap();
    for _ in 0..10 {
        expect_code(
            app.verify_otp(PHONE, &wrong(&sent.dev_otp)).await,
            Code::Unauthenticated,
        );
    }
    check(app.verify_otp(PHONE, &sent.dev_otp).await, "ip_verifies");
}

#[tokio::test]
async fn five_codes_per_number_per_hour() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.ip_otp_requests = LimitRule::new(1000, 900);
    })
    .await;
    for _ in 0..5 {
        app.request_otp(PHONE).await.unwrap();
        app.advance(60);
    }
    let wait = check(app.resend_otp(PHONE).await, "phone_sends");
    assert_eq!(wait, 3600 - 5 * 60);
    app.request_otp("9123456789")
        .await
        .expect("another number is not affected");
}

#[tokio::test]
async fn wrong_guesses_per_number_count_across_resends() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.ip_otp_requests = LimitRule::new(1000, 900);
        c.rate_limit.ip_verifies = LimitRule::new(1000, 900);
        c.rate_limit.phone_wrong_guesses = LimitRule::new(6, 24 * 3600);
    })
    .await;
    for _ in 0..2 {
        let sent = app.request_otp(PHONE).await.unwrap();
        for _ in 0..3 {
            expect_code(
                app.verify_otp(PHONE, &wrong(&sent.dev_otp)).await,
                Code::Unauthenticated,
            );
        }
        app.advance(60);
    }
    let sent = app.request_otp(PHONE).await.unwrap();
    check(
        app.verify_otp(PHONE, &sent.dev_otp).await,
        "phone_wrong_guesses",
    );
}

#[tokio::test]
async fn the_global_sms_budget_caps_every_number_together() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.ip_otp_requests = LimitRule::new(1000, 900);
        c.rate_limit.sms_global = LimitRule::new(4, 60);
    })
    .await;
    for i in 0..4 {
        app.request_otp(&format!("987650000{i}")).await.unwrap();
    }
    check(app.request_otp("9876500009").await, "sms_global");
    app.advance(60);
    app.request_otp("9876500009")
        .await
        .expect("the next minute has budget");
}

#[tokio::test]
async fn a_cooldown_refusal_spends_no_sms_budget() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.ip_otp_requests = LimitRule::new(1000, 900);
        c.rate_limit.sms_global = LimitRule::new(2, 60);
    })
    .await;
    app.request_otp(PHONE).await.unwrap();
    for _ in 0..5 {
        expect_code(app.request_otp(PHONE).await, Code::ResourceExhausted);
    }
    app.request_otp("9123456789")
        .await
        .expect("budget left for one more");
}

#[tokio::test]
async fn rate_limits_can_be_turned_off() {
    let app = TestApp::spawn().await; // tests default to AROGYA_RATE_LIMIT__ENABLED=false
    for i in 0..20 {
        app.request_otp(&format!("98765000{i:02}")).await.unwrap();
    }
}

async fn request_from(app: &TestApp, forwarded_for: &str, phone: &str) -> Result<(), Status> {
    let mut req = Request::new(RequestOtpRequest {
        phone_number: phone.into(),
    });
    req.metadata_mut()
        .insert("x-forwarded-for", forwarded_for.parse().unwrap());
    app.client.clone().request_otp(req).await.map(|_| ())
}

#[tokio::test]
async fn x_forwarded_for_counts_only_from_a_trusted_proxy() {
    // Untrusted peer: the header is ignored, so every "client" shares the socket's budget.
    let app = TestApp::spawn_with(|c| c.rate_limit.enabled = true).await;
    for i in 0..3 {
        request_from(&app, &format!("203.0.113.{i}"), &format!("987650000{i}"))
            .await
            .unwrap();
    }
    let s = request_from(&app, "203.0.113.99", "9876500099")
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted);

    // Trusted loopback proxy: each forwarded client has its own budget.
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.enabled = true;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap(), "::1/128".parse().unwrap()];
    })
    .await;
    let mut per_client = HashMap::new();
    for i in 0..16u32 {
        let client = format!("198.51.100.{}", i % 4);
        let r = request_from(&app, &format!("6.6.6.6, {client}"), &format!("98765{i:05}")).await;
        *per_client.entry(client).or_insert(0) += r.is_ok() as u32;
    }
    assert_eq!(
        per_client.values().copied().collect::<Vec<_>>(),
        vec![3, 3, 3, 3],
        "{per_client:?}"
    );
}
