//! The `stripe`, `mux` and `cloudflare-stream` schemes: one construction under three header
//! layouts. A single header carries `t=<unix seconds>,v1=<hex>` (Cloudflare: `time=`, `sig1=`); the
//! signature is the lowercase hex HMAC-SHA256 of `{t}.{raw body}`, keyed with the secret's UTF-8
//! bytes as given (Stripe's `whsec_` included: unlike Standard Webhooks, nothing is decoded).
//! Several signatures may be present (a sender rolling its secret signs with both); any one
//! matching passes. Owns that header, the check and the signer; knows no payloads.

use std::fmt;

use chrono::{DateTime, Utc};
use http::HeaderMap;
use subtle::ConstantTimeEq;

use super::{
    check_tolerance, header_str, hmac_sha256, parse_unix_seconds, utf8_mac_keys, ConfigIssue,
    Verified, VerifyError,
};
use crate::config::ProviderConfig;

/// Where a scheme of this family puts its timestamp and signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Lowercase header name.
    header: &'static str,
    timestamp_key: &'static str,
    signature_key: &'static str,
    /// `MalformedHeader` reasons are static: spelled out per layout.
    timestamp_reason: &'static str,
}

/// `Stripe-Signature: t=...,v1=...[,v1=...][,v0=...]`.
pub(crate) const STRIPE: Layout = Layout {
    header: "stripe-signature",
    timestamp_key: "t",
    signature_key: "v1",
    timestamp_reason: "expected exactly one t= entry of unix seconds",
};

/// `Mux-Signature: t=...,v1=...`.
pub(crate) const MUX: Layout = Layout {
    header: "mux-signature",
    timestamp_key: "t",
    signature_key: "v1",
    timestamp_reason: "expected exactly one t= entry of unix seconds",
};

/// `Webhook-Signature: time=...,sig1=...`.
pub(crate) const CLOUDFLARE_STREAM: Layout = Layout {
    header: "webhook-signature",
    timestamp_key: "time",
    signature_key: "sig1",
    timestamp_reason: "expected exactly one time= entry of unix seconds",
};

/// A configured provider of this family: its layout, keys and tolerance.
pub(crate) struct TimestampedHmacScheme {
    layout: Layout,
    /// The secrets' UTF-8 bytes; never empty (`from_config` refuses that); the first one signs.
    keys: Vec<Vec<u8>>,
    tolerance_secs: u64,
}

impl fmt::Debug for TimestampedHmacScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimestampedHmacScheme")
            .field("header", &self.layout.header)
            .field("secret_count", &self.keys.len())
            .field("tolerance_secs", &self.tolerance_secs)
            .finish()
    }
}

impl TimestampedHmacScheme {
    /// Every secret is used as its UTF-8 bytes; an empty one is refused.
    pub(crate) fn from_config(
        config: &ProviderConfig,
        layout: Layout,
    ) -> Result<TimestampedHmacScheme, ConfigIssue> {
        Ok(TimestampedHmacScheme {
            layout,
            keys: utf8_mac_keys(config)?,
            tolerance_secs: config.tolerance_secs,
        })
    }

    // ---- headers ----

