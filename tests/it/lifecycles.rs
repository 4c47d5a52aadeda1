//! Whole lifecycles through the real server: order of arrival never decides the status.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::json;

use crate::support::{lifecycle, native, spawn_app};

#[tokio::test]
async fn in_order_lifecycle_ends_ready_with_assets() {
    let app = spawn_app().await;
    for (id, body) in lifecycle("vid_in_order", "ready") {
        let answer = app.deliver("demo", &id, &body).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.body["status"], "accepted");
        assert_eq!(answer.body["event_id"], id.as_str());
        assert_eq!(answer.body["video_id"], "vid_in_order");
    }
    let status = app.get("/videos/vid_in_order").await;
    assert_eq!(status.status, 200);
    assert_eq!(status.body["status"], "ready");
    assert_eq!(status.body["provider"], "demo");
    assert_eq!(status.body["version"], 5);
    assert_eq!(status.body["progress"], 100.0);
    assert_eq!(
        status.body["assets"]["poster"],
        "https://cdn.example.test/vid_in_order/poster.jpg"
    );
    assert_eq!(status.body["metadata"], json!({ "tenant": "acme" }));
    assert_eq!(status.body["last_event_at"], "2026-11-23T10:00:20Z");
    app.stop().await;
}

#[tokio::test]
async fn reversed_lifecycle_folds_to_the_same_status_by_event_time() {
    let app = spawn_app().await;
    for (id, body) in lifecycle("vid_reversed", "ready").into_iter().rev() {
        let answer = app.deliver("demo", &id, &body).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.body["status"], "accepted");
    }
    let status = app.get("/videos/vid_reversed").await;
    assert_eq!(status.body["status"], "ready");
    assert_eq!(status.body["version"], 5);
    let history = app.get("/videos/vid_reversed/history").await;
    let events = history.body["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "uploaded",
            "processing_started",
            "progress",
            "processing_completed",
            "ready"
        ]
    );
    assert!(
        events.iter().all(|e| e["outcome"] == "accepted"),
        "{}",
        history.text
    );
    app.stop().await;
}

#[tokio::test]
async fn shuffled_lifecycles_fold_to_ready_whatever_the_arrival_order() {
    let app = spawn_app().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for n in 0..8 {
        let video = format!("vid_shuffled_{n}");
        let mut events = lifecycle(&video, "ready");
        events.shuffle(&mut rng);
        for (id, body) in events {
            assert_eq!(app.deliver("demo", &id, &body).await.status, 200);
        }
        let status = app.get(&format!("/videos/{video}")).await;
        assert_eq!(status.body["status"], "ready", "{video}: {}", status.text);
    }
    app.stop().await;
}

#[tokio::test]
async fn failed_lifecycle_reports_the_error() {
    let app = spawn_app().await;
    for (id, body) in lifecycle("vid_failed", "failed") {
        assert_eq!(app.deliver("demo", &id, &body).await.status, 200);
    }
    let status = app.get("/videos/vid_failed").await;
    assert_eq!(status.body["status"], "failed");
    assert_eq!(status.body["error"]["code"], "codec");
    assert_eq!(status.body["error"]["message"], "unsupported codec");
    app.stop().await;
}

/// A `processing.started` (event id `late-start`) stamped after the `ready` of [`lifecycle`]:
/// a regression.
fn late_processing_start(video_id: &str) -> serde_json::Value {
    native(
        "late-start",
        "processing.started",
        video_id,
        "2026-11-23T10:05:00.000Z",
    )
}

