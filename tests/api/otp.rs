//! RequestOtp, ResendOtp and VerifyOtp: the code's rules, end to end.

use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn a_whole_sign_in_creates_the_user_then_finds_it_in_any_form() {
    let app = TestApp::spawn().await;
    let sent = app.request_otp("+91 98765-43210").await.unwrap();
    assert_eq!(
        (
            sent.expires_in_seconds,
            sent.resend_after_seconds,
            sent.max_attempts
        ),
        (600, 60, 5)
    );
    assert!(sent.dev_otp.bytes().all(|b| b.is_ascii_digit()) && sent.dev_otp.len() == 6);

    let first = app.verify_otp("9876543210", &sent.dev_otp).await.unwrap();
    assert!(first.new_user);
    let user = first.user.clone().unwrap();
    assert_eq!(user.phone_number, PHONE);
    assert!(uuid::Uuid::parse_str(&user.id).is_ok());
    assert!(!first.access_token.is_empty() && !first.refresh_token.is_empty());
    assert!(first.access_token_expires_at.unwrap().seconds > 0);

    app.advance(61);
    for form in ["09876543210", "+919876543210", "+91 98765 43210"] {
        let sent = app.request_otp(form).await.unwrap();
        let again = app.verify_otp(form, &sent.dev_otp).await.unwrap();
        assert!(!again.new_user, "{form}");
        assert_eq!(again.user.unwrap().id, user.id, "{form}");
        app.advance(61);
    }
    assert_eq!(app.deps.users.count().await.unwrap(), 1);
}

#[tokio::test]
async fn wrong_expired_and_missing_codes_give_the_same_answer() {
    let app = TestApp::spawn().await;
    let missing = expect_code(app.verify_otp(PHONE, "123456").await, Code::Unauthenticated);

    let sent = app.request_otp(PHONE).await.unwrap();
    let wrong_one = expect_code(
        app.verify_otp(PHONE, &wrong(&sent.dev_otp)).await,
        Code::Unauthenticated,
    );

    app.advance(600);
    let expired = expect_code(
        app.verify_otp(PHONE, &sent.dev_otp).await,
        Code::Unauthenticated,
    );

    assert_eq!(missing.message(), wrong_one.message());
    assert_eq!(missing.message(), expired.message());
    assert_eq!(reason(&missing), reason(&expired));
    assert_eq!(reason(&missing).as_deref(), Some("OTP_INVALID"));
}

#[tokio::test]
async fn a_code_is_good_until_its_last_second_only() {
    let app = TestApp::spawn().await;
    let sent = app.request_otp(PHONE).await.unwrap();
    app.advance(599);
    app.verify_otp(PHONE, &sent.dev_otp)
        .await
        .expect("valid at 599 s");

    app.advance(61);
    let sent = app.request_otp(PHONE).await.unwrap();
    app.advance(600);
    expect_code(
        app.verify_otp(PHONE, &sent.dev_otp).await,
        Code::Unauthenticated,
    );
}

#[tokio::test]
async fn a_used_code_never_works_again() {
    let app = TestApp::spawn().await;
    let sent = app.request_otp(PHONE).await.unwrap();
    app.verify_otp(PHONE, &sent.dev_otp).await.unwrap();
    expect_code(
        app.verify_otp(PHONE, &sent.dev_otp).await,
        Code::Unauthenticated,
    );
}

#[tokio::test]
async fn a_resend_kills_the_old_code_and_obeys_the_cooldown() {
    let app = TestApp::spawn().await;
    let first = app.request_otp(PHONE).await.unwrap();
    let refused = expect_code(app.resend_otp(PHONE).await, Code::ResourceExhausted);
    assert_eq!(reason(&refused).as_deref(), Some("OTP_RESEND_COOLDOWN"));

    app.advance(60);
    let second = app.resend_otp(PHONE).await.unwrap();
    assert_eq!(second.max_attempts, 5);
    if first.dev_otp != second.dev_otp {
        expect_code(
            app.verify_otp(PHONE, &first.dev_otp).await,
            Code::Unauthenticated,
        );
    }
    app.verify_otp(PHONE, &second.dev_otp)
        .await
        .expect("the new code works");
}

#[tokio::test]
async fn the_cooldown_says_how_long_to_wait_in_retry_info() {
    let app = TestApp::spawn().await;
    app.request_otp(PHONE).await.unwrap();
    app.advance(15);
    let status = expect_code(app.request_otp(PHONE).await, Code::ResourceExhausted);
    assert_eq!(retry_after(&status), Some(45));
    assert!(status.message().contains("45"), "{}", status.message());
    app.advance(45);
    app.request_otp(PHONE).await.expect("cooldown over");
}

