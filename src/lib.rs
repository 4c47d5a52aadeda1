//! video-status: verified video-provider webhooks, an append-only event log, and one live status
//! per video.
//!
//! # Layout
//! - [`event`]: `VideoEvent`, the one internal format, and its protobuf codec (the log's contract).
//! - [`providers`]: signature schemes and payload mappers: raw request → `VideoEvent`.
//! - [`lifecycle`]: the pure fold: statuses, the transition table, history with outcomes.
//! - [`store`]: the `EventStore` trait and its backends (SQLite today).
//! - [`projection`]: the status document that reads and UIs see, derived from the fold; rebuilds;
//!   the read-side `stalled` flag.
//! - [`remap`]: the current mappers run again over stored raw requests (`rebuild --remap`).
//! - [`reconcile`]: stalled videos and the poller that asks providers about them.
//! - [`actor`]: one ractor actor per active video, and the manager that finds, bounds and passivates them.
//! - [`reconcile`]: the sweep that flags stalled videos and the pollers that ask providers about
//!   them.
//! - [`ingress`]: warp routes; the one place errors become HTTP status codes.
//! - [`config`], [`app`]: configuration and the application's build/run.
//! - [`cli`]: the `video-status` subcommands, thin over the library.

pub mod actor;
pub mod allocator;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod correlation;
pub mod event;
pub mod http_client;
pub mod ingress;
pub mod lifecycle;
pub mod projection;
pub mod providers;
pub mod reconcile;
pub mod remap;
pub mod sse;
pub mod store;
pub mod telemetry;
