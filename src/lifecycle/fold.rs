//! The fold: a video's events in fold order (event time, never arrival), each decided on the
//! state the events before it reached, with the outcome kept in the history.

use std::cmp::Ordering;
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::table::{apply_in_place_or_start, apply_owned, decide, Decision};
use super::{Status, VideoState};
use crate::event::{EventId, EventKind, ProviderName, Source, VideoEvent};

/// Whether the table accepted an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Accepted,
    Rejected,
}

/// One event of `GET /videos/{id}/history`, in fold order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub event_id: EventId,
    pub provider: ProviderName,
    /// [`EventKind::name`].
    pub kind: &'static str,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// A webhook or a poll of the provider's API; informational, the fold does not use it.
    pub source: Source,
    pub outcome: Outcome,
    /// Why it was rejected; `None` when accepted.
    pub reason: Option<String>,
    /// The status this event produced; `None` when rejected (the status stayed what it was).
    pub status_after: Option<Status>,
}

/// The order events are folded in: `occurred_at`, then, at equal times, the kind's place on the
/// lifecycle (so a tie reads as the natural sequence), then event id, then provider. Total over
/// distinct `(provider, event_id)`, which is what makes the fold independent of arrival order.
pub fn fold_order(a: &VideoEvent, b: &VideoEvent) -> Ordering {
    a.occurred_at
        .cmp(&b.occurred_at)
        .then_with(|| tie_rank(&a.kind).cmp(&tie_rank(&b.kind)))
        .then_with(|| tie_percent(&a.kind).total_cmp(&tie_percent(&b.kind)))
        .then_with(|| a.event_id.cmp(&b.event_id))
        .then_with(|| a.provider.cmp(&b.provider))
}

/// `uploaded` < `processing_started` = `progress` < `processing_completed` < `ready` < `failed`
/// < `deleted`.
fn tie_rank(kind: &EventKind) -> u8 {
    match kind {
        EventKind::Uploaded => 0,
        EventKind::ProcessingStarted | EventKind::Progress { .. } => 1,
        EventKind::ProcessingCompleted => 2,
        EventKind::Ready => 3,
        EventKind::Failed { .. } => 4,
        EventKind::Deleted => 5,
    }
}

/// Orders `processing_started` and `progress` among themselves: progress by its percent,
/// `processing_started` as 0 percent. A key per event (rather than "compare percents when both
/// are progress, else the id") keeps the order transitive.
fn tie_percent(kind: &EventKind) -> f64 {
    match kind {
        EventKind::Progress { percent } => *percent,
        _ => 0.0,
    }
}

/// The state after a whole stream, and its version, without the history: what a rebuild needs,
/// at a fraction of [`Fold::from_events`]' cost (no history entries, no index, no copied ids).
/// Always equal to that fold's `state()` and `version()`; a property test holds it to that.
pub fn fold_state(mut events: Vec<VideoEvent>) -> (Option<VideoState>, u64) {
    // As in `Fold::from_events`, the first of several events with one dedupe key is kept.
    if events.len() > SHORT_STREAM {
        let keep: Vec<bool> = {
            let mut seen = HashSet::with_capacity(events.len());
            events
                .iter()
                .map(|event| seen.insert((&event.provider, &event.event_id)))
                .collect()
        };
        let mut kept = keep.into_iter();
        events.retain(|_| kept.next().unwrap_or(true));
    } else {
        let mut index = 0;
        while index < events.len() {
            if events[..index]
                .iter()
                .any(|earlier| same_key(earlier, &events[index]))
            {
                events.remove(index);
            } else {
                index += 1;
            }
        }
    }
    events.sort_by(fold_order);
    let version = events.len() as u64;
    let mut state: Option<VideoState> = None;
    for event in events {
        if decide(state.as_ref(), &event) == Decision::Accept {
            apply_owned(&mut state, event);
        }
    }
    (state, version)
}

/// Up to this many events, [`fold_state`] finds repeated keys by comparing every pair, which
/// for the few events of a typical stream costs less than hashing each key once.
const SHORT_STREAM: usize = 16;

fn same_key(a: &VideoEvent, b: &VideoEvent) -> bool {
    a.event_id == b.event_id && a.provider == b.provider
}

/// A video's events folded into its state and history. Cheap to extend with a newer event;
/// a late one (sorting before a known one) folds the stream again.
#[derive(Debug, Clone, Default)]
pub struct Fold {
    /// In fold order; one per `(provider, event_id)`.
    events: Vec<VideoEvent>,
    /// `decided[i]` is what the table made of `events[i]`: the history, without the copies of
    /// ids and times it shows, which [`Fold::history`] takes from the events when asked.
    decided: Vec<Decided>,
    state: Option<VideoState>,
    /// A hash of each dedupe key: a miss proves an event new without comparing any id; a hit is
    /// confirmed against the events (hashes may collide).
    keys: HashSet<u64>,
}

#[derive(Debug, Clone, PartialEq)]
struct Decided {
    outcome: Outcome,
    reason: Option<String>,
    status_after: Option<Status>,
}

