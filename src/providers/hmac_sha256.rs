//! The `hmac-sha256` scheme (api.video, Bunny, in-house pipelines): one configured header carrying
//! the hex HMAC-SHA256 of the raw body, optionally prefixed `sha256=`. No timestamp and no delivery
//! id are signed, so replays are caught only by event-id dedupe. Owns that header, the check and
//! the signer; knows no payloads.

use std::fmt;

use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderName};
use subtle::ConstantTimeEq;

use super::{header_str, hmac_sha256, utf8_mac_keys, ConfigIssue, Verified, VerifyError};
use crate::config::ProviderConfig;

/// `X-Webhook-Signature`, lowercase as header names are compared.
const DEFAULT_HEADER: &str = "x-webhook-signature";
/// GitHub-style label some senders put before the hex digits.
const PREFIX: &str = "sha256=";

/// A configured `hmac-sha256` provider: its header and keys.
pub(crate) struct HmacScheme {
    /// Lowercase header name.
    header: &'static str,
    /// The secrets' UTF-8 bytes; never empty (`from_config` refuses that); the first one signs.
    keys: Vec<Vec<u8>>,
}

impl fmt::Debug for HmacScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacScheme")
            .field("header", &self.header)
            .field("secret_count", &self.keys.len())
            .finish()
    }
}

impl HmacScheme {
    /// Validates the header name and secrets; every secret is used as its UTF-8 bytes.
    pub(crate) fn from_config(config: &ProviderConfig) -> Result<HmacScheme, ConfigIssue> {
        let header = match config.header.as_deref() {
            None => DEFAULT_HEADER,
            Some(name) => {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| ConfigIssue::new("header", "is not a valid HTTP header name"))?;
                static_header_name(name)
            }
        };
        let keys = utf8_mac_keys(config)?;
        Ok(HmacScheme { header, keys })
    }

    // ---- headers ----

    /// The configured header's raw value and the signature bytes it carries.
    fn read_header<'h>(&self, headers: &'h HeaderMap) -> Result<(&'h str, [u8; 32]), VerifyError> {
        let value = header_str(headers, self.header)?;
        let digits = strip_prefix_ignore_case(value, PREFIX).unwrap_or(value);
        let mut signature = [0; 32];
        // Either case of hex digits is accepted; only the decoded bytes are compared.
        hex::decode_to_slice(digits, &mut signature).map_err(|_| VerifyError::MalformedHeader {
            header: self.header,
            reason: "expected 64 hex digits, optionally after sha256=",
        })?;
        Ok((value, signature))
    }

    // ---- verify ----

    /// `now` is unused: this scheme signs no timestamp.
    pub(crate) fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        _now: DateTime<Utc>,
    ) -> Result<Verified, VerifyError> {
        let (value, signature) = self.read_header(headers)?;
        let matches = self.keys.iter().any(|key| {
            let expected = hmac_sha256(key, &[body]);
            bool::from(expected.as_slice().ct_eq(signature.as_slice()))
        });
        if !matches {
            return Err(VerifyError::NoMatchingSignature);
        }
        Ok(Verified {
            delivery_id: None,
            signed_at: None,
            headers: vec![(self.header.to_owned(), value.to_owned())],
        })
    }

    // ---- sign ----

    /// The id and time are not part of this scheme: only the body is signed.
    pub(crate) fn sign(
        &self,
        _event_id: &str,
        _at: DateTime<Utc>,
        body: &[u8],
    ) -> Vec<(String, String)> {
        // `from_config` refuses an empty secret list, so there is a first key.
        let mac = hmac_sha256(&self.keys[0], &[body]);
        vec![(self.header.to_owned(), hex::encode(mac))]
    }
}

/// `VerifyError` names headers as `&'static str`. A configured name is made static once, when the
/// provider is built at start-up: a few bytes per provider, kept for the life of the process.
fn static_header_name(name: HeaderName) -> &'static str {
    if name.as_str() == DEFAULT_HEADER {
        DEFAULT_HEADER
    } else {
        Box::leak(name.as_str().to_owned().into_boxed_str())
    }
}

