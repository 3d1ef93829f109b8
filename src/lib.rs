//! # MIU Link server
//!
//! Pairs Minor Injuries Unit stations with on-call A&E clinicians over
//! WebRTC, and keeps a durable log of every consult.
//!
//! ## Layout
//! * [`startup`]: `Application::build(settings)` binds and wires everything;
//!   `run_until_stopped(shutdown)` serves. Tests spawn it on port 0.
//! * [`operator`]: the one task that owns the sans-IO `signalling::Switchboard`,
//!   writes its log events to the store *before* delivering its messages.
//! * [`http`]: the router: login/session, the session log API, the
//!   signalling WebSocket (one task per connection).
//! * [`store`]: every line of SQL (SQLite now; PostgreSQL slots in here).
//! * [`reports`]: the managers' response-time dashboard (`/api/reports`).
//! * [`seed`]: generated synthetic history (`miulink seed`, the demo).
//! * [`auth`]: passwords (Argon2id), session tokens, login throttling.
//! * [`accounts`]: the rules of managing accounts, behind both the command
//!   line and the admin console; each change audited.
//! * [`oidc`]: sign-in through the trust's identity provider (OpenID Connect).
//! * [`bootstrap`]: first start (one-time admin password, or `--demo`).
//! * [`turn`]: ICE servers for clients, with expiring TURN credentials.
//! * [`tls`]: HTTPS of its own (rustls), reloaded on SIGHUP or a new file.
//! * [`metrics`]: Prometheus metrics on a listener of their own.
//! * [`retention`]: the daily deletion of what is older than `--retention-days`.
//! * [`cli`]: the `miulink` command line; `main.rs` only calls it.
//! * `probe` (feature `probe`, on by default): `miulink probe`, a real
//!   WebRTC test call through a running server, for monitoring.
//!
//! The rules (queue order, the accept race, grace periods, who may signal
//! whom) live in the `signalling` crate, where they are tested with a fake
//! clock. This crate is IO around it.

pub mod accounts;
pub mod auth;
pub mod bootstrap;
pub mod cli;
pub mod clock;
pub mod csv_export;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod oidc;
pub mod operator;
#[cfg(feature = "probe")]
pub mod probe;
pub mod reports;
pub mod retention;
pub mod seed;
pub mod settings;
pub mod startup;
pub mod store;
pub mod timefmt;
pub mod tls;
pub mod turn;

pub use settings::Settings;
pub use startup::Application;
