//! Configuration: defaults compiled in, then a TOML file, then `VIDEO_STATUS_*` environment
//! variables, then command-line flags; validated before anything starts.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Prefix of the environment overrides: `VIDEO_STATUS_LISTEN`, `VIDEO_STATUS_STORE`,
/// `VIDEO_STATUS_LIMITS__MAX_BODY_BYTES`, `VIDEO_STATUS_AUTH__ADMIN_TOKEN`, ... (`__` nests).
pub const ENV_PREFIX: &str = "VIDEO_STATUS_";

/// The command line's own variables under [`ENV_PREFIX`] (`--config` of every command,
/// `simulate --secret`): not config keys, so the config's environment overrides skip them
/// instead of refusing them as unknown.
pub const CONFIG_FILE_VARIABLE: &str = "VIDEO_STATUS_CONFIG";
pub const SIMULATE_SECRET_VARIABLE: &str = "VIDEO_STATUS_SIMULATE_SECRET";
const COMMAND_LINE_VARIABLES: [&str; 2] = [CONFIG_FILE_VARIABLE, SIMULATE_SECRET_VARIABLE];

/// The dev secret of the `demo` provider that `serve` runs with when no provider is configured.
/// Public on purpose: it only ever guards a local demo.
pub const DEMO_SECRET: &str = "whsec_dmlkZW8tc3RhdHVzLWRlbW8tc2VjcmV0LWRvLW5vdC11c2U=";

/// Each demo provider `serve` runs beside `demo` when no provider is configured: its name (the
/// `{provider}` of `/webhooks/{provider}`, and `simulate --provider`), scheme, public dev secret
/// (for `fal`, the hex seed of a dev Ed25519 key), signature header and mapper. They let anyone
/// try a provider's own payloads and signatures with `simulate`, without an account.
pub const DEMO_PROVIDERS: &[DemoProvider] = &[
    DemoProvider {
        name: "mux",
        scheme: SchemeName::Mux,
        secret: "video-status-demo-mux-signing-secret",
        header: None,
        mapper: "mux",
    },
    DemoProvider {
        name: "cloudflare-stream",
        scheme: SchemeName::CloudflareStream,
        secret: "video-status-demo-cloudflare-secret",
        header: None,
        mapper: "cloudflare-stream",
    },
    DemoProvider {
        name: "fal",
        scheme: SchemeName::Ed25519,
        secret: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        header: None,
        mapper: "fal",
    },
    DemoProvider {
        name: "api-video",
        scheme: SchemeName::HmacSha256,
        secret: "sig_sec_video-status-demo",
        header: Some("X-Api-Video-Signature"),
        mapper: "api-video",
    },
];

/// See [`DEMO_PROVIDERS`].
#[derive(Debug, Clone, Copy)]
pub struct DemoProvider {
    pub name: &'static str,
    pub scheme: SchemeName,
    pub secret: &'static str,
    pub header: Option<&'static str>,
    pub mapper: &'static str,
}

impl DemoProvider {
    pub fn find(name: &str) -> Option<&'static DemoProvider> {
        DEMO_PROVIDERS.iter().find(|demo| demo.name == name)
    }

    pub fn config(&self) -> ProviderConfig {
        ProviderConfig {
            header: self.header.map(str::to_string),
            mapper: Some(MapperConfig::Builtin(self.mapper.to_string())),
            ..ProviderConfig::new(self.name, self.scheme, vec![Secret::new(self.secret)])
        }
    }
}

