//! One ractor actor per active video: it owns the video's fold, appends each new event to the
//! store with the expected version, and replies only once the append is durable. The manager
//! finds or spawns actors, bounds the work queued for them and passivates idle ones.

mod manager;
mod supervisor;
mod video;

pub use manager::{IngestError, VideoManager};
pub use video::Ingested;
