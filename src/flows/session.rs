//! ValidateSession, RefreshSession and Logout, and the start of a session after sign-in.

use uuid::Uuid;

use super::Deps;
use crate::clock::Millis;
use crate::phone::PhoneNumber;
use crate::session::keys::Verified;
use crate::session::{RefreshToken, SessionError};
use crate::store::{Rotation, SessionRecord, SessionRef};

/// The tokens handed to a client.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub access_expires_at: Millis,
    pub refresh_token: String,
    pub refresh_expires_at: Millis,
    pub session_id: Uuid,
}

/// What ValidateSession tells a backend service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub phone_e164: String,
    pub expires_at: Millis,
}

fn access(
    deps: &Deps,
    rec: &SessionRecord,
    refresh: &RefreshToken,
    now: Millis,
) -> Result<Tokens, SessionError> {
    // An access token never outlives its session.
    let ttl = deps
        .policy
        .access_ttl_ms
        .min(rec.expires_at - now)
        .max(1000);
    let (access_token, claims) = deps.keys.issue(rec.user_id, rec.id, now, ttl)?;
    Ok(Tokens {
        access_token,
        access_expires_at: claims.exp * 1000,
        refresh_token: refresh.encode(),
        refresh_expires_at: rec.expires_at,
        session_id: rec.id,
    })
}

pub async fn start(
    deps: &Deps,
    user_id: Uuid,
    phone: &PhoneNumber,
    now: Millis,
) -> Result<Tokens, SessionError> {
    let id = Uuid::new_v4();
    let refresh = RefreshToken::generate(SessionRef { user_id, id });
    let absolute = now.saturating_add(deps.policy.session_absolute_ms);
    let rec = SessionRecord {
        id,
        user_id,
        phone_e164: phone.as_e164().to_owned(),
        refresh_hash: refresh.hash(),
        previous_hashes: Vec::new(),
        created_at: now,
        expires_at: now.saturating_add(deps.policy.session_ttl_ms).min(absolute),
        absolute_expires_at: absolute,
    };
    let tokens = access(deps, &rec, &refresh, now)?;
    deps.sessions.create(rec).await?;
    deps.metrics.session_created();
    Ok(tokens)
}

pub async fn validate(deps: &Deps, token: &str) -> Result<Validated, SessionError> {
    let now = deps.clock.now_ms();
    let Verified {
        user_id,
        session_id,
        expires_at,
    } = deps.keys.check(token, now)?;
    let rec = deps
        .sessions
        .get(
            SessionRef {
                user_id,
                id: session_id,
            },
            now,
        )
        .await?
        .ok_or(SessionError::SessionEnded)?;
    Ok(Validated {
        user_id,
        session_id,
        phone_e164: rec.phone_e164,
        expires_at,
    })
}

#[tracing::instrument(name = "session.refresh", skip_all, fields(session))]
pub async fn refresh(deps: &Deps, raw: &str) -> Result<Tokens, SessionError> {
    let presented = RefreshToken::parse(raw)?;
    tracing::Span::current().record("session", tracing::field::display(presented.session.id));
    let now = deps.clock.now_ms();
    let next = RefreshToken::generate(presented.session);
    let rotation = deps
        .sessions
        .rotate(
            presented.session,
            &presented.hash(),
            next.hash(),
            now.saturating_add(deps.policy.session_ttl_ms),
            now,
        )
        .await?;
    match rotation {
        Rotation::Rotated(rec) => {
            deps.metrics.session_refreshed();
            access(deps, &rec, &next, now)
        }
        Rotation::Reused => {
            deps.metrics.refresh_reuse_detected();
            tracing::warn!(user = %presented.session.user_id, "rotated refresh token presented again; session revoked");
            Err(SessionError::RefreshReused)
        }
        Rotation::Invalid => Err(SessionError::InvalidToken),
    }
}

/// Ends the session named by a refresh token or a bearer access token (one of them must be
/// given); `all` ends every session of that user. Logging out an already-ended session with a
/// still-valid access token succeeds: the goal is reached.
#[tracing::instrument(name = "session.logout", skip_all, fields(all))]
pub async fn logout(
    deps: &Deps,
    refresh_token: &str,
    bearer: Option<&str>,
    all: bool,
) -> Result<(), SessionError> {
    let now = deps.clock.now_ms();
    let session = if !refresh_token.is_empty() {
        let presented = RefreshToken::parse(refresh_token)?;
        // Fresh from the store: another replica may have rotated the token a moment ago.
        let rec = deps
            .sessions
            .get_fresh(presented.session, now)
            .await?
            .ok_or(SessionError::InvalidToken)?;
        let hash = presented.hash();
        if !rec.is_current(&hash) {
            if !rec.knows(&hash) {
                return Err(SessionError::InvalidToken);
            }
            // A rotated-away token is a stolen copy or a stale one: as RefreshSession would,
            // end this session, and never let it end the user's other sessions.
            deps.sessions.revoke(presented.session).await?;
            deps.metrics.refresh_reuse_detected();
            tracing::warn!(user = %presented.session.user_id, "rotated refresh token presented to Logout; session revoked");
            return Err(SessionError::RefreshReused);
        }
        presented.session
    } else if let Some(token) = bearer {
        let Verified {
            user_id: uid,
            session_id: sid,
            ..
        } = deps.keys.check(token, now)?;
        // The session must still live: a token of a session already ended (say, by reuse
        // detection on a thief's copy) must not end the owner's other sessions.
        let session = SessionRef {
            user_id: uid,
            id: sid,
        };
        if deps.sessions.get(session, now).await?.is_none() {
            return if all {
                Err(SessionError::SessionEnded)
            } else {
                Ok(())
            };
        }
        session
    } else {
        return Err(SessionError::MissingToken);
    };
    if all {
        deps.sessions.revoke_all(session.user_id).await?;
        deps.metrics.session_revoked(true);
        tracing::info!(user = %session.user_id, "logged out everywhere");
    } else {
        deps.sessions.revoke(session).await?;
        deps.metrics.session_revoked(false);
        tracing::info!(session = %session.id, "logged out");
    }
    Ok(())
}
