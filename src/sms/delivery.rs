//! Delivery rules around the providers: a timeout on every call, retries with exponential
//! backoff only for failures that may pass (timeouts, HTTP 429, 5xx, connection errors), then
//! the fallback provider. What a provider answered reaches the log only as a status and a
//! numeric error code.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tracing::Instrument;

use super::{SmsError, SmsMessage, SmsSender};
use crate::metrics::Metrics;
use crate::phone::PhoneNumber;

/// Why one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Worth another try (timeout, 429, 5xx, connection).
    pub retryable: bool,
    /// Status and provider error code only (no text from the provider).
    pub reason: String,
}

impl Failure {
    pub fn from_status(status: u16, provider_code: Option<String>) -> Self {
        let code = provider_code
            .map(|c| format!(", provider code {c}"))
            .unwrap_or_default();
        Self {
            retryable: status == 429 || status >= 500,
            reason: format!("HTTP {status}{code}"),
        }
    }

    pub fn transport(e: &reqwest::Error) -> Self {
        // reqwest's Display can include the URL; keep only the kind.
        let kind = if e.is_timeout() {
            "timeout"
        } else if e.is_connect() {
            "cannot connect"
        } else {
            "transport error"
        };
        Self {
            retryable: true,
            reason: kind.into(),
        }
    }
}

/// One real provider: one attempt, no retries.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    async fn attempt(&self, to: &PhoneNumber, message: &SmsMessage) -> Result<(), Failure>;
}

/// The providers in order (primary, then fallback) with the rules above.
pub struct Delivery {
    chain: Vec<Arc<dyn Provider>>,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    metrics: Option<Arc<Metrics>>,
}

impl Delivery {
    pub fn new(
        chain: Vec<Arc<dyn Provider>>,
        timeout: Duration,
        retries: u32,
        backoff: Duration,
    ) -> Self {
        Self {
            chain,
            timeout,
            retries,
            backoff,
            metrics: None,
        }
    }

    /// Counts each provider's outcome in `arogya_auth_sms_sends_total`.
    pub fn metered(mut self, metrics: Arc<Metrics>) -> Self {
        for p in &self.chain {
            metrics.sms_provider(p.name());
        }
        self.metrics = Some(metrics);
        self
    }

    async fn try_provider(
        &self,
        p: &dyn Provider,
        to: &PhoneNumber,
        message: &SmsMessage,
    ) -> Result<(), Failure> {
        let mut attempt = 0;
        loop {
            let result = match tokio::time::timeout(self.timeout, p.attempt(to, message)).await {
                Ok(r) => r,
                Err(_) => Err(Failure {
                    retryable: true,
                    reason: "timeout".into(),
                }),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(f) if f.retryable && attempt < self.retries => {
                    tracing::info!(provider = p.name(), attempt, reason = %f.reason, "sms attempt failed; retrying");
                    tokio::time::sleep(self.backoff * 2u32.pow(attempt)).await;
                    attempt += 1;
                }
                Err(f) => return Err(f),
            }
        }
    }
}

#[async_trait]
impl SmsSender for Delivery {
    fn name(&self) -> &'static str {
        self.chain.first().map(|p| p.name()).unwrap_or("none")
    }

    fn is_dev_only(&self) -> bool {
        false
    }

    async fn send(&self, to: &PhoneNumber, message: &SmsMessage) -> Result<(), SmsError> {
        let mut last = None;
        for p in &self.chain {
            let span = tracing::info_span!("sms.provider", provider = p.name());
            let result = self
                .try_provider(p.as_ref(), to, message)
                .instrument(span)
                .await;
            if let Some(m) = &self.metrics {
                m.sms_send(p.name(), result.is_ok());
            }
            match result {
                Ok(()) => {
                    tracing::info!(provider = p.name(), to = %to.masked(), "sms accepted");
                    return Ok(());
                }
                Err(f) => {
                    tracing::warn!(provider = p.name(), to = %to.masked(), reason = %f.reason, "sms provider failed");
                    last = Some((p.name(), f.reason));
                }
            }
        }
        let (provider, reason) = last.unwrap_or(("none", "no provider configured".into()));
        Err(SmsError::Failed { provider, reason })
    }
}
