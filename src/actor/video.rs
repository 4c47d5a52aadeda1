//! The actor of one video. Business outcomes (accepted, duplicate, store unavailable) go back
//! through the reply port; `handle` returns `Err` only when the actor should die.

use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::JoinHandle;
use tracing::{instrument, warn};

use super::manager::{IngestError, VideoManager};
use crate::event::{RawDelivery, VideoEvent, VideoId};
use crate::lifecycle::{Fold, Outcome};
use crate::projection::VideoStatus;
use crate::store::{
    AppendOutcome, AppendRequest, AuditKind, AuditRecord, EventStore, Store, StoreError,
};

/// How often an expected-version conflict (another writer on the stream) is retried.
const MAX_CONFLICT_RETRIES: usize = 5;

/// What became of one delivered event.
#[derive(Debug, Clone, PartialEq)]
pub enum Ingested {
    /// Durably appended at global `position`. `outcome` says whether the fold accepted it or
    /// kept it as a rejected regression.
    Appended { outcome: Outcome, position: u64 },
    /// `(provider, event_id)` was already in the log. `conflict` marks a different body reusing
    /// the id: it is recorded in the audit log, never merged.
    Duplicate { conflict: bool },
}

// Each message is moved into the mailbox once; boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum VideoMsg {
    Ingest {
        event: VideoEvent,
        raw: RawDelivery,
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
}

pub(crate) struct VideoState {
    video_id: VideoId,
    generation: u64,
    store: Store,
    manager: VideoManager,
    fold: Fold,
    /// Set when the fold may hold what the log does not: reloaded before the next event.
    stale: bool,
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
        let fold = load_fold(&args.store, &args.video_id).await?;
        let check_every = (args.idle_timeout / 4).max(Duration::from_millis(50));
        let idle_timer = myself.send_interval(check_every, || VideoMsg::IdleCheck);
        Ok(VideoState {
            video_id: args.video_id,
            generation: args.generation,
            store: args.store,
            manager: args.manager,
            fold,
            stale: false,
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
            VideoMsg::Ingest { event, raw, reply } => {
                state.last_activity = Instant::now();
                let result = state.ingest(event, raw).await;
                // The caller may have given up (timeout); its answer is then simply dropped.
                let _ = reply.send(result);
            }
            VideoMsg::IdleCheck => {
                if state.last_activity.elapsed() >= state.idle_timeout
                    && state
                        .manager
                        .try_passivate(&state.video_id, state.generation)
                {
                    myself.stop(Some("idle".into()));
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
    #[instrument(skip_all, fields(video_id = %self.video_id, event_id = %event.event_id, provider = %event.provider))]
    async fn ingest(
        &mut self,
        event: VideoEvent,
        raw: RawDelivery,
    ) -> Result<Ingested, IngestError> {
        for _ in 0..MAX_CONFLICT_RETRIES {
            if self.stale {
                self.fold = load_fold(&self.store, &self.video_id)
                    .await
                    .map_err(IngestError::from_store)?;
                self.stale = false;
            }
            let expected_version = self.fold.version();
            // The event goes into the fold before the store has it (no copy of the fold per
            // webhook); any answer but `Appended` marks the fold stale, to be reloaded from the
            // log. A known id is still sent to the store: its unique key answers whether the
            // body is the same, which the fold alone cannot tell.
            let is_new = self.fold.insert(event.clone());
            let status = VideoStatus::from_fold(&self.video_id, &self.fold);
            let request = AppendRequest {
                expected_version,
                event: event.clone(),
                raw: raw.clone(),
                status,
            };
            let answer = self.store.append(request).await;
            if is_new && !matches!(answer, Ok(AppendOutcome::Appended { .. })) {
                self.stale = true;
            }
            match answer {
                Ok(AppendOutcome::Appended { position, .. }) => {
                    let outcome = self
                        .fold
                        .outcome_of(&event.provider, &event.event_id)
                        .map(|entry| entry.outcome)
                        .unwrap_or(Outcome::Accepted);
                    return Ok(Ingested::Appended { outcome, position });
                }
                Ok(AppendOutcome::Duplicate { same_body, .. }) => {
                    if !same_body {
                        self.record_conflict(&event, raw).await?;
                    }
                    return Ok(Ingested::Duplicate {
                        conflict: !same_body,
                    });
                }
                // Another writer (another node) extended the stream: reload and decide again.
                Err(StoreError::Conflict { .. }) => self.stale = true,
                Err(error) => return Err(IngestError::from_store(error)),
            }
        }
        warn!("expected-version conflicts did not settle");
        Err(IngestError::Contention)
    }

    async fn record_conflict(
        &self,
        event: &VideoEvent,
        raw: RawDelivery,
    ) -> Result<(), IngestError> {
        metrics::counter!("webhook_id_conflicts_total", "provider" => event.provider.to_string())
            .increment(1);
        warn!("event id reused with a different body; kept in the audit log, not folded");
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

async fn load_fold(store: &Store, video_id: &VideoId) -> Result<Fold, StoreError> {
    let stored = store.read_stream(video_id).await?;
    Ok(Fold::from_events(stored.into_iter().map(|s| s.event)))
}