#[tokio::test]
async fn five_wrong_codes_destroy_the_code_until_a_new_one_is_requested() {
    let app = TestApp::spawn().await;
    let sent = app.request_otp(PHONE).await.unwrap();
    let bad = wrong(&sent.dev_otp);
    for n in 1..=4 {
        let s = expect_code(app.verify_otp(PHONE, &bad).await, Code::Unauthenticated);
        assert_eq!(reason(&s).as_deref(), Some("OTP_INVALID"), "attempt {n}");
    }
    let fifth = expect_code(app.verify_otp(PHONE, &bad).await, Code::ResourceExhausted);
    assert!(
        fifth.message().contains("request a new code"),
        "{}",
        fifth.message()
    );
    assert_eq!(reason(&fifth).as_deref(), Some("OTP_ATTEMPTS_EXHAUSTED"));

    // Even the right code is refused now, with the same advice.
    let s = expect_code(
        app.verify_otp(PHONE, &sent.dev_otp).await,
        Code::ResourceExhausted,
    );
    assert!(s.message().contains("request a new code"));

    app.advance(60);
    let fresh = app.request_otp(PHONE).await.unwrap();
    app.verify_otp(PHONE, &fresh.dev_otp)
        .await
        .expect("a new code lifts the lock-out");
}

#[tokio::test]
async fn the_attempt_limit_is_configurable() {
    let app = TestApp::spawn_with(|c| c.otp.max_attempts = 2).await;
    let sent = app.request_otp(PHONE).await.unwrap();
    assert_eq!(sent.max_attempts, 2);
    expect_code(
        app.verify_otp(PHONE, &wrong(&sent.dev_otp)).await,
        Code::Unauthenticated,
    );
    expect_code(
        app.verify_otp(PHONE, &wrong(&sent.dev_otp)).await,
        Code::ResourceExhausted,
    );
    expect_code(
        app.verify_otp(PHONE, &sent.dev_otp).await,
        Code::ResourceExhausted,
    );
}

#[tokio::test]
async fn request_otp_answers_alike_for_known_and_unknown_numbers_and_never_reads_users() {
    let app = TestApp::spawn().await;
    app.sign_in("9876543210").await;
    app.advance(61);

    // Remove the users table: if RequestOtp looked a number up, it would now fail.
    use sea_orm::ConnectionTrait;
    app.deps
        .users
        .connection()
        .execute_unprepared("DROP TABLE users")
        .await
        .unwrap();

    let known = app.request_otp("9876543210").await.expect("known number");
    let unknown = app.request_otp("9123456789").await.expect("unknown number");
    assert_eq!(
        (
            known.expires_in_seconds,
            known.resend_after_seconds,
            known.max_attempts,
            known.dev_otp.len()
        ),
        (
            unknown.expires_in_seconds,
            unknown.resend_after_seconds,
            unknown.max_attempts,
            unknown.dev_otp.len()
        ),
    );
    // The cooldown answer is the same too.
    let a = expect_code(app.request_otp("9876543210").await, Code::ResourceExhausted);
    let b = expect_code(app.request_otp("9123456789").await, Code::ResourceExhausted);
    assert_eq!(a.message(), b.message());
}

#[tokio::test]
async fn codes_for_one_number_do_not_work_for_another() {
    let app = TestApp::spawn().await;
    let a = app.request_otp("9876543210").await.unwrap();
    let b = app.request_otp("9876543211").await.unwrap();
    if a.dev_otp != b.dev_otp {
        expect_code(
            app.verify_otp("9876543211", &a.dev_otp).await,
            Code::Unauthenticated,
        );
    }
    app.verify_otp("9876543210", &a.dev_otp)
        .await
        .expect("its own number");
}

#[tokio::test]
async fn the_production_backend_really_keeps_state_in_redis() {
    let app = TestApp::spawn().await;
    app.sign_in(PHONE).await;
    let Some(prefix) = app.redis_prefix.clone() else {
        assert!(
            !production_backend(),
            "AROGYA_TEST_BACKEND=production must put apps on Redis"
        );
        return; // the embedded default: nothing to look at in Redis
    };
    let client = redis::Client::open(REDIS_URL).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut c)
        .await
        .unwrap();
    for kind in ["otp:{", "s:{"] {
        let kind = format!("{prefix}{kind}");
        assert!(
            keys.iter().any(|k| k.starts_with(kind.as_bytes())),
            "no {kind} key: {keys:?}"
        );
    }
}
