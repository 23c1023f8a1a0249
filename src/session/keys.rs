//! Ed25519 signing keys, access-token claims, and the JWKS document.
//!
//! Keys are parsed once, at start-up. Each key's `kid` is its RFC 7638 JWK thumbprint, so the
//! same key always has the same id on every replica. Verification accepts only `EdDSA` and only
//! a `kid` we know; `exp` is checked against our clock (so tests can move time), and its type is
//! enforced by the claims struct (an `exp` that is a string fails to deserialize).

use std::collections::HashMap;
use std::path::Path;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{MAX_TOKEN_BYTES, SessionError};
use crate::clock::Millis;
use crate::config::JwtConfig;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// The session id.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// What a verified access token says, parsed once: who, which session, until when (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub expires_at: Millis,
}

struct VerifyKey {
    decoding: DecodingKey,
    /// base64url of the raw 32-byte public key (the JWK `x`).
    x: String,
}

/// The signing key and every key whose tokens are still accepted.
pub struct KeyRing {
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, VerifyKey>,
    validation: Validation,
    issuer: String,
    audience: String,
    /// Where the signing key came from, for the start-up log ("generated" or the file path).
    pub source: String,
    /// Tokens already verified, by their exact text: a token is presented many times in its
    /// 15 minutes, and an EdDSA verify costs more than the rest of ValidateSession. Only
    /// successful verifications enter; expiry is still checked on every hit.
    verified: quick_cache::sync::Cache<String, Verified>,
}

/// How many verified tokens are remembered (about 0.5 KiB each).
const VERIFIED_CACHE_ENTRIES: usize = 8192;

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("kid", &self.signing_kid)
            .field("source", &self.source)
            .finish()
    }
}

impl KeyRing {
    /// A fresh key for the development default; it dies with the process.
    pub fn generate(issuer: &str, audience: &str) -> Result<Self, SessionError> {
        let pair = Ed25519KeyPair::generate()
            .map_err(|_| SessionError::Key("could not generate an Ed25519 key".into()))?;
        Self::from_pair(pair, issuer, audience, "generated".into())
    }

    /// Loads a PKCS#8 PEM Ed25519 private key (`openssl genpkey -algorithm ed25519`).
    pub fn from_pem_file(path: &Path, issuer: &str, audience: &str) -> Result<Self, SessionError> {
        let text = std::fs::read(path)
            .map_err(|e| SessionError::Key(format!("{}: {e}", path.display())))?;
        let pair = pair_from_pem(&text)
            .map_err(|why| SessionError::Key(format!("{}: {why}", path.display())))?;
        Self::from_pair(pair, issuer, audience, path.display().to_string())
    }

    /// The keys `jwt` names: the signing key (from `private_key`, `private_key_file`, or
    /// generated when neither is set) and every key in `verify_keys_file` and `verify_keys`,
    /// accepted and published but never used to sign.
    pub fn from_config(jwt: &JwtConfig) -> Result<Self, SessionError> {
        let (issuer, audience) = (jwt.issuer.as_str(), jwt.audience.as_str());
        let mut ring = match (&jwt.private_key, &jwt.private_key_file) {
            (Some(text), _) => {
                let pair = pair_from_pem(text.expose_secret().as_bytes())
                    .map_err(|why| SessionError::Key(format!("AROGYA_JWT__PRIVATE_KEY: {why}")))?;
                Self::from_pair(pair, issuer, audience, "AROGYA_JWT__PRIVATE_KEY".into())?
            }
            (None, Some(path)) => Self::from_pem_file(path, issuer, audience)?,
            (None, None) => Self::generate(issuer, audience)?,
        };
        if let Some(path) = &jwt.verify_keys_file {
            let text = std::fs::read(path)
                .map_err(|e| SessionError::Key(format!("{}: {e}", path.display())))?;
            ring.add_verify_keys(&text)
                .map_err(|why| SessionError::Key(format!("{}: {why}", path.display())))?;
        }
        if let Some(text) = &jwt.verify_keys {
            ring.add_verify_keys(text.expose_secret().as_bytes())
                .map_err(|why| SessionError::Key(format!("AROGYA_JWT__VERIFY_KEYS: {why}")))?;
        }
        Ok(ring)
    }

