//! `video-status rebuild --remap`: the current mappers run again over the stored raw requests.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{lifecycle, native, spawn_app, spawn_app_at, ADMIN_TOKEN};
use video_status::actor::VideoManager;
use video_status::config::DEMO_SECRET;
use video_status::providers::Providers;
use video_status::remap::remap;

/// The server's config with the `demo` provider tracking `video.encoded` as
/// `processing_completed`, which the built-in native mapper ignores.
fn config_tracking_encoded(dir: &Path, db: &Path) -> std::path::PathBuf {
    let file = dir.join("remap.toml");
    let toml = format!(
        r#"
listen = "127.0.0.1:0"
store = "sqlite://{}"

[auth]
admin_token = "{ADMIN_TOKEN}"

[[provider]]
name = "demo"
scheme = "standard"
secrets = ["{DEMO_SECRET}"]

[provider.types]
"video.encoded" = "processing_completed"
"#,
        db.display()
    );
    std::fs::write(&file, toml).unwrap();
    file
}

fn video_status(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_video-status"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn remap_after_adding_a_type_turns_previously_ignored_events_into_accepted_ones_exactly_once()
{
    let app = spawn_app().await;
    let video = "vid_remap";
    for (id, body) in lifecycle(video, "ready").into_iter().take(2) {
        assert_eq!(app.deliver("demo", &id, &body).await.status, 200);
    }
    let encoded = native("evt_encoded", "encoded", video, "2026-11-23T10:00:12.000Z");
    let caption = native(
        "evt_caption",
        "caption.ready",
        video,
        "2026-11-23T10:00:13.000Z",
    );
    // Ignored today, and delivered twice (the provider retried): two audit records, one event.
    for _ in 0..2 {
        let answer = app.deliver("demo", "evt_encoded", &encoded).await;
        assert_eq!(answer.body["status"], "ignored", "{}", answer.text);
    }
    assert_eq!(
        app.deliver("demo", "evt_caption", &caption).await.body["status"],
        "ignored"
    );
    let before = app.get(&format!("/videos/{video}")).await.body;
    assert_eq!(before["status"], "processing");
    assert_eq!(before["version"], 2);
    let db_path = app.db_path.clone();
    let dir = app.stop().await.unwrap();
    let config = config_tracking_encoded(dir.path(), &db_path);

    let first = video_status(&["rebuild", "--remap"], &config);
    let out = stdout(&first);
    assert!(first.status.success(), "{out}");
    assert!(
        out.contains("2 events in the log: 2 unchanged, 0 mapped differently"),
        "{out}"
    );
    assert!(
        out.contains("3 ignored deliveries: 1 appended, 1 already in the log, 1 still ignored"),
        "{out}"
    );

    let second = video_status(&["rebuild", "--remap"], &config);
    let out = stdout(&second);
    assert!(second.status.success(), "{out}");
    assert!(
        out.contains("3 events in the log: 3 unchanged"),
        "the appended event maps to itself: {out}"
    );
    assert!(
        out.contains("3 ignored deliveries: 0 appended, 2 already in the log, 1 still ignored"),
        "a second re-map changes nothing: {out}"
    );
    let verify = video_status(&["rebuild", "--verify"], &config);
    assert!(verify.status.success(), "{}", stdout(&verify));

    let again = spawn_app_at(&db_path, |config| {
        config.providers[0]
            .types
            .insert("video.encoded".into(), "processing_completed".into());
    })
    .await;
    assert_eq!(
        again.history_ids(video).await,
        vec!["vid_remap-evt-0", "vid_remap-evt-1", "evt_encoded"],
        "accepted exactly once, in event-time order"
    );
    let history = again.get(&format!("/videos/{video}/history")).await.body;
    let encoded_entry = &history["events"][2];
    assert_eq!(encoded_entry["outcome"], "accepted");
    assert_eq!(encoded_entry["kind"], "processing_completed");
    let after = again.get(&format!("/videos/{video}")).await.body;
    assert_eq!(after["status"], "processed");
    assert_eq!(after["version"], 3);
    // A redelivery now is a duplicate of the re-mapped event.
    assert_eq!(
        again.deliver("demo", "evt_encoded", &encoded).await.body["status"],
        "duplicate"
    );
    again.stop().await;
    drop(dir);
}

#[tokio::test]
async fn remap_reports_an_event_its_mapper_now_maps_differently_and_keeps_it() {
    let app = spawn_app().await;
    for (id, body) in lifecycle("vid_changed", "ready") {
        assert_eq!(app.deliver("demo", &id, &body).await.status, 200);
    }
    // As if the mapper now read another time from the same request: the stored raw body of
    // one event says something else than the event stored from it.
    let conn = rusqlite::Connection::open(&app.db_path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let (position, raw): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT position, raw FROM events JOIN raw_deliveries USING (position)
             WHERE event_id = 'vid_changed-evt-1'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    let from = b"2026-11-23T10:00:05.000Z";
    let to = b"2026-11-23T10:00:06.000Z";
    let at = raw.windows(from.len()).position(|w| w == from).unwrap();
    let mut changed = raw.clone();
    changed[at..at + to.len()].copy_from_slice(to);
    conn.execute(
        "UPDATE raw_deliveries SET raw = ?1 WHERE position = ?2",
        rusqlite::params![changed, position],
    )
    .unwrap();
    drop(conn);

    let store = app.state.store.clone();
    let history_before = app.history_ids("vid_changed").await;
    let providers = Providers::from_config(&app.state.config.providers).unwrap();
    let videos = VideoManager::start(
        store.clone(),
        app.state.config.limits.clone(),
        app.state.config.actors.clone(),
    )
    .await
    .unwrap();
    let report = remap(&store, &providers, &videos).await.unwrap();
    videos.shutdown().await;
    assert_eq!(report.events_checked, 5);
    assert_eq!(report.events_unchanged, 4);
    assert_eq!(report.events_differing, 1);
    assert_eq!(report.ignored_appended, 0);
    assert_eq!(report.notes.len(), 1, "{:?}", report.notes);
    assert!(
        report.notes[0].contains("vid_changed-evt-1") && report.notes[0].contains("occurred_at"),
        "{:?}",
        report.notes
    );
    assert_eq!(app.history_ids("vid_changed").await, history_before);
    assert_eq!(
        app.get("/videos/vid_changed/history").await.body["events"][1]["occurred_at"],
        "2026-11-23T10:00:05Z"
    );
    app.stop().await;
}