#[tokio::test]
async fn processing_after_ready_is_kept_but_rejected_as_a_regression() {
    let app = spawn_app().await;
    for (id, body) in lifecycle("vid_regress", "ready") {
        app.deliver("demo", &id, &body).await;
    }
    let late = late_processing_start("vid_regress");
    let answer = app.deliver("demo", "late-start", &late).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["status"], "accepted");
    assert_eq!(answer.body["outcome"], "rejected");
    let status = app.get("/videos/vid_regress").await;
    assert_eq!(status.body["status"], "ready");
    assert_eq!(
        status.body["version"], 6,
        "the regression is in the log and counts"
    );
    let history = app.get("/videos/vid_regress/history").await;
    let last = history.body["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["event_id"], "late-start");
    assert_eq!(last["outcome"], "rejected");
    assert!(last["reason"].as_str().unwrap().contains("ready"), "{last}");
    app.stop().await;
}

#[tokio::test]
async fn history_shows_the_status_after_each_event() {
    let app = spawn_app().await;
    // Delivered in reverse, then a regression: each step is the fold of the events before it in
    // event time, not what had arrived.
    for (id, body) in lifecycle("vid_steps", "ready").into_iter().rev() {
        app.deliver("demo", &id, &body).await;
    }
    let late = late_processing_start("vid_steps");
    assert_eq!(app.deliver("demo", "late-start", &late).await.status, 200);
    let history = app.get("/videos/vid_steps/history").await;
    assert_eq!(history.status, 200, "{}", history.text);
    let events = history.body["events"].as_array().unwrap();
    let steps: Vec<(&str, u64)> = events
        .iter()
        .map(|e| {
            let after = &e["state_after"];
            (
                after["status"].as_str().unwrap(),
                after["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("uploaded", 1),
            ("processing", 2),
            ("processing", 3),
            ("processed", 4),
            ("ready", 5),
            ("ready", 6)
        ],
        "{}",
        history.text
    );
    assert_eq!(
        events[1]["state_after"]["progress"],
        serde_json::Value::Null
    );
    assert_eq!(events[2]["state_after"]["progress"], 50.0);
    assert_eq!(
        events[2]["state_after"]["last_event_at"],
        "2026-11-23T10:00:10Z"
    );
    assert_eq!(
        events[4]["state_after"]["assets"]["resolutions"],
        json!(["1080p", "720p"])
    );
    // The regression keeps the status it found; the state after the last event is the status.
    assert_eq!(events[5]["outcome"], "rejected");
    assert_eq!(events[5]["status_after"], serde_json::Value::Null);
    assert_eq!(
        events[5]["state_after"],
        app.get("/videos/vid_steps").await.body
    );
    app.stop().await;
}

#[tokio::test]
async fn redeliveries_are_answered_duplicate_and_stored_once() {
    let app = spawn_app().await;
    let body = native(
        "evt_redeliver",
        "uploaded",
        "vid_redeliver",
        "2026-11-23T10:00:00.000Z",
    );
    let first = app.deliver("demo", "evt_redeliver", &body).await;
    assert_eq!(first.body["status"], "accepted");
    for _ in 0..5 {
        let again = app.deliver("demo", "evt_redeliver", &body).await;
        assert_eq!(again.status, 200);
        assert_eq!(again.body["status"], "duplicate");
    }
    assert_eq!(app.history_ids("vid_redeliver").await, ["evt_redeliver"]);
    app.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_copies_of_one_event_are_accepted_exactly_once() {
    let app = spawn_app().await;
    let body = native(
        "evt_storm",
        "uploaded",
        "vid_storm",
        "2026-11-23T10:00:00.000Z",
    );
    let copies = (0..50).map(|_| app.deliver("demo", "evt_storm", &body));
    let answers = futures_util::future::join_all(copies).await;
    let accepted = answers
        .iter()
        .filter(|a| a.body["status"] == "accepted")
        .count();
    let duplicate = answers
        .iter()
        .filter(|a| a.body["status"] == "duplicate")
        .count();
    assert_eq!((accepted, duplicate), (1, 49), "{answers:?}");
    assert_eq!(app.history_ids("vid_storm").await, ["evt_storm"]);
    app.stop().await;
}

#[tokio::test]
async fn same_event_id_with_a_different_body_is_a_recorded_conflict() {
    let app = spawn_app().await;
    let original = native(
        "evt_reused",
        "uploaded",
        "vid_reused",
        "2026-11-23T10:00:00.000Z",
    );
    assert_eq!(
        app.deliver("demo", "evt_reused", &original).await.body["status"],
        "accepted"
    );
    let mut altered = original.clone();
    altered["data"]["metadata"] = json!({ "tenant": "someone-else" });
    let answer = app.deliver("demo", "evt_reused", &altered).await;
    assert_eq!(answer.body["status"], "duplicate");
    let status = app.get("/videos/vid_reused").await;
    assert_eq!(
        status.body["metadata"],
        json!({ "tenant": "acme" }),
        "never merged"
    );
    let audit = app.get_admin("/admin/audit").await;
    assert_eq!(audit.status, 200, "{}", audit.text);
    let records = audit.body["records"].as_array().unwrap();
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "conflict" && r["event_id"] == "evt_reused"),
        "{}",
        audit.text
    );
    let metrics = app.get("/metrics").await;
    assert!(
        metrics.text.contains("webhook_id_conflicts_total"),
        "{}",
        metrics.text
    );

    // The id reused for another video: the answer names the video the stored event belongs to.
    let mut elsewhere = original.clone();
    elsewhere["data"]["videoId"] = json!("vid_other");
    let answer = app.deliver("demo", "evt_reused", &elsewhere).await;
    assert_eq!(answer.body["status"], "duplicate", "{}", answer.text);
    assert_eq!(answer.body["video_id"], "vid_reused", "{}", answer.text);
    assert_eq!(
        app.get("/videos/vid_other").await.status,
        404,
        "nothing stored"
    );
    app.stop().await;
}

#[tokio::test]
async fn untracked_event_types_are_ignored_with_200_and_audited() {
    let app = spawn_app().await;
    let body = json!({ "id": "evt_caption", "type": "video.caption.generated",
                       "timestamp": "2026-11-23T10:00:00Z", "data": { "videoId": "vid_caption" } });
    let answer = app.deliver("demo", "evt_caption", &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["status"], "ignored");
    assert_eq!(
        app.get("/videos/vid_caption").await.status,
        404,
        "never in a stream"
    );
    let audit = app.get_admin("/admin/audit").await;
    assert!(audit.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["kind"] == "ignored"));
    app.stop().await;
}