    fn read_header<'h>(&self, headers: &'h HeaderMap) -> Result<SignedHeader<'h>, VerifyError> {
        let layout = self.layout;
        let value = header_str(headers, layout.header)?;
        let malformed = |reason| VerifyError::MalformedHeader {
            header: layout.header,
            reason,
        };
        let mut timestamp = None;
        let mut candidates = Vec::new();
        for entry in value.split(',') {
            let (key, item) = entry
                .trim()
                .split_once('=')
                .ok_or(malformed("expected comma-separated key=value entries"))?;
            if key == layout.timestamp_key {
                // Two timestamps leave it open which one was signed.
                if timestamp.replace(item).is_some() {
                    return Err(malformed(layout.timestamp_reason));
                }
            } else if key == layout.signature_key {
                // An undecodable entry cannot match, and must not hide a valid one beside it.
                let mut signature = [0; 32];
                if hex::decode_to_slice(item, &mut signature).is_ok() {
                    candidates.push(signature);
                }
            }
            // Other keys (Stripe's `v0` test-mode signatures, future versions) are not ours.
        }
        let timestamp = timestamp.ok_or(malformed(layout.timestamp_reason))?;
        let signed_at = parse_unix_seconds(timestamp).ok_or(malformed(layout.timestamp_reason))?;
        Ok(SignedHeader {
            value,
            timestamp,
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
        let signed = self.read_header(headers)?;
        check_tolerance(signed.signed_at, now, self.tolerance_secs)?;
        let matches = self.keys.iter().any(|key| {
            let expected = signed_content_mac(key, signed.timestamp, body);
            signed
                .candidates
                .iter()
                .any(|candidate| bool::from(expected.as_slice().ct_eq(candidate.as_slice())))
        });
        if !matches {
            return Err(VerifyError::NoMatchingSignature);
        }
        Ok(Verified {
            delivery_id: None,
            signed_at: Some(signed.signed_at),
            headers: vec![(self.layout.header.to_owned(), signed.value.to_owned())],
        })
    }

    // ---- sign ----

    /// The event id is not part of this construction: only the time and the body are signed.
    pub(crate) fn sign(
        &self,
        _event_id: &str,
        at: DateTime<Utc>,
        body: &[u8],
    ) -> Vec<(String, String)> {
        let timestamp = at.timestamp().to_string();
        // `from_config` refuses an empty secret list, so there is a first key.
        let mac = signed_content_mac(&self.keys[0], &timestamp, body);
        let layout = self.layout;
        vec![(
            layout.header.to_owned(),
            format!(
                "{}={timestamp},{}={}",
                layout.timestamp_key,
                layout.signature_key,
                hex::encode(mac)
            ),
        )]
    }
}

/// The signature header of one request, read but not yet checked.
struct SignedHeader<'h> {
    value: &'h str,
    /// As received: the MAC is over these exact characters, not a re-formatted number.
    timestamp: &'h str,
    signed_at: DateTime<Utc>,
    candidates: Vec<[u8; 32]>,
}

