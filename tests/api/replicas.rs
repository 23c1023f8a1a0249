//! Two server processes' worth of replicas (two apps in this process, separate ports and
//! in-memory nothing) on one Redis and one PostgreSQL behave as one service.

use futures::future::join_all;
use tonic::Code;

use crate::helpers::*;

struct Pair {
    a: TestApp,
    b: TestApp,
    _scratch: Vec<Scratch>,
    _dir: tempfile::TempDir,
}

/// Two replicas sharing Redis (one key prefix), PostgreSQL (one database), the OTP secret
/// and the signing key, as a deployment would. Without `rate_limits` the resend cooldown is
/// off too, so one person can sign in twice.
async fn replicas(rate_limits: bool) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.pem");
    std::fs::write(&key, arogya_auth::session::KeyRing::generate_pem().unwrap()).unwrap();
    let (db_guard, db_url) = Scratch::postgres().await;
    let (prefix_guard, prefix) = Scratch::redis();
    let setup = |c: &mut arogya_auth::config::Config| {
        c.redis_url = Some(REDIS_URL.into());
        c.redis.key_prefix = prefix.clone();
        c.database_url = Some(db_url.clone());
        c.jwt.private_key_file = Some(key.clone());
        c.rate_limit.enabled = rate_limits;
        if !rate_limits {
            c.otp.resend_cooldown_seconds = 0;
        }
    };
    let a = TestApp::spawn_with(setup).await;
    let b = TestApp::spawn_with(setup).await;
    Pair {
        a,
        b,
        _scratch: vec![db_guard, prefix_guard],
        _dir: dir,
    }
}

#[tokio::test]
async fn a_code_sent_by_one_replica_signs_in_on_the_other_and_sessions_are_shared() {
    let pair = replicas(false).await; // keeps the database and prefix alive
    let (a, b) = (&pair.a, &pair.b);
    let sent = a.request_otp(PHONE).await.unwrap();
    let signed = b
        .verify_otp(PHONE, &sent.dev_otp)
        .await
        .expect("verified on the other replica");
    assert!(signed.new_user);
    a.validate(&signed.access_token)
        .await
        .expect("a validates b's token");

    let refreshed = a.refresh(&signed.refresh_token).await.unwrap();
    b.validate(&refreshed.access_token).await.unwrap();
    b.logout(&refreshed.refresh_token, false).await.unwrap();
    let s = expect_code(
        a.validate(&refreshed.access_token).await,
        Code::Unauthenticated,
    );
    assert_eq!(
        reason(&s).as_deref(),
        Some("SESSION_ENDED"),
        "a logout on b is seen by a"
    );

    // The same user, whichever replica the next sign-in lands on.
    a.advance(61);
    b.advance(61);
    let again = b.sign_in("09876543210").await;
    assert!(!again.new_user);
    assert_eq!(again.user.unwrap().id, signed.user.unwrap().id);
}

#[tokio::test]
async fn reuse_of_a_refresh_token_is_caught_across_replicas() {
    let pair = replicas(false).await; // keeps the database and prefix alive
    let (a, b) = (&pair.a, &pair.b);
    let signed = a.sign_in(PHONE).await;
    let r = b.refresh(&signed.refresh_token).await.unwrap();
    let s = expect_code(
        a.refresh(&signed.refresh_token).await,
        Code::Unauthenticated,
    );
    assert_eq!(reason(&s).as_deref(), Some("REFRESH_TOKEN_REUSED"));
    expect_code(b.validate(&r.access_token).await, Code::Unauthenticated);
}

