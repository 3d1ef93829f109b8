//! Relay latency through the running server, next to a bare WebSocket relay
//! measured the same way in the same process.
//!
//! `cargo bench --bench relay` (or `-- --signals 5000`)
//!
//! A station and a clinician are put in a call; the station sends `signal`
//! messages one at a time and the clinician's client timestamps each on
//! arrival (one clock: same process). The floor is a minimal
//! tokio-tungstenite server that forwards each text frame from one socket
//! to the other, with no parsing, no auth and no switchboard (it only
//! greets each socket with a `welcome`). Both are driven by the same typed
//! client (`miulink_client`), so the client's own work is the same on
//! both paths.

use futures_util::{SinkExt, StreamExt};
use miulink::store::{AccountFlags, NewUser};
use miulink::{Application, Settings};
use miulink_client::{Client, ClientMessage, ServerMessage};
use serde_json::{json, Value};
use signalling::{CallId, Limits, Role, Urgency, UserId, UserInfo};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

fn main() {
    let signals = std::env::args()
        .skip_while(|a| a != "--signals")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(5000usize);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let candidate = json!({"candidate": {"candidate": "candidate:842163049 1 udp 1677729535 192.0.2.10 54400 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag sX5h network-cost 999", "sdpMid": "0", "sdpMLineIndex": 0}});
        let sdp = json!({"description": {"type": "offer", "sdp": "a=x\r\n".repeat(1200)}});
        println!("relay latency, one way, {signals} signals sent one at a time (microseconds)");
        println!("{:<34} {:>8} {:>8} {:>8} {:>8}", "path", "p50", "p90", "p99", "max");
        for (label, payload) in [("ICE candidate (~250 B)", &candidate), ("SDP offer (~6 KB)", &sdp)] {
            let floor = bare_relay(signals, payload).await;
            let ours = miulink_relay(signals, payload).await;
            print_row(&format!("bare tungstenite relay, {label}"), &floor);
            print_row(&format!("miulink server, {label}"), &ours);
            println!(
                "  ratio miulink/bare: p50 {:.2}x, p99 {:.2}x",
                pct(&ours, 50.0) / pct(&floor, 50.0),
                pct(&ours, 99.0) / pct(&floor, 99.0)
            );
        }
    });
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn print_row(label: &str, sorted: &[f64]) {
    println!(
        "{label:<34} {:>8.0} {:>8.0} {:>8.0} {:>8.0}",
        pct(sorted, 50.0),
        pct(sorted, 90.0),
        pct(sorted, 99.0),
        sorted[sorted.len() - 1]
    );
}

/// The `signal` carrying sequence number `i`.
fn signal(call_id: CallId, i: usize, payload: &Value) -> ClientMessage {
    ClientMessage::Signal {
        call_id,
        data: json!({"seq": i, "payload": payload}).into(),
    }
}

/// Sends `n` signals from `a` and times each one's arrival at `b`.
async fn measure(
    a: &mut Client,
    b: &mut Client,
    n: usize,
    frame: impl Fn(usize) -> ClientMessage,
) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    // Warm-up, not counted.
    let warm = n / 10 + 10;
    for i in 0..warm {
        a.send(&frame(i)).await.expect("send");
        wait_seq(b, i).await;
    }
    for i in warm..warm + n {
        let t = Instant::now();
        a.send(&frame(i)).await.expect("send");
        wait_seq(b, i).await;
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    out.sort_by(|x, y| x.total_cmp(y));
    out
}

/// Reads until the signal carrying sequence number `seq` arrives (other
/// messages, such as queue updates, are skipped, so a stale frame is
/// never mistaken for the one being timed).
async fn wait_seq(client: &mut Client, seq: usize) {
    #[derive(serde::Deserialize)]
    struct Seq {
        seq: usize,
    }
    loop {
        if let ServerMessage::Signal { data, .. } = next(client).await {
            if serde_json::from_str::<Seq>(data.get()).is_ok_and(|s| s.seq == seq) {
                return;
            }
        }
    }
}

async fn next(client: &mut Client) -> ServerMessage {
    match tokio::time::timeout(Duration::from_secs(10), client.recv()).await {
        Ok(Ok(m)) => m,
        other => panic!("relay stalled: {other:?}"),
    }
}

