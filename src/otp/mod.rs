//! One-time codes: making them, hashing them, judging a guess. Pure: no store, no tonic, no
//! clock reads.
//!
//! A code is six digits drawn uniformly from 000000–999999 by a CSPRNG. It is never stored:
//! stores keep `HMAC-SHA256(secret, phone ‖ code)`, and a guess is judged by recomputing that
//! and comparing in constant time. Phone numbers become store keys the same way (a keyed hash),
//! so a dump of the store reveals neither codes nor numbers.

use hmac::{Hmac, Mac};
use rand::{Rng, RngExt};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::phone::{PhoneError, PhoneNumber};

pub const CODE_LEN: usize = 6;

/// A code as typed by a person: exactly six ASCII digits. Only [`OtpCode::parse`] or
/// [`OtpCode::generate`] make one. Its `Debug` hides the digits.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpCode(String);

impl std::fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtpCode(******)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("enter the 6-digit code from the SMS")]
    Empty,
    #[error("the code is exactly 6 digits (0-9)")]
    Malformed,
}

impl OtpCode {
    pub fn parse(raw: &str) -> Result<Self, CodeError> {
        if raw.is_empty() {
            return Err(CodeError::Empty);
        }
        // Byte checks: unicode digits, spaces, NUL and anything longer are all refused.
        if raw.len() != CODE_LEN || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CodeError::Malformed);
        }
        Ok(Self(raw.to_owned()))
    }

    /// Uniform over 000000–999999 (`random_range` rejects rather than taking a biased modulo),
    /// from the thread-local CSPRNG (ChaCha, seeded and reseeded from the OS).
    pub fn generate() -> Self {
        let n: u32 = rand::rng().random_range(0..1_000_000);
        Self(format!("{n:06}"))
    }

    /// The digits, for the SMS text and `dev_otp` only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Opaque store key for a phone number: a keyed hash, so stores never hold the number.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PhoneKey(String);

impl PhoneKey {
    /// A random key, for store tests that need many distinct numbers.
    #[cfg(test)]
    pub(crate) fn random_for_test() -> Self {
        PhoneKey(uuid::Uuid::new_v4().simple().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A code's stored form.
pub type CodeHash = [u8; 32];

/// Keyed hashing of codes and phone numbers under the server secret (`otp.secret`).
pub struct OtpHasher {
    key: SecretBox<[u8]>,
}

impl OtpHasher {
    pub fn new(secret: &SecretString) -> Self {
        Self {
            key: SecretBox::new(secret.expose_secret().as_bytes().into()),
        }
    }

    /// A fresh random secret, for the development default.
    pub fn generated() -> Self {
        let mut key = vec![0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self {
            key: SecretBox::new(key.into_boxed_slice()),
        }
    }

    fn mac(&self, domain: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
        // new_from_slice accepts any key length for HMAC.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(domain);
        for p in parts {
            mac.update(&(p.len() as u32).to_be_bytes());
            mac.update(p);
        }
        mac
    }

    pub fn hash_code(&self, phone: &PhoneNumber, code: &OtpCode) -> CodeHash {
        self.mac(
            b"arogya-otp-code-v1",
            &[phone.as_e164().as_bytes(), code.0.as_bytes()],
        )
        .finalize()
        .into_bytes()
        .into()
    }

    /// A 32-byte key for another purpose (`label` names it), derived from the same secret, so
    /// operators manage one secret.
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        self.mac(b"arogya-derived-key-v1", &[label.as_bytes()])
            .finalize()
            .into_bytes()
            .into()
    }

    pub fn phone_key(&self, phone: &PhoneNumber) -> PhoneKey {
        let digest = self
            .mac(b"arogya-phone-key-v1", &[phone.as_e164().as_bytes()])
            .finalize()
            .into_bytes();
        PhoneKey(hex(&digest[..16]))
    }

    /// Constant-time: the time taken does not depend on how much of the hash matched.
    pub fn matches(&self, phone: &PhoneNumber, guess: &OtpCode, stored: &CodeHash) -> bool {
        self.hash_code(phone, guess).ct_eq(stored).into()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Everything that can go wrong in the OTP flows, in domain words. `grpc::status` maps it.
#[derive(Debug, thiserror::Error)]
pub enum OtpError {
    #[error(transparent)]
    InvalidPhone(#[from] PhoneError),
    #[error(transparent)]
    InvalidCode(#[from] CodeError),
    /// Wrong, expired or no code: one error for all three, so nothing is learnt from it.
    #[error("wrong or expired code")]
    WrongOrExpired,
    /// The attempts of this code are used up; it is destroyed until a new one is requested.
    #[error("too many wrong codes; request a new code")]
    AttemptsExhausted,
    /// A code was sent moments ago.
    #[error("a code was sent recently; wait {retry_after_secs} s before asking for another")]
    Cooldown { retry_after_secs: u64 },
    /// A rate limit (named for operators) refused the call.
    #[error("too many requests; try again in {retry_after_secs} s")]
    RateLimited {
        limit: &'static str,
        retry_after_secs: u64,
    },
    #[error("the SMS could not be sent; try again")]
    SmsUnavailable,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Session(#[from] crate::session::SessionError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone() -> PhoneNumber {
        PhoneNumber::parse("9876543210").unwrap()
    }

    #[test]
    fn a_code_is_exactly_six_ascii_digits() {
        assert!(OtpCode::parse("012345").is_ok());
        assert_eq!(OtpCode::parse(""), Err(CodeError::Empty));
        for raw in [
            "12345",
            "1234567",
            "12345a",
            " 12345",
            "١٢٣٤٥٦",
            "१२३४५६",
            "12\u{0}456",
            "+12345",
        ] {
            assert_eq!(OtpCode::parse(raw), Err(CodeError::Malformed), "{raw:?}");
        }
    }

    #[test]
    fn generated_codes_are_six_digits_and_cover_the_range() {
        let mut first_digits = [0u32; 10];
        for _ in 0..5000 {
            let c = OtpCode::generate();
            assert!(OtpCode::parse(c.expose()).is_ok(), "{}", c.expose());
            first_digits[(c.expose().as_bytes()[0] - b'0') as usize] += 1;
        }
        // Leading zeros must occur (a code is not a number): each first digit ~500 of 5000.
        assert!(first_digits.iter().all(|&n| n > 350), "{first_digits:?}");
    }

    #[test]
    fn the_hash_binds_code_phone_and_secret() {
        let a = OtpHasher::new(&SecretString::from("k".repeat(32)));
        let b = OtpHasher::new(&SecretString::from("j".repeat(32)));
        let code = OtpCode::parse("123456").unwrap();
        let other = PhoneNumber::parse("9876543211").unwrap();
        let h = a.hash_code(&phone(), &code);
        assert!(a.matches(&phone(), &code, &h));
        assert!(!a.matches(&phone(), &OtpCode::parse("123457").unwrap(), &h));
        assert!(!a.matches(&other, &code, &h));
        assert!(!b.matches(&phone(), &code, &h));
    }

    #[test]
    fn phone_keys_hide_the_number() {
        let a = OtpHasher::generated();
        let key = a.phone_key(&phone());
        assert_eq!(key.as_str().len(), 32);
        assert!(!key.as_str().contains("9876543210"));
        assert_eq!(
            key,
            a.phone_key(&PhoneNumber::parse("+91 98765 43210").unwrap())
        );
    }

    #[test]
    fn debug_never_shows_the_digits() {
        let c = OtpCode::parse("424242").unwrap();
        assert!(!format!("{c:?}").contains("4242"));
    }
}
