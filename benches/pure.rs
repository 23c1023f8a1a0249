//! Micro-benchmarks of the pure pieces on every request path: phone parsing, the OTP HMAC,
//! JWT signing and verification. `cargo bench --bench pure`. Read them as ratios to each
//! other on the same run; the machines are shared and noisy.

use std::hint::black_box;

use arogya_auth::clock::{Clock, SystemClock};
use arogya_auth::otp::{OtpCode, OtpHasher};
use arogya_auth::phone::PhoneNumber;
use arogya_auth::session::KeyRing;
use criterion::{Criterion, criterion_group, criterion_main};
use secrecy::SecretString;
use uuid::Uuid;

fn phone(c: &mut Criterion) {
    c.bench_function("phone: parse +91 98765-43210", |b| {
        b.iter(|| PhoneNumber::parse(black_box("+91 98765-43210")))
    });
    c.bench_function("phone: parse 09876543210", |b| {
        b.iter(|| PhoneNumber::parse(black_box("09876543210")))
    });
}

fn otp(c: &mut Criterion) {
    let hasher = OtpHasher::new(&SecretString::from("bench-secret-0123456789abcdef-0123"));
    let phone = PhoneNumber::parse("9876543210").unwrap();
    let code = OtpCode::parse("123456").unwrap();
    let stored = hasher.hash_code(&phone, &code);
    c.bench_function("otp: generate a code", |b| b.iter(OtpCode::generate));
    c.bench_function("otp: HMAC of number and code", |b| {
        b.iter(|| hasher.hash_code(black_box(&phone), black_box(&code)))
    });
    c.bench_function("otp: judge a guess (constant time)", |b| {
        b.iter(|| hasher.matches(&phone, &code, black_box(&stored)))
    });
}

fn jwt(c: &mut Criterion) {
    let keys = KeyRing::generate("arogya-auth", "arogya-vault").unwrap();
    let now = SystemClock.now_ms();
    let (token, _) = keys
        .issue(Uuid::new_v4(), Uuid::new_v4(), now, 900_000)
        .unwrap();
    c.bench_function("jwt: sign (EdDSA)", |b| {
        b.iter(|| keys.issue(Uuid::new_v4(), Uuid::new_v4(), now, 900_000))
    });
    c.bench_function("jwt: verify (EdDSA)", |b| {
        b.iter(|| keys.verify(black_box(&token), now))
    });
}

criterion_group!(benches, phone, otp, jwt);
criterion_main!(benches);
