//! Issue 11: what a walkthrough as nurse, doctor and manager (and a
//! third-party client) found, where the server is at fault.

use crate::helpers::*;
use signalling::{Role, Urgency};
use std::time::Duration;

/// Finding 10: a station that signs out while waiting withdraws its
/// request (logged as cancelled): no ghost "Station offline" request left
/// for a doctor to try to answer.
#[tokio::test]
async fn a_station_signing_out_while_waiting_withdraws_its_request() {
    let app = TestApp::spawn().await;
    app.add_user("room1", "Room 1", Role::Station, Some("Millom"))
        .await;
    let token = app.login("room1").await;
    let mut room = app.connect(&token).await;
    let mut doc = app.user("dr-a", "Dr A", Role::Clinician).await;
    room.send(msg::request(Urgency::Urgent, "Wrist")).await;
    let waiting = room
        .expect_where("request_update", |v| v["state"] == "waiting")
        .await;
    let id = waiting["request_id"].clone();
    doc.expect("ring").await;
    let res = app
        .http()
        .post(app.url("/api/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (code, _) = room.expect_close(Duration::from_secs(2)).await;
    assert_eq!(code, Some(4001));
    doc.expect_where("queue", |q| {
        q["requests"].as_array().is_some_and(|r| r.is_empty())
    })
    .await;
    doc.send(msg::accept(id)).await;
    assert_eq!(doc.error().await["code"], "unknown_request");
    let log = app
        .get_json("/api/consults", &app.manager_token().await)
        .await;
    assert_eq!(log["consults"][0]["status"], "cancelled", "{log}");
}

/// Finding 15: a test call directed at a clinician who does not exist
/// would wait forever (test calls never escalate): refused.
#[tokio::test]
async fn a_test_call_to_a_clinician_who_does_not_exist_is_refused() {
    let app = TestApp::spawn_with(|s| s.test_call_clinician = Some("nobody-here".into())).await;
    let mut room = app.user("room1", "Room 1", Role::Station).await;
    room.send(msg::test_call("Test call", "nobody-here")).await;
    let err = room.error().await;
    assert_eq!(err["code"], "invalid_field", "{err}");
    // Checked against the accounts before the switchboard sees it, and
    // still named as the answer to the request, so the page stops waiting.
    assert_eq!(err["in_reply_to"], "request_consult", "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("nobody-here"),
        "{err}"
    );
    room.expect_nothing_pending().await;
}
