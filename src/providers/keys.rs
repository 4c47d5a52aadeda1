//! Ed25519 key material of the `ed25519` and `standard` (`v1a`) schemes: decoding configured public
//! and private keys, and the key set of an `ed25519` provider, whose JWKS (a file or a URL) is
//! fetched, cached and refreshed here. Owns that fetch and its rate limit; knows no headers and no
//! signed strings.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use serde::Deserialize;
use tokio::time::Instant;
use tracing::{info, warn};

use super::ConfigIssue;
use crate::config::ProviderConfig;

/// How long a fetched key set is used before it is fetched again. fal.ai asks for at most 24 h.
const DEFAULT_TTL_SECS: u64 = 3600;
/// Fewest seconds between two fetches caused by signatures no cached key verifies.
const DEFAULT_MIN_REFRESH_SECS: u64 = 30;
/// A key set is a few hundred bytes; anything much larger is not one.
const MAX_JWKS_BYTES: usize = 256 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

// ---- configured keys ----

/// The bytes of a key written as 64 hex digits or as base64 (standard or URL-safe alphabet,
/// padded or not), the spellings providers and their tools print keys in.
pub(crate) fn decode_key_text(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex::decode(text).ok();
    }
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

/// A public key from its 32 bytes.
pub(crate) fn public_key(bytes: &[u8]) -> Result<VerifyingKey, &'static str> {
    let bytes: &[u8; 32] = bytes
        .try_into()
        .map_err(|_| "is not 32 bytes (an Ed25519 public key)")?;
    VerifyingKey::from_bytes(bytes).map_err(|_| "is not a valid Ed25519 public key")
}

/// A private key from its 32-byte seed, or from the 64 bytes `seed || public key` that libsodium
/// and Go print (the public half must then be the seed's).
pub(crate) fn signing_key(bytes: &[u8]) -> Result<SigningKey, &'static str> {
    let seed: &[u8; 32] = match bytes.len() {
        32 | 64 => bytes[..32].try_into().expect("at least 32 bytes"),
        _ => return Err("is not a 32-byte Ed25519 seed (or 64 bytes of seed and public key)"),
    };
    let key = SigningKey::from_bytes(seed);
    if bytes.len() == 64 && key.verifying_key().as_bytes()[..] != bytes[32..] {
        return Err("holds a public key that is not the seed's");
    }
    Ok(key)
}

/// Whether any of `keys` made any of `signatures` over `message`. Strict verification: the
/// signatures an honest signer makes always pass it, and it refuses the malleable and small-order
/// forms that lenient verifiers let through.
pub(crate) fn any_verifies(
    keys: &[VerifyingKey],
    message: &[u8],
    signatures: &[Signature],
) -> bool {
    keys.iter().any(|key| {
        signatures
            .iter()
            .any(|signature| key.verify_strict(message, signature).is_ok())
    })
}

// ---- key set ----

/// The public keys an `ed25519` provider trusts: the configured ones (and those of its private
/// keys), plus its JWKS, if it has one.
pub(crate) struct KeySet {
    fixed: Vec<VerifyingKey>,
    jwks: Option<Jwks>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("fixed_keys", &self.fixed.len())
            .field("jwks", &self.jwks)
            .finish()
    }
}

impl KeySet {
    /// `fixed` keys and the JWKS of `config`, if it names one (loaded now when it is a file).
    /// Refuses a set that could never verify anything.
    pub(crate) fn from_config(
        config: &ProviderConfig,
        fixed: Vec<VerifyingKey>,
    ) -> Result<KeySet, ConfigIssue> {
        let jwks = Jwks::from_config(config)?;
        if fixed.is_empty() && jwks.is_none() {
            return Err(ConfigIssue::new(
                "public_keys",
                "the ed25519 scheme needs a key: public_keys, jwks, or a private key in secrets",
            ));
        }
        Ok(KeySet { fixed, jwks })
    }

    /// Whether a trusted key made any of `signatures` over `message`. A JWKS is fetched first
    /// when its cached copy has expired, and once more (rate-limited) when no cached key matches:
    /// the provider may have rotated its keys since.
    pub(crate) async fn verifies(&self, message: &[u8], signatures: &[Signature]) -> bool {
        if any_verifies(&self.fixed, message, signatures) {
            return true;
        }
        let Some(jwks) = &self.jwks else {
            return false;
        };
        let seen = jwks.fresh_snapshot().await;
        if any_verifies(&seen.keys, message, signatures) {
            return true;
        }
        if !jwks.refresh_after_miss(seen.generation).await {
            return false;
        }
        any_verifies(&jwks.snapshot().keys, message, signatures)
    }
}

