//! The actor of one video. Business outcomes (accepted, duplicate, store unavailable) go back
//! through the reply port; `handle` returns `Err` only when the actor should die.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::JoinHandle;
use tracing::{instrument, warn, Span};

use super::manager::{IngestError, VideoManager};
use crate::event::{RawDelivery, VideoEvent, VideoId};
use crate::lifecycle::{Fold, Outcome, Tip, FOLD_VERSION};
use crate::projection::VideoStatus;
use crate::store::{
    AppendOutcome, AppendRequest, AuditKind, AuditRecord, EventStore, Snapshot, Store, StoreError,
    VideoLog,
};

/// How often an expected-version conflict (another writer on the stream) is retried.
const MAX_CONFLICT_RETRIES: usize = 5;

/// What became of one delivered event.
#[derive(Debug, Clone, PartialEq)]
pub enum Ingested {
    /// Durably appended at global `position`. `outcome` says whether the fold accepted it or
    /// kept it as a rejected regression.
    Appended { outcome: Outcome, position: u64 },
    /// `(provider, event_id)` was already in the log, in the stream of `video_id`. `conflict`
    /// marks a different body reusing the id: it is recorded in the audit log, never merged.
    Duplicate { video_id: VideoId, conflict: bool },
}

// Each message is moved into the mailbox once; boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum VideoMsg {
    Ingest {
        event: VideoEvent,
        raw: RawDelivery,
        /// The delivering request's span, so the actor's work shows in the webhook's trace.
        caller: Span,
        reply: RpcReplyPort<Result<Ingested, IngestError>>,
    },
    IdleCheck,
}

pub(crate) struct VideoActor;

pub(crate) struct VideoArgs {
    pub video_id: VideoId,
    pub generation: u64,
    pub store: Store,
    pub manager: VideoManager,
    pub idle_timeout: Duration,
    pub snapshot_after: u64,
}

/// What an actor holds of its video: the whole fold, or (started from a snapshot) only its tip,
/// which takes every event that sorts after the last one; anything else loads the whole stream.
enum Loaded {
    Whole(Box<Fold>),
    Tip(Box<Tip>),
}

impl Loaded {
    fn version(&self) -> u64 {
        match self {
            Loaded::Whole(fold) => fold.version(),
            Loaded::Tip(tip) => tip.version(),
        }
    }
}

pub(crate) struct VideoState {
    video_id: VideoId,
    generation: u64,
    store: Store,
    manager: VideoManager,
    loaded: Loaded,
    /// Set when the fold may hold what the log does not: reloaded before the next event.
    stale: bool,
    /// The version of the snapshot the store holds (or this actor started from), so passivation
    /// writes one only when the stream grew past it.
    snapshot_version: u64,
    snapshot_after: u64,
    idle_timeout: Duration,
    last_activity: Instant,
    idle_timer: JoinHandle<()>,
}

