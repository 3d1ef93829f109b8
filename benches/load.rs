//! Load generator: N stations and M clinicians doing full consults over
//! WebSocket against the MIU Link server, and the same relay pattern
//! through matchbox_server and through a bare tokio-tungstenite relay (the
//! floor), in the same run. Every server runs as its own process, so its
//! memory is read from /proc/PID/status.
//!
//! ```sh
//! scripts/bench-setup.sh                  # installs matchbox_server
//! cargo bench --bench load                # 100, 1,000 and 10,000 connections
//! cargo bench --bench load -- --sizes 100 --seconds 5 --servers miulink,bare
//! # Before and after in one run: an earlier build as `*-before`
//! cargo bench --bench load -- --before-bin /tmp/miulink-before \
//!     --servers miulink,miulink-before,miulink-postgres,miulink-postgres-before,matchbox,bare
//! # Many connections, some of them in long calls at once (issue 5's load test):
//! cargo bench --bench load -- --sizes 2000 --active 200 --hold-seconds 20 --seconds 60 --servers miulink
//! ```
//!
//! Servers (`--servers`, default `miulink,miulink-postgres,matchbox,bare`):
//! `miulink` keeps its SQLite log on the target directory's disk, where an
//! fsync costs what it costs; `miulink-tmpfs` on /dev/shm, where it costs
//! nothing (a second, labelled figure only); `miulink-postgres` on a
//! PostgreSQL this bench starts (tests/common/postgres.rs, on disk, fsync
//! on). Each has a `-before` twin that runs the binary `--before-bin`
//! names instead of this build.
//!
//! By default every pair runs consults back to back (closed loop), faster
//! than any person, so MIU Link is started with its per-connection rate
//! limit lifted. With `--active N` only N pairs make consults and the rest
//! stay connected and idle (receiving what an idle clinician or station
//! receives); with `--hold-seconds S` each call is held open for S seconds,
//! the station sending a signal every second (timed like the others) and
//! both sides a `call_quality` report every 5 seconds, as browsers do.
//!
//! A "consult" for MIU Link is the whole protocol: a directed test
//! request, ring, accept, six relayed signals (offer, answer, two ICE
//! candidates each way), call_connected from both, hang-up, outcome, and
//! the station told "completed" — with every transition written to the
//! SQLite log (synchronous=FULL) before it is delivered. For matchbox and
//! the bare relay it is the same six relayed signals between a pair.
//! Relay latency is the time from a signal's send to its arrival at the
//! other client (one clock: both clients are in this process). Every pair
//! runs consults back to back (closed loop) for `--seconds`.

use futures_util::stream::{SplitSink, StreamExt};
use futures_util::SinkExt;
use miulink_client::{ClientMessage, ServerMessage};
use serde_json::{json, Value};
use signalling::{CallId, Outcome, QualitySample, RequestId, Urgency};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

#[path = "../tests/common/postgres.rs"]
#[allow(dead_code)]
mod postgres;

type Ws = WebSocketStream<TcpStream>;
type Sink = SplitSink<Ws, Message>;

const WAIT: Duration = Duration::from_secs(60);
/// Roughly the size of a browser's offer and answer (SDP), and a candidate.
const OFFER_BYTES: usize = 4_000;
const ANSWER_BYTES: usize = 3_000;
const CANDIDATE_BYTES: usize = 120;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// Where MIU Link keeps its log.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Db {
    /// SQLite on the target directory's disk (an fsync costs what it costs).
    Disk,
    /// SQLite on /dev/shm, where an fsync costs nothing: a second,
    /// labelled figure only.
    Tmpfs,
    /// PostgreSQL started here (tests/common/postgres.rs), on disk.
    Postgres,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// `before`: the binary given with `--before-bin` (an earlier build,
    /// for before-and-after figures in one run) instead of this one.
    Miulink {
        db: Db,
        before: bool,
    },
    Matchbox,
    Bare,
}