#[tokio::test]
async fn the_cooldown_and_the_ip_limit_hold_across_replicas() {
    let pair = replicas(true).await; // keeps the database and prefix alive
    let (a, b) = (&pair.a, &pair.b);
    a.request_otp("9876500001").await.unwrap();
    let s = expect_code(b.resend_otp("9876500001").await, Code::ResourceExhausted);
    assert_eq!(reason(&s).as_deref(), Some("OTP_RESEND_COOLDOWN"));
    // Three code requests per IP per 15 minutes in all (the refused resend counted too).
    b.request_otp("9876500002").await.unwrap();
    for app in [a, b] {
        let s = expect_code(app.request_otp("9876500004").await, Code::ResourceExhausted);
        assert_eq!(reason(&s).as_deref(), Some("RATE_LIMITED"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_parallel_wrong_guesses_over_two_replicas_judge_at_most_five() {
    let pair = replicas(false).await; // keeps the database and prefix alive
    let (a, b) = (&pair.a, &pair.b);
    let sent = a.request_otp(PHONE).await.unwrap();
    let bad = wrong(&sent.dev_otp);
    let results = join_all((0..60).map(|i| {
        if i % 2 == 0 {
            a.verify_otp(PHONE, &bad)
        } else {
            b.verify_otp(PHONE, &bad)
        }
    }))
    .await;
    let judged_wrong = results
        .iter()
        .filter(|r| matches!(r, Err(s) if s.code() == Code::Unauthenticated))
        .count();
    assert_eq!(judged_wrong, 4, "{results:?}");
    assert!(results.iter().all(|r| r.is_err()));
    expect_code(
        b.verify_otp(PHONE, &sent.dev_otp).await,
        Code::ResourceExhausted,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_parallel_refreshes_over_two_replicas_exactly_one_wins() {
    let pair = replicas(false).await; // keeps the database and prefix alive
    let (a, b) = (&pair.a, &pair.b);
    let signed = a.sign_in(PHONE).await;
    let results = join_all((0..20).map(|i| {
        if i % 2 == 0 {
            a.refresh(&signed.refresh_token)
        } else {
            b.refresh(&signed.refresh_token)
        }
    }))
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_on_an_empty_database_migrate_once_and_serve() {
    let (_db, url) = Scratch::postgres().await;
    let setup = |c: &mut arogya_auth::config::Config| c.database_url = Some(url.clone());
    let (a, b, c) = tokio::join!(
        TestApp::spawn_with(setup),
        TestApp::spawn_with(setup),
        TestApp::spawn_with(setup)
    );
    for app in [&a, &b, &c] {
        let sent = app.request_otp(PHONE).await.unwrap();
        app.verify_otp(PHONE, &sent.dev_otp)
            .await
            .expect("schema in place");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_logout_on_one_replica_is_refused_on_the_other_within_milliseconds() {
    let pair = replicas(false).await;
    let (a, b) = (&pair.a, &pair.b);
    let signed = a.sign_in(PHONE).await;
    // Warm b's local session cache: from here b answers without asking Redis.
    for _ in 0..3 {
        b.validate(&signed.access_token).await.unwrap();
    }
    a.logout(&signed.refresh_token, false).await.unwrap();
    let ended = std::time::Instant::now();
    let deadline = ended + std::time::Duration::from_secs(2);
    loop {
        match b.validate(&signed.access_token).await {
            Err(s) => {
                assert_eq!(s.code(), Code::Unauthenticated);
                break;
            }
            Ok(_) => assert!(
                std::time::Instant::now() < deadline,
                "b still accepts the ended session"
            ),
        }
    }
    let took = ended.elapsed();
    println!("refused on the other replica after {took:?}");
    assert!(took < std::time::Duration::from_millis(500), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logging_out_everywhere_on_one_replica_ends_every_session_on_the_other() {
    let pair = replicas(false).await;
    let (a, b) = (&pair.a, &pair.b);
    let phone = "+919812300077";
    let first = a.sign_in(phone).await;
    let second = b.sign_in(phone).await;
    let other = a.sign_in(PHONE).await;
    // Warm b's cache with all three.
    for token in [
        &first.access_token,
        &second.access_token,
        &other.access_token,
    ] {
        for _ in 0..3 {
            b.validate(token).await.unwrap();
        }
    }
    a.logout(&first.refresh_token, true).await.unwrap();
    let ended = std::time::Instant::now();
    let deadline = ended + std::time::Duration::from_secs(2);
    for token in [&first.access_token, &second.access_token] {
        loop {
            match b.validate(token).await {
                Err(s) => {
                    assert_eq!(s.code(), Code::Unauthenticated);
                    break;
                }
                Ok(_) => assert!(
                    std::time::Instant::now() < deadline,
                    "b still accepts a session ended everywhere"
                ),
            }
        }
    }
    let took = ended.elapsed();
    println!("both sessions refused on the other replica after {took:?}");
    assert!(took < std::time::Duration::from_millis(500), "{took:?}");
    // Neither session can be refreshed back, on either replica.
    for (app, token) in [(a, &second.refresh_token), (b, &first.refresh_token)] {
        let s = app.refresh(token).await.unwrap_err();
        assert_eq!(s.code(), Code::Unauthenticated);
    }
    // Another person's session lives on; and the same person can sign in again.
    b.validate(&other.access_token).await.unwrap();
    let again = b.sign_in(phone).await;
    a.validate(&again.access_token).await.unwrap();
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("a JWT")
        .kid
        .expect("a kid")
}

async fn published_kids(app: &TestApp) -> Vec<String> {
    let mut kids: Vec<String> = app.jwks().await["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect();
    kids.sort();
    kids
}

/// The runbook of docs/OPERATIONS.md ("Rotating the signing key"), on replicas sharing Redis
/// and PostgreSQL: publish the next key, swap (replicas of both steps serve side by side
/// during the rollout), retire the old key after one access-token lifetime. No token that was
/// valid is refused at any step; the old key's tokens validate until their own expiry.
#[tokio::test]
async fn the_signing_key_rotates_with_no_valid_token_refused() {
    use arogya_auth::session::KeyRing;
    let dir = tempfile::tempdir().unwrap();
    let (old_key, new_key) = (dir.path().join("old.pem"), dir.path().join("new.pem"));
    std::fs::write(&old_key, KeyRing::generate_pem().unwrap()).unwrap();
    std::fs::write(&new_key, KeyRing::generate_pem().unwrap()).unwrap();
    let new_public = KeyRing::public_pem(&std::fs::read(&new_key).unwrap()).unwrap();
    let (_db, db_url) = Scratch::postgres().await;
    let (_prefix, prefix) = Scratch::redis();
    let replica = |signing: &std::path::Path, verify: Verify| {
        let (signing, db_url, prefix) = (signing.to_owned(), db_url.clone(), prefix.clone());
        let new_public = new_public.clone();
        let old_key = old_key.clone();
        TestApp::spawn_with(move |c| {
            c.redis_url = Some(REDIS_URL.into());
            c.redis.key_prefix = prefix;
            c.database_url = Some(db_url);
            c.otp.resend_cooldown_seconds = 0;
            c.jwt.private_key_file = Some(signing);
            match verify {
                Verify::Nothing => {}
                Verify::NextPublic => c.jwt.verify_keys = Some(new_public.into()),
                Verify::OldFile => c.jwt.verify_keys_file = Some(old_key),
            }
        })
    };
    let before = replica(&old_key, Verify::Nothing).await;
    let old = before.sign_in(PHONE).await;
    let old_kid = kid_of(&old.access_token);

    // Step 1: every replica publishes the next key while still signing with the old one.
    let step1 = replica(&old_key, Verify::NextPublic).await;
    // Step 2, mid-rollout: new replicas sign with the new key and keep accepting the old.
    let step2 = replica(&new_key, Verify::OldFile).await;
    let new = step2.sign_in("+919812345678").await;
    let new_kid = kid_of(&new.access_token);
    assert_ne!(new_kid, old_kid);
    let mut both = vec![old_kid.clone(), new_kid.clone()];
    both.sort();
    assert_eq!(published_kids(&step1).await, both);
    assert_eq!(published_kids(&step2).await, both);

    step2
        .validate(&old.access_token)
        .await
        .expect("the old key's token on a new replica");
    step1
        .validate(&new.access_token)
        .await
        .expect("the new key's token on a replica not yet swapped");
    // (Why step 1 comes first: a replica that never heard of the new key refuses its tokens.)
    expect_code(
        before.validate(&new.access_token).await,
        Code::Unauthenticated,
    );

    // A session begun under the old key refreshes on a new replica, getting a new-key token.
    let refreshed = step2.refresh(&old.refresh_token).await.unwrap();
    assert_eq!(kid_of(&refreshed.access_token), new_kid);
    step1.validate(&refreshed.access_token).await.unwrap();

    // The old key's token keeps validating until its own expiry, and not after.
    step2.advance(14 * 60);
    step2
        .validate(&old.access_token)
        .await
        .expect("14 minutes after sign-in");
    step2.advance(61);
    expect_code(
        step2.validate(&old.access_token).await,
        Code::Unauthenticated,
    );

    // Step 3, one access-token lifetime after the swap: the old key retires. Every token still
    // in its lifetime is a new-key token, and those all validate.
    let step3 = replica(&new_key, Verify::Nothing).await;
    assert_eq!(published_kids(&step3).await, vec![new_kid]);
    step3.validate(&refreshed.access_token).await.unwrap();
    step3.validate(&new.access_token).await.unwrap();
    expect_code(
        step3.validate(&old.access_token).await,
        Code::Unauthenticated,
    );
}

#[derive(Clone, Copy)]
enum Verify {
    Nothing,
    NextPublic,
    OldFile,
}

#[tokio::test]
async fn logout_on_one_replica_with_a_token_just_rotated_on_the_other() {
    let pair = replicas(false).await; // keeps the database and prefix alive
    let (a, b) = (&pair.a, &pair.b);
    let signed = a.sign_in(PHONE).await;
    // b has the session cached from a validation; a then rotates the refresh token.
    b.validate(&signed.access_token).await.unwrap();
    let refreshed = a.refresh(&signed.refresh_token).await.unwrap();
    // b decides on the store's record, not its cached copy: the new token is current there.
    b.logout(&refreshed.refresh_token, false)
        .await
        .expect("logout with the token a just issued");
    expect_code(
        a.validate(&refreshed.access_token).await,
        Code::Unauthenticated,
    );
}
