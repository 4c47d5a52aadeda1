//! The hub: per video a `watch` channel (latest wins, so a slow reader skips to the newest status
//! and never grows a buffer), and one bounded broadcast for the global stream (a reader that falls
//! behind is told to resync). Only videos someone watches have a channel.
//!
//! A status is replaced by a newer version, or by the same version with other content: a rebuild
//! that corrects a status keeps its version (no event moved it), and time alone can make a
//! status stalled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::frame::Published;
use crate::event::VideoId;
use crate::projection::VideoStatus;
use crate::store::{Appended, Change, EventStore, Store};

/// What a global subscriber receives.
#[derive(Debug, Clone)]
pub enum GlobalEvent {
    /// A committed change at `position` (the id of its global frame too).
    Change {
        position: u64,
        published: Arc<Published>,
    },
    /// A video became stalled: no event moved it, only time, so there is no position for it.
    Stalled(Arc<Published>),
    /// A rebuild corrected a video's status: no event moved it either, and it keeps its version.
    Corrected(Arc<Published>),
    /// Subscribers must refetch: the statuses they were told may not be the ones stored now.
    Reset(ResetCause),
}

/// Why global subscribers must refetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetCause {
    /// The hub itself missed changes (it fell behind the store's feed).
    HubLagged,
    /// A rebuild changed statuses without announcing each (it swapped in a whole table).
    Rebuilt,
}

/// How often the hub checks whether another process (`video-status rebuild`) swapped in a status
/// table: that process's writes reach this one's readers at once, but not its change feed.
const FOREIGN_SWAP_POLL: Duration = Duration::from_secs(2);

/// A video's newest status, shared with the global stream so that its frames are encoded once.
type Latest = Option<Arc<Published>>;

/// Handle to the hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    videos: Mutex<HashMap<VideoId, watch::Sender<Latest>>>,
    global: broadcast::Sender<GlobalEvent>,
    closing: watch::Sender<bool>,
    follower: Mutex<Option<JoinHandle<()>>>,
}

/// What [`Hub::subscribers`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribers {
    /// Subscriptions to one video each, all videos together.
    pub videos: usize,
    /// Videos with at least one of those.
    pub watched_videos: usize,
    /// Subscriptions to every change.
    pub global: usize,
}

/// A subscription to one video; dropping it frees the video's channel when it was the last.
pub struct VideoSubscription {
    hub: Hub,
    video_id: VideoId,
    receiver: watch::Receiver<Latest>,
}

impl Hub {
    /// Starts following `store`'s change feed. `global_buffer` bounds what each global
    /// subscriber may fall behind before it gets a reset.
    pub fn start(store: &Store, global_buffer: usize) -> Hub {
        let (global, _) = broadcast::channel(global_buffer);
        let hub = Hub {
            inner: Arc::new(Inner {
                videos: Mutex::new(HashMap::new()),
                global,
                closing: watch::channel(false).0,
                follower: Mutex::new(None),
            }),
        };
        let feed = store.changes();
        // The follower holds the store only to resync after a lag; `close` ends it, so the store
        // (and its writer thread) can be dropped at shutdown.
        let follower = tokio::spawn(follow(hub.clone(), store.clone(), feed));
        *hub.inner.follower.lock().expect("follower lock") = Some(follower);
        hub
    }

    /// Subscribes to one video's status; the receiver holds the newest status published since.
    pub fn subscribe_video(&self, video_id: &VideoId) -> VideoSubscription {
        let mut videos = self.lock_videos();
        let receiver = videos
            .entry(video_id.clone())
            .or_insert_with(|| watch::channel(None).0)
            .subscribe();
        VideoSubscription {
            hub: self.clone(),
            video_id: video_id.clone(),
            receiver,
        }
    }

    /// Subscribes to every change from now on.
    pub fn subscribe_all(&self) -> broadcast::Receiver<GlobalEvent> {
        self.inner.global.subscribe()
    }

    /// Resolves once the hub is closing (server shutdown): streams end with a final event.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    /// Number of videos with at least one subscriber.
    pub fn watched_videos(&self) -> usize {
        self.lock_videos().len()
    }

    /// Open subscriptions and the videos they watch, counted under one lock.
    pub fn subscribers(&self) -> Subscribers {
        let videos = self.lock_videos();
        Subscribers {
            videos: videos.values().map(watch::Sender::receiver_count).sum(),
            watched_videos: videos.len(),
            global: self.inner.global.receiver_count(),
        }
    }

