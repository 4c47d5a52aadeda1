//! Given/when/then tests over pure events: one per row of the transition table in
//! docs/lifecycle.md (same order), then the field rules, the fold order and DESIGN.md's examples.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};

use super::*;
use crate::event::{
    Assets, EventId, EventKind, FailureReason, ProviderName, Source, VideoEvent, VideoId,
};

// ---- the language of the tests ----

/// An event as a test states it; `given`/`when` fill in what it leaves out.
#[derive(Debug, Clone)]
struct Ev {
    kind: EventKind,
    /// Seconds after the test's origin; `None`: one second after the previous event.
    at: Option<i64>,
    provider: &'static str,
    id: Option<&'static str>,
    assets: Assets,
    metadata: Value,
}

impl Ev {
    fn new(kind: EventKind) -> Ev {
        Ev {
            kind,
            at: None,
            provider: "mux",
            id: None,
            assets: Assets::default(),
            metadata: Value::Null,
        }
    }
    fn at(mut self, secs: i64) -> Ev {
        self.at = Some(secs);
        self
    }
    fn from(mut self, provider: &'static str) -> Ev {
        self.provider = provider;
        self
    }
    fn id(mut self, id: &'static str) -> Ev {
        self.id = Some(id);
        self
    }
    fn poster(mut self, url: &str) -> Ev {
        self.assets.poster = Some(url.to_owned());
        self
    }
    fn thumbnail(mut self, url: &str) -> Ev {
        self.assets.thumbnail = Some(url.to_owned());
        self
    }
    fn metadata(mut self, metadata: Value) -> Ev {
        self.metadata = metadata;
        self
    }
    fn build(self, default_id: String, at: i64) -> VideoEvent {
        VideoEvent {
            event_id: EventId::parse(self.id.map_or(default_id, str::to_owned)).unwrap(),
            video_id: VideoId::parse("vid_42").unwrap(),
            provider: ProviderName::parse(self.provider).unwrap(),
            kind: self.kind,
            occurred_at: t(at),
            received_at: arrival(at),
            source: Source::Webhook,
            assets: self.assets,
            metadata: self.metadata.into(),
        }
    }
}

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap() + Duration::seconds(secs)
}

/// Arrival lags the event a little, so `updated_at` and `last_event_at` can be told apart.
fn arrival(secs: i64) -> DateTime<Utc> {
    t(secs) + Duration::milliseconds(300)
}

fn uploaded() -> Ev {
    Ev::new(EventKind::Uploaded)
}
fn processing_started() -> Ev {
    Ev::new(EventKind::ProcessingStarted)
}
fn progress(percent: f64) -> Ev {
    Ev::new(EventKind::Progress { percent })
}
fn processing_completed() -> Ev {
    Ev::new(EventKind::ProcessingCompleted)
}
fn ready() -> Ev {
    Ev::new(EventKind::Ready)
}
fn failed(message: &str) -> Ev {
    Ev::new(EventKind::Failed {
        error: Some(reason(message)),
    })
}
fn deleted() -> Ev {
    Ev::new(EventKind::Deleted)
}
fn uploaded_at(secs: i64) -> Ev {
    uploaded().at(secs)
}
fn processing_started_at(secs: i64) -> Ev {
    processing_started().at(secs)
}
fn ready_at(secs: i64) -> Ev {
    ready().at(secs)
}
fn deleted_at(secs: i64) -> Ev {
    deleted().at(secs)
}

fn reason(message: &str) -> FailureReason {
    FailureReason {
        code: None,
        message: message.to_owned(),
    }
}