/// A secret value: its `Debug` and `Display` never print it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that needs it (a MAC key, a token comparison).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Event store URL: `sqlite://PATH`.
    pub store: String,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub auth: Auth,
    #[serde(default)]
    pub actors: Actors,
    #[serde(default)]
    pub sse: Sse,
    #[serde(default)]
    pub http: Http,
    #[serde(default)]
    pub reconcile: Reconcile,
    #[serde(default)]
    pub telemetry: Telemetry,
    /// Signature scheme, secrets and mapper of each provider that may post webhooks.
    #[serde(default, rename = "provider")]
    pub providers: Vec<ProviderConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest webhook body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// Webhooks waiting for one video's actor before new ones get 503 + Retry-After.
    pub max_pending_per_video: usize,
    /// Webhooks in flight over all videos before new ones get 503 + Retry-After.
    pub max_pending_total: usize,
    /// How long a webhook waits for its actor and the durable append before it gets 503.
    pub request_timeout_ms: u64,
    /// `/readyz` answers 503 while the store's disk has less free than this (0: never): a
    /// nearly full disk still takes small writes, so its probe write alone would pass.
    pub min_free_disk_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_pending_per_video: 256,
            max_pending_total: 8192,
            request_timeout_ms: 10_000,
            min_free_disk_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Bearer token required by `/admin/*`; admin endpoints answer 404 without it.
    pub admin_token: Option<Secret>,
    /// HS256 key of subscriber JWTs. When this or `subscriber_jwt_public_key` is set, reads and
    /// SSE need a token naming the videos and/or providers it may see; without either they are
    /// open.
    pub subscriber_jwt_secret: Option<Secret>,
    /// Ed25519 public key (the JWK `x`: base64url of the 32 bytes) of EdDSA subscriber JWTs.
    pub subscriber_jwt_public_key: Option<String>,
}

/// Server-sent events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sse {
    /// Seconds between keep-alive comments on an idle stream.
    pub keep_alive_secs: u64,
    /// Reconnection delay suggested to clients (`retry:`), in milliseconds.
    pub retry_ms: u64,
    /// Most events `GET /events` replays for a `Last-Event-ID`; further behind, the client gets
    /// `reset` and refetches `GET /videos`.
    pub replay_horizon: usize,
    /// Changes buffered per `GET /events` client; one that falls further behind gets `reset`.
    pub global_buffer: usize,
}

impl Default for Sse {
    fn default() -> Self {
        Sse {
            keep_alive_secs: 15,
            retry_ms: 3000,
            replay_horizon: 10_000,
            global_buffer: 1024,
        }
    }
}

/// HTTP settings for browser clients.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Origins allowed to call the API from a browser (CORS), e.g. `["https://app.example"]`;
    /// `["*"]` allows any. Empty: same-origin only.
    pub cors_origins: Vec<String>,
}

/// Reconciliation: flagging stalled videos and polling providers about them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reconcile {
    /// Milliseconds between two sweeps of the status table for stalled videos. A video is
    /// flagged (on SSE, in metrics) and polled at most this long after its deadline passed.
    pub sweep_interval_ms: u64,
}

impl Default for Reconcile {
    fn default() -> Self {
        Reconcile {
            sweep_interval_ms: 5000,
        }
    }
}

impl Reconcile {
    pub fn sweep_interval(&self) -> Duration {
        Duration::from_millis(self.sweep_interval_ms)
    }
}

/// Span export to an OpenTelemetry collector.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Telemetry {
    /// Base URL of an OTLP/HTTP receiver (protobuf), e.g. `http://127.0.0.1:4318`: spans are
    /// posted to its `/v1/traces`. Unset: the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) variable turns export on; neither: no export.
    pub otlp_endpoint: Option<String>,
    /// Headers sent with every export, e.g. a hosted backend's API key.
    pub otlp_headers: BTreeMap<String, Secret>,
    /// `service.name` of the exported spans. Unset: `OTEL_SERVICE_NAME`, else `video-status`.
    pub service_name: Option<String>,
    /// Share of new traces exported, from 0.0 to 1.0 (a trace started upstream keeps its own
    /// decision).
    pub sample_ratio: f64,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            otlp_endpoint: None,
            otlp_headers: BTreeMap::new(),
            service_name: None,
            sample_ratio: 1.0,
        }
    }
}

