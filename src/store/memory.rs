//! In-memory stores: the embedded default. One process, nothing survives a restart.
//!
//! Each store is a map behind a `std::sync::Mutex` (sessions: an `RwLock`, as ValidateSession
//! only reads); every trait call takes the lock once and
//! never awaits while holding it, which makes each call atomic exactly as the Redis scripts are.
//! Expired entries are swept every [`SWEEP_EVERY`] writes so memory stays bounded by live state.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, RwLock};

use async_trait::async_trait;
use uuid::Uuid;

use super::{
    Attempt, Decision, Issue, OtpStore, REMEMBERED_ROTATIONS, RateLimiter, Rotation, SessionRecord,
    SessionRef, SessionStore, StoreError, StoredOtp, TokenHash, rotated, sliding_log_decision,
    window_ms,
};
use crate::clock::Millis;
use crate::config::LimitRule;
use crate::otp::PhoneKey;

const SWEEP_EVERY: u64 = 1024;

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Unavailable("in-memory store lock poisoned".into())
}

// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct OtpEntry {
    code: Option<(StoredOtp, u32)>,
    /// The id of the code `consume` took last (what `reinstate` may put back).
    gone: Option<u64>,
    cooldown_until: Millis,
    locked_until: Millis,
}

impl OtpEntry {
    fn is_dead(&self, now: Millis) -> bool {
        self.code.as_ref().is_none_or(|(c, _)| c.expires_at <= now)
            && self.cooldown_until <= now
            && self.locked_until <= now
    }
}

#[derive(Debug, Default)]
pub struct MemoryOtpStore {
    inner: Mutex<(HashMap<PhoneKey, OtpEntry>, u64)>,
}

impl MemoryOtpStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl OtpStore for MemoryOtpStore {
    async fn issue(
        &self,
        phone: &PhoneKey,
        otp: StoredOtp,
        cooldown_until: Millis,
        now: Millis,
    ) -> Result<Issue, StoreError> {
        let mut guard = self.inner.lock().map_err(poisoned)?;
        let (map, writes) = &mut *guard;
        *writes += 1;
        if writes.is_multiple_of(SWEEP_EVERY) {
            map.retain(|_, e| !e.is_dead(now));
        }
        let entry = map.entry(phone.clone()).or_default();
        if entry.cooldown_until > now {
            return Ok(Issue::Cooldown {
                until: entry.cooldown_until,
            });
        }
        entry.code = Some((otp, 0));
        entry.gone = None;
        entry.cooldown_until = cooldown_until;
        entry.locked_until = 0;
        Ok(Issue::Issued)
    }

    async fn cooldown_until(
        &self,
        phone: &PhoneKey,
        now: Millis,
    ) -> Result<Option<Millis>, StoreError> {
        let guard = self.inner.lock().map_err(poisoned)?;
        Ok(guard
            .0
            .get(phone)
            .map(|e| e.cooldown_until)
            .filter(|&t| t > now))
    }

    async fn begin_attempt(
        &self,
        phone: &PhoneKey,
        max_attempts: u32,
        now: Millis,
    ) -> Result<Attempt, StoreError> {
        let mut guard = self.inner.lock().map_err(poisoned)?;
        let Some(entry) = guard.0.get_mut(phone) else {
            return Ok(Attempt::NoCode);
        };
        if entry.locked_until > now {
            return Ok(Attempt::LockedOut);
        }
        match &mut entry.code {
            Some((otp, _)) if otp.expires_at <= now => {
                entry.code = None;
                Ok(Attempt::NoCode)
            }
            Some((otp, used)) => {
                if *used >= max_attempts {
                    return Ok(Attempt::LockedOut);
                }
                *used += 1;
                Ok(Attempt::Judge {
                    otp: otp.clone(),
                    attempt: *used,
                })
            }
            None => Ok(Attempt::NoCode),
        }
    }

