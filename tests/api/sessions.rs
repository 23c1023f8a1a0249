//! ValidateSession, RefreshSession and Logout over the wire.

use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn validate_session_accepts_the_token_in_the_field_or_as_bearer() {
    let app = TestApp::spawn().await;
    let signed = app.sign_in(PHONE).await;
    let user = signed.user.unwrap();
    for v in [
        app.validate(&signed.access_token).await.unwrap(),
        app.validate_bearer(&signed.access_token).await.unwrap(),
    ] {
        assert_eq!(v.user_id, user.id);
        assert_eq!(v.session_id, signed.session_id);
        assert_eq!(v.phone_number, PHONE);
        assert_eq!(v.expires_at, signed.access_token_expires_at);
    }
    let s = expect_code(app.validate("").await, Code::Unauthenticated);
    assert_eq!(reason(&s).as_deref(), Some("TOKEN_MISSING"));
}

#[tokio::test]
async fn the_access_token_carries_the_contract_claims_and_expires_in_about_15_minutes() {
    let app = TestApp::spawn().await;
    let signed = app.sign_in(PHONE).await;
    let header = jsonwebtoken::decode_header(&signed.access_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert!(header.kid.is_some());
    let payload = signed.access_token.split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    for k in ["iss", "aud", "sub", "sid", "iat", "exp", "jti"] {
        assert!(claims.get(k).is_some(), "claim {k} missing: {claims}");
    }
    assert_eq!(claims["sid"], signed.session_id.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert!(
        !claims.to_string().contains("9876543210"),
        "no phone number in the token"
    );

    app.advance(899);
    app.validate(&signed.access_token)
        .await
        .expect("still good at 899 s");
    app.advance(2);
    let s = expect_code(
        app.validate(&signed.access_token).await,
        Code::Unauthenticated,
    );
    assert_eq!(reason(&s).as_deref(), Some("TOKEN_INVALID"));
}

#[tokio::test]
async fn forged_tokens_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let signed = app.sign_in(PHONE).await;
    let parts: Vec<&str> = signed.access_token.split('.').collect();
    use base64::Engine;
    let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let header = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[0])
            .unwrap(),
    )
    .unwrap();
    let forged = [
        format!("{}.{}.", b64(&header.replace("EdDSA", "none")), parts[1]),
        format!(
            "{}.{}.{}",
            b64(&header.replace("EdDSA", "HS256")),
            parts[1],
            parts[2]
        ),
        format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            b64("not a signature at all, not even close......")
        ),
        format!("{}.{}x.{}", parts[0], parts[1], parts[2]),
        "not-a-jwt".to_owned(),
        "a.b.c".to_owned(),
    ];
    for token in forged {
        expect_code(app.validate(&token).await, Code::Unauthenticated);
    }
    // An HS256 token keyed with the public key (algorithm confusion).
    let jwks = app.jwks().await;
    let x = jwks["keys"][0]["x"].as_str().unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = jwks["keys"][0]["kid"].as_str().map(str::to_owned);
    let hs = jsonwebtoken::encode(
        &h,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(x.as_bytes()),
    )
    .unwrap();
    expect_code(app.validate(&hs).await, Code::Unauthenticated);
    app.validate(&signed.access_token)
        .await
        .expect("the real token still works");
}

#[tokio::test]
async fn refresh_rotates_the_token_and_reuse_revokes_the_session() {
    let app = TestApp::spawn().await;
    let signed = app.sign_in(PHONE).await;
    app.advance(600);
    let r1 = app.refresh(&signed.refresh_token).await.unwrap();
    assert_ne!(r1.refresh_token, signed.refresh_token);
    assert_ne!(r1.access_token, signed.access_token);
    assert_eq!(r1.session_id, signed.session_id);
    assert!(
        r1.refresh_token_expires_at.unwrap().seconds
            > signed.refresh_token_expires_at.unwrap().seconds,
        "sliding"
    );
    app.validate(&r1.access_token).await.unwrap();

    let r2 = app.refresh(&r1.refresh_token).await.unwrap();
    // The first token again: theft assumed, the whole session ends.
    let s = expect_code(
        app.refresh(&signed.refresh_token).await,
        Code::Unauthenticated,
    );
    assert_eq!(reason(&s).as_deref(), Some("REFRESH_TOKEN_REUSED"));
    let s = expect_code(app.validate(&r2.access_token).await, Code::Unauthenticated);
    assert_eq!(reason(&s).as_deref(), Some("SESSION_ENDED"));
    expect_code(app.refresh(&r2.refresh_token).await, Code::Unauthenticated);
}

