//! One video, many names: a provider's upload id, then its asset id, the app's own id carried in
//! `passthrough` or `meta`. The mapper names a primary id and the provider's other ids for the
//! event (`Provider::aliases`); the correlator decides which video they all fold into, and reads
//! resolve any alias to that video.
//!
//! The first id that is already known decides; otherwise the mapper's primary id becomes the
//! video. So an event that came before the link (under the asset id alone, say) keeps its video,
//! and the later event that carries the link joins it instead of starting a second one. Links are
//! written to the store before the event is appended: a link without an event is harmless, an
//! event whose link was lost would split the video.

use std::sync::Arc;

use tokio::sync::Mutex;
use tracing::warn;

use crate::event::VideoId;
use crate::store::{EventStore, Store, StoreError};

#[derive(Clone)]
pub struct Correlator {
    store: Store,
    /// Resolving and linking are one step: two first events of one video arriving together (each
    /// under a different id) must not both decide they start it.
    linking: Arc<Mutex<()>>,
}

impl Correlator {
    pub fn new(store: Store) -> Correlator {
        Correlator {
            store,
            linking: Arc::new(Mutex::new(())),
        }
    }

    /// The video an event named `primary` (and known to the provider by `aliases`) belongs to;
    /// links every id to it that was not linked yet.
    pub async fn video_for(
        &self,
        primary: VideoId,
        aliases: Vec<VideoId>,
    ) -> Result<VideoId, StoreError> {
        let mut candidates = vec![primary.clone()];
        for alias in aliases {
            if !candidates.contains(&alias) {
                candidates.push(alias);
            }
        }
        // Once a video's ids are linked (every event after its first), one read answers and no
        // lock is taken: the lock only orders the events that still have something to link.
        let known = self.store.resolve_aliases(candidates.clone()).await?;
        if known.len() == candidates.len() && known.iter().all(|(_, v)| v == &known[0].1) {
            return Ok(known[0].1.clone());
        }
        let _linking = self.linking.lock().await;
        let known = self.store.resolve_aliases(candidates.clone()).await?;
        let video = known.first().map_or(primary, |(_, video)| video.clone());
        for (alias, other) in known.iter().filter(|(_, other)| other != &video) {
            // Both ids already had events of their own before anything linked them: merging two
            // streams would rewrite the log, so the event goes to the first and this is counted.
            metrics::counter!("video_alias_conflicts_total").increment(1);
            warn!(%alias, %other, %video, "alias already names another video; not merged");
        }
        let unlinked: Vec<VideoId> = candidates
            .into_iter()
            .filter(|id| !known.iter().any(|(alias, _)| alias == id))
            .collect();
        if !unlinked.is_empty() {
            self.store.link_aliases(video.clone(), unlinked).await?;
        }
        Ok(video)
    }

    /// The video `id` names: the one it is an alias of, else itself.
    pub async fn resolve(&self, id: &VideoId) -> Result<VideoId, StoreError> {
        let known = self.store.resolve_aliases(vec![id.clone()]).await?;
        Ok(known
            .into_iter()
            .next()
            .map_or_else(|| id.clone(), |(_, video)| video))
    }
}
