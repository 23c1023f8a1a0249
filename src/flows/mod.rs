//! The sign-in and session flows: the rules of DESIGN.md run against the store, database and
//! SMS traits. No tonic here: `grpc/` adapts these to the wire, `app.rs` builds [`Deps`].

use std::net::IpAddr;
use std::sync::Arc;

use crate::clock::{Clock, Millis};
use crate::config::{Config, RateLimitConfig};
use crate::db::UserRepo;
use crate::otp::OtpHasher;
use crate::session::KeyRing;
use crate::sms::SmsSender;
use crate::store::{OtpStore, RateLimiter, SessionStore};

pub mod otp;
pub mod session;

/// Everything a flow may touch, chosen once by `app.rs`. Cheap to clone.
#[derive(Clone)]
pub struct Deps {
    pub otps: Arc<dyn OtpStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub limits: Arc<dyn RateLimiter>,
    pub sms: Arc<dyn SmsSender>,
    pub users: UserRepo,
    pub clock: Arc<dyn Clock>,
    pub hasher: Arc<OtpHasher>,
    pub keys: Arc<KeyRing>,
    pub policy: Arc<Policy>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The numbers the flows follow, taken from [`Config`] once.
#[derive(Debug, Clone)]
pub struct Policy {
    pub otp_ttl_ms: Millis,
    pub max_attempts: u32,
    pub resend_cooldown_ms: Millis,
    /// `None` when `rate_limit.enabled = false`.
    pub limits: Option<RateLimitConfig>,
    pub access_ttl_ms: Millis,
    pub session_ttl_ms: Millis,
    pub session_absolute_ms: Millis,
    /// Hand the code back as `dev_otp`: only with a dev-only SMS provider outside production.
    pub reveal_dev_otp: bool,
    /// The SMS text, checked against DLT at start-up.
    pub message: crate::sms::MessageTemplate,
}

impl Policy {
    pub fn from_config(
        cfg: &Config,
        sms: &dyn SmsSender,
        message: crate::sms::MessageTemplate,
    ) -> Self {
        Self {
            otp_ttl_ms: Millis::from(cfg.otp.ttl_seconds) * 1000,
            max_attempts: cfg.otp.max_attempts,
            resend_cooldown_ms: Millis::from(cfg.otp.resend_cooldown_seconds) * 1000,
            limits: cfg.rate_limit.enabled.then(|| cfg.rate_limit.clone()),
            access_ttl_ms: Millis::from(cfg.jwt.access_ttl_seconds) * 1000,
            session_ttl_ms: (cfg.session.ttl_seconds as Millis).saturating_mul(1000),
            session_absolute_ms: (cfg.session.absolute_ttl_seconds as Millis).saturating_mul(1000),
            reveal_dev_otp: sms.is_dev_only() && !cfg.is_production(),
            message,
        }
    }
}

/// Who is calling, as far as rate limits care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub ip: IpAddr,
}

impl Caller {
    /// The rate-limit identity: the IPv4 address, or the IPv6 /64 (one subscriber usually
    /// holds a whole /64, so keying by /128 would give them endless budgets).
    pub fn limit_key(&self) -> String {
        match self.ip.to_canonical() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Environment;
    use crate::phone::PhoneNumber;
    use crate::sms::{LogSms, SmsError};

    struct RealProvider;

    fn msg(cfg: &Config) -> crate::sms::MessageTemplate {
        crate::sms::MessageTemplate::new(&cfg.sms, 10).unwrap()
    }

    #[async_trait::async_trait]
    impl SmsSender for RealProvider {
        fn name(&self) -> &'static str {
            "real"
        }
        fn is_dev_only(&self) -> bool {
            false
        }
        async fn send(&self, _: &PhoneNumber, _: &crate::sms::SmsMessage) -> Result<(), SmsError> {
            Ok(())
        }
    }

    #[test]
    fn ipv6_callers_are_limited_per_64_and_mapped_v4_as_v4() {
        let key = |s: &str| {
            Caller {
                ip: s.parse().unwrap(),
            }
            .limit_key()
        };
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:1.2.3.4"), "1.2.3.4");
        assert_eq!(key("1.2.3.4"), "1.2.3.4");
    }

    #[test]
    fn dev_otp_only_with_the_log_provider_outside_production() {
        let mut cfg = Config::default();
        assert!(Policy::from_config(&cfg, &LogSms::default(), msg(&cfg)).reveal_dev_otp);
        assert!(!Policy::from_config(&cfg, &RealProvider, msg(&cfg)).reveal_dev_otp);
        cfg.env = Environment::Production;
        assert!(!Policy::from_config(&cfg, &LogSms::default(), msg(&cfg)).reveal_dev_otp);
        assert!(!Policy::from_config(&cfg, &RealProvider, msg(&cfg)).reveal_dev_otp);
    }

    #[test]
    fn turning_rate_limits_off_removes_them_from_the_policy() {
        let mut cfg = Config::default();
        assert!(
            Policy::from_config(&cfg, &LogSms::default(), msg(&cfg))
                .limits
                .is_some()
        );
        cfg.rate_limit.enabled = false;
        assert!(
            Policy::from_config(&cfg, &LogSms::default(), msg(&cfg))
                .limits
                .is_none()
        );
    }
}
