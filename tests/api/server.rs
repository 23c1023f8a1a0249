//! The one port: health, reflection (v1 and v1alpha), JWKS, graceful shutdown.

use arogya_auth::proto::VerifyOtpRequest;
use tokio_stream::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::*;

#[tokio::test]
async fn health_reports_serving_overall_and_for_the_service() {
    let app = TestApp::spawn().await;
    let mut health = HealthClient::new(channel(app.addr).await);
    for service in ["", "arogya.auth.v1.AuthService"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap();
        assert_eq!(
            r.into_inner().status(),
            ServingStatus::Serving,
            "{service:?}"
        );
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_every_service() {
    let app = TestApp::spawn().await;
    let want = ["arogya.auth.v1.AuthService", "grpc.health.v1.Health"];
    // google.rpc error details are described too, so CLI tools can decode rich errors.
    let detail_symbols = [
        "google.rpc.BadRequest",
        "google.rpc.RetryInfo",
        "google.rpc.ErrorInfo",
    ];
    {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let mut c = ServerReflectionClient::new(channel(app.addr).await);
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = c
            .server_reflection_info(tokio_stream::iter([req]))
            .await
            .unwrap()
            .into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) =
            stream.next().await.unwrap().unwrap().message_response
        else {
            panic!("not a list")
        };
        let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
        for w in want {
            assert!(names.iter().any(|n| n == w), "v1 lacks {w}: {names:?}");
        }
        for symbol in detail_symbols {
            let req = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
            };
            let mut stream = c
                .server_reflection_info(tokio_stream::iter([req]))
                .await
                .unwrap()
                .into_inner();
            let resp = stream.next().await.unwrap().unwrap().message_response;
            assert!(
                matches!(resp, Some(MessageResponse::FileDescriptorResponse(_))),
                "{symbol}: {resp:?}"
            );
        }
    }
    {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let mut c = ServerReflectionClient::new(channel(app.addr).await);
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "arogya.auth.v1.AuthService".into(),
            )),
        };
        let mut stream = c
            .server_reflection_info(tokio_stream::iter([req]))
            .await
            .unwrap()
            .into_inner();
        match stream.next().await.unwrap().unwrap().message_response {
            Some(MessageResponse::FileDescriptorResponse(f)) => {
                assert!(!f.file_descriptor_proto.is_empty())
            }
            other => panic!("v1alpha: {other:?}"),
        }
    }
}

#[tokio::test]
async fn jwks_verifies_the_access_tokens_we_issue() {
    let app = TestApp::spawn().await;
    let signed = app.sign_in(PHONE).await;
    let jwks = app.jwks().await;
    let kid = jsonwebtoken::decode_header(&signed.access_token)
        .unwrap()
        .kid
        .unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("kid published");
    let key = jsonwebtoken::DecodingKey::from_ed_components(jwk["x"].as_str().unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_audience(&["arogya-vault"]);
    v.set_issuer(&["arogya-auth"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(&signed.access_token, &key, &v)
        .expect("verifies with the JWK");
    assert_eq!(data.claims["sid"], signed.session_id.as_str());
}

#[tokio::test]
async fn shutdown_turns_health_not_serving_and_the_server_stops() {
    let app = TestApp::spawn().await;
    let sent = app.request_otp(PHONE).await.unwrap();
    let mut watch = app.watch_health().await;
    let mut client = app.client.clone();
    let stopping = tokio::spawn(app.stop());
    let next = watch.next().await.unwrap().unwrap();
    assert_eq!(next.status(), ServingStatus::NotServing);
    drop(watch);
    // A call on the already-open connection still completes while draining, or is refused
    // cleanly; never a hang.
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client.verify_otp(VerifyOtpRequest {
            phone_number: PHONE.into(),
            otp: sent.dev_otp,
        }),
    )
    .await
    .expect("no hang");
    tokio::time::timeout(std::time::Duration::from_secs(15), stopping)
        .await
        .expect("stops within the grace period")
        .unwrap();
    // (Not asserting the port is closed: a parallel test may be handed the same port.)
}

#[tokio::test]
async fn the_sign_in_page_is_served_at_the_root_when_enabled_and_grpc_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("index.html"), "<title>Sign in</title>").unwrap();
    std::fs::write(dir.path().join("assets/app.js"), "console.log(1)").unwrap();
    let web = dir.path().to_owned();
    let app = TestApp::spawn_with(move |c| {
        c.web.enabled = Some(true);
        c.web.dir = web;
    })
    .await;
    let page = reqwest::get(app.url() + "/").await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    for rule in [
        "default-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(rule), "{rule}: {csp}");
    }
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["cache-control"], "no-cache");
    assert_eq!(page.text().await.unwrap(), "<title>Sign in</title>");
    let js = reqwest::get(app.url() + "/assets/app.js").await.unwrap();
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_eq!(js.headers()["x-content-type-options"], "nosniff");
    let missing = reqwest::get(app.url() + "/assets/gone.js").await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(
        missing.headers().get("cache-control").is_none(),
        "a miss is never cached for a year"
    );
    // Nothing outside the assets folder leaks through an encoded `..`.
    std::fs::write(dir.path().join("secret.txt"), "no").unwrap();
    for sneaky in ["/assets/..%2fsecret.txt", "/assets/%2e%2e/secret.txt"] {
        let res = reqwest::get(app.url() + sneaky).await.unwrap();
        assert_ne!(res.status(), 200, "{sneaky}");
    }
    let nope = reqwest::get(app.url() + "/nope").await.unwrap().status();
    assert!(nope.is_client_error(), "{nope}");
    // gRPC beside it: real calls work, an unknown method is still UNIMPLEMENTED.
    app.request_otp(PHONE).await.expect("gRPC still served");
    let mut health = HealthClient::new(channel(app.addr).await);
    health
        .check(HealthCheckRequest::default())
        .await
        .expect("health");
    let unknown = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
        .post(app.url() + "/arogya.auth.v1.AuthService/Nope")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.headers()["grpc-status"], "12", "UNIMPLEMENTED");

    // Off: nothing at the root.
    let off = TestApp::spawn_with(|c| c.web.enabled = Some(false)).await;
    let root = reqwest::get(off.url() + "/").await.unwrap().status();
    assert!(root.is_client_error(), "{root}");
}

#[test]
fn the_page_is_on_by_default_in_development_only() {
    let mut cfg = arogya_auth::config::Config::default();
    assert!(cfg.web_enabled());
    cfg.env = arogya_auth::config::Environment::Production;
    assert!(!cfg.web_enabled());
    cfg.web.enabled = Some(true);
    assert!(cfg.web_enabled());
}
