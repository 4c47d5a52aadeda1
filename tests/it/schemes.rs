//! Each signature scheme end to end: the real server with a provider of that scheme configured
//! takes a webhook signed the provider's way (200) and refuses a tampered one (401 and the code).
//! Bodies are native-format (each entry says `mapper = "native"`, as a scheme's default mapper is
//! its provider's own): mapping these providers' payloads is tested in `mappers.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use serde_json::{json, Value};
use warp::Filter;

use crate::support::{eventually, native, spawn_app_with, Answer, TestApp};
use video_status::config::{ProviderConfig, SchemeName, Secret};
use video_status::providers::{Provider, Providers};

/// A provider with its entry's defaults, `secrets` and the native mapper.
fn entry(name: &str, scheme: SchemeName, secrets: &[&str]) -> ProviderConfig {
    ProviderConfig {
        mapper: Some("native".into()),
        ..ProviderConfig::new(
            name,
            scheme,
            secrets.iter().map(|s| Secret::new(*s)).collect(),
        )
    }
}

/// Signs as a sender holding `config`'s first secret would; the server may hold other keys.
fn sender(config: ProviderConfig) -> Arc<Provider> {
    let name = config.name.clone();
    Providers::from_config(&[config])
        .expect("valid sender config")
        .get(&name)
        .expect("registered under its name")
}

fn body_of(event_id: &str, video_id: &str) -> Vec<u8> {
    serde_json::to_vec(&native(
        event_id,
        "uploaded",
        video_id,
        "2026-11-23T10:00:00Z",
    ))
    .unwrap()
}

/// Posts a body signed by `sender` (now), then the same signature over a changed body.
async fn signed_then_tampered(app: &TestApp, provider: &str, sender: &Provider) {
    let body = body_of("evt_ok", "vid_ok");
    let headers = sender
        .sign("evt_ok", Utc::now(), &body)
        .expect("sender signs");
    let answer = app.post_raw(provider, &headers, body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["status"], "accepted", "{}", answer.text);
    assert_eq!(app.get("/videos/vid_ok").await.body["status"], "uploaded");

    let body = body_of("evt_bad", "vid_bad");
    let headers = sender
        .sign("evt_bad", Utc::now(), &body)
        .expect("sender signs");
    let tampered = String::from_utf8(body)
        .unwrap()
        .replace("vid_bad", "vid_evil");
    let answer = app
        .post_raw(provider, &headers, tampered.into_bytes())
        .await;
    assert_refused(&answer, "no_matching_signature");
    assert_eq!(app.get("/videos/vid_evil").await.status, 404);
}

fn assert_refused(answer: &Answer, code: &str) {
    assert_eq!(answer.status, 401, "{}", answer.text);
    assert_eq!(answer.body["error"], code, "{}", answer.text);
}

