//! The live projection, written beside each append, equals the projection rebuilt from the log,
//! whatever the traffic: shuffled, duplicated, late, contradictory.

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::json;

use crate::support::spawn_app;
use video_status::cli::rebuild::refold_all;
use video_status::store::{EventStore, StatusQuery};

const KINDS: [&str; 7] = [
    "uploaded",
    "processing.started",
    "processing.progress",
    "processing.completed",
    "ready",
    "failed",
    "deleted",
];

#[derive(Debug, Clone)]
struct Planned {
    video: usize,
    kind: usize,
    second: u32,
    progress: u32,
}

fn planned() -> impl Strategy<Value = Planned> {
    // Few videos and few timestamps, so streams interleave and ties happen.
    (0..3usize, 0..KINDS.len(), 0..6u32, 0..=100u32).prop_map(|(video, kind, second, progress)| {
        Planned {
            video,
            kind,
            second,
            progress,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn live_projection_equals_the_projection_rebuilt_from_the_log(
        events in prop::collection::vec(planned(), 1..16),
        deliveries in prop::collection::vec(any::<Index>(), 1..32),
    ) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let app = spawn_app().await;
            for pick in &deliveries {
                let n = pick.index(events.len());
                let e = &events[n];
                let (event_id, video) = (format!("evt_{n}"), format!("vid_prop_{}", e.video));
                let mut data = json!({ "videoId": video, "progress": e.progress, "metadata": { "n": n } });
                if KINDS[e.kind] == "failed" {
                    data["error"] = json!("boom");
                }
                let body = json!({ "id": event_id, "type": format!("video.{}", KINDS[e.kind]),
                                   "timestamp": format!("2026-11-23T10:00:0{}.000Z", e.second), "data": data });
                let answer = app.deliver("demo", &event_id, &body).await;
                assert_eq!(answer.status, 200, "{}", answer.text);
            }
            let rebuilt = refold_all(&app.state.store).await.unwrap();
            let live = app.state.store.list_statuses(StatusQuery { limit: 100, ..StatusQuery::default() }).await.unwrap();
            assert_eq!(live.videos.len(), rebuilt.len());
            for status in &live.videos {
                assert_eq!(Some(status), rebuilt.get(&status.video_id), "live != rebuilt");
            }
            app.stop().await;
        });
    }
}
