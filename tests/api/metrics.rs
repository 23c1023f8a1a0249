//! `/metrics` on the admin listener: scraped before and after real calls.

use tonic::Code;

use crate::helpers::*;

async fn scrape(app: &TestApp) -> String {
    let res = reqwest::get(format!("http://{}/metrics", app.admin_addr))
        .await
        .expect("admin listener answers");
    assert!(res.status().is_success());
    res.text().await.unwrap()
}

/// The value of one sample, 0 when absent (a counter not yet touched).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.split(' ').next().unwrap_or(v).parse().expect("a number"))
        .unwrap_or(0.0)
}

fn handled(method: &str, code: &str) -> String {
    format!(
        "grpc_server_handled_total{{grpc_type=\"unary\",grpc_service=\"arogya.auth.v1.AuthService\",grpc_method=\"{method}\",grpc_code=\"{code}\"}}"
    )
}

#[tokio::test]
async fn rpc_counters_and_latency_move_with_real_calls() {
    let app = TestApp::spawn().await;
    let before = scrape(&app).await;
    app.sign_in(PHONE).await;
    for _ in 0..3 {
        let s = app.validate("not-a-token").await.unwrap_err();
        assert_eq!(s.code(), Code::Unauthenticated);
    }
    let s = app.request_otp("12").await.unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    let after = scrape(&app).await;

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