#[tokio::test]
async fn stripe_signed_webhook_is_accepted_and_a_tampered_one_is_401() {
    let secret = "whsec_it_stripe_5f2b9c0d7e1a";
    let app = spawn_app_with(|c| {
        c.providers.push(entry(
            "stripe",
            SchemeName::Stripe,
            &["whsec_it_old", secret],
        ))
    })
    .await;
    signed_then_tampered(
        &app,
        "stripe",
        &sender(entry("stripe", SchemeName::Stripe, &[secret])),
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn mux_signed_webhook_is_accepted_and_a_tampered_one_is_401() {
    let secret = "mux-it-signing-secret-93ab";
    let app = spawn_app_with(|c| c.providers.push(entry("mux", SchemeName::Mux, &[secret]))).await;
    let mux = sender(entry("mux", SchemeName::Mux, &[secret]));
    signed_then_tampered(&app, "mux", &mux).await;

    // The signed time is checked both ways.
    let body = body_of("evt_old", "vid_old");
    for shift in [chrono::Duration::hours(1), chrono::Duration::hours(-1)] {
        let headers = mux.sign("evt_old", Utc::now() - shift, &body).unwrap();
        let answer = app.post_raw("mux", &headers, body.clone()).await;
        assert_refused(&answer, "timestamp_out_of_tolerance");
    }
    let answer = app.post_raw("mux", &[], body).await;
    assert_refused(&answer, "missing_signature_header");
    app.stop().await;
}

#[tokio::test]
async fn cloudflare_stream_signed_webhook_is_accepted_and_a_tampered_one_is_401() {
    let secret = "85b3e1f0c2d4a6b8e0f1a3c5d7e9f0a2";
    let app = spawn_app_with(|c| {
        c.providers
            .push(entry("cloudflare", SchemeName::CloudflareStream, &[secret]))
    })
    .await;
    let cloudflare = sender(entry("cloudflare", SchemeName::CloudflareStream, &[secret]));
    signed_then_tampered(&app, "cloudflare", &cloudflare).await;

    let body = body_of("evt_x", "vid_x");
    let headers = vec![(
        "webhook-signature".to_owned(),
        "t=1795428028,v1=00".to_owned(),
    )];
    let answer = app.post_raw("cloudflare", &headers, body).await;
    assert_refused(&answer, "malformed_signature_header");
    app.stop().await;
}

/// fal-style seeds (hex), as `sign.py` takes them.
const FAL_SEED: &str = "c5a25dab2bd83f3901a573197e944f962ce26716d5d91e94da1d51f624fa65e0";
const FAL_PUBLIC_X: &str = "4eggH8kol5ytP7l2LdBSLfn24csrMWlLPwOBD9gleec";
const FAL_NEXT_SEED: &str = "1b7f3c9e5a2d4f6081a3c5e7092b4d6f8a1c3e5f7092b4d6f8a1c3e5f7092b4d";

/// The JWK `x` (base64url) of a hex seed's public key.
fn jwk_x(seed_hex: &str) -> String {
    let seed: [u8; 32] = hex::decode(seed_hex).unwrap().try_into().unwrap();
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    URL_SAFE_NO_PAD.encode(public.as_bytes())
}

#[tokio::test]
async fn ed25519_webhook_verified_with_an_inline_public_key() {
    assert_eq!(jwk_x(FAL_SEED), FAL_PUBLIC_X);
    let app = spawn_app_with(|c| {
        let mut fal = entry("fal", SchemeName::Ed25519, &[]);
        fal.public_keys = vec![jwk_x(FAL_NEXT_SEED), FAL_PUBLIC_X.into()];
        c.providers.push(fal);
    })
    .await;
    // The server holds public keys only: it cannot sign, the sender can.
    assert!(app
        .state
        .providers
        .get("fal")
        .unwrap()
        .sign("e", Utc::now(), b"")
        .is_err());
    let fal = sender(entry("fal", SchemeName::Ed25519, &[FAL_SEED]));
    signed_then_tampered(&app, "fal", &fal).await;

    // Either key verifies (rotation), and the request id is the event id.
    let next = sender(entry("fal", SchemeName::Ed25519, &[FAL_NEXT_SEED]));
    let body = body_of("ignored-body-id", "vid_next");
    let headers = next.sign("req_next", Utc::now(), &body).unwrap();
    let answer = app.post_raw("fal", &headers, body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["event_id"], "req_next", "{}", answer.text);
    app.stop().await;
}

#[tokio::test]
async fn standard_v1a_webhook_verified_with_a_whpk_public_key() {
    let public_key = "whpk_ZlN4eg7dSSqi0moX9hQUk3orrOouK3QVQSlJa248c/g=";
    let signing_key = "whsk_VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=";
    let app = spawn_app_with(|c| {
        let mut asym = entry("asym", SchemeName::Standard, &[]);
        asym.public_keys = vec![public_key.into()];
        c.providers.push(asym);
    })
    .await;
    let asym = sender(entry("asym", SchemeName::Standard, &[signing_key]));
    let headers = asym.sign("msg_v1a", Utc::now(), b"{}").unwrap();
    assert!(headers[2].1.starts_with("v1a,"), "{headers:?}");
    signed_then_tampered(&app, "asym", &asym).await;
    app.stop().await;
}

/// A key server for the test: serves whatever JWKS it currently holds, counts the fetches.
struct KeyServer {
    url: String,
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl KeyServer {
    async fn start(jwks: Value) -> KeyServer {
        let jwks = Arc::new(Mutex::new(jwks));
        let fetches = Arc::new(AtomicUsize::new(0));
        let route = warp::path!(".well-known" / "jwks.json").map({
            let (jwks, fetches) = (jwks.clone(), fetches.clone());
            move || {
                fetches.fetch_add(1, Ordering::SeqCst);
                warp::reply::json(&*jwks.lock().unwrap())
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(
            warp::serve(route)
                .incoming(listener)
                .graceful(async {
                    let _ = stopped.await;
                })
                .run(),
        );
        KeyServer {
            url: format!("http://{addr}/.well-known/jwks.json"),
            jwks,
            fetches,
            _stop: stop,
        }
    }

    fn serve(&self, jwks: Value) {
        *self.jwks.lock().unwrap() = jwks;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn jwks_of(seeds: &[&str]) -> Value {
    let keys: Vec<Value> = seeds
        .iter()
        .map(|seed| json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "x": jwk_x(seed)}))
        .collect();
    json!({ "keys": keys })
}

async fn deliver_signed_by(app: &TestApp, signer: &Provider, event_id: &str) -> Answer {
    let body = body_of(event_id, &format!("vid_{event_id}"));
    let headers = signer.sign(event_id, Utc::now(), &body).unwrap();
    app.post_raw("fal", &headers, body).await
}

#[tokio::test]
async fn ed25519_keys_from_a_jwks_url_are_fetched_cached_and_rotated() {
    const MIN_REFRESH_SECS: u64 = 2;
    let keys = KeyServer::start(jwks_of(&[FAL_SEED])).await;
    let app = spawn_app_with(|c| {
        let mut fal = entry("fal", SchemeName::Ed25519, &[]);
        fal.jwks = Some(keys.url.clone());
        fal.jwks_min_refresh_secs = Some(MIN_REFRESH_SECS);
        c.providers.push(fal);
    })
    .await;
    let current = sender(entry("fal", SchemeName::Ed25519, &[FAL_SEED]));
    let next = sender(entry("fal", SchemeName::Ed25519, &[FAL_NEXT_SEED]));
    assert_eq!(
        keys.fetches(),
        0,
        "a URL is fetched by the first request, not at start-up"
    );

    signed_then_tampered(&app, "fal", &current).await;
    let fetched = keys.fetches();
    assert!(fetched >= 1);
    for n in 0..3 {
        let answer = deliver_signed_by(&app, &current, &format!("evt_cached_{n}")).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    assert_eq!(
        keys.fetches(),
        fetched,
        "known keys are served from the cache"
    );

    // The provider rotates: a signature by the new key is unknown until a refresh picks the new
    // set up (at most one per jwks_min_refresh_secs).
    keys.serve(jwks_of(&[FAL_NEXT_SEED]));
    let (app_ref, next_ref) = (&app, &next);
    let mut attempt = 0;
    let rotated = eventually(Duration::from_secs(10), move || {
        attempt += 1;
        let event_id = format!("evt_rotated_{attempt}");
        async move { deliver_signed_by(app_ref, next_ref, &event_id).await.status == 200 }
    })
    .await;
    assert!(rotated, "the new key was picked up");

    // The old key left with the old set, and a burst of unknown signatures does not turn into a
    // burst of fetches.
    let before = keys.fetches();
    let started = std::time::Instant::now();
    for n in 0..5 {
        let answer = deliver_signed_by(&app, &current, &format!("evt_retired_{n}")).await;
        assert_refused(&answer, "no_matching_signature");
    }
    let allowed = 1 + started.elapsed().as_secs() / MIN_REFRESH_SECS;
    let made = (keys.fetches() - before) as u64;
    assert!(made <= allowed, "{made} fetches for 5 unknown signatures");
    app.stop().await;
}

#[tokio::test]
async fn a_bad_key_stops_start_up_naming_the_provider_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("video-status.toml");
    for (provider, expected) in [
        (
            "name = \"fal\"\nscheme = \"ed25519\"\n",
            "provider[0] (fal): public_keys: the ed25519 scheme needs a key",
        ),
        (
            "name = \"fal\"\nscheme = \"ed25519\"\npublic_keys = [\"c2hvcnQ=\"]\n",
            "provider[0] (fal): public_keys[0]: is not 32 bytes",
        ),
        (
            "name = \"fal\"\nscheme = \"ed25519\"\njwks = \"http://keys.example/jwks.json\"\n",
            "provider[0] (fal): jwks: http:// is accepted only for a loopback host",
        ),
        (
            "name = \"mux\"\nscheme = \"mux\"\nsecrets = [\"s3cret\"]\njwks = \"/etc/jwks.json\"\n",
            "provider[0] (mux): jwks: is not read by scheme mux",
        ),
        (
            "name = \"cf\"\nscheme = \"cloudflare-stream\"\nsecrets = [\"\"]\n",
            "provider[0] (cf): secrets[0]: is empty",
        ),
    ] {
        std::fs::write(&path, format!("[[provider]]\n{provider}")).unwrap();
        let config = video_status::config::Config::load(
            Some(&path),
            &video_status::config::Overrides {
                listen: Some("127.0.0.1:0".parse().unwrap()),
                store: Some(format!("sqlite://{}", dir.path().join("db").display())),
            },
        )
        .expect("the file parses");
        let error = match video_status::app::Application::build(config).await {
            Ok(_) => panic!("{provider} started"),
            Err(error) => error.to_string(),
        };
        assert!(error.contains(expected), "{error}");
    }
}
