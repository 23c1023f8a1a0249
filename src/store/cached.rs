//! A replica-local cache of live sessions in front of the Redis session store, so a hot
//! ValidateSession needs no Redis round trip, while an ended session is refused on every
//! replica within milliseconds.
//!
//! Safety rules: only `get` is served from the cache; every write goes to the store and evicts
//! the local entry; other replicas' ends arrive over Redis pub/sub ([`super::redis::follow_ended_sessions`]);
//! while that subscription is down the cache is off and empty; and no entry is trusted for
//! longer than [`MAX_AGE`], which bounds the damage of anything unforeseen.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use uuid::Uuid;

use super::{Rotation, SessionRecord, SessionStore, StoreError, TokenHash};
use crate::clock::Millis;

/// The longest an entry is trusted without asking Redis.
pub const MAX_AGE: Duration = Duration::from_secs(5);
const ENTRIES: usize = 65_536;

pub struct SessionCache {
    entries: quick_cache::sync::Cache<Uuid, (SessionRecord, Instant)>,
    enabled: AtomicBool,
}

impl SessionCache {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            entries: quick_cache::sync::Cache::new(ENTRIES),
            enabled: AtomicBool::new(false),
        })
    }

    pub fn enable(&self) {
        self.entries.clear();
        self.enabled.store(true, Ordering::SeqCst);
    }

    pub fn disable(&self) {
        self.enabled.store(false, Ordering::SeqCst);
        self.entries.clear();
    }

    pub fn evict(&self, id: Uuid) {
        self.entries.remove(&id);
    }

    fn fresh(&self, id: Uuid, now: Millis) -> Option<SessionRecord> {
        if !self.enabled.load(Ordering::SeqCst) {
            return None;
        }
        let (rec, at) = self.entries.get(&id)?;
        (at.elapsed() < MAX_AGE && rec.expires_at > now).then_some(rec)
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

    async fn get(&self, id: Uuid, now: Millis) -> Result<Option<SessionRecord>, StoreError> {
        if let Some(rec) = self.cache.fresh(id, now) {
            return Ok(Some(rec));
        }
        // Note the time before asking, so an end announced while we wait is not overwritten
        // by an older answer for longer than MAX_AGE.
        let asked = Instant::now();
        let found = self.inner.get(id, now).await?;
        if let Some(rec) = &found
            && self.cache.enabled.load(Ordering::SeqCst)
        {
            self.cache.entries.insert(id, (rec.clone(), asked));
        }
        Ok(found)
    }

    async fn rotate(
        &self,
        id: Uuid,
        presented: &TokenHash,
        new_hash: TokenHash,
        new_expires_at: Millis,
        now: Millis,
    ) -> Result<Rotation, StoreError> {
        self.cache.evict(id);
        self.inner
            .rotate(id, presented, new_hash, new_expires_at, now)
            .await
    }

    async fn revoke(&self, id: Uuid) -> Result<bool, StoreError> {
        self.cache.evict(id);
        self.inner.revoke(id).await
    }

    async fn revoke_all(&self, user_id: Uuid) -> Result<usize, StoreError> {
        let n = self.inner.revoke_all(user_id).await?;
        // Our own ends arrive over pub/sub too; clearing now covers the gap.
        self.cache.entries.clear();
        Ok(n)
    }
}
