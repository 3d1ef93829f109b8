//! The switchboard's rules, over real sockets.

use crate::helpers::*;
use serde_json::{json, Value};
use signalling::{Availability, Outcome, Role, Urgency};

async fn request(station: &mut WsClient, urgency: Urgency, reason: &str) -> u64 {
    station.send(msg::request(urgency, reason)).await;
    let v = station
        .expect_where("request_update", |v| v["state"] == "waiting")
        .await;
    v["request_id"].as_u64().unwrap()
}

#[tokio::test]
async fn the_accept_race_has_exactly_one_winner() {
    let app = TestApp::spawn().await;
    let mut station = app.user("room1", "Room 1", Role::Station).await;
    let mut a = app.user("dr-a", "Dr A", Role::Clinician).await;
    let mut b = app.user("dr-b", "Dr B", Role::Clinician).await;
    for round in 0..10 {
        let id = request(&mut station, Urgency::Urgent, "Laceration").await;
        a.expect("ring").await;
        b.expect("ring").await;
        // Both click at once.
        let accept = msg::accept(id);
        tokio::join!(a.send(accept.clone()), b.send(accept));
        let outcome_a = first_of(&mut a, &["call_start", "error"]).await;
        let outcome_b = first_of(&mut b, &["call_start", "error"]).await;
        let (winner, loser_msg) = match (outcome_a["type"].as_str(), outcome_b["type"].as_str()) {
            (Some("call_start"), Some("error")) => (&mut a, outcome_b),
            (Some("error"), Some("call_start")) => (&mut b, outcome_a),
            other => panic!("round {round}: not exactly one winner: {other:?}"),
        };
        assert_eq!(loser_msg["code"], "already_taken");
        assert_eq!(loser_msg["in_reply_to"], "accept");
        let call_id = station.expect("call_start").await["call_id"]
            .as_u64()
            .unwrap();
        winner.send(msg::hang_up(call_id)).await;
        winner.expect("call_end").await;
        winner
            .send(msg::record_outcome(call_id, Outcome::ManagedLocally))
            .await;
        winner.expect("outcome_recorded").await;
        station
            .expect_where("request_update", |v| v["state"] == "completed")
            .await;
    }
    // The log shows ten consults, each accepted exactly once.
    let token = app.manager_token().await;
    let log = app.get_json("/api/consults", &token).await;
    assert_eq!(log["total"], 10);
    for c in log["consults"].as_array().unwrap() {
        let events = app
            .get_json(&format!("/api/consults/{}/events", c["id"]), &token)
            .await;
        let accepted = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "accepted")
            .count();
        assert_eq!(accepted, 1);
    }
}

async fn first_of(client: &mut WsClient, kinds: &[&str]) -> Value {
    loop {
        let v = client.recv().await;
        if kinds.iter().any(|k| v["type"] == *k) {
            return v;
        }
    }
}

