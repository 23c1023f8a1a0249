//! Redis stores: production state shared by every replica.
//!
//! Every check-and-update is one Lua script on one key, so it is atomic on the server whatever
//! the number of replicas or parallel calls, and on Redis Cluster each script touches one slot
//! (keys carry a hash tag: `{prefix}otp:{<phone key>}`). Times come from the caller (`now`, Unix
//! ms), and each record carries its own expiry as well as a key TTL, so the rules do not depend
//! on Redis's clock and nothing outlives its use.
//!
//! Key layout (`P` is `redis.key_prefix`, default `arogya:`):
//!
//! | key | type | holds | TTL |
//! | --- | --- | --- | --- |
//! | `P otp:{K}` | hash | `id h exp used cd lock gone` for phone key K (HMAC of the number) | max(code expiry, cooldown, lock-out) |
//! | `P rl:{name}` | sorted set | one member per event, scored by its time | the window |
//! | `P s:{T}` + session id (16 raw bytes) | string | one packed session (see `AT_*` below); T is the user's tag | sliding expiry |
//! | `P e:{T}` + user id | integer | the user's session epoch, bumped by "log out everywhere" | longer than any session |
//!
//! Errors of the connection (down, timeout) become `StoreError::Unavailable`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};
use uuid::Uuid;

use super::{
    Attempt, Decision, Issue, OtpStore, REMEMBERED_ROTATIONS, RateLimiter, Rotation, SessionRecord,
    SessionRef, SessionStore, StoreError, StoredOtp, TokenHash, window_ms,
};
use crate::clock::Millis;
use crate::config::LimitRule;
use crate::otp::{CodeHash, PhoneKey};

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("redis: {what}"))
}

/// One Redis server (through a reconnecting manager) or a cluster, with a hard deadline on
/// every call. Cheap to clone.
#[derive(Clone)]
pub struct RedisConn(Arc<Inner>);

struct Inner {
    kind: Kind,
    timeout: Duration,
    timeouts_in_a_row: AtomicU32,
}

#[allow(clippy::large_enum_variant)] // one per process, behind an Arc
enum Kind {
    Single {
        client: redis::Client,
        config: ConnectionManagerConfig,
        manager: RwLock<ConnectionManager>,
    },
    Cluster(ClusterConnection),
}

/// A connection for one call.
enum Handle {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Handle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Handle::Single(c) => c.req_packed_command(cmd),
            Handle::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        p: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Handle::Single(c) => c.req_packed_commands(p, offset, count),
            Handle::Cluster(c) => c.req_packed_commands(p, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Handle::Single(c) => c.get_db(),
            Handle::Cluster(c) => c.get_db(),
        }
    }
}

/// After this many timeouts in a row the single-server connection is replaced: a host that
/// vanished without closing the socket would otherwise keep every call timing out until the
/// kernel gives up on the socket (many minutes).
const TIMEOUTS_BEFORE_RECONNECT: u32 = 3;

impl RedisConn {
    /// Connects lazily to one server: the service starts even while Redis is down, and every
    /// call fails within `timeout` until it answers. A comma-separated URL list, or
    /// `cluster = true`, means a cluster (which must answer at start).
    pub async fn connect(url: &str, cluster: bool, timeout: Duration) -> Result<Self, StoreError> {
        let urls: Vec<&str> = url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        let kind = if cluster || urls.len() > 1 {
            // No retries: a script resent after a dropped connection could apply twice (a
            // rotation seen as its own reuse). A failed call is UNAVAILABLE; the client retries.
            let client = redis::cluster::ClusterClientBuilder::new(urls)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(0)
                .build()
                .map_err(unavailable)?;
            Kind::Cluster(client.get_async_connection().await.map_err(unavailable)?)
        } else {
            let client = redis::Client::open(url).map_err(unavailable)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(200));
            let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                .map_err(unavailable)?;
            Kind::Single {
                client,
                config,
                manager: RwLock::new(manager),
            }
        };
        Ok(Self(Arc::new(Inner {
            kind,
            timeout,
            timeouts_in_a_row: AtomicU32::new(0),
        })))
    }

    fn handle(&self) -> Handle {
        match &self.0.kind {
            Kind::Single { manager, .. } => {
                Handle::Single(manager.read().unwrap_or_else(|p| p.into_inner()).clone())
            }
            Kind::Cluster(c) => Handle::Cluster(c.clone()),
        }
    }

    /// Runs one call under the deadline, counting timeouts.
    async fn run<T, F>(&self, call: impl FnOnce(Handle) -> F) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.0.timeout, call(self.handle())).await {
            Ok(Ok(v)) => {
                self.0.timeouts_in_a_row.store(0, Ordering::Relaxed);
                Ok(v)
            }
            Ok(Err(e)) => {
                if e.is_timeout() {
                    self.note_timeout();
                }
                Err(unavailable(e))
            }
            Err(_) => {
                self.note_timeout();
                Err(StoreError::Unavailable(format!(
                    "redis: no answer within {} ms",
                    self.0.timeout.as_millis()
                )))
            }
        }
    }

    fn note_timeout(&self) {
        let n = self.0.timeouts_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        if n < TIMEOUTS_BEFORE_RECONNECT {
            return;
        }
        if let Kind::Single {
            client,
            config,
            manager,
        } = &self.0.kind
            && let Ok(fresh) =
                ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
        {
            *manager.write().unwrap_or_else(|p| p.into_inner()) = fresh;
            self.0.timeouts_in_a_row.store(0, Ordering::Relaxed);
            tracing::warn!(
                timeouts = n,
                "redis keeps timing out; opening a new connection"
            );
        }
    }

    async fn eval<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        key: &str,
        args: &[&[u8]],
    ) -> Result<T, StoreError> {
        self.eval_keys(script, &[key.as_bytes()], args).await
    }

    /// A script over several keys, which must share one hash slot.
    async fn eval_keys<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&[u8]],
        args: &[&[u8]],
    ) -> Result<T, StoreError> {
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(*k);
        }
        for a in args {
            inv.arg(*a);
        }
        self.run(|mut h| async move { inv.invoke_async(&mut h).await })
            .await
    }

    async fn cmd<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        self.run(|mut h| async move { cmd.query_async(&mut h).await })
            .await
    }

    /// Whether this connection talks to a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.0.kind, Kind::Cluster(_))
    }

    /// The client behind a single-server connection (for pub/sub), none for a cluster.
    pub fn client(&self) -> Option<redis::Client> {
        match &self.0.kind {
            Kind::Single { client, .. } => Some(client.clone()),
            Kind::Cluster(_) => None,
        }
    }

    /// Redis's `maxmemory-policy`, if it answers `CONFIG GET` (managed services may not).
    pub async fn eviction_policy(&self) -> Option<String> {
        let reply: Vec<String> = self
            .cmd(redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy"))
            .await
            .ok()?;
        reply.get(1).cloned()
    }

    /// `PING`, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.cmd::<String>(&redis::cmd("PING")).await.map(|_| ())
    }
}

