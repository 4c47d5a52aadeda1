//! Built-in provider mappers and the generic mapper, end to end: a config entry, fixture bodies
//! posted as the provider would, and the status a UI reads.

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
        mapper: Some(mapper),
        header: Some("X-Webhook-Signature".into()),
        ..ProviderConfig::new(name, SchemeName::HmacSha256, vec![Secret::new(HMAC_SECRET)])
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
        let answer = app
            .post_signed("muxhook", fixture(&format!("mux/{file}")))
            .await;
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
    let answer = app.post_signed("muxhook", track).await;
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
    let first = app.post_signed("cf", body.clone()).await;
    let again = app.post_signed("cf", body).await;
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
    let deliver = |body: &'static str| app.post_signed("acme", body.as_bytes().to_vec());
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

/// A Mux fixture with `edit` applied: to drop the ids that link upload, asset and app.
fn mux_body(file: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut body: serde_json::Value =
        serde_json::from_slice(&fixture(&format!("mux/{file}"))).unwrap();
    edit(&mut body);
    serde_json::to_vec(&body).unwrap()
}

async fn post_mux(app: &crate::support::TestApp, body: Vec<u8>) -> crate::support::Answer {
    app.post_signed("muxhook", body).await
}

const UPLOAD_ID: &str = "Lw8XkT2p9aHqb01Zx5m00cVvRr3sNdy4";
const ASSET_ID: &str = "Qm4Zt01vXy2cA7bLd9sHw00kPpN3eRuf6";

#[tokio::test]
async fn mux_upload_and_asset_end_as_one_video_in_either_order_and_every_id_reads_it() {
    for ready_first in [true, false] {
        let app = spawn_app_with(|config| {
            config.providers.push(hmac_provider(
                "muxhook",
                MapperConfig::Builtin("mux".into()),
            ))
        })
        .await;
        // The asset event knows neither the app's id nor the upload: only the asset id.
        let ready = mux_body("03-video.asset.ready.json", |body| {
            let data = body["data"].as_object_mut().unwrap();
            data.remove("passthrough");
            data.remove("upload_id");
        });
        // The upload event carries the link: upload id, asset id and the app's id.
        let upload = mux_body("01-video.upload.asset_created.json", |_| {});
        let order = if ready_first {
            [ready, upload]
        } else {
            [upload, ready]
        };
        for body in order {
            let answer = post_mux(&app, body).await;
            assert_eq!(answer.body["status"], "accepted", "{}", answer.text);
        }

        let listed = app.get("/videos").await;
        let videos = listed.body["videos"].as_array().unwrap();
        assert_eq!(videos.len(), 1, "one video, not two: {}", listed.text);
        let video_id = videos[0]["video_id"].as_str().unwrap().to_string();
        assert_eq!(videos[0]["status"], "ready", "{}", listed.text);
        assert_eq!(videos[0]["version"], 2);
        // The first id seen decides the video: the asset id when the asset came first.
        let expected = if ready_first { ASSET_ID } else { "vid_7731" };
        assert_eq!(video_id, expected);

        for alias in ["vid_7731", ASSET_ID, UPLOAD_ID] {
            let status = app.get(&format!("/videos/{alias}")).await;
            assert_eq!(status.status, 200, "{alias}: {}", status.text);
            assert_eq!(status.body["video_id"], expected, "{alias}");
            let history = app.get(&format!("/videos/{alias}/history")).await;
            assert_eq!(
                history.body["events"].as_array().unwrap().len(),
                2,
                "{alias}"
            );
        }

        // SSE on an alias follows the one video.
        let mut sse = crate::support::SseClient::connect(
            &app.url(&format!("/videos/{UPLOAD_ID}/events")),
            &[],
        )
        .await;
        let first = sse.next_status().await;
        let status: serde_json::Value = serde_json::from_str(&first.data).unwrap();
        assert_eq!(status["video_id"], expected);
        let deleted = post_mux(&app, mux_body("06-video.asset.deleted.json", |_| {})).await;
        assert_eq!(deleted.body["video_id"], expected, "{}", deleted.text);
        let next = sse.next_status().await;
        let status: serde_json::Value = serde_json::from_str(&next.data).unwrap();
        assert_eq!(status["status"], "deleted");
        app.stop().await;
    }
}

#[tokio::test]
async fn remap_finds_correlated_mux_events_unchanged() {
    let app = spawn_app_with(|config| {
        config.providers.push(hmac_provider(
            "muxhook",
            MapperConfig::Builtin("mux".into()),
        ))
    })
    .await;
    // The asset event alone starts the video under the asset id; the upload event then maps to
    // the app's id, and is stored under the asset id by correlation.
    let ready = mux_body("03-video.asset.ready.json", |body| {
        let data = body["data"].as_object_mut().unwrap();
        data.remove("passthrough");
        data.remove("upload_id");
    });
    for body in [
        ready,
        mux_body("01-video.upload.asset_created.json", |_| {}),
    ] {
        assert_eq!(post_mux(&app, body).await.body["video_id"], ASSET_ID);
    }
    let store = app.state.store.clone();
    let providers =
        video_status::providers::Providers::from_config(&app.state.config.providers).unwrap();
    let videos = video_status::actor::VideoManager::start(
        store.clone(),
        app.state.config.limits.clone(),
        app.state.config.actors.clone(),
    )
    .await
    .unwrap();
    let report = video_status::remap::remap(&store, &providers, &videos)
        .await
        .unwrap();
    videos.shutdown().await;
    assert_eq!(report.events_checked, 2);
    assert_eq!(report.events_unchanged, 2, "{:?}", report.notes);
    assert_eq!(report.events_differing, 0, "{:?}", report.notes);
    app.stop().await;
}
