//! The `standard` scheme: Standard Webhooks (`webhook-*` headers) and Svix (`svix-*`, same values):
//! base64 HMAC-SHA256 `v1` signatures over `{id}.{timestamp}.{raw body}`, with a signed timestamp
//! checked against a tolerance. Owns those headers, the check and the signer; knows no payloads.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use http::HeaderMap;
use subtle::ConstantTimeEq;

use super::{header_str, hmac_sha256, required_secrets, ConfigIssue, Verified, VerifyError};
use crate::config::ProviderConfig;

/// Secrets are usually shown as `whsec_<base64>`; the prefix is optional.
const SECRET_PREFIX: &str = "whsec_";
/// Shorter keys are refused: Standard Webhooks secrets are 24 to 64 random bytes.
const MIN_KEY_BYTES: usize = 16;
/// The only version this scheme checks; others (`v1a`: Ed25519, future ones) are skipped.
const VERSION: &str = "v1";

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

/// A configured `standard` provider: its decoded keys and timestamp tolerance.
pub(crate) struct StandardScheme {
    /// Never empty (`from_config` refuses that); the first one signs.
    keys: Vec<Vec<u8>>,
    tolerance_secs: u64,
}

impl fmt::Debug for StandardScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandardScheme")
            .field("secret_count", &self.keys.len())
            .field("tolerance_secs", &self.tolerance_secs)
            .finish()
    }
}

impl StandardScheme {
    /// Decodes every secret now, so a bad one stops start-up instead of failing every request.
    pub(crate) fn from_config(config: &ProviderConfig) -> Result<StandardScheme, ConfigIssue> {
        if config.header.is_some() {
            return Err(ConfigIssue::new(
                "header",
                "only the hmac-sha256 scheme reads a configured header",
            ));
        }
        let mut keys = Vec::with_capacity(config.secrets.len());
        for (i, secret) in required_secrets(config)?.iter().enumerate() {
            let encoded = secret.expose();
            let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
            // The decoder's own error names the offending byte, which is part of the secret: it
            // is deliberately not passed on.
            let key = BASE64.decode(encoded).map_err(|_| {
                ConfigIssue::new(
                    format!("secrets[{i}]"),
                    "is not an optional whsec_ prefix followed by standard, padded base64",
                )
            })?;
            if key.len() < MIN_KEY_BYTES {
                return Err(ConfigIssue::new(
                    format!("secrets[{i}]"),
                    format!(
                        "decodes to {} bytes; at least {MIN_KEY_BYTES} are required",
                        key.len()
                    ),
                ));
            }
            keys.push(key);
        }
        Ok(StandardScheme {
            keys,
            tolerance_secs: config.tolerance_secs,
        })
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
        let candidates = v1_signatures(names.signature, signature)?;
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
        // Both directions, as the official libraries do: an old timestamp is a replay, one far
        // ahead would stay replayable for as long as it is ahead.
        let distance = (now - signed.signed_at).num_seconds().unsigned_abs();
        if distance > self.tolerance_secs {
            return Err(VerifyError::TimestampOutOfTolerance);
        }
        let matches = self.keys.iter().any(|key| {
            let expected = signed_content_mac(key, signed.id, signed.timestamp, body);
            signed
                .candidates
                .iter()
                .any(|candidate| bool::from(expected.as_slice().ct_eq(candidate)))
        });
        if !matches {
            return Err(VerifyError::NoMatchingSignature);
        }
        Ok(signed.into_verified())
    }

    // ---- sign ----