    /// Accepts (and publishes) every Ed25519 key in a PEM bundle: `PUBLIC KEY` (SPKI) or
    /// `PRIVATE KEY` (PKCS#8) blocks. The signing key may be listed again; it is not doubled.
    /// An empty (or blank) bundle adds nothing, so a mounted file can be emptied after a
    /// rotation; anything else that holds no PEM block is refused.
    fn add_verify_keys(&mut self, text: &[u8]) -> Result<(), String> {
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let blocks = pem::parse_many(text).map_err(|e| format!("not PEM ({e})"))?;
        if blocks.is_empty() {
            return Err("holds no PEM block".into());
        }
        for (n, block) in blocks.iter().enumerate() {
            let which = || format!("key {} of {}", n + 1, blocks.len());
            let raw = match block.tag() {
                "PUBLIC KEY" => ed25519_from_spki(block.contents())
                    .ok_or_else(|| format!("{}: not an Ed25519 public key", which()))?
                    .to_vec(),
                "PRIVATE KEY" => Ed25519KeyPair::from_pkcs8_maybe_unchecked(block.contents())
                    .map_err(|e| format!("{}: not an Ed25519 PKCS#8 key ({e})", which()))?
                    .public_key()
                    .as_ref()
                    .to_vec(),
                other => {
                    return Err(format!(
                        "{}: expected a `PUBLIC KEY` or `PRIVATE KEY` block, found `{other}`",
                        which()
                    ));
                }
            };
            if has_small_order(&raw) {
                return Err(format!(
                    "{}: a small-order Ed25519 point, under which signatures prove nothing",
                    which()
                ));
            }
            let x = URL_SAFE_NO_PAD.encode(&raw);
            self.verifying
                .entry(thumbprint(&x))
                .or_insert_with(|| VerifyKey {
                    decoding: DecodingKey::from_ed_der(&raw),
                    x,
                });
        }
        Ok(())
    }

    /// The ids of every key whose tokens are accepted, the signing key's first.
    pub fn kids(&self) -> Vec<&str> {
        let mut others: Vec<&str> = self
            .verifying
            .keys()
            .map(String::as_str)
            .filter(|k| *k != self.signing_kid)
            .collect();
        others.sort_unstable();
        let mut all = vec![self.signing_kid.as_str()];
        all.extend(others);
        all
    }

    /// The public half of a PKCS#8 PEM private key, as a `PUBLIC KEY` (SPKI) PEM: what to put
    /// in `AROGYA_JWT__VERIFY_KEYS` to publish the next key without handing out its secret.
    pub fn public_pem(private_pem: &[u8]) -> Result<String, SessionError> {
        let pair = pair_from_pem(private_pem).map_err(SessionError::Key)?;
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(pair.public_key().as_ref());
        Ok(pem::encode(&pem::Pem::new("PUBLIC KEY", der)))
    }

