//! A whole consult over real sockets, then read back from the log.

use crate::helpers::*;
use serde_json::{json, Value};
use signalling::{Outcome, Role, Urgency};
use std::time::Duration;

#[tokio::test]
async fn a_full_consult_is_logged_with_its_wait_time() {
    let app = TestApp::spawn().await;
    let mut station = app
        .user("millom-room2", "Millom MIU Room 2", Role::Station)
        .await;
    let mut doc = app.user("dr-patel", "Dr Patel", Role::Clinician).await;
    assert_eq!(station.welcome().role, Role::Station);
    assert_eq!(doc.welcome().user.display_name, "Dr Patel");
    assert_eq!(doc.welcome().protocol_version, 1);
    doc.expect("queue").await;

    station
        .send(msg::request_ref(
            Urgency::Urgent,
            "Head injury, on warfarin",
            "MIU-0412",
        ))
        .await;
    let waiting = station
        .expect_where("request_update", |v| v["state"] == "waiting")
        .await;
    assert_eq!(waiting["position"], 1);
    assert_eq!(waiting["clinicians_available"], 1);
    let request_id = waiting["request_id"].as_u64().expect("request id");

    let ring = doc.expect("ring").await;
    assert_eq!(ring["request"]["request_id"], request_id);
    assert_eq!(ring["request"]["station"], "Millom MIU Room 2");
    assert_eq!(ring["request"]["site"], "Millom");
    assert_eq!(ring["request"]["urgency"], "urgent");
    let queue = doc
        .expect_where("queue", |q| {
            q["requests"].as_array().is_some_and(|r| !r.is_empty())
        })
        .await;
    assert_eq!(queue["requests"][0]["reason"], "Head injury, on warfarin");
    assert!(queue["requests"][0]["waited_ms"].as_i64().unwrap() >= 0);

    // The clinician takes a moment to answer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    doc.send(msg::accept(request_id)).await;

    let accepted = station
        .expect_where("request_update", |v| v["state"] == "accepted")
        .await;
    let told_wait = accepted["waited_ms"].as_i64().unwrap();
    assert!(told_wait >= 300, "wait {told_wait}");
    assert_eq!(accepted["clinician"], "Dr Patel");
    let start_s = station.expect("call_start").await;
    let start_d = doc.expect("call_start").await;
    assert_eq!(start_s["offerer"], true);
    assert_eq!(start_d["offerer"], false);
    assert_eq!(start_s["peer"]["display_name"], "Dr Patel");
    assert_eq!(start_d["peer"]["display_name"], "Millom MIU Room 2");
    assert_eq!(start_d["consult"]["patient_ref"], "MIU-0412");
    let call_id = start_s["call_id"].as_u64().unwrap();
    assert_eq!(start_d["call_id"], call_id);

    // Signalling is relayed both ways, untouched.
    let offer =
        json!({"description": {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}});
    station.send(msg::signal(call_id, offer.clone())).await;
    let got = doc.expect("signal").await;
    assert_eq!(got["data"], offer);
    let cand = json!({"candidate": {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "sdpMid": "0"}});
    doc.send(msg::signal(call_id, cand.clone())).await;
    assert_eq!(station.expect("signal").await["data"], cand);

    // The server stamps each transition when it takes it in; on a busy
    // machine that can lag the send by some milliseconds, so the sleeps
    // leave room above the figures checked below.
    tokio::time::sleep(Duration::from_millis(100)).await;
    station.send(msg::call_connected(call_id)).await;
    doc.send(msg::call_connected(call_id)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    doc.send(msg::hang_up(call_id)).await;
    let end = doc.expect("call_end").await;
    assert_eq!(end["reason"], "hung_up_by_clinician");
    assert_eq!(end["outcome_required"], true);
    station.expect("call_end").await;
    station
        .expect_where("request_update", |v| v["state"] == "ended")
        .await;

    doc.send(msg::record_outcome_note(
        call_id,
        Outcome::ManagedLocally,
        "Wound glued; head injury advice",
    ))
    .await;
    doc.expect("outcome_recorded").await;
    let done = station
        .expect_where("request_update", |v| v["state"] == "completed")
        .await;
    assert_eq!(done["outcome"], "managed_locally");

    // The manager reads it back.
    let token = app.manager_token().await;
    let log = app.get_json("/api/consults", &token).await;
    assert_eq!(log["total"], 1);
    let c = &log["consults"][0];
    assert_eq!(c["id"], request_id);
    assert_eq!(c["station"], "Millom MIU Room 2");
    assert_eq!(c["site"], "Millom");
    assert_eq!(c["urgency"], "urgent");
    assert_eq!(c["clinician"], "Dr Patel");
    assert_eq!(c["status"], "completed");
    assert_eq!(c["outcome"], "managed_locally");
    assert_eq!(c["end_reason"], "hung_up_by_clinician");
    assert_eq!(c["call_id"], call_id);
    let requested_at = c["requested_at"].as_i64().unwrap();
    let accepted_at = c["accepted_at"].as_i64().unwrap();
    let connected_at = c["connected_at"].as_i64().unwrap();
    let ended_at = c["ended_at"].as_i64().unwrap();
    assert_eq!(c["wait_ms"].as_i64().unwrap(), accepted_at - requested_at);
    assert_eq!(
        c["wait_ms"].as_i64().unwrap(),
        told_wait,
        "the log's wait is what the nurse was told"
    );
    assert_eq!(
        c["connect_ms"].as_i64().unwrap(),
        connected_at - accepted_at
    );
    assert!(c["connect_ms"].as_i64().unwrap() >= 50);
    assert_eq!(c["duration_ms"].as_i64().unwrap(), ended_at - connected_at);
    assert!(c["duration_ms"].as_i64().unwrap() >= 200);
    assert!(requested_at <= accepted_at && accepted_at <= connected_at && connected_at <= ended_at);

    // Every transition is in the event log, in order.
    let events = app
        .get_json(&format!("/api/consults/{request_id}/events"), &token)
        .await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
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

    // And as CSV, with a header row and the same wait.
    let res = app.get("/api/consults.csv", &token).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let body = res.text().await.unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 2, "{body}");
    let header = parse_csv_line(lines[0]);
    let row = parse_csv_line(lines[1]);
    assert_eq!(header.len(), row.len());
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("column {name}"))
    };
    assert_eq!(
        row[col("reason")],
        "Head injury, on warfarin",
        "quoted cell read back whole"
    );
    assert_eq!(row[col("consult_id")], request_id.to_string());
    assert_eq!(row[col("station")], "Millom MIU Room 2");
    assert_eq!(row[col("outcome")], "managed_locally");
    let csv_wait: f64 = row[col("wait_seconds")].parse().unwrap();
    assert!(
        (csv_wait - told_wait as f64 / 1000.0).abs() < 0.051,
        "{csv_wait} vs {told_wait}"
    );
    assert!(row[col("requested_at_utc")].ends_with('Z'));
}

