//! Reconciliation, the safety net under webhooks: a sweep of the status table finds videos that
//! have waited on their provider past its deadline, announces them as stalled (SSE, metrics),
//! and hands them to that provider's poller, which asks the provider's API and appends what it
//! learns through the same actors as a webhook.
//!
//! Nothing here may hold up ingestion: the sweep reads the status table (never the actors), and
//! each poll runs in its own task that touches an actor only once it has an answer to append.
//! Several nodes each sweep and poll; what they append dedupes like redelivered webhooks.

mod poll;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::actor::VideoManager;
use crate::config::Config;
use crate::correlation::Correlator;
use crate::event::VideoId;
use crate::lifecycle::Status;
use crate::projection::stall::StallPolicy;
use crate::projection::VideoStatus;
use crate::providers::Providers;
use crate::sse::Hub;
use crate::store::{EventStore, StatusQuery, Store, StoreError};

use poll::Poller;
pub use poll::{next_wait, PollSetupError};

/// Rows read per round trip while sweeping.
const SWEEP_PAGE: usize = 1000;

/// What one sweep found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Videos stalled now.
    pub stalled: usize,
    /// Of those, the ones not stalled (or stalled since another time) at the previous sweep.
    pub newly_stalled: usize,
    /// Polls started by this sweep.
    pub polls_started: usize,
}

/// The sweeper and the pollers of every provider with a `[provider.poll]` table.
pub struct Reconciler {
    store: Store,
    hub: Hub,
    stalls: StallPolicy,
    /// Every configured provider, so each gets its gauge even at zero.
    providers: Vec<String>,
    pollers: Vec<Poller>,
    /// Stalls announced at the last sweep, by the `updated_at` they started from: a video that
    /// moved and stalled again between two sweeps is a new stall.
    announced: HashSet<(VideoId, DateTime<Utc>)>,
    interval: Duration,
    polls: JoinSet<()>,
}

impl Reconciler {
    /// Builds a poller (an HTTP client) for each provider with a poll table.
    pub fn new(
        config: &Config,
        providers: &Providers,
        store: Store,
        hub: Hub,
        videos: VideoManager,
        stalls: StallPolicy,
    ) -> Result<Reconciler, PollSetupError> {
        let mut pollers = Vec::new();
        for entry in &config.providers {
            let (Some(poll), Some(provider)) = (&entry.poll, providers.get(&entry.name)) else {
                continue;
            };
            pollers.push(Poller::new(
                provider,
                poll.clone(),
                videos.clone(),
                Correlator::new(store.clone()),
                config.limits.max_body_bytes,
            )?);
        }
        Ok(Reconciler {
            store,
            hub,
            stalls,
            providers: providers.names(),
            pollers,
            announced: HashSet::new(),
            interval: config.reconcile.sweep_interval(),
            polls: JoinSet::new(),
        })
    }

    /// Sweeps every `reconcile.sweep_interval_ms` until dropped (dropping also aborts the polls
    /// in flight: an answer not appended yet is simply asked again by the next run).
    pub async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(error) = self.sweep().await {
                warn!(%error, "reconciliation sweep could not read the status table");
            }
        }
    }

    /// One sweep: find stalled videos, announce the new ones, start the polls that are due.
    pub async fn sweep(&mut self) -> Result<Sweep, StoreError> {
        while self.polls.try_join_next().is_some() {}
        let now = Utc::now();
        let stalled = self.stalled_videos(now).await?;

        let mut per_provider: BTreeMap<&str, usize> =
            self.providers.iter().map(|p| (p.as_str(), 0)).collect();
        let mut announced = HashSet::with_capacity(stalled.len());
        let mut newly_stalled = 0;
        for status in &stalled {
            *per_provider.entry(status.provider.as_str()).or_default() += 1;
            let key = (status.video_id.clone(), status.updated_at);
            if !self.announced.contains(&key) {
                newly_stalled += 1;
                info!(video_id = %status.video_id, provider = %status.provider, status = %status.status, "video stalled");
                metrics::counter!("videos_stalled_total", "provider" => status.provider.to_string())
                    .increment(1);
                self.hub.announce_stalled(status.clone());
            }
            announced.insert(key);
        }
        self.announced = announced;
        for (provider, count) in per_provider {
            metrics::gauge!("videos_stalled", "provider" => provider.to_string()).set(count as f64);
        }

        let mut polls_started = 0;
        for poller in &self.pollers {
            let own: Vec<&VideoStatus> = stalled
                .iter()
                .filter(|s| s.provider.as_str() == poller.provider_name())
                .collect();
            polls_started += poller.dispatch(&own, &mut self.polls);
        }
        Ok(Sweep {
            stalled: stalled.len(),
            newly_stalled,
            polls_started,
        })
    }

    /// Every video stalled at `now`, the longest stalled first. Reads only the statuses that
    /// can stall, by their index, so a sweep costs what is in flight, not the whole table.
    async fn stalled_videos(&self, now: DateTime<Utc>) -> Result<Vec<VideoStatus>, StoreError> {
        let mut stalled = Vec::new();
        for status in [Status::Uploaded, Status::Processing, Status::Processed] {
            let mut after = None;
            loop {
                let page = self
                    .store
                    .list_statuses(StatusQuery {
                        status: Some(status),
                        provider: None,
                        after,
                        limit: SWEEP_PAGE,
                    })
                    .await?;
                stalled.extend(
                    page.videos
                        .into_iter()
                        .filter(|video| self.stalls.is_stalled(video, now)),
                );
                match page.next_after {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        stalled.sort_by_key(|video| video.updated_at);
        Ok(stalled)
    }
}
