//! Subscriber tokens: which videos and providers a reader may see. A JWT (HS256 with the shared
//! secret, or EdDSA with the configured public key) whose claims name them; `exp` is required.
//! Without a configured key, reads are open. Knows nothing of HTTP beyond the token's text.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::Auth;
use crate::event::{ProviderName, VideoId};

/// What a subscriber token grants.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Videos the holder may see, by id.
    #[serde(default)]
    pub videos: Vec<String>,
    /// Providers whose videos the holder may see.
    #[serde(default)]
    pub providers: Vec<String>,
}

/// Who is reading: anyone (no key configured) or the holder of a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Open,
    Token(Claims),
}

impl Access {
    /// May the reader see this video, reported by this provider?
    pub fn allows(&self, video_id: &VideoId, provider: &ProviderName) -> bool {
        match self {
            Access::Open => true,
            Access::Token(claims) => {
                claims.videos.iter().any(|v| v == video_id.as_str())
                    || claims.providers.iter().any(|p| p == provider.as_str())
            }
        }
    }

    /// May the reader see this video whatever its provider (no status known yet)?
    pub fn allows_video(&self, video_id: &VideoId) -> bool {
        match self {
            Access::Open => true,
            Access::Token(claims) => claims.videos.iter().any(|v| v == video_id.as_str()),
        }
    }

    /// Could the token show anything of this video (directly, or through a provider)?
    pub fn may_watch(&self, video_id: &VideoId) -> bool {
        match self {
            Access::Open => true,
            Access::Token(claims) => self.allows_video(video_id) || !claims.providers.is_empty(),
        }
    }
}

/// Why a token was refused (HTTP 401, or 403 for a valid token that grants nothing here).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("a subscriber token is required (Authorization: Bearer <jwt> or ?token=<jwt>)")]
    MissingToken,
    #[error("the subscriber token has expired")]
    Expired,
    #[error("the subscriber token is not valid")]
    InvalidToken,
    #[error("the subscriber token does not grant access to this")]
    Forbidden,
}

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::Expired => "token_expired",
            AuthError::InvalidToken => "invalid_token",
            AuthError::Forbidden => "forbidden",
        }
    }
}

/// The configured verification keys; `None` keys mean reads are open.
#[derive(Clone)]
pub struct SubscriberAuth {
    keys: Vec<(DecodingKey, Algorithm)>,
}

/// A configured key that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("auth.subscriber_jwt_public_key: {0}")]
pub struct KeyError(String);

impl SubscriberAuth {
    pub fn from_config(auth: &Auth) -> Result<SubscriberAuth, KeyError> {
        let mut keys = Vec::new();
        if let Some(secret) = &auth.subscriber_jwt_secret {
            keys.push((
                DecodingKey::from_secret(secret.expose().as_bytes()),
                Algorithm::HS256,
            ));
        }
        if let Some(x) = &auth.subscriber_jwt_public_key {
            let key = DecodingKey::from_ed_components(x)
                .map_err(|_| KeyError("must be the base64url Ed25519 public key (JWK x)".into()))?;
            keys.push((key, Algorithm::EdDSA));
        }
        Ok(SubscriberAuth { keys })
    }

    pub fn is_enforced(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Verifies the presented token (if enforcement is on) and says what it grants.
    pub fn access(&self, token: Option<&str>) -> Result<Access, AuthError> {
        if !self.is_enforced() {
            return Ok(Access::Open);
        }
        let token = token.ok_or(AuthError::MissingToken)?;
        let mut error = AuthError::InvalidToken;
        for (key, algorithm) in &self.keys {
            let mut validation = Validation::new(*algorithm);
            validation.validate_aud = false;
            validation.set_required_spec_claims(&["exp"]);
            // jsonwebtoken's default 60 s of leeway would keep a token valid a minute past its
            // `exp`; the issuer chose that time, and it is what clients are told expires.
            validation.leeway = 0;
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => return Ok(Access::Token(data.claims)),
                Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                    error = AuthError::Expired;
                }
                Err(_) => {}
            }
        }
        Err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &str = "a-subscriber-secret-of-32-chars!!";

