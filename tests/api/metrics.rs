//! `/metrics` on the admin listener: scraped before and after real calls.

use tonic::Code;

use crate::helpers::*;

fn handled(method: &str, code: &str) -> String {
    format!(
        "grpc_server_handled_total{{grpc_type=\"unary\",grpc_service=\"arogya.auth.v1.AuthService\",grpc_method=\"{method}\",grpc_code=\"{code}\"}}"
    )
}

#[tokio::test]
async fn rpc_counters_and_latency_move_with_real_calls() {
    let app = TestApp::spawn().await;
    let before = app.scrape_metrics().await;
    app.sign_in(PHONE).await;
    for _ in 0..3 {
        let s = app.validate("not-a-token").await.unwrap_err();
        assert_eq!(s.code(), Code::Unauthenticated);
    }
    let s = app.request_otp("12").await.unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    let after = app.scrape_metrics().await;

    for (series, moved) in [
        (handled("RequestOtp", "OK"), 1.0),
        (handled("VerifyOtp", "OK"), 1.0),
        (handled("ValidateSession", "Unauthenticated"), 3.0),
        (handled("RequestOtp", "InvalidArgument"), 1.0),
        (
            "grpc_server_started_total{grpc_type=\"unary\",grpc_service=\"arogya.auth.v1.AuthService\",grpc_method=\"ValidateSession\"}".into(),
            3.0,
        ),
        (
            "grpc_server_handling_seconds_count{grpc_type=\"unary\",grpc_service=\"arogya.auth.v1.AuthService\",grpc_method=\"ValidateSession\"}".into(),
            3.0,
        ),
    ] {
        assert_eq!(
            sample(&after, &series) - sample(&before, &series),
            moved,
            "{series}\n{after}"
        );
    }
    assert!(after.contains("# TYPE grpc_server_handling_seconds histogram"));
    assert!(after.contains("grpc_server_handling_seconds_bucket{"));
}

#[tokio::test]
async fn metrics_are_not_served_on_the_public_port() {
    let app = TestApp::spawn().await;
    let res = reqwest::get(format!("http://{}/metrics", app.addr))
        .await
        .unwrap();
    assert!(!res.status().is_success(), "{}", res.status());
    assert!(
        !res.text()
            .await
            .unwrap()
            .contains("grpc_server_handled_total")
    );
}

fn domain(series: &str) -> String {
    format!("arogya_auth_{series}")
}

