//! The `ed25519` scheme (fal.ai): an Ed25519 signature over
//! `{request id}\n{user id}\n{timestamp}\n{hex(sha256(raw body))}`, carried in four
//! `X-Fal-Webhook-*` headers, with a signed timestamp checked against a tolerance. The public keys
//! come from the config, from a JWKS ([`super::keys`]) or from configured private keys, which also
//! sign. Owns those headers, the check and the signer; knows no payloads.

use std::fmt;

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey};
use http::HeaderMap;
use sha2::{Digest, Sha256};

use super::keys::{self, KeySet};
use super::{check_tolerance, header_str, parse_unix_seconds, ConfigIssue, Verified, VerifyError};
use crate::config::ProviderConfig;

/// The request id: the delivery's id (fal sends one notification per request).
pub(crate) const REQUEST_ID_HEADER: &str = "x-fal-webhook-request-id";
const USER_ID_HEADER: &str = "x-fal-webhook-user-id";
const TIMESTAMP_HEADER: &str = "x-fal-webhook-timestamp";
/// 128 hex digits: the 64-byte signature.
const SIGNATURE_HEADER: &str = "x-fal-webhook-signature";
/// The user id `sign` puts in its requests; any value verifies, the receiver does not check it.
const SIGNING_USER_ID: &str = "video-status";

/// A configured `ed25519` provider: the keys it trusts, the key it signs with, if any.
pub(crate) struct Ed25519Scheme {
    keys: KeySet,
    /// The first secret's private key; `None` when only public keys are configured.
    signing: Option<SigningKey>,
    tolerance_secs: u64,
}

impl fmt::Debug for Ed25519Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519Scheme")
            .field("keys", &self.keys)
            .field("can_sign", &self.signing.is_some())
            .field("tolerance_secs", &self.tolerance_secs)
            .finish()
    }
}

impl Ed25519Scheme {
    /// Decodes every configured key now (and loads a JWKS file), so a bad one stops start-up.
    /// Public keys and private seeds are 32 bytes as 64 hex digits or base64 (either alphabet,
    /// padding optional).
    pub(crate) fn from_config(config: &ProviderConfig) -> Result<Ed25519Scheme, ConfigIssue> {
        let mut fixed = Vec::new();
        for (i, text) in config.public_keys.iter().enumerate() {
            let key = keys::decode_key_text(text)
                .ok_or("is not 64 hex digits or base64")
                .and_then(|bytes| keys::public_key(&bytes))
                .map_err(|reason| ConfigIssue::new(format!("public_keys[{i}]"), reason))?;
            fixed.push(key);
        }
        let mut signing = None;
        for (i, secret) in config.secrets.iter().enumerate() {
            // The decoder's own errors would quote the secret: only a fixed reason is passed on.
            let key = keys::decode_key_text(secret.expose())
                .ok_or("is not 64 hex digits or base64 of an Ed25519 private key")
                .and_then(|bytes| keys::signing_key(&bytes))
                .map_err(|reason| ConfigIssue::new(format!("secrets[{i}]"), reason))?;
            fixed.push(key.verifying_key());
            signing.get_or_insert(key);
        }
        Ok(Ed25519Scheme {
            keys: KeySet::from_config(config, fixed)?,
            signing,
            tolerance_secs: config.tolerance_secs,
        })
    }

    // ---- headers ----

    fn read_headers(headers: &HeaderMap) -> Result<SignedHeaders<'_>, VerifyError> {
        let request_id = header_str(headers, REQUEST_ID_HEADER)?;
        let user_id = header_str(headers, USER_ID_HEADER)?;
        let timestamp = header_str(headers, TIMESTAMP_HEADER)?;
        let signature_hex = header_str(headers, SIGNATURE_HEADER)?;
        let signed_at = parse_unix_seconds(timestamp).ok_or(VerifyError::MalformedHeader {
            header: TIMESTAMP_HEADER,
            reason: "is not unix seconds",
        })?;
        let mut signature = [0; 64];
        hex::decode_to_slice(signature_hex, &mut signature).map_err(|_| {
            VerifyError::MalformedHeader {
                header: SIGNATURE_HEADER,
                reason: "expected 128 hex digits (a 64-byte Ed25519 signature)",
            }
        })?;
        Ok(SignedHeaders {
            request_id,
            user_id,
            timestamp,
            signature_hex,
            signed_at,
            signature: Signature::from_bytes(&signature),
        })
    }

    // ---- verify ----

    pub(crate) async fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Verified, VerifyError> {
        let signed = Self::read_headers(headers)?;
        check_tolerance(signed.signed_at, now, self.tolerance_secs)?;
        let message = signed_message(signed.request_id, signed.user_id, signed.timestamp, body);
        if !self.keys.verifies(&message, &[signed.signature]).await {
            return Err(VerifyError::NoMatchingSignature);
        }
        Ok(signed.into_verified())
    }

    // ---- sign ----

    /// Signs as fal does, with `event_id` as the request id; `None` without a private key.
    pub(crate) fn sign(
        &self,
        event_id: &str,
        at: DateTime<Utc>,
        body: &[u8],
    ) -> Option<Vec<(String, String)>> {
        let key = self.signing.as_ref()?;
        let timestamp = at.timestamp().to_string();
        let message = signed_message(event_id, SIGNING_USER_ID, &timestamp, body);
        let signature = key.sign(&message);
        Some(vec![
            (REQUEST_ID_HEADER.to_owned(), event_id.to_owned()),
            (USER_ID_HEADER.to_owned(), SIGNING_USER_ID.to_owned()),
            (TIMESTAMP_HEADER.to_owned(), timestamp),
            (
                SIGNATURE_HEADER.to_owned(),
                hex::encode(signature.to_bytes()),
            ),
        ])
    }
}

