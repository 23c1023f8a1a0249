//! A replica-local cache of live sessions in front of the Redis session store, so a hot
//! ValidateSession needs no Redis round trip, while an ended session is refused on every
//! replica within milliseconds.
//!
//! Safety rules: only `get` is served from the cache; every write goes to the store and evicts
//! the local entry; other replicas' ends arrive over Redis pub/sub ([`super::redis::follow_ended_sessions`]);
//! while that subscription is down the cache is off and empty; and no entry is trusted for
//! longer than [`MAX_AGE`], which bounds the damage of anything unforeseen.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use uuid::Uuid;

use super::{Rotation, SessionRecord, SessionRef, SessionStore, StoreError, TokenHash};
use crate::clock::Millis;

/// The longest an entry is trusted without asking Redis.
pub const MAX_AGE: Duration = Duration::from_secs(5);
const ENTRIES: usize = 65_536;

pub struct SessionCache {
    entries: quick_cache::sync::Cache<Uuid, (SessionRecord, Instant)>,
    enabled: AtomicBool,
    /// Bumped by every eviction: a read that raced an end announcement is not cached.
    evictions: AtomicU64,
}

impl SessionCache {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            entries: quick_cache::sync::Cache::new(ENTRIES),
            enabled: AtomicBool::new(false),
            evictions: AtomicU64::new(0),
        })
    }

    pub fn enable(&self) {
        self.evictions.fetch_add(1, Ordering::SeqCst);
        self.entries.clear();
        self.enabled.store(true, Ordering::SeqCst);
    }

    pub fn disable(&self) {
        self.enabled.store(false, Ordering::SeqCst);
        self.evictions.fetch_add(1, Ordering::SeqCst);
        self.entries.clear();
    }

    pub fn evict(&self, id: Uuid) {
        self.evictions.fetch_add(1, Ordering::SeqCst);
        self.entries.remove(&id);
    }

    /// Drops every cached session of the user (a "log out everywhere"). Walks the cache: rare
    /// enough that an index by user would cost more than it saves.
    pub fn evict_user(&self, user_id: Uuid) {
        self.evictions.fetch_add(1, Ordering::SeqCst);
        self.entries.retain(|_, (rec, _)| rec.user_id != user_id);
    }

    fn fresh(&self, r: SessionRef, now: Millis) -> Option<SessionRecord> {
        if !self.enabled.load(Ordering::SeqCst) {
            return None;
        }
        let (rec, at) = self.entries.get(&r.id)?;
        (at.elapsed() < MAX_AGE && rec.expires_at > now && rec.user_id == r.user_id).then_some(rec)
    }
}

/// The session store with the cache in front of `get`.
pub struct CachedSessions {
    inner: Arc<dyn SessionStore>,
    cache: Arc<SessionCache>,
}

impl CachedSessions {
    pub fn new(inner: Arc<dyn SessionStore>, cache: Arc<SessionCache>) -> Self {
        Self { inner, cache }
    }
}

#[async_trait]
impl SessionStore for CachedSessions {
    async fn create(&self, session: SessionRecord) -> Result<(), StoreError> {
        self.inner.create(session).await
    }

    async fn get(&self, r: SessionRef, now: Millis) -> Result<Option<SessionRecord>, StoreError> {
        if let Some(rec) = self.cache.fresh(r, now) {
            return Ok(Some(rec));
        }
        // An end announced while we wait must not be undone by caching the older answer:
        // cache it only if nothing was evicted meanwhile.
        let asked = Instant::now();
        let generation = self.cache.evictions.load(Ordering::SeqCst);
        let found = self.inner.get(r, now).await?;
        if let Some(rec) = &found
            && self.cache.enabled.load(Ordering::SeqCst)
            && self.cache.evictions.load(Ordering::SeqCst) == generation
        {
            self.cache.entries.insert(r.id, (rec.clone(), asked));
            // An eviction between the check and the insert must win: undo the insert.
            if self.cache.evictions.load(Ordering::SeqCst) != generation {
                self.cache.entries.remove(&r.id);
            }
        }
        Ok(found)
    }