/// Every name `--servers` takes.
const KINDS: [(&str, Kind); 8] = [
    (
        "miulink",
        Kind::Miulink {
            db: Db::Disk,
            before: false,
        },
    ),
    (
        "miulink-tmpfs",
        Kind::Miulink {
            db: Db::Tmpfs,
            before: false,
        },
    ),
    (
        "miulink-postgres",
        Kind::Miulink {
            db: Db::Postgres,
            before: false,
        },
    ),
    (
        "miulink-before",
        Kind::Miulink {
            db: Db::Disk,
            before: true,
        },
    ),
    (
        "miulink-tmpfs-before",
        Kind::Miulink {
            db: Db::Tmpfs,
            before: true,
        },
    ),
    (
        "miulink-postgres-before",
        Kind::Miulink {
            db: Db::Postgres,
            before: true,
        },
    ),
    ("matchbox", Kind::Matchbox),
    ("bare", Kind::Bare),
];

impl Kind {
    fn name(self) -> &'static str {
        KINDS
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("?", |(name, _)| name)
    }
}

struct Options {
    sizes: Vec<usize>,
    seconds: u64,
    servers: Vec<Kind>,
    /// Pairs that make consults (the rest stay idle); None: all.
    active: Option<usize>,
    hold_seconds: u64,
    /// An earlier build of `miulink`, for the `*-before` servers.
    before_bin: Option<std::path::PathBuf>,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let sizes = value("--sizes")
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 1_000, 10_000]);
    let seconds = value("--seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let servers = value("--servers")
        .map(|s| {
            s.split(',')
                .filter_map(|name| {
                    let kind = KINDS.iter().find(|(n, _)| *n == name.trim());
                    if kind.is_none() {
                        eprintln!("unknown server {name:?}; known: {:?}", KINDS.map(|k| k.0));
                    }
                    kind.map(|(_, k)| *k)
                })
                .collect()
        })
        .unwrap_or_else(|| {
            ["miulink", "miulink-postgres", "matchbox", "bare"]
                .iter()
                .filter_map(|n| KINDS.iter().find(|(k, _)| k == n).map(|(_, k)| *k))
                .collect()
        });
    let before_bin = value("--before-bin").map(std::path::PathBuf::from);
    Options {
        sizes,
        seconds,
        servers,
        active: value("--active").and_then(|s| s.parse().ok()),
        hold_seconds: value("--hold-seconds")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        before_bin,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--bare-relay-server") {
        let addr = args.get(i + 1).cloned().unwrap_or_default();
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(bare_relay(addr));
        return;
    }
    raise_fd_limit();
    let opts = options();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut results = Vec::new();
    for (run, &size) in opts.sizes.iter().enumerate() {
        for (s, &kind) in opts.servers.iter().enumerate() {
            // A fresh source address per run: earlier runs' closed sockets
            // sit in TIME_WAIT and would exhaust one address's ports.
            let source = Ipv4Addr::new(127, 0, 1 + run as u8, 1 + s as u8);
            eprintln!("== {} with {size} connections", kind.name());
            match rt.block_on(bench_one(kind, size, &opts, source)) {
                Ok(r) => {
                    eprintln!("{}", serde_json::to_string(&r).unwrap_or_default());
                    results.push(r);
                }
                Err(e) => eprintln!("   {} at {size}: FAILED: {e}", kind.name()),
            }
        }
    }
    print_table(&results);
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("load-results.json");
    if std::fs::write(
        &path,
        serde_json::to_string_pretty(&results).unwrap_or_default(),
    )
    .is_ok()
    {
        println!("(raw results: {})", path.display());
    }
}

fn raise_fd_limit() {
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            eprintln!("open-file limit raised to {}", lim.rlim_cur);
        }
    }
}

/// VmRSS and VmHWM of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Server {
    child: Child,
    addr: SocketAddr,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Accounts {
    /// (station token, clinician token, clinician username) per pair.
    pairs: Vec<(String, String, String)>,
}

/// Creates the accounts and their sessions straight in a fresh database
/// (logins are not what is measured: 10,000 Argon2 checks would take
/// minutes), built on tmpfs and then copied to where the server runs: the
/// target directory's disk, or with `tmpfs` /dev/shm.
async fn prepare_database(pairs: usize, tmpfs: bool) -> (tempfile::TempDir, String, Accounts) {
    let scratch = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("scratch dir");
    let scratch_db = scratch.path().join("miulink.db");
    let accounts = add_accounts(&format!("sqlite://{}", scratch_db.display()), pairs).await;
    let place = if tmpfs {
        std::path::Path::new("/dev/shm")
    } else {
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
    };
    let dir = tempfile::Builder::new()
        .prefix("miulink-load-")
        .tempdir_in(place)
        .expect("dir");
    for entry in std::fs::read_dir(scratch.path()).expect("scratch") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy db");
    }
    let url = format!("sqlite://{}", dir.path().join("miulink.db").display());
    (dir, url, accounts)
}

