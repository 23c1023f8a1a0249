//! Many parallel calls on the same code, token or limit, over real connections.

use futures::future::join_all;
use tonic::Code;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_parallel_wrong_guesses_judge_at_most_five_and_the_right_code_fails_after() {
    let app = TestApp::spawn().await;
    let sent = app.request_otp(PHONE).await.unwrap();
    let bad = wrong(&sent.dev_otp);
    let results = join_all((0..60).map(|_| app.verify_otp(PHONE, &bad))).await;
    let judged_wrong = results
        .iter()
        .filter(|r| matches!(r, Err(s) if s.code() == Code::Unauthenticated))
        .count();
    let exhausted = results
        .iter()
        .filter(|r| matches!(r, Err(s) if s.code() == Code::ResourceExhausted))
        .count();
    assert_eq!(judged_wrong + exhausted, 60, "every call refused");
    assert_eq!(
        judged_wrong, 4,
        "four answered 'wrong', the fifth used the code up"
    );
    expect_code(
        app.verify_otp(PHONE, &sent.dev_otp).await,
        Code::ResourceExhausted,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_right_guesses_make_exactly_one_session_and_one_user() {
    let app = TestApp::spawn().await;
    // Many rounds: more parallel guesses than attempts must never destroy the code before a
    // right guess that was already counted consumes it.
    for round in 0..15 {
        let phone = format!("98765000{round:02}");
        let sent = app.request_otp(&phone).await.unwrap();
        let results = join_all((0..20).map(|_| app.verify_otp(&phone, &sent.dev_otp))).await;
        let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(ok.len(), 1, "round {round}: {results:?}");
        assert!(ok[0].new_user);
    }
    assert_eq!(app.deps.users.count().await.unwrap(), 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_guesses_never_overshoot_the_per_number_budget() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.ip_verifies = arogya_auth::config::LimitRule::new(1000, 900);
        c.rate_limit.phone_wrong_guesses = arogya_auth::config::LimitRule::new(3, 86400);
        c.otp.max_attempts = 100;
    })
    .await;
    let sent = app.request_otp(PHONE).await.unwrap();
    let bad = wrong(&sent.dev_otp);
    let results = join_all((0..30).map(|_| app.verify_otp(PHONE, &bad))).await;
    let judged = results
        .iter()
        .filter(|r| matches!(r, Err(s) if s.code() == Code::Unauthenticated))
        .count();
    assert_eq!(judged, 3, "{results:?}");
    let s = expect_code(
        app.verify_otp(PHONE, &sent.dev_otp).await,
        Code::ResourceExhausted,
    );
    assert_eq!(reason(&s).as_deref(), Some("RATE_LIMITED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_that_lose_the_cooldown_race_spend_no_sms_budget() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.ip_otp_requests = arogya_auth::config::LimitRule::new(1000, 900);
    })
    .await;
    let results = join_all((0..30).map(|_| app.request_otp(PHONE))).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    // Five codes per number per hour: the 29 losers took none of them.
    for _ in 0..4 {
        app.advance(60);
        app.request_otp(PHONE).await.expect("budget left");
    }
    app.advance(60);
    let s = expect_code(app.request_otp(PHONE).await, Code::ResourceExhausted);
    assert_eq!(reason(&s).as_deref(), Some("RATE_LIMITED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_parallel_refreshes_with_one_token_exactly_one_wins() {
    let app = TestApp::spawn().await;
    let signed = app.sign_in(PHONE).await;
    let results = join_all((0..20).map(|_| app.refresh(&signed.refresh_token))).await;
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1);
    // The losers presented a token that had just been rotated: the session is revoked.
    expect_code(
        app.validate(&winners[0].access_token).await,
        Code::Unauthenticated,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_parallel_refreshes_with_one_token_exactly_one_wins() {
    let app = TestApp::spawn().await;
    let signed = app.sign_in(PHONE).await;
    let (a, b) = tokio::join!(
        app.refresh(&signed.refresh_token),
        app.refresh(&signed.refresh_token)
    );
    assert_eq!(a.is_ok() as u8 + b.is_ok() as u8, 1, "{a:?} {b:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_requests_for_one_number_send_one_code() {
    let app = TestApp::spawn().await;
    let results = join_all((0..30).map(|_| app.request_otp(PHONE))).await;
    let sent: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(sent.len(), 1);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|s| s.code() == Code::ResourceExhausted)
    );
    app.verify_otp(PHONE, &sent[0].dev_otp)
        .await
        .expect("the one code sent works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_requests_from_one_ip_never_beat_the_ip_limit() {
    let app = TestApp::spawn_with(|c| c.rate_limit.enabled = true).await;
    let phones: Vec<String> = (0..40).map(|i| format!("98765{:05}", i)).collect();
    let results = join_all(phones.iter().map(|p| app.request_otp(p))).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        3,
        "3 per IP per 15 min"
    );
}
