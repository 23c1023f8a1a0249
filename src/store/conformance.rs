//! One test suite for every store implementation, so the embedded default and production
//! cannot drift apart. Each `pub async fn` runs all checks for one trait against a fresh store;
//! keys are random per run, so a shared backend (Redis) needs no cleanup between tests.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::*;
use crate::clock::{Clock, SystemClock};
use crate::otp::PhoneKey;

/// A random key per check: distinct keys, whatever the store holds already.
fn fresh_key() -> PhoneKey {
    PhoneKey::random_for_test()
}

fn otp(id: u64, expires_at: Millis) -> StoredOtp {
    StoredOtp {
        id,
        hash: [id as u8; 32],
        expires_at,
    }
}

pub async fn otp_store<S: OtpStore>(store: &S) {
    let now = SystemClock.now_ms();
    issue_respects_the_cooldown(store, now).await;
    attempts_are_counted_then_the_code_is_locked_out(store, now).await;
    an_expired_code_is_no_code(store, now).await;
    consume_uses_a_code_once_and_only_the_current_one(store, now).await;
    a_new_code_lifts_a_lock_out(store, now).await;
    withdraw_removes_the_code_and_refunds_the_cooldown(store, now).await;
    reinstate_puts_a_consumed_code_back_unless_replaced(store, now).await;
}

async fn reinstate_puts_a_consumed_code_back_unless_replaced<S: OtpStore>(s: &S, now: Millis) {
    let key = fresh_key();
    s.issue(&key, otp(1, now + 600_000), now + 60_000, now)
        .await
        .unwrap();
    let Attempt::Judge {
        otp: taken,
        attempt,
    } = s.begin_attempt(&key, 5, now).await.unwrap()
    else {
        panic!("judge")
    };
    assert!(s.consume(&key, 1).await.unwrap());
    s.reinstate(&key, taken.clone(), attempt, now)
        .await
        .unwrap();
    match s.begin_attempt(&key, 5, now).await.unwrap() {
        Attempt::Judge { otp, attempt } => {
            assert_eq!((otp.id, attempt), (1, 2), "back, attempts kept")
        }
        other => panic!("{other:?}"),
    }
    // A newer code wins over a late reinstate.
    assert!(s.consume(&key, 1).await.unwrap());
    s.issue(&key, otp(2, now + 600_000), now + 60_000, now + 60_000)
        .await
        .unwrap();
    s.reinstate(&key, taken.clone(), 1, now).await.unwrap();
    assert!(
        matches!(s.begin_attempt(&key, 5, now).await.unwrap(), Attempt::Judge { otp, .. } if otp.id == 2)
    );
    // Nor over a newer code that was itself used meanwhile.
    let key = fresh_key();
    s.issue(&key, otp(5, now + 600_000), now, now)
        .await
        .unwrap();
    assert!(s.consume(&key, 5).await.unwrap());
    s.issue(&key, otp(6, now + 600_000), now, now)
        .await
        .unwrap();
    assert!(s.consume(&key, 6).await.unwrap());
    s.reinstate(&key, otp(5, now + 600_000), 1, now)
        .await
        .unwrap();
    assert_eq!(
        s.begin_attempt(&key, 5, now).await.unwrap(),
        Attempt::NoCode,
        "code 5 stays dead"
    );
    // An expired code is not put back.
    let key = fresh_key();
    s.reinstate(&key, otp(3, now + 10), 1, now + 10)
        .await
        .unwrap();
    assert_eq!(
        s.begin_attempt(&key, 5, now).await.unwrap(),
        Attempt::NoCode
    );
}

/// Runs `parallel_attempts_never_exceed_the_limit` against a shared store.
pub async fn otp_store_parallel<S: OtpStore>(store: Arc<S>) {
    let now = SystemClock.now_ms();
    let key = fresh_key();
    store
        .issue(&key, otp(1, now + 60_000), now + 1, now)
        .await
        .expect("issue");
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move { store.begin_attempt(&key, 5, now).await.expect("attempt") })
        })
        .collect();
    let mut judged = Vec::new();
    for t in tasks {
        if let Attempt::Judge { attempt, .. } = t.await.expect("join") {
            judged.push(attempt);
        }
    }
    judged.sort_unstable();
    assert_eq!(
        judged,
        vec![1, 2, 3, 4, 5],
        "exactly five attempts judged, each numbered once"
    );
}

