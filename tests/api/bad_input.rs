//! Nasty input: a clear status, the server keeps serving, stored state is untouched.

use tonic::{Code, Request};

use crate::helpers::*;
use arogya_auth::proto::RequestOtpRequest;

#[tokio::test]
async fn invalid_numbers_are_invalid_argument_naming_the_field() {
    let app = TestApp::spawn().await;
    let cases = [
        ("", "enter a mobile number"),
        ("12345", "10 digits"),
        ("+1 415 555 2671", "Indian"),
        ("5876543210", "starts with 6, 7, 8 or 9"),
        ("९८७६५४३२१०", "only digits"),
        ("98765\u{0}43210", "only digits"),
        ("9876543210; DROP TABLE users", "only digits"),
    ];
    for (raw, words) in cases {
        let s = expect_code(app.request_otp(raw).await, Code::InvalidArgument);
        assert!(s.message().contains(words), "{raw:?}: {}", s.message());
        assert_eq!(
            violated_field(&s).as_deref(),
            Some("phone_number"),
            "{raw:?}"
        );
        assert!(
            !s.message().contains(raw) || raw.is_empty(),
            "the input is not echoed: {}",
            s.message()
        );
        expect_code(app.verify_otp(raw, "123456").await, Code::InvalidArgument);
    }
    let huge = "9".repeat(10_000);
    let s = expect_code(app.request_otp(&huge).await, Code::InvalidArgument);
    assert!(s.message().contains("too long"));
}

#[tokio::test]
async fn malformed_codes_are_invalid_argument_and_cost_no_attempt() {
    let app = TestApp::spawn().await;
    let sent = app.request_otp(PHONE).await.unwrap();
    for raw in [
        "",
        "12345",
        "1234567",
        "12 456",
        "١٢٣٤٥٦",
        "12345\u{0}",
        "abcdef",
        &"1".repeat(10_000),
    ] {
        let s = expect_code(app.verify_otp(PHONE, raw).await, Code::InvalidArgument);
        assert_eq!(violated_field(&s).as_deref(), Some("otp"), "{raw:?}");
    }
    // Eight malformed codes did not use up the five attempts.
    app.verify_otp(PHONE, &sent.dev_otp)
        .await
        .expect("the code still works");
}

#[tokio::test]
async fn an_oversized_message_is_refused_and_the_server_keeps_serving() {
    let app = TestApp::spawn().await;
    let sent = app.request_otp(PHONE).await.unwrap();
    let big = "9".repeat(3 * 1024 * 1024);
    let s = app.request_otp(&big).await.unwrap_err();
    assert!(
        matches!(
            s.code(),
            Code::OutOfRange | Code::ResourceExhausted | Code::InvalidArgument
        ),
        "{s:?}"
    );
    assert!(
        s.message().to_lowercase().contains("too large") || s.message().contains("length"),
        "{}",
        s.message()
    );
    app.verify_otp(PHONE, &sent.dev_otp)
        .await
        .expect("state untouched, still serving");
}

#[tokio::test]
async fn huge_metadata_is_refused_and_the_server_keeps_serving() {
    let app = TestApp::spawn().await;
    let sent = app.request_otp(PHONE).await.unwrap();
    let mut req = Request::new(RequestOtpRequest {
        phone_number: "9123456789".into(),
    });
    req.metadata_mut()
        .insert("x-junk", "a".repeat(1024 * 1024).parse().unwrap());
    assert!(
        app.client.clone().request_otp(req).await.is_err(),
        "1 MiB header accepted"
    );
    // A fresh connection still works, and so does the code issued before.
    let fresh = TestApp::connect_client(app.addr).await;
    let mut fresh_app_client = fresh;
    let ok = fresh_app_client
        .verify_otp(arogya_auth::proto::VerifyOtpRequest {
            phone_number: PHONE.into(),
            otp: sent.dev_otp,
        })
        .await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test]
async fn a_huge_token_is_refused_by_size() {
    let app = TestApp::spawn().await;
    let s = expect_code(app.validate(&"a".repeat(5000)).await, Code::InvalidArgument);
    assert_eq!(violated_field(&s).as_deref(), Some("access_token"));
    let s = expect_code(app.refresh(&"a".repeat(5000)).await, Code::InvalidArgument);
    assert_eq!(violated_field(&s).as_deref(), Some("refresh_token"));
    expect_code(
        app.validate_bearer(&"a".repeat(5000)).await,
        Code::InvalidArgument,
    );
}

/// Sends `body` as a raw gRPC message to RequestOtp over HTTP/2 and returns `grpc-status`.
async fn raw_grpc(
    app: &TestApp,
    path: &str,
    body: Vec<u8>,
) -> (u16, Option<String>, Option<String>) {
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let res = client
        .post(format!("{}{path}", app.url()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .send()
        .await
        .unwrap();
    let http = res.status().as_u16();
    let header_status = res
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    let message = res
        .headers()
        .get("grpc-message")
        .map(|v| v.to_str().unwrap().to_owned());
    let _ = res.bytes().await;
    (http, header_status, message)
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

#[tokio::test]
async fn garbage_protobuf_and_wrong_types_get_a_status_not_a_crash() {
    let app = TestApp::spawn().await;
    let sent = app.request_otp(PHONE).await.unwrap();
    let path = "/arogya.auth.v1.AuthService/RequestOtp";
    let bodies: Vec<Vec<u8>> = vec![
        frame(&[0xff, 0xff, 0xff, 0xff, 0xff]), // truncated varint tag
        frame(&[0x08, 0x96, 0x01]),             // field 1 as a varint, not a string
        frame(&[0x0a, 0x05, 0xff, 0xfe, 0x00, 0xc3, 0x28]), // field 1: invalid UTF-8
        frame(&[0x0a, 0x7f]),                   // length past the end
        vec![0, 0, 0, 0],                       // truncated frame header
        vec![1, 0, 0, 0, 3, 1, 2, 3],           // "compressed" without an encoding
    ];
    for body in bodies {
        let (http, status, message) = raw_grpc(&app, path, body.clone()).await;
        assert_eq!(http, 200, "{body:?}");
        let code: i32 = status.as_deref().unwrap_or("0").parse().unwrap();
        assert_ne!(code, 0, "{body:?} accepted");
        assert_ne!(code, Code::Unknown as i32, "{body:?}: {message:?}");
    }
    let (_, status, _) =
        raw_grpc(&app, "/arogya.auth.v1.AuthService/NoSuchMethod", frame(&[])).await;
    assert_eq!(status.as_deref(), Some("12"), "UNIMPLEMENTED");
    app.verify_otp(PHONE, &sent.dev_otp)
        .await
        .expect("still serving, code untouched");
}

#[tokio::test]
async fn the_error_info_reason_names_the_bad_field() {
    let app = TestApp::spawn().await;
    let s = expect_code(app.request_otp("12345").await, Code::InvalidArgument);
    assert_eq!(reason(&s).as_deref(), Some("INVALID_PHONE_NUMBER"));
    let s = expect_code(app.verify_otp(PHONE, "12").await, Code::InvalidArgument);
    assert_eq!(reason(&s).as_deref(), Some("INVALID_OTP"));
}
