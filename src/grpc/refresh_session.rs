//! RefreshSession: rotate the refresh token, mint a new access token.

use tonic::{Request, Response, Status};

use super::status::session_status;
use super::{AuthApi, timestamp};
use crate::flows::session::refresh;
use crate::proto::{RefreshSessionRequest, RefreshSessionResponse};

pub async fn handle(
    api: &AuthApi,
    req: Request<RefreshSessionRequest>,
) -> Result<Response<RefreshSessionResponse>, Status> {
    let t = refresh(&api.deps, &req.get_ref().refresh_token)
        .await
        .map_err(|e| session_status(e, "refresh_token"))?;
    Ok(Response::new(RefreshSessionResponse {
        access_token: t.access_token,
        access_token_expires_at: Some(timestamp(t.access_expires_at)),
        refresh_token: t.refresh_token,
        refresh_token_expires_at: Some(timestamp(t.refresh_expires_at)),
        session_id: t.session_id.to_string(),
    }))
}
