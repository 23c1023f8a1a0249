//! SMS delivery: the message a person receives, the providers that carry it, and the rules of
//! delivery (timeout, retry, fallback).
//!
//! [`MessageTemplate`] renders the text once per code and checks it against India's DLT rules
//! (the registered template and the length of one SMS) before anything is sent. Providers
//! ([`twilio`], [`msg91`], [`log`]) make one attempt each; [`delivery::Delivery`] wraps them
//! with a timeout per call, retries with backoff on timeouts, 429 and 5xx only, then the
//! fallback provider. No provider error text is passed on: only an HTTP status and the
//! provider's numeric error code, which never hold a number or a code.

use async_trait::async_trait;

use crate::config::SmsConfig;
use crate::phone::PhoneNumber;

pub mod delivery;
pub mod dlt;
pub mod log;
pub mod msg91;
pub mod twilio;

pub use self::log::LogSms;

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// No provider accepted the message. The text never holds a number or a code.
    #[error("SMS provider {provider} failed: {reason}")]
    Failed {
        provider: &'static str,
        reason: String,
    },
    /// The rendered message breaks the DLT template or the length limit: never sent.
    #[error("the SMS text is not sendable: {0}")]
    Template(String),
}

/// A message ready to send: its full text, and the values of the DLT template's `{#var#}`
/// slots in order (what MSG91's flow API takes instead of the text).
#[derive(Clone, PartialEq, Eq)]
pub struct SmsMessage {
    pub text: String,
    pub vars: Vec<String>,
}

impl std::fmt::Debug for SmsMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SmsMessage({} chars, {} vars)",
            self.text.chars().count(),
            self.vars.len()
        )
    }
}

#[async_trait]
pub trait SmsSender: Send + Sync + 'static {
    /// Short name for logs and metrics.
    fn name(&self) -> &'static str;

    /// True only for a provider that delivers nothing, so the code may be handed back as
    /// `dev_otp` (and only outside production).
    fn is_dev_only(&self) -> bool;

    async fn send(&self, to: &PhoneNumber, message: &SmsMessage) -> Result<(), SmsError>;
}

/// The OTP message: `sms.template` with `{app}`, `{code}` and `{minutes}`, then the lines that
/// let phones fill the code in by themselves: WebOTP's `@host #code` as the last line when
/// `sms.webotp_host` is set, with the Android SMS Retriever app hash after it (so the message
/// also *ends* with the hash, as the Retriever requires) when `sms.android_app_hash` is set.
#[derive(Debug, Clone)]
pub struct MessageTemplate {
    template: String,
    app: String,
    webotp_host: Option<String>,
    app_hash: Option<String>,
    dlt: Option<String>,
    max_segments: u32,
}

impl MessageTemplate {
    /// Builds the template and checks a sample rendering, so a message that DLT would drop is
    /// refused at start-up rather than at the first sign-in.
    /// `minutes` is the code lifetime the real messages will name.
    pub fn new(cfg: &SmsConfig, minutes: u32) -> Result<Self, SmsError> {
        let t = Self {
            template: cfg.template.clone(),
            app: cfg.app_name.clone(),
            webotp_host: cfg.webotp_host.clone().filter(|h| !h.is_empty()),
            app_hash: cfg.android_app_hash.clone().filter(|h| !h.is_empty()),
            dlt: cfg.dlt.template.clone().filter(|t| !t.is_empty()),
            max_segments: cfg.max_segments,
        };
        t.render("000000", minutes)?;
        t.render("999999", minutes)?;
        Ok(t)
    }

    pub fn render(&self, code: &str, minutes: u32) -> Result<SmsMessage, SmsError> {
        let mut text = self
            .template
            .replace("{app}", &self.app)
            .replace("{minutes}", &minutes.to_string())
            .replace("{code}", code);
        match (&self.webotp_host, &self.app_hash) {
            (Some(host), Some(hash)) => text.push_str(&format!("\n\n@{host} #{code} {hash}")),
            (Some(host), None) => text.push_str(&format!("\n\n@{host} #{code}")),
            (None, Some(hash)) => text.push_str(&format!("\n\n{hash}")),
            (None, None) => {}
        }
        let segments = dlt::segments(&text);
        if segments > self.max_segments as usize {
            return Err(SmsError::Template(format!(
                "{} characters make {segments} SMS parts; AROGYA_SMS__MAX_SEGMENTS allows {}",
                text.chars().count(),
                self.max_segments
            )));
        }
        let vars = match &self.dlt {
            Some(registered) => dlt::match_template(registered, &text).ok_or_else(|| {
                SmsError::Template(
                    "the rendered text does not match AROGYA_SMS__DLT__TEMPLATE (India's DLT would drop it)".into(),
                )
            })?,
            None => Vec::new(),
        };
        Ok(SmsMessage { text, vars })
    }
}
