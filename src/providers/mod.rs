//! Providers: each configured provider's signature scheme and payload mapper, turning a raw request
//! into a verified `VideoEvent`. Owns verification, mapping and their errors; knows no HTTP status
//! codes (ingress maps the errors) and touches no store.
//!
//! Schemes live one per file, each in the same order: headers → verify → sign.
//! Mappers likewise: [`native`] (our own format) and, in [`mappers`], the named providers' and the
//! generic JSON-pointer one.

pub mod health;
pub mod hmac_sha256;
pub mod mappers;
pub mod native;
pub mod standard;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{MapperConfig, ProviderConfig, SchemeName, Secret};
use crate::event::{EventId, ProviderName, VideoEvent, VideoId};

/// What a scheme proved about a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    /// The delivery id the scheme signed (Standard Webhooks `webhook-id`, Svix `svix-id`); it wins
    /// over an id in the body.
    pub delivery_id: Option<String>,
    /// The signed timestamp, if the scheme has one (the attempt time, not the event time).
    pub signed_at: Option<DateTime<Utc>>,
    /// The headers the scheme read, lowercase names, kept beside the event for audit.
    pub headers: Vec<(String, String)>,
}

/// Why a request's signature was not accepted. Messages name headers, never a secret or an
/// expected signature value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("header {header} is missing")]
    MissingHeader { header: &'static str },
    #[error("header {header} is malformed: {reason}")]
    MalformedHeader {
        header: &'static str,
        reason: &'static str,
    },
    #[error("signed timestamp is outside the provider's tolerance from now")]
    TimestampOutOfTolerance,
    #[error("no signature in the request matches the body under any configured secret")]
    NoMatchingSignature,
}

impl VerifyError {
    /// The machine code the HTTP layer answers with.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::MissingHeader { .. } => "missing_signature_header",
            VerifyError::MalformedHeader { .. } => "malformed_signature_header",
            VerifyError::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            VerifyError::NoMatchingSignature => "no_matching_signature",
        }
    }
}

