//! Relay latency through the running server, next to a bare WebSocket relay
//! measured the same way in the same process.
//!
//! `cargo bench --bench relay` (or `-- --signals 5000`)
//!
//! A station and a clinician are put in a call; the station sends `signal`
//! messages one at a time and the clinician's client timestamps each on
//! arrival (one clock: same process). The floor is a minimal
//! tokio-tungstenite server that forwards each text frame from one socket
//! to the other, with no parsing, no auth and no switchboard.

use futures_util::{SinkExt, StreamExt};
use miulink::store::{AccountFlags, NewUser};
use miulink::{Application, Settings};
use serde_json::{json, Value};
use signalling::Role;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

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

/// Sends `n` frames from `a` and times each one's arrival at `b`.
async fn measure(a: &mut Ws, b: &mut Ws, n: usize, frame: impl Fn(usize) -> String) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    // Warm-up, not counted.
    let warm = n / 10 + 10;
    for i in 0..warm {
        a.send(Message::Text(frame(i).into())).await.expect("send");
        wait_seq(b, i).await;
    }
    for i in warm..warm + n {
        let t = Instant::now();
        a.send(Message::Text(frame(i).into())).await.expect("send");
        wait_seq(b, i).await;
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    out.sort_by(|x, y| x.total_cmp(y));
    out
}

/// Reads until the frame carrying sequence number `seq` arrives (other
/// messages, such as queue updates, are skipped, so a stale frame is
/// never mistaken for the one being timed).
async fn wait_seq(ws: &mut Ws, seq: usize) {
    loop {
        let v: Value = serde_json::from_str(&next_text(ws).await).expect("json");
        if v["data"]["seq"].as_u64() == Some(seq as u64) {
            return;
        }
    }
}

async fn next_text(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return t.to_string(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("relay stalled: {other:?}"),
        }
    }
}

async fn next_json(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let v: Value = serde_json::from_str(&next_text(ws).await).expect("json");
        if v["type"] == kind {
            return v;
        }
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
        let res: Value = http
            .post(format!("{base}/api/login"))
            .json(&json!({"username": user, "password": "bench-password", "want_token": true}))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("login json");
        let token = res["token"].as_str().expect("token").to_owned();
        let mut req = ws_url.as_str().into_client_request().expect("req");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("hdr"),
        );
        let (ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true)
            .await
            .expect("ws");
        clients.push(ws);
    }
    let mut doc = clients.pop().expect("doc");
    let mut station = clients.pop().expect("station");
    station
        .send(Message::Text(
            json!({"type": "request_consult", "urgency": "urgent", "reason": "bench"})
                .to_string()
                .into(),
        ))
        .await
        .expect("send");
    let ring = next_json(&mut doc, "ring").await;
    let request_id = ring["request"]["request_id"].clone();
    doc.send(Message::Text(
        json!({"type": "accept", "request_id": request_id})
            .to_string()
            .into(),
    ))
    .await
    .expect("send");
    let call_id = next_json(&mut station, "call_start").await["call_id"]
        .as_u64()
        .expect("call");
    next_json(&mut doc, "call_start").await;
    let frame = |i: usize| {
        json!({"type": "signal", "call_id": call_id, "data": {"seq": i, "payload": payload}})
            .to_string()
    };
    let result = measure(&mut station, &mut doc, n, frame).await;
    let _ = stop.send(());
    let _ = server.await;
    result
}

/// The floor: two sockets, each text frame forwarded to the other one.
async fn bare_relay(n: usize, payload: &Value) -> Vec<f64> {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (a, _) = listener.accept().await.expect("accept");
        a.set_nodelay(true).expect("nodelay");
        let a = tokio_tungstenite::accept_async(a).await.expect("ws a");
        let (b, _) = listener.accept().await.expect("accept");
        b.set_nodelay(true).expect("nodelay");
        let b = tokio_tungstenite::accept_async(b).await.expect("ws b");
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
    let (mut a, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), None, true)
        .await
        .expect("a");
    let (mut b, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), None, true)
        .await
        .expect("b");
    let frame = |i: usize| {
        json!({"type": "signal", "call_id": 1, "data": {"seq": i, "payload": payload}}).to_string()
    };
    let result = measure(&mut a, &mut b, n, frame).await;
    drop(a);
    drop(b);
    server.abort();
    result
}
