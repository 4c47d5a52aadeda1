//! Live fan-out of status changes to subscribers. The hub follows the store's change feed, never
//! the write path: a webhook's acknowledgement does not wait for any subscriber.

mod hub;

pub use hub::{GlobalEvent, Hub, VideoSubscription};
