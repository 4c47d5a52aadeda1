//! The registry of live video actors: get-or-spawn, bounded pending work, passivation and
//! clean-up after a crash. The map lock is never held across an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorId, ActorRef};
use tracing::{error, instrument, Span};

use super::supervisor::{Supervisor, SupervisorArgs};
use super::video::{Ingested, VideoActor, VideoArgs, VideoMsg};
use crate::config::{Actors, Limits};
use crate::event::{RawDelivery, VideoEvent, VideoId};
use crate::store::{Store, StoreError};

/// Why an event could not be taken now. Every variant means "retry later" (HTTP 503).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("too many webhooks are waiting for this video")]
    VideoBusy,
    #[error("too many webhooks are in flight")]
    Overloaded,
    #[error("the event store did not confirm the write in time")]
    Timeout,
    #[error("the video's actor failed; it restarts on the next delivery")]
    ActorFailed,
    #[error("concurrent writers kept moving the stream")]
    Contention,
    #[error("the event store is unavailable")]
    StoreUnavailable(#[source] StoreError),
    #[error("the service is shutting down")]
    ShuttingDown,
}

impl IngestError {
    pub(crate) fn from_store(error: StoreError) -> IngestError {
        IngestError::StoreUnavailable(error)
    }
}

/// Handle to the video actors; cheap to clone.
#[derive(Clone)]
pub struct VideoManager {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    limits: Limits,
    idle_timeout: Duration,
    snapshot_after: u64,
    supervisor: Mutex<Option<ActorRef<()>>>,
    registry: Mutex<Registry>,
    next_generation: AtomicU64,
}

#[derive(Default)]
struct Registry {
    actors: HashMap<VideoId, Entry>,
    by_actor: HashMap<ActorId, VideoId>,
    pending_total: usize,
    closed: bool,
}

struct Entry {
    actor: ActorRef<VideoMsg>,
    generation: u64,
    /// Deliveries handed to the actor and not yet answered; an entry with pending work is
    /// never passivated, so no message can reach a stopping actor.
    pending: usize,
}

/// Counts one delivery as pending until dropped (also when the HTTP request is cancelled).
struct PendingGuard {
    manager: VideoManager,
    video_id: VideoId,
    generation: u64,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let mut registry = self.manager.lock();
        registry.pending_total -= 1;
        if let Some(entry) = registry.actors.get_mut(&self.video_id) {
            if entry.generation == self.generation {
                entry.pending -= 1;
            }
        }
    }
}

impl VideoManager {
    /// Starts the supervisor; video actors are spawned on demand.
    pub async fn start(
        store: Store,
        limits: Limits,
        actors: Actors,
    ) -> Result<VideoManager, ractor::SpawnErr> {
        let manager = VideoManager {
            inner: Arc::new(Inner {
                store,
                limits,
                idle_timeout: actors.idle_timeout(),
                snapshot_after: actors.snapshot_after_events,
                supervisor: Mutex::new(None),
                registry: Mutex::new(Registry::default()),
                next_generation: AtomicU64::new(1),
            }),
        };
        let (supervisor, _) = Actor::spawn(
            None,
            Supervisor,
            SupervisorArgs {
                manager: manager.clone(),
            },
        )
        .await?;
        *manager.inner.supervisor.lock().expect("supervisor lock") = Some(supervisor);
        Ok(manager)
    }

    /// Hands `event` to its video's actor and waits until it is durably appended (or known).
    #[instrument(level = "debug", skip_all, fields(video_id = %event.video_id, event_id = %event.event_id))]
    pub async fn ingest(
        &self,
        event: VideoEvent,
        raw: RawDelivery,
    ) -> Result<Ingested, IngestError> {
        let video_id = event.video_id.clone();
        let (actor, guard) = self.checkout(&video_id)?;
        let timeout = Duration::from_millis(self.inner.limits.request_timeout_ms);
        let answer = actor
            .call(
                |reply| VideoMsg::Ingest {
                    event,
                    raw,
                    caller: Span::current(),
                    reply,
                },
                Some(timeout),
            )
            .await;
        let result = match answer {
            Ok(CallResult::Success(result)) => result,
            Ok(CallResult::Timeout) => Err(IngestError::Timeout),
            Ok(CallResult::SenderError) | Err(_) => {
                // The actor died with this delivery in hand: forget it so the next delivery
                // starts a fresh one from the log.
                self.forget(&video_id, guard.generation);
                Err(IngestError::ActorFailed)
            }
        };
        drop(guard);
        result
    }

    /// Number of live video actors.
    pub fn active_actors(&self) -> usize {
        self.lock().actors.len()
    }

