//! Bad input gets a clear error and changes nothing; others carry on.

use crate::helpers::*;
use futures_util::{SinkExt, StreamExt};
use signalling::{ClientMessage, Role, Urgency};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn bad_frames_get_clear_errors_and_the_connection_carries_on() {
    let app = TestApp::spawn().await;
    let mut station = app.user("room1", "Room 1", Role::Station).await;
    let mut doc = app.user("dr-a", "Dr A", Role::Clinician).await;
    doc.expect("queue").await;

    // Raw JSON on purpose: these frames are what the typed client cannot
    // send (bad JSON, unknown types, missing or bad fields, over the
    // limits), and the point is the server's answer to each.
    // The third column is the error's `in_reply_to`: the frame's type
    // whenever the frame was read far enough to know it, so a page that
    // is waiting for the answer to its request hears this one.
    let cases: Vec<(String, &str, Option<&str>)> = vec![
        ("this is not json".into(), "malformed_json", None),
        ("[1, 2, 3]".into(), "malformed_json", None),
        (r#"{"no_type": 1}"#.into(), "unknown_type", None),
        (r#"{"type": "launch"}"#.into(), "unknown_type", None),
        (r#"{"type": "request_consult", "urgency": "urgent"}"#.into(), "invalid_message", Some("request_consult")),
        (r#"{"type": "request_consult", "urgency": "soonish", "reason": "x"}"#.into(), "invalid_message", Some("request_consult")),
        (r#"{"type": "request_consult", "urgency": "urgent", "reason": "x", "patient_ref": "Jane Doe"}"#.into(), "invalid_field", Some("request_consult")),
        (r#"{"type": "request_consult", "urgency": "urgent", "reason": ""}"#.into(), "invalid_field", Some("request_consult")),
        (format!(r#"{{"type": "request_consult", "urgency": "urgent", "reason": "{}"}}"#, "x".repeat(201)), "invalid_field", Some("request_consult")),
        (r#"{"type": "request_consult", "urgency": "routine", "reason": "x", "direct_to": "dr-a"}"#.into(), "invalid_field", Some("request_consult")),
        (r#"{"type": "record_outcome", "call_id": 1, "outcome": "maybe"}"#.into(), "invalid_message", Some("record_outcome")),
        (format!(r#"{{"type": "signal", "call_id": 1, "data": "{}"}}"#, "a".repeat(40 * 1024)), "signal_too_large", Some("signal")),
        (format!(r#"{{"type": "ping", "pad": "{}"}}"#, "a".repeat(100 * 1024)), "frame_too_large", None),
    ];
    for (frame, code, in_reply_to) in &cases {
        station.send_text(frame).await;
        let err = station.error().await;
        let shown = &frame[..frame.len().min(80)];
        assert_eq!(err["code"], *code, "for frame {shown}");
        assert_eq!(
            err["in_reply_to"].as_str(),
            *in_reply_to,
            "in_reply_to for frame {shown}: {err}"
        );
        assert!(
            err["message"].as_str().is_some_and(|m| m.len() > 10),
            "a message that says what to do"
        );
    }
    // A binary frame is not a protocol message: the WebSocket itself.
    station
        .websocket()
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(station.error().await["code"], "binary_frame");

    // None of that made a request, and the connection still works.
    doc.expect_nothing_pending().await;
    station
        .send(msg::request(Urgency::Urgent, "Real one"))
        .await;
    station
        .expect_where("request_update", |v| v["state"] == "waiting")
        .await;
    let ring = doc.expect("ring").await;
    assert_eq!(ring["request"]["reason"], "Real one");
    let token = app.manager_token().await;
    assert_eq!(app.get_json("/api/consults", &token).await["total"], 1);
}

#[tokio::test]
async fn a_huge_frame_closes_only_that_connection() {
    let app = TestApp::spawn().await;
    let mut station = app.user("room1", "Room 1", Role::Station).await;
    let mut doc = app.user("dr-a", "Dr A", Role::Clinician).await;
    doc.expect("queue").await;
    // Raw on purpose: a frame over the server's 1 MiB limit, and the
    // connection dropped under it, are below the protocol.
    let huge = format!(
        r#"{{"type":"ping","pad":"{}"}}"#,
        "a".repeat(2 * 1024 * 1024)
    );
    let ws = station.websocket();
    let _ = ws.send(Message::Text(huge.into())).await;
    // The server closes the socket (message too big) ...
    let mut closed = false;
    while let Ok(Some(msg)) =
        tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await
    {
        match msg {
            Ok(Message::Close(_)) | Err(_) => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(
        closed || ws.next().await.is_none(),
        "oversized connection closed"
    );
    // ... and everyone else carries on.
    doc.expect_nothing_pending().await;
    let mut other = app.user("room2", "Room 2", Role::Station).await;
    other.send(msg::request(Urgency::Routine, "Wrist")).await;
    doc.expect("ring").await;
}

#[tokio::test]
async fn a_flood_is_rate_limited_and_others_are_unaffected() {
    let app = TestApp::spawn().await;
    let mut flooder = app.user("room1", "Room 1", Role::Station).await;
    let mut doc = app.user("dr-a", "Dr A", Role::Clinician).await;
    doc.expect("queue").await;
    // Far more than the burst allowance, as fast as possible.
    for _ in 0..600 {
        flooder.send(ClientMessage::Ping { nonce: None }).await;
    }
    let err = flooder.expect("error").await;
    assert_eq!(err["code"], "rate_limited");
    // Everyone else carries on at once.
    doc.expect_nothing_pending().await;
    let mut other = app.user("room2", "Room 2", Role::Station).await;
    other.send(msg::request(Urgency::Urgent, "Wrist")).await;
    doc.expect("ring").await;
}

#[tokio::test]
async fn a_sustained_flood_is_closed() {
    let app = TestApp::spawn().await;
    let mut flooder = app.user("room1", "Room 1", Role::Station).await;
    // The burst, then more than RATE_STRIKES_TO_CLOSE dropped in a row.
    let total = 200 + miulink::http::ws::RATE_STRIKES_TO_CLOSE as usize + 300;
    for _ in 0..total {
        // Sends may fail once the server has closed: that is the point.
        let _ = flooder.try_send(ClientMessage::Ping { nonce: None }).await;
    }
    let (closed, _) = flooder
        .until_closed(std::time::Duration::from_secs(10))
        .await;
    assert_eq!(closed, Some(1008), "closed as a policy violation");
}

#[tokio::test]
async fn turn_credentials_come_with_the_welcome_and_are_renewed() {
    let app = TestApp::spawn_with(|s| {
        s.turn_urls = vec!["turn:127.0.0.1:3478?transport=udp".into()];
        s.turn_secret = Some("a-turn-secret-of-at-least-32-characters".into());
        s.turn_ttl_ms = 2_000;
    })
    .await;
    let mut doc = app.user("dr-a", "Dr A", Role::Clinician).await;
    let ice = doc.welcome().ice_servers[0].clone();
    assert_eq!(ice.urls[0], "turn:127.0.0.1:3478?transport=udp");
    let user = ice.username.clone().unwrap();
    let (expiry, name) = user.split_once(':').unwrap();
    assert_eq!(name, "dr-a");
    let expiry: i64 = expiry.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now..=now + 3).contains(&expiry),
        "expires with the TTL: {expiry} vs {now}"
    );
    let (expected_user, expected_pass) =
        miulink::turn::credential("a-turn-secret-of-at-least-32-characters", "dr-a", expiry);
    assert_eq!(user, expected_user);
    assert_eq!(ice.credential, Some(expected_pass));
    // Renewed at half the lifetime, before it expires.
    let renewed = doc.expect("ice_servers").await;
    let user2 = renewed["ice_servers"][0]["username"].as_str().unwrap();
    let expiry2: i64 = user2.split_once(':').unwrap().0.parse().unwrap();
    assert!(expiry2 > expiry, "a new credential: {expiry2} vs {expiry}");
}
