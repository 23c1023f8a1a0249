//! State that expires: OTP codes, cooldowns, sessions and rate-limit windows.
//!
//! Each trait is written so that every check-and-update is *one* call: an implementation makes
//! that call atomic (a mutex in memory, a Lua script in Redis), so parallel calls or several
//! replicas cannot beat a limit. Times are passed in (`now`, Unix milliseconds) and every record
//! carries its own expiry, so the rules do not depend on a store's own clock.
//!
//! Stores never see a code, a token or a phone number in plain form: codes and refresh tokens
//! arrive hashed, phone numbers as a keyed [`PhoneKey`]. The session record keeps the E.164
//! number because `ValidateSession` returns it without touching SQL; a networked store must
//! encrypt that field.

use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::clock::Millis;
use crate::config::LimitRule;
use crate::otp::{CodeHash, PhoneKey};

pub mod cached;
pub mod memory;
pub mod metered;
pub mod redis;

#[cfg(test)]
pub mod conformance;
#[cfg(test)]
pub mod testing;

/// A store failed. Backend-specific errors become this, and the caller sees UNAVAILABLE.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    #[error("state store returned data it cannot read: {0}")]
    Corrupt(String),
}

// ---------------------------------------------------------------------------------------------
// OTP codes

/// A code as stored: its keyed hash, when it dies, and a random id naming this issue of it
/// (so a late consume or lock-out cannot hit a newer code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOtp {
    pub id: u64,
    pub hash: CodeHash,
    pub expires_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issue {
    Issued,
    /// A code was issued less than the cooldown ago.
    Cooldown {
        until: Millis,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// No live code: never sent, expired, used, or replaced.
    NoCode,
    /// The code's attempts are used up (or it was locked out); VerifyOtp refuses until a new
    /// code is issued.
    LockedOut,
    /// This attempt is counted (it was number `attempt`); judge the guess against `otp`.
    Judge { otp: StoredOtp, attempt: u32 },
}

#[async_trait]
pub trait OtpStore: Send + Sync + 'static {
    /// Atomically: if a cooldown holds, refuse; otherwise replace any code (and any lock-out)
    /// with `otp`, reset its attempts, and start a cooldown ending at `cooldown_until`.
    async fn issue(
        &self,
        phone: &PhoneKey,
        otp: StoredOtp,
        cooldown_until: Millis,
        now: Millis,
    ) -> Result<Issue, StoreError>;

    /// When the current cooldown ends, if one holds (a cheap check before spending budgets).
    async fn cooldown_until(
        &self,
        phone: &PhoneKey,
        now: Millis,
    ) -> Result<Option<Millis>, StoreError>;

    /// Atomically count one attempt against the live code. When `max_attempts` are already
    /// used, `LockedOut` is returned and nothing is counted. The code itself stays until an
    /// attempt already being judged consumes it (a right guess) or locks it out (the last
    /// wrong one), so a flood of extra guesses cannot destroy a code a right guess holds.
    async fn begin_attempt(
        &self,
        phone: &PhoneKey,
        max_attempts: u32,
        now: Millis,
    ) -> Result<Attempt, StoreError>;

    /// Atomically delete the code if it is still the one with `id`. True if this call used it:
    /// of two right guesses at once, exactly one gets a session.
    async fn consume(&self, phone: &PhoneKey, id: u64) -> Result<bool, StoreError>;

    /// Destroy the code with `id` (if still current) and lock the number out until a new code
    /// is issued or `until` passes.
    async fn lock_out(
        &self,
        phone: &PhoneKey,
        id: u64,
        until: Millis,
        now: Millis,
    ) -> Result<(), StoreError>;

    /// Undo an `issue` whose SMS could not be sent: delete the code with `id` and end the
    /// cooldown, so the person can try again at once.
    async fn withdraw(&self, phone: &PhoneKey, id: u64) -> Result<(), StoreError>;

    /// Put back a code that `consume` took for a sign-in that then failed (the database was
    /// down), with `used` attempts counted, so the person can retry with the same code. Does
    /// nothing if a newer code or a lock-out took its place, or the code has expired.
    async fn reinstate(
        &self,
        phone: &PhoneKey,
        otp: StoredOtp,
        used: u32,
        now: Millis,
    ) -> Result<(), StoreError>;
}

// ---------------------------------------------------------------------------------------------
// Sessions

/// A refresh token's stored form (SHA-256 of its 256 random bits).
pub type TokenHash = [u8; 32];

/// What a session remembers of a refresh token it rotated away: the first 8 bytes of its
/// hash. Enough to recognise a replay (a random token matches with odds of 2^-64), small
/// enough that remembering costs little.
pub type RotatedHash = [u8; 8];

pub fn rotated(hash: &TokenHash) -> RotatedHash {
    let mut short = [0u8; 8];
    short.copy_from_slice(&hash[..8]);
    short
}

