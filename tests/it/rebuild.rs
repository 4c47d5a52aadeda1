//! Rebuilding the status table from the log while the server keeps ingesting and serving.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::support::{eventually, lifecycle, spawn_app, spawn_app_at, SseClient, TestApp};
use video_status::cli::rebuild::refold_all;
use video_status::store::{EventStore, StatusQuery};

async fn post_admin(app: &TestApp, path: &str) -> (u16, Value) {
    let answer = app.post_admin(path).await;
    (answer.status, answer.body)
}

/// The rebuild's report once it ended. Generous: an online rebuild runs at nice 19 on one core,
/// where the rest of a parallel test run may hold it back for seconds.
async fn wait_for_rebuild(app: &TestApp) -> Value {
    let mut last = Value::Null;
    for _ in 0..1200 {
        last = app.get_admin("/admin/rebuild").await.body;
        if last["phase"] == "done" || last["phase"] == "failed" {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("rebuild did not finish: {last}");
}

async fn assert_statuses_equal_a_fresh_fold(app: &TestApp) {
    let rebuilt = refold_all(&app.state.store).await.unwrap();
    let live = app
        .state
        .store
        .list_statuses(StatusQuery {
            limit: 1000,
            ..StatusQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(live.videos.len(), rebuilt.len());
    for status in &live.videos {
        assert_eq!(Some(status), rebuilt.get(&status.video_id));
    }
}

fn corrupt_status(app: &TestApp, video_id: &str) {
    crate::support::corrupt_status(&app.db_path, video_id);
}

#[tokio::test]
async fn an_online_rebuild_while_webhooks_and_subscribers_go_on_loses_nothing_and_moves_nothing_backwards(
) {
    let app = spawn_app().await;
    for n in 0..20 {
        for (id, body) in lifecycle(&format!("vid_rb_{n:02}"), "ready") {
            app.deliver("demo", &id, &body).await;
        }
    }
    corrupt_status(&app, "vid_rb_03");
    let mut watchers = Vec::new();
    for _ in 0..10 {
        watchers.push(SseClient::connect(&app.url("/events"), &[]).await);
    }
    let mut corrupted_watcher = SseClient::connect(&app.url("/videos/vid_rb_03/events"), &[]).await;
    let corrupted = corrupted_watcher.next_status().await;
    assert!(
        corrupted.data.contains(r#""status":"uploaded""#),
        "{corrupted:?}"
    );
    let senders = async {
        let mut handles = Vec::new();
        for client in 0..4 {
            let app = &app;
            handles.push(async move {
                for n in 0..8 {
                    for (id, body) in lifecycle(&format!("vid_live_{client}_{n}"), "ready") {
                        assert_eq!(app.deliver("demo", &id, &body).await.status, 200);
                    }
                }
            });
        }
        futures_util::future::join_all(handles).await;
    };
    let rebuilding = async {
        let (status, report) = post_admin(&app, "/admin/rebuild").await;
        assert_eq!(status, 202, "{report}");
        assert_eq!(report["phase"], "folding");
        // The head is read before the answer: it covers at least the 20 lifecycles sent first.
        let total = report["events_total"].as_u64().unwrap();
        assert!(total >= 100, "{report}");
        assert_eq!(report["position"], total, "{report}");
        wait_for_rebuild(&app).await
    };
    let ((), report) = tokio::join!(senders, rebuilding);
    assert_eq!(report["phase"], "done", "{report}");
    assert!(report["events_done"].as_u64().unwrap() >= 100, "{report}");
    assert_eq!(
        app.get("/videos/vid_rb_03").await.body["status"],
        "ready",
        "the corrupted row was rebuilt"
    );
    assert_statuses_equal_a_fresh_fold(&app).await;

    // The video's own subscriber got the corrected status, at the version it had.
    let fixed = corrupted_watcher.next_status().await;
    assert_eq!(fixed.id, corrupted.id, "a correction moves no version");
    assert!(fixed.data.contains(r#""status":"ready""#), "{fixed:?}");

    // No subscriber ever saw a video's version go backwards, and a version came twice only
    // corrected.
    for watcher in &mut watchers {
        let mut seen: HashMap<String, Value> = HashMap::new();
        while let Some(event) = watcher.next_within(Duration::from_millis(100)).await {
            assert_eq!(event.event, "status", "{event:?}");
            let status: Value = serde_json::from_str(&event.data).unwrap();
            let video = status["video_id"].as_str().unwrap().to_string();
            let version = status["version"].as_u64().unwrap();
            if let Some(before) = seen.get(&video) {
                let before_version = before["version"].as_u64().unwrap();
                assert!(
                    version > before_version || (version == before_version && status != *before),
                    "{video} went from {before} to {status}"
                );
            }
            seen.insert(video, status);
        }
        assert_eq!(
            seen.len(),
            33,
            "each watcher saw every live video and the corrected one"
        );
        assert_eq!(seen["vid_rb_03"]["status"], "ready");
    }
    app.stop().await;
}

/// Subscribers of a video whose status row is damaged (`uploaded` where the log says `ready`),
/// and of every video, waiting for a rebuild to swap in a whole new table.
struct SwapWatchers {
    video: SseClient,
    damaged: eventsource_stream::Event,
    global: SseClient,
}

impl SwapWatchers {
    async fn connect(app: &TestApp, video_id: &str) -> SwapWatchers {
        for (id, body) in lifecycle(video_id, "ready") {
            app.deliver("demo", &id, &body).await;
        }
        corrupt_status(app, video_id);
        let mut video =
            SseClient::connect(&app.url(&format!("/videos/{video_id}/events")), &[]).await;
        let damaged = video.next_status().await;
        assert!(
            damaged.data.contains(r#""status":"uploaded""#),
            "{damaged:?}"
        );
        let global = SseClient::connect(&app.url("/events"), &[]).await;
        SwapWatchers {
            video,
            damaged,
            global,
        }
    }

    /// The video's subscriber gets the fixed status at the version it had; global subscribers
    /// are told to refetch.
    async fn assert_told_of_the_swap(mut self) {
        let fixed = self.video.next_status().await;
        assert_eq!(fixed.id, self.damaged.id, "a rebuild moves no version");
        assert!(fixed.data.contains(r#""status":"ready""#), "{fixed:?}");
        let reset = self
            .global
            .next_within(Duration::from_secs(5))
            .await
            .expect("global subscribers are told to refetch");
        assert_eq!(reset.event, "reset", "{reset:?}");
        let reason: Value = serde_json::from_str(&reset.data).unwrap();
        assert_eq!(reason["reason"], "projection_rebuilt");
    }
}

#[tokio::test]
async fn a_swapped_in_table_reaches_subscribers_at_the_versions_they_hold() {
    let app = spawn_app().await;
    for (id, body) in lifecycle("vid_swap_0", "ready") {
        app.deliver("demo", &id, &body).await;
    }
    let mut untouched_watcher =
        SseClient::connect(&app.url("/videos/vid_swap_0/events"), &[]).await;
    untouched_watcher.next_status().await;
    let watchers = SwapWatchers::connect(&app, "vid_swap_1").await;

    // What `video-status rebuild` does: a whole new table, swapped in.
    video_status::projection::rebuild::rebuild(&app.state.store, |_| {})
        .await
        .unwrap();

    watchers.assert_told_of_the_swap().await;
    assert!(
        untouched_watcher
            .next_within(Duration::from_millis(300))
            .await
            .is_none(),
        "a status the rebuild left as it was is not sent again"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_table_swapped_in_by_video_status_rebuild_beside_the_server_reaches_its_subscribers() {
    let app = spawn_app().await;
    let watchers = SwapWatchers::connect(&app, "vid_cli").await;

    let rebuild = std::process::Command::new(env!("CARGO_BIN_EXE_video-status"))
        .args(["rebuild", "--store"])
        .arg(format!("sqlite://{}", app.db_path.display()))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(rebuild.status.success(), "{rebuild:?}");

    // Another process's swap reaches this server's readers at once, and its subscribers once it
    // notices the count of swaps move (every 2 s).
    watchers.assert_told_of_the_swap().await;
    app.stop().await;
}

#[tokio::test]
async fn only_one_rebuild_runs_at_a_time_and_the_admin_token_guards_it() {
    let app = spawn_app().await;
    // A new store is recorded as built by this fold at start: nothing runs.
    assert_eq!(app.get_admin("/admin/rebuild").await.body["phase"], "idle");
    let first = app.state.rebuilder.start().await.expect("starts");
    assert_eq!(first.fold_version, video_status::lifecycle::FOLD_VERSION);
    assert!(
        app.state.rebuilder.start().await.is_err(),
        "a second start is refused while one runs"
    );
    let anonymous = app
        .client
        .post(app.url("/admin/rebuild"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(wait_for_rebuild(&app).await["phase"], "done");
    let (status, _) = post_admin(&app, "/admin/rebuild").await;
    assert_eq!(status, 202, "a finished rebuild does not block the next");
    wait_for_rebuild(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_status_table_built_by_another_fold_version_is_rebuilt_on_start() {
    let app = spawn_app().await;
    for (id, body) in lifecycle("vid_fold", "ready") {
        app.deliver("demo", &id, &body).await;
    }
    corrupt_status(&app, "vid_fold");
    let db_path = app.db_path.clone();
    let dir = app.stop().await;
    {
        let conn = rusqlite::Connection::open(&db_path).unwrap();
        conn.execute(
            "UPDATE store_meta SET value = '0' WHERE key = 'fold_version'",
            [],
        )
        .unwrap();
    }
    let again = spawn_app_at(&db_path, |_| {}).await;
    let store = again.state.store.clone();
    assert!(
        eventually(Duration::from_secs(30), || {
            let store = store.clone();
            async move {
                store.fold_version().await.unwrap() == Some(video_status::lifecycle::FOLD_VERSION)
            }
        })
        .await
    );
    assert_eq!(wait_for_rebuild(&again).await["phase"], "done");
    assert_eq!(again.get("/videos/vid_fold").await.body["status"], "ready");
    again.stop().await;
    drop(dir);
}
