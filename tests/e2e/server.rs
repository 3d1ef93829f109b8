//! The MIU Link server for the browser tests: in process on port 0 with a
//! fresh database (the shared `tests/common` app, serving the browser
//! client built into the binary), or as the real binary in a separate
//! process that a test can kill.

#![allow(dead_code)]

pub use crate::common::{password_hash, TestApp as Server, WsClient, PASSWORD};
use miulink::store::{AccountFlags, NewUser, Store};
use miulink::Settings;
use serde_json::{json, Value};
use signalling::Role;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

/// The real `miulink` binary as a separate process on a fixed port and
/// database, so that a test can `kill -9` it and start it again.
pub struct BinaryServer {
    child: Option<Child>,
    port: u16,
    database_url: String,
    args: Vec<String>,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl BinaryServer {
    /// A fresh database with these accounts (password [`PASSWORD`]), and
    /// the server started on a free port with `args`.
    pub async fn start(users: &[(&str, &str, Role, Option<&str>)], args: &[&str]) -> BinaryServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = format!("sqlite://{}", dir.path().join("miulink.db").display());
        let store = Store::open(&database_url).await.expect("database");
        for &(username, display_name, role, site) in users {
            store
                .create_user(NewUser {
                    username,
                    display_name,
                    role,
                    site,
                    password_hash: password_hash(),
                    flags: AccountFlags::default(),
                    now: 0,
                })
                .await
                .expect("user created");
        }
        store.close().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut server = BinaryServer {
            child: None,
            port,
            database_url,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        server.restart().await;
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Starts the binary (again) and waits until it answers `/healthz`.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let child = Command::new(env!("CARGO_BIN_EXE_miulink"))
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--database", &self.database_url])
            .args(&self.args)
            .env("MIULINK_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start miulink");
        self.child = Some(child);
        for _ in 0..400 {
            if let Ok(res) = reqwest::get(self.url("/healthz")).await {
                if res.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not come up on port {}", self.port);
    }

    /// SIGKILL: no shutdown code runs, connections just vanish.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9 the server");
            let _ = child.wait();
        }
    }

    /// The session log as a manager reads it (the account must exist).
    pub async fn consults(&self, manager: &str) -> Value {
        let client = reqwest::Client::new();
        let login: Value = client
            .post(self.url("/api/login"))
            .json(&json!({"username": manager, "password": PASSWORD}))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("login JSON");
        let token = login["token"].as_str().expect("a token");
        client
            .get(self.url("/api/consults"))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET /api/consults")
            .json()
            .await
            .expect("consults JSON")
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        self.kill_9();
    }
}
