//! The behaviour every [`EventStore`] backend must show, written once against the trait. Each
//! check takes a fresh, empty store and panics with a message on the first broken promise; a
//! backend runs all of them through `conformance_tests!` so a new check reaches every backend.
//!
//! Test support, compiled into the library so integration tests and every backend's tests can
//! use it; nothing in the service calls it. Checks only use the trait, never a backend's SQL.

use std::ops::Bound;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures_util::future::join_all;
use serde_json::json;

use super::{
    AppendOutcome, AppendRequest, AuditEntry, AuditKind, AuditRecord, Change, EventStore,
    QuarantineRecord, QuarantinedRequest, RebuiltStatus, StatusCorrections, StatusQuery,
    StoreError, StoredEvent, StreamCursor,
};
use crate::event::{
    Assets, EventId, EventKind, FailureReason, ProviderName, RawDelivery, Source, VideoEvent,
    VideoId,
};
use crate::lifecycle::Status;
use crate::projection::VideoStatus;

/// The provider of [`sample_event`].
pub const SAMPLE_PROVIDER: &str = "test";

/// An event of provider [`SAMPLE_PROVIDER`] with no assets and no metadata. `received_at` is
/// a little after `occurred_at`, with nanoseconds, so a backend that rounds is caught.
pub fn sample_event(
    video: &str,
    event_id: &str,
    kind: EventKind,
    occurred_at_secs: i64,
) -> VideoEvent {
    let occurred_at = instant(occurred_at_secs, 0);
    VideoEvent {
        event_id: EventId::parse(event_id).expect("valid sample event id"),
        video_id: VideoId::parse(video).expect("valid sample video id"),
        provider: ProviderName::parse(SAMPLE_PROVIDER).expect("valid sample provider"),
        kind,
        occurred_at,
        received_at: occurred_at + Duration::nanoseconds(2_123_456_789),
        source: Source::Webhook,
        assets: Assets::default(),
        metadata: crate::event::Metadata::NULL,
    }
}

/// A delivery that could have carried `event`: a JSON body naming it and a `webhook-id` header.
pub fn sample_raw(event: &VideoEvent) -> RawDelivery {
    let body = json!({
        "id": event.event_id,
        "type": event.kind.name(),
        "data": {"videoId": event.video_id},
    });
    RawDelivery {
        body: body.to_string().into(),
        headers: vec![("webhook-id".into(), event.event_id.to_string())],
    }
}

/// An append of `event` with its [`sample_raw`] delivery and no status.
pub fn append_request(event: VideoEvent, expected_version: u64) -> AppendRequest {
    AppendRequest {
        expected_version,
        raw: sample_raw(&event),
        event: event.into(),
        status: None,
    }
}

/// A status document, as the fold would give it after `version` events.
pub fn sample_status(video: &str, provider: &str, status: Status, version: u64) -> VideoStatus {
    VideoStatus {
        video_id: VideoId::parse(video).expect("valid sample video id"),
        provider: ProviderName::parse(provider).expect("valid sample provider"),
        status,
        progress: (status == Status::Processing).then_some(37.5),
        assets: Assets::default(),
        error: None,
        metadata: json!({"version": version}).into(),
        version,
        updated_at: instant(2_000_000_000 + version as i64, 987_654_321),
        last_event_at: instant(2_000_000_000 + version as i64, 0),
    }
}

fn instant(secs: i64, nanos: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, nanos).expect("sample instant in range")
}

fn video(id: &str) -> VideoId {
    VideoId::parse(id).expect("valid sample video id")
}

fn with_status(mut request: AppendRequest, status: VideoStatus) -> AppendRequest {
    request.status = Some(status);
    request
}

/// Rebuilt statuses, each reflecting global position `position`.
fn rebuilt(statuses: Vec<VideoStatus>, position: u64) -> Vec<RebuiltStatus> {
    statuses
        .into_iter()
        .map(|status| RebuiltStatus { status, position })
        .collect()
}

/// A whole rebuild in one go: claim the shadow, fill it, swap it in, free the replaced rows.
async fn replace_statuses<S: EventStore>(
    store: &S,
    statuses: Vec<RebuiltStatus>,
    upto: u64,
    fold_version: u32,
) {
    let shadow = store.begin_shadow().await.unwrap();
    store.write_shadow(shadow, statuses).await.unwrap();
    store.swap_shadow(shadow, upto, fold_version).await.unwrap();
    free_replaced(store).await;
}

/// Frees what a swap replaced, a row at a time; answers how many rows there were.
async fn free_replaced<S: EventStore>(store: &S) -> u64 {
    let mut freed = 0;
    loop {
        match store.free_replaced_statuses(Some(1)).await.unwrap() {
            0 => return freed,
            rows => freed += rows,
        }
    }
}

