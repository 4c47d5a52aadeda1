//! What operators rely on: health, metrics, listing, actor passivation, overload answers and
//! start-up errors that name the key.

use std::time::Duration;

use crate::support::{eventually, lifecycle, native, spawn_app, spawn_app_with, test_config};
use video_status::app::Application;
use video_status::config::{Config, Overrides, Secret};

/// A nearly full disk still takes the probe's small write: readiness also asks for free space,
/// so a load balancer moves traffic away before webhooks start to fail.
#[tokio::test]
async fn readiness_fails_below_the_free_disk_minimum() {
    let app = spawn_app().await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    let free = ready.body["disk"]["free_bytes"]
        .as_u64()
        .expect("free bytes");
    assert!(free > 0, "{}", ready.text);
    assert_eq!(ready.body["disk"]["min_free_bytes"], 64 * 1024 * 1024);
    let metrics = app.get("/metrics").await;
    assert!(
        metrics.text.contains("# TYPE store_disk_free_bytes gauge"),
        "{}",
        metrics.text
    );
    app.stop().await;

    // More than any disk here has free.
    let app = spawn_app_with(|config| config.limits.min_free_disk_bytes = u64::MAX / 2).await;
    let refused = app.get("/readyz").await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.body["status"], "unavailable");
    let reason = refused.body["store"].as_str().unwrap();
    assert!(
        reason.contains("free on the store's disk, below limits.min_free_disk_bytes"),
        "{reason}"
    );
    // Webhooks are still taken while there is room: readiness only steers traffic.
    let (id, body) = lifecycle("vid_low_disk", "ready").remove(0);
    assert_eq!(app.deliver("demo", &id, &body).await.status, 200);
    app.stop().await;

    let app = spawn_app_with(|config| config.limits.min_free_disk_bytes = 0).await;
    assert_eq!(
        app.get("/readyz").await.status,
        200,
        "0 turns the check off"
    );
    app.stop().await;
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.body["status"], "ok");
    assert_eq!(app.get("/readyz").await.body["status"], "ready");
    let (id, body) = lifecycle("vid_metrics", "ready").remove(0);
    app.deliver("demo", &id, &body).await;
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.text.contains("webhooks_total"), "{}", metrics.text);
    assert!(
        metrics.text.contains("store_commits_total"),
        "{}",
        metrics.text
    );
    // Counters are typed as such (rate() over them), and every metric says what it counts.
    assert!(
        metrics.text.contains("# TYPE store_commits_total counter"),
        "{}",
        metrics.text
    );
    assert!(
        metrics.text.contains("# HELP webhooks_total "),
        "{}",
        metrics.text
    );
    // How long webhooks take to answer, as a histogram with buckets.
    assert!(
        metrics.text.contains(
            "webhook_duration_seconds_bucket{provider=\"demo\",result=\"accepted\",le=\"0.005\"}"
        ),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains("webhook_duration_seconds_count{provider=\"demo\",result=\"accepted\"}"),
        "{}",
        metrics.text
    );
    // Open SSE streams, counted when scraped. (The gauge is process-wide and other tests' apps
    // set it too when scraped: polled until this app's own scrape shows its subscriber.)
    let _subscriber =
        crate::support::SseClient::connect(&app.url("/videos/vid_metrics/events"), &[]).await;
    let counted = eventually(Duration::from_secs(5), || async {
        let text = app.get("/metrics").await.text;
        text.contains("sse_subscribers{stream=\"video\"} 1")
            && text.contains("sse_watched_videos 1")
    })
    .await;
    assert!(counted, "{}", app.get("/metrics").await.text);
    app.stop().await;
}