    /// A PEM of a freshly generated key (for `arogya-auth gen-key` and tests).
    pub fn generate_pem() -> Result<String, SessionError> {
        let pair = Ed25519KeyPair::generate()
            .map_err(|_| SessionError::Key("could not generate an Ed25519 key".into()))?;
        let der = pair
            .to_pkcs8()
            .map_err(|_| SessionError::Key("could not encode the key".into()))?;
        Ok(pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            der.as_ref().to_vec(),
        )))
    }

    fn from_pair(
        pair: Ed25519KeyPair,
        issuer: &str,
        audience: &str,
        source: String,
    ) -> Result<Self, SessionError> {
        let der = pair
            .to_pkcs8()
            .map_err(|_| SessionError::Key("could not encode the key".into()))?;
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let kid = thumbprint(&x);
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is checked in `verify` against the service clock, with no leeway.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        let mut verifying = HashMap::new();
        verifying.insert(
            kid.clone(),
            VerifyKey {
                decoding: DecodingKey::from_ed_der(pair.public_key().as_ref()),
                x,
            },
        );
        Ok(Self {
            signing_kid: kid,
            signing: EncodingKey::from_ed_der(der.as_ref()),
            verifying,
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            source,
            verified: quick_cache::sync::Cache::new(VERIFIED_CACHE_ENTRIES),
        })
    }

    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    /// Signs an access token for `user` in `session`, valid for `ttl_ms` from `now`.
    pub fn issue(
        &self,
        user: Uuid,
        session: Uuid,
        now: Millis,
        ttl_ms: Millis,
    ) -> Result<(String, AccessClaims), SessionError> {
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user.to_string(),
            sid: session.to_string(),
            iat: now / 1000,
            exp: (now + ttl_ms) / 1000,
            jti: Uuid::new_v4().simple().to_string(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.signing_kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.signing)
            .map_err(|e| SessionError::Key(format!("signing failed: {e}")))?;
        Ok((token, claims))
    }

    /// [`KeyRing::verify`], remembered: a token is presented many times in its 15 minutes and
    /// an EdDSA verify costs more than the rest of ValidateSession. Only successful checks are
    /// remembered, by exact token text, as parsed ids (no per-call parsing or cloning); expiry
    /// is checked on every hit.
    pub fn check(&self, token: &str, now: Millis) -> Result<Verified, SessionError> {
        if token.len() <= MAX_TOKEN_BYTES
            && let Some(v) = self.verified.get(token)
        {
            return if v.expires_at > now {
                Ok(v)
            } else {
                Err(SessionError::InvalidToken)
            };
        }
        let claims = self.verify(token, now)?;
        let parse = |s: &str| Uuid::parse_str(s).map_err(|_| SessionError::InvalidToken);
        let v = Verified {
            user_id: parse(&claims.sub)?,
            session_id: parse(&claims.sid)?,
            expires_at: claims.exp * 1000,
        };
        self.verified.insert(token.to_owned(), v);
        Ok(v)
    }

    /// Checks signature, algorithm, kid, issuer, audience and expiry (every time).
    pub fn verify(&self, token: &str, now: Millis) -> Result<AccessClaims, SessionError> {
        if token.is_empty() {
            return Err(SessionError::MissingToken);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(SessionError::TokenTooLong);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| SessionError::InvalidToken)?;
        if header.alg != Algorithm::EdDSA {
            return Err(SessionError::InvalidToken);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifying.get(kid))
            .ok_or(SessionError::InvalidToken)?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &self.validation)
            .map_err(|_| SessionError::InvalidToken)?;
        if data.claims.exp * 1000 <= now {
            return Err(SessionError::InvalidToken);
        }
        Ok(data.claims)
    }

    /// The public keys as an RFC 7517 JWK Set.
    pub fn jwks(&self) -> serde_json::Value {
        let mut kids: Vec<&String> = self.verifying.keys().collect();
        kids.sort();
        let keys: Vec<_> = kids
            .into_iter()
            .map(|kid| {
                serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "x": self.verifying[kid].x,
                    "kid": kid, "use": "sig", "alg": "EdDSA",
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

fn pair_from_pem(text: &[u8]) -> Result<Ed25519KeyPair, String> {
    let parsed = pem::parse(text).map_err(|e| format!("not a PEM file ({e})"))?;
    if parsed.tag() != "PRIVATE KEY" {
        return Err(format!(
            "expected a PKCS#8 `PRIVATE KEY` PEM block, found `{}`",
            parsed.tag()
        ));
    }
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(parsed.contents())
        .map_err(|e| format!("not an Ed25519 PKCS#8 key ({e})"))
}

/// The DER of an Ed25519 SubjectPublicKeyInfo up to the key (RFC 8410): SEQUENCE, the
/// algorithm SEQUENCE with OID 1.3.101.112 and no parameters, then a 33-byte BIT STRING.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The raw 32-byte key of an Ed25519 SPKI, which has exactly one DER encoding.
fn ed25519_from_spki(der: &[u8]) -> Option<&[u8]> {
    der.strip_prefix(&ED25519_SPKI_PREFIX[..])
        .filter(|raw| raw.len() == 32)
}

/// The encodings of Ed25519's small-order points (and their non-canonical twins), as
/// libsodium's `ge25519_has_small_order` lists them; compared without the sign bit. A public
/// key among them would accept forged signatures, so it is refused.
fn has_small_order(raw: &[u8]) -> bool {
    const BLOCKLIST: [[u8; 32]; 7] = [
        // 0 (order 4)
        [0; 32],
        // 1 (order 1)
        [
            1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0,
        ],
        // order 8
        [
            0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef,
            0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88,
            0x6d, 0x53, 0xfc, 0x05,
        ],
        // order 8
        [
            0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10,
            0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77,
            0x92, 0xac, 0x03, 0x7a,
        ],
        // p - 1 (order 2)
        [
            0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0x7f,
        ],
        // p (= 0, non-canonical)
        [
            0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0x7f,
        ],
        // p + 1 (= 1, non-canonical)
        [
            0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0x7f,
        ],
    ];
    let Ok(key) = <[u8; 32]>::try_from(raw) else {
        return false;
    };
    BLOCKLIST
        .iter()
        .any(|bad| bad[..31] == key[..31] && (bad[31] & 0x7f) == (key[31] & 0x7f))
}

/// RFC 7638 thumbprint of an Ed25519 JWK (members in lexicographic order, no spaces).
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};

    fn ring() -> KeyRing {
        KeyRing::generate("iss", "aud").unwrap()
    }

    fn b64(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn a_token_verifies_with_every_claim() {
        let r = ring();
        let now = SystemClock.now_ms();
        let (user, sid) = (Uuid::new_v4(), Uuid::new_v4());
        let (token, claims) = r.issue(user, sid, now, 900_000).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.kid.as_deref(), Some(r.signing_kid()));
        let back = r.verify(&token, now).unwrap();
        assert_eq!(back, claims);
        assert_eq!((back.sub, back.sid), (user.to_string(), sid.to_string()));
        assert_eq!(back.exp - back.iat, 900);
        assert!(!back.jti.is_empty());
    }

    #[test]
    fn a_remembered_token_still_expires_and_a_tampered_one_is_never_remembered() {
        let r = ring();
        let now = SystemClock.now_ms();
        let (token, claims) = r
            .issue(Uuid::new_v4(), Uuid::new_v4(), now, 60_000)
            .unwrap();
        assert_eq!(r.verify(&token, now).unwrap(), claims);
        assert_eq!(
            r.verify(&token, now + 1).unwrap(),
            claims,
            "served from the cache"
        );
        assert!(
            r.verify(&token, now + 61_000).is_err(),
            "the cache does not outlive exp"
        );
        let mut forged = token.clone();
        forged.pop();
        forged.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(r.verify(&forged, now).is_err());
        assert!(
            r.verify(&forged, now).is_err(),
            "a failure is not cached as success"
        );
    }

    #[test]
    fn an_expired_token_is_refused_at_its_exp() {
        let r = ring();
        let now = SystemClock.now_ms();
        let (token, _) = r
            .issue(Uuid::new_v4(), Uuid::new_v4(), now, 60_000)
            .unwrap();
        assert!(r.verify(&token, now + 59_000).is_ok());
        assert!(matches!(
            r.verify(&token, now + 61_000),
            Err(SessionError::InvalidToken)
        ));
    }

    #[test]
    fn another_keys_token_is_refused() {
        let now = SystemClock.now_ms();
        let (token, _) = ring()
            .issue(Uuid::new_v4(), Uuid::new_v4(), now, 60_000)
            .unwrap();
        assert!(matches!(
            ring().verify(&token, now),
            Err(SessionError::InvalidToken)
        ));
    }

    #[test]
    fn alg_none_hs256_and_tampering_are_refused() {
        let r = ring();
        let now = SystemClock.now_ms();
        let (token, claims) = r
            .issue(Uuid::new_v4(), Uuid::new_v4(), now, 60_000)
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let body = serde_json::to_value(&claims).unwrap();

        let none = format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg":"none","typ":"JWT","kid":r.signing_kid()})),
            parts[1]
        );
        assert!(r.verify(&none, now).is_err(), "alg none");

        // HS256 keyed with the public key (the classic confusion attack).
        let x = r.jwks()["keys"][0]["x"].as_str().unwrap().to_owned();
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(r.signing_kid().to_owned());
        let hs =
            jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(x.as_bytes())).unwrap();
        assert!(r.verify(&hs, now).is_err(), "HS256");

        let mut evil = body.clone();
        evil["sub"] = serde_json::json!(Uuid::new_v4().to_string());
        let tampered = format!("{}.{}.{}", parts[0], b64(&evil), parts[2]);
        assert!(r.verify(&tampered, now).is_err(), "tampered claims");

        let mut sig = parts[2].to_owned();
        sig.replace_range(0..1, if sig.starts_with('A') { "B" } else { "A" });
        assert!(
            r.verify(&format!("{}.{}.{sig}", parts[0], parts[1]), now)
                .is_err(),
            "tampered signature"
        );

        assert!(r.verify("a.b.c", now).is_err());
        assert!(r.verify("", now).is_err());
        assert!(r.verify(&"a".repeat(MAX_TOKEN_BYTES + 1), now).is_err());
    }

    #[test]
    fn a_string_exp_is_refused() {
        // jsonwebtoken < 10.3 skipped a mistyped exp; here the claims struct refuses it.
        let r = ring();
        let now = SystemClock.now_ms();
        let (token, claims) = r
            .issue(Uuid::new_v4(), Uuid::new_v4(), now, 60_000)
            .unwrap();
        let mut body = serde_json::to_value(&claims).unwrap();
        body["exp"] = serde_json::json!((claims.exp).to_string());
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(r.signing_kid().to_owned());
        let forged = jsonwebtoken::encode(&header, &body, &r.signing).unwrap();
        assert!(r.verify(&forged, now).is_err());
        assert!(r.verify(&token, now).is_ok());
    }

    #[test]
    fn wrong_issuer_or_audience_is_refused() {
        let a = ring();
        let now = SystemClock.now_ms();
        let (_, claims) = a
            .issue(Uuid::new_v4(), Uuid::new_v4(), now, 60_000)
            .unwrap();
        for (k, v) in [("iss", "someone-else"), ("aud", "other-app")] {
            let mut body = serde_json::to_value(&claims).unwrap();
            body[k] = serde_json::json!(v);
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = Some(a.signing_kid().to_owned());
            let forged = jsonwebtoken::encode(&header, &body, &a.signing).unwrap();
            assert!(a.verify(&forged, now).is_err(), "{k}");
        }
    }

    #[test]
    fn a_pem_key_loads_and_keeps_its_kid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        std::fs::write(&path, KeyRing::generate_pem().unwrap()).unwrap();
        let a = KeyRing::from_pem_file(&path, "i", "a").unwrap();
        let b = KeyRing::from_pem_file(&path, "i", "a").unwrap();
        assert_eq!(a.signing_kid(), b.signing_kid(), "thumbprint is stable");
        let now = SystemClock.now_ms();
        let (t, _) = a.issue(Uuid::new_v4(), Uuid::new_v4(), now, 1000).unwrap();
        assert!(b.verify(&t, now).is_ok());
        std::fs::write(
            &path,
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        )
        .unwrap();
        assert!(KeyRing::from_pem_file(&path, "i", "a").is_err());
        assert!(KeyRing::from_pem_file(&dir.path().join("missing.pem"), "i", "a").is_err());
    }

    #[test]
    fn jwks_lists_the_key_as_an_okp_jwk() {
        let r = ring();
        let jwks = r.jwks();
        let k = &jwks["keys"][0];
        assert_eq!(
            (k["kty"].as_str(), k["crv"].as_str(), k["alg"].as_str()),
            (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
        );
        assert_eq!(k["kid"].as_str(), Some(r.signing_kid()));
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(k["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        // A verifier built only from the JWK accepts our tokens.
        let dk = DecodingKey::from_ed_components(k["x"].as_str().unwrap()).unwrap();
        let now = SystemClock.now_ms();
        let (t, _) = r
            .issue(Uuid::new_v4(), Uuid::new_v4(), now, 60_000)
            .unwrap();
        assert!(jsonwebtoken::decode::<AccessClaims>(&t, &dk, &r.validation).is_ok());
    }

    fn jwt(private: &str, verify: Option<&str>) -> JwtConfig {
        let mut cfg = crate::config::Config::default().jwt;
        cfg.private_key = Some(secrecy::SecretString::from(private.to_owned()));
        cfg.verify_keys = verify.map(|v| secrecy::SecretString::from(v.to_owned()));
        cfg
    }

    #[test]
    fn verify_keys_are_accepted_and_published_but_never_sign() {
        let (old, next) = (
            KeyRing::generate_pem().unwrap(),
            KeyRing::generate_pem().unwrap(),
        );
        let now = SystemClock.now_ms();
        let before = KeyRing::from_config(&jwt(&old, None)).unwrap();
        // The next key published by its public half only, the signing key listed again.
        let public_next = KeyRing::public_pem(next.as_bytes()).unwrap();
        assert!(public_next.starts_with("-----BEGIN PUBLIC KEY-----"));
        let during =
            KeyRing::from_config(&jwt(&old, Some(&format!("{public_next}{old}")))).unwrap();
        let after = KeyRing::from_config(&jwt(&next, Some(&old))).unwrap();

        assert_eq!(during.signing_kid(), before.signing_kid());
        assert_eq!(
            during.kids(),
            vec![before.signing_kid(), after.signing_kid()]
        );
        assert_eq!(
            after.kids(),
            vec![after.signing_kid(), before.signing_kid()]
        );
        assert_eq!(during.jwks()["keys"].as_array().unwrap().len(), 2);
        assert_eq!(before.jwks()["keys"].as_array().unwrap().len(), 1);

        let (user, sid) = (Uuid::new_v4(), Uuid::new_v4());
        let (old_token, _) = during.issue(user, sid, now, 60_000).unwrap();
        let (new_token, _) = after.issue(user, sid, now, 60_000).unwrap();
        assert!(
            after.verify(&old_token, now).is_ok(),
            "old key's token after the swap"
        );
        assert!(
            during.verify(&new_token, now).is_ok(),
            "new key's token before the swap"
        );
        assert!(
            before.verify(&new_token, now).is_err(),
            "not published, not accepted"
        );
        let newest = KeyRing::from_config(&jwt(&next, None)).unwrap();
        assert!(
            newest.verify(&old_token, now).is_err(),
            "the old key retired"
        );
    }

    #[test]
    fn bad_verify_keys_are_refused_with_their_place() {
        let key = KeyRing::generate_pem().unwrap();
        for (bundle, says) in [
            ("not pem at all", "holds no PEM block"),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "key 1 of 1: expected a `PUBLIC KEY` or `PRIVATE KEY` block",
            ),
            (
                // A P-256 public key is not Ed25519.
                "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9\nq9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==\n-----END PUBLIC KEY-----\n",
                "key 1 of 1: not an Ed25519 public key",
            ),
        ] {
            let err = KeyRing::from_config(&jwt(&key, Some(bundle))).unwrap_err();
            assert!(err.to_string().contains("AROGYA_JWT__VERIFY_KEYS"), "{err}");
            assert!(err.to_string().contains(says), "{bundle:?}: {err}");
        }
        for blank in ["", "\n  \n"] {
            let ring = KeyRing::from_config(&jwt(&key, Some(blank))).expect("blank adds nothing");
            assert_eq!(ring.kids().len(), 1);
        }
        // The identity point and p - 1 (sign bit set, too), as SPKI public keys.
        for raw in [
            {
                let mut k = [0u8; 32];
                k[0] = 1;
                k
            },
            {
                let mut k = [0xffu8; 32];
                k[0] = 0xec;
                k[31] = 0xff;
                k
            },
        ] {
            let mut der = ED25519_SPKI_PREFIX.to_vec();
            der.extend_from_slice(&raw);
            let bundle = pem::encode(&pem::Pem::new("PUBLIC KEY", der));
            let err = KeyRing::from_config(&jwt(&key, Some(&bundle))).unwrap_err();
            assert!(err.to_string().contains("small-order"), "{err}");
        }
        // A real key is never mistaken for one.
        for _ in 0..50 {
            let public = KeyRing::public_pem(KeyRing::generate_pem().unwrap().as_bytes()).unwrap();
            KeyRing::from_config(&jwt(&key, Some(&public))).expect("a real public key");
        }
        let err = KeyRing::from_config(&jwt("garbage", None)).unwrap_err();
        assert!(
            err.to_string().contains("AROGYA_JWT__PRIVATE_KEY:"),
            "{err}"
        );
        assert!(
            !err.to_string().contains("garbage"),
            "never echo key text: {err}"
        );
    }
}