/// RFC 4180: commas inside double quotes, doubled quotes inside quotes.
fn parse_csv_line(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cells.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(String::new()),
            (c, _) => cells.last_mut().unwrap().push(c),
        }
    }
    cells
}

#[tokio::test]
async fn the_log_filters_by_time_site_and_station() {
    let app = TestApp::spawn().await;
    let mut s1 = app.user("room1", "Room 1", Role::Station).await;
    let mut s2 = app.user("room2", "Room 2", Role::Station).await;
    for s in [&mut s1, &mut s2] {
        s.send(msg::request(Urgency::Routine, "Ankle")).await;
        s.expect("request_update").await;
    }
    let token = app.manager_token().await;
    let all = app.get_json("/api/consults", &token).await;
    assert_eq!(all["total"], 2);
    assert_eq!(all["consults"][0]["status"], "waiting");
    let one = app.get_json("/api/consults?station=Room%202", &token).await;
    assert_eq!(one["total"], 1);
    assert_eq!(one["consults"][0]["station"], "Room 2");
    let site = app.get_json("/api/consults?site=Elsewhere", &token).await;
    assert_eq!(site["total"], 0);
    let past = app
        .get_json("/api/consults?from=2020-01-01&to=2020-12-31", &token)
        .await;
    assert_eq!(past["total"], 0);
    let now = app.get_json("/api/consults?from=2020-01-01", &token).await;
    assert_eq!(now["total"], 2);
    let paged = app.get_json("/api/consults?limit=1&offset=1", &token).await;
    assert_eq!(paged["count"], 1);
    assert_eq!(paged["consults"][0]["station"], "Room 2");
    let res = app.get("/api/consults?from=yesterday-ish", &token).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("2026-11-23"),
        "{body}"
    );
}