// The states of the table, each reached by accepted events only.
fn nothing() -> Vec<Ev> {
    vec![]
}
fn at_uploaded() -> Vec<Ev> {
    vec![uploaded()]
}
fn at_processing() -> Vec<Ev> {
    vec![uploaded(), processing_started()]
}
fn at_processing_50() -> Vec<Ev> {
    vec![uploaded(), processing_started(), progress(50.0)]
}
fn at_processed() -> Vec<Ev> {
    vec![uploaded(), processing_started(), processing_completed()]
}
fn at_ready() -> Vec<Ev> {
    vec![
        uploaded(),
        processing_started(),
        processing_completed(),
        ready(),
    ]
}
fn at_failed() -> Vec<Ev> {
    vec![
        uploaded(),
        processing_started(),
        progress(40.0),
        failed("transcode"),
    ]
}
fn at_deleted() -> Vec<Ev> {
    vec![uploaded(), ready(), deleted()]
}

struct Given {
    fold: Fold,
    next_at: i64,
}

/// The fold of `events`, each at its own time or one second after the previous one. Every
/// given event must be accepted: a test's starting state is what its events say.
fn given(events: impl IntoIterator<Item = Ev>) -> Given {
    let mut given = Given {
        fold: Fold::default(),
        next_at: 0,
    };
    for (n, ev) in events.into_iter().enumerate() {
        let event = given.stamp(ev, format!("given-{n}"));
        assert!(given.fold.insert(event), "given events have distinct ids");
    }
    let rejected: Vec<_> = given
        .fold
        .history()
        .into_iter()
        .filter(|entry| entry.outcome == Outcome::Rejected)
        .collect();
    assert!(
        rejected.is_empty(),
        "a given event was rejected: {rejected:?}"
    );
    given
}

impl Given {
    fn stamp(&mut self, ev: Ev, default_id: String) -> VideoEvent {
        let at = ev.at.unwrap_or(self.next_at);
        self.next_at = self.next_at.max(at + 1);
        ev.build(default_id, at)
    }

    fn when(mut self, ev: Ev) -> Then {
        let event = self.stamp(ev, "when".to_owned());
        let before = self.fold.clone();
        let key = (event.provider.clone(), event.event_id.clone());
        assert!(self.fold.insert(event.clone()), "the when event is new");
        Then {
            before,
            fold: self.fold,
            event,
            key,
        }
    }
}

struct Then {
    before: Fold,
    fold: Fold,
    event: VideoEvent,
    key: (ProviderName, EventId),
}

impl Then {
    fn entry(&self) -> HistoryEntry {
        self.fold
            .outcome_of(&self.key.0, &self.key.1)
            .expect("the when event is in the history")
    }

    fn state(&self) -> &VideoState {
        self.fold.state().expect("a state after the when event")
    }

    /// The decision of the table on the state reached by the events sorting before this one.
    fn decision(&self) -> Decision {
        let earlier = self
            .fold
            .events()
            .iter()
            .take_while(|known| fold_order(known, &self.event).is_lt())
            .cloned();
        decide(Fold::from_events(earlier).state(), &self.event)
    }

    fn then_accepted(self) -> Then {
        let entry = self.entry();
        assert_eq!(entry.outcome, Outcome::Accepted, "{entry:?}");
        assert_eq!(entry.reason, None);
        assert_eq!(self.decision(), Decision::Accept);
        self
    }

    /// Rejected with `code`, kept in the log and the history, and nothing else changed.
    fn then_rejected(self, code: &str) -> Then {
        let entry = self.entry();
        assert_eq!(entry.outcome, Outcome::Rejected, "{entry:?}");
        assert_eq!(entry.status_after, None);
        let Decision::Reject(rejection) = self.decision() else {
            panic!("decide accepted {:?}", self.event.kind)
        };
        assert_eq!(rejection.code, code);
        assert_eq!(entry.reason.as_deref(), Some(rejection.reason.as_str()));
        assert_eq!(
            self.fold.state(),
            self.before.state(),
            "a rejection changes nothing"
        );
        assert_eq!(self.fold.version(), self.before.version() + 1);
        self
    }

    fn then_reason(self, reason: &str) -> Then {
        assert_eq!(self.entry().reason.as_deref(), Some(reason));
        self
    }

    fn then_status(self, status: Status) -> Then {
        assert_eq!(self.state().status, status);
        self
    }

    fn then_progress(self, progress: Option<f64>) -> Then {
        assert_eq!(self.state().progress, progress);
        self
    }

