//! MSG91 Flow API (India): `POST {base}/api/v5/flow` with the `authkey` header and a JSON body
//! naming the DLT-registered template (`template_id`), the sender header, and one recipient:
//! `mobiles` (country code and number, no `+`) plus the template's variables, named as in the
//! MSG91 template (`AROGYA_SMS__MSG91__VARS`, default `var1`, `var2`, …) in the order of its
//! `{#var#}` slots. MSG91 answers `{"type":"success","message":"<id>"}`
//! or `{"type":"error","message":…}`.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::SmsMessage;
use super::delivery::{Failure, Provider};
use crate::phone::PhoneNumber;

pub const DEFAULT_BASE_URL: &str = "https://control.msg91.com";

pub struct Msg91 {
    http: reqwest::Client,
    url: String,
    auth_key: SecretString,
    template_id: String,
    sender: Option<String>,
    /// The template's variable names in slot order (`var1`, `var2`, … when not configured).
    var_names: Vec<String>,
}

impl Msg91 {
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        auth_key: SecretString,
        template_id: &str,
        sender: Option<String>,
        var_names: Vec<String>,
    ) -> Self {
        Self {
            var_names,
            http,
            url: format!("{}/api/v5/flow", base_url.trim_end_matches('/')),
            auth_key,
            template_id: template_id.to_owned(),
            sender,
        }
    }
}

#[async_trait]
impl Provider for Msg91 {
    fn name(&self) -> &'static str {
        "msg91"
    }

    async fn attempt(&self, to: &PhoneNumber, message: &SmsMessage) -> Result<(), Failure> {
        let mut recipient = serde_json::Map::new();
        recipient.insert(
            "mobiles".into(),
            to.as_e164().trim_start_matches('+').into(),
        );
        for (i, v) in message.vars.iter().enumerate() {
            let name = self
                .var_names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("var{}", i + 1));
            recipient.insert(name, v.as_str().into());
        }
        let mut body = serde_json::json!({
            "template_id": self.template_id,
            "short_url": "0",
            "recipients": [recipient],
        });
        if let Some(sender) = &self.sender {
            body["sender"] = sender.as_str().into();
        }
        let res = self
            .http
            .post(&self.url)
            .header("authkey", self.auth_key.expose_secret())
            .header("accept", "application/json")
            .json(&body)
            .send()
            .await
            .map_err(|e| Failure::transport(&e))?;
        let status = res.status().as_u16();
        let reply: Option<serde_json::Value> = res.json().await.ok();
        let kind = reply
            .as_ref()
            .and_then(|v| v.get("type"))
            .and_then(|t| t.as_str());
        if (200..300).contains(&status) && kind == Some("success") {
            return Ok(());
        }
        // MSG91's error `message` is free text that may echo the number: never passed on.
        let code = reply
            .as_ref()
            .and_then(|v| v.get("code"))
            .map(|c| c.to_string().trim_matches('"').to_owned())
            .filter(|c| (1..=6).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()));
        let mut f = Failure::from_status(status, code);
        if (200..300).contains(&status) {
            f.reason = format!("{} with type {}", f.reason, kind.unwrap_or("missing"));
        }
        Err(f)
    }
}
