//! Waiting requests and calls survive `kill -9` of the server: the real
//! binary is killed and started again on the same database, and clients
//! that reconnect pick up where they were. No logged event is lost.

use crate::helpers::*;
use miulink::store::{AccountFlags, NewUser, Store};
use serde_json::{json, Value};
use signalling::Role;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

struct Server {
    child: Child,
    base: String,
}

impl Server {
    async fn start(port: u16, db: &str) -> Server {
        let child = Command::new(env!("CARGO_BIN_EXE_miulink"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--database",
                db,
            ])
            .env("MIULINK_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start miulink");
        // Owned by `Server` at once, so a failure below still kills it.
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..200 {
            if let Ok(res) = reqwest::get(format!("{}/healthz", server.base)).await {
                if res.status() == 200 {
                    return server;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not come up on port {port}");
    }

    fn kill_9(&mut self) {
        // Child::kill sends SIGKILL on Unix: no shutdown code runs.
        self.child.kill().expect("kill");
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn login(base: &str, user: &str) -> String {
    let res: Value = reqwest::Client::new()
        .post(format!("{base}/api/login"))
        .json(&json!({"username": user, "password": PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    res["token"].as_str().expect("token").to_owned()
}

async fn connect(base: &str, token: &str) -> WsClient {
    let url = format!("{}/ws", base.replace("http://", "ws://"));
    let mut req = url.into_client_request().expect("req");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("hdr"),
    );
    let (stream, _) = tokio_tungstenite::connect_async(req).await.expect("ws");
    let mut c = WsClient {
        stream,
        welcome: Value::Null,
    };
    c.welcome = c.expect("welcome").await;
    c
}

#[tokio::test]
async fn waiting_requests_and_calls_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("miulink.db").display());
    {
        let store = Store::open(&db).await.unwrap();
        let hash = miulink::auth::hash_password(PASSWORD).unwrap();
        for (u, role, site) in [
            ("room1", Role::Station, Some("Millom")),
            ("room2", Role::Station, Some("Millom")),
            ("dr-a", Role::Clinician, None),
            ("mgr", Role::Manager, None),
        ] {
            store
                .create_user(NewUser {
                    username: u,
                    display_name: u,
                    role,
                    site,
                    password_hash: &hash,
                    flags: AccountFlags::default(),
                    now: 0,
                })
                .await
                .unwrap();
        }
        store.close().await;
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut server = Server::start(port, &db).await;
    let base = server.base.clone();
    let tokens: Vec<String> =
        futures_util::future::join_all(["room1", "room2", "dr-a", "mgr"].map(|u| login(&base, u)))
            .await;
    let mut s1 = connect(&base, &tokens[0]).await;
    let mut s2 = connect(&base, &tokens[1]).await;
    let mut doc = connect(&base, &tokens[2]).await;

    // Room 2 is in a call with Dr A, media flowing; Room 1 is waiting.
    s2.send(json!({"type": "request_consult", "urgency": "urgent", "reason": "Wrist"}))
        .await;
    let r2 = s2
        .expect_where("request_update", |v| v["state"] == "waiting")
        .await;
    doc.expect("ring").await;
    doc.send(json!({"type": "accept", "request_id": r2["request_id"]}))
        .await;
    let call_id = doc.expect("call_start").await["call_id"].as_u64().unwrap();
    s2.expect("call_start").await;
    s2.send(json!({"type": "call_connected", "call_id": call_id}))
        .await;
    doc.send(json!({"type": "call_connected", "call_id": call_id}))
        .await;
    s1.send(json!({"type": "request_consult", "urgency": "immediate", "reason": "Head injury"}))
        .await;
    let r1 = s1
        .expect_where("request_update", |v| v["state"] == "waiting")
        .await;
    let r1_id = r1["request_id"].as_u64().unwrap();
    let r1_at = r1["requested_at"].as_i64().unwrap();
    // Make sure both call_connected were processed (and so logged) before the kill.
    doc.sync().await;
    s2.sync().await;
    let before = Store::open(&db).await.unwrap();
    let events_before = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM consult_events")
        .fetch_one(before.pool())
        .await
        .unwrap();
    before.close().await;

    server.kill_9();
    drop((s1, s2, doc));
    let server2 = Server::start(port, &db).await;
    let base = server2.base.clone();

    // Logins survive; each client resumes.
    let mut s1 = connect(&base, &tokens[0]).await;
    let back = s1.expect("request_update").await;
    assert_eq!(back["state"], "waiting");
    assert_eq!(back["request_id"], r1_id);
    assert_eq!(back["requested_at"], r1_at, "original request time");
    let mut doc = connect(&base, &tokens[2]).await;
    let resumed = doc.expect("call_start").await;
    assert_eq!(resumed["call_id"], call_id);
    assert_eq!(resumed["resumed"], true);
    let q = doc.expect("queue").await;
    assert_eq!(
        q["requests"][0]["request_id"], r1_id,
        "the waiting request is in the queue again"
    );
    let mut s2 = connect(&base, &tokens[1]).await;
    assert_eq!(s2.expect("call_start").await["call_id"], call_id);

    // The call's end is still logged after the restart.
    s2.send(json!({"type": "hang_up", "call_id": call_id}))
        .await;
    doc.expect("call_end").await;
    doc.send(json!({"type": "record_outcome", "call_id": call_id, "outcome": "managed_locally"}))
        .await;
    doc.expect("outcome_recorded").await;

    let log: Value = reqwest::Client::new()
        .get(format!("{base}/api/consults"))
        .bearer_auth(&tokens[3])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let call = log["consults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["call_id"] == call_id)
        .unwrap();
    assert_eq!(call["status"], "completed");
    assert_eq!(call["end_reason"], "hung_up_by_station");
    assert!(
        call["connected_at"].is_i64(),
        "media connection logged before the kill is kept"
    );
    let waiting = log["consults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == r1_id)
        .unwrap();
    assert_eq!(waiting["status"], "waiting");
    assert_eq!(waiting["requested_at"], r1_at);

    // Nothing logged before the kill was lost: the events are all there, in order.
    let store = Store::open(&db).await.unwrap();
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM consult_events WHERE consult_id = $1 ORDER BY id")
            .bind(r2["request_id"].as_i64().unwrap())
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(
        kinds,
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
    let total = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM consult_events")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(total >= events_before + 2);
    store.close().await;
}