    fn then_error(self, error: Option<&str>) -> Then {
        assert_eq!(self.state().error, error.map(reason));
        self
    }

    /// The when event was the last to change the state.
    fn then_fresh(self) -> Then {
        assert_eq!(self.state().updated_at, self.event.received_at);
        assert_eq!(self.state().last_event_at, self.event.occurred_at);
        self
    }

    /// The state is what it was before the when event.
    fn then_unchanged(self) -> Then {
        assert_eq!(self.fold.state(), self.before.state());
        self
    }
}

// ---- the table: from no state, every event is accepted ----

#[test]
fn nothing_then_uploaded_is_accepted() {
    given(nothing())
        .when(uploaded())
        .then_accepted()
        .then_status(Status::Uploaded)
        .then_progress(None)
        .then_fresh();
}

#[test]
fn nothing_then_processing_started_is_accepted() {
    given(nothing())
        .when(processing_started())
        .then_accepted()
        .then_status(Status::Processing)
        .then_progress(None);
}

#[test]
fn nothing_then_progress_is_accepted_with_its_percent() {
    given(nothing())
        .when(progress(30.0))
        .then_accepted()
        .then_status(Status::Processing)
        .then_progress(Some(30.0));
}

#[test]
fn nothing_then_processing_completed_is_accepted() {
    given(nothing())
        .when(processing_completed())
        .then_accepted()
        .then_status(Status::Processed)
        .then_progress(Some(100.0));
}

#[test]
fn nothing_then_ready_is_accepted() {
    given(nothing())
        .when(ready())
        .then_accepted()
        .then_status(Status::Ready)
        .then_progress(Some(100.0));
}

#[test]
fn nothing_then_failed_is_accepted_with_its_error() {
    given(nothing())
        .when(failed("no audio"))
        .then_accepted()
        .then_status(Status::Failed)
        .then_error(Some("no audio"));
}

#[test]
fn nothing_then_deleted_is_accepted() {
    given(nothing())
        .when(deleted())
        .then_accepted()
        .then_status(Status::Deleted);
}

// ---- from uploaded: everything is at or above its rank ----

#[test]
fn uploaded_then_uploaded_is_accepted_and_changes_nothing() {
    given(at_uploaded())
        .when(uploaded())
        .then_accepted()
        .then_unchanged();
}

#[test]
fn uploaded_then_processing_started_is_accepted() {
    given(at_uploaded())
        .when(processing_started())
        .then_accepted()
        .then_status(Status::Processing)
        .then_progress(None)
        .then_fresh();
}

#[test]
fn uploaded_then_progress_is_accepted() {
    given(at_uploaded())
        .when(progress(20.0))
        .then_accepted()
        .then_status(Status::Processing)
        .then_progress(Some(20.0));
}

#[test]
fn uploaded_then_processing_completed_is_accepted() {
    given(at_uploaded())
        .when(processing_completed())
        .then_accepted()
        .then_status(Status::Processed)
        .then_progress(Some(100.0));
}

#[test]
fn uploaded_then_ready_is_accepted() {
    given(at_uploaded())
        .when(ready())
        .then_accepted()
        .then_status(Status::Ready);
}

#[test]
fn uploaded_then_failed_is_accepted() {
    given(at_uploaded())
        .when(failed("corrupt source"))
        .then_accepted()
        .then_status(Status::Failed)
        .then_error(Some("corrupt source"));
}

#[test]
fn uploaded_then_deleted_is_accepted() {
    given(at_uploaded())
        .when(deleted())
        .then_accepted()
        .then_status(Status::Deleted);
}

// ---- from processing ----

#[test]
fn processing_then_uploaded_is_a_regression() {
    given(at_processing())
        .when(uploaded())
        .then_rejected(Rejection::REGRESSION)
        .then_reason("uploaded after processing");
}