#[tokio::test]
async fn domain_counters_move_with_each_sign_in_event() {
    let app = TestApp::spawn().await;
    let before = app.scrape_metrics().await;
    // Fixed label values exist (at 0) before their first event; readiness is a gauge.
    for series in [
        "arogya_auth_rate_limited_total{limit=\"sms_global\"} 0",
        "arogya_auth_otp_failed_total{reason=\"locked_out\"} 0",
        "arogya_auth_sms_sends_total{provider=\"log\",outcome=\"failed\"} 0",
    ] {
        assert!(before.lines().any(|l| l == series), "{series}\n{before}");
    }
    // (Its value follows health, which a busy machine can hold at NOT_SERVING for a moment
    // after start; tests/api/faults.rs checks both values through an outage.)
    assert!(
        before.lines().any(|l| l.starts_with("arogya_auth_ready ")),
        "{before}"
    );

    // A sign-in: a code sent and accepted by the log provider, verified, a new session.
    let signed = app.sign_in(PHONE).await;
    // The resend cooldown refuses a second request at once.
    expect_code(app.request_otp(PHONE).await, Code::ResourceExhausted);
    // A refresh, then the rotated-away token again: reuse detected, session ended.
    let refreshed = app.refresh(&signed.refresh_token).await.unwrap();
    expect_code(
        app.refresh(&signed.refresh_token).await,
        Code::Unauthenticated,
    );
    expect_code(
        app.refresh(&refreshed.refresh_token).await,
        Code::Unauthenticated,
    );
    // Two more sign-ins of the same person (an existing account), one logout of each scope.
    app.advance(61);
    let second = app.sign_in(PHONE).await;
    app.logout(&second.refresh_token, false).await.unwrap();
    app.advance(61);
    let third = app.sign_in(PHONE).await;
    app.logout(&third.refresh_token, true).await.unwrap();

    // Wrong guesses until the code locks, then one more while locked; a number with no code.
    let other = "+919812345678";
    let sent = app.request_otp(other).await.unwrap();
    for attempt in 1..=sent.max_attempts {
        let last = attempt == sent.max_attempts;
        expect_code(
            app.verify_otp(other, &wrong(&sent.dev_otp)).await,
            if last {
                Code::ResourceExhausted
            } else {
                Code::Unauthenticated
            },
        );
    }
    expect_code(
        app.verify_otp(other, &sent.dev_otp).await,
        Code::ResourceExhausted,
    );
    expect_code(
        app.verify_otp("+919800000001", "123456").await,
        Code::Unauthenticated,
    );
    let after = app.scrape_metrics().await;

    let attempts = f64::from(sent.max_attempts);
    for (series, moved) in [
        (domain("otp_sent_total{kind=\"request\"}"), 4.0),
        (
            domain("sms_sends_total{provider=\"log\",outcome=\"accepted\"}"),
            4.0,
        ),
        (domain("otp_verified_total{new_user=\"true\"}"), 1.0),
        (domain("otp_verified_total{new_user=\"false\"}"), 2.0),
        (domain("otp_failed_total{reason=\"wrong_code\"}"), attempts),
        (domain("otp_locked_out_total"), 1.0),
        (domain("otp_failed_total{reason=\"locked_out\"}"), 1.0),
        (domain("otp_failed_total{reason=\"no_code\"}"), 1.0),
        (
            domain("rate_limited_total{limit=\"otp_resend_cooldown\"}"),
            1.0,
        ),
        (domain("sessions_created_total"), 3.0),
        (domain("sessions_refreshed_total"), 1.0),
        (domain("sessions_reuse_detected_total"), 1.0),
        (domain("sessions_revoked_total{scope=\"session\"}"), 1.0),
        (domain("sessions_revoked_total{scope=\"all\"}"), 1.0),
        (
            domain("store_seconds_count{store=\"database\",op=\"find_or_create\"}"),
            3.0,
        ),
    ]
    .into_iter()
    .chain(
        // Redis calls are timed; the in-memory stores of the embedded default are not.
        [
            ("otp", "issue", 4.0),
            ("session", "create", 3.0),
            ("session", "rotate", 3.0),
        ]
        .map(|(store, op, n)| {
            let series = domain(&format!(
                "store_seconds_count{{store=\"{store}\",op=\"{op}\"}}"
            ));
            (series, if production_backend() { n } else { 0.0 })
        }),
    ) {
        assert_eq!(
            sample(&after, &series) - sample(&before, &series),
            moved,
            "{series}\n{after}"
        );
    }
    assert!(after.contains("# TYPE arogya_auth_store_seconds histogram"));
    assert_eq!(
        sample(
            &after,
            &domain("store_errors_total{store=\"otp\",op=\"issue\"}")
        ),
        0.0
    );
}

#[tokio::test]
async fn rate_limit_refusals_are_counted_by_limit() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.ip_verifies.limit = 2;
    })
    .await;
    for _ in 0..2 {
        expect_code(app.verify_otp(PHONE, "123456").await, Code::Unauthenticated);
    }
    for _ in 0..3 {
        expect_code(
            app.verify_otp(PHONE, "123456").await,
            Code::ResourceExhausted,
        );
    }
    let text = app.scrape_metrics().await;
    assert_eq!(
        sample(&text, &domain("rate_limited_total{limit=\"ip_verifies\"}")),
        3.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, &domain("otp_failed_total{reason=\"no_code\"}")),
        2.0
    );
}