#[tokio::test]
async fn head_answers_as_get_does_without_a_body() {
    let app = spawn_app().await;
    let (id, body) = lifecycle("vid_head", "ready").remove(0);
    app.deliver("demo", &id, &body).await;
    let client = crate::support::http_client();
    for path in [
        "/healthz",
        "/readyz",
        "/videos/vid_head",
        "/videos?limit=5",
        "/",
    ] {
        let got = app.get(path).await;
        let head = client.head(app.url(path)).send().await.unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
        let length = head.headers()[reqwest::header::CONTENT_LENGTH].clone();
        assert_eq!(
            length.to_str().unwrap(),
            got.text.len().to_string(),
            "{path}"
        );
        assert!(head.bytes().await.unwrap().is_empty(), "{path}");
    }
    let missing = client
        .head(app.url("/videos/never_seen"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // A stream's headers, and the answer ends rather than staying open as the stream would.
    let stream = tokio::time::timeout(
        Duration::from_secs(5),
        client.head(app.url("/videos/vid_head/events")).send(),
    )
    .await
    .expect("HEAD of a stream answers at once")
    .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream.headers()[reqwest::header::CONTENT_TYPE],
        "text/event-stream"
    );
    let rest = tokio::time::timeout(Duration::from_secs(5), stream.bytes()).await;
    assert!(rest.expect("the answer ends").unwrap().is_empty());
    let post_only = client.head(app.url("/webhooks/demo")).send().await.unwrap();
    assert_eq!(post_only.status(), 405);
    app.stop().await;
}

#[tokio::test]
async fn each_providers_deliveries_show_in_readyz_and_metrics() {
    let app = spawn_app().await;
    let (id, body) = lifecycle("vid_provider_health", "ready").remove(0);
    assert_eq!(app.deliver("demo", &id, &body).await.status, 200);
    assert_eq!(
        app.deliver("demo", &id, &body).await.body["status"],
        "duplicate"
    );
    // Signed with a secret the `plain` provider does not have: its secret changed.
    let bytes = serde_json::to_vec(&body).unwrap();
    let forged = vec![(
        "x-webhook-signature".to_string(),
        "sha256=".to_string() + &"0".repeat(64),
    )];
    assert_eq!(app.post_raw("plain", &forged, bytes).await.status, 401);

    let ready = app.get("/readyz").await;
    let providers = &ready.body["providers"];
    assert_eq!(providers["demo"]["counts"]["accepted"], 1, "{}", ready.text);
    assert_eq!(
        providers["demo"]["counts"]["duplicate"], 1,
        "{}",
        ready.text
    );
    assert!(providers["demo"]["last_verified_at"].is_string());
    assert_eq!(
        providers["plain"]["counts"]["unauthorized"], 1,
        "{}",
        ready.text
    );
    assert!(
        providers["plain"]["last_verified_at"].is_null(),
        "{}",
        ready.text
    );
    assert!(providers["plain"]["last_unauthorized_at"].is_string());
    assert!(providers["rotating"]["last_webhook_at"].is_null());

    let metrics = app.get("/metrics").await.text;
    for line in [
        r#"webhooks_total{provider="plain",result="unauthorized"}"#,
        r#"webhooks_total{provider="demo",result="duplicate"}"#,
        r#"webhook_last_verified_timestamp_seconds{provider="demo"}"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_answer_json_404() {
    let app = spawn_app().await;
    let answer = app.get("/nothing/here").await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.body["error"], "not_found");
    let missing = app.get("/videos/never_seen").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"], "video_not_found");
    // The id as the client wrote it, not a Rust type's debug form.
    assert_eq!(
        missing.body["message"],
        "no event was ever received for video never_seen"
    );
    app.stop().await;
}

/// A client that fills the API's template (`?status=&provider=&limit=&cursor=`) from a form with
/// blank filters asks for everything, not for a 400.
#[tokio::test]
async fn empty_query_values_mean_no_filter_and_a_bad_limit_is_named() {
    let app = spawn_app().await;
    for (id, body) in lifecycle("vid_blank_filters", "ready") {
        app.deliver("demo", &id, &body).await;
    }
    let everything = app.get("/videos").await;
    let blank = app
        .get("/videos?status=&provider=&limit=&cursor=&stalled=&token=")
        .await;
    assert_eq!(blank.status, 200, "{}", blank.text);
    assert_eq!(blank.body["videos"], everything.body["videos"]);
    assert_eq!(blank.body["videos"].as_array().map(Vec::len), Some(1));

    let bad = app.get("/videos?limit=abc").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"], "invalid_limit");
    assert_eq!(
        bad.body["message"],
        "limit must be a whole number between 1 and 1000; got \"abc\""
    );
    let bad = app.get("/videos?stalled=maybe").await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.body["message"],
        "stalled must be true or false; got \"maybe\""
    );
    // The admin lists read `limit` the same way.
    for path in ["/admin/quarantine?limit=0", "/admin/audit?limit=1001"] {
        let bad = app.get_admin(path).await;
        assert_eq!(bad.status, 400, "{path}: {}", bad.text);
        assert_eq!(bad.body["error"], "invalid_limit", "{path}");
    }
    assert_eq!(app.get_admin("/admin/audit?limit=&").await.status, 200);

    let stream = crate::support::SseClient::connect(
        &app.url("/events?status=&provider=&last_event_id="),
        &[],
    )
    .await;
    assert_eq!(stream.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn listing_filters_by_status_and_provider_and_pages_with_a_cursor() {
    let app = spawn_app().await;
    for n in 0..7 {
        let ends = if n < 5 { "ready" } else { "failed" };
        for (id, body) in lifecycle(&format!("vid_list_{n}"), ends) {
            app.deliver("demo", &id, &body).await;
        }
    }
    let ready = app.get("/videos?status=ready&limit=2").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    let mut seen: Vec<String> = Vec::new();
    let mut page = ready;
    loop {
        for video in page.body["videos"].as_array().unwrap() {
            assert_eq!(video["status"], "ready");
            seen.push(video["video_id"].as_str().unwrap().to_string());
        }
        assert!(page.body["position"].as_u64().unwrap() >= 35);
        match page.body["next_cursor"].as_str() {
            Some(cursor) => {
                page = app
                    .get(&format!("/videos?status=ready&limit=2&cursor={cursor}"))
                    .await
            }
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..5).map(|n| format!("vid_list_{n}")).collect::<Vec<_>>()
    );
    let failed = app.get("/videos?status=failed&provider=demo").await;
    assert_eq!(failed.body["videos"].as_array().unwrap().len(), 2);
    assert_eq!(
        app.get("/videos?provider=plain").await.body["videos"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let bad = app.get("/videos?status=sideways").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"], "invalid_status");
    app.stop().await;
}

#[tokio::test]
async fn idle_actors_passivate_and_reload_their_stream_on_the_next_event() {
    let app = spawn_app_with(|config| config.actors.idle_timeout_secs = 1).await;
    let events = lifecycle("vid_idle", "ready");
    for (id, body) in &events[..3] {
        app.deliver("demo", id, body).await;
    }
    assert!(app.state.videos.active_actors() >= 1);
    let videos = app.state.videos.clone();
    assert!(
        eventually(Duration::from_secs(5), || {
            let v = videos.clone();
            async move { v.active_actors() == 0 }
        })
        .await
    );
    // The redelivery is still known, and the next event folds on the reloaded state.
    assert_eq!(
        app.deliver("demo", &events[2].0, &events[2].1).await.body["status"],
        "duplicate"
    );
    for (id, body) in &events[3..] {
        assert_eq!(
            app.deliver("demo", id, body).await.body["status"],
            "accepted"
        );
    }
    let status = app.get("/videos/vid_idle").await;
    assert_eq!(status.body["status"], "ready");
    assert_eq!(status.body["version"], 5);
    app.stop().await;
}

/// The value of a Prometheus counter line in `/metrics`, 0 when absent.
async fn counter(app: &crate::support::TestApp, line: &str) -> f64 {
    let metrics = app.get("/metrics").await.text;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn passivated(app: &crate::support::TestApp) {
    let videos = app.state.videos.clone();
    assert!(
        eventually(Duration::from_secs(5), || {
            let v = videos.clone();
            async move { v.active_actors() == 0 }
        })
        .await
    );
}

#[tokio::test]
async fn a_long_stream_restarts_from_its_snapshot_and_a_late_event_still_folds_in_place() {
    let app = spawn_app_with(|config| {
        config.actors.idle_timeout_secs = 1;
        config.actors.snapshot_after_events = 3;
    })
    .await;
    let from_snapshot = r#"actor_activations_total{from="snapshot"}"#;
    let events = lifecycle("vid_snap", "ready");
    for (id, body) in &events[..4] {
        assert_eq!(
            app.deliver("demo", id, body).await.body["status"],
            "accepted"
        );
    }
    passivated(&app).await;
    let conn = rusqlite::Connection::open(&app.db_path).unwrap();
    let snapshot_version = || -> i64 {
        conn.query_row(
            "SELECT version FROM snapshots WHERE video_id = 'vid_snap'",
            [],
            |row| row.get(0),
        )
        .unwrap()
    };
    assert_eq!(snapshot_version(), 4);

    // The next event folds on the snapshot's tip: the stream is not read.
    let before = counter(&app, from_snapshot).await;
    let ready = app.deliver("demo", &events[4].0, &events[4].1).await;
    assert_eq!(ready.body["outcome"], "accepted", "{}", ready.text);
    assert!(counter(&app, from_snapshot).await > before);
    // An old redelivery is not in the tip; the store's unique key still answers it.
    let again = app.deliver("demo", &events[1].0, &events[1].1).await;
    assert_eq!(again.body["status"], "duplicate", "{}", again.text);
    passivated(&app).await;
    assert_eq!(snapshot_version(), 5);

    // A late event sorts before the tip: the whole stream decides it, as if never snapshotted.
    let late = native(
        "vid_snap-late",
        "failed",
        "vid_snap",
        "2026-11-23T10:00:07.000Z",
    );
    let answer = app.deliver("demo", "vid_snap-late", &late).await;
    assert_eq!(answer.body["status"], "accepted", "{}", answer.text);
    let mut live = app.get("/videos/vid_snap").await.body;
    // `stalled` is judged at read time, not folded.
    live.as_object_mut().unwrap().remove("stalled");
    assert_eq!(live["status"], "ready");
    assert_eq!(live["version"], 6);
    let refolded = video_status::projection::rebuild::refold_all(&app.state.store)
        .await
        .unwrap();
    let expected =
        serde_json::to_value(&refolded[&video_status::event::VideoId::parse("vid_snap").unwrap()])
            .unwrap();
    assert_eq!(live, expected);

    // A rebuild drops every snapshot (actors write new ones as their streams grow).
    assert_eq!(app.post_admin("/admin/rebuild").await.status, 202);
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.get_admin("/admin/rebuild").await.body["phase"] == "done"
        })
        .await
    );
    let count: i64 = conn
        .query_row("SELECT COUNT(*) FROM snapshots", [], |row| row.get(0))
        .unwrap();
    assert_eq!(count, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_flooded_video_answers_503_with_retry_after_instead_of_queueing_without_bound() {
    let app = spawn_app_with(|config| config.limits.max_pending_per_video = 1).await;
    let sends = (0..64).map(|n| {
        let body = native(
            &format!("evt_flood_{n}"),
            "processing.progress",
            "vid_flood",
            &format!("2026-11-23T10:00:{:02}Z", n % 60),
        );
        let app = &app;
        async move { app.deliver("demo", &format!("evt_flood_{n}"), &body).await }
    });
    let answers = futures_util::future::join_all(sends).await;
    let busy: Vec<_> = answers.iter().filter(|a| a.status == 503).collect();
    assert!(
        answers.iter().all(|a| a.status == 200 || a.status == 503),
        "{answers:?}"
    );
    assert!(
        !busy.is_empty(),
        "64 concurrent deliveries to one video with a queue bound of 1"
    );
    assert!(
        busy.iter()
            .all(|a| a.retry_after.is_some() && a.body["error"] == "overloaded"),
        "{busy:?}"
    );
    let accepted = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(
        app.history_ids("vid_flood").await.len(),
        accepted,
        "every 200 is in the log, no 503 is"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_standard_secret_stops_start_up_naming_the_provider() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir.path().join("x.db"));
    config.providers[1].secrets = vec![Secret::new("whsec_not!!base64")];
    let error = match Application::build(config).await {
        Ok(_) => panic!("start-up must fail"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("rotating") && error.contains("secrets"),
        "{error}"
    );
    assert!(
        !error.contains("not!!base64"),
        "never print the secret: {error}"
    );
}

#[tokio::test]
async fn a_config_error_names_the_key_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:8080\"\n[limits]\nmax_body_bytes = \"big\"\n",
    )
    .unwrap();
    let error = Config::load(Some(&path), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("max_body_bytes"), "{error}");
    std::fs::write(
        &path,
        "[[provider]]\nname = \"x\"\nscheme = \"carrier-pigeon\"\n",
    )
    .unwrap();
    let error = Config::load(Some(&path), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("scheme"), "{error}");
}

/// What an operator reads when `video-status` refuses a config: one line, the key as they wrote
/// it (in the file, or the variable's name), the reason once, and where it came from.
#[test]
fn the_command_line_names_a_bad_key_once_as_the_operator_wrote_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[limits]\nmax_body_bytes = \"big\"\n").unwrap();
    let store = format!("sqlite://{}", dir.path().join("never.db").display());
    let migrate = |config: Option<&std::path::Path>, env: &[(&str, &str)]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_video-status"));
        command.args(["migrate", "--store", &store]);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let output = command.envs(env.iter().copied()).output().unwrap();
        assert!(!output.status.success());
        String::from_utf8(output.stderr).unwrap()
    };

    let from_file = migrate(Some(&path), &[]);
    assert_eq!(
        from_file.trim_end(),
        format!(
            "error: config: limits.max_body_bytes: invalid type: found string \"big\", \
             expected usize (in {})",
            path.display()
        )
    );

    let variable = "VIDEO_STATUS_LIMITS__MAX_BODY_BYTES";
    let from_environment = migrate(None, &[(variable, "abc")]);
    assert!(
        from_environment.starts_with(&format!("error: config: {variable}: invalid type")),
        "{from_environment}"
    );
    assert_eq!(
        from_environment.matches("invalid type").count(),
        1,
        "{from_environment}"
    );
    assert!(!dir.path().join("never.db").exists());
}