    pub(crate) fn sign(
        &self,
        event_id: &str,
        at: DateTime<Utc>,
        body: &[u8],
    ) -> Vec<(String, String)> {
        let timestamp = at.timestamp().to_string();
        // `from_config` refuses an empty secret list, so there is a first key.
        let mac = signed_content_mac(&self.keys[0], event_id, &timestamp, body);
        vec![
            (WEBHOOK_HEADERS.id.to_owned(), event_id.to_owned()),
            (WEBHOOK_HEADERS.timestamp.to_owned(), timestamp),
            (
                WEBHOOK_HEADERS.signature.to_owned(),
                format!("{VERSION},{}", BASE64.encode(mac)),
            ),
        ]
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
    /// The decoded `v1` signatures; any one may match.
    candidates: Vec<Vec<u8>>,
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

/// Plain decimal unix seconds (no sign, no fraction), within chrono's range.
fn parse_unix_seconds(raw: &str) -> Option<DateTime<Utc>> {
    if raw.is_empty() || raw.len() > 18 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    DateTime::from_timestamp(raw.parse().ok()?, 0)
}

/// The decoded `v1` entries of a space-separated `version,base64` list.
fn v1_signatures(header: &'static str, value: &str) -> Result<Vec<Vec<u8>>, VerifyError> {
    let mut signatures = Vec::new();
    for entry in value.split_ascii_whitespace() {
        let (version, signature) = entry.split_once(',').ok_or(VerifyError::MalformedHeader {
            header,
            reason: "expected space-separated version,signature entries",
        })?;
        if version != VERSION {
            continue;
        }
        // An undecodable entry cannot match, and must not hide a valid one beside it.
        if let Ok(bytes) = BASE64.decode(signature) {
            signatures.push(bytes);
        }
    }
    Ok(signatures)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{DateTime, Duration, Utc};
    use http::HeaderMap;

    use super::super::test_support::{config, header_map, provider, vectors};
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
        standard(&[secret]).sign("msg_1", at(T), BODY)
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
                .verify(&header_map(&headers), body.as_bytes(), at(timestamp))
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
        let signed = standard(&[vector["secret"].as_str().expect("secret")]).sign(
            id,
            at(vector["timestamp"].as_i64().expect("timestamp")),
            body.as_bytes(),
        );
        assert_eq!(
            signature_of(&signed),
            vector["headers"]["webhook-signature"]
        );
    }

    #[test]
    fn sign_round_trips_through_verify() {
        let headers = signed_with(SECRET);
        let verified = standard(&[SECRET])
            .verify(&header_map(&headers), BODY, at(T))
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
            .verify(&headers, tampered.as_bytes(), at(T))
            .expect_err("tampered body");
        assert_eq!(error, VerifyError::NoMatchingSignature);
    }

    #[test]
    fn wrong_secret_is_rejected() {
        let headers = header_map(&signed_with(OTHER_SECRET));
        let error = standard(&[SECRET])
            .verify(&headers, BODY, at(T))
            .expect_err("wrong secret");
        assert_eq!(error, VerifyError::NoMatchingSignature);
    }

    #[test]
    fn each_missing_header_is_named() {
        let headers = signed_with(SECRET);
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            let error = standard(&[SECRET])
                .verify(&without(&headers, name), BODY, at(T))
                .expect_err("missing header");
            assert_eq!(error, VerifyError::MissingHeader { header: name });
            assert_eq!(error.to_string(), format!("header {name} is missing"));
        }
    }

    #[test]
    fn request_without_any_signature_header_reports_webhook_id() {
        let error = standard(&[SECRET])
            .verify(&HeaderMap::new(), BODY, at(T))
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
            .verify(&headers, BODY, at(T) + Duration::hours(1))
            .expect_err("an hour old");
        assert_eq!(error, VerifyError::TimestampOutOfTolerance);
    }

    #[test]
    fn future_timestamp_is_rejected() {
        let headers = header_map(&signed_with(SECRET));
        let error = standard(&[SECRET])
            .verify(&headers, BODY, at(T) - Duration::hours(1))
            .expect_err("an hour ahead");
        assert_eq!(error, VerifyError::TimestampOutOfTolerance);
    }

    #[test]
    fn timestamp_at_the_tolerance_edge_is_accepted() {
        let headers = header_map(&signed_with(SECRET));
        let scheme = standard(&[SECRET]);
        for now in [at(T + 300), at(T - 300)] {
            assert!(scheme.verify(&headers, BODY, now).is_ok());
        }
        assert!(scheme.verify(&headers, BODY, at(T + 301)).is_err());
    }

    #[test]
    fn non_numeric_timestamp_is_malformed() {
        let mut headers = signed_with(SECRET);
        headers[1].1 = "2026-11-23T11:00:00Z".into();
        let error = standard(&[SECRET])
            .verify(&header_map(&headers), BODY, at(T))
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
            .verify(&header_map(&svix), BODY, at(T))
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
            .verify(&with_signature(&headers, &several), BODY, at(T))
            .is_ok());
    }

    #[test]
    fn second_secret_matches_after_rotation() {
        let headers = header_map(&signed_with(SECRET));
        assert!(standard(&[OTHER_SECRET, SECRET])
            .verify(&headers, BODY, at(T))
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
            .verify(&with_signature(&headers, &mixed), BODY, at(T))
            .is_ok());
        // The right MAC under another version label is not a v1 signature.
        let only_unknown = format!("v1a,{signature} v2,{signature}");
        assert_eq!(
            scheme.verify(&with_signature(&headers, &only_unknown), BODY, at(T)),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn signature_entry_without_a_version_is_malformed() {
        let headers = signed_with(SECRET);
        let bare = signature_of(&headers).trim_start_matches("v1,").to_owned();
        let error = standard(&[SECRET])
            .verify(&with_signature(&headers, &bare), BODY, at(T))
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
        assert!(standard(&[bare]).verify(&headers, BODY, at(T)).is_ok());
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
}