impl Fold {
    /// Folds a whole stream at once, in any order. Of several events with the same
    /// `(provider, event_id)` (the log never holds two) the first given is kept.
    pub fn from_events(events: impl IntoIterator<Item = VideoEvent>) -> Fold {
        let mut seen = HashSet::new();
        let mut events: Vec<VideoEvent> = events
            .into_iter()
            .filter(|event| seen.insert((event.provider.clone(), event.event_id.clone())))
            .collect();
        events.sort_by(fold_order);
        let mut fold = Fold::default();
        for event in events {
            fold.push(event);
        }
        fold
    }

    /// Adds one event. One that sorts after every known event is decided on the current state;
    /// a late one folds the stream again, so the result never depends on arrival order. A
    /// `(provider, event_id)` already present changes nothing. Returns whether the event was new.
    pub fn insert(&mut self, event: VideoEvent) -> bool {
        self.add(event).is_some()
    }

    /// [`Fold::insert`], answering the new event's outcome as it stands after every event known
    /// now (`None`: it was known already).
    pub fn add(&mut self, event: VideoEvent) -> Option<Outcome> {
        if self.contains(&event.provider, &event.event_id) {
            return None;
        }
        let is_newest = self
            .events
            .last()
            .is_none_or(|last| fold_order(last, &event) == Ordering::Less);
        if is_newest {
            self.push(event);
            return self.decided.last().map(|decided| decided.outcome);
        }
        let at = self
            .events
            .partition_point(|known| fold_order(known, &event) == Ordering::Less);
        self.events.insert(at, event);
        self.refold();
        Some(self.decided[at].outcome)
    }

    /// Whether the event with this dedupe key is in the fold.
    pub fn contains(&self, provider: &ProviderName, event_id: &EventId) -> bool {
        self.keys.contains(&key_hash(provider, event_id))
            && self.position(provider, event_id).is_some()
    }

    /// The state after every event; `None` while the stream is empty.
    pub fn state(&self) -> Option<&VideoState> {
        self.state.as_ref()
    }

    /// Every event's outcome, in fold order.
    pub fn history(&self) -> Vec<HistoryEntry> {
        self.events
            .iter()
            .zip(&self.decided)
            .map(|(event, decided)| entry(event, decided))
            .collect()
    }

    /// The state after each event, in fold order, beside [`Fold::history`]: a rejected event
    /// leaves the state the events before it reached (`None` until an event was accepted).
    pub fn states_after(&self) -> Vec<Option<VideoState>> {
        let mut state: Option<VideoState> = None;
        self.events
            .iter()
            .zip(&self.decided)
            .map(|(event, decided)| {
                if decided.outcome == Outcome::Accepted {
                    apply_in_place_or_start(&mut state, event);
                }
                state.clone()
            })
            .collect()
    }

    /// The events, in fold order.
    pub fn events(&self) -> &[VideoEvent] {
        &self.events
    }

    /// Number of events in the stream, accepted and rejected: the SSE id of the status.
    pub fn version(&self) -> u64 {
        self.events.len() as u64
    }

    /// The outcome of one event, as it stands after every event known now (a late event can
    /// change the outcome of events that sort after it).
    pub fn outcome_of(&self, provider: &ProviderName, event_id: &EventId) -> Option<HistoryEntry> {
        self.position(provider, event_id)
            .map(|at| entry(&self.events[at], &self.decided[at]))
    }

    fn position(&self, provider: &ProviderName, event_id: &EventId) -> Option<usize> {
        self.events
            .iter()
            .position(|known| known.event_id == *event_id && known.provider == *provider)
    }

    /// Decides and applies an event that sorts after every known one.
    fn push(&mut self, event: VideoEvent) {
        let decided = match decide(self.state.as_ref(), &event) {
            Decision::Accept => Decided {
                outcome: Outcome::Accepted,
                reason: None,
                status_after: Some(apply_in_place_or_start(&mut self.state, &event)),
            },
            Decision::Reject(rejection) => Decided {
                outcome: Outcome::Rejected,
                reason: Some(rejection.reason),
                status_after: None,
            },
        };
        self.decided.push(decided);
        self.keys.insert(key_hash(&event.provider, &event.event_id));
        self.events.push(event);
    }

    fn refold(&mut self) {
        let events = std::mem::take(&mut self.events);
        *self = Fold::default();
        for event in events {
            self.push(event);
        }
    }
}

fn entry(event: &VideoEvent, decided: &Decided) -> HistoryEntry {
    HistoryEntry {
        event_id: event.event_id.clone(),
        provider: event.provider.clone(),
        kind: event.kind.name(),
        occurred_at: event.occurred_at,
        received_at: event.received_at,
        source: event.source,
        outcome: decided.outcome,
        reason: decided.reason.clone(),
        status_after: decided.status_after,
    }
}

fn key_hash(provider: &ProviderName, event_id: &EventId) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    (provider, event_id).hash(&mut hasher);
    hasher.finish()
}