impl Telemetry {
    /// The first setting the exporter could not use: `(key, reason)`.
    fn problem(&self) -> Option<(String, String)> {
        if let Some(endpoint) = &self.otlp_endpoint {
            let parsed = endpoint.parse::<http::Uri>();
            let usable = parsed.as_ref().is_ok_and(|uri| {
                matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some()
            });
            if !usable {
                return Some((
                    "otlp_endpoint".into(),
                    format!("{endpoint:?} is not a URL like http://127.0.0.1:4318"),
                ));
            }
        }
        for (name, value) in &self.otlp_headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Some((
                    format!("otlp_headers.{name}"),
                    "is not a valid HTTP header name".into(),
                ));
            }
            if http::HeaderValue::from_str(value.expose()).is_err() {
                return Some((
                    format!("otlp_headers.{name}"),
                    "is not a valid HTTP header value".into(),
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Some((
                "sample_ratio".into(),
                format!("{} is not between 0.0 and 1.0", self.sample_ratio),
            ));
        }
        None
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Actors {
    /// Seconds without a webhook after which a video's actor stops and frees its memory.
    pub idle_timeout_secs: u64,
    /// A passivating actor whose stream has at least this many events keeps a snapshot, so the
    /// next activation reads the snapshot and the events after it instead of the whole stream.
    pub snapshot_after_events: u64,
}

impl Default for Actors {
    fn default() -> Self {
        Actors {
            idle_timeout_secs: 300,
            snapshot_after_events: 64,
        }
    }
}

impl Actors {
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
}

/// A signature scheme named in `scheme = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchemeName {
    Standard,
    HmacSha256,
    Stripe,
    Mux,
    CloudflareStream,
    Ed25519,
}

/// One `[[provider]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The `{provider}` in `POST /webhooks/{provider}`.
    pub name: String,
    pub scheme: SchemeName,
    /// Every secret is tried, so a new one can be added before the old one is removed; the first
    /// one signs (`simulate`). Shared MAC keys, or for `ed25519` (and `whsk_` in `standard`)
    /// Ed25519 private keys, whose public keys are then trusted too.
    #[serde(default)]
    pub secrets: Vec<Secret>,
    /// Largest accepted distance, either way, between a signed timestamp and now.
    #[serde(default = "default_tolerance_secs")]
    pub tolerance_secs: u64,
    /// Payload mapper: a built-in one by name, or a `[provider.mapper]` table for the generic
    /// one. Defaults to the scheme's own provider (`mux`, `cloudflare-stream`, `fal` for
    /// `ed25519`), else `native`.
    #[serde(default)]
    pub mapper: Option<MapperConfig>,
    /// `hmac-sha256`: the header carrying the signature.
    #[serde(default)]
    pub header: Option<String>,
    /// `native` mapper: event types to track beyond the built-in ones, type → kind (`uploaded`,
    /// `processing_started`, `progress`, `processing_completed`, `ready`, `failed`, `deleted`),
    /// e.g. `"video.encoded" = "processing_completed"`. Deliveries of a type added here after
    /// they were ignored can be turned into events by `video-status rebuild --remap`.
    #[serde(default)]
    pub types: BTreeMap<String, String>,
    /// `ed25519` and `standard` (`v1a`): trusted Ed25519 public keys; any may match.
    #[serde(default)]
    pub public_keys: Vec<String>,
    /// `ed25519`: a JWKS (`{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": ...}]}`) as a file
    /// path or an `https://` URL, cached and refreshed; its keys are trusted beside `public_keys`.
    #[serde(default)]
    pub jwks: Option<String>,
    /// `jwks`: seconds a fetched key set is used before it is fetched again (default 3600).
    #[serde(default)]
    pub jwks_ttl_secs: Option<u64>,
    /// `jwks`: fewest seconds between two fetches caused by a signature no known key verifies
    /// (default 30), so unsigned junk cannot make the service hammer the key server.
    #[serde(default)]
    pub jwks_min_refresh_secs: Option<u64>,
    /// Seconds a video of this provider may sit in `uploaded`, `processing` or `processed` with
    /// nothing new before it is flagged `stalled`.
    #[serde(default = "default_stall_after_secs")]
    pub stall_after_secs: u64,
    /// Asking the provider's API about stalled videos: a `[provider.poll]` table; without it
    /// stalled videos are only flagged.
    #[serde(default)]
    pub poll: Option<PollConfig>,
}

impl ProviderConfig {
    /// The built-in mapper this entry uses: `mapper` by name, else its scheme's own payloads
    /// (`mux`, `cloudflare-stream`, `fal` for `ed25519`, else `native`); `None` for a
    /// `[provider.mapper]` table.
    pub fn builtin_mapper(&self) -> Option<&str> {
        match &self.mapper {
            Some(MapperConfig::Generic(_)) => None,
            Some(MapperConfig::Builtin(name)) => Some(name),
            None => Some(match self.scheme {
                SchemeName::Mux => "mux",
                SchemeName::CloudflareStream => "cloudflare-stream",
                SchemeName::Ed25519 => "fal",
                _ => "native",
            }),
        }
    }