/// A fresh database on the PostgreSQL cluster this process started (on
/// disk, fsync on, as Debian's defaults), with the accounts.
async fn prepare_postgres(pairs: usize) -> (String, Accounts) {
    let url = postgres::Cluster::shared().fresh_database().await;
    let accounts = add_accounts(&url, pairs).await;
    (url, accounts)
}

/// A station and a clinician account per pair, each with a session.
async fn add_accounts(url: &str, pairs: usize) -> Accounts {
    use miulink::store::{AccountFlags, NewUser, Store};
    use signalling::Role;
    let store = Store::open(url).await.expect("store");
    let hash = miulink::auth::hash_password("bench-password-1").expect("hash");
    let far = i64::MAX / 4;
    let now = miulink::clock::Clock::new().now_ms();
    let mut accounts = Accounts { pairs: Vec::new() };
    for i in 0..pairs {
        let mut tokens = Vec::new();
        for (role, name) in [
            (Role::Station, format!("bench-room-{i}")),
            (Role::Clinician, format!("bench-dr-{i}")),
        ] {
            let id = store
                .create_user(NewUser {
                    username: &name,
                    display_name: &name,
                    role,
                    site: Some("Bench"),
                    password_hash: &hash,
                    // The stations are monitoring accounts, like the probe:
                    // only those may place directed test calls.
                    flags: AccountFlags {
                        monitoring: role == Role::Station,
                        ..AccountFlags::default()
                    },
                    must_change_password: false,
                    now: 0,
                })
                .await
                .expect("user");
            let token = miulink::auth::new_token();
            store
                .create_session(&miulink::auth::token_hash(&token), id, now, far, 10)
                .await
                .expect("session");
            tokens.push(token);
        }
        accounts.pairs.push((
            tokens[0].clone(),
            tokens[1].clone(),
            format!("bench-dr-{i}"),
        ));
    }
    store.close().await;
    accounts
}