#[tokio::test]
async fn a_garbage_refresh_token_does_not_end_anyones_session() {
    let app = TestApp::spawn().await;
    let signed = app.sign_in(PHONE).await;
    // Same session id, different secret: unknown, not a reuse.
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut raw = engine.decode(&signed.refresh_token).unwrap();
    raw[40] ^= 0xff;
    let s = expect_code(
        app.refresh(&engine.encode(&raw)).await,
        Code::Unauthenticated,
    );
    assert_eq!(reason(&s).as_deref(), Some("TOKEN_INVALID"));
    for bad in ["", "x", &"A".repeat(64), "💥"] {
        expect_code(app.refresh(bad).await, Code::Unauthenticated);
    }
    app.refresh(&signed.refresh_token)
        .await
        .expect("the real token still works");
}

#[tokio::test]
async fn a_session_slides_but_never_passes_its_absolute_cap() {
    let app = TestApp::spawn_with(|c| {
        c.session.ttl_seconds = 3600;
        c.session.absolute_ttl_seconds = 3 * 3600;
    })
    .await;
    let signed = app.sign_in(PHONE).await;
    app.advance(3599);
    let mut token = app
        .refresh(&signed.refresh_token)
        .await
        .expect("refresh inside the sliding window")
        .refresh_token;
    app.advance(3599);
    token = app.refresh(&token).await.expect("slid").refresh_token;
    app.advance(3000);
    let last = app.refresh(&token).await.expect("still inside the cap");
    let started = signed.access_token_expires_at.unwrap().seconds - 900;
    assert_eq!(
        last.refresh_token_expires_at.unwrap().seconds,
        started + 3 * 3600,
        "capped"
    );
    app.advance(3 * 3600);
    expect_code(
        app.refresh(&last.refresh_token).await,
        Code::Unauthenticated,
    );
    expect_code(
        app.validate(&last.access_token).await,
        Code::Unauthenticated,
    );
}

#[tokio::test]
async fn an_idle_session_expires_after_its_sliding_lifetime() {
    let app = TestApp::spawn_with(|c| c.session.ttl_seconds = 3600).await;
    let signed = app.sign_in(PHONE).await;
    app.advance(3600);
    expect_code(
        app.refresh(&signed.refresh_token).await,
        Code::Unauthenticated,
    );
}

#[tokio::test]
async fn logout_by_refresh_token_ends_only_that_session() {
    let app = TestApp::spawn().await;
    let a = app.sign_in(PHONE).await;
    app.advance(61);
    let b = app.sign_in(PHONE).await;
    app.logout(&a.refresh_token, false).await.unwrap();
    expect_code(app.validate(&a.access_token).await, Code::Unauthenticated);
    expect_code(app.refresh(&a.refresh_token).await, Code::Unauthenticated);
    app.validate(&b.access_token)
        .await
        .expect("the other device stays signed in");
    expect_code(
        app.logout(&a.refresh_token, false).await,
        Code::Unauthenticated,
    );
}

#[tokio::test]
async fn logout_by_bearer_with_all_sessions_ends_every_session_of_the_user() {
    let app = TestApp::spawn().await;
    let a = app.sign_in(PHONE).await;
    app.advance(61);
    let b = app.sign_in(PHONE).await;
    app.advance(61);
    let other = app.sign_in("9123456789").await;
    app.logout_bearer(&b.access_token, true).await.unwrap();
    for t in [&a.access_token, &b.access_token] {
        expect_code(app.validate(t).await, Code::Unauthenticated);
    }
    expect_code(app.refresh(&a.refresh_token).await, Code::Unauthenticated);
    app.validate(&other.access_token)
        .await
        .expect("another user is untouched");
}