async fn issue_respects_the_cooldown<S: OtpStore>(s: &S, now: Millis) {
    let key = fresh_key();
    assert_eq!(s.cooldown_until(&key, now).await.unwrap(), None);
    assert_eq!(
        s.issue(&key, otp(1, now + 600_000), now + 60_000, now)
            .await
            .unwrap(),
        Issue::Issued
    );
    assert_eq!(
        s.cooldown_until(&key, now).await.unwrap(),
        Some(now + 60_000)
    );
    assert_eq!(
        s.issue(&key, otp(2, now + 600_000), now + 60_000, now + 59_999)
            .await
            .unwrap(),
        Issue::Cooldown {
            until: now + 60_000
        }
    );
    // The refused issue did not replace the code.
    assert!(
        matches!(s.begin_attempt(&key, 5, now).await.unwrap(), Attempt::Judge { otp, .. } if otp.id == 1)
    );
    assert_eq!(
        s.issue(&key, otp(3, now + 700_000), now + 120_000, now + 60_000)
            .await
            .unwrap(),
        Issue::Issued
    );
    match s.begin_attempt(&key, 5, now + 60_000).await.unwrap() {
        Attempt::Judge { otp, attempt } => assert_eq!(
            (otp.id, attempt),
            (3, 1),
            "a new code starts with fresh attempts"
        ),
        other => panic!("{other:?}"),
    }
}

async fn attempts_are_counted_then_the_code_is_locked_out<S: OtpStore>(s: &S, now: Millis) {
    let key = fresh_key();
    s.issue(&key, otp(7, now + 600_000), now + 60_000, now)
        .await
        .unwrap();
    for n in 1..=3 {
        match s.begin_attempt(&key, 3, now).await.unwrap() {
            Attempt::Judge { otp, attempt } => assert_eq!((otp.id, attempt), (7, n)),
            other => panic!("attempt {n}: {other:?}"),
        }
    }
    assert_eq!(
        s.begin_attempt(&key, 3, now).await.unwrap(),
        Attempt::LockedOut
    );
    assert_eq!(
        s.begin_attempt(&key, 3, now).await.unwrap(),
        Attempt::LockedOut,
        "stays locked"
    );
    // Extra attempts did not destroy the code: the third judged attempt, if right, still wins.
    assert!(s.consume(&key, 7).await.unwrap());

    // The last wrong attempt locks the number out; that lasts until a new code or `until`.
    let key = fresh_key();
    s.issue(&key, otp(8, now + 600_000), now + 60_000, now)
        .await
        .unwrap();
    s.lock_out(&key, 8, now + 600_000, now).await.unwrap();
    assert!(
        !s.consume(&key, 8).await.unwrap(),
        "a locked-out code is gone"
    );
    assert_eq!(
        s.begin_attempt(&key, 3, now).await.unwrap(),
        Attempt::LockedOut
    );
    assert_eq!(
        s.begin_attempt(&key, 3, now + 600_000).await.unwrap(),
        Attempt::NoCode,
        "a lock-out ends"
    );
}

async fn an_expired_code_is_no_code<S: OtpStore>(s: &S, now: Millis) {
    let key = fresh_key();
    assert_eq!(
        s.begin_attempt(&key, 5, now).await.unwrap(),
        Attempt::NoCode,
        "never sent"
    );
    s.issue(&key, otp(1, now + 1000), now + 500, now)
        .await
        .unwrap();
    assert!(matches!(
        s.begin_attempt(&key, 5, now + 999).await.unwrap(),
        Attempt::Judge { .. }
    ));
    assert_eq!(
        s.begin_attempt(&key, 5, now + 1000).await.unwrap(),
        Attempt::NoCode
    );
}

