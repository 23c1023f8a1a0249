//! SMS delivery behind one trait. The `log` provider is the development default; Twilio and
//! MSG91 arrive with issue 5 and slot in here.

use async_trait::async_trait;

use crate::phone::PhoneNumber;

pub mod log;

pub use self::log::LogSms;

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// The provider did not accept the message. The text never holds a number or a code.
    #[error("SMS provider {provider} failed: {reason}")]
    Failed {
        provider: &'static str,
        reason: String,
    },
}

#[async_trait]
pub trait SmsSender: Send + Sync + 'static {
    /// Short name for logs and metrics.
    fn name(&self) -> &'static str;

    /// True only for a provider that delivers nothing, so the code may be handed back as
    /// `dev_otp` (and only outside production).
    fn is_dev_only(&self) -> bool;

    async fn send(&self, to: &PhoneNumber, text: &str) -> Result<(), SmsError>;
}

/// The message a person receives. `{app}` names the app; the code comes first so phones show it
/// in the notification.
pub fn otp_message(app_name: &str, code: &str, valid_minutes: u32) -> String {
    format!(
        "{code} is your {app_name} sign-in code. It expires in {valid_minutes} min. Never share it with anyone."
    )
}