/// `VIDEO_STATUS_CONFIG` names the file (as `--config` does) and `VIDEO_STATUS_SIMULATE_SECRET`
/// is `simulate`'s: neither is taken for a config key, so an operator's environment holding them
/// does not stop the service.
#[test]
fn the_command_line_variables_are_not_config_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("named-by-the-variable.db");
    let path = dir.path().join("video-status.toml");
    std::fs::write(&path, format!("store = \"sqlite://{}\"\n", store.display())).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_video-status"))
        .arg("migrate")
        .env("VIDEO_STATUS_CONFIG", &path)
        .env(
            "VIDEO_STATUS_SIMULATE_SECRET",
            "whsec_c2ltdWxhdGUtc2VjcmV0LTEyMzQ=",
        )
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(store.exists(), "migrated the store the file names");
}

/// `simulate --config` signs as the server's own config says: one file for both, no secret on
/// the command line.
#[tokio::test]
async fn simulate_signs_with_the_provider_the_servers_config_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("video-status.toml");
    std::fs::write(
        &path,
        format!(
            "store = \"sqlite://{}\"\n\n[[provider]]\nname = \"acme\"\n\
             scheme = \"hmac-sha256\"\nsecrets = [\"acme-shared-secret-2026\"]\n\
             header = \"X-Acme-Signature\"\n",
            dir.path().join("simulated.db").display()
        ),
    )
    .unwrap();
    let config = path.to_str().unwrap();
    let server = crate::support::ServerProcess::start(&["--config", config]);
    let url = server.url.clone();
    let simulate = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_video-status"))
            .args([
                "simulate",
                "--provider",
                "acme",
                "--videos",
                "3",
                "--url",
                &url,
            ])
            .env("VIDEO_STATUS_CONFIG", &path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&simulate.stdout);
    assert!(
        simulate.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&simulate.stderr)
    );
    assert!(report.contains("errors      none"), "{report}");
    assert!(server.terminate().await.success());
}

