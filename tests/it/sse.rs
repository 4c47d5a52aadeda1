//! Live status over server-sent events, with a real SSE client: first event at once, each change,
//! resumption without gap or duplicate, keep-alives, slow clients, tokens, restarts.

use std::collections::BTreeSet;
use std::time::Duration;

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

use crate::support::{lifecycle, native, spawn_app, spawn_app_at, spawn_app_with, SseClient};
use video_status::config::Secret;

fn data(event: &eventsource_stream::Event) -> Value {
    serde_json::from_str(&event.data).unwrap()
}

#[tokio::test]
async fn a_video_stream_sends_the_current_status_at_once_then_each_change() {
    let app = spawn_app().await;
    let events = lifecycle("vid_live", "ready");
    app.deliver("demo", &events[0].0, &events[0].1).await;
    let mut client = SseClient::connect(&app.url("/videos/vid_live/events"), &[]).await;
    assert_eq!(client.status, 200);
    assert_eq!(client.headers["content-type"], "text/event-stream");
    assert_eq!(client.headers["cache-control"], "no-cache");
    assert_eq!(client.headers["x-accel-buffering"], "no");
    let first = client.next_status().await;
    assert_eq!(first.id, "1");
    assert_eq!(data(&first)["status"], "uploaded");
    for (n, (id, body)) in events.iter().enumerate().skip(1) {
        app.deliver("demo", id, body).await;
        let change = client.next_status().await;
        assert_eq!(change.id, (n + 1).to_string());
    }
    assert!(
        client
            .next_within(Duration::from_millis(100))
            .await
            .is_none(),
        "one event per change"
    );
    let status = app.get("/videos/vid_live").await;
    assert_eq!(
        status.body["version"], 5,
        "the status carries the version a client resumes from"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unseen_video_stream_stays_open_until_its_first_event() {
    let app = spawn_app().await;
    let mut client = SseClient::connect(&app.url("/videos/vid_later/events"), &[]).await;
    assert_eq!(client.status, 200);
    assert!(client
        .next_within(Duration::from_millis(300))
        .await
        .is_none());
    let (id, body) = lifecycle("vid_later", "ready").remove(0);
    app.deliver("demo", &id, &body).await;
    assert_eq!(data(&client.next_status().await)["status"], "uploaded");
    app.stop().await;
}

#[tokio::test]
async fn resuming_a_video_stream_sends_only_the_newest_status_and_nothing_stale() {
    let app = spawn_app().await;
    let events = lifecycle("vid_resume", "ready");
    for (id, body) in &events[..3] {
        app.deliver("demo", id, body).await;
    }
    // Behind by two versions: the newest status only, not every intermediate one.
    let mut behind = SseClient::connect(
        &app.url("/videos/vid_resume/events"),
        &[("last-event-id", "1")],
    )
    .await;
    let newest = behind.next_status().await;
    assert_eq!(newest.id, "3");
    assert!(behind
        .next_within(Duration::from_millis(200))
        .await
        .is_none());
    // Up to date: nothing until the next change (query form, for clients without headers).
    let mut current =
        SseClient::connect(&app.url("/videos/vid_resume/events?last_event_id=3"), &[]).await;
    assert!(current
        .next_within(Duration::from_millis(300))
        .await
        .is_none());
    app.deliver("demo", &events[3].0, &events[3].1).await;
    assert_eq!(current.next_status().await.id, "4");
    assert_eq!(behind.next_status().await.id, "4");
    let bad = SseClient::connect(
        &app.url("/videos/vid_resume/events"),
        &[("last-event-id", "soon")],
    )
    .await;
    assert_eq!(bad.status, 400);
    app.stop().await;
}

#[tokio::test]
async fn the_global_stream_sends_changes_from_now_on_with_global_positions() {
    let app = spawn_app().await;
    let (id, body) = lifecycle("vid_before", "ready").remove(0);
    app.deliver("demo", &id, &body).await;
    let mut client = SseClient::connect(&app.url("/events"), &[]).await;
    assert!(
        client
            .next_within(Duration::from_millis(300))
            .await
            .is_none(),
        "no snapshot at connect"
    );
    for (id, body) in lifecycle("vid_global", "failed") {
        app.deliver("demo", &id, &body).await;
    }
    let mut ids = Vec::new();
    for _ in 0..5 {
        let event = client.next_status().await;
        assert_eq!(data(&event)["video_id"], "vid_global");
        ids.push(event.id.parse::<u64>().unwrap());
    }
    assert_eq!(ids, [2, 3, 4, 5, 6]);
    let mut failed = SseClient::connect(&app.url("/events?status=failed"), &[]).await;
    let (id, body) = lifecycle("vid_other", "ready").remove(0);
    app.deliver("demo", &id, &body).await;
    assert!(
        failed
            .next_within(Duration::from_millis(300))
            .await
            .is_none(),
        "filtered out"
    );
    app.stop().await;
}

#[tokio::test]
async fn resuming_the_global_stream_has_no_gap_and_no_duplicate_while_webhooks_keep_arriving() {
    let app = spawn_app().await;
    let total = 120;
    let sender = {
        let app = &app;
        async move {
            for n in 0..total {
                let video = format!("vid_seam_{n:03}");
                let body = native(
                    &format!("evt_seam_{n}"),
                    "uploaded",
                    &video,
                    "2026-11-23T10:00:00Z",
                );
                assert_eq!(
                    app.deliver("demo", &format!("evt_seam_{n}"), &body)
                        .await
                        .status,
                    200
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let receiver = async {
        let mut seen: Vec<(u64, String)> = Vec::new();
        let mut client = SseClient::connect(&app.url("/events"), &[]).await;
        // Read a little, drop the connection mid-traffic, resume from the last id.
        for _ in 0..20 {
            let event = client.next_status().await;
            seen.push((
                event.id.parse().unwrap(),
                data(&event)["video_id"].as_str().unwrap().to_string(),
            ));
        }
        drop(client);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let last = seen.last().unwrap().0.to_string();
        let mut resumed =
            SseClient::connect(&app.url("/events"), &[("last-event-id", &last)]).await;
        while let Some(event) = resumed.next_within(Duration::from_secs(3)).await {
            assert_eq!(event.event, "status", "{event:?}");
            seen.push((
                event.id.parse().unwrap(),
                data(&event)["video_id"].as_str().unwrap().to_string(),
            ));
        }
        seen
    };
    let ((), seen) = tokio::join!(sender, receiver);
    let ids: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids strictly increase across the seam: {ids:?}"
    );
    let videos: BTreeSet<&String> = seen.iter().map(|(_, v)| v).collect();
    assert_eq!(
        videos.len(),
        total,
        "every video seen exactly once: {} of {total}",
        videos.len()
    );
    assert_eq!(seen.len(), total);
    app.stop().await;
}

#[tokio::test]
async fn resuming_beyond_the_replay_horizon_gets_a_reset() {
    let app = spawn_app_with(|config| config.sse.replay_horizon = 3).await;
    for (id, body) in lifecycle("vid_horizon", "ready") {
        app.deliver("demo", &id, &body).await;
    }
    let mut client = SseClient::connect(&app.url("/events"), &[("last-event-id", "0")]).await;
    let reset = client.next_within(Duration::from_secs(2)).await.unwrap();
    assert_eq!(reset.event, "reset");
    assert_eq!(data(&reset)["position"], 5);
    app.stop().await;
}

#[tokio::test]
async fn keep_alive_comments_arrive_on_an_idle_stream() {
    let app = spawn_app_with(|config| config.sse.keep_alive_secs = 1).await;
    let mut response = crate::support::http_client()
        .get(app.url("/events"))
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    while !text.lines().any(|l| l.starts_with(':')) && tokio::time::Instant::now() < deadline {
        if let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, response.chunk()).await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(text.contains("retry:"), "a retry hint first: {text:?}");
    assert!(
        text.lines().any(|l| l.starts_with(':')),
        "a keep-alive comment: {text:?}"
    );
    drop(response);
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_reset_not_buffered_while_others_keep_up() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(|config| config.sse.global_buffer = 8).await;
    // A raw connection never read while the traffic flows: once the kernel's socket buffers
    // (several MB on loopback) and the HTTP layer's are full, only the server's own bound is left.
    let mut stalled = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stalled
        .write_all(
            format!(
                "GET /events HTTP/1.1\r\nhost: {}\r\naccept: text/event-stream\r\n\r\n",
                app.addr
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut reader = SseClient::connect(&app.url("/events"), &[]).await;
    let deliveries = 400;
    let reading = async {
        let mut got = 0;
        while got < deliveries {
            reader.next_status().await;
            got += 1;
        }
        got
    };
    let sending = async {
        // Large statuses, so the stalled connection's kernel and HTTP buffers fill quickly.
        let padding = "x".repeat(16 * 1024);
        for n in 0..deliveries {
            let mut body = native(
                &format!("evt_slow_{n}"),
                "uploaded",
                &format!("vid_slow_{n}"),
                "2026-11-23T10:00:00Z",
            );
            body["data"]["metadata"] = json!({ "padding": padding });
            app.deliver("demo", &format!("evt_slow_{n}"), &body).await;
        }
    };
    let (got, ()) = tokio::join!(reading, sending);
    assert_eq!(got, deliveries, "the reading client kept up");
    // Now read what the stalled client was sent: it fell behind the bounded buffer and was told
    // to resync, instead of the server holding every change for it.
    let (mut statuses, mut saw_reset, mut tail) = (0, false, String::new());
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !saw_reset {
        match tokio::time::timeout_at(deadline, stalled.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                // Scan only the new bytes (plus a little of the previous chunk for split lines).
                let window = tail.clone() + &String::from_utf8_lossy(&chunk[..n]);
                statuses +=
                    window.matches("event:status").count() - tail.matches("event:status").count();
                saw_reset = window.contains("event:reset");
                tail = window
                    .chars()
                    .rev()
                    .take(32)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
            }
            _ => break,
        }
    }
    assert!(
        saw_reset,
        "a client that fell behind gets a reset (after {statuses} statuses)"
    );
    assert!(
        statuses < deliveries,
        "it was not sent every change ({statuses})"
    );
    app.stop().await;
}

#[tokio::test]
async fn stopping_the_server_ends_streams_with_a_shutdown_event_and_clients_catch_up_after_restart()
{
    let app = spawn_app().await;
    let events = lifecycle("vid_restart_sse", "ready");
    app.deliver("demo", &events[0].0, &events[0].1).await;
    let mut client = SseClient::connect(&app.url("/videos/vid_restart_sse/events"), &[]).await;
    let seen = client.next_status().await.id;
    let db_path = app.db_path.clone();
    let stopping = tokio::spawn(async move { app.stop().await });
    let last = client.next_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!(last.event, "shutdown");
    assert!(
        client
            .next_within(Duration::from_millis(200))
            .await
            .is_none(),
        "the stream ended"
    );
    let dir = tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown does not wait on streams")
        .unwrap();

    let again = spawn_app_at(&db_path, |_| {}).await;
    for (id, body) in &events[1..] {
        again.deliver("demo", id, body).await;
    }
    // What EventSource does on reconnect: Last-Event-ID of the last event it saw.
    let mut reconnected = SseClient::connect(
        &again.url("/videos/vid_restart_sse/events"),
        &[("last-event-id", &seen)],
    )
    .await;
    let caught_up = reconnected.next_status().await;
    assert_eq!(caught_up.id, "5");
    assert_eq!(data(&caught_up)["status"], "ready");
    again.stop().await;
    drop(dir);
}

const JWT_SECRET: &str = "subscriber-secret-for-tests-0123456789";

fn token(claims: Value) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

fn exp_in(secs: i64) -> i64 {
    chrono::Utc::now().timestamp() + secs
}

#[tokio::test]
async fn subscriber_tokens_are_enforced_on_streams_and_reads() {
    let app =
        spawn_app_with(|config| config.auth.subscriber_jwt_secret = Some(Secret::new(JWT_SECRET)))
            .await;
    for video in ["vid_mine", "vid_theirs"] {
        let (id, body) = lifecycle(video, "ready").remove(0);
        app.deliver("demo", &id, &body).await;
    }
    let mine = token(json!({ "videos": ["vid_mine"], "exp": exp_in(300) }));
    let expired = token(json!({ "videos": ["vid_mine"], "exp": exp_in(-300) }));

    let none = SseClient::connect(&app.url("/videos/vid_mine/events"), &[]).await;
    assert_eq!(none.status, 401);
    let wrong = SseClient::connect(
        &app.url(&format!("/videos/vid_theirs/events?token={mine}")),
        &[],
    )
    .await;
    assert_eq!(wrong.status, 403);
    let old = SseClient::connect(
        &app.url(&format!("/videos/vid_mine/events?token={expired}")),
        &[],
    )
    .await;
    assert_eq!(old.status, 401);
    let bearer = format!("Bearer {mine}");
    let mut ok = SseClient::connect(
        &app.url("/videos/vid_mine/events"),
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(data(&ok.next_status().await)["video_id"], "vid_mine");

    assert_eq!(app.get("/videos/vid_mine").await.status, 401);
    assert_eq!(
        app.get(&format!("/videos/vid_mine?token={mine}"))
            .await
            .status,
        200
    );
    assert_eq!(
        app.get(&format!("/videos/vid_theirs?token={mine}"))
            .await
            .status,
        403
    );
    let expired_read = app
        .get(&format!("/videos/vid_mine/history?token={expired}"))
        .await;
    assert_eq!(
        (expired_read.status, expired_read.body["error"].as_str()),
        (401, Some("token_expired"))
    );
    let listed = app.get(&format!("/videos?token={mine}")).await;
    let ids: Vec<&str> = listed.body["videos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["video_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["vid_mine"]);

    // The global stream shows only what the token may see.
    let mut global = SseClient::connect(&app.url(&format!("/events?token={mine}")), &[]).await;
    for video in ["vid_theirs", "vid_mine"] {
        let (id, body) = lifecycle(video, "ready").remove(1);
        app.deliver("demo", &id, &body).await;
    }
    assert_eq!(data(&global.next_status().await)["video_id"], "vid_mine");
    assert!(global
        .next_within(Duration::from_millis(200))
        .await
        .is_none());
    app.stop().await;
}

#[tokio::test]
async fn the_live_page_is_served_at_the_root() {
    let app = spawn_app().await;
    let page = app.get("/").await;
    assert_eq!(page.status, 200);
    assert!(
        page.text.contains("<html") || page.text.contains("<!doctype"),
        "{}",
        &page.text[..page.text.len().min(200)]
    );
    app.stop().await;
}

#[tokio::test]
async fn disconnected_subscribers_are_noticed_and_freed() {
    let app = spawn_app().await;
    let mut clients = Vec::new();
    for n in 0..20 {
        let mut client =
            SseClient::connect(&app.url(&format!("/videos/vid_gone_{}/events", n % 5)), &[]).await;
        assert_eq!(client.status, 200);
        assert!(client
            .next_within(Duration::from_millis(10))
            .await
            .is_none());
        clients.push(client);
    }
    assert_eq!(app.state.hub.watched_videos(), 5);
    drop(clients);
    let hub = app.state.hub.clone();
    let freed = crate::support::eventually(Duration::from_secs(5), || {
        let hub = hub.clone();
        async move { hub.watched_videos() == 0 }
    })
    .await;
    assert!(freed, "still watched: {}", app.state.hub.watched_videos());
    app.stop().await;
}

#[tokio::test]
async fn cors_lets_configured_origins_read_and_refuses_others() {
    let app =
        spawn_app_with(|config| config.http.cors_origins = vec!["https://app.example".into()])
            .await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/events"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "last-event-id")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let read = app
        .client
        .get(app.url("/videos"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        read.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let other = app
        .client
        .get(app.url("/videos"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403);
    app.stop().await;
}
