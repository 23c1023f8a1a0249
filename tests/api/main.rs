//! Integration tests: each starts the real server on port 0 (its own SQLite file and state)
//! and talks to it over a real socket with the generated client.

mod helpers;
/// Private redis-server processes (shared with the library's own tests).
#[allow(dead_code)]
#[path = "../../src/store/testing.rs"]
mod testing;

mod bad_input;
mod bench;
mod concurrency;
mod faults;
mod grpc_web;
mod metrics;
mod otp;
mod postgres;
mod process;
mod providers;
mod rate_limits;
mod replicas;
mod server;
mod sessions;
mod sms;
