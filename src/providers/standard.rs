//! The `standard` scheme: Standard Webhooks (`webhook-*` headers) and Svix (`svix-*`, same values):
//! signatures over `{id}.{timestamp}.{raw body}`, either symmetric (`v1,`: base64 HMAC-SHA256 keyed
//! with a `whsec_` secret) or asymmetric (`v1a,`: base64 Ed25519, checked with `whpk_` public
//! keys), with a signed timestamp checked against a tolerance. Owns those headers, the check and
//! the signer; knows no payloads.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use http::HeaderMap;
use subtle::ConstantTimeEq;

use super::keys::{self, any_verifies};
use super::{
    check_tolerance, header_str, hmac_sha256, parse_unix_seconds, ConfigIssue, Verified,
    VerifyError,
};
use crate::config::ProviderConfig;

/// Secrets are usually shown as `whsec_<base64>`; the prefix is optional.
const SECRET_PREFIX: &str = "whsec_";
/// An Ed25519 private key: `whsk_<base64 of the 32-byte seed>`; the prefix is required, since it
/// is what tells it from a symmetric secret.
const SIGNING_KEY_PREFIX: &str = "whsk_";
/// An Ed25519 public key: `whpk_<base64 of 32 bytes>`; the prefix is optional.
const PUBLIC_KEY_PREFIX: &str = "whpk_";
/// Shorter keys are refused: Standard Webhooks secrets are 24 to 64 random bytes.
const MIN_KEY_BYTES: usize = 16;
/// Symmetric signatures; other versions (future ones) are skipped.
const VERSION: &str = "v1";
/// Asymmetric (Ed25519) signatures.
const ASYMMETRIC_VERSION: &str = "v1a";

/// The three header names of one family.
struct HeaderNames {
    id: &'static str,
    timestamp: &'static str,
    signature: &'static str,
}

const WEBHOOK_HEADERS: HeaderNames = HeaderNames {
    id: "webhook-id",
    timestamp: "webhook-timestamp",
    signature: "webhook-signature",
};

const SVIX_HEADERS: HeaderNames = HeaderNames {
    id: "svix-id",
    timestamp: "svix-timestamp",
    signature: "svix-signature",
};

/// What the first secret signs with.
enum SigningSecret {
    /// Index into `mac_keys`.
    Mac(usize),
    /// Boxed: a signing key (with its expanded secret) is far larger than an index.
    Ed25519(Box<SigningKey>),
}

/// A configured `standard` provider: its decoded keys and timestamp tolerance.
pub(crate) struct StandardScheme {
    /// `whsec_` secrets, decoded.
    mac_keys: Vec<Vec<u8>>,
    /// `whpk_` keys, and the public halves of `whsk_` secrets.
    public_keys: Vec<VerifyingKey>,
    /// The first secret; `None` when only public keys are configured.
    signer: Option<SigningSecret>,
    tolerance_secs: u64,
}

impl fmt::Debug for StandardScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandardScheme")
            .field("secret_count", &self.mac_keys.len())
            .field("public_key_count", &self.public_keys.len())
            .field("can_sign", &self.signer.is_some())
            .field("tolerance_secs", &self.tolerance_secs)
            .finish()
    }
}