async fn start_server(
    kind: Kind,
    pairs: usize,
    before_bin: Option<&std::path::Path>,
) -> Result<(Server, Option<Accounts>), String> {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let (child, dir, accounts) = match kind {
        Kind::Miulink { db, before } => {
            let bin = if before {
                before_bin
                    .ok_or(
                        "a *-before server needs --before-bin PATH (an earlier build of miulink)",
                    )?
                    .to_path_buf()
            } else {
                std::path::PathBuf::from(env!("CARGO_BIN_EXE_miulink"))
            };
            let (dir, url, accounts) = match db {
                Db::Disk | Db::Tmpfs => {
                    let (dir, url, accounts) = prepare_database(pairs, db == Db::Tmpfs).await;
                    (Some(dir), url, accounts)
                }
                Db::Postgres => {
                    let (url, accounts) = prepare_postgres(pairs).await;
                    (None, url, accounts)
                }
            };
            let child = Command::new(bin)
                .args(["serve", "--listen", &addr.to_string(), "--database", &url])
                // The load is closed loop, far faster than people: lift the
                // per-connection rate limit (it is tested in tests/api).
                .args(["--max-messages-per-second", "1000000"])
                .env("MIULINK_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| format!("starting miulink: {e}"))?;
            (child, dir, Some(accounts))
        }
        Kind::Matchbox => {
            let bin = which("matchbox_server")
                .ok_or("matchbox_server is not installed: run scripts/bench-setup.sh".to_owned())?;
            let child = Command::new(bin)
                .env("HOST", addr.to_string())
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("starting matchbox_server: {e}"))?;
            (child, None, None)
        }
        Kind::Bare => {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let child = Command::new(exe)
                .args(["--bare-relay-server", &addr.to_string()])
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| format!("starting the bare relay: {e}"))?;
            (child, None, None)
        }
    };
    let server = Server {
        child,
        addr,
        _dir: dir,
    };
    let started = Instant::now();
    while TcpStream::connect(addr).await.is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!("{} did not start listening", kind.name()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((server, accounts))
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    let mut dirs: Vec<std::path::PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(std::path::Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// One MIU Link connection (the typed client): its sending half, and a
/// channel of the messages it received (read continuously by its own task,
/// so no server ever sees a slow reader), each with its arrival time.
struct Client {
    tx: miulink_client::Sender,
    inbox: mpsc::UnboundedReceiver<(ServerMessage, u64)>,
}

/// Signs in to MIU Link from `source`, past the welcome.
async fn connect(
    url: &str,
    token: &str,
    source: Ipv4Addr,
    server: SocketAddr,
    dropped: Arc<AtomicU64>,
) -> Result<Client, String> {
    let options = miulink_client::Options::new()
        .bind(source.into())
        .connect_to(server);
    let client = miulink_client::Client::connect_with(url, token, options)
        .await
        .map_err(|e| e.to_string())?;
    let (tx, mut rx) = client.split();
    let (inbox_tx, inbox) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let message = rx.recv().await;
            let at = now_ns();
            match message {
                // Broadcast queue snapshots are not part of a consult's
                // flow: count nothing.
                Ok(ServerMessage::Queue { .. }) => {}
                Ok(m) => {
                    if inbox_tx.send((m, at)).is_err() {
                        break;
                    }
                }
                Err(miulink_client::Error::Malformed { .. }) => {}
                Err(_) => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    });
    Ok(Client { tx, inbox })
}

impl Client {
    async fn send(&mut self, message: ClientMessage) -> Result<(), String> {
        self.tx
            .send(&message)
            .await
            .map_err(|e| format!("send: {e}"))
    }

    /// An `error` the server has already sent, if any (without waiting).
    fn pending_error(&mut self) -> Option<String> {
        while let Ok((m, _)) = self.inbox.try_recv() {
            if let ServerMessage::Error { .. } = m {
                return Some(format!("server error: {}", m.to_json()));
            }
        }
        None
    }

    /// The first message `pick` takes; relayed signals passing by are
    /// timed into `lat`.
    async fn expect<T>(
        &mut self,
        what: &str,
        lat: &mut Vec<u64>,
        pick: impl Fn(&ServerMessage) -> Option<T>,
    ) -> Result<T, String> {
        loop {
            let (m, at) = tokio::time::timeout(WAIT, self.inbox.recv())
                .await
                .map_err(|_| format!("timed out waiting for {what}"))?
                .ok_or_else(|| format!("connection closed waiting for {what}"))?;
            if let ServerMessage::Signal { data, .. } = &m {
                if let Ok(Sent { t }) = serde_json::from_str(data.get()) {
                    lat.push(at.saturating_sub(t));
                }
            }
            if let Some(picked) = pick(&m) {
                return Ok(picked);
            }
            if let ServerMessage::Error { .. } = m {
                return Err(format!("server error: {}", m.to_json()));
            }
        }
    }

    /// The next relayed signal.
    async fn signal(&mut self, what: &str, lat: &mut Vec<u64>) -> Result<(), String> {
        self.expect(what, lat, |m| {
            matches!(m, ServerMessage::Signal { .. }).then_some(())
        })
        .await
    }
}

/// The send time a relayed signal's data carries ([`payload`]).
#[derive(serde::Deserialize)]
struct Sent {
    t: u64,
}

/// One connection to matchbox or the bare relay: raw JSON, their own
/// protocols (not MIU Link's).
struct RelayClient {
    sink: Sink,
    inbox: mpsc::UnboundedReceiver<(Value, u64)>,
}

async fn open(
    url: &str,
    source: Ipv4Addr,
    server: SocketAddr,
    dropped: Arc<AtomicU64>,
) -> Result<RelayClient, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(source.into(), 0))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let stream = socket
        .connect(server)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let req = url.into_client_request().map_err(|e| e.to_string())?;
    let (ws, _) = tokio_tungstenite::client_async(req, stream)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (sink, mut stream) = ws.split();
    let (tx, inbox) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(msg) = stream.next().await {
            let at = now_ns();
            match msg {
                Ok(Message::Text(t)) => {
                    if let Ok(v) = serde_json::from_str::<Value>(t.as_str()) {
                        if tx.send((v, at)).is_err() {
                            break;
                        }
                    }
                }
                Ok(Message::Close(_)) | Err(_) => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(_) => {}
            }
        }
    });
    Ok(RelayClient { sink, inbox })
}