    async fn consume(&self, phone: &PhoneKey, id: u64) -> Result<bool, StoreError> {
        let mut guard = self.inner.lock().map_err(poisoned)?;
        let Some(entry) = guard.0.get_mut(phone) else {
            return Ok(false);
        };
        if entry.code.as_ref().is_some_and(|(c, _)| c.id == id) {
            entry.code = None;
            entry.gone = Some(id);
            return Ok(true);
        }
        Ok(false)
    }

    async fn lock_out(
        &self,
        phone: &PhoneKey,
        id: u64,
        until: Millis,
        _now: Millis,
    ) -> Result<(), StoreError> {
        let mut guard = self.inner.lock().map_err(poisoned)?;
        if let Some(entry) = guard.0.get_mut(phone)
            && entry.code.as_ref().is_some_and(|(c, _)| c.id == id)
        {
            entry.code = None;
            entry.locked_until = until;
        }
        Ok(())
    }

    async fn withdraw(&self, phone: &PhoneKey, id: u64) -> Result<(), StoreError> {
        let mut guard = self.inner.lock().map_err(poisoned)?;
        if let Some(entry) = guard.0.get_mut(phone)
            && entry.code.as_ref().is_some_and(|(c, _)| c.id == id)
        {
            entry.code = None;
            entry.cooldown_until = 0;
        }
        Ok(())
    }

