//! The MIU Link server for the browser tests: the shared `tests/common`
//! app in process on port 0 with a fresh database, serving the browser
//! client built into the binary. (`common::BinaryServer` is the real
//! binary in a process of its own, for tests that kill it.)

#![allow(dead_code)]

pub use crate::common::{TestApp as Server, WsClient, PASSWORD};
use miulink::Settings;
use serde_json::Value;

impl Server {
    pub async fn start(adjust: impl FnOnce(&mut Settings)) -> Server {
        Server::spawn_with(adjust).await
    }

    /// The session log as a manager reads it.
    pub async fn consults(&self) -> Value {
        let token = self.manager_token().await;
        self.get_json("/api/consults", &token).await
    }

    /// A program signed in as `username` on the signalling WebSocket (a
    /// second station, say), as `tests/api` drives the server.
    pub async fn ws_client(&self, username: &str) -> WsClient {
        let token = self.login(username).await;
        self.connect(&token).await
    }
}
