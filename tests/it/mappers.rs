//! Built-in provider mappers and the generic mapper, end to end: a config entry, fixture bodies
//! posted as the provider would, and the status a UI reads.

use chrono::Utc;

use crate::support::{spawn_app_with, HMAC_SECRET};
use video_status::config::{Config, MapperConfig, Overrides, ProviderConfig, SchemeName, Secret};

fn fixture(relative: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/providers")
        .join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn hmac_provider(name: &str, mapper: MapperConfig) -> ProviderConfig {
    ProviderConfig {
        name: name.into(),
        scheme: SchemeName::HmacSha256,
        secrets: vec![Secret::new(HMAC_SECRET)],
        tolerance_secs: 300,
        mapper: Some(mapper),
        header: Some("X-Webhook-Signature".into()),
        stall_after_secs: 3600,
        poll: None,
    }
}

const GENERIC_CONFIG: &str = r#"
[[provider]]
name = "acme"
scheme = "hmac-sha256"
secrets = ["acme-secret-0123456789"]

[provider.mapper]
event_type = "/event"
video_id = "/asset/id"
event_id = "/delivery"
timestamp = "/at"
progress = "/asset/percent"

[provider.mapper.types]
"asset.created" = "uploaded"
"asset.encoding" = "progress"
"asset.live" = "ready"
"#;

#[tokio::test]
async fn mux_fixtures_in_any_order_end_as_one_ready_video_under_the_apps_id() {
    let app = spawn_app_with(|config| {
        config.providers.push(hmac_provider(
            "muxhook",
            MapperConfig::Builtin("mux".into()),
        ))
    })
    .await;
    // Reversed: ready first, the upload last; the fold orders by Mux's created_at.
    for file in [
        "04-video.asset.static_renditions.ready.json",
        "03-video.asset.ready.json",
        "02-video.asset.created.json",
        "01-video.upload.asset_created.json",
    ] {
        let body = fixture(&format!("mux/{file}"));
        let headers = app.sign("muxhook", "unused", Utc::now(), &body);
        let answer = app.post_raw("muxhook", &headers, body).await;
        assert_eq!(answer.status, 200, "{file}: {}", answer.text);
    }
    let status = app.get("/videos/vid_7731").await;
    assert_eq!(status.status, 200, "{}", status.text);
    assert_eq!(status.body["status"], "ready", "{}", status.text);
    assert_eq!(status.body["version"], 4);
    let playback = status.body["assets"]["playback_url"].as_str().unwrap();
    assert!(
        playback.starts_with("https://stream.mux.com/"),
        "{playback}"
    );

    // An untracked Mux type is acknowledged as ignored, not quarantined.
    let track = br#"{"type":"video.asset.track.ready","id":"t-1","created_at":"2026-11-23T10:00:30Z",
        "object":{"type":"asset","id":"Qm4Zt01vXy2cA7bLd9sHw00kPpN3eRuf6"},"data":{"passthrough":"vid_7731"}}"#
        .to_vec();
    let headers = app.sign("muxhook", "unused", Utc::now(), &track);
    let answer = app.post_raw("muxhook", &headers, track).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["status"], "ignored");
    app.stop().await;
}

#[tokio::test]
async fn cloudflare_redelivery_dedupes_on_the_body_hash() {
    let app = spawn_app_with(|config| {
        config.providers.push(hmac_provider(
            "cf",
            MapperConfig::Builtin("cloudflare-stream".into()),
        ))
    })
    .await;
    let body = fixture("cloudflare-stream/04-ready.json");
    let headers = app.sign("cf", "unused", Utc::now(), &body);
    let first = app.post_raw("cf", &headers, body.clone()).await;
    let again = app.post_raw("cf", &headers, body).await;
    assert_eq!(first.body["status"], "accepted", "{}", first.text);
    assert_eq!(again.body["status"], "duplicate", "{}", again.text);
    let status = app.get("/videos/vid_7731").await;
    assert_eq!(status.body["status"], "ready");
    assert_eq!(status.body["version"], 1);
    app.stop().await;
}

#[tokio::test]
async fn a_generic_mapper_from_a_config_file_maps_a_new_provider_without_code() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acme.toml");
    std::fs::write(&path, GENERIC_CONFIG).unwrap();
    let loaded = Config::load(Some(&path), &Overrides::default()).expect("generic mapper config");
    let acme = loaded.providers[0].clone();
    assert!(matches!(acme.mapper, Some(MapperConfig::Generic(_))));

    let app = spawn_app_with(move |config| config.providers.push(acme)).await;
    let deliver = |body: &'static str| {
        let bytes = body.as_bytes().to_vec();
        let headers = app.sign("acme", "unused", Utc::now(), &bytes);
        let app = &app;
        async move { app.post_raw("acme", &headers, bytes).await }
    };
    let progress = deliver(
        r#"{"event":"asset.encoding","delivery":"d2","at":"2026-11-23T10:00:05Z","asset":{"id":"a-1","percent":"50"}}"#,
    )
    .await;
    assert_eq!(progress.body["status"], "accepted", "{}", progress.text);
    let created = deliver(
        r#"{"event":"asset.created","delivery":"d1","at":"2026-11-23T10:00:00Z","asset":{"id":"a-1"}}"#,
    )
    .await;
    assert_eq!(created.body["status"], "accepted", "{}", created.text);
    let other = deliver(
        r#"{"event":"asset.tagged","delivery":"d3","at":"2026-11-23T10:00:06Z","asset":{"id":"a-1"}}"#,
    )
    .await;
    assert_eq!(other.body["status"], "ignored", "{}", other.text);
    let unmappable = deliver(r#"{"event":"asset.live","delivery":"d4","at":1795428000}"#).await;
    assert_eq!(unmappable.status, 400, "{}", unmappable.text);
    assert_eq!(
        unmappable.body["error"], "missing_field",
        "{}",
        unmappable.text
    );
    assert!(unmappable.text.contains("/asset/id"), "{}", unmappable.text);

    let status = app.get("/videos/a-1").await;
    assert_eq!(status.body["status"], "processing", "{}", status.text);
    assert_eq!(status.body["progress"], 50.0);
    app.stop().await;
}

#[test]
fn a_typo_in_a_generic_mapper_table_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.toml");
    std::fs::write(&path, GENERIC_CONFIG.replace("video_id = ", "vidoe_id = ")).unwrap();
    let error = Config::load(Some(&path), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("vidoe_id"), "{error}");

    std::fs::write(&path, GENERIC_CONFIG.replace("\"ready\"", "\"done\"")).unwrap();
    let config = Config::load(Some(&path), &Overrides::default()).unwrap();
    let error = video_status::providers::Providers::from_config(&config.providers)
        .unwrap_err()
        .to_string();
    assert!(error.contains("mapper.types.asset.live"), "{error}");
    assert!(error.contains("done"), "{error}");
}