/// The table a swap replaced is freed in steps, and no swap runs before it is gone.
pub async fn a_replaced_table_is_freed_before_the_next_swap<S: EventStore>(store: &S) {
    assert_eq!(store.free_replaced_statuses(Some(10)).await.unwrap(), 0);
    assert_eq!(store.free_replaced_statuses(None).await.unwrap(), 0);
    let mut expected = Vec::new();
    for n in 0..3 {
        let id = format!("vid_{n}");
        let status = sample_status(&id, SAMPLE_PROVIDER, Status::Uploaded, 1);
        let event = sample_event(&id, &format!("evt_{n}"), EventKind::Uploaded, 1_000);
        appended(store, with_status(append_request(event, 0), status.clone())).await;
        expected.push(status);
    }
    let shadow = store.begin_shadow().await.unwrap();
    store
        .write_shadow(shadow, rebuilt(expected.clone(), 3))
        .await
        .unwrap();
    let mut feed = store.changes();
    let swaps = store.status_table_swaps().await.unwrap();
    store.swap_shadow(shadow, 3, 9).await.unwrap();
    // A swap changes any status at once: followers hear it as one `Rebuilt`, and followers in
    // other processes see the count of swaps move.
    assert_eq!(announced(&mut feed), [Change::Rebuilt]);
    assert_eq!(store.status_table_swaps().await.unwrap(), swaps + 1);
    let next = store.begin_shadow().await.unwrap();
    assert!(matches!(
        store.swap_shadow(next, 3, 9).await,
        Err(StoreError::Unavailable(_))
    ));
    // The swapped-in table serves meanwhile.
    assert_eq!(
        store.get_status(&video("vid_1")).await.unwrap(),
        Some(expected[1].clone())
    );
    assert_eq!(store.free_replaced_statuses(Some(2)).await.unwrap(), 2);
    assert_eq!(free_replaced(store).await, 1);
    store.swap_shadow(next, 3, 9).await.unwrap();
    // All at once, when nothing else writes.
    assert!(store.free_replaced_statuses(None).await.unwrap() > 0);
    assert_eq!(store.free_replaced_statuses(None).await.unwrap(), 0);
    let again = store.begin_shadow().await.unwrap();
    store.swap_shadow(again, 3, 9).await.unwrap();
}

async fn appended<S: EventStore>(store: &S, request: AppendRequest) -> (u64, u64) {
    match store.append(request).await {
        Ok(AppendOutcome::Appended { position, version }) => (position, version),
        other => panic!("expected Appended, got {other:?}"),
    }
}

/// Appends to one stream, then reads back exactly what was appended: the events, their
/// versions, their positions, from `read_stream` and from `read_all`.
pub async fn append_then_read_stream_round_trips<S: EventStore>(store: &S) {
    assert_eq!(store.head_position().await.unwrap(), 0, "empty log");
    let mut uploaded = sample_event("vid_round_trip", "evt_1", EventKind::Uploaded, 1_000);
    uploaded.metadata = json!({"user": "u_1", "tags": ["a", "b"], "n": 3}).into();
    let progress = sample_event(
        "vid_round_trip",
        "evt_2",
        EventKind::Progress { percent: 42.5 },
        1_005,
    );
    let mut ready = sample_event("vid_round_trip", "evt_3", EventKind::Ready, 1_010);
    ready.assets = Assets {
        resolutions: vec!["1080p".into(), "720p".into()],
        poster: Some("https://cdn.example/poster.jpg".into()),
        thumbnail: Some("https://cdn.example/thumb.jpg".into()),
        playback_url: Some("https://cdn.example/index.m3u8".into()),
        duration_secs: Some(63.25),
    };
    let failed = sample_event(
        "vid_round_trip",
        "evt_4",
        EventKind::Failed {
            error: Some(FailureReason {
                code: Some("invalid_input".into()),
                message: "codec not supported".into(),
            }),
        },
        1_020,
    );

    let mut expected = Vec::new();
    for (n, event) in [uploaded, progress, ready, failed].into_iter().enumerate() {
        let (position, version) = appended(store, append_request(event.clone(), n as u64)).await;
        assert_eq!(version, n as u64 + 1, "versions count the stream from 1");
        expected.push(StoredEvent {
            position,
            version,
            event,
        });
    }
    assert!(
        expected.windows(2).all(|w| w[0].position < w[1].position),
        "positions increase: {expected:?}"
    );

    let stream = store.read_stream(&video("vid_round_trip")).await.unwrap();
    assert_eq!(stream, expected);
    assert_eq!(store.read_all(0, 100).await.unwrap(), expected);
    assert_eq!(
        store.head_position().await.unwrap(),
        expected.last().unwrap().position
    );
    assert!(store
        .read_stream(&video("vid_never_seen"))
        .await
        .unwrap()
        .is_empty());
    store.ping().await.unwrap();
}

/// An append whose expected version is not the stream's length is refused with both numbers,
/// and writes nothing.
pub async fn stale_expected_version_conflicts<S: EventStore>(store: &S) {
    let stream = video("vid_conflict");
    let first = sample_event("vid_conflict", "evt_1", EventKind::Uploaded, 1_000);
    let second = sample_event("vid_conflict", "evt_2", EventKind::ProcessingStarted, 1_001);
    appended(store, append_request(first, 0)).await;

    for expected in [0, 5] {
        match store.append(append_request(second.clone(), expected)).await {
            Err(StoreError::Conflict {
                stream: s,
                expected: e,
                actual: 1,
            }) if s == stream && e == expected => {}
            other => panic!("expected Conflict from {expected} to 1, got {other:?}"),
        }
    }
    assert_eq!(store.read_stream(&stream).await.unwrap().len(), 1);

    let (_, version) = appended(store, append_request(second, 1)).await;
    assert_eq!(version, 2);
}

/// `(provider, event_id)` is stored once: a redelivery (even with a stale version, even naming
/// another video) answers Duplicate and tells the same body from a different one. The same
/// event id from another provider is a different event.
pub async fn duplicate_event_id_is_stored_once<S: EventStore>(store: &S) {
    let stream = video("vid_dup");
    let event = sample_event("vid_dup", "evt_1", EventKind::Uploaded, 1_000);
    appended(store, append_request(event.clone(), 0)).await;
    let same_body = AppendOutcome::Duplicate {
        stream: stream.clone(),
        same_body: true,
    };
    let other_body = AppendOutcome::Duplicate {
        stream: stream.clone(),
        same_body: false,
    };

    for expected_version in [1, 0] {
        let outcome = store
            .append(append_request(event.clone(), expected_version))
            .await
            .unwrap();
        assert_eq!(
            outcome, same_body,
            "redelivery at version {expected_version}"
        );
    }

    let mut changed = append_request(event.clone(), 1);
    changed.raw.body = r#"{"id":"evt_1","different":true}"#.into();
    assert_eq!(store.append(changed).await.unwrap(), other_body);

    let mut elsewhere = event.clone();
    elsewhere.video_id = video("vid_dup_other");
    elsewhere.kind = EventKind::Ready;
    assert_eq!(
        store.append(append_request(elsewhere, 0)).await.unwrap(),
        other_body,
        "the stored event's stream is reported"
    );
    assert!(store
        .read_stream(&video("vid_dup_other"))
        .await
        .unwrap()
        .is_empty());

    let mut other_provider = event.clone();
    other_provider.provider = ProviderName::parse("other").unwrap();
    let (_, version) = appended(store, append_request(other_provider, 1)).await;
    assert_eq!(version, 2);

    assert_eq!(store.read_stream(&stream).await.unwrap().len(), 2);
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 2);
    assert_eq!(store.stats().appended, 2, "duplicates are not counted");
}