#[tokio::test]
async fn logout_needs_a_token() {
    let app = TestApp::spawn().await;
    let s = expect_code(app.logout("", false).await, Code::Unauthenticated);
    assert_eq!(reason(&s).as_deref(), Some("TOKEN_MISSING"));
    expect_code(
        app.logout_bearer("not.a.jwt", false).await,
        Code::Unauthenticated,
    );
    expect_code(app.logout("garbage", true).await, Code::Unauthenticated);
}

#[tokio::test]
async fn an_ended_sessions_access_token_cannot_log_the_user_out_everywhere() {
    let app = TestApp::spawn().await;
    let stolen = app.sign_in(PHONE).await;
    app.advance(61);
    let owner = app.sign_in(PHONE).await;
    // The stolen session is ended (its refresh token reused); its access token still verifies.
    let rotated = app.refresh(&stolen.refresh_token).await.unwrap();
    expect_code(
        app.refresh(&stolen.refresh_token).await,
        Code::Unauthenticated,
    );
    let s = expect_code(
        app.logout_bearer(&rotated.access_token, true).await,
        Code::Unauthenticated,
    );
    assert_eq!(reason(&s).as_deref(), Some("SESSION_ENDED"));
    app.validate(&owner.access_token)
        .await
        .expect("the owner's other session lives");
    // Logging out just that ended session is a no-op that succeeds.
    app.logout_bearer(&rotated.access_token, false)
        .await
        .expect("idempotent");
}

#[tokio::test]
async fn a_rotated_away_refresh_token_cannot_log_the_user_out_everywhere() {
    let app = TestApp::spawn().await;
    let stolen = app.sign_in(PHONE).await;
    app.advance(61);
    let other_device = app.sign_in(PHONE).await;
    // The owner refreshes; a thief holds the old refresh token and tries "log out everywhere".
    let refreshed = app.refresh(&stolen.refresh_token).await.unwrap();
    let s = expect_code(
        app.logout(&stolen.refresh_token, true).await,
        Code::Unauthenticated,
    );
    assert_eq!(reason(&s).as_deref(), Some("REFRESH_TOKEN_REUSED"));
    app.validate(&other_device.access_token)
        .await
        .expect("the user's other session lives");
    // As with RefreshSession, the reuse ends the session the old token belonged to.
    expect_code(
        app.refresh(&refreshed.refresh_token).await,
        Code::Unauthenticated,
    );
    expect_code(
        app.validate(&refreshed.access_token).await,
        Code::Unauthenticated,
    );
    // The current token of a live session still logs out everywhere.
    app.logout(&other_device.refresh_token, true)
        .await
        .expect("current token");
    expect_code(
        app.validate(&other_device.access_token).await,
        Code::Unauthenticated,
    );
}

#[tokio::test]
async fn authorization_metadata_that_is_not_a_bearer_token_is_token_invalid_with_error_info() {
    let app = TestApp::spawn().await;
    for header in ["Basic dXNlcjpwYXNz", "Bearer", "bearer", "Token abc"] {
        let mut req = tonic::Request::new(arogya_auth::proto::ValidateSessionRequest::default());
        req.metadata_mut()
            .insert("authorization", header.parse().unwrap());
        let s = expect_code(
            app.client.clone().validate_session(req).await,
            Code::Unauthenticated,
        );
        assert_eq!(reason(&s).as_deref(), Some("TOKEN_INVALID"), "{header}");
        assert!(
            s.message().contains("Bearer <access token>"),
            "{}",
            s.message()
        );
        let mut req = tonic::Request::new(arogya_auth::proto::LogoutRequest::default());
        req.metadata_mut()
            .insert("authorization", header.parse().unwrap());
        let s = expect_code(app.client.clone().logout(req).await, Code::Unauthenticated);
        assert_eq!(reason(&s).as_deref(), Some("TOKEN_INVALID"), "{header}");
    }
}