impl RelayClient {
    async fn send(&mut self, v: Value) -> Result<(), String> {
        self.sink
            .send(Message::Text(v.to_string().into()))
            .await
            .map_err(|e| format!("send: {e}"))
    }

    /// The next message matching `pred`; relayed signals passing by are
    /// timed into `lat`.
    async fn expect(
        &mut self,
        what: &str,
        lat: &mut Vec<u64>,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        loop {
            let (v, at) = tokio::time::timeout(WAIT, self.inbox.recv())
                .await
                .map_err(|_| format!("timed out waiting for {what}"))?
                .ok_or_else(|| format!("connection closed waiting for {what}"))?;
            if let Some(sent) = signal_time(&v) {
                lat.push(at.saturating_sub(sent));
            }
            if pred(&v) {
                return Ok(v);
            }
        }
    }
}

/// The send time carried in a relayed signal, in either relay's shape.
fn signal_time(v: &Value) -> Option<u64> {
    v["data"]["t"]
        .as_u64()
        .or_else(|| v["Signal"]["data"]["t"].as_u64())
}

fn payload(kind: &str, bytes: usize) -> Value {
    json!({"kind": kind, "t": now_ns(), "sdp": "x".repeat(bytes)})
}

#[derive(serde::Serialize)]
struct RunResult {
    server: &'static str,
    connections: usize,
    seconds: f64,
    consults: u64,
    consults_per_second: f64,
    relayed_signals: usize,
    relay_p50_ms: f64,
    relay_p99_ms: f64,
    connect_seconds: f64,
    rss_idle_kib: u64,
    rss_connected_kib: u64,
    rss_peak_kib: u64,
    kib_per_connection: f64,
    errors: u64,
    dropped_connections: u64,
}

/// One pair's side of a consult, in each server's protocol.
enum Pair {
    Miulink {
        station: Client,
        clinician: Client,
        clinician_username: String,
    },
    Relay {
        kind: Kind,
        station: RelayClient,
        clinician: RelayClient,
        /// Each side's address for the other (peer id or name).
        to_clinician: Value,
        to_station: Value,
    },
}

fn relay_send(kind: Kind, to: &Value, data: Value) -> Value {
    match kind {
        Kind::Matchbox => json!({"Signal": {"receiver": to, "data": data}}),
        _ => json!({"to": to, "data": data}),
    }
}

fn is_signal(v: &Value) -> bool {
    v["Signal"].is_object() || v["from"].is_string()
}

async fn connect_pair(
    kind: Kind,
    i: usize,
    server: SocketAddr,
    source: Ipv4Addr,
    accounts: Option<&(String, String, String)>,
    dropped: Arc<AtomicU64>,
) -> Result<Pair, String> {
    let base = format!("ws://{server}");
    match kind {
        Kind::Miulink { .. } => {
            let (st_token, cl_token, cl_name) = accounts.ok_or("no accounts")?;
            let url = format!("{base}/ws");
            let clinician = connect(&url, cl_token, source, server, dropped.clone()).await?;
            let station = connect(&url, st_token, source, server, dropped).await?;
            Ok(Pair::Miulink {
                station,
                clinician,
                clinician_username: cl_name.clone(),
            })
        }
        Kind::Matchbox => {
            let url = format!("{base}/bench-pair-{i}");
            let mut station = open(&url, source, server, dropped.clone()).await?;
            let mut lat = Vec::new();
            let me = station
                .expect("IdAssigned", &mut lat, |v| v["IdAssigned"].is_string())
                .await?;
            let mut clinician = open(&url, source, server, dropped).await?;
            let them = clinician
                .expect("IdAssigned", &mut lat, |v| v["IdAssigned"].is_string())
                .await?;
            station
                .expect("NewPeer", &mut lat, |v| v["NewPeer"].is_string())
                .await?;
            Ok(Pair::Relay {
                kind,
                station,
                clinician,
                to_clinician: them["IdAssigned"].clone(),
                to_station: me["IdAssigned"].clone(),
            })
        }
        Kind::Bare => {
            let station = open(&format!("{base}/s{i}"), source, server, dropped.clone()).await?;
            let clinician = open(&format!("{base}/c{i}"), source, server, dropped).await?;
            Ok(Pair::Relay {
                kind,
                station,
                clinician,
                to_clinician: json!(format!("c{i}")),
                to_station: json!(format!("s{i}")),
            })
        }
    }
}