/// Fifty concurrent deliveries of one event: exactly one is appended, the rest are duplicates.
pub async fn concurrent_appends_of_one_event_store_it_once<S: EventStore>(store: &S) {
    let event = sample_event("vid_race", "evt_1", EventKind::Uploaded, 1_000);
    let outcomes = join_all((0..50).map(|_| store.append(append_request(event.clone(), 0)))).await;

    let mut appended = 0;
    for outcome in outcomes {
        match outcome {
            Ok(AppendOutcome::Appended { version: 1, .. }) => appended += 1,
            Ok(AppendOutcome::Duplicate {
                stream,
                same_body: true,
            }) if stream == event.video_id => {}
            other => panic!("expected Appended or a same-body Duplicate, got {other:?}"),
        }
    }
    assert_eq!(appended, 1);
    assert_eq!(store.read_stream(&event.video_id).await.unwrap().len(), 1);
}

/// 200 appends, 50 streams written concurrently, 4 in order per stream: everything is stored,
/// global positions are strictly increasing without gaps, and `read_all` pages through them.
pub async fn concurrent_appends_across_streams_are_gap_free<S: EventStore>(store: &S) {
    const STREAMS: usize = 50;
    const PER_STREAM: u64 = 4;
    let write_stream = |s: usize| async move {
        let mut positions = Vec::new();
        for v in 0..PER_STREAM {
            let event = sample_event(
                &format!("vid_{s:02}"),
                &format!("evt_{s:02}_{v}"),
                EventKind::Progress {
                    percent: v as f64 * 25.0,
                },
                1_000 + v as i64,
            );
            let (position, version) = appended(store, append_request(event, v)).await;
            assert_eq!(version, v + 1);
            positions.push(position);
        }
        positions
    };
    let mut positions: Vec<u64> = join_all((0..STREAMS).map(write_stream))
        .await
        .into_iter()
        .flatten()
        .collect();
    positions.sort_unstable();

    let all = store.read_all(0, 1_000).await.unwrap();
    assert_eq!(all.len(), STREAMS * PER_STREAM as usize);
    let read_positions: Vec<u64> = all.iter().map(|e| e.position).collect();
    assert_eq!(
        read_positions, positions,
        "read_all returns what was appended"
    );
    assert!(
        read_positions.windows(2).all(|w| w[1] == w[0] + 1),
        "positions are gap-free: {read_positions:?}"
    );
    assert_eq!(
        store.head_position().await.unwrap(),
        *positions.last().unwrap()
    );

    for s in 0..STREAMS {
        let stream = store
            .read_stream(&video(&format!("vid_{s:02}")))
            .await
            .unwrap();
        let versions: Vec<u64> = stream.iter().map(|e| e.version).collect();
        assert_eq!(versions, [1, 2, 3, 4]);
        assert!(stream.windows(2).all(|w| w[0].position < w[1].position));
    }

    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_all(after, 7).await.unwrap();
        assert!(page.len() <= 7);
        let Some(last) = page.last() else { break };
        after = last.position;
        paged.extend(page);
    }
    assert_eq!(paged, all, "pages of read_all concatenate to the whole log");
}

/// The status given with an append is visible as soon as the append returned, and only if
/// the event was appended: a conflict or a duplicate leaves the status as it was.
pub async fn status_is_written_with_its_append_only<S: EventStore>(store: &S) {
    let stream = video("vid_status");
    assert_eq!(store.get_status(&stream).await.unwrap(), None);
    let uploaded = sample_event("vid_status", "evt_1", EventKind::Uploaded, 1_000);
    let started = sample_event("vid_status", "evt_2", EventKind::ProcessingStarted, 1_001);
    let completed = sample_event("vid_status", "evt_3", EventKind::ProcessingCompleted, 1_002);
    let first = sample_status("vid_status", SAMPLE_PROVIDER, Status::Uploaded, 1);

    appended(
        store,
        with_status(append_request(uploaded.clone(), 0), first.clone()),
    )
    .await;
    assert_eq!(
        store.get_status(&stream).await.unwrap(),
        Some(first.clone())
    );

    let conflicting = with_status(
        append_request(started.clone(), 0),
        sample_status("vid_status", SAMPLE_PROVIDER, Status::Processing, 2),
    );
    assert!(matches!(
        store.append(conflicting).await,
        Err(StoreError::Conflict { .. })
    ));
    let duplicate = with_status(
        append_request(uploaded, 1),
        sample_status("vid_status", SAMPLE_PROVIDER, Status::Failed, 2),
    );
    assert!(matches!(
        store.append(duplicate).await,
        Ok(AppendOutcome::Duplicate { .. })
    ));
    assert_eq!(
        store.get_status(&stream).await.unwrap(),
        Some(first.clone())
    );

    appended(store, append_request(started, 1)).await;
    assert_eq!(
        store.get_status(&stream).await.unwrap(),
        Some(first),
        "an append without a status leaves it alone"
    );

    let processed = sample_status("vid_status", SAMPLE_PROVIDER, Status::Processed, 3);
    appended(
        store,
        with_status(append_request(completed, 2), processed.clone()),
    )
    .await;
    assert_eq!(store.get_status(&stream).await.unwrap(), Some(processed));
}