#[test]
fn processing_then_processing_started_is_accepted_and_keeps_the_percent() {
    given(at_processing_50())
        .when(processing_started())
        .then_accepted()
        .then_status(Status::Processing)
        .then_progress(Some(50.0))
        .then_unchanged();
}

#[test]
fn processing_then_progress_forward_is_accepted() {
    given(at_processing_50())
        .when(progress(70.0))
        .then_accepted()
        .then_progress(Some(70.0))
        .then_fresh();
}

#[test]
fn processing_then_the_same_progress_is_accepted_and_changes_nothing() {
    given(at_processing_50())
        .when(progress(50.0))
        .then_accepted()
        .then_unchanged();
}

#[test]
fn processing_then_progress_backwards_is_rejected() {
    given(at_processing_50())
        .when(progress(30.0))
        .then_rejected(Rejection::PROGRESS_BACKWARDS)
        .then_reason("progress 30 after 50");
}

#[test]
fn processing_without_a_percent_then_any_progress_is_accepted() {
    given(at_processing())
        .when(progress(0.0))
        .then_accepted()
        .then_progress(Some(0.0));
}

#[test]
fn processing_then_processing_completed_is_accepted() {
    given(at_processing_50())
        .when(processing_completed())
        .then_accepted()
        .then_status(Status::Processed)
        .then_progress(Some(100.0));
}

#[test]
fn processing_then_ready_is_accepted() {
    given(at_processing_50())
        .when(ready())
        .then_accepted()
        .then_status(Status::Ready)
        .then_progress(Some(100.0));
}

#[test]
fn processing_then_failed_is_accepted_and_keeps_where_it_stopped() {
    given(at_processing_50())
        .when(failed("out of memory"))
        .then_accepted()
        .then_status(Status::Failed)
        .then_progress(Some(50.0))
        .then_error(Some("out of memory"));
}

#[test]
fn processing_then_deleted_is_accepted() {
    given(at_processing_50())
        .when(deleted())
        .then_accepted()
        .then_status(Status::Deleted);
}

// ---- from processed ----

#[test]
fn processed_then_uploaded_is_a_regression() {
    given(at_processed())
        .when(uploaded())
        .then_rejected(Rejection::REGRESSION)
        .then_reason("uploaded after processed");
}

#[test]
fn processed_then_processing_started_is_a_regression() {
    given(at_processed())
        .when(processing_started())
        .then_rejected(Rejection::REGRESSION)
        .then_reason("processing_started after processed");
}

#[test]
fn processed_then_progress_is_a_regression() {
    given(at_processed())
        .when(progress(100.0))
        .then_rejected(Rejection::REGRESSION)
        .then_reason("progress after processed");
}

#[test]
fn processed_then_processing_completed_is_accepted_and_may_add_assets() {
    given(at_processed())
        .when(processing_completed().poster("https://cdn/p.jpg"))
        .then_accepted()
        .then_status(Status::Processed)
        .then_fresh();
}

#[test]
fn processed_then_ready_is_accepted() {
    given(at_processed())
        .when(ready())
        .then_accepted()
        .then_status(Status::Ready);
}

#[test]
fn processed_then_failed_is_accepted() {
    given(at_processed())
        .when(failed("packaging"))
        .then_accepted()
        .then_status(Status::Failed)
        .then_error(Some("packaging"));
}

#[test]
fn processed_then_deleted_is_accepted() {
    given(at_processed())
        .when(deleted())
        .then_accepted()
        .then_status(Status::Deleted);
}

// ---- from ready: final until deleted ----

#[test]
fn ready_then_uploaded_is_a_regression() {
    given(at_ready())
        .when(uploaded())
        .then_rejected(Rejection::REGRESSION)
        .then_reason("uploaded after ready");
}

#[test]
fn ready_then_processing_started_is_a_regression() {
    given(at_ready())
        .when(processing_started())
        .then_rejected(Rejection::REGRESSION)
        .then_reason("processing_started after ready");
}

#[test]
fn ready_then_progress_is_a_regression() {
    given(at_ready())
        .when(progress(10.0))
        .then_rejected(Rejection::REGRESSION)
        .then_reason("progress after ready");
}

