//! Shared by the test crates (`tests/api`, `tests/e2e`): the app spawned on
//! port 0 with a fresh database, accounts, and WebSocket clients that talk
//! to it as stations, clinicians and managers would.

#![allow(dead_code)]

pub mod haproxy;
pub mod oidc;
pub mod postgres;
pub mod tls;

use futures_util::SinkExt;
use miulink::store::{AccountFlags, NewUser, Store};
use miulink::{Application, Settings};
use miulink_client::tungstenite::Message;
use miulink_client::{Client, ClientMessage, Options, ServerMessage, Welcome};
use serde_json::Value;
use signalling::Role;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

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
    miulink_client::login(&reqwest::Client::new(), base, username, PASSWORD)
        .await
        .unwrap_or_else(|e| panic!("login of {username}: {e}"))
        .token
}

/// Like [`connect_at`], but `None` when the connection is refused or does
/// not begin with a welcome (a server that is not there or stands by).
pub async fn try_connect_at(ws_url: &str, token: &str) -> Option<WsClient> {
    let client = tokio::time::timeout(WAIT, Client::connect(ws_url, token))
        .await
        .ok()?
        .ok()?;
    Some(WsClient { client })
}

/// Opens the signalling WebSocket at `ws_url` with `token`; its first
/// message must be the welcome, kept in [`WsClient::welcome`].
pub async fn connect_at(ws_url: &str, token: &str) -> WsClient {
    WsClient::connect_with(ws_url, token, Options::default()).await
}

/// What tests send: a [`ClientMessage`] (the `msg` helpers make the common
/// ones).
pub trait Outgoing {
    fn into_message(self) -> ClientMessage;
}

impl Outgoing for ClientMessage {
    fn into_message(self) -> ClientMessage {
        self
    }
}

/// The messages tests send most, short. Ids are taken from what the tests
/// received (`&waiting["request_id"]`), or as numbers.
pub mod msg {
    use serde_json::Value;
    use signalling::{Availability, CallId, ClientMessage, Outcome, RequestId, Urgency};

    /// A request or call id, from a received message or a number.
    pub trait Id {
        fn id(&self) -> u64;
    }

    impl Id for u64 {
        fn id(&self) -> u64 {
            *self
        }
    }

    impl Id for Value {
        fn id(&self) -> u64 {
            self.as_u64().unwrap_or_else(|| panic!("not an id: {self}"))
        }
    }

    impl Id for &Value {
        fn id(&self) -> u64 {
            (*self).id()
        }
    }

    impl Id for RequestId {
        fn id(&self) -> u64 {
            self.0
        }
    }

    impl Id for CallId {
        fn id(&self) -> u64 {
            self.0
        }
    }

    pub fn request(urgency: Urgency, reason: &str) -> ClientMessage {
        ClientMessage::RequestConsult {
            urgency,
            reason: reason.to_owned(),
            patient_ref: None,
            test: false,
            direct_to: None,
        }
    }

    /// A request with a local reference (an attendance number).
    pub fn request_ref(urgency: Urgency, reason: &str, patient_ref: &str) -> ClientMessage {
        ClientMessage::RequestConsult {
            urgency,
            reason: reason.to_owned(),
            patient_ref: Some(patient_ref.to_owned()),
            test: false,
            direct_to: None,
        }
    }

    /// A test call directed at one clinician (by username).
    pub fn test_call(reason: &str, direct_to: &str) -> ClientMessage {
        ClientMessage::RequestConsult {
            urgency: Urgency::Routine,
            reason: reason.to_owned(),
            patient_ref: None,
            test: true,
            direct_to: Some(direct_to.to_owned()),
        }
    }

    pub fn cancel(request_id: impl Id) -> ClientMessage {
        ClientMessage::CancelRequest {
            request_id: RequestId(request_id.id()),
        }
    }

    pub fn accept(request_id: impl Id) -> ClientMessage {
        ClientMessage::Accept {
            request_id: RequestId(request_id.id()),
        }
    }

    pub fn set_availability(status: Availability) -> ClientMessage {
        ClientMessage::SetAvailability { status }
    }

    pub fn signal(call_id: impl Id, data: Value) -> ClientMessage {
        ClientMessage::Signal {
            call_id: CallId(call_id.id()),
            data: data.into(),
        }
    }

    pub fn call_connected(call_id: impl Id) -> ClientMessage {
        ClientMessage::CallConnected {
            call_id: CallId(call_id.id()),
        }
    }

    pub fn hang_up(call_id: impl Id) -> ClientMessage {
        ClientMessage::HangUp {
            call_id: CallId(call_id.id()),
        }
    }

