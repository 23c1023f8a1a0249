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
    /// `AROGYA_ADMIN_ADDR`: Prometheus `/metrics`, never on the public port.
    pub admin_addr: SocketAddr,
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
    pub web: WebConfig,
}

/// The sign-in page (`web/`), served at `/` on the public port.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// `AROGYA_WEB__ENABLED`. Unset: on in development, off in production.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `AROGYA_WEB__DIR`: the built page (`npm run build` in `web/`).
    pub dir: PathBuf,
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
    /// `AROGYA_SMS__PROVIDER`: `log`, `twilio` or `msg91`.
    pub provider: SmsProviderKind,
    /// `AROGYA_SMS__FALLBACK`: a second real provider, tried when the first one fails.
    #[serde(default, deserialize_with = "opt_provider")]
    pub fallback: Option<SmsProviderKind>,
    /// Name shown in the message (`{app}`).
    pub app_name: String,
    /// The message, with `{code}`, `{app}` and `{minutes}`.
    pub template: String,
    /// Adds the WebOTP line `@host #code` (the web app's host, no scheme).
    pub webotp_host: Option<String>,
    /// Adds the Android SMS Retriever 11-character app hash at the end.
    pub android_app_hash: Option<String>,
    /// Longest message, in SMS parts.
    pub max_segments: u32,
    /// Per provider call.
    pub timeout_ms: u64,
    /// Retries per provider after a timeout, 429 or 5xx.
    pub retries: u32,
    /// First backoff; it doubles on each retry.
    pub backoff_ms: u64,
    pub twilio: TwilioConfig,
    pub msg91: Msg91Config,
    pub dlt: DltConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    #[serde(default, deserialize_with = "opt_text")]
    pub account_sid: Option<String>,
    #[serde(skip_serializing)]
    pub auth_token: Option<SecretString>,
    /// Sender number (E.164) — or `messaging_service_sid`, not both.
    #[serde(default, deserialize_with = "opt_e164")]
    pub from: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    pub messaging_service_sid: Option<String>,
    pub base_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Msg91Config {
    #[serde(skip_serializing)]
    pub auth_key: Option<SecretString>,
    /// MSG91's id of the flow/template (mapped to the DLT template in MSG91's panel).
    #[serde(default, deserialize_with = "opt_text")]
    pub template_id: Option<String>,
    /// DLT sender header (6 characters), when the template does not fix it.
    #[serde(default, deserialize_with = "opt_text")]
    pub sender: Option<String>,
    /// The MSG91 template's variable names, in the order of the DLT `{#var#}` slots
    /// (`AROGYA_SMS__MSG91__VARS=otp,app,minutes`); empty means `var1`, `var2`, …
    #[serde(default, deserialize_with = "comma_list", serialize_with = "ser_list")]
    pub vars: Vec<String>,
    pub base_url: String,
}

