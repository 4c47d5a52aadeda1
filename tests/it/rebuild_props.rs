//! Rebuild equals live, through the real store: generated traffic (several videos, shuffled,
//! redelivered, late, contradictory) goes through the video actors into SQLite, as a webhook's
//! event would after its mapper, then a rebuild replaces the status table; it must come out
//! exactly as the live one was. No HTTP, so many cases fit in a few seconds.

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures_util::future::join_all;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde_json::{json, Value};

use video_status::actor::VideoManager;
use video_status::cli::rebuild::verify;
use video_status::config::{Actors, Limits};
use video_status::event::{
    Assets, EventId, EventKind, FailureReason, ProviderName, RawDelivery, VideoEvent, VideoId,
};
use video_status::projection::rebuild::rebuild;
use video_status::projection::VideoStatus;
use video_status::store::{EventStore, StatusQuery, Store};

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap() + Duration::seconds(secs)
}

fn kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        Just(EventKind::Uploaded),
        Just(EventKind::ProcessingStarted),
        select(vec![10.0, 50.0, 90.0]).prop_map(|percent| EventKind::Progress { percent }),
        Just(EventKind::ProcessingCompleted),
        Just(EventKind::Ready),
        Just(EventKind::Failed {
            error: Some(FailureReason {
                code: Some("codec".into()),
                message: "unsupported codec".into(),
            }),
        }),
        Just(EventKind::Deleted),
    ]
}

/// Few videos, ids and seconds, so streams interleave, ties happen and redeliveries are common.
fn event() -> impl Strategy<Value = VideoEvent> {
    (
        0..4usize,
        kind(),
        0..6i64,
        0..10u8,
        select(vec!["mux", "fal"]),
        proptest::option::of(select(vec!["https://cdn/a.jpg", "https://cdn/b.jpg"])),
        select(vec![
            Value::Null,
            json!({"tenant": "acme"}),
            json!({"n": 2}),
        ]),
    )
        .prop_map(|(video, kind, at, id, provider, poster, metadata)| {
            let video_id = format!("vid_p{video}");
            VideoEvent {
                event_id: EventId::parse(format!("{video_id}-e{id}")).unwrap(),
                video_id: VideoId::parse(video_id).unwrap(),
                provider: ProviderName::parse(provider).unwrap(),
                kind,
                occurred_at: t(at),
                received_at: t(at + 2),
                assets: Assets {
                    poster: poster.map(str::to_owned),
                    ..Assets::default()
                },
                metadata: metadata.into(),
                source: Default::default(),
            }
        })
}

fn raw(event: &VideoEvent) -> RawDelivery {
    RawDelivery {
        body: format!("{}:{}", event.event_id, event.kind.name()).into(),
        headers: Vec::new(),
    }
}

async fn all_statuses(store: &Store) -> Vec<VideoStatus> {
    store
        .list_statuses(StatusQuery {
            limit: 1000,
            ..StatusQuery::default()
        })
        .await
        .unwrap()
        .videos
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_rebuild_through_the_real_store_equals_the_live_projection(
        events in prop::collection::vec(event(), 1..24),
        deliveries in prop::collection::vec(any::<Index>(), 1..40),
        waves in 1..4usize,
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("props.db").display());
            let store = Store::open(&url).await.unwrap();
            let videos = VideoManager::start(store.clone(), Limits::default(), Actors::default())
                .await
                .unwrap();
            // Deliveries in a few waves of concurrent ones: arrival order differs from event
            // order, and a redelivery can race its first delivery.
            let picked: Vec<&VideoEvent> =
                deliveries.iter().map(|pick| pick.get(&events)).collect();
            for wave in picked.chunks(picked.len().div_ceil(waves)) {
                let answers = join_all(wave.iter().map(|event| {
                    let mut delivered = (*event).clone();
                    // A redelivery arrives later; the first one stored is the one that counts.
                    delivered.received_at += Duration::milliseconds(1);
                    let raw = raw(event);
                    let videos = videos.clone();
                    async move { videos.ingest(delivered, raw).await }
                }))
                .await;
                for answer in answers {
                    answer.expect("every delivery is taken");
                }
            }
            let live = all_statuses(&store).await;
            assert!(!live.is_empty());

            let report = rebuild(&store, |_| {}).await.unwrap();
            assert_eq!(report.videos, live.len() as u64);
            assert_eq!(report.events_done, store.head_position().await.unwrap());
            assert_eq!(all_statuses(&store).await, live, "rebuilt != live");
            let (folded, differences) = verify(&store).await.unwrap();
            assert_eq!(folded, live.len() as u64);
            assert!(differences.is_empty(), "{differences:?}");

            // And the rebuilt table takes live appends like the first one.
            let late = VideoEvent {
                event_id: EventId::parse("after-rebuild").unwrap(),
                occurred_at: t(100),
                received_at: t(101),
                ..picked[0].clone()
            };
            videos.ingest(late.clone(), raw(&late)).await.unwrap();
            let after = store.get_status(&late.video_id).await.unwrap().unwrap();
            let before = live.iter().find(|s| s.video_id == late.video_id).unwrap();
            assert_eq!(after.version, before.version + 1);
            let (_, differences) = verify(&store).await.unwrap();
            assert!(differences.is_empty(), "{differences:?}");
            videos.shutdown().await;
        });
    }
}