    pub fn record_outcome(call_id: impl Id, outcome: Outcome) -> ClientMessage {
        ClientMessage::RecordOutcome {
            call_id: CallId(call_id.id()),
            outcome,
            note: None,
        }
    }

    /// An outcome with the clinician's note.
    pub fn record_outcome_note(call_id: impl Id, outcome: Outcome, note: &str) -> ClientMessage {
        ClientMessage::RecordOutcome {
            call_id: CallId(call_id.id()),
            outcome,
            note: Some(note.to_owned()),
        }
    }

    pub fn ping(nonce: u64) -> ClientMessage {
        ClientMessage::Ping { nonce: Some(nonce) }
    }
}

/// A signalling connection as the tests drive it: the typed client
/// ([`miulink_client::Client`]), with waits that panic after 10 s and
/// received messages as JSON values (so assertions read the wire's field
/// names).
pub struct WsClient {
    client: Client,
}

impl WsClient {
    /// Connects (or panics) with these options (a test's own TLS roots).
    pub async fn connect_with(ws_url: &str, token: &str, options: Options) -> WsClient {
        let client = tokio::time::timeout(WAIT, Client::connect_with(ws_url, token, options))
            .await
            .expect("connected within the wait")
            .unwrap_or_else(|e| panic!("ws connect: {e}"));
        WsClient { client }
    }

    /// The welcome of the current connection.
    pub fn welcome(&self) -> &Welcome {
        self.client.welcome()
    }

    pub async fn send(&mut self, message: impl Outgoing) {
        self.client
            .send(&message.into_message())
            .await
            .expect("ws send");
    }

    /// Sends, and says if the connection failed (a test that expects the
    /// server to have closed it).
    pub async fn try_send(&mut self, message: impl Outgoing) -> Result<(), miulink_client::Error> {
        self.client.send(&message.into_message()).await
    }

    /// Wire-level tests: a text frame as given, protocol message or not.
    pub async fn send_text(&mut self, s: &str) {
        self.client
            .websocket()
            .send(Message::Text(s.to_owned().into()))
            .await
            .expect("ws send");
    }

    /// Wire-level tests: the WebSocket itself.
    pub fn websocket(&mut self) -> &mut miulink_client::WebSocket {
        self.client.websocket()
    }

    /// The next message (pings are skipped), as the typed client read it.
    pub async fn recv_typed(&mut self) -> ServerMessage {
        tokio::time::timeout(WAIT, self.client.recv())
            .await
            .expect("a message within the wait")
            .unwrap_or_else(|e| panic!("ws recv: {e}"))
    }

    /// The next message (pings are skipped), as JSON.
    pub async fn recv(&mut self) -> Value {
        let message = self.recv_typed().await;
        serde_json::to_value(&message).expect("a message as JSON")
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
        let before = self.barrier().await;
        assert!(
            before.is_empty(),
            "expected nothing pending, got {before:?}"
        );
    }

    /// Waits until the server has handled everything this client sent so
    /// far (a ping's pong comes after it), skipping whatever arrives first.
    pub async fn sync(&mut self) {
        self.barrier().await;
    }

    /// What arrived before the pong of a ping sent now.
    pub async fn barrier(&mut self) -> Vec<ServerMessage> {
        tokio::time::timeout(WAIT, self.client.barrier())
            .await
            .expect("a pong within the wait")
            .unwrap_or_else(|e| panic!("ws barrier: {e}"))
    }

    pub async fn error(&mut self) -> Value {
        self.expect("error").await
    }

    /// Waits for the server to close this socket: the close code, and the
    /// `error` messages that came before it.
    pub async fn expect_close(&mut self, within: Duration) -> (Option<u16>, Vec<Value>) {
        let (code, told) = self.until_closed(within).await;
        let errors = told.into_iter().filter(|v| v["type"] == "error").collect();
        (code, errors)
    }

    /// Waits for the server to close this socket: the close code (none if
    /// the connection was dropped without a close frame), and every
    /// message that came before it.
    pub async fn until_closed(&mut self, within: Duration) -> (Option<u16>, Vec<Value>) {
        let mut told = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let next = tokio::time::timeout_at(deadline, self.client.recv())
                .await
                .expect("the server closes the socket within the wait");
            match next {
                Ok(message) => told.push(serde_json::to_value(&message).expect("JSON")),
                Err(miulink_client::Error::Closed { code, .. }) => return (code, told),
                Err(e @ miulink_client::Error::Malformed { .. }) => panic!("{e}"),
                Err(_) => return (None, told),
            }
        }
    }

    /// Connects again with the same token, past the new welcome.
    pub async fn resume(&mut self) {
        tokio::time::timeout(WAIT, self.client.resume())
            .await
            .expect("reconnected within the wait")
            .unwrap_or_else(|e| panic!("ws resume: {e}"));
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
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
