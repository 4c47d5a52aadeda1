//! The transition table: `decide` holds every rule about which event a state accepts, `apply`
//! only moves the state and cannot fail. The full table, with reasons, is docs/lifecycle.md.

use std::fmt;

use super::{Status, VideoState};
use crate::event::{EventKind, FailureReason, VideoEvent};

/// What the table says about one event on one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The event moves (or confirms) the state: `apply` it.
    Accept,
    /// The event stays in the log, changes nothing, and the history says why.
    Reject(Rejection),
}

/// Why an event was rejected: a stable machine `code` and a human `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// One of [`Rejection::REGRESSION`], [`Rejection::PROGRESS_BACKWARDS`],
    /// [`Rejection::AFTER_DELETED`].
    pub code: &'static str,
    /// E.g. `processing_started after ready`.
    pub reason: String,
}

impl Rejection {
    /// The event's status ranks below the current one (or is `failed` after `ready`).
    pub const REGRESSION: &'static str = "regression";
    /// A `progress` below the current percent of the same attempt.
    pub const PROGRESS_BACKWARDS: &'static str = "progress_backwards";
    /// Anything after `deleted`, which is terminal.
    pub const AFTER_DELETED: &'static str = "after_deleted";
}

fn reject(code: &'static str, reason: impl fmt::Display) -> Decision {
    Decision::Reject(Rejection {
        code,
        reason: reason.to_string(),
    })
}

/// The status an accepted event of this kind leads to.
pub fn status_of(kind: &EventKind) -> Status {
    match kind {
        EventKind::Uploaded => Status::Uploaded,
        EventKind::ProcessingStarted | EventKind::Progress { .. } => Status::Processing,
        EventKind::ProcessingCompleted => Status::Processed,
        EventKind::Ready => Status::Ready,
        EventKind::Failed { .. } => Status::Failed,
        EventKind::Deleted => Status::Deleted,
    }
}

/// Every rule of the lifecycle. `state` is the state reached by the events that sort before
/// `event` in fold order; `None` when there are none.
pub fn decide(state: Option<&VideoState>, event: &VideoEvent) -> Decision {
    // A lost early webhook must not hide a later one: the first event is taken as it is.
    let Some(state) = state else {
        return Decision::Accept;
    };
    let kind = event.kind.name();
    let target = status_of(&event.kind);
    match (state.status, target) {
        (Status::Deleted, _) => reject(
            Rejection::AFTER_DELETED,
            format_args!("{kind} after deleted"),
        ),
        // The attempt is over; whatever the provider reports next is a retry.
        (Status::Failed, _) => Decision::Accept,
        (_, Status::Deleted) => Decision::Accept,
        // Ready is final until deleted: a failure report after it is about an attempt that no
        // longer matters, or a provider contradicting itself; the playable video stays.
        (Status::Ready, Status::Failed) => {
            reject(Rejection::REGRESSION, format_args!("{kind} after ready"))
        }
        (_, Status::Failed) => Decision::Accept,
        _ => on_forward_path(state, target, &event.kind),
    }
}

/// Both statuses are on the forward path: a lower rank is a regression, and within
/// `processing` the percent only moves forward.
fn on_forward_path(state: &VideoState, target: Status, kind: &EventKind) -> Decision {
    if let (Some(current_rank), Some(target_rank)) = (state.status.rank(), target.rank()) {
        if target_rank < current_rank {
            return reject(
                Rejection::REGRESSION,
                format_args!("{} after {}", kind.name(), state.status),
            );
        }
    }
    if let (Status::Processing, EventKind::Progress { percent }, Some(known)) =
        (state.status, kind, state.progress)
    {
        if *percent < known {
            return reject(
                Rejection::PROGRESS_BACKWARDS,
                format_args!("progress {percent} after {known}"),
            );
        }
    }
    Decision::Accept
}