fn num(n: impl ToString) -> Vec<u8> {
    n.to_string().into_bytes()
}

// ---------------------------------------------------------------------------------------------
// OTP codes

const OTP_ISSUE: &str = r#"
local now = tonumber(ARGV[1])
local cd = tonumber(redis.call('HGET', KEYS[1], 'cd') or '0')
if cd > now then return {0, cd} end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'id', ARGV[2], 'h', ARGV[3], 'exp', ARGV[4], 'used', 0, 'cd', ARGV[5])
local last = math.max(tonumber(ARGV[4]), tonumber(ARGV[5]))
redis.call('PEXPIRE', KEYS[1], math.max(last - now, 1))
return {1, 0}
"#;

const OTP_BEGIN_ATTEMPT: &str = r#"
local now, max = tonumber(ARGV[1]), tonumber(ARGV[2])
local f = redis.call('HMGET', KEYS[1], 'id', 'h', 'exp', 'used', 'lock')
if f[5] and tonumber(f[5]) > now then return {2} end
if not f[1] then return {0} end
if tonumber(f[3]) <= now then
  redis.call('HDEL', KEYS[1], 'id', 'h', 'exp', 'used')
  return {0}
end
if tonumber(f[4]) >= max then return {2} end
local used = redis.call('HINCRBY', KEYS[1], 'used', 1)
return {1, f[1], f[2], f[3], used}
"#;

const OTP_CONSUME: &str = r#"
if redis.call('HGET', KEYS[1], 'id') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'id', 'h', 'exp', 'used')
  redis.call('HSET', KEYS[1], 'gone', ARGV[1])
  return 1
end
return 0
"#;

const OTP_LOCK_OUT: &str = r#"
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'id', 'h', 'exp', 'used')
redis.call('HSET', KEYS[1], 'lock', ARGV[2])
local want = tonumber(ARGV[2]) - tonumber(ARGV[3])
if redis.call('PTTL', KEYS[1]) < want then redis.call('PEXPIRE', KEYS[1], math.max(want, 1)) end
return 1
"#;

const OTP_WITHDRAW: &str = r#"
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'id', 'h', 'exp', 'used')
redis.call('HSET', KEYS[1], 'cd', 0)
return 1
"#;

const OTP_REINSTATE: &str = r#"
local now = tonumber(ARGV[5])
local f = redis.call('HMGET', KEYS[1], 'id', 'lock', 'gone')
if f[1] or (f[2] and tonumber(f[2]) > now) or tonumber(ARGV[3]) <= now then return 0 end
if f[3] ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'gone')
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'h', ARGV[2], 'exp', ARGV[3], 'used', ARGV[4])
local want = tonumber(ARGV[3]) - now
if redis.call('PTTL', KEYS[1]) < want then redis.call('PEXPIRE', KEYS[1], want) end
return 1
"#;

pub struct RedisOtpStore {
    conn: RedisConn,
    prefix: String,
    scripts: [Script; 6],
}

impl RedisOtpStore {
    pub fn new(conn: RedisConn, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            scripts: [
                OTP_ISSUE,
                OTP_BEGIN_ATTEMPT,
                OTP_CONSUME,
                OTP_LOCK_OUT,
                OTP_WITHDRAW,
                OTP_REINSTATE,
            ]
            .map(Script::new),
        }
    }

    fn key(&self, phone: &PhoneKey) -> String {
        format!("{}otp:{{{}}}", self.prefix, phone.as_str())
    }
}

#[async_trait]
impl OtpStore for RedisOtpStore {
    async fn issue(
        &self,
        phone: &PhoneKey,
        otp: StoredOtp,
        cooldown_until: Millis,
        now: Millis,
    ) -> Result<Issue, StoreError> {
        let (ok, until): (i64, i64) = self
            .conn
            .eval(
                &self.scripts[0],
                &self.key(phone),
                &[
                    &num(now),
                    &num(otp.id),
                    &otp.hash,
                    &num(otp.expires_at),
                    &num(cooldown_until),
                ],
            )
            .await?;
        Ok(if ok == 1 {
            Issue::Issued
        } else {
            Issue::Cooldown { until }
        })
    }

