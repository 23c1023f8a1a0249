//! The `log` provider: sends nothing, writes one masked log line. The code itself is never
//! logged; in development it reaches the caller as `dev_otp` instead.

use async_trait::async_trait;

use super::{SmsError, SmsMessage, SmsSender};
use crate::phone::PhoneNumber;

#[derive(Debug, Default)]
pub struct LogSms;

#[async_trait]
impl SmsSender for LogSms {
    fn name(&self) -> &'static str {
        "log"
    }

    fn is_dev_only(&self) -> bool {
        true
    }

    async fn send(&self, to: &PhoneNumber, message: &SmsMessage) -> Result<(), SmsError> {
        tracing::info!(
            to = %to.masked(),
            chars = message.text.chars().count(),
            "sms (log provider): message not sent; the code is in dev_otp"
        );
        Ok(())
    }
}