    async fn rotate(
        &self,
        r: SessionRef,
        presented: &TokenHash,
        new_hash: TokenHash,
        new_expires_at: Millis,
        now: Millis,
    ) -> Result<Rotation, StoreError> {
        self.cache.evict(r.id);
        self.inner
            .rotate(r, presented, new_hash, new_expires_at, now)
            .await
    }

    async fn get_fresh(
        &self,
        r: SessionRef,
        now: Millis,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.inner.get_fresh(r, now).await
    }

    async fn revoke(&self, r: SessionRef) -> Result<bool, StoreError> {
        self.cache.evict(r.id);
        self.inner.revoke(r).await
    }

    async fn revoke_all(&self, user_id: Uuid) -> Result<(), StoreError> {
        self.inner.revoke_all(user_id).await?;
        // Our own ends arrive over pub/sub too; evicting now covers the gap.
        self.cache.evict_user(user_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};
    use crate::store::memory::MemorySessionStore;

    fn record(now: Millis) -> SessionRecord {
        SessionRecord {
            id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            phone_e164: "+919876543210".into(),
            refresh_hash: [1; 32],
            previous_hashes: vec![],
            created_at: now,
            expires_at: now + 60_000,
            absolute_expires_at: now + 60_000,
        }
    }

    #[tokio::test]
    async fn reads_are_cached_until_evicted_and_never_while_disabled() {
        let now = SystemClock.now_ms();
        let inner = Arc::new(MemorySessionStore::new());
        let cache = SessionCache::new();
        let store = CachedSessions::new(inner.clone(), cache.clone());
        let rec = record(now);
        store.create(rec.clone()).await.unwrap();

        // Disabled (no subscription yet): every read asks the store.
        assert!(store.get(rec.key(), now).await.unwrap().is_some());
        inner.revoke(rec.key()).await.unwrap(); // behind the cache's back
        assert!(
            store.get(rec.key(), now).await.unwrap().is_none(),
            "nothing was cached while disabled"
        );

        cache.enable();
        let rec = record(now);
        store.create(rec.clone()).await.unwrap();
        assert!(store.get(rec.key(), now).await.unwrap().is_some());
        inner.revoke(rec.key()).await.unwrap(); // another replica ended it...
        assert!(
            store.get(rec.key(), now).await.unwrap().is_some(),
            "...served from the cache until announced"
        );
        cache.evict(rec.id); // ...the announcement arrives
        assert!(store.get(rec.key(), now).await.unwrap().is_none());

        // An entry never outlives the session's own expiry.
        let rec = record(now);
        store.create(rec.clone()).await.unwrap();
        assert!(store.get(rec.key(), now).await.unwrap().is_some());
        assert!(store.get(rec.key(), now + 60_000).await.unwrap().is_none());

        // Losing the subscription empties and bypasses the cache.
        let rec = record(now);
        store.create(rec.clone()).await.unwrap();
        assert!(store.get(rec.key(), now).await.unwrap().is_some());
        inner.revoke(rec.key()).await.unwrap();
        cache.disable();
        assert!(store.get(rec.key(), now).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn ending_a_users_sessions_evicts_theirs_and_no_others() {
        let now = SystemClock.now_ms();
        let inner = Arc::new(MemorySessionStore::new());
        let cache = SessionCache::new();
        cache.enable();
        let store = CachedSessions::new(inner.clone(), cache.clone());
        let (a, b) = (record(now), record(now));
        for r in [&a, &b] {
            store.create(r.clone()).await.unwrap();
            assert!(store.get(r.key(), now).await.unwrap().is_some());
        }
        let stranger = SessionRef {
            user_id: b.user_id,
            id: a.id,
        };
        assert!(
            store.get(stranger, now).await.unwrap().is_none(),
            "a cached session answers only for its own user"
        );
        // Both end behind the cache's back; only a's user is announced.
        inner.revoke_all(a.user_id).await.unwrap();
        inner.revoke(b.key()).await.unwrap();
        cache.evict_user(a.user_id);
        assert!(store.get(a.key(), now).await.unwrap().is_none());
        assert!(
            store.get(b.key(), now).await.unwrap().is_some(),
            "another user's entry stays cached until its own announcement"
        );
    }
}