    async fn cooldown_until(
        &self,
        phone: &PhoneKey,
        now: Millis,
    ) -> Result<Option<Millis>, StoreError> {
        let cd: Option<i64> = self
            .conn
            .cmd(redis::cmd("HGET").arg(self.key(phone)).arg("cd"))
            .await?;
        Ok(cd.filter(|&t| t > now))
    }

    async fn begin_attempt(
        &self,
        phone: &PhoneKey,
        max_attempts: u32,
        now: Millis,
    ) -> Result<Attempt, StoreError> {
        let reply: Vec<Value> = self
            .conn
            .eval(
                &self.scripts[1],
                &self.key(phone),
                &[&num(now), &num(max_attempts)],
            )
            .await?;
        let int = |v: &Value| -> Result<i64, StoreError> {
            redis::from_redis_value_ref::<i64>(v).map_err(|_| corrupt("otp reply"))
        };
        match reply.first().map(int).transpose()? {
            Some(0) => Ok(Attempt::NoCode),
            Some(2) => Ok(Attempt::LockedOut),
            Some(1) if reply.len() == 5 => {
                let id: u64 = redis::from_redis_value_ref::<String>(&reply[1])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| corrupt("otp id"))?;
                let hash: Vec<u8> =
                    redis::from_redis_value_ref(&reply[2]).map_err(|_| corrupt("otp hash"))?;
                let hash: CodeHash = hash.try_into().map_err(|_| corrupt("otp hash length"))?;
                let expires_at = redis::from_redis_value_ref::<String>(&reply[3])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| corrupt("otp expiry"))?;
                let attempt = int(&reply[4])? as u32;
                Ok(Attempt::Judge {
                    otp: StoredOtp {
                        id,
                        hash,
                        expires_at,
                    },
                    attempt,
                })
            }
            _ => Err(corrupt("unexpected otp reply")),
        }
    }

    async fn consume(&self, phone: &PhoneKey, id: u64) -> Result<bool, StoreError> {
        let n: i64 = self
            .conn
            .eval(&self.scripts[2], &self.key(phone), &[&num(id)])
            .await?;
        Ok(n == 1)
    }

    async fn lock_out(
        &self,
        phone: &PhoneKey,
        id: u64,
        until: Millis,
        now: Millis,
    ) -> Result<(), StoreError> {
        let _: i64 = self
            .conn
            .eval(
                &self.scripts[3],
                &self.key(phone),
                &[&num(id), &num(until), &num(now)],
            )
            .await?;
        Ok(())
    }

    async fn withdraw(&self, phone: &PhoneKey, id: u64) -> Result<(), StoreError> {
        let _: i64 = self
            .conn
            .eval(&self.scripts[4], &self.key(phone), &[&num(id)])
            .await?;
        Ok(())
    }

    async fn reinstate(
        &self,
        phone: &PhoneKey,
        otp: StoredOtp,
        used: u32,
        now: Millis,
    ) -> Result<(), StoreError> {
        let _: i64 = self
            .conn
            .eval(
                &self.scripts[5],
                &self.key(phone),
                &[
                    &num(otp.id),
                    &otp.hash,
                    &num(otp.expires_at),
                    &num(used),
                    &num(now),
                ],
            )
            .await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Rate limits

const RL_HIT: &str = r#"
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
return math.max(tonumber(oldest[2]) + window - now, 1)
"#;

const RL_UNDO: &str = r#"
local m = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1], 'LIMIT', 0, 1)
if m[1] then redis.call('ZREM', KEYS[1], m[1]) end
return 0
"#;

pub struct RedisRateLimiter {
    conn: RedisConn,
    prefix: String,
    hit: Script,
    undo: Script,
}

impl RedisRateLimiter {
    pub fn new(conn: RedisConn, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            hit: Script::new(RL_HIT),
            undo: Script::new(RL_UNDO),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}rl:{{{name}}}", self.prefix)
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn hit(&self, key: &str, rule: LimitRule, now: Millis) -> Result<Decision, StoreError> {
        // Members must be unique per event: the time plus 64 random bits.
        let member = format!("{now}-{:016x}", rand::rng().next_u64());
        let wait: i64 = self
            .conn
            .eval(
                &self.hit,
                &self.key(key),
                &[
                    &num(now),
                    &num(window_ms(rule)),
                    &num(rule.limit),
                    member.as_bytes(),
                ],
            )
            .await?;
        Ok(if wait == 0 {
            Decision::Allowed
        } else {
            Decision::Limited {
                retry_after: Duration::from_millis(wait as u64),
            }
        })
    }

    async fn undo(&self, key: &str, _rule: LimitRule, at: Millis) -> Result<(), StoreError> {
        let _: i64 = self
            .conn
            .eval(&self.undo, &self.key(key), &[&num(at)])
            .await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions

/// The channel on which ended sessions are announced.
pub fn ended_channel(prefix: &str) -> String {
    format!("{prefix}session-ended")
}

/// What one announcement on [`ended_channel`] ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Session(Uuid),
    User(Uuid),
}

impl Ended {
    fn payload(self) -> String {
        match self {
            Ended::Session(id) => format!("s:{}", id.simple()),
            Ended::User(id) => format!("u:{}", id.simple()),
        }
    }

