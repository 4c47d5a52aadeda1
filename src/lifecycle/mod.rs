//! The pure fold: a video's events, ordered by event time, through the transition table into one
//! status. No I/O, no async, no HTTP: everything here is a function of the events alone.
//!
//! - `status.rs`: [`Status`] and its rank.
//! - `state.rs`: [`VideoState`], the folded data.
//! - `table.rs`: [`decide`] (every rule) and [`apply`] (state change, cannot fail).
//! - `fold.rs`: [`fold_order`] and [`Fold`], the ordered events with their history.
//! - `tip.rs`: [`Tip`], a fold's end without its events: what a snapshot restores.
//!
//! The transition table, with the reason for each row, is docs/lifecycle.md.

mod fold;
mod state;
mod status;
mod table;
mod tip;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use fold::{fold_order, fold_state, Fold, HistoryEntry, Outcome};
pub use state::VideoState;
pub use status::Status;
pub use table::{apply, decide, status_of, Decision, Rejection};
pub use tip::Tip;

/// Version of the fold's rules. Bump it with any change that can change a folded status: a
/// status table built by an older version is rebuilt from the log on start. 2: metadata compare
/// by their canonical JSON text (1 compared parsed values, which differs only for `-0.0`).
pub const FOLD_VERSION: u32 = 2;
