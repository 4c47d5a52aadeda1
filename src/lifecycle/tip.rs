//! The end of a folded stream: its state, version and last event in fold order. Enough to fold an
//! event that sorts after every known one without the events before it, which is what a snapshot
//! restores; anything else (a late event, a known id) needs the whole stream.

use std::cmp::Ordering;
use std::collections::HashSet;

use super::fold::{fold_order, Fold, Outcome};
use super::table::{apply, decide, Decision};
use super::VideoState;
use crate::event::{EventId, ProviderName, VideoEvent};

#[derive(Debug, Clone)]
pub struct Tip {
    state: VideoState,
    version: u64,
    last: VideoEvent,
    /// Dedupe keys of the events folded since the tip was taken: a redelivery of one of those
    /// must not count twice. Older ids are unknown here; the store's unique key catches them.
    since: HashSet<(ProviderName, EventId)>,
}

impl Tip {
    pub fn new(state: VideoState, version: u64, last: VideoEvent) -> Tip {
        Tip {
            state,
            version,
            last,
            since: HashSet::new(),
        }
    }

    /// The tip of a whole fold; `None` while no event was accepted.
    pub fn of(fold: &Fold) -> Option<Tip> {
        Some(Tip::new(
            fold.state()?.clone(),
            fold.version(),
            fold.events().last()?.clone(),
        ))
    }

    pub fn state(&self) -> &VideoState {
        &self.state
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// The last event in fold order.
    pub fn last(&self) -> &VideoEvent {
        &self.last
    }

    /// Whether `event` can be folded here: it sorts after the last event and is not one folded
    /// since the tip was taken.
    pub fn takes(&self, event: &VideoEvent) -> bool {
        fold_order(&self.last, event) == Ordering::Less
            && !self
                .since
                .contains(&(event.provider.clone(), event.event_id.clone()))
    }

    /// Folds `event`, which [`Tip::takes`]; its outcome, as the whole fold would decide it.
    pub fn extend(&mut self, event: VideoEvent) -> Outcome {
        debug_assert!(self.takes(&event));
        let outcome = match decide(Some(&self.state), &event) {
            Decision::Accept => {
                self.state = apply(Some(&self.state), &event);
                Outcome::Accepted
            }
            Decision::Reject(_) => Outcome::Rejected,
        };
        self.version += 1;
        self.since
            .insert((event.provider.clone(), event.event_id.clone()));
        self.last = event;
        outcome
    }
}