/// The MAC of `{timestamp}.{body}`.
fn signed_content_mac(key: &[u8], timestamp: &str, body: &[u8]) -> [u8; 32] {
    hmac_sha256(key, &[timestamp.as_bytes(), b".", body])
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

    /// Every scheme of the family, with its name in the vector files and its header.
    const SCHEMES: [(SchemeName, &str, &str); 3] = [
        (SchemeName::Stripe, "stripe", "stripe-signature"),
        (SchemeName::Mux, "mux", "mux-signature"),
        (
            SchemeName::CloudflareStream,
            "cloudflare-stream",
            "webhook-signature",
        ),
    ];
    const SECRET: &str = "whsec_test_4eC39HqLyjWDarjtT1zdp7dc";
    const OTHER_SECRET: &str = "p0q9r8s7t6u5v4w3x2y1z0a9b8c7d6e5";
    const BODY: &[u8] =
        br#"{"type":"video.ready","timestamp":"2026-11-23T11:00:20Z","data":{"videoId":"vid_1"}}"#;
    const T: i64 = 1_795_428_020;

    fn at(unix: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(unix, 0).expect("valid timestamp")
    }

    fn scheme(name: SchemeName, secrets: &[&str]) -> Arc<Provider> {
        provider(config("p", name, secrets))
    }

    fn signed(name: SchemeName, secret: &str) -> Vec<(String, String)> {
        scheme(name, &[secret])
            .sign("evt_1", at(T), BODY)
            .expect("a secret signs")
    }

    fn vector_headers(vector: &serde_json::Value) -> HeaderMap {
        let headers: Vec<(String, String)> = vector["headers"]
            .as_object()
            .expect("headers")
            .iter()
            .map(|(n, v)| (n.clone(), v.as_str().expect("header value").to_owned()))
            .collect();
        header_map(&headers)
    }

    fn verify_vector(vector: &serde_json::Value, name: SchemeName) -> Result<(), VerifyError> {
        let secret = vector["secret"].as_str().expect("secret");
        let timestamp = vector["timestamp"].as_i64().expect("timestamp");
        let body = vector["body"].as_str().expect("body");
        let verified = scheme(name, &[secret]).verify_now(
            &vector_headers(vector),
            body.as_bytes(),
            at(timestamp),
        )?;
        assert_eq!(verified.delivery_id, None);
        assert_eq!(verified.signed_at, Some(at(timestamp)));
        Ok(())
    }

    #[test]
    fn every_fixture_vector_verifies_at_its_timestamp() {
        for (name, label, _) in SCHEMES {
            for vector in vectors(label) {
                verify_vector(&vector, name)
                    .unwrap_or_else(|e| panic!("{label} vector {} failed: {e}", vector["note"]));
            }
        }
    }

    #[test]
    fn every_sdk_vector_verifies_or_is_rejected_as_the_sdk_did() {
        for (name, label, _) in SCHEMES {
            for vector in sdk_vectors(label) {
                let result = verify_vector(&vector, name);
                match vector["expect"].as_str().expect("expect") {
                    "valid" => result.unwrap_or_else(|e| panic!("{label} {}: {e}", vector["note"])),
                    code => assert_eq!(
                        result.map_err(|e| e.code()),
                        Err(code),
                        "{label} {}",
                        vector["note"]
                    ),
                }
            }
        }
    }

    #[test]
    fn signing_reproduces_the_fixture_vectors() {
        for (name, label, header) in SCHEMES {
            for vector in vectors(label) {
                let body = vector["body"].as_str().expect("body");
                let headers = scheme(name, &[vector["secret"].as_str().expect("secret")])
                    .sign(
                        "unused",
                        at(vector["timestamp"].as_i64().expect("timestamp")),
                        body.as_bytes(),
                    )
                    .expect("signs");
                let expected = vector_headers(&vector);
                assert_eq!(
                    headers,
                    [(
                        header.to_owned(),
                        expected[header].to_str().unwrap().to_owned()
                    )]
                );
            }
        }
    }

    #[test]
    fn sign_round_trips_through_verify() {
        for (name, _, header) in SCHEMES {
            let headers = signed(name, SECRET);
            assert_eq!(headers[0].0, header);
            let verified = scheme(name, &[SECRET])
                .verify_now(&header_map(&headers), BODY, at(T))
                .expect("own signature verifies");
            assert_eq!(verified.headers, headers);
        }
    }

    #[test]
    fn tampered_body_is_rejected() {
        let tampered = String::from_utf8_lossy(BODY).replace("vid_1", "vid_2");
        for (name, label, _) in SCHEMES {
            let error = scheme(name, &[SECRET])
                .verify_now(
                    &header_map(&signed(name, SECRET)),
                    tampered.as_bytes(),
                    at(T),
                )
                .expect_err(label);
            assert_eq!(error, VerifyError::NoMatchingSignature, "{label}");
        }
    }

    #[test]
    fn wrong_secret_is_rejected() {
        for (name, label, _) in SCHEMES {
            let error = scheme(name, &[SECRET])
                .verify_now(&header_map(&signed(name, OTHER_SECRET)), BODY, at(T))
                .expect_err(label);
            assert_eq!(error, VerifyError::NoMatchingSignature, "{label}");
        }
    }

    #[test]
    fn secret_is_not_decoded() {
        // Standard Webhooks would base64-decode what follows whsec_; this family keys with the
        // whole text, so the bare remainder is another key.
        let bare = SECRET.trim_start_matches("whsec_");
        let error = scheme(SchemeName::Stripe, &[bare])
            .verify_now(
                &header_map(&signed(SchemeName::Stripe, SECRET)),
                BODY,
                at(T),
            )
            .expect_err("whsec_ is part of the key");
        assert_eq!(error, VerifyError::NoMatchingSignature);
    }

    #[test]
    fn stale_and_future_timestamps_are_rejected() {
        for (name, label, _) in SCHEMES {
            let headers = header_map(&signed(name, SECRET));
            let provider = scheme(name, &[SECRET]);
            for now in [at(T) + Duration::hours(1), at(T) - Duration::hours(1)] {
                let error = provider.verify_now(&headers, BODY, now).expect_err(label);
                assert_eq!(error, VerifyError::TimestampOutOfTolerance, "{label}");
            }
            for now in [at(T + 300), at(T - 300)] {
                assert!(provider.verify_now(&headers, BODY, now).is_ok(), "{label}");
            }
            assert!(provider.verify_now(&headers, BODY, at(T + 301)).is_err());
        }
    }

    #[test]
    fn either_secret_matches_during_rotation() {
        for (name, label, _) in SCHEMES {
            let provider = scheme(name, &[OTHER_SECRET, SECRET]);
            for secret in [SECRET, OTHER_SECRET] {
                let headers = header_map(&signed(name, secret));
                assert!(
                    provider.verify_now(&headers, BODY, at(T)).is_ok(),
                    "{label}"
                );
            }
        }
    }

    #[test]
    fn one_valid_signature_among_several_passes() {
        for (name, label, header) in SCHEMES {
            let valid = signed(name, SECRET).remove(0).1;
            let wrong = signed(name, OTHER_SECRET).remove(0).1;
            let (time, good) = valid.split_once(',').unwrap();
            let (_, bad) = wrong.split_once(',').unwrap();
            let several = format!("{time},{bad},v0=abcd,v1=not-hex,{good}");
            let headers = header_map(&[(header, several.as_str())]);
            assert!(
                scheme(name, &[SECRET])
                    .verify_now(&headers, BODY, at(T))
                    .is_ok(),
                "{label}: {several}"
            );
            let only_bad = format!("{time},{bad}");
            let error = scheme(name, &[SECRET])
                .verify_now(&header_map(&[(header, only_bad.as_str())]), BODY, at(T))
                .expect_err(label);
            assert_eq!(error, VerifyError::NoMatchingSignature);
        }
    }

    #[test]
    fn a_signature_under_another_label_does_not_count() {
        // Stripe's header relabelled as Cloudflare's: the MAC is right, the labels are not.
        let stripe_value = signed(SchemeName::Stripe, SECRET).remove(0).1;
        let headers = header_map(&[("webhook-signature", stripe_value.as_str())]);
        let error = scheme(SchemeName::CloudflareStream, &[SECRET])
            .verify_now(&headers, BODY, at(T))
            .expect_err("t= is not time=");
        assert_eq!(error.code(), "malformed_signature_header");
    }

    #[test]
    fn missing_header_is_named() {
        for (name, label, header) in SCHEMES {
            let error = scheme(name, &[SECRET])
                .verify_now(&HeaderMap::new(), BODY, at(T))
                .expect_err(label);
            assert_eq!(error, VerifyError::MissingHeader { header });
        }
    }

    #[test]
    fn malformed_headers_are_reported() {
        let t = T.to_string();
        for value in [
            "v1=abcd".to_owned(),
            format!("t={t},t={t},v1=abcd"),
            "t=yesterday,v1=abcd".to_owned(),
            format!("t={t};v1=abcd"),
            format!("t=-{t},v1=abcd"),
        ] {
            let headers = header_map(&[("stripe-signature", value.as_str())]);
            let error = scheme(SchemeName::Stripe, &[SECRET])
                .verify_now(&headers, BODY, at(T))
                .expect_err(&value);
            assert_eq!(error.code(), "malformed_signature_header", "{value}");
        }
    }

    #[test]
    fn empty_or_missing_secrets_are_rejected_at_config_time() {
        for (name, _, _) in SCHEMES {
            let error = Providers::from_config(&[config("p", name, &[SECRET, ""])])
                .expect_err("empty secret");
            assert_eq!(error.key, "secrets[1]");
            let error = Providers::from_config(&[config("p", name, &[])]).expect_err("no secret");
            assert_eq!(error.key, "secrets");
        }
    }

    #[test]
    fn keys_of_other_schemes_are_refused() {
        let mut entry = config("p", SchemeName::Mux, &[SECRET]);
        entry.header = Some("X-Signature".into());
        let error = Providers::from_config(&[entry]).expect_err("header");
        assert_eq!(error.key, "header");
        let mut entry = config("p", SchemeName::CloudflareStream, &[SECRET]);
        entry.public_keys = vec!["whpk_x".into()];
        let error = Providers::from_config(&[entry]).expect_err("public_keys");
        assert_eq!(error.key, "public_keys");
    }
}