    /// An entry with the defaults of every optional key.
    pub fn new(
        name: impl Into<String>,
        scheme: SchemeName,
        secrets: Vec<Secret>,
    ) -> ProviderConfig {
        ProviderConfig {
            name: name.into(),
            scheme,
            secrets,
            tolerance_secs: default_tolerance_secs(),
            mapper: None,
            header: None,
            public_keys: Vec::new(),
            jwks: None,
            jwks_ttl_secs: None,
            jwks_min_refresh_secs: None,
            types: BTreeMap::new(),
            stall_after_secs: default_stall_after_secs(),
            poll: None,
        }
    }
}

/// `[provider.poll]`: where and how to ask the provider for one video's current state. The
/// answer is mapped by the provider's own mapper, so it must be the JSON its webhooks carry (or
/// hold it at `body_pointer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollConfig {
    /// `GET` URL of one video; `{id}` stands for its id, percent-encoded, e.g.
    /// `https://api.example.com/videos/{id}`.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// HTTP Basic credentials; give both or neither, and not with `bearer_token`.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// JSON pointer to the object the mapper reads, for APIs that wrap it (Cloudflare's
    /// `/result`); absent: the whole body.
    #[serde(default)]
    pub body_pointer: Option<String>,
    /// JSON pointer into the video's status `metadata` holding the provider's own id for
    /// `{id}` (e.g. `/cloudflare_uid` when videos are known by the app's id); absent: the video id.
    #[serde(default)]
    pub id_pointer: Option<String>,
    /// Seconds between two polls of one stalled video that answered (jittered down by up to
    /// half, so videos that stalled together spread out).
    #[serde(default = "default_poll_interval_secs")]
    pub interval_secs: u64,
    /// Longest wait after failed polls: the wait doubles from `interval_secs` with every
    /// failure in a row, up to this, jittered like the interval.
    #[serde(default = "default_poll_max_backoff_secs")]
    pub max_backoff_secs: u64,
    /// Requests in flight to this provider at most.
    #[serde(default = "default_poll_concurrency")]
    pub concurrency: usize,
    /// Seconds one request may take, connecting included, before it counts as failed.
    #[serde(default = "default_poll_timeout_secs")]
    pub timeout_secs: u64,
}

