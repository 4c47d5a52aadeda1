//! Reconciliation end to end: videos that wait on their provider past its deadline are flagged
//! `stalled`, and a provider with a status URL is polled about them. The provider's API is a fake
//! HTTP server started by each test, which answers, hangs, fails and lies as told.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use warp::Filter;

use crate::support::{eventually, spawn_app_with, SseClient, TestApp, HMAC_SECRET};
use video_status::config::{MapperConfig, PollConfig, ProviderConfig, SchemeName, Secret};

const API_TOKEN: &str = "fake-api-token-7d41";

/// What the fake API does when asked about one provider id.
#[derive(Clone)]
enum Behaviour {
    /// 200 with this JSON body.
    Answer(Value),
    /// This HTTP status, no useful body.
    Fail(u16),
    /// Never answers (until the client gives up).
    Hang,
}

/// One request the fake API received.
#[derive(Clone, Debug)]
struct Request {
    id: String,
    authorization: Option<String>,
    at: Instant,
}

#[derive(Default)]
struct FakeState {
    behaviours: HashMap<String, Behaviour>,
    requests: Vec<Request>,
}

/// A provider's status API, `GET /videos/{id}`, on an ephemeral port.
#[derive(Clone)]
struct FakeProvider {
    addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
}

impl FakeProvider {
    async fn start() -> FakeProvider {
        let state = Arc::new(Mutex::new(FakeState::default()));
        let shared = Arc::clone(&state);
        let route = warp::path!("videos" / String)
            .and(warp::get())
            .and(warp::header::optional::<String>("authorization"))
            .then(move |id: String, authorization: Option<String>| {
                let state = Arc::clone(&shared);
                async move {
                    let behaviour = {
                        let mut state = state.lock().unwrap();
                        state.requests.push(Request {
                            id: id.clone(),
                            authorization,
                            at: Instant::now(),
                        });
                        state.behaviours.get(&id).cloned()
                    };
                    match behaviour {
                        Some(Behaviour::Answer(body)) => warp::http::Response::builder()
                            .status(200)
                            .header("content-type", "application/json")
                            .body(serde_json::to_vec(&body).unwrap()),
                        Some(Behaviour::Fail(status)) => warp::http::Response::builder()
                            .status(status)
                            .body(br#"{"errors":["internal"]}"#.to_vec()),
                        Some(Behaviour::Hang) => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            unreachable!("the poller gives up long before")
                        }
                        None => warp::http::Response::builder()
                            .status(404)
                            .body(b"{}".to_vec()),
                    }
                    .unwrap()
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(route).incoming(listener).run());
        FakeProvider { addr, state }
    }

    fn set(&self, id: &str, behaviour: Behaviour) {
        self.state
            .lock()
            .unwrap()
            .behaviours
            .insert(id.to_string(), behaviour);
    }

    fn requests_for(&self, id: &str) -> Vec<Request> {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.id == id)
            .cloned()
            .collect()
    }

    fn poll_config(&self) -> PollConfig {
        PollConfig {
            url: format!("http://{}/videos/{{id}}", self.addr),
            bearer_token: Some(Secret::new(API_TOKEN)),
            username: None,
            password: None,
            body_pointer: None,
            id_pointer: None,
            interval_secs: 1,
            max_backoff_secs: 4,
            concurrency: 2,
            timeout_secs: 3,
        }
    }
}

/// A Cloudflare Stream provider (webhooks signed with hmac-sha256 here: the body is what
/// matters) whose videos stall after `stall_after_secs`.
fn cloudflare(name: &str, stall_after_secs: u64, poll: Option<PollConfig>) -> ProviderConfig {
    ProviderConfig {
        mapper: Some(MapperConfig::Builtin("cloudflare-stream".into())),
        header: Some("X-Webhook-Signature".into()),
        stall_after_secs,
        poll,
        ..ProviderConfig::new(name, SchemeName::HmacSha256, vec![Secret::new(HMAC_SECRET)])
    }
}

/// A Cloudflare Stream video object, as its webhooks send it and its API answers it.
fn cf_video(uid: &str, app_id: Option<&str>, state: &str, pct: &str, modified: &str) -> Value {
    let mut meta = json!({ "name": "kitchen-demo.mp4" });
    if let Some(app_id) = app_id {
        meta["videoId"] = json!(app_id);
    }
    json!({
        "uid": uid,
        "thumbnail": format!("https://stream.example/{uid}/thumbnails/thumbnail.jpg"),
        "readyToStream": state == "ready",
        "status": { "state": state, "pctComplete": pct, "errorReasonCode": "", "errorReasonText": "" },
        "meta": meta,
        "modified": modified,
        "duration": 42.2,
        "input": { "width": 1920, "height": 1080 },
        "playback": { "hls": format!("https://stream.example/{uid}/manifest/video.m3u8") },
    })
}

async fn spawn(providers: Vec<ProviderConfig>) -> TestApp {
    spawn_app_with(move |config| {
        config.providers.extend(providers);
        config.reconcile.sweep_interval_ms = 100;
    })
    .await
}

async fn status_of(app: &TestApp, video_id: &str) -> Value {
    let answer = app.get(&format!("/videos/{video_id}")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.body
}

async fn history_of(app: &TestApp, video_id: &str) -> Vec<Value> {
    let answer = app.get(&format!("/videos/{video_id}/history")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.body["events"].as_array().unwrap().clone()
}

/// The value of one sample of `/metrics`, e.g. `videos_stalled{provider="x"}`.
async fn metric(app: &TestApp, sample: &str) -> Option<f64> {
    let text = app.get("/metrics").await.text;
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
}

async fn deliver(app: &TestApp, provider: &str, body: &Value) {
    let answer = app.deliver(provider, "unused", body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

#[tokio::test]
async fn a_missed_ready_webhook_is_recovered_by_polling() {
    let fake = FakeProvider::start().await;
    let mut poll = fake.poll_config();
    // The app knows the video by its own id; the API by Cloudflare's uid.
    poll.id_pointer = Some("/cloudflare_uid".into());
    let app = spawn(vec![cloudflare("cf-missed", 1, Some(poll))]).await;
    let (uid, video) = ("cfuid0001", "app-video-1");
    fake.set(
        uid,
        Behaviour::Answer(cf_video(
            uid,
            Some(video),
            "ready",
            "100.000000",
            "2026-11-23T10:00:30Z",
        )),
    );

    for (state, pct, at) in [
        ("queued", "", "2026-11-23T10:00:00Z"),
        ("inprogress", "41.500000", "2026-11-23T10:00:09Z"),
    ] {
        deliver(
            &app,
            "cf-missed",
            &cf_video(uid, Some(video), state, pct, at),
        )
        .await;
    }
    let mut sse = SseClient::connect(&app.url(&format!("/videos/{video}/events")), &[]).await;
    let first: Value = serde_json::from_str(&sse.next_status().await.data).unwrap();
    assert_eq!(first["status"], "processing");
    // The ready webhook never comes: the video stalls, the poller asks, the answer is folded.
    let mut seen: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(8);
    while !seen.last().is_some_and(|s| s["status"] == "ready") && Instant::now() < deadline {
        if let Some(event) = sse.next_within(Duration::from_millis(200)).await {
            seen.push(serde_json::from_str(&event.data).unwrap());
        }
    }
    assert!(
        seen.last().is_some_and(|s| s["status"] == "ready"),
        "the SSE stream never showed ready: {seen:?}"
    );

    let status = status_of(&app, video).await;
    assert_eq!(status["status"], "ready");
    assert_eq!(status["stalled"], false);
    assert_eq!(status["progress"], 100.0);
    assert_eq!(
        status["assets"]["playback_url"],
        format!("https://stream.example/{uid}/manifest/video.m3u8")
    );
    let history = history_of(&app, video).await;
    let sources: Vec<(&str, &str)> = history
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["source"].as_str().unwrap()))
        .collect();
    assert_eq!(
        sources,
        [
            ("uploaded", "webhook"),
            ("progress", "webhook"),
            ("ready", "poll")
        ]
    );
    assert_eq!(history[2]["outcome"], "accepted");

    let requests = fake.requests_for(uid);
    assert!(!requests.is_empty());
    assert!(requests
        .iter()
        .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {API_TOKEN}"))));
    assert!(metric(
        &app,
        r#"provider_polls_total{provider="cf-missed",result="accepted"}"#
    )
    .await
    .is_some_and(|n| n >= 1.0));
    app.stop().await;
}

#[tokio::test]
async fn a_poll_answer_older_than_the_webhooks_is_rejected_as_a_regression() {
    let fake = FakeProvider::start().await;
    let app = spawn(vec![cloudflare("cf-lies", 1, Some(fake.poll_config()))]).await;
    let uid = "cfuid0002";
    // Webhooks took the video to processed (playable, renditions still encoding).
    for (state, pct, at) in [
        ("queued", "", "2026-11-23T10:00:00Z"),
        ("ready", "60.000000", "2026-11-23T10:00:20Z"),
    ] {
        deliver(&app, "cf-lies", &cf_video(uid, None, state, pct, at)).await;
    }
    assert_eq!(status_of(&app, uid).await["status"], "processed");
    // The API lies: an older state, stamped later.
    fake.set(
        uid,
        Behaviour::Answer(cf_video(
            uid,
            None,
            "inprogress",
            "30.000000",
            "2026-11-23T10:00:40Z",
        )),
    );

    // Asked at least twice: the same answer must be stored once.
    let asked_twice = eventually(Duration::from_secs(8), || {
        let (fake, app) = (&fake, &app);
        async move {
            fake.requests_for(uid).len() >= 2
                && metric(
                    app,
                    r#"provider_polls_total{provider="cf-lies",result="duplicate"}"#,
                )
                .await
                .is_some()
        }
    })
    .await;
    assert!(asked_twice, "requests: {:?}", fake.requests_for(uid));

    let history = history_of(&app, uid).await;
    let polled: Vec<&Value> = history.iter().filter(|e| e["source"] == "poll").collect();
    assert_eq!(polled.len(), 1, "{history:?}");
    assert_eq!(polled[0]["kind"], "progress");
    assert_eq!(polled[0]["outcome"], "rejected");
    assert_eq!(polled[0]["reason"], "progress after processed");
    assert_eq!(polled[0]["status_after"], Value::Null);

    let status = status_of(&app, uid).await;
    assert_eq!(status["status"], "processed");
    assert_eq!(status["progress"], 100.0);
    assert_eq!(status["version"], 3);
    // A rejected answer is no news: the video is still stuck.
    assert_eq!(status["stalled"], true);
    app.stop().await;
}

#[tokio::test]
async fn the_provider_being_down_never_blocks_ingestion() {
    let fake = FakeProvider::start().await;
    let app = spawn(vec![cloudflare("cf-down", 1, Some(fake.poll_config()))]).await;
    let (hanging, failing) = ("cfuid-hang", "cfuid-fail");
    fake.set(hanging, Behaviour::Hang);
    fake.set(failing, Behaviour::Fail(500));
    for uid in [hanging, failing] {
        let body = cf_video(uid, None, "inprogress", "10.000000", "2026-11-23T10:00:05Z");
        deliver(&app, "cf-down", &body).await;
    }
    let asked = eventually(Duration::from_secs(5), || async {
        !fake.requests_for(hanging).is_empty()
    })
    .await;
    assert!(asked, "the hanging video was never polled");

    // A poll of this very video hangs (timeout 3 s): webhooks for it and for others go through.
    for (uid, pct) in [(hanging, "20.000000"), ("cfuid-fresh", "5.000000")] {
        let body = cf_video(uid, None, "inprogress", pct, "2026-11-23T10:00:10Z");
        let started = Instant::now();
        deliver(&app, "cf-down", &body).await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(1000),
            "a webhook waited {took:?} behind a hanging poll"
        );
    }
    assert_eq!(status_of(&app, hanging).await["progress"], 20.0);

    // The hanging request ends at its timeout, the failing one backs off: 1 s after the
    // first failure would allow 4 requests in 3.5 s; doubling waits (jittered) allow at most 3.
    let timed_out = eventually(Duration::from_secs(6), || {
        let app = &app;
        async move {
            metric(
                app,
                r#"provider_polls_total{provider="cf-down",result="timeout"}"#,
            )
            .await
            .is_some()
        }
    })
    .await;
    assert!(timed_out, "the hanging poll never timed out");
    let failures = fake.requests_for(failing);
    let first = failures.first().expect("the failing video was polled").at;
    let within: Vec<Duration> = failures
        .iter()
        .map(|r| r.at - first)
        .filter(|gap| *gap <= Duration::from_millis(3500))
        .collect();
    assert!(
        (2..=3).contains(&within.len()),
        "requests within 3.5 s of the first: {within:?}"
    );
    assert!(metric(
        &app,
        r#"provider_polls_total{provider="cf-down",result="http_status"}"#
    )
    .await
    .is_some_and(|n| n >= 2.0));
    assert_eq!(status_of(&app, failing).await["status"], "processing");
    app.stop().await;
}

#[tokio::test]
async fn a_video_past_its_deadline_is_flagged_stalled_until_a_new_event() {
    let app = spawn(vec![cloudflare("cf-stall", 2, None)]).await;
    let uid = "cfuid0003";
    deliver(
        &app,
        "cf-stall",
        &cf_video(uid, None, "inprogress", "10.000000", "2026-11-23T10:00:05Z"),
    )
    .await;
    assert_eq!(status_of(&app, uid).await["stalled"], false);

    let mut video_sse = SseClient::connect(&app.url(&format!("/videos/{uid}/events")), &[]).await;
    let mut global_sse = SseClient::connect(&app.url("/events?provider=cf-stall"), &[]).await;
    let first = video_sse.next_status().await;
    assert_eq!(first.id, "1");
    let first: Value = serde_json::from_str(&first.data).unwrap();
    assert_eq!(first["stalled"], false);

    // Time alone stalls it: pushed on both streams, at the same version.
    let flagged = video_sse
        .next_within(Duration::from_secs(5))
        .await
        .expect("a stalled event");
    assert_eq!(flagged.event, "status");
    assert_eq!(flagged.id, "1");
    let flagged: Value = serde_json::from_str(&flagged.data).unwrap();
    assert_eq!(flagged["stalled"], true);
    assert_eq!(flagged["status"], "processing");
    let global = global_sse
        .next_within(Duration::from_secs(5))
        .await
        .expect("a stalled event on /events");
    // No id: a flag set by time has no position to resume from.
    assert_eq!(global.id, "");
    let global: Value = serde_json::from_str(&global.data).unwrap();
    assert_eq!(
        (global["video_id"].as_str(), global["stalled"].as_bool()),
        (Some(uid), Some(true))
    );

    assert_eq!(status_of(&app, uid).await["stalled"], true);
    let listed = app.get("/videos?provider=cf-stall").await;
    assert_eq!(listed.body["videos"][0]["stalled"], true, "{}", listed.text);
    let only_stalled = app.get("/videos?provider=cf-stall&stalled=true").await;
    assert_eq!(only_stalled.body["videos"].as_array().unwrap().len(), 1);
    let not_stalled = app.get("/videos?provider=cf-stall&stalled=false").await;
    assert_eq!(
        not_stalled.body["videos"],
        json!([]),
        "{}",
        not_stalled.text
    );
    let counted = eventually(Duration::from_secs(2), || {
        let app = &app;
        async move { metric(app, r#"videos_stalled{provider="cf-stall"}"#).await == Some(1.0) }
    })
    .await;
    assert!(counted);
    assert_eq!(
        metric(&app, r#"videos_stalled_total{provider="cf-stall"}"#).await,
        Some(1.0)
    );

    // A resuming client that has version 1 may have missed the flag: it gets it again.
    let mut resumed = SseClient::connect(
        &app.url(&format!("/videos/{uid}/events")),
        &[("last-event-id", "1")],
    )
    .await;
    let again: Value = serde_json::from_str(&resumed.next_status().await.data).unwrap();
    assert_eq!(again["stalled"], true);

    // News clears it at once.
    deliver(
        &app,
        "cf-stall",
        &cf_video(uid, None, "inprogress", "55.000000", "2026-11-23T10:00:50Z"),
    )
    .await;
    let moved = video_sse.next_status().await;
    assert_eq!(moved.id, "2");
    let moved: Value = serde_json::from_str(&moved.data).unwrap();
    assert_eq!(
        (moved["progress"].as_f64(), moved["stalled"].as_bool()),
        (Some(55.0), Some(false))
    );
    assert_eq!(status_of(&app, uid).await["stalled"], false);
    let cleared = eventually(Duration::from_secs(2), || {
        let app = &app;
        async move { metric(app, r#"videos_stalled{provider="cf-stall"}"#).await == Some(0.0) }
    })
    .await;
    assert!(cleared);
    app.stop().await;
}

#[tokio::test]
async fn settled_videos_are_never_flagged() {
    let app = spawn(vec![cloudflare("cf-settled", 1, None)]).await;
    for (uid, state) in [("cfuid-ready", "ready"), ("cfuid-error", "error")] {
        let body = cf_video(uid, None, state, "100.000000", "2026-11-23T10:00:05Z");
        deliver(&app, "cf-settled", &body).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for uid in ["cfuid-ready", "cfuid-error"] {
        assert_eq!(status_of(&app, uid).await["stalled"], false, "{uid}");
    }
    assert_eq!(
        metric(&app, r#"videos_stalled{provider="cf-settled"}"#).await,
        Some(0.0)
    );
    app.stop().await;
}

#[tokio::test]
async fn an_enveloped_answer_is_unwrapped_and_basic_credentials_are_sent() {
    let fake = FakeProvider::start().await;
    let mut poll = fake.poll_config();
    poll.bearer_token = None;
    poll.username = Some("video-status".into());
    poll.password = Some(Secret::new("s3cret-pass"));
    poll.body_pointer = Some("/result".into());
    let app = spawn(vec![cloudflare("cf-envelope", 1, Some(poll))]).await;
    let uid = "cfuid0004";
    let ready = cf_video(uid, None, "ready", "100.000000", "2026-11-23T10:01:00Z");
    // Cloudflare's API wraps the video object.
    fake.set(
        uid,
        Behaviour::Answer(json!({ "result": ready, "success": true, "errors": [] })),
    );
    let body = cf_video(uid, None, "inprogress", "70.000000", "2026-11-23T10:00:30Z");
    deliver(&app, "cf-envelope", &body).await;

    let recovered = eventually(Duration::from_secs(8), || {
        let app = &app;
        async move { status_of(app, uid).await["status"] == "ready" }
    })
    .await;
    assert!(recovered, "{}", status_of(&app, uid).await);
    let requests = fake.requests_for(uid);
    // base64("video-status:s3cret-pass")
    let basic = "Basic dmlkZW8tc3RhdHVzOnMzY3JldC1wYXNz";
    assert!(
        requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(basic)),
        "{requests:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_answer_about_another_video_is_refused() {
    let fake = FakeProvider::start().await;
    let app = spawn(vec![cloudflare("cf-other", 1, Some(fake.poll_config()))]).await;
    let (asked, other) = ("cfuid0005", "cfuid0006");
    fake.set(
        asked,
        Behaviour::Answer(cf_video(
            other,
            None,
            "ready",
            "100.000000",
            "2026-11-23T10:01:00Z",
        )),
    );
    let body = cf_video(
        asked,
        None,
        "inprogress",
        "70.000000",
        "2026-11-23T10:00:30Z",
    );
    deliver(&app, "cf-other", &body).await;

    let refused = eventually(Duration::from_secs(8), || {
        let app = &app;
        async move {
            metric(
                app,
                r#"provider_polls_total{provider="cf-other",result="other_video"}"#,
            )
            .await
            .is_some()
        }
    })
    .await;
    assert!(refused);
    assert_eq!(status_of(&app, asked).await["status"], "processing");
    assert_eq!(app.get(&format!("/videos/{other}")).await.status, 404);
    app.stop().await;
}
