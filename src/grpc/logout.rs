//! Logout: by refresh token (field) or access token (`authorization: Bearer` metadata).

use tonic::{Request, Response, Status};

use super::status::session_status;
use super::{AuthApi, bearer_metadata};
use crate::flows::session::logout;
use crate::proto::{LogoutRequest, LogoutResponse};

pub async fn handle(
    api: &AuthApi,
    req: Request<LogoutRequest>,
) -> Result<Response<LogoutResponse>, Status> {
    let bearer = bearer_metadata(&req)?;
    let body = req.get_ref();
    let field = if body.refresh_token.is_empty() {
        "authorization"
    } else {
        "refresh_token"
    };
    logout(&api.deps, &body.refresh_token, bearer, body.all_sessions)
        .await
        .map_err(|e| session_status(e, field))?;
    Ok(Response::new(LogoutResponse {}))
}