impl StandardScheme {
    /// Decodes every secret and key now, so a bad one stops start-up instead of failing every
    /// request. Needs at least one secret or public key.
    pub(crate) fn from_config(config: &ProviderConfig) -> Result<StandardScheme, ConfigIssue> {
        if config.secrets.is_empty() && config.public_keys.is_empty() {
            return Err(ConfigIssue::new(
                "secrets",
                "at least one secret (whsec_ or whsk_) or public key (whpk_ in public_keys) is \
                 required",
            ));
        }
        let mut scheme = StandardScheme {
            mac_keys: Vec::new(),
            public_keys: Vec::new(),
            signer: None,
            tolerance_secs: config.tolerance_secs,
        };
        for (i, secret) in config.secrets.iter().enumerate() {
            let key = format!("secrets[{i}]");
            // Decoder errors name the offending byte, which is part of the secret: they are
            // deliberately not passed on.
            let encoded = secret.expose();
            let signer = if encoded.starts_with(PUBLIC_KEY_PREFIX) {
                return Err(ConfigIssue::new(
                    key,
                    "is a whpk_ public key: it belongs in public_keys",
                ));
            } else if let Some(encoded) = encoded.strip_prefix(SIGNING_KEY_PREFIX) {
                let signing = BASE64
                    .decode(encoded)
                    .map_err(|_| "is not whsk_ followed by standard, padded base64")
                    .and_then(|bytes| keys::signing_key(&bytes))
                    .map_err(|reason| ConfigIssue::new(&key, reason))?;
                scheme.public_keys.push(signing.verifying_key());
                SigningSecret::Ed25519(Box::new(signing))
            } else {
                let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
                let mac_key = BASE64.decode(encoded).map_err(|_| {
                    ConfigIssue::new(
                        &key,
                        "is not an optional whsec_ prefix followed by standard, padded base64",
                    )
                })?;
                if mac_key.len() < MIN_KEY_BYTES {
                    return Err(ConfigIssue::new(
                        key,
                        format!(
                            "decodes to {} bytes; at least {MIN_KEY_BYTES} are required",
                            mac_key.len()
                        ),
                    ));
                }
                scheme.mac_keys.push(mac_key);
                SigningSecret::Mac(scheme.mac_keys.len() - 1)
            };
            scheme.signer.get_or_insert(signer);
        }
        for (i, text) in config.public_keys.iter().enumerate() {
            let encoded = text.strip_prefix(PUBLIC_KEY_PREFIX).unwrap_or(text);
            let public = BASE64
                .decode(encoded)
                .map_err(|_| "is not an optional whpk_ prefix followed by standard, padded base64")
                .and_then(|bytes| keys::public_key(&bytes))
                .map_err(|reason| ConfigIssue::new(format!("public_keys[{i}]"), reason))?;
            scheme.public_keys.push(public);
        }
        Ok(scheme)
    }

    // ---- headers ----

    fn read_headers(headers: &HeaderMap) -> Result<SignedHeaders<'_>, VerifyError> {
        // Svix sends `svix-*`; Standard Webhooks senders (and Svix, for some accounts) send
        // `webhook-*`. A request with any `webhook-*` header is read as Standard Webhooks, so a
        // missing one is reported under its own name rather than silently mixed with Svix's.
        let has_any = |names: &HeaderNames| {
            [names.id, names.timestamp, names.signature]
                .iter()
                .any(|name| headers.contains_key(*name))
        };
        let names = if !has_any(&WEBHOOK_HEADERS) && has_any(&SVIX_HEADERS) {
            &SVIX_HEADERS
        } else {
            &WEBHOOK_HEADERS
        };
        let id = header_str(headers, names.id)?;
        let timestamp = header_str(headers, names.timestamp)?;
        let signature = header_str(headers, names.signature)?;
        let signed_at = parse_unix_seconds(timestamp).ok_or(VerifyError::MalformedHeader {
            header: names.timestamp,
            reason: "is not unix seconds",
        })?;
        let candidates = signatures(names.signature, signature)?;
        Ok(SignedHeaders {
            names,
            id,
            timestamp,
            signature,
            signed_at,
            candidates,
        })
    }

    // ---- verify ----

    pub(crate) fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Verified, VerifyError> {
        let signed = Self::read_headers(headers)?;
        // Both directions, as the official libraries do.
        check_tolerance(signed.signed_at, now, self.tolerance_secs)?;
        if !self.symmetric_match(&signed, body) && !self.asymmetric_match(&signed, body) {
            return Err(VerifyError::NoMatchingSignature);
        }
        Ok(signed.into_verified())
    }

    fn symmetric_match(&self, signed: &SignedHeaders<'_>, body: &[u8]) -> bool {
        self.mac_keys.iter().any(|key| {
            let expected = signed_content_mac(key, signed.id, signed.timestamp, body);
            signed
                .candidates
                .mac
                .iter()
                .any(|candidate| bool::from(expected.as_slice().ct_eq(candidate)))
        })
    }

    fn asymmetric_match(&self, signed: &SignedHeaders<'_>, body: &[u8]) -> bool {
        if self.public_keys.is_empty() || signed.candidates.ed25519.is_empty() {
            return false;
        }
        let content = signed_content(signed.id, signed.timestamp, body);
        any_verifies(&self.public_keys, &content, &signed.candidates.ed25519)
    }

    // ---- sign ----

    /// Signs with the first secret: `v1,` for a `whsec_` one, `v1a,` for a `whsk_` one; `None`
    /// when only public keys are configured.
    pub(crate) fn sign(
        &self,
        event_id: &str,
        at: DateTime<Utc>,
        body: &[u8],
    ) -> Option<Vec<(String, String)>> {
        let timestamp = at.timestamp().to_string();
        let signature = match self.signer.as_ref()? {
            SigningSecret::Mac(index) => {
                let mac = signed_content_mac(&self.mac_keys[*index], event_id, &timestamp, body);
                format!("{VERSION},{}", BASE64.encode(mac))
            }
            SigningSecret::Ed25519(key) => {
                let signature = key.sign(&signed_content(event_id, &timestamp, body));
                format!(
                    "{ASYMMETRIC_VERSION},{}",
                    BASE64.encode(signature.to_bytes())
                )
            }
        };
        Some(vec![
            (WEBHOOK_HEADERS.id.to_owned(), event_id.to_owned()),
            (WEBHOOK_HEADERS.timestamp.to_owned(), timestamp),
            (WEBHOOK_HEADERS.signature.to_owned(), signature),
        ])
    }
}

