//! Integration tests: the app spawned on port 0 with a fresh database,
//! driven over real HTTP and WebSocket connections.

mod auth;
mod consult;
mod frames;
mod helpers;
#[cfg(feature = "probe")]
mod probe;
mod rules;
