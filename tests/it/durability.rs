//! What is acknowledged survives: restarts, SIGKILL in the middle of traffic, SIGTERM, and a
//! status table that can be verified against the log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;

use crate::support::{lifecycle, native, spawn_app, spawn_app_at, test_providers, ServerProcess};
use video_status::providers::Providers;

#[tokio::test]
async fn a_restart_keeps_every_status() {
    let app = spawn_app().await;
    for n in 0..5 {
        for (id, body) in lifecycle(
            &format!("vid_restart_{n}"),
            if n % 2 == 0 { "ready" } else { "failed" },
        ) {
            assert_eq!(app.deliver("demo", &id, &body).await.status, 200);
        }
    }
    let mut before = Vec::new();
    for n in 0..5 {
        before.push(app.get(&format!("/videos/vid_restart_{n}")).await);
    }
    let db_path = app.db_path.clone();
    let dir = app.stop().await;

    let again = spawn_app_at(&db_path, |_| {}).await;
    for (n, old) in before.iter().enumerate() {
        let now = again.get(&format!("/videos/vid_restart_{n}")).await;
        assert_eq!(now.body, old.body);
    }
    // The actors rebuild their state from the log: a redelivery is still a duplicate.
    let (id, body) = lifecycle("vid_restart_0", "ready").remove(0);
    assert_eq!(
        again.deliver("demo", &id, &body).await.body["status"],
        "duplicate"
    );
    again.stop().await;
    drop(dir);
}

fn start_server(db: &Path) -> ServerProcess {
    ServerProcess::start(&["--store", &format!("sqlite://{}", db.display())])
}

/// Acknowledged (event id → video id) pairs.
type Acked = Arc<Mutex<BTreeMap<String, String>>>;

/// Eight clients post signed events until told to stop, recording every 200 in `acked`.
async fn send_until(url: &str, acked: Acked, stop: tokio::sync::watch::Receiver<bool>) -> Acked {
    let providers = Providers::from_config(&test_providers()).unwrap();
    let demo = providers.get("demo").unwrap();
    let mut clients = Vec::new();
    for client_no in 0..8 {
        let (acked, demo, url, stop) = (acked.clone(), demo.clone(), url.to_string(), stop.clone());
        clients.push(tokio::spawn(async move {
            let http = crate::support::http_client();
            let mut n = 0u64;
            while !*stop.borrow() {
                // Half the events share videos with other clients, half are the client's own.
                let video = if n % 2 == 0 {
                    format!("vid_shared_{}", n % 10)
                } else {
                    format!("vid_c{client_no}_{}", n % 7)
                };
                let event_id = format!("evt_c{client_no}_{n}");
                let at = format!("2026-11-23T10:{:02}:{:02}Z", (n / 60) % 60, n % 60);
                let body =
                    serde_json::to_vec(&native(&event_id, "processing.progress", &video, &at))
                        .unwrap();
                let mut request = http.post(format!("{url}/webhooks/demo")).body(body.clone());
                for (name, value) in demo.sign(&event_id, Utc::now(), &body).unwrap() {
                    request = request.header(name, value);
                }
                if let Ok(response) = request.send().await {
                    if response.status().as_u16() == 200 {
                        acked.lock().unwrap().insert(event_id, video);
                    }
                }
                n += 1;
            }
        }));
    }
    for client in clients {
        // A client whose request was cut by the kill ends with an error; that is the point.
        let _ = client.await;
    }
    acked
}

