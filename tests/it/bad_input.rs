//! Every kind of bad delivery gets its status code and a JSON error that names the failed step,
//! never echoes a secret or an expected signature, and stores nothing in a stream.

use chrono::{Duration, Utc};
use serde_json::json;

use crate::support::{native, spawn_app, Answer, TestApp, HMAC_SECRET};
use video_status::config::DEMO_SECRET;

fn body_of(event_id: &str, video_id: &str) -> Vec<u8> {
    serde_json::to_vec(&native(
        event_id,
        "uploaded",
        video_id,
        "2026-11-23T10:00:00Z",
    ))
    .unwrap()
}

fn set(headers: &mut [(String, String)], name: &str, value: String) {
    let slot = headers
        .iter_mut()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .unwrap();
    slot.1 = value;
}

/// Asserts the error contract and that the video was not stored.
async fn assert_refused(
    app: &TestApp,
    answer: &Answer,
    status: u16,
    code: &str,
    video_id: &str,
    signature: Option<&str>,
) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(answer.body["error"], code, "{}", answer.text);
    assert!(
        answer.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        answer.text
    );
    let secret_part = DEMO_SECRET.trim_start_matches("whsec_");
    for secret in [DEMO_SECRET, secret_part, HMAC_SECRET] {
        assert!(
            !answer.text.contains(secret),
            "error echoes a secret: {}",
            answer.text
        );
    }
    if let Some(signature) = signature {
        assert!(
            !answer.text.contains(signature),
            "error echoes a signature: {}",
            answer.text
        );
    }
    assert_eq!(
        app.get(&format!("/videos/{video_id}")).await.status,
        404,
        "nothing stored for {video_id}"
    );
}

