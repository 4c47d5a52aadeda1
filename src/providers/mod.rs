//! Providers: each configured provider's signature scheme and payload mapper, turning a raw request
//! into a verified `VideoEvent`. Owns verification, mapping and their errors; knows no HTTP status
//! codes (ingress maps the errors) and touches no store.
//!
//! Schemes live one per file, each in the same order: headers → verify → sign: [`standard`],
//! [`hmac_sha256`], [`timestamped_hmac`] (`stripe`, `mux` and `cloudflare-stream`, which share
//! Stripe's construction) and [`ed25519`] (fal.ai), whose key sets come from [`keys`].
//! Mappers likewise: [`native`] (our own format) and, in [`mappers`], the named providers' and the
//! generic JSON-pointer one. [`health`] keeps what each provider has been sending.

pub mod ed25519;
pub mod health;
pub mod hmac_sha256;
pub mod keys;
pub mod mappers;
pub mod native;
pub mod standard;
pub mod timestamped_hmac;

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

/// Why a provider cannot produce the headers of a signed request (`simulate`, tests).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// Only public keys are configured: verifying needs no more, signing needs a private key.
    #[error("provider {provider} has no {needed} to sign with; it can only verify")]
    NoSigningKey {
        provider: String,
        needed: &'static str,
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
    /// `stripe`, `mux` and `cloudflare-stream`: one construction, three header layouts.
    TimestampedHmac(timestamped_hmac::TimestampedHmacScheme),
    /// Boxed: its key set (cache, locks, HTTP client) dwarfs the other schemes.
    Ed25519(Box<ed25519::Ed25519Scheme>),
}

/// The supported payload mappers, one file each.
#[derive(Debug)]
enum Mapper {
    Native(native::Types),
    Mux,
    CloudflareStream,
    Fal,
    ApiVideo,
    Generic(Box<mappers::generic::GenericMapper>),
}

/// The names `mapper = "..."` accepts.
const BUILTIN_MAPPERS: &str = "native, mux, cloudflare-stream, fal, api-video";