impl Pair {
    /// One consult; relay latencies (ns) go into `lat`. MIU Link calls are
    /// held open for `hold` (see the module documentation).
    async fn consult(&mut self, lat: &mut Vec<u64>, hold: Duration) -> Result<(), String> {
        match self {
            Pair::Miulink {
                station,
                clinician,
                clinician_username,
            } => {
                station
                    .send(ClientMessage::RequestConsult {
                        urgency: Urgency::Routine,
                        reason: "Load benchmark".into(),
                        patient_ref: None,
                        test: true,
                        direct_to: Some(clinician_username.clone()),
                    })
                    .await?;
                let rung = clinician
                    .expect("ring", lat, |m| match m {
                        ServerMessage::Ring { request } => Some(request.request_id),
                        _ => None,
                    })
                    .await;
                let request_id: RequestId = match rung {
                    Ok(id) => id,
                    // Say why, if the server refused the request.
                    Err(e) => return Err(station.pending_error().unwrap_or(e)),
                };
                clinician.send(ClientMessage::Accept { request_id }).await?;
                let call_start = |m: &ServerMessage| match m {
                    ServerMessage::CallStart { call_id, .. } => Some(*call_id),
                    _ => None,
                };
                let call_id: CallId = station.expect("call_start", lat, call_start).await?;
                clinician.expect("call_start", lat, call_start).await?;
                let sig = |data: Value| ClientMessage::Signal {
                    call_id,
                    data: data.into(),
                };
                station.send(sig(payload("offer", OFFER_BYTES))).await?;
                clinician.signal("offer", lat).await?;
                clinician.send(sig(payload("answer", ANSWER_BYTES))).await?;
                for _ in 0..2 {
                    clinician
                        .send(sig(payload("candidate", CANDIDATE_BYTES)))
                        .await?;
                }
                for _ in 0..3 {
                    station.signal("answer/candidate", lat).await?;
                }
                for _ in 0..2 {
                    station
                        .send(sig(payload("candidate", CANDIDATE_BYTES)))
                        .await?;
                }
                for _ in 0..2 {
                    clinician.signal("candidate", lat).await?;
                }
                let connected = ClientMessage::CallConnected { call_id };
                station.send(connected.clone()).await?;
                clinician.send(connected).await?;
                // The operator handles one input at a time: once the clinician's
                // ping is answered, its call_connected has been handled.
                clinician
                    .send(ClientMessage::Ping { nonce: Some(1) })
                    .await?;
                clinician
                    .expect("pong", lat, |m| {
                        matches!(m, ServerMessage::Pong { .. }).then_some(())
                    })
                    .await?;
                let held = Instant::now();
                let mut tick = 0u64;
                while held.elapsed() < hold {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    tick += 1;
                    station
                        .send(sig(payload("candidate", CANDIDATE_BYTES)))
                        .await?;
                    clinician.signal("held-call signal", lat).await?;
                    if tick.is_multiple_of(5) {
                        let quality = ClientMessage::CallQuality {
                            call_id,
                            sample: QualitySample {
                                rtt_ms: Some(35.0),
                                packet_loss_pct: Some(0.2),
                                fps: Some(30.0),
                                ..QualitySample::default()
                            },
                        };
                        station.send(quality.clone()).await?;
                        clinician.send(quality).await?;
                    }
                }
                station.send(ClientMessage::HangUp { call_id }).await?;
                clinician
                    .expect("call_end", lat, |m| {
                        matches!(m, ServerMessage::CallEnd { .. }).then_some(())
                    })
                    .await?;
                clinician
                    .send(ClientMessage::RecordOutcome {
                        call_id,
                        outcome: Outcome::ManagedLocally,
                        note: None,
                    })
                    .await?;
                clinician
                    .expect("outcome_recorded", lat, |m| {
                        matches!(m, ServerMessage::OutcomeRecorded { .. }).then_some(())
                    })
                    .await?;
                station
                    .expect("completed", lat, |m| {
                        matches!(
                            m,
                            ServerMessage::RequestUpdate {
                                state: signalling::RequestState::Completed,
                                ..
                            }
                        )
                        .then_some(())
                    })
                    .await?;
                Ok(())
            }
            Pair::Relay {
                kind,
                station,
                clinician,
                to_clinician,
                to_station,
            } => {
                let kind = *kind;
                station
                    .send(relay_send(
                        kind,
                        to_clinician,
                        payload("offer", OFFER_BYTES),
                    ))
                    .await?;
                clinician.expect("offer", lat, is_signal).await?;
                clinician
                    .send(relay_send(
                        kind,
                        to_station,
                        payload("answer", ANSWER_BYTES),
                    ))
                    .await?;
                for _ in 0..2 {
                    clinician
                        .send(relay_send(
                            kind,
                            to_station,
                            payload("candidate", CANDIDATE_BYTES),
                        ))
                        .await?;
                }
                for _ in 0..3 {
                    station.expect("answer/candidate", lat, is_signal).await?;
                }
                for _ in 0..2 {
                    station
                        .send(relay_send(
                            kind,
                            to_clinician,
                            payload("candidate", CANDIDATE_BYTES),
                        ))
                        .await?;
                }
                for _ in 0..2 {
                    clinician.expect("candidate", lat, is_signal).await?;
                }
                Ok(())
            }
        }
    }
}

