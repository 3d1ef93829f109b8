//! Escalation end to end (the rules themselves are tested with a fake clock
//! in signalling/tests/switchboard.rs; here short real thresholds).

use crate::helpers::*;
use signalling::{Availability, EscalationPolicy, Role, Urgency};

#[tokio::test]
async fn an_unanswered_request_is_realerted_escalated_and_logged() {
    let app = TestApp::spawn_with(|s| {
        s.escalation[1] = EscalationPolicy {
            realert_after_ms: 300,
            escalate_after_ms: 600,
        };
    })
    .await;
    app.add_user("nic", "Nurse in Charge", Role::Clinician, None)
        .await;
    app.store.set_escalation_duty("nic", true).await.unwrap();
    let token = app.login("nic").await;
    let mut nic = app.connect(&token).await;
    nic.send(msg::set_availability(Availability::Busy)).await;
    nic.expect("presence").await;
    let mut doc = app.user("dr-a", "Dr A", Role::Clinician).await;
    let mut station = app.user("room1", "Room 1", Role::Station).await;

    station
        .send(msg::request(Urgency::Urgent, "Burn, child"))
        .await;
    let id = station
        .expect_where("request_update", |v| v["state"] == "waiting")
        .await["request_id"]
        .clone();
    let first = doc.expect("ring").await;
    assert!(first["request"].get("escalation").is_none());
    // Step 1: rung again, and the nurse is told.
    let again = doc.expect("ring").await;
    assert_eq!(again["request"]["escalation"], "realerted");
    station
        .expect_where("request_update", |v| v["escalation"] == "realerted")
        .await;
    // Step 2: the busy nurse in charge is alerted; the station is told.
    let alert = nic.expect("escalation").await;
    assert_eq!(alert["request"]["request_id"], id);
    assert_eq!(alert["request"]["station"], "Room 1");
    station
        .expect_where("request_update", |v| v["escalation"] == "escalated")
        .await;

    let token = app.manager_token().await;
    let log = app.get_json("/api/consults", &token).await;
    let c = &log["consults"][0];
    assert!(c["realerted_at"].as_i64().unwrap() - c["requested_at"].as_i64().unwrap() >= 300);
    assert!(c["escalated_at"].as_i64().unwrap() - c["requested_at"].as_i64().unwrap() >= 600);
    let events = app
        .get_json(&format!("/api/consults/{id}/events"), &token)
        .await;
    let steps: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "escalated")
        .map(|e| e["detail"]["level"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["realerted", "escalated"]);
}