/// Moves `state` by an event that [`decide`] accepted. Cannot fail; it does not re-check the
/// rules, so callers apply only what `decide` accepted.
pub fn apply(state: Option<&VideoState>, event: &VideoEvent) -> VideoState {
    let mut assets = state.map(|s| s.assets.clone()).unwrap_or_default();
    assets.merge_from(&event.assets);
    let metadata = match state {
        Some(known) if event.metadata.is_null() => known.metadata.clone(),
        _ => event.metadata.clone(),
    };
    let mut next = VideoState {
        status: status_of(&event.kind),
        progress: progress_after(state, &event.kind),
        assets,
        error: error_of(&event.kind),
        metadata,
        provider: event.provider.clone(),
        updated_at: event.received_at,
        last_event_at: event.occurred_at,
    };
    // An event that only confirms what is known must not make the status look fresher.
    if let Some(known) = state.filter(|known| !next.differs_from(known)) {
        next.updated_at = known.updated_at;
        next.last_event_at = known.last_event_at;
    }
    next
}

/// [`apply`] on the state in place, taking the event by value: a fold that keeps only the last
/// state moves each event's assets and metadata in rather than copying them, and changes the
/// state where it is rather than copying it per event. Always equal to `apply`; the fold's
/// property tests hold it to that.
pub fn apply_owned(state: &mut Option<VideoState>, event: VideoEvent) {
    let Some(known) = state else {
        *state = Some(apply(None, &event));
        return;
    };
    let status = status_of(&event.kind);
    let progress = progress_after(Some(known), &event.kind);
    let error = error_of(&event.kind);
    let mut changed = status != known.status
        || progress != known.progress
        || error != known.error
        || event.provider != known.provider;
    changed |= known.assets.merge(event.assets);
    if !event.metadata.is_null() {
        changed |= event.metadata != known.metadata;
        known.metadata = event.metadata;
    }
    known.status = status;
    known.progress = progress;
    known.error = error;
    known.provider = event.provider;
    // An event that only confirms what is known must not make the status look fresher.
    if changed {
        known.updated_at = event.received_at;
        known.last_event_at = event.occurred_at;
    }
}

/// [`apply`] on the state in place, copying from the event only what it states: a live fold
/// keeps the event as well, so nothing can be moved out of it, and what this saves is copying
/// the whole state per event. Always equal to `apply`; the fold's property tests hold it to that
/// (the live fold uses this, the tip `apply`, a rebuild `apply_owned`).
pub fn apply_in_place(known: &mut VideoState, event: &VideoEvent) {
    let status = status_of(&event.kind);
    let progress = progress_after(Some(known), &event.kind);
    let error = error_of(&event.kind);
    let mut changed = status != known.status
        || progress != known.progress
        || error != known.error
        || event.provider != known.provider;
    changed |= known.assets.merge_said(&event.assets);
    if !event.metadata.is_null() && event.metadata != known.metadata {
        known.metadata.clone_from(&event.metadata);
        changed = true;
    }
    known.status = status;
    known.progress = progress;
    known.error = error;
    if event.provider != known.provider {
        known.provider.clone_from(&event.provider);
    }
    // An event that only confirms what is known must not make the status look fresher.
    if changed {
        known.updated_at = event.received_at;
        known.last_event_at = event.occurred_at;
    }
}

/// [`apply_in_place`], starting the state from the event when there is none yet (as
/// [`apply_owned`] does for an owned event); answers the status it leaves.
pub fn apply_in_place_or_start(state: &mut Option<VideoState>, event: &VideoEvent) -> Status {
    match state {
        Some(known) => {
            apply_in_place(known, event);
            known.status
        }
        None => state.insert(apply(None, event)).status,
    }
}

fn progress_after(state: Option<&VideoState>, kind: &EventKind) -> Option<f64> {
    let known = state.and_then(|s| s.progress);
    match kind {
        EventKind::Progress { percent } => Some(*percent),
        EventKind::ProcessingCompleted | EventKind::Ready => Some(100.0),
        // A start within processing is the same attempt; from anywhere else (uploaded, or a
        // retry after failed) no percent of the new attempt is known yet.
        EventKind::ProcessingStarted => match state {
            Some(s) if s.status == Status::Processing => known,
            _ => None,
        },
        EventKind::Uploaded => None,
        // Where the attempt stopped stays visible.
        EventKind::Failed { .. } | EventKind::Deleted => known,
    }
}

fn error_of(kind: &EventKind) -> Option<FailureReason> {
    match kind {
        EventKind::Failed { error } => error.clone(),
        _ => None,
    }
}