    fn auth() -> SubscriberAuth {
        SubscriberAuth::from_config(&Auth {
            subscriber_jwt_secret: Some(Secret::new(SECRET)),
            ..Auth::default()
        })
        .unwrap()
    }

    fn token(claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn exp_in(secs: i64) -> i64 {
        chrono::Utc::now().timestamp() + secs
    }

    #[test]
    fn without_a_key_reads_are_open() {
        let open = SubscriberAuth::from_config(&Auth::default()).unwrap();
        assert_eq!(open.access(None), Ok(Access::Open));
    }

    #[test]
    fn a_valid_token_grants_its_videos_and_providers() {
        let access = auth()
            .access(Some(&token(
                json!({ "videos": ["v1"], "providers": ["mux"], "exp": exp_in(60) }),
            )))
            .unwrap();
        let (v1, v2) = (VideoId::parse("v1").unwrap(), VideoId::parse("v2").unwrap());
        let (demo, mux) = (
            ProviderName::parse("demo").unwrap(),
            ProviderName::parse("mux").unwrap(),
        );
        assert!(access.allows(&v1, &demo));
        assert!(access.allows(&v2, &mux));
        assert!(!access.allows(&v2, &demo));
    }

    /// The key pair of RFC 8410, section 10.
    const ED25519_PRIVATE_PKCS8: &str =
        "MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC";
    const ED25519_PUBLIC_X: &str = "Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE";

    #[test]
    fn eddsa_tokens_verify_with_the_configured_public_key() {
        use base64::Engine;
        let auth = SubscriberAuth::from_config(&Auth {
            subscriber_jwt_public_key: Some(ED25519_PUBLIC_X.into()),
            ..Auth::default()
        })
        .unwrap();
        let der = base64::engine::general_purpose::STANDARD
            .decode(ED25519_PRIVATE_PKCS8)
            .unwrap();
        let token = encode(
            &Header::new(Algorithm::EdDSA),
            &json!({ "videos": ["v1"], "exp": exp_in(60) }),
            &EncodingKey::from_ed_der(&der),
        )
        .unwrap();
        let access = auth.access(Some(&token)).unwrap();
        assert!(access.allows_video(&VideoId::parse("v1").unwrap()));
        // An HS256 token is not accepted when only the EdDSA key is configured.
        assert_eq!(
            auth.access(Some(&super::tests::token(
                json!({ "videos": ["v1"], "exp": exp_in(60) })
            ))),
            Err(AuthError::InvalidToken)
        );
    }

    #[test]
    fn missing_expired_forged_and_exp_less_tokens_are_refused() {
        let auth = auth();
        assert_eq!(auth.access(None), Err(AuthError::MissingToken));
        let expired = token(json!({ "videos": ["v1"], "exp": exp_in(-3600) }));
        assert_eq!(auth.access(Some(&expired)), Err(AuthError::Expired));
        let just_expired = token(json!({ "videos": ["v1"], "exp": exp_in(-2) }));
        assert_eq!(auth.access(Some(&just_expired)), Err(AuthError::Expired));
        let no_exp = token(json!({ "videos": ["v1"] }));
        assert_eq!(auth.access(Some(&no_exp)), Err(AuthError::InvalidToken));
        let forged = encode(
            &Header::new(Algorithm::HS256),
            &json!({ "videos": ["v1"], "exp": exp_in(60) }),
            &EncodingKey::from_secret(b"another-secret-of-32-characters!!"),
        )
        .unwrap();
        assert_eq!(auth.access(Some(&forged)), Err(AuthError::InvalidToken));
        assert_eq!(auth.access(Some("not.a.jwt")), Err(AuthError::InvalidToken));
    }
}