impl Mapper {
    fn from_config(config: &ProviderConfig) -> Result<Mapper, ConfigIssue> {
        if let Some(MapperConfig::Generic(generic)) = &config.mapper {
            return mappers::generic::GenericMapper::from_config(generic)
                .map(|mapper| Mapper::Generic(Box::new(mapper)));
        }
        let name = config
            .builtin_mapper()
            .expect("an entry without a [provider.mapper] table names a built-in mapper");
        let mapper = match name {
            "native" => Mapper::Native(native::Types::from_config(&config.types)?),
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
        refuse_keys_the_scheme_ignores(config).map_err(invalid)?;
        let scheme = match config.scheme {
            SchemeName::Standard => {
                standard::StandardScheme::from_config(config).map(Scheme::Standard)
            }
            SchemeName::HmacSha256 => {
                hmac_sha256::HmacScheme::from_config(config).map(Scheme::HmacSha256)
            }
            SchemeName::Stripe => timestamped_hmac::TimestampedHmacScheme::from_config(
                config,
                timestamped_hmac::STRIPE,
            )
            .map(Scheme::TimestampedHmac),
            SchemeName::Mux => {
                timestamped_hmac::TimestampedHmacScheme::from_config(config, timestamped_hmac::MUX)
                    .map(Scheme::TimestampedHmac)
            }
            SchemeName::CloudflareStream => timestamped_hmac::TimestampedHmacScheme::from_config(
                config,
                timestamped_hmac::CLOUDFLARE_STREAM,
            )
            .map(Scheme::TimestampedHmac),
            SchemeName::Ed25519 => ed25519::Ed25519Scheme::from_config(config)
                .map(|scheme| Scheme::Ed25519(Box::new(scheme))),
        }
        .map_err(invalid)?;
        let mapper = Mapper::from_config(config).map_err(invalid)?;
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
    /// raw `body` bytes, with every configured secret or key. Async because an `ed25519` key set
    /// from a JWKS may have to be fetched first (expired, or a signature no cached key verifies).
    pub async fn verify(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Verified, VerifyError> {
        match &self.scheme {
            Scheme::Standard(scheme) => scheme.verify(headers, body, now),
            Scheme::HmacSha256(scheme) => scheme.verify(headers, body, now),
            Scheme::TimestampedHmac(scheme) => scheme.verify(headers, body, now),
            Scheme::Ed25519(scheme) => scheme.verify(headers, body, now).await,
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
            Scheme::Ed25519(_) => headers
                .iter()
                .find(|(name, _)| name == ed25519::REQUEST_ID_HEADER)
                .map(|(_, value)| value.clone()),
            Scheme::HmacSha256(_) | Scheme::TimestampedHmac(_) => None,
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
            Mapper::Native(types) => native::map(types, name, verified, body, received_at),
            Mapper::Mux => mappers::mux::map(name, verified, body, received_at),
            Mapper::CloudflareStream => {
                mappers::cloudflare_stream::map(name, verified, body, received_at)
            }
            Mapper::Fal => mappers::fal::map(name, verified, body, received_at),
            Mapper::ApiVideo => mappers::api_video::map(name, verified, body, received_at),
            Mapper::Generic(mapper) => mapper.map(name, verified, body, received_at),
        }
    }

    /// The other ids this provider knows the event's video by (which its mapper kept in the
    /// event's metadata): an upload id, an asset id, the app's own id. `None` for providers with
    /// one id per video. An event with no other id still takes part (`Some` of nothing): its id
    /// must be known for a later event that links it.
    pub fn aliases(&self, event: &VideoEvent) -> Option<Vec<VideoId>> {
        let keys: &[&str] = match self.mapper {
            Mapper::Mux => mappers::mux::ALIAS_KEYS,
            Mapper::CloudflareStream => mappers::cloudflare_stream::ALIAS_KEYS,
            _ => return None,
        };
        let aliases = keys
            .iter()
            .filter_map(|key| event.metadata.get(key)?.as_str())
            .filter_map(|raw| VideoId::parse(raw).ok())
            .filter(|id| id != &event.video_id)
            .collect();
        Some(aliases)
    }

    /// Headers a sender attaches to `body` (signed with the first secret): used by `simulate` and
    /// tests. Names are lowercase. A provider configured with public keys only cannot sign.
    pub fn sign(
        &self,
        event_id: &str,
        at: DateTime<Utc>,
        body: &[u8],
    ) -> Result<Vec<(String, String)>, SignError> {
        let no_key = |needed| SignError::NoSigningKey {
            provider: self.name.as_str().to_owned(),
            needed,
        };
        match &self.scheme {
            Scheme::Standard(scheme) => scheme
                .sign(event_id, at, body)
                .ok_or_else(|| no_key("whsec_ or whsk_ secret")),
            Scheme::HmacSha256(scheme) => Ok(scheme.sign(event_id, at, body)),
            Scheme::TimestampedHmac(scheme) => Ok(scheme.sign(event_id, at, body)),
            Scheme::Ed25519(scheme) => scheme
                .sign(event_id, at, body)
                .ok_or_else(|| no_key("private key in secrets")),
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

/// A scheme's config problem carries a key of the provider's entry, before it is placed at a
/// provider index and name.
pub(crate) use crate::config::ConfigIssue;

/// Refuses keys the entry's scheme would silently ignore: a `header` on a `stripe` provider or a
/// `jwks` on a `standard` one is a mistake the operator should hear about at start-up.
fn refuse_keys_the_scheme_ignores(config: &ProviderConfig) -> Result<(), ConfigIssue> {
    let scheme = config.scheme;
    let ignored = |key: &str, readers: &str| {
        ConfigIssue::new(
            key,
            format!(
                "is not read by scheme {} (only by {readers})",
                scheme_name(scheme)
            ),
        )
    };
    if config.header.is_some() && scheme != SchemeName::HmacSha256 {
        return Err(ignored("header", "hmac-sha256"));
    }
    if !config.public_keys.is_empty()
        && !matches!(scheme, SchemeName::Standard | SchemeName::Ed25519)
    {
        return Err(ignored("public_keys", "standard and ed25519"));
    }
    if scheme != SchemeName::Ed25519 {
        if config.jwks.is_some() {
            return Err(ignored("jwks", "ed25519"));
        }
        if config.jwks_ttl_secs.is_some() {
            return Err(ignored("jwks_ttl_secs", "ed25519 with jwks"));
        }
        if config.jwks_min_refresh_secs.is_some() {
            return Err(ignored("jwks_min_refresh_secs", "ed25519 with jwks"));
        }
    }
    Ok(())
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

/// The secrets of a scheme that keys a MAC with their UTF-8 bytes, refusing an empty one.
pub(crate) fn utf8_mac_keys(config: &ProviderConfig) -> Result<Vec<Vec<u8>>, ConfigIssue> {
    let mut keys = Vec::with_capacity(config.secrets.len());
    for (i, secret) in required_secrets(config)?.iter().enumerate() {
        // An empty key is a MAC anyone can compute.
        if secret.expose().is_empty() {
            return Err(ConfigIssue::new(format!("secrets[{i}]"), "is empty"));
        }
        keys.push(secret.expose().as_bytes().to_vec());
    }
    Ok(keys)
}

/// Plain decimal unix seconds (no sign, no fraction), within chrono's range.
pub(crate) fn parse_unix_seconds(raw: &str) -> Option<DateTime<Utc>> {
    if raw.is_empty() || raw.len() > 18 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    DateTime::from_timestamp(raw.parse().ok()?, 0)
}

/// Refuses a signed time further than `tolerance_secs` from `now`, in either direction: an old
/// one is a replay, and one far ahead would stay replayable for as long as it is ahead. Compared
/// in whole seconds, as the signed time is and as the Standard Webhooks reference compares: a
/// duration truncated toward zero let one more second through ahead than behind.
pub(crate) fn check_tolerance(
    signed_at: DateTime<Utc>,
    now: DateTime<Utc>,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    let distance = now.timestamp().abs_diff(signed_at.timestamp());
    if distance > tolerance_secs {
        return Err(VerifyError::TimestampOutOfTolerance);
    }
    Ok(())
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

    use chrono::{DateTime, Utc};

    use super::{Provider, Providers, Verified, VerifyError};
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

    /// The vectors of `sdk_vectors.json` (made with the providers' SDKs by `sdk_vectors.py`)
    /// whose `scheme` is `scheme`, valid and rejected ones (`expect`).
    pub(crate) fn sdk_vectors(scheme: &str) -> Vec<serde_json::Value> {
        let all: serde_json::Value =
            serde_json::from_slice(&fixture("sdk_vectors.json")).expect("sdk_vectors.json is JSON");
        let vectors: Vec<serde_json::Value> = all["vectors"]
            .as_array()
            .expect("sdk_vectors.json has a vectors array")
            .iter()
            .filter(|v| v["scheme"] == scheme)
            .cloned()
            .collect();
        assert!(
            vectors.len() >= 2,
            "expected SDK vectors for scheme {scheme}"
        );
        vectors
    }

    pub(crate) fn config(name: &str, scheme: SchemeName, secrets: &[&str]) -> ProviderConfig {
        ProviderConfig::new(
            name,
            scheme,
            secrets.iter().map(|s| Secret::new(*s)).collect(),
        )
    }

    pub(crate) fn provider(config: ProviderConfig) -> std::sync::Arc<Provider> {
        let name = config.name.clone();
        Providers::from_config(&[config])
            .expect("valid provider config")
            .get(&name)
            .expect("provider is registered under its name")
    }

    /// `Provider::verify` is async only for an `ed25519` JWKS; every other scheme answers at once,
    /// so their tests call it as a plain function.
    pub(crate) trait VerifyNow {
        fn verify_now(
            &self,
            headers: &HeaderMap,
            body: &[u8],
            now: DateTime<Utc>,
        ) -> Result<Verified, VerifyError>;
    }

    impl VerifyNow for Provider {
        fn verify_now(
            &self,
            headers: &HeaderMap,
            body: &[u8],
            now: DateTime<Utc>,
        ) -> Result<Verified, VerifyError> {
            futures_util::FutureExt::now_or_never(self.verify(headers, body, now))
                .expect("this scheme verifies without waiting")
        }
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
    fn the_tolerance_is_the_same_whole_seconds_ahead_and_behind() {
        let second = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        // Most of a second past `second`, where a truncated duration read 300 for 300.95 ahead.
        let now = second + chrono::Duration::milliseconds(950);
        let at = |offset: i64| second + chrono::Duration::seconds(offset);
        for (offset, allowed) in [(300, true), (301, false), (-300, true), (-301, false)] {
            assert_eq!(
                check_tolerance(at(offset), now, 300).is_ok(),
                allowed,
                "signed {offset} s from the second of now"
            );
        }
    }

    #[test]
    fn every_scheme_of_the_design_starts_with_a_valid_entry() {
        let mut fal = config("fal", SchemeName::Ed25519, &[]);
        fal.public_keys = vec!["4eggH8kol5ytP7l2LdBSLfn24csrMWlLPwOBD9gleec".into()];
        let providers = Providers::from_config(&[
            config("std", SchemeName::Standard, &[SECRET]),
            config("hmac", SchemeName::HmacSha256, &["s3cret"]),
            config("stripe", SchemeName::Stripe, &["whsec_abc"]),
            config("mux", SchemeName::Mux, &["mux-secret"]),
            config("cf", SchemeName::CloudflareStream, &["cf-secret"]),
            fal,
        ])
        .expect("all valid");
        assert_eq!(
            providers.names(),
            ["cf", "fal", "hmac", "mux", "std", "stripe"]
        );
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
        for scheme in [
            SchemeName::Standard,
            SchemeName::HmacSha256,
            SchemeName::Stripe,
            SchemeName::Mux,
            SchemeName::CloudflareStream,
        ] {
            let error = config_error(&[config("p", scheme, &[])]);
            assert_eq!(error.key, "secrets");
        }
    }

    #[test]
    fn config_error_names_index_provider_and_key() {
        let good = config("first", SchemeName::Standard, &[SECRET]);
        let bad = config("second", SchemeName::Mux, &["x", ""]);
        let error = config_error(&[good, bad]);
        assert_eq!(
            error.to_string(),
            "provider[1] (second): secrets[1]: is empty"
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