    /// Stops taking deliveries and stops every actor once its current work is done.
    pub async fn shutdown(&self) {
        let actors: Vec<ActorRef<VideoMsg>> = {
            let mut registry = self.lock();
            registry.closed = true;
            registry.actors.values().map(|e| e.actor.clone()).collect()
        };
        for actor in actors {
            // Called after the HTTP server drained, so no delivery is pending: stopping loses nothing.
            let _ = actor
                .stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(10)))
                .await;
        }
        let supervisor = self
            .inner
            .supervisor
            .lock()
            .expect("supervisor lock")
            .take();
        if let Some(supervisor) = supervisor {
            supervisor.stop(None);
        }
    }

    fn checkout(
        &self,
        video_id: &VideoId,
    ) -> Result<(ActorRef<VideoMsg>, PendingGuard), IngestError> {
        let mut registry = self.lock();
        if registry.closed {
            return Err(IngestError::ShuttingDown);
        }
        if registry.pending_total >= self.inner.limits.max_pending_total {
            return Err(IngestError::Overloaded);
        }
        if let Some(entry) = registry.actors.get(video_id) {
            if entry.pending >= self.inner.limits.max_pending_per_video {
                return Err(IngestError::VideoBusy);
            }
        } else {
            let generation = self.inner.next_generation.fetch_add(1, Ordering::Relaxed);
            let actor = self.spawn(video_id, generation)?;
            registry.by_actor.insert(actor.get_id(), video_id.clone());
            registry.actors.insert(
                video_id.clone(),
                Entry {
                    actor,
                    generation,
                    pending: 0,
                },
            );
            metrics::gauge!("video_actors_active").set(registry.actors.len() as f64);
        }
        let entry = registry.actors.get_mut(video_id).expect("entry present");
        entry.pending += 1;
        let (actor, generation) = (entry.actor.clone(), entry.generation);
        registry.pending_total += 1;
        Ok((
            actor,
            PendingGuard {
                manager: self.clone(),
                video_id: video_id.clone(),
                generation,
            },
        ))
    }

    fn spawn(
        &self,
        video_id: &VideoId,
        generation: u64,
    ) -> Result<ActorRef<VideoMsg>, IngestError> {
        let supervisor: ActorCell = self
            .inner
            .supervisor
            .lock()
            .expect("supervisor lock")
            .as_ref()
            .map(|s| s.get_cell())
            .ok_or(IngestError::ShuttingDown)?;
        let args = VideoArgs {
            video_id: video_id.clone(),
            generation,
            store: self.inner.store.clone(),
            manager: self.clone(),
            idle_timeout: self.inner.idle_timeout,
            snapshot_after: self.inner.snapshot_after,
        };
        // `instant` spawning queues deliveries while pre_start loads the stream, so the
        // registry lock is never held across an await.
        let (actor, _starting) =
            ractor::ActorRuntime::spawn_linked_instant(None, VideoActor, args, supervisor)
                .map_err(|err| {
                    error!(%video_id, %err, "could not spawn a video actor");
                    IngestError::ActorFailed
                })?;
        Ok(actor)
    }

    /// Called by an idle actor: removes it unless a delivery is pending for it.
    pub(crate) fn try_passivate(&self, video_id: &VideoId, generation: u64) -> bool {
        let mut registry = self.lock();
        let removable = matches!(
            registry.actors.get(video_id),
            Some(entry) if entry.generation == generation && entry.pending == 0
        );
        if removable {
            if let Some(entry) = registry.actors.remove(video_id) {
                registry.by_actor.remove(&entry.actor.get_id());
            }
            metrics::gauge!("video_actors_active").set(registry.actors.len() as f64);
        }
        removable
    }

    /// Called by the supervisor when an actor died: the next delivery spawns a fresh one.
    pub(crate) fn forget_actor(&self, actor: ActorId) {
        let mut registry = self.lock();
        if let Some(video_id) = registry.by_actor.remove(&actor) {
            let same =
                matches!(registry.actors.get(&video_id), Some(e) if e.actor.get_id() == actor);
            if same {
                registry.actors.remove(&video_id);
            }
        }
        metrics::gauge!("video_actors_active").set(registry.actors.len() as f64);
    }

    fn forget(&self, video_id: &VideoId, generation: u64) {
        let mut registry = self.lock();
        let same = matches!(registry.actors.get(video_id), Some(e) if e.generation == generation);
        if same {
            if let Some(entry) = registry.actors.remove(video_id) {
                registry.by_actor.remove(&entry.actor.get_id());
                entry.actor.kill();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic while holding this lock cannot leave the maps half-updated in a way that
        // matters more than stopping ingestion would, so recover the guard.
        self.inner
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