async fn miulink_relay(n: usize, payload: &Value) -> Vec<f64> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::for_tests(format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ));
    // Signals are sent back to back, faster than any browser: lift the
    // per-connection rate limit (as the load bench does), or the excess is
    // dropped with `rate_limited` and the timing stalls.
    settings.rate_per_second = 1e9;
    settings.rate_burst = 1e9;
    let app = Application::build(settings).await.expect("app");
    let base = format!("http://127.0.0.1:{}", app.port());
    let ws_url = format!("ws://127.0.0.1:{}/ws", app.port());
    let store = app.state().store.clone();
    let hash = miulink::auth::hash_password("bench-password").expect("hash");
    for (user, role) in [("station", Role::Station), ("doc", Role::Clinician)] {
        store
            .create_user(NewUser {
                username: user,
                display_name: user,
                role,
                site: Some("Millom"),
                password_hash: &hash,
                flags: AccountFlags::default(),
                must_change_password: false,
                now: 0,
            })
            .await
            .expect("user");
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let mut clients = Vec::new();
    for user in ["station", "doc"] {
        let login = miulink_client::login(&http, &base, user, "bench-password")
            .await
            .expect("login");
        let client = Client::connect(&ws_url, &login.token).await.expect("ws");
        clients.push(client);
    }
    let mut doc = clients.pop().expect("doc");
    let mut station = clients.pop().expect("station");
    station
        .send(&ClientMessage::RequestConsult {
            urgency: Urgency::Urgent,
            reason: "bench".into(),
            patient_ref: None,
            test: false,
            direct_to: None,
        })
        .await
        .expect("send");
    let request_id = loop {
        if let ServerMessage::Ring { request } = next(&mut doc).await {
            break request.request_id;
        }
    };
    doc.send(&ClientMessage::Accept { request_id })
        .await
        .expect("send");
    let call_id = loop {
        if let ServerMessage::CallStart { call_id, .. } = next(&mut station).await {
            break call_id;
        }
    };
    while !matches!(next(&mut doc).await, ServerMessage::CallStart { .. }) {}
    let result = measure(&mut station, &mut doc, n, |i| signal(call_id, i, payload)).await;
    let _ = stop.send(());
    let _ = server.await;
    result
}

/// What the floor greets each socket with, so that the typed client
/// connects to it as to MIU Link.
fn welcome() -> String {
    ServerMessage::Welcome {
        user: UserInfo {
            id: UserId(1),
            username: "bench".into(),
            display_name: "bench".into(),
            site: None,
        },
        role: Role::Station,
        ice_servers: vec![],
        protocol_version: signalling::PROTOCOL_VERSION,
        server_time: 0,
        max_frame_bytes: signalling::MAX_FRAME_BYTES,
        limits: Limits::default(),
    }
    .to_json()
}

/// The floor: two sockets, each text frame forwarded to the other one.
async fn bare_relay(n: usize, payload: &Value) -> Vec<f64> {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (a, _) = listener.accept().await.expect("accept");
        a.set_nodelay(true).expect("nodelay");
        let mut a = tokio_tungstenite::accept_async(a).await.expect("ws a");
        a.send(Message::Text(welcome().into()))
            .await
            .expect("welcome a");
        let (b, _) = listener.accept().await.expect("accept");
        b.set_nodelay(true).expect("nodelay");
        let mut b = tokio_tungstenite::accept_async(b).await.expect("ws b");
        b.send(Message::Text(welcome().into()))
            .await
            .expect("welcome b");
        let (mut a_tx, mut a_rx) = a.split();
        let (mut b_tx, mut b_rx) = b.split();
        // One task per direction, as a real relay would run.
        let ab = tokio::spawn(async move {
            while let Some(Ok(m)) = a_rx.next().await {
                if m.is_text() && b_tx.send(m).await.is_err() {
                    break;
                }
            }
        });
        let ba = tokio::spawn(async move {
            while let Some(Ok(m)) = b_rx.next().await {
                if m.is_text() && a_tx.send(m).await.is_err() {
                    break;
                }
            }
        });
        let _ = tokio::join!(ab, ba);
    });
    let url = format!("ws://{addr}");
    let mut a = Client::connect(&url, "floor").await.expect("a");
    let mut b = Client::connect(&url, "floor").await.expect("b");
    let result = measure(&mut a, &mut b, n, |i| signal(CallId(1), i, payload)).await;
    drop(a);
    drop(b);
    server.abort();
    result
}