/// Where a JWKS comes from.
enum JwksSource {
    File(PathBuf),
    Url {
        url: reqwest::Url,
        client: reqwest::Client,
    },
}

impl fmt::Display for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksSource::File(path) => write!(f, "file {}", path.display()),
            JwksSource::Url { url, .. } => write!(f, "URL {url}"),
        }
    }
}

/// One version of the fetched keys.
struct Snapshot {
    keys: Vec<VerifyingKey>,
    /// When these keys were fetched; `None` before the first successful fetch.
    fetched_at: Option<Instant>,
    /// Bumped by every successful fetch, so a request can tell whether the set changed since it
    /// looked.
    generation: u64,
}

/// A cached JWKS. Reads take a short lock on the current snapshot; fetches are one at a time
/// (the async mutex is held across the fetch) and at most one per `min_refresh` when caused by
/// an unknown signature.
pub(crate) struct Jwks {
    source: JwksSource,
    ttl: Duration,
    min_refresh: Duration,
    current: RwLock<Arc<Snapshot>>,
    /// When the last fetch started, successful or not.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
}

impl fmt::Debug for Jwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwks")
            .field("source", &self.source.to_string())
            .field("ttl", &self.ttl)
            .field("min_refresh", &self.min_refresh)
            .finish()
    }
}