/// Why a verified body could not become an event. The request is quarantined for replay, so the
/// message says what to fix; it names fields (JSON pointers), never echoes their values.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("body is not JSON (line {}, column {})", .0.line(), .0.column())]
    NotJson(#[source] serde_json::Error),
    #[error("body is JSON but not an object")]
    NotAnObject,
    #[error("field /type is missing")]
    MissingEventType,
    #[error("field /type is not a string")]
    InvalidEventType,
    #[error("event id in {field} {reason}")]
    InvalidEventId { field: &'static str, reason: String },
    #[error("field /data/videoId (or /data/video_id) is missing")]
    MissingVideoId,
    #[error("field {field} {reason}")]
    InvalidVideoId { field: &'static str, reason: String },
    #[error("field /timestamp is missing")]
    MissingTimestamp,
    #[error("field /timestamp {reason}")]
    InvalidTimestamp { reason: &'static str },
    #[error("field /data/progress {reason}")]
    InvalidProgress { reason: &'static str },
    #[error("field {pointer} {reason}")]
    InvalidField { pointer: String, reason: String },
    #[error("field {pointer} is missing")]
    MissingField { pointer: String },
}

impl MapError {
    /// The machine code the HTTP layer answers with and the quarantine records.
    pub fn code(&self) -> &'static str {
        match self {
            MapError::NotJson(_) => "not_json",
            MapError::NotAnObject => "not_an_object",
            MapError::MissingEventType => "missing_event_type",
            MapError::InvalidEventType => "invalid_event_type",
            MapError::InvalidEventId { .. } => "invalid_event_id",
            MapError::MissingVideoId => "missing_video_id",
            MapError::InvalidVideoId { .. } => "invalid_video_id",
            MapError::MissingTimestamp => "missing_timestamp",
            MapError::InvalidTimestamp { .. } => "invalid_timestamp",
            MapError::InvalidProgress { .. } => "invalid_progress",
            MapError::InvalidField { .. } => "invalid_field",
            MapError::MissingField { .. } => "missing_field",
        }
    }
}

/// What a mapper made of a verified body.
// `Event` is the common case and the value is matched at once, so boxing it would only add an
// allocation per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// A lifecycle event for the video's stream.
    Event(VideoEvent),
    /// A type the mapper does not track: acknowledged and kept in the audit log only, because a
    /// 4xx would make the provider retry it for days.
    Ignored {
        event_id: EventId,
        video_id: Option<VideoId>,
        event_type: String,
    },
}

/// A `[[provider]]` entry that cannot run; start-up stops on it. Never contains a secret.
#[derive(Debug, thiserror::Error)]
#[error("provider[{index}] ({name}): {key}: {reason}")]
pub struct ProviderConfigError {
    /// Position of the entry in the config's provider list.
    pub index: usize,
    /// The entry's `name`, as configured.
    pub name: String,
    /// The offending key within the entry, e.g. `scheme` or `secrets[1]`.
    pub key: String,
    pub reason: String,
}

/// One configured provider: its name, how its requests are verified and how its bodies are mapped.
#[derive(Debug)]
pub struct Provider {
    name: ProviderName,
    scheme: Scheme,
    mapper: Mapper,
}

/// The supported signature schemes, one file each.
#[derive(Debug)]
enum Scheme {
    Standard(standard::StandardScheme),
    HmacSha256(hmac_sha256::HmacScheme),
}

/// The supported payload mappers, one file each.
#[derive(Debug)]
enum Mapper {
    Native,
    Mux,
    CloudflareStream,
    Fal,
    ApiVideo,
    Generic(Box<mappers::generic::GenericMapper>),
}

/// The names `mapper = "..."` accepts.
const BUILTIN_MAPPERS: &str = "native, mux, cloudflare-stream, fal, api-video";

impl Mapper {
    fn from_config(
        scheme: SchemeName,
        config: Option<&MapperConfig>,
    ) -> Result<Mapper, ConfigIssue> {
        let name = match config {
            Some(MapperConfig::Generic(generic)) => {
                return mappers::generic::GenericMapper::from_config(generic)
                    .map(|mapper| Mapper::Generic(Box::new(mapper)))
            }
            Some(MapperConfig::Builtin(name)) => name.as_str(),
            // A provider's own scheme implies its payloads.
            None => match scheme {
                SchemeName::Mux => "mux",
                SchemeName::CloudflareStream => "cloudflare-stream",
                SchemeName::Ed25519 => "fal",
                _ => "native",
            },
        };
        let mapper = match name {
            "native" => Mapper::Native,
            "mux" => Mapper::Mux,
            "cloudflare-stream" => Mapper::CloudflareStream,
            "fal" => Mapper::Fal,
            "api-video" => Mapper::ApiVideo,
            other => {
                return Err(ConfigIssue::new(
                    "mapper",
                    format!(
                        "mapper {other} is not built in (built in: {BUILTIN_MAPPERS}; or a \
                         [provider.mapper] table for the generic mapper)"
                    ),
                ))
            }
        };
        Ok(mapper)
    }
}

impl Provider {
    fn from_config(index: usize, config: &ProviderConfig) -> Result<Provider, ProviderConfigError> {
        let invalid = |issue: ConfigIssue| ProviderConfigError {
            index,
            name: config.name.clone(),
            key: issue.key,
            reason: issue.reason,
        };
        let name = ProviderName::parse(config.name.as_str())
            .map_err(|e| invalid(ConfigIssue::new("name", e.to_string())))?;
        let scheme = match config.scheme {
            SchemeName::Standard => {
                standard::StandardScheme::from_config(config).map(Scheme::Standard)
            }
            SchemeName::HmacSha256 => {
                hmac_sha256::HmacScheme::from_config(config).map(Scheme::HmacSha256)
            }
            other => Err(ConfigIssue::new(
                "scheme",
                format!(
                    "scheme {} is not supported yet (supported: standard, hmac-sha256)",
                    scheme_name(other)
                ),
            )),
        }
        .map_err(invalid)?;
        let mapper = Mapper::from_config(config.scheme, config.mapper.as_ref()).map_err(invalid)?;
        Ok(Provider {
            name,
            scheme,
            mapper,
        })
    }

    /// The configured name, the `{provider}` of `POST /webhooks/{provider}`.
    pub fn name(&self) -> &ProviderName {
        &self.name
    }

    /// Checks the request's signature (and signed timestamp, where the scheme has one) over the
    /// raw `body` bytes, with every configured secret.
    pub fn verify(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Verified, VerifyError> {
        match &self.scheme {
            Scheme::Standard(scheme) => scheme.verify(headers, body, now),
            Scheme::HmacSha256(scheme) => scheme.verify(headers, body, now),
        }
    }

    /// What `verify` proved about a request kept earlier (a quarantined one), read back from the
    /// headers it recorded. The signature is not checked again: it was when the request came in,
    /// and its timestamp is long past the tolerance now.
    pub fn recall(&self, headers: &[(String, String)]) -> Verified {
        let delivery_id = match &self.scheme {
            Scheme::Standard(_) => headers
                .iter()
                .find(|(name, _)| name == "webhook-id" || name == "svix-id")
                .map(|(_, value)| value.clone()),
            Scheme::HmacSha256(_) => None,
        };
        Verified {
            delivery_id,
            signed_at: None,
            headers: headers.to_vec(),
        }
    }

    /// Turns a verified body into an event (or an ignored delivery). Call only after `verify`.
    pub fn map(
        &self,
        verified: &Verified,
        body: &[u8],
        received_at: DateTime<Utc>,
    ) -> Result<Mapped, MapError> {
        let name = &self.name;
        match &self.mapper {
            Mapper::Native => native::map(name, verified, body, received_at),
            Mapper::Mux => mappers::mux::map(name, verified, body, received_at),
            Mapper::CloudflareStream => {
                mappers::cloudflare_stream::map(name, verified, body, received_at)
            }
            Mapper::Fal => mappers::fal::map(name, verified, body, received_at),
            Mapper::ApiVideo => mappers::api_video::map(name, verified, body, received_at),
            Mapper::Generic(mapper) => mapper.map(name, verified, body, received_at),
        }
    }

    /// Headers a sender attaches to `body` (signed with the first secret): used by `simulate` and
    /// tests. Names are lowercase.
    pub fn sign(&self, event_id: &str, at: DateTime<Utc>, body: &[u8]) -> Vec<(String, String)> {
        match &self.scheme {
            Scheme::Standard(scheme) => scheme.sign(event_id, at, body),
            Scheme::HmacSha256(scheme) => scheme.sign(event_id, at, body),
        }
    }
}

/// Every configured provider by name; a cheap handle to share between request handlers.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    by_name: Arc<HashMap<String, Arc<Provider>>>,
}

impl Providers {
    /// Builds every provider, validating schemes, secrets and mappers; the first bad entry stops
    /// start-up with an error that names it and the key.
    pub fn from_config(configs: &[ProviderConfig]) -> Result<Providers, ProviderConfigError> {
        let mut by_name = HashMap::with_capacity(configs.len());
        for (index, config) in configs.iter().enumerate() {
            let provider = Provider::from_config(index, config)?;
            if by_name.contains_key(&config.name) {
                return Err(ProviderConfigError {
                    index,
                    name: config.name.clone(),
                    key: "name".into(),
                    reason: "another provider already has this name".into(),
                });
            }
            by_name.insert(config.name.clone(), Arc::new(provider));
        }
        Ok(Providers {
            by_name: Arc::new(by_name),
        })
    }

    /// The provider posting to `/webhooks/{name}`, if configured.
    pub fn get(&self, name: &str) -> Option<Arc<Provider>> {
        self.by_name.get(name).cloned()
    }

    /// Every configured name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_name.keys().cloned().collect();
        names.sort();
        names
    }
}

/// A config problem found by a scheme, before it is placed at a provider index and name.
#[derive(Debug)]
pub(crate) struct ConfigIssue {
    key: String,
    reason: String,
}

impl ConfigIssue {
    pub(crate) fn new(key: impl Into<String>, reason: impl Into<String>) -> ConfigIssue {
        ConfigIssue {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

fn scheme_name(scheme: SchemeName) -> &'static str {
    match scheme {
        SchemeName::Standard => "standard",
        SchemeName::HmacSha256 => "hmac-sha256",
        SchemeName::Stripe => "stripe",
        SchemeName::Mux => "mux",
        SchemeName::CloudflareStream => "cloudflare-stream",
        SchemeName::Ed25519 => "ed25519",
    }
}

/// The configured secrets, refusing an empty list: every scheme signs with the first one.
pub(crate) fn required_secrets(config: &ProviderConfig) -> Result<&[Secret], ConfigIssue> {
    if config.secrets.is_empty() {
        return Err(ConfigIssue::new(
            "secrets",
            "at least one secret is required",
        ));
    }
    Ok(&config.secrets)
}

/// The value of header `name` (lowercase) as text. Only visible ASCII is accepted: every scheme's
/// values are ASCII, and anything else cannot be what the sender signed.
pub(crate) fn header_str<'h>(
    headers: &'h http::HeaderMap,
    name: &'static str,
) -> Result<&'h str, VerifyError> {
    let value = headers
        .get(name)
        .ok_or(VerifyError::MissingHeader { header: name })?;
    let text = value.to_str().map_err(|_| VerifyError::MalformedHeader {
        header: name,
        reason: "is not visible ASCII",
    })?;
    if text.trim().is_empty() {
        return Err(VerifyError::MalformedHeader {
            header: name,
            reason: "is empty",
        });
    }
    Ok(text)
}

/// HMAC-SHA256 of the concatenated `parts` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length (long ones are hashed), so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Shared by the tests of every scheme and mapper: fixtures and builders.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::PathBuf;

    use http::{HeaderMap, HeaderName, HeaderValue};

    use super::{Provider, Providers};
    use crate::config::{ProviderConfig, SchemeName, Secret};

    /// `tests/fixtures/providers`, a copy of the shared fixtures kept in the repo.
    pub(crate) fn fixture_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/providers")
    }

    pub(crate) fn fixture(relative: &str) -> Vec<u8> {
        let path = fixture_dir().join(relative);
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// The vectors of `vectors.json` whose `scheme` is `scheme`.
    pub(crate) fn vectors(scheme: &str) -> Vec<serde_json::Value> {
        let all: serde_json::Value =
            serde_json::from_slice(&fixture("vectors.json")).expect("vectors.json is JSON");
        let vectors: Vec<serde_json::Value> = all["vectors"]
            .as_array()
            .expect("vectors.json has a vectors array")
            .iter()
            .filter(|v| v["scheme"] == scheme)
            .cloned()
            .collect();
        assert!(vectors.len() >= 2, "expected vectors for scheme {scheme}");
        vectors
    }

    pub(crate) fn config(name: &str, scheme: SchemeName, secrets: &[&str]) -> ProviderConfig {
        ProviderConfig {
            name: name.into(),
            scheme,
            secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
            tolerance_secs: 300,
            mapper: None,
            header: None,
            stall_after_secs: 3600,
            poll: None,
        }
    }

    pub(crate) fn provider(config: ProviderConfig) -> std::sync::Arc<Provider> {
        let name = config.name.clone();
        Providers::from_config(&[config])
            .expect("valid provider config")
            .get(&name)
            .expect("provider is registered under its name")
    }

    pub(crate) fn header_map<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_ref().as_bytes()).expect("header name"),
                HeaderValue::from_str(value.as_ref()).expect("header value"),
            );
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::config;
    use super::*;

    const SECRET: &str = "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

    fn config_error(configs: &[ProviderConfig]) -> ProviderConfigError {
        match Providers::from_config(configs) {
            Ok(_) => panic!("config should have been rejected"),
            Err(error) => error,
        }
    }

    #[test]
    fn unsupported_schemes_are_rejected_naming_the_scheme_key() {
        for (scheme, label) in [
            (SchemeName::Stripe, "stripe"),
            (SchemeName::Mux, "mux"),
            (SchemeName::CloudflareStream, "cloudflare-stream"),
            (SchemeName::Ed25519, "ed25519"),
        ] {
            let error = config_error(&[config("p", scheme, &[SECRET])]);
            assert_eq!(error.key, "scheme");
            assert_eq!(
                error.reason,
                format!("scheme {label} is not supported yet (supported: standard, hmac-sha256)")
            );
        }
    }

    #[test]
    fn unknown_mapper_is_rejected_naming_the_mapper_key() {
        let mut entry = config("p", SchemeName::Standard, &[SECRET]);
        entry.mapper = Some("vimeo".into());
        let error = config_error(&[entry]);
        assert_eq!(error.key, "mapper");
        assert!(error.reason.contains("not built in"), "{}", error.reason);
    }

    #[test]
    fn explicit_native_mapper_is_accepted() {
        let mut entry = config("p", SchemeName::HmacSha256, &["s3cret"]);
        entry.mapper = Some("native".into());
        assert!(Providers::from_config(&[entry]).is_ok());
    }

    #[test]
    fn provider_without_secrets_is_rejected() {
        for scheme in [SchemeName::Standard, SchemeName::HmacSha256] {
            let error = config_error(&[config("p", scheme, &[])]);
            assert_eq!(error.key, "secrets");
        }
    }

    #[test]
    fn config_error_names_index_provider_and_key() {
        let good = config("first", SchemeName::Standard, &[SECRET]);
        let bad = config("second", SchemeName::Mux, &["x"]);
        let error = config_error(&[good, bad]);
        assert_eq!(
            error.to_string(),
            "provider[1] (second): scheme: scheme mux is not supported yet \
             (supported: standard, hmac-sha256)"
        );
    }

    #[test]
    fn duplicate_provider_names_are_rejected() {
        let error = config_error(&[
            config("same", SchemeName::Standard, &[SECRET]),
            config("same", SchemeName::HmacSha256, &["s3cret"]),
        ]);
        assert_eq!((error.index, error.key.as_str()), (1, "name"));
    }

    #[test]
    fn invalid_provider_name_is_rejected() {
        let error = config_error(&[config("", SchemeName::Standard, &[SECRET])]);
        assert_eq!(error.key, "name");
    }

    #[test]
    fn providers_are_found_by_name_and_listed_sorted() {
        let providers = Providers::from_config(&[
            config("zeta", SchemeName::Standard, &[SECRET]),
            config("alpha", SchemeName::HmacSha256, &["s3cret"]),
        ])
        .expect("valid config");
        assert_eq!(providers.names(), ["alpha", "zeta"]);
        let zeta = providers.get("zeta").expect("zeta is configured");
        assert_eq!(zeta.name().as_str(), "zeta");
        assert!(providers.get("missing").is_none());
    }

    #[test]
    fn provider_debug_output_never_contains_a_secret() {
        let providers = Providers::from_config(&[
            config("std", SchemeName::Standard, &[SECRET]),
            config("hmac", SchemeName::HmacSha256, &["hs-dev-secret-7f3a91c2"]),
        ])
        .expect("valid config");
        let debug = format!("{providers:?}");
        assert!(!debug.contains("AQIDBAUG"), "{debug}");
        assert!(!debug.contains("hs-dev-secret"), "{debug}");
    }

    #[test]
    fn verify_errors_have_stable_codes() {
        let cases = [
            (
                VerifyError::MissingHeader {
                    header: "webhook-id",
                },
                "missing_signature_header",
            ),
            (
                VerifyError::MalformedHeader {
                    header: "webhook-id",
                    reason: "is empty",
                },
                "malformed_signature_header",
            ),
            (
                VerifyError::TimestampOutOfTolerance,
                "timestamp_out_of_tolerance",
            ),
            (VerifyError::NoMatchingSignature, "no_matching_signature"),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code);
        }
        assert_eq!(
            VerifyError::MissingHeader {
                header: "webhook-signature"
            }
            .to_string(),
            "header webhook-signature is missing"
        );
    }
}
