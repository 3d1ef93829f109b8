//! The MIU Link server on port 0 with a fresh database, serving the
//! browser client built into the binary (the same shape as
//! `tests/api/helpers.rs`).

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use miulink::store::{AccountFlags, NewUser, Store};
use miulink::{Application, Settings};
use serde_json::{json, Value};
use signalling::Role;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

pub const PASSWORD: &str = "test-password-123";

pub fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| miulink::auth::hash_password(PASSWORD).expect("hash"))
}

pub struct Server {
    pub base: String,
    pub store: Store,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    pub async fn start(adjust: impl FnOnce(&mut Settings)) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("miulink.db");
        let mut settings = Settings::for_tests(format!("sqlite://{}", db.display()));
        adjust(&mut settings);
        let app = Application::build(settings).await.expect("app builds");
        let port = app.port();
        let store = app.state().store.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Server {
            base: format!("http://127.0.0.1:{port}"),
            store,
            _dir: dir,
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
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

    /// A session token for this account (the API's Bearer login).
    pub async fn token(&self, username: &str) -> String {
        let res = reqwest::Client::new()
            .post(self.url("/api/login"))
            .json(&json!({"username": username, "password": PASSWORD}))
            .send()
            .await
            .expect("login request");
        assert_eq!(res.status(), 200, "login of {username}");
        let body: Value = res.json().await.expect("login json");
        body["token"].as_str().expect("token").to_owned()
    }

    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        let res = reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET");
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.expect("json")
    }

    /// The session log as a manager reads it.
    pub async fn consults(&self) -> Value {
        if self
            .store
            .user_by_username("e2e-manager")
            .await
            .expect("db")
            .is_none()
        {
            self.add_user("e2e-manager", "Manager", Role::Manager, None)
                .await;
        }
        let token = self.token("e2e-manager").await;
        self.get_json("/api/consults", &token).await
    }

    /// A program signed in as `username` on the signalling WebSocket (a
    /// second station, say), as `tests/api` drives the server.
    pub async fn ws_client(&self, username: &str) -> WsClient {
        WsClient::connect(&self.base, &self.token(username).await).await
    }
}

/// A plain WebSocket client of the real server.
pub struct WsClient {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl WsClient {
    pub async fn connect(base: &str, token: &str) -> WsClient {
        let url = format!("{}/ws", base.replace("http://", "ws://"));
        let mut request = url.into_client_request().expect("a WebSocket request");
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("a header"),
        );
        let (stream, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("the WebSocket opens");
        let mut client = WsClient { stream };
        client.expect("welcome").await;
        client
    }

    pub async fn send(&mut self, v: Value) {
        self.stream
            .send(Message::text(v.to_string()))
            .await
            .expect("WebSocket send");
    }

    /// The next message of this type (others are skipped); panics after 30 s.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let wait = async {
            while let Some(frame) = self.stream.next().await {
                if let Ok(Message::Text(text)) = frame {
                    let v: Value = serde_json::from_str(&text).expect("JSON from the server");
                    if v["type"] == kind {
                        return v;
                    }
                }
            }
            panic!("the WebSocket closed while waiting for {kind}");
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .unwrap_or_else(|_| panic!("no {kind} within 30 s"))
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

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