async fn consume_uses_a_code_once_and_only_the_current_one<S: OtpStore>(s: &S, now: Millis) {
    let key = fresh_key();
    s.issue(&key, otp(1, now + 600_000), now, now)
        .await
        .unwrap();
    s.issue(&key, otp(2, now + 600_000), now, now)
        .await
        .unwrap();
    assert!(
        !s.consume(&key, 1).await.unwrap(),
        "a replaced code cannot be consumed"
    );
    assert!(s.consume(&key, 2).await.unwrap());
    assert!(!s.consume(&key, 2).await.unwrap(), "twice");
    assert_eq!(
        s.begin_attempt(&key, 5, now).await.unwrap(),
        Attempt::NoCode
    );
    // Stale lock_out and withdraw calls do not touch a newer code.
    s.issue(&key, otp(3, now + 600_000), now, now)
        .await
        .unwrap();
    s.lock_out(&key, 2, now + 600_000, now).await.unwrap();
    s.withdraw(&key, 2).await.unwrap();
    assert!(
        matches!(s.begin_attempt(&key, 5, now).await.unwrap(), Attempt::Judge { otp, .. } if otp.id == 3)
    );
}

async fn a_new_code_lifts_a_lock_out<S: OtpStore>(s: &S, now: Millis) {
    let key = fresh_key();
    s.issue(&key, otp(1, now + 600_000), now, now)
        .await
        .unwrap();
    s.lock_out(&key, 1, now + 600_000, now).await.unwrap();
    s.issue(&key, otp(2, now + 600_000), now, now)
        .await
        .unwrap();
    assert!(
        matches!(s.begin_attempt(&key, 5, now).await.unwrap(), Attempt::Judge { otp, .. } if otp.id == 2)
    );
}

async fn withdraw_removes_the_code_and_refunds_the_cooldown<S: OtpStore>(s: &S, now: Millis) {
    let key = fresh_key();
    s.issue(&key, otp(1, now + 600_000), now + 60_000, now)
        .await
        .unwrap();
    s.withdraw(&key, 1).await.unwrap();
    assert_eq!(s.cooldown_until(&key, now).await.unwrap(), None);
    assert_eq!(
        s.begin_attempt(&key, 5, now).await.unwrap(),
        Attempt::NoCode
    );
    assert_eq!(
        s.issue(&key, otp(2, now + 600_000), now + 60_000, now)
            .await
            .unwrap(),
        Issue::Issued
    );
}

// ---------------------------------------------------------------------------------------------

fn session(now: Millis, user: Uuid) -> SessionRecord {
    SessionRecord {
        id: Uuid::new_v4(),
        user_id: user,
        phone_e164: "+919876543210".into(),
        refresh_hash: [1; 32],
        previous_hashes: vec![],
        created_at: now,
        expires_at: now + 10_000,
        absolute_expires_at: now + 25_000,
    }
}

