//! Configuration: built-in defaults ← optional TOML file (`--config FILE`) ← environment.
//!
//! Nested keys use `AROGYA_` and a double underscore (`otp.ttl_seconds` is
//! `AROGYA_OTP__TTL_SECONDS`); `REDIS_URL` and `DATABASE_URL` are read without the prefix.
//! [`Config::load`] validates everything before a port opens, and refuses unsafe production
//! settings, naming each. Nothing else in the crate reads the environment or files.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};

/// Where the service runs. `production` refuses the embedded defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Development,
    Production,
}

/// Which SMS provider sends codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmsProviderKind {
    /// Writes a line to the log (without the code) and hands the code back as `dev_otp`.
    #[default]
    Log,
    Twilio,
    Msg91,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable in development, JSON in production.
    #[default]
    Auto,
    Pretty,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `AROGYA_ENV`
    pub env: Environment,
    /// `AROGYA_LISTEN_ADDR`: gRPC, gRPC-Web and `GET /.well-known/jwks.json`.
    pub listen_addr: SocketAddr,
    /// `REDIS_URL`; unset means in-memory state (the embedded default).
    pub redis_url: Option<String>,
    /// `DATABASE_URL`; unset means the SQLite file `database.sqlite_path`.
    pub database_url: Option<String>,
    /// `AROGYA_TRUSTED_PROXIES`: comma-separated CIDRs whose `X-Forwarded-For` is believed.
    #[serde(deserialize_with = "comma_list", serialize_with = "ser_list")]
    pub trusted_proxies: Vec<IpNet>,
    pub redis: RedisConfig,
    pub otp: OtpConfig,
    pub rate_limit: RateLimitConfig,
    pub sms: SmsConfig,
    pub cors: CorsConfig,
    pub jwt: JwtConfig,
    pub session: SessionConfig,
    pub database: DatabaseConfig,
    pub server: ServerConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// Put before every key; isolates tenants (and tests) sharing one Redis.
    pub key_prefix: String,
    /// Connect and response timeout of every Redis call: past it the call fails UNAVAILABLE.
    pub timeout_ms: u64,
    /// Use the cluster client (also implied by a comma-separated `REDIS_URL`).
    pub cluster: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtpConfig {
    pub ttl_seconds: u32,
    pub max_attempts: u32,
    pub resend_cooldown_seconds: u32,
    /// HMAC key for stored codes. Development generates one per start; production requires it.
    #[serde(skip_serializing)]
    pub secret: Option<SecretString>,
}

/// One limit: at most `limit` events in any window of `window_seconds` (sliding, no edge burst).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitRule {
    pub limit: u32,
    pub window_seconds: u32,
}

