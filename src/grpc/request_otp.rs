//! RequestOtp and ResendOtp: the same flow, two response types.

use tonic::{Request, Response, Status};

use super::AuthApi;
use crate::flows::otp::{SendKind, Sent, send_code};
use crate::proto::{RequestOtpRequest, RequestOtpResponse, ResendOtpRequest, ResendOtpResponse};

pub async fn request(
    api: &AuthApi,
    req: Request<RequestOtpRequest>,
) -> Result<Response<RequestOtpResponse>, Status> {
    let caller = api.caller(&req);
    let sent = send_code(
        &api.deps,
        &req.get_ref().phone_number,
        caller,
        SendKind::Request,
    )
    .await?;
    let Sent {
        expires_in_seconds,
        resend_after_seconds,
        max_attempts,
        dev_otp,
    } = sent;
    Ok(Response::new(RequestOtpResponse {
        expires_in_seconds,
        resend_after_seconds,
        max_attempts,
        dev_otp: dev_otp.unwrap_or_default(),
    }))
}

pub async fn resend(
    api: &AuthApi,
    req: Request<ResendOtpRequest>,
) -> Result<Response<ResendOtpResponse>, Status> {
    let caller = api.caller(&req);
    let sent = send_code(
        &api.deps,
        &req.get_ref().phone_number,
        caller,
        SendKind::Resend,
    )
    .await?;
    let Sent {
        expires_in_seconds,
        resend_after_seconds,
        max_attempts,
        dev_otp,
    } = sent;
    Ok(Response::new(ResendOtpResponse {
        expires_in_seconds,
        resend_after_seconds,
        max_attempts,
        dev_otp: dev_otp.unwrap_or_default(),
    }))
}