fn strip_prefix_ignore_case<'v>(value: &'v str, prefix: &str) -> Option<&'v str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{DateTime, Utc};
    use http::HeaderMap;

    use super::super::test_support::{config, header_map, provider, vectors, VerifyNow};
    use super::super::{Provider, Providers, VerifyError};
    use crate::config::{ProviderConfig, SchemeName};

    const SECRET: &str = "hs-dev-secret-7f3a91c2";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"video.uploaded"}"#;

    fn hmac_config(secrets: &[&str], header: Option<&str>) -> ProviderConfig {
        let mut entry = config("hmac", SchemeName::HmacSha256, secrets);
        entry.header = header.map(str::to_owned);
        entry
    }

    fn hmac(secrets: &[&str]) -> Arc<Provider> {
        provider(hmac_config(secrets, None))
    }

    /// Any time: the scheme signs none.
    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_438_820, 0).expect("valid timestamp")
    }

    fn signature_header(value: &str) -> HeaderMap {
        header_map(&[("X-Webhook-Signature", value)])
    }

    fn hex_signature(secret: &str) -> String {
        hmac(&[secret])
            .sign("unused", now(), BODY)
            .expect("a secret signs")
            .remove(0)
            .1
    }

    #[test]
    fn every_hmac_vector_verifies_with_its_header() {
        for vector in vectors("hmac-sha256") {
            let secret = vector["secret"].as_str().expect("secret");
            let body = vector["body"].as_str().expect("body");
            let (name, value) = vector["headers"]
                .as_object()
                .and_then(|h| h.iter().next())
                .expect("one signature header");
            let value = value.as_str().expect("header value");
            let scheme = provider(hmac_config(&[secret], Some(name)));
            let verified = scheme
                .verify_now(
                    &header_map(&[(name.as_str(), value)]),
                    body.as_bytes(),
                    now(),
                )
                .unwrap_or_else(|e| panic!("vector {} failed: {e}", vector["note"]));
            assert_eq!(verified.delivery_id, None);
            assert_eq!(verified.signed_at, None);
            assert_eq!(
                verified.headers,
                [(name.to_ascii_lowercase(), value.to_owned())]
            );
        }
    }

    #[test]
    fn default_header_is_x_webhook_signature() {
        let vector = vectors("hmac-sha256")
            .into_iter()
            .find(|v| v["headers"]["X-Webhook-Signature"].is_string())
            .expect("a vector on the default header");
        let value = vector["headers"]["X-Webhook-Signature"]
            .as_str()
            .expect("value");
        let body = vector["body"].as_str().expect("body");
        let scheme = hmac(&[vector["secret"].as_str().expect("secret")]);
        assert!(scheme
            .verify_now(&signature_header(value), body.as_bytes(), now())
            .is_ok());
    }

    #[test]
    fn configured_header_name_is_case_insensitive() {
        let signature = hex_signature(SECRET);
        for configured in [
            "X-Api-Video-Signature",
            "x-api-video-signature",
            "X-API-VIDEO-SIGNATURE",
        ] {
            let scheme = provider(hmac_config(&[SECRET], Some(configured)));
            let headers = header_map(&[("x-API-video-SIGNATURE", signature.as_str())]);
            assert!(
                scheme.verify_now(&headers, BODY, now()).is_ok(),
                "{configured}"
            );
        }
    }

    #[test]
    fn prefix_and_uppercase_hex_are_accepted() {
        let signature = hex_signature(SECRET);
        let scheme = hmac(&[SECRET]);
        for value in [
            format!("sha256={signature}"),
            format!("SHA256={signature}"),
            signature.to_ascii_uppercase(),
            format!("sha256={}", signature.to_ascii_uppercase()),
        ] {
            assert!(
                scheme
                    .verify_now(&signature_header(&value), BODY, now())
                    .is_ok(),
                "{value}"
            );
        }
    }

    #[test]
    fn sign_round_trips_through_verify() {
        let scheme = hmac(&[SECRET]);
        let headers = scheme.sign("evt_1", now(), BODY).expect("a secret signs");
        assert_eq!(headers[0].0, "x-webhook-signature");
        let verified = scheme
            .verify_now(&header_map(&headers), BODY, now())
            .expect("own signature verifies");
        assert_eq!(verified.headers, headers);
    }

    #[test]
    fn tampered_body_is_rejected() {
        let headers = signature_header(&hex_signature(SECRET));
        let error = hmac(&[SECRET])
            .verify_now(&headers, br#"{"id":"evt_1","type":"video.deleted"}"#, now())
            .expect_err("tampered body");
        assert_eq!(error, VerifyError::NoMatchingSignature);
    }

    #[test]
    fn wrong_secret_is_rejected() {
        let headers = signature_header(&hex_signature("another-secret"));
        let error = hmac(&[SECRET])
            .verify_now(&headers, BODY, now())
            .expect_err("wrong secret");
        assert_eq!(error, VerifyError::NoMatchingSignature);
    }

    #[test]
    fn second_secret_matches_after_rotation() {
        let headers = signature_header(&hex_signature(SECRET));
        assert!(hmac(&["old-secret", SECRET])
            .verify_now(&headers, BODY, now())
            .is_ok());
    }

    #[test]
    fn missing_header_is_named() {
        let error = hmac(&[SECRET])
            .verify_now(&HeaderMap::new(), BODY, now())
            .expect_err("no header");
        assert_eq!(
            error,
            VerifyError::MissingHeader {
                header: "x-webhook-signature"
            }
        );
        let scheme = provider(hmac_config(&[SECRET], Some("X-Api-Video-Signature")));
        let error = scheme
            .verify_now(&signature_header(&hex_signature(SECRET)), BODY, now())
            .expect_err("signature under another header");
        assert_eq!(error.to_string(), "header x-api-video-signature is missing");
    }

    #[test]
    fn non_hex_or_short_signature_is_malformed() {
        let signature = hex_signature(SECRET);
        let scheme = hmac(&[SECRET]);
        for value in [
            "not-hex".to_owned(),
            signature[..62].to_owned(),
            format!("{signature}00"),
            format!("sha1={signature}"),
        ] {
            let error = scheme
                .verify_now(&signature_header(&value), BODY, now())
                .expect_err("malformed");
            assert_eq!(error.code(), "malformed_signature_header", "{value}");
        }
    }

    #[test]
    fn empty_secret_is_rejected_at_config_time() {
        let error =
            Providers::from_config(&[hmac_config(&[SECRET, ""], None)]).expect_err("empty secret");
        assert_eq!(error.key, "secrets[1]");
    }

    #[test]
    fn invalid_header_name_is_rejected_at_config_time() {
        let error = Providers::from_config(&[hmac_config(&[SECRET], Some("X Signature"))])
            .expect_err("space in header name");
        assert_eq!(error.key, "header");
    }
}