#[test]
fn ready_then_processing_completed_is_a_regression() {
    given(at_ready())
        .when(processing_completed())
        .then_rejected(Rejection::REGRESSION)
        .then_reason("processing_completed after ready");
}

#[test]
fn ready_then_failed_is_a_regression() {
    given(at_ready())
        .when(failed("late error"))
        .then_rejected(Rejection::REGRESSION)
        .then_reason("failed after ready")
        .then_error(None);
}

#[test]
fn ready_then_ready_is_accepted_and_updates_assets() {
    let then = given(at_ready())
        .when(ready().thumbnail("https://cdn/t.jpg"))
        .then_accepted()
        .then_status(Status::Ready)
        .then_fresh();
    assert_eq!(
        then.state().assets.thumbnail.as_deref(),
        Some("https://cdn/t.jpg")
    );
}

#[test]
fn ready_then_deleted_is_accepted() {
    given(at_ready())
        .when(deleted())
        .then_accepted()
        .then_status(Status::Deleted);
}

// ---- from failed: any newer event is a retry ----

#[test]
fn failed_then_uploaded_is_a_retry() {
    given(at_failed())
        .when(uploaded())
        .then_accepted()
        .then_status(Status::Uploaded)
        .then_progress(None)
        .then_error(None);
}

#[test]
fn failed_then_processing_started_is_a_retry_from_scratch() {
    given(at_failed())
        .when(processing_started())
        .then_accepted()
        .then_status(Status::Processing)
        .then_progress(None)
        .then_error(None);
}

#[test]
fn failed_then_progress_is_a_retry_even_below_where_it_failed() {
    given(at_failed())
        .when(progress(10.0))
        .then_accepted()
        .then_status(Status::Processing)
        .then_progress(Some(10.0))
        .then_error(None);
}

#[test]
fn failed_then_processing_completed_is_accepted() {
    given(at_failed())
        .when(processing_completed())
        .then_accepted()
        .then_status(Status::Processed)
        .then_error(None);
}

#[test]
fn failed_then_ready_is_accepted() {
    given(at_failed())
        .when(ready())
        .then_accepted()
        .then_status(Status::Ready)
        .then_error(None);
}

#[test]
fn failed_then_failed_is_accepted_with_the_new_error() {
    given(at_failed())
        .when(failed("second attempt"))
        .then_accepted()
        .then_status(Status::Failed)
        .then_error(Some("second attempt"));
}

#[test]
fn failed_then_deleted_is_accepted() {
    given(at_failed())
        .when(deleted())
        .then_accepted()
        .then_status(Status::Deleted)
        .then_error(None);
}

// ---- from deleted: nothing follows ----

#[test]
fn deleted_then_uploaded_is_rejected() {
    given(at_deleted())
        .when(uploaded())
        .then_rejected(Rejection::AFTER_DELETED)
        .then_reason("uploaded after deleted");
}

#[test]
fn deleted_then_processing_started_is_rejected() {
    given(at_deleted())
        .when(processing_started())
        .then_rejected(Rejection::AFTER_DELETED);
}

#[test]
fn deleted_then_progress_is_rejected() {
    given(at_deleted())
        .when(progress(10.0))
        .then_rejected(Rejection::AFTER_DELETED);
}

#[test]
fn deleted_then_processing_completed_is_rejected() {
    given(at_deleted())
        .when(processing_completed())
        .then_rejected(Rejection::AFTER_DELETED);
}

#[test]
fn deleted_then_ready_is_rejected() {
    given(at_deleted())
        .when(ready())
        .then_rejected(Rejection::AFTER_DELETED)
        .then_reason("ready after deleted");
}

#[test]
fn deleted_then_failed_is_rejected() {
    given(at_deleted())
        .when(failed("too late"))
        .then_rejected(Rejection::AFTER_DELETED);
}

#[test]
fn deleted_then_deleted_is_rejected() {
    given(at_deleted())
        .when(deleted())
        .then_rejected(Rejection::AFTER_DELETED);
}

