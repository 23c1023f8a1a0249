//! The `log` provider: sends nothing, writes one masked log line. The code itself is never
//! logged; in development it reaches the caller as `dev_otp` instead.

use std::sync::Arc;

use async_trait::async_trait;

use super::{SmsError, SmsMessage, SmsSender};
use crate::metrics::Metrics;
use crate::phone::PhoneNumber;

#[derive(Default)]
pub struct LogSms {
    metrics: Option<Arc<Metrics>>,
}

impl LogSms {
    /// Counts each message in `arogya_auth_sms_sends_total{provider="log"}`.
    pub fn metered(metrics: Arc<Metrics>) -> Self {
        metrics.sms_provider("log");
        Self {
            metrics: Some(metrics),
        }
    }
}

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
        if let Some(m) = &self.metrics {
            m.sms_send(self.name(), true);
        }
        Ok(())
    }
}