    /// Stops following the store and tells every stream to end.
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
        if let Some(follower) = self.inner.follower.lock().expect("follower lock").take() {
            follower.abort();
        }
    }

    /// Tells subscribers that `status` became stalled. Its version is one they may have seen
    /// already, so it replaces an equal version (a newer one wins, as always).
    pub fn announce_stalled(&self, status: VideoStatus) {
        let stalled = Arc::new(Published::new(Arc::new(status), None));
        if let Some(sender) = self.lock_videos().get(&stalled.status.video_id) {
            sender.send_if_modified(|latest| match latest {
                Some(known) if known.status.version > stalled.status.version => false,
                _ => {
                    *latest = Some(Arc::clone(&stalled));
                    true
                }
            });
        }
        let _ = self.inner.global.send(GlobalEvent::Stalled(stalled));
    }

    /// One `Published` per change, handed to both stream kinds: whichever subscriber first
    /// needs a frame encodes it, every other one clones it.
    fn publish(&self, appended: Appended) {
        let published = Arc::new(Published::new(appended.status, Some(appended.position)));
        if let Some(sender) = self.lock_videos().get(&appended.video_id) {
            offer(sender, Arc::clone(&published));
        }
        // No global subscriber is not an error.
        let _ = self.inner.global.send(GlobalEvent::Change {
            position: appended.position,
            published,
        });
    }

    /// A status a rebuild corrected in place: it reaches the video's subscribers at the version
    /// they may hold already, and global ones as a frame without a position.
    fn publish_correction(&self, status: Arc<VideoStatus>) {
        let published = Arc::new(Published::new(status, None));
        if let Some(sender) = self.lock_videos().get(&published.status.video_id) {
            offer(sender, Arc::clone(&published));
        }
        let _ = self.inner.global.send(GlobalEvent::Corrected(published));
    }

    fn lock_videos(&self) -> std::sync::MutexGuard<'_, HashMap<VideoId, watch::Sender<Latest>>> {
        self.inner
            .videos
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether two statuses are the same, version and content: the same `Arc` mostly, and compared
/// field by field only when a status came twice by different paths (a resync, a correction).
pub fn same_status(a: &Arc<VideoStatus>, b: &Arc<VideoStatus>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

/// Replaces the watched status by a newer version, or by the same version with other content
/// (a rebuild corrected it), never by an older one: a late resync read never moves a
/// subscriber backwards.
fn offer(sender: &watch::Sender<Latest>, status: Arc<Published>) {
    sender.send_if_modified(|latest| match latest {
        Some(known) if known.status.version > status.status.version => false,
        Some(known) if same_status(&known.status, &status.status) => false,
        _ => {
            *latest = Some(status);
            true
        }
    });
}

async fn follow(hub: Hub, store: Store, mut feed: broadcast::Receiver<Change>) {
    let mut known_swaps = store.status_table_swaps().await.ok();
    let mut poll = tokio::time::interval(FOREIGN_SWAP_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let received = tokio::select! {
            // What this process committed comes first: its own swap is announced by the feed.
            biased;
            received = feed.recv() => received,
            _ = poll.tick() => {
                match store.status_table_swaps().await {
                    Ok(swaps) => {
                        if known_swaps.is_some_and(|known| known != swaps) {
                            info!("another process swapped in a status table; resyncing subscribers");
                            reset_and_resync(&hub, &store, ResetCause::Rebuilt).await;
                        }
                        known_swaps = Some(swaps);
                    }
                    Err(error) => debug!(%error, "could not check for a swapped-in status table"),
                }
                continue;
            }
        };
        match received {
            Ok(Change::Appended(appended)) => hub.publish(appended),
            Ok(Change::Corrected(status)) => hub.publish_correction(status),
            Ok(Change::Rebuilt) => {
                // This process's own swap moved the count: not another process's.
                known_swaps = store.status_table_swaps().await.ok().or(known_swaps);
                reset_and_resync(&hub, &store, ResetCause::Rebuilt).await;
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                warn!(
                    missed,
                    "hub fell behind the store's change feed; resyncing subscribers"
                );
                metrics::counter!("sse_hub_resyncs_total").increment(1);
                // The resync covers a swap among what was missed.
                known_swaps = store.status_table_swaps().await.ok().or(known_swaps);
                reset_and_resync(&hub, &store, ResetCause::HubLagged).await;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Statuses changed without being announced one by one (`cause`): global subscribers must
/// refetch, and the watched videos are read again.
async fn reset_and_resync(hub: &Hub, store: &Store, cause: ResetCause) {
    let _ = hub.inner.global.send(GlobalEvent::Reset(cause));
    resync_videos(hub, store).await;
}

/// Re-reads the status of every watched video from the status table (after a lag, or a rebuild
/// that did not announce each status it changed).
async fn resync_videos(hub: &Hub, store: &Store) {
    let watched: Vec<VideoId> = hub.lock_videos().keys().cloned().collect();
    for video_id in watched {
        match store.get_status(&video_id).await {
            Ok(Some(status)) => {
                if let Some(sender) = hub.lock_videos().get(&video_id) {
                    offer(sender, Arc::new(Published::new(Arc::new(status), None)));
                }
            }
            Ok(None) => {}
            Err(error) => warn!(%error, %video_id, "could not resync a watched video"),
        }
    }
}

impl VideoSubscription {
    /// The newest status published (or announced stalled) so far; marks it seen, so `changed`
    /// waits for the next one.
    pub fn newest(&mut self) -> Option<Arc<Published>> {
        self.receiver.borrow_and_update().clone()
    }

    /// Waits for the next publication; `false` once the hub is gone.
    pub async fn changed(&mut self) -> bool {
        self.receiver.changed().await.is_ok()
    }
}

impl Drop for VideoSubscription {
    fn drop(&mut self) {
        let mut videos = self.hub.lock_videos();
        // This receiver still counts until it is dropped after this body: 1 means it was the last.
        let last = videos
            .get(&self.video_id)
            .is_some_and(|sender| sender.receiver_count() <= 1);
        if last {
            videos.remove(&self.video_id);
        }
    }
}