#[tokio::test]
async fn the_queue_is_ordered_by_urgency_then_arrival() {
    let app = TestApp::spawn().await;
    let mut doc = app.user("dr-a", "Dr A", Role::Clinician).await;
    doc.send(msg::set_availability(Availability::Busy)).await;
    doc.expect("presence").await;
    let mut ids = Vec::new();
    let mut stations = Vec::new();
    for (i, urgency) in [
        Urgency::Routine,
        Urgency::Urgent,
        Urgency::Routine,
        Urgency::Immediate,
        Urgency::Urgent,
    ]
    .into_iter()
    .enumerate()
    {
        let mut s = app
            .user(&format!("room{i}"), &format!("Room {i}"), Role::Station)
            .await;
        ids.push(request(&mut s, urgency, "x").await);
        stations.push(s); // Keep the connection open.
    }
    let queue = doc
        .expect_where("queue", |q| {
            q["requests"].as_array().is_some_and(|r| r.len() == 5)
        })
        .await;
    let order: Vec<u64> = queue["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["request_id"].as_u64().unwrap())
        .collect();
    assert_eq!(order, vec![ids[3], ids[1], ids[4], ids[0], ids[2]]);
    assert_eq!(
        queue["clinicians_available"], 0,
        "a busy clinician is not counted"
    );
}

#[tokio::test]
async fn signals_into_someone_elses_call_are_refused_and_delivered_to_nobody() {
    let app = TestApp::spawn().await;
    let mut s1 = app.user("room1", "Room 1", Role::Station).await;
    let mut s2 = app.user("room2", "Room 2", Role::Station).await;
    let mut a = app.user("dr-a", "Dr A", Role::Clinician).await;
    let mut b = app.user("dr-b", "Dr B", Role::Clinician).await;
    let r1 = request(&mut s1, Urgency::Urgent, "One").await;
    let r2 = request(&mut s2, Urgency::Urgent, "Two").await;
    a.send(msg::accept(r1)).await;
    let c1 = a.expect("call_start").await["call_id"].as_u64().unwrap();
    b.send(msg::accept(r2)).await;
    b.expect("call_start").await;
    s1.expect("call_start").await;
    s2.expect("call_start").await;

    for intruder in [&mut b, &mut s2] {
        intruder.send(msg::signal(c1, json!({"sdp": "evil"}))).await;
        let err = intruder.error().await;
        assert_eq!(err["code"], "not_in_call");
        assert_eq!(err["in_reply_to"], "signal");
        intruder.send(msg::hang_up(c1)).await;
        assert_eq!(intruder.error().await["code"], "not_in_call");
    }
    b.send(msg::record_outcome(c1, Outcome::Ambulance)).await;
    assert_eq!(b.error().await["code"], "not_in_call");
    a.send(msg::signal(999_999u64, json!({}))).await;
    assert_eq!(a.error().await["code"], "unknown_call");
    // Nothing reached the parties of call 1, and it still works.
    s1.expect_nothing_pending().await;
    a.expect_nothing_pending().await;
    s1.send(msg::signal(c1, json!({"ok": true}))).await;
    assert_eq!(a.expect("signal").await["data"]["ok"], true);
}

#[tokio::test]
async fn roles_are_enforced() {
    let app = TestApp::spawn().await;
    let mut station = app.user("room1", "Room 1", Role::Station).await;
    let mut doc = app.user("dr-a", "Dr A", Role::Clinician).await;
    let mut manager = app.user("mgr", "Manager", Role::Manager).await;
    let id = request(&mut station, Urgency::Urgent, "One").await;

    station.send(msg::accept(id)).await;
    let err = station.error().await;
    assert_eq!(err["code"], "forbidden_role");
    assert!(
        err["message"].as_str().unwrap().contains("clinician"),
        "{err}"
    );
    station
        .send(msg::set_availability(Availability::Available))
        .await;
    assert_eq!(station.error().await["code"], "forbidden_role");
    doc.send(msg::request(Urgency::Urgent, "x")).await;
    assert_eq!(doc.error().await["code"], "forbidden_role");
    manager.send(msg::accept(id)).await;
    assert_eq!(manager.error().await["code"], "forbidden_role");
    // The request was untouched by all that.
    doc.send(msg::accept(id)).await;
    let call_id = doc.expect("call_start").await["call_id"].as_u64().unwrap();
    station
        .send(msg::record_outcome(call_id, Outcome::ManagedLocally))
        .await;
    assert_eq!(station.error().await["code"], "forbidden_role");
    // One open request per station.
    station.send(msg::request(Urgency::Urgent, "again")).await;
    assert_eq!(station.error().await["code"], "request_open");
    // Unknown ids.
    doc.send(msg::accept(123456u64)).await;
    assert_eq!(doc.error().await["code"], "in_call");
}

#[tokio::test]
async fn a_reconnecting_station_keeps_its_request() {
    let app = TestApp::spawn().await;
    let mut station = app.user("room1", "Room 1", Role::Station).await;
    let mut doc = app.user("dr-a", "Dr A", Role::Clinician).await;
    doc.send(msg::set_availability(Availability::Away)).await;
    doc.expect("presence").await;
    let id = request(&mut station, Urgency::Urgent, "One").await;
    station.close().await;
    let q = doc
        .expect_where("queue", |q| q["requests"][0]["station_connected"] == false)
        .await;
    assert_eq!(q["requests"][0]["request_id"], id);
    let token = app.login("room1").await;
    let mut again = app.connect(&token).await;
    let update = again.expect("request_update").await;
    assert_eq!(update["request_id"], id);
    assert_eq!(update["state"], "waiting");
    doc.expect_where("queue", |q| q["requests"][0]["station_connected"] == true)
        .await;
}