// ---- the fields every accepted event touches ----

#[test]
fn assets_accumulate_and_the_newest_statement_wins() {
    let then = given([
        uploaded().poster("https://cdn/old.jpg"),
        processing_completed().thumbnail("https://cdn/t.jpg"),
    ])
    .when(ready().poster("https://cdn/new.jpg"))
    .then_accepted();
    let assets = &then.state().assets;
    assert_eq!(assets.poster.as_deref(), Some("https://cdn/new.jpg"));
    assert_eq!(assets.thumbnail.as_deref(), Some("https://cdn/t.jpg"));
}

#[test]
fn metadata_is_replaced_by_non_null_metadata_and_kept_otherwise() {
    let then = given([uploaded().metadata(json!({"user": 7}))])
        .when(processing_started())
        .then_accepted();
    assert_eq!(then.state().metadata, json!({"user": 7}));

    let then = given([uploaded().metadata(json!({"user": 7}))])
        .when(processing_started().metadata(json!({"user": 8})))
        .then_accepted();
    assert_eq!(then.state().metadata, json!({"user": 8}));
}

#[test]
fn rejected_events_do_not_touch_assets_or_metadata() {
    given(at_ready())
        .when(
            processing_started()
                .poster("https://cdn/x.jpg")
                .metadata(json!({"a": 1})),
        )
        .then_rejected(Rejection::REGRESSION);
}

#[test]
fn provider_is_that_of_the_last_accepted_event() {
    let then = given([uploaded().from("mux")])
        .when(uploaded().from("fal"))
        .then_accepted()
        .then_fresh();
    assert_eq!(then.state().provider.as_str(), "fal");

    let then = given([uploaded().from("mux"), ready().from("mux")])
        .when(uploaded().from("fal"))
        .then_rejected(Rejection::REGRESSION);
    assert_eq!(then.state().provider.as_str(), "mux");
}

#[test]
fn an_accepted_event_that_changes_nothing_leaves_the_timestamps() {
    let then = given([uploaded_at(0), ready_at(5)])
        .when(ready_at(9))
        .then_accepted()
        .then_unchanged();
    assert_eq!(then.state().updated_at, arrival(5));
    assert_eq!(then.state().last_event_at, t(5));
}

#[test]
fn the_timestamps_come_from_the_last_changing_event_in_fold_order_not_arrival() {
    // The late uploaded arrives last but sorts first: the ready at 5 stays the last change.
    let then = given([ready_at(5)])
        .when(uploaded_at(1))
        .then_accepted()
        .then_status(Status::Ready);
    assert_eq!(then.state().updated_at, arrival(5));
    assert_eq!(then.state().last_event_at, t(5));
}

// ---- fold order ----

#[test]
fn ties_at_one_time_fold_in_lifecycle_order() {
    let kinds = [
        uploaded(),
        processing_started(),
        progress(10.0),
        progress(60.0),
        processing_completed(),
        ready(),
        failed("x"),
        deleted(),
    ];
    let events: Vec<VideoEvent> = kinds
        .into_iter()
        .enumerate()
        // Ids against the lifecycle order, so only the kind can put them in order.
        .map(|(n, ev)| ev.build(format!("e{}", 9 - n), 3))
        .collect();
    let fold = Fold::from_events(events.iter().rev().cloned());
    assert_eq!(fold.events(), events.as_slice());
}

#[test]
fn at_equal_time_and_kind_the_event_id_decides_then_the_provider() {
    let a = uploaded().from("mux").build("a".into(), 0);
    let b_fal = uploaded().from("fal").build("b".into(), 0);
    let b_mux = uploaded().from("mux").build("b".into(), 0);
    let fold = Fold::from_events([b_mux.clone(), b_fal.clone(), a.clone()]);
    assert_eq!(fold.events(), [a, b_fal, b_mux].as_slice());
}