#[tokio::test]
async fn tampered_body_is_rejected_with_401() {
    let app = spawn_app().await;
    let body = body_of("evt_t", "vid_tampered");
    let headers = app.sign("demo", "evt_t", Utc::now(), &body);
    let tampered = String::from_utf8(body)
        .unwrap()
        .replace("vid_tampered", "vid_tamperex")
        .into_bytes();
    let answer = app.post_raw("demo", &headers, tampered).await;
    assert_refused(
        &app,
        &answer,
        401,
        "no_matching_signature",
        "vid_tamperex",
        Some(&headers[2].1),
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn each_missing_signature_header_is_named_in_a_401() {
    let app = spawn_app().await;
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let body = body_of("evt_m", "vid_missing");
        let headers: Vec<_> = app
            .sign("demo", "evt_m", Utc::now(), &body)
            .into_iter()
            .filter(|(name, _)| name != missing)
            .collect();
        let answer = app.post_raw("demo", &headers, body).await;
        assert_refused(
            &app,
            &answer,
            401,
            "missing_signature_header",
            "vid_missing",
            None,
        )
        .await;
        assert!(
            answer.body["message"].as_str().unwrap().contains(missing),
            "{}",
            answer.text
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn wrong_secret_is_rejected_with_401() {
    let app = spawn_app().await;
    let body = body_of("evt_w", "vid_wrong_secret");
    // Signed for `rotating` (other secrets), posted to `demo`.
    let headers = app.sign("rotating", "evt_w", Utc::now(), &body);
    let answer = app.post_raw("demo", &headers, body).await;
    assert_refused(
        &app,
        &answer,
        401,
        "no_matching_signature",
        "vid_wrong_secret",
        Some(&headers[2].1),
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn timestamp_an_hour_old_or_ahead_is_rejected_with_401() {
    let app = spawn_app().await;
    for shift in [Duration::hours(-1), Duration::hours(1)] {
        let body = body_of("evt_s", "vid_stale");
        let headers = app.sign("demo", "evt_s", Utc::now() + shift, &body);
        let answer = app.post_raw("demo", &headers, body).await;
        assert_refused(
            &app,
            &answer,
            401,
            "timestamp_out_of_tolerance",
            "vid_stale",
            Some(&headers[2].1),
        )
        .await;
    }
    app.stop().await;
}

#[tokio::test]
async fn event_id_swapped_after_signing_is_rejected_with_401() {
    let app = spawn_app().await;
    let body = body_of("evt_orig", "vid_swapped");
    let mut headers = app.sign("demo", "evt_orig", Utc::now(), &body);
    set(&mut headers, "webhook-id", "evt_swapped".into());
    let answer = app.post_raw("demo", &headers, body).await;
    assert_refused(
        &app,
        &answer,
        401,
        "no_matching_signature",
        "vid_swapped",
        Some(&headers[2].1),
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn signed_non_json_is_400_and_quarantined() {
    let app = spawn_app().await;
    let body = b"this is not json".to_vec();
    let headers = app.sign("demo", "evt_nj", Utc::now(), &body);
    let answer = app.post_raw("demo", &headers, body).await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_eq!(answer.body["error"], "not_json");
    let quarantine = app.get_admin("/admin/quarantine").await;
    assert_eq!(quarantine.status, 200, "{}", quarantine.text);
    let requests = quarantine.body["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["provider"], "demo");
    assert_eq!(requests[0]["error"], "not_json");
    assert_eq!(requests[0]["request"]["body"], "this is not json");
    app.stop().await;
}

#[tokio::test]
async fn signed_body_without_a_video_id_is_400_and_quarantined() {
    let app = spawn_app().await;
    let body = json!({ "id": "evt_nv", "type": "video.ready", "timestamp": "2026-11-23T10:00:00Z", "data": {} });
    let answer = app.deliver("demo", "evt_nv", &body).await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_eq!(answer.body["error"], "missing_video_id");
    let quarantine = app.get_admin("/admin/quarantine").await;
    assert_eq!(quarantine.body["requests"][0]["error"], "missing_video_id");
    // Blank parameters are left out; a bad one is named.
    let blank = app.get_admin("/admin/quarantine?after=&limit=").await;
    assert_eq!(blank.status, 200, "{}", blank.text);
    assert_eq!(blank.body["requests"], quarantine.body["requests"]);
    let bad = app.get_admin("/admin/quarantine?after=first").await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.body["message"],
        "after must be a whole number; got \"first\""
    );
    app.stop().await;
}

#[tokio::test]
async fn unknown_provider_is_404() {
    let app = spawn_app().await;
    let body = body_of("evt_u", "vid_unknown_provider");
    let headers = app.sign("demo", "evt_u", Utc::now(), &body);
    let answer = app.post_raw("nobody", &headers, body).await;
    assert_refused(
        &app,
        &answer,
        404,
        "unknown_provider",
        "vid_unknown_provider",
        None,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn two_mebibyte_body_is_413() {
    let app = spawn_app().await;
    let padding = "x".repeat(2 * 1024 * 1024);
    let body = serde_json::to_vec(&json!({ "id": "evt_big", "type": "video.uploaded", "timestamp": "2026-11-23T10:00:00Z",
                                          "data": { "videoId": "vid_big", "metadata": { "pad": padding } } })).unwrap();
    let headers = app.sign("demo", "evt_big", Utc::now(), &body);
    let answer = app.post_raw("demo", &headers, body).await;
    assert_refused(&app, &answer, 413, "payload_too_large", "vid_big", None).await;
    app.stop().await;
}

#[tokio::test]
async fn admin_endpoints_need_the_token() {
    let app = spawn_app().await;
    assert_eq!(app.get("/admin/quarantine").await.status, 401);
    let wrong = app
        .client
        .get(app.url("/admin/quarantine"))
        .header("authorization", "Bearer not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    app.stop().await;

    let open = crate::support::spawn_app_with(|config| config.auth.admin_token = None).await;
    assert_eq!(
        open.get_admin("/admin/quarantine").await.status,
        404,
        "admin is off without a token"
    );
    open.stop().await;
}

#[tokio::test]
async fn quarantined_requests_are_replayed_through_the_current_mappers() {
    let app = spawn_app().await;
    // One request no mapper can read, quarantined now.
    let junk = b"still not json".to_vec();
    let headers = app.sign("demo", "evt_junk", Utc::now(), &junk);
    assert_eq!(app.post_raw("demo", &headers, junk).await.status, 400);
    // One that an older mapper refused but the current one reads (as after a mapper fix).
    let body = serde_json::to_vec(&native(
        "evt_fixed",
        "uploaded",
        "vid_fixed",
        "2026-11-23T10:00:00Z",
    ))
    .unwrap();
    let raw = video_status::event::RawDelivery {
        body: body.into(),
        headers: vec![
            ("webhook-id".into(), "evt_fixed".into()),
            ("webhook-timestamp".into(), "1795438800".into()),
        ],
    };
    let conn = rusqlite::Connection::open(&app.db_path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    conn.execute(
        "INSERT INTO quarantine (provider, error_code, reason, received_at, raw) VALUES ('demo', 'missing_video_id', 'old mapper', '2026-11-23T10:00:01.000000000Z', ?1)",
        [video_status::event::codec::encode_raw(&raw)],
    )
    .unwrap();

    let first = app.post_admin("/admin/quarantine/replay").await;
    assert_eq!(first.status, 200, "{}", first.text);
    let outcomes: Vec<&str> = first.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["unmappable", "accepted"], "{}", first.text);
    assert_eq!(first.body["released"], 1);
    let status = app.get("/videos/vid_fixed").await;
    assert_eq!(status.body["status"], "uploaded");
    assert_eq!(
        status.body["updated_at"], "2026-11-23T10:00:01Z",
        "the original arrival time is kept"
    );
    let left = app.get_admin("/admin/quarantine").await;
    assert_eq!(
        left.body["requests"].as_array().unwrap().len(),
        1,
        "only the unreadable one stays"
    );

    let again = app.post_admin("/admin/quarantine/replay").await;
    assert_eq!(again.body["released"], 0);
    assert_eq!(
        app.history_ids("vid_fixed").await,
        ["evt_fixed"],
        "nothing stored twice"
    );
    assert_eq!(
        app.post_admin("/admin/quarantine/replay?id=999")
            .await
            .status,
        404
    );
    let anonymous = app
        .client
        .post(app.url("/admin/quarantine/replay"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    app.stop().await;
}