pub async fn session_store<S: SessionStore>(s: &S) {
    let now = SystemClock.now_ms();
    let user = Uuid::new_v4();

    // create / get / expiry
    let a = session(now, user);
    s.create(a.clone()).await.unwrap();
    assert_eq!(s.get(a.key(), now).await.unwrap(), Some(a.clone()));
    assert_eq!(s.get(a.key(), now + 10_000).await.unwrap(), None, "expired");
    let unknown = SessionRef {
        user_id: user,
        id: Uuid::new_v4(),
    };
    assert_eq!(s.get(unknown, now).await.unwrap(), None);
    let stranger = SessionRef {
        user_id: Uuid::new_v4(),
        id: a.id,
    };
    assert_eq!(
        s.get(stranger, now).await.unwrap(),
        None,
        "a session answers only for its own user"
    );

    // rotate: current → rotated and extended (capped by absolute)
    match s
        .rotate(a.key(), &[1; 32], [2; 32], now + 30_000, now + 1)
        .await
        .unwrap()
    {
        Rotation::Rotated(r) => {
            assert_eq!(r.refresh_hash, [2; 32]);
            assert_eq!(r.previous_hashes, vec![rotated(&[1; 32])]);
            assert_eq!(r.expires_at, now + 25_000, "capped by the absolute expiry");
            assert_eq!(s.get(a.key(), now).await.unwrap(), Some(r), "as stored");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.rotate(stranger, &[2; 32], [3; 32], now, now)
            .await
            .unwrap(),
        Rotation::Invalid,
        "another user's id does not reach the session"
    );
    assert_eq!(
        s.rotate(a.key(), &[9; 32], [3; 32], now, now)
            .await
            .unwrap(),
        Rotation::Invalid,
        "unknown token"
    );
    assert!(
        s.get(a.key(), now).await.unwrap().is_some(),
        "an unknown token does not revoke"
    );
    assert_eq!(
        s.rotate(a.key(), &[1; 32], [3; 32], now, now)
            .await
            .unwrap(),
        Rotation::Reused
    );
    assert_eq!(
        s.get(a.key(), now).await.unwrap(),
        None,
        "reuse revokes the session"
    );
    assert_eq!(
        s.rotate(a.key(), &[2; 32], [3; 32], now, now)
            .await
            .unwrap(),
        Rotation::Invalid,
        "even its current token"
    );

    // an expired session cannot be rotated
    let b = session(now, user);
    s.create(b.clone()).await.unwrap();
    assert_eq!(
        s.rotate(b.key(), &[1; 32], [2; 32], now + 50_000, now + 10_000)
            .await
            .unwrap(),
        Rotation::Invalid
    );

    // revoke / revoke_all
    let (c, d, e) = (
        session(now, user),
        session(now, user),
        session(now, Uuid::new_v4()),
    );
    for x in [&c, &d, &e] {
        s.create(x.clone()).await.unwrap();
    }
    let wrong_user = SessionRef {
        user_id: e.user_id,
        id: c.id,
    };
    assert!(!s.revoke(wrong_user).await.unwrap());
    assert!(
        s.get(c.key(), now).await.unwrap().is_some(),
        "another user's id does not end the session"
    );
    assert!(s.revoke(c.key()).await.unwrap());
    assert!(!s.revoke(c.key()).await.unwrap());
    assert_eq!(s.get(c.key(), now).await.unwrap(), None);
    s.revoke_all(user).await.unwrap();
    assert_eq!(s.get(d.key(), now).await.unwrap(), None);
    // A doctored user id that shares all but its last bytes with the owner's does not reach
    // the ended session (refresh tokens are not signed: anyone holding one can edit it).
    let mut bytes = *user.as_bytes();
    bytes[15] ^= 0x01;
    let doctored = SessionRef {
        user_id: Uuid::from_bytes(bytes),
        id: d.id,
    };
    assert_eq!(s.get(doctored, now).await.unwrap(), None);
    assert_eq!(
        s.rotate(doctored, &[1; 32], [2; 32], now + 10_000, now)
            .await
            .unwrap(),
        Rotation::Invalid,
        "a doctored user id does not revive an ended session"
    );
    assert_eq!(
        s.rotate(d.key(), &[1; 32], [2; 32], now + 10_000, now)
            .await
            .unwrap(),
        Rotation::Invalid,
        "an ended session cannot be refreshed back to life"
    );
    assert!(
        s.get(e.key(), now).await.unwrap().is_some(),
        "another user's session lives on"
    );
    s.revoke_all(user).await.unwrap();
    // A session begun after "log out everywhere" lives, and can end everything again.
    let g = session(now, user);
    s.create(g.clone()).await.unwrap();
    assert_eq!(s.get(g.key(), now).await.unwrap(), Some(g.clone()));
    assert!(matches!(
        s.rotate(g.key(), &[1; 32], [2; 32], now + 10_000, now)
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));
    s.revoke_all(user).await.unwrap();
    assert_eq!(s.get(g.key(), now).await.unwrap(), None);
    assert_eq!(s.get(d.key(), now).await.unwrap(), None, "still ended");

    // the remembered rotations are bounded, and the oldest remembered one is still a replay
    let f = session(now, Uuid::new_v4());
    s.create(f.clone()).await.unwrap();
    let mut current = [1u8; 32];
    let mut history = vec![current];
    for i in 0..(REMEMBERED_ROTATIONS + 5) {
        let next = [(i + 10) as u8; 32];
        assert!(matches!(
            s.rotate(f.key(), &current, next, now + 10_000, now)
                .await
                .unwrap(),
            Rotation::Rotated(_)
        ));
        current = next;
        history.push(next);
    }
    let rec = s.get(f.key(), now).await.unwrap().expect("live");
    assert_eq!(rec.previous_hashes.len(), REMEMBERED_ROTATIONS);
    let forgotten = history[history.len() - 2 - REMEMBERED_ROTATIONS];
    assert_eq!(
        s.rotate(f.key(), &forgotten, [200; 32], now + 10_000, now)
            .await
            .unwrap(),
        Rotation::Invalid,
        "too old to remember: refused, not an alarm"
    );
    let oldest = history[history.len() - 1 - REMEMBERED_ROTATIONS];
    assert_eq!(
        s.rotate(f.key(), &oldest, [200; 32], now + 10_000, now)
            .await
            .unwrap(),
        Rotation::Reused
    );
}

/// Two refreshes with one token at once: exactly one wins.
pub async fn session_store_parallel<S: SessionStore>(s: Arc<S>) {
    let now = SystemClock.now_ms();
    let rec = session(now, Uuid::new_v4());
    s.create(rec.clone()).await.unwrap();
    let key = rec.key();
    let tasks: Vec<_> = (0..20u8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.rotate(key, &[1; 32], [i + 100; 32], now + 10_000, now)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut rotated = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Rotation::Rotated(_)) {
            rotated += 1;
        }
    }
    assert_eq!(rotated, 1);
}