    fn parse(payload: &str) -> Option<Self> {
        let (kind, id) = payload.split_once(':')?;
        let id = Uuid::parse_str(id).ok()?;
        match kind {
            "s" => Some(Ended::Session(id)),
            "u" => Some(Ended::User(id)),
            _ => None,
        }
    }
}

/// Keeps `cache` in step with the sessions other replicas end: every session or user announced
/// on the channel is evicted. While the subscription is down the cache is switched off (and
/// emptied), so a missed announcement can never keep a revoked session alive; so is an
/// announcement this replica cannot read.
pub async fn follow_ended_sessions(
    client: redis::Client,
    channel: String,
    cache: std::sync::Arc<super::cached::SessionCache>,
) {
    use tokio_stream::StreamExt;
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if pubsub.subscribe(&channel).await.is_ok() {
                    cache.enable();
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        let ended = msg.get_payload::<String>().ok();
                        match ended.as_deref().and_then(Ended::parse) {
                            Some(Ended::Session(id)) => cache.evict(id),
                            Some(Ended::User(id)) => cache.evict_user(id),
                            None => cache.disable(),
                        }
                    }
                }
                cache.disable();
                tracing::warn!(
                    "session-ended subscription lost; local session cache off until it is back"
                );
            }
            Err(_) => cache.disable(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// A session is one string of 75 bytes when new (+ 8 per remembered rotation), laid out as
// below; Redis spends about 230 bytes on it in all (key, value, expiry entry, table slots).
const AT_EPOCH: usize = 0; // u16: the user's session epoch when the session began
const AT_CREATED: usize = 2; // u48 ms
const AT_EXPIRES: usize = 8; // u48 ms, sliding
const AT_ABSOLUTE: usize = 14; // u48 ms
const AT_HASH: usize = 20; // 32 bytes: SHA-256 of the current refresh token
const AT_PHONE_LEN: usize = 52; // u8
const AT_PHONE: usize = 53; // the number, sealed; then the remembered rotations, 8 bytes each
const MAX_U48: Millis = (1 << 48) - 1;

/// Until an epoch key expires every session it could have ended has expired too: longer than
/// the longest session the configuration allows (3,650 days).
const EPOCH_KEEP_MS: Millis = 3651 * 24 * 60 * 60 * 1000;

/// Starts a session: stamps it with its user's current epoch (0 until the first "log out
/// everywhere") and keeps the epoch key alive as long as the session can live.
const SESS_CREATE: &str = r#"
local e = tonumber(redis.call('GET', KEYS[2]) or '0')
redis.call('SET', KEYS[1], struct.pack('>I2', e % 65536) .. ARGV[1], 'PX', ARGV[2])
if e > 0 and redis.call('PTTL', KEYS[2]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return 1
"#;

/// Rotation with reuse detection; see `SessionStore::rotate`. Returns {1, new value},
/// {2} for a replayed token (the session is deleted and announced), {0} otherwise.
const SESS_ROTATE: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then return {0} end
if #v < 53 or #v < 53 + string.byte(v, 53) or (#v - 53 - string.byte(v, 53)) % 8 ~= 0 then
  return {3}
end
local now = tonumber(ARGV[4])
local epoch = tonumber(redis.call('GET', KEYS[2]) or '0') % 65536
if struct.unpack('>I2', v, 1) ~= epoch or struct.unpack('>I6', v, 9) <= now then
  redis.call('DEL', KEYS[1])
  return {0}
end
local phone_end = 54 + string.byte(v, 53)
local prev = string.sub(v, phone_end)
if string.sub(v, 21, 52) == ARGV[1] then
  prev = prev .. string.sub(ARGV[1], 1, 8)
  local keep = tonumber(ARGV[5])
  if #prev > keep then prev = string.sub(prev, #prev - keep + 1) end
  local exp = math.min(tonumber(ARGV[3]), (struct.unpack('>I6', v, 15)))
  local nv = string.sub(v, 1, 8) .. struct.pack('>I6', exp) .. string.sub(v, 15, 20)
    .. ARGV[2] .. string.sub(v, 53, phone_end - 1) .. prev
  redis.call('SET', KEYS[1], nv, 'PX', math.max(exp - now, 1))
  if epoch > 0 and redis.call('PTTL', KEYS[2]) < exp - now then
    redis.call('PEXPIRE', KEYS[2], exp - now)
  end
  return {1, nv}
end
local short = string.sub(ARGV[1], 1, 8)
for i = 1, #prev, 8 do
  if string.sub(prev, i, i + 7) == short then
    redis.call('DEL', KEYS[1])
    redis.call('PUBLISH', ARGV[6], ARGV[7])
    return {2}
  end
end
return {0}
"#;

/// Ends every session of a user at once: a new epoch, which no existing session carries.
const SESS_END_ALL: &str = r#"
redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"#;

/// Encrypts the one personal field a session holds (the phone number), so a Redis dump or a
/// replica's memory never shows a full number. The number is packed two digits to a byte and
/// sealed with AES-256-GCM; the nonce is the session id's first 12 bytes (random, and each
/// session seals exactly one number, once), and the session and user ids are bound in as
/// associated data, so a sealed number moved to another session does not open.
pub struct FieldCipher(LessSafeKey);

impl FieldCipher {
    pub fn new(key: [u8; 32]) -> Self {
        // AES-256 takes any 32-byte key; `new` cannot fail for that length.
        let unbound = UnboundKey::new(&AES_256_GCM, &key)
            .unwrap_or_else(|_| unreachable!("32-byte AES-256 key"));
        Self(LessSafeKey::new(unbound))
    }

    fn nonce(session: Uuid) -> Nonce {
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&session.as_bytes()[..NONCE_LEN]);
        Nonce::assume_unique_for_key(nonce)
    }

    /// Associated data: the session id and its user's id.
    fn aad(r: SessionRef) -> [u8; 32] {
        let mut aad = [0u8; 32];
        aad[..16].copy_from_slice(r.id.as_bytes());
        aad[16..].copy_from_slice(r.user_id.as_bytes());
        aad
    }

    fn seal(&self, r: SessionRef, e164: &str) -> Result<Vec<u8>, StoreError> {
        let mut data = pack_digits(e164)?;
        self.0
            .seal_in_place_append_tag(Self::nonce(r.id), Aad::from(Self::aad(r)), &mut data)
            .map_err(|_| corrupt("cannot encrypt"))?;
        Ok(data)
    }

    fn open(&self, r: SessionRef, sealed: &[u8]) -> Result<String, StoreError> {
        let mut data = sealed.to_vec();
        let plain = self
            .0
            .open_in_place(Self::nonce(r.id), Aad::from(Self::aad(r)), &mut data)
            .map_err(|_| corrupt("sealed field does not open (was otp.secret changed?)"))?;
        unpack_digits(plain)
    }
}

/// `+919876543210` → `91 98 76 54 32 10`, an odd count padded with the nibble F.
fn pack_digits(e164: &str) -> Result<Vec<u8>, StoreError> {
    let digits = e164.strip_prefix('+').unwrap_or(e164).as_bytes();
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(corrupt("not an E.164 number"));
    }
    Ok(digits
        .chunks(2)
        .map(|pair| {
            let hi = pair[0] - b'0';
            let lo = pair.get(1).map_or(0xF, |d| d - b'0');
            hi << 4 | lo
        })
        .collect())
}

