//! Shared by the test crates (`tests/api`, `tests/e2e`): the app spawned on
//! port 0 with a fresh database, accounts, and WebSocket clients that talk
//! to it as stations, clinicians and managers would.

#![allow(dead_code)]

pub mod haproxy;
pub mod oidc;
pub mod postgres;
pub mod tls;

use futures_util::{SinkExt, StreamExt};
use miulink::store::{AccountFlags, NewUser, Store};
use miulink::{Application, Settings};
use serde_json::{json, Value};
use signalling::Role;
use std::process::{Child, Command, Stdio};
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
    /// The database it runs on (SQLite in a temporary directory, or a
    /// fresh PostgreSQL database with `MIULINK_TEST_BACKEND=postgres`).
    pub database_url: String,
    /// Its data directory (first-start files such as the one-time admin
    /// password).
    pub data_dir: std::path::PathBuf,
    /// The switchboard's figures and its "dead" flag.
    pub operator_stats: std::sync::Arc<miulink::operator::OperatorStats>,
    /// The metrics listener, when `metrics_listen` was set.
    pub metrics: Option<std::net::SocketAddr>,
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
        let database_url = postgres::fresh_database_url(dir.path()).await;
        let mut settings = Settings::for_tests(database_url.clone());
        settings.data_dir = Some(dir.path().to_path_buf());
        adjust(&mut settings);
        let app = Application::build(settings).await.expect("app builds");
        let port = app.port();
        let metrics = app.metrics_addr();
        let scheme = if app.is_tls() { "https" } else { "http" };
        let store = app.state().store.clone();
        let operator_stats = app.state().leader.stats.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        TestApp {
            base: format!("{scheme}://127.0.0.1:{port}"),
            ws_url: format!(
                "{}://127.0.0.1:{port}/ws",
                if scheme == "https" { "wss" } else { "ws" }
            ),
            store,
            database_url,
            data_dir: dir.path().to_path_buf(),
            operator_stats,
            metrics,
            _dir: dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Waits for the server to end on its own; its result.
    pub async fn ended(&mut self) -> anyhow::Result<()> {
        let task = self.task.take().expect("still running");
        tokio::time::timeout(std::time::Duration::from_secs(10), task)
            .await
            .expect("the server ends within 10 s")
            .expect("server task")
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
                must_change_password: false,
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
        login_at(&self.base, username).await
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
        connect_at(&self.ws_url, token).await
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

/// Logs in to the server at `base` (password [`PASSWORD`]): a session token.
pub async fn login_at(base: &str, username: &str) -> String {
    let res = reqwest::Client::new()
        .post(format!("{base}/api/login"))
        .json(&json!({"username": username, "password": PASSWORD, "want_token": true}))
        .send()
        .await
        .expect("login request");
    assert_eq!(res.status(), 200, "login of {username}");
    let body: Value = res.json().await.expect("login json");
    body["token"].as_str().expect("token").to_owned()
}

/// Like [`connect_at`], but `None` when the connection is refused or does
/// not begin with a welcome (a server that is not there or stands by).
pub async fn try_connect_at(ws_url: &str, token: &str) -> Option<WsClient> {
    let mut req = ws_url.into_client_request().ok()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().ok()?);
    let (mut stream, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .ok()?
        .ok()?;
    let first = tokio::time::timeout(WAIT, stream.next())
        .await
        .ok()??
        .ok()?;
    let welcome: Value = serde_json::from_str(first.to_text().ok()?).ok()?;
    (welcome["type"] == "welcome").then_some(WsClient { stream, welcome })
}

/// Opens the signalling WebSocket at `ws_url` with `token`; its first
/// message must be the welcome, kept in [`WsClient::welcome`].
pub async fn connect_at(ws_url: &str, token: &str) -> WsClient {
    let mut req = ws_url.into_client_request().expect("request");
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
    /// (The operator handles one input at a time, so anything queued for this
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

    /// Waits for the server to close this socket: the close code, and the
    /// `error` messages that came before it.
    pub async fn expect_close(&mut self, within: Duration) -> (Option<u16>, Vec<Value>) {
        let mut errors = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("the server closes the socket within the wait");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("json from server");
                    if v["type"] == "error" {
                        errors.push(v);
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return (frame.map(|f| u16::from(f.code)), errors)
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return (None, errors),
            }
        }
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

/// Accounts (username, display name, role, site) with password
/// [`PASSWORD`] in the database at `database_url`.
pub async fn add_accounts(database_url: &str, users: &[(&str, &str, Role, Option<&str>)]) {
    let store = Store::open(database_url).await.expect("database");
    for &(username, display_name, role, site) in users {
        store
            .create_user(NewUser {
                username,
                display_name,
                role,
                site,
                password_hash: password_hash(),
                flags: AccountFlags::default(),
                must_change_password: false,
                now: 0,
            })
            .await
            .expect("user created");
    }
    store.close().await;
}

/// A fresh database on the shared test PostgreSQL (whatever the test
/// backend) with these accounts: for leader and standby tests.
pub async fn postgres_with_accounts(users: &[(&str, &str, Role, Option<&str>)]) -> String {
    let url = postgres::Cluster::shared().fresh_database().await;
    add_accounts(&url, users).await;
    url
}

/// The real `miulink` binary as a separate process on a fixed port and
/// database, so that a test can `kill -9` it and start it again.
pub struct BinaryServer {
    child: Option<Child>,
    port: u16,
    /// The database it runs on, for a test to read the log directly.
    pub database_url: String,
    args: Vec<String>,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl BinaryServer {
    /// A fresh database with these accounts (password [`PASSWORD`]), and
    /// the server started on a free port with `args`.
    pub async fn start(users: &[(&str, &str, Role, Option<&str>)], args: &[&str]) -> BinaryServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = postgres::fresh_database_url(dir.path()).await;
        add_accounts(&database_url, users).await;
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

    /// Starts the binary (again) and waits until it answers `/healthz`
    /// with 200 (it leads and can write its log).
    pub async fn restart(&mut self) {
        self.spawn_child();
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

    /// Starts the binary (again) and waits until it answers `/healthz` at
    /// all (a standby answers 503).
    pub async fn restart_any(&mut self) {
        self.spawn_child();
        for _ in 0..400 {
            if reqwest::get(self.url("/healthz")).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not answer on port {}", self.port);
    }

    fn spawn_child(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let child = Command::new(env!("CARGO_BIN_EXE_miulink"))
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--database", &self.database_url])
            .arg("--data-dir")
            .arg(self._dir.path())
            .args(&self.args)
            .env("MIULINK_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start miulink");
        self.child = Some(child);
    }

    /// An instance on an existing database (its accounts already made),
    /// started and answering (as leader or standby).
    pub async fn on(database_url: &str, args: &[&str]) -> BinaryServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut server = BinaryServer {
            child: None,
            port,
            database_url: database_url.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            base: format!("http://127.0.0.1:{port}"),
            _dir: tempfile::tempdir().expect("temp dir"),
        };
        server.restart_any().await;
        server
    }

    /// SIGTERM, as systemd stops a service, and waits for it to exit.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// A second instance on the same database (PostgreSQL), on a port of
    /// its own, started and answering (as leader or standby).
    pub async fn beside(&self, args: &[&str]) -> BinaryServer {
        BinaryServer::on(&self.database_url, args).await
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `/healthz`: its status code and body (0 and null if it does not
    /// answer).
    pub async fn health(&self) -> (u16, Value) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        match client.get(self.url("/healthz")).send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                (status, res.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// Waits until `/healthz` says `role` ("leader" answers 200, "standby"
    /// 503) and returns how long that took; panics after `within`.
    pub async fn wait_for_role(&self, role: &str, within: Duration) -> Duration {
        let start = std::time::Instant::now();
        loop {
            let (status, body) = self.health().await;
            if body["role"] == role {
                assert_eq!(status, if role == "leader" { 200 } else { 503 }, "{body}");
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "port {} is not {role} after {within:?}: {status} {body}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown code runs, connections just vanish.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9 the server");
            let _ = child.wait();
        }
    }

    /// A session token for this account.
    pub async fn login(&self, username: &str) -> String {
        login_at(&self.base, username).await
    }

    /// A signalling WebSocket signed in with `token`, past its welcome.
    pub async fn connect(&self, token: &str) -> WsClient {
        connect_at(&format!("ws://127.0.0.1:{}/ws", self.port), token).await
    }

    /// The session log as a manager reads it (the account must exist).
    pub async fn consults(&self, manager: &str) -> Value {
        let token = self.login(manager).await;
        reqwest::Client::new()
            .get(self.url("/api/consults"))
            .bearer_auth(&token)
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
