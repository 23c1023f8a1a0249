//! gRPC-Web over HTTP/1.1 (as browsers send it), with the CORS allow-list.

use prost::Message;

use crate::helpers::*;
use arogya_auth::proto::{
    RequestOtpRequest, RequestOtpResponse, VerifyOtpRequest, VerifyOtpResponse,
};

const ORIGIN: &str = "http://localhost:5173";

fn http1() -> reqwest::Client {
    reqwest::Client::builder().http1_only().build().unwrap()
}

fn frame(msg: &impl Message) -> Vec<u8> {
    let payload = msg.encode_to_vec();
    let mut v = vec![0u8];
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(&payload);
    v
}

/// Splits a gRPC-Web body into its message payload and its trailer text.
fn unframe(body: &[u8]) -> (Option<Vec<u8>>, String) {
    let (mut msg, mut trailers, mut i) = (None, String::new(), 0);
    while i + 5 <= body.len() {
        let flag = body[i];
        let len = u32::from_be_bytes(body[i + 1..i + 5].try_into().unwrap()) as usize;
        let chunk = &body[i + 5..i + 5 + len];
        if flag & 0x80 != 0 {
            trailers = String::from_utf8(chunk.to_vec()).unwrap();
        } else {
            msg = Some(chunk.to_vec());
        }
        i += 5 + len;
    }
    (msg, trailers)
}

async fn call(app: &TestApp, method: &str, body: Vec<u8>, origin: &str) -> reqwest::Response {
    http1()
        .post(format!("{}/arogya.auth.v1.AuthService/{method}", app.url()))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", origin)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered() {
    let app = TestApp::spawn().await;
    let res = http1()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/arogya.auth.v1.AuthService/RequestOtp", app.url()),
        )
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-grpc-web,x-user-agent,authorization",
        )
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], ORIGIN);
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for name in ["content-type", "x-grpc-web", "authorization"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
}

#[tokio::test]
async fn a_preflight_from_another_origin_gets_no_cors_grant() {
    let app = TestApp::spawn().await;
    let res = http1()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/arogya.auth.v1.AuthService/RequestOtp", app.url()),
        )
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_whole_sign_in_over_grpc_web_on_http1() {
    let app = TestApp::spawn().await;
    let res = call(
        &app,
        "RequestOtp",
        frame(&RequestOtpRequest {
            phone_number: PHONE.into(),
        }),
        ORIGIN,
    )
    .await;
    assert_eq!(res.version(), reqwest::Version::HTTP_11);
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], ORIGIN);
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.contains(name), "{exposed}");
    }
    let (msg, trailers) = unframe(&res.bytes().await.unwrap());
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let sent = RequestOtpResponse::decode(msg.unwrap().as_slice()).unwrap();
    assert_eq!(sent.dev_otp.len(), 6);

    let res = call(
        &app,
        "VerifyOtp",
        frame(&VerifyOtpRequest {
            phone_number: PHONE.into(),
            otp: sent.dev_otp,
        }),
        ORIGIN,
    )
    .await;
    let (msg, _) = unframe(&res.bytes().await.unwrap());
    let signed = VerifyOtpResponse::decode(msg.unwrap().as_slice()).unwrap();
    app.validate(&signed.access_token)
        .await
        .expect("a gRPC-Web session is a session");
}

#[tokio::test]
async fn grpc_web_errors_carry_status_and_rich_details_a_browser_can_read() {
    let app = TestApp::spawn().await;
    let res = call(
        &app,
        "RequestOtp",
        frame(&RequestOtpRequest {
            phone_number: "12345".into(),
        }),
        ORIGIN,
    )
    .await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    let body = res.bytes().await.unwrap();
    let (_, trailers) = unframe(&body);
    let status = h
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_else(|| {
            trailers
                .lines()
                .find_map(|l| l.strip_prefix("grpc-status:"))
                .unwrap()
                .trim()
                .to_owned()
        });
    assert_eq!(status, "3", "INVALID_ARGUMENT");
    let details_present =
        h.contains_key("grpc-status-details-bin") || trailers.contains("grpc-status-details-bin");
    assert!(details_present, "rich details travel to the browser");
}

#[tokio::test]
async fn jwks_is_served_over_plain_http1() {
    let app = TestApp::spawn().await;
    let res = http1()
        .get(format!("{}/.well-known/jwks.json", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/jwk-set+json");
    let jwks: serde_json::Value = res.json().await.unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
}

#[tokio::test]
async fn grpc_web_works_over_http2_too() {
    let app = TestApp::spawn().await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let res = h2
        .post(format!(
            "{}/arogya.auth.v1.AuthService/RequestOtp",
            app.url()
        ))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", ORIGIN)
        .body(frame(&RequestOtpRequest {
            phone_number: PHONE.into(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.headers()["access-control-allow-origin"], ORIGIN);
    let (msg, trailers) = unframe(&res.bytes().await.unwrap());
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    assert_eq!(
        RequestOtpResponse::decode(msg.unwrap().as_slice())
            .unwrap()
            .dev_otp
            .len(),
        6
    );
}

#[tokio::test]
async fn a_configured_origin_list_replaces_the_default() {
    let app =
        TestApp::spawn_with(|c| c.cors.allowed_origins = vec!["https://vault.example.in".into()])
            .await;
    let body = || {
        frame(&RequestOtpRequest {
            phone_number: PHONE.into(),
        })
    };
    let res = call(&app, "RequestOtp", body(), "https://vault.example.in").await;
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://vault.example.in"
    );
    let res = call(&app, "RequestOtp", body(), ORIGIN).await;
    assert!(
        res.headers().get("access-control-allow-origin").is_none(),
        "localhost no longer allowed"
    );
}
