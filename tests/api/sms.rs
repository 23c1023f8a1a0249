//! The SMS seam: what the provider receives, what happens when it fails, and a call held open
//! across a graceful shutdown.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use arogya_auth::phone::PhoneNumber;
use arogya_auth::sms::{SmsError, SmsMessage, SmsSender};
use tokio::sync::{Notify, Semaphore};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::helpers::*;

/// Records every message; fails while `failing`; waits for a permit when `gated`.
struct TestSms {
    sent: Mutex<Vec<(String, String)>>,
    failing: AtomicBool,
    gated: AtomicBool,
    gate: Semaphore,
    entered: Notify,
}

impl Default for TestSms {
    fn default() -> Self {
        Self {
            sent: Mutex::default(),
            failing: AtomicBool::default(),
            gated: AtomicBool::default(),
            gate: Semaphore::new(0),
            entered: Notify::new(),
        }
    }
}

#[async_trait::async_trait]
impl SmsSender for TestSms {
    fn name(&self) -> &'static str {
        "test"
    }
    fn is_dev_only(&self) -> bool {
        true
    }
    async fn send(&self, to: &PhoneNumber, message: &SmsMessage) -> Result<(), SmsError> {
        self.sent
            .lock()
            .unwrap()
            .push((to.as_e164().to_owned(), message.text.clone()));
        // Whether this send fails is decided when it starts, whatever happens while it waits.
        let fails = self.failing.load(Ordering::SeqCst);
        self.entered.notify_one();
        if self.gated.load(Ordering::SeqCst) {
            self.gate.acquire().await.unwrap().forget();
        }
        if fails {
            return Err(SmsError::Failed {
                provider: "test",
                reason: "provider said no".into(),
            });
        }
        Ok(())
    }
}

async fn spawn(sms: &Arc<TestSms>) -> TestApp {
    TestApp::spawn_with_sms(|_| {}, Some(sms.clone() as Arc<dyn SmsSender>)).await
}

#[tokio::test]
async fn the_provider_gets_the_e164_number_and_a_text_with_the_code() {
    let sms = Arc::new(TestSms::default());
    let app = spawn(&sms).await;
    let sent = app.request_otp("098765 43210").await.unwrap();
    let (to, text) = sms.sent.lock().unwrap()[0].clone();
    assert_eq!(to, PHONE);
    assert!(text.starts_with(&sent.dev_otp), "{text}");
    assert!(
        text.contains("Arogya Vault") && text.contains("10 min"),
        "{text}"
    );
}

#[tokio::test]
async fn a_failed_sms_is_unavailable_and_withdraws_the_code_and_the_cooldown() {
    let sms = Arc::new(TestSms::default());
    let app = spawn(&sms).await;
    sms.failing.store(true, Ordering::SeqCst);
    let s = expect_code(app.request_otp(PHONE).await, Code::Unavailable);
    assert_eq!(reason(&s).as_deref(), Some("SMS_UNAVAILABLE"));
    assert!(
        !s.message().contains("provider said no"),
        "provider text stays in the log: {}",
        s.message()
    );
    let lost_code = sms.sent.lock().unwrap()[0].1[..6].to_owned();

    sms.failing.store(false, Ordering::SeqCst);
    let sent = app
        .request_otp(PHONE)
        .await
        .expect("no cooldown after a failed send");
    if sent.dev_otp != lost_code {
        expect_code(
            app.verify_otp(PHONE, &lost_code).await,
            Code::Unauthenticated,
        );
    }
    app.verify_otp(PHONE, &sent.dev_otp)
        .await
        .expect("the delivered code works");
}

#[tokio::test]
async fn a_call_in_flight_finishes_during_graceful_shutdown() {
    let sms = Arc::new(TestSms::default());
    sms.gated.store(true, Ordering::SeqCst);
    let app = spawn(&sms).await;
    let mut watch = app.watch_health().await;

    let mut client = app.client.clone();
    let in_flight = tokio::spawn(async move {
        client
            .request_otp(arogya_auth::proto::RequestOtpRequest {
                phone_number: PHONE.into(),
            })
            .await
    });
    sms.entered.notified().await; // the call is inside the provider now
    let stopping = tokio::spawn(app.stop());
    assert_eq!(
        watch.next().await.unwrap().unwrap().status(),
        ServingStatus::NotServing
    );
    drop(watch);
    assert!(
        !stopping.is_finished(),
        "the server waits for the call in flight"
    );

    sms.gate.add_permits(1);
    let response = in_flight
        .await
        .unwrap()
        .expect("the call in flight completes");
    assert_eq!(response.into_inner().dev_otp.len(), 6);
    tokio::time::timeout(std::time::Duration::from_secs(8), stopping)
        .await
        .expect("then it stops")
        .unwrap();
}

#[tokio::test]
async fn a_send_outliving_the_callers_deadline_still_cleans_up_after_itself() {
    let sms = Arc::new(TestSms::default());
    sms.gated.store(true, Ordering::SeqCst);
    sms.failing.store(true, Ordering::SeqCst);
    let app = spawn(&sms).await;
    let mut req = tonic::Request::new(arogya_auth::proto::RequestOtpRequest {
        phone_number: PHONE.into(),
    });
    req.set_timeout(std::time::Duration::from_millis(200));
    let gone = app.client.clone().request_otp(req).await.unwrap_err();
    assert!(
        matches!(gone.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{gone:?}"
    );

    // The provider finally fails; the detached delivery withdraws the code and the cooldown.
    sms.gated.store(false, Ordering::SeqCst);
    sms.gate.add_permits(1);
    sms.failing.store(false, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match app.request_otp(PHONE).await {
            Ok(sent) => {
                assert_eq!(sent.dev_otp.len(), 6);
                break;
            }
            Err(s) => {
                assert_eq!(
                    s.code(),
                    Code::ResourceExhausted,
                    "only the cooldown may stand in the way: {s:?}"
                );
                assert!(
                    std::time::Instant::now() < deadline,
                    "the cooldown was never refunded"
                );
                tokio::task::yield_now().await;
            }
        }
    }
}
