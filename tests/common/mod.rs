//! Shared by the test crates (`tests/api`, `tests/e2e`): the app spawned on
//! port 0 with a fresh database, accounts, and WebSocket clients that talk
//! to it as stations, clinicians and managers would.

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use miulink::store::{AccountFlags, NewUser, Store};
use miulink::{Application, Settings};
use serde_json::{json, Value};
use signalling::Role;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const PASSWORD: &str = "test-password-123";
const WAIT: Duration = Duration::from_secs(10);

pub fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| miulink::auth::hash_password(PASSWORD).expect("hash"))
}

pub struct TestApp {
    pub base: String,
    pub ws_url: String,
    pub store: Store,
    pub db_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_path = dir.path().join("miulink.db");
        let mut settings = Settings::for_tests(format!("sqlite://{}", db_path.display()));
        adjust(&mut settings);
        let app = Application::build(settings).await.expect("app builds");
        let port = app.port();
        let store = app.state().store.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        TestApp {
            base: format!("http://127.0.0.1:{port}"),
            ws_url: format!("ws://127.0.0.1:{port}/ws"),
            store,
            db_path,
            _dir: dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran");
        }
    }

    pub async fn add_user(
        &self,
        username: &str,
        display_name: &str,
        role: Role,
        site: Option<&str>,
    ) {
        self.store
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

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .expect("client")
    }

    pub async fn login(&self, username: &str) -> String {
        let res = self
            .http()
            .post(format!("{}/api/login", self.base))
            .json(&json!({"username": username, "password": PASSWORD}))
            .send()
            .await
            .expect("login request");
        assert_eq!(res.status(), 200, "login of {username}");
        let body: Value = res.json().await.expect("login json");
        body["token"].as_str().expect("token").to_owned()
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http()
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        let res = self.get(path, token).await;
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.expect("json")
    }

    pub async fn connect(&self, token: &str) -> WsClient {
        let mut req = self.ws_url.as_str().into_client_request().expect("request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let (stream, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("ws connect");
        let mut client = WsClient {
            stream,
            welcome: Value::Null,
        };
        let welcome = client.recv().await;
        assert_eq!(welcome["type"], "welcome", "first message is welcome");
        client.welcome = welcome;
        client
    }

    /// A new account of this role, logged in and connected.
    pub async fn user(&self, username: &str, display_name: &str, role: Role) -> WsClient {
        let site = match role {
            Role::Station => Some("Millom"),
            Role::Clinician => Some("Furness General"),
            _ => None,
        };
        self.add_user(username, display_name, role, site).await;
        let token = self.login(username).await;
        self.connect(&token).await
    }

    pub async fn manager_token(&self) -> String {
        if self
            .store
            .user_by_username("test-manager")
            .await
            .expect("db")
            .is_none()
        {
            self.add_user("test-manager", "Manager", Role::Manager, None)
                .await;
        }
        self.login("test-manager").await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub struct WsClient {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub welcome: Value,
}

impl WsClient {
    pub async fn send(&mut self, v: Value) {
        self.stream
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("ws send");
    }

    pub async fn send_text(&mut self, s: &str) {
        self.stream
            .send(Message::Text(s.to_owned().into()))
            .await
            .expect("ws send");
    }

    /// The next JSON message (pings are skipped).
    pub async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("a message within the wait")
                .expect("stream open")
                .expect("ws ok");
            match msg {
                Message::Text(t) => {
                    return serde_json::from_str(t.as_str()).expect("json from server")
                }
                Message::Close(frame) => panic!("closed by server: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// Skips messages until one of this type arrives.
    pub async fn expect(&mut self, kind: &str) -> Value {
        self.expect_where(kind, |_| true).await
    }

    pub async fn expect_where(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut skipped = Vec::new();
        loop {
            let v = tokio::time::timeout(WAIT, self.recv())
                .await
                .unwrap_or_else(|_| panic!("no {kind} message; saw {skipped:?}"));
            if v["type"] == kind && pred(&v) {
                return v;
            }
            skipped.push(v["type"].clone());
        }
    }

    /// Proves nothing is pending: a ping's pong is the very next message.
    /// (The hub handles one input at a time, so anything queued for this
    /// connection before the ping arrives before the pong.)
    pub async fn expect_nothing_pending(&mut self) {
        self.send(json!({"type": "ping", "nonce": 4242})).await;
        let next = self.recv().await;
        assert_eq!(next["type"], "pong", "expected nothing pending, got {next}");
        assert_eq!(next["nonce"], 4242);
    }

    /// Waits until the server has handled everything this client sent so
    /// far (a ping's pong comes after it), skipping whatever arrives first.
    pub async fn sync(&mut self) {
        self.send(json!({"type": "ping", "nonce": 777})).await;
        self.expect_where("pong", |v| v["nonce"] == 777).await;
    }

    pub async fn error(&mut self) -> Value {
        self.expect("error").await
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// Starts the real `miulink probe --server BASE ARGS --json` (passwords in
/// the environment, as in production) on a blocking thread, so the server
/// and any browsers carry on meanwhile. The handle gives the process's
/// output and its JSON report.
pub fn spawn_probe(
    base: &str,
    args: &[&str],
    password: &str,
) -> tokio::task::JoinHandle<(std::process::Output, Value)> {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_miulink"));
    cmd.arg("probe")
        .args(["--server", base])
        .args(args)
        .arg("--json")
        .env("MIULINK_PROBE_STATION_PASSWORD", password)
        .env("MIULINK_PROBE_CLINICIAN_PASSWORD", password)
        .env("MIULINK_PROBE_MANAGER_PASSWORD", password)
        .env_remove("MIULINK_PROBE_CONFIG");
    tokio::task::spawn_blocking(move || {
        let output = cmd.output().expect("the probe runs");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "probe printed no JSON ({e}): stdout {} stderr {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
        (output, report)
    })
}

/// One step of a probe report, by name.
pub fn probe_step<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["step"] == name))
        .unwrap_or_else(|| panic!("no step {name} in {report:#}"))
}

/// The probe's call came up: ICE, DTLS and the first video packet each
/// within their limit or only slow, never failed.
pub fn assert_probe_call_came_up(report: &Value) {
    for name in [
        "accept_to_ice_connected",
        "accept_to_dtls_connected",
        "accept_to_first_video",
    ] {
        let s = probe_step(report, name);
        assert!(s["status"] == "ok" || s["status"] == "slow", "{s}");
    }
}
