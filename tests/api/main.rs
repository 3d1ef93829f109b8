//! Integration tests: the app spawned on port 0 with a fresh database,
//! driven over real HTTP and WebSocket connections.

mod admin;
mod auth;
mod cli;
mod consult;
mod deploy;
mod escalation;
mod failover;
mod frames;
mod hardening;
#[path = "../common/mod.rs"]
mod helpers;
mod oidc_harness;
mod ops;
mod package;
#[cfg(feature = "probe")]
mod probe;
mod reports;
mod restart;
mod rules;
mod sso;
mod store;
mod walkthrough;