#[test]
fn processing_started_ties_with_progress_as_zero_percent() {
    let started = processing_started().build("z".into(), 0);
    let zero = progress(0.0).build("a".into(), 0);
    let ten = progress(10.0).build("b".into(), 0);
    let fold = Fold::from_events([ten.clone(), started.clone(), zero.clone()]);
    assert_eq!(fold.events(), [zero, started, ten].as_slice());
}

#[test]
fn a_failed_at_the_same_time_as_ready_sorts_after_it_and_is_rejected() {
    given([uploaded_at(0), ready_at(4)])
        .when(failed("x").at(4))
        .then_rejected(Rejection::REGRESSION);
}

// ---- insert ----

#[test]
fn inserting_a_known_event_id_again_changes_nothing() {
    let mut fold = given(at_processing_50()).fold;
    let before = fold.clone();
    let mut again = fold.events()[1].clone();
    again.received_at = t(99);
    assert!(!fold.insert(again));
    assert_eq!(fold.events(), before.events());
    assert_eq!(fold.history(), before.history());
    assert_eq!(fold.state(), before.state());
}

#[test]
fn the_same_event_id_from_another_provider_is_another_event() {
    let mut fold = given([uploaded().id("e1").from("mux")]).fold;
    assert!(fold.insert(ready().id("e1").from("fal").build(String::new(), 5)));
    assert_eq!(fold.version(), 2);
}

#[test]
fn a_late_event_refolds_and_can_change_the_outcome_of_later_ones() {
    let then = given([uploaded_at(0), ready_at(10)])
        .when(deleted_at(5))
        .then_accepted()
        .then_status(Status::Deleted);
    let ready = &then.fold.history()[2];
    assert_eq!(ready.kind, "ready");
    assert_eq!(ready.outcome, Outcome::Rejected);
    assert_eq!(ready.reason.as_deref(), Some("ready after deleted"));
}

#[test]
fn version_counts_rejected_events_too() {
    let then = given(at_ready())
        .when(processing_started())
        .then_rejected(Rejection::REGRESSION);
    assert_eq!(then.fold.version(), 5);
    assert_eq!(then.fold.history().len(), 5);
}

#[test]
fn history_serializes_as_the_api_says() {
    let then = given([uploaded_at(0).id("e1"), ready_at(5).id("e2")])
        .when(processing_started_at(6).id("e3"))
        .then_rejected(Rejection::REGRESSION);
    let json = serde_json::to_value(then.fold.history()).unwrap();
    assert_eq!(
        json[2],
        json!({
            "event_id": "e3", "provider": "mux", "kind": "processing_started",
            "occurred_at": "2026-11-23T10:00:06Z", "received_at": "2026-11-23T10:00:06.300Z",
            "source": "webhook",
            "outcome": "rejected", "reason": "processing_started after ready", "status_after": null,
        })
    );
    assert_eq!(json[1]["outcome"], "accepted");
    assert_eq!(json[1]["status_after"], "ready");
}

// ---- DESIGN.md's examples ----

#[test]
fn a_lost_processing_started_does_not_hide_a_later_ready() {
    given([uploaded_at(0)])
        .when(ready_at(8))
        .then_accepted()
        .then_status(Status::Ready);
}

#[test]
fn a_processing_started_that_arrives_after_ready_but_happened_before_it_is_folded_in_place() {
    let then = given([uploaded_at(0), ready_at(8)])
        .when(processing_started_at(3))
        .then_accepted()
        .then_status(Status::Ready);
    let kinds: Vec<_> = then.fold.history().iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["uploaded", "processing_started", "ready"]);
}

#[test]
fn ready_then_a_later_processing_started_is_rejected() {
    given([uploaded_at(0), ready_at(8)])
        .when(processing_started_at(9))
        .then_rejected(Rejection::REGRESSION)
        .then_reason("processing_started after ready")
        .then_status(Status::Ready);
}

#[test]
fn a_retry_after_failed_can_reach_ready_without_processing_started() {
    given(at_failed())
        .when(ready())
        .then_accepted()
        .then_status(Status::Ready)
        .then_progress(Some(100.0))
        .then_error(None);
}