impl PollConfig {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }

    pub fn max_backoff(&self) -> Duration {
        Duration::from_secs(self.max_backoff_secs)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// The first problem with this table, as (key under `poll.`, reason).
    fn problem(&self) -> Option<(&'static str, String)> {
        let url = self.url.as_str();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Some(("url", "must start with http:// or https://".into()));
        }
        if !url.contains("{id}") {
            return Some(("url", "must contain {id}, where the video's id goes".into()));
        }
        match (&self.username, &self.password, &self.bearer_token) {
            (Some(_), None, _) | (None, Some(_), _) => {
                return Some(("username", "username and password go together".into()))
            }
            (Some(_), Some(_), Some(_)) => {
                return Some((
                    "bearer_token",
                    "give bearer_token or username/password, not both".into(),
                ))
            }
            _ => {}
        }
        for (key, pointer) in [
            ("body_pointer", &self.body_pointer),
            ("id_pointer", &self.id_pointer),
        ] {
            if pointer.as_deref().is_some_and(|p| !p.starts_with('/')) {
                return Some((key, "must be a JSON pointer starting with /".into()));
            }
        }
        for (key, value) in [
            ("interval_secs", self.interval_secs),
            ("max_backoff_secs", self.max_backoff_secs),
            ("timeout_secs", self.timeout_secs),
            ("concurrency", self.concurrency as u64),
        ] {
            if value == 0 {
                return Some((key, "must be greater than 0".into()));
            }
        }
        if self.max_backoff_secs < self.interval_secs {
            return Some(("max_backoff_secs", "must be at least interval_secs".into()));
        }
        None
    }
}

/// `mapper = "mux"` (a built-in mapper) or a `[provider.mapper]` table (the generic one).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MapperConfig {
    Builtin(String),
    Generic(Box<GenericMapperConfig>),
}

impl From<&str> for MapperConfig {
    fn from(name: &str) -> MapperConfig {
        MapperConfig::Builtin(name.to_string())
    }
}

// By hand rather than `untagged`: an untagged enum hides the table's own errors (an unknown or
// missing key) behind "did not match any variant".
impl<'de> Deserialize<'de> for MapperConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapperVisitor;
        impl<'de> serde::de::Visitor<'de> for MapperVisitor {
            type Value = MapperConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a built-in mapper's name or a generic mapper table")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<MapperConfig, E> {
                Ok(MapperConfig::Builtin(name.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<MapperConfig, A::Error> {
                GenericMapperConfig::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|generic| MapperConfig::Generic(Box::new(generic)))
            }
        }
        deserializer.deserialize_any(MapperVisitor)
    }
}

/// The generic mapper: JSON pointers (RFC 6901) into the body, and provider type → lifecycle kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericMapperConfig {
    /// Where the provider's event type is, e.g. `/type`.
    pub event_type: String,
    /// Where the video's id is, e.g. `/data/asset_id`.
    pub video_id: String,
    /// Where the event's id is; absent: a signed delivery id, else a hash of the raw body.
    #[serde(default)]
    pub event_id: Option<String>,
    /// Where the event time is (RFC 3339 or Unix seconds/milliseconds); absent: arrival time.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Where a `progress` event's percent is (number or numeric string).
    #[serde(default)]
    pub progress: Option<String>,
    /// Where a `failed` event's reason is.
    #[serde(default)]
    pub error: Option<String>,
    /// A value kept as the event's metadata.
    #[serde(default)]
    pub metadata: Option<String>,
    #[serde(default)]
    pub playback_url: Option<String>,
    #[serde(default)]
    pub thumbnail: Option<String>,
    /// Provider event type → `uploaded | processing_started | progress | processing_completed |
    /// ready | failed | deleted`; types not listed are ignored (kept in the audit log).
    #[serde(default)]
    pub types: std::collections::BTreeMap<String, String>,
}

fn default_tolerance_secs() -> u64 {
    300
}

/// An hour: long past any upload or transcode a provider finishes without saying so.
pub const DEFAULT_STALL_AFTER_SECS: u64 = 3600;

fn default_stall_after_secs() -> u64 {
    DEFAULT_STALL_AFTER_SECS
}

fn default_poll_interval_secs() -> u64 {
    60
}

fn default_poll_max_backoff_secs() -> u64 {
    900
}

fn default_poll_concurrency() -> usize {
    4
}

fn default_poll_timeout_secs() -> u64 {
    10
}