/// How many rotated-away refresh tokens a session remembers, to spot their reuse. Older ones
/// are simply unknown (UNAUTHENTICATED) rather than a reuse alarm: with 15-minute access
/// tokens, eight rotations are two hours of a device's refreshes.
pub const REMEMBERED_ROTATIONS: usize = 8;

/// Names a session: its user and its own id. Both travel in every token (the access token's
/// `sub` and `sid`, the refresh token's first 32 bytes), and stores key sessions by both so a
/// user's sessions can be ended together without an index of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionRef {
    pub user_id: Uuid,
    pub id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    /// E.164; see the module note.
    pub phone_e164: String,
    pub refresh_hash: TokenHash,
    /// Refresh tokens already rotated away, newest last, at most [`REMEMBERED_ROTATIONS`].
    pub previous_hashes: Vec<RotatedHash>,
    pub created_at: Millis,
    /// Sliding expiry: pushed out on every refresh, never past `absolute_expires_at`.
    pub expires_at: Millis,
    pub absolute_expires_at: Millis,
}

impl SessionRecord {
    pub fn key(&self) -> SessionRef {
        SessionRef {
            user_id: self.user_id,
            id: self.id,
        }
    }

    /// Whether `hash` is this session's current refresh token (compared in constant time).
    pub fn is_current(&self, hash: &TokenHash) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.refresh_hash.ct_eq(hash))
    }

    /// Whether `hash` is this session's current refresh token or one it rotated away.
    pub fn knows(&self, hash: &TokenHash) -> bool {
        use subtle::ConstantTimeEq;
        let short = rotated(hash);
        self.is_current(hash)
            || self
                .previous_hashes
                .iter()
                .any(|h| bool::from(h.ct_eq(&short)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The presented token was current; it is replaced and the session extended.
    Rotated(SessionRecord),
    /// The presented token was already rotated away: the whole session is now revoked.
    Reused,
    /// No such live session, or a token it never issued.
    Invalid,
}

#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    async fn create(&self, session: SessionRecord) -> Result<(), StoreError>;

    /// The live session `s`, if it exists, has not expired and was not ended with its user's
    /// other sessions.
    async fn get(&self, s: SessionRef, now: Millis) -> Result<Option<SessionRecord>, StoreError>;

    /// As [`SessionStore::get`], from the store itself, never from a replica's cache: for a
    /// decision on the current refresh token, which another replica may just have rotated.
    async fn get_fresh(
        &self,
        s: SessionRef,
        now: Millis,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.get(s, now).await
    }

    /// Atomically: if `presented` is the current refresh hash, replace it with `new_hash` and
    /// move the sliding expiry to `new_expires_at` (capped by the absolute expiry); if it is a
    /// remembered old one, revoke the session.
    async fn rotate(
        &self,
        s: SessionRef,
        presented: &TokenHash,
        new_hash: TokenHash,
        new_expires_at: Millis,
        now: Millis,
    ) -> Result<Rotation, StoreError>;

    /// Ends one session. Returns whether it existed.
    async fn revoke(&self, s: SessionRef) -> Result<bool, StoreError>;

    /// Ends every session of the user, on every replica.
    async fn revoke_all(&self, user_id: Uuid) -> Result<(), StoreError>;
}

// ---------------------------------------------------------------------------------------------
// Rate limits

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Limited { retry_after: Duration },
}

/// Sliding-log limits: at most `rule.limit` events in *any* window of `rule.window_seconds`,
/// so there is no burst at window edges, and the wait returned is exact.
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Atomically: if fewer than `limit` events fall in the window ending now, record one.
    async fn hit(&self, key: &str, rule: LimitRule, now: Millis) -> Result<Decision, StoreError>;

    /// Gives back one event this caller recorded at `at` with `hit` (a reservation that was
    /// not used). Does nothing if there is none.
    async fn undo(&self, key: &str, rule: LimitRule, at: Millis) -> Result<(), StoreError>;
}

/// The sliding-log rule shared by every implementation: given the event times in the window
/// (oldest first), whether one more is allowed and, if not, the exact wait.
pub fn sliding_log_decision(events_in_window: &[Millis], rule: LimitRule, now: Millis) -> Decision {
    if events_in_window.len() < rule.limit as usize {
        return Decision::Allowed;
    }
    // The oldest event that must leave the window before one more fits.
    let idx = events_in_window.len() - rule.limit as usize;
    let leaves_at = events_in_window[idx] + window_ms(rule);
    Decision::Limited {
        retry_after: Duration::from_millis((leaves_at - now).max(1) as u64),
    }
}

pub fn window_ms(rule: LimitRule) -> Millis {
    Millis::from(rule.window_seconds) * 1000
}