/// Why a fetch of a JWKS gave no keys; the cached keys stay in use.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JwksError {
    #[error("cannot be read: {0}")]
    Read(#[source] std::io::Error),
    #[error("cannot be fetched: {0}")]
    Fetch(#[source] reqwest::Error),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("is not a JWKS (a JSON object with a keys array): {0}")]
    NotJwks(#[source] serde_json::Error),
    #[error("holds no usable Ed25519 key (kty OKP, crv Ed25519, x of 32 bytes)")]
    NoUsableKey,
}

impl Jwks {
    /// The JWKS named by `config.jwks`, if any. A file is loaded now, so a bad one stops start-up;
    /// a URL is fetched by the first request that needs it (a key server that is down must not
    /// keep the service from starting).
    fn from_config(config: &ProviderConfig) -> Result<Option<Jwks>, ConfigIssue> {
        let Some(location) = config.jwks.as_deref() else {
            for (key, set) in [
                ("jwks_ttl_secs", config.jwks_ttl_secs.is_some()),
                (
                    "jwks_min_refresh_secs",
                    config.jwks_min_refresh_secs.is_some(),
                ),
            ] {
                if set {
                    return Err(ConfigIssue::new(key, "is only read together with jwks"));
                }
            }
            return Ok(None);
        };
        let ttl = positive_secs("jwks_ttl_secs", config.jwks_ttl_secs, DEFAULT_TTL_SECS)?;
        let min_refresh = positive_secs(
            "jwks_min_refresh_secs",
            config.jwks_min_refresh_secs,
            DEFAULT_MIN_REFRESH_SECS,
        )?;
        if min_refresh > ttl {
            return Err(ConfigIssue::new(
                "jwks_min_refresh_secs",
                "must not be greater than jwks_ttl_secs",
            ));
        }
        let source = jwks_source(location)?;
        let now = Instant::now();
        let (snapshot, last_attempt) = match &source {
            JwksSource::File(path) => {
                let keys = std::fs::read(path)
                    .map_err(JwksError::Read)
                    .and_then(|bytes| parse_jwks(&bytes))
                    .map_err(|e| ConfigIssue::new("jwks", format!("{source} {e}")))?;
                let snapshot = Snapshot {
                    keys,
                    fetched_at: Some(now),
                    generation: 1,
                };
                (snapshot, Some(now))
            }
            JwksSource::Url { .. } => {
                let empty = Snapshot {
                    keys: Vec::new(),
                    fetched_at: None,
                    generation: 0,
                };
                (empty, None)
            }
        };
        Ok(Some(Jwks {
            source,
            ttl,
            min_refresh,
            current: RwLock::new(Arc::new(snapshot)),
            last_attempt: tokio::sync::Mutex::new(last_attempt),
        }))
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc: the value is whole.
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The current keys, fetched again first when they are older than the TTL (or were never
    /// fetched). While another request is fetching, expired keys are used rather than waited on.
    async fn fresh_snapshot(&self) -> Arc<Snapshot> {
        let seen = self.snapshot();
        if seen
            .fetched_at
            .is_some_and(|fetched_at| fetched_at.elapsed() < self.ttl)
        {
            return seen;
        }
        let attempt = if seen.fetched_at.is_some() {
            match self.last_attempt.try_lock() {
                Ok(guard) => guard,
                Err(_) => return seen,
            }
        } else {
            // Nothing to verify with yet: wait for the fetch in progress.
            self.last_attempt.lock().await
        };
        self.fetch_unless_recent(attempt, seen.generation).await;
        self.snapshot()
    }

    /// After no key of generation `seen` verified a signature: fetches again unless the last
    /// fetch was under `min_refresh` ago. True when the keys changed since `seen` (by this fetch
    /// or by one another request made meanwhile).
    async fn refresh_after_miss(&self, seen: u64) -> bool {
        let attempt = self.last_attempt.lock().await;
        self.fetch_unless_recent(attempt, seen).await;
        self.snapshot().generation != seen
    }

    async fn fetch_unless_recent(
        &self,
        mut last_attempt: tokio::sync::MutexGuard<'_, Option<Instant>>,
        seen: u64,
    ) {
        if self.snapshot().generation != seen {
            // Another request fetched while this one waited for the lock.
            return;
        }
        if last_attempt.is_some_and(|at| at.elapsed() < self.min_refresh) {
            return;
        }
        let started = Instant::now();
        *last_attempt = Some(started);
        match self.fetch().await {
            Ok(keys) => {
                info!(source = %self.source, keys = keys.len(), "JWKS fetched");
                let mut current = self
                    .current
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let generation = current.generation + 1;
                *current = Arc::new(Snapshot {
                    keys,
                    fetched_at: Some(started),
                    generation,
                });
            }
            Err(error) => {
                warn!(source = %self.source, error = %error, "JWKS fetch failed; keeping the cached keys");
            }
        }
    }

    async fn fetch(&self) -> Result<Vec<VerifyingKey>, JwksError> {
        let bytes = match &self.source {
            JwksSource::File(path) => tokio::fs::read(path).await.map_err(JwksError::Read)?,
            JwksSource::Url { url, client } => fetch_url(client, url.clone()).await?,
        };
        parse_jwks(&bytes)
    }
}

async fn fetch_url(client: &reqwest::Client, url: reqwest::Url) -> Result<Vec<u8>, JwksError> {
    let mut response = client.get(url).send().await.map_err(JwksError::Fetch)?;
    if !response.status().is_success() {
        return Err(JwksError::Status(response.status().as_u16()));
    }
    if response
        .content_length()
        .is_some_and(|length| length > MAX_JWKS_BYTES as u64)
    {
        return Err(JwksError::TooLarge);
    }
    // Read chunk by chunk: a body without a length must not grow without bound either.
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(JwksError::Fetch)? {
        if bytes.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn positive_secs(key: &str, value: Option<u64>, default: u64) -> Result<Duration, ConfigIssue> {
    match value.unwrap_or(default) {
        0 => Err(ConfigIssue::new(key, "must be greater than 0")),
        secs => Ok(Duration::from_secs(secs)),
    }
}

/// An `https://` URL, an `http://` URL on a loopback host (a local sidecar, tests), or a path.
fn jwks_source(location: &str) -> Result<JwksSource, ConfigIssue> {
    let invalid = |reason: &str| ConfigIssue::new("jwks", reason);
    if location.trim().is_empty() {
        return Err(invalid("is empty"));
    }
    if !location.contains("://") {
        return Ok(JwksSource::File(PathBuf::from(location)));
    }
    let url = reqwest::Url::parse(location).map_err(|_| invalid("is not a valid URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(invalid(
                "http:// is accepted only for a loopback host: use https:// (keys fetched in \
                 clear text could be swapped in transit)",
            ))
        }
        _ => return Err(invalid("must be an https:// URL or a file path")),
    }
    let mut client = crate::http_client::client_builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT);
    if is_loopback(&url) {
        // A proxy from the environment cannot reach this machine's loopback.
        client = client.no_proxy();
    }
    let client = client
        .build()
        .map_err(|e| invalid(&format!("cannot build an HTTP client: {e}")))?;
    Ok(JwksSource::Url { url, client })
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    // IPv6 hosts come bracketed, as in the URL.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

/// The members of a JWK this service reads; others are ignored.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    crv: Option<String>,
    x: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    alg: Option<String>,
}

/// The Ed25519 signing keys of a JWKS. Keys of other types, of other uses and unreadable ones are
/// skipped (a key server may publish keys for other purposes); a set with none left is an error.
fn parse_jwks(bytes: &[u8]) -> Result<Vec<VerifyingKey>, JwksError> {
    let set: JwkSet = serde_json::from_slice(bytes).map_err(JwksError::NotJwks)?;
    let keys: Vec<VerifyingKey> = set
        .keys
        .iter()
        .filter(|jwk| {
            jwk.kty == "OKP"
                && jwk.crv.as_deref() == Some("Ed25519")
                && jwk.usage.as_deref().is_none_or(|usage| usage == "sig")
                && jwk
                    .alg
                    .as_deref()
                    .is_none_or(|alg| alg == "EdDSA" || alg == "Ed25519")
        })
        .filter_map(|jwk| {
            let x = jwk.x.as_deref()?;
            let bytes = URL_SAFE_NO_PAD.decode(x.trim_end_matches('=')).ok()?;
            public_key(&bytes).ok()
        })
        .collect();
    if keys.is_empty() {
        return Err(JwksError::NoUsableKey);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ed25519_dalek::{Signer, SigningKey};

    use super::*;
    use crate::config::{ProviderConfig, SchemeName};

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn jwk(key: &SigningKey) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
        })
    }

    fn jwks_text(keys: &[&SigningKey]) -> String {
        let keys: Vec<_> = keys.iter().map(|k| jwk(k)).collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    fn jwks_config(path: &std::path::Path) -> ProviderConfig {
        let mut config = ProviderConfig::new("fal", SchemeName::Ed25519, Vec::new());
        config.jwks = Some(path.display().to_string());
        config.jwks_ttl_secs = Some(600);
        config.jwks_min_refresh_secs = Some(30);
        config
    }

    fn signed_by(key: &SigningKey) -> (Vec<u8>, Vec<Signature>) {
        let message = b"request\nuser\n1795430000\nbody-hash".to_vec();
        let signature = key.sign(&message);
        (message, vec![signature])
    }

    async fn verifies(set: &KeySet, key: &SigningKey) -> bool {
        let (message, signatures) = signed_by(key);
        set.verifies(&message, &signatures).await
    }

    #[test]
    fn key_text_is_read_as_hex_or_any_base64() {
        let bytes: Vec<u8> = (0..32).collect();
        for text in [
            hex::encode(&bytes),
            hex::encode(&bytes).to_ascii_uppercase(),
            STANDARD.encode(&bytes),
            STANDARD_NO_PAD.encode(&bytes),
            URL_SAFE.encode(&bytes),
            URL_SAFE_NO_PAD.encode(&bytes),
        ] {
            assert_eq!(decode_key_text(&text), Some(bytes.clone()), "{text}");
        }
        assert_eq!(decode_key_text("not a key!"), None);
    }

    #[test]
    fn a_64_byte_private_key_must_hold_its_own_public_key() {
        let seed = [7; 32];
        let public = SigningKey::from_bytes(&seed).verifying_key();
        let mut full = seed.to_vec();
        full.extend_from_slice(public.as_bytes());
        assert_eq!(signing_key(&full).map(|k| k.verifying_key()), Ok(public));
        full[40] ^= 1;
        assert!(signing_key(&full).is_err());
        assert!(signing_key(&[7; 31]).is_err());
    }

    #[test]
    fn jwks_keeps_only_ed25519_signing_keys() {
        let good = key(1);
        let text = serde_json::json!({"keys": [
            {"kty": "RSA", "n": "xyz", "e": "AQAB"},
            {"kty": "OKP", "crv": "X25519", "x": URL_SAFE_NO_PAD.encode([9u8; 32])},
            {"kty": "OKP", "crv": "Ed25519", "use": "enc", "x": URL_SAFE_NO_PAD.encode(key(2).verifying_key().as_bytes())},
            {"kty": "OKP", "crv": "Ed25519", "x": "too-short"},
            {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "k1",
             "x": URL_SAFE_NO_PAD.encode(good.verifying_key().as_bytes())},
        ]})
        .to_string();
        assert_eq!(
            parse_jwks(text.as_bytes()).expect("one usable key"),
            vec![good.verifying_key()]
        );
        assert!(matches!(
            parse_jwks(br#"{"keys": [{"kty": "RSA"}]}"#),
            Err(JwksError::NoUsableKey)
        ));
        assert!(matches!(parse_jwks(b"[]"), Err(JwksError::NotJwks(_))));
    }

    #[test]
    fn jwks_locations_are_checked_at_config_time() {
        let mut config = ProviderConfig::new("fal", SchemeName::Ed25519, Vec::new());
        for (location, reason) in [
            (
                "http://keys.example/jwks.json",
                "http:// is accepted only for a loopback host",
            ),
            (
                "ftp://keys.example/jwks.json",
                "must be an https:// URL or a file path",
            ),
            ("https://", "is not a valid URL"),
            (
                "/nonexistent/jwks.json",
                "file /nonexistent/jwks.json cannot be read",
            ),
        ] {
            config.jwks = Some(location.into());
            let issue = KeySet::from_config(&config, Vec::new()).expect_err(location);
            assert_eq!(issue.key, "jwks");
            assert!(
                issue.reason.contains(reason),
                "{location}: {}",
                issue.reason
            );
        }
        for location in [
            "https://rest.fal.ai/.well-known/jwks.json",
            "http://127.0.0.1:9/jwks.json",
            "http://localhost:9/jwks.json",
            "http://[::1]:9/jwks.json",
        ] {
            config.jwks = Some(location.into());
            assert!(
                KeySet::from_config(&config, Vec::new()).is_ok(),
                "{location}"
            );
        }
    }

    #[test]
    fn refresh_settings_need_a_jwks_and_sane_values() {
        let mut config = ProviderConfig::new("fal", SchemeName::Ed25519, Vec::new());
        config.jwks_ttl_secs = Some(60);
        let fixed = vec![key(1).verifying_key()];
        let issue = KeySet::from_config(&config, fixed.clone()).expect_err("ttl without jwks");
        assert_eq!(issue.key, "jwks_ttl_secs");
        config.jwks = Some("https://keys.example/jwks.json".into());
        config.jwks_min_refresh_secs = Some(120);
        let issue = KeySet::from_config(&config, fixed.clone()).expect_err("min over ttl");
        assert_eq!(issue.key, "jwks_min_refresh_secs");
        config.jwks_ttl_secs = Some(0);
        let issue = KeySet::from_config(&config, fixed).expect_err("zero ttl");
        assert_eq!(issue.key, "jwks_ttl_secs");
    }

    #[test]
    fn a_key_set_without_any_key_is_refused() {
        let config = ProviderConfig::new("fal", SchemeName::Ed25519, Vec::new());
        let issue = KeySet::from_config(&config, Vec::new()).expect_err("no keys");
        assert_eq!(issue.key, "public_keys");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_key_refetches_the_file_at_most_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let (old, new) = (key(1), key(2));
        std::fs::write(&path, jwks_text(&[&old])).unwrap();
        let set = KeySet::from_config(&jwks_config(&path), Vec::new()).expect("valid jwks");
        assert!(verifies(&set, &old).await);

        // The provider rotates. Loaded at start-up just now: too soon to fetch again.
        std::fs::write(&path, jwks_text(&[&new])).unwrap();
        assert!(!verifies(&set, &new).await);

        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(verifies(&set, &new).await, "the miss fetched the new set");
        // The old key went with the old set, and the next fetch is again 30 s away.
        assert!(!verifies(&set, &old).await);
        std::fs::write(&path, jwks_text(&[&old, &new])).unwrap();
        assert!(!verifies(&set, &old).await);
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_set_is_fetched_again_before_it_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let (first, second) = (key(1), key(2));
        std::fs::write(&path, jwks_text(&[&first])).unwrap();
        let set = KeySet::from_config(&jwks_config(&path), Vec::new()).expect("valid jwks");
        std::fs::write(&path, jwks_text(&[&second])).unwrap();

        tokio::time::advance(Duration::from_secs(599)).await;
        assert!(verifies(&set, &first).await, "still within the TTL");
        tokio::time::advance(Duration::from_secs(2)).await;
        // The TTL fetch replaced the set: the first key no longer verifies, although a miss
        // could not have caused a fetch (the TTL fetch just happened).
        assert!(!verifies(&set, &first).await);
        assert!(verifies(&set, &second).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_fetch_keeps_the_cached_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let first = key(1);
        std::fs::write(&path, jwks_text(&[&first])).unwrap();
        let set = KeySet::from_config(&jwks_config(&path), Vec::new()).expect("valid jwks");
        std::fs::write(&path, "not json").unwrap();
        tokio::time::advance(Duration::from_secs(601)).await;
        assert!(verifies(&set, &first).await);
        std::fs::remove_file(&path).unwrap();
        tokio::time::advance(Duration::from_secs(601)).await;
        assert!(verifies(&set, &first).await);
    }

    #[tokio::test]
    async fn fixed_keys_verify_beside_the_jwks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let (inline, listed, stranger) = (key(1), key(2), key(3));
        std::fs::write(&path, jwks_text(&[&listed])).unwrap();
        let set =
            KeySet::from_config(&jwks_config(&path), vec![inline.verifying_key()]).expect("valid");
        assert!(verifies(&set, &inline).await);
        assert!(verifies(&set, &listed).await);
        assert!(!verifies(&set, &stranger).await);
    }
}