// ---------------------------------------------------------------------------------------------

pub async fn rate_limiter<L: RateLimiter>(l: &L) {
    let now = SystemClock.now_ms();
    let rule = LimitRule::new(3, 10);
    let key = format!("conf:{}", Uuid::new_v4());

    for i in 0..3 {
        assert_eq!(
            l.hit(&key, rule, now + i * 1000).await.unwrap(),
            Decision::Allowed,
            "hit {i}"
        );
    }
    // Fourth within the window: wait until the first event leaves it (at now + 10 s).
    assert_eq!(
        l.hit(&key, rule, now + 5000).await.unwrap(),
        Decision::Limited {
            retry_after: Duration::from_millis(5000)
        }
    );
    assert_eq!(
        l.hit(&key, rule, now + 9999).await.unwrap(),
        Decision::Limited {
            retry_after: Duration::from_millis(1)
        },
        "a refused hit records nothing"
    );
    // Sliding: at +10 s one slot frees (not three, as a fixed window would give).
    assert_eq!(
        l.hit(&key, rule, now + 10_000).await.unwrap(),
        Decision::Allowed
    );
    assert!(matches!(
        l.hit(&key, rule, now + 10_000).await.unwrap(),
        Decision::Limited { .. }
    ));

    // undo gives back exactly one reservation made at that instant
    let key = format!("conf:{}", Uuid::new_v4());
    for _ in 0..3 {
        assert_eq!(l.hit(&key, rule, now).await.unwrap(), Decision::Allowed);
    }
    l.undo(&key, rule, now).await.unwrap();
    assert_eq!(l.hit(&key, rule, now).await.unwrap(), Decision::Allowed);
    assert!(matches!(
        l.hit(&key, rule, now).await.unwrap(),
        Decision::Limited { .. }
    ));
    l.undo(&key, rule, now + 1).await.unwrap(); // no event at that instant: nothing changes
    assert!(matches!(
        l.hit(&key, rule, now).await.unwrap(),
        Decision::Limited { .. }
    ));
    l.undo(&format!("conf:{}", Uuid::new_v4()), rule, now)
        .await
        .unwrap(); // unknown key
}

pub async fn rate_limiter_parallel<L: RateLimiter>(l: Arc<L>) {
    let now = SystemClock.now_ms();
    let rule = LimitRule::new(7, 60);
    let key = format!("conf:{}", Uuid::new_v4());
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (l, key) = (l.clone(), key.clone());
            tokio::spawn(async move { l.hit(&key, rule, now).await.unwrap() })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        if t.await.unwrap() == Decision::Allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 7);
}
