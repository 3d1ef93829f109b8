//! Leader and standby: two real `miulink` binaries on one real PostgreSQL,
//! behind a real HAProxy. The leader is killed with SIGKILL while a station
//! waits and another station and a clinician are in a call; the standby
//! leads within 5 s, the clients reconnect through HAProxy and resume, and
//! the log holds every event. Runs on PostgreSQL whatever the test backend.

use crate::helpers::haproxy::Haproxy;
use crate::helpers::postgres::Cluster;
use crate::helpers::*;
use miulink::store::Store;
use serde_json::Value;
use signalling::{Outcome, Role, Urgency};
use std::time::{Duration, Instant};

async fn postgres_with_accounts() -> String {
    crate::helpers::postgres_with_accounts(&[
        ("room1", "Millom Room 1", Role::Station, Some("Millom")),
        ("room2", "Millom Room 2", Role::Station, Some("Millom")),
        ("dr-a", "Dr A", Role::Clinician, Some("Millom")),
        ("mgr", "Manager", Role::Manager, Some("Millom")),
    ])
    .await
}

/// Reconnects through `ws_url` until a server welcomes it (HAProxy sends
/// nothing to an instance that is not the leader).
async fn reconnect(ws_url: &str, token: &str) -> WsClient {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(client) = try_connect_at(ws_url, token).await {
            return client;
        }
        assert!(
            Instant::now() < deadline,
            "no leader took the connection within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_when_the_leader_is_killed() {
    let url = postgres_with_accounts().await;
    let mut a = BinaryServer::on(&url, &[]).await;
    a.wait_for_role("leader", Duration::from_secs(10)).await;
    let b = a.beside(&[]).await;
    b.wait_for_role("standby", Duration::from_secs(5)).await;
    // A standby serves sign-in but no WebSocket.
    let token_b = login_at(&b.base, "room1").await;
    assert!(
        try_connect_at(&format!("ws://127.0.0.1:{}/ws", b.port()), &token_b)
            .await
            .is_none()
    );

    let proxy = Haproxy::start(&[a.port(), b.port()]).await;
    let ws = proxy.ws_url();
    let tokens: Vec<String> = {
        let mut t = Vec::new();
        for user in ["room1", "room2", "dr-a", "mgr"] {
            t.push(login_at(&proxy.base(), user).await);
        }
        t
    };
    let mut doc = reconnect(&ws, &tokens[2]).await;
    doc.expect("queue").await;
    let mut room2 = reconnect(&ws, &tokens[1]).await;
    room2.send(msg::request(Urgency::Urgent, "Wrist")).await;
    let ring = doc.expect("ring").await;
    let first_id = ring["request"]["request_id"].as_u64().unwrap();
    doc.send(msg::accept(first_id)).await;
    let start = doc.expect("call_start").await;
    let call_id = start["call_id"].as_u64().unwrap();
    room2.expect("call_start").await;
    for c in [&mut room2, &mut doc] {
        c.send(msg::call_connected(call_id)).await;
    }
    let mut room1 = reconnect(&ws, &tokens[0]).await;
    room1
        .send(msg::request(Urgency::Immediate, "Head injury"))
        .await;
    let waiting = room1
        .expect_where("request_update", |v| v["state"] == "waiting")
        .await;
    let waiting_id = waiting["request_id"].as_u64().unwrap();
    let requested_at = waiting["requested_at"].as_i64().unwrap();
    for c in [&mut room1, &mut room2, &mut doc] {
        c.sync().await;
    }

    // kill -9 the leader.
    a.kill_9();
    let killed = Instant::now();
    let took = b.wait_for_role("leader", Duration::from_secs(5)).await;
    println!(
        "takeover: the standby led {:.2} s after the kill",
        took.as_secs_f64()
    );
    assert!(killed.elapsed() < Duration::from_secs(5), "led within 5 s");

    // Everyone reconnects through the same address and resumes.
    drop((room1, room2, doc));
    let mut room1 = reconnect(&ws, &tokens[0]).await;
    let back = room1.expect("request_update").await;
    assert_eq!(back["state"], "waiting", "{back}");
    assert_eq!(back["request_id"], waiting_id, "the same request, same id");
    assert_eq!(back["requested_at"], requested_at, "its original time");
    let mut doc = reconnect(&ws, &tokens[2]).await;
    let resumed = doc.expect("call_start").await;
    assert_eq!(resumed["call_id"], call_id);
    assert_eq!(resumed["resumed"], true);
    let mut room2 = reconnect(&ws, &tokens[1]).await;
    assert_eq!(room2.expect("call_start").await["call_id"], call_id);

    // The call ends on the new leader, and the waiting request is answered.
    doc.send(msg::hang_up(call_id)).await;
    room2.expect("call_end").await;
    doc.send(msg::record_outcome(call_id, Outcome::ManagedLocally))
        .await;
    doc.expect("outcome_recorded").await;
    let ring = doc
        .expect_where("ring", |v| v["request"]["request_id"] == waiting_id)
        .await;
    assert_eq!(ring["request"]["urgency"], "immediate");
    doc.send(msg::accept(waiting_id)).await;
    let second = doc.expect("call_start").await;
    let second_call = second["call_id"].as_u64().unwrap();
    assert!(second_call > call_id, "ids never repeat across leaders");
    room1.expect("call_start").await;
    doc.send(msg::hang_up(second_call)).await;
    doc.send(msg::record_outcome(second_call, Outcome::TransferToEd))
        .await;
    doc.expect("outcome_recorded").await;

    // The log holds both consults whole, with the right wait.
    let log: Value = reqwest::Client::new()
        .get(format!("{}/api/consults", proxy.base()))
        .bearer_auth(&tokens[3])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let consults = log["consults"].as_array().unwrap();
    assert_eq!(consults.len(), 2, "{log}");
    let first = consults.iter().find(|c| c["id"] == first_id).unwrap();
    assert_eq!(first["status"], "completed", "{first}");
    assert_eq!(first["end_reason"], "hung_up_by_clinician");
    assert!(
        first["connected_at"].is_i64(),
        "media logged before the kill is kept"
    );
    let answered = consults.iter().find(|c| c["id"] == waiting_id).unwrap();
    assert_eq!(answered["status"], "completed", "{answered}");
    assert_eq!(answered["requested_at"], requested_at);
    let wait = answered["wait_ms"].as_i64().unwrap();
    assert!(
        wait >= took.as_millis() as i64,
        "its wait ({wait} ms) includes the takeover ({took:?})"
    );
    let store = Store::open(&url).await.unwrap();
    let kinds = |events: Vec<miulink::store::EventRecord>| -> Vec<String> {
        events.into_iter().map(|e| e.kind).collect()
    };
    assert_eq!(
        kinds(store.consult_events(first_id as i64).await.unwrap()),
        [
            "requested",
            "rung",
            "accepted",
            "media_connected",
            "media_connected",
            "call_ended",
            "outcome_recorded"
        ]
    );
    let second_events = kinds(store.consult_events(waiting_id as i64).await.unwrap());
    assert_eq!(second_events.first().map(String::as_str), Some("requested"));
    assert!(
        second_events.contains(&"accepted".to_owned()),
        "{second_events:?}"
    );
    assert_eq!(
        second_events.last().map(String::as_str),
        Some("outcome_recorded")
    );
    store.close().await;

    // The old leader comes back as a standby.
    a.restart_any().await;
    a.wait_for_role("standby", Duration::from_secs(5)).await;
    b.wait_for_role("leader", Duration::from_secs(1)).await;
}

/// A leader stopped gracefully (SIGTERM, a rolling upgrade) hands its
/// lease back: the standby leads at once, not after the lease runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_shuts_down_hands_over_at_once() {
    let url = postgres_with_accounts().await;
    let mut a = BinaryServer::on(&url, &["--lease-seconds", "20"]).await;
    a.wait_for_role("leader", Duration::from_secs(10)).await;
    let b = a.beside(&["--lease-seconds", "20"]).await;
    b.wait_for_role("standby", Duration::from_secs(5)).await;
    a.terminate();
    let took = b.wait_for_role("leader", Duration::from_secs(8)).await;
    assert!(
        took < Duration::from_secs(8),
        "well before the 20 s lease ran out: {took:?}"
    );
}

