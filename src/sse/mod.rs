//! Live fan-out of status changes to subscribers. The hub follows the store's change feed, never
//! the write path: a webhook's acknowledgement does not wait for any subscriber.

mod body;
pub mod frame;
mod hub;

pub use body::{FrameBody, Frames};
pub use frame::Published;
pub use hub::{same_status, GlobalEvent, Hub, ResetCause, Subscribers, VideoSubscription};
