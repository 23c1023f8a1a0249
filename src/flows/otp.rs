//! RequestOtp, ResendOtp and VerifyOtp.
//!
//! Sending never looks at the user table, so it costs and answers the same for a number with
//! an account and one without. Verifying answers one error for a wrong, expired or missing code.

use chrono::{TimeZone, Utc};
use rand::RngExt;

use super::session::{self, Tokens};
use super::{Caller, Deps};
use crate::clock::{Millis, secs_until};
use crate::config::LimitRule;
use crate::db::user;
use crate::metrics::OtpFailure;
use crate::otp::{OtpCode, OtpError, PhoneKey};
use crate::phone::PhoneNumber;
use crate::store::{Attempt, Decision, Issue, StoredOtp};

/// What the caller learns after a code is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub expires_in_seconds: u32,
    pub resend_after_seconds: u32,
    pub max_attempts: u32,
    /// The code, only when the policy allows (`log` provider outside production).
    pub dev_otp: Option<String>,
}

/// RequestOtp and ResendOtp differ only in their log line: both replace any earlier code,
/// both obey the cooldown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendKind {
    Request,
    Resend,
}

/// A completed sign-in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub tokens: Tokens,
    pub user: user::Model,
    pub new_user: bool,
}

async fn limit(
    deps: &Deps,
    name: &'static str,
    key: &str,
    rule: LimitRule,
    now: Millis,
) -> Result<(), OtpError> {
    match deps.limits.hit(key, rule, now).await? {
        Decision::Allowed => Ok(()),
        Decision::Limited { retry_after } => {
            deps.metrics.rate_limited(name);
            tracing::info!(
                limit = name,
                retry_after_ms = retry_after.as_millis() as u64,
                "rate limited"
            );
            Err(OtpError::RateLimited {
                limit: name,
                retry_after_secs: retry_after.as_millis().div_ceil(1000) as u64,
            })
        }
    }
}

#[tracing::instrument(name = "otp.send", skip_all, fields(kind = ?kind, phone))]
pub async fn send_code(
    deps: &Deps,
    raw_phone: &str,
    caller: Caller,
    kind: SendKind,
) -> Result<Sent, OtpError> {
    let phone = PhoneNumber::parse(raw_phone)?;
    tracing::Span::current().record("phone", tracing::field::display(phone.masked()));
    let policy = &deps.policy;
    let now = deps.clock.now_ms();
    let key = deps.hasher.phone_key(&phone);

    if let Some(l) = &policy.limits {
        limit(
            deps,
            "ip_otp_requests",
            &format!("ip-otp:{}", caller.limit_key()),
            l.ip_otp_requests,
            now,
        )
        .await?;
    }
    // Cheap check first, so the common cooldown refusal spends no per-number or global budget.
    if let Some(until) = deps.otps.cooldown_until(&key, now).await? {
        deps.metrics.rate_limited("otp_resend_cooldown");
        tracing::info!(
            retry_after_secs = secs_until(now, until),
            "code not sent: resend cooldown"
        );
        return Err(OtpError::Cooldown {
            retry_after_secs: secs_until(now, until),
        });
    }
    // Reserve the per-number and global SMS slots, and give them back if the code is not
    // issued after all (a parallel request won the cooldown race).
    let mut reserved: Vec<(String, LimitRule)> = Vec::new();
    if let Some(l) = &policy.limits {
        for (name, k, rule) in [
            (
                "phone_sends",
                format!("phone-send:{}", key.as_str()),
                l.phone_sends,
            ),
            ("sms_global", "sms-global".to_owned(), l.sms_global),
        ] {
            if let Err(refused) = limit(deps, name, &k, rule, now).await {
                undo_all(deps, &reserved, now).await;
                return Err(refused);
            }
            reserved.push((k, rule));
        }
    }

    let code = OtpCode::generate();
    let stored = StoredOtp {
        id: rand::rng().random(),
        hash: deps.hasher.hash_code(&phone, &code),
        expires_at: now + policy.otp_ttl_ms,
    };
    let id = stored.id;
    let issued = deps
        .otps
        .issue(&key, stored, now + policy.resend_cooldown_ms, now)
        .await;
    let issued = match issued {
        Ok(issued) => issued,
        Err(e) => {
            // The store may have applied it before failing to answer: undo both ways.
            let _ = deps.otps.withdraw(&key, id).await;
            undo_all(deps, &reserved, now).await;
            return Err(e.into());
        }
    };
    if let Issue::Cooldown { until } = issued {
        deps.metrics.rate_limited("otp_resend_cooldown");
        undo_all(deps, &reserved, now).await;
        return Err(OtpError::Cooldown {
            retry_after_secs: secs_until(now, until),
        });
    }

    let minutes = (policy.otp_ttl_ms / 60_000).max(1) as u32;
    // Delivery (with its retries and fallback) runs in its own task: if the caller's deadline
    // fires first, the send still finishes, and a failed one still withdraws the code and
    // refunds the cooldown.
    let delivery = {
        let (deps, phone, key, code) = (deps.clone(), phone.clone(), key.clone(), code.clone());
        let span = tracing::info_span!("sms.send", provider = deps.sms.name());
        let task = async move {
            let sent = match deps.policy.message.render(code.expose(), minutes) {
                Ok(message) => deps.sms.send(&phone, &message).await,
                Err(e) => Err(e), // never send a text DLT would drop
            };
            if let Err(err) = &sent {
                tracing::warn!(provider = deps.sms.name(), error = %err, "sms not sent; code withdrawn and cooldown refunded");
                deps.otps.withdraw(&key, id).await?;
            }
            Ok::<_, OtpError>(sent.is_ok())
        };
        tokio::spawn(tracing::Instrument::instrument(task, span))
    };
    match delivery.await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return Err(OtpError::SmsUnavailable),
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            // The delivery task panicked: it cannot have cleaned up, so do it here.
            let _ = deps.otps.withdraw(&key, id).await;
            return Err(OtpError::SmsUnavailable);
        }
    }
    deps.metrics.otp_sent(kind == SendKind::Resend);
    tracing::info!(provider = deps.sms.name(), "code sent");
    Ok(Sent {
        expires_in_seconds: (policy.otp_ttl_ms / 1000) as u32,
        resend_after_seconds: (policy.resend_cooldown_ms / 1000) as u32,
        max_attempts: policy.max_attempts,
        dev_otp: policy.reveal_dev_otp.then(|| code.expose().to_owned()),
    })
}

