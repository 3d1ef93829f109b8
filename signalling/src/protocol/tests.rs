//! Decoding and encoding, case by case.

use super::*;

fn code(text: &str) -> ErrorCode {
    decode(text).unwrap_err().code
}

#[test]
fn decodes_every_client_message() {
    let cases = [
        r#"{"type":"request_consult","urgency":"urgent","reason":"Head injury"}"#,
        r#"{"type":"request_consult","urgency":"routine","reason":"Wrist","patient_ref":"MIU-2026/0412"}"#,
        r#"{"type":"request_consult","urgency":"routine","reason":"Probe","test":true,"direct_to":"probe-doc"}"#,
        r#"{"type":"cancel_request","request_id":3}"#,
        r#"{"type":"set_availability","status":"away"}"#,
        r#"{"type":"accept","request_id":3}"#,
        r#"{"type":"record_outcome","call_id":1,"outcome":"managed_locally","note":"Steri-strips"}"#,
        r#"{"type":"signal","call_id":1,"data":{"candidate":"x"}}"#,
        r#"{"type":"call_connected","call_id":1}"#,
        r#"{"type":"hang_up","call_id":1}"#,
        r#"{"type":"call_quality","call_id":1,"sample":{"rtt_ms":23.5,"packet_loss_pct":0.4,"fps":29.9,"relayed":true}}"#,
        r#"{"type":"ping","nonce":7}"#,
    ];
    for case in cases {
        let msg = decode(case).unwrap_or_else(|e| panic!("{case}: {e}"));
        // Round trip through our own encoder.
        let again = serde_json::to_string(&msg).unwrap();
        assert_eq!(decode(&again).unwrap(), msg);
    }
}

#[test]
fn a_refusal_names_the_message_once_its_type_is_known() {
    let regarding = |text: &str| decode(text).unwrap_err().regarding;
    assert_eq!(regarding("not json"), None);
    assert_eq!(regarding(r#"{"type":"launch"}"#), None);
    assert_eq!(regarding(r#"{"type":"accept"}"#), Some("accept"));
    assert_eq!(
        regarding(r#"{"type":"request_consult","urgency":"urgent","reason":"  "}"#),
        Some("request_consult")
    );
    let err = decode(r#"{"type":"accept"}"#).unwrap_err();
    let sent = ServerMessage::error(err, None).to_json();
    assert!(sent.contains(r#""in_reply_to":"accept""#), "{sent}");
}

#[test]
fn refuses_bad_frames_with_clear_codes() {
    assert_eq!(code("not json"), ErrorCode::MalformedJson);
    assert_eq!(code("[1,2]"), ErrorCode::MalformedJson);
    assert_eq!(code(r#"{"urgency":"urgent"}"#), ErrorCode::UnknownType);
    assert_eq!(code(r#"{"type":7}"#), ErrorCode::UnknownType);
    assert_eq!(
        code(r#"{"type":"launch_missiles"}"#),
        ErrorCode::UnknownType
    );
    assert_eq!(code(r#"{"type":"accept"}"#), ErrorCode::InvalidMessage);
    assert_eq!(
        code(r#"{"type":"accept","request_id":"x"}"#),
        ErrorCode::InvalidMessage
    );
    assert_eq!(
        code(r#"{"type":"accept","request_id":-1}"#),
        ErrorCode::InvalidMessage
    );
    assert_eq!(
        code(r#"{"type":"accept","request_id":1,"extra":true}"#),
        ErrorCode::InvalidMessage
    );
    assert_eq!(
        code(r#"{"type":"request_consult","urgency":"whenever","reason":"x"}"#),
        ErrorCode::InvalidMessage
    );
    assert_eq!(
        code(r#"{"type":"request_consult","urgency":"urgent","reason":"   "}"#),
        ErrorCode::InvalidField
    );
    assert_eq!(
        code(r#"{"type":"request_consult","urgency":"urgent","reason":"x","direct_to":"dr"}"#),
        ErrorCode::InvalidField
    );
    assert_eq!(
        code(r#"{"type":"call_quality","call_id":1,"sample":{"packet_loss_pct":140}}"#),
        ErrorCode::InvalidField
    );
    assert_eq!(
        code(r#"{"type":"call_quality","call_id":1,"sample":{"jitter":1}}"#),
        ErrorCode::InvalidMessage
    );
    let long = "x".repeat(MAX_FRAME_BYTES + 1);
    assert_eq!(code(&long), ErrorCode::FrameTooLarge);
    let big_signal = format!(
        r#"{{"type":"signal","call_id":1,"data":"{}"}}"#,
        "a".repeat(MAX_SIGNAL_BYTES + 10)
    );
    assert_eq!(code(&big_signal), ErrorCode::SignalTooLarge);
    // Relayed as received: numbers are not rewritten (`1e15` stays
    // `1e15`, never 1000000000000000.0), so the frame's own bytes bound
    // what goes out.
    let numbers = vec!["1e15"; 3_000].join(",");
    let growing = format!(r#"{{"type":"signal","call_id":1,"data":[{numbers}]}}"#);
    assert!(growing.len() < MAX_SIGNAL_BYTES);
    match decode(&growing) {
        Ok(ClientMessage::Signal { data, .. }) => {
            assert_eq!(data.get(), format!("[{numbers}]"));
            let out = ServerMessage::Signal {
                call_id: CallId(1),
                data,
            }
            .to_json();
            assert_eq!(out.len(), growing.len());
        }
        other => panic!("{other:?}"),
    }
    // The general path reads a signal too (here: keys out of order and
    // spaces, which the quick path also takes; an unknown field, which
    // only the general path can name).
    let spaced = r#"{ "data" : {"sdp": "v=0"}, "call_id": 7, "type": "signal" }"#;
    match decode(spaced) {
        Ok(ClientMessage::Signal { call_id, data }) => {
            assert_eq!(call_id, CallId(7));
            assert_eq!(data.get(), r#"{"sdp": "v=0"}"#);
        }
        other => panic!("{other:?}"),
    }
    let extra = r#"{"type":"signal","call_id":1,"data":{},"to":"someone"}"#;
    assert_eq!(code(extra), ErrorCode::InvalidMessage);
    let no_data = r#"{"type":"signal","call_id":1}"#;
    assert_eq!(code(no_data), ErrorCode::InvalidMessage);
    let fits = r#"{"type":"signal","call_id":1,"data":{"candidate":{"candidate":"a"}}}"#;
    assert!(decode(fits).is_ok());
}

#[test]
fn patient_ref_cannot_be_a_name() {
    let msg = |r: &str| {
        format!(
            r#"{{"type":"request_consult","urgency":"urgent","reason":"x","patient_ref":"{r}"}}"#
        )
    };
    assert_eq!(code(&msg("John Smith")), ErrorCode::InvalidField);
    assert_eq!(code(&msg("Smith, J")), ErrorCode::InvalidField);
    assert_eq!(
        code(&msg("A123456789012345678901234")),
        ErrorCode::InvalidField
    );
    assert!(decode(&msg("MIU-0412")).is_ok());
    // An empty reference is the same as none.
    assert_eq!(
        decode(&msg("  ")).unwrap(),
        ClientMessage::RequestConsult {
            urgency: Urgency::Urgent,
            reason: "x".into(),
            patient_ref: None,
            test: false,
            direct_to: None,
        }
    );
}

#[test]
fn server_messages_have_a_type_tag() {
    let msg = ServerMessage::Error {
        code: ErrorCode::NotInCall,
        message: "m".into(),
        in_reply_to: Some("signal".into()),
    };
    let v: Value = serde_json::from_str(&msg.to_json()).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["code"], "not_in_call");
}