impl Actor for VideoActor {
    type Msg = VideoMsg;
    type State = VideoState;
    type Arguments = VideoArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<VideoMsg>,
        args: VideoArgs,
    ) -> Result<VideoState, ActorProcessingErr> {
        let (loaded, snapshot_version) = activate(&args.store, &args.video_id).await?;
        let check_every = (args.idle_timeout / 4).max(Duration::from_millis(50));
        let idle_timer = myself.send_interval(check_every, || VideoMsg::IdleCheck);
        Ok(VideoState {
            video_id: args.video_id,
            generation: args.generation,
            store: args.store,
            manager: args.manager,
            loaded,
            stale: false,
            snapshot_version,
            snapshot_after: args.snapshot_after,
            idle_timeout: args.idle_timeout,
            last_activity: Instant::now(),
            idle_timer,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<VideoMsg>,
        message: VideoMsg,
        state: &mut VideoState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            VideoMsg::Ingest {
                event,
                raw,
                caller,
                reply,
            } => {
                state.last_activity = Instant::now();
                // Boxed: ractor keeps the processing loop's future (ours inside it) for the
                // actor's whole life, idle or not, and this one is the largest of its states.
                let result = Box::pin(state.ingest(event, raw, &caller)).await;
                // The caller may have given up (timeout); its answer is then simply dropped.
                let _ = reply.send(result);
            }
            VideoMsg::IdleCheck => {
                if state.last_activity.elapsed() >= state.idle_timeout {
                    // Before leaving the registry, so that a video without an actor already has
                    // the snapshot of all its events: the next activation starts from it. Should
                    // a delivery arrive meanwhile, the actor stays, with a snapshot a little
                    // behind, as any snapshot may be.
                    Box::pin(state.keep_snapshot()).await;
                    if state
                        .manager
                        .try_passivate(&state.video_id, state.generation)
                    {
                        myself.stop(Some("idle".into()));
                    }
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<VideoMsg>,
        state: &mut VideoState,
    ) -> Result<(), ActorProcessingErr> {
        state.idle_timer.abort();
        Ok(())
    }
}

impl VideoState {
    // No fields: its parent, the manager's `ingest`, names the video and the event.
    #[instrument(level = "debug", parent = caller, skip_all)]
    async fn ingest(
        &mut self,
        event: VideoEvent,
        raw: RawDelivery,
        caller: &Span,
    ) -> Result<Ingested, IngestError> {
        // Shared with every append request below, so a retry sends it again without a copy.
        let event = Arc::new(event);
        for _ in 0..MAX_CONFLICT_RETRIES {
            if self.stale {
                self.loaded = Loaded::Whole(Box::new(
                    load_fold(&self.store, &self.video_id)
                        .await
                        .map_err(IngestError::from_store)?,
                ));
                self.stale = false;
            }
            let expected_version = self.loaded.version();
            // The event goes into the fold before the store has it (no copy of the fold per
            // webhook); any answer but `Appended` marks the fold stale, to be reloaded from the
            // log. A known id is still sent to the store: its unique key answers whether the
            // body is the same, which the fold alone cannot tell.
            let (is_new, outcome, status) = match &mut self.loaded {
                Loaded::Whole(fold) => {
                    let added = fold.add(VideoEvent::clone(&event));
                    let outcome = added.or_else(|| {
                        fold.outcome_of(&event.provider, &event.event_id)
                            .map(|entry| entry.outcome)
                    });
                    (
                        added.is_some(),
                        outcome.unwrap_or(Outcome::Accepted),
                        VideoStatus::from_fold(&self.video_id, fold),
                    )
                }
                Loaded::Tip(tip) if tip.takes(&event) => {
                    let outcome = tip.extend(VideoEvent::clone(&event));
                    let status = VideoStatus::from_state(
                        self.video_id.clone(),
                        tip.state().clone(),
                        tip.version(),
                    );
                    (true, outcome, Some(status))
                }
                // Late for the tip, or an id it cannot rule out: the whole stream decides.
                Loaded::Tip(_) => {
                    self.stale = true;
                    continue;
                }
            };
            let request = AppendRequest {
                expected_version,
                event: Arc::clone(&event),
                raw: raw.clone(),
                status,
            };
            let answer = self.store.append(request).await;
            if is_new && !matches!(answer, Ok(AppendOutcome::Appended { .. })) {
                self.stale = true;
            }
            match answer {
                Ok(AppendOutcome::Appended { position, .. }) => {
                    return Ok(Ingested::Appended { outcome, position });
                }
                Ok(AppendOutcome::Duplicate { stream, same_body }) => {
                    if !same_body {
                        self.record_conflict(&event, raw).await?;
                    }
                    return Ok(Ingested::Duplicate {
                        video_id: stream,
                        conflict: !same_body,
                    });
                }
                // Another writer (another node) extended the stream: reload and decide again.
                Err(StoreError::Conflict { .. }) => self.stale = true,
                Err(error) => return Err(IngestError::from_store(error)),
            }
        }
        warn!(video_id = %self.video_id, event_id = %event.event_id, "expected-version conflicts did not settle");
        Err(IngestError::Contention)
    }

    async fn record_conflict(
        &self,
        event: &VideoEvent,
        raw: RawDelivery,
    ) -> Result<(), IngestError> {
        metrics::counter!("webhook_id_conflicts_total", "provider" => event.provider.to_string())
            .increment(1);
        warn!(
            provider = %event.provider,
            video_id = %event.video_id,
            event_id = %event.event_id,
            "event id reused with a different body; kept in the audit log, not folded"
        );
        let record = AuditRecord {
            provider: event.provider.clone(),
            event_id: Some(event.event_id.clone()),
            video_id: Some(event.video_id.clone()),
            kind: AuditKind::Conflict,
            detail: "event id already stored with a different body".into(),
            received_at: event.received_at,
            raw,
        };
        self.store
            .record_audit(record)
            .await
            .map_err(IngestError::from_store)
    }
}

impl VideoState {
    /// At passivation: keeps a snapshot when the stream is long and grew since the last one. A
    /// failure only costs the next activation a longer read, so it is logged, not raised.
    async fn keep_snapshot(&mut self) {
        let version = self.loaded.version();
        if self.stale || version < self.snapshot_after || version <= self.snapshot_version {
            return;
        }
        let tip = match &self.loaded {
            Loaded::Whole(fold) => Tip::of(fold),
            Loaded::Tip(tip) => Some(tip.as_ref().clone()),
        };
        let Some(tip) = tip else { return };
        let snapshot = Snapshot {
            video_id: self.video_id.clone(),
            version,
            fold_version: FOLD_VERSION,
            status: VideoStatus::from_state(self.video_id.clone(), tip.state().clone(), version),
            last_event: tip.last().clone(),
        };
        match self.store.save_snapshot(snapshot).await {
            Ok(()) => self.snapshot_version = version,
            Err(error) => warn!(video_id = %self.video_id, %error, "snapshot not kept"),
        }
    }
}

/// Starts from the video's snapshot and the events after it when they all extend its tip, else
/// from the whole stream. Also answers the version of the snapshot the store holds (0: none).
/// One read in the usual cases: a video without a snapshot gets its whole stream with it.
async fn activate(store: &Store, video_id: &VideoId) -> Result<(Loaded, u64), StoreError> {
    let VideoLog { snapshot, events } = store.load_video(video_id).await?;
    let Some(snapshot) = snapshot else {
        metrics::counter!("actor_activations_total", "from" => "stream").increment(1);
        let fold = Fold::from_events(events.into_iter().map(|stored| stored.event));
        return Ok((Loaded::Whole(Box::new(fold)), 0));
    };
    if snapshot.fold_version == FOLD_VERSION {
        let state = snapshot.status.to_state();
        let mut tip = Tip::new(state, snapshot.version, snapshot.last_event);
        let mut fits = true;
        for stored in events {
            if !tip.takes(&stored.event) {
                fits = false;
                break;
            }
            tip.extend(stored.event);
        }
        if fits {
            metrics::counter!("actor_activations_total", "from" => "snapshot").increment(1);
            return Ok((Loaded::Tip(Box::new(tip)), snapshot.version));
        }
    }
    // Another fold's snapshot counts as none.
    let kept = if snapshot.fold_version == FOLD_VERSION {
        snapshot.version
    } else {
        0
    };
    metrics::counter!("actor_activations_total", "from" => "stream").increment(1);
    Ok((
        Loaded::Whole(Box::new(load_fold(store, video_id).await?)),
        kept,
    ))
}

async fn load_fold(store: &Store, video_id: &VideoId) -> Result<Fold, StoreError> {
    let stored = store.read_stream(video_id).await?;
    Ok(Fold::from_events(stored.into_iter().map(|s| s.event)))
}
