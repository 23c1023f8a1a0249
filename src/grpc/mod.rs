//! Thin adapters: proto ⇄ domain, and domain errors → `tonic::Status` (in [`status`]).
//! One file per RPC; each reads its request, calls a flow, and builds its response.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::clock::Millis;
use crate::flows::{Caller, Deps};
use crate::proto::auth_service_server::AuthService;
use crate::proto::*;

mod client_ip;
mod logout;
mod refresh_session;
mod request_otp;
pub mod status;
mod validate_session;
mod verify_otp;

pub use client_ip::client_ip;

/// The `arogya.auth.v1.AuthService` implementation.
#[derive(Clone)]
pub struct AuthApi {
    deps: Deps,
    trusted_proxies: Arc<Vec<ipnet::IpNet>>,
}

impl AuthApi {
    pub fn new(deps: Deps, trusted_proxies: Vec<ipnet::IpNet>) -> Self {
        Self {
            deps,
            trusted_proxies: Arc::new(trusted_proxies),
        }
    }

    fn caller<T>(&self, req: &Request<T>) -> Caller {
        let peer = req
            .remote_addr()
            .map(|a| a.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        // Every header line, in order; an unreadable line stops the walk like garbage would.
        let lines: Vec<&str> = req
            .metadata()
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.to_str().unwrap_or("unreadable"))
            .collect();
        let joined = lines.join(",");
        let forwarded = (!lines.is_empty()).then_some(joined.as_str());
        Caller {
            ip: client_ip(peer, forwarded, &self.trusted_proxies),
        }
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn request_otp(
        &self,
        req: Request<RequestOtpRequest>,
    ) -> Result<Response<RequestOtpResponse>, Status> {
        request_otp::request(self, req).await
    }

    async fn resend_otp(
        &self,
        req: Request<ResendOtpRequest>,
    ) -> Result<Response<ResendOtpResponse>, Status> {
        request_otp::resend(self, req).await
    }

    async fn verify_otp(
        &self,
        req: Request<VerifyOtpRequest>,
    ) -> Result<Response<VerifyOtpResponse>, Status> {
        verify_otp::handle(self, req).await
    }

    async fn validate_session(
        &self,
        req: Request<ValidateSessionRequest>,
    ) -> Result<Response<ValidateSessionResponse>, Status> {
        validate_session::handle(self, req).await
    }

    async fn refresh_session(
        &self,
        req: Request<RefreshSessionRequest>,
    ) -> Result<Response<RefreshSessionResponse>, Status> {
        refresh_session::handle(self, req).await
    }

    async fn logout(
        &self,
        req: Request<LogoutRequest>,
    ) -> Result<Response<LogoutResponse>, Status> {
        logout::handle(self, req).await
    }
}

/// Unix milliseconds → protobuf Timestamp.
pub(crate) fn timestamp(ms: Millis) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// The `authorization: Bearer …` metadata value, if any.
pub(crate) fn bearer_metadata<T>(req: &Request<T>) -> Result<Option<&str>, Status> {
    match req.metadata().get("authorization") {
        None => Ok(None),
        Some(v) => {
            let s = v.to_str().map_err(|_| {
                status::malformed_authorization("the authorization header is not readable text")
            })?;
            crate::session::bearer(s).map(Some).ok_or_else(|| {
                status::malformed_authorization(
                    "the authorization header must be `Bearer <access token>`",
                )
            })
        }
    }
}