/// The signature headers of one request, read but not yet checked.
struct SignedHeaders<'h> {
    request_id: &'h str,
    user_id: &'h str,
    /// As received: the signature is over these exact characters.
    timestamp: &'h str,
    signature_hex: &'h str,
    signed_at: DateTime<Utc>,
    signature: Signature,
}

impl SignedHeaders<'_> {
    fn into_verified(self) -> Verified {
        Verified {
            delivery_id: Some(self.request_id.to_owned()),
            signed_at: Some(self.signed_at),
            headers: vec![
                (REQUEST_ID_HEADER.to_owned(), self.request_id.to_owned()),
                (USER_ID_HEADER.to_owned(), self.user_id.to_owned()),
                (TIMESTAMP_HEADER.to_owned(), self.timestamp.to_owned()),
                (SIGNATURE_HEADER.to_owned(), self.signature_hex.to_owned()),
            ],
        }
    }
}

/// `{request_id}\n{user_id}\n{timestamp}\n{lowercase hex sha256(body)}`.
fn signed_message(request_id: &str, user_id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let body_hash = hex::encode(Sha256::digest(body));
    [request_id, user_id, timestamp, &body_hash]
        .join("\n")
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine;
    use chrono::{DateTime, Duration, Utc};
    use http::HeaderMap;

    use super::super::test_support::{config, header_map, provider, sdk_vectors, vectors};
    use super::super::{Provider, Providers, SignError, VerifyError};
    use crate::config::{ProviderConfig, SchemeName};

    /// Seeds as configured: hex and base64.
    const SEED: &str = "c5a25dab2bd83f3901a573197e944f962ce26716d5d91e94da1d51f624fa65e0";
    const OTHER_SEED: &str = "VDm/TsFswFyOLhOC9nFU2ku1ETZhgPAzyFtT5J2Ii8o=";
    /// The public key of `SEED`, as the fixtures' JWK `x`.
    const SEED_PUBLIC_X: &str = "4eggH8kol5ytP7l2LdBSLfn24csrMWlLPwOBD9gleec";
    const BODY: &[u8] =
        br#"{"type":"video.ready","timestamp":"2026-11-23T11:00:20Z","data":{"videoId":"vid_1"}}"#;
    const T: i64 = 1_795_430_000;

    fn at(unix: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(unix, 0).expect("valid timestamp")
    }

    fn signer(seeds: &[&str]) -> Arc<Provider> {
        provider(config("fal", SchemeName::Ed25519, seeds))
    }

    fn verifier(public_keys: &[&str]) -> Arc<Provider> {
        let mut entry = config("fal", SchemeName::Ed25519, &[]);
        entry.public_keys = public_keys.iter().map(|k| k.to_string()).collect();
        provider(entry)
    }

    fn signed_with(seed: &str) -> HeaderMap {
        header_map(
            &signer(&[seed])
                .sign("req_1", at(T), BODY)
                .expect("can sign"),
        )
    }

    /// The vector's headers and body, verified by `scheme` at the vector's time.
    async fn check(scheme: &Provider, vector: &serde_json::Value) -> Result<(), VerifyError> {
        let headers: Vec<(String, String)> = vector["headers"]
            .as_object()
            .expect("headers")
            .iter()
            .map(|(n, v)| (n.clone(), v.as_str().expect("header value").to_owned()))
            .collect();
        let body = vector["body"].as_str().expect("body");
        let timestamp = vector["timestamp"].as_i64().expect("timestamp");
        let verified = scheme
            .verify(&header_map(&headers), body.as_bytes(), at(timestamp))
            .await?;
        assert_eq!(verified.delivery_id.as_deref(), vector["id"].as_str());
        assert_eq!(verified.signed_at, Some(at(timestamp)));
        Ok(())
    }

    #[tokio::test]
    async fn every_fal_vector_verifies_with_its_jwk_key() {
        for vector in vectors("ed25519") {
            let x = vector["jwk"]["x"].as_str().expect("jwk x");
            check(&verifier(&[x]), &vector)
                .await
                .unwrap_or_else(|e| panic!("vector {} failed: {e}", vector["note"]));
        }
    }

    #[tokio::test]
    async fn every_sdk_vector_verifies_or_is_rejected_as_the_sdk_did() {
        for vector in sdk_vectors("ed25519") {
            let x = vector["jwk"]["x"].as_str().expect("jwk x");
            let result = check(&verifier(&[x]), &vector).await;
            match vector["expect"].as_str().expect("expect") {
                "valid" => result.unwrap_or_else(|e| panic!("{}: {e}", vector["note"])),
                code => assert_eq!(
                    result.map_err(|e| e.code()),
                    Err(code),
                    "{}",
                    vector["note"]
                ),
            }
        }
    }

    #[test]
    fn signing_reproduces_every_fixture_signature() {
        use ed25519_dalek::Signer as _;
        for vector in vectors("ed25519") {
            let seed = hex::decode(vector["secret"].as_str().unwrap()).unwrap();
            let key = super::keys::signing_key(&seed).unwrap();
            assert_eq!(
                URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
                vector["jwk"]["x"]
            );
            // Ed25519 is deterministic: the same message and key give the same signature.
            let message = super::signed_message(
                vector["id"].as_str().unwrap(),
                vector["user_id"].as_str().unwrap(),
                &vector["timestamp"].to_string(),
                vector["body"].as_str().unwrap().as_bytes(),
            );
            assert_eq!(
                hex::encode(key.sign(&message).to_bytes()),
                vector["headers"]["X-Fal-Webhook-Signature"],
                "{}",
                vector["note"]
            );
        }
    }

    #[tokio::test]
    async fn what_sign_sends_verifies_with_the_public_key_alone() {
        let headers = signer(&[SEED])
            .sign("req_1", at(T), BODY)
            .expect("can sign");
        let names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "x-fal-webhook-request-id",
                "x-fal-webhook-user-id",
                "x-fal-webhook-timestamp",
                "x-fal-webhook-signature"
            ]
        );
        assert_eq!(headers[0].1, "req_1");
        assert_eq!(headers[2].1, T.to_string());
        assert!(verifier(&[SEED_PUBLIC_X])
            .verify(&header_map(&headers), BODY, at(T))
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn sign_round_trips_through_verify() {
        let scheme = signer(&[SEED]);
        let headers = scheme.sign("req_1", at(T), BODY).expect("can sign");
        let verified = scheme
            .verify(&header_map(&headers), BODY, at(T))
            .await
            .expect("own signature verifies");
        assert_eq!(verified.delivery_id.as_deref(), Some("req_1"));
        assert_eq!(verified.signed_at, Some(at(T)));
        assert_eq!(verified.headers, headers);
    }

    #[tokio::test]
    async fn public_key_alone_verifies_in_any_spelling() {
        let headers = signed_with(SEED);
        let bytes = URL_SAFE_NO_PAD.decode(SEED_PUBLIC_X).unwrap();
        for spelling in [
            SEED_PUBLIC_X.to_owned(),
            STANDARD.encode(&bytes),
            hex::encode(&bytes),
        ] {
            assert!(
                verifier(&[&spelling])
                    .verify(&headers, BODY, at(T))
                    .await
                    .is_ok(),
                "{spelling}"
            );
        }
    }

    #[tokio::test]
    async fn tampered_body_is_rejected() {
        let tampered = String::from_utf8_lossy(BODY).replace("vid_1", "vid_2");
        let error = verifier(&[SEED_PUBLIC_X])
            .verify(&signed_with(SEED), tampered.as_bytes(), at(T))
            .await
            .expect_err("tampered body");
        assert_eq!(error, VerifyError::NoMatchingSignature);
    }

    #[tokio::test]
    async fn each_signed_header_is_covered() {
        let scheme = verifier(&[SEED_PUBLIC_X]);
        let signed = signer(&[SEED]).sign("req_1", at(T), BODY).unwrap();
        for (i, changed) in ["req_2", "someone-else", &(T + 1).to_string()]
            .iter()
            .enumerate()
        {
            let mut headers = signed.clone();
            headers[i].1 = changed.to_string();
            let error = scheme
                .verify(&header_map(&headers), BODY, at(T))
                .await
                .expect_err("a signed header changed");
            assert_eq!(error, VerifyError::NoMatchingSignature, "{}", headers[i].0);
        }
    }

    #[tokio::test]
    async fn wrong_key_is_rejected() {
        let error = verifier(&[SEED_PUBLIC_X])
            .verify(&signed_with(OTHER_SEED), BODY, at(T))
            .await
            .expect_err("another key");
        assert_eq!(error, VerifyError::NoMatchingSignature);
    }

    #[tokio::test]
    async fn stale_and_future_timestamps_are_rejected() {
        let scheme = verifier(&[SEED_PUBLIC_X]);
        let headers = signed_with(SEED);
        for now in [at(T) + Duration::hours(1), at(T) - Duration::hours(1)] {
            let error = scheme
                .verify(&headers, BODY, now)
                .await
                .expect_err("outside tolerance");
            assert_eq!(error, VerifyError::TimestampOutOfTolerance);
        }
        for now in [at(T + 300), at(T - 300)] {
            assert!(scheme.verify(&headers, BODY, now).await.is_ok());
        }
    }

    #[tokio::test]
    async fn either_key_verifies_during_rotation() {
        // The new key inline, the old one as the private key this side also signs with.
        let scheme = provider({
            let mut entry = config("fal", SchemeName::Ed25519, &[OTHER_SEED]);
            entry.public_keys = vec![SEED_PUBLIC_X.into()];
            entry
        });
        for seed in [SEED, OTHER_SEED] {
            assert!(scheme.verify(&signed_with(seed), BODY, at(T)).await.is_ok());
        }
    }

    #[tokio::test]
    async fn missing_and_malformed_headers_are_named() {
        let scheme = verifier(&[SEED_PUBLIC_X]);
        let signed = signer(&[SEED]).sign("req_1", at(T), BODY).unwrap();
        for (name, _) in &signed {
            let kept: Vec<_> = signed.iter().filter(|(n, _)| n != name).cloned().collect();
            let error = scheme
                .verify(&header_map(&kept), BODY, at(T))
                .await
                .expect_err("missing header");
            assert_eq!(error.to_string(), format!("header {name} is missing"));
        }
        for (index, value) in [
            (2, "2026-11-23T11:00:00Z"),
            (3, "abcd"),
            (3, &"zz".repeat(64)),
        ] {
            let mut headers = signed.clone();
            headers[index].1 = value.to_string();
            let error = scheme
                .verify(&header_map(&headers), BODY, at(T))
                .await
                .expect_err("malformed");
            assert_eq!(error.code(), "malformed_signature_header", "{value}");
        }
    }

    #[test]
    fn a_verify_only_provider_cannot_sign() {
        let error = verifier(&[SEED_PUBLIC_X])
            .sign("req_1", at(T), BODY)
            .expect_err("no private key");
        assert!(matches!(error, SignError::NoSigningKey { .. }));
        assert_eq!(
            error.to_string(),
            "provider fal has no private key in secrets to sign with; it can only verify"
        );
    }

    #[test]
    fn bad_keys_are_rejected_at_config_time_naming_their_index() {
        let mut entry = config("fal", SchemeName::Ed25519, &[]);
        entry.public_keys = vec![SEED_PUBLIC_X.into(), "c2hvcnQ=".into()];
        let error = Providers::from_config(&[entry]).expect_err("short key");
        assert_eq!(error.key, "public_keys[1]");

        let secret = "not a key at all, and secret";
        let error = Providers::from_config(&[config("fal", SchemeName::Ed25519, &[SEED, secret])])
            .expect_err("bad seed");
        assert_eq!(error.key, "secrets[1]");
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(secret), "{shown}");
    }

    #[test]
    fn a_provider_without_any_key_is_rejected() {
        let error =
            Providers::from_config(&[config("fal", SchemeName::Ed25519, &[])]).expect_err("no key");
        assert_eq!(error.key, "public_keys");
    }

    #[test]
    fn jwks_is_refused_for_other_schemes() {
        let mut entry: ProviderConfig = config("p", SchemeName::Stripe, &["s3cret"]);
        entry.jwks = Some("https://keys.example/jwks.json".into());
        let error = Providers::from_config(&[entry]).expect_err("jwks on stripe");
        assert_eq!(error.key, "jwks");
        assert_eq!(
            error.reason,
            "is not read by scheme stripe (only by ed25519)"
        );
    }
}