async fn bench_one(
    kind: Kind,
    connections: usize,
    opts: &Options,
    source: Ipv4Addr,
) -> Result<RunResult, String> {
    let seconds = opts.seconds;
    let hold = Duration::from_secs(opts.hold_seconds);
    let pairs = connections / 2;
    let (server, accounts) = start_server(kind, pairs, opts.before_bin.as_deref()).await?;
    let pid = server.child.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss_idle, _) = memory_kib(pid);
    let dropped = Arc::new(AtomicU64::new(0));
    let connect_started = Instant::now();
    let addr = server.addr;
    let accounts = Arc::new(accounts);
    let connected: Vec<Result<Pair, String>> = futures_util::stream::iter(0..pairs)
        .map(|i| {
            let dropped = dropped.clone();
            let accounts = accounts.clone();
            async move {
                let acc = accounts.as_ref().as_ref().and_then(|a| a.pairs.get(i));
                connect_pair(kind, i, addr, source, acc, dropped).await
            }
        })
        .buffer_unordered(128)
        .collect()
        .await;
    let connect_seconds = connect_started.elapsed().as_secs_f64();
    let mut ready = Vec::new();
    for r in connected {
        ready.push(r.map_err(|e| format!("connecting: {e}"))?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_connected, _) = memory_kib(pid);
    eprintln!(
        "   {} connections in {connect_seconds:.1} s; server RSS {rss_idle} -> {rss_connected} KiB",
        ready.len() * 2
    );

    let stop = Arc::new(AtomicBool::new(false));
    let consults = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let active = opts.active.unwrap_or(ready.len()).min(ready.len());
    let mut idle = ready;
    let ready: Vec<Pair> = idle.drain(..active).collect();
    let tasks: Vec<_> = ready
        .into_iter()
        .enumerate()
        .map(|(i, mut pair)| {
            let stop = stop.clone();
            let consults = consults.clone();
            let errors = errors.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                // Held calls start spread over the first hold period.
                if !hold.is_zero() {
                    tokio::time::sleep(hold.mul_f64(i as f64 / active.max(1) as f64)).await;
                }
                while !stop.load(Ordering::Relaxed) {
                    match pair.consult(&mut lat, hold).await {
                        Ok(()) => {
                            consults.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("   consult failed: {e}");
                            }
                            break;
                        }
                    }
                }
                (lat, pair)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let dropped_while_running = dropped.load(Ordering::Relaxed);
    let (_, rss_peak) = memory_kib(pid);
    let mut all = Vec::new();
    let mut pairs_back = Vec::new();
    for t in tasks {
        if let Ok((lat, pair)) = t.await {
            all.extend(lat);
            pairs_back.push(pair);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let consults_total = consults.load(Ordering::Relaxed);
    drop(pairs_back);
    drop(idle);
    drop(server);
    all.sort_unstable();
    let pct = |p: f64| {
        if all.is_empty() {
            f64::NAN
        } else {
            all[((all.len() - 1) as f64 * p) as usize] as f64 / 1e6
        }
    };
    Ok(RunResult {
        server: kind.name(),
        connections: pairs * 2,
        seconds: elapsed,
        consults: consults_total,
        consults_per_second: consults_total as f64 / elapsed,
        relayed_signals: all.len(),
        relay_p50_ms: pct(0.50),
        relay_p99_ms: pct(0.99),
        connect_seconds,
        rss_idle_kib: rss_idle,
        rss_connected_kib: rss_connected,
        rss_peak_kib: rss_peak,
        kib_per_connection: (rss_connected.saturating_sub(rss_idle)) as f64 / (pairs * 2) as f64,
        errors: errors.load(Ordering::Relaxed),
        dropped_connections: dropped_while_running,
    })
}

fn print_table(results: &[RunResult]) {
    println!();
    println!(
        "| connections | server | consults/s | relay p50 ms | relay p99 ms | KiB/connection | RSS connected MiB | errors |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for r in results {
        println!(
            "| {} | {} | {:.1} | {:.2} | {:.2} | {:.1} | {:.1} | {} |",
            r.connections,
            r.server,
            r.consults_per_second,
            r.relay_p50_ms,
            r.relay_p99_ms,
            r.kib_per_connection,
            r.rss_connected_kib as f64 / 1024.0,
            r.errors + r.dropped_connections
        );
    }
    println!();
    println!("Ratios against the bare relay (same size, same run):");
    for r in results.iter().filter(|r| r.server != "bare") {
        if let Some(b) = results
            .iter()
            .find(|b| b.server == "bare" && b.connections == r.connections)
        {
            println!(
                "  {} at {}: relay p50 x{:.2}, p99 x{:.2}, memory/connection x{:.2}, consults/s x{:.3}",
                r.server,
                r.connections,
                r.relay_p50_ms / b.relay_p50_ms,
                r.relay_p99_ms / b.relay_p99_ms,
                r.kib_per_connection / b.kib_per_connection,
                r.consults_per_second / b.consults_per_second
            );
        }
    }
}

/// The floor: a relay that does nothing but forward `{to, data}` as
/// `{from, data}` between clients named by their URL path.
async fn bare_relay(addr: String) {
    use std::collections::HashMap;
    use tokio::sync::RwLock;
    let listener = match TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bare relay: cannot listen on {addr}: {e}");
            return;
        }
    };
    type Peers = Arc<RwLock<HashMap<String, mpsc::UnboundedSender<Message>>>>;
    let peers: Peers = Arc::new(RwLock::new(HashMap::new()));
    while let Ok((stream, _)) = listener.accept().await {
        let peers = peers.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let mut name = String::new();
            // The callback's shape (and its large error type) is tungstenite's.
            #[allow(clippy::result_large_err)]
            let callback = |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                            res| {
                name = req.uri().path().trim_start_matches('/').to_owned();
                Ok(res)
            };
            let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                return;
            };
            let (mut sink, mut stream) = ws.split();
            let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
            peers.write().await.insert(name.clone(), tx);
            let writer = tokio::spawn(async move {
                while let Some(m) = rx.recv().await {
                    if sink.send(m).await.is_err() {
                        break;
                    }
                }
            });
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let Ok(mut v) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                let Some(to) = v["to"].as_str().map(str::to_owned) else {
                    continue;
                };
                let out = json!({"from": name, "data": v["data"].take()}).to_string();
                if let Some(peer) = peers.read().await.get(&to) {
                    let _ = peer.send(Message::Text(out.into()));
                }
            }
            peers.write().await.remove(&name);
            writer.abort();
        });
    }
}
