//! Waiting requests and calls survive `kill -9` of the server: the real
//! binary is killed and started again on the same database, and clients
//! that reconnect pick up where they were. No logged event is lost.

use crate::helpers::*;
use miulink::store::Store;
use serde_json::Value;
use signalling::{Outcome, Role, Urgency};

#[tokio::test]
async fn waiting_requests_and_calls_survive_kill_9() {
    let mut server = BinaryServer::start(
        &[
            ("room1", "room1", Role::Station, Some("Millom")),
            ("room2", "room2", Role::Station, Some("Millom")),
            ("dr-a", "dr-a", Role::Clinician, None),
            ("mgr", "mgr", Role::Manager, None),
        ],
        &[],
    )
    .await;
    let db = server.database_url.clone();
    let tokens: Vec<String> =
        futures_util::future::join_all(["room1", "room2", "dr-a", "mgr"].map(|u| server.login(u)))
            .await;
    let mut s1 = server.connect(&tokens[0]).await;
    let mut s2 = server.connect(&tokens[1]).await;
    let mut doc = server.connect(&tokens[2]).await;

    // Room 2 is in a call with Dr A, media flowing; Room 1 is waiting.
    s2.send(msg::request(Urgency::Urgent, "Wrist")).await;
    let r2 = s2
        .expect_where("request_update", |v| v["state"] == "waiting")
        .await;
    doc.expect("ring").await;
    doc.send(msg::accept(&r2["request_id"])).await;
    let call_id = doc.expect("call_start").await["call_id"].as_u64().unwrap();
    s2.expect("call_start").await;
    s2.send(msg::call_connected(call_id)).await;
    doc.send(msg::call_connected(call_id)).await;
    s1.send(msg::request(Urgency::Immediate, "Head injury"))
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
    let events_before = event_count(&before).await;
    before.close().await;

    server.kill_9();
    drop((s1, s2, doc));
    server.restart().await;

    // Logins survive; each client resumes.
    let mut s1 = server.connect(&tokens[0]).await;
    let back = s1.expect("request_update").await;
    assert_eq!(back["state"], "waiting");
    assert_eq!(back["request_id"], r1_id);
    assert_eq!(back["requested_at"], r1_at, "original request time");
    let mut doc = server.connect(&tokens[2]).await;
    let resumed = doc.expect("call_start").await;
    assert_eq!(resumed["call_id"], call_id);
    assert_eq!(resumed["resumed"], true);
    let q = doc.expect("queue").await;
    assert_eq!(
        q["requests"][0]["request_id"], r1_id,
        "the waiting request is in the queue again"
    );
    let mut s2 = server.connect(&tokens[1]).await;
    assert_eq!(s2.expect("call_start").await["call_id"], call_id);

    // The call's end is still logged after the restart.
    s2.send(msg::hang_up(call_id)).await;
    doc.expect("call_end").await;
    doc.send(msg::record_outcome(call_id, Outcome::ManagedLocally))
        .await;
    doc.expect("outcome_recorded").await;

    let log: Value = reqwest::Client::new()
        .get(server.url("/api/consults"))
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
    let kinds: Vec<String> = store
        .consult_events(r2["request_id"].as_i64().unwrap())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
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
    let total = event_count(&store).await;
    assert!(total >= events_before + 2);
    store.close().await;
}

async fn event_count(store: &Store) -> i64 {
    let counts = store.row_counts().await.unwrap();
    counts
        .iter()
        .find(|(table, _)| *table == "consult_events")
        .map(|(_, n)| *n)
        .unwrap()
}
