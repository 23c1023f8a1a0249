//! The Redis stores, timed: every call lands in `arogya_auth_store_seconds{store,op}` and,
//! when traces are exported, runs under a `store` span (a child of the RPC's). Wraps the
//! backing store itself, inside the session cache, so a cache hit costs nothing here; the
//! in-memory stores are not wrapped.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::{
    Attempt, Decision, Issue, OtpStore, RateLimiter, Rotation, SessionRecord, SessionRef,
    SessionStore, StoreError, StoredOtp, TokenHash,
};
use crate::clock::Millis;
use crate::config::LimitRule;
use crate::metrics::Metrics;
use crate::otp::PhoneKey;

/// A store of kind `S` (one of the three store traits), timed.
pub struct Metered<S: ?Sized> {
    inner: Arc<S>,
    metrics: Arc<Metrics>,
}

impl<S: ?Sized> Metered<S> {
    pub fn new(inner: Arc<S>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl OtpStore for Metered<dyn OtpStore> {
    async fn issue(
        &self,
        phone: &PhoneKey,
        otp: StoredOtp,
        cooldown_until: Millis,
        now: Millis,
    ) -> Result<Issue, StoreError> {
        let call = self.inner.issue(phone, otp, cooldown_until, now);
        self.metrics.store("otp", "issue", call).await
    }

    async fn cooldown_until(
        &self,
        phone: &PhoneKey,
        now: Millis,
    ) -> Result<Option<Millis>, StoreError> {
        let call = self.inner.cooldown_until(phone, now);
        self.metrics.store("otp", "cooldown_until", call).await
    }

    async fn begin_attempt(
        &self,
        phone: &PhoneKey,
        max_attempts: u32,
        now: Millis,
    ) -> Result<Attempt, StoreError> {
        let call = self.inner.begin_attempt(phone, max_attempts, now);
        self.metrics.store("otp", "begin_attempt", call).await
    }

    async fn consume(&self, phone: &PhoneKey, id: u64) -> Result<bool, StoreError> {
        let call = self.inner.consume(phone, id);
        self.metrics.store("otp", "consume", call).await
    }

    async fn lock_out(
        &self,
        phone: &PhoneKey,
        id: u64,
        until: Millis,
        now: Millis,
    ) -> Result<(), StoreError> {
        let call = self.inner.lock_out(phone, id, until, now);
        self.metrics.store("otp", "lock_out", call).await
    }

    async fn withdraw(&self, phone: &PhoneKey, id: u64) -> Result<(), StoreError> {
        let call = self.inner.withdraw(phone, id);
        self.metrics.store("otp", "withdraw", call).await
    }

    async fn reinstate(
        &self,
        phone: &PhoneKey,
        otp: StoredOtp,
        used: u32,
        now: Millis,
    ) -> Result<(), StoreError> {
        let call = self.inner.reinstate(phone, otp, used, now);
        self.metrics.store("otp", "reinstate", call).await
    }
}

#[async_trait]
impl SessionStore for Metered<dyn SessionStore> {
    async fn create(&self, session: SessionRecord) -> Result<(), StoreError> {
        let call = self.inner.create(session);
        self.metrics.store("session", "create", call).await
    }

    async fn get(&self, s: SessionRef, now: Millis) -> Result<Option<SessionRecord>, StoreError> {
        let call = self.inner.get(s, now);
        self.metrics.store("session", "get", call).await
    }

    async fn get_fresh(
        &self,
        s: SessionRef,
        now: Millis,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let call = self.inner.get_fresh(s, now);
        self.metrics.store("session", "get", call).await
    }

    async fn rotate(
        &self,
        s: SessionRef,
        presented: &TokenHash,
        new_hash: TokenHash,
        new_expires_at: Millis,
        now: Millis,
    ) -> Result<Rotation, StoreError> {
        let call = self
            .inner
            .rotate(s, presented, new_hash, new_expires_at, now);
        self.metrics.store("session", "rotate", call).await
    }

    async fn revoke(&self, s: SessionRef) -> Result<bool, StoreError> {
        let call = self.inner.revoke(s);
        self.metrics.store("session", "revoke", call).await
    }

    async fn revoke_all(&self, user_id: Uuid) -> Result<(), StoreError> {
        let call = self.inner.revoke_all(user_id);
        self.metrics.store("session", "revoke_all", call).await
    }
}

#[async_trait]
impl RateLimiter for Metered<dyn RateLimiter> {
    async fn hit(&self, key: &str, rule: LimitRule, now: Millis) -> Result<Decision, StoreError> {
        let call = self.inner.hit(key, rule, now);
        self.metrics.store("rate_limit", "hit", call).await
    }

    async fn undo(&self, key: &str, rule: LimitRule, at: Millis) -> Result<(), StoreError> {
        let call = self.inner.undo(key, rule, at);
        self.metrics.store("rate_limit", "undo", call).await
    }
}