fn unpack_digits(packed: &[u8]) -> Result<String, StoreError> {
    let mut out = String::with_capacity(1 + packed.len() * 2);
    out.push('+');
    for (i, nibble) in packed.iter().flat_map(|b| [b >> 4, b & 0xF]).enumerate() {
        match nibble {
            0..=9 => out.push(char::from(b'0' + nibble)),
            0xF if i == packed.len() * 2 - 1 => {}
            _ => return Err(corrupt("sealed number")),
        }
    }
    Ok(out)
}

fn put_ms(buf: &mut Vec<u8>, ms: Millis) {
    buf.extend_from_slice(&(ms.clamp(0, MAX_U48) as u64).to_be_bytes()[2..]);
}

fn ms_at(v: &[u8], at: usize) -> Millis {
    let mut be = [0u8; 8];
    be[2..].copy_from_slice(&v[at..at + 6]);
    u64::from_be_bytes(be) as Millis
}

pub struct RedisSessionStore {
    conn: RedisConn,
    prefix: String,
    /// Pub/sub channel announcing ended sessions to every replica's local cache.
    ended_channel: String,
    cipher: FieldCipher,
    create: Script,
    rotate: Script,
    end_all: Script,
}

impl RedisSessionStore {
    pub fn new(conn: RedisConn, prefix: &str, cipher: FieldCipher) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            ended_channel: ended_channel(prefix),
            cipher,
            create: Script::new(SESS_CREATE),
            rotate: Script::new(SESS_ROTATE),
            end_all: Script::new(SESS_END_ALL),
        }
    }

    /// The hash tag that puts a user's sessions and epoch in one cluster slot: 12 bytes of
    /// SHA-256 of the whole user id, base64url. Short, so a session key stays within 48
    /// bytes; derived from every byte of the id, so a refresh token with a doctored user id
    /// names another key (finding a second id with the same tag is 2^96 work), never the
    /// session under another user's epoch.
    fn tag(user_id: Uuid) -> String {
        use sha2::{Digest, Sha256};
        URL_SAFE_NO_PAD.encode(&Sha256::digest(user_id.as_bytes())[..12])
    }

    /// `P s:{T}` + the session id's 16 raw bytes.
    fn key(&self, r: SessionRef) -> Vec<u8> {
        let mut key = format!("{}s:{{{}}}", self.prefix, Self::tag(r.user_id)).into_bytes();
        key.extend_from_slice(r.id.as_bytes());
        key
    }

    /// `P e:{T}` + the user id: the user's session epoch, present once they have logged out
    /// everywhere.
    fn epoch_key(&self, user_id: Uuid) -> Vec<u8> {
        format!(
            "{}e:{{{}}}{}",
            self.prefix,
            Self::tag(user_id),
            user_id.simple()
        )
        .into_bytes()
    }

    async fn announce(&self, ended: Ended) -> Result<(), StoreError> {
        let _: i64 = self
            .conn
            .cmd(
                redis::cmd("PUBLISH")
                    .arg(&self.ended_channel)
                    .arg(ended.payload()),
            )
            .await?;
        Ok(())
    }

    /// A session's value without its leading epoch (the create script stamps that).
    fn encode(&self, s: &SessionRecord) -> Result<Vec<u8>, StoreError> {
        let sealed = self.cipher.seal(s.key(), &s.phone_e164)?;
        let phone_len = u8::try_from(sealed.len()).map_err(|_| corrupt("sealed number size"))?;
        let mut v = Vec::with_capacity(AT_PHONE - AT_CREATED + sealed.len() + 64);
        put_ms(&mut v, s.created_at);
        put_ms(&mut v, s.expires_at);
        put_ms(&mut v, s.absolute_expires_at);
        v.extend_from_slice(&s.refresh_hash);
        v.push(phone_len);
        v.extend_from_slice(&sealed);
        for h in s
            .previous_hashes
            .iter()
            .rev()
            .take(REMEMBERED_ROTATIONS)
            .rev()
        {
            v.extend_from_slice(h);
        }
        Ok(v)
    }

    /// Reads a stored value; `None` if the user has since ended every session (its epoch is
    /// no longer the user's).
    fn decode(
        &self,
        r: SessionRef,
        v: &[u8],
        epoch: u64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        if v.len() < AT_PHONE {
            return Err(corrupt("session record too short"));
        }
        if u64::from(u16::from_be_bytes([v[AT_EPOCH], v[AT_EPOCH + 1]])) != epoch % 65_536 {
            return Ok(None);
        }
        let phone_end = AT_PHONE + usize::from(v[AT_PHONE_LEN]);
        let (Some(sealed), Some(prev)) = (v.get(AT_PHONE..phone_end), v.get(phone_end..)) else {
            return Err(corrupt("session record too short"));
        };
        if prev.len() % 8 != 0 {
            return Err(corrupt("remembered rotations"));
        }
        let mut refresh_hash = [0u8; 32];
        refresh_hash.copy_from_slice(&v[AT_HASH..AT_HASH + 32]);
        Ok(Some(SessionRecord {
            id: r.id,
            user_id: r.user_id,
            phone_e164: self.cipher.open(r, sealed)?,
            refresh_hash,
            previous_hashes: prev
                .chunks_exact(8)
                .map(|c| {
                    let mut h = [0u8; 8];
                    h.copy_from_slice(c);
                    h
                })
                .collect(),
            created_at: ms_at(v, AT_CREATED),
            expires_at: ms_at(v, AT_EXPIRES),
            absolute_expires_at: ms_at(v, AT_ABSOLUTE),
        }))
    }

    /// The session's value and the user's epoch, in one round trip (one slot: `MGET` works on
    /// a cluster too).
    async fn read(&self, r: SessionRef) -> Result<(Option<Vec<u8>>, u64), StoreError> {
        let (value, epoch): (Option<Vec<u8>>, Option<u64>) = self
            .conn
            .cmd(
                redis::cmd("MGET")
                    .arg(self.key(r))
                    .arg(self.epoch_key(r.user_id)),
            )
            .await?;
        Ok((value, epoch.unwrap_or(0)))
    }
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn create(&self, s: SessionRecord) -> Result<(), StoreError> {
        let now = s.created_at;
        let value = self.encode(&s)?;
        let _: i64 = self
            .conn
            .eval_keys(
                &self.create,
                &[&self.key(s.key()), &self.epoch_key(s.user_id)],
                &[
                    &value,
                    &num((s.expires_at - now).max(1)),
                    &num((s.absolute_expires_at - now).max(1)),
                ],
            )
            .await?;
        Ok(())
    }

    async fn get(&self, r: SessionRef, now: Millis) -> Result<Option<SessionRecord>, StoreError> {
        let (value, epoch) = self.read(r).await?;
        let Some(value) = value else {
            return Ok(None);
        };
        Ok(self
            .decode(r, &value, epoch)?
            .filter(|s| s.expires_at > now))
    }

    async fn rotate(
        &self,
        r: SessionRef,
        presented: &TokenHash,
        new_hash: TokenHash,
        new_expires_at: Millis,
        now: Millis,
    ) -> Result<Rotation, StoreError> {
        let reply: Vec<Value> = self
            .conn
            .eval_keys(
                &self.rotate,
                &[&self.key(r), &self.epoch_key(r.user_id)],
                &[
                    presented,
                    &new_hash,
                    &num(new_expires_at.clamp(0, MAX_U48)),
                    &num(now),
                    &num(8 * REMEMBERED_ROTATIONS),
                    self.ended_channel.as_bytes(),
                    Ended::Session(r.id).payload().as_bytes(),
                ],
            )
            .await?;
        let tag: i64 = reply
            .first()
            .and_then(|v| redis::from_redis_value_ref(v).ok())
            .ok_or_else(|| corrupt("rotate reply"))?;
        match (tag, reply.get(1)) {
            (1, Some(v)) => {
                let value: Vec<u8> =
                    redis::from_redis_value_ref(v).map_err(|_| corrupt("rotate record"))?;
                // The script checked the epoch; decode against the one the value carries.
                let epoch = match value.get(..2) {
                    Some(&[hi, lo]) => u64::from(u16::from_be_bytes([hi, lo])),
                    _ => return Err(corrupt("rotate record")),
                };
                self.decode(r, &value, epoch)?
                    .map(Rotation::Rotated)
                    .ok_or_else(|| corrupt("rotated record vanished"))
            }
            (2, _) => Ok(Rotation::Reused),
            (3, _) => Err(corrupt("session record malformed")),
            _ => Ok(Rotation::Invalid),
        }
    }

    async fn revoke(&self, r: SessionRef) -> Result<bool, StoreError> {
        let n: i64 = self.conn.cmd(redis::cmd("DEL").arg(self.key(r))).await?;
        self.announce(Ended::Session(r.id)).await?;
        Ok(n == 1)
    }

    async fn revoke_all(&self, user_id: Uuid) -> Result<(), StoreError> {
        let _: i64 = self
            .conn
            .eval_keys(
                &self.end_all,
                &[&self.epoch_key(user_id)],
                &[
                    &num(EPOCH_KEEP_MS),
                    self.ended_channel.as_bytes(),
                    Ended::User(user_id).payload().as_bytes(),
                ],
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::conformance;

    /// The test Redis (127.0.0.1:6379, started by ./scripts/test), or REDIS_TEST_URL.
    fn url() -> String {
        std::env::var("REDIS_TEST_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
    }

    /// A fresh key prefix per test, so tests share one Redis in parallel.
    async fn fresh() -> (RedisConn, String) {
        let conn = RedisConn::connect(&url(), false, Duration::from_secs(2))
            .await
            .expect("redis url");
        conn.ping()
            .await
            .expect("redis on 127.0.0.1:6379 (./scripts/test starts it)");
        (conn, format!("test:{}:", Uuid::new_v4().simple()))
    }

    #[tokio::test]
    async fn otp_store_conforms() {
        let (c, p) = fresh().await;
        conformance::otp_store(&RedisOtpStore::new(c, &p)).await;
    }

    #[tokio::test]
    async fn session_store_conforms() {
        let (c, p) = fresh().await;
        conformance::session_store(&RedisSessionStore::new(c, &p, FieldCipher::new([7; 32]))).await;
    }

    #[tokio::test]
    async fn rate_limiter_conforms() {
        let (c, p) = fresh().await;
        conformance::rate_limiter(&RedisRateLimiter::new(c, &p)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_calls_never_beat_a_limit() {
        let (c, p) = fresh().await;
        conformance::otp_store_parallel(Arc::new(RedisOtpStore::new(c.clone(), &p))).await;
        conformance::session_store_parallel(Arc::new(RedisSessionStore::new(
            c.clone(),
            &p,
            FieldCipher::new([7; 32]),
        )))
        .await;
        conformance::rate_limiter_parallel(Arc::new(RedisRateLimiter::new(c, &p))).await;
    }

    #[tokio::test]
    async fn redis_never_holds_a_number_a_code_or_a_token_in_plain_form() {
        let (c, p) = fresh().await;
        let sessions = RedisSessionStore::new(c.clone(), &p, FieldCipher::new([9; 32]));
        let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
        let rec = SessionRecord {
            id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            phone_e164: "+919876543210".into(),
            refresh_hash: [3; 32],
            previous_hashes: vec![],
            created_at: now,
            expires_at: now + 60_000,
            absolute_expires_at: now + 60_000,
        };
        sessions.create(rec.clone()).await.unwrap();
        let value: Vec<u8> = c
            .cmd(redis::cmd("GET").arg(sessions.key(rec.key())))
            .await
            .unwrap();
        let packed = [0x91, 0x98, 0x76, 0x54, 0x32, 0x10];
        for plain in [&b"9876543210"[..], &packed] {
            assert!(
                !value.windows(plain.len()).any(|w| w == plain),
                "phone number in plain form"
            );
        }
        assert_eq!(
            sessions
                .get(rec.key(), rec.created_at)
                .await
                .unwrap()
                .unwrap()
                .phone_e164,
            "+919876543210"
        );
        // Another key cannot read it (and says why, without the value).
        let other = RedisSessionStore::new(c.clone(), &p, FieldCipher::new([8; 32]));
        assert!(matches!(
            other.get(rec.key(), rec.created_at).await,
            Err(StoreError::Corrupt(_))
        ));
        // Nor can another session: the sealed number is bound to its session id.
        let moved = SessionRef {
            user_id: rec.user_id,
            id: Uuid::new_v4(),
        };
        let _: () = c
            .cmd(redis::cmd("SET").arg(sessions.key(moved)).arg(&value))
            .await
            .unwrap();
        assert!(matches!(
            sessions.get(moved, rec.created_at).await,
            Err(StoreError::Corrupt(_))
        ));

        let keys: Vec<Vec<u8>> = c
            .cmd(redis::cmd("KEYS").arg(format!("{p}*")))
            .await
            .unwrap();
        assert_eq!(keys.len(), 2, "the session and its copy; no index");
        for k in &keys {
            for plain in [&b"9876543210"[..], &packed] {
                assert!(!k.windows(plain.len()).any(|w| w == plain));
            }
        }
    }

    #[tokio::test]
    async fn a_malformed_session_value_is_corrupt_never_a_panic_or_a_rotation() {
        let (c, p) = fresh().await;
        let sessions = RedisSessionStore::new(c.clone(), &p, FieldCipher::new([9; 32]));
        let r = SessionRef {
            user_id: Uuid::new_v4(),
            id: Uuid::new_v4(),
        };
        let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
        let mut long_phone = vec![0u8; 53];
        long_phone[52] = 200; // says the sealed number is longer than the value
        for bad in [
            vec![],
            vec![0u8; 10],
            vec![0u8; 40],
            long_phone,
            vec![0u8; 53 + 5],
        ] {
            let _: () = c
                .cmd(redis::cmd("SET").arg(sessions.key(r)).arg(&bad))
                .await
                .unwrap();
            assert!(
                matches!(sessions.get(r, now).await, Err(StoreError::Corrupt(_))),
                "get of {} bytes",
                bad.len()
            );
            assert!(
                matches!(
                    sessions.rotate(r, &[0; 32], [1; 32], now + 1000, now).await,
                    Err(StoreError::Corrupt(_))
                ),
                "rotate of {} bytes",
                bad.len()
            );
            let kept: Vec<u8> = c.cmd(redis::cmd("GET").arg(sessions.key(r))).await.unwrap();
            assert_eq!(kept, bad, "left as found");
        }
    }

    #[test]
    fn numbers_pack_two_digits_to_a_byte_and_back() {
        for n in ["+919876543210", "+1", "+44207946000", "+123456789012345"] {
            let packed = pack_digits(n).unwrap();
            assert_eq!(packed.len(), (n.len() - 1).div_ceil(2), "{n}");
            assert_eq!(unpack_digits(&packed).unwrap(), n);
        }
        for bad in ["", "+", "+91abc", "+1234567890123456", "+९१९८७६५४३२१०"]
        {
            assert!(pack_digits(bad).is_err(), "{bad:?}");
        }
        assert!(unpack_digits(&[0x9A]).is_err(), "a nibble above 9");
        assert!(unpack_digits(&[0xF1]).is_err(), "padding only at the end");
    }

    #[tokio::test]
    async fn a_new_session_costs_under_100_bytes_of_value_and_a_short_key() {
        let (c, _) = fresh().await;
        let sessions = RedisSessionStore::new(c, "arogya:", FieldCipher::new([9; 32]));
        let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
        let rec = SessionRecord {
            id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            phone_e164: "+919876543210".into(),
            refresh_hash: [3; 32],
            previous_hashes: vec![],
            created_at: now,
            expires_at: now + 60_000,
            absolute_expires_at: now + 60_000,
        };
        // The sizes the memory figure in docs/BENCHMARKS.md rests on, with the default prefix:
        // a 43-byte key and a 75-byte value (jemalloc classes 48 and 80 with their headers).
        assert_eq!(sessions.key(rec.key()).len(), 43);
        assert_eq!(2 + sessions.encode(&rec).unwrap().len(), 75);
    }

    #[tokio::test]
    async fn every_key_has_a_ttl_and_a_hash_tag() {
        let (c, p) = fresh().await;
        let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
        let otps = RedisOtpStore::new(c.clone(), &p);
        let key = PhoneKey::random_for_test();
        otps.issue(
            &key,
            StoredOtp {
                id: 1,
                hash: [1; 32],
                expires_at: now + 600_000,
            },
            now + 60_000,
            now,
        )
        .await
        .unwrap();
        let limits = RedisRateLimiter::new(c.clone(), &p);
        limits
            .hit("ip-otp:1.2.3.4", LimitRule::new(3, 900), now)
            .await
            .unwrap();
        let sessions = RedisSessionStore::new(c.clone(), &p, FieldCipher::new([1; 32]));
        let s = SessionRecord {
            id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            phone_e164: "+919876543210".into(),
            refresh_hash: [1; 32],
            previous_hashes: vec![],
            created_at: now,
            expires_at: now + 30_000,
            absolute_expires_at: now + 90_000,
        };
        let user = s.user_id;
        sessions.create(s).await.unwrap();
        sessions.revoke_all(user).await.unwrap(); // writes the user's epoch key
        let keys: Vec<Vec<u8>> = c
            .cmd(redis::cmd("KEYS").arg(format!("{p}*")))
            .await
            .unwrap();
        assert_eq!(keys.len(), 4, "otp, rate limit, session, epoch: {keys:?}");
        for k in keys {
            let shown = String::from_utf8_lossy(&k);
            let ttl: i64 = c.cmd(redis::cmd("PTTL").arg(&k)).await.unwrap();
            assert!(ttl > 0, "{shown} has no TTL ({ttl})");
            let open = k.iter().position(|&b| b == b'{');
            let close = k.iter().position(|&b| b == b'}');
            assert!(
                matches!((open, close), (Some(o), Some(c)) if c > o + 1),
                "{shown} lacks a hash tag"
            );
        }
    }

    /// The whole suite against a private three-master Redis Cluster: every script and pipeline
    /// must stay inside one slot (no CROSSSLOT), and keys of one record must not spread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn cluster_store_suite_conforms() {
        let started = std::time::Instant::now();
        let cluster = tokio::task::spawn_blocking(crate::store::testing::RedisCluster::start_new)
            .await
            .expect("start a Redis cluster");
        let up = started.elapsed();
        let c = RedisConn::connect(&cluster.urls(), true, Duration::from_secs(2))
            .await
            .expect("connect to the cluster");
        assert!(c.is_cluster());
        c.ping().await.expect("cluster PING");
        let p = format!("test:{}:", Uuid::new_v4().simple());
        let cipher = || FieldCipher::new([7; 32]);
        conformance::otp_store(&RedisOtpStore::new(c.clone(), &p)).await;
        conformance::session_store(&RedisSessionStore::new(c.clone(), &p, cipher())).await;
        conformance::rate_limiter(&RedisRateLimiter::new(c.clone(), &p)).await;
        conformance::otp_store_parallel(Arc::new(RedisOtpStore::new(c.clone(), &p))).await;
        conformance::session_store_parallel(Arc::new(RedisSessionStore::new(
            c.clone(),
            &p,
            cipher(),
        )))
        .await;
        conformance::rate_limiter_parallel(Arc::new(RedisRateLimiter::new(c, &p))).await;
        // The suite's keys really spread over the masters (so slots were crossed).
        let mut holding = 0;
        for port in cluster.ports() {
            let node = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
            let mut node = node.get_multiplexed_async_connection().await.unwrap();
            let n: i64 = redis::cmd("DBSIZE").query_async(&mut node).await.unwrap();
            holding += usize::from(n > 0);
        }
        assert!(
            holding >= 2,
            "the suite's keys sit on {holding} of 3 masters"
        );
        eprintln!(
            "cluster_store_suite_conforms: cluster up in {up:?}, suite in {:?}",
            started.elapsed() - up
        );
    }

    /// A private server stops (its port refuses at once) and starts again on the same port,
    /// and a connection made before reconnects by itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_private_server_stops_and_starts_on_its_port() {
        use std::time::Instant;

        let mut srv = tokio::task::spawn_blocking(crate::store::testing::RedisServer::start_new)
            .await
            .expect("start a private redis-server");
        let port = srv.port();
        let c = RedisConn::connect(&srv.url(), false, Duration::from_millis(300))
            .await
            .unwrap();
        c.ping().await.expect("PING a running server");

        srv.stop();
        let asked = Instant::now();
        let down = c.ping().await;
        assert!(
            matches!(down, Err(StoreError::Unavailable(_))),
            "PING a stopped server: {down:?}"
        );
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "PING a stopped server took {:?}",
            asked.elapsed()
        );
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still accepts after stop"
        );

        let mut srv = tokio::task::spawn_blocking(move || {
            srv.start();
            srv
        })
        .await
        .expect("restart the private redis-server");
        assert_eq!(srv.port(), port, "restarted on another port");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match c.ping().await {
                Ok(()) => break,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the connection did not come back within 10 s: {e}"),
            }
        }
        srv.stop();
    }
}
