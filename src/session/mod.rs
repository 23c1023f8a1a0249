//! Sessions: the access token (an EdDSA JWT any service can check) and the refresh token (256
//! random bits, opaque, stored only as a SHA-256 hash, rotated on every use). Pure: no store,
//! no tonic, no clock reads.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::store::{SessionRef, TokenHash};

pub mod keys;

pub use keys::{AccessClaims, KeyRing};

/// Longest token we look at (DESIGN: tokens 4 KiB).
pub const MAX_TOKEN_BYTES: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("an access token or refresh token is required")]
    MissingToken,
    #[error("the token is longer than {MAX_TOKEN_BYTES} bytes")]
    TokenTooLong,
    /// Bad signature, wrong algorithm, malformed, expired, wrong issuer or audience: one answer.
    #[error("invalid or expired token; sign in again")]
    InvalidToken,
    /// The session behind a valid token has ended (logout, reuse detected, expiry).
    #[error("the session has ended; sign in again")]
    SessionEnded,
    /// A refresh token that was already rotated away was presented: the session is revoked.
    #[error("this refresh token was already used; the session has been ended for safety")]
    RefreshReused,
    #[error("signing key problem: {0}")]
    Key(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// A refresh token: the session it belongs to (user and session id) and 256 random bits. On
/// the wire it is one opaque base64url string of 86 characters; clients must not parse it.
#[derive(Clone)]
pub struct RefreshToken {
    pub session: SessionRef,
    secret: [u8; 32],
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RefreshToken({}, ****)", self.session.id)
    }
}

impl RefreshToken {
    pub fn generate(session: SessionRef) -> Self {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        Self { session, secret }
    }

    pub fn encode(&self) -> String {
        let mut raw = [0u8; 64];
        raw[..16].copy_from_slice(self.session.user_id.as_bytes());
        raw[16..32].copy_from_slice(self.session.id.as_bytes());
        raw[32..].copy_from_slice(&self.secret);
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn parse(raw: &str) -> Result<Self, SessionError> {
        if raw.is_empty() {
            return Err(SessionError::MissingToken);
        }
        if raw.len() > MAX_TOKEN_BYTES {
            return Err(SessionError::TokenTooLong);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(raw.as_bytes())
            .map_err(|_| SessionError::InvalidToken)?;
        let bytes: [u8; 64] = bytes.try_into().map_err(|_| SessionError::InvalidToken)?;
        let uuid = |b: &[u8]| Uuid::from_slice(b).map_err(|_| SessionError::InvalidToken);
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&bytes[32..]);
        Ok(Self {
            session: SessionRef {
                user_id: uuid(&bytes[..16])?,
                id: uuid(&bytes[16..32])?,
            },
            secret,
        })
    }

    /// The stored form. Plain SHA-256 suffices: the input is 256 random bits, not a password.
    pub fn hash(&self) -> TokenHash {
        Sha256::digest(self.secret).into()
    }
}

/// Reads `Bearer <token>` (case-insensitive scheme, as RFC 7235 says).
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_token_round_trips_and_is_86_chars() {
        let t = RefreshToken::generate(SessionRef {
            user_id: Uuid::new_v4(),
            id: Uuid::new_v4(),
        });
        let s = t.encode();
        assert_eq!(s.len(), 86);
        let back = RefreshToken::parse(&s).unwrap();
        assert_eq!(back.session, t.session);
        assert_eq!(back.hash(), t.hash());
        assert_ne!(RefreshToken::generate(t.session).hash(), t.hash());
    }

    #[test]
    fn malformed_refresh_tokens_are_refused() {
        assert!(matches!(
            RefreshToken::parse(""),
            Err(SessionError::MissingToken)
        ));
        assert!(matches!(
            RefreshToken::parse(&"A".repeat(5000)),
            Err(SessionError::TokenTooLong)
        ));
        for bad in [
            "abc",
            "!!!!",
            &"A".repeat(64),
            &"A".repeat(85),
            &"A".repeat(87),
            "ü".repeat(32).as_str(),
        ] {
            assert!(
                matches!(RefreshToken::parse(bad), Err(SessionError::InvalidToken)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let t = RefreshToken::generate(SessionRef {
            user_id: Uuid::nil(),
            id: Uuid::nil(),
        });
        assert!(!format!("{t:?}").contains(&t.encode()[43..]));
    }

    #[test]
    fn bearer_reads_the_scheme_case_insensitively() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
    }
}