/// The signature headers of one request, read but not yet checked.
struct SignedHeaders<'h> {
    names: &'static HeaderNames,
    id: &'h str,
    /// As received: the MAC is over these exact characters, not a re-formatted number.
    timestamp: &'h str,
    signature: &'h str,
    signed_at: DateTime<Utc>,
    candidates: Candidates,
}

/// The decoded signatures of a `webhook-signature` header; any one may match.
struct Candidates {
    /// `v1` entries.
    mac: Vec<Vec<u8>>,
    /// `v1a` entries.
    ed25519: Vec<Signature>,
}

impl SignedHeaders<'_> {
    fn into_verified(self) -> Verified {
        Verified {
            delivery_id: Some(self.id.to_owned()),
            signed_at: Some(self.signed_at),
            headers: vec![
                (self.names.id.to_owned(), self.id.to_owned()),
                (self.names.timestamp.to_owned(), self.timestamp.to_owned()),
                (self.names.signature.to_owned(), self.signature.to_owned()),
            ],
        }
    }
}

/// The MAC of `{id}.{timestamp}.{body}`.
fn signed_content_mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
    hmac_sha256(
        key,
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    )
}

/// `{id}.{timestamp}.{body}` in one buffer, as Ed25519 signs a whole message.
fn signed_content(id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    for part in [id.as_bytes(), b".", timestamp.as_bytes(), b".", body] {
        content.extend_from_slice(part);
    }
    content
}