    async fn reinstate(
        &self,
        phone: &PhoneKey,
        otp: StoredOtp,
        used: u32,
        now: Millis,
    ) -> Result<(), StoreError> {
        let mut guard = self.inner.lock().map_err(poisoned)?;
        let entry = guard.0.entry(phone.clone()).or_default();
        // Only the code consumed last, and only if nothing was issued since.
        if entry.gone == Some(otp.id)
            && entry.code.is_none()
            && entry.locked_until <= now
            && otp.expires_at > now
        {
            entry.gone = None;
            entry.code = Some((otp, used));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Sessions {
    by_id: HashMap<Uuid, SessionRecord>,
    by_user: HashMap<Uuid, HashSet<Uuid>>,
    writes: u64,
}

impl Sessions {
    /// The session `r`, if it exists and belongs to that user.
    fn find(&self, r: SessionRef) -> Option<&SessionRecord> {
        self.by_id.get(&r.id).filter(|rec| rec.user_id == r.user_id)
    }

    fn remove(&mut self, id: Uuid) -> Option<SessionRecord> {
        let rec = self.by_id.remove(&id)?;
        if let Some(set) = self.by_user.get_mut(&rec.user_id) {
            set.remove(&id);
            if set.is_empty() {
                self.by_user.remove(&rec.user_id);
            }
        }
        Some(rec)
    }

    fn sweep(&mut self, now: Millis) {
        let dead: Vec<Uuid> = self
            .by_id
            .values()
            .filter(|s| s.expires_at <= now)
            .map(|s| s.id)
            .collect();
        for id in dead {
            self.remove(id);
        }
    }
}

#[derive(Debug, Default)]
pub struct MemorySessionStore {
    /// Read-mostly (ValidateSession): readers share the lock.
    inner: RwLock<Sessions>,
}

impl MemorySessionStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn create(&self, session: SessionRecord) -> Result<(), StoreError> {
        let mut s = self.inner.write().map_err(poisoned)?;
        s.writes += 1;
        if s.writes.is_multiple_of(SWEEP_EVERY) {
            s.sweep(session.created_at);
        }
        s.by_user
            .entry(session.user_id)
            .or_default()
            .insert(session.id);
        s.by_id.insert(session.id, session);
        Ok(())
    }

    async fn get(&self, r: SessionRef, now: Millis) -> Result<Option<SessionRecord>, StoreError> {
        let s = self.inner.read().map_err(poisoned)?;
        Ok(s.find(r).filter(|rec| rec.expires_at > now).cloned())
    }

    async fn rotate(
        &self,
        r: SessionRef,
        presented: &TokenHash,
        new_hash: TokenHash,
        new_expires_at: Millis,
        now: Millis,
    ) -> Result<Rotation, StoreError> {
        let mut s = self.inner.write().map_err(poisoned)?;
        let Some(rec) = s.find(r) else {
            return Ok(Rotation::Invalid);
        };
        if rec.expires_at <= now {
            s.remove(r.id);
            return Ok(Rotation::Invalid);
        }
        let current = rec.is_current(presented);
        let known = rec.knows(presented);
        if current {
            let rec = s.by_id.get_mut(&r.id).ok_or_else(|| poisoned(()))?;
            let old = std::mem::replace(&mut rec.refresh_hash, new_hash);
            rec.previous_hashes.push(rotated(&old));
            if rec.previous_hashes.len() > REMEMBERED_ROTATIONS {
                rec.previous_hashes.remove(0);
            }
            rec.expires_at = new_expires_at.min(rec.absolute_expires_at);
            return Ok(Rotation::Rotated(rec.clone()));
        }
        if known {
            s.remove(r.id);
            return Ok(Rotation::Reused);
        }
        Ok(Rotation::Invalid)
    }

    async fn revoke(&self, r: SessionRef) -> Result<bool, StoreError> {
        let mut s = self.inner.write().map_err(poisoned)?;
        if s.find(r).is_none() {
            return Ok(false);
        }
        Ok(s.remove(r.id).is_some())
    }

    async fn revoke_all(&self, user_id: Uuid) -> Result<(), StoreError> {
        let mut s = self.inner.write().map_err(poisoned)?;
        let ids: Vec<Uuid> = s
            .by_user
            .get(&user_id)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        for id in ids {
            s.remove(id);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Windows {
    logs: HashMap<String, (VecDeque<Millis>, Millis)>,
    writes: u64,
}

#[derive(Debug, Default)]
pub struct MemoryRateLimiter {
    inner: Mutex<Windows>,
}

impl MemoryRateLimiter {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Windows {
    /// The key's events still inside the window, oldest first (older ones dropped).
    fn window(&mut self, key: &str, rule: LimitRule, now: Millis) -> &mut VecDeque<Millis> {
        self.writes += 1;
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            self.logs
                .retain(|_, (log, win)| log.back().is_some_and(|&t| t + *win > now));
        }
        let win = window_ms(rule);
        let (log, stored_win) = self.logs.entry(key.to_owned()).or_default();
        *stored_win = win;
        while log.front().is_some_and(|&t| t + win <= now) {
            log.pop_front();
        }
        log
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn hit(&self, key: &str, rule: LimitRule, now: Millis) -> Result<Decision, StoreError> {
        let mut w = self.inner.lock().map_err(poisoned)?;
        let log = w.window(key, rule, now);
        let decision = sliding_log_decision(log.make_contiguous(), rule, now);
        if decision == Decision::Allowed {
            log.push_back(now);
        }
        Ok(decision)
    }

    async fn undo(&self, key: &str, _rule: LimitRule, at: Millis) -> Result<(), StoreError> {
        let mut w = self.inner.lock().map_err(poisoned)?;
        if let Some((log, _)) = w.logs.get_mut(key)
            && let Some(pos) = log.iter().rposition(|&t| t == at)
        {
            log.remove(pos);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance;

    #[tokio::test]
    async fn otp_store_conforms() {
        conformance::otp_store(&MemoryOtpStore::new()).await;
    }

    #[tokio::test]
    async fn session_store_conforms() {
        conformance::session_store(&MemorySessionStore::new()).await;
    }

    #[tokio::test]
    async fn rate_limiter_conforms() {
        conformance::rate_limiter(&MemoryRateLimiter::new()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_calls_never_beat_a_limit() {
        conformance::otp_store_parallel(std::sync::Arc::new(MemoryOtpStore::new())).await;
        conformance::session_store_parallel(std::sync::Arc::new(MemorySessionStore::new())).await;
        conformance::rate_limiter_parallel(std::sync::Arc::new(MemoryRateLimiter::new())).await;
    }
}