/// A TCP proxy between one instance and PostgreSQL that the test can
/// freeze: bytes stop moving both ways, but no connection closes (a cut
/// cable, a hung switch, a paused VM).
struct FreezableProxy {
    port: u16,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl FreezableProxy {
    async fn start(to: u16) -> FreezableProxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = std::sync::Arc::new(AtomicBool::new(false));
        let flag = frozen.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                for (mut from, mut into) in [
                    (
                        Box::new(cr) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                        Box::new(sw) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
                    ),
                    (Box::new(sr), Box::new(cw)),
                ] {
                    let flag = flag.clone();
                    tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            while flag.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            let n = match from.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            // Read before the freeze, held during it.
                            while flag.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            if into.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            }
        });
        FreezableProxy { port, frozen, task }
    }

    fn freeze(&self, on: bool) {
        self.frozen.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for FreezableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The leader's database connection freezes without closing: it must stop
/// acknowledging (close its sockets) before the standby can take over, and
/// nothing it was asked meanwhile is acknowledged by anyone twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_database_stops_before_the_standby_leads() {
    let url = postgres_with_accounts().await;
    let pg_port = Cluster::shared().port;
    let proxy = FreezableProxy::start(pg_port).await;
    let via_proxy = url.replace(&format!(":{pg_port}/"), &format!(":{}/", proxy.port));
    assert_ne!(via_proxy, url);
    let mut a = BinaryServer::on(&via_proxy, &[]).await;
    a.wait_for_role("leader", Duration::from_secs(10)).await;
    // The standby reaches PostgreSQL directly.
    let b = BinaryServer::on(&url, &[]).await;
    b.wait_for_role("standby", Duration::from_secs(5)).await;
    let a_ws = format!("ws://127.0.0.1:{}/ws", a.port());
    let token = login_at(&a.base, "room1").await;
    let mut room1 = reconnect(&a_ws, &token).await;
    room1.send(msg::request(Urgency::Urgent, "Ankle")).await;
    let waiting = room1
        .expect_where("request_update", |v| v["state"] == "waiting")
        .await;
    let id = waiting["request_id"].as_u64().unwrap();
    room1.sync().await;

    proxy.freeze(true);
    let frozen_at = Instant::now();
    // Asked of the cut-off leader: it cannot log it, so it must not say yes.
    room1.send(msg::cancel(id)).await;
    // The cut-off leader closes its sockets (1012), or the connection
    // drops without a close frame.
    let (code, told) = room1.until_closed(Duration::from_secs(10)).await;
    let closed_after = frozen_at.elapsed();
    assert!(matches!(code, None | Some(1012)), "closed with {code:?}");
    assert!(
        !told
            .iter()
            .any(|m| m["type"] == "request_update" && m["state"] == "cancelled"),
        "the cancel was acknowledged without being logged: {told:?}"
    );
    let led_after = frozen_at.elapsed() + b.wait_for_role("leader", Duration::from_secs(10)).await;
    println!(
        "partition: the old leader closed its sockets {:.2} s after the freeze; the standby led after {:.2} s",
        closed_after.as_secs_f64(),
        led_after.as_secs_f64()
    );
    assert!(closed_after < led_after, "stopped before the standby led");
    // The old leader says it is not the leader (it cannot reach the lease).
    let (status, body) = a.health().await;
    assert_ne!(status, 200, "{body}");

    // On the new leader the request is still waiting: the cancel was never
    // logged, so nobody acknowledged it.
    let b_ws = format!("ws://127.0.0.1:{}/ws", b.port());
    let mut room1 = reconnect(&b_ws, &token).await;
    let back = room1.expect("request_update").await;
    assert_eq!(back["state"], "waiting", "{back}");
    assert_eq!(back["request_id"], id);

    // The cable comes back: the old leader stands by, and the log holds no
    // cancel.
    proxy.freeze(false);
    a.wait_for_role("standby", Duration::from_secs(10)).await;
    let store = Store::open(&url).await.unwrap();
    let kinds: Vec<String> = store
        .consult_events(id as i64)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(!kinds.contains(&"cancelled".to_owned()), "{kinds:?}");
    store.close().await;
    a.kill_9();
}
