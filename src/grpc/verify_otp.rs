//! VerifyOtp: a code for a session (and, on first sign-in, a user).

use tonic::{Request, Response, Status};

use super::{AuthApi, timestamp};
use crate::flows::otp::verify_code;
use crate::proto::{User, VerifyOtpRequest, VerifyOtpResponse};

pub async fn handle(
    api: &AuthApi,
    req: Request<VerifyOtpRequest>,
) -> Result<Response<VerifyOtpResponse>, Status> {
    let caller = api.caller(&req);
    let body = req.get_ref();
    let signed_in = verify_code(&api.deps, &body.phone_number, &body.otp, caller).await?;
    let u = signed_in.user;
    let t = signed_in.tokens;
    Ok(Response::new(VerifyOtpResponse {
        access_token: t.access_token,
        access_token_expires_at: Some(timestamp(t.access_expires_at)),
        refresh_token: t.refresh_token,
        refresh_token_expires_at: Some(timestamp(t.refresh_expires_at)),
        session_id: t.session_id.to_string(),
        user: Some(User {
            id: u.id.to_string(),
            phone_number: u.phone_number,
            username: u.username.unwrap_or_default(),
            email: u.email.unwrap_or_default(),
            abha_id: u.abha_id.unwrap_or_default(),
            is_guest: u.is_guest,
            created_at: Some(timestamp(u.created_at.timestamp_millis())),
            updated_at: Some(timestamp(u.updated_at.timestamp_millis())),
        }),
        new_user: signed_in.new_user,
    }))
}
