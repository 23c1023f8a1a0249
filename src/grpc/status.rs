//! The one place that knows about `tonic::Code`: every domain error becomes a Status with a
//! message a person understands and, where DESIGN.md says so, rich details
//! (`google.rpc.BadRequest`, `RetryInfo`, `ErrorInfo`). Internal failures are logged here with
//! their cause and reach the caller only as a short, safe sentence.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::otp::OtpError;
use crate::session::SessionError;

/// `ErrorInfo.domain` of every error we raise.
pub const ERROR_DOMAIN: &str = "auth.arogya.v1";

fn info(code: Code, message: String, reason: &str, mut details: ErrorDetails) -> Status {
    details.set_error_info(reason, ERROR_DOMAIN, HashMap::<String, String>::new());
    Status::with_error_details(code, message, details)
}

/// INVALID_ARGUMENT naming the field, with a `BadRequest` field violation; the ErrorInfo
/// reason is `INVALID_<FIELD>` (e.g. `INVALID_PHONE_NUMBER`).
pub fn bad_request(field: &str, why: impl ToString) -> Status {
    let why = why.to_string();
    let details = ErrorDetails::with_bad_request_violation(field, why.clone());
    let reason = format!("INVALID_{}", field.to_ascii_uppercase());
    info(
        Code::InvalidArgument,
        format!("{field}: {why}"),
        &reason,
        details,
    )
}

fn exhausted(message: String, reason: &str, retry_after_secs: Option<u64>) -> Status {
    let details = match retry_after_secs {
        Some(s) => ErrorDetails::with_retry_info(Some(Duration::from_secs(s))),
        None => ErrorDetails::new(),
    };
    info(Code::ResourceExhausted, message, reason, details)
}

fn unavailable(cause: &dyn std::error::Error) -> Status {
    tracing::error!(error = %cause, "dependency failed");
    info(
        Code::Unavailable,
        "the service is temporarily unavailable; try again shortly".into(),
        "BACKEND_UNAVAILABLE",
        ErrorDetails::new(),
    )
}

impl From<OtpError> for Status {
    fn from(err: OtpError) -> Self {
        match err {
            OtpError::InvalidPhone(why) => bad_request("phone_number", why),
            OtpError::InvalidCode(why) => bad_request("otp", why),
            OtpError::WrongOrExpired => info(
                Code::Unauthenticated,
                err.to_string(),
                "OTP_INVALID",
                ErrorDetails::new(),
            ),
            OtpError::AttemptsExhausted => {
                exhausted(err.to_string(), "OTP_ATTEMPTS_EXHAUSTED", None)
            }
            OtpError::Cooldown { retry_after_secs } => exhausted(
                err.to_string(),
                "OTP_RESEND_COOLDOWN",
                Some(retry_after_secs),
            ),
            OtpError::RateLimited {
                limit,
                retry_after_secs,
            } => {
                let mut details =
                    ErrorDetails::with_retry_info(Some(Duration::from_secs(retry_after_secs)));
                details.set_error_info(
                    "RATE_LIMITED",
                    ERROR_DOMAIN,
                    HashMap::from([("limit".to_owned(), limit.to_owned())]),
                );
                Status::with_error_details(Code::ResourceExhausted, err.to_string(), details)
            }
            OtpError::SmsUnavailable => info(
                Code::Unavailable,
                err.to_string(),
                "SMS_UNAVAILABLE",
                ErrorDetails::new(),
            ),
            OtpError::Store(e) => unavailable(&e),
            OtpError::Db(e) => unavailable(&e),
            OtpError::Session(e) => session_status(e, "refresh_token"),
        }
    }
}

/// UNAUTHENTICATED `TOKEN_INVALID` for `authorization` metadata that is not a bearer token.
pub fn malformed_authorization(message: &str) -> Status {
    info(
        Code::Unauthenticated,
        message.to_owned(),
        "TOKEN_INVALID",
        ErrorDetails::new(),
    )
}

/// `field` names the request field that carried the token, for a size violation.
pub fn session_status(err: SessionError, field: &str) -> Status {
    let auth = |reason: &str, err: &SessionError| {
        info(
            Code::Unauthenticated,
            err.to_string(),
            reason,
            ErrorDetails::new(),
        )
    };
    match err {
        SessionError::TokenTooLong => bad_request(field, &err),
        SessionError::MissingToken => auth("TOKEN_MISSING", &err),
        SessionError::InvalidToken => auth("TOKEN_INVALID", &err),
        SessionError::SessionEnded => auth("SESSION_ENDED", &err),
        SessionError::RefreshReused => auth("REFRESH_TOKEN_REUSED", &err),
        SessionError::Key(ref why) => {
            tracing::error!(error = %why, "signing failed");
            info(
                Code::Internal,
                "could not issue a token".into(),
                "INTERNAL",
                ErrorDetails::new(),
            )
        }
        SessionError::Store(e) => unavailable(&e),
    }
}
