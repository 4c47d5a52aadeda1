//! One integration-test binary: each test starts the real server on an ephemeral port with its
//! own SQLite file and talks HTTP to it, as a provider or a UI would.

mod support;

mod bad_input;
mod browser;
mod durability;
mod lifecycles;
mod mappers;
mod operations;
mod projection;
mod rebuild;
mod rebuild_props;
mod reconcile;
mod remap;
mod schemes;
mod sse;
mod telemetry;
