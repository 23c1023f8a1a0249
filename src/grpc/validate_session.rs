//! ValidateSession: the hot path of every backend request. No SQL here.

use tonic::{Request, Response, Status};

use super::status::session_status;
use super::{AuthApi, bearer_metadata, timestamp};
use crate::flows::session::validate;
use crate::proto::{ValidateSessionRequest, ValidateSessionResponse};

pub async fn handle(
    api: &AuthApi,
    req: Request<ValidateSessionRequest>,
) -> Result<Response<ValidateSessionResponse>, Status> {
    // The field wins; the metadata is for callers that forward the browser's header as is.
    let token = match req.get_ref().access_token.as_str() {
        "" => bearer_metadata(&req)?.unwrap_or(""),
        t => t,
    };
    let v = validate(&api.deps, token)
        .await
        .map_err(|e| session_status(e, "access_token"))?;
    Ok(Response::new(ValidateSessionResponse {
        user_id: v.user_id.to_string(),
        session_id: v.session_id.to_string(),
        phone_number: v.phone_e164,
        expires_at: Some(timestamp(v.expires_at)),
    }))
}