impl LimitRule {
    pub const fn new(limit: u32, window_seconds: u32) -> Self {
        Self {
            limit,
            window_seconds,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// `false` turns every rate limit off (tests, benchmarks). The per-code attempt limit and
    /// the resend cooldown are rules of the code, not rate limits, and stay on.
    pub enabled: bool,
    /// RequestOtp + ResendOtp per client IP.
    pub ip_otp_requests: LimitRule,
    /// VerifyOtp per client IP.
    pub ip_verifies: LimitRule,
    /// Codes sent per phone number.
    pub phone_sends: LimitRule,
    /// Wrong codes per phone number, across resends.
    pub phone_wrong_guesses: LimitRule,
    /// SMS sent by the whole service.
    pub sms_global: LimitRule,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    pub provider: SmsProviderKind,
    /// Name shown in the message.
    pub app_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// `AROGYA_CORS__ALLOWED_ORIGINS`: comma-separated exact origins (`scheme://host[:port]`).
    #[serde(deserialize_with = "comma_list", serialize_with = "ser_list")]
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Ed25519 private key, PKCS#8 PEM. Development generates one per start; production requires it.
    pub private_key_file: Option<PathBuf>,
    pub issuer: String,
    pub audience: String,
    pub access_ttl_seconds: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// Sliding lifetime: each refresh pushes expiry this far out...
    pub ttl_seconds: u64,
    /// ...but never past this long after sign-in.
    pub absolute_ttl_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// SQLite file used when `DATABASE_URL` is unset.
    pub sqlite_path: PathBuf,
    /// Apply migrations at start-up.
    pub run_migrations: bool,
    /// Connect timeout and pool wait of every database call: past it the call fails UNAVAILABLE.
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Largest decoded request message.
    pub max_message_bytes: usize,
    /// Largest HTTP/2 header list.
    pub max_header_list_bytes: u32,
    /// Most requests served at once; more wait.
    pub concurrency_limit: usize,
    /// Per-request deadline.
    pub request_timeout_seconds: u64,
    /// After SIGTERM, how long in-flight calls get before the process exits anyway.
    pub shutdown_grace_seconds: u64,
    /// How often Redis and the database are checked for `grpc.health.v1`.
    pub health_interval_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// `tracing` filter, e.g. `info,arogya_auth=debug`. `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            env: Environment::Development,
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            redis_url: None,
            database_url: None,
            trusted_proxies: Vec::new(),
            redis: RedisConfig {
                key_prefix: "arogya:".into(),
                timeout_ms: 500,
                cluster: false,
            },
            otp: OtpConfig {
                ttl_seconds: 600,
                max_attempts: 5,
                resend_cooldown_seconds: 60,
                secret: None,
            },
            rate_limit: RateLimitConfig {
                enabled: true,
                ip_otp_requests: LimitRule::new(3, 15 * 60),
                ip_verifies: LimitRule::new(10, 15 * 60),
                phone_sends: LimitRule::new(5, 60 * 60),
                phone_wrong_guesses: LimitRule::new(20, 24 * 60 * 60),
                sms_global: LimitRule::new(600, 60),
            },
            sms: SmsConfig {
                provider: SmsProviderKind::Log,
                app_name: "Arogya Vault".into(),
            },
            cors: CorsConfig {
                allowed_origins: vec!["http://localhost:5173".into()],
            },
            jwt: JwtConfig {
                private_key_file: None,
                issuer: "arogya-auth".into(),
                audience: "arogya-vault".into(),
                access_ttl_seconds: 15 * 60,
            },
            session: SessionConfig {
                ttl_seconds: 30 * 24 * 60 * 60,
                absolute_ttl_seconds: 90 * 24 * 60 * 60,
            },
            database: DatabaseConfig {
                sqlite_path: PathBuf::from("arogya-auth.db"),
                run_migrations: true,
                timeout_ms: 2000,
            },
            server: ServerConfig {
                max_message_bytes: 64 * 1024,
                max_header_list_bytes: 16 * 1024,
                concurrency_limit: 4096,
                request_timeout_seconds: 10,
                shutdown_grace_seconds: 10,
                health_interval_ms: 1000,
            },
            log: LogConfig {
                format: LogFormat::Auto,
                filter: "info".into(),
            },
        }
    }
}

/// Start-up refused: every line names the key to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("refusing to start: {}", .0.join("; "))]
    Unsafe(Vec<String>),
}

