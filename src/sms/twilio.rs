//! Twilio Programmable Messaging: `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`
//! with HTTP Basic auth (Account SID : Auth Token) and form fields `To` (E.164), `From` or
//! `MessagingServiceSid`, and `Body`. Success is 201 with the message resource; errors carry
//! a JSON body with a numeric `code` (e.g. 21211 invalid To, 20429 too many requests).

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::SmsMessage;
use super::delivery::{Failure, Provider};
use crate::phone::PhoneNumber;

pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

/// Who the message comes from: a number or a Messaging Service.
#[derive(Debug, Clone)]
pub enum Sender {
    From(String),
    MessagingService(String),
}

pub struct Twilio {
    http: reqwest::Client,
    url: String,
    account_sid: String,
    auth_token: SecretString,
    sender: Sender,
}

impl Twilio {
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        account_sid: &str,
        auth_token: SecretString,
        sender: Sender,
    ) -> Self {
        Self {
            http,
            url: format!(
                "{}/2010-04-01/Accounts/{account_sid}/Messages.json",
                base_url.trim_end_matches('/')
            ),
            account_sid: account_sid.to_owned(),
            auth_token,
            sender,
        }
    }
}

#[async_trait]
impl Provider for Twilio {
    fn name(&self) -> &'static str {
        "twilio"
    }

    async fn attempt(&self, to: &PhoneNumber, message: &SmsMessage) -> Result<(), Failure> {
        let (key, value) = match &self.sender {
            Sender::From(n) => ("From", n.as_str()),
            Sender::MessagingService(s) => ("MessagingServiceSid", s.as_str()),
        };
        let form = [
            ("To", to.as_e164()),
            (key, value),
            ("Body", message.text.as_str()),
        ];
        let res = self
            .http
            .post(&self.url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .form(&form)
            .send()
            .await
            .map_err(|e| Failure::transport(&e))?;
        let status = res.status().as_u16();
        if status == 200 || status == 201 {
            return Ok(());
        }
        let code = res
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v.get("code").and_then(|c| c.as_i64()))
            .map(|c| c.to_string());
        Err(Failure::from_status(status, code))
    }
}