/// A rebuild or a verify of a mistyped path says so, instead of "verifying" a new empty store.
#[test]
fn rebuild_refuses_a_store_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("mistyped.db");
    let store = format!("sqlite://{}", missing.display());
    for args in [&["rebuild"][..], &["rebuild", "--verify"]] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_video-status"))
            .args(args)
            .args(["--store", &store])
            .env_remove("VIDEO_STATUS_CONFIG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("no store at {}", missing.display())),
            "{args:?}: {stderr}"
        );
        assert!(!missing.exists(), "{args:?} created nothing");
    }

    // An empty file is no store either: verify would have written a schema into it.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, "").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_video-status"))
        .args(["rebuild", "--verify", "--store"])
        .arg(format!("sqlite://{}", empty.display()))
        .env_remove("VIDEO_STATUS_CONFIG")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert_eq!(
        std::fs::metadata(&empty).unwrap().len(),
        0,
        "left as it was"
    );

    // A store that cannot be opened is named, wherever its URL came from.
    let unreachable = "sqlite:///proc/video-status-nowhere/x.db";
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_video-status"))
        .arg("migrate")
        .env("VIDEO_STATUS_STORE", unreachable)
        .env_remove("VIDEO_STATUS_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains(unreachable), "{stderr}");
}

#[tokio::test]
async fn a_failing_actor_answers_503_then_restarts_on_the_next_delivery() {
    let app = spawn_app().await;
    // A stream the actor cannot load: its pre_start fails and the actor dies with the delivery.
    let conn = rusqlite::Connection::open(&app.db_path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute(
        "INSERT INTO events (stream_id, stream_version, position, provider, event_id, kind, occurred_at, received_at, body_sha256, payload)
         VALUES ('vid_broken', 1, 1, 'demo', 'evt_garbage', 'uploaded', 0, 0, zeroblob(32), x'ffffffff')",
        [],
    )
    .unwrap();
    let (id, body) = lifecycle("vid_broken", "ready").remove(1);
    let started = std::time::Instant::now();
    let answer = app.deliver("demo", &id, &body).await;
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert!(answer.retry_after.is_some());
    assert!(started.elapsed() < Duration::from_secs(5), "never a hang");
    assert!(!answer.text.contains("ffffffff"));

    conn.execute("DELETE FROM events WHERE event_id = 'evt_garbage'", [])
        .unwrap();
    let again = app.deliver("demo", &id, &body).await;
    assert_eq!(
        again.status, 200,
        "a fresh actor takes the retry: {}",
        again.text
    );
    assert_eq!(again.body["status"], "accepted");
    app.stop().await;
}

#[tokio::test]
async fn the_sample_config_in_ops_loads_and_starts() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/video-status.toml");
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(
        Some(&path),
        &Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            store: Some(format!("sqlite://{}", dir.path().join("ops.db").display())),
        },
    )
    .expect("the documented sample config is valid");
    assert_eq!(config.providers.len(), 8);
    let app = Application::build(config).await.expect("and starts");
    drop(app);
}
