//! Users in a real PostgreSQL (127.0.0.1:5432, started by ./scripts/test), one fresh database
//! per test, through the same migrations as SQLite.

use futures::future::join_all;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_live_in_postgres_and_parallel_first_sign_ins_make_one() {
    let (_db, url) = Scratch::postgres().await;
    let app = TestApp::spawn_with(|c| c.database_url = Some(url)).await;
    let signed = app.sign_in(PHONE).await;
    assert!(signed.new_user);

    // Ten numbers, each verified by two callers at once with its own code: one user each.
    let phones: Vec<String> = (0..10).map(|i| format!("98765000{i:02}")).collect();
    let mut codes = Vec::new();
    for p in &phones {
        codes.push(app.request_otp(p).await.unwrap().dev_otp);
    }
    let results = join_all(
        phones
            .iter()
            .zip(&codes)
            .flat_map(|(p, c)| [app.verify_otp(p, c), app.verify_otp(p, c)]),
    )
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        10,
        "one sign-in per code"
    );
    assert_eq!(app.deps.users.count().await.unwrap(), 11);

    app.advance(61);
    let again = app.sign_in("09876543210").await;
    assert!(!again.new_user);
    assert_eq!(again.user.unwrap().id, signed.user.unwrap().id);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_user_row_is_found_by_two_racing_inserts() {
    let (_db, url) = Scratch::postgres().await;
    let conn = arogya_auth::db::connect(&url).await.unwrap();
    arogya_auth::db::migrate(&conn).await.unwrap();
    arogya_auth::db::migrate(&conn)
        .await
        .expect("migrations are idempotent");
    let repo = arogya_auth::db::UserRepo::new(conn);
    let phone = arogya_auth::phone::PhoneNumber::parse(PHONE).unwrap();
    let now = chrono::Utc::now();
    let results = join_all((0..16).map(|_| repo.find_or_create(&phone, now))).await;
    let ids: std::collections::HashSet<_> =
        results.iter().map(|r| r.as_ref().unwrap().0.id).collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(
        results.iter().filter(|r| r.as_ref().unwrap().1).count(),
        1,
        "exactly one created it"
    );
}