#[tracing::instrument(name = "otp.verify", skip_all, fields(phone))]
pub async fn verify_code(
    deps: &Deps,
    raw_phone: &str,
    raw_code: &str,
    caller: Caller,
) -> Result<SignedIn, OtpError> {
    let phone = PhoneNumber::parse(raw_phone)?;
    tracing::Span::current().record("phone", tracing::field::display(phone.masked()));
    let code = OtpCode::parse(raw_code)?;
    let policy = &deps.policy;
    let now = deps.clock.now_ms();
    let key = deps.hasher.phone_key(&phone);

    if let Some(l) = &policy.limits {
        limit(
            deps,
            "ip_verifies",
            &format!("ip-verify:{}", caller.limit_key()),
            l.ip_verifies,
            now,
        )
        .await?;
    }
    // Reserve one wrong guess before judging (so parallel guesses cannot overshoot the
    // per-number budget), and give it back unless the guess turns out wrong.
    let wrong_guess = match &policy.limits {
        Some(l) => {
            let k = wrong_key(&key);
            limit(deps, "phone_wrong_guesses", &k, l.phone_wrong_guesses, now).await?;
            vec![(k, l.phone_wrong_guesses)]
        }
        None => Vec::new(),
    };

    let (otp, attempt) = match deps
        .otps
        .begin_attempt(&key, policy.max_attempts, now)
        .await?
    {
        Attempt::NoCode => {
            deps.metrics.otp_failed(OtpFailure::NoCode);
            tracing::info!("no live code: expired, used, or never sent");
            undo_all(deps, &wrong_guess, now).await;
            return Err(OtpError::WrongOrExpired);
        }
        Attempt::LockedOut => {
            deps.metrics.otp_failed(OtpFailure::LockedOut);
            tracing::info!("refused: this code's attempts are used up");
            undo_all(deps, &wrong_guess, now).await;
            return Err(OtpError::AttemptsExhausted);
        }
        Attempt::Judge { otp, attempt } => (otp, attempt),
    };

    if !deps.hasher.matches(&phone, &code, &otp.hash) {
        deps.metrics.otp_failed(OtpFailure::WrongCode);
        if attempt >= policy.max_attempts {
            deps.otps
                .lock_out(&key, otp.id, now + policy.otp_ttl_ms, now)
                .await?;
            deps.metrics.otp_locked_out();
            tracing::info!(attempt, "wrong code; attempts used up, code destroyed");
            return Err(OtpError::AttemptsExhausted);
        }
        tracing::info!(attempt, "wrong code");
        return Err(OtpError::WrongOrExpired);
    }
    undo_all(deps, &wrong_guess, now).await;
    // Of two right guesses at once, only the one that consumes the code signs in.
    match deps.otps.consume(&key, otp.id).await {
        Ok(true) => {}
        Ok(false) => {
            deps.metrics.otp_failed(OtpFailure::NoCode);
            return Err(OtpError::WrongOrExpired);
        }
        Err(e) => {
            // It may have been consumed before the store failed to answer: put it back.
            let _ = deps.otps.reinstate(&key, otp, attempt, now).await;
            return Err(e.into());
        }
    }

    let at = Utc
        .timestamp_millis_opt(now)
        .single()
        .unwrap_or_else(Utc::now);
    let signed_in = async {
        let found = deps.users.find_or_create(&phone, at);
        let (user, new_user) = deps
            .metrics
            .store("database", "find_or_create", found)
            .await?;
        let tokens = session::start(deps, user.id, &phone, now).await?;
        Ok::<_, OtpError>((user, new_user, tokens))
    };
    let (user, new_user, tokens) = match signed_in.await {
        Ok(done) => done,
        Err(err) => {
            // An outage must not cost the person their code: put it back for a retry.
            if let Err(e) = deps.otps.reinstate(&key, otp, attempt, now).await {
                tracing::warn!(error = %e, "could not put the code back after a failed sign-in");
            }
            return Err(err);
        }
    };
    deps.metrics.otp_verified(new_user);
    tracing::info!(new_user, session = %tokens.session_id, "signed in");
    Ok(SignedIn {
        tokens,
        user,
        new_user,
    })
}

/// Gives back rate-limit slots taken at `now` by this call. Best effort: a failure is logged
/// and never replaces the answer the caller is about to get.
async fn undo_all(deps: &Deps, taken: &[(String, LimitRule)], now: Millis) {
    for (k, rule) in taken {
        if let Err(e) = deps.limits.undo(k, *rule, now).await {
            tracing::warn!(error = %e, "could not give back a rate-limit slot");
        }
    }
}

fn wrong_key(key: &PhoneKey) -> String {
    format!("phone-wrong:{}", key.as_str())
}