/// Concurrent appends where one conflicts: the others are stored with their statuses, the
/// failing one leaves no event and no status behind.
pub async fn failing_request_rolls_back_only_itself<S: EventStore>(store: &S) {
    let request = |name: &str, expected: u64| {
        let event = sample_event(name, &format!("evt_{name}"), EventKind::Uploaded, 1_000);
        let status = sample_status(name, SAMPLE_PROVIDER, Status::Uploaded, 1);
        with_status(append_request(event, expected), status)
    };
    let outcomes = join_all([
        store.append(request("vid_a", 0)),
        store.append(request("vid_b", 3)),
        store.append(request("vid_c", 0)),
    ])
    .await;
    assert!(matches!(outcomes[0], Ok(AppendOutcome::Appended { .. })));
    assert!(matches!(outcomes[1], Err(StoreError::Conflict { .. })));
    assert!(matches!(outcomes[2], Ok(AppendOutcome::Appended { .. })));

    for (name, stored) in [("vid_a", true), ("vid_b", false), ("vid_c", true)] {
        let events = store.read_stream(&video(name)).await.unwrap();
        let status = store.get_status(&video(name)).await.unwrap();
        assert_eq!(events.len(), usize::from(stored), "{name} events");
        assert_eq!(status.is_some(), stored, "{name} status");
    }
}

async fn page_ids<S: EventStore>(
    store: &S,
    query: StatusQuery,
) -> (Vec<String>, Option<String>, u64) {
    let page = store.list_statuses(query).await.unwrap();
    (
        page.videos.iter().map(|v| v.video_id.to_string()).collect(),
        page.next_after.map(|v| v.to_string()),
        page.position,
    )
}