#[tokio::test]
async fn hmac_sha256_provider_with_and_without_prefix() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(&native(
        "evt_h1",
        "uploaded",
        "vid_hmac",
        "2026-11-23T10:00:00Z",
    ))
    .unwrap();
    let headers = app.sign("plain", "evt_h1", chrono::Utc::now(), &body);
    assert_eq!(
        app.post_raw("plain", &headers, body).await.body["status"],
        "accepted"
    );

    let body = serde_json::to_vec(&native(
        "evt_h2",
        "processing.started",
        "vid_hmac",
        "2026-11-23T10:00:05Z",
    ))
    .unwrap();
    let digest = app.sign("plain", "evt_h2", chrono::Utc::now(), &body)[0]
        .1
        .trim_start_matches("sha256=")
        .to_string();
    let prefixed = vec![(
        "X-Webhook-Signature".to_string(),
        format!("sha256={digest}"),
    )];
    let answer = app.post_raw("plain", &prefixed, body).await;
    assert_eq!(answer.body["status"], "accepted", "{}", answer.text);
    assert_eq!(
        app.get("/videos/vid_hmac").await.body["status"],
        "processing"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_rotated_secret_still_verifies_with_the_old_key() {
    let app = spawn_app().await;
    // Sign with the old secret only, as a provider that has not picked up the new one yet.
    let old = video_status::providers::Providers::from_config(&[
        video_status::config::ProviderConfig::new(
            "rotating",
            video_status::config::SchemeName::Standard,
            vec![video_status::config::Secret::new(
                crate::support::ROTATED_OLD,
            )],
        ),
    ])
    .unwrap();
    let body = serde_json::to_vec(&native(
        "evt_rot",
        "uploaded",
        "vid_rot",
        "2026-11-23T10:00:00Z",
    ))
    .unwrap();
    let headers = old
        .get("rotating")
        .unwrap()
        .sign("evt_rot", chrono::Utc::now(), &body)
        .unwrap();
    let answer = app.post_raw("rotating", &headers, body).await;
    assert_eq!(answer.body["status"], "accepted", "{}", answer.text);
    app.stop().await;
}

#[tokio::test]
async fn the_status_at_a_past_event_time_is_what_a_ui_showed_then() {
    let app = spawn_app().await;
    // Delivered in reverse: the point-in-time view follows event time, not arrival.
    for (id, body) in lifecycle("vid_then", "ready").into_iter().rev() {
        app.deliver("demo", &id, &body).await;
    }
    let then = app.get("/videos/vid_then?at=2026-11-23T10:00:07Z").await;
    assert_eq!(then.status, 200, "{}", then.text);
    assert_eq!(then.body["status"], "processing");
    assert_eq!(then.body["version"], 2);
    let progress = app.get("/videos/vid_then?at=2026-11-23T10:00:10Z").await;
    assert_eq!(progress.body["progress"], 50.0);
    assert_eq!(
        app.get("/videos/vid_then?at=2026-11-23T11:00:00Z")
            .await
            .body["status"],
        "ready"
    );
    let before = app.get("/videos/vid_then?at=2026-11-23T09:00:00Z").await;
    assert_eq!(
        (before.status, before.body["error"].as_str()),
        (404, Some("no_status_at_time"))
    );
    assert_eq!(
        before.body["message"],
        "video vid_then had no event at or before 2026-11-23T09:00:00+00:00"
    );
    assert_eq!(app.get("/videos/vid_then?at=yesterday").await.status, 400);
    app.stop().await;
}

#[tokio::test]
async fn a_video_id_that_needs_encoding_in_a_url_reads_back_through_its_encoded_path() {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

    let app = spawn_app().await;
    // What a customer's passthrough id can be: a space, a slash, `?`, `#`, `%`, a non-ASCII letter.
    let video_id = "tenant 7/clip é?v=2#50%";
    let events = [
        ("enc-1", "uploaded", "2026-11-23T10:00:00.000Z"),
        ("enc-2", "processing.progress", "2026-11-23T10:00:05.000Z"),
    ];
    for (event_id, kind, at) in events {
        let answer = app
            .deliver("demo", event_id, &native(event_id, kind, video_id, at))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.body["video_id"], video_id);
    }
    // As any HTTP client library or `encodeURIComponent` writes it.
    let encoded = utf8_percent_encode(video_id, NON_ALPHANUMERIC).to_string();

    let status = app.get(&format!("/videos/{encoded}")).await;
    assert_eq!(status.status, 200, "{}", status.text);
    assert_eq!(status.body["video_id"], video_id);
    assert_eq!(status.body["status"], "processing");

    let history = app.get(&format!("/videos/{encoded}/history")).await;
    assert_eq!(history.status, 200, "{}", history.text);
    assert_eq!(history.body["events"].as_array().map(Vec::len), Some(2));

    let mut subscriber =
        crate::support::SseClient::connect(&app.url(&format!("/videos/{encoded}/events")), &[])
            .await;
    assert_eq!(subscriber.status, 200);
    let first: serde_json::Value =
        serde_json::from_str(&subscriber.next_status().await.data).unwrap();
    assert_eq!(first["video_id"], video_id);

    // Bytes that decode to no text name no video.
    let garbled = app.get("/videos/%FF%FE").await;
    assert_eq!(garbled.status, 404, "{}", garbled.text);
    assert_eq!(garbled.body["error"], "not_found");
    app.stop().await;
}