async fn assert_all_present_once(url: &str, acked: &BTreeMap<String, String>) {
    let http = crate::support::http_client();
    let videos: BTreeSet<&String> = acked.values().collect();
    let mut found: BTreeMap<String, usize> = BTreeMap::new();
    for video in videos {
        let text = http
            .get(format!("{url}/videos/{video}/history"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let history: serde_json::Value = serde_json::from_str(&text).unwrap();
        for event in history["events"].as_array().unwrap() {
            *found
                .entry(event["event_id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    for event_id in acked.keys() {
        assert_eq!(
            found.get(event_id),
            Some(&1),
            "acknowledged {event_id} must be in the log exactly once"
        );
    }
}

#[tokio::test]
async fn sigkill_under_load_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let mut server = start_server(&db);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let acked: Acked = Arc::default();
    let senders = tokio::spawn({
        let (url, acked) = (server.url.clone(), acked.clone());
        async move { send_until(&url, acked, stop_rx).await }
    });
    // Killed in the middle of real load: after 1.5 s, and not before 100 acknowledgements (the
    // whole test suite beside it can slow a debug server down that much).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < 100 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.child.kill().unwrap(); // SIGKILL: no chance to flush anything
    server.child.wait().unwrap();
    stop_tx.send(true).unwrap();
    let acked = senders.await.unwrap().lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "the load was real: {} acknowledged",
        acked.len()
    );

    let mut restarted = start_server(&db);
    assert_all_present_once(&restarted.url, &acked).await;
    restarted.child.kill().unwrap();
    restarted.child.wait().unwrap();
}

#[tokio::test]
async fn sigterm_drains_in_flight_webhooks_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("term.db");
    let server = start_server(&db);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let senders = tokio::spawn({
        let url = server.url.clone();
        async move { send_until(&url, Acked::default(), stop_rx).await }
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let exit = server.terminate().await;
    stop_tx.send(true).unwrap();
    assert!(exit.success(), "SIGTERM exits 0, got {exit:?}");
    let acked = senders.await.unwrap().lock().unwrap().clone();
    assert!(!acked.is_empty());

    let mut restarted = start_server(&db);
    assert_all_present_once(&restarted.url, &acked).await;
    restarted.child.kill().unwrap();
    restarted.child.wait().unwrap();
}

#[tokio::test]
async fn rebuild_verify_passes_on_a_true_projection_and_catches_a_corrupted_row() {
    let app = spawn_app().await;
    for n in 0..4 {
        for (id, body) in lifecycle(&format!("vid_verify_{n}"), "ready") {
            app.deliver("demo", &id, &body).await;
        }
    }
    let db_path = app.db_path.clone();
    let dir = app.stop().await;
    let store_url = format!("sqlite://{}", db_path.display());
    let verify = |store: &str| {
        Command::new(env!("CARGO_BIN_EXE_video-status"))
            .args(["rebuild", "--verify", "--store", store])
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let clean = verify(&store_url);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );

    let conn = rusqlite::Connection::open(&db_path).unwrap();
    for damage in [
        "UPDATE status SET doc = json_set(doc, '$.status', 'processing') WHERE video_id = 'vid_verify_2'",
        // Not part of the status a client reads, but it decides whether an append's row wins
        // over a rebuild's: a wrong one would keep the row from ever being corrected.
        "UPDATE status SET position = position + 1000 WHERE video_id = 'vid_verify_1'",
        "UPDATE status SET doc = '{' WHERE video_id = 'vid_verify_3'",
    ] {
        assert_eq!(conn.execute(damage, []).unwrap(), 1, "{damage}");
    }
    drop(conn);
    let caught = verify(&store_url);
    let stdout = String::from_utf8_lossy(&caught.stdout);
    assert!(!caught.status.success(), "{stdout}");
    let line = |video: &str| {
        stdout
            .lines()
            .find(|line| line.contains(video))
            .unwrap_or_else(|| panic!("no line for {video}: {stdout}"))
            .to_string()
    };
    assert!(line("vid_verify_2").contains("status: stored \"processing\" != log \"ready\""));
    assert!(line("vid_verify_1").contains("position"), "{stdout}");
    assert!(
        line("vid_verify_3").contains("cannot be read back"),
        "{stdout}"
    );
    assert!(!stdout.contains("vid_verify_0"), "{stdout}");

    // A plain rebuild repairs it.
    let rebuild = Command::new(env!("CARGO_BIN_EXE_video-status"))
        .args(["rebuild", "--store", &store_url])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(rebuild.status.success());
    assert!(verify(&store_url).status.success());
    drop(dir);
}

/// `rebuild --verify` beside a server that keeps taking webhooks: rows the appends rewrite
/// while the walk runs fold events past the head it started from, and must not read as
/// differences; a damaged row must still be caught.
#[tokio::test]
async fn rebuild_verify_beside_live_webhooks_reports_only_real_differences() {
    let app = Arc::new(spawn_app().await);
    for n in 0..150 {
        for (id, body) in lifecycle(&format!("vid_steady_{n:03}"), "ready") {
            assert_eq!(app.deliver("demo", &id, &body).await.status, 200);
        }
    }
    let store_url = format!("sqlite://{}", app.db_path.display());
    let verify = move || {
        let store_url = store_url.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new(env!("CARGO_BIN_EXE_video-status"))
                    .args(["rebuild", "--verify", "--store", &store_url])
                    .env("RUST_LOG", "warn")
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sent = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..4)
        .map(|sender| {
            let (app, stop_rx, sent) = (app.clone(), stop_rx.clone(), sent.clone());
            tokio::spawn(async move {
                for n in 0.. {
                    // New videos (their rows appear) and new events of the steady ones (theirs
                    // move), interleaved.
                    let video = if n % 2 == 0 {
                        format!("vid_live_{sender}_{n:05}")
                    } else {
                        format!("vid_steady_{:03}", (n * 7 + sender) % 150)
                    };
                    for (id, body) in lifecycle(&video, "failed") {
                        if *stop_rx.borrow() {
                            return;
                        }
                        let id = format!("{id}-{sender}-{n}");
                        assert_eq!(app.deliver("demo", &id, &body).await.status, 200);
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    // At least five walks, and as many more as it takes for 300 webhooks to have gone in beside
    // them, however a busy test run schedules the senders.
    let before = sent.load(Ordering::Relaxed);
    let mut runs = 0;
    while runs < 5 || sent.load(Ordering::Relaxed) - before < 300 {
        assert!(
            runs < 200,
            "the senders stalled: {}",
            sent.load(Ordering::Relaxed)
        );
        let output = verify().await;
        assert!(
            output.status.success(),
            "run {runs}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        runs += 1;
    }
    stop_tx.send(true).unwrap();
    for sender in senders {
        sender.await.unwrap();
    }

    crate::support::corrupt_status(&app.db_path, "vid_steady_042");
    let output = verify().await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("vid_")).count(),
        1,
        "{stdout}"
    );
    assert!(stdout.contains("vid_steady_042"), "{stdout}");
}
