//! arogya-auth: the phone-number sign-in service of Arogya Vault.
//!
//! A person asks for a one-time code by SMS, types it back and gets a session; the vault's
//! other services ask [`grpc`]'s `ValidateSession` whether a token is still good. The crate is a
//! library with a thin `main`, so the integration tests run exactly the code that ships.
//!
//! Layers, outermost first: [`app`] wires everything and serves; [`grpc`] adapts proto to the
//! domain and domain errors to `tonic::Status`; [`flows`] runs the sign-in and session flows
//! against the [`store`], [`db`] and [`sms`] traits; [`otp`], [`session`] and [`phone`] are pure
//! rules with no I/O.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod clock;
pub mod config;
pub mod db;
pub mod flows;
pub mod grpc;
pub mod metrics;
pub mod otp;
pub mod phone;
pub mod readiness;
pub mod session;
pub mod sms;
pub mod store;
pub mod telemetry;

/// Generated protobuf and gRPC code for `arogya.auth.v1`.
pub mod proto {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("arogya.auth.v1");

    /// Descriptor set for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("auth_descriptor");
}