impl Config {
    /// Defaults ← `file` ← environment, then [`Config::validate`].
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_figment(Self::figment(file))
    }

    /// The layered sources, unextracted (tests add to it).
    pub fn figment(file: Option<&Path>) -> Figment {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            fig = fig.merge(Toml::file_exact(f));
        }
        fig.merge(Env::prefixed("AROGYA_").split("__")).merge(
            Env::raw()
                .only(&["REDIS_URL", "DATABASE_URL"])
                .map(|k| k.as_str().to_ascii_lowercase().into()),
        )
    }

    pub fn from_figment(fig: Figment) -> Result<Self, ConfigError> {
        let cfg: Config = fig
            .extract()
            .map_err(|e| ConfigError::Invalid(describe(e)))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Settings for tests: port 0, no rate limits, fixed secret, SQLite in a given file.
    pub fn for_tests(sqlite_path: PathBuf) -> Self {
        let mut cfg = Config {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Config::default()
        };
        cfg.rate_limit.enabled = false;
        cfg.otp.secret = Some(SecretString::from("test-otp-secret-0123456789abcdef"));
        cfg.database.sqlite_path = sqlite_path;
        cfg.log.filter = "warn".into();
        cfg
    }

    pub fn is_production(&self) -> bool {
        self.env == Environment::Production
    }

    /// Checks values that parse but make no sense, then (in production) every unsafe default.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| {
            Err(ConfigError::Invalid(format!(
                "{} ({key}): {why}",
                env_name(key)
            )))
        };
        const DAY: u64 = 24 * 60 * 60;
        // Upper bounds keep every duration far from integer overflow in milliseconds.
        for (key, value, min, max) in [
            ("otp.ttl_seconds", u64::from(self.otp.ttl_seconds), 1, DAY),
            (
                "otp.resend_cooldown_seconds",
                u64::from(self.otp.resend_cooldown_seconds),
                0,
                DAY,
            ),
            (
                "jwt.access_ttl_seconds",
                u64::from(self.jwt.access_ttl_seconds),
                1,
                DAY,
            ),
            (
                "session.ttl_seconds",
                self.session.ttl_seconds,
                1,
                3650 * DAY,
            ),
            (
                "session.absolute_ttl_seconds",
                self.session.absolute_ttl_seconds,
                1,
                3650 * DAY,
            ),
            (
                "server.request_timeout_seconds",
                self.server.request_timeout_seconds,
                1,
                3600,
            ),
            ("redis.timeout_ms", self.redis.timeout_ms, 10, 60_000),
            ("database.timeout_ms", self.database.timeout_ms, 10, 60_000),
            (
                "server.health_interval_ms",
                self.server.health_interval_ms,
                10,
                60_000,
            ),
            (
                "server.shutdown_grace_seconds",
                self.server.shutdown_grace_seconds,
                0,
                3600,
            ),
            (
                "server.concurrency_limit",
                self.server.concurrency_limit as u64,
                1,
                1_000_000,
            ),
            (
                "server.max_header_list_bytes",
                u64::from(self.server.max_header_list_bytes),
                1024,
                1 << 20,
            ),
        ] {
            if value < min || value > max {
                return bad(key, &format!("must be between {min} and {max}"));
            }
        }
        if self.otp.max_attempts == 0 || self.otp.max_attempts > 100 {
            return bad("otp.max_attempts", "must be between 1 and 100");
        }
        for (key, rule) in [
            (
                "rate_limit.ip_otp_requests",
                self.rate_limit.ip_otp_requests,
            ),
            ("rate_limit.ip_verifies", self.rate_limit.ip_verifies),
            ("rate_limit.phone_sends", self.rate_limit.phone_sends),
            (
                "rate_limit.phone_wrong_guesses",
                self.rate_limit.phone_wrong_guesses,
            ),
            ("rate_limit.sms_global", self.rate_limit.sms_global),
        ] {
            if rule.limit == 0 || rule.window_seconds == 0 {
                return bad(key, "limit and window_seconds must both be at least 1");
            }
            if rule.limit > 100_000 {
                return bad(key, "limit must be at most 100000");
            }
        }
        if self.session.ttl_seconds == 0
            || self.session.absolute_ttl_seconds < self.session.ttl_seconds
        {
            return bad(
                "session.absolute_ttl_seconds",
                "must be at least session.ttl_seconds, which must be at least 1",
            );
        }
        if self.jwt.issuer.is_empty() || self.jwt.audience.is_empty() {
            return bad("jwt.issuer", "issuer and audience must not be empty");
        }
        if let Some(secret) = &self.otp.secret {
            use secrecy::ExposeSecret;
            if secret.expose_secret().len() < 32 {
                return bad("otp.secret", "must be at least 32 bytes");
            }
        }
        for origin in &self.cors.allowed_origins {
            if http::HeaderValue::from_str(origin).is_err()
                || !(origin.starts_with("http://") || origin.starts_with("https://"))
                || origin.ends_with('/')
            {
                return bad(
                    "cors.allowed_origins",
                    &format!("{origin:?} is not an origin like https://app.example.in"),
                );
            }
        }
        if self.server.max_message_bytes < 1024 || self.server.max_message_bytes > 16 << 20 {
            return bad(
                "server.max_message_bytes",
                "must be between 1024 and 16777216",
            );
        }
        if self.is_production() {
            let problems = self.production_problems();
            if !problems.is_empty() {
                return Err(ConfigError::Unsafe(problems));
            }
        }
        Ok(())
    }

    /// Every embedded default that production must not run on, each naming its key.
    pub fn production_problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.rate_limit.enabled {
            out.push(
                "AROGYA_RATE_LIMIT__ENABLED is false; production needs its rate limits".into(),
            );
        }
        if self.trusted_proxies.iter().any(|n| n.prefix_len() == 0) {
            out.push(
                "AROGYA_TRUSTED_PROXIES trusts every address (/0), so any client can forge X-Forwarded-For".into(),
            );
        }
        if self.sms.provider == SmsProviderKind::Log {
            out.push(
                "AROGYA_SMS__PROVIDER is `log`, which sends no SMS; set twilio or msg91".into(),
            );
        }
        if self.otp.secret.is_none() {
            out.push(
                "AROGYA_OTP__SECRET is unset; set a random secret of at least 32 bytes".into(),
            );
        }
        if self.jwt.private_key_file.is_none() {
            out.push(
                "AROGYA_JWT__PRIVATE_KEY_FILE is unset; a generated signing key dies with the process".into(),
            );
        }
        if self.redis_url.is_none() {
            out.push(
                "REDIS_URL is unset; in-memory state is lost on restart and not shared by replicas"
                    .into(),
            );
        }
        if self.database_url.is_none() {
            out.push("DATABASE_URL is unset; the embedded SQLite file is for development".into());
        }
        if self
            .cors
            .allowed_origins
            .iter()
            .any(|o| o.starts_with("http://localhost") || o.starts_with("http://127."))
        {
            out.push("AROGYA_CORS__ALLOWED_ORIGINS allows a localhost origin; list the app's real origins".into());
        }
        out
    }

    /// The client IP is taken from `X-Forwarded-For` only when the socket peer is one of these.
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

/// `otp.ttl_seconds` → `AROGYA_OTP__TTL_SECONDS`; the two unprefixed URLs stay as they are.
pub fn env_name(key: &str) -> String {
    match key {
        "redis_url" | "database_url" => key.to_ascii_uppercase(),
        _ => format!("AROGYA_{}", key.replace('.', "__").to_ascii_uppercase()),
    }
}

/// One line per figment error, naming the key both ways.
fn describe(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            if key.is_empty() {
                e.kind.to_string()
            } else if key.ends_with("secret") || key.contains("token") || key.contains("key") {
                // figment's message repeats the rejected value; never echo a secret.
                format!("{} ({key}): invalid value (not shown)", env_name(&key))
            } else {
                format!("{} ({key}): {}", env_name(&key), e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Accepts `"a, b"` (environment) or `["a", "b"]` (TOML) for list settings.
fn comma_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    let items = match Raw::deserialize(d)? {
        Raw::One(s) => s.split(',').map(str::to_owned).collect(),
        Raw::Many(v) => v,
    };
    items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<T>()
                .map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}")))
        })
        .collect()
}

fn ser_list<S: serde::Serializer, T: std::fmt::Display>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|x| x.to_string()))
}

#[cfg(test)]
mod tests;