/// India's DLT registration of the message (TRAI): operators drop any SMS whose text does not
/// match its registered template.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DltConfig {
    /// The registered template text, with `{#var#}` slots.
    pub template: Option<String>,
    /// The template's DLT id (19 digits).
    #[serde(default, deserialize_with = "opt_text")]
    pub template_id: Option<String>,
    /// The principal entity's DLT id.
    #[serde(default, deserialize_with = "opt_text")]
    pub entity_id: Option<String>,
    /// The registered sender header (6 characters).
    #[serde(default, deserialize_with = "opt_text")]
    pub sender: Option<String>,
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
    /// Ed25519 private key, PKCS#8 PEM. Development generates one per start; production
    /// requires it or `private_key`.
    pub private_key_file: Option<PathBuf>,
    /// The same key as PEM text (from a secret store through the environment).
    #[serde(default, skip_serializing)]
    pub private_key: Option<SecretString>,
    /// A PEM file of further Ed25519 keys (`PUBLIC KEY` or `PRIVATE KEY` blocks, any number)
    /// whose tokens are accepted and which the JWKS publishes, never used to sign: the next
    /// key before a rotation, the previous one after it (docs/OPERATIONS.md, key rotation).
    #[serde(default)]
    pub verify_keys_file: Option<PathBuf>,
    /// The same as PEM text.
    #[serde(default, skip_serializing)]
    pub verify_keys: Option<SecretString>,
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
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 9464)),
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
                fallback: None,
                app_name: "Arogya Vault".into(),
                template: "{code} is your {app} sign-in code. It expires in {minutes} min. Never share it with anyone."
                    .into(),
                webotp_host: None,
                android_app_hash: None,
                max_segments: 1,
                timeout_ms: 2000,
                retries: 1,
                backoff_ms: 200,
                twilio: TwilioConfig {
                    base_url: "https://api.twilio.com".into(),
                    ..TwilioConfig::default()
                },
                msg91: Msg91Config {
                    base_url: "https://control.msg91.com".into(),
                    ..Msg91Config::default()
                },
                dlt: DltConfig::default(),
            },
            cors: CorsConfig {
                allowed_origins: vec!["http://localhost:5173".into()],
            },
            jwt: JwtConfig {
                private_key_file: None,
                private_key: None,
                verify_keys_file: None,
                verify_keys: None,
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
            web: WebConfig {
                enabled: None,
                dir: PathBuf::from("web/dist"),
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
        let services = linked_services();
        fig.merge(
            Env::prefixed("AROGYA_")
                .filter(move |k| !is_service_link(k.as_str(), &services))
                .split("__"),
        )
        .merge(
            Env::raw()
                .only(&["REDIS_URL", "DATABASE_URL"])
                .map(|k| k.as_str().to_ascii_lowercase().into()),
        )
    }

    pub fn from_figment(fig: Figment) -> Result<Self, ConfigError> {
        let cfg = Self::extract(fig)?;
        cfg.refuse_unsafe_production()?;
        Ok(cfg)
    }

    /// Defaults ← `file` ← environment with every value checked, but an unsafe production
    /// configuration not refused: for `check-config`, which reports it.
    pub fn inspect(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::extract(Self::figment(file))
    }

    fn extract(fig: Figment) -> Result<Self, ConfigError> {
        let cfg: Config = fig
            .extract()
            .map_err(|e| ConfigError::Invalid(describe(e)))?;
        cfg.check_values()?;
        Ok(cfg)
    }

    /// The effective configuration, one `NAME = value` line per setting under the names an
    /// operator sets, secrets shown only as set or unset and passwords in URLs masked.
    pub fn masked_report(&self) -> String {
        let mut lines = Vec::new();
        let value = serde_json::to_value(self).unwrap_or_default();
        flatten("", &value, &mut lines);
        let mut set_or_not = |key: &str, v: &Option<SecretString>| {
            let shown = if v.is_some() {
                "(set, not shown)"
            } else {
                "(unset)"
            };
            lines.push((key.to_owned(), shown.to_owned()));
        };
        set_or_not("otp.secret", &self.otp.secret);
        set_or_not("jwt.private_key", &self.jwt.private_key);
        set_or_not("jwt.verify_keys", &self.jwt.verify_keys);
        set_or_not("sms.twilio.auth_token", &self.sms.twilio.auth_token);
        set_or_not("sms.msg91.auth_key", &self.sms.msg91.auth_key);
        lines.sort();
        lines
            .into_iter()
            .map(|(key, v)| {
                let v = if key.ends_with("_url") {
                    redact_url(&v)
                } else {
                    v
                };
                format!("{} = {v}\n", env_name(&key))
            })
            .collect()
    }

    /// Settings for tests: port 0, no rate limits, fixed secret, SQLite in a given file.
    pub fn for_tests(sqlite_path: PathBuf) -> Self {
        let mut cfg = Config {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
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
        self.check_values()?;
        self.refuse_unsafe_production()
    }

    fn refuse_unsafe_production(&self) -> Result<(), ConfigError> {
        if self.is_production() {
            let problems = self.production_problems();
            if !problems.is_empty() {
                return Err(ConfigError::Unsafe(problems));
            }
        }
        Ok(())
    }

    /// Values that parse but make no sense.
    fn check_values(&self) -> Result<(), ConfigError> {
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
        if self.jwt.private_key_file.is_some() && self.jwt.private_key.is_some() {
            return bad(
                "jwt.private_key",
                "set AROGYA_JWT__PRIVATE_KEY or AROGYA_JWT__PRIVATE_KEY_FILE, not both",
            );
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
        self.validate_sms()
    }

    /// Each real provider in use has its credentials; DLT fields are set for India; the
    /// message renders within the limits and matches the registered template.
    fn validate_sms(&self) -> Result<(), ConfigError> {
        let sms = &self.sms;
        let missing = |key: &str, why: &str| {
            Err(ConfigError::Invalid(format!(
                "{} ({key}) is required: {why}",
                env_name(key)
            )))
        };
        let empty = |v: &Option<String>| v.as_deref().is_none_or(str::is_empty);
        let empty_secret = |v: &Option<SecretString>| {
            use secrecy::ExposeSecret;
            v.as_ref().is_none_or(|s| s.expose_secret().is_empty())
        };
        let mut real = vec![sms.provider];
        if let Some(f) = sms.fallback {
            if f == SmsProviderKind::Log {
                return Err(ConfigError::Invalid(
                    "AROGYA_SMS__FALLBACK (sms.fallback): must be twilio or msg91".into(),
                ));
            }
            if f == sms.provider {
                return Err(ConfigError::Invalid(
                    "AROGYA_SMS__FALLBACK (sms.fallback): must differ from AROGYA_SMS__PROVIDER"
                        .into(),
                ));
            }
            if sms.provider == SmsProviderKind::Log {
                return Err(ConfigError::Invalid(
                    "AROGYA_SMS__FALLBACK (sms.fallback): a fallback needs a real AROGYA_SMS__PROVIDER".into(),
                ));
            }
            real.push(f);
        }
        real.retain(|p| *p != SmsProviderKind::Log);
        for p in &real {
            match p {
                SmsProviderKind::Twilio => {
                    let t = &sms.twilio;
                    if empty(&t.account_sid) {
                        return missing("sms.twilio.account_sid", "the Twilio Account SID (AC…)");
                    }
                    if empty_secret(&t.auth_token) {
                        return missing("sms.twilio.auth_token", "the Twilio Auth Token");
                    }
                    if empty(&t.from) == empty(&t.messaging_service_sid) {
                        return Err(ConfigError::Invalid(
                            "set exactly one of AROGYA_SMS__TWILIO__FROM and AROGYA_SMS__TWILIO__MESSAGING_SERVICE_SID".into(),
                        ));
                    }
                }
                SmsProviderKind::Msg91 => {
                    if empty_secret(&sms.msg91.auth_key) {
                        return missing("sms.msg91.auth_key", "the MSG91 auth key");
                    }
                    if empty(&sms.msg91.template_id) {
                        return missing(
                            "sms.msg91.template_id",
                            "MSG91's id of the DLT-registered template",
                        );
                    }
                }
                SmsProviderKind::Log => {}
            }
        }
        if !real.is_empty() {
            for (key, v) in [
                ("sms.dlt.template", &sms.dlt.template),
                ("sms.dlt.template_id", &sms.dlt.template_id),
                ("sms.dlt.entity_id", &sms.dlt.entity_id),
                ("sms.dlt.sender", &sms.dlt.sender),
            ] {
                if empty(v) {
                    return missing(
                        key,
                        "India's DLT rules drop SMS sent without a registered template and sender",
                    );
                }
            }
        }
        if let Some(h) = sms.android_app_hash.as_deref().filter(|h| !h.is_empty())
            && (h.len() != 11
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'))
        {
            return Err(ConfigError::Invalid(
                "AROGYA_SMS__ANDROID_APP_HASH (sms.android_app_hash): must be the 11-character app hash".into(),
            ));
        }
        if let Some(h) = sms.webotp_host.as_deref().filter(|h| !h.is_empty())
            && !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(ConfigError::Invalid(
                "AROGYA_SMS__WEBOTP_HOST (sms.webotp_host): a host name like vault.example.in, no scheme or path".into(),
            ));
        }
        if !(1..=10).contains(&sms.max_segments)
            || sms.timeout_ms == 0
            || sms.timeout_ms > 60_000
            || sms.retries > 5
            || sms.backoff_ms > 5_000
        {
            return Err(ConfigError::Invalid(
                "AROGYA_SMS__MAX_SEGMENTS must be 1-10, AROGYA_SMS__TIMEOUT_MS 1-60000, AROGYA_SMS__RETRIES 0-5, AROGYA_SMS__BACKOFF_MS 0-5000".into(),
            ));
        }
        // The whole chain (every try of every provider, with backoff) must fit in one request,
        // so the caller hears SMS_UNAVAILABLE rather than a deadline.
        let per_provider = sms.timeout_ms * u64::from(sms.retries + 1)
            + sms.backoff_ms * ((1u64 << sms.retries) - 1);
        let budget = per_provider * real.len() as u64;
        if budget >= self.server.request_timeout_seconds * 1000 {
            return Err(ConfigError::Invalid(format!(
                "SMS delivery can take {budget} ms (AROGYA_SMS__TIMEOUT_MS x (AROGYA_SMS__RETRIES+1) + backoff, per provider), \
                 longer than AROGYA_SERVER__REQUEST_TIMEOUT_SECONDS allows; lower one or raise the other"
            )));
        }
        for (key, url, used) in [
            (
                "sms.twilio.base_url",
                &sms.twilio.base_url,
                real.contains(&SmsProviderKind::Twilio),
            ),
            (
                "sms.msg91.base_url",
                &sms.msg91.base_url,
                real.contains(&SmsProviderKind::Msg91),
            ),
        ] {
            if used && !is_safe_base_url(url) {
                return Err(ConfigError::Invalid(format!(
                    "{} ({key}): must be an https:// URL (http:// only for localhost)",
                    env_name(key)
                )));
            }
        }
        if let Some(from) = sms.twilio.from.as_deref().filter(|f| !f.is_empty())
            && !(from.starts_with('+')
                && (9..=16).contains(&from.len())
                && from[1..].bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(ConfigError::Invalid(
                "AROGYA_SMS__TWILIO__FROM (sms.twilio.from): an E.164 number like +15005550006"
                    .into(),
            ));
        }
        if !sms.template.contains("{code}") {
            return Err(ConfigError::Invalid(
                "AROGYA_SMS__TEMPLATE (sms.template): must contain {code}".into(),
            ));
        }
        let minutes = (self.otp.ttl_seconds / 60).max(1);
        crate::sms::MessageTemplate::new(sms, minutes).map_err(|e| {
            ConfigError::Invalid(format!(
                "AROGYA_SMS__TEMPLATE (sms.template) / AROGYA_SMS__DLT__TEMPLATE: {e}"
            ))
        })?;
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
        if self.jwt.private_key_file.is_none() && self.jwt.private_key.is_none() {
            out.push(
                "AROGYA_JWT__PRIVATE_KEY_FILE (or AROGYA_JWT__PRIVATE_KEY) is unset; a generated signing key dies with the process".into(),
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

    /// Whether the sign-in page is served: as set, else only in development.
    pub fn web_enabled(&self) -> bool {
        self.web.enabled.unwrap_or(!self.is_production())
    }

    /// The client IP is taken from `X-Forwarded-For` only when the socket peer is one of these.
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

/// The Services whose link variables Kubernetes put in this environment under our prefix:
/// for a Service named `arogya-auth` it always sets `AROGYA_AUTH_SERVICE_HOST` (→ `AUTH`), and
/// for one named `arogya`, `AROGYA_SERVICE_HOST` (→ the empty name).
fn linked_services() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter_map(|k| {
            let rest = k.strip_prefix("AROGYA_")?;
            if rest == "SERVICE_HOST" {
                return Some(String::new());
            }
            let svc = rest.strip_suffix("_SERVICE_HOST")?;
            (!svc.is_empty() && !svc.contains("__")).then(|| svc.to_owned())
        })
        .collect()
}

/// Whether `name` (after the `AROGYA_` prefix) is one of the variables Kubernetes injects for
/// one of `services` (`AUTH_SERVICE_HOST`, `AUTH_SERVICE_PORT[_<port name>]`, `AUTH_PORT`,
/// `AUTH_PORT_50051_TCP[_PROTO|_PORT|_ADDR]`). Only for a Service that is really there, so a
/// misspelt setting such as `AROGYA_SERVER_PORT` is still refused.
fn is_service_link(name: &str, services: &[String]) -> bool {
    let name = name.to_ascii_uppercase();
    services.iter().any(|svc| {
        let rest = if svc.is_empty() {
            Some(name.as_str())
        } else {
            name.strip_prefix(svc.as_str())
                .and_then(|r| r.strip_prefix('_'))
        };
        let Some(rest) = rest else {
            return false;
        };
        if matches!(rest, "SERVICE_HOST" | "SERVICE_PORT" | "PORT") {
            return true;
        }
        if let Some(port_name) = rest.strip_prefix("SERVICE_PORT_") {
            return !port_name.is_empty();
        }
        let Some(port) = rest.strip_prefix("PORT_") else {
            return false;
        };
        let parts: Vec<&str> = port.split('_').collect();
        match parts.as_slice() {
            [n, proto, tail @ ..] => {
                !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit())
                    && matches!(*proto, "TCP" | "UDP" | "SCTP")
                    && matches!(tail, [] | ["PROTO" | "PORT" | "ADDR"])
            }
            _ => false,
        }
    })
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

/// `https://…`, or `http://` to a loopback host (the local fake servers of tests).
fn is_safe_base_url(url: &str) -> bool {
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "https" => u.host().is_some(),
        Ok(u) if u.scheme() == "http" => {
            matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
        }
        _ => false,
    }
}

/// An E.164 number in the environment reaches us as a number (`+15005550006` parses as one):
/// give it its `+` back.
fn opt_e164<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(opt_text(d)?.map(|s| {
        if s.starts_with('+') || s.is_empty() {
            s
        } else {
            format!("+{s}")
        }
    }))
}

/// `AROGYA_SMS__FALLBACK=""` means no fallback.
fn opt_provider<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SmsProviderKind>, D::Error> {
    match Option::<String>::deserialize(d)?.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some("log") => Ok(Some(SmsProviderKind::Log)),
        Some("twilio") => Ok(Some(SmsProviderKind::Twilio)),
        Some("msg91") => Ok(Some(SmsProviderKind::Msg91)),
        Some(other) => Err(serde::de::Error::custom(format!(
            "{other:?}: expected twilio or msg91"
        ))),
    }
}

/// An optional text setting that may look like a number in the environment (ids such as
/// `1107161234567890123`, senders such as `+15005550006`): taken as the text it was.
fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Unsigned(u64),
        Signed(i64),
    }
    Ok(match Option::<Raw>::deserialize(d)? {
        None => None,
        Some(Raw::Text(s)) => Some(s),
        Some(Raw::Unsigned(n)) => Some(n.to_string()),
        Some(Raw::Signed(n)) => Some(format!("{n:+}")),
    })
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

/// `{"otp": {"ttl_seconds": 600}}` → `("otp.ttl_seconds", "600")`.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|i| match i {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            out.push((prefix.to_owned(), parts.join(",")));
        }
        Value::Null => out.push((prefix.to_owned(), "(unset)".into())),
        Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

/// `redis://user:pw@host` → `redis://user:***@host`; a `password=` query parameter too.
pub fn redact_url(url: &str) -> String {
    let mut out = match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}://{user}:***@{}", &url[..s], &url[at + 1..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    };
    if let Some(q) = out.find('?') {
        let params: Vec<String> = out[q + 1..]
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_owned(),
            })
            .collect();
        out = format!("{}?{}", &out[..q], params.join("&"));
    }
    out
}

fn ser_list<S: serde::Serializer, T: std::fmt::Display>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|x| x.to_string()))
}

#[cfg(test)]
mod tests;