/// The decoded `v1` and `v1a` entries of a space-separated `version,base64` list.
fn signatures(header: &'static str, value: &str) -> Result<Candidates, VerifyError> {
    let mut candidates = Candidates {
        mac: Vec::new(),
        ed25519: Vec::new(),
    };
    for entry in value.split_ascii_whitespace() {
        let (version, signature) = entry.split_once(',').ok_or(VerifyError::MalformedHeader {
            header,
            reason: "expected space-separated version,signature entries",
        })?;
        // An undecodable entry cannot match, and must not hide a valid one beside it.
        let Ok(bytes) = BASE64.decode(signature) else {
            continue;
        };
        match version {
            VERSION => candidates.mac.push(bytes),
            ASYMMETRIC_VERSION => {
                if let Ok(bytes) = <[u8; 64]>::try_from(bytes.as_slice()) {
                    candidates.ed25519.push(Signature::from_bytes(&bytes));
                }
            }
            _ => {}
        }
    }
    Ok(candidates)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{DateTime, Duration, Utc};
    use http::HeaderMap;

    use super::super::test_support::{
        config, header_map, provider, sdk_vectors, vectors, VerifyNow,
    };
    use super::super::{Provider, Providers, VerifyError};
    use crate::config::SchemeName;

    const SECRET: &str = "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    const OTHER_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const BODY: &[u8] =
        br#"{"type":"video.ready","timestamp":"2026-11-23T11:00:20Z","data":{"videoId":"vid_1"}}"#;

    fn standard(secrets: &[&str]) -> Arc<Provider> {
        provider(config("std", SchemeName::Standard, secrets))
    }

    fn at(unix: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(unix, 0).expect("valid timestamp")
    }

    const T: i64 = 1_795_438_820;

    /// Headers signed for `BODY` at `T` with `secret`, as a sender would send them.
    fn signed_with(secret: &str) -> Vec<(String, String)> {
        standard(&[secret])
            .sign("msg_1", at(T), BODY)
            .expect("a secret signs")
    }

    fn without(headers: &[(String, String)], name: &str) -> HeaderMap {
        let kept: Vec<_> = headers.iter().filter(|(n, _)| n != name).cloned().collect();
        header_map(&kept)
    }

    fn with_signature(headers: &[(String, String)], signature: &str) -> HeaderMap {
        let mut replaced = headers.to_vec();
        for (name, value) in &mut replaced {
            if name == "webhook-signature" {
                *value = signature.to_owned();
            }
        }
        header_map(&replaced)
    }

    fn signature_of(headers: &[(String, String)]) -> String {
        headers
            .iter()
            .find(|(n, _)| n == "webhook-signature")
            .map(|(_, v)| v.clone())
            .expect("a signature header")
    }

    #[test]
    fn every_standard_vector_verifies_at_its_timestamp() {
        for vector in vectors("standard") {
            let secret = vector["secret"].as_str().expect("secret");
            let timestamp = vector["timestamp"].as_i64().expect("timestamp");
            let body = vector["body"].as_str().expect("body");
            let headers: Vec<(String, String)> = vector["headers"]
                .as_object()
                .expect("headers")
                .iter()
                .map(|(n, v)| (n.clone(), v.as_str().expect("header value").to_owned()))
                .collect();
            let verified = standard(&[secret])
                .verify_now(&header_map(&headers), body.as_bytes(), at(timestamp))
                .unwrap_or_else(|e| panic!("vector {} failed: {e}", vector["id"]));
            assert_eq!(verified.delivery_id.as_deref(), vector["id"].as_str());
            assert_eq!(verified.signed_at, Some(at(timestamp)));
        }
    }

    #[test]
    fn signing_reproduces_the_official_vector() {
        let vector = &vectors("standard")[0];
        let body = vector["body"].as_str().expect("body");
        let id = vector["id"].as_str().expect("id");
        let signed = standard(&[vector["secret"].as_str().expect("secret")])
            .sign(
                id,
                at(vector["timestamp"].as_i64().expect("timestamp")),
                body.as_bytes(),
            )
            .expect("a secret signs");
        assert_eq!(
            signature_of(&signed),
            vector["headers"]["webhook-signature"]
        );
    }

    #[test]
    fn sign_round_trips_through_verify() {
        let headers = signed_with(SECRET);
        let verified = standard(&[SECRET])
            .verify_now(&header_map(&headers), BODY, at(T))
            .expect("own signature verifies");
        assert_eq!(verified.delivery_id.as_deref(), Some("msg_1"));
        assert_eq!(verified.signed_at, Some(at(T)));
        assert_eq!(verified.headers, headers);
    }

    #[test]
    fn tampered_body_is_rejected() {
        let headers = header_map(&signed_with(SECRET));
        let tampered = String::from_utf8_lossy(BODY).replace("vid_1", "vid_2");
        let error = standard(&[SECRET])
            .verify_now(&headers, tampered.as_bytes(), at(T))
            .expect_err("tampered body");
        assert_eq!(error, VerifyError::NoMatchingSignature);
    }

    #[test]
    fn wrong_secret_is_rejected() {
        let headers = header_map(&signed_with(OTHER_SECRET));
        let error = standard(&[SECRET])
            .verify_now(&headers, BODY, at(T))
            .expect_err("wrong secret");
        assert_eq!(error, VerifyError::NoMatchingSignature);
    }

    #[test]
    fn each_missing_header_is_named() {
        let headers = signed_with(SECRET);
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            let error = standard(&[SECRET])
                .verify_now(&without(&headers, name), BODY, at(T))
                .expect_err("missing header");
            assert_eq!(error, VerifyError::MissingHeader { header: name });
            assert_eq!(error.to_string(), format!("header {name} is missing"));
        }
    }

    #[test]
    fn request_without_any_signature_header_reports_webhook_id() {
        let error = standard(&[SECRET])
            .verify_now(&HeaderMap::new(), BODY, at(T))
            .expect_err("no headers");
        assert_eq!(
            error,
            VerifyError::MissingHeader {
                header: "webhook-id"
            }
        );
    }

    #[test]
    fn stale_timestamp_is_rejected() {
        let headers = header_map(&signed_with(SECRET));
        let error = standard(&[SECRET])
            .verify_now(&headers, BODY, at(T) + Duration::hours(1))
            .expect_err("an hour old");
        assert_eq!(error, VerifyError::TimestampOutOfTolerance);
    }

    #[test]
    fn future_timestamp_is_rejected() {
        let headers = header_map(&signed_with(SECRET));
        let error = standard(&[SECRET])
            .verify_now(&headers, BODY, at(T) - Duration::hours(1))
            .expect_err("an hour ahead");
        assert_eq!(error, VerifyError::TimestampOutOfTolerance);
    }

    #[test]
    fn timestamp_at_the_tolerance_edge_is_accepted() {
        let headers = header_map(&signed_with(SECRET));
        let scheme = standard(&[SECRET]);
        for now in [at(T + 300), at(T - 300)] {
            assert!(scheme.verify_now(&headers, BODY, now).is_ok());
        }
        assert!(scheme.verify_now(&headers, BODY, at(T + 301)).is_err());
    }

    #[test]
    fn non_numeric_timestamp_is_malformed() {
        let mut headers = signed_with(SECRET);
        headers[1].1 = "2026-11-23T11:00:00Z".into();
        let error = standard(&[SECRET])
            .verify_now(&header_map(&headers), BODY, at(T))
            .expect_err("not unix seconds");
        assert_eq!(error.code(), "malformed_signature_header");
    }

    #[test]
    fn svix_headers_are_accepted() {
        let svix: Vec<(String, String)> = signed_with(SECRET)
            .into_iter()
            .map(|(name, value)| (name.replace("webhook-", "svix-"), value))
            .collect();
        let verified = standard(&[SECRET])
            .verify_now(&header_map(&svix), BODY, at(T))
            .expect("svix headers verify");
        assert_eq!(verified.delivery_id.as_deref(), Some("msg_1"));
        assert_eq!(verified.headers[0].0, "svix-id");
    }

    #[test]
    fn one_valid_signature_among_several_passes() {
        let headers = signed_with(SECRET);
        let valid = signature_of(&headers);
        let wrong = signature_of(&signed_with(OTHER_SECRET));
        let several = format!("{wrong} v1,bm90IGEgc2lnbmF0dXJl v1,@@@ {valid}");
        assert!(standard(&[SECRET])
            .verify_now(&with_signature(&headers, &several), BODY, at(T))
            .is_ok());
    }

    #[test]
    fn second_secret_matches_after_rotation() {
        let headers = header_map(&signed_with(SECRET));
        assert!(standard(&[OTHER_SECRET, SECRET])
            .verify_now(&headers, BODY, at(T))
            .is_ok());
    }

    #[test]
    fn unknown_versions_are_ignored() {
        let headers = signed_with(SECRET);
        let valid = signature_of(&headers);
        let signature = valid.trim_start_matches("v1,");
        let mixed = format!("v1a,{signature} v2,xyz {valid}");
        let scheme = standard(&[SECRET]);
        assert!(scheme
            .verify_now(&with_signature(&headers, &mixed), BODY, at(T))
            .is_ok());
        // The right MAC under another version label is not a v1 signature.
        let only_unknown = format!("v1a,{signature} v2,{signature}");
        assert_eq!(
            scheme.verify_now(&with_signature(&headers, &only_unknown), BODY, at(T)),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn signature_entry_without_a_version_is_malformed() {
        let headers = signed_with(SECRET);
        let bare = signature_of(&headers).trim_start_matches("v1,").to_owned();
        let error = standard(&[SECRET])
            .verify_now(&with_signature(&headers, &bare), BODY, at(T))
            .expect_err("no version");
        assert_eq!(
            error,
            VerifyError::MalformedHeader {
                header: "webhook-signature",
                reason: "expected space-separated version,signature entries"
            }
        );
    }

    #[test]
    fn secret_without_prefix_is_accepted() {
        let bare = SECRET.trim_start_matches("whsec_");
        let headers = header_map(&signed_with(SECRET));
        assert!(standard(&[bare]).verify_now(&headers, BODY, at(T)).is_ok());
    }

    #[test]
    fn malformed_base64_secret_is_rejected_at_config_time_without_echoing_it() {
        let bad = "whsec_not*valid*base64*secret=";
        let error = Providers::from_config(&[config("std", SchemeName::Standard, &[SECRET, bad])])
            .expect_err("bad secret");
        assert_eq!(error.key, "secrets[1]");
        let shown = format!("{error} {error:?}");
        assert!(shown.contains("provider[0] (std): secrets[1]"), "{shown}");
        assert!(!shown.contains("not*valid"), "{shown}");
    }

    #[test]
    fn unpadded_or_url_safe_secret_is_rejected() {
        for loose in [
            "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA",
            "whsec_-_-_-_-_-_-_-_-_-_-_-_-_-_-_",
        ] {
            let error = Providers::from_config(&[config("std", SchemeName::Standard, &[loose])])
                .expect_err("not strict base64");
            assert_eq!(error.key, "secrets[0]");
        }
    }

    #[test]
    fn short_secret_is_rejected() {
        let error =
            Providers::from_config(&[config("std", SchemeName::Standard, &["whsec_c2hvcnQ="])])
                .expect_err("5 bytes");
        assert_eq!(error.key, "secrets[0]");
        assert_eq!(error.reason, "decodes to 5 bytes; at least 16 are required");
    }

    #[test]
    fn header_option_is_rejected_for_standard() {
        let mut entry = config("std", SchemeName::Standard, &[SECRET]);
        entry.header = Some("X-Signature".into());
        let error = Providers::from_config(&[entry]).expect_err("header is hmac-only");
        assert_eq!(error.key, "header");
    }

    #[test]
    fn demo_secret_is_a_valid_standard_secret() {
        standard(&[crate::config::DEMO_SECRET]);
    }

    // ---- SDK vectors ----

    fn vector_headers(vector: &serde_json::Value) -> HeaderMap {
        let headers: Vec<(String, String)> = vector["headers"]
            .as_object()
            .expect("headers")
            .iter()
            .map(|(n, v)| (n.clone(), v.as_str().expect("header value").to_owned()))
            .collect();
        header_map(&headers)
    }

    /// Verifies `vector` with `scheme` at its timestamp and compares with what the SDK said
    /// (vectors.json ones carry no `expect`: all of them are valid).
    fn assert_as_the_sdk_said(scheme: &Provider, vector: &serde_json::Value) {
        let timestamp = vector["timestamp"].as_i64().expect("timestamp");
        let body = vector["body"].as_str().expect("body");
        let result = scheme.verify_now(&vector_headers(vector), body.as_bytes(), at(timestamp));
        match vector["expect"].as_str().unwrap_or("valid") {
            "valid" => {
                let verified = result.unwrap_or_else(|e| panic!("{}: {e}", vector["note"]));
                assert_eq!(verified.delivery_id.as_deref(), vector["id"].as_str());
            }
            code => assert_eq!(
                result.map_err(|e| e.code()),
                Err(code),
                "{}",
                vector["note"]
            ),
        }
    }

    #[test]
    fn every_sdk_vector_verifies_or_is_rejected_as_the_sdk_did() {
        for vector in sdk_vectors("standard") {
            let scheme = standard(&[vector["secret"].as_str().expect("secret")]);
            assert_as_the_sdk_said(&scheme, &vector);
        }
    }

    #[test]
    fn signing_reproduces_every_valid_single_signature_sdk_vector() {
        for vector in sdk_vectors("standard") {
            let signature = vector["headers"]["webhook-signature"].as_str().unwrap();
            if vector["expect"] != "valid" || signature.contains(' ') {
                continue;
            }
            let signed = standard(&[vector["secret"].as_str().unwrap()])
                .sign(
                    vector["id"].as_str().unwrap(),
                    at(vector["timestamp"].as_i64().unwrap()),
                    vector["body"].as_str().unwrap().as_bytes(),
                )
                .expect("a secret signs");
            assert_eq!(signature_of(&signed), signature, "{}", vector["note"]);
        }
    }

    // ---- v1a: Ed25519 ----

    /// The official Go vector's key pair (vectors.json).
    const SIGNING_KEY: &str = "whsk_VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=";
    const PUBLIC_KEY: &str = "whpk_ZlN4eg7dSSqi0moX9hQUk3orrOouK3QVQSlJa248c/g=";
    const OTHER_SIGNING_KEY: &str = "whsk_VDm/TsFswFyOLhOC9nFU2ku1ETZhgPAzyFtT5J2Ii8o=";
    const OTHER_PUBLIC_KEY: &str = "whpk_5FbEJ8hiza87ExZgDgTMrrbukshRh+ZKoRcnN7nhg1Q=";

    fn verifier(public_keys: &[&str]) -> Arc<Provider> {
        let mut entry = config("std", SchemeName::Standard, &[]);
        entry.public_keys = public_keys.iter().map(|k| k.to_string()).collect();
        provider(entry)
    }

    #[test]
    fn every_v1a_vector_verifies_with_its_public_key() {
        let mut vectors = vectors("standard-ed25519");
        vectors.extend(sdk_vectors("standard-ed25519"));
        for vector in vectors {
            let public_key = vector["public_key"].as_str().expect("public key");
            assert_as_the_sdk_said(&verifier(&[public_key]), &vector);
        }
    }

    #[test]
    fn signing_with_a_whsk_key_reproduces_the_official_v1a_vector() {
        let vector = &vectors("standard-ed25519")[0];
        assert_eq!(vector["secret"], SIGNING_KEY);
        let signed = standard(&[SIGNING_KEY])
            .sign(
                vector["id"].as_str().unwrap(),
                at(vector["timestamp"].as_i64().unwrap()),
                vector["body"].as_str().unwrap().as_bytes(),
            )
            .expect("a whsk_ key signs");
        assert_eq!(
            signature_of(&signed),
            vector["headers"]["webhook-signature"]
        );
    }

    #[test]
    fn v1a_tampered_body_and_wrong_key_are_rejected() {
        let headers = header_map(&signed_with(SIGNING_KEY));
        let tampered = String::from_utf8_lossy(BODY).replace("vid_1", "vid_2");
        assert_eq!(
            verifier(&[PUBLIC_KEY]).verify_now(&headers, tampered.as_bytes(), at(T)),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            verifier(&[OTHER_PUBLIC_KEY]).verify_now(&headers, BODY, at(T)),
            Err(VerifyError::NoMatchingSignature)
        );
        // A MAC secret does not verify an Ed25519 signature, and the other way round.
        assert_eq!(
            standard(&[SECRET]).verify_now(&headers, BODY, at(T)),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            verifier(&[PUBLIC_KEY]).verify_now(&header_map(&signed_with(SECRET)), BODY, at(T)),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn v1a_stale_and_future_timestamps_are_rejected() {
        let headers = header_map(&signed_with(SIGNING_KEY));
        for now in [at(T) + Duration::hours(1), at(T) - Duration::hours(1)] {
            assert_eq!(
                verifier(&[PUBLIC_KEY]).verify_now(&headers, BODY, now),
                Err(VerifyError::TimestampOutOfTolerance)
            );
        }
    }

    #[test]
    fn either_public_key_verifies_during_rotation() {
        let scheme = verifier(&[OTHER_PUBLIC_KEY, PUBLIC_KEY]);
        for key in [SIGNING_KEY, OTHER_SIGNING_KEY] {
            assert!(scheme
                .verify_now(&header_map(&signed_with(key)), BODY, at(T))
                .is_ok());
        }
    }

    #[test]
    fn symmetric_and_asymmetric_signatures_mix_in_one_header_and_one_config() {
        let mac = signature_of(&signed_with(SECRET));
        let ed = signature_of(&signed_with(SIGNING_KEY));
        let headers = signed_with(SECRET);
        let both = format!("{ed} {mac}");
        for scheme in [
            standard(&[SECRET]),
            verifier(&[PUBLIC_KEY]),
            provider({
                let mut entry = config("std", SchemeName::Standard, &[OTHER_SECRET]);
                entry.public_keys = vec![PUBLIC_KEY.into()];
                entry
            }),
        ] {
            assert!(scheme
                .verify_now(&with_signature(&headers, &both), BODY, at(T))
                .is_ok());
        }
        // A whsk_ secret also verifies its own signatures (its public half is trusted).
        assert!(standard(&[SECRET, SIGNING_KEY])
            .verify_now(&with_signature(&headers, &ed), BODY, at(T))
            .is_ok());
    }

    #[test]
    fn a_public_key_only_provider_cannot_sign() {
        let error = verifier(&[PUBLIC_KEY])
            .sign("msg_1", at(T), BODY)
            .expect_err("no secret");
        assert!(error.to_string().contains("can only verify"), "{error}");
    }

    #[test]
    fn public_key_without_prefix_is_accepted() {
        let bare = PUBLIC_KEY.trim_start_matches("whpk_");
        assert!(verifier(&[bare])
            .verify_now(&header_map(&signed_with(SIGNING_KEY)), BODY, at(T))
            .is_ok());
    }

    #[test]
    fn bad_asymmetric_keys_are_rejected_at_config_time() {
        let error = Providers::from_config(&[config("std", SchemeName::Standard, &[PUBLIC_KEY])])
            .expect_err("public key as a secret");
        assert_eq!(error.key, "secrets[0]");
        assert_eq!(
            error.reason,
            "is a whpk_ public key: it belongs in public_keys"
        );

        let short = "whsk_c2hvcnQ=";
        let error = Providers::from_config(&[config("std", SchemeName::Standard, &[short])])
            .expect_err("short seed");
        assert_eq!(error.key, "secrets[0]");
        assert!(!format!("{error}").contains("c2hvcnQ"), "{error}");

        let mut entry = config("std", SchemeName::Standard, &[]);
        entry.public_keys = vec![PUBLIC_KEY.into(), "whpk_not*base64".into()];
        let error = Providers::from_config(&[entry]).expect_err("bad public key");
        assert_eq!(error.key, "public_keys[1]");
    }

    #[test]
    fn a_provider_without_secrets_or_public_keys_is_rejected() {
        let error = Providers::from_config(&[config("std", SchemeName::Standard, &[])])
            .expect_err("nothing to verify with");
        assert_eq!(error.key, "secrets");
    }
}