/// `list_statuses` orders by video id, filters by status and provider, pages with `after`,
/// sets `next_after` only on a full page, and reports the global position it reflects.
pub async fn list_statuses_filters_and_pages<S: EventStore>(store: &S) {
    let rows = [
        ("v05", "mux", Status::Ready),
        ("v01", "mux", Status::Ready),
        ("v07", "mux", Status::Uploaded),
        ("v03", "fal", Status::Ready),
        ("v02", "mux", Status::Processing),
        ("v06", "fal", Status::Ready),
        ("v04", "fal", Status::Failed),
    ];
    let mut expected = Vec::new();
    for (n, (id, provider, status)) in rows.into_iter().enumerate() {
        let doc = sample_status(id, provider, status, 1);
        let event = sample_event(id, &format!("evt_{n}"), EventKind::Uploaded, 1_000);
        appended(store, with_status(append_request(event, 0), doc.clone())).await;
        expected.push(doc);
    }
    expected.sort_by(|a, b| a.video_id.cmp(&b.video_id));
    let head = store.head_position().await.unwrap();

    let everything = store
        .list_statuses(StatusQuery {
            limit: 100,
            ..StatusQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(everything.videos, expected, "whole documents, by video id");
    assert_eq!(everything.next_after, None);
    assert_eq!(everything.position, head);

    let query =
        |status: Option<Status>, provider: Option<&str>, after: Option<&str>, limit| StatusQuery {
            status,
            provider: provider.map(|p| ProviderName::parse(p).unwrap()),
            after: after.map(video),
            limit,
        };
    let ids = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let some = |id: &str| Some(id.to_string());

    assert_eq!(
        page_ids(store, query(None, None, None, 3)).await,
        (ids(&["v01", "v02", "v03"]), some("v03"), head)
    );
    assert_eq!(
        page_ids(store, query(None, None, Some("v03"), 3)).await,
        (ids(&["v04", "v05", "v06"]), some("v06"), head)
    );
    assert_eq!(
        page_ids(store, query(None, None, Some("v06"), 3)).await,
        (ids(&["v07"]), None, head)
    );
    assert_eq!(
        page_ids(store, query(Some(Status::Ready), None, None, 10)).await,
        (ids(&["v01", "v03", "v05", "v06"]), None, head)
    );
    assert_eq!(
        page_ids(store, query(None, Some("mux"), None, 10)).await,
        (ids(&["v01", "v02", "v05", "v07"]), None, head)
    );
    assert_eq!(
        page_ids(store, query(Some(Status::Ready), Some("mux"), None, 10)).await,
        (ids(&["v01", "v05"]), None, head)
    );
    assert_eq!(
        page_ids(store, query(Some(Status::Ready), None, None, 2)).await,
        (ids(&["v01", "v03"]), some("v03"), head)
    );
    assert_eq!(
        page_ids(store, query(Some(Status::Ready), None, Some("v03"), 2)).await,
        (ids(&["v05", "v06"]), some("v06"), head)
    );
    assert_eq!(
        page_ids(store, query(Some(Status::Ready), None, Some("v06"), 2)).await,
        (ids(&[]), None, head)
    );
    assert_eq!(
        page_ids(store, query(Some(Status::Deleted), None, None, 10)).await,
        (ids(&[]), None, head)
    );

    // The position moves with the next append.
    let event = sample_event("v08", "evt_8", EventKind::Uploaded, 1_000);
    let (position, _) = appended(store, append_request(event, 0)).await;
    assert_eq!(
        page_ids(store, query(None, None, None, 1)).await.2,
        position
    );
}

/// A limit of 0 answers one row, a limit above 1000 answers 1000.
pub async fn list_statuses_clamps_the_limit<S: EventStore>(store: &S) {
    let statuses: Vec<VideoStatus> = (0..1_001)
        .map(|n| sample_status(&format!("vid_{n:04}"), "mux", Status::Ready, 1))
        .collect();
    replace_statuses(store, rebuilt(statuses, 0), 0, 1).await;

    let page = store
        .list_statuses(StatusQuery {
            limit: 5_000,
            ..StatusQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.videos.len(), 1_000);
    assert_eq!(page.next_after, Some(video("vid_0999")));
    let rest = store
        .list_statuses(StatusQuery {
            limit: 5_000,
            after: page.next_after,
            ..StatusQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(rest.videos.len(), 1);
    assert_eq!(rest.next_after, None);

    let page = store.list_statuses(StatusQuery::default()).await.unwrap();
    assert_eq!(page.videos.len(), 1);
    assert_eq!(page.next_after, Some(video("vid_0000")));
}

/// A swapped-in shadow replaces every row written up to its position (rows it lacks are gone),
/// keeps rows written by later appends, and records the fold version.
pub async fn shadow_swap_replaces_the_table<S: EventStore>(store: &S) {
    assert_eq!(store.fold_version().await.unwrap(), None);
    for (n, id) in ["vid_a", "vid_b"].into_iter().enumerate() {
        let event = sample_event(id, &format!("evt_{n}"), EventKind::Uploaded, 1_000);
        let status = sample_status(id, SAMPLE_PROVIDER, Status::Uploaded, 1);
        appended(store, with_status(append_request(event, 0), status)).await;
    }
    let rebuilt_b = sample_status("vid_b", SAMPLE_PROVIDER, Status::Ready, 1);
    let rebuilt_c = sample_status("vid_c", "fal", Status::Failed, 3);
    replace_statuses(
        store,
        rebuilt(vec![rebuilt_b.clone(), rebuilt_c.clone()], 2),
        2,
        7,
    )
    .await;
    assert_eq!(store.fold_version().await.unwrap(), Some(7));

    assert_eq!(store.get_status(&video("vid_a")).await.unwrap(), None);
    assert_eq!(
        store.get_status(&video("vid_b")).await.unwrap(),
        Some(rebuilt_b.clone())
    );
    let page = store
        .list_statuses(StatusQuery {
            limit: 10,
            ..StatusQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.videos, vec![rebuilt_b, rebuilt_c.clone()]);
    assert_eq!(page.position, store.head_position().await.unwrap());
    // The swapped-in table serves the filters too.
    let failed = store
        .list_statuses(StatusQuery {
            status: Some(Status::Failed),
            limit: 10,
            ..StatusQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.videos, vec![rebuilt_c]);

    // An append after the rebuild's position wins over the rebuilt row of its video, and the
    // swapped-in table takes appends like the first one.
    let event = sample_event("vid_b", "evt_late", EventKind::Ready, 2_000);
    let live = sample_status("vid_b", SAMPLE_PROVIDER, Status::Ready, 2);
    appended(store, with_status(append_request(event, 1), live.clone())).await;
    let stale = sample_status("vid_b", SAMPLE_PROVIDER, Status::Processing, 1);
    replace_statuses(store, rebuilt(vec![stale], 2), 2, 8).await;
    assert_eq!(store.get_status(&video("vid_b")).await.unwrap(), Some(live));
    assert_eq!(store.get_status(&video("vid_c")).await.unwrap(), None);

    replace_statuses(store, Vec::new(), 3, 8).await;
    assert_eq!(store.get_status(&video("vid_b")).await.unwrap(), None);
    // The log itself is untouched.
    assert_eq!(store.read_all(0, 10).await.unwrap().len(), 3);
}

/// An online rebuild's corrections rewrite and remove rows in place, leave every other row
/// alone, and keep the row of a video appended to after the rebuild's position; the last of
/// them drops every snapshot (as a swap does) and records the fold version, the others neither.
pub async fn corrections_rewrite_only_what_differs<S: EventStore>(store: &S) {
    for (n, id) in ["vid_a", "vid_b", "vid_c"].into_iter().enumerate() {
        let event = sample_event(id, &format!("evt_{n}"), EventKind::Uploaded, 1_000);
        let status = sample_status(id, SAMPLE_PROVIDER, Status::Uploaded, 1);
        appended(
            store,
            with_status(append_request(event.clone(), 0), status.clone()),
        )
        .await;
        store
            .save_snapshot(super::Snapshot {
                video_id: video(id),
                version: 1,
                fold_version: 3,
                status,
                last_event: event,
            })
            .await
            .unwrap();
    }
    let upto = store.head_position().await.unwrap();
    // Appended after the rebuild's position: its row already folds the whole stream.
    let event = sample_event("vid_c", "evt_late", EventKind::Ready, 2_000);
    let late = sample_status("vid_c", SAMPLE_PROVIDER, Status::Ready, 2);
    appended(store, with_status(append_request(event, 1), late.clone())).await;

    let mut feed = store.changes();
    let fixed_a = sample_status("vid_a", SAMPLE_PROVIDER, Status::Ready, 1);
    let stale_c = sample_status("vid_c", SAMPLE_PROVIDER, Status::Processing, 1);
    let ghost = sample_status("vid_ghost", SAMPLE_PROVIDER, Status::Failed, 1);
    let corrections = StatusCorrections {
        rewrite: rebuilt(vec![fixed_a.clone(), stale_c, ghost.clone()], 1),
        remove: Vec::new(),
    };
    let fold_before = store.fold_version().await.unwrap();
    let swaps_before = store.status_table_swaps().await.unwrap();
    assert_eq!(
        store
            .correct_statuses(corrections, upto, None)
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.fold_version().await.unwrap(), fold_before);
    // Followers hear each status written, not the one skipped.
    assert_eq!(
        announced(&mut feed),
        [
            Change::Corrected(Arc::new(fixed_a.clone())),
            Change::Corrected(Arc::new(ghost.clone()))
        ]
    );
    assert!(store
        .load_snapshot(&video("vid_b"))
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store.get_status(&video("vid_a")).await.unwrap(),
        Some(fixed_a.clone())
    );
    assert_eq!(
        store.get_status(&video("vid_ghost")).await.unwrap(),
        Some(ghost)
    );
    assert_eq!(
        store.get_status(&video("vid_c")).await.unwrap(),
        Some(late.clone())
    );

    // The rows between two bounds, in video id order, each with the position it folds.
    let between = store
        .statuses_between(
            Bound::Excluded(video("vid_a")),
            Bound::Included(video("vid_c")),
        )
        .await
        .unwrap();
    let ids: Vec<&str> = between.iter().map(|row| row.video_id.as_str()).collect();
    assert_eq!(ids, ["vid_b", "vid_c"]);
    assert_eq!(
        between[1].stored.as_ref().map(|row| &row.status),
        Some(&late)
    );
    let all = store
        .statuses_between(Bound::Unbounded, Bound::Unbounded)
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].stored, Some(rebuilt(vec![fixed_a], 1).remove(0)));

    let removals = StatusCorrections {
        rewrite: Vec::new(),
        remove: vec![video("vid_ghost"), video("vid_c")],
    };
    assert_eq!(
        store
            .correct_statuses(removals, upto, Some(9))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.fold_version().await.unwrap(), Some(9));
    // Corrections are announced row by row, never counted as a swap.
    assert_eq!(store.status_table_swaps().await.unwrap(), swaps_before);
    // A removal has no status to announce: followers must re-read.
    assert_eq!(announced(&mut feed), [Change::Rebuilt]);
    for id in ["vid_a", "vid_b", "vid_c"] {
        assert_eq!(store.load_snapshot(&video(id)).await.unwrap(), None, "{id}");
    }
    assert_eq!(store.get_status(&video("vid_ghost")).await.unwrap(), None);
    assert_eq!(store.get_status(&video("vid_c")).await.unwrap(), Some(late));
    // The log itself is untouched.
    assert_eq!(store.read_all(0, 10).await.unwrap().len(), 4);
}

/// A shadow claimed again (another rebuild started) refuses the first claim's writes and swap,
/// and the live table is untouched by either.
pub async fn a_reclaimed_shadow_refuses_the_earlier_rebuild<S: EventStore>(store: &S) {
    let live = sample_status("vid_a", SAMPLE_PROVIDER, Status::Uploaded, 1);
    let event = sample_event("vid_a", "evt_1", EventKind::Uploaded, 1_000);
    appended(store, with_status(append_request(event, 0), live.clone())).await;

    let first = store.begin_shadow().await.unwrap();
    let second = store.begin_shadow().await.unwrap();
    assert_ne!(first, second);
    let stale = rebuilt(vec![sample_status("vid_a", "x", Status::Ready, 1)], 1);
    assert!(matches!(
        store.write_shadow(first, stale).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.swap_shadow(first, 1, 9).await,
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(store.get_status(&video("vid_a")).await.unwrap(), Some(live));
    assert_eq!(store.fold_version().await.unwrap(), None);
    // The second claim still works.
    store.swap_shadow(second, 0, 9).await.unwrap();
    free_replaced(store).await;
    assert_eq!(store.fold_version().await.unwrap(), Some(9));
}

/// `read_streams` walks the log stream by stream, each in version order, resumes after a
/// cursor and leaves out events past `upto`; `read_deliveries` gives each event its raw request.
pub async fn read_streams_walks_stream_by_stream<S: EventStore>(store: &S) {
    // Interleaved appends: positions alternate between the streams.
    let mut expected: Vec<(String, u64, u64)> = Vec::new();
    for n in 0..3u64 {
        for id in ["vid_b", "vid_a", "vid_c"] {
            let event = sample_event(id, &format!("{id}_{n}"), EventKind::Uploaded, 1_000);
            let (position, version) = appended(store, append_request(event, n)).await;
            expected.push((id.to_string(), version, position));
        }
    }
    let upto = store.head_position().await.unwrap() - 1; // leaves out vid_c's last event
    expected.retain(|(_, _, position)| *position <= upto);
    expected.sort();
    let key = |e: &StoredEvent| (e.event.video_id.to_string(), e.version, e.position);

    let all = store.read_streams(None, None, upto, 100).await.unwrap();
    assert_eq!(all.iter().map(key).collect::<Vec<_>>(), expected);

    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .read_streams(after.clone(), None, upto, 2)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(StreamCursor {
            video_id: last.event.video_id.clone(),
            version: last.version,
        });
        paged.extend(page.iter().map(key));
    }
    assert_eq!(paged, expected);
    assert!(store
        .read_streams(None, None, 0, 10)
        .await
        .unwrap()
        .is_empty());

    // An upper bound ends the walk before that stream, wherever it starts.
    let before_b = store
        .read_streams(None, Some(video("vid_b")), upto, 100)
        .await
        .unwrap();
    let only_a: Vec<_> = expected
        .iter()
        .filter(|e| e.0 == "vid_a")
        .cloned()
        .collect();
    assert_eq!(before_b.iter().map(key).collect::<Vec<_>>(), only_a);

    // The cuts of `split_streams` are ascending stream ids, never the first stream, and the
    // ranges between them add up to the whole walk.
    assert!(store.split_streams(1).await.unwrap().is_empty());
    let cuts = store.split_streams(3).await.unwrap();
    assert_eq!(
        cuts,
        vec![video("vid_b"), video("vid_c")],
        "3 streams of 3 events"
    );
    let mut bounds: Vec<Option<VideoId>> = cuts.iter().cloned().map(Some).collect();
    bounds.push(None);
    let mut ranged = Vec::new();
    let mut start = None;
    for before in bounds {
        let range = store
            .read_streams(start, before.clone(), u64::MAX, 100)
            .await
            .unwrap();
        ranged.extend(range.iter().map(key));
        start = before.map(|video_id| StreamCursor {
            video_id,
            version: 0,
        });
    }
    let mut everything: Vec<_> = store
        .read_streams(None, None, u64::MAX, 100)
        .await
        .unwrap()
        .iter()
        .map(key)
        .collect();
    everything.sort();
    assert_eq!(ranged, everything);

    let deliveries = store.read_deliveries(2, 3).await.unwrap();
    assert_eq!(
        deliveries
            .iter()
            .map(|d| d.stored.position)
            .collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    for delivery in &deliveries {
        assert_eq!(delivery.raw, sample_raw(&delivery.stored.event));
    }
}

/// Audit records read back equal, newest first.
pub async fn audit_round_trips_newest_first<S: EventStore>(store: &S) {
    let ignored = AuditRecord {
        provider: ProviderName::parse("mux").unwrap(),
        event_id: Some(EventId::parse("evt_9").unwrap()),
        video_id: Some(video("vid_9")),
        kind: AuditKind::Ignored,
        detail: "untracked type video.asset.track.ready".into(),
        received_at: instant(1_800_000_000, 123_456_789),
        raw: RawDelivery {
            body: r#"{"type":"video.asset.track.ready"}"#.into(),
            headers: vec![("mux-signature".into(), "t=1,v1=00".into())],
        },
    };
    let conflict = AuditRecord {
        provider: ProviderName::parse("fal").unwrap(),
        event_id: None,
        video_id: None,
        kind: AuditKind::Conflict,
        detail: "event id reused with a different body".into(),
        received_at: instant(1_800_000_001, 1),
        raw: RawDelivery {
            body: vec![0xff, 0x00, 0x01].into(),
            headers: Vec::new(),
        },
    };
    assert!(store.list_audit(10).await.unwrap().is_empty());
    store.record_audit(ignored.clone()).await.unwrap();
    store.record_audit(conflict.clone()).await.unwrap();

    assert_eq!(
        store.list_audit(10).await.unwrap(),
        vec![conflict.clone(), ignored.clone()]
    );
    assert_eq!(store.list_audit(1).await.unwrap(), vec![conflict.clone()]);

    // By kind, oldest first, after an id.
    let later = AuditRecord {
        detail: "untracked again".into(),
        ..ignored.clone()
    };
    store.record_audit(later.clone()).await.unwrap();
    let ignored_only = store
        .list_audit_after(AuditKind::Ignored, 0, 10)
        .await
        .unwrap();
    let records: Vec<&AuditRecord> = ignored_only.iter().map(|e| &e.record).collect();
    assert_eq!(records, vec![&ignored, &later]);
    let AuditEntry { id: first_id, .. } = ignored_only[0];
    assert!(first_id < ignored_only[1].id);
    let rest = store
        .list_audit_after(AuditKind::Ignored, first_id, 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].record, later);
    let conflicts = store
        .list_audit_after(AuditKind::Conflict, 0, 10)
        .await
        .unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].record, conflict);
}

/// Quarantined requests read back equal, oldest first, after the given id.
pub async fn quarantine_round_trips_oldest_first<S: EventStore>(store: &S) {
    let record = |n: u32| QuarantineRecord {
        provider: ProviderName::parse("mux").unwrap(),
        error_code: "no_video_id".into(),
        reason: format!("request {n} names no video"),
        received_at: instant(1_800_000_000 + i64::from(n), 999_999_999),
        raw: RawDelivery {
            body: format!(r#"{{"n":{n}}}"#).into(),
            headers: vec![
                ("webhook-id".into(), format!("msg_{n}")),
                ("webhook-signature".into(), "v1,AAAA".into()),
            ],
        },
    };
    assert!(store.list_quarantine(0, 10).await.unwrap().is_empty());
    let first = store.quarantine(record(1)).await.unwrap();
    let second = store.quarantine(record(2)).await.unwrap();
    assert!(first < second, "ids increase: {first} then {second}");

    let both = vec![
        QuarantinedRequest {
            id: first,
            record: record(1),
        },
        QuarantinedRequest {
            id: second,
            record: record(2),
        },
    ];
    assert_eq!(store.list_quarantine(0, 10).await.unwrap(), both);
    assert_eq!(store.list_quarantine(0, 1).await.unwrap(), both[..1]);
    assert_eq!(store.list_quarantine(first, 10).await.unwrap(), both[1..]);
    assert!(store.list_quarantine(second, 10).await.unwrap().is_empty());
}

/// Concurrent appends are committed together: fewer commits than appended events.
pub async fn concurrent_appends_share_commits<S: EventStore>(store: &S) {
    let before = store.stats();
    let outcomes = join_all((0..100).map(|n| {
        let event = sample_event(
            &format!("vid_{n:03}"),
            &format!("evt_{n:03}"),
            EventKind::Uploaded,
            1_000,
        );
        store.append(append_request(event, 0))
    }))
    .await;
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, Ok(AppendOutcome::Appended { .. }))));

    let after = store.stats();
    let appended = after.appended - before.appended;
    let commits = after.commits - before.commits;
    assert_eq!(appended, 100);
    assert!(
        commits >= 1 && commits < appended,
        "group commit: {commits} commits for {appended} appends"
    );
}

/// Live followers hear every append with a status, once, in position order, and nothing else.
pub async fn changes_announce_appends_in_position_order<S: EventStore>(store: &S) {
    let mut feed = store.changes();
    let mut appends = Vec::new();
    for n in 0..40u64 {
        let video = format!("vid_feed_{}", n % 4);
        let event = sample_event(
            &video,
            &format!("evt_feed_{n}"),
            EventKind::Uploaded,
            n as i64,
        );
        let mut request = append_request(event, n / 4);
        request.status = Some(sample_status(
            &video,
            SAMPLE_PROVIDER,
            Status::Uploaded,
            n / 4 + 1,
        ));
        appends.push(store.append(request));
    }
    // Concurrent, so the store is free to batch them.
    for outcome in futures_util::future::join_all(appends).await {
        assert!(
            matches!(outcome, Ok(AppendOutcome::Appended { .. })),
            "{outcome:?}"
        );
    }
    // A duplicate announces nothing.
    let again = sample_event("vid_feed_0", "evt_feed_0", EventKind::Uploaded, 0);
    store.append(append_request(again, 10)).await.unwrap();
    let mut positions = Vec::new();
    for change in announced(&mut feed) {
        let Change::Appended(change) = change else {
            panic!("only appends happened, yet the feed said {change:?}");
        };
        assert_eq!(change.video_id, change.status.video_id);
        assert_eq!(change.version, change.status.version);
        positions.push(change.position);
    }
    assert_eq!(positions, (1..=40).collect::<Vec<u64>>());
}

/// What the feed holds now.
fn announced(feed: &mut tokio::sync::broadcast::Receiver<Change>) -> Vec<Change> {
    std::iter::from_fn(|| feed.try_recv().ok()).collect()
}

/// A snapshot round-trips, a newer one replaces it, `read_stream_after` and `load_video` give
/// the tail, and a rebuild's swap drops every snapshot.
pub async fn snapshots_round_trip_and_go_with_a_rebuild<S: EventStore>(store: &S) {
    let events: Vec<VideoEvent> = (1..=3)
        .map(|n| {
            sample_event(
                "vid_snap",
                &format!("evt_{n}"),
                EventKind::Uploaded,
                1_000 + n,
            )
        })
        .collect();
    for (n, event) in events.iter().enumerate() {
        appended(store, append_request(event.clone(), n as u64)).await;
    }
    let snapshot = |version: u64| super::Snapshot {
        video_id: video("vid_snap"),
        version,
        fold_version: 3,
        status: sample_status("vid_snap", SAMPLE_PROVIDER, Status::Uploaded, version),
        last_event: events[version as usize - 1].clone(),
    };
    assert_eq!(store.load_snapshot(&video("vid_snap")).await.unwrap(), None);
    store.save_snapshot(snapshot(1)).await.unwrap();
    store.save_snapshot(snapshot(2)).await.unwrap();
    assert_eq!(
        store.load_snapshot(&video("vid_snap")).await.unwrap(),
        Some(snapshot(2))
    );
    let tail = store
        .read_stream_after(&video("vid_snap"), 2)
        .await
        .unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!((tail[0].version, &tail[0].event), (3, &events[2]));
    assert!(store
        .read_stream_after(&video("vid_snap"), 3)
        .await
        .unwrap()
        .is_empty());

    // What an actor starts from: the snapshot and the events after it, or a whole stream.
    let log = store.load_video(&video("vid_snap")).await.unwrap();
    assert_eq!(log.snapshot, Some(snapshot(2)));
    assert_eq!(
        log.events
            .iter()
            .map(|e| (e.version, &e.event))
            .collect::<Vec<_>>(),
        vec![(3, &events[2])]
    );
    let other = sample_event("vid_plain", "evt_plain", EventKind::Uploaded, 1_000);
    appended(store, append_request(other.clone(), 0)).await;
    let log = store.load_video(&video("vid_plain")).await.unwrap();
    assert_eq!(log.snapshot, None);
    assert_eq!(
        log.events.iter().map(|e| &e.event).collect::<Vec<_>>(),
        vec![&other]
    );
    assert_eq!(
        store.load_video(&video("vid_never")).await.unwrap(),
        super::VideoLog::default()
    );

    replace_statuses(store, Vec::new(), 3, 3).await;
    assert_eq!(store.load_snapshot(&video("vid_snap")).await.unwrap(), None);
}

/// An alias names one video, the first link wins, and a video's own id resolves to itself.
pub async fn aliases_link_once_and_resolve<S: EventStore>(store: &S) {
    let id = |raw: &str| VideoId::parse(raw).unwrap();
    store
        .link_aliases(id("vid_app"), vec![id("asset_1"), id("upload_1")])
        .await
        .unwrap();
    // A later, conflicting link does not move an alias already taken.
    store
        .link_aliases(id("vid_other"), vec![id("asset_1"), id("upload_2")])
        .await
        .unwrap();
    let found = store
        .resolve_aliases(vec![
            id("upload_1"),
            id("never_linked"),
            id("asset_1"),
            id("vid_app"),
            id("upload_2"),
        ])
        .await
        .unwrap();
    assert_eq!(
        found,
        vec![
            (id("upload_1"), id("vid_app")),
            (id("asset_1"), id("vid_app")),
            (id("vid_app"), id("vid_app")),
            (id("upload_2"), id("vid_other")),
        ]
    );
}

/// Expands to one `#[tokio::test]` per conformance check, each on a fresh store from `$fresh`
/// (an `async fn() -> (Guard, Store)`; the guard, e.g. a temp dir, lives as long as the test).
/// A new check is added here once and runs on every backend.
#[cfg(test)]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::store::conformance::conformance_tests!(
            @each $fresh;
            append_then_read_stream_round_trips,
            stale_expected_version_conflicts,
            duplicate_event_id_is_stored_once,
            concurrent_appends_of_one_event_store_it_once,
            concurrent_appends_across_streams_are_gap_free,
            status_is_written_with_its_append_only,
            failing_request_rolls_back_only_itself,
            list_statuses_filters_and_pages,
            list_statuses_clamps_the_limit,
            shadow_swap_replaces_the_table,
            corrections_rewrite_only_what_differs,
            a_reclaimed_shadow_refuses_the_earlier_rebuild,
            read_streams_walks_stream_by_stream,
            audit_round_trips_newest_first,
            quarantine_round_trips_oldest_first,
            concurrent_appends_share_commits,
            changes_announce_appends_in_position_order,
            aliases_link_once_and_resolve,
            snapshots_round_trip_and_go_with_a_rebuild,
            a_replaced_table_is_freed_before_the_next_swap,
        );
    };
    (@each $fresh:path; $($check:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let (_guard, store) = $fresh().await;
            $crate::store::conformance::$check(&store).await;
        }
    )*};
}

#[cfg(test)]
pub(crate) use conformance_tests;