/// Start-up stops on this, naming the key and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value of the file or of an environment variable does not fit the config's shape.
    #[error(
        "config: {}{reason} (in {origin})",
        .key.as_ref().map(|key| format!("{key}: ")).unwrap_or_default()
    )]
    Parse {
        /// `limits.max_body_bytes` for a file, the variable's name for the environment; none
        /// for a file that is not TOML at all (the reason then shows the line).
        key: Option<String>,
        reason: String,
        /// The file's path, or which environment variables.
        origin: String,
    },
    /// Values that fit the shape but not the service; all of them, not only the first.
    #[error("config: {}", ConfigIssue::list(.0))]
    Invalid(Vec<ConfigIssue>),
}

/// One key whose value the service cannot run with, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub key: String,
    pub reason: String,
}

impl ConfigIssue {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> ConfigIssue {
        ConfigIssue {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// `key: reason` for one; one per line after a count for several.
    fn list(issues: &[ConfigIssue]) -> String {
        match issues {
            [one] => format!("{}: {}", one.key, one.reason),
            many => {
                let lines: Vec<String> = many
                    .iter()
                    .map(|issue| format!("\n  {}: {}", issue.key, issue.reason))
                    .collect();
                format!("{} problems:{}", many.len(), lines.concat())
            }
        }
    }
}

impl From<figment::Error> for ConfigError {
    /// figment's own message names the key with its profile (`default.listen`), and an
    /// environment variable by a key no one set (`LIMITS.MAX_BODY_BYTES`): this names it as the
    /// operator wrote it.
    fn from(error: figment::Error) -> ConfigError {
        let metadata = error.metadata.as_ref();
        let from_environment =
            metadata.is_some_and(|m| m.source.is_none() && m.name.contains("environment variable"));
        let key = if error.path.is_empty() {
            None
        } else if from_environment {
            Some(format!(
                "{ENV_PREFIX}{}",
                error.path.join("__").to_uppercase()
            ))
        } else {
            Some(error.path.join("."))
        };
        let origin = match metadata {
            Some(figment::Metadata {
                source: Some(figment::Source::File(path)),
                ..
            }) => path.display().to_string(),
            Some(metadata) => metadata.name.to_string(),
            None => "the built-in defaults".to_owned(),
        };
        ConfigError::Parse {
            key,
            reason: error.kind.to_string().trim_end().to_owned(),
            origin,
        }
    }
}

const DEFAULTS: &str = r#"
listen = "127.0.0.1:8080"
store = "sqlite://data/video-status.db"
"#;

/// Overrides given on the command line, applied last.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}

impl Config {
    /// Defaults, then `file` (if any), then the environment, then `overrides`; validated.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Invalid(vec![ConfigIssue::new(
                    format!("--config ({CONFIG_FILE_VARIABLE})"),
                    format!("file {} does not exist", path.display()),
                )]));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let config: Config = figment
            .merge(
                Env::prefixed(ENV_PREFIX)
                    .filter(|key| {
                        !COMMAND_LINE_VARIABLES.iter().any(|variable| {
                            variable[ENV_PREFIX.len()..].eq_ignore_ascii_case(key.as_str())
                        })
                    })
                    .split("__"),
            )
            .merge(Serialized::defaults(overrides))
            .extract()?;
        config.validate()?;
        Ok(config)
    }

    /// The config `serve` runs with when it is given no file: the embedded store, a `demo`
    /// provider on the public [`DEMO_SECRET`] and the [`DEMO_PROVIDERS`].
    pub fn with_demo_provider(mut self) -> Config {
        if self.providers.is_empty() {
            self.providers.push(ProviderConfig::new(
                "demo",
                SchemeName::Standard,
                vec![Secret::new(DEMO_SECRET)],
            ));
            self.providers
                .extend(DEMO_PROVIDERS.iter().map(DemoProvider::config));
        }
        self
    }

    /// Every problem at once, so that an operator fixes them in one go.
    fn validate(&self) -> Result<(), ConfigError> {
        let mut issues: Vec<ConfigIssue> = Vec::new();
        let mut invalid = |key: &str, reason: &str| issues.push(ConfigIssue::new(key, reason));
        if self.limits.max_body_bytes == 0 {
            invalid("limits.max_body_bytes", "must be greater than 0");
        }
        if self.limits.max_pending_per_video == 0 || self.limits.max_pending_total == 0 {
            invalid("limits.max_pending_*", "must be greater than 0");
        }
        if self.sse.keep_alive_secs == 0 {
            invalid("sse.keep_alive_secs", "must be greater than 0");
        }
        if self.sse.global_buffer == 0 || self.sse.replay_horizon == 0 {
            invalid(
                "sse.global_buffer / sse.replay_horizon",
                "must be greater than 0",
            );
        }
        if let Some(secret) = &self.auth.subscriber_jwt_secret {
            if secret.expose().len() < 32 {
                invalid(
                    "auth.subscriber_jwt_secret",
                    "must be at least 32 characters",
                );
            }
        }
        for origin in &self.http.cors_origins {
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                invalid(
                    "http.cors_origins",
                    &format!("{origin:?} is not an origin like https://app.example or \"*\""),
                );
            }
        }
        if self.actors.idle_timeout_secs == 0 {
            invalid("actors.idle_timeout_secs", "must be greater than 0");
        }
        if let Some(token) = &self.auth.admin_token {
            if token.expose().len() < 16 {
                invalid("auth.admin_token", "must be at least 16 characters");
            }
        }
        if self.reconcile.sweep_interval_ms == 0 {
            invalid("reconcile.sweep_interval_ms", "must be greater than 0");
        }
        if let Some((key, reason)) = self.telemetry.problem() {
            invalid(&format!("telemetry.{key}"), &reason);
        }
        let mut names = std::collections::HashSet::new();
        for (i, provider) in self.providers.iter().enumerate() {
            if !names.insert(provider.name.as_str()) {
                invalid(
                    &format!("provider[{i}].name"),
                    &format!("provider {:?} is configured twice", provider.name),
                );
            }
            if provider.stall_after_secs == 0 {
                invalid(
                    &format!("provider[{i}].stall_after_secs"),
                    "must be greater than 0",
                );
            }
            if let Some((key, reason)) = provider.poll.as_ref().and_then(PollConfig::problem) {
                invalid(&format!("provider[{i}].poll.{key}"), &reason);
            }
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(issues))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROVIDER: &str = r#"
[[provider]]
name = "cf"
scheme = "hmac-sha256"
secrets = ["a-shared-secret"]
"#;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("video-status.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load(Some(&path), &Overrides::default())
    }

    fn poll_error(table: &str) -> String {
        let toml = format!("{PROVIDER}\n[provider.poll]\n{table}\n");
        match load(&toml) {
            Ok(_) => panic!("accepted:\n{toml}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn every_invalid_value_is_named_at_once() {
        let one = load("[limits]\nmax_body_bytes = 0\n")
            .unwrap_err()
            .to_string();
        assert_eq!(one, "config: limits.max_body_bytes: must be greater than 0");
        let several = load(
            "[limits]\nmax_body_bytes = 0\n[actors]\nidle_timeout_secs = 0\n\
             [auth]\nadmin_token = \"short\"\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            several,
            "config: 3 problems:\n  limits.max_body_bytes: must be greater than 0\n  \
             actors.idle_timeout_secs: must be greater than 0\n  \
             auth.admin_token: must be at least 16 characters"
        );
    }

    #[test]
    fn reconciliation_keys_default_to_an_hour_and_no_polling() {
        let config = load(PROVIDER).unwrap();
        assert_eq!(config.providers[0].stall_after_secs, 3600);
        assert_eq!(config.providers[0].poll, None);
        assert_eq!(config.reconcile.sweep_interval_ms, 5000);
    }

    #[test]
    fn a_poll_table_takes_its_defaults_and_keeps_its_secrets_out_of_debug() {
        let config = load(&format!(
            "{PROVIDER}stall_after_secs = 90\n[provider.poll]\n\
             url = \"https://api.example/videos/{{id}}\"\nbearer_token = \"tok-9f3e2a\"\n"
        ))
        .unwrap();
        assert_eq!(config.providers[0].stall_after_secs, 90);
        let poll = config.providers[0].poll.as_ref().unwrap();
        assert_eq!(
            (
                poll.interval_secs,
                poll.max_backoff_secs,
                poll.concurrency,
                poll.timeout_secs
            ),
            (60, 900, 4, 10)
        );
        assert!(!format!("{config:?}").contains("tok-9f3e2a"));
    }

    #[test]
    fn poll_mistakes_name_the_key() {
        let cases = [
            ("url = \"ftp://x/{id}\"", "provider[0].poll.url"),
            ("url = \"https://api.example/videos\"", "provider[0].poll.url"),
            (
                "url = \"https://a/{id}\"\nusername = \"u\"",
                "provider[0].poll.username",
            ),
            (
                "url = \"https://a/{id}\"\nusername = \"u\"\npassword = \"p\"\nbearer_token = \"t\"",
                "provider[0].poll.bearer_token",
            ),
            (
                "url = \"https://a/{id}\"\nbody_pointer = \"result\"",
                "provider[0].poll.body_pointer",
            ),
            (
                "url = \"https://a/{id}\"\nconcurrency = 0",
                "provider[0].poll.concurrency",
            ),
            (
                "url = \"https://a/{id}\"\ninterval_secs = 60\nmax_backoff_secs = 30",
                "provider[0].poll.max_backoff_secs",
            ),
            ("url = \"https://a/{id}\"\nretries = 3", "retries"),
        ];
        for (table, key) in cases {
            let error = poll_error(table);
            assert!(error.contains(key), "{table:?}: {error}");
        }
    }

    #[test]
    fn a_zero_deadline_or_sweep_interval_is_refused() {
        let error = load(&format!("{PROVIDER}stall_after_secs = 0\n"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("provider[0].stall_after_secs"), "{error}");
        let error = load("[reconcile]\nsweep_interval_ms = 0\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("reconcile.sweep_interval_ms"), "{error}");
    }

    #[test]
    fn telemetry_is_off_by_default_and_takes_an_endpoint_headers_and_a_ratio() {
        let config = load("").unwrap();
        assert_eq!(config.telemetry.otlp_endpoint, None);
        assert_eq!(config.telemetry.sample_ratio, 1.0);
        let config = load(
            "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\nsample_ratio = 0.25\n\
             service_name = \"status-eu\"\n\
             [telemetry.otlp_headers]\nx-api-key = \"k-7c1d9e\"\n",
        )
        .unwrap();
        let telemetry = &config.telemetry;
        assert_eq!(
            telemetry.otlp_endpoint.as_deref(),
            Some("http://127.0.0.1:4318")
        );
        assert_eq!(telemetry.sample_ratio, 0.25);
        assert_eq!(telemetry.service_name.as_deref(), Some("status-eu"));
        assert_eq!(telemetry.otlp_headers["x-api-key"].expose(), "k-7c1d9e");
        assert!(!format!("{config:?}").contains("k-7c1d9e"));
    }

    #[test]
    fn telemetry_mistakes_name_the_key() {
        let cases = [
            (
                "otlp_endpoint = \"localhost:4318\"",
                "telemetry.otlp_endpoint",
            ),
            (
                "otlp_endpoint = \"grpc://c:4317\"",
                "telemetry.otlp_endpoint",
            ),
            ("sample_ratio = 1.5", "telemetry.sample_ratio"),
            ("sample_ratio = -0.1", "telemetry.sample_ratio"),
            (
                "[telemetry.otlp_headers]\n\"bad header\" = \"v\"",
                "telemetry.otlp_headers.bad header",
            ),
        ];
        for (table, key) in cases {
            let error = load(&format!("[telemetry]\n{table}\n"))
                .unwrap_err()
                .to_string();
            assert!(error.contains(key), "{table}: {error}");
        }
    }
}
